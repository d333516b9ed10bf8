/*
 * test_gindex.c — libktwin's pieces below the HTTP server: KTWIN twin-graph
 * JSON indexed by ktwin_gindex_build and read through the plugin host
 * (svc_plugin_host_add, the path the standalone server takes) by a plugin
 * linked into this test, which calls every graph function of ktwin.h
 * (including the inline helpers ktwin_graph_relationship_to,
 * ktwin_emit_command_rel and ktwin_event_is); bad graph JSON is refused
 * with the JSON path; the response-header reader keeps ce-id / ce-time.
 *
 * Thread: the test's. Ownership: each test frees what it builds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "gindex.h"
#include "kt/mem.h"
#include "ktwin.h"
#include "remote.h"
#include "svc/plugin.h"

/* Two neighborhoods, three poles (two in nb-1), an air-quality sensor on pole-1. */
static const char GRAPH[] =
    "{\"twinInstances\":["
    "{\"name\":\"nb-1\",\"interface\":\"s4city-city-neighborhood\"},"
    "{\"name\":\"nb-2\",\"interface\":\"s4city-city-neighborhood\"},"
    "{\"name\":\"pole-1\",\"interface\":\"city-pole\",\"relationships\":["
    "{\"name\":\"refNeighborhood\",\"interface\":\"s4city-city-neighborhood\",\"instance\":\"nb-1\"}]},"
    "{\"name\":\"pole-2\",\"interface\":\"city-pole\",\"relationships\":["
    "{\"name\":\"refNeighborhood\",\"interface\":\"s4city-city-neighborhood\",\"instance\":\"nb-1\"}]},"
    "{\"name\":\"pole-3\",\"interface\":\"city-pole\",\"relationships\":["
    "{\"name\":\"refNeighborhood\",\"interface\":\"s4city-city-neighborhood\",\"instance\":\"nb-2\"}]},"
    "{\"name\":\"aq-1\",\"interface\":\"ngsi-ld-city-airqualityobserved\",\"relationships\":["
    "{\"name\":\"refDevice\",\"interface\":\"ngsi-ld-city-device\",\"instance\":\"dev-missing\"},"
    "{\"name\":\"citypole\",\"interface\":\"city-pole\",\"instance\":\"pole-1\"}]}"
    "]}";

/* ---- a plugin linked into the test: records what the graph functions answer */

typedef struct seen {
    char text[2048];
    size_t len;
} seen;

static seen g_seen;

static void note(const char *fmt, const char *a, const char *b)
{
    int n = snprintf(g_seen.text + g_seen.len, sizeof(g_seen.text) - g_seen.len, fmt, a, b);
    if (n > 0 && g_seen.len + (size_t)n < sizeof(g_seen.text)) {
        g_seen.len += (size_t)n;
    }
}

static int probe_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    ktwin_rel rels[8];
    ktwin_rel one;
    const char *names[4] = { "-", "-", "-", "-" };
    const char *iface = NULL;
    size_t total = 0;
    size_t i;
    char num[32];
    (void)state;
    /* outgoing + incoming edges of the event's instance */
    assert_int_equal(
        ktwin_graph_relationships(ctx, ev->instance, KTWIN_REL_OUT | KTWIN_REL_IN, rels, 8, &total),
        KTWIN_OK);
    for (i = 0; i < total && i < 8; i++) {
        note(rels[i].incoming ? "in:%s<-%s;" : "out:%s->%s;", rels[i].name, rels[i].instance);
    }
    /* instances of the event's interface, second page of size 1 */
    assert_int_equal(ktwin_graph_instances(ctx, ev->iface, 1, names, 1, &total), KTWIN_OK);
    snprintf(num, sizeof num, "%zu", total);
    note("count:%s second:%s;", num, names[0]);
    assert_int_equal(ktwin_graph_instance_iface(ctx, ev->instance, &iface), KTWIN_OK);
    note("iface:%s%s;", iface, "");
    if (ktwin_graph_relationship_to(ctx, ev->instance, "city-pole", &one) == KTWIN_OK) {
        note("to-pole:%s/%s;", one.name, one.instance);
    }
    assert_int_equal(ktwin_graph_relationship_to(ctx, ev->instance, "nosuch-iface", &one),
                     KTWIN_ENOTFOUND);
    assert_int_equal(ktwin_graph_relationships(ctx, "nobody", KTWIN_REL_OUT, rels, 8, &total),
                     KTWIN_ENOTFOUND);
    assert_int_equal(ktwin_graph_instances(ctx, "nosuch-iface", 0, names, 4, &total),
                     KTWIN_ENOTFOUND);
    if (ktwin_event_is(ev, KTWIN_EVENT_REAL, "ngsi-ld-city-airqualityobserved", NULL)) {
        /* Go's PublishCommand(cmd, payload, "citypole", instance, graph) */
        assert_int_equal(
            ktwin_emit_command_rel(ctx, ev->instance, "citypole", "Alarm", "{\"level\":3}", 11),
            KTWIN_OK);
        assert_int_equal(ktwin_emit_command_rel(ctx, ev->instance, "nosuch", "Alarm", NULL, 0),
                         KTWIN_ENOTFOUND);
    }
    return KTWIN_OK;
}

static const char *const probe_ifaces[] = { "ngsi-ld-city-airqualityobserved", "city-pole", NULL };
static const ktwin_plugin probe_plugin = {
    .struct_size = (uint32_t)sizeof(ktwin_plugin),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .name = "probe",
    .interfaces = probe_ifaces,
    .handle = probe_handle,
};

typedef struct emitted {
    char type[MODEL_EVENT_TYPE_CAP];
    char source[MODEL_NAME_MAX + 1];
    char data[64];
    size_t n;
} emitted;

static const model *graph_cb(void *user)
{
    return user;
}

static kt_status sink(const model_event *ev, void *user)
{
    emitted *e = user;
    model_event_type_str(ev, e->type, sizeof e->type);
    kt_strlcpy(e->source, ev->source, sizeof e->source);
    snprintf(e->data, sizeof e->data, "%.*s", (int)ev->data_len, (const char *)ev->data);
    e->n++;
    return KT_OK;
}

static void run_probe(model *m, const char *iface, const char *instance, emitted *out)
{
    svc_plugin_host *h = NULL;
    kt_err err = { 0 };
    model_event ev;
    memset(&g_seen, 0, sizeof g_seen);
    memset(out, 0, sizeof(*out));
    assert_int_equal(
        svc_plugin_host_new(&h, &(svc_plugin_host_opts){ .graph = graph_cb, .user = m }, &err),
        KT_OK);
    assert_int_equal(svc_plugin_host_add(h, &probe_plugin, "probe", NULL, 0, "{}", &err), KT_OK);
    memset(&ev, 0, sizeof ev);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_REAL, iface, NULL, &err), KT_OK);
    ev.id = "e-1";
    ev.source = instance;
    ev.data = "{}";
    ev.data_len = 2;
    assert_int_equal(svc_plugin_host_dispatch(h, "city-pole", &ev, sink, out, &err), KT_OK);
    svc_plugin_host_free(h);
}

static void test_graph_index_answers_the_plugin(void **state)
{
    model *m = NULL;
    kt_err err = { 0 };
    emitted out;
    (void)state;
    assert_int_equal(ktwin_gindex_build(&m, "test", GRAPH, sizeof(GRAPH) - 1, &err), KT_OK);
    assert_non_null(m);
    assert_int_equal(model_n_instances(m), 6);

    /* pole-1: one outgoing edge, one incoming (from aq-1); 3 poles, the second is pole-2 */
    run_probe(m, "city-pole", "pole-1", &out);
    assert_string_equal(g_seen.text, "out:refNeighborhood->nb-1;in:citypole<-aq-1;"
                                     "count:3 second:pole-2;iface:city-pole;");
    assert_int_equal(out.n, 0);

    /* aq-1: an edge to a device outside the graph is still listed; relationship_to finds the
       pole; the command goes to pole-1 as ktwin.command.city-pole.alarm */
    run_probe(m, "ngsi-ld-city-airqualityobserved", "aq-1", &out);
    assert_string_equal(g_seen.text, "out:refDevice->dev-missing;out:citypole->pole-1;"
                                     "count:1 second:-;iface:ngsi-ld-city-airqualityobserved;"
                                     "to-pole:citypole/pole-1;");
    assert_int_equal(out.n, 1);
    assert_string_equal(out.type, "ktwin.command.city-pole.alarm");
    assert_string_equal(out.source, "pole-1");
    assert_string_equal(out.data, "{\"level\":3}");
    model_free(m);
}

static void test_incoming_edges_of_a_neighborhood(void **state)
{
    model *m = NULL;
    kt_err err = { 0 };
    emitted out;
    (void)state;
    assert_int_equal(ktwin_gindex_build(&m, "test", GRAPH, sizeof(GRAPH) - 1, &err), KT_OK);
    run_probe(m, "s4city-city-neighborhood", "nb-1", &out);
    assert_string_equal(g_seen.text, "in:refNeighborhood<-pole-1;in:refNeighborhood<-pole-2;"
                                     "count:2 second:nb-2;iface:s4city-city-neighborhood;");
    model_free(m);
}

static void test_empty_graph_and_errors(void **state)
{
    model *m = NULL;
    kt_err err = { 0 };
    (void)state;
    /* KTWIN's graph cache answers {} on a miss: an empty graph */
    assert_int_equal(ktwin_gindex_build(&m, "u", "{}", 2, &err), KT_OK);
    assert_int_equal(model_n_instances(m), 0);
    model_free(m);
    m = NULL;

    assert_int_equal(ktwin_gindex_build(&m, "http://x/g", "not json", 8, &err), KT_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "http://x/g"));
    assert_non_null(strstr(err.msg, "JSON"));

    static const char wrong[] = "{\"twinInstances\":[{\"name\":\"a\",\"interface\":\"x\"},"
                                "{\"name\":7,\"interface\":\"x\"}]}";
    kt_err e2 = { 0 };
    assert_int_equal(ktwin_gindex_build(&m, "g", wrong, sizeof(wrong) - 1, &e2), KT_EINVAL);
    assert_null(m);
    assert_non_null(strstr(e2.msg, "twinInstances[1]"));

    kt_err e3 = { 0 };
    assert_int_equal(ktwin_gindex_build(&m, "g", "{}", KTWIN_GINDEX_MAX_BYTES + 1, &e3),
                     KT_ETOOBIG);
    assert_null(m);
}

/* Interface names with YAML-special characters still index (quoted in the bare interface). */
static void test_odd_interface_names(void **state)
{
    model *m = NULL;
    kt_err err = { 0 };
    static const char g[] = "{\"twinInstances\":[{\"name\":\"i-1\",\"interface\":\"it's:{x}\"},"
                            "{\"name\":\"i-2\",\"interface\":\"it's:{x}\"}]}";
    (void)state;
    assert_int_equal(ktwin_gindex_build(&m, "g", g, sizeof(g) - 1, &err), KT_OK);
    const model_iface *f = model_iface_get(m, "it's:{x}");
    assert_non_null(f);
    assert_int_equal(f->n_instances, 2);
    model_free(m);
}

static void test_event_is(void **state)
{
    ktwin_event ev;
    (void)state;
    memset(&ev, 0, sizeof ev);
    ev.kind = KTWIN_EVENT_COMMAND;
    ev.iface = "city-pole";
    ev.command = "alarm";
    assert_true(ktwin_event_is(&ev, KTWIN_EVENT_COMMAND, "city-pole", "Alarm"));
    assert_true(ktwin_event_is(&ev, KTWIN_EVENT_COMMAND, NULL, NULL));
    assert_false(ktwin_event_is(&ev, KTWIN_EVENT_COMMAND, "city-pole", "alarms"));
    assert_false(ktwin_event_is(&ev, KTWIN_EVENT_REAL, "city-pole", NULL));
    assert_false(ktwin_event_is(&ev, KTWIN_EVENT_COMMAND, "city-pol", NULL));
    assert_false(ktwin_event_is(NULL, KTWIN_EVENT_COMMAND, NULL, NULL));
}

static void test_header_lines(void **state)
{
    ktwin_remote *r = NULL;
    ktwin_remote_hdrs h;
    kt_err err = { 0 };
    (void)state;
    memset(&h, 0, sizeof h);
    ktwin_remote_header_parse(&h, "CE-ID:  abc-1 \r\n", 16);
    ktwin_remote_header_parse(&h, "ce-time: 2024-06-22T00:50:00Z\r\n", 31);
    ktwin_remote_header_parse(&h, "ce-idx: no\r\n", 12);
    ktwin_remote_header_parse(&h, "ce-id", 5);
    assert_string_equal(h.ce_id, "abc-1");
    assert_string_equal(h.ce_time, "2024-06-22T00:50:00Z");
    /* a new status line (e.g. after 100 Continue) forgets the previous response's headers */
    ktwin_remote_header_parse(&h, "HTTP/1.1 200 OK\r\n", 17);
    assert_string_equal(h.ce_id, "");
    assert_string_equal(h.ce_time, "");

    /* a GET to a closed port fails with the URL in the message */
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    assert_int_equal(ktwin_remote_new(&r, 0, 0, &err), KT_OK);
    ktwin_remote_reply rep;
    kt_err e2 = { 0 };
    assert_int_equal(ktwin_remote_get(r, "http://127.0.0.1:1/x", &rep, &e2), KT_EIO);
    assert_non_null(strstr(e2.msg, "http://127.0.0.1:1/x"));
    ktwin_remote_free(r);
    curl_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_index_answers_the_plugin),
        cmocka_unit_test(test_incoming_edges_of_a_neighborhood),
        cmocka_unit_test(test_empty_graph_and_errors),
        cmocka_unit_test(test_odd_interface_names),
        cmocka_unit_test(test_event_is),
        cmocka_unit_test(test_header_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
