/*
 * hub/store.h — the hub's SQLite database: graph objects, revision and
 * change log (other modules, such as hub/fed.c, keep their own tables in
 * the same database through hub_store_db()).
 *
 * Schema (created when missing, version in PRAGMA user_version):
 *   objects(kind INTEGER, name TEXT, body TEXT, rev INTEGER, source TEXT,
 *           PRIMARY KEY(kind, name))
 *   meta(key TEXT PRIMARY KEY, value INTEGER)   -- 'revision', 'log_min_rev'
 *   changes(rev INTEGER, kind INTEGER, name TEXT, op INTEGER,
 *           PRIMARY KEY(rev, kind, name))       -- op: 0 upsert, 1 delete
 *
 * One connection, WAL, synchronous=NORMAL, foreign_keys off, busy_timeout 0
 * (nobody else writes). Writes happen only between hub_store_begin and
 * hub_store_commit/rollback.
 *
 * Thread: loop only. Ownership: the store owns the connection and its
 * prepared statements; hub_store_db() lends the connection.
 */
#ifndef KT_HUB_STORE_H
#define KT_HUB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"

typedef struct sqlite3 sqlite3;
typedef struct hub_store hub_store;

/*
 * Open (create) the database file at path and its schema.
 * KT_EDEP (dep "sqlite") when SQLite refuses; KT_EIO when the schema
 * version is newer than this binary knows.
 */
kt_status hub_store_open(hub_store **out, const char *path, kt_err *err);
/* Finalize statements and close. NULL is a no-op. */
void hub_store_free(hub_store *s);
/* The connection, borrowed (loop only; do not close it). */
sqlite3 *hub_store_db(hub_store *s);

/* The stored revision (0 for a new database). */
uint64_t hub_store_revision(const hub_store *s);

/* One stored object as read by hub_store_load; pointers valid during the callback only. */
typedef struct hub_store_object {
    int kind;
    const char *name;
    const char *body;
    size_t len;
    uint64_t rev;
    const char *source;
} hub_store_object;
typedef kt_status (*hub_store_object_cb)(const hub_store_object *obj, void *user);

/* Read every object ordered by (kind, name). Stops at the first non-OK from cb and returns it. */
kt_status hub_store_load(hub_store *s, hub_store_object_cb cb, void *user, kt_err *err);

/* ---- writing: begin, any number of put/del, set_revision, commit ------------ */

kt_status hub_store_begin(hub_store *s, kt_err *err);
kt_status hub_store_put(hub_store *s,
                        int kind,
                        const char *name,
                        const char *body,
                        size_t len,
                        uint64_t rev,
                        const char *source,
                        kt_err *err);
/* Delete the object and log it; also logs puts: see hub_store_log. */
kt_status hub_store_del(hub_store *s, int kind, const char *name, kt_err *err);
/* Append a change log row (deleted = 1 for a delete). */
kt_status
hub_store_log(hub_store *s, uint64_t rev, int kind, const char *name, int deleted, kt_err *err);
kt_status hub_store_set_revision(hub_store *s, uint64_t rev, kt_err *err);
kt_status hub_store_commit(hub_store *s, kt_err *err);
/* Never fails from the caller's point of view (errors are logged). */
void hub_store_rollback(hub_store *s);

/* Change log rows with rev > since, in order. Return non-zero from cb to stop. */
typedef int (*hub_store_change_cb)(
    uint64_t rev, int kind, const char *name, int deleted, void *user);
kt_status hub_store_changes_since(
    hub_store *s, uint64_t since, hub_store_change_cb cb, void *user, kt_err *err);
/* Lowest revision the change log still covers (rows with rev >= this exist for every change). */
uint64_t hub_store_log_min_rev(const hub_store *s);

#endif
