/*
 * test_placement.c — the placement engine (model/placement.h): rule kinds,
 * instance -> site by label and by siteFrom walks, capacity, offline,
 * gone sites, minimal moves, determinism, explain and JSON; plus the
 * generated smart city (ktwin-sim) end to end.
 *
 * Models are small YAML texts built per test and loaded with
 * model_load_buffer. Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/model.h"
#include "model/placement.h"

/* ---- building models ----------------------------------------------------------------- */

/* An interface with a service requesting cpu_m millicores and mem_mi MiB (both 0: no
 * service); labels and rels are YAML fragments or NULL. */
static void add_iface(kt_buf *b,
                      const char *name,
                      unsigned cpu_m,
                      unsigned mem_mi,
                      const char *labels,
                      const char *rels)
{
    assert_int_equal(kt_buf_printf(b,
                                   "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\n"
                                   "metadata:\n  name: %s\n",
                                   name),
                     KT_OK);
    if (labels != NULL) {
        assert_int_equal(kt_buf_printf(b, "  labels: {%s}\n", labels), KT_OK);
    }
    assert_int_equal(kt_buf_puts(b, "spec:\n  properties:\n  - name: p\n"
                                    "    schema: {primitiveType: string}\n"),
                     KT_OK);
    if (rels != NULL) {
        assert_int_equal(kt_buf_printf(b, "  relationships:\n%s", rels), KT_OK);
    }
    if (cpu_m > 0 || mem_mi > 0) {
        assert_int_equal(
            kt_buf_printf(b,
                          "  service:\n    template:\n      spec:\n"
                          "        containers:\n        - name: c\n"
                          "          image: x/y:1\n"
                          "          resources: {requests: {cpu: %um, memory: %uMi}}\n",
                          cpu_m, mem_mi),
            KT_OK);
    }
}

/* An instance; site may be NULL; rels is a YAML list body or NULL. */
static void
add_inst(kt_buf *b, const char *name, const char *iface, const char *site, const char *rels)
{
    assert_int_equal(kt_buf_printf(b,
                                   "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\n"
                                   "metadata:\n  name: %s\n",
                                   name),
                     KT_OK);
    if (site != NULL) {
        assert_int_equal(kt_buf_printf(b, "  labels: {ktwin.io/site: %s}\n", site), KT_OK);
    }
    assert_int_equal(kt_buf_printf(b, "spec:\n  interface: %s\n", iface), KT_OK);
    if (rels != NULL) {
        assert_int_equal(kt_buf_printf(b, "  twinInstanceRelationships:\n%s", rels), KT_OK);
    }
}

static model *load_text(const char *text)
{
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_load_buffer(m, "test.yaml", text, strlen(text), &diag, &err), KT_OK);
    (void)model_resolve(m, &diag);
    if (diag.n_errors > 0) {
        model_diag_print(&diag, stderr);
    }
    assert_int_equal(diag.n_errors, 0);
    model_diag_fini(&diag);
    return m;
}

static model_placement *
place(const model *m, const model_placement_site *sites, size_t n, const model_placement *prev)
{
    model_placement *p = NULL;
    kt_err err = { 0 };
    kt_status st = model_placement_compute(&p, m, sites, n, prev, &err);
    if (st != KT_OK) {
        fprintf(stderr, "compute: %s\n", err.msg);
    }
    assert_int_equal(st, KT_OK);
    assert_non_null(p);
    return p;
}

static model_placement_where where(const model_placement *p, const char *iface, const char *site)
{
    const model_placement_decision *d = model_placement_decision_get(p, iface, site);
    assert_non_null(d);
    return d->where;
}

static const char *reason(const model_placement *p, const char *iface, const char *site)
{
    const model_placement_decision *d = model_placement_decision_get(p, iface, site);
    assert_non_null(d);
    return d->reason;
}

#define SITE(n, conn, cpu, mem_mi)                   \
    {                                                \
        (n), (conn), (cpu), (uint64_t)(mem_mi) << 20 \
    }
#define BIG SITE
#define UNL MODEL_PLACEMENT_CPU_UNLIMITED

/* ---- rules ------------------------------------------------------------------------- */

static void test_each_rule_kind_decides_and_is_recorded(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "rt-edge", 100, 64, "tier: realtime", NULL);
    add_iface(&b, "rt-batch", 100, 64, "tier: batch", NULL); /* label mismatch: next rule */
    add_iface(&b, "agg-cloud", 100, 64, NULL, NULL);
    add_iface(&b, "dev-prefer", 50, 32, NULL, NULL);
    add_iface(&b, "other", 10, 8, NULL, NULL);
    add_inst(&b, "i1", "rt-edge", "s1", NULL);
    add_inst(&b, "i2", "rt-batch", "s1", NULL);
    add_inst(&b, "i3", "agg-cloud", "s1", NULL);
    add_inst(&b, "i4", "dev-prefer", "s1", NULL);
    add_inst(&b, "i5", "other", "s1", NULL);
    assert_int_equal(
        kt_buf_puts(
            &b,
            "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
            "metadata: {name: pol}\nspec:\n  rules:\n"
            "  - name: realtime\n    match: {interfaces: [\"rt-*\"], labels: {tier: realtime}}\n"
            "    placement: edge\n"
            "  - name: aggregates\n    match: {interfaces: [\"agg-*\", \"rt-*\"]}\n"
            "    placement: cloud\n"
            "  - name: devices\n    match: {interfaces: [dev-prefer]}\n"
            "    placement: prefer-edge\n"
            "  defaultPlacement: edge\n"),
        KT_OK);
    model *m = load_text(b.data);
    model_placement_site sites[] = { BIG("s1", 1, 10000, 10000) };
    model_placement *p = place(m, sites, 1, NULL);

    assert_int_equal(where(p, "rt-edge", "s1"), MODEL_WHERE_EDGE);
    assert_string_equal(model_placement_decision_get(p, "rt-edge", "s1")->rule, "pol/realtime");
    assert_int_equal(where(p, "rt-batch", "s1"), MODEL_WHERE_CLOUD);
    assert_string_equal(model_placement_decision_get(p, "rt-batch", "s1")->rule, "pol/aggregates");
    assert_int_equal(where(p, "agg-cloud", "s1"), MODEL_WHERE_CLOUD);
    assert_string_equal(reason(p, "agg-cloud", "s1"), "the rule places it in the cloud");
    assert_int_equal(where(p, "dev-prefer", "s1"), MODEL_WHERE_EDGE);
    assert_string_equal(model_placement_decision_get(p, "dev-prefer", "s1")->rule, "pol/devices");
    /* No rule: the policy's defaultPlacement (edge here). */
    assert_int_equal(where(p, "other", "s1"), MODEL_WHERE_EDGE);
    assert_string_equal(model_placement_decision_get(p, "other", "s1")->rule, "default");

    const model_placement_site_info *si = model_placement_site_get(p, "s1");
    assert_non_null(si);
    assert_int_equal(si->used_cpu_millis, 100 + 50 + 10);
    assert_int_equal(si->used_memory_bytes, (uint64_t)(64 + 32 + 8) << 20);
    assert_int_equal(si->n_instances, 5);
    assert_int_equal(si->n_edge, 3);
    assert_int_equal(si->n_cloud, 2);
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

static void test_no_policy_places_everything_in_the_cloud(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "a", 100, 64, NULL, NULL);
    add_iface(&b, "unused", 100, 64, NULL, NULL);
    add_inst(&b, "a1", "a", "s1", NULL);
    add_inst(&b, "a2", "a", NULL, NULL);
    model *m = load_text(b.data);
    model_placement_site sites[] = { BIG("s1", 1, 10000, 10000) };
    model_placement *p = place(m, sites, 1, NULL);
    assert_int_equal(where(p, "a", "s1"), MODEL_WHERE_CLOUD);
    assert_string_equal(model_placement_decision_get(p, "a", "s1")->rule, "default");
    assert_string_equal(reason(p, "a", "s1"), "no PlacementPolicy: cloud");
    const model_placement_iface *f = model_placement_iface_get(p, "a");
    assert_int_equal(f->where, MODEL_WHERE_CLOUD);
    assert_int_equal(f->n_instances, 2);
    assert_int_equal(f->n_no_site, 1);
    /* An interface without instances: cloud, undecided everywhere. */
    const model_placement_iface *u = model_placement_iface_get(p, "unused");
    assert_int_equal(u->where, MODEL_WHERE_CLOUD);
    assert_int_equal(u->n_sites, 0);
    assert_int_equal(model_placement_decision_get(p, "unused", "s1")->n_instances, 0);
    assert_null(model_placement_decision_get(p, "nope", "s1"));
    assert_null(model_placement_decision_get(p, "a", "nope"));
    assert_int_equal(model_placement_get_stats(p)->n_decisions, 1);
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

/* ---- instance -> site ------------------------------------------------------------------ */

static const char *const hop_rels = "  - {name: up, interface: node}\n"
                                    "  - {name: side, interface: node}\n"
                                    "  - {name: down, interface: node}\n";

static void hop_model(kt_buf *b)
{
    add_iface(b, "node", 10, 10, NULL, hop_rels);
    add_inst(b, "lab-a", "node", "site-a", "  - {name: down, interface: node, instance: x4}\n");
    add_inst(b, "lab-b", "node", "site-b", NULL);
    add_inst(b, "lab-z", "node", "site-zz", NULL); /* a site nobody declared */
    /* outgoing, one hop */
    add_inst(b, "x1", "node", NULL, "  - {name: up, interface: node, instance: lab-b}\n");
    /* same depth: the earlier siteFrom entry (up) wins over side */
    add_inst(b, "x2", "node", NULL,
             "  - {name: side, interface: node, instance: lab-a}\n"
             "  - {name: up, interface: node, instance: lab-b}\n");
    /* same depth, same hop: the smaller name wins */
    add_inst(b, "x3", "node", NULL,
             "  - {name: up, interface: node, instance: lab-b}\n"
             "  - {name: up, interface: node, instance: lab-a}\n");
    /* incoming: lab-a -down-> x4 */
    add_inst(b, "x4", "node", NULL, NULL);
    /* three hops: c1 -> c2 -> c3 -> lab-a */
    add_inst(b, "c1", "node", NULL, "  - {name: up, interface: node, instance: c2}\n");
    add_inst(b, "c2", "node", NULL, "  - {name: up, interface: node, instance: c3}\n");
    add_inst(b, "c3", "node", NULL, "  - {name: up, interface: node, instance: lab-a}\n");
    /* nearer beats earlier hop: up leads 2 hops away, side 1 hop */
    add_inst(b, "y", "node", NULL,
             "  - {name: up, interface: node, instance: c3}\n"
             "  - {name: side, interface: node, instance: lab-b}\n");
    /* a cycle with no label */
    add_inst(b, "k1", "node", NULL, "  - {name: up, interface: node, instance: k2}\n");
    add_inst(b, "k2", "node", NULL, "  - {name: up, interface: node, instance: k1}\n");
    /* a label naming an unknown site ends the walk */
    add_inst(b, "z", "node", NULL,
             "  - {name: up, interface: node, instance: lab-z}\n"
             "  - {name: side, interface: node, instance: lab-a}\n");
    /* a chain of 10 hops: past MODEL_PLACEMENT_MAX_HOPS for d0 and d1 */
    for (int i = 0; i < 10; i++) {
        char name[16], rel[96];
        (void)snprintf(name, sizeof name, "d%d", i);
        if (i < 9) {
            (void)snprintf(rel, sizeof rel, "  - {name: up, interface: node, instance: d%d}\n",
                           i + 1);
        } else {
            (void)snprintf(rel, sizeof rel, "  - {name: up, interface: node, instance: lab-a}\n");
        }
        add_inst(b, name, "node", NULL, rel);
    }
    /* relationships that are no siteFrom hop are not followed (outgoing down) */
    add_inst(b, "w", "node", NULL, "  - {name: down, interface: node, instance: lab-b}\n");
    assert_int_equal(kt_buf_puts(b, "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                    "metadata: {name: hops}\nspec:\n  siteFrom:\n"
                                    "  - relationship: up\n  - relationship: side\n"
                                    "  - {relationship: down, direction: incoming}\n"
                                    "  rules:\n  - {name: all, placement: edge}\n"),
                     KT_OK);
}

static void test_site_from_label_and_hops(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    hop_model(&b);
    model *m = load_text(b.data);
    model_placement_site sites[] = { BIG("site-b", 1, UNL, 1000), BIG("site-a", 1, UNL, 1000) };
    model_placement *p = place(m, sites, 2, NULL);
    static const struct {
        const char *inst, *site;
    } want[] = {
        { "lab-a", "site-a" }, { "lab-b", "site-b" }, { "lab-z", NULL },  { "x1", "site-b" },
        { "x2", "site-b" },    { "x3", "site-a" },    { "x4", "site-a" }, { "c1", "site-a" },
        { "c2", "site-a" },    { "c3", "site-a" },    { "y", "site-b" },  { "k1", NULL },
        { "k2", NULL },        { "z", NULL },         { "d0", NULL },     { "d1", NULL },
        { "d2", "site-a" },    { "d9", "site-a" },    { "w", NULL },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *got = model_placement_instance_site(p, want[i].inst);
        if (want[i].site == NULL) {
            if (got != NULL) {
                fail_msg("%s: got %s, want no site", want[i].inst, got);
            }
        } else {
            if (got == NULL || strcmp(got, want[i].site) != 0) {
                fail_msg("%s: got %s, want %s", want[i].inst, got ? got : "(none)", want[i].site);
            }
        }
    }
    assert_null(model_placement_instance_site(p, "no-such-instance"));
    const model_placement_stats *st = model_placement_get_stats(p);
    assert_int_equal(st->n_unknown_site, 2); /* lab-z and z */
    assert_int_equal(st->n_no_site, 7);      /* lab-z k1 k2 z d0 d1 w */
    assert_int_equal(st->n_walked, 22);      /* the unlabelled ones */
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

/* ---- capacity, offline, gone --------------------------------------------------------- */

/* Three interfaces x, y, z at 100m/100Mi each under one rule, all on s1. */
static model *capacity_model(const char *rule_extra, int with_x)
{
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    if (with_x) {
        add_iface(&b, "x", 100, 100, NULL, NULL);
        add_inst(&b, "x1", "x", "s1", NULL);
    }
    add_iface(&b, "y", 100, 100, NULL, NULL);
    add_iface(&b, "z", 100, 100, NULL, NULL);
    add_inst(&b, "y1", "y", "s1", NULL);
    add_inst(&b, "z1", "z", "s1", NULL);
    add_inst(&b, "z2", "z", "s1", NULL);
    assert_int_equal(kt_buf_printf(&b,
                                   "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                   "metadata: {name: cap}\nspec:\n  rules:\n"
                                   "  - name: r\n%s",
                                   rule_extra),
                     KT_OK);
    model *m = load_text(b.data);
    kt_buf_fini(&b);
    return m;
}

static void test_capacity_overflow_to_cloud_and_pending(void **state)
{
    (void)state;
    model_placement_site cpu_tight[] = { BIG("s1", 1, 250, 1000) };
    model_placement_site mem_tight[] = { BIG("s1", 1, 1000, 250) };

    model *m = capacity_model("    placement: edge\n    overflow: cloud\n", 1);
    model_placement *p = place(m, cpu_tight, 1, NULL);
    assert_int_equal(where(p, "x", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p, "y", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_CLOUD);
    assert_non_null(strstr(reason(p, "z", "s1"), "no room"));
    assert_non_null(strstr(reason(p, "z", "s1"), "overflow: cloud"));
    assert_int_equal(model_placement_decision_get(p, "z", "s1")->n_instances, 2);
    assert_int_equal(model_placement_site_get(p, "s1")->used_cpu_millis, 200);
    model_placement_free(p);
    p = place(m, mem_tight, 1, NULL);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_CLOUD);
    assert_int_equal(model_placement_site_get(p, "s1")->used_memory_bytes, (uint64_t)200 << 20);
    model_placement_free(p);
    model_free(m);

    m = capacity_model("    placement: edge\n    overflow: pending\n", 1);
    p = place(m, cpu_tight, 1, NULL);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_PENDING);
    assert_int_equal(model_placement_iface_get(p, "z")->where, MODEL_WHERE_PENDING);
    model_placement_free(p);
    model_free(m);

    /* prefer-edge falls back to the cloud whatever the overflow says. */
    m = capacity_model("    placement: prefer-edge\n    overflow: pending\n", 1);
    p = place(m, cpu_tight, 1, NULL);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_CLOUD);
    assert_non_null(strstr(reason(p, "z", "s1"), "prefer-edge"));
    model_placement_free(p);
    model_free(m);

    /* First fit: a later smaller interface still fits after a big one did not. */
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "a-big", 300, 10, NULL, NULL);
    add_iface(&b, "b-small", 50, 10, NULL, NULL);
    add_inst(&b, "a1", "a-big", "s1", NULL);
    add_inst(&b, "b1", "b-small", "s1", NULL);
    assert_int_equal(kt_buf_puts(&b, "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                     "metadata: {name: p}\nspec:\n  defaultPlacement: edge\n"),
                     KT_OK);
    m = load_text(b.data);
    p = place(m, cpu_tight, 1, NULL);
    assert_int_equal(where(p, "a-big", "s1"), MODEL_WHERE_CLOUD);
    assert_int_equal(where(p, "b-small", "s1"), MODEL_WHERE_EDGE);
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

static void test_offline_required_never_goes_to_the_cloud(void **state)
{
    (void)state;
    model *m = capacity_model("    placement: edge\n    offline: required\n    overflow: cloud\n"
                              "    sites: [\"s*\"]\n",
                              1);
    model_placement_site full[] = { BIG("s1", 1, 150, 1000) };
    model_placement *p = place(m, full, 1, NULL);
    assert_int_equal(where(p, "x", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p, "y", "s1"), MODEL_WHERE_PENDING);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_PENDING);
    assert_non_null(strstr(reason(p, "y", "s1"), "never the cloud"));
    model_placement_free(p);
    /* Gone: it runs offline, so it stays at the edge (capacity still counts). */
    model_placement_site gone[] = { BIG("s1", 0, 1000, 1000) };
    p = place(m, gone, 1, NULL);
    assert_int_equal(where(p, "x", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p, "z", "s1"), MODEL_WHERE_EDGE);
    assert_non_null(strstr(reason(p, "z", "s1"), "runs offline"));
    model_placement_free(p);
    model_free(m);

    /* A site the rule does not allow: pending, not cloud. */
    m = capacity_model("    placement: edge\n    offline: required\n    overflow: cloud\n"
                       "    sites: [\"edge-*\"]\n",
                       0);
    model_placement_site s1[] = { BIG("s1", 1, 1000, 1000) };
    p = place(m, s1, 1, NULL);
    assert_int_equal(where(p, "y", "s1"), MODEL_WHERE_PENDING);
    assert_non_null(strstr(reason(p, "y", "s1"), "not in the rule's sites [edge-*]"));
    model_placement_free(p);
    model_free(m);

    /* Not allowed, edge, overflow pending / cloud. */
    m = capacity_model("    placement: edge\n    overflow: cloud\n    sites: [\"edge-*\"]\n", 0);
    p = place(m, s1, 1, NULL);
    assert_int_equal(where(p, "y", "s1"), MODEL_WHERE_CLOUD);
    model_placement_free(p);
    model_free(m);
}

static void test_gone_site_follows_offline_and_overflow(void **state)
{
    (void)state;
    model_placement_site gone[] = { BIG("s1", 0, 1000, 1000) };
    static const struct {
        const char *rule;
        model_placement_where want;
    } cases[] = {
        { "    placement: edge\n    overflow: cloud\n", MODEL_WHERE_CLOUD },
        { "    placement: edge\n    overflow: pending\n", MODEL_WHERE_PENDING },
        { "    placement: prefer-edge\n", MODEL_WHERE_CLOUD },
        { "    placement: prefer-edge\n    offline: preferred\n", MODEL_WHERE_EDGE },
        { "    placement: edge\n    offline: required\n", MODEL_WHERE_EDGE },
        { "    placement: cloud\n", MODEL_WHERE_CLOUD },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model *m = capacity_model(cases[i].rule, 0);
        model_placement *p = place(m, gone, 1, NULL);
        if (where(p, "y", "s1") != cases[i].want) {
            fail_msg("case %zu: got %s (%s)", i, model_placement_where_str(where(p, "y", "s1")),
                     reason(p, "y", "s1"));
        }
        assert_int_equal(model_placement_site_get(p, "s1")->connected, 0);
        model_placement_free(p);
        model_free(m);
    }
}

/* ---- minimal moves ------------------------------------------------------------------- */

typedef struct changes {
    size_t n;
    char text[1024];
} changes;

static void on_change(const model_placement_change *c, void *user)
{
    changes *ch = user;
    ch->n++;
    size_t len = strlen(ch->text);
    (void)snprintf(ch->text + len, sizeof ch->text - len, "%s@%s:%s->%s;", c->iface, c->site,
                   model_placement_where_str(c->old_where),
                   model_placement_where_str(c->new_where));
}

static void test_minimal_moves(void **state)
{
    (void)state;
    const char *rule = "    placement: edge\n    overflow: cloud\n";
    model_placement_site s200[] = { BIG("s1", 1, 200, 1000) };
    model_placement_site s100[] = { BIG("s1", 1, 100, 1000) };

    /* y and z fit; then x arrives with an earlier name: a newcomer does not displace them. */
    model *m0 = capacity_model(rule, 0);
    model_placement *p0 = place(m0, s200, 1, NULL);
    assert_int_equal(where(p0, "y", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p0, "z", "s1"), MODEL_WHERE_EDGE);
    model *m1 = capacity_model(rule, 1);
    model_free(m0); /* the previous result does not need its model */
    model_placement *p1 = place(m1, s200, 1, p0);
    assert_int_equal(where(p1, "x", "s1"), MODEL_WHERE_CLOUD);
    assert_int_equal(where(p1, "y", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p1, "z", "s1"), MODEL_WHERE_EDGE);
    assert_true(model_placement_decision_get(p1, "y", "s1")->was_edge);
    assert_non_null(strstr(reason(p1, "y", "s1"), "kept"));
    changes ch = { 0 };
    assert_int_equal(model_placement_diff(p0, p1, on_change, &ch), 0);
    /* Without prev the name order decides: x and y. */
    model_placement *fresh = place(m1, s200, 1, NULL);
    assert_int_equal(where(fresh, "x", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(fresh, "z", "s1"), MODEL_WHERE_CLOUD);
    model_placement_free(fresh);

    /* Capacity drop: only z moves (y is first among the kept ones); x stays in the cloud. */
    model_placement *p2 = place(m1, s100, 1, p1);
    assert_int_equal(where(p2, "x", "s1"), MODEL_WHERE_CLOUD);
    assert_int_equal(where(p2, "y", "s1"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p2, "z", "s1"), MODEL_WHERE_CLOUD);
    memset(&ch, 0, sizeof ch);
    assert_int_equal(model_placement_diff(p1, p2, on_change, &ch), 1);
    assert_string_equal(ch.text, "z@s1:edge->cloud;");

    /* Adding a site moves nothing that fits: only the new site's pairs change. */
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "x", 100, 100, NULL, NULL);
    add_iface(&b, "y", 100, 100, NULL, NULL);
    add_iface(&b, "z", 100, 100, NULL, NULL);
    add_inst(&b, "x1", "x", "s1", NULL);
    add_inst(&b, "y1", "y", "s1", NULL);
    add_inst(&b, "z1", "z", "s1", NULL);
    add_inst(&b, "z2", "z", "s1", NULL);
    add_inst(&b, "y9", "y", "s2", NULL);
    assert_int_equal(kt_buf_printf(&b,
                                   "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                   "metadata: {name: cap}\nspec:\n  rules:\n  - name: r\n%s",
                                   rule),
                     KT_OK);
    model *m3 = load_text(b.data);
    kt_buf_fini(&b);
    model_placement_site two[] = { BIG("s2", 1, 1000, 1000), BIG("s1", 1, 100, 1000) };
    model_placement *p3 = place(m3, two, 2, p2);
    memset(&ch, 0, sizeof ch);
    assert_int_equal(model_placement_diff(p2, p3, on_change, &ch), 1);
    assert_string_equal(ch.text, "y@s2:cloud->edge;");
    /* And removing it lists its former edge pair. */
    memset(&ch, 0, sizeof ch);
    assert_int_equal(model_placement_diff(p3, p2, on_change, &ch), 1);
    assert_string_equal(ch.text, "y@s2:edge->cloud;");
    /* NULL old: everything not in the cloud. */
    assert_int_equal(model_placement_diff(NULL, p3, NULL, NULL), 2);

    model_placement_free(p0);
    model_placement_free(p1);
    model_placement_free(p2);
    model_placement_free(p3);
    model_free(m1);
    model_free(m3);
}

/* ---- determinism --------------------------------------------------------------------- */

/* Split a YAML text of "---\n"-separated documents into the documents (in place). */
static size_t split_docs(char *text, char **docs, size_t cap)
{
    size_t n = 0;
    char *p = strncmp(text, "---\n", 4) == 0 ? text + 4 : text;
    while (*p != '\0' && n < cap) {
        docs[n++] = p;
        char *next = strstr(p, "\n---\n");
        if (next == NULL) {
            break;
        }
        next[1] = '\0'; /* keep the document's last newline */
        p = next + 5;
    }
    return n;
}

static kt_buf render_all(const model_placement *p, const model *m)
{
    kt_buf out;
    kt_buf_init(&out, 1 << 24);
    assert_int_equal(model_placement_to_json(p, 7, &out), KT_OK);
    for (size_t i = 0; i < model_placement_n_ifaces(p); i++) {
        kt_err err = { 0 };
        assert_int_equal(
            model_placement_explain(p, model_placement_iface_at(p, i)->name, NULL, &out, &err),
            KT_OK);
    }
    /* Instance sites, in name order so the model's order does not show. */
    size_t n = model_n_instances(m);
    const char **names = kt_xcalloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = model_instance_at(m, i)->name;
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort: small */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = model_placement_instance_site(p, names[i]);
        assert_int_equal(kt_buf_printf(&out, "%s=%s\n", names[i], s ? s : "-"), KT_OK);
    }
    kt_free(names);
    return out;
}

static void test_shuffled_input_gives_identical_output(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    hop_model(&b);
    /* Contested capacity too. */
    add_iface(&b, "q1", 100, 1, NULL, NULL);
    add_iface(&b, "q2", 100, 1, NULL, NULL);
    add_iface(&b, "q3", 100, 1, NULL, NULL);
    add_inst(&b, "q1-a", "q1", "site-a", NULL);
    add_inst(&b, "q2-a", "q2", "site-a", NULL);
    add_inst(&b, "q3-a", "q3", "site-a", NULL);
    add_inst(&b, "q3-b", "q3", "site-b", NULL);
    add_iface(&b, "r1", 0, 0, NULL, NULL); /* a second policy of lower priority */
    add_inst(&b, "r1-b", "r1", "site-b", NULL);
    assert_int_equal(kt_buf_puts(&b, "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                     "metadata: {name: low}\nspec:\n  priority: -1\n"
                                     "  rules:\n  - {name: never, placement: cloud}\n"),
                     KT_OK);
    char *base = kt_xstrdup(b.data);
    model *m = load_text(base);
    model_placement_site sites[] = { BIG("site-a", 1, 250, 1000), BIG("site-b", 0, 1000, 1000),
                                     BIG("site-c", 1, 1000, 1000) };
    model_placement *p = place(m, sites, 3, NULL);
    kt_buf want = render_all(p, m);
    /* node 10m + q1 100m + q2 100m fit in 250m, q3 does not. */
    assert_int_equal(where(p, "q2", "site-a"), MODEL_WHERE_EDGE);
    assert_int_equal(where(p, "q3", "site-a"), MODEL_WHERE_CLOUD);

    char *docs[256];
    size_t n = split_docs(base, docs, 256);
    assert_true(n > 20);
    srand(12345);
    for (int round = 0; round < 20; round++) {
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)rand() % (i + 1);
            char *t = docs[i];
            docs[i] = docs[j];
            docs[j] = t;
        }
        kt_buf text;
        kt_buf_init(&text, 1 << 20);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(kt_buf_printf(&text, "---\n%s", docs[i]), KT_OK);
        }
        model_placement_site rs[3];
        for (size_t i = 0; i < 3; i++) {
            rs[i] = sites[((size_t)round + i) % 3];
        }
        model *m2 = load_text(text.data);
        model_placement *p2 = place(m2, rs, 3, NULL);
        kt_buf got = render_all(p2, m2);
        assert_string_equal(got.data, want.data);
        kt_buf_fini(&got);
        model_placement_free(p2);
        model_free(m2);
        kt_buf_fini(&text);
    }
    kt_buf_fini(&want);
    model_placement_free(p);
    model_free(m);
    kt_free(base);
    kt_buf_fini(&b);
}

/* ---- explain, JSON, per-site view ----------------------------------------------------- */

static void test_explain_lists_rules_and_sites(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "pole", 300, 228, "tier: realtime", NULL);
    add_inst(&b, "p1", "pole", "s1", NULL);
    add_inst(&b, "p2", "pole", "s2", NULL);
    add_inst(&b, "p3", "pole", NULL, NULL);
    assert_int_equal(kt_buf_puts(&b, "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                     "metadata: {name: city}\nspec:\n  priority: 10\n  rules:\n"
                                     "  - name: cams\n    match: {interfaces: [\"cam-*\"]}\n"
                                     "    placement: cloud\n"
                                     "  - name: batch\n    match: {labels: {tier: batch}}\n"
                                     "    placement: cloud\n"
                                     "  - name: rt\n    match: {labels: {tier: realtime}}\n"
                                     "    placement: edge\n    overflow: pending\n"),
                     KT_OK);
    model *m = load_text(b.data);
    model_placement_site sites[] = { BIG("s1", 1, 1000, 1024), BIG("s2", 1, 100, 1024) };
    model_placement *p = place(m, sites, 2, NULL);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    kt_err err = { 0 };
    assert_int_equal(model_placement_explain(p, "pole", NULL, &out, &err), KT_OK);
    const char *want =
        "interface pole: requests 300m cpu, 228Mi memory; 3 instances, on 2 sites, 1 with no site\n"
        "rule city/cams (policy priority 10): no match: name matches none of [cam-*]\n"
        "rule city/batch (policy priority 10): no match: label tier is realtime, not batch\n"
        "rule city/rt (policy priority 10): matches: placement edge, sites [] (any), offline none, "
        "overflow pending\n"
        "site s1 (connected; capacity 1000m cpu, 1Gi memory; edge uses 300m, 228Mi): 1 instance; "
        "considered 1 of 1 -> edge: fits: needs 300m cpu, 228Mi memory; free 1000m, 1Gi\n"
        "site s2 (connected; capacity 100m cpu, 1Gi memory; edge uses 0m, 0): 1 instance; "
        "considered 1 of 1 -> pending: no room: needs 300m cpu, 228Mi memory; free 100m, 1Gi: "
        "pending (overflow: pending)\n"
        "summary: mixed: edge on 1, pending on 1 of 2 sites; 1 instance with no site in the cloud\n";
    assert_string_equal(out.data, want);

    kt_buf_reset(&out);
    assert_int_equal(model_placement_explain(p, "pole", "s2", &out, &err), KT_OK);
    assert_null(strstr(out.data, "site s1"));
    assert_non_null(strstr(out.data, "site s2"));
    assert_int_equal(model_placement_explain(p, "nope", NULL, &out, &err), KT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    kt_err_clear(&err);
    assert_int_equal(model_placement_explain(p, "pole", "s9", &out, &err), KT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "s9"));
    kt_err_clear(&err);

    /* The explain JSON: ?site limits the sites and gives that pair's where. */
    kt_buf_reset(&out);
    assert_int_equal(model_placement_explain_json(p, "pole", "s2", &out, &err), KT_OK);
    cJSON *j = NULL;
    assert_int_equal(kt_json_parse(out.data, out.len, out.len, &j, &err), KT_OK);
    const char *s = NULL;
    assert_int_equal(kt_json_get_str(j, "where", &s, &err), KT_OK);
    assert_string_equal(s, "pending");
    assert_int_equal(kt_json_get_str(j, "rule", &s, &err), KT_OK);
    assert_string_equal(s, "city/rt");
    cJSON *sites_j = cJSON_GetObjectItemCaseSensitive(j, "sites");
    assert_int_equal(cJSON_GetArraySize(sites_j), 1);
    cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 5);
    assert_non_null(strstr(cJSON_GetArrayItem(steps, 4)->valuestring, "site s2"));
    cJSON_Delete(j);
    kt_buf_reset(&out);
    assert_int_equal(model_placement_explain_json(p, "nope", NULL, &out, &err), KT_ENOTFOUND);
    kt_err_clear(&err);

    /* The whole placement. */
    kt_buf_reset(&out);
    assert_int_equal(model_placement_to_json(p, 42, &out), KT_OK);
    assert_int_equal(kt_json_parse(out.data, out.len, out.len, &j, &err), KT_OK);
    int64_t rev = 0;
    assert_int_equal(kt_json_get_int(j, "revision", &rev, 0, INT64_MAX, &err), KT_OK);
    assert_int_equal(rev, 42);
    cJSON *ifs = cJSON_GetObjectItemCaseSensitive(j, "interfaces");
    assert_int_equal(cJSON_GetArraySize(ifs), 1);
    cJSON *f = cJSON_GetArrayItem(ifs, 0);
    assert_int_equal(kt_json_get_str(f, "where", &s, &err), KT_OK);
    assert_string_equal(s, "mixed");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(f, "sites")), 2);
    cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "sites");
    assert_int_equal(cJSON_GetArraySize(js), 2);
    cJSON *s1 = cJSON_GetArrayItem(js, 0);
    assert_int_equal(kt_json_get_str(s1, "name", &s, &err), KT_OK);
    assert_string_equal(s, "s1");
    int64_t used = 0;
    assert_int_equal(kt_json_get_int(s1, "used_cpu_millis", &used, 0, INT64_MAX, &err), KT_OK);
    assert_int_equal(used, 300);
    bool conn = false;
    assert_int_equal(kt_json_get_bool(s1, "connected", &conn, &err), KT_OK);
    assert_true(conn);
    cJSON_Delete(j);

    /* The agent's view: every interface, undecided ones as cloud. */
    size_t n = 0;
    const model_placement_decision *v = model_placement_site_decisions(p, "s2", &n);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].iface, "pole");
    assert_int_equal(v[0].where, MODEL_WHERE_PENDING);
    assert_string_equal(v[0].rule, "city/rt");
    assert_null(model_placement_site_decisions(p, "zz", &n));
    assert_int_equal(n, 0);

    kt_buf_fini(&out);
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

static void test_bad_sites_are_refused(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    add_iface(&b, "a", 1, 1, NULL, NULL);
    model *m = load_text(b.data);
    model_placement *p = (model_placement *)(uintptr_t)1;
    kt_err err = { 0 };
    model_placement_site dup[] = { BIG("s1", 1, 1, 1), BIG("s1", 0, 1, 1) };
    assert_int_equal(model_placement_compute(&p, m, dup, 2, NULL, &err), KT_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "s1 given twice"));
    kt_err_clear(&err);
    model_placement_site empty[] = { BIG("", 1, 1, 1) };
    assert_int_equal(model_placement_compute(&p, m, empty, 1, NULL, &err), KT_EINVAL);
    kt_err_clear(&err);
    /* No sites at all is fine: everything is cloud. */
    assert_int_equal(model_placement_compute(&p, m, NULL, 0, NULL, &err), KT_OK);
    assert_int_equal(model_placement_n_sites(p), 0);
    assert_int_equal(model_placement_iface_at(p, 0)->where, MODEL_WHERE_CLOUD);
    model_placement_free(p);
    model_placement_free(NULL);
    model_free(m);
    kt_buf_fini(&b);
}

/* ---- the generated smart city --------------------------------------------------------- */

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_generated_smart_city(void **state)
{
    (void)state;
    char dir[] = "/tmp/kt-placement-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[512];
    (void)snprintf(out, sizeof out, "%s/city", dir);
    char *argv[] = { (char *)KT_BINARY_DIR "/sim/ktwin-sim",
                     (char *)"model",
                     (char *)"--neighborhoods",
                     (char *)"4",
                     (char *)"--sites",
                     (char *)"2",
                     (char *)"-o",
                     out,
                     NULL };
    assert_int_equal(run(argv), 0);
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_load_path(m, out, &diag, &err), KT_OK);
    assert_int_equal(model_resolve(m, &diag), KT_OK);
    model_diag_fini(&diag);

    /* Unlimited site-00, a small site-01, a third one with no instances. */
    model_placement_site sites[] = { BIG("site-00", 1, UNL, 1 << 20), BIG("site-01", 1, 700, 2048),
                                     BIG("site-02", 1, UNL, 1 << 20) };
    model_placement *p = place(m, sites, 3, NULL);
    const model_placement_stats *st = model_placement_get_stats(p);
    assert_int_equal(st->n_instances, 4 * 593 + 1);
    /* Every neighborhood twin is labelled; the city walks refNeighborhood to nb001 (site-01). */
    assert_int_equal(st->n_no_site, 0);
    assert_string_equal(model_placement_instance_site(p, "city-001"), "site-01");
    assert_int_equal(model_placement_site_get(p, "site-00")->n_instances, 2 * 593);
    assert_int_equal(model_placement_site_get(p, "site-02")->n_instances, 0);
    assert_int_equal(where(p, "city-pole", "site-00"), MODEL_WHERE_EDGE);
    assert_string_equal(model_placement_decision_get(p, "city-pole", "site-00")->rule,
                        "smart-city/neighborhood-at-the-edge");
    assert_int_equal(where(p, "s4city-city-city", "site-01"), MODEL_WHERE_CLOUD);
    /* site-01 is small: some required interfaces wait (pending, never cloud). */
    const model_placement_site_info *s1 = model_placement_site_get(p, "site-01");
    assert_true(s1->used_cpu_millis <= 700);
    assert_true(s1->n_pending > 0);
    size_t n = 0;
    const model_placement_decision *v = model_placement_site_decisions(p, "site-01", &n);
    assert_int_equal(n, model_n_ifaces(m));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].rule, "smart-city/neighborhood-at-the-edge") == 0 && v[i].n_instances > 0) {
            assert_int_not_equal(v[i].where, MODEL_WHERE_CLOUD);
        }
    }
    /* Stable: computing again with itself as prev changes nothing. */
    model_placement *again = place(m, sites, 3, p);
    assert_int_equal(model_placement_diff(p, again, NULL, NULL), 0);
    model_placement_free(again);
    model_placement_free(p);
    model_free(m);

    char *rm[] = { (char *)"/bin/rm", (char *)"-rf", dir, NULL };
    assert_int_equal(run(rm), 0);
}

int main(void)
{
    kt_log_set_level(KT_LOG_ERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_rule_kind_decides_and_is_recorded),
        cmocka_unit_test(test_no_policy_places_everything_in_the_cloud),
        cmocka_unit_test(test_site_from_label_and_hops),
        cmocka_unit_test(test_capacity_overflow_to_cloud_and_pending),
        cmocka_unit_test(test_offline_required_never_goes_to_the_cloud),
        cmocka_unit_test(test_gone_site_follows_offline_and_overflow),
        cmocka_unit_test(test_minimal_moves),
        cmocka_unit_test(test_shuffled_input_gives_identical_output),
        cmocka_unit_test(test_explain_lists_rules_and_sites),
        cmocka_unit_test(test_bad_sites_are_refused),
        cmocka_unit_test(test_generated_smart_city),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
