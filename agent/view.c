/*
 * agent/view.c — lazily rebuilt in-memory model of the cached subgraph.
 *
 * Contracts: see view.h. The model is rebuilt from scratch (model has no
 * in-place edit), which for a site of ~12k instances is tens of
 * milliseconds; it happens only on a request after a commit.
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

struct agent_view {
    agent_cache *cache;
    model *m;           /* NULL before the first build */
    uint64_t built_gen; /* cache generation the model reflects; 0 = never built */
    uint64_t builds;
};

agent_view *agent_view_new(agent_cache *cache)
{
    agent_view *v = kt_xcalloc(1, sizeof *v);
    v->cache = cache;
    return v;
}

void agent_view_free(agent_view *v)
{
    if (v == NULL) {
        return;
    }
    model_free(v->m);
    kt_free(v);
}

uint64_t agent_view_builds(const agent_view *v)
{
    return v->builds;
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
    uint64_t t0 = kt_clock_mono_ns();
    kt_buf b;
    kt_buf_init(&b, VIEW_MAX_BYTES);
    size_t expect = (size_t)agent_cache_count(v->cache, NULL);
    kt_status st = agent_cache_foreach_object(v->cache, NULL, collect_body, &b, err);
    if (st == KT_OK && b.len > 0 && b.data[b.len - 1] != '\n') {
        st = kt_err_set(err, KT_ETOOBIG, "cached objects exceed %zu bytes", (size_t)VIEW_MAX_BYTES);
    }
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st;
    }
    model *m = model_new();
    model_diag d;
    model_diag_init(&d);
    st = model_load_buffer(m, "cache", b.data != NULL ? b.data : "", b.len, &d, err);
    kt_buf_fini(&b);
    if (st != KT_OK) {
        model_diag_fini(&d);
        model_free(m);
        return st;
    }
    model_resolve(m, &d);
    size_t outside = model_diag_count(&d, "instance-target-unknown");
    size_t other = d.n_errors > outside ? d.n_errors - outside : 0;
    if (other > 0) {
        const model_diag_entry *first = NULL;
        for (size_t i = 0; i < d.n; i++) {
            if (d.entries[i].severity == MODEL_DIAG_ERROR &&
                strcmp(d.entries[i].code, "instance-target-unknown") != 0) {
                first = &d.entries[i];
                break;
            }
        }
        char q[300];
        KT_LOG(KT_LOG_WARN, "VIEW-DIAG", "errors=%zu first_code=%s first=%s", other,
               first != NULL ? first->code : "-",
               kt_log_quote(q, sizeof q, first != NULL ? first->msg : ""));
    }
    model_diag_fini(&d);
    model_free(v->m);
    v->m = m;
    v->built_gen = gen;
    v->builds++;
    KT_LOG(KT_LOG_DEBUG, "VIEW-BUILD", "objects=%zu instances=%zu outside_targets=%zu ms=%.3f",
           expect, model_n_instances(m), outside, (double)(kt_clock_mono_ns() - t0) / 1e6);
    return KT_OK;
}

kt_status agent_view_graph_json(agent_view *v, kt_buf *out, kt_err *err)
{
    kt_status st = agent_view_refresh(v, err);
    if (st != KT_OK) {
        return st;
    }
    st = model_graph_to_json(v->m, NULL, out);
    if (st != KT_OK) {
        return kt_err_set(err, st, "graph JSON: %s", kt_status_str(st));
    }
    return KT_OK;
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
