/*
 * test_metrics.c — kt_metrics: registration (idempotent, type/help
 * conflicts, name and label validation), counters, gauges, sampled gauges,
 * detach, and the exact text exposition 0.0.4 output.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_exact),
        cmocka_unit_test(test_metrics_registration_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
