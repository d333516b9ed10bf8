/*
 * agent/view.h — the in-memory twin model built from the agent's cache, for
 * the local graph and placement API.
 *
 * The view loads every cached object body into a model (model_load_buffer +
 * model_resolve) and answers KTWIN's graph JSON from it. It is rebuilt
 * lazily: a commit bumps the cache's generation, and the next request
 * rebuilds, so a burst of deltas costs one rebuild, not one per delta. While
 * a snapshot transaction is open the cache must not be read (its rows are
 * uncommitted), so the view keeps serving the last committed model.
 *
 * A site's subgraph has relationships whose targets live outside it (the
 * 1-hop neighbours' own relationships); model_resolve reports those as
 * instance-target-unknown, which the view tolerates: such relationships are
 * written as declared. Other diagnostics are counted and logged once per
 * rebuild (VIEW-DIAG) but never hide the graph.
 *
 * The graph JSON is stored in the cache once rendered (see
 * agent_cache_rendered_put: dropped by the next commit that changes
 * objects) and served from there while it is valid, so a restarted agent
 * answers GET /api/v1/twin-graph from its cache before any model is built;
 * the model is then built in slices on the loop (agent_view_step).
 *
 * Thread: loop only. Ownership: the view owns its model; it borrows the
 * cache, which must outlive it.
 */
#ifndef KT_AGENT_VIEW_H
#define KT_AGENT_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "kt/buf.h"
#include "kt/err.h"
#include "model/model.h"

typedef struct agent_view agent_view;

/* A view over cache (borrowed). Builds nothing until the first refresh. */
agent_view *agent_view_new(agent_cache *cache);
void agent_view_free(agent_view *v);

/*
 * Rebuild the model if the cache changed since the last build (and no
 * snapshot is open). Returns KT_OK or a cache/model error (the previous
 * model stays in use then). Thread: loop.
 */
kt_status agent_view_refresh(agent_view *v, kt_err *err);

/*
 * One slice of a build that does not hold the loop: read at most
 * max_objects more cached objects and load them into a model under
 * construction; after the last one, resolve it and make it the view's model.
 * A commit between slices restarts the build from the new contents; during a
 * snapshot nothing is read. *done = 1 once the model reflects the cache (also
 * when it already did). A synchronous refresh overtakes a build in slices.
 * Returns KT_OK or a cache/model error (the build is dropped; the next call
 * starts again). Thread: loop.
 */
kt_status agent_view_step(agent_view *v, size_t max_objects, int *done, kt_err *err);

/* Non-zero when a model was built from the cache's current generation. */
int agent_view_current(const agent_view *v);

/*
 * Make sure the cache holds the graph JSON of its committed objects:
 * render and store it when it does not (building the model if needed),
 * straight into the cache in pieces (never whole in memory). Returns
 * KT_OK (also during a snapshot: nothing to do yet) or a cache/model
 * error. Thread: loop.
 */
kt_status agent_view_persist_graph(agent_view *v, kt_err *err);

/* Rebuilds so far (tests). */
uint64_t agent_view_builds(const agent_view *v);
/*
 * The current model, refreshed first (a failed refresh keeps the previous
 * one); NULL only when no model was ever built. Borrowed: valid until the
 * next refresh that rebuilds (see agent_view_builds). Used by the event
 * dispatcher (agent/dispatch.h). Thread: loop.
 */
const model *agent_view_model(agent_view *v);
/* Instances in the current model. */
size_t agent_view_n_instances(const agent_view *v);

/*
 * Append KTWIN's graph JSON of every cached instance to out: the stored
 * rendering when the cache holds a valid one, else rendered from the model
 * (refreshing first) and stored. Returns KT_OK or KT_ETOOBIG / a refresh
 * error. Thread: loop.
 */
kt_status agent_view_graph_json(agent_view *v, kt_buf *out, kt_err *err);

/*
 * Append the per-interface graph of iface. Returns KT_OK; KT_ENOTFOUND when
 * no cached instance has that interface (nothing appended: the API answers
 * 404 "Not Found" as KTWIN does). Thread: loop.
 */
kt_status agent_view_iface_json(agent_view *v, const char *iface, kt_buf *out, kt_err *err);

/*
 * Append this site's placement as JSON:
 *   {"site":S,"revision":N,"interfaces":[{"interface":I,"where":W,
 *    "site":S|null,"rule":R|null,"reason":T|null}]}
 * in interface order. Returns KT_OK or a cache / buffer error. Thread: loop.
 */
kt_status agent_view_placement_json(agent_view *v, const char *site, kt_buf *out, kt_err *err);

#endif
