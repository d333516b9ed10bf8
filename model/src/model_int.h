/*
 * model_int.h — the model's insides, shared by model.c, crd.c and resolve.c.
 */
#ifndef KT_MODEL_MODEL_INT_H
#define KT_MODEL_MODEL_INT_H

#include "kt/map.h"
#include "kt/mem.h"
#include "model/model.h"

/* A growable array of pointers. */
typedef struct model_vec {
    void **items;
    size_t n, cap;
} model_vec;

struct model {
    kt_arena arena;     /* every object and string of the model */
    kt_arena doc_arena; /* parse trees, rewound per document */
    kt_map strings;     /* interned strings (see model__atom_slot) */
    kt_map files;       /* file names used in marks */
    model_vec ifaces, instances, policies; /* load order */
    model_vec dup_instances;               /* second definitions, reported by resolve */
    kt_map iface_by_name, policy_by_name;
    model_in_edge *in_edges; /* all incoming edges; inst->in points into it */
    int resolved;
    size_t index_bytes; /* bytes of index arrays allocated outside the arena */
};

/*
 * Every interned string is preceded in the arena by one pointer slot: the
 * instance of that name, or NULL. Instance lookup by name and relationship
 * target resolution then cost no second hash lookup (711,600 instances).
 */
static inline model_instance **model__atom_slot(const char *interned)
{
    return (model_instance **)(void *)(interned - sizeof(model_instance *));
}

void model_vec__push(model_vec *v, void *p);
void model_vec__fini(model_vec *v);
const char *model__file_name(model *m, const char *name);
/*
 * Decode one UTF-8 sequence at s (n bytes available): its length and code
 * point in *cp, or 0 when not valid UTF-8 (overlong, surrogate, past
 * U+10FFFF, truncated). Defined in emit.c.
 */
size_t model__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* crd.c: validate one document and add what it declares to m. */
kt_status model_crd__add_doc(model *m, const model_doc *doc, model_diag *diag);
/* crd.c: bytes held by the compiled-in CRD schemas (loaded on first use; tests). */
size_t model_crd__schemas_bytes(void);
/* crd.c: parse a Kubernetes quantity (cpu in millicores, memory in bytes). */
int model_crd__cpu_millis(const char *s, uint64_t *out);
int model_crd__bytes(const char *s, uint64_t *out);

#endif
