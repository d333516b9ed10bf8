/*
 * server.c — the hub side of one sync session (see sync/server.h).
 *
 * DESIGN
 * Output goes through one slot, tx. pump() fills tx with the next message
 * (a snapshot chunk, a catch-up delta, the placement, then queued pushes)
 * and hands it to ops.send; when send says KT_EAGAIN the message stays in
 * tx ("held") and pump() stops until sync_server_writable(). So at most one
 * encoded message is ahead of the transport, whatever the snapshot size.
 * A Reject that comes while a message is held waits in ctl and goes right
 * after it.
 *
 * Pushed changes are encoded when pushed (the caller's structs are
 * borrowed) and queued as bytes with their revisions; the revisions decide
 * at send time whether a push is already covered (dropped), next in line
 * (sent) or ahead of a gap (filled from delta_next first).
 *
 * Event streams share the same slot. An Ack{UP} is not queued as bytes:
 * up_ack_want (the highest seq the hub committed, or a duplicate's re-ack)
 * and up_ack_sent are compared in produce(), which sends one Ack for
 * whatever is due, first. DOWN batches are read from down_next() only when
 * the push queue is empty, so graph changes go before the events that may
 * depend on them.
 *
 * Invariants:
 *   - sent_graph only grows, and every Delta sent starts at sent_graph;
 *   - up_committed <= up_received, and on_up_batch never sees a seq at or
 *     below up_received (the dedupe mark per (site, incarnation));
 *   - down_acked <= down_sent; the in-flight list holds one entry per
 *     EventBatch{DOWN} sent and not wholly acked, down_inflight their sum;
 *   - snap_iter is true exactly while snapshot_next may still be called and
 *     snapshot_done is owed;
 *   - on_gone is called at most once, and only after on_welcome.
 * Thread: loop only. Owns the queue, the buffers and its copies of strings.
 */
#include "sync/server.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "msg_int.h"

#define SERVER_HEARTBEAT_DEFAULT_MS 10000u
#define SERVER_HANDSHAKE_DEFAULT_MS 30000u
#define SERVER_CHUNK_DEFAULT_BYTES  (256u * 1024u)
#define SERVER_QUEUE_DEFAULT_BYTES  (16u * 1024u * 1024u)
#define SERVER_BUF_MAX_BYTES        ((size_t)1 << 31)
#define SERVER_WINDOW_DEFAULT_BYTES (1024u * 1024u)
#define SERVER_BATCH_DEFAULT_EVENTS 1000u
#define SILENT_INTERVALS            3u

typedef enum init_phase {
    PHASE_NONE = 0,  /* before Welcome */
    PHASE_SNAPSHOT,  /* chunks going out */
    PHASE_DELTAS,    /* catch-up deltas going out */
    PHASE_PLACEMENT, /* the initial PlacementUpdate is next */
    PHASE_LIVE       /* pushes only */
} init_phase;

/* One EventBatch{DOWN} sent and not wholly acked. */
typedef struct inflight {
    uint64_t last_seq;
    size_t bytes;
} inflight;

typedef struct push {
    struct push *next;
    sync_msg_type type; /* DELTA or PLACEMENT */
    uint64_t from;      /* delta: from_revision; placement: revision */
    uint64_t to;        /* delta: to_revision; placement: revision */
    size_t len;
    uint8_t bytes[]; /* the encoded Envelope */
} push;

struct sync_server {
    sync_server_ops ops;
    void *user;
    char *hub_id;
    uint32_t proto_min;
    uint32_t proto_max;
    sync_limits limits;
    uint32_t heartbeat_ms;
    uint32_t handshake_timeout_ms;
    size_t chunk_bytes;
    size_t max_queue_bytes;
    uint32_t window_bytes;
    size_t max_batch_events;
    bool up_enabled;   /* the up ops are set */
    bool down_enabled; /* the down ops are set */

    sync_server_state state;
    init_phase phase;
    bool welcomed;
    bool gone_called;
    char *site;
    uint32_t proto;
    sync_mode mode;
    uint64_t plan_revision;
    bool has_capacity;
    sync_capacity capacity;

    uint64_t acked_graph;
    uint64_t acked_placement;
    uint64_t sent_graph;
    uint64_t sent_placement;
    bool placement_sent; /* any PlacementUpdate went out on this session */

    /* snapshot iteration */
    bool snap_iter;
    bool snap_end;
    const sync_object *batch;
    size_t batch_n;
    size_t batch_i;
    uint32_t chunk_index;
    kt_buf objs;

    kt_buf tx;
    sync_msg__decoder dec; /* reused for every message */
    bool held;
    kt_buf ctl;
    bool ctl_pending;

    push *q_head;
    push *q_tail;
    size_t q_bytes;

    uint64_t created_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;

    /* upstream */
    char *incarnation; /* the Hello's, when the up stream is in use */
    uint64_t up_committed;
    uint64_t up_received;
    uint64_t up_expect; /* first_seq the next UP batch must have; 0 = any */
    bool up_seen_batch;
    uint64_t up_ack_want;
    uint64_t up_ack_sent;
    bool in_up_batch; /* inside on_up_batch: ack_up must not pump */

    /* downstream */
    bool down_active; /* down ops set and the agent's Hello has a down cursor */
    uint64_t down_acked;
    uint64_t down_sent;
    inflight *fl; /* fl[fl_head .. fl_len) */
    size_t fl_head;
    size_t fl_len;
    size_t fl_cap;
    size_t down_inflight;

    sync_server_stats stats;
};

const char *sync_server_state_str(sync_server_state st)
{
    switch (st) {
    case SYNC_SERVER_AWAIT_HELLO:
        return "await_hello";
    case SYNC_SERVER_SYNCING:
        return "syncing";
    case SYNC_SERVER_LIVE:
        return "live";
    case SYNC_SERVER_DONE:
        return "done";
    }
    return "unknown";
}

kt_status sync_server_new(sync_server **out,
                          const sync_server_opts *opts,
                          const sync_server_ops *ops,
                          void *user,
                          kt_err *err)
{
    *out = NULL;
    if (opts == NULL || ops == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync server: opts and ops are required");
    }
    if (ops->send == NULL || ops->now_ms == NULL || ops->wall_ms == NULL || ops->auth == NULL ||
        ops->plan == NULL || ops->snapshot_next == NULL || ops->delta_next == NULL ||
        ops->placement == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync server: a required op is NULL");
    }
    if (opts->hub_id == NULL || opts->hub_id[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "sync server: hub_id is required");
    }
    if ((ops->up_committed_seq == NULL) != (ops->on_up_batch == NULL)) {
        return kt_err_set(err, KT_EINVAL,
                          "sync server: set both up_committed_seq and on_up_batch or neither");
    }
    if ((ops->down_next == NULL) != (ops->down_acked == NULL)) {
        return kt_err_set(err, KT_EINVAL,
                          "sync server: set both down_next and down_acked or neither");
    }
    uint32_t pmin = opts->proto_min != 0 ? opts->proto_min : SYNC_PROTO_MIN;
    uint32_t pmax = opts->proto_max != 0 ? opts->proto_max : SYNC_PROTO_MAX;
    if (pmin > pmax) {
        return kt_err_set(err, KT_EINVAL, "sync server: proto_min %u > proto_max %u", pmin, pmax);
    }
    sync_server *s = kt_xcalloc(1, sizeof *s);
    s->ops = *ops;
    s->user = user;
    s->hub_id = kt_xstrdup(opts->hub_id);
    s->proto_min = pmin;
    s->proto_max = pmax;
    sync_msg_limits_resolve(&s->limits, &opts->limits);
    s->heartbeat_ms = opts->heartbeat_ms != 0 ? opts->heartbeat_ms : SERVER_HEARTBEAT_DEFAULT_MS;
    s->handshake_timeout_ms =
        opts->handshake_timeout_ms != 0 ? opts->handshake_timeout_ms : SERVER_HANDSHAKE_DEFAULT_MS;
    s->chunk_bytes = opts->chunk_bytes != 0 ? opts->chunk_bytes : SERVER_CHUNK_DEFAULT_BYTES;
    s->max_queue_bytes =
        opts->max_queue_bytes != 0 ? opts->max_queue_bytes : SERVER_QUEUE_DEFAULT_BYTES;
    s->window_bytes = opts->window_bytes != 0 ? opts->window_bytes : SERVER_WINDOW_DEFAULT_BYTES;
    s->max_batch_events =
        opts->max_batch_events != 0 ? opts->max_batch_events : SERVER_BATCH_DEFAULT_EVENTS;
    s->up_enabled = ops->on_up_batch != NULL;
    s->down_enabled = ops->down_next != NULL;
    kt_buf_init(&s->objs, SERVER_BUF_MAX_BYTES);
    kt_buf_init(&s->tx, SERVER_BUF_MAX_BYTES);
    kt_buf_init(&s->ctl, 64u * 1024u);
    sync_msg__decoder_init(&s->dec);
    s->state = SYNC_SERVER_AWAIT_HELLO;
    uint64_t now = ops->now_ms(user);
    s->created_ms = now;
    s->last_rx_ms = now;
    s->last_tx_ms = now;
    *out = s;
    return KT_OK;
}

static void queue_clear(sync_server *s)
{
    push *p = s->q_head;
    while (p != NULL) {
        push *next = p->next;
        kt_free(p);
        p = next;
    }
    s->q_head = NULL;
    s->q_tail = NULL;
    s->q_bytes = 0;
}

static void snap_finish(sync_server *s)
{
    if (s->snap_iter) {
        s->snap_iter = false;
        s->batch = NULL;
        s->batch_n = 0;
        s->batch_i = 0;
        if (s->ops.snapshot_done != NULL) {
            s->ops.snapshot_done(s->user);
        }
    }
}

/* The session is over: DONE, release the iterator and the queue, on_gone once. */
static void server_end(sync_server *s)
{
    s->state = SYNC_SERVER_DONE;
    snap_finish(s);
    queue_clear(s);
    if (s->welcomed && !s->gone_called) {
        s->gone_called = true;
        if (s->ops.on_gone != NULL) {
            s->ops.on_gone(s->user);
        }
    }
}

void sync_server_free(sync_server *s)
{
    if (s == NULL) {
        return;
    }
    server_end(s);
    kt_buf_fini(&s->ctl);
    sync_msg__decoder_fini(&s->dec);
    kt_buf_fini(&s->tx);
    kt_buf_fini(&s->objs);
    kt_free(s->fl);
    kt_free(s->incarnation);
    kt_free(s->site);
    kt_free(s->hub_id);
    kt_free(s);
}

void sync_server_note_rx(sync_server *s)
{
    s->last_rx_ms = s->ops.now_ms(s->user);
}

void sync_server_on_close(sync_server *s)
{
    s->held = false;
    s->ctl_pending = false;
    server_end(s);
}

/* ---- output ------------------------------------------------------------------ */

/* Hand buf to the transport. KT_EAGAIN is returned as is (caller holds the message). */
static kt_status transmit(sync_server *s, const kt_buf *b, kt_err *err)
{
    kt_status st = s->ops.send((const uint8_t *)b->data, b->len, s->user);
    if (st == KT_OK) {
        s->stats.msgs_out++;
        s->stats.bytes_out += b->len;
        s->last_tx_ms = s->ops.now_ms(s->user);
        return KT_OK;
    }
    if (st == KT_EAGAIN) {
        s->stats.eagain++;
        return KT_EAGAIN;
    }
    return kt_err_set(err, st, "send: %s", kt_status_str(st));
}

/* Send what is in tx; on KT_EAGAIN keep it held and report KT_OK. */
static kt_status emit_tx(sync_server *s, kt_err *err)
{
    kt_status st = transmit(s, &s->tx, err);
    if (st == KT_EAGAIN) {
        s->held = true;
        return KT_OK;
    }
    return st;
}

static kt_status encode_tx(sync_server *s, const sync_msg *m, kt_err *err)
{
    KT_ASSERT(!s->held);
    kt_buf_reset(&s->tx);
    return sync_msg_encode(m, &s->tx, err);
}

/* Queue (or send) a Reject; the session ends. Returns KT_OK or a send error. */
static kt_status send_reject(sync_server *s,
                             sync_reject_code code,
                             uint32_t retry_after_ms,
                             const char *message,
                             kt_err *err)
{
    sync_msg m = { .type = SYNC_MSG_REJECT };
    m.u.reject.code = code;
    m.u.reject.retry_after_ms = retry_after_ms;
    m.u.reject.message = message;
    s->stats.reject = code;
    kt_buf_reset(&s->ctl);
    kt_err local = { 0 };
    kt_status st = sync_msg_encode(&m, &s->ctl, &local);
    if (st == KT_ETOOBIG) {
        m.u.reject.message = NULL; /* a huge message text: send the code alone */
        st = sync_msg_encode(&m, &s->ctl, &local);
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "%s", local.msg);
    }
    if (s->held) {
        s->ctl_pending = true;
        return KT_OK;
    }
    st = transmit(s, &s->ctl, err);
    if (st == KT_EAGAIN) {
        s->ctl_pending = true;
        return KT_OK;
    }
    return st;
}

/* ---- the initial sync and the push queue ---------------------------------------- */

static kt_status next_chunk(sync_server *s, kt_err *err)
{
    kt_buf_reset(&s->objs);
    size_t n = 0;
    for (;;) {
        if (s->batch_i == s->batch_n) {
            if (s->snap_end) {
                break;
            }
            const sync_object *objs = NULL;
            size_t cnt = 0;
            kt_status st = s->ops.snapshot_next(&objs, &cnt, err, s->user);
            if (st != KT_OK) {
                return st;
            }
            if (cnt > 0 && objs == NULL) {
                return kt_err_set(err, KT_EINTERNAL, "snapshot_next: %zu objects, NULL array", cnt);
            }
            s->batch = objs;
            s->batch_n = cnt;
            s->batch_i = 0;
            if (cnt == 0) {
                s->snap_end = true;
                break;
            }
        }
        const sync_object *o = &s->batch[s->batch_i];
        if (n > 0 && (n >= s->limits.max_objects ||
                      s->objs.len + sync_msg__object_size(o) > s->chunk_bytes)) {
            break; /* full; o opens the next chunk, so this one is not last */
        }
        kt_status st = sync_msg__object_append(&s->objs, o, err);
        if (st != KT_OK) {
            return st;
        }
        n++;
        s->batch_i++;
    }
    bool last = s->snap_end && s->batch_i == s->batch_n;
    kt_buf_reset(&s->tx);
    kt_status st = sync_msg__chunk_append(&s->tx, s->plan_revision, s->chunk_index, last,
                                          (const uint8_t *)s->objs.data, s->objs.len, err);
    if (st != KT_OK) {
        return st;
    }
    s->chunk_index++;
    s->stats.snapshot_chunks++;
    s->stats.snapshot_objects += n;
    if (last) {
        snap_finish(s);
        s->sent_graph = s->plan_revision;
        s->phase = PHASE_PLACEMENT;
    }
    return KT_OK;
}

/* Encode the journal's delta from sent_graph into tx; *got = false when caught up. */
static kt_status next_journal_delta(sync_server *s, bool *got, kt_err *err)
{
    *got = false;
    const sync_delta *d = NULL;
    kt_status st = s->ops.delta_next(&d, s->sent_graph, err, s->user);
    if (st != KT_OK) {
        return st;
    }
    if (d == NULL) {
        return KT_OK;
    }
    if (d->from_revision != s->sent_graph || d->to_revision < d->from_revision) {
        return kt_err_set(err, KT_EINTERNAL, "delta_next(%llu) gave %llu..%llu",
                          (unsigned long long)s->sent_graph, (unsigned long long)d->from_revision,
                          (unsigned long long)d->to_revision);
    }
    sync_msg m = { .type = SYNC_MSG_DELTA, .u.delta = *d };
    st = encode_tx(s, &m, err);
    if (st != KT_OK) {
        return st;
    }
    s->sent_graph = d->to_revision;
    s->stats.deltas_sent++;
    *got = true;
    return KT_OK;
}

static void fl_push(sync_server *s, uint64_t last_seq, size_t bytes)
{
    if (s->fl_len == s->fl_cap) {
        if (s->fl_head > 0) {
            memmove(s->fl, s->fl + s->fl_head, (s->fl_len - s->fl_head) * sizeof *s->fl);
            s->fl_len -= s->fl_head;
            s->fl_head = 0;
        }
        if (s->fl_len == s->fl_cap) {
            s->fl_cap = s->fl_cap == 0 ? 16 : s->fl_cap * 2;
            s->fl = kt_xrealloc(s->fl, s->fl_cap * sizeof *s->fl);
        }
    }
    s->fl[s->fl_len++] = (inflight){ last_seq, bytes };
    s->down_inflight += bytes;
}

/* Encode the next EventBatch{DOWN} the window allows into tx; *got = false when none. */
static kt_status next_down_batch(sync_server *s, bool *got, kt_err *err)
{
    *got = false;
    size_t cap = s->window_bytes;
    if (s->down_inflight > 0) {
        if (s->down_inflight >= cap) {
            s->stats.down_window_waits++;
            return KT_OK;
        }
        cap -= s->down_inflight;
    }
    if (cap > s->limits.max_message_bytes) {
        cap = s->limits.max_message_bytes;
    }
    const sync_event *evs = NULL;
    size_t n = 0;
    uint64_t from = s->down_sent + 1;
    kt_status st = s->ops.down_next(&evs, &n, from, s->max_batch_events, cap, err, s->user);
    if (st != KT_OK) {
        return st;
    }
    if (n == 0) {
        return KT_OK;
    }
    if (evs == NULL) {
        return kt_err_set(err, KT_EINTERNAL, "down_next: %zu events, NULL array", n);
    }
    if (n > s->max_batch_events) {
        n = s->max_batch_events;
    }
    size_t k = 0;
    size_t total = 0;
    for (; k < n; k++) {
        const sync_event *ev = &evs[k];
        if (ev->id == NULL || ev->type == NULL || ev->source == NULL) {
            return kt_err_set(err, KT_EINTERNAL, "down_next: event seq %llu lacks id/type/source",
                              (unsigned long long)(from + k));
        }
        size_t sz = sync_msg__event_size(ev);
        size_t want = sync_msg__batch_size(total + sz, 0);
        if (want > cap && (k > 0 || s->down_inflight > 0)) {
            break;
        }
        total += sz;
    }
    if (k == 0) {
        s->stats.down_window_waits++;
        return KT_OK;
    }
    sync_msg m = { .type = SYNC_MSG_EVENTS };
    m.u.events.stream = SYNC_STREAM_DOWN;
    m.u.events.first_seq = from;
    m.u.events.events = evs;
    m.u.events.n_events = k;
    st = encode_tx(s, &m, err);
    if (st != KT_OK) {
        return st;
    }
    fl_push(s, from + k - 1, s->tx.len);
    s->down_sent = from + k - 1;
    s->stats.down_batches_sent++;
    s->stats.down_events_sent += k;
    *got = true;
    return KT_OK;
}

/*
 * Put the next message into tx. *got = false when there is nothing to send
 * now. Updates the phase and the sent revisions as if it went out: the
 * message is sent or held, never lost, so that is safe.
 */
static kt_status produce(sync_server *s, bool *got, kt_err *err)
{
    *got = false;
    kt_status st;
    if (s->up_ack_want > s->up_ack_sent) {
        sync_msg m = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_UP, s->up_ack_want } };
        st = encode_tx(s, &m, err);
        if (st != KT_OK) {
            return st;
        }
        s->up_ack_sent = s->up_ack_want;
        s->stats.up_acks_sent++;
        *got = true;
        return KT_OK;
    }
    switch (s->phase) {
    case PHASE_NONE:
        return KT_OK;
    case PHASE_SNAPSHOT:
        st = next_chunk(s, err);
        *got = st == KT_OK;
        return st;
    case PHASE_DELTAS:
        st = next_journal_delta(s, got, err);
        if (st != KT_OK || *got) {
            return st;
        }
        s->phase = PHASE_PLACEMENT;
        /* fall through: caught up, the placement is next */
        /* FALLTHROUGH */
    case PHASE_PLACEMENT: {
        const sync_placement *p = NULL;
        st = s->ops.placement(&p, err, s->user);
        if (st != KT_OK) {
            return st;
        }
        s->phase = PHASE_LIVE;
        s->state = SYNC_SERVER_LIVE;
        if (p == NULL) {
            break; /* the hub has no placement for this site yet: go on live */
        }
        sync_msg m = { .type = SYNC_MSG_PLACEMENT, .u.placement = *p };
        st = encode_tx(s, &m, err);
        if (st != KT_OK) {
            return st;
        }
        s->sent_placement = p->revision;
        s->placement_sent = true;
        s->stats.placements_sent++;
        *got = true;
        return KT_OK;
    }
    case PHASE_LIVE:
        break;
    }
    while (s->q_head != NULL) {
        push *p = s->q_head;
        if (p->type == SYNC_MSG_DELTA) {
            if (p->to <= s->sent_graph) {
                /* already covered by what went out */
            } else if (p->from == s->sent_graph) {
                kt_buf_reset(&s->tx);
                st = kt_buf_append(&s->tx, p->bytes, p->len);
                if (st != KT_OK) {
                    return kt_err_set(err, st, "delta of %zu bytes", p->len);
                }
                s->sent_graph = p->to;
                s->stats.deltas_sent++;
                *got = true;
            } else if (p->from > s->sent_graph) {
                /* A gap the journal must fill before this push can go. */
                st = next_journal_delta(s, got, err);
                if (st != KT_OK) {
                    return st;
                }
                if (!*got) {
                    return kt_err_set(
                        err, KT_EINTERNAL, "pushed delta starts at %llu, journal ends at %llu",
                        (unsigned long long)p->from, (unsigned long long)s->sent_graph);
                }
                return KT_OK; /* keep p queued */
            } else {
                return kt_err_set(err, KT_EINTERNAL,
                                  "pushed delta %llu..%llu straddles the sent revision %llu",
                                  (unsigned long long)p->from, (unsigned long long)p->to,
                                  (unsigned long long)s->sent_graph);
            }
        } else {
            if (s->placement_sent && p->to <= s->sent_placement) {
                /* an older or equal placement already went out */
            } else {
                kt_buf_reset(&s->tx);
                st = kt_buf_append(&s->tx, p->bytes, p->len);
                if (st != KT_OK) {
                    return kt_err_set(err, st, "placement of %zu bytes", p->len);
                }
                s->sent_placement = p->to;
                s->placement_sent = true;
                s->stats.placements_sent++;
                *got = true;
            }
        }
        if (!*got) {
            s->stats.pushes_dropped++;
        }
        s->q_head = p->next;
        if (s->q_head == NULL) {
            s->q_tail = NULL;
        }
        s->q_bytes -= p->len;
        kt_free(p);
        if (*got) {
            return KT_OK;
        }
    }
    if (s->down_active) {
        return next_down_batch(s, got, err);
    }
    return KT_OK;
}

/* Send until the transport pushes back or nothing is left. Ends the session on error. */
static kt_status pump(sync_server *s, kt_err *err)
{
    while (!s->held && (s->state == SYNC_SERVER_SYNCING || s->state == SYNC_SERVER_LIVE)) {
        bool got = false;
        kt_status st = produce(s, &got, err);
        if (st == KT_OK && got) {
            st = emit_tx(s, err);
        }
        if (st != KT_OK) {
            server_end(s);
            return st;
        }
        if (!got) {
            break;
        }
    }
    return KT_OK;
}

/* ---- input --------------------------------------------------------------------- */

/* A protocol error by the agent: Reject{PROTOCOL} (best effort), end, return st. */
static kt_status fail_proto(sync_server *s, kt_status st, kt_err *err)
{
    const char *why = err != NULL ? err->msg : "malformed message";
    (void)send_reject(s, SYNC_REJECT_PROTOCOL, 0, why, NULL);
    server_end(s);
    return st;
}

/* Reject during the handshake: the session ends and the caller closes. */
static kt_status reject_hello(sync_server *s,
                              sync_reject_code code,
                              uint32_t retry_after_ms,
                              const char *message,
                              kt_err *err)
{
    kt_status st = send_reject(s, code, retry_after_ms, message, err);
    server_end(s);
    if (st != KT_OK) {
        return st;
    }
    return kt_err_set(err, KT_ECLOSED, "rejected %s: %s", sync_msg_reject_str(code), message);
}

static kt_status on_hello(sync_server *s, const sync_hello *h, kt_err *err)
{
    if (s->state != SYNC_SERVER_AWAIT_HELLO) {
        kt_err_set(err, KT_EPROTO, "hello: a second one on the same connection");
        return fail_proto(s, KT_EPROTO, err);
    }
    uint32_t lo = h->proto_min > s->proto_min ? h->proto_min : s->proto_min;
    uint32_t hi = h->proto_max < s->proto_max ? h->proto_max : s->proto_max;
    char why[128];
    if (lo > hi) {
        snprintf(why, sizeof why, "agent speaks %u..%u, hub speaks %u..%u", h->proto_min,
                 h->proto_max, s->proto_min, s->proto_max);
        return reject_hello(s, SYNC_REJECT_VERSION, 0, why, err);
    }
    sync_auth_result ar = s->ops.auth(h->site, h->token, s->user);
    if (ar != SYNC_AUTH_OK) {
        return reject_hello(s, SYNC_REJECT_UNAUTHENTICATED, 0,
                            ar == SYNC_AUTH_UNKNOWN_SITE ? "unknown site" : "bad token", err);
    }
    if (s->ops.admit != NULL) {
        uint32_t retry = s->ops.admit(h->site, s->user);
        if (retry != 0) {
            return reject_hello(s, SYNC_REJECT_BUSY, retry, "admission limit reached", err);
        }
    }
    sync_mode mode = SYNC_MODE_UNSPECIFIED;
    uint64_t rev = 0;
    kt_status st = s->ops.plan(&mode, &rev, h, err, s->user);
    if (st == KT_OK && (mode < SYNC_MODE_UP_TO_DATE || mode > SYNC_MODE_SNAPSHOT)) {
        st = kt_err_set(err, KT_EINTERNAL, "plan: invalid mode %d", (int)mode);
    }
    if (st != KT_OK) {
        /* The hub cannot serve this agent now: tell it to come back later. */
        (void)send_reject(s, SYNC_REJECT_BUSY, 1000, "hub cannot plan the sync", NULL);
        server_end(s);
        return st;
    }
    s->proto = hi;
    s->mode = mode;
    s->plan_revision = rev;
    s->site = kt_xstrdup(h->site);
    if (h->has_capacity) {
        s->has_capacity = true;
        s->capacity = h->capacity;
    }
    if (s->up_enabled && h->incarnation != NULL) {
        uint64_t committed = 0;
        st = s->ops.up_committed_seq(&committed, h->site, h->incarnation, err, s->user);
        if (st != KT_OK) {
            (void)send_reject(s, SYNC_REJECT_BUSY, 1000, "hub cannot read its event store", NULL);
            server_end(s);
            return st;
        }
        s->incarnation = kt_xstrdup(h->incarnation);
        s->up_committed = committed;
        s->up_received = committed;
        s->up_expect = h->has_first_unacked_up_seq ? h->first_unacked_up_seq : 0;
    }
    if (s->down_enabled && h->has_last_acked_down_seq) {
        uint64_t start = h->last_acked_down_seq;
        if (s->ops.down_first_seq != NULL) {
            uint64_t first = s->ops.down_first_seq(s->user);
            if (first > 0 && first - 1 > start) {
                start = first - 1; /* the seqs in between are gone (a wiped agent store) */
            }
        }
        if (start == UINT64_MAX) {
            kt_err_set(err, KT_EPROTO, "hello.last_acked_down_seq: %llu leaves no room",
                       (unsigned long long)start);
            return fail_proto(s, KT_EPROTO, err);
        }
        s->down_active = true;
        s->down_acked = start;
        s->down_sent = start;
    }
    s->acked_placement = h->placement_revision;
    if (mode == SYNC_MODE_SNAPSHOT) {
        s->acked_graph = 0;
        s->sent_graph = 0;
        s->phase = PHASE_SNAPSHOT;
        s->snap_iter = true;
        s->snap_end = false;
        s->chunk_index = 0;
    } else {
        s->acked_graph = h->graph_revision;
        s->sent_graph = h->graph_revision;
        s->phase = mode == SYNC_MODE_DELTA ? PHASE_DELTAS : PHASE_PLACEMENT;
    }
    sync_msg m = { .type = SYNC_MSG_WELCOME };
    m.u.welcome.proto = hi;
    m.u.welcome.hub_id = s->hub_id;
    m.u.welcome.graph_revision = rev;
    m.u.welcome.mode = mode;
    m.u.welcome.heartbeat_ms = s->heartbeat_ms;
    m.u.welcome.window_bytes = s->window_bytes;
    m.u.welcome.down_next_seq = s->down_active ? s->down_sent + 1 : 0;
    st = encode_tx(s, &m, err);
    if (st == KT_OK) {
        st = emit_tx(s, err);
    }
    if (st != KT_OK) {
        server_end(s);
        return st;
    }
    s->welcomed = true;
    s->state = SYNC_SERVER_SYNCING;
    if (s->ops.on_welcome != NULL) {
        s->ops.on_welcome(h, s->user);
    }
    if (s->state == SYNC_SERVER_DONE) {
        return KT_ECLOSED; /* on_welcome rejected this session */
    }
    return pump(s, err);
}

static kt_status on_ack(sync_server *s, const sync_ack *a, kt_err *err)
{
    if (a->stream == SYNC_STREAM_GRAPH) {
        if (a->seq > s->sent_graph) {
            kt_err_set(err, KT_EPROTO, "ack.seq: graph %llu but only %llu was sent",
                       (unsigned long long)a->seq, (unsigned long long)s->sent_graph);
            return fail_proto(s, KT_EPROTO, err);
        }
        if (a->seq > s->acked_graph) {
            s->acked_graph = a->seq;
        }
    } else if (a->stream == SYNC_STREAM_PLACEMENT) {
        if (!s->placement_sent || a->seq > s->sent_placement) {
            kt_err_set(err, KT_EPROTO, "ack.seq: placement %llu but only %llu was sent",
                       (unsigned long long)a->seq, (unsigned long long)s->sent_placement);
            return fail_proto(s, KT_EPROTO, err);
        }
        if (a->seq > s->acked_placement) {
            s->acked_placement = a->seq;
        }
    } else if (a->stream == SYNC_STREAM_UP) {
        kt_err_set(err, KT_EPROTO, "ack.stream: up acks come from the hub, not the agent");
        return fail_proto(s, KT_EPROTO, err);
    } else if (a->stream == SYNC_STREAM_DOWN) {
        if (a->seq > s->down_sent) {
            kt_err_set(err, KT_EPROTO, "ack.seq: down %llu but only %llu was sent",
                       (unsigned long long)a->seq, (unsigned long long)s->down_sent);
            return fail_proto(s, KT_EPROTO, err);
        }
        if (a->seq > s->down_acked) {
            kt_status st = s->ops.down_acked(a->seq, err, s->user);
            if (st != KT_OK) {
                server_end(s);
                return st;
            }
            s->down_acked = a->seq;
            while (s->fl_head < s->fl_len && s->fl[s->fl_head].last_seq <= a->seq) {
                s->down_inflight -= s->fl[s->fl_head].bytes;
                s->fl_head++;
            }
            if (s->fl_head == s->fl_len) {
                s->fl_head = 0;
                s->fl_len = 0;
            }
        }
    }
    if (s->ops.on_ack != NULL) {
        s->ops.on_ack(a->stream, a->seq, s->user);
    }
    if (a->stream == SYNC_STREAM_DOWN) {
        return pump(s, err);
    }
    return KT_OK;
}

static kt_status on_up_events(sync_server *s, const sync_event_batch *b, kt_err *err)
{
    if (b->stream != SYNC_STREAM_UP) {
        kt_err_set(err, KT_EPROTO, "events.stream: the agent may not send %s batches",
                   sync_msg_stream_str(b->stream));
        return fail_proto(s, KT_EPROTO, err);
    }
    if (!s->up_enabled) {
        kt_err_set(err, KT_EPROTO, "events: up batch, but this hub takes none");
        return fail_proto(s, KT_EPROTO, err);
    }
    if (s->incarnation == NULL) {
        kt_err_set(err, KT_EPROTO, "events: up batch, but the hello had no incarnation");
        return fail_proto(s, KT_EPROTO, err);
    }
    if (strcmp(b->incarnation, s->incarnation) != 0) {
        kt_err_set(err, KT_EPROTO, "events.incarnation: '%s', but the hello said '%s'",
                   b->incarnation, s->incarnation);
        return fail_proto(s, KT_EPROTO, err);
    }
    if (s->up_expect != 0 && b->first_seq != s->up_expect) {
        kt_err_set(err, KT_EPROTO, "events.first_seq: up %llu, expected %llu",
                   (unsigned long long)b->first_seq, (unsigned long long)s->up_expect);
        return fail_proto(s, KT_EPROTO, err);
    }
    uint64_t last = b->first_seq + (uint64_t)(b->n_events - 1);
    s->stats.up_batches++;
    s->up_expect = last + 1;
    if (!s->up_seen_batch && b->first_seq > s->up_received + 1) {
        s->stats.up_gaps++;
    }
    s->up_seen_batch = true;
    size_t skip = 0;
    if (b->first_seq <= s->up_received) {
        uint64_t dup_last = last < s->up_received ? last : s->up_received;
        skip = (size_t)(dup_last - b->first_seq + 1);
        /* Re-ack what was committed before, so the agent can delete it. */
        uint64_t reack = last < s->up_committed ? last : s->up_committed;
        if (reack >= b->first_seq && reack > s->up_ack_want) {
            s->up_ack_want = reack;
        }
    }
    s->stats.up_duplicates += skip;
    if (skip < b->n_events) {
        uint64_t first = b->first_seq + skip;
        s->up_received = last; /* before the op: it may ack them right away */
        s->in_up_batch = true;
        kt_status st = s->ops.on_up_batch(s->site, s->incarnation, first, b->events + skip,
                                          b->n_events - skip, err, s->user);
        s->in_up_batch = false;
        if (st != KT_OK) {
            server_end(s);
            return st;
        }
        s->stats.up_events += b->n_events - skip;
        if (s->state == SYNC_SERVER_DONE) {
            return KT_ECLOSED; /* the hub rejected the session from inside the op */
        }
    }
    return pump(s, err);
}

kt_status sync_server_on_message(sync_server *s, const uint8_t *buf, size_t len, kt_err *err)
{
    if (s->state == SYNC_SERVER_DONE) {
        return KT_OK; /* late bytes after the end */
    }
    s->stats.msgs_in++;
    s->stats.bytes_in += len;
    s->last_rx_ms = s->ops.now_ms(s->user);
    const sync_msg *m = NULL;
    kt_status st = sync_msg__decoder_decode(&m, &s->dec, buf, len, &s->limits, err);
    if (st != KT_OK) {
        if (st == KT_ENOMEM) {
            server_end(s);
            return st;
        }
        return fail_proto(s, st, err);
    }
    if (m->type == SYNC_MSG_HELLO) {
        st = on_hello(s, &m->u.hello, err);
    } else if (s->state == SYNC_SERVER_AWAIT_HELLO) {
        kt_err_set(err, KT_EPROTO, "%s: expected hello first", sync_msg_type_str(m->type));
        st = fail_proto(s, KT_EPROTO, err);
    } else {
        switch (m->type) {
        case SYNC_MSG_ACK:
            st = on_ack(s, &m->u.ack, err);
            break;
        case SYNC_MSG_EVENTS:
            st = on_up_events(s, &m->u.events, err);
            break;
        case SYNC_MSG_HEARTBEAT:
            s->stats.heartbeats_received++;
            break;
        case SYNC_MSG_CAPACITY:
            s->has_capacity = true;
            s->capacity = m->u.capacity.capacity;
            if (s->ops.on_capacity != NULL) {
                s->ops.on_capacity(&s->capacity, s->user);
            }
            break;
        default:
            kt_err_set(err, KT_EPROTO, "%s: the agent may not send this",
                       sync_msg_type_str(m->type));
            st = fail_proto(s, KT_EPROTO, err);
            break;
        }
    }
    return st;
}

/* ---- flow control, time, pushes ---------------------------------------------------- */

kt_status sync_server_writable(sync_server *s, kt_err *err)
{
    if (s->held) {
        kt_status st = transmit(s, &s->tx, err);
        if (st == KT_EAGAIN) {
            return KT_OK;
        }
        if (st != KT_OK) {
            server_end(s);
            return st;
        }
        s->held = false;
    }
    if (s->ctl_pending) {
        kt_status st = transmit(s, &s->ctl, err);
        if (st == KT_EAGAIN) {
            return KT_OK; /* still wants_writable */
        }
        s->ctl_pending = false;
        return st == KT_OK ? KT_ECLOSED : st;
    }
    if (s->state == SYNC_SERVER_DONE) {
        return KT_OK;
    }
    return pump(s, err);
}

bool sync_server_wants_writable(const sync_server *s)
{
    return s->held || s->ctl_pending;
}

uint64_t sync_server_next_tick_ms(const sync_server *s)
{
    if (s->state == SYNC_SERVER_DONE) {
        return UINT64_MAX;
    }
    if (!s->welcomed) {
        return s->created_ms + s->handshake_timeout_ms;
    }
    uint64_t hb = s->last_tx_ms + s->heartbeat_ms;
    uint64_t dead = s->last_rx_ms + (uint64_t)SILENT_INTERVALS * s->heartbeat_ms;
    return hb < dead ? hb : dead;
}

kt_status sync_server_tick(sync_server *s, kt_err *err)
{
    if (s->state == SYNC_SERVER_DONE) {
        return KT_OK;
    }
    uint64_t now = s->ops.now_ms(s->user);
    if (!s->welcomed) {
        if (now >= s->created_ms && now - s->created_ms >= s->handshake_timeout_ms) {
            server_end(s);
            return kt_err_set(err, KT_ETIMEDOUT, "no hello within %u ms", s->handshake_timeout_ms);
        }
        return KT_OK;
    }
    if (now >= s->last_rx_ms &&
        now - s->last_rx_ms >= (uint64_t)SILENT_INTERVALS * s->heartbeat_ms) {
        uint64_t silent = now - s->last_rx_ms;
        server_end(s);
        return kt_err_set(err, KT_ETIMEDOUT, "agent %s silent for %llu ms (heartbeat %u ms)",
                          s->site, (unsigned long long)silent, s->heartbeat_ms);
    }
    if (!s->held && now >= s->last_tx_ms && now - s->last_tx_ms >= s->heartbeat_ms) {
        sync_msg m = { .type = SYNC_MSG_HEARTBEAT };
        m.u.heartbeat.sent_ms = s->ops.wall_ms(s->user);
        kt_status st = encode_tx(s, &m, err);
        if (st == KT_OK) {
            st = emit_tx(s, err);
        }
        if (st != KT_OK) {
            server_end(s);
            return st;
        }
        s->stats.heartbeats_sent++;
    }
    return KT_OK;
}

static kt_status enqueue(
    sync_server *s, sync_msg_type type, uint64_t from, uint64_t to, const sync_msg *m, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, s->max_queue_bytes);
    kt_status st = sync_msg_encode(m, &b, err);
    if (st == KT_OK && s->q_bytes + b.len > s->max_queue_bytes) {
        st = kt_err_set(err, KT_ETOOBIG, "push queue: %zu + %zu bytes over cap %zu", s->q_bytes,
                        b.len, s->max_queue_bytes);
    }
    if (st != KT_OK) {
        kt_buf_fini(&b);
        if (st == KT_ETOOBIG) {
            server_end(s);
        }
        return st;
    }
    push *p = kt_xmalloc(sizeof *p + b.len);
    p->next = NULL;
    p->type = type;
    p->from = from;
    p->to = to;
    p->len = b.len;
    memcpy(p->bytes, b.data, b.len);
    kt_buf_fini(&b);
    if (s->q_tail != NULL) {
        s->q_tail->next = p;
    } else {
        s->q_head = p;
    }
    s->q_tail = p;
    s->q_bytes += p->len;
    return pump(s, err);
}

kt_status sync_server_push_delta(sync_server *s, const sync_delta *d, kt_err *err)
{
    if (s->state != SYNC_SERVER_SYNCING && s->state != SYNC_SERVER_LIVE) {
        return KT_OK;
    }
    if (d->to_revision < d->from_revision) {
        return kt_err_set(err, KT_EINVAL, "push delta: to %llu before from %llu",
                          (unsigned long long)d->to_revision, (unsigned long long)d->from_revision);
    }
    sync_msg m = { .type = SYNC_MSG_DELTA, .u.delta = *d };
    return enqueue(s, SYNC_MSG_DELTA, d->from_revision, d->to_revision, &m, err);
}

kt_status sync_server_push_placement(sync_server *s, const sync_placement *p, kt_err *err)
{
    if (s->state != SYNC_SERVER_SYNCING && s->state != SYNC_SERVER_LIVE) {
        return KT_OK;
    }
    sync_msg m = { .type = SYNC_MSG_PLACEMENT, .u.placement = *p };
    return enqueue(s, SYNC_MSG_PLACEMENT, p->revision, p->revision, &m, err);
}

kt_status sync_server_ack_up(sync_server *s, uint64_t seq, kt_err *err)
{
    if (s->state == SYNC_SERVER_DONE) {
        return KT_OK;
    }
    if (s->incarnation == NULL) {
        return kt_err_set(err, KT_EINVAL, "ack_up: this session has no up stream");
    }
    if (seq > s->up_received) {
        return kt_err_set(err, KT_EINVAL, "ack_up: %llu, but only up to %llu was received",
                          (unsigned long long)seq, (unsigned long long)s->up_received);
    }
    if (seq <= s->up_committed) {
        return KT_OK;
    }
    s->up_committed = seq;
    if (seq > s->up_ack_want) {
        s->up_ack_want = seq;
    }
    if (s->in_up_batch) {
        return KT_OK; /* on_message pumps after the op returns */
    }
    return pump(s, err);
}

kt_status sync_server_kick_down(sync_server *s, kt_err *err)
{
    if (s->state != SYNC_SERVER_LIVE || !s->down_active) {
        return KT_OK;
    }
    return pump(s, err);
}

kt_status sync_server_reject(sync_server *s,
                             sync_reject_code code,
                             uint32_t retry_after_ms,
                             const char *message,
                             kt_err *err)
{
    if (s->state == SYNC_SERVER_DONE) {
        return KT_ECLOSED;
    }
    kt_status st = send_reject(s, code, retry_after_ms, message, err);
    server_end(s);
    return st == KT_OK ? KT_ECLOSED : st;
}

/* ---- getters ---------------------------------------------------------------------- */

sync_server_state sync_server_state_get(const sync_server *s)
{
    return s->state;
}

const char *sync_server_site(const sync_server *s)
{
    return s->welcomed ? s->site : NULL;
}

uint64_t sync_server_acked_graph_revision(const sync_server *s)
{
    return s->acked_graph;
}

uint64_t sync_server_acked_placement_revision(const sync_server *s)
{
    return s->acked_placement;
}

uint64_t sync_server_sent_graph_revision(const sync_server *s)
{
    return s->sent_graph;
}

const sync_capacity *sync_server_capacity(const sync_server *s)
{
    return s->has_capacity ? &s->capacity : NULL;
}

uint32_t sync_server_proto(const sync_server *s)
{
    return s->proto;
}

sync_mode sync_server_mode(const sync_server *s)
{
    return s->mode;
}

size_t sync_server_queued_bytes(const sync_server *s)
{
    return s->q_bytes;
}

const char *sync_server_incarnation(const sync_server *s)
{
    return s->welcomed ? s->incarnation : NULL;
}

uint64_t sync_server_up_committed_seq(const sync_server *s)
{
    return s->up_committed;
}

uint64_t sync_server_up_received_seq(const sync_server *s)
{
    return s->up_received;
}

uint64_t sync_server_down_acked_seq(const sync_server *s)
{
    return s->down_acked;
}

uint64_t sync_server_down_sent_seq(const sync_server *s)
{
    return s->down_sent;
}

size_t sync_server_down_inflight_bytes(const sync_server *s)
{
    return s->down_inflight;
}

const sync_server_stats *sync_server_stats_get(const sync_server *s)
{
    return &s->stats;
}
