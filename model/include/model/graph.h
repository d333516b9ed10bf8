/*
 * model/graph.h — the twin graph: subgraphs and KTWIN's graph JSON.
 *
 * The graph is the instance side of a model (model/model.h): each instance
 * has its outgoing relationships (inst->rels) and, after model_resolve, its
 * incoming ones (inst->in); each interface lists its instances. This module
 * adds subgraph extraction and the JSON shape of KTWIN's graph cache
 * (KTWIN.md §3):
 *
 *   {"twinInstances":[{"name":..,"interface":..,
 *     "relationships":[{"name":..,"interface":..,"instance":..}]}]}
 *
 * Thread: one owner (the model's).
 */
#ifndef KT_MODEL_GRAPH_H
#define KT_MODEL_GRAPH_H

#include <stddef.h>

#include "kt/buf.h"
#include "kt/map.h"
#include "kt/err.h"
#include "model/model.h"

/* A set of instances, in a stable order (the order they were added). */
typedef struct model_instance_set {
    model_instance **items;
    size_t n;
    size_t cap;
    kt_map _seen;
} model_instance_set;

void model_instance_set_init(model_instance_set *s);
void model_instance_set_fini(model_instance_set *s);
/* Returns 1 when added, 0 when already present. */
int model_instance_set_add(model_instance_set *s, model_instance *inst);
int model_instance_set_has(const model_instance_set *s, const model_instance *inst);

/*
 * The subgraph of seeds plus everything within depth hops of them, following
 * relationships both ways (outgoing and incoming). depth 1 gives the seeds'
 * 1-hop neighbours, which is what a site needs to resolve its relationships.
 * Output goes into out (initialised by the caller), seeds first.
 * Needs model_resolve() first.
 */
void model_subgraph(const model *m,
                    model_instance *const *seeds,
                    size_t n_seeds,
                    unsigned depth,
                    model_instance_set *out);

/*
 * Write the graph JSON of the given instances (all of the model's when
 * set is NULL). Relationships are written as declared, including ones whose
 * target is unknown. KT_ETOOBIG when out's cap is reached.
 */
kt_status model_graph_to_json(const model *m, const model_instance_set *set, kt_buf *out);
/*
 * Receives the graph JSON in consecutive pieces (at most 64 KiB each, borrowed for the
 * call); anything but KT_OK stops the writing and is returned by the writer.
 */
typedef kt_status (*model_json_sink_cb)(const char *data, size_t len, void *user);
/*
 * model_graph_to_json of all instances, into cb instead of a buffer: the document is never
 * whole in memory (the agent stores its ~3 MB graph JSON this way). Returns KT_OK or cb's
 * status.
 */
kt_status model_graph_to_json_sink(const model *m, model_json_sink_cb cb, void *user);
/* KTWIN's per-interface graph: only instances of iface, each with its own edges. */
kt_status model_graph_iface_to_json(const model *m, const char *iface, kt_buf *out);

/*
 * Read graph JSON (KTWIN's shape) and add its instances to m with
 * model_add_instance. Structural problems (not JSON, missing names, wrong
 * types) go to diag with JSON paths such as twinInstances[12].relationships[0];
 * call model_resolve afterwards for the cross-reference checks.
 */
kt_status model_graph_from_json(model *m,
                                const char *file,
                                const char *buf,
                                size_t len,
                                model_diag *diag,
                                kt_err *err);

#endif
