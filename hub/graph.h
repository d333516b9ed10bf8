/*
 * hub/graph.h — the hub's authoritative twin graph: objects, revision,
 * change log, resolved model, apply/delete and change notification.
 *
 * The graph holds every stored object (TwinInterface, TwinInstance,
 * PlacementPolicy) as a canonical compact JSON document (model_node_to_json
 * of the parsed document), keyed by (kind, name), each with the revision
 * that last changed it. The durable copy lives in SQLite through hub_store
 * (tables objects, meta, changes); the in-memory copy is the working set,
 * so applies never re-read the database.
 *
 * Apply = parse the incoming documents, build the candidate graph (stored
 * objects with the incoming ones replacing the same (kind, name)), validate
 * all of it (model_load_buffer + model_resolve, every diagnostic kept). Any
 * error: nothing changes and the result carries every error. Otherwise one
 * SQLite transaction writes the changed objects, revision + 1 and one change
 * log row per changed object; then the new model replaces the old one and
 * every subscriber is called. Objects whose canonical body did not change
 * are reported "unchanged" and bump nothing; an apply where nothing changed
 * does not bump the revision and notifies nobody.
 *
 * Invariants: the revision in memory equals meta.revision in SQLite; the
 * model always resolves without error; every object in memory is in SQLite
 * with the same body and rev.
 *
 * Thread: loop only (all functions), including the subscriber callbacks.
 * Ownership: the graph borrows its hub_store (which must outlive it) and
 * owns the objects, the model and the subscriber list.
 */
#ifndef KT_HUB_GRAPH_H
#define KT_HUB_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "hub/store.h"
#include "kt/err.h"
#include "model/diag.h"
#include "model/model.h"

typedef struct hub_graph hub_graph;

/* Same values as proto Kind (ktwin.v1.Kind). */
typedef enum hub_kind {
    HUB_KIND_INTERFACE = 1,
    HUB_KIND_INSTANCE = 2,
    HUB_KIND_POLICY = 3
} hub_kind;
#define HUB_KIND_MIN 1
#define HUB_KIND_MAX 3

/* "TwinInterface", "TwinInstance", "PlacementPolicy"; NULL when unknown. */
const char *hub_kind_name(hub_kind kind);
/* "twininterfaces", "twininstances", "placementpolicies" (URL path); NULL when unknown. */
const char *hub_kind_plural(hub_kind kind);
/* Kind from the document kind ("TwinInstance") or the plural; 0 when unknown. */
hub_kind hub_kind_parse(const char *s);

/* One changed object in a notification. name is borrowed for the callback only. */
typedef struct hub_change {
    hub_kind kind;
    const char *name;
    int deleted;
} hub_change;

/*
 * Called on the loop after each committed change, after the new model is in
 * place (hub_graph_model() returns the new one). changes lists every object
 * that changed in this revision, sorted by (kind, name). The callback must
 * not apply or delete on the graph.
 */
typedef void (*hub_graph_changed_cb)(
    hub_graph *g, uint64_t revision, const hub_change *changes, size_t n_changes, void *user);

/* What happened to one object of an apply or delete. */
typedef enum hub_op {
    HUB_OP_UNCHANGED = 0,
    HUB_OP_CREATED = 1,
    HUB_OP_CONFIGURED = 2,
    HUB_OP_DELETED = 3
} hub_op;
/* "unchanged", "created", "configured", "deleted". */
const char *hub_op_name(hub_op op);

typedef struct hub_applied {
    hub_kind kind;
    char *name; /* owned by the result */
    hub_op op;
} hub_applied;

/*
 * Result of hub_graph_apply / hub_graph_delete. Caller storage:
 * hub_apply_result_init before, hub_apply_result_fini after (always).
 * On KT_EINVAL diag holds every error (and warning); items is empty.
 */
typedef struct hub_apply_result {
    uint64_t revision;  /* graph revision after the call (unchanged when nothing changed) */
    hub_applied *items; /* in input order (apply) */
    size_t n_items;
    model_diag diag;
    /* Where the time went (ms): parse + validate, SQLite transaction, subscribers. */
    double validate_ms;
    double commit_ms;
    double notify_ms;
} hub_apply_result;

void hub_apply_result_init(hub_apply_result *r);
void hub_apply_result_fini(hub_apply_result *r);

/* One input buffer of an apply batch. name names the buffer in error marks ("request", a path). */
typedef struct hub_apply_input {
    const char *name;
    const char *buf;
    size_t len;
} hub_apply_input;

typedef struct hub_apply_opts {
    const char *source; /* stored with each written object: "api" (default when NULL), "watchdir" */
    /*
     * When set, every stored object whose source equals `source` and that
     * is not in the batch is deleted in the same transaction (watch-dir
     * reconcile).
     */
    int prune_source;
} hub_apply_opts;

/* ---- lifecycle ------------------------------------------------------------ */

/*
 * Load every object from the store and build the resolved model.
 * KT_EDEP (sqlite) on database errors; KT_EINVAL when the stored graph does
 * not validate (err names the first error; should never happen). *out is
 * owned by the caller: hub_graph_free.
 */
kt_status hub_graph_new(hub_graph **out, hub_store *store, kt_err *err);
void hub_graph_free(hub_graph *g);

/* Add a subscriber (any number; called in subscription order). */
void hub_graph_subscribe(hub_graph *g, hub_graph_changed_cb cb, void *user);
/* Remove the subscriber with this cb and user (no-op when absent). Not from inside a callback. */
void hub_graph_unsubscribe(hub_graph *g, hub_graph_changed_cb cb, void *user);

/* ---- reading -------------------------------------------------------------- */

/*
 * The current resolved model (never NULL). Borrowed: valid until the
 * notification of the next change has returned (the old model is freed
 * after every subscriber of that change has been called).
 */
const model *hub_graph_model(const hub_graph *g);
uint64_t hub_graph_revision(const hub_graph *g);
/*
 * Candidate models built so far: reuse_out counts the ones that copied the
 * unchanged instances from the current model (only instances changed),
 * full_out the ones parsed from every stored body. Either may be NULL.
 */
void hub_graph_builds(const hub_graph *g, uint64_t *reuse_out, uint64_t *full_out);
/* Number of objects of a kind (0 = all kinds). */
size_t hub_graph_count(const hub_graph *g, hub_kind kind);

/*
 * The stored compact JSON document of (kind, name), borrowed until the next
 * change of the graph; NULL if absent. len_out and rev_out may be NULL.
 */
const char *hub_graph_body(
    const hub_graph *g, hub_kind kind, const char *name, size_t *len_out, uint64_t *rev_out);

/*
 * KTWIN's whole-graph JSON ({"twinInstances":[...]}, model_graph_to_json)
 * of the current model, built once per revision and cached. Borrowed until
 * the next change; NULL only when out of memory (logged).
 */
const char *hub_graph_json(hub_graph *g, size_t *len_out);

typedef struct hub_object_view {
    hub_kind kind;
    const char *name;
    const char *body; /* compact JSON, NUL-terminated */
    size_t len;
    uint64_t rev; /* revision that last changed it */
    const char *source;
} hub_object_view;

/* Return 0 to go on, non-zero to stop (hub_graph_foreach returns that value). */
typedef int (*hub_graph_object_cb)(const hub_object_view *obj, void *user);

/*
 * Visit every object of `kind` (0 = all kinds), ordered by kind value then
 * name (bytewise). The graph must not change during the walk.
 */
int hub_graph_foreach(const hub_graph *g, hub_kind kind, hub_graph_object_cb cb, void *user);

/* One change log row. */
typedef struct hub_change_row {
    uint64_t rev;
    hub_kind kind;
    const char *name; /* borrowed for the callback */
    int deleted;
} hub_change_row;
typedef int (*hub_change_row_cb)(const hub_change_row *row, void *user);

/*
 * Visit the change log rows with rev > since_rev in (rev, kind, name)
 * order (from SQLite). KT_ENOTFOUND when the log no longer reaches back to
 * since_rev + 1 (then a snapshot is needed); KT_EDEP on database errors.
 */
kt_status hub_graph_changes_since(
    const hub_graph *g, uint64_t since_rev, hub_change_row_cb cb, void *user, kt_err *err);

/* ---- changing --------------------------------------------------------------- */

/*
 * Apply a batch of inputs (each multi-document YAML or JSON) atomically.
 * opts may be NULL (source "api", no prune).
 *   KT_OK      applied (or everything unchanged); out->items lists each object.
 *   KT_EINVAL  validation failed; out->diag holds every error; nothing changed.
 *   KT_EDEP    SQLite failed; the transaction was rolled back, nothing changed.
 * out must be initialised (hub_apply_result_init).
 */
kt_status hub_graph_apply_batch(hub_graph *g,
                                const hub_apply_input *inputs,
                                size_t n_inputs,
                                const hub_apply_opts *opts,
                                hub_apply_result *out,
                                kt_err *err);

/* One buffer, source "api": hub_graph_apply_batch with one input named src_name. */
kt_status hub_graph_apply(hub_graph *g,
                          const char *src_name,
                          const char *buf,
                          size_t len,
                          hub_apply_result *out,
                          kt_err *err);

/*
 * Delete one object after validating the graph without it.
 *   KT_OK        deleted; out->revision is the new revision.
 *   KT_ENOTFOUND no such object.
 *   KT_EINVAL    the rest of the graph would break (out->diag lists why).
 *   KT_EDEP      SQLite failed; nothing changed.
 */
kt_status
hub_graph_delete(hub_graph *g, hub_kind kind, const char *name, hub_apply_result *out, kt_err *err);

#endif
