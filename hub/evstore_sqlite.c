/*
 * hub/evstore_sqlite.c — the default event store backend: one SQLite file
 * of its own (not hub.db), WAL, synchronous=NORMAL.
 *
 * Schema (PRAGMA user_version = 3):
 *   events(rid INTEGER PRIMARY KEY, iface, instance, time_ms, stored_ms, id,
 *          type, source, subject, dct, site, data BLOB, size, ikey)
 *     index events_ikey(ikey, time_ms)  -- per-instance ranges
 *     index events_time(time_ms)        -- all-events ranges
 *   latest(iface, instance, rid, time_ms, stored_ms, id, type, source,
 *          subject, dct, site, data, PRIMARY KEY(iface, instance))
 *   dedupe(site, incarnation, seq, updated_ms, PRIMARY KEY(site, incarnation))
 *   down(site, seq, iface, instance, id, type, source, subject, dct, time_ms,
 *        stored_ms, data, depth, PRIMARY KEY(site, seq))  -- depth: the
 *        event's loop depth, NULL = 0 (version 3)
 *   down_seq(site PRIMARY KEY, last_seq, count)
 *   meta(key PRIMARY KEY, value)   -- 'rows', 'bytes' of the history
 *
 * DESIGN
 *   - Exactly once upstream: the dedupe row of (site, incarnation) is read
 *     and advanced inside the caller's transaction with the event rows, so
 *     after a crash either both are there or neither is. Each append runs in
 *     a SAVEPOINT: a failed append (a merge error, a bad event) leaves the
 *     group transaction usable, with nothing of that append in it.
 *   - Latest state per append: an append reads the latest row of each
 *     (iface, instance) it touches once, merges its events over it in
 *     memory in event order (each events row still holds the merged
 *     document of its event), and writes each latest row once at the end
 *     (the last event's attributes and rowid). A drained batch has many
 *     events per instance; a latest read and an INSERT OR REPLACE per event
 *     were a third of the hub's CPU per event. The slots borrow the
 *     append's strings and are cleared when the append returns.
 *   - rows/bytes of the history are kept in memory and written to meta in
 *     the same transaction as the change; begin snapshots them and rollback
 *     restores the snapshot, so memory and disk agree.
 *   - ikey is a 64-bit FNV-1a hash of iface, a NUL byte and instance
 *     (inst_key(); fixed: it is stored). Per-instance ranges use the index
 *     (ikey, time_ms) and filter iface and instance too (a hash collision
 *     only costs a skipped row). Version 1 indexed (iface, instance,
 *     time_ms): every event insert compared the long text keys down the
 *     b-tree, the largest single cost of a drain. Opening a version-1 file
 *     adds and fills the column and swaps the index in one transaction.
 *   - Range queries use lower = max(from, cursor time) as the index bound
 *     and filter (time, rid) past the cursor, so a page costs O(limit) plus
 *     the rows sharing the cursor's millisecond.
 *   - Retention deletes the oldest rows by rid (commit order) in one
 *     bounded transaction per call; the caller (hub/events.c) repeats on a
 *     timer.
 *   - Downstream: down_seq keeps last_seq and count per site, so a full
 *     queue is refused without counting rows, and seqs never go backwards
 *     even when the queue empties.
 *   - Checkpoints are off the commit path: the loop's connection has
 *     wal_autocheckpoint off; its WAL hook (after each commit) wakes a
 *     checkpointer thread once the WAL holds CKPT_KICK_BYTES, which runs a
 *     PASSIVE checkpoint (the fsyncs included) on a connection of its own;
 *     the loop's next write transaction restarts the WAL once all of it is
 *     backfilled. A WAL past CKPT_INLINE_BYTES (the thread cannot keep up)
 *     is checkpointed inline by the loop as before, so the WAL stays bounded.
 *     An inline checkpoint of 16 MiB stalled commits for tens of ms (the
 *     eventplane-latency p99). Without a thread (creation failed, SQLite
 *     built single-threaded) the old wal_autocheckpoint=4096 applies.
 *
 * Thread: loop only, except the checkpointer thread, which touches only
 * e->ck (its mutex, condition, flags) and its own connection.
 * Ownership: the connection, its statements, the merge buffer, the
 * per-instance slots of an append (their buffers are reused) and the
 * checkpointer thread (joined by free).
 */
#define KT_LOG_MOD "evstore"

#include "hub/evstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>
#include <uv.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"

#define SCHEMA_VERSION    3
#define MERGE_MAX_BYTES   ((size_t)64 << 20)
#define ROW_OVERHEAD      48u
#define DOWN_DEFAULT_CAP  10000u
#define CKPT_KICK_BYTES   ((uint64_t)4 << 20)  /* WAL size that wakes the checkpointer thread */
#define CKPT_INLINE_BYTES ((uint64_t)64 << 20) /* the thread lags: checkpoint on the loop */
/*
 * Page size of a new store (an existing file keeps its own). Measured with
 * the eventplane-replay benchmark (780,000 events over 4,000 instances, a
 * commit touches every instance's index page): 4 KiB drained 83,000
 * events/s, 8 KiB 119,000, 16 KiB 108,000, 1 KiB 51,000. Fewer, fuller
 * pages cost less per commit (page cache, WAL frames) until the bytes
 * rewritten per touched page dominate.
 */
#define PAGE_SIZE_NEW "8192"

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SP,
    S_SP_RELEASE,
    S_SP_ROLLBACK,
    S_DEDUPE_GET,
    S_DEDUPE_PUT,
    S_LATEST_GET,
    S_LATEST_PUT,
    S_INSERT,
    S_META_PUT,
    S_Q_INST_ASC,
    S_Q_INST_DESC,
    S_Q_ALL_ASC,
    S_Q_ALL_DESC,
    S_RET_SCAN,
    S_RET_DEL,
    S_DSEQ_GET,
    S_DSEQ_PUT,
    S_DOWN_INS,
    S_DOWN_READ,
    S_DOWN_DEL,
    S_DOWN_SHIFT,
    S_DOWN_UNNEG,
    S_DOWN_FIRST,
    S_BSP,
    S_BSP_RELEASE,
    S_BSP_ROLLBACK,
    S__COUNT
};

#define EV_COLS \
    "rid, iface, instance, time_ms, stored_ms, id, type, source, subject, dct, site, data"

static const char *const stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SP] = "SAVEPOINT ev_append",
    [S_SP_RELEASE] = "RELEASE ev_append",
    [S_SP_ROLLBACK] = "ROLLBACK TO ev_append",
    [S_DEDUPE_GET] = "SELECT seq FROM dedupe WHERE site = ?1 AND incarnation = ?2",
    [S_DEDUPE_PUT] =
        "INSERT INTO dedupe(site, incarnation, seq, updated_ms) VALUES(?1, ?2, ?3, ?4) "
        "ON CONFLICT(site, incarnation) DO UPDATE SET seq = excluded.seq, "
        "updated_ms = excluded.updated_ms",
    [S_LATEST_GET] = "SELECT " EV_COLS " FROM latest WHERE iface = ?1 AND instance = ?2",
    [S_LATEST_PUT] = "INSERT OR REPLACE INTO latest(" EV_COLS ") "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_INSERT] = "INSERT INTO events(iface, instance, time_ms, stored_ms, id, type, source, "
                 "subject, dct, site, data, size, ikey) "
                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [S_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [S_Q_INST_ASC] = "SELECT " EV_COLS " FROM events WHERE ikey = ?8 AND iface = ?1 "
                     "AND instance = ?2 "
                     "AND time_ms >= ?3 AND time_ms < ?4 "
                     "AND (time_ms > ?5 OR (time_ms = ?5 AND rid > ?6)) "
                     "ORDER BY time_ms, rid LIMIT ?7",
    [S_Q_INST_DESC] = "SELECT " EV_COLS " FROM events WHERE ikey = ?8 AND iface = ?1 "
                      "AND instance = ?2 "
                      "AND time_ms >= ?3 AND time_ms < ?4 "
                      "AND (time_ms < ?5 OR (time_ms = ?5 AND rid < ?6)) "
                      "ORDER BY time_ms DESC, rid DESC LIMIT ?7",
    [S_Q_ALL_ASC] = "SELECT " EV_COLS " FROM events WHERE "
                    "time_ms >= ?3 AND time_ms < ?4 "
                    "AND (time_ms > ?5 OR (time_ms = ?5 AND rid > ?6)) "
                    "ORDER BY time_ms, rid LIMIT ?7",
    [S_Q_ALL_DESC] = "SELECT " EV_COLS " FROM events WHERE "
                     "time_ms >= ?3 AND time_ms < ?4 "
                     "AND (time_ms < ?5 OR (time_ms = ?5 AND rid < ?6)) "
                     "ORDER BY time_ms DESC, rid DESC LIMIT ?7",
    [S_RET_SCAN] = "SELECT rid, size, stored_ms FROM events ORDER BY rid LIMIT ?1",
    [S_RET_DEL] = "DELETE FROM events WHERE rid <= ?1",
    [S_DSEQ_GET] = "SELECT last_seq, count FROM down_seq WHERE site = ?1",
    [S_DSEQ_PUT] = "INSERT OR REPLACE INTO down_seq(site, last_seq, count) VALUES(?1, ?2, ?3)",
    [S_DOWN_INS] = "INSERT INTO down(site, seq, iface, instance, id, type, source, subject, dct, "
                   "time_ms, stored_ms, data, depth) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [S_DOWN_READ] = "SELECT seq, iface, instance, time_ms, stored_ms, id, type, source, subject, "
                    "dct, site, data, depth FROM down WHERE site = ?1 AND seq > ?2 "
                    "ORDER BY seq LIMIT ?3",
    [S_DOWN_DEL] = "DELETE FROM down WHERE site = ?1 AND seq <= ?2",
    [S_DOWN_SHIFT] = "UPDATE down SET seq = -(seq + ?2) WHERE site = ?1",
    [S_DOWN_UNNEG] = "UPDATE down SET seq = -seq WHERE site = ?1 AND seq < 0",
    [S_DOWN_FIRST] = "SELECT min(seq) FROM down WHERE site = ?1",
    [S_BSP] = "SAVEPOINT ev_batch",
    [S_BSP_RELEASE] = "RELEASE ev_batch",
    [S_BSP_ROLLBACK] = "ROLLBACK TO ev_batch",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events(rid INTEGER PRIMARY KEY, iface TEXT NOT NULL, "
    "instance TEXT NOT NULL, time_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, "
    "id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, dct TEXT, "
    "site TEXT NOT NULL, data BLOB, size INTEGER NOT NULL, ikey INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS events_ikey ON events(ikey, time_ms);"
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);"
    "CREATE TABLE IF NOT EXISTS latest(rid INTEGER NOT NULL, iface TEXT NOT NULL, "
    "instance TEXT NOT NULL, time_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, "
    "id TEXT NOT NULL, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, dct TEXT, "
    "site TEXT NOT NULL, data BLOB, PRIMARY KEY(iface, instance)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS dedupe(site TEXT NOT NULL, incarnation TEXT NOT NULL, "
    "seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY(site, incarnation)) "
    "WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS down(site TEXT NOT NULL, seq INTEGER NOT NULL, "
    "iface TEXT NOT NULL, instance TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, "
    "source TEXT NOT NULL, subject TEXT, dct TEXT, time_ms INTEGER NOT NULL, "
    "stored_ms INTEGER NOT NULL, data BLOB, depth INTEGER, PRIMARY KEY(site, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS down_seq(site TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, "
    "count INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) "
    "WITHOUT ROWID;";

/* The checkpointer thread: mu guards want/stop/runs; db is the thread's own. */
typedef struct ckpt {
    uv_thread_t th;
    uv_mutex_t mu;
    uv_cond_t cv;
    bool started;
    bool want;
    bool stop;
    char *path;
} ckpt;

typedef struct evs_sqlite {
    sqlite3 *db;
    ckpt ck;
    sqlite3_stmt *st[S__COUNT];
    hub_evstore_merge_cb merge;
    void *merge_user;
    uint64_t down_cap;
    hub_evstore_stats stats;
    hub_evstore_stats stats_at_begin;
    hub_evstore_stats stats_at_sp;
    bool stats_dirty;
    bool dirty_at_sp;
    bool in_txn;
    uint64_t page_bytes; /* the file's page size */
    kt_buf merged;
    /* latest state per instance during one append (inst_slot, defined below) */
    struct inst_slot *slots;
    size_t n_slots, cap_slots;
    kt_map slot_map; /* instance -> index + 1 of its first slot */
} evs_sqlite;

/* ------------------------------------------------------------ helpers */

static kt_status sql_err(evs_sqlite *e, int rc, kt_err *err, const char *what)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "event store: %s: %s", what,
                          sqlite3_errmsg(e->db));
}

static sqlite3_stmt *stmt(evs_sqlite *e, int which)
{
    sqlite3_stmt *s = e->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
static kt_status step_done(evs_sqlite *e, sqlite3_stmt *s, kt_err *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return sql_err(e, rc, err, what);
    }
    return KT_OK;
}

static sqlite3_int64 i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

/* The ikey column: 64-bit FNV-1a of iface, a NUL byte and instance (stored: never change it). */
static sqlite3_int64 inst_key(const char *iface, const char *instance)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)iface; *p != '\0'; p++) {
        h = (h ^ *p) * 0x100000001b3u;
    }
    h *= 0x100000001b3u; /* the separator: h ^ 0 == h */
    for (const unsigned char *p = (const unsigned char *)instance; *p != '\0'; p++) {
        h = (h ^ *p) * 0x100000001b3u;
    }
    return (sqlite3_int64)h;
}

static uint64_t u64col(sqlite3_stmt *s, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(s, col);
    return v > 0 ? (uint64_t)v : 0;
}

static const char *textcol(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t != NULL ? (const char *)t : "";
}

static void bind_text_opt(sqlite3_stmt *s, int idx, const char *t)
{
    if (t != NULL && t[0] != '\0') {
        sqlite3_bind_text(s, idx, t, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(s, idx);
    }
}

static void bind_blob(sqlite3_stmt *s, int idx, const uint8_t *p, size_t len)
{
    if (len == 0) {
        sqlite3_bind_zeroblob(s, idx, 0);
    } else {
        sqlite3_bind_blob64(s, idx, p, (sqlite3_uint64)len, SQLITE_STATIC);
    }
}

/*
 * The 11 event columns shared by the events insert and the latest upsert,
 * from parameter col: iface, instance, time_ms, stored_ms, id, type, source,
 * subject, datacontenttype, site, data.
 */
static void bind_event_cols(sqlite3_stmt *s,
                            int col,
                            const hub_evstore_event *ev,
                            uint64_t time_ms,
                            uint64_t now_ms,
                            const char *site,
                            const uint8_t *data,
                            size_t data_len)
{
    sqlite3_bind_text(s, col, ev->iface, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, col + 1, ev->instance, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, col + 2, i64(time_ms));
    sqlite3_bind_int64(s, col + 3, i64(now_ms));
    sqlite3_bind_text(s, col + 4, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, col + 5, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, col + 6, ev->source, -1, SQLITE_STATIC);
    bind_text_opt(s, col + 7, ev->subject);
    bind_text_opt(s, col + 8, ev->datacontenttype);
    sqlite3_bind_text(s, col + 9, site != NULL ? site : "", -1, SQLITE_STATIC);
    bind_blob(s, col + 10, data, data_len);
}

/*
 * Read a row of EV_COLS order (rid, iface, instance, time_ms, stored_ms, id,
 * type, source, subject, dct, site, data) into ev (borrowed from the row).
 */
static void read_event(sqlite3_stmt *s, hub_evstore_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->rowid = u64col(s, 0);
    ev->iface = textcol(s, 1);
    ev->instance = textcol(s, 2);
    ev->time_ms = u64col(s, 3);
    ev->stored_ms = u64col(s, 4);
    ev->id = textcol(s, 5);
    ev->type = textcol(s, 6);
    ev->source = textcol(s, 7);
    ev->subject = textcol(s, 8);
    ev->datacontenttype = textcol(s, 9);
    ev->site = textcol(s, 10);
    const void *d = sqlite3_column_blob(s, 11);
    int n = sqlite3_column_bytes(s, 11);
    ev->data = d != NULL ? d : (const uint8_t *)"";
    ev->data_len = n > 0 ? (size_t)n : 0;
}

static uint64_t row_size(const hub_evstore_event *ev, const char *site, size_t data_len)
{
    uint64_t n = ROW_OVERHEAD + data_len;
    const char *parts[] = { ev->iface,  ev->instance, ev->id, ev->type,
                            ev->source, ev->subject,  site,   ev->datacontenttype };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i] != NULL) {
            n += strlen(parts[i]);
        }
    }
    return n;
}

static kt_status meta_put(evs_sqlite *e, const char *key, uint64_t v, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_META_PUT);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(v));
    return step_done(e, s, err, "meta");
}

static kt_status write_stats(evs_sqlite *e, kt_err *err)
{
    if (!e->stats_dirty) {
        return KT_OK;
    }
    kt_status st = meta_put(e, "rows", e->stats.rows, err);
    if (st == KT_OK) {
        st = meta_put(e, "bytes", e->stats.bytes, err);
    }
    if (st == KT_OK) {
        e->stats_dirty = false;
    }
    return st;
}

/* ------------------------------------------------------------ transactions */

static kt_status s_begin(void *impl, kt_err *err)
{
    evs_sqlite *e = impl;
    kt_status st = step_done(e, stmt(e, S_BEGIN), err, "begin");
    if (st == KT_OK) {
        e->in_txn = true;
        e->stats_at_begin = e->stats;
    }
    return st;
}

static void s_rollback(void *impl)
{
    evs_sqlite *e = impl;
    if (!e->in_txn) {
        return;
    }
    e->in_txn = false;
    e->stats = e->stats_at_begin;
    e->stats_dirty = false;
    if (sqlite3_get_autocommit(e->db) == 0) {
        kt_err err = { 0 };
        if (step_done(e, stmt(e, S_ROLLBACK), &err, "rollback") != KT_OK) {
            KT_LOG(KT_LOG_ERR, "EVSTORE-ROLLBACK", "err=\"%s\"", err.msg);
        }
    }
}

static kt_status s_commit(void *impl, kt_err *err)
{
    evs_sqlite *e = impl;
    kt_status st = write_stats(e, err);
    if (st == KT_OK) {
        st = step_done(e, stmt(e, S_COMMIT), err, "commit");
    }
    if (st == KT_OK) {
        e->in_txn = false;
    }
    /* on failure the wrapper calls rollback, which restores the stats */
    return st;
}

/* ------------------------------------------------------------ append */

/* Write one event (data = merged data) into events; *rid_out is its rowid. */
static kt_status write_event(evs_sqlite *e,
                             const hub_evstore_event *ev,
                             const char *site,
                             const uint8_t *data,
                             size_t data_len,
                             uint64_t now_ms,
                             sqlite3_int64 *rid_out,
                             kt_err *err)
{
    uint64_t time_ms = ev->time_ms != 0 ? ev->time_ms : now_ms;
    uint64_t size = row_size(ev, site, data_len);
    sqlite3_stmt *s = stmt(e, S_INSERT);
    bind_event_cols(s, 1, ev, time_ms, now_ms, site, data, data_len);
    sqlite3_bind_int64(s, 12, i64(size));
    sqlite3_bind_int64(s, 13, inst_key(ev->iface, ev->instance));
    kt_status st = step_done(e, s, err, "insert event");
    if (st != KT_OK) {
        return st;
    }
    *rid_out = sqlite3_last_insert_rowid(e->db);
    e->stats.rows++;
    e->stats.bytes += size;
    e->stats_dirty = true;
    return KT_OK;
}

/* ------------------------------------------------------------ latest of an append */

/*
 * The latest state of one (iface, instance) during an append: read from the
 * latest table once, merged over in memory event by event, written back
 * once at the end of the append (see DESIGN).
 */
struct inst_slot {
    const char *iface; /* borrowed from the append's events */
    const char *instance;
    size_t next;                   /* next slot of the same instance + 1, 0 = none */
    bool have;                     /* cur holds a latest state (from the table or this append) */
    bool dirty;                    /* written by this append: put it in the table at the end */
    const hub_evstore_event *last; /* the append's last event of the instance */
    sqlite3_int64 rid;             /* its rowid */
    kt_buf cur;                    /* the latest data */
};
typedef struct inst_slot inst_slot;

#define SLOT_KEEP_BYTES ((size_t)64 << 10) /* buffers kept between appends, up to this size */

static void slots_reset(evs_sqlite *e)
{
    for (size_t i = 0; i < e->n_slots; i++) {
        inst_slot *sl = &e->slots[i];
        if (sl->cur.cap > SLOT_KEEP_BYTES) {
            kt_buf_fini(&sl->cur);
            kt_buf_init(&sl->cur, MERGE_MAX_BYTES);
        }
        kt_buf_reset(&sl->cur);
    }
    e->n_slots = 0;
    kt_map_fini(&e->slot_map);
    kt_map_init(&e->slot_map);
}

/* Read the latest row of sl's instance into sl->cur (nothing when there is none). */
static kt_status slot_load(evs_sqlite *e, inst_slot *sl, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_LATEST_GET);
    sqlite3_bind_text(s, 1, sl->iface, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, sl->instance, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return KT_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return sql_err(e, rc, err, "read latest");
    }
    const void *d = sqlite3_column_blob(s, 11);
    int n = sqlite3_column_bytes(s, 11);
    kt_status st = kt_buf_append(&sl->cur, d != NULL ? d : "", n > 0 ? (size_t)n : 0);
    sqlite3_reset(s);
    if (st != KT_OK) {
        return kt_err_set(err, st, "latest of %s/%s: %s", sl->iface, sl->instance,
                          kt_status_str(st));
    }
    sl->have = true;
    return KT_OK;
}

/* The slot of ev's (iface, instance), created (and loaded when merging) on first use. */
static kt_status slot_for(evs_sqlite *e, const hub_evstore_event *ev, inst_slot **out, kt_err *err)
{
    size_t first = (size_t)(uintptr_t)kt_map_get(&e->slot_map, ev->instance);
    for (size_t i = first; i != 0; i = e->slots[i - 1].next) {
        inst_slot *sl = &e->slots[i - 1];
        if (strcmp(sl->iface, ev->iface) == 0) {
            *out = sl;
            return KT_OK;
        }
    }
    if (e->n_slots == e->cap_slots) {
        size_t cap = e->cap_slots != 0 ? 2 * e->cap_slots : 256;
        e->slots = kt_xrealloc(e->slots, cap * sizeof(*e->slots));
        for (size_t i = e->cap_slots; i < cap; i++) {
            memset(&e->slots[i], 0, sizeof(e->slots[i]));
            kt_buf_init(&e->slots[i].cur, MERGE_MAX_BYTES);
        }
        e->cap_slots = cap;
    }
    size_t idx = e->n_slots++;
    inst_slot *sl = &e->slots[idx];
    sl->iface = ev->iface;
    sl->instance = ev->instance;
    sl->next = first;
    sl->have = false;
    sl->dirty = false;
    sl->last = NULL;
    sl->rid = 0;
    kt_buf_reset(&sl->cur);
    kt_map_set(&e->slot_map, ev->instance, (void *)(uintptr_t)(idx + 1));
    *out = sl;
    if (e->merge != NULL) {
        return slot_load(e, sl, err);
    }
    return KT_OK;
}

/*
 * Merge ev's data over sl's latest state into e->merged; *use_merged tells
 * (false: ev's data is stored as it is).
 */
static kt_status merge_latest(
    evs_sqlite *e, const inst_slot *sl, const hub_evstore_event *ev, bool *use_merged, kt_err *err)
{
    *use_merged = false;
    if (e->merge == NULL || !sl->have) {
        return KT_OK;
    }
    kt_buf_reset(&e->merged);
    kt_err merr = { 0 };
    kt_status st = e->merge(&e->merged, (const uint8_t *)sl->cur.data, sl->cur.len,
                            ev->data != NULL ? ev->data : (const uint8_t *)"", ev->data_len, &merr,
                            e->merge_user);
    if (st == KT_OK) {
        *use_merged = true;
        return KT_OK;
    }
    if (st == KT_EINVAL) {
        /* either side is not a JSON object: the new data replaces (KTWIN keeps the new event) */
        return KT_OK;
    }
    return kt_err_set(err, st, "merge %s/%s: %s", ev->iface, ev->instance, merr.msg);
}

/* sl's state becomes what was stored for ev (the merged document in e->merged, or ev's data). */
static kt_status slot_advance(evs_sqlite *e,
                              inst_slot *sl,
                              const hub_evstore_event *ev,
                              bool use_merged,
                              sqlite3_int64 rid,
                              kt_err *err)
{
    if (use_merged) {
        kt_buf tmp = sl->cur; /* swap: no copy of the merged document */
        sl->cur = e->merged;
        e->merged = tmp;
    } else {
        kt_buf_reset(&sl->cur);
        kt_status st =
            kt_buf_append(&sl->cur, ev->data != NULL ? (const void *)ev->data : "", ev->data_len);
        if (st != KT_OK) {
            return kt_err_set(err, st, "latest of %s/%s: %s", ev->iface, ev->instance,
                              kt_status_str(st));
        }
    }
    sl->have = true;
    sl->dirty = true;
    sl->last = ev;
    sl->rid = rid;
    return KT_OK;
}

/* Write the latest row of every instance this append wrote. */
static kt_status slots_flush(evs_sqlite *e, const char *site, uint64_t now_ms, kt_err *err)
{
    for (size_t i = 0; i < e->n_slots; i++) {
        const inst_slot *sl = &e->slots[i];
        if (!sl->dirty) {
            continue;
        }
        const hub_evstore_event *ev = sl->last;
        sqlite3_stmt *s = stmt(e, S_LATEST_PUT);
        sqlite3_bind_int64(s, 1, sl->rid);
        bind_event_cols(s, 2, ev, ev->time_ms != 0 ? ev->time_ms : now_ms, now_ms, site,
                        (const uint8_t *)sl->cur.data, sl->cur.len);
        kt_status st = step_done(e, s, err, "latest");
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

static kt_status
dedupe_get(evs_sqlite *e, const char *site, const char *inc, uint64_t *out, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_DEDUPE_GET);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, inc, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *out = 0;
    if (rc == SQLITE_ROW) {
        *out = u64col(s, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return sql_err(e, rc, err, "read dedupe");
    }
    return KT_OK;
}

static kt_status append_body(evs_sqlite *e,
                             const char *site,
                             const char *incarnation,
                             const hub_evstore_event *evs,
                             size_t n,
                             hub_evstore_append_result *res,
                             kt_err *err)
{
    uint64_t hi = 0;
    if (site != NULL) {
        kt_status st = dedupe_get(e, site, incarnation, &hi, err);
        if (st != KT_OK) {
            return st;
        }
    }
    uint64_t now_ms = kt_clock_wall_ms();
    uint64_t new_hi = hi;
    for (size_t i = 0; i < n; i++) {
        const hub_evstore_event *ev = &evs[i];
        if (site != NULL && ev->seq <= hi) {
            res->n_duplicates++;
            continue;
        }
        inst_slot *sl = NULL;
        kt_status st = slot_for(e, ev, &sl, err);
        if (st != KT_OK) {
            return st;
        }
        bool use_merged = false;
        st = merge_latest(e, sl, ev, &use_merged, err);
        if (st != KT_OK) {
            return st;
        }
        const uint8_t *data = use_merged ? (const uint8_t *)e->merged.data : ev->data;
        size_t len = use_merged ? e->merged.len : ev->data_len;
        sqlite3_int64 rid = 0;
        st = write_event(e, ev, site, data, len, now_ms, &rid, err);
        if (st == KT_OK) {
            st = slot_advance(e, sl, ev, use_merged, rid, err);
        }
        if (st != KT_OK) {
            return st;
        }
        res->n_committed++;
        if (site != NULL) {
            new_hi = ev->seq;
        }
    }
    kt_status fst = slots_flush(e, site, now_ms, err);
    if (fst != KT_OK) {
        return fst;
    }
    if (site != NULL) {
        if (new_hi != hi) {
            sqlite3_stmt *s = stmt(e, S_DEDUPE_PUT);
            sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, incarnation, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, i64(new_hi));
            sqlite3_bind_int64(s, 4, i64(now_ms));
            kt_status st = step_done(e, s, err, "write dedupe");
            if (st != KT_OK) {
                return st;
            }
        }
        res->acked_seq = new_hi;
    }
    return KT_OK;
}

static kt_status s_append(void *impl,
                          const char *site,
                          const char *incarnation,
                          const hub_evstore_event *evs,
                          size_t n,
                          hub_evstore_append_result *res,
                          kt_err *err)
{
    evs_sqlite *e = impl;
    kt_status st = step_done(e, stmt(e, S_SP), err, "savepoint");
    if (st != KT_OK) {
        return st;
    }
    hub_evstore_stats before = e->stats;
    bool dirty_before = e->stats_dirty;
    st = append_body(e, site, incarnation, evs, n, res, err);
    slots_reset(e);
    if (st != KT_OK) {
        kt_err ignore = { 0 };
        (void)step_done(e, stmt(e, S_SP_ROLLBACK), &ignore, "rollback to savepoint");
        (void)step_done(e, stmt(e, S_SP_RELEASE), &ignore, "release savepoint");
        e->stats = before;
        e->stats_dirty = dirty_before;
        memset(res, 0, sizeof(*res));
        return st;
    }
    return step_done(e, stmt(e, S_SP_RELEASE), err, "release savepoint");
}

static kt_status
s_mark(void *impl, const char *site, const char *incarnation, uint64_t seq, kt_err *err)
{
    evs_sqlite *e = impl;
    uint64_t hi = 0;
    kt_status st = dedupe_get(e, site, incarnation, &hi, err);
    if (st != KT_OK || seq <= hi) {
        return st;
    }
    sqlite3_stmt *s = stmt(e, S_DEDUPE_PUT);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, incarnation, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, i64(seq));
    sqlite3_bind_int64(s, 4, i64(kt_clock_wall_ms()));
    return step_done(e, s, err, "write dedupe");
}

static kt_status s_savepoint(void *impl, kt_err *err)
{
    evs_sqlite *e = impl;
    kt_status st = step_done(e, stmt(e, S_BSP), err, "savepoint");
    if (st == KT_OK) {
        e->stats_at_sp = e->stats;
        e->dirty_at_sp = e->stats_dirty;
    }
    return st;
}

static kt_status s_release(void *impl, bool keep, kt_err *err)
{
    evs_sqlite *e = impl;
    if (!keep) {
        kt_status st = step_done(e, stmt(e, S_BSP_ROLLBACK), err, "rollback to savepoint");
        if (st != KT_OK) {
            return st;
        }
        e->stats = e->stats_at_sp;
        e->stats_dirty = e->dirty_at_sp;
    }
    return step_done(e, stmt(e, S_BSP_RELEASE), err, "release savepoint");
}

static kt_status
s_acked_seq(void *impl, const char *site, const char *inc, uint64_t *out, kt_err *err)
{
    return dedupe_get(impl, site, inc, out, err);
}

/* ------------------------------------------------------------ reads */

static kt_status s_latest(void *impl,
                          const char *iface,
                          const char *instance,
                          hub_evstore_event_cb cb,
                          void *user,
                          kt_err *err)
{
    evs_sqlite *e = impl;
    sqlite3_stmt *s = stmt(e, S_LATEST_GET);
    sqlite3_bind_text(s, 1, iface, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, instance, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return kt_err_set(err, KT_ENOTFOUND, "no events for %s/%s", iface, instance);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return sql_err(e, rc, err, "read latest");
    }
    hub_evstore_event ev;
    read_event(s, &ev);
    (void)cb(&ev, user);
    sqlite3_reset(s);
    return KT_OK;
}

static kt_status s_query(void *impl,
                         const hub_evstore_filter *q,
                         hub_evstore_event_cb cb,
                         void *user,
                         hub_evstore_page *page,
                         kt_err *err)
{
    evs_sqlite *e = impl;
    bool inst = q->iface != NULL;
    int which =
        inst ? (q->desc ? S_Q_INST_DESC : S_Q_INST_ASC) : (q->desc ? S_Q_ALL_DESC : S_Q_ALL_ASC);
    uint64_t lo = q->from_ms;
    uint64_t hi = q->to_ms != 0 ? q->to_ms : (uint64_t)INT64_MAX;
    bool have_cursor = q->after_rowid != 0;
    uint64_t ct = q->after_time_ms;
    uint64_t cr = q->after_rowid;
    if (!q->desc) {
        if (have_cursor && ct > lo) {
            lo = ct;
        }
        if (!have_cursor) {
            ct = 0;
            cr = 0;
        }
    } else {
        if (have_cursor && ct < (uint64_t)INT64_MAX && ct + 1 < hi) {
            hi = ct + 1;
        }
        if (!have_cursor) {
            ct = (uint64_t)INT64_MAX;
            cr = (uint64_t)INT64_MAX;
        }
    }
    sqlite3_stmt *s = stmt(e, which);
    if (inst) {
        sqlite3_bind_text(s, 1, q->iface, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, q->instance, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 8, inst_key(q->iface, q->instance));
    }
    sqlite3_bind_int64(s, 3, i64(lo));
    sqlite3_bind_int64(s, 4, i64(hi));
    sqlite3_bind_int64(s, 5, i64(ct));
    sqlite3_bind_int64(s, 6, i64(cr));
    sqlite3_bind_int64(s, 7, (sqlite3_int64)q->limit + 1);
    int rc;
    bool stopped = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (page->n == q->limit) {
            page->more = true;
            break;
        }
        hub_evstore_event ev;
        read_event(s, &ev);
        page->n++;
        page->next_time_ms = ev.time_ms;
        page->next_rowid = ev.rowid;
        if (cb(&ev, user) != 0) {
            stopped = true;
            break;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return sql_err(e, rc, err, "query events");
    }
    if (stopped) {
        page->more = true; /* the caller stopped early: it may continue from the cursor */
    }
    return KT_OK;
}

/* ------------------------------------------------------------ retention */

static kt_status s_retain(void *impl,
                          uint64_t older_than_ms,
                          uint64_t max_bytes,
                          size_t max_rows,
                          size_t *deleted_out,
                          bool *more_out,
                          kt_err *err)
{
    evs_sqlite *e = impl;
    kt_status st = s_begin(e, err);
    if (st != KT_OK) {
        return st;
    }
    sqlite3_stmt *s = stmt(e, S_RET_SCAN);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)max_rows + 1);
    uint64_t bytes = e->stats.bytes;
    uint64_t last_rid = 0;
    uint64_t freed = 0;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t size = u64col(s, 1);
        uint64_t stored = u64col(s, 2);
        bool old = older_than_ms != 0 && stored < older_than_ms;
        bool big = max_bytes != 0 && bytes > max_bytes;
        if (!old && !big) {
            break;
        }
        if (n == max_rows) {
            *more_out = true;
            break;
        }
        last_rid = u64col(s, 0);
        bytes -= size < bytes ? size : bytes;
        freed += size;
        n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st = sql_err(e, rc, err, "retention scan");
        s_rollback(e);
        return st;
    }
    if (n == 0) {
        s_rollback(e);
        return KT_OK;
    }
    s = stmt(e, S_RET_DEL);
    sqlite3_bind_int64(s, 1, i64(last_rid));
    st = step_done(e, s, err, "retention delete");
    if (st == KT_OK) {
        e->stats.rows -= n < e->stats.rows ? n : e->stats.rows;
        e->stats.bytes -= freed < e->stats.bytes ? freed : e->stats.bytes;
        e->stats_dirty = true;
        st = s_commit(e, err);
    }
    if (st != KT_OK) {
        *more_out = false;
        s_rollback(e);
        return st;
    }
    *deleted_out = n;
    return KT_OK;
}

static void s_stats(void *impl, hub_evstore_stats *out)
{
    evs_sqlite *e = impl;
    *out = e->stats;
}

/* ------------------------------------------------------------ downstream */

static kt_status
dseq_get(evs_sqlite *e, const char *site, uint64_t *last, uint64_t *count, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_DSEQ_GET);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *last = 0;
    *count = 0;
    if (rc == SQLITE_ROW) {
        *last = u64col(s, 0);
        *count = u64col(s, 1);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return sql_err(e, rc, err, "read down_seq");
    }
    return KT_OK;
}

static kt_status
dseq_put(evs_sqlite *e, const char *site, uint64_t last, uint64_t count, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_DSEQ_PUT);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(last));
    sqlite3_bind_int64(s, 3, i64(count));
    return step_done(e, s, err, "write down_seq");
}

static kt_status s_down_push(
    void *impl, const char *site, const hub_evstore_event *ev, uint64_t *seq_out, kt_err *err)
{
    evs_sqlite *e = impl;
    uint64_t last = 0;
    uint64_t count = 0;
    kt_status st = dseq_get(e, site, &last, &count, err);
    if (st != KT_OK) {
        return st;
    }
    if (count >= e->down_cap) {
        return kt_err_set(err, KT_EAGAIN,
                          "downstream queue of site %s is full (%" PRIu64 " events)", site, count);
    }
    uint64_t now_ms = kt_clock_wall_ms();
    sqlite3_stmt *s = stmt(e, S_DOWN_INS);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(last + 1));
    sqlite3_bind_text(s, 3, ev->iface, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, ev->instance, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, ev->source, -1, SQLITE_STATIC);
    bind_text_opt(s, 8, ev->subject);
    bind_text_opt(s, 9, ev->datacontenttype);
    sqlite3_bind_int64(s, 10, i64(ev->time_ms != 0 ? ev->time_ms : now_ms));
    sqlite3_bind_int64(s, 11, i64(now_ms));
    bind_blob(s, 12, ev->data, ev->data_len);
    if (ev->depth != 0) {
        sqlite3_bind_int64(s, 13, (sqlite3_int64)ev->depth);
    } else {
        sqlite3_bind_null(s, 13);
    }
    st = step_done(e, s, err, "queue downstream");
    if (st != KT_OK) {
        return st;
    }
    st = dseq_put(e, site, last + 1, count + 1, err);
    if (st == KT_OK) {
        *seq_out = last + 1;
    }
    return st;
}

static kt_status s_down_read(void *impl,
                             const char *site,
                             uint64_t after_seq,
                             size_t max_n,
                             hub_evstore_event_cb cb,
                             void *user,
                             kt_err *err)
{
    evs_sqlite *e = impl;
    sqlite3_stmt *s = stmt(e, S_DOWN_READ);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(after_seq));
    sqlite3_bind_int64(s, 3, max_n > (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)max_n);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        hub_evstore_event ev;
        read_event(s, &ev); /* column 0 is the seq here */
        ev.seq = ev.rowid;
        ev.rowid = 0;
        ev.depth = (uint32_t)sqlite3_column_int64(s, 12);
        if (cb(&ev, user) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return sql_err(e, rc, err, "read downstream");
    }
    return KT_OK;
}

static kt_status s_down_ack(void *impl, const char *site, uint64_t seq, kt_err *err)
{
    evs_sqlite *e = impl;
    uint64_t last = 0;
    uint64_t count = 0;
    kt_status st = dseq_get(e, site, &last, &count, err);
    if (st != KT_OK || count == 0) {
        return st;
    }
    sqlite3_stmt *s = stmt(e, S_DOWN_DEL);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(seq));
    st = step_done(e, s, err, "ack downstream");
    if (st != KT_OK) {
        return st;
    }
    uint64_t gone = (uint64_t)sqlite3_changes(e->db);
    if (gone == 0) {
        return KT_OK;
    }
    return dseq_put(e, site, last, gone < count ? count - gone : 0, err);
}

static uint64_t s_down_count(void *impl, const char *site)
{
    evs_sqlite *e = impl;
    uint64_t last = 0;
    uint64_t count = 0;
    kt_err err = { 0 };
    if (dseq_get(e, site, &last, &count, &err) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "EVSTORE-READ-FAIL", "what=down_count err=\"%s\"", err.msg);
        return 0;
    }
    return count;
}

static kt_status shift_queue(evs_sqlite *e, const char *site, int64_t delta, kt_err *err)
{
    sqlite3_stmt *s = stmt(e, S_DOWN_SHIFT);
    sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, delta);
    kt_status st = step_done(e, s, err, "rebase downstream");
    if (st == KT_OK) {
        s = stmt(e, S_DOWN_UNNEG);
        sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
        st = step_done(e, s, err, "rebase downstream");
    }
    return st;
}

static kt_status s_down_rebase(void *impl, const char *site, uint64_t agent_acked, kt_err *err)
{
    evs_sqlite *e = impl;
    uint64_t last = 0;
    uint64_t count = 0;
    kt_status st = dseq_get(e, site, &last, &count, err);
    if (st != KT_OK) {
        return st;
    }
    uint64_t first = last + 1;
    if (count > 0) {
        sqlite3_stmt *s = stmt(e, S_DOWN_FIRST);
        sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            first = u64col(s, 0);
            rc = SQLITE_DONE;
        }
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) {
            return sql_err(e, rc, err, "read downstream");
        }
    }
    /* normal: the queue continues at or before agent_acked + 1 and the agent is not ahead */
    if (agent_acked + 1 >= first && agent_acked <= last) {
        return KT_OK;
    }
    int64_t delta = (int64_t)(agent_acked + 1) - (int64_t)first;
    if (count > 0) {
        st = shift_queue(e, site, delta, err);
        if (st != KT_OK) {
            return st;
        }
    }
    KT_LOG(KT_LOG_WARN, "EVSTORE-DOWN-REBASE",
           "site=%s agent_acked=%" PRIu64 " store_first=%" PRIu64 " store_last=%" PRIu64
           " queued=%" PRIu64 " msg=\"downstream seqs renumbered: one side's store is new\"",
           site, agent_acked, first, last, count);
    return dseq_put(e, site, (uint64_t)((int64_t)last + delta), count, err);
}

/* ------------------------------------------------------------ open/close */

static void ckpt_stop(evs_sqlite *e)
{
    if (!e->ck.started) {
        return;
    }
    uv_mutex_lock(&e->ck.mu);
    e->ck.stop = true;
    uv_cond_signal(&e->ck.cv);
    uv_mutex_unlock(&e->ck.mu);
    uv_thread_join(&e->ck.th);
    uv_cond_destroy(&e->ck.cv);
    uv_mutex_destroy(&e->ck.mu);
    e->ck.started = false;
}

static void s_free(void *impl)
{
    evs_sqlite *e = impl;
    ckpt_stop(e);
    kt_free(e->ck.path);
    for (int i = 0; i < S__COUNT; i++) {
        sqlite3_finalize(e->st[i]);
    }
    if (e->db != NULL) {
        int rc = sqlite3_close(e->db);
        if (rc != SQLITE_OK) {
            KT_LOG(KT_LOG_ERR, "EVSTORE-CLOSE", "rc=%d err=\"%s\"", rc, sqlite3_errstr(rc));
        }
    }
    kt_buf_fini(&e->merged);
    for (size_t i = 0; i < e->cap_slots; i++) {
        kt_buf_fini(&e->slots[i].cur);
    }
    kt_free(e->slots);
    kt_map_fini(&e->slot_map);
    kt_free(e);
}

static const hub_evstore_vtable sqlite_vt = {
    .name = "sqlite",
    .free = s_free,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .append = s_append,
    .mark = s_mark,
    .savepoint = s_savepoint,
    .release = s_release,
    .acked_seq = s_acked_seq,
    .latest = s_latest,
    .query = s_query,
    .retain = s_retain,
    .stats = s_stats,
    .down_push = s_down_push,
    .down_read = s_down_read,
    .down_ack = s_down_ack,
    .down_count = s_down_count,
    .down_rebase = s_down_rebase,
};

static kt_status exec_sql(evs_sqlite *e, const char *sql, kt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(e->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kt_status st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "event store: %s",
                                      msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return KT_OK;
}

static kt_status read_int(evs_sqlite *e, const char *sql, uint64_t *out, kt_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(e->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(e, rc, err, sql);
    }
    rc = sqlite3_step(s);
    *out = 0;
    if (rc == SQLITE_ROW) {
        *out = u64col(s, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        return sql_err(e, rc, err, sql);
    }
    return KT_OK;
}

/* SQL function kt_ikey(iface, instance): inst_key() for the version-1 migration. */
static void sql_ikey(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *iface = sqlite3_value_text(argv[0]);
    const unsigned char *instance = sqlite3_value_text(argv[1]);
    sqlite3_result_int64(ctx, inst_key(iface != NULL ? (const char *)iface : "",
                                       instance != NULL ? (const char *)instance : ""));
}

/* Version 1 -> 2, inside open's transaction: add and fill ikey, drop events_inst. */
static kt_status migrate_v1(evs_sqlite *e, kt_err *err)
{
    int rc = sqlite3_create_function(e->db, "kt_ikey", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                     sql_ikey, NULL, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(e, rc, err, "kt_ikey");
    }
    uint64_t t0 = kt_clock_mono_ms();
    kt_status st = exec_sql(e,
                            "ALTER TABLE events ADD COLUMN ikey INTEGER NOT NULL DEFAULT 0;"
                            "UPDATE events SET ikey = kt_ikey(iface, instance);",
                            err);
    sqlite3_int64 rows = sqlite3_changes64(e->db);
    if (st == KT_OK) {
        st = exec_sql(e, "DROP INDEX IF EXISTS events_inst;", err);
    }
    (void)sqlite3_create_function(e->db, "kt_ikey", 2, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    if (st == KT_OK) {
        KT_LOG(KT_LOG_NOTICE, "EVSTORE-MIGRATE", "from=1 to=2 rows=%lld ms=%" PRIu64,
               (long long)rows, kt_clock_mono_ms() - t0);
    }
    return st;
}

/*
 * Version 2 -> 3, inside open's transaction, after the schema: the down table
 * gets its depth column (an event's loop depth, sync.proto Event.depth).
 * Version 2 kept the depth of a cloud service's queued event ('#'-prefixed
 * queues of hub/events.c; '#' is never in a site name) in the instance
 * column: it moves to depth, and instance takes the event's source again.
 * A no-op when the column exists.
 */
static kt_status migrate_v2(evs_sqlite *e, kt_err *err)
{
    uint64_t have = 0;
    kt_status st = read_int(
        e, "SELECT count(*) FROM pragma_table_info('down') WHERE name = 'depth'", &have, err);
    if (st != KT_OK || have != 0) {
        return st;
    }
    st = exec_sql(e,
                  "ALTER TABLE down ADD COLUMN depth INTEGER;"
                  "UPDATE down SET depth = CAST(instance AS INTEGER), instance = source "
                  "WHERE substr(site, 1, 1) = '#';",
                  err);
    if (st == KT_OK) {
        KT_LOG(KT_LOG_NOTICE, "EVSTORE-MIGRATE", "from=2 to=3 queued=%lld",
               (long long)sqlite3_changes64(e->db));
    }
    return st;
}

static kt_status open_db(evs_sqlite *e, const char *path, kt_err *err)
{
    int rc = sqlite3_open_v2(
        path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "event store %s: %s", path,
                              e->db != NULL ? sqlite3_errmsg(e->db) : sqlite3_errstr(rc));
    }
    kt_status st =
        exec_sql(e,
                 "PRAGMA page_size=" PAGE_SIZE_NEW "; "
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                 "PRAGMA foreign_keys=OFF; PRAGMA busy_timeout=0; "
                 /* 3 b-trees per event: keep them cached; checkpoint (fsync)
                    every 4096 pages of WAL (16 MiB of 4 KiB pages, 32 of 8 KiB), not 1000: fewer,
                    cheaper commits; 64 MiB made rare checkpoints stall the loop for 150-300 ms */
                 "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=4096;",
                 err);
    if (st != KT_OK) {
        return st;
    }
    uint64_t version = 0;
    st = read_int(e, "PRAGMA user_version", &version, err);
    if (st == KT_OK) {
        st = read_int(e, "PRAGMA page_size", &e->page_bytes, err);
    }
    if (st != KT_OK) {
        return st;
    }
    if (version > SCHEMA_VERSION) {
        return kt_err_set(err, KT_EIO,
                          "event store %s: schema version %" PRIu64 " is newer than %d", path,
                          version, SCHEMA_VERSION);
    }
    st = exec_sql(e, "BEGIN IMMEDIATE", err);
    if (st == KT_OK && version == 1) {
        st = migrate_v1(e, err);
    }
    if (st == KT_OK) {
        st = exec_sql(e, schema_sql, err);
    }
    if (st == KT_OK) {
        st = migrate_v2(e, err);
    }
    if (st == KT_OK) {
        char sql[48];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        st = exec_sql(e, sql, err);
    }
    if (st == KT_OK) {
        st = exec_sql(e, "COMMIT", err);
    } else {
        kt_err ignore = { 0 };
        (void)exec_sql(e, "ROLLBACK", &ignore);
    }
    if (st != KT_OK) {
        return st;
    }
    for (int i = 0; i < S__COUNT; i++) {
        rc = sqlite3_prepare_v3(e->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i], NULL);
        if (rc != SQLITE_OK) {
            return sql_err(e, rc, err, stmt_sql[i]);
        }
    }
    st = read_int(e, "SELECT value FROM meta WHERE key = 'rows'", &e->stats.rows, err);
    if (st == KT_OK) {
        st = read_int(e, "SELECT value FROM meta WHERE key = 'bytes'", &e->stats.bytes, err);
    }
    return st;
}

/* ------------------------------------------------------------ checkpointer */

/* Checkpointer thread: PASSIVE checkpoints on its own connection when woken. */
static void ckpt_main(void *arg)
{
    evs_sqlite *e = arg;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(e->ck.path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        KT_LOG(KT_LOG_WARN, "EVSTORE-CKPT-OPEN", "path=%s err=\"%s\" msg=\"checkpoints inline\"",
               e->ck.path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        db = NULL;
    } else {
        /* a first read opens the connection's WAL (a checkpoint before it is a no-op) */
        (void)sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL);
    }
    uv_mutex_lock(&e->ck.mu);
    for (;;) {
        while (!e->ck.want && !e->ck.stop) {
            uv_cond_wait(&e->ck.cv, &e->ck.mu);
        }
        if (e->ck.stop) {
            break;
        }
        e->ck.want = false;
        uv_mutex_unlock(&e->ck.mu);
        if (db != NULL) {
            int log_pages = 0;
            int done_pages = 0;
            rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_pages,
                                           &done_pages);
            if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
                KT_LOG(KT_LOG_WARN, "EVSTORE-CKPT-FAIL", "rc=%d err=\"%s\"", rc,
                       sqlite3_errmsg(db));
            }
        }
        uv_mutex_lock(&e->ck.mu);
    }
    uv_mutex_unlock(&e->ck.mu);
    sqlite3_close(db);
}

/* WAL hook of the loop's connection, after each commit (loop thread). */
static int wal_hook(void *user, sqlite3 *db, const char *name, int n_pages)
{
    evs_sqlite *e = user;
    uint64_t bytes = (uint64_t)n_pages * e->page_bytes;
    if (bytes >= CKPT_INLINE_BYTES) {
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (bytes >= CKPT_KICK_BYTES) {
        uv_mutex_lock(&e->ck.mu);
        e->ck.want = true;
        uv_cond_signal(&e->ck.cv);
        uv_mutex_unlock(&e->ck.mu);
    }
    return SQLITE_OK;
}

/* Start the checkpointer; on any failure keep SQLite's inline autocheckpoint. */
static void ckpt_start(evs_sqlite *e, const char *path)
{
    if (sqlite3_threadsafe() == 0 || strcmp(path, ":memory:") == 0) {
        return;
    }
    e->ck.path = kt_xstrdup(path);
    if (uv_mutex_init(&e->ck.mu) != 0) {
        return;
    }
    if (uv_cond_init(&e->ck.cv) != 0) {
        uv_mutex_destroy(&e->ck.mu);
        return;
    }
    if (uv_thread_create(&e->ck.th, ckpt_main, e) != 0) {
        uv_cond_destroy(&e->ck.cv);
        uv_mutex_destroy(&e->ck.mu);
        KT_LOG(KT_LOG_WARN, "EVSTORE-CKPT-THREAD", "msg=\"no checkpointer thread: inline\"");
        return;
    }
    e->ck.started = true;
    kt_err ignore = { 0 };
    if (exec_sql(e, "PRAGMA wal_autocheckpoint=0", &ignore) != KT_OK) {
        return;
    }
    sqlite3_wal_hook(e->db, wal_hook, e);
}

kt_status
hub_evstore_sqlite_open(hub_evstore **out, const hub_evstore_sqlite_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts == NULL || opts->path == NULL || opts->path[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "event store: no path");
    }
    evs_sqlite *e = kt_xcalloc(1, sizeof(*e));
    e->merge = opts->merge;
    e->merge_user = opts->merge_user;
    e->down_cap = opts->down_max_per_site != 0 ? opts->down_max_per_site : DOWN_DEFAULT_CAP;
    kt_buf_init(&e->merged, MERGE_MAX_BYTES);
    kt_map_init(&e->slot_map);
    kt_status st = open_db(e, opts->path, err);
    if (st != KT_OK) {
        s_free(e);
        return st;
    }
    ckpt_start(e, opts->path);
    *out = hub_evstore_wrap(&sqlite_vt, e);
    return KT_OK;
}
