/*
 * test_admit.c — the hub's admission token bucket on a fake clock: a full
 * burst is admitted at once, then refusals carry the exact time to the next
 * token, refills follow the rate, the bucket never holds more than burst,
 * and a clock that goes backwards gives nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sync/admit.h"

static void test_admit_burst_then_retry_after(void **state)
{
    (void)state;
    sync_admit a;
    sync_admit_init(&a, 10, 5, 1000); /* 10/s, burst 5 */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sync_admit_take(&a, 1000), 0);
    }
    assert_int_equal(sync_admit_take(&a, 1000), 100); /* one token per 100 ms */
    assert_int_equal(sync_admit_take(&a, 1040), 60);
    assert_int_equal(sync_admit_take(&a, 1100), 0);
    assert_int_equal(sync_admit_take(&a, 1100), 100);
    assert_int_equal(sync_admit_admitted(&a), 6);
    assert_int_equal(sync_admit_refused(&a), 3);
}

static void test_admit_rate_over_a_long_run(void **state)
{
    (void)state;
    sync_admit a;
    sync_admit_init(&a, 20, 1, 0);
    /* Hammer every ms for 10 s: admitted = 1 (burst) + 20/s * 10 s. */
    uint64_t ok = 0;
    for (uint64_t t = 0; t <= 10000; t++) {
        if (sync_admit_take(&a, t) == 0) {
            ok++;
        }
    }
    assert_int_equal(ok, 1 + 200);
}

static void test_admit_never_exceeds_burst(void **state)
{
    (void)state;
    sync_admit a;
    sync_admit_init(&a, 1000, 3, 0);
    (void)sync_admit_take(&a, 0);
    /* A long idle time refills to burst, no more. */
    uint64_t t = 10ull * 24 * 3600 * 1000;
    int ok = 0;
    while (sync_admit_take(&a, t) == 0) {
        ok++;
    }
    assert_int_equal(ok, 3);
}

static void test_admit_clock_going_backwards_adds_nothing(void **state)
{
    (void)state;
    sync_admit a;
    sync_admit_init(&a, 1, 1, 5000);
    assert_int_equal(sync_admit_take(&a, 5000), 0);
    assert_int_equal(sync_admit_take(&a, 4000), 1000);
    assert_int_equal(sync_admit_take(&a, 5999), 1);
    assert_int_equal(sync_admit_take(&a, 6000), 0);
}

static void test_admit_large_rate_and_burst_do_not_overflow(void **state)
{
    (void)state;
    sync_admit a;
    sync_admit_init(&a, UINT32_MAX, UINT32_MAX, 0);
    assert_int_equal(sync_admit_take(&a, UINT64_MAX / 2), 0);
    assert_int_equal(sync_admit_take(&a, UINT64_MAX / 2 + 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_burst_then_retry_after),
        cmocka_unit_test(test_admit_rate_over_a_long_run),
        cmocka_unit_test(test_admit_never_exceeds_burst),
        cmocka_unit_test(test_admit_clock_going_backwards_adds_nothing),
        cmocka_unit_test(test_admit_large_rate_and_burst_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
