/*
 * agent/outbox.c — the durable outbox of events bound for the hub (see
 * outbox.h for the contract, the file choice and the quota policy).
 *
 * Schema (one SQLite file, WAL, synchronous=NORMAL):
 *   meta(key TEXT PRIMARY KEY, value)    incarnation, next_seq, acked_seq,
 *                                        journal_applied, ...
 *   events(seq INTEGER PRIMARY KEY, id, type, source, subject, time_ms,
 *          dct, data BLOB, bytes, depth) one row per unacked event; depth is
 *                                        its loop depth, NULL = 0 (the column
 *                                        is added to an older file at open)
 * next_seq is written in the same transaction as the rows it numbers, so a
 * crash can never hand out a seq twice within an incarnation.
 *
 * Invariants: the in-memory counters (events, bytes, next_seq) equal the
 * database plus the open transaction; rollback restores the copy taken at
 * begin. Thread: loop only. Ownership: connection and statements.
 */
#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#define KT_LOG_MOD "outbox"
#include "kt/log.h"
#include "kt/mem.h"

#define DEFAULT_MAX_BYTES (1024ull * 1024ull * 1024ull)

/* Page cache of the connection, in the PRAGMA cache_size form (negative: KiB). The outbox
 * is a queue (appends at the end, reads and deletes from the start), so SQLite's default
 * (2000 KiB) held pages that were never read again (agent-rss). */
#define OUTBOX_PAGE_CACHE "-256"

enum {
    S_INSERT,
    S_PEEK,
    S_DELETE,
    S_ACKED_SUM,
    S_META_GET,
    S_META_SET,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_INSERT] = "INSERT INTO events(seq,id,type,source,subject,time_ms,dct,data,bytes,depth) "
                 "VALUES(?,?,?,?,?,?,?,?,?,?)",
    [S_PEEK] = "SELECT seq,id,type,source,subject,time_ms,dct,data,bytes,depth FROM events "
               "WHERE seq >= ? ORDER BY seq LIMIT ?",
    [S_DELETE] = "DELETE FROM events WHERE seq <= ?",
    /* rows at or below the acked seq: a range from the table's start (older ones are gone) */
    [S_ACKED_SUM] = "SELECT count(*), coalesce(sum(bytes),0) FROM events WHERE seq <= ?",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?",
    [S_META_SET] = "INSERT INTO meta(key,value) VALUES(?,?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT kt_mark",
    [S_RELEASE] = "RELEASE kt_mark",
    [S_ROLLBACK_TO] = "ROLLBACK TO kt_mark",
};

typedef struct counters {
    uint64_t events;
    uint64_t bytes;
    uint64_t next_seq;
} counters;

struct agent_outbox {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    char incarnation[33];
    uint64_t max_bytes;
    uint64_t low_water;
    counters c;
    counters saved;  /* at begin */
    counters marked; /* at agent_outbox_mark */
    bool has_mark;
    uint64_t acked_seq;
    bool in_txn;
    bool added; /* events appended in the open transaction */
    bool full;
    agent_outbox_kick_cb kick;
    void *kick_user;
    kt_metric *m_events;
    kt_metric *m_bytes;
    kt_metric *m_full;
};

static kt_status db_err(agent_outbox *ob, kt_err *err, int rc, const char *what)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "outbox %s: %s", what,
                          ob->db != NULL ? sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
}

static void update_metrics(agent_outbox *ob)
{
    kt_metrics_set(ob->m_events, (double)ob->c.events);
    kt_metrics_set(ob->m_bytes, (double)ob->c.bytes);
    kt_metrics_set(ob->m_full, ob->full ? 1.0 : 0.0);
}

static kt_status exec1(agent_outbox *ob, int which, kt_err *err)
{
    sqlite3_stmt *s = ob->st[which];
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return db_err(ob, err, rc, stmt_sql[which]);
    }
    return KT_OK;
}

static kt_status meta_get_raw(agent_outbox *ob, const char *key, sqlite3_value **copy)
{
    sqlite3_stmt *s = ob->st[S_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *copy = rc == SQLITE_ROW ? sqlite3_value_dup(sqlite3_column_value(s, 0)) : NULL;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? KT_OK : KT_EDEP;
}

uint64_t agent_outbox_meta_get(agent_outbox *ob, const char *key)
{
    sqlite3_value *v = NULL;
    if (meta_get_raw(ob, key, &v) != KT_OK || v == NULL) {
        return 0;
    }
    sqlite3_int64 x = sqlite3_value_int64(v);
    sqlite3_value_free(v);
    return x > 0 ? (uint64_t)x : 0;
}

static kt_status
meta_set_value(agent_outbox *ob, const char *key, const char *text, uint64_t num, kt_err *err)
{
    sqlite3_stmt *s = ob->st[S_META_SET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (text != NULL) {
        sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(s, 2, (sqlite3_int64)num);
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        return db_err(ob, err, rc, "meta set");
    }
    return KT_OK;
}

kt_status agent_outbox_meta_set(agent_outbox *ob, const char *key, uint64_t value, kt_err *err)
{
    if (ob->in_txn) {
        return meta_set_value(ob, key, NULL, value, err);
    }
    kt_status st = agent_outbox_begin(ob, err);
    if (st != KT_OK) {
        return st;
    }
    st = meta_set_value(ob, key, NULL, value, err);
    if (st != KT_OK) {
        agent_outbox_rollback(ob);
        return st;
    }
    return agent_outbox_commit(ob, err);
}

kt_status agent_outbox_meta_text_get(agent_outbox *ob, const char *key, kt_buf *out)
{
    sqlite3_value *v = NULL;
    if (meta_get_raw(ob, key, &v) != KT_OK) {
        return KT_EDEP;
    }
    kt_status st = KT_OK;
    if (v != NULL && sqlite3_value_type(v) == SQLITE_TEXT) {
        const unsigned char *t = sqlite3_value_text(v);
        st = kt_buf_append(out, t, (size_t)sqlite3_value_bytes(v));
    }
    sqlite3_value_free(v);
    return st;
}

kt_status
agent_outbox_meta_text_set(agent_outbox *ob, const char *key, const char *value, kt_err *err)
{
    if (ob->in_txn) {
        return meta_set_value(ob, key, value, 0, err);
    }
    kt_status st = agent_outbox_begin(ob, err);
    if (st != KT_OK) {
        return st;
    }
    st = meta_set_value(ob, key, value, 0, err);
    if (st != KT_OK) {
        agent_outbox_rollback(ob);
        return st;
    }
    return agent_outbox_commit(ob, err);
}

/* 16 random bytes as hex (the id only has to be unique). */
static kt_status new_incarnation(char out[33], kt_err *err)
{
    uint8_t raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "open /dev/urandom");
    }
    size_t have = 0;
    while (have < sizeof raw) {
        ssize_t r = read(fd, raw + have, sizeof raw - have);
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            if (r < 0 && e == EINTR) {
                continue;
            }
            close(fd);
            return kt_err_set_errno(err, KT_EIO, e, "read /dev/urandom");
        }
        have += (size_t)r;
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

static kt_status load_state(agent_outbox *ob, kt_err *err)
{
    sqlite3_value *v = NULL;
    if (meta_get_raw(ob, "incarnation", &v) != KT_OK) {
        return db_err(ob, err, sqlite3_errcode(ob->db), "read meta");
    }
    if (v == NULL) {
        kt_status st = new_incarnation(ob->incarnation, err);
        if (st != KT_OK) {
            return st;
        }
        st = meta_set_value(ob, "incarnation", ob->incarnation, 0, err);
        if (st != KT_OK) {
            return st;
        }
        KT_LOG(KT_LOG_NOTICE, "OUTBOX-NEW-INCARNATION", "incarnation=%s", ob->incarnation);
    } else {
        const unsigned char *t = sqlite3_value_text(v);
        if (t == NULL || strlen((const char *)t) != 32) {
            sqlite3_value_free(v);
            return kt_err_set(err, KT_EDEP, "outbox: meta incarnation is not a 32-char id");
        }
        kt_strlcpy(ob->incarnation, (const char *)t, sizeof ob->incarnation);
        sqlite3_value_free(v);
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(ob->db,
                                "SELECT count(*), coalesce(sum(bytes),0), "
                                "coalesce(max(seq),0) FROM events",
                                -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return db_err(ob, err, rc, "count");
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return db_err(ob, err, rc, "count");
    }
    ob->c.events = (uint64_t)sqlite3_column_int64(s, 0);
    ob->c.bytes = (uint64_t)sqlite3_column_int64(s, 1);
    uint64_t max_seq = (uint64_t)sqlite3_column_int64(s, 2);
    sqlite3_finalize(s);
    uint64_t next = agent_outbox_meta_get(ob, "next_seq");
    ob->c.next_seq = next > max_seq ? next : max_seq + 1;
    if (ob->c.next_seq == 0) {
        ob->c.next_seq = 1;
    }
    ob->acked_seq = agent_outbox_meta_get(ob, "acked_seq");
    ob->full = ob->c.bytes >= ob->max_bytes;
    return KT_OK;
}

/* The events table has the depth column (added by this version; older outboxes lack it). */
static bool has_depth_column(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('events') WHERE name = 'depth'", -1,
                           &s, NULL) == SQLITE_OK) {
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

kt_status agent_outbox_open(agent_outbox **out, const agent_outbox_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts == NULL || opts->path == NULL || opts->path[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "outbox: no path");
    }
    agent_outbox *ob = kt_xcalloc(1, sizeof *ob);
    ob->max_bytes = opts->max_bytes != 0 ? opts->max_bytes : DEFAULT_MAX_BYTES;
    ob->low_water = opts->low_water_bytes != 0 && opts->low_water_bytes < ob->max_bytes
                        ? opts->low_water_bytes
                        : ob->max_bytes / 10 * 9;
    kt_status st = KT_OK;
    int rc =
        sqlite3_open_v2(opts->path, &ob->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "open %s: %s", opts->path,
                            ob->db != NULL ? sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(ob->db, 1000);
    static const char *const ddl =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA cache_size=" OUTBOX_PAGE_CACHE ";"
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
        "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
        " type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, time_ms INTEGER,"
        " dct TEXT, data BLOB, bytes INTEGER NOT NULL, depth INTEGER);";
    char *msg = NULL;
    rc = sqlite3_exec(ob->db, ddl, NULL, NULL, &msg);
    if (rc == SQLITE_OK && !has_depth_column(ob->db)) {
        /* an outbox of an older agent: its events are depth 0 (NULL); O(1) in SQLite */
        rc = sqlite3_exec(ob->db, "ALTER TABLE events ADD COLUMN depth INTEGER", NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "outbox %s schema: %s", opts->path,
                            msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        rc = sqlite3_prepare_v3(ob->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ob->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            st = db_err(ob, err, rc, stmt_sql[i]);
            goto fail;
        }
    }
    st = load_state(ob, err);
    if (st != KT_OK) {
        goto fail;
    }
    if (opts->metrics != NULL) {
        kt_err merr = { 0 };
        (void)kt_metrics_gauge(&ob->m_events, opts->metrics, "ktwin_agent_outbox_events",
                               "Events in the outbox not yet acked by the hub", NULL, &merr);
        (void)kt_metrics_gauge(&ob->m_bytes, opts->metrics, "ktwin_agent_outbox_bytes",
                               "Bytes of outbox events counted against outbox.max_bytes", NULL,
                               &merr);
        (void)kt_metrics_gauge(&ob->m_full, opts->metrics, "ktwin_agent_outbox_full",
                               "1 while the outbox is at its quota (MQTT ingest is paused)", NULL,
                               &merr);
    }
    update_metrics(ob);
    KT_LOG(KT_LOG_INFO, "OUTBOX-OPEN",
           "path=%s incarnation=%s events=%" PRIu64 " bytes=%" PRIu64 " next_seq=%" PRIu64,
           opts->path, ob->incarnation, ob->c.events, ob->c.bytes, ob->c.next_seq);
    *out = ob;
    return KT_OK;
fail:
    agent_outbox_free(ob);
    return st;
}

void agent_outbox_free(agent_outbox *ob)
{
    if (ob == NULL) {
        return;
    }
    if (ob->in_txn) {
        agent_outbox_rollback(ob);
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(ob->st[i]);
    }
    sqlite3_close(ob->db);
    kt_free(ob);
}

const char *agent_outbox_incarnation(const agent_outbox *ob)
{
    return ob->incarnation;
}

void agent_outbox_set_kick(agent_outbox *ob, agent_outbox_kick_cb cb, void *user)
{
    ob->kick = cb;
    ob->kick_user = user;
}

static size_t slen(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

uint64_t agent_outbox_event_bytes(const sync_event *ev)
{
    return (uint64_t)ev->data_len + slen(ev->id) + slen(ev->type) + slen(ev->source) +
           slen(ev->subject) + slen(ev->datacontenttype) + 64u;
}

kt_status agent_outbox_begin(agent_outbox *ob, kt_err *err)
{
    if (ob->in_txn) {
        return kt_err_set(err, KT_EINVAL, "outbox: a transaction is already open");
    }
    kt_status st = exec1(ob, S_BEGIN, err);
    if (st != KT_OK) {
        return st;
    }
    ob->in_txn = true;
    ob->added = false;
    ob->saved = ob->c;
    return KT_OK;
}

kt_status agent_outbox_commit(agent_outbox *ob, kt_err *err)
{
    if (!ob->in_txn) {
        return kt_err_set(err, KT_EINVAL, "outbox: no open transaction");
    }
    kt_status st = KT_OK;
    agent_outbox_unmark(ob, true);
    if (ob->c.next_seq != ob->saved.next_seq) {
        st = meta_set_value(ob, "next_seq", NULL, ob->c.next_seq, err);
    }
    if (st == KT_OK) {
        st = exec1(ob, S_COMMIT, err);
    }
    if (st != KT_OK) {
        agent_outbox_rollback(ob);
        return st;
    }
    ob->in_txn = false;
    update_metrics(ob);
    if (ob->added && ob->kick != NULL) {
        ob->added = false;
        ob->kick(ob, ob->kick_user);
    }
    return KT_OK;
}

kt_status agent_outbox_mark(agent_outbox *ob, kt_err *err)
{
    if (!ob->in_txn || ob->has_mark) {
        return kt_err_set(err, KT_EINVAL, "outbox mark: no transaction, or a mark is set");
    }
    kt_status st = exec1(ob, S_SAVEPOINT, err);
    if (st != KT_OK) {
        return st;
    }
    ob->has_mark = true;
    ob->marked = ob->c;
    return KT_OK;
}

void agent_outbox_unmark(agent_outbox *ob, bool keep)
{
    if (!ob->has_mark) {
        return;
    }
    ob->has_mark = false;
    kt_err err = { 0 };
    if (!keep) {
        if (exec1(ob, S_ROLLBACK_TO, &err) != KT_OK) {
            KT_LOG(KT_LOG_ERR, "OUTBOX-ROLLBACK", "to=mark err=\"%s\"", err.msg);
        }
        ob->c = ob->marked;
    }
    if (exec1(ob, S_RELEASE, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "OUTBOX-ROLLBACK", "release=mark err=\"%s\"", err.msg);
    }
}

void agent_outbox_rollback(agent_outbox *ob)
{
    if (!ob->in_txn) {
        return;
    }
    ob->has_mark = false;
    kt_err err = { 0 };
    if (exec1(ob, S_ROLLBACK, &err) != KT_OK && sqlite3_get_autocommit(ob->db) == 0) {
        KT_LOG(KT_LOG_ERR, "OUTBOX-ROLLBACK", "err=\"%s\"", err.msg);
    }
    ob->in_txn = false;
    ob->added = false;
    ob->c = ob->saved;
    update_metrics(ob);
}

static kt_status insert(agent_outbox *ob, const sync_event *ev, uint64_t evb, kt_err *err)
{
    sqlite3_stmt *s = ob->st[S_INSERT];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ob->c.next_seq);
    sqlite3_bind_text(s, 2, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, ev->source, -1, SQLITE_STATIC);
    if (ev->subject != NULL) {
        sqlite3_bind_text(s, 5, ev->subject, -1, SQLITE_STATIC);
    }
    if (ev->time_ms != 0) {
        sqlite3_bind_int64(s, 6, (sqlite3_int64)ev->time_ms);
    }
    if (ev->datacontenttype != NULL) {
        sqlite3_bind_text(s, 7, ev->datacontenttype, -1, SQLITE_STATIC);
    }
    sqlite3_bind_blob64(s, 8, ev->data != NULL ? (const void *)ev->data : (const void *)"",
                        (sqlite3_uint64)ev->data_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, (sqlite3_int64)evb);
    if (ev->depth != 0) {
        sqlite3_bind_int64(s, 10, (sqlite3_int64)ev->depth);
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        return db_err(ob, err, rc, "insert");
    }
    return KT_OK;
}

kt_status
agent_outbox_append(agent_outbox *ob, const sync_event *ev, uint64_t *seq_out, kt_err *err)
{
    if (ev == NULL || ev->id == NULL || ev->id[0] == '\0' || ev->type == NULL ||
        ev->type[0] == '\0' || ev->source == NULL || ev->source[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "outbox event: id, type and source are required");
    }
    uint64_t evb = agent_outbox_event_bytes(ev);
    if (ob->c.bytes + evb > ob->max_bytes) {
        if (!ob->full) {
            KT_LOG(KT_LOG_WARN, "OUTBOX-FULL",
                   "bytes=%" PRIu64 " max_bytes=%" PRIu64 " events=%" PRIu64, ob->c.bytes,
                   ob->max_bytes, ob->c.events);
        }
        ob->full = true;
        kt_metrics_set(ob->m_full, 1.0);
        return KT_EAGAIN;
    }
    bool own = !ob->in_txn;
    if (own) {
        kt_status st = agent_outbox_begin(ob, err);
        if (st != KT_OK) {
            return st;
        }
    }
    kt_status st = insert(ob, ev, evb, err);
    if (st != KT_OK) {
        if (own) {
            agent_outbox_rollback(ob);
        }
        return st;
    }
    uint64_t seq = ob->c.next_seq;
    ob->c.next_seq++;
    ob->c.events++;
    ob->c.bytes += evb;
    ob->added = true;
    if (own) {
        st = agent_outbox_commit(ob, err);
        if (st != KT_OK) {
            return st;
        }
    }
    if (seq_out != NULL) {
        *seq_out = seq;
    }
    return KT_OK;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NULL
                                                    : (const char *)sqlite3_column_text(s, i);
}

kt_status agent_outbox_peek(agent_outbox *ob,
                            uint64_t from_seq,
                            size_t max_n,
                            uint64_t max_bytes,
                            agent_outbox_event_cb cb,
                            void *user,
                            size_t *n_out,
                            kt_err *err)
{
    size_t n = 0;
    uint64_t sum = 0;
    sqlite3_stmt *s = ob->st[S_PEEK];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)from_seq);
    sqlite3_bind_int64(s, 2, max_n > INT64_MAX ? INT64_MAX : (sqlite3_int64)max_n);
    kt_status st = KT_OK;
    for (;;) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            st = db_err(ob, err, rc, "peek");
            break;
        }
        uint64_t evb = (uint64_t)sqlite3_column_int64(s, 8);
        if (n > 0 && sum + evb > max_bytes) {
            break;
        }
        sync_event ev = { 0 };
        ev.id = col_text(s, 1);
        ev.type = col_text(s, 2);
        ev.source = col_text(s, 3);
        ev.subject = col_text(s, 4);
        ev.time_ms = (uint64_t)sqlite3_column_int64(s, 5);
        ev.datacontenttype = col_text(s, 6);
        ev.data = sqlite3_column_blob(s, 7);
        ev.data_len = (size_t)sqlite3_column_bytes(s, 7);
        ev.depth = (uint32_t)sqlite3_column_int64(s, 9);
        sum += evb;
        n++;
        if (!cb((uint64_t)sqlite3_column_int64(s, 0), &ev, user)) {
            break;
        }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (n_out != NULL) {
        *n_out = n;
    }
    return st;
}

kt_status agent_outbox_ack(agent_outbox *ob, uint64_t seq, kt_err *err)
{
    if (ob->in_txn) {
        return kt_err_set(err, KT_EINVAL, "outbox ack inside a transaction");
    }
    if (seq >= ob->c.next_seq) {
        return kt_err_set(err, KT_EINVAL, "outbox ack %" PRIu64 " past the last seq %" PRIu64, seq,
                          ob->c.next_seq - 1);
    }
    if (seq <= ob->acked_seq) {
        return KT_OK;
    }
    kt_status st = agent_outbox_begin(ob, err);
    if (st != KT_OK) {
        return st;
    }
    /*
     * What the delete removes, counted over the acked range only (a recount of
     * the whole table per ack made a long drain quadratic); the counters are
     * restored by the rollback of a failed ack.
     */
    sqlite3_stmt *c = ob->st[S_ACKED_SUM];
    sqlite3_bind_int64(c, 1, (sqlite3_int64)seq);
    int rc = sqlite3_step(c);
    if (rc == SQLITE_ROW) {
        uint64_t n = (uint64_t)sqlite3_column_int64(c, 0);
        uint64_t b = (uint64_t)sqlite3_column_int64(c, 1);
        ob->c.events = ob->c.events >= n ? ob->c.events - n : 0;
        ob->c.bytes = ob->c.bytes >= b ? ob->c.bytes - b : 0;
    }
    sqlite3_reset(c);
    if (rc != SQLITE_ROW) {
        st = db_err(ob, err, rc, "count acked");
        agent_outbox_rollback(ob);
        return st;
    }
    sqlite3_stmt *s = ob->st[S_DELETE];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        st = db_err(ob, err, rc, "delete acked");
        agent_outbox_rollback(ob);
        return st;
    }
    st = meta_set_value(ob, "acked_seq", NULL, seq, err);
    if (st != KT_OK) {
        agent_outbox_rollback(ob);
        return st;
    }
    st = agent_outbox_commit(ob, err);
    if (st != KT_OK) {
        return st;
    }
    ob->acked_seq = seq;
    if (ob->full && ob->c.bytes < ob->low_water) {
        ob->full = false;
        KT_LOG(KT_LOG_NOTICE, "OUTBOX-DRAINED",
               "bytes=%" PRIu64 " low_water_bytes=%" PRIu64 " events=%" PRIu64, ob->c.bytes,
               ob->low_water, ob->c.events);
    }
    update_metrics(ob);
    return KT_OK;
}

uint64_t agent_outbox_first_seq(const agent_outbox *ob)
{
    if (ob->c.events == 0) {
        return ob->c.next_seq;
    }
    return ob->acked_seq + 1;
}

uint64_t agent_outbox_next_seq(const agent_outbox *ob)
{
    return ob->c.next_seq;
}

uint64_t agent_outbox_acked_seq(const agent_outbox *ob)
{
    return ob->acked_seq;
}

uint64_t agent_outbox_events(const agent_outbox *ob)
{
    return ob->c.events;
}

uint64_t agent_outbox_bytes(const agent_outbox *ob)
{
    return ob->c.bytes;
}

bool agent_outbox_full(const agent_outbox *ob)
{
    return ob->full;
}

size_t agent_outbox_cache_bytes(const agent_outbox *ob)
{
    int cur = 0, hi = 0;
    (void)sqlite3_db_status(ob->db, SQLITE_DBSTATUS_CACHE_USED, &cur, &hi, 0);
    return cur > 0 ? (size_t)cur : 0;
}
