/*
 * agent/latest.h — the latest state of each twin instance at the edge
 * (KTWIN's event-store "latest", with its upsert-merge), in SQLite.
 *
 * One table latest(iface, instance, id, type, source, time_ms, data,
 * stored_ms) keyed by (iface, instance): the merged document of every store
 * event of that instance seen here (svc_merge_json). This is all the agent
 * keeps of the event history: the full history lives in the hub's event
 * store (the store events go there through the outbox).
 *
 * DESIGN: its own SQLite file (latest.path, default cache path + "-latest"),
 * on its own connection: the graph cache holds a write transaction open
 * across loop iterations while a snapshot streams in, and the outbox holds
 * one while the MQTT drain runs, so sharing either file would make these
 * writes wait (SQLITE_BUSY) on the loop. Writes join one lazily opened
 * transaction that is committed by agent_latest_flush, which a uv_check
 * handle runs once per loop iteration (after every callback of the
 * iteration): one commit per iteration however many events it handled.
 * Reads on the same connection see the uncommitted writes. A process killed
 * between an iteration's outbox commit and its latest commit loses those
 * latest-state updates locally (the hub has the events); WAL with
 * synchronous=NORMAL.
 *
 * Thread: loop only. Ownership: owns its connection; records handed to
 * callbacks are borrowed for the call.
 */
#ifndef KT_AGENT_LATEST_H
#define KT_AGENT_LATEST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "kt/err.h"
#include "svc/store.h"

typedef struct agent_latest agent_latest;

/*
 * Open or create the table at path. loop may be NULL (then nothing commits
 * until agent_latest_flush is called: tests). Returns KT_OK; KT_EDEP
 * (sqlite). Thread: loop.
 */
kt_status agent_latest_open(agent_latest **out, const char *path, uv_loop_t *loop, kt_err *err);
/*
 * Commit, close the check handle (run the loop afterwards when a loop was
 * given) and the connection. NULL is a no-op. Thread: loop.
 */
void agent_latest_free(agent_latest *l);

/*
 * Upsert-merge rec into the latest state of (rec->iface, rec->instance):
 * the stored document becomes svc_merge_json(stored, rec->data) (rec->data
 * alone when nothing is stored, or when the stored document is not an
 * object), with rec's id, type, source and time. Returns KT_OK; KT_EINVAL
 * (rec->data not a JSON object, or names missing); KT_EDEP (sqlite).
 */
kt_status agent_latest_put(agent_latest *l, const svc_record *rec, kt_err *err);

/*
 * cb once with the latest state of (iface, instance). KT_OK; KT_ENOTFOUND;
 * KT_EDEP.
 */
kt_status agent_latest_get(agent_latest *l,
                           const char *iface,
                           const char *instance,
                           svc_record_cb cb,
                           void *user,
                           kt_err *err);

/*
 * svc_store_ops.list over the latest states: every instance's latest
 * record matching q (iface / instance / time range), ordered by (time_ms,
 * rowid) as q->desc says, paged with q's cursor. KT_OK or KT_EDEP.
 */
kt_status agent_latest_list(
    agent_latest *l, const svc_query *q, svc_record_cb cb, void *user, svc_page *page, kt_err *err);

/* Commit the open transaction (no-op when none). KT_OK or KT_EDEP. */
kt_status agent_latest_flush(agent_latest *l, kt_err *err);

/* Instances with a latest state (committed and pending). */
uint64_t agent_latest_count(agent_latest *l);

/* Bytes of SQLite page cache the connection holds now (bounded: LATEST_PAGE_CACHE). */
size_t agent_latest_cache_bytes(const agent_latest *l);

#endif
