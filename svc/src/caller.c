/*
 * svc/caller.c — HTTP twin-service calls on libcurl multi driven by libuv
 * (contract in svc/caller.h).
 *
 * DESIGN. One CURLM per svc_caller. CURLMOPT_SOCKETFUNCTION keeps one
 * uv_poll (sock_ctx) per socket curl wants watched; CURLMOPT_TIMERFUNCTION
 * arms one uv_timer; both feed curl_multi_socket_action and then drain
 * curl_multi_info_read (the pattern of curl's multi-uv.c example). Each
 * call owns a uv_timer for its retry backoff; a call is freed only from
 * that timer's close callback, so nothing is freed while libuv may still
 * touch it. The caller struct itself is freed when its last handle
 * (multi timer, socket polls, call timers) has closed.
 *
 * Per endpoint, `active` counts calls holding a concurrency slot (in
 * flight or waiting for a retry); queued calls wait in a FIFO.
 *
 * Backoff: a tiny local exponential backoff with "equal jitter"
 * (ceiling/2 + random(ceiling/2)), not sync/backoff.h: kt_svc must not
 * depend on the replication library (ADR 0005) for ten lines.
 *
 * Thread: loop only. Ownership: the caller owns endpoints, calls, curl
 * handles and uv handles.
 */
#include "svc/caller.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define KT_LOG_MOD "svc"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"

#define DEFAULT_MAX_RESPONSE       (1024u * 1024u)
#define DEFAULT_CONNECT_TIMEOUT_MS 2000u
#define N_RESP_HEADERS             6
#define RESP_HEADER_MAX            1024

static const char *const resp_header_names[N_RESP_HEADERS] = { "ce-specversion", "ce-id",
                                                               "ce-type",        "ce-source",
                                                               "ce-time",        "content-type" };

typedef struct endpoint endpoint;
typedef struct call call;

struct endpoint {
    char *iface;
    char *url;
    svc_endpoint_opts o;
    size_t active; /* calls holding a slot: in flight or waiting for a retry */
    call *q_head;
    call *q_tail;
    size_t n_queued;
    kt_metric *m_calls;
    kt_metric *m_failures;
    kt_metric *m_retries;
    kt_metric *m_rejected;
    kt_metric *m_inflight;
    kt_metric *m_queued;
};

struct call {
    call *next; /* queue link */
    call *all_prev;
    call *all_next; /* every live call of the caller */
    svc_caller *c;
    endpoint *ep;
    char *url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    CURL *easy;
    uv_timer_t timer; /* retry backoff; its close frees the call */
    bool queued;
    bool has_slot;
    bool done;
    bool start_failed; /* set when an attempt could not start; handled from the timer */
    uint32_t attempts;
    uint32_t timeout_ms;
    uint32_t retries;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    kt_buf resp;
    bool resp_too_big;
    char *resp_headers[N_RESP_HEADERS];
    char errbuf[CURL_ERROR_SIZE];
    svc_call_done_cb done_cb;
    void *user;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    svc_caller *c;
    struct sock_ctx *prev;
    struct sock_ctx *next;
} sock_ctx;

struct svc_caller {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    svc_caller_opts opts;
    kt_map by_iface;
    endpoint **eps;
    size_t n_eps;
    call *calls;
    sock_ctx *socks;
    size_t open_handles;
    bool closing;
    uint64_t rng;
};

static void check_multi(svc_caller *c);
static void start_attempt(call *k);
static void on_retry_timer(uv_timer_t *t);
static void retry_or_fail(call *k, kt_status st, int http_status, const char *detail);

/* ----------------------------------------------------------- lifetime */

static void maybe_free_caller(svc_caller *c)
{
    size_t i;
    if (!c->closing || c->open_handles > 0) {
        return;
    }
    for (i = 0; i < c->n_eps; i++) {
        kt_free(c->eps[i]->iface);
        kt_free(c->eps[i]->url);
        kt_free(c->eps[i]);
    }
    kt_free(c->eps);
    kt_map_fini(&c->by_iface);
    kt_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    svc_caller *c = h->data;
    c->open_handles--;
    maybe_free_caller(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_ctx *s = (sock_ctx *)(void *)h;
    svc_caller *c = s->c;
    kt_free(s);
    c->open_handles--;
    maybe_free_caller(c);
}

static void sock_close(sock_ctx *s)
{
    svc_caller *c = s->c;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void reset_resp(call *k)
{
    size_t i;
    kt_buf_reset(&k->resp);
    k->resp_too_big = false;
    for (i = 0; i < N_RESP_HEADERS; i++) {
        kt_free(k->resp_headers[i]);
        k->resp_headers[i] = NULL;
    }
    k->errbuf[0] = '\0';
}

static void on_call_closed(uv_handle_t *h)
{
    call *k = h->data;
    svc_caller *c = k->c;
    reset_resp(k);
    kt_buf_fini(&k->resp);
    curl_slist_free_all(k->headers);
    kt_free(k->body);
    kt_free(k->url);
    kt_free(k);
    c->open_handles--;
    maybe_free_caller(c);
}

/* Unlink k from the caller's list and close its timer (frees it). */
static void call_release(call *k)
{
    svc_caller *c = k->c;
    if (k->easy != NULL) {
        curl_multi_remove_handle(c->multi, k->easy);
        curl_easy_cleanup(k->easy);
        k->easy = NULL;
    }
    if (k->all_prev != NULL) {
        k->all_prev->all_next = k->all_next;
    } else {
        c->calls = k->all_next;
    }
    if (k->all_next != NULL) {
        k->all_next->all_prev = k->all_prev;
    }
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, on_call_closed);
}

/* ------------------------------------------------------------ endpoints */

static void ep_gauges(endpoint *ep)
{
    kt_metrics_set(ep->m_inflight, (double)ep->active);
    kt_metrics_set(ep->m_queued, (double)ep->n_queued);
}

static void pump(endpoint *ep)
{
    while (ep->q_head != NULL && ep->active < ep->o.concurrency) {
        call *k = ep->q_head;
        ep->q_head = k->next;
        if (ep->q_head == NULL) {
            ep->q_tail = NULL;
        }
        ep->n_queued--;
        k->next = NULL;
        k->queued = false;
        k->has_slot = true;
        ep->active++;
        start_attempt(k);
    }
    ep_gauges(ep);
}

/* Final result: tell the user, give the slot back, free the call. */
static void
finish(call *k, kt_status st, int http_status, const model_event *reply, const char *detail)
{
    endpoint *ep = k->ep;
    svc_call_result res;
    KT_ASSERT(!k->done);
    k->done = true;
    if (k->has_slot) {
        k->has_slot = false;
        ep->active--;
    }
    if (st != KT_OK) {
        kt_metrics_inc(ep->m_failures);
        if (st != KT_ECLOSED) {
            char q[CURL_ERROR_SIZE + 128];
            KT_LOG(KT_LOG_WARN, "SVC-HTTP-FAIL", "iface=%s url=%s status=%d attempts=%u err=%s",
                   ep->iface, k->url, http_status, (unsigned)k->attempts,
                   kt_log_quote(q, sizeof(q), detail));
        }
    }
    memset(&res, 0, sizeof(res));
    res.http_status = http_status;
    res.attempts = k->attempts;
    res.reply = reply;
    res.detail = detail;
    if (k->done_cb != NULL) {
        k->done_cb(st, &res, k->user);
    }
    call_release(k);
    if (!k->c->closing) {
        pump(ep);
    }
}

static uint64_t rng_next(svc_caller *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 2685821657736338717ull;
}

static void on_retry_timer(uv_timer_t *t)
{
    call *k = t->data;
    if (k->start_failed) {
        k->start_failed = false;
        retry_or_fail(k, KT_EIO, 0, "could not start the request (curl)");
        return;
    }
    start_attempt(k);
}

/* Retry after backoff if attempts remain; else finish with st. */
static void retry_or_fail(call *k, kt_status st, int http_status, const char *detail)
{
    uint64_t ceiling;
    uint64_t delay;
    uint32_t shift;
    if (k->c->closing || k->attempts > k->retries) {
        finish(k, st, http_status, NULL, detail);
        return;
    }
    shift = k->attempts - 1 > 20 ? 20 : k->attempts - 1;
    ceiling = (uint64_t)k->backoff_min_ms << shift;
    if (ceiling > k->backoff_max_ms) {
        ceiling = k->backoff_max_ms;
    }
    delay = ceiling / 2 + (ceiling > 1 ? rng_next(k->c) % (ceiling / 2 + 1) : 0);
    kt_metrics_inc(k->ep->m_retries);
    {
        char q[CURL_ERROR_SIZE + 128];
        KT_LOG(KT_LOG_DEBUG, "SVC-HTTP-RETRY", "iface=%s attempt=%u status=%d delay_ms=%llu err=%s",
               k->ep->iface, (unsigned)k->attempts, http_status, (unsigned long long)delay,
               kt_log_quote(q, sizeof(q), detail));
    }
    uv_timer_start(&k->timer, on_retry_timer, delay, 0);
}

/* --------------------------------------------------------------- curl */

static size_t on_write(char *p, size_t size, size_t n, void *user)
{
    call *k = user;
    size_t len = size * n;
    if (kt_buf_append(&k->resp, p, len) != KT_OK) {
        k->resp_too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    call *k = user;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    size_t i;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or 100-continue): forget the old headers */
        for (i = 0; i < N_RESP_HEADERS; i++) {
            kt_free(k->resp_headers[i]);
            k->resp_headers[i] = NULL;
        }
        return len;
    }
    if (colon == NULL) {
        return len;
    }
    for (i = 0; i < N_RESP_HEADERS; i++) {
        size_t nl = strlen(resp_header_names[i]);
        if ((size_t)(colon - p) == nl && strncasecmp(p, resp_header_names[i], nl) == 0) {
            const char *v = colon + 1;
            const char *e = p + len;
            while (v < e && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            if ((size_t)(e - v) <= RESP_HEADER_MAX && k->resp_headers[i] == NULL) {
                k->resp_headers[i] = kt_xstrndup(v, (size_t)(e - v));
            }
            break;
        }
    }
    return len;
}

static const char *resp_header(const char *name, void *user)
{
    call *k = user;
    size_t i;
    for (i = 0; i < N_RESP_HEADERS; i++) {
        if (strcasecmp(name, resp_header_names[i]) == 0) {
            return k->resp_headers[i];
        }
    }
    return NULL;
}

static void start_attempt(call *k)
{
    svc_caller *c = k->c;
    CURL *e = curl_easy_init();
    CURLMcode mc;
    k->attempts++;
    reset_resp(k);
    if (e == NULL) {
        /* never report from inside svc_caller_post: go through the loop */
        k->start_failed = true;
        uv_timer_start(&k->timer, on_retry_timer, 0, 0);
        return;
    }
    curl_easy_setopt(e, CURLOPT_URL, k->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, k->body != NULL ? k->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)k->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(e, CURLOPT_PRIVATE, k);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    k->easy = e;
    mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        k->easy = NULL;
        curl_easy_cleanup(e);
        KT_LOG(KT_LOG_WARN, "SVC-HTTP-CURL", "iface=%s curlm=%d", k->ep->iface, (int)mc);
        k->start_failed = true;
        uv_timer_start(&k->timer, on_retry_timer, 0, 0);
    }
}

static bool retryable_status(long s)
{
    return s >= 500 || s == 429 || s == 408;
}

static void attempt_done(call *k, CURLcode rc)
{
    long status = 0;
    char detail[CURL_ERROR_SIZE + 64];
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(k->c->multi, k->easy);
    curl_easy_cleanup(k->easy);
    k->easy = NULL;
    if (rc == CURLE_WRITE_ERROR && k->resp_too_big) {
        snprintf(detail, sizeof(detail), "reply over %zu bytes", k->resp.max);
        finish(k, KT_EPROTO, (int)status, NULL, detail);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(detail, sizeof(detail), "%s",
                 k->errbuf[0] != '\0' ? k->errbuf : curl_easy_strerror(rc));
        retry_or_fail(k, rc == CURLE_OPERATION_TIMEDOUT ? KT_ETIMEDOUT : KT_EIO, 0, detail);
        return;
    }
    if (status >= 200 && status < 300) {
        model_event *reply = NULL;
        const char *ct = k->resp_headers[5];
        bool structured = ct != NULL && strncasecmp(ct, MODEL_CE_STRUCTURED_CT,
                                                    strlen(MODEL_CE_STRUCTURED_CT)) == 0;
        if (k->resp_headers[2] != NULL || structured) {
            kt_err e = { 0 };
            kt_status st = model_event_from_http(&reply, resp_header, k, k->resp.data, k->resp.len,
                                                 k->resp.max, &e);
            if (st != KT_OK) {
                snprintf(detail, sizeof(detail), "reply event: %s", e.msg);
                finish(k, KT_EPROTO, (int)status, NULL, detail);
                return;
            }
        }
        finish(k, KT_OK, (int)status, reply, "ok");
        model_event_free(reply);
        return;
    }
    snprintf(detail, sizeof(detail), "HTTP %ld", status);
    if (retryable_status(status)) {
        retry_or_fail(k, KT_EDEP, (int)status, detail);
    } else {
        finish(k, KT_EDEP, (int)status, NULL, detail);
    }
}

static void check_multi(svc_caller *c)
{
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            call *k = NULL;
            CURL *e = m->easy_handle;
            CURLcode rc = m->data.result;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&k);
            attempt_done(k, rc);
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *s = (sock_ctx *)(void *)p;
    svc_caller *c = s->c;
    int flags = 0;
    int running = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_multi(c);
}

static void on_timeout(uv_timer_t *t)
{
    svc_caller *c = t->data;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi(c);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    svc_caller *c = userp;
    sock_ctx *s = socketp;
    int ev = 0;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = kt_xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            kt_free(s);
            return -1;
        }
        c->open_handles++;
        s->next = c->socks;
        if (c->socks != NULL) {
            c->socks->prev = s;
        }
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        ev |= UV_READABLE;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        ev |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    svc_caller *c = userp;
    (void)m;
    if (c->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ------------------------------------------------------------------ API */

kt_status
svc_caller_new(svc_caller **out, uv_loop_t *loop, const svc_caller_opts *opts, kt_err *err)
{
    svc_caller *c;
    static bool global_done = false;
    if (!global_done) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            return kt_err_set_dep(err, KT_EDEP, "curl", rc, "curl_global_init: %s",
                                  curl_easy_strerror(rc));
        }
        global_done = true;
    }
    c = kt_xcalloc(1, sizeof(*c));
    c->loop = loop;
    if (opts != NULL) {
        c->opts = *opts;
    }
    if (c->opts.max_response_bytes == 0) {
        c->opts.max_response_bytes = DEFAULT_MAX_RESPONSE;
    }
    if (c->opts.connect_timeout_ms == 0) {
        c->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        kt_free(c);
        return kt_err_set_dep(err, KT_EDEP, "curl", 0, "curl_multi_init failed");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    kt_map_init(&c->by_iface);
    c->rng = (kt_clock_mono_ns() ^ (uint64_t)(uintptr_t)c) | 1u;
    *out = c;
    return KT_OK;
}

void svc_caller_free(svc_caller *c)
{
    size_t i;
    if (c == NULL) {
        return;
    }
    c->closing = true;
    /* queued calls first (they hold no curl state), then the rest */
    for (i = 0; i < c->n_eps; i++) {
        endpoint *ep = c->eps[i];
        while (ep->q_head != NULL) {
            call *k = ep->q_head;
            ep->q_head = k->next;
            ep->n_queued--;
            k->queued = false;
            finish(k, KT_ECLOSED, 0, NULL, "caller closed");
        }
        ep->q_tail = NULL;
    }
    while (c->calls != NULL) {
        finish(c->calls, KT_ECLOSED, 0, NULL, "caller closed");
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL) {
        sock_close(c->socks);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

kt_status
svc_caller_endpoint(svc_caller *c, const char *iface, const svc_endpoint_opts *opts, kt_err *err)
{
    endpoint *ep;
    if (opts == NULL || opts->url == NULL ||
        (strncmp(opts->url, "http://", 7) != 0 && strncmp(opts->url, "https://", 8) != 0)) {
        return kt_err_set(err, KT_EINVAL, "endpoint of %s: URL must start with http:// or https://",
                          iface);
    }
    ep = kt_map_get(&c->by_iface, iface);
    if (ep == NULL) {
        ep = kt_xcalloc(1, sizeof(*ep));
        ep->iface = kt_xstrdup(iface);
        kt_map_set(&c->by_iface, ep->iface, ep);
        c->eps = kt_xrealloc(c->eps, (c->n_eps + 1) * sizeof(*c->eps));
        c->eps[c->n_eps++] = ep;
        if (c->opts.metrics != NULL) {
            const char *labels[] = { "iface", ep->iface, NULL };
            kt_metrics *r = c->opts.metrics;
            kt_metrics_counter(&ep->m_calls, r, "ktwin_svc_http_calls_total",
                               "HTTP service calls accepted", labels, NULL);
            kt_metrics_counter(&ep->m_failures, r, "ktwin_svc_http_failures_total",
                               "HTTP service calls that failed after their last attempt", labels,
                               NULL);
            kt_metrics_counter(&ep->m_retries, r, "ktwin_svc_http_retries_total",
                               "HTTP service call retries", labels, NULL);
            kt_metrics_counter(&ep->m_rejected, r, "ktwin_svc_http_rejected_total",
                               "HTTP service calls refused because the queue was full", labels,
                               NULL);
            kt_metrics_gauge(&ep->m_inflight, r, "ktwin_svc_http_inflight",
                             "HTTP service calls holding a concurrency slot", labels, NULL);
            kt_metrics_gauge(&ep->m_queued, r, "ktwin_svc_http_queued",
                             "HTTP service calls waiting for a slot", labels, NULL);
        }
    } else {
        kt_free(ep->url);
    }
    ep->o = *opts;
    ep->url = kt_xstrdup(opts->url);
    ep->o.url = ep->url;
    if (ep->o.concurrency == 0) {
        ep->o.concurrency = 4;
    }
    if (ep->o.queue_max == 0) {
        ep->o.queue_max = 1024;
    }
    if (ep->o.timeout_ms == 0) {
        ep->o.timeout_ms = 5000;
    }
    if (ep->o.retries == 0) {
        ep->o.retries = 3;
    } else if (ep->o.retries == SVC_RETRIES_NONE) {
        ep->o.retries = 0;
    }
    if (ep->o.backoff_min_ms == 0) {
        ep->o.backoff_min_ms = 100;
    }
    if (ep->o.backoff_max_ms == 0) {
        ep->o.backoff_max_ms = 5000;
    }
    if (ep->o.backoff_max_ms < ep->o.backoff_min_ms) {
        ep->o.backoff_max_ms = ep->o.backoff_min_ms;
    }
    pump(ep); /* a larger concurrency may start queued calls */
    return KT_OK;
}

kt_status svc_caller_post(svc_caller *c,
                          const char *iface,
                          const model_event *ev,
                          svc_call_done_cb done,
                          void *user,
                          kt_err *err)
{
    return svc_caller_post_depth(c, iface, ev, 0, done, user, err);
}

kt_status svc_caller_post_depth(svc_caller *c,
                                const char *iface,
                                const model_event *ev,
                                uint32_t depth,
                                svc_call_done_cb done,
                                void *user,
                                kt_err *err)
{
    endpoint *ep = kt_map_get(&c->by_iface, iface);
    model_ce_headers h;
    call *k;
    size_t i;
    kt_status st;
    if (ep == NULL) {
        return kt_err_set(err, KT_ENOTFOUND, "no HTTP service for interface %s", iface);
    }
    if (c->closing) {
        return kt_err_set(err, KT_ECLOSED, "caller closing");
    }
    st = model_event_check(ev, 0, err);
    if (st != KT_OK) {
        return st;
    }
    if (ep->active >= ep->o.concurrency && ep->n_queued >= ep->o.queue_max) {
        kt_metrics_inc(ep->m_rejected);
        return kt_err_set(err, KT_EAGAIN, "HTTP service of %s: %zu in flight and %zu queued (full)",
                          iface, ep->active, ep->n_queued);
    }
    k = kt_xcalloc(1, sizeof(*k));
    k->c = c;
    k->ep = ep;
    k->url = kt_xstrdup(ep->url);
    k->timeout_ms = ep->o.timeout_ms;
    k->retries = ep->o.retries;
    k->backoff_min_ms = ep->o.backoff_min_ms;
    k->backoff_max_ms = ep->o.backoff_max_ms;
    k->done_cb = done;
    k->user = user;
    kt_buf_init(&k->resp, c->opts.max_response_bytes);
    model_event_to_http_binary(ev, &h);
    for (i = 0; i < h.n; i++) {
        char line[MODEL_EVENT_TYPE_CAP + 64 + MODEL_EVENT_ID_MAX];
        snprintf(line, sizeof(line), "%s: %s", h.h[i].name, h.h[i].value);
        k->headers = curl_slist_append(k->headers, line);
        KT_ASSERT(k->headers != NULL);
    }
    {
        char line[64];
        snprintf(line, sizeof(line), "%s: %" PRIu32, SVC_DEPTH_HEADER, depth);
        k->headers = curl_slist_append(k->headers, line);
        KT_ASSERT(k->headers != NULL);
    }
    k->headers = curl_slist_append(k->headers, "Expect:");
    KT_ASSERT(k->headers != NULL);
    if (ev->data_len > 0) {
        k->body = kt_xmalloc(ev->data_len);
        memcpy(k->body, ev->data, ev->data_len);
        k->body_len = ev->data_len;
    }
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    c->open_handles++;
    k->all_next = c->calls;
    if (c->calls != NULL) {
        c->calls->all_prev = k;
    }
    c->calls = k;
    kt_metrics_inc(ep->m_calls);
    k->queued = true;
    if (ep->q_tail != NULL) {
        ep->q_tail->next = k;
    } else {
        ep->q_head = k;
    }
    ep->q_tail = k;
    ep->n_queued++;
    pump(ep);
    return KT_OK;
}

size_t svc_caller_pending(const svc_caller *c, const char *iface)
{
    endpoint *ep = kt_map_get(&c->by_iface, iface);
    if (ep == NULL) {
        return 0;
    }
    return ep->active + ep->n_queued;
}
