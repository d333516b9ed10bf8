/*
 * hub/api.c — the hub's REST API (see api.h and docs/protocol.md).
 *
 * Every handler answers synchronously on the loop: apply and delete run the
 * whole validate + commit path inline (docs/operations.md gives measured
 * latencies; a large apply blocks the loop for that long). Response bodies
 * are built in a kt_buf and handed to kt_net without a copy.
 *
 * Thread: loop only. Ownership: see api.h.
 */
#define KT_LOG_MOD "api"
#include "hub/api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/graph.h"

#define API_PREFIX "/api/v1/"
#define BODY_MAX   ((size_t)1 << 34)
#define JSON_CT    "application/json"

typedef struct kind_gauge {
    struct hub_api *api;
    hub_kind kind;
} kind_gauge;

struct hub_api {
    kt_http_server *srv;
    hub_graph *graph;
    kt_metrics *metrics;
    char *token;
    int ready;
    kt_metric *apply_ok;
    kt_metric *apply_invalid;
    kt_metric *apply_error;
    kt_metric *auth_failures;
    kt_metric *apply_last_seconds;
    kind_gauge kinds[HUB_KIND_MAX + 1];
};

/* ---- helpers ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (n == 0 || c > 0xf4) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f)) {
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    }
    return n;
}

/* A JSON string; bytes that are not valid UTF-8 (messages may quote hostile input) become U+FFFD.
 */
static void json_str(kt_buf *b, const char *s)
{
    (void)kt_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            (void)kt_buf_putc(b, '\\');
            (void)kt_buf_putc(b, (char)c);
        } else if (c == '\n') {
            (void)kt_buf_puts(b, "\\n");
        } else if (c == '\t') {
            (void)kt_buf_puts(b, "\\t");
        } else if (c == '\r') {
            (void)kt_buf_puts(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            (void)kt_buf_printf(b, "\\u%04x", c);
        } else if (c < 0x80) {
            (void)kt_buf_putc(b, (char)c);
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                (void)kt_buf_puts(b, "\\ufffd");
            } else {
                (void)kt_buf_append(b, p, n);
                p += n;
                continue;
            }
        }
        p++;
    }
    (void)kt_buf_putc(b, '"');
}

static void count_code(hub_api *a, int code)
{
    if (a->metrics == NULL) {
        return;
    }
    char code_s[16];
    snprintf(code_s, sizeof(code_s), "%d", code);
    kt_metric *m = NULL;
    const char *labels[] = { "code", code_s, NULL };
    if (kt_metrics_counter(&m, a->metrics, "ktwin_hub_http_requests_total",
                           "HTTP requests answered by the hub API, by status code", labels,
                           NULL) == KT_OK) {
        kt_metrics_inc(m);
    }
}

/* Send b (taken) with code. */
static void reply_buf(hub_api *a, kt_http_req *req, int code, const char *ctype, kt_buf *b)
{
    count_code(a, code);
    size_t len = 0;
    char *data = kt_buf_detach(b, &len);
    if (data == NULL) {
        (void)kt_http_respond(req, code, ctype, "", 0);
        return;
    }
    (void)kt_http_respond_take(req, code, ctype, data, len);
}

static void reply_text(hub_api *a, kt_http_req *req, int code, const char *ctype, const char *text)
{
    count_code(a, code);
    (void)kt_http_respond(req, code, ctype, text, strlen(text));
}

static void reply_error(hub_api *a, kt_http_req *req, int code, const char *msg)
{
    kt_buf b;
    kt_buf_init(&b, BODY_MAX);
    /* The shape of kt_http_respond_error, so every error body is alike. */
    (void)kt_buf_printf(&b, "{\"error\":{\"code\":%d,\"message\":", code);
    json_str(&b, msg);
    (void)kt_buf_puts(&b, "}}");
    reply_buf(a, req, code, JSON_CT, &b);
}

static void write_diag_errors(kt_buf *b, const model_diag *d)
{
    (void)kt_buf_puts(b, "{\"errors\":[");
    int first = 1;
    for (size_t i = 0; i < d->n; i++) {
        const model_diag_entry *e = &d->entries[i];
        if (e->severity != MODEL_DIAG_ERROR) {
            continue;
        }
        if (!first) {
            (void)kt_buf_putc(b, ',');
        }
        first = 0;
        (void)kt_buf_puts(b, "{\"file\":");
        json_str(b, e->file);
        (void)kt_buf_printf(b, ",\"line\":%u,\"col\":%u,\"path\":", e->line, e->col);
        json_str(b, e->path);
        (void)kt_buf_puts(b, ",\"class\":");
        json_str(b, e->code);
        (void)kt_buf_puts(b, ",\"message\":");
        json_str(b, e->msg);
        (void)kt_buf_putc(b, '}');
    }
    (void)kt_buf_puts(b, "]");
    if (d->n_errors > d->n) {
        (void)kt_buf_printf(b, ",\"truncated\":%zu", d->n_errors - d->n);
    }
    (void)kt_buf_puts(b, "}");
}

int hub_api_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    unsigned char diff = la == lb ? 0 : 1;
    /* Walk the expected token's length whatever the input, so timing does not leak the prefix. */
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

/* 1 when the request carries the admin token; else replies 401/403 and returns 0. */
static int authorized(hub_api *a, kt_http_req *req)
{
    const char *h = kt_http_req_header(req, "authorization");
    if (h == NULL || h[0] == '\0') {
        kt_metrics_inc(a->auth_failures);
        (void)kt_http_resp_header(req, "WWW-Authenticate", "Bearer realm=\"ktwin-hub\"");
        KT_LOG(KT_LOG_NOTICE, "API-AUTH-MISSING", "peer=%s method=%s path=%s",
               kt_http_req_peer(req), kt_http_req_method_str(req), kt_http_req_path(req));
        reply_error(a, req, 401, "missing Authorization: Bearer <admin token>");
        return 0;
    }
    const char *tok = NULL;
    if (strncmp(h, "Bearer ", 7) == 0) {
        tok = h + 7;
        while (*tok == ' ') {
            tok++;
        }
    }
    if (tok == NULL || a->token == NULL || a->token[0] == '\0' ||
        !hub_api_token_equal(tok, a->token)) {
        kt_metrics_inc(a->auth_failures);
        KT_LOG(KT_LOG_WARN, "API-AUTH-BAD", "peer=%s method=%s path=%s", kt_http_req_peer(req),
               kt_http_req_method_str(req), kt_http_req_path(req));
        reply_error(a, req, 403, "wrong admin token");
        return 0;
    }
    return 1;
}

/* ---- apply -------------------------------------------------------------------- */

static void on_apply(kt_http_req *req, void *user)
{
    hub_api *a = user;
    if (!authorized(a, req)) {
        return;
    }
    size_t len = 0;
    const uint8_t *body = kt_http_req_body(req, &len);
    if (len == 0) {
        kt_metrics_inc(a->apply_invalid);
        reply_error(a, req, 400, "empty body: send YAML or JSON documents");
        return;
    }
    uint64_t t0 = kt_clock_mono_ns();
    hub_apply_result r;
    hub_apply_result_init(&r);
    kt_err err = { 0 };
    kt_status st = hub_graph_apply(a->graph, "request", (const char *)body, len, &r, &err);
    double secs = (double)(kt_clock_mono_ns() - t0) / 1e9;
    kt_metrics_set(a->apply_last_seconds, secs);
    kt_buf b;
    kt_buf_init(&b, BODY_MAX);
    if (st == KT_OK) {
        kt_metrics_inc(a->apply_ok);
        size_t changed = 0;
        (void)kt_buf_printf(&b, "{\"revision\":%llu,\"applied\":[", (unsigned long long)r.revision);
        for (size_t i = 0; i < r.n_items; i++) {
            if (i > 0) {
                (void)kt_buf_putc(&b, ',');
            }
            if (r.items[i].op != HUB_OP_UNCHANGED) {
                changed++;
            }
            (void)kt_buf_printf(&b, "{\"kind\":\"%s\",\"name\":", hub_kind_name(r.items[i].kind));
            json_str(&b, r.items[i].name);
            (void)kt_buf_printf(&b, ",\"op\":\"%s\"}", hub_op_name(r.items[i].op));
        }
        (void)kt_buf_puts(&b, "]}");
        KT_LOG(KT_LOG_INFO, "API-APPLY",
               "peer=%s revision=%llu objects=%zu changed=%zu ms=%.1f validate_ms=%.1f "
               "commit_ms=%.1f notify_ms=%.1f",
               kt_http_req_peer(req), (unsigned long long)r.revision, r.n_items, changed,
               secs * 1000.0, r.validate_ms, r.commit_ms, r.notify_ms);
        reply_buf(a, req, 200, JSON_CT, &b);
    } else if (st == KT_EINVAL) {
        kt_metrics_inc(a->apply_invalid);
        KT_LOG(KT_LOG_INFO, "API-APPLY-INVALID", "peer=%s errors=%zu", kt_http_req_peer(req),
               r.diag.n_errors);
        write_diag_errors(&b, &r.diag);
        reply_buf(a, req, 422, JSON_CT, &b);
    } else {
        kt_metrics_inc(a->apply_error);
        KT_LOG(KT_LOG_ERR, "API-APPLY-FAIL", "status=%s err=\"%s\"", kt_status_str(st), err.msg);
        kt_buf_fini(&b);
        reply_error(a, req, 500, err.msg);
    }
    hub_apply_result_fini(&r);
}

/* ---- kinds ------------------------------------------------------------------- */

typedef struct list_ctx {
    kt_buf *b;
    int first;
} list_ctx;

static int list_cb(const hub_object_view *o, void *user)
{
    list_ctx *c = user;
    if (!c->first) {
        (void)kt_buf_putc(c->b, ',');
    }
    c->first = 0;
    (void)kt_buf_append(c->b, o->body, o->len);
    return 0;
}

static void on_kind(kt_http_req *req, void *user)
{
    hub_api *a = user;
    const char *path = kt_http_req_path(req);
    const char *rest = path + strlen(API_PREFIX);
    const char *slash = strchr(rest, '/');
    char kind_s[32];
    size_t klen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (klen >= sizeof(kind_s)) {
        reply_error(a, req, 404, "not found");
        return;
    }
    memcpy(kind_s, rest, klen);
    kind_s[klen] = '\0';
    hub_kind kind = hub_kind_parse(kind_s);
    const char *name = slash != NULL ? slash + 1 : NULL;
    if (kind == 0 || (name != NULL && (name[0] == '\0' || strchr(name, '/') != NULL))) {
        reply_error(a, req, 404, "not found");
        return;
    }
    kt_http_method method = kt_http_req_method(req);
    if (method == KT_HTTP_DELETE) {
        if (name == NULL) {
            reply_error(a, req, 405, "DELETE needs /api/v1/{kind}/{name}");
            return;
        }
        if (!authorized(a, req)) {
            return;
        }
        hub_apply_result r;
        hub_apply_result_init(&r);
        kt_err err = { 0 };
        kt_status st = hub_graph_delete(a->graph, kind, name, &r, &err);
        kt_buf b;
        kt_buf_init(&b, BODY_MAX);
        if (st == KT_OK) {
            KT_LOG(KT_LOG_INFO, "API-DELETE", "peer=%s kind=%s name=%s revision=%llu",
                   kt_http_req_peer(req), hub_kind_name(kind), name,
                   (unsigned long long)r.revision);
            (void)kt_buf_printf(&b, "{\"revision\":%llu}", (unsigned long long)r.revision);
            reply_buf(a, req, 200, JSON_CT, &b);
        } else if (st == KT_ENOTFOUND) {
            kt_buf_fini(&b);
            reply_error(a, req, 404, err.msg);
        } else if (st == KT_EINVAL) {
            write_diag_errors(&b, &r.diag);
            reply_buf(a, req, 422, JSON_CT, &b);
        } else {
            KT_LOG(KT_LOG_ERR, "API-DELETE-FAIL", "status=%s err=\"%s\"", kt_status_str(st),
                   err.msg);
            kt_buf_fini(&b);
            reply_error(a, req, 500, err.msg);
        }
        hub_apply_result_fini(&r);
        return;
    }
    kt_buf b;
    kt_buf_init(&b, BODY_MAX);
    if (name == NULL) {
        (void)kt_buf_puts(&b, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
        list_ctx c = { &b, 1 };
        (void)hub_graph_foreach(a->graph, kind, list_cb, &c);
        (void)kt_buf_puts(&b, "]}");
        reply_buf(a, req, 200, JSON_CT, &b);
        return;
    }
    size_t len = 0;
    const char *body = hub_graph_body(a->graph, kind, name, &len, NULL);
    if (body == NULL) {
        kt_buf_fini(&b);
        char msg[MODEL_NAME_MAX + 64];
        snprintf(msg, sizeof(msg), "%s %s not found", hub_kind_name(kind), name);
        reply_error(a, req, 404, msg);
        return;
    }
    (void)kt_buf_append(&b, body, len);
    reply_buf(a, req, 200, JSON_CT, &b);
}

/* ---- KTWIN graph API ---------------------------------------------------------- */

static void on_twin_graph(kt_http_req *req, void *user)
{
    hub_api *a = user;
    size_t len = 0;
    const char *json = hub_graph_json(a->graph, &len);
    if (json == NULL) {
        reply_error(a, req, 500, "out of memory");
        return;
    }
    count_code(a, 200);
    (void)kt_http_respond(req, 200, JSON_CT, json, len);
}

static void on_twin_graph_iface(kt_http_req *req, void *user)
{
    hub_api *a = user;
    const char *iface = kt_http_req_path(req) + strlen(API_PREFIX "twin-graph/");
    if (iface[0] == '\0') {
        reply_text(a, req, 400, JSON_CT, "\"interfaceId is required\"");
        return;
    }
    const model *m = hub_graph_model(a->graph);
    const model_iface *f = model_iface_get(m, iface);
    if (f == NULL || f->n_instances == 0) {
        reply_text(a, req, 404, JSON_CT, "\"Not Found\"");
        return;
    }
    kt_buf b;
    kt_buf_init(&b, BODY_MAX);
    kt_status st = model_graph_iface_to_json(m, iface, &b);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        reply_error(a, req, 500, kt_status_str(st));
        return;
    }
    reply_buf(a, req, 200, JSON_CT, &b);
}

/* ---- health and metrics --------------------------------------------------------- */

static void on_healthz(kt_http_req *req, void *user)
{
    reply_text(user, req, 200, "text/plain", "ok");
}

static void on_readyz(kt_http_req *req, void *user)
{
    hub_api *a = user;
    if (a->ready) {
        reply_text(a, req, 200, "text/plain", "ready");
    } else {
        reply_text(a, req, 503, "text/plain", "not ready");
    }
}

static void on_metrics(kt_http_req *req, void *user)
{
    hub_api *a = user;
    kt_buf b;
    kt_buf_init(&b, BODY_MAX);
    count_code(a, 200); /* counted before rendering, so the scrape includes itself */
    if (kt_metrics_render(a->metrics, &b) != KT_OK) {
        kt_buf_fini(&b);
        reply_error(a, req, 500, "metrics too large");
        return;
    }
    size_t len = 0;
    char *data = kt_buf_detach(&b, &len);
    if (data == NULL) {
        (void)kt_http_respond(req, 200, KT_METRICS_CONTENT_TYPE, "", 0);
        return;
    }
    (void)kt_http_respond_take(req, 200, KT_METRICS_CONTENT_TYPE, data, len);
}

static double sample_revision(void *user)
{
    hub_api *a = user;
    return (double)hub_graph_revision(a->graph);
}

static double sample_objects(void *user)
{
    kind_gauge *k = user;
    return (double)hub_graph_count(k->api->graph, k->kind);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static kt_status register_metrics(hub_api *a, kt_err *err)
{
    kt_metrics *reg = a->metrics;
    const char *help = "POST /api/v1/apply calls by result (ok, invalid = 4xx, error = 5xx)";
    kt_status st = kt_metrics_counter(&a->apply_ok, reg, "ktwin_hub_apply_total", help,
                                      (const char *[]){ "result", "ok", NULL }, err);
    if (st == KT_OK) {
        st = kt_metrics_counter(&a->apply_invalid, reg, "ktwin_hub_apply_total", help,
                                (const char *[]){ "result", "invalid", NULL }, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&a->apply_error, reg, "ktwin_hub_apply_total", help,
                                (const char *[]){ "result", "error", NULL }, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&a->auth_failures, reg, "ktwin_hub_auth_failures_total",
                                "API calls refused for a missing (401) or wrong (403) admin token",
                                NULL, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_gauge(&a->apply_last_seconds, reg, "ktwin_hub_apply_last_seconds",
                              "Duration of the last POST /api/v1/apply (validate + commit)", NULL,
                              err);
    }
    if (st == KT_OK) {
        st = kt_metrics_gauge_fn(reg, "ktwin_hub_graph_revision", "Current graph revision", NULL,
                                 sample_revision, a, err);
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX && st == KT_OK; k++) {
        a->kinds[k].api = a;
        a->kinds[k].kind = (hub_kind)k;
        st = kt_metrics_gauge_fn(reg, "ktwin_hub_objects", "Stored graph objects by kind",
                                 (const char *[]){ "kind", hub_kind_name((hub_kind)k), NULL },
                                 sample_objects, &a->kinds[k], err);
    }
    return st;
}

kt_status hub_api_new(hub_api **out,
                      kt_http_server *srv,
                      hub_graph *graph,
                      kt_metrics *metrics,
                      const char *admin_token,
                      kt_err *err)
{
    *out = NULL;
    hub_api *a = kt_xcalloc(1, sizeof(*a));
    a->srv = srv;
    a->graph = graph;
    a->metrics = metrics;
    a->token = kt_xstrdup(admin_token != NULL ? admin_token : "");
    kt_status st = KT_OK;
    if (metrics != NULL) {
        st = register_metrics(a, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_POST, API_PREFIX "apply", 0, on_apply, a, err);
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX && st == KT_OK; k++) {
        char path[64];
        snprintf(path, sizeof(path), API_PREFIX "%s", hub_kind_plural((hub_kind)k));
        st = kt_http_route(srv, KT_HTTP_GET, path, 0, on_kind, a, err);
        if (st == KT_OK) {
            snprintf(path, sizeof(path), API_PREFIX "%s/", hub_kind_plural((hub_kind)k));
            st = kt_http_route(srv, KT_HTTP_GET | KT_HTTP_DELETE, path, KT_HTTP_PREFIX, on_kind, a,
                               err);
        }
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET, API_PREFIX "twin-graph", 0, on_twin_graph, a, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET, API_PREFIX "twin-graph/", KT_HTTP_PREFIX,
                           on_twin_graph_iface, a, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET, "/healthz", 0, on_healthz, a, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET, "/readyz", 0, on_readyz, a, err);
    }
    if (st == KT_OK && metrics != NULL) {
        st = kt_http_route(srv, KT_HTTP_GET, "/metrics", 0, on_metrics, a, err);
    }
    if (st != KT_OK) {
        hub_api_free(a);
        return st;
    }
    *out = a;
    return KT_OK;
}

void hub_api_free(hub_api *a)
{
    if (a == NULL) {
        return;
    }
    if (a->metrics != NULL) {
        kt_metrics_detach(a->metrics, a);
        for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
            kt_metrics_detach(a->metrics, &a->kinds[k]);
        }
    }
    if (a->token != NULL) {
        memset(a->token, 0, strlen(a->token));
    }
    kt_free(a->token);
    kt_free(a);
}

void hub_api_set_ready(hub_api *a, int ready)
{
    a->ready = ready;
}

/* ---- admin token ---------------------------------------------------------------- */

static char *trim_token(const char *s, size_t len)
{
    size_t b = 0;
    while (b < len && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) {
        b++;
    }
    size_t e = b;
    while (e < len && s[e] != '\n' && s[e] != '\r' && s[e] != ' ' && s[e] != '\t') {
        e++;
    }
    return e > b ? kt_xstrndup(s + b, e - b) : NULL;
}

static kt_status read_token(char **out, const char *path, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, 64 * 1024);
    kt_status st = kt_buf_read_file(&b, path, err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st;
    }
    *out = trim_token(b.data != NULL ? b.data : "", b.len);
    if (b.data != NULL) {
        memset(b.data, 0, b.len);
    }
    kt_buf_fini(&b);
    if (*out == NULL) {
        return kt_err_set(err, KT_EINVAL, "%s: no token in the file", path);
    }
    return KT_OK;
}

kt_status hub_api_token_load(char **out,
                             char **generated_path_out,
                             const char *token_file,
                             const char *data_dir,
                             kt_err *err)
{
    *out = NULL;
    if (generated_path_out != NULL) {
        *generated_path_out = NULL;
    }
    if (token_file != NULL) {
        return read_token(out, token_file, err);
    }
    size_t cap = strlen(data_dir) + 32;
    char *path = kt_xmalloc(cap);
    snprintf(path, cap, "%s/admin.token", data_dir);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > 0) {
        kt_status st = read_token(out, path, err);
        if (st == KT_OK && generated_path_out != NULL) {
            *generated_path_out = path;
        } else {
            kt_free(path);
        }
        return st;
    }
    unsigned char raw[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kt_free(path);
        return kt_err_set_errno(err, KT_EIO, errno, "open /dev/urandom");
    }
    ssize_t n = read(fd, raw, sizeof(raw));
    int saved = errno;
    (void)close(fd);
    if (n != (ssize_t)sizeof(raw)) {
        kt_free(path);
        return kt_err_set_errno(err, KT_EIO, saved, "read /dev/urandom");
    }
    char hex[2 * sizeof(raw) + 2];
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        saved = errno;
        kt_status st = kt_err_set_errno(err, KT_EIO, saved, "create %s", path);
        kt_free(path);
        return st;
    }
    hex[2 * sizeof(raw)] = '\n';
    hex[2 * sizeof(raw) + 1] = '\0';
    size_t want = 2 * sizeof(raw) + 1;
    ssize_t w = write(fd, hex, want);
    saved = errno;
    if (fsync(fd) != 0 && w == (ssize_t)want) {
        saved = errno;
        w = -1;
    }
    (void)close(fd);
    if (w != (ssize_t)want) {
        kt_status st = kt_err_set_errno(err, KT_EIO, saved, "write %s", path);
        kt_free(path);
        return st;
    }
    hex[2 * sizeof(raw)] = '\0';
    *out = kt_xstrdup(hex);
    memset(hex, 0, sizeof(hex));
    memset(raw, 0, sizeof(raw));
    if (generated_path_out != NULL) {
        *generated_path_out = path;
    } else {
        kt_free(path);
    }
    return KT_OK;
}
