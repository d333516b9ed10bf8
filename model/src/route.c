/*
 * route.c — the routing decision shared by hub and agent (model/route.h has
 * the whole table).
 *
 * DESIGN: model_route walks the event's class through three building blocks
 * (service, device, persist) that each know the two roles; destinations are
 * appended through add(), which merges duplicates by scanning the few
 * already written, so there is no allocation and no hidden state. The only
 * index is the route table: for each target interface, the aggregateData
 * relationships (J, relationship name) that point at it, built once per
 * model.
 *
 * Invariants: model_route never allocates and never writes past cap; the
 * count it returns counts merged duplicates once (beyond cap the merge can
 * only see the written part, so the count is an upper bound there).
 *
 * Thread: the table belongs to the model's owner; model_route is pure.
 * Ownership: the table borrows the model and owns its arrays.
 */
#include "model/route.h"

#include <string.h>
#include <strings.h>

#include "kt/map.h"
#include "kt/mem.h"

/* ============================================================== table */

typedef struct route_agg {
    const model_iface *j; /* the aggregating interface */
    const char *rel;      /* its relationship's name */
} route_agg;

typedef struct route_entry {
    route_agg *aggs;
    size_t n_aggs, cap_aggs;
    const model_iface **ifaces; /* distinct j with a service, model order */
    size_t n_ifaces, cap_ifaces;
} route_entry;

struct model_route_table {
    const model *m;
    kt_map by_target; /* target interface name -> route_entry* */
    route_entry **entries;
    size_t n_entries, cap_entries;
};

static route_entry *entry_for(model_route_table *t, const char *target)
{
    route_entry *e = kt_map_get(&t->by_target, target);
    if (e != NULL) {
        return e;
    }
    e = kt_xcalloc(1, sizeof *e);
    kt_map_set(&t->by_target, target, e);
    if (t->n_entries == t->cap_entries) {
        t->cap_entries = t->cap_entries == 0 ? 8 : t->cap_entries * 2;
        t->entries = kt_xrealloc(t->entries, t->cap_entries * sizeof *t->entries);
    }
    t->entries[t->n_entries++] = e;
    return e;
}

model_route_table *model_route_table_new(const model *m)
{
    model_route_table *t = kt_xcalloc(1, sizeof *t);
    t->m = m;
    kt_map_init(&t->by_target);
    size_t n = model_n_ifaces(m);
    for (size_t i = 0; i < n; i++) {
        const model_iface *j = model_iface_at(m, i);
        for (size_t k = 0; k < j->n_members; k++) {
            const model_member *mb = j->members[k];
            if (mb->kind != MODEL_MEMBER_RELATIONSHIP || !mb->aggregate_data ||
                mb->target == NULL) {
                continue;
            }
            route_entry *e = entry_for(t, mb->target);
            if (e->n_aggs == e->cap_aggs) {
                e->cap_aggs = e->cap_aggs == 0 ? 4 : e->cap_aggs * 2;
                e->aggs = kt_xrealloc(e->aggs, e->cap_aggs * sizeof *e->aggs);
            }
            e->aggs[e->n_aggs].j = j;
            e->aggs[e->n_aggs].rel = mb->name;
            e->n_aggs++;
            if (j->has_service && (e->n_ifaces == 0 || e->ifaces[e->n_ifaces - 1] != j)) {
                if (e->n_ifaces == e->cap_ifaces) {
                    e->cap_ifaces = e->cap_ifaces == 0 ? 4 : e->cap_ifaces * 2;
                    e->ifaces = kt_xrealloc(e->ifaces, e->cap_ifaces * sizeof *e->ifaces);
                }
                e->ifaces[e->n_ifaces++] = j;
            }
        }
    }
    return t;
}

void model_route_table_free(model_route_table *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_entries; i++) {
        kt_free(t->entries[i]->aggs);
        kt_free(t->entries[i]->ifaces);
        kt_free(t->entries[i]);
    }
    kt_free(t->entries);
    kt_map_fini(&t->by_target);
    kt_free(t);
}

const model *model_route_table_model(const model_route_table *t)
{
    return t->m;
}

size_t model_route_aggregators(const model_route_table *t,
                               const char *iface,
                               const model_iface *const **out)
{
    const route_entry *e = kt_map_get(&t->by_target, iface);
    if (e == NULL || e->n_ifaces == 0) {
        *out = NULL;
        return 0;
    }
    *out = e->ifaces;
    return e->n_ifaces;
}

/* ============================================================== placement adapter */

static model_placement_where placement_where(const char *iface, const char *site, void *user)
{
    const model_placement_decision *d = model_placement_decision_get(user, iface, site);
    return d != NULL ? d->where : MODEL_WHERE_CLOUD;
}

static const char *placement_instance_site(const char *instance, void *user)
{
    return model_placement_instance_site(user, instance);
}

void model_route_placement_from(model_route_placement *out, const model_placement *p)
{
    out->where = placement_where;
    out->instance_site = placement_instance_site;
    out->user = (void *)(uintptr_t)p; /* read only: the callbacks take const */
}

/* ============================================================== routing */

typedef struct rctx {
    const model_route_env *env;
    const model_event *ev;
    const model_iface *iface; /* I */
    int hub;                  /* env->site == NULL */
    model_route_origin origin;
    const char *from; /* hub: the sending site (origin SITE), else NULL */
    model_route_dest *out;
    size_t cap;
    size_t n;
    const char *skipped; /* agent, from the hub: an interface whose part does not run here */
} rctx;

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return a == b || strcmp(a, b) == 0;
}

static void
add(rctx *c, model_route_kind kind, model_route_drop drop, const char *iface, const char *site)
{
    size_t seen = c->n < c->cap ? c->n : c->cap;
    for (size_t i = 0; i < seen; i++) {
        const model_route_dest *d = &c->out[i];
        if (d->kind == kind && d->drop == drop && str_eq(d->iface, iface) &&
            str_eq(d->site, site)) {
            return;
        }
    }
    if (c->n < c->cap) {
        model_route_dest *d = &c->out[c->n];
        d->kind = kind;
        d->drop = drop;
        d->iface = iface;
        d->site = site;
    }
    c->n++;
}

static model_placement_where where(const rctx *c, const char *iface, const char *site)
{
    return c->env->placement.where(iface, site, c->env->placement.user);
}

static const char *site_of(const rctx *c, const char *instance)
{
    return c->env->placement.instance_site(instance, c->env->placement.user);
}

static int is_here(const rctx *c, const char *site)
{
    return !c->hub && site != NULL && strcmp(site, c->env->site) == 0;
}

static int is_from(const rctx *c, const char *site)
{
    return c->from != NULL && site != NULL && strcmp(site, c->from) == 0;
}

/*
 * Agent: what cannot be done here goes to the hub, unless the hub sent it:
 * then that part is skipped (the hub sends an event for what runs here; the
 * other parts are done elsewhere), and the event is MISROUTED only when no
 * part runs here.
 */
static void up(rctx *c, const char *iface)
{
    if (c->origin == MODEL_ROUTE_FROM_HUB) {
        if (c->skipped == NULL) {
            c->skipped = iface;
        }
    } else {
        add(c, MODEL_ROUTE_UPSTREAM, MODEL_DROP_NONE, NULL, NULL);
    }
}

/* Run the service of interface k for an instance of site z. */
static void service(rctx *c, const char *k, const char *z)
{
    if (!c->hub) {
        if (!is_here(c, z)) {
            up(c, k);
            return;
        }
        model_placement_where w = where(c, k, z);
        if (w == MODEL_WHERE_EDGE) {
            add(c, MODEL_ROUTE_SERVICE_LOCAL, MODEL_DROP_NONE, k, NULL);
        } else if (w == MODEL_WHERE_PENDING) {
            add(c, MODEL_ROUTE_DROP, MODEL_DROP_PENDING, k, NULL);
        } else {
            up(c, k);
        }
        return;
    }
    if (z == NULL) {
        add(c, MODEL_ROUTE_SERVICE_CLOUD, MODEL_DROP_NONE, k, NULL);
        return;
    }
    model_placement_where w = where(c, k, z);
    if (w == MODEL_WHERE_EDGE) {
        if (!is_from(c, z)) {
            add(c, MODEL_ROUTE_DOWNSTREAM, MODEL_DROP_NONE, NULL, z);
        }
    } else if (w == MODEL_WHERE_PENDING) {
        if (!is_from(c, z)) {
            add(c, MODEL_ROUTE_DROP, MODEL_DROP_PENDING, k, NULL);
        }
    } else {
        add(c, MODEL_ROUTE_SERVICE_CLOUD, MODEL_DROP_NONE, k, NULL);
    }
}

/* Publish a virtual event to the device of an instance of site z. */
static void device(rctx *c, const char *z)
{
    const char *i = c->iface->name;
    if (!c->hub) {
        if (is_here(c, z)) {
            add(c, MODEL_ROUTE_MQTT_VIRTUAL, MODEL_DROP_NONE, i, NULL);
        } else {
            up(c, i);
        }
        return;
    }
    if (z == NULL) {
        add(c, MODEL_ROUTE_DROP, MODEL_DROP_NO_SITE, i, NULL);
    } else if (!is_from(c, z)) {
        add(c, MODEL_ROUTE_DOWNSTREAM, MODEL_DROP_NONE, NULL, z);
    }
}

/* Event store and latest state for an instance of site z. */
static void persist(rctx *c, const char *z)
{
    const char *i = c->iface->name;
    if (!c->hub) {
        if (is_here(c, z)) {
            add(c, MODEL_ROUTE_LATEST, MODEL_DROP_NONE, i, NULL);
        } else if (c->origin == MODEL_ROUTE_FROM_HUB && c->skipped == NULL) {
            c->skipped = i;
        }
        if (c->origin != MODEL_ROUTE_FROM_HUB) {
            add(c, MODEL_ROUTE_UPSTREAM, MODEL_DROP_NONE, NULL, NULL);
        }
        return;
    }
    add(c, MODEL_ROUTE_STORE, MODEL_DROP_NONE, i, NULL);
    if (c->ev->cls == MODEL_EVENT_STORE && z != NULL && !is_from(c, z) &&
        where(c, i, z) == MODEL_WHERE_EDGE) {
        add(c, MODEL_ROUTE_DOWNSTREAM, MODEL_DROP_NONE, NULL, z);
    }
}

static int has_command(const model_iface *i, const char *cmd)
{
    for (size_t k = 0; k < i->n_members; k++) {
        const model_member *mb = i->members[k];
        if (mb->kind == MODEL_MEMBER_COMMAND && mb->name != NULL &&
            strcasecmp(mb->name, cmd) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Real events also go to the services of interfaces that aggregate I. */
static void aggregators(rctx *c, const model_instance *x, const char *zx)
{
    const route_entry *e = kt_map_get(&c->env->table->by_target, c->iface->name);
    if (e == NULL) {
        return;
    }
    for (size_t a = 0; a < e->n_aggs; a++) {
        const model_iface *j = e->aggs[a].j;
        if (!j->has_service) {
            continue;
        }
        int found = 0;
        for (uint32_t k = 0; k < x->n_in; k++) {
            const model_instance *p = x->in[k].src;
            if (p->iface != j || x->in[k].rel >= p->n_rels ||
                strcmp(p->rels[x->in[k].rel].name, e->aggs[a].rel) != 0) {
                continue;
            }
            found = 1;
            service(c, j->name, site_of(c, p->name));
        }
        if (!found) {
            service(c, j->name, zx);
        }
    }
}

static size_t drop_only(rctx *c, model_route_drop why, const char *iface)
{
    c->n = 0;
    add(c, MODEL_ROUTE_DROP, why, iface, NULL);
    return c->n;
}

size_t model_route(const model_route_env *env,
                   const model_event *ev,
                   model_route_origin origin,
                   const char *from_site,
                   model_route_dest *out,
                   size_t cap)
{
    KT_ASSERT(env != NULL && env->table != NULL && env->placement.where != NULL &&
              env->placement.instance_site != NULL);
    KT_ASSERT(ev->cls >= MODEL_EVENT_REAL && ev->cls <= MODEL_EVENT_STORE);
    rctx c = { .env = env,
               .ev = ev,
               .hub = env->site == NULL,
               .origin = origin,
               .from = (env->site == NULL && origin == MODEL_ROUTE_FROM_SITE) ? from_site : NULL,
               .out = out,
               .cap = cap };
    if (c.hub && origin == MODEL_ROUTE_FROM_HUB) {
        c.origin = MODEL_ROUTE_FROM_LOCAL;
    }
    if (!c.hub && origin == MODEL_ROUTE_FROM_SITE) {
        c.origin = MODEL_ROUTE_FROM_LOCAL;
    }
    const model *m = env->table->m;

    /* ---- checks: the event as a whole */
    c.iface = model_iface_get(m, ev->iface);
    if (c.iface == NULL) {
        return drop_only(&c, MODEL_DROP_UNKNOWN_IFACE, ev->iface);
    }
    if (ev->cls == MODEL_EVENT_COMMAND) {
        if (!has_command(c.iface, ev->command)) {
            return drop_only(&c, MODEL_DROP_UNKNOWN_COMMAND, c.iface->name);
        }
        if (!c.iface->has_service) {
            return drop_only(&c, MODEL_DROP_NO_SERVICE, c.iface->name);
        }
    }
    const model_instance *x = ev->source != NULL ? model_instance_get(m, ev->source) : NULL;
    if (x == NULL) {
        if (!c.hub && (env->flags & MODEL_ROUTE_F_UNKNOWN_UPSTREAM) != 0 &&
            c.origin == MODEL_ROUTE_FROM_LOCAL) {
            c.n = 0;
            add(&c, MODEL_ROUTE_UPSTREAM, MODEL_DROP_NONE, NULL, NULL);
            return c.n;
        }
        return drop_only(&c, MODEL_DROP_UNKNOWN_INSTANCE, c.iface->name);
    }
    if (x->iface_name == NULL || strcmp(x->iface_name, c.iface->name) != 0) {
        return drop_only(&c, MODEL_DROP_IFACE_MISMATCH, c.iface->name);
    }

    /* ---- the table */
    const char *zx = site_of(&c, x->name);
    switch (ev->cls) {
    case MODEL_EVENT_REAL:
        if (c.iface->has_service) {
            service(&c, c.iface->name, zx);
        }
        aggregators(&c, x, zx);
        if (c.iface->persist_real_event) {
            persist(&c, zx);
        }
        break;
    case MODEL_EVENT_VIRTUAL:
        device(&c, zx);
        if (c.iface->persist_virtual_event) {
            persist(&c, zx);
        }
        break;
    case MODEL_EVENT_COMMAND:
        service(&c, c.iface->name, zx);
        break;
    case MODEL_EVENT_STORE:
        persist(&c, zx);
        break;
    default:
        break;
    }
    if (c.n == 0 && c.skipped != NULL) {
        add(&c, MODEL_ROUTE_DROP, MODEL_DROP_MISROUTED, c.skipped, NULL);
    } else if (c.n == 0) {
        add(&c, MODEL_ROUTE_DROP, MODEL_DROP_NO_ROUTE, c.iface->name, NULL);
    }
    return c.n;
}

const char *model_route_kind_str(model_route_kind k)
{
    switch (k) {
    case MODEL_ROUTE_SERVICE_LOCAL:
        return "service-local";
    case MODEL_ROUTE_SERVICE_CLOUD:
        return "service-cloud";
    case MODEL_ROUTE_UPSTREAM:
        return "upstream";
    case MODEL_ROUTE_DOWNSTREAM:
        return "downstream";
    case MODEL_ROUTE_MQTT_VIRTUAL:
        return "mqtt-virtual";
    case MODEL_ROUTE_STORE:
        return "store";
    case MODEL_ROUTE_LATEST:
        return "latest";
    case MODEL_ROUTE_DROP:
        return "drop";
    default:
        return "unknown";
    }
}

const char *model_route_drop_str(model_route_drop d)
{
    switch (d) {
    case MODEL_DROP_NONE:
        return "none";
    case MODEL_DROP_UNKNOWN_IFACE:
        return "unknown-iface";
    case MODEL_DROP_UNKNOWN_INSTANCE:
        return "unknown-instance";
    case MODEL_DROP_IFACE_MISMATCH:
        return "iface-mismatch";
    case MODEL_DROP_UNKNOWN_COMMAND:
        return "unknown-command";
    case MODEL_DROP_NO_SERVICE:
        return "no-service";
    case MODEL_DROP_PENDING:
        return "pending";
    case MODEL_DROP_NO_SITE:
        return "no-site";
    case MODEL_DROP_MISROUTED:
        return "misrouted";
    case MODEL_DROP_NO_ROUTE:
        return "no-route";
    default:
        return "unknown";
    }
}
