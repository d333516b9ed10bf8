/*
 * sync/server.h — the HUB side of one hub <-> agent sync session.
 *
 * One sync_server per WebSocket connection: create it when the connection
 * opens, feed it every binary message, and free it after the close. It does
 * no I/O: bytes out, time, authentication, admission and the graph (plan,
 * snapshot iterator, delta journal, placement) come through sync_server_ops.
 *
 * Flow (docs/protocol.md, "Hub–agent sync"):
 *   Hello -> checks in this order, each failure sends Reject and ends the
 *   session (on_message returns KT_ECLOSED):
 *     versions: highest common of [hello.proto_min, proto_max] and
 *               [opts.proto_min, opts.proto_max], else Reject{VERSION};
 *     auth():   UNKNOWN_SITE / BAD_TOKEN -> Reject{UNAUTHENTICATED};
 *     admit():  non-zero -> Reject{BUSY, retry_after_ms};
 *     plan():   mode + hub revision R.
 *   -> Welcome{proto, hub_id, R, mode, heartbeat_ms}, then on_welcome(),
 *   then the initial sync:
 *     SNAPSHOT:   snapshot_next() batches packed into SnapshotChunks of at
 *                 most opts.chunk_bytes (an object larger than that gets a
 *                 chunk of its own), revision R, index 0.., last on the final
 *                 one (an empty graph is one empty chunk with last);
 *     DELTA:      delta_next(from) from the agent's revision until it
 *                 returns none;
 *     UP_TO_DATE: nothing.
 *   -> PlacementUpdate from placement().
 *   Live: sync_server_push_delta()/push_placement() queue changes in order;
 *   they are sent once the initial sync is out, in push order. Pushed deltas
 *   already covered by what was sent (to_revision <= sent revision) are
 *   dropped; a gap (from_revision > sent revision) is filled from
 *   delta_next(); from_revision < sent revision < to_revision is a hub bug
 *   (KT_EINTERNAL).
 *   Ack{GRAPH|PLACEMENT, seq} from the agent updates the acked revisions
 *   (seq beyond what was sent is KT_EPROTO) and calls on_ack(); Ack{DOWN}
 *   and Ack{UP}: see "Event streams" below. CapacityReport -> on_capacity().
 *   Heartbeats: sent every heartbeat_ms after Welcome; an agent silent for
 *   3 intervals (any message counts), or no Hello within
 *   handshake_timeout_ms, makes tick() return KT_ETIMEDOUT.
 *
 * Event streams (when the event ops are set; docs/protocol.md "Event streams"):
 *   At Hello (after plan) the server asks up_committed_seq(site,
 *   incarnation) for the highest upstream seq the hub committed for that
 *   incarnation, and starts downstream at hello.last_acked_down_seq + 1, or
 *   at down_first_seq() when that is higher (the seqs in between are gone:
 *   a wiped agent store); Welcome carries window_bytes and that
 *   down_next_seq.
 *   Upstream: EventBatch{UP} must carry the Hello's incarnation and, within
 *   a session, continue where the previous batch ended (the first one starts
 *   at hello.first_unacked_up_seq when given); else KT_EPROTO. Events at or
 *   below the highest seq already received (committed before, or handed to
 *   the hub on this session) are dropped; if the whole batch is at or below
 *   the committed seq, Ack{UP, min(last, committed)} is sent again. The new
 *   part goes to on_up_batch(); the hub commits it (now or batched with
 *   others) and then calls sync_server_ack_up(s, seq), which sends
 *   Ack{UP, seq}. A first batch above committed + 1 means the hub lost
 *   events the agent had already seen acked: accepted, counted in
 *   stats.up_gaps. Without the up ops an UP batch is KT_EPROTO.
 *   Downstream: once the initial sync is out (LIVE), down_next() batches go
 *   out as EventBatch{DOWN} while the unacked EventBatch bytes stay within
 *   opts.window_bytes (one batch may exceed it when nothing is in flight);
 *   more is read after each Ack{DOWN} and on sync_server_kick_down().
 *   Ack{DOWN, seq} beyond what was sent is KT_EPROTO; else down_acked(seq)
 *   (the hub may drop rows <= seq) and on_ack(). Ack{UP} from the agent is
 *   KT_EPROTO. Output order when several are due: a pending Ack{UP} first,
 *   then snapshot/catch-up/pushes, then DOWN batches.
 *
 * Flow control: send() may return KT_EAGAIN, meaning "not taken, my queue is
 * full". The session keeps that message and generates nothing more until
 * the caller calls sync_server_writable() (when the socket drained, e.g.
 * LWS_CALLBACK_SERVER_WRITEABLE). So a 10k-object snapshot never sits in
 * memory as a whole: at most one chunk is encoded ahead of the transport.
 * The ack-based window applies to event batches only (the agent acks a
 * snapshot only on commit, so a window on it could deadlock).
 *
 * Return contract of on_message / tick / writable / push_* / reject:
 *   KT_OK        keep going.
 *   KT_ECLOSED   a Reject was sent (or queued): close the connection once it
 *                is written.
 *   KT_EPROTO / KT_ETOOBIG  the agent sent something malformed or unexpected;
 *                a Reject{PROTOCOL} was queued when possible: close.
 *   KT_ETIMEDOUT (tick only) the agent is gone: close.
 *   anything else from an op or send (propagated unchanged): close.
 * After a non-OK status the session is DONE and ignores further input.
 *
 * Thread: loop only. Ops are called synchronously and must not call back
 * into the same session (except that push_* may be called from anywhere on
 * the loop thread outside an op, and sync_server_ack_up may also be called
 * from inside on_up_batch).
 */
#ifndef KT_SYNC_SERVER_H
#define KT_SYNC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "sync/msg.h"

typedef struct sync_server sync_server;

typedef enum sync_auth_result {
    SYNC_AUTH_OK = 0,
    SYNC_AUTH_UNKNOWN_SITE = 1,
    SYNC_AUTH_BAD_TOKEN = 2
} sync_auth_result;

/*
 * Implemented by the hub. Required: send, now_ms, wall_ms, auth, plan,
 * snapshot_next, delta_next, placement. Optional (NULL ok): admit,
 * snapshot_done, on_welcome, on_ack, on_capacity, on_gone.
 * Everything passed in is borrowed for the call; everything an op returns
 * through a const pointer must stay valid until the next call of the same op
 * (or snapshot_done / the session's free).
 */
typedef struct sync_server_ops {
    /* Queue one whole binary message (copy it). KT_EAGAIN = not taken, full; see file comment. */
    kt_status (*send)(const uint8_t *buf, size_t len, void *user);
    /* Monotonic milliseconds. */
    uint64_t (*now_ms)(void *user);
    /* Wall-clock ms for Heartbeat.sent_ms. */
    uint64_t (*wall_ms)(void *user);
    /* Check the agent's identity (constant-time compare is the hub's job). */
    sync_auth_result (*auth)(const char *site, const char *token, void *user);
    /* Admission (e.g. a shared sync_admit): 0 = admitted, else retry_after_ms. */
    uint32_t (*admit)(const char *site, void *user);
    /*
     * Decide how to bring the agent described by hello up to date:
     * *mode_out = UP_TO_DATE (hello->graph_revision is the current one),
     * DELTA (delta_next() can go from hello->graph_revision to the current
     * one) or SNAPSHOT; *revision_out = the hub revision R the initial sync
     * brings the agent to. For SNAPSHOT the hub must be ready for
     * snapshot_next() to walk the site's subgraph as of R.
     */
    kt_status (*plan)(sync_mode *mode_out,
                      uint64_t *revision_out,
                      const sync_hello *hello,
                      kt_err *err,
                      void *user);
    /*
     * Next batch of the snapshot (objects not deleted) in *objs_out and *n_out,
     * borrowed until the next call or snapshot_done. *n_out == 0 = the end.
     */
    kt_status (*snapshot_next)(const sync_object **objs_out,
                               size_t *n_out,
                               kt_err *err,
                               void *user);
    /* The snapshot iteration is over (finished or abandoned): release it. */
    void (*snapshot_done)(void *user);
    /*
     * The site's delta that starts at from_revision: *out (borrowed until the
     * next call), or *out = NULL when from_revision is the current revision.
     * KT_ENOTFOUND when the journal no longer reaches back that far.
     * d->objects are the changes to the site's subgraph; may be empty.
     */
    kt_status (*delta_next)(const sync_delta **out,
                            uint64_t from_revision,
                            kt_err *err,
                            void *user);
    /*
     * The site's current complete placement (borrowed until the next call),
     * or *out = NULL when the hub has none yet (then none is sent).
     */
    kt_status (*placement)(const sync_placement **out, kt_err *err, void *user);
    /*
     * The agent was welcomed (hello is borrowed for the call). The hub
     * registers the session here and may kick an older session of the same
     * site with sync_server_reject(old, SYNC_REJECT_DUPLICATE, ...).
     */
    void (*on_welcome)(const sync_hello *hello, void *user);
    /*
     * The agent acked seq on stream (GRAPH, PLACEMENT or DOWN, already
     * checked against what was sent; for DOWN after down_acked()).
     */
    void (*on_ack)(sync_stream stream, uint64_t seq, void *user);
    /* The agent reported a new capacity. */
    void (*on_capacity)(const sync_capacity *cap, void *user);
    /*
     * A welcomed session ended (close, timeout, error or reject after
     * welcome). Called exactly once per welcomed session, from the call that
     * ended it (tick, on_message, reject) or from on_close/free.
     */
    void (*on_gone)(void *user);

    /*
     * ---- event streams: optional. Set all of up_committed_seq and
     * on_up_batch or neither (then UP batches are KT_EPROTO); set both
     * down_next and down_acked or neither (no downstream). ----
     *
     * up_committed_seq: the highest upstream seq the event store committed
     * for (site, incarnation), 0 when none (e.g. a new incarnation). Called
     * once per Hello that carries an incarnation, before Welcome; an error
     * sends Reject{BUSY} as plan() does.
     */
    kt_status (*up_committed_seq)(uint64_t *seq_out,
                                  const char *site,
                                  const char *incarnation,
                                  kt_err *err,
                                  void *user);
    /*
     * New upstream events (duplicates removed): seqs first_seq .. first_seq +
     * n - 1 of (site, incarnation), n >= 1, in order, never offered twice on a
     * session. Borrowed for the call: copy what you keep. Commit them, then
     * call sync_server_ack_up(s, first_seq + n - 1) (from inside this op or
     * later from the loop; acks are cumulative, so acking only the last of
     * several batches is fine). An error ends the session (the agent resends
     * after reconnecting).
     */
    kt_status (*on_up_batch)(const char *site,
                             const char *incarnation,
                             uint64_t first_seq,
                             const sync_event *events,
                             size_t n,
                             kt_err *err,
                             void *user);
    /*
     * The site's queued downstream events from from_seq: consecutive seqs
     * from_seq, from_seq + 1, ..., at most max_events, stopping before the
     * one whose data would take the data_len sum over max_bytes (but at least
     * one when any is queued). *n_out = 0 when none is queued yet (call
     * sync_server_kick_down() when some is). Borrowed until the next
     * down_next or down_acked call. An error ends the session.
     */
    kt_status (*down_next)(const sync_event **events_out,
                           size_t *n_out,
                           uint64_t from_seq,
                           size_t max_events,
                           size_t max_bytes,
                           kt_err *err,
                           void *user);
    /* The agent durably applied every downstream seq <= seq: the hub may delete them. */
    kt_status (*down_acked)(uint64_t seq, kt_err *err, void *user);
    /*
     * Optional (NULL = 1): the lowest downstream seq the hub still holds or
     * will assign for the site (its deleted-through mark + 1). Called at
     * Hello when the down stream is in use.
     */
    uint64_t (*down_first_seq)(void *user);
} sync_server_ops;

typedef struct sync_server_opts {
    const char *hub_id;            /* required; copied */
    uint32_t proto_min;            /* 0 = SYNC_PROTO_MIN (tests override) */
    uint32_t proto_max;            /* 0 = SYNC_PROTO_MAX */
    sync_limits limits;            /* caps on what the agent may send; zero = defaults */
    uint32_t heartbeat_ms;         /* announced in Welcome; 0 = 10000 */
    uint32_t handshake_timeout_ms; /* open -> Hello; 0 = 30000 */
    size_t chunk_bytes;            /* target SnapshotChunk size; 0 = 256 KiB */
    size_t max_queue_bytes;        /* pushed changes waiting; 0 = 16 MiB; over -> KT_ETOOBIG */
    uint32_t window_bytes;         /* sent in Welcome and used for DOWN; 0 = 1 MiB */
    size_t max_batch_events;       /* events per DOWN batch; 0 = 1000 */
} sync_server_opts;

typedef enum sync_server_state {
    SYNC_SERVER_AWAIT_HELLO = 0, /* connection open, no Hello yet */
    SYNC_SERVER_SYNCING,         /* welcomed, initial snapshot/deltas/placement going out */
    SYNC_SERVER_LIVE,            /* initial sync sent; pushes go out as they come */
    SYNC_SERVER_DONE             /* rejected, errored, timed out or closed */
} sync_server_state;

typedef struct sync_server_stats {
    uint64_t msgs_in;
    uint64_t bytes_in;
    uint64_t msgs_out;
    uint64_t bytes_out;
    uint64_t snapshot_chunks;
    uint64_t snapshot_objects;
    uint64_t deltas_sent;
    uint64_t placements_sent;
    uint64_t pushes_dropped; /* pushed deltas already covered by what was sent */
    uint64_t heartbeats_sent;
    uint64_t heartbeats_received;
    uint64_t eagain;         /* send() returned KT_EAGAIN */
    sync_reject_code reject; /* the Reject sent, or UNSPECIFIED */
    uint64_t up_batches;     /* EventBatch{UP} received */
    uint64_t up_events;      /* new events handed to on_up_batch */
    uint64_t up_duplicates;  /* events dropped as already received/committed */
    uint64_t up_gaps;        /* first batch started above committed + 1 (hub lost events) */
    uint64_t up_acks_sent;
    uint64_t down_batches_sent;
    uint64_t down_events_sent;
    uint64_t down_window_waits; /* times DOWN sending stopped because the window was full */
} sync_server_stats;

/*
 * Create a session for a new connection (starts the handshake timer).
 * ops/opts copied. KT_EINVAL on a missing required op or hub_id.
 */
kt_status sync_server_new(sync_server **out,
                          const sync_server_opts *opts,
                          const sync_server_ops *ops,
                          void *user,
                          kt_err *err);

/*
 * Free. Calls snapshot_done if a snapshot is open and on_gone if it has not
 * been called for a welcomed session. NULL is a no-op. Never call it from
 * inside one of this session's ops.
 */
void sync_server_free(sync_server *s);

/* One whole binary message from the agent. See the return contract. */
kt_status sync_server_on_message(sync_server *s, const uint8_t *buf, size_t len, kt_err *err);

/*
 * Bytes of a message from the agent are arriving (the transport's partial
 * read): the agent is alive, though a heartbeat may sit behind a big batch on
 * a slow link. Resets the silence timer; sends nothing.
 */
void sync_server_note_rx(sync_server *s);

/* The connection closed: DONE, snapshot_done, on_gone (once). Sends nothing. */
void sync_server_on_close(sync_server *s);

/*
 * Heartbeats and timeouts; call at least every heartbeat_ms / 4 or at
 * sync_server_next_tick_ms(). KT_ETIMEDOUT when the agent is gone.
 */
kt_status sync_server_tick(sync_server *s, kt_err *err);

/* Absolute now_ms by which tick should next run (UINT64_MAX when DONE). */
uint64_t sync_server_next_tick_ms(const sync_server *s);

/*
 * The transport can take more after a KT_EAGAIN: resend the held message and
 * continue the snapshot/deltas/pushes until send says KT_EAGAIN again or
 * there is nothing left. Cheap to call when nothing is pending.
 * Returns KT_ECLOSED when this call handed over a Reject that was waiting
 * behind a held message (close now); KT_OK otherwise, including while the
 * Reject still waits (sync_server_wants_writable() stays true).
 */
kt_status sync_server_writable(sync_server *s, kt_err *err);

/*
 * True when a message (or a Reject behind it) waits after KT_EAGAIN: ask the
 * transport for a writable callback, and after a Reject do not close before
 * this turns false.
 */
bool sync_server_wants_writable(const sync_server *s);

/*
 * A live graph change for this site (d deep-copied; may be empty to keep
 * revisions in step). Queued until the initial sync is out, then sent in push
 * order. Ignored (KT_OK) when DONE or before Welcome (plan() covers it).
 * KT_ETOOBIG when the queue is over max_queue_bytes: close the session, the
 * agent will reconnect and catch up.
 */
kt_status sync_server_push_delta(sync_server *s, const sync_delta *d, kt_err *err);

/* A placement change for this site (deep-copied); same rules as push_delta. */
kt_status sync_server_push_placement(sync_server *s, const sync_placement *p, kt_err *err);

/*
 * End the session with Reject{code, retry_after_ms, message} (e.g. DUPLICATE
 * when the same site connected again, or BUSY on shutdown). Returns
 * KT_ECLOSED when the Reject was sent or queued (close after writing), or a
 * send error. Calls on_gone if the session was welcomed.
 */
kt_status sync_server_reject(sync_server *s,
                             sync_reject_code code,
                             uint32_t retry_after_ms,
                             const char *message,
                             kt_err *err);

/*
 * The hub committed every upstream seq <= seq of this session's
 * incarnation: send Ack{UP, seq} (queued behind a held message; only the
 * highest pending ack is sent). seq at or below the last acked one is a
 * no-op (KT_OK); seq above the highest handed to on_up_batch is KT_EINVAL
 * (a hub bug; nothing sent). KT_OK when DONE. Other errors are send errors
 * (the session ends). Thread: loop; may be called inside on_up_batch.
 */
kt_status sync_server_ack_up(sync_server *s, uint64_t seq, kt_err *err);

/*
 * The hub queued new downstream events for this site: send what the window
 * allows now (only when LIVE; earlier, the end of the initial sync starts
 * them). KT_OK or a down_next / send error (the session ends).
 */
kt_status sync_server_kick_down(sync_server *s, kt_err *err);

/* ---- getters -------------------------------------------------------------- */

sync_server_state sync_server_state_get(const sync_server *s);
/* The authenticated site, NULL before Welcome. Borrowed, lives as long as s. */
const char *sync_server_site(const sync_server *s);
/* Highest graph revision the agent acked (its Hello's revision for DELTA/UP_TO_DATE). */
uint64_t sync_server_acked_graph_revision(const sync_server *s);
/* Highest placement revision the agent acked (its Hello's value until then). */
uint64_t sync_server_acked_placement_revision(const sync_server *s);
/* Highest graph revision sent to the agent (the Welcome's R once the initial sync is out). */
uint64_t sync_server_sent_graph_revision(const sync_server *s);
/* The agent's last reported capacity (Hello or CapacityReport); NULL if none. */
const sync_capacity *sync_server_capacity(const sync_server *s);
/* The negotiated protocol version (0 before Welcome). */
uint32_t sync_server_proto(const sync_server *s);
/* The mode chosen by plan() (UNSPECIFIED before Welcome). */
sync_mode sync_server_mode(const sync_server *s);
/* Bytes of pushed changes queued and not yet sent. */
size_t sync_server_queued_bytes(const sync_server *s);
/* The Hello's incarnation, NULL before Welcome or when none. Borrowed, lives as long as s. */
const char *sync_server_incarnation(const sync_server *s);
/* Highest upstream seq committed (up_committed_seq at Hello, then sync_server_ack_up). */
uint64_t sync_server_up_committed_seq(const sync_server *s);
/* Highest upstream seq handed to on_up_batch or committed before (the dedupe mark). */
uint64_t sync_server_up_received_seq(const sync_server *s);
/* Highest downstream seq the agent acked (its Hello's last_acked_down_seq until then). */
uint64_t sync_server_down_acked_seq(const sync_server *s);
/* Highest downstream seq sent on this session (= down_acked_seq before any). */
uint64_t sync_server_down_sent_seq(const sync_server *s);
/* EventBatch{DOWN} bytes sent and not yet acked. */
size_t sync_server_down_inflight_bytes(const sync_server *s);
const sync_server_stats *sync_server_stats_get(const sync_server *s);
const char *sync_server_state_str(sync_server_state st);

#endif
