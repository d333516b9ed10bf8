/*
 * fuzz_sync_session.c — drive a sync_client (agent role) or a sync_server
 * (hub role) with arbitrary peer messages, clock jumps, reconnects and
 * pushes, against small in-memory stores.
 *
 * Input: byte 0 picks the role (even = client, odd = server); then records
 *   [op][len_lo][len_hi][len bytes when op is a message]
 * op % 4: 0 = a message from the peer, 1 = time advances len * 10 ms and
 * tick runs, 2 = the connection closes and reopens, 3 = a local event
 * (server: len % 8 == 5 the event store commits what it received and acks
 * it, len % 8 == 7 downstream events are queued and kicked, else a delta
 * (even) or placement (odd) push; client: len % 4 == 1 the outbox grows
 * and is kicked, else a capacity report).
 *
 * Invariants checked (abort on violation): the agent's snapshot transaction
 * is open only between begin and commit/abort and never survives a close;
 * a delta is applied only when it starts at the store's revision; the hub's
 * snapshot iterator is released once per use; the outbox is never read
 * below its acked seq nor acked beyond what it holds; downstream events are
 * applied once each, in order, never inside a snapshot; the hub is never
 * handed an upstream seq twice per incarnation and never asked for a
 * downstream seq it was told is applied; nothing leaks or crashes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/client.h"
#include "sync/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz {
    uint64_t now;
    uint64_t graph_rev;
    uint64_t placement_rev;
    int staging;
    int snap_iters; /* hub: snapshot iterations open */
    size_t snap_pos;
    int eagain_every;
    int sends;
    /* agent event streams */
    uint64_t out_n;     /* outbox holds seqs out_acked+1 .. out_n */
    uint64_t out_acked; /* rows <= this are deleted */
    uint64_t down_applied;
    uint64_t skip_to; /* the last Welcome's down_next_seq: the one allowed jump */
    /* hub event streams */
    uint64_t hub_received; /* highest upstream seq handed over (inc-1) */
    uint64_t hub_committed;
    uint64_t hub_down_n; /* downstream queue holds 1 .. hub_down_n */
    uint64_t hub_down_acked;
    sync_server *srv; /* for ack_up */
} fz;

static const sync_event EVS[4] = {
    { "e1", "ktwin.real.iface", "a", NULL, 1, "application/json", (const uint8_t *)"{}", 2, 0 },
    { "e2", "ktwin.virtual.iface", "b", "s", 0, NULL, NULL, 0, 1 },
    { "e3", "ktwin.command.iface.reset", "a", NULL, 3, NULL, (const uint8_t *)"xyz", 3, 2 },
    { "e4", "ktwin.real.iface", "b", NULL, 4, "text/plain", (const uint8_t *)"0123456789", 10, 0 },
};
static sync_event VIEW[64];

static kt_status f_send(const uint8_t *b, size_t n, void *user)
{
    fz *f = user;
    (void)b;
    (void)n;
    f->sends++;
    if (f->eagain_every != 0 && f->sends % f->eagain_every == 0) {
        return KT_EAGAIN;
    }
    return KT_OK;
}

static kt_status f_send_client(const uint8_t *b, size_t n, void *user)
{
    (void)b;
    (void)n;
    (void)user;
    return KT_OK;
}

static uint64_t f_now(void *user)
{
    return ((fz *)user)->now;
}

static uint64_t f_graph(void *user)
{
    return ((fz *)user)->graph_rev;
}

static uint64_t f_placement_rev(void *user)
{
    return ((fz *)user)->placement_rev;
}

static kt_status f_begin(uint64_t rev, kt_err *err, void *user)
{
    (void)rev;
    (void)err;
    fz *f = user;
    if (f->staging) {
        abort();
    }
    f->staging = 1;
    return KT_OK;
}

static kt_status f_put(const sync_object *o, size_t n, kt_err *err, void *user)
{
    fz *f = user;
    if (!f->staging) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (o[i].deleted || o[i].name == NULL || o[i].body == NULL) {
            abort();
        }
    }
    if (n == 7) {
        return kt_err_set(err, KT_EDEP, "store refuses 7");
    }
    return KT_OK;
}

static kt_status f_commit(uint64_t rev, kt_err *err, void *user)
{
    (void)err;
    fz *f = user;
    if (!f->staging) {
        abort();
    }
    f->staging = 0;
    f->graph_rev = rev;
    return KT_OK;
}

static void f_abort(void *user)
{
    fz *f = user;
    if (!f->staging) {
        abort();
    }
    f->staging = 0;
}

static kt_status f_delta(const sync_delta *d, kt_err *err, void *user)
{
    (void)err;
    fz *f = user;
    if (f->staging || d->from_revision != f->graph_rev || d->to_revision < d->from_revision) {
        abort();
    }
    f->graph_rev = d->to_revision;
    return KT_OK;
}

static kt_status f_place(const sync_placement *p, kt_err *err, void *user)
{
    (void)err;
    ((fz *)user)->placement_rev = p->revision;
    return KT_OK;
}

static const char *f_inc(void *user)
{
    (void)user;
    return "inc-1";
}

static uint64_t f_out_acked(void *user)
{
    return ((fz *)user)->out_acked;
}

static kt_status f_up_next(const sync_event **out,
                           size_t *n,
                           uint64_t from,
                           size_t max_events,
                           size_t max_bytes,
                           kt_err *err,
                           void *user)
{
    (void)err;
    fz *f = user;
    if (from <= f->out_acked || from > f->out_n + 1 || max_events == 0) {
        abort();
    }
    size_t k = 0;
    size_t bytes = 0;
    for (uint64_t seq = from; seq <= f->out_n && k < max_events && k < 64; seq++) {
        const sync_event *ev = &EVS[seq % 4];
        if (k > 0 && bytes + ev->data_len > max_bytes) {
            break;
        }
        bytes += ev->data_len;
        VIEW[k++] = *ev;
    }
    *out = VIEW;
    *n = k;
    return KT_OK;
}

static kt_status f_out_ack(uint64_t seq, kt_err *err, void *user)
{
    (void)err;
    fz *f = user;
    if (seq <= f->out_acked || seq > f->out_n) {
        abort();
    }
    f->out_acked = seq;
    return KT_OK;
}

static uint64_t f_down_applied(void *user)
{
    return ((fz *)user)->down_applied;
}

static kt_status
f_down_apply(uint64_t first, const sync_event *evs, size_t n, kt_err *err, void *user)
{
    fz *f = user;
    if (first != f->down_applied + 1) {
        if (first != f->skip_to || first < f->down_applied + 1) {
            abort(); /* a gap the Welcome did not announce, or a duplicate */
        }
    }
    f->skip_to = 0;
    if (f->staging || n == 0 || evs == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (evs[i].id == NULL || evs[i].type == NULL || evs[i].source == NULL ||
            evs[i].data == NULL || evs[i].data[evs[i].data_len] != '\0') {
            abort();
        }
    }
    if (n == 5) {
        return kt_err_set(err, KT_EDEP, "store refuses 5");
    }
    f->down_applied = first + n - 1;
    return KT_OK;
}

static kt_status
f_committed(uint64_t *seq_out, const char *site, const char *inc, kt_err *err, void *user)
{
    (void)site;
    (void)err;
    fz *f = user;
    *seq_out = strcmp(inc, "inc-1") == 0 ? f->hub_committed : 0;
    f->hub_received = *seq_out; /* per session: what the store has */
    return KT_OK;
}

static kt_status f_up_batch(const char *site,
                            const char *inc,
                            uint64_t first,
                            const sync_event *evs,
                            size_t n,
                            kt_err *err,
                            void *user)
{
    (void)site;
    (void)err;
    fz *f = user;
    if (n == 0 || evs == NULL) {
        abort();
    }
    if (strcmp(inc, "inc-1") == 0) {
        if (first <= f->hub_received) {
            abort(); /* a duplicate got through */
        }
        f->hub_received = first + n - 1;
    }
    return KT_OK;
}

static kt_status f_down_next(const sync_event **out,
                             size_t *n,
                             uint64_t from,
                             size_t max_events,
                             size_t max_bytes,
                             kt_err *err,
                             void *user)
{
    (void)err;
    (void)max_bytes;
    fz *f = user;
    if (from == 0 || max_events == 0) {
        abort();
    }
    size_t k = 0;
    for (uint64_t seq = from; seq <= f->hub_down_n && k < max_events && k < 64; seq++) {
        VIEW[k++] = EVS[seq % 4];
    }
    *out = VIEW;
    *n = k;
    return KT_OK;
}

static kt_status f_down_acked(uint64_t seq, kt_err *err, void *user)
{
    (void)err;
    fz *f = user;
    if (seq == 0 || seq > f->hub_down_n) {
        abort(); /* acks are checked against what was sent */
    }
    if (seq > f->hub_down_acked) {
        f->hub_down_acked = seq;
    }
    return KT_OK;
}

static uint64_t f_down_first(void *user)
{
    return ((fz *)user)->hub_down_acked + 1;
}

static sync_auth_result f_auth(const char *site, const char *token, void *user)
{
    (void)user;
    if (strcmp(token, "t") != 0) {
        return SYNC_AUTH_BAD_TOKEN;
    }
    return site[0] == 'x' ? SYNC_AUTH_UNKNOWN_SITE : SYNC_AUTH_OK;
}

static uint32_t f_admit(const char *site, void *user)
{
    (void)user;
    return site[0] == 'b' ? 500 : 0;
}

static const sync_object OBJS[3] = {
    { SYNC_KIND_TWIN_INTERFACE, "iface", (const uint8_t *)"{}", 2, false, 1 },
    { SYNC_KIND_TWIN_INSTANCE, "a", (const uint8_t *)"{\"a\":1}", 7, false, 2 },
    { SYNC_KIND_TWIN_INSTANCE, "b", (const uint8_t *)"{\"b\":1}", 7, false, 3 },
};
static const sync_delta JOURNAL[2] = { { 1, 2, OBJS + 1, 1 }, { 2, 3, OBJS + 2, 1 } };
static const sync_iface_placement IFS[1] = { { "iface", SYNC_WHERE_EDGE, NULL, NULL, NULL } };
static const sync_placement PLACEMENT = { 4, IFS, 1 };

static kt_status f_plan(sync_mode *mode, uint64_t *rev, const sync_hello *h, kt_err *err,
                        void *user)
{
    (void)err;
    fz *f = user;
    *rev = 3;
    if (h->graph_revision == 3) {
        *mode = SYNC_MODE_UP_TO_DATE;
    } else if (h->graph_revision == 1 || h->graph_revision == 2) {
        *mode = SYNC_MODE_DELTA;
    } else {
        *mode = SYNC_MODE_SNAPSHOT;
        f->snap_iters++;
        f->snap_pos = 0;
    }
    return KT_OK;
}

static kt_status f_snap_next(const sync_object **o, size_t *n, kt_err *err, void *user)
{
    (void)err;
    fz *f = user;
    if (f->snap_iters != 1) {
        abort();
    }
    *o = OBJS + f->snap_pos;
    *n = f->snap_pos < 3 ? 1 : 0;
    f->snap_pos += *n;
    return KT_OK;
}

static void f_snap_done(void *user)
{
    fz *f = user;
    if (f->snap_iters != 1) {
        abort();
    }
    f->snap_iters--;
}

static kt_status f_delta_next(const sync_delta **out, uint64_t from, kt_err *err, void *user)
{
    (void)user;
    *out = NULL;
    if (from == 1 || from == 2) {
        *out = &JOURNAL[from - 1];
        return KT_OK;
    }
    if (from >= 3) {
        return KT_OK;
    }
    return kt_err_set(err, KT_ENOTFOUND, "journal starts at 1");
}

static kt_status f_placement(const sync_placement **out, kt_err *err, void *user)
{
    (void)err;
    (void)user;
    *out = &PLACEMENT;
    return KT_OK;
}

static void run_client(fz *f, const uint8_t *p, const uint8_t *end)
{
    sync_client_ops ops = { .send = f_send_client, .now_ms = f_now, .wall_ms = f_now,
                            .graph_revision = f_graph, .placement_revision = f_placement_rev,
                            .snapshot_begin = f_begin, .snapshot_put = f_put,
                            .snapshot_commit = f_commit, .snapshot_abort = f_abort,
                            .delta_apply = f_delta, .placement_apply = f_place,
                            .up_incarnation = f_inc, .up_acked_seq = f_out_acked,
                            .up_next = f_up_next, .up_acked = f_out_ack,
                            .down_applied_seq = f_down_applied, .down_apply = f_down_apply };
    sync_client_opts opts = { .site = "site-a", .token = "t",
                              .limits = { .max_message_bytes = 1u << 16, .max_objects = 32,
                                          .max_events = 16 },
                              .window_bytes = 256, .max_batch_events = 8 };
    sync_client *c = NULL;
    if (sync_client_new(&c, &opts, &ops, f, NULL) != KT_OK) {
        abort();
    }
    (void)sync_client_on_open(c, NULL);
    while (end - p >= 3) {
        unsigned op = p[0] % 4u;
        size_t len = (size_t)p[1] | ((size_t)p[2] << 8);
        p += 3;
        if (op == 0) {
            if (len > (size_t)(end - p)) {
                len = (size_t)(end - p);
            }
            sync_msg *m = NULL;
            if (sync_msg_decode(&m, p, len, &opts.limits, NULL) == KT_OK &&
                m->type == SYNC_MSG_WELCOME) {
                f->skip_to = m->u.welcome.down_next_seq;
            }
            sync_msg_free(m);
            (void)sync_client_on_message(c, p, len, NULL);
            p += len;
        } else if (op == 1) {
            f->now += len * 10u;
            (void)sync_client_tick(c, NULL);
        } else if (op == 2) {
            sync_client_on_close(c);
            if (f->staging) {
                abort();
            }
            (void)sync_client_on_open(c, NULL);
        } else if (len % 4 == 1) {
            f->out_n += len % 7 + 1;
            (void)sync_client_kick(c, NULL);
        } else {
            sync_capacity cap = { true, (uint32_t)len, false, 0 };
            (void)sync_client_report_capacity(c, &cap, NULL);
        }
    }
    sync_client_on_close(c);
    if (f->staging) {
        abort();
    }
    sync_client_free(c);
}

static void run_server(fz *f, const uint8_t *p, const uint8_t *end)
{
    sync_server_ops ops = { .send = f_send, .now_ms = f_now, .wall_ms = f_now, .auth = f_auth,
                            .admit = f_admit, .plan = f_plan, .snapshot_next = f_snap_next,
                            .snapshot_done = f_snap_done, .delta_next = f_delta_next,
                            .placement = f_placement, .up_committed_seq = f_committed,
                            .on_up_batch = f_up_batch, .down_next = f_down_next,
                            .down_acked = f_down_acked, .down_first_seq = f_down_first };
    sync_server_opts opts = { .hub_id = "hub", .chunk_bytes = 16, .max_queue_bytes = 4096,
                              .limits = { .max_message_bytes = 1u << 16, .max_events = 16 },
                              .window_bytes = 128, .max_batch_events = 4 };
    sync_server *s = NULL;
    if (sync_server_new(&s, &opts, &ops, f, NULL) != KT_OK) {
        abort();
    }
    f->srv = s;
    uint64_t pushed = 3;
    while (end - p >= 3) {
        unsigned op = p[0] % 4u;
        size_t len = (size_t)p[1] | ((size_t)p[2] << 8);
        p += 3;
        if (op == 0) {
            if (len > (size_t)(end - p)) {
                len = (size_t)(end - p);
            }
            (void)sync_server_on_message(s, p, len, NULL);
            p += len;
            f->eagain_every = (int)(len % 4u);
        } else if (op == 1) {
            f->now += len * 10u;
            (void)sync_server_tick(s, NULL);
            (void)sync_server_writable(s, NULL);
        } else if (op == 2) {
            sync_server_on_close(s);
            sync_server_free(s);
            if (f->snap_iters != 0) {
                abort();
            }
            if (sync_server_new(&s, &opts, &ops, f, NULL) != KT_OK) {
                abort();
            }
            f->srv = s;
        } else if (len % 8 == 5) {
            /* The event store commits what it received on this session. */
            if (f->hub_received > f->hub_committed) {
                f->hub_committed = f->hub_received;
            }
            (void)sync_server_ack_up(s, f->hub_committed, NULL);
        } else if (len % 8 == 7) {
            f->hub_down_n += len % 5 + 1;
            (void)sync_server_kick_down(s, NULL);
        } else if (len % 2 == 0) {
            sync_delta d = { pushed, pushed + len % 3, OBJS, len % 4 };
            pushed = d.to_revision;
            (void)sync_server_push_delta(s, &d, NULL);
        } else {
            sync_placement pl = { len, IFS, 1 };
            (void)sync_server_push_placement(s, &pl, NULL);
        }
    }
    sync_server_on_close(s);
    sync_server_free(s);
    if (f->snap_iters != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    fz f;
    memset(&f, 0, sizeof f);
    f.now = 1000;
    if (data[0] % 2 == 0) {
        f.graph_rev = data[0] / 2u % 5u;
        run_client(&f, data + 1, data + size);
    } else {
        run_server(&f, data + 1, data + size);
    }
    return 0;
}
