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
 *   (seq beyond what was sent is KT_EPROTO) and calls on_ack(); Acks of other
 *   streams go to on_ack() unchecked. CapacityReport -> on_capacity().
 *   Heartbeats: sent every heartbeat_ms after Welcome; an agent silent for
 *   3 intervals (any message counts), or no Hello within
 *   handshake_timeout_ms, makes tick() return KT_ETIMEDOUT.
 *
 * Flow control: send() may return KT_EAGAIN, meaning "not taken, my queue is
 * full". The session keeps that message and generates nothing more until
 * the caller calls sync_server_writable() (when the socket drained, e.g.
 * LWS_CALLBACK_SERVER_WRITEABLE). So a 10k-object snapshot never sits in
 * memory as a whole: at most one chunk is encoded ahead of the transport.
 * Welcome.window_bytes is not sent in v1 (the agent acks only on commit, so
 * an ack-based window could deadlock a snapshot).
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
 * the loop thread outside an op).
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
    /* The agent acked seq on stream (GRAPH/PLACEMENT already checked). */
    void (*on_ack)(sync_stream stream, uint64_t seq, void *user);
    /* The agent reported a new capacity. */
    void (*on_capacity)(const sync_capacity *cap, void *user);
    /*
     * A welcomed session ended (close, timeout, error or reject after
     * welcome). Called exactly once per welcomed session, from the call that
     * ended it (tick, on_message, reject) or from on_close/free.
     */
    void (*on_gone)(void *user);
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
const sync_server_stats *sync_server_stats_get(const sync_server *s);
const char *sync_server_state_str(sync_server_state st);

#endif
