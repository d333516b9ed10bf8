/*
 * test_backoff.c — full-jitter exponential backoff: every delay is within
 * [0, min(cap, base * 2^attempt)], the ceiling doubles then saturates at cap,
 * the injected RNG decides where in the range a delay falls, and reset
 * starts over. The built-in RNG also stays in range and varies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sync/backoff.h"

static uint64_t rng_value;

static uint64_t fixed_rand(void *user)
{
    (void)user;
    return rng_value;
}

static uint64_t lcg_rand(void *user)
{
    uint64_t *s = user;
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

static void test_backoff_ceiling_doubles_then_caps(void **state)
{
    (void)state;
    sync_backoff b;
    sync_backoff_opts o = { .base_ms = 100, .cap_ms = 1000, .rand = fixed_rand };
    sync_backoff_init(&b, &o);
    const uint32_t want[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(sync_backoff_ceiling_ms(&b), want[i]);
        rng_value = UINT64_MAX; /* the top of the range... */
        uint32_t d = sync_backoff_next(&b);
        assert_true(d <= want[i]);
    }
    assert_int_equal(sync_backoff_attempt(&b), 4); /* saturates once at cap */
}

static void test_backoff_rng_picks_the_point_in_range(void **state)
{
    (void)state;
    sync_backoff b;
    sync_backoff_opts o = { .base_ms = 100, .cap_ms = 1000, .rand = fixed_rand };
    sync_backoff_init(&b, &o);
    rng_value = 0;
    assert_int_equal(sync_backoff_next(&b), 0); /* full jitter reaches zero */
    rng_value = 200;                            /* 200 % 201 */
    assert_int_equal(sync_backoff_next(&b), 200);
    rng_value = 401; /* 401 % 401 */
    assert_int_equal(sync_backoff_next(&b), 0);
}

static void test_backoff_stays_in_range_and_grows(void **state)
{
    (void)state;
    uint64_t seed = 42;
    sync_backoff b;
    sync_backoff_opts o = { .base_ms = 50, .cap_ms = 30000, .rand = lcg_rand, .rand_user = &seed };
    sync_backoff_init(&b, &o);
    /* Average many delays per attempt: it must grow with the attempt until the cap. */
    double prev_mean = -1;
    for (uint32_t attempt = 0; attempt < 10; attempt++) {
        double sum = 0;
        for (int i = 0; i < 2000; i++) {
            sync_backoff_reset(&b);
            for (uint32_t k = 0; k < attempt; k++) {
                (void)sync_backoff_next(&b);
            }
            uint32_t ceil = sync_backoff_ceiling_ms(&b);
            uint32_t d = sync_backoff_next(&b);
            assert_true(d <= ceil);
            assert_true(d <= 30000);
            sum += d;
        }
        double mean = sum / 2000.0;
        if (attempt < 9) {
            assert_true(mean > prev_mean);
        }
        prev_mean = mean;
    }
}

static void test_backoff_reset_starts_over(void **state)
{
    (void)state;
    sync_backoff b;
    sync_backoff_opts o = { .base_ms = 10, .cap_ms = 100000 };
    sync_backoff_init(&b, &o);
    for (int i = 0; i < 50; i++) {
        (void)sync_backoff_next(&b);
    }
    assert_int_equal(sync_backoff_ceiling_ms(&b), 100000);
    sync_backoff_reset(&b);
    assert_int_equal(sync_backoff_attempt(&b), 0);
    assert_int_equal(sync_backoff_ceiling_ms(&b), 10);
}

static void test_backoff_builtin_rng_varies_within_range(void **state)
{
    (void)state;
    sync_backoff b;
    sync_backoff_init(&b, NULL); /* defaults: 500 .. 30000 */
    assert_int_equal(sync_backoff_ceiling_ms(&b), 500);
    uint32_t first = 0;
    int different = 0;
    for (int i = 0; i < 100; i++) {
        sync_backoff_reset(&b);
        uint32_t d = sync_backoff_next(&b);
        assert_true(d <= 500);
        if (i == 0) {
            first = d;
        } else if (d != first) {
            different++;
        }
    }
    assert_true(different > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_ceiling_doubles_then_caps),
        cmocka_unit_test(test_backoff_rng_picks_the_point_in_range),
        cmocka_unit_test(test_backoff_stays_in_range_and_grows),
        cmocka_unit_test(test_backoff_reset_starts_over),
        cmocka_unit_test(test_backoff_builtin_rng_varies_within_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
