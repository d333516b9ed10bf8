/*
 * crd.c — one CRD document: schema validation and typed extraction.
 *
 * DESIGN: KTWIN's own CRD schemas (dtd.ktwin/v0, compiled in from
 * model/crds/) are the source of truth for field names and types, so
 * unknown fields and wrong types are found by walking the document against
 * openAPIV3Schema (schema.c) rather than by hand-written checks that could
 * drift. The typed structs then take only what the platform uses. Semantic
 * rules the schemas cannot express (names, required-in-practice fields,
 * quantities) are checked here; cross-document rules in resolve.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "model_int.h"
#include "schema.h"

extern const unsigned char model_crd_twininterface[];
extern const size_t model_crd_twininterface_len;
extern const unsigned char model_crd_twininstance[];
extern const size_t model_crd_twininstance_len;
extern const unsigned char model_crd_placementpolicy[];
extern const size_t model_crd_placementpolicy_len;

/* ---- the compiled-in schemas ---------------------------------------------- */

typedef struct crd_schemas {
    kt_arena arena;
    const model_node *iface, *instance, *policy;
} crd_schemas;

static crd_schemas schemas;
static pthread_once_t schemas_once = PTHREAD_ONCE_INIT;

typedef struct schema_pick {
    const model_node **out;
} schema_pick;

/* model_node_clone without the schema's "description" annotations (a key "description" with a
 * scalar value; a property named description has a mapping, its schema, and is kept):
 * validation never reads them and they were three quarters of the TwinInterface schema
 * (1 MiB of nodes, now 0.75, kept for the process's life: agent-rss). */
static model_node *schema_clone(kt_arena *arena, const model_node *n)
{
    if (n->kind != MODEL_NODE_MAP) {
        if (n->kind == MODEL_NODE_SCALAR) {
            return model_node_clone(arena, n);
        }
        model_node *c = kt_arena_alloc(arena, sizeof *c);
        *c = *n;
        if (n->n > 0) {
            c->items = kt_arena_alloc(arena, n->n * sizeof *c->items);
            for (size_t i = 0; i < n->n; i++) {
                c->items[i] = schema_clone(arena, n->items[i]);
            }
        }
        return c;
    }
    model_node *c = kt_arena_alloc(arena, sizeof *c);
    *c = *n;
    c->n = 0;
    c->items = n->n > 0 ? kt_arena_alloc(arena, 2 * n->n * sizeof *c->items) : NULL;
    for (size_t i = 0; i < n->n; i++) {
        const model_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
        if (k->kind == MODEL_NODE_SCALAR && v->kind == MODEL_NODE_SCALAR &&
            strcmp(k->str, "description") == 0) {
            continue;
        }
        c->items[2 * c->n] = schema_clone(arena, k);
        c->items[2 * c->n + 1] = schema_clone(arena, v);
        c->n++;
    }
    return c;
}

static kt_status pick_schema_cb(const model_doc *doc, void *user)
{
    schema_pick *p = user;
    const model_node *versions = model_node_get(model_node_get(doc->root, "spec"), "versions");
    for (size_t i = 0; versions != NULL && i < versions->n; i++) {
        const char *name = model_node_get_str(versions->items[i], "name");
        if (name != NULL && strcmp(name, "v0") == 0) {
            const model_node *s =
                model_node_get(model_node_get(versions->items[i], "schema"), "openAPIV3Schema");
            if (s != NULL) {
                *p->out = schema_clone(&schemas.arena, s);
            }
        }
    }
    return KT_OK;
}

static void load_one_schema(const unsigned char *text, size_t len, const char *name, const model_node **out)
{
    kt_arena tmp;
    kt_arena_init(&tmp, 64u * 1024u);
    schema_pick p = { out };
    kt_err err = { 0 };
    model_parse_limits lim = { 256, 10000000 };
    kt_status st = model_parse_yaml(&tmp, name, (const char *)text, len, &lim, pick_schema_cb, &p, &err);
    kt_arena_fini(&tmp);
    /* The schemas are compiled in: failing to read them is a build bug. */
    KT_ASSERT(st == KT_OK && *out != NULL);
}

static void load_schemas(void)
{
    kt_arena_init(&schemas.arena, 256u * 1024u);
    load_one_schema(model_crd_twininterface, model_crd_twininterface_len,
                    "crds/dtd.ktwin_twininterfaces.yaml", &schemas.iface);
    load_one_schema(model_crd_twininstance, model_crd_twininstance_len,
                    "crds/dtd.ktwin_twininstances.yaml", &schemas.instance);
    load_one_schema(model_crd_placementpolicy, model_crd_placementpolicy_len,
                    "crds/edge.ktwin_placementpolicies.yaml", &schemas.policy);
}

size_t model_crd__schemas_bytes(void)
{
    pthread_once(&schemas_once, load_schemas);
    return schemas.arena.total_bytes;
}

/* ---- quantities -------------------------------------------------------------- */

/* Kubernetes quantity to a value scaled by 1000 (milli-units). */
static int quantity_milli(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
        return -1;
    }
    double v = strtod(s, &end);
    if (end == s || v < 0) {
        return -1;
    }
    double mult = 1.0;
    if (strcmp(end, "") == 0) {
        mult = 1.0;
    } else if (strcmp(end, "m") == 0) {
        mult = 0.001;
    } else if (strcmp(end, "k") == 0) {
        mult = 1e3;
    } else if (strcmp(end, "M") == 0) {
        mult = 1e6;
    } else if (strcmp(end, "G") == 0) {
        mult = 1e9;
    } else if (strcmp(end, "T") == 0) {
        mult = 1e12;
    } else if (strcmp(end, "Ki") == 0) {
        mult = 1024.0;
    } else if (strcmp(end, "Mi") == 0) {
        mult = 1024.0 * 1024.0;
    } else if (strcmp(end, "Gi") == 0) {
        mult = 1024.0 * 1024.0 * 1024.0;
    } else if (strcmp(end, "Ti") == 0) {
        mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
    } else {
        return -1;
    }
    double milli = v * mult * 1000.0;
    if (milli > 1.8e19) {
        return -1;
    }
    *out = (uint64_t)(milli + 0.5);
    return 0;
}

int model_crd__cpu_millis(const char *s, uint64_t *out)
{
    return quantity_milli(s, out);
}

int model_crd__bytes(const char *s, uint64_t *out)
{
    uint64_t milli;
    if (quantity_milli(s, &milli) != 0) {
        return -1;
    }
    *out = (milli + 999) / 1000;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

typedef struct doc_ctx {
    model *m;
    model_diag *diag;
    char path[256];
} doc_ctx;

static const char *str_or_null(model *m, const model_node *map, const char *key)
{
    const char *s = model_node_get_str(map, key);
    return s != NULL ? kt_arena_strdup(&m->arena, s) : NULL;
}

static int get_bool(const model_node *map, const char *key)
{
    int v = 0;
    model_node_bool(model_node_get(map, key), &v);
    return v;
}

static int get_int(const model_node *map, const char *key, int dflt)
{
    long long v;
    if (model_node_int(model_node_get(map, key), &v) != KT_OK || v < -2147483647LL || v > 2147483647LL) {
        return dflt;
    }
    return (int)v;
}

/* path_fmt takes one %zu (index); the path is formatted only for an error. */
static void check_name_at(doc_ctx *c, const model_node *n, const char *path_fmt, size_t index, const char *what)
{
    if (n == NULL || n->kind != MODEL_NODE_SCALAR) {
        return; /* the schema reports missing or wrongly typed values */
    }
    const char *why = model_name_check(n->str);
    if (why != NULL) {
        char path[160];
        snprintf(path, sizeof path, path_fmt, index);
        model_diag_error(c->diag, &n->mark, path, "invalid-name", "%s \"%s\" %s", what, n->str, why);
    }
}

/* path is a literal without '%'. */
static void check_name(doc_ctx *c, const model_node *n, const char *path, const char *what)
{
    check_name_at(c, n, path, 0, what);
}

static model_label *labels_of(doc_ctx *c, const model_node *map, size_t *n_out, const char *path)
{
    *n_out = 0;
    if (map == NULL || map->kind != MODEL_NODE_MAP || map->n == 0) {
        return NULL;
    }
    model_label *l = kt_arena_alloc(&c->m->arena, map->n * sizeof *l);
    size_t n = 0;
    for (size_t i = 0; i < map->n; i++) {
        const model_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
        if (k->kind != MODEL_NODE_SCALAR || v->kind != MODEL_NODE_SCALAR) {
            char p[300];
            snprintf(p, sizeof p, "%s.%s", path, k->str);
            model_diag_error(c->diag, &v->mark, p, "wrong-type", "label and annotation values must be strings");
            continue;
        }
        l[n].key = model_intern(c->m, k->str);
        l[n].value = model_intern(c->m, v->str);
        n++;
    }
    *n_out = n;
    return l;
}

static const char *label_get(const model_label *l, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].key, key) == 0) {
            return l[i].value;
        }
    }
    return NULL;
}

/* metadata: name (required, valid), namespace, labels, annotations. */
static const model_node *check_metadata(doc_ctx *c, const model_node *root, const char *kind)
{
    const model_node *md = model_node_get(root, "metadata");
    if (md == NULL) {
        model_diag_error(c->diag, &root->mark, "metadata", "missing-field", "%s has no metadata", kind);
        return NULL;
    }
    if (md->kind != MODEL_NODE_MAP) {
        model_diag_error(c->diag, &md->mark, "metadata", "wrong-type", "expected a map, got %s",
                         model_node_type_name(md));
        return NULL;
    }
    static const char *const known[] = { "name", "namespace", "labels", "annotations", "uid",
                                         "resourceVersion", "generation", "creationTimestamp",
                                         "deletionTimestamp", "deletionGracePeriodSeconds",
                                         "ownerReferences", "finalizers", "managedFields",
                                         "generateName", "selfLink" };
    for (size_t i = 0; i < md->n; i++) {
        const model_node *k = md->items[2 * i];
        int ok = 0;
        for (size_t j = 0; j < sizeof known / sizeof known[0]; j++) {
            if (strcmp(k->str, known[j]) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            char p[300];
            snprintf(p, sizeof p, "metadata.%s", k->str);
            model_diag_error(c->diag, &k->mark, p, "unknown-field", "unknown field \"%s\"", k->str);
        }
    }
    const model_node *name = model_node_get(md, "name");
    if (name == NULL) {
        model_diag_error(c->diag, &md->mark, "metadata.name", "missing-field",
                         "required field \"name\" is missing");
        return NULL;
    }
    if (name->kind != MODEL_NODE_SCALAR || model_node_scalar_type(name) == MODEL_SCALAR_NULL) {
        model_diag_error(c->diag, &name->mark, "metadata.name", "wrong-type", "expected a string");
        return NULL;
    }
    /* Instance names are checked by model_resolve, which also sees the
     * instances that graph import adds without a document. */
    if (strcmp(kind, "TwinInstance") != 0) {
        check_name(c, name, "metadata.name", "name");
    }
    const char *fields[] = { "labels", "annotations" };
    for (size_t i = 0; i < 2; i++) {
        const model_node *l = model_node_get(md, fields[i]);
        if (l != NULL && l->kind != MODEL_NODE_MAP &&
            !(l->kind == MODEL_NODE_SCALAR && model_node_scalar_type(l) == MODEL_SCALAR_NULL)) {
            char p[64];
            snprintf(p, sizeof p, "metadata.%s", fields[i]);
            model_diag_error(c->diag, &l->mark, p, "wrong-type", "expected a map, got %s",
                             model_node_type_name(l));
        }
    }
    return md;
}

/* ---- TwinInterface ------------------------------------------------------------- */

static const char *schema_summary(doc_ctx *c, const model_node *schema)
{
    if (schema == NULL) {
        return NULL;
    }
    const char *prim = model_node_get_str(schema, "primitiveType");
    if (prim != NULL) {
        return model_intern(c->m, prim);
    }
    const model_node *ct = model_node_get(schema, "complexType");
    if (ct != NULL) {
        const char *t = model_node_get_str(ct, "type");
        return model_intern(c->m, t != NULL ? t : "Object");
    }
    const model_node *et = model_node_get(schema, "enumType");
    if (et != NULL) {
        const char *vs = model_node_get_str(et, "valueSchema");
        char buf[64];
        snprintf(buf, sizeof buf, "Enum<%s>", vs != NULL ? vs : "string");
        return model_intern(c->m, buf);
    }
    return NULL;
}

static void add_members(doc_ctx *c,
                        model_iface *f,
                        const model_node *spec,
                        const char *key,
                        model_member_kind kind,
                        model_vec *out)
{
    const model_node *list = model_node_get(spec, key);
    if (list == NULL || list->kind != MODEL_NODE_SEQ) {
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const model_node *it = list->items[i];
        if (it->kind != MODEL_NODE_MAP) {
            continue; /* reported by the schema */
        }
        char path[128];
        snprintf(path, sizeof path, "spec.%s[%zu].name", key, i);
        const model_node *name = model_node_get(it, "name");
        if (name == NULL || name->kind != MODEL_NODE_SCALAR) {
            model_diag_error(c->diag, &it->mark, path, "missing-field",
                             "required field \"name\" is missing");
            continue;
        }
        check_name(c, name, path, key);
        model_member *mb = kt_arena_calloc(&c->m->arena, sizeof *mb);
        mb->kind = kind;
        mb->name = model_intern(c->m, name->str);
        mb->declared_in = f;
        mb->mark = it->mark;
        mb->mark.file = name->mark.file;
        mb->min_multiplicity = get_int(it, "minMultiplicity", -1);
        mb->max_multiplicity = get_int(it, "maxMultiplicity", -1);
        mb->schema = schema_summary(c, model_node_get(it, "schema"));
        if (kind == MODEL_MEMBER_PROPERTY) {
            mb->writable = get_bool(it, "writable");
        }
        if (kind == MODEL_MEMBER_RELATIONSHIP) {
            mb->writable = get_bool(it, "writeable");
            mb->aggregate_data = get_bool(it, "aggregateData");
            /* No target interface: any interface may be related (DTDL allows it). */
            const model_node *target = model_node_get(it, "interface");
            if (target != NULL && target->kind == MODEL_NODE_SCALAR && target->len > 0) {
                mb->target = model_intern(c->m, target->str);
            }
        }
        for (size_t j = 0; j < out->n; j++) {
            const model_member *prev = out->items[j];
            if (prev->kind == kind && prev->name == mb->name) {
                model_diag_error(c->diag, &name->mark, path, "duplicate-name",
                                 "%s \"%s\" is declared twice (first at line %u)", key, mb->name,
                                 prev->mark.line);
            }
        }
        model_vec__push(out, mb);
    }
}

/* The annotation ktwin.io/components: [{"name": .., "interface": ..}]. */
static void add_components(doc_ctx *c, model_iface *f, const model_node *md, model_vec *out)
{
    const model_node *ann = model_node_get(md, "annotations");
    const model_node *v = model_node_get(ann, MODEL_ANNOTATION_COMPONENTS);
    if (v == NULL || v->kind != MODEL_NODE_SCALAR) {
        return;
    }
    const char *path = "metadata.annotations." MODEL_ANNOTATION_COMPONENTS;
    cJSON *arr = cJSON_ParseWithLength(v->str, v->len);
    if (arr == NULL || !cJSON_IsArray(arr)) {
        model_diag_error(c->diag, &v->mark, path, "invalid-value",
                         "expected a JSON list of {\"name\", \"interface\"}");
        cJSON_Delete(arr);
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *iface = cJSON_GetObjectItemCaseSensitive(it, "interface");
        if (!cJSON_IsString(name) || !cJSON_IsString(iface)) {
            model_diag_error(c->diag, &v->mark, path, "invalid-value",
                             "each component needs string \"name\" and \"interface\"");
            continue;
        }
        model_member *mb = kt_arena_calloc(&c->m->arena, sizeof *mb);
        mb->kind = MODEL_MEMBER_COMPONENT;
        mb->name = model_intern(c->m, name->valuestring);
        mb->target = model_intern(c->m, iface->valuestring);
        mb->declared_in = f;
        mb->min_multiplicity = mb->max_multiplicity = -1;
        mb->mark = v->mark;
        model_vec__push(out, mb);
    }
    cJSON_Delete(arr);
}

static void add_parents(doc_ctx *c, model_iface *f, const model_node *spec, const model_node *md)
{
    model_vec parents = { 0 };
    const model_node *ext = model_node_get(spec, "extendsInterface");
    if (ext != NULL && ext->kind == MODEL_NODE_SCALAR && ext->len > 0) {
        model_vec__push(&parents, (void *)model_intern(c->m, ext->str));
    }
    const model_node *ann = model_node_get(model_node_get(md, "annotations"), MODEL_ANNOTATION_EXTENDS);
    if (ann != NULL && ann->kind == MODEL_NODE_SCALAR) {
        const char *p = ann->str;
        while (*p != '\0') {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            while (n > 0 && (*p == ' ')) {
                p++;
                n--;
            }
            while (n > 0 && p[n - 1] == ' ') {
                n--;
            }
            if (n > 0) {
                char tmp[MODEL_NAME_MAX + 1];
                if (n > MODEL_NAME_MAX) {
                    n = MODEL_NAME_MAX;
                }
                memcpy(tmp, p, n);
                tmp[n] = '\0';
                const char *name = model_intern(c->m, tmp);
                int dup = 0;
                for (size_t i = 0; i < parents.n; i++) {
                    dup |= parents.items[i] == name;
                }
                if (!dup) {
                    model_vec__push(&parents, (void *)name);
                }
            }
            p += comma != NULL ? (size_t)(comma - p) + 1 : strlen(p);
        }
        if (ext != NULL && ext->kind == MODEL_NODE_SCALAR && parents.n > 0 &&
            strcmp(parents.items[0], ext->str) != 0) {
            model_diag_error(c->diag, &ann->mark, "metadata.annotations." MODEL_ANNOTATION_EXTENDS,
                             "invalid-value",
                             "the first parent must be spec.extendsInterface (\"%s\")", ext->str);
        }
    }
    if (parents.n > 0) {
        f->parents = kt_arena_alloc(&c->m->arena, parents.n * sizeof *f->parents);
        memcpy(f->parents, parents.items, parents.n * sizeof *f->parents);
        f->n_parents = parents.n;
    }
    model_vec__fini(&parents);
}

static void add_service(doc_ctx *c, model_iface *f, const model_node *spec)
{
    const model_node *svc = model_node_get(spec, "service");
    if (svc == NULL || svc->kind != MODEL_NODE_MAP) {
        return;
    }
    f->has_service = 1;
    const model_node *as = model_node_get(svc, "autoScaling");
    f->autoscaling.min_scale = get_int(as, "minScale", -1);
    f->autoscaling.max_scale = get_int(as, "maxScale", -1);
    f->autoscaling.target = get_int(as, "target", -1);
    f->autoscaling.target_utilization = get_int(as, "targetUtilizationPercentage", -1);
    f->autoscaling.parallelism = get_int(as, "parallelism", -1);
    const char *metric = model_node_get_str(as, "metric");
    if (metric != NULL) {
        if (strcmp(metric, "concurrency") != 0 && strcmp(metric, "rps") != 0 &&
            strcmp(metric, "cpu") != 0 && strcmp(metric, "memory") != 0) {
            model_diag_error(c->diag, &model_node_get(as, "metric")->mark,
                             "spec.service.autoScaling.metric", "invalid-value",
                             "\"%s\" is not one of: concurrency, rps, cpu, memory", metric);
        }
        f->autoscaling.metric = model_intern(c->m, metric);
    }
    const model_node *containers =
        model_node_get(model_node_get(model_node_get(svc, "template"), "spec"), "containers");
    for (size_t i = 0; containers != NULL && containers->kind == MODEL_NODE_SEQ && i < containers->n; i++) {
        const model_node *ct = containers->items[i];
        if (f->image == NULL) {
            f->image = str_or_null(c->m, ct, "image");
        }
        const model_node *req = model_node_get(model_node_get(ct, "resources"), "requests");
        const model_node *cpu = model_node_get(req, "cpu");
        const model_node *mem = model_node_get(req, "memory");
        uint64_t v;
        char path[128];
        if (cpu != NULL && cpu->kind == MODEL_NODE_SCALAR) {
            if (model_crd__cpu_millis(cpu->str, &v) != 0 || v > UINT32_MAX) {
                snprintf(path, sizeof path, "spec.service.template.spec.containers[%zu].resources.requests.cpu", i);
                model_diag_error(c->diag, &cpu->mark, path, "invalid-value",
                                 "\"%s\" is not a CPU quantity (100m, 0.5, 2)", cpu->str);
            } else {
                f->cpu_millis += (uint32_t)v;
            }
        }
        if (mem != NULL && mem->kind == MODEL_NODE_SCALAR) {
            if (model_crd__bytes(mem->str, &v) != 0) {
                snprintf(path, sizeof path, "spec.service.template.spec.containers[%zu].resources.requests.memory", i);
                model_diag_error(c->diag, &mem->mark, path, "invalid-value",
                                 "\"%s\" is not a memory quantity (64Mi, 1Gi, 128M)", mem->str);
            } else {
                f->memory_bytes += v;
            }
        }
    }
}

static void add_interface(doc_ctx *c, const model_node *root, const model_node *md)
{
    model *m = c->m;
    const model_node *spec = model_node_get(root, "spec");
    model_iface *f = kt_arena_calloc(&m->arena, sizeof *f);
    const model_node *name = model_node_get(md, "name");
    f->name = model_intern(m, name->str);
    f->mark = name->mark;
    f->id = str_or_null(m, spec, "id");
    f->display_name = str_or_null(m, spec, "displayName");
    f->description = str_or_null(m, spec, "description");
    f->labels = labels_of(c, model_node_get(md, "labels"), &f->n_labels, "metadata.labels");
    const model_node *es = model_node_get(spec, "eventStore");
    f->persist_real_event = get_bool(es, "persistRealEvent");
    f->persist_virtual_event = get_bool(es, "persistVirtualEvent");
    add_parents(c, f, spec, md);
    model_vec members = { 0 };
    add_members(c, f, spec, "properties", MODEL_MEMBER_PROPERTY, &members);
    add_members(c, f, spec, "telemetries", MODEL_MEMBER_TELEMETRY, &members);
    add_members(c, f, spec, "commands", MODEL_MEMBER_COMMAND, &members);
    add_members(c, f, spec, "relationships", MODEL_MEMBER_RELATIONSHIP, &members);
    add_components(c, f, md, &members);
    if (members.n > 0) {
        f->own = kt_arena_alloc(&m->arena, members.n * sizeof *f->own);
        for (size_t i = 0; i < members.n; i++) {
            f->own[i] = *(model_member *)members.items[i];
        }
        f->n_own = members.n;
    }
    model_vec__fini(&members);
    add_service(c, f, spec);
    const model_iface *prev = kt_map_put(&m->iface_by_name, f->name, f);
    if (prev != NULL) {
        model_diag_error(c->diag, &name->mark, "metadata.name", "duplicate-name",
                         "TwinInterface \"%s\" is already defined at %s:%u", f->name,
                         prev->mark.file, prev->mark.line);
        return;
    }
    model_vec__push(&m->ifaces, f);
}

/* ---- TwinInstance ------------------------------------------------------------- */

static void add_instance(doc_ctx *c, const model_node *root, const model_node *md)
{
    model *m = c->m;
    const model_node *spec = model_node_get(root, "spec");
    const model_node *name = model_node_get(md, "name");
    const model_node *iface = model_node_get(spec, "interface");
    if (iface == NULL || iface->kind != MODEL_NODE_SCALAR) {
        if (iface == NULL) {
            model_diag_error(c->diag, spec != NULL ? &spec->mark : &root->mark, "spec.interface",
                             "missing-field", "required field \"interface\" is missing");
        }
        return;
    }
    const model_node *rels = model_node_get(spec, "twinInstanceRelationships");
    size_t n_rels = 0;
    model_rel tmp[64];
    model_rel *rv = tmp;
    size_t cap = rels != NULL && rels->kind == MODEL_NODE_SEQ ? rels->n : 0;
    if (cap > 64) {
        rv = kt_xmalloc(cap * sizeof *rv);
    }
    for (size_t i = 0; i < cap; i++) {
        const model_node *it = rels->items[i];
        const char *rn = model_node_get_str(it, "name");
        const char *ri = model_node_get_str(it, "interface");
        const char *rt = model_node_get_str(it, "instance");
        if (rn == NULL || ri == NULL || rt == NULL) {
            continue; /* the schema reported it */
        }
        check_name_at(c, model_node_get(it, "name"), "spec.twinInstanceRelationships[%zu].name", i,
                      "relationship");
        rv[n_rels].name = rn;
        rv[n_rels].iface = ri;
        rv[n_rels].target = rt;
        rv[n_rels].line = it->mark.line;
        rv[n_rels].col = it->mark.col;
        n_rels++;
    }
    model_instance *inst = model_add_instance(m, name->str, iface->str, rv, n_rels, &name->mark);
    if (rv != tmp) {
        kt_free(rv);
    }
    if (inst == NULL) {
        return; /* a duplicate name: model_resolve reports it */
    }
    size_t n_labels = 0;
    inst->labels = labels_of(c, model_node_get(md, "labels"), &n_labels, "metadata.labels");
    inst->n_labels = (uint32_t)n_labels;
    inst->site = label_get(inst->labels, n_labels, MODEL_LABEL_SITE);
    const model_node *data = model_node_get(spec, "data");
    const model_node *eps = model_node_get(spec, "endpointSettings");
    if (data != NULL || eps != NULL) {
        kt_buf b;
        kt_buf_init(&b, 16u * 1024u * 1024u);
        kt_buf_putc(&b, '{');
        if (data != NULL) {
            kt_buf_puts(&b, "\"data\":");
            model_node_to_json(data, &b);
        }
        if (eps != NULL) {
            kt_buf_puts(&b, data != NULL ? ",\"endpointSettings\":" : "\"endpointSettings\":");
            model_node_to_json(eps, &b);
        }
        kt_buf_putc(&b, '}');
        inst->extra_json = kt_arena_strndup(&m->arena, b.data, b.len);
        kt_buf_fini(&b);
    }
}

/* ---- PlacementPolicy ----------------------------------------------------------- */

static model_placement_target placement_of(const char *s)
{
    if (s != NULL && strcmp(s, "edge") == 0) {
        return MODEL_PLACE_EDGE;
    }
    if (s != NULL && strcmp(s, "prefer-edge") == 0) {
        return MODEL_PLACE_PREFER_EDGE;
    }
    return MODEL_PLACE_CLOUD;
}

static const char **strings_of(doc_ctx *c, const model_node *seq, size_t *n_out)
{
    *n_out = 0;
    if (seq == NULL || seq->kind != MODEL_NODE_SEQ || seq->n == 0) {
        return NULL;
    }
    const char **out = kt_arena_alloc(&c->m->arena, seq->n * sizeof *out);
    size_t n = 0;
    for (size_t i = 0; i < seq->n; i++) {
        if (seq->items[i]->kind == MODEL_NODE_SCALAR) {
            out[n++] = model_intern(c->m, seq->items[i]->str);
        }
    }
    *n_out = n;
    return out;
}

static void add_policy(doc_ctx *c, const model_node *root, const model_node *md)
{
    model *m = c->m;
    const model_node *spec = model_node_get(root, "spec");
    const model_node *name = model_node_get(md, "name");
    model_policy *p = kt_arena_calloc(&m->arena, sizeof *p);
    p->name = model_intern(m, name->str);
    p->mark = name->mark;
    p->priority = get_int(spec, "priority", 0);
    p->default_placement = placement_of(model_node_get_str(spec, "defaultPlacement"));
    const model_node *sf = model_node_get(spec, "siteFrom");
    if (sf != NULL && sf->kind == MODEL_NODE_SEQ && sf->n > 0) {
        p->site_from = kt_arena_calloc(&m->arena, sf->n * sizeof *p->site_from);
        for (size_t i = 0; i < sf->n; i++) {
            const char *rel = model_node_get_str(sf->items[i], "relationship");
            if (rel == NULL) {
                continue;
            }
            const char *dir = model_node_get_str(sf->items[i], "direction");
            p->site_from[p->n_site_from].relationship = model_intern(m, rel);
            p->site_from[p->n_site_from].incoming = dir != NULL && strcmp(dir, "incoming") == 0;
            p->n_site_from++;
        }
    }
    const model_node *rules = model_node_get(spec, "rules");
    if (rules != NULL && rules->kind == MODEL_NODE_SEQ && rules->n > 0) {
        p->rules = kt_arena_calloc(&m->arena, rules->n * sizeof *p->rules);
        for (size_t i = 0; i < rules->n; i++) {
            const model_node *r = rules->items[i];
            const char *rname = model_node_get_str(r, "name");
            if (r->kind != MODEL_NODE_MAP || rname == NULL) {
                continue;
            }
            model_policy_rule *rule = &p->rules[p->n_rules++];
            rule->name = model_intern(m, rname);
            rule->mark = r->mark;
            const model_node *match = model_node_get(r, "match");
            rule->interfaces = strings_of(c, model_node_get(match, "interfaces"), &rule->n_interfaces);
            rule->match_labels = labels_of(c, model_node_get(match, "labels"), &rule->n_match_labels,
                                           "spec.rules.match.labels");
            rule->placement = placement_of(model_node_get_str(r, "placement"));
            rule->sites = strings_of(c, model_node_get(r, "sites"), &rule->n_sites);
            const char *off = model_node_get_str(r, "offline");
            rule->offline = off == NULL || strcmp(off, "none") == 0 ? MODEL_OFFLINE_NONE
                            : strcmp(off, "required") == 0        ? MODEL_OFFLINE_REQUIRED
                                                                  : MODEL_OFFLINE_PREFERRED;
            const char *ovf = model_node_get_str(r, "overflow");
            rule->overflow = ovf != NULL && strcmp(ovf, "pending") == 0 ? MODEL_OVERFLOW_PENDING
                                                                        : MODEL_OVERFLOW_CLOUD;
            if (rule->offline == MODEL_OFFLINE_REQUIRED && rule->placement == MODEL_PLACE_CLOUD) {
                char path[64];
                snprintf(path, sizeof path, "spec.rules[%zu].offline", i);
                model_diag_error(c->diag, &r->mark, path, "invalid-value",
                                 "offline: required cannot hold for placement: cloud");
            }
            for (size_t j = 0; j + 1 < p->n_rules; j++) {
                if (p->rules[j].name == rule->name) {
                    char path[64];
                    snprintf(path, sizeof path, "spec.rules[%zu].name", i);
                    model_diag_error(c->diag, &r->mark, path, "duplicate-name",
                                     "rule \"%s\" is declared twice", rule->name);
                }
            }
        }
    }
    const model_policy *prev = kt_map_put(&m->policy_by_name, p->name, p);
    if (prev != NULL) {
        model_diag_error(c->diag, &name->mark, "metadata.name", "duplicate-name",
                         "PlacementPolicy \"%s\" is already defined at %s:%u", p->name,
                         prev->mark.file, prev->mark.line);
        return;
    }
    model_vec__push(&m->policies, p);
}

/* ---- dispatch ------------------------------------------------------------------ */

static kt_status add_object(doc_ctx *c, const model_node *root, const char *path_prefix);

/* kind: List (kubectl get -o yaml) or <Kind>List: every item is a document. */
static kt_status add_list(doc_ctx *c, const model_node *root)
{
    const model_node *items = model_node_get(root, "items");
    if (items == NULL || items->kind != MODEL_NODE_SEQ) {
        model_diag_error(c->diag, &root->mark, "items", "missing-field", "a List needs a list of items");
        return KT_OK;
    }
    for (size_t i = 0; i < items->n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "items[%zu]", i);
        add_object(c, items->items[i], prefix);
    }
    return KT_OK;
}

static kt_status add_object(doc_ctx *c, const model_node *root, const char *path_prefix)
{
    if (root->kind != MODEL_NODE_MAP) {
        model_diag_error(c->diag, &root->mark, path_prefix, "wrong-type",
                         "a document must be a map, got %s", model_node_type_name(root));
        return KT_OK;
    }
    const char *api = model_node_get_str(root, "apiVersion");
    const char *kind = model_node_get_str(root, "kind");
    if (kind != NULL && (strcmp(kind, "List") == 0 ||
                         (api != NULL && (strcmp(api, MODEL_API_DTD) == 0 || strcmp(api, MODEL_API_EDGE) == 0) &&
                          strlen(kind) > 4 && strcmp(kind + strlen(kind) - 4, "List") == 0))) {
        return add_list(c, root);
    }
    if (api == NULL || kind == NULL) {
        model_diag_error(c->diag, &root->mark, path_prefix, "missing-field",
                         "a document needs apiVersion and kind");
        return KT_OK;
    }
    const model_node *schema = NULL;
    int which = 0;
    if (strcmp(api, MODEL_API_DTD) == 0 && strcmp(kind, "TwinInterface") == 0) {
        schema = schemas.iface;
        which = 1;
    } else if (strcmp(api, MODEL_API_DTD) == 0 && strcmp(kind, "TwinInstance") == 0) {
        schema = schemas.instance;
        which = 2;
    } else if (strcmp(api, MODEL_API_EDGE) == 0 && strcmp(kind, "PlacementPolicy") == 0) {
        schema = schemas.policy;
        which = 3;
    } else if (strcmp(api, MODEL_API_DTD) == 0 || strcmp(api, MODEL_API_EDGE) == 0) {
        model_diag_error(c->diag, &root->mark, "kind", "unknown-kind",
                         "%s has no kind \"%s\" (TwinInterface, TwinInstance, PlacementPolicy)", api, kind);
        return KT_OK;
    } else {
        model_diag_warn(c->diag, &root->mark, "kind", "skipped-kind",
                        "%s %s is not a KTWIN object; skipped", api, kind);
        return KT_OK;
    }
    size_t errors_before = c->diag->n_errors;
    model_schema__validate(schema, root, path_prefix, "metadata", c->diag);
    const model_node *md = check_metadata(c, root, kind);
    if (md == NULL) {
        return KT_OK;
    }
    if (which == 1) {
        add_interface(c, root, md);
    } else if (which == 2) {
        add_instance(c, root, md);
    } else {
        add_policy(c, root, md);
    }
    (void)errors_before;
    return KT_OK;
}

kt_status model_crd__add_doc(model *m, const model_doc *doc, model_diag *diag)
{
    pthread_once(&schemas_once, load_schemas);
    if (doc->root == NULL ||
        (doc->root->kind == MODEL_NODE_SCALAR && model_node_scalar_type(doc->root) == MODEL_SCALAR_NULL)) {
        return KT_OK; /* empty document */
    }
    doc_ctx c;
    c.m = m;
    c.diag = diag;
    m->resolved = 0;
    return add_object(&c, doc->root, "");
}
