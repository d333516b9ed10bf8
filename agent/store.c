/*
 * agent/store.c — sync_client store ops over agent_cache (see store.h).
 *
 * Every op converts the borrowed sync structs to cache structs (borrowing
 * the same strings) and calls the cache, which does each commit in one
 * SQLite transaction. Timing uses the monotonic clock around cache calls
 * only, so last_commit_ms excludes the time chunks spend on the wire.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "uplink"
#include "store.h"

#include <string.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "sync/msg.h"

/* ---- metrics ------------------------------------------------------------------ */

static void register_metrics(agent_store *s, kt_metrics *r)
{
    if (r == NULL) {
        return;
    }
    kt_err err = { 0 };
    kt_metrics_gauge(&s->_m_graph_rev, r, "ktwin_agent_graph_revision",
                     "Graph revision committed in the cache", NULL, &err);
    kt_metrics_gauge(&s->_m_place_rev, r, "ktwin_agent_placement_revision",
                     "Placement revision committed in the cache", NULL, &err);
    kt_metrics_counter(&s->_m_snapshots, r, "ktwin_agent_snapshots_total",
                       "Snapshots committed to the cache", NULL, &err);
    kt_metrics_counter(&s->_m_deltas, r, "ktwin_agent_deltas_total",
                       "Deltas committed to the cache", NULL, &err);
    kt_metrics_counter(&s->_m_placements, r, "ktwin_agent_placements_total",
                       "Placement updates committed to the cache", NULL, &err);
    kt_metrics_gauge(&s->_m_last_commit_ms, r, "ktwin_agent_last_commit_ms",
                     "Cache time of the last snapshot or delta commit, in milliseconds", NULL,
                     &err);
    static const char *const l_iface[] = { "kind", "twininterfaces", NULL };
    static const char *const l_inst[] = { "kind", "twininstances", NULL };
    static const char *const l_pol[] = { "kind", "placementpolicies", NULL };
    static const char help_obj[] = "Objects in the cache by kind";
    kt_metrics_gauge(&s->_m_obj_iface, r, "ktwin_agent_objects", help_obj, l_iface, &err);
    kt_metrics_gauge(&s->_m_obj_inst, r, "ktwin_agent_objects", help_obj, l_inst, &err);
    kt_metrics_gauge(&s->_m_obj_policy, r, "ktwin_agent_objects", help_obj, l_pol, &err);
    if (err.status != KT_OK) {
        KT_LOG(KT_LOG_ERR, "UPLINK-METRICS", "err=\"%s\"", err.msg);
    }
}

void agent_store_update_metrics(agent_store *s)
{
    kt_metrics_set(s->_m_graph_rev, (double)agent_cache_graph_revision(s->cache));
    kt_metrics_set(s->_m_place_rev, (double)agent_cache_placement_revision(s->cache));
    kt_metrics_set(s->_m_obj_iface, (double)agent_cache_count(s->cache, AGENT_KIND_INTERFACE));
    kt_metrics_set(s->_m_obj_inst, (double)agent_cache_count(s->cache, AGENT_KIND_INSTANCE));
    kt_metrics_set(s->_m_obj_policy, (double)agent_cache_count(s->cache, AGENT_KIND_POLICY));
}

void agent_store_init(agent_store *s,
                      agent_cache *cache,
                      kt_metrics *metrics,
                      kt_status (*send)(const uint8_t *buf, size_t len, void *transport_user),
                      void (*on_welcome)(const sync_welcome *w, void *transport_user),
                      void *transport_user)
{
    memset(s, 0, sizeof *s);
    s->cache = cache;
    s->send = send;
    s->on_welcome = on_welcome;
    s->transport_user = transport_user;
    register_metrics(s, metrics);
    agent_store_update_metrics(s);
}

/* ---- conversions -------------------------------------------------------------- */

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

static kt_status to_cache_object(const sync_object *src, agent_cache_object *o, kt_err *err)
{
    o->kind = kind_name(src->kind);
    if (o->kind == NULL) {
        return kt_err_set(err, KT_EPROTO, "object %s: unknown kind %d", src->name, (int)src->kind);
    }
    o->name = src->name;
    o->body = (const char *)src->body;
    o->body_len = src->body_len;
    o->revision = src->revision;
    o->deleted = src->deleted ? 1 : 0;
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

/* ---- ops ---------------------------------------------------------------------- */

static kt_status op_send(const uint8_t *buf, size_t len, void *user)
{
    agent_store *s = user;
    return s->send(buf, len, s->transport_user);
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
    agent_store *s = user;
    return agent_cache_graph_revision(s->cache);
}

static uint64_t op_placement_revision(void *user)
{
    agent_store *s = user;
    return agent_cache_placement_revision(s->cache);
}

static kt_status op_snapshot_begin(uint64_t revision, kt_err *err, void *user)
{
    agent_store *s = user;
    uint64_t t0 = kt_clock_mono_ns();
    s->_snap_ns = 0;
    s->_snap_objects = 0;
    kt_status st = agent_cache_snapshot_begin(s->cache, revision, err);
    s->_snap_ns += kt_clock_mono_ns() - t0;
    return st;
}

static kt_status op_snapshot_put(const sync_object *objs, size_t n, kt_err *err, void *user)
{
    agent_store *s = user;
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = KT_OK;
    for (size_t i = 0; i < n && st == KT_OK; i++) {
        agent_cache_object o;
        st = to_cache_object(&objs[i], &o, err);
        if (st == KT_OK) {
            st = agent_cache_snapshot_put(s->cache, &o, err);
        }
    }
    s->_snap_objects += n;
    s->_snap_ns += kt_clock_mono_ns() - t0;
    return st;
}

static void committed(agent_store *s, const char *kind, uint64_t rev, uint64_t n, double ms)
{
    s->last_commit_ms = ms;
    s->last_commit_wall_ms = kt_clock_wall_ms();
    kt_metrics_set(s->_m_last_commit_ms, ms);
    agent_store_update_metrics(s);
    KT_LOG(n > 0 || strcmp(kind, "snapshot") == 0 ? KT_LOG_INFO : KT_LOG_DEBUG, "UPLINK-COMMIT",
           "kind=%s revision=%llu objects=%llu commit_ms=%.3f wall_ms=%llu instances=%llu", kind,
           (unsigned long long)rev, (unsigned long long)n, ms,
           (unsigned long long)s->last_commit_wall_ms,
           (unsigned long long)agent_cache_count(s->cache, AGENT_KIND_INSTANCE));
}

static kt_status op_snapshot_commit(uint64_t revision, kt_err *err, void *user)
{
    agent_store *s = user;
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = agent_cache_snapshot_commit(s->cache, err);
    s->_snap_ns += kt_clock_mono_ns() - t0;
    if (st != KT_OK) {
        return st;
    }
    if (agent_cache_graph_revision(s->cache) != revision) {
        return kt_err_set(err, KT_EINTERNAL, "snapshot committed at %llu, expected %llu",
                          (unsigned long long)agent_cache_graph_revision(s->cache),
                          (unsigned long long)revision);
    }
    kt_metrics_inc(s->_m_snapshots);
    committed(s, "snapshot", revision, s->_snap_objects, (double)s->_snap_ns / 1e6);
    return KT_OK;
}

static void op_snapshot_abort(void *user)
{
    agent_store *s = user;
    agent_cache_snapshot_abort(s->cache);
}

static kt_status op_delta_apply(const sync_delta *d, kt_err *err, void *user)
{
    agent_store *s = user;
    agent_cache_object *objs = d->n_objects > 0 ? kt_xcalloc(d->n_objects, sizeof *objs) : NULL;
    kt_status st = KT_OK;
    for (size_t i = 0; i < d->n_objects && st == KT_OK; i++) {
        st = to_cache_object(&d->objects[i], &objs[i], err);
    }
    uint64_t t0 = kt_clock_mono_ns();
    if (st == KT_OK) {
        st = agent_cache_delta_apply(s->cache, d->from_revision, d->to_revision, objs, d->n_objects,
                                     err);
    }
    double ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
    kt_free(objs);
    if (st != KT_OK) {
        return st;
    }
    kt_metrics_inc(s->_m_deltas);
    committed(s, "delta", d->to_revision, d->n_objects, ms);
    return KT_OK;
}

static kt_status op_placement_apply(const sync_placement *p, kt_err *err, void *user)
{
    agent_store *s = user;
    agent_cache_placement *items =
        p->n_interfaces > 0 ? kt_xcalloc(p->n_interfaces, sizeof *items) : NULL;
    kt_status st = KT_OK;
    for (size_t i = 0; i < p->n_interfaces; i++) {
        const sync_iface_placement *src = &p->interfaces[i];
        items[i].interface = src->interface;
        items[i].where = where_name(src->where);
        items[i].site = src->site;
        items[i].rule = src->rule;
        items[i].reason = src->reason;
        if (items[i].where == NULL) {
            st = kt_err_set(err, KT_EPROTO, "placement of %s: unknown where %d", src->interface,
                            (int)src->where);
            break;
        }
    }
    if (st == KT_OK) {
        st = agent_cache_placement_apply(s->cache, p->revision, items, p->n_interfaces, err);
    }
    kt_free(items);
    if (st != KT_OK) {
        return st;
    }
    kt_metrics_inc(s->_m_placements);
    agent_store_update_metrics(s);
    KT_LOG(KT_LOG_INFO, "UPLINK-PLACEMENT", "revision=%llu interfaces=%zu",
           (unsigned long long)p->revision, p->n_interfaces);
    return KT_OK;
}

static void op_on_welcome(const sync_welcome *w, void *user)
{
    agent_store *s = user;
    if (s->on_welcome != NULL) {
        s->on_welcome(w, s->transport_user);
    }
}

void agent_store_client_ops(sync_client_ops *ops)
{
    memset(ops, 0, sizeof *ops);
    ops->send = op_send;
    ops->now_ms = op_now_ms;
    ops->wall_ms = op_wall_ms;
    ops->graph_revision = op_graph_revision;
    ops->placement_revision = op_placement_revision;
    ops->snapshot_begin = op_snapshot_begin;
    ops->snapshot_put = op_snapshot_put;
    ops->snapshot_commit = op_snapshot_commit;
    ops->snapshot_abort = op_snapshot_abort;
    ops->delta_apply = op_delta_apply;
    ops->placement_apply = op_placement_apply;
    ops->on_welcome = op_on_welcome;
}
