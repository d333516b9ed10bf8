/*
 * model/route.h — the routing decision shared by hub and agent: one pure
 * function from (model, placement, where am I, event) to a short list of
 * destinations. Routing is per interface, never per instance in the broker
 * sense (no per-instance subscriptions); the instance only tells which site
 * the decision for its interface is read from.
 *
 * TERMS
 *   I, x    the event's interface (ev->iface) and instance (ev->source)
 *   here    env->site: the agent's site; NULL on the hub (the cloud)
 *   from    where the event comes from (model_route_origin): produced here
 *           (device, local service, local API), sent down by the hub (agent),
 *           or sent up by the agent of site F (hub)
 *   site(y) placement.instance_site(y): the site hosting instance y, NULL
 *           when it has none (cloud only) or, on an agent, when it is not
 *           known to be this site
 *   W(K,Z)  placement.where(K, Z): where interface K's service runs for the
 *           instances of site Z (EDGE on Z, CLOUD, PENDING). An agent is only
 *           asked about its own site.
 *
 * CHECKS (the event is refused: DROP is then the only destination)
 *   I not in the model                           DROP(UNKNOWN_IFACE)
 *   COMMAND: cmd not a command of I (resolved,
 *     case-insensitive)                          DROP(UNKNOWN_COMMAND)
 *   COMMAND: I has no service                    DROP(NO_SERVICE)
 *   x not in the model                           DROP(UNKNOWN_INSTANCE); an agent
 *                                                with MODEL_ROUTE_F_UNKNOWN_UPSTREAM
 *                                                sends it UPSTREAM instead (its
 *                                                model is only a subgraph)
 *   x is an instance of another interface        DROP(IFACE_MISMATCH)
 *
 * BUILDING BLOCKS (each adds destinations, duplicates are merged)
 *   service(K, Z): run K's service for an instance of site Z
 *     agent: Z == here and W(K,here) EDGE        SERVICE_LOCAL(K)
 *            Z == here and W(K,here) PENDING     DROP(PENDING, K)
 *            otherwise                           up(K)
 *     hub:   Z NULL                              SERVICE_CLOUD(K)
 *            W(K,Z) CLOUD                        SERVICE_CLOUD(K)
 *            W(K,Z) EDGE                         DOWNSTREAM(Z), nothing when Z == from
 *            W(K,Z) PENDING                      DROP(PENDING, K), nothing when Z == from
 *   device(Z): publish a virtual event to the device of an instance of site Z
 *     agent: Z == here                           MQTT_VIRTUAL (topic: model_topic_build
 *                                                (VIRTUAL, ev->iface, ev->source))
 *            otherwise                           up(I)
 *     hub:   Z NULL                              DROP(NO_SITE, I) (no broker in the cloud)
 *            Z == from                           nothing (that agent published it)
 *            otherwise                           DOWNSTREAM(Z)
 *   persist(Z): keep the event in the event store and the latest state
 *     agent: Z == here                           LATEST
 *            from LOCAL                          UPSTREAM (the event store is the hub's)
 *     hub:                                       STORE; for STORE events also
 *                                                DOWNSTREAM(Z) when Z not NULL, Z != from
 *                                                and W(I,Z) EDGE (keeps that site's
 *                                                latest state current)
 *   up(K): agent only. From LOCAL: UPSTREAM. From the hub: nothing (the hub
 *     sends an event down for the parts that run here; the others are done
 *     elsewhere); when no part at all runs here: DROP(MISROUTED, K) (the
 *     hub's placement and ours disagree, e.g. during a placement change).
 *     Never bounced back up, so an event cannot loop.
 *
 * ROUTING TABLE (after the checks; Zx = site(x))
 *   ktwin.real.I x        service(I, Zx) when I has a service;
 *                         for each relationship R declared in (or inherited by)
 *                         an interface J with aggregateData and target I, when J
 *                         has a service: service(J, site(p)) for every instance p
 *                         of J with an R edge to x, or service(J, Zx) when there
 *                         is none; persist(Zx) when I's eventStore.persistRealEvent.
 *                         The aggregating service gets the event unchanged (type
 *                         ktwin.real.I, source x), as in KTWIN, where the binding
 *                         ktwin.real.I -> J's trigger copies it; the service finds
 *                         the aggregating instance through the graph.
 *   ktwin.virtual.I x     device(Zx); persist(Zx) when persistVirtualEvent.
 *   ktwin.command.I.c y   service(I, site(y)): y (the source) is the TARGET
 *                         instance; I's service runs the command for y.
 *   ktwin.store.I x       persist(Zx) (always).
 *   Nothing added (e.g. a real event of a data-only interface with no
 *   aggregator and no persistence): DROP(NO_ROUTE).
 * Destination order: in the order the table lists them (deterministic).
 *
 * INVARIANTS: UPSTREAM only on agents, at most once; DOWNSTREAM, STORE and
 * SERVICE_CLOUD only on the hub; DOWNSTREAM at most once per site;
 * SERVICE_LOCAL / SERVICE_CLOUD at most once per interface. A placement
 * change races with events in flight: such an event follows the old or the
 * new placement, or is dropped as MISROUTED (counted), never loops.
 *
 * COST: no allocation; O(checks + aggregating relationships of I x the
 * in-degree of x), with a hash lookup for I and x. The table (aggregating
 * relationships by target interface) is built once per model.
 *
 * Thread: model_route is pure; it runs on the thread that owns the model,
 * the table and whatever the placement callbacks read.
 */
#ifndef KT_MODEL_ROUTE_H
#define KT_MODEL_ROUTE_H

#include <stddef.h>

#include "kt/err.h"
#include "model/event.h"
#include "model/model.h"
#include "model/placement.h"

/* Enough destinations for any realistic event (one per aggregating interface plus a few). */
#define MODEL_ROUTE_DEST_MAX 32

/* Skip the instance check failure on an agent: unknown instances go UPSTREAM. */
#define MODEL_ROUTE_F_UNKNOWN_UPSTREAM 0x1u

typedef enum model_route_kind {
    MODEL_ROUTE_SERVICE_LOCAL = 1, /* agent: run iface's twin service here */
    MODEL_ROUTE_SERVICE_CLOUD,     /* hub: run iface's twin service in the cloud */
    MODEL_ROUTE_UPSTREAM,          /* agent: hand to the hub (outbox) */
    MODEL_ROUTE_DOWNSTREAM,        /* hub: send to the agent of `site` */
    MODEL_ROUTE_MQTT_VIRTUAL,      /* agent: publish to ktwin/virtual/<ev iface>/<ev source> */
    MODEL_ROUTE_STORE,             /* hub: append to the event store */
    MODEL_ROUTE_LATEST,            /* agent: update the latest state of (iface, source) */
    MODEL_ROUTE_DROP               /* not routed: see drop; log and count */
} model_route_kind;

typedef enum model_route_drop {
    MODEL_DROP_NONE = 0,
    MODEL_DROP_UNKNOWN_IFACE,    /* the type names an interface not in the model */
    MODEL_DROP_UNKNOWN_INSTANCE, /* the source is not an instance in the model */
    MODEL_DROP_IFACE_MISMATCH,   /* the source is an instance of another interface */
    MODEL_DROP_UNKNOWN_COMMAND,  /* the interface declares no such command */
    MODEL_DROP_NO_SERVICE,       /* a command to an interface without a service */
    MODEL_DROP_PENDING,          /* iface's service is placed nowhere yet (PENDING) */
    MODEL_DROP_NO_SITE,          /* a virtual event for an instance on no site (hub) */
    MODEL_DROP_MISROUTED,        /* agent: came from the hub but no part of it runs here */
    MODEL_DROP_NO_ROUTE          /* valid, but nothing consumes it */
} model_route_drop;

/* One destination. Strings are borrowed from the event, the model or the placement. */
typedef struct model_route_dest {
    model_route_kind kind;
    model_route_drop drop; /* DROP: why; MODEL_DROP_NONE otherwise */
    const char *iface;     /* SERVICE_*: the service's interface; MQTT_VIRTUAL, LATEST,
                              STORE: the event's; DROP: the one concerned (may be NULL);
                              UPSTREAM, DOWNSTREAM: NULL */
    const char *site;      /* DOWNSTREAM: the target site; else NULL */
} model_route_dest;

typedef enum model_route_origin {
    MODEL_ROUTE_FROM_LOCAL = 0, /* a device, service or API of this process */
    MODEL_ROUTE_FROM_HUB,       /* agent: sent downstream by the hub */
    MODEL_ROUTE_FROM_SITE       /* hub: sent upstream by the agent of from_site */
} model_route_origin;

/*
 * The placement as the router reads it. Returned strings must live as long
 * as the destinations are used.
 * where: where iface's service runs for the instances of site (never NULL
 *   when called); an unknown interface or site reads as MODEL_WHERE_CLOUD.
 *   MODEL_WHERE_MIXED is never valid here.
 * instance_site: the site of instance, or NULL (no site; on an agent: not
 *   this site or unknown).
 */
typedef struct model_route_placement {
    model_placement_where (*where)(const char *iface, const char *site, void *user);
    const char *(*instance_site)(const char *instance, void *user);
    void *user;
} model_route_placement;

/* The aggregating relationships of a model by target interface. */
typedef struct model_route_table model_route_table;

/* Everything model_route needs besides the event; build once, reuse. */
typedef struct model_route_env {
    const model_route_table *table; /* built from the model to route against */
    model_route_placement placement;
    const char *site; /* agent: its site (non-empty); NULL: the hub */
    unsigned flags;   /* MODEL_ROUTE_F_* */
} model_route_env;

/*
 * Index m (after a successful model_resolve; borrowed: it must outlive the
 * table) for routing: for each interface I, the (J, relationship) pairs with
 * aggregateData whose target is I. Rebuild when the model is replaced.
 * Memory is kt_x* (aborts on exhaustion). Thread: the model's owner.
 */
model_route_table *model_route_table_new(const model *m);
/* NULL is a no-op. */
void model_route_table_free(model_route_table *t);
/* The model the table was built from. */
const model *model_route_table_model(const model_route_table *t);
/*
 * The interfaces that aggregate iface's real events (those with an
 * aggregateData relationship targeting iface and a service), each once, in
 * model order; returns the count and sets *out (borrowed; NULL when 0).
 */
size_t model_route_aggregators(const model_route_table *t,
                               const char *iface,
                               const model_iface *const **out);

/*
 * Fill out with a model_placement result (hub): where = the decision for
 * (iface, site), CLOUD when undecided or unknown; instance_site =
 * model_placement_instance_site. p is borrowed.
 */
void model_route_placement_from(model_route_placement *out, const model_placement *p);

/*
 * Route ev (with a class; a view is enough) as the ROUTING TABLE above says.
 * origin: agent LOCAL or HUB; hub LOCAL or SITE (then from_site names the
 * sending agent's site, else from_site is ignored).
 * Writes at most cap destinations to out and returns how many the event has
 * (at least 1); when that is more than cap, only the first cap were written
 * (MODEL_ROUTE_DEST_MAX avoids that in practice; treat it as an error).
 * Never allocates. Thread: see above.
 */
size_t model_route(const model_route_env *env,
                   const model_event *ev,
                   model_route_origin origin,
                   const char *from_site,
                   model_route_dest *out,
                   size_t cap);

/* "service-local", "service-cloud", "upstream", "downstream", "mqtt-virtual", "store",
   "latest", "drop". */
const char *model_route_kind_str(model_route_kind k);
/* "none", "unknown-iface", "unknown-instance", "iface-mismatch", "unknown-command",
   "no-service", "pending", "no-site", "misrouted", "no-route": metric labels. */
const char *model_route_drop_str(model_route_drop d);

#endif
