/*
 * test_node.c — the two readers build the same trees with the right marks,
 * scalars are typed like YAML 1.2, and hostile input hits the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kt/buf.h"
#include "model/node.h"

typedef struct collect {
    kt_buf json; /* each document as JSON, one per line */
    size_t docs;
    model_mark first_mark;
    model_mark deep_mark; /* mark of root["b"][1] when present */
} collect;

static kt_status collect_cb(const model_doc *doc, void *user)
{
    collect *c = user;
    if (c->docs == 0) {
        c->first_mark = doc->mark;
    }
    c->docs++;
    if (doc->root != NULL) {
        model_node_to_json(doc->root, &c->json);
        const model_node *b = model_node_get(doc->root, "b");
        if (b != NULL && b->kind == MODEL_NODE_SEQ && b->n > 1) {
            c->deep_mark = b->items[1]->mark;
        }
    }
    kt_buf_putc(&c->json, '\n');
    return KT_OK;
}

static kt_status run(int json, const char *text, collect *c, kt_err *err, const model_parse_limits *lim)
{
    kt_arena a;
    kt_arena_init(&a, 1024);
    memset(c, 0, sizeof *c);
    kt_buf_init(&c->json, 1 << 20);
    kt_status st = json ? model_parse_json(&a, "t", text, strlen(text), lim, collect_cb, c, err)
                        : model_parse_yaml(&a, "t", text, strlen(text), lim, collect_cb, c, err);
    kt_arena_fini(&a);
    return st;
}

static void test_yaml_and_json_build_the_same_tree(void **state)
{
    (void)state;
    collect y, j;
    kt_err err = { 0 };
    assert_int_equal(run(0, "a: 1\nb: [x, \"2\", true, null, 1.5]\nc: {d: e}\n", &y, &err, NULL), KT_OK);
    assert_int_equal(run(1, "{\"a\": 1, \"b\": [\"x\", \"2\", true, null, 1.5], \"c\": {\"d\": \"e\"}}", &j, &err, NULL), KT_OK);
    assert_string_equal(y.json.data, j.json.data);
    assert_string_equal(y.json.data, "{\"a\":1,\"b\":[\"x\",\"2\",true,null,1.5],\"c\":{\"d\":\"e\"}}\n");
    kt_buf_fini(&y.json);
    kt_buf_fini(&j.json);
}

static void test_marks_are_one_based_line_and_column(void **state)
{
    (void)state;
    collect c;
    kt_err err = { 0 };
    assert_int_equal(run(1, "\n  {\"a\": 1,\n   \"b\": [1,\n     22]}", &c, &err, NULL), KT_OK);
    assert_int_equal(c.first_mark.line, 2);
    assert_int_equal(c.first_mark.col, 3);
    assert_int_equal(c.deep_mark.line, 4);
    assert_int_equal(c.deep_mark.col, 6);
    kt_buf_fini(&c.json);
    assert_int_equal(run(0, "a: 1\nb:\n  - 1\n  - 22\n", &c, &err, NULL), KT_OK);
    assert_int_equal(c.deep_mark.line, 4);
    assert_int_equal(c.deep_mark.col, 5);
    kt_buf_fini(&c.json);
}

static void test_json_stream_gives_one_document_per_value(void **state)
{
    (void)state;
    collect c;
    kt_err err = { 0 };
    assert_int_equal(run(1, "{\"a\":1}\n{\"a\":2}\n[3]", &c, &err, NULL), KT_OK);
    assert_int_equal(c.docs, 3);
    assert_string_equal(c.json.data, "{\"a\":1}\n{\"a\":2}\n[3]\n");
    kt_buf_fini(&c.json);
}

static void test_json_escapes_and_surrogates_decode_to_utf8(void **state)
{
    (void)state;
    collect c;
    kt_err err = { 0 };
    assert_int_equal(run(1, "[\"a\\n\\u00e9\\ud83d\\ude00\\\"\"]", &c, &err, NULL), KT_OK);
    assert_string_equal(c.json.data, "[\"a\\n\xc3\xa9\xf0\x9f\x98\x80\\\"\"]\n");
    kt_buf_fini(&c.json);
}

static void test_json_errors_name_line_and_column(void **state)
{
    (void)state;
    static const char *const bad[] = { "{\"a\" 1}", "[1,]", "{\"a\":\"x}", "[01]", "{\"a\":1,}",
                                       "[\"\\ud800\"]", "[tru]", "{1:2}", "[\"\x01\"]", "[1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        collect c;
        kt_err err = { 0 };
        assert_int_equal(run(1, bad[i], &c, &err, NULL), KT_EINVAL);
        assert_non_null(strstr(err.msg, "t:1:"));
        kt_buf_fini(&c.json);
    }
}

static void test_yaml_aliases_share_the_anchored_node(void **state)
{
    (void)state;
    collect c;
    kt_err err = { 0 };
    assert_int_equal(run(0, "a: &x {k: v}\nb: *x\n", &c, &err, NULL), KT_OK);
    assert_string_equal(c.json.data, "{\"a\":{\"k\":\"v\"},\"b\":{\"k\":\"v\"}}\n");
    kt_buf_fini(&c.json);
    assert_int_equal(run(0, "a: *nope\n", &c, &err, NULL), KT_EINVAL);
    kt_buf_fini(&c.json);
}

static void test_depth_and_node_limits_stop_hostile_input(void **state)
{
    (void)state;
    model_parse_limits lim = { 8, 50 };
    collect c;
    kt_err err = { 0 };
    assert_int_equal(run(1, "[[[[[[[[[[[[1]]]]]]]]]]]]", &c, &err, &lim), KT_ETOOBIG);
    kt_buf_fini(&c.json);
    kt_err_clear(&err);
    assert_int_equal(run(0, "[[[[[[[[[[[[1]]]]]]]]]]]]", &c, &err, &lim), KT_ETOOBIG);
    kt_buf_fini(&c.json);
    char many[1024];
    size_t used = 0;
    many[used++] = '[';
    for (int i = 0; i < 100; i++) {
        used += (size_t)snprintf(many + used, sizeof many - used, i > 0 ? ",1" : "1");
    }
    snprintf(many + used, sizeof many - used, "]");
    kt_err_clear(&err);
    assert_int_equal(run(1, many, &c, &err, &lim), KT_ETOOBIG);
    kt_buf_fini(&c.json);
}

static void test_scalar_types_follow_yaml_core_schema(void **state)
{
    (void)state;
    model_node n = { 0 };
    n.kind = MODEL_NODE_SCALAR;
    struct {
        const char *s;
        int quoted;
        model_scalar_type t;
    } cases[] = {
        { "", 0, MODEL_SCALAR_NULL },      { "~", 0, MODEL_SCALAR_NULL },
        { "true", 0, MODEL_SCALAR_BOOL },  { "true", 1, MODEL_SCALAR_STRING },
        { "yes", 0, MODEL_SCALAR_STRING }, { "42", 0, MODEL_SCALAR_INT },
        { "-0x1f", 0, MODEL_SCALAR_INT },  { "1.5e3", 0, MODEL_SCALAR_FLOAT },
        { "1.10", 0, MODEL_SCALAR_FLOAT }, { "1.2.3", 0, MODEL_SCALAR_STRING },
        { ".inf", 0, MODEL_SCALAR_FLOAT }, { "city-pole", 0, MODEL_SCALAR_STRING },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n.str = cases[i].s;
        n.len = strlen(cases[i].s);
        n.quoted = (uint8_t)cases[i].quoted;
        assert_int_equal(model_node_scalar_type(&n), cases[i].t);
    }
    long long v;
    n.quoted = 0;
    n.str = "9223372036854775808";
    n.len = strlen(n.str);
    assert_int_equal(model_node_int(&n, &v), KT_EINVAL);
    n.str = "-9223372036854775808";
    n.len = strlen(n.str);
    assert_int_equal(model_node_int(&n, &v), KT_OK);
    assert_true(v < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_and_json_build_the_same_tree),
        cmocka_unit_test(test_marks_are_one_based_line_and_column),
        cmocka_unit_test(test_json_stream_gives_one_document_per_value),
        cmocka_unit_test(test_json_escapes_and_surrogates_decode_to_utf8),
        cmocka_unit_test(test_json_errors_name_line_and_column),
        cmocka_unit_test(test_yaml_aliases_share_the_anchored_node),
        cmocka_unit_test(test_depth_and_node_limits_stop_hostile_input),
        cmocka_unit_test(test_scalar_types_follow_yaml_core_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
