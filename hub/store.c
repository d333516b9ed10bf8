/*
 * hub/store.c — the hub's SQLite database (see store.h for the schema).
 *
 * DESIGN: one connection on the loop thread, WAL with synchronous=NORMAL
 * (a power loss may lose the last transactions but never corrupts; a killed
 * process loses nothing committed). Statements are prepared once at open.
 * The revision is cached in memory and written inside the same transaction
 * as the objects and the change log rows, so the three always agree.
 *
 * Thread: loop only. Ownership: the connection and statements.
 */
#include "hub/store.h"

#include <inttypes.h>
#include <string.h>

#include <sqlite3.h>

#include "kt/log.h"
#include "kt/mem.h"

#define HUB_STORE_SCHEMA_VERSION 1

enum { ST_LOAD, ST_PUT, ST_DEL, ST_LOG, ST_SET_META, ST_CHANGES, ST__COUNT };

static const char *const stmt_sql[ST__COUNT] = {
    [ST_LOAD] = "SELECT kind, name, body, rev, source FROM objects ORDER BY kind, name",
    [ST_PUT] = "INSERT INTO objects(kind, name, body, rev, source) VALUES(?1, ?2, ?3, ?4, ?5) "
               "ON CONFLICT(kind, name) DO UPDATE SET body = excluded.body, rev = excluded.rev, "
               "source = excluded.source",
    [ST_DEL] = "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
    [ST_LOG] = "INSERT OR REPLACE INTO changes(rev, kind, name, op) VALUES(?1, ?2, ?3, ?4)",
    [ST_SET_META] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_CHANGES] =
        "SELECT rev, kind, name, op FROM changes WHERE rev > ?1 ORDER BY rev, kind, name",
};

struct hub_store {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    uint64_t revision;
    uint64_t log_min_rev;
    int in_txn;
};

static kt_status sql_err(hub_store *s, int rc, kt_err *err, const char *what)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s", what, sqlite3_errmsg(s->db));
}

static kt_status exec_sql(hub_store *s, const char *sql, kt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kt_status st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s", sql,
                                      msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return KT_OK;
}

static kt_status read_meta(hub_store *s, const char *key, uint64_t *out, kt_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(s, rc, err, "prepare meta");
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *out = 0;
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        *out = v > 0 ? (uint64_t)v : 0;
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_err(s, rc, err, "read meta");
    }
    return KT_OK;
}

static kt_status create_schema(hub_store *s, kt_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(s, rc, err, "user_version");
    }
    int version = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    if (version > HUB_STORE_SCHEMA_VERSION) {
        return kt_err_set(err, KT_EIO, "database schema version %d is newer than this hub (%d)",
                          version, HUB_STORE_SCHEMA_VERSION);
    }
    if (version == HUB_STORE_SCHEMA_VERSION) {
        return KT_OK;
    }
    return exec_sql(
        s,
        "BEGIN;"
        "CREATE TABLE IF NOT EXISTS objects(kind INTEGER NOT NULL, name TEXT NOT NULL,"
        " body TEXT NOT NULL, rev INTEGER NOT NULL, source TEXT NOT NULL,"
        " PRIMARY KEY(kind, name)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS changes(rev INTEGER NOT NULL, kind INTEGER NOT NULL,"
        " name TEXT NOT NULL, op INTEGER NOT NULL,"
        " PRIMARY KEY(rev, kind, name)) WITHOUT ROWID;"
        "INSERT OR IGNORE INTO meta(key, value) VALUES('revision', 0);"
        "INSERT OR IGNORE INTO meta(key, value) VALUES('log_min_rev', 1);"
        "PRAGMA user_version = 1;"
        "COMMIT;",
        err);
}

kt_status hub_store_open(hub_store **out, const char *path, kt_err *err)
{
    *out = NULL;
    hub_store *s = kt_xcalloc(1, sizeof(*s));
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    kt_status st = KT_OK;
    if (rc != SQLITE_OK) {
        st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "open %s: %s", path,
                            s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    st = exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;",
                  err);
    if (st != KT_OK) {
        goto fail;
    }
    st = create_schema(s, err);
    if (st != KT_OK) {
        goto fail;
    }
    for (int i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            st = sql_err(s, rc, err, "prepare");
            goto fail;
        }
    }
    st = read_meta(s, "revision", &s->revision, err);
    if (st == KT_OK) {
        st = read_meta(s, "log_min_rev", &s->log_min_rev, err);
    }
    if (st != KT_OK) {
        goto fail;
    }
    *out = s;
    return KT_OK;
fail:
    hub_store_free(s);
    return st;
}

void hub_store_free(hub_store *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(s->st[i]);
    }
    if (s->db != NULL) {
        int rc = sqlite3_close(s->db);
        if (rc != SQLITE_OK) {
            KT_LOG(KT_LOG_ERR, "HUB-STORE-CLOSE", "err=\"%s\"", sqlite3_errstr(rc));
        }
    }
    kt_free(s);
}

sqlite3 *hub_store_db(hub_store *s)
{
    return s->db;
}

uint64_t hub_store_revision(const hub_store *s)
{
    return s->revision;
}

uint64_t hub_store_log_min_rev(const hub_store *s)
{
    return s->log_min_rev;
}

kt_status hub_store_load(hub_store *s, hub_store_object_cb cb, void *user, kt_err *err)
{
    sqlite3_stmt *st = s->st[ST_LOAD];
    kt_status ret = KT_OK;
    int rc;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            break;
        }
        hub_store_object o;
        o.kind = sqlite3_column_int(st, 0);
        o.name = (const char *)sqlite3_column_text(st, 1);
        o.body = (const char *)sqlite3_column_text(st, 2);
        o.len = (size_t)sqlite3_column_bytes(st, 2);
        sqlite3_int64 rev = sqlite3_column_int64(st, 3);
        o.rev = rev > 0 ? (uint64_t)rev : 0;
        o.source = (const char *)sqlite3_column_text(st, 4);
        if (o.name == NULL || o.body == NULL) {
            ret = kt_err_set(err, KT_EIO, "objects row with NULL name or body");
            break;
        }
        if (o.source == NULL) {
            o.source = "";
        }
        ret = cb(&o, user);
        if (ret != KT_OK) {
            break;
        }
    }
    if (ret == KT_OK && rc != SQLITE_DONE) {
        ret = sql_err(s, rc, err, "load objects");
    }
    sqlite3_reset(st);
    return ret;
}

kt_status hub_store_begin(hub_store *s, kt_err *err)
{
    KT_ASSERT(!s->in_txn);
    kt_status st = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (st == KT_OK) {
        s->in_txn = 1;
    }
    return st;
}

static kt_status step_done(hub_store *s, sqlite3_stmt *st, kt_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    kt_status ret = KT_OK;
    if (rc != SQLITE_DONE) {
        ret = sql_err(s, rc, err, what);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

kt_status hub_store_put(hub_store *s,
                        int kind,
                        const char *name,
                        const char *body,
                        size_t len,
                        uint64_t rev,
                        const char *source,
                        kt_err *err)
{
    KT_ASSERT(s->in_txn);
    sqlite3_stmt *st = s->st[ST_PUT];
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text64(st, 3, body, len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)rev);
    sqlite3_bind_text(st, 5, source != NULL ? source : "", -1, SQLITE_STATIC);
    return step_done(s, st, err, "put object");
}

kt_status hub_store_del(hub_store *s, int kind, const char *name, kt_err *err)
{
    KT_ASSERT(s->in_txn);
    sqlite3_stmt *st = s->st[ST_DEL];
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return step_done(s, st, err, "delete object");
}

kt_status
hub_store_log(hub_store *s, uint64_t rev, int kind, const char *name, int deleted, kt_err *err)
{
    KT_ASSERT(s->in_txn);
    sqlite3_stmt *st = s->st[ST_LOG];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)rev);
    sqlite3_bind_int(st, 2, kind);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, deleted ? 1 : 0);
    return step_done(s, st, err, "log change");
}

static kt_status set_meta(hub_store *s, const char *key, uint64_t v, kt_err *err)
{
    sqlite3_stmt *st = s->st[ST_SET_META];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
    return step_done(s, st, err, "set meta");
}

kt_status hub_store_set_revision(hub_store *s, uint64_t rev, kt_err *err)
{
    KT_ASSERT(s->in_txn);
    return set_meta(s, "revision", rev, err);
}

kt_status hub_store_commit(hub_store *s, kt_err *err)
{
    KT_ASSERT(s->in_txn);
    kt_status st = exec_sql(s, "COMMIT", err);
    if (st != KT_OK) {
        hub_store_rollback(s);
        return st;
    }
    s->in_txn = 0;
    /* Re-read the committed revision so memory follows the database. */
    uint64_t rev = 0;
    if (read_meta(s, "revision", &rev, NULL) == KT_OK) {
        s->revision = rev;
    }
    return KT_OK;
}

void hub_store_rollback(hub_store *s)
{
    if (!s->in_txn) {
        return;
    }
    s->in_txn = 0;
    if (sqlite3_get_autocommit(s->db)) {
        return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
    }
    kt_err err = { 0 };
    if (exec_sql(s, "ROLLBACK", &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "HUB-STORE-ROLLBACK", "err=\"%s\"", err.msg);
    }
}

kt_status hub_store_changes_since(
    hub_store *s, uint64_t since, hub_store_change_cb cb, void *user, kt_err *err)
{
    sqlite3_stmt *st = s->st[ST_CHANGES];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
    kt_status ret = KT_OK;
    int rc;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            break;
        }
        sqlite3_int64 rev = sqlite3_column_int64(st, 0);
        int kind = sqlite3_column_int(st, 1);
        const char *name = (const char *)sqlite3_column_text(st, 2);
        int op = sqlite3_column_int(st, 3);
        if (name == NULL) {
            continue;
        }
        if (cb(rev > 0 ? (uint64_t)rev : 0, kind, name, op != 0, user) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) {
        ret = sql_err(s, rc, err, "read changes");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}
