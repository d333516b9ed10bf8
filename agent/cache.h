/*
 * agent/cache.h — the agent's SQLite cache of its subgraph and placement.
 *
 * One SQLite file in WAL mode, one connection, used only on the loop thread.
 * Tables:
 *   objects(kind, name, body, rev)   the CRD documents of the site's subgraph,
 *                                    body = the hub's compact JSON document
 *   meta(key, value)                 graph_revision, placement_revision,
 *                                    incarnation, schema_version, created_ms
 *   placement(interface, where, site, rule, reason)
 *   rendered(name, revision, body)   documents rendered from the objects
 *                                    (the graph JSON), so a restart serves
 *                                    them without building a model first
 *
 * Invariants:
 * - A snapshot (begin, put..., commit) is ONE transaction that replaces every
 *   object and sets graph_revision; abort rolls it back, so the cache is
 *   never half-applied. A process killed mid-snapshot leaves the previous
 *   contents (SQLite's own atomic commit).
 * - A delta is applied atomically and sets graph_revision = to_revision; it
 *   is refused (KT_ECONFLICT, nothing changed) unless from_revision equals
 *   the cached revision.
 * - A placement update replaces the whole placement table atomically.
 * - Every commit that changes objects (snapshot, delta with objects) deletes
 *   every rendered row in the same transaction, and a rendered row is written
 *   only for the generation it was rendered from: a rendered row that exists
 *   was rendered from the committed objects. A row whose revision is not the
 *   graph revision (written by a binary without this rule) is ignored.
 * - The incarnation id is random, created with the cache file, and kept for
 *   the cache's lifetime (the event plane scopes outbox sequences with it); a
 *   rebuilt cache gets a new one.
 * - At open `PRAGMA quick_check` runs (on a read-only connection with the
 *   file memory-mapped: an I/O error while mapped is a SIGBUS, not an error
 *   code; the cache file belongs to this process alone). A corrupt file is moved aside
 *   (`<path>.corrupt-<unix ts>`, with its -wal and -shm), logged with id
 *   CACHE-CORRUPT and reported by agent_cache_moved_aside(); the cache then
 *   starts empty (revision 0) so the hub sends a snapshot. It is never used.
 *
 * Thread: loop thread only (not thread-safe).
 * Ownership: the cache owns its connection and statements; strings passed
 * to callbacks are borrowed for the duration of the call.
 */
#ifndef KT_AGENT_CACHE_H
#define KT_AGENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

typedef struct agent_cache agent_cache;

/* Kinds stored in objects.kind (the CRD kind names). */
#define AGENT_KIND_INTERFACE "TwinInterface"
#define AGENT_KIND_INSTANCE  "TwinInstance"
#define AGENT_KIND_POLICY    "PlacementPolicy"

/* One object of a snapshot or delta. Strings are borrowed. */
typedef struct agent_cache_object {
    const char *kind; /* AGENT_KIND_* */
    const char *name;
    const char *body; /* compact JSON document; ignored when deleted */
    size_t body_len;
    uint64_t revision; /* revision at which the hub last changed it */
    int deleted;       /* delta only: remove kind/name */
} agent_cache_object;

/* One interface's placement as this site sees it. Strings are borrowed; NULL = none. */
typedef struct agent_cache_placement {
    const char *interface;
    const char *where; /* "edge", "cloud", "pending", "other-site" */
    const char *site;
    const char *rule;
    const char *reason;
} agent_cache_placement;

/*
 * Open (or create) the cache at path: WAL, synchronous=NORMAL, schema
 * created if missing, quick_check run first (see the header comment for what
 * happens to a corrupt file). *out is the caller's (agent_cache_free).
 * Returns KT_OK; KT_EDEP (dep "sqlite") when the file cannot be opened or
 * created for a reason other than corruption (permissions, I/O); KT_EIO when
 * a corrupt file cannot be moved aside. Thread: loop.
 */
kt_status agent_cache_open(agent_cache **out, const char *path, kt_err *err);
/* Abort an open snapshot, close the connection, free. NULL is a no-op. Thread: loop. */
void agent_cache_free(agent_cache *c);

/* Where the corrupt file found at open was moved, or NULL when none was. Borrowed. */
const char *agent_cache_moved_aside(const agent_cache *c);
uint64_t agent_cache_graph_revision(const agent_cache *c);
uint64_t agent_cache_placement_revision(const agent_cache *c);
/* 32 hex characters. Borrowed. */
const char *agent_cache_incarnation(const agent_cache *c);
/* Number of cached objects of kind (AGENT_KIND_*), as of the last commit. */
uint64_t agent_cache_count(const agent_cache *c, const char *kind);
/* Non-zero while a snapshot transaction is open. */
int agent_cache_in_snapshot(const agent_cache *c);
/* Bumped by every commit that changes objects (snapshot or delta); starts at 1. */
uint64_t agent_cache_generation(const agent_cache *c);
/* Bumped by every placement commit; starts at 1. */
uint64_t agent_cache_placement_generation(const agent_cache *c);

/*
 * Snapshot: begin opens the transaction and deletes every object; put adds
 * one (the same kind/name twice: the later wins); commit sets graph_revision
 * to revision and commits. Any failure of put or commit leaves the
 * transaction open: the caller must call abort. begin while a snapshot is
 * open is KT_EINVAL. Returns KT_OK or KT_EDEP (sqlite). Thread: loop.
 */
kt_status agent_cache_snapshot_begin(agent_cache *c, uint64_t revision, kt_err *err);
kt_status agent_cache_snapshot_put(agent_cache *c, const agent_cache_object *obj, kt_err *err);
kt_status agent_cache_snapshot_commit(agent_cache *c, kt_err *err);
/* Roll back an open snapshot (no-op when none is open). Thread: loop. */
void agent_cache_snapshot_abort(agent_cache *c);

/*
 * Apply a delta in one transaction. Returns KT_OK; KT_ECONFLICT when
 * from_revision is not the cached revision (nothing applied: ask for a
 * snapshot); KT_EINVAL during a snapshot or when to_revision < from_revision;
 * KT_EDEP (sqlite, rolled back). Thread: loop.
 */
kt_status agent_cache_delta_apply(agent_cache *c,
                                  uint64_t from_revision,
                                  uint64_t to_revision,
                                  const agent_cache_object *objs,
                                  size_t n_objs,
                                  kt_err *err);

/*
 * Replace the whole placement with items[0..n) at revision, in one
 * transaction. KT_EINVAL during a snapshot; KT_EDEP (sqlite, rolled back).
 * Thread: loop.
 */
kt_status agent_cache_placement_apply(agent_cache *c,
                                      uint64_t revision,
                                      const agent_cache_placement *items,
                                      size_t n_items,
                                      kt_err *err);

/* Called once per object, in (kind, name) order; return non-zero to stop. */
typedef int (*agent_cache_object_cb)(const agent_cache_object *obj, void *user);
/* Called once per placement row, in interface order; return non-zero to stop. */
typedef int (*agent_cache_placement_cb)(const agent_cache_placement *p, void *user);

/*
 * Visit committed objects (kind NULL = all kinds). Must not be called while a
 * snapshot is open (it would see uncommitted rows): KT_EAGAIN then.
 * Returns KT_OK or KT_EDEP. Thread: loop.
 */
kt_status agent_cache_foreach_object(
    agent_cache *c, const char *kind, agent_cache_object_cb cb, void *user, kt_err *err);
/*
 * One slice of agent_cache_foreach_object: at most limit committed objects
 * after (after_kind, after_name) in (kind, name) order (after_kind NULL = from
 * the start). *n_seen = rows read (fewer than limit: the end was reached).
 * Slices read in separate transactions: a commit between two slices shows
 * as a new agent_cache_generation. KT_EAGAIN during a snapshot; KT_EDEP.
 * Thread: loop.
 */
kt_status agent_cache_foreach_object_after(agent_cache *c,
                                           const char *after_kind,
                                           const char *after_name,
                                           size_t limit,
                                           agent_cache_object_cb cb,
                                           void *user,
                                           size_t *n_seen,
                                           kt_err *err);

/*
 * Store a document rendered from the objects of cache generation
 * `generation` (agent_cache_generation when it was rendered) under name, in
 * its own transaction; data is copied. Returns KT_OK; KT_ECONFLICT when the
 * objects changed since (nothing stored); KT_EAGAIN during a snapshot;
 * KT_ETOOBIG over 2 GiB; KT_EDEP. Thread: loop.
 */
kt_status agent_cache_rendered_put(agent_cache *c,
                                   const char *name,
                                   uint64_t generation,
                                   const void *data,
                                   size_t len,
                                   kt_err *err);
/*
 * The same, written in pieces so that the document is never whole in memory: begin checks
 * as agent_cache_rendered_put does, opens a transaction and reserves len bytes under name;
 * write stores the next n bytes (KT_EINVAL past len: the writer then fails); end commits
 * when commit is true, no write failed and exactly len bytes were written (else rolls back:
 * KT_EINVAL for a short document) and frees w (NULL is a no-op). Nothing else may use the
 * cache between begin and end. Thread: loop.
 */
typedef struct agent_cache_rendered_writer agent_cache_rendered_writer;
kt_status agent_cache_rendered_begin(agent_cache_rendered_writer **out,
                                     agent_cache *c,
                                     const char *name,
                                     uint64_t generation,
                                     size_t len,
                                     kt_err *err);
kt_status
agent_cache_rendered_write(agent_cache_rendered_writer *w, const void *data, size_t n, kt_err *err);
kt_status agent_cache_rendered_end(agent_cache_rendered_writer *w, bool commit, kt_err *err);
/*
 * Append the rendered document name to out when it was rendered from the
 * committed objects (out NULL: only say whether there is one). Returns KT_OK; KT_ENOTFOUND when
 * there is none (never rendered, or dropped by a commit since); KT_EAGAIN during a snapshot;
 * KT_ETOOBIG when out cannot hold it; KT_EDEP. Thread: loop.
 */
kt_status agent_cache_rendered_get(agent_cache *c, const char *name, kt_buf *out, kt_err *err);

/* Visit placement rows; KT_OK or KT_EDEP. Thread: loop. */
kt_status
agent_cache_foreach_placement(agent_cache *c, agent_cache_placement_cb cb, void *user, kt_err *err);

#endif
