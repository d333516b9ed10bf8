/*
 * net.c — the lws context on a libuv loop, and the HTTP server. See kt/net.h;
 * WebSocket parts are in net_ws.c.
 *
 * DESIGN
 *   One lws_context per kt_net, created with LWS_SERVER_OPTION_LIBUV and the
 *   caller's loop as foreign loop, and EXPLICIT_VHOSTS: each HTTP server is a
 *   listening vhost created by kt_http_server_start, each distinct client TLS
 *   setup a non-listening vhost. Routing is ours, not lws mounts: protocol 0
 *   of a server vhost receives LWS_CALLBACK_HTTP, builds a kt_http_req, reads
 *   the body (bounded by max_body_bytes, 413 beyond) and dispatches. The
 *   response is written from LWS_CALLBACK_HTTP_WRITEABLE: headers first, then
 *   the body in NET_CHUNK pieces, as many per callback as the socket takes
 *   without blocking (lws_send_pipe_choked) up to NET_HTTP_BURST bytes, with
 *   the socket's send buffer raised to that for a big body, so it goes out
 *   in few loop turns and a 100 MiB one never stalls the
 *   loop (nor starves other clients) for long. Servers speak HTTP/1.1 only (ALPN
 *   "http/1.1"): the body streaming assumes h1 framing.
 *
 *   OpenSSL: lws' global init (OPENSSL_init_ssl: config file, providers,
 *   error strings) runs in kt_net_new unless kt_net_opts.no_tls; a client
 *   vhost gets an SSL_CTX (and the CA store) only for wss. A process without
 *   TLS thus never touches most of libcrypto (~3 MiB resident: agent-rss).
 *
 *   Shutdown (lws 4.1.6 with a foreign loop, checked on this machine): the
 *   first lws_context_destroy() closes lws' uv handles asynchronously, and a
 *   second call after those close callbacks have run frees the context; two
 *   calls in a row crash. So kt_net_free does the first call and starts a
 *   "reaper" uv_timer that polls (1 ms) until no handle of the loop is still
 *   closing and none carries the context as data (lws tags its static
 *   handles so), then does the second call, closes itself and frees the
 *   kt_net. The caller only has to run the loop to completion.
 *
 * Metrics (with kt_net_opts.metrics): ktwin_net_http_requests_total,
 * ktwin_net_http_responses_total{class}, ktwin_net_http_body_too_big_total,
 * ktwin_net_ws_open, ktwin_net_ws_{rx,tx}_{messages,bytes}_total,
 * ktwin_net_ws_message_too_big_total, ktwin_net_ws_connect_failures_total,
 * ktwin_net_ws_send_eagain_total.
 *
 * Thread: loop thread only. Ownership: the kt_net owns servers, requests,
 * connections and the lws context.
 */
#define KT_LOG_MOD "net"
#include "kt/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "net_int.h"

/* At most this many body bytes per HTTP_WRITEABLE callback (a few ms of
 * loopback throughput), so one big response cannot starve the loop. */
#define NET_HTTP_BURST (1024u * 1024u)

struct route {
    struct route *next;
    unsigned methods;
    char *path;
    size_t len;
    bool prefix;
    kt_http_handler_cb cb;
    void *user;
};

/* HTTP per-session data (protocol 0 of a server vhost). */
typedef struct http_pss {
    kt_http_req *req;
} http_pss;

typedef struct param {
    char *name;
    char *value;
} param;

struct kt_http_req {
    kt_http_req *prev, *next; /* net->reqs */
    kt_net *net;
    kt_http_server *srv;
    struct lws *wsi; /* NULL once the client is gone */
    http_pss *pss;
    kt_http_method method;
    char *path;
    char *query;
    param *params;
    size_t n_params;
    net_hdrs hdrs;
    kt_buf body;
    bool too_big;
    bool in_handler;
    bool dispatched;
    bool responded;
    char peer[80];
    /* response */
    int status;
    char *ctype;
    unsigned char *resp;
    size_t resp_len;
    size_t sent;
    bool headers_sent;
    bool head_only;
    net_hdrs resp_hdrs;
};

/* ------------------------------------------------------------ helpers */

static char *xstrdup_or_null(const char *s)
{
    return s != NULL ? kt_xstrdup(s) : NULL;
}

/*
 * lws log lines into KT_LOG, at most LWS_LOG_BURST lines per second (a
 * scanner hammering a TLS port must not flood the log); the first line after
 * a quiet second carries suppressed=N. lws logs from the loop thread only.
 */
#define LWS_LOG_BURST 20

void net__log_lws(int level, const char *line)
{
    static uint64_t window_ms;
    static unsigned in_window;
    static unsigned suppressed;
    uint64_t now = kt_clock_mono_ms();
    if (now - window_ms >= 1000) {
        window_ms = now;
        in_window = 0;
    }
    if (++in_window > LWS_LOG_BURST) {
        suppressed++;
        return;
    }
    unsigned sup = suppressed;
    suppressed = 0;
    char q[600];
    char tmp[512];
    size_t n = kt_strlcpy(tmp, line, sizeof tmp);
    if (n >= sizeof tmp) {
        n = sizeof tmp - 1;
    }
    while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r' || tmp[n - 1] == ' ')) {
        tmp[--n] = '\0';
    }
    kt_log_quote(q, sizeof q, tmp);
    kt_log_level lvl = KT_LOG_DEBUG;
    if ((level & LLL_ERR) != 0) {
        lvl = KT_LOG_ERR;
    } else if ((level & LLL_WARN) != 0) {
        lvl = KT_LOG_WARN;
    } else if ((level & (LLL_NOTICE | LLL_USER)) != 0) {
        lvl = KT_LOG_INFO;
    }
    if (sup > 0) {
        KT_LOG(lvl, "LWS-LOG", "lws=%s suppressed=%u", q, sup);
    } else {
        KT_LOG(lvl, "LWS-LOG", "lws=%s", q);
    }
}

void net__peer_name(struct lws *wsi, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    kt_strlcpy(out, "?", cap);
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip) != NULL) {
            (void)snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
        }
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip) != NULL) {
            (void)snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
        }
    }
}

/* Copy every well-known request header lws parsed. */
void net__copy_headers(struct lws *wsi, net_hdrs *h)
{
    for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
        const unsigned char *nm = lws_token_to_string((enum lws_token_indexes)t);
        if (nm == NULL || nm[0] == ':' || t == (int)WSI_TOKEN_HTTP_URI_ARGS) {
            continue;
        }
        size_t nl = strlen((const char *)nm);
        if (nl < 2 || nm[nl - 1] != ':') {
            continue; /* method/URI pseudo tokens ("get ", ...) */
        }
        int vl = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (vl <= 0) {
            continue;
        }
        char *v = kt_xmalloc((size_t)vl + 1);
        if (lws_hdr_copy(wsi, v, vl + 1, (enum lws_token_indexes)t) < 0) {
            kt_free(v);
            continue;
        }
        char *name = kt_xstrndup((const char *)nm, nl - 1);
        for (char *p = name; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        h->v = kt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
        h->v[h->n].name = name;
        h->v[h->n].value = v;
        h->n++;
    }
}

/*
 * Find a header by case-insensitive name. With live (the lws header storage
 * is still attached), names lws does not know are looked up as custom
 * headers and cached.
 */
const char *net__hdr_get(net_hdrs *h, struct lws *wsi, bool live, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->v[i].name, name) == 0) {
            return h->v[i].value;
        }
    }
    if (!live || wsi == NULL) {
        return NULL;
    }
    char cname[128];
    size_t nl = strlen(name);
    if (nl == 0 || nl + 2 > sizeof cname) {
        return NULL;
    }
    for (size_t i = 0; i < nl; i++) {
        cname[i] = (char)tolower((unsigned char)name[i]);
    }
    cname[nl] = ':';
    cname[nl + 1] = '\0';
    int vl = lws_hdr_custom_length(wsi, cname, (int)(nl + 1));
    if (vl < 0) {
        return NULL;
    }
    char *v = kt_xmalloc((size_t)vl + 1);
    if (lws_hdr_custom_copy(wsi, v, vl + 1, cname, (int)(nl + 1)) < 0) {
        kt_free(v);
        return NULL;
    }
    h->v = kt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
    h->v[h->n].name = kt_xstrndup(cname, nl);
    h->v[h->n].value = v;
    h->n++;
    return v;
}

void net__hdrs_free(net_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        kt_free(h->v[i].name);
        kt_free(h->v[i].value);
    }
    kt_free(h->v);
    h->v = NULL;
    h->n = 0;
}

/* Query fragments (as lws split and decoded them) joined with '&'. */
void net__copy_query(struct lws *wsi, char **out)
{
    kt_buf b;
    kt_buf_init(&b, 64 * 1024);
    char frag[4096];
    for (int i = 0; i < 256; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) {
            break;
        }
        if (i > 0) {
            (void)kt_buf_putc(&b, '&');
        }
        (void)kt_buf_append(&b, frag, (size_t)n);
    }
    *out = b.data != NULL ? kt_buf_detach(&b, NULL) : kt_xstrdup("");
    kt_buf_fini(&b);
}

void net__set_retry(lws_retry_bo_t *r, uint32_t ping_s, uint32_t idle_s)
{
    memset(r, 0, sizeof *r);
    if (ping_s == UINT32_MAX) {
        return; /* no pings, no idle hangup */
    }
    if (ping_s == 0) {
        ping_s = 30;
    }
    if (idle_s == 0) {
        idle_s = 90;
    }
    if (ping_s > UINT16_MAX) {
        ping_s = UINT16_MAX;
    }
    if (idle_s > UINT16_MAX) {
        idle_s = UINT16_MAX;
    }
    if (idle_s <= ping_s) {
        idle_s = ping_s + 1;
    }
    r->secs_since_valid_ping = (uint16_t)ping_s;
    r->secs_since_valid_hangup = (uint16_t)idle_s;
}

const lws_retry_bo_t *net__retry(kt_net *net, uint32_t ping_s, uint32_t idle_s)
{
    lws_retry_bo_t bo;
    net__set_retry(&bo, ping_s, idle_s);
    if (bo.secs_since_valid_ping == 0) {
        return NULL;
    }
    for (retry_policy *r = net->retries; r != NULL; r = r->next) {
        if (r->bo.secs_since_valid_ping == bo.secs_since_valid_ping &&
            r->bo.secs_since_valid_hangup == bo.secs_since_valid_hangup) {
            return &r->bo;
        }
    }
    retry_policy *r = kt_xcalloc(1, sizeof *r);
    r->bo = bo;
    r->next = net->retries;
    net->retries = r;
    return &r->bo;
}

/* ------------------------------------------------------------ net */

static void metrics_init(kt_net *net, kt_metrics *reg)
{
    if (reg == NULL) {
        return;
    }
    net_metrics *m = &net->m;
    (void)kt_metrics_counter(&m->http_requests, reg, "ktwin_net_http_requests_total",
                             "HTTP requests received", NULL, NULL);
    static const char *const classes[] = { NULL, "1xx", "2xx", "3xx", "4xx", "5xx" };
    for (size_t i = 1; i < 6; i++) {
        const char *labels[] = { "class", classes[i], NULL };
        (void)kt_metrics_counter(&m->http_class[i], reg, "ktwin_net_http_responses_total",
                                 "HTTP responses sent, by status class", labels, NULL);
    }
    (void)kt_metrics_counter(&m->http_too_big, reg, "ktwin_net_http_body_too_big_total",
                             "HTTP requests refused with 413 (body over the cap)", NULL, NULL);
    (void)kt_metrics_gauge(&m->ws_open, reg, "ktwin_net_ws_open",
                           "WebSocket connections open (server and client)", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_rx_msgs, reg, "ktwin_net_ws_rx_messages_total",
                             "WebSocket messages received", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_rx_bytes, reg, "ktwin_net_ws_rx_bytes_total",
                             "WebSocket message bytes received", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_tx_msgs, reg, "ktwin_net_ws_tx_messages_total",
                             "WebSocket messages sent", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_tx_bytes, reg, "ktwin_net_ws_tx_bytes_total",
                             "WebSocket message bytes sent", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_too_big, reg, "ktwin_net_ws_message_too_big_total",
                             "WebSocket connections closed with 1009 (message over the cap)", NULL,
                             NULL);
    (void)kt_metrics_counter(&m->ws_connect_fail, reg, "ktwin_net_ws_connect_failures_total",
                             "WebSocket client connections that did not open", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_eagain, reg, "ktwin_net_ws_send_eagain_total",
                             "WebSocket sends refused because the send queue was full", NULL, NULL);
    (void)kt_metrics_counter(&m->ws_text_refused, reg, "ktwin_net_ws_text_refused_total",
                             "WebSocket connections closed with 1003 (a text message on a "
                             "binary-only protocol)",
                             NULL, NULL);
    (void)kt_metrics_counter(&m->ws_aborted, reg, "ktwin_net_ws_aborted_total",
                             "Open WebSocket connections that ended without a close handshake "
                             "(peer gone, idle timeout or bad framing)",
                             NULL, NULL);
}

static const struct lws_protocols client_protocols[] = {
    { "kt-ws-client", net__ws_client_cb, 0, 16384, 0, NULL, 0 }, { NULL, NULL, 0, 0, 0, NULL, 0 }
};

kt_status kt_net_new(kt_net **out, uv_loop_t *loop, const kt_net_opts *opts, kt_err *err)
{
    *out = NULL;
    KT_ASSERT(loop != NULL);
    kt_net *net = kt_xcalloc(1, sizeof *net);
    net->loop = loop;
    net->owner = uv_thread_self();
    net->client_protocols = client_protocols;
    net->scratch = kt_xmalloc(LWS_PRE + NET_CHUNK);
    int mask = opts != NULL && opts->lws_log_mask != 0 ? opts->lws_log_mask : LLL_ERR | LLL_WARN;
    lws_set_log_level(mask, net__log_lws);
    metrics_init(net, opts != NULL ? opts->metrics : NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = { loop };
    net->no_tls = opts != NULL && opts->no_tls;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (!net->no_tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    }
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.gid = -1;
    info.uid = -1;
    info.user = net;
    info.pcontext = &net->ctx;
    if (opts != NULL && opts->max_fds != 0) {
        info.fd_limit_per_thread = opts->max_fds; /* one service thread: the loop's */
    }
    info.max_http_header_data = 16384;
    info.pt_serv_buf_size = 32 * 1024;
    net->ctx = lws_create_context(&info);
    if (net->ctx == NULL) {
        kt_free(net->scratch);
        kt_free(net);
        return kt_err_set_dep(err, KT_EDEP, "lws", 0, "lws_create_context refused the libuv loop");
    }
    uv_timer_init(loop, &net->defer_timer);
    net->defer_timer.data = net;
    uv_timer_init(loop, &net->orphan_timer);
    net->orphan_timer.data = net;
    *out = net;
    return KT_OK;
}

uv_loop_t *kt_net_loop(const kt_net *net)
{
    return net->loop;
}

typedef struct reap_scan {
    kt_net *net;
    bool busy;
} reap_scan;

static void reap_walk(uv_handle_t *h, void *arg)
{
    reap_scan *s = arg;
    if (h == (uv_handle_t *)&s->net->reaper) {
        return;
    }
    if (uv_is_closing(h) || (s->net->ctx != NULL && h->data == (void *)s->net->ctx)) {
        s->busy = true;
    }
}

static void free_servers(kt_net *net)
{
    kt_http_server *s = net->servers;
    while (s != NULL) {
        kt_http_server *sn = s->next;
        struct route *r = s->routes;
        while (r != NULL) {
            struct route *rn = r->next;
            kt_free(r->path);
            kt_free(r);
            r = rn;
        }
        ws_ep *e = s->eps;
        while (e != NULL) {
            ws_ep *en = e->next;
            kt_free(e->path);
            kt_free(e->subprotocol);
            kt_free(e);
            e = en;
        }
        kt_free(s->protocols);
        kt_free(s->name);
        kt_free(s->bind_addr);
        kt_free(s->tls_cert);
        kt_free(s->tls_key);
        kt_free(s->tls_client_ca);
        kt_free(s);
        s = sn;
    }
    net->servers = NULL;
    client_vhost *cv = net->cvhosts;
    while (cv != NULL) {
        client_vhost *cn = cv->next;
        kt_free(cv->key);
        kt_free(cv);
        cv = cn;
    }
    net->cvhosts = NULL;
    retry_policy *rp = net->retries;
    while (rp != NULL) {
        retry_policy *rn = rp->next;
        kt_free(rp);
        rp = rn;
    }
    net->retries = NULL;
}

static void reaper_closed(uv_handle_t *h)
{
    kt_net *net = h->data;
    kt_free(net->scratch);
    kt_free(net);
}

static bool close_orphans(kt_net *net);

static void reaper_cb(uv_timer_t *t)
{
    kt_net *net = t->data;
    reap_scan s = { net, false };
    uv_walk(net->loop, reap_walk, &s);
    if (s.busy) {
        return;
    }
    if (net->n_orphans > 0) {
        if (!close_orphans(net)) {
            /* Its fd number is watched by a handle that is not ours: leave it. */
            KT_LOG(KT_LOG_WARN, "NET-UV-ORPHAN-LEFT", "n=%zu", net->n_orphans);
            net->n_orphans = 0;
        }
        return; /* the next tick waits for those closes */
    }
    if (net->ctx != NULL) {
        lws_context_destroy(net->ctx); /* second stage: frees the context (pcontext -> NULL) */
    }
    /* lws may call protocol callbacks until here: only now free what they point at. */
    free_servers(net);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, reaper_closed);
}

/*
 * lws 4.1.6 libuv backend bug (fixed upstream after 4.1, warmcat/libwebsockets
 * PR #2434): a client connect that fails after its socket got a uv_poll
 * watcher (connect timeout, refused after EINPROGRESS) runs connect's
 * try_next_result path, which closes the fd and sets wsi->desc.sockfd
 * invalid, reports CLIENT_CONNECTION_ERROR and frees the wsi. But
 * elops_wsi_logical_close_uv returns early for an invalid fd, so the watcher
 * (lws_malloc'd, handle->data == wsi) is never uv_close'd: it stays on the
 * loop (uv_loop_close says EBUSY) and leaks.
 *
 * So, from the CONNECTION_ERROR callback (the wsi still exists) and only when
 * its fd is already gone: remember the watcher whose data is this wsi. It
 * cannot be closed there: lws still calls uv_poll_stop on it while it frees
 * the wsi (libuv asserts on a closing handle). orphan_timer closes it on a
 * later loop turn, once lws is done with it, and frees it as lws would
 * (lws_libuv_closewsi_m). uv_close of a poll handle also removes its (old)
 * fd number from the loop's epoll set, so it waits while another open handle
 * of this loop watches a socket that reused that number. A failure with the
 * fd still valid takes lws' normal close path, which closes the watcher.
 */
typedef struct orphan_scan {
    kt_net *net;
    const void *wsi;
    uv_poll_t *found;
    uv_os_fd_t fd;
    bool fd_in_use;
} orphan_scan;

static bool is_orphan(const kt_net *net, const uv_handle_t *h)
{
    for (size_t i = 0; i < net->n_orphans; i++) {
        if ((const uv_handle_t *)net->orphans[i] == h) {
            return true;
        }
    }
    return false;
}

static void orphan_find_walk(uv_handle_t *h, void *arg)
{
    orphan_scan *s = arg;
    if (h->type == UV_POLL && h->data == s->wsi && !uv_is_closing(h) && !is_orphan(s->net, h)) {
        s->found = (uv_poll_t *)h;
    }
}

static void orphan_fd_walk(uv_handle_t *h, void *arg)
{
    orphan_scan *s = arg;
    uv_os_fd_t fd;
    if ((uv_handle_t *)s->found != h && !uv_is_closing(h) && !is_orphan(s->net, h) &&
        uv_fileno(h, &fd) == 0 && fd == s->fd) {
        s->fd_in_use = true;
    }
}

static void orphan_closed(uv_handle_t *h)
{
    (void)lws_realloc(h, 0, "uvh"); /* lws_free(): the watcher came from lws_malloc */
}

/* Close every remembered watcher whose fd number no other handle watches; true when none is left.
 */
static bool close_orphans(kt_net *net)
{
    size_t keep = 0;
    for (size_t i = 0; i < net->n_orphans; i++) {
        uv_poll_t *p = net->orphans[i];
        orphan_scan s = { net, NULL, p, -1, false };
        if (uv_fileno((uv_handle_t *)p, &s.fd) == 0) {
            uv_walk(net->loop, orphan_fd_walk, &s);
        }
        if (s.fd_in_use) {
            net->orphans[keep++] = p;
            continue;
        }
        KT_LOG(KT_LOG_INFO, "NET-UV-ORPHAN-CLOSED", "fd=%d", (int)s.fd);
        uv_close((uv_handle_t *)p, orphan_closed);
    }
    net->n_orphans = keep;
    return keep == 0;
}

static void orphan_timer_cb(uv_timer_t *t)
{
    kt_net *net = t->data;
    if (!close_orphans(net)) {
        uv_timer_start(t, orphan_timer_cb, 100, 0);
    }
}

void net__reap_failed_connect_watcher(struct lws *wsi)
{
    if (wsi == NULL || lws_get_socket_fd(wsi) != LWS_SOCK_INVALID) {
        return;
    }
    kt_net *net = lws_context_user(lws_get_context(wsi));
    if (net == NULL || net->freeing ||
        net->n_orphans == sizeof net->orphans / sizeof net->orphans[0]) {
        return;
    }
    orphan_scan s = { net, wsi, NULL, -1, false };
    uv_walk(net->loop, orphan_find_walk, &s);
    if (s.found != NULL) {
        net->orphans[net->n_orphans++] = s.found;
        uv_timer_start(&net->orphan_timer, orphan_timer_cb, 0, 0);
    }
}

static void req_free(kt_http_req *req);

void kt_net_free(kt_net *net)
{
    if (net == NULL) {
        return;
    }
    NET_ASSERT_LOOP(net);
    KT_ASSERT(!net->freeing);
    net->freeing = true;
    /* Deferred failures are still on net->conns: the loop below reports them. */
    net->deferred = NULL;
    /* Every open connection hears on_close now, while its owner still exists. */
    while (net->conns != NULL) {
        kt_ws_conn *c = net->conns;
        if (c->failed && c->end_reason[0] != '\0') {
            net__ws_finish(c, 1006, c->end_reason);
        } else {
            net__ws_finish(c, 1001, "shutdown");
        }
    }
    while (net->reqs != NULL) {
        req_free(net->reqs);
    }
    uv_timer_stop(&net->defer_timer);
    uv_close((uv_handle_t *)&net->defer_timer, NULL);
    uv_timer_stop(&net->orphan_timer);
    uv_close((uv_handle_t *)&net->orphan_timer, NULL);
    lws_context_destroy(net->ctx); /* first stage: closes lws' handles */
    uv_timer_init(net->loop, &net->reaper);
    net->reaper.data = net;
    uv_timer_start(&net->reaper, reaper_cb, 0, 1);
}

/* ------------------------------------------------------------ HTTP server */

kt_status
kt_http_server_new(kt_http_server **out, kt_net *net, const kt_http_server_opts *opts, kt_err *err)
{
    *out = NULL;
    NET_ASSERT_LOOP(net);
    kt_http_server_opts def = { 0 };
    if (opts == NULL) {
        opts = &def;
    }
    if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL)) {
        return kt_err_set(err, KT_EINVAL, "TLS needs both a certificate and a key file");
    }
    if (opts->tls_client_ca_file != NULL && opts->tls_cert_file == NULL) {
        return kt_err_set(err, KT_EINVAL, "a client CA needs TLS (certificate and key)");
    }
    if (opts->tls_cert_file != NULL && net->no_tls) {
        return kt_err_set(err, KT_EINVAL, "TLS server on a kt_net created with no_tls");
    }
    if (opts->port < 0 || opts->port > 65535) {
        return kt_err_set(err, KT_EINVAL, "port %d out of range 0..65535", opts->port);
    }
    kt_http_server *s = kt_xcalloc(1, sizeof *s);
    s->net = net;
    s->name = kt_xstrdup(opts->name != NULL ? opts->name : "http");
    s->bind_addr = kt_xstrdup(opts->bind_addr != NULL ? opts->bind_addr : "127.0.0.1");
    s->port = opts->port;
    s->tls_cert = xstrdup_or_null(opts->tls_cert_file);
    s->tls_key = xstrdup_or_null(opts->tls_key_file);
    s->tls_client_ca = xstrdup_or_null(opts->tls_client_ca_file);
    s->max_body = opts->max_body_bytes != 0 ? opts->max_body_bytes : (size_t)1 << 20;
    s->max_header = opts->max_header_bytes != 0 ? opts->max_header_bytes : 8192;
    s->idle_timeout_s = opts->idle_timeout_s != 0 ? opts->idle_timeout_s : 60;
    s->next = net->servers;
    net->servers = s;
    *out = s;
    return KT_OK;
}

kt_status kt_http_route(kt_http_server *srv,
                        unsigned methods,
                        const char *path,
                        unsigned flags,
                        kt_http_handler_cb cb,
                        void *user,
                        kt_err *err)
{
    NET_ASSERT_LOOP(srv->net);
    if (path == NULL || path[0] != '/') {
        return kt_err_set(err, KT_EINVAL, "route path must start with '/'");
    }
    if ((methods & KT_HTTP_ANY) == 0 || cb == NULL) {
        return kt_err_set(err, KT_EINVAL, "route %s: no methods or no handler", path);
    }
    bool prefix = (flags & KT_HTTP_PREFIX) != 0;
    for (struct route *r = srv->routes; r != NULL; r = r->next) {
        if (r->prefix == prefix && strcmp(r->path, path) == 0 && (r->methods & methods) != 0) {
            return kt_err_set(err, KT_EINVAL, "route %s registered twice for a method", path);
        }
    }
    struct route *r = kt_xcalloc(1, sizeof *r);
    r->methods = methods & KT_HTTP_ANY;
    r->path = kt_xstrdup(path);
    r->len = strlen(path);
    r->prefix = prefix;
    r->cb = cb;
    r->user = user;
    r->next = srv->routes;
    srv->routes = r;
    return KT_OK;
}

static int
http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

kt_status kt_http_server_start(kt_http_server *srv, kt_err *err)
{
    NET_ASSERT_LOOP(srv->net);
    if (srv->started) {
        return kt_err_set(err, KT_EINVAL, "server %s already started", srv->name);
    }
    kt_net *net = srv->net;
    /* lws would silently share a listen socket between vhosts on one port. */
    for (const kt_http_server *o = net->servers; o != NULL; o = o->next) {
        if (o != srv && o->started && srv->port != 0 && o->port == srv->port) {
            return kt_err_set(err, KT_EINVAL, "cannot listen on port %d: server %s already does",
                              srv->port, o->name);
        }
    }
    size_t n = 2 + srv->n_eps;
    srv->protocols = kt_xcalloc(n, sizeof *srv->protocols);
    srv->protocols[0].name = "http";
    srv->protocols[0].callback = http_cb;
    srv->protocols[0].per_session_data_size = sizeof(http_pss);
    /* lws sends at most tx_packet_size (else pt_serv_buf_size, 32 KiB) per
     * lws_write and buffers the rest as a partial write: one NET_CHUNK per send. */
    srv->protocols[0].tx_packet_size = NET_CHUNK;
    srv->protocols[0].user = srv;
    uint32_t ping = UINT32_MAX;
    uint32_t idle = 0;
    size_t i = 1;
    for (ws_ep *e = srv->eps; e != NULL; e = e->next, i++) {
        srv->protocols[i].name = e->subprotocol;
        srv->protocols[i].callback = net__ws_server_cb;
        srv->protocols[i].per_session_data_size = sizeof(ws_pss);
        srv->protocols[i].rx_buffer_size = 16384;
        srv->protocols[i].id = (unsigned)i;
        srv->protocols[i].user = e;
        uint32_t p = e->opts.ping_interval_s == 0 ? 30 : e->opts.ping_interval_s;
        uint32_t d = e->opts.idle_timeout_s == 0 ? 90 : e->opts.idle_timeout_s;
        if (p < ping) {
            ping = p;
        }
        if (idle == 0 || d < idle) {
            idle = d;
        }
    }
    net__set_retry(&srv->retry, ping, idle);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = srv->name;
    info.iface = srv->bind_addr;
    info.port = srv->port;
    info.protocols = srv->protocols;
    info.keepalive_timeout = (int)srv->idle_timeout_s;
    info.timeout_secs = 30;
    info.user = srv;
    info.alpn = "http/1.1";
    if (srv->n_eps > 0 && ping != UINT32_MAX) {
        info.retry_and_idle_policy = &srv->retry;
    }
    if (strchr(srv->bind_addr, ':') == NULL) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    if (srv->tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->tls_cert;
        info.ssl_private_key_filepath = srv->tls_key;
        if (srv->tls_client_ca != NULL) {
            info.ssl_ca_filepath = srv->tls_client_ca;
            info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
        }
    }
    srv->vh = lws_create_vhost(net->ctx, &info);
    if (srv->vh == NULL) {
        return kt_err_set_dep(err, KT_EDEP, "lws", 0,
                              "cannot listen on %s port %d%s (address in use, bad address or "
                              "unreadable TLS files)",
                              srv->bind_addr, srv->port, srv->tls_cert != NULL ? " with TLS" : "");
    }
    srv->port = lws_get_vhost_listen_port(srv->vh);
    srv->started = true;
    KT_LOG(KT_LOG_INFO, "NET-HTTP-LISTEN", "server=%s addr=%s port=%d tls=%d ws_endpoints=%zu",
           srv->name, srv->bind_addr, srv->port, srv->tls_cert != NULL, srv->n_eps);
    return KT_OK;
}

int kt_http_server_port(const kt_http_server *srv)
{
    return srv->started ? srv->port : 0;
}

/* --- requests */

static const char *method_name(kt_http_method m)
{
    switch (m) {
    case KT_HTTP_GET:
        return "GET";
    case KT_HTTP_POST:
        return "POST";
    case KT_HTTP_PUT:
        return "PUT";
    case KT_HTTP_DELETE:
        return "DELETE";
    case KT_HTTP_PATCH:
        return "PATCH";
    case KT_HTTP_OPTIONS:
        return "OPTIONS";
    case KT_HTTP_HEAD:
        return "HEAD";
    }
    return "?";
}

static void req_free(kt_http_req *req)
{
    kt_net *net = req->net;
    if (req->pss != NULL) {
        req->pss->req = NULL;
    }
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        net->reqs = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    kt_free(req->path);
    kt_free(req->query);
    for (size_t i = 0; i < req->n_params; i++) {
        kt_free(req->params[i].name);
        kt_free(req->params[i].value);
    }
    kt_free(req->params);
    net__hdrs_free(&req->hdrs);
    net__hdrs_free(&req->resp_hdrs);
    kt_buf_fini(&req->body);
    kt_free(req->ctype);
    kt_free(req->resp);
    kt_free(req);
}

kt_http_method kt_http_req_method(const kt_http_req *req)
{
    return req->method;
}

const char *kt_http_req_method_str(const kt_http_req *req)
{
    return method_name(req->method);
}

const char *kt_http_req_path(const kt_http_req *req)
{
    return req->path;
}

const char *kt_http_req_query(const kt_http_req *req)
{
    return req->query;
}

const char *kt_http_req_param(const kt_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            return req->params[i].value;
        }
    }
    return NULL;
}

const char *kt_http_req_header(const kt_http_req *req, const char *name)
{
    kt_http_req *r = (kt_http_req *)req; /* the cache of custom headers is mutable */
    return net__hdr_get(&r->hdrs, r->wsi, r->in_handler, name);
}

const uint8_t *kt_http_req_body(const kt_http_req *req, size_t *len_out)
{
    if (len_out != NULL) {
        *len_out = req->body.len;
    }
    return req->body.data != NULL ? (const uint8_t *)req->body.data : (const uint8_t *)"";
}

const char *kt_http_req_peer(const kt_http_req *req)
{
    return req->peer;
}

kt_http_server *kt_http_req_server(const kt_http_req *req)
{
    return req->srv;
}

static bool hdr_text_ok(const char *s, bool is_name)
{
    if (s == NULL || (is_name && s[0] == '\0')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\r' || *p == '\n' || (is_name && (*p == ':' || *p == ' '))) {
            return false;
        }
    }
    return true;
}

kt_status kt_http_resp_header(kt_http_req *req, const char *name, const char *value)
{
    if (!hdr_text_ok(name, true) || !hdr_text_ok(value, false) || strlen(name) > 100) {
        return KT_EINVAL;
    }
    net_hdrs *h = &req->resp_hdrs;
    h->v = kt_xrealloc(h->v, (h->n + 1) * sizeof *h->v);
    char *nm = kt_xmalloc(strlen(name) + 2);
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        nm[i] = (char)tolower((unsigned char)name[i]);
    }
    nm[i] = ':';
    nm[i + 1] = '\0';
    h->v[h->n].name = nm;
    h->v[h->n].value = kt_xstrdup(value);
    h->n++;
    return KT_OK;
}

static kt_status respond_common(kt_http_req *req, int status, const char *content_type)
{
    NET_ASSERT_LOOP(req->net);
    KT_ASSERT(!req->responded);
    req->responded = true;
    if (req->wsi == NULL) {
        req_free(req);
        return KT_ECLOSED;
    }
    if (status < 100 || status > 999) {
        status = 500;
    }
    req->status = status;
    req->ctype = xstrdup_or_null(content_type);
    kt_net *net = req->net;
    kt_metrics_inc(net->m.http_class[status / 100 <= 5 ? status / 100 : 5]);
    lws_callback_on_writable(req->wsi);
    return KT_OK;
}

kt_status kt_http_respond(
    kt_http_req *req, int status, const char *content_type, const void *body, size_t len)
{
    if (len > 0) {
        req->resp = kt_xmalloc(len);
        memcpy(req->resp, body, len);
        req->resp_len = len;
    }
    return respond_common(req, status, content_type);
}

kt_status
kt_http_respond_take(kt_http_req *req, int status, const char *content_type, void *body, size_t len)
{
    if (body != NULL && len == 0) {
        kt_free(body);
        body = NULL;
    }
    req->resp = body;
    req->resp_len = len;
    return respond_common(req, status, content_type);
}

kt_status kt_http_respond_error(kt_http_req *req, int status, const char *msg)
{
    kt_buf b;
    kt_buf_init(&b, 4096);
    (void)kt_buf_printf(&b, "{\"error\":{\"code\":%d,\"message\":\"", status);
    for (const char *p = msg != NULL ? msg : ""; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            (void)kt_buf_putc(&b, '\\');
            (void)kt_buf_putc(&b, (char)c);
        } else if (c < 0x20) {
            (void)kt_buf_printf(&b, "\\u%04x", c);
        } else {
            (void)kt_buf_putc(&b, (char)c);
        }
    }
    (void)kt_buf_puts(&b, "\"}}\n");
    size_t n = 0;
    char *data = kt_buf_detach(&b, &n);
    kt_buf_fini(&b);
    return kt_http_respond_take(req, status, "application/json", data, n);
}

/* --- dispatch */

static void parse_params(kt_http_req *req)
{
    const char *q = req->query;
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            req->params = kt_xrealloc(req->params, (req->n_params + 1) * sizeof *req->params);
            param *p = &req->params[req->n_params++];
            if (eq != NULL) {
                p->name = kt_xstrndup(q, (size_t)(eq - q));
                p->value = kt_xstrndup(eq + 1, n - (size_t)(eq - q) - 1);
            } else {
                p->name = kt_xstrndup(q, n);
                p->value = kt_xstrdup("");
            }
        }
        q += n;
        if (*q == '&') {
            q++;
        }
    }
}

static bool route_matches(const struct route *r, const char *path)
{
    if (r->prefix) {
        return strncmp(path, r->path, r->len) == 0;
    }
    return strcmp(path, r->path) == 0;
}

/* Better: longer path, then exact over prefix. */
static bool route_better(const struct route *a, const struct route *b)
{
    if (b == NULL) {
        return true;
    }
    if (a->len != b->len) {
        return a->len > b->len;
    }
    return !a->prefix && b->prefix;
}

static void dispatch(kt_http_req *req)
{
    kt_http_server *srv = req->srv;
    req->dispatched = true;
    const struct route *best = NULL;
    unsigned allowed = 0;
    kt_http_method want = req->method == KT_HTTP_HEAD ? KT_HTTP_GET : req->method;
    for (const struct route *r = srv->routes; r != NULL; r = r->next) {
        if (!route_matches(r, req->path)) {
            continue;
        }
        allowed |= r->methods;
        bool ok = (r->methods & req->method) != 0 || (r->methods & want) != 0;
        if (ok && route_better(r, best)) {
            best = r;
        }
    }
    if (best == NULL) {
        if (allowed == 0) {
            (void)kt_http_respond_error(req, 404, "not found");
            return;
        }
        char allow[128] = "";
        for (unsigned bit = 1; bit <= KT_HTTP_HEAD; bit <<= 1) {
            if ((allowed & bit) != 0) {
                if (allow[0] != '\0') {
                    (void)strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
                }
                (void)strncat(allow, method_name((kt_http_method)bit),
                              sizeof allow - strlen(allow) - 1);
            }
        }
        (void)kt_http_resp_header(req, "Allow", allow);
        (void)kt_http_respond_error(req, 405, "method not allowed");
        return;
    }
    /*
     * The client is connected during the call, so respond cannot free req
     * (only an orphaned req is freed by respond): req is valid afterwards.
     */
    req->in_handler = true;
    best->cb(req, best->user);
    req->in_handler = false;
}

/*
 * A big body: let the socket take up to NET_HTTP_BURST at once. The default
 * send buffer (tcp_wmem, autotuned up from 16 KiB) took ~32 KiB per loop
 * turn, so the greedy writer below stopped after every chunk. Never shrinks
 * the buffer; the kernel caps the value at net.core.wmem_max (and doubles
 * it). Best effort: failing leaves the default buffer, which still works.
 */
static void grow_sndbuf(struct lws *wsi, size_t body_len)
{
    lws_sockfd_type fd = lws_get_socket_fd(wsi);
    if (fd == LWS_SOCK_INVALID) {
        return;
    }
    int want = (int)(body_len < NET_HTTP_BURST ? body_len : NET_HTTP_BURST);
    int cur = 0;
    socklen_t sl = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &sl) == 0 && cur < want) {
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    }
}

static kt_http_method method_of(int lm)
{
    switch (lm) {
    case LWSHUMETH_GET:
        return KT_HTTP_GET;
    case LWSHUMETH_POST:
        return KT_HTTP_POST;
    case LWSHUMETH_OPTIONS:
        return KT_HTTP_OPTIONS;
    case LWSHUMETH_PUT:
        return KT_HTTP_PUT;
    case LWSHUMETH_PATCH:
        return KT_HTTP_PATCH;
    case LWSHUMETH_DELETE:
        return KT_HTTP_DELETE;
    case LWSHUMETH_HEAD:
        return KT_HTTP_HEAD;
    default:
        return (kt_http_method)0;
    }
}

/* Small synchronous error reply for problems found before dispatch; then close. */
static int reply_and_close(struct lws *wsi, unsigned code, const char *msg)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *start = buf + LWS_PRE;
    unsigned char *p = start;
    unsigned char *end = buf + sizeof buf;
    char body[160];
    int bl =
        snprintf(body, sizeof body, "{\"error\":{\"code\":%u,\"message\":\"%s\"}}\n", code, msg);
    if (bl < 0 || (size_t)bl >= sizeof body) {
        return -1;
    }
    if (lws_add_http_common_headers(wsi, code, "application/json", (lws_filepos_t)bl, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end)) {
        return -1;
    }
    if ((size_t)(end - p) < (size_t)bl) {
        return -1;
    }
    memcpy(p, body, (size_t)bl);
    p += bl;
    (void)lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);
    return -1;
}

static int on_http(struct lws *wsi, kt_http_server *srv, http_pss *pss)
{
    kt_net *net = srv->net;
    if (pss->req != NULL) {
        /* A new request while the previous one is pending (pipelining): refuse. */
        return -1;
    }
    char *uri = NULL;
    int ulen = 0;
    int lm = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    kt_http_method m = method_of(lm);
    kt_metrics_inc(net->m.http_requests);
    if (m == 0 || uri == NULL || ulen <= 0) {
        kt_metrics_inc(net->m.http_class[4]);
        return reply_and_close(wsi, 400, "bad request");
    }
    /* Header size cap (lws itself drops requests over its 16 KiB context cap). */
    size_t total = 0;
    for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
        int l = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (l > 0) {
            total += (size_t)l;
        }
    }
    if (total > srv->max_header) {
        kt_metrics_inc(net->m.http_class[4]);
        return reply_and_close(wsi, 431, "request header fields too large");
    }
    kt_http_req *req = kt_xcalloc(1, sizeof *req);
    req->net = net;
    req->srv = srv;
    req->wsi = wsi;
    req->pss = pss;
    req->method = m;
    req->head_only = m == KT_HTTP_HEAD;
    req->path = kt_xstrndup(uri, (size_t)ulen);
    net__copy_query(wsi, &req->query);
    parse_params(req);
    net__copy_headers(wsi, &req->hdrs);
    net__peer_name(wsi, req->peer, sizeof req->peer);
    kt_buf_init(&req->body, srv->max_body);
    req->next = net->reqs;
    if (net->reqs != NULL) {
        net->reqs->prev = req;
    }
    net->reqs = req;
    pss->req = req;

    const char *cl = net__hdr_get(&req->hdrs, NULL, false, "content-length");
    const char *te = net__hdr_get(&req->hdrs, NULL, false, "transfer-encoding");
    unsigned long long clen = 0;
    if (cl != NULL) {
        char *endp = NULL;
        errno = 0;
        clen = strtoull(cl, &endp, 10);
        if (errno != 0 || endp == cl || *endp != '\0') {
            req_free(req);
            kt_metrics_inc(net->m.http_class[4]);
            return reply_and_close(wsi, 400, "bad content-length");
        }
    }
    if (clen > srv->max_body) {
        KT_LOG(KT_LOG_NOTICE, "NET-HTTP-TOO-BIG", "peer=%s path=%s content_length=%llu max=%zu",
               req->peer, req->path, clen, srv->max_body);
        req_free(req);
        kt_metrics_inc(net->m.http_too_big);
        kt_metrics_inc(net->m.http_class[4]);
        return reply_and_close(wsi, 413, "request body too large");
    }
    if (te != NULL && strcasecmp(te, "identity") != 0) {
        /* lws 4.1.6 drops chunked request bodies: say so instead of hanging up. */
        req_free(req);
        kt_metrics_inc(net->m.http_class[4]);
        return reply_and_close(wsi, 411, "length required: send the body with Content-Length");
    }
    if (clen > 0) {
        /*
         * lws 4.1.6 ignores "Expect: 100-continue", and curl then waits a
         * second before sending the body: answer it ourselves.
         */
        const char *ex = net__hdr_get(&req->hdrs, NULL, false, "expect");
        if (ex != NULL && strcasecmp(ex, "100-continue") == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            unsigned char buf[LWS_PRE + sizeof cont];
            memcpy(buf + LWS_PRE, cont, sizeof cont - 1);
            if (lws_write(wsi, buf + LWS_PRE, sizeof cont - 1, LWS_WRITE_HTTP) < 0) {
                return -1;
            }
        }
        return 0; /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
    }
    dispatch(req);
    return 0;
}

static int
http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    http_pss *pss = user;
    const struct lws_protocols *pr = lws_get_protocol(wsi);
    kt_http_server *srv = pr != NULL ? pr->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (srv == NULL || pss == NULL || srv->net->freeing) {
            return -1;
        }
        return on_http(wsi, srv, pss);

    case LWS_CALLBACK_HTTP_BODY: {
        kt_http_req *req = pss != NULL ? pss->req : NULL;
        if (req == NULL || req->dispatched) {
            return 0; /* dispatched without a body (Content-Length: 0): nothing to add */
        }
        if (kt_buf_append(&req->body, in, len) != KT_OK) {
            kt_net *net = req->net;
            KT_LOG(KT_LOG_NOTICE, "NET-HTTP-TOO-BIG", "peer=%s path=%s max=%zu", req->peer,
                   req->path, req->srv->max_body);
            req_free(req);
            kt_metrics_inc(net->m.http_too_big);
            kt_metrics_inc(net->m.http_class[4]);
            return reply_and_close(wsi, 413, "request body too large");
        }
        return 0;
    }

    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        kt_http_req *req = pss != NULL ? pss->req : NULL;
        if (req == NULL || req->dispatched) {
            return 0;
        }
        dispatch(req);
        return 0;
    }

    case LWS_CALLBACK_HTTP_WRITEABLE: {
        kt_http_req *req = pss != NULL ? pss->req : NULL;
        if (req == NULL || !req->responded) {
            return 0;
        }
        kt_net *net = req->net;
        unsigned char *start = net->scratch + LWS_PRE;
        if (!req->headers_sent) {
            unsigned char *p = start;
            unsigned char *end = start + NET_CHUNK;
            if (lws_add_http_common_headers(wsi, (unsigned)req->status, req->ctype,
                                            (lws_filepos_t)req->resp_len, &p, end)) {
                req_free(req);
                return -1;
            }
            for (size_t i = 0; i < req->resp_hdrs.n; i++) {
                const net_hdr *h = &req->resp_hdrs.v[i];
                if (lws_add_http_header_by_name(wsi, (const unsigned char *)h->name,
                                                (const unsigned char *)h->value,
                                                (int)strlen(h->value), &p, end)) {
                    req_free(req);
                    return -1;
                }
            }
            if (lws_finalize_write_http_header(wsi, start, &p, end)) {
                req_free(req);
                return -1;
            }
            req->headers_sent = true;
            if (req->resp_len > NET_CHUNK && !req->head_only) {
                grow_sndbuf(wsi, req->resp_len);
            }
            if (req->resp_len > 0 && !req->head_only) {
                lws_callback_on_writable(wsi);
                return 0;
            }
        } else {
            /* Greedy: NET_CHUNK pieces while the socket takes them without
             * blocking, at most NET_HTTP_BURST bytes per callback. lws_write
             * reports a short socket write as complete and keeps the rest
             * (lws_partial_buffered): stop there and wait for the next
             * writeable, which flushes it before calling us again. */
            size_t burst = 0;
            bool last = false;
            for (;;) {
                size_t n = req->resp_len - req->sent;
                if (n > NET_CHUNK) {
                    n = NET_CHUNK;
                }
                memcpy(start, req->resp + req->sent, n);
                last = req->sent + n == req->resp_len;
                int w = lws_write(wsi, start, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
                if (w < 0 || (size_t)w < n) {
                    req_free(req);
                    return -1;
                }
                req->sent += n;
                burst += n;
                if (last || burst >= NET_HTTP_BURST || lws_partial_buffered(wsi) ||
                    lws_send_pipe_choked(wsi)) {
                    break;
                }
            }
            if (!last) {
                lws_callback_on_writable(wsi);
                return 0;
            }
        }
        /* Response complete. */
        req_free(req);
        if (lws_http_transaction_completed(wsi)) {
            return -1;
        }
        return 0;
    }

    case LWS_CALLBACK_CLOSED_HTTP: {
        kt_http_req *req = pss != NULL ? pss->req : NULL;
        if (req == NULL) {
            return 0;
        }
        if (req->dispatched && !req->responded) {
            /* Deferred response pending: orphan it; kt_http_respond frees it. */
            req->wsi = NULL;
            req->pss = NULL;
            pss->req = NULL;
        } else {
            req_free(req);
        }
        return 0;
    }

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade without a subprotocol we serve. */
        return -1;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
