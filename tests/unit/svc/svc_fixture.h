/*
 * svc_fixture.h — shared pieces of the kt_svc tests: a small twin graph, an
 * in-memory event store implementing svc_store_ops with KTWIN's
 * upsert-merge (svc_merge_json), and a recorder of ingested events.
 *
 * Thread: the test's main (loop) thread only. Ownership: the fixture owns
 * every record and event it keeps; mem_store_fini releases them.
 */
#ifndef KT_TEST_SVC_FIXTURE_H
#define KT_TEST_SVC_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kt/mem.h"
#include "model/event.h"
#include "model/model.h"
#include "svc/merge.h"
#include "svc/store.h"

#define FX_IFACE(name, extra) \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec:\n" extra
#define FX_INSTANCE(name, iface, extra)                                           \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\nspec:\n  interface: " iface "\n" extra

/* hood-1 <-refNeighborhood- pole-1, pole-2 (no edges); one AQ observer pointing at pole-1. */
static const char fx_graph_yaml[] =
    FX_IFACE("hood", "  properties:\n  - name: aqiLevel\n    schema: {primitiveType: string}\n")
        FX_IFACE("city-pole", "  relationships:\n  - name: refNeighborhood\n    interface: hood\n")
            FX_IFACE("ngsi-ld-city-airqualityobserved",
                     "  relationships:\n  - name: refPole\n    interface: city-pole\n")
                FX_INSTANCE("hood-1", "hood", "")
                    FX_INSTANCE("pole-1",
                                "city-pole",
                                "  twinInstanceRelationships:\n"
                                "  - {name: refNeighborhood, interface: hood, instance: hood-1}\n")
                        FX_INSTANCE("pole-2", "city-pole", "") FX_INSTANCE(
                            "aq-1",
                            "ngsi-ld-city-airqualityobserved",
                            "  twinInstanceRelationships:\n"
                            "  - {name: refPole, interface: city-pole, instance: pole-1}\n");

static inline model *fx_model(void)
{
    model *m = model_new();
    model_diag diag;
    kt_err err = { 0 };
    model_diag_init(&diag);
    if (model_load_buffer(m, "fx.yaml", fx_graph_yaml, sizeof fx_graph_yaml - 1, &diag, &err) !=
            KT_OK ||
        model_resolve(m, &diag) != KT_OK) {
        fprintf(stderr, "fixture model: %s\n", err.msg);
        model_diag_fini(&diag);
        model_free(m);
        return NULL;
    }
    model_diag_fini(&diag);
    return m;
}

/* ------------------------------------------------------------ the store */

typedef struct fx_rec {
    char *iface, *instance, *id, *type, *source;
    uint64_t time_ms, rowid, stored_ms;
    char *data;
    size_t data_len;
} fx_rec;

typedef struct mem_store {
    fx_rec *recs;
    size_t n, cap;
    uint64_t next_rowid;
    size_t puts;
    kt_status fail_put; /* non-OK: put returns it (backpressure tests) */
} mem_store;

static inline void fx_view(const fx_rec *r, svc_record *v)
{
    memset(v, 0, sizeof(*v));
    v->iface = r->iface;
    v->instance = r->instance;
    v->id = r->id;
    v->type = r->type;
    v->source = r->source;
    v->time_ms = r->time_ms;
    v->data = (const uint8_t *)r->data;
    v->data_len = r->data_len;
    v->rowid = r->rowid;
    v->stored_ms = r->stored_ms;
}

static inline const fx_rec *
mem_store_latest_rec(const mem_store *s, const char *iface, const char *inst)
{
    size_t i;
    for (i = s->n; i > 0; i--) {
        const fx_rec *r = &s->recs[i - 1];
        if (strcmp(r->iface, iface) == 0 && strcmp(r->instance, inst) == 0) {
            return r;
        }
    }
    return NULL;
}

static inline kt_status mem_latest(
    void *user, const char *iface, const char *inst, svc_record_cb cb, void *cb_user, kt_err *err)
{
    const fx_rec *r = mem_store_latest_rec(user, iface, inst);
    svc_record v;
    (void)err;
    if (r == NULL) {
        return KT_ENOTFOUND;
    }
    fx_view(r, &v);
    cb(&v, cb_user);
    return KT_OK;
}

static inline kt_status mem_put(void *user, const svc_record *rec, kt_err *err)
{
    mem_store *s = user;
    const fx_rec *l = mem_store_latest_rec(s, rec->iface, rec->instance);
    kt_buf merged;
    kt_status st;
    fx_rec *r;
    size_t len = 0;
    if (s->fail_put != KT_OK) {
        return kt_err_set(err, s->fail_put, "store: failing on purpose");
    }
    kt_buf_init(&merged, 1u << 24);
    st = svc_merge_json(&merged, l != NULL ? (const uint8_t *)l->data : NULL,
                        l != NULL ? l->data_len : 0, rec->data, rec->data_len, err);
    if (st != KT_OK) {
        kt_buf_fini(&merged);
        return st;
    }
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 16 : s->cap * 2;
        s->recs = kt_xrealloc(s->recs, s->cap * sizeof(*s->recs));
    }
    r = &s->recs[s->n++];
    r->iface = kt_xstrdup(rec->iface);
    r->instance = kt_xstrdup(rec->instance);
    r->id = kt_xstrdup(rec->id);
    r->type = kt_xstrdup(rec->type);
    r->source = kt_xstrdup(rec->source);
    r->time_ms = rec->time_ms;
    r->rowid = ++s->next_rowid;
    r->stored_ms = 1700000000000ull + r->rowid;
    r->data = kt_buf_detach(&merged, &len);
    r->data_len = len;
    s->puts++;
    return KT_OK;
}

static inline bool fx_after(const fx_rec *r, uint64_t t, uint64_t row, bool desc)
{
    if (desc) {
        return r->time_ms < t || (r->time_ms == t && r->rowid < row);
    }
    return r->time_ms > t || (r->time_ms == t && r->rowid > row);
}

static inline kt_status mem_list(
    void *user, const svc_query *q, svc_record_cb cb, void *cb_user, svc_page *page, kt_err *err)
{
    mem_store *s = user;
    size_t *idx = kt_xmalloc((s->n + 1) * sizeof(size_t));
    size_t n = 0;
    size_t i;
    size_t j;
    (void)err;
    memset(page, 0, sizeof(*page));
    for (i = 0; i < s->n; i++) {
        const fx_rec *r = &s->recs[i];
        if ((q->iface != NULL && strcmp(r->iface, q->iface) != 0) ||
            (q->instance != NULL && strcmp(r->instance, q->instance) != 0) ||
            (q->from_ms != 0 && r->time_ms < q->from_ms) ||
            (q->to_ms != 0 && r->time_ms >= q->to_ms) ||
            (q->after_rowid != 0 && !fx_after(r, q->after_time_ms, q->after_rowid, q->desc))) {
            continue;
        }
        idx[n++] = i;
    }
    /* insertion sort by (time, rowid) */
    for (i = 1; i < n; i++) {
        for (j = i; j > 0; j--) {
            const fx_rec *a = &s->recs[idx[j - 1]];
            const fx_rec *b = &s->recs[idx[j]];
            bool swap = q->desc ? fx_after(b, a->time_ms, a->rowid, false)
                                : fx_after(a, b->time_ms, b->rowid, false);
            if (!swap) {
                break;
            }
            size_t t = idx[j - 1];
            idx[j - 1] = idx[j];
            idx[j] = t;
        }
    }
    for (i = 0; i < n && i < q->limit; i++) {
        svc_record v;
        fx_view(&s->recs[idx[i]], &v);
        cb(&v, cb_user);
        page->n++;
        page->next_time_ms = v.time_ms;
        page->next_rowid = v.rowid;
    }
    page->more = n > q->limit;
    kt_free(idx);
    return KT_OK;
}

static inline void mem_store_fini(mem_store *s)
{
    size_t i;
    for (i = 0; i < s->n; i++) {
        fx_rec *r = &s->recs[i];
        kt_free(r->iface);
        kt_free(r->instance);
        kt_free(r->id);
        kt_free(r->type);
        kt_free(r->source);
        kt_free(r->data);
    }
    kt_free(s->recs);
    memset(s, 0, sizeof(*s));
}

static inline svc_store_ops mem_store_ops(mem_store *s)
{
    svc_store_ops o = { mem_latest, mem_put, mem_list, s };
    return o;
}

/* --------------------------------------------------------- an event list */

typedef struct fx_events {
    model_event *ev[256];
    size_t n;
    kt_status answer; /* what the sink / ingest returns */
} fx_events;

static inline kt_status fx_events_add(fx_events *l, const model_event *ev)
{
    kt_err err = { 0 };
    if (l->answer != KT_OK) {
        return l->answer;
    }
    if (l->n == 256) {
        return KT_ETOOBIG;
    }
    return model_event_dup(&l->ev[l->n++], ev, &err);
}

static inline void fx_events_clear(fx_events *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        model_event_free(l->ev[i]);
    }
    l->n = 0;
}

/* The first event of class cls (and iface, when not NULL), or NULL. */
static inline const model_event *
fx_find(const fx_events *l, model_event_class cls, const char *iface)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        if (l->ev[i]->cls == cls && (iface == NULL || strcmp(l->ev[i]->iface, iface) == 0)) {
            return l->ev[i];
        }
    }
    return NULL;
}

#endif
