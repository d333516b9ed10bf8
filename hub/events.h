/*
 * hub/events.h — the hub's event plane: upstream batches from the agents'
 * sync sessions into the event store (then acked), routing, per-site
 * downstream queues, the KTWIN event-store HTTP API and broker ingress.
 *
 * Upstream (agent -> hub): a session hands each EventBatch to
 * hub_events_up_batch(). The batch is copied and queued; at the end of the
 * loop turn (a uv_check handle) every queued batch of every session is
 * committed in ONE transaction of the event store (group commit): dedupe by
 * (site, incarnation, seq), events stored with KTWIN's upsert-merge into the
 * latest state, commands / virtual events for instances hosted on another
 * site queued downstream in the same transaction, then each session's ops
 * ack_up(seq) is called (only after the commit returned). Events routed to
 * cloud services are dispatched after the commit. A commit failure acks
 * nothing (the agent resends after reconnect; dedupe keeps it exactly once).
 *
 * Downstream (hub -> agent): per-site durable queue in the event store;
 * hub_events_down_next() gives the session the next batch after a seq,
 * hub_events_down_acked() deletes what the agent committed; ops down_ready()
 * tells a session that new entries were queued for its site. Order per site
 * is seq order, so commands to one target arrive in order. A full queue
 * (events.down_max_per_site) refuses the event: log HUB-DOWN-FULL, metric
 * ktwin_hub_downstream_full_total{site}, 503 for HTTP ingress.
 *
 * HTTP (on the hub's server): POST / (broker ingress, CloudEvents binary or
 * structured, 202), GET /api/v1/twin-events[/{iface}/{inst}[/latest]] with
 * from/to/limit/cursor/order query parameters, POST /api/v1/twin-events
 * (upsert-merge, 202). docs/protocol.md describes them.
 *
 * Retention: a uv_timer runs hub_evstore_retain in bounded steps
 * (events.retention_*), never one long delete.
 *
 * Metrics: ktwin_hub_events_committed_total, ktwin_hub_events_duplicates_total,
 * ktwin_hub_event_batches_total, ktwin_hub_evstore_rows, ktwin_hub_evstore_bytes,
 * ktwin_hub_retention_deleted_total, ktwin_hub_downstream_queued{site},
 * ktwin_hub_downstream_full_total{site}, ktwin_hub_events_rejected_total{reason},
 * ktwin_hub_evstore_commit_failures_total.
 *
 * LIFECYCLE (hub/main.c): hub_events_new() after the graph, metrics and the
 * HTTP server exist and before kt_http_server_start(); hub_fed uses it for
 * its sessions. Shutdown: kt_net_free (sessions close, they call
 * hub_events_session_close), hub_fed_free, then hub_events_free (commits
 * what is queued, closes its handles), then run the loop dry.
 *
 * Thread: loop only. Ownership: hub_events owns its event store and
 * sessions' event-plane state; it borrows loop, srv, graph and metrics.
 */
#ifndef KT_HUB_EVENTS_H
#define KT_HUB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hub/config.h"
#include "hub/evstore.h"
#include "hub/graph.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "sync/msg.h"

typedef struct hub_events hub_events;
typedef struct hub_events_session hub_events_session;

/*
 * Where the hub routes events: the site hosting an instance, the placement
 * of an interface. Implemented by hub_fed (hub_events_set_placement); until
 * set, everything counts as placed in the cloud and nothing goes downstream.
 */
typedef struct hub_events_placement_ops {
    /* Site hosting instance (NULL = cloud / unknown). Borrowed until the next graph change. */
    const char *(*instance_site)(const char *instance, void *user);
    /* true when iface is placed in the cloud (its service runs at the hub). */
    bool (*iface_in_cloud)(const char *iface, void *user);
} hub_events_placement_ops;

/* A sync session's side of the event plane (implemented by hub/fed.c). */
typedef struct hub_events_session_ops {
    /* Everything up to seq of the session's upstream stream is committed: send Ack{UP, seq}. */
    void (*ack_up)(uint64_t seq, void *user);
    /* New downstream entries were queued for the session's site (ask down_next). Optional. */
    void (*down_ready)(void *user);
} hub_events_session_ops;

/*
 * Create the event plane: open the event store (<data_dir>/events.db unless
 * events.store_path is set), register the metrics and, when srv is not
 * NULL, the HTTP routes; start the retention timer.
 * Returns KT_OK; KT_EDEP / KT_EIO from the store; KT_EINVAL from route
 * registration. Thread: loop.
 */
kt_status hub_events_new(hub_events **out,
                         uv_loop_t *loop,
                         kt_http_server *srv,
                         hub_graph *graph,
                         const hub_cfg *cfg,
                         kt_metrics *metrics,
                         kt_err *err);

/* Commit what is queued, close the store and handles (run the loop afterwards). NULL ok. */
void hub_events_free(hub_events *ev);

/* The event store (borrowed; for tests and the API). */
hub_evstore *hub_events_store(hub_events *ev);

/* Install the placement lookups (ops copied, user borrowed). NULL ops = everything in the cloud. */
void hub_events_set_placement(hub_events *ev, const hub_events_placement_ops *ops, void *user);

/*
 * A welcomed session of site starts using the event plane. ops copied, user
 * borrowed until hub_events_session_close. agent_acked_down_seq: the
 * Hello's last acked downstream seq (0 = none), used to rebase a wiped
 * store's seqs (hub_evstore_down_rebase). Aborts on OOM. Thread: loop.
 */
hub_events_session *hub_events_session_open(hub_events *ev,
                                            const char *site,
                                            uint64_t agent_acked_down_seq,
                                            const hub_events_session_ops *ops,
                                            void *user);
/* The session ended: its pending acks are dropped (the data still commits). NULL ok. */
void hub_events_session_close(hub_events_session *es);

/*
 * An upstream EventBatch (b deep-copied). Committed with the others of this
 * loop turn, then ack_up(highest committed seq) is called. Returns KT_OK;
 * KT_EINVAL for a batch that is not STREAM_UP or has no incarnation (the
 * caller closes the session: protocol error). Events that cannot be routed
 * (unknown type form) are still stored when they have an interface, else
 * counted in ktwin_hub_events_rejected_total{reason} and skipped (their seq
 * is still acked: they are never going to become valid).
 */
kt_status hub_events_up_batch(hub_events_session *es, const sync_event_batch *b, kt_err *err);

/*
 * The next downstream batch for the session's site: entries with seq >
 * after_seq, at most max_events and about max_bytes of data (at least one
 * entry). *out = NULL when none are queued. The batch is borrowed until the
 * next call for this session or its close. KT_OK; KT_EDEP.
 */
kt_status hub_events_down_next(hub_events_session *es,
                               uint64_t after_seq,
                               size_t max_events,
                               size_t max_bytes,
                               const sync_event_batch **out,
                               kt_err *err);

/* The agent committed downstream entries up to seq: delete them. KT_OK; KT_EDEP. */
kt_status hub_events_down_acked(hub_events_session *es, uint64_t seq, kt_err *err);

/*
 * An event arriving at the hub (broker ingress POST / or another hub
 * module): route it exactly like an upstream event of the cloud (store,
 * downstream, cloud services). Committed at the end of the loop turn; cb
 * (may be NULL) is called with the result after the commit: KT_OK, KT_EAGAIN
 * (a downstream queue was full), or the store error. ev is deep-copied.
 */
typedef void (*hub_events_done_cb)(kt_status st, const char *msg, void *user);
kt_status hub_events_ingest(
    hub_events *ev, const sync_event *e, hub_events_done_cb cb, void *user, kt_err *err);

/* Run queued commits now (tests; normally the uv_check does it). */
void hub_events_flush(hub_events *ev);

#endif
