/*
 * tests/fault/faultproxy.c — a TCP proxy for fault tests: it sits between a
 * client (the agent) and a server (the hub) on 127.0.0.1 and can cut,
 * black-hole and restore the link at run time.
 *
 *   faultproxy --upstream HOST:PORT --port-file FILE --ctl-port-file FILE
 *              [--listen-port N] [--log-level LEVEL]
 *
 * HOST is a numeric IPv4 address. The proxy listens on 127.0.0.1 (port 0 =
 * ephemeral unless --listen-port) for proxied connections and on another
 * ephemeral port for control, and writes each port to its file (written to
 * FILE.tmp then renamed, so a reader never sees a partial number). Both
 * files exist once the proxy accepts connections.
 *
 * CONTROL: connect to the control port and send one command per line; each
 * gets one reply line, sent once the command has taken effect:
 *   cut        every proxied connection is reset (RST, both sides), and new
 *              connections are accepted and reset at once -> "ok cut"
 *   blackhole  existing connections stay open but nothing moves (both sides
 *              stop being read, so TCP buffers fill as on a stalled path);
 *              new connections are accepted, held and not connected
 *              upstream -> "ok blackhole"
 *   restore    forwarding again: stalled connections resume where they were
 *              (no byte lost), held ones are connected upstream -> "ok pass"
 *   rate N     throttle: at most N bytes per second read from all proxied
 *              sockets together (both directions; 0 = unlimited, the
 *              default). Reading pauses when the budget is spent and resumes
 *              on a 10 ms refill tick -> "ok rate N"
 *   status     "ok MODE conns=N accepted=N refused=N up_bytes=N down_bytes=N
 *              pending=N" (pending: bytes read and not yet written, all
 *              connections; bounded by backpressure)
 * Anything else gets "error unknown command"; a line over 256 bytes closes
 * the control connection. From a shell:
 *   exec 3<>/dev/tcp/127.0.0.1/$ctl; echo cut >&3; read -r reply <&3
 * SIGTERM / SIGINT: close everything and exit 0 (the loop is closed cleanly,
 * so ASan's leak check sees every allocation freed).
 *
 * FORWARDING: each connection is two uv_tcp_t (client side, upstream side).
 * Bytes read on one side are written to the other with the read buffer
 * (freed in the write callback). Backpressure: when a side's pending write
 * bytes exceed PROXY_HIGH_WATER the other side stops being read, and it
 * resumes below PROXY_LOW_WATER. Half-close: EOF from one side becomes a
 * shutdown(SHUT_WR) of the other once its queued writes are done; the
 * connection closes when both directions are shut down, or at once on any
 * error (reset) from either side. A failed upstream connect resets the
 * client.
 *
 * Invariants: a conn is on the proxy's list from accept until both of its
 * handles' close callbacks ran; then it is freed (never inside a callback
 * of a handle that is still open). All state is touched on the loop only.
 *
 * Thread: one libuv loop thread. Ownership: the proxy owns its conns,
 * their buffers and the control connections.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define KT_LOG_MOD "faultproxy"
#include "kt/log.h"
#include "kt/mem.h"

#define PROXY_READ_BYTES 65536
#define PROXY_HIGH_WATER (256 * 1024)
#define PROXY_LOW_WATER  (64 * 1024)
#define PROXY_CTL_LINE   256

typedef enum proxy_mode { MODE_PASS, MODE_CUT, MODE_BLACKHOLE } proxy_mode;

typedef struct proxy proxy;
typedef struct conn conn;

/* One direction's endpoint: the socket and what is queued for writing to it. */
typedef struct side {
    uv_tcp_t tcp;
    conn *c;
    size_t pending_bytes; /* bytes written to this side, not yet completed */
    bool open;            /* initialised and not yet closing */
    bool reading;         /* uv_read_start active */
    bool eof;             /* EOF was read from this side */
    bool shut;            /* shutdown(SHUT_WR) was sent to this side */
    bool shutting;        /* a shutdown request is pending */
} side;

struct conn {
    proxy *p;
    conn *prev;
    conn *next;
    side cli;               /* the accepted connection */
    side up;                /* to the upstream server */
    uv_connect_t connect;   /* upstream connect request */
    uv_shutdown_t shut_cli; /* shutdown of cli's write side */
    uv_shutdown_t shut_up;
    bool connecting;  /* upstream connect in flight */
    bool connected;   /* upstream connected */
    bool closing;     /* close started */
    int handles_open; /* handles not yet closed (close callbacks pending) */
};

typedef struct ctl_conn {
    uv_tcp_t tcp;
    proxy *p;
    struct ctl_conn *next;
    char line[PROXY_CTL_LINE + 1];
    size_t len;
    bool closing;
} ctl_conn;

struct proxy {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t ctl;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct sockaddr_in upstream;
    proxy_mode mode;
    conn *conns;
    ctl_conn *ctls;
    uint64_t n_conns;
    uint64_t accepted;
    uint64_t refused;
    uint64_t up_bytes;   /* client -> upstream */
    uint64_t down_bytes; /* upstream -> client */
    uv_timer_t tick;     /* throttle refill, runs while rate_bps > 0 */
    uint64_t rate_bps;   /* 0 = unlimited */
    int64_t budget;      /* bytes that may still be read this tick (may go negative) */
    bool stopping;
};

typedef struct write_req {
    uv_write_t req;
    side *to;
    char *base;
    size_t len;
} write_req;

static const char *mode_name(proxy_mode m)
{
    switch (m) {
    case MODE_PASS:
        return "pass";
    case MODE_CUT:
        return "cut";
    case MODE_BLACKHOLE:
        return "blackhole";
    }
    return "?";
}

static side *other_side(side *s)
{
    return s == &s->c->cli ? &s->c->up : &s->c->cli;
}

static void conn_close(conn *c, bool reset);
static void side_update_reading(side *s);

/* ---- conn lifecycle ----------------------------------------------------- */

static void conn_free(conn *c)
{
    proxy *p = c->p;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        p->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    p->n_conns--;
    kt_free(c);
}

static void on_side_closed(uv_handle_t *h)
{
    side *s = h->data;
    conn *c = s->c;
    c->handles_open--;
    /* The connect request's callback runs (UV_ECANCELED) before the handle's close callback. */
    if (c->handles_open == 0 && !c->connecting) {
        conn_free(c);
    }
}

static void side_close(side *s, bool reset)
{
    if (!s->open) {
        return;
    }
    s->open = false;
    s->reading = false;
    /* A reset needs a connected socket; a handle never connected is just closed. */
    if (!reset || uv_tcp_close_reset(&s->tcp, on_side_closed) != 0) {
        uv_close((uv_handle_t *)&s->tcp, on_side_closed);
    }
}

/* Close both sides (reset = RST instead of FIN). Idempotent. */
static void conn_close(conn *c, bool reset)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    side_close(&c->cli, reset);
    side_close(&c->up, reset && c->connected);
}

/* ---- forwarding ---------------------------------------------------------- */

/* Whether side s should be read now: mode, EOF, backpressure from the other side. */
static bool side_wants_read(side *s)
{
    conn *c = s->c;
    side *o = other_side(s);
    if (!s->open || c->closing || s->eof || c->p->mode != MODE_PASS || !c->connected) {
        return false;
    }
    if (o->pending_bytes > PROXY_HIGH_WATER) {
        return false;
    }
    if (c->p->rate_bps > 0 && c->p->budget <= 0) {
        return false;
    }
    /* Between the high and low water marks keep the current state (hysteresis). */
    if (!s->reading && o->pending_bytes > PROXY_LOW_WATER) {
        return false;
    }
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = kt_xmalloc(PROXY_READ_BYTES);
    buf->len = PROXY_READ_BYTES;
}

/* Once the side has no queued writes and its peer sent EOF: shut its write side. */
static void side_maybe_shutdown(side *s);

/* Both directions finished (EOF read and shutdown done each way): close. */
static void conn_maybe_done(conn *c)
{
    if (!c->closing && c->cli.eof && c->up.eof && c->cli.shut && c->up.shut) {
        conn_close(c, false);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    side *s = req->data;
    conn *c = s->c;
    s->shutting = false;
    if (status != 0) {
        if (status != UV_ECANCELED) {
            KT_LOG(KT_LOG_DEBUG, "PROXY-SHUTDOWN-ERR", "err=%s", uv_strerror(status));
        }
        conn_close(c, true);
        return;
    }
    s->shut = true;
    conn_maybe_done(c);
}

static void side_maybe_shutdown(side *s)
{
    side *o = other_side(s);
    conn *c = s->c;
    if (!s->open || c->closing || !o->eof || s->shut || s->shutting || s->pending_bytes > 0) {
        return;
    }
    uv_shutdown_t *req = s == &c->cli ? &c->shut_cli : &c->shut_up;
    req->data = s;
    int rc = uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown);
    if (rc != 0) {
        conn_close(c, true);
        return;
    }
    s->shutting = true;
}

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    side *to = w->to;
    conn *c = to->c;
    to->pending_bytes -= w->len;
    kt_free(w->base);
    kt_free(w);
    if (status != 0) {
        conn_close(c, true);
        return;
    }
    side_update_reading(other_side(to));
    side_maybe_shutdown(to);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    side *s = stream->data;
    conn *c = s->c;
    side *o = other_side(s);
    if (nread == 0) {
        kt_free(buf->base);
        return;
    }
    if (nread < 0) {
        kt_free(buf->base);
        if (nread == UV_EOF) {
            s->eof = true;
            side_update_reading(s);
            side_maybe_shutdown(o);
            conn_maybe_done(c);
        } else {
            KT_LOG(KT_LOG_DEBUG, "PROXY-READ-ERR", "side=%s err=%s",
                   s == &c->cli ? "client" : "upstream", uv_strerror((int)nread));
            conn_close(c, true);
        }
        return;
    }
    if (s == &c->cli) {
        c->p->up_bytes += (uint64_t)nread;
    } else {
        c->p->down_bytes += (uint64_t)nread;
    }
    if (c->p->rate_bps > 0) {
        c->p->budget -= (int64_t)nread;
    }
    write_req *w = kt_xcalloc(1, sizeof(*w));
    w->to = o;
    w->base = buf->base;
    w->len = (size_t)nread;
    uv_buf_t out = uv_buf_init(w->base, (unsigned int)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&o->tcp, &out, 1, on_write);
    if (rc != 0) {
        kt_free(w->base);
        kt_free(w);
        conn_close(c, true);
        return;
    }
    o->pending_bytes += w->len;
    side_update_reading(s);
}

static void side_update_reading(side *s)
{
    bool want = side_wants_read(s);
    if (want == s->reading) {
        return;
    }
    if (want) {
        if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) != 0) {
            conn_close(s->c, true);
            return;
        }
    } else {
        (void)uv_read_stop((uv_stream_t *)&s->tcp);
    }
    s->reading = want;
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    c->connecting = false;
    if (c->closing) {
        if (c->handles_open == 0) {
            conn_free(c);
        }
        return;
    }
    if (status != 0) {
        KT_LOG(KT_LOG_INFO, "PROXY-UPSTREAM-FAILED", "err=%s", uv_strerror(status));
        conn_close(c, true);
        return;
    }
    c->connected = true;
    side_update_reading(&c->cli);
    side_update_reading(&c->up);
}

static void conn_connect_upstream(conn *c)
{
    proxy *p = c->p;
    if (c->connecting || c->connected || c->closing) {
        return;
    }
    c->connect.data = c;
    int rc =
        uv_tcp_connect(&c->connect, &c->up.tcp, (const struct sockaddr *)&p->upstream, on_connect);
    if (rc != 0) {
        KT_LOG(KT_LOG_INFO, "PROXY-UPSTREAM-FAILED", "err=%s", uv_strerror(rc));
        conn_close(c, true);
        return;
    }
    c->connecting = true;
}

static void on_accept(uv_stream_t *server, int status)
{
    proxy *p = server->data;
    if (status != 0) {
        KT_LOG(KT_LOG_WARN, "PROXY-ACCEPT-ERR", "err=%s", uv_strerror(status));
        return;
    }
    conn *c = kt_xcalloc(1, sizeof(*c));
    c->p = p;
    c->cli.c = c;
    c->up.c = c;
    c->next = p->conns;
    if (p->conns != NULL) {
        p->conns->prev = c;
    }
    p->conns = c;
    p->n_conns++;
    (void)uv_tcp_init(p->loop, &c->cli.tcp);
    c->cli.tcp.data = &c->cli;
    c->cli.open = true;
    c->handles_open++;
    (void)uv_tcp_init(p->loop, &c->up.tcp);
    c->up.tcp.data = &c->up;
    c->up.open = true;
    c->handles_open++;
    if (uv_accept(server, (uv_stream_t *)&c->cli.tcp) != 0) {
        conn_close(c, false);
        return;
    }
    (void)uv_tcp_nodelay(&c->cli.tcp, 1);
    (void)uv_tcp_nodelay(&c->up.tcp, 1);
    if (p->mode == MODE_CUT) {
        p->refused++;
        conn_close(c, true);
        return;
    }
    p->accepted++;
    if (p->mode == MODE_PASS) {
        conn_connect_upstream(c);
    }
    /* MODE_BLACKHOLE: held, not read, connected upstream on restore. */
}

/* ---- modes --------------------------------------------------------------- */

static void proxy_set_mode(proxy *p, proxy_mode mode)
{
    conn *c;
    conn *next;
    p->mode = mode;
    KT_LOG(KT_LOG_NOTICE, "PROXY-MODE", "mode=%s conns=%" PRIu64, mode_name(mode), p->n_conns);
    for (c = p->conns; c != NULL; c = next) {
        next = c->next; /* conn_close never frees synchronously, but be safe */
        if (c->closing) {
            continue;
        }
        if (mode == MODE_CUT) {
            conn_close(c, true);
        } else if (mode == MODE_PASS && !c->connected) {
            conn_connect_upstream(c);
        } else {
            side_update_reading(&c->cli);
            side_update_reading(&c->up);
        }
    }
}

/* Re-evaluate reading on every connection (mode or budget changed). */
static void proxy_update_all(proxy *p)
{
    for (conn *c = p->conns; c != NULL; c = c->next) {
        if (!c->closing) {
            side_update_reading(&c->cli);
            side_update_reading(&c->up);
        }
    }
}

/* Throttle refill: one tick's share of the rate, at most one tick ahead. */
static void on_tick(uv_timer_t *t)
{
    proxy *p = t->data;
    int64_t share = (int64_t)(p->rate_bps / 100);
    if (share < 1) {
        share = 1;
    }
    p->budget += share;
    if (p->budget > share) {
        p->budget = share;
    }
    if (p->budget > 0) {
        proxy_update_all(p);
    }
}

static void proxy_set_rate(proxy *p, uint64_t rate_bps)
{
    p->rate_bps = rate_bps;
    p->budget = 0;
    (void)uv_timer_stop(&p->tick);
    if (rate_bps > 0) {
        (void)uv_timer_start(&p->tick, on_tick, 10, 10);
    }
    KT_LOG(KT_LOG_NOTICE, "PROXY-RATE", "bytes_per_s=%" PRIu64, rate_bps);
    proxy_update_all(p);
}

/* ---- control ------------------------------------------------------------- */

static void on_ctl_closed(uv_handle_t *h)
{
    ctl_conn *cc = h->data;
    proxy *p = cc->p;
    ctl_conn **pp = &p->ctls;
    while (*pp != NULL && *pp != cc) {
        pp = &(*pp)->next;
    }
    if (*pp == cc) {
        *pp = cc->next;
    }
    kt_free(cc);
}

static void ctl_close(ctl_conn *cc)
{
    if (cc->closing) {
        return;
    }
    cc->closing = true;
    uv_close((uv_handle_t *)&cc->tcp, on_ctl_closed);
}

static void on_ctl_written(uv_write_t *req, int status)
{
    (void)status;
    write_req *w = (write_req *)req;
    kt_free(w->base);
    kt_free(w);
}

static void ctl_reply(ctl_conn *cc, const char *text)
{
    size_t n = strlen(text);
    write_req *w = kt_xcalloc(1, sizeof(*w));
    w->base = kt_xmalloc(n + 1);
    memcpy(w->base, text, n);
    w->base[n] = '\n';
    w->len = n + 1;
    uv_buf_t b = uv_buf_init(w->base, (unsigned int)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&cc->tcp, &b, 1, on_ctl_written) != 0) {
        kt_free(w->base);
        kt_free(w);
        ctl_close(cc);
    }
}

static void ctl_command(ctl_conn *cc, const char *cmd)
{
    proxy *p = cc->p;
    char reply[256];
    if (strcmp(cmd, "cut") == 0) {
        proxy_set_mode(p, MODE_CUT);
    } else if (strcmp(cmd, "blackhole") == 0) {
        proxy_set_mode(p, MODE_BLACKHOLE);
    } else if (strcmp(cmd, "restore") == 0) {
        proxy_set_mode(p, MODE_PASS);
    } else if (strncmp(cmd, "rate ", 5) == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long r = strtoull(cmd + 5, &end, 10);
        if (errno != 0 || end == cmd + 5 || *end != '\0') {
            ctl_reply(cc, "error rate: not a number of bytes per second");
            return;
        }
        proxy_set_rate(p, (uint64_t)r);
        (void)snprintf(reply, sizeof(reply), "ok rate %" PRIu64, p->rate_bps);
        ctl_reply(cc, reply);
        return;
    } else if (strcmp(cmd, "status") != 0) {
        ctl_reply(cc, "error unknown command");
        return;
    }
    if (strcmp(cmd, "status") == 0) {
        uint64_t pending = 0;
        for (const conn *c = p->conns; c != NULL; c = c->next) {
            pending += c->cli.pending_bytes + c->up.pending_bytes;
        }
        (void)snprintf(reply, sizeof(reply),
                       "ok %s conns=%" PRIu64 " accepted=%" PRIu64 " refused=%" PRIu64
                       " up_bytes=%" PRIu64 " down_bytes=%" PRIu64 " pending=%" PRIu64,
                       mode_name(p->mode), p->n_conns, p->accepted, p->refused, p->up_bytes,
                       p->down_bytes, pending);
    } else {
        (void)snprintf(reply, sizeof(reply), "ok %s", mode_name(p->mode));
    }
    ctl_reply(cc, reply);
}

static void on_ctl_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    ctl_conn *cc = stream->data;
    if (nread < 0) {
        kt_free(buf->base);
        ctl_close(cc);
        return;
    }
    for (ssize_t i = 0; i < nread && !cc->closing; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            cc->line[cc->len] = '\0';
            if (cc->len > 0 && cc->line[cc->len - 1] == '\r') {
                cc->line[cc->len - 1] = '\0';
            }
            ctl_command(cc, cc->line);
            cc->len = 0;
        } else if (cc->len >= PROXY_CTL_LINE) {
            KT_LOG(KT_LOG_WARN, "PROXY-CTL-LINE-TOO-LONG", "max=%d", PROXY_CTL_LINE);
            ctl_close(cc);
        } else {
            cc->line[cc->len++] = ch;
        }
    }
    kt_free(buf->base);
}

static void on_ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = kt_xmalloc(512);
    buf->len = 512;
}

static void on_ctl_accept(uv_stream_t *server, int status)
{
    proxy *p = server->data;
    if (status != 0) {
        return;
    }
    ctl_conn *cc = kt_xcalloc(1, sizeof(*cc));
    cc->p = p;
    (void)uv_tcp_init(p->loop, &cc->tcp);
    cc->tcp.data = cc;
    cc->next = p->ctls;
    p->ctls = cc;
    if (uv_accept(server, (uv_stream_t *)&cc->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&cc->tcp, on_ctl_alloc, on_ctl_read) != 0) {
        ctl_close(cc);
    }
}

/* ---- start / stop -------------------------------------------------------- */

static void on_plain_closed(uv_handle_t *h)
{
    (void)h;
}

static void proxy_stop(proxy *p)
{
    if (p->stopping) {
        return;
    }
    p->stopping = true;
    KT_LOG(KT_LOG_NOTICE, "PROXY-STOP", "conns=%" PRIu64, p->n_conns);
    for (conn *c = p->conns; c != NULL; c = c->next) {
        conn_close(c, true);
    }
    for (ctl_conn *cc = p->ctls; cc != NULL; cc = cc->next) {
        ctl_close(cc);
    }
    uv_close((uv_handle_t *)&p->listener, on_plain_closed);
    uv_close((uv_handle_t *)&p->ctl, on_plain_closed);
    uv_close((uv_handle_t *)&p->sigterm, on_plain_closed);
    uv_close((uv_handle_t *)&p->sigint, on_plain_closed);
    (void)uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, on_plain_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    proxy_stop(h->data);
}

/* Bind h (initialised) to 127.0.0.1:port and listen; write the bound port to path (atomically). */
static int listen_on(uv_tcp_t *h, int port, uv_connection_cb cb, const char *path)
{
    struct sockaddr_in a;
    struct sockaddr_storage bound;
    int len = (int)sizeof(bound);
    char tmp[4096];
    int rc;
    rc = uv_ip4_addr("127.0.0.1", port, &a);
    if (rc == 0) {
        rc = uv_tcp_bind(h, (const struct sockaddr *)&a, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)h, 128, cb);
    }
    if (rc == 0) {
        rc = uv_tcp_getsockname(h, (struct sockaddr *)&bound, &len);
    }
    if (rc != 0) {
        KT_LOG(KT_LOG_ERR, "PROXY-LISTEN-FAILED", "port=%d err=%s", port, uv_strerror(rc));
        return -1;
    }
    if (path == NULL) {
        return 0;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        KT_LOG(KT_LOG_ERR, "PROXY-PORT-FILE", "path too long: %s", path);
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        KT_LOG(KT_LOG_ERR, "PROXY-PORT-FILE", "path=%s errno=%d", tmp, errno);
        return -1;
    }
    fprintf(f, "%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        KT_LOG(KT_LOG_ERR, "PROXY-PORT-FILE", "path=%s errno=%d", path, errno);
        return -1;
    }
    return 0;
}

static int parse_upstream(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long port;
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || colon == s) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
        return -1;
    }
    return uv_ip4_addr(host, (int)port, out) == 0 ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: faultproxy --upstream HOST:PORT --port-file FILE --ctl-port-file FILE"
                    " [--listen-port N] [--log-level LEVEL]\n");
}

int main(int argc, char **argv)
{
    proxy p;
    uv_loop_t loop;
    const char *upstream = NULL;
    const char *port_file = NULL;
    const char *ctl_file = NULL;
    int listen_port = 0;
    int rc = 1;
    memset(&p, 0, sizeof(p));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--upstream") == 0) {
            upstream = v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--ctl-port-file") == 0) {
            ctl_file = v;
        } else if (strcmp(a, "--listen-port") == 0) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (end == v || *end != '\0' || n < 0 || n > 65535) {
                fprintf(stderr, "faultproxy: --listen-port: not a port: %s\n", v);
                return 2;
            }
            listen_port = (int)n;
        } else if (strcmp(a, "--log-level") == 0) {
            int lvl = kt_log_level_parse(v);
            if (lvl < 0) {
                fprintf(stderr, "faultproxy: --log-level: unknown level: %s\n", v);
                return 2;
            }
            (void)kt_log_set_level((kt_log_level)lvl);
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (upstream == NULL || port_file == NULL || ctl_file == NULL) {
        usage();
        return 2;
    }
    if (parse_upstream(upstream, &p.upstream) != 0) {
        fprintf(stderr, "faultproxy: --upstream: not a numeric IPv4 HOST:PORT: %s\n", upstream);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&loop) != 0) {
        return 1;
    }
    p.loop = &loop;
    p.mode = MODE_PASS;
    (void)uv_timer_init(&loop, &p.tick);
    p.tick.data = &p;
    (void)uv_signal_init(&loop, &p.sigterm);
    (void)uv_signal_init(&loop, &p.sigint);
    p.sigterm.data = &p;
    p.sigint.data = &p;
    (void)uv_signal_start(&p.sigterm, on_signal, SIGTERM);
    (void)uv_signal_start(&p.sigint, on_signal, SIGINT);
    (void)uv_tcp_init(&loop, &p.ctl);
    p.ctl.data = &p;
    (void)uv_tcp_init(&loop, &p.listener);
    p.listener.data = &p;
    /* The control port first: once the proxy port file exists, both are usable. */
    if (listen_on(&p.ctl, 0, on_ctl_accept, ctl_file) == 0 &&
        listen_on(&p.listener, listen_port, on_accept, port_file) == 0) {
        KT_LOG(KT_LOG_NOTICE, "PROXY-READY", "upstream=%s", upstream);
        rc = 0;
    } else {
        proxy_stop(&p);
    }
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        KT_LOG(KT_LOG_ERR, "PROXY-LOOP-CLOSE", "handles still open");
        rc = 1;
    }
    return rc;
}
