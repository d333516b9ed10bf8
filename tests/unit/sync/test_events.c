/*
 * test_events.c — the event streams of the sync protocol: a sync_client
 * (agent) with an in-memory outbox and downstream store, wired through an
 * in-memory transport to a sync_server (hub) with an in-memory event store
 * and downstream queue, on a fake clock (no sleeps).
 *
 * The hub's event store outlives the sessions (a new sync_server per
 * connection, as in hub/fed.c); the agent's outbox outlives the
 * connections. The rig checks the window independently of the library: it
 * decodes every EventBatch it carries and every Ack it delivers, and fails
 * when the unacked EventBatch bytes of a direction would pass the window.
 *
 * Covers: upstream batches committed once, acked and deleted; the window on
 * both streams; reconnect resending unacked events with the hub dropping
 * duplicates by (site, incarnation, seq) and re-acking them; a wiped agent
 * (new incarnation) not taken for duplicates; asynchronous hub acks;
 * downstream in order, deduped on reconnect and against overlapping
 * batches; kick; malformed, oversized and out-of-order batches and acks on
 * both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "sync/client.h"
#include "sync/msg.h"
#include "sync/server.h"
#include "wire_queue.h"

/* Unacked EventBatch bytes of one direction, tracked from the wire. */
typedef struct wire_window {
    uint64_t last[4096];
    size_t bytes[4096];
    size_t n;
    size_t total;
    size_t max_seen;
} wire_window;

static void ww_sent(wire_window *w, uint64_t last, size_t bytes, size_t window)
{
    if (w->n > 0 && w->total + bytes > window) {
        fail_msg("window: %zu unacked + %zu > %zu", w->total, bytes, window);
    }
    assert_true(w->n < 4096);
    w->last[w->n] = last;
    w->bytes[w->n] = bytes;
    w->n++;
    w->total += bytes;
    if (w->total > w->max_seen) {
        w->max_seen = w->total;
    }
}

static void ww_acked(wire_window *w, uint64_t seq)
{
    size_t k = 0;
    while (k < w->n && w->last[k] <= seq) {
        w->total -= w->bytes[k];
        k++;
    }
    memmove(w->last, w->last + k, (w->n - k) * sizeof w->last[0]);
    memmove(w->bytes, w->bytes + k, (w->n - k) * sizeof w->bytes[0]);
    w->n -= k;
}

/* ---- generated events ------------------------------------------------------------ */

typedef struct gen_event {
    sync_event ev;
    char id[48];
    char source[24];
    char data[160];
} gen_event;

static void gen(gen_event *g, const char *tag, uint64_t seq, size_t pad)
{
    snprintf(g->id, sizeof g->id, "%s-%llu", tag, (unsigned long long)seq);
    snprintf(g->source, sizeof g->source, "pole-%03llu", (unsigned long long)(seq % 7));
    if (pad > 100) {
        pad = 100;
    }
    int n = snprintf(g->data, sizeof g->data, "{\"seq\":%llu,\"pad\":\"%.*s\"}",
                     (unsigned long long)seq, (int)pad,
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxxxxxxxxxx");
    g->ev = (sync_event){ .id = g->id,
                          .type = "ktwin.real.city-pole",
                          .source = g->source,
                          .time_ms = 1700000000000ull + seq,
                          .datacontenttype = "application/json",
                          .data = (const uint8_t *)g->data,
                          .data_len = (size_t)n };
}

/* The seq encoded in an event's data by gen(). */
static uint64_t data_seq(const sync_event *ev)
{
    return strtoull((const char *)ev->data + strlen("{\"seq\":"), NULL, 10);
}

/* ---- agent: outbox and downstream store ------------------------------------------- */

typedef struct agent {
    char inc[32];
    gen_event *out; /* out[i] has seq i + 1; rows <= acked are deleted */
    size_t n_out;
    size_t cap_out;
    uint64_t acked;
    size_t pad;
    sync_event view[2000]; /* what up_next returns (copies of out[]) */
    int up_next_calls;
    int up_acked_calls;
    bool fail_up_acked;

    uint64_t down_applied;
    uint64_t down_log[4096]; /* data seqs of applied down events, in order */
    size_t n_down_log;
    bool fail_down;
    uint64_t skip_to; /* the one first_seq down_apply may jump to */
} agent;

static void outbox_add(agent *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a->n_out == a->cap_out) {
            a->cap_out = a->cap_out ? a->cap_out * 2 : 256;
            a->out = kt_xrealloc(a->out, a->cap_out * sizeof *a->out);
            /* gen_event holds pointers into itself: regenerate after moving. */
            for (size_t j = 0; j < a->n_out; j++) {
                gen(&a->out[j], a->inc, j + 1, a->pad);
            }
        }
        gen(&a->out[a->n_out], a->inc, a->n_out + 1, a->pad);
        a->n_out++;
    }
}

/* The store is wiped: a new incarnation, an empty outbox. */
static void outbox_wipe(agent *a, const char *inc)
{
    kt_free(a->out);
    a->out = NULL;
    a->n_out = 0;
    a->cap_out = 0;
    a->acked = 0;
    snprintf(a->inc, sizeof a->inc, "%s", inc);
}

/* ---- hub: event store and downstream queue -------------------------------------- */

typedef struct row {
    char inc[32];
    uint64_t seq;
    uint64_t data_seq;
} row;

typedef struct hub {
    row *rows; /* committed */
    size_t n_rows;
    size_t cap_rows;
    row *pend; /* received, not committed */
    size_t n_pend;
    size_t cap_pend;
    bool ack_in_op;
    int batches;
    int committed_seq_calls;
    bool fail_committed_seq;

    gen_event *down; /* down[i] has seq i + 1 */
    size_t n_down;
    uint64_t down_acked;
    sync_event dview[2000];
    int down_acked_calls;
} hub;

static void rows_add(row **v, size_t *n, size_t *cap, const char *inc, uint64_t seq, uint64_t ds)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *v = kt_xrealloc(*v, *cap * sizeof **v);
    }
    row *r = &(*v)[(*n)++];
    snprintf(r->inc, sizeof r->inc, "%s", inc);
    r->seq = seq;
    r->data_seq = ds;
}

static uint64_t hub_max_seq(const hub *h, const char *inc)
{
    uint64_t m = 0;
    for (size_t i = 0; i < h->n_rows; i++) {
        if (strcmp(h->rows[i].inc, inc) == 0 && h->rows[i].seq > m) {
            m = h->rows[i].seq;
        }
    }
    return m;
}

/* Every (inc, seq) committed exactly once and seqs 1..n all present. */
static void assert_hub_has_exactly(const hub *h, const char *inc, uint64_t n)
{
    uint8_t *seen = kt_xcalloc(n + 1, 1);
    size_t count = 0;
    for (size_t i = 0; i < h->n_rows; i++) {
        const row *r = &h->rows[i];
        if (strcmp(r->inc, inc) != 0) {
            continue;
        }
        if (r->seq == 0 || r->seq > n) {
            fail_msg("%s: seq %llu outside 1..%llu", inc, (unsigned long long)r->seq,
                     (unsigned long long)n);
        }
        if (seen[r->seq]) {
            fail_msg("%s: seq %llu committed twice", inc, (unsigned long long)r->seq);
        }
        assert_int_equal(r->data_seq, r->seq); /* the payload is the one with that seq */
        seen[r->seq] = 1;
        count++;
    }
    kt_free(seen);
    assert_int_equal(count, n);
}

/* ---- the rig ------------------------------------------------------------------------ */

typedef struct rig {
    uint64_t now;
    queue c2s;
    queue s2c;
    size_t s2c_limit; /* 0 = unlimited; else send() says KT_EAGAIN past it */
    agent a;
    hub h;
    sync_client_opts copts;
    sync_server_opts sopts;
    sync_client_ops cops;
    sync_server_ops sops;
    sync_client *c;
    sync_server *s; /* one per connection */
    kt_status c_st;
    kt_status s_st;
    kt_err c_err;
    kt_err s_err;
    wire_window up_w;
    wire_window down_w;
    uint32_t window; /* the window in force (from the Welcome the rig saw) */
    int up_batches_on_wire;
} rig;

static void note(kt_status *slot, kt_err *keep, kt_status st, const kt_err *err)
{
    if (st != KT_OK && *slot == KT_OK) {
        *slot = st;
        *keep = *err;
    }
}

/* Client ops. */

static kt_status c_send(const uint8_t *b, size_t n, void *user)
{
    rig *r = user;
    sync_msg *m = NULL;
    kt_err err = { 0 };
    if (sync_msg_decode(&m, b, n, NULL, &err) != KT_OK) {
        fail_msg("client sent something undecodable: %s", err.msg);
    }
    if (m->type == SYNC_MSG_EVENTS) {
        assert_int_equal(m->u.events.stream, SYNC_STREAM_UP);
        assert_string_equal(m->u.events.incarnation, r->a.inc);
        ww_sent(&r->up_w, m->u.events.first_seq + m->u.events.n_events - 1, n, r->window);
        r->up_batches_on_wire++;
    }
    sync_msg_free(m);
    q_push(&r->c2s, b, n);
    return KT_OK;
}

static uint64_t r_now(void *user)
{
    return ((rig *)user)->now;
}

static uint64_t r_wall(void *user)
{
    return ((rig *)user)->now + 1700000000000ull;
}

static uint64_t c_rev(void *user)
{
    (void)user;
    return 7;
}

static kt_status c_snap_begin(uint64_t rev, kt_err *err, void *user)
{
    (void)rev;
    (void)user;
    return kt_err_set(err, KT_EINTERNAL, "no snapshot expected");
}

static kt_status c_snap_put(const sync_object *o, size_t n, kt_err *err, void *user)
{
    (void)o;
    (void)n;
    (void)user;
    return kt_err_set(err, KT_EINTERNAL, "no snapshot expected");
}

static kt_status c_snap_commit(uint64_t rev, kt_err *err, void *user)
{
    (void)rev;
    (void)user;
    return kt_err_set(err, KT_EINTERNAL, "no snapshot expected");
}

static void c_snap_abort(void *user)
{
    (void)user;
}

static kt_status c_delta(const sync_delta *d, kt_err *err, void *user)
{
    (void)d;
    (void)user;
    return kt_err_set(err, KT_EINTERNAL, "no delta expected");
}

static kt_status c_placement(const sync_placement *p, kt_err *err, void *user)
{
    (void)p;
    (void)err;
    (void)user;
    return KT_OK;
}

static void c_on_welcome(const sync_welcome *w, void *user)
{
    ((rig *)user)->window = w->window_bytes;
}

static const char *c_up_inc(void *user)
{
    return ((rig *)user)->a.inc;
}

static uint64_t c_up_acked_seq(void *user)
{
    return ((rig *)user)->a.acked;
}

static kt_status c_up_next(const sync_event **out,
                           size_t *n_out,
                           uint64_t from,
                           size_t max_events,
                           size_t max_bytes,
                           kt_err *err,
                           void *user)
{
    (void)err;
    agent *a = &((rig *)user)->a;
    a->up_next_calls++;
    if (from <= a->acked) {
        fail_msg("up_next(%llu): rows up to %llu are deleted", (unsigned long long)from,
                 (unsigned long long)a->acked);
    }
    *out = a->view;
    *n_out = 0;
    size_t bytes = 0;
    for (uint64_t seq = from; seq <= a->n_out && *n_out < max_events && *n_out < 2000; seq++) {
        const sync_event *ev = &a->out[seq - 1].ev;
        if (*n_out > 0 && bytes + ev->data_len > max_bytes) {
            break;
        }
        bytes += ev->data_len;
        a->view[(*n_out)++] = *ev;
    }
    return KT_OK;
}

static kt_status c_up_acked(uint64_t seq, kt_err *err, void *user)
{
    agent *a = &((rig *)user)->a;
    if (a->fail_up_acked) {
        return kt_err_set_dep(err, KT_EDEP, "sqlite", 10, "disk I/O error");
    }
    assert_true(seq > a->acked);
    assert_true(seq <= a->n_out);
    a->acked = seq;
    a->up_acked_calls++;
    return KT_OK;
}

static uint64_t c_down_applied(void *user)
{
    return ((rig *)user)->a.down_applied;
}

static kt_status
c_down_apply(uint64_t first, const sync_event *evs, size_t n, kt_err *err, void *user)
{
    agent *a = &((rig *)user)->a;
    if (a->fail_down) {
        return kt_err_set_dep(err, KT_EDEP, "sqlite", 13, "database or disk is full");
    }
    if (first != a->down_applied + 1) {
        assert_int_equal(first, a->skip_to); /* only the skip the Welcome announced */
        a->skip_to = 0;
    }
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        assert_true(a->n_down_log < 4096);
        assert_int_equal(evs[i].data[evs[i].data_len], '\0');
        a->down_log[a->n_down_log++] = data_seq(&evs[i]);
    }
    a->down_applied = first + n - 1;
    return KT_OK;
}

/* Server ops. */

static kt_status s_send(const uint8_t *b, size_t n, void *user)
{
    rig *r = user;
    if (r->s2c_limit != 0 && q_pending(&r->s2c) >= r->s2c_limit) {
        return KT_EAGAIN;
    }
    sync_msg *m = NULL;
    kt_err err = { 0 };
    if (sync_msg_decode(&m, b, n, NULL, &err) != KT_OK) {
        fail_msg("server sent something undecodable: %s", err.msg);
    }
    if (m->type == SYNC_MSG_EVENTS) {
        assert_int_equal(m->u.events.stream, SYNC_STREAM_DOWN);
        ww_sent(&r->down_w, m->u.events.first_seq + m->u.events.n_events - 1, n,
                r->sopts.window_bytes);
    }
    sync_msg_free(m);
    q_push(&r->s2c, b, n);
    return KT_OK;
}

static sync_auth_result s_auth(const char *site, const char *token, void *user)
{
    (void)user;
    return strcmp(site, "site-a") == 0 && strcmp(token, "t") == 0 ? SYNC_AUTH_OK
                                                                   : SYNC_AUTH_BAD_TOKEN;
}

static kt_status
s_plan(sync_mode *mode_out, uint64_t *rev_out, const sync_hello *hello, kt_err *err, void *user)
{
    (void)hello;
    (void)err;
    (void)user;
    *mode_out = SYNC_MODE_UP_TO_DATE;
    *rev_out = 7;
    return KT_OK;
}

static kt_status s_snap_next(const sync_object **objs, size_t *n, kt_err *err, void *user)
{
    (void)objs;
    (void)n;
    (void)user;
    return kt_err_set(err, KT_EINTERNAL, "no snapshot expected");
}

static kt_status s_delta_next(const sync_delta **out, uint64_t from, kt_err *err, void *user)
{
    (void)from;
    (void)err;
    (void)user;
    *out = NULL;
    return KT_OK;
}

static kt_status s_placement(const sync_placement **out, kt_err *err, void *user)
{
    (void)err;
    (void)user;
    *out = NULL;
    return KT_OK;
}

static kt_status
s_up_committed(uint64_t *seq_out, const char *site, const char *inc, kt_err *err, void *user)
{
    hub *h = &((rig *)user)->h;
    assert_string_equal(site, "site-a");
    h->committed_seq_calls++;
    if (h->fail_committed_seq) {
        return kt_err_set_dep(err, KT_EDEP, "sqlite", 5, "database is locked");
    }
    *seq_out = hub_max_seq(h, inc);
    return KT_OK;
}

/* Commit everything received and ack it on the current session. */
static void hub_commit(rig *r)
{
    hub *h = &r->h;
    if (h->n_pend == 0) {
        return;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < h->n_pend; i++) {
        const row *p = &h->pend[i];
        rows_add(&h->rows, &h->n_rows, &h->cap_rows, p->inc, p->seq, p->data_seq);
        last = p->seq;
    }
    h->n_pend = 0;
    if (r->s != NULL) {
        kt_err err = { 0 };
        note(&r->s_st, &r->s_err, sync_server_ack_up(r->s, last, &err), &err);
    }
}

static kt_status s_on_up_batch(const char *site,
                               const char *inc,
                               uint64_t first,
                               const sync_event *evs,
                               size_t n,
                               kt_err *err,
                               void *user)
{
    (void)err;
    rig *r = user;
    hub *h = &r->h;
    assert_string_equal(site, "site-a");
    assert_true(n >= 1);
    h->batches++;
    for (size_t i = 0; i < n; i++) {
        rows_add(&h->pend, &h->n_pend, &h->cap_pend, inc, first + i, data_seq(&evs[i]));
    }
    if (h->ack_in_op) {
        hub_commit(r);
    }
    return KT_OK;
}

static kt_status s_down_next(const sync_event **out,
                             size_t *n_out,
                             uint64_t from,
                             size_t max_events,
                             size_t max_bytes,
                             kt_err *err,
                             void *user)
{
    (void)err;
    hub *h = &((rig *)user)->h;
    assert_true(from > h->down_acked);
    *out = h->dview;
    *n_out = 0;
    size_t bytes = 0;
    for (uint64_t seq = from; seq <= h->n_down && *n_out < max_events && *n_out < 2000; seq++) {
        const sync_event *ev = &h->down[seq - 1].ev;
        if (*n_out > 0 && bytes + ev->data_len > max_bytes) {
            break;
        }
        bytes += ev->data_len;
        h->dview[(*n_out)++] = *ev;
    }
    return KT_OK;
}

static uint64_t s_down_first(void *user)
{
    return ((rig *)user)->h.down_acked + 1; /* rows <= down_acked are deleted */
}

static kt_status s_down_acked(uint64_t seq, kt_err *err, void *user)
{
    (void)err;
    hub *h = &((rig *)user)->h;
    assert_true(seq > h->down_acked);
    h->down_acked = seq;
    h->down_acked_calls++;
    return KT_OK;
}

static const sync_client_ops CLIENT_OPS = {
    .send = c_send,
    .now_ms = r_now,
    .wall_ms = r_wall,
    .graph_revision = c_rev,
    .placement_revision = c_rev,
    .snapshot_begin = c_snap_begin,
    .snapshot_put = c_snap_put,
    .snapshot_commit = c_snap_commit,
    .snapshot_abort = c_snap_abort,
    .delta_apply = c_delta,
    .placement_apply = c_placement,
    .on_welcome = c_on_welcome,
    .up_incarnation = c_up_inc,
    .up_acked_seq = c_up_acked_seq,
    .up_next = c_up_next,
    .up_acked = c_up_acked,
    .down_applied_seq = c_down_applied,
    .down_apply = c_down_apply,
};

static const sync_server_ops SERVER_OPS = {
    .send = s_send,
    .now_ms = r_now,
    .wall_ms = r_wall,
    .auth = s_auth,
    .plan = s_plan,
    .snapshot_next = s_snap_next,
    .delta_next = s_delta_next,
    .placement = s_placement,
    .up_committed_seq = s_up_committed,
    .on_up_batch = s_on_up_batch,
    .down_next = s_down_next,
    .down_acked = s_down_acked,
    .down_first_seq = s_down_first,
};

#define WINDOW 8192u

static void rig_init(rig *r, uint32_t window)
{
    memset(r, 0, sizeof *r);
    r->now = 5000000;
    snprintf(r->a.inc, sizeof r->a.inc, "inc-A");
    r->a.pad = 40;
    r->h.ack_in_op = true;
    r->copts = (sync_client_opts){ .site = "site-a", .token = "t", .max_batch_events = 50 };
    r->sopts = (sync_server_opts){ .hub_id = "hub-1",
                                   .heartbeat_ms = 1000,
                                   .window_bytes = window,
                                   .max_batch_events = 40 };
    r->cops = CLIENT_OPS;
    r->sops = SERVER_OPS;
}

static void rig_start(rig *r)
{
    kt_err err = { 0 };
    assert_int_equal(sync_client_new(&r->c, &r->copts, &r->cops, r, &err), KT_OK);
}

static void hub_down_add(hub *h, size_t n)
{
    h->down = kt_xrealloc(h->down, (h->n_down + n) * sizeof *h->down);
    for (size_t i = 0; i < h->n_down; i++) {
        gen(&h->down[i], "cmd", i + 1, 20); /* moved: regenerate self-pointers */
    }
    for (size_t i = 0; i < n; i++) {
        gen(&h->down[h->n_down], "cmd", h->n_down + 1, 20);
        h->n_down++;
    }
}

static void conn_open(rig *r)
{
    kt_err err = { 0 };
    assert_null(r->s);
    assert_int_equal(sync_server_new(&r->s, &r->sopts, &r->sops, r, &err), KT_OK);
    memset(&r->up_w, 0, sizeof r->up_w);
    memset(&r->down_w, 0, sizeof r->down_w);
    r->window = 1u << 30; /* until the Welcome says */
    note(&r->c_st, &r->c_err, sync_client_on_open(r->c, &err), &err);
}

/* The connection drops: whatever is on the wire is lost. */
static void conn_drop(rig *r)
{
    sync_client_on_close(r->c);
    if (r->s != NULL) {
        sync_server_on_close(r->s);
        sync_server_free(r->s);
        r->s = NULL;
    }
    q_free(&r->c2s);
    q_free(&r->s2c);
}

static void rig_fini(rig *r)
{
    conn_drop(r);
    sync_client_free(r->c);
    kt_free(r->a.out);
    kt_free(r->h.rows);
    kt_free(r->h.pend);
    kt_free(r->h.down);
}

static bool step_to_client(rig *r)
{
    wmsg m;
    if (!q_pop(&r->s2c, &m)) {
        return false;
    }
    sync_msg *d = NULL;
    if (sync_msg_decode(&d, m.b, m.n, NULL, NULL) == KT_OK && d->type == SYNC_MSG_ACK &&
        d->u.ack.stream == SYNC_STREAM_UP) {
        ww_acked(&r->up_w, d->u.ack.seq);
    }
    sync_msg_free(d);
    kt_err err = { 0 };
    note(&r->c_st, &r->c_err, sync_client_on_message(r->c, m.b, m.n, &err), &err);
    kt_free(m.b);
    return true;
}

static bool step_to_server(rig *r)
{
    wmsg m;
    if (!q_pop(&r->c2s, &m)) {
        return false;
    }
    sync_msg *d = NULL;
    if (sync_msg_decode(&d, m.b, m.n, NULL, NULL) == KT_OK && d->type == SYNC_MSG_ACK &&
        d->u.ack.stream == SYNC_STREAM_DOWN) {
        ww_acked(&r->down_w, d->u.ack.seq);
    }
    sync_msg_free(d);
    kt_err err = { 0 };
    note(&r->s_st, &r->s_err, sync_server_on_message(r->s, m.b, m.n, &err), &err);
    kt_free(m.b);
    return true;
}

/* Run until both directions are quiet; the hub commits between steps when asked to. */
static void run(rig *r)
{
    for (int i = 0; i < 1000000; i++) {
        bool moved = step_to_client(r);
        if (r->s != NULL && sync_server_wants_writable(r->s)) {
            kt_err err = { 0 };
            note(&r->s_st, &r->s_err, sync_server_writable(r->s, &err), &err);
        }
        moved = step_to_server(r) || moved;
        if (!moved && q_pending(&r->s2c) == 0 && q_pending(&r->c2s) == 0) {
            return;
        }
    }
    fail_msg("the sessions never went quiet");
}

static void expect_ok(const rig *r)
{
    if (r->c_st != KT_OK) {
        fail_msg("client: %s: %s", kt_status_str(r->c_st), r->c_err.msg);
    }
    if (r->s_st != KT_OK) {
        fail_msg("server: %s: %s", kt_status_str(r->s_st), r->s_err.msg);
    }
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_events_upstream_batches_committed_acked_deleted(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1u << 20);
    outbox_add(&r.a, 2500);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.window, 1u << 20);
    assert_int_equal(sync_client_window_bytes(r.c), 1u << 20);
    assert_hub_has_exactly(&r.h, "inc-A", 2500);
    assert_int_equal(r.a.acked, 2500); /* every row deleted */
    assert_int_equal(sync_client_up_inflight_bytes(r.c), 0);
    assert_int_equal(sync_client_up_next_seq(r.c), 2501);
    const sync_client_stats *cs = sync_client_stats_get(r.c);
    assert_int_equal(cs->up_events_sent, 2500);
    assert_int_equal(cs->up_events_acked, 2500);
    assert_int_equal(cs->up_batches_sent, 50); /* max_batch_events = 50 */
    const sync_server_stats *ss = sync_server_stats_get(r.s);
    assert_int_equal(ss->up_events, 2500);
    assert_int_equal(ss->up_duplicates, 0);
    assert_int_equal(ss->up_gaps, 0);
    assert_string_equal(sync_server_incarnation(r.s), "inc-A");
    assert_int_equal(sync_server_up_committed_seq(r.s), 2500);
    assert_int_equal(r.h.committed_seq_calls, 1);

    /* kick: new events go out without polling; nothing happens when there are none. */
    kt_err err = { 0 };
    int calls = r.a.up_next_calls;
    assert_int_equal(sync_client_kick(r.c, &err), KT_OK);
    assert_int_equal(q_pending(&r.c2s), 0);
    assert_true(r.a.up_next_calls > calls);
    outbox_add(&r.a, 3);
    assert_int_equal(sync_client_kick(r.c, &err), KT_OK);
    assert_int_equal(q_pending(&r.c2s), 1);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 2503);
    assert_int_equal(r.a.acked, 2503);
    rig_fini(&r);
}

/*
 * one_batch_per_call: each call into the client (the Welcome, a kick, an
 * Ack) sends at most one batch and says whether more could go, so the
 * transport can send the rest from later loop turns; nothing is lost or sent
 * twice, and a short batch (the outbox is empty) leaves nothing to do.
 */
static void test_events_one_batch_per_call(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1u << 20);
    r.copts.one_batch_per_call = true;
    outbox_add(&r.a, 120); /* max_batch_events = 50: batches of 50, 50 and 20 */
    rig_start(&r);
    conn_open(&r);
    assert_true(step_to_server(&r)); /* Hello */
    assert_true(step_to_client(&r)); /* Welcome: one batch, not the whole window */
    expect_ok(&r);
    assert_int_equal(sync_client_stats_get(r.c)->up_batches_sent, 1);
    assert_true(sync_client_up_more(r.c));
    kt_err err = { 0 };
    assert_int_equal(sync_client_kick(r.c, &err), KT_OK); /* a later turn: the next one */
    assert_int_equal(sync_client_stats_get(r.c)->up_batches_sent, 2);
    assert_true(sync_client_up_more(r.c));
    assert_int_equal(sync_client_kick(r.c, &err), KT_OK);
    assert_int_equal(sync_client_stats_get(r.c)->up_batches_sent, 3);
    assert_false(sync_client_up_more(r.c)); /* 20 < 50: the outbox had no more */
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 120);
    assert_int_equal(r.a.acked, 120);
    /* Without the option the Welcome fills the window at once (and up_more stays false). */
    rig_fini(&r);
    rig_init(&r, 1u << 20);
    outbox_add(&r.a, 120);
    rig_start(&r);
    conn_open(&r);
    assert_true(step_to_server(&r));
    assert_true(step_to_client(&r));
    assert_int_equal(sync_client_stats_get(r.c)->up_batches_sent, 3);
    assert_false(sync_client_up_more(r.c));
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 120);
    rig_fini(&r);
}

static void test_events_window_bounds_unacked_bytes(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, WINDOW);
    r.h.ack_in_op = false; /* the hub commits when the test says */
    r.a.pad = 100;
    outbox_add(&r.a, 1000); /* ~200 bytes encoded each: ~200 KB against an 8 KiB window */
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(sync_client_window_bytes(r.c), WINDOW);
    /* Nothing acked: the agent stopped at the window. */
    assert_true(r.h.n_pend > 0);
    assert_true(r.h.n_pend < 1000);
    assert_true(sync_client_up_inflight_bytes(r.c) <= WINDOW);
    assert_true(sync_client_up_inflight_bytes(r.c) > WINDOW / 2);
    assert_true(sync_client_stats_get(r.c)->up_window_waits > 0);
    size_t first_round = r.h.n_pend;
    /* Each commit + ack opens the window again; the rig checks every send. */
    for (int i = 0; i < 1000 && r.a.acked < 1000; i++) {
        hub_commit(&r);
        run(&r);
        expect_ok(&r);
        assert_true(sync_client_up_inflight_bytes(r.c) <= WINDOW);
    }
    assert_hub_has_exactly(&r.h, "inc-A", 1000);
    assert_int_equal(r.a.acked, 1000);
    assert_true(r.up_w.max_seen <= WINDOW);
    assert_true(r.up_w.max_seen > WINDOW / 2);
    assert_true(first_round < 1000);
    rig_fini(&r);
}

static void test_events_one_event_larger_than_the_window_goes_alone(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 64); /* smaller than any one event */
    r.h.ack_in_op = false;
    outbox_add(&r.a, 5);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.h.n_pend, 1); /* one batch of one event, then wait */
    for (int i = 0; i < 10; i++) {
        hub_commit(&r);
        run(&r);
    }
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 5);
    assert_int_equal(sync_client_stats_get(r.c)->up_batches_sent, 5);
    rig_fini(&r);
}

static void test_events_reconnect_resends_and_hub_drops_duplicates(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, WINDOW);
    r.h.ack_in_op = false;
    r.a.pad = 100;
    outbox_add(&r.a, 300);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    uint64_t got = r.h.n_pend;
    assert_true(got > 10 && got < 300);
    /* The hub commits, but the link drops before its Ack reaches the agent. */
    hub_commit(&r);
    assert_int_equal(q_pending(&r.s2c), 1);
    uint64_t committed = hub_max_seq(&r.h, "inc-A");
    assert_int_equal(committed, got);
    conn_drop(&r);
    assert_int_equal(r.a.acked, 0);

    /* Reconnect: the agent resends from 1; the hub has 1..got and re-acks them. */
    r.h.ack_in_op = true;
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 300);
    assert_int_equal(r.a.acked, 300);
    const sync_server_stats *ss = sync_server_stats_get(r.s);
    assert_int_equal(ss->up_duplicates, got);
    assert_int_equal(ss->up_events, 300 - got);
    assert_int_equal(ss->up_gaps, 0);
    assert_true(ss->up_acks_sent >= 2);
    rig_fini(&r);
}

static void test_events_hub_crash_before_commit_gets_them_again(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1u << 20);
    r.h.ack_in_op = false;
    outbox_add(&r.a, 120);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.h.n_pend, 120);
    /* The hub dies with a batch in memory: nothing committed, nothing acked. */
    r.h.n_pend = 0;
    conn_drop(&r);
    r.h.ack_in_op = true;
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 120);
    assert_int_equal(sync_server_stats_get(r.s)->up_duplicates, 0);
    assert_int_equal(r.a.acked, 120);
    rig_fini(&r);
}

static void test_events_new_incarnation_is_not_a_duplicate(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1u << 20);
    outbox_add(&r.a, 100);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 100);
    conn_drop(&r);
    sync_client_free(r.c);

    /* The agent's store is wiped: a new incarnation starts again at seq 1. */
    outbox_wipe(&r.a, "inc-B");
    outbox_add(&r.a, 60);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 100);
    assert_hub_has_exactly(&r.h, "inc-B", 60);
    assert_int_equal(r.h.n_rows, 160);
    assert_int_equal(sync_server_stats_get(r.s)->up_duplicates, 0);
    assert_int_equal(r.a.acked, 60);
    rig_fini(&r);
}

static void test_events_async_ack(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1u << 20);
    r.h.ack_in_op = false;
    outbox_add(&r.a, 30);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.h.n_pend, 30);
    assert_int_equal(r.a.acked, 0); /* nothing deleted before the hub's commit */
    assert_int_equal(r.a.up_acked_calls, 0);
    assert_int_equal(sync_server_up_received_seq(r.s), 30);
    assert_int_equal(sync_server_up_committed_seq(r.s), 0);

    kt_err err = { 0 };
    /* A hub bug: acking what never arrived. */
    assert_int_equal(sync_server_ack_up(r.s, 31, &err), KT_EINVAL);
    assert_int_equal(q_pending(&r.s2c), 0);

    /* The hub commits part, later the rest; acks are cumulative. */
    assert_int_equal(sync_server_ack_up(r.s, 10, &err), KT_OK);
    run(&r);
    assert_int_equal(r.a.acked, 10);
    assert_int_equal(sync_server_ack_up(r.s, 5, &err), KT_OK); /* older: no-op */
    assert_int_equal(q_pending(&r.s2c), 0);

    /* Acks while a message is held (transport full) coalesce behind it. */
    r.s2c_limit = 1;
    r.now += 1000;
    assert_int_equal(sync_server_tick(r.s, &err), KT_OK); /* a heartbeat fills the queue */
    r.now += 1000;
    assert_int_equal(sync_server_tick(r.s, &err), KT_OK); /* the next one is held */
    assert_true(sync_server_wants_writable(r.s));
    assert_int_equal(sync_server_ack_up(r.s, 20, &err), KT_OK);
    assert_int_equal(sync_server_ack_up(r.s, 30, &err), KT_OK);
    assert_int_equal(q_pending(&r.s2c), 1);
    r.s2c_limit = 0;
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.acked, 30);
    assert_int_equal(sync_server_stats_get(r.s)->up_acks_sent, 2); /* 10, then 30 once */
    rig_fini(&r);
}

static void test_events_downstream_in_order_and_deduped(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 2048);
    hub_down_add(&r.h, 500);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.down_applied, 500);
    assert_int_equal(r.a.n_down_log, 500);
    for (size_t i = 0; i < 500; i++) {
        assert_int_equal(r.a.down_log[i], i + 1);
    }
    assert_int_equal(r.h.down_acked, 500);
    assert_int_equal(sync_server_down_acked_seq(r.s), 500);
    assert_int_equal(sync_server_down_inflight_bytes(r.s), 0);
    assert_true(r.down_w.max_seen <= 2048);
    const sync_server_stats *ss = sync_server_stats_get(r.s);
    assert_int_equal(ss->down_events_sent, 500);
    assert_true(ss->down_window_waits > 0);

    /* More queued while live: kick sends them. */
    hub_down_add(&r.h, 5);
    kt_err err = { 0 };
    assert_int_equal(sync_server_kick_down(r.s, &err), KT_OK);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.down_applied, 505);

    /* The agent applies 506..510 but its Ack is lost; after reconnecting,
     * the Hello's cursor keeps the hub from sending them again. */
    hub_down_add(&r.h, 5);
    assert_int_equal(sync_server_kick_down(r.s, &err), KT_OK);
    assert_true(step_to_client(&r));
    assert_int_equal(r.a.down_applied, 510);
    conn_drop(&r);
    assert_int_equal(r.h.down_acked, 505);
    hub_down_add(&r.h, 2);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.down_applied, 512);
    assert_int_equal(r.a.n_down_log, 512);
    for (size_t i = 0; i < 512; i++) {
        assert_int_equal(r.a.down_log[i], i + 1);
    }
    assert_int_equal(sync_server_stats_get(r.s)->down_events_sent, 2);
    assert_int_equal(r.h.down_acked, 512);

    /* An overlapping batch (a hub that resends): the applied part is dropped. */
    gen_event g[3];
    gen(&g[0], "cmd", 511, 1);
    gen(&g[1], "cmd", 512, 1);
    gen(&g[2], "cmd", 513, 1);
    sync_event evs[3] = { g[0].ev, g[1].ev, g[2].ev };
    sync_msg m = { .type = SYNC_MSG_EVENTS, .u.events = { SYNC_STREAM_DOWN, NULL, 511, evs, 3 } };
    kt_buf b;
    kt_buf_init(&b, 1u << 16);
    assert_int_equal(sync_msg_encode(&m, &b, NULL), KT_OK);
    assert_int_equal(sync_client_on_message(r.c, (const uint8_t *)b.data, b.len, &err), KT_OK);
    assert_int_equal(r.a.down_applied, 513);
    assert_int_equal(r.a.down_log[512], 513);
    assert_int_equal(sync_client_stats_get(r.c)->down_duplicates, 2);
    /* Wholly applied: dropped, and acked again. */
    q_free(&r.c2s);
    assert_int_equal(sync_client_on_message(r.c, (const uint8_t *)b.data, b.len, &err), KT_OK);
    assert_int_equal(r.a.down_applied, 513);
    assert_int_equal(q_pending(&r.c2s), 1);
    sync_msg *ack = NULL;
    assert_int_equal(sync_msg_decode(&ack, r.c2s.v[r.c2s.head].b, r.c2s.v[r.c2s.head].n, NULL, NULL),
                     KT_OK);
    assert_int_equal(ack->type, SYNC_MSG_ACK);
    assert_int_equal(ack->u.ack.stream, SYNC_STREAM_DOWN);
    assert_int_equal(ack->u.ack.seq, 513);
    sync_msg_free(ack);
    q_free(&r.c2s);
    /* A gap is a protocol error. */
    m.u.events.first_seq = 600;
    kt_buf_reset(&b);
    assert_int_equal(sync_msg_encode(&m, &b, NULL), KT_OK);
    assert_int_equal(sync_client_on_message(r.c, (const uint8_t *)b.data, b.len, &err), KT_EPROTO);
    assert_non_null(strstr(err.msg, "events.first_seq"));
    kt_buf_fini(&b);
    rig_fini(&r);
}

static void test_events_wiped_agent_skips_to_the_hubs_queue_start(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, WINDOW);
    hub_down_add(&r.h, 20);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.h.down_acked, 20); /* the hub deleted 1..20 */
    conn_drop(&r);
    sync_client_free(r.c);

    /* The agent's store is wiped: it has applied nothing; the hub holds 21.. only. */
    outbox_wipe(&r.a, "inc-B");
    r.a.down_applied = 0;
    r.a.n_down_log = 0;
    r.a.skip_to = 21;
    hub_down_add(&r.h, 4);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.down_applied, 24);
    assert_int_equal(r.a.n_down_log, 4);
    assert_int_equal(r.a.down_log[0], 21);
    assert_int_equal(sync_client_stats_get(r.c)->down_skipped, 20);
    assert_int_equal(r.h.down_acked, 24);
    assert_int_equal(r.a.skip_to, 0);

    /* Without the Welcome's announcement the same jump is a gap. */
    gen_event g;
    gen(&g, "cmd", 30, 1);
    sync_msg m = { .type = SYNC_MSG_EVENTS, .u.events = { SYNC_STREAM_DOWN, NULL, 30, &g.ev, 1 } };
    kt_buf b;
    kt_buf_init(&b, 1u << 16);
    assert_int_equal(sync_msg_encode(&m, &b, NULL), KT_OK);
    kt_err err = { 0 };
    assert_int_equal(sync_client_on_message(r.c, (const uint8_t *)b.data, b.len, &err), KT_EPROTO);
    kt_buf_fini(&b);
    rig_fini(&r);
}

static void test_events_hello_carries_the_cursors(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, WINDOW);
    r.a.acked = 0;
    outbox_add(&r.a, 10);
    r.a.acked = 4; /* rows 1..4 were acked on an earlier run */
    r.a.down_applied = 9;
    hub_down_add(&r.h, 12);
    r.h.down_acked = 9;
    for (uint64_t s = 1; s <= 4; s++) {
        rows_add(&r.h.rows, &r.h.n_rows, &r.h.cap_rows, "inc-A", s, s);
    }
    rig_start(&r);
    conn_open(&r);
    /* Decode the Hello on the wire. */
    assert_int_equal(q_pending(&r.c2s), 1);
    sync_msg *h = NULL;
    assert_int_equal(sync_msg_decode(&h, r.c2s.v[0].b, r.c2s.v[0].n, NULL, NULL), KT_OK);
    assert_int_equal(h->type, SYNC_MSG_HELLO);
    assert_string_equal(h->u.hello.incarnation, "inc-A");
    assert_true(h->u.hello.has_first_unacked_up_seq);
    assert_int_equal(h->u.hello.first_unacked_up_seq, 5);
    assert_true(h->u.hello.has_last_acked_down_seq);
    assert_int_equal(h->u.hello.last_acked_down_seq, 9);
    sync_msg_free(h);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 10);
    assert_int_equal(sync_server_stats_get(r.s)->up_duplicates, 0);
    assert_int_equal(r.a.down_applied, 12);
    assert_int_equal(r.a.n_down_log, 3);
    assert_int_equal(r.a.down_log[0], 10);
    rig_fini(&r);
}

/* Encode m and hand it to the server; expect want and a message mentioning what. */
static void server_feed(rig *r, const sync_msg *m, kt_status want, const char *what)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 24);
    assert_int_equal(sync_msg_encode(m, &b, NULL), KT_OK);
    kt_err err = { 0 };
    kt_status st = sync_server_on_message(r->s, (const uint8_t *)b.data, b.len, &err);
    kt_buf_fini(&b);
    if (st != want || (what != NULL && strstr(err.msg, what) == NULL)) {
        fail_msg("want %s (%s), got %s: %s", kt_status_str(want), what ? what : "",
                 kt_status_str(st), err.msg);
    }
    if (want != KT_OK) {
        assert_int_equal(sync_server_stats_get(r->s)->reject, SYNC_REJECT_PROTOCOL);
        assert_int_equal(sync_server_state_get(r->s), SYNC_SERVER_DONE);
    }
}

static void client_feed(rig *r, const sync_msg *m, kt_status want, const char *what)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 24);
    assert_int_equal(sync_msg_encode(m, &b, NULL), KT_OK);
    kt_err err = { 0 };
    kt_status st = sync_client_on_message(r->c, (const uint8_t *)b.data, b.len, &err);
    kt_buf_fini(&b);
    if (st != want || (what != NULL && strstr(err.msg, what) == NULL)) {
        fail_msg("want %s (%s), got %s: %s", kt_status_str(want), what ? what : "",
                 kt_status_str(st), err.msg);
    }
}

/* A welcomed session with nothing in flight, for the error cases. */
static void live(rig *r, uint32_t window)
{
    rig_init(r, window);
    rig_start(r);
    conn_open(r);
    run(r);
    expect_ok(r);
}

static void test_events_server_refuses_bad_batches_and_acks(void **state)
{
    (void)state;
    gen_event g[2];
    gen(&g[0], "inc-A", 1, 1);
    gen(&g[1], "inc-A", 2, 1);
    sync_event evs[2] = { g[0].ev, g[1].ev };
    rig r;

    live(&r, WINDOW);
    sync_msg m = { .type = SYNC_MSG_EVENTS, .u.events = { SYNC_STREAM_UP, "inc-Z", 1, evs, 2 } };
    server_feed(&r, &m, KT_EPROTO, "events.incarnation");
    rig_fini(&r);

    live(&r, WINDOW);
    m.u.events.incarnation = "inc-A";
    m.u.events.first_seq = 3; /* the Hello said 1 is the first unacked */
    server_feed(&r, &m, KT_EPROTO, "events.first_seq");
    rig_fini(&r);

    live(&r, WINDOW);
    m.u.events.first_seq = 1;
    server_feed(&r, &m, KT_OK, NULL);
    server_feed(&r, &m, KT_EPROTO, "expected 3"); /* the same batch again on one session */
    rig_fini(&r);

    live(&r, WINDOW);
    m.u.events.stream = SYNC_STREAM_DOWN;
    m.u.events.incarnation = NULL;
    server_feed(&r, &m, KT_EPROTO, "may not send down");
    rig_fini(&r);

    live(&r, WINDOW);
    sync_msg ack = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_UP, 1 } };
    server_feed(&r, &ack, KT_EPROTO, "up acks come from the hub");
    rig_fini(&r);

    live(&r, WINDOW);
    ack.u.ack = (sync_ack){ SYNC_STREAM_DOWN, 1 }; /* nothing was sent downstream */
    server_feed(&r, &ack, KT_EPROTO, "ack.seq: down 1");
    rig_fini(&r);

    /* Over the server's limits: too many events, too much data. */
    live(&r, WINDOW);
    sync_server_free(r.s);
    r.s = NULL;
    r.sopts.limits.max_events = 1;
    conn_drop(&r);
    conn_open(&r);
    run(&r);
    m.u.events.stream = SYNC_STREAM_UP;
    m.u.events.incarnation = "inc-A";
    server_feed(&r, &m, KT_ETOOBIG, "events.events: 2 over cap 1");
    rig_fini(&r);

    live(&r, WINDOW);
    sync_server_free(r.s);
    r.s = NULL;
    r.sopts.limits.max_event_data_bytes = 8;
    conn_drop(&r);
    conn_open(&r);
    run(&r);
    server_feed(&r, &m, KT_ETOOBIG, "events.events[0].data");
    rig_fini(&r);

    /* A hub without the up ops refuses UP batches. */
    rig_init(&r, WINDOW);
    r.sops.up_committed_seq = NULL;
    r.sops.on_up_batch = NULL;
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    server_feed(&r, &m, KT_EPROTO, "this hub takes none");
    rig_fini(&r);

    /* The event store cannot say what it has: BUSY, as for plan(). */
    rig_init(&r, WINDOW);
    r.h.fail_committed_seq = true;
    rig_start(&r);
    conn_open(&r);
    run(&r);
    assert_int_equal(r.s_st, KT_EDEP);
    assert_int_equal(r.c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_BUSY);
    rig_fini(&r);
}

static void test_events_client_refuses_bad_batches_and_acks(void **state)
{
    (void)state;
    gen_event g;
    gen(&g, "cmd", 1, 1);
    rig r;

    live(&r, WINDOW);
    sync_msg m = { .type = SYNC_MSG_EVENTS, .u.events = { SYNC_STREAM_UP, "x", 1, &g.ev, 1 } };
    client_feed(&r, &m, KT_EPROTO, "may not send up");
    rig_fini(&r);

    live(&r, WINDOW);
    sync_msg ack = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_UP, 1 } }; /* nothing sent */
    client_feed(&r, &ack, KT_EPROTO, "ack.seq: up 1");
    rig_fini(&r);

    /* An agent without the down ops: no cursor in its Hello, so the hub
     * sends nothing, and a DOWN batch anyway is a protocol error. */
    rig_init(&r, WINDOW);
    r.cops.down_applied_seq = NULL;
    r.cops.down_apply = NULL;
    hub_down_add(&r.h, 3);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_int_equal(r.a.down_applied, 0);
    assert_int_equal(sync_server_stats_get(r.s)->down_batches_sent, 0);
    m.u.events = (sync_event_batch){ SYNC_STREAM_DOWN, NULL, 1, &g.ev, 1 };
    client_feed(&r, &m, KT_EPROTO, "takes none");
    rig_fini(&r);

    /* Batches before the Welcome are out of order. */
    rig_init(&r, WINDOW);
    rig_start(&r);
    conn_open(&r);
    client_feed(&r, &m, KT_EPROTO, "before welcome");
    rig_fini(&r);

    /* The store fails to apply: the error ends the session and nothing is acked. */
    rig_init(&r, WINDOW);
    r.a.fail_down = true;
    hub_down_add(&r.h, 3);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_EDEP);
    assert_int_equal(r.h.down_acked, 0);
    rig_fini(&r);

    /* Deleting acked rows fails: the session ends; the rows are sent again later. */
    rig_init(&r, WINDOW);
    r.a.fail_up_acked = true;
    outbox_add(&r.a, 3);
    rig_start(&r);
    conn_open(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_EDEP);
    assert_int_equal(r.a.acked, 0);
    rig_fini(&r);

    /* Garbage in an events field. */
    live(&r, WINDOW);
    const uint8_t junk[] = { 0x52, 0x04, 0x08, 0x03, 0x18, 0x00 }; /* first_seq 0, no events */
    kt_err err = { 0 };
    assert_int_equal(sync_client_on_message(r.c, junk, sizeof junk, &err), KT_EPROTO);
    rig_fini(&r);
}

static void test_events_options_are_checked(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, WINDOW);
    kt_err err = { 0 };
    sync_client *c = NULL;
    r.cops.up_acked = NULL; /* three of four up ops */
    assert_int_equal(sync_client_new(&c, &r.copts, &r.cops, &r, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "up_incarnation"));
    r.cops = CLIENT_OPS;
    r.cops.down_apply = NULL;
    kt_err e2 = { 0 };
    assert_int_equal(sync_client_new(&c, &r.copts, &r.cops, &r, &e2), KT_EINVAL);
    sync_server *s = NULL;
    r.sops.down_acked = NULL;
    kt_err e3 = { 0 };
    assert_int_equal(sync_server_new(&s, &r.sopts, &r.sops, &r, &e3), KT_EINVAL);
    r.sops = SERVER_OPS;
    r.sops.on_up_batch = NULL;
    kt_err e4 = { 0 };
    assert_int_equal(sync_server_new(&s, &r.sopts, &r.sops, &r, &e4), KT_EINVAL);
    assert_null(s);
    /* An empty incarnation is refused at on_open. */
    r.cops = CLIENT_OPS;
    r.a.inc[0] = '\0';
    rig_start(&r);
    r.sops = SERVER_OPS;
    conn_open(&r);
    assert_int_equal(r.c_st, KT_EINVAL);
    rig_fini(&r);
}

static void test_events_flow_through_a_congested_transport(void **state)
{
    (void)state;
    /* The hub's transport takes one message at a time (KT_EAGAIN, then
     * writable): acks wait behind held messages and still all arrive. */
    rig r;
    rig_init(&r, 1u << 20);
    outbox_add(&r.a, 10);
    r.s2c_limit = 1;
    rig_start(&r);
    conn_open(&r);
    run(&r);
    expect_ok(&r);
    assert_hub_has_exactly(&r.h, "inc-A", 10);
    assert_int_equal(r.a.acked, 10);
    rig_fini(&r);
}

/* ---- fuzz seeds ------------------------------------------------------------------- */

/* A fuzz_sync_session record: [op][len_lo][len_hi][bytes]. */
static void rec(kt_buf *b, uint8_t op, const uint8_t *p, size_t n)
{
    uint8_t hdr[3] = { op, (uint8_t)(n & 0xffu), (uint8_t)(n >> 8) };
    assert_true(n < 65536);
    assert_int_equal(kt_buf_append(b, hdr, 3), KT_OK);
    if (p != NULL) {
        assert_int_equal(kt_buf_append(b, p, n), KT_OK);
    }
}

static void rec_msg(kt_buf *b, const sync_msg *m)
{
    kt_buf e;
    kt_buf_init(&e, 1u << 16);
    assert_int_equal(sync_msg_encode(m, &e, NULL), KT_OK);
    rec(b, 0, (const uint8_t *)e.data, e.len);
    kt_buf_fini(&e);
}

static void write_seed(const char *dir, const char *name, uint8_t role, const kt_buf *b)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputc(role, f), role);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    assert_int_equal(fclose(f), 0);
}

/*
 * With KT_SYNC_WRITE_SESSION_CORPUS=<dir>: write fuzz_sync_session seeds
 * that drive the event streams in the fuzz harness's terms (its outbox, its
 * hub queue and its op codes; see tests/fuzz/fuzz_sync_session.c).
 */
static void test_events_write_fuzz_corpus(void **state)
{
    (void)state;
    const char *dir = getenv("KT_SYNC_WRITE_SESSION_CORPUS");
    if (dir == NULL) {
        skip();
    }
    gen_event g[6];
    sync_event ev[6];
    for (int i = 0; i < 6; i++) {
        gen(&g[i], "e", (uint64_t)i + 1, 4);
        ev[i] = g[i].ev;
    }
    /* Agent role (graph revision 0): the outbox grows, the hub welcomes,
     * acks, sends downstream (with an overlap), then a reconnect whose
     * Welcome announces a skip. */
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    rec(&b, 3, NULL, 5); /* outbox += 6 */
    sync_msg w = { .type = SYNC_MSG_WELCOME,
                   .u.welcome = { 1, "hub", 0, SYNC_MODE_UP_TO_DATE, 1000, 256, 1 } };
    rec_msg(&b, &w);
    sync_msg down = { .type = SYNC_MSG_EVENTS,
                      .u.events = { SYNC_STREAM_DOWN, NULL, 1, ev, 3 } };
    rec_msg(&b, &down);
    down.u.events.first_seq = 2; /* overlaps 2..3 */
    rec_msg(&b, &down);
    sync_msg ack = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_UP, 2 } };
    rec_msg(&b, &ack);
    rec(&b, 3, NULL, 9); /* outbox += 3, kick */
    rec(&b, 1, NULL, 100); /* 1 s: heartbeat */
    rec(&b, 2, NULL, 0);   /* reconnect */
    w.u.welcome.down_next_seq = 10;
    rec_msg(&b, &w);
    down.u.events.first_seq = 10;
    down.u.events.n_events = 2;
    rec_msg(&b, &down);
    write_seed(dir, "client-events", 0, &b);

    /* Hub role: Hello with the event cursors, UP batches, commit + ack,
     * downstream queued and acked, a reconnect that resends (duplicates). */
    kt_buf_reset(&b);
    sync_msg h = { .type = SYNC_MSG_HELLO };
    h.u.hello = (sync_hello){ .proto_min = 1,
                              .proto_max = 1,
                              .site = "site-a",
                              .token = "t",
                              .graph_revision = 3,
                              .placement_revision = 4,
                              .incarnation = "inc-1",
                              .has_last_acked_down_seq = true,
                              .last_acked_down_seq = 0,
                              .has_first_unacked_up_seq = true,
                              .first_unacked_up_seq = 1 };
    rec_msg(&b, &h);
    sync_msg up = { .type = SYNC_MSG_EVENTS, .u.events = { SYNC_STREAM_UP, "inc-1", 1, ev, 3 } };
    rec_msg(&b, &up);
    rec(&b, 3, NULL, 5); /* commit + ack_up */
    rec(&b, 3, NULL, 7); /* downstream += 3, kick */
    ack.u.ack = (sync_ack){ SYNC_STREAM_DOWN, 2 };
    rec_msg(&b, &ack);
    up.u.events.first_seq = 4;
    rec_msg(&b, &up);
    rec(&b, 3, NULL, 13); /* commit + ack_up */
    rec(&b, 2, NULL, 0);  /* reconnect: the agent resends from 1 */
    rec_msg(&b, &h);
    up.u.events.first_seq = 1;
    up.u.events.n_events = 6;
    rec_msg(&b, &up);
    rec(&b, 3, NULL, 5);
    write_seed(dir, "server-events", 1, &b);
    kt_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_upstream_batches_committed_acked_deleted),
        cmocka_unit_test(test_events_one_batch_per_call),
        cmocka_unit_test(test_events_window_bounds_unacked_bytes),
        cmocka_unit_test(test_events_one_event_larger_than_the_window_goes_alone),
        cmocka_unit_test(test_events_reconnect_resends_and_hub_drops_duplicates),
        cmocka_unit_test(test_events_hub_crash_before_commit_gets_them_again),
        cmocka_unit_test(test_events_new_incarnation_is_not_a_duplicate),
        cmocka_unit_test(test_events_async_ack),
        cmocka_unit_test(test_events_downstream_in_order_and_deduped),
        cmocka_unit_test(test_events_wiped_agent_skips_to_the_hubs_queue_start),
        cmocka_unit_test(test_events_hello_carries_the_cursors),
        cmocka_unit_test(test_events_server_refuses_bad_batches_and_acks),
        cmocka_unit_test(test_events_client_refuses_bad_batches_and_acks),
        cmocka_unit_test(test_events_options_are_checked),
        cmocka_unit_test(test_events_flow_through_a_congested_transport),
        cmocka_unit_test(test_events_write_fuzz_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
