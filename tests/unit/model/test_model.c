/*
 * test_model.c — loading and validating CRD documents: one test per error
 * class of the Foundation issue, plus inheritance and the graph indexes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model/model.h"
#include "model_int.h" /* model_crd__schemas_bytes */

#define IFACE(name, extra)                                                                         \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec:\n" extra

#define INSTANCE(name, iface, extra)                                                               \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name                 \
    "\nspec:\n  interface: " iface "\n" extra

/* A small valid city: pole -> neighborhood, with inheritance. */
static const char *const city =
    IFACE("city-object", "  properties:\n  - name: location\n    schema: {primitiveType: string}\n")
    IFACE("s4city-city-neighborhood",
          "  properties:\n  - name: aqiLevel\n    schema: {primitiveType: string}\n    writable: true\n"
          "  commands:\n  - name: updateairqualityindex\n"
          "  eventStore: {persistRealEvent: true}\n")
    IFACE("city-pole",
          "  extendsInterface: city-object\n"
          "  relationships:\n  - name: refNeighborhood\n    interface: s4city-city-neighborhood\n"
          "    aggregateData: true\n"
          "  service:\n    autoScaling: {maxScale: 20, metric: concurrency}\n"
          "    template:\n      spec:\n        containers:\n        - name: pole\n"
          "          image: ghcr.io/x/pole:0.1\n"
          "          resources: {requests: {cpu: 300m, memory: 228Mi}}\n")
    INSTANCE("s4city-city-neighborhood-nb001", "s4city-city-neighborhood", "")
    INSTANCE("city-pole-nb001-p00001", "city-pole",
             "  twinInstanceRelationships:\n"
             "  - {name: refNeighborhood, interface: s4city-city-neighborhood, instance: s4city-city-neighborhood-nb001}\n");

typedef struct loaded {
    model *m;
    model_diag diag;
} loaded;

static void load(loaded *l, const char *text)
{
    l->m = model_new();
    model_diag_init(&l->diag);
    kt_err err = { 0 };
    assert_int_equal(model_load_buffer(l->m, "test.yaml", text, strlen(text), &l->diag, &err), KT_OK);
    model_resolve(l->m, &l->diag);
}

static void unload(loaded *l)
{
    model_diag_fini(&l->diag);
    model_free(l->m);
}

static void expect_only(loaded *l, const char *code, size_t n)
{
    if (model_diag_count(&l->diag, code) != n || l->diag.n_errors != n) {
        model_diag_print(&l->diag, stderr);
    }
    assert_int_equal(model_diag_count(&l->diag, code), n);
    assert_int_equal(l->diag.n_errors, n);
}

static const model_diag_entry *first_with(const loaded *l, const char *code)
{
    for (size_t i = 0; i < l->diag.n; i++) {
        if (strcmp(l->diag.entries[i].code, code) == 0) {
            return &l->diag.entries[i];
        }
    }
    fail_msg("no diagnostic %s", code);
    return NULL;
}

static void test_valid_city_loads_with_inheritance_and_indexes(void **state)
{
    (void)state;
    loaded l;
    load(&l, city);
    expect_only(&l, "none", 0);
    assert_int_equal(model_n_ifaces(l.m), 3);
    assert_int_equal(model_n_instances(l.m), 2);
    const model_iface *pole = model_iface_get(l.m, "city-pole");
    assert_non_null(pole);
    /* Inherited property plus its own relationship. */
    assert_non_null(model_iface_member(pole, MODEL_MEMBER_PROPERTY, "location"));
    const model_member *rel = model_iface_member(pole, MODEL_MEMBER_RELATIONSHIP, "refNeighborhood");
    assert_non_null(rel);
    assert_true(rel->aggregate_data);
    assert_string_equal(rel->target, "s4city-city-neighborhood");
    assert_int_equal(pole->cpu_millis, 300);
    assert_int_equal(pole->memory_bytes, 228ull * 1024 * 1024);
    assert_int_equal(pole->autoscaling.max_scale, 20);
    assert_string_equal(pole->image, "ghcr.io/x/pole:0.1");
    assert_true(model_iface_get(l.m, "s4city-city-neighborhood")->persist_real_event);
    /* Graph indexes both ways. */
    model_instance *p = model_instance_get(l.m, "city-pole-nb001-p00001");
    model_instance *nb = model_instance_get(l.m, "s4city-city-neighborhood-nb001");
    assert_ptr_equal(p->rels[0].target_inst, nb);
    assert_int_equal(nb->n_in, 1);
    assert_ptr_equal(nb->in[0].src, p);
    assert_int_equal(pole->n_instances, 1);
    assert_ptr_equal(pole->instances[0], p);
    unload(&l);
}

static void test_unknown_field_is_reported_with_position_and_path(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  properties:\n  - name: x\n    schema: {primitiveType: string}\n    colour: red\n"));
    expect_only(&l, "unknown-field", 1);
    const model_diag_entry *e = first_with(&l, "unknown-field");
    assert_string_equal(e->file, "test.yaml");
    assert_int_equal(e->line, 10);
    assert_int_equal(e->col, 5);
    assert_string_equal(e->path, "spec.properties[0].colour");
    unload(&l);
}

static void test_wrong_type_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  relationships:\n  - name: r\n    interface: a\n    maxMultiplicity: many\n"
                        "  eventStore: {persistRealEvent: 1}\n"));
    expect_only(&l, "wrong-type", 2);
    unload(&l);
}

static void test_invalid_schema_values_are_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  service:\n    autoScaling: {metric: latency}\n    template:\n      spec:\n"
                        "        containers:\n        - name: c\n          resources: {requests: {cpu: lots}}\n"));
    expect_only(&l, "invalid-value", 2);
    unload(&l);
}

static void test_missing_required_fields_are_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {}\nspec: {interface: a}\n"
             "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: b}\nspec: {}\n"
             "---\n" IFACE("a", "  relationships:\n  - name: r\n    interface: a\n")
             "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: c}\n"
             "spec: {interface: a, twinInstanceRelationships: [{name: r, interface: a}]}\n");
    /* metadata.name, spec.interface, relationship instance */
    expect_only(&l, "missing-field", 3);
    unload(&l);
}

static void test_missing_parent_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  extendsInterface: nowhere\n"));
    expect_only(&l, "extends-missing", 1);
    unload(&l);
}

static void test_cyclic_extends_chain_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  extendsInterface: b\n") IFACE("b", "  extendsInterface: c\n")
                 IFACE("c", "  extendsInterface: a\n"));
    assert_true(model_diag_count(&l.diag, "extends-cycle") >= 1);
    assert_int_equal(l.diag.n_errors, model_diag_count(&l.diag, "extends-cycle"));
    unload(&l);
}

static void test_relationship_to_unknown_interface_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  relationships:\n  - name: r\n    interface: ghost\n"));
    expect_only(&l, "relationship-target-unknown", 1);
    unload(&l);
}

static void test_instance_of_unknown_interface_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, INSTANCE("x", "ghost", ""));
    expect_only(&l, "instance-interface-unknown", 1);
    unload(&l);
}

static void test_instance_with_unknown_relationship_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  properties: []\n") INSTANCE("y", "a", "")
                 INSTANCE("x", "a", "  twinInstanceRelationships:\n  - {name: nope, interface: a, instance: y}\n"));
    expect_only(&l, "instance-relationship-unknown", 1);
    const model_diag_entry *e = first_with(&l, "instance-relationship-unknown");
    assert_string_equal(e->path, "spec.twinInstanceRelationships[0].name");
    assert_int_equal(e->line, 23);
    unload(&l);
}

static void test_instance_with_unknown_target_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  relationships:\n  - {name: r, interface: a}\n")
                 INSTANCE("x", "a", "  twinInstanceRelationships:\n  - {name: r, interface: a, instance: ghost}\n"));
    expect_only(&l, "instance-target-unknown", 1);
    unload(&l);
}

static void test_duplicate_names_are_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  properties:\n  - {name: p}\n  - {name: p}\n") IFACE("a", "")
                 INSTANCE("x", "a", "") INSTANCE("x", "a", ""));
    expect_only(&l, "duplicate-name", 3);
    unload(&l);
}

static void test_invalid_names_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = { "a.b", "a/b", "a#b", "a+b", "a b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: \"%s\"}\nspec:\n"
                 "  commands:\n  - name: \"c%s\"\n",
                 bad[i], bad[i]);
        loaded l;
        load(&l, text);
        expect_only(&l, "invalid-name", 2);
        unload(&l);
        assert_non_null(model_name_check(bad[i]));
    }
    assert_null(model_name_check("city-pole-nb001-p00001"));
}

static void test_syntax_error_names_file_line_and_column(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: [TwinInterface\nmetadata: {name: a}\n");
    expect_only(&l, "syntax", 1);
    assert_true(l.diag.entries[0].line >= 2);
    unload(&l);
}

static void test_every_error_is_reported_not_only_the_first(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  bogus: 1\n  extendsInterface: nowhere\n  relationships:\n  - {name: r, interface: ghost}\n")
                 INSTANCE("x", "ghost", ""));
    assert_int_equal(model_diag_count(&l.diag, "unknown-field"), 1);
    assert_int_equal(model_diag_count(&l.diag, "extends-missing"), 1);
    assert_int_equal(model_diag_count(&l.diag, "relationship-target-unknown"), 1);
    assert_int_equal(model_diag_count(&l.diag, "instance-interface-unknown"), 1);
    assert_int_equal(l.diag.n_errors, 4);
    unload(&l);
}

static void test_json_documents_and_lists_load(void **state)
{
    (void)state;
    loaded l;
    load(&l, "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInterface\",\"metadata\":{\"name\":\"a\"},"
             "\"spec\":{\"relationships\":[{\"name\":\"r\",\"interface\":\"a\"}]}}\n"
             "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":["
             "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"x\","
             "\"labels\":{\"ktwin.io/site\":\"site-01\"}},\"spec\":{\"interface\":\"a\"}},"
             "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"y\"},"
             "\"spec\":{\"interface\":\"a\",\"twinInstanceRelationships\":[{\"name\":\"r\",\"interface\":\"a\",\"instance\":\"x\"}]}}]}\n");
    expect_only(&l, "none", 0);
    assert_int_equal(model_n_instances(l.m), 2);
    assert_string_equal(model_instance_get(l.m, "x")->site, "site-01");
    unload(&l);
}

static void test_other_kinds_are_skipped_with_a_warning(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
    expect_only(&l, "none", 0);
    assert_int_equal(l.diag.n_warnings, 1);
    unload(&l);
}

static void test_duplicate_map_key_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: a}\n"
             "spec:\n  properties: []\n  properties: []\n");
    expect_only(&l, "duplicate-field", 1);
    assert_int_equal(first_with(&l, "duplicate-field")->line, 6);
    unload(&l);
}

static void test_unknown_kind_in_our_groups_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: TwinThing\nmetadata: {name: a}\nspec: {}\n"
             "---\napiVersion: edge.ktwin/v0\nkind: Site\nmetadata: {name: b}\nspec: {}\n");
    expect_only(&l, "unknown-kind", 2);
    unload(&l);
}

static void test_instance_target_of_wrong_interface_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("a", "  relationships:\n  - {name: r, interface: b}\n") IFACE("b", "  properties: []\n")
                 IFACE("c", "  properties: []\n") INSTANCE("y", "c", "")
                 INSTANCE("x", "a", "  twinInstanceRelationships:\n  - {name: r, interface: b, instance: y}\n"));
    expect_only(&l, "instance-target-mismatch", 1);
    assert_string_equal(first_with(&l, "instance-target-mismatch")->path,
                        "spec.twinInstanceRelationships[0].instance");
    unload(&l);
}

static void test_too_deep_document_is_refused(void **state)
{
    (void)state;
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text,
                                "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: a}\n"
                                "spec: {interface: a, data: ");
    for (int i = 0; i < 80; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < 80; i++) {
        text[n++] = ']';
    }
    text[n++] = '}';
    text[n++] = '\n';
    text[n] = '\0';
    loaded l;
    load(&l, text);
    assert_int_equal(model_diag_count(&l.diag, "too-large"), 1);
    assert_int_equal(model_n_instances(l.m), 0);
    unload(&l);
}

static void test_skipped_kind_is_a_warning_with_its_class(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert_int_equal(model_diag_count(&l.diag, "skipped-kind"), 1);
    assert_int_equal(l.diag.n_errors, 0);
    unload(&l);
}

static void test_placement_policy_loads(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: edge.ktwin/v0\nkind: PlacementPolicy\nmetadata: {name: city}\nspec:\n"
             "  siteFrom:\n  - {relationship: refNeighborhood}\n  - {relationship: refDevice, direction: incoming}\n"
             "  rules:\n  - name: realtime\n    match: {interfaces: [\"ngsi-ld-city-*\"], labels: {tier: rt}}\n"
             "    placement: edge\n    offline: required\n    overflow: pending\n"
             "  - name: rest\n    placement: cloud\n  defaultPlacement: prefer-edge\n");
    expect_only(&l, "none", 0);
    const model_policy *p = model_policy_get(l.m, "city");
    assert_non_null(p);
    assert_int_equal(p->n_site_from, 2);
    assert_true(p->site_from[1].incoming);
    assert_int_equal(p->n_rules, 2);
    assert_int_equal(p->rules[0].placement, MODEL_PLACE_EDGE);
    assert_int_equal(p->rules[0].offline, MODEL_OFFLINE_REQUIRED);
    assert_int_equal(p->rules[0].overflow, MODEL_OVERFLOW_PENDING);
    assert_string_equal(p->rules[0].interfaces[0], "ngsi-ld-city-*");
    assert_string_equal(p->rules[0].match_labels[0].value, "rt");
    assert_int_equal(p->default_placement, MODEL_PLACE_PREFER_EDGE);
    unload(&l);
}

static void test_placement_policy_errors(void **state)
{
    (void)state;
    loaded l;
    load(&l, "apiVersion: edge.ktwin/v0\nkind: PlacementPolicy\nmetadata: {name: city}\nspec:\n"
             "  rules:\n  - name: r\n    placement: moon\n  - name: s\n    placement: cloud\n    offline: required\n");
    assert_int_equal(model_diag_count(&l.diag, "invalid-value"), 2);
    unload(&l);
}

static void test_multiple_parents_from_annotation(void **state)
{
    (void)state;
    loaded l;
    load(&l, IFACE("p1", "  properties: [{name: a}]\n") IFACE("p2", "  properties: [{name: b}]\n")
             "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: c\n"
             "  annotations: {ktwin.io/extends: \"p1,p2\"}\nspec:\n  extendsInterface: p1\n");
    expect_only(&l, "none", 0);
    const model_iface *c = model_iface_get(l.m, "c");
    assert_int_equal(c->n_parents, 2);
    assert_non_null(model_iface_member(c, MODEL_MEMBER_PROPERTY, "a"));
    assert_non_null(model_iface_member(c, MODEL_MEMBER_PROPERTY, "b"));
    unload(&l);
}

static void test_ktwin_crd_examples_validate(void **state)
{
    (void)state;
    /* KTWIN's own resources (EventStore is core.ktwin, not ours: skipped). */
    model *m = model_new();
    model_diag d;
    model_diag_init(&d);
    kt_err err = { 0 };
    assert_int_equal(model_load_path(m, KT_FIXTURES_DIR "/ktwin-operator/hack/ktwin/resources", &d, &err), KT_OK);
    assert_int_equal(d.n_errors, 0);
    model_diag_fini(&d);
    model_free(m);
}

/* agent-rss: the schemas are kept without their "description" annotations (three quarters
 * of the TwinInterface schema), but properties named description are still validated. */
static void test_schemas_drop_descriptions_but_check_description_fields(void **state)
{
    (void)state;
    assert_true(model_crd__schemas_bytes() < 900u * 1024u); /* 1 MiB with them */
    loaded l;
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: a}\n"
             "spec: {description: a pump, commands: [{name: c, description: stop it}]}\n");
    expect_only(&l, "unknown-field", 0);
    unload(&l);
    load(&l, "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: a}\n"
             "spec: {description: [1], descripton: x}\n");
    assert_true(l.diag.n_errors >= 2); /* wrong type, unknown field */
    assert_int_equal(model_diag_count(&l.diag, "unknown-field"), 1);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemas_drop_descriptions_but_check_description_fields),
        cmocka_unit_test(test_valid_city_loads_with_inheritance_and_indexes),
        cmocka_unit_test(test_unknown_field_is_reported_with_position_and_path),
        cmocka_unit_test(test_wrong_type_is_reported),
        cmocka_unit_test(test_invalid_schema_values_are_reported),
        cmocka_unit_test(test_missing_required_fields_are_reported),
        cmocka_unit_test(test_missing_parent_is_reported),
        cmocka_unit_test(test_cyclic_extends_chain_is_reported),
        cmocka_unit_test(test_relationship_to_unknown_interface_is_reported),
        cmocka_unit_test(test_instance_of_unknown_interface_is_reported),
        cmocka_unit_test(test_instance_with_unknown_relationship_is_reported),
        cmocka_unit_test(test_instance_with_unknown_target_is_reported),
        cmocka_unit_test(test_duplicate_names_are_reported),
        cmocka_unit_test(test_invalid_names_are_refused),
        cmocka_unit_test(test_syntax_error_names_file_line_and_column),
        cmocka_unit_test(test_every_error_is_reported_not_only_the_first),
        cmocka_unit_test(test_json_documents_and_lists_load),
        cmocka_unit_test(test_other_kinds_are_skipped_with_a_warning),
        cmocka_unit_test(test_duplicate_map_key_is_reported),
        cmocka_unit_test(test_unknown_kind_in_our_groups_is_reported),
        cmocka_unit_test(test_instance_target_of_wrong_interface_is_reported),
        cmocka_unit_test(test_too_deep_document_is_refused),
        cmocka_unit_test(test_skipped_kind_is_a_warning_with_its_class),
        cmocka_unit_test(test_placement_policy_loads),
        cmocka_unit_test(test_placement_policy_errors),
        cmocka_unit_test(test_multiple_parents_from_annotation),
        cmocka_unit_test(test_ktwin_crd_examples_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
