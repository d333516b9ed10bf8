/*
 * net_ws.c — WebSocket server endpoints and clients on a kt_net. See kt/net.h.
 *
 * DESIGN
 *   Server: each endpoint is one lws protocol (named by its subprotocol) on
 *   its server's vhost. The upgrade is checked in FILTER_PROTOCOL_CONNECTION
 *   (path must equal the endpoint path, then on_accept), which creates the
 *   kt_ws_conn; the wsi's per-session data holds a pointer to it.
 *   Client: all clients use one lws protocol ("kt-ws-client") on a client
 *   vhost per distinct TLS setup; the conn itself is the wsi's user pointer.
 *
 *   Send: kt_ws_conn_send copies the message into a ws_msg with LWS_PRE
 *   headroom and queues it; each WRITEABLE writes one fragment of at most
 *   NET_CHUNK bytes in place (lws writes the frame header into the bytes
 *   before the fragment, which were already handed over, and masks client
 *   payload in place, which is why the user's bytes are never passed in).
 *   Receive: fragments and rx-buffer pieces are appended to a kt_buf capped
 *   at max_message_bytes and delivered when lws_is_final_fragment() and no
 *   payload remains. Over the cap: close 1009. binary_only: a text frame
 *   closes with 1003 (never delivered).
 *
 *   End: net__ws_finish() is the single exit: it detaches the conn from lws
 *   (pss pointer / wsi user cleared), runs on_close once and frees. Client
 *   connect failures found while still inside kt_ws_client_new are parked on
 *   net->deferred and reported from a zero-delay uv_timer, so on_close never
 *   runs inside a call the user made.
 *
 * Thread: loop thread only.
 */
#define KT_LOG_MOD "net"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kt/log.h"
#include "kt/mem.h"
#include "kt/net.h"
#include "net_int.h"

#define DEF_MAX_MESSAGE ((size_t)16 << 20)

/* A pending host name lookup; conn is cleared when the conn ends first. */
typedef struct resolve {
    uv_getaddrinfo_t req; /* first: the callback casts back */
    kt_ws_conn *conn;
} resolve;
/*
 * lws' own opcode for a close frame: value 4 of enum lws_write_protocol is
 * reserved for it ("handled by lws_close_reason()") and the enum is ABI.
 */
#define NET_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)
#define DEF_MAX_QUEUE       ((size_t)64 << 20)

static void opts_defaults(kt_ws_opts *o)
{
    if (o->max_message_bytes == 0) {
        o->max_message_bytes = DEF_MAX_MESSAGE;
    }
    if (o->max_queue_bytes == 0) {
        o->max_queue_bytes = DEF_MAX_QUEUE;
    }
}

static kt_ws_conn *conn_new(kt_net *net, const kt_ws_opts *opts, bool is_client)
{
    kt_ws_conn *c = kt_xcalloc(1, sizeof *c);
    c->net = net;
    c->opts = *opts;
    opts_defaults(&c->opts);
    c->is_client = is_client;
    c->state = WS_CONNECTING;
    c->end_code = 1006;
    kt_buf_init(&c->rx, c->opts.max_message_bytes);
    c->next = net->conns;
    if (net->conns != NULL) {
        net->conns->prev = c;
    }
    net->conns = c;
    return c;
}

void net__ws_finish(kt_ws_conn *c, int code, const char *reason)
{
    kt_net *net = c->net;
    if (c->state == WS_DONE) {
        return;
    }
    c->state = WS_DONE;
    if (c->pss != NULL) {
        c->pss->conn = NULL;
        c->pss = NULL;
    }
    if (c->is_client && c->wsi != NULL) {
        lws_set_wsi_user(c->wsi, NULL);
    }
    c->wsi = NULL;
    if (c->resolving != NULL) {
        c->resolving->conn = NULL; /* the getaddrinfo callback frees it */
        c->resolving = NULL;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        net->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->opened) {
        kt_metrics_gauge_add(net->m.ws_open, -1);
    }
    KT_LOG(KT_LOG_DEBUG, "NET-WS-CLOSED", "peer=%s client=%d code=%d opened=%d", c->peer,
           c->is_client, code, c->opened);
    /* Server conns that never opened (refused upgrade) are not announced. */
    if ((c->opened || c->is_client) && c->opts.on_close != NULL) {
        c->opts.on_close(c, code, reason != NULL ? reason : "", c->opts.user);
    }
    ws_msg *m = c->q_head;
    while (m != NULL) {
        ws_msg *mn = m->next;
        kt_free(m);
        m = mn;
    }
    kt_buf_fini(&c->rx);
    kt_free(c->path);
    kt_free(c->query);
    net__hdrs_free(&c->hdrs);
    kt_free(c->host);
    kt_free(c->url_path);
    kt_free(c->subprotocol);
    kt_free(c->hdr_name);
    kt_free(c->hdr_value);
    kt_free(c);
}

/* on_close arguments for a conn whose lws connection ended. */
static void finish_from_lws(kt_ws_conn *c)
{
    const char *reason = c->end_reason;
    if (reason[0] == '\0') {
        reason = c->close_requested ? "closed" : "connection lost";
    }
    int code = c->end_code;
    if (c->close_requested && code == 1006) {
        code = c->close_code;
    }
    if (c->opened && !c->close_requested && c->end_reason[0] == '\0') {
        /*
         * No close frame either way: the peer vanished, the idle timeout hit,
         * or lws refused bytes that are no WebSocket framing (it answers those
         * with 1002 itself and tells us nothing more).
         */
        kt_metrics_inc(c->net->m.ws_aborted);
        KT_LOG(KT_LOG_NOTICE, "NET-WS-ABORTED", "peer=%s client=%d code=%d", c->peer, c->is_client,
               code);
    }
    net__ws_finish(c, code, reason);
}

void net__ws_defer_cb(uv_timer_t *t)
{
    kt_net *net = t->data;
    while (net->deferred != NULL) {
        kt_ws_conn *c = net->deferred;
        net->deferred = c->defer_next;
        c->defer_next = NULL;
        net__ws_finish(c, 1006, c->end_reason);
    }
}

static void defer_failure(kt_ws_conn *c)
{
    kt_net *net = c->net;
    c->defer_next = net->deferred;
    net->deferred = c;
    uv_timer_start(&net->defer_timer, net__ws_defer_cb, 0, 0);
}

/* ------------------------------------------------------------ common rx/tx */

static void opened(kt_ws_conn *c)
{
    c->state = WS_OPEN;
    c->opened = true;
    kt_metrics_gauge_add(c->net->m.ws_open, 1);
    KT_LOG(KT_LOG_DEBUG, "NET-WS-OPEN", "peer=%s client=%d", c->peer, c->is_client);
    if (c->opts.on_open != NULL) {
        c->opts.on_open(c, c->opts.user);
    }
}

static void request_close(kt_ws_conn *c, int code, const char *reason)
{
    c->close_requested = true;
    c->close_code = code != 0 ? code : 1000;
    kt_strlcpy(c->close_reason, reason != NULL ? reason : "", sizeof c->close_reason);
    if (c->state == WS_OPEN) {
        c->state = WS_CLOSING;
    }
    if (c->wsi != NULL && c->state == WS_CLOSING) {
        lws_callback_on_writable(c->wsi);
    }
}

static int on_rx(kt_ws_conn *c, struct lws *wsi, const void *in, size_t len)
{
    if (c->state != WS_OPEN || c->close_requested) {
        return 0; /* closing: drop until the peer's close arrives */
    }
    if (c->opts.binary_only && !lws_frame_is_binary(wsi)) {
        kt_metrics_inc(c->net->m.ws_text_refused);
        KT_LOG(KT_LOG_WARN, "NET-WS-TEXT-REFUSED", "peer=%s client=%d", c->peer, c->is_client);
        kt_buf_fini(&c->rx);
        request_close(c, 1003, "binary messages only");
        return 0;
    }
    if (kt_buf_append(&c->rx, in, len) != KT_OK) {
        kt_metrics_inc(c->net->m.ws_too_big);
        KT_LOG(KT_LOG_WARN, "NET-WS-TOO-BIG", "peer=%s max=%zu client=%d", c->peer,
               c->opts.max_message_bytes, c->is_client);
        kt_buf_fini(&c->rx);
        /*
         * Close with 1009 but keep reading (and dropping) until the peer
         * answers: closing the socket with unread data would reset it and
         * the peer would never see the close frame.
         */
        request_close(c, 1009, "message too big");
        return 0;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0) {
        if (c->opts.on_progress != NULL) {
            c->opts.on_progress(c, c->rx.len, c->opts.user);
        }
        return 0;
    }
    kt_metrics_inc(c->net->m.ws_rx_msgs);
    kt_metrics_add(c->net->m.ws_rx_bytes, c->rx.len);
    if (c->opts.on_message != NULL) {
        const uint8_t *data =
            c->rx.data != NULL ? (const uint8_t *)c->rx.data : (const uint8_t *)"";
        c->opts.on_message(c, data, c->rx.len, c->opts.user);
    }
    /* c is still valid: on_close only runs from lws close callbacks. */
    if (c->rx.cap > ((size_t)256 << 10)) { /* do not keep big buffers per idle connection */
        kt_buf_fini(&c->rx);
    } else {
        kt_buf_reset(&c->rx);
    }
    return 0;
}

/* Hand the next frame (at most NET_CHUNK bytes) of the head message to lws. */
static int write_frame(kt_ws_conn *c, struct lws *wsi, size_t *written)
{
    ws_msg *m = c->q_head;
    size_t n = m->len - m->off;
    if (n > NET_CHUNK) {
        n = NET_CHUNK;
    }
    bool first = m->off == 0;
    bool last = m->off + n == m->len;
    int flags = lws_write_ws_flags(m->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY, first, last);
    int w = lws_write(wsi, m->buf + LWS_PRE + m->off, n, (enum lws_write_protocol)flags);
    if (w < 0 || (size_t)w < n) {
        kt_strlcpy(c->end_reason, "write failed", sizeof c->end_reason);
        return -1;
    }
    m->off += n;
    c->queued -= n;
    *written += n + 1; /* +1: empty messages count too */
    if (last) {
        c->q_head = m->next;
        if (c->q_head == NULL) {
            c->q_tail = NULL;
        }
        kt_metrics_inc(c->net->m.ws_tx_msgs);
        kt_metrics_add(c->net->m.ws_tx_bytes, m->len);
        kt_free(m);
    }
    if (c->want_drain && c->queued <= c->opts.max_queue_bytes / 2) {
        c->want_drain = false;
        if (c->opts.on_drain != NULL && !c->close_requested) {
            c->opts.on_drain(c, c->opts.user); /* may queue more: handled below */
        }
    }
    return 0;
}

/*
 * Write frames while the socket takes them without buffering (checked with
 * lws_send_pipe_choked after each), up to 4 chunks per callback so one busy
 * connection cannot starve the others. Small messages then cost one send()
 * each instead of one loop iteration each.
 */
static int on_writeable(kt_ws_conn *c, struct lws *wsi)
{
    if (c->q_head != NULL) {
        size_t written = 0;
        while (c->q_head != NULL) {
            if (write_frame(c, wsi, &written) != 0) {
                return -1;
            }
            if (written >= 4 * NET_CHUNK || lws_send_pipe_choked(wsi)) {
                break;
            }
        }
        if (c->q_head != NULL || c->close_requested) {
            lws_callback_on_writable(wsi);
        }
        return 0;
    }
    if (c->close_requested && !c->close_sent) {
        /*
         * Send the close frame ourselves and wait for the peer's answer
         * (lws 4.1.6 closes the socket right after its own close frame,
         * which loses the frame when unread data triggers a reset).
         */
        unsigned char fr[LWS_PRE + 125];
        size_t rl = strlen(c->close_reason);
        if (rl > 123) {
            rl = 123;
        }
        fr[LWS_PRE] = (unsigned char)((c->close_code >> 8) & 0xff);
        fr[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
        memcpy(fr + LWS_PRE + 2, c->close_reason, rl);
        c->close_sent = true;
        if (lws_write(wsi, fr + LWS_PRE, 2 + rl, NET_LWS_WRITE_CLOSE) < 0) {
            return -1;
        }
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
        return 0;
    }
    return 0;
}

static void peer_close(kt_ws_conn *c, const unsigned char *in, size_t len)
{
    if (len >= 2) {
        c->end_code = (int)(((unsigned)in[0] << 8) | in[1]);
        size_t rl = len - 2;
        if (rl >= sizeof c->end_reason) {
            rl = sizeof c->end_reason - 1;
        }
        if (rl > 0) {
            memcpy(c->end_reason, in + 2, rl);
            c->end_reason[rl] = '\0';
        } else {
            kt_strlcpy(c->end_reason, "peer closed", sizeof c->end_reason);
        }
    } else {
        c->end_code = 1005;
        kt_strlcpy(c->end_reason, "peer closed", sizeof c->end_reason);
    }
}

/* ------------------------------------------------------------ server */

kt_status kt_ws_endpoint(kt_http_server *srv,
                         const char *path,
                         const char *subprotocol,
                         const kt_ws_opts *opts,
                         kt_err *err)
{
    NET_ASSERT_LOOP(srv->net);
    if (srv->started) {
        return kt_err_set(err, KT_EINVAL, "ws endpoint %s: server already started",
                          path != NULL ? path : "?");
    }
    if (path == NULL || path[0] != '/' || subprotocol == NULL || subprotocol[0] == '\0' ||
        strcmp(subprotocol, "http") == 0 || opts == NULL) {
        return kt_err_set(err, KT_EINVAL,
                          "ws endpoint needs a path starting with '/', a "
                          "subprotocol and options");
    }
    for (const char *p = subprotocol; *p != '\0'; p++) {
        if (*p == ',' || *p == ' ' || *p < 0x21 || *p > 0x7e) {
            return kt_err_set(err, KT_EINVAL, "ws subprotocol \"%s\" is not a token", subprotocol);
        }
    }
    for (ws_ep *e = srv->eps; e != NULL; e = e->next) {
        if (strcmp(e->subprotocol, subprotocol) == 0) {
            return kt_err_set(err, KT_EINVAL, "ws subprotocol %s registered twice", subprotocol);
        }
    }
    ws_ep *e = kt_xcalloc(1, sizeof *e);
    e->srv = srv;
    e->path = kt_xstrdup(path);
    e->subprotocol = kt_xstrdup(subprotocol);
    e->opts = *opts;
    opts_defaults(&e->opts);
    /* Keep registration order in the protocol list. */
    ws_ep **tail = &srv->eps;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = e;
    srv->n_eps++;
    return KT_OK;
}

static int on_filter(struct lws *wsi, ws_ep *ep, ws_pss *pss)
{
    kt_net *net = ep->srv->net;
    if (net->freeing || pss == NULL) {
        return -1;
    }
    char path[1024];
    if (lws_hdr_copy(wsi, path, (int)sizeof path, WSI_TOKEN_GET_URI) < 0 ||
        strcmp(path, ep->path) != 0) {
        KT_LOG(KT_LOG_INFO, "NET-WS-REFUSED", "reason=path subprotocol=%s", ep->subprotocol);
        return -1;
    }
    kt_ws_conn *c = conn_new(net, &ep->opts, false);
    c->wsi = wsi;
    c->pss = pss;
    pss->conn = c;
    c->path = kt_xstrdup(path);
    net__copy_query(wsi, &c->query);
    net__copy_headers(wsi, &c->hdrs);
    net__peer_name(wsi, c->peer, sizeof c->peer);
    if (c->opts.on_accept != NULL) {
        c->in_accept = true;
        bool ok = c->opts.on_accept(c, c->opts.user);
        c->in_accept = false;
        if (!ok) {
            KT_LOG(KT_LOG_INFO, "NET-WS-REFUSED", "reason=on_accept peer=%s path=%s", c->peer,
                   c->path);
            net__ws_finish(c, 1008, "refused");
            return -1;
        }
    }
    return 0;
}

int net__ws_server_cb(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    ws_pss *pss = user;
    const struct lws_protocols *pr = lws_get_protocol(wsi);
    ws_ep *ep = pr != NULL ? pr->user : NULL;
    kt_ws_conn *c = pss != NULL ? pss->conn : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (ep == NULL) {
            return -1;
        }
        return on_filter(wsi, ep, pss);
    case LWS_CALLBACK_ESTABLISHED:
        if (c == NULL) {
            return -1;
        }
        c->wsi = wsi;
        opened(c);
        if (c->close_requested) {
            c->state = WS_CLOSING;
        }
        if (c->close_requested || c->q_head != NULL) {
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (c == NULL) {
            return -1;
        }
        return on_rx(c, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c == NULL) {
            return 0;
        }
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c != NULL) {
            if (c->close_sent) {
                return -1; /* the peer answered our close: done */
            }
            peer_close(c, in, len);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c != NULL) {
            finish_from_lws(c);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

/* ------------------------------------------------------------ client */

static int on_client_connection_error(kt_ws_conn *c, struct lws *wsi, const char *why)
{
    if (c->failed || c->state == WS_DONE) {
        return 0;
    }
    c->failed = true;
    kt_metrics_inc(c->net->m.ws_connect_fail);
    (void)snprintf(c->end_reason, sizeof c->end_reason, "connect: %s",
                   why != NULL && why[0] != '\0' ? why : "failed");
    KT_LOG(KT_LOG_INFO, "NET-WS-CONNECT-FAIL", "peer=%s err=\"%s\"", c->peer,
           why != NULL ? why : "");
    lws_set_wsi_user(wsi, NULL);
    c->wsi = NULL;
    if (c->in_connect) {
        return 0; /* kt_ws_client_new defers the report */
    }
    if (c->close_requested) {
        net__ws_finish(c, c->close_code, "closed while connecting");
        return 0;
    }
    net__ws_finish(c, 1006, c->end_reason);
    return 0;
}

int net__ws_client_cb(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    kt_ws_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (c == NULL || c->hdr_name == NULL) {
            return 0;
        }
        unsigned char **p = in;
        unsigned char *end = *p + len;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)c->hdr_name,
                                        (const unsigned char *)c->hdr_value,
                                        (int)strlen(c->hdr_value), p, end)) {
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        net__reap_failed_connect_watcher(wsi);
        if (c != NULL) {
            return on_client_connection_error(c, wsi, in);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c == NULL) {
            return -1;
        }
        c->wsi = wsi;
        if (c->close_requested) {
            /* Closed while connecting: finish the close now. */
            c->state = WS_CLOSING;
            lws_callback_on_writable(wsi);
            return 0;
        }
        opened(c);
        if (c->close_requested || c->q_head != NULL) {
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c == NULL) {
            return -1;
        }
        return on_rx(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c == NULL) {
            return 0;
        }
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c != NULL) {
            if (c->close_sent) {
                return -1; /* the peer answered our close: done */
            }
            peer_close(c, in, len);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c != NULL) {
            if (!c->opened && !c->failed) {
                c->failed = true;
                kt_metrics_inc(c->net->m.ws_connect_fail);
                if (c->end_reason[0] == '\0') {
                    kt_strlcpy(c->end_reason,
                               c->close_requested ? "closed while connecting" : "connect: failed",
                               sizeof c->end_reason);
                }
            }
            finish_from_lws(c);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

typedef struct url_parts {
    bool tls;
    char host[256];
    int port;
    char path[2048]; /* path plus ?query */
} url_parts;

static bool parse_url(const char *url, url_parts *u)
{
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) {
        u->tls = false;
        u->port = 80;
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        u->tls = true;
        u->port = 443;
        p = url + 6;
    } else {
        return false;
    }
    const char *hs = p;
    const char *he;
    if (*p == '[') {
        he = strchr(p, ']');
        if (he == NULL) {
            return false;
        }
        hs = p + 1;
        p = he + 1;
    } else {
        while (*p != '\0' && *p != ':' && *p != '/' && *p != '?') {
            p++;
        }
        he = p;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof u->host) {
        return false;
    }
    memcpy(u->host, hs, hl);
    u->host[hl] = '\0';
    if (*p == ':') {
        p++;
        long port = 0;
        const char *ds = p;
        while (*p >= '0' && *p <= '9' && port <= 65535) {
            port = port * 10 + (*p - '0');
            p++;
        }
        if (p == ds || port < 1 || port > 65535) {
            return false;
        }
        u->port = (int)port;
    }
    if (*p != '\0' && *p != '/' && *p != '?') {
        return false;
    }
    int n = snprintf(u->path, sizeof u->path, "%s%s", *p == '?' ? "/" : "", *p != '\0' ? p : "/");
    return n > 0 && (size_t)n < sizeof u->path;
}

/* The client vhost for o's TLS setup and timeout (one per distinct setup). Only a wss one
 * (tls) gets lws' DO_SSL_GLOBAL_INIT, which makes it create an SSL_CTX and load the CA store
 * (~1 MiB of heap, more of libcrypto): a ws:// connection never uses them. */
static struct lws_vhost *
client_vhost_get(kt_net *net, const kt_ws_client_opts *o, bool tls, kt_err *err)
{
    uint32_t cto = o->connect_timeout_s != 0 ? o->connect_timeout_s : 10;
    char key[3 * 1100];
    (void)snprintf(key, sizeof key, "%d|%s|%s|%s|%u", tls, o->tls_ca_file ? o->tls_ca_file : "",
                   o->tls_cert_file ? o->tls_cert_file : "", o->tls_key_file ? o->tls_key_file : "",
                   cto);
    for (client_vhost *cv = net->cvhosts; cv != NULL; cv = cv->next) {
        if (strcmp(cv->key, key) == 0) {
            return cv->vh;
        }
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    char name[32];
    size_t n = 0;
    for (client_vhost *cv = net->cvhosts; cv != NULL; cv = cv->next) {
        n++;
    }
    (void)snprintf(name, sizeof name, "kt-client-%zu", n);
    info.vhost_name = name;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = net->client_protocols;
    if (tls) {
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = o->tls_ca_file;
        info.client_ssl_cert_filepath = o->tls_cert_file;
        info.client_ssl_private_key_filepath = o->tls_key_file;
    }
    info.connect_timeout_secs = cto;
    info.timeout_secs = cto;
    info.alpn = "http/1.1";
    struct lws_vhost *vh = lws_create_vhost(net->ctx, &info);
    if (vh == NULL) {
        kt_err_set_dep(err, KT_EINVAL, "lws", 0, "client TLS setup failed (CA %s, cert %s)",
                       o->tls_ca_file ? o->tls_ca_file : "-",
                       o->tls_cert_file ? o->tls_cert_file : "-");
        return NULL;
    }
    client_vhost *cv = kt_xcalloc(1, sizeof *cv);
    cv->key = kt_xstrdup(key);
    cv->vh = vh;
    cv->next = net->cvhosts;
    net->cvhosts = cv;
    return vh;
}

/* Record a connect failure; report it now, or from the loop when inside a user call. */
static void fail_connect(kt_ws_conn *c, const char *why, bool deferred)
{
    c->failed = true;
    kt_metrics_inc(c->net->m.ws_connect_fail);
    (void)snprintf(c->end_reason, sizeof c->end_reason, "connect: %s", why);
    KT_LOG(KT_LOG_INFO, "NET-WS-CONNECT-FAIL", "peer=%s err=\"%s\"", c->peer, why);
    c->wsi = NULL;
    if (deferred) {
        defer_failure(c);
    } else {
        net__ws_finish(c, c->close_requested ? c->close_code : 1006,
                       c->close_requested ? "closed while connecting" : c->end_reason);
    }
}

/* Hand the connect to lws; address is numeric. inside_user_call: see fail_connect. */
static void start_connect(kt_ws_conn *c, const char *address, bool inside_user_call)
{
    kt_net *net = c->net;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = net->ctx;
    i.vhost = c->cvh;
    i.address = address;
    i.port = c->port;
    i.path = c->url_path;
    i.host = c->host;
    i.origin = c->host;
    i.protocol = c->subprotocol;
    i.local_protocol_name = "kt-ws-client";
    i.userdata = c;
    i.ietf_version_or_minus_one = -1;
    i.retry_and_idle_policy = c->retry;
    i.ssl_connection = c->ssl_flags;
    c->in_connect = true;
    struct lws *wsi = lws_client_connect_via_info(&i);
    c->in_connect = false;
    if (wsi == NULL || c->failed) {
        if (!c->failed) {
            fail_connect(c, "could not start", inside_user_call);
            return;
        }
        /* The error callback ran inside the connect call and only recorded it. */
        c->wsi = NULL;
        if (inside_user_call) {
            defer_failure(c);
        } else {
            net__ws_finish(c, 1006, c->end_reason);
        }
        return;
    }
    c->wsi = wsi;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve *r = (resolve *)req;
    kt_ws_conn *c = r->conn;
    kt_free(r);
    if (c == NULL) {
        uv_freeaddrinfo(res); /* the conn ended (closed or kt_net_free) meanwhile */
        return;
    }
    c->resolving = NULL;
    if (c->close_requested) {
        uv_freeaddrinfo(res);
        net__ws_finish(c, c->close_code, "closed while connecting");
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        char why[160];
        (void)snprintf(why, sizeof why, "resolve %s: %s", c->host, uv_strerror(status));
        fail_connect(c, why, false);
        return;
    }
    /* Prefer IPv4 (servers here usually bind 127.0.0.1 / 0.0.0.0), then IPv6. */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
        }
    }
    for (const struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET6) {
            pick = a;
        }
    }
    char ip[INET6_ADDRSTRLEN] = "";
    if (pick != NULL) {
        const void *src =
            pick->ai_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)pick->ai_addr)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
        (void)inet_ntop(pick->ai_family, src, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (ip[0] == '\0') {
        char why[160];
        (void)snprintf(why, sizeof why, "resolve %s: no IPv4/IPv6 address", c->host);
        fail_connect(c, why, false);
        return;
    }
    start_connect(c, ip, false);
}

static kt_status check_readable(const char *path, const char *what, kt_err *err)
{
    if (path != NULL && access(path, R_OK) != 0) {
        return kt_err_set(err, KT_EINVAL, "%s file %s is not readable", what, path);
    }
    return KT_OK;
}

kt_status
kt_ws_client_new(kt_ws_conn **out, kt_net *net, const kt_ws_client_opts *opts, kt_err *err)
{
    *out = NULL;
    NET_ASSERT_LOOP(net);
    if (net->freeing) {
        return kt_err_set(err, KT_ECLOSED, "kt_net is shutting down");
    }
    if (opts == NULL || opts->url == NULL || opts->subprotocol == NULL ||
        opts->subprotocol[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "ws client needs a url and a subprotocol");
    }
    url_parts u;
    if (!parse_url(opts->url, &u)) {
        return kt_err_set(err, KT_EINVAL, "bad ws url \"%s\" (ws://host:port/path or wss://...)",
                          opts->url);
    }
    if (u.tls && net->no_tls) {
        return kt_err_set(err, KT_EINVAL, "wss client on a kt_net created with no_tls");
    }
    if ((opts->header_name == NULL) != (opts->header_value == NULL) ||
        (opts->header_name != NULL &&
         (opts->header_name[0] == '\0' || strlen(opts->header_name) > 100 ||
          strpbrk(opts->header_name, ": \r\n") != NULL ||
          strpbrk(opts->header_value, "\r\n") != NULL))) {
        return kt_err_set(err, KT_EINVAL, "bad extra header");
    }
    if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL)) {
        return kt_err_set(err, KT_EINVAL, "client certificate needs both cert and key files");
    }
    kt_status st = check_readable(opts->tls_ca_file, "CA", err);
    if (st == KT_OK) {
        st = check_readable(opts->tls_cert_file, "certificate", err);
    }
    if (st == KT_OK) {
        st = check_readable(opts->tls_key_file, "key", err);
    }
    if (st != KT_OK) {
        return st;
    }
    struct lws_vhost *vh = client_vhost_get(net, opts, u.tls, err);
    if (vh == NULL) {
        return KT_EINVAL;
    }

    kt_ws_conn *c = conn_new(net, &opts->ws, true);
    c->host = kt_xstrdup(u.host);
    (void)snprintf(c->peer, sizeof c->peer, "%s:%d", u.host, u.port);
    char *q = strchr(u.path, '?');
    c->query = kt_xstrdup(q != NULL ? q + 1 : "");
    c->path = q != NULL ? kt_xstrndup(u.path, (size_t)(q - u.path)) : kt_xstrdup(u.path);
    if (opts->header_name != NULL) {
        size_t nl = strlen(opts->header_name);
        c->hdr_name = kt_xmalloc(nl + 2);
        for (size_t i = 0; i < nl; i++) {
            char ch = opts->header_name[i];
            c->hdr_name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        c->hdr_name[nl] = ':';
        c->hdr_name[nl + 1] = '\0';
        c->hdr_value = kt_xstrdup(opts->header_value);
    }
    c->retry = net__retry(net, c->opts.ping_interval_s, c->opts.idle_timeout_s);
    c->cvh = vh;
    c->port = u.port;
    c->url_path = kt_xstrdup(u.path);
    c->subprotocol = kt_xstrdup(opts->subprotocol);
    if (u.tls) {
        c->ssl_flags = LCCSCF_USE_SSL;
        if (opts->tls_insecure) {
            c->ssl_flags |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                            LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
        }
    }
    unsigned char tmp[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, u.host, tmp) == 1 || inet_pton(AF_INET6, u.host, tmp) == 1) {
        start_connect(c, c->host, true);
    } else {
        /* lws 4.1.6 is built without async DNS: resolve on the uv threadpool first. */
        resolve *r = kt_xcalloc(1, sizeof *r);
        r->conn = c;
        c->resolving = r;
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = uv_getaddrinfo(net->loop, &r->req, on_resolved, c->host, NULL, &hints);
        if (rc != 0) {
            c->resolving = NULL;
            kt_free(r);
            fail_connect(c, uv_strerror(rc), true);
        }
    }
    *out = c;
    return KT_OK;
}

/* ------------------------------------------------------------ conn API */

static kt_status send_msg(kt_ws_conn *c, const void *data, size_t len, bool text)
{
    NET_ASSERT_LOOP(c->net);
    if (c->state != WS_OPEN || c->close_requested || c->wsi == NULL) {
        return KT_ECLOSED;
    }
    if (len > c->opts.max_queue_bytes) {
        return KT_ETOOBIG;
    }
    if (c->queued + len > c->opts.max_queue_bytes) {
        c->want_drain = true;
        kt_metrics_inc(c->net->m.ws_eagain);
        return KT_EAGAIN;
    }
    ws_msg *m = kt_malloc(sizeof *m + LWS_PRE + len);
    if (m == NULL) {
        return KT_ENOMEM;
    }
    m->next = NULL;
    m->len = len;
    m->off = 0;
    m->text = text;
    if (len > 0) {
        memcpy(m->buf + LWS_PRE, data, len);
    }
    if (c->q_tail != NULL) {
        c->q_tail->next = m;
    } else {
        c->q_head = m;
    }
    c->q_tail = m;
    c->queued += len;
    lws_callback_on_writable(c->wsi);
    return KT_OK;
}

kt_status kt_ws_conn_send(kt_ws_conn *c, const void *data, size_t len)
{
    return send_msg(c, data, len, false);
}

kt_status kt_ws_conn_send_text(kt_ws_conn *c, const void *data, size_t len)
{
    return send_msg(c, data, len, true);
}

size_t kt_ws_conn_queued_bytes(const kt_ws_conn *c)
{
    return c->queued;
}

void kt_ws_conn_close(kt_ws_conn *c, int code, const char *reason)
{
    NET_ASSERT_LOOP(c->net);
    if (c->state == WS_DONE || c->close_requested) {
        return;
    }
    request_close(c, code, reason);
    /* While resolving: on_resolved sees close_requested and finishes. */
    if (c->state == WS_CONNECTING && c->wsi != NULL && c->is_client) {
        /* Abandon the connect; lws reports the end from the loop. */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    /* Server conns in CONNECTING are inside the handshake: closed at ESTABLISHED. */
}

bool kt_ws_conn_is_open(const kt_ws_conn *c)
{
    return c->state == WS_OPEN && !c->close_requested;
}

bool kt_ws_conn_is_client(const kt_ws_conn *c)
{
    return c->is_client;
}

void kt_ws_conn_set_user(kt_ws_conn *c, void *user)
{
    c->user = user;
}

void *kt_ws_conn_get_user(const kt_ws_conn *c)
{
    return c->user;
}

const char *kt_ws_conn_peer(const kt_ws_conn *c)
{
    return c->peer;
}

const char *kt_ws_conn_path(const kt_ws_conn *c)
{
    return c->path != NULL ? c->path : "";
}

const char *kt_ws_conn_query(const kt_ws_conn *c)
{
    return c->query != NULL ? c->query : "";
}

const char *kt_ws_conn_header(const kt_ws_conn *c, const char *name)
{
    if (c->is_client) {
        return NULL;
    }
    kt_ws_conn *m = (kt_ws_conn *)c; /* the cache of custom headers is mutable */
    return net__hdr_get(&m->hdrs, m->wsi, m->in_accept, name);
}
