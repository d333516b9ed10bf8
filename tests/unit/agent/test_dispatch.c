/*
 * test_dispatch.c — agent/dispatch and agent/latest with a small model, a
 * fixed placement for site s1, a real plugin (dispatch_plugin.so), a real
 * outbox and a publish callback:
 *   - real event -> local plugin -> store event -> latest state + outbox;
 *     its virtual event -> the MQTT publish callback; its command for a
 *     local instance -> the local service; for a remote one -> the outbox;
 *   - aggregateData: a real pole event also goes to hood's service, which
 *     runs in the cloud -> the outbox;
 *   - a command from the hub for a local instance -> the local service;
 *   - unknown interface -> dropped and counted; a service emit loop is cut
 *     at max_depth and counted;
 *   - the store ops: upsert-merge, latest, list.
 *
 * Each test gets its own temporary directory (kept when KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "dispatch.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/mem.h"
#include "latest.h"
#include "outbox.h"
#include "svc/plugin.h"
#include "view.h"

#ifndef DISPATCH_PLUGIN_PATH
#error "DISPATCH_PLUGIN_PATH must name the test plugin"
#endif

/* ---- the model ------------------------------------------------------------------ */

#define SVC \
    ",\"service\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"s\",\"image\":\"x\"}]}}}"
#define IFACE(name, spec)                                                                        \
    "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInterface\",\"metadata\":{\"name\":\"" name \
    "\"},\"spec\":{" spec "}}"
#define INST(name, iface, site, rels)                                                            \
    "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"" name  \
    "\",\"labels\":{\"ktwin.io/site\":\"" site "\"}},\"spec\":{\"interface\":\"" iface "\"" rels \
    "}}"

static const struct {
    const char *kind, *name, *body;
} objects[] = {
    { AGENT_KIND_INTERFACE, "sensor",
      IFACE("sensor", "\"relationships\":[{\"name\":\"pole\",\"interface\":\"pole\"}]" SVC) },
    { AGENT_KIND_INTERFACE, "pole", IFACE("pole", "\"commands\":[{\"name\":\"alert\"}]" SVC) },
    { AGENT_KIND_INTERFACE, "hood",
      IFACE("hood",
            "\"relationships\":[{\"name\":\"poles\",\"interface\":\"pole\","
            "\"aggregateData\":true}]" SVC) },
    { AGENT_KIND_INSTANCE, "sensor-1",
      INST("sensor-1",
           "sensor",
           "s1",
           ",\"twinInstanceRelationships\":[{\"name\":\"pole\",\"interface\":\"pole\","
           "\"instance\":\"pole-1\"}]") },
    { AGENT_KIND_INSTANCE, "pole-1", INST("pole-1", "pole", "s1", "") },
    { AGENT_KIND_INSTANCE, "pole-2", INST("pole-2", "pole", "s2", "") },
    { AGENT_KIND_INSTANCE, "hood-1",
      INST("hood-1",
           "hood",
           "s1",
           ",\"twinInstanceRelationships\":[{\"name\":\"poles\",\"interface\":\"pole\","
           "\"instance\":\"pole-1\"}]") },
};

/* ---- fixture --------------------------------------------------------------------- */

typedef struct published {
    int n;
    char iface[64], instance[64], data[128];
} published;

typedef struct fixture {
    char dir[256];
    agent_cache *cache;
    agent_view *view;
    agent_outbox *outbox;
    agent_latest *latest;
    svc_plugin_host *host;
    agent_dispatch *d;
    kt_metrics *metrics;
    published pub;
} fixture;

static kt_status on_publish(const char *iface,
                            const char *instance,
                            const uint8_t *data,
                            size_t len,
                            kt_err *err,
                            void *user)
{
    (void)err;
    published *p = user;
    p->n++;
    snprintf(p->iface, sizeof p->iface, "%s", iface);
    snprintf(p->instance, sizeof p->instance, "%s", instance);
    snprintf(p->data, sizeof p->data, "%.*s", (int)len, (const char *)data);
    return KT_OK;
}

static void must(kt_status st, const kt_err *err)
{
    if (st != KT_OK) {
        fprintf(stderr, "error: %s: %s\n", kt_status_str(st), err->msg);
    }
    assert_int_equal(st, KT_OK);
}

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof f->dir, "%s/kt_test_dispatch.XXXXXX",
                   base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        kt_free(f);
        return -1;
    }
    char path[400];
    kt_err err = { 0 };
    snprintf(path, sizeof path, "%s/agent.db", f->dir);
    must(agent_cache_open(&f->cache, path, &err), &err);
    must(agent_cache_snapshot_begin(f->cache, 7, &err), &err);
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
        agent_cache_object o = {
            objects[i].kind, objects[i].name, objects[i].body, strlen(objects[i].body), 7, 0
        };
        must(agent_cache_snapshot_put(f->cache, &o, &err), &err);
    }
    must(agent_cache_snapshot_commit(f->cache, &err), &err);
    const agent_cache_placement pl[] = {
        { "hood", "cloud", NULL, "p/r", "test" },
        { "pole", "edge", "s1", "p/r", "test" },
        { "sensor", "edge", "s1", "p/r", "test" },
    };
    must(agent_cache_placement_apply(f->cache, 3, pl, 3, &err), &err);
    f->view = agent_view_new(f->cache);
    snprintf(path, sizeof path, "%s/outbox.db", f->dir);
    agent_outbox_opts oo = { .path = path };
    must(agent_outbox_open(&f->outbox, &oo, &err), &err);
    snprintf(path, sizeof path, "%s/latest.db", f->dir);
    must(agent_latest_open(&f->latest, path, NULL, &err), &err);
    agent_dispatch_opts dopts = {
        .site = "s1",
        .view = f->view,
        .cache = f->cache,
        .outbox = f->outbox,
        .latest = f->latest,
        .publish_virtual = on_publish,
        .publish_user = &f->pub,
        .max_depth = 4,
        .metrics = f->metrics = kt_metrics_new(),
    };
    must(agent_dispatch_new(&f->d, &dopts, &err), &err);
    svc_plugin_host_opts hopts = { .graph = agent_dispatch_graph_cb,
                                   .store = agent_dispatch_store_ops(f->d),
                                   .user = f->d };
    must(svc_plugin_host_new(&f->host, &hopts, &err), &err);
    must(svc_plugin_host_load(f->host, DISPATCH_PLUGIN_PATH, NULL, 0, NULL, &err), &err);
    agent_dispatch_set_services(f->d, f->host, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    agent_dispatch_free(f->d);
    kt_metrics_free(f->metrics);
    svc_plugin_host_free(f->host);
    agent_latest_free(f->latest);
    agent_outbox_free(f->outbox);
    agent_view_free(f->view);
    agent_cache_free(f->cache);
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        DIR *dir = opendir(f->dir);
        struct dirent *e;
        while (dir != NULL && (e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char p[600];
            (void)snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        if (dir != NULL) {
            closedir(dir);
        }
        rmdir(f->dir);
    }
    kt_free(f);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static kt_status send_event(fixture *f,
                            const char *type,
                            const char *source,
                            const char *data,
                            agent_dispatch_origin origin)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    kt_err err = { 0 };
    kt_status st = model_event_set_type(&ev, type, strlen(type), &err);
    if (st != KT_OK) {
        return st;
    }
    char id[MODEL_EVENT_ID_GEN_CAP];
    ev.id = model_event_id_new(id, sizeof id);
    ev.source = source;
    ev.time_ms = kt_clock_wall_ms();
    ev.data = data;
    ev.data_len = strlen(data);
    return agent_dispatch_event(f->d, &ev, origin, 0, &err);
}

typedef struct got {
    char data[256];
    int n;
} got;

static int on_record(const svc_record *r, void *user)
{
    got *g = user;
    g->n++;
    snprintf(g->data, sizeof g->data, "%.*s", (int)r->data_len, (const char *)r->data);
    return 0;
}

static const char *latest_of(fixture *f, const char *iface, const char *inst, got *g)
{
    memset(g, 0, sizeof *g);
    kt_err err = { 0 };
    if (agent_latest_get(f->latest, iface, inst, on_record, g, &err) != KT_OK) {
        return NULL;
    }
    return g->data;
}

typedef struct outbox_seen {
    int n;
    char types[16][96];
    char sources[16][64];
    uint32_t depths[16];
} outbox_seen;

static bool on_outbox(uint64_t seq, const sync_event *ev, void *user)
{
    (void)seq;
    outbox_seen *s = user;
    if (s->n < 16) {
        snprintf(s->types[s->n], sizeof s->types[0], "%s", ev->type);
        snprintf(s->sources[s->n], sizeof s->sources[0], "%s", ev->source);
        s->depths[s->n] = ev->depth;
    }
    s->n++;
    return true;
}

/* How many outbox events have this type and source; *depth (may be NULL): the last one's. */
static int outbox_has_depth(fixture *f, const char *type, const char *source, uint32_t *depth)
{
    outbox_seen s;
    memset(&s, 0, sizeof s);
    kt_err err = { 0 };
    must(agent_outbox_peek(f->outbox, 1, 1000, UINT64_MAX, on_outbox, &s, NULL, &err), &err);
    int found = 0;
    for (int i = 0; i < s.n && i < 16; i++) {
        if (strcmp(s.types[i], type) == 0 && strcmp(s.sources[i], source) == 0) {
            found++;
            if (depth != NULL) {
                *depth = s.depths[i];
            }
        }
    }
    return found;
}

static int outbox_has(fixture *f, const char *type, const char *source)
{
    return outbox_has_depth(f, type, source, NULL);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_real_event_runs_plugin_and_fans_out(void **state)
{
    fixture *f = *state;
    assert_int_equal(
        send_event(f, "ktwin.real.sensor", "sensor-1", "{\"v\":42}", AGENT_DISPATCH_DEVICE), KT_OK);
    got g;
    /* store event -> latest state and outbox */
    assert_non_null(latest_of(f, "sensor", "sensor-1", &g));
    assert_string_equal(g.data, "{\"v\":42}");
    assert_int_equal(outbox_has(f, "ktwin.store.sensor", "sensor-1"), 1);
    /* virtual -> MQTT publish callback */
    assert_int_equal(f->pub.n, 1);
    assert_string_equal(f->pub.iface, "sensor");
    assert_string_equal(f->pub.instance, "sensor-1");
    assert_string_equal(f->pub.data, "{\"led\":\"on\"}");
    /* command for the local pole-1 -> pole's plugin -> its store event */
    assert_non_null(latest_of(f, "pole", "pole-1", &g));
    assert_string_equal(g.data, "{\"alerted\":true}");
    assert_int_equal(outbox_has(f, "ktwin.command.pole.alert", "pole-1"), 0);
    /* command for pole-2 (site s2) -> outbox, not run here; with its loop depth (a service
     * emitted it while handling a device event: 1), which the hub carries on */
    uint32_t depth = 0;
    assert_int_equal(outbox_has_depth(f, "ktwin.command.pole.alert", "pole-2", &depth), 1);
    assert_int_equal(depth, 1);
    assert_int_equal(outbox_has_depth(f, "ktwin.real.sensor", "sensor-1", &depth), 0);
    assert_null(latest_of(f, "pole", "pole-2", &g));
    agent_dispatch_stats s;
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.local_plugin, 2); /* sensor, then pole's command */
    /* one service latency observation per local service call, by interface */
    kt_metric *lat = kt_metrics_find(f->metrics, "ktwin_agent_service_latency_seconds",
                                     (const char *[]){ "iface", "sensor", NULL });
    assert_int_equal(kt_metrics_hist_count(lat), 1);
    assert_true(kt_metrics_hist_sum(lat) >= 0 && kt_metrics_hist_sum(lat) < 60);
    lat = kt_metrics_find(f->metrics, "ktwin_agent_service_latency_seconds",
                          (const char *[]){ "iface", "pole", NULL });
    assert_int_equal(kt_metrics_hist_count(lat), 1);
    assert_int_equal(s.virtual_out, 1);
    assert_int_equal(s.latest, 2);
    assert_int_equal(s.dropped, 0);
    kt_err err = { 0 };
    must(agent_latest_flush(f->latest, &err), &err);
    assert_int_equal(agent_latest_count(f->latest), 2);
}

static void test_aggregate_data_goes_to_aggregator(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_event(f, "ktwin.real.pole", "pole-1", "{\"x\":1}", AGENT_DISPATCH_DEVICE),
                     KT_OK);
    got g;
    /* pole's own service ran here */
    assert_non_null(latest_of(f, "pole", "pole-1", &g));
    assert_string_equal(g.data, "{\"seen\":true}");
    /* hood aggregates pole's real events; hood runs in the cloud: the real event goes up once */
    assert_int_equal(outbox_has(f, "ktwin.real.pole", "pole-1"), 1);
}

static void test_command_from_hub_runs_local_service(void **state)
{
    fixture *f = *state;
    sync_event se = { .id = "down-1",
                      .type = "ktwin.command.pole.alert",
                      .source = "pole-1",
                      .time_ms = kt_clock_wall_ms(),
                      .data = (const uint8_t *)"{}",
                      .data_len = 2 };
    kt_err err = { 0 };
    must(agent_dispatch_down_event(f->d, &se, &err), &err);
    got g;
    assert_non_null(latest_of(f, "pole", "pole-1", &g));
    assert_string_equal(g.data, "{\"alerted\":true}");
    /* a command from the hub for an instance not served here is never bounced back up */
    se.id = "down-2";
    se.source = "pole-2";
    must(agent_dispatch_down_event(f->d, &se, &err), &err);
    assert_int_equal(outbox_has(f, "ktwin.command.pole.alert", "pole-2"), 0);
    assert_int_equal(agent_dispatch_dropped(f->d, "misrouted"), 1);
    /* the hub's loop depth holds here: at max_depth (4) the service runs, past it not */
    agent_dispatch_stats s0;
    agent_dispatch_stats_get(f->d, &s0);
    se.id = "down-3";
    se.source = "pole-1";
    se.depth = 4;
    must(agent_dispatch_down_event(f->d, &se, &err), &err);
    se.id = "down-4";
    se.depth = 5;
    must(agent_dispatch_down_event(f->d, &se, &err), &err);
    agent_dispatch_stats s1;
    agent_dispatch_stats_get(f->d, &s1);
    assert_int_equal(s1.local_plugin - s0.local_plugin, 1);
    /* dropped: down-4, and the store event the depth-4 run emitted (depth 5) */
    assert_int_equal(agent_dispatch_dropped(f->d, "depth"), 2);
}

static void test_unknown_interface_is_dropped_and_counted(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_event(f, "ktwin.real.nosuch", "x-1", "{}", AGENT_DISPATCH_INGRESS),
                     KT_OK);
    assert_int_equal(agent_dispatch_dropped(f->d, "unknown-iface"), 1);
    agent_dispatch_stats s;
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.local_plugin, 0);
    assert_int_equal(agent_outbox_events(f->outbox), 0);
}

static void test_service_loop_is_cut_at_max_depth(void **state)
{
    fixture *f = *state;
    assert_int_equal(
        send_event(f, "ktwin.real.sensor", "sensor-1", "{\"loop\":true}", AGENT_DISPATCH_DEVICE),
        KT_OK);
    assert_int_equal(agent_dispatch_dropped(f->d, "depth"), 1);
    agent_dispatch_stats s;
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.local_plugin, 5); /* depths 0..4 */
}

static void test_store_ops_upsert_merge(void **state)
{
    fixture *f = *state;
    const svc_store_ops *ops = agent_dispatch_store_ops(f->d);
    kt_err err = { 0 };
    svc_record r = { .iface = "sensor",
                     .instance = "sensor-1",
                     .id = "e1",
                     .type = "ktwin.store.sensor",
                     .source = "sensor-1",
                     .data = (const uint8_t *)"{\"a\":1,\"o\":{\"x\":1}}",
                     .data_len = 19 };
    must(ops->put(ops->user, &r, &err), &err);
    r.id = "e2";
    r.data = (const uint8_t *)"{\"b\":2,\"o\":{\"y\":2}}";
    r.data_len = 19;
    must(ops->put(ops->user, &r, &err), &err);
    got g;
    memset(&g, 0, sizeof g);
    must(ops->latest(ops->user, "sensor", "sensor-1", on_record, &g, &err), &err);
    assert_string_equal(g.data, "{\"a\":1,\"o\":{\"x\":1,\"y\":2},\"b\":2}");
    /* both store events went to the outbox unmerged (the hub merges too) */
    assert_int_equal(outbox_has(f, "ktwin.store.sensor", "sensor-1"), 2);
    /* not a JSON object: refused, nothing stored */
    r.data = (const uint8_t *)"[1]";
    r.data_len = 3;
    kt_err e2 = { 0 };
    assert_int_equal(ops->put(ops->user, &r, &e2), KT_EINVAL);
    assert_int_equal(agent_outbox_events(f->outbox), 2);
    /* unknown instance */
    kt_err e3 = { 0 };
    assert_int_equal(ops->latest(ops->user, "sensor", "nope", on_record, &g, &e3), KT_ENOTFOUND);
    /* list: one record per instance */
    svc_query q = { .iface = "sensor", .limit = 10 };
    svc_page page;
    memset(&g, 0, sizeof g);
    must(ops->list(ops->user, &q, on_record, &g, &page, &err), &err);
    assert_int_equal(page.n, 1);
    assert_false(page.more);
    assert_int_equal(g.n, 1);
}

static void test_latest_persists_across_reopen(void **state)
{
    fixture *f = *state;
    assert_int_equal(
        send_event(f, "ktwin.store.sensor", "sensor-1", "{\"k\":\"v\"}", AGENT_DISPATCH_INGRESS),
        KT_OK);
    kt_err err = { 0 };
    must(agent_latest_flush(f->latest, &err), &err);
    agent_latest *other = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/latest.db", f->dir);
    must(agent_latest_open(&other, path, NULL, &err), &err);
    got g;
    memset(&g, 0, sizeof g);
    must(agent_latest_get(other, "sensor", "sensor-1", on_record, &g, &err), &err);
    assert_string_equal(g.data, "{\"k\":\"v\"}");
    agent_latest_free(other);
}

/* put after get of the same instance merges over the remembered document; other orders read the
 * row. */
static void put_data(agent_latest *l, const char *inst, const char *data)
{
    svc_record r = { .iface = "sensor",
                     .instance = inst,
                     .id = "e1",
                     .type = "ktwin.store.sensor",
                     .source = inst,
                     .time_ms = 1,
                     .data = (const uint8_t *)data,
                     .data_len = strlen(data) };
    kt_err err = { 0 };
    must(agent_latest_put(l, &r, &err), &err);
}

static void test_latest_put_merges_with_and_without_a_prior_get(void **state)
{
    fixture *f = *state;
    got g;
    kt_err err = { 0 };
    assert_null(latest_of(f, "sensor", "s-1", &g)); /* absent, remembered as such */
    put_data(f->latest, "s-1", "{\"a\":1,\"b\":1}");
    assert_string_equal(latest_of(f, "sensor", "s-1", &g), "{\"a\":1,\"b\":1}");
    put_data(f->latest, "s-1", "{\"b\":2}"); /* after a get */
    put_data(f->latest, "s-1", "{\"c\":3}"); /* after a put */
    put_data(f->latest, "s-2", "{\"x\":0}");
    put_data(f->latest, "s-1", "{\"d\":4}"); /* another instance in between: from the row */
    assert_string_equal(latest_of(f, "sensor", "s-2", &g), "{\"x\":0}");
    assert_string_equal(latest_of(f, "sensor", "s-1", &g), "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}");
    must(agent_latest_flush(f->latest, &err), &err);
    agent_latest *other = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/latest.db", f->dir);
    must(agent_latest_open(&other, path, NULL, &err), &err);
    memset(&g, 0, sizeof g);
    must(agent_latest_get(other, "sensor", "s-1", on_record, &g, &err), &err);
    assert_string_equal(g.data, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}");
    agent_latest_free(other);
}

/* agent-rss: the latest state's page cache stays bounded with more states than SQLite's
 * default cache (2000 KiB) would hold. */
static void test_latest_page_cache_is_bounded(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    static char data[1024];
    memset(data, ' ', sizeof data);
    memcpy(data, "{\"v\":\"", 6);
    memcpy(data + sizeof data - 3, "\"}", 3); /* NUL-terminated: put_data takes strlen */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 4000; i++) { /* ~4 MB of states, each written twice */
            char inst[32];
            snprintf(inst, sizeof inst, "s-%d", i);
            put_data(f->latest, inst, data);
            if (i % 500 == 499) {
                must(agent_latest_flush(f->latest, &err), &err);
            }
        }
    }
    must(agent_latest_flush(f->latest, &err), &err);
    assert_int_equal(agent_latest_count(f->latest), 4000);
    assert_true(agent_latest_cache_bytes(f->latest) > 0);
    assert_true(agent_latest_cache_bytes(f->latest) <= 700u * 1024u);
}

static void test_mqtt_callback_joins_the_drain_transaction(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    must(agent_outbox_begin(f->outbox, &err), &err);
    const char payload[] = "{\"v\":7}";
    agent_mqtt_event mev = { .journal_id = 99,
                             .recv_wall_ms = 1700000000000ull,
                             .iface = "sensor",
                             .instance = "sensor-1",
                             .topic = "ktwin/real/sensor/sensor-1",
                             .payload = (const uint8_t *)payload,
                             .payload_len = sizeof payload - 1 };
    assert_int_equal(agent_dispatch_mqtt_cb(&mev, f->outbox, f->d), KT_OK);
    /* inside the drain's transaction: rolled back with it */
    agent_outbox_rollback(f->outbox);
    assert_int_equal(agent_outbox_events(f->outbox), 0);
    /* again, committed this time */
    must(agent_outbox_begin(f->outbox, &err), &err);
    assert_int_equal(agent_dispatch_mqtt_cb(&mev, f->outbox, f->d), KT_OK);
    must(agent_outbox_commit(f->outbox, &err), &err);
    assert_int_equal(outbox_has(f, "ktwin.store.sensor", "sensor-1"), 1);
    got g;
    assert_non_null(latest_of(f, "sensor", "sensor-1", &g));
    assert_string_equal(g.data, "{\"v\":7}");
    /* a topic that is not a device topic is refused */
    mev.topic = "ktwin/real/sensor";
    assert_int_equal(agent_dispatch_mqtt_cb(&mev, f->outbox, f->d), KT_EINVAL);
    assert_int_equal(agent_dispatch_dropped(f->d, "invalid"), 1);
}

static void test_remote_and_pending_placements(void **state)
{
    fixture *f = *state;
    /* pole-2 lives on site s2: its real event goes up, pole's service does not run here */
    assert_int_equal(send_event(f, "ktwin.real.pole", "pole-2", "{}", AGENT_DISPATCH_INGRESS),
                     KT_OK);
    assert_int_equal(outbox_has(f, "ktwin.real.pole", "pole-2"), 1);
    agent_dispatch_stats s;
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.local_plugin, 0);
    /* sensor becomes PENDING here: its events are dropped and counted, not sent up */
    const agent_cache_placement pl[] = {
        { "hood", "cloud", NULL, "p/r", "test" },
        { "pole", "edge", "s1", "p/r", "test" },
        { "sensor", "pending", "s1", "p/r", "no room" },
    };
    kt_err err = { 0 };
    must(agent_cache_placement_apply(f->cache, 4, pl, 3, &err), &err);
    assert_int_equal(send_event(f, "ktwin.real.sensor", "sensor-1", "{}", AGENT_DISPATCH_DEVICE),
                     KT_OK);
    assert_int_equal(agent_dispatch_dropped(f->d, "pending"), 1);
    assert_int_equal(outbox_has(f, "ktwin.real.sensor", "sensor-1"), 0);
    /* an instance outside the cached subgraph goes up (the hub knows it) */
    assert_int_equal(
        send_event(f, "ktwin.store.pole", "pole-99", "{\"a\":1}", AGENT_DISPATCH_INGRESS), KT_OK);
    assert_int_equal(outbox_has(f, "ktwin.store.pole", "pole-99"), 1);
}

/* Instance sites follow the model: with every instance on this site (the dispatcher then keeps
 * no per-instance list, agent-rss), pole-2's real event runs pole's service here. */
static void test_instance_sites_follow_the_model(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_event(f, "ktwin.real.pole", "pole-2", "{}", AGENT_DISPATCH_INGRESS),
                     KT_OK);
    assert_int_equal(outbox_has(f, "ktwin.real.pole", "pole-2"), 1); /* s2: up */
    agent_dispatch_stats s;
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.local_plugin, 0);
    agent_cache_object moved = { .kind = AGENT_KIND_INSTANCE,
                                 .name = "pole-2",
                                 .body = INST("pole-2", "pole", "s1", ""),
                                 .revision = 8 };
    moved.body_len = strlen(moved.body);
    kt_err err = { 0 };
    must(agent_cache_delta_apply(f->cache, 7, 8, &moved, 1, &err), &err);
    assert_int_equal(
        send_event(f, "ktwin.real.pole", "pole-2", "{\"n\":2}", AGENT_DISPATCH_INGRESS), KT_OK);
    agent_dispatch_stats_get(f->d, &s);
    assert_int_equal(s.local_plugin, 1); /* now here: pole's service ran */
    /* still nothing here for an instance outside the subgraph */
    assert_int_equal(
        send_event(f, "ktwin.store.pole", "pole-99", "{\"a\":1}", AGENT_DISPATCH_INGRESS), KT_OK);
    assert_int_equal(outbox_has(f, "ktwin.store.pole", "pole-99"), 1);
}

static void test_ingest_interfaces_lists_the_model(void **state)
{
    fixture *f = *state;
    char **names = NULL;
    size_t n = 0;
    kt_err err = { 0 };
    must(agent_dispatch_ingest_interfaces(f->d, &names, &n, &err), &err);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "hood");
    assert_string_equal(names[1], "pole");
    assert_string_equal(names[2], "sensor");
    agent_dispatch_names_free(names, n);
}

static void test_down_apply_records_the_seq_with_its_effects(void **state)
{
    fixture *f = *state;
    assert_int_equal(agent_dispatch_down_applied_seq(f->d), 0);
    const sync_event evs[] = {
        { .id = "d1",
          .type = "ktwin.command.pole.alert",
          .source = "pole-1",
          .data = (const uint8_t *)"{}",
          .data_len = 2 },
        { .id = "d2", .type = "not-a-type", .source = "pole-1" },
        { .id = "d3",
          .type = "ktwin.virtual.sensor",
          .source = "sensor-1",
          .data = (const uint8_t *)"{\"led\":\"off\"}",
          .data_len = 13 },
    };
    kt_err err = { 0 };
    must(agent_dispatch_down_apply(f->d, 1, evs, 3, &err), &err);
    assert_int_equal(agent_dispatch_down_applied_seq(f->d), 3);
    got g;
    assert_non_null(latest_of(f, "pole", "pole-1", &g));
    assert_string_equal(g.data, "{\"alerted\":true}");
    assert_int_equal(f->pub.n, 1);
    assert_string_equal(f->pub.data, "{\"led\":\"off\"}");
    assert_int_equal(agent_dispatch_dropped(f->d, "invalid"), 1);
    /* a gap or a repeat is refused and changes nothing */
    kt_err e2 = { 0 };
    assert_int_equal(agent_dispatch_down_apply(f->d, 3, evs, 1, &e2), KT_EINVAL);
    assert_int_equal(agent_dispatch_down_applied_seq(f->d), 3);
    /* the seq is kept in the outbox file */
    agent_outbox_free(f->outbox);
    f->outbox = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/outbox.db", f->dir);
    agent_outbox_opts oo = { .path = path };
    must(agent_outbox_open(&f->outbox, &oo, &err), &err);
    assert_int_equal(agent_outbox_meta_get(f->outbox, AGENT_DISPATCH_META_DOWN), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_event_runs_plugin_and_fans_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_put_merges_with_and_without_a_prior_get, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_data_goes_to_aggregator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_from_hub_runs_local_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_interface_is_dropped_and_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_loop_is_cut_at_max_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ops_upsert_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mqtt_callback_joins_the_drain_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_remote_and_pending_placements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_interfaces_lists_the_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_sites_follow_the_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_page_cache_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_apply_records_the_seq_with_its_effects, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
