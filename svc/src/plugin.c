/*
 * svc/plugin.c — in-process twin services: dlopen'd plugins (sdk/ktwin.h).
 *
 * DESIGN. Each dispatch builds a host_ctx on the stack whose first member
 * is the public ktwin_ctx (the plugin sees only its api pointer). Strings
 * handed to the plugin and the events it emits live in the host's arena,
 * which is reset after each dispatch; emits are validated at once (names,
 * data a JSON object within the cap), buffered, and handed to the sink only
 * when the handler returned KTWIN_OK (all-or-nothing, svc/plugin.h).
 *
 * Invariants: by_iface maps each served interface to exactly one plugin;
 * keys are strings owned by the plugin entry. `busy` is set during a
 * handler call; a nested dispatch is a bug (asserted).
 *
 * Thread: loop only. Ownership: the host owns the plugin entries and their
 * dlopen handles; fini runs before dlclose.
 */
#include "svc/plugin.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#define KT_LOG_MOD "svc"
#include "kt/clock.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "ktwin.h"

#define DEFAULT_MAX_EMIT_BYTES (256u * 1024u)
#define DEFAULT_MAX_EMITS      1024u
/* Scratch arena block for the check of one emit's data (small JSON objects). */
#define PLUGIN_SCRATCH_BLOCK 4096u

typedef struct plugin_ent {
    char *path;
    char *name;
    void *dl;
    const ktwin_plugin *desc;
    void *state;
    bool inited;
    char **ifaces;
    size_t n_ifaces;
    kt_metric *m_calls;
    kt_metric *m_fail;
    kt_metric *m_emits;
    kt_metric *m_rejected;
} plugin_ent;

struct svc_plugin_host {
    svc_plugin_host_opts opts;
    plugin_ent **plugins;
    size_t n_plugins;
    kt_map by_iface;
    kt_arena arena;
    bool busy;
};

typedef struct host_ctx {
    ktwin_ctx pub; /* first: the plugin's ktwin_ctx * points here */
    svc_plugin_host *h;
    plugin_ent *p;
    model_event **emits;
    size_t n_emits;
    size_t cap_emits;
    /* ktwin_latest: the record copied out of the store callback */
    ktwin_state *state_out;
    bool state_found;
} host_ctx;

static host_ctx *ctx_of(ktwin_ctx *c)
{
    return (host_ctx *)(void *)c;
}

/* ------------------------------------------------------------ host API */

static int host_emit(ktwin_ctx *c,
                     ktwin_event_kind kind,
                     const char *iface,
                     const char *command,
                     const char *instance,
                     const char *data,
                     size_t data_len)
{
    host_ctx *x = ctx_of(c);
    svc_plugin_host *h = x->h;
    model_event ev;
    kt_err e = { 0 };
    char id[MODEL_EVENT_ID_GEN_CAP];
    char tbuf[MODEL_EVENT_TIME_CAP];
    uint64_t now = kt_clock_wall_ms();
    const char *why;
    cJSON *doc = NULL;
    void *mem;
    size_t need;
    model_event_class cls;
    memset(&ev, 0, sizeof(ev));
    switch (kind) {
    case KTWIN_EVENT_REAL:
        cls = MODEL_EVENT_REAL;
        break;
    case KTWIN_EVENT_VIRTUAL:
        cls = MODEL_EVENT_VIRTUAL;
        break;
    case KTWIN_EVENT_COMMAND:
        cls = MODEL_EVENT_COMMAND;
        break;
    case KTWIN_EVENT_STORE:
        cls = MODEL_EVENT_STORE;
        break;
    default:
        cls = MODEL_EVENT_NONE;
        break;
    }
    if (cls == MODEL_EVENT_NONE || iface == NULL || instance == NULL) {
        kt_err_set(&e, KT_EINVAL, "kind/iface/instance missing");
        goto reject;
    }
    if (cls != MODEL_EVENT_COMMAND) {
        command = NULL;
    } else if (command == NULL) {
        kt_err_set(&e, KT_EINVAL, "command: missing");
        goto reject;
    }
    if (model_event_set_class(&ev, cls, iface, command, &e) != KT_OK) {
        goto reject;
    }
    why = model_name_check(instance);
    if (why != NULL) {
        kt_err_set(&e, KT_EINVAL, "instance: %s", why);
        goto reject;
    }
    if (data == NULL || data_len == 0) {
        data = "{}";
        data_len = 2;
    }
    if (data_len > h->opts.max_emit_bytes) {
        KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-EMIT-REJECT", "plugin=%s reason=too_big bytes=%zu cap=%zu",
               x->p->name, data_len, h->opts.max_emit_bytes);
        kt_metrics_inc(x->p->m_rejected);
        return KTWIN_ETOOBIG;
    }
    if (x->n_emits >= h->opts.max_emits) {
        KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-EMIT-REJECT", "plugin=%s reason=too_many cap=%zu",
               x->p->name, h->opts.max_emits);
        kt_metrics_inc(x->p->m_rejected);
        return KTWIN_ETOOBIG;
    }
    /* A syntax and type check: the tree goes at once, so it lives in a scratch arena. */
    kt_arena scratch;
    kt_arena_init(&scratch, PLUGIN_SCRATCH_BLOCK);
    kt_json_scratch_begin(&scratch);
    kt_status jst = kt_json_parse(data, data_len, h->opts.max_emit_bytes, &doc, &e);
    bool is_object = jst == KT_OK && cJSON_IsObject(doc);
    cJSON_Delete(doc);
    kt_json_scratch_end();
    kt_arena_fini(&scratch);
    if (jst != KT_OK) {
        goto reject;
    }
    if (!is_object) {
        kt_err_set(&e, KT_EINVAL, "data: not a JSON object");
        goto reject;
    }
    ev.id = model_event_id_new(id, sizeof(id));
    ev.source = instance;
    ev.time = kt_clock_rfc3339(tbuf, sizeof(tbuf), now);
    ev.time_ms = now;
    ev.datacontenttype = NULL;
    ev.data = data;
    ev.data_len = data_len;
    need = model_event_copy_size(&ev);
    mem = kt_arena_alloc(&h->arena, need);
    if (x->n_emits == x->cap_emits) {
        size_t ncap = x->cap_emits == 0 ? 8 : x->cap_emits * 2;
        model_event **n = kt_arena_alloc(&h->arena, ncap * sizeof(*n));
        if (x->n_emits > 0) {
            memcpy(n, x->emits, x->n_emits * sizeof(*n));
        }
        x->emits = n;
        x->cap_emits = ncap;
    }
    x->emits[x->n_emits++] = model_event_copy_into(mem, need, &ev);
    return KTWIN_OK;
reject : {
    char q[300];
    KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-EMIT-REJECT", "plugin=%s reason=invalid err=%s", x->p->name,
           kt_log_quote(q, sizeof(q), e.msg));
}
    kt_metrics_inc(x->p->m_rejected);
    return KTWIN_EINVAL;
}

static const model *host_model(host_ctx *x)
{
    if (x->h->opts.graph == NULL) {
        return NULL;
    }
    return x->h->opts.graph(x->h->opts.user);
}

static int host_graph_relationships(
    ktwin_ctx *c, const char *instance, unsigned which, ktwin_rel *out, size_t cap, size_t *n_total)
{
    host_ctx *x = ctx_of(c);
    const model *m = host_model(x);
    model_instance *inst;
    size_t n = 0;
    uint32_t i;
    if (n_total != NULL) {
        *n_total = 0;
    }
    if (m == NULL || instance == NULL || (inst = model_instance_get(m, instance)) == NULL) {
        return KTWIN_ENOTFOUND;
    }
    if (which & KTWIN_REL_OUT) {
        for (i = 0; i < inst->n_rels; i++, n++) {
            if (n < cap && out != NULL) {
                out[n].name = inst->rels[i].name;
                out[n].iface = inst->rels[i].iface;
                out[n].instance = inst->rels[i].target;
                out[n].incoming = 0;
            }
        }
    }
    if (which & KTWIN_REL_IN) {
        for (i = 0; i < inst->n_in; i++, n++) {
            if (n < cap && out != NULL) {
                const model_instance *src = inst->in[i].src;
                out[n].name = src->rels[inst->in[i].rel].name;
                out[n].iface = src->iface_name;
                out[n].instance = src->name;
                out[n].incoming = 1;
            }
        }
    }
    if (n_total != NULL) {
        *n_total = n;
    }
    return KTWIN_OK;
}

static int host_graph_instances(
    ktwin_ctx *c, const char *iface, size_t offset, const char **out, size_t cap, size_t *n_total)
{
    host_ctx *x = ctx_of(c);
    const model *m = host_model(x);
    const model_iface *mi;
    size_t i;
    if (n_total != NULL) {
        *n_total = 0;
    }
    if (m == NULL || iface == NULL || (mi = model_iface_get(m, iface)) == NULL) {
        return KTWIN_ENOTFOUND;
    }
    for (i = 0; offset + i < mi->n_instances && i < cap && out != NULL; i++) {
        out[i] = mi->instances[offset + i]->name;
    }
    if (n_total != NULL) {
        *n_total = mi->n_instances;
    }
    return KTWIN_OK;
}

static int host_graph_instance_iface(ktwin_ctx *c, const char *instance, const char **iface_out)
{
    host_ctx *x = ctx_of(c);
    const model *m = host_model(x);
    model_instance *inst;
    if (m == NULL || instance == NULL || (inst = model_instance_get(m, instance)) == NULL) {
        return KTWIN_ENOTFOUND;
    }
    *iface_out = inst->iface_name;
    return KTWIN_OK;
}

static int latest_cb(const svc_record *r, void *user)
{
    host_ctx *x = user;
    ktwin_state *o = x->state_out;
    kt_arena *a = &x->h->arena;
    char tbuf[MODEL_EVENT_TIME_CAP];
    char *d = kt_arena_alloc(a, r->data_len + 1);
    if (r->data_len > 0) {
        memcpy(d, r->data, r->data_len);
    }
    d[r->data_len] = '\0';
    o->id = kt_arena_strdup(a, r->id != NULL ? r->id : "");
    o->time =
        kt_arena_strdup(a, r->time_ms != 0 ? kt_clock_rfc3339(tbuf, sizeof(tbuf), r->time_ms) : "");
    o->data = d;
    o->data_len = r->data_len;
    x->state_found = true;
    return 1;
}

static int host_latest(ktwin_ctx *c, const char *iface, const char *instance, ktwin_state *out)
{
    host_ctx *x = ctx_of(c);
    const svc_store_ops *s = x->h->opts.store;
    kt_err e = { 0 };
    kt_status st;
    if (s == NULL || s->latest == NULL || iface == NULL || instance == NULL || out == NULL) {
        return KTWIN_ENOTFOUND;
    }
    x->state_out = out;
    x->state_found = false;
    st = s->latest(s->user, iface, instance, latest_cb, x, &e);
    x->state_out = NULL;
    if (st == KT_ENOTFOUND || (st == KT_OK && !x->state_found)) {
        return KTWIN_ENOTFOUND;
    }
    if (st != KT_OK) {
        char q[300];
        KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-LATEST-FAIL", "plugin=%s iface=%s instance=%s err=%s",
               x->p->name, iface, instance, kt_log_quote(q, sizeof(q), e.msg));
        return KTWIN_EIO;
    }
    return KTWIN_OK;
}

static void host_log(ktwin_ctx *c, int level, const char *msg)
{
    host_ctx *x = ctx_of(c);
    char q[512];
    if (level < KT_LOG_ERR) {
        level = KT_LOG_ERR;
    }
    if (level > KT_LOG_DEBUG) {
        level = KT_LOG_DEBUG;
    }
    KT_LOG((kt_log_level)level, "SVC-PLUGIN-LOG", "plugin=%s msg=%s", x->p->name,
           kt_log_quote(q, sizeof(q), msg != NULL ? msg : ""));
}

static const ktwin_host_api host_api = {
    .struct_size = (uint32_t)sizeof(ktwin_host_api),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .emit = host_emit,
    .graph_relationships = host_graph_relationships,
    .graph_instances = host_graph_instances,
    .graph_instance_iface = host_graph_instance_iface,
    .latest = host_latest,
    .log = host_log,
};

/* ---------------------------------------------------------------- host */

kt_status svc_plugin_host_new(svc_plugin_host **out, const svc_plugin_host_opts *opts, kt_err *err)
{
    svc_plugin_host *h = kt_xcalloc(1, sizeof(*h));
    (void)err;
    if (opts != NULL) {
        h->opts = *opts;
    }
    if (h->opts.max_emit_bytes == 0) {
        h->opts.max_emit_bytes = DEFAULT_MAX_EMIT_BYTES;
    }
    if (h->opts.max_emits == 0) {
        h->opts.max_emits = DEFAULT_MAX_EMITS;
    }
    kt_map_init(&h->by_iface);
    kt_arena_init(&h->arena, 64 * 1024);
    *out = h;
    return KT_OK;
}

static void ent_free(plugin_ent *p)
{
    size_t i;
    if (p == NULL) {
        return;
    }
    if (p->inited && p->desc->fini != NULL) {
        p->desc->fini(p->state);
    }
    if (p->dl != NULL) {
        dlclose(p->dl);
    }
    for (i = 0; i < p->n_ifaces; i++) {
        kt_free(p->ifaces[i]);
    }
    kt_free(p->ifaces);
    kt_free(p->path);
    kt_free(p->name);
    kt_free(p);
}

void svc_plugin_host_free(svc_plugin_host *h)
{
    size_t i;
    if (h == NULL) {
        return;
    }
    for (i = h->n_plugins; i > 0; i--) {
        ent_free(h->plugins[i - 1]);
    }
    kt_free(h->plugins);
    kt_map_fini(&h->by_iface);
    kt_arena_fini(&h->arena);
    kt_free(h);
}

static bool list_has(const char *const *list, const char *name)
{
    size_t i;
    if (list == NULL) {
        return false;
    }
    for (i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static kt_status ent_add_iface(plugin_ent *p, const char *name, kt_err *err)
{
    const char *why = model_name_check(name);
    size_t i;
    if (why != NULL) {
        return kt_err_set(err, KT_EINVAL, "plugin %s: interface '%s': %s", p->path, name, why);
    }
    for (i = 0; i < p->n_ifaces; i++) {
        if (strcmp(p->ifaces[i], name) == 0) {
            return KT_OK;
        }
    }
    p->ifaces = kt_xrealloc(p->ifaces, (p->n_ifaces + 1) * sizeof(char *));
    p->ifaces[p->n_ifaces++] = kt_xstrdup(name);
    return KT_OK;
}

static kt_status ent_register(svc_plugin_host *h,
                              plugin_ent *p,
                              const ktwin_plugin *d,
                              const char *const *ifaces,
                              size_t n_ifaces,
                              const char *config_json,
                              kt_err *err);

kt_status svc_plugin_host_load(svc_plugin_host *h,
                               const char *path,
                               const char *const *ifaces,
                               size_t n_ifaces,
                               const char *config_json,
                               kt_err *err)
{
    plugin_ent *p = kt_xcalloc(1, sizeof(*p));
    ktwin_plugin_entry_fn entry = NULL;
    void *sym;
    const ktwin_plugin *d;
    kt_status st = KT_OK;
    p->path = kt_xstrdup(path);
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        const char *de = dlerror();
        st = kt_err_set(err, KT_EINVAL, "plugin %s: %s", path, de != NULL ? de : "dlopen failed");
        goto fail;
    }
    (void)dlerror();
    sym = dlsym(p->dl, KTWIN_PLUGIN_SYMBOL);
    if (sym == NULL) {
        st = kt_err_set(err, KT_EINVAL, "plugin %s: no symbol %s", path, KTWIN_PLUGIN_SYMBOL);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof(entry));
    d = entry();
    if (d == NULL) {
        st = kt_err_set(err, KT_EINVAL, "plugin %s: %s() returned NULL", path, KTWIN_PLUGIN_SYMBOL);
        goto fail;
    }
    return ent_register(h, p, d, ifaces, n_ifaces, config_json, err);
fail:
    ent_free(p);
    return st;
}

kt_status svc_plugin_host_add(svc_plugin_host *h,
                              const ktwin_plugin *desc,
                              const char *label,
                              const char *const *ifaces,
                              size_t n_ifaces,
                              const char *config_json,
                              kt_err *err)
{
    plugin_ent *p = kt_xcalloc(1, sizeof(*p));
    p->path = kt_xstrdup(label != NULL ? label : "(linked)");
    if (desc == NULL) {
        kt_err_set(err, KT_EINVAL, "plugin %s: no descriptor", p->path);
        ent_free(p);
        return KT_EINVAL;
    }
    return ent_register(h, p, desc, ifaces, n_ifaces, config_json, err);
}

/* Check d, init it and register p for its interfaces; frees p on failure. */
static kt_status ent_register(svc_plugin_host *h,
                              plugin_ent *p,
                              const ktwin_plugin *d,
                              const char *const *ifaces,
                              size_t n_ifaces,
                              const char *config_json,
                              kt_err *err)
{
    const char *path = p->path;
    kt_status st = KT_OK;
    size_t i;
    char lname[64];
    int rc;
    if (d->abi_version != KTWIN_PLUGIN_ABI_VERSION) {
        st = kt_err_set(err, KT_EINVAL, "plugin %s: ABI version %u, host speaks %u", path,
                        (unsigned)d->abi_version, (unsigned)KTWIN_PLUGIN_ABI_VERSION);
        goto fail;
    }
    if (d->struct_size < offsetof(ktwin_plugin, handle) + sizeof(d->handle) || d->handle == NULL) {
        st = kt_err_set(err, KT_EINVAL, "plugin %s: descriptor too small or no handle", path);
        goto fail;
    }
    if (d->name == NULL || d->name[0] == '\0' || strlen(d->name) >= sizeof(lname)) {
        st = kt_err_set(err, KT_EINVAL, "plugin %s: name missing or longer than %zu", path,
                        sizeof(lname) - 1);
        goto fail;
    }
    p->desc = d;
    p->name = kt_xstrdup(d->name);
    if (n_ifaces > 0) {
        for (i = 0; i < n_ifaces; i++) {
            st = ent_add_iface(p, ifaces[i], err);
            if (st != KT_OK) {
                goto fail;
            }
            if (d->interfaces != NULL && !list_has(d->interfaces, ifaces[i])) {
                KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-IFACE",
                       "plugin=%s iface=%s msg=\"not in the plugin's own list\"", p->name,
                       ifaces[i]);
            }
        }
    } else if (d->interfaces != NULL) {
        for (i = 0; d->interfaces[i] != NULL; i++) {
            st = ent_add_iface(p, d->interfaces[i], err);
            if (st != KT_OK) {
                goto fail;
            }
        }
    }
    if (p->n_ifaces == 0) {
        st = kt_err_set(err, KT_EINVAL,
                        "plugin %s: no interfaces (configure some or list them in the plugin)",
                        path);
        goto fail;
    }
    for (i = 0; i < p->n_ifaces; i++) {
        plugin_ent *other = kt_map_get(&h->by_iface, p->ifaces[i]);
        if (other != NULL) {
            st =
                kt_err_set(err, KT_ECONFLICT, "plugin %s: interface %s already served by plugin %s",
                           path, p->ifaces[i], other->name);
            goto fail;
        }
    }
    if (d->init != NULL) {
        rc = d->init(config_json != NULL ? config_json : "{}", &p->state);
        if (rc != 0) {
            st = kt_err_set(err, KT_EINVAL, "plugin %s: init refused (%d)", path, rc);
            goto fail;
        }
    }
    p->inited = true;
    if (h->opts.metrics != NULL) {
        const char *labels[] = { "plugin", p->name, NULL };
        kt_metrics_counter(&p->m_calls, h->opts.metrics, "ktwin_svc_plugin_calls_total",
                           "Plugin handler calls", labels, NULL);
        kt_metrics_counter(&p->m_fail, h->opts.metrics, "ktwin_svc_plugin_failures_total",
                           "Plugin handler calls that returned an error", labels, NULL);
        kt_metrics_counter(&p->m_emits, h->opts.metrics, "ktwin_svc_plugin_emits_total",
                           "Events emitted by plugins and delivered", labels, NULL);
        kt_metrics_counter(&p->m_rejected, h->opts.metrics, "ktwin_svc_plugin_emit_rejected_total",
                           "Emits refused (bad names, data, caps)", labels, NULL);
    }
    for (i = 0; i < p->n_ifaces; i++) {
        kt_map_set(&h->by_iface, p->ifaces[i], p);
    }
    h->plugins = kt_xrealloc(h->plugins, (h->n_plugins + 1) * sizeof(*h->plugins));
    h->plugins[h->n_plugins++] = p;
    KT_LOG(KT_LOG_INFO, "SVC-PLUGIN-LOADED", "plugin=%s path=%s ifaces=%zu", p->name, path,
           p->n_ifaces);
    return KT_OK;
fail:
    ent_free(p);
    return st;
}

bool svc_plugin_host_serves(const svc_plugin_host *h, const char *iface)
{
    return kt_map_get(&h->by_iface, iface) != NULL;
}

size_t svc_plugin_host_count(const svc_plugin_host *h)
{
    return h->n_plugins;
}

static void fill_event(ktwin_event *o, const model_event *ev, kt_arena *a)
{
    char type[MODEL_EVENT_TYPE_CAP];
    char *d;
    memset(o, 0, sizeof(*o));
    o->struct_size = (uint32_t)sizeof(*o);
    switch (ev->cls) {
    case MODEL_EVENT_VIRTUAL:
        o->kind = KTWIN_EVENT_VIRTUAL;
        break;
    case MODEL_EVENT_COMMAND:
        o->kind = KTWIN_EVENT_COMMAND;
        break;
    case MODEL_EVENT_STORE:
        o->kind = KTWIN_EVENT_STORE;
        break;
    default:
        o->kind = KTWIN_EVENT_REAL;
        break;
    }
    o->type = kt_arena_strdup(a, model_event_type_str(ev, type, sizeof(type)));
    o->iface = ev->iface;
    o->command = ev->cls == MODEL_EVENT_COMMAND ? ev->command : NULL;
    o->instance = ev->source != NULL ? ev->source : "";
    o->id = ev->id != NULL ? ev->id : "";
    o->time = ev->time != NULL ? ev->time : "";
    d = kt_arena_alloc(a, ev->data_len + 1);
    if (ev->data_len > 0) {
        memcpy(d, ev->data, ev->data_len);
    }
    d[ev->data_len] = '\0';
    o->data = d;
    o->data_len = ev->data_len;
}

kt_status svc_plugin_host_dispatch(svc_plugin_host *h,
                                   const char *iface,
                                   const model_event *ev,
                                   svc_emit_cb sink,
                                   void *sink_user,
                                   kt_err *err)
{
    plugin_ent *p = kt_map_get(&h->by_iface, iface);
    host_ctx x;
    ktwin_event kev;
    kt_status st = KT_OK;
    size_t i;
    int rc;
    if (p == NULL) {
        return kt_err_set(err, KT_ENOTFOUND, "no plugin serves interface %s", iface);
    }
    KT_ASSERT(!h->busy);
    memset(&x, 0, sizeof(x));
    x.pub.api = &host_api;
    x.h = h;
    x.p = p;
    fill_event(&kev, ev, &h->arena);
    h->busy = true;
    rc = p->desc->handle(&x.pub, &kev, p->state);
    h->busy = false;
    kt_metrics_inc(p->m_calls);
    if (rc != KTWIN_OK) {
        kt_metrics_inc(p->m_fail);
        KT_LOG(KT_LOG_WARN, "SVC-PLUGIN-FAIL",
               "plugin=%s iface=%s type=%s source=%s id=%s rc=%d discarded=%zu", p->name, iface,
               kev.type, kev.instance, kev.id, rc, x.n_emits);
        if (rc == KTWIN_EAGAIN) {
            st = kt_err_set(err, KT_EAGAIN, "plugin %s asks to retry event %s", p->name, kev.id);
        } else {
            st = kt_err_set_dep(err, KT_EDEP, "plugin", rc, "plugin %s failed on event %s (%d)",
                                p->name, kev.id, rc);
        }
        goto done;
    }
    for (i = 0; i < x.n_emits; i++) {
        st = sink(x.emits[i], sink_user);
        if (st != KT_OK) {
            kt_err_set(err, st, "sink refused event %zu of %zu from plugin %s", i + 1, x.n_emits,
                       p->name);
            break;
        }
        kt_metrics_inc(p->m_emits);
    }
done:
    kt_arena_reset(&h->arena);
    return st;
}
