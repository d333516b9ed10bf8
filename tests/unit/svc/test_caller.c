/*
 * test_caller.c — the HTTP service caller (svc/caller.h) on a real loop:
 *   - against a KTWIN-like Python service (ktwin_like_service.py, started
 *     here on port 0, stopped by PID) that calls back our KTWIN APIs
 *     (graph, latest, broker ingress, event store) exactly like KTWIN's SDK;
 *   - against services written here on kt_net: binary-mode rendering, reply
 *     events, bounded concurrency + queue + KT_EAGAIN, per-call timeout,
 *     retries with backoff on 503, no retry on 4xx, connection refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt/clock.h"
#include "kt/net.h"
#include "model/graph.h"
#include "svc/api.h"
#include "svc/caller.h"
#include "svc_fixture.h"

extern char **environ;

#define MAX_HELD 16

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    kt_net *net;
    kt_http_server *api_srv; /* our KTWIN APIs: ingress, event store, graph */
    kt_http_server *svc_srv; /* services written in this test */
    svc_api *api;
    model *m;
    mem_store store;
    svc_store_ops ops;
    fx_events in;
    svc_caller *caller;
    kt_metrics *reg;
    /* service behaviour */
    int flaky_left; /* /flaky answers 503 while > 0 */
    int hits_flaky;
    int hits_bad;
    kt_http_req *held[MAX_HELD];
    size_t n_held;
    size_t max_held;
    char last_type[256];
    char last_source[256];
    char last_id[256];
    char last_ct[256];
    char last_depth[32];
    char last_body[256];
    /* results */
    int n_done;
    kt_status last_st;
    int last_http;
    uint32_t last_attempts;
    char reply_type[MODEL_EVENT_TYPE_CAP];
    char reply_data[256];
    char base_svc[64];
    char base_api[64];
} fx;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static bool run_until(fx *f, bool (*cond)(fx *f), uint64_t ms)
{
    uint64_t deadline = kt_clock_mono_ms() + ms;
    while (!cond(f)) {
        if (kt_clock_mono_ms() > deadline) {
            return false;
        }
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    return true;
}

/* ------------------------------------------------------- our KTWIN APIs */

static kt_status ingest(void *user, const model_event *ev, kt_err *err)
{
    fx *f = user;
    if (ev->cls ==
        MODEL_EVENT_STORE) { /* as the agent does: store events update the latest state */
        char type[MODEL_EVENT_TYPE_CAP];
        svc_record r = { .iface = ev->iface,
                         .instance = ev->source,
                         .id = ev->id,
                         .type = model_event_type_str(ev, type, sizeof type),
                         .source = ev->source,
                         .time_ms = ev->time_ms,
                         .data = ev->data,
                         .data_len = ev->data_len };
        kt_status st = mem_put(&f->store, &r, err);
        if (st != KT_OK) {
            return st;
        }
    }
    return fx_events_add(&f->in, ev);
}

static void on_graph_iface(kt_http_req *req, void *user)
{
    fx *f = user;
    const char *iface = kt_http_req_path(req) + strlen("/api/v1/twin-graph/");
    kt_buf out;
    kt_buf_init(&out, 1u << 20);
    if (model_graph_iface_to_json(f->m, iface, &out) != KT_OK) {
        kt_buf_fini(&out);
        kt_http_respond_error(req, 500, "graph");
        return;
    }
    kt_http_respond(req, 200, "application/json", out.data, out.len);
    kt_buf_fini(&out);
}

/* ---------------------------------------------------- in-test services */

static void copy_header(kt_http_req *req, const char *name, char *out, size_t cap)
{
    const char *v = kt_http_req_header(req, name);
    snprintf(out, cap, "%s", v != NULL ? v : "");
}

static void on_ok(kt_http_req *req, void *user)
{
    fx *f = user;
    size_t len = 0;
    const uint8_t *b = kt_http_req_body(req, &len);
    copy_header(req, "ce-type", f->last_type, sizeof f->last_type);
    copy_header(req, "ce-source", f->last_source, sizeof f->last_source);
    copy_header(req, "ce-id", f->last_id, sizeof f->last_id);
    copy_header(req, "content-type", f->last_ct, sizeof f->last_ct);
    copy_header(req, SVC_DEPTH_HEADER, f->last_depth, sizeof f->last_depth);
    snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)len, (const char *)b);
    kt_http_respond(req, 200, NULL, "", 0);
}

static void on_reply(kt_http_req *req, void *user)
{
    (void)user;
    kt_http_resp_header(req, "ce-specversion", "1.0");
    kt_http_resp_header(req, "ce-id", "r-1");
    kt_http_resp_header(req, "ce-type", "ktwin.store.city-pole");
    kt_http_resp_header(req, "ce-source", "pole-2");
    kt_http_respond(req, 200, "application/json", "{\"fromReply\":true}", 18);
}

static void on_bad_reply(kt_http_req *req, void *user)
{
    (void)user;
    kt_http_resp_header(req, "ce-specversion", "1.0");
    kt_http_resp_header(req, "ce-id", "r-1");
    kt_http_resp_header(req, "ce-type", "not.ktwin");
    kt_http_resp_header(req, "ce-source", "pole-2");
    kt_http_respond(req, 200, "application/json", "{}", 2);
}

static void on_flaky(kt_http_req *req, void *user)
{
    fx *f = user;
    f->hits_flaky++;
    if (f->flaky_left > 0) {
        f->flaky_left--;
        kt_http_respond_error(req, 503, "busy");
        return;
    }
    kt_http_respond(req, 200, NULL, "", 0);
}

static void on_bad(kt_http_req *req, void *user)
{
    fx *f = user;
    f->hits_bad++;
    kt_http_respond_error(req, 400, "bad event");
}

static void on_hold(kt_http_req *req, void *user)
{
    fx *f = user;
    KT_ASSERT(f->n_held < MAX_HELD);
    f->held[f->n_held++] = req;
    if (f->n_held > f->max_held) {
        f->max_held = f->n_held;
    }
}

static void on_never(kt_http_req *req, void *user)
{
    (void)req;
    (void)user; /* never answered: the caller's timeout must fire */
}

static void release_one(fx *f)
{
    KT_ASSERT(f->n_held > 0);
    kt_http_req *r = f->held[0];
    memmove(f->held, f->held + 1, (f->n_held - 1) * sizeof(f->held[0]));
    f->n_held--;
    kt_http_respond(r, 200, NULL, "", 0);
}

/* ------------------------------------------------------------- fixture */

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof(*f));
    kt_err err = { 0 };
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 10, 10);
    f->m = fx_model();
    assert_non_null(f->m);
    f->reg = kt_metrics_new();
    assert_int_equal(kt_net_new(&f->net, &f->loop, NULL, &err), KT_OK);
    kt_http_server_opts so = { .port = 0 };
    assert_int_equal(kt_http_server_new(&f->api_srv, f->net, &so, &err), KT_OK);
    f->ops = mem_store_ops(&f->store);
    svc_api_ops ops = { .ingest = ingest, .store = &f->ops, .user = f };
    assert_int_equal(svc_api_mount(&f->api, f->api_srv, &ops, NULL, &err), KT_OK);
    assert_int_equal(kt_http_route(f->api_srv, KT_HTTP_GET, "/api/v1/twin-graph/", KT_HTTP_PREFIX,
                                   on_graph_iface, f, &err),
                     KT_OK);
    assert_int_equal(kt_http_server_start(f->api_srv, &err), KT_OK);
    snprintf(f->base_api, sizeof f->base_api, "http://127.0.0.1:%d",
             kt_http_server_port(f->api_srv));

    assert_int_equal(kt_http_server_new(&f->svc_srv, f->net, &so, &err), KT_OK);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/ok", 0, on_ok, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/reply", 0, on_reply, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/bad-reply", 0, on_bad_reply, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/flaky", 0, on_flaky, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/bad", 0, on_bad, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/hold", 0, on_hold, f, &err);
    kt_http_route(f->svc_srv, KT_HTTP_POST, "/never", 0, on_never, f, &err);
    assert_int_equal(kt_http_server_start(f->svc_srv, &err), KT_OK);
    snprintf(f->base_svc, sizeof f->base_svc, "http://127.0.0.1:%d",
             kt_http_server_port(f->svc_srv));

    svc_caller_opts co = { .metrics = f->reg };
    assert_int_equal(svc_caller_new(&f->caller, &f->loop, &co, &err), KT_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    svc_caller_free(f->caller);
    kt_net_free(f->net);
    uv_timer_stop(&f->tick);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    svc_api_free(f->api);
    fx_events_clear(&f->in);
    mem_store_fini(&f->store);
    kt_metrics_free(f->reg);
    model_free(f->m);
    kt_free(f);
    return 0;
}

static void done_cb(kt_status st, const svc_call_result *res, void *user)
{
    fx *f = user;
    f->n_done++;
    f->last_st = st;
    f->last_http = res->http_status;
    f->last_attempts = res->attempts;
    f->reply_type[0] = '\0';
    f->reply_data[0] = '\0';
    if (res->reply != NULL) {
        model_event_type_str(res->reply, f->reply_type, sizeof f->reply_type);
        snprintf(f->reply_data, sizeof f->reply_data, "%.*s", (int)res->reply->data_len,
                 (const char *)res->reply->data);
    }
}

static void endpoint(fx *f, const char *iface, const char *path, svc_endpoint_opts o)
{
    char u[128];
    kt_err err = { 0 };
    snprintf(u, sizeof u, "%s%s", path[0] == '/' ? f->base_svc : "", path);
    o.url = u;
    assert_int_equal(svc_caller_endpoint(f->caller, iface, &o, &err), KT_OK);
}

static void real_event(model_event *ev, const char *iface, const char *inst, const char *data)
{
    kt_err err = { 0 };
    memset(ev, 0, sizeof(*ev));
    assert_int_equal(model_event_set_class(ev, MODEL_EVENT_REAL, iface, NULL, &err), KT_OK);
    ev->id = "ev-1";
    ev->source = inst;
    ev->time = "2024-06-22T00:50:00Z";
    ev->time_ms = 1719017400000ull;
    ev->data = data;
    ev->data_len = strlen(data);
}

static int want_done;
static bool done_reached(fx *f)
{
    return f->n_done >= want_done;
}

static void post_and_wait(fx *f, const char *iface, model_event *ev, uint64_t ms)
{
    kt_err err = { 0 };
    want_done = f->n_done + 1;
    assert_int_equal(svc_caller_post(f->caller, iface, ev, done_cb, f, &err), KT_OK);
    assert_int_equal(f->n_done, want_done - 1); /* never done inside post */
    assert_true(run_until(f, done_reached, ms));
}

/* --------------------------------------------------------------- tests */

static void test_binary_mode_and_reply(void **state)
{
    fx *f = *state;
    model_event ev;
    endpoint(f, "city-pole", "/ok", (svc_endpoint_opts){ 0 });
    real_event(&ev, "city-pole", "pole-1", "{\"powerState\":\"on\"}");
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_OK);
    assert_int_equal(f->last_http, 200);
    assert_int_equal(f->last_attempts, 1);
    assert_string_equal(f->last_type, "ktwin.real.city-pole");
    assert_string_equal(f->last_source, "pole-1");
    assert_string_equal(f->last_id, "ev-1");
    assert_string_equal(f->last_ct, "application/json");
    assert_string_equal(f->last_body, "{\"powerState\":\"on\"}");
    assert_string_equal(f->reply_type, "");
    assert_string_equal(f->last_depth, "0"); /* the loop depth always goes along */

    /* svc_caller_post_depth sends the event's loop depth as ce-ktwindepth */
    {
        kt_err derr = { 0 };
        want_done = f->n_done + 1;
        assert_int_equal(svc_caller_post_depth(f->caller, "city-pole", &ev, 5, done_cb, f, &derr),
                         KT_OK);
        assert_true(run_until(f, done_reached, 10000));
        assert_int_equal(f->last_st, KT_OK);
        assert_string_equal(f->last_depth, "5");
    }

    endpoint(f, "city-pole", "/reply", (svc_endpoint_opts){ 0 }); /* replace */
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_OK);
    assert_string_equal(f->reply_type, "ktwin.store.city-pole");
    assert_string_equal(f->reply_data, "{\"fromReply\":true}");

    endpoint(f, "city-pole", "/bad-reply", (svc_endpoint_opts){ 0 });
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_EPROTO);
    assert_int_equal(f->last_attempts, 1);

    kt_err err = { 0 };
    assert_int_equal(svc_caller_post(f->caller, "nobody", &ev, done_cb, f, &err), KT_ENOTFOUND);
    svc_endpoint_opts bad = { .url = "ftp://x/" };
    assert_int_equal(svc_caller_endpoint(f->caller, "x", &bad, &err), KT_EINVAL);
}

static bool two_held(fx *f)
{
    return f->n_held == 2;
}
static bool one_held(fx *f)
{
    return f->n_held >= 1;
}

static void test_bounded_concurrency_and_queue(void **state)
{
    fx *f = *state;
    model_event ev;
    kt_err err = { 0 };
    int i;
    endpoint(f, "city-pole", "/hold", (svc_endpoint_opts){ .concurrency = 2, .queue_max = 3 });
    real_event(&ev, "city-pole", "pole-1", "{}");
    for (i = 0; i < 5; i++) {
        assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    }
    /* 2 in flight + 3 queued: the sixth is refused, nothing taken */
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_EAGAIN);
    assert_int_equal(svc_caller_pending(f->caller, "city-pole"), 5);
    const char *labels[] = { "iface", "city-pole", NULL };
    assert_int_equal(
        kt_metrics_value(kt_metrics_find(f->reg, "ktwin_svc_http_rejected_total", labels)), 1);
    assert_true(run_until(f, two_held, 10000));
    for (i = 0; i < 5; i++) {
        assert_true(run_until(f, one_held, 10000));
        release_one(f);
        want_done = i + 1;
        assert_true(run_until(f, done_reached, 10000));
        assert_int_equal(f->last_st, KT_OK);
    }
    assert_int_equal(f->max_held, 2);
    assert_int_equal(f->n_done, 5);
    assert_int_equal(svc_caller_pending(f->caller, "city-pole"), 0);
    /* room again */
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    assert_true(run_until(f, one_held, 10000));
    release_one(f);
    want_done = 6;
    assert_true(run_until(f, done_reached, 10000));
}

static void test_timeout_retry_and_permanent_errors(void **state)
{
    fx *f = *state;
    model_event ev;
    real_event(&ev, "city-pole", "pole-1", "{}");

    /* 503 twice, then 200: three attempts, success */
    f->flaky_left = 2;
    endpoint(f, "city-pole", "/flaky",
             (svc_endpoint_opts){ .retries = 3, .backoff_min_ms = 10, .backoff_max_ms = 40 });
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_OK);
    assert_int_equal(f->last_attempts, 3);
    assert_int_equal(f->hits_flaky, 3);

    /* always 503 with 1 retry: KT_EDEP with the status after 2 attempts */
    f->flaky_left = 100;
    f->hits_flaky = 0;
    endpoint(f, "city-pole", "/flaky", (svc_endpoint_opts){ .retries = 1, .backoff_min_ms = 10 });
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_EDEP);
    assert_int_equal(f->last_http, 503);
    assert_int_equal(f->last_attempts, 2);
    assert_int_equal(f->hits_flaky, 2);

    /* 400 is permanent: no retry */
    endpoint(f, "city-pole", "/bad", (svc_endpoint_opts){ .retries = 5, .backoff_min_ms = 10 });
    post_and_wait(f, "city-pole", &ev, 10000);
    assert_int_equal(f->last_st, KT_EDEP);
    assert_int_equal(f->last_http, 400);
    assert_int_equal(f->last_attempts, 1);
    assert_int_equal(f->hits_bad, 1);

    /* never answered: per-attempt timeout, then one retry */
    endpoint(f, "city-pole", "/never",
             (svc_endpoint_opts){ .timeout_ms = 200, .retries = 1, .backoff_min_ms = 10 });
    post_and_wait(f, "city-pole", &ev, 20000);
    assert_int_equal(f->last_st, KT_ETIMEDOUT);
    assert_int_equal(f->last_attempts, 2);

    /* nothing listening: transport error after the retries */
    endpoint(f, "city-pole", "http://127.0.0.1:1/",
             (svc_endpoint_opts){ .retries = 2, .backoff_min_ms = 10 });
    post_and_wait(f, "city-pole", &ev, 20000);
    assert_int_equal(f->last_st, KT_EIO);
    assert_int_equal(f->last_attempts, 3);
    const char *labels[] = { "iface", "city-pole", NULL };
    assert_true(kt_metrics_value(kt_metrics_find(f->reg, "ktwin_svc_http_retries_total", labels)) >=
                6);
    assert_int_equal(
        kt_metrics_value(kt_metrics_find(f->reg, "ktwin_svc_http_failures_total", labels)), 4);
}

static void test_free_with_pending_calls(void **state)
{
    fx *f = *state;
    model_event ev;
    kt_err err = { 0 };
    endpoint(f, "city-pole", "/hold", (svc_endpoint_opts){ .concurrency = 1 });
    real_event(&ev, "city-pole", "pole-1", "{}");
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    assert_true(run_until(f, one_held, 10000));
    svc_caller_free(f->caller); /* both calls end with KT_ECLOSED, inside the call */
    f->caller = NULL;
    assert_int_equal(f->n_done, 2);
    assert_int_equal(f->last_st, KT_ECLOSED);
    f->n_held = 0; /* kt_net drops the held request when the client went away */
}

/* ------------------------------------------- the KTWIN-like Python service */

typedef struct py_service {
    pid_t pid;
    int port;
} py_service;

static void py_start(fx *f, py_service *p)
{
    int fds[2];
    char broker[128];
    char store[128];
    char graph[160];
    char line[32];
    size_t n = 0;
    posix_spawn_file_actions_t fa;
    char *argv[] = { "python3", KT_SOURCE_DIR "/tests/unit/svc/ktwin_like_service.py", NULL };
    assert_int_equal(pipe(fds), 0);
    snprintf(broker, sizeof broker, "KTWIN_BROKER=%s/", f->base_api);
    snprintf(store, sizeof store, "KTWIN_EVENT_STORE=%s", f->base_api);
    snprintf(graph, sizeof graph, "KTWIN_GRAPH_URL=%s/api/v1/twin-graph", f->base_api);
    char *envp[] = { broker, store, graph, "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
    const char *path = getenv("PATH");
    char pathvar[4096];
    if (path != NULL) {
        snprintf(pathvar, sizeof pathvar, "PATH=%s", path);
        envp[3] = pathvar;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    assert_int_equal(posix_spawnp(&p->pid, "python3", &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    while (n + 1 < sizeof line) {
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0 || line[n] == '\n') {
            break;
        }
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    p->port = (int)strtol(line, NULL, 10);
    assert_true(p->port > 0);
}

static void py_stop(py_service *p)
{
    int status = 0;
    kill(p->pid, SIGTERM);
    waitpid(p->pid, &status, 0);
}

static size_t want_in;
static size_t want_puts;
static bool py_done(fx *f)
{
    return f->n_done >= want_done && f->in.n >= want_in && f->store.puts >= want_puts;
}

static void test_ktwin_like_service_calls_back_our_apis(void **state)
{
    fx *f = *state;
    py_service py;
    model_event ev;
    kt_err err = { 0 };
    char u[128];
    char type[MODEL_EVENT_TYPE_CAP];
    py_start(f, &py);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", py.port);
    endpoint(f, "city-pole", u, (svc_endpoint_opts){ .timeout_ms = 10000 });

    real_event(&ev, "city-pole", "pole-1", "{\"v\":1}");
    want_done = 1;
    want_in = 3;
    want_puts = 2;
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    assert_true(run_until(f, py_done, 20000));
    assert_int_equal(f->last_st, KT_OK);
    assert_int_equal(f->last_http, 200);
    /* through the broker ingress: store, command along the graph, virtual */
    assert_int_equal(f->in.n, 3);
    assert_string_equal(model_event_type_str(f->in.ev[0], type, sizeof type),
                        "ktwin.store.city-pole");
    assert_string_equal(f->in.ev[0]->source, "pole-1");
    assert_string_equal(model_event_type_str(f->in.ev[1], type, sizeof type),
                        "ktwin.command.hood.updateairqualityindex");
    assert_string_equal(f->in.ev[1]->source, "hood-1");
    assert_string_equal(model_event_type_str(f->in.ev[2], type, sizeof type),
                        "ktwin.virtual.city-pole");
    /* the store: the broker's store event and the direct POST, upsert-merged */
    assert_int_equal(f->store.puts, 2);
    const fx_rec *r = mem_store_latest_rec(&f->store, "city-pole", "pole-1");
    assert_non_null(r);
    assert_string_equal(r->data, "{\"count\":1,\"lastValue\":{\"v\":1},\"direct\":true}");

    /* second event: the service reads the latest state back (count 2) */
    fx_events_clear(&f->in);
    real_event(&ev, "city-pole", "pole-1", "{\"v\":2}");
    want_done = 2;
    want_in = 3;
    want_puts = 4;
    assert_int_equal(svc_caller_post(f->caller, "city-pole", &ev, done_cb, f, &err), KT_OK);
    assert_true(run_until(f, py_done, 20000));
    assert_int_equal(f->last_st, KT_OK);
    r = mem_store_latest_rec(&f->store, "city-pole", "pole-1");
    assert_string_equal(r->data, "{\"count\":2,\"lastValue\":{\"v\":2},\"direct\":true}");
    py_stop(&py);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_binary_mode_and_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_concurrency_and_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_retry_and_permanent_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ktwin_like_service_calls_back_our_apis, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
