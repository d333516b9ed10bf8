/*
 * hub/graph.c — the hub's authoritative twin graph (see graph.h).
 *
 * DESIGN
 * Objects live in memory in one sorted array per kind (bytewise name
 * order), so lookups are binary searches, iteration is in a stable order
 * and the candidate graph of an apply is written without re-reading SQLite.
 *
 * Validation builds a fresh model from a "stream": every object's compact
 * JSON body, one per line, in (kind, name) order, loaded with one
 * model_load_buffer call and resolved. A line number in a diagnostic
 * therefore names the object. The stream order equals the order a restart
 * loads objects in (hub_store_load sorts the same way), so the model, and
 * every JSON written from it, is the same after a restart.
 *
 * When that candidate has errors, a second, diagnostic pass loads the
 * remaining stored objects as a stream plus the raw incoming buffers, so
 * errors in the incoming documents carry their own file:line:col, and
 * errors in stored objects are renamed to "<Kind>/<name>" (line 1, the
 * column in the stored compact body). The common case (a valid apply) costs
 * one model build.
 *
 * Three ways to the candidate model, cheapest first:
 *   - unchanged: every incoming body equals the stored one and nothing is
 *     pruned: no model is built at all;
 *   - reuse: only instances change (at most HUB_REUSE_MAX_CHANGES): the
 *     interfaces and policies are loaded from their bodies, the unchanged
 *     instances are copied from the current model's structs (model_add_instance
 *     plus labels and extra_json, the memory of which lives in a side arena
 *     freed with that model), the changed ones are parsed and schema-checked,
 *     and model_resolve checks the whole graph. Unchanged instances passed
 *     the schema check when they were applied, so nothing is lost; a unit
 *     test checks the result equals a rebuild;
 *   - full: the stream of every body.
 *
 * Thread: loop only. Ownership: objects, models, subscriber list.
 */
#include "hub/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/graph.h"
#include "model/node.h"

#define STORED_FILE    "<stored>"
#define HUB_STREAM_MAX ((size_t)1 << 34)
/* Above this many changed instances an apply rebuilds from the stream. */
#define HUB_REUSE_MAX_CHANGES 256

typedef struct hub_obj {
    hub_kind kind;
    char *name;
    char *body;
    size_t len;
    uint64_t rev;
    char *source;
} hub_obj;

typedef struct obj_vec {
    hub_obj **items;
    size_t n;
    size_t cap;
} obj_vec;

typedef struct sub {
    hub_graph_changed_cb cb;
    void *user;
} sub;

struct hub_graph {
    hub_store *store;
    obj_vec kinds[HUB_KIND_MAX + 1]; /* index by kind */
    model *m;
    kt_arena *side; /* memory m's copied instances point into (NULL after a full build) */
    uint64_t n_reuse_builds;
    uint64_t n_full_builds;
    uint64_t revision;
    sub *subs;
    size_t n_subs;
    size_t cap_subs;
    kt_buf json;       /* whole-graph JSON cache */
    uint64_t json_rev; /* revision json was built for */
    int json_valid;
};

/* ---- kinds and ops -------------------------------------------------------- */

const char *hub_kind_name(hub_kind kind)
{
    switch (kind) {
    case HUB_KIND_INTERFACE:
        return "TwinInterface";
    case HUB_KIND_INSTANCE:
        return "TwinInstance";
    case HUB_KIND_POLICY:
        return "PlacementPolicy";
    }
    return NULL;
}

const char *hub_kind_plural(hub_kind kind)
{
    switch (kind) {
    case HUB_KIND_INTERFACE:
        return "twininterfaces";
    case HUB_KIND_INSTANCE:
        return "twininstances";
    case HUB_KIND_POLICY:
        return "placementpolicies";
    }
    return NULL;
}

static const char *kind_api(hub_kind kind)
{
    return kind == HUB_KIND_POLICY ? MODEL_API_EDGE : MODEL_API_DTD;
}

hub_kind hub_kind_parse(const char *s)
{
    if (s == NULL) {
        return 0;
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        if (strcmp(s, hub_kind_name((hub_kind)k)) == 0 ||
            strcmp(s, hub_kind_plural((hub_kind)k)) == 0) {
            return (hub_kind)k;
        }
    }
    return 0;
}

const char *hub_op_name(hub_op op)
{
    switch (op) {
    case HUB_OP_UNCHANGED:
        return "unchanged";
    case HUB_OP_CREATED:
        return "created";
    case HUB_OP_CONFIGURED:
        return "configured";
    case HUB_OP_DELETED:
        return "deleted";
    }
    return "?";
}

void hub_apply_result_init(hub_apply_result *r)
{
    memset(r, 0, sizeof(*r));
    model_diag_init(&r->diag);
}

void hub_apply_result_fini(hub_apply_result *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        kt_free(r->items[i].name);
    }
    kt_free(r->items);
    model_diag_fini(&r->diag);
    memset(r, 0, sizeof(*r));
}

static void result_add(hub_apply_result *r, hub_kind kind, const char *name, hub_op op)
{
    /* Grow by doubling: a whole-city apply reports ~12k items. */
    if ((r->n_items & (r->n_items - 1)) == 0) {
        size_t cap = r->n_items == 0 ? 1 : r->n_items * 2;
        r->items = kt_xrealloc(r->items, cap * sizeof(*r->items));
    }
    r->items[r->n_items].kind = kind;
    r->items[r->n_items].name = kt_xstrdup(name);
    r->items[r->n_items].op = op;
    r->n_items++;
}

/* ---- object arrays -------------------------------------------------------- */

static void obj_free(hub_obj *o)
{
    if (o == NULL) {
        return;
    }
    kt_free(o->name);
    kt_free(o->body);
    kt_free(o->source);
    kt_free(o);
}

/* Index of name in v, or the insertion point with *found = 0. */
static size_t vec_find(const obj_vec *v, const char *name, int *found)
{
    size_t lo = 0;
    size_t hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->items[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = 0;
    return lo;
}

static hub_obj *graph_get(const hub_graph *g, hub_kind kind, const char *name)
{
    if (kind < HUB_KIND_MIN || kind > HUB_KIND_MAX || name == NULL) {
        return NULL;
    }
    int found = 0;
    const obj_vec *v = &g->kinds[kind];
    size_t i = vec_find(v, name, &found);
    return found ? v->items[i] : NULL;
}

/* Insert or replace (the old object is freed). */
static void graph_put(hub_graph *g, hub_obj *o)
{
    obj_vec *v = &g->kinds[o->kind];
    int found = 0;
    size_t i = vec_find(v, o->name, &found);
    if (found) {
        obj_free(v->items[i]);
        v->items[i] = o;
        return;
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->items = kt_xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    memmove(v->items + i + 1, v->items + i, (v->n - i) * sizeof(*v->items));
    v->items[i] = o;
    v->n++;
}

static void graph_remove(hub_graph *g, hub_kind kind, const char *name)
{
    obj_vec *v = &g->kinds[kind];
    int found = 0;
    size_t i = vec_find(v, name, &found);
    if (!found) {
        return;
    }
    obj_free(v->items[i]);
    memmove(v->items + i, v->items + i + 1, (v->n - i - 1) * sizeof(*v->items));
    v->n--;
}

static hub_obj *obj_new(
    hub_kind kind, const char *name, const char *body, size_t len, uint64_t rev, const char *source)
{
    hub_obj *o = kt_xcalloc(1, sizeof(*o));
    o->kind = kind;
    o->name = kt_xstrdup(name);
    o->body = kt_xstrndup(body, len);
    o->len = len;
    o->rev = rev;
    o->source = kt_xstrdup(source != NULL ? source : "");
    return o;
}

/* ---- candidate streams ---------------------------------------------------- */

/* One entry of a candidate graph: a stored object or an incoming document. */
typedef struct cand {
    hub_kind kind;
    const char *name;
    const char *body;
    size_t len;
    const model_instance *old; /* reuse path: the instance to copy, when known */
} cand;

typedef struct cand_vec {
    cand *items;
    size_t n;
    size_t cap;
} cand_vec;

static void cand_push(cand_vec *v, hub_kind kind, const char *name, const char *body, size_t len)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->items = kt_xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    cand *c = &v->items[v->n++];
    c->kind = kind;
    c->name = name;
    c->body = body;
    c->len = len;
    c->old = NULL;
}

static int cand_cmp_name(const void *a, const void *b)
{
    return strcmp(((const cand *)a)->name, ((const cand *)b)->name);
}

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a;
    const cand *y = b;
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    /* Same (kind, name) twice (a duplicate in one request): keep input order. */
    return x->body < y->body ? -1 : (x->body > y->body ? 1 : 0);
}

/* Write the entries, one compact body per line. */
static kt_status stream_build(const cand_vec *v, kt_buf *out)
{
    for (size_t i = 0; i < v->n; i++) {
        kt_status st = kt_buf_append(out, v->items[i].body, v->items[i].len);
        if (st == KT_OK) {
            st = kt_buf_putc(out, '\n');
        }
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

/* Rename diagnostics in the stored stream to the object they are about. */
static void diag_rename_stored(model_diag *d, const cand_vec *stored)
{
    for (size_t i = 0; i < d->n; i++) {
        model_diag_entry *e = &d->entries[i];
        if (strcmp(e->file, STORED_FILE) != 0 || e->line == 0 || e->line > stored->n) {
            continue;
        }
        const cand *c = &stored->items[e->line - 1];
        size_t cap = strlen(c->name) + 32;
        char *file = kt_xmalloc(cap);
        snprintf(file, cap, "%s/%s", hub_kind_name(c->kind), c->name);
        kt_free(e->file);
        e->file = file;
        e->line = 1;
    }
}

/* Build and resolve a model from one stream. *out is the model even with errors. */
static kt_status model_from_stream(model **out, const kt_buf *stream, model_diag *diag, kt_err *err)
{
    model *m = model_new();
    kt_status st = model_load_buffer(m, STORED_FILE, stream->data != NULL ? stream->data : "",
                                     stream->len, diag, err);
    if (st != KT_OK) {
        model_free(m);
        *out = NULL;
        return st;
    }
    (void)model_resolve(m, diag);
    *out = m;
    return KT_OK;
}

static void side_free(kt_arena *a)
{
    if (a != NULL) {
        kt_arena_fini(a);
        kt_free(a);
    }
}

/*
 * Copy an instance of the previous (resolved, valid) model into m without
 * parsing or schema validation: what crd.c's add_instance builds from the
 * document, rebuilt from the struct. Strings are interned in m (label keys
 * and values too, as the loader does); the label array and extra_json live
 * in side, which is freed with m.
 */
static void copy_instance(model *m, kt_arena *side, const model_instance *old)
{
    model_mark mk = { STORED_FILE, old->mark.line, old->mark.col };
    model_instance *inst =
        model_add_instance(m, old->name, old->iface_name, old->rels, old->n_rels, &mk);
    if (inst == NULL) {
        return; /* a duplicate: model_resolve reports it */
    }
    if (old->n_labels > 0) {
        model_label *l = kt_arena_alloc(side, old->n_labels * sizeof(*l));
        for (uint32_t i = 0; i < old->n_labels; i++) {
            l[i].key = model_intern(m, old->labels[i].key);
            l[i].value = model_intern(m, old->labels[i].value);
            if (strcmp(l[i].key, MODEL_LABEL_SITE) == 0 && inst->site == NULL) {
                inst->site = l[i].value;
            }
        }
        inst->labels = l;
        inst->n_labels = old->n_labels;
    }
    if (old->extra_json != NULL) {
        inst->extra_json = kt_arena_strdup(side, old->extra_json);
    }
}

/*
 * The candidate model when only instances change (DESIGN: "reuse"):
 * interfaces and policies are loaded from their stored bodies, every
 * instance in insts (sorted by name) is either copied from the current
 * model (body NULL) or loaded from its new body, then the whole model is
 * resolved, so every cross-document check runs on the whole graph; only
 * the schema check of unchanged instances is skipped (they passed it when
 * they were applied). *out and *side_out are set even when diag got errors.
 */
static kt_status model_reuse(hub_graph *g,
                             const cand_vec *insts,
                             model **out,
                             kt_arena **side_out,
                             model_diag *diag,
                             kt_err *err)
{
    g->n_reuse_builds++;
    model *m = model_new();
    kt_arena *side = kt_xcalloc(1, sizeof(*side));
    kt_arena_init(side, 64 * 1024);
    cand_vec other = { 0 };
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        if (k == HUB_KIND_INSTANCE) {
            continue;
        }
        const obj_vec *v = &g->kinds[k];
        for (size_t i = 0; i < v->n; i++) {
            cand_push(&other, (hub_kind)k, v->items[i]->name, v->items[i]->body, v->items[i]->len);
        }
    }
    kt_buf stream;
    kt_buf_init(&stream, HUB_STREAM_MAX);
    kt_status st = stream_build(&other, &stream);
    if (st != KT_OK) {
        kt_err_set(err, st, "graph too large");
    } else {
        st = model_load_buffer(m, STORED_FILE, stream.data != NULL ? stream.data : "", stream.len,
                               diag, err);
    }
    for (size_t i = 0; i < insts->n && st == KT_OK; i++) {
        const cand *c = &insts->items[i];
        if (c->body != NULL) {
            st = model_load_buffer(m, STORED_FILE, c->body, c->len, diag, err);
            continue;
        }
        const model_instance *old = c->old != NULL ? c->old : model_instance_get(g->m, c->name);
        if (KT_NEVER(old == NULL)) {
            st = kt_err_set(err, KT_EINTERNAL, "instance %s is stored but not in the model",
                            c->name);
            break;
        }
        copy_instance(m, side, old);
    }
    kt_buf_fini(&stream);
    kt_free(other.items);
    if (st != KT_OK) {
        model_free(m);
        side_free(side);
        *out = NULL;
        *side_out = NULL;
        return st;
    }
    (void)model_resolve(m, diag);
    *out = m;
    *side_out = side;
    return KT_OK;
}

/* ---- lifecycle ------------------------------------------------------------ */

static kt_status load_cb(const hub_store_object *o, void *user)
{
    hub_graph *g = user;
    if (o->kind < HUB_KIND_MIN || o->kind > HUB_KIND_MAX) {
        KT_LOG(KT_LOG_WARN, "HUB-GRAPH-BAD-ROW", "kind=%d name=%s msg=\"unknown kind; ignored\"",
               o->kind, o->name);
        return KT_OK;
    }
    /* Rows come sorted by (kind, name): appending keeps the arrays sorted. */
    obj_vec *v = &g->kinds[o->kind];
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->items = kt_xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    v->items[v->n++] = obj_new((hub_kind)o->kind, o->name, o->body, o->len, o->rev, o->source);
    return KT_OK;
}

static void all_stored(const hub_graph *g, cand_vec *out)
{
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        const obj_vec *v = &g->kinds[k];
        for (size_t i = 0; i < v->n; i++) {
            cand_push(out, (hub_kind)k, v->items[i]->name, v->items[i]->body, v->items[i]->len);
        }
    }
}

kt_status hub_graph_new(hub_graph **out, hub_store *store, kt_err *err)
{
    *out = NULL;
    hub_graph *g = kt_xcalloc(1, sizeof(*g));
    g->store = store;
    kt_buf_init(&g->json, HUB_STREAM_MAX);
    cand_vec all = { 0 };
    kt_buf stream;
    kt_buf_init(&stream, HUB_STREAM_MAX);
    model_diag diag;
    model_diag_init(&diag);
    kt_status st = hub_store_load(store, load_cb, g, err);
    if (st != KT_OK) {
        goto fail;
    }
    /* The SQLite string order (BINARY) is memcmp; re-sort defensively with strcmp. */
    all_stored(g, &all);
    for (size_t i = 1; i < all.n; i++) {
        if (all.items[i - 1].kind == all.items[i].kind &&
            strcmp(all.items[i - 1].name, all.items[i].name) >= 0) {
            st = kt_err_set(err, KT_EINTERNAL, "stored objects out of order at %s",
                            all.items[i].name);
            goto fail;
        }
    }
    st = stream_build(&all, &stream);
    if (st != KT_OK) {
        kt_err_set(err, st, "stored graph too large");
        goto fail;
    }
    st = model_from_stream(&g->m, &stream, &diag, err);
    if (st != KT_OK) {
        goto fail;
    }
    if (diag.n_errors > 0) {
        diag_rename_stored(&diag, &all);
        const model_diag_entry *e = &diag.entries[0];
        st = kt_err_set(err, KT_EINVAL,
                        "stored graph does not validate (%zu errors): %s:%u:%u: %s: %s",
                        diag.n_errors, e->file, e->line, e->col, e->path, e->msg);
        goto fail;
    }
    g->revision = hub_store_revision(store);
    kt_buf_fini(&stream);
    kt_free(all.items);
    model_diag_fini(&diag);
    *out = g;
    return KT_OK;
fail:
    kt_buf_fini(&stream);
    kt_free(all.items);
    model_diag_fini(&diag);
    hub_graph_free(g);
    return st;
}

void hub_graph_free(hub_graph *g)
{
    if (g == NULL) {
        return;
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        for (size_t i = 0; i < g->kinds[k].n; i++) {
            obj_free(g->kinds[k].items[i]);
        }
        kt_free(g->kinds[k].items);
    }
    model_free(g->m);
    side_free(g->side);
    kt_free(g->subs);
    kt_buf_fini(&g->json);
    kt_free(g);
}

void hub_graph_subscribe(hub_graph *g, hub_graph_changed_cb cb, void *user)
{
    if (g->n_subs == g->cap_subs) {
        g->cap_subs = g->cap_subs ? g->cap_subs * 2 : 4;
        g->subs = kt_xrealloc(g->subs, g->cap_subs * sizeof(*g->subs));
    }
    g->subs[g->n_subs].cb = cb;
    g->subs[g->n_subs].user = user;
    g->n_subs++;
}

void hub_graph_unsubscribe(hub_graph *g, hub_graph_changed_cb cb, void *user)
{
    for (size_t i = 0; i < g->n_subs; i++) {
        if (g->subs[i].cb == cb && g->subs[i].user == user) {
            memmove(g->subs + i, g->subs + i + 1, (g->n_subs - i - 1) * sizeof(*g->subs));
            g->n_subs--;
            return;
        }
    }
}

/* ---- reading -------------------------------------------------------------- */

const model *hub_graph_model(const hub_graph *g)
{
    return g->m;
}

uint64_t hub_graph_revision(const hub_graph *g)
{
    return g->revision;
}

void hub_graph_builds(const hub_graph *g, uint64_t *reuse_out, uint64_t *full_out)
{
    if (reuse_out != NULL) {
        *reuse_out = g->n_reuse_builds;
    }
    if (full_out != NULL) {
        *full_out = g->n_full_builds;
    }
}

size_t hub_graph_count(const hub_graph *g, hub_kind kind)
{
    if (kind == 0) {
        size_t n = 0;
        for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
            n += g->kinds[k].n;
        }
        return n;
    }
    if (kind < HUB_KIND_MIN || kind > HUB_KIND_MAX) {
        return 0;
    }
    return g->kinds[kind].n;
}

const char *hub_graph_body(
    const hub_graph *g, hub_kind kind, const char *name, size_t *len_out, uint64_t *rev_out)
{
    const hub_obj *o = graph_get(g, kind, name);
    if (o == NULL) {
        return NULL;
    }
    if (len_out != NULL) {
        *len_out = o->len;
    }
    if (rev_out != NULL) {
        *rev_out = o->rev;
    }
    return o->body;
}

const char *hub_graph_json(hub_graph *g, size_t *len_out)
{
    if (!g->json_valid || g->json_rev != g->revision) {
        kt_buf_reset(&g->json);
        g->json_valid = 0;
        kt_status st = model_graph_to_json(g->m, NULL, &g->json);
        if (st == KT_OK) {
            st = kt_buf_putc(&g->json, '\0');
        }
        if (st != KT_OK) {
            KT_LOG(KT_LOG_ERR, "HUB-GRAPH-JSON", "err=%s", kt_status_str(st));
            return NULL;
        }
        g->json.len--; /* keep the NUL out of the length */
        g->json_valid = 1;
        g->json_rev = g->revision;
    }
    if (len_out != NULL) {
        *len_out = g->json.len;
    }
    return g->json.data;
}

int hub_graph_foreach(const hub_graph *g, hub_kind kind, hub_graph_object_cb cb, void *user)
{
    int lo = kind == 0 ? HUB_KIND_MIN : (int)kind;
    int hi = kind == 0 ? HUB_KIND_MAX : (int)kind;
    if (lo < HUB_KIND_MIN || hi > HUB_KIND_MAX) {
        return 0;
    }
    for (int k = lo; k <= hi; k++) {
        const obj_vec *v = &g->kinds[k];
        for (size_t i = 0; i < v->n; i++) {
            const hub_obj *o = v->items[i];
            hub_object_view view = { o->kind, o->name, o->body, o->len, o->rev, o->source };
            int r = cb(&view, user);
            if (r != 0) {
                return r;
            }
        }
    }
    return 0;
}

typedef struct changes_ctx {
    hub_change_row_cb cb;
    void *user;
} changes_ctx;

static int changes_cb(uint64_t rev, int kind, const char *name, int deleted, void *user)
{
    changes_ctx *c = user;
    hub_change_row row = { rev, (hub_kind)kind, name, deleted };
    return c->cb(&row, c->user);
}

kt_status hub_graph_changes_since(
    const hub_graph *g, uint64_t since_rev, hub_change_row_cb cb, void *user, kt_err *err)
{
    if (since_rev > g->revision) {
        return kt_err_set(err, KT_ENOTFOUND, "revision %llu is ahead of the hub (%llu)",
                          (unsigned long long)since_rev, (unsigned long long)g->revision);
    }
    if (since_rev + 1 < hub_store_log_min_rev(g->store)) {
        return kt_err_set(err, KT_ENOTFOUND, "change log starts at revision %llu",
                          (unsigned long long)hub_store_log_min_rev(g->store));
    }
    changes_ctx c = { cb, user };
    return hub_store_changes_since(g->store, since_rev, changes_cb, &c, err);
}

/* ---- parsing the incoming documents ------------------------------------- */

typedef struct incoming {
    hub_kind kind;
    char *name;
    char *body;
    size_t len;
    hub_op op;
    int src_only; /* same body, other source: rewrite the source, no revision */
} incoming;

typedef struct scan_ctx {
    incoming *items;
    size_t n;
    size_t cap;
    model_diag *diag;   /* errors of our own (kinds we do not take) */
    int need_diag_pass; /* something the model will report with a mark */
    kt_buf json;
} scan_ctx;

static void scan_object(scan_ctx *c, const model_node *root)
{
    if (root->kind != MODEL_NODE_MAP) {
        c->need_diag_pass = 1;
        return;
    }
    const char *api = model_node_get_str(root, "apiVersion");
    const char *kind_s = model_node_get_str(root, "kind");
    if (api == NULL || kind_s == NULL) {
        c->need_diag_pass = 1;
        return;
    }
    if (strcmp(kind_s, "List") == 0 ||
        (strlen(kind_s) > 4 && strcmp(kind_s + strlen(kind_s) - 4, "List") == 0 &&
         (strcmp(api, MODEL_API_DTD) == 0 || strcmp(api, MODEL_API_EDGE) == 0))) {
        const model_node *items = model_node_get(root, "items");
        if (items == NULL || items->kind != MODEL_NODE_SEQ) {
            c->need_diag_pass = 1;
            return;
        }
        for (size_t i = 0; i < items->n; i++) {
            scan_object(c, items->items[i]);
        }
        return;
    }
    hub_kind kind = hub_kind_parse(kind_s);
    if (strcmp(api, MODEL_API_DTD) != 0 && strcmp(api, MODEL_API_EDGE) != 0) {
        model_diag_error(c->diag, &root->mark, "kind", "unsupported-kind",
                         "%s %s is not a TwinInterface, TwinInstance or PlacementPolicy", api,
                         kind_s);
        return;
    }
    if (kind == 0 || strcmp(kind_s, hub_kind_name(kind)) != 0 || strcmp(api, kind_api(kind)) != 0) {
        c->need_diag_pass = 1; /* the model reports unknown-kind */
        return;
    }
    const model_node *md = model_node_get(root, "metadata");
    const char *name = md != NULL ? model_node_get_str(md, "name") : NULL;
    if (name == NULL || model_name_check(name) != NULL) {
        c->need_diag_pass = 1;
        return;
    }
    kt_buf_reset(&c->json);
    if (model_node_to_json(root, &c->json) != KT_OK) {
        model_diag_error(c->diag, &root->mark, "", "too-large", "document too large");
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = kt_xrealloc(c->items, c->cap * sizeof(*c->items));
    }
    incoming *in = &c->items[c->n++];
    memset(in, 0, sizeof(*in));
    in->kind = kind;
    in->name = kt_xstrdup(name);
    in->body = kt_xstrndup(c->json.data, c->json.len);
    in->len = c->json.len;
}

static kt_status scan_doc_cb(const model_doc *doc, void *user)
{
    scan_ctx *c = user;
    if (doc->root == NULL || (doc->root->kind == MODEL_NODE_SCALAR &&
                              model_node_scalar_type(doc->root) == MODEL_SCALAR_NULL)) {
        return KT_OK;
    }
    scan_object(c, doc->root);
    return KT_OK;
}

static void scan_fini(scan_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        kt_free(c->items[i].name);
        kt_free(c->items[i].body);
    }
    kt_free(c->items);
    kt_buf_fini(&c->json);
}

/* ---- committing --------------------------------------------------------- */

typedef struct del_item {
    hub_kind kind;
    const char *name; /* borrowed from the stored object */
} del_item;

static int change_cmp(const void *a, const void *b)
{
    const hub_change *x = a;
    const hub_change *y = b;
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/*
 * Write the changes in one transaction, then update memory, swap the model
 * and notify. new_model is taken over (freed on failure).
 */
static kt_status commit_changes(hub_graph *g,
                                incoming *ins,
                                size_t n_ins,
                                const del_item *dels,
                                size_t n_dels,
                                const char *source,
                                model *new_model,
                                kt_arena *new_side,
                                hub_apply_result *out,
                                kt_err *err)
{
    size_t n_changed = n_dels;
    size_t n_src_only = 0;
    for (size_t i = 0; i < n_ins; i++) {
        if (ins[i].op != HUB_OP_UNCHANGED) {
            n_changed++;
        } else if (ins[i].src_only) {
            n_src_only++;
        }
    }
    if (n_changed == 0 && n_src_only == 0) {
        model_free(new_model);
        side_free(new_side);
        out->revision = g->revision;
        return KT_OK;
    }
    uint64_t rev = n_changed > 0 ? g->revision + 1 : g->revision;
    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = hub_store_begin(g->store, err);
    if (st != KT_OK) {
        model_free(new_model);
        side_free(new_side);
        return st;
    }
    for (size_t i = 0; i < n_ins && st == KT_OK; i++) {
        incoming *in = &ins[i];
        if (in->op != HUB_OP_UNCHANGED) {
            st = hub_store_put(g->store, in->kind, in->name, in->body, in->len, rev, source, err);
            if (st == KT_OK) {
                st = hub_store_log(g->store, rev, in->kind, in->name, 0, err);
            }
        } else if (in->src_only) {
            const hub_obj *o = graph_get(g, in->kind, in->name);
            st =
                hub_store_put(g->store, in->kind, in->name, in->body, in->len, o->rev, source, err);
        }
    }
    for (size_t i = 0; i < n_dels && st == KT_OK; i++) {
        st = hub_store_del(g->store, dels[i].kind, dels[i].name, err);
        if (st == KT_OK) {
            st = hub_store_log(g->store, rev, dels[i].kind, dels[i].name, 1, err);
        }
    }
    if (st == KT_OK && rev != g->revision) {
        st = hub_store_set_revision(g->store, rev, err);
    }
    if (st == KT_OK) {
        st = hub_store_commit(g->store, err);
    } else {
        hub_store_rollback(g->store);
    }
    if (st != KT_OK) {
        model_free(new_model);
        side_free(new_side);
        return st;
    }

    out->commit_ms = (double)(kt_clock_mono_ns() - t0) / 1e6;
    /* Committed: memory follows. */
    hub_change *changes = kt_xcalloc(n_changed + 1, sizeof(*changes));
    char **names = kt_xcalloc(n_changed + 1, sizeof(*names));
    size_t nc = 0;
    for (size_t i = 0; i < n_ins; i++) {
        incoming *in = &ins[i];
        if (in->op != HUB_OP_UNCHANGED) {
            hub_obj *o = kt_xcalloc(1, sizeof(*o));
            o->kind = in->kind;
            o->name = kt_xstrdup(in->name);
            o->body = in->body;
            o->len = in->len;
            o->rev = rev;
            o->source = kt_xstrdup(source);
            in->body = NULL; /* now owned by the graph */
            graph_put(g, o);
            names[nc] = kt_xstrdup(in->name);
            changes[nc].kind = in->kind;
            changes[nc].name = names[nc];
            changes[nc].deleted = 0;
            nc++;
        } else if (in->src_only) {
            hub_obj *o = graph_get(g, in->kind, in->name);
            kt_free(o->source);
            o->source = kt_xstrdup(source);
        }
    }
    for (size_t i = 0; i < n_dels; i++) {
        names[nc] = kt_xstrdup(dels[i].name);
        changes[nc].kind = dels[i].kind;
        changes[nc].name = names[nc];
        changes[nc].deleted = 1;
        nc++;
        graph_remove(g, dels[i].kind, dels[i].name); /* dels[i].name is gone now */
    }
    out->revision = rev;
    if (n_changed > 0) {
        model *old = g->m;
        kt_arena *old_side = g->side;
        g->m = new_model;
        g->side = new_side;
        g->revision = rev;
        if (nc > 1) {
            qsort(changes, nc, sizeof(*changes), change_cmp);
        }
        uint64_t t1 = kt_clock_mono_ns();
        for (size_t i = 0; i < g->n_subs; i++) {
            g->subs[i].cb(g, rev, changes, nc, g->subs[i].user);
        }
        model_free(old);
        side_free(old_side);
        out->notify_ms = (double)(kt_clock_mono_ns() - t1) / 1e6;
    } else {
        model_free(new_model);
        side_free(new_side);
    }
    for (size_t i = 0; i < nc; i++) {
        kt_free(names[i]);
    }
    kt_free(names);
    kt_free(changes);
    return KT_OK;
}

/* ---- apply ---------------------------------------------------------------- */

/* The batch index: one map per kind, name -> incoming (keys owned by the scan). */
static int in_batch(const kt_map *index, hub_kind kind, const char *name)
{
    return index[kind].n > 0 && kt_map_get(&index[kind], name) != NULL;
}

kt_status hub_graph_apply_batch(hub_graph *g,
                                const hub_apply_input *inputs,
                                size_t n_inputs,
                                const hub_apply_opts *opts,
                                hub_apply_result *out,
                                kt_err *err)
{
    const char *source = opts != NULL && opts->source != NULL ? opts->source : "api";
    int prune = opts != NULL && opts->prune_source;
    scan_ctx sc;
    memset(&sc, 0, sizeof(sc));
    sc.diag = &out->diag;
    kt_buf_init(&sc.json, HUB_STREAM_MAX);
    kt_arena arena;
    kt_arena_init(&arena, 64 * 1024);
    kt_map index[HUB_KIND_MAX + 1];
    for (int k = 0; k <= HUB_KIND_MAX; k++) {
        kt_map_init(&index[k]);
    }
    cand_vec keep = { 0 }; /* stored objects that stay */
    cand_vec cands = { 0 };
    del_item *dels = NULL;
    size_t n_dels = 0;
    kt_buf stream;
    kt_buf_init(&stream, HUB_STREAM_MAX);
    model *m = NULL;
    kt_arena *side = NULL;
    kt_status st = KT_OK;
    uint64_t t_start = kt_clock_mono_ns();

    /* 1. Parse every input into canonical documents. */
    for (size_t i = 0; i < n_inputs; i++) {
        kt_err perr = { 0 };
        kt_status pst = model_parse_any(&arena, inputs[i].name, inputs[i].buf, inputs[i].len, NULL,
                                        scan_doc_cb, &sc, &perr);
        if (pst == KT_EINVAL || pst == KT_ETOOBIG) {
            sc.need_diag_pass = 1; /* model_load_buffer reports it with its mark */
        } else if (pst != KT_OK) {
            st = kt_err_set(err, pst, "%s", perr.msg);
            goto done;
        }
    }

    /* 2. The candidate: stored objects (minus replaced and pruned) + incoming. */
    int duplicates = 0; /* the same (kind, name) twice in the batch: the model reports it */
    int all_same = 1;   /* every incoming body equals the stored one */
    for (size_t i = 0; i < sc.n; i++) {
        kt_map *ki = &index[sc.items[i].kind];
        if (kt_map_get(ki, sc.items[i].name) != NULL) {
            duplicates = 1;
            continue;
        }
        kt_map_put(ki, sc.items[i].name, &sc.items[i]);
        const hub_obj *o = graph_get(g, sc.items[i].kind, sc.items[i].name);
        if (o == NULL || o->len != sc.items[i].len ||
            memcmp(o->body, sc.items[i].body, o->len) != 0) {
            all_same = 0;
        }
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        const obj_vec *v = &g->kinds[k];
        for (size_t i = 0; i < v->n; i++) {
            const hub_obj *o = v->items[i];
            if (in_batch(index, (hub_kind)k, o->name)) {
                continue;
            }
            if (prune && strcmp(o->source, source) == 0) {
                if ((n_dels & (n_dels - 1)) == 0) {
                    dels = kt_xrealloc(dels, (n_dels == 0 ? 1 : n_dels * 2) * sizeof(*dels));
                }
                dels[n_dels].kind = (hub_kind)k;
                dels[n_dels].name = o->name;
                n_dels++;
                continue;
            }
            cand_push(&keep, (hub_kind)k, o->name, o->body, o->len);
        }
    }
    int has_errors = sc.need_diag_pass || out->diag.n_errors > 0;
    /*
     * Fast path: nothing would change (every document equals its stored
     * body, nothing to prune), so the candidate is the current, valid graph.
     */
    int unchanged = !has_errors && !duplicates && all_same && n_dels == 0;
    /*
     * Reuse path: only instances change (interfaces and policies in the batch
     * equal their stored bodies, only instances are pruned) and not too many:
     * the candidate copies the unchanged instances from the current model.
     */
    size_t n_inst_changed = 0;
    int reuse = !has_errors && !unchanged && !duplicates;
    for (size_t i = 0; reuse && i < sc.n; i++) {
        const hub_obj *o = graph_get(g, sc.items[i].kind, sc.items[i].name);
        int same = o != NULL && o->len == sc.items[i].len &&
                   memcmp(o->body, sc.items[i].body, o->len) == 0;
        if (!same && sc.items[i].kind != HUB_KIND_INSTANCE) {
            reuse = 0;
        } else if (!same) {
            n_inst_changed++;
        }
    }
    for (size_t i = 0; reuse && i < n_dels; i++) {
        reuse = dels[i].kind == HUB_KIND_INSTANCE;
    }
    if (reuse && n_inst_changed > HUB_REUSE_MAX_CHANGES) {
        reuse = 0; /* a bulk load: one parse of everything is cheaper than many small ones */
    }
    if (reuse) {
        kt_map gone; /* stored instances the candidate does not copy */
        kt_map_init(&gone);
        for (size_t i = 0; i < n_dels; i++) {
            kt_map_put(&gone, dels[i].name, &dels[i]);
        }
        for (size_t i = 0; i < sc.n; i++) {
            if (sc.items[i].kind == HUB_KIND_INSTANCE) {
                kt_map_put(&gone, sc.items[i].name, &sc.items[i]);
                /* the batch's version: copied when unchanged, else loaded */
                const hub_obj *o = graph_get(g, HUB_KIND_INSTANCE, sc.items[i].name);
                int same = o != NULL && o->len == sc.items[i].len &&
                           memcmp(o->body, sc.items[i].body, o->len) == 0;
                cand_push(&cands, HUB_KIND_INSTANCE, sc.items[i].name,
                          same ? NULL : sc.items[i].body, sc.items[i].len);
            }
        }
        const obj_vec *v = &g->kinds[HUB_KIND_INSTANCE];
        /* The model lists instances in the stored (name) order: no lookups needed. */
        int aligned = model_n_instances(g->m) == v->n;
        for (size_t i = 0; i < v->n; i++) {
            if (gone.n == 0 || kt_map_get(&gone, v->items[i]->name) == NULL) {
                cand_push(&cands, HUB_KIND_INSTANCE, v->items[i]->name, NULL, 0);
                const model_instance *mi = aligned ? model_instance_at(g->m, i) : NULL;
                if (mi != NULL && strcmp(mi->name, v->items[i]->name) == 0) {
                    cands.items[cands.n - 1].old = mi;
                }
            }
        }
        kt_map_fini(&gone);
        if (cands.n > 1) {
            qsort(cands.items, cands.n, sizeof(*cands.items), cand_cmp_name);
        }
        model_diag d1;
        model_diag_init(&d1);
        st = model_reuse(g, &cands, &m, &side, &d1, err);
        if (st == KT_OK && d1.n_errors > 0) {
            has_errors = 1;
            model_free(m);
            m = NULL;
            side_free(side);
            side = NULL;
        }
        model_diag_fini(&d1);
        if (st != KT_OK) {
            goto done;
        }
    } else if (!has_errors && !unchanged) {
        for (size_t i = 0; i < keep.n; i++) {
            cand_push(&cands, keep.items[i].kind, keep.items[i].name, keep.items[i].body,
                      keep.items[i].len);
        }
        for (size_t i = 0; i < sc.n; i++) {
            cand_push(&cands, sc.items[i].kind, sc.items[i].name, sc.items[i].body,
                      sc.items[i].len);
        }
        if (cands.n > 1) {
            qsort(cands.items, cands.n, sizeof(*cands.items), cand_cmp);
        }
        st = stream_build(&cands, &stream);
        if (st != KT_OK) {
            kt_err_set(err, st, "graph too large");
            goto done;
        }
        model_diag d1;
        model_diag_init(&d1);
        g->n_full_builds++;
        st = model_from_stream(&m, &stream, &d1, err);
        if (st != KT_OK) {
            model_diag_fini(&d1);
            goto done;
        }
        if (d1.n_errors > 0) {
            has_errors = 1;
            model_free(m);
            m = NULL;
        }
        model_diag_fini(&d1);
    }

    if (has_errors) {
        /* 3. Diagnostic pass: stored stream + raw inputs, so every error has its own mark. */
        kt_buf_reset(&stream);
        st = stream_build(&keep, &stream);
        if (st != KT_OK) {
            kt_err_set(err, st, "graph too large");
            goto done;
        }
        model *dm = model_new();
        st = model_load_buffer(dm, STORED_FILE, stream.data != NULL ? stream.data : "", stream.len,
                               &out->diag, err);
        for (size_t i = 0; i < n_inputs && st == KT_OK; i++) {
            st = model_load_buffer(dm, inputs[i].name, inputs[i].buf, inputs[i].len, &out->diag,
                                   err);
        }
        if (st == KT_OK) {
            (void)model_resolve(dm, &out->diag);
        }
        model_free(dm);
        if (st != KT_OK) {
            goto done;
        }
        diag_rename_stored(&out->diag, &keep);
        if (out->diag.n_errors == 0) {
            /* Both passes must agree; never apply something that failed once. */
            model_diag_error(&out->diag, NULL, "", "internal",
                             "the candidate graph did not validate; see the hub log");
            KT_LOG(KT_LOG_ERR, "HUB-GRAPH-DIAG-MISMATCH", "msg=\"diagnostic pass found no error\"");
        }
        st = KT_EINVAL;
        kt_err_set(err, KT_EINVAL, "%zu validation errors", out->diag.n_errors);
        goto done;
    }

    /* 4. What changes. */
    out->validate_ms = (double)(kt_clock_mono_ns() - t_start) / 1e6;
    for (size_t i = 0; i < sc.n; i++) {
        incoming *in = &sc.items[i];
        const hub_obj *o = graph_get(g, in->kind, in->name);
        if (o == NULL) {
            in->op = HUB_OP_CREATED;
        } else if (o->len != in->len || memcmp(o->body, in->body, in->len) != 0) {
            in->op = HUB_OP_CONFIGURED;
        } else {
            in->op = HUB_OP_UNCHANGED;
            in->src_only = strcmp(o->source, source) != 0;
        }
        result_add(out, in->kind, in->name, in->op);
    }
    for (size_t i = 0; i < n_dels; i++) {
        result_add(out, dels[i].kind, dels[i].name, HUB_OP_DELETED);
    }
    st = commit_changes(g, sc.items, sc.n, dels, n_dels, source, m, side, out, err);
    m = NULL; /* taken over */
    side = NULL;

done:
    model_free(m);
    side_free(side);
    kt_buf_fini(&stream);
    kt_free(cands.items);
    kt_free(keep.items);
    kt_free(dels);
    kt_arena_fini(&arena);
    for (int k = 0; k <= HUB_KIND_MAX; k++) {
        kt_map_fini(&index[k]);
    }
    scan_fini(&sc);
    return st;
}

kt_status hub_graph_apply(hub_graph *g,
                          const char *src_name,
                          const char *buf,
                          size_t len,
                          hub_apply_result *out,
                          kt_err *err)
{
    hub_apply_input in = { src_name != NULL ? src_name : "request", buf, len };
    return hub_graph_apply_batch(g, &in, 1, NULL, out, err);
}

kt_status
hub_graph_delete(hub_graph *g, hub_kind kind, const char *name, hub_apply_result *out, kt_err *err)
{
    const hub_obj *target = graph_get(g, kind, name);
    if (target == NULL) {
        return kt_err_set(err, KT_ENOTFOUND, "%s %s not found",
                          hub_kind_name(kind) != NULL ? hub_kind_name(kind) : "object", name);
    }
    cand_vec keep = { 0 };
    kt_buf stream;
    kt_buf_init(&stream, HUB_STREAM_MAX);
    model *m = NULL;
    kt_arena *side = NULL;
    kt_status st = KT_OK;
    del_item d = { kind, target->name };
    if (kind == HUB_KIND_INSTANCE) {
        /* Reuse path: copy every other instance; errors are named by the stream path below. */
        const obj_vec *v = &g->kinds[HUB_KIND_INSTANCE];
        int aligned = model_n_instances(g->m) == v->n;
        for (size_t i = 0; i < v->n; i++) {
            if (v->items[i] != target) {
                cand_push(&keep, HUB_KIND_INSTANCE, v->items[i]->name, NULL, 0);
                const model_instance *mi = aligned ? model_instance_at(g->m, i) : NULL;
                if (mi != NULL && strcmp(mi->name, v->items[i]->name) == 0) {
                    keep.items[keep.n - 1].old = mi;
                }
            }
        }
        model_diag d1;
        model_diag_init(&d1);
        st = model_reuse(g, &keep, &m, &side, &d1, err);
        size_t n_errors = d1.n_errors;
        model_diag_fini(&d1);
        keep.n = 0;
        if (st != KT_OK) {
            goto done;
        }
        if (n_errors == 0) {
            result_add(out, kind, name, HUB_OP_DELETED);
            st = commit_changes(g, NULL, 0, &d, 1, "api", m, side, out, err);
            m = NULL;
            side = NULL;
            goto done;
        }
        model_free(m);
        m = NULL;
        side_free(side);
        side = NULL;
    }
    for (int k = HUB_KIND_MIN; k <= HUB_KIND_MAX; k++) {
        const obj_vec *v = &g->kinds[k];
        for (size_t i = 0; i < v->n; i++) {
            if (v->items[i] != target) {
                cand_push(&keep, (hub_kind)k, v->items[i]->name, v->items[i]->body,
                          v->items[i]->len);
            }
        }
    }
    st = stream_build(&keep, &stream);
    if (st != KT_OK) {
        kt_err_set(err, st, "graph too large");
        goto done;
    }
    g->n_full_builds++;
    st = model_from_stream(&m, &stream, &out->diag, err);
    if (st != KT_OK) {
        goto done;
    }
    if (out->diag.n_errors > 0) {
        diag_rename_stored(&out->diag, &keep);
        st = kt_err_set(err, KT_EINVAL, "deleting %s %s breaks %zu references", hub_kind_name(kind),
                        name, out->diag.n_errors);
        goto done;
    }
    result_add(out, kind, name, HUB_OP_DELETED);
    st = commit_changes(g, NULL, 0, &d, 1, "api", m, NULL, out, err);
    m = NULL;
done:
    model_free(m);
    side_free(side);
    kt_buf_fini(&stream);
    kt_free(keep.items);
    return st;
}
