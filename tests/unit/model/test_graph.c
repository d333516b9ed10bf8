/*
 * test_graph.c — KTWIN's graph JSON (import, export, per-interface), instance
 * sets and subgraphs, on KTWIN's own nb001 twin graph and on small cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "model/graph.h"
#include "model/model.h"

#define TWIN_GRAPH KT_FIXTURES_DIR "/ktwin-smart-cities-services/golang/twin-graph.txt"

typedef struct graph_fixture {
    kt_buf text; /* twin-graph.txt as read */
    model *m;
    model_diag diag;
} graph_fixture;

static int setup_twin_graph(void **state)
{
    graph_fixture *f = kt_xcalloc(1, sizeof *f);
    kt_buf_init(&f->text, 16u * 1024u * 1024u);
    kt_err err = { 0 };
    if (kt_buf_read_file(&f->text, TWIN_GRAPH, &err) != KT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    f->m = model_new();
    model_diag_init(&f->diag);
    if (model_graph_from_json(f->m, "twin-graph.txt", f->text.data, f->text.len, &f->diag, &err) !=
        KT_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_twin_graph(void **state)
{
    graph_fixture *f = *state;
    model_diag_fini(&f->diag);
    model_free(f->m);
    kt_buf_fini(&f->text);
    kt_free(f);
    return 0;
}

static size_t count_iface(const model *m, const char *iface)
{
    size_t n = 0;
    for (size_t i = 0; i < model_n_instances(m); i++) {
        if (strcmp(model_instance_at(m, i)->iface_name, iface) == 0) {
            n++;
        }
    }
    return n;
}

/* ---- KTWIN's nb001 graph ---------------------------------------------------- */

static void test_ktwin_twin_graph_imports_with_counts_per_interface(void **state)
{
    graph_fixture *f = *state;
    if (f->diag.n > 0) {
        model_diag_print(&f->diag, stderr);
    }
    assert_int_equal(f->diag.n_errors, 0);
    assert_int_equal(f->diag.n_warnings, 0);
    assert_int_equal(model_n_instances(f->m), 2631);
    static const struct {
        const char *iface;
        size_t n;
    } want[] = {
        { "ngsi-ld-city-device", 1150 },
        { "ngsi-ld-city-parkingspot", 750 },
        { "ngsi-ld-city-streetlight", 100 },
        { "ngsi-ld-city-weatherobserved", 100 },
        { "ngsi-ld-city-airqualityobserved", 100 },
        { "city-pole", 100 },
        { "ngsi-ld-city-crowdflowobserved", 100 },
        { "ngsi-ld-city-trafficflowobserved", 100 },
        { "ngsi-ld-city-noiselevelobserved", 100 },
        { "ngsi-ld-city-onstreetparking", 10 },
        { "ngsi-ld-city-evchargingstation", 10 },
        { "ngsi-ld-city-offstreetparking", 5 },
        { "s4city-city-neighborhood", 5 },
        { "s4city-city-city", 1 },
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(count_iface(f->m, want[i].iface), want[i].n);
        total += want[i].n;
    }
    assert_int_equal(total, 2631);
    /* Relationships keep what the file says, glitches included. */
    const model_instance *pole = model_instance_get(f->m, "city-pole-nb001-p00007");
    assert_non_null(pole);
    assert_int_equal(pole->n_rels, 8);
    assert_string_equal(pole->rels[0].name, "refNeighborhood");
    assert_string_equal(pole->rels[0].target, "s4city-city-neighborhood-nb001");
}

static void test_export_is_byte_identical_to_ktwin_and_round_trips(void **state)
{
    graph_fixture *f = *state;
    kt_buf out;
    kt_buf_init(&out, 64u * 1024u * 1024u);
    assert_int_equal(model_graph_to_json(f->m, NULL, &out), KT_OK);
    /* Go's encoding/json wrote the original; same order, same escaping. */
    assert_int_equal(out.len, f->text.len);
    assert_memory_equal(out.data, f->text.data, out.len);

    model *m2 = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_graph_from_json(m2, "export.json", out.data, out.len, &diag, &err),
                     KT_OK);
    assert_int_equal(diag.n, 0);
    assert_int_equal(model_n_instances(m2), model_n_instances(f->m));
    for (size_t i = 0; i < model_n_instances(m2); i++) {
        const model_instance *a = model_instance_at(f->m, i);
        const model_instance *b = model_instance_at(m2, i);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->iface_name, b->iface_name);
        assert_int_equal(a->n_rels, b->n_rels);
        for (uint32_t r = 0; r < a->n_rels; r++) {
            assert_string_equal(a->rels[r].name, b->rels[r].name);
            assert_string_equal(a->rels[r].iface, b->rels[r].iface);
            assert_string_equal(a->rels[r].target, b->rels[r].target);
        }
    }
    kt_buf out2;
    kt_buf_init(&out2, 64u * 1024u * 1024u);
    assert_int_equal(model_graph_to_json(m2, NULL, &out2), KT_OK);
    assert_int_equal(out2.len, out.len);
    assert_memory_equal(out2.data, out.data, out.len);
    kt_buf_fini(&out2);
    model_diag_fini(&diag);
    model_free(m2);
    kt_buf_fini(&out);
}

/* The names of the instances one hop from x, found the slow way. */
static void neighbours_by_scan(const model *m, const model_instance *x, model_instance_set *want)
{
    model_instance_set_add(want, (model_instance *)x);
    for (uint32_t r = 0; r < x->n_rels; r++) {
        model_instance *t = model_instance_get(m, x->rels[r].target);
        if (t != NULL) {
            model_instance_set_add(want, t);
        }
    }
    for (size_t i = 0; i < model_n_instances(m); i++) {
        model_instance *s = model_instance_at(m, i);
        for (uint32_t r = 0; r < s->n_rels; r++) {
            if (strcmp(s->rels[r].target, x->name) == 0) {
                model_instance_set_add(want, s);
            }
        }
    }
}

static void test_subgraph_of_a_pole_at_depth_1_is_its_neighbours_both_ways(void **state)
{
    graph_fixture *f = *state;
    model_diag rd;
    model_diag_init(&rd);
    /* No TwinInterfaces are loaded, so resolve reports every instance; the indexes are built
     * anyway. */
    (void)model_resolve(f->m, &rd);
    model_diag_fini(&rd);

    model_instance *pole = model_instance_get(f->m, "city-pole-nb001-p00007");
    assert_non_null(pole);
    model_instance_set got;
    model_instance_set_init(&got);
    model_subgraph(f->m, &pole, 1, 1, &got);
    model_instance_set want;
    model_instance_set_init(&want);
    neighbours_by_scan(f->m, pole, &want);

    assert_ptr_equal(got.items[0], pole); /* seeds first */
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < want.n; i++) {
        assert_true(model_instance_set_has(&got, want.items[i]));
    }
    /* Outgoing: neighborhood, AQ, noise, weather, crowd, traffic (streetlight and EV targets
     * do not exist in KTWIN's file); incoming: the AQ sensor's citypole. */
    assert_int_equal(got.n, 1 + 6);
    assert_true(
        model_instance_set_has(&got, model_instance_get(f->m, "s4city-city-neighborhood-nb001")));
    assert_true(model_instance_set_has(
        &got, model_instance_get(f->m, "ngsi-ld-city-airqualityobserved-nb001-p00007")));
    assert_false(model_instance_set_has(&got, model_instance_get(f->m, "city-pole-nb001-p00008")));

    /* Depth 0 is the seed alone; depth 2 reaches the other poles through the neighborhood. */
    model_instance_set d0;
    model_instance_set_init(&d0);
    model_subgraph(f->m, &pole, 1, 0, &d0);
    assert_int_equal(d0.n, 1);
    model_instance_set d2;
    model_instance_set_init(&d2);
    model_subgraph(f->m, &pole, 1, 2, &d2);
    assert_true(model_instance_set_has(&d2, model_instance_get(f->m, "city-pole-nb001-p00008")));
    assert_true(model_instance_set_has(
        &d2, model_instance_get(f->m, "ngsi-ld-city-device-aqo-nb001-p00007")));
    assert_true(d2.n > got.n);

    kt_buf out;
    kt_buf_init(&out, 1u << 20);
    assert_int_equal(model_graph_to_json(f->m, &got, &out), KT_OK);
    cJSON *doc = cJSON_Parse(out.data);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "twinInstances")), (int)got.n);
    cJSON_Delete(doc);
    kt_buf_fini(&out);
    model_instance_set_fini(&d2);
    model_instance_set_fini(&d0);
    model_instance_set_fini(&want);
    model_instance_set_fini(&got);
}

static void test_per_interface_json_has_only_that_interface(void **state)
{
    graph_fixture *f = *state;
    kt_buf out;
    kt_buf_init(&out, 16u * 1024u * 1024u);
    assert_int_equal(model_graph_iface_to_json(f->m, "city-pole", &out), KT_OK);
    cJSON *doc = cJSON_Parse(out.data);
    assert_non_null(doc);
    const cJSON *list = cJSON_GetObjectItem(doc, "twinInstances");
    assert_int_equal(cJSON_GetArraySize(list), 100);
    const cJSON *it;
    cJSON_ArrayForEach (it, list) {
        assert_string_equal(cJSON_GetObjectItem(it, "interface")->valuestring, "city-pole");
        /* each with its own outgoing edges */
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(it, "relationships")), 8);
    }
    cJSON_Delete(doc);

    kt_buf_reset(&out);
    assert_int_equal(model_graph_iface_to_json(f->m, "no-such-interface", &out), KT_OK);
    assert_string_equal(out.data, "{\"twinInstances\":[]}");
    kt_buf_fini(&out);
}

/* ---- small cases ------------------------------------------------------------- */

#define IFACE(name, extra) \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec:\n" extra
#define INSTANCE(name, iface, extra)                                              \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\nspec:\n  interface: " iface "\n" extra

static void test_per_interface_json_uses_the_index_after_resolve(void **state)
{
    (void)state;
    static const char text[] =
        IFACE("hood", "  properties:\n  - name: aqiLevel\n    schema: {primitiveType: string}\n")
            IFACE("pole", "  relationships:\n  - name: refNeighborhood\n    interface: hood\n")
                INSTANCE("hood-1", "hood", "")
                    INSTANCE("pole-1", "pole",
                             "  twinInstanceRelationships:\n"
                             "  - {name: refNeighborhood, interface: hood, instance: hood-1}\n")
                        INSTANCE("pole-2", "pole", "");
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_load_buffer(m, "t.yaml", text, sizeof text - 1, &diag, &err), KT_OK);
    assert_int_equal(model_resolve(m, &diag), KT_OK);
    kt_buf out;
    kt_buf_init(&out, 4096);
    assert_int_equal(model_graph_iface_to_json(m, "pole", &out), KT_OK);
    assert_string_equal(
        out.data, "{\"twinInstances\":[{\"name\":\"pole-1\",\"interface\":\"pole\","
                  "\"relationships\":[{\"name\":\"refNeighborhood\",\"interface\":\"hood\","
                  "\"instance\":\"hood-1\"}]},{\"name\":\"pole-2\",\"interface\":\"pole\"}]}");
    /* Subgraph of the neighborhood: itself and the pole pointing at it (incoming only). */
    model_instance *hood = model_instance_get(m, "hood-1");
    model_instance_set s;
    model_instance_set_init(&s);
    model_subgraph(m, &hood, 1, 5, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.items[1]->name, "pole-1");
    model_instance_set_fini(&s);
    kt_buf_fini(&out);
    model_diag_fini(&diag);
    model_free(m);
}

static void test_strings_are_escaped_like_go(void **state)
{
    (void)state;
    model *m = model_new();
    /* quote, backslash, newline, tab, a control char, HTML chars, U+2028, bad UTF-8, é */
    const char *name = "a\"b\\c\nd\te\x01<&>\xe2\x80\xa8\xff\xc3\xa9";
    model_rel rel = { "r", "i", "t\"x", NULL, 0, 0 };
    assert_non_null(model_add_instance(m, name, "iface", &rel, 1, NULL));
    kt_buf out;
    kt_buf_init(&out, 4096);
    assert_int_equal(model_graph_to_json(m, NULL, &out), KT_OK);
    assert_string_equal(out.data,
                        "{\"twinInstances\":[{\"name\":\"a\\\"b\\\\c\\nd\\te\\u0001\\u003c\\u0026"
                        "\\u003e\\u2028\\ufffd\xc3\xa9\",\"interface\":\"iface\",\"relationships\":"
                        "[{\"name\":\"r\",\"interface\":\"i\",\"instance\":\"t\\\"x\"}]}]}");
    /* It reads back (bad byte replaced). */
    model *m2 = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    assert_int_equal(model_graph_from_json(m2, "x.json", out.data, out.len, &diag, &err), KT_OK);
    assert_int_equal(diag.n, 0);
    assert_string_equal(model_instance_at(m2, 0)->name,
                        "a\"b\\c\nd\te\x01<&>\xe2\x80\xa8\xef\xbf\xbd\xc3\xa9");
    model_diag_fini(&diag);
    model_free(m2);
    kt_buf_fini(&out);
    model_free(m);
}

static void test_output_over_the_cap_is_etoobig_and_leaves_the_buffer(void **state)
{
    graph_fixture *f = *state;
    kt_buf out;
    kt_buf_init(&out, 100000);
    assert_int_equal(kt_buf_puts(&out, "keep"), KT_OK);
    assert_int_equal(model_graph_to_json(f->m, NULL, &out), KT_ETOOBIG);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    kt_buf_fini(&out);
}

typedef struct sink_rec {
    kt_buf got;
    size_t calls, max_piece;
    size_t fail_at; /* fail the n-th call (1-based), 0 = never */
} sink_rec;

static kt_status rec_sink(const char *data, size_t len, void *user)
{
    sink_rec *r = user;
    r->calls++;
    if (r->fail_at != 0 && r->calls == r->fail_at) {
        return KT_EIO;
    }
    r->max_piece = len > r->max_piece ? len : r->max_piece;
    return kt_buf_append(&r->got, data, len);
}

/* The sink form gives the same bytes in pieces of at most 64 KiB; a sink failure stops it. */
static void test_graph_json_into_a_sink_in_pieces(void **state)
{
    (void)state;
    model *m = model_new();
    for (int i = 0; i < 3000; i++) {
        char name[32], target[32];
        snprintf(name, sizeof name, "pole-%d", i);
        snprintf(target, sizeof target, "pole-%d", (i + 1) % 3000);
        model_rel rel = { "next", "pole", target, NULL, 0, 0 };
        assert_non_null(model_add_instance(m, name, "pole", &rel, 1, NULL));
    }
    kt_buf whole;
    kt_buf_init(&whole, 1 << 24);
    assert_int_equal(model_graph_to_json(m, NULL, &whole), KT_OK);
    assert_true(whole.len > 3u * 64u * 1024u);
    sink_rec r;
    memset(&r, 0, sizeof r);
    kt_buf_init(&r.got, 1 << 24);
    assert_int_equal(model_graph_to_json_sink(m, rec_sink, &r), KT_OK);
    assert_int_equal(r.got.len, whole.len);
    assert_memory_equal(r.got.data, whole.data, whole.len);
    assert_true(r.calls >= 3);
    assert_true(r.max_piece <= 64u * 1024u);
    kt_buf_reset(&r.got);
    r.calls = 0;
    r.fail_at = 2;
    assert_int_equal(model_graph_to_json_sink(m, rec_sink, &r), KT_EIO);
    assert_int_equal(r.calls, 2); /* nothing after the failure */
    kt_buf_fini(&r.got);
    kt_buf_fini(&whole);
    model_free(m);
}

static const model_diag_entry *find_diag(const model_diag *d, const char *code, const char *path)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->entries[i].code, code) == 0 && strcmp(d->entries[i].path, path) == 0) {
            return &d->entries[i];
        }
    }
    model_diag_print(d, stderr);
    fail_msg("no diagnostic %s at %s", code, path);
    return NULL;
}

static void import_text(const char *text, model **m_out, model_diag *diag)
{
    *m_out = model_new();
    model_diag_init(diag);
    kt_err err = { 0 };
    assert_int_equal(model_graph_from_json(*m_out, "g.json", text, strlen(text), diag, &err),
                     KT_OK);
}

static void test_structural_problems_are_reported_with_json_paths(void **state)
{
    (void)state;
    model *m;
    model_diag d;
    import_text("{\"twinInstances\":["
                "{\"name\":\"a\",\"interface\":\"x\"},"
                "{\"interface\":\"x\"},"
                "7,"
                "{\"name\":\"b\",\"interface\":3,\"colour\":\"red\"},"
                "{\"name\":\"c\",\"interface\":\"x\",\"relationships\":["
                "{\"name\":\"r\",\"interface\":\"y\",\"instance\":\"a\"},"
                "{\"name\":\"r\",\"interface\":\"y\"},"
                "{\"name\":\"r\",\"interface\":\"y\",\"instance\":true},"
                "\"oops\"]},"
                "{\"name\":\"d\",\"interface\":\"x\",\"relationships\":{}}"
                "]}",
                &m, &d);
    find_diag(&d, "graph-missing-field", "twinInstances[1].name");
    find_diag(&d, "graph-wrong-type", "twinInstances[2]");
    find_diag(&d, "graph-wrong-type", "twinInstances[3].interface");
    find_diag(&d, "graph-unknown-field", "twinInstances[3].colour");
    find_diag(&d, "graph-missing-field", "twinInstances[4].relationships[1].instance");
    find_diag(&d, "graph-wrong-type", "twinInstances[4].relationships[2].instance");
    find_diag(&d, "graph-wrong-type", "twinInstances[4].relationships[3]");
    find_diag(&d, "graph-wrong-type", "twinInstances[5].relationships");
    assert_int_equal(d.n_errors, 7);
    assert_int_equal(d.n_warnings, 1);
    /* The good parts are still imported: a, c (with its one good edge), d. */
    assert_int_equal(model_n_instances(m), 3);
    assert_int_equal(model_instance_get(m, "c")->n_rels, 1);
    model_diag_fini(&d);
    model_free(m);

    import_text("{\"twinInstances\":[\n{\"name\":\"a\",}]}", &m, &d);
    const model_diag_entry *e = find_diag(&d, "json-syntax", "");
    assert_int_equal(e->line, 2);
    assert_string_equal(e->file, "g.json");
    model_diag_fini(&d);
    model_free(m);

    import_text("[1,2]", &m, &d);
    find_diag(&d, "graph-wrong-type", "");
    model_diag_fini(&d);
    model_free(m);

    import_text("{\"twinInstances\":{}}", &m, &d);
    find_diag(&d, "graph-wrong-type", "twinInstances");
    model_diag_fini(&d);
    model_free(m);

    import_text("{} {}", &m, &d);
    find_diag(&d, "json-syntax", "");
    model_diag_fini(&d);
    model_free(m);
}

static void test_empty_graphs_are_accepted(void **state)
{
    (void)state;
    static const char *const texts[] = { "{}", "{\"twinInstances\":[]}", "{\"twinInstances\":null}",
                                         " {\"twinInstances\":[]}\n" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        model *m;
        model_diag d;
        import_text(texts[i], &m, &d);
        assert_int_equal(d.n, 0);
        assert_int_equal(model_n_instances(m), 0);
        kt_buf out;
        kt_buf_init(&out, 1024);
        assert_int_equal(model_graph_to_json(m, NULL, &out), KT_OK);
        assert_string_equal(out.data, "{\"twinInstances\":[]}");
        kt_buf_fini(&out);
        model_diag_fini(&d);
        model_free(m);
    }
}

static void test_duplicate_instances_are_left_to_resolve(void **state)
{
    (void)state;
    model *m;
    model_diag d;
    import_text("{\"twinInstances\":[{\"name\":\"a\",\"interface\":\"x\"},"
                "{\"name\":\"a\",\"interface\":\"y\"}]}",
                &m, &d);
    assert_int_equal(d.n, 0);
    assert_int_equal(model_n_instances(m), 1);
    (void)model_resolve(m, &d);
    assert_int_equal(model_diag_count(&d, "duplicate-name"), 1);
    model_diag_fini(&d);
    model_free(m);
}

static void test_instance_set_keeps_order_and_refuses_duplicates(void **state)
{
    graph_fixture *f = *state;
    model_instance *a = model_instance_at(f->m, 3);
    model_instance *b = model_instance_at(f->m, 1);
    model_instance_set s;
    model_instance_set_init(&s);
    assert_int_equal(model_instance_set_add(&s, a), 1);
    assert_int_equal(model_instance_set_add(&s, b), 1);
    assert_int_equal(model_instance_set_add(&s, a), 0);
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.items[0], a);
    assert_ptr_equal(s.items[1], b);
    assert_true(model_instance_set_has(&s, b));
    assert_false(model_instance_set_has(&s, model_instance_at(f->m, 0)));
    for (size_t i = 0; i < model_n_instances(f->m); i++) {
        model_instance_set_add(&s, model_instance_at(f->m, i));
    }
    assert_int_equal(s.n, model_n_instances(f->m));
    model_instance_set_fini(&s);
}

int main(void)
{
    const struct CMUnitTest with_twin_graph[] = {
        cmocka_unit_test(test_ktwin_twin_graph_imports_with_counts_per_interface),
        cmocka_unit_test(test_export_is_byte_identical_to_ktwin_and_round_trips),
        cmocka_unit_test(test_per_interface_json_has_only_that_interface),
        cmocka_unit_test(test_subgraph_of_a_pole_at_depth_1_is_its_neighbours_both_ways),
        cmocka_unit_test(test_output_over_the_cap_is_etoobig_and_leaves_the_buffer),
        cmocka_unit_test(test_instance_set_keeps_order_and_refuses_duplicates),
    };
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_per_interface_json_uses_the_index_after_resolve),
        cmocka_unit_test(test_strings_are_escaped_like_go),
        cmocka_unit_test(test_structural_problems_are_reported_with_json_paths),
        cmocka_unit_test(test_empty_graphs_are_accepted),
        cmocka_unit_test(test_duplicate_instances_are_left_to_resolve),
        cmocka_unit_test(test_graph_json_into_a_sink_in_pieces),
    };
    int failed = cmocka_run_group_tests_name("twin_graph", with_twin_graph, setup_twin_graph,
                                             teardown_twin_graph);
    failed += cmocka_run_group_tests_name("graph_small", small, NULL, NULL);
    return failed;
}
