/*
 * test_dtdl.c — DTDL v2 import (model/dtdl.h).
 *
 * Converts the smart-city ontology (63 interfaces) and small fixtures in
 * tests/data/dtdl/, reads the emitted YAML back with libyaml and checks the
 * TwinInterface fields, and checks that unsupported constructs are reported.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <yaml.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "model/diag.h"
#include "model/dtdl.h"
#include "model/model.h"

#define ONTOLOGY KT_SOURCE_DIR "/data/smartcity-ontology/Ontology"
#define FIXTURES KT_SOURCE_DIR "/tests/data/dtdl"

/* ---- YAML back to cJSON (plain scalars typed as YAML 1.2 core) -------------- */

static cJSON *plain_scalar(const char *s)
{
    if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || s[0] == '\0') {
        return cJSON_CreateNull();
    }
    if (strcmp(s, "true") == 0) {
        return cJSON_CreateTrue();
    }
    if (strcmp(s, "false") == 0) {
        return cJSON_CreateFalse();
    }
    char *end;
    double v = strtod(s, &end);
    if (end != s && *end == '\0') {
        return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

static cJSON *node_to_json(yaml_document_t *doc, yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            return plain_scalar((const char *)n->data.scalar.value);
        }
        return cJSON_CreateString((const char *)n->data.scalar.value);
    case YAML_SEQUENCE_NODE: {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            cJSON_AddItemToArray(a, node_to_json(doc, yaml_document_get_node(doc, *it)));
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        cJSON *o = cJSON_CreateObject();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            cJSON_AddItemToObject(o, (const char *)k->data.scalar.value,
                                  node_to_json(doc, yaml_document_get_node(doc, p->value)));
        }
        return o;
    }
    default:
        fail();
    }
    return NULL;
}

static cJSON *yaml_to_json(const char *text)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc)) {
        fail_msg("yaml: %s at line %zu:\n%s", parser.problem, parser.problem_mark.line + 1, text);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_non_null(root);
    cJSON *j = node_to_json(&doc, root);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return j;
}

/* ---- helpers ------------------------------------------------------------------ */

static size_t find(const model_dtdl *d, const char *name)
{
    for (size_t i = 0; i < model_dtdl_count(d); i++) {
        if (strcmp(model_dtdl_name(d, i), name) == 0) {
            return i;
        }
    }
    fail_msg("interface %s not found", name);
    return 0;
}

/* The converted document of the named interface, read back from its YAML. */
static cJSON *doc_of(const model_dtdl *d, const char *name)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 24);
    assert_int_equal(model_dtdl_emit(d, find(d, name), &b), KT_OK);
    assert_memory_equal(b.data, "---\n", 4);
    cJSON *j = yaml_to_json(b.data);
    kt_buf_fini(&b);
    return j;
}

static const cJSON *at(const cJSON *j, const char *path)
{
    /* "spec.properties[1].schema" */
    char key[128];
    const char *p = path;
    while (*p != '\0' && j != NULL) {
        size_t n = strcspn(p, ".[");
        if (n > 0) {
            snprintf(key, sizeof key, "%.*s", (int)n, p);
            j = cJSON_GetObjectItemCaseSensitive(j, key);
            p += n;
        }
        if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            j = cJSON_GetArrayItem(j, (int)i);
            p = end + 1;
        }
        if (*p == '.') {
            p++;
        }
    }
    return j;
}

static const char *str_at(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    if (!cJSON_IsString(v)) {
        char *s = cJSON_PrintUnformatted(j);
        fail_msg("%s is not a string in %s", path, s);
    }
    return v->valuestring;
}

static model_dtdl *load(const char *path, int with_service, model_diag *diag)
{
    model_dtdl_opts opts = { NULL, with_service };
    model_dtdl *d = model_dtdl_new(&opts);
    kt_err err = { 0 };
    assert_int_equal(model_dtdl_add_path(d, path, diag, &err), KT_OK);
    return d;
}

static void assert_no_errors(const model_diag *diag)
{
    if (diag->n_errors != 0) {
        model_diag_print(diag, stderr);
        fail_msg("%zu errors", diag->n_errors);
    }
}

/* ---- names ----------------------------------------------------------------------- */

static void test_dtdl_name_from_id_follows_ktwin(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(model_dtdl_name_from_id("city:Pole", out, sizeof out), "city-pole");
    assert_string_equal(model_dtdl_name_from_id("s4city:city:Neighborhood", out, sizeof out),
                        "s4city-city-neighborhood");
    assert_string_equal(model_dtdl_name_from_id("ngsi_ld:city:AirQualityObserved", out, sizeof out),
                        "ngsi-ld-city-airqualityobserved");
    assert_string_equal(model_dtdl_name_from_id("dtmi:com:example:Thermostat;1", out, sizeof out),
                        "com-example-thermostat");
    assert_string_equal(
        model_dtdl_name_from_id("dtmi:com:example:Thermostat;12.3", out, sizeof out),
        "com-example-thermostat");
    /* Only a DTMI has a version to strip. */
    assert_string_equal(model_dtdl_name_from_id("city:Pole;1", out, sizeof out), "city-pole-1");
    assert_string_equal(model_dtdl_name_from_id("a\"B\"_c", out, sizeof out), "ab-c");
    assert_string_equal(model_dtdl_name_from_id("dtmi:x;", out, sizeof out), "x-");
    assert_string_equal(model_dtdl_name_from_id("city:Pole", out, 5), "city");
}

/* ---- the smart-city ontology -------------------------------------------------------- */

static void test_dtdl_smartcity_ontology_converts_without_errors(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(ONTOLOGY, 1, &diag);
    assert_int_equal(model_dtdl_count(d), 63);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);

    size_t pole = find(d, "city-pole");
    assert_non_null(strstr(model_dtdl_source(d, pole), "City Object/Pole.json"));
    cJSON *j = doc_of(d, "city-pole");
    assert_string_equal(str_at(j, "apiVersion"), "dtd.ktwin/v0");
    assert_string_equal(str_at(j, "kind"), "TwinInterface");
    assert_string_equal(str_at(j, "metadata.name"), "city-pole");
    assert_string_equal(str_at(j, "metadata.namespace"), "ktwin");
    assert_null(at(j, "metadata.annotations"));
    assert_string_equal(str_at(j, "spec.id"), "city-pole");
    assert_string_equal(str_at(j, "spec.displayName"), "Pole");
    assert_string_equal(str_at(j, "spec.extendsInterface"), "s4city-city-cityfurniture");
    const cJSON *rels = at(j, "spec.relationships");
    assert_int_equal(cJSON_GetArraySize(rels), 6);
    static const char *const want[][2] = {
        { "refStreetlight", "ngsi-ld-city-streetlight" },
        { "refAirQualityObserved", "ngsi-ld-city-airqualityobserved" },
        { "refNoiseLevel", "ngsi-ld-city-noiselevelobserved" },
        { "refWeather", "ngsi-ld-city-weatherobserved" },
        { "refCrowdFlow", "ngsi-ld-city-crowdflowobserved" },
        { "refEVChargingStation", "ngsi-ld-city-evchargingstation" },
    };
    for (int i = 0; i < 6; i++) {
        const cJSON *r = cJSON_GetArrayItem(rels, i);
        assert_string_equal(str_at(r, "name"), want[i][0]);
        assert_string_equal(str_at(r, "interface"), want[i][1]);
    }
    assert_string_equal(str_at(j, "spec.service.template.spec.containers[0].name"), "city-pole");
    assert_string_equal(str_at(j, "spec.service.template.spec.containers[0].image"),
                        "ghcr.io/open-digital-twin/ktwin-city-pole-service:0.1");
    assert_string_equal(str_at(j, "spec.service.template.spec.containers[0].imagePullPolicy"),
                        "IfNotPresent");
    assert_int_equal(at(j, "spec.service.autoScaling.maxScale")->valueint, 20);
    assert_int_equal(at(j, "spec.service.autoScaling.target")->valueint, 10);
    assert_int_equal(at(j, "spec.service.autoScaling.parallelism")->valueint, 100);
    assert_int_equal(at(j, "spec.service.autoScaling.targetUtilizationPercentage")->valueint, 65);
    assert_string_equal(str_at(j, "spec.service.autoScaling.metric"), "concurrency");
    cJSON_Delete(j);

    /* KTWIN's command: lower-case name, Object request. */
    j = doc_of(d, "s4city-city-neighborhood");
    assert_string_equal(str_at(j, "spec.commands[0].name"), "updateairqualityindex");
    assert_string_equal(str_at(j, "spec.commands[0].request.name"), "updateAirQualityIndexRequest");
    assert_string_equal(str_at(j, "spec.commands[0].request.schema.complexType.type"), "Object");
    assert_string_equal(str_at(j, "spec.commands[0].request.schema.complexType.fields[0].name"),
                        "aqiLevel");
    assert_string_equal(
        str_at(j, "spec.commands[0].request.schema.complexType.fields[0].schema.primitiveType"),
        "string");
    cJSON_Delete(j);

    /* Components of the ontology become the annotation. */
    j = doc_of(d, "ngsi-ld-city-airqualityobserved");
    const cJSON *comps =
        cJSON_GetObjectItemCaseSensitive(at(j, "metadata.annotations"), "ktwin.io/components");
    assert_true(cJSON_IsString(comps));
    cJSON *list = cJSON_Parse(comps->valuestring);
    assert_true(cJSON_GetArraySize(list) > 0);
    assert_string_equal(str_at(list, "[0].name"), "airQualityLevel");
    assert_string_equal(str_at(list, "[0].interface"), "ngsi-ld-city-airqualitylevel");
    cJSON_Delete(list);
    cJSON_Delete(j);

    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_writes_one_file_per_interface_or_per_input(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(ONTOLOGY, 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    char dir[] = "/tmp/test_dtdl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[512];
    snprintf(out, sizeof out, "%s/per-iface", dir);
    kt_err err = { 0 };
    assert_int_equal(model_dtdl_write_dir(d, out, 0, &err), KT_OK);
    snprintf(out, sizeof out, "%s/per-file/nested", dir);
    assert_int_equal(model_dtdl_write_dir(d, out, 1, &err), KT_OK);

    static const char *const sub[] = { "per-iface", "per-file/nested" };
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/%s", dir, sub[k]);
        DIR *dh = opendir(out);
        assert_non_null(dh);
        int n = 0;
        const struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            if (e->d_name[0] != '.') {
                char p[1024];
                snprintf(p, sizeof p, "%s/%s", out, e->d_name);
                n++;
                if (getenv("KT_TEST_KEEP") == NULL) {
                    assert_int_equal(unlink(p), 0);
                }
            }
        }
        closedir(dh);
        assert_int_equal(n, 63);
    }
    snprintf(out, sizeof out, "%s/per-iface/city-pole.yaml", dir);
    if (getenv("KT_TEST_KEEP") == NULL) {
        snprintf(out, sizeof out, "%s/per-file/nested", dir);
        rmdir(out);
        snprintf(out, sizeof out, "%s/per-file", dir);
        rmdir(out);
        snprintf(out, sizeof out, "%s/per-iface", dir);
        rmdir(out);
        rmdir(dir);
    }
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

/* ---- fixtures -------------------------------------------------------------------------- */

static void test_dtdl_component_becomes_annotation(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/component.json", 0, &diag);
    assert_int_equal(model_dtdl_count(d), 3);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);
    assert_int_equal(diag.n_warnings, 0);
    cJSON *j = doc_of(d, "example-room");
    assert_string_equal(str_at(j, "spec.displayName"), "Room");
    const cJSON *ann = at(j, "metadata.annotations");
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(ann, "ktwin.io/components");
    assert_true(cJSON_IsString(comps));
    assert_string_equal(comps->valuestring,
                        "[{\"name\":\"thermostat\",\"interface\":\"example-thermostat\"},"
                        "{\"name\":\"lamp\",\"interface\":\"example-lamp\"}]");
    assert_null(at(j, "spec.service"));
    assert_int_equal(cJSON_GetArraySize(at(j, "spec.properties")), 1);
    assert_true(cJSON_IsFalse(at(j, "spec.properties[0].writable")));
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_enum_maps_to_enum_type(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/enum.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);
    cJSON *j = doc_of(d, "example-fan");
    assert_string_equal(str_at(j, "spec.description"), "A fan");
    assert_string_equal(str_at(j, "spec.properties[0].displayName"), "vitesse");
    assert_string_equal(str_at(j, "spec.properties[0].schema.enumType.valueSchema"), "integer");
    const cJSON *vals = at(j, "spec.properties[0].schema.enumType.enumValues");
    assert_int_equal(cJSON_GetArraySize(vals), 3);
    /* enumValue is a string in the CRD, even for integer enums. */
    assert_string_equal(str_at(vals, "[1].enumValue"), "1");
    assert_string_equal(str_at(vals, "[1].displayName"), "Low");
    assert_string_equal(str_at(vals, "[0].name"), "off");
    assert_null(at(vals, "[2].displayName"));
    /* By @id from the interface's schemas. */
    assert_string_equal(str_at(j, "spec.properties[1].schema.enumType.valueSchema"), "string");
    assert_string_equal(str_at(j, "spec.properties[1].schema.enumType.enumValues[1].enumValue"),
                        "manual");
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_semantic_type_array_keeps_kind(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/semantic.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);
    cJSON *j = doc_of(d, "example-sensor");
    assert_string_equal(str_at(j, "spec.telemetries[0].name"), "temperature");
    assert_string_equal(str_at(j, "spec.telemetries[0].schema.primitiveType"), "double");
    assert_string_equal(str_at(j, "spec.telemetries[0].comment"),
                        "semanticType: Temperature; unit: degreeCelsius");
    assert_string_equal(str_at(j, "spec.properties[0].name"), "humidity");
    assert_string_equal(str_at(j, "spec.properties[0].comment"),
                        "relative (semanticType: Humidity; unit: percent)");
    assert_null(at(j, "spec.properties[1].comment"));
    assert_null(at(j, "spec.properties[1].writable"));
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_extends_array_keeps_every_parent(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/extends.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);
    assert_int_equal(diag.n_warnings, 0);
    cJSON *j = doc_of(d, "example-smartlamp");
    assert_string_equal(str_at(j, "spec.extendsInterface"), "example-lamp-base");
    const cJSON *ext =
        cJSON_GetObjectItemCaseSensitive(at(j, "metadata.annotations"), "ktwin.io/extends");
    assert_true(cJSON_IsString(ext));
    assert_string_equal(ext->valuestring, "example-lamp-base,example-device");
    assert_string_equal(str_at(j, "spec.relationships[0].interface"), "example-device");
    assert_int_equal(at(j, "spec.relationships[0].maxMultiplicity")->valueint, 3);
    assert_int_equal(at(j, "spec.relationships[0].minMultiplicity")->valueint, 0);
    assert_true(cJSON_IsTrue(at(j, "spec.relationships[0].writeable")));
    assert_null(at(j, "spec.relationships[0].writable"));
    assert_string_equal(str_at(j, "spec.relationships[0].properties[0].schema.primitiveType"),
                        "dateTime");
    assert_null(at(j, "spec.relationships[1]"));
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_relationship_without_target_warns(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/no_target.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_int_equal(diag.n_errors, 0);
    assert_int_equal(model_diag_count(&diag, "relationship-target-missing"), 1);
    assert_string_equal(diag.entries[0].path, "contents[0].target");
    cJSON *j = doc_of(d, "example-marker");
    assert_string_equal(str_at(j, "spec.relationships[0].name"), "near");
    assert_string_equal(str_at(j, "spec.relationships[0].displayName"), "any twin nearby");
    assert_null(at(j, "spec.relationships[0].interface"));
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_complex_schemas(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/schemas.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_no_errors(&diag);
    assert_int_equal(diag.n_warnings, 0);
    cJSON *j = doc_of(d, "example-building");
    assert_string_equal(str_at(j, "spec.comment"), "complex schemas");
    /* Object by @id. */
    assert_string_equal(str_at(j, "spec.properties[0].schema.complexType.type"), "Object");
    assert_string_equal(str_at(j, "spec.properties[0].schema.complexType.fields[1].name"), "zip");
    assert_string_equal(
        str_at(j, "spec.properties[0].schema.complexType.fields[1].schema.primitiveType"),
        "integer");
    /* Array. */
    assert_string_equal(str_at(j, "spec.telemetries[0].schema.complexType.type"), "Array");
    assert_string_equal(str_at(j, "spec.telemetries[0].schema.complexType.fields[0].name"),
                        "elementSchema");
    assert_string_equal(
        str_at(j, "spec.telemetries[0].schema.complexType.fields[0].schema.primitiveType"),
        "double");
    /* Map. */
    const cJSON *map = at(j, "spec.properties[1].schema.complexType");
    assert_string_equal(str_at(map, "type"), "Map");
    assert_string_equal(str_at(map, "fields[0].name"), "tagName");
    assert_string_equal(str_at(map, "fields[0].schema.primitiveType"), "string");
    assert_string_equal(str_at(map, "fields[1].name"), "tagValue");
    assert_string_equal(str_at(map, "fields[1].schema.primitiveType"), "integer");
    /* Nested schemas become type expressions. */
    const cJSON *obj = at(j, "spec.properties[2].schema.complexType");
    assert_string_equal(str_at(obj, "fields[0].schema.primitiveType"), "array<integer>");
    assert_string_equal(str_at(obj, "fields[1].schema.primitiveType"), "map<string,double>");
    assert_string_equal(str_at(obj, "fields[2].schema.primitiveType"),
                        "object{street:string,zip:integer}");
    assert_string_equal(str_at(obj, "fields[3].schema.primitiveType"), "enum<integer>");
    /* Command. */
    assert_string_equal(str_at(j, "spec.commands[0].name"), "reboot");
    assert_string_equal(str_at(j, "spec.commands[0].description"), "restart everything");
    assert_string_equal(str_at(j, "spec.commands[0].request.name"), "delay");
    assert_string_equal(str_at(j, "spec.commands[0].request.displayName"), "Delay");
    assert_string_equal(str_at(j, "spec.commands[0].request.schema.primitiveType"), "duration");
    assert_string_equal(str_at(j, "spec.commands[0].response.schema.complexType.type"), "Object");
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_unsupported_constructs_are_reported(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = load(FIXTURES "/unsupported.json", 0, &diag);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_EINVAL);
    assert_int_equal(model_diag_count(&diag, "content-type-unsupported"), 1);
    assert_int_equal(model_diag_count(&diag, "schema-unsupported"), 1);
    assert_int_equal(model_diag_count(&diag, "schema-unresolved"), 1);
    assert_int_equal(model_diag_count(&diag, "extends-unknown"), 1);
    assert_int_equal(model_diag_count(&diag, "relationship-target-unknown"), 1);
    assert_int_equal(model_diag_count(&diag, "field-unknown"), 1);
    assert_int_equal(diag.n_errors, 2);
    for (size_t i = 0; i < diag.n; i++) {
        const model_diag_entry *e = &diag.entries[i];
        assert_non_null(strstr(e->file, "unsupported.json"));
        if (strcmp(e->code, "content-type-unsupported") == 0) {
            assert_string_equal(e->path, "contents[0].@type");
            assert_int_equal(e->line, 7); /* the member object's "{" */
            assert_int_equal(e->col, 9);
        } else if (strcmp(e->code, "schema-unsupported") == 0) {
            assert_string_equal(e->path, "contents[1].schema");
            assert_int_equal(e->line, 14);
        } else if (strcmp(e->code, "schema-unresolved") == 0) {
            assert_string_equal(e->path, "contents[2].schema");
            assert_int_equal(e->severity, MODEL_DIAG_WARNING);
        } else if (strcmp(e->code, "field-unknown") == 0) {
            assert_string_equal(e->path, "contents[4].colour");
        }
    }
    /* Still converted as far as possible: the unresolved schema falls back to string. */
    cJSON *j = doc_of(d, "example-odd");
    assert_string_equal(str_at(j, "spec.properties[0].name"), "size");
    assert_string_equal(str_at(j, "spec.properties[0].schema.primitiveType"), "string");
    assert_string_equal(str_at(j, "spec.extendsInterface"), "example-missing");
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_bad_json_and_bad_interfaces(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl *d = model_dtdl_new(NULL);
    kt_err err = { 0 };
    const char *bad = "{\n  \"@id\": \"x:A\",\n  \"@type\": \"Interface\",\n  oops\n}";
    assert_int_equal(model_dtdl_add_buffer(d, "bad.json", bad, strlen(bad), &diag, &err), KT_OK);
    assert_int_equal(model_diag_count(&diag, "json-syntax"), 1);
    assert_int_equal(diag.entries[0].line, 4);
    const char *trailing = "{\"@id\":\"x:T\",\"@type\":\"Interface\"} junk";
    assert_int_equal(model_dtdl_add_buffer(d, "t.json", trailing, strlen(trailing), &diag, &err),
                     KT_OK);
    assert_int_equal(model_diag_count(&diag, "json-syntax"), 2);
    const char *arr = "[{\"@id\":\"x:A\",\"@type\":\"Interface\"},{\"@type\":\"Interface\"},"
                      "{\"@id\":\"x:B\",\"@type\":\"Telemetry\"},{\"@id\":\"X:a\","
                      "\"@type\":\"Interface\"},{\"@id\":\"x:A\",\"@type\":\"Interface\"},"
                      "{\"@id\":\"x:b c\",\"@type\":\"Interface\"}]";
    assert_int_equal(model_dtdl_add_buffer(d, "arr.json", arr, strlen(arr), &diag, &err), KT_OK);
    assert_int_equal(model_diag_count(&diag, "interface-id-missing"), 1);
    assert_int_equal(model_diag_count(&diag, "interface-type"), 1);
    assert_int_equal(model_diag_count(&diag, "interface-name-conflict"), 1);
    assert_int_equal(model_diag_count(&diag, "interface-duplicate"), 1);
    assert_int_equal(model_diag_count(&diag, "interface-name-invalid"), 1);
    assert_int_equal(model_dtdl_count(d), 1);
    assert_string_equal(model_dtdl_name(d, 0), "x-a");
    assert_null(model_dtdl_name(d, 1));
    /* Not converted yet. */
    kt_buf b;
    kt_buf_init(&b, 1024);
    assert_int_equal(model_dtdl_emit(d, 0, &b), KT_EINVAL);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_int_equal(model_dtdl_emit(d, 0, &b), KT_OK);
    assert_int_equal(model_dtdl_emit(d, 1, &b), KT_EINVAL);
    kt_buf_fini(&b);
    assert_int_equal(model_dtdl_add_path(d, FIXTURES "/does-not-exist.json", &diag, &err), KT_EIO);
    model_dtdl_free(d);
    model_diag_fini(&diag);
}

static void test_dtdl_namespace_option(void **state)
{
    (void)state;
    model_diag diag;
    model_diag_init(&diag);
    model_dtdl_opts opts = { "city", 0 };
    model_dtdl *d = model_dtdl_new(&opts);
    const char *one = "{\"@id\":\"dtmi:a:B;1\",\"@type\":\"Interface\",\"@context\":"
                      "\"dtmi:dtdl:context;2\",\"contents\":[{\"@type\":\"Property\","
                      "\"name\":\"p\",\"schema\":\"DateTime\"}]}";
    kt_err err = { 0 };
    assert_int_equal(model_dtdl_add_buffer(d, "one.json", one, strlen(one), &diag, &err), KT_OK);
    assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
    assert_int_equal(model_diag_count(&diag, "schema-primitive-case"), 1);
    cJSON *j = doc_of(d, "a-b");
    assert_string_equal(str_at(j, "metadata.namespace"), "city");
    assert_string_equal(str_at(j, "spec.properties[0].schema.primitiveType"), "dateTime");
    cJSON_Delete(j);
    model_dtdl_free(d);
    model_dtdl_free(NULL);
    model_diag_fini(&diag);
}

/* ---- the generated documents pass KTWIN's CRD schema and cross-checks ------------------ */

static void load_generated(model *m, const model_dtdl *d, model_diag *diag)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 24);
    for (size_t i = 0; i < model_dtdl_count(d); i++) {
        kt_buf_reset(&b);
        assert_int_equal(model_dtdl_emit(d, i, &b), KT_OK);
        char name[300];
        snprintf(name, sizeof name, "%s.yaml", model_dtdl_name(d, i));
        kt_err err = { 0 };
        assert_int_equal(model_load_buffer(m, name, b.data, b.len, diag, &err), KT_OK);
    }
    kt_buf_fini(&b);
}

static void test_dtdl_output_loads_as_valid_crds(void **state)
{
    (void)state;
    static const char *const inputs[] = { ONTOLOGY,
                                          FIXTURES "/component.json",
                                          FIXTURES "/enum.json",
                                          FIXTURES "/semantic.json",
                                          FIXTURES "/extends.json",
                                          FIXTURES "/schemas.json" };
    for (int with_service = 0; with_service <= 1; with_service++) {
        model_diag diag;
        model_diag_init(&diag);
        model_dtdl_opts opts = { NULL, with_service };
        model_dtdl *d = model_dtdl_new(&opts);
        kt_err err = { 0 };
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
            assert_int_equal(model_dtdl_add_path(d, inputs[i], &diag, &err), KT_OK);
        }
        assert_int_equal(model_dtdl_convert(d, &diag), KT_OK);
        assert_no_errors(&diag);
        model_diag_fini(&diag);

        model_diag_init(&diag);
        model *m = model_new();
        load_generated(m, d, &diag);
        assert_int_equal(model_resolve(m, &diag), KT_OK);
        assert_no_errors(&diag);
        if (diag.n_warnings != 0) {
            model_diag_print(&diag, stderr);
            fail_msg("%zu warnings from the CRD loader", diag.n_warnings);
        }
        assert_int_equal(model_n_ifaces(m), model_dtdl_count(d));

        const model_iface *pole = model_iface_get(m, "city-pole");
        assert_non_null(pole);
        assert_int_equal(pole->n_parents, 1);
        assert_string_equal(pole->parents[0], "s4city-city-cityfurniture");
        assert_int_equal(pole->has_service, with_service);
        const model_member *rel =
            model_iface_member(pole, MODEL_MEMBER_RELATIONSHIP, "refEVChargingStation");
        assert_non_null(rel);
        assert_string_equal(rel->target, "ngsi-ld-city-evchargingstation");

        const model_iface *lamp = model_iface_get(m, "example-smartlamp");
        assert_non_null(lamp);
        assert_int_equal(lamp->n_parents, 2);
        assert_string_equal(lamp->parents[1], "example-device");
        assert_non_null(model_iface_member(lamp, MODEL_MEMBER_PROPERTY, "firmware"));
        assert_non_null(model_iface_member(lamp, MODEL_MEMBER_PROPERTY, "brightness"));

        const model_iface *room = model_iface_get(m, "example-room");
        const model_member *comp = model_iface_member(room, MODEL_MEMBER_COMPONENT, "lamp");
        assert_non_null(comp);
        assert_string_equal(comp->target, "example-lamp");

        model_free(m);
        model_diag_fini(&diag);
        model_dtdl_free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtdl_name_from_id_follows_ktwin),
        cmocka_unit_test(test_dtdl_smartcity_ontology_converts_without_errors),
        cmocka_unit_test(test_dtdl_writes_one_file_per_interface_or_per_input),
        cmocka_unit_test(test_dtdl_component_becomes_annotation),
        cmocka_unit_test(test_dtdl_enum_maps_to_enum_type),
        cmocka_unit_test(test_dtdl_semantic_type_array_keeps_kind),
        cmocka_unit_test(test_dtdl_extends_array_keeps_every_parent),
        cmocka_unit_test(test_dtdl_relationship_without_target_warns),
        cmocka_unit_test(test_dtdl_complex_schemas),
        cmocka_unit_test(test_dtdl_unsupported_constructs_are_reported),
        cmocka_unit_test(test_dtdl_bad_json_and_bad_interfaces),
        cmocka_unit_test(test_dtdl_namespace_option),
        cmocka_unit_test(test_dtdl_output_loads_as_valid_crds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
