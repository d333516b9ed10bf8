/*
 * sync/client.h — the AGENT side of a hub <-> agent sync session.
 *
 * A state machine with no I/O of its own: the caller (agent/uplink) owns the
 * WebSocket and calls in with events; bytes out, time and the graph store go
 * through sync_client_ops. One sync_client lives as long as the agent and is
 * reused across connections (on_open ... on_close, repeatedly).
 *
 * Flow per connection (docs/protocol.md, "Hub–agent sync"):
 *   on_open -> send Hello{site, token, versions, graph/placement revision,
 *   capacity}.  Then, from the hub:
 *   - Reject: remember code + retry_after_ms, on_message returns KT_ECLOSED.
 *   - Welcome{mode}: UP_TO_DATE (hub revision must equal ours), DELTA, or
 *     SNAPSHOT. Heartbeats start.
 *   - SnapshotChunk: index 0 -> snapshot_begin(rev); every chunk ->
 *     snapshot_put(objects); last -> snapshot_commit(rev), then Ack{GRAPH,rev}.
 *     Chunks must come in order with one revision. A close, error or timeout
 *     before last -> snapshot_abort(): the store is never half-replaced.
 *   - Delta: from_revision must equal graph_revision() (else KT_EPROTO: close,
 *     and the next Hello asks again); delta_apply() (atomic), then
 *     Ack{GRAPH, to_revision}. A Delta while a snapshot is open is KT_EPROTO.
 *   - PlacementUpdate: placement_apply(), then Ack{PLACEMENT, revision}.
 *   - Heartbeat: liveness only (any message counts as liveness).
 *
 * Event streams (when the event ops are set; docs/protocol.md "Event streams"):
 *   Hello also carries incarnation = up_incarnation(), first_unacked_up_seq =
 *   up_acked_seq() + 1 and last_acked_down_seq = down_applied_seq().
 *   Upstream: once welcomed (also while a snapshot streams), the client
 *   reads the outbox with up_next(from = first unacked seq, ...) and sends
 *   EventBatch{UP, incarnation, first_seq} while the EventBatch bytes sent
 *   and not yet acked stay within the window (Welcome.window_bytes, else
 *   opts.window_bytes); a batch larger than the window goes alone when
 *   nothing is in flight. It pulls again after each Ack{UP} and on
 *   sync_client_kick() (the outbox has new events). Ack{UP, seq} ->
 *   up_acked(seq) (the agent deletes rows <= seq). On reconnect everything
 *   not acked is sent again from up_acked_seq() + 1; the hub drops what it
 *   already committed. An Ack{UP} beyond what was sent is KT_EPROTO.
 *   Downstream: EventBatch{DOWN, first_seq}: the part at or below
 *   down_applied_seq() is dropped as a duplicate; the rest must start at
 *   down_applied_seq() + 1 (a gap is KT_EPROTO; except that when
 *   Welcome.down_next_seq is above it, the hub no longer holds the seqs in
 *   between and the first batch may start there: stats.down_skipped counts
 *   them) and goes to down_apply()
 *   (durable before it returns), then Ack{DOWN, last seq} (also sent for an
 *   all-duplicate batch, so the hub can forget it). A DOWN batch without
 *   the down ops, or an UP batch from the hub, is KT_EPROTO.
 *
 * Return contract of on_open / on_message / tick / report_capacity:
 *   KT_OK         keep the connection.
 *   KT_ECLOSED    the hub sent Reject: close; see sync_client_last_reject_code()
 *                 and sync_client_last_retry_after_ms() to choose the delay.
 *   KT_EPROTO / KT_ETOOBIG  the hub sent something malformed or out of order
 *                 (err->msg says what): close and reconnect with backoff.
 *   KT_ETIMEDOUT  (tick only) no Welcome within handshake_timeout_ms, or the
 *                 hub was silent for 3 heartbeat intervals: close.
 *   anything else a store op or send returned (propagated unchanged): close.
 * After any non-OK status the session is finished; the open snapshot, if any,
 * has been aborted. Call sync_client_on_close() when the socket is closed,
 * then sync_client_on_open() on the next connection.
 *
 * Thread: loop only. Callbacks are called synchronously from the calls above
 * and must not call back into the same sync_client.
 */
#ifndef KT_SYNC_CLIENT_H
#define KT_SYNC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "sync/msg.h"

typedef struct sync_client sync_client;

/*
 * Implemented by the agent. Every member except on_welcome is required.
 * Object and placement pointers passed in are borrowed for the call only.
 */
typedef struct sync_client_ops {
    /*
     * Queue one whole binary WebSocket message. Must take the bytes (copy)
     * before returning. KT_OK or a fatal error (the session ends); the
     * client never retries, so the transport must queue rather than return
     * KT_EAGAIN (agent traffic is small: Hello, Acks, Heartbeats).
     */
    kt_status (*send)(const uint8_t *buf, size_t len, void *user);
    /* Monotonic milliseconds (kt_clock_mono_ms() in production). */
    uint64_t (*now_ms)(void *user);
    /* Wall-clock ms for Heartbeat.sent_ms (kt_clock_wall_ms()). */
    uint64_t (*wall_ms)(void *user);
    /* Last graph revision fully committed in the store (0 = empty cache). */
    uint64_t (*graph_revision)(void *user);
    /* Last placement revision committed (0 = none). */
    uint64_t (*placement_revision)(void *user);
    /* Start replacing the whole graph cache with a snapshot at revision (open a transaction). */
    kt_status (*snapshot_begin)(uint64_t revision, kt_err *err, void *user);
    /* Add objects to the open snapshot (objects with deleted set never appear in a snapshot). */
    kt_status (*snapshot_put)(const sync_object *objs, size_t n, kt_err *err, void *user);
    /* Commit: the cache is now exactly the snapshot, graph_revision() == revision afterwards. */
    kt_status (*snapshot_commit)(uint64_t revision, kt_err *err, void *user);
    /* Roll back the open snapshot; the cache stays as before snapshot_begin. Cannot fail. */
    void (*snapshot_abort)(void *user);
    /*
     * Apply a delta atomically (all or nothing): upsert each object that is
     * not deleted, remove each deleted one, then graph_revision() ==
     * d->to_revision. Called only when d->from_revision == graph_revision().
     */
    kt_status (*delta_apply)(const sync_delta *d, kt_err *err, void *user);
    /* Replace the whole placement; then placement_revision() == p->revision. */
    kt_status (*placement_apply)(const sync_placement *p, kt_err *err, void *user);
    /* Optional (NULL ok): the hub accepted us. Reset the reconnect backoff here. */
    void (*on_welcome)(const sync_welcome *w, void *user);

    /*
     * ---- event streams: optional. Set all four up_* or none (no upstream);
     * set both down_* or none (the hub must not send DOWN batches). ----
     *
     * up_incarnation: the outbox incarnation id (non-empty, at most
     * limits.max_string_bytes, fixed while the outbox lives: a wiped or
     * rebuilt outbox gets a new random one). Read at each on_open; the
     * pointer must stay valid until on_close.
     */
    const char *(*up_incarnation)(void *user);
    /* Highest seq of this incarnation the hub acked (0 = none); rows <= it are gone. */
    uint64_t (*up_acked_seq)(void *user);
    /*
     * Read the outbox from from_seq: *events_out = events with seqs from_seq,
     * from_seq + 1, ... (consecutive, no gaps), *n_out of them, at most
     * max_events, and stopping before the one whose data would take the sum
     * of data_len over max_bytes (but at least one when any is stored).
     * *n_out = 0 when nothing at or after from_seq is stored yet. The array
     * and what it points to are borrowed until the next up_next or up_acked
     * call. Errors end the session.
     */
    kt_status (*up_next)(const sync_event **events_out,
                         size_t *n_out,
                         uint64_t from_seq,
                         size_t max_events,
                         size_t max_bytes,
                         kt_err *err,
                         void *user);
    /*
     * The hub committed every seq <= seq (cumulative, increasing): delete
     * those rows and make up_acked_seq() return seq. May be called while a
     * snapshot is open (keep it out of the snapshot's transaction). Errors
     * end the session.
     */
    kt_status (*up_acked)(uint64_t seq, kt_err *err, void *user);
    /* Highest downstream seq durably applied (0 = none). */
    uint64_t (*down_applied_seq)(void *user);
    /*
     * Apply n >= 1 downstream events with seqs first_seq.. in order, all or
     * nothing, durably before returning; then down_applied_seq() ==
     * first_seq + n - 1. Called with first_seq == down_applied_seq() + 1,
     * or higher once after the Welcome announced a skip (see the file
     * comment), and never while a snapshot is open. Events are borrowed for
     * the call.
     */
    kt_status (*down_apply)(uint64_t first_seq,
                            const sync_event *events,
                            size_t n,
                            kt_err *err,
                            void *user);
} sync_client_ops;

typedef struct sync_client_opts {
    const char *site;              /* required, model_name_check() clean; copied */
    const char *token;             /* required; copied */
    const char *agent_version;     /* NULL = none; copied */
    const sync_capacity *capacity; /* NULL = none; copied */
    uint32_t proto_min;            /* 0 = SYNC_PROTO_MIN (tests override) */
    uint32_t proto_max;            /* 0 = SYNC_PROTO_MAX */
    sync_limits limits;            /* caps on what the hub may send; zero fields = defaults */
    uint32_t heartbeat_ms;         /* used when Welcome has none; 0 = 10000 */
    uint32_t handshake_timeout_ms; /* Hello -> Welcome/Reject; 0 = 30000 */
    uint32_t window_bytes;         /* upstream window when Welcome has none; 0 = 1 MiB */
    size_t max_batch_events;       /* events per upstream batch; 0 = 1000 (capped by the
                                      hub's default limit, 10000) */
    /*
     * Send at most one upstream batch per call (an Ack, a kick, the Welcome)
     * and report the rest with sync_client_up_more(): the transport sends the
     * next one from a later loop turn, so filling a big window after an
     * outage does not hold the caller's loop for the whole window (an agent
     * keeps serving its devices while it drains). false: fill the window at
     * once.
     */
    bool one_batch_per_call;
} sync_client_opts;

typedef enum sync_client_state {
    SYNC_CLIENT_IDLE = 0,   /* no connection (before on_open, after on_close) */
    SYNC_CLIENT_HELLO_SENT, /* waiting for Welcome or Reject */
    SYNC_CLIENT_SYNCED,     /* welcomed, no snapshot open: applying deltas/placements */
    SYNC_CLIENT_SNAPSHOT,   /* welcomed, a snapshot is open (chunks arriving) */
    SYNC_CLIENT_DONE        /* rejected, errored or timed out: waiting for on_close */
} sync_client_state;

/* Counters since sync_client_new (never reset), for metrics. */
typedef struct sync_client_stats {
    uint64_t connects; /* on_open calls */
    uint64_t welcomes;
    uint64_t rejects; /* Reject messages received */
    uint64_t msgs_in;
    uint64_t bytes_in;
    uint64_t msgs_out;
    uint64_t bytes_out;
    uint64_t snapshots_committed;
    uint64_t snapshots_aborted;
    uint64_t snapshot_objects; /* objects put into snapshots */
    uint64_t deltas_applied;
    uint64_t delta_objects;
    uint64_t placements_applied;
    uint64_t acks_sent;
    uint64_t heartbeats_sent;
    uint64_t heartbeats_received;
    uint64_t protocol_errors; /* KT_EPROTO/KT_ETOOBIG from on_message */
    uint64_t timeouts;        /* KT_ETIMEDOUT from tick */
    uint64_t last_rtt_ms;     /* not measured in v1: 0 */
    uint64_t up_batches_sent; /* EventBatch{UP} sent (resends included) */
    uint64_t up_events_sent;
    uint64_t up_events_acked; /* distinct seqs acked by the hub */
    uint64_t up_window_waits; /* times sending stopped because the window was full */
    uint64_t down_batches;    /* EventBatch{DOWN} received */
    uint64_t down_events_applied;
    uint64_t down_duplicates; /* downstream events dropped as already applied */
    uint64_t down_skipped;    /* downstream seqs skipped because the hub no longer held them */
    uint64_t decoder_bytes;   /* held by the message decoder after the last message: its block
                                 grows for big messages and is given back when no snapshot is
                                 open (agent-rss) */
} sync_client_stats;

/*
 * Create a client. ops and opts are copied (strings too); user is passed to
 * every op. Returns KT_OK, or KT_EINVAL (missing op, bad site name, NULL
 * token, proto_min > proto_max) with err->msg naming it. Thread: loop.
 */
kt_status sync_client_new(sync_client **out,
                          const sync_client_opts *opts,
                          const sync_client_ops *ops,
                          void *user,
                          kt_err *err);

/* Free; aborts an open snapshot first. NULL is a no-op. Thread: loop. */
void sync_client_free(sync_client *c);

/*
 * The connection is open: reset per-connection state and send Hello with the
 * store's current revisions. Returns KT_OK or what send returned.
 */
kt_status sync_client_on_open(sync_client *c, kt_err *err);

/*
 * One whole binary message from the hub. Decodes it (with opts.limits),
 * drives the state machine, calls the store ops and sends Acks. See the
 * return contract in the file comment.
 */
kt_status sync_client_on_message(sync_client *c, const uint8_t *buf, size_t len, kt_err *err);

/*
 * Bytes of a message from the hub are arriving (the transport's partial
 * read): the hub is alive though a message takes longer than a heartbeat to
 * arrive. Resets the silence timer; sends nothing.
 */
void sync_client_note_rx(sync_client *c);

/* The connection closed (either side, any reason): abort an open snapshot, go IDLE. */
void sync_client_on_close(sync_client *c);

/*
 * Call periodically (at least every heartbeat_ms / 4, or at
 * sync_client_next_tick_ms()). Sends a Heartbeat when one is due; returns
 * KT_ETIMEDOUT when the hub is gone (see file comment), else KT_OK or a send
 * error. Does nothing when IDLE or DONE.
 */
kt_status sync_client_tick(sync_client *c, kt_err *err);

/*
 * Absolute now_ms time by which sync_client_tick() should next run
 * (UINT64_MAX when IDLE or DONE).
 */
uint64_t sync_client_next_tick_ms(const sync_client *c);

/*
 * The agent's capacity changed: remember it for the next Hello, and send a
 * CapacityReport now if welcomed. Returns KT_OK or a send error.
 */
kt_status sync_client_report_capacity(sync_client *c, const sync_capacity *cap, kt_err *err);

/*
 * The outbox has new events: send what the window allows now. Cheap when
 * not welcomed (returns KT_OK; the Welcome starts the sending) or when the
 * window is full (the next Ack{UP} resumes). Returns KT_OK, or an up_next /
 * send error (the session is finished, as in the return contract).
 */
kt_status sync_client_kick(sync_client *c, kt_err *err);

/*
 * opts.one_batch_per_call: true when the last call sent an upstream batch and
 * stopped with more events and window room left. Call sync_client_kick from
 * a later loop turn to send the next one. Always false otherwise.
 */
bool sync_client_up_more(const sync_client *c);

/* ---- getters (borrowed / values) ------------------------------------------ */

sync_client_state sync_client_state_get(const sync_client *c);
/* An on_open happened and on_close has not (the socket is ours). */
bool sync_client_connected(const sync_client *c);
/* A Welcome arrived on the current connection. */
bool sync_client_welcomed(const sync_client *c);
/* Code of the last Reject received (on any connection); SYNC_REJECT_UNSPECIFIED if none. */
sync_reject_code sync_client_last_reject_code(const sync_client *c);
/* retry_after_ms of that Reject (0 = none given). */
uint32_t sync_client_last_retry_after_ms(const sync_client *c);
/* The hub's id from the current Welcome, NULL before; valid until on_close. */
const char *sync_client_hub_id(const sync_client *c);
/* Heartbeat interval in force (Welcome's, else opts.heartbeat_ms). */
uint32_t sync_client_heartbeat_ms(const sync_client *c);
/* The negotiated protocol version (0 before Welcome). */
uint32_t sync_client_proto(const sync_client *c);
/* Window in force for upstream batches (Welcome's, else opts.window_bytes). */
uint32_t sync_client_window_bytes(const sync_client *c);
/* EventBatch{UP} bytes sent on this connection and not yet acked (<= window, or one batch). */
size_t sync_client_up_inflight_bytes(const sync_client *c);
/* Next upstream seq to send on this connection (0 when not welcomed / no upstream). */
uint64_t sync_client_up_next_seq(const sync_client *c);
/* Counters; borrowed, lives as long as c. */
const sync_client_stats *sync_client_stats_get(const sync_client *c);
/* Name of a state for logs ("idle", "hello_sent", ...). Never NULL. */
const char *sync_client_state_str(sync_client_state s);

#endif
