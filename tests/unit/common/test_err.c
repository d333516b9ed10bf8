/*
 * test_err.c — kt_err: the first error wins, messages and locations are kept,
 * dependency and errno details are recorded, every status has a name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt/err.h"

static kt_status fail_inner(kt_err *err)
{
    return kt_err_set(err, KT_EIO, "open %s", "/nope");
}

static kt_status fail_outer(kt_err *err)
{
    kt_status st = fail_inner(err);
    if (st != KT_OK) {
        return kt_err_set(err, KT_EINVAL, "outer wrapper");
    }
    return KT_OK;
}

static void test_err_set_returns_status_and_records_message(void **state)
{
    (void)state;
    kt_err err = { 0 };
    int line = __LINE__ + 1;
    kt_status st = kt_err_set(&err, KT_ENOTFOUND, "twin %s: id %d", "pump-7", 42);
    assert_int_equal(st, KT_ENOTFOUND);
    assert_int_equal(err.status, KT_ENOTFOUND);
    assert_string_equal(err.msg, "twin pump-7: id 42");
    assert_non_null(strstr(err.file, "test_err.c"));
    assert_int_equal(err.line, line);
    assert_int_equal(err.sys_errno, 0);
    assert_null(err.dep);
}

static void test_err_first_error_wins(void **state)
{
    (void)state;
    kt_err err = { 0 };
    assert_int_equal(fail_outer(&err), KT_EINVAL);
    assert_int_equal(err.status, KT_EIO);
    assert_string_equal(err.msg, "open /nope");
}

static void test_err_set_accepts_null_err(void **state)
{
    (void)state;
    assert_int_equal(kt_err_set(NULL, KT_EPROTO, "x %d", 1), KT_EPROTO);
    assert_int_equal(kt_err_set_dep(NULL, KT_EDEP, "sqlite", 5, "busy"), KT_EDEP);
    assert_int_equal(kt_err_set_errno(NULL, KT_EIO, ENOENT, "open"), KT_EIO);
}

static void test_err_set_dep_records_library_and_code(void **state)
{
    (void)state;
    kt_err err = { 0 };
    assert_int_equal(kt_err_set_dep(&err, KT_EDEP, "sqlite", 5L, "%s", "database is locked"),
                     KT_EDEP);
    assert_string_equal(err.dep, "sqlite");
    assert_int_equal(err.dep_code, 5);
    assert_string_equal(err.msg, "database is locked");

    /* A later dependency error does not overwrite the first one's details. */
    kt_err_set_dep(&err, KT_EDEP, "curl", 7L, "connect");
    assert_string_equal(err.dep, "sqlite");
    assert_int_equal(err.dep_code, 5);
}

static void test_err_set_errno_appends_strerror(void **state)
{
    (void)state;
    kt_err err = { 0 };
    assert_int_equal(kt_err_set_errno(&err, KT_EIO, ENOENT, "open %s", "/x"), KT_EIO);
    assert_int_equal(err.sys_errno, ENOENT);
    char want[256];
    (void)snprintf(want, sizeof want, "open /x: %s", strerror(ENOENT));
    assert_string_equal(err.msg, want);

    kt_err_set_errno(&err, KT_EIO, EACCES, "second");
    assert_int_equal(err.sys_errno, ENOENT);
    assert_string_equal(err.msg, want);
}

static void test_err_long_message_is_truncated_and_terminated(void **state)
{
    (void)state;
    kt_err err = { 0 };
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kt_err_set(&err, KT_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);

    kt_err e2 = { 0 };
    kt_err_set_errno(&e2, KT_EIO, EPERM, "%s", big);
    assert_int_equal(strlen(e2.msg), sizeof e2.msg - 1);
}

static void test_err_clear_allows_a_new_error(void **state)
{
    (void)state;
    kt_err err = { 0 };
    kt_err_set_dep(&err, KT_EDEP, "yaml", 3L, "first");
    kt_err_clear(&err);
    assert_int_equal(err.status, KT_OK);
    assert_null(err.dep);
    assert_string_equal(err.msg, "");
    kt_err_set(&err, KT_ETIMEDOUT, "second");
    assert_int_equal(err.status, KT_ETIMEDOUT);
    assert_string_equal(err.msg, "second");
    kt_err_clear(NULL);
}

static void test_err_every_status_has_a_stable_name(void **state)
{
    (void)state;
    static const struct {
        kt_status st;
        const char *name;
    } cases[] = {
        { KT_OK, "ok" },
        { KT_ENOMEM, "enomem" },
        { KT_EINVAL, "einval" },
        { KT_EIO, "eio" },
        { KT_EPROTO, "eproto" },
        { KT_ETIMEDOUT, "etimedout" },
        { KT_ECLOSED, "eclosed" },
        { KT_EAGAIN, "eagain" },
        { KT_ENOTFOUND, "enotfound" },
        { KT_ECONFLICT, "econflict" },
        { KT_EDEP, "edep" },
        { KT_ETOOBIG, "etoobig" },
        { KT_EINTERNAL, "einternal" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_string_equal(kt_status_str(cases[i].st), cases[i].name);
    }
    assert_string_equal(kt_status_str((kt_status)-50), "unknown");
}

static void test_err_assert_passes_when_true(void **state)
{
    (void)state;
    int evaluated = 0;
    KT_ASSERT(++evaluated == 1);
    assert_int_equal(evaluated, 1);
    assert_true(KT_NEVER(0) == 0);
}

static void test_err_assert_logs_and_aborts_when_false(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        int broken = 0;
        KT_ASSERT(broken == 1);
        _exit(0); /* not reached when the assert works */
    }
    close(fds[1]);
    char out[4096];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + used, sizeof out - 1 - used);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    out[used] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "lvl=err id=ASSERT-FAILED"));
    assert_non_null(strstr(out, "expr=\"broken == 1\""));
    assert_non_null(strstr(out, "test_err.c:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_returns_status_and_records_message),
        cmocka_unit_test(test_err_first_error_wins),
        cmocka_unit_test(test_err_set_accepts_null_err),
        cmocka_unit_test(test_err_set_dep_records_library_and_code),
        cmocka_unit_test(test_err_set_errno_appends_strerror),
        cmocka_unit_test(test_err_long_message_is_truncated_and_terminated),
        cmocka_unit_test(test_err_clear_allows_a_new_error),
        cmocka_unit_test(test_err_every_status_has_a_stable_name),
        cmocka_unit_test(test_err_assert_passes_when_true),
        cmocka_unit_test(test_err_assert_logs_and_aborts_when_false),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
