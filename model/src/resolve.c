/*
 * resolve.c — cross-document validation, inheritance and the graph indexes.
 *
 * Runs after every document is loaded, so references may point forward and
 * across files. Each problem is reported once, at the place that refers to
 * the missing or wrong thing.
 */
#include <string.h>

#include "model_int.h"

enum { WHITE = 0, GREY = 1, BLACK = 2 };

typedef struct resolve_ctx {
    model *m;
    model_diag *diag;
    kt_map color; /* iface name -> (void*)(uintptr_t)color */
} resolve_ctx;

static int color_of(resolve_ctx *c, const model_iface *f)
{
    return (int)(uintptr_t)kt_map_get(&c->color, f->name);
}

static void set_color(resolve_ctx *c, const model_iface *f, int color)
{
    kt_map_set(&c->color, f->name, (void *)(uintptr_t)color);
}

static void add_member(model_vec *v, const model_member *mb)
{
    /* A redeclared member (same kind and name) replaces the inherited one. */
    for (size_t i = 0; i < v->n; i++) {
        const model_member *old = v->items[i];
        if (old->kind == mb->kind && old->name == mb->name) {
            v->items[i] = (void *)mb;
            return;
        }
    }
    model_vec__push(v, (void *)mb);
}

/* Depth-first over parents; a GREY parent means a cycle. */
static void resolve_iface(resolve_ctx *c, model_iface *f)
{
    int color = color_of(c, f);
    if (color == BLACK) {
        return;
    }
    set_color(c, f, GREY);
    model_vec members = { 0 };
    for (size_t i = 0; i < f->n_parents; i++) {
        model_iface *parent = kt_map_get(&c->m->iface_by_name, f->parents[i]);
        if (parent == NULL) {
            model_diag_error(c->diag, &f->mark, "spec.extendsInterface", "extends-missing",
                             "TwinInterface \"%s\" extends \"%s\", which does not exist", f->name,
                             f->parents[i]);
            continue;
        }
        if (color_of(c, parent) == GREY) {
            model_diag_error(c->diag, &f->mark, "spec.extendsInterface", "extends-cycle",
                             "TwinInterface \"%s\" extends \"%s\", which extends it back", f->name,
                             parent->name);
            continue;
        }
        resolve_iface(c, parent);
        for (size_t j = 0; j < parent->n_members; j++) {
            add_member(&members, parent->members[j]);
        }
    }
    for (size_t i = 0; i < f->n_own; i++) {
        add_member(&members, &f->own[i]);
    }
    kt_free(f->members);
    f->members = (const model_member **)members.items;
    f->n_members = members.n;
    set_color(c, f, BLACK);
}

static void check_targets(resolve_ctx *c, const model_iface *f)
{
    for (size_t i = 0; i < f->n_own; i++) {
        const model_member *mb = &f->own[i];
        if ((mb->kind != MODEL_MEMBER_RELATIONSHIP && mb->kind != MODEL_MEMBER_COMPONENT) ||
            mb->target == NULL) {
            continue;
        }
        if (kt_map_get(&c->m->iface_by_name, mb->target) == NULL) {
            char path[300];
            snprintf(path, sizeof path, "%s.interface",
                     mb->kind == MODEL_MEMBER_RELATIONSHIP ? "spec.relationships" : "metadata.annotations.ktwin.io/components");
            model_diag_error(c->diag, &mb->mark, path, "relationship-target-unknown",
                             "%s \"%s\" of \"%s\" targets interface \"%s\", which does not exist",
                             mb->kind == MODEL_MEMBER_RELATIONSHIP ? "relationship" : "component",
                             mb->name, f->name, mb->target);
        }
    }
}

/* Is f the interface named base, or one of its descendants? */
static int iface_is_a(const model *m, const model_iface *f, const char *base, int depth)
{
    if (f == NULL || depth > 64) {
        return 0;
    }
    if (f->name == base) {
        return 1;
    }
    for (size_t i = 0; i < f->n_parents; i++) {
        if (iface_is_a(m, kt_map_get(&m->iface_by_name, f->parents[i]), base, depth + 1)) {
            return 1;
        }
    }
    return 0;
}

static void check_instance(resolve_ctx *c, model_instance *inst)
{
    model *m = c->m;
    const char *why = model_name_check(inst->name);
    if (why != NULL) {
        model_diag_error(c->diag, &inst->mark, "metadata.name", "invalid-name", "name \"%s\" %s",
                         inst->name, why);
    }
    inst->iface = kt_map_get(&m->iface_by_name, inst->iface_name);
    if (inst->iface == NULL) {
        model_diag_error(c->diag, &inst->mark, "spec.interface", "instance-interface-unknown",
                         "TwinInstance \"%s\" has interface \"%s\", which does not exist",
                         inst->name, inst->iface_name);
    }
    for (uint32_t i = 0; i < inst->n_rels; i++) {
        model_rel *r = &inst->rels[i];
        model_mark mk = { inst->mark.file, r->line, r->col };
        char path[96];
        r->target_inst = *model__atom_slot(r->target);
        const model_member *decl = NULL;
        if (inst->iface != NULL) {
            /* Names are interned: compare pointers. */
            for (size_t k = 0; k < inst->iface->n_members && decl == NULL; k++) {
                const model_member *mb = inst->iface->members[k];
                if (mb->kind == MODEL_MEMBER_RELATIONSHIP && mb->name == r->name) {
                    decl = mb;
                }
            }
            if (decl == NULL) {
                snprintf(path, sizeof path, "spec.twinInstanceRelationships[%u].name", i);
                model_diag_error(c->diag, &mk, path, "instance-relationship-unknown",
                                 "interface \"%s\" has no relationship \"%s\"", inst->iface->name,
                                 r->name);
            }
        }
        const model_iface *rel_iface = kt_map_get(&m->iface_by_name, r->iface);
        snprintf(path, sizeof path, "spec.twinInstanceRelationships[%u].interface", i);
        if (rel_iface == NULL) {
            model_diag_error(c->diag, &mk, path, "instance-target-unknown",
                             "relationship \"%s\" names interface \"%s\", which does not exist",
                             r->name, r->iface);
        } else if (decl != NULL && decl->target != NULL && !iface_is_a(m, rel_iface, decl->target, 0)) {
            model_diag_error(c->diag, &mk, path, "instance-target-mismatch",
                             "relationship \"%s\" must target \"%s\", not \"%s\"", r->name,
                             decl->target, r->iface);
        }
        snprintf(path, sizeof path, "spec.twinInstanceRelationships[%u].instance", i);
        if (r->target_inst == NULL) {
            model_diag_error(c->diag, &mk, path, "instance-target-unknown",
                             "relationship \"%s\" targets instance \"%s\", which does not exist",
                             r->name, r->target);
        } else if (r->target_inst->iface_name != r->iface) {
            model_diag_error(c->diag, &mk, path, "instance-target-mismatch",
                             "instance \"%s\" is a \"%s\", not a \"%s\"", r->target,
                             r->target_inst->iface_name, r->iface);
        }
    }
}

static void build_indexes(model *m)
{
    size_t n_inst = m->instances.n;
    /* Instances per interface: count, allocate, fill. */
    for (size_t i = 0; i < m->ifaces.n; i++) {
        model_iface *f = m->ifaces.items[i];
        kt_free(f->instances);
        f->instances = NULL;
        f->n_instances = 0;
    }
    for (size_t i = 0; i < n_inst; i++) {
        model_instance *inst = m->instances.items[i];
        if (inst->iface != NULL) {
            inst->iface->n_instances++;
        }
        inst->n_in = 0;
        inst->_in_fill = 0;
    }
    m->index_bytes = 0;
    for (size_t i = 0; i < m->ifaces.n; i++) {
        model_iface *f = m->ifaces.items[i];
        if (f->n_instances > 0) {
            f->instances = kt_xmalloc(f->n_instances * sizeof *f->instances);
            m->index_bytes += f->n_instances * sizeof *f->instances;
        }
        f->n_instances = 0;
    }
    size_t n_edges = 0;
    for (size_t i = 0; i < n_inst; i++) {
        model_instance *inst = m->instances.items[i];
        if (inst->iface != NULL) {
            inst->iface->instances[inst->iface->n_instances++] = inst;
        }
        for (uint32_t r = 0; r < inst->n_rels; r++) {
            if (inst->rels[r].target_inst != NULL) {
                inst->rels[r].target_inst->n_in++;
                n_edges++;
            }
        }
    }
    /* Reverse edges as one array (CSR): each instance's slice, in load order. */
    kt_free(m->in_edges);
    m->in_edges = n_edges > 0 ? kt_xmalloc(n_edges * sizeof *m->in_edges) : NULL;
    m->index_bytes += n_edges * sizeof *m->in_edges;
    size_t off = 0;
    for (size_t i = 0; i < n_inst; i++) {
        model_instance *inst = m->instances.items[i];
        inst->in = inst->n_in > 0 ? m->in_edges + off : NULL;
        off += inst->n_in;
    }
    for (size_t i = 0; i < n_inst; i++) {
        model_instance *inst = m->instances.items[i];
        for (uint32_t r = 0; r < inst->n_rels; r++) {
            model_instance *t = inst->rels[r].target_inst;
            if (t != NULL) {
                t->in[t->_in_fill].src = inst;
                t->in[t->_in_fill].rel = r;
                t->_in_fill++;
            }
        }
    }
}

kt_status model_resolve(model *m, model_diag *diag)
{
    size_t errors_before = diag->n_errors;
    resolve_ctx c = { m, diag, { 0 } };
    kt_map_init(&c.color);
    for (size_t i = 0; i < m->dup_instances.n; i++) {
        const model_instance *dup = m->dup_instances.items[i];
        const model_instance *first = *model__atom_slot(dup->name);
        model_diag_error(diag, &dup->mark, "metadata.name", "duplicate-name",
                         "TwinInstance \"%s\" is already defined at %s:%u", dup->name,
                         first != NULL && first->mark.file != NULL ? first->mark.file : "-",
                         first != NULL ? first->mark.line : 0);
    }
    for (size_t i = 0; i < m->ifaces.n; i++) {
        resolve_iface(&c, m->ifaces.items[i]);
    }
    for (size_t i = 0; i < m->ifaces.n; i++) {
        check_targets(&c, m->ifaces.items[i]);
    }
    for (size_t i = 0; i < m->instances.n; i++) {
        check_instance(&c, m->instances.items[i]);
    }
    build_indexes(m);
    kt_map_fini(&c.color);
    m->resolved = 1;
    return diag->n_errors == errors_before ? KT_OK : KT_EINVAL;
}
