/*
 * sdk/src/http.c — ktwin_http_main: a twin-service plugin (ktwin.h) served
 * standalone over HTTP with KTWIN's APIs as its host (see ktwin_http.h for
 * the contract).
 *
 * DESIGN. The loop thread (libuv + kt_net) parses each POST / into a
 * model_event (model_event_from_http: binary and structured mode), queues
 * it, and hands the head of the queue to the libuv threadpool with
 * uv_queue_work. Only one job is ever out at a time, so the "worker state"
 * below is touched by one thread at a time, and uv_queue_work's hand-offs
 * order those accesses (the same guarantee the loop gives kt_inbox
 * messages; no lock of ours). The job runs the plugin through the same
 * svc_plugin_host the agent and the hub use (svc/plugin.h: emit checks,
 * all-or-nothing, graph and latest functions), with the graph from
 * gindex.h and the latest state from remote.h; emits are POSTed to the
 * broker by the host's sink, after the handler returned KTWIN_OK. The
 * after-work callback answers the request on the loop and starts the next
 * job. Why a threadpool thread at all: ktwin_latest is synchronous in the
 * plugin ABI, and here it is an HTTP GET; running it on the loop would stall
 * the server (STYLE.md §8.3).
 *
 * Invariants: at most one job is running (s->running); the queue holds at
 * most queue_max jobs; every accepted request gets exactly one answer
 * (after its job, or 503 when the server stops before its turn); metrics
 * and kt_net are touched on the loop only; host, remote and graph only by
 * the one running job (or by the main thread before and after serving).
 *
 * Thread: loop thread (the caller of ktwin_http_main) + one threadpool
 * thread at a time for jobs. Ownership: the server owns the host, the
 * remote, the graph model and every queued job (each owns its event).
 */
#include "ktwin_http.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#define KT_LOG_MOD "sdk"
#include "gindex.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "model/event.h"
#include "remote.h"
#include "svc/plugin.h"

#define DEFAULT_PORT            8080
#define DEFAULT_QUEUE           256u
#define DEFAULT_GRAPH_REFRESH_S 60u
#define DEFAULT_TIMEOUT_MS      10000u
#define GRAPH_RETRY_MS          1000u
#define MAX_IFACES              64u
#define EXIT_OK                 0
#define EXIT_RUNTIME            1
#define EXIT_USAGE              2

typedef struct srv srv;

typedef struct job {
    uv_work_t work;
    struct job *next;
    srv *s;
    kt_http_req *req;
    model_event *ev; /* owned */
    /* results, written by the worker */
    int http_status;
    size_t n_emits;
    bool emit_failed;
    int graph_load; /* 0 none tried, 1 loaded, -1 failed */
    size_t graph_instances;
    kt_err err;
} job;

struct srv {
    /* settings */
    const ktwin_plugin *plugin;
    char broker[1024];
    char store[1024];
    char graph_url[1024];
    const char *ifaces[MAX_IFACES];
    size_t n_ifaces;
    const char *dispatch_iface;
    uint32_t graph_refresh_s;
    uint32_t timeout_ms;
    size_t queue_max;
    /* worker state: one job at a time (see DESIGN) */
    svc_plugin_host *host;
    ktwin_remote *remote;
    model *graph;
    bool graph_ever;
    uint64_t graph_loaded_ms; /* mono */
    uint64_t graph_next_try_ms;
    /* loop state */
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    kt_net *net;
    kt_metrics *metrics;
    job *head;
    job *tail;
    size_t n_queued;
    job *running;
    bool stopping;
    kt_metric *m_ok;
    kt_metric *m_rejected;
    kt_metric *m_failed;
    kt_metric *m_retry;
    kt_metric *m_emit_failed;
    kt_metric *m_busy;
    kt_metric *m_emits;
    kt_metric *m_graph_ok;
    kt_metric *m_graph_fail;
    kt_metric *m_graph_instances;
    kt_metric *m_queue;
};

/* ------------------------------------------------------------ worker side */

/* Percent-encode s into out for a URL path segment. */
static void path_escape(kt_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '~') {
            (void)kt_buf_putc(out, (char)c);
        } else {
            (void)kt_buf_putc(out, '%');
            (void)kt_buf_putc(out, hex[c >> 4]);
            (void)kt_buf_putc(out, hex[c & 15]);
        }
    }
}

/* svc_store_ops.latest over GET {store}/api/v1/twin-events/{iface}/{inst}/latest. */
static kt_status latest_op(void *user,
                           const char *iface,
                           const char *instance,
                           svc_record_cb cb,
                           void *cb_user,
                           kt_err *err)
{
    srv *s = user;
    kt_buf url;
    ktwin_remote_reply rep;
    svc_record rec;
    char type[MODEL_EVENT_TYPE_CAP];
    kt_status st;
    if (model_name_check(iface) != NULL || model_name_check(instance) != NULL) {
        return kt_err_set(err, KT_ENOTFOUND, "no such twin %s/%s", iface, instance);
    }
    kt_buf_init(&url, 4096);
    (void)kt_buf_puts(&url, s->store);
    (void)kt_buf_puts(&url, "/api/v1/twin-events/");
    path_escape(&url, iface);
    (void)kt_buf_putc(&url, '/');
    path_escape(&url, instance);
    (void)kt_buf_puts(&url, "/latest");
    st = ktwin_remote_get(s->remote, url.data, &rep, err);
    if (st == KT_OK && rep.status == 404) {
        st = kt_err_set(err, KT_ENOTFOUND, "no state stored for %s/%s", iface, instance);
    } else if (st == KT_OK && rep.status != 200) {
        st = kt_err_set_dep(err, KT_EDEP, "http", rep.status, "GET %s: HTTP %d", url.data,
                            rep.status);
    }
    if (st == KT_OK) {
        uint64_t t = 0;
        kt_err ignore = { 0 };
        memset(&rec, 0, sizeof(rec));
        if (rep.ce_time[0] != '\0' &&
            model_time_parse(rep.ce_time, strlen(rep.ce_time), &t, &ignore) != KT_OK) {
            t = 0;
        }
        snprintf(type, sizeof(type), "ktwin.store.%s", iface);
        rec.iface = iface;
        rec.instance = instance;
        rec.id = rep.ce_id;
        rec.type = type;
        rec.source = instance;
        rec.time_ms = t;
        rec.data = (const uint8_t *)rep.body;
        rec.data_len = rep.body_len;
        (void)cb(&rec, cb_user);
    }
    kt_buf_fini(&url);
    return st;
}

static const model *graph_cb(void *user)
{
    srv *s = user;
    return s->graph;
}

/* GET the graph and index it; the previous graph stays on failure. */
static kt_status graph_load(srv *s, kt_err *err)
{
    ktwin_remote_reply rep;
    model *m = NULL;
    kt_status st = ktwin_remote_get(s->remote, s->graph_url, &rep, err);
    if (st != KT_OK) {
        return st;
    }
    if (rep.status != 200) {
        return kt_err_set_dep(err, KT_EDEP, "http", rep.status, "GET %s: HTTP %d", s->graph_url,
                              rep.status);
    }
    st = ktwin_gindex_build(&m, s->graph_url, rep.body, rep.body_len, err);
    if (st != KT_OK) {
        return st;
    }
    model_free(s->graph);
    s->graph = m;
    s->graph_ever = true;
    s->graph_loaded_ms = kt_clock_mono_ms();
    KT_LOG(KT_LOG_INFO, "SDK-GRAPH-LOADED", "url=%s instances=%zu", s->graph_url,
           model_n_instances(m));
    return KT_OK;
}

/* Reload the graph when due (see ktwin_http.h GRAPH REFRESH POLICY). */
static void graph_maybe_refresh(srv *s, job *j)
{
    uint64_t now = kt_clock_mono_ms();
    bool due;
    kt_err e = { 0 };
    if (s->graph_url[0] == '\0' || now < s->graph_next_try_ms) {
        return;
    }
    due = !s->graph_ever ||
          (s->graph_refresh_s > 0 && now - s->graph_loaded_ms >= s->graph_refresh_s * 1000ull);
    if (!due) {
        return;
    }
    if (graph_load(s, &e) == KT_OK) {
        j->graph_load = 1;
        return;
    }
    j->graph_load = -1;
    s->graph_next_try_ms = now + GRAPH_RETRY_MS;
    {
        char q[300];
        KT_LOG(KT_LOG_WARN, "SDK-GRAPH-FAIL", "url=%s kept=%s err=%s", s->graph_url,
               s->graph_ever ? "previous" : "none", kt_log_quote(q, sizeof(q), e.msg));
    }
}

/* svc_emit_cb: POST one emitted event to the broker. */
static kt_status sink_cb(const model_event *ev, void *user)
{
    job *j = user;
    kt_status st = ktwin_remote_post_event(j->s->remote, j->s->broker, ev, &j->err);
    if (st != KT_OK) {
        j->emit_failed = true;
        return st;
    }
    j->n_emits++;
    return KT_OK;
}

static void work_cb(uv_work_t *w)
{
    job *j = w->data;
    srv *s = j->s;
    kt_status st;
    graph_maybe_refresh(s, j);
    j->graph_instances = s->graph != NULL ? model_n_instances(s->graph) : 0;
    if (s->graph_url[0] != '\0' && !s->graph_ever) {
        kt_err_set(&j->err, KT_EAGAIN, "twin graph not loaded yet from %s", s->graph_url);
        j->http_status = 503;
        return;
    }
    st = svc_plugin_host_dispatch(s->host, s->dispatch_iface, j->ev, sink_cb, j, &j->err);
    if (st == KT_OK) {
        j->http_status = 200;
    } else if (j->emit_failed) {
        j->http_status = 502;
    } else if (st == KT_EAGAIN) {
        j->http_status = 503;
    } else {
        j->http_status = 500;
    }
}

/* --------------------------------------------------------------- loop side */

static void respond_503(kt_http_req *req, const char *msg)
{
    (void)kt_http_resp_header(req, "Retry-After", "1");
    (void)kt_http_respond_error(req, 503, msg);
}

static void job_free(job *j)
{
    model_event_free(j->ev);
    kt_free(j);
}

static void start_next(srv *s);

static void after_cb(uv_work_t *w, int status)
{
    job *j = w->data;
    srv *s = j->s;
    char q[300];
    (void)status;
    s->running = NULL;
    if (j->graph_load == 1) {
        kt_metrics_inc(s->m_graph_ok);
    } else if (j->graph_load == -1) {
        kt_metrics_inc(s->m_graph_fail);
    }
    kt_metrics_set(s->m_graph_instances, (double)j->graph_instances);
    kt_metrics_add(s->m_emits, j->n_emits);
    switch (j->http_status) {
    case 200:
        kt_metrics_inc(s->m_ok);
        (void)kt_http_respond(j->req, 200, NULL, "", 0);
        break;
    case 502:
        kt_metrics_inc(s->m_emit_failed);
        KT_LOG(KT_LOG_WARN, "SDK-EMIT-FAIL", "id=%s type=%s.%s source=%s delivered=%zu err=%s",
               j->ev->id, model_event_class_str(j->ev->cls), j->ev->iface, j->ev->source,
               j->n_emits, kt_log_quote(q, sizeof(q), j->err.msg));
        (void)kt_http_respond_error(j->req, 502, j->err.msg);
        break;
    case 503:
        kt_metrics_inc(s->m_retry);
        respond_503(j->req, j->err.msg);
        break;
    default:
        kt_metrics_inc(s->m_failed);
        (void)kt_http_respond_error(j->req, 500, j->err.msg);
        break;
    }
    job_free(j);
    start_next(s);
}

static void start_next(srv *s)
{
    job *j;
    if (s->running != NULL) {
        return;
    }
    if (s->head == NULL) {
        if (s->stopping) {
            uv_stop(&s->loop);
        }
        return;
    }
    j = s->head;
    s->head = j->next;
    if (s->head == NULL) {
        s->tail = NULL;
    }
    s->n_queued--;
    kt_metrics_set(s->m_queue, (double)s->n_queued);
    s->running = j;
    j->work.data = j;
    if (uv_queue_work(&s->loop, &j->work, work_cb, after_cb) != 0) {
        s->running = NULL;
        kt_metrics_inc(s->m_failed);
        (void)kt_http_respond_error(j->req, 500, "cannot start the handler");
        job_free(j);
        start_next(s);
    }
}

static const char *req_header_cb(const char *name, void *user)
{
    return kt_http_req_header(user, name);
}

static void on_event(kt_http_req *req, void *user)
{
    srv *s = user;
    model_event *ev = NULL;
    kt_err e = { 0 };
    size_t len = 0;
    const uint8_t *body = kt_http_req_body(req, &len);
    job *j;
    kt_status st = model_event_from_http(&ev, req_header_cb, req, body, len, 0, &e);
    if (st != KT_OK) {
        char q[300];
        kt_metrics_inc(s->m_rejected);
        KT_LOG(KT_LOG_INFO, "SDK-EVENT-REJECT", "peer=%s err=%s", kt_http_req_peer(req),
               kt_log_quote(q, sizeof(q), e.msg));
        (void)kt_http_respond_error(req, st == KT_ETOOBIG ? 413 : 400, e.msg);
        return;
    }
    if (s->stopping) {
        model_event_free(ev);
        kt_metrics_inc(s->m_busy);
        respond_503(req, "stopping");
        return;
    }
    if (s->n_queued >= s->queue_max) {
        model_event_free(ev);
        kt_metrics_inc(s->m_busy);
        respond_503(req, "queue full");
        return;
    }
    j = kt_xcalloc(1, sizeof(*j));
    j->s = s;
    j->req = req;
    j->ev = ev;
    if (s->tail != NULL) {
        s->tail->next = j;
    } else {
        s->head = j;
    }
    s->tail = j;
    s->n_queued++;
    kt_metrics_set(s->m_queue, (double)s->n_queued);
    start_next(s);
}

static void on_health(kt_http_req *req, void *user)
{
    static const char ok[] = "{\"status\":\"OK\"}";
    (void)user;
    (void)kt_http_respond(req, 200, "application/json", ok, sizeof(ok) - 1);
}

static void on_metrics(kt_http_req *req, void *user)
{
    srv *s = user;
    kt_buf b;
    kt_buf_init(&b, 16u * 1024u * 1024u);
    if (kt_metrics_render(s->metrics, &b) != KT_OK) {
        kt_buf_fini(&b);
        (void)kt_http_respond_error(req, 500, "metrics too large");
        return;
    }
    (void)kt_http_respond(req, 200, "text/plain; version=0.0.4", b.data != NULL ? b.data : "",
                          b.len);
    kt_buf_fini(&b);
}

static void on_signal(uv_signal_t *h, int signum)
{
    srv *s = h->data;
    job *j;
    if (s->stopping) {
        return;
    }
    s->stopping = true;
    KT_LOG(KT_LOG_NOTICE, "SDK-STOP", "signal=%d running=%d queued=%zu", signum, s->running != NULL,
           s->n_queued);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    while ((j = s->head) != NULL) {
        s->head = j->next;
        kt_metrics_inc(s->m_busy);
        respond_503(j->req, "stopping");
        job_free(j);
    }
    s->tail = NULL;
    s->n_queued = 0;
    start_next(s); /* stops the loop now, or after the running job */
}

/* ------------------------------------------------------------------ setup */

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--port N] [--address A] [--config JSON|FILE] [--interface I]...\n"
            "          [--graph-refresh S] [--queue N] [--timeout-ms N] [--port-file FILE]\n"
            "          [--log-level err|warn|notice|info|debug]\n"
            "environment: KTWIN_BROKER (required), KTWIN_EVENT_STORE, KTWIN_GRAPH_URL, PORT,\n"
            "             KTWIN_SERVICE_CONFIG\n",
            prog);
}

/* Parse a decimal in [0, max] into *out. */
static bool parse_uint(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;
    if (text == NULL || text[0] < '0' || text[0] > '9') {
        return false;
    }
    v = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Copy url into dst without trailing '/' (when strip) ; false when too long. */
static bool set_url(char *dst, size_t cap, const char *url, bool strip)
{
    size_t n;
    if (url == NULL) {
        dst[0] = '\0';
        return true;
    }
    n = strlen(url);
    while (strip && n > 0 && url[n - 1] == '/') {
        n--;
    }
    if (n >= cap) {
        return false;
    }
    memcpy(dst, url, n);
    dst[n] = '\0';
    return true;
}

/*
 * The init config: JSON text when it starts (after blanks) with '{' or '[',
 * else the path of a file holding it; checked to be a JSON object.
 */
static kt_status load_config(kt_buf *out, const char *arg, kt_err *err)
{
    cJSON *doc = NULL;
    kt_status st;
    if (arg == NULL || arg[0] == '\0') {
        arg = "{}";
    }
    if (arg[strspn(arg, " \t\r\n")] == '{' || arg[strspn(arg, " \t\r\n")] == '[') {
        st = kt_buf_puts(out, arg);
        if (st != KT_OK) {
            return kt_err_set(err, st, "config: over %zu bytes", out->max);
        }
    } else {
        st = kt_buf_read_file(out, arg, err);
        if (st != KT_OK) {
            return st;
        }
    }
    st = kt_json_parse(out->data != NULL ? out->data : "", out->len, out->max, &doc, err);
    if (st != KT_OK) {
        return st;
    }
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return kt_err_set(err, KT_EINVAL, "config: not a JSON object");
    }
    cJSON_Delete(doc);
    return KT_OK;
}

static void register_metrics(srv *s)
{
    static const char *const res_ok[] = { "result", "ok", NULL };
    static const char *const res_rej[] = { "result", "rejected", NULL };
    static const char *const res_fail[] = { "result", "failed", NULL };
    static const char *const res_retry[] = { "result", "retry", NULL };
    static const char *const res_emit[] = { "result", "emit_failed", NULL };
    static const char *const res_busy[] = { "result", "busy", NULL };
    static const char *const g_ok[] = { "result", "ok", NULL };
    static const char *const g_fail[] = { "result", "failed", NULL };
    static const char help[] =
        "Events received on POST / by result (ok 200, rejected 4xx, failed 500, emit_failed 502, "
        "retry and busy 503)";
    kt_metrics_counter(&s->m_ok, s->metrics, "ktwin_sdk_events_total", help, res_ok, NULL);
    kt_metrics_counter(&s->m_rejected, s->metrics, "ktwin_sdk_events_total", help, res_rej, NULL);
    kt_metrics_counter(&s->m_failed, s->metrics, "ktwin_sdk_events_total", help, res_fail, NULL);
    kt_metrics_counter(&s->m_retry, s->metrics, "ktwin_sdk_events_total", help, res_retry, NULL);
    kt_metrics_counter(&s->m_emit_failed, s->metrics, "ktwin_sdk_events_total", help, res_emit,
                       NULL);
    kt_metrics_counter(&s->m_busy, s->metrics, "ktwin_sdk_events_total", help, res_busy, NULL);
    kt_metrics_counter(&s->m_emits, s->metrics, "ktwin_sdk_emits_total",
                       "Events emitted by the handler and delivered to KTWIN_BROKER", NULL, NULL);
    kt_metrics_counter(&s->m_graph_ok, s->metrics, "ktwin_sdk_graph_loads_total",
                       "Twin graph loads from KTWIN_GRAPH_URL by result", g_ok, NULL);
    kt_metrics_counter(&s->m_graph_fail, s->metrics, "ktwin_sdk_graph_loads_total",
                       "Twin graph loads from KTWIN_GRAPH_URL by result", g_fail, NULL);
    kt_metrics_gauge(&s->m_graph_instances, s->metrics, "ktwin_sdk_graph_instances",
                     "Instances in the loaded twin graph", NULL, NULL);
    kt_metrics_gauge(&s->m_queue, s->metrics, "ktwin_sdk_queue_depth",
                     "Events waiting for the handler", NULL, NULL);
}

typedef struct args {
    const char *address;
    const char *config;
    const char *port_file;
    const char *log_level;
    unsigned long port;
    unsigned long graph_refresh_s;
    unsigned long queue;
    unsigned long timeout_ms;
} args;

/* Parse argv into a and s->ifaces. Returns 0, or EXIT_USAGE after printing why. */
static int parse_args(srv *s, args *a, int argc, char **argv)
{
    const char *prog = argc > 0 ? argv[0] : "ktwin-service";
    const char *env_port = getenv("PORT");
    int i;
    a->address = "0.0.0.0";
    a->config = getenv("KTWIN_SERVICE_CONFIG");
    a->port = DEFAULT_PORT;
    a->graph_refresh_s = DEFAULT_GRAPH_REFRESH_S;
    a->queue = DEFAULT_QUEUE;
    a->timeout_ms = DEFAULT_TIMEOUT_MS;
    a->log_level = "info";
    if (env_port != NULL && env_port[0] != '\0' && !parse_uint(env_port, 65535, &a->port)) {
        fprintf(stderr, "%s: PORT=%s: not a TCP port\n", prog, env_port);
        return EXIT_USAGE;
    }
    for (i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool okv = true;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout, prog);
            return -1;
        }
        if (val == NULL) {
            fprintf(stderr, "%s: %s: missing value (or unknown option)\n", prog, opt);
            usage(stderr, prog);
            return EXIT_USAGE;
        }
        if (strcmp(opt, "--port") == 0) {
            okv = parse_uint(val, 65535, &a->port);
        } else if (strcmp(opt, "--address") == 0) {
            a->address = val;
        } else if (strcmp(opt, "--config") == 0) {
            a->config = val;
        } else if (strcmp(opt, "--port-file") == 0) {
            a->port_file = val;
        } else if (strcmp(opt, "--log-level") == 0) {
            a->log_level = val;
            okv = kt_log_level_parse(val) >= 0;
        } else if (strcmp(opt, "--graph-refresh") == 0) {
            okv = parse_uint(val, 86400ul * 365, &a->graph_refresh_s);
        } else if (strcmp(opt, "--queue") == 0) {
            okv = parse_uint(val, 1000000ul, &a->queue);
        } else if (strcmp(opt, "--timeout-ms") == 0) {
            okv = parse_uint(val, 3600000ul, &a->timeout_ms) && a->timeout_ms > 0;
        } else if (strcmp(opt, "--interface") == 0) {
            okv = model_name_check(val) == NULL && s->n_ifaces < MAX_IFACES;
            if (okv) {
                s->ifaces[s->n_ifaces++] = val;
            }
        } else {
            fprintf(stderr, "%s: unknown option %s\n", prog, opt);
            usage(stderr, prog);
            return EXIT_USAGE;
        }
        if (!okv) {
            fprintf(stderr, "%s: %s %s: invalid value\n", prog, opt, val);
            return EXIT_USAGE;
        }
        i++;
    }
    return 0;
}

/* Environment -> URLs. Returns 0 or EXIT_USAGE after printing why. */
static int read_env(srv *s, const char *prog)
{
    const char *broker = getenv("KTWIN_BROKER");
    const char *store = getenv("KTWIN_EVENT_STORE");
    const char *graph = getenv("KTWIN_GRAPH_URL");
    if (broker == NULL || broker[0] == '\0') {
        fprintf(stderr, "%s: KTWIN_BROKER is not set (the broker ingress URL emits go to)\n", prog);
        return EXIT_USAGE;
    }
    if (!set_url(s->broker, sizeof(s->broker), broker, false) ||
        !set_url(s->store, sizeof(s->store), store != NULL && store[0] != '\0' ? store : NULL,
                 true) ||
        !set_url(s->graph_url, sizeof(s->graph_url),
                 graph != NULL && graph[0] != '\0' ? graph : NULL, false)) {
        fprintf(stderr, "%s: a KTWIN_* URL is longer than %zu bytes\n", prog,
                sizeof(s->broker) - 1);
        return EXIT_USAGE;
    }
    return 0;
}

/* Loop, server, signals; serves until a signal. Returns an exit status. */
static int serve(srv *s, const args *a)
{
    kt_err e = { 0 };
    kt_http_server *hs = NULL;
    int rc = EXIT_OK;
    kt_status st;
    uv_loop_init(&s->loop);
    s->metrics = kt_metrics_new();
    register_metrics(s);
    st = kt_net_new(&s->net, &s->loop, &(kt_net_opts){ .metrics = s->metrics }, &e);
    if (st == KT_OK) {
        st = kt_http_server_new(&hs, s->net,
                                &(kt_http_server_opts){ .name = "ktwin-service",
                                                        .bind_addr = a->address,
                                                        .port = (int)a->port,
                                                        .max_body_bytes = 2u * 1024u * 1024u },
                                &e);
    }
    if (st == KT_OK) {
        st = kt_http_route(hs, KT_HTTP_POST, "/", 0, on_event, s, &e);
    }
    if (st == KT_OK) {
        st = kt_http_route(hs, KT_HTTP_GET, "/healthz", 0, on_health, s, &e);
    }
    if (st == KT_OK) {
        st = kt_http_route(hs, KT_HTTP_GET, "/health", 0, on_health, s, &e);
    }
    if (st == KT_OK) {
        st = kt_http_route(hs, KT_HTTP_GET, "/metrics", 0, on_metrics, s, &e);
    }
    if (st == KT_OK) {
        st = kt_http_server_start(hs, &e);
    }
    if (st != KT_OK) {
        char q[300];
        KT_LOG(KT_LOG_ERR, "SDK-LISTEN-FAIL", "address=%s port=%lu err=%s", a->address, a->port,
               kt_log_quote(q, sizeof(q), e.msg));
        rc = EXIT_RUNTIME;
    } else {
        KT_LOG(KT_LOG_NOTICE, "SDK-LISTEN", "plugin=%s address=%s port=%d broker=%s",
               s->plugin->name, a->address, kt_http_server_port(hs), s->broker);
        if (a->port_file != NULL) {
            kt_buf pf;
            kt_buf_init(&pf, 64);
            (void)kt_buf_printf(&pf, "%d\n", kt_http_server_port(hs));
            if (kt_buf_write_file(&pf, a->port_file, &e) != KT_OK) {
                KT_LOG(KT_LOG_ERR, "SDK-PORT-FILE", "path=%s err=%s", a->port_file, e.msg);
                rc = EXIT_RUNTIME;
            }
            kt_buf_fini(&pf);
        }
    }
    if (rc == EXIT_OK) {
        uv_signal_init(&s->loop, &s->sigint);
        uv_signal_init(&s->loop, &s->sigterm);
        s->sigint.data = s;
        s->sigterm.data = s;
        uv_signal_start(&s->sigint, on_signal, SIGINT);
        uv_signal_start(&s->sigterm, on_signal, SIGTERM);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    kt_net_free(s->net);
    s->net = NULL;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s->loop) != 0) {
        KT_LOG(KT_LOG_WARN, "SDK-LOOP-CLOSE", "msg=\"handles left open\"");
    }
    kt_metrics_free(s->metrics);
    s->metrics = NULL;
    return rc;
}

int ktwin_http_main(const ktwin_plugin *plugin, int argc, char **argv)
{
    const char *prog = argc > 0 ? argv[0] : "ktwin-service";
    srv *s;
    args a;
    kt_buf config;
    kt_err e = { 0 };
    svc_store_ops store_ops;
    int rc;
    if (plugin == NULL) {
        fprintf(stderr, "%s: no plugin descriptor\n", prog);
        return EXIT_USAGE;
    }
    s = kt_xcalloc(1, sizeof(*s));
    s->plugin = plugin;
    memset(&a, 0, sizeof(a));
    kt_buf_init(&config, 1024u * 1024u);
    rc = parse_args(s, &a, argc, argv);
    if (rc == 0) {
        rc = read_env(s, prog);
    }
    if (rc != 0) {
        kt_buf_fini(&config);
        kt_free(s);
        return rc < 0 ? EXIT_OK : rc;
    }
    kt_log_set_level((kt_log_level)kt_log_level_parse(a.log_level));
    s->graph_refresh_s = (uint32_t)a.graph_refresh_s;
    s->queue_max = a.queue;
    s->timeout_ms = (uint32_t)a.timeout_ms;
    if (load_config(&config, a.config, &e) != KT_OK) {
        fprintf(stderr, "%s: --config: %s\n", prog, e.msg);
        kt_buf_fini(&config);
        kt_free(s);
        return EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: curl_global_init failed\n", prog);
        kt_buf_fini(&config);
        kt_free(s);
        return EXIT_RUNTIME;
    }
    rc = EXIT_OK;
    if (ktwin_remote_new(&s->remote, s->timeout_ms, KTWIN_GINDEX_MAX_BYTES, &e) != KT_OK) {
        fprintf(stderr, "%s: %s\n", prog, e.msg);
        rc = EXIT_RUNTIME;
    }
    if (rc == EXIT_OK) {
        memset(&store_ops, 0, sizeof(store_ops));
        store_ops.latest = latest_op;
        store_ops.user = s;
        /* no metrics: the host runs on the worker, metrics are loop-only (counted here instead) */
        svc_plugin_host_new(
            &s->host,
            &(svc_plugin_host_opts){
                .graph = graph_cb, .store = s->store[0] != '\0' ? &store_ops : NULL, .user = s },
            &e);
        if (svc_plugin_host_add(s->host, plugin, plugin->name, s->n_ifaces > 0 ? s->ifaces : NULL,
                                s->n_ifaces, config.data, &e) != KT_OK) {
            fprintf(stderr, "%s: %s\n", prog, e.msg);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK) {
        s->dispatch_iface = s->n_ifaces > 0 ? s->ifaces[0] : plugin->interfaces[0];
        if (s->store[0] == '\0') {
            KT_LOG(KT_LOG_WARN, "SDK-NO-STORE",
                   "msg=\"KTWIN_EVENT_STORE unset: ktwin_latest answers not found\"");
        }
        if (s->graph_url[0] == '\0') {
            KT_LOG(KT_LOG_WARN, "SDK-NO-GRAPH",
                   "msg=\"KTWIN_GRAPH_URL unset: the twin graph is empty\"");
        } else {
            kt_err ge = { 0 };
            if (graph_load(s, &ge) != KT_OK) {
                char q[300];
                KT_LOG(KT_LOG_WARN, "SDK-GRAPH-FAIL", "url=%s kept=none err=%s", s->graph_url,
                       kt_log_quote(q, sizeof(q), ge.msg));
            }
        }
        rc = serve(s, &a);
    }
    svc_plugin_host_free(s->host); /* calls the plugin's fini */
    model_free(s->graph);
    ktwin_remote_free(s->remote);
    curl_global_cleanup();
    kt_buf_fini(&config);
    kt_free(s);
    return rc;
}
