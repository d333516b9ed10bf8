/*
 * ontology.c — DTDL ontology to TwinInterface YAML with KTWIN's deployment
 * additions. See ontology.h.
 *
 * DESIGN: model/dtdl.h hands out each converted interface as YAML text only,
 * so each document is read back (model_parse_yaml -> model_node_to_json ->
 * cJSON), edited as a tree and emitted with model_emit_yaml_doc. The emitter
 * quotes whatever YAML would read as another type, so the round trip keeps
 * every value; it costs a few milliseconds for 63 interfaces.
 */
#include "ontology.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "kt/mem.h"
#include "model/dtdl.h"
#include "model/emit.h"
#include "model/node.h"

/* ---- what KTWIN added ------------------------------------------------------- */

typedef struct sim_extra_rel {
    const char *iface;
    const char *name;
    const char *target;
} sim_extra_rel;

static const sim_extra_rel extra_rels[] = {
    { "city-pole", "refNeighborhood", "s4city-city-neighborhood" },
    { "city-pole", "refTrafficFlow", "ngsi-ld-city-trafficflowobserved" },
    { "ngsi-ld-city-airqualityobserved", "citypole", "city-pole" },
    { "ngsi-ld-city-noiselevelobserved", "refWeatherObserved", "ngsi-ld-city-weatherobserved" },
};

typedef struct sim_service {
    const char *iface;
    const char *image; /* ghcr.io/open-digital-twin/ktwin-<image>:0.1 (golang/cmd/<image>) */
    const char *cpu;
    const char *memory;
} sim_service;

static const sim_service services[] = {
    { "ngsi-ld-city-airqualityobserved", "air-quality-observed-service", "100m", "100Mi" },
    { "city-pole", "city-pole-service", "300m", "228Mi" },
    { "s4city-city-neighborhood", "neighborhood-service", "100m", "64Mi" },
    { "ngsi-ld-city-weatherobserved", "weather-observed-service", "100m", "100Mi" },
    { "ngsi-ld-city-crowdflowobserved", "crowd-flow-observed-service", "100m", "100Mi" },
    { "ngsi-ld-city-trafficflowobserved", "traffic-flow-observed-service", "100m", "100Mi" },
    { "ngsi-ld-city-device", "device-service", "100m", "64Mi" },
    { "ngsi-ld-city-streetlight", "streetlight-service", "100m", "64Mi" },
    { "ngsi-ld-city-parkingspot", "parking-spot-service", "100m", "64Mi" },
    { "ngsi-ld-city-offstreetparking", "off-street-parking-service", "100m", "64Mi" },
};

typedef struct sim_event_store {
    const char *iface;
    int persist_real;
    int persist_virtual;
} sim_event_store;

static const sim_event_store event_stores[] = {
    { "ngsi-ld-city-noiselevelobserved", 1, 0 },
    { "ngsi-ld-city-evchargingstation", 1, 0 },
    { "ngsi-ld-city-device", 0, 1 },
};

/* ---- cJSON helpers (allocation failure aborts: this is a batch tool) -------- */

static cJSON *must(cJSON *p)
{
    KT_ASSERT(p != NULL);
    return p;
}

static cJSON *obj_child(cJSON *parent, const char *key)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (c == NULL) {
        c = must(cJSON_AddObjectToObject(parent, key));
    }
    return c;
}

static void add_str(cJSON *obj, const char *key, const char *val)
{
    must(cJSON_AddStringToObject(obj, key, val));
}

static void add_num(cJSON *obj, const char *key, double v)
{
    must(cJSON_AddNumberToObject(obj, key, v));
}

static void add_relationship(cJSON *spec, const char *name, const char *target)
{
    cJSON *rels = cJSON_GetObjectItemCaseSensitive(spec, "relationships");
    if (rels == NULL) {
        rels = must(cJSON_AddArrayToObject(spec, "relationships"));
    }
    const cJSON *it;
    cJSON_ArrayForEach (it, rels) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            return; /* the ontology has it already */
        }
    }
    cJSON *r = must(cJSON_CreateObject());
    add_str(r, "name", name);
    add_str(r, "interface", target);
    must(cJSON_AddItemToArray(rels, r) ? r : NULL);
}

static void add_service(cJSON *spec, const char *iface, const sim_service *s)
{
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "service");
    cJSON *svc = must(cJSON_AddObjectToObject(spec, "service"));
    cJSON *as = must(cJSON_AddObjectToObject(svc, "autoScaling"));
    /* KTWIN's CLI defaults (KTWIN.md §1.5). */
    add_num(as, "minScale", 0);
    add_num(as, "maxScale", 20);
    add_num(as, "target", 10);
    add_num(as, "targetUtilizationPercentage", 65);
    add_num(as, "parallelism", 100);
    add_str(as, "metric", "concurrency");
    cJSON *tpl = must(cJSON_AddObjectToObject(svc, "template"));
    cJSON *pod = must(cJSON_AddObjectToObject(tpl, "spec"));
    cJSON *containers = must(cJSON_AddArrayToObject(pod, "containers"));
    cJSON *c = must(cJSON_CreateObject());
    must(cJSON_AddItemToArray(containers, c) ? c : NULL);
    char image[160];
    snprintf(image, sizeof image, "ghcr.io/open-digital-twin/ktwin-%s:0.1", s->image);
    add_str(c, "name", iface);
    add_str(c, "image", image);
    add_str(c, "imagePullPolicy", "IfNotPresent");
    cJSON *req =
        must(cJSON_AddObjectToObject(must(cJSON_AddObjectToObject(c, "resources")), "requests"));
    add_str(req, "cpu", s->cpu);
    add_str(req, "memory", s->memory);
}

static void set_event_store(cJSON *spec, const sim_event_store *e)
{
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "eventStore");
    cJSON *es = must(cJSON_AddObjectToObject(spec, "eventStore"));
    must(cJSON_AddBoolToObject(es, "persistRealEvent", e->persist_real));
    must(cJSON_AddBoolToObject(es, "persistVirtualEvent", e->persist_virtual));
}

/*
 * KTWIN's air-quality service commands the pole (ktwin.command.city-pole.
 * updateairqualityindex, KTWIN.md §6.1-6.2), but the DTDL declares the
 * command only on the neighborhood: without it on city-pole, routing drops
 * the pole's commands (UNKNOWN_COMMAND).
 */
static void add_pole_command(cJSON *spec)
{
    cJSON *cmds = cJSON_GetObjectItemCaseSensitive(spec, "commands");
    if (cmds == NULL) {
        cmds = must(cJSON_AddArrayToObject(spec, "commands"));
    }
    cJSON *c = must(cJSON_CreateObject());
    must(cJSON_AddItemToArray(cmds, c) ? c : NULL);
    add_str(c, "name", "updateairqualityindex");
    add_str(c, "comment", "Forwarded to the pole's neighborhood (KTWIN's city-pole service)");
    cJSON *req = obj_child(c, "request");
    add_str(req, "name", "updateAirQualityIndexRequest");
    cJSON *ct = obj_child(obj_child(req, "schema"), "complexType");
    add_str(ct, "type", "Object");
    cJSON *fields = must(cJSON_AddArrayToObject(ct, "fields"));
    cJSON *f = must(cJSON_CreateObject());
    must(cJSON_AddItemToArray(fields, f) ? f : NULL);
    add_str(f, "name", "aqiLevel");
    add_str(obj_child(f, "schema"), "primitiveType", "string");
}

/* Apply every addition that names iface. */
static void add_ktwin_extras(cJSON *doc, const char *iface)
{
    cJSON *spec = obj_child(doc, "spec");
    if (strcmp(iface, "city-pole") == 0) {
        add_pole_command(spec);
    }
    for (size_t i = 0; i < sizeof extra_rels / sizeof extra_rels[0]; i++) {
        if (strcmp(extra_rels[i].iface, iface) == 0) {
            add_relationship(spec, extra_rels[i].name, extra_rels[i].target);
        }
    }
    for (size_t i = 0; i < sizeof event_stores / sizeof event_stores[0]; i++) {
        if (strcmp(event_stores[i].iface, iface) == 0) {
            set_event_store(spec, &event_stores[i]);
        }
    }
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        if (strcmp(services[i].iface, iface) == 0) {
            add_service(spec, iface, &services[i]);
        }
    }
}

/* ---- YAML round trip ---------------------------------------------------------- */

typedef struct reemit_ctx {
    const char *iface;
    kt_buf *out;
    kt_buf json;
    kt_status st;
} reemit_ctx;

static kt_status reemit_cb(const model_doc *doc, void *user)
{
    reemit_ctx *c = user;
    if (doc->root == NULL) {
        return KT_OK;
    }
    kt_buf_reset(&c->json);
    kt_status st = model_node_to_json(doc->root, &c->json);
    if (st != KT_OK) {
        return st;
    }
    cJSON *tree = cJSON_ParseWithLength(c->json.data, c->json.len);
    if (tree == NULL) {
        return KT_EINTERNAL; /* our own reader's JSON: a bug if it does not parse */
    }
    add_ktwin_extras(tree, c->iface);
    st = model_emit_yaml_doc(tree, c->out);
    cJSON_Delete(tree);
    return st;
}

kt_status sim_ontology_write(const char *dir,
                             const char *k8s_namespace,
                             kt_buf *out,
                             size_t *n_out,
                             model_diag *diag,
                             kt_err *err)
{
    model_dtdl_opts opts = { k8s_namespace, 0 };
    model_dtdl *d = model_dtdl_new(&opts);
    size_t errors_before = diag->n_errors;
    size_t start_len = out->len;
    size_t n = 0;
    kt_buf doc;
    kt_buf_init(&doc, 16u * 1024u * 1024u);
    kt_arena arena;
    kt_arena_init(&arena, 64u * 1024u);
    reemit_ctx c = { NULL, out, { 0 }, KT_OK };
    kt_buf_init(&c.json, 16u * 1024u * 1024u);

    kt_status st = model_dtdl_add_path(d, dir, diag, err);
    if (st != KT_OK) {
        goto done;
    }
    (void)model_dtdl_convert(d, diag);
    if (diag->n_errors > errors_before) {
        st = kt_err_set(err, KT_EINVAL, "%s: the DTDL has errors", dir);
        goto done;
    }
    for (size_t i = 0; i < model_dtdl_count(d) && st == KT_OK; i++) {
        kt_buf_reset(&doc);
        st = model_dtdl_emit(d, i, &doc);
        if (st != KT_OK) {
            st = kt_err_set(err, st, "emit %s", model_dtdl_name(d, i));
            break;
        }
        c.iface = model_dtdl_name(d, i);
        kt_err perr = { 0 };
        st = model_parse_yaml(&arena, c.iface, doc.data, doc.len, NULL, reemit_cb, &c, &perr);
        if (st != KT_OK) {
            st = kt_err_set(err, st, "re-reading %s: %s", c.iface,
                            perr.msg[0] != '\0' ? perr.msg : kt_status_str(st));
        }
        n++;
    }
done:
    if (st != KT_OK) {
        out->len = start_len;
        if (out->data != NULL) {
            out->data[start_len] = '\0';
        }
        n = 0;
    }
    if (n_out != NULL) {
        *n_out = n;
    }
    kt_buf_fini(&c.json);
    kt_arena_fini(&arena);
    kt_buf_fini(&doc);
    model_dtdl_free(d);
    return st;
}
