/*
 * model/emit.h — write documents as YAML (and JSON) text.
 *
 * The converters (DTDL import, graph import, the city model generator) build
 * a cJSON tree per CRD document and emit it here, so quoting rules live in
 * one place: strings that YAML would read as another type ("true", "1.5",
 * "null", "~", "") or that contain YAML indicators are double-quoted.
 *
 * Thread: any (no shared state).
 */
#ifndef KT_MODEL_EMIT_H
#define KT_MODEL_EMIT_H

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/err.h"

/* Append doc as one YAML document starting with "---\n". */
kt_status model_emit_yaml_doc(const cJSON *doc, kt_buf *out);
/* Append s as a YAML scalar (quoted when needed). */
kt_status model_emit_yaml_scalar(const char *s, kt_buf *out);
/* Append doc as compact JSON followed by "\n". */
kt_status model_emit_json_doc(const cJSON *doc, kt_buf *out);

#endif
