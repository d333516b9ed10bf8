/*
 * test_plugin.c — the plugin host (svc/plugin.h) with the SDK's example
 * plugin (sdk/examples/echo_plugin.c, built as a .so by the test build):
 * emitted store / virtual / command events reach the sink, graph and
 * latest-state reads work, failures discard emits, bad plugins are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kt/metrics.h"
#include "ktwin.h"
#include "svc/plugin.h"
#include "svc_fixture.h"

typedef struct fx {
    model *m;
    mem_store store;
    svc_store_ops ops;
    kt_metrics *reg;
    svc_plugin_host *h;
    fx_events out;
} fx;

static const model *graph_cb(void *user)
{
    return ((fx *)user)->m;
}

static kt_status sink(const model_event *ev, void *user)
{
    return fx_events_add(&((fx *)user)->out, ev);
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof(*f));
    kt_err err = { 0 };
    f->m = fx_model();
    assert_non_null(f->m);
    f->ops = mem_store_ops(&f->store);
    f->reg = kt_metrics_new();
    svc_plugin_host_opts o = { .metrics = f->reg, .graph = graph_cb, .store = &f->ops, .user = f };
    assert_int_equal(svc_plugin_host_new(&f->h, &o, &err), KT_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    svc_plugin_host_free(f->h);
    fx_events_clear(&f->out);
    mem_store_fini(&f->store);
    kt_metrics_free(f->reg);
    model_free(f->m);
    kt_free(f);
    return 0;
}

static void real_event(model_event *ev, const char *iface, const char *inst, const char *data)
{
    kt_err err = { 0 };
    memset(ev, 0, sizeof(*ev));
    assert_int_equal(model_event_set_class(ev, MODEL_EVENT_REAL, iface, NULL, &err), KT_OK);
    ev->id = "ev-1";
    ev->source = inst;
    ev->time = "2024-06-22T00:50:00Z";
    ev->time_ms = 1719017400000ull;
    ev->data = data;
    ev->data_len = strlen(data);
}

static void load_echo(fx *f)
{
    kt_err err = { 0 };
    const char *ifaces[] = { "city-pole", "hood" };
    assert_int_equal(
        svc_plugin_host_load(f->h, ECHO_PLUGIN, ifaces, 2, "{\"command\":\"Notify\"}", &err),
        KT_OK);
}

static double metric(fx *f, const char *name)
{
    const char *labels[] = { "plugin", "echo", NULL };
    return kt_metrics_value(kt_metrics_find(f->reg, name, labels));
}

static void data_is(const model_event *ev, const char *want)
{
    assert_int_equal(ev->data_len, strlen(want));
    assert_memory_equal(ev->data, want, ev->data_len);
}

static void test_real_event_emits_store_virtual_and_command(void **state)
{
    fx *f = *state;
    model_event ev;
    kt_err err = { 0 };
    char type[MODEL_EVENT_TYPE_CAP];
    load_echo(f);
    assert_true(svc_plugin_host_serves(f->h, "city-pole"));
    assert_true(svc_plugin_host_serves(f->h, "hood"));
    assert_false(svc_plugin_host_serves(f->h, "ngsi-ld-city-airqualityobserved"));
    assert_int_equal(svc_plugin_host_count(f->h), 1);

    real_event(&ev, "city-pole", "pole-1", "{\"powerState\":\"on\"}");
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_OK);
    assert_int_equal(f->out.n, 3);
    /* 1: the store event, with the graph's instance count of city-pole (2) */
    assert_int_equal(f->out.ev[0]->cls, MODEL_EVENT_STORE);
    assert_string_equal(model_event_type_str(f->out.ev[0], type, sizeof type),
                        "ktwin.store.city-pole");
    assert_string_equal(f->out.ev[0]->source, "pole-1");
    data_is(f->out.ev[0], "{\"seen\":1,\"peers\":2,\"last\":{\"powerState\":\"on\"}}");
    assert_true(f->out.ev[0]->id != NULL && f->out.ev[0]->id[0] != '\0');
    assert_true(f->out.ev[0]->time_ms > 0);
    assert_int_equal(model_event_check(f->out.ev[0], 0, &err), KT_OK);
    /* 2: virtual back to the device */
    assert_string_equal(model_event_type_str(f->out.ev[1], type, sizeof type),
                        "ktwin.virtual.city-pole");
    data_is(f->out.ev[1], "{\"ack\":1}");
    /* 3: a command along pole-1's relationship, lower-cased, source = target instance */
    assert_string_equal(model_event_type_str(f->out.ev[2], type, sizeof type),
                        "ktwin.command.hood.notify");
    assert_string_equal(f->out.ev[2]->source, "hood-1");
    data_is(f->out.ev[2], "{\"from\":\"pole-1\",\"rel\":\"refNeighborhood\"}");
    assert_true(strcmp(f->out.ev[0]->id, f->out.ev[1]->id) != 0);
    assert_int_equal(metric(f, "ktwin_svc_plugin_calls_total"), 1);
    assert_int_equal(metric(f, "ktwin_svc_plugin_emits_total"), 3);

    /* the store event persisted: the plugin reads it back through ktwin_latest */
    svc_record rec = { .iface = "city-pole",
                       .instance = "pole-1",
                       .id = f->out.ev[0]->id,
                       .type = "ktwin.store.city-pole",
                       .source = "pole-1",
                       .time_ms = 1,
                       .data = f->out.ev[0]->data,
                       .data_len = f->out.ev[0]->data_len };
    assert_int_equal(mem_put(&f->store, &rec, &err), KT_OK);
    fx_events_clear(&f->out);
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_OK);
    data_is(f->out.ev[0], "{\"seen\":2,\"peers\":2,\"last\":{\"powerState\":\"on\"}}");
    data_is(f->out.ev[1], "{\"ack\":2}");

    /* pole-2 has no relationships: no command */
    fx_events_clear(&f->out);
    real_event(&ev, "city-pole", "pole-2", "{}");
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_OK);
    assert_int_equal(f->out.n, 2);
}

static void test_command_event(void **state)
{
    fx *f = *state;
    model_event ev;
    kt_err err = { 0 };
    load_echo(f);
    memset(&ev, 0, sizeof ev);
    assert_int_equal(
        model_event_set_class(&ev, MODEL_EVENT_COMMAND, "hood", "UpdateAirQualityIndex", &err),
        KT_OK);
    ev.id = "c-1";
    ev.source = "hood-1";
    ev.data = "{\"aqiLevel\":\"MODERATE\"}";
    ev.data_len = strlen(ev.data);
    assert_int_equal(svc_plugin_host_dispatch(f->h, "hood", &ev, sink, f, &err), KT_OK);
    assert_int_equal(f->out.n, 1);
    assert_string_equal(f->out.ev[0]->iface, "hood");
    assert_string_equal(f->out.ev[0]->source, "hood-1");
    data_is(
        f->out.ev[0],
        "{\"lastCommand\":\"updateairqualityindex\",\"commandData\":{\"aqiLevel\":\"MODERATE\"},"
        "\"incoming\":1,\"firstIncomingIface\":\"city-pole\"}");
}

static void test_failures_discard_emits_and_keep_the_event(void **state)
{
    fx *f = *state;
    model_event ev;
    kt_err err = { 0 };
    load_echo(f);
    real_event(&ev, "city-pole", "pole-1", "{\"fail\":true}");
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_EDEP);
    assert_string_equal(err.dep, "plugin");
    assert_int_equal(err.dep_code, KTWIN_EFAIL);
    assert_int_equal(f->out.n, 0); /* the three emits before the failure are discarded */
    assert_int_equal(metric(f, "ktwin_svc_plugin_failures_total"), 1);
    assert_string_equal(ev.data,
                        "{\"fail\":true}"); /* untouched: the caller retries or dead-letters */

    kt_err_clear(&err);
    real_event(&ev, "city-pole", "pole-1", "{\"retry\":true}");
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_EAGAIN);
    assert_int_equal(f->out.n, 0);

    /* the sink's own refusal stops delivery and is returned */
    kt_err_clear(&err);
    real_event(&ev, "city-pole", "pole-1", "{}");
    f->out.answer = KT_EAGAIN;
    assert_int_equal(svc_plugin_host_dispatch(f->h, "city-pole", &ev, sink, f, &err), KT_EAGAIN);
    f->out.answer = KT_OK;

    kt_err_clear(&err);
    assert_int_equal(svc_plugin_host_dispatch(f->h, "nobody", &ev, sink, f, &err), KT_ENOTFOUND);
}

static void test_emit_cap(void **state)
{
    fx *f = *state;
    svc_plugin_host *h = NULL;
    model_event ev;
    kt_err err = { 0 };
    svc_plugin_host_opts o = { .graph = graph_cb, .store = &f->ops, .user = f, .max_emits = 2 };
    assert_int_equal(svc_plugin_host_new(&h, &o, &err), KT_OK);
    assert_int_equal(svc_plugin_host_load(h, ECHO_PLUGIN, NULL, 0, NULL, &err), KT_OK);
    assert_true(
        svc_plugin_host_serves(h, "ngsi-ld-city-airqualityobserved")); /* the plugin's own list */
    real_event(&ev, "city-pole", "pole-1", "{}");
    /* third emit (the command) is refused with KTWIN_ETOOBIG, which the plugin returns */
    assert_int_equal(svc_plugin_host_dispatch(h, "city-pole", &ev, sink, f, &err), KT_EDEP);
    assert_int_equal(err.dep_code, KTWIN_ETOOBIG);
    assert_int_equal(f->out.n, 0);
    svc_plugin_host_free(h);
}

static void test_bad_plugins_are_refused(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    const char *ifaces[] = { "city-pole" };
    assert_int_equal(svc_plugin_host_load(f->h, "/nonexistent/x.so", ifaces, 1, NULL, &err),
                     KT_EINVAL);
    assert_non_null(strstr(err.msg, "/nonexistent/x.so"));
    kt_err_clear(&err);
    assert_int_equal(svc_plugin_host_load(f->h, BAD_NOSYM_PLUGIN, ifaces, 1, NULL, &err),
                     KT_EINVAL);
    assert_non_null(strstr(err.msg, "no symbol ktwin_plugin_v1"));
    kt_err_clear(&err);
    assert_int_equal(svc_plugin_host_load(f->h, BAD_ABI_PLUGIN, ifaces, 1, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "ABI version 99"));
    kt_err_clear(&err);
    assert_int_equal(svc_plugin_host_load(f->h, ECHO_PLUGIN, ifaces, 1, "{\"refuse\":true}", &err),
                     KT_EINVAL);
    assert_non_null(strstr(err.msg, "init refused"));
    kt_err_clear(&err);
    const char *bad_name[] = { "a/b" };
    assert_int_equal(svc_plugin_host_load(f->h, ECHO_PLUGIN, bad_name, 1, NULL, &err), KT_EINVAL);
    assert_int_equal(svc_plugin_host_count(f->h), 0);
    assert_false(svc_plugin_host_serves(f->h, "city-pole"));
    /* one interface, one plugin */
    kt_err_clear(&err);
    load_echo(f);
    assert_int_equal(svc_plugin_host_load(f->h, ECHO_PLUGIN, ifaces, 1, NULL, &err), KT_ECONFLICT);
    assert_int_equal(svc_plugin_host_count(f->h), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_event_emits_store_virtual_and_command, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_command_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_discard_emits_and_keep_the_event, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_emit_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_plugins_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
