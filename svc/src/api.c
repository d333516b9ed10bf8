/*
 * svc/api.c — KTWIN's broker ingress and event-store HTTP API on kt_net
 * (contract in svc/api.h).
 *
 * Every handler answers before returning: the ops are synchronous on the
 * loop, so no request outlives its handler. Custom headers (ce-*) are read
 * inside the handler, which kt_net requires.
 *
 * Thread: loop only. Ownership: svc_api owns copies of its ops/opts and the
 * route path strings; it borrows the server and metrics.
 */
#include "svc/api.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#define KT_LOG_MOD "svc"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "svc/caller.h"

#define EVENTS_PATH      "/api/v1/twin-events"
#define DEFAULT_MAX_DATA (1024u * 1024u)
#define LIST_MAX_BYTES   (256u * 1024u * 1024u)
#define MAX_TIME_MS      253402300799999ull /* 9999-12-31T23:59:59.999Z */

struct svc_api {
    svc_api_ops ops;
    svc_api_opts opts;
    char *events_path;  /* prefix + EVENTS_PATH */
    char *events_slash; /* prefix + EVENTS_PATH "/" */
};

/* -------------------------------------------------------------- helpers */

static void reject(svc_api *a, const char *route, const char *reason, const char *msg)
{
    char q[300];
    if (a->opts.metrics != NULL) {
        kt_metric *m = NULL;
        const char *labels[] = { "route", route, "reason", reason, NULL };
        if (kt_metrics_counter(&m, a->opts.metrics, "ktwin_svc_api_rejected_total",
                               "KTWIN API requests refused, by route and reason", labels,
                               NULL) == KT_OK) {
            kt_metrics_inc(m);
        }
    }
    KT_LOG(KT_LOG_DEBUG, "SVC-API-REJECT", "route=%s reason=%s err=%s", route, reason,
           kt_log_quote(q, sizeof(q), msg));
}

static const char *req_header(const char *name, void *user)
{
    return kt_http_req_header(user, name);
}

/* Map a status of event parsing / ops to an HTTP answer. */
static void
respond_status(svc_api *a, kt_http_req *req, const char *route, kt_status st, const kt_err *e)
{
    int code;
    const char *reason;
    switch (st) {
    case KT_EPROTO:
    case KT_EINVAL:
        code = 400;
        reason = "invalid";
        break;
    case KT_ETOOBIG:
        code = 413;
        reason = "too_big";
        break;
    case KT_ENOTFOUND:
        code = 404;
        reason = "not_found";
        break;
    case KT_EAGAIN:
        code = 503;
        reason = "busy";
        kt_http_resp_header(req, "Retry-After", "1");
        break;
    default:
        code = 500;
        reason = "internal";
        break;
    }
    reject(a, route, reason, e->msg);
    kt_http_respond_error(req, code, e->msg[0] != '\0' ? e->msg : kt_status_str(st));
}

/* Parse the request as a CloudEvent. KT_OK with *out (model_event_free). */
static kt_status parse_ce(svc_api *a, kt_http_req *req, model_event **out, kt_err *err)
{
    size_t len = 0;
    const uint8_t *body = kt_http_req_body(req, &len);
    return model_event_from_http(out, req_header, req, body, len, a->opts.max_data_bytes, err);
}

/* ------------------------------------------------------------- ingress */

/*
 * The event's loop depth: ktwindepth + 1 from the ce-ktwindepth header
 * (binary) or the "ktwindepth" member (structured), 0 without it.
 */
static kt_status ingress_depth(kt_http_req *req, uint32_t *depth_out, kt_err *err)
{
    *depth_out = 0;
    const char *h = kt_http_req_header(req, SVC_DEPTH_HEADER);
    char num[32];
    const char *text = h;
    if (text == NULL) {
        const char *ct = kt_http_req_header(req, "content-type");
        if (ct == NULL ||
            strncasecmp(ct, MODEL_CE_STRUCTURED_CT, strlen(MODEL_CE_STRUCTURED_CT)) != 0) {
            return KT_OK;
        }
        size_t len = 0;
        const uint8_t *body = kt_http_req_body(req, &len);
        cJSON *doc = cJSON_ParseWithLength((const char *)body, len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, SVC_DEPTH_ATTR);
        kt_status st = KT_OK;
        if (cJSON_IsString(v)) {
            kt_strlcpy(num, v->valuestring, sizeof(num));
            text = num;
        } else if (cJSON_IsNumber(v)) {
            if (v->valuedouble >= 0 && v->valuedouble <= (double)SVC_DEPTH_MAX &&
                v->valuedouble == (double)(uint32_t)v->valuedouble) {
                snprintf(num, sizeof(num), "%u", (unsigned)v->valuedouble);
            } else {
                kt_strlcpy(num, "-", sizeof(num));
            }
            text = num;
        } else if (v != NULL) {
            st = kt_err_set(err, KT_EINVAL, "ktwindepth: not a string or number");
        }
        cJSON_Delete(doc);
        if (st != KT_OK || text == NULL) {
            return st;
        }
    }
    uint32_t d = 0;
    kt_err perr = { 0 };
    if (svc_api_parse_depth(text, &d, &perr) != KT_OK) {
        return kt_err_set(err, KT_EINVAL, "ce-%s", perr.msg);
    }
    *depth_out = d + 1;
    return KT_OK;
}

static void on_ingress(kt_http_req *req, void *user)
{
    svc_api *a = user;
    kt_err e = { 0 };
    model_event *ev = NULL;
    uint32_t depth = 0;
    kt_status st = parse_ce(a, req, &ev, &e);
    if (st == KT_OK) {
        st = ingress_depth(req, &depth, &e);
    }
    if (st == KT_OK) {
        st = a->ops.ingest_depth != NULL ? a->ops.ingest_depth(a->ops.user, ev, depth, &e)
                                         : a->ops.ingest(a->ops.user, ev, &e);
    }
    if (st == KT_OK) {
        kt_http_respond(req, 202, NULL, "", 0);
    } else {
        respond_status(a, req, "ingress", st, &e);
    }
    model_event_free(ev);
}

/* ----------------------------------------------------- POST twin-events */

static void post_event(svc_api *a, kt_http_req *req)
{
    kt_err e = { 0 };
    model_event *ev = NULL;
    cJSON *doc = NULL;
    char type[MODEL_EVENT_TYPE_CAP];
    svc_record rec;
    kt_status st = parse_ce(a, req, &ev, &e);
    if (st == KT_OK) {
        st = kt_json_parse(ev->data, ev->data_len, a->opts.max_data_bytes, &doc, &e);
        if (st == KT_OK && !cJSON_IsObject(doc)) {
            st = kt_err_set(&e, KT_EINVAL, "data: not a JSON object");
        } else if (st != KT_OK) {
            kt_err e2 = { 0 };
            kt_err_set(&e2, KT_EINVAL, "data: %s", e.msg);
            e = e2;
            st = KT_EINVAL;
        }
        cJSON_Delete(doc);
    }
    if (st == KT_OK) {
        memset(&rec, 0, sizeof(rec));
        rec.iface = ev->iface;
        rec.instance = ev->source;
        rec.id = ev->id;
        rec.type = model_event_type_str(ev, type, sizeof(type));
        rec.source = ev->source;
        rec.time_ms = ev->time_ms != 0 ? ev->time_ms : kt_clock_wall_ms();
        rec.data = ev->data;
        rec.data_len = ev->data_len;
        st = a->ops.store->put(a->ops.store->user, &rec, &e);
    }
    if (st == KT_OK) {
        kt_http_respond(req, 202, NULL, "", 0);
    } else {
        respond_status(a, req, "twin-events-post", st, &e);
    }
    model_event_free(ev);
}

/* ------------------------------------------------------ GET twin-events */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const uint8_t *p, size_t n)
{
    char *o = kt_xmalloc(((n + 2) / 3) * 4 + 1);
    size_t i;
    size_t j = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        o[j++] = b64[(v >> 18) & 63];
        o[j++] = b64[(v >> 12) & 63];
        o[j++] = b64[(v >> 6) & 63];
        o[j++] = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        o[j++] = b64[(v >> 18) & 63];
        o[j++] = b64[(v >> 12) & 63];
        o[j++] = (i + 1 < n) ? b64[(v >> 6) & 63] : '=';
        o[j++] = '=';
    }
    o[j] = '\0';
    return o;
}

typedef struct list_ctx {
    kt_buf out;
    size_t n;
    kt_status st;
} list_ctx;

static int list_cb(const svc_record *r, void *user)
{
    list_ctx *lc = user;
    char t1[KT_CLOCK_RFC3339_CAP];
    char t2[KT_CLOCK_RFC3339_CAP];
    cJSON *o;
    char *data64;
    kt_status st;
    kt_json_init();
    o = cJSON_CreateObject();
    if (o == NULL) {
        lc->st = KT_ENOMEM;
        return 1;
    }
    data64 = base64(r->data, r->data_len);
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "time",
                            r->time_ms != 0 ? kt_clock_rfc3339(t1, sizeof(t1), r->time_ms) : "");
    cJSON_AddStringToObject(o, "source", r->source);
    cJSON_AddStringToObject(o, "type", r->type);
    cJSON_AddStringToObject(o, "instanceId", r->instance);
    cJSON_AddStringToObject(o, "interfaceId", r->iface);
    cJSON_AddStringToObject(o, "eventData", data64);
    cJSON_AddStringToObject(
        o, "createdAt", r->stored_ms != 0 ? kt_clock_rfc3339(t2, sizeof(t2), r->stored_ms) : "");
    kt_free(data64);
    st = kt_buf_putc(&lc->out, lc->n == 0 ? '[' : ',');
    if (st == KT_OK) {
        st = kt_json_print_buf(o, &lc->out);
    }
    cJSON_Delete(o);
    if (st != KT_OK) {
        lc->st = st;
        return 1;
    }
    lc->n++;
    return 0;
}

static const char *req_param(const char *name, void *user)
{
    return kt_http_req_param(user, name);
}

static void get_list(svc_api *a, kt_http_req *req, const char *iface, const char *inst)
{
    kt_err e = { 0 };
    svc_query q;
    svc_page page;
    list_ctx lc;
    kt_status st;
    char *body;
    size_t len = 0;
    memset(&q, 0, sizeof(q));
    memset(&page, 0, sizeof(page));
    memset(&lc, 0, sizeof(lc));
    if (a->ops.store->list == NULL) {
        kt_http_respond_error(req, 501, "listing events is not supported here");
        return;
    }
    st = svc_api_parse_query(&q, req_param, req, &e);
    if (st != KT_OK) {
        respond_status(a, req, "twin-events-list", st, &e);
        return;
    }
    q.iface = iface;
    q.instance = inst;
    kt_buf_init(&lc.out, LIST_MAX_BYTES);
    st = a->ops.store->list(a->ops.store->user, &q, list_cb, &lc, &page, &e);
    if (st == KT_OK && lc.st != KT_OK) {
        st = kt_err_set(&e, lc.st, "listing: %s", kt_status_str(lc.st));
    }
    if (st == KT_OK) {
        st = kt_buf_puts(&lc.out, lc.n == 0 ? "[]" : "]");
    }
    if (st != KT_OK) {
        kt_buf_fini(&lc.out);
        if (st == KT_ETOOBIG) {
            st = KT_EIO; /* our own cap, not the client's body */
        }
        respond_status(a, req, "twin-events-list", st, &e);
        return;
    }
    if (page.more) {
        char cur[48];
        snprintf(cur, sizeof(cur), "%llu-%llu", (unsigned long long)page.next_time_ms,
                 (unsigned long long)page.next_rowid);
        kt_http_resp_header(req, "ktwin-next-cursor", cur);
    }
    body = kt_buf_detach(&lc.out, &len);
    kt_http_respond_take(req, 200, "application/json", body, len);
}

typedef struct latest_ctx {
    kt_http_req *req;
    bool found;
    kt_status st;
} latest_ctx;

static int latest_cb(const svc_record *r, void *user)
{
    latest_ctx *lc = user;
    char t[KT_CLOCK_RFC3339_CAP];
    lc->found = true;
    kt_http_resp_header(lc->req, "ce-id", r->id);
    kt_http_resp_header(lc->req, "ce-specversion", "1.0");
    kt_http_resp_header(lc->req, "ce-type", r->type);
    kt_http_resp_header(lc->req, "ce-source", r->source);
    if (r->time_ms != 0) {
        kt_clock_rfc3339(t, sizeof(t), r->time_ms);
        kt_http_resp_header(lc->req, "ce-time", t);
        kt_http_resp_header(lc->req, "ce-timestamp", t);
    }
    lc->st = kt_http_respond(lc->req, 200, "application/json", r->data, r->data_len);
    return 1;
}

static void get_latest(svc_api *a, kt_http_req *req, const char *iface, const char *inst)
{
    kt_err e = { 0 };
    latest_ctx lc = { req, false, KT_OK };
    kt_status st = a->ops.store->latest(a->ops.store->user, iface, inst, latest_cb, &lc, &e);
    if (lc.found) {
        return; /* answered inside the callback */
    }
    if (st == KT_OK || st == KT_ENOTFOUND) {
        kt_http_respond(req, 404, "text/plain", "Not Found", 9);
        return;
    }
    respond_status(a, req, "twin-events-latest", st, &e);
}

static void on_events_root(kt_http_req *req, void *user)
{
    svc_api *a = user;
    if (kt_http_req_method(req) == KT_HTTP_POST) {
        post_event(a, req);
    } else {
        get_list(a, req, NULL, NULL);
    }
}

/* {iface}/{inst}[/latest] after the prefix. */
static void on_events_path(kt_http_req *req, void *user)
{
    svc_api *a = user;
    const char *rest = kt_http_req_path(req) + strlen(a->events_slash);
    char iface[MODEL_NAME_MAX + 1];
    char inst[MODEL_NAME_MAX + 1];
    const char *s1 = strchr(rest, '/');
    const char *s2;
    const char *why;
    size_t l1;
    size_t l2;
    bool latest = false;
    if (s1 == NULL) {
        kt_http_respond_error(req, 404,
                              "expected /api/v1/twin-events/{interface}/{instance}[/latest]");
        return;
    }
    s2 = strchr(s1 + 1, '/');
    l1 = (size_t)(s1 - rest);
    if (s2 != NULL) {
        if (strcmp(s2, "/latest") != 0) {
            kt_http_respond_error(req, 404,
                                  "expected /api/v1/twin-events/{interface}/{instance}[/latest]");
            return;
        }
        latest = true;
        l2 = (size_t)(s2 - s1 - 1);
    } else {
        l2 = strlen(s1 + 1);
    }
    if (l1 == 0 || l1 > MODEL_NAME_MAX || l2 == 0 || l2 > MODEL_NAME_MAX) {
        reject(a, "twin-events-path", "invalid", "bad interface or instance name length");
        kt_http_respond_error(req, 400, "interface and instance: 1..253 bytes each");
        return;
    }
    memcpy(iface, rest, l1);
    iface[l1] = '\0';
    memcpy(inst, s1 + 1, l2);
    inst[l2] = '\0';
    if ((why = model_name_check(iface)) != NULL || (why = model_name_check(inst)) != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s: %s",
                 model_name_check(iface) != NULL ? "interface" : "instance", why);
        reject(a, "twin-events-path", "invalid", msg);
        kt_http_respond_error(req, 400, msg);
        return;
    }
    if (latest) {
        get_latest(a, req, iface, inst);
    } else {
        get_list(a, req, iface, inst);
    }
}

/* ---------------------------------------------------------------- mount */

kt_status svc_api_mount(svc_api **out,
                        kt_http_server *srv,
                        const svc_api_ops *ops,
                        const svc_api_opts *opts,
                        kt_err *err)
{
    svc_api *a = kt_xcalloc(1, sizeof(*a));
    kt_status st = KT_OK;
    const char *prefix;
    size_t plen;
    a->ops = *ops;
    if (opts != NULL) {
        a->opts = *opts;
    }
    if (a->opts.max_data_bytes == 0) {
        a->opts.max_data_bytes = DEFAULT_MAX_DATA;
    }
    prefix = a->opts.prefix != NULL ? a->opts.prefix : "";
    a->opts.prefix = NULL;
    plen = strlen(prefix);
    a->events_path = kt_xmalloc(plen + sizeof(EVENTS_PATH));
    memcpy(a->events_path, prefix, plen);
    memcpy(a->events_path + plen, EVENTS_PATH, sizeof(EVENTS_PATH));
    a->events_slash = kt_xmalloc(plen + sizeof(EVENTS_PATH) + 1);
    memcpy(a->events_slash, a->events_path, plen + sizeof(EVENTS_PATH) - 1);
    memcpy(a->events_slash + plen + sizeof(EVENTS_PATH) - 1, "/", 2);
    if (a->ops.ingest != NULL || a->ops.ingest_depth != NULL) {
        st = kt_http_route(srv, KT_HTTP_POST, "/", 0, on_ingress, a, err);
    }
    if (st == KT_OK && a->ops.store != NULL) {
        st = kt_http_route(srv, KT_HTTP_GET | KT_HTTP_POST, a->events_path, 0, on_events_root, a,
                           err);
        if (st == KT_OK) {
            st = kt_http_route(srv, KT_HTTP_GET, a->events_slash, KT_HTTP_PREFIX, on_events_path, a,
                               err);
        }
    }
    if (st != KT_OK) {
        svc_api_free(a);
        return st;
    }
    *out = a;
    return KT_OK;
}

void svc_api_free(svc_api *a)
{
    if (a == NULL) {
        return;
    }
    kt_free(a->events_path);
    kt_free(a->events_slash);
    kt_free(a);
}

/* ---------------------------------------------------------------- parsing */

kt_status svc_api_parse_depth(const char *text, uint32_t *out, kt_err *err)
{
    size_t len = strlen(text);
    uint32_t v = 0;
    *out = 0;
    if (len == 0 || len > 7) {
        return kt_err_set(err, KT_EINVAL, "ktwindepth: expected 1..7 decimal digits");
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return kt_err_set(err, KT_EINVAL, "ktwindepth: not a decimal integer");
        }
        v = v * 10u + (uint32_t)(text[i] - '0');
    }
    if (v > SVC_DEPTH_MAX) {
        return kt_err_set(err, KT_EINVAL, "ktwindepth: over %u", SVC_DEPTH_MAX);
    }
    *out = v;
    return KT_OK;
}

kt_status svc_api_parse_time(const char *text, uint64_t *ms_out, kt_err *err)
{
    size_t len;
    size_t i;
    uint64_t v = 0;
    if (text == NULL || text[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "empty time");
    }
    len = strnlen(text, 128);
    if (len >= 128) {
        return kt_err_set(err, KT_EINVAL, "time longer than 127 bytes");
    }
    for (i = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(text[i] - '0');
        if (v > MAX_TIME_MS) {
            return kt_err_set(err, KT_EINVAL, "epoch ms past year 9999");
        }
    }
    if (i == len) {
        *ms_out = v;
        return KT_OK;
    }
    return model_time_parse(text, len, ms_out, err);
}

static kt_status parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (s[0] == '\0') {
        return KT_EINVAL;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 19) {
            return KT_EINVAL;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return KT_OK;
}

kt_status svc_api_parse_query(svc_query *q, svc_param_cb param, void *user, kt_err *err)
{
    const char *v;
    kt_err e = { 0 };
    q->from_ms = 0;
    q->to_ms = 0;
    q->desc = true;
    q->limit = SVC_QUERY_DEFAULT_LIMIT;
    q->after_time_ms = 0;
    q->after_rowid = 0;
    if ((v = param("from", user)) != NULL && svc_api_parse_time(v, &q->from_ms, &e) != KT_OK) {
        return kt_err_set(err, KT_EINVAL, "from: %s", e.msg);
    }
    if ((v = param("to", user)) != NULL && svc_api_parse_time(v, &q->to_ms, &e) != KT_OK) {
        return kt_err_set(err, KT_EINVAL, "to: %s", e.msg);
    }
    if (q->from_ms != 0 && q->to_ms != 0 && q->to_ms <= q->from_ms) {
        return kt_err_set(err, KT_EINVAL, "to: not after from");
    }
    if ((v = param("limit", user)) != NULL) {
        uint64_t n = 0;
        if (parse_u64(v, &n) != KT_OK || n < 1 || n > SVC_QUERY_MAX_LIMIT) {
            return kt_err_set(err, KT_EINVAL, "limit: not a number in 1..%d", SVC_QUERY_MAX_LIMIT);
        }
        q->limit = (size_t)n;
    }
    if ((v = param("order", user)) != NULL) {
        if (strcmp(v, "asc") == 0) {
            q->desc = false;
        } else if (strcmp(v, "desc") == 0) {
            q->desc = true;
        } else {
            return kt_err_set(err, KT_EINVAL, "order: asc or desc");
        }
    }
    if ((v = param("cursor", user)) != NULL) {
        char a[24];
        const char *dash = strchr(v, '-');
        size_t l = dash != NULL ? (size_t)(dash - v) : 0;
        if (dash == NULL || l == 0 || l >= sizeof(a)) {
            return kt_err_set(err, KT_EINVAL, "cursor: expected TIME-ROW from ktwin-next-cursor");
        }
        memcpy(a, v, l);
        a[l] = '\0';
        if (parse_u64(a, &q->after_time_ms) != KT_OK ||
            parse_u64(dash + 1, &q->after_rowid) != KT_OK || q->after_rowid == 0) {
            return kt_err_set(err, KT_EINVAL, "cursor: expected TIME-ROW from ktwin-next-cursor");
        }
    }
    return KT_OK;
}
