/*
 * hub/evstore.h — the hub's event store: an interface with backends.
 *
 * What it keeps (ARCHITECTURE.md "Storage", KTWIN.md §4):
 *   - events by (interface, instance, time): every persisted CloudEvent with
 *     its attributes and data, and the commit order (a row id, the cursor);
 *   - the latest state per (interface, instance): KTWIN's upsert-merge
 *     (the merge callback of the opts: the new data merged over the latest;
 *     the merged document is what is stored as the new event, exactly as
 *     KTWIN's POST /api/v1/twin-events does). Retention never deletes it;
 *   - upstream dedupe: (site, incarnation) -> highest committed seq, written
 *     in the SAME transaction as the events, so a batch is committed exactly
 *     once; the caller acks a seq only after hub_evstore_commit() returned;
 *   - downstream queues: per site, commands / virtual events for the site's
 *     agent with a per-site seq that never goes backwards (kept across
 *     restarts and empty queues), bounded by down_max_per_site; also written
 *     in the caller's transaction, so an upstream command forwarded
 *     downstream is queued exactly once. Downstream seqs carry no
 *     incarnation (sync.proto); when an agent says it acked more than this
 *     store ever assigned (a wiped or restored store), hub_evstore_down_rebase
 *     moves the site's seqs past it, so the agent never drops new commands
 *     as duplicates.
 *
 * Writing: hub_evstore_begin, any number of append / down_push / down_ack,
 * hub_evstore_commit (or rollback). Several sessions' batches may share one
 * transaction (group commit, hub/events.c). Reading works inside or outside
 * a transaction and sees the transaction's own writes.
 *
 * Backends: evstore_sqlite.c (hub_evstore_sqlite_open, the default: its own
 * SQLite file in WAL mode). Another backend (a distributed store) implements
 * hub_evstore_vtable and wraps it with hub_evstore_wrap; everything else in
 * the hub uses only the functions below.
 *
 * Thread: loop only (one owner thread). Calls are synchronous and bounded:
 * reads take a limit, retention deletes at most max_rows per call.
 * Ownership: hub_evstore_free releases the backend. Strings and data passed
 * in are borrowed for the call (copied as needed); events handed to a
 * hub_evstore_event_cb are borrowed for that callback only.
 */
#ifndef KT_HUB_EVSTORE_H
#define KT_HUB_EVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

typedef struct hub_evstore hub_evstore;

/*
 * One event. On write: iface, instance, id, type and source are required
 * (non-empty); the others may be NULL / 0. On read every string is non-NULL
 * ("" when absent) and the read-only fields are filled.
 */
typedef struct hub_evstore_event {
    const char *iface;           /* twin interface (from type: ktwin.<kind>.<iface>[.<cmd>]) */
    const char *instance;        /* twin instance (KTWIN: the CloudEvent source) */
    const char *id;              /* CloudEvent id */
    const char *type;            /* CloudEvent type */
    const char *source;          /* CloudEvent source */
    const char *subject;         /* CloudEvent subject, NULL = none */
    const char *datacontenttype; /* NULL = none */
    uint64_t time_ms;            /* CloudEvent time in wall ms (0 = unknown: the commit time) */
    const uint8_t *data;         /* the data (JSON for KTWIN), may be NULL when data_len = 0 */
    size_t data_len;
    uint64_t seq;   /* append with a site: the event's upstream seq (> 0) */
    uint32_t depth; /* downstream queues: the event's loop depth (sync.proto Event.depth) */
    /* read only: */
    uint64_t rowid;     /* commit order, > 0; the cursor of pagination */
    uint64_t stored_ms; /* wall ms of the commit */
    const char *site;   /* origin site, "" for events that arrived at the hub */
} hub_evstore_event;

/* Called for each event read; return non-zero to stop early (not an error). */
typedef int (*hub_evstore_event_cb)(const hub_evstore_event *ev, void *user);

/*
 * Merge new data over the latest state's data (KTWIN upsert-merge): append
 * the merged document to out. Return KT_OK; KT_EINVAL when either side is not
 * a JSON object (the store then keeps the new data unmerged); anything else
 * fails the append. Thread: loop.
 */
typedef kt_status (*hub_evstore_merge_cb)(kt_buf *out,
                                          const uint8_t *latest,
                                          size_t latest_len,
                                          const uint8_t *next,
                                          size_t next_len,
                                          kt_err *err,
                                          void *user);

/* Result of one append. */
typedef struct hub_evstore_append_result {
    size_t n_committed;  /* events written (pending the transaction's commit) */
    size_t n_duplicates; /* events with seq <= the (site, incarnation)'s highest: skipped */
    uint64_t
        acked_seq; /* the (site, incarnation)'s highest seq after this append, 0 without site */
} hub_evstore_append_result;

/* Time-range query with pagination (see hub_evstore_query()). */
typedef struct hub_evstore_filter {
    const char *iface;    /* NULL = all events (then instance must be NULL too) */
    const char *instance; /* required with iface */
    uint64_t from_ms;     /* event time >= from_ms (0 = no lower bound) */
    uint64_t to_ms;       /* event time < to_ms (0 = no upper bound) */
    bool desc;            /* newest first */
    size_t limit;         /* 1..HUB_EVSTORE_MAX_LIMIT; 0 = HUB_EVSTORE_DEFAULT_LIMIT */
    /* continue after this cursor (from the previous page's next), both 0 = from the start */
    uint64_t after_time_ms;
    uint64_t after_rowid;
} hub_evstore_filter;

#define HUB_EVSTORE_DEFAULT_LIMIT 100
#define HUB_EVSTORE_MAX_LIMIT     1000

/*
 * A page: more = another page exists; then (next_time_ms, next_rowid) is the
 * cursor for it (the last returned event's event time and rowid). Order is
 * (event time, rowid), ascending or descending, for one instance and for
 * all events alike (both are index scans, bounded by the limit).
 */
typedef struct hub_evstore_page {
    size_t n;
    bool more;
    uint64_t next_time_ms;
    uint64_t next_rowid;
} hub_evstore_page;

/* Size and count of the event history (latest state and queues excluded). */
typedef struct hub_evstore_stats {
    uint64_t rows;
    uint64_t bytes; /* sum of the stored events' attribute and data lengths */
} hub_evstore_stats;

/* ---------------------------------------------------------------- backend */

/* A backend implements these; see the public functions below for each contract. */
typedef struct hub_evstore_vtable {
    const char *name; /* "sqlite" */
    void (*free)(void *impl);
    kt_status (*begin)(void *impl, kt_err *err);
    kt_status (*commit)(void *impl, kt_err *err);
    void (*rollback)(void *impl);
    kt_status (*append)(void *impl,
                        const char *site,
                        const char *incarnation,
                        const hub_evstore_event *evs,
                        size_t n,
                        hub_evstore_append_result *res,
                        kt_err *err);
    kt_status (*mark)(
        void *impl, const char *site, const char *incarnation, uint64_t seq, kt_err *err);
    kt_status (*savepoint)(void *impl, kt_err *err);
    kt_status (*release)(void *impl, bool keep, kt_err *err);
    kt_status (*acked_seq)(
        void *impl, const char *site, const char *incarnation, uint64_t *out, kt_err *err);
    kt_status (*latest)(void *impl,
                        const char *iface,
                        const char *instance,
                        hub_evstore_event_cb cb,
                        void *user,
                        kt_err *err);
    kt_status (*query)(void *impl,
                       const hub_evstore_filter *q,
                       hub_evstore_event_cb cb,
                       void *user,
                       hub_evstore_page *page,
                       kt_err *err);
    kt_status (*retain)(void *impl,
                        uint64_t older_than_ms,
                        uint64_t max_bytes,
                        size_t max_rows,
                        size_t *deleted_out,
                        bool *more_out,
                        kt_err *err);
    void (*stats)(void *impl, hub_evstore_stats *out);
    kt_status (*down_push)(
        void *impl, const char *site, const hub_evstore_event *ev, uint64_t *seq_out, kt_err *err);
    kt_status (*down_read)(void *impl,
                           const char *site,
                           uint64_t after_seq,
                           size_t max_n,
                           hub_evstore_event_cb cb,
                           void *user,
                           kt_err *err);
    kt_status (*down_ack)(void *impl, const char *site, uint64_t seq, kt_err *err);
    uint64_t (*down_count)(void *impl, const char *site);
    kt_status (*down_rebase)(void *impl, const char *site, uint64_t agent_acked_seq, kt_err *err);
} hub_evstore_vtable;

/* Wrap a backend (impl owned by the result; vt borrowed, static). Aborts on OOM. */
hub_evstore *hub_evstore_wrap(const hub_evstore_vtable *vt, void *impl);

/* ---------------------------------------------------------------- SQLite */

typedef struct hub_evstore_sqlite_opts {
    const char *path;           /* the database file (created); required */
    hub_evstore_merge_cb merge; /* latest-state merge; NULL = the new data replaces */
    void *merge_user;
    uint64_t down_max_per_site; /* downstream queue cap per site; 0 = 10000 */
} hub_evstore_sqlite_opts;

/*
 * Open (create) the SQLite event store: WAL, synchronous=NORMAL, schema
 * version in PRAGMA user_version. Returns KT_OK with *out owned by the
 * caller; KT_EINVAL without a path; KT_EDEP (dep "sqlite") when SQLite
 * refuses (err names the file); KT_EIO when the schema is newer than this
 * binary. Thread: loop.
 */
kt_status
hub_evstore_sqlite_open(hub_evstore **out, const hub_evstore_sqlite_opts *opts, kt_err *err);

/* ---------------------------------------------------------------- API */

/* Close and free (an open transaction is rolled back). NULL is a no-op. */
void hub_evstore_free(hub_evstore *s);
/* Backend name ("sqlite"). */
const char *hub_evstore_backend(const hub_evstore *s);

/* Start a transaction. KT_EINVAL when one is open; KT_EDEP from the backend. */
kt_status hub_evstore_begin(hub_evstore *s, kt_err *err);
/*
 * Make every write since begin durable (for SQLite: against a process
 * crash; synchronous=NORMAL may lose the last commits on power loss). On
 * failure the transaction is rolled back: nothing of it was written.
 * KT_EINVAL when none is open; KT_EDEP.
 */
kt_status hub_evstore_commit(hub_evstore *s, kt_err *err);
/* Drop every write since begin. No-op without a transaction. */
void hub_evstore_rollback(hub_evstore *s);

/*
 * Inside a transaction: append n events. With site (and incarnation, both
 * non-empty) the events are an upstream batch of that agent incarnation:
 * each evs[i].seq must be > 0 and increasing; events whose seq is <= the
 * highest committed (or appended earlier in this transaction) seq of
 * (site, incarnation) are duplicates and skipped; the highest seq is
 * updated. With site NULL the events arrived at the hub (HTTP) and are not
 * deduped. Every written event is upsert-merged into the latest state of
 * (iface, instance) and stored with the merged data (KTWIN semantics).
 * res may be NULL. Returns KT_OK; KT_EINVAL outside a transaction, for a
 * missing required attribute or a seq of 0 / out of order (err names the
 * event index; nothing of this call is written then: the caller should
 * rollback or drop the batch); KT_EDEP from the backend (roll back).
 */
kt_status hub_evstore_append(hub_evstore *s,
                             const char *site,
                             const char *incarnation,
                             const hub_evstore_event *evs,
                             size_t n,
                             hub_evstore_append_result *res,
                             kt_err *err);

/*
 * Inside a transaction: raise the (site, incarnation)'s highest seq to seq
 * (no-op when it is already there or above), for upstream events that were
 * routed elsewhere than the store (commands queued downstream, events for
 * cloud services, dropped events), so a resend skips them too. KT_OK;
 * KT_EINVAL outside a transaction or without site/incarnation; KT_EDEP.
 */
kt_status hub_evstore_mark(
    hub_evstore *s, const char *site, const char *incarnation, uint64_t seq, kt_err *err);

/*
 * Inside a transaction: hub_evstore_savepoint starts a nested unit (one
 * upstream batch of a group commit); hub_evstore_release(keep = true)
 * keeps its writes in the transaction, keep = false drops them (the rest of
 * the transaction stays). Not nested. KT_EINVAL for misuse; KT_EDEP.
 */
kt_status hub_evstore_savepoint(hub_evstore *s, kt_err *err);
kt_status hub_evstore_release(hub_evstore *s, bool keep, kt_err *err);

/*
 * The highest committed upstream seq of (site, incarnation), 0 when none
 * (for a Welcome or a restart check). KT_EDEP.
 */
kt_status hub_evstore_acked_seq(
    hub_evstore *s, const char *site, const char *incarnation, uint64_t *out, kt_err *err);

/*
 * The latest state of (iface, instance): cb once with the latest event (its
 * data is the merged document). KT_OK; KT_ENOTFOUND when the instance has
 * none; KT_EDEP.
 */
kt_status hub_evstore_latest(hub_evstore *s,
                             const char *iface,
                             const char *instance,
                             hub_evstore_event_cb cb,
                             void *user,
                             kt_err *err);

/*
 * One page of events matching q, in order, to cb (at most q->limit); page
 * says whether more exist and the cursor. An empty result is KT_OK with
 * page->n = 0. KT_EINVAL for a limit over HUB_EVSTORE_MAX_LIMIT, or for
 * iface without instance or the reverse; KT_EDEP.
 */
kt_status hub_evstore_query(hub_evstore *s,
                            const hub_evstore_filter *q,
                            hub_evstore_event_cb cb,
                            void *user,
                            hub_evstore_page *page,
                            kt_err *err);

/*
 * Retention, one bounded step (outside a transaction: it commits its own):
 * delete at most max_rows of the oldest events (commit order) that are
 * older than older_than_ms (their commit time, wall ms; 0 = no age limit)
 * or that make the history exceed max_bytes (0 = no size limit).
 * *deleted_out = rows deleted; *more_out = more rows qualify (call again
 * later, e.g. on the next timer tick). Latest state is never deleted.
 * KT_EINVAL inside a transaction; KT_EDEP.
 */
kt_status hub_evstore_retain(hub_evstore *s,
                             uint64_t older_than_ms,
                             uint64_t max_bytes,
                             size_t max_rows,
                             size_t *deleted_out,
                             bool *more_out,
                             kt_err *err);

/* Rows and bytes of the event history (cached, cheap). */
void hub_evstore_stats_get(hub_evstore *s, hub_evstore_stats *out);

/*
 * Inside a transaction: queue ev for site's agent with the next downstream
 * seq (*seq_out, may be NULL). KT_EAGAIN when the site's queue holds
 * down_max_per_site entries (nothing queued: the caller reports it);
 * KT_EINVAL outside a transaction or for a missing attribute; KT_EDEP.
 */
kt_status hub_evstore_down_push(
    hub_evstore *s, const char *site, const hub_evstore_event *ev, uint64_t *seq_out, kt_err *err);

/*
 * Queued entries of site with seq > after_seq, in seq order, at most max_n,
 * to cb (ev->seq is the downstream seq). KT_OK; KT_EDEP.
 */
kt_status hub_evstore_down_read(hub_evstore *s,
                                const char *site,
                                uint64_t after_seq,
                                size_t max_n,
                                hub_evstore_event_cb cb,
                                void *user,
                                kt_err *err);

/*
 * The site's agent committed everything up to seq: delete those entries.
 * Works inside or outside a transaction (outside: its own). KT_OK; KT_EDEP.
 */
kt_status hub_evstore_down_ack(hub_evstore *s, const char *site, uint64_t seq, kt_err *err);

/* Entries queued for site (0 when none or on a backend error). */
uint64_t hub_evstore_down_count(hub_evstore *s, const char *site);

/*
 * The site's agent reports agent_acked_seq as its last acked downstream seq
 * (Hello). When the site's queue does not continue right after it (the
 * agent is ahead of everything this store assigned: the store was wiped or
 * restored from a backup; or behind the oldest queued entry: the agent's
 * store was wiped), renumber the site's queued entries, keeping their
 * order, so the oldest gets agent_acked_seq + 1, and move the counter along
 * (an empty queue: the next entry gets agent_acked_seq + 1). Entries at or
 * below agent_acked_seq are NOT deleted here (hub_evstore_down_ack).
 * Limitation: a wiped store whose new seqs overlap what the agent acked
 * before cannot be told from a normal reconnect (downstream seqs carry no
 * incarnation, sync.proto); those entries count as delivered.
 * Outside a transaction (commits its own). KT_OK; KT_EINVAL inside one; KT_EDEP.
 */
kt_status
hub_evstore_down_rebase(hub_evstore *s, const char *site, uint64_t agent_acked_seq, kt_err *err);

#endif
