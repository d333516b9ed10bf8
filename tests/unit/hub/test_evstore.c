/*
 * test_evstore.c — the hub's event store (hub/evstore.h) on its SQLite
 * backend: append + latest, dedupe by (site, incarnation, seq) within a
 * transaction, across reconnects and across a restart (reopen), a new
 * incarnation is not a duplicate, rollback and savepoints, latest
 * upsert-merge through the merge callback (also of an instance several
 * times in one append, where the store merges in memory), range queries
 * with pagination, retention by age (fake wall clock) and by size in bounded steps, and the
 * per-site downstream queues (order, ack, cap, seqs across restarts, rebase),
 * WAL checkpoints on the store's checkpointer thread, and the migration of
 * a version-1 file (text instance index) to the hashed instance index.
 *
 * The merge callback here is a small shallow JSON object merge written for
 * the test (the hub plugs in svc_merge_json; its rules are tested in
 * tests/unit/svc). Each test gets its own temp dir (kept with KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hub/evstore.h"
#include "hub_test_util.h"
#include "kt/clock.h"
#include "kt/json.h"
#include "kt/mem.h"

typedef struct fx {
    char dir[512];
    char path[600];
    hub_evstore *s;
    int merge_calls;
    const char *fail_merge_instance; /* merge of this instance fails with KT_ENOMEM */
} fx;

/* Shallow merge of two JSON objects: next's keys over latest's. */
static kt_status test_merge(kt_buf *out,
                            const uint8_t *latest,
                            size_t latest_len,
                            const uint8_t *next,
                            size_t next_len,
                            kt_err *err,
                            void *user)
{
    fx *f = user;
    f->merge_calls++;
    cJSON *a = NULL;
    cJSON *b = NULL;
    kt_status st = kt_json_parse((const char *)latest, latest_len, 1 << 20, &a, err);
    if (st == KT_OK) {
        st = kt_json_parse((const char *)next, next_len, 1 << 20, &b, err);
    }
    if (st == KT_OK && (!cJSON_IsObject(a) || !cJSON_IsObject(b))) {
        st = kt_err_set(err, KT_EINVAL, "not objects");
    }
    if (st == KT_OK && f->fail_merge_instance != NULL) {
        cJSON *marker = cJSON_GetObjectItemCaseSensitive(b, "fail");
        if (marker != NULL) {
            st = kt_err_set(err, KT_ENOMEM, "injected");
        }
    }
    if (st == KT_OK) {
        cJSON *it = NULL;
        cJSON_ArrayForEach(it, b)
        {
            cJSON *copy = cJSON_Duplicate(it, 1);
            if (cJSON_GetObjectItemCaseSensitive(a, it->string) != NULL) {
                cJSON_ReplaceItemInObjectCaseSensitive(a, it->string, copy);
            } else {
                cJSON_AddItemToObject(a, it->string, copy);
            }
        }
        st = kt_json_print_buf(a, out);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return st;
}

static void reopen(fx *f, uint64_t down_cap)
{
    hub_evstore_free(f->s);
    f->s = NULL;
    hub_evstore_sqlite_opts o = { 0 };
    o.path = f->path;
    o.merge = test_merge;
    o.merge_user = f;
    o.down_max_per_site = down_cap;
    kt_err err = { 0 };
    kt_status st = hub_evstore_sqlite_open(&f->s, &o, &err);
    if (st != KT_OK) {
        fail_msg("open: %s", err.msg);
    }
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof(*f));
    tu_mkdtemp(f->dir, sizeof(f->dir), "kt-evstore");
    assert_true(f->dir[0] != '\0');
    snprintf(f->path, sizeof(f->path), "%s/events.db", f->dir);
    reopen(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    hub_evstore_free(f->s);
    tu_rmtree(f->dir);
    kt_free(f);
    kt_clock_set_fake(NULL, NULL);
    return 0;
}

static hub_evstore_event
mk(const char *inst, const char *id, uint64_t t, const char *data, uint64_t seq)
{
    hub_evstore_event e = { 0 };
    e.iface = "city-pole";
    e.instance = inst;
    e.id = id;
    e.type = "ktwin.store.city-pole";
    e.source = inst;
    e.time_ms = t;
    e.datacontenttype = "application/json";
    e.data = (const uint8_t *)data;
    e.data_len = strlen(data);
    e.seq = seq;
    return e;
}

static void must(kt_status st, const kt_err *err)
{
    if (st != KT_OK) {
        fail_msg("status %s: %s", kt_status_str(st), err->msg);
    }
}

static hub_evstore_append_result
append_commit(fx *f, const char *site, const char *inc, const hub_evstore_event *evs, size_t n)
{
    kt_err err = { 0 };
    hub_evstore_append_result r;
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_append(f->s, site, inc, evs, n, &r, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
    return r;
}

/* Collect ids (and data of the last) of events passed to a callback. */
typedef struct collect {
    char ids[64][32];
    char data[256];
    char site[32];
    uint64_t seqs[64];
    uint64_t rowids[64];
    uint32_t depths[64];
    char instances[64][32];
    size_t n;
    size_t stop_after; /* 0 = never stop */
} collect;

static int collect_cb(const hub_evstore_event *ev, void *user)
{
    collect *c = user;
    if (c->n < 64) {
        kt_strlcpy(c->ids[c->n], ev->id, sizeof(c->ids[0]));
        c->seqs[c->n] = ev->seq;
        c->rowids[c->n] = ev->rowid;
        c->depths[c->n] = ev->depth;
        kt_strlcpy(c->instances[c->n], ev->instance, sizeof(c->instances[0]));
    }
    snprintf(c->data, sizeof(c->data), "%.*s", (int)ev->data_len, (const char *)ev->data);
    kt_strlcpy(c->site, ev->site, sizeof(c->site));
    c->n++;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

static uint64_t count_all(fx *f)
{
    hub_evstore_stats st;
    hub_evstore_stats_get(f->s, &st);
    return st.rows;
}

/* ------------------------------------------------------------------ tests */

static void test_append_then_latest_and_list(void **state)
{
    fx *f = *state;
    hub_evstore_event e[2] = { mk("p1", "a", 1000, "{\"x\":1}", 0),
                               mk("p1", "b", 2000, "{\"y\":2}", 0) };
    hub_evstore_append_result r = append_commit(f, NULL, NULL, e, 2);
    assert_int_equal(r.n_committed, 2);
    assert_int_equal(r.n_duplicates, 0);
    assert_int_equal(r.acked_seq, 0);
    collect c = { 0 };
    kt_err err = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "b");
    /* upsert-merge: latest is the merged document, and so is the stored second event */
    assert_string_equal(c.data, "{\"x\":1,\"y\":2}");
    assert_string_equal(c.site, "");
    assert_int_equal(hub_evstore_latest(f->s, "city-pole", "nope", collect_cb, &c, &err),
                     KT_ENOTFOUND);
    hub_evstore_filter q = { .iface = "city-pole", .instance = "p1" };
    hub_evstore_page page;
    collect l = { 0 };
    must(hub_evstore_query(f->s, &q, collect_cb, &l, &page, &err), &err);
    assert_int_equal(page.n, 2);
    assert_false(page.more);
    assert_string_equal(l.ids[0], "a");
    assert_string_equal(l.ids[1], "b");
    assert_string_equal(l.data, "{\"x\":1,\"y\":2}");
    assert_int_equal(count_all(f), 2);
    hub_evstore_stats stats;
    hub_evstore_stats_get(f->s, &stats);
    assert_true(stats.bytes > 2 * 48);
}

static void test_append_rejects_missing_attributes_and_bad_seq(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event e = mk("p1", "a", 1, "{}", 1);
    assert_int_equal(hub_evstore_append(f->s, NULL, NULL, &e, 1, NULL, &err), KT_EINVAL);
    must(hub_evstore_begin(f->s, &err), &err);
    e.id = "";
    kt_err_clear(&err);
    assert_int_equal(hub_evstore_append(f->s, NULL, NULL, &e, 1, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "id missing"));
    hub_evstore_event two[2] = { mk("p1", "a", 1, "{}", 5), mk("p1", "b", 1, "{}", 5) };
    kt_err_clear(&err);
    assert_int_equal(hub_evstore_append(f->s, "s1", "inc", two, 2, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "event 1"));
    two[0].seq = 0;
    assert_int_equal(hub_evstore_append(f->s, "s1", "inc", two, 2, NULL, &err), KT_EINVAL);
    assert_int_equal(hub_evstore_append(f->s, "s1", "", two, 2, NULL, &err), KT_EINVAL);
    must(hub_evstore_commit(f->s, &err), &err);
    assert_int_equal(count_all(f), 0);
}

static void test_dedupe_within_transaction_and_on_resend(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event b1[3] = { mk("p1", "a", 1, "{}", 1), mk("p1", "b", 2, "{}", 2),
                                mk("p1", "c", 3, "{}", 3) };
    hub_evstore_event b2[2] = { mk("p1", "c", 3, "{}", 3), mk("p1", "d", 4, "{}", 4) };
    /* two batches of one session in one group transaction; the second overlaps */
    must(hub_evstore_begin(f->s, &err), &err);
    hub_evstore_append_result r1;
    hub_evstore_append_result r2;
    must(hub_evstore_append(f->s, "s1", "inc-1", b1, 3, &r1, &err), &err);
    must(hub_evstore_append(f->s, "s1", "inc-1", b2, 2, &r2, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
    assert_int_equal(r1.n_committed, 3);
    assert_int_equal(r1.acked_seq, 3);
    assert_int_equal(r2.n_committed, 1);
    assert_int_equal(r2.n_duplicates, 1);
    assert_int_equal(r2.acked_seq, 4);
    /* reconnect: the agent resends everything from 1 */
    hub_evstore_event all[4] = { b1[0], b1[1], b1[2], b2[1] };
    hub_evstore_append_result r3 = append_commit(f, "s1", "inc-1", all, 4);
    assert_int_equal(r3.n_committed, 0);
    assert_int_equal(r3.n_duplicates, 4);
    assert_int_equal(r3.acked_seq, 4);
    assert_int_equal(count_all(f), 4);
    uint64_t acked = 0;
    must(hub_evstore_acked_seq(f->s, "s1", "inc-1", &acked, &err), &err);
    assert_int_equal(acked, 4);
    /* another site with the same incarnation text is another stream */
    hub_evstore_append_result r4 = append_commit(f, "s2", "inc-1", all, 4);
    assert_int_equal(r4.n_committed, 4);
    assert_int_equal(count_all(f), 8);
}

static void test_dedupe_survives_restart(void **state)
{
    fx *f = *state;
    hub_evstore_event b[2] = { mk("p1", "a", 1, "{}", 10), mk("p1", "b", 2, "{}", 11) };
    (void)append_commit(f, "s1", "inc-1", b, 2);
    reopen(f, 0); /* hub restart */
    hub_evstore_event again[3] = { b[0], b[1], mk("p1", "c", 3, "{}", 12) };
    hub_evstore_append_result r = append_commit(f, "s1", "inc-1", again, 3);
    assert_int_equal(r.n_duplicates, 2);
    assert_int_equal(r.n_committed, 1);
    assert_int_equal(r.acked_seq, 12);
    assert_int_equal(count_all(f), 3); /* stats survive the restart too */
}

static void test_new_incarnation_is_not_a_duplicate(void **state)
{
    fx *f = *state;
    hub_evstore_event b[2] = { mk("p1", "a", 1, "{}", 1), mk("p1", "b", 2, "{}", 2) };
    (void)append_commit(f, "s1", "inc-1", b, 2);
    /* the agent's store was wiped: new incarnation, seqs restart at 1 */
    hub_evstore_event n[2] = { mk("p1", "c", 3, "{}", 1), mk("p1", "d", 4, "{}", 2) };
    hub_evstore_append_result r = append_commit(f, "s1", "inc-2", n, 2);
    assert_int_equal(r.n_committed, 2);
    assert_int_equal(r.n_duplicates, 0);
    assert_int_equal(count_all(f), 4);
}

static void test_rollback_leaves_nothing(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event b[1] = { mk("p1", "a", 1, "{\"v\":1}", 1) };
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_append(f->s, "s1", "inc", b, 1, NULL, &err), &err);
    assert_int_equal(count_all(f), 1);
    hub_evstore_rollback(f->s);
    assert_int_equal(count_all(f), 0);
    uint64_t acked = 99;
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 0);
    collect c = { 0 };
    assert_int_equal(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &c, &err),
                     KT_ENOTFOUND);
    /* and after a restart too */
    reopen(f, 0);
    assert_int_equal(count_all(f), 0);
}

static void test_failed_append_keeps_the_rest_of_the_group(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event seed[1] = { mk("p2", "s", 1, "{\"k\":0}", 0) };
    (void)append_commit(f, NULL, NULL, seed, 1);
    f->fail_merge_instance = "p2";
    hub_evstore_event ok[1] = { mk("p1", "a", 1, "{}", 1) };
    hub_evstore_event bad[2] = { mk("p3", "b", 1, "{}", 1), mk("p2", "c", 2, "{\"fail\":1}", 2) };
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_append(f->s, "s1", "inc", ok, 1, NULL, &err), &err);
    hub_evstore_append_result r;
    assert_int_equal(hub_evstore_append(f->s, "s2", "inc", bad, 2, &r, &err), KT_ENOMEM);
    assert_int_equal(r.n_committed, 0);
    must(hub_evstore_commit(f->s, &err), &err);
    uint64_t acked = 0;
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 1);
    must(hub_evstore_acked_seq(f->s, "s2", "inc", &acked, &err), &err);
    assert_int_equal(acked, 0); /* nothing of the failed batch, not even its first event */
    assert_int_equal(count_all(f), 2);
    collect c = { 0 };
    assert_int_equal(hub_evstore_latest(f->s, "city-pole", "p3", collect_cb, &c, &err),
                     KT_ENOTFOUND);
}

static void test_merge_of_non_objects_keeps_new_data(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event a[1] = { mk("p1", "a", 1, "{\"x\":1}", 0) };
    hub_evstore_event b[1] = { mk("p1", "b", 2, "[1,2]", 0) };
    hub_evstore_event c3[1] = { mk("p1", "c", 3, "{\"z\":3}", 0) };
    (void)append_commit(f, NULL, NULL, a, 1);
    (void)append_commit(f, NULL, NULL, b, 1);
    collect c = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &c, &err), &err);
    assert_string_equal(c.data, "[1,2]");
    (void)append_commit(f, NULL, NULL, c3, 1);
    collect d = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &d, &err), &err);
    assert_string_equal(d.data, "{\"z\":3}");
    assert_int_equal(f->merge_calls, 2);
}

/* The event of instance (iface city-pole unless other) at index i of a query, by id. */
static void
expect_events(fx *f, const char *iface, const char *inst, size_t n, const char *const *datas)
{
    hub_evstore_filter q = { .iface = iface, .instance = inst };
    hub_evstore_page page;
    kt_err err = { 0 };
    for (size_t i = 0; i < n; i++) {
        collect l = { 0 };
        l.stop_after = i + 1;
        memset(&page, 0, sizeof(page));
        must(hub_evstore_query(f->s, &q, collect_cb, &l, &page, &err), &err);
        assert_int_equal(l.n, i + 1);
        assert_string_equal(l.data, datas[i]);
    }
    collect all = { 0 };
    memset(&page, 0, sizeof(page));
    must(hub_evstore_query(f->s, &q, collect_cb, &all, &page, &err), &err);
    assert_int_equal(all.n, n);
}

static void test_one_append_merges_each_instance_in_event_order(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    hub_evstore_event seed[1] = { mk("p1", "s", 1, "{\"a\":0}", 0) };
    (void)append_commit(f, NULL, NULL, seed, 1);
    /* one append, instances interleaved; p1 also exists under another interface */
    hub_evstore_event b[7] = { mk("p1", "b1", 10, "{\"x\":1}", 1),
                               mk("p2", "b2", 11, "{\"y\":1}", 2),
                               mk("p1", "b3", 12, "{\"x\":2,\"z\":1}", 3),
                               mk("p1", "b4", 13, "{\"q\":1}", 4),
                               mk("p1", "b5", 14, "[1]", 5),
                               mk("p1", "b6", 15, "{\"w\":1}", 6),
                               mk("p2", "b7", 16, "{\"y\":2,\"v\":0}", 7) };
    b[3].iface = "city-light";
    b[3].type = "ktwin.store.city-light";
    hub_evstore_append_result r = append_commit(f, "s1", "inc", b, 7);
    assert_int_equal(r.n_committed, 7);
    assert_int_equal(r.acked_seq, 7);
    /* every stored event is the merge of everything before it, in order */
    const char *p1[] = { "{\"a\":0}", "{\"a\":0,\"x\":1}", "{\"a\":0,\"x\":2,\"z\":1}", "[1]",
                         "{\"w\":1}" };
    expect_events(f, "city-pole", "p1", 5, p1);
    const char *p2[] = { "{\"y\":1}", "{\"y\":2,\"v\":0}" };
    expect_events(f, "city-pole", "p2", 2, p2);
    const char *l1[] = { "{\"q\":1}" };
    expect_events(f, "city-light", "p1", 1, l1);
    /* latest: the last event of each instance, with its rowid */
    collect c = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &c, &err), &err);
    assert_string_equal(c.ids[0], "b6");
    assert_string_equal(c.data, "{\"w\":1}");
    assert_string_equal(c.site, "s1");
    hub_evstore_filter q = { .iface = "city-pole", .instance = "p1", .desc = true, .limit = 1 };
    hub_evstore_page page;
    collect last = { 0 };
    must(hub_evstore_query(f->s, &q, collect_cb, &last, &page, &err), &err);
    assert_int_equal(c.rowids[0], last.rowids[0]);
    collect d = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p2", collect_cb, &d, &err), &err);
    assert_string_equal(d.ids[0], "b7");
    assert_string_equal(d.data, "{\"y\":2,\"v\":0}");
    collect e = { 0 };
    must(hub_evstore_latest(f->s, "city-light", "p1", collect_cb, &e, &err), &err);
    assert_string_equal(e.ids[0], "b4");
    /* an append that fails after merging p1 in memory leaves p1's latest as it was */
    f->fail_merge_instance = "p2";
    hub_evstore_event bad[2] = { mk("p1", "c1", 20, "{\"k\":1}", 8),
                                 mk("p2", "c2", 21, "{\"fail\":1}", 9) };
    must(hub_evstore_begin(f->s, &err), &err);
    assert_int_equal(hub_evstore_append(f->s, "s1", "inc", bad, 2, &r, &err), KT_ENOMEM);
    must(hub_evstore_commit(f->s, &err), &err);
    collect g = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &g, &err), &err);
    assert_string_equal(g.ids[0], "b6");
    assert_string_equal(g.data, "{\"w\":1}");
    /* and the next append merges over the stored state, not over what was rolled back */
    f->fail_merge_instance = NULL;
    hub_evstore_event next[1] = { mk("p1", "d1", 30, "{\"m\":1}", 8) };
    (void)append_commit(f, "s1", "inc", next, 1);
    collect h = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &h, &err), &err);
    assert_string_equal(h.data, "{\"w\":1,\"m\":1}");
}

/* A version-1 file (events indexed by (iface, instance, time_ms)) made by hand. */
static void make_v1_file(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static const char v1[] =
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE events(rid INTEGER PRIMARY KEY, iface TEXT NOT NULL, "
        "instance TEXT NOT NULL, time_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, "
        "id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, dct TEXT, "
        "site TEXT NOT NULL, data BLOB, size INTEGER NOT NULL);"
        "CREATE INDEX events_inst ON events(iface, instance, time_ms);"
        "CREATE INDEX events_time ON events(time_ms);"
        "CREATE TABLE latest(rid INTEGER NOT NULL, iface TEXT NOT NULL, "
        "instance TEXT NOT NULL, time_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, "
        "id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, dct TEXT, "
        "site TEXT NOT NULL, data BLOB, PRIMARY KEY(iface, instance)) WITHOUT ROWID;"
        "CREATE TABLE dedupe(site TEXT NOT NULL, incarnation TEXT NOT NULL, "
        "seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(site, incarnation)) "
        "WITHOUT ROWID;"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO events VALUES(1, 'city-pole', 'p1', 1000, 1000, 'a', 't', 'p1', NULL, NULL, "
        "'s1', '{\"x\":1}', 60);"
        "INSERT INTO events VALUES(2, 'city-pole', 'p2', 1500, 1500, 'b', 't', 'p2', NULL, NULL, "
        "'s1', '{\"y\":1}', 60);"
        "INSERT INTO events VALUES(3, 'city-pole', 'p1', 2000, 2000, 'c', 't', 'p1', NULL, NULL, "
        "'s1', '{\"x\":2}', 60);"
        "INSERT INTO latest VALUES(3, 'city-pole', 'p1', 2000, 2000, 'c', 't', 'p1', NULL, NULL, "
        "'s1', '{\"x\":2}');"
        "INSERT INTO latest VALUES(2, 'city-pole', 'p2', 1500, 1500, 'b', 't', 'p2', NULL, NULL, "
        "'s1', '{\"y\":1}');"
        "INSERT INTO dedupe VALUES('s1', 'inc', 3, 2000);"
        "INSERT INTO meta VALUES('rows', 3), ('bytes', 180);"
        "PRAGMA user_version = 1;";
    char *msg = NULL;
    int rc = sqlite3_exec(db, v1, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fail_msg("v1 schema: %s", msg != NULL ? msg : "?");
    }
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t read_int64(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void test_version_1_file_is_migrated_to_the_hashed_instance_index(void **state)
{
    fx *f = *state;
    hub_evstore_free(f->s);
    f->s = NULL;
    char side[700];
    remove(f->path);
    snprintf(side, sizeof(side), "%s-wal", f->path);
    remove(side);
    snprintf(side, sizeof(side), "%s-shm", f->path);
    remove(side);
    make_v1_file(f->path);
    reopen(f, 0);
    assert_int_equal(read_int64(f->path, "PRAGMA user_version"), 3);
    /* an existing file keeps its page size (a new one gets 8 KiB, below) */
    assert_int_equal(read_int64(f->path, "PRAGMA page_size"), 4096);
    assert_int_equal(read_int64(f->path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                         "AND name = 'events_inst'"),
                     0);
    assert_int_equal(read_int64(f->path, "SELECT count(*) FROM events WHERE ikey = 0"), 0);
    assert_int_equal(count_all(f), 3);
    /* the old rows are found per instance, in time order, and the dedupe mark holds */
    const char *p1[] = { "{\"x\":1}", "{\"x\":2}" };
    expect_events(f, "city-pole", "p1", 2, p1);
    hub_evstore_event b[2] = { mk("p1", "c", 2000, "{\"x\":2}", 3),
                               mk("p1", "d", 3000, "{\"z\":1}", 4) };
    hub_evstore_append_result r = append_commit(f, "s1", "inc", b, 2);
    assert_int_equal(r.n_duplicates, 1);
    assert_int_equal(r.n_committed, 1);
    const char *p1b[] = { "{\"x\":1}", "{\"x\":2}", "{\"x\":2,\"z\":1}" };
    expect_events(f, "city-pole", "p1", 3, p1b);
    /* a row whose ikey matches another instance's (a hash collision) is filtered out */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "UPDATE events SET ikey = (SELECT ikey FROM events WHERE rid = 1) "
                     "WHERE instance = 'p2'",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    expect_events(f, "city-pole", "p1", 3, p1b);
    /* opening a version-2 file again changes nothing */
    reopen(f, 0);
    assert_int_equal(count_all(f), 4);
    expect_events(f, "city-pole", "p1", 3, p1b);
}

/* A new store is made of 8 KiB pages (the replay drain's best, evstore_sqlite.c). */
static void test_new_store_uses_8_kib_pages(void **state)
{
    fx *f = *state;
    hub_evstore_event a[1] = { mk("p1", "a", 1000, "{\"x\":1}", 1) };
    (void)append_commit(f, "s1", "inc", a, 1);
    assert_int_equal(read_int64(f->path, "PRAGMA page_size"), 8192);
    reopen(f, 0);
    assert_int_equal(read_int64(f->path, "PRAGMA page_size"), 8192);
    assert_int_equal(count_all(f), 1);
}

static void test_range_query_and_pagination(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    /* 10 events of p1 at times 100..1000, with ties at 500 (3 events), plus p2 noise */
    hub_evstore_event e[13];
    char ids[13][8];
    uint64_t times[13] = { 100, 200, 300, 400, 500, 500, 500, 800, 900, 1000, 150, 550, 950 };
    for (int i = 0; i < 13; i++) {
        snprintf(ids[i], sizeof(ids[i]), "e%02d", i);
        e[i] = mk(i < 10 ? "p1" : "p2", ids[i], times[i], "{}", 0);
    }
    (void)append_commit(f, NULL, NULL, e, 13);
    /* ascending, pages of 3 */
    hub_evstore_filter q = { .iface = "city-pole", .instance = "p1", .limit = 3 };
    char got[16][8];
    size_t n = 0;
    for (int page_no = 0; page_no < 10; page_no++) {
        collect c = { 0 };
        hub_evstore_page page;
        must(hub_evstore_query(f->s, &q, collect_cb, &c, &page, &err), &err);
        for (size_t i = 0; i < c.n; i++) {
            kt_strlcpy(got[n++], c.ids[i], sizeof(got[0]));
        }
        if (!page.more) {
            break;
        }
        assert_int_equal(page.n, 3);
        q.after_time_ms = page.next_time_ms;
        q.after_rowid = page.next_rowid;
    }
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++) {
        assert_string_equal(got[i], ids[i]);
    }
    /* descending with a time window [300, 900): e07 e06 e05 e04 e03 e02 */
    hub_evstore_filter d = { .iface = "city-pole",
                             .instance = "p1",
                             .from_ms = 300,
                             .to_ms = 900,
                             .desc = true,
                             .limit = 4 };
    collect c1 = { 0 };
    hub_evstore_page p1;
    must(hub_evstore_query(f->s, &d, collect_cb, &c1, &p1, &err), &err);
    assert_int_equal(c1.n, 4);
    assert_true(p1.more);
    assert_string_equal(c1.ids[0], "e07");
    assert_string_equal(c1.ids[1], "e06");
    assert_string_equal(c1.ids[2], "e05");
    assert_string_equal(c1.ids[3], "e04");
    d.after_time_ms = p1.next_time_ms;
    d.after_rowid = p1.next_rowid;
    collect c2 = { 0 };
    hub_evstore_page p2;
    must(hub_evstore_query(f->s, &d, collect_cb, &c2, &p2, &err), &err);
    assert_int_equal(c2.n, 2);
    assert_false(p2.more);
    assert_string_equal(c2.ids[0], "e03");
    assert_string_equal(c2.ids[1], "e02");
    /* all events, ascending by time: e00 e10(150) e01 ... */
    hub_evstore_filter all = { .limit = 3 };
    collect c3 = { 0 };
    hub_evstore_page p3;
    must(hub_evstore_query(f->s, &all, collect_cb, &c3, &p3, &err), &err);
    assert_string_equal(c3.ids[0], "e00");
    assert_string_equal(c3.ids[1], "e10");
    assert_string_equal(c3.ids[2], "e01");
    assert_true(p3.more);
    /* bad filters */
    hub_evstore_filter bad = { .iface = "city-pole" };
    assert_int_equal(hub_evstore_query(f->s, &bad, collect_cb, &c3, &p3, &err), KT_EINVAL);
    hub_evstore_filter big = { .limit = HUB_EVSTORE_MAX_LIMIT + 1 };
    assert_int_equal(hub_evstore_query(f->s, &big, collect_cb, &c3, &p3, &err), KT_EINVAL);
    /* a callback that stops early still gives a usable cursor */
    collect c4 = { .stop_after = 2 };
    hub_evstore_filter q2 = { .iface = "city-pole", .instance = "p1" };
    hub_evstore_page p4;
    must(hub_evstore_query(f->s, &q2, collect_cb, &c4, &p4, &err), &err);
    assert_int_equal(p4.n, 2);
    assert_true(p4.more);
}

static void test_retention_by_age_in_bounded_steps(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    uint64_t wall = 1000000;
    kt_clock_set_fake(NULL, &wall);
    hub_evstore_event e[1];
    char id[16];
    for (int i = 0; i < 10; i++) {
        wall = 1000000 + (uint64_t)i * 1000; /* committed one second apart */
        snprintf(id, sizeof(id), "e%d", i);
        e[0] = mk("p1", id, wall, "{}", 0);
        (void)append_commit(f, NULL, NULL, e, 1);
    }
    assert_int_equal(count_all(f), 10);
    /* delete what was committed before 1,006,000 ms: e0..e5, 4 rows per step */
    size_t deleted = 0;
    bool more = false;
    must(hub_evstore_retain(f->s, 1006000, 0, 4, &deleted, &more, &err), &err);
    assert_int_equal(deleted, 4);
    assert_true(more);
    must(hub_evstore_retain(f->s, 1006000, 0, 4, &deleted, &more, &err), &err);
    assert_int_equal(deleted, 2);
    assert_false(more);
    must(hub_evstore_retain(f->s, 1006000, 0, 4, &deleted, &more, &err), &err);
    assert_int_equal(deleted, 0);
    assert_int_equal(count_all(f), 4);
    /* the oldest left is e6; the latest state stays whatever retention does */
    collect c = { 0 };
    hub_evstore_filter q = { .iface = "city-pole", .instance = "p1" };
    hub_evstore_page page;
    must(hub_evstore_query(f->s, &q, collect_cb, &c, &page, &err), &err);
    assert_string_equal(c.ids[0], "e6");
    must(hub_evstore_retain(f->s, 2000000, 0, 100, &deleted, &more, &err), &err);
    assert_int_equal(deleted, 4);
    assert_int_equal(count_all(f), 0);
    collect l = { 0 };
    must(hub_evstore_latest(f->s, "city-pole", "p1", collect_cb, &l, &err), &err);
    assert_string_equal(l.ids[0], "e9");
    hub_evstore_stats st;
    hub_evstore_stats_get(f->s, &st);
    assert_int_equal(st.bytes, 0);
    /* inside a transaction it is refused */
    must(hub_evstore_begin(f->s, &err), &err);
    assert_int_equal(hub_evstore_retain(f->s, 1, 0, 1, &deleted, &more, &err), KT_EINVAL);
    hub_evstore_rollback(f->s);
}

static void test_retention_by_size(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    char data[200];
    memset(data, 'x', sizeof(data));
    data[0] = '"';
    data[sizeof(data) - 2] = '"';
    data[sizeof(data) - 1] = '\0';
    hub_evstore_event e[20];
    char ids[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], sizeof(ids[i]), "e%02d", i);
        e[i] = mk("p1", ids[i], (uint64_t)i + 1, data, 0);
    }
    (void)append_commit(f, NULL, NULL, e, 20);
    hub_evstore_stats st;
    hub_evstore_stats_get(f->s, &st);
    uint64_t per_row = st.bytes / 20;
    assert_int_equal(st.bytes % 20, 0);
    uint64_t cap = per_row * 5 + per_row / 2; /* room for 5 rows */
    size_t deleted = 0;
    bool more = true;
    size_t total = 0;
    for (int i = 0; i < 10 && more; i++) {
        must(hub_evstore_retain(f->s, 0, cap, 6, &deleted, &more, &err), &err);
        total += deleted;
    }
    assert_int_equal(total, 15);
    hub_evstore_stats_get(f->s, &st);
    assert_int_equal(st.rows, 5);
    assert_true(st.bytes <= cap);
    /* the newest five are left */
    collect c = { 0 };
    hub_evstore_filter q = { .iface = "city-pole", .instance = "p1" };
    hub_evstore_page page;
    must(hub_evstore_query(f->s, &q, collect_cb, &c, &page, &err), &err);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.ids[0], "e15");
    reopen(f, 0);
    hub_evstore_stats again;
    hub_evstore_stats_get(f->s, &again);
    assert_int_equal(again.rows, 5);
    assert_int_equal(again.bytes, st.bytes);
}

static void push(fx *f, const char *site, const char *id, uint64_t expect_seq)
{
    kt_err err = { 0 };
    hub_evstore_event e = mk("p1", id, 1, "{\"cmd\":1}", 0);
    e.type = "ktwin.command.city-pole.updateairqualityindex";
    uint64_t seq = 0;
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_down_push(f->s, site, &e, &seq, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
    assert_int_equal(seq, expect_seq);
}

static void test_downstream_queue_order_ack_and_restart(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    push(f, "s1", "c1", 1);
    push(f, "s2", "x1", 1);
    push(f, "s1", "c2", 2);
    push(f, "s1", "c3", 3);
    assert_int_equal(hub_evstore_down_count(f->s, "s1"), 3);
    collect c = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.ids[0], "c1");
    assert_string_equal(c.ids[2], "c3");
    assert_int_equal(c.seqs[0], 1);
    assert_int_equal(c.seqs[2], 3);
    assert_string_equal(c.site, "s1");
    collect c2 = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 1, 1, collect_cb, &c2, &err), &err);
    assert_int_equal(c2.n, 1);
    assert_string_equal(c2.ids[0], "c2");
    must(hub_evstore_down_ack(f->s, "s1", 2, &err), &err);
    assert_int_equal(hub_evstore_down_count(f->s, "s1"), 1);
    must(hub_evstore_down_ack(f->s, "s1", 3, &err), &err);
    assert_int_equal(hub_evstore_down_count(f->s, "s1"), 0);
    /* seqs never go backwards: not after an empty queue, not after a restart */
    reopen(f, 0);
    push(f, "s1", "c4", 4);
    assert_int_equal(hub_evstore_down_count(f->s, "s2"), 1);
    collect c3 = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &c3, &err), &err);
    assert_int_equal(c3.n, 1);
    assert_int_equal(c3.seqs[0], 4);
}

/* A queued entry keeps its loop depth (sync.proto Event.depth), also across a restart. */
static void push_depth(fx *f, const char *site, const char *id, uint32_t depth)
{
    kt_err err = { 0 };
    hub_evstore_event e = mk("p1", id, 1, "{\"cmd\":1}", 0);
    e.depth = depth;
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_down_push(f->s, site, &e, NULL, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
}

static void test_downstream_entries_keep_their_depth(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    push_depth(f, "s1", "d0", 0);
    push_depth(f, "s1", "d5", 5);
    reopen(f, 0);
    collect c = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.depths[0], 0);
    assert_int_equal(c.depths[1], 5);
}

/*
 * A version-2 file (no depth column; a cloud queue's entries kept their depth
 * in the instance column) is migrated: the depth moves to its column and the
 * instance is the event's source again; site queues read depth 0.
 */
static void test_version_2_queues_are_migrated_to_the_depth_column(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    push_depth(f, "#cloud/city-pole", "q1", 0);
    push_depth(f, "s1", "c1", 0);
    hub_evstore_free(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db,
                          "ALTER TABLE down DROP COLUMN depth;"
                          "UPDATE down SET instance = '4' WHERE site = '#cloud/city-pole';"
                          "PRAGMA user_version = 2;",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fail_msg("make v2: %s", msg != NULL ? msg : "?");
    }
    sqlite3_close(db);
    reopen(f, 0);
    assert_int_equal(read_int64(f->path, "PRAGMA user_version"), 3);
    collect c = { 0 };
    must(hub_evstore_down_read(f->s, "#cloud/city-pole", 0, 10, collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.depths[0], 4);
    assert_string_equal(c.instances[0], "p1");
    collect s = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &s, &err), &err);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.depths[0], 0);
    assert_string_equal(s.instances[0], "p1");
}

static void test_downstream_queue_full(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    reopen(f, 2);
    push(f, "s1", "c1", 1);
    push(f, "s1", "c2", 2);
    hub_evstore_event e = mk("p1", "c3", 1, "{}", 0);
    must(hub_evstore_begin(f->s, &err), &err);
    assert_int_equal(hub_evstore_down_push(f->s, "s1", &e, NULL, &err), KT_EAGAIN);
    assert_non_null(strstr(err.msg, "s1"));
    /* the transaction is still usable, and another site is not affected */
    uint64_t seq = 0;
    kt_err_clear(&err);
    must(hub_evstore_down_push(f->s, "s2", &e, &seq, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
    assert_int_equal(seq, 1);
    must(hub_evstore_down_ack(f->s, "s1", 1, &err), &err);
    push(f, "s1", "c3", 3);
    assert_int_equal(hub_evstore_down_count(f->s, "s1"), 2);
}

static void test_downstream_rebase_after_wiped_store(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    push(f, "s1", "c1", 1);
    push(f, "s1", "c2", 2);
    /* the agent acked 40 from an earlier life of this store */
    must(hub_evstore_down_rebase(f->s, "s1", 40, &err), &err);
    collect c = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 40, 10, collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.seqs[0], 41);
    assert_int_equal(c.seqs[1], 42);
    assert_string_equal(c.ids[0], "c1");
    push(f, "s1", "c3", 43);
    /* an agent that is behind changes nothing */
    must(hub_evstore_down_rebase(f->s, "s1", 41, &err), &err);
    collect d = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &d, &err), &err);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.seqs[0], 41);
    /* an empty queue: the next seq follows the agent's */
    must(hub_evstore_down_rebase(f->s, "s9", 7, &err), &err);
    push(f, "s9", "z", 8);
}

static void test_downstream_rebase_after_wiped_agent(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    push(f, "s1", "c1", 1);
    push(f, "s1", "c2", 2);
    push(f, "s1", "c3", 3);
    must(hub_evstore_down_ack(f->s, "s1", 2, &err), &err);
    /* the agent lost its store: it says it acked nothing; c3 must come as seq 1 */
    must(hub_evstore_down_rebase(f->s, "s1", 0, &err), &err);
    collect c = { 0 };
    must(hub_evstore_down_read(f->s, "s1", 0, 10, collect_cb, &c, &err), &err);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.seqs[0], 1);
    assert_string_equal(c.ids[0], "c3");
    push(f, "s1", "c4", 2);
    /* an empty queue and an agent behind: the next entry follows the agent */
    must(hub_evstore_down_ack(f->s, "s1", 2, &err), &err);
    must(hub_evstore_down_rebase(f->s, "s1", 0, &err), &err);
    push(f, "s1", "c5", 1);
}

static void test_mark_and_savepoints(void **state)
{
    fx *f = *state;
    kt_err err = { 0 };
    uint64_t acked = 0;
    hub_evstore_event e[1] = { mk("p1", "a", 1, "{}", 6) };
    assert_int_equal(hub_evstore_mark(f->s, "s1", "inc", 5, &err), KT_EINVAL);
    assert_int_equal(hub_evstore_savepoint(f->s, &err), KT_EINVAL);
    must(hub_evstore_begin(f->s, &err), &err);
    must(hub_evstore_mark(f->s, "s1", "inc", 5, &err), &err);
    must(hub_evstore_mark(f->s, "s1", "inc", 3, &err), &err); /* never lowers */
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 5);
    must(hub_evstore_savepoint(f->s, &err), &err);
    assert_int_equal(hub_evstore_savepoint(f->s, &err), KT_EINVAL);
    must(hub_evstore_append(f->s, "s1", "inc", e, 1, NULL, &err), &err);
    must(hub_evstore_mark(f->s, "s1", "inc", 9, &err), &err);
    assert_int_equal(count_all(f), 1);
    must(hub_evstore_release(f->s, false, &err), &err);
    assert_int_equal(count_all(f), 0);
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 5);
    must(hub_evstore_savepoint(f->s, &err), &err);
    must(hub_evstore_append(f->s, "s1", "inc", e, 1, NULL, &err), &err);
    must(hub_evstore_release(f->s, true, &err), &err);
    must(hub_evstore_commit(f->s, &err), &err);
    assert_int_equal(count_all(f), 1);
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 6);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/*
 * Checkpoints run on the store's checkpointer thread, not in a commit: the
 * main file only grows by checkpoints (inline ones only past 64 MiB of WAL),
 * so once the WAL passes 4 MiB it grows while the test only polls (no
 * commit, no close), and every row is still there.
 */
static void test_checkpoint_off_the_commit_path(void **state)
{
    fx *f = *state;
    static char data[1024];
    memset(data, 'a', sizeof(data) - 16);
    memcpy(data, "{\"pad\":\"", 8);
    memcpy(data + sizeof(data) - 16, "\"}", 3);
    long before = file_size(f->path);
    char ids[100][16];
    char insts[100][16];
    hub_evstore_event evs[100];
    for (int c = 0; c < 20; c++) {
        for (int i = 0; i < 100; i++) {
            snprintf(ids[i], sizeof(ids[i]), "c%d-%d", c, i);
            snprintf(insts[i], sizeof(insts[i]), "p%d", i);
            evs[i] = mk(insts[i], ids[i], 1000 + (uint64_t)c, data, (uint64_t)(c * 100 + i + 1));
        }
        (void)append_commit(f, "s1", "inc", evs, 100);
    }
    uint64_t deadline = kt_clock_mono_ms() + 30000;
    while (file_size(f->path) < before + (1L << 20) && kt_clock_mono_ms() < deadline) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(file_size(f->path) >= before + (1L << 20));
    assert_int_equal(count_all(f), 2000);
    reopen(f, 0);
    assert_int_equal(count_all(f), 2000);
    uint64_t acked = 0;
    kt_err err = { 0 };
    must(hub_evstore_acked_seq(f->s, "s1", "inc", &acked, &err), &err);
    assert_int_equal(acked, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_then_latest_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects_missing_attributes_and_bad_seq, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_within_transaction_and_on_resend, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_incarnation_is_not_a_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_keeps_the_rest_of_the_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_merge_of_non_objects_keeps_new_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_append_merges_each_instance_in_event_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_version_1_file_is_migrated_to_the_hashed_instance_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_store_uses_8_kib_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_query_and_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age_in_bounded_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downstream_queue_order_ack_and_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_downstream_entries_keep_their_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_2_queues_are_migrated_to_the_depth_column,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_downstream_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downstream_rebase_after_wiped_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downstream_rebase_after_wiped_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_and_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_off_the_commit_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
