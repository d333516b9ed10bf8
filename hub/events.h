/*
 * hub/events.h — the hub's event plane: upstream batches from the agents'
 * sync sessions into the event store (then acked), routing
 * (model/route.h with the hub as "where"), per-site downstream queues,
 * cloud services, the KTWIN event-store HTTP API and broker ingress.
 *
 * UPSTREAM (agent -> hub). A session hands each new part of an EventBatch
 * to hub_events_up_batch() (sync_server_ops.on_up_batch). The events are
 * copied and queued; at the end of the loop turn (a uv_check handle) every
 * queued batch of every session is processed in ONE event-store
 * transaction (group commit, at most events.commit_max_events events; the
 * rest goes in the next turn): per batch, in a savepoint, events at or below
 * the (site, incarnation)'s committed seq are skipped (dedupe survives
 * reconnects and restarts: it is in the store), each new event is routed:
 *   STORE          appended to the event store (upsert-merged latest state),
 *   DOWNSTREAM(Z)  queued for site Z's agent (same transaction: exactly once),
 *   SERVICE_CLOUD  handed to the cloud service after the commit,
 *   DROP           counted in ktwin_hub_events_dropped_total{reason}, logged
 *                  at debug (HUB-EVENT-DROP);
 * and the (site, incarnation) mark moves to the batch's last seq. After the
 * COMMIT returned, each session's ops.ack_up(last seq) is called. If the
 * commit fails, nothing is acked and ops.up_failed() tells each session
 * (fed closes it; the agent resends after reconnecting). A batch whose
 * processing fails alone is rolled back to its savepoint and its session
 * gets up_failed(); the others commit.
 *
 * DOWNSTREAM (hub -> agent). Per-site durable queue in the event store,
 * in seq order (so commands to one target arrive in order).
 * hub_events_down_next() serves sync_server_ops.down_next,
 * hub_events_down_acked() deletes what the agent committed, and
 * ops.down_ready() tells the site's session that entries were queued
 * (fed calls sync_server_kick_down). A full queue (events.down_max_per_site)
 * is BACKPRESSURE, never a loss: log HUB-DOWN-FULL (rate-limited), metric
 * ktwin_hub_downstream_full_total{site}; the broker ingress answers 503;
 * an upstream batch that needs the full queue is rolled back and deferred
 * with every later batch of its session (not acked, retried in order when
 * the agent acks downstream entries, a cloud call completes, or every
 * 200 ms): ktwin_hub_upstream_deferred_total{site}, HUB-BACKPRESSURE. The
 * agent's sync window then fills and its outbox keeps the rest.
 *
 * CLOUD SERVICES: the hub's `services` (svc/service.h syntax): plugins run
 * in-process (svc_plugin_host), HTTP services get the event POSTed
 * (svc_caller). Delivery is durable and AT-LEAST-ONCE: an event bound for a
 * cloud service is queued in the event store ("#cloud/<iface>", same
 * transaction as its batch, before the ack, bounded by
 * events.down_max_per_site like a site queue) and deleted only after the
 * call succeeded or was dead-lettered (final failure after the retries:
 * ktwin_hub_cloud_dead_letters_total{iface}, HUB-CLOUD-DEAD); a restarted
 * hub resumes what is queued (HUB-CLOUD-RESUME), so a crash mid-call
 * delivers that event again. Events they emit (plugin emits, HTTP replies,
 * POSTs to the hub's broker ingress) are routed like any event that arrives
 * at the hub, one loop depth deeper (services.max_depth; HTTP services get
 * ce-ktwindepth and the ingress reads it back); deeper ones are dropped,
 * reason "depth".
 *
 * HTTP (svc/api.h on the hub's server): POST / (broker ingress),
 * GET /api/v1/twin-events[/{iface}/{inst}[/latest]] (paged: from, to,
 * limit, order, cursor), POST /api/v1/twin-events (upsert-merge).
 *
 * RETENTION: a uv_timer every events.retention_interval runs one bounded
 * hub_evstore_retain step (events.retention_batch_rows rows; again 10 ms
 * later while more qualify), never one long delete.
 *
 * METRICS: ktwin_hub_events_committed_total, ktwin_hub_events_duplicates_total,
 * ktwin_hub_event_batches_total, ktwin_hub_evstore_rows, ktwin_hub_evstore_bytes,
 * ktwin_hub_retention_deleted_total, ktwin_hub_downstream_queued{site},
 * ktwin_hub_downstream_full_total{site}, ktwin_hub_events_dropped_total{reason},
 * ktwin_hub_evstore_commit_failures_total, ktwin_hub_cloud_dispatch_total{result},
 * ktwin_hub_upstream_deferred_total{site}, ktwin_hub_cloud_dead_letters_total{iface},
 * ktwin_hub_cloud_queued{iface} (events in a cloud service's durable queue).
 *
 * LIFECYCLE (hub/main.c): hub_events_new() after the graph, metrics and the
 * HTTP server exist and before kt_http_server_start(); then
 * hub_fed_set_events(). Shutdown: kt_net_free (sessions close and call
 * hub_events_session_close), hub_fed_free (detaches the placement), then
 * hub_events_free (commits what is queued, closes its handles), then run the
 * loop dry.
 *
 * Thread: loop only. Ownership: hub_events owns its event store, svc
 * objects and sessions' event-plane state; it borrows loop, srv, graph,
 * metrics and the placement getter's user.
 */
#ifndef KT_HUB_EVENTS_H
#define KT_HUB_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hub/config.h"
#include "hub/evstore.h"
#include "hub/graph.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "model/event.h"
#include "model/placement.h"
#include "sync/msg.h"

typedef struct hub_events hub_events;
typedef struct hub_events_session hub_events_session;

/* The current placement (borrowed for the call), or NULL when there is none. */
typedef const model_placement *(*hub_events_placement_cb)(void *user);

/* A sync session's side of the event plane (implemented by hub/fed.c). */
typedef struct hub_events_session_ops {
    /* Every upstream seq <= seq of the session's incarnation is committed: sync_server_ack_up. */
    void (*ack_up)(uint64_t seq, void *user);
    /* A batch of this session could not be committed (err says why): close the session. */
    void (*up_failed)(const kt_err *err, void *user);
    /* New downstream entries were queued for the session's site: sync_server_kick_down. */
    void (*down_ready)(void *user);
} hub_events_session_ops;

/*
 * Create the event plane from cfg (events.*, services, data_dir): open the
 * event store (events.store_path, default <data_dir>/events.db), load the
 * cloud services, register the metrics and, when srv is not NULL, the KTWIN
 * HTTP routes; subscribe to graph changes; start the retention timer.
 * Returns KT_OK; KT_EDEP / KT_EIO from the store; KT_EINVAL for a bad
 * `services` entry (err names it) or a route already taken.
 * Thread: loop.
 */
kt_status hub_events_new(hub_events **out,
                         uv_loop_t *loop,
                         kt_http_server *srv,
                         hub_graph *graph,
                         const hub_cfg *cfg,
                         kt_metrics *metrics,
                         kt_err *err);

/*
 * Process what is queued, close the store, free the svc objects, close the
 * handles (run the loop afterwards). Sessions must be closed already. NULL ok.
 */
void hub_events_free(hub_events *ev);

/* The event store (borrowed; tests and tools). */
hub_evstore *hub_events_store(hub_events *ev);

/* Install the placement getter (fed); NULL = everything counts as placed in the cloud. */
void hub_events_set_placement(hub_events *ev, hub_events_placement_cb get, void *user);

/*
 * sync_server_ops.up_committed_seq: the highest upstream seq committed for
 * (site, incarnation), 0 when none. KT_OK; KT_EDEP.
 */
kt_status hub_events_up_committed(
    hub_events *ev, const char *site, const char *incarnation, uint64_t *seq_out, kt_err *err);

/*
 * A welcomed session of site starts using the event plane (on_welcome).
 * agent_acked_down_seq: the Hello's last acked downstream seq (0 = none):
 * entries up to it are deleted, and when the site's queue does not continue
 * right after it (a wiped store on either side) the queue is renumbered to
 * start at agent_acked_down_seq + 1 (hub_evstore_down_rebase). ops copied,
 * user borrowed until hub_events_session_close. Aborts on OOM. Thread: loop.
 */
hub_events_session *hub_events_session_open(hub_events *ev,
                                            const char *site,
                                            uint64_t agent_acked_down_seq,
                                            const hub_events_session_ops *ops,
                                            void *user);
/*
 * The session ended (on_gone or free): no op of it is called any more; its
 * queued batches still commit (unacked: the agent resends, dedupe drops
 * them). Safe inside any of its ops. NULL ok.
 */
void hub_events_session_close(hub_events_session *es);

/*
 * Part of a message from the session's agent arrived and more of it is on
 * the way (kt_ws_opts.on_progress). While a bulk of upstream events is
 * queued, the group commit waits (bounded) for the batch in that message,
 * so a drained backlog commits in bigger transactions (events.c,
 * Coalescing). Cleared by its next hub_events_up_batch. NULL ok. Thread: loop.
 */
void hub_events_session_note_rx(hub_events_session *es);

/*
 * sync_server_ops.on_up_batch: new upstream events first_seq .. first_seq
 * + n - 1 of the session's (site, incarnation), copied and queued for the
 * group commit; ack_up follows the commit. KT_OK; KT_EINVAL when n == 0 or
 * the incarnation is empty (the session ends).
 */
kt_status hub_events_up_batch(hub_events_session *es,
                              const char *incarnation,
                              uint64_t first_seq,
                              const sync_event *events,
                              size_t n,
                              kt_err *err);

/*
 * sync_server_ops.down_next: queued entries of the session's site from
 * from_seq on (consecutive), at most max_events, stopping before the entry
 * that would take the data sum over max_bytes (at least one). *n_out = 0
 * when none is queued. Borrowed until the next call for this session or its
 * close. KT_OK; KT_EDEP; KT_EINTERNAL when the queue does not continue at
 * from_seq (a hub bug: the session ends).
 */
kt_status hub_events_down_next(hub_events_session *es,
                               const sync_event **events_out,
                               size_t *n_out,
                               uint64_t from_seq,
                               size_t max_events,
                               size_t max_bytes,
                               kt_err *err);

/* sync_server_ops.down_acked: the agent committed entries up to seq: delete them. */
kt_status hub_events_down_acked(hub_events_session *es, uint64_t seq, kt_err *err);

/*
 * An event that arrived at the hub (broker ingress, a cloud service's
 * emit): routed like an upstream event with origin LOCAL, in the next group
 * commit. ev is copied. Returns KT_OK (queued); KT_EAGAIN when a downstream
 * queue it must go to is full (nothing queued); KT_ENOTFOUND for an unknown
 * interface or instance; KT_EINVAL when the router refuses it otherwise
 * (err says why).
 */
kt_status hub_events_ingest(hub_events *ev, const model_event *e, kt_err *err);

/*
 * hub_events_ingest for an event of loop depth `depth` (an emit of a cloud
 * service handling an event of depth depth - 1; the broker ingress passes
 * ktwindepth + 1, svc/api.h). Over services.max_depth the event is dropped
 * (ktwin_hub_events_dropped_total{reason="depth"}) and KT_OK is returned.
 */
kt_status
hub_events_ingest_depth(hub_events *ev, const model_event *e, uint32_t depth, kt_err *err);

/* Process the queued batches now (tests; normally the uv_check does it). */
void hub_events_flush(hub_events *ev);

#endif
