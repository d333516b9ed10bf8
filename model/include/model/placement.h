/*
 * model/placement.h — the placement engine: which instance belongs to which
 * edge site, and for every (interface, site) whether the interface's twin
 * service runs on that site (EDGE), in the cloud (CLOUD) or nowhere yet
 * (PENDING).
 *
 * model_placement_compute() is a pure function of (resolved model, sites,
 * previous result): no I/O, no clock, no globals, and the same inputs give
 * the same result whatever the order of documents in the model or of the
 * sites array. docs/config.md "PlacementPolicy" is the user-facing
 * description; the rules, precisely:
 *
 * INSTANCE -> SITE
 *   1. The label ktwin.io/site (inst->site) when set. A label naming a site
 *      not in the caller's list makes the instance "no site" (counted in
 *      model_placement_stats.n_unknown_site).
 *   2. Otherwise a walk over the siteFrom hops of the policy consulted first
 *      (highest priority, then name): each hop follows the relationships of
 *      that name, outgoing, or incoming with direction: incoming. The walk is
 *      breadth-first: the nearest instance that has a site label wins (fewest
 *      hops); among equally near ones, the one reached through the earliest
 *      siteFrom entry on its last hop, then the smallest instance name. The
 *      walk visits each instance once (cycle-safe), goes at most
 *      MODEL_PLACEMENT_MAX_HOPS hops deep and gives up (no site) when, at the
 *      end of a level without a labelled instance, it has visited more than
 *      MODEL_PLACEMENT_WALK_MAX instances (checked per whole level, so the
 *      outcome does not depend on edge order). Labelled instances end the
 *      walk on their branch (it never walks through them).
 *   3. Otherwise the instance has no site ("cloud only").
 *
 * RULE PER INTERFACE
 *   Policies are consulted by priority (desc), then name; rules in their
 *   order. The first rule whose match.interfaces has a glob matching the
 *   interface name (fnmatch, flags 0; an empty list matches all) and whose
 *   match.labels all equal the interface's labels decides; its name is
 *   recorded as "policy/rule". No rule matches: the first policy's
 *   defaultPlacement (offline none, overflow cloud, every site), recorded as
 *   "default". No policy at all: cloud, recorded as "default".
 *
 * DECISION PER (INTERFACE, SITE), for each site with >= 1 instance of it
 *   A pair whose site has no instance of the interface is not decided: it
 *   reads as CLOUD with n_instances 0 (an agent there sends the events of
 *   that interface upstream). An interface with no instance on any site is
 *   CLOUD everywhere.
 *   fallback(rule) is PENDING when offline: required (never the cloud: it
 *   must keep running while cut off), else CLOUD for prefer-edge, else the
 *   rule's overflow (cloud | pending).
 *   - placement cloud                           -> CLOUD
 *   - site not matched by the rule's sites globs -> fallback
 *   - site gone (not connected), offline none   -> fallback
 *     (offline preferred or required keep competing for the site: the
 *      service runs there offline by definition)
 *   - otherwise the pair competes for the site's capacity: it takes the
 *     interface's cpu_millis and memory_bytes (once per site, whatever the
 *     number of instances) -> EDGE when both fit in what is left of the
 *     site's reported capacity, else fallback.
 *
 * CAPACITY ORDER (determinism and minimal moves)
 *   On each site, competing pairs are admitted first-fit in this order:
 *   pairs that were EDGE in prev (same interface name, same site name)
 *   first, then the others; within each group by rule order (policy order,
 *   then rule index; "default" after every rule), then interface name
 *   (strcmp). A pair that does not fit takes its fallback and later, smaller
 *   pairs may still fit. So an EDGE pair is never displaced by a newcomer; a
 *   capacity drop moves only the pairs that no longer fit in that order; a
 *   new site moves nothing elsewhere. To rebalance from scratch, pass
 *   prev = NULL.
 *
 * OWNERSHIP: a result owns copies of every string it returns (instance,
 * interface, site, rule names, reasons), so it stays valid after the model
 * and the sites array are freed, and can be passed as prev to a compute on
 * a newer model. Pointers returned by accessors live until
 * model_placement_free().
 *
 * COST: time O(instances + relationships walked + ifaces*sites log), memory
 * O(instances + ifaces*sites); the result does not keep the model.
 *
 * Thread: a result belongs to one thread; compute may run on any thread
 * that owns the model for the call.
 */
#ifndef KT_MODEL_PLACEMENT_H
#define KT_MODEL_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "model/model.h"

/* Deepest siteFrom walk, in hops. */
#define MODEL_PLACEMENT_MAX_HOPS 8
/* A siteFrom walk gives up when one level would visit more instances than this. */
#define MODEL_PLACEMENT_WALK_MAX 4096
/* Capacity that never runs out (a site that reports no limit). */
#define MODEL_PLACEMENT_CPU_UNLIMITED    UINT32_MAX
#define MODEL_PLACEMENT_MEMORY_UNLIMITED UINT64_MAX
/* At most this many sites (site indexes fit in 16 bits). */
#define MODEL_PLACEMENT_SITES_MAX 65535

typedef struct model_placement model_placement;

/* Where an interface's service runs, as seen from one site (proto Where). */
typedef enum model_placement_where {
    MODEL_WHERE_CLOUD = 0,   /* in the cloud: the site sends its events upstream */
    MODEL_WHERE_EDGE = 1,    /* on this site */
    MODEL_WHERE_PENDING = 2, /* nowhere yet: edge wanted but no room (or not allowed) */
    MODEL_WHERE_MIXED = 3    /* only in model_placement_iface summaries: differs by site */
} model_placement_where;

/* One site as the caller knows it (input). */
typedef struct model_placement_site {
    const char *name;      /* unique, non-empty; copied */
    int connected;         /* the site's agent is connected now; 0 = gone / never connected */
    uint32_t cpu_millis;   /* reported allocatable CPU (MODEL_PLACEMENT_CPU_UNLIMITED: no limit);
                              pass the last report, 0 when the site never reported */
    uint64_t memory_bytes; /* reported allocatable memory, same conventions */
} model_placement_site;

/* One site in a result. */
typedef struct model_placement_site_info {
    const char *name;
    int connected;
    uint32_t cpu_millis; /* capacity as given */
    uint64_t memory_bytes;
    uint64_t used_cpu_millis;          /* sum over its EDGE pairs; <= cpu_millis */
    uint64_t used_memory_bytes;        /* sum over its EDGE pairs; <= memory_bytes */
    size_t n_instances;                /* instances whose site this is */
    size_t n_edge, n_cloud, n_pending; /* decided pairs on this site, by where */
} model_placement_site_info;

/* The decision for one (interface, site). */
typedef struct model_placement_decision {
    const char *iface;
    const char *site;
    model_placement_where where; /* EDGE, CLOUD or PENDING */
    const char *rule;            /* "policy/rule" or "default" (the interface's rule) */
    const char *reason;   /* one line, no newline; "no instance on this site" when undecided */
    uint32_t n_instances; /* instances of iface on site; 0 = undecided (reads as CLOUD) */
    int was_edge;         /* the pair was EDGE in prev */
    uint32_t order;       /* 1-based position in the site's capacity order, 0 = did not compete */
} model_placement_decision;

/* One interface in a result (its summary over all sites). */
typedef struct model_placement_iface {
    const char *name;
    const char *rule;              /* "policy/rule" or "default" */
    model_placement_target target; /* what the rule asks for */
    uint32_t cpu_millis;           /* the interface's service requests */
    uint64_t memory_bytes;
    size_t n_instances;                /* all instances of the interface */
    size_t n_no_site;                  /* of which have no site (served by the cloud) */
    size_t n_sites;                    /* sites with >= 1 instance (decided pairs) */
    size_t n_edge, n_cloud, n_pending; /* decided pairs, by where */
    /*
     * Summary: the single where of all decided pairs, counting instances with
     * no site (and an interface with no instance at all) as CLOUD;
     * MODEL_WHERE_MIXED when they differ.
     */
    model_placement_where where;
    const char *reason; /* one line summary */
} model_placement_iface;

typedef struct model_placement_stats {
    size_t n_instances;    /* instances in the model */
    size_t n_no_site;      /* of which ended with no site */
    size_t n_unknown_site; /* of which had (or walked to) a label naming an unknown site */
    size_t n_walked;       /* of which needed a siteFrom walk */
    size_t n_walk_gave_up; /* walks stopped by MODEL_PLACEMENT_WALK_MAX */
    size_t n_decisions;    /* decided (interface, site) pairs */
} model_placement_stats;

/* A changed decision, for model_placement_diff. Strings are borrowed from old or cur. */
typedef struct model_placement_change {
    const char *iface;
    const char *site;
    model_placement_where old_where; /* CLOUD when old had no such pair */
    model_placement_where new_where; /* CLOUD when cur has no such pair */
} model_placement_change;

typedef void (*model_placement_change_cb)(const model_placement_change *c, void *user);

/* ---- compute ------------------------------------------------------------------------- */

/*
 * Place everything: every instance on its site, every (interface, site).
 *
 * m: a model after a successful model_resolve (read only, not kept).
 * sites: n_sites sites in any order (copied; need not outlive the call).
 * prev: the previous result for minimal moves, or NULL; read only, may come
 *   from an older model and sites.
 *
 * Returns KT_OK with *out owned by the caller (model_placement_free);
 * KT_EINVAL for a site with a NULL or empty name, a duplicate site name,
 * more than MODEL_PLACEMENT_SITES_MAX sites, or an unresolved model (an
 * instance without its interface); *out is NULL on failure. Memory for
 * bookkeeping is kt_x* (aborts on exhaustion).
 * Thread: the caller's; pure.
 */
kt_status model_placement_compute(model_placement **out,
                                  const model *m,
                                  const model_placement_site *sites,
                                  size_t n_sites,
                                  const model_placement *prev,
                                  kt_err *err);

/* NULL is a no-op. */
void model_placement_free(model_placement *p);

/* ---- reading a result (all O(1) unless noted; pointers live as long as p) -------------- */

const model_placement_stats *model_placement_get_stats(const model_placement *p);

/* The site of an instance by name, or NULL (no site, or unknown instance). */
const char *model_placement_instance_site(const model_placement *p, const char *instance);

/* Sites in name order. */
size_t model_placement_n_sites(const model_placement *p);
const model_placement_site_info *model_placement_site_at(const model_placement *p, size_t i);
/* NULL when unknown. */
const model_placement_site_info *model_placement_site_get(const model_placement *p,
                                                          const char *site);

/* Interfaces in name order. */
size_t model_placement_n_ifaces(const model_placement *p);
const model_placement_iface *model_placement_iface_at(const model_placement *p, size_t i);
/* NULL when unknown. */
const model_placement_iface *model_placement_iface_get(const model_placement *p, const char *iface);

/*
 * The decision for (iface, site); undecided pairs read as CLOUD with
 * n_instances 0. NULL when the interface or the site is unknown.
 */
const model_placement_decision *
model_placement_decision_get(const model_placement *p, const char *iface, const char *site);

/*
 * Everything one site's agent needs (its PlacementUpdate): one decision per
 * interface, in interface name order, *n_out = model_placement_n_ifaces(p).
 * Returns the borrowed array, or NULL (with *n_out = 0) for an unknown site.
 */
const model_placement_decision *
model_placement_site_decisions(const model_placement *p, const char *site, size_t *n_out);

/*
 * Call cb (when not NULL) for every (interface, site) whose where differs
 * between old and cur, in site name then interface name order. Pairs that
 * exist in only one result compare against CLOUD, so a new site lists its
 * EDGE and PENDING pairs and a removed one its former EDGE and PENDING
 * pairs. old NULL compares cur against all-CLOUD. Returns the number of
 * changes. O(ifaces*sites of both).
 */
size_t model_placement_diff(const model_placement *old,
                            const model_placement *cur,
                            model_placement_change_cb cb,
                            void *user);

/* "edge", "cloud", "pending", "mixed". */
const char *model_placement_where_str(model_placement_where w);

/* ---- explain and JSON -------------------------------------------------------------- */

/*
 * The steps that decided one interface, one line each ('\n'-terminated),
 * appended to out: the interface's requests and instance counts, each rule
 * considered in order until the deciding one (and why others did not
 * match), then for each site with instances of it (only `site` when not
 * NULL) its state, capacity position and outcome.
 * Returns KT_OK; KT_ENOTFOUND for an unknown interface or site (message
 * names it); KT_ETOOBIG / KT_ENOMEM when out cannot grow.
 */
kt_status model_placement_explain(
    const model_placement *p, const char *iface, const char *site, kt_buf *out, kt_err *err);

/*
 * GET /api/v1/placement body, appended to out:
 *   {"revision":N,
 *    "interfaces":[{"interface":I,"where":"edge|cloud|pending|mixed",
 *                   "rule":"policy/rule","reason":"..","instances":N,
 *                   "cpu_millis":..,"memory_bytes":..,
 *                   "sites":[{"name":S,"where":..,"instances":N,"reason":".."}]}],
 *    "sites":[{"name":S,"connected":bool,"cpu_millis":..,"memory_bytes":..,
 *              "used_cpu_millis":..,"used_memory_bytes":..,"instances":N,
 *              "edge":N,"cloud":N,"pending":N}]}
 * Interfaces and sites in name order; "sites" of an interface lists its
 * decided pairs only. Unlimited capacities are written as -1.
 * Returns KT_OK; KT_ETOOBIG / KT_ENOMEM when out cannot grow.
 */
kt_status model_placement_to_json(const model_placement *p, uint64_t revision, kt_buf *out);

/*
 * GET /api/v1/placement/{iface}[?site=S] body, appended to out: the
 * interface's entry as in model_placement_to_json plus
 * "steps":[lines of model_placement_explain]. With `site`, "sites" holds
 * only that site's pair (decided or not) and "where"/"reason" are that
 * pair's.
 * Returns KT_OK; KT_ENOTFOUND for an unknown interface or site;
 * KT_ETOOBIG / KT_ENOMEM when out cannot grow.
 */
kt_status model_placement_explain_json(
    const model_placement *p, const char *iface, const char *site, kt_buf *out, kt_err *err);

#endif
