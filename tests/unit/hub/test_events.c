/*
 * test_events.c — the hub's event plane (hub/events.c) in process, on a
 * real loop, graph and event store, with fake sync sessions:
 *   - an upstream batch is committed at the end of the loop turn and only
 *     then acked (ack_up after the commit, with the batch's last seq);
 *   - batches of two sites in one loop turn are committed together, both acked;
 *   - a batch whose session closed before the commit still commits (no ack),
 *     and the agent's resend on a new session is dropped as duplicates;
 *   - a command from site s2 for an instance on s1 goes to s1's downstream
 *     queue, in order, exactly once across a resend; down_ready tells s1's
 *     session; down_next serves consecutive seqs; down_acked deletes them;
 *   - broker ingress (hub_events_ingest): store events are stored, unknown
 *     interfaces refused, a full downstream queue answers KT_EAGAIN;
 *   - backpressure: an upstream batch that routes to a full downstream
 *     queue is not acked and not lost; a later batch of the same session
 *     waits behind it; both commit, in order, once the agent of the full
 *     site acks downstream entries;
 *   - cloud services are durable: events bound for an HTTP cloud service
 *     are in the store's "#cloud/<iface>" queue when their batch is acked,
 *     stay there while the call is in flight and across a restart, are
 *     resumed at start and deleted once dead-lettered (counted);
 *   - loop depth: hub_events_ingest_depth over services.max_depth drops the
 *     event (reason depth), KT_OK;
 *   - the store's upsert-merge is KTWIN's (svc_merge_json) end to end;
 *   - coalescing: a bulk batch waits (bounded, by a timer) while the next
 *     message of a session is still arriving, then both commit together;
 *     without one arriving, and for small batches, nothing waits.
 * The placement comes from model_placement_compute over the test model
 * (defaultPlacement: edge, sites s1 and s2).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hub/config.h"
#include "hub/events.h"
#include "hub/graph.h"
#include "hub/store.h"
#include "hub_test_util.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "model/placement.h"

#define SVC                                                                            \
    "  service:\n    template:\n      spec:\n        containers:\n        - name: c\n" \
    "          image: x/y:1\n          resources: {requests: {cpu: 10m, memory: 1Mi}}\n"

static const char *const model_text =
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: aq}\nspec:\n"
    "  relationships:\n  - {name: citypole, interface: pole}\n" SVC
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: pole}\nspec:\n"
    "  commands:\n  - name: updateAirQualityIndex\n" SVC
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: aq-1\n"
    "  labels: {ktwin.io/site: s2}\nspec:\n  interface: aq\n"
    "  twinInstanceRelationships:\n  - {name: citypole, interface: pole, instance: pole-1}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: pole\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-2\n"
    "  labels: {ktwin.io/site: s2}\nspec:\n  interface: pole\n"
    "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\nmetadata: {name: pol}\nspec:\n"
    "  rules: []\n  defaultPlacement: edge\n";

typedef struct fsess {
    uint64_t acked;
    unsigned n_acks;
    unsigned n_failed;
    unsigned n_ready;
    hub_events_session *es;
} fsess;

typedef struct fx {
    char dir[512];
    uv_loop_t loop;
    hub_cfg cfg;
    hub_store *store;
    hub_graph *graph;
    kt_metrics *metrics;
    hub_events *ev;
    model_placement *placement;
} fx;

static void f_ack(uint64_t seq, void *user)
{
    fsess *s = user;
    s->acked = seq;
    s->n_acks++;
}

static void f_failed(const kt_err *err, void *user)
{
    (void)err;
    fsess *s = user;
    s->n_failed++;
}

static void f_ready(void *user)
{
    fsess *s = user;
    s->n_ready++;
}

static const hub_events_session_ops fops = { f_ack, f_failed, f_ready };

static const model_placement *get_placement(void *user)
{
    fx *f = user;
    return f->placement;
}

static void must(kt_status st, const kt_err *err)
{
    if (st != KT_OK) {
        fail_msg("status %s: %s", kt_status_str(st), err->msg);
    }
}

/* (Re)start the event plane on a fresh metrics registry (a restarted hub has a new one). */
static void start_events(fx *f, int64_t down_cap)
{
    kt_err err = { 0 };
    kt_metrics_free(f->metrics);
    f->metrics = kt_metrics_new();
    f->cfg.events.down_max_per_site = down_cap;
    must(hub_events_new(&f->ev, &f->loop, NULL, f->graph, &f->cfg, f->metrics, &err), &err);
    hub_events_set_placement(f->ev, get_placement, f);
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof(*f));
    tu_mkdtemp(f->dir, sizeof(f->dir), "kt-hubevents");
    assert_true(f->dir[0] != '\0');
    assert_int_equal(uv_loop_init(&f->loop), 0);
    kt_err err = { 0 };
    must(hub_cfg_load(&f->cfg, NULL, NULL, &err), &err);
    kt_free(f->cfg.data_dir);
    f->cfg.data_dir = kt_xstrdup(f->dir);
    char db[700];
    snprintf(db, sizeof(db), "%s/hub.db", f->dir);
    must(hub_store_open(&f->store, db, &err), &err);
    must(hub_graph_new(&f->graph, f->store, &err), &err);
    hub_apply_result r;
    hub_apply_result_init(&r);
    hub_apply_input in = { "model", model_text, strlen(model_text) };
    kt_status st = hub_graph_apply_batch(f->graph, &in, 1, NULL, &r, &err);
    if (st != KT_OK) {
        model_diag_print(&r.diag, stderr);
    }
    hub_apply_result_fini(&r);
    must(st, &err);
    model_placement_site sites[] = { { "s1", 1, 100000, (uint64_t)1 << 34 },
                                     { "s2", 1, 100000, (uint64_t)1 << 34 } };
    must(model_placement_compute(&f->placement, hub_graph_model(f->graph), sites, 2, NULL, &err),
         &err);
    start_events(f, 100);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    hub_events_free(f->ev);
    (void)uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    model_placement_free(f->placement);
    hub_graph_free(f->graph);
    hub_store_free(f->store);
    kt_metrics_free(f->metrics);
    hub_cfg_fini(&f->cfg);
    tu_rmtree(f->dir);
    kt_free(f);
    return 0;
}

static sync_event ev_of(const char *id, const char *type, const char *source, const char *data)
{
    sync_event e = { 0 };
    e.id = id;
    e.type = type;
    e.source = source;
    e.time_ms = 1700000000000u;
    e.datacontenttype = "application/json";
    e.data = (const uint8_t *)data;
    e.data_len = strlen(data);
    return e;
}

static uint64_t rows(fx *f)
{
    hub_evstore_stats s;
    hub_evstore_stats_get(hub_events_store(f->ev), &s);
    return s.rows;
}

static double metric(fx *f, const char *name)
{
    return kt_metrics_value(kt_metrics_find(f->metrics, name, NULL));
}

typedef struct latest_data {
    char data[256];
} latest_data;

static int latest_cb(const hub_evstore_event *e, void *user)
{
    latest_data *l = user;
    snprintf(l->data, sizeof(l->data), "%.*s", (int)e->data_len, (const char *)e->data);
    return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_batch_is_acked_only_after_the_commit(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    fsess s2 = { 0 };
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    sync_event b[3] = { ev_of("e1", "ktwin.store.aq", "aq-1", "{\"a\":1,\"b\":{\"x\":1}}"),
                        ev_of("e2", "ktwin.store.aq", "aq-1", "{\"b\":{\"y\":2}}"),
                        ev_of("e3", "ktwin.store.aq", "aq-1", "{\"c\":3}") };
    must(hub_events_up_batch(s2.es, "inc-a", 1, b, 3, &err), &err);
    /* queued, not committed, not acked */
    assert_int_equal(s2.n_acks, 0);
    assert_int_equal(rows(f), 0);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT); /* one loop turn: the group commit */
    assert_int_equal(rows(f), 3);
    assert_int_equal(s2.n_acks, 1);
    assert_int_equal(s2.acked, 3);
    uint64_t committed = 0;
    must(hub_events_up_committed(f->ev, "s2", "inc-a", &committed, &err), &err);
    assert_int_equal(committed, 3);
    latest_data l = { 0 };
    must(hub_evstore_latest(hub_events_store(f->ev), "aq", "aq-1", latest_cb, &l, &err), &err);
    assert_string_equal(l.data, "{\"a\":1,\"b\":{\"x\":1,\"y\":2},\"c\":3}"); /* KTWIN deep merge */
    assert_true(metric(f, "ktwin_hub_events_committed_total") == 3.0);
    assert_true(metric(f, "ktwin_hub_event_batches_total") == 1.0);
    hub_events_session_close(s2.es);
}

static void test_two_sites_in_one_turn_and_bad_batches(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    fsess s1 = { 0 };
    fsess s2 = { 0 };
    s1.es = hub_events_session_open(f->ev, "s1", 0, &fops, &s1);
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    sync_event a[1] = { ev_of("p", "ktwin.store.pole", "pole-1", "{\"v\":1}") };
    sync_event b[2] = { ev_of("q", "ktwin.store.aq", "aq-1", "{\"v\":2}"),
                        ev_of("r", "not.a.ktwin.type", "aq-1", "{}") };
    must(hub_events_up_batch(s1.es, "i1", 7, a, 1, &err), &err);
    must(hub_events_up_batch(s2.es, "i2", 1, b, 2, &err), &err);
    assert_int_equal(hub_events_up_batch(s2.es, "", 3, b, 1, &err), KT_EINVAL);
    assert_int_equal(hub_events_up_batch(s2.es, "i2", 3, b, 0, &err), KT_EINVAL);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(s1.acked, 7);
    assert_int_equal(s2.acked, 2); /* the bad-type event is dropped, and acked */
    assert_int_equal(rows(f), 2);
    const char *labels[] = { "reason", "bad-type", NULL };
    assert_true(kt_metrics_value(
                    kt_metrics_find(f->metrics, "ktwin_hub_events_dropped_total", labels)) == 1.0);
    hub_events_session_close(s1.es);
    hub_events_session_close(s2.es);
}

static void test_closed_session_commits_and_resend_is_duplicate(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    fsess old = { 0 };
    old.es = hub_events_session_open(f->ev, "s2", 0, &fops, &old);
    sync_event b[2] = { ev_of("e1", "ktwin.store.aq", "aq-1", "{\"a\":1}"),
                        ev_of("e2", "ktwin.store.aq", "aq-1", "{\"a\":2}") };
    must(hub_events_up_batch(old.es, "inc", 1, b, 2, &err), &err);
    hub_events_session_close(old.es); /* the link dropped before the commit */
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(old.n_acks, 0); /* never called on a closed session */
    assert_int_equal(rows(f), 2);
    /* the agent reconnects and resends 1..2 plus 3 */
    fsess neu = { 0 };
    neu.es = hub_events_session_open(f->ev, "s2", 0, &fops, &neu);
    sync_event c[3] = { b[0], b[1], ev_of("e3", "ktwin.store.aq", "aq-1", "{\"a\":3}") };
    must(hub_events_up_batch(neu.es, "inc", 1, c, 3, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(neu.acked, 3);
    assert_int_equal(rows(f), 3);
    assert_true(metric(f, "ktwin_hub_events_duplicates_total") == 2.0);
    /* hub restart: the dedupe mark is in the store */
    hub_events_session_close(neu.es);
    hub_events_free(f->ev);
    f->ev = NULL;
    start_events(f, 100);
    fsess again = { 0 };
    again.es = hub_events_session_open(f->ev, "s2", 0, &fops, &again);
    must(hub_events_up_batch(again.es, "inc", 1, c, 3, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(again.acked, 3);
    assert_int_equal(rows(f), 3);
    /* a new incarnation is not a duplicate */
    must(hub_events_up_batch(again.es, "inc-2", 1, c, 1, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 4);
    hub_events_session_close(again.es);
}

static void test_commands_go_downstream_in_order_once(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    fsess s1 = { 0 };
    fsess s2 = { 0 };
    s1.es = hub_events_session_open(f->ev, "s1", 0, &fops, &s1);
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    /* aq-1's service on s2 commands pole-1, which lives on s1 (pole at the edge there) */
    sync_event cmds[3];
    char ids[3][8];
    char data[3][32];
    for (int i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "c%d", i);
        snprintf(data[i], sizeof(data[i]), "{\"aqiLevel\":%d}", i);
        cmds[i] = ev_of(ids[i], "ktwin.command.pole.updateairqualityindex", "pole-1", data[i]);
        cmds[i].depth = (uint32_t)i + 1; /* emitted by services: the loop depth crosses the hub */
    }
    must(hub_events_up_batch(s2.es, "inc", 1, cmds, 2, &err), &err);
    must(hub_events_up_batch(s2.es, "inc", 3, &cmds[2], 1, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(s2.acked, 3);
    assert_int_equal(s1.n_ready, 1);
    assert_int_equal(rows(f), 0); /* commands are not stored */
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 3);
    /* a resend of the same batch queues nothing more */
    must(hub_events_up_batch(s2.es, "inc", 1, cmds, 3, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 3);
    const char *labels[] = { "site", "s1", NULL };
    assert_true(kt_metrics_value(
                    kt_metrics_find(f->metrics, "ktwin_hub_downstream_queued", labels)) == 3.0);
    /* served in order, consecutive, limited by max_events and max_bytes */
    const sync_event *out = NULL;
    size_t n = 0;
    must(hub_events_down_next(s1.es, &out, &n, 1, 2, 1 << 20, &err), &err);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].id, "c0");
    assert_string_equal(out[1].id, "c1");
    assert_string_equal(out[0].type, "ktwin.command.pole.updateairqualityindex");
    assert_int_equal(out[0].depth, 1);
    assert_int_equal(out[1].depth, 2);
    assert_int_equal(out[1].data_len, strlen(data[1]));
    assert_memory_equal(out[1].data, data[1], strlen(data[1]));
    must(hub_events_down_next(s1.es, &out, &n, 3, 10, 1, &err), &err);
    assert_int_equal(n, 1); /* at least one even over max_bytes */
    assert_string_equal(out[0].id, "c2");
    assert_int_equal(out[0].depth, 3);
    must(hub_events_down_next(s1.es, &out, &n, 4, 10, 1 << 20, &err), &err);
    assert_int_equal(n, 0);
    must(hub_events_down_acked(s1.es, 2, &err), &err);
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 1);
    /* s1 reconnects having acked 2: it is served from 3 */
    hub_events_session_close(s1.es);
    fsess s1b = { 0 };
    s1b.es = hub_events_session_open(f->ev, "s1", 2, &fops, &s1b);
    must(hub_events_down_next(s1b.es, &out, &n, 3, 10, 1 << 20, &err), &err);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, "c2");
    /* asking from a seq the queue does not continue at is a hub bug */
    kt_err_clear(&err);
    assert_int_equal(hub_events_down_next(s1b.es, &out, &n, 2, 10, 1 << 20, &err), KT_EINTERNAL);
    hub_events_session_close(s1b.es);
    hub_events_session_close(s2.es);
}

static void test_ingest_store_unknown_and_full_queue(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_events_free(f->ev);
    f->ev = NULL;
    start_events(f, 2);
    fsess s1 = { 0 };
    s1.es = hub_events_session_open(f->ev, "s1", 0, &fops, &s1);
    model_event e = { 0 };
    e.id = "x1";
    e.source = "aq-1";
    e.data = "{\"k\":1}";
    e.data_len = 7;
    must(model_event_set_type(&e, "ktwin.store.aq", 14, &err), &err);
    must(hub_events_ingest(f->ev, &e, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 1);
    /* unknown instance */
    e.source = "aq-404";
    kt_err_clear(&err);
    assert_int_equal(hub_events_ingest(f->ev, &e, &err), KT_ENOTFOUND);
    /* commands to pole-1 (s1): two fit, the third is refused with EAGAIN */
    model_event c = { 0 };
    c.id = "k";
    c.source = "pole-1";
    c.data = "{}";
    c.data_len = 2;
    const char *ct = "ktwin.command.pole.updateairqualityindex";
    must(model_event_set_type(&c, ct, strlen(ct), &err), &err);
    must(hub_events_ingest(f->ev, &c, &err), &err);
    must(hub_events_ingest(f->ev, &c, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 2);
    assert_int_equal(s1.n_ready, 1);
    kt_err_clear(&err);
    assert_int_equal(hub_events_ingest(f->ev, &c, &err), KT_EAGAIN);
    const char *labels[] = { "site", "s1", NULL };
    assert_true(kt_metrics_value(
                    kt_metrics_find(f->metrics, "ktwin_hub_downstream_full_total", labels)) >= 1.0);
    /*
     * backpressure: an upstream command to the full queue is not acked and not
     * lost; the session's next batch (a store event) waits behind it
     */
    fsess s2 = { 0 };
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    sync_event up[2] = { ev_of("u", ct, "pole-1", "{\"n\":1}"),
                         ev_of("st", "ktwin.store.aq", "aq-1", "{\"k\":2}") };
    must(hub_events_up_batch(s2.es, "inc", 1, up, 1, &err), &err);
    must(hub_events_up_batch(s2.es, "inc", 2, &up[1], 1, &err), &err);
    for (int i = 0; i < 3; i++) {
        (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(s2.n_acks, 0);
    assert_int_equal(s2.n_failed, 0);
    assert_int_equal(rows(f), 1); /* the store event waits too (its seq is after the command's) */
    uint64_t committed = 99;
    must(hub_events_up_committed(f->ev, "s2", "inc", &committed, &err), &err);
    assert_int_equal(committed, 0);
    const char *s2l[] = { "site", "s2", NULL };
    assert_true(kt_metrics_value(
                    kt_metrics_find(f->metrics, "ktwin_hub_upstream_deferred_total", s2l)) >= 1.0);
    /* s1's agent acks its two entries: the deferred batches commit, in order, and are acked */
    must(hub_events_down_acked(s1.es, 2, &err), &err);
    for (int i = 0; i < 200 && s2.acked < 2; i++) {
        (void)uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(s2.acked, 2);
    assert_int_equal(s2.n_failed, 0);
    assert_int_equal(rows(f), 2);
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 1);
    const sync_event *out = NULL;
    size_t n = 0;
    must(hub_events_down_next(s1.es, &out, &n, 3, 10, 1 << 20, &err), &err);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, "u");
    /* a resend of both is all duplicates */
    must(hub_events_up_batch(s2.es, "inc", 1, up, 2, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(hub_evstore_down_count(hub_events_store(f->ev), "s1"), 1);
    assert_int_equal(rows(f), 2);
    hub_events_session_close(s1.es);
    hub_events_session_close(s2.es);
}

static const model_placement *no_placement(void *user)
{
    (void)user;
    return NULL; /* everything in the cloud */
}

static void set_service(fx *f, const char *spec)
{
    for (size_t i = 0; i < f->cfg.services.specs.n; i++) {
        kt_free(f->cfg.services.specs.items[i]);
    }
    kt_free(f->cfg.services.specs.items);
    f->cfg.services.specs.items = kt_xcalloc(1, sizeof(char *));
    f->cfg.services.specs.items[0] = kt_xstrdup(spec);
    f->cfg.services.specs.n = 1;
}

static uint64_t cloud_rows(fx *f)
{
    return hub_evstore_down_count(hub_events_store(f->ev), "#cloud/aq");
}

static void test_cloud_calls_are_durable_and_resumed(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    /* a service that accepts connections (the kernel's backlog) and never answers */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 64), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    int port = ntohs(sa.sin_port);
    char spec[200];
    snprintf(spec, sizeof(spec), "aq=http://127.0.0.1:%d/ timeout=60s retries=0", port);
    hub_events_free(f->ev);
    f->ev = NULL;
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    set_service(f, spec);
    start_events(f, 100);
    hub_events_set_placement(f->ev, no_placement, NULL);
    fsess s2 = { 0 };
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    sync_event b[3] = { ev_of("r1", "ktwin.real.aq", "aq-1", "{\"v\":1}"),
                        ev_of("r2", "ktwin.real.aq", "aq-1", "{\"v\":2}"),
                        ev_of("r3", "ktwin.real.aq", "aq-1", "{\"v\":3}") };
    must(hub_events_up_batch(s2.es, "inc", 1, b, 3, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    /* acked, and the three service calls are durable while they are in flight */
    assert_int_equal(s2.acked, 3);
    assert_int_equal(cloud_rows(f), 3);
    for (int i = 0; i < 5; i++) {
        (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(cloud_rows(f), 3);
    /* stop (the calls are aborted, not completed): the rows stay */
    hub_events_session_close(s2.es);
    hub_events_free(f->ev);
    f->ev = NULL;
    (void)uv_run(&f->loop, UV_RUN_DEFAULT);
    /* restart against a port that refuses: the queued events are resumed and dead-lettered */
    close(lfd);
    start_events(f, 100);
    hub_events_set_placement(f->ev, no_placement, NULL);
    assert_int_equal(cloud_rows(f), 3);
    const char *ifl[] = { "iface", "aq", NULL };
    for (int i = 0; i < 2000 && cloud_rows(f) > 0; i++) {
        (void)uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(cloud_rows(f), 0);
    assert_true(kt_metrics_value(
                    kt_metrics_find(f->metrics, "ktwin_hub_cloud_dead_letters_total", ifl)) == 3.0);
}

static void test_depth_over_max_is_dropped(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    model_event e = { 0 };
    e.id = "d1";
    e.source = "aq-1";
    e.data = "{\"k\":1}";
    e.data_len = 7;
    must(model_event_set_type(&e, "ktwin.store.aq", 14, &err), &err);
    must(hub_events_ingest_depth(f->ev, &e, 9, &err), &err); /* default max 8 */
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 0);
    const char *dl[] = { "reason", "depth", NULL };
    assert_true(
        kt_metrics_value(kt_metrics_find(f->metrics, "ktwin_hub_events_dropped_total", dl)) == 1.0);
    must(hub_events_ingest_depth(f->ev, &e, 8, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 1);
}

/* A batch of n store events for aq-1 (ids "<tag>-<i>"), in arrays owned by the caller. */
static void bulk_batch(sync_event *evs, char (*ids)[24], size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%s-%zu", tag, i);
        evs[i] = ev_of(ids[i], "ktwin.store.aq", "aq-1", "{\"v\":1}");
    }
}

#define BULK 1500u /* over COALESCE_MIN_EVENTS, at most half of commit_max_events below */

static void test_bulk_batch_waits_for_the_one_still_arriving(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_events_free(f->ev);
    f->cfg.events.commit_max_events = 2 * BULK + 100;
    start_events(f, 100);
    static sync_event a[BULK], b[BULK], c[BULK], d[BULK];
    static char ia[BULK][24], ib[BULK][24], ic[BULK][24], id[BULK][24];
    bulk_batch(a, ia, BULK, "a");
    bulk_batch(b, ib, BULK, "b");
    bulk_batch(c, ic, BULK, "c");
    bulk_batch(d, id, BULK, "d");
    fsess s2 = { 0 };
    s2.es = hub_events_session_open(f->ev, "s2", 0, &fops, &s2);
    /* a bulk batch while the next message is arriving: the turn commits nothing */
    must(hub_events_up_batch(s2.es, "inc", 1, a, BULK, &err), &err);
    hub_events_session_note_rx(s2.es);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 0);
    assert_int_equal(s2.n_acks, 0);
    /* the next batch arrives: both commit in the next turn, then both are acked */
    must(hub_events_up_batch(s2.es, "inc", 1 + BULK, b, BULK, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 2 * BULK);
    assert_int_equal(s2.n_acks, 2);
    assert_int_equal(s2.acked, 2 * BULK);
    /* nothing arriving: a bulk batch commits in its own turn */
    must(hub_events_up_batch(s2.es, "inc", 1 + 2 * BULK, c, BULK, &err), &err);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 3 * BULK);
    assert_int_equal(s2.acked, 3 * BULK);
    /* the message never completes: the wait is bounded, the batch commits anyway */
    must(hub_events_up_batch(s2.es, "inc", 1 + 3 * BULK, d, BULK, &err), &err);
    hub_events_session_note_rx(s2.es);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 3 * BULK);
    for (int i = 0; i < 1000 && s2.acked != 4 * BULK; i++) {
        (void)uv_run(&f->loop, UV_RUN_ONCE); /* the coalescing timer */
    }
    assert_int_equal(rows(f), 4 * BULK);
    assert_int_equal(s2.acked, 4 * BULK);
    /* small batches never wait */
    sync_event one[1] = { ev_of("e-small", "ktwin.store.aq", "aq-1", "{\"v\":2}") };
    must(hub_events_up_batch(s2.es, "inc", 1 + 4 * BULK, one, 1, &err), &err);
    hub_events_session_note_rx(s2.es);
    (void)uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(rows(f), 4 * BULK + 1);
    hub_events_session_close(s2.es);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_is_acked_only_after_the_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_sites_in_one_turn_and_bad_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_closed_session_commits_and_resend_is_duplicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commands_go_downstream_in_order_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_store_unknown_and_full_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cloud_calls_are_durable_and_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_over_max_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_batch_waits_for_the_one_still_arriving, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
