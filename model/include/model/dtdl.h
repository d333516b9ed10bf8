/*
 * model/dtdl.h — DTDL v2 ontologies to TwinInterface CRD documents.
 *
 * Reads DTDL v2 JSON (a file holds one interface or an array of them),
 * resolves schemas (inline, or by @id from an interface's `schemas`),
 * and converts each Interface to a dtd.ktwin/v0 TwinInterface with KTWIN's
 * naming rules (KTWIN.md §1.5): lower case, ':' ';' '_' -> '-', '"'
 * removed, so `city:Pole` -> `city-pole` and a `dtmi:` prefix and `;1`
 * version are handled the same way.
 *
 * Mapping (documented in docs/config.md):
 *  - Property/Telemetry/Command/Relationship -> spec.properties/telemetries/
 *    commands/relationships; command names are lower-cased (KTWIN's SDK
 *    publishes ktwin.command.<iface>.<lower(cmd)>).
 *  - `@type` arrays (semantic types) keep the content kind and record the
 *    semantic type and unit in the member's comment when the member has none.
 *  - extends (string or array): the first parent goes to
 *    spec.extendsInterface, all of them to the annotation ktwin.io/extends.
 *  - Component: annotation ktwin.io/components (JSON list of name/interface).
 *  - Schemas: primitives; Enum -> enumType; Object -> complexType Object;
 *    Array and Map -> complexType Array/Map; nested complex schemas inside a
 *    complexType field are written as a type expression in primitiveType
 *    (array<double>, map<string,integer>, object{a:string}, enum<string>).
 *  - Anything unsupported is reported in diag, never dropped silently.
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

/* Add DTDL JSON; problems go to diag (with file:line:col where known). */
kt_status model_dtdl_add_buffer(model_dtdl *d,
                                const char *name,
                                const char *buf,
                                size_t len,
                                model_diag *diag,
                                kt_err *err);
kt_status model_dtdl_add_path(model_dtdl *d, const char *path, model_diag *diag, kt_err *err);

/* Convert everything added; returns KT_OK when diag got no new error. */
kt_status model_dtdl_convert(model_dtdl *d, model_diag *diag);

size_t model_dtdl_count(const model_dtdl *d);
/* KTWIN name (e.g. "city-pole") and source file of the i-th interface. */
const char *model_dtdl_name(const model_dtdl *d, size_t i);
const char *model_dtdl_source(const model_dtdl *d, size_t i);
/* Append the i-th TwinInterface as a YAML document. */
kt_status model_dtdl_emit(const model_dtdl *d, size_t i, kt_buf *out);
/*
 * Write OUTDIR/<name>.yaml per interface, or with per_file one
 * OUTDIR/<source-file-stem>.yaml per input file.
 */
kt_status model_dtdl_write_dir(const model_dtdl *d, const char *outdir, int per_file, kt_err *err);

/* KTWIN's id -> name rule; writes into out (cap bytes) and returns out. */
const char *model_dtdl_name_from_id(const char *id, char *out, size_t cap);

#endif
