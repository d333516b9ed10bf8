/*
 * hub/fed.c — federation: sync sessions, per-site subgraphs and deltas,
 * placement (see fed.h for what it does and the lifecycle).
 *
 * DESIGN
 *   State per site (fed_site, hung off hub_site.user):
 *     - members: the instances of the site's subgraph at the fed revision
 *       (kt_map instance name -> model_instance*, keys borrowed from the
 *       current model: hub_graph keeps the previous model alive until every
 *       subscriber of the next change has returned, which is exactly as long
 *       as we need the old keys);
 *     - ring: the last FED_RING_MAX_ENTRIES per-revision deltas as names and
 *       ops only (kind, name, deleted), contiguous from ring_base to the fed
 *       revision. Bodies are read from the graph when a delta is sent, so the
 *       ring stays small. A change that touched more than FED_DELTA_MAX_OBJECTS
 *       of a site's objects is stored as a "resync" entry: no reconnect can
 *       cross it with a delta, and a connected agent is closed with reason
 *       "resync" so it reconnects and takes a (chunked) snapshot;
 *     - view: the placement as the site sees it, as a canonical string of
 *       (interface, where, site) triples, to push PlacementUpdate only when
 *       it changes.
 *   Every graph change (hub_graph_subscribe): recompute the placement with
 *   the previous result, recompute every site's members, build each site's
 *   delta (changed objects in the new set, objects that entered, deletes of
 *   objects that left or were deleted; TwinInterfaces go to every site),
 *   append it to the ring and push it to the connected site; sites the change
 *   does not touch get an empty delta so their revision stays in step.
 *   Presence and capacity changes recompute the placement only (instance ->
 *   site does not depend on them), coalesced by a short timer.
 *
 *   Reconnect plan for an agent at revision R, hub (fed) revision C:
 *     R == C and no agents-file change since R   -> UP_TO_DATE
 *     the ring covers R..C without a resync entry
 *       and the merged delta (last op per object wins) is small -> DELTA
 *     otherwise                                  -> SNAPSHOT
 *   A snapshot walks a name list taken at plan time (interfaces, then the
 *   site's instances), reading each body when its batch is produced; an
 *   object changed meanwhile is sent newer, and the deltas queued behind the
 *   snapshot (R -> R+1 ...) converge the agent (upserts are idempotent, a
 *   delete of an absent object is a no-op). The sync_server asks for batches
 *   only when the WebSocket drained (send() returns KT_EAGAIN over
 *   FED_WS_QUEUE_BYTES), so a 711k-instance snapshot streams without
 *   holding the loop.
 *
 * Thread: loop only. Ownership: see fed.h.
 */
#define KT_LOG_MOD "fed"
#include "hub/fed.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/sites.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/graph.h"
#include "model/placement.h"
#include "sync/admit.h"
#include "sync/msg.h"
#include "sync/server.h"
/* --- hubev: the event plane (hub/events.h) --- */
#ifdef KT_HUB_HAVE_EVENTS
#include "hub/events.h"
#endif
/* --- end hubev --- */

#define FED_SYNC_PATH         "/sync"
#define FED_RING_MAX_ENTRIES  1024u
#define FED_RING_MAX_NAMES    200000u
#define FED_DELTA_MAX_OBJECTS 2000u
#define FED_DELTA_MAX_BYTES   (2u * 1024u * 1024u)
#define FED_SNAPSHOT_BATCH    256u
/* Send queue per connection: over it the session pauses until drained (a snapshot streams). */
#define FED_WS_QUEUE_BYTES    (4u * 1024u * 1024u)
#define FED_TICK_MS           250u
#define FED_FLUSH_TICKS       8u /* flush dirty site rows every 2 s */
#define FED_PRESENCE_DELAY_MS 20u
#define FED_BODY_MAX          (64u * 1024u * 1024u)

typedef struct fed_sess fed_sess;

/* One object op in a ring entry. */
typedef struct fed_op {
    uint8_t kind;
    uint8_t deleted;
    char *name;
} fed_op;

typedef struct fed_ring_entry {
    uint64_t from, to;
    bool resync; /* too big to replay: a reconnect across it needs a snapshot */
    fed_op *ops;
    size_t n_ops;
} fed_ring_entry;

typedef struct fed_site {
    hub_site *hs;
    fed_sess *sess;       /* the welcomed session, or NULL */
    kt_map members;       /* instance name -> model_instance* (current model) */
    fed_ring_entry *ring; /* ring[0] oldest; contiguous */
    size_t ring_n;
    size_t ring_names;
    uint64_t ring_base; /* ring covers ring_base..fed rev (ring empty: only fed rev) */
    char *view;         /* canonical placement view last computed */
    bool view_dirty;    /* view changed since last pushed */
    uint64_t view_rev;  /* placement revision of that view */
} fed_site;

struct fed_sess {
    hub_fed *f;
    kt_ws_conn *conn;
    sync_server *srv;
    fed_site *site; /* after auth */
    bool reject_counted;
    bool closing;
    char peer[64];
    /* snapshot iteration */
    kt_arena snap_names;
    char **snap_name;
    uint8_t *snap_kind;
    size_t snap_n, snap_pos, snap_cap;
    sync_object *batch;
    size_t batch_cap;
    kt_arena scratch;  /* bodies of the current snapshot batch / delta */
    kt_arena pl_arena; /* strings of the last placement handed out */
    /* delta_next result */
    bool plan_delta; /* delta holds the plan's merge, not handed out yet */
    sync_delta delta;
    sync_object *dobjs;
    size_t dobjs_cap;
    /* placement */
    sync_iface_placement *pl;
    size_t pl_cap;
    sync_placement placement;
#ifdef KT_HUB_HAVE_EVENTS
    hub_events_session *es; /* hubev: the session's event plane, after Welcome */
#endif
    fed_sess *prev, *next;
};

struct hub_fed {
    /* The ops every session gets: fed_ops, plus the event streams once
     * hub_fed_set_events ran. Lives as long as the fed, so longer than any session. */
    sync_server_ops ops;
    uv_loop_t *loop;
    kt_http_server *srv;
    hub_graph *graph;
    hub_store *store;
    kt_metrics *metrics;
    hub_sites *sites;
    fed_site *fs; /* parallel to hub_sites_at order */
    size_t n_sites;
    uint64_t rev;            /* graph revision the fed state is at */
    uint64_t snapshot_floor; /* agents at R <= this need a snapshot (agents file changed) */
    uint64_t placement_rev;
    model_placement *placement;
    const char **edge_site; /* per interface (name order): first site running it at the edge */
    size_t n_edge_site;
    char hub_id[40];
    sync_admit admit;
    sync_server_opts sopts;
#ifdef KT_HUB_HAVE_EVENTS
    hub_events *events; /* hubev: hub_fed_set_events; NULL = no event streams */
#endif
    fed_sess *sessions;
    uv_timer_t *tick; /* heap: freed in its close callback */
    uv_timer_t *presence;
    bool presence_pending;
    unsigned tick_count;
    /* metrics */
    kt_metric *m_connected, *m_sessions, *m_snapshots, *m_deltas, *m_recomputes, *m_moves,
        *m_auth_fail, *m_resyncs, *m_change_ms;
};

/* ================================================================== helpers */

static void count_reject(hub_fed *f, fed_sess *s)
{
    if (s->reject_counted || s->srv == NULL) {
        return;
    }
    sync_reject_code code = sync_server_stats_get(s->srv)->reject;
    if (code == SYNC_REJECT_UNSPECIFIED) {
        return;
    }
    s->reject_counted = true;
    if (f->metrics != NULL) {
        kt_metric *m = NULL;
        if (kt_metrics_counter(&m, f->metrics, "ktwin_hub_sync_rejects_total",
                               "Sync Hellos or sessions ended with a Reject, by code",
                               (const char *[]){ "code", sync_msg_reject_str(code), NULL },
                               NULL) == KT_OK) {
            kt_metrics_inc(m);
        }
    }
}

/*
 * A push did not fit the session's queue (the agent reads slower than the hub
 * changes): close with "resync"; the agent reconnects and catches up.
 */
static void sess_resync(hub_fed *f, fed_sess *s, const char *why)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    KT_LOG(KT_LOG_INFO, "SYNC-RESYNC", "site=%s peer=%s reason=%s",
           s->site != NULL ? s->site->hs->name : "-", s->peer, why);
    kt_metrics_inc(f->m_resyncs);
    kt_ws_conn_close(s->conn, 1000, "resync");
}

/* Handle a non-OK status of a sync_server call: count, log, close the connection. */
static void sess_end(fed_sess *s, kt_status st, const kt_err *err)
{
    hub_fed *f = s->f;
    count_reject(f, s);
    if (s->closing) {
        return;
    }
    s->closing = true;
    const char *site = s->site != NULL ? s->site->hs->name : "-";
    int code = 1000;
    const char *reason = "rejected";
    if (st == KT_EPROTO || st == KT_ETOOBIG) {
        code = 1002;
        reason = "protocol error";
    } else if (st == KT_ETIMEDOUT) {
        code = 1001;
        reason = "timeout";
    } else if (st != KT_ECLOSED) {
        code = 1011;
        reason = "hub error";
    }
    if (st != KT_ECLOSED) {
        char q[300];
        KT_LOG(KT_LOG_NOTICE, "SYNC-SESSION-END", "site=%s peer=%s status=%s err=%s", site, s->peer,
               kt_status_str(st), kt_log_quote(q, sizeof q, err != NULL ? err->msg : ""));
    }
    kt_ws_conn_close(s->conn, code, reason);
}

static void sess_check(fed_sess *s, kt_status st, const kt_err *err)
{
    if (st != KT_OK) {
        sess_end(s, st, err);
    }
}

/* ============================================================== placement */

static sync_where to_where(model_placement_where w)
{
    switch (w) {
    case MODEL_WHERE_EDGE:
        return SYNC_WHERE_EDGE;
    case MODEL_WHERE_PENDING:
        return SYNC_WHERE_PENDING;
    default:
        return SYNC_WHERE_CLOUD;
    }
}

/*
 * The first site (name order) where iface runs at the edge, or NULL. Used for
 * OTHER_SITE: a site with no instance of an interface that runs on another
 * edge site sees it there.
 */
static const char *edge_site_of(const hub_fed *f, size_t iface_index)
{
    return iface_index < f->n_edge_site ? f->edge_site[iface_index] : NULL;
}

/* Fill f->edge_site (per interface, in the placement's name order) from the current placement. */
static void index_edge_sites(hub_fed *f)
{
    size_t n = model_placement_n_ifaces(f->placement);
    f->edge_site = kt_xrealloc(f->edge_site, (n > 0 ? n : 1) * sizeof *f->edge_site);
    f->n_edge_site = n;
    for (size_t k = 0; k < n; k++) {
        const model_placement_iface *pi = model_placement_iface_at(f->placement, k);
        f->edge_site[k] = NULL;
        if (pi->n_edge == 0) {
            continue;
        }
        for (size_t i = 0; i < f->n_sites; i++) {
            const model_placement_decision *d =
                model_placement_decision_get(f->placement, pi->name, f->fs[i].hs->name);
            if (d != NULL && d->where == MODEL_WHERE_EDGE) {
                f->edge_site[k] = f->fs[i].hs->name;
                break;
            }
        }
    }
}

/*
 * Build the site's view into *out (n_out entries; strings borrowed from the
 * placement, or copied into arena when arena is not NULL) and, when key is
 * not NULL, its canonical key.
 */
static void build_view(hub_fed *f,
                       const fed_site *site,
                       kt_arena *arena,
                       sync_iface_placement **arr,
                       size_t *cap,
                       size_t *n_out,
                       kt_buf *key)
{
    size_t n = 0;
    const model_placement_decision *d =
        model_placement_site_decisions(f->placement, site->hs->name, &n);
    if (arr != NULL && n > *cap) {
        *cap = n;
        *arr = kt_xrealloc(*arr, n * sizeof **arr);
    }
    for (size_t i = 0; i < n; i++) {
        sync_where w = to_where(d[i].where);
        const char *other = NULL;
        if (d[i].where == MODEL_WHERE_CLOUD && d[i].n_instances == 0) {
            other = edge_site_of(f, i);
            if (other != NULL) {
                w = SYNC_WHERE_OTHER_SITE;
            }
        }
        if (key != NULL) {
            (void)kt_buf_printf(key, "%s %d %s\n", d[i].iface, (int)w, other != NULL ? other : "");
        }
        if (arr != NULL) {
            sync_iface_placement *p = &(*arr)[i];
            memset(p, 0, sizeof *p);
            p->interface = arena != NULL ? kt_arena_strdup(arena, d[i].iface) : d[i].iface;
            p->where = w;
            if (other != NULL) {
                p->site = arena != NULL ? kt_arena_strdup(arena, other) : other;
            }
            if (d[i].rule != NULL) {
                p->rule = arena != NULL ? kt_arena_strdup(arena, d[i].rule) : d[i].rule;
            }
            if (d[i].reason != NULL) {
                p->reason = arena != NULL ? kt_arena_strdup(arena, d[i].reason) : d[i].reason;
            }
        }
    }
    *n_out = n;
}

static void push_placement(hub_fed *f, fed_site *site)
{
    if (site->sess == NULL || site->sess->closing) {
        return;
    }
    fed_sess *s = site->sess;
    kt_arena_reset(&s->pl_arena);
    size_t n = 0;
    build_view(f, site, &s->pl_arena, &s->pl, &s->pl_cap, &n, NULL);
    sync_placement p = { .revision = site->view_rev, .interfaces = s->pl, .n_interfaces = n };
    kt_err err = { 0 };
    kt_status st = sync_server_push_placement(s->srv, &p, &err);
    if (st == KT_ETOOBIG) {
        sess_resync(f, s, "queue-full");
        return;
    }
    sess_check(s, st, &err);
}

#define FED_MOVE_LOG_MAX 50u

typedef struct move_log {
    const model_placement *cur;
    size_t n;
} move_log;

/* Log one changed (interface, site) decision with the rule and reason that decided it. */
static void log_move(const model_placement_change *c, void *user)
{
    move_log *ml = user;
    if (++ml->n > FED_MOVE_LOG_MAX) {
        return;
    }
    const model_placement_decision *d = model_placement_decision_get(ml->cur, c->iface, c->site);
    char q[600];
    KT_LOG(KT_LOG_INFO, "PLACEMENT-MOVE", "iface=%s site=%s from=%s to=%s rule=%s reason=%s",
           c->iface, c->site, model_placement_where_str(c->old_where),
           model_placement_where_str(c->new_where), d != NULL && d->rule != NULL ? d->rule : "-",
           kt_log_quote(q, sizeof q, d != NULL && d->reason != NULL ? d->reason : ""));
}

/* Push the views that changed since the last push. */
static void push_dirty_views(hub_fed *f)
{
    for (size_t i = 0; i < f->n_sites; i++) {
        if (f->fs[i].view_dirty) {
            f->fs[i].view_dirty = false;
            push_placement(f, &f->fs[i]);
        }
    }
}

/* Recompute the placement from the current model and sites; mark changed views dirty. */
static kt_status recompute_placement(hub_fed *f, kt_err *err)
{
    model_placement_site *in = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *in);
    for (size_t i = 0; i < f->n_sites; i++) {
        const hub_site *hs = f->fs[i].hs;
        in[i].name = hs->name;
        in[i].connected = f->fs[i].sess != NULL ? 1 : 0;
        in[i].cpu_millis = hs->has_capacity ? hs->cpu_millis : 0;
        in[i].memory_bytes = hs->has_capacity ? hs->memory_bytes : 0;
    }
    model_placement *np = NULL;
    kt_status st =
        model_placement_compute(&np, hub_graph_model(f->graph), in, f->n_sites, f->placement, err);
    kt_free(in);
    if (st != KT_OK) {
        return st;
    }
    move_log ml = { np, 0 };
    size_t moves = f->placement != NULL ? model_placement_diff(f->placement, np, log_move, &ml) : 0;
    if (moves > FED_MOVE_LOG_MAX) {
        KT_LOG(KT_LOG_INFO, "PLACEMENT-MOVE", "suppressed=%zu", moves - FED_MOVE_LOG_MAX);
    }
    model_placement_free(f->placement);
    f->placement = np;
    index_edge_sites(f);
    kt_metrics_inc(f->m_recomputes);
    kt_metrics_add(f->m_moves, moves);
    if (moves > 0) {
        KT_LOG(KT_LOG_INFO, "PLACEMENT-RECOMPUTED", "moves=%zu decisions=%zu", moves,
               model_placement_get_stats(np)->n_decisions);
    }
    /* Views: bump the placement revision once if any site's view changed. */
    kt_buf key;
    kt_buf_init(&key, SIZE_MAX / 2);
    bool bumped = false;
    for (size_t i = 0; i < f->n_sites; i++) {
        fed_site *site = &f->fs[i];
        kt_buf_reset(&key);
        size_t n = 0;
        build_view(f, site, NULL, NULL, NULL, &n, &key);
        const char *k = key.data != NULL ? key.data : "";
        if (site->view != NULL && strcmp(site->view, k) == 0) {
            continue;
        }
        if (!bumped) {
            f->placement_rev++;
            bumped = true;
        }
        kt_free(site->view);
        site->view = kt_xstrdup(k);
        site->view_rev = f->placement_rev;
        site->view_dirty = true;
    }
    kt_buf_fini(&key);
    if (bumped) {
        char v[32];
        snprintf(v, sizeof v, "%" PRIu64, f->placement_rev);
        kt_err e2 = { 0 };
        if (hub_sites_meta_put(f->sites, "placement_revision", v, &e2) != KT_OK) {
            KT_LOG(KT_LOG_WARN, "FED-DB-FAIL", "what=placement_revision err=\"%s\"", e2.msg);
        }
    }
    return KT_OK;
}

static void presence_cb(uv_timer_t *t)
{
    hub_fed *f = t->data;
    f->presence_pending = false;
    kt_err err = { 0 };
    if (recompute_placement(f, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "PLACEMENT-FAIL", "err=\"%s\"", err.msg);
    }
    push_dirty_views(f);
}

static void schedule_presence(hub_fed *f)
{
    if (!f->presence_pending) {
        f->presence_pending = true;
        uv_timer_start(f->presence, presence_cb, FED_PRESENCE_DELAY_MS, 0);
    }
}

/* ============================================================ membership */

/* Rebuild every site's members from the current model and placement into fresh maps. */
static void compute_members(hub_fed *f, kt_map *out /* n_sites maps, initialised here */)
{
    const model *m = hub_graph_model(f->graph);
    size_t n = model_n_instances(m);
    model_instance ***seeds = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *seeds);
    size_t *n_seeds = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *n_seeds);
    size_t *caps = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *caps);
    kt_map idx;
    kt_map_init(&idx);
    for (size_t i = 0; i < f->n_sites; i++) {
        kt_map_put(&idx, f->fs[i].hs->name, (void *)(uintptr_t)(i + 1));
    }
    for (size_t i = 0; i < n; i++) {
        model_instance *inst = model_instance_at(m, i);
        const char *s = model_placement_instance_site(f->placement, inst->name);
        if (s == NULL) {
            continue;
        }
        uintptr_t k = (uintptr_t)kt_map_get(&idx, s);
        if (k == 0) {
            continue;
        }
        size_t si = k - 1;
        if (n_seeds[si] == caps[si]) {
            caps[si] = caps[si] == 0 ? 64 : caps[si] * 2;
            seeds[si] = kt_xrealloc(seeds[si], caps[si] * sizeof *seeds[si]);
        }
        seeds[si][n_seeds[si]++] = inst;
    }
    for (size_t i = 0; i < f->n_sites; i++) {
        model_instance_set set;
        model_instance_set_init(&set);
        model_subgraph(m, seeds[i], n_seeds[i], 1, &set);
        kt_map_init(&out[i]);
        kt_map_reserve(&out[i], set.n);
        for (size_t k = 0; k < set.n; k++) {
            kt_map_put(&out[i], set.items[k]->name, set.items[k]);
        }
        model_instance_set_fini(&set);
        kt_free(seeds[i]);
    }
    kt_map_fini(&idx);
    kt_free(seeds);
    kt_free(n_seeds);
    kt_free(caps);
}

/* ================================================================== ring */

static void ring_entry_fini(fed_ring_entry *e)
{
    for (size_t i = 0; i < e->n_ops; i++) {
        kt_free(e->ops[i].name);
    }
    kt_free(e->ops);
    memset(e, 0, sizeof *e);
}

static void ring_drop_oldest(fed_site *site)
{
    KT_ASSERT(site->ring_n > 0);
    site->ring_names -= site->ring[0].n_ops;
    site->ring_base = site->ring[0].to;
    ring_entry_fini(&site->ring[0]);
    memmove(&site->ring[0], &site->ring[1], (site->ring_n - 1) * sizeof site->ring[0]);
    site->ring_n--;
}

/* Append (takes ops). */
static void
ring_append(fed_site *site, uint64_t from, uint64_t to, bool resync, fed_op *ops, size_t n_ops)
{
    if (site->ring == NULL) {
        site->ring = kt_xcalloc(FED_RING_MAX_ENTRIES, sizeof *site->ring);
    }
    while (site->ring_n > 0 && (site->ring_n >= FED_RING_MAX_ENTRIES ||
                                site->ring_names + n_ops > FED_RING_MAX_NAMES)) {
        ring_drop_oldest(site);
    }
    if (site->ring_n == 0) {
        site->ring_base = from;
    }
    fed_ring_entry *e = &site->ring[site->ring_n++];
    e->from = from;
    e->to = to;
    e->resync = resync;
    e->ops = ops;
    e->n_ops = n_ops;
    site->ring_names += n_ops;
}

static void ring_clear(fed_site *site, uint64_t base)
{
    while (site->ring_n > 0) {
        ring_drop_oldest(site);
    }
    site->ring_base = base;
}

/* ================================================================= deltas */

/* Fill obj for (kind, name): the current body (copied into arena) or a delete. */
static size_t
fill_object(hub_fed *f, sync_object *o, int kind, const char *name, bool deleted, kt_arena *arena)
{
    memset(o, 0, sizeof *o);
    o->kind = (sync_kind)kind;
    o->name = arena != NULL ? kt_arena_strdup(arena, name) : name;
    if (!deleted) {
        size_t len = 0;
        uint64_t rev = 0;
        const char *body = hub_graph_body(f->graph, (hub_kind)kind, name, &len, &rev);
        if (body != NULL) {
            o->body = (const uint8_t *)(arena != NULL ? kt_arena_strndup(arena, body, len) : body);
            o->body_len = len;
            o->revision = rev;
            return len + strlen(name);
        }
    }
    o->deleted = true;
    o->revision = f->rev;
    return strlen(name);
}

typedef struct op_vec {
    fed_op *ops;
    size_t n, cap;
    bool overflow; /* more than FED_DELTA_MAX_OBJECTS: the rest is not kept */
} op_vec;

static void op_push(op_vec *v, int kind, const char *name, bool deleted)
{
    if (v->n >= FED_DELTA_MAX_OBJECTS) {
        v->overflow = true;
        return;
    }
    if (v->n == v->cap) {
        v->cap = v->cap == 0 ? 16 : v->cap * 2;
        v->ops = kt_xrealloc(v->ops, v->cap * sizeof *v->ops);
    }
    v->ops[v->n].kind = (uint8_t)kind;
    v->ops[v->n].deleted = deleted ? 1u : 0u;
    v->ops[v->n].name = kt_xstrdup(name);
    v->n++;
}

static void op_vec_fini(op_vec *v)
{
    for (size_t i = 0; i < v->n; i++) {
        kt_free(v->ops[i].name);
    }
    kt_free(v->ops);
    memset(v, 0, sizeof *v);
}

/* Push the delta (from, to, ops) to the site's session, bodies read now. */
static void
push_delta(hub_fed *f, fed_site *site, uint64_t from, uint64_t to, const fed_op *ops, size_t n_ops)
{
    fed_sess *s = site->sess;
    if (s == NULL || s->closing) {
        return;
    }
    sync_object *objs = kt_xcalloc(n_ops > 0 ? n_ops : 1, sizeof *objs);
    for (size_t i = 0; i < n_ops; i++) {
        fill_object(f, &objs[i], ops[i].kind, ops[i].name, ops[i].deleted != 0, NULL);
    }
    sync_delta d = {
        .from_revision = from, .to_revision = to, .objects = objs, .n_objects = n_ops
    };
    kt_err err = { 0 };
    kt_status st = sync_server_push_delta(s->srv, &d, &err);
    kt_free(objs);
    if (n_ops > 0) {
        kt_metrics_inc(f->m_deltas);
    }
    if (st == KT_ETOOBIG) {
        sess_resync(f, s, "queue-full");
        return;
    }
    sess_check(s, st, &err);
}

static void on_graph_changed(
    hub_graph *g, uint64_t revision, const hub_change *changes, size_t n_changes, void *user)
{
    hub_fed *f = user;
    (void)g;
    uint64_t t0 = kt_clock_mono_ns();
    uint64_t from = f->rev;
    kt_err err = { 0 };
    if (recompute_placement(f, &err) != KT_OK) {
        /* Cannot happen for a resolved model; keep the old placement. */
        KT_LOG(KT_LOG_ERR, "PLACEMENT-FAIL", "rev=%" PRIu64 " err=\"%s\"", revision, err.msg);
    }
    uint64_t t1 = kt_clock_mono_ns();
    kt_map *nm = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *nm);
    compute_members(f, nm);
    uint64_t t2 = kt_clock_mono_ns();
    /* Changed instances by name (deleted or not), for the entered/left passes. */
    kt_map changed;
    kt_map_init(&changed);
    for (size_t i = 0; i < n_changes; i++) {
        if (changes[i].kind == HUB_KIND_INSTANCE) {
            kt_map_put(&changed, changes[i].name, (void *)&changes[i]);
        }
    }
    f->rev = revision;
    for (size_t si = 0; si < f->n_sites; si++) {
        fed_site *site = &f->fs[si];
        kt_map *om = &site->members;
        op_vec v = { 0 };
        for (size_t i = 0; i < n_changes; i++) {
            const hub_change *c = &changes[i];
            if (c->kind == HUB_KIND_INTERFACE) {
                op_push(&v, c->kind, c->name, c->deleted != 0);
            } else if (c->kind == HUB_KIND_INSTANCE) {
                if (c->deleted) {
                    if (kt_map_get(om, c->name) != NULL) {
                        op_push(&v, c->kind, c->name, true);
                    }
                } else if (kt_map_get(&nm[si], c->name) != NULL) {
                    op_push(&v, c->kind, c->name, false);
                }
            }
        }
        const char *k = NULL;
        void *val = NULL;
        for (size_t it = 0; kt_map_next(&nm[si], &it, &k, &val);) {
            if (kt_map_get(om, k) == NULL && kt_map_get(&changed, k) == NULL) {
                op_push(&v, HUB_KIND_INSTANCE, k, false); /* entered */
            }
        }
        for (size_t it = 0; kt_map_next(om, &it, &k, &val);) {
            if (kt_map_get(&nm[si], k) == NULL) {
                const hub_change *c = kt_map_get(&changed, k);
                if (c == NULL || !c->deleted) {
                    op_push(&v, HUB_KIND_INSTANCE, k, true); /* left */
                }
            }
        }
        kt_map_fini(om);
        site->members = nm[si];
        if (v.overflow) {
            op_vec_fini(&v);
            ring_append(site, from, revision, true, NULL, 0);
            if (site->sess != NULL) {
                sess_resync(f, site->sess, "big-change");
            }
            continue;
        }
        push_delta(f, site, from, revision, v.ops, v.n);
        ring_append(site, from, revision, false, v.ops, v.n);
    }
    kt_map_fini(&changed);
    kt_free(nm);
    /* Placement views after the graph deltas, so agents see objects before placements. */
    push_dirty_views(f);
    double ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
    kt_metrics_set(f->m_change_ms, ms);
    KT_LOG(KT_LOG_DEBUG, "FED-CHANGE",
           "rev=%" PRIu64 " changes=%zu ms=%.1f placement_ms=%.1f members_ms=%.1f", revision,
           n_changes, ms, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
}

/*
 * Merge the ring from `from` to the fed revision into s->delta (bodies
 * copied into s->scratch). KT_ENOTFOUND when the ring does not cover it or a
 * resync entry is in the way; KT_ETOOBIG when the merge is too big.
 */
static kt_status merge_delta(hub_fed *f, fed_sess *s, uint64_t from)
{
    fed_site *site = s->site;
    if (from > f->rev || from < site->ring_base) {
        return KT_ENOTFOUND;
    }
    size_t start = site->ring_n;
    for (size_t i = 0; i < site->ring_n; i++) {
        if (site->ring[i].from == from) {
            start = i;
            break;
        }
    }
    if (start == site->ring_n) {
        return KT_ENOTFOUND;
    }
    kt_map last[HUB_KIND_MAX + 1];
    for (int k = 0; k <= HUB_KIND_MAX; k++) {
        kt_map_init(&last[k]);
    }
    kt_status st = KT_OK;
    size_t n = 0;
    for (size_t i = start; i < site->ring_n && st == KT_OK; i++) {
        const fed_ring_entry *e = &site->ring[i];
        if (e->resync) {
            st = KT_ENOTFOUND;
            break;
        }
        for (size_t j = 0; j < e->n_ops; j++) {
            const fed_op *op = &e->ops[j];
            if (op->kind > HUB_KIND_MAX) {
                continue;
            }
            if (kt_map_put(&last[op->kind], op->name, (void *)op) != NULL) {
                kt_map_set(&last[op->kind], op->name, (void *)op);
            } else {
                n++;
            }
        }
        if (n > FED_DELTA_MAX_OBJECTS) {
            st = KT_ETOOBIG;
        }
    }
    if (st == KT_OK) {
        kt_arena_reset(&s->scratch);
        if (n > s->dobjs_cap) {
            s->dobjs_cap = n;
            s->dobjs = kt_xrealloc(s->dobjs, n * sizeof *s->dobjs);
        }
        size_t i = 0;
        size_t bytes = 0;
        for (int k = 0; k <= HUB_KIND_MAX; k++) {
            const char *key = NULL;
            void *val = NULL;
            for (size_t it = 0; kt_map_next(&last[k], &it, &key, &val);) {
                const fed_op *op = val;
                bytes += fill_object(f, &s->dobjs[i++], op->kind, op->name, op->deleted != 0,
                                     &s->scratch);
            }
        }
        if (bytes > FED_DELTA_MAX_BYTES) {
            st = KT_ETOOBIG;
        }
        s->delta.from_revision = from;
        s->delta.to_revision = f->rev;
        s->delta.objects = s->dobjs;
        s->delta.n_objects = i;
    }
    for (int k = 0; k <= HUB_KIND_MAX; k++) {
        kt_map_fini(&last[k]);
    }
    return st;
}

/* ============================================================== snapshot */

static void snap_add(fed_sess *s, int kind, const char *name)
{
    if (s->snap_n == s->snap_cap) {
        s->snap_cap = s->snap_cap == 0 ? 256 : s->snap_cap * 2;
        s->snap_name = kt_xrealloc(s->snap_name, s->snap_cap * sizeof *s->snap_name);
        s->snap_kind = kt_xrealloc(s->snap_kind, s->snap_cap * sizeof *s->snap_kind);
    }
    s->snap_name[s->snap_n] = kt_arena_strdup(&s->snap_names, name);
    s->snap_kind[s->snap_n] = (uint8_t)kind;
    s->snap_n++;
}

static int snap_iface_cb(const hub_object_view *obj, void *user)
{
    snap_add(user, HUB_KIND_INTERFACE, obj->name);
    return 0;
}

static void snap_release(fed_sess *s)
{
    kt_arena_fini(&s->snap_names);
    kt_arena_init(&s->snap_names, 64 * 1024);
    kt_free(s->snap_name);
    kt_free(s->snap_kind);
    s->snap_name = NULL;
    s->snap_kind = NULL;
    s->snap_n = s->snap_pos = s->snap_cap = 0;
}

static void snap_prepare(hub_fed *f, fed_sess *s)
{
    snap_release(s);
    hub_graph_foreach(f->graph, HUB_KIND_INTERFACE, snap_iface_cb, s);
    const char *k = NULL;
    void *v = NULL;
    for (size_t it = 0; kt_map_next(&s->site->members, &it, &k, &v);) {
        snap_add(s, HUB_KIND_INSTANCE, k);
    }
}

/* =========================================================== sync ops */

static kt_status op_send(const uint8_t *buf, size_t len, void *user)
{
    fed_sess *s = user;
    return kt_ws_conn_send(s->conn, buf, len);
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

static sync_auth_result op_auth(const char *site, const char *token, void *user)
{
    fed_sess *s = user;
    hub_fed *f = s->f;
    hub_site *hs = hub_sites_get(f->sites, site);
    sync_auth_result r = SYNC_AUTH_OK;
    if (hs == NULL) {
        r = SYNC_AUTH_UNKNOWN_SITE;
    } else if (!hub_sites_token_ok(hs, token)) {
        r = SYNC_AUTH_BAD_TOKEN;
    }
    if (r != SYNC_AUTH_OK) {
        char q[300];
        KT_LOG(KT_LOG_WARN, "SYNC-AUTH-FAIL", "site=%s peer=%s reason=%s",
               kt_log_quote(q, sizeof q, site), s->peer,
               r == SYNC_AUTH_UNKNOWN_SITE ? "unknown-site" : "bad-token");
        kt_metrics_inc(f->m_auth_fail);
        return r;
    }
    s->site = hs->user;
    return SYNC_AUTH_OK;
}

static uint32_t op_admit(const char *site, void *user)
{
    fed_sess *s = user;
    uint32_t wait = sync_admit_take(&s->f->admit, kt_clock_mono_ms());
    if (wait != 0) {
        KT_LOG(KT_LOG_DEBUG, "SYNC-BUSY", "site=%s peer=%s retry_after_ms=%u", site, s->peer, wait);
    }
    return wait;
}

static kt_status op_plan(
    sync_mode *mode_out, uint64_t *revision_out, const sync_hello *hello, kt_err *err, void *user)
{
    fed_sess *s = user;
    hub_fed *f = s->f;
    (void)err;
    uint64_t r = hello->graph_revision;
    *revision_out = f->rev;
    bool trusted = f->snapshot_floor == 0 || r > f->snapshot_floor;
    if (r == f->rev && trusted && r != 0) {
        *mode_out = SYNC_MODE_UP_TO_DATE;
        return KT_OK;
    }
    if (r != 0 && trusted && merge_delta(f, s, r) == KT_OK) {
        s->plan_delta = true;
        *mode_out = SYNC_MODE_DELTA;
        kt_metrics_inc(f->m_deltas);
        return KT_OK;
    }
    s->plan_delta = false;
    snap_prepare(f, s);
    *mode_out = SYNC_MODE_SNAPSHOT;
    kt_metrics_inc(f->m_snapshots);
    return KT_OK;
}

static kt_status
op_snapshot_next(const sync_object **objs_out, size_t *n_out, kt_err *err, void *user)
{
    fed_sess *s = user;
    (void)err;
    kt_arena_reset(&s->scratch);
    if (s->batch == NULL) {
        s->batch_cap = FED_SNAPSHOT_BATCH;
        s->batch = kt_xcalloc(s->batch_cap, sizeof *s->batch);
    }
    size_t n = 0;
    while (n < s->batch_cap && s->snap_pos < s->snap_n) {
        size_t i = s->snap_pos++;
        sync_object *o = &s->batch[n];
        fill_object(s->f, o, s->snap_kind[i], s->snap_name[i], false, &s->scratch);
        if (o->deleted) {
            continue; /* gone since the plan: the queued delta deletes it */
        }
        n++;
    }
    *objs_out = s->batch;
    *n_out = n;
    return KT_OK;
}

static void op_snapshot_done(void *user)
{
    snap_release(user);
}

static kt_status op_delta_next(const sync_delta **out, uint64_t from, kt_err *err, void *user)
{
    fed_sess *s = user;
    hub_fed *f = s->f;
    *out = NULL;
    if (from == f->rev) {
        return KT_OK;
    }
    if (s->plan_delta && s->delta.from_revision == from && s->delta.to_revision == f->rev) {
        /* The plan's merge, still current; hand it out once. */
        s->plan_delta = false;
        *out = &s->delta;
        return KT_OK;
    }
    s->plan_delta = false;
    kt_status st = merge_delta(f, s, from);
    if (st != KT_OK) {
        return kt_err_set(err, KT_ENOTFOUND, "delta from revision %" PRIu64 " not available", from);
    }
    *out = &s->delta;
    return KT_OK;
}

static kt_status op_placement(const sync_placement **out, kt_err *err, void *user)
{
    fed_sess *s = user;
    (void)err;
    kt_arena_reset(&s->pl_arena);
    size_t n = 0;
    build_view(s->f, s->site, &s->pl_arena, &s->pl, &s->pl_cap, &n, NULL);
    s->placement.revision = s->site->view_rev;
    s->placement.interfaces = s->pl;
    s->placement.n_interfaces = n;
    *out = &s->placement;
    return KT_OK;
}

/* --- hubev: event streams (hub/events.h). Upstream batches are committed by
 * hub_events in the loop turn's group commit, then acked through
 * sync_server_ack_up; downstream batches come from the site's durable queue. */
#ifdef KT_HUB_HAVE_EVENTS
static void ev_ack_up(uint64_t seq, void *user)
{
    fed_sess *s = user;
    if (s->closing || s->srv == NULL) {
        return;
    }
    kt_err err = { 0 };
    sess_check(s, sync_server_ack_up(s->srv, seq, &err), &err);
}

static void ev_up_failed(const kt_err *err, void *user)
{
    fed_sess *s = user;
    sess_end(s, err->status != KT_OK ? err->status : KT_EIO, err);
}

static void ev_down_ready(void *user)
{
    fed_sess *s = user;
    if (s->closing || s->srv == NULL) {
        return;
    }
    kt_err err = { 0 };
    sess_check(s, sync_server_kick_down(s->srv, &err), &err);
}

static void events_open(fed_sess *s, const sync_hello *hello)
{
    if (s->f->events == NULL || s->es != NULL) {
        return;
    }
    hub_events_session_ops eo = { ev_ack_up, ev_up_failed, ev_down_ready };
    s->es = hub_events_session_open(s->f->events, s->site->hs->name,
                                    hello->has_last_acked_down_seq ? hello->last_acked_down_seq : 0,
                                    &eo, s);
}

static kt_status op_up_committed_seq(
    uint64_t *seq_out, const char *site, const char *incarnation, kt_err *err, void *user)
{
    fed_sess *s = user;
    return hub_events_up_committed(s->f->events, site, incarnation, seq_out, err);
}

static kt_status op_on_up_batch(const char *site,
                                const char *incarnation,
                                uint64_t first_seq,
                                const sync_event *events,
                                size_t n,
                                kt_err *err,
                                void *user)
{
    (void)site;
    fed_sess *s = user;
    if (s->es == NULL) {
        return kt_err_set(err, KT_EPROTO, "event batch before Welcome");
    }
    return hub_events_up_batch(s->es, incarnation, first_seq, events, n, err);
}

static kt_status op_down_next(const sync_event **events_out,
                              size_t *n_out,
                              uint64_t from_seq,
                              size_t max_events,
                              size_t max_bytes,
                              kt_err *err,
                              void *user)
{
    fed_sess *s = user;
    if (s->es == NULL) {
        *events_out = NULL;
        *n_out = 0;
        return KT_OK;
    }
    return hub_events_down_next(s->es, events_out, n_out, from_seq, max_events, max_bytes, err);
}

static kt_status op_down_acked(uint64_t seq, kt_err *err, void *user)
{
    fed_sess *s = user;
    if (s->es == NULL) {
        return KT_OK;
    }
    return hub_events_down_acked(s->es, seq, err);
}

static const model_placement *fed_placement_get(void *user)
{
    hub_fed *f = user;
    return f->placement;
}
#endif
/* --- end hubev --- */

static void op_on_welcome(const sync_hello *hello, void *user)
{
    fed_sess *s = user;
    hub_fed *f = s->f;
    fed_site *site = s->site;
    bool replaced = false;
    if (site->sess != NULL && site->sess != s) {
        fed_sess *old = site->sess;
        replaced = true;
        KT_LOG(KT_LOG_NOTICE, "SYNC-DUPLICATE", "site=%s old_peer=%s new_peer=%s", site->hs->name,
               old->peer, s->peer);
        site->sess = NULL; /* old's on_gone must not touch the new registration */
        kt_err err = { 0 };
        kt_status st = sync_server_reject(old->srv, SYNC_REJECT_DUPLICATE, 0,
                                          "another connection of this site took over", &err);
        sess_end(old, st == KT_OK ? KT_ECLOSED : st, &err);
    }
    if (!replaced) {
        kt_metrics_gauge_add(f->m_connected, 1);
    }
    site->sess = s;
    hub_site *hs = site->hs;
    if (hello->has_capacity) {
        hs->has_capacity = true;
        hs->cpu_millis = hello->capacity.has_cpu_millis ? hello->capacity.cpu_millis : 0;
        hs->memory_bytes = hello->capacity.has_memory_bytes ? hello->capacity.memory_bytes : 0;
    }
    hs->last_seen_ms = kt_clock_wall_ms();
    hs->dirty = true;
    kt_metrics_inc(f->m_sessions);
    KT_LOG(KT_LOG_INFO, "SYNC-WELCOME",
           "site=%s peer=%s agent_rev=%" PRIu64 " hub_rev=%" PRIu64 " mode=%s", hs->name, s->peer,
           hello->graph_revision, f->rev, sync_msg_mode_str(sync_server_mode(s->srv)));
    schedule_presence(f);
#ifdef KT_HUB_HAVE_EVENTS
    events_open(s, hello); /* hubev */
#endif
}

static void op_on_ack(sync_stream stream, uint64_t seq, void *user)
{
    fed_sess *s = user;
    hub_site *hs = s->site->hs;
    if (stream == SYNC_STREAM_GRAPH && seq > hs->acked_graph_rev) {
        hs->acked_graph_rev = seq;
        hs->dirty = true;
    } else if (stream == SYNC_STREAM_PLACEMENT && seq > hs->acked_placement_rev) {
        hs->acked_placement_rev = seq;
        hs->dirty = true;
    }
    if (stream == SYNC_STREAM_GRAPH && seq < hs->acked_graph_rev) {
        /* A snapshot took the agent to an older revision than a previous incarnation acked. */
        hs->acked_graph_rev = seq;
        hs->dirty = true;
    }
}

static void op_on_capacity(const sync_capacity *cap, void *user)
{
    fed_sess *s = user;
    hub_site *hs = s->site->hs;
    hs->has_capacity = true;
    hs->cpu_millis = cap->has_cpu_millis ? cap->cpu_millis : 0;
    hs->memory_bytes = cap->has_memory_bytes ? cap->memory_bytes : 0;
    hs->dirty = true;
    KT_LOG(KT_LOG_INFO, "SYNC-CAPACITY", "site=%s cpu_millis=%" PRIu32 " memory_bytes=%" PRIu64,
           hs->name, hs->cpu_millis, hs->memory_bytes);
    schedule_presence(s->f);
}

static void op_on_gone(void *user)
{
    fed_sess *s = user;
    hub_fed *f = s->f;
#ifdef KT_HUB_HAVE_EVENTS
    hub_events_session_close(s->es); /* hubev */
    s->es = NULL;
#endif
    if (s->site == NULL || s->site->sess != s) {
        return;
    }
    s->site->sess = NULL;
    kt_metrics_gauge_add(f->m_connected, -1);
    s->site->hs->last_seen_ms = kt_clock_wall_ms();
    s->site->hs->dirty = true;
    KT_LOG(KT_LOG_INFO, "SYNC-GONE", "site=%s peer=%s", s->site->hs->name, s->peer);
    schedule_presence(f);
}

static const sync_server_ops fed_ops = {
    .send = op_send,
    .now_ms = op_now_ms,
    .wall_ms = op_wall_ms,
    .auth = op_auth,
    .admit = op_admit,
    .plan = op_plan,
    .snapshot_next = op_snapshot_next,
    .snapshot_done = op_snapshot_done,
    .delta_next = op_delta_next,
    .placement = op_placement,
    .on_welcome = op_on_welcome,
    .on_ack = op_on_ack,
    .on_capacity = op_on_capacity,
    .on_gone = op_on_gone,
};

/* --- hubev: the event streams join the sessions' ops once hub_fed_set_events ran --- */
#ifdef KT_HUB_HAVE_EVENTS
void hub_fed_set_events(hub_fed *f, hub_events *ev)
{
    f->events = ev;
    if (ev != NULL) {
        hub_events_set_placement(ev, fed_placement_get, f);
        f->ops.up_committed_seq = op_up_committed_seq;
        f->ops.on_up_batch = op_on_up_batch;
        f->ops.down_next = op_down_next;
        f->ops.down_acked = op_down_acked;
    } else {
        f->ops = fed_ops;
    }
}
#endif
/* --- end hubev --- */

/* ========================================================= WebSocket side */

static void ws_open(kt_ws_conn *c, void *user)
{
    hub_fed *f = user;
    fed_sess *s = kt_xcalloc(1, sizeof *s);
    s->f = f;
    s->conn = c;
    kt_strlcpy(s->peer, kt_ws_conn_peer(c), sizeof s->peer);
    kt_arena_init(&s->snap_names, 64 * 1024);
    kt_arena_init(&s->scratch, 256 * 1024);
    kt_arena_init(&s->pl_arena, 16 * 1024);
    kt_err err = { 0 };
    if (sync_server_new(&s->srv, &f->sopts, &f->ops, s, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "SYNC-SESSION-FAIL", "peer=%s err=\"%s\"", s->peer, err.msg);
        s->closing = true;
        kt_ws_conn_close(c, 1011, "hub error");
    }
    kt_ws_conn_set_user(c, s);
    s->next = f->sessions;
    if (f->sessions != NULL) {
        f->sessions->prev = s;
    }
    f->sessions = s;
}

static void ws_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    fed_sess *s = kt_ws_conn_get_user(c);
    if (s == NULL || s->srv == NULL || s->closing) {
        return;
    }
    kt_err err = { 0 };
    sess_check(s, sync_server_on_message(s->srv, data, len, &err), &err);
}

/* A big batch still arriving on a slow link: the agent is not silent. */
static void ws_progress(kt_ws_conn *c, size_t so_far, void *user)
{
    (void)user;
    (void)so_far;
    fed_sess *s = kt_ws_conn_get_user(c);
    if (s != NULL && s->srv != NULL && !s->closing) {
        sync_server_note_rx(s->srv);
#ifdef KT_HUB_HAVE_EVENTS
        hub_events_session_note_rx(s->es); /* a batch may be on its way: coalesce */
#endif
    }
}

static void ws_drain(kt_ws_conn *c, void *user)
{
    (void)user;
    fed_sess *s = kt_ws_conn_get_user(c);
    if (s == NULL || s->srv == NULL || s->closing) {
        return;
    }
    kt_err err = { 0 };
    sess_check(s, sync_server_writable(s->srv, &err), &err);
}

static void sess_free(fed_sess *s)
{
    hub_fed *f = s->f;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        f->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    sync_server_free(s->srv); /* snapshot_done / on_gone when still due */
#ifdef KT_HUB_HAVE_EVENTS
    hub_events_session_close(s->es); /* hubev: a session that was never on_gone'd */
    s->es = NULL;
#endif
    snap_release(s);
    kt_arena_fini(&s->snap_names);
    kt_arena_fini(&s->scratch);
    kt_arena_fini(&s->pl_arena);
    kt_free(s->batch);
    kt_free(s->dobjs);
    kt_free(s->pl);
    kt_free(s);
}

static void ws_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    (void)user;
    fed_sess *s = kt_ws_conn_get_user(c);
    if (s == NULL) {
        return;
    }
    kt_ws_conn_set_user(c, NULL);
    if (s->srv != NULL) {
        count_reject(s->f, s);
        sync_server_on_close(s->srv);
    }
    KT_LOG(KT_LOG_DEBUG, "SYNC-CLOSED", "peer=%s code=%d reason=\"%s\"", s->peer, code, reason);
    sess_free(s);
}

/* =============================================================== timers */

static void tick_cb(uv_timer_t *t)
{
    hub_fed *f = t->data;
    for (fed_sess *s = f->sessions; s != NULL; s = s->next) {
        if (s->srv == NULL || s->closing) {
            continue;
        }
        kt_err err = { 0 };
        sess_check(s, sync_server_tick(s->srv, &err), &err);
    }
    if (++f->tick_count % FED_FLUSH_TICKS == 0) {
        kt_err err = { 0 };
        if (hub_sites_flush(f->sites, &err) != KT_OK) {
            KT_LOG(KT_LOG_WARN, "FED-DB-FAIL", "what=fed_sites err=\"%s\"", err.msg);
        }
    }
}

static void timer_free_cb(uv_handle_t *h)
{
    kt_free(h);
}

/* ================================================================= HTTP */

static void http_placement(kt_http_req *req, void *user)
{
    hub_fed *f = user;
    kt_buf b;
    kt_buf_init(&b, FED_BODY_MAX);
    if (model_placement_to_json(f->placement, f->placement_rev, &b) != KT_OK) {
        kt_buf_fini(&b);
        (void)kt_http_respond_error(req, 500, "placement too big to render");
        return;
    }
    size_t len = 0;
    char *body = kt_buf_detach(&b, &len);
    (void)kt_http_respond_take(req, 200, "application/json", body, len);
}

static void http_placement_iface(kt_http_req *req, void *user)
{
    hub_fed *f = user;
    const char *path = kt_http_req_path(req);
    const char *iface = path + strlen("/api/v1/placement/");
    const char *site = kt_http_req_param(req, "site");
    if (iface[0] == '\0' || strchr(iface, '/') != NULL) {
        (void)kt_http_respond_error(req, 404, "Not Found");
        return;
    }
    kt_buf b;
    kt_buf_init(&b, FED_BODY_MAX);
    kt_err err = { 0 };
    kt_status st = model_placement_explain_json(
        f->placement, iface, site != NULL && site[0] != '\0' ? site : NULL, &b, &err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        (void)kt_http_respond_error(req, st == KT_ENOTFOUND ? 404 : 500, err.msg);
        return;
    }
    size_t len = 0;
    char *body = kt_buf_detach(&b, &len);
    (void)kt_http_respond_take(req, 200, "application/json", body, len);
}

/* GET /api/v1/sites: every site from the agents file with its live and persisted state. */
static void http_sites(kt_http_req *req, void *user)
{
    hub_fed *f = user;
    kt_buf b;
    kt_buf_init(&b, FED_BODY_MAX);
    kt_status st = kt_buf_printf(
        &b, "{\"revision\":%" PRIu64 ",\"placement_revision\":%" PRIu64 ",\"sites\":[", f->rev,
        f->placement_rev);
    for (size_t i = 0; i < f->n_sites && st == KT_OK; i++) {
        const fed_site *site = &f->fs[i];
        const hub_site *hs = site->hs;
        const sync_server *srv = site->sess != NULL ? site->sess->srv : NULL;
        st = kt_buf_printf(
            &b,
            "%s{\"name\":\"%s\",\"connected\":%s,\"peer\":\"%s\",\"state\":\"%s\","
            "\"members\":%zu,\"has_capacity\":%s,\"cpu_millis\":%" PRIu32
            ",\"memory_bytes\":%" PRIu64 ",\"last_seen_ms\":%" PRIu64
            ",\"acked_graph_revision\":%" PRIu64 ",\"acked_placement_revision\":%" PRIu64
            ",\"placement_revision\":%" PRIu64 ",\"ring_from\":%" PRIu64 "}",
            i > 0 ? "," : "", hs->name, srv != NULL ? "true" : "false",
            site->sess != NULL ? site->sess->peer : "",
            srv != NULL ? sync_server_state_str(sync_server_state_get(srv)) : "disconnected",
            site->members.n, hs->has_capacity ? "true" : "false", hs->cpu_millis, hs->memory_bytes,
            hs->last_seen_ms, hs->acked_graph_rev, hs->acked_placement_rev, site->view_rev,
            site->ring_base);
    }
    if (st == KT_OK) {
        st = kt_buf_puts(&b, "]}");
    }
    if (st != KT_OK) {
        kt_buf_fini(&b);
        (void)kt_http_respond_error(req, 500, "sites too big to render");
        return;
    }
    size_t len = 0;
    char *body = kt_buf_detach(&b, &len);
    (void)kt_http_respond_take(req, 200, "application/json", body, len);
}

/* ============================================================ lifecycle */

static void make_hub_id(hub_fed *f, kt_err *err)
{
    char *id = NULL;
    kt_status st = hub_sites_meta_get(f->sites, "hub_id", &id, err);
    if (st == KT_OK && id[0] != '\0') {
        kt_strlcpy(f->hub_id, id, sizeof f->hub_id);
        kt_free(id);
        return;
    }
    kt_free(id);
    uint8_t raw[8] = { 0 };
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, raw, sizeof raw);
        (void)r;
        close(fd);
    }
    uint64_t v = kt_clock_wall_ms() ^ kt_clock_mono_ns();
    for (size_t i = 0; i < sizeof raw; i++) {
        v = (v << 8 | v >> 56) ^ raw[i];
    }
    snprintf(f->hub_id, sizeof f->hub_id, "hub-%016" PRIx64, v);
    kt_err e2 = { 0 };
    if (hub_sites_meta_put(f->sites, "hub_id", f->hub_id, &e2) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "FED-DB-FAIL", "what=hub_id err=\"%s\"", e2.msg);
    }
}

static kt_status register_metrics(hub_fed *f, kt_err *err)
{
    kt_metrics *r = f->metrics;
    if (r == NULL) {
        return KT_OK;
    }
    struct {
        kt_metric **m;
        const char *name, *help;
        bool gauge;
    } defs[] = {
        { &f->m_connected, "ktwin_hub_sites_connected", "Edge sites with a welcomed sync session",
          true },
        { &f->m_sessions, "ktwin_hub_sync_sessions_total", "Sync sessions welcomed", false },
        { &f->m_snapshots, "ktwin_hub_sync_snapshots_total", "Initial syncs sent as a snapshot",
          false },
        { &f->m_deltas, "ktwin_hub_sync_deltas_total",
          "Non-empty deltas sent (initial DELTA syncs and live pushes)", false },
        { &f->m_recomputes, "ktwin_hub_placement_recomputes_total", "Placement computations",
          false },
        { &f->m_moves, "ktwin_hub_placement_moves_total",
          "(interface, site) placement decisions that changed", false },
        { &f->m_auth_fail, "ktwin_hub_sync_auth_failures_total",
          "Sync Hellos refused for an unknown site or a bad token", false },
        { &f->m_change_ms, "ktwin_hub_fed_change_ms",
          "Loop time the last graph change took in fed (placement, subgraphs, deltas, pushes)",
          true },
        { &f->m_resyncs, "ktwin_hub_sync_resyncs_total",
          "Live sessions closed so the agent takes a snapshot (change too big for a delta)",
          false },
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        kt_status st =
            defs[i].gauge ? kt_metrics_gauge(defs[i].m, r, defs[i].name, defs[i].help, NULL, err)
                          : kt_metrics_counter(defs[i].m, r, defs[i].name, defs[i].help, NULL, err);
        if (st != KT_OK) {
            return st;
        }
    }
    /* The common reject codes exist from the start (0), so dashboards see them. */
    static const sync_reject_code codes[] = { SYNC_REJECT_UNAUTHENTICATED, SYNC_REJECT_BUSY,
                                              SYNC_REJECT_DUPLICATE, SYNC_REJECT_VERSION,
                                              SYNC_REJECT_PROTOCOL };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        kt_metric *m = NULL;
        kt_status st = kt_metrics_counter(
            &m, r, "ktwin_hub_sync_rejects_total",
            "Sync Hellos or sessions ended with a Reject, by code",
            (const char *[]){ "code", sync_msg_reject_str(codes[i]), NULL }, err);
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

kt_status hub_fed_new(hub_fed **out,
                      uv_loop_t *loop,
                      kt_http_server *srv,
                      hub_graph *graph,
                      hub_store *store,
                      const hub_cfg *cfg,
                      kt_metrics *metrics,
                      kt_err *err)
{
    *out = NULL;
    hub_fed *f = kt_xcalloc(1, sizeof *f);
    f->ops = fed_ops;
    f->loop = loop;
    f->srv = srv;
    f->graph = graph;
    f->store = store;
    f->metrics = metrics;
    kt_status st = hub_sites_new(&f->sites, cfg->auth.agents_file, hub_store_db(store), err);
    if (st != KT_OK) {
        kt_free(f);
        return st;
    }
    f->n_sites = hub_sites_count(f->sites);
    f->fs = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *f->fs);
    for (size_t i = 0; i < f->n_sites; i++) {
        f->fs[i].hs = hub_sites_at(f->sites, i);
        f->fs[i].hs->user = &f->fs[i];
        kt_map_init(&f->fs[i].members);
    }
    f->rev = hub_graph_revision(graph);
    make_hub_id(f, NULL);

    /* A changed agents file may change instance -> site: nobody at the current revision can be
     * trusted. */
    char hash[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, hub_sites_names_hash(f->sites));
    char *old = NULL;
    if (hub_sites_meta_get(f->sites, "sites_hash", &old, NULL) != KT_OK || strcmp(old, hash) != 0) {
        f->snapshot_floor = f->rev;
        kt_err e2 = { 0 };
        if (hub_sites_meta_put(f->sites, "sites_hash", hash, &e2) != KT_OK) {
            KT_LOG(KT_LOG_WARN, "FED-DB-FAIL", "what=sites_hash err=\"%s\"", e2.msg);
        }
    }
    kt_free(old);
    char *prev = NULL;
    if (hub_sites_meta_get(f->sites, "placement_revision", &prev, NULL) == KT_OK) {
        f->placement_rev = strtoull(prev, NULL, 10);
    }
    kt_free(prev);

    sync_admit_init(&f->admit, (uint32_t)(cfg->sync.admit_rate > 0 ? cfg->sync.admit_rate : 1),
                    (uint32_t)(cfg->sync.admit_burst > 0 ? cfg->sync.admit_burst : 1),
                    kt_clock_mono_ms());
    f->sopts.hub_id = f->hub_id;
    f->sopts.heartbeat_ms = (uint32_t)(cfg->sync.heartbeat_ms > 0 ? cfg->sync.heartbeat_ms : 0);
    f->sopts.chunk_bytes = cfg->sync.snapshot_chunk_bytes;
    f->sopts.limits.max_message_bytes = cfg->sync.max_message_bytes;
    f->sopts.window_bytes = (uint32_t)cfg->sync.window_bytes; /* sync.window_bytes (<= 1 GiB) */

    st = register_metrics(f, err);
    if (st == KT_OK) {
        st = recompute_placement(f, err);
    }
    for (size_t i = 0; i < f->n_sites; i++) {
        f->fs[i].view_dirty = false;
    }
    if (st != KT_OK) {
        goto fail;
    }
    {
        kt_map *nm = kt_xcalloc(f->n_sites > 0 ? f->n_sites : 1, sizeof *nm);
        compute_members(f, nm);
        for (size_t i = 0; i < f->n_sites; i++) {
            kt_map_fini(&f->fs[i].members);
            f->fs[i].members = nm[i];
            ring_clear(&f->fs[i], f->rev);
        }
        kt_free(nm);
    }

    kt_ws_opts wo = { 0 };
    wo.max_message_bytes = cfg->sync.max_message_bytes;
    wo.binary_only = true; /* sync.proto: every message is one binary Envelope */
    /*
     * Small on purpose: a snapshot is produced only as fast as the socket
     * drains. Every single message fits (chunks <= snapshot_chunk_bytes plus
     * one object, deltas <= FED_DELTA_MAX_BYTES plus names).
     */
    wo.max_queue_bytes = FED_WS_QUEUE_BYTES;
    if (wo.max_queue_bytes < 2 * cfg->sync.snapshot_chunk_bytes + SYNC_LIMITS_DEFAULT_BODY_BYTES) {
        wo.max_queue_bytes = 2 * cfg->sync.snapshot_chunk_bytes + SYNC_LIMITS_DEFAULT_BODY_BYTES;
    }
    wo.on_open = ws_open;
    wo.on_message = ws_message;
    wo.on_progress = ws_progress;
    wo.on_drain = ws_drain;
    wo.on_close = ws_close;
    wo.user = f;
    st = kt_ws_endpoint(srv, FED_SYNC_PATH, SYNC_WS_SUBPROTOCOL, &wo, err);
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET | KT_HTTP_HEAD, "/api/v1/placement", 0, http_placement,
                           f, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET | KT_HTTP_HEAD, "/api/v1/placement/", KT_HTTP_PREFIX,
                           http_placement_iface, f, err);
    }
    if (st == KT_OK) {
        st = kt_http_route(srv, KT_HTTP_GET | KT_HTTP_HEAD, "/api/v1/sites", 0, http_sites, f, err);
    }
    if (st != KT_OK) {
        goto fail;
    }

    f->tick = kt_xcalloc(1, sizeof *f->tick);
    f->presence = kt_xcalloc(1, sizeof *f->presence);
    uv_timer_init(loop, f->tick);
    uv_timer_init(loop, f->presence);
    f->tick->data = f;
    f->presence->data = f;
    uv_timer_start(f->tick, tick_cb, FED_TICK_MS, FED_TICK_MS);
    hub_graph_subscribe(graph, on_graph_changed, f);
    KT_LOG(KT_LOG_INFO, "FED-READY",
           "sites=%zu rev=%" PRIu64 " placement_rev=%" PRIu64 " hub_id=%s admit_rate=%" PRId64
           " admit_burst=%" PRId64,
           f->n_sites, f->rev, f->placement_rev, f->hub_id, cfg->sync.admit_rate,
           cfg->sync.admit_burst);
    *out = f;
    return KT_OK;
fail:
    for (size_t i = 0; i < f->n_sites; i++) {
        kt_map_fini(&f->fs[i].members);
        ring_clear(&f->fs[i], 0);
        kt_free(f->fs[i].ring);
        kt_free(f->fs[i].view);
    }
    kt_free(f->fs);
    kt_free(f->edge_site);
    model_placement_free(f->placement);
    hub_sites_free(f->sites);
    kt_free(f);
    return st;
}

void hub_fed_free(hub_fed *f)
{
    if (f == NULL) {
        return;
    }
    while (f->sessions != NULL) {
        fed_sess *s = f->sessions;
        kt_ws_conn_set_user(s->conn, NULL);
        kt_ws_conn_close(s->conn, 1001, "shutdown");
        sess_free(s);
    }
    kt_err err = { 0 };
    if (hub_sites_flush(f->sites, &err) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "FED-DB-FAIL", "what=fed_sites err=\"%s\"", err.msg);
    }
    hub_graph_unsubscribe(f->graph, on_graph_changed, f);
#ifdef KT_HUB_HAVE_EVENTS
    if (f->events != NULL) {
        hub_events_set_placement(f->events, NULL, NULL); /* hubev: the placement goes away */
    }
#endif
    uv_timer_stop(f->tick);
    uv_timer_stop(f->presence);
    uv_close((uv_handle_t *)f->tick, timer_free_cb);
    uv_close((uv_handle_t *)f->presence, timer_free_cb);
    for (size_t i = 0; i < f->n_sites; i++) {
        kt_map_fini(&f->fs[i].members);
        ring_clear(&f->fs[i], 0);
        kt_free(f->fs[i].ring);
        kt_free(f->fs[i].view);
    }
    kt_free(f->fs);
    kt_free(f->edge_site);
    model_placement_free(f->placement);
    hub_sites_free(f->sites);
    kt_free(f);
}
