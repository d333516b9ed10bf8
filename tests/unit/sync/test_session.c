/*
 * test_session.c — a sync_client (agent role) wired to a sync_server (hub
 * role) through an in-memory transport, with in-memory stores on both
 * sides and a fake clock (no sleeps).
 *
 * The transport is two FIFO queues of whole messages. The hub side can be
 * given a limit of undelivered messages, past which its send() returns
 * KT_EAGAIN; the rig then calls sync_server_writable() as the agent
 * drains, like LWS_CALLBACK_SERVER_WRITEABLE would.
 *
 * Covers: full handshake with a 10k-object snapshot in many chunks
 * (identical stores afterwards), UP_TO_DATE, DELTA catch-up, live pushes
 * queued behind a streaming snapshot and delivered in order, a disconnect
 * mid-snapshot leaving the agent store untouched, Rejects (UNAUTHENTICATED,
 * VERSION, BUSY with retry_after, DUPLICATE, PROTOCOL), heartbeats and
 * silent-peer timeouts on both sides (not while parts of a message arrive), handshake timeouts, store failures,
 * bad revisions and acks, and the agent apply path under allocation
 * failure.
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
#include "msg_int.h" /* SYNC_MSG__DECODER_KEEP_BYTES */
#include "sync/client.h"
#include "sync/msg.h"
#include "sync/server.h"
#include "wire_queue.h"

/* ---- agent store ----------------------------------------------------------------- */

typedef struct cobj {
    char *name;
    sync_kind kind;
    char *body;
    size_t body_len;
    uint64_t rev;
} cobj;

typedef struct objset {
    cobj *v;
    size_t n;
    size_t cap;
} objset;

static void set_put(objset *s, const sync_object *o)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].name, o->name) == 0) {
            kt_free(s->v[i].body);
            s->v[i].body = kt_xstrndup((const char *)o->body, o->body_len);
            s->v[i].body_len = o->body_len;
            s->v[i].kind = o->kind;
            s->v[i].rev = o->revision;
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = kt_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    cobj *c = &s->v[s->n++];
    c->name = kt_xstrdup(o->name);
    c->kind = o->kind;
    c->body = kt_xstrndup((const char *)o->body, o->body_len);
    c->body_len = o->body_len;
    c->rev = o->revision;
}

static void set_del(objset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].name, name) == 0) {
            kt_free(s->v[i].name);
            kt_free(s->v[i].body);
            s->v[i] = s->v[--s->n];
            return;
        }
    }
}

static const cobj *set_get(const objset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].name, name) == 0) {
            return &s->v[i];
        }
    }
    return NULL;
}

static void set_clear(objset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        kt_free(s->v[i].name);
        kt_free(s->v[i].body);
    }
    kt_free(s->v);
    memset(s, 0, sizeof *s);
}

typedef struct agent_store {
    objset committed;
    objset stage;
    bool staging;
    uint64_t graph_rev;
    uint64_t placement_rev;
    size_t n_ifaces;
    int begins;
    int commits;
    int aborts;
    int deltas;
    int placements;
    int welcomes;
    int fail_put_at; /* fail the n-th snapshot_put (1-based), 0 = never */
    bool counting;   /* delta_apply only counts (allocates nothing: fail-at loops) */
    size_t counted;
    int puts;
    char log[1024]; /* "commit:100 placement:1 delta:100-101 ..." */
} agent_store;

static void logf_(agent_store *a, const char *fmt, unsigned long long x, unsigned long long y)
{
    size_t n = strlen(a->log);
    snprintf(a->log + n, sizeof a->log - n, fmt, x, y);
}

/* ---- hub store -------------------------------------------------------------------- */

typedef struct hub_store {
    sync_object *objs;
    size_t n;
    uint64_t rev;
    const sync_delta *journal;
    size_t n_journal;
    sync_placement placement;
    bool has_placement;
    const char *token;
    uint32_t busy_retry;
    size_t batch;
    size_t snap_pos;
    int snapshot_done_calls;
    int gone_calls;
    int welcome_calls;
    int capacity_calls;
    uint64_t last_ack[5];
    sync_capacity cap;
    bool fail_plan;
} hub_store;

/* ---- the rig ------------------------------------------------------------------------- */

typedef struct rig {
    uint64_t now;
    queue c2s;
    queue s2c;
    size_t s2c_limit; /* 0 = unlimited */
    agent_store a;
    hub_store h;
    sync_client *c;
    sync_server *s;
    kt_status c_st; /* first non-OK status from the client calls */
    kt_status s_st; /* ... and from the server calls */
    kt_err c_err;
    kt_err s_err;
    kt_buf *rec_c; /* when set: every message delivered to the client, as fuzz records */
    kt_buf *rec_s; /* ... and to the server */
} rig;

/* A fuzz_sync_session record: [op][len_lo][len_hi][bytes]. */
static void rec(kt_buf *b, uint8_t op, const uint8_t *p, size_t n)
{
    if (b == NULL) {
        return;
    }
    uint8_t hdr[3] = { op, (uint8_t)(n & 0xffu), (uint8_t)(n >> 8) };
    assert_true(n < 65536);
    assert_int_equal(kt_buf_append(b, hdr, 3), KT_OK);
    if (p != NULL) {
        assert_int_equal(kt_buf_append(b, p, n), KT_OK);
    }
}

static kt_status c_send(const uint8_t *b, size_t n, void *user)
{
    rig *r = user;
    return q_push(&r->c2s, b, n) ? KT_OK : KT_ENOMEM;
}

static uint64_t c_now(void *user)
{
    return ((rig *)user)->now;
}

static uint64_t c_wall(void *user)
{
    return ((rig *)user)->now + 1700000000000ull;
}

static uint64_t c_graph_rev(void *user)
{
    return ((rig *)user)->a.graph_rev;
}

static uint64_t c_placement_rev(void *user)
{
    return ((rig *)user)->a.placement_rev;
}

static kt_status c_snap_begin(uint64_t rev, kt_err *err, void *user)
{
    (void)rev;
    (void)err;
    agent_store *a = &((rig *)user)->a;
    assert_false(a->staging);
    a->staging = true;
    a->begins++;
    return KT_OK;
}

static kt_status c_snap_put(const sync_object *objs, size_t n, kt_err *err, void *user)
{
    agent_store *a = &((rig *)user)->a;
    assert_true(a->staging);
    a->puts++;
    if (a->fail_put_at != 0 && a->puts == a->fail_put_at) {
        return kt_err_set_dep(err, KT_EDEP, "sqlite", 10, "disk I/O error");
    }
    for (size_t i = 0; i < n; i++) {
        set_put(&a->stage, &objs[i]);
    }
    return KT_OK;
}

static kt_status c_snap_commit(uint64_t rev, kt_err *err, void *user)
{
    (void)err;
    agent_store *a = &((rig *)user)->a;
    assert_true(a->staging);
    set_clear(&a->committed);
    a->committed = a->stage;
    memset(&a->stage, 0, sizeof a->stage);
    a->staging = false;
    a->graph_rev = rev;
    a->commits++;
    logf_(a, "commit:%llu%.0llu ", rev, 0);
    return KT_OK;
}

static void c_snap_abort(void *user)
{
    agent_store *a = &((rig *)user)->a;
    assert_true(a->staging);
    set_clear(&a->stage);
    a->staging = false;
    a->aborts++;
}

static kt_status c_delta(const sync_delta *d, kt_err *err, void *user)
{
    (void)err;
    agent_store *a = &((rig *)user)->a;
    assert_int_equal(d->from_revision, a->graph_rev);
    if (a->counting) {
        a->counted += d->n_objects;
        a->graph_rev = d->to_revision;
        return KT_OK;
    }
    for (size_t i = 0; i < d->n_objects; i++) {
        if (d->objects[i].deleted) {
            set_del(&a->committed, d->objects[i].name);
        } else {
            set_put(&a->committed, &d->objects[i]);
        }
    }
    a->graph_rev = d->to_revision;
    a->deltas++;
    logf_(a, "delta:%llu-%llu ", d->from_revision, d->to_revision);
    return KT_OK;
}

static kt_status c_placement(const sync_placement *p, kt_err *err, void *user)
{
    (void)err;
    agent_store *a = &((rig *)user)->a;
    a->placement_rev = p->revision;
    a->n_ifaces = p->n_interfaces;
    a->placements++;
    logf_(a, "placement:%llu%.0llu ", p->revision, 0);
    return KT_OK;
}

static void c_on_welcome(const sync_welcome *w, void *user)
{
    (void)w;
    ((rig *)user)->a.welcomes++;
}

static kt_status s_send(const uint8_t *b, size_t n, void *user)
{
    rig *r = user;
    if (r->s2c_limit != 0 && q_pending(&r->s2c) >= r->s2c_limit) {
        return KT_EAGAIN;
    }
    return q_push(&r->s2c, b, n) ? KT_OK : KT_ENOMEM;
}

static sync_auth_result s_auth(const char *site, const char *token, void *user)
{
    rig *r = user;
    if (strcmp(site, "site-a") != 0) {
        return SYNC_AUTH_UNKNOWN_SITE;
    }
    return strcmp(token, r->h.token) == 0 ? SYNC_AUTH_OK : SYNC_AUTH_BAD_TOKEN;
}

static uint32_t s_admit(const char *site, void *user)
{
    (void)site;
    return ((rig *)user)->h.busy_retry;
}

static kt_status
s_plan(sync_mode *mode_out, uint64_t *rev_out, const sync_hello *hello, kt_err *err, void *user)
{
    (void)err;
    hub_store *h = &((rig *)user)->h;
    *rev_out = h->rev;
    if (h->fail_plan) {
        return kt_err_set(err, KT_EDEP, "graph store unavailable");
    }
    if (hello->graph_revision == h->rev) {
        *mode_out = SYNC_MODE_UP_TO_DATE;
        return KT_OK;
    }
    for (size_t i = 0; i < h->n_journal; i++) {
        if (h->journal[i].from_revision == hello->graph_revision) {
            *mode_out = SYNC_MODE_DELTA;
            return KT_OK;
        }
    }
    *mode_out = SYNC_MODE_SNAPSHOT;
    h->snap_pos = 0;
    return KT_OK;
}

static kt_status s_snap_next(const sync_object **objs, size_t *n, kt_err *err, void *user)
{
    (void)err;
    hub_store *h = &((rig *)user)->h;
    size_t left = h->n - h->snap_pos;
    size_t take = left < h->batch ? left : h->batch;
    *objs = h->objs + h->snap_pos;
    *n = take;
    h->snap_pos += take;
    return KT_OK;
}

static void s_snap_done(void *user)
{
    ((rig *)user)->h.snapshot_done_calls++;
}

static kt_status s_delta_next(const sync_delta **out, uint64_t from, kt_err *err, void *user)
{
    hub_store *h = &((rig *)user)->h;
    *out = NULL;
    for (size_t i = 0; i < h->n_journal; i++) {
        if (h->journal[i].from_revision == from) {
            *out = &h->journal[i];
            return KT_OK;
        }
    }
    if (from >= h->rev) {
        return KT_OK;
    }
    return kt_err_set(err, KT_ENOTFOUND, "journal does not reach %llu", (unsigned long long)from);
}

static kt_status s_placement(const sync_placement **out, kt_err *err, void *user)
{
    (void)err;
    hub_store *h = &((rig *)user)->h;
    *out = h->has_placement ? &h->placement : NULL;
    return KT_OK;
}

static void s_on_welcome(const sync_hello *hello, void *user)
{
    assert_string_equal(hello->site, "site-a");
    ((rig *)user)->h.welcome_calls++;
}

static void s_on_ack(sync_stream stream, uint64_t seq, void *user)
{
    ((rig *)user)->h.last_ack[stream] = seq;
}

static void s_on_capacity(const sync_capacity *cap, void *user)
{
    hub_store *h = &((rig *)user)->h;
    h->cap = *cap;
    h->capacity_calls++;
}

static void s_on_gone(void *user)
{
    ((rig *)user)->h.gone_calls++;
}

static const sync_client_ops CLIENT_OPS = {
    .send = c_send,
    .now_ms = c_now,
    .wall_ms = c_wall,
    .graph_revision = c_graph_rev,
    .placement_revision = c_placement_rev,
    .snapshot_begin = c_snap_begin,
    .snapshot_put = c_snap_put,
    .snapshot_commit = c_snap_commit,
    .snapshot_abort = c_snap_abort,
    .delta_apply = c_delta,
    .placement_apply = c_placement,
    .on_welcome = c_on_welcome,
};

static const sync_server_ops SERVER_OPS = {
    .send = s_send,
    .now_ms = c_now,
    .wall_ms = c_wall,
    .auth = s_auth,
    .admit = s_admit,
    .plan = s_plan,
    .snapshot_next = s_snap_next,
    .snapshot_done = s_snap_done,
    .delta_next = s_delta_next,
    .placement = s_placement,
    .on_welcome = s_on_welcome,
    .on_ack = s_on_ack,
    .on_capacity = s_on_capacity,
    .on_gone = s_on_gone,
};

#define HB_MS 1000u

static sync_iface_placement IFACES[2] = {
    { "city-pole", SYNC_WHERE_EDGE, NULL, NULL, NULL },
    { "city-air", SYNC_WHERE_CLOUD, NULL, "p/cloud", "no room" },
};

/* Hub graph of n generated objects at revision rev. */
static void hub_fill(hub_store *h, size_t n, uint64_t rev)
{
    h->objs = kt_xcalloc(n ? n : 1, sizeof *h->objs);
    h->n = n;
    h->rev = rev;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        char body[96];
        snprintf(name, sizeof name, "inst-%05zu", i);
        int bl = snprintf(body, sizeof body,
                          "{\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"%s\"},\"i\":%zu}",
                          name, i);
        h->objs[i].kind = SYNC_KIND_TWIN_INSTANCE;
        h->objs[i].name = kt_xstrdup(name);
        h->objs[i].body = (const uint8_t *)kt_xstrndup(body, (size_t)bl);
        h->objs[i].body_len = (size_t)bl;
        h->objs[i].revision = 1 + i % 50;
    }
}

static void
rig_init(rig *r, size_t n_objs, const sync_client_opts *copts_in, const sync_server_opts *sopts_in)
{
    memset(r, 0, sizeof *r);
    r->now = 1000000;
    hub_fill(&r->h, n_objs, 100);
    r->h.token = "s3cret";
    r->h.batch = 333;
    r->h.placement = (sync_placement){ 1, IFACES, 2 };
    r->h.has_placement = true;
    sync_client_opts co = { .site = "site-a", .token = "s3cret", .agent_version = "test" };
    if (copts_in != NULL) {
        co = *copts_in;
    }
    sync_server_opts so = { .hub_id = "hub-1", .heartbeat_ms = HB_MS, .chunk_bytes = 64u * 1024u };
    if (sopts_in != NULL) {
        so = *sopts_in;
    }
    kt_err err = { 0 };
    assert_int_equal(sync_client_new(&r->c, &co, &CLIENT_OPS, r, &err), KT_OK);
    assert_int_equal(sync_server_new(&r->s, &so, &SERVER_OPS, r, &err), KT_OK);
}

static void rig_fini(rig *r)
{
    sync_server_free(r->s);
    sync_client_free(r->c);
    q_free(&r->c2s);
    q_free(&r->s2c);
    set_clear(&r->a.committed);
    set_clear(&r->a.stage);
    for (size_t i = 0; i < r->h.n; i++) {
        kt_free((void *)(uintptr_t)r->h.objs[i].name);
        kt_free((void *)(uintptr_t)r->h.objs[i].body);
    }
    kt_free(r->h.objs);
}

static void note(kt_status *slot, kt_err *keep, kt_status st, const kt_err *err)
{
    if (st != KT_OK && *slot == KT_OK) {
        *slot = st;
        *keep = *err;
    }
}

/* Deliver one hub->agent message; false when none. */
static bool step_to_client(rig *r)
{
    wmsg m;
    if (!q_pop(&r->s2c, &m)) {
        return false;
    }
    rec(r->rec_c, 0, m.b, m.n);
    kt_err err = { 0 };
    note(&r->c_st, &r->c_err, sync_client_on_message(r->c, m.b, m.n, &err), &err);
    kt_free(m.b);
    return true;
}

/* Deliver one agent->hub message; false when none. */
static bool step_to_server(rig *r)
{
    wmsg m;
    if (!q_pop(&r->c2s, &m)) {
        return false;
    }
    rec(r->rec_s, 0, m.b, m.n);
    kt_err err = { 0 };
    note(&r->s_st, &r->s_err, sync_server_on_message(r->s, m.b, m.n, &err), &err);
    kt_free(m.b);
    return true;
}

static void server_writable(rig *r)
{
    if (sync_server_wants_writable(r->s)) {
        kt_err err = { 0 };
        note(&r->s_st, &r->s_err, sync_server_writable(r->s, &err), &err);
    }
}

/* Run until both directions are quiet. */
static void run(rig *r)
{
    for (int i = 0; i < 1000000; i++) {
        bool moved = step_to_client(r);
        server_writable(r);
        moved = step_to_server(r) || moved;
        if (!moved && q_pending(&r->s2c) == 0 && q_pending(&r->c2s) == 0) {
            return;
        }
    }
    fail_msg("the sessions never went quiet");
}

static void open_conn(rig *r)
{
    kt_err err = { 0 };
    note(&r->c_st, &r->c_err, sync_client_on_open(r->c, &err), &err);
}

static int cmp_cobj(const void *a, const void *b)
{
    return strcmp(((const cobj *)a)->name, ((const cobj *)b)->name);
}

/* The agent's committed store equals the hub's objects exactly. */
static void assert_store_matches_hub(rig *r)
{
    objset *s = &r->a.committed;
    assert_int_equal(s->n, r->h.n);
    qsort(s->v, s->n, sizeof *s->v, cmp_cobj);
    for (size_t i = 0; i < s->n; i++) {
        const sync_object *o = &r->h.objs[i]; /* generated in name order */
        assert_string_equal(s->v[i].name, o->name);
        assert_int_equal(s->v[i].kind, o->kind);
        assert_int_equal(s->v[i].rev, o->revision);
        assert_int_equal(s->v[i].body_len, o->body_len);
        assert_memory_equal(s->v[i].body, o->body, o->body_len);
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_session_snapshot_of_10k_objects_in_chunks(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 10000, NULL, NULL);
    r.s2c_limit = 2; /* exercise KT_EAGAIN and writable() all the way */
    open_conn(&r);
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_HELLO_SENT);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(r.s_st, KT_OK);
    assert_true(sync_client_welcomed(r.c));
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_SYNCED);
    assert_string_equal(sync_client_hub_id(r.c), "hub-1");
    assert_int_equal(sync_client_heartbeat_ms(r.c), HB_MS);
    assert_int_equal(sync_client_proto(r.c), 1);
    assert_int_equal(r.a.welcomes, 1);
    assert_int_equal(r.a.begins, 1);
    assert_int_equal(r.a.commits, 1);
    assert_int_equal(r.a.aborts, 0);
    assert_int_equal(r.a.graph_rev, 100);
    assert_store_matches_hub(&r);
    assert_int_equal(r.a.placement_rev, 1);
    assert_int_equal(r.a.n_ifaces, 2);
    assert_string_equal(r.a.log, "commit:100 placement:1 ");

    const sync_server_stats *ss = sync_server_stats_get(r.s);
    assert_true(ss->snapshot_chunks >= 10); /* ~700 KB in 64 KiB chunks */
    assert_int_equal(ss->snapshot_objects, 10000);
    assert_true(ss->eagain > 0);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_LIVE);
    assert_int_equal(sync_server_mode(r.s), SYNC_MODE_SNAPSHOT);
    assert_string_equal(sync_server_site(r.s), "site-a");
    assert_int_equal(sync_server_acked_graph_revision(r.s), 100);
    assert_int_equal(sync_server_acked_placement_revision(r.s), 1);
    assert_int_equal(r.h.last_ack[SYNC_STREAM_GRAPH], 100);
    assert_int_equal(r.h.snapshot_done_calls, 1);
    assert_int_equal(r.h.welcome_calls, 1);
    /* Every chunk respected chunk_bytes (+ header) and the client counted them. */
    assert_true(ss->bytes_out / ss->snapshot_chunks <= 64u * 1024u + 64u);
    const sync_client_stats *cs = sync_client_stats_get(r.c);
    assert_int_equal(cs->snapshots_committed, 1);
    assert_int_equal(cs->snapshot_objects, 10000);
    assert_int_equal(cs->acks_sent, 2);
    rig_fini(&r);
}

static void test_session_empty_graph_is_one_empty_last_chunk(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 0, NULL, NULL);
    r.a.graph_rev = 3; /* stale cache the hub cannot delta from */
    sync_object junk = { SYNC_KIND_TWIN_INSTANCE, "old", (const uint8_t *)"{}", 2, false, 1 };
    set_put(&r.a.committed, &junk);
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(r.a.commits, 1);
    assert_int_equal(r.a.committed.n, 0);
    assert_int_equal(r.a.graph_rev, 100);
    assert_int_equal(sync_server_stats_get(r.s)->snapshot_chunks, 1);
    rig_fini(&r);
}

static void test_session_up_to_date_sends_only_placement(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 10, NULL, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(sync_server_mode(r.s), SYNC_MODE_UP_TO_DATE);
    assert_int_equal(r.a.begins, 0);
    assert_int_equal(r.a.deltas, 0);
    assert_string_equal(r.a.log, "placement:1 ");
    assert_int_equal(sync_server_acked_graph_revision(r.s), 100);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_LIVE);
    rig_fini(&r);
}

static void test_session_delta_catch_up_applied_and_acked(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 3, NULL, NULL);
    /* Agent at 98 with the first two objects; journal 98->99 (add inst-00002), 99->100 (update). */
    r.a.graph_rev = 98;
    set_put(&r.a.committed, &r.h.objs[0]);
    set_put(&r.a.committed, &r.h.objs[1]);
    sync_object gone = { SYNC_KIND_TWIN_INSTANCE, "inst-old", NULL, 0, true, 99 };
    sync_object old = { SYNC_KIND_TWIN_INSTANCE, "inst-old", (const uint8_t *)"{}", 2, false, 5 };
    set_put(&r.a.committed, &old);
    sync_object d1[2] = { r.h.objs[2], gone };
    sync_delta journal[2] = { { 98, 99, d1, 2 }, { 99, 100, &r.h.objs[1], 1 } };
    r.h.journal = journal;
    r.h.n_journal = 2;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(r.s_st, KT_OK);
    assert_int_equal(sync_server_mode(r.s), SYNC_MODE_DELTA);
    assert_string_equal(r.a.log, "delta:98-99 delta:99-100 placement:1 ");
    assert_int_equal(r.a.graph_rev, 100);
    assert_store_matches_hub(&r);
    assert_int_equal(sync_server_acked_graph_revision(r.s), 100);
    assert_int_equal(sync_client_stats_get(r.c)->deltas_applied, 2);

    /* A live push after the initial sync goes straight out and is acked. */
    sync_object upd = r.h.objs[0];
    upd.revision = 101;
    sync_delta live = { 100, 101, &upd, 1 };
    kt_err err = { 0 };
    assert_int_equal(sync_server_push_delta(r.s, &live, &err), KT_OK);
    run(&r);
    assert_int_equal(r.a.graph_rev, 101);
    assert_int_equal(sync_server_acked_graph_revision(r.s), 101);
    assert_int_equal(set_get(&r.a.committed, "inst-00000")->rev, 101);
    rig_fini(&r);
}

static void test_session_pushes_during_snapshot_follow_it_in_order(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 3000, NULL, NULL);
    r.s2c_limit = 1;
    open_conn(&r);
    assert_true(step_to_server(&r)); /* Hello: Welcome goes out, the first chunk is held */
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_SYNCING);
    assert_true(sync_server_wants_writable(r.s));

    sync_object added = {
        SYNC_KIND_TWIN_INTERFACE, "iface-new", (const uint8_t *)"{\"a\":1}", 7, false, 101
    };
    sync_object removed = { SYNC_KIND_TWIN_INSTANCE, "inst-00005", NULL, 0, true, 102 };
    sync_delta stale = { 99, 100, NULL, 0 }; /* already inside the snapshot: dropped */
    sync_delta d1 = { 100, 101, &added, 1 };
    sync_delta d2 = { 101, 102, &removed, 1 };
    sync_placement p2 = { 2, IFACES, 1 };
    kt_err err = { 0 };
    assert_int_equal(sync_server_push_delta(r.s, &stale, &err), KT_OK);
    assert_int_equal(sync_server_push_delta(r.s, &d1, &err), KT_OK);
    assert_int_equal(sync_server_push_placement(r.s, &p2, &err), KT_OK);
    assert_int_equal(sync_server_push_delta(r.s, &d2, &err), KT_OK);
    assert_true(sync_server_queued_bytes(r.s) > 0);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(r.s_st, KT_OK);
    assert_string_equal(r.a.log, "commit:100 placement:1 delta:100-101 placement:2 delta:101-102 ");
    assert_int_equal(r.a.graph_rev, 102);
    assert_int_equal(r.a.placement_rev, 2);
    assert_int_equal(r.a.committed.n, 3000);
    assert_non_null(set_get(&r.a.committed, "iface-new"));
    assert_null(set_get(&r.a.committed, "inst-00005"));
    assert_int_equal(sync_server_stats_get(r.s)->pushes_dropped, 1);
    assert_int_equal(sync_server_queued_bytes(r.s), 0);
    assert_int_equal(sync_server_acked_graph_revision(r.s), 102);
    assert_int_equal(sync_server_acked_placement_revision(r.s), 2);
    rig_fini(&r);
}

static void test_session_push_gap_is_filled_from_the_journal(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 2, NULL, NULL);
    r.a.graph_rev = 100;
    sync_delta journal[1] = { { 100, 101, NULL, 0 } };
    r.h.journal = journal;
    r.h.n_journal = 1;
    open_conn(&r);
    run(&r);
    sync_delta d = { 101, 102, NULL, 0 }; /* the hub pushed 101->102 but not 100->101 */
    kt_err err = { 0 };
    assert_int_equal(sync_server_push_delta(r.s, &d, &err), KT_OK);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_string_equal(r.a.log, "placement:1 delta:100-101 delta:101-102 ");
    rig_fini(&r);
}

static void test_session_disconnect_mid_snapshot_leaves_store_untouched(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 5000, NULL, NULL);
    r.s2c_limit = 1;
    r.a.graph_rev = 5;
    sync_object mine = { SYNC_KIND_TWIN_INSTANCE, "keep-me", (const uint8_t *)"{}", 2, false, 5 };
    set_put(&r.a.committed, &mine);
    open_conn(&r);
    assert_true(step_to_server(&r));
    /* Welcome and three chunks reach the agent, then the connection drops. */
    for (int i = 0; i < 4; i++) {
        assert_true(step_to_client(&r));
        server_writable(&r);
    }
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_SNAPSHOT);
    assert_true(r.a.staging);
    sync_client_on_close(r.c);
    sync_server_on_close(r.s);
    assert_int_equal(r.a.aborts, 1);
    assert_int_equal(r.a.commits, 0);
    assert_false(r.a.staging);
    assert_int_equal(r.a.graph_rev, 5);
    assert_int_equal(r.a.committed.n, 1);
    assert_non_null(set_get(&r.a.committed, "keep-me"));
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_IDLE);
    assert_false(sync_client_connected(r.c));
    assert_int_equal(sync_client_stats_get(r.c)->snapshots_aborted, 1);
    assert_int_equal(r.h.snapshot_done_calls, 1);
    assert_int_equal(r.h.gone_calls, 1);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_DONE);

    /* Reconnect on a fresh hub session: the next Hello still says 5 and a full snapshot follows. */
    sync_server_free(r.s);
    q_free(&r.s2c);
    q_free(&r.c2s);
    r.s2c_limit = 0;
    sync_server_opts so = { .hub_id = "hub-1", .heartbeat_ms = HB_MS, .chunk_bytes = 64u * 1024u };
    kt_err err = { 0 };
    assert_int_equal(sync_server_new(&r.s, &so, &SERVER_OPS, &r, &err), KT_OK);
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(r.a.commits, 1);
    assert_store_matches_hub(&r);
    rig_fini(&r);
}

static void test_session_store_failure_aborts_the_snapshot(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 3000, NULL, NULL);
    r.a.fail_put_at = 2;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_EDEP);
    assert_non_null(strstr(r.c_err.msg, "disk I/O error"));
    assert_int_equal(r.a.aborts, 1);
    assert_int_equal(r.a.commits, 0);
    assert_int_equal(r.a.committed.n, 0);
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_DONE);
    rig_fini(&r);
}

static void expect_reject(rig *r, sync_reject_code code)
{
    open_conn(r);
    run(r);
    assert_int_equal(r->s_st, KT_ECLOSED);
    assert_int_equal(r->c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r->c), code);
    assert_int_equal(sync_client_state_get(r->c), SYNC_CLIENT_DONE);
    assert_false(sync_client_welcomed(r->c));
    assert_int_equal(sync_server_state_get(r->s), SYNC_SERVER_DONE);
    assert_int_equal(sync_server_stats_get(r->s)->reject, code);
    assert_null(sync_server_site(r->s));
    assert_int_equal(r->h.gone_calls, 0);
    assert_int_equal(r->h.welcome_calls, 0);
}

static void test_session_bad_token_is_unauthenticated(void **state)
{
    (void)state;
    rig r;
    sync_client_opts co = { .site = "site-a", .token = "wrong" };
    rig_init(&r, 1, &co, NULL);
    expect_reject(&r, SYNC_REJECT_UNAUTHENTICATED);
    assert_non_null(strstr(r.c_err.msg, "bad token"));
    rig_fini(&r);

    sync_client_opts co2 = { .site = "site-zz", .token = "s3cret" };
    rig_init(&r, 1, &co2, NULL);
    expect_reject(&r, SYNC_REJECT_UNAUTHENTICATED);
    assert_non_null(strstr(r.c_err.msg, "unknown site"));
    rig_fini(&r);
}

static void test_session_no_common_version_is_rejected(void **state)
{
    (void)state;
    rig r;
    sync_client_opts co = { .site = "site-a", .token = "s3cret", .proto_min = 2, .proto_max = 3 };
    rig_init(&r, 1, &co, NULL);
    expect_reject(&r, SYNC_REJECT_VERSION);
    assert_non_null(strstr(r.c_err.msg, "agent speaks 2..3, hub speaks 1..1"));
    rig_fini(&r);

    /* A wider offer that includes 1 negotiates 1. */
    sync_client_opts co2 = { .site = "site-a", .token = "s3cret", .proto_min = 1, .proto_max = 4 };
    rig_init(&r, 1, &co2, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_int_equal(sync_client_proto(r.c), 1);
    assert_int_equal(sync_server_proto(r.s), 1);
    rig_fini(&r);
}

static void test_session_admission_busy_carries_retry_after(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.h.busy_retry = 1234;
    expect_reject(&r, SYNC_REJECT_BUSY);
    assert_int_equal(sync_client_last_retry_after_ms(r.c), 1234);
    /* The next attempt is admitted. */
    sync_client_on_close(r.c);
    sync_server_free(r.s);
    q_free(&r.s2c);
    q_free(&r.c2s);
    r.h.busy_retry = 0;
    r.c_st = KT_OK;
    r.s_st = KT_OK;
    sync_server_opts so = { .hub_id = "hub-1", .heartbeat_ms = HB_MS };
    kt_err err = { 0 };
    assert_int_equal(sync_server_new(&r.s, &so, &SERVER_OPS, &r, &err), KT_OK);
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_OK);
    assert_true(sync_client_welcomed(r.c));
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_BUSY); /* remembered */
    rig_fini(&r);
}

static void test_session_duplicate_kick(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    kt_err err = { 0 };
    assert_int_equal(sync_server_reject(r.s, SYNC_REJECT_DUPLICATE, 0, "replaced", &err),
                     KT_ECLOSED);
    assert_int_equal(r.h.gone_calls, 1);
    run(&r);
    assert_int_equal(r.c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_DUPLICATE);
    sync_server_on_close(r.s);
    assert_int_equal(r.h.gone_calls, 1); /* once */
    rig_fini(&r);
}

static void test_session_heartbeats_and_silent_peer_timeouts(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    kt_err err = { 0 };
    /* Quiet for one interval: both send a heartbeat, both receive one, nobody times out. */
    for (int round = 0; round < 5; round++) {
        r.now += HB_MS;
        assert_true(sync_client_next_tick_ms(r.c) <= r.now);
        assert_true(sync_server_next_tick_ms(r.s) <= r.now);
        assert_int_equal(sync_client_tick(r.c, &err), KT_OK);
        assert_int_equal(sync_server_tick(r.s, &err), KT_OK);
        run(&r);
    }
    assert_int_equal(sync_client_stats_get(r.c)->heartbeats_sent, 5);
    assert_int_equal(sync_server_stats_get(r.s)->heartbeats_sent, 5);
    assert_int_equal(sync_client_stats_get(r.c)->heartbeats_received, 5);
    assert_int_equal(sync_server_stats_get(r.s)->heartbeats_received, 5);
    assert_int_equal(r.c_st, KT_OK);
    /*
     * No whole message for 4 intervals, but parts of one keep arriving (a big
     * batch on a slow link, heartbeats queued behind it): nobody times out.
     */
    for (int i = 0; i < 8; i++) {
        r.now += HB_MS / 2;
        sync_client_note_rx(r.c);
        sync_server_note_rx(r.s);
        assert_int_equal(sync_client_tick(r.c, &err), KT_OK);
        assert_int_equal(sync_server_tick(r.s, &err), KT_OK);
        /* (the heartbeats those ticks queue are never delivered) */
    }
    /* Now nothing is delivered: at 3 intervals both sides declare the peer gone. */
    uint64_t t0 = r.now;
    for (uint64_t t = t0 + 100; t < t0 + 3 * HB_MS; t += 100) {
        r.now = t;
        assert_int_equal(sync_client_tick(r.c, &err), KT_OK);
        assert_int_equal(sync_server_tick(r.s, &err), KT_OK);
    }
    r.now = t0 + 3 * HB_MS;
    kt_err ce = { 0 };
    kt_err se = { 0 };
    assert_int_equal(sync_client_tick(r.c, &ce), KT_ETIMEDOUT);
    assert_int_equal(sync_server_tick(r.s, &se), KT_ETIMEDOUT);
    assert_non_null(strstr(ce.msg, "hub silent"));
    assert_non_null(strstr(se.msg, "site-a silent"));
    assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_DONE);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_DONE);
    assert_int_equal(r.h.gone_calls, 1);
    assert_int_equal(sync_client_stats_get(r.c)->timeouts, 1);
    assert_int_equal(sync_client_next_tick_ms(r.c), UINT64_MAX);
    rig_fini(&r);
}

static void test_session_handshake_timeouts(void **state)
{
    (void)state;
    rig r;
    sync_client_opts co = { .site = "site-a", .token = "s3cret", .handshake_timeout_ms = 5000 };
    sync_server_opts so = { .hub_id = "hub-1", .handshake_timeout_ms = 4000 };
    rig_init(&r, 1, &co, &so);
    open_conn(&r); /* the Hello is never delivered */
    kt_err err = { 0 };
    r.now += 3999;
    assert_int_equal(sync_server_tick(r.s, &err), KT_OK);
    r.now += 1;
    assert_int_equal(sync_server_tick(r.s, &err), KT_ETIMEDOUT);
    assert_int_equal(r.h.gone_calls, 0); /* never welcomed */
    kt_err e2 = { 0 };
    assert_int_equal(sync_client_tick(r.c, &e2), KT_OK);
    r.now += 1000;
    assert_int_equal(sync_client_tick(r.c, &e2), KT_ETIMEDOUT);
    assert_non_null(strstr(e2.msg, "no welcome"));
    rig_fini(&r);
}

static void test_session_garbage_is_eproto_on_both_sides(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    open_conn(&r);
    const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x01, 0x02 };
    kt_err err = { 0 };
    assert_int_equal(sync_server_on_message(r.s, junk, sizeof junk, &err), KT_EPROTO);
    assert_int_equal(sync_server_stats_get(r.s)->reject, SYNC_REJECT_PROTOCOL);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_DONE);
    /* The Reject{PROTOCOL} reached the agent's queue; the agent reports it. */
    assert_true(step_to_client(&r));
    assert_int_equal(r.c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_PROTOCOL);
    /* Input after the end is ignored. */
    kt_err e2 = { 0 };
    assert_int_equal(sync_server_on_message(r.s, junk, sizeof junk, &e2), KT_OK);
    rig_fini(&r);

    rig_init(&r, 1, NULL, NULL);
    open_conn(&r);
    kt_err e3 = { 0 };
    assert_int_equal(sync_client_on_message(r.c, junk, sizeof junk, &e3), KT_EPROTO);
    assert_int_equal(sync_client_stats_get(r.c)->protocol_errors, 1);
    /* Oversized for the client's limits. */
    rig_fini(&r);

    sync_client_opts co = { .site = "site-a",
                            .token = "s3cret",
                            .limits = { .max_message_bytes = 64 } };
    rig_init(&r, 200, &co, NULL);
    open_conn(&r);
    run(&r);
    assert_int_equal(r.c_st, KT_ETOOBIG);
    assert_int_equal(r.a.aborts + r.a.commits, r.a.begins);
    rig_fini(&r);
}

static void test_session_message_before_hello_and_bad_ack(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    kt_buf b;
    kt_buf_init(&b, 1024);
    sync_msg ack = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_GRAPH, 1 } };
    assert_int_equal(sync_msg_encode(&ack, &b, NULL), KT_OK);
    kt_err err = { 0 };
    assert_int_equal(sync_server_on_message(r.s, (const uint8_t *)b.data, b.len, &err), KT_EPROTO);
    assert_non_null(strstr(err.msg, "expected hello first"));
    rig_fini(&r);

    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    kt_buf_reset(&b);
    ack.u.ack.seq = 500; /* never sent */
    assert_int_equal(sync_msg_encode(&ack, &b, NULL), KT_OK);
    kt_err e2 = { 0 };
    assert_int_equal(sync_server_on_message(r.s, (const uint8_t *)b.data, b.len, &e2), KT_EPROTO);
    assert_non_null(strstr(e2.msg, "ack.seq"));
    assert_int_equal(r.h.gone_calls, 1);
    kt_buf_fini(&b);
    rig_fini(&r);
}

/* Feed the client hand-made hub messages. */
static void client_feed(rig *r, const sync_msg *m, kt_status want)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(sync_msg_encode(m, &b, NULL), KT_OK);
    kt_err err = { 0 };
    kt_status st = sync_client_on_message(r->c, (const uint8_t *)b.data, b.len, &err);
    if (st != want) {
        fail_msg("want %s got %s: %s", kt_status_str(want), kt_status_str(st), err.msg);
    }
    kt_buf_fini(&b);
}

static void test_session_client_rejects_out_of_order_hub_messages(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 7;
    open_conn(&r);
    sync_msg w = { .type = SYNC_MSG_WELCOME,
                   .u.welcome = { 1, "hub-x", 9, SYNC_MODE_DELTA, 0, 0 } };
    client_feed(&r, &w, KT_OK);
    assert_int_equal(sync_client_heartbeat_ms(r.c), 10000); /* default: Welcome had none */
    sync_msg d = { .type = SYNC_MSG_DELTA, .u.delta = { 8, 9, NULL, 0 } };
    client_feed(&r, &d, KT_EPROTO); /* store is at 7 */
    assert_int_equal(r.a.deltas, 0);
    /* Next connection: the Hello asks again from 7. */
    sync_client_on_close(r.c);
    q_free(&r.c2s);
    open_conn(&r);
    wmsg hello = { 0 };
    assert_true(q_pop(&r.c2s, &hello));
    sync_msg *hm = NULL;
    assert_int_equal(sync_msg_decode(&hm, hello.b, hello.n, NULL, NULL), KT_OK);
    assert_int_equal(hm->type, SYNC_MSG_HELLO);
    assert_int_equal(hm->u.hello.graph_revision, 7);
    sync_msg_free(hm);
    kt_free(hello.b);

    /* UP_TO_DATE with a different revision is a protocol error. */
    sync_msg w2 = { .type = SYNC_MSG_WELCOME,
                    .u.welcome = { 1, "hub-x", 8, SYNC_MODE_UP_TO_DATE, 0, 0 } };
    client_feed(&r, &w2, KT_EPROTO);
    sync_client_on_close(r.c);

    /* Chunks out of order, a delta inside a snapshot, a second welcome. */
    open_conn(&r);
    w.u.welcome.mode = SYNC_MODE_SNAPSHOT;
    client_feed(&r, &w, KT_OK);
    client_feed(&r, &w, KT_EPROTO);
    sync_client_on_close(r.c);

    open_conn(&r);
    client_feed(&r, &w, KT_OK);
    sync_msg c1 = { .type = SYNC_MSG_SNAPSHOT, .u.snapshot = { 9, 1, false, NULL, 0 } };
    client_feed(&r, &c1, KT_EPROTO); /* must start at 0 */
    sync_client_on_close(r.c);

    open_conn(&r);
    client_feed(&r, &w, KT_OK);
    c1.u.snapshot.index = 0;
    client_feed(&r, &c1, KT_OK);
    client_feed(&r, &d, KT_EPROTO); /* delta while the snapshot is open */
    assert_int_equal(r.a.aborts, 1);
    sync_client_on_close(r.c);

    open_conn(&r);
    client_feed(&r, &w, KT_OK);
    client_feed(&r, &c1, KT_OK);
    sync_msg c2 = { .type = SYNC_MSG_SNAPSHOT, .u.snapshot = { 10, 1, true, NULL, 0 } };
    client_feed(&r, &c2, KT_EPROTO); /* revision changed mid-snapshot */
    assert_int_equal(r.a.aborts, 2);
    assert_int_equal(r.a.graph_rev, 7);
    sync_client_on_close(r.c);

    /* Before Welcome, data is refused; a Hello from the hub is refused. */
    open_conn(&r);
    client_feed(&r, &d, KT_EPROTO);
    sync_client_on_close(r.c);
    open_conn(&r);
    sync_msg h = { .type = SYNC_MSG_HELLO,
                   .u.hello = { .proto_min = 1, .proto_max = 1, .site = "x", .token = "" } };
    client_feed(&r, &h, KT_EPROTO);
    rig_fini(&r);
}

/* agent-rss: the decoder's block, grown for big snapshot chunks, is kept while the snapshot
 * streams and given back after its last chunk and after any other big message. */
static void test_session_client_gives_back_big_decoder_block(void **state)
{
    (void)state;
    enum { N = 6000 };
    sync_object *objs = kt_xcalloc(N, sizeof *objs);
    char(*names)[24] = kt_xcalloc(N, sizeof *names);
    static const char body[] = "{\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"x\"},"
                               "\"spec\":{\"interface\":\"pump\"}}";
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "inst-%d", i);
        objs[i] = (sync_object){ SYNC_KIND_TWIN_INSTANCE, names[i], (const uint8_t *)body,
                                 sizeof body - 1,         false,    (uint64_t)i + 1 };
    }
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 7;
    open_conn(&r);
    sync_msg w = { .type = SYNC_MSG_WELCOME,
                   .u.welcome = { 1, "hub-x", 9, SYNC_MODE_SNAPSHOT, 0, 0 } };
    client_feed(&r, &w, KT_OK);
    sync_msg c0 = { .type = SYNC_MSG_SNAPSHOT, .u.snapshot = { 9, 0, false, objs, N / 2 } };
    client_feed(&r, &c0, KT_OK);
    const sync_client_stats *cs = sync_client_stats_get(r.c);
    assert_true(cs->decoder_bytes > SYNC_MSG__DECODER_KEEP_BYTES); /* kept for the next chunk */
    sync_msg c1 = { .type = SYNC_MSG_SNAPSHOT,
                    .u.snapshot = { 9, 1, true, objs + N / 2, N / 2 } };
    client_feed(&r, &c1, KT_OK);
    assert_int_equal(cs->snapshots_committed, 1);
    assert_true(cs->decoder_bytes <= SYNC_MSG__DECODER_KEEP_BYTES); /* given back */
    sync_msg d = { .type = SYNC_MSG_DELTA, .u.delta = { 9, 10, objs, N } };
    client_feed(&r, &d, KT_OK);
    assert_true(cs->decoder_bytes <= SYNC_MSG__DECODER_KEEP_BYTES);
    rig_fini(&r);
    kt_free(names);
    kt_free(objs);
}

static void test_session_capacity_reports(void **state)
{
    (void)state;
    rig r;
    sync_capacity cap = { true, 1500, true, 1u << 30 };
    sync_client_opts co = { .site = "site-a", .token = "s3cret", .capacity = &cap };
    rig_init(&r, 1, &co, NULL);
    r.a.graph_rev = 100;
    open_conn(&r);
    run(&r);
    const sync_capacity *got = sync_server_capacity(r.s);
    assert_non_null(got);
    assert_int_equal(got->cpu_millis, 1500);
    sync_capacity cap2 = { true, 2500, false, 0 };
    kt_err err = { 0 };
    assert_int_equal(sync_client_report_capacity(r.c, &cap2, &err), KT_OK);
    run(&r);
    assert_int_equal(r.h.capacity_calls, 1);
    assert_int_equal(r.h.cap.cpu_millis, 2500);
    assert_int_equal(sync_server_capacity(r.s)->cpu_millis, 2500);
    rig_fini(&r);
}

static void test_session_new_refuses_bad_options(void **state)
{
    (void)state;
    sync_client *c = NULL;
    sync_client_opts co = { .site = "bad site", .token = "t" };
    kt_err err = { 0 };
    assert_int_equal(sync_client_new(&c, &co, &CLIENT_OPS, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "site"));
    assert_null(c);
    sync_client_ops ops = CLIENT_OPS;
    ops.delta_apply = NULL;
    co.site = "ok";
    kt_err e2 = { 0 };
    assert_int_equal(sync_client_new(&c, &co, &ops, NULL, &e2), KT_EINVAL);
    sync_server *s = NULL;
    sync_server_opts so = { 0 };
    kt_err e3 = { 0 };
    assert_int_equal(sync_server_new(&s, &so, &SERVER_OPS, NULL, &e3), KT_EINVAL);
    assert_non_null(strstr(e3.msg, "hub_id"));
    sync_client_free(NULL);
    sync_server_free(NULL);
}

/* The agent apply path (decode, delta_apply, Ack encode/send) with each allocation failing. */
static void test_session_client_apply_survives_allocation_failures(void **state)
{
    (void)state;
    sync_object objs[20];
    char names[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "o-%d", i);
        objs[i] = (sync_object){
            SYNC_KIND_TWIN_INSTANCE, names[i], (const uint8_t *)"{\"x\":1}", 7, false, 8
        };
    }
    sync_msg d = { .type = SYNC_MSG_DELTA, .u.delta = { 7, 8, objs, 20 } };
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(sync_msg_encode(&d, &b, NULL), KT_OK);
    bool done = false;
    int failures = 0;
    for (uint64_t n = 1; n < 10000 && !done; n++) {
        rig r;
        rig_init(&r, 1, NULL, NULL);
        r.a.graph_rev = 7;
        r.a.counting = true;
        open_conn(&r);
        sync_msg w = { .type = SYNC_MSG_WELCOME,
                       .u.welcome = { 1, "hub-x", 8, SYNC_MODE_DELTA, 0, 0 } };
        client_feed(&r, &w, KT_OK);
        kt_mem_fail_at(n);
        kt_err err = { 0 };
        kt_status st = sync_client_on_message(r.c, (const uint8_t *)b.data, b.len, &err);
        kt_mem_fail_at(0);
        if (st == KT_OK) {
            done = true;
            assert_int_equal(r.a.graph_rev, 8);
            assert_int_equal(r.a.counted, 20);
        } else {
            failures++;
            assert_int_equal(st, KT_ENOMEM);
            /* All or nothing: either not applied, or applied and only the Ack failed. */
            assert_true((r.a.graph_rev == 7 && r.a.counted == 0) ||
                        (r.a.graph_rev == 8 && r.a.counted == 20));
            assert_int_equal(sync_client_state_get(r.c), SYNC_CLIENT_DONE);
        }
        rig_fini(&r);
    }
    assert_true(done);
    assert_true(failures >= 1);
    kt_buf_fini(&b);
}

static void test_session_plan_failure_is_busy(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.h.fail_plan = true;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.s_st, KT_EDEP);
    assert_non_null(strstr(r.s_err.msg, "graph store unavailable"));
    assert_int_equal(r.c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_BUSY);
    assert_int_equal(sync_client_last_retry_after_ms(r.c), 1000);
    rig_fini(&r);
}

static void test_session_journal_gap_during_catch_up_ends_the_session(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 1, NULL, NULL);
    r.a.graph_rev = 98;
    sync_delta journal[1] = { { 98, 99, NULL, 0 } }; /* 99 -> 100 is missing */
    r.h.journal = journal;
    r.h.n_journal = 1;
    open_conn(&r);
    run(&r);
    assert_int_equal(r.s_st, KT_ENOTFOUND);
    assert_int_equal(sync_server_state_get(r.s), SYNC_SERVER_DONE);
    assert_int_equal(r.h.gone_calls, 1);
    assert_int_equal(r.a.graph_rev, 99); /* what arrived was applied and stays */
    rig_fini(&r);
}

static void test_session_reject_while_a_message_is_held(void **state)
{
    (void)state;
    rig r;
    rig_init(&r, 3000, NULL, NULL);
    r.s2c_limit = 1;
    open_conn(&r);
    assert_true(step_to_server(&r)); /* Welcome out, first chunk held */
    assert_true(sync_server_wants_writable(r.s));
    kt_err err = { 0 };
    assert_int_equal(sync_server_reject(r.s, SYNC_REJECT_DUPLICATE, 0, "replaced", &err),
                     KT_ECLOSED);
    assert_true(sync_server_wants_writable(r.s));
    assert_true(step_to_client(&r)); /* Welcome */
    kt_err e2 = { 0 };
    assert_int_equal(sync_server_writable(r.s, &e2), KT_OK); /* the held chunk goes; reject waits */
    assert_true(step_to_client(&r));                         /* chunk 0 */
    kt_err e3 = { 0 };
    assert_int_equal(sync_server_writable(r.s, &e3), KT_ECLOSED); /* now the Reject */
    assert_false(sync_server_wants_writable(r.s));
    assert_true(step_to_client(&r));
    assert_int_equal(r.c_st, KT_ECLOSED);
    assert_int_equal(sync_client_last_reject_code(r.c), SYNC_REJECT_DUPLICATE);
    assert_int_equal(r.a.aborts, 1); /* the open snapshot was rolled back */
    assert_int_equal(r.a.commits, 0);
    rig_fini(&r);
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
 * With KT_SYNC_WRITE_SESSION_CORPUS=<dir>: record real conversations as
 * fuzz_sync_session seeds (how tests/fuzz/corpus/sync_session/ was made).
 */
static void test_session_write_fuzz_corpus(void **state)
{
    (void)state;
    const char *dir = getenv("KT_SYNC_WRITE_SESSION_CORPUS");
    if (dir == NULL) {
        skip();
    }
    for (uint64_t start = 0; start < 2; start++) {
        kt_buf rc;
        kt_buf rs;
        kt_buf_init(&rc, 1u << 20);
        kt_buf_init(&rs, 1u << 20);
        rig r;
        rig_init(&r, 3, NULL, NULL);
        r.h.rev = 3;
        r.a.graph_rev = start;
        r.rec_c = &rc;
        r.rec_s = &rs;
        open_conn(&r);
        run(&r);
        sync_delta d = { 3, 4, &r.h.objs[0], 1 };
        kt_err err = { 0 };
        assert_int_equal(sync_server_push_delta(r.s, &d, &err), KT_OK);
        sync_placement p2 = { 5, IFACES, 2 };
        assert_int_equal(sync_server_push_placement(r.s, &p2, &err), KT_OK);
        run(&r);
        r.now += HB_MS;
        rec(&rc, 1, NULL, HB_MS / 10);
        rec(&rs, 1, NULL, HB_MS / 10);
        assert_int_equal(sync_client_tick(r.c, &err), KT_OK);
        assert_int_equal(sync_server_tick(r.s, &err), KT_OK);
        run(&r);
        sync_capacity cap = { true, 900, true, 1u << 20 };
        assert_int_equal(sync_client_report_capacity(r.c, &cap, &err), KT_OK);
        run(&r);
        assert_int_equal(r.c_st, KT_OK);
        assert_int_equal(r.s_st, KT_OK);
        rec(&rc, 2, NULL, 0);
        rec(&rc, 1, NULL, 3 * HB_MS / 10);
        rec(&rs, 1, NULL, 3 * HB_MS / 10);
        write_seed(dir, start == 0 ? "client-snapshot" : "client-snapshot-rev1", 0, &rc);
        write_seed(dir, start == 0 ? "server-from-0" : "server-from-1", 1, &rs);
        rig_fini(&r);
        kt_buf_fini(&rc);
        kt_buf_fini(&rs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_snapshot_of_10k_objects_in_chunks),
        cmocka_unit_test(test_session_empty_graph_is_one_empty_last_chunk),
        cmocka_unit_test(test_session_up_to_date_sends_only_placement),
        cmocka_unit_test(test_session_delta_catch_up_applied_and_acked),
        cmocka_unit_test(test_session_pushes_during_snapshot_follow_it_in_order),
        cmocka_unit_test(test_session_push_gap_is_filled_from_the_journal),
        cmocka_unit_test(test_session_disconnect_mid_snapshot_leaves_store_untouched),
        cmocka_unit_test(test_session_store_failure_aborts_the_snapshot),
        cmocka_unit_test(test_session_bad_token_is_unauthenticated),
        cmocka_unit_test(test_session_no_common_version_is_rejected),
        cmocka_unit_test(test_session_admission_busy_carries_retry_after),
        cmocka_unit_test(test_session_duplicate_kick),
        cmocka_unit_test(test_session_heartbeats_and_silent_peer_timeouts),
        cmocka_unit_test(test_session_handshake_timeouts),
        cmocka_unit_test(test_session_garbage_is_eproto_on_both_sides),
        cmocka_unit_test(test_session_message_before_hello_and_bad_ack),
        cmocka_unit_test(test_session_client_rejects_out_of_order_hub_messages),
        cmocka_unit_test(test_session_capacity_reports),
        cmocka_unit_test(test_session_client_gives_back_big_decoder_block),
        cmocka_unit_test(test_session_new_refuses_bad_options),
        cmocka_unit_test(test_session_client_apply_survives_allocation_failures),
        cmocka_unit_test(test_session_plan_failure_is_busy),
        cmocka_unit_test(test_session_journal_gap_during_catch_up_ends_the_session),
        cmocka_unit_test(test_session_reject_while_a_message_is_held),
        cmocka_unit_test(test_session_write_fuzz_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
