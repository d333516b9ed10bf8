/*
 * test_metrics.c — kt_metrics: registration (idempotent, type/help
 * conflicts, name and label validation), counters, gauges, sampled gauges,
 * detach, histograms (buckets, sum, count, bounds rules, log-spaced bounds,
 * quantile estimate), and the exact text exposition 0.0.4 output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/metrics.h"

static double sample_42(void *user)
{
    return *(double *)user;
}

static void test_metrics_render_exact(void **state)
{
    (void)state;
    kt_metrics *reg = kt_metrics_new();
    kt_err err = { 0 };
    kt_metric *rx1 = NULL;
    kt_metric *rx2 = NULL;
    kt_metric *up = NULL;
    assert_int_equal(kt_metrics_counter(&rx1, reg, "ktwin_frames_total", "Frames received",
                                        (const char *[]){ "site", "s1", NULL }, &err),
                     KT_OK);
    assert_int_equal(kt_metrics_counter(&rx2, reg, "ktwin_frames_total", "Frames received",
                                        (const char *[]){ "site", "s\"2\\\n", NULL }, &err),
                     KT_OK);
    assert_int_equal(
        kt_metrics_gauge(&up, reg, "ktwin_queue_depth", "Queue depth\nnow", NULL, &err), KT_OK);
    double v = 42.5;
    assert_int_equal(
        kt_metrics_gauge_fn(reg, "ktwin_sampled", "Sampled", NULL, sample_42, &v, &err), KT_OK);
    kt_metrics_inc(rx1);
    kt_metrics_add(rx1, 41);
    kt_metrics_inc(rx2);
    kt_metrics_set(up, 7);
    kt_metrics_gauge_add(up, -2);
    kt_metrics_inc(NULL); /* optional metric not registered: no-op */
    kt_buf out;
    kt_buf_init(&out, 1 << 16);
    assert_int_equal(kt_metrics_render(reg, &out), KT_OK);
    assert_string_equal(out.data, "# HELP ktwin_frames_total Frames received\n"
                                  "# TYPE ktwin_frames_total counter\n"
                                  "ktwin_frames_total{site=\"s1\"} 42\n"
                                  "ktwin_frames_total{site=\"s\\\"2\\\\\\n\"} 1\n"
                                  "# HELP ktwin_queue_depth Queue depth\\nnow\n"
                                  "# TYPE ktwin_queue_depth gauge\n"
                                  "ktwin_queue_depth 5\n"
                                  "# HELP ktwin_sampled Sampled\n"
                                  "# TYPE ktwin_sampled gauge\n"
                                  "ktwin_sampled 42.5\n");
    assert_true(kt_metrics_value(rx1) == 42.0);
    kt_metrics_detach(reg, &v);
    kt_buf_reset(&out);
    assert_int_equal(kt_metrics_render(reg, &out), KT_OK);
    assert_non_null(strstr(out.data, "ktwin_sampled 0\n"));
    kt_metrics_set(up, NAN);
    kt_buf_reset(&out);
    assert_int_equal(kt_metrics_render(reg, &out), KT_OK);
    assert_non_null(strstr(out.data, "ktwin_queue_depth NaN\n"));
    kt_metrics_set(up, 0.25);
    kt_buf_reset(&out);
    assert_int_equal(kt_metrics_render(reg, &out), KT_OK);
    assert_non_null(strstr(out.data, "ktwin_queue_depth 0.25\n"));
    /* A tiny output cap fails cleanly. */
    kt_buf small;
    kt_buf_init(&small, 10);
    assert_int_equal(kt_metrics_render(reg, &small), KT_ETOOBIG);
    kt_buf_fini(&small);
    kt_buf_fini(&out);
    kt_metrics_free(reg);
    kt_metrics_free(NULL);
}

static void test_metrics_registration_rules(void **state)
{
    (void)state;
    kt_metrics *reg = kt_metrics_new();
    kt_metric *a = NULL;
    kt_metric *b = NULL;
    assert_int_equal(kt_metrics_counter(&a, reg, "x_total", "X", NULL, NULL), KT_OK);
    assert_int_equal(kt_metrics_counter(&b, reg, "x_total", "X", NULL, NULL), KT_OK);
    assert_ptr_equal(a, b); /* idempotent */
    kt_err err = { 0 };
    assert_int_equal(kt_metrics_gauge(&b, reg, "x_total", "X", NULL, &err), KT_EINVAL);
    assert_null(b);
    assert_non_null(strstr(err.msg, "another type"));
    assert_int_equal(kt_metrics_counter(&b, reg, "x_total", "Y", NULL, NULL), KT_EINVAL);
    static const char *const bad_names[] = { "", "1abc", "a-b", "a b", "é" };
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        assert_false(kt_metrics_name_valid(bad_names[i]));
        assert_int_equal(kt_metrics_counter(&b, reg, bad_names[i], "", NULL, NULL), KT_EINVAL);
    }
    assert_true(kt_metrics_name_valid("a:b_c9"));
    assert_int_equal(
        kt_metrics_counter(&b, reg, "y", "", (const char *[]){ "__x", "1", NULL }, NULL),
        KT_EINVAL);
    assert_int_equal(kt_metrics_counter(&b, reg, "y", "", (const char *[]){ "a", NULL }, NULL),
                     KT_EINVAL);
    assert_int_equal(
        kt_metrics_counter(&b, reg, "y", "", (const char *[]){ "a", "1", "a", "2", NULL }, NULL),
        KT_EINVAL);
    assert_int_equal(
        kt_metrics_counter(&b, reg, "y", "", (const char *[]){ "9a", "1", NULL }, NULL), KT_EINVAL);
    double v = 1;
    assert_int_equal(kt_metrics_gauge_fn(reg, "g", "", NULL, sample_42, &v, NULL), KT_OK);
    assert_int_equal(kt_metrics_gauge_fn(reg, "g", "", NULL, sample_42, &v, NULL), KT_EINVAL);
    /* find */
    assert_ptr_equal(kt_metrics_find(reg, "x_total", NULL), a);
    assert_null(kt_metrics_find(reg, "x_total", (const char *[]){ "k", "v", NULL }));
    assert_null(kt_metrics_find(reg, "nope", NULL));
    kt_metrics_free(reg);
}

static void test_metrics_histogram_render(void **state)
{
    (void)state;
    kt_metrics *reg = kt_metrics_new();
    kt_err err = { 0 };
    const double bounds[] = { 0.001, 0.0025, 0.1 };
    kt_metric *a = NULL;
    kt_metric *b = NULL;
    kt_metric *c = NULL;
    assert_int_equal(kt_metrics_histogram(&a, reg, "lat_seconds", "Latency",
                                          (const char *[]){ "iface", "x", NULL }, bounds, 3, &err),
                     KT_OK);
    assert_int_equal(kt_metrics_histogram(&b, reg, "lat_seconds", "Latency", NULL, bounds, 3, &err),
                     KT_OK);
    assert_int_equal(kt_metrics_histogram(&c, reg, "lat_seconds", "Latency",
                                          (const char *[]){ "iface", "x", NULL }, bounds, 3, &err),
                     KT_OK);
    assert_ptr_equal(a, c); /* idempotent */
    kt_metrics_observe(a, 0.0005);
    kt_metrics_observe(a, 0.001); /* le is inclusive */
    kt_metrics_observe(a, 0.002);
    kt_metrics_observe(a, 5);
    kt_metrics_observe(a, NAN);  /* ignored */
    kt_metrics_observe(NULL, 1); /* no-op */
    kt_metrics_observe(b, 0.05);
    kt_buf out;
    kt_buf_init(&out, 1 << 16);
    assert_int_equal(kt_metrics_render(reg, &out), KT_OK);
    assert_string_equal(out.data, "# HELP lat_seconds Latency\n"
                                  "# TYPE lat_seconds histogram\n"
                                  "lat_seconds_bucket{iface=\"x\",le=\"0.001\"} 2\n"
                                  "lat_seconds_bucket{iface=\"x\",le=\"0.0025\"} 3\n"
                                  "lat_seconds_bucket{iface=\"x\",le=\"0.1\"} 3\n"
                                  "lat_seconds_bucket{iface=\"x\",le=\"+Inf\"} 4\n"
                                  "lat_seconds_sum{iface=\"x\"} 5.0034999999999998\n"
                                  "lat_seconds_count{iface=\"x\"} 4\n"
                                  "lat_seconds_bucket{le=\"0.001\"} 0\n"
                                  "lat_seconds_bucket{le=\"0.0025\"} 0\n"
                                  "lat_seconds_bucket{le=\"0.1\"} 1\n"
                                  "lat_seconds_bucket{le=\"+Inf\"} 1\n"
                                  "lat_seconds_sum 0.050000000000000003\n"
                                  "lat_seconds_count 1\n");
    assert_int_equal(kt_metrics_hist_count(a), 4);
    assert_true(fabs(kt_metrics_hist_sum(a) - 5.0035) < 1e-12);
    assert_true(kt_metrics_value(a) == 4.0);
    /* Quantiles: linear inside the bucket, +Inf answers the highest bound. */
    assert_true(fabs(kt_metrics_hist_quantile(a, 0.5) - 0.001) < 1e-12);   /* rank 2 of bucket 1 */
    assert_true(fabs(kt_metrics_hist_quantile(a, 0.25) - 0.0005) < 1e-12); /* halfway 0..0.001 */
    assert_true(kt_metrics_hist_quantile(a, 1.0) == 0.1);
    assert_true(fabs(kt_metrics_hist_quantile(b, 0.5) - 0.05125) < 1e-12); /* 0.0025 + 0.0975 / 2 */
    assert_true(isnan(kt_metrics_hist_quantile(NULL, 0.5)));
    kt_metric *empty = NULL;
    assert_int_equal(kt_metrics_histogram(&empty, reg, "lat_seconds", "Latency",
                                          (const char *[]){ "iface", "y", NULL }, bounds, 3, &err),
                     KT_OK);
    assert_true(isnan(kt_metrics_hist_quantile(empty, 0.5)));
    kt_buf_fini(&out);
    kt_metrics_free(reg);
}

static void test_metrics_histogram_rules(void **state)
{
    (void)state;
    kt_metrics *reg = kt_metrics_new();
    kt_metric *h = NULL;
    kt_err err = { 0 };
    const double ok[] = { 1, 2, 3 };
    const double other[] = { 1, 2, 4 };
    const double unsorted[] = { 1, 3, 2 };
    const double dup[] = { 1, 1 };
    const double inf[] = { 1, INFINITY };
    assert_int_equal(kt_metrics_histogram(&h, reg, "h", "H", NULL, unsorted, 3, &err), KT_EINVAL);
    assert_null(h);
    assert_non_null(strstr(err.msg, "bound 2"));
    assert_int_equal(kt_metrics_histogram(&h, reg, "h", "H", NULL, dup, 2, NULL), KT_EINVAL);
    assert_int_equal(kt_metrics_histogram(&h, reg, "h", "H", NULL, inf, 2, NULL), KT_EINVAL);
    assert_int_equal(kt_metrics_histogram(&h, reg, "h", "H", NULL, NULL, 0, NULL), KT_EINVAL);
    assert_int_equal(
        kt_metrics_histogram(&h, reg, "h", "H", NULL, ok, KT_METRICS_BOUNDS_MAX + 1, NULL),
        KT_EINVAL);
    assert_int_equal(
        kt_metrics_histogram(&h, reg, "h", "H", (const char *[]){ "le", "1", NULL }, ok, 3, NULL),
        KT_EINVAL);
    assert_int_equal(kt_metrics_histogram(&h, reg, "h", "H", NULL, ok, 3, NULL), KT_OK);
    kt_err e2 = { 0 };
    assert_int_equal(
        kt_metrics_histogram(&h, reg, "h", "H", (const char *[]){ "a", "1", NULL }, other, 3, &e2),
        KT_EINVAL);
    assert_non_null(strstr(e2.msg, "other bounds"));
    assert_int_equal(kt_metrics_counter(&h, reg, "h", "H", NULL, NULL), KT_EINVAL);
    assert_int_equal(kt_metrics_hist_count(NULL), 0);
    kt_metric *ctr = NULL;
    assert_int_equal(kt_metrics_counter(&ctr, reg, "c_total", "C", NULL, NULL), KT_OK);
    assert_int_equal(kt_metrics_hist_count(ctr), 0);
    assert_true(isnan(kt_metrics_hist_quantile(ctr, 0.5)));
    kt_metrics_free(reg);
}

static void test_metrics_log_bounds(void **state)
{
    (void)state;
    double b[KT_METRICS_BOUNDS_MAX];
    size_t n = kt_metrics_log_bounds(b, KT_METRICS_BOUNDS_MAX, 1e-5, 10, 10);
    assert_int_equal(n, 61); /* 6 decades x 10 + 1 */
    assert_true(b[0] == 1e-5);
    assert_true(b[10] == 1e-4);
    assert_true(b[60] == 10);
    assert_true(b[1] == 1.26e-5);
    for (size_t i = 1; i < n; i++) {
        assert_true(b[i] > b[i - 1]);
        assert_true(b[i] / b[i - 1] < 1.3); /* fine: each bucket within 30% */
    }
    /* Capped, and refused arguments. */
    assert_int_equal(kt_metrics_log_bounds(b, 5, 1e-5, 10, 10), 5);
    assert_int_equal(kt_metrics_log_bounds(b, 10, 0, 10, 10), 0);
    assert_int_equal(kt_metrics_log_bounds(b, 10, 2, 1, 10), 0);
    assert_int_equal(kt_metrics_log_bounds(b, 10, 1, 2, 0), 0);
    /* Quantiles from these bounds are within one bucket of the truth. */
    kt_metrics *reg = kt_metrics_new();
    kt_metric *h = NULL;
    assert_int_equal(
        kt_metrics_histogram(&h, reg, "q_seconds", "Q", NULL, b,
                             kt_metrics_log_bounds(b, KT_METRICS_BOUNDS_MAX, 1e-5, 10, 10), NULL),
        KT_OK);
    for (int i = 1; i <= 1000; i++) {
        kt_metrics_observe(h, i * 1e-5); /* 10 us .. 10 ms, uniform */
    }
    double p50 = kt_metrics_hist_quantile(h, 0.5);
    double p99 = kt_metrics_hist_quantile(h, 0.99);
    assert_true(p50 > 0.005 / 1.26 && p50 < 0.005 * 1.26);
    assert_true(p99 > 0.0099 / 1.26 && p99 < 0.0099 * 1.26);
    kt_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_exact),
        cmocka_unit_test(test_metrics_registration_rules),
        cmocka_unit_test(test_metrics_histogram_render),
        cmocka_unit_test(test_metrics_histogram_rules),
        cmocka_unit_test(test_metrics_log_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
