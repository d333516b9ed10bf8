/*
 * agent/uplink.c — WebSocket link to the hub driving sync_client over the
 * agent cache.
 *
 * Invariants: at most one connection exists (u->conn); after agent_uplink_stop
 * no new connection or timer is started; every sync_client_on_open is paired
 * with one sync_client_on_close (from the conn's on_close, which kt_net calls
 * exactly once per conn). Contracts: see uplink.h.
 *
 * DESIGN: the retry delay is chosen when a connection ends, not when it
 * starts, so the reason (Reject BUSY with retry_after_ms, UNAUTHENTICATED,
 * plain loss) is known. Store ops time themselves against the monotonic
 * clock so ktwin_agent_last_commit_ms reports cache time only, not the time
 * chunks spend on the wire.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "uplink"
#include "uplink.h"

#include <string.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "sync/backoff.h"
#include "sync/client.h"
#include "sync/msg.h"

struct agent_uplink {
    char *site;
    char *token;
    char *url;
    char *ca_file;
    uint32_t connect_timeout_ms;
    size_t max_message_bytes;
    kt_net *net;
    agent_cache *cache;
    kt_metrics *metrics;
    sync_client *sc;
    sync_backoff backoff;
    uint32_t reconnect_cap_ms;
    kt_ws_conn *conn;
    uv_timer_t retry_timer;
    uv_timer_t tick_timer;
    int timers_live;
    int stopping;
    int got_reject;
    int was_open;
    /* Time spent in the cache for the open snapshot, and its object count. */
    uint64_t snap_ns;
    uint64_t snap_objects;
    kt_metric *m_connected, *m_graph_rev, *m_place_rev, *m_snapshots, *m_deltas, *m_placements;
    kt_metric *m_reconnects, *m_sync_errors, *m_last_commit_ms;
    kt_metric *m_obj_iface, *m_obj_inst, *m_obj_policy;
};

static void connect_now(agent_uplink *u);

/* ---- metrics ---------------------------------------------------------------- */

static void register_metrics(agent_uplink *u)
{
    kt_metrics *r = u->metrics;
    if (r == NULL) {
        return;
    }
    kt_err err = { 0 };
    kt_metrics_gauge(&u->m_connected, r, "ktwin_agent_connected",
                     "1 while the hub link is up and welcomed", NULL, &err);
    kt_metrics_gauge(&u->m_graph_rev, r, "ktwin_agent_graph_revision",
                     "Graph revision committed in the cache", NULL, &err);
    kt_metrics_gauge(&u->m_place_rev, r, "ktwin_agent_placement_revision",
                     "Placement revision committed in the cache", NULL, &err);
    kt_metrics_counter(&u->m_snapshots, r, "ktwin_agent_snapshots_total",
                       "Snapshots committed to the cache", NULL, &err);
    kt_metrics_counter(&u->m_deltas, r, "ktwin_agent_deltas_total", "Deltas committed to the cache",
                       NULL, &err);
    kt_metrics_counter(&u->m_placements, r, "ktwin_agent_placements_total",
                       "Placement updates committed to the cache", NULL, &err);
    kt_metrics_counter(&u->m_reconnects, r, "ktwin_agent_reconnects_total",
                       "Connection attempts after the first", NULL, &err);
    kt_metrics_counter(&u->m_sync_errors, r, "ktwin_agent_sync_errors_total",
                       "Hub links closed for a protocol, store or timeout error", NULL, &err);
    kt_metrics_gauge(&u->m_last_commit_ms, r, "ktwin_agent_last_commit_ms",
                     "Cache time of the last snapshot or delta commit, in milliseconds", NULL,
                     &err);
    static const char *const l_iface[] = { "kind", "twininterfaces", NULL };
    static const char *const l_inst[] = { "kind", "twininstances", NULL };
    static const char *const l_pol[] = { "kind", "placementpolicies", NULL };
    static const char help_obj[] = "Objects in the cache by kind";
    kt_metrics_gauge(&u->m_obj_iface, r, "ktwin_agent_objects", help_obj, l_iface, &err);
    kt_metrics_gauge(&u->m_obj_inst, r, "ktwin_agent_objects", help_obj, l_inst, &err);
    kt_metrics_gauge(&u->m_obj_policy, r, "ktwin_agent_objects", help_obj, l_pol, &err);
    if (err.status != KT_OK) {
        KT_LOG(KT_LOG_ERR, "UPLINK-METRICS", "err=\"%s\"", err.msg);
    }
}

static void update_store_metrics(agent_uplink *u)
{
    kt_metrics_set(u->m_graph_rev, (double)agent_cache_graph_revision(u->cache));
    kt_metrics_set(u->m_place_rev, (double)agent_cache_placement_revision(u->cache));
    kt_metrics_set(u->m_obj_iface, (double)agent_cache_count(u->cache, AGENT_KIND_INTERFACE));
    kt_metrics_set(u->m_obj_inst, (double)agent_cache_count(u->cache, AGENT_KIND_INSTANCE));
    kt_metrics_set(u->m_obj_policy, (double)agent_cache_count(u->cache, AGENT_KIND_POLICY));
}

static void count_reject(agent_uplink *u, sync_reject_code code)
{
    if (u->metrics == NULL) {
        return;
    }
    const char *labels[] = { "code", sync_msg_reject_str(code), NULL };
    kt_metric *m = NULL;
    kt_err err = { 0 };
    if (kt_metrics_counter(&m, u->metrics, "ktwin_agent_rejects_total",
                           "Rejects received from the hub by code", labels, &err) == KT_OK) {
        kt_metrics_inc(m);
    }
}

/* ---- store ops (sync_client -> cache) ------------------------------------------ */

static const char *kind_name(sync_kind k)
{
    switch (k) {
    case SYNC_KIND_TWIN_INTERFACE:
        return AGENT_KIND_INTERFACE;
    case SYNC_KIND_TWIN_INSTANCE:
        return AGENT_KIND_INSTANCE;
    case SYNC_KIND_PLACEMENT_POLICY:
        return AGENT_KIND_POLICY;
    default:
        return NULL;
    }
}

static kt_status to_cache_object(const sync_object *s, agent_cache_object *o, kt_err *err)
{
    o->kind = kind_name(s->kind);
    if (o->kind == NULL) {
        return kt_err_set(err, KT_EPROTO, "object %s: unknown kind %d", s->name, (int)s->kind);
    }
    o->name = s->name;
    o->body = (const char *)s->body;
    o->body_len = s->body_len;
    o->revision = s->revision;
    o->deleted = s->deleted ? 1 : 0;
    return KT_OK;
}

static kt_status op_send(const uint8_t *buf, size_t len, void *user)
{
    agent_uplink *u = user;
    if (u->conn == NULL) {
        return KT_ECLOSED;
    }
    return kt_ws_conn_send(u->conn, buf, len);
}

static uint64_t op_now_ms(void *user)
{
    (void)user;
    return kt_clock_mono_ms();
}

static uint64_t op_wall_ms(void *user)
{
    (void)user;
    return kt_clock_wall_ms();
}

static uint64_t op_graph_revision(void *user)
{
    agent_uplink *u = user;
    return agent_cache_graph_revision(u->cache);
}

static uint64_t op_placement_revision(void *user)
{
    agent_uplink *u = user;
    return agent_cache_placement_revision(u->cache);
}

static kt_status op_snapshot_begin(uint64_t revision, kt_err *err, void *user)
{
    agent_uplink *u = user;
    uint64_t t0 = kt_clock_mono_ns();
    u->snap_ns = 0;
    u->snap_objects = 0;
    kt_status st = agent_cache_snapshot_begin(u->cache, revision, err);
    u->snap_ns += kt_clock_mono_ns() - t0;
    return st;
}

static kt_status op_snapshot_put(const sync_object *objs, size_t n, kt_err *err, void *user)
{
    agent_uplink *u = user;
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = KT_OK;
    for (size_t i = 0; i < n && st == KT_OK; i++) {
        agent_cache_object o;
        st = to_cache_object(&objs[i], &o, err);
        if (st == KT_OK) {
            st = agent_cache_snapshot_put(u->cache, &o, err);
        }
    }
    u->snap_objects += n;
    u->snap_ns += kt_clock_mono_ns() - t0;
    return st;
}

static void log_commit(agent_uplink *u, const char *kind, uint64_t rev, uint64_t n, double ms)
{
    KT_LOG(KT_LOG_INFO, "UPLINK-COMMIT",
           "kind=%s revision=%llu objects=%llu commit_ms=%.3f wall_ms=%llu instances=%llu", kind,
           (unsigned long long)rev, (unsigned long long)n, ms,
           (unsigned long long)kt_clock_wall_ms(),
           (unsigned long long)agent_cache_count(u->cache, AGENT_KIND_INSTANCE));
}

static kt_status op_snapshot_commit(uint64_t revision, kt_err *err, void *user)
{
    agent_uplink *u = user;
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = agent_cache_snapshot_commit(u->cache, err);
    u->snap_ns += kt_clock_mono_ns() - t0;
    if (st != KT_OK) {
        return st;
    }
    if (agent_cache_graph_revision(u->cache) != revision) {
        return kt_err_set(err, KT_EINTERNAL, "snapshot committed at %llu, expected %llu",
                          (unsigned long long)agent_cache_graph_revision(u->cache),
                          (unsigned long long)revision);
    }
    double ms = (double)u->snap_ns / 1e6;
    kt_metrics_inc(u->m_snapshots);
    kt_metrics_set(u->m_last_commit_ms, ms);
    update_store_metrics(u);
    log_commit(u, "snapshot", revision, u->snap_objects, ms);
    return KT_OK;
}

static void op_snapshot_abort(void *user)
{
    agent_uplink *u = user;
    agent_cache_snapshot_abort(u->cache);
}

static kt_status op_delta_apply(const sync_delta *d, kt_err *err, void *user)
{
    agent_uplink *u = user;
    agent_cache_object *objs = d->n_objects > 0 ? kt_xcalloc(d->n_objects, sizeof *objs) : NULL;
    kt_status st = KT_OK;
    for (size_t i = 0; i < d->n_objects && st == KT_OK; i++) {
        st = to_cache_object(&d->objects[i], &objs[i], err);
    }
    uint64_t t0 = kt_clock_mono_ns();
    if (st == KT_OK) {
        st = agent_cache_delta_apply(u->cache, d->from_revision, d->to_revision, objs,
                                     d->n_objects, err);
    }
    double ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
    kt_free(objs);
    if (st != KT_OK) {
        return st;
    }
    kt_metrics_inc(u->m_deltas);
    kt_metrics_set(u->m_last_commit_ms, ms);
    update_store_metrics(u);
    if (d->n_objects > 0) {
        log_commit(u, "delta", d->to_revision, d->n_objects, ms);
    } else {
        KT_LOG(KT_LOG_DEBUG, "UPLINK-COMMIT", "kind=delta revision=%llu objects=0 commit_ms=%.3f",
               (unsigned long long)d->to_revision, ms);
    }
    return KT_OK;
}

static const char *where_name(sync_where w)
{
    switch (w) {
    case SYNC_WHERE_EDGE:
        return "edge";
    case SYNC_WHERE_CLOUD:
        return "cloud";
    case SYNC_WHERE_PENDING:
        return "pending";
    case SYNC_WHERE_OTHER_SITE:
        return "other-site";
    default:
        return NULL;
    }
}

static kt_status op_placement_apply(const sync_placement *p, kt_err *err, void *user)
{
    agent_uplink *u = user;
    agent_cache_placement *items =
        p->n_interfaces > 0 ? kt_xcalloc(p->n_interfaces, sizeof *items) : NULL;
    kt_status st = KT_OK;
    for (size_t i = 0; i < p->n_interfaces; i++) {
        const sync_iface_placement *s = &p->interfaces[i];
        items[i].interface = s->interface;
        items[i].where = where_name(s->where);
        items[i].site = s->site;
        items[i].rule = s->rule;
        items[i].reason = s->reason;
        if (items[i].where == NULL) {
            st = kt_err_set(err, KT_EPROTO, "placement of %s: unknown where %d", s->interface,
                            (int)s->where);
            break;
        }
    }
    if (st == KT_OK) {
        st = agent_cache_placement_apply(u->cache, p->revision, items, p->n_interfaces, err);
    }
    kt_free(items);
    if (st != KT_OK) {
        return st;
    }
    kt_metrics_inc(u->m_placements);
    update_store_metrics(u);
    KT_LOG(KT_LOG_INFO, "UPLINK-PLACEMENT", "revision=%llu interfaces=%zu",
           (unsigned long long)p->revision, p->n_interfaces);
    return KT_OK;
}

static void op_on_welcome(const sync_welcome *w, void *user)
{
    agent_uplink *u = user;
    sync_backoff_reset(&u->backoff);
    kt_metrics_set(u->m_connected, 1);
    KT_LOG(KT_LOG_INFO, "UPLINK-WELCOME",
           "hub=%s mode=%s hub_revision=%llu cache_revision=%llu heartbeat_ms=%u", w->hub_id,
           sync_msg_mode_str(w->mode), (unsigned long long)w->graph_revision,
           (unsigned long long)agent_cache_graph_revision(u->cache), w->heartbeat_ms);
}

/* ---- timers --------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t);

static void schedule_tick(agent_uplink *u)
{
    if (u->stopping || !u->timers_live) {
        return;
    }
    uint64_t next = sync_client_next_tick_ms(u->sc);
    if (next == UINT64_MAX) {
        uv_timer_stop(&u->tick_timer);
        return;
    }
    uint64_t now = kt_clock_mono_ms();
    uv_timer_start(&u->tick_timer, on_tick, next > now ? next - now : 0, 0);
}

static void fail_link(agent_uplink *u, kt_status st, const kt_err *err)
{
    KT_LOG(KT_LOG_WARN, "UPLINK-SYNC-ERR", "status=%s err=\"%s\" state=%s", kt_status_str(st),
           err->msg, sync_client_state_str(sync_client_state_get(u->sc)));
    kt_metrics_inc(u->m_sync_errors);
    if (u->conn != NULL) {
        kt_ws_conn_close(u->conn, st == KT_EPROTO || st == KT_ETOOBIG ? 1002 : 1011,
                         kt_status_str(st));
    }
}

static void on_tick(uv_timer_t *t)
{
    agent_uplink *u = t->data;
    kt_err err = { 0 };
    kt_status st = sync_client_tick(u->sc, &err);
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_tick(u);
}

static void on_retry(uv_timer_t *t)
{
    agent_uplink *u = t->data;
    kt_metrics_inc(u->m_reconnects);
    connect_now(u);
}

static void schedule_retry(agent_uplink *u)
{
    if (u->stopping) {
        return;
    }
    uint32_t delay = sync_backoff_next(&u->backoff);
    if (u->got_reject) {
        sync_reject_code code = sync_client_last_reject_code(u->sc);
        uint32_t after = sync_client_last_retry_after_ms(u->sc);
        if (code == SYNC_REJECT_BUSY && after > delay) {
            delay = after;
        } else if (code == SYNC_REJECT_UNAUTHENTICATED || code == SYNC_REJECT_VERSION) {
            /* Retrying fast cannot help: wait the longest delay. */
            delay = u->reconnect_cap_ms;
        }
    }
    u->got_reject = 0;
    KT_LOG(KT_LOG_INFO, "UPLINK-RETRY", "in_ms=%u attempt=%u", delay,
           sync_backoff_attempt(&u->backoff));
    uv_timer_start(&u->retry_timer, on_retry, delay, 0);
}

/* ---- WebSocket callbacks ---------------------------------------------------------- */

static void on_ws_open(kt_ws_conn *c, void *user)
{
    agent_uplink *u = user;
    (void)c;
    u->was_open = 1;
    KT_LOG(KT_LOG_INFO, "UPLINK-CONNECT", "url=%s site=%s graph_revision=%llu", u->url, u->site,
           (unsigned long long)agent_cache_graph_revision(u->cache));
    kt_err err = { 0 };
    kt_status st = sync_client_on_open(u->sc, &err);
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_tick(u);
}

static void on_ws_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    agent_uplink *u = user;
    (void)c;
    kt_err err = { 0 };
    kt_status st = sync_client_on_message(u->sc, data, len, &err);
    if (st == KT_ECLOSED) {
        sync_reject_code code = sync_client_last_reject_code(u->sc);
        u->got_reject = 1;
        count_reject(u, code);
        KT_LOG(KT_LOG_WARN, "UPLINK-REJECT", "code=%s retry_after_ms=%u err=\"%s\"",
               sync_msg_reject_str(code), sync_client_last_retry_after_ms(u->sc), err.msg);
        if (u->conn != NULL) {
            kt_ws_conn_close(u->conn, 1000, "rejected");
        }
        return;
    }
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_tick(u);
}

static void on_ws_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    agent_uplink *u = user;
    (void)c;
    u->conn = NULL;
    int was_welcomed = sync_client_welcomed(u->sc);
    sync_client_on_close(u->sc);
    kt_metrics_set(u->m_connected, 0);
    if (u->timers_live) {
        uv_timer_stop(&u->tick_timer);
    }
    char q[160];
    if (u->was_open) {
        KT_LOG(was_welcomed ? KT_LOG_WARN : KT_LOG_INFO, "UPLINK-CONN-LOST",
               "url=%s code=%d reason=%s", u->url, code, kt_log_quote(q, sizeof q, reason));
    } else {
        KT_LOG(KT_LOG_INFO, "UPLINK-CONNECT-FAIL", "url=%s code=%d reason=%s", u->url, code,
               kt_log_quote(q, sizeof q, reason));
    }
    u->was_open = 0;
    schedule_retry(u);
}

static void connect_now(agent_uplink *u)
{
    if (u->stopping || u->conn != NULL) {
        return;
    }
    kt_ws_client_opts o;
    memset(&o, 0, sizeof o);
    o.url = u->url;
    o.subprotocol = SYNC_WS_SUBPROTOCOL;
    o.tls_ca_file = u->ca_file;
    o.connect_timeout_s = (u->connect_timeout_ms + 999u) / 1000u;
    o.ws.max_message_bytes = u->max_message_bytes;
    o.ws.on_open = on_ws_open;
    o.ws.on_message = on_ws_message;
    o.ws.on_close = on_ws_close;
    o.ws.user = u;
    u->was_open = 0;
    kt_err err = { 0 };
    kt_status st = kt_ws_client_new(&u->conn, u->net, &o, &err);
    if (st != KT_OK) {
        u->conn = NULL;
        KT_LOG(KT_LOG_ERR, "UPLINK-CONNECT-FAIL", "url=%s err=\"%s\"", u->url, err.msg);
        schedule_retry(u);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

kt_status agent_uplink_new(agent_uplink **out, const agent_uplink_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts->site == NULL || opts->token == NULL || opts->hub_url == NULL || opts->net == NULL ||
        opts->cache == NULL) {
        return kt_err_set(err, KT_EINVAL, "uplink: site, token, hub_url, net and cache are required");
    }
    agent_uplink *u = kt_xcalloc(1, sizeof *u);
    u->site = kt_xstrdup(opts->site);
    u->token = kt_xstrdup(opts->token);
    u->url = kt_xstrdup(opts->hub_url);
    u->ca_file = opts->ca_file != NULL ? kt_xstrdup(opts->ca_file) : NULL;
    u->connect_timeout_ms = opts->connect_timeout_ms != 0 ? opts->connect_timeout_ms : 10000;
    u->max_message_bytes =
        opts->max_message_bytes != 0 ? opts->max_message_bytes : (size_t)16 * 1024 * 1024;
    u->net = opts->net;
    u->cache = opts->cache;
    u->metrics = opts->metrics;
    sync_backoff_opts bo = { opts->reconnect_base_ms, opts->reconnect_cap_ms, NULL, NULL };
    sync_backoff_init(&u->backoff, &bo);
    u->reconnect_cap_ms = opts->reconnect_cap_ms != 0 ? opts->reconnect_cap_ms : 30000;

    sync_capacity cap = { true, opts->cpu_millis, true, opts->memory_bytes };
    sync_client_opts so;
    memset(&so, 0, sizeof so);
    so.site = u->site;
    so.token = u->token;
    so.agent_version = "ktwin-agent/0.1.0";
    so.capacity = &cap;
    so.limits.max_message_bytes = u->max_message_bytes;
    so.limits.max_objects = 1000000;
    sync_client_ops ops = {
        .send = op_send,
        .now_ms = op_now_ms,
        .wall_ms = op_wall_ms,
        .graph_revision = op_graph_revision,
        .placement_revision = op_placement_revision,
        .snapshot_begin = op_snapshot_begin,
        .snapshot_put = op_snapshot_put,
        .snapshot_commit = op_snapshot_commit,
        .snapshot_abort = op_snapshot_abort,
        .delta_apply = op_delta_apply,
        .placement_apply = op_placement_apply,
        .on_welcome = op_on_welcome,
    };
    kt_status st = sync_client_new(&u->sc, &so, &ops, u, err);
    if (st != KT_OK) {
        kt_free(u->site);
        kt_free(u->token);
        kt_free(u->url);
        kt_free(u->ca_file);
        kt_free(u);
        return st;
    }
    uv_loop_t *loop = kt_net_loop(u->net);
    uv_timer_init(loop, &u->retry_timer);
    uv_timer_init(loop, &u->tick_timer);
    u->retry_timer.data = u;
    u->tick_timer.data = u;
    u->timers_live = 1;
    register_metrics(u);
    update_store_metrics(u);
    *out = u;
    return KT_OK;
}

void agent_uplink_start(agent_uplink *u)
{
    connect_now(u);
}

int agent_uplink_connected(const agent_uplink *u)
{
    return u->conn != NULL && sync_client_welcomed(u->sc);
}

void agent_uplink_stop(agent_uplink *u)
{
    if (u == NULL || u->stopping) {
        return;
    }
    u->stopping = 1;
    if (u->conn != NULL) {
        kt_ws_conn_close(u->conn, 1001, "shutdown");
    }
    if (u->timers_live) {
        uv_timer_stop(&u->retry_timer);
        uv_timer_stop(&u->tick_timer);
        uv_close((uv_handle_t *)&u->retry_timer, NULL);
        uv_close((uv_handle_t *)&u->tick_timer, NULL);
        u->timers_live = 0;
    }
}

void agent_uplink_free(agent_uplink *u)
{
    if (u == NULL) {
        return;
    }
    sync_client_free(u->sc);
    kt_free(u->site);
    if (u->token != NULL) {
        memset(u->token, 0, strlen(u->token));
    }
    kt_free(u->token);
    kt_free(u->url);
    kt_free(u->ca_file);
    kt_free(u);
}
