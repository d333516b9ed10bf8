/*
 * hub/redis.c — KTWIN's graph cache keys pushed to Redis (see redis.h).
 *
 * DESIGN
 * One publish round at a time: MULTI, SET twin_graph, SET each changed
 * twin_graph.<iface>, DEL each vanished one, EXEC. What was published is
 * remembered as (interface, FNV-1a hash of its JSON), sorted by name; a
 * round compares the current per-interface JSON with it, so only changed
 * keys are written. The remembered state is replaced when EXEC answers;
 * after an error or a reconnect it is dropped, so the next round writes
 * everything. A change arriving while a round is in flight marks the
 * state dirty and another round follows the EXEC reply.
 *
 * Lifetime: hiredis frees its context itself after the connect callback
 * reports a failure and after the disconnect callback, so r->ac is cleared
 * there and never freed twice. The struct is freed in the close callback
 * of the last of its two timers, after redisAsyncFree has run every pending callback.
 *
 * Thread: loop only. Ownership: see redis.h.
 */
#define KT_LOG_MOD "redis"
#include "hub/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/graph.h"

#define KEY_GRAPH "twin_graph"
#define JSON_MAX  ((size_t)1 << 34)

typedef struct pub_entry {
    char *iface;
    uint64_t hash;
} pub_entry;

typedef struct pub_state {
    pub_entry *items;
    size_t n;
    size_t cap;
} pub_state;

struct hub_redis {
    uv_loop_t *loop;
    hub_graph *graph;
    char *host;
    int port;
    int db;
    redisAsyncContext *ac;
    int connected;
    int stopping;
    uv_timer_t timer;     /* reconnect */
    uv_timer_t pub_timer; /* coalesces graph changes into one publish round */
    uint64_t publish_delay_ms;
    int n_open; /* handles not yet closed */
    uint64_t min_ms, max_ms;
    unsigned attempt;
    uint64_t rng;
    pub_state published;
    int have_published; /* 0: the next round writes every key */
    pub_state pending;  /* the state a round in flight will leave */
    int in_flight;
    int dirty;
    size_t pending_keys;
    double build_ms; /* time publish() spent building the round */
    uint64_t rounds;
    kt_metric *m_publish;
    kt_metric *m_errors;
    kt_metric *m_connected;
};

static void connect_now(hub_redis *r);
static void publish(hub_redis *r);

/* ---- libuv event glue --------------------------------------------------------------
 * Our own instead of hiredis 0.14's adapters/libuv.h: that adapter ignores a
 * poll callback with status < 0, which libuv delivers for a refused
 * connect (POLLERR), so a connect to a Redis that is down never completed
 * and the hub never retried. Here an error is handed to hiredis, which
 * reads SO_ERROR and reports the failure through the connect callback.
 */
typedef struct uv_events {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    int events;
} uv_events;

static void ev_on_poll(uv_poll_t *h, int status, int events)
{
    uv_events *p = h->data;
    if (status < 0) {
        if (p->ac != NULL) {
            if (!(p->ac->c.flags & REDIS_CONNECTED)) {
                redisAsyncHandleWrite(p->ac); /* completes the connect: reports the error */
            } else {
                redisAsyncHandleRead(p->ac); /* reads the EOF / error */
            }
        }
        return;
    }
    if (p->ac != NULL && (events & UV_READABLE)) {
        redisAsyncHandleRead(p->ac);
    }
    if (p->ac != NULL && (events & UV_WRITABLE)) {
        redisAsyncHandleWrite(p->ac);
    }
}

static void ev_update(uv_events *p)
{
    if (p->events != 0) {
        (void)uv_poll_start(&p->poll, p->events, ev_on_poll);
    } else {
        (void)uv_poll_stop(&p->poll);
    }
}

static void ev_add_read(void *priv)
{
    uv_events *p = priv;
    p->events |= UV_READABLE;
    ev_update(p);
}

static void ev_del_read(void *priv)
{
    uv_events *p = priv;
    p->events &= ~UV_READABLE;
    ev_update(p);
}

static void ev_add_write(void *priv)
{
    uv_events *p = priv;
    p->events |= UV_WRITABLE;
    ev_update(p);
}

static void ev_del_write(void *priv)
{
    uv_events *p = priv;
    p->events &= ~UV_WRITABLE;
    ev_update(p);
}

static void ev_on_closed(uv_handle_t *h)
{
    kt_free(h->data);
}

static void ev_cleanup(void *priv)
{
    uv_events *p = priv;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, ev_on_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL) {
        return REDIS_ERR;
    }
    uv_events *p = kt_xcalloc(1, sizeof(*p));
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        kt_free(p);
        return REDIS_ERR;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return REDIS_OK;
}

/* ---- state ------------------------------------------------------------------------- */

static void state_clear(pub_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        kt_free(s->items[i].iface);
    }
    s->n = 0;
}

static void state_fini(pub_state *s)
{
    state_clear(s);
    kt_free(s->items);
    memset(s, 0, sizeof(*s));
}

static void state_push(pub_state *s, const char *iface, uint64_t hash)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->items = kt_xrealloc(s->items, s->cap * sizeof(*s->items));
    }
    s->items[s->n].iface = kt_xstrdup(iface);
    s->items[s->n].hash = hash;
    s->n++;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const pub_entry *)a)->iface, ((const pub_entry *)b)->iface);
}

static const pub_entry *state_find(const pub_state *s, const char *iface)
{
    if (s->n == 0) {
        return NULL;
    }
    pub_entry key = { (char *)(uintptr_t)iface, 0 };
    return bsearch(&key, s->items, s->n, sizeof(*s->items), entry_cmp);
}

static uint64_t fnv1a(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- reconnect ---------------------------------------------------------------------- */

static uint64_t next_rand(hub_redis *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static void on_timer(uv_timer_t *t)
{
    hub_redis *r = t->data;
    if (!r->stopping) {
        connect_now(r);
    }
}

static void schedule_reconnect(hub_redis *r)
{
    if (r->stopping) {
        return;
    }
    uint64_t cap = r->min_ms;
    for (unsigned i = 0; i < r->attempt && cap < r->max_ms; i++) {
        cap *= 2;
    }
    if (cap > r->max_ms) {
        cap = r->max_ms;
    }
    if (r->attempt < 63) {
        r->attempt++;
    }
    uint64_t delay = next_rand(r) % (cap + 1); /* full jitter */
    if (delay < 10) {
        delay = 10;
    }
    (void)uv_timer_start(&r->timer, on_timer, delay, 0);
}

static void on_keys(redisAsyncContext *ac, void *reply_p, void *priv)
{
    (void)priv;
    hub_redis *r = ac->data;
    redisReply *reply = reply_p;
    r->in_flight = 0;
    if (r->stopping) {
        return;
    }
    state_clear(&r->published);
    r->have_published = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        size_t plen = strlen(KEY_GRAPH ".");
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            if (e->type == REDIS_REPLY_STRING && (size_t)e->len > plen &&
                strncmp(e->str, KEY_GRAPH ".", plen) == 0) {
                state_push(&r->published, e->str + plen, 0); /* hash 0: rewritten if still live */
            }
        }
        if (r->published.n > 1) {
            qsort(r->published.items, r->published.n, sizeof(*r->published.items), entry_cmp);
        }
        r->have_published = 1;
    } else if (reply != NULL) {
        kt_metrics_inc(r->m_errors);
    }
    r->dirty = 0;
    publish(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    hub_redis *r = ac->data;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees it */
        kt_metrics_inc(r->m_errors);
        KT_LOG(r->attempt <= 1 ? KT_LOG_WARN : KT_LOG_DEBUG, "REDIS-CONNECT-FAIL",
               "host=%s port=%d err=\"%s\" attempt=%u", r->host, r->port, ac->errstr, r->attempt);
        schedule_reconnect(r);
        return;
    }
    r->connected = 1;
    r->attempt = 0;
    r->have_published = 0;
    kt_metrics_set(r->m_connected, 1);
    KT_LOG(KT_LOG_NOTICE, "REDIS-CONNECTED", "host=%s port=%d db=%d", r->host, r->port, r->db);
    if (r->db != 0) {
        (void)redisAsyncCommand(r->ac, NULL, NULL, "SELECT %d", r->db);
    }
    /*
     * Learn which per-interface keys Redis holds, so keys of interfaces that
     * lost their last instance while we were away are deleted too (KTWIN's
     * keys expired; ours have no TTL). A handful of keys: KEYS is fine.
     */
    r->in_flight = 1;
    r->dirty = 0;
    if (redisAsyncCommand(r->ac, on_keys, NULL, "KEYS " KEY_GRAPH ".*") != REDIS_OK) {
        r->in_flight = 0;
        publish(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    hub_redis *r = ac->data;
    r->ac = NULL; /* hiredis frees it */
    r->connected = 0;
    r->in_flight = 0;
    r->have_published = 0;
    kt_metrics_set(r->m_connected, 0);
    if (r->stopping) {
        return;
    }
    kt_metrics_inc(r->m_errors);
    KT_LOG(KT_LOG_WARN, "REDIS-CONN-LOST", "host=%s port=%d status=%d err=\"%s\"", r->host, r->port,
           status, ac->errstr);
    schedule_reconnect(r);
}

static void connect_now(hub_redis *r)
{
    KT_LOG(KT_LOG_DEBUG, "REDIS-CONNECTING", "host=%s port=%d attempt=%u", r->host, r->port,
           r->attempt);
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        kt_metrics_inc(r->m_errors);
        schedule_reconnect(r);
        return;
    }
    if (ac->err != 0) {
        kt_metrics_inc(r->m_errors);
        KT_LOG(r->attempt == 0 ? KT_LOG_WARN : KT_LOG_DEBUG, "REDIS-CONNECT-FAIL",
               "host=%s port=%d err=\"%s\"", r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    if (ev_attach(ac, r->loop) != REDIS_OK) {
        kt_metrics_inc(r->m_errors);
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    (void)redisAsyncSetConnectCallback(ac, on_connect);
    (void)redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
}

/* ---- publishing --------------------------------------------------------------------- */

static void on_exec(redisAsyncContext *ac, void *reply_p, void *priv)
{
    (void)ac;
    (void)priv;
    hub_redis *r = ac->data;
    redisReply *reply = reply_p;
    r->in_flight = 0;
    int ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; ok && i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_ERROR) {
            ok = 0;
        }
    }
    if (!ok) {
        kt_metrics_inc(r->m_errors);
        r->have_published = 0;
        state_clear(&r->pending);
        if (reply != NULL && !r->stopping) {
            KT_LOG(KT_LOG_ERR, "REDIS-PUBLISH-FAIL", "reply_type=%d err=\"%s\"", reply->type,
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "error inside EXEC");
        }
        return;
    }
    /* The pending state becomes the published one. */
    pub_state tmp = r->published;
    r->published = r->pending;
    r->pending = tmp;
    state_clear(&r->pending);
    r->have_published = 1;
    kt_metrics_add(r->m_publish, r->pending_keys);
    r->rounds++;
    KT_LOG(KT_LOG_DEBUG, "REDIS-PUBLISHED", "keys=%zu revision=%llu build_ms=%.1f", r->pending_keys,
           (unsigned long long)hub_graph_revision(r->graph), r->build_ms);
    if (r->dirty && r->connected && !r->stopping) {
        r->dirty = 0;
        publish(r);
    }
}

static void publish(hub_redis *r)
{
    if (!r->connected || r->ac == NULL || r->stopping) {
        return; /* the connect publishes everything */
    }
    if (r->in_flight) {
        r->dirty = 1;
        return;
    }
    uint64_t t0 = kt_clock_mono_ns();
    const model *m = hub_graph_model(r->graph);
    size_t glen = 0;
    const char *graph_json = hub_graph_json(r->graph, &glen);
    if (graph_json == NULL) {
        kt_metrics_inc(r->m_errors);
        return;
    }
    state_clear(&r->pending);
    r->pending_keys = 0;
    if (redisAsyncCommand(r->ac, NULL, NULL, "MULTI") != REDIS_OK) {
        kt_metrics_inc(r->m_errors);
        return;
    }
    (void)redisAsyncCommand(r->ac, NULL, NULL, "SET %s %b", KEY_GRAPH, graph_json, glen);
    r->pending_keys++;
    kt_buf b;
    kt_buf_init(&b, JSON_MAX);
    size_t n_if = model_n_ifaces(m);
    for (size_t i = 0; i < n_if; i++) {
        const model_iface *f = model_iface_at(m, i);
        if (f->n_instances == 0) {
            continue;
        }
        kt_buf_reset(&b);
        if (model_graph_iface_to_json(m, f->name, &b) != KT_OK) {
            kt_metrics_inc(r->m_errors);
            continue;
        }
        uint64_t h = fnv1a(b.data, b.len);
        state_push(&r->pending, f->name, h);
        const pub_entry *old = r->have_published ? state_find(&r->published, f->name) : NULL;
        if (old != NULL && old->hash == h) {
            continue;
        }
        (void)redisAsyncCommand(r->ac, NULL, NULL, "SET " KEY_GRAPH ".%s %b", f->name, b.data,
                                b.len);
        r->pending_keys++;
    }
    kt_buf_fini(&b);
    if (r->pending.n > 1) {
        qsort(r->pending.items, r->pending.n, sizeof(*r->pending.items), entry_cmp);
    }
    if (r->have_published) {
        for (size_t i = 0; i < r->published.n; i++) {
            if (state_find(&r->pending, r->published.items[i].iface) == NULL) {
                (void)redisAsyncCommand(r->ac, NULL, NULL, "DEL " KEY_GRAPH ".%s",
                                        r->published.items[i].iface);
                r->pending_keys++;
            }
        }
    }
    if (redisAsyncCommand(r->ac, on_exec, NULL, "EXEC") != REDIS_OK) {
        kt_metrics_inc(r->m_errors);
        return;
    }
    r->in_flight = 1;
    r->build_ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
}

static void on_graph_changed(
    hub_graph *g, uint64_t revision, const hub_change *changes, size_t n_changes, void *user)
{
    (void)g;
    (void)revision;
    (void)changes;
    (void)n_changes;
    publish(user);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static kt_status parse_url(hub_redis *r, const char *url, kt_err *err)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        return kt_err_set(err, KT_EINVAL, "redis.url %s: must start with redis://", url);
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        return kt_err_set(err, KT_EINVAL, "redis.url: passwords are not supported");
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen > 255) {
        return kt_err_set(err, KT_EINVAL, "redis.url %s: no host", url);
    }
    r->host = kt_xstrndup(p, hlen);
    p += hlen;
    r->port = 6379;
    if (*p == ':') {
        char *end = NULL;
        unsigned long v = strtoul(p + 1, &end, 10);
        if (end == p + 1 || v == 0 || v > 65535 || (*end != '\0' && *end != '/')) {
            return kt_err_set(err, KT_EINVAL, "redis.url %s: bad port", url);
        }
        r->port = (int)v;
        p = end;
    }
    r->db = 0;
    if (*p == '/' && p[1] != '\0') {
        char *end = NULL;
        unsigned long v = strtoul(p + 1, &end, 10);
        if (end == p + 1 || *end != '\0' || v > 1000) {
            return kt_err_set(err, KT_EINVAL, "redis.url %s: bad database number", url);
        }
        r->db = (int)v;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        return kt_err_set(err, KT_EINVAL, "redis.url %s: unexpected \"%s\"", url, p);
    }
    return KT_OK;
}

static void on_timer_closed(uv_handle_t *h)
{
    hub_redis *r = h->data;
    if (--r->n_open > 0) {
        return;
    }
    state_fini(&r->published);
    state_fini(&r->pending);
    kt_free(r->host);
    kt_free(r);
}

kt_status hub_redis_new(hub_redis **out,
                        uv_loop_t *loop,
                        hub_graph *graph,
                        const hub_redis_opts *opts,
                        kt_metrics *metrics,
                        kt_err *err)
{
    *out = NULL;
    hub_redis *r = kt_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->graph = graph;
    r->min_ms = opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 100;
    r->max_ms = opts->reconnect_max_ms >= r->min_ms ? opts->reconnect_max_ms : r->min_ms;
    r->rng = kt_clock_mono_ns() | 1u;
    kt_status st = parse_url(r, opts->url != NULL ? opts->url : "", err);
    if (st == KT_OK && metrics != NULL) {
        st = kt_metrics_counter(&r->m_publish, metrics, "ktwin_hub_redis_publish_total",
                                "Graph cache keys written or deleted in Redis", NULL, err);
        if (st == KT_OK) {
            st = kt_metrics_counter(&r->m_errors, metrics, "ktwin_hub_redis_errors_total",
                                    "Redis connect failures, lost connections and failed publishes",
                                    NULL, err);
        }
        if (st == KT_OK) {
            st = kt_metrics_gauge(&r->m_connected, metrics, "ktwin_hub_redis_connected",
                                  "1 while the hub is connected to Redis", NULL, err);
        }
    }
    if (st != KT_OK) {
        kt_free(r->host);
        kt_free(r);
        return st;
    }
    r->publish_delay_ms = opts->publish_delay_ms;
    (void)uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    (void)uv_timer_init(loop, &r->pub_timer);
    r->pub_timer.data = r;
    r->n_open = 2;
    hub_graph_subscribe(graph, on_graph_changed, r);
    connect_now(r);
    *out = r;
    return KT_OK;
}

void hub_redis_free(hub_redis *r)
{
    if (r == NULL || r->stopping) {
        return;
    }
    r->stopping = 1;
    hub_graph_unsubscribe(r->graph, on_graph_changed, r);
    if (r->ac != NULL) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks run with NULL replies; then on_disconnect */
    }
    (void)uv_timer_stop(&r->timer);
    (void)uv_timer_stop(&r->pub_timer);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->pub_timer, on_timer_closed);
}

uint64_t hub_redis_rounds(const hub_redis *r)
{
    return r->rounds;
}
