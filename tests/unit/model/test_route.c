/*
 * test_route.c — the shared routing function (model/route.h): every event
 * class on the agent and the hub, aggregateData (same site, other site, no
 * parent, aggregator without a service), persistence flags, drops with
 * their reasons, commands local and remote, placement edge / cloud / other
 * site / pending, origins (local, from the hub, from a site), the output
 * cap, and the model_placement adapter end to end.
 *
 * The model is one YAML text; placement comes from a small fake table
 * (where per (iface, site), CLOUD when absent) and the instances' site
 * labels, so each test states exactly the placement it routes against.
 * Destinations are compared as one string, in order:
 *   kind[:iface][@site][!drop], joined with ','.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "model/event.h"
#include "model/model.h"
#include "model/placement.h"
#include "model/route.h"

/* ---- the model ----------------------------------------------------------------------- */

#define SVC                                                                            \
    "  service:\n    template:\n      spec:\n        containers:\n        - name: c\n" \
    "          image: x/y:1\n          resources: {requests: {cpu: 10m, memory: 1Mi}}\n"

static const char *const model_text =
    /* aq: air quality; persists real events; a command; relates to its pole. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: aq}\nspec:\n"
    "  commands:\n  - name: reset\n"
    "  relationships:\n  - {name: citypole, interface: pole}\n"
    "  eventStore: {persistRealEvent: true}\n" SVC
    /* pole: aggregates aq's real events; a camelCase command. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: pole}\nspec:\n"
    "  commands:\n  - name: updateAirQualityIndex\n"
    "  relationships:\n  - {name: refAq, interface: aq, aggregateData: true}\n"
    "  - {name: refNb, interface: nb}\n" SVC
    /* nb: aggregates poles; persists virtual events. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: nb}\nspec:\n"
    "  commands:\n  - name: updateairqualityindex\n"
    "  relationships:\n  - {name: refPoles, interface: pole, aggregateData: true}\n"
    "  eventStore: {persistVirtualEvent: true}\n" SVC
    /* noise: data only (no service), with a command nobody can run. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: noise}\nspec:\n"
    "  commands:\n  - name: calibrate\n"
    /* dev: a device twin that persists virtual events. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: dev}\nspec:\n"
    "  eventStore: {persistVirtualEvent: true, persistRealEvent: true}\n" SVC
    /* agg2: aggregates aq but has no service: never a destination. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: agg2}\nspec:\n"
    "  relationships:\n  - {name: refAq, interface: aq, aggregateData: true}\n"
    /* Instances. */
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: aq-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: aq\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: aq-2\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: aq\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: aq-lone\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: aq\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: aq-c\n"
    "spec:\n  interface: aq\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: pole\n"
    "  twinInstanceRelationships:\n  - {name: refAq, interface: aq, instance: aq-1}\n"
    "  - {name: refNb, interface: nb, instance: nb-1}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-2\n"
    "  labels: {ktwin.io/site: s2}\nspec:\n  interface: pole\n"
    "  twinInstanceRelationships:\n  - {name: refAq, interface: aq, instance: aq-2}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: pole-3\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: pole\n"
    "  twinInstanceRelationships:\n  - {name: refNb, interface: nb, instance: nb-1}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: agg2-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: agg2\n"
    "  twinInstanceRelationships:\n  - {name: refAq, interface: aq, instance: aq-1}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: nb-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: nb\n"
    "  twinInstanceRelationships:\n  - {name: refPoles, interface: pole, instance: pole-1}\n"
    "  - {name: refPoles, interface: pole, instance: pole-2}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: noise-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: noise\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: dev-1\n"
    "  labels: {ktwin.io/site: s1}\nspec:\n  interface: dev\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: dev-c\n"
    "spec:\n  interface: dev\n";

/* ---- fake placement ------------------------------------------------------------------ */

#define MAX_W 16

typedef struct fake {
    const model *m;
    struct {
        const char *iface, *site;
        model_placement_where w;
    } w[MAX_W];
    size_t n;
    unsigned where_calls;
} fake;

static model_placement_where fake_where(const char *iface, const char *site, void *user)
{
    fake *f = user;
    f->where_calls++;
    assert_non_null(site);
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->w[i].iface, iface) == 0 && strcmp(f->w[i].site, site) == 0) {
            return f->w[i].w;
        }
    }
    return MODEL_WHERE_CLOUD;
}

static const char *fake_instance_site(const char *instance, void *user)
{
    fake *f = user;
    const model_instance *x = model_instance_get(f->m, instance);
    return x != NULL ? x->site : NULL;
}

static void set_where(fake *f, const char *iface, const char *site, model_placement_where w)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->w[i].iface, iface) == 0 && strcmp(f->w[i].site, site) == 0) {
            f->w[i].w = w;
            return;
        }
    }
    assert_true(f->n < MAX_W);
    f->w[f->n].iface = iface;
    f->w[f->n].site = site;
    f->w[f->n].w = w;
    f->n++;
}

/* ---- fixture ------------------------------------------------------------------------- */

typedef struct fx {
    model *m;
    model_route_table *t;
    fake f;
    model_route_env agent;  /* site s1 */
    model_route_env agent2; /* site s2 */
    model_route_env hub;
    char got[1024];
} fx;

static int setup(void **state)
{
    fx *x = kt_xcalloc(1, sizeof *x);
    x->m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(
        model_load_buffer(x->m, "route.yaml", model_text, strlen(model_text), &diag, &err), KT_OK);
    (void)model_resolve(x->m, &diag);
    if (diag.n_errors > 0) {
        model_diag_print(&diag, stderr);
    }
    assert_int_equal(diag.n_errors, 0);
    model_diag_fini(&diag);
    x->t = model_route_table_new(x->m);
    x->f.m = x->m;
    /* The default placement of most tests: everything on the edge, both sites. */
    static const char *const ifaces[] = { "aq", "pole", "nb", "dev" };
    for (size_t i = 0; i < 4; i++) {
        set_where(&x->f, ifaces[i], "s1", MODEL_WHERE_EDGE);
        set_where(&x->f, ifaces[i], "s2", MODEL_WHERE_EDGE);
    }
    model_route_placement pl = { fake_where, fake_instance_site, &x->f };
    x->agent = (model_route_env){ x->t, pl, "s1", 0 };
    x->agent2 = (model_route_env){ x->t, pl, "s2", 0 };
    x->hub = (model_route_env){ x->t, pl, NULL, 0 };
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    model_route_table_free(x->t);
    model_free(x->m);
    kt_free(x);
    return 0;
}

/* Route type/source and render the destinations into x->got. */
static const char *route(fx *x,
                         const model_route_env *env,
                         const char *type,
                         const char *source,
                         model_route_origin origin,
                         const char *from)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    kt_err err = { 0 };
    assert_int_equal(model_event_set_type(&ev, type, strlen(type), &err), KT_OK);
    ev.id = "id-1";
    ev.source = source;
    model_route_dest d[MODEL_ROUTE_DEST_MAX];
    size_t n = model_route(env, &ev, origin, from, d, MODEL_ROUTE_DEST_MAX);
    assert_true(n >= 1 && n <= MODEL_ROUTE_DEST_MAX);
    kt_buf b;
    kt_buf_init(&b, sizeof x->got - 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            kt_buf_printf(&b, "%s%s", i > 0 ? "," : "", model_route_kind_str(d[i].kind)), KT_OK);
        if (d[i].iface != NULL) {
            assert_int_equal(kt_buf_printf(&b, ":%s", d[i].iface), KT_OK);
        }
        if (d[i].site != NULL) {
            assert_int_equal(kt_buf_printf(&b, "@%s", d[i].site), KT_OK);
        }
        if (d[i].kind == MODEL_ROUTE_DROP) {
            assert_int_not_equal(d[i].drop, MODEL_DROP_NONE);
            assert_int_equal(kt_buf_printf(&b, "!%s", model_route_drop_str(d[i].drop)), KT_OK);
        } else {
            assert_int_equal(d[i].drop, MODEL_DROP_NONE);
        }
        /* Role invariants. */
        if (env->site != NULL) {
            assert_true(d[i].kind != MODEL_ROUTE_DOWNSTREAM && d[i].kind != MODEL_ROUTE_STORE &&
                        d[i].kind != MODEL_ROUTE_SERVICE_CLOUD);
        } else {
            assert_true(d[i].kind != MODEL_ROUTE_UPSTREAM && d[i].kind != MODEL_ROUTE_LATEST &&
                        d[i].kind != MODEL_ROUTE_SERVICE_LOCAL &&
                        d[i].kind != MODEL_ROUTE_MQTT_VIRTUAL);
        }
    }
    snprintf(x->got, sizeof x->got, "%s", b.data != NULL ? b.data : "");
    kt_buf_fini(&b);
    return x->got;
}

#define LOCAL MODEL_ROUTE_FROM_LOCAL
#define FHUB  MODEL_ROUTE_FROM_HUB
#define FSITE MODEL_ROUTE_FROM_SITE

/* ---- the table ----------------------------------------------------------------------- */

static void test_table_lists_aggregators_with_a_service(void **state)
{
    fx *x = *state;
    const model_iface *const *a = NULL;
    assert_int_equal(model_route_aggregators(x->t, "aq", &a), 1);
    assert_string_equal(a[0]->name, "pole"); /* agg2 has no service */
    assert_int_equal(model_route_aggregators(x->t, "pole", &a), 1);
    assert_string_equal(a[0]->name, "nb");
    assert_int_equal(model_route_aggregators(x->t, "nb", &a), 0);
    assert_null(a);
    assert_int_equal(model_route_aggregators(x->t, "nope", &a), 0);
    assert_ptr_equal(model_route_table_model(x->t), x->m);
}

/* ---- real events ------------------------------------------------------------------------ */

static void test_real_agent_local_service_aggregator_and_persist(void **state)
{
    fx *x = *state;
    /* aq-1 on s1: aq runs here, pole-1 (s1) aggregates it, aq persists real events. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-1", LOCAL, NULL),
                        "service-local:aq,service-local:pole,latest:aq,upstream");
    /* The same event on the hub, sent up by s1: only the store is left to do. */
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-1", FSITE, "s1"), "store:aq");
    /* Sent down by the hub (e.g. a cloud service's PublishToVirtualTwin): no upstream. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-1", FHUB, NULL),
                        "service-local:aq,service-local:pole,latest:aq");
}

static void test_real_aggregator_on_another_site(void **state)
{
    fx *x = *state;
    /* aq-2 is on s1, its aggregating pole-2 on s2. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-2", LOCAL, NULL),
                        "service-local:aq,upstream,latest:aq");
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-2", FSITE, "s1"),
                        "downstream@s2,store:aq");
    /* s2 receives it from the hub and runs pole for pole-2; aq is not its instance. */
    assert_string_equal(route(x, &x->agent2, "ktwin.real.aq", "aq-2", FHUB, NULL),
                        "service-local:pole");
    /* pole in the cloud for s2: the hub runs it. */
    set_where(&x->f, "pole", "s2", MODEL_WHERE_CLOUD);
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-2", FSITE, "s1"),
                        "service-cloud:pole,store:aq");
}

static void test_real_aggregator_without_parent_uses_event_site(void **state)
{
    fx *x = *state;
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-lone", LOCAL, NULL),
                        "service-local:aq,service-local:pole,latest:aq,upstream");
    set_where(&x->f, "pole", "s1", MODEL_WHERE_CLOUD);
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-lone", LOCAL, NULL),
                        "service-local:aq,upstream,latest:aq");
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-lone", FSITE, "s1"),
                        "service-cloud:pole,store:aq");
}

static void test_real_service_in_cloud(void **state)
{
    fx *x = *state;
    set_where(&x->f, "aq", "s1", MODEL_WHERE_CLOUD);
    set_where(&x->f, "pole", "s1", MODEL_WHERE_CLOUD);
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-1", LOCAL, NULL),
                        "upstream,latest:aq");
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-1", FSITE, "s1"),
                        "service-cloud:aq,service-cloud:pole,store:aq");
    /* An instance on no site: everything in the cloud. */
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-c", LOCAL, NULL),
                        "service-cloud:aq,service-cloud:pole,store:aq");
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-c", LOCAL, NULL), "upstream");
}

static void test_real_multi_level_aggregation_and_no_persist(void **state)
{
    fx *x = *state;
    /* pole-1's real event: pole runs, nb-1 aggregates poles; pole persists nothing. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.pole", "pole-1", LOCAL, NULL),
                        "service-local:pole,service-local:nb");
    /* pole-3 has no nb parent (nb-1 does not point at it): nb at pole-3's site. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.pole", "pole-3", LOCAL, NULL),
                        "service-local:pole,service-local:nb");
    /* pole-2 on s2: nb-1 (s1) aggregates it -> hub sends it down to s1. */
    assert_string_equal(route(x, &x->agent2, "ktwin.real.pole", "pole-2", LOCAL, NULL),
                        "service-local:pole,upstream");
    assert_string_equal(route(x, &x->hub, "ktwin.real.pole", "pole-2", FSITE, "s2"),
                        "downstream@s1");
}

static void test_real_data_only_is_no_route(void **state)
{
    fx *x = *state;
    assert_string_equal(route(x, &x->agent, "ktwin.real.noise", "noise-1", LOCAL, NULL),
                        "drop:noise!no-route");
    assert_string_equal(route(x, &x->hub, "ktwin.real.noise", "noise-1", LOCAL, NULL),
                        "drop:noise!no-route");
}

static void test_real_pending(void **state)
{
    fx *x = *state;
    set_where(&x->f, "aq", "s1", MODEL_WHERE_PENDING);
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-1", LOCAL, NULL),
                        "drop:aq!pending,service-local:pole,latest:aq,upstream");
    /* The hub does not count it again for the site that sent it... */
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-1", FSITE, "s1"), "store:aq");
    /* ...but does when it comes from elsewhere. */
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-1", LOCAL, NULL),
                        "drop:aq!pending,downstream@s1,store:aq");
}

/* ---- virtual events ----------------------------------------------------------------------- */

static void test_virtual_events(void **state)
{
    fx *x = *state;
    /* dev persists virtual events. */
    assert_string_equal(route(x, &x->agent, "ktwin.virtual.dev", "dev-1", LOCAL, NULL),
                        "mqtt-virtual:dev,latest:dev,upstream");
    assert_string_equal(route(x, &x->hub, "ktwin.virtual.dev", "dev-1", FSITE, "s1"), "store:dev");
    /* From a cloud service: down to the device's site. */
    assert_string_equal(route(x, &x->hub, "ktwin.virtual.dev", "dev-1", LOCAL, NULL),
                        "downstream@s1,store:dev");
    assert_string_equal(route(x, &x->agent, "ktwin.virtual.dev", "dev-1", FHUB, NULL),
                        "mqtt-virtual:dev,latest:dev");
    /* A device on no site: no broker in the cloud. */
    assert_string_equal(route(x, &x->hub, "ktwin.virtual.dev", "dev-c", LOCAL, NULL),
                        "drop:dev!no-site,store:dev");
    /* A service on s2 actuating a device of s1. */
    assert_string_equal(route(x, &x->agent2, "ktwin.virtual.dev", "dev-1", LOCAL, NULL),
                        "upstream");
    assert_string_equal(route(x, &x->hub, "ktwin.virtual.dev", "dev-1", FSITE, "s2"),
                        "downstream@s1,store:dev");
    /* aq does not persist virtual events. */
    assert_string_equal(route(x, &x->agent, "ktwin.virtual.aq", "aq-1", LOCAL, NULL),
                        "mqtt-virtual:aq");
    assert_string_equal(route(x, &x->hub, "ktwin.virtual.aq", "aq-1", FSITE, "s1"),
                        "drop:aq!no-route");
    /* Wrongly sent down to s2. */
    assert_string_equal(route(x, &x->agent2, "ktwin.virtual.aq", "aq-1", FHUB, NULL),
                        "drop:aq!misrouted");
}

/* ---- store events ------------------------------------------------------------------------ */

static void test_store_events(void **state)
{
    fx *x = *state;
    assert_string_equal(route(x, &x->agent, "ktwin.store.aq", "aq-1", LOCAL, NULL),
                        "latest:aq,upstream");
    /* Not this site's instance: no latest state here. */
    assert_string_equal(route(x, &x->agent2, "ktwin.store.aq", "aq-1", LOCAL, NULL), "upstream");
    assert_string_equal(route(x, &x->hub, "ktwin.store.aq", "aq-1", FSITE, "s1"), "store:aq");
    /* Written in the cloud for an instance whose service runs on s1: keep s1's latest current. */
    assert_string_equal(route(x, &x->hub, "ktwin.store.aq", "aq-1", LOCAL, NULL),
                        "store:aq,downstream@s1");
    assert_string_equal(route(x, &x->hub, "ktwin.store.aq", "aq-1", FSITE, "s2"),
                        "store:aq,downstream@s1");
    assert_string_equal(route(x, &x->agent, "ktwin.store.aq", "aq-1", FHUB, NULL), "latest:aq");
    assert_string_equal(route(x, &x->agent2, "ktwin.store.aq", "aq-1", FHUB, NULL),
                        "drop:aq!misrouted");
    set_where(&x->f, "aq", "s1", MODEL_WHERE_CLOUD);
    assert_string_equal(route(x, &x->hub, "ktwin.store.aq", "aq-1", LOCAL, NULL), "store:aq");
    assert_string_equal(route(x, &x->hub, "ktwin.store.aq", "aq-c", LOCAL, NULL), "store:aq");
    /* A data-only interface still stores. */
    assert_string_equal(route(x, &x->agent, "ktwin.store.noise", "noise-1", LOCAL, NULL),
                        "latest:noise,upstream");
}

/* ---- commands ------------------------------------------------------------------------------- */

static void test_commands_local_and_remote(void **state)
{
    fx *x = *state;
    const char *cmd = "ktwin.command.pole.updateairqualityindex";
    /* Target pole-1 is on s1 and pole runs there. */
    assert_string_equal(route(x, &x->agent, cmd, "pole-1", LOCAL, NULL), "service-local:pole");
    /* Case of the command does not matter (the model declares updateAirQualityIndex). */
    assert_string_equal(
        route(x, &x->agent, "ktwin.command.pole.UpdateAirQualityIndex", "pole-1", LOCAL, NULL),
        "service-local:pole");
    /* Target pole-2 is on s2: up, then down to s2, where it runs. */
    assert_string_equal(route(x, &x->agent, cmd, "pole-2", LOCAL, NULL), "upstream");
    assert_string_equal(route(x, &x->hub, cmd, "pole-2", FSITE, "s1"), "downstream@s2");
    assert_string_equal(route(x, &x->agent2, cmd, "pole-2", FHUB, NULL), "service-local:pole");
    /* pole in the cloud for s2: the hub runs it; an s2 agent given it would drop it. */
    set_where(&x->f, "pole", "s2", MODEL_WHERE_CLOUD);
    assert_string_equal(route(x, &x->hub, cmd, "pole-2", FSITE, "s1"), "service-cloud:pole");
    assert_string_equal(route(x, &x->agent2, cmd, "pole-2", FHUB, NULL), "drop:pole!misrouted");
    assert_string_equal(route(x, &x->agent2, cmd, "pole-2", LOCAL, NULL), "upstream");
    /* Pending on s2: dropped with a reason where it is noticed. */
    set_where(&x->f, "pole", "s2", MODEL_WHERE_PENDING);
    assert_string_equal(route(x, &x->hub, cmd, "pole-2", FSITE, "s1"), "drop:pole!pending");
    assert_string_equal(route(x, &x->agent2, cmd, "pole-2", LOCAL, NULL), "drop:pole!pending");
    /* nb command to nb-1 (s1) from the cloud. */
    assert_string_equal(
        route(x, &x->hub, "ktwin.command.nb.updateairqualityindex", "nb-1", LOCAL, NULL),
        "downstream@s1");
    /* A command to an instance on no site runs in the cloud. */
    assert_string_equal(route(x, &x->hub, "ktwin.command.aq.reset", "aq-c", LOCAL, NULL),
                        "service-cloud:aq");
}

static void test_command_drops(void **state)
{
    fx *x = *state;
    assert_string_equal(route(x, &x->agent, "ktwin.command.pole.nosuch", "pole-1", LOCAL, NULL),
                        "drop:pole!unknown-command");
    assert_string_equal(route(x, &x->hub, "ktwin.command.pole.reset", "pole-1", LOCAL, NULL),
                        "drop:pole!unknown-command");
    assert_string_equal(
        route(x, &x->agent, "ktwin.command.noise.calibrate", "noise-1", LOCAL, NULL),
        "drop:noise!no-service");
    assert_string_equal(route(x, &x->agent, "ktwin.command.aq.reset", "pole-1", LOCAL, NULL),
                        "drop:aq!iface-mismatch");
}

/* ---- event-level drops ------------------------------------------------------------------------
 */

static void test_unknown_iface_and_instance(void **state)
{
    fx *x = *state;
    assert_string_equal(route(x, &x->agent, "ktwin.real.nope", "aq-1", LOCAL, NULL),
                        "drop:nope!unknown-iface");
    assert_string_equal(route(x, &x->hub, "ktwin.store.nope", "aq-1", FSITE, "s1"),
                        "drop:nope!unknown-iface");
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-9", LOCAL, NULL),
                        "drop:aq!unknown-instance");
    assert_string_equal(route(x, &x->hub, "ktwin.real.aq", "aq-9", LOCAL, NULL),
                        "drop:aq!unknown-instance");
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "pole-1", LOCAL, NULL),
                        "drop:aq!iface-mismatch");
    /* An agent that knows only its subgraph may defer unknown instances to the hub. */
    x->agent.flags = MODEL_ROUTE_F_UNKNOWN_UPSTREAM;
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-9", LOCAL, NULL), "upstream");
    assert_string_equal(route(x, &x->agent, "ktwin.real.aq", "aq-9", FHUB, NULL),
                        "drop:aq!unknown-instance");
    /* Unknown interfaces are still refused. */
    assert_string_equal(route(x, &x->agent, "ktwin.real.nope", "aq-9", LOCAL, NULL),
                        "drop:nope!unknown-iface");
}

/* ---- the output cap -------------------------------------------------------------------------- */

static void test_cap_reports_the_full_count(void **state)
{
    fx *x = *state;
    model_event ev;
    memset(&ev, 0, sizeof ev);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_REAL, "aq", NULL, NULL), KT_OK);
    ev.id = "i";
    ev.source = "aq-1";
    model_route_dest d[2];
    memset(d, 0x5a, sizeof d);
    size_t n = model_route(&x->agent, &ev, LOCAL, NULL, d, 1);
    assert_int_equal(n, 4);
    assert_int_equal(d[0].kind, MODEL_ROUTE_SERVICE_LOCAL);
    assert_int_equal((unsigned char)((unsigned char *)&d[1])[0], 0x5a); /* untouched */
    assert_int_equal(model_route(&x->agent, &ev, LOCAL, NULL, NULL, 0), 4);
}

/* The agent asks the placement only about its own site. */
static void test_agent_asks_only_about_its_site(void **state)
{
    fx *x = *state;
    x->f.where_calls = 0;
    (void)route(x, &x->agent, "ktwin.real.aq", "aq-2", LOCAL, NULL);
    (void)route(x, &x->agent2, "ktwin.real.aq", "aq-1", LOCAL, NULL);
    (void)route(x, &x->agent2, "ktwin.command.pole.updateairqualityindex", "pole-1", LOCAL, NULL);
    /* aq-2: aq at s1 asked; pole-2 is on s2, not asked. Others: nothing here. */
    assert_int_equal(x->f.where_calls, 1);
}

static void test_strings(void **state)
{
    (void)state;
    assert_string_equal(model_route_kind_str(MODEL_ROUTE_MQTT_VIRTUAL), "mqtt-virtual");
    assert_string_equal(model_route_kind_str((model_route_kind)99), "unknown");
    assert_string_equal(model_route_drop_str(MODEL_DROP_UNKNOWN_COMMAND), "unknown-command");
    assert_string_equal(model_route_drop_str((model_route_drop)99), "unknown");
}

/* ---- with the real placement engine ---------------------------------------------------------- */

static void test_with_model_placement(void **state)
{
    fx *x = *state;
    /* A second model with a policy: aq and pole on the edge, nb in the cloud. */
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(kt_buf_puts(&b, model_text), KT_OK);
    assert_int_equal(kt_buf_puts(&b, "---\napiVersion: edge.ktwin/v0\nkind: PlacementPolicy\n"
                                     "metadata: {name: pol}\nspec:\n  rules:\n"
                                     "  - name: edge\n    match: {interfaces: [aq, pole, dev]}\n"
                                     "    placement: edge\n"
                                     "  defaultPlacement: cloud\n"),
                     KT_OK);
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_load_buffer(m, "p.yaml", b.data, b.len, &diag, &err), KT_OK);
    (void)model_resolve(m, &diag);
    assert_int_equal(diag.n_errors, 0);
    model_diag_fini(&diag);
    model_placement_site sites[] = {
        { "s1", 1, MODEL_PLACEMENT_CPU_UNLIMITED, MODEL_PLACEMENT_MEMORY_UNLIMITED },
        { "s2", 1, MODEL_PLACEMENT_CPU_UNLIMITED, MODEL_PLACEMENT_MEMORY_UNLIMITED },
    };
    model_placement *p = NULL;
    assert_int_equal(model_placement_compute(&p, m, sites, 2, NULL, &err), KT_OK);
    model_route_table *t = model_route_table_new(m);
    model_route_env hub = { t, { NULL, NULL, NULL }, NULL, 0 };
    model_route_placement_from(&hub.placement, p);
    model_route_env agent = hub;
    agent.site = "s1";

    assert_string_equal(route(x, &agent, "ktwin.real.aq", "aq-1", LOCAL, NULL),
                        "service-local:aq,service-local:pole,latest:aq,upstream");
    assert_string_equal(route(x, &hub, "ktwin.real.aq", "aq-2", FSITE, "s1"),
                        "downstream@s2,store:aq");
    /* nb runs in the cloud: pole-1's real event goes up for nb-1's aggregation. */
    assert_string_equal(route(x, &agent, "ktwin.real.pole", "pole-1", LOCAL, NULL),
                        "service-local:pole,upstream");
    assert_string_equal(route(x, &hub, "ktwin.real.pole", "pole-1", FSITE, "s1"),
                        "service-cloud:nb");
    assert_string_equal(
        route(x, &hub, "ktwin.command.nb.updateairqualityindex", "nb-1", FSITE, "s1"),
        "service-cloud:nb");
    /* No decision for (aq, s-unknown): reads as cloud. */
    assert_int_equal(hub.placement.where("aq", "nowhere", hub.placement.user), MODEL_WHERE_CLOUD);
    assert_string_equal(hub.placement.instance_site("pole-2", hub.placement.user), "s2");

    model_route_table_free(t);
    model_placement_free(p);
    model_free(m);
    kt_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_table_lists_aggregators_with_a_service),
        T(test_real_agent_local_service_aggregator_and_persist),
        T(test_real_aggregator_on_another_site),
        T(test_real_aggregator_without_parent_uses_event_site),
        T(test_real_service_in_cloud),
        T(test_real_multi_level_aggregation_and_no_persist),
        T(test_real_data_only_is_no_route),
        T(test_real_pending),
        T(test_virtual_events),
        T(test_store_events),
        T(test_commands_local_and_remote),
        T(test_command_drops),
        T(test_unknown_iface_and_instance),
        T(test_cap_reports_the_full_count),
        T(test_agent_asks_only_about_its_site),
        T(test_strings),
        T(test_with_model_placement),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
