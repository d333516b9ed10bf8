/*
 * test_outbox.c — agent/outbox: gapless seqs that survive reopen, the
 * incarnation kept with the file (a wiped file gets a new one), peek by seq
 * with count and byte limits, ack deletes and is idempotent, transactions
 * (commit kicks, rollback restores), the quota (KT_EAGAIN, full flag, the
 * metric, low-water hysteresis), and meta values.
 *
 * Each test gets its own temporary directory (kept when KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kt/mem.h"
#include "kt/metrics.h"
#include "outbox.h"

typedef struct fixture {
    char dir[256];
    char path[300];
} fixture;

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof f->dir, "%s/kt_test_outbox.XXXXXX",
                   base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        kt_free(f);
        return -1;
    }
    (void)snprintf(f->path, sizeof f->path, "%s/outbox.db", f->dir);
    *state = f;
    return 0;
}

static void rm_db(const fixture *f)
{
    static const char *const sfx[] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char p[400];
        (void)snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        (void)unlink(p);
    }
}

static int teardown(void **state)
{
    fixture *f = *state;
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        rm_db(f);
        (void)rmdir(f->dir);
    }
    kt_free(f);
    return 0;
}

static agent_outbox *ob_open(const fixture *f, uint64_t max_bytes, uint64_t low, kt_metrics *reg)
{
    agent_outbox *ob = NULL;
    agent_outbox_opts o = {
        .path = f->path, .max_bytes = max_bytes, .low_water_bytes = low, .metrics = reg
    };
    kt_err err = { 0 };
    kt_status st = agent_outbox_open(&ob, &o, &err);
    if (st != KT_OK) {
        fail_msg("open: %s", err.msg);
    }
    return ob;
}

static void append_one(agent_outbox *ob, int i, uint64_t *seq)
{
    char id[32];
    char data[64];
    (void)snprintf(id, sizeof id, "ev-%d", i);
    int n = snprintf(data, sizeof data, "{\"i\":%d}", i);
    sync_event ev = { .id = id,
                      .type = "ktwin.store.pole",
                      .source = "pole-1",
                      .time_ms = 1000u + (uint64_t)i,
                      .datacontenttype = "application/json",
                      .data = (const uint8_t *)data,
                      .data_len = (size_t)n,
                      .depth = (uint32_t)(i % 3) };
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_append(ob, &ev, seq, &err), KT_OK);
}

typedef struct seen {
    uint64_t seqs[256];
    char ids[256][32];
    uint32_t depths[256];
    size_t n;
} seen;

static bool seen_cb(uint64_t seq, const sync_event *ev, void *user)
{
    seen *s = user;
    if (s->n < 256) {
        s->seqs[s->n] = seq;
        (void)snprintf(s->ids[s->n], sizeof s->ids[s->n], "%s", ev->id);
        s->depths[s->n] = ev->depth;
    }
    s->n++;
    assert_string_equal(ev->type, "ktwin.store.pole");
    assert_string_equal(ev->source, "pole-1");
    assert_string_equal(ev->datacontenttype, "application/json");
    assert_true(ev->data_len > 0);
    return true;
}

/*
 * Each event keeps its loop depth (append_one: i % 3) through the file; an
 * outbox written by an older agent (no depth column) opens, its events read
 * depth 0, and new ones keep theirs.
 */
static void test_depth_is_kept_and_old_files_open(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    append_one(ob, 1, NULL);
    append_one(ob, 2, NULL);
    agent_outbox_free(ob);
    ob = ob_open(f, 0, 0, NULL);
    seen s = { 0 };
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_peek(ob, 1, 10, UINT64_MAX, seen_cb, &s, NULL, &err), KT_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.depths[0], 1);
    assert_int_equal(s.depths[1], 2);
    agent_outbox_free(ob);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE events DROP COLUMN depth", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ob = ob_open(f, 0, 0, NULL);
    append_one(ob, 5, NULL);
    seen s2 = { 0 };
    assert_int_equal(agent_outbox_peek(ob, 1, 10, UINT64_MAX, seen_cb, &s2, NULL, &err), KT_OK);
    assert_int_equal(s2.n, 3);
    assert_int_equal(s2.depths[0], 0);
    assert_int_equal(s2.depths[1], 0);
    assert_int_equal(s2.depths[2], 2);
    agent_outbox_free(ob);
}

static void test_seq_and_incarnation_survive_reopen(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    char inc[33];
    (void)snprintf(inc, sizeof inc, "%s", agent_outbox_incarnation(ob));
    assert_int_equal(strlen(inc), 32);
    uint64_t seq = 0;
    for (int i = 0; i < 5; i++) {
        append_one(ob, i, &seq);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    assert_int_equal(agent_outbox_events(ob), 5);
    assert_int_equal(agent_outbox_ack(ob, 5, NULL), KT_OK); /* everything acked: table empty */
    assert_int_equal(agent_outbox_events(ob), 0);
    assert_int_equal(agent_outbox_bytes(ob), 0);
    agent_outbox_free(ob);

    ob = ob_open(f, 0, 0, NULL);
    assert_string_equal(agent_outbox_incarnation(ob), inc);
    assert_int_equal(agent_outbox_next_seq(ob), 6); /* not reused although no row is left */
    assert_int_equal(agent_outbox_first_seq(ob), 6);
    assert_int_equal(agent_outbox_acked_seq(ob), 5);
    append_one(ob, 5, &seq);
    assert_int_equal(seq, 6);
    agent_outbox_free(ob);

    /* A wiped outbox is a new incarnation starting at 1. */
    rm_db(f);
    ob = ob_open(f, 0, 0, NULL);
    assert_string_not_equal(agent_outbox_incarnation(ob), inc);
    assert_int_equal(agent_outbox_next_seq(ob), 1);
    agent_outbox_free(ob);
}

static void test_peek_limits_and_ack(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    for (int i = 0; i < 10; i++) {
        append_one(ob, i, NULL);
    }
    seen *s = kt_xcalloc(1, sizeof *s);
    size_t n = 0;
    assert_int_equal(agent_outbox_peek(ob, 3, 4, UINT64_MAX, seen_cb, s, &n, NULL), KT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(s->seqs[0], 3);
    assert_string_equal(s->ids[0], "ev-2");
    assert_int_equal(s->seqs[3], 6);
    /* Byte limit: the first always comes, then stop before going over. */
    s->n = 0;
    assert_int_equal(agent_outbox_peek(ob, 1, 100, 1, seen_cb, s, &n, NULL), KT_OK);
    assert_int_equal(n, 1);
    s->n = 0;
    uint64_t two = 0;
    sync_event probe = { .id = "ev-0",
                         .type = "ktwin.store.pole",
                         .source = "pole-1",
                         .datacontenttype = "application/json",
                         .data_len = 7 };
    two = 2 * agent_outbox_event_bytes(&probe);
    assert_int_equal(agent_outbox_peek(ob, 1, 100, two, seen_cb, s, &n, NULL), KT_OK);
    assert_int_equal(n, 2);
    /* Ack 4: rows 1..4 go, peek from 1 starts at 5. */
    assert_int_equal(agent_outbox_ack(ob, 4, NULL), KT_OK);
    assert_int_equal(agent_outbox_events(ob), 6);
    assert_int_equal(agent_outbox_first_seq(ob), 5);
    s->n = 0;
    assert_int_equal(agent_outbox_peek(ob, 1, 100, UINT64_MAX, seen_cb, s, &n, NULL), KT_OK);
    assert_int_equal(n, 6);
    assert_int_equal(s->seqs[0], 5);
    /* An old ack is a no-op; one past the end is refused. */
    assert_int_equal(agent_outbox_ack(ob, 2, NULL), KT_OK);
    assert_int_equal(agent_outbox_events(ob), 6);
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_ack(ob, 11, &err), KT_EINVAL);
    assert_int_equal(agent_outbox_events(ob), 6);
    agent_outbox_free(ob);
    kt_free(s);
}

static void kick_cb(agent_outbox *ob, void *user)
{
    (void)ob;
    (*(int *)user)++;
}

static void test_transactions_commit_kick_and_rollback(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    int kicks = 0;
    agent_outbox_set_kick(ob, kick_cb, &kicks);
    assert_int_equal(agent_outbox_begin(ob, NULL), KT_OK);
    assert_int_equal(agent_outbox_begin(ob, NULL), KT_EINVAL);
    append_one(ob, 0, NULL);
    append_one(ob, 1, NULL);
    assert_int_equal(agent_outbox_meta_set(ob, "journal_applied", 77, NULL), KT_OK);
    assert_int_equal(kicks, 0);
    assert_int_equal(agent_outbox_commit(ob, NULL), KT_OK);
    assert_int_equal(kicks, 1);
    assert_int_equal(agent_outbox_meta_get(ob, "journal_applied"), 77);

    assert_int_equal(agent_outbox_begin(ob, NULL), KT_OK);
    append_one(ob, 2, NULL);
    assert_int_equal(agent_outbox_meta_set(ob, "journal_applied", 99, NULL), KT_OK);
    assert_int_equal(agent_outbox_events(ob), 3);
    agent_outbox_rollback(ob);
    assert_int_equal(kicks, 1);
    assert_int_equal(agent_outbox_events(ob), 2);
    assert_int_equal(agent_outbox_next_seq(ob), 3);
    assert_int_equal(agent_outbox_meta_get(ob, "journal_applied"), 77);
    /* An append outside a transaction commits (and kicks) by itself. */
    uint64_t seq = 0;
    append_one(ob, 3, &seq);
    assert_int_equal(seq, 3);
    assert_int_equal(kicks, 2);
    agent_outbox_free(ob);

    ob = ob_open(f, 0, 0, NULL);
    assert_int_equal(agent_outbox_events(ob), 3);
    assert_int_equal(agent_outbox_meta_get(ob, "journal_applied"), 77);
    agent_outbox_free(ob);
}

static void test_quota_full_then_low_water(void **state)
{
    fixture *f = *state;
    kt_metrics *reg = kt_metrics_new();
    sync_event probe = { .id = "ev-0",
                         .type = "ktwin.store.pole",
                         .source = "pole-1",
                         .datacontenttype = "application/json",
                         .data_len = 7 };
    uint64_t one = agent_outbox_event_bytes(&probe);
    /* Room for exactly 10 events; low water at 5 events' worth. */
    agent_outbox *ob = ob_open(f, 10 * one, 5 * one, reg);
    for (int i = 0; i < 10; i++) {
        append_one(ob, i, NULL);
    }
    assert_false(agent_outbox_full(ob));
    char id[] = "ev-9";
    sync_event ev = probe;
    ev.id = id;
    ev.data = (const uint8_t *)"{\"i\":9}";
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_append(ob, &ev, NULL, &err), KT_EAGAIN);
    assert_true(agent_outbox_full(ob));
    assert_int_equal(agent_outbox_events(ob), 10);
    kt_metric *m = kt_metrics_find(reg, "ktwin_agent_outbox_full", NULL);
    assert_non_null(m);
    assert_true(kt_metrics_value(m) == 1.0);
    assert_true(kt_metrics_value(kt_metrics_find(reg, "ktwin_agent_outbox_events", NULL)) == 10.0);
    /* Acking down to 5 events is not below low water yet; to 4 is. */
    assert_int_equal(agent_outbox_ack(ob, 5, NULL), KT_OK);
    assert_true(agent_outbox_full(ob));
    assert_int_equal(agent_outbox_ack(ob, 6, NULL), KT_OK);
    assert_false(agent_outbox_full(ob));
    assert_true(kt_metrics_value(m) == 0.0);
    assert_int_equal(agent_outbox_append(ob, &ev, NULL, &err), KT_OK);
    agent_outbox_free(ob);
    kt_metrics_free(reg);
}

static void test_append_refuses_missing_attributes(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    sync_event ev = { .id = "", .type = "t", .source = "s" };
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_append(ob, &ev, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "required"));
    assert_int_equal(agent_outbox_events(ob), 0);
    agent_outbox_free(ob);
}

/* agent-rss: the connection's page cache stays bounded while the outbox holds more than
 * SQLite's default cache (2000 KiB) of events, written and read back. */
static void test_page_cache_is_bounded(void **state)
{
    fixture *f = *state;
    agent_outbox *ob = ob_open(f, 0, 0, NULL);
    static char data[2048];
    memset(data, 'x', sizeof data);
    data[0] = '"';
    data[sizeof data - 1] = '"';
    kt_err err = { 0 };
    for (int i = 0; i < 3000; i++) { /* ~6 MB */
        char id[32];
        (void)snprintf(id, sizeof id, "ev-%d", i);
        sync_event ev = { .id = id,
                          .type = "ktwin.store.pole",
                          .source = "pole-1",
                          .time_ms = 1000u + (uint64_t)i,
                          .datacontenttype = "application/json",
                          .data = (const uint8_t *)data,
                          .data_len = sizeof data };
        assert_int_equal(agent_outbox_append(ob, &ev, NULL, &err), KT_OK);
    }
    seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(agent_outbox_peek(ob, 1, 3000, UINT64_MAX, seen_cb, &s, NULL, &err), KT_OK);
    assert_int_equal(s.n, 3000);
    assert_true(agent_outbox_cache_bytes(ob) > 0);
    assert_true(agent_outbox_cache_bytes(ob) <= 400u * 1024u);
    agent_outbox_free(ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_and_incarnation_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_limits_and_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_is_kept_and_old_files_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions_commit_kick_and_rollback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quota_full_then_low_water, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_refuses_missing_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_cache_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
