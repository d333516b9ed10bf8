/*
 * client.c — the agent side of a sync session (see sync/client.h).
 *
 * Invariants:
 *   - snap_open is true exactly between a successful snapshot_begin and the
 *     matching snapshot_commit or snapshot_abort; every path that ends a
 *     session (error, Reject, timeout, close, free) goes through
 *     client_end(), which aborts an open snapshot, so the store is never left
 *     half-replaced;
 *   - an Ack is sent only after the store op that made the revision durable
 *     returned KT_OK;
 *   - state DONE ignores input until on_close;
 *   - upstream: up_acked < up_next (the next seq to send); the in-flight
 *     list holds, in seq order, one entry per EventBatch{UP} sent on this
 *     connection and not wholly acked, and up_inflight is the sum of their
 *     encoded sizes; a batch is sent only when up_inflight + its size <=
 *     window, or when nothing is in flight;
 *   - downstream: down_apply() sees each seq at most once, in order, and an
 *     Ack{DOWN} is sent only after it returned KT_OK;
 *   - the decoder's block outgrows SYNC_MSG__DECODER_KEEP_BYTES only while a
 *     snapshot is open (it is trimmed after every message otherwise).
 * Thread: loop only. Owns its copies of the options, the per-connection
 * hub_id and incarnation, and the in-flight list.
 */
#include "sync/client.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "model/model.h"
#include "msg_int.h"

#define CLIENT_HEARTBEAT_DEFAULT_MS 10000u
#define CLIENT_HANDSHAKE_DEFAULT_MS 30000u
#define CLIENT_TX_MAX_BYTES         (1024u * 1024u)
#define CLIENT_WINDOW_DEFAULT_BYTES (1024u * 1024u)
#define CLIENT_BATCH_DEFAULT_EVENTS 1000u
#define SILENT_INTERVALS            3u

/* One EventBatch{UP} sent and not wholly acked. */
typedef struct inflight {
    uint64_t last_seq;
    size_t bytes;
} inflight;

struct sync_client {
    sync_client_ops ops;
    void *user;
    char *site;
    char *token;
    char *agent_version;
    bool has_capacity;
    sync_capacity capacity;
    uint32_t proto_min;
    uint32_t proto_max;
    sync_limits limits;
    uint32_t heartbeat_default_ms;
    uint32_t handshake_timeout_ms;
    uint32_t window_default;
    size_t max_batch_events;
    bool one_batch_per_call; /* opts.one_batch_per_call */
    bool up_more;            /* it stopped after one batch, more may go (sync_client_up_more) */
    bool up_enabled;
    bool down_enabled;

    sync_client_state state;
    bool connected;
    bool welcomed;
    sync_reject_code last_reject;
    uint32_t last_retry_after_ms;
    char *hub_id;
    uint32_t heartbeat_ms;
    uint32_t proto;

    bool snap_open;
    uint64_t snap_revision;
    uint32_t snap_next_index;

    uint64_t opened_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;

    /* event streams, per connection */
    uint32_t window_bytes;
    char *incarnation;
    uint64_t down_skip_to; /* Welcome.down_next_seq when above down_applied_seq() + 1 */
    uint64_t up_acked;
    uint64_t up_next;
    inflight *fl;    /* in-flight batches: fl[fl_head .. fl_len) */
    size_t fl_head;
    size_t fl_len;
    size_t fl_cap;
    size_t up_inflight;

    kt_buf tx;
    sync_msg__decoder dec; /* reused for every message */
    sync_client_stats stats;
};

const char *sync_client_state_str(sync_client_state s)
{
    switch (s) {
    case SYNC_CLIENT_IDLE:
        return "idle";
    case SYNC_CLIENT_HELLO_SENT:
        return "hello_sent";
    case SYNC_CLIENT_SYNCED:
        return "synced";
    case SYNC_CLIENT_SNAPSHOT:
        return "snapshot";
    case SYNC_CLIENT_DONE:
        return "done";
    }
    return "unknown";
}

kt_status sync_client_new(sync_client **out,
                          const sync_client_opts *opts,
                          const sync_client_ops *ops,
                          void *user,
                          kt_err *err)
{
    *out = NULL;
    if (opts == NULL || ops == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync client: opts and ops are required");
    }
    if (ops->send == NULL || ops->now_ms == NULL || ops->wall_ms == NULL ||
        ops->graph_revision == NULL || ops->placement_revision == NULL ||
        ops->snapshot_begin == NULL || ops->snapshot_put == NULL || ops->snapshot_commit == NULL ||
        ops->snapshot_abort == NULL || ops->delta_apply == NULL || ops->placement_apply == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync client: a required op is NULL");
    }
    int n_up = (ops->up_incarnation != NULL) + (ops->up_acked_seq != NULL) +
               (ops->up_next != NULL) + (ops->up_acked != NULL);
    if (n_up != 0 && n_up != 4) {
        return kt_err_set(err, KT_EINVAL,
                          "sync client: set all of up_incarnation, up_acked_seq, up_next, "
                          "up_acked or none");
    }
    if ((ops->down_applied_seq == NULL) != (ops->down_apply == NULL)) {
        return kt_err_set(err, KT_EINVAL,
                          "sync client: set both down_applied_seq and down_apply or neither");
    }
    if (opts->site == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync client: site is required");
    }
    const char *why = model_name_check(opts->site);
    if (why != NULL) {
        return kt_err_set(err, KT_EINVAL, "sync client: site '%s': %s", opts->site, why);
    }
    if (opts->token == NULL) {
        return kt_err_set(err, KT_EINVAL, "sync client: token is required");
    }
    uint32_t pmin = opts->proto_min != 0 ? opts->proto_min : SYNC_PROTO_MIN;
    uint32_t pmax = opts->proto_max != 0 ? opts->proto_max : SYNC_PROTO_MAX;
    if (pmin > pmax) {
        return kt_err_set(err, KT_EINVAL, "sync client: proto_min %u > proto_max %u", pmin, pmax);
    }
    sync_client *c = kt_xcalloc(1, sizeof *c);
    c->ops = *ops;
    c->user = user;
    c->site = kt_xstrdup(opts->site);
    c->token = kt_xstrdup(opts->token);
    c->agent_version = opts->agent_version != NULL ? kt_xstrdup(opts->agent_version) : NULL;
    if (opts->capacity != NULL) {
        c->has_capacity = true;
        c->capacity = *opts->capacity;
    }
    c->proto_min = pmin;
    c->proto_max = pmax;
    sync_msg_limits_resolve(&c->limits, &opts->limits);
    c->heartbeat_default_ms =
        opts->heartbeat_ms != 0 ? opts->heartbeat_ms : CLIENT_HEARTBEAT_DEFAULT_MS;
    c->handshake_timeout_ms =
        opts->handshake_timeout_ms != 0 ? opts->handshake_timeout_ms : CLIENT_HANDSHAKE_DEFAULT_MS;
    c->window_default = opts->window_bytes != 0 ? opts->window_bytes : CLIENT_WINDOW_DEFAULT_BYTES;
    c->max_batch_events =
        opts->max_batch_events != 0 ? opts->max_batch_events : CLIENT_BATCH_DEFAULT_EVENTS;
    if (c->max_batch_events > c->limits.max_events) {
        c->max_batch_events = c->limits.max_events;
    }
    c->one_batch_per_call = opts->one_batch_per_call;
    c->up_enabled = n_up == 4;
    c->down_enabled = ops->down_apply != NULL;
    c->window_bytes = c->window_default;
    c->state = SYNC_CLIENT_IDLE;
    c->heartbeat_ms = c->heartbeat_default_ms;
    kt_buf_init(&c->tx, c->limits.max_message_bytes > CLIENT_TX_MAX_BYTES
                            ? c->limits.max_message_bytes
                            : CLIENT_TX_MAX_BYTES);
    sync_msg__decoder_init(&c->dec);
    *out = c;
    return KT_OK;
}

/* End the session: abort an open snapshot; DONE until on_close. */
static void client_end(sync_client *c)
{
    if (c->snap_open) {
        c->ops.snapshot_abort(c->user);
        c->snap_open = false;
        c->stats.snapshots_aborted++;
    }
    if (c->state != SYNC_CLIENT_IDLE) {
        c->state = SYNC_CLIENT_DONE;
    }
}

void sync_client_free(sync_client *c)
{
    if (c == NULL) {
        return;
    }
    client_end(c);
    kt_buf_fini(&c->tx);
    sync_msg__decoder_fini(&c->dec);
    kt_free(c->fl);
    kt_free(c->incarnation);
    kt_free(c->hub_id);
    kt_free(c->agent_version);
    kt_free(c->token);
    kt_free(c->site);
    kt_free(c);
}

static kt_status client_send(sync_client *c, const sync_msg *m, kt_err *err)
{
    kt_buf_reset(&c->tx);
    kt_status st = sync_msg_encode(m, &c->tx, err);
    if (st != KT_OK) {
        return st;
    }
    st = c->ops.send((const uint8_t *)c->tx.data, c->tx.len, c->user);
    if (st != KT_OK) {
        return kt_err_set(err, st, "send %s: %s", sync_msg_type_str(m->type), kt_status_str(st));
    }
    c->stats.msgs_out++;
    c->stats.bytes_out += c->tx.len;
    c->last_tx_ms = c->ops.now_ms(c->user);
    return KT_OK;
}

static kt_status send_ack(sync_client *c, sync_stream stream, uint64_t seq, kt_err *err)
{
    sync_msg m = { .type = SYNC_MSG_ACK, .u.ack = { stream, seq } };
    kt_status st = client_send(c, &m, err);
    if (st == KT_OK) {
        c->stats.acks_sent++;
    }
    return st;
}

kt_status sync_client_on_open(sync_client *c, kt_err *err)
{
    if (c->state != SYNC_CLIENT_IDLE) {
        sync_client_on_close(c); /* the caller missed a close: start clean */
    }
    c->connected = true;
    c->welcomed = false;
    c->state = SYNC_CLIENT_HELLO_SENT;
    c->heartbeat_ms = c->heartbeat_default_ms;
    c->proto = 0;
    c->snap_next_index = 0;
    uint64_t now = c->ops.now_ms(c->user);
    c->opened_ms = now;
    c->last_rx_ms = now;
    c->last_tx_ms = now;
    c->stats.connects++;
    c->window_bytes = c->window_default;
    c->up_more = false;
    c->fl_head = 0;
    c->fl_len = 0;
    c->up_inflight = 0;
    kt_free(c->incarnation);
    c->incarnation = NULL;
    c->up_acked = 0;
    c->up_next = 0;
    c->down_skip_to = 0;
    if (c->up_enabled) {
        const char *inc = c->ops.up_incarnation(c->user);
        if (inc == NULL || inc[0] == '\0' || strlen(inc) > c->limits.max_string_bytes) {
            client_end(c);
            return kt_err_set(err, KT_EINVAL, "up_incarnation: %s",
                              inc == NULL || inc[0] == '\0' ? "empty" : "too long");
        }
        c->incarnation = kt_xstrdup(inc);
        c->up_acked = c->ops.up_acked_seq(c->user);
        if (c->up_acked == UINT64_MAX) {
            client_end(c);
            return kt_err_set(err, KT_EINVAL, "up_acked_seq: UINT64_MAX");
        }
        c->up_next = c->up_acked + 1;
    }

    sync_msg m = { .type = SYNC_MSG_HELLO };
    sync_hello *h = &m.u.hello;
    h->proto_min = c->proto_min;
    h->proto_max = c->proto_max;
    h->site = c->site;
    h->token = c->token;
    h->agent_version = c->agent_version;
    h->graph_revision = c->ops.graph_revision(c->user);
    h->placement_revision = c->ops.placement_revision(c->user);
    h->has_capacity = c->has_capacity;
    h->capacity = c->capacity;
    if (c->up_enabled) {
        h->incarnation = c->incarnation;
        h->has_first_unacked_up_seq = true;
        h->first_unacked_up_seq = c->up_next;
    }
    if (c->down_enabled) {
        h->has_last_acked_down_seq = true;
        h->last_acked_down_seq = c->ops.down_applied_seq(c->user);
    }
    kt_status st = client_send(c, &m, err);
    if (st != KT_OK) {
        client_end(c);
    }
    return st;
}

void sync_client_note_rx(sync_client *c)
{
    c->last_rx_ms = c->ops.now_ms(c->user);
}

void sync_client_on_close(sync_client *c)
{
    client_end(c);
    c->state = SYNC_CLIENT_IDLE;
    c->connected = false;
    c->welcomed = false;
    kt_free(c->hub_id);
    c->hub_id = NULL;
    c->fl_head = 0;
    c->fl_len = 0;
    c->up_inflight = 0;
}

/* ---- upstream ---------------------------------------------------------------- */

static void fl_push(sync_client *c, uint64_t last_seq, size_t bytes)
{
    if (c->fl_len == c->fl_cap) {
        if (c->fl_head > 0) {
            memmove(c->fl, c->fl + c->fl_head, (c->fl_len - c->fl_head) * sizeof *c->fl);
            c->fl_len -= c->fl_head;
            c->fl_head = 0;
        }
        if (c->fl_len == c->fl_cap) {
            c->fl_cap = c->fl_cap == 0 ? 16 : c->fl_cap * 2;
            c->fl = kt_xrealloc(c->fl, c->fl_cap * sizeof *c->fl);
        }
    }
    c->fl[c->fl_len++] = (inflight){ last_seq, bytes };
    c->up_inflight += bytes;
}

/*
 * Send EventBatch{UP}s from the outbox while the window allows. Stops when
 * the outbox has nothing more or the window is full.
 */
static kt_status up_pump(sync_client *c, kt_err *err)
{
    size_t inc_len = strlen(c->incarnation);
    c->up_more = false;
    for (;;) {
        size_t cap = c->window_bytes;
        if (c->up_inflight > 0) {
            if (c->up_inflight >= cap) {
                c->stats.up_window_waits++;
                return KT_OK;
            }
            cap -= c->up_inflight;
        }
        if (cap > c->limits.max_message_bytes) {
            cap = c->limits.max_message_bytes;
        }
        const sync_event *evs = NULL;
        size_t n = 0;
        kt_status st = c->ops.up_next(&evs, &n, c->up_next, c->max_batch_events, cap, err, c->user);
        if (st != KT_OK) {
            return st;
        }
        if (n == 0) {
            return KT_OK;
        }
        if (evs == NULL) {
            return kt_err_set(err, KT_EINTERNAL, "up_next: %zu events, NULL array", n);
        }
        if (n > c->max_batch_events) {
            n = c->max_batch_events;
        }
        /* The longest prefix that fits cap (at least one event when nothing is in flight). */
        size_t k = 0;
        size_t total = 0;
        for (; k < n; k++) {
            const sync_event *ev = &evs[k];
            if (ev->id == NULL || ev->type == NULL || ev->source == NULL) {
                return kt_err_set(err, KT_EINTERNAL, "up_next: event seq %llu lacks id/type/source",
                                  (unsigned long long)(c->up_next + k));
            }
            size_t sz = sync_msg__event_size(ev);
            size_t want = sync_msg__batch_size(total + sz, inc_len);
            if (want > cap && (k > 0 || c->up_inflight > 0)) {
                break;
            }
            if (want > c->limits.max_message_bytes) {
                return kt_err_set(err, KT_ETOOBIG,
                                  "outbox event seq %llu: %zu bytes encoded, over the %zu byte "
                                  "message cap",
                                  (unsigned long long)c->up_next, sz, c->limits.max_message_bytes);
            }
            total += sz;
        }
        if (k == 0) {
            c->stats.up_window_waits++;
            return KT_OK;
        }
        sync_msg m = { .type = SYNC_MSG_EVENTS };
        m.u.events.stream = SYNC_STREAM_UP;
        m.u.events.incarnation = c->incarnation;
        m.u.events.first_seq = c->up_next;
        m.u.events.events = evs;
        m.u.events.n_events = k;
        st = client_send(c, &m, err);
        if (st != KT_OK) {
            return st;
        }
        fl_push(c, c->up_next + k - 1, c->tx.len);
        c->up_next += k;
        c->stats.up_batches_sent++;
        c->stats.up_events_sent += k;
        if (c->one_batch_per_call) {
            /* The rest from a later turn; a short batch means the outbox had no more. */
            c->up_more = k == n && n == c->max_batch_events;
            return KT_OK;
        }
    }
}

static kt_status on_up_ack(sync_client *c, uint64_t seq, kt_err *err)
{
    if (!c->up_enabled || !c->welcomed) {
        return KT_OK; /* nothing sent upstream: an ack of nothing */
    }
    if (seq >= c->up_next) {
        return kt_err_set(err, KT_EPROTO, "ack.seq: up %llu but only up to %llu was sent",
                          (unsigned long long)seq, (unsigned long long)(c->up_next - 1));
    }
    if (seq <= c->up_acked) {
        return KT_OK; /* an older ack */
    }
    kt_status st = c->ops.up_acked(seq, err, c->user);
    if (st != KT_OK) {
        return st;
    }
    c->stats.up_events_acked += seq - c->up_acked;
    c->up_acked = seq;
    while (c->fl_head < c->fl_len && c->fl[c->fl_head].last_seq <= seq) {
        c->up_inflight -= c->fl[c->fl_head].bytes;
        c->fl_head++;
    }
    if (c->fl_head == c->fl_len) {
        c->fl_head = 0;
        c->fl_len = 0;
    }
    return up_pump(c, err);
}

bool sync_client_up_more(const sync_client *c)
{
    return c->up_more && c->welcomed && c->state != SYNC_CLIENT_DONE &&
           c->state != SYNC_CLIENT_IDLE;
}

kt_status sync_client_kick(sync_client *c, kt_err *err)
{
    if (!c->up_enabled || !c->welcomed || c->state == SYNC_CLIENT_DONE ||
        c->state == SYNC_CLIENT_IDLE) {
        return KT_OK;
    }
    kt_status st = up_pump(c, err);
    if (st != KT_OK) {
        client_end(c);
    }
    return st;
}

/* ---- downstream -------------------------------------------------------------- */

static kt_status on_events(sync_client *c, const sync_event_batch *b, kt_err *err)
{
    if (!c->welcomed) {
        return kt_err_set(err, KT_EPROTO, "events: before welcome");
    }
    if (b->stream != SYNC_STREAM_DOWN) {
        return kt_err_set(err, KT_EPROTO, "events.stream: the hub may not send %s batches",
                          sync_msg_stream_str(b->stream));
    }
    if (!c->down_enabled) {
        return kt_err_set(err, KT_EPROTO, "events: down batch, but this agent takes none");
    }
    if (c->snap_open) {
        return kt_err_set(err, KT_EPROTO, "events: down batch while snapshot %llu is streaming",
                          (unsigned long long)c->snap_revision);
    }
    c->stats.down_batches++;
    uint64_t applied = c->ops.down_applied_seq(c->user);
    uint64_t last = b->first_seq + (uint64_t)(b->n_events - 1);
    if (c->down_skip_to != 0 && b->first_seq == c->down_skip_to && b->first_seq > applied + 1) {
        /* The hub no longer holds applied+1 .. first_seq-1 (announced in the Welcome). */
        c->stats.down_skipped += b->first_seq - (applied + 1);
        applied = b->first_seq - 1;
    }
    c->down_skip_to = 0;
    if (b->first_seq > applied + 1) {
        return kt_err_set(err, KT_EPROTO, "events.first_seq: down %llu, but %llu is the next",
                          (unsigned long long)b->first_seq, (unsigned long long)(applied + 1));
    }
    if (last > applied) {
        size_t skip = (size_t)(applied + 1 - b->first_seq);
        c->stats.down_duplicates += skip;
        kt_status st =
            c->ops.down_apply(applied + 1, b->events + skip, b->n_events - skip, err, c->user);
        if (st != KT_OK) {
            return st;
        }
        c->stats.down_events_applied += b->n_events - skip;
    } else {
        c->stats.down_duplicates += b->n_events;
    }
    return send_ack(c, SYNC_STREAM_DOWN, last, err);
}

/* ---- message handlers ------------------------------------------------------ */

static kt_status on_welcome(sync_client *c, const sync_welcome *w, kt_err *err)
{
    if (c->state != SYNC_CLIENT_HELLO_SENT) {
        return kt_err_set(err, KT_EPROTO, "welcome: unexpected in state %s",
                          sync_client_state_str(c->state));
    }
    if (w->proto < c->proto_min || w->proto > c->proto_max) {
        return kt_err_set(err, KT_EPROTO, "welcome.proto: %u outside the offered %u..%u", w->proto,
                          c->proto_min, c->proto_max);
    }
    if (w->mode == SYNC_MODE_UP_TO_DATE) {
        uint64_t mine = c->ops.graph_revision(c->user);
        if (w->graph_revision != mine) {
            return kt_err_set(err, KT_EPROTO,
                              "welcome.graph_revision: %llu with mode up_to_date, but the store "
                              "is at %llu",
                              (unsigned long long)w->graph_revision, (unsigned long long)mine);
        }
    }
    kt_free(c->hub_id);
    c->hub_id = kt_xstrdup(w->hub_id);
    c->heartbeat_ms = w->heartbeat_ms != 0 ? w->heartbeat_ms : c->heartbeat_default_ms;
    c->proto = w->proto;
    c->welcomed = true;
    c->state = SYNC_CLIENT_SYNCED;
    c->last_tx_ms = c->ops.now_ms(c->user);
    c->window_bytes = w->window_bytes != 0 ? w->window_bytes : c->window_default;
    if (c->down_enabled && w->down_next_seq != 0) {
        uint64_t applied = c->ops.down_applied_seq(c->user);
        if (applied < UINT64_MAX && w->down_next_seq > applied + 1) {
            c->down_skip_to = w->down_next_seq;
        }
    }
    c->stats.welcomes++;
    if (c->ops.on_welcome != NULL) {
        c->ops.on_welcome(w, c->user);
    }
    if (c->up_enabled) {
        return up_pump(c, err);
    }
    return KT_OK;
}

static kt_status on_snapshot(sync_client *c, const sync_snapshot_chunk *ch, kt_err *err)
{
    if (!c->welcomed) {
        return kt_err_set(err, KT_EPROTO, "snapshot: before welcome");
    }
    kt_status st;
    if (!c->snap_open) {
        if (ch->index != 0) {
            return kt_err_set(err, KT_EPROTO, "snapshot.index: %u, expected 0 to start", ch->index);
        }
        st = c->ops.snapshot_begin(ch->revision, err, c->user);
        if (st != KT_OK) {
            return st;
        }
        c->snap_open = true;
        c->snap_revision = ch->revision;
        c->snap_next_index = 0;
        c->state = SYNC_CLIENT_SNAPSHOT;
    } else {
        if (ch->revision != c->snap_revision) {
            return kt_err_set(err, KT_EPROTO, "snapshot.revision: %llu in a snapshot of %llu",
                              (unsigned long long)ch->revision,
                              (unsigned long long)c->snap_revision);
        }
        if (ch->index != c->snap_next_index) {
            return kt_err_set(err, KT_EPROTO, "snapshot.index: %u, expected %u", ch->index,
                              c->snap_next_index);
        }
    }
    if (ch->n_objects > 0) {
        st = c->ops.snapshot_put(ch->objects, ch->n_objects, err, c->user);
        if (st != KT_OK) {
            return st;
        }
        c->stats.snapshot_objects += ch->n_objects;
    }
    c->snap_next_index++;
    if (!ch->last) {
        return KT_OK;
    }
    st = c->ops.snapshot_commit(ch->revision, err, c->user);
    if (st != KT_OK) {
        return st;
    }
    /* Committed: nothing left to abort, even if the Ack cannot be sent. */
    c->snap_open = false;
    c->state = SYNC_CLIENT_SYNCED;
    c->stats.snapshots_committed++;
    return send_ack(c, SYNC_STREAM_GRAPH, ch->revision, err);
}

static kt_status on_delta(sync_client *c, const sync_delta *d, kt_err *err)
{
    if (!c->welcomed) {
        return kt_err_set(err, KT_EPROTO, "delta: before welcome");
    }
    if (c->snap_open) {
        return kt_err_set(err, KT_EPROTO, "delta: while snapshot %llu is streaming",
                          (unsigned long long)c->snap_revision);
    }
    uint64_t mine = c->ops.graph_revision(c->user);
    if (d->from_revision != mine) {
        return kt_err_set(err, KT_EPROTO, "delta.from_revision: %llu, but the store is at %llu",
                          (unsigned long long)d->from_revision, (unsigned long long)mine);
    }
    kt_status st = c->ops.delta_apply(d, err, c->user);
    if (st != KT_OK) {
        return st;
    }
    c->stats.deltas_applied++;
    c->stats.delta_objects += d->n_objects;
    return send_ack(c, SYNC_STREAM_GRAPH, d->to_revision, err);
}

static kt_status on_placement(sync_client *c, const sync_placement *p, kt_err *err)
{
    if (!c->welcomed) {
        return kt_err_set(err, KT_EPROTO, "placement: before welcome");
    }
    kt_status st = c->ops.placement_apply(p, err, c->user);
    if (st != KT_OK) {
        return st;
    }
    c->stats.placements_applied++;
    return send_ack(c, SYNC_STREAM_PLACEMENT, p->revision, err);
}

static kt_status dispatch(sync_client *c, const sync_msg *m, kt_err *err)
{
    switch (m->type) {
    case SYNC_MSG_REJECT:
        c->last_reject = m->u.reject.code;
        c->last_retry_after_ms = m->u.reject.retry_after_ms;
        c->stats.rejects++;
        return kt_err_set(
            err, KT_ECLOSED, "hub rejected: %s%s%s (retry after %u ms)",
            sync_msg_reject_str(m->u.reject.code), m->u.reject.message != NULL ? ": " : "",
            m->u.reject.message != NULL ? m->u.reject.message : "", m->u.reject.retry_after_ms);
    case SYNC_MSG_WELCOME:
        return on_welcome(c, &m->u.welcome, err);
    case SYNC_MSG_SNAPSHOT:
        return on_snapshot(c, &m->u.snapshot, err);
    case SYNC_MSG_DELTA:
        return on_delta(c, &m->u.delta, err);
    case SYNC_MSG_PLACEMENT:
        return on_placement(c, &m->u.placement, err);
    case SYNC_MSG_HEARTBEAT:
        c->stats.heartbeats_received++;
        return KT_OK;
    case SYNC_MSG_ACK:
        if (m->u.ack.stream == SYNC_STREAM_UP) {
            return on_up_ack(c, m->u.ack.seq, err);
        }
        return KT_OK; /* other streams: the agent sends those acks, the hub does not */
    case SYNC_MSG_EVENTS:
        return on_events(c, &m->u.events, err);
    case SYNC_MSG_HELLO:
    case SYNC_MSG_CAPACITY:
    case SYNC_MSG_NONE:
        break;
    }
    return kt_err_set(err, KT_EPROTO, "%s: the hub may not send this", sync_msg_type_str(m->type));
}

kt_status sync_client_on_message(sync_client *c, const uint8_t *buf, size_t len, kt_err *err)
{
    if (c->state == SYNC_CLIENT_IDLE || c->state == SYNC_CLIENT_DONE) {
        return KT_OK; /* late bytes after the session ended */
    }
    c->stats.msgs_in++;
    c->stats.bytes_in += len;
    c->last_rx_ms = c->ops.now_ms(c->user);
    const sync_msg *m = NULL;
    kt_status st = sync_msg__decoder_decode(&m, &c->dec, buf, len, &c->limits, err);
    if (st == KT_OK) {
        st = dispatch(c, m, err);
    }
    if (!c->snap_open) {
        /* The decoder's block is kept across the chunks of a snapshot (one block for all,
         * no allocation per chunk) and given back after its last one or any big message:
         * the agent's 2 MiB of it stayed resident for the whole session (agent-rss). */
        sync_msg__decoder_trim(&c->dec);
    }
    c->stats.decoder_bytes = c->dec._arena.total_bytes;
    if (st != KT_OK) {
        if (st == KT_EPROTO || st == KT_ETOOBIG) {
            c->stats.protocol_errors++;
        }
        client_end(c);
    }
    return st;
}

/* ---- time ------------------------------------------------------------------- */

uint64_t sync_client_next_tick_ms(const sync_client *c)
{
    if (c->state == SYNC_CLIENT_IDLE || c->state == SYNC_CLIENT_DONE) {
        return UINT64_MAX;
    }
    if (!c->welcomed) {
        return c->opened_ms + c->handshake_timeout_ms;
    }
    uint64_t hb = c->last_tx_ms + c->heartbeat_ms;
    uint64_t dead = c->last_rx_ms + (uint64_t)SILENT_INTERVALS * c->heartbeat_ms;
    return hb < dead ? hb : dead;
}

kt_status sync_client_tick(sync_client *c, kt_err *err)
{
    if (c->state == SYNC_CLIENT_IDLE || c->state == SYNC_CLIENT_DONE) {
        return KT_OK;
    }
    uint64_t now = c->ops.now_ms(c->user);
    if (!c->welcomed) {
        if (now - c->opened_ms >= c->handshake_timeout_ms) {
            c->stats.timeouts++;
            client_end(c);
            return kt_err_set(err, KT_ETIMEDOUT, "no welcome from the hub within %u ms",
                              c->handshake_timeout_ms);
        }
        return KT_OK;
    }
    uint64_t silent = now - c->last_rx_ms;
    if (now >= c->last_rx_ms && silent >= (uint64_t)SILENT_INTERVALS * c->heartbeat_ms) {
        c->stats.timeouts++;
        client_end(c);
        return kt_err_set(err, KT_ETIMEDOUT, "hub silent for %llu ms (heartbeat %u ms)",
                          (unsigned long long)silent, c->heartbeat_ms);
    }
    if (now >= c->last_tx_ms && now - c->last_tx_ms >= c->heartbeat_ms) {
        sync_msg m = { .type = SYNC_MSG_HEARTBEAT };
        m.u.heartbeat.sent_ms = c->ops.wall_ms(c->user);
        kt_status st = client_send(c, &m, err);
        if (st != KT_OK) {
            client_end(c);
            return st;
        }
        c->stats.heartbeats_sent++;
    }
    return KT_OK;
}

kt_status sync_client_report_capacity(sync_client *c, const sync_capacity *cap, kt_err *err)
{
    c->has_capacity = true;
    c->capacity = *cap;
    if (!c->welcomed || c->state == SYNC_CLIENT_DONE) {
        return KT_OK;
    }
    sync_msg m = { .type = SYNC_MSG_CAPACITY };
    m.u.capacity.capacity = *cap;
    kt_status st = client_send(c, &m, err);
    if (st != KT_OK) {
        client_end(c);
    }
    return st;
}

/* ---- getters ---------------------------------------------------------------- */

sync_client_state sync_client_state_get(const sync_client *c)
{
    return c->state;
}

bool sync_client_connected(const sync_client *c)
{
    return c->connected;
}

bool sync_client_welcomed(const sync_client *c)
{
    return c->welcomed;
}

sync_reject_code sync_client_last_reject_code(const sync_client *c)
{
    return c->last_reject;
}

uint32_t sync_client_last_retry_after_ms(const sync_client *c)
{
    return c->last_retry_after_ms;
}

const char *sync_client_hub_id(const sync_client *c)
{
    return c->hub_id;
}

uint32_t sync_client_heartbeat_ms(const sync_client *c)
{
    return c->heartbeat_ms;
}

uint32_t sync_client_proto(const sync_client *c)
{
    return c->proto;
}

uint32_t sync_client_window_bytes(const sync_client *c)
{
    return c->window_bytes;
}

size_t sync_client_up_inflight_bytes(const sync_client *c)
{
    return c->up_inflight;
}

uint64_t sync_client_up_next_seq(const sync_client *c)
{
    return c->up_enabled && c->welcomed ? c->up_next : 0;
}

const sync_client_stats *sync_client_stats_get(const sync_client *c)
{
    return &c->stats;
}
