/*
 * model.c — the model container: interning, loading files and directories,
 * lookups. Document semantics are in crd.c; cross-document checks and the
 * graph indexes are in resolve.c.
 */
#include "model/model.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "kt/buf.h"
#include "model_int.h"

#define MODEL_MAX_FILE_BYTES (1024u * 1024u * 1024u)

void model_vec__push(model_vec *v, void *p)
{
    if (v->n == v->cap) {
        v->cap = v->cap == 0 ? 16 : v->cap * 2;
        v->items = kt_xrealloc(v->items, v->cap * sizeof *v->items);
    }
    v->items[v->n++] = p;
}

void model_vec__fini(model_vec *v)
{
    kt_free(v->items);
    memset(v, 0, sizeof *v);
}

model *model_new(void)
{
    model *m = kt_xcalloc(1, sizeof *m);
    kt_arena_init(&m->arena, 1024u * 1024u);
    kt_arena_init(&m->doc_arena, 256u * 1024u);
    kt_map_init(&m->strings);
    kt_map_init(&m->files);
    kt_map_init(&m->iface_by_name);
    kt_map_init(&m->policy_by_name);
    return m;
}

void model_free(model *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->ifaces.n; i++) {
        model_iface *f = m->ifaces.items[i];
        kt_free(f->members);
        kt_free(f->instances);
    }
    kt_free(m->in_edges);
    model_vec__fini(&m->ifaces);
    model_vec__fini(&m->instances);
    model_vec__fini(&m->policies);
    model_vec__fini(&m->dup_instances);
    kt_map_fini(&m->strings);
    kt_map_fini(&m->files);
    kt_map_fini(&m->iface_by_name);
    kt_map_fini(&m->policy_by_name);
    kt_arena_fini(&m->doc_arena);
    kt_arena_fini(&m->arena);
    kt_free(m);
}

const char *model_intern(model *m, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    const char *hit = kt_map_get(&m->strings, s);
    if (hit != NULL) {
        return hit;
    }
    size_t len = strlen(s);
    char *atom = kt_arena_alloc(&m->arena, sizeof(model_instance *) + len + 1);
    char *copy = atom + sizeof(model_instance *);
    memcpy(copy, s, len + 1);
    *model__atom_slot(copy) = NULL;
    kt_map_put(&m->strings, copy, copy);
    return copy;
}

const char *model__file_name(model *m, const char *name)
{
    const char *hit = kt_map_get(&m->files, name);
    if (hit != NULL) {
        return hit;
    }
    char *copy = kt_arena_strdup(&m->arena, name);
    kt_map_put(&m->files, copy, copy);
    return copy;
}

typedef struct load_ctx {
    model *m;
    model_diag *diag;
} load_ctx;

static kt_status load_doc_cb(const model_doc *doc, void *user)
{
    load_ctx *c = user;
    return model_crd__add_doc(c->m, doc, c->diag);
}

kt_status model_load_buffer(model *m,
                            const char *name,
                            const char *buf,
                            size_t len,
                            model_diag *diag,
                            kt_err *err)
{
    const char *file = model__file_name(m, name);
    load_ctx c = { m, diag };
    kt_err perr = { 0 };
    kt_status st = model_parse_any(&m->doc_arena, file, buf, len, NULL, load_doc_cb, &c, &perr);
    if (st == KT_EINVAL || st == KT_ETOOBIG) {
        /* A syntax error is a problem in the input, not a failure to load. */
        const char *msg = perr.msg;
        unsigned line = 0, col = 0;
        size_t flen = strlen(file);
        if (strncmp(msg, file, flen) == 0 && msg[flen] == ':') {
            char *end = NULL;
            line = (unsigned)strtoul(msg + flen + 1, &end, 10);
            if (end != NULL && *end == ':') {
                col = (unsigned)strtoul(end + 1, &end, 10);
                if (end != NULL && *end == ':') {
                    msg = end + 1;
                    while (*msg == ' ') {
                        msg++;
                    }
                }
            }
        }
        model_mark mk = { file, line, col };
        model_diag_error(diag, &mk, "", st == KT_ETOOBIG ? "too-large" : "syntax", "%s", msg);
        return KT_OK;
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "%s", perr.msg);
    }
    return KT_OK;
}

static int has_manifest_suffix(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static kt_status load_file(model *m, const char *path, model_diag *diag, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, MODEL_MAX_FILE_BYTES);
    kt_status st = kt_buf_read_file(&b, path, err);
    if (st == KT_OK) {
        st = model_load_buffer(m, path, b.data, b.len, diag, err);
    }
    kt_buf_fini(&b);
    return st;
}

static kt_status load_dir(model *m, const char *path, model_diag *diag, kt_err *err, int depth)
{
    if (depth > 16) {
        return kt_err_set(err, KT_EINVAL, "%s: directories nest deeper than 16", path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        return kt_err_set_errno(err, KT_EIO, errno, "open directory %s", path);
    }
    model_vec names = { 0 };
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue; /* hidden files and Kubernetes ..data links */
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *full = kt_xmalloc(len);
        snprintf(full, len, "%s/%s", path, e->d_name);
        model_vec__push(&names, full);
    }
    closedir(d);
    qsort(names.items, names.n, sizeof *names.items, cmp_names);
    kt_status st = KT_OK;
    for (size_t i = 0; i < names.n && st == KT_OK; i++) {
        const char *full = names.items[i];
        struct stat sb;
        if (stat(full, &sb) != 0) {
            continue; /* dangling link */
        }
        if (S_ISDIR(sb.st_mode)) {
            st = load_dir(m, full, diag, err, depth + 1);
        } else if (S_ISREG(sb.st_mode) && has_manifest_suffix(full)) {
            st = load_file(m, full, diag, err);
        }
    }
    for (size_t i = 0; i < names.n; i++) {
        kt_free(names.items[i]);
    }
    model_vec__fini(&names);
    return st;
}

kt_status model_load_path(model *m, const char *path, model_diag *diag, kt_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "%s", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        return load_dir(m, path, diag, err, 0);
    }
    return load_file(m, path, diag, err);
}

/* ---- lookups -------------------------------------------------------------- */

const model_iface *model_iface_get(const model *m, const char *name)
{
    return kt_map_get(&m->iface_by_name, name);
}

model_instance *model_instance_get(const model *m, const char *name)
{
    const char *atom = kt_map_get(&m->strings, name);
    return atom != NULL ? *model__atom_slot(atom) : NULL;
}

const model_policy *model_policy_get(const model *m, const char *name)
{
    return kt_map_get(&m->policy_by_name, name);
}

size_t model_n_ifaces(const model *m)
{
    return m->ifaces.n;
}

size_t model_n_instances(const model *m)
{
    return m->instances.n;
}

size_t model_n_policies(const model *m)
{
    return m->policies.n;
}

const model_iface *model_iface_at(const model *m, size_t i)
{
    return i < m->ifaces.n ? m->ifaces.items[i] : NULL;
}

model_instance *model_instance_at(const model *m, size_t i)
{
    return i < m->instances.n ? m->instances.items[i] : NULL;
}

const model_policy *model_policy_at(const model *m, size_t i)
{
    return i < m->policies.n ? m->policies.items[i] : NULL;
}

const model_member *model_iface_member(const model_iface *f, model_member_kind kind, const char *name)
{
    for (size_t i = 0; i < f->n_members; i++) {
        const model_member *mb = f->members[i];
        if (mb->kind == kind && strcmp(mb->name, name) == 0) {
            return mb;
        }
    }
    /* Before resolve: own members only. */
    if (f->members == NULL) {
        for (size_t i = 0; i < f->n_own; i++) {
            if (f->own[i].kind == kind && strcmp(f->own[i].name, name) == 0) {
                return &f->own[i];
            }
        }
    }
    return NULL;
}

size_t model_mem_bytes(const model *m)
{
    size_t maps = (m->strings._cap + m->files._cap + m->iface_by_name._cap + m->policy_by_name._cap) *
                  sizeof(kt_map_slot);
    size_t vecs = (m->ifaces.cap + m->instances.cap + m->policies.cap) * sizeof(void *);
    return m->arena.total_bytes + maps + vecs + m->index_bytes;
}

model_instance *model_add_instance(model *m,
                                   const char *name,
                                   const char *iface,
                                   const model_rel *rels,
                                   size_t n_rels,
                                   const model_mark *mark)
{
    model_instance *inst = kt_arena_calloc(&m->arena, sizeof *inst);
    inst->name = model_intern(m, name); /* shared with relationship targets */
    inst->iface_name = model_intern(m, iface);
    if (n_rels > 0) {
        inst->rels = kt_arena_alloc(&m->arena, n_rels * sizeof *inst->rels);
        for (size_t i = 0; i < n_rels; i++) {
            inst->rels[i].name = model_intern(m, rels[i].name);
            inst->rels[i].iface = model_intern(m, rels[i].iface);
            inst->rels[i].target = model_intern(m, rels[i].target);
            inst->rels[i].target_inst = NULL;
            inst->rels[i].line = rels[i].line;
            inst->rels[i].col = rels[i].col;
        }
    }
    inst->n_rels = (uint32_t)n_rels;
    if (mark != NULL) {
        inst->mark = *mark;
        if (mark->file != NULL) {
            inst->mark.file = model__file_name(m, mark->file);
        }
    }
    m->resolved = 0;
    model_instance **slot = model__atom_slot(inst->name);
    if (*slot != NULL) {
        model_vec__push(&m->dup_instances, inst); /* reported by model_resolve */
        return NULL;
    }
    *slot = inst;
    model_vec__push(&m->instances, inst);
    return inst;
}

const char *model_name_check(const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return "is empty";
    }
    size_t n = 0;
    for (const char *p = name; *p != '\0'; p++, n++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            return "contains '.' (names go into event types and routing keys)";
        }
        if (c == '/' || c == '#' || c == '+') {
            return "contains '/', '#' or '+' (names go into MQTT topics)";
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            return "contains white space";
        }
        if (c < 0x20 || c == 0x7f) {
            return "contains a control character";
        }
    }
    if (n > MODEL_NAME_MAX) {
        return "is longer than 253 bytes";
    }
    return NULL;
}
