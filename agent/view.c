/*
 * agent/view.c — lazily rebuilt in-memory model of the cached subgraph.
 *
 * Contracts: see view.h. The model is rebuilt from scratch (model has no
 * in-place edit), which for a site of ~12k instances is tens of
 * milliseconds; it happens only on a request after a commit, or in slices
 * (agent_view_step: a few hundred objects per loop turn, read by key range
 * and loaded with model_load_buffer, resolved once at the end) at start.
 *
 * DESIGN: the graph JSON, KTWIN's largest answer (~3 MB for a 20-neighborhood
 * site), is stored in the cache once rendered (agent_cache_rendered_put, or
 * by agent_view_persist_graph rendered twice, once to count its bytes and
 * once straight into the cache's blob, so that it is never whole in memory),
 * keyed to the cache generation it came from; the cache drops it in the same
 * transaction as any commit that changes objects. A stored one is served as
 * is, so a restarted agent answers from its cache before any model exists.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "view"
#include "view.h"

#include <string.h>

#include "kt/clock.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/diag.h"
#include "model/graph.h"
#include "model/model.h"

/* Cap on the concatenated bodies: far above any site (a 20-neighborhood site is ~6 MiB). */
#define VIEW_MAX_BYTES ((size_t)1 << 30)

/* Objects per slice of a synchronous refresh (agent_view_refresh). */
#define VIEW_REFRESH_SLICE 1024

/* Name of the graph JSON in the cache's rendered table. */
#define VIEW_GRAPH_DOC "twin-graph"

struct agent_view {
    agent_cache *cache;
    model *m;           /* NULL before the first build */
    uint64_t built_gen; /* cache generation the model reflects; 0 = never built */
    uint64_t builds;
    /* A build in slices (agent_view_step): the model so far and where it stopped. */
    model *part;
    model_diag part_diag;
    uint64_t part_gen;
    uint64_t part_t0;
    size_t part_objects;
    char *part_kind, *part_name; /* last object read; NULL = none yet */
    kt_buf *slice;               /* bodies of the slice being read */
};

agent_view *agent_view_new(agent_cache *cache)
{
    agent_view *v = kt_xcalloc(1, sizeof *v);
    v->cache = cache;
    return v;
}

static void part_drop(agent_view *v)
{
    if (v->part == NULL) {
        return;
    }
    model_free(v->part);
    model_diag_fini(&v->part_diag);
    v->part = NULL;
    kt_free(v->part_kind);
    kt_free(v->part_name);
    v->part_kind = v->part_name = NULL;
}

void agent_view_free(agent_view *v)
{
    if (v == NULL) {
        return;
    }
    part_drop(v);
    model_free(v->m);
    kt_free(v);
}

uint64_t agent_view_builds(const agent_view *v)
{
    return v->builds;
}

int agent_view_current(const agent_view *v)
{
    return v->m != NULL && v->built_gen == agent_cache_generation(v->cache);
}

const model *agent_view_model(agent_view *v)
{
    kt_err err = { 0 };
    (void)agent_view_refresh(v, &err); /* on failure the previous model stays */
    return v->m;
}

size_t agent_view_n_instances(const agent_view *v)
{
    return v->m != NULL ? model_n_instances(v->m) : 0;
}

static int collect_body(const agent_cache_object *o, void *user)
{
    kt_buf *b = user;
    if (kt_buf_append(b, o->body, o->body_len) != KT_OK || kt_buf_putc(b, '\n') != KT_OK) {
        return 1;
    }
    return 0;
}

/* Resolve m (loaded from generation gen) and make it the view's model; takes m and d. */
static void install(agent_view *v, model *m, model_diag *d, uint64_t gen, uint64_t t0)
{
    model_resolve(m, d);
    size_t outside = model_diag_count(d, "instance-target-unknown");
    size_t other = d->n_errors > outside ? d->n_errors - outside : 0;
    if (other > 0) {
        const model_diag_entry *first = NULL;
        for (size_t i = 0; i < d->n; i++) {
            if (d->entries[i].severity == MODEL_DIAG_ERROR &&
                strcmp(d->entries[i].code, "instance-target-unknown") != 0) {
                first = &d->entries[i];
                break;
            }
        }
        char q[300];
        KT_LOG(KT_LOG_WARN, "VIEW-DIAG", "errors=%zu first_code=%s first=%s", other,
               first != NULL ? first->code : "-",
               kt_log_quote(q, sizeof q, first != NULL ? first->msg : ""));
    }
    model_diag_fini(d);
    model_free(v->m);
    v->m = m;
    v->built_gen = gen;
    v->builds++;
    KT_LOG(KT_LOG_DEBUG, "VIEW-BUILD", "objects=%llu instances=%zu outside_targets=%zu ms=%.3f",
           (unsigned long long)agent_cache_count(v->cache, NULL), model_n_instances(m), outside,
           (double)(kt_clock_mono_ns() - t0) / 1e6);
}

kt_status agent_view_refresh(agent_view *v, kt_err *err)
{
    uint64_t gen = agent_cache_generation(v->cache);
    if (v->m != NULL && v->built_gen == gen) {
        return KT_OK;
    }
    if (agent_cache_in_snapshot(v->cache)) {
        if (v->m != NULL) {
            return KT_OK; /* keep serving the last committed model */
        }
        /* Nothing built yet and a snapshot is open: an empty model until it commits. */
        v->m = model_new();
        model_diag d;
        model_diag_init(&d);
        model_resolve(v->m, &d);
        model_diag_fini(&d);
        return KT_OK;
    }
    /* In slices, as at start: the bodies of one slice at a time (~0.5 MB) instead of all of
     * them (~6 MB for a 20-neighborhood site, in a buffer doubled to 8 MB) next to the model
     * being built; that buffer was the agent's peak heap after a snapshot. A build in slices
     * already under way for this generation is continued, one for an older one restarted. */
    int done = 0;
    while (!done) {
        kt_status st = agent_view_step(v, VIEW_REFRESH_SLICE, &done, err);
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

/* Slice callback: append the body and remember the object as the cursor. */
static int collect_slice(const agent_cache_object *o, void *user)
{
    agent_view *v = user;
    if (collect_body(o, v->slice) != 0) {
        return 1;
    }
    kt_free(v->part_kind);
    kt_free(v->part_name);
    v->part_kind = kt_xstrdup(o->kind);
    v->part_name = kt_xstrdup(o->name);
    v->part_objects++;
    return 0;
}

kt_status agent_view_step(agent_view *v, size_t max_objects, int *done, kt_err *err)
{
    *done = 0;
    uint64_t gen = agent_cache_generation(v->cache);
    if (v->m != NULL && v->built_gen == gen) {
        part_drop(v);
        *done = 1;
        return KT_OK;
    }
    if (agent_cache_in_snapshot(v->cache)) {
        return KT_OK; /* nothing readable until it commits */
    }
    if (v->part != NULL && v->part_gen != gen) {
        part_drop(v); /* a commit between slices: start again from the new contents */
    }
    if (v->part == NULL) {
        v->part = model_new();
        model_diag_init(&v->part_diag);
        v->part_gen = gen;
        v->part_t0 = kt_clock_mono_ns();
        v->part_objects = 0;
    }
    size_t limit = max_objects > 0 ? max_objects : 1;
    kt_buf b;
    kt_buf_init(&b, VIEW_MAX_BYTES);
    v->slice = &b;
    size_t seen = 0;
    size_t before = v->part_objects;
    kt_status st = agent_cache_foreach_object_after(v->cache, v->part_kind, v->part_name, limit,
                                                    collect_slice, v, &seen, err);
    v->slice = NULL;
    if (st == KT_OK && (b.len > 0 && b.data[b.len - 1] != '\n')) {
        st = kt_err_set(err, KT_ETOOBIG, "cached objects exceed %zu bytes", (size_t)VIEW_MAX_BYTES);
    }
    if (st == KT_OK && seen > 0 && v->part_objects == before) {
        st = kt_err_set(err, KT_EINTERNAL, "cache rows without kind, name or body");
    }
    if (st == KT_OK && b.len > 0) {
        st = model_load_buffer(v->part, "cache", b.data, b.len, &v->part_diag, err);
    }
    kt_buf_fini(&b);
    if (st != KT_OK) {
        part_drop(v);
        return st;
    }
    if (seen < limit) {
        /* The end: resolve and swap in. */
        model *m = v->part;
        model_diag d = v->part_diag;
        v->part = NULL;
        kt_free(v->part_kind);
        kt_free(v->part_name);
        v->part_kind = v->part_name = NULL;
        install(v, m, &d, v->part_gen, v->part_t0);
        *done = 1;
    }
    return KT_OK;
}

kt_status agent_view_graph_json(agent_view *v, kt_buf *out, kt_err *err)
{
    /* Rendered from the committed objects and stored by an earlier render (maybe by an
     * earlier run): the same bytes without a model. */
    kt_err gerr = { 0 };
    size_t mark = out->len;
    kt_status st = agent_cache_rendered_get(v->cache, VIEW_GRAPH_DOC, out, &gerr);
    if (st == KT_OK) {
        return KT_OK; /* on failure nothing was appended */
    }
    if (st != KT_ENOTFOUND && st != KT_EAGAIN) {
        KT_LOG(KT_LOG_WARN, "VIEW-RENDERED-READ", "err=\"%s\"", gerr.msg);
    }
    st = agent_view_refresh(v, err);
    if (st != KT_OK) {
        return st;
    }
    st = model_graph_to_json(v->m, NULL, out);
    if (st != KT_OK) {
        return kt_err_set(err, st, "graph JSON: %s", kt_status_str(st));
    }
    if (agent_view_current(v) && !agent_cache_in_snapshot(v->cache)) {
        kt_err perr = { 0 };
        if (agent_cache_rendered_put(v->cache, VIEW_GRAPH_DOC, v->built_gen, out->data + mark,
                                     out->len - mark, &perr) != KT_OK) {
            KT_LOG(KT_LOG_WARN, "VIEW-RENDERED-WRITE", "err=\"%s\"", perr.msg);
        }
    }
    return KT_OK;
}

/* Graph JSON sinks of agent_view_persist_graph: count the bytes, then store them. */
static kt_status count_sink(const char *data, size_t len, void *user)
{
    (void)data;
    *(size_t *)user += len;
    return KT_OK;
}

typedef struct store_sink {
    agent_cache_rendered_writer *w;
    kt_err *err;
} store_sink;

static kt_status store_sink_cb(const char *data, size_t len, void *user)
{
    store_sink *s = user;
    return agent_cache_rendered_write(s->w, data, len, s->err);
}

kt_status agent_view_persist_graph(agent_view *v, kt_err *err)
{
    if (agent_cache_in_snapshot(v->cache)) {
        return KT_OK;
    }
    kt_status st = agent_cache_rendered_get(v->cache, VIEW_GRAPH_DOC, NULL, err);
    if (st != KT_ENOTFOUND) {
        return st;
    }
    memset(err, 0, sizeof err[0]);
    st = agent_view_refresh(v, err);
    if (st != KT_OK) {
        return st;
    }
    if (!agent_view_current(v)) {
        return KT_OK; /* the build failed and an older model is served: not stored */
    }
    /* Rendered twice, straight into the cache (the length first: the blob is reserved
     * whole): the ~3 MB document is never in memory, where it was the agent's peak. */
    size_t len = 0;
    (void)model_graph_to_json_sink(v->m, count_sink, &len);
    agent_cache_rendered_writer *w = NULL;
    st = agent_cache_rendered_begin(&w, v->cache, VIEW_GRAPH_DOC, v->built_gen, len, err);
    if (st != KT_OK) {
        return st;
    }
    store_sink s = { w, err };
    st = model_graph_to_json_sink(v->m, store_sink_cb, &s);
    kt_status end = agent_cache_rendered_end(w, st == KT_OK, err);
    return st != KT_OK ? st : end;
}

kt_status agent_view_iface_json(agent_view *v, const char *iface, kt_buf *out, kt_err *err)
{
    kt_status st = agent_view_refresh(v, err);
    if (st != KT_OK) {
        return st;
    }
    const model_iface *f = model_iface_get(v->m, iface);
    int any = 0;
    if (f != NULL) {
        any = f->n_instances > 0;
    } else {
        /* Interface not cached but instances may name it: scan. */
        for (size_t i = 0; i < model_n_instances(v->m) && !any; i++) {
            any = strcmp(model_instance_at(v->m, i)->iface_name, iface) == 0;
        }
    }
    if (!any) {
        return kt_err_set(err, KT_ENOTFOUND, "no instance of %s", iface);
    }
    st = model_graph_iface_to_json(v->m, iface, out);
    if (st != KT_OK) {
        return kt_err_set(err, st, "graph JSON: %s", kt_status_str(st));
    }
    return KT_OK;
}

static cJSON *str_or_null(const char *s)
{
    return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static int add_placement(const agent_cache_placement *p, void *user)
{
    cJSON *arr = user;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return 1;
    }
    cJSON_AddItemToArray(arr, o);
    cJSON_AddItemToObject(o, "interface", cJSON_CreateString(p->interface));
    cJSON_AddItemToObject(o, "where", cJSON_CreateString(p->where));
    cJSON_AddItemToObject(o, "site", str_or_null(p->site));
    cJSON_AddItemToObject(o, "rule", str_or_null(p->rule));
    cJSON_AddItemToObject(o, "reason", str_or_null(p->reason));
    return 0;
}

kt_status agent_view_placement_json(agent_view *v, const char *site, kt_buf *out, kt_err *err)
{
    kt_json_init();
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        return kt_err_set(err, KT_ENOMEM, "placement JSON");
    }
    cJSON_AddItemToObject(root, "site", str_or_null(site));
    cJSON_AddItemToObject(root, "revision",
                          cJSON_CreateNumber((double)agent_cache_placement_revision(v->cache)));
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "interfaces", arr);
    kt_status st = agent_cache_foreach_placement(v->cache, add_placement, arr, err);
    if (st == KT_OK) {
        st = kt_json_print_buf(root, out);
        if (st != KT_OK) {
            kt_err_set(err, st, "placement JSON: %s", kt_status_str(st));
        }
    }
    cJSON_Delete(root);
    return st;
}
