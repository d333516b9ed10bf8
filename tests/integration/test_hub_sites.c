/*
 * test_hub_sites.c — unit tests of hub/sites.c: the agents file parser,
 * the constant-time token check and the persisted per-site state.
 *
 * Each test works in its own temp dir (kept with KT_TEST_KEEP=1) with a
 * real SQLite database file. Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hub/sites.h"
#include "kt/err.h"
#include "kt/mem.h"

typedef struct fx {
    char dir[256];
    char agents[300];
    char db_path[300];
    sqlite3 *db;
} fx;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    fx *x = kt_xcalloc(1, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "%s/kt-sites-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(x->dir) == NULL) {
        return -1;
    }
    snprintf(x->agents, sizeof x->agents, "%s/agents", x->dir);
    snprintf(x->db_path, sizeof x->db_path, "%s/hub.db", x->dir);
    if (sqlite3_open(x->db_path, &x->db) != SQLITE_OK) {
        return -1;
    }
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    sqlite3_close(x->db);
    if (getenv("KT_TEST_KEEP") == NULL) {
        unlink(x->agents);
        unlink(x->db_path);
        rmdir(x->dir);
    }
    kt_free(x);
    return 0;
}

static void test_sites_parses_sorted_with_comments(void **state)
{
    fx *x = *state;
    write_file(x->agents, "# sites\n\nsite-b  tok-b\n  site-a\ttok-a  \nsite-c tok-c");
    hub_sites *s = NULL;
    kt_err err = { 0 };
    assert_int_equal(hub_sites_new(&s, x->agents, x->db, &err), KT_OK);
    assert_int_equal(hub_sites_count(s), 3);
    assert_string_equal(hub_sites_at(s, 0)->name, "site-a");
    assert_string_equal(hub_sites_at(s, 1)->name, "site-b");
    assert_string_equal(hub_sites_at(s, 2)->name, "site-c");
    assert_ptr_equal(hub_sites_get(s, "site-b"), hub_sites_at(s, 1));
    assert_null(hub_sites_get(s, "site-d"));
    assert_null(hub_sites_at(s, 3));
    hub_sites_free(s);
}

static void test_sites_no_file_means_no_sites(void **state)
{
    fx *x = *state;
    hub_sites *s = NULL;
    assert_int_equal(hub_sites_new(&s, NULL, x->db, NULL), KT_OK);
    assert_int_equal(hub_sites_count(s), 0);
    hub_sites_free(s);
}

static void expect_bad(fx *x, const char *text, kt_status want, const char *needle)
{
    write_file(x->agents, text);
    hub_sites *s = NULL;
    kt_err err = { 0 };
    assert_int_equal(hub_sites_new(&s, x->agents, x->db, &err), want);
    assert_null(s);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, needle);
    }
}

static void test_sites_rejects_malformed_lines(void **state)
{
    fx *x = *state;
    expect_bad(x, "site-a tok\nsite-b\n", KT_EINVAL, ":2: want");
    expect_bad(x, "site-a tok extra\n", KT_EINVAL, ":1: want");
    expect_bad(x, "# c\nsite/a tok\n", KT_EINVAL, ":2: site \"site/a\"");
    expect_bad(x, "site-a t1\nsite-b t2\nsite-a t3\n", KT_EINVAL,
               ":3: site \"site-a\" listed twice");
}

static void test_sites_missing_file_is_an_error(void **state)
{
    fx *x = *state;
    hub_sites *s = NULL;
    kt_err err = { 0 };
    char path[400];
    snprintf(path, sizeof path, "%s/none", x->dir);
    assert_int_not_equal(hub_sites_new(&s, path, x->db, &err), KT_OK);
    assert_null(s);
    assert_non_null(strstr(err.msg, "none"));
}

static void test_sites_token_check(void **state)
{
    fx *x = *state;
    write_file(x->agents, "site-a s3cret\n");
    hub_sites *s = NULL;
    assert_int_equal(hub_sites_new(&s, x->agents, x->db, NULL), KT_OK);
    const hub_site *a = hub_sites_get(s, "site-a");
    assert_true(hub_sites_token_ok(a, "s3cret"));
    assert_false(hub_sites_token_ok(a, "s3creT"));
    assert_false(hub_sites_token_ok(a, "s3cre"));
    assert_false(hub_sites_token_ok(a, "s3crets"));
    assert_false(hub_sites_token_ok(a, ""));
    assert_false(hub_sites_token_ok(a, NULL));
    assert_false(hub_sites_token_ok(NULL, "s3cret"));
    hub_sites_free(s);
}

static void test_sites_state_survives_reopen(void **state)
{
    fx *x = *state;
    write_file(x->agents, "site-a ta\nsite-b tb\n");
    hub_sites *s = NULL;
    kt_err err = { 0 };
    assert_int_equal(hub_sites_new(&s, x->agents, x->db, &err), KT_OK);
    hub_site *a = hub_sites_get(s, "site-a");
    a->has_capacity = true;
    a->cpu_millis = 1500;
    a->memory_bytes = UINT64_MAX; /* stored as its int64 bit pattern */
    a->last_seen_ms = 1700000000123u;
    a->acked_graph_rev = 42;
    a->acked_placement_rev = 7;
    a->dirty = true;
    assert_int_equal(hub_sites_flush(s, &err), KT_OK);
    assert_false(a->dirty);
    assert_int_equal(hub_sites_meta_put(s, "k", "v1", &err), KT_OK);
    assert_int_equal(hub_sites_meta_put(s, "k", "v2", &err), KT_OK);
    uint64_t h1 = hub_sites_names_hash(s);
    hub_sites_free(s);

    /* site-b removed, site-c added: site-a's row comes back, site-c starts empty. */
    write_file(x->agents, "site-a ta\nsite-c tc\n");
    assert_int_equal(hub_sites_new(&s, x->agents, x->db, &err), KT_OK);
    a = hub_sites_get(s, "site-a");
    assert_true(a->has_capacity);
    assert_int_equal(a->cpu_millis, 1500);
    assert_true(a->memory_bytes == UINT64_MAX);
    assert_true(a->last_seen_ms == 1700000000123u);
    assert_int_equal(a->acked_graph_rev, 42);
    assert_int_equal(a->acked_placement_rev, 7);
    assert_false(a->dirty);
    const hub_site *c = hub_sites_get(s, "site-c");
    assert_false(c->has_capacity);
    assert_int_equal(c->acked_graph_rev, 0);
    char *v = NULL;
    assert_int_equal(hub_sites_meta_get(s, "k", &v, &err), KT_OK);
    assert_string_equal(v, "v2");
    kt_free(v);
    assert_int_equal(hub_sites_meta_get(s, "absent", &v, &err), KT_ENOTFOUND);
    assert_null(v);
    assert_true(hub_sites_names_hash(s) != h1);
    hub_sites_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sites_parses_sorted_with_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_no_file_means_no_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_rejects_malformed_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_missing_file_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_token_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_state_survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
