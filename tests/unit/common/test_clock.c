/*
 * test_clock.c — real clocks move the right way, the fake clock replaces
 * them (so tests never sleep), and RFC 3339 formatting is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "kt/clock.h"

static int teardown(void **state)
{
    (void)state;
    kt_clock_set_fake(NULL, NULL);
    return 0;
}

static void test_clock_real_monotonic_never_goes_back(void **state)
{
    (void)state;
    uint64_t prev = kt_clock_mono_ns();
    assert_true(prev > 0);
    for (int i = 0; i < 10000; i++) {
        uint64_t now = kt_clock_mono_ns();
        assert_true(now >= prev);
        prev = now;
    }
    uint64_t ms = kt_clock_mono_ms();
    uint64_t ns = kt_clock_mono_ns();
    assert_true(ms <= ns / 1000000u);
    assert_true(ns / 1000000u - ms < 1000); /* same clock, same units */
}

static void test_clock_real_wall_is_after_2024(void **state)
{
    (void)state;
    uint64_t w = kt_clock_wall_ms();
    assert_true(w > 1704067200000u);  /* 2024-01-01 */
    assert_true(w < 32503680000000u); /* 3000-01-01 */
}

static void test_clock_fake_replaces_both_clocks(void **state)
{
    (void)state;
    uint64_t mono = 5000000000u;
    uint64_t wall = 1700000000123u;
    kt_clock_set_fake(&mono, &wall);
    assert_int_equal(kt_clock_mono_ns(), 5000000000u);
    assert_int_equal(kt_clock_mono_ms(), 5000);
    assert_int_equal(kt_clock_wall_ms(), 1700000000123u);

    mono += 30000000000u + 999999u; /* 30 s pass, instantly; ms truncates */
    wall += 30000;
    assert_int_equal(kt_clock_mono_ms(), 35000);
    assert_int_equal(kt_clock_mono_ns(), 35000999999u);
    assert_int_equal(kt_clock_wall_ms(), 1700000030123u);
}

static void test_clock_fake_can_replace_one_clock_only(void **state)
{
    (void)state;
    uint64_t wall = 42;
    kt_clock_set_fake(NULL, &wall);
    assert_int_equal(kt_clock_wall_ms(), 42);
    uint64_t a = kt_clock_mono_ns();
    uint64_t b = kt_clock_mono_ns();
    assert_true(a > 0 && b >= a); /* the real monotonic clock */

    uint64_t mono = 7;
    kt_clock_set_fake(&mono, NULL);
    assert_int_equal(kt_clock_mono_ns(), 7);
    assert_true(kt_clock_wall_ms() > 1704067200000u);
}

static void test_clock_null_restores_real_clock(void **state)
{
    (void)state;
    uint64_t mono = 1;
    uint64_t wall = 1;
    kt_clock_set_fake(&mono, &wall);
    kt_clock_set_fake(NULL, NULL);
    assert_true(kt_clock_mono_ns() != 1);
    assert_true(kt_clock_wall_ms() > 1704067200000u);
}

static void test_clock_rfc3339_formats_utc_with_millis(void **state)
{
    (void)state;
    char out[KT_CLOCK_RFC3339_CAP];
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, 0), "1970-01-01T00:00:00.000Z");
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, 1700000000123u),
                        "2023-11-14T22:13:20.123Z");
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, 951782400007u),
                        "2000-02-29T00:00:00.007Z"); /* leap day */
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, 253402300799999u),
                        "9999-12-31T23:59:59.999Z");
    assert_int_equal(strlen(out), KT_CLOCK_RFC3339_CAP - 1);
}

static void test_clock_rfc3339_refuses_rather_than_truncates(void **state)
{
    (void)state;
    char out[KT_CLOCK_RFC3339_CAP];
    memset(out, 'x', sizeof out);
    assert_string_equal(kt_clock_rfc3339(out, KT_CLOCK_RFC3339_CAP - 1, 0), "");
    memset(out, 'x', sizeof out);
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, 253402300800000u), ""); /* year 10000 */
    assert_string_equal(kt_clock_rfc3339(out, sizeof out, UINT64_MAX), "");
    out[0] = 'x';
    kt_clock_rfc3339(out, 0, 0);
    assert_int_equal(out[0], 'x'); /* cap 0 writes nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_clock_real_monotonic_never_goes_back, teardown),
        cmocka_unit_test_teardown(test_clock_real_wall_is_after_2024, teardown),
        cmocka_unit_test_teardown(test_clock_fake_replaces_both_clocks, teardown),
        cmocka_unit_test_teardown(test_clock_fake_can_replace_one_clock_only, teardown),
        cmocka_unit_test_teardown(test_clock_null_restores_real_clock, teardown),
        cmocka_unit_test_teardown(test_clock_rfc3339_formats_utc_with_millis, teardown),
        cmocka_unit_test_teardown(test_clock_rfc3339_refuses_rather_than_truncates, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
