/*
 * agent/dispatch.c — the agent's event dispatcher (see dispatch.h).
 *
 * DESIGN
 * - Routing state is derived lazily from the view and the cache: when the
 *   view's build counter moves, the route table (model_route_table_new) and
 *   the instance -> site map are rebuilt; when the cache's placement
 *   generation moves, the interface -> where map is reloaded. Both happen at
 *   the start of a top-level dispatch, never in the middle of one.
 * - Instance sites: model_placement_compute over the cached subgraph with
 *   this site as the only site. An instance labelled (or walked to) this
 *   site reads as here; every other instance reads as "no site", which the
 *   router turns into "send it up" for events produced here. Only the
 *   answer is kept (all instances here, or the sorted pointers of those
 *   here), not the placement result and its map of every instance name.
 * - Plugin emits are collected during the plugin call (the host is not
 *   re-entrant) and routed after it returns, at depth + 1.
 * - A top-level dispatch that is not inside the MQTT drain's outbox
 *   transaction opens its own, so one event's appends commit together.
 * - Service latency (ktwin_agent_service_latency_seconds{iface}): t0_ns is
 *   the monotonic start of the current top-level event (MQTT: its arrival,
 *   recv_wall_ms carried back onto the monotonic clock, so +-1 ms; ingress
 *   and hub: the dispatch call); a service's completion observes now - t0.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "dispatch"
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/placement.h"
#include "model/route.h"
#include "svc/merge.h"

#define DEFAULT_MAX_DEPTH 8
/* DISPATCH-DROP lines per second before they are suppressed (and counted). */
#define DROP_LOG_PER_S 10

/* Drop reasons: the router's, then the dispatcher's own. */
enum {
    R_INVALID = MODEL_DROP_NO_ROUTE + 1,
    R_DEPTH,
    R_SERVICE_BUSY,
    R_NO_ENDPOINT,
    R_SERVICE_FAILED,
    R_PUBLISH,
    R_NO_MQTT,
    R_NO_OUTBOX,
    R_TOO_MANY,
    R_NO_MODEL,
    R_INTERNAL,
    R_COUNT
};

static const char *reason_str(int r)
{
    switch (r) {
    case R_INVALID:
        return "invalid";
    case R_DEPTH:
        return "depth";
    case R_SERVICE_BUSY:
        return "service-busy";
    case R_NO_ENDPOINT:
        return "no-service-endpoint";
    case R_SERVICE_FAILED:
        return "service-failed";
    case R_PUBLISH:
        return "publish";
    case R_NO_MQTT:
        return "no-mqtt";
    case R_NO_OUTBOX:
        return "no-outbox";
    case R_TOO_MANY:
        return "too-many-destinations";
    case R_NO_MODEL:
        return "no-model";
    case R_INTERNAL:
        return "internal";
    default:
        return model_route_drop_str((model_route_drop)r);
    }
}

struct agent_dispatch {
    char *site;
    agent_view *view;
    agent_cache *cache;
    agent_outbox *outbox;
    agent_latest *latest;
    svc_plugin_host *plugins;
    svc_caller *caller;
    agent_dispatch_publish_cb publish;
    void *publish_user;
    kt_metrics *metrics;
    uint32_t max_depth;
    size_t max_data;

    /* routing state */
    uint64_t view_builds; /* agent_view_builds at the last table build; 0 = none */
    const model *m;
    model_route_table *table;
    /* Instances placed on this site (model_placement_compute, then dropped: its map of every
     * instance name was ~1.4 MiB for 11,861 instances): all of them, or the sorted
     * pointers of those here. sites_ok is 0 when the computation failed (none here). */
    int sites_ok, all_here;
    const model_instance **here;
    size_t n_here;
    uint64_t place_gen; /* placement generation of where_map; 0 = none */
    kt_map where_map;   /* iface -> (uintptr_t)(where + 1); keys in where_keys */
    char **where_keys;
    size_t n_where_keys;
    model_route_env env;

    svc_store_ops store_ops;
    svc_api_ops api_ops;

    agent_dispatch_stats stats;
    uint64_t drops[R_COUNT];
    kt_metric *m_drop[R_COUNT];
    kt_metric *m_origin[5];
    kt_metric *m_kind[MODEL_ROUTE_DROP + 1];
    kt_metric *m_service_fail;
    kt_map lat_map;        /* iface -> service latency histogram; keys owned */
    uint64_t t0_ns;        /* start of the current top-level event (monotonic) */
    kt_log_limit drop_log; /* DISPATCH-DROP lines per second */
};

/* ---- metrics and drops ---------------------------------------------------------- */

static const char *origin_str(agent_dispatch_origin o)
{
    switch (o) {
    case AGENT_DISPATCH_DEVICE:
        return "device";
    case AGENT_DISPATCH_INGRESS:
        return "ingress";
    case AGENT_DISPATCH_SERVICE:
        return "service";
    case AGENT_DISPATCH_HUB:
        return "hub";
    }
    return "unknown";
}

static double sample_latest(void *user)
{
    agent_dispatch *d = user;
    return (double)agent_latest_count(d->latest);
}

static void register_metrics(agent_dispatch *d)
{
    if (d->metrics == NULL) {
        return;
    }
    kt_err err = { 0 };
    for (int r = MODEL_DROP_UNKNOWN_IFACE; r < R_COUNT; r++) {
        const char *labels[] = { "reason", reason_str(r), NULL };
        kt_metrics_counter(&d->m_drop[r], d->metrics, "ktwin_agent_dispatch_dropped_total",
                           "Events (or one destination of one) not delivered, by reason", labels,
                           &err);
    }
    for (int o = AGENT_DISPATCH_DEVICE; o <= AGENT_DISPATCH_HUB; o++) {
        const char *labels[] = { "origin", origin_str((agent_dispatch_origin)o), NULL };
        kt_metrics_counter(&d->m_origin[o], d->metrics, "ktwin_agent_dispatch_events_total",
                           "Events dispatched, by origin", labels, &err);
    }
    for (int k = MODEL_ROUTE_SERVICE_LOCAL; k <= MODEL_ROUTE_DROP; k++) {
        const char *labels[] = { "kind", model_route_kind_str((model_route_kind)k), NULL };
        kt_metrics_counter(&d->m_kind[k], d->metrics, "ktwin_agent_dispatch_destinations_total",
                           "Destinations carried out, by kind", labels, &err);
    }
    kt_metrics_gauge_fn(d->metrics, "ktwin_agent_latest_instances",
                        "Twin instances with a latest state at this agent", NULL, sample_latest, d,
                        &err);
    kt_metrics_counter(&d->m_service_fail, d->metrics,
                       "ktwin_agent_dispatch_service_failures_total",
                       "Local twin-service calls (plugin or HTTP) that failed", NULL, &err);
}

/* A service of iface completed the event that started at t0_ns. */
static void service_latency(agent_dispatch *d, const char *iface, uint64_t t0_ns)
{
    if (d->metrics == NULL) {
        return;
    }
    kt_metric *h = kt_map_get(&d->lat_map, iface);
    if (h == NULL) {
        /* 10 us .. 100 s, 10 per decade (each bucket within +26%). */
        double b[KT_METRICS_BOUNDS_MAX];
        size_t nb = kt_metrics_log_bounds(b, KT_METRICS_BOUNDS_MAX, 1e-5, 100, 10);
        const char *labels[] = { "iface", iface, NULL };
        kt_err err = { 0 };
        if (kt_metrics_histogram(&h, d->metrics, "ktwin_agent_service_latency_seconds",
                                 "From an event's arrival at the agent (MQTT message or ingress "
                                 "POST) to its local twin service's completion, by interface",
                                 labels, b, nb, &err) != KT_OK) {
            return;
        }
        kt_map_set(&d->lat_map, kt_xstrdup(iface), h);
    }
    uint64_t now = kt_clock_mono_ns();
    kt_metrics_observe(h, now > t0_ns ? (double)(now - t0_ns) / 1e9 : 0.0);
}

static void
drop(agent_dispatch *d, int reason, const model_event *ev, const char *iface, const char *detail)
{
    d->stats.dropped++;
    d->drops[reason]++;
    kt_metrics_inc(d->m_drop[reason]);
    unsigned long long missed = 0;
    int log_it = kt_log_limit_take(&d->drop_log, DROP_LOG_PER_S, kt_clock_mono_ms(), &missed);
    if (missed > 0) {
        KT_LOG(KT_LOG_WARN, "DISPATCH-DROP", "suppressed=%llu", missed);
    }
    if (!log_it) {
        return;
    }
    char type[MODEL_EVENT_TYPE_CAP];
    char q[300];
    KT_LOG(KT_LOG_WARN, "DISPATCH-DROP", "reason=%s type=%s source=%s iface=%s id=%s detail=%s",
           reason_str(reason), ev != NULL ? model_event_type_str(ev, type, sizeof type) : "-",
           ev != NULL && ev->source != NULL ? ev->source : "-", iface != NULL ? iface : "-",
           ev != NULL && ev->id != NULL ? ev->id : "-",
           kt_log_quote(q, sizeof q, detail != NULL ? detail : ""));
}

/* ---- routing state ---------------------------------------------------------------- */

static model_placement_where where_cb(const char *iface, const char *site, void *user)
{
    agent_dispatch *d = user;
    if (site == NULL || strcmp(site, d->site) != 0) {
        return MODEL_WHERE_CLOUD;
    }
    uintptr_t v = (uintptr_t)kt_map_get(&d->where_map, iface);
    return v == 0 ? MODEL_WHERE_CLOUD : (model_placement_where)(v - 1);
}

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const model_instance *const *)a;
    uintptr_t y = (uintptr_t) * (const model_instance *const *)b;
    return x < y ? -1 : x > y;
}

static const char *instance_site_cb(const char *instance, void *user)
{
    agent_dispatch *d = user;
    if (!d->sites_ok || instance == NULL || d->m == NULL) {
        return NULL;
    }
    const model_instance *inst = model_instance_get(d->m, instance);
    if (inst == NULL) {
        return NULL; /* not in the cached subgraph: not placed here */
    }
    if (d->all_here) {
        return d->site;
    }
    return bsearch(&inst, d->here, d->n_here, sizeof *d->here, ptr_cmp) != NULL ? d->site : NULL;
}

static void sites_clear(agent_dispatch *d)
{
    kt_free(d->here);
    d->here = NULL;
    d->n_here = 0;
    d->sites_ok = 0;
    d->all_here = 0;
}

/* The instances of m that model_placement_compute puts on this site. */
static void sites_compute(agent_dispatch *d, const model *m)
{
    model_placement_site s = { .name = d->site,
                               .connected = 1,
                               .cpu_millis = MODEL_PLACEMENT_CPU_UNLIMITED,
                               .memory_bytes = MODEL_PLACEMENT_MEMORY_UNLIMITED };
    model_placement *p = NULL;
    kt_err perr = { 0 };
    if (model_placement_compute(&p, m, &s, 1, NULL, &perr) != KT_OK) {
        /* Every instance then reads as "not here": events go up. */
        KT_LOG(KT_LOG_WARN, "DISPATCH-SITES", "err=\"%s\"", perr.msg);
        return;
    }
    size_t n = model_n_instances(m);
    d->here = kt_xcalloc(n > 0 ? n : 1, sizeof *d->here);
    for (size_t i = 0; i < n; i++) {
        const model_instance *inst = model_instance_at(m, i);
        const char *site = model_placement_instance_site(p, inst->name);
        if (site != NULL && strcmp(site, d->site) == 0) {
            d->here[d->n_here++] = inst;
        }
    }
    model_placement_free(p);
    d->sites_ok = 1;
    if (d->n_here == n) {
        d->all_here = 1; /* one site, the usual case: no list at all */
        kt_free(d->here);
        d->here = NULL;
        d->n_here = 0;
    } else {
        qsort(d->here, d->n_here, sizeof *d->here, ptr_cmp);
    }
}

static void where_clear(agent_dispatch *d)
{
    kt_map_fini(&d->where_map);
    kt_map_init(&d->where_map);
    for (size_t i = 0; i < d->n_where_keys; i++) {
        kt_free(d->where_keys[i]);
    }
    kt_free(d->where_keys);
    d->where_keys = NULL;
    d->n_where_keys = 0;
}

static int add_where(const agent_cache_placement *p, void *user)
{
    agent_dispatch *d = user;
    model_placement_where w = MODEL_WHERE_CLOUD;
    if (strcmp(p->where, "edge") == 0) {
        w = MODEL_WHERE_EDGE;
    } else if (strcmp(p->where, "pending") == 0) {
        w = MODEL_WHERE_PENDING;
    }
    /* "edge"/"pending" rows name the site they are for; rows for another site read as cloud. */
    if (p->site != NULL && strcmp(p->site, d->site) != 0) {
        w = MODEL_WHERE_CLOUD;
    }
    char *key = kt_xstrdup(p->interface);
    d->where_keys = kt_xrealloc(d->where_keys, (d->n_where_keys + 1) * sizeof *d->where_keys);
    d->where_keys[d->n_where_keys++] = key;
    kt_map_set(&d->where_map, key, (void *)(uintptr_t)(w + 1));
    return 0;
}

/* Bring the route table, instance sites and where map up to date. */
static kt_status refresh(agent_dispatch *d, kt_err *err)
{
    const model *m = agent_view_model(d->view);
    uint64_t builds = agent_view_builds(d->view);
    if (m != d->m || builds != d->view_builds) {
        model_route_table_free(d->table);
        sites_clear(d);
        d->table = NULL;
        d->m = m;
        d->view_builds = builds;
        if (m != NULL) {
            d->table = model_route_table_new(m);
            sites_compute(d, m);
        }
    }
    uint64_t pg = agent_cache_placement_generation(d->cache);
    if (pg != d->place_gen) {
        where_clear(d);
        kt_status st = agent_cache_foreach_placement(d->cache, add_where, d, err);
        if (st != KT_OK) {
            where_clear(d);
            return st;
        }
        d->place_gen = pg;
    }
    d->env.table = d->table;
    return KT_OK;
}

/* ---- destinations ------------------------------------------------------------------ */

typedef struct emits {
    model_event **v;
    size_t n, cap;
} emits;

static kt_status collect_emit(const model_event *ev, void *user)
{
    emits *e = user;
    model_event *copy = NULL;
    kt_err err = { 0 };
    kt_status st = model_event_dup(&copy, ev, &err);
    if (st != KT_OK) {
        return st;
    }
    if (e->n == e->cap) {
        e->cap = e->cap != 0 ? e->cap * 2 : 8;
        e->v = kt_xrealloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = copy;
    return KT_OK;
}

static void emits_fini(emits *e)
{
    for (size_t i = 0; i < e->n; i++) {
        model_event_free(e->v[i]);
    }
    kt_free(e->v);
}

typedef struct http_ctx {
    agent_dispatch *d;
    uint32_t depth;
    uint64_t t0_ns;
    char iface[MODEL_NAME_MAX + 1];
} http_ctx;

static kt_status dispatch_inner(agent_dispatch *d,
                                const model_event *ev,
                                agent_dispatch_origin origin,
                                uint32_t depth,
                                kt_err *err);

/* Dispatch with its own outbox transaction (events that do not come from the MQTT drain). */
static kt_status dispatch_top(agent_dispatch *d,
                              const model_event *ev,
                              agent_dispatch_origin origin,
                              uint32_t depth,
                              kt_err *err)
{
    int own = 0;
    if (d->outbox != NULL) {
        kt_err berr = { 0 };
        own = agent_outbox_begin(d->outbox, &berr) == KT_OK;
    }
    kt_status st = dispatch_inner(d, ev, origin, depth, err);
    if (own) {
        if (st == KT_OK) {
            st = agent_outbox_commit(d->outbox, err);
        } else {
            agent_outbox_rollback(d->outbox);
        }
    }
    return st;
}

static void on_http_done(kt_status st, const svc_call_result *res, void *user)
{
    http_ctx *c = user;
    agent_dispatch *d = c->d;
    if (st == KT_ECLOSED) {
        kt_free(c); /* the caller is being freed: nothing to route */
        return;
    }
    if (st != KT_OK) {
        d->stats.service_fail++;
        kt_metrics_inc(d->m_service_fail);
        drop(d, R_SERVICE_FAILED, NULL, c->iface, res != NULL ? res->detail : kt_status_str(st));
    } else {
        service_latency(d, c->iface, c->t0_ns);
    }
    if (st == KT_OK && res != NULL && res->reply != NULL) {
        d->t0_ns = c->t0_ns;
        kt_err err = { 0 };
        kt_status rst = dispatch_top(d, res->reply, AGENT_DISPATCH_SERVICE, c->depth + 1, &err);
        if (rst != KT_OK) {
            KT_LOG(KT_LOG_ERR, "DISPATCH-REPLY-FAIL", "iface=%s err=\"%s\"", c->iface, err.msg);
        }
    }
    kt_free(c);
}

static kt_status run_service(
    agent_dispatch *d, const char *iface, const model_event *ev, uint32_t depth, kt_err *err)
{
    if (d->plugins != NULL && svc_plugin_host_serves(d->plugins, iface)) {
        emits e = { 0 };
        kt_err perr = { 0 };
        d->stats.local_plugin++;
        kt_status st = svc_plugin_host_dispatch(d->plugins, iface, ev, collect_emit, &e, &perr);
        if (st != KT_OK) {
            emits_fini(&e);
            d->stats.service_fail++;
            kt_metrics_inc(d->m_service_fail);
            drop(d, R_SERVICE_FAILED, ev, iface, perr.msg);
            return KT_OK;
        }
        service_latency(d, iface, d->t0_ns);
        kt_status res = KT_OK;
        for (size_t i = 0; i < e.n && res == KT_OK; i++) {
            res = dispatch_inner(d, e.v[i], AGENT_DISPATCH_SERVICE, depth + 1, err);
        }
        emits_fini(&e);
        return res;
    }
    if (d->caller != NULL) {
        http_ctx *c = kt_xcalloc(1, sizeof *c);
        c->d = d;
        c->depth = depth;
        c->t0_ns = d->t0_ns;
        kt_strlcpy(c->iface, iface, sizeof c->iface);
        kt_err cerr = { 0 };
        kt_status st = svc_caller_post_depth(d->caller, iface, ev, depth, on_http_done, c, &cerr);
        if (st == KT_OK) {
            d->stats.local_http++;
            return KT_OK;
        }
        kt_free(c);
        drop(d, st == KT_EAGAIN ? R_SERVICE_BUSY : R_NO_ENDPOINT, ev, iface, cerr.msg);
        return KT_OK;
    }
    drop(d, R_NO_ENDPOINT, ev, iface, "no plugin or HTTP service configured");
    return KT_OK;
}

static kt_status to_outbox(agent_dispatch *d, const model_event *ev, uint32_t depth, kt_err *err)
{
    if (d->outbox == NULL) {
        drop(d, R_NO_OUTBOX, ev, ev->iface, "no outbox");
        return KT_OK;
    }
    char type[MODEL_EVENT_TYPE_CAP];
    sync_event se = {
        .id = ev->id,
        .type = model_event_type_str(ev, type, sizeof type),
        .source = ev->source,
        .subject = NULL,
        .time_ms = ev->time_ms,
        .datacontenttype = ev->datacontenttype,
        .data = ev->data,
        .data_len = ev->data_len,
        .depth = depth,
    };
    kt_status st = agent_outbox_append(d->outbox, &se, NULL, err);
    if (st == KT_OK) {
        d->stats.to_hub++;
    }
    return st;
}

static kt_status to_latest(agent_dispatch *d, const model_event *ev, kt_err *err)
{
    char type[MODEL_EVENT_TYPE_CAP];
    svc_record r = {
        .iface = ev->iface,
        .instance = ev->source,
        .id = ev->id,
        .type = model_event_type_str(ev, type, sizeof type),
        .source = ev->source,
        .time_ms = ev->time_ms != 0 ? ev->time_ms : kt_clock_wall_ms(),
        .data = ev->data,
        .data_len = ev->data_len,
    };
    kt_err lerr = { 0 };
    kt_status st = agent_latest_put(d->latest, &r, &lerr);
    if (st == KT_EINVAL) {
        drop(d, R_INVALID, ev, ev->iface, lerr.msg); /* data not a JSON object */
        return KT_OK;
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "%s", lerr.msg);
    }
    d->stats.latest++;
    return KT_OK;
}

static kt_status to_mqtt(agent_dispatch *d, const model_event *ev)
{
    if (d->publish == NULL) {
        drop(d, R_NO_MQTT, ev, ev->iface, "no MQTT bridge");
        return KT_OK;
    }
    kt_err perr = { 0 };
    kt_status st = d->publish(ev->iface, ev->source, ev->data != NULL ? ev->data : (const void *)"",
                              ev->data_len, &perr, d->publish_user);
    if (st != KT_OK) {
        drop(d, R_PUBLISH, ev, ev->iface, perr.msg);
        return KT_OK;
    }
    d->stats.virtual_out++;
    return KT_OK;
}

static kt_status dispatch_inner(agent_dispatch *d,
                                const model_event *ev,
                                agent_dispatch_origin origin,
                                uint32_t depth,
                                kt_err *err)
{
    d->stats.events++;
    kt_metrics_inc(d->m_origin[origin]);
    if (depth > d->max_depth) {
        drop(d, R_DEPTH, ev, ev->iface, "service emit depth over dispatch.max_depth");
        return KT_OK;
    }
    kt_err verr = { 0 };
    if (model_event_check(ev, d->max_data, &verr) != KT_OK) {
        drop(d, R_INVALID, ev, NULL, verr.msg);
        /* Refuse what came from outside; a service's bad emit is only counted. */
        return origin != AGENT_DISPATCH_SERVICE ? kt_err_set(err, KT_EINVAL, "%s", verr.msg)
                                                : KT_OK;
    }
    if (d->table == NULL) {
        /* No model could be built from the cache: the hub routes what is produced here. */
        if (origin == AGENT_DISPATCH_HUB) {
            drop(d, R_NO_MODEL, ev, ev->iface, "no model loaded");
            return KT_OK;
        }
        kt_metrics_inc(d->m_kind[MODEL_ROUTE_UPSTREAM]);
        return to_outbox(d, ev, depth, err);
    }
    model_route_dest dest[MODEL_ROUTE_DEST_MAX];
    size_t n = model_route(
        &d->env, ev, origin == AGENT_DISPATCH_HUB ? MODEL_ROUTE_FROM_HUB : MODEL_ROUTE_FROM_LOCAL,
        NULL, dest, MODEL_ROUTE_DEST_MAX);
    if (n > MODEL_ROUTE_DEST_MAX) {
        drop(d, R_TOO_MANY, ev, ev->iface, "more destinations than MODEL_ROUTE_DEST_MAX");
        return KT_OK;
    }
    kt_status st = KT_OK;
    for (size_t i = 0; i < n && st == KT_OK; i++) {
        const model_route_dest *x = &dest[i];
        kt_metrics_inc(d->m_kind[x->kind]);
        switch (x->kind) {
        case MODEL_ROUTE_SERVICE_LOCAL:
            st = run_service(d, x->iface, ev, depth, err);
            break;
        case MODEL_ROUTE_UPSTREAM:
            st = to_outbox(d, ev, depth, err);
            break;
        case MODEL_ROUTE_MQTT_VIRTUAL:
            st = to_mqtt(d, ev);
            break;
        case MODEL_ROUTE_LATEST:
            st = to_latest(d, ev, err);
            break;
        case MODEL_ROUTE_DROP:
            drop(d, (int)x->drop, ev, x->iface, "router");
            break;
        default:
            /* Hub-only destinations never appear with env.site set. */
            drop(d, R_INTERNAL, ev, x->iface, model_route_kind_str(x->kind));
            break;
        }
    }
    return st;
}

/* ---- public ------------------------------------------------------------------------ */

kt_status agent_dispatch_event(agent_dispatch *d,
                               const model_event *ev,
                               agent_dispatch_origin origin,
                               uint32_t depth,
                               kt_err *err)
{
    kt_status st = refresh(d, err);
    if (st != KT_OK) {
        return st;
    }
    d->t0_ns = kt_clock_mono_ns();
    if (origin == AGENT_DISPATCH_DEVICE) {
        return dispatch_inner(d, ev, origin, depth, err); /* inside the drain's transaction */
    }
    return dispatch_top(d, ev, origin, depth, err);
}

kt_status agent_dispatch_mqtt_cb(const agent_mqtt_event *mev, agent_outbox *ob, void *user)
{
    agent_dispatch *d = user;
    (void)ob; /* the same outbox as d->outbox: appends join the drain's transaction */
    kt_err err = { 0 };
    model_event ev;
    model_topic t;
    char tbuf[MODEL_EVENT_TIME_CAP];
    if (mev->event != NULL) {
        ev = *mev->event; /* the bridge's view: topic parsed, time set (agent/mqtt.c) */
    } else {
        if (model_topic_parse(&t, mev->topic, strlen(mev->topic), &err) != KT_OK) {
            drop(d, R_INVALID, NULL, mev->iface, err.msg);
            return KT_EINVAL;
        }
        memset(&ev, 0, sizeof ev);
        model_event_from_topic(&ev, &t, mev->payload, mev->payload_len, NULL,
                               kt_clock_rfc3339(tbuf, sizeof tbuf, mev->recv_wall_ms),
                               mev->recv_wall_ms);
    }
    char id[MODEL_EVENT_ID_MAX];
    const char *inc = d->outbox != NULL ? agent_outbox_incarnation(d->outbox) : d->site;
    snprintf(id, sizeof id, "%.16s-m%llu", inc, (unsigned long long)mev->journal_id);
    ev.id = id;
    /* Arrival on the monotonic clock: now minus the message's age (ms resolution). */
    uint64_t wall = kt_clock_wall_ms();
    uint64_t age_ns = wall > mev->recv_wall_ms ? (wall - mev->recv_wall_ms) * 1000000u : 0;
    uint64_t mono = kt_clock_mono_ns();
    d->t0_ns = mono > age_ns ? mono - age_ns : 0;
    kt_status st = refresh(d, &err);
    if (st == KT_OK) {
        st = dispatch_inner(d, &ev, AGENT_DISPATCH_DEVICE, 0, &err);
    }
    if (st != KT_OK && st != KT_EAGAIN && st != KT_EINVAL) {
        KT_LOG(KT_LOG_ERR, "DISPATCH-FAIL", "topic=%s err=\"%s\"", mev->topic, err.msg);
    }
    return st;
}

kt_status agent_dispatch_down_event(agent_dispatch *d, const sync_event *se, kt_err *err)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    kt_err terr = { 0 };
    if (se->type == NULL || model_event_set_type(&ev, se->type, strlen(se->type), &terr) != KT_OK) {
        drop(d, R_INVALID, NULL, NULL, terr.msg);
        return kt_err_set(err, KT_EINVAL, "%s", terr.msg);
    }
    ev.id = se->id;
    ev.source = se->source;
    ev.time_ms = se->time_ms;
    char tbuf[MODEL_EVENT_TIME_CAP];
    ev.time = se->time_ms != 0 ? kt_clock_rfc3339(tbuf, sizeof tbuf, se->time_ms) : NULL;
    ev.datacontenttype = se->datacontenttype;
    ev.data = se->data;
    ev.data_len = se->data_len;
    return agent_dispatch_event(d, &ev, AGENT_DISPATCH_HUB, se->depth, err);
}

uint64_t agent_dispatch_down_applied_seq(agent_dispatch *d)
{
    return d->outbox != NULL ? agent_outbox_meta_get(d->outbox, AGENT_DISPATCH_META_DOWN) : 0;
}

kt_status agent_dispatch_down_apply(
    agent_dispatch *d, uint64_t first_seq, const sync_event *events, size_t n, kt_err *err)
{
    if (d->outbox == NULL) {
        return kt_err_set(err, KT_EINVAL, "downstream events need the outbox");
    }
    uint64_t applied = agent_outbox_meta_get(d->outbox, AGENT_DISPATCH_META_DOWN);
    if (first_seq != applied + 1 || n == 0) {
        return kt_err_set(err, KT_EINVAL, "downstream batch at seq %llu, %zu events; applied %llu",
                          (unsigned long long)first_seq, n, (unsigned long long)applied);
    }
    kt_status st = refresh(d, err);
    if (st != KT_OK) {
        return st;
    }
    st = agent_outbox_begin(d->outbox, err);
    if (st != KT_OK) {
        return st;
    }
    for (size_t i = 0; i < n && st == KT_OK; i++) {
        kt_err e = { 0 };
        st = agent_dispatch_down_event(d, &events[i], &e);
        if (st == KT_EINVAL) {
            st = KT_OK; /* counted as a drop; skip it */
        } else if (st != KT_OK) {
            kt_err_set(err, st, "%s", e.msg);
        }
    }
    if (st == KT_OK) {
        st = agent_outbox_meta_set(d->outbox, AGENT_DISPATCH_META_DOWN, first_seq + n - 1, err);
    }
    if (st != KT_OK) {
        agent_outbox_rollback(d->outbox);
        return st;
    }
    st = agent_outbox_commit(d->outbox, err);
    if (st == KT_OK) {
        st = agent_latest_flush(d->latest, err);
    }
    return st;
}

/* ---- store and API ops ---------------------------------------------------------------- */

static kt_status op_latest(void *user,
                           const char *iface,
                           const char *instance,
                           svc_record_cb cb,
                           void *cb_user,
                           kt_err *err)
{
    agent_dispatch *d = user;
    return agent_latest_get(d->latest, iface, instance, cb, cb_user, err);
}

/* POST /api/v1/twin-events: a store event, routed like one (latest here + outbox). */
/*
 * A store event's data is upsert-merged into the latest state, here and at
 * the hub: it must be one JSON object (no data counts as {}). KT_EINVAL
 * (KT_ETOOBIG over 16 MiB) otherwise.
 */
static kt_status check_store_data(const void *data, size_t len, kt_err *err)
{
    kt_buf check;
    kt_buf_init(&check, (size_t)16 * 1024 * 1024);
    kt_status st = svc_merge_json(&check, NULL, 0, data != NULL ? data : (const uint8_t *)"{}",
                                  data != NULL ? len : 2, err);
    kt_buf_fini(&check);
    if (st != KT_OK) {
        return st == KT_ETOOBIG ? st : KT_EINVAL;
    }
    return KT_OK;
}

static kt_status op_put(void *user, const svc_record *rec, kt_err *err)
{
    agent_dispatch *d = user;
    kt_status st = check_store_data(rec->data, rec->data_len, err);
    if (st != KT_OK) {
        return st;
    }
    model_event ev;
    memset(&ev, 0, sizeof ev);
    st = model_event_set_class(&ev, MODEL_EVENT_STORE, rec->iface, NULL, err);
    if (st != KT_OK) {
        return st;
    }
    char idbuf[MODEL_EVENT_ID_GEN_CAP];
    ev.id =
        rec->id != NULL && rec->id[0] != '\0' ? rec->id : model_event_id_new(idbuf, sizeof idbuf);
    ev.source = rec->instance;
    ev.time_ms = rec->time_ms != 0 ? rec->time_ms : kt_clock_wall_ms();
    char tbuf[MODEL_EVENT_TIME_CAP];
    ev.time = kt_clock_rfc3339(tbuf, sizeof tbuf, ev.time_ms);
    ev.data = rec->data;
    ev.data_len = rec->data_len;
    return agent_dispatch_event(d, &ev, AGENT_DISPATCH_INGRESS, 0, err);
}

static kt_status op_list(
    void *user, const svc_query *q, svc_record_cb cb, void *cb_user, svc_page *page, kt_err *err)
{
    agent_dispatch *d = user;
    return agent_latest_list(d->latest, q, cb, cb_user, page, err);
}

/*
 * POST /: KTWIN's broker accepts whatever it can route; drops are counted,
 * not refused. Except a store event whose data is no JSON object: the latest
 * state would refuse it while the hub stored it, so it is refused here (400,
 * counted as a drop "invalid") before anything is routed.
 */
static kt_status ingest(agent_dispatch *d, const model_event *ev, uint32_t depth, kt_err *err)
{
    if (ev->cls == MODEL_EVENT_STORE) {
        kt_err derr = { 0 };
        kt_status st = check_store_data(ev->data, ev->data_len, &derr);
        if (st != KT_OK) {
            drop(d, R_INVALID, ev, ev->iface, derr.msg);
            return kt_err_set(err, st, "%s", derr.msg);
        }
    }
    return agent_dispatch_event(d, ev, AGENT_DISPATCH_INGRESS, depth, err);
}

static kt_status op_ingest(void *user, const model_event *ev, kt_err *err)
{
    return ingest(user, ev, 0, err);
}

/*
 * POST / with its loop depth (svc/api.h LOOP DEPTH: ktwindepth + 1 when an
 * HTTP service copied the attribute of the event it was handling), so
 * max_depth bounds loops through HTTP services; past it: drop "depth", 202.
 */
static kt_status op_ingest_depth(void *user, const model_event *ev, uint32_t depth, kt_err *err)
{
    return ingest(user, ev, depth, err);
}

const svc_api_ops *agent_dispatch_api_ops(agent_dispatch *d)
{
    return &d->api_ops;
}

const svc_store_ops *agent_dispatch_store_ops(agent_dispatch *d)
{
    return &d->store_ops;
}

const model *agent_dispatch_graph_cb(void *user)
{
    agent_dispatch *d = user;
    return agent_view_model(d->view);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

kt_status agent_dispatch_new(agent_dispatch **out, const agent_dispatch_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts->site == NULL || opts->site[0] == '\0' || opts->view == NULL || opts->cache == NULL ||
        opts->latest == NULL) {
        return kt_err_set(err, KT_EINVAL, "dispatch: site, view, cache and latest are required");
    }
    agent_dispatch *d = kt_xcalloc(1, sizeof *d);
    d->site = kt_xstrdup(opts->site);
    d->view = opts->view;
    d->cache = opts->cache;
    d->outbox = opts->outbox;
    d->latest = opts->latest;
    d->plugins = opts->plugins;
    d->caller = opts->caller;
    d->publish = opts->publish_virtual;
    d->publish_user = opts->publish_user;
    d->metrics = opts->metrics;
    d->max_depth = opts->max_depth != 0 ? opts->max_depth : DEFAULT_MAX_DEPTH;
    d->max_data = opts->max_data_bytes != 0 ? opts->max_data_bytes : MODEL_EVENT_DATA_MAX_DEFAULT;
    kt_map_init(&d->where_map);
    kt_map_init(&d->lat_map);
    d->env.site = d->site;
    d->env.flags = MODEL_ROUTE_F_UNKNOWN_UPSTREAM;
    d->env.placement.where = where_cb;
    d->env.placement.instance_site = instance_site_cb;
    d->env.placement.user = d;
    d->store_ops.latest = op_latest;
    d->store_ops.put = op_put;
    d->store_ops.list = op_list;
    d->store_ops.user = d;
    d->api_ops.ingest = op_ingest;
    d->api_ops.ingest_depth = op_ingest_depth;
    d->api_ops.store = &d->store_ops;
    d->api_ops.user = d;
    register_metrics(d);
    *out = d;
    return KT_OK;
}

void agent_dispatch_set_services(agent_dispatch *d, svc_plugin_host *plugins, svc_caller *caller)
{
    d->plugins = plugins;
    d->caller = caller;
}

kt_status agent_dispatch_add_services(agent_dispatch *d,
                                      const char *const *specs,
                                      size_t n_specs,
                                      kt_err *err)
{
    for (size_t i = 0; i < n_specs; i++) {
        svc_service s;
        kt_err e = { 0 };
        kt_status st = svc_service_parse(&s, specs[i], &e);
        if (st == KT_OK && s.kind == SVC_SERVICE_PLUGIN) {
            if (d->plugins == NULL) {
                st = kt_err_set(&e, KT_EINVAL, "no plugin host");
            } else {
                st = svc_plugin_host_load(d->plugins, s.target, (const char *const *)s.ifaces,
                                          s.n_ifaces, s.config, &e);
            }
        } else if (st == KT_OK) {
            if (d->caller == NULL) {
                st = kt_err_set(&e, KT_EINVAL, "no HTTP caller");
            }
            for (size_t k = 0; st == KT_OK && k < s.n_ifaces; k++) {
                st = svc_caller_endpoint(d->caller, s.ifaces[k], &s.http, &e);
            }
        }
        if (st == KT_OK) {
            KT_LOG(KT_LOG_NOTICE, "DISPATCH-SERVICE", "kind=%s target=%s ifaces=%zu",
                   s.kind == SVC_SERVICE_PLUGIN ? "plugin" : "http", s.target, s.n_ifaces);
        }
        svc_service_fini(&s);
        if (st != KT_OK) {
            return kt_err_set(err, st == KT_ECONFLICT ? st : KT_EINVAL, "services.specs[%zu]: %s",
                              i, e.msg);
        }
    }
    return KT_OK;
}

void agent_dispatch_free(agent_dispatch *d)
{
    if (d == NULL) {
        return;
    }
    if (d->metrics != NULL) {
        kt_metrics_detach(d->metrics, d);
    }
    model_route_table_free(d->table);
    sites_clear(d);
    where_clear(d);
    kt_map_fini(&d->where_map);
    size_t it = 0;
    const char *key = NULL;
    void *val = NULL;
    while (kt_map_next(&d->lat_map, &it, &key, &val)) {
        kt_free((char *)key);
    }
    kt_map_fini(&d->lat_map);
    kt_free(d->site);
    kt_free(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

kt_status
agent_dispatch_ingest_interfaces(agent_dispatch *d, char ***out, size_t *n_out, kt_err *err)
{
    *out = NULL;
    *n_out = 0;
    const model *m = agent_view_model(d->view);
    if (m == NULL) {
        return kt_err_set(err, KT_EAGAIN, "no model loaded yet");
    }
    size_t n = model_n_ifaces(m);
    char **names = kt_xcalloc(n != 0 ? n : 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = kt_xstrdup(model_iface_at(m, i)->name);
    }
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    *n_out = n;
    return KT_OK;
}

void agent_dispatch_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kt_free(names[i]);
    }
    kt_free(names);
}

void agent_dispatch_stats_get(const agent_dispatch *d, agent_dispatch_stats *out)
{
    *out = d->stats;
}

uint64_t agent_dispatch_dropped(const agent_dispatch *d, const char *reason)
{
    for (int r = MODEL_DROP_UNKNOWN_IFACE; r < R_COUNT; r++) {
        if (strcmp(reason_str(r), reason) == 0) {
            return d->drops[r];
        }
    }
    return 0;
}
