/*
 * diag.c — collected validation diagnostics. See model/diag.h.
 */
#include "model/diag.h"

#include <stdarg.h>
#include <string.h>

#include "kt/mem.h"

#define DIAG_DEFAULT_MAX 10000

void model_diag_init(model_diag *d)
{
    memset(d, 0, sizeof *d);
    d->max = DIAG_DEFAULT_MAX;
}

void model_diag_fini(model_diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        kt_free(d->entries[i].file);
        kt_free(d->entries[i].path);
        kt_free(d->entries[i].msg);
    }
    kt_free(d->entries);
    memset(d, 0, sizeof *d);
}

void model_diag_add(model_diag *d,
                    model_diag_severity sev,
                    const model_mark *mark,
                    const char *path,
                    const char *code,
                    const char *fmt,
                    ...)
{
    if (sev == MODEL_DIAG_ERROR) {
        d->n_errors++;
    } else {
        d->n_warnings++;
    }
    size_t max = d->max != 0 ? d->max : DIAG_DEFAULT_MAX;
    if (d->n >= max) {
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap == 0 ? 16 : d->cap * 2;
        d->entries = kt_xrealloc(d->entries, d->cap * sizeof *d->entries);
    }
    model_diag_entry *e = &d->entries[d->n++];
    memset(e, 0, sizeof *e);
    e->severity = sev;
    e->file = kt_xstrdup(mark != NULL && mark->file != NULL ? mark->file : "-");
    e->line = mark != NULL ? mark->line : 0;
    e->col = mark != NULL ? mark->col : 0;
    e->path = kt_xstrdup(path != NULL ? path : "");
    e->code = code;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->msg = kt_xstrdup(msg);
}

void model_diag_print(const model_diag *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const model_diag_entry *e = &d->entries[i];
        fprintf(out, "%s:%u:%u: %s%s%s%s: %s\n", e->file, e->line, e->col,
                e->severity == MODEL_DIAG_WARNING ? "warning: " : "", e->path,
                e->path[0] != '\0' ? ": " : "", e->code, e->msg);
    }
    size_t shown = d->n;
    size_t total = d->n_errors + d->n_warnings;
    if (total > shown) {
        fprintf(out, "... and %zu more\n", total - shown);
    }
}

size_t model_diag_count(const model_diag *d, const char *code)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->entries[i].code, code) == 0) {
            n++;
        }
    }
    return n;
}
