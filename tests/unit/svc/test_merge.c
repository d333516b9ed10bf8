/*
 * test_merge.c — KTWIN's upsert-merge (svc_merge_json): the mergo
 * MergeWithOverwrite rules of svc/merge.h, errors and caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kt/mem.h"
#include "svc/merge.h"

static kt_status merge(const char *latest, const char *next, kt_buf *out, kt_err *err)
{
    kt_buf_reset(out);
    return svc_merge_json(out, (const uint8_t *)latest, latest != NULL ? strlen(latest) : 0,
                          (const uint8_t *)next, strlen(next), err);
}

static void expect_merge(const char *latest, const char *next, const char *want)
{
    kt_buf out;
    kt_err err = { 0 };
    kt_buf_init(&out, 1u << 20);
    assert_int_equal(merge(latest, next, &out, &err), KT_OK);
    assert_string_equal(out.data, want);
    kt_buf_fini(&out);
}

static void test_new_keys_overwrite_missing_keys_are_kept(void **state)
{
    (void)state;
    /* the air-quality service's store event over the previous state */
    expect_merge("{\"CODensity\":8,\"COAqiLevel\":\"GOOD\",\"msg_count\":3}",
                 "{\"CODensity\":12,\"COAqiLevel\":\"MODERATE\"}",
                 "{\"CODensity\":12,\"COAqiLevel\":\"MODERATE\",\"msg_count\":3}");
    expect_merge("{\"a\":1}", "{\"b\":2}", "{\"a\":1,\"b\":2}");
    expect_merge("{}", "{}", "{}");
}

static void test_nested_objects_merge_recursively(void **state)
{
    (void)state;
    expect_merge("{\"loc\":{\"lat\":1,\"lon\":2},\"x\":1}", "{\"loc\":{\"lat\":5,\"alt\":9}}",
                 "{\"loc\":{\"lat\":5,\"lon\":2,\"alt\":9},\"x\":1}");
    expect_merge("{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", "{\"a\":{\"b\":{\"d\":3}}}",
                 "{\"a\":{\"b\":{\"c\":1,\"d\":3}}}");
}

static void test_arrays_scalars_and_null_replace(void **state)
{
    (void)state;
    expect_merge("{\"l\":[1,2,3]}", "{\"l\":[9]}", "{\"l\":[9]}");
    expect_merge("{\"o\":{\"k\":1}}", "{\"o\":5}", "{\"o\":5}");
    expect_merge("{\"o\":5}", "{\"o\":{\"k\":1}}", "{\"o\":{\"k\":1}}");
    expect_merge("{\"a\":1,\"b\":2}", "{\"a\":null}", "{\"a\":null,\"b\":2}");
    expect_merge("{\"s\":\"old\"}", "{\"s\":\"\"}", "{\"s\":\"\"}");
}

static void test_no_latest_gives_next_compacted(void **state)
{
    (void)state;
    expect_merge(NULL, " { \"a\" : [ 1 , 2 ] } ", "{\"a\":[1,2]}");
}

static void test_duplicate_keys_last_wins(void **state)
{
    (void)state;
    expect_merge(NULL, "{\"a\":1,\"a\":{\"x\":1},\"a\":2}", "{\"a\":2}");
    expect_merge("{\"a\":{\"x\":1},\"a\":{\"y\":2}}", "{\"b\":1}", "{\"a\":{\"y\":2},\"b\":1}");
    /* a duplicate in next replaces, it is not merged with its earlier twin */
    expect_merge("{\"a\":{\"k\":0}}", "{\"a\":{\"x\":1},\"a\":{\"y\":2}}",
                 "{\"a\":{\"k\":0,\"y\":2}}");
}

static void test_errors_name_the_side(void **state)
{
    (void)state;
    kt_buf out;
    kt_err err = { 0 };
    kt_buf_init(&out, 1u << 20);
    assert_int_equal(merge("{}", "[1]", &out, &err), KT_EINVAL);
    assert_string_equal(err.msg, "data: not a JSON object");
    kt_err_clear(&err);
    assert_int_equal(merge("\"x\"", "{}", &out, &err), KT_EINVAL);
    assert_string_equal(err.msg, "latest: not a JSON object");
    kt_err_clear(&err);
    assert_int_equal(merge("{}", "{\"a\":", &out, &err), KT_EINVAL);
    assert_true(strncmp(err.msg, "data: JSON syntax error", 23) == 0);
    kt_err_clear(&err);
    assert_int_equal(merge("{}", "", &out, &err), KT_EINVAL);
    assert_int_equal(out.len, 0); /* unchanged on failure */
    kt_buf_fini(&out);
}

static void test_depth_cap(void **state)
{
    (void)state;
    char deep[2 * (SVC_MERGE_MAX_DEPTH + 2) * 6 + 16];
    size_t n = 0;
    int i;
    kt_buf out;
    kt_err err = { 0 };
    for (i = 0; i < SVC_MERGE_MAX_DEPTH + 1; i++) {
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
    }
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1");
    for (i = 0; i < SVC_MERGE_MAX_DEPTH + 1; i++) {
        deep[n++] = '}';
    }
    deep[n] = '\0';
    kt_buf_init(&out, 1u << 20);
    assert_int_equal(merge("{}", deep, &out, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "nested deeper"));
    kt_buf_fini(&out);
}

static void test_output_cap_leaves_out_unchanged(void **state)
{
    (void)state;
    kt_buf out;
    kt_err err = { 0 };
    kt_buf_init(&out, 8);
    assert_int_equal(kt_buf_puts(&out, "ab"), KT_OK);
    assert_int_equal(svc_merge_json(&out, (const uint8_t *)"{\"a\":1}", 7,
                                    (const uint8_t *)"{\"bbbbbbbb\":2}", 14, &err),
                     KT_ETOOBIG);
    assert_string_equal(out.data, "ab");
    kt_buf_fini(&out);
}

/* The same merge through the small-object scan and the kt_map index (16 members). */
static void test_small_and_indexed_objects_merge_alike(void **state)
{
    (void)state;
    /* 3 + 4 members: linear scan */
    expect_merge("{\"a\":1,\"b\":{\"x\":1},\"c\":3}", "{\"b\":{\"y\":2},\"d\":4,\"a\":0,\"a\":9}",
                 "{\"a\":9,\"b\":{\"x\":1,\"y\":2},\"c\":3,\"d\":4}");
    /* 9 + 10 members: kt_map */
    expect_merge("{\"a\":1,\"b\":{\"x\":1},\"c\":3,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10}",
                 "{\"b\":{\"y\":2},\"d\":4,\"a\":0,\"a\":9,\"k\":1,\"l\":2,\"m\":3,\"n\":4,"
                 "\"o\":5,\"p\":6}",
                 "{\"a\":9,\"b\":{\"x\":1,\"y\":2},\"c\":3,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
                 "\"j\":10,\"d\":4,\"k\":1,\"l\":2,\"m\":3,\"n\":4,\"o\":5,\"p\":6}");
}

static void test_many_keys_merge(void **state)
{
    (void)state;
    /* 20,000 keys on each side (half shared): linear, and every key survives once */
    kt_buf a;
    kt_buf b;
    kt_buf out;
    kt_err err = { 0 };
    int i;
    kt_buf_init(&a, 1u << 22);
    kt_buf_init(&b, 1u << 22);
    kt_buf_init(&out, 1u << 23);
    kt_buf_putc(&a, '{');
    kt_buf_putc(&b, '{');
    for (i = 0; i < 20000; i++) {
        kt_buf_printf(&a, "%s\"k%d\":%d", i ? "," : "", i, i);
        kt_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i + 10000, -1);
    }
    kt_buf_putc(&a, '}');
    kt_buf_putc(&b, '}');
    assert_int_equal(
        svc_merge_json(&out, (const uint8_t *)a.data, a.len, (const uint8_t *)b.data, b.len, &err),
        KT_OK);
    assert_non_null(strstr(out.data, "\"k0\":0,"));
    assert_non_null(strstr(out.data, "\"k9999\":9999,"));
    assert_non_null(strstr(out.data, "\"k10000\":-1,"));
    assert_non_null(strstr(out.data, "\"k29999\":-1}"));
    kt_buf_fini(&a);
    kt_buf_fini(&b);
    kt_buf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_keys_overwrite_missing_keys_are_kept),
        cmocka_unit_test(test_nested_objects_merge_recursively),
        cmocka_unit_test(test_arrays_scalars_and_null_replace),
        cmocka_unit_test(test_no_latest_gives_next_compacted),
        cmocka_unit_test(test_duplicate_keys_last_wins),
        cmocka_unit_test(test_errors_name_the_side),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_output_cap_leaves_out_unchanged),
        cmocka_unit_test(test_small_and_indexed_objects_merge_alike),
        cmocka_unit_test(test_many_keys_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
