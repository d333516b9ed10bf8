/*
 * agent/outbox.h — the durable outbox of events bound for the hub (SQLite).
 *
 * Events bound for the hub (store events, commands for other sites, real
 * events of cloud-placed interfaces) are appended here in batches and go
 * upstream as sync EventBatches on STREAM_UP. Each row gets seq = the next
 * number of this outbox's incarnation (1, 2, 3, ... with no gaps); the hub
 * dedupes on (agent, incarnation, seq), acks cumulatively, and acked rows are
 * deleted (agent_outbox_ack).
 *
 * DESIGN: the outbox is its own SQLite file (outbox.path, by default the
 * cache path + "-outbox"), not a table of the graph cache: the cache may be
 * moved aside and rebuilt from the hub at any time (it is a replica), while
 * the outbox holds data that exists nowhere else. The incarnation id is a
 * random 128-bit hex string created with the outbox file and kept in it, so
 * a wiped or rebuilt outbox starts a new sequence space and the hub never
 * drops new events as duplicates of old numbers. The same file keeps the
 * MQTT journal watermark (meta "journal_applied"): the journal drain commits
 * the events derived from a batch of device messages and the id of the last
 * message in ONE transaction, which is what makes a journal replay
 * duplicate-free.
 *
 * Quota: outbox.max_bytes bounds the sum of the stored events' sizes (see
 * agent_outbox_event_bytes). An append past it returns KT_EAGAIN and stores
 * nothing; the outbox is "full" from then until it drains below
 * outbox.low_water_bytes (hysteresis). The MQTT bridge turns "full" into
 * backpressure to the broker (docs/operations.md). Nothing is ever dropped.
 *
 * Transactions: agent_outbox_begin .. agent_outbox_commit (or _rollback)
 * group appends and meta updates; an append outside a transaction commits
 * by itself. After a commit that added events the kick callback runs (the
 * uplink then sends).
 *
 * Thread: loop only. Ownership: the outbox owns its connection and
 * statements; the sync_event views handed to peek callbacks live during the
 * call only.
 */
#ifndef KT_AGENT_OUTBOX_H
#define KT_AGENT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "sync/msg.h"

typedef struct agent_outbox agent_outbox;

typedef struct agent_outbox_opts {
    const char *path;         /* SQLite file; required */
    uint64_t max_bytes;       /* quota on stored event bytes; 0 = 1 GiB */
    uint64_t low_water_bytes; /* "full" clears below this; 0 = 90 % of max_bytes */
    kt_metrics *metrics;      /* nullable: registers ktwin_agent_outbox_{events,bytes,full} */
} agent_outbox_opts;

/* After a commit that added events. Loop thread; may call agent_outbox_peek. */
typedef void (*agent_outbox_kick_cb)(agent_outbox *ob, void *user);

/* One stored event during agent_outbox_peek; return false to stop. */
typedef bool (*agent_outbox_event_cb)(uint64_t seq, const sync_event *ev, void *user);

/*
 * Open or create the outbox (WAL, synchronous=NORMAL; a new file gets a new
 * incarnation). Returns KT_OK; KT_EINVAL (no path); KT_EDEP (sqlite: open,
 * schema, or the file is not an outbox).
 */
kt_status agent_outbox_open(agent_outbox **out, const agent_outbox_opts *opts, kt_err *err);
/* Close (rolls back an open transaction). NULL is a no-op. */
void agent_outbox_free(agent_outbox *ob);

/* The incarnation id (32 hex chars), borrowed for the outbox's lifetime. */
const char *agent_outbox_incarnation(const agent_outbox *ob);

/* The kick callback (NULL to clear). */
void agent_outbox_set_kick(agent_outbox *ob, agent_outbox_kick_cb cb, void *user);

/* Bytes an event counts against the quota: data + id + type + source + subject + datacontenttype
 * + 64. */
uint64_t agent_outbox_event_bytes(const sync_event *ev);

/*
 * Open a transaction. KT_EINVAL if one is open; KT_EDEP (sqlite).
 */
kt_status agent_outbox_begin(agent_outbox *ob, kt_err *err);
/* Commit; runs the kick when events were added. KT_EDEP: rolled back. */
kt_status agent_outbox_commit(agent_outbox *ob, kt_err *err);
/* Roll back; the counters go back too. No-op without a transaction. */
void agent_outbox_rollback(agent_outbox *ob);

/*
 * Inside a transaction: mark the current point (SQL SAVEPOINT), then either
 * keep everything since (agent_outbox_unmark(ob, true)) or undo it
 * (agent_outbox_unmark(ob, false)), counters included. One mark at a time.
 * The MQTT drain brackets each message with it, so a message whose events
 * do not all fit is undone alone and the batch before it still commits.
 * mark: KT_OK; KT_EINVAL (no transaction, or a mark is set); KT_EDEP.
 */
kt_status agent_outbox_mark(agent_outbox *ob, kt_err *err);
void agent_outbox_unmark(agent_outbox *ob, bool keep);

/*
 * Append one event (copied). *seq_out (nullable) gets its seq. Inside a
 * transaction it becomes visible at commit; outside, it commits now.
 * Returns KT_OK; KT_EINVAL (id/type/source NULL or empty); KT_EAGAIN: the
 * quota would be exceeded (nothing stored; the outbox is now full); KT_EDEP.
 */
kt_status
agent_outbox_append(agent_outbox *ob, const sync_event *ev, uint64_t *seq_out, kt_err *err);

/*
 * Call cb for stored events with seq >= from_seq in order, at most max_n of
 * them and stopping before the one that would take the sum of
 * agent_outbox_event_bytes past max_bytes (the first is always given).
 * *n_out (nullable) gets the count. KT_OK or KT_EDEP.
 */
kt_status agent_outbox_peek(agent_outbox *ob,
                            uint64_t from_seq,
                            size_t max_n,
                            uint64_t max_bytes,
                            agent_outbox_event_cb cb,
                            void *user,
                            size_t *n_out,
                            kt_err *err);

/*
 * The hub committed everything up to seq: delete those rows (in its own
 * transaction; KT_EINVAL inside one). Acks at or below an earlier ack are
 * no-ops; seq past the last appended is KT_EINVAL. KT_OK or KT_EDEP.
 */
kt_status agent_outbox_ack(agent_outbox *ob, uint64_t seq, kt_err *err);

/* Lowest stored seq (first unacked), or next_seq when empty. */
uint64_t agent_outbox_first_seq(const agent_outbox *ob);
/* The seq the next append gets. */
uint64_t agent_outbox_next_seq(const agent_outbox *ob);
/* Highest seq acked so far (0 = none). */
uint64_t agent_outbox_acked_seq(const agent_outbox *ob);
/* Stored events / quota bytes (committed plus the open transaction's). */
uint64_t agent_outbox_events(const agent_outbox *ob);
uint64_t agent_outbox_bytes(const agent_outbox *ob);
/* Full: an append was refused and the outbox has not drained below low water since. */
bool agent_outbox_full(const agent_outbox *ob);
/* Bytes of SQLite page cache the connection holds now (bounded: OUTBOX_PAGE_CACHE). */
size_t agent_outbox_cache_bytes(const agent_outbox *ob);

/*
 * Meta values kept in the same file (e.g. "journal_applied"). get returns 0
 * when absent. set joins an open transaction, else commits alone.
 */
uint64_t agent_outbox_meta_get(agent_outbox *ob, const char *key);
kt_status agent_outbox_meta_set(agent_outbox *ob, const char *key, uint64_t value, kt_err *err);
/*
 * Text meta values (e.g. the MQTT bridge's "mqtt_recent"). get appends the
 * value to out (nothing when absent or not text) and returns KT_OK, or
 * KT_EDEP / KT_ENOMEM. set joins an open transaction, else commits alone.
 */
kt_status agent_outbox_meta_text_get(agent_outbox *ob, const char *key, kt_buf *out);
kt_status
agent_outbox_meta_text_set(agent_outbox *ob, const char *key, const char *value, kt_err *err);

#endif
