/*
 * agent/latest.c — the latest state per twin instance in SQLite, with
 * KTWIN's upsert-merge (see latest.h for the design and the contracts).
 *
 * Invariant: at most one transaction open on the connection, opened by the
 * first write after a flush and committed by the next flush (the uv_check
 * handle runs flush once per loop iteration while it is active).
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "latest"
#include "latest.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "svc/merge.h"

/* Cap on one merged document (KTWIN's events are small JSON objects). */
#define LATEST_MAX_DOC ((size_t)16 * 1024 * 1024)

/* Page cache of the connection, in the PRAGMA cache_size form (negative: KiB). SQLite's
 * default (2000 KiB) filled up under load and stayed allocated: the table and its two
 * indexes of a 4,000-device site are ~1.5 MiB, all read back from the OS page cache on a
 * miss (agent-rss). */
#define LATEST_PAGE_CACHE "-512"

struct agent_latest {
    sqlite3 *db;
    char *path;
    int in_txn;
    uv_check_t *check; /* NULL without a loop; closed by free */
    sqlite3_stmt *st_get;
    sqlite3_stmt *st_put;
    sqlite3_stmt *st_count;
    /*
     * The last document read or written, by (iface, instance): a service
     * reads an instance's state and then stores it (get, then put of the
     * same key), so put takes the stored document from here instead of a
     * second SELECT. Only this module writes the table; a failed write or
     * commit forgets it.
     */
    int last_state;    /* LAST_NONE, LAST_ABSENT (no row) or LAST_ROW */
    kt_buf last_key;   /* iface '\0' instance */
    kt_buf last_data;  /* the row's data when LAST_ROW */
};

enum { LAST_NONE, LAST_ABSENT, LAST_ROW };

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS latest(iface TEXT NOT NULL, instance TEXT NOT NULL,"
    " id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    " data BLOB NOT NULL, stored_ms INTEGER NOT NULL, UNIQUE(iface, instance));"
    "CREATE INDEX IF NOT EXISTS latest_time ON latest(time_ms);";

static kt_status sql_fail(agent_latest *l, int rc, const char *what, kt_err *err)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s: %s", l->path, what,
                          l->db != NULL ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
}

static kt_status exec_sql(agent_latest *l, const char *sql, kt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kt_status st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s: %s", l->path, sql,
                                      msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return KT_OK;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? (const char *)t : "";
}

/* ---- the last document -------------------------------------------------------- */

static void last_forget(agent_latest *l)
{
    l->last_state = LAST_NONE;
}

static int last_is(const agent_latest *l, const char *iface, const char *instance)
{
    if (l->last_state == LAST_NONE) {
        return 0;
    }
    size_t ni = strlen(iface);
    size_t nn = strlen(instance);
    return l->last_key.len == ni + 1 + nn && memcmp(l->last_key.data, iface, ni + 1) == 0 &&
           memcmp(l->last_key.data + ni + 1, instance, nn) == 0;
}

static void last_remember(
    agent_latest *l, const char *iface, const char *instance, const void *data, size_t len, int row)
{
    kt_buf_reset(&l->last_key);
    kt_buf_reset(&l->last_data);
    if (kt_buf_append(&l->last_key, iface, strlen(iface) + 1) != KT_OK ||
        kt_buf_puts(&l->last_key, instance) != KT_OK ||
        (row && kt_buf_append(&l->last_data, data, len) != KT_OK)) {
        l->last_state = LAST_NONE; /* too big or no memory: just do not remember */
        return;
    }
    l->last_state = row ? LAST_ROW : LAST_ABSENT;
}

/* ---- the per-iteration commit ----------------------------------------------- */

static void on_check(uv_check_t *h)
{
    agent_latest *l = h->data;
    kt_err err = { 0 };
    if (agent_latest_flush(l, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "LATEST-COMMIT-FAIL", "path=%s err=\"%s\"", l->path, err.msg);
    }
}

static void on_check_closed(uv_handle_t *h)
{
    kt_free(h);
}

static kt_status begin_write(agent_latest *l, kt_err *err)
{
    if (l->in_txn) {
        return KT_OK;
    }
    kt_status st = exec_sql(l, "BEGIN IMMEDIATE", err);
    if (st != KT_OK) {
        return st;
    }
    l->in_txn = 1;
    if (l->check != NULL) {
        uv_check_start(l->check, on_check);
    }
    return KT_OK;
}

kt_status agent_latest_flush(agent_latest *l, kt_err *err)
{
    if (!l->in_txn) {
        return KT_OK;
    }
    if (l->check != NULL) {
        uv_check_stop(l->check);
    }
    l->in_txn = 0;
    kt_status st = exec_sql(l, "COMMIT", err);
    if (st != KT_OK) {
        last_forget(l);
        /* The transaction is gone either way: SQLite rolls back a failed COMMIT's work. */
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return st;
}

/* ---- open / free -------------------------------------------------------------- */

kt_status agent_latest_open(agent_latest **out, const char *path, uv_loop_t *loop, kt_err *err)
{
    *out = NULL;
    agent_latest *l = kt_xcalloc(1, sizeof *l);
    l->path = kt_xstrdup(path);
    kt_buf_init(&l->last_key, 4096);
    kt_buf_init(&l->last_data, 64u * 1024u);
    int rc = sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    kt_status st = KT_OK;
    if (rc != SQLITE_OK) {
        st = sql_fail(l, rc, "open", err);
        goto fail;
    }
    sqlite3_busy_timeout(l->db, 1000);
    st = exec_sql(l, "PRAGMA journal_mode=WAL", err);
    if (st == KT_OK) {
        st = exec_sql(l, "PRAGMA synchronous=NORMAL", err);
    }
    if (st == KT_OK) {
        st = exec_sql(l, "PRAGMA cache_size=" LATEST_PAGE_CACHE, err);
    }
    if (st == KT_OK) {
        st = exec_sql(l, schema_sql, err);
    }
    if (st != KT_OK) {
        goto fail;
    }
    rc = sqlite3_prepare_v2(l->db,
                            "SELECT id, type, source, time_ms, data, stored_ms, rowid FROM latest"
                            " WHERE iface = ?1 AND instance = ?2",
                            -1, &l->st_get, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(
            l->db,
            "INSERT INTO latest(iface, instance, id, type, source, time_ms, data, stored_ms)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(iface, instance) DO UPDATE SET"
            " id = excluded.id, type = excluded.type, source = excluded.source,"
            " time_ms = excluded.time_ms, data = excluded.data, stored_ms = excluded.stored_ms",
            -1, &l->st_put, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(l->db, "SELECT count(*) FROM latest", -1, &l->st_count, NULL);
    }
    if (rc != SQLITE_OK) {
        st = sql_fail(l, rc, "prepare", err);
        goto fail;
    }
    if (loop != NULL) {
        l->check = kt_xcalloc(1, sizeof *l->check);
        uv_check_init(loop, l->check);
        l->check->data = l;
        uv_unref((uv_handle_t *)l->check);
    }
    *out = l;
    return KT_OK;
fail:
    agent_latest_free(l);
    return st;
}

void agent_latest_free(agent_latest *l)
{
    if (l == NULL) {
        return;
    }
    if (l->db != NULL) {
        kt_err err = { 0 };
        if (agent_latest_flush(l, &err) != KT_OK) {
            KT_LOG(KT_LOG_ERR, "LATEST-COMMIT-FAIL", "path=%s err=\"%s\"", l->path, err.msg);
        }
    }
    if (l->check != NULL) {
        l->check->data = NULL;
        uv_close((uv_handle_t *)l->check, on_check_closed);
    }
    sqlite3_finalize(l->st_get);
    sqlite3_finalize(l->st_put);
    sqlite3_finalize(l->st_count);
    sqlite3_close(l->db);
    kt_buf_fini(&l->last_key);
    kt_buf_fini(&l->last_data);
    kt_free(l->path);
    kt_free(l);
}

/* ---- reads ---------------------------------------------------------------------- */

static void row_record(sqlite3_stmt *st, int base, svc_record *r)
{
    r->id = col_text(st, base);
    r->type = col_text(st, base + 1);
    r->source = col_text(st, base + 2);
    r->time_ms = (uint64_t)sqlite3_column_int64(st, base + 3);
    r->data = sqlite3_column_blob(st, base + 4);
    r->data_len = (size_t)sqlite3_column_bytes(st, base + 4);
    if (r->data == NULL) {
        r->data = (const uint8_t *)"";
    }
    r->stored_ms = (uint64_t)sqlite3_column_int64(st, base + 5);
    r->rowid = (uint64_t)sqlite3_column_int64(st, base + 6);
}

kt_status agent_latest_get(agent_latest *l,
                           const char *iface,
                           const char *instance,
                           svc_record_cb cb,
                           void *user,
                           kt_err *err)
{
    sqlite3_stmt *st = l->st_get;
    sqlite3_bind_text(st, 1, iface, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    kt_status res = KT_OK;
    if (rc == SQLITE_ROW) {
        svc_record r = { .iface = iface, .instance = instance };
        row_record(st, 0, &r);
        last_remember(l, iface, instance, r.data, r.data_len, 1);
        if (cb != NULL) {
            cb(&r, user);
        }
    } else if (rc == SQLITE_DONE) {
        last_remember(l, iface, instance, NULL, 0, 0);
        res = kt_err_set(err, KT_ENOTFOUND, "no latest state of %s/%s", iface, instance);
    } else {
        res = sql_fail(l, rc, "latest get", err);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return res;
}

uint64_t agent_latest_count(agent_latest *l)
{
    uint64_t n = 0;
    if (sqlite3_step(l->st_count) == SQLITE_ROW) {
        n = (uint64_t)sqlite3_column_int64(l->st_count, 0);
    }
    sqlite3_reset(l->st_count);
    return n;
}

kt_status agent_latest_list(
    agent_latest *l, const svc_query *q, svc_record_cb cb, void *user, svc_page *page, kt_err *err)
{
    memset(page, 0, sizeof *page);
    size_t limit = q->limit;
    if (limit == 0) {
        limit = SVC_QUERY_DEFAULT_LIMIT;
    }
    if (limit > SVC_QUERY_MAX_LIMIT) {
        limit = SVC_QUERY_MAX_LIMIT;
    }
    int cursor = q->after_time_ms != 0 || q->after_rowid != 0;
    char sql[640];
    /* ?1 iface ?2 instance ?3 from ?4 to ?5 cursor time ?6 cursor rowid ?7 limit + 1 */
    snprintf(
        sql, sizeof sql,
        "SELECT iface, instance, id, type, source, time_ms, data, stored_ms, rowid"
        " FROM latest WHERE (?1 IS NULL OR iface = ?1) AND (?2 IS NULL OR instance = ?2)"
        " AND (?3 = 0 OR time_ms >= ?3) AND (?4 = 0 OR time_ms < ?4)%s"
        " ORDER BY time_ms %s, rowid %s LIMIT ?7",
        cursor ? (q->desc ? " AND (time_ms, rowid) < (?5, ?6)" : " AND (time_ms, rowid) > (?5, ?6)")
               : "",
        q->desc ? "DESC" : "ASC", q->desc ? "DESC" : "ASC");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(l, rc, "latest list", err);
    }
    if (q->iface != NULL) {
        sqlite3_bind_text(st, 1, q->iface, -1, SQLITE_STATIC);
    }
    if (q->iface != NULL && q->instance != NULL) {
        sqlite3_bind_text(st, 2, q->instance, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, (sqlite3_int64)q->from_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)q->to_ms);
    if (cursor) {
        sqlite3_bind_int64(st, 5, (sqlite3_int64)q->after_time_ms);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)q->after_rowid);
    }
    sqlite3_bind_int64(st, 7, (sqlite3_int64)limit + 1);
    kt_status res = KT_OK;
    int stop = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (page->n == limit) {
            page->more = true;
            break;
        }
        svc_record r = { .iface = col_text(st, 0), .instance = col_text(st, 1) };
        row_record(st, 2, &r);
        page->n++;
        page->next_time_ms = r.time_ms;
        page->next_rowid = r.rowid;
        if (!stop && cb != NULL && cb(&r, user) != 0) {
            stop = 1;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        res = sql_fail(l, rc, "latest list", err);
    }
    if (!page->more) {
        page->next_time_ms = 0;
        page->next_rowid = 0;
    }
    sqlite3_finalize(st);
    return res;
}

/* ---- upsert-merge ---------------------------------------------------------------- */

kt_status agent_latest_put(agent_latest *l, const svc_record *rec, kt_err *err)
{
    if (rec->iface == NULL || rec->iface[0] == '\0' || rec->instance == NULL ||
        rec->instance[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "latest: interface and instance are required");
    }
    const uint8_t *next = rec->data != NULL ? rec->data : (const uint8_t *)"{}";
    size_t next_len = rec->data != NULL ? rec->data_len : 2;
    kt_buf merged;
    kt_buf_init(&merged, LATEST_MAX_DOC);
    /* The stored document, if any, merged under the new data. */
    kt_status res = KT_OK;
    int rc;
    sqlite3_stmt *st = l->st_get;
    const uint8_t *old = NULL;
    size_t old_len = 0;
    int found;
    int cached = last_is(l, rec->iface, rec->instance);
    if (cached) {
        found = l->last_state == LAST_ROW;
        old = (const uint8_t *)l->last_data.data;
        old_len = l->last_data.len;
    } else {
        sqlite3_bind_text(st, 1, rec->iface, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rec->instance, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        found = rc == SQLITE_ROW;
        if (found) {
            old = sqlite3_column_blob(st, 4);
            old_len = (size_t)sqlite3_column_bytes(st, 4);
        } else if (rc != SQLITE_DONE) {
            res = sql_fail(l, rc, "latest get", err);
        }
    }
    if (res == KT_OK && found) {
        kt_err merr = { 0 };
        res = svc_merge_json(&merged, old, old_len, next, next_len, &merr);
        if (res == KT_EINVAL) {
            /* Either side bad: the new data alone decides (a bad stored doc is replaced). */
            kt_buf_reset(&merged);
            res = svc_merge_json(&merged, NULL, 0, next, next_len, err);
        } else if (res != KT_OK) {
            kt_err_set(err, res, "%s", merr.msg);
        }
    } else if (res == KT_OK) {
        res = svc_merge_json(&merged, NULL, 0, next, next_len, err);
    }
    if (!cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (res == KT_OK) {
        res = begin_write(l, err);
    }
    if (res == KT_OK) {
        st = l->st_put;
        sqlite3_bind_text(st, 1, rec->iface, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rec->instance, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rec->id != NULL ? rec->id : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, rec->type != NULL ? rec->type : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, rec->source != NULL ? rec->source : rec->instance, -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)rec->time_ms);
        sqlite3_bind_blob(st, 7, merged.data != NULL ? merged.data : "", (int)merged.len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)kt_clock_wall_ms());
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            res = sql_fail(l, rc, "latest put", err);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (res == KT_OK) {
        last_remember(l, rec->iface, rec->instance, merged.data, merged.len, 1);
    } else {
        last_forget(l);
    }
    kt_buf_fini(&merged);
    return res;
}

size_t agent_latest_cache_bytes(const agent_latest *l)
{
    int cur = 0, hi = 0;
    (void)sqlite3_db_status(l->db, SQLITE_DBSTATUS_CACHE_USED, &cur, &hi, 0);
    return cur > 0 ? (size_t)cur : 0;
}
