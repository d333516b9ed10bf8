/*
 * agent/cache.c — SQLite cache of the site's subgraph and placement.
 *
 * Invariants and contracts: see cache.h. This file owns the one connection
 * and its prepared statements.
 *
 * DESIGN: a snapshot is spread over several SnapshotChunk messages, so its
 * transaction stays open across loop iterations (BEGIN IMMEDIATE at begin,
 * COMMIT at the chunk marked last). Readers of this connection would see the
 * uncommitted rows, so agent_cache_foreach_object refuses while a snapshot is
 * open and the view keeps serving the last committed model. Object counts
 * are recomputed after each commit (an indexed GROUP BY over at most tens of
 * thousands of rows) rather than tracked per row, which keeps deltas simple.
 *
 * Thread: loop thread only.
 */
#define KT_LOG_MOD "cache"
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"

#define CACHE_SCHEMA_VERSION "1"

struct agent_cache {
    sqlite3 *db;
    char *path;
    char *moved_aside; /* where a corrupt file went, or NULL */
    uint64_t graph_rev;
    uint64_t placement_rev;
    uint64_t snap_rev; /* revision of the open snapshot */
    int in_snapshot;
    uint64_t generation;
    uint64_t placement_generation;
    uint64_t n_interfaces, n_instances, n_policies, n_other;
    char incarnation[33];
    sqlite3_stmt *st_put;
    sqlite3_stmt *st_del;
    sqlite3_stmt *st_meta;
    sqlite3_stmt *st_place;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS objects(kind TEXT NOT NULL, name TEXT NOT NULL,"
    " body TEXT NOT NULL, rev INTEGER NOT NULL, UNIQUE(kind, name));"
    "CREATE TABLE IF NOT EXISTS placement(interface TEXT PRIMARY KEY, \"where\" TEXT NOT NULL,"
    " site TEXT, rule TEXT, reason TEXT) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rendered(name TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
    " body BLOB NOT NULL);";

/* Bytes of the file the quick_check connection may map instead of pread(): above any site's
 * cache (~9 MiB for 20 neighborhoods). Only that short-lived connection maps it: a mapping
 * kept by the main one counts the touched file pages in the agent's RSS for good. */
#define CACHE_MMAP_BYTES "268435456"

/* Page cache of the main connection, in the PRAGMA cache_size form (negative: KiB). */
#define CACHE_PAGE_CACHE "-512"

/* ---- helpers --------------------------------------------------------------- */

static kt_status sql_fail(agent_cache *c, int rc, const char *what, kt_err *err)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s: %s", c->path, what,
                          c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static kt_status exec_sql(agent_cache *c, const char *sql, kt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kt_status st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s: %s", c->path, sql,
                                      msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return KT_OK;
}

static kt_status prepare(agent_cache *c, sqlite3_stmt **out, const char *sql, kt_err *err)
{
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "prepare", err);
    }
    return KT_OK;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL) {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, i);
    }
}

/* Run a bound statement that returns no rows, then reset it. */
static kt_status step_done(agent_cache *c, sqlite3_stmt *st, const char *what, kt_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(c, rc, what, err);
    }
    return KT_OK;
}

static kt_status meta_set_u64(agent_cache *c, const char *key, uint64_t v, kt_err *err)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sqlite3_bind_text(c->st_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st_meta, 2, num, -1, SQLITE_TRANSIENT);
    return step_done(c, c->st_meta, "write meta", err);
}

static kt_status meta_set_str(agent_cache *c, const char *key, const char *v, kt_err *err)
{
    sqlite3_bind_text(c->st_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st_meta, 2, v, -1, SQLITE_STATIC);
    return step_done(c, c->st_meta, "write meta", err);
}

/* Read meta[key] into out (cap bytes); "" when absent. */
static kt_status meta_get(agent_cache *c, const char *key, char *out, size_t cap, kt_err *err)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    int rc = sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "read meta", err);
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        kt_strlcpy(out, v != NULL ? (const char *)v : "", cap);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(c, rc, "read meta", err);
    }
    return KT_OK;
}

static uint64_t parse_u64(const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return 0;
    }
    return (uint64_t)v;
}

static kt_status recount(agent_cache *c, kt_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, "SELECT kind, count(*) FROM objects GROUP BY kind", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "count objects", err);
    }
    c->n_interfaces = c->n_instances = c->n_policies = c->n_other = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);
        if (kind == NULL) {
            c->n_other += n;
        } else if (strcmp(kind, AGENT_KIND_INTERFACE) == 0) {
            c->n_interfaces = n;
        } else if (strcmp(kind, AGENT_KIND_INSTANCE) == 0) {
            c->n_instances = n;
        } else if (strcmp(kind, AGENT_KIND_POLICY) == 0) {
            c->n_policies = n;
        } else {
            c->n_other += n;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(c, rc, "count objects", err);
    }
    return KT_OK;
}

/* 16 random bytes as hex, from /dev/urandom (the id only has to be unique). */
static kt_status new_incarnation(char out[33], kt_err *err)
{
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "open /dev/urandom");
    }
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = read(fd, raw + got, sizeof raw - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int e = errno;
            close(fd);
            return kt_err_set_errno(err, KT_EIO, e, "read /dev/urandom");
        }
        got += (size_t)n;
    }
    close(fd);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
    return KT_OK;
}

/* ---- corruption check ------------------------------------------------------ */

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/*
 * Decide whether the existing file at path is usable. Sets *why to a static
 * reason when it is corrupt (or not an SQLite file, or of another schema
 * version). Returns KT_OK, or KT_EDEP for failures that say nothing about
 * the content (cannot open, I/O, locked).
 */
static kt_status check_existing(agent_cache *c, const char **why, kt_err *err)
{
    *why = NULL;
    /* Read-only: closing this connection must not checkpoint a WAL into a
     * possibly corrupt file, nor delete the WAL we may have to move aside. */
    int rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        kt_status st = sql_fail(c, rc, "open", err);
        sqlite3_close(c->db);
        c->db = NULL;
        return st;
    }
    /* Same check, pages mapped instead of one pread() each (a third of the time). */
    sqlite3_exec(c->db, "PRAGMA mmap_size=" CACHE_MMAP_BYTES, NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *v = sqlite3_column_text(st, 0);
            if (v == NULL || strcmp((const char *)v, "ok") != 0) {
                *why = "quick_check found errors";
            }
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
        *why = rc == SQLITE_NOTADB ? "not an SQLite database" : "database disk image is malformed";
        rc = SQLITE_OK;
    }
    kt_status ret = KT_OK;
    if (rc != SQLITE_OK) {
        ret = sql_fail(c, rc, "quick_check", err);
    } else if (*why == NULL) {
        char ver[32];
        kt_err merr = { 0 };
        /* A file without our meta table is a fresh one: the schema is created next. */
        int has_meta = 0;
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(c->db,
                               "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'", -1,
                               &q, NULL) == SQLITE_OK) {
            has_meta = sqlite3_step(q) == SQLITE_ROW;
        }
        sqlite3_finalize(q);
        if (has_meta) {
            if (meta_get(c, "schema_version", ver, sizeof ver, &merr) != KT_OK) {
                *why = "meta table unreadable";
            } else if (ver[0] != '\0' && strcmp(ver, CACHE_SCHEMA_VERSION) != 0) {
                *why = "unknown schema version";
            }
        }
    }
    sqlite3_close(c->db);
    c->db = NULL;
    return ret;
}

static kt_status move_aside(agent_cache *c, const char *why, kt_err *err)
{
    long long ts = (long long)(kt_clock_wall_ms() / 1000u);
    size_t cap = strlen(c->path) + 64;
    char *dst = kt_xmalloc(cap);
    snprintf(dst, cap, "%s.corrupt-%lld", c->path, ts);
    for (int i = 1; file_exists(dst) && i < 1000; i++) {
        snprintf(dst, cap, "%s.corrupt-%lld.%d", c->path, ts, i);
    }
    if (rename(c->path, dst) != 0) {
        int e = errno;
        kt_free(dst);
        return kt_err_set_errno(err, KT_EIO, e, "move corrupt cache %s aside", c->path);
    }
    static const char *const sides[] = { "-wal", "-shm" };
    for (size_t i = 0; i < 2; i++) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s%s", c->path, sides[i]);
        snprintf(to, sizeof to, "%s%s", dst, sides[i]);
        if (file_exists(from) && rename(from, to) != 0) {
            int e = errno;
            kt_free(dst);
            return kt_err_set_errno(err, KT_EIO, e, "move %s aside", from);
        }
    }
    char qwhy[128];
    KT_LOG(KT_LOG_ERR, "CACHE-CORRUPT", "path=%s moved_to=%s reason=%s action=start-empty", c->path,
           dst, kt_log_quote(qwhy, sizeof qwhy, why));
    c->moved_aside = dst;
    return KT_OK;
}

/* ---- open / close ---------------------------------------------------------- */

static kt_status open_db(agent_cache *c, kt_err *err)
{
    int rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "open", err);
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, 1000);
    kt_status st = exec_sql(c, "PRAGMA journal_mode=WAL", err);
    if (st == KT_OK) {
        st = exec_sql(c, "PRAGMA synchronous=NORMAL", err);
    }
    if (st == KT_OK) {
        /* 512 KiB of page cache instead of 2 MiB: the objects are read once per model build
         * and a snapshot spills to the WAL as it goes (agent-rss). */
        st = exec_sql(c, "PRAGMA cache_size=" CACHE_PAGE_CACHE, err);
    }

    if (st == KT_OK) {
        st = exec_sql(c, "BEGIN IMMEDIATE", err);
    }
    if (st == KT_OK) {
        st = exec_sql(c, schema_sql, err);
    }
    if (st == KT_OK) {
        st = prepare(c, &c->st_meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", err);
    }
    char buf[64];
    if (st == KT_OK) {
        st = meta_get(c, "incarnation", buf, sizeof buf, err);
    }
    if (st == KT_OK && buf[0] == '\0') {
        /* A new cache: a new incarnation, revisions 0. */
        st = new_incarnation(c->incarnation, err);
        if (st == KT_OK) {
            st = meta_set_str(c, "incarnation", c->incarnation, err);
        }
        if (st == KT_OK) {
            st = meta_set_str(c, "schema_version", CACHE_SCHEMA_VERSION, err);
        }
        if (st == KT_OK) {
            st = meta_set_u64(c, "created_ms", kt_clock_wall_ms(), err);
        }
        if (st == KT_OK) {
            st = meta_set_u64(c, "graph_revision", 0, err);
        }
        if (st == KT_OK) {
            st = meta_set_u64(c, "placement_revision", 0, err);
        }
    } else if (st == KT_OK) {
        kt_strlcpy(c->incarnation, buf, sizeof c->incarnation);
    }
    if (st == KT_OK) {
        st = meta_get(c, "graph_revision", buf, sizeof buf, err);
        c->graph_rev = parse_u64(buf);
    }
    if (st == KT_OK) {
        st = meta_get(c, "placement_revision", buf, sizeof buf, err);
        c->placement_rev = parse_u64(buf);
    }
    if (st == KT_OK) {
        st = exec_sql(c, "COMMIT", err);
    } else {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (st == KT_OK) {
        st = prepare(c, &c->st_put,
                     "INSERT OR REPLACE INTO objects(kind, name, body, rev) VALUES(?, ?, ?, ?)",
                     err);
    }
    if (st == KT_OK) {
        st = prepare(c, &c->st_del, "DELETE FROM objects WHERE kind = ? AND name = ?", err);
    }
    if (st == KT_OK) {
        st = prepare(c, &c->st_place,
                     "INSERT OR REPLACE INTO placement(interface, \"where\", site, rule, reason)"
                     " VALUES(?, ?, ?, ?, ?)",
                     err);
    }
    if (st == KT_OK) {
        st = recount(c, err);
    }
    return st;
}

kt_status agent_cache_open(agent_cache **out, const char *path, kt_err *err)
{
    *out = NULL;
    agent_cache *c = kt_xcalloc(1, sizeof *c);
    c->path = kt_xstrdup(path);
    c->generation = 1;
    c->placement_generation = 1;
    kt_status st = KT_OK;
    if (file_exists(path)) {
        const char *why = NULL;
        st = check_existing(c, &why, err);
        if (st == KT_OK && why != NULL) {
            st = move_aside(c, why, err);
        }
    }
    if (st == KT_OK) {
        st = open_db(c, err);
    }
    if (st != KT_OK) {
        agent_cache_free(c);
        return st;
    }
    KT_LOG(KT_LOG_INFO, "CACHE-OPEN",
           "path=%s graph_revision=%llu placement_revision=%llu objects=%llu incarnation=%s",
           c->path, (unsigned long long)c->graph_rev, (unsigned long long)c->placement_rev,
           (unsigned long long)(c->n_interfaces + c->n_instances + c->n_policies + c->n_other),
           c->incarnation);
    *out = c;
    return KT_OK;
}

void agent_cache_free(agent_cache *c)
{
    if (c == NULL) {
        return;
    }
    agent_cache_snapshot_abort(c);
    sqlite3_finalize(c->st_put);
    sqlite3_finalize(c->st_del);
    sqlite3_finalize(c->st_meta);
    sqlite3_finalize(c->st_place);
    if (c->db != NULL) {
        sqlite3_close(c->db);
    }
    kt_free(c->moved_aside);
    kt_free(c->path);
    kt_free(c);
}

/* ---- getters --------------------------------------------------------------- */

const char *agent_cache_moved_aside(const agent_cache *c)
{
    return c->moved_aside;
}

uint64_t agent_cache_graph_revision(const agent_cache *c)
{
    return c->graph_rev;
}

uint64_t agent_cache_placement_revision(const agent_cache *c)
{
    return c->placement_rev;
}

const char *agent_cache_incarnation(const agent_cache *c)
{
    return c->incarnation;
}

uint64_t agent_cache_count(const agent_cache *c, const char *kind)
{
    if (kind == NULL) {
        return c->n_interfaces + c->n_instances + c->n_policies + c->n_other;
    }
    if (strcmp(kind, AGENT_KIND_INTERFACE) == 0) {
        return c->n_interfaces;
    }
    if (strcmp(kind, AGENT_KIND_INSTANCE) == 0) {
        return c->n_instances;
    }
    if (strcmp(kind, AGENT_KIND_POLICY) == 0) {
        return c->n_policies;
    }
    return c->n_other;
}

int agent_cache_in_snapshot(const agent_cache *c)
{
    return c->in_snapshot;
}

uint64_t agent_cache_generation(const agent_cache *c)
{
    return c->generation;
}

uint64_t agent_cache_placement_generation(const agent_cache *c)
{
    return c->placement_generation;
}

/* ---- writes ---------------------------------------------------------------- */

static kt_status put_object(agent_cache *c, const agent_cache_object *o, kt_err *err)
{
    if (o->kind == NULL || o->name == NULL || o->body == NULL) {
        return kt_err_set(err, KT_EINVAL, "object without kind, name or body");
    }
    if (o->body_len > (size_t)0x7fffffff) {
        return kt_err_set(err, KT_ETOOBIG, "%s %s: body of %zu bytes", o->kind, o->name,
                          o->body_len);
    }
    sqlite3_bind_text(c->st_put, 1, o->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st_put, 2, o->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st_put, 3, o->body, (int)o->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(c->st_put, 4, (sqlite3_int64)o->revision);
    return step_done(c, c->st_put, "write object", err);
}

static kt_status del_object(agent_cache *c, const agent_cache_object *o, kt_err *err)
{
    if (o->kind == NULL || o->name == NULL) {
        return kt_err_set(err, KT_EINVAL, "deleted object without kind or name");
    }
    sqlite3_bind_text(c->st_del, 1, o->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st_del, 2, o->name, -1, SQLITE_STATIC);
    return step_done(c, c->st_del, "delete object", err);
}

kt_status agent_cache_snapshot_begin(agent_cache *c, uint64_t revision, kt_err *err)
{
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EINVAL, "a snapshot is already open");
    }
    kt_status st = exec_sql(c, "BEGIN IMMEDIATE", err);
    if (st != KT_OK) {
        return st;
    }
    c->in_snapshot = 1;
    c->snap_rev = revision;
    st = exec_sql(c, "DELETE FROM objects", err);
    if (st == KT_OK) {
        st = exec_sql(c, "DELETE FROM rendered", err); /* rendered from the old objects */
    }
    return st;
}

kt_status agent_cache_snapshot_put(agent_cache *c, const agent_cache_object *obj, kt_err *err)
{
    if (!c->in_snapshot) {
        return kt_err_set(err, KT_EINVAL, "no snapshot is open");
    }
    return put_object(c, obj, err);
}

kt_status agent_cache_snapshot_commit(agent_cache *c, kt_err *err)
{
    if (!c->in_snapshot) {
        return kt_err_set(err, KT_EINVAL, "no snapshot is open");
    }
    kt_status st = meta_set_u64(c, "graph_revision", c->snap_rev, err);
    if (st == KT_OK) {
        st = exec_sql(c, "COMMIT", err);
    }
    if (st != KT_OK) {
        return st;
    }
    c->in_snapshot = 0;
    c->graph_rev = c->snap_rev;
    c->generation++;
    return recount(c, err);
}

void agent_cache_snapshot_abort(agent_cache *c)
{
    if (!c->in_snapshot) {
        return;
    }
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    c->in_snapshot = 0;
    KT_LOG(KT_LOG_WARN, "CACHE-SNAPSHOT-ABORT", "path=%s revision=%llu kept=%llu", c->path,
           (unsigned long long)c->snap_rev, (unsigned long long)c->graph_rev);
}

kt_status agent_cache_delta_apply(agent_cache *c,
                                  uint64_t from_revision,
                                  uint64_t to_revision,
                                  const agent_cache_object *objs,
                                  size_t n_objs,
                                  kt_err *err)
{
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EINVAL, "delta during a snapshot");
    }
    if (to_revision < from_revision) {
        return kt_err_set(err, KT_EINVAL, "delta goes back from revision %llu to %llu",
                          (unsigned long long)from_revision, (unsigned long long)to_revision);
    }
    if (from_revision != c->graph_rev) {
        return kt_err_set(err, KT_ECONFLICT, "delta from revision %llu, cache is at %llu",
                          (unsigned long long)from_revision, (unsigned long long)c->graph_rev);
    }
    kt_status st = exec_sql(c, "BEGIN IMMEDIATE", err);
    if (st != KT_OK) {
        return st;
    }
    for (size_t i = 0; i < n_objs && st == KT_OK; i++) {
        st = objs[i].deleted ? del_object(c, &objs[i], err) : put_object(c, &objs[i], err);
    }
    if (st == KT_OK && n_objs > 0) {
        st = exec_sql(c, "DELETE FROM rendered", err); /* rendered from the old objects */
    }
    if (st == KT_OK) {
        st = meta_set_u64(c, "graph_revision", to_revision, err);
    }
    if (st == KT_OK) {
        st = exec_sql(c, "COMMIT", err);
    }
    if (st != KT_OK) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    c->graph_rev = to_revision;
    if (n_objs > 0) {
        c->generation++;
        return recount(c, err);
    }
    return KT_OK;
}

kt_status agent_cache_placement_apply(agent_cache *c,
                                      uint64_t revision,
                                      const agent_cache_placement *items,
                                      size_t n_items,
                                      kt_err *err)
{
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EINVAL, "placement update during a snapshot");
    }
    kt_status st = exec_sql(c, "BEGIN IMMEDIATE", err);
    if (st != KT_OK) {
        return st;
    }
    st = exec_sql(c, "DELETE FROM placement", err);
    for (size_t i = 0; i < n_items && st == KT_OK; i++) {
        const agent_cache_placement *p = &items[i];
        if (p->interface == NULL || p->where == NULL) {
            st = kt_err_set(err, KT_EINVAL, "placement entry %zu without interface or where", i);
            break;
        }
        sqlite3_bind_text(c->st_place, 1, p->interface, -1, SQLITE_STATIC);
        sqlite3_bind_text(c->st_place, 2, p->where, -1, SQLITE_STATIC);
        bind_text_or_null(c->st_place, 3, p->site);
        bind_text_or_null(c->st_place, 4, p->rule);
        bind_text_or_null(c->st_place, 5, p->reason);
        st = step_done(c, c->st_place, "write placement", err);
    }
    if (st == KT_OK) {
        st = meta_set_u64(c, "placement_revision", revision, err);
    }
    if (st == KT_OK) {
        st = exec_sql(c, "COMMIT", err);
    }
    if (st != KT_OK) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    c->placement_rev = revision;
    c->placement_generation++;
    return KT_OK;
}

/* ---- reads ----------------------------------------------------------------- */

/*
 * Step st (SELECT kind, name, body, rev), handing each complete row to cb until
 * it returns non-zero; counts the rows read in *n_seen (nullable). Finalizes st.
 */
static kt_status each_object_row(agent_cache *c,
                                 sqlite3_stmt *st,
                                 agent_cache_object_cb cb,
                                 void *user,
                                 size_t *n_seen,
                                 kt_err *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        agent_cache_object o = { 0 };
        o.kind = (const char *)sqlite3_column_text(st, 0);
        o.name = (const char *)sqlite3_column_text(st, 1);
        o.body = (const char *)sqlite3_column_text(st, 2);
        o.body_len = (size_t)sqlite3_column_bytes(st, 2);
        o.revision = (uint64_t)sqlite3_column_int64(st, 3);
        if (n_seen != NULL) {
            (*n_seen)++;
        }
        if (o.kind == NULL || o.name == NULL || o.body == NULL) {
            continue;
        }
        if (cb(&o, user) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(c, rc, "read objects", err);
    }
    return KT_OK;
}

kt_status agent_cache_foreach_object(
    agent_cache *c, const char *kind, agent_cache_object_cb cb, void *user, kt_err *err)
{
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EAGAIN, "a snapshot is being applied");
    }
    sqlite3_stmt *st = NULL;
    const char *sql = kind != NULL
                          ? "SELECT kind, name, body, rev FROM objects WHERE kind = ? ORDER BY name"
                          : "SELECT kind, name, body, rev FROM objects ORDER BY kind, name";
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "read objects", err);
    }
    if (kind != NULL) {
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    }
    return each_object_row(c, st, cb, user, NULL, err);
}

kt_status
agent_cache_foreach_placement(agent_cache *c, agent_cache_placement_cb cb, void *user, kt_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT interface, \"where\", site, rule, reason FROM placement"
                                " ORDER BY interface",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "read placement", err);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        agent_cache_placement p = { 0 };
        p.interface = (const char *)sqlite3_column_text(st, 0);
        p.where = (const char *)sqlite3_column_text(st, 1);
        p.site = (const char *)sqlite3_column_text(st, 2);
        p.rule = (const char *)sqlite3_column_text(st, 3);
        p.reason = (const char *)sqlite3_column_text(st, 4);
        if (p.interface == NULL || p.where == NULL) {
            continue;
        }
        if (cb(&p, user) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(c, rc, "read placement", err);
    }
    return KT_OK;
}

/* ---- rendered documents ---------------------------------------------------- */

/* Bytes per sqlite3_blob_write/read of a rendered document. */
#define RENDERED_CHUNK (64 * 1024)

/* The document goes in as zeroblob(len) then is written through incremental blob I/O: a
 * bound 3 MB blob made SQLite build the whole record in a heap copy of its own (the agent's
 * peak heap while storing the graph JSON). Both steps in one transaction. The writer lets
 * the caller produce the document in pieces (agent_view_persist_graph renders the graph
 * JSON straight into it), so that it is never whole in memory either. */
struct agent_cache_rendered_writer {
    agent_cache *c;
    sqlite3_blob *blob; /* NULL when len is 0 */
    size_t len, off;
    kt_status st; /* the first failure */
};

kt_status agent_cache_rendered_begin(agent_cache_rendered_writer **out,
                                     agent_cache *c,
                                     const char *name,
                                     uint64_t generation,
                                     size_t len,
                                     kt_err *err)
{
    *out = NULL;
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EAGAIN, "a snapshot is being applied");
    }
    if (generation != c->generation) {
        return kt_err_set(err, KT_ECONFLICT, "%s rendered at generation %llu, cache is at %llu",
                          name, (unsigned long long)generation, (unsigned long long)c->generation);
    }
    if (len > (size_t)0x7fffffff) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes", name, len);
    }
    kt_status ret = exec_sql(c, "BEGIN IMMEDIATE", err);
    if (ret != KT_OK) {
        return ret;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        c->db, "INSERT OR REPLACE INTO rendered(name, revision, body) VALUES(?, ?, zeroblob(?))",
        -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)c->graph_rev);
        sqlite3_bind_int(st, 3, (int)len);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    sqlite3_blob *blob = NULL;
    if (rc == SQLITE_OK && len > 0) {
        rc = sqlite3_blob_open(c->db, "main", "rendered", "body", sqlite3_last_insert_rowid(c->db),
                               1, &blob);
    }
    if (rc != SQLITE_OK) {
        ret = sql_fail(c, rc, "write rendered", err);
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
    agent_cache_rendered_writer *w = kt_xcalloc(1, sizeof *w);
    w->c = c;
    w->blob = blob;
    w->len = len;
    *out = w;
    return KT_OK;
}

kt_status
agent_cache_rendered_write(agent_cache_rendered_writer *w, const void *data, size_t n, kt_err *err)
{
    if (w->st != KT_OK) {
        return kt_err_set(err, w->st, "rendered document: an earlier write failed");
    }
    if (n > w->len - w->off) {
        w->st = KT_EINVAL;
        return kt_err_set(err, KT_EINVAL, "rendered document: %zu bytes past the %zu reserved",
                          n - (w->len - w->off), w->len);
    }
    for (size_t done = 0; done < n;) {
        size_t k = n - done < RENDERED_CHUNK ? n - done : RENDERED_CHUNK;
        int rc = sqlite3_blob_write(w->blob, (const char *)data + done, (int)k, (int)w->off);
        if (rc != SQLITE_OK) {
            w->st = sql_fail(w->c, rc, "write rendered", err);
            return w->st;
        }
        done += k;
        w->off += k;
    }
    return KT_OK;
}

kt_status agent_cache_rendered_end(agent_cache_rendered_writer *w, bool commit, kt_err *err)
{
    if (w == NULL) {
        return KT_OK;
    }
    agent_cache *c = w->c;
    kt_status ret = KT_OK;
    if (w->blob != NULL) {
        int rc = sqlite3_blob_close(w->blob);
        if (rc != SQLITE_OK && w->st == KT_OK) {
            w->st = sql_fail(c, rc, "write rendered", err);
        }
    }
    if (w->st != KT_OK) {
        ret = w->st; /* already reported */
    } else if (commit && w->off != w->len) {
        ret = kt_err_set(err, KT_EINVAL, "rendered document: %zu of %zu bytes written", w->off,
                         w->len);
    }
    kt_free(w);
    if (!commit || ret != KT_OK) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
    return exec_sql(c, "COMMIT", err);
}

kt_status agent_cache_rendered_put(agent_cache *c,
                                   const char *name,
                                   uint64_t generation,
                                   const void *data,
                                   size_t len,
                                   kt_err *err)
{
    agent_cache_rendered_writer *w = NULL;
    kt_status st = agent_cache_rendered_begin(&w, c, name, generation, len, err);
    if (st != KT_OK) {
        return st;
    }
    st = agent_cache_rendered_write(w, data, len, err);
    kt_status end = agent_cache_rendered_end(w, st == KT_OK, err);
    return st != KT_OK ? st : end;
}

/* Append the blob of rendered row rowid (n bytes) to out in chunks, without SQLite's own copy. */
static kt_status rendered_read(
    agent_cache *c, sqlite3_int64 rowid, size_t n, kt_buf *out, const char *name, kt_err *err)
{
    sqlite3_blob *blob = NULL;
    int rc = sqlite3_blob_open(c->db, "main", "rendered", "body", rowid, 0, &blob);
    size_t mark = out->len;
    kt_status ret = KT_OK;
    char chunk[4096];
    for (size_t off = 0; rc == SQLITE_OK && ret == KT_OK && off < n; off += sizeof chunk) {
        size_t k = n - off < sizeof chunk ? n - off : sizeof chunk;
        rc = sqlite3_blob_read(blob, chunk, (int)k, (int)off);
        if (rc == SQLITE_OK && kt_buf_append(out, chunk, k) != KT_OK) {
            ret = kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes exceed the buffer", name, n);
        }
    }
    if (blob != NULL) {
        int crc = sqlite3_blob_close(blob);
        rc = rc == SQLITE_OK ? crc : rc;
    }
    if (ret == KT_OK && rc != SQLITE_OK) {
        ret = sql_fail(c, rc, "read rendered", err);
    }
    if (ret != KT_OK) {
        out->len = mark; /* nothing appended on failure */
        if (out->data != NULL) {
            out->data[mark] = '\0';
        }
    }
    return ret;
}

kt_status agent_cache_rendered_get(agent_cache *c, const char *name, kt_buf *out, kt_err *err)
{
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EAGAIN, "a snapshot is being applied");
    }
    sqlite3_stmt *st = NULL;
    /* length(body) does not read the blob's overflow pages. */
    int rc = sqlite3_prepare_v2(
        c->db, "SELECT rowid, revision, length(body) FROM rendered WHERE name = ?", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "read rendered", err);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    kt_status ret = KT_OK;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 rowid = sqlite3_column_int64(st, 0);
        uint64_t rev = (uint64_t)sqlite3_column_int64(st, 1);
        size_t n = (size_t)sqlite3_column_int64(st, 2);
        if (rev != c->graph_rev) {
            /* Written by a binary that did not drop it on commit: not this content. */
            ret = kt_err_set(err, KT_ENOTFOUND, "%s rendered at revision %llu, cache is at %llu",
                             name, (unsigned long long)rev, (unsigned long long)c->graph_rev);
        } else if (out != NULL && n > 0) {
            ret = rendered_read(c, rowid, n, out, name, err);
        }
    } else if (rc == SQLITE_DONE) {
        ret = kt_err_set(err, KT_ENOTFOUND, "%s not rendered since the last commit", name);
    } else {
        ret = sql_fail(c, rc, "read rendered", err);
    }
    sqlite3_finalize(st);
    return ret;
}

kt_status agent_cache_foreach_object_after(agent_cache *c,
                                           const char *after_kind,
                                           const char *after_name,
                                           size_t limit,
                                           agent_cache_object_cb cb,
                                           void *user,
                                           size_t *n_seen,
                                           kt_err *err)
{
    *n_seen = 0;
    if (c->in_snapshot) {
        return kt_err_set(err, KT_EAGAIN, "a snapshot is being applied");
    }
    sqlite3_stmt *st = NULL;
    const char *sql = after_kind != NULL
                          ? "SELECT kind, name, body, rev FROM objects WHERE (kind, name) > (?, ?)"
                            " ORDER BY kind, name LIMIT ?"
                          : "SELECT kind, name, body, rev FROM objects ORDER BY kind, name LIMIT ?";
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return sql_fail(c, rc, "read objects", err);
    }
    int i = 1;
    if (after_kind != NULL) {
        /* Copied: the callback may free the caller's cursor strings while rows are read. */
        sqlite3_bind_text(st, i++, after_kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, i++, after_name != NULL ? after_name : "", -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, i, limit > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    return each_object_row(c, st, cb, user, n_seen, err);
}
