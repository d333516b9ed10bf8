/*
 * model/dtdl.h — DTDL v2 ontologies to TwinInterface CRD documents.
 *
 * Reads DTDL v2 JSON (a file holds one interface or an array of them),
 * resolves schemas (inline, or by @id from the interface's own `schemas`,
 * then from any loaded interface's), and converts each Interface to a
 * dtd.ktwin/v0 TwinInterface with KTWIN's naming rules (KTWIN.md §1.5):
 * lower case, ':' ';' '_' -> '-', '"' removed, so `city:Pole` -> `city-pole`.
 * A DTMI additionally loses its "dtmi:" prefix and ";<version>" suffix
 * first: `dtmi:com:example:Thermostat;1` -> `com-example-thermostat` (KTWIN
 * itself would give `dtmi-com-example-thermostat-1`; its ontology has no
 * DTMIs, and versions must not leak into MQTT topics and event types).
 *
 * Mapping:
 *  - Property/Telemetry/Command/Relationship -> spec.properties/telemetries/
 *    commands/relationships (omitted when empty); command names are
 *    lower-cased (KTWIN's SDK publishes ktwin.command.<iface>.<lower(cmd)>);
 *    relationship `target` -> `interface` (KTWIN name), `writable` ->
 *    `writeable`; a content @id -> `id` (KTWIN name).
 *  - `@type` arrays (semantic types) keep the content kind; the semantic
 *    types and `unit` are recorded in the member's comment as
 *    "semanticType: Temperature; unit: degreeCelsius", appended in
 *    parentheses when the member already has a comment.
 *  - displayName/description/comment: a string, or from a language map the
 *    "en" entry, else the first.
 *  - extends (string or array): the first parent goes to
 *    spec.extendsInterface; with two or more, all of them also go to the
 *    annotation ktwin.io/extends (comma-separated KTWIN names, first first).
 *  - Component: annotation ktwin.io/components (compact JSON list of
 *    {"name", "interface"}).
 *  - Schemas: primitives (and the geospatial point, lineString, ...) keep
 *    their DTDL name in primitiveType; Enum -> enumType (enumValue as a
 *    string); Object -> complexType Object; Array -> complexType Array with
 *    one field "elementSchema"; Map -> complexType Map with the fields
 *    <mapKey.name>: string and <mapValue.name>: value. Complex schemas nested
 *    inside a complexType field are written as a type expression in
 *    primitiveType (array<double>, map<string,integer>,
 *    object{a:string,b:integer}, enum<string>).
 *  - with_service: KTWIN's CLI default service (image
 *    ghcr.io/open-digital-twin/ktwin-<name>-service:0.1, autoscaling
 *    maxScale 20, target 10, parallelism 100, utilization 65, concurrency).
 *  - Anything unsupported is reported in diag, never dropped silently.
 *    Errors: JSON syntax, not an Interface, duplicate @id or KTWIN name,
 *    unknown content @type, unsupported schema kind, missing name/schema,
 *    inline interfaces (extends or component schema). Warnings (output
 *    still usable): parent, relationship target or component interface not
 *    loaded, relationship without target (no `interface`), schema reference
 *    not found (written as primitiveType string), primitive in the wrong
 *    case ("datetime" -> dateTime), unknown fields (ignored).
 *    Each entry names the file, line:col of the JSON value and the JSON path
 *    in the file (e.g. [2].contents[3].schema).
 *
 * Thread: one owner.
 */
#ifndef KT_MODEL_DTDL_H
#define KT_MODEL_DTDL_H

#include <stddef.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "model/diag.h"

typedef struct model_dtdl model_dtdl;

typedef struct model_dtdl_opts {
    const char *k8s_namespace; /* metadata.namespace; default "ktwin" */
    int with_service; /* 1: add KTWIN's default service (image, autoscaling) like its CLI */
} model_dtdl_opts;

model_dtdl *model_dtdl_new(const model_dtdl_opts *opts); /* opts may be NULL */
void model_dtdl_free(model_dtdl *d);

/*
 * Add DTDL JSON. name names the input in diagnostics and in per-file output
 * (copied). Problems in the content, including JSON syntax errors, go to
 * diag and the call still returns KT_OK. KT_ETOOBIG: buffer over 32 MiB.
 * add_path reads a file, or a directory recursively (*.json, name order);
 * KT_EIO when it cannot be read.
 */
kt_status model_dtdl_add_buffer(model_dtdl *d,
                                const char *name,
                                const char *buf,
                                size_t len,
                                model_diag *diag,
                                kt_err *err);
kt_status model_dtdl_add_path(model_dtdl *d, const char *path, model_diag *diag, kt_err *err);

/*
 * Convert everything added (again, if called twice); returns KT_OK when
 * diag got no new error, else KT_EINVAL. Interfaces with errors are still
 * converted as far as possible.
 */
kt_status model_dtdl_convert(model_dtdl *d, model_diag *diag);

size_t model_dtdl_count(const model_dtdl *d);
/* KTWIN name (e.g. "city-pole") and source file of the i-th interface. */
const char *model_dtdl_name(const model_dtdl *d, size_t i);
const char *model_dtdl_source(const model_dtdl *d, size_t i);
/* Append the i-th TwinInterface as a YAML document; KT_EINVAL before convert. */
kt_status model_dtdl_emit(const model_dtdl *d, size_t i, kt_buf *out);
/*
 * Write OUTDIR/<name>.yaml per interface, or with per_file one
 * OUTDIR/<source-file-stem>.yaml per input file (equal stems get -2, -3,
 * ...). OUTDIR is created when missing; files are replaced atomically.
 */
kt_status model_dtdl_write_dir(const model_dtdl *d, const char *outdir, int per_file, kt_err *err);

/*
 * KTWIN's id -> name rule (see above); writes into out (cap bytes,
 * truncated and always NUL-terminated when cap > 0) and returns out.
 */
const char *model_dtdl_name_from_id(const char *id, char *out, size_t cap);

#endif
