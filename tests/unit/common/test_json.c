/*
 * test_json.c — kt_json: bounded parsing with error positions, typed getters
 * that tell missing from wrong, printing into a kt_buf, and cJSON memory
 * going through kt_malloc (so kt_mem_fail_at reaches it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include <string.h>

#include "kt/json.h"
#include "kt/mem.h"

static int teardown(void **state)
{
    (void)state;
    kt_mem_fail_at(0);
    return 0;
}

/* Parse a C string; the copy is exactly len bytes, without a terminator, so ASan sees overreads. */
static kt_status parse_exact(const char *text, size_t max_len, cJSON **out, kt_err *err)
{
    size_t len = strlen(text);
    char *copy = kt_xmalloc(len == 0 ? 1 : len);
    memcpy(copy, text, len);
    kt_status st = kt_json_parse(copy, len, max_len, out, err);
    kt_free(copy);
    return st;
}

static cJSON *parse_ok(const char *text)
{
    cJSON *v = NULL;
    kt_err err = { 0 };
    if (parse_exact(text, 1 << 20, &v, &err) != KT_OK) {
        fail_msg("parse of %s: %s", text, err.msg);
    }
    return v;
}

/* ---- parse ---------------------------------------------------------------------- */

static void test_json_parse_accepts_value_without_terminator(void **state)
{
    (void)state;
    cJSON *v = parse_ok("  {\"a\": [1, 2, {\"b\": \"x\"}], \"c\": null}\n\t ");
    assert_true(cJSON_IsObject(v));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(v, "a")), 3);
    cJSON_Delete(v);

    v = parse_ok("42");
    assert_true(cJSON_IsNumber(v));
    cJSON_Delete(v);
}

static void test_json_parse_reports_line_col_and_offset(void **state)
{
    (void)state;
    cJSON *v = (cJSON *)&v; /* must be reset to NULL on failure */
    kt_err err = { 0 };
    /* The error is the missing value after "b": at line 3, column 8, byte 19. */
    assert_int_equal(parse_exact("{\n  \"a\": 1,\n  \"b\": }", 1000, &v, &err), KT_EINVAL);
    assert_null(v);
    assert_int_equal(err.status, KT_EINVAL);
    assert_non_null(strstr(err.msg, "line 3:8"));
    assert_non_null(strstr(err.msg, "byte 19"));
}

static void test_json_parse_error_on_first_line(void **state)
{
    (void)state;
    cJSON *v = NULL;
    kt_err err = { 0 };
    assert_int_equal(parse_exact("[1, 2,, 3]", 1000, &v, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "line 1:7 (byte 6)"));
}

static void test_json_parse_rejects_trailing_data(void **state)
{
    (void)state;
    cJSON *v = NULL;
    kt_err err = { 0 };
    assert_int_equal(parse_exact("{\"a\": 1}\n  x", 1000, &v, &err), KT_EINVAL);
    assert_null(v);
    assert_non_null(strstr(err.msg, "line 2:3 (byte 11)"));
    assert_non_null(strstr(err.msg, "after the value"));

    kt_err_clear(&err);
    assert_int_equal(parse_exact("1 2", 1000, &v, &err), KT_EINVAL);
}

static void test_json_parse_rejects_empty_and_truncated(void **state)
{
    (void)state;
    cJSON *v = NULL;
    kt_err err = { 0 };
    assert_int_equal(parse_exact("", 1000, &v, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "line 1:1 (byte 0)"));
    static const char *const bad[] = { "   ", "{", "[1,", "\"abc", "tru", "{\"a\"", "nul", "-" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kt_err_clear(&err);
        assert_int_equal(parse_exact(bad[i], 1000, &v, &err), KT_EINVAL);
        assert_null(v);
    }
}

static void test_json_parse_refuses_input_over_max_len(void **state)
{
    (void)state;
    cJSON *v = NULL;
    kt_err err = { 0 };
    assert_int_equal(parse_exact("[1,2,3]", 6, &v, &err), KT_ETOOBIG);
    assert_null(v);
    assert_non_null(strstr(err.msg, "7 bytes"));
    assert_non_null(strstr(err.msg, "6-byte limit"));
    kt_err_clear(&err);
    assert_int_equal(parse_exact("[1,2,3]", 7, &v, &err), KT_OK); /* exactly max */
    cJSON_Delete(v);
}

static void test_json_parse_uses_kt_malloc(void **state)
{
    (void)state;
    uint64_t before = kt_mem_allocs();
    cJSON *v = parse_ok("{\"a\": [1, 2, 3]}");
    assert_true(kt_mem_allocs() - before >= 5); /* the copy plus the cJSON nodes */
    cJSON_Delete(v);
}

/* Inside a scratch scope a parse costs only the arena's block allocations; outside, kt_malloc again. */
static void test_json_scratch_scope_allocates_from_the_arena(void **state)
{
    (void)state;
    static const char text[] = "{\"a\":[1,2,3],\"b\":{\"c\":\"str\",\"d\":null},\"e\":true}";
    kt_arena a;
    kt_arena_init(&a, 4096);
    kt_json_scratch_begin(&a);
    uint64_t before = kt_mem_allocs();
    for (int i = 0; i < 10; i++) {
        cJSON *v = NULL;
        kt_err err = { 0 };
        assert_int_equal(kt_json_parse(text, sizeof text - 1, 1000, &v, &err), KT_OK);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(v, "b"), "c")->valuestring,
                            "str");
        cJSON_Delete(v);    /* a no-op inside the scope */
        kt_arena_reset(&a); /* keeps one block: the next parse reuses it */
    }
    assert_true(kt_mem_allocs() - before <= 1); /* the arena's one block */
    assert_true(a.total_bytes > 0);
    /* A syntax error inside the scope is still an error. */
    cJSON *bad = NULL;
    kt_err err = { 0 };
    assert_int_equal(kt_json_parse("{\"a\":", 5, 1000, &bad, &err), KT_EINVAL);
    assert_null(bad);
    kt_json_scratch_end();
    kt_arena_fini(&a);
    /* Outside the scope the nodes are kt_malloc'd and freed by cJSON_Delete again. */
    before = kt_mem_allocs();
    cJSON *v = parse_ok(text);
    assert_true(kt_mem_allocs() - before >= 5);
    cJSON_Delete(v);
}

/* A block allocation that fails inside the scope is ENOMEM, like any other allocation. */
static void test_json_scratch_out_of_memory_is_enomem(void **state)
{
    (void)state;
    static const char text[] = "{\"a\":[1,2,3]}";
    kt_arena a;
    kt_arena_init(&a, 4096);
    kt_json_scratch_begin(&a);
    cJSON *v = NULL;
    kt_err err = { 0 };
    kt_mem_fail_at(1);
    kt_status st = kt_json_parse(text, sizeof text - 1, 1000, &v, &err);
    kt_mem_fail_at(0);
    assert_int_equal(st, KT_ENOMEM);
    assert_null(v);
    kt_json_scratch_end();
    kt_arena_fini(&a);
}

static void test_json_parse_out_of_memory_is_enomem(void **state)
{
    (void)state;
    const char *text = "{\"a\": [1, 2, 3], \"b\": \"str\"}";
    size_t len = strlen(text);
    /* Fail each allocation in turn: always ENOMEM, never a bogus syntax error, never a leak. */
    for (uint64_t n = 1; n < 50; n++) {
        cJSON *v = NULL;
        kt_err err = { 0 };
        kt_mem_fail_at(n);
        kt_status st = kt_json_parse(text, len, 1000, &v, &err);
        kt_mem_fail_at(0);
        if (st == KT_OK) {
            cJSON_Delete(v);
            assert_true(n > 5);
            return;
        }
        assert_int_equal(st, KT_ENOMEM);
        assert_null(v);
    }
    fail_msg("parse never succeeded");
}

static void test_json_init_is_idempotent(void **state)
{
    (void)state;
    kt_json_init();
    kt_json_init();
    uint64_t before = kt_mem_allocs();
    cJSON *o = cJSON_CreateObject();
    assert_true(kt_mem_allocs() > before);
    cJSON_Delete(o);
}

/* ---- getters -------------------------------------------------------------------- */

static const char *doc_text = "{\"name\": \"pump-7\", \"port\": 8080, \"ratio\": 0.25, "
                              "\"on\": true, \"off\": false, \"nil\": null, \"big\": 1e300, "
                              "\"frac\": 3.5, \"whole\": 3.0, \"neg\": -12, \"arr\": [1], "
                              "\"Name\": \"other\"}";

static void test_json_get_str_distinguishes_missing_and_wrong_type(void **state)
{
    (void)state;
    cJSON *doc = parse_ok(doc_text);
    const char *s = "unchanged";
    kt_err err = { 0 };
    assert_int_equal(kt_json_get_str(doc, "name", &s, &err), KT_OK);
    assert_string_equal(s, "pump-7");

    assert_int_equal(kt_json_get_str(doc, "nope", &s, &err), KT_ENOTFOUND);
    assert_string_equal(err.msg, "nope: missing");
    assert_string_equal(s, "pump-7");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_str(doc, "port", &s, &err), KT_EINVAL);
    assert_string_equal(err.msg, "port: expected a string, got number");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_str(doc, "nil", &s, &err), KT_EINVAL); /* null is not missing */
    assert_string_equal(err.msg, "nil: expected a string, got null");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_str(doc, "NAME", &s, &err), KT_ENOTFOUND); /* case-sensitive */
    assert_int_equal(kt_json_get_str(doc, "Name", &s, NULL), KT_OK);
    assert_string_equal(s, "other");
    cJSON_Delete(doc);
}

static void test_json_get_int_checks_type_integrality_and_range(void **state)
{
    (void)state;
    cJSON *doc = parse_ok(doc_text);
    int64_t i = -1;
    kt_err err = { 0 };
    assert_int_equal(kt_json_get_int(doc, "port", &i, 1, 65535, &err), KT_OK);
    assert_int_equal(i, 8080);
    assert_int_equal(kt_json_get_int(doc, "whole", &i, 0, 10, &err), KT_OK);
    assert_int_equal(i, 3);
    assert_int_equal(kt_json_get_int(doc, "neg", &i, -100, 0, &err), KT_OK);
    assert_int_equal(i, -12);

    assert_int_equal(kt_json_get_int(doc, "port", &i, 1, 1024, &err), KT_EINVAL);
    assert_string_equal(err.msg, "port: 8080 out of range 1..1024");
    assert_int_equal(i, -12);

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_int(doc, "frac", &i, 0, 10, &err), KT_EINVAL);
    assert_string_equal(err.msg, "frac: 3.5 is not an integer");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_int(doc, "big", &i, INT64_MIN, INT64_MAX, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "big: 1e+300 out of range"));

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_int(doc, "name", &i, 0, 10, &err), KT_EINVAL);
    assert_string_equal(err.msg, "name: expected an integer, got string");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_int(doc, "missing", &i, 0, 10, &err), KT_ENOTFOUND);
    assert_string_equal(err.msg, "missing: missing");
    cJSON_Delete(doc);
}

static void test_json_get_int_handles_int64_edges(void **state)
{
    (void)state;
    cJSON *doc = parse_ok("{\"lo\": -9223372036854775808, \"hi\": 9223372036854775808, "
                          "\"p53\": 9007199254740992}");
    int64_t i = 0;
    kt_err err = { 0 };
    assert_int_equal(kt_json_get_int(doc, "lo", &i, INT64_MIN, INT64_MAX, &err), KT_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(kt_json_get_int(doc, "hi", &i, INT64_MIN, INT64_MAX, &err), KT_EINVAL);
    assert_int_equal(kt_json_get_int(doc, "p53", &i, 0, INT64_MAX, NULL), KT_OK);
    assert_true(i == 9007199254740992);
    cJSON_Delete(doc);
}

static void test_json_get_double_and_bool(void **state)
{
    (void)state;
    cJSON *doc = parse_ok(doc_text);
    double d = 0;
    bool b = false;
    kt_err err = { 0 };
    assert_int_equal(kt_json_get_double(doc, "ratio", &d, &err), KT_OK);
    assert_true(d == 0.25);
    assert_int_equal(kt_json_get_double(doc, "port", &d, &err), KT_OK);
    assert_true(d == 8080.0);
    assert_int_equal(kt_json_get_double(doc, "on", &d, &err), KT_EINVAL);
    assert_string_equal(err.msg, "on: expected a number, got bool");

    kt_err_clear(&err);
    assert_int_equal(kt_json_get_bool(doc, "on", &b, &err), KT_OK);
    assert_true(b);
    assert_int_equal(kt_json_get_bool(doc, "off", &b, &err), KT_OK);
    assert_false(b);
    assert_int_equal(kt_json_get_bool(doc, "port", &b, &err), KT_EINVAL);
    assert_string_equal(err.msg, "port: expected true or false, got number");
    kt_err_clear(&err);
    assert_int_equal(kt_json_get_bool(doc, "absent", &b, &err), KT_ENOTFOUND);
    assert_int_equal(kt_json_get_double(doc, "absent", &d, NULL), KT_ENOTFOUND);
    cJSON_Delete(doc);
}

static void test_json_getters_reject_non_object(void **state)
{
    (void)state;
    cJSON *arr = parse_ok("[1, 2]");
    const char *s = NULL;
    kt_err err = { 0 };
    assert_int_equal(kt_json_get_str(arr, "k", &s, &err), KT_EINVAL);
    assert_string_equal(err.msg, "k: looked up in a array, not an object");
    kt_err_clear(&err);
    assert_int_equal(kt_json_get_str(NULL, "k", &s, &err), KT_EINVAL);
    cJSON_Delete(arr);
}

/* ---- print ---------------------------------------------------------------------- */

static void test_json_print_buf_appends_unformatted(void **state)
{
    (void)state;
    cJSON *v = parse_ok("{ \"a\" : [ 1 , true , null ] ,\n \"b\" : \"q\\\"x\" }");
    kt_buf b;
    kt_buf_init(&b, 1024);
    kt_buf_puts(&b, "json=");
    assert_int_equal(kt_json_print_buf(v, &b), KT_OK);
    assert_string_equal(b.data, "json={\"a\":[1,true,null],\"b\":\"q\\\"x\"}");
    kt_buf_fini(&b);
    cJSON_Delete(v);
}

static void test_json_print_buf_over_cap_leaves_buffer_unchanged(void **state)
{
    (void)state;
    cJSON *v = parse_ok("{\"key\": \"a fairly long value\"}");
    kt_buf b;
    kt_buf_init(&b, 16);
    kt_buf_puts(&b, "pre");
    assert_int_equal(kt_json_print_buf(v, &b), KT_ETOOBIG);
    assert_string_equal(b.data, "pre");
    assert_int_equal(kt_json_print_buf(NULL, &b), KT_EINVAL);
    kt_buf_fini(&b);
    cJSON_Delete(v);
}

static void test_json_print_buf_out_of_memory_is_enomem(void **state)
{
    (void)state;
    cJSON *v = parse_ok("[1]");
    kt_buf b;
    kt_buf_init(&b, 1024);
    kt_mem_fail_at(1);
    assert_int_equal(kt_json_print_buf(v, &b), KT_ENOMEM);
    kt_mem_fail_at(0);
    assert_int_equal(b.len, 0);
    kt_buf_fini(&b);
    cJSON_Delete(v);
}

/* Our printer writes exactly cJSON_PrintUnformatted's bytes. */
static void assert_prints_like_cjson(const cJSON *v)
{
    char *want = cJSON_PrintUnformatted(v);
    assert_non_null(want);
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(kt_json_print_buf(v, &b), KT_OK);
    assert_string_equal(b.data, want);
    kt_buf_fini(&b);
    cJSON_free(want);
}

static void test_json_print_buf_matches_cjson_byte_for_byte(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}",
        "[]",
        "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[1,[2,[3]]]]}",
        "[0,-0,1,-1,2147483647,-2147483648,2147483648,-2147483649,1e300,-1e-300]",
        "[999999999999999,-999999999999999,1000000000000000,4503599627370496.5,-123.0,7e14]",
        "[0.1,0.2,0.30000000000000004,1.5,-2.25,3.141592653589793,1e21,1e-7,123456789012345678]",
        "[22.5,64.2,1013.25,0.000123,5e-324,1.7976931348623157e308,9007199254740993]",
        "[\"\",\"plain\",\"q\\\"b\\\\s\\/\",\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001f\\u007f\"]",
        "[\"caf\\u00e9 \\u20ac \\ud83d\\ude00\",\"\xc3\xa9\"]",
        "{\"powerState\":\"on\",\"status\":\"ok\",\"t\":true,\"f\":false,\"n\":null}",
        "{\"dup\":1,\"dup\":2,\"\\u0000k\":3}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cJSON *v = parse_ok(docs[i]);
        assert_prints_like_cjson(v);
        cJSON_Delete(v);
    }
    /* Numbers set by code, not by the parser (valueint saturated by cJSON). */
    static const double nums[] = { 0.5, -7.0, 1e10, -1e10, 2.5e-5, 1.0 / 3.0, 4e9, 100.0 };
    kt_json_init();
    cJSON *arr = cJSON_CreateArray();
    assert_non_null(arr);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(nums[i]));
    }
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(NAN));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(INFINITY));
    cJSON_AddItemToArray(arr, cJSON_CreateRaw("{\"raw\":1}"));
    cJSON_AddItemToArray(arr, cJSON_CreateStringReference("ref"));
    assert_prints_like_cjson(arr);
    cJSON_Delete(arr);
}

/* 16-digit integers (1e15 <= |x| < 2^53, e.g. microsecond timestamps) are
 * printed by hand: the bytes must still be cJSON's, on both sides of the
 * "%1.15g reads back" threshold (4.5e15) and for every last digit. */
static void test_json_print_buf_16_digit_integers_match_cjson(void **state)
{
    (void)state;
    kt_json_init();
    static const double edges[] = { 1e15,
                                    1000000000000001.0,
                                    1000000000000005.0,
                                    1000000000000015.0,
                                    1795456082115426.0,
                                    1795456082115430.0,
                                    1795456082115425.0,
                                    1795456082115435.0,
                                    1500000000000000.0,
                                    4503599627370495.0,
                                    4503599627370496.0,
                                    4503599627370497.0,
                                    4503599627370501.0,
                                    4503599627370505.0,
                                    4503599627370515.0,
                                    9007199254740991.0,
                                    9007199254740990.0,
                                    9007199254740985.0,
                                    9007199254740995.0,
                                    9999999999999990.0 };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            cJSON *n = cJSON_CreateNumber(sign * edges[i]);
            assert_non_null(n);
            assert_prints_like_cjson(n);
            cJSON_Delete(n);
        }
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    cJSON *arr = cJSON_CreateArray();
    assert_non_null(arr);
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* spread over [1e15, 2^53), a tenth of them multiples of 10 */
        uint64_t v = 1000000000000000u + x % 8007199254740992u;
        if (i % 10 == 0) {
            v -= v % 10u;
        }
        double d = (double)v;
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(i % 2 == 0 ? d : -d));
    }
    assert_prints_like_cjson(arr);
    cJSON_Delete(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_json_parse_accepts_value_without_terminator, teardown),
        cmocka_unit_test_teardown(test_json_parse_reports_line_col_and_offset, teardown),
        cmocka_unit_test_teardown(test_json_parse_error_on_first_line, teardown),
        cmocka_unit_test_teardown(test_json_parse_rejects_trailing_data, teardown),
        cmocka_unit_test_teardown(test_json_parse_rejects_empty_and_truncated, teardown),
        cmocka_unit_test_teardown(test_json_parse_refuses_input_over_max_len, teardown),
        cmocka_unit_test_teardown(test_json_parse_uses_kt_malloc, teardown),
        cmocka_unit_test_teardown(test_json_parse_out_of_memory_is_enomem, teardown),
        cmocka_unit_test_teardown(test_json_init_is_idempotent, teardown),
        cmocka_unit_test_teardown(test_json_get_str_distinguishes_missing_and_wrong_type, teardown),
        cmocka_unit_test_teardown(test_json_get_int_checks_type_integrality_and_range, teardown),
        cmocka_unit_test_teardown(test_json_get_int_handles_int64_edges, teardown),
        cmocka_unit_test_teardown(test_json_get_double_and_bool, teardown),
        cmocka_unit_test_teardown(test_json_getters_reject_non_object, teardown),
        cmocka_unit_test_teardown(test_json_print_buf_appends_unformatted, teardown),
        cmocka_unit_test_teardown(test_json_print_buf_over_cap_leaves_buffer_unchanged, teardown),
        cmocka_unit_test_teardown(test_json_print_buf_out_of_memory_is_enomem, teardown),
        cmocka_unit_test_teardown(test_json_print_buf_matches_cjson_byte_for_byte, teardown),
        cmocka_unit_test_teardown(test_json_scratch_scope_allocates_from_the_arena, teardown),
        cmocka_unit_test_teardown(test_json_scratch_out_of_memory_is_enomem, teardown),
        cmocka_unit_test_teardown(test_json_print_buf_16_digit_integers_match_cjson, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
