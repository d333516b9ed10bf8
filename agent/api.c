/*
 * agent/api.c — local HTTP API routes over the view (see api.h).
 *
 * Every handler answers synchronously: the view is in memory and the cache
 * reads for placement are a handful of rows.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "api"
#include "api.h"

#include <string.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"

#define GRAPH_PREFIX "/api/v1/twin-graph/"
#define JSON_TYPE    "application/json"
/* Cap on one response body: far above a site's graph. */
#define API_MAX_BODY ((size_t)1 << 30)

struct agent_api {
    agent_view *view;
    kt_metrics *metrics;
    char *site;
    int ready;
    uint64_t last_graph_ms;
    kt_metric *m_errors;
};

static void count(agent_api *api, const char *route)
{
    if (api->metrics == NULL) {
        return;
    }
    const char *labels[] = { "route", route, NULL };
    kt_metric *m = NULL;
    kt_err err = { 0 };
    if (kt_metrics_counter(&m, api->metrics, "ktwin_agent_api_requests_total",
                           "Local API requests by route", labels, &err) == KT_OK) {
        kt_metrics_inc(m);
    }
}

static void respond_buf(kt_http_req *req, int status, const char *type, kt_buf *b)
{
    size_t len = 0;
    char *data = kt_buf_detach(b, &len);
    if (data == NULL) {
        kt_http_respond(req, status, type, "", 0);
        return;
    }
    kt_http_respond_take(req, status, type, data, len);
}

static void fail(agent_api *api, kt_http_req *req, const kt_err *err)
{
    kt_metrics_inc(api->m_errors);
    KT_LOG(KT_LOG_ERR, "API-ERR", "path=%s status=%s err=\"%s\"", kt_http_req_path(req),
           kt_status_str(err->status), err->msg);
    kt_http_respond_error(req, 500, err->msg);
}

static void on_graph(kt_http_req *req, void *user)
{
    agent_api *api = user;
    count(api, "twin-graph");
    kt_buf b;
    kt_buf_init(&b, API_MAX_BODY);
    kt_err err = { 0 };
    if (agent_view_graph_json(api->view, &b, &err) != KT_OK) {
        kt_buf_fini(&b);
        fail(api, req, &err);
        return;
    }
    respond_buf(req, 200, JSON_TYPE, &b);
    api->last_graph_ms = kt_clock_mono_ms();
}

static void on_graph_iface(kt_http_req *req, void *user)
{
    agent_api *api = user;
    count(api, "twin-graph-iface");
    const char *iface = kt_http_req_path(req) + strlen(GRAPH_PREFIX);
    if (*iface == '\0' || strchr(iface, '/') != NULL) {
        kt_http_respond(req, 404, "text/plain", "Not Found", 9);
        return;
    }
    kt_buf b;
    kt_buf_init(&b, API_MAX_BODY);
    kt_err err = { 0 };
    kt_status st = agent_view_iface_json(api->view, iface, &b, &err);
    if (st == KT_ENOTFOUND) {
        kt_buf_fini(&b);
        kt_http_respond(req, 404, "text/plain", "Not Found", 9);
        return;
    }
    if (st != KT_OK) {
        kt_buf_fini(&b);
        fail(api, req, &err);
        return;
    }
    respond_buf(req, 200, JSON_TYPE, &b);
}

static void on_placement(kt_http_req *req, void *user)
{
    agent_api *api = user;
    count(api, "placement");
    kt_buf b;
    kt_buf_init(&b, API_MAX_BODY);
    kt_err err = { 0 };
    if (agent_view_placement_json(api->view, api->site, &b, &err) != KT_OK) {
        kt_buf_fini(&b);
        fail(api, req, &err);
        return;
    }
    respond_buf(req, 200, JSON_TYPE, &b);
}

static void on_healthz(kt_http_req *req, void *user)
{
    (void)user;
    kt_http_respond(req, 200, "text/plain", "ok", 2);
}

static void on_readyz(kt_http_req *req, void *user)
{
    agent_api *api = user;
    if (api->ready) {
        kt_http_respond(req, 200, "text/plain", "ready", 5);
    } else {
        kt_http_respond(req, 503, "text/plain", "not ready", 9);
    }
}

static void on_metrics(kt_http_req *req, void *user)
{
    agent_api *api = user;
    kt_buf b;
    kt_buf_init(&b, 64u * 1024u * 1024u);
    if (api->metrics != NULL && kt_metrics_render(api->metrics, &b) != KT_OK) {
        kt_buf_fini(&b);
        kt_http_respond_error(req, 500, "metrics too large");
        return;
    }
    respond_buf(req, 200, KT_METRICS_CONTENT_TYPE, &b);
}

kt_status agent_api_new(agent_api **out,
                        kt_http_server *srv,
                        agent_view *view,
                        kt_metrics *metrics,
                        const char *site,
                        kt_err *err)
{
    *out = NULL;
    agent_api *api = kt_xcalloc(1, sizeof *api);
    api->view = view;
    api->metrics = metrics;
    api->site = kt_xstrdup(site != NULL ? site : "");
    if (metrics != NULL) {
        kt_metrics_counter(&api->m_errors, metrics, "ktwin_agent_api_errors_total",
                           "Local API requests answered 500", NULL, err);
    }
    const unsigned get = KT_HTTP_GET | KT_HTTP_HEAD;
    kt_status st = kt_http_route(srv, get, "/api/v1/twin-graph", 0, on_graph, api, err);
    if (st == KT_OK) {
        st = kt_http_route(srv, get, GRAPH_PREFIX, KT_HTTP_PREFIX, on_graph_iface, api, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, get, "/api/v1/placement", 0, on_placement, api, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, get, "/healthz", 0, on_healthz, api, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, get, "/readyz", 0, on_readyz, api, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, get, "/metrics", 0, on_metrics, api, err);
    }
    if (st != KT_OK) {
        agent_api_free(api);
        return st;
    }
    *out = api;
    return KT_OK;
}

void agent_api_set_ready(agent_api *api, int ready)
{
    api->ready = ready;
}

uint64_t agent_api_last_graph_ms(const agent_api *api)
{
    return api->last_graph_ms;
}

void agent_api_free(agent_api *api)
{
    if (api == NULL) {
        return;
    }
    kt_free(api->site);
    kt_free(api);
}
