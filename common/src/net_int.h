/*
 * net_int.h — internals shared by net.c (context, HTTP server) and net_ws.c
 * (WebSocket server endpoints and clients). Not a public header.
 *
 * Invariants:
 *   - Every live kt_ws_conn is on net->conns; it leaves the list exactly when
 *     its on_close runs (net__ws_finish), and its memory is freed right after.
 *   - Every live kt_http_req is on net->reqs until freed.
 *   - lws user data never outlives what it points at: a server wsi's pss
 *     holds a conn/req pointer that is cleared before that object is freed;
 *     a client wsi's user pointer (the conn) is cleared with lws_set_wsi_user.
 *
 * Thread: loop thread only.
 */
#ifndef KT_COMMON_NET_INT_H
#define KT_COMMON_NET_INT_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kt/buf.h"
#include "kt/metrics.h"
#include "kt/net.h"

/* Bytes handed to one lws_write (HTTP body chunk, WebSocket fragment). */
#define NET_CHUNK (64u * 1024u)

typedef struct net_hdr {
    char *name; /* lower case, no colon */
    char *value;
} net_hdr;

typedef struct net_hdrs {
    net_hdr *v;
    size_t n;
} net_hdrs;

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    size_t off; /* bytes already handed to lws */
    bool text;
    unsigned char buf[]; /* LWS_PRE headroom, then len bytes */
} ws_msg;

typedef struct retry_policy {
    struct retry_policy *next;
    lws_retry_bo_t bo;
} retry_policy;

typedef struct client_vhost {
    struct client_vhost *next;
    char *key;
    struct lws_vhost *vh;
} client_vhost;

typedef struct ws_ep {
    struct ws_ep *next;
    kt_http_server *srv;
    char *path;
    char *subprotocol;
    kt_ws_opts opts;
} ws_ep;

typedef struct net_metrics {
    kt_metric *http_requests;
    kt_metric *http_class[6]; /* index status / 100; 0 unused */
    kt_metric *http_too_big;
    kt_metric *ws_open;
    kt_metric *ws_rx_msgs;
    kt_metric *ws_rx_bytes;
    kt_metric *ws_tx_msgs;
    kt_metric *ws_tx_bytes;
    kt_metric *ws_too_big;
    kt_metric *ws_connect_fail;
    kt_metric *ws_eagain;
    kt_metric *ws_text_refused;
    kt_metric *ws_aborted;
} net_metrics;

struct kt_net {
    uv_loop_t *loop;
    uv_thread_t owner; /* the loop thread (the one that called kt_net_new) */
    struct lws_context *ctx;
    net_metrics m;
    kt_http_server *servers;
    client_vhost *cvhosts;
    retry_policy *retries;
    kt_ws_conn *conns;    /* doubly linked, all live conns */
    kt_http_req *reqs;    /* doubly linked, all live requests */
    kt_ws_conn *deferred; /* conns whose failure is reported from defer_timer */
    uv_timer_t defer_timer;
    uv_timer_t reaper; /* shutdown: waits for lws handles, then frees */
    /* uv_poll watchers lws abandoned on failed connects (net.c), closed from orphan_timer */
    uv_poll_t *orphans[16];
    size_t n_orphans;
    uv_timer_t orphan_timer;
    bool freeing;
    bool no_tls;            /* kt_net_opts.no_tls: OpenSSL never initialised */
    unsigned char *scratch; /* LWS_PRE + NET_CHUNK */
    const struct lws_protocols *client_protocols;
};

struct kt_http_server {
    kt_http_server *next;
    kt_net *net;
    char *name;
    char *bind_addr;
    int port;
    char *tls_cert;
    char *tls_key;
    char *tls_client_ca;
    size_t max_body;
    size_t max_header;
    uint32_t idle_timeout_s;
    struct route *routes;
    ws_ep *eps;
    size_t n_eps;
    struct lws_protocols *protocols;
    lws_retry_bo_t retry;
    struct lws_vhost *vh;
    bool started;
};

typedef enum ws_state { WS_CONNECTING, WS_OPEN, WS_CLOSING, WS_DONE } ws_state;

/* Server wsi per-session data. */
typedef struct ws_pss {
    kt_ws_conn *conn;
} ws_pss;

struct kt_ws_conn {
    kt_ws_conn *prev, *next; /* net->conns */
    kt_ws_conn *defer_next;
    kt_net *net;
    struct lws *wsi;
    ws_pss *pss; /* server side */
    kt_ws_opts opts;
    bool is_client;
    ws_state state;
    bool opened;     /* on_open was called */
    bool in_connect; /* inside lws_client_connect_via_info */
    bool failed;     /* client connect failure recorded */
    bool in_accept;  /* inside on_accept: custom headers readable */
    bool want_drain;
    bool close_requested;
    bool close_sent; /* our close frame is out: waiting for the peer's */
    int close_code;
    char close_reason[124];
    int end_code; /* code for on_close */
    char end_reason[160];
    ws_msg *q_head, *q_tail;
    size_t queued;
    kt_buf rx;
    void *user;
    char peer[280]; /* "ip:port", or the URL's "host:port" for clients */
    char *path;
    char *query;
    net_hdrs hdrs;
    /* client */
    const lws_retry_bo_t *retry; /* owned by the kt_net (outlives every wsi) */
    struct resolve *resolving;   /* pending uv_getaddrinfo, or NULL */
    struct lws_vhost *cvh;
    int port;
    int ssl_flags;
    char *url_path; /* path plus ?query, as sent */
    char *subprotocol;
    char *host;
    char *hdr_name; /* "authorization:" form */
    char *hdr_value;
};

/* Debug builds check that kt_net is only used from its loop thread (STYLE.md §8). */
#define NET_ASSERT_LOOP(net) \
    KT_DEBUG_ASSERT(uv_thread_equal(&(net)->owner, &(uv_thread_t){ uv_thread_self() }))

/* net.c, used by net_ws.c */
void net__log_lws(int level, const char *line);
void net__copy_headers(struct lws *wsi, net_hdrs *h);
const char *net__hdr_get(net_hdrs *h, struct lws *wsi, bool live, const char *name);
void net__hdrs_free(net_hdrs *h);
void net__peer_name(struct lws *wsi, char *out, size_t cap);
void net__copy_query(struct lws *wsi, char **out);
void net__set_retry(lws_retry_bo_t *r, uint32_t ping_s, uint32_t idle_s);
/* A policy with these settings owned by net (shared, freed with net); NULL when pings are off. */
const lws_retry_bo_t *net__retry(kt_net *net, uint32_t ping_s, uint32_t idle_s);
/* Close the uv_poll watcher lws 4.1.6 abandons when a client connect fails (see net.c). */
void net__reap_failed_connect_watcher(struct lws *wsi);

/* net_ws.c, used by net.c */
int net__ws_server_cb(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
int net__ws_client_cb(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
/* Report on_close for c (once) and free it. */
void net__ws_finish(kt_ws_conn *c, int code, const char *reason);
void net__ws_defer_cb(uv_timer_t *t);

#endif
