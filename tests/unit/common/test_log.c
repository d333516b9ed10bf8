/*
 * test_log.c — logfmt lines through a capturing sink: the format, the event
 * id and module, level filtering before formatting, truncation, quoting.
 */
#define KT_LOG_MOD "testmod"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "kt/log.h"

typedef struct capture {
    int n_lines;
    kt_log_level level;
    char line[4096];
    size_t len;
} capture;

static capture cap;

static void capture_sink(kt_log_level level, const char *line, size_t len, void *user)
{
    capture *c = user;
    c->n_lines++;
    c->level = level;
    c->len = len;
    memcpy(c->line, line, len < sizeof c->line ? len : sizeof c->line - 1);
    c->line[len < sizeof c->line ? len : sizeof c->line - 1] = '\0';
}

static int setup(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof cap);
    kt_log_set_sink(capture_sink, &cap);
    kt_log_set_level(KT_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kt_log_set_sink(NULL, NULL);
    kt_log_set_level(KT_LOG_INFO);
    return 0;
}

static void assert_matches(const char *s, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    if (rc != 0) {
        fail_msg("\"%s\" does not match /%s/", s, pattern);
    }
}

static void test_log_line_is_logfmt_with_id_and_module(void **state)
{
    (void)state;
    KT_LOG(KT_LOG_WARN, "UPLINK-CONN-LOST", "peer=%s errno=%d", "hub-1", 111);
    assert_int_equal(cap.n_lines, 1);
    assert_int_equal(cap.level, KT_LOG_WARN);
    assert_int_equal(cap.len, strlen(cap.line));
    assert_matches(cap.line,
                   "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                   "lvl=warn id=UPLINK-CONN-LOST mod=testmod peer=hub-1 errno=111\n$");
}

static void test_log_each_level_has_its_name(void **state)
{
    (void)state;
    kt_log_set_level(KT_LOG_DEBUG);
    static const char *const names[] = { "err", "warn", "notice", "info", "debug" };
    for (int i = KT_LOG_ERR; i <= KT_LOG_DEBUG; i++) {
        KT_LOG((kt_log_level)i, "LVL-CHECK", "i=%d", i);
        char want[64];
        (void)snprintf(want, sizeof want, " lvl=%s id=LVL-CHECK ", names[i]);
        assert_non_null(strstr(cap.line, want));
    }
    assert_int_equal(cap.n_lines, 5);
}

static void test_log_filters_by_level_before_formatting(void **state)
{
    (void)state;
    int formatted = 0;
    KT_LOG(KT_LOG_DEBUG, "NOISY", "n=%d", ++formatted);
    assert_int_equal(cap.n_lines, 0);
    assert_int_equal(formatted, 0); /* arguments not even evaluated */

    assert_int_equal(kt_log_set_level(KT_LOG_DEBUG), KT_LOG_INFO);
    KT_LOG(KT_LOG_DEBUG, "NOISY", "n=%d", ++formatted);
    assert_int_equal(cap.n_lines, 1);
    assert_int_equal(formatted, 1);

    assert_int_equal(kt_log_set_level(KT_LOG_ERR), KT_LOG_DEBUG);
    KT_LOG(KT_LOG_WARN, "DROPPED", "x=1");
    KT_LOG(KT_LOG_ERR, "KEPT", "x=2");
    assert_int_equal(cap.n_lines, 2);
    assert_non_null(strstr(cap.line, " id=KEPT "));
}

static void test_log_empty_fields_leave_no_trailing_space(void **state)
{
    (void)state;
    KT_LOG(KT_LOG_NOTICE, "HUB-START", "%s", "");
    assert_matches(cap.line, " lvl=notice id=HUB-START mod=testmod\n$");
}

static void test_log_overlong_line_is_truncated_and_keeps_newline(void **state)
{
    (void)state;
    static char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    KT_LOG(KT_LOG_ERR, "BIG-LINE", "v=%s", big);
    assert_int_equal(cap.n_lines, 1);
    assert_true(cap.len < 2048);
    assert_true(cap.len > 1000);
    assert_int_equal(cap.line[cap.len - 1], '\n');
    assert_ptr_equal(strchr(cap.line, '\n'), cap.line + cap.len - 1);
}

static void test_log_preserves_errno(void **state)
{
    (void)state;
    errno = EPIPE;
    KT_LOG(KT_LOG_ERR, "ERRNO-KEEP", "x=1");
    assert_int_equal(errno, EPIPE);
}

static void test_log_out_of_range_level_does_not_crash(void **state)
{
    (void)state;
    KT_LOG((kt_log_level)-1, "ODD-LEVEL", "x=1");
    assert_int_equal(cap.n_lines, 1);
    assert_non_null(strstr(cap.line, " lvl=err id=ODD-LEVEL "));
}

static void test_log_level_parse_knows_all_names(void **state)
{
    (void)state;
    assert_int_equal(kt_log_level_parse("err"), KT_LOG_ERR);
    assert_int_equal(kt_log_level_parse("warn"), KT_LOG_WARN);
    assert_int_equal(kt_log_level_parse("notice"), KT_LOG_NOTICE);
    assert_int_equal(kt_log_level_parse("info"), KT_LOG_INFO);
    assert_int_equal(kt_log_level_parse("debug"), KT_LOG_DEBUG);
    assert_int_equal(kt_log_level_parse("WARN"), -1);
    assert_int_equal(kt_log_level_parse(""), -1);
    assert_int_equal(kt_log_level_parse("trace"), -1);
}

static void test_log_quote_escapes_and_bounds(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(kt_log_quote(out, sizeof out, "connection refused"),
                        "\"connection refused\"");
    assert_string_equal(kt_log_quote(out, sizeof out, "a\"b\\c\nd\te"), "\"a\\\"b\\\\c\\nd e\"");
    assert_string_equal(kt_log_quote(out, sizeof out, NULL), "\"\"");
    assert_string_equal(kt_log_quote(out, 2, "abc"), "");
    assert_string_equal(kt_log_quote(out, 3, "abc"), "\"\"");
    assert_string_equal(kt_log_quote(out, 6, "abcdef"), "\"ab\"");
    /* An escape pair never gets split at the cap. */
    kt_log_quote(out, 5, "\"\"\"");
    assert_string_equal(out, "\"\\\"\"");

    KT_LOG(KT_LOG_ERR, "QUOTED", "err=%s", kt_log_quote(out, sizeof out, "no route"));
    assert_non_null(strstr(cap.line, " err=\"no route\"\n"));
}

static void test_log_null_sink_restores_stderr(void **state)
{
    (void)state;
    kt_log_set_sink(NULL, NULL);
    KT_LOG(KT_LOG_DEBUG, "NOT-SHOWN", "x=1"); /* below the level: nothing written */
    assert_int_equal(cap.n_lines, 0);
}

/* The limiter lets per_s lines through each second and reports the rest once. */
static void test_log_limit_budget_and_missed(void **state)
{
    (void)state;
    kt_log_limit lim = { 0 };
    unsigned long long missed = 99;
    int passed = 0;
    for (int i = 0; i < 25; i++) {
        passed += kt_log_limit_take(&lim, 10, 5000, &missed);
        if (i > 0) {
            assert_int_equal(missed, 0);
        }
    }
    assert_int_equal(passed, 10);
    /* the same second: still held back */
    assert_false(kt_log_limit_take(&lim, 10, 5999, &missed));
    assert_int_equal(missed, 0);
    /* a new second: the 16 suppressed are reported once, and lines pass again */
    assert_true(kt_log_limit_take(&lim, 10, 6000, &missed));
    assert_int_equal(missed, 16);
    assert_true(kt_log_limit_take(&lim, 10, 6001, &missed));
    assert_int_equal(missed, 0);
    /* NULL missed_out is allowed */
    assert_true(kt_log_limit_take(&lim, 10, 9000, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_line_is_logfmt_with_id_and_module, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_each_level_has_its_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_filters_by_level_before_formatting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_empty_fields_leave_no_trailing_space, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_overlong_line_is_truncated_and_keeps_newline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_preserves_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_out_of_range_level_does_not_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_level_parse_knows_all_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_quote_escapes_and_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_null_sink_restores_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_limit_budget_and_missed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
