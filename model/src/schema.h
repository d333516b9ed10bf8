/*
 * schema.h — validate a document tree against a CRD's openAPIV3Schema.
 *
 * The subset Kubernetes structural schemas use: type, properties,
 * required, items, additionalProperties, enum, anyOf, nullable, format
 * (int32/int64 ranges), minimum/maximum, min/maxItems, min/maxLength,
 * x-kubernetes-int-or-string and x-kubernetes-preserve-unknown-fields.
 * `pattern` is not checked (RE2 syntax; noted in docs/config.md).
 * An object schema without properties, additionalProperties or
 * preserve-unknown-fields accepts no fields: the API server would prune
 * them silently, so they are reported as unknown.
 *
 * Every problem goes to diag with the value's mark and field path.
 */
#ifndef KT_MODEL_SCHEMA_H
#define KT_MODEL_SCHEMA_H

#include "model/diag.h"
#include "model/node.h"

/* path: the path of value ("" for a document root). skip: a top-level key not to check. */
void model_schema__validate(const model_node *schema,
                            const model_node *value,
                            const char *path,
                            const char *skip_root_key,
                            model_diag *diag);

#endif
