/*
 * model/model.h — the twin model: interfaces, instances, placement policies
 * and the twin graph built from them.
 *
 * Load CRD documents (files, directories, buffers) with model_load_*; each
 * call validates every document against KTWIN's CRD schema (unknown fields,
 * types, required fields) and records every problem in a model_diag. Then
 * model_resolve() runs the cross-document checks (names, duplicates,
 * extendsInterface chains, relationship targets, instance references),
 * resolves inheritance and builds the graph indexes. The model is usable
 * only when both report no error.
 *
 * Ownership: the model owns every object and string it returns; pointers
 * stay valid until model_free(). Strings that repeat (interface and
 * relationship names, label keys) are interned, so pointer equality holds
 * for equal names within one model.
 *
 * Thread: one owner.
 */
#ifndef KT_MODEL_MODEL_H
#define KT_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "model/diag.h"
#include "model/node.h"

#define MODEL_API_DTD "dtd.ktwin/v0"
#define MODEL_API_EDGE "edge.ktwin/v0"
#define MODEL_LABEL_SITE "ktwin.io/site"
/* Annotation carrying every DTDL parent (extendsInterface holds the first). */
#define MODEL_ANNOTATION_EXTENDS "ktwin.io/extends"
/* Annotation carrying DTDL components as JSON [{"name":..,"interface":..}]. */
#define MODEL_ANNOTATION_COMPONENTS "ktwin.io/components"
#define MODEL_NAME_MAX 253

typedef struct model model;
typedef struct model_iface model_iface;
typedef struct model_instance model_instance;

typedef struct model_label {
    const char *key;
    const char *value;
} model_label;

typedef enum model_member_kind {
    MODEL_MEMBER_PROPERTY,
    MODEL_MEMBER_TELEMETRY,
    MODEL_MEMBER_COMMAND,
    MODEL_MEMBER_RELATIONSHIP,
    MODEL_MEMBER_COMPONENT
} model_member_kind;

typedef struct model_member {
    model_member_kind kind;
    const char *name;
    const char *target;         /* RELATIONSHIP/COMPONENT: target interface name, else NULL */
    const char *schema;         /* short schema summary ("double", "Object", "Enum<string>") */
    const model_iface *declared_in;
    int writable;               /* PROPERTY (and relationship "writeable") */
    int aggregate_data;         /* RELATIONSHIP */
    int min_multiplicity;       /* RELATIONSHIP, -1 when unset */
    int max_multiplicity;       /* RELATIONSHIP, -1 when unset */
    model_mark mark;
} model_member;

typedef struct model_autoscaling {
    int min_scale, max_scale, target, target_utilization, parallelism; /* -1 when unset */
    const char *metric; /* concurrency|rps|cpu|memory, or NULL */
} model_autoscaling;

struct model_iface {
    const char *name; /* metadata.name */
    const char *id;   /* spec.id, or NULL */
    const char *display_name;
    const char *description;
    const char **parents; /* extendsInterface + ktwin.io/extends, in order */
    size_t n_parents;
    model_member *own; /* declared here */
    size_t n_own;
    const model_member **members; /* after model_resolve: own + inherited, parents first */
    size_t n_members;
    int persist_real_event;
    int persist_virtual_event;
    int has_service;
    const char *image;       /* first container image, or NULL */
    uint32_t cpu_millis;     /* sum of container cpu requests */
    uint64_t memory_bytes;   /* sum of container memory requests */
    model_autoscaling autoscaling;
    model_label *labels;
    size_t n_labels;
    model_mark mark;
    /* Graph index (after model_resolve): instances of this interface. */
    model_instance **instances;
    size_t n_instances;
};

typedef struct model_rel {
    const char *name;
    const char *iface;      /* target interface name */
    const char *target;     /* target instance name */
    model_instance *target_inst; /* after model_resolve, NULL when unknown */
    uint32_t line, col;     /* of the relationship entry */
} model_rel;

/* An incoming edge: src->rels[rel] points at this instance. */
typedef struct model_in_edge {
    model_instance *src;
    uint32_t rel;
} model_in_edge;

struct model_instance {
    const char *name;
    const char *iface_name;
    model_iface *iface; /* after model_resolve */
    const char *site;   /* label ktwin.io/site, or NULL */
    model_label *labels;
    model_rel *rels;
    model_in_edge *in; /* after model_resolve */
    uint32_t n_labels;
    uint32_t n_rels;
    uint32_t n_in;
    uint32_t _in_fill;
    const char *extra_json; /* spec.data / spec.endpointSettings as compact JSON, or NULL */
    model_mark mark;
};

typedef enum model_placement_target {
    MODEL_PLACE_EDGE,
    MODEL_PLACE_CLOUD,
    MODEL_PLACE_PREFER_EDGE
} model_placement_target;

typedef enum model_offline { MODEL_OFFLINE_NONE, MODEL_OFFLINE_PREFERRED, MODEL_OFFLINE_REQUIRED } model_offline;

typedef enum model_overflow {
    MODEL_OVERFLOW_CLOUD,  /* edge full or gone: run it in the cloud */
    MODEL_OVERFLOW_PENDING /* keep it unplaced and report it */
} model_overflow;

typedef struct model_site_hop {
    const char *relationship;
    int incoming; /* follow edges that point at the instance */
} model_site_hop;

typedef struct model_policy_rule {
    const char *name;
    const char **interfaces; /* globs (fnmatch), empty = any */
    size_t n_interfaces;
    model_label *match_labels; /* interface labels that must all match */
    size_t n_match_labels;
    model_placement_target placement;
    const char **sites; /* site globs allowed, empty = any */
    size_t n_sites;
    model_offline offline;
    model_overflow overflow;
    model_mark mark;
} model_policy_rule;

typedef struct model_policy {
    const char *name;
    int priority; /* higher first when several policies exist */
    model_site_hop *site_from; /* hops tried in order to find an instance's site */
    size_t n_site_from;
    model_policy_rule *rules;
    size_t n_rules;
    model_placement_target default_placement;
    model_mark mark;
} model_policy;

/* ---- lifecycle and loading ---------------------------------------------- */

model *model_new(void);
void model_free(model *m);

/*
 * Load one file or a whole directory (recursively: *.yaml, *.yml, *.json,
 * in name order). Documents of other kinds (Deployments, CRDs, ...) are
 * skipped with a warning. Problems in the content go to diag and the call
 * still returns KT_OK; only I/O and memory failures return an error.
 */
kt_status model_load_path(model *m, const char *path, model_diag *diag, kt_err *err);
/* Load a buffer; name is used in marks (copied). */
kt_status model_load_buffer(model *m,
                            const char *name,
                            const char *buf,
                            size_t len,
                            model_diag *diag,
                            kt_err *err);
/*
 * Cross-document validation, inheritance and graph indexes. Call once after
 * loading. Adds to diag; returns KT_OK when diag got no new error.
 */
kt_status model_resolve(model *m, model_diag *diag);

/* ---- lookups (after model_resolve) ---------------------------------------- */

const model_iface *model_iface_get(const model *m, const char *name);
model_instance *model_instance_get(const model *m, const char *name);
const model_policy *model_policy_get(const model *m, const char *name);
size_t model_n_ifaces(const model *m);
size_t model_n_instances(const model *m);
size_t model_n_policies(const model *m);
/* Load order. */
const model_iface *model_iface_at(const model *m, size_t i);
model_instance *model_instance_at(const model *m, size_t i);
const model_policy *model_policy_at(const model *m, size_t i);
/* The resolved member of that kind and name (own or inherited), or NULL. */
const model_member *model_iface_member(const model_iface *i, model_member_kind kind, const char *name);
/* Bytes the model holds (arenas, indexes): for benchmarks. */
size_t model_mem_bytes(const model *m);

/* ---- building programmatically (graph import, tests) ---------------------- */

/*
 * Add an instance. Strings are copied. rels may be NULL when n_rels is 0.
 * Returns NULL when the name is taken: the duplicate is kept aside and
 * reported (with both places) by model_resolve.
 */
model_instance *model_add_instance(model *m,
                                   const char *name,
                                   const char *iface,
                                   const model_rel *rels,
                                   size_t n_rels,
                                   const model_mark *mark);
/* Intern a string in the model (the same pointer for the same text). */
const char *model_intern(model *m, const char *s);

/* ---- names ---------------------------------------------------------------- */

/*
 * Names go into MQTT topics and CloudEvent types, so they must be non-empty,
 * at most MODEL_NAME_MAX bytes, and free of '.', '/', '#', '+', whitespace and
 * control characters. Returns NULL when valid, else a static reason.
 */
const char *model_name_check(const char *name);

#endif
