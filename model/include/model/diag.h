/*
 * model/diag.h — validation diagnostics: every error, not only the first.
 *
 * Each entry names where (file:line:col), what (the field path, such as
 * spec.relationships[2].interface), a stable code (the error class, for
 * tests and tools) and a one-line message. Printing gives
 *
 *   city.yaml:14:7: spec.relationships[2].interface: relationship-target-unknown: ...
 *
 * A cap bounds memory on hostile input; entries past it are counted only.
 *
 * Thread: one owner.
 */
#ifndef KT_MODEL_DIAG_H
#define KT_MODEL_DIAG_H

#include <stddef.h>
#include <stdio.h>

#include "model/node.h"

typedef enum model_diag_severity { MODEL_DIAG_ERROR = 0, MODEL_DIAG_WARNING = 1 } model_diag_severity;

typedef struct model_diag_entry {
    model_diag_severity severity;
    char *file; /* owned copies */
    unsigned line, col;
    char *path;       /* field path, may be "" */
    const char *code; /* static string: the error class */
    char *msg;
} model_diag_entry;

typedef struct model_diag {
    model_diag_entry *entries;
    size_t n;
    size_t cap;
    size_t max;        /* keep at most this many (default 10,000) */
    size_t n_errors;   /* including the ones past max */
    size_t n_warnings; /* including the ones past max */
} model_diag;

void model_diag_init(model_diag *d);
void model_diag_fini(model_diag *d);
/* mark may be NULL (no position known); path may be NULL. */
void model_diag_add(model_diag *d,
                    model_diag_severity sev,
                    const model_mark *mark,
                    const char *path,
                    const char *code,
                    const char *fmt,
                    ...) __attribute__((format(printf, 6, 7)));
#define model_diag_error(d, mark, path, code, ...)                                               \
    model_diag_add((d), MODEL_DIAG_ERROR, (mark), (path), (code), __VA_ARGS__)
#define model_diag_warn(d, mark, path, code, ...)                                                \
    model_diag_add((d), MODEL_DIAG_WARNING, (mark), (path), (code), __VA_ARGS__)
/* One line per entry, then nothing else. */
void model_diag_print(const model_diag *d, FILE *out);
/* Number of entries with this code (tests). */
size_t model_diag_count(const model_diag *d, const char *code);

#endif
