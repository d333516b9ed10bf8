/*
 * test_hub_fed.c — hub/fed.c in one process: a real hub_store + hub_graph +
 * kt_net HTTP/WebSocket server with hub_fed on it, and raw WebSocket
 * clients on loopback that send hand-built sync messages and decode every
 * answer. Covers what the process-level federation tests do not reach:
 * the Reject paths (version, garbage, bad token, unknown site) and their
 * counters, the exact subgraph of a site across a cross-site relationship,
 * empty deltas for changes that do not touch a site, the reconnect plan
 * (SNAPSHOT, DELTA with the merged changes, UP_TO_DATE) and DUPLICATE.
 *
 * Each test has its own temp dir (kept with KT_TEST_KEEP=1) and loop; the
 * loop is closed with uv_loop_close() == 0. Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "hub/config.h"
#include "hub/fed.h"
#include "hub/graph.h"
#include "hub/store.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "sync/msg.h"

#define IFACE(name, extra) \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec:\n" extra
#define INSTANCE(name, iface, site, extra)                                        \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\n  labels:\n    ktwin.io/site: " site "\nspec:\n  interface: " iface "\n" extra
#define REF(nb)                                                                                   \
    "  twinInstanceRelationships:\n  - name: refNeighborhood\n    interface: city-neighborhood\n" \
    "    instance: " nb "\n"

/* site-a: nb-a, pole-a1, pole-x (points at nb-b) => members nb-a pole-a1 pole-x nb-b.
 * site-b: nb-b, pole-b1 => members nb-b pole-b1 pole-x (incoming neighbour). */
static const char *const city = IFACE(
    "city-neighborhood", "  properties:\n  - name: aqi\n    schema: {primitiveType: string}\n")
    IFACE("city-pole",
          "  relationships:\n  - name: refNeighborhood\n    interface: city-neighborhood\n")
        INSTANCE("nb-a", "city-neighborhood", "site-a", "")
            INSTANCE("nb-b", "city-neighborhood", "site-b", "")
                INSTANCE("pole-a1", "city-pole", "site-a", REF("nb-a"))
                    INSTANCE("pole-b1", "city-pole", "site-b", REF("nb-b"))
                        INSTANCE("pole-x", "city-pole", "site-a", REF("nb-b"));

#define MAX_MSGS 64

typedef struct client {
    kt_ws_conn *c;
    bool open, closed;
    int close_code;
    sync_msg *msgs[MAX_MSGS];
    size_t n;
} client;

typedef struct fx {
    char dir[256];
    char db[300];
    char agents[300];
    uv_loop_t loop;
    hub_store *store;
    hub_graph *graph;
    hub_cfg cfg;
    kt_metrics *metrics;
    kt_net *net;
    kt_http_server *srv;
    hub_fed *fed;
    int port;
} fx;

/* ---- helpers ------------------------------------------------------------------------ */

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

static int run_until(fx *f, int (*cond)(void *), void *user)
{
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, noop_timer, 10, 10);
    uint64_t deadline = kt_clock_mono_ms() + 20000;
    int ok = cond(user);
    while (!ok && kt_clock_mono_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_ONCE);
        ok = cond(user);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

static void apply(fx *f, const char *yaml)
{
    hub_apply_result r;
    hub_apply_result_init(&r);
    kt_err err = { 0 };
    kt_status st = hub_graph_apply(f->graph, "test", yaml, strlen(yaml), &r, &err);
    if (st != KT_OK) {
        fail_msg("apply: %s (%zu diagnostics)", err.msg, r.diag.n);
    }
    hub_apply_result_fini(&r);
}

static double metric(fx *f, const char *name, const char *code)
{
    const char *labels[] = { "code", code, NULL };
    return kt_metrics_value(kt_metrics_find(f->metrics, name, code != NULL ? labels : NULL));
}

static void cl_open(kt_ws_conn *c, void *user)
{
    (void)c;
    ((client *)user)->open = true;
}

static void cl_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    client *cl = user;
    (void)c;
    sync_msg *m = NULL;
    kt_err err = { 0 };
    if (sync_msg_decode(&m, data, len, NULL, &err) != KT_OK) {
        fail_msg("hub sent an undecodable message: %s", err.msg);
    }
    if (cl->n < MAX_MSGS) {
        cl->msgs[cl->n++] = m;
    } else {
        sync_msg_free(m);
    }
}

static void cl_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    client *cl = user;
    (void)c;
    (void)reason;
    cl->closed = true;
    cl->close_code = code;
    cl->c = NULL;
}

static int is_open(void *u)
{
    return ((client *)u)->open || ((client *)u)->closed;
}

static int is_closed(void *u)
{
    return ((client *)u)->closed;
}

static void cl_connect(fx *f, client *cl)
{
    memset(cl, 0, sizeof *cl);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/sync", f->port);
    kt_ws_client_opts o = { 0 };
    o.url = url;
    o.subprotocol = SYNC_WS_SUBPROTOCOL;
    o.ws.on_open = cl_open;
    o.ws.on_message = cl_message;
    o.ws.on_close = cl_close;
    o.ws.user = cl;
    kt_err err = { 0 };
    assert_int_equal(kt_ws_client_new(&cl->c, f->net, &o, &err), KT_OK);
    assert_true(run_until(f, is_open, cl));
    assert_true(cl->open);
}

static void cl_send(client *cl, const sync_msg *m)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(sync_msg_encode(m, &b, NULL), KT_OK);
    assert_int_equal(kt_ws_conn_send(cl->c, b.data, b.len), KT_OK);
    kt_buf_fini(&b);
}

static void cl_hello(client *cl, const char *site, const char *token, uint64_t rev, uint32_t proto)
{
    sync_msg m = { .type = SYNC_MSG_HELLO };
    m.u.hello.proto_min = proto;
    m.u.hello.proto_max = proto;
    m.u.hello.site = site;
    m.u.hello.token = token;
    m.u.hello.graph_revision = rev;
    m.u.hello.has_capacity = true;
    m.u.hello.capacity.has_cpu_millis = true;
    m.u.hello.capacity.cpu_millis = 4000;
    m.u.hello.capacity.has_memory_bytes = true;
    m.u.hello.capacity.memory_bytes = 8ull << 30;
    cl_send(cl, &m);
}

static void cl_fini(client *cl)
{
    for (size_t i = 0; i < cl->n; i++) {
        sync_msg_free(cl->msgs[i]);
    }
    cl->n = 0;
}

typedef struct want {
    client *cl;
    sync_msg_type type;
    size_t nth; /* how many of that type */
} want;

static size_t count_type(const client *cl, sync_msg_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < cl->n; i++) {
        n += cl->msgs[i]->type == t ? 1u : 0u;
    }
    return n;
}

static int has_want(void *u)
{
    want *w = u;
    return count_type(w->cl, w->type) >= w->nth;
}

static const sync_msg *wait_msg(fx *f, client *cl, sync_msg_type t, size_t nth)
{
    want w = { cl, t, nth };
    if (!run_until(f, has_want, &w)) {
        fail_msg("no %zu-th %s message (got %zu messages)", nth, sync_msg_type_str(t), cl->n);
    }
    size_t k = 0;
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->msgs[i]->type == t && ++k == nth) {
            return cl->msgs[i];
        }
    }
    return NULL;
}

/* Sorted "kind/name" list of the objects in every snapshot chunk received. */
static void snapshot_names(const client *cl, char *out, size_t cap)
{
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->msgs[i]->type != SYNC_MSG_SNAPSHOT) {
            continue;
        }
        const sync_snapshot_chunk *c = &cl->msgs[i]->u.snapshot;
        for (size_t k = 0; k < c->n_objects && n < 64; k++) {
            names[n++] = c->objects[k].name;
        }
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i > 0 ? " " : "", names[i]);
    }
}

/* ---- fixture ------------------------------------------------------------------------ */

static int setup_hb(void **state, int64_t heartbeat_ms)
{
    fx *f = kt_xcalloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/kt-fed-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/hub.db", f->dir);
    snprintf(f->agents, sizeof f->agents, "%s/agents", f->dir);
    FILE *a = fopen(f->agents, "w");
    if (a == NULL) {
        return -1;
    }
    fputs("site-a tok-a\nsite-b tok-b\n", a);
    fclose(a);
    kt_err err = { 0 };
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);
    if (hub_cfg_load(&f->cfg, NULL, &errs, &err) != KT_OK) {
        fprintf(stderr, "hub_cfg_load: %s %s\n", err.msg, errs.data ? errs.data : "");
        return -1;
    }
    kt_buf_fini(&errs);
    kt_free(f->cfg.auth.agents_file);
    f->cfg.auth.agents_file = kt_xstrdup(f->agents);
    f->cfg.sync.admit_rate = 1000;
    f->cfg.sync.admit_burst = 1000;
    if (heartbeat_ms > 0) {
        f->cfg.sync.heartbeat_ms = heartbeat_ms;
    }
    uv_loop_init(&f->loop);
    if (hub_store_open(&f->store, f->db, &err) != KT_OK ||
        hub_graph_new(&f->graph, f->store, &err) != KT_OK) {
        fprintf(stderr, "store/graph: %s\n", err.msg);
        return -1;
    }
    f->metrics = kt_metrics_new();
    if (kt_net_new(&f->net, &f->loop, NULL, &err) != KT_OK ||
        kt_http_server_new(&f->srv, f->net, &(kt_http_server_opts){ .port = 0 }, &err) != KT_OK ||
        hub_fed_new(&f->fed, &f->loop, f->srv, f->graph, f->store, &f->cfg, f->metrics, &err) !=
            KT_OK ||
        kt_http_server_start(f->srv, &err) != KT_OK) {
        fprintf(stderr, "net/fed: %s\n", err.msg);
        return -1;
    }
    f->port = kt_http_server_port(f->srv);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_hb(state, 0);
}

static int setup_fast_heartbeat(void **state)
{
    return setup_hb(state, 200);
}

static int teardown(void **state)
{
    fx *f = *state;
    kt_net_free(f->net);
    hub_fed_free(f->fed);
    hub_graph_free(f->graph);
    hub_store_free(f->store);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    kt_metrics_free(f->metrics);
    hub_cfg_fini(&f->cfg);
    if (getenv("KT_TEST_KEEP") == NULL) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "%s/hub.db", f->dir);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/hub.db-wal", f->dir);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/hub.db-shm", f->dir);
        unlink(cmd);
        unlink(f->agents);
        rmdir(f->dir);
    }
    kt_free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------- */

static void expect_reject(fx *f, client *cl, sync_reject_code code)
{
    const sync_msg *m = wait_msg(f, cl, SYNC_MSG_REJECT, 1);
    assert_int_equal(m->u.reject.code, code);
    assert_true(run_until(f, is_closed, cl));
    if (code != SYNC_REJECT_DUPLICATE) {
        assert_int_equal(count_type(cl, SYNC_MSG_WELCOME), 0);
    }
}

static void test_fed_rejects_are_sent_and_counted(void **state)
{
    fx *f = *state;
    client cl;

    cl_connect(f, &cl);
    cl_hello(&cl, "site-a", "tok-a", 0, 9);
    expect_reject(f, &cl, SYNC_REJECT_VERSION);
    cl_fini(&cl);

    cl_connect(f, &cl);
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x01 };
    assert_int_equal(kt_ws_conn_send(cl.c, junk, sizeof junk), KT_OK);
    expect_reject(f, &cl, SYNC_REJECT_PROTOCOL);
    cl_fini(&cl);

    cl_connect(f, &cl);
    cl_hello(&cl, "site-a", "tok-b", 0, 1);
    expect_reject(f, &cl, SYNC_REJECT_UNAUTHENTICATED);
    cl_fini(&cl);

    cl_connect(f, &cl);
    cl_hello(&cl, "site-zz", "tok-a", 0, 1);
    expect_reject(f, &cl, SYNC_REJECT_UNAUTHENTICATED);
    cl_fini(&cl);

    assert_true(metric(f, "ktwin_hub_sync_rejects_total", "version") == 1);
    assert_true(metric(f, "ktwin_hub_sync_rejects_total", "protocol") == 1);
    assert_true(metric(f, "ktwin_hub_sync_rejects_total", "unauthenticated") == 2);
    assert_true(metric(f, "ktwin_hub_sync_auth_failures_total", NULL) == 2);
    assert_true(metric(f, "ktwin_hub_sync_sessions_total", NULL) == 0);
    assert_true(metric(f, "ktwin_hub_sites_connected", NULL) == 0);
}

static const sync_object *find_obj(const sync_delta *d, const char *name)
{
    for (size_t i = 0; i < d->n_objects; i++) {
        if (strcmp(d->objects[i].name, name) == 0) {
            return &d->objects[i];
        }
    }
    return NULL;
}

static void test_fed_subgraph_deltas_and_reconnect_plans(void **state)
{
    fx *f = *state;
    apply(f, city); /* revision 1 */
    client a;
    cl_connect(f, &a);
    cl_hello(&a, "site-a", "tok-a", 0, 1);
    const sync_msg *w = wait_msg(f, &a, SYNC_MSG_WELCOME, 1);
    assert_int_equal(w->u.welcome.mode, SYNC_MODE_SNAPSHOT);
    assert_int_equal(w->u.welcome.graph_revision, 1);
    const sync_msg *p = wait_msg(f, &a, SYNC_MSG_PLACEMENT, 1);
    assert_int_equal(p->u.placement.n_interfaces, 2);
    char names[512];
    snapshot_names(&a, names, sizeof names);
    assert_string_equal(names, "city-neighborhood city-pole nb-a nb-b pole-a1 pole-x");
    assert_true(metric(f, "ktwin_hub_sites_connected", NULL) == 1);

    /* A change on site-b only: site-a gets an empty delta 1 -> 2. */
    apply(f, "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-b1\n"
             "  labels:\n    ktwin.io/site: site-b\n    changed: \"yes\"\nspec:\n"
             "  interface: city-pole\n" REF("nb-b"));
    const sync_msg *d = wait_msg(f, &a, SYNC_MSG_DELTA, 1);
    assert_int_equal(d->u.delta.from_revision, 1);
    assert_int_equal(d->u.delta.to_revision, 2);
    assert_int_equal(d->u.delta.n_objects, 0);

    /* pole-x moves to site-b: it leaves site-a, and so does nb-b (reached only through it). */
    apply(f, INSTANCE("pole-x", "city-pole", "site-b", REF("nb-b")));
    d = wait_msg(f, &a, SYNC_MSG_DELTA, 2);
    assert_int_equal(d->u.delta.from_revision, 2);
    assert_int_equal(d->u.delta.to_revision, 3);
    assert_int_equal(d->u.delta.n_objects, 2);
    const sync_object *o = find_obj(&d->u.delta, "pole-x");
    assert_non_null(o);
    assert_true(o->deleted);
    o = find_obj(&d->u.delta, "nb-b");
    assert_non_null(o);
    assert_true(o->deleted);

    /* A new connection of site-a at revision 1 gets the merged DELTA; the old one DUPLICATE. */
    client b;
    cl_connect(f, &b);
    cl_hello(&b, "site-a", "tok-a", 1, 1);
    w = wait_msg(f, &b, SYNC_MSG_WELCOME, 1);
    assert_int_equal(w->u.welcome.mode, SYNC_MODE_DELTA);
    assert_int_equal(w->u.welcome.graph_revision, 3);
    d = wait_msg(f, &b, SYNC_MSG_DELTA, 1);
    assert_int_equal(d->u.delta.from_revision, 1);
    assert_int_equal(d->u.delta.to_revision, 3);
    assert_int_equal(d->u.delta.n_objects, 2);
    expect_reject(f, &a, SYNC_REJECT_DUPLICATE);
    assert_true(metric(f, "ktwin_hub_sync_rejects_total", "duplicate") == 1);
    assert_true(metric(f, "ktwin_hub_sites_connected", NULL) == 1);
    cl_fini(&a);

    /* At the current revision: UP_TO_DATE (and b is replaced in turn). */
    cl_connect(f, &a);
    cl_hello(&a, "site-a", "tok-a", 3, 1);
    w = wait_msg(f, &a, SYNC_MSG_WELCOME, 1);
    assert_int_equal(w->u.welcome.mode, SYNC_MODE_UP_TO_DATE);
    expect_reject(f, &b, SYNC_REJECT_DUPLICATE);
    cl_fini(&b);

    /* A revision the ring does not know (ahead of the hub): SNAPSHOT. */
    cl_connect(f, &b);
    cl_hello(&b, "site-b", "tok-b", 99, 1);
    w = wait_msg(f, &b, SYNC_MSG_WELCOME, 1);
    assert_int_equal(w->u.welcome.mode, SYNC_MODE_SNAPSHOT);
    wait_msg(f, &b, SYNC_MSG_PLACEMENT, 1);
    snapshot_names(&b, names, sizeof names);
    assert_string_equal(names, "city-neighborhood city-pole nb-b pole-b1 pole-x");
    assert_true(metric(f, "ktwin_hub_sites_connected", NULL) == 2);
    assert_true(metric(f, "ktwin_hub_sync_sessions_total", NULL) == 4);
    assert_true(metric(f, "ktwin_hub_sync_snapshots_total", NULL) == 2);
    cl_fini(&a);
    cl_fini(&b);
}

static int64_t acked_row(fx *f)
{
    sqlite3_stmt *q = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(hub_store_db(f->store),
                           "SELECT acked_graph_rev FROM fed_sites WHERE site = 'site-a'", -1, &q,
                           NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        v = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    return v;
}

typedef struct row_want {
    fx *f;
    int64_t v;
} row_want;

static int row_is(void *u)
{
    row_want *w = u;
    return acked_row(w->f) == w->v;
}

static void test_fed_silent_agent_is_closed_and_acks_persist(void **state)
{
    fx *f = *state;
    apply(f, city);
    client a;
    cl_connect(f, &a);
    cl_hello(&a, "site-a", "tok-a", 0, 1);
    const sync_msg *w = wait_msg(f, &a, SYNC_MSG_WELCOME, 1);
    assert_int_equal(w->u.welcome.heartbeat_ms, 200);
    wait_msg(f, &a, SYNC_MSG_PLACEMENT, 1);
    sync_msg ack = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_GRAPH, 1 } };
    cl_send(&a, &ack);
    /* Acks reach fed_sites within the flush interval. */
    row_want rw = { f, 1 };
    assert_true(run_until(f, row_is, &rw));
    /* Then the agent stays silent: the hub closes it after 3 heartbeat intervals. */
    assert_true(run_until(f, is_closed, &a));
    assert_int_equal(a.close_code, 1001); /* fed: "timeout" */
    assert_true(count_type(&a, SYNC_MSG_HEARTBEAT) >= 1);
    assert_true(metric(f, "ktwin_hub_sites_connected", NULL) == 0);
    cl_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fed_rejects_are_sent_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fed_subgraph_deltas_and_reconnect_plans, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fed_silent_agent_is_closed_and_acks_persist,
                                        setup_fast_heartbeat, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
