/*
 * placement.c — the placement engine. See model/placement.h for the rules.
 *
 * DESIGN: one pass over the instances finds each one's site (label, or a
 * breadth-first siteFrom walk) and counts instances per (interface, site)
 * straight into the decision matrix. The matrix is site-major
 * (dec[site * n_ifaces + iface]) so a site's PlacementUpdate is one
 * contiguous slice. Interfaces and sites are sorted by name first; every
 * later step walks them in that order, so nothing depends on the order of
 * documents in the model, of the sites array, or of a hash table.
 *
 * The siteFrom walk keeps its visited set in a small open-addressing table
 * stamped with a generation number, so starting a walk costs O(1); the
 * common case (a labelled instance) never walks at all.
 *
 * Invariants: used_cpu_millis <= cpu_millis and used_memory_bytes <=
 * memory_bytes on every site (unlimited capacities aside); every decided
 * pair has n_instances > 0 and where in {EDGE, CLOUD, PENDING}; every
 * undecided pair reads as CLOUD with n_instances 0.
 *
 * Thread: a result belongs to one thread. Ownership: the result owns an
 * arena with copies of every string it exposes; it never points into the
 * model it was computed from.
 */
#include "model/placement.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/json.h"
#include "kt/map.h"
#include "kt/mem.h"

#define REASON_UNDECIDED "no instance on this site"
#define RULE_DEFAULT     "default"
#define LINE_MAX_BYTES   1024

struct model_placement {
    kt_arena arena;
    model_placement_stats stats;
    model_placement_site_info *sites; /* name order */
    size_t n_sites;
    kt_map site_by_name;           /* name -> index + 1 */
    model_placement_iface *ifaces; /* name order */
    size_t n_ifaces;
    kt_map iface_by_name;          /* name -> index + 1 */
    const char **rule_steps;       /* per interface: the rule-matching lines, '\n'-separated */
    model_placement_decision *dec; /* n_sites * n_ifaces, site-major */
    kt_map inst_site;              /* instance name (arena copy) -> site name (arena) */
};

/* ---- small helpers ----------------------------------------------------------------- */

static const char *arena_printf(kt_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *arena_printf(kt_arena *a, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        line[0] = '\0';
    }
    return kt_arena_strdup(a, line);
}

/* Append to a fixed line buffer, truncating quietly (lines are for people). */
static void line_add(char *line, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace a fixed line buffer's content, truncating quietly. */
static void set_line(char *line, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_line(char *line, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, cap, fmt, ap);
    va_end(ap);
    if (n < 0) {
        line[0] = '\0';
    }
}

static void line_add(char *line, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(line);
    if (len + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line + len, cap - len, fmt, ap);
    va_end(ap);
}

static void fmt_cpu(char *out, size_t cap, uint64_t cpu, int unlimited)
{
    if (unlimited) {
        (void)snprintf(out, cap, "unlimited");
    } else {
        (void)snprintf(out, cap, "%llum", (unsigned long long)cpu);
    }
}

static void fmt_mem(char *out, size_t cap, uint64_t b, int unlimited)
{
    if (unlimited) {
        (void)snprintf(out, cap, "unlimited");
    } else if (b != 0 && b % (1ULL << 30) == 0) {
        (void)snprintf(out, cap, "%lluGi", (unsigned long long)(b >> 30));
    } else if (b != 0 && b % (1ULL << 20) == 0) {
        (void)snprintf(out, cap, "%lluMi", (unsigned long long)(b >> 20));
    } else if (b != 0 && b % (1ULL << 10) == 0) {
        (void)snprintf(out, cap, "%lluKi", (unsigned long long)(b >> 10));
    } else {
        (void)snprintf(out, cap, "%llu", (unsigned long long)b);
    }
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static size_t map_index(const kt_map *m, const char *key)
{
    void *v = kt_map_get(m, key);
    return v == NULL ? SIZE_MAX : (size_t)((uintptr_t)v - 1);
}

const char *model_placement_where_str(model_placement_where w)
{
    switch (w) {
    case MODEL_WHERE_EDGE:
        return "edge";
    case MODEL_WHERE_PENDING:
        return "pending";
    case MODEL_WHERE_MIXED:
        return "mixed";
    case MODEL_WHERE_CLOUD:
    default:
        return "cloud";
    }
}

static const char *target_str(model_placement_target t)
{
    switch (t) {
    case MODEL_PLACE_EDGE:
        return "edge";
    case MODEL_PLACE_PREFER_EDGE:
        return "prefer-edge";
    case MODEL_PLACE_CLOUD:
    default:
        return "cloud";
    }
}

static const char *offline_str(model_offline o)
{
    switch (o) {
    case MODEL_OFFLINE_REQUIRED:
        return "required";
    case MODEL_OFFLINE_PREFERRED:
        return "preferred";
    case MODEL_OFFLINE_NONE:
    default:
        return "none";
    }
}

/* "[a, b]" of a string list, "[] (any)" when empty. */
static void fmt_list(char *out, size_t cap, const char *const *items, size_t n)
{
    out[0] = '\0';
    line_add(out, cap, "[");
    for (size_t i = 0; i < n; i++) {
        line_add(out, cap, "%s%s", i > 0 ? ", " : "", items[i]);
    }
    line_add(out, cap, n == 0 ? "] (any)" : "]");
}

/* ---- the rule of an interface ------------------------------------------------------ */

/* What decides one interface (compute-time only; points into the model). */
typedef struct iface_rule {
    const model_policy *policy;    /* the policy of the rule or default, NULL: no policy */
    const model_policy_rule *rule; /* NULL: default placement */
    size_t order;                  /* global rule index; n_rules_total for default */
    model_placement_target target;
    model_offline offline;
    model_overflow overflow;
} iface_rule;

static int cmp_policy(const void *a, const void *b)
{
    const model_policy *pa = *(const model_policy *const *)a;
    const model_policy *pb = *(const model_policy *const *)b;
    if (pa->priority != pb->priority) {
        return pa->priority > pb->priority ? -1 : 1;
    }
    return strcmp(pa->name, pb->name);
}

static const char *iface_label(const model_iface *f, const char *key)
{
    for (size_t i = 0; i < f->n_labels; i++) {
        if (str_eq(f->labels[i].key, key)) {
            return f->labels[i].value;
        }
    }
    return NULL;
}

/*
 * Whether rule r matches interface f. When it does not and why is not
 * NULL, why gets a short reason.
 */
static int rule_matches(const model_policy_rule *r, const model_iface *f, char *why, size_t cap)
{
    if (r->n_interfaces > 0) {
        int hit = 0;
        for (size_t g = 0; g < r->n_interfaces && !hit; g++) {
            hit = fnmatch(r->interfaces[g], f->name, 0) == 0;
        }
        if (!hit) {
            char list[LINE_MAX_BYTES / 2];
            fmt_list(list, sizeof list, r->interfaces, r->n_interfaces);
            set_line(why, cap, "name matches none of %s", list);
            return 0;
        }
    }
    for (size_t l = 0; l < r->n_match_labels; l++) {
        const char *have = iface_label(f, r->match_labels[l].key);
        if (have == NULL) {
            set_line(why, cap, "no label %s (wants %s)", r->match_labels[l].key,
                     r->match_labels[l].value);
            return 0;
        }
        if (!str_eq(have, r->match_labels[l].value)) {
            set_line(why, cap, "label %s is %s, not %s", r->match_labels[l].key, have,
                     r->match_labels[l].value);
            return 0;
        }
    }
    return 1;
}

/*
 * Find the deciding rule of f and write the steps (one line each, joined
 * with '\n') into the result's arena. rule_name_out gets "policy/rule" or
 * "default" (arena).
 */
static iface_rule decide_rule(kt_arena *a,
                              const model_iface *f,
                              const model_policy *const *pols,
                              size_t n_pols,
                              size_t n_rules_total,
                              const char **rule_name_out,
                              const char **steps_out)
{
    iface_rule ir = { 0 };
    ir.order = n_rules_total;
    ir.target = MODEL_PLACE_CLOUD;
    ir.offline = MODEL_OFFLINE_NONE;
    ir.overflow = MODEL_OVERFLOW_CLOUD;
    kt_buf steps;
    kt_buf_init(&steps, (size_t)1 << 20);
    char line[LINE_MAX_BYTES];
    size_t order = 0;
    for (size_t p = 0; p < n_pols && ir.rule == NULL; p++) {
        const model_policy *pol = pols[p];
        for (size_t r = 0; r < pol->n_rules; r++, order++) {
            const model_policy_rule *rule = &pol->rules[r];
            char why[LINE_MAX_BYTES / 2];
            if (!rule_matches(rule, f, why, sizeof why)) {
                (void)kt_buf_printf(&steps, "rule %s/%s (policy priority %d): no match: %s\n",
                                    pol->name, rule->name, pol->priority, why);
                continue;
            }
            ir.policy = pol;
            ir.rule = rule;
            ir.order = order;
            ir.target = rule->placement;
            ir.offline = rule->offline;
            ir.overflow = rule->overflow;
            char sites[LINE_MAX_BYTES / 2];
            fmt_list(sites, sizeof sites, rule->sites, rule->n_sites);
            set_line(line, sizeof line,
                     "rule %s/%s (policy priority %d): matches: placement %s, sites %s, "
                     "offline %s, overflow %s",
                     pol->name, rule->name, pol->priority, target_str(rule->placement), sites,
                     offline_str(rule->offline),
                     rule->overflow == MODEL_OVERFLOW_PENDING ? "pending" : "cloud");
            (void)kt_buf_printf(&steps, "%s\n", line);
            break;
        }
    }
    if (ir.rule != NULL) {
        *rule_name_out = arena_printf(a, "%s/%s", ir.policy->name, ir.rule->name);
    } else if (n_pols > 0) {
        ir.policy = pols[0];
        ir.target = pols[0]->default_placement;
        *rule_name_out = RULE_DEFAULT;
        (void)kt_buf_printf(&steps, "no rule matches: defaultPlacement %s of policy %s\n",
                            target_str(ir.target), pols[0]->name);
    } else {
        *rule_name_out = RULE_DEFAULT;
        (void)kt_buf_printf(&steps, "no PlacementPolicy: cloud\n");
    }
    /* Drop the last newline: lines are joined, not terminated. */
    if (steps.len > 0 && steps.data[steps.len - 1] == '\n') {
        steps.data[--steps.len] = '\0';
    }
    *steps_out = kt_arena_strdup(a, steps.data != NULL ? steps.data : "");
    kt_buf_fini(&steps);
    return ir;
}

static int site_allowed(const model_policy_rule *r, const char *site)
{
    if (r == NULL || r->n_sites == 0) {
        return 1;
    }
    for (size_t g = 0; g < r->n_sites; g++) {
        if (fnmatch(r->sites[g], site, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Where a pair goes when it cannot be EDGE, and a phrase saying why. */
static model_placement_where fallback(const iface_rule *ir, const char **phrase)
{
    if (ir->offline == MODEL_OFFLINE_REQUIRED) {
        *phrase = "pending (offline: required, never the cloud)";
        return MODEL_WHERE_PENDING;
    }
    if (ir->target == MODEL_PLACE_PREFER_EDGE) {
        *phrase = "cloud (prefer-edge)";
        return MODEL_WHERE_CLOUD;
    }
    if (ir->overflow == MODEL_OVERFLOW_PENDING) {
        *phrase = "pending (overflow: pending)";
        return MODEL_WHERE_PENDING;
    }
    *phrase = "cloud (overflow: cloud)";
    return MODEL_WHERE_CLOUD;
}

/* ---- instance -> site -------------------------------------------------------------- */

#define VISIT_CAP 8192 /* power of two, >= 2 * MODEL_PLACEMENT_WALK_MAX */

typedef struct walker {
    const model_site_hop *hops;
    size_t n_hops;
    const void **vkey;
    uint32_t *vgen;
    uint32_t gen;
    size_t n_visited;
    model_instance **front;
    model_instance **next;
    size_t n_front, n_next;
    int overflow;
    const model_instance *best;
    size_t best_hop;
} walker;

static uint32_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Mark v visited; 1 when it was not visited before. */
static int visit(walker *w, const model_instance *v)
{
    size_t mask = VISIT_CAP - 1;
    for (size_t i = ptr_hash(v) & mask;; i = (i + 1) & mask) {
        if (w->vgen[i] != w->gen) {
            w->vgen[i] = w->gen;
            w->vkey[i] = v;
            return 1;
        }
        if (w->vkey[i] == v) {
            return 0;
        }
    }
}

static int visited(const walker *w, const model_instance *v)
{
    size_t mask = VISIT_CAP - 1;
    for (size_t i = ptr_hash(v) & mask;; i = (i + 1) & mask) {
        if (w->vgen[i] != w->gen) {
            return 0;
        }
        if (w->vkey[i] == v) {
            return 1;
        }
    }
}

static void consider(walker *w, model_instance *v, size_t hop)
{
    if (v->site != NULL) {
        if (w->best == NULL || hop < w->best_hop ||
            (hop == w->best_hop && strcmp(v->name, w->best->name) < 0)) {
            w->best = v;
            w->best_hop = hop;
        }
        return;
    }
    if (visited(w, v)) {
        return;
    }
    if (w->n_visited >= MODEL_PLACEMENT_WALK_MAX) {
        w->overflow = 1;
        return;
    }
    (void)visit(w, v);
    w->n_visited++;
    w->next[w->n_next++] = v;
}

/*
 * The labelled instance whose site inst takes, or NULL. gave_up is set when
 * the walk stopped at MODEL_PLACEMENT_WALK_MAX.
 */
static const model_instance *walk(walker *w, model_instance *inst, int *gave_up)
{
    w->gen++;
    if (w->gen == 0) { /* wrapped: clear the stamps once every 2^32 walks */
        memset(w->vgen, 0, VISIT_CAP * sizeof *w->vgen);
        w->gen = 1;
    }
    (void)visit(w, inst);
    w->n_visited = 1;
    w->front[0] = inst;
    w->n_front = 1;
    w->overflow = 0;
    for (unsigned depth = 1; depth <= MODEL_PLACEMENT_MAX_HOPS; depth++) {
        w->n_next = 0;
        w->best = NULL;
        w->best_hop = SIZE_MAX;
        for (size_t f = 0; f < w->n_front; f++) {
            model_instance *u = w->front[f];
            for (size_t h = 0; h < w->n_hops; h++) {
                const char *rel = w->hops[h].relationship;
                if (!w->hops[h].incoming) {
                    for (uint32_t r = 0; r < u->n_rels; r++) {
                        if (u->rels[r].target_inst != NULL && str_eq(u->rels[r].name, rel)) {
                            consider(w, u->rels[r].target_inst, h);
                        }
                    }
                } else {
                    for (uint32_t e = 0; e < u->n_in; e++) {
                        model_instance *src = u->in[e].src;
                        if (str_eq(src->rels[u->in[e].rel].name, rel)) {
                            consider(w, src, h);
                        }
                    }
                }
            }
        }
        if (w->best != NULL) {
            return w->best;
        }
        if (w->overflow) {
            *gave_up = 1;
            return NULL;
        }
        if (w->n_next == 0) {
            return NULL;
        }
        model_instance **t = w->front;
        w->front = w->next;
        w->next = t;
        w->n_front = w->n_next;
    }
    return NULL;
}

/* ---- compute ----------------------------------------------------------------------- */

static int cmp_site_in(const void *a, const void *b)
{
    const model_placement_site *sa = a;
    const model_placement_site *sb = b;
    return strcmp(sa->name, sb->name);
}

static int cmp_iface_ptr(const void *a, const void *b)
{
    const model_iface *fa = *(const model_iface *const *)a;
    const model_iface *fb = *(const model_iface *const *)b;
    return strcmp(fa->name, fb->name);
}

/* A pair competing for a site's capacity. */
typedef struct contender {
    size_t iface; /* index, name order */
    size_t rule_order;
    int was_edge;
} contender;

static int cmp_contender(const void *a, const void *b)
{
    const contender *ca = a;
    const contender *cb = b;
    if (ca->was_edge != cb->was_edge) {
        return ca->was_edge ? -1 : 1;
    }
    if (ca->rule_order != cb->rule_order) {
        return ca->rule_order < cb->rule_order ? -1 : 1;
    }
    return ca->iface < cb->iface ? -1 : (ca->iface > cb->iface ? 1 : 0);
}

static int prev_was_edge(const model_placement *prev,
                         const size_t *prev_site,
                         const size_t *prev_iface,
                         size_t s,
                         size_t i)
{
    if (prev == NULL || prev_site[s] == SIZE_MAX || prev_iface[i] == SIZE_MAX) {
        return 0;
    }
    const model_placement_decision *d = &prev->dec[prev_site[s] * prev->n_ifaces + prev_iface[i]];
    return d->where == MODEL_WHERE_EDGE && d->n_instances > 0;
}

/* Admit the contenders of one site first-fit and write their decisions. */
static void
admit_site(model_placement *p, size_t s, contender *c, size_t n_c, const iface_rule *rules)
{
    model_placement_site_info *si = &p->sites[s];
    int cpu_unl = si->cpu_millis == MODEL_PLACEMENT_CPU_UNLIMITED;
    int mem_unl = si->memory_bytes == MODEL_PLACEMENT_MEMORY_UNLIMITED;
    qsort(c, n_c, sizeof *c, cmp_contender);
    for (size_t k = 0; k < n_c; k++) {
        size_t i = c[k].iface;
        const model_placement_iface *f = &p->ifaces[i];
        model_placement_decision *d = &p->dec[s * p->n_ifaces + i];
        d->order = (uint32_t)(k + 1);
        uint64_t free_cpu = cpu_unl ? 0 : (uint64_t)si->cpu_millis - si->used_cpu_millis;
        uint64_t free_mem = mem_unl ? 0 : si->memory_bytes - si->used_memory_bytes;
        int fits =
            (cpu_unl || f->cpu_millis <= free_cpu) && (mem_unl || f->memory_bytes <= free_mem);
        char need_c[32], need_m[32], free_c[32], free_m[32];
        fmt_cpu(need_c, sizeof need_c, f->cpu_millis, 0);
        fmt_mem(need_m, sizeof need_m, f->memory_bytes, 0);
        fmt_cpu(free_c, sizeof free_c, free_cpu, cpu_unl);
        fmt_mem(free_m, sizeof free_m, free_mem, mem_unl);
        const char *gone = si->connected ? "" : "; site gone: runs offline";
        const char *kept = c[k].was_edge ? " (kept: was edge)" : "";
        if (fits) {
            si->used_cpu_millis += f->cpu_millis;
            si->used_memory_bytes += f->memory_bytes;
            d->where = MODEL_WHERE_EDGE;
            d->reason = arena_printf(&p->arena, "fits: needs %s cpu, %s memory; free %s, %s%s%s",
                                     need_c, need_m, free_c, free_m, kept, gone);
        } else {
            const char *phrase = NULL;
            d->where = fallback(&rules[i], &phrase);
            d->reason = arena_printf(
                &p->arena, "no room: needs %s cpu, %s memory; free %s, %s%s: %s", need_c, need_m,
                free_c, free_m, c[k].was_edge ? " (was edge)" : "", phrase);
        }
    }
}

static void summarise(model_placement *p)
{
    for (size_t s = 0; s < p->n_sites; s++) {
        model_placement_site_info *si = &p->sites[s];
        for (size_t i = 0; i < p->n_ifaces; i++) {
            const model_placement_decision *d = &p->dec[s * p->n_ifaces + i];
            if (d->n_instances == 0) {
                continue;
            }
            model_placement_iface *f = &p->ifaces[i];
            p->stats.n_decisions++;
            f->n_sites++;
            if (d->where == MODEL_WHERE_EDGE) {
                si->n_edge++;
                f->n_edge++;
            } else if (d->where == MODEL_WHERE_PENDING) {
                si->n_pending++;
                f->n_pending++;
            } else {
                si->n_cloud++;
                f->n_cloud++;
            }
        }
    }
    for (size_t i = 0; i < p->n_ifaces; i++) {
        model_placement_iface *f = &p->ifaces[i];
        int kinds = (f->n_edge > 0) + (f->n_pending > 0) +
                    (f->n_cloud > 0 || f->n_no_site > 0 || f->n_instances == 0);
        if (kinds > 1) {
            f->where = MODEL_WHERE_MIXED;
        } else if (f->n_edge > 0) {
            f->where = MODEL_WHERE_EDGE;
        } else if (f->n_pending > 0) {
            f->where = MODEL_WHERE_PENDING;
        } else {
            f->where = MODEL_WHERE_CLOUD;
        }
        char line[LINE_MAX_BYTES] = "";
        if (f->n_instances == 0) {
            line_add(line, sizeof line, "no instance: cloud");
        } else if (f->n_sites == 0) {
            line_add(line, sizeof line, "no instance on any site: cloud");
        } else {
            const char *sep = "";
            if (f->n_edge > 0) {
                line_add(line, sizeof line, "edge on %zu", f->n_edge);
                sep = ", ";
            }
            if (f->n_cloud > 0) {
                line_add(line, sizeof line, "%scloud on %zu", sep, f->n_cloud);
                sep = ", ";
            }
            if (f->n_pending > 0) {
                line_add(line, sizeof line, "%spending on %zu", sep, f->n_pending);
            }
            line_add(line, sizeof line, " of %zu site%s", f->n_sites, f->n_sites == 1 ? "" : "s");
            if (f->n_no_site > 0) {
                line_add(line, sizeof line, "; %zu instance%s with no site in the cloud",
                         f->n_no_site, f->n_no_site == 1 ? "" : "s");
            }
        }
        f->reason = kt_arena_strdup(&p->arena, line);
    }
}

kt_status model_placement_compute(model_placement **out,
                                  const model *m,
                                  const model_placement_site *sites,
                                  size_t n_sites,
                                  const model_placement *prev,
                                  kt_err *err)
{
    *out = NULL;
    if (n_sites > MODEL_PLACEMENT_SITES_MAX) {
        return kt_err_set(err, KT_EINVAL, "%zu sites: at most %d", n_sites,
                          MODEL_PLACEMENT_SITES_MAX);
    }
    for (size_t s = 0; s < n_sites; s++) {
        if (sites[s].name == NULL || sites[s].name[0] == '\0') {
            return kt_err_set(err, KT_EINVAL, "site %zu has no name", s);
        }
    }
    model_placement_site *sorted = kt_xcalloc(n_sites + 1, sizeof *sorted);
    if (n_sites > 0) {
        memcpy(sorted, sites, n_sites * sizeof *sorted);
    }
    qsort(sorted, n_sites, sizeof *sorted, cmp_site_in);
    for (size_t s = 1; s < n_sites; s++) {
        if (strcmp(sorted[s - 1].name, sorted[s].name) == 0) {
            kt_status st = kt_err_set(err, KT_EINVAL, "site %s given twice", sorted[s].name);
            kt_free(sorted);
            return st;
        }
    }
    size_t n_inst = model_n_instances(m);
    for (size_t k = 0; k < n_inst; k++) {
        const model_instance *inst = model_instance_at(m, k);
        if (inst->iface == NULL) {
            kt_status st =
                kt_err_set(err, KT_EINVAL, "model not resolved: instance %s has no interface %s",
                           inst->name, inst->iface_name);
            kt_free(sorted);
            return st;
        }
    }

    model_placement *p = kt_xcalloc(1, sizeof *p);
    kt_arena_init(&p->arena, 64 * 1024);
    kt_map_init(&p->site_by_name);
    kt_map_init(&p->iface_by_name);
    kt_map_init(&p->inst_site);

    /* Sites, name order. */
    p->n_sites = n_sites;
    p->sites = kt_xcalloc(n_sites + 1, sizeof *p->sites);
    for (size_t s = 0; s < n_sites; s++) {
        model_placement_site_info *si = &p->sites[s];
        si->name = kt_arena_strdup(&p->arena, sorted[s].name);
        si->connected = sorted[s].connected != 0;
        si->cpu_millis = sorted[s].cpu_millis;
        si->memory_bytes = sorted[s].memory_bytes;
        (void)kt_map_put(&p->site_by_name, si->name, (void *)(uintptr_t)(s + 1));
    }
    kt_free(sorted);

    /* Policies by priority, then name; rules numbered globally. */
    size_t n_pols = model_n_policies(m);
    const model_policy **pols = kt_xcalloc(n_pols + 1, sizeof *pols);
    size_t n_rules_total = 0;
    for (size_t k = 0; k < n_pols; k++) {
        pols[k] = model_policy_at(m, k);
        n_rules_total += pols[k]->n_rules;
    }
    qsort(pols, n_pols, sizeof *pols, cmp_policy);

    /* Interfaces, name order, each with its rule. */
    size_t n_if = model_n_ifaces(m);
    const model_iface **mf = kt_xcalloc(n_if + 1, sizeof *mf);
    for (size_t k = 0; k < n_if; k++) {
        mf[k] = model_iface_at(m, k);
    }
    qsort(mf, n_if, sizeof *mf, cmp_iface_ptr);
    p->n_ifaces = n_if;
    p->ifaces = kt_xcalloc(n_if + 1, sizeof *p->ifaces);
    p->rule_steps = kt_xcalloc(n_if + 1, sizeof *p->rule_steps);
    iface_rule *rules = kt_xcalloc(n_if + 1, sizeof *rules);
    kt_map by_model_name; /* the model's interface name -> index + 1 */
    kt_map_init(&by_model_name);
    kt_map_reserve(&by_model_name, n_if);
    kt_map_reserve(&p->iface_by_name, n_if);
    for (size_t i = 0; i < n_if; i++) {
        model_placement_iface *f = &p->ifaces[i];
        f->name = kt_arena_strdup(&p->arena, mf[i]->name);
        f->cpu_millis = mf[i]->cpu_millis;
        f->memory_bytes = mf[i]->memory_bytes;
        rules[i] =
            decide_rule(&p->arena, mf[i], pols, n_pols, n_rules_total, &f->rule, &p->rule_steps[i]);
        f->target = rules[i].target;
        (void)kt_map_put(&p->iface_by_name, f->name, (void *)(uintptr_t)(i + 1));
        (void)kt_map_put(&by_model_name, mf[i]->name, (void *)(uintptr_t)(i + 1));
    }

    /* The decision matrix, undecided to start with. */
    size_t n_dec = n_sites * n_if;
    p->dec = kt_xcalloc(n_dec + 1, sizeof *p->dec);
    for (size_t s = 0; s < n_sites; s++) {
        for (size_t i = 0; i < n_if; i++) {
            model_placement_decision *d = &p->dec[s * n_if + i];
            d->iface = p->ifaces[i].name;
            d->site = p->sites[s].name;
            d->where = MODEL_WHERE_CLOUD;
            d->rule = p->ifaces[i].rule;
            d->reason = REASON_UNDECIDED;
        }
    }

    /* Every instance to its site; count per (interface, site). */
    walker w = { 0 };
    if (n_pols > 0) {
        w.hops = pols[0]->site_from;
        w.n_hops = pols[0]->n_site_from;
    }
    w.vkey = kt_xcalloc(VISIT_CAP, sizeof *w.vkey);
    w.vgen = kt_xcalloc(VISIT_CAP, sizeof *w.vgen);
    w.front = kt_xcalloc(MODEL_PLACEMENT_WALK_MAX + 1, sizeof *w.front);
    w.next = kt_xcalloc(MODEL_PLACEMENT_WALK_MAX + 1, sizeof *w.next);
    kt_map_reserve(&p->inst_site, n_inst);
    p->stats.n_instances = n_inst;
    const model_iface *last_if = NULL;
    size_t last_if_idx = 0;
    const char *last_label = NULL;
    size_t last_label_idx = SIZE_MAX;
    for (size_t k = 0; k < n_inst; k++) {
        model_instance *inst = model_instance_at(m, k);
        if (inst->iface != last_if) {
            last_if = inst->iface;
            last_if_idx = map_index(&by_model_name, inst->iface->name);
            KT_ASSERT(last_if_idx != SIZE_MAX);
        }
        const model_instance *labelled = inst;
        if (inst->site == NULL) {
            labelled = NULL;
            if (w.n_hops > 0) {
                int gave_up = 0;
                p->stats.n_walked++;
                labelled = walk(&w, inst, &gave_up);
                p->stats.n_walk_gave_up += (size_t)gave_up;
            }
        }
        size_t s = SIZE_MAX;
        if (labelled != NULL) {
            if (labelled->site != last_label) {
                last_label = labelled->site;
                last_label_idx = map_index(&p->site_by_name, labelled->site);
            }
            s = last_label_idx;
            if (s == SIZE_MAX) {
                p->stats.n_unknown_site++;
            }
        }
        model_placement_iface *f = &p->ifaces[last_if_idx];
        f->n_instances++;
        if (s == SIZE_MAX) {
            f->n_no_site++;
            p->stats.n_no_site++;
            continue;
        }
        p->sites[s].n_instances++;
        p->dec[s * n_if + last_if_idx].n_instances++;
        const char *key = kt_arena_strdup(&p->arena, inst->name);
        (void)kt_map_put(&p->inst_site, key, (void *)p->sites[s].name);
    }
    kt_free(w.vkey);
    kt_free(w.vgen);
    kt_free(w.front);
    kt_free(w.next);

    /* Where the previous result had each site and interface. */
    size_t *prev_site = kt_xcalloc(n_sites + 1, sizeof *prev_site);
    size_t *prev_iface = kt_xcalloc(n_if + 1, sizeof *prev_iface);
    for (size_t s = 0; s < n_sites; s++) {
        prev_site[s] = prev != NULL ? map_index(&prev->site_by_name, p->sites[s].name) : SIZE_MAX;
    }
    for (size_t i = 0; i < n_if; i++) {
        prev_iface[i] =
            prev != NULL ? map_index(&prev->iface_by_name, p->ifaces[i].name) : SIZE_MAX;
    }

    /* Decide each pair; contenders compete per site. */
    contender *c = kt_xcalloc(n_if + 1, sizeof *c);
    for (size_t s = 0; s < n_sites; s++) {
        const model_placement_site_info *si = &p->sites[s];
        size_t n_c = 0;
        for (size_t i = 0; i < n_if; i++) {
            model_placement_decision *d = &p->dec[s * n_if + i];
            if (d->n_instances == 0) {
                continue;
            }
            const iface_rule *ir = &rules[i];
            const char *phrase = NULL;
            d->was_edge = prev_was_edge(prev, prev_site, prev_iface, s, i);
            if (ir->target == MODEL_PLACE_CLOUD) {
                d->where = MODEL_WHERE_CLOUD;
                d->reason = ir->rule != NULL ? "the rule places it in the cloud"
                            : n_pols > 0     ? "no rule matches: defaultPlacement cloud"
                                             : "no PlacementPolicy: cloud";
            } else if (!site_allowed(ir->rule, si->name)) {
                d->where = fallback(ir, &phrase);
                char list[LINE_MAX_BYTES / 2];
                fmt_list(list, sizeof list, ir->rule->sites, ir->rule->n_sites);
                d->reason =
                    arena_printf(&p->arena, "site not in the rule's sites %s: %s", list, phrase);
            } else if (!si->connected && ir->offline == MODEL_OFFLINE_NONE) {
                d->where = fallback(ir, &phrase);
                d->reason = arena_printf(&p->arena, "site gone (offline: none): %s", phrase);
            } else {
                c[n_c].iface = i;
                c[n_c].rule_order = ir->order;
                c[n_c].was_edge = d->was_edge;
                n_c++;
            }
        }
        admit_site(p, s, c, n_c, rules);
    }
    kt_free(c);
    kt_free(prev_site);
    kt_free(prev_iface);
    kt_free(rules);
    kt_map_fini(&by_model_name);
    kt_free(mf);
    kt_free(pols);

    summarise(p);
    *out = p;
    return KT_OK;
}

void model_placement_free(model_placement *p)
{
    if (p == NULL) {
        return;
    }
    kt_map_fini(&p->inst_site);
    kt_map_fini(&p->iface_by_name);
    kt_map_fini(&p->site_by_name);
    kt_free(p->dec);
    kt_free(p->rule_steps);
    kt_free(p->ifaces);
    kt_free(p->sites);
    kt_arena_fini(&p->arena);
    kt_free(p);
}

/* ---- reading ----------------------------------------------------------------------- */

const model_placement_stats *model_placement_get_stats(const model_placement *p)
{
    return &p->stats;
}

const char *model_placement_instance_site(const model_placement *p, const char *instance)
{
    return instance != NULL ? kt_map_get(&p->inst_site, instance) : NULL;
}

size_t model_placement_n_sites(const model_placement *p)
{
    return p->n_sites;
}

const model_placement_site_info *model_placement_site_at(const model_placement *p, size_t i)
{
    return i < p->n_sites ? &p->sites[i] : NULL;
}

const model_placement_site_info *model_placement_site_get(const model_placement *p,
                                                          const char *site)
{
    size_t s = site != NULL ? map_index(&p->site_by_name, site) : SIZE_MAX;
    return s == SIZE_MAX ? NULL : &p->sites[s];
}

size_t model_placement_n_ifaces(const model_placement *p)
{
    return p->n_ifaces;
}

const model_placement_iface *model_placement_iface_at(const model_placement *p, size_t i)
{
    return i < p->n_ifaces ? &p->ifaces[i] : NULL;
}

const model_placement_iface *model_placement_iface_get(const model_placement *p, const char *iface)
{
    size_t i = iface != NULL ? map_index(&p->iface_by_name, iface) : SIZE_MAX;
    return i == SIZE_MAX ? NULL : &p->ifaces[i];
}

const model_placement_decision *
model_placement_decision_get(const model_placement *p, const char *iface, const char *site)
{
    size_t i = iface != NULL ? map_index(&p->iface_by_name, iface) : SIZE_MAX;
    size_t s = site != NULL ? map_index(&p->site_by_name, site) : SIZE_MAX;
    if (i == SIZE_MAX || s == SIZE_MAX) {
        return NULL;
    }
    return &p->dec[s * p->n_ifaces + i];
}

const model_placement_decision *
model_placement_site_decisions(const model_placement *p, const char *site, size_t *n_out)
{
    size_t s = site != NULL ? map_index(&p->site_by_name, site) : SIZE_MAX;
    if (s == SIZE_MAX) {
        *n_out = 0;
        return NULL;
    }
    *n_out = p->n_ifaces;
    return &p->dec[s * p->n_ifaces];
}

/* ---- diff -------------------------------------------------------------------------- */

/* The where of (iface, site) in p, CLOUD when p lacks either. */
static model_placement_where where_in(const model_placement *p, const char *iface, const char *site)
{
    if (p == NULL) {
        return MODEL_WHERE_CLOUD;
    }
    const model_placement_decision *d = model_placement_decision_get(p, iface, site);
    return d != NULL ? d->where : MODEL_WHERE_CLOUD;
}

static size_t diff_one_way(const model_placement *a,
                           const model_placement *b,
                           int a_is_old,
                           int skip_common,
                           model_placement_change_cb cb,
                           void *user)
{
    size_t n = 0;
    for (size_t s = 0; s < a->n_sites; s++) {
        const char *site = a->sites[s].name;
        int b_has_site = b != NULL && map_index(&b->site_by_name, site) != SIZE_MAX;
        for (size_t i = 0; i < a->n_ifaces; i++) {
            const model_placement_decision *d = &a->dec[s * a->n_ifaces + i];
            int b_has = b_has_site && map_index(&b->iface_by_name, d->iface) != SIZE_MAX;
            if (skip_common && b_has) {
                continue; /* compared in the other direction */
            }
            model_placement_where wa = d->where;
            model_placement_where wb = where_in(b, d->iface, site);
            if (wa == wb) {
                continue;
            }
            n++;
            if (cb != NULL) {
                model_placement_change ch = { d->iface, site, a_is_old ? wa : wb,
                                              a_is_old ? wb : wa };
                cb(&ch, user);
            }
        }
    }
    return n;
}

size_t model_placement_diff(const model_placement *old,
                            const model_placement *cur,
                            model_placement_change_cb cb,
                            void *user)
{
    size_t n = 0;
    if (cur != NULL) {
        n += diff_one_way(cur, old, 0, 0, cb, user);
    }
    if (old != NULL) {
        /* Pairs only old has (a site or interface that went away). */
        n += diff_one_way(old, cur, 1, 1, cb, user);
    }
    return n;
}

/* ---- explain ----------------------------------------------------------------------- */

static kt_status explain_site_line(const model_placement *p, size_t s, size_t i, kt_buf *out)
{
    const model_placement_site_info *si = &p->sites[s];
    const model_placement_decision *d = &p->dec[s * p->n_ifaces + i];
    char cap_c[32], cap_m[32], used_c[32], used_m[32];
    fmt_cpu(cap_c, sizeof cap_c, si->cpu_millis, si->cpu_millis == MODEL_PLACEMENT_CPU_UNLIMITED);
    fmt_mem(cap_m, sizeof cap_m, si->memory_bytes,
            si->memory_bytes == MODEL_PLACEMENT_MEMORY_UNLIMITED);
    fmt_cpu(used_c, sizeof used_c, si->used_cpu_millis, 0);
    fmt_mem(used_m, sizeof used_m, si->used_memory_bytes, 0);
    char line[LINE_MAX_BYTES] = "";
    line_add(line, sizeof line,
             "site %s (%s; capacity %s cpu, %s memory; edge uses %s, %s): ", si->name,
             si->connected ? "connected" : "gone", cap_c, cap_m, used_c, used_m);
    if (d->n_instances == 0) {
        line_add(line, sizeof line, "no instance: cloud");
    } else {
        line_add(line, sizeof line, "%u instance%s", d->n_instances,
                 d->n_instances == 1 ? "" : "s");
        if (d->order > 0) {
            size_t n_c = 0;
            for (size_t k = 0; k < p->n_ifaces; k++) {
                n_c += p->dec[s * p->n_ifaces + k].order > 0;
            }
            line_add(line, sizeof line, "; considered %u of %zu%s", d->order, n_c,
                     d->was_edge ? " (was edge)" : "");
        }
        line_add(line, sizeof line, " -> %s: %s", model_placement_where_str(d->where), d->reason);
    }
    return kt_buf_printf(out, "%s\n", line);
}

kt_status model_placement_explain(
    const model_placement *p, const char *iface, const char *site, kt_buf *out, kt_err *err)
{
    size_t i = iface != NULL ? map_index(&p->iface_by_name, iface) : SIZE_MAX;
    if (i == SIZE_MAX) {
        return kt_err_set(err, KT_ENOTFOUND, "unknown interface %s",
                          iface != NULL ? iface : "(null)");
    }
    size_t only = SIZE_MAX;
    if (site != NULL) {
        only = map_index(&p->site_by_name, site);
        if (only == SIZE_MAX) {
            return kt_err_set(err, KT_ENOTFOUND, "unknown site %s", site);
        }
    }
    const model_placement_iface *f = &p->ifaces[i];
    char need_c[32], need_m[32];
    fmt_cpu(need_c, sizeof need_c, f->cpu_millis, 0);
    fmt_mem(need_m, sizeof need_m, f->memory_bytes, 0);
    kt_status st =
        kt_buf_printf(out,
                      "interface %s: requests %s cpu, %s memory; %zu instance%s, on "
                      "%zu site%s, %zu with no site\n",
                      f->name, need_c, need_m, f->n_instances, f->n_instances == 1 ? "" : "s",
                      f->n_sites, f->n_sites == 1 ? "" : "s", f->n_no_site);
    if (st == KT_OK && p->rule_steps[i][0] != '\0') {
        st = kt_buf_printf(out, "%s\n", p->rule_steps[i]);
    }
    for (size_t s = 0; s < p->n_sites && st == KT_OK; s++) {
        if (only != SIZE_MAX ? s != only : p->dec[s * p->n_ifaces + i].n_instances == 0) {
            continue;
        }
        st = explain_site_line(p, s, i, out);
    }
    if (st == KT_OK && only == SIZE_MAX) {
        st =
            kt_buf_printf(out, "summary: %s: %s\n", model_placement_where_str(f->where), f->reason);
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "explain %s: output buffer", f->name);
    }
    return KT_OK;
}

/* ---- JSON -------------------------------------------------------------------------- */

/* cJSON builders that remember a failed allocation in *bad. */
static void j_str(cJSON *o, const char *k, const char *v, int *bad)
{
    if (cJSON_AddStringToObject(o, k, v) == NULL) {
        *bad = 1;
    }
}

static void j_num(cJSON *o, const char *k, double v, int *bad)
{
    if (cJSON_AddNumberToObject(o, k, v) == NULL) {
        *bad = 1;
    }
}

static void j_bool(cJSON *o, const char *k, int v, int *bad)
{
    if (cJSON_AddBoolToObject(o, k, v != 0) == NULL) {
        *bad = 1;
    }
}

static cJSON *j_arr(cJSON *o, const char *k, int *bad)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    if (a == NULL) {
        *bad = 1;
    }
    return a;
}

static cJSON *j_item(cJSON *arr, int *bad)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || arr == NULL || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        *bad = 1;
        return NULL;
    }
    return o;
}

static void j_pair(cJSON *arr, const model_placement_decision *d, int *bad)
{
    cJSON *o = j_item(arr, bad);
    if (o == NULL) {
        return;
    }
    j_str(o, "name", d->site, bad);
    j_str(o, "where", model_placement_where_str(d->where), bad);
    j_num(o, "instances", (double)d->n_instances, bad);
    j_str(o, "reason", d->reason, bad);
}

/* The interface entry; site_only != SIZE_MAX limits it to one site. */
static cJSON *j_iface(const model_placement *p, size_t i, size_t site_only, int *bad)
{
    const model_placement_iface *f = &p->ifaces[i];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        *bad = 1;
        return NULL;
    }
    j_str(o, "interface", f->name, bad);
    if (site_only != SIZE_MAX) {
        const model_placement_decision *d = &p->dec[site_only * p->n_ifaces + i];
        j_str(o, "where", model_placement_where_str(d->where), bad);
        j_str(o, "rule", f->rule, bad);
        j_str(o, "reason", d->reason, bad);
    } else {
        j_str(o, "where", model_placement_where_str(f->where), bad);
        j_str(o, "rule", f->rule, bad);
        j_str(o, "reason", f->reason, bad);
    }
    j_num(o, "instances", (double)f->n_instances, bad);
    j_num(o, "cpu_millis", (double)f->cpu_millis, bad);
    j_num(o, "memory_bytes", (double)f->memory_bytes, bad);
    cJSON *sites = j_arr(o, "sites", bad);
    for (size_t s = 0; s < p->n_sites && sites != NULL; s++) {
        const model_placement_decision *d = &p->dec[s * p->n_ifaces + i];
        if (site_only != SIZE_MAX ? s == site_only : d->n_instances > 0) {
            j_pair(sites, d, bad);
        }
    }
    return o;
}

static kt_status j_finish(cJSON *root, int bad, kt_buf *out)
{
    kt_status st = bad ? KT_ENOMEM : kt_json_print_buf(root, out);
    cJSON_Delete(root);
    return st;
}

kt_status model_placement_to_json(const model_placement *p, uint64_t revision, kt_buf *out)
{
    kt_json_init();
    int bad = 0;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        return KT_ENOMEM;
    }
    j_num(root, "revision", (double)revision, &bad);
    cJSON *ifs = j_arr(root, "interfaces", &bad);
    for (size_t i = 0; i < p->n_ifaces && ifs != NULL && !bad; i++) {
        cJSON *o = j_iface(p, i, SIZE_MAX, &bad);
        if (o != NULL && !cJSON_AddItemToArray(ifs, o)) {
            cJSON_Delete(o);
            bad = 1;
        }
    }
    cJSON *sites = j_arr(root, "sites", &bad);
    for (size_t s = 0; s < p->n_sites && sites != NULL && !bad; s++) {
        const model_placement_site_info *si = &p->sites[s];
        cJSON *o = j_item(sites, &bad);
        if (o == NULL) {
            break;
        }
        j_str(o, "name", si->name, &bad);
        j_bool(o, "connected", si->connected, &bad);
        j_num(o, "cpu_millis",
              si->cpu_millis == MODEL_PLACEMENT_CPU_UNLIMITED ? -1.0 : (double)si->cpu_millis,
              &bad);
        j_num(o, "memory_bytes",
              si->memory_bytes == MODEL_PLACEMENT_MEMORY_UNLIMITED ? -1.0
                                                                   : (double)si->memory_bytes,
              &bad);
        j_num(o, "used_cpu_millis", (double)si->used_cpu_millis, &bad);
        j_num(o, "used_memory_bytes", (double)si->used_memory_bytes, &bad);
        j_num(o, "instances", (double)si->n_instances, &bad);
        j_num(o, "edge", (double)si->n_edge, &bad);
        j_num(o, "cloud", (double)si->n_cloud, &bad);
        j_num(o, "pending", (double)si->n_pending, &bad);
    }
    return j_finish(root, bad, out);
}

kt_status model_placement_explain_json(
    const model_placement *p, const char *iface, const char *site, kt_buf *out, kt_err *err)
{
    kt_buf lines;
    kt_buf_init(&lines, (size_t)16 << 20);
    kt_status st = model_placement_explain(p, iface, site, &lines, err);
    if (st != KT_OK) {
        kt_buf_fini(&lines);
        return st;
    }
    kt_json_init();
    int bad = 0;
    size_t i = map_index(&p->iface_by_name, iface);
    size_t only = site != NULL ? map_index(&p->site_by_name, site) : SIZE_MAX;
    cJSON *root = j_iface(p, i, only, &bad);
    if (root == NULL) {
        kt_buf_fini(&lines);
        return kt_err_set(err, KT_ENOMEM, "explain %s: JSON", iface);
    }
    cJSON *steps = j_arr(root, "steps", &bad);
    char *text = lines.data != NULL ? lines.data : (char *)"";
    while (steps != NULL && *text != '\0' && !bad) {
        char *nl = strchr(text, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        cJSON *s = cJSON_CreateString(text);
        if (s == NULL || !cJSON_AddItemToArray(steps, s)) {
            cJSON_Delete(s);
            bad = 1;
        }
        text = nl != NULL ? nl + 1 : text + strlen(text);
    }
    kt_buf_fini(&lines);
    st = j_finish(root, bad, out);
    if (st != KT_OK) {
        return kt_err_set(err, st, "explain %s: JSON output", iface);
    }
    return KT_OK;
}
