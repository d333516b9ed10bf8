/*
 * hub/events.c — the hub's event plane (contract in events.h).
 *
 * DESIGN
 *   Group commit. hub_events_up_batch() and hub_events_ingest() only copy
 *   the events into a `pend` (one kt_arena per batch) at the tail of a FIFO
 *   and start a uv_check handle. The check callback runs once per loop turn,
 *   after every I/O callback of the turn, so every batch that arrived in the
 *   turn (from any session) goes into one transaction: for each pend a
 *   savepoint, dedupe against the store's (site, incarnation) mark, routing
 *   (model_route with the hub as "where"), appends, downstream pushes, then
 *   the mark; then COMMIT; only then the acks, the down_ready kicks and the
 *   cloud-service dispatch. The check stops itself when the FIFO is empty.
 *
 *   Coalescing (bulk upstream). One upstream message holds at most ~4 MiB
 *   (about 10,000 events); each commit dirties about one page of the
 *   per-instance index for every instance it touches, so a drained backlog
 *   costs much less per event in bigger commits. When the queued events are
 *   at least COALESCE_MIN_EVENTS but at most half of commit_max_events and
 *   an upstream session is in the middle of receiving a message
 *   (hub_events_session_note_rx, cleared when its next batch arrives), the
 *   check skips the turn, for at most COALESCE_MAX_MS after the oldest
 *   queued batch arrived (a timer then commits anyway). Small batches (the
 *   live trickle) never wait. Acks still follow the commit.
 *
 *   Dedupe lives in the store (not in memory), so it survives reconnects
 *   and restarts; the marks move in the transaction that writes the events,
 *   so a batch is committed exactly once. Two sessions of one site (a
 *   takeover) both queued: the second pend finds the first's mark.
 *
 *   Lifetimes. A session closed while its pends wait keeps its memory
 *   (refs) until they are processed; no op of a closed session is called.
 *   Pointers into pends (events, interface names copied into the pend's
 *   arena) stay valid until the pends are freed at the end of the callback,
 *   after the cloud dispatch (plugins run synchronously; the HTTP caller
 *   renders at once).
 *
 *   Backpressure (lossless). An event whose routing needs a full queue (a
 *   site's downstream queue or a cloud service's queue, events.
 *   down_max_per_site) makes its whole pend roll back to its savepoint and
 *   DEFERS it: it is not acked, and it and every later pend of the same
 *   stream (one session; or everything that arrived at the hub) wait, in
 *   order, in the deferred FIFO (so the (site, incarnation) mark never
 *   passes a deferred seq). The deferred FIFO goes back to the front of the
 *   queue when an agent acks downstream entries or a cloud call completes,
 *   and every RETRY_MS anyway. Meanwhile the agent's sync window fills and
 *   its outbox keeps the rest (nothing is dropped). Counted in
 *   ktwin_hub_upstream_deferred_total{site} ("hub" for events that arrived
 *   here), logged HUB-BACKPRESSURE (rate-limited).
 *
 *   Cloud services are durable, at-least-once. An event routed
 *   SERVICE_CLOUD to an interface that has a service is pushed, in the same
 *   transaction as the batch (before its ack), onto the durable queue
 *   "#cloud/<iface>" of the event store (the downstream-queue table: '#' is
 *   never in a site name; the row keeps the event's loop depth). After the commit (and at start,
 * for what a previous run left) the cloud pump hands queued rows to the service in seq order:
 * plugins synchronously, HTTP services through svc_caller (at most its queue; KT_EAGAIN blocks that
 * interface until a call completes). A row is deleted (hub_evstore_down_ack of the completed seq
 * prefix) once its call succeeded or was dead-lettered (final failure: counted in
 *   ktwin_hub_cloud_dead_letters_total{iface}, HUB-CLOUD-DEAD). A crash
 *   before the delete delivers the event again after the restart.
 *   Events the services emit are queued like broker ingress events (never
 *   dispatched re-entrantly into the plugin host), at the depth of the
 *   event being handled + 1; past services.max_depth they are dropped
 *   (reason "depth"). HTTP services get the depth as ce-ktwindepth and the
 *   ingress reads it back (svc/api.h).
 *
 *   Loop depth crosses the sync link (sync.proto Event.depth): an upstream
 *   event keeps the depth the agent gave it (its outbox stores it), and a
 *   downstream entry keeps the depth of the event routed there, so a loop
 *   through edge and cloud services is cut by max_depth like one on a
 *   single node.
 *
 * Thread: loop only. Ownership: see events.h.
 */
#define KT_LOG_MOD "events"

#include "hub/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/route.h"
#include "svc/api.h"
#include "svc/merge.h"
#include "svc/plugin.h"
#include "svc/service.h"
#include "svc/store.h"
#ifdef KT_HUB_HAVE_SVC_CALLER
#include "svc/caller.h"
#endif

#define RETENTION_AGAIN_MS  10u
#define FULL_LOG_EVERY_MS   5000u
#define RETRY_MS            200u /* deferred batches are retried at least this often */
#define CLOUD_SITE_PREFIX   "#cloud/"
#define CLOUD_READ_MAX      256u  /* rows read per cloud-queue read */
#define CLOUD_PUMP_BUDGET   4096u /* rows handed out per pump call; the rest on the next tick */
#define CLOUD_BLOCKED_MS    100u
#define DEFAULT_MAX_DEPTH   8u
#define COALESCE_MIN_EVENTS 1000u /* queued upstream events from which a commit waits for more */
#define COALESCE_MAX_MS     50u   /* longest such wait, from the oldest queued batch */

typedef struct pend pend;

struct hub_events_session {
    hub_events *ev;
    char *site;
    hub_events_session_ops ops;
    void *user;
    bool closed;
    unsigned refs;     /* pends queued for it */
    size_t n_deferred; /* its pends in the deferred FIFO (or deferred in this commit) */
    bool rx_arriving;  /* part of a message arrived since its last batch (coalescing) */
    kt_arena down_arena;
    sync_event *down;
    size_t down_cap;
    hub_events_session *prev, *next;
};

struct pend {
    pend *next;
    hub_events_session *es; /* NULL: an event that arrived at the hub */
    const char *site;       /* upstream: the agent's site and incarnation (arena) */
    const char *incarnation;
    uint64_t first_seq;
    sync_event *evs;
    size_t n;
    uint64_t queued_ms; /* kt_clock_mono_ms() when it was queued */
    kt_arena arena;
    /* result */
    bool full;     /* routing needed a full queue: deferred */
    bool deferred; /* in (or going to) the deferred FIFO */
    bool failed;
    kt_err err;
    size_t n_stored, n_dups;
};

/* A row of a cloud queue handed to its service and not yet deleted. */
typedef struct cloud_fl {
    uint64_t seq;
    bool done;
} cloud_fl;

/* The durable queue of one cloud service interface ("#cloud/<iface>"). */
typedef struct cloud_q {
    hub_events *ev;
    char *iface;
    char *site;        /* CLOUD_SITE_PREFIX iface */
    bool http;         /* else a plugin */
    bool blocked;      /* the caller's queue was full: wait for a completion */
    uint64_t read_seq; /* highest seq handed out */
    cloud_fl *fl;      /* handed out, not deleted yet, in seq order */
    size_t fl_n, fl_cap;
    kt_metric *m_dead;
} cloud_q;

/* One HTTP cloud call in flight. */
typedef struct cloud_ctx {
    cloud_q *q;
    uint64_t seq;
    uint32_t depth;
    char id[MODEL_EVENT_ID_MAX + 1]; /* the CloudEvent id, for the dead-letter log */
} cloud_ctx;

/* Where a service's emits go, at which depth. */
typedef struct emit_ctx {
    hub_events *ev;
    uint32_t depth;
} emit_ctx;

typedef struct site_mark {
    char *site;
} site_mark;

struct hub_events {
    uv_loop_t *loop;
    kt_log_limit drop_log; /* HUB-EVENT-DROP lines per second */
    hub_graph *graph;
    kt_metrics *metrics;
    hub_evstore *store;
    model_route_table *table;
    hub_events_placement_cb placement_get;
    void *placement_user;
    /* queued work */
    pend *head, *tail;
    size_t n_pend;
    uv_check_t *check;
    bool check_on;
    uv_timer_t *coalesce; /* ends a coalescing wait */
    bool stopping;
    size_t commit_max_events;
    uint32_t max_depth;
    /* deferred (backpressure) */
    pend *dhead, *dtail;
    size_t n_deferred;       /* pends in the deferred FIFO */
    size_t n_deferred_local; /* of them (or deferred in this commit) without a session */
    uv_timer_t *retry;
    uint64_t bp_logged_ms;
    /* cloud queues */
    cloud_q **cq;
    size_t n_cq;
    bool cloud_dirty; /* a commit pushed cloud rows */
    uv_timer_t *cloud_timer;
    uint64_t dead_logged_ms;
    uint64_t dead_suppressed;
    /* per commit scratch */
    hub_evstore_event *store_buf;
    size_t store_cap;
    char **touched; /* sites that got downstream entries */
    size_t n_touched, touched_cap;
    /* sessions */
    hub_events_session *sessions;
    /* retention */
    uv_timer_t *retention;
    uint64_t ret_max_age_ms;
    uint64_t ret_max_bytes;
    size_t ret_rows;
    uint64_t ret_interval_ms;
    uint64_t down_cap;
    uint64_t full_logged_ms;
    /* cloud services */
    svc_plugin_host *plugins;
#ifdef KT_HUB_HAVE_SVC_CALLER
    svc_caller *caller;
#endif
    svc_store_ops store_ops;
    svc_api *api;
    /* metrics */
    kt_metric *m_committed, *m_dups, *m_batches, *m_ret_deleted, *m_commit_fail, *m_cloud_ok,
        *m_cloud_fail, *m_cloud_none;
};

/* ============================================================ helpers */

/* HUB-EVENT-DROP lines per second before they are suppressed (and counted). */
#define DROP_LOG_PER_S 10

/* true when a HUB-EVENT-DROP line may be written now (rate limit, see kt_log_limit). */
static int drop_log_ok(hub_events *ev)
{
    unsigned long long missed = 0;
    int ok = kt_log_limit_take(&ev->drop_log, DROP_LOG_PER_S, kt_clock_mono_ms(), &missed);
    if (missed > 0) {
        KT_LOG(KT_LOG_WARN, "HUB-EVENT-DROP", "suppressed=%llu", missed);
    }
    return ok;
}

static void drop_metric(hub_events *ev, const char *reason)
{
    if (ev->metrics == NULL) {
        return;
    }
    kt_metric *m = NULL;
    const char *labels[] = { "reason", reason, NULL };
    if (kt_metrics_counter(&m, ev->metrics, "ktwin_hub_events_dropped_total",
                           "Events the hub did not route anywhere, by reason", labels,
                           NULL) == KT_OK) {
        kt_metrics_inc(m);
    }
}

static void site_gauge(hub_events *ev, const char *site)
{
    if (ev->metrics == NULL) {
        return;
    }
    kt_metric *m = NULL;
    const char *labels[] = { "site", site, NULL };
    if (kt_metrics_gauge(&m, ev->metrics, "ktwin_hub_downstream_queued",
                         "Commands and virtual events queued for a site's agent", labels,
                         NULL) == KT_OK) {
        kt_metrics_set(m, (double)hub_evstore_down_count(ev->store, site));
    }
}

static void full_metric(hub_events *ev, const char *site, const kt_err *err)
{
    if (ev->metrics != NULL) {
        kt_metric *m = NULL;
        const char *labels[] = { "site", site, NULL };
        if (kt_metrics_counter(&m, ev->metrics, "ktwin_hub_downstream_full_total",
                               "Events refused because the site's downstream queue was full",
                               labels, NULL) == KT_OK) {
            kt_metrics_inc(m);
        }
    }
    uint64_t now = kt_clock_mono_ms();
    if (ev->full_logged_ms == 0 || now - ev->full_logged_ms >= FULL_LOG_EVERY_MS) {
        ev->full_logged_ms = now;
        KT_LOG(KT_LOG_WARN, "HUB-DOWN-FULL", "site=%s cap=%" PRIu64 " err=\"%s\"", site,
               ev->down_cap, err->msg);
    }
}

static model_placement_where where_cloud(const char *iface, const char *site, void *user)
{
    (void)iface;
    (void)site;
    (void)user;
    return MODEL_WHERE_CLOUD;
}

static const char *no_site(const char *instance, void *user)
{
    (void)instance;
    (void)user;
    return NULL;
}

static void route_env(hub_events *ev, model_route_env *env)
{
    memset(env, 0, sizeof(*env));
    env->table = ev->table;
    env->site = NULL;
    const model_placement *p =
        ev->placement_get != NULL ? ev->placement_get(ev->placement_user) : NULL;
    if (p != NULL) {
        model_route_placement_from(&env->placement, p);
    } else {
        env->placement.where = where_cloud;
        env->placement.instance_site = no_site;
        env->placement.user = NULL;
    }
}

/* A view of se as a model_event (type parsed). KT_EINVAL when the type is not KTWIN's. */
static kt_status to_model(model_event *me, const sync_event *se, kt_err *err)
{
    memset(me, 0, sizeof(*me));
    kt_status st = model_event_set_type(me, se->type, strlen(se->type), err);
    if (st != KT_OK) {
        return st;
    }
    me->id = se->id;
    me->source = se->source;
    me->time_ms = se->time_ms;
    me->datacontenttype = se->datacontenttype;
    me->data = se->data;
    me->data_len = se->data_len;
    return KT_OK;
}

static void copy_event(kt_arena *a, sync_event *dst, const sync_event *src)
{
    dst->id = kt_arena_strdup(a, src->id);
    dst->type = kt_arena_strdup(a, src->type);
    dst->source = kt_arena_strdup(a, src->source);
    dst->subject = src->subject != NULL ? kt_arena_strdup(a, src->subject) : NULL;
    dst->datacontenttype =
        src->datacontenttype != NULL ? kt_arena_strdup(a, src->datacontenttype) : NULL;
    dst->time_ms = src->time_ms;
    dst->depth = src->depth;
    uint8_t *d = kt_arena_alloc(a, src->data_len + 1);
    if (src->data_len > 0) {
        memcpy(d, src->data, src->data_len);
    }
    d[src->data_len] = '\0';
    dst->data = d;
    dst->data_len = src->data_len;
}

static size_t events_bytes(const sync_event *evs, size_t n)
{
    size_t b = 256;
    for (size_t i = 0; i < n; i++) {
        b += evs[i].data_len + strlen(evs[i].id) + strlen(evs[i].type) + strlen(evs[i].source) +
             (evs[i].subject != NULL ? strlen(evs[i].subject) : 0) +
             (evs[i].datacontenttype != NULL ? strlen(evs[i].datacontenttype) : 0) + 64;
    }
    return b;
}

static pend *pend_new(hub_events *ev, const sync_event *evs, size_t n)
{
    pend *p = kt_xcalloc(1, sizeof(*p));
    size_t bytes = events_bytes(evs, n) + n * sizeof(sync_event);
    kt_arena_init(&p->arena, bytes < 4096 ? 4096 : bytes);
    p->evs = kt_arena_alloc(&p->arena, n * sizeof(sync_event));
    memset(p->evs, 0, n * sizeof(sync_event));
    for (size_t i = 0; i < n; i++) {
        copy_event(&p->arena, &p->evs[i], &evs[i]);
    }
    p->n = n;
    p->queued_ms = kt_clock_mono_ms();
    (void)ev;
    return p;
}

static void session_unref(hub_events_session *es);

static void pend_free(pend *p)
{
    if (p->es != NULL) {
        session_unref(p->es);
    }
    kt_arena_fini(&p->arena);
    kt_free(p);
}

static void on_check(uv_check_t *h);
static void on_retry(uv_timer_t *t);

/* Pends of p's stream wait in the deferred FIFO (so p must wait behind them). */
static bool stream_deferred(const hub_events *ev, const pend *p)
{
    return p->es != NULL ? p->es->n_deferred > 0 : ev->n_deferred_local > 0;
}

static void defer_count(hub_events *ev, pend *p, bool add)
{
    size_t *c = p->es != NULL ? &p->es->n_deferred : &ev->n_deferred_local;
    if (add) {
        (*c)++;
    } else {
        KT_ASSERT(*c > 0);
        (*c)--;
    }
}

/* Append p (already counted) to the deferred FIFO and make sure a retry comes. */
static void defer_append(hub_events *ev, pend *p)
{
    p->next = NULL;
    p->deferred = true;
    if (ev->dtail != NULL) {
        ev->dtail->next = p;
    } else {
        ev->dhead = p;
    }
    ev->dtail = p;
    ev->n_deferred++;
    if (ev->retry != NULL && !uv_is_active((uv_handle_t *)ev->retry)) {
        uv_timer_start(ev->retry, on_retry, RETRY_MS, 0);
    }
}

/* Retry the deferred pends soon (space was freed somewhere). */
static void kick_retry(hub_events *ev)
{
    if (ev->n_deferred > 0 && ev->retry != NULL && !ev->stopping) {
        uv_timer_start(ev->retry, on_retry, 0, 0);
    }
}

static void enqueue(hub_events *ev, pend *p)
{
    if (stream_deferred(ev, p)) {
        defer_count(ev, p, true);
        defer_append(ev, p);
        return;
    }
    if (ev->tail != NULL) {
        ev->tail->next = p;
    } else {
        ev->head = p;
    }
    ev->tail = p;
    ev->n_pend++;
    if (!ev->check_on && ev->check != NULL) {
        uv_check_start(ev->check, on_check);
        ev->check_on = true;
    }
}

static void touch_site(hub_events *ev, const char *site)
{
    for (size_t i = 0; i < ev->n_touched; i++) {
        if (strcmp(ev->touched[i], site) == 0) {
            return;
        }
    }
    if (ev->n_touched == ev->touched_cap) {
        ev->touched_cap = ev->touched_cap != 0 ? 2 * ev->touched_cap : 8;
        ev->touched = kt_xrealloc(ev->touched, ev->touched_cap * sizeof(*ev->touched));
    }
    ev->touched[ev->n_touched++] = kt_xstrdup(site);
}

static cloud_q *find_cq(hub_events *ev, const char *iface)
{
    for (size_t i = 0; i < ev->n_cq; i++) {
        if (strcmp(ev->cq[i]->iface, iface) == 0) {
            return ev->cq[i];
        }
    }
    return NULL;
}

static void cloud_q_add(hub_events *ev, const char *iface, bool http);

/* The cloud queue of iface; created on first use for a plugin declared with "*". */
static cloud_q *cloud_q_for(hub_events *ev, const char *iface)
{
    cloud_q *q = find_cq(ev, iface);
    if (q == NULL && ev->plugins != NULL && svc_plugin_host_serves(ev->plugins, iface)) {
        cloud_q_add(ev, iface, false);
        q = find_cq(ev, iface);
    }
    return q;
}

static void fill_row(hub_evstore_event *h, const char *iface, const sync_event *se)
{
    memset(h, 0, sizeof(*h));
    h->iface = iface;
    h->instance = se->source;
    h->id = se->id;
    h->type = se->type;
    h->source = se->source;
    h->subject = se->subject;
    h->datacontenttype = se->datacontenttype;
    h->time_ms = se->time_ms;
    h->data = se->data;
    h->data_len = se->data_len;
    h->depth = se->depth;
}

/* ============================================================ processing */

/* Route one event inside the transaction; store-bound ones go to ev->store_buf[*n_store]. */
static kt_status route_one(hub_events *ev,
                           const model_route_env *env,
                           pend *p,
                           const sync_event *se,
                           uint64_t seq,
                           size_t *n_store,
                           kt_err *err)
{
    model_event me;
    kt_err terr = { 0 };
    if (to_model(&me, se, &terr) != KT_OK) {
        drop_metric(ev, "bad-type");
        if (drop_log_ok(ev)) {
            KT_LOG(KT_LOG_WARN, "HUB-EVENT-DROP", "reason=bad-type id=%s err=\"%s\"", se->id,
                   terr.msg);
        }
        return KT_OK;
    }
    model_route_dest d[MODEL_ROUTE_DEST_MAX];
    size_t nd =
        model_route(env, &me, p->es != NULL ? MODEL_ROUTE_FROM_SITE : MODEL_ROUTE_FROM_LOCAL,
                    p->site, d, MODEL_ROUTE_DEST_MAX);
    if (nd > MODEL_ROUTE_DEST_MAX) {
        drop_metric(ev, "too-many-destinations");
        if (drop_log_ok(ev)) {
            KT_LOG(KT_LOG_WARN, "HUB-EVENT-DROP", "reason=too-many-destinations id=%s dests=%zu",
                   se->id, nd);
        }
        return KT_OK;
    }
    const char *iface = NULL;
    for (size_t i = 0; i < nd; i++) {
        switch (d[i].kind) {
        case MODEL_ROUTE_STORE: {
            if (iface == NULL) {
                iface = kt_arena_strdup(&p->arena, me.iface);
            }
            if (*n_store == ev->store_cap) {
                ev->store_cap = ev->store_cap != 0 ? 2 * ev->store_cap : 256;
                ev->store_buf = kt_xrealloc(ev->store_buf, ev->store_cap * sizeof(*ev->store_buf));
            }
            hub_evstore_event *h = &ev->store_buf[(*n_store)++];
            fill_row(h, iface, se);
            h->seq = seq;
            break;
        }
        case MODEL_ROUTE_DOWNSTREAM: {
            if (iface == NULL) {
                iface = kt_arena_strdup(&p->arena, me.iface);
            }
            hub_evstore_event h;
            fill_row(&h, iface, se);
            kt_err derr = { 0 };
            kt_status st = hub_evstore_down_push(ev->store, d[i].site, &h, NULL, &derr);
            if (st == KT_EAGAIN) {
                /* backpressure: the whole pend waits (process() defers it) */
                full_metric(ev, d[i].site, &derr);
                p->full = true;
                *err = derr;
                return st;
            }
            if (st != KT_OK) {
                *err = derr;
                return st;
            }
            touch_site(ev, d[i].site);
            break;
        }
        case MODEL_ROUTE_SERVICE_CLOUD: {
            cloud_q *q = cloud_q_for(ev, d[i].iface);
            if (q == NULL) {
                kt_metrics_inc(ev->m_cloud_none);
                KT_LOG(KT_LOG_DEBUG, "HUB-CLOUD-NONE",
                       "iface=%s id=%s msg=\"no cloud service configured\"", d[i].iface, se->id);
                break;
            }
            hub_evstore_event h;
            fill_row(&h, q->iface, se);
            kt_err derr = { 0 };
            kt_status st = hub_evstore_down_push(ev->store, q->site, &h, NULL, &derr);
            if (st == KT_EAGAIN) {
                full_metric(ev, q->site, &derr);
                p->full = true;
                *err = derr;
                return st;
            }
            if (st != KT_OK) {
                *err = derr;
                return st;
            }
            ev->cloud_dirty = true;
            break;
        }
        case MODEL_ROUTE_DROP:
            drop_metric(ev, model_route_drop_str(d[i].drop));
            if (drop_log_ok(ev)) {
                KT_LOG(KT_LOG_WARN, "HUB-EVENT-DROP", "reason=%s type=%s source=%s id=%s",
                       model_route_drop_str(d[i].drop), se->type, se->source, se->id);
            }
            break;
        default:
            /* agent-only destinations never come out of a hub route */
            drop_metric(ev, "internal");
            break;
        }
    }
    return KT_OK;
}

static kt_status process_pend(hub_events *ev, const model_route_env *env, pend *p, kt_err *err)
{
    size_t start = 0;
    if (p->es != NULL) {
        uint64_t mark = 0;
        kt_status st = hub_evstore_acked_seq(ev->store, p->site, p->incarnation, &mark, err);
        if (st != KT_OK) {
            return st;
        }
        if (mark >= p->first_seq) {
            uint64_t skip = mark - p->first_seq + 1;
            start = skip > p->n ? p->n : (size_t)skip;
        }
        p->n_dups = start;
    }
    size_t n_store = 0;
    for (size_t i = start; i < p->n; i++) {
        kt_status st = route_one(ev, env, p, &p->evs[i], p->first_seq + i, &n_store, err);
        if (st != KT_OK) {
            return st;
        }
    }
    if (n_store > 0) {
        hub_evstore_append_result r;
        kt_status st = hub_evstore_append(ev->store, p->es != NULL ? p->site : NULL, p->incarnation,
                                          ev->store_buf, n_store, &r, err);
        if (st != KT_OK) {
            return st;
        }
        p->n_stored = r.n_committed;
        p->n_dups += r.n_duplicates;
    }
    if (p->es != NULL && start < p->n) {
        return hub_evstore_mark(ev->store, p->site, p->incarnation, p->first_seq + p->n - 1, err);
    }
    return KT_OK;
}

static hub_events_session *session_of(hub_events *ev, const char *site)
{
    for (hub_events_session *s = ev->sessions; s != NULL; s = s->next) {
        if (!s->closed && strcmp(s->site, site) == 0) {
            return s;
        }
    }
    return NULL;
}

static void cloud_pump_all(hub_events *ev);

static void backpressure(hub_events *ev, pend *p)
{
    const char *site = p->site != NULL ? p->site : "hub";
    if (ev->metrics != NULL) {
        kt_metric *m = NULL;
        const char *labels[] = { "site", site, NULL };
        if (kt_metrics_counter(&m, ev->metrics, "ktwin_hub_upstream_deferred_total",
                               "Event batches deferred (not acked) because a queue they route to "
                               "was full, by origin site (\"hub\": events that arrived here)",
                               labels, NULL) == KT_OK) {
            kt_metrics_inc(m);
        }
    }
    uint64_t now = kt_clock_mono_ms();
    if (ev->bp_logged_ms == 0 || now - ev->bp_logged_ms >= FULL_LOG_EVERY_MS) {
        ev->bp_logged_ms = now;
        KT_LOG(KT_LOG_WARN, "HUB-BACKPRESSURE",
               "site=%s first_seq=%" PRIu64 " n=%zu deferred=%zu err=\"%s\"", site, p->first_seq,
               p->n, ev->n_deferred, p->err.msg);
    }
}

/* One group commit: up to commit_max_events events (at least one pend). */
static void process(hub_events *ev)
{
    if (ev->head == NULL) {
        return;
    }
    pend *taken = NULL;
    pend **tail = &taken;
    size_t n_events = 0;
    size_t n_taken = 0;
    while (ev->head != NULL && (taken == NULL || n_events + ev->head->n <= ev->commit_max_events)) {
        pend *p = ev->head;
        ev->head = p->next;
        if (ev->head == NULL) {
            ev->tail = NULL;
        }
        ev->n_pend--;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
        n_events += p->n;
        n_taken++;
    }
    model_route_env env;
    route_env(ev, &env);
    ev->n_touched = 0;
    kt_err err = { 0 };
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = hub_evstore_begin(ev->store, &err);
    if (st == KT_OK) {
        for (pend *p = taken; p != NULL && st == KT_OK; p = p->next) {
            kt_err perr = { 0 };
            if (stream_deferred(ev, p)) {
                /* an earlier pend of its stream waits: so does this one, unprocessed */
                defer_count(ev, p, true);
                p->deferred = true;
                continue;
            }
            /* a savepoint that cannot be opened or released leaves the transaction unknown */
            st = hub_evstore_savepoint(ev->store, &err);
            if (st != KT_OK) {
                break;
            }
            kt_status pst = process_pend(ev, &env, p, &perr);
            st = hub_evstore_release(ev->store, pst == KT_OK, &err);
            if (st != KT_OK) {
                break;
            }
            if (pst != KT_OK && p->full) {
                p->full = false;
                p->err = perr;
                p->n_stored = 0;
                p->n_dups = 0;
                defer_count(ev, p, true);
                p->deferred = true;
                backpressure(ev, p);
            } else if (pst != KT_OK) {
                p->failed = true;
                p->err = perr;
                p->n_stored = 0;
                KT_LOG(KT_LOG_ERR, "HUB-EVENTS-BATCH-FAIL",
                       "site=%s first_seq=%" PRIu64 " n=%zu status=%s err=\"%s\"",
                       p->site != NULL ? p->site : "-", p->first_seq, p->n, kt_status_str(pst),
                       perr.msg);
            }
        }
        if (st == KT_OK) {
            st = hub_evstore_commit(ev->store, &err);
        }
    }
    double ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
    if (st != KT_OK) {
        hub_evstore_rollback(ev->store);
        kt_metrics_inc(ev->m_commit_fail);
        KT_LOG(KT_LOG_ERR, "HUB-EVENTS-COMMIT-FAIL", "batches=%zu events=%zu err=\"%s\"", n_taken,
               n_events, err.msg);
        for (pend *p = taken; p != NULL; p = p->next) {
            if (p->deferred) {
                defer_count(ev, p, false);
                p->deferred = false;
            }
            p->failed = true;
            p->err = err;
            p->n_stored = 0;
        }
        ev->cloud_dirty = false;
        ev->n_touched = 0;
    } else {
        KT_LOG(KT_LOG_DEBUG, "HUB-EVENTS-COMMIT", "events=%zu ms=%.3f", n_events, ms);
    }
    /* after the commit: acks, failures, kicks, cloud services */
    for (pend *p = taken; p != NULL; p = p->next) {
        if (p->deferred) {
            continue;
        }
        kt_metrics_add(ev->m_committed, p->n_stored);
        kt_metrics_add(ev->m_dups, p->n_dups);
        if (p->es != NULL) {
            kt_metrics_inc(ev->m_batches);
        }
        if (p->es == NULL || p->es->closed) {
            continue;
        }
        if (p->failed) {
            if (p->es->ops.up_failed != NULL) {
                p->es->ops.up_failed(&p->err, p->es->user);
            }
        } else if (p->es->ops.ack_up != NULL) {
            p->es->ops.ack_up(p->first_seq + p->n - 1, p->es->user);
        }
    }
    for (size_t i = 0; i < ev->n_touched; i++) {
        site_gauge(ev, ev->touched[i]);
        hub_events_session *s = session_of(ev, ev->touched[i]);
        if (s != NULL && s->ops.down_ready != NULL) {
            s->ops.down_ready(s->user);
        }
    }
    for (size_t i = 0; i < ev->n_touched; i++) {
        kt_free(ev->touched[i]);
    }
    ev->n_touched = 0;
    while (taken != NULL) {
        pend *p = taken;
        taken = p->next;
        if (p->deferred) {
            defer_append(ev, p); /* counted when it was deferred */
        } else {
            pend_free(p);
        }
    }
    if (ev->cloud_dirty) {
        ev->cloud_dirty = false;
        cloud_pump_all(ev);
    }
}

/* Put the deferred FIFO back at the front of the queue, in order. */
static void on_retry(uv_timer_t *t)
{
    hub_events *ev = t->data;
    if (ev->dhead == NULL || ev->stopping) {
        return;
    }
    for (pend *p = ev->dhead; p != NULL; p = p->next) {
        defer_count(ev, p, false);
        p->deferred = false;
    }
    ev->dtail->next = ev->head;
    if (ev->tail == NULL) {
        ev->tail = ev->dtail;
    }
    ev->head = ev->dhead;
    ev->n_pend += ev->n_deferred;
    ev->dhead = NULL;
    ev->dtail = NULL;
    ev->n_deferred = 0;
    if (!ev->check_on && ev->check != NULL) {
        uv_check_start(ev->check, on_check);
        ev->check_on = true;
    }
}

static void on_coalesce(uv_timer_t *t);

/* Wait for more before committing (see Coalescing)? Arms the timer when so. */
static bool coalesce_wait(hub_events *ev)
{
    if (ev->head == NULL || ev->stopping || ev->coalesce == NULL) {
        return false;
    }
    size_t n = 0;
    for (const pend *p = ev->head; p != NULL; p = p->next) {
        n += p->n;
    }
    if (n < COALESCE_MIN_EVENTS || n > ev->commit_max_events / 2) {
        return false;
    }
    bool arriving = false;
    for (const hub_events_session *s = ev->sessions; s != NULL && !arriving; s = s->next) {
        arriving = !s->closed && s->rx_arriving;
    }
    if (!arriving) {
        return false;
    }
    uint64_t age = kt_clock_mono_ms() - ev->head->queued_ms;
    if (age >= COALESCE_MAX_MS) {
        return false;
    }
    if (!uv_is_active((uv_handle_t *)ev->coalesce)) {
        uv_timer_start(ev->coalesce, on_coalesce, COALESCE_MAX_MS - age, 0);
    }
    return true;
}

/* One group commit now (force: even while coalescing); stop the check when nothing waits. */
static void run_queue(hub_events *ev, bool force)
{
    if (!force && coalesce_wait(ev)) {
        return;
    }
    if (ev->coalesce != NULL) {
        uv_timer_stop(ev->coalesce);
    }
    process(ev);
    if (ev->head == NULL && ev->check_on) {
        uv_check_stop(ev->check);
        ev->check_on = false;
    }
}

static void on_coalesce(uv_timer_t *t)
{
    run_queue(t->data, true);
}

static void on_check(uv_check_t *h)
{
    run_queue(h->data, false);
}

void hub_events_flush(hub_events *ev)
{
    while (ev->head != NULL) {
        process(ev);
    }
    if (ev->coalesce != NULL) {
        uv_timer_stop(ev->coalesce);
    }
    if (ev->check_on) {
        uv_check_stop(ev->check);
        ev->check_on = false;
    }
}

/* ============================================================ cloud services */

static kt_status emit_sink(const model_event *e, void *user)
{
    emit_ctx *c = user;
    kt_err err = { 0 };
    kt_status st = hub_events_ingest_depth(c->ev, e, c->depth, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_WARN, "HUB-EMIT-REFUSED", "iface=%s source=%s status=%s err=\"%s\"", e->iface,
               e->source != NULL ? e->source : "", kt_status_str(st), err.msg);
    }
    return KT_OK; /* one refused emit must not cancel the others */
}

/* The event could not be delivered (final failure): counted, logged (rate-limited), deleted. */
static void dead_letter(cloud_q *q, const char *id, const char *why)
{
    hub_events *ev = q->ev;
    kt_metrics_inc(q->m_dead);
    uint64_t now = kt_clock_mono_ms();
    if (ev->dead_logged_ms == 0 || now - ev->dead_logged_ms >= FULL_LOG_EVERY_MS) {
        ev->dead_logged_ms = now;
        KT_LOG(KT_LOG_WARN, "HUB-CLOUD-DEAD", "iface=%s id=%s err=\"%s\" suppressed=%" PRIu64,
               q->iface, id, why, ev->dead_suppressed);
        ev->dead_suppressed = 0;
    } else {
        ev->dead_suppressed++;
    }
}

static void fl_push(cloud_q *q, uint64_t seq, bool done)
{
    if (q->fl_n == q->fl_cap) {
        q->fl_cap = q->fl_cap != 0 ? 2 * q->fl_cap : 64;
        q->fl = kt_xrealloc(q->fl, q->fl_cap * sizeof(*q->fl));
    }
    q->fl[q->fl_n].seq = seq;
    q->fl[q->fl_n].done = done;
    q->fl_n++;
    q->read_seq = seq;
}

static void fl_done(cloud_q *q, uint64_t seq)
{
    for (size_t i = 0; i < q->fl_n; i++) {
        if (q->fl[i].seq == seq) {
            q->fl[i].done = true;
            return;
        }
    }
}

/* Delete the completed prefix of q's handed-out rows from the store. */
static void cloud_ack(cloud_q *q)
{
    size_t k = 0;
    uint64_t upto = 0;
    while (k < q->fl_n && q->fl[k].done) {
        upto = q->fl[k].seq;
        k++;
    }
    if (k == 0) {
        return;
    }
    memmove(q->fl, q->fl + k, (q->fl_n - k) * sizeof(*q->fl));
    q->fl_n -= k;
    kt_err err = { 0 };
    if (hub_evstore_down_ack(q->ev->store, q->site, upto, &err) != KT_OK) {
        /* the rows stay: delivered again after a restart (at-least-once) */
        KT_LOG(KT_LOG_WARN, "HUB-CLOUD-ACK-FAIL", "iface=%s seq=%" PRIu64 " err=\"%s\"", q->iface,
               upto, err.msg);
    }
    kick_retry(q->ev);
}

static void on_cloud_timer(uv_timer_t *t);

static void cloud_schedule(hub_events *ev, uint64_t ms)
{
    if (ev->cloud_timer != NULL && !ev->stopping) {
        uv_timer_start(ev->cloud_timer, on_cloud_timer, ms, 0);
    }
}

#ifdef KT_HUB_HAVE_SVC_CALLER
static void on_call_done(kt_status st, const svc_call_result *res, void *user)
{
    cloud_ctx *cx = user;
    cloud_q *q = cx->q;
    hub_events *ev = q->ev;
    if (st == KT_ECLOSED || ev->stopping) {
        kt_free(cx); /* shutting down: the row stays queued for the next start */
        return;
    }
    if (st == KT_OK) {
        kt_metrics_inc(ev->m_cloud_ok);
        if (res != NULL && res->reply != NULL) {
            emit_ctx ec = { ev, cx->depth + 1 };
            (void)emit_sink(res->reply, &ec);
        }
    } else {
        kt_metrics_inc(ev->m_cloud_fail);
        dead_letter(q, cx->id,
                    res != NULL && res->detail != NULL ? res->detail : kt_status_str(st));
    }
    fl_done(q, cx->seq);
    kt_free(cx);
    cloud_ack(q);
    if (q->blocked) {
        q->blocked = false;
        cloud_schedule(ev, 0);
    }
}
#endif

/* One queued row, copied out of the store (borrowed callback data). */
typedef struct crow {
    sync_event se;
    uint64_t seq;
    uint32_t depth;
} crow;

typedef struct ccollect {
    kt_arena *a;
    crow *rows;
    size_t n, cap;
} ccollect;

/* copy_event of a stored row (empty subject / content type mean none). */
static void copy_row_event(kt_arena *a, sync_event *dst, const hub_evstore_event *e)
{
    sync_event src = { 0 };
    src.id = e->id;
    src.type = e->type;
    src.source = e->source;
    src.subject = e->subject[0] != '\0' ? e->subject : NULL;
    src.datacontenttype = e->datacontenttype[0] != '\0' ? e->datacontenttype : NULL;
    src.time_ms = e->time_ms;
    src.data = e->data;
    src.data_len = e->data_len;
    src.depth = e->depth;
    copy_event(a, dst, &src);
}

static int ccollect_cb(const hub_evstore_event *e, void *user)
{
    ccollect *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap != 0 ? 2 * c->cap : 64;
        c->rows = kt_xrealloc(c->rows, c->cap * sizeof(*c->rows));
    }
    crow *r = &c->rows[c->n++];
    memset(r, 0, sizeof(*r));
    copy_row_event(c->a, &r->se, e);
    r->seq = e->seq;
    r->depth = e->depth;
    return 0;
}

/* Hand one row to q's service. false: the HTTP caller is full (q blocked, row not taken). */
static bool cloud_dispatch(hub_events *ev, cloud_q *q, const crow *r)
{
    model_event me;
    kt_err err = { 0 };
    if (to_model(&me, &r->se, &err) != KT_OK) {
        dead_letter(q, r->se.id, err.msg);
        fl_push(q, r->seq, true);
        return true;
    }
    if (!q->http) {
        kt_status st = KT_ENOTFOUND;
        if (ev->plugins != NULL && svc_plugin_host_serves(ev->plugins, q->iface)) {
            emit_ctx ec = { ev, r->depth + 1 };
            st = svc_plugin_host_dispatch(ev->plugins, q->iface, &me, emit_sink, &ec, &err);
        } else {
            kt_err_set(&err, KT_ENOTFOUND, "no plugin serves %s", q->iface);
        }
        if (st == KT_OK) {
            kt_metrics_inc(ev->m_cloud_ok);
        } else {
            kt_metrics_inc(ev->m_cloud_fail);
            dead_letter(q, me.id, err.msg);
        }
        fl_push(q, r->seq, true);
        return true;
    }
#ifdef KT_HUB_HAVE_SVC_CALLER
    cloud_ctx *cx = kt_xcalloc(1, sizeof(*cx));
    cx->q = q;
    cx->seq = r->seq;
    cx->depth = r->depth;
    kt_strlcpy(cx->id, me.id, sizeof(cx->id));
    kt_status st = ev->caller != NULL ? svc_caller_post_depth(ev->caller, q->iface, &me, r->depth,
                                                              on_call_done, cx, &err)
                                      : kt_err_set(&err, KT_ENOTFOUND, "no HTTP caller");
    if (st == KT_OK) {
        fl_push(q, r->seq, false);
        return true;
    }
    kt_free(cx);
    if (st == KT_EAGAIN) {
        q->blocked = true;
        return false;
    }
#else
    kt_status st = kt_err_set(&err, KT_ENOTFOUND, "HTTP services are not built in");
#endif
    kt_metrics_inc(ev->m_cloud_fail);
    (void)st;
    dead_letter(q, me.id, err.msg);
    fl_push(q, r->seq, true);
    return true;
}

/* Hand q's queued rows to its service, at most budget; returns how many were handed out. */
static size_t cloud_pump(hub_events *ev, cloud_q *q, size_t budget)
{
    size_t handed = 0;
    while (!q->blocked && handed < budget && !ev->stopping) {
        kt_arena a;
        kt_arena_init(&a, 64 * 1024);
        ccollect c = { &a, NULL, 0, 0 };
        size_t want = budget - handed < CLOUD_READ_MAX ? budget - handed : CLOUD_READ_MAX;
        kt_err err = { 0 };
        kt_status st =
            hub_evstore_down_read(ev->store, q->site, q->read_seq, want, ccollect_cb, &c, &err);
        if (st != KT_OK) {
            KT_LOG(KT_LOG_WARN, "HUB-CLOUD-READ-FAIL", "iface=%s err=\"%s\"", q->iface, err.msg);
        }
        size_t n = st == KT_OK ? c.n : 0;
        for (size_t i = 0; i < n; i++) {
            if (!cloud_dispatch(ev, q, &c.rows[i])) {
                break;
            }
            handed++;
        }
        kt_free(c.rows);
        kt_arena_fini(&a);
        if (n < want) {
            break;
        }
    }
    cloud_ack(q);
    return handed;
}

static void cloud_pump_all(hub_events *ev)
{
    bool more = false;
    bool blocked = false;
    for (size_t i = 0; i < ev->n_cq && !ev->stopping; i++) {
        if (cloud_pump(ev, ev->cq[i], CLOUD_PUMP_BUDGET) >= CLOUD_PUMP_BUDGET) {
            more = true;
        }
        blocked = blocked || ev->cq[i]->blocked;
    }
    if (more) {
        cloud_schedule(ev, 0);
    } else if (blocked) {
        cloud_schedule(ev, CLOUD_BLOCKED_MS);
    }
}

static void on_cloud_timer(uv_timer_t *t)
{
    hub_events *ev = t->data;
    for (size_t i = 0; i < ev->n_cq; i++) {
        ev->cq[i]->blocked = false; /* try again: a call may have completed meanwhile */
    }
    cloud_pump_all(ev);
}

static double sample_cloud_queued(void *user)
{
    cloud_q *q = user;
    return (double)hub_evstore_down_count(q->ev->store, q->site);
}

static void cloud_q_add(hub_events *ev, const char *iface, bool http)
{
    if (find_cq(ev, iface) != NULL) {
        return; /* the first declaration serves it */
    }
    cloud_q *q = kt_xcalloc(1, sizeof(*q));
    q->ev = ev;
    q->iface = kt_xstrdup(iface);
    size_t len = strlen(CLOUD_SITE_PREFIX) + strlen(iface) + 1;
    q->site = kt_xmalloc(len);
    snprintf(q->site, len, "%s%s", CLOUD_SITE_PREFIX, iface);
    q->http = http;
    if (ev->metrics != NULL) {
        const char *labels[] = { "iface", iface, NULL };
        kt_err err = { 0 };
        (void)kt_metrics_counter(&q->m_dead, ev->metrics, "ktwin_hub_cloud_dead_letters_total",
                                 "Events a cloud service could not take after the retries "
                                 "(deleted from its durable queue), by interface",
                                 labels, &err);
        (void)kt_metrics_gauge_fn(ev->metrics, "ktwin_hub_cloud_queued",
                                  "Events in a cloud service's durable queue (not yet delivered "
                                  "or dead-lettered), by interface",
                                  labels, sample_cloud_queued, q, &err);
    }
    ev->cq = kt_xrealloc(ev->cq, (ev->n_cq + 1) * sizeof(*ev->cq));
    ev->cq[ev->n_cq++] = q;
}

/* ============================================================ sessions */

static void session_free(hub_events_session *es)
{
    hub_events *ev = es->ev;
    if (es->prev != NULL) {
        es->prev->next = es->next;
    } else {
        ev->sessions = es->next;
    }
    if (es->next != NULL) {
        es->next->prev = es->prev;
    }
    kt_arena_fini(&es->down_arena);
    kt_free(es->down);
    kt_free(es->site);
    kt_free(es);
}

static void session_unref(hub_events_session *es)
{
    KT_ASSERT(es->refs > 0);
    es->refs--;
    if (es->refs == 0 && es->closed) {
        session_free(es);
    }
}

hub_events_session *hub_events_session_open(hub_events *ev,
                                            const char *site,
                                            uint64_t agent_acked_down_seq,
                                            const hub_events_session_ops *ops,
                                            void *user)
{
    hub_events_session *es = kt_xcalloc(1, sizeof(*es));
    es->ev = ev;
    es->site = kt_xstrdup(site);
    es->ops = *ops;
    es->user = user;
    kt_arena_init(&es->down_arena, 64 * 1024);
    es->next = ev->sessions;
    if (ev->sessions != NULL) {
        ev->sessions->prev = es;
    }
    ev->sessions = es;
    kt_err err = { 0 };
    kt_status st = hub_evstore_down_rebase(ev->store, site, agent_acked_down_seq, &err);
    if (st == KT_OK && agent_acked_down_seq > 0) {
        st = hub_evstore_down_ack(ev->store, site, agent_acked_down_seq, &err);
    }
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "HUB-DOWN-OPEN-FAIL", "site=%s err=\"%s\"", site, err.msg);
    }
    site_gauge(ev, site);
    return es;
}

void hub_events_session_close(hub_events_session *es)
{
    if (es == NULL || es->closed) {
        return;
    }
    es->closed = true;
    if (es->refs == 0) {
        session_free(es);
    }
}

kt_status hub_events_up_committed(
    hub_events *ev, const char *site, const char *incarnation, uint64_t *seq_out, kt_err *err)
{
    return hub_evstore_acked_seq(ev->store, site, incarnation, seq_out, err);
}

kt_status hub_events_up_batch(hub_events_session *es,
                              const char *incarnation,
                              uint64_t first_seq,
                              const sync_event *events,
                              size_t n,
                              kt_err *err)
{
    if (n == 0 || incarnation == NULL || incarnation[0] == '\0' || first_seq == 0) {
        return kt_err_set(err, KT_EINVAL, "upstream batch: empty, no incarnation or seq 0");
    }
    if (es->closed) {
        return kt_err_set(err, KT_ECLOSED, "upstream batch on a closed session");
    }
    hub_events *ev = es->ev;
    pend *p = pend_new(ev, events, n);
    p->es = es;
    es->refs++;
    p->site = kt_arena_strdup(&p->arena, es->site);
    p->incarnation = kt_arena_strdup(&p->arena, incarnation);
    p->first_seq = first_seq;
    es->rx_arriving = false;
    enqueue(ev, p);
    return KT_OK;
}

void hub_events_session_note_rx(hub_events_session *es)
{
    if (es != NULL && !es->closed) {
        es->rx_arriving = true;
    }
}

typedef struct down_collect {
    hub_events_session *es;
    uint64_t next_seq;
    size_t n, max_events, max_bytes, bytes;
    bool gap;
} down_collect;

static int down_cb(const hub_evstore_event *e, void *user)
{
    down_collect *c = user;
    hub_events_session *es = c->es;
    if (e->seq != c->next_seq) {
        c->gap = true;
        return 1;
    }
    if (c->n > 0 && c->bytes + e->data_len > c->max_bytes) {
        return 1;
    }
    if (c->n == es->down_cap) {
        es->down_cap = es->down_cap != 0 ? 2 * es->down_cap : 64;
        es->down = kt_xrealloc(es->down, es->down_cap * sizeof(*es->down));
    }
    copy_row_event(&es->down_arena, &es->down[c->n], e);
    c->n++;
    c->bytes += e->data_len;
    c->next_seq++;
    return c->n >= c->max_events;
}

kt_status hub_events_down_next(hub_events_session *es,
                               const sync_event **events_out,
                               size_t *n_out,
                               uint64_t from_seq,
                               size_t max_events,
                               size_t max_bytes,
                               kt_err *err)
{
    *events_out = NULL;
    *n_out = 0;
    kt_arena_reset(&es->down_arena);
    if (from_seq == 0 || max_events == 0) {
        return KT_OK;
    }
    down_collect c = { es, from_seq, 0, max_events, max_bytes, 0, false };
    kt_status st =
        hub_evstore_down_read(es->ev->store, es->site, from_seq - 1, max_events, down_cb, &c, err);
    if (st != KT_OK) {
        return st;
    }
    if (c.gap && c.n == 0) {
        return kt_err_set(err, KT_EINTERNAL,
                          "downstream queue of %s does not continue at seq %" PRIu64, es->site,
                          from_seq);
    }
    *events_out = c.n > 0 ? es->down : NULL;
    *n_out = c.n;
    return KT_OK;
}

kt_status hub_events_down_acked(hub_events_session *es, uint64_t seq, kt_err *err)
{
    kt_status st = hub_evstore_down_ack(es->ev->store, es->site, seq, err);
    site_gauge(es->ev, es->site);
    kick_retry(es->ev); /* deferred batches may fit now */
    return st;
}

/* ============================================================ ingest */

kt_status hub_events_ingest(hub_events *ev, const model_event *e, kt_err *err)
{
    return hub_events_ingest_depth(ev, e, 0, err);
}

kt_status hub_events_ingest_depth(hub_events *ev, const model_event *e, uint32_t depth, kt_err *err)
{
    if (ev->stopping) {
        return kt_err_set(err, KT_EAGAIN, "hub is shutting down");
    }
    if (depth > ev->max_depth) {
        drop_metric(ev, "depth");
        if (drop_log_ok(ev)) {
            KT_LOG(KT_LOG_WARN, "HUB-EVENT-DROP",
                   "reason=depth depth=%" PRIu32 " max=%" PRIu32 " iface=%s source=%s id=%s", depth,
                   ev->max_depth, e->iface, e->source != NULL ? e->source : "",
                   e->id != NULL ? e->id : "");
        }
        return KT_OK; /* like KTWIN's broker: accepted, not routed */
    }
    model_route_env env;
    route_env(ev, &env);
    model_route_dest d[MODEL_ROUTE_DEST_MAX];
    size_t nd = model_route(&env, e, MODEL_ROUTE_FROM_LOCAL, NULL, d, MODEL_ROUTE_DEST_MAX);
    if (nd > MODEL_ROUTE_DEST_MAX) {
        return kt_err_set(err, KT_EINVAL, "%zu destinations", nd);
    }
    for (size_t i = 0; i < nd; i++) {
        if (d[i].kind == MODEL_ROUTE_DROP) {
            switch (d[i].drop) {
            case MODEL_DROP_UNKNOWN_IFACE:
            case MODEL_DROP_UNKNOWN_INSTANCE:
                drop_metric(ev, model_route_drop_str(d[i].drop));
                return kt_err_set(err, KT_ENOTFOUND, "%s: %s/%s", model_route_drop_str(d[i].drop),
                                  e->iface, e->source);
            case MODEL_DROP_IFACE_MISMATCH:
            case MODEL_DROP_UNKNOWN_COMMAND:
            case MODEL_DROP_NO_SERVICE:
                drop_metric(ev, model_route_drop_str(d[i].drop));
                return kt_err_set(err, KT_EINVAL, "%s: %s/%s", model_route_drop_str(d[i].drop),
                                  e->iface, e->source);
            default:
                break;
            }
        }
        const char *qsite = NULL;
        if (d[i].kind == MODEL_ROUTE_DOWNSTREAM) {
            qsite = d[i].site;
        } else if (d[i].kind == MODEL_ROUTE_SERVICE_CLOUD) {
            cloud_q *q = cloud_q_for(ev, d[i].iface);
            qsite = q != NULL ? q->site : NULL;
        }
        if (qsite != NULL && hub_evstore_down_count(ev->store, qsite) >= ev->down_cap) {
            kt_err ferr = { 0 };
            kt_err_set(&ferr, KT_EAGAIN, "queue %s is full", qsite);
            full_metric(ev, qsite, &ferr);
            return kt_err_set(err, KT_EAGAIN, "queue %s is full", qsite);
        }
    }
    char type[MODEL_EVENT_TYPE_CAP];
    sync_event se = { 0 };
    se.id = e->id;
    se.type = model_event_type_str(e, type, sizeof(type));
    se.source = e->source;
    se.time_ms = e->time_ms;
    se.datacontenttype = e->datacontenttype;
    se.data = e->data;
    se.data_len = e->data_len;
    se.depth = depth;
    if (se.id == NULL || se.source == NULL || se.type[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "event without id, source or type");
    }
    pend *p = pend_new(ev, &se, 1);
    enqueue(ev, p);
    return KT_OK;
}

/* ============================================================ svc store ops */

typedef struct rec_adapt {
    svc_record_cb cb;
    void *user;
} rec_adapt;

static int rec_cb(const hub_evstore_event *e, void *user)
{
    rec_adapt *a = user;
    svc_record r = { 0 };
    r.iface = e->iface;
    r.instance = e->instance;
    r.id = e->id;
    r.type = e->type;
    r.source = e->source;
    r.time_ms = e->time_ms;
    r.data = e->data;
    r.data_len = e->data_len;
    r.rowid = e->rowid;
    r.stored_ms = e->stored_ms;
    return a->cb(&r, a->user);
}

static kt_status op_latest(void *user,
                           const char *iface,
                           const char *instance,
                           svc_record_cb cb,
                           void *cb_user,
                           kt_err *err)
{
    hub_events *ev = user;
    rec_adapt a = { cb, cb_user };
    return hub_evstore_latest(ev->store, iface, instance, rec_cb, &a, err);
}

static kt_status op_put(void *user, const svc_record *rec, kt_err *err)
{
    hub_events *ev = user;
    hub_evstore_event h = { 0 };
    h.iface = rec->iface;
    h.instance = rec->instance;
    h.id = rec->id;
    h.type = rec->type;
    h.source = rec->source;
    h.datacontenttype = "application/json";
    h.time_ms = rec->time_ms;
    h.data = rec->data;
    h.data_len = rec->data_len;
    kt_status st = hub_evstore_begin(ev->store, err);
    if (st != KT_OK) {
        return st;
    }
    hub_evstore_append_result r;
    st = hub_evstore_append(ev->store, NULL, NULL, &h, 1, &r, err);
    if (st == KT_OK) {
        st = hub_evstore_commit(ev->store, err);
    } else {
        hub_evstore_rollback(ev->store);
    }
    if (st == KT_OK) {
        kt_metrics_add(ev->m_committed, r.n_committed);
    }
    return st;
}

static kt_status op_list(
    void *user, const svc_query *q, svc_record_cb cb, void *cb_user, svc_page *page, kt_err *err)
{
    hub_events *ev = user;
    hub_evstore_filter f = { 0 };
    f.iface = q->iface;
    f.instance = q->instance;
    f.from_ms = q->from_ms;
    f.to_ms = q->to_ms;
    f.desc = q->desc;
    f.limit = q->limit;
    f.after_time_ms = q->after_time_ms;
    f.after_rowid = q->after_rowid;
    rec_adapt a = { cb, cb_user };
    hub_evstore_page p;
    kt_status st = hub_evstore_query(ev->store, &f, rec_cb, &a, &p, err);
    memset(page, 0, sizeof(*page));
    if (st == KT_OK) {
        page->n = p.n;
        page->more = p.more;
        page->next_time_ms = p.next_time_ms;
        page->next_rowid = p.next_rowid;
    }
    return st;
}

static kt_status op_ingest(void *user, const model_event *e, uint32_t depth, kt_err *err)
{
    return hub_events_ingest_depth(user, e, depth, err);
}

static const model *graph_cb(void *user)
{
    hub_events *ev = user;
    return hub_graph_model(ev->graph);
}

/* ============================================================ lifecycle */

static kt_status merge_cb(kt_buf *out,
                          const uint8_t *latest,
                          size_t latest_len,
                          const uint8_t *next,
                          size_t next_len,
                          kt_err *err,
                          void *user)
{
    (void)user;
    return svc_merge_json(out, latest, latest_len, next, next_len, err);
}

static void on_graph_changed(
    hub_graph *g, uint64_t revision, const hub_change *changes, size_t n_changes, void *user)
{
    (void)revision;
    (void)changes;
    (void)n_changes;
    hub_events *ev = user;
    model_route_table_free(ev->table);
    ev->table = model_route_table_new(hub_graph_model(g));
}

static void retention_cb(uv_timer_t *t)
{
    hub_events *ev = t->data;
    uint64_t now = kt_clock_wall_ms();
    uint64_t cutoff =
        ev->ret_max_age_ms != 0 && now > ev->ret_max_age_ms ? now - ev->ret_max_age_ms : 0;
    size_t deleted = 0;
    bool more = false;
    kt_err err = { 0 };
    kt_status st = hub_evstore_retain(ev->store, cutoff, ev->ret_max_bytes, ev->ret_rows, &deleted,
                                      &more, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_WARN, "HUB-RETENTION-FAIL", "err=\"%s\"", err.msg);
        more = false;
    }
    if (deleted > 0) {
        kt_metrics_add(ev->m_ret_deleted, deleted);
        KT_LOG(KT_LOG_DEBUG, "HUB-RETENTION", "deleted=%zu more=%d", deleted, more);
    }
    uv_timer_start(t, retention_cb, more ? RETENTION_AGAIN_MS : ev->ret_interval_ms, 0);
}

static double sample_rows(void *user)
{
    hub_events *ev = user;
    hub_evstore_stats s;
    hub_evstore_stats_get(ev->store, &s);
    return (double)s.rows;
}

static double sample_bytes(void *user)
{
    hub_events *ev = user;
    hub_evstore_stats s;
    hub_evstore_stats_get(ev->store, &s);
    return (double)s.bytes;
}

static kt_status register_metrics(hub_events *ev, kt_err *err)
{
    kt_metrics *r = ev->metrics;
    if (r == NULL) {
        return KT_OK;
    }
    kt_status st = kt_metrics_counter(&ev->m_committed, r, "ktwin_hub_events_committed_total",
                                      "Events written to the event store", NULL, err);
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_dups, r, "ktwin_hub_events_duplicates_total",
                                "Upstream events dropped as already committed", NULL, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_batches, r, "ktwin_hub_event_batches_total",
                                "Upstream event batches processed", NULL, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_ret_deleted, r, "ktwin_hub_retention_deleted_total",
                                "Stored events deleted by retention", NULL, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_commit_fail, r, "ktwin_hub_evstore_commit_failures_total",
                                "Event store group commits that failed (nothing acked)", NULL, err);
    }
    const char *ok[] = { "result", "ok", NULL };
    const char *fail[] = { "result", "failed", NULL };
    const char *none[] = { "result", "no-service", NULL };
    const char *help = "Events handed to cloud twin services, by result";
    if (st == KT_OK) {
        st =
            kt_metrics_counter(&ev->m_cloud_ok, r, "ktwin_hub_cloud_dispatch_total", help, ok, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_cloud_fail, r, "ktwin_hub_cloud_dispatch_total", help, fail,
                                err);
    }
    if (st == KT_OK) {
        st = kt_metrics_counter(&ev->m_cloud_none, r, "ktwin_hub_cloud_dispatch_total", help, none,
                                err);
    }
    if (st == KT_OK) {
        st = kt_metrics_gauge_fn(r, "ktwin_hub_evstore_rows", "Events in the event store history",
                                 NULL, sample_rows, ev, err);
    }
    if (st == KT_OK) {
        st = kt_metrics_gauge_fn(r, "ktwin_hub_evstore_bytes",
                                 "Attribute and data bytes of the event store history", NULL,
                                 sample_bytes, ev, err);
    }
    return st;
}

static kt_status load_services(hub_events *ev, const hub_cfg *cfg, kt_err *err)
{
    for (size_t i = 0; i < cfg->services.specs.n; i++) {
        svc_service sv;
        kt_err perr = { 0 };
        kt_status st = svc_service_parse(&sv, cfg->services.specs.items[i], &perr);
        if (st != KT_OK) {
            return kt_err_set(err, st, "services[%zu]: %s", i, perr.msg);
        }
        if (sv.kind == SVC_SERVICE_PLUGIN) {
            if (ev->plugins == NULL) {
                svc_plugin_host_opts po = { 0 };
                po.metrics = ev->metrics;
                po.graph = graph_cb;
                po.store = &ev->store_ops;
                po.user = ev;
                st = svc_plugin_host_new(&ev->plugins, &po, err);
            }
            if (st == KT_OK) {
                st = svc_plugin_host_load(ev->plugins, sv.target, (const char *const *)sv.ifaces,
                                          sv.n_ifaces, sv.config, &perr);
                if (st != KT_OK) {
                    st = kt_err_set(err, st, "services[%zu]: %s", i, perr.msg);
                }
            }
            for (size_t k = 0; st == KT_OK && k < sv.n_ifaces; k++) {
                cloud_q_add(ev, sv.ifaces[k], false);
            }
            /* "*": the plugin's own list; its queues exist for the model's interfaces it serves */
            const model *m = hub_graph_model(ev->graph);
            for (size_t k = 0;
                 st == KT_OK && sv.n_ifaces == 0 && m != NULL && k < model_n_ifaces(m); k++) {
                const char *name = model_iface_at(m, k)->name;
                if (svc_plugin_host_serves(ev->plugins, name)) {
                    cloud_q_add(ev, name, false);
                }
            }
        } else {
#ifdef KT_HUB_HAVE_SVC_CALLER
            if (ev->caller == NULL) {
                svc_caller_opts co = { 0 };
                co.metrics = ev->metrics;
                st = svc_caller_new(&ev->caller, ev->loop, &co, err);
            }
            for (size_t k = 0; st == KT_OK && k < sv.n_ifaces; k++) {
                st = svc_caller_endpoint(ev->caller, sv.ifaces[k], &sv.http, &perr);
                if (st != KT_OK) {
                    st = kt_err_set(err, st, "services[%zu]: %s", i, perr.msg);
                } else {
                    cloud_q_add(ev, sv.ifaces[k], true);
                }
            }
#else
            st = kt_err_set(err, KT_EINVAL, "services[%zu]: HTTP services are not built in", i);
#endif
        }
        if (st == KT_OK) {
            KT_LOG(KT_LOG_NOTICE, "HUB-SERVICE", "kind=%s target=%s ifaces=%zu",
                   sv.kind == SVC_SERVICE_PLUGIN ? "plugin" : "http", sv.target, sv.n_ifaces);
        }
        svc_service_fini(&sv);
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

static void handle_free_cb(uv_handle_t *h)
{
    kt_free(h);
}

kt_status hub_events_new(hub_events **out,
                         uv_loop_t *loop,
                         kt_http_server *srv,
                         hub_graph *graph,
                         const hub_cfg *cfg,
                         kt_metrics *metrics,
                         kt_err *err)
{
    *out = NULL;
    hub_events *ev = kt_xcalloc(1, sizeof(*ev));
    ev->loop = loop;
    ev->graph = graph;
    ev->metrics = metrics;
    ev->commit_max_events =
        cfg->events.commit_max_events > 0 ? (size_t)cfg->events.commit_max_events : 20000;
    ev->ret_max_age_ms =
        cfg->events.retention_max_age_ms > 0 ? (uint64_t)cfg->events.retention_max_age_ms : 0;
    ev->ret_max_bytes = cfg->events.retention_max_bytes;
    ev->ret_rows =
        cfg->events.retention_batch_rows > 0 ? (size_t)cfg->events.retention_batch_rows : 5000;
    ev->ret_interval_ms =
        cfg->events.retention_interval_ms > 0 ? (uint64_t)cfg->events.retention_interval_ms : 10000;
    ev->down_cap =
        cfg->events.down_max_per_site > 0 ? (uint64_t)cfg->events.down_max_per_site : 100000;
    ev->max_depth =
        cfg->services.max_depth > 0 ? (uint32_t)cfg->services.max_depth : DEFAULT_MAX_DEPTH;
    char path[4200];
    if (cfg->events.store_path != NULL) {
        kt_strlcpy(path, cfg->events.store_path, sizeof(path));
    } else {
        snprintf(path, sizeof(path), "%s/events.db", cfg->data_dir != NULL ? cfg->data_dir : ".");
    }
    hub_evstore_sqlite_opts so = { 0 };
    so.path = path;
    so.merge = merge_cb;
    so.down_max_per_site = ev->down_cap;
    kt_status st = hub_evstore_sqlite_open(&ev->store, &so, err);
    if (st != KT_OK) {
        kt_free(ev);
        return st;
    }
    ev->table = model_route_table_new(hub_graph_model(graph));
    ev->store_ops.latest = op_latest;
    ev->store_ops.put = op_put;
    ev->store_ops.list = op_list;
    ev->store_ops.user = ev;
    ev->check = kt_xcalloc(1, sizeof(*ev->check));
    uv_check_init(loop, ev->check);
    ev->check->data = ev;
    ev->retention = kt_xcalloc(1, sizeof(*ev->retention));
    uv_timer_init(loop, ev->retention);
    ev->retention->data = ev;
    ev->retry = kt_xcalloc(1, sizeof(*ev->retry));
    uv_timer_init(loop, ev->retry);
    ev->retry->data = ev;
    ev->coalesce = kt_xcalloc(1, sizeof(*ev->coalesce));
    uv_timer_init(loop, ev->coalesce);
    ev->coalesce->data = ev;
    ev->cloud_timer = kt_xcalloc(1, sizeof(*ev->cloud_timer));
    uv_timer_init(loop, ev->cloud_timer);
    ev->cloud_timer->data = ev;
    hub_graph_subscribe(graph, on_graph_changed, ev);
    st = register_metrics(ev, err);
    if (st == KT_OK) {
        st = load_services(ev, cfg, err);
    }
    if (st == KT_OK && srv != NULL) {
        svc_api_ops ao = { 0 };
        ao.ingest_depth = op_ingest;
        ao.store = &ev->store_ops;
        ao.user = ev;
        svc_api_opts aopts = { 0 };
        aopts.metrics = metrics;
        st = svc_api_mount(&ev->api, srv, &ao, &aopts, err);
    }
    if (st != KT_OK) {
        hub_events_free(ev);
        return st;
    }
    if (ev->ret_max_age_ms != 0 || ev->ret_max_bytes != 0) {
        uv_timer_start(ev->retention, retention_cb, ev->ret_interval_ms, 0);
    }
    size_t cloud_pending = 0;
    for (size_t i = 0; i < ev->n_cq; i++) {
        cloud_pending += (size_t)hub_evstore_down_count(ev->store, ev->cq[i]->site);
    }
    if (cloud_pending > 0) {
        /* a previous run left events for the cloud services: deliver them (at-least-once) */
        KT_LOG(KT_LOG_NOTICE, "HUB-CLOUD-RESUME", "events=%zu", cloud_pending);
    }
    cloud_schedule(ev, 0);
    hub_evstore_stats stats;
    hub_evstore_stats_get(ev->store, &stats);
    KT_LOG(KT_LOG_NOTICE, "HUB-EVENTS-READY",
           "store=%s backend=%s rows=%" PRIu64 " bytes=%" PRIu64 " retention_max_age_ms=%" PRIu64
           " retention_max_bytes=%" PRIu64,
           path, hub_evstore_backend(ev->store), stats.rows, stats.bytes, ev->ret_max_age_ms,
           ev->ret_max_bytes);
    *out = ev;
    return KT_OK;
}

void hub_events_free(hub_events *ev)
{
    if (ev == NULL) {
        return;
    }
    ev->stopping = true; /* no cloud calls now: queued rows wait for the next start */
    hub_events_flush(ev);
    /* deferred batches were never acked: the agents resend them; events that arrived here are lost
     */
    size_t dropped_local = 0;
    while (ev->dhead != NULL) {
        pend *p = ev->dhead;
        ev->dhead = p->next;
        if (p->es == NULL) {
            dropped_local++;
        }
        defer_count(ev, p, false);
        pend_free(p);
    }
    ev->dtail = NULL;
    if (ev->n_deferred > 0) {
        KT_LOG(KT_LOG_WARN, "HUB-DEFERRED-DROPPED", "batches=%zu hub_events=%zu", ev->n_deferred,
               dropped_local);
    }
    ev->n_deferred = 0;
#ifdef KT_HUB_HAVE_SVC_CALLER
    svc_caller_free(ev->caller);
    ev->caller = NULL;
#endif
    svc_plugin_host_free(ev->plugins);
    svc_api_free(ev->api);
    hub_graph_unsubscribe(ev->graph, on_graph_changed, ev);
    model_route_table_free(ev->table);
    if (ev->metrics != NULL) {
        kt_metrics_detach(ev->metrics, ev);
        for (size_t i = 0; i < ev->n_cq; i++) {
            kt_metrics_detach(ev->metrics, ev->cq[i]);
        }
    }
    while (ev->sessions != NULL) {
        hub_events_session *es = ev->sessions;
        es->refs = 0;
        session_free(es);
    }
    hub_evstore_free(ev->store);
    uv_check_stop(ev->check);
    uv_timer_stop(ev->retention);
    uv_close((uv_handle_t *)ev->check, handle_free_cb);
    uv_close((uv_handle_t *)ev->retention, handle_free_cb);
    if (ev->retry != NULL) {
        uv_timer_stop(ev->retry);
        uv_close((uv_handle_t *)ev->retry, handle_free_cb);
    }
    if (ev->coalesce != NULL) {
        uv_timer_stop(ev->coalesce);
        uv_close((uv_handle_t *)ev->coalesce, handle_free_cb);
    }
    if (ev->cloud_timer != NULL) {
        uv_timer_stop(ev->cloud_timer);
        uv_close((uv_handle_t *)ev->cloud_timer, handle_free_cb);
    }
    for (size_t i = 0; i < ev->n_cq; i++) {
        kt_free(ev->cq[i]->iface);
        kt_free(ev->cq[i]->site);
        kt_free(ev->cq[i]->fl);
        kt_free(ev->cq[i]);
    }
    kt_free(ev->cq);
    kt_free(ev->store_buf);
    kt_free(ev->touched);
    kt_free(ev);
}

hub_evstore *hub_events_store(hub_events *ev)
{
    return ev->store;
}

void hub_events_set_placement(hub_events *ev, hub_events_placement_cb get, void *user)
{
    ev->placement_get = get;
    ev->placement_user = user;
}
