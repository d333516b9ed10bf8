/*
 * test_buf.c — kt_buf: appends stay NUL-terminated, the cap is enforced
 * without side effects, detach hands over a C string, and files round-trip
 * through a private temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt/buf.h"
#include "kt/mem.h"

/* ---- a temporary directory per test ------------------------------------------- */

typedef struct tmpdir {
    char path[256];
} tmpdir;

static int tmpdir_setup(void **state)
{
    tmpdir *t = kt_xcalloc(1, sizeof *t);
    const char *base = getenv("TMPDIR");
    (void)snprintf(t->path, sizeof t->path, "%s/kt_test_buf.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(t->path) == NULL) {
        kt_free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static void join(char *out, size_t cap, const tmpdir *t, const char *name)
{
    (void)snprintf(out, cap, "%s/%s", t->path, name);
}

static int tmpdir_teardown(void **state)
{
    tmpdir *t = *state;
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        static const char *const names[] = { "a.txt", "a.txt.tmp", "big.bin", "empty" };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char p[512];
            join(p, sizeof p, t, names[i]);
            unlink(p);
        }
        rmdir(t->path);
    }
    kt_free(t);
    return 0;
}

static void write_raw(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- appending ------------------------------------------------------------------ */

static void test_buf_appends_stay_nul_terminated(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1024);
    assert_null(b.data);
    assert_int_equal(kt_buf_puts(&b, "ab"), KT_OK);
    assert_int_equal(kt_buf_putc(&b, 'c'), KT_OK);
    assert_int_equal(kt_buf_append(&b, "d\0e", 3), KT_OK);
    assert_int_equal(kt_buf_printf(&b, "-%d-%s", 42, "x"), KT_OK);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "abcd\0e-42-x", 12);
    assert_int_equal(b.data[b.len], '\0');
    kt_buf_fini(&b);
    assert_null(b.data);
}

static void test_buf_printf_longer_than_scratch_space(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    kt_buf_puts(&b, "head:");
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(kt_buf_printf(&b, "%s|%d", big, 7), KT_OK);
    assert_int_equal(b.len, 5 + 2999 + 2);
    assert_int_equal(strlen(b.data), b.len);
    assert_memory_equal(b.data + b.len - 2, "|7", 3);
    kt_buf_fini(&b);
}

static void test_buf_rejects_append_over_cap(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 8);
    assert_int_equal(kt_buf_puts(&b, "12345"), KT_OK);
    char *data_before = b.data;
    assert_int_equal(kt_buf_puts(&b, "6789"), KT_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_ptr_equal(b.data, data_before);
    assert_string_equal(b.data, "12345");
    assert_int_equal(kt_buf_printf(&b, "%s", "abcd"), KT_ETOOBIG);
    assert_string_equal(b.data, "12345");
    assert_int_equal(kt_buf_append(&b, "x", SIZE_MAX), KT_ETOOBIG); /* no overflow */
    assert_string_equal(b.data, "12345");
    assert_int_equal(kt_buf_puts(&b, "678"), KT_OK); /* exactly max fits */
    assert_string_equal(b.data, "12345678");
    assert_int_equal(kt_buf_putc(&b, '9'), KT_ETOOBIG);
    assert_true(b.cap <= 9);
    kt_buf_fini(&b);
}

static void test_buf_rejects_long_printf_over_cap_unchanged(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 300);
    kt_buf_puts(&b, "keep");
    char big[400];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(kt_buf_printf(&b, "%s", big), KT_ETOOBIG);
    assert_string_equal(b.data, "keep");
    kt_buf_fini(&b);
}

static void test_buf_unbounded_max_grows(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, SIZE_MAX);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(kt_buf_puts(&b, "0123456789"), KT_OK);
    }
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(strlen(b.data), 10000);
    kt_buf_fini(&b);
}

static void test_buf_zero_max_holds_only_empty_string(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 0);
    assert_int_equal(kt_buf_append(&b, "", 0), KT_OK);
    assert_string_equal(b.data, "");
    assert_int_equal(kt_buf_putc(&b, 'a'), KT_ETOOBIG);
    kt_buf_fini(&b);
}

static void test_buf_append_reports_enomem_and_keeps_content(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    kt_buf_puts(&b, "abc");
    char big[1000];
    memset(big, 'm', sizeof big);
    kt_mem_fail_at(1);
    assert_int_equal(kt_buf_append(&b, big, sizeof big), KT_ENOMEM);
    kt_mem_fail_at(0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    kt_buf_fini(&b);
}

static void test_buf_reset_keeps_memory(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_buf_reset(&b); /* before any append: fine */
    kt_buf_puts(&b, "hello");
    char *p = b.data;
    kt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, p);
    assert_string_equal(b.data, "");
    kt_buf_fini(&b);
}

static void test_buf_detach_hands_over_string(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_buf_puts(&b, "owned");
    size_t len = 0;
    char *s = kt_buf_detach(&b, &len);
    assert_string_equal(s, "owned");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    kt_free(s);
    kt_buf_fini(&b);
}

static void test_buf_detach_of_empty_buffer_is_empty_string(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 100);
    size_t len = 99;
    char *s = kt_buf_detach(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    kt_free(s);
}

/* ---- files ---------------------------------------------------------------------- */

static void test_buf_file_round_trip(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "a.txt");
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    for (int i = 0; i < 10000; i++) {
        kt_buf_printf(&out, "line %d\n", i);
    }
    kt_err err = { 0 };
    assert_int_equal(kt_buf_write_file(&out, path, &err), KT_OK);

    char tmp[600];
    (void)snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed away */

    kt_buf in;
    kt_buf_init(&in, 1 << 20);
    assert_int_equal(kt_buf_read_file(&in, path, &err), KT_OK);
    assert_int_equal(in.len, out.len);
    assert_memory_equal(in.data, out.data, out.len + 1);
    kt_buf_fini(&in);
    kt_buf_fini(&out);
}

static void test_buf_write_file_replaces_existing(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "a.txt");
    write_raw(path, "old content that is longer", 26);
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_buf_puts(&b, "new");
    kt_err err = { 0 };
    assert_int_equal(kt_buf_write_file(&b, path, &err), KT_OK);
    kt_buf_reset(&b);
    assert_int_equal(kt_buf_read_file(&b, path, &err), KT_OK);
    assert_string_equal(b.data, "new");
    kt_buf_fini(&b);
}

static void test_buf_read_empty_file_gives_empty_string(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "empty");
    write_raw(path, "", 0);
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_err err = { 0 };
    assert_int_equal(kt_buf_read_file(&b, path, &err), KT_OK);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    kt_buf_fini(&b);
}

static void test_buf_read_file_over_max_is_etoobig_and_unchanged(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "big.bin");
    char data[100];
    memset(data, 'b', sizeof data);
    write_raw(path, data, sizeof data);

    kt_buf b;
    kt_buf_init(&b, 99);
    kt_err err = { 0 };
    assert_int_equal(kt_buf_read_file(&b, path, &err), KT_ETOOBIG);
    assert_int_equal(err.status, KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "big.bin"));
    assert_int_equal(b.len, 0);
    kt_buf_fini(&b);

    /* Existing content counts against the cap too, and survives the failure. */
    kt_buf_init(&b, 120);
    kt_buf_puts(&b, "0123456789012345678901234");
    kt_err_clear(&err);
    assert_int_equal(kt_buf_read_file(&b, path, &err), KT_ETOOBIG);
    assert_int_equal(err.status, KT_ETOOBIG);
    assert_string_equal(b.data, "0123456789012345678901234");
    kt_buf_fini(&b);
}

static void test_buf_read_missing_file_is_eio_with_errno(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "does-not-exist");
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_err err = { 0 };
    assert_int_equal(kt_buf_read_file(&b, path, &err), KT_EIO);
    assert_int_equal(err.sys_errno, ENOENT);
    assert_non_null(strstr(err.msg, "does-not-exist"));
    kt_buf_fini(&b);
}

static void test_buf_write_into_missing_dir_is_eio(void **state)
{
    tmpdir *t = *state;
    char path[512];
    join(path, sizeof path, t, "no-such-dir/a.txt");
    kt_buf b;
    kt_buf_init(&b, 100);
    kt_buf_puts(&b, "x");
    kt_err err = { 0 };
    assert_int_equal(kt_buf_write_file(&b, path, &err), KT_EIO);
    assert_int_equal(err.sys_errno, ENOENT);
    kt_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_appends_stay_nul_terminated),
        cmocka_unit_test(test_buf_printf_longer_than_scratch_space),
        cmocka_unit_test(test_buf_rejects_append_over_cap),
        cmocka_unit_test(test_buf_rejects_long_printf_over_cap_unchanged),
        cmocka_unit_test(test_buf_unbounded_max_grows),
        cmocka_unit_test(test_buf_zero_max_holds_only_empty_string),
        cmocka_unit_test(test_buf_append_reports_enomem_and_keeps_content),
        cmocka_unit_test(test_buf_reset_keeps_memory),
        cmocka_unit_test(test_buf_detach_hands_over_string),
        cmocka_unit_test(test_buf_detach_of_empty_buffer_is_empty_string),
        cmocka_unit_test_setup_teardown(test_buf_file_round_trip, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_buf_write_file_replaces_existing, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_buf_read_empty_file_gives_empty_string, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_buf_read_file_over_max_is_etoobig_and_unchanged,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_buf_read_missing_file_is_eio_with_errno, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_buf_write_into_missing_dir_is_eio, tmpdir_setup,
                                        tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
