/*
 * test_emit.c — YAML and JSON emitter (model/emit.h).
 *
 * Exact layout checks, a quoting table, and round trips: emitted YAML is
 * read back with libyaml (plain scalars typed the way a YAML 1.1 reader
 * would), emitted JSON with cJSON, and both must equal the input tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <yaml.h>

#include "kt/buf.h"
#include "model/emit.h"

/* ---- YAML back to cJSON ----------------------------------------------------- */

static int ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        if (x != *b) {
            return 0;
        }
    }
    return *a == *b;
}

/* A plain scalar as a YAML 1.1 reader might type it; anything odd becomes Raw. */
static cJSON *plain_scalar(const char *s)
{
    static const char *const odd[] = {
        "~", "yes", "no", "on", "off", "y", "n", ".inf", ".nan", NULL
    };
    if (ieq(s, "null") || s[0] == '\0') {
        return cJSON_CreateNull();
    }
    if (ieq(s, "true")) {
        return cJSON_CreateTrue();
    }
    if (ieq(s, "false")) {
        return cJSON_CreateFalse();
    }
    for (size_t i = 0; odd[i] != NULL; i++) {
        if (ieq(s, odd[i])) {
            return cJSON_CreateRaw(s);
        }
    }
    char *end;
    double v = strtod(s, &end);
    if (end != s && *end == '\0') {
        return cJSON_CreateNumber(v);
    }
    if (s[0] >= '0' && s[0] <= '9') {
        return cJSON_CreateRaw(s); /* dates, sexagesimals, hex: not a plain string */
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
            assert_int_equal(k->type, YAML_SCALAR_NODE);
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

/* The first document of text; fails the test on a YAML error. */
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

static void assert_yaml_roundtrip(const cJSON *doc)
{
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(model_emit_yaml_doc(doc, &b), KT_OK);
    cJSON *back = yaml_to_json(b.data);
    if (!cJSON_Compare(doc, back, 1)) {
        char *want = cJSON_PrintUnformatted(doc);
        char *got = cJSON_PrintUnformatted(back);
        fail_msg("round trip differs\nyaml:\n%s\nwant %s\ngot  %s", b.data, want, got);
    }
    cJSON_Delete(back);
    kt_buf_fini(&b);
}

static char *scalar(const char *s)
{
    static char out[256];
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(model_emit_yaml_scalar(s, &b), KT_OK);
    snprintf(out, sizeof out, "%s", b.data != NULL ? b.data : "");
    kt_buf_fini(&b);
    return out;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_emit_plain_strings_stay_plain(void **state)
{
    (void)state;
    assert_string_equal(scalar("hello"), "hello");
    assert_string_equal(scalar("city:Pole"), "city:Pole");
    assert_string_equal(scalar("ghcr.io/open-digital-twin/ktwin-city-pole-service:0.1"),
                        "ghcr.io/open-digital-twin/ktwin-city-pole-service:0.1");
    assert_string_equal(scalar("ktwin.io/extends"), "ktwin.io/extends");
    assert_string_equal(scalar("two words, a comma"), "two words, a comma");
    assert_string_equal(scalar("\xc3\xbc"
                               "ber"),
                        "\xc3\xbc"
                        "ber");
    assert_string_equal(scalar("a-b"), "a-b");
    assert_string_equal(scalar("IfNotPresent"), "IfNotPresent");
}

static void test_emit_quotes_what_yaml_would_retype(void **state)
{
    (void)state;
    static const char *const quoted[] = {
        "",     "true", "False", "yes",   "No",         "on",   "OFF",   "y",      "n",
        "null", "Null", "~",     "1",     "1.5",        "-1",   "+1",    ".5",     "0755",
        "0x1f", "1e3",  "1_000", "12:30", "2024-01-01", ".inf", "-.Inf", ".NaN",   "=",
        "<<",   "- x",  "-",     "a: b",  "a #b",       "key:", " lead", "trail ", "#x",
        "&x",   "*x",   "!x",    "|x",    ">x",         "'x",   "\"x",   "%x",     "@x",
        "`x",   "{x",   "[x",    "]x",    "}x",         ",x",   "?x",    ":x",     NULL
    };
    for (size_t i = 0; quoted[i] != NULL; i++) {
        const char *out = scalar(quoted[i]);
        if (out[0] != '"') {
            fail_msg("\"%s\" was written plain: %s", quoted[i], out);
        }
    }
}

static void test_emit_escapes_in_double_quotes(void **state)
{
    (void)state;
    assert_string_equal(scalar("line\nbreak"), "\"line\\nbreak\"");
    assert_string_equal(scalar("tab\there"), "\"tab\\there\"");
    assert_string_equal(scalar("say \"hi\": now"), "\"say \\\"hi\\\": now\"");
    assert_string_equal(scalar("back\\slash: x"), "\"back\\\\slash: x\"");
    assert_string_equal(scalar("bell\a"), "\"bell\\u0007\"");
    assert_string_equal(scalar("del\x7f"), "\"del\\u007f\"");
    assert_string_equal(scalar("bad\xff"
                               "byte"),
                        "\"bad\\ufffdbyte\"");
    assert_string_equal(scalar("c1\xc2\x85"), "\"c1\\u0085\"");
    assert_string_equal(scalar("bom\xef\xbb\xbf"), "\"bom\\ufeff\"");
    assert_string_equal(scalar(NULL), "null");
}

static void test_emit_numbers_exact(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "a", 20);
    cJSON_AddNumberToObject(o, "b", -3);
    cJSON_AddNumberToObject(o, "c", 1.5);
    cJSON_AddNumberToObject(o, "d", 0.1);
    cJSON_AddNumberToObject(o, "e", 1e20);
    cJSON_AddNumberToObject(o, "f", 1e-7);
    cJSON_AddNumberToObject(o, "g", 9007199254740993.0);
    cJSON_AddNumberToObject(o, "h", 3.141592653589793);
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(model_emit_yaml_doc(o, &b), KT_OK);
    assert_string_equal(b.data, "---\na: 20\nb: -3\nc: 1.5\nd: 0.1\ne: 1.0e+20\nf: 1.0e-07\n"
                                "g: 9007199254740992\nh: 3.141592653589793\n");
    kt_buf_reset(&b);
    assert_int_equal(model_emit_json_doc(o, &b), KT_OK);
    assert_string_equal(b.data,
                        "{\"a\":20,\"b\":-3,\"c\":1.5,\"d\":0.1,\"e\":1.0e+20,\"f\":1.0e-07,"
                        "\"g\":9007199254740992,\"h\":3.141592653589793}\n");
    assert_yaml_roundtrip(o);
    kt_buf_fini(&b);
    cJSON_Delete(o);
}

static void test_emit_block_layout(void **state)
{
    (void)state;
    const char *json =
        "{\"apiVersion\":\"dtd.ktwin/v0\",\"metadata\":{\"name\":\"city-pole\",\"labels\":{}},"
        "\"spec\":{\"flag\":true,\"none\":null,\"empty\":[],"
        "\"relationships\":[{\"name\":\"refA\",\"interface\":\"a\"},{\"name\":\"refB\","
        "\"properties\":[{\"name\":\"p\",\"schema\":{\"primitiveType\":\"double\"}}]}],"
        "\"matrix\":[[1,2],[],[{\"x\":\"1\"}]],\"tags\":[\"on\",\"plain\"]}}";
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(model_emit_yaml_doc(doc, &b), KT_OK);
    assert_string_equal(b.data, "---\n"
                                "apiVersion: dtd.ktwin/v0\n"
                                "metadata:\n"
                                "  name: city-pole\n"
                                "  labels: {}\n"
                                "spec:\n"
                                "  flag: true\n"
                                "  none: null\n"
                                "  empty: []\n"
                                "  relationships:\n"
                                "  - name: refA\n"
                                "    interface: a\n"
                                "  - name: refB\n"
                                "    properties:\n"
                                "    - name: p\n"
                                "      schema:\n"
                                "        primitiveType: double\n"
                                "  matrix:\n"
                                "  - - 1\n"
                                "    - 2\n"
                                "  - []\n"
                                "  - - x: \"1\"\n"
                                "  tags:\n"
                                "  - \"on\"\n"
                                "  - plain\n");
    assert_yaml_roundtrip(doc);
    kt_buf_fini(&b);
    cJSON_Delete(doc);
}

static void test_emit_scalar_and_empty_roots(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 4096);
    cJSON *o = cJSON_CreateObject();
    assert_int_equal(model_emit_yaml_doc(o, &b), KT_OK);
    assert_string_equal(b.data, "---\n{}\n");
    cJSON_Delete(o);
    kt_buf_reset(&b);
    cJSON *s = cJSON_CreateString("yes");
    assert_int_equal(model_emit_yaml_doc(s, &b), KT_OK);
    assert_string_equal(b.data, "---\n\"yes\"\n");
    cJSON_Delete(s);
    kt_buf_fini(&b);
}

static void test_emit_roundtrips_awkward_strings(void **state)
{
    (void)state;
    static const char *const values[] = { "",
                                          "true",
                                          "no",
                                          "1.5",
                                          "0755",
                                          "12:30:01",
                                          "2024-01-01",
                                          "~",
                                          "- item",
                                          "a: b",
                                          "x #y",
                                          "k:",
                                          " pad ",
                                          "multi\nline\n",
                                          "\ttab",
                                          "q\"uote'",
                                          "back\\slash",
                                          "{flow}",
                                          "[seq]",
                                          "&anchor",
                                          "*alias",
                                          "!tag",
                                          "%directive",
                                          "@at",
                                          "`tick",
                                          "|lit",
                                          ">fold",
                                          "?q",
                                          ".inf",
                                          "-.5",
                                          "+3",
                                          "0x10",
                                          "1e5",
                                          "=",
                                          "<<",
                                          "\xc3\xa9t\xc3\xa9",
                                          "\xe2\x80\xa8sep",
                                          "nul?",
                                          NULL };
    cJSON *doc = cJSON_CreateObject();
    cJSON *seq = cJSON_AddArrayToObject(doc, "values");
    for (size_t i = 0; values[i] != NULL; i++) {
        cJSON_AddItemToArray(seq, cJSON_CreateString(values[i]));
        /* Keys take the same quoting. */
        if (values[i][0] != '\0') {
            cJSON_AddStringToObject(doc, values[i], values[i]);
        }
    }
    assert_yaml_roundtrip(doc);
    kt_buf b;
    kt_buf_init(&b, 1u << 16);
    assert_int_equal(model_emit_json_doc(doc, &b), KT_OK);
    cJSON *back = cJSON_Parse(b.data);
    assert_non_null(back);
    assert_true(cJSON_Compare(doc, back, 1));
    cJSON_Delete(back);
    kt_buf_fini(&b);
    cJSON_Delete(doc);
}

static void test_emit_json_compact_and_escaped(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"a\":[1,true,null,\"x\\u0001\\\"\\\\\\n\"],\"b\":{},\"c\":[]}");
    assert_non_null(doc);
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(model_emit_json_doc(doc, &b), KT_OK);
    assert_string_equal(b.data,
                        "{\"a\":[1,true,null,\"x\\u0001\\\"\\\\\\n\"],\"b\":{},\"c\":[]}\n");
    kt_buf_fini(&b);
    cJSON_Delete(doc);
}

static void test_emit_over_cap_leaves_buffer_unchanged(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"name\":\"a-rather-long-value-that-does-not-fit\"}");
    kt_buf b;
    kt_buf_init(&b, 24);
    assert_int_equal(kt_buf_puts(&b, "keep"), KT_OK);
    assert_int_equal(model_emit_yaml_doc(doc, &b), KT_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_int_equal(model_emit_json_doc(doc, &b), KT_ETOOBIG);
    assert_string_equal(b.data, "keep");
    kt_buf_fini(&b);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emit_plain_strings_stay_plain),
        cmocka_unit_test(test_emit_quotes_what_yaml_would_retype),
        cmocka_unit_test(test_emit_escapes_in_double_quotes),
        cmocka_unit_test(test_emit_numbers_exact),
        cmocka_unit_test(test_emit_block_layout),
        cmocka_unit_test(test_emit_scalar_and_empty_roots),
        cmocka_unit_test(test_emit_roundtrips_awkward_strings),
        cmocka_unit_test(test_emit_json_compact_and_escaped),
        cmocka_unit_test(test_emit_over_cap_leaves_buffer_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
