/*
 * sdk/src/gindex.h — libktwin's twin-graph index: KTWIN's twin-graph JSON
 * (KTWIN.md §3, as served by GET {KTWIN_GRAPH_URL}) turned into a resolved
 * model (model/model.h), so the plugin host (svc/plugin.h) answers
 * ktwin_graph_relationships (outgoing and incoming edges),
 * ktwin_graph_instances (by interface) and ktwin_graph_instance_iface
 * exactly as it does inside the agent and the hub.
 *
 * DESIGN. The JSON is parsed by model_graph_from_json (the one parser of
 * that shape). The graph names interfaces but does not define them, and
 * the model indexes instances per interface only for defined interfaces, so
 * a bare TwinInterface is added for each interface name the graph mentions
 * (instances' and relationships' ends); model_resolve then builds the
 * per-interface lists and the incoming edges. Its cross-reference findings
 * (relationships the bare interfaces do not declare, targets outside the
 * graph) are expected here and ignored; only structural problems of the
 * JSON are errors.
 *
 * Thread: any, one caller at a time per model. Ownership: the model
 * returned belongs to the caller (model_free).
 */
#ifndef KT_SDK_GINDEX_H
#define KT_SDK_GINDEX_H

#include <stddef.h>

#include "kt/err.h"
#include "model/model.h"

/* Longest graph document accepted (bytes). */
#define KTWIN_GINDEX_MAX_BYTES (64u * 1024u * 1024u)

/*
 * Index the twin-graph JSON json[0..len) ({"twinInstances":[...]}; "{}",
 * KTWIN's answer on a cache miss, is an empty graph). source names the
 * document in error messages (e.g. the URL).
 * Returns KT_OK with *out (model_free); KT_EINVAL when the text is not
 * KTWIN graph JSON (the message names the JSON path, e.g.
 * "twinInstances[3].name: ..."); KT_ETOOBIG over KTWIN_GINDEX_MAX_BYTES.
 * *out is NULL on failure.
 */
kt_status
ktwin_gindex_build(model **out, const char *source, const char *json, size_t len, kt_err *err);

#endif
