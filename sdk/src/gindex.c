/*
 * sdk/src/gindex.c — KTWIN's twin-graph JSON as a resolved model (see
 * gindex.h for the design).
 *
 * Invariants: the returned model has every interface named in the graph
 * defined (bare), model_resolve has run, so model_iface_get(m, x)->instances
 * and model_instance_get(m, x)->in are filled.
 *
 * Thread: any, one caller per model. Ownership: see gindex.h.
 */
#include "gindex.h"

#include <stdio.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/map.h"
#include "model/diag.h"
#include "model/graph.h"

/* Append a bare TwinInterface document for name (single-quoted YAML scalar). */
static kt_status add_bare_iface(kt_buf *docs, kt_map *seen, const char *name)
{
    const char *p;
    kt_status st;
    if (name == NULL || model_name_check(name) != NULL || kt_map_get(seen, name) != NULL) {
        return KT_OK;
    }
    kt_map_set(seen, name, (void *)name);
    st = kt_buf_puts(docs,
                     "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: '");
    for (p = name; st == KT_OK && *p != '\0'; p++) {
        st = *p == '\'' ? kt_buf_puts(docs, "''") : kt_buf_putc(docs, *p);
    }
    if (st == KT_OK) {
        st = kt_buf_puts(docs, "'\nspec: {}\n");
    }
    return st;
}

/* The first error entry of d as "path: msg" into err. */
static kt_status diag_to_err(const model_diag *d, const char *source, kt_err *err)
{
    size_t i;
    for (i = 0; i < d->n; i++) {
        const model_diag_entry *e = &d->entries[i];
        if (e->severity == MODEL_DIAG_ERROR) {
            return kt_err_set(err, KT_EINVAL, "%s: %s%s%s", source, e->path != NULL ? e->path : "",
                              e->path != NULL && e->path[0] != '\0' ? ": " : "",
                              e->msg != NULL ? e->msg : "invalid");
        }
    }
    return kt_err_set(err, KT_EINVAL, "%s: not KTWIN twin-graph JSON", source);
}

kt_status
ktwin_gindex_build(model **out, const char *source, const char *json, size_t len, kt_err *err)
{
    model *m = NULL;
    model_diag diag;
    kt_buf docs;
    kt_map seen;
    kt_status st;
    size_t i;
    uint32_t r;
    *out = NULL;
    if (source == NULL) {
        source = "twin-graph";
    }
    if (len > KTWIN_GINDEX_MAX_BYTES) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes over the %u cap", source, len,
                          (unsigned)KTWIN_GINDEX_MAX_BYTES);
    }
    model_diag_init(&diag);
    diag.max = 16;
    kt_buf_init(&docs, 16u * 1024u * 1024u);
    kt_map_init(&seen);
    m = model_new();
    st = model_graph_from_json(m, source, json != NULL ? json : "", json != NULL ? len : 0, &diag,
                               err);
    if (st != KT_OK) {
        goto fail;
    }
    if (diag.n_errors > 0) {
        st = diag_to_err(&diag, source, err);
        goto fail;
    }
    for (i = 0; i < model_n_instances(m) && st == KT_OK; i++) {
        const model_instance *inst = model_instance_at(m, i);
        st = add_bare_iface(&docs, &seen, inst->iface_name);
        for (r = 0; r < inst->n_rels && st == KT_OK; r++) {
            st = add_bare_iface(&docs, &seen, inst->rels[r].iface);
        }
    }
    if (st != KT_OK) {
        st = kt_err_set(err, st, "%s: interface list over the buffer cap", source);
        goto fail;
    }
    if (docs.len > 0) {
        st = model_load_buffer(m, "twin-graph-interfaces", (const char *)docs.data, docs.len, &diag,
                               err);
        if (st != KT_OK) {
            goto fail;
        }
    }
    /* cross-reference findings are expected for a bare graph (see gindex.h) */
    (void)model_resolve(m, &diag);
    *out = m;
    m = NULL;
    st = KT_OK;
fail:
    model_free(m);
    kt_map_fini(&seen);
    kt_buf_fini(&docs);
    model_diag_fini(&diag);
    return st;
}
