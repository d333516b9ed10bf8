/*
 * kt/net.h — HTTP server, WebSocket server and WebSocket clients on a libuv
 * loop, built on libwebsockets 4.1.6 (LWS_SERVER_OPTION_LIBUV + foreign_loops).
 *
 * One kt_net per loop owns one lws_context. On it live any number of HTTP
 * servers (listening vhosts; each may carry WebSocket endpoints) and any
 * number of WebSocket clients. The agent runs a server and a client on the
 * same kt_net; the hub test runs 200+ clients on one kt_net.
 *
 *   kt_net *net; kt_net_new(&net, &loop, NULL, &err);
 *   kt_http_server *srv;
 *   kt_http_server_new(&srv, net, &(kt_http_server_opts){ .port = 0 }, &err);
 *   kt_http_route(srv, KT_HTTP_GET, "/healthz", 0, on_health, app, &err);
 *   kt_ws_endpoint(srv, "/sync", "ktwin-sync.v1", &ws_opts, &err);
 *   kt_http_server_start(srv, &err);            // binds; port readable from here on
 *   ... uv_run(&loop, UV_RUN_DEFAULT) ...
 *
 * SHUTDOWN (exactly this order; STYLE.md §8):
 *   1. stop intake of your own (timers, inboxes) as usual;
 *   2. kt_net_free(net): every open WebSocket gets its on_close (code 1001,
 *      reason "shutdown") synchronously inside this call, pending deferred
 *      HTTP requests are dropped (their kt_http_req pointers become invalid),
 *      the lws_context is destroyed and its uv handles are closed;
 *   3. run the loop until it returns (uv_run(loop, UV_RUN_DEFAULT)), which
 *      lets the handle close callbacks run and frees what is left;
 *   4. uv_loop_close(loop) then returns 0.
 * Never call kt_net_free from inside one of its callbacks; defer it (e.g. a
 * uv_timer/uv_idle or after uv_stop).
 *
 * OBJECT LIFETIMES
 *   - kt_http_server: owned by the kt_net, freed by kt_net_free (no separate free).
 *   - kt_http_req: owned by the kt_net. Handed to a route handler; it stays
 *     valid until the handler (or later code on the loop thread) calls
 *     exactly one kt_http_respond*; after that call it is invalid. A handler
 *     that does not respond before returning defers the response.
 *   - kt_ws_conn: owned by the kt_net. Valid from on_open (server side) or
 *     from kt_ws_client_new (client side) until on_close returns. on_close is
 *     called exactly once for each such conn — also for a client whose
 *     connect fails — and never synchronously inside kt_ws_client_new,
 *     kt_ws_conn_send or kt_ws_conn_close (only from the loop, or inside
 *     kt_net_free). Calling kt_ws_conn_close or kt_ws_conn_send inside any
 *     callback, including for the conn the callback is about, is safe.
 *
 * WIRE LIMITS AND PITFALLS handled here (toolchain.md): every send is copied
 * into a buffer with LWS_PRE headroom (client-side masking destroys the
 * buffer, so the user's bytes are never handed to lws); writes happen only
 * in WRITEABLE callbacks, in frames of at most 64 KiB, more than one only
 * while lws_send_pipe_choked() says the socket takes them (at most 256 KiB
 * per callback); fragmented / rx-buffer-split messages are reassembled and
 * delivered whole; messages over max_message_bytes close the connection with
 * 1009; close frames are exchanged before the socket closes (lws 4.1.6 would
 * lose ours on a reset); HTTP responses are written 64 KiB per WRITEABLE
 * callback, so a 100 MiB body never blocks the loop or needs a second copy
 * (kt_http_respond_take); "Expect: 100-continue" is answered; chunked request
 * bodies get 411 (lws 4.1.6 cannot read them).
 *
 * Logging: lws logs go into KT_LOG with id LWS-LOG (ERR/WARN levels by
 * default, rate-limited). Metrics (when kt_net_opts.metrics is set):
 * ktwin_net_http_requests_total, ktwin_net_http_responses_total{class="2xx"..},
 * ktwin_net_http_body_too_big_total, ktwin_net_ws_open (gauge),
 * ktwin_net_ws_{rx,tx}_{messages,bytes}_total, ktwin_net_ws_message_too_big_total,
 * ktwin_net_ws_connect_failures_total, ktwin_net_ws_send_eagain_total,
 * ktwin_net_ws_text_refused_total (binary_only endpoints/clients), and
 * ktwin_net_ws_aborted_total: opened connections that ended without a close
 * handshake (the peer vanished, the idle timeout, or bytes that are no
 * WebSocket framing, which lws answers with 1002), logged NET-WS-ABORTED.
 *
 * Thread: everything here is loop thread only (the thread running the
 * uv_loop given to kt_net_new). Other threads reach it through kt_inbox.
 */
#ifndef KT_COMMON_NET_H
#define KT_COMMON_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kt/err.h"
#include "kt/metrics.h"

typedef struct kt_net kt_net;
typedef struct kt_http_server kt_http_server;
typedef struct kt_http_req kt_http_req;
typedef struct kt_ws_conn kt_ws_conn;

/* ------------------------------------------------------------------ net */

typedef struct kt_net_opts {
    kt_metrics *metrics; /* optional, borrowed; must outlive the kt_net */
    int lws_log_mask;    /* LLL_* bits routed into KT_LOG; 0 = LLL_ERR | LLL_WARN */
    bool no_tls;         /* no https server nor wss client on this net: OpenSSL is never
                            initialised (its config, providers and error strings touch ~3 MiB
                            of libcrypto and heap); TLS servers and wss clients get KT_EINVAL */
    unsigned max_fds;    /* sockets lws may hold; 0 = the process's RLIMIT_NOFILE. lws
                            allocates and zeroes 16 bytes per fd up front: 16 MiB at a
                            container's usual limit of 1048576 */
} kt_net_opts;

/*
 * Create the lws context on loop (which the caller owns and runs). opts may
 * be NULL. Without opts->no_tls, OpenSSL is initialised here (lws' global
 * init); plain ws:// clients never create a TLS context (nor load the CA
 * store) either way. Returns KT_OK, or KT_EDEP (dep "lws") when lws refuses
 * the context. Thread: loop.
 */
kt_status kt_net_new(kt_net **out, uv_loop_t *loop, const kt_net_opts *opts, kt_err *err);

/*
 * Close everything (see SHUTDOWN above) and free. The caller must then run
 * the loop to completion before uv_loop_close. NULL is a no-op. Thread: loop,
 * never from inside a kt_net callback.
 */
void kt_net_free(kt_net *net);

/* The loop the kt_net runs on. */
uv_loop_t *kt_net_loop(const kt_net *net);

/* ----------------------------------------------------------- HTTP server */

typedef enum kt_http_method {
    KT_HTTP_GET = 1u << 0,
    KT_HTTP_POST = 1u << 1,
    KT_HTTP_PUT = 1u << 2,
    KT_HTTP_DELETE = 1u << 3,
    KT_HTTP_PATCH = 1u << 4,
    KT_HTTP_OPTIONS = 1u << 5,
    KT_HTTP_HEAD = 1u << 6 /* answered like GET; the body is not sent */
} kt_http_method;
#define KT_HTTP_ANY 0x7fu

/* Route flags. */
enum {
    KT_HTTP_PREFIX = 1u << 0 /* path is a prefix: "/api/v1/twins/" matches "/api/v1/twins/x" */
};

typedef struct kt_http_server_opts {
    const char *name;          /* vhost name in logs; NULL = "http" */
    const char *bind_addr;     /* numeric IPv4/IPv6 address; NULL = "127.0.0.1" */
    int port;                  /* 0 = ephemeral (read back with kt_http_server_port) */
    const char *tls_cert_file; /* PEM; with tls_key_file turns on TLS (https / wss) */
    const char *tls_key_file;
    const char *tls_client_ca_file; /* non-NULL: require client certs signed by this CA */
    size_t max_body_bytes;          /* request body cap; 0 = 1 MiB; over it -> 413. Bodies need
                                       Content-Length: chunked ones get 411 (lws 4.1.6) */
    size_t max_header_bytes;        /* request header cap; 0 = 8 KiB; over it -> 431. lws itself
                                       drops requests whose headers exceed 16 KiB (context-wide) */
    uint32_t idle_timeout_s;        /* idle keep-alive HTTP connections closed after; 0 = 60 */
} kt_http_server_opts;

/*
 * Route handler. Called on the loop thread once the whole request body has
 * arrived. Must call exactly one kt_http_respond* for req, now or later.
 */
typedef void (*kt_http_handler_cb)(kt_http_req *req, void *user);

/*
 * Create a server (not yet listening: add routes and WebSocket endpoints,
 * then kt_http_server_start). opts is copied (strings too). Returns KT_OK or
 * KT_EINVAL (TLS cert without key, or the reverse; TLS on a no_tls net).
 * Thread: loop.
 */
kt_status
kt_http_server_new(kt_http_server **out, kt_net *net, const kt_http_server_opts *opts, kt_err *err);

/*
 * Add a route: requests whose path equals path (or starts with it, with
 * KT_HTTP_PREFIX) and whose method is in methods (KT_HTTP_* bits) go to cb.
 * The longest matching path wins; exact beats prefix at equal length. A path
 * that matches some route but none for its method gets 405 with an Allow
 * header; no match gets 404. May be called before or after start. Returns
 * KT_OK or KT_EINVAL (path not starting with '/', methods 0, duplicate
 * path+flags with overlapping methods). Thread: loop.
 */
kt_status kt_http_route(kt_http_server *srv,
                        unsigned methods,
                        const char *path,
                        unsigned flags,
                        kt_http_handler_cb cb,
                        void *user,
                        kt_err *err);

/*
 * Bind and listen. Returns KT_OK; KT_EDEP (dep "lws") when the vhost cannot
 * be created (port in use, bad address, unreadable TLS files; lws logs the
 * detail under LWS-LOG); KT_EINVAL when already started or when another
 * server of this kt_net uses the same port (lws would share the socket).
 * Thread: loop.
 */
kt_status kt_http_server_start(kt_http_server *srv, kt_err *err);

/* The bound TCP port (after start), else 0. */
int kt_http_server_port(const kt_http_server *srv);

/* --- the request (all getters: borrowed, valid while req is) */

kt_http_method kt_http_req_method(const kt_http_req *req);
/* "GET", "POST", ... */
const char *kt_http_req_method_str(const kt_http_req *req);
/* Path without the query string, as sent (lws has already %-decoded it). */
const char *kt_http_req_path(const kt_http_req *req);
/* Query string without '?', "" when absent: the '&'-separated parts as lws decoded them. */
const char *kt_http_req_query(const kt_http_req *req);
/* First value of query parameter name, %-decoded; "" for "?flag"; NULL if absent. */
const char *kt_http_req_param(const kt_http_req *req, const char *name);
/*
 * A request header by case-insensitive name, or NULL. The headers lws
 * knows (authorization, content-type, content-length, accept, host,
 * user-agent, if-none-match, if-match, origin, cookie, x-forwarded-for, ...)
 * are copied with the request and readable until it is responded. Other
 * names (e.g. "x-request-id") can be read only inside the handler call
 * itself (the lws header storage is gone later); once read they stay cached.
 */
const char *kt_http_req_header(const kt_http_req *req, const char *name);
/* The buffered body (NUL-terminated for convenience, not counted); "" and 0 when empty. */
const uint8_t *kt_http_req_body(const kt_http_req *req, size_t *len_out);
/* Peer "ip:port" ("[ip6]:port" for IPv6). */
const char *kt_http_req_peer(const kt_http_req *req);
/* The server the request arrived on. */
kt_http_server *kt_http_req_server(const kt_http_req *req);

/*
 * Add a response header (e.g. "Location", "WWW-Authenticate", "ETag") to be
 * sent by the coming kt_http_respond*. Copied. Returns KT_OK or KT_EINVAL
 * (name/value with CR/LF or ':' in name). Thread: loop.
 */
kt_status kt_http_resp_header(kt_http_req *req, const char *name, const char *value);

/*
 * Respond with status, Content-Type content_type (NULL = none) and len
 * bytes of body (copied). The response is written over as many WRITEABLE
 * callbacks as it needs. After the call req is invalid, whatever the result.
 * Returns KT_OK, or KT_ECLOSED when the client had gone away (a deferred
 * response; nothing is sent). Thread: loop.
 */
kt_status kt_http_respond(
    kt_http_req *req, int status, const char *content_type, const void *body, size_t len);

/*
 * Like kt_http_respond, but takes ownership of body (allocated with
 * kt_malloc, e.g. from kt_buf_detach) instead of copying it: use it for
 * large bodies. body is freed by the net in every case. Thread: loop.
 */
kt_status kt_http_respond_take(
    kt_http_req *req, int status, const char *content_type, void *body, size_t len);

/* Respond with a small JSON error body {"error":{"code":status,"message":msg}}. */
kt_status kt_http_respond_error(kt_http_req *req, int status, const char *msg);

/* -------------------------------------------------------------- WebSocket */

/*
 * on_accept: server side, during the handshake (headers readable, including
 * custom ones). Return false to refuse: the handshake is dropped and the
 * client sees a failed connect; on_open/on_close never run for it.
 */
typedef bool (*kt_ws_accept_cb)(kt_ws_conn *c, void *user);
/* The connection is open: sends may start. */
typedef void (*kt_ws_open_cb)(kt_ws_conn *c, void *user);
/* One complete, reassembled message (binary or text); data borrowed for the call. */
typedef void (*kt_ws_message_cb)(kt_ws_conn *c, const uint8_t *data, size_t len, void *user);
/*
 * Part of a message arrived (a frame or a read of one) and more is to come:
 * so_far bytes of it are buffered. The peer is alive even when one message
 * takes longer than a heartbeat interval to cross a slow link.
 */
typedef void (*kt_ws_progress_cb)(kt_ws_conn *c, size_t so_far, void *user);
/* The send queue fell below half its cap after a send had returned KT_EAGAIN. */
typedef void (*kt_ws_drain_cb)(kt_ws_conn *c, void *user);
/*
 * The connection is gone (or never came up, client side). code: the close
 * code the peer sent, the one we sent, 1006 for a lost / failed connection,
 * 1009 for a message over the cap, 1001 at shutdown. reason: a short text
 * ("connect: connection refused", "peer closed", "message too big", ...),
 * never NULL. After return c is invalid.
 */
typedef void (*kt_ws_close_cb)(kt_ws_conn *c, int code, const char *reason, void *user);

/* Settings common to server endpoints and clients. */
typedef struct kt_ws_opts {
    size_t max_message_bytes; /* received message cap; 0 = 16 MiB; over it -> close 1009 */
    size_t max_queue_bytes;   /* send queue cap; 0 = 64 MiB; over it kt_ws_conn_send -> EAGAIN */
    /*
     * Keepalive: ping after ping_interval_s without valid traffic (0 = 30,
     * UINT32_MAX = never ping and never hang up); close (code 1006) when
     * nothing valid, not even a pong, came for idle_timeout_s (0 = 90). On a
     * server the policy is per listening server: the smallest values of its
     * endpoints apply to all of its connections.
     */
    uint32_t ping_interval_s;
    uint32_t idle_timeout_s;
    /*
     * Refuse text messages (a binary-only protocol such as ktwin-sync.v1):
     * the first text frame closes the connection with 1003, is counted in
     * ktwin_net_ws_text_refused_total and logged NET-WS-TEXT-REFUSED; it is
     * never delivered to on_message.
     */
    bool binary_only;
    kt_ws_accept_cb on_accept; /* server only, optional */
    kt_ws_open_cb on_open;
    kt_ws_message_cb on_message;
    kt_ws_progress_cb on_progress; /* optional */
    kt_ws_drain_cb on_drain;       /* optional */
    kt_ws_close_cb on_close;
    void *user; /* passed to every callback */
} kt_ws_opts;

/*
 * Serve WebSocket upgrades on path (exact match) for subprotocol (the client
 * must request it in Sec-WebSocket-Protocol). Must be called before
 * kt_http_server_start. opts is copied. Returns KT_OK or KT_EINVAL (bad
 * path/subprotocol, server already started, duplicate subprotocol).
 * Thread: loop.
 */
kt_status kt_ws_endpoint(kt_http_server *srv,
                         const char *path,
                         const char *subprotocol,
                         const kt_ws_opts *opts,
                         kt_err *err);

typedef struct kt_ws_client_opts {
    const char *url;           /* "ws://host:port/path?query" or "wss://..." (port optional) */
    const char *subprotocol;   /* required, e.g. "ktwin-sync.v1" */
    const char *tls_ca_file;   /* wss: verify the server against this CA; NULL = system store */
    bool tls_insecure;         /* wss: skip certificate and host name checks (tests only) */
    const char *tls_cert_file; /* wss: optional client certificate (mTLS) */
    const char *tls_key_file;
    const char *header_name;    /* optional extra handshake header, e.g. "Authorization" */
    const char *header_value;   /*   and its value, e.g. "Bearer abc" (never logged) */
    uint32_t connect_timeout_s; /* 0 = 10 */
    kt_ws_opts ws;
} kt_ws_client_opts;

/*
 * Start connecting (asynchronous: DNS and connect never block the loop).
 * *out is the connection at once; on_open follows on success, on_close
 * (code 1006, reason saying why) on failure. Returns KT_OK, or KT_EINVAL for
 * a bad URL / missing subprotocol / unreadable TLS files / wss on a no_tls
 * net, or KT_ECLOSED
 * while kt_net_free runs (then no conn and no callbacks). Thread: loop.
 */
kt_status
kt_ws_client_new(kt_ws_conn **out, kt_net *net, const kt_ws_client_opts *opts, kt_err *err);

/*
 * Queue one binary message (copied). Allowed once the conn is open; data
 * queued earlier goes first. Returns KT_OK; KT_EAGAIN when the queue would
 * exceed max_queue_bytes (nothing queued; on_drain follows later);
 * KT_ECLOSED when not open (connecting, closing, closed); KT_ETOOBIG when
 * len alone exceeds max_queue_bytes. Thread: loop.
 */
kt_status kt_ws_conn_send(kt_ws_conn *c, const void *data, size_t len);
/* Same for a text message (UTF-8 not checked). */
kt_status kt_ws_conn_send_text(kt_ws_conn *c, const void *data, size_t len);

/* Bytes queued and not yet handed to the kernel. */
size_t kt_ws_conn_queued_bytes(const kt_ws_conn *c);

/*
 * Close: messages queued before are still sent, then a close frame with code
 * (0 = 1000) and reason (may be NULL, truncated to 123 bytes). A conn still
 * connecting is abandoned. on_close follows from the loop (never inside this
 * call). Idempotent. Thread: loop.
 */
void kt_ws_conn_close(kt_ws_conn *c, int code, const char *reason);

/* true between on_open and the start of closing. */
bool kt_ws_conn_is_open(const kt_ws_conn *c);
/* true for client connections (kt_ws_client_new). */
bool kt_ws_conn_is_client(const kt_ws_conn *c);
void kt_ws_conn_set_user(kt_ws_conn *c, void *user);
void *kt_ws_conn_get_user(const kt_ws_conn *c);
/* Peer "ip:port" (server side; client side "host:port" of the URL). */
const char *kt_ws_conn_peer(const kt_ws_conn *c);
/*
 * Server side: the upgrade request's path, query string ("" if none) and
 * headers (as kt_http_req_header: well-known ones until on_close, others
 * only inside on_accept), valid from on_accept until on_close.
 * Client side: path and query of the URL; headers NULL.
 */
const char *kt_ws_conn_path(const kt_ws_conn *c);
const char *kt_ws_conn_query(const kt_ws_conn *c);
const char *kt_ws_conn_header(const kt_ws_conn *c, const char *name);

#endif
