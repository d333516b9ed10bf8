/*
 * dtdl.c — DTDL v2 JSON to dtd.ktwin/v0 TwinInterface documents. See model/dtdl.h.
 *
 * Owns: the parsed cJSON trees of every added file, one record per
 * interface (borrowing its object from the tree), the maps from @id and
 * KTWIN name to interface and from schema @id to schema, and the converted
 * documents.
 *
 * DESIGN
 *  - Two phases. model_dtdl_add_* parses and registers interfaces and named
 *    schemas (duplicates are reported there); model_dtdl_convert builds the
 *    documents, so references (extends, relationship targets, components,
 *    schemas) may point into any file added before the conversion.
 *  - cJSON keeps no positions. At add time one linear scan of the text
 *    records the line and column of every JSON value in document order,
 *    which is the pre-order of the cJSON tree; pairing the two gives a
 *    node -> position table (sorted by address, searched when a diagnostic
 *    is reported). If the counts ever disagree the table is dropped and
 *    marks fall back to line 0: the JSON path is the authoritative location.
 *  - Severity: what makes the output wrong or incomplete is an error
 *    (unknown content @type, unsupported schema kind, missing name or
 *    schema, inline interfaces); what may be fixed by loading more files or
 *    is tolerated by DTDL tools is a warning (unknown extends, relationship
 *    or component target, unresolved schema reference which then falls back
 *    to primitiveType string, unknown fields, which are ignored).
 *
 * Thread: one owner.
 */
#include "model/dtdl.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/emit.h"
#include "model/model.h"

#define DTDL_MAX_FILE_BYTES   (32u * 1024u * 1024u)
#define DTDL_MAX_DOC_BYTES    (64u * 1024u * 1024u)
#define DTDL_MAX_EXPR_BYTES   (64u * 1024u)
#define DTDL_MAX_SCHEMA_DEPTH 16
#define DTDL_MAX_DIR_DEPTH    32
#define DTDL_PATH_CAP         384
#define DTDL_DEFAULT_NS       "ktwin"
#define DTDL_K8S_LABEL_MAX    63

/* ---- types -------------------------------------------------------------------- */

typedef struct dtdl_pos {
    const cJSON *node;
    uint32_t line;
    uint32_t col;
} dtdl_pos;

typedef struct dtdl_file {
    char *name;    /* owned */
    cJSON *root;   /* owned */
    dtdl_pos *pos; /* sorted by node address */
    size_t n_pos;
} dtdl_file;

typedef struct dtdl_iface {
    const cJSON *obj; /* borrowed from files[file].root */
    size_t file;
    char *path; /* JSON path of the interface in its file: "" or "[i]" */
    char *id;   /* @id as written */
    char *name; /* KTWIN name */
    cJSON *doc; /* converted document, NULL before model_dtdl_convert */
} dtdl_iface;

typedef struct dtdl_schema {
    const cJSON *obj; /* borrowed */
    size_t iface;
} dtdl_schema;

struct model_dtdl {
    char *ns;
    int with_service;
    dtdl_file *files;
    size_t n_files;
    dtdl_iface *ifaces;
    size_t n_ifaces;
    dtdl_schema *schemas;
    size_t n_schemas;
    kt_map by_id;     /* @id -> index + 1 */
    kt_map by_name;   /* KTWIN name -> index + 1 */
    kt_map schema_id; /* schema @id -> index + 1 into schemas */
};

/* Conversion state of one interface. */
typedef struct conv {
    model_dtdl *d;
    model_diag *diag;
    size_t iface;
    kt_map members; /* content name -> 1, duplicates check */
    int overflow;   /* a type expression outgrew its buffer */
} conv;

/* ---- small helpers ------------------------------------------------------------- */

static void *must(void *p)
{
    if (p == NULL) {
        KT_LOG(KT_LOG_ERR, "MEM-OOM", "cjson allocation");
        abort();
    }
    return p;
}

static void *cjson_malloc(size_t n)
{
    return kt_malloc(n);
}

static void cjson_free(void *p)
{
    kt_free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void hooks_init(void)
{
    cJSON_Hooks h = { cjson_malloc, cjson_free };
    cJSON_InitHooks(&h);
}

static void *idx_ptr(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static size_t ptr_idx(void *p)
{
    return (size_t)(uintptr_t)p - 1;
}

static cJSON *j_obj(void)
{
    return must(cJSON_CreateObject());
}

static cJSON *j_arr(void)
{
    return must(cJSON_CreateArray());
}

static void j_add(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, item)) {
        must(NULL);
    }
}

static void j_add_str(cJSON *obj, const char *key, const char *val)
{
    j_add(obj, key, must(cJSON_CreateString(val)));
}

static void j_add_num(cJSON *obj, const char *key, double v)
{
    j_add(obj, key, must(cJSON_CreateNumber(v)));
}

static void j_push(cJSON *arr, cJSON *item)
{
    if (!cJSON_AddItemToArray(arr, item)) {
        must(NULL);
    }
}

/* Attach a list under key when it has items, else drop it (omitempty). */
static void j_add_list(cJSON *obj, const char *key, cJSON *list)
{
    if (list->child == NULL) {
        cJSON_Delete(list);
        return;
    }
    j_add(obj, key, list);
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : NULL;
}

static void path_key(char *out, const char *base, const char *key)
{
    /* A truncated path still locates the problem; the result is checked only
       to tell gcc so (-Wformat-truncation). */
    if (snprintf(out, DTDL_PATH_CAP, "%s%s%s", base, base[0] != '\0' ? "." : "", key) < 0) {
        out[0] = '\0';
    }
}

static void path_idx(char *out, const char *base, const char *key, size_t i)
{
    if (snprintf(out, DTDL_PATH_CAP, "%s%s%s[%zu]", base, base[0] != '\0' ? "." : "", key, i) < 0) {
        out[0] = '\0';
    }
}

/* ---- names ------------------------------------------------------------------------- */

const char *model_dtdl_name_from_id(const char *id, char *out, size_t cap)
{
    if (cap == 0) {
        return out;
    }
    size_t n = strlen(id);
    if (strncmp(id, "dtmi:", 5) == 0) {
        id += 5;
        n -= 5;
        /* A DTMI ends in ";<version>" (digits, v3 allows a ".minor"). */
        size_t k = n;
        while (k > 0 && ((id[k - 1] >= '0' && id[k - 1] <= '9') || id[k - 1] == '.')) {
            k--;
        }
        if (k > 0 && k < n && id[k - 1] == ';') {
            n = k - 1;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char c = id[i];
        if (c == '"') {
            continue;
        }
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        } else if (c == ':' || c == ';' || c == '_') {
            c = '-';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* NULL when name is a usable Kubernetes object name, else why not. */
static const char *name_problem(const char *name)
{
    size_t n = strlen(name);
    if (n == 0) {
        return "is empty";
    }
    if (n > MODEL_NAME_MAX) {
        return "is longer than 253 characters";
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return "has characters other than a-z, 0-9 and '-'";
        }
    }
    if (name[0] == '-' || name[n - 1] == '-') {
        return "starts or ends with '-'";
    }
    return NULL;
}

/* DTDL v2 content names: letter, then letters, digits, '_'; not ending in '_'; <= 64. */
static int dtdl_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return 0;
        }
    }
    return s[n - 1] != '_';
}

/* ---- positions ----------------------------------------------------------------------- */

typedef struct pos_vec {
    dtdl_pos *v;
    size_t n;
    size_t cap;
} pos_vec;

static void pos_push(pos_vec *p, uint32_t line, uint32_t col)
{
    if (p->n == p->cap) {
        p->cap = p->cap == 0 ? 256 : p->cap * 2;
        p->v = kt_xrealloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n].node = NULL;
    p->v[p->n].line = line;
    p->v[p->n].col = col;
    p->n++;
}

/*
 * Record the position of every value of the first JSON value in buf, in
 * document order. Keys are not values. buf has been accepted by cJSON, so
 * the scan only has to tell keys from values and skip strings.
 */
static void scan_positions(const char *buf, size_t len, pos_vec *out)
{
    enum { EXPECT_VALUE, EXPECT_KEY, EXPECT_OTHER };
    char *stack = NULL;
    size_t depth = 0;
    size_t cap = 0;
    int expect = EXPECT_VALUE;
    uint32_t line = 1;
    size_t line_start = 0;
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        uint32_t col = (uint32_t)(i - line_start + 1);
        if (c == '\n') {
            line++;
            line_start = ++i;
            continue;
        }
        if (c == '"') {
            if (expect == EXPECT_VALUE) {
                pos_push(out, line, col);
                expect = EXPECT_OTHER;
            } else if (expect == EXPECT_KEY) {
                expect = EXPECT_OTHER;
            }
            for (i++; i < len && buf[i] != '"'; i++) {
                if (buf[i] == '\\') {
                    i++;
                } else if (buf[i] == '\n') {
                    line++;
                    line_start = i + 1;
                }
            }
            i++;
        } else if (c == '{' || c == '[') {
            pos_push(out, line, col);
            if (depth == cap) {
                cap = cap == 0 ? 64 : cap * 2;
                stack = kt_xrealloc(stack, cap);
            }
            stack[depth++] = c;
            expect = c == '{' ? EXPECT_KEY : EXPECT_VALUE;
            i++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) {
                depth--;
            }
            expect = EXPECT_OTHER;
            i++;
        } else if (c == ':') {
            expect = EXPECT_VALUE;
            i++;
        } else if (c == ',') {
            expect = depth > 0 && stack[depth - 1] == '{' ? EXPECT_KEY : EXPECT_VALUE;
            i++;
        } else if ((c >= '0' && c <= '9') || c == '-' || (c >= 'a' && c <= 'z')) {
            if (expect == EXPECT_VALUE) {
                pos_push(out, line, col);
            }
            expect = EXPECT_OTHER;
            while (i < len &&
                   ((buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'z') ||
                    (buf[i] >= 'A' && buf[i] <= 'Z') || buf[i] == '-' || buf[i] == '+' ||
                    buf[i] == '.')) {
                i++;
            }
        } else {
            i++;
        }
        if (depth == 0 && expect == EXPECT_OTHER) {
            break; /* the first value is complete */
        }
    }
    kt_free(stack);
}

static void pos_assign(const cJSON *n, dtdl_pos *v, size_t cap, size_t *k)
{
    if (*k < cap) {
        v[*k].node = n;
    }
    (*k)++;
    for (const cJSON *c = n->child; c != NULL; c = c->next) {
        pos_assign(c, v, cap, k);
    }
}

static int pos_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const dtdl_pos *)a)->node;
    uintptr_t y = (uintptr_t)((const dtdl_pos *)b)->node;
    return x < y ? -1 : x > y;
}

static void file_index_positions(dtdl_file *f, const char *buf, size_t len)
{
    pos_vec p = { 0 };
    scan_positions(buf, len, &p);
    size_t k = 0;
    pos_assign(f->root, p.v, p.n, &k);
    if (k != p.n) {
        kt_free(p.v);
        return;
    }
    qsort(p.v, p.n, sizeof *p.v, pos_cmp);
    f->pos = p.v;
    f->n_pos = p.n;
}

static model_mark file_mark(const dtdl_file *f, const cJSON *node)
{
    model_mark m = { f->name, 0, 0 };
    if (node == NULL || f->n_pos == 0) {
        return m;
    }
    dtdl_pos key = { node, 0, 0 };
    const dtdl_pos *p = bsearch(&key, f->pos, f->n_pos, sizeof *f->pos, pos_cmp);
    if (p != NULL) {
        m.line = p->line;
        m.col = p->col;
    }
    return m;
}

/* ---- diagnostics --------------------------------------------------------------------- */

static void diag_at(model_diag *diag,
                    const dtdl_file *f,
                    const cJSON *node,
                    model_diag_severity sev,
                    const char *path,
                    const char *code,
                    const char *fmt,
                    va_list ap)
{
    char msg[448];
    vsnprintf(msg, sizeof msg, fmt, ap);
    model_mark m = file_mark(f, node);
    model_diag_add(diag, sev, &m, path, code, "%s", msg);
}

static void
cv_err(conv *c, const cJSON *node, const char *path, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void
cv_warn(conv *c, const cJSON *node, const char *path, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
cv_err(conv *c, const cJSON *node, const char *path, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_at(c->diag, &c->d->files[c->d->ifaces[c->iface].file], node, MODEL_DIAG_ERROR, path, code,
            fmt, ap);
    va_end(ap);
}

static void
cv_warn(conv *c, const cJSON *node, const char *path, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_at(c->diag, &c->d->files[c->d->ifaces[c->iface].file], node, MODEL_DIAG_WARNING, path,
            code, fmt, ap);
    va_end(ap);
}

static void file_diag(model_diag *diag,
                      const dtdl_file *f,
                      const cJSON *node,
                      model_diag_severity sev,
                      const char *path,
                      const char *code,
                      const char *fmt,
                      ...) __attribute__((format(printf, 7, 8)));

static void file_diag(model_diag *diag,
                      const dtdl_file *f,
                      const cJSON *node,
                      model_diag_severity sev,
                      const char *path,
                      const char *code,
                      const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_at(diag, f, node, sev, path, code, fmt, ap);
    va_end(ap);
}

/* ---- lifecycle ----------------------------------------------------------------------- */

model_dtdl *model_dtdl_new(const model_dtdl_opts *opts)
{
    pthread_once(&hooks_once, hooks_init);
    model_dtdl *d = kt_xcalloc(1, sizeof *d);
    const char *ns = opts != NULL && opts->k8s_namespace != NULL && opts->k8s_namespace[0] != '\0'
                         ? opts->k8s_namespace
                         : DTDL_DEFAULT_NS;
    d->ns = kt_xstrdup(ns);
    d->with_service = opts != NULL ? opts->with_service : 0;
    kt_map_init(&d->by_id);
    kt_map_init(&d->by_name);
    kt_map_init(&d->schema_id);
    return d;
}

void model_dtdl_free(model_dtdl *d)
{
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < d->n_ifaces; i++) {
        kt_free(d->ifaces[i].path);
        kt_free(d->ifaces[i].id);
        kt_free(d->ifaces[i].name);
        cJSON_Delete(d->ifaces[i].doc);
    }
    for (size_t i = 0; i < d->n_files; i++) {
        kt_free(d->files[i].name);
        cJSON_Delete(d->files[i].root);
        kt_free(d->files[i].pos);
    }
    kt_map_fini(&d->by_id);
    kt_map_fini(&d->by_name);
    kt_map_fini(&d->schema_id);
    kt_free(d->schemas);
    kt_free(d->ifaces);
    kt_free(d->files);
    kt_free(d->ns);
    kt_free(d);
}

/* ---- adding ---------------------------------------------------------------------------- */

static int type_is(const cJSON *t, const char *want)
{
    if (cJSON_IsString(t) && t->valuestring != NULL) {
        return strcmp(t->valuestring, want) == 0;
    }
    if (cJSON_IsArray(t)) {
        for (const cJSON *c = t->child; c != NULL; c = c->next) {
            if (cJSON_IsString(c) && c->valuestring != NULL && strcmp(c->valuestring, want) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static void register_schemas(model_dtdl *d, size_t ii, model_diag *diag)
{
    const dtdl_iface *it = &d->ifaces[ii];
    const dtdl_file *f = &d->files[it->file];
    const cJSON *schemas = get(it->obj, "schemas");
    if (schemas == NULL) {
        return;
    }
    char path[DTDL_PATH_CAP];
    path_key(path, it->path, "schemas");
    if (!cJSON_IsArray(schemas)) {
        file_diag(diag, f, schemas, MODEL_DIAG_ERROR, path, "schemas-invalid",
                  "schemas must be an array of schema objects");
        return;
    }
    size_t k = 0;
    for (const cJSON *s = schemas->child; s != NULL; s = s->next, k++) {
        path_idx(path, it->path, "schemas", k);
        const char *sid = get_str(s, "@id");
        if (!cJSON_IsObject(s) || sid == NULL) {
            file_diag(diag, f, s, MODEL_DIAG_ERROR, path, "schema-id-missing",
                      "an entry of schemas must be an object with an @id");
            continue;
        }
        d->schemas = kt_xrealloc(d->schemas, (d->n_schemas + 1) * sizeof *d->schemas);
        d->schemas[d->n_schemas].obj = s;
        d->schemas[d->n_schemas].iface = ii;
        if (kt_map_put(&d->schema_id, sid, idx_ptr(d->n_schemas)) != NULL) {
            file_diag(diag, f, s, MODEL_DIAG_WARNING, path, "schema-duplicate",
                      "schema %s is defined more than once; the first definition is used", sid);
            continue;
        }
        d->n_schemas++;
    }
}

static void
add_interface(model_dtdl *d, size_t fi, const cJSON *obj, const char *path, model_diag *diag)
{
    const dtdl_file *f = &d->files[fi];
    if (!cJSON_IsObject(obj)) {
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-invalid",
                  "expected an Interface object");
        return;
    }
    const cJSON *type = get(obj, "@type");
    if (!type_is(type, "Interface")) {
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-type",
                  "@type must be \"Interface\" at the top level");
        return;
    }
    const char *id = get_str(obj, "@id");
    if (id == NULL) {
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-id-missing",
                  "an Interface needs a string @id");
        return;
    }
    const char *ctx = get_str(obj, "@context");
    const cJSON *ctxv = get(obj, "@context");
    if (ctxv != NULL && !(ctx != NULL && strcmp(ctx, "dtmi:dtdl:context;2") == 0) &&
        !type_is(ctxv, "dtmi:dtdl:context;2")) {
        file_diag(diag, f, ctxv, MODEL_DIAG_WARNING, path, "context-not-dtdl2",
                  "@context is not dtmi:dtdl:context;2; reading it as DTDL v2");
    }
    char name[MODEL_NAME_MAX + 2];
    model_dtdl_name_from_id(id, name, sizeof name);
    const char *why = name_problem(name);
    if (why != NULL) {
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-name-invalid",
                  "@id %s gives the name \"%s\", which %s", id, name, why);
        return;
    }
    void *prev = kt_map_get(&d->by_id, id);
    if (prev != NULL) {
        const dtdl_iface *o = &d->ifaces[ptr_idx(prev)];
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-duplicate",
                  "interface %s is already defined in %s", id, d->files[o->file].name);
        return;
    }
    prev = kt_map_get(&d->by_name, name);
    if (prev != NULL) {
        const dtdl_iface *o = &d->ifaces[ptr_idx(prev)];
        file_diag(diag, f, obj, MODEL_DIAG_ERROR, path, "interface-name-conflict",
                  "interfaces %s and %s (%s) both get the name %s", id, o->id,
                  d->files[o->file].name, name);
        return;
    }
    d->ifaces = kt_xrealloc(d->ifaces, (d->n_ifaces + 1) * sizeof *d->ifaces);
    dtdl_iface *it = &d->ifaces[d->n_ifaces];
    memset(it, 0, sizeof *it);
    it->obj = obj;
    it->file = fi;
    it->path = kt_xstrdup(path);
    it->id = kt_xstrdup(id);
    it->name = kt_xstrdup(name);
    kt_map_put(&d->by_id, it->id, idx_ptr(d->n_ifaces));
    kt_map_put(&d->by_name, it->name, idx_ptr(d->n_ifaces));
    d->n_ifaces++;
    register_schemas(d, d->n_ifaces - 1, diag);
}

static void offset_line_col(const char *buf, size_t off, uint32_t *line, uint32_t *col)
{
    uint32_t l = 1;
    size_t start = 0;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            l++;
            start = i + 1;
        }
    }
    *line = l;
    *col = (uint32_t)(off - start + 1);
}

kt_status model_dtdl_add_buffer(
    model_dtdl *d, const char *name, const char *buf, size_t len, model_diag *diag, kt_err *err)
{
    if (len > DTDL_MAX_FILE_BYTES) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes, the limit is %u", name, len,
                          DTDL_MAX_FILE_BYTES);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL) {
        size_t off = end != NULL && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        model_mark m = { name, 0, 0 };
        offset_line_col(buf, off, &m.line, &m.col);
        model_diag_error(diag, &m, "", "json-syntax", "not valid JSON");
        return KT_OK;
    }
    if (end != NULL) {
        size_t off = (size_t)(end - buf);
        /* cJSON takes every byte up to 32 for white space. */
        while (off < len && (unsigned char)buf[off] <= 32) {
            off++;
        }
        if (off < len) {
            model_mark m = { name, 0, 0 };
            offset_line_col(buf, off, &m.line, &m.col);
            model_diag_error(diag, &m, "", "json-syntax", "text after the JSON value");
            cJSON_Delete(root);
            return KT_OK;
        }
    }
    d->files = kt_xrealloc(d->files, (d->n_files + 1) * sizeof *d->files);
    dtdl_file *f = &d->files[d->n_files];
    memset(f, 0, sizeof *f);
    f->name = kt_xstrdup(name);
    f->root = root;
    size_t fi = d->n_files++;
    file_index_positions(f, buf, len);
    if (cJSON_IsArray(root)) {
        size_t k = 0;
        for (const cJSON *c = root->child; c != NULL; c = c->next, k++) {
            char path[32];
            snprintf(path, sizeof path, "[%zu]", k);
            add_interface(d, fi, c, path, diag);
        }
    } else {
        add_interface(d, fi, root, "", diag);
    }
    return KT_OK;
}

static int has_json_ext(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && (strcmp(name + n - 5, ".json") == 0 || strcmp(name + n - 5, ".JSON") == 0);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static kt_status add_file(model_dtdl *d, const char *path, model_diag *diag, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, DTDL_MAX_FILE_BYTES);
    kt_status st = kt_buf_read_file(&b, path, err);
    if (st == KT_OK) {
        st = model_dtdl_add_buffer(d, path, b.data != NULL ? b.data : "", b.len, diag, err);
    }
    kt_buf_fini(&b);
    return st;
}

static kt_status add_dir(model_dtdl *d, const char *path, int depth, model_diag *diag, kt_err *err)
{
    if (depth > DTDL_MAX_DIR_DEPTH) {
        return kt_err_set(err, KT_EINVAL, "%s: directories nested deeper than %d", path,
                          DTDL_MAX_DIR_DEPTH);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return kt_err_set_errno(err, KT_EIO, errno, "opendir %s", path);
    }
    char **names = NULL;
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names = kt_xrealloc(names, (n + 1) * sizeof *names);
        names[n] = kt_xmalloc(len);
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(dir);
    if (n > 0) {
        qsort(names, n, sizeof *names, cmp_strp);
    }
    kt_status st = KT_OK;
    for (size_t i = 0; i < n && st == KT_OK; i++) {
        struct stat sb;
        if (stat(names[i], &sb) != 0) {
            st = kt_err_set_errno(err, KT_EIO, errno, "stat %s", names[i]);
        } else if (S_ISDIR(sb.st_mode)) {
            st = add_dir(d, names[i], depth + 1, diag, err);
        } else if (S_ISREG(sb.st_mode) && has_json_ext(names[i])) {
            st = add_file(d, names[i], diag, err);
        }
    }
    for (size_t i = 0; i < n; i++) {
        kt_free(names[i]);
    }
    kt_free(names);
    return st;
}

kt_status model_dtdl_add_path(model_dtdl *d, const char *path, model_diag *diag, kt_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "stat %s", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        return add_dir(d, path, 0, diag, err);
    }
    return add_file(d, path, diag, err);
}

/* ---- text fields ------------------------------------------------------------------------ */

/* displayName/description/comment: a string or a language map ("en", else the first). */
static const char *cv_text(conv *c, const cJSON *obj, const char *key, const char *base)
{
    const cJSON *v = get(obj, key);
    if (v == NULL) {
        return NULL;
    }
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        return v->valuestring;
    }
    char path[DTDL_PATH_CAP];
    path_key(path, base, key);
    if (cJSON_IsObject(v)) {
        const char *en = get_str(v, "en");
        if (en != NULL) {
            return en;
        }
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            if (cJSON_IsString(e) && e->valuestring != NULL) {
                return e->valuestring;
            }
        }
    }
    cv_warn(c, v, path, "text-invalid", "%s must be a string or a language map; ignored", key);
    return NULL;
}

static void cv_add_texts(conv *c, const cJSON *src, const char *base, cJSON *dst, int with_comment)
{
    static const char *const keys[] = { "displayName", "description", "comment" };
    for (size_t i = 0; i < (with_comment ? 3u : 2u); i++) {
        const char *t = cv_text(c, src, keys[i], base);
        if (t != NULL) {
            j_add_str(dst, keys[i], t);
        }
    }
}

static void cv_check_keys(conv *c, const cJSON *obj, const char *base, const char *const *allowed)
{
    for (const cJSON *k = obj->child; k != NULL; k = k->next) {
        const char *key = k->string != NULL ? k->string : "";
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++) {
            ok = strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            char path[DTDL_PATH_CAP];
            path_key(path, base, key);
            cv_warn(c, k, path, "field-unknown", "\"%s\" is not supported here; ignored", key);
        }
    }
}

/* ---- schemas ------------------------------------------------------------------------------ */

static const char *const primitives[] = {
    "boolean", "date", "dateTime", "double", "duration", "float", "integer", "long", "string",
    "time",
    /* DTDL v2 geospatial schemas, kept by name like the primitives. */
    "point", "lineString", "polygon", "multiPoint", "multiLineString", "multiPolygon", NULL
};

static const char *primitive(const char *s, int *case_differs)
{
    *case_differs = 0;
    for (size_t i = 0; primitives[i] != NULL; i++) {
        if (strcmp(s, primitives[i]) == 0) {
            return primitives[i];
        }
    }
    for (size_t i = 0; primitives[i] != NULL; i++) {
        if (strcasecmp(s, primitives[i]) == 0) {
            *case_differs = 1;
            return primitives[i];
        }
    }
    return NULL;
}

/*
 * Resolve a schema value: a primitive name (into *prim) or a schema object,
 * inline or named by @id (into *obj). Unresolvable references are reported
 * and fall back to "string". Returns 0 when the value is not a schema at all.
 */
static int
cv_resolve(conv *c, const cJSON *s, const char *path, const char **prim, const cJSON **obj)
{
    *prim = NULL;
    *obj = NULL;
    if (cJSON_IsObject(s)) {
        *obj = s;
        return 1;
    }
    if (!cJSON_IsString(s) || s->valuestring == NULL) {
        cv_err(c, s, path, "schema-invalid", "a schema must be a string or an object");
        return 0;
    }
    const char *ref = s->valuestring;
    int case_differs;
    const char *p = primitive(ref, &case_differs);
    if (p != NULL) {
        if (case_differs) {
            cv_warn(c, s, path, "schema-primitive-case", "\"%s\" read as the primitive schema %s",
                    ref, p);
        }
        *prim = p;
        return 1;
    }
    /* The interface's own schemas first, then any loaded interface's. */
    const cJSON *own = get(c->d->ifaces[c->iface].obj, "schemas");
    if (cJSON_IsArray(own)) {
        for (const cJSON *e = own->child; e != NULL; e = e->next) {
            const char *sid = get_str(e, "@id");
            if (cJSON_IsObject(e) && sid != NULL && strcmp(sid, ref) == 0) {
                *obj = e;
                return 1;
            }
        }
    }
    void *hit = kt_map_get(&c->d->schema_id, ref);
    if (hit != NULL) {
        *obj = c->d->schemas[ptr_idx(hit)].obj;
        return 1;
    }
    if (kt_map_get(&c->d->by_id, ref) != NULL) {
        cv_warn(c, s, path, "schema-is-interface",
                "%s is an Interface, not a schema (use a Component); written as string", ref);
    } else {
        cv_warn(c, s, path, "schema-unresolved",
                "no loaded schema or interface has @id %s; written as string", ref);
    }
    *prim = "string";
    return 1;
}

typedef enum schema_kind { SK_NONE, SK_ENUM, SK_OBJECT, SK_ARRAY, SK_MAP } schema_kind;

static schema_kind cv_schema_kind(conv *c, const cJSON *obj, const char *path)
{
    const cJSON *t = get(obj, "@type");
    static const char *const names[] = { "Enum", "Object", "Array", "Map" };
    for (size_t i = 0; i < 4; i++) {
        if (type_is(t, names[i])) {
            return (schema_kind)(i + 1);
        }
    }
    if (cJSON_IsString(t) && t->valuestring != NULL) {
        cv_err(c, obj, path, "schema-unsupported", "schema @type \"%s\" is not supported",
               t->valuestring);
    } else {
        cv_err(c, obj, path, "schema-unsupported",
               "a schema object needs @type Enum, Object, Array or Map");
    }
    return SK_NONE;
}

/* enumValue as the CRD's string. */
static int enum_value_str(const cJSON *v, char *out, size_t cap)
{
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        snprintf(out, cap, "%s", v->valuestring);
        return 1;
    }
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x > -9.2e18 && x < 9.2e18 && (double)(long long)x == x) {
            snprintf(out, cap, "%lld", (long long)x);
        } else {
            snprintf(out, cap, "%.17g", x);
        }
        return 1;
    }
    return 0;
}

static int cv_expr(conv *c, const cJSON *s, const char *path, int depth, kt_buf *out);

static int ex_ok(conv *c, kt_status st)
{
    if (st != KT_OK) {
        c->overflow = 1;
    }
    return st == KT_OK;
}

/* Append ",name:expr" items of an Object schema's fields into out. */
static int cv_expr_object(conv *c, const cJSON *obj, const char *path, int depth, kt_buf *out)
{
    const cJSON *fields = get(obj, "fields");
    char p[DTDL_PATH_CAP];
    path_key(p, path, "fields");
    if (!cJSON_IsArray(fields)) {
        cv_err(c, obj, p, "schema-fields-missing", "an Object schema needs a fields array");
        return 0;
    }
    int ok = ex_ok(c, kt_buf_puts(out, "object{"));
    size_t k = 0;
    for (const cJSON *f = fields->child; f != NULL && ok; f = f->next, k++) {
        path_idx(p, path, "fields", k);
        const char *fname = get_str(f, "name");
        if (fname == NULL) {
            cv_err(c, f, p, "name-missing", "an Object field needs a name");
            return 0;
        }
        char sp[DTDL_PATH_CAP];
        path_key(sp, p, "schema");
        ok = ex_ok(c, kt_buf_printf(out, "%s%s:", k > 0 ? "," : "", fname)) &&
             cv_expr(c, get(f, "schema"), sp, depth + 1, out);
    }
    return ok && ex_ok(c, kt_buf_putc(out, '}'));
}

/*
 * A schema as a type expression, for schemas nested where the CRD only has
 * primitiveType: double, array<double>, map<string,integer>,
 * object{street:string,zip:integer}, enum<integer>.
 */
static int cv_expr(conv *c, const cJSON *s, const char *path, int depth, kt_buf *out)
{
    if (s == NULL) {
        cv_err(c, NULL, path, "schema-missing", "schema is required");
        return 0;
    }
    if (depth > DTDL_MAX_SCHEMA_DEPTH) {
        cv_err(c, s, path, "schema-too-deep", "schemas nested deeper than %d (a cycle?)",
               DTDL_MAX_SCHEMA_DEPTH);
        return 0;
    }
    const char *prim;
    const cJSON *obj;
    if (!cv_resolve(c, s, path, &prim, &obj)) {
        return 0;
    }
    if (prim != NULL) {
        return ex_ok(c, kt_buf_puts(out, prim));
    }
    char p[DTDL_PATH_CAP];
    switch (cv_schema_kind(c, obj, path)) {
    case SK_ENUM: {
        const char *vs = get_str(obj, "valueSchema");
        return ex_ok(c, kt_buf_printf(out, "enum<%s>", vs != NULL ? vs : "string"));
    }
    case SK_ARRAY:
        path_key(p, path, "elementSchema");
        return ex_ok(c, kt_buf_puts(out, "array<")) &&
               cv_expr(c, get(obj, "elementSchema"), p, depth + 1, out) &&
               ex_ok(c, kt_buf_putc(out, '>'));
    case SK_MAP: {
        path_key(p, path, "mapValue.schema");
        const cJSON *mv = get(obj, "mapValue");
        return ex_ok(c, kt_buf_puts(out, "map<string,")) &&
               cv_expr(c, cJSON_IsObject(mv) ? get(mv, "schema") : NULL, p, depth + 1, out) &&
               ex_ok(c, kt_buf_putc(out, '>'));
    }
    case SK_OBJECT:
        return cv_expr_object(c, obj, path, depth, out);
    case SK_NONE:
        break;
    }
    return 0;
}

/* {name, schema: {primitiveType: expr}} for a complexType field; NULL on error. */
static cJSON *cv_field(conv *c, const char *name, const cJSON *schema, const char *path, int depth)
{
    kt_buf b;
    kt_buf_init(&b, DTDL_MAX_EXPR_BYTES);
    cJSON *f = NULL;
    c->overflow = 0;
    if (cv_expr(c, schema, path, depth, &b)) {
        f = j_obj();
        j_add_str(f, "name", name);
        cJSON *s = j_obj();
        j_add_str(s, "primitiveType", b.data != NULL ? b.data : "");
        j_add(f, "schema", s);
    } else if (c->overflow) {
        /* Other failures were reported where they happened. */
        cv_err(c, schema, path, "schema-too-large", "the schema expression is over %u bytes",
               DTDL_MAX_EXPR_BYTES);
    }
    kt_buf_fini(&b);
    return f;
}

static cJSON *cv_enum(conv *c, const cJSON *obj, const char *path)
{
    const char *vs = get_str(obj, "valueSchema");
    char p[DTDL_PATH_CAP];
    path_key(p, path, "valueSchema");
    if (vs == NULL) {
        cv_err(c, obj, p, "enum-value-schema", "an Enum needs valueSchema integer or string");
        return NULL;
    }
    if (strcmp(vs, "integer") != 0 && strcmp(vs, "string") != 0) {
        cv_warn(c, get(obj, "valueSchema"), p, "enum-value-schema",
                "DTDL allows valueSchema integer or string, not %s", vs);
    }
    const cJSON *vals = get(obj, "enumValues");
    path_key(p, path, "enumValues");
    if (!cJSON_IsArray(vals)) {
        cv_err(c, obj, p, "enum-values-missing", "an Enum needs an enumValues array");
        return NULL;
    }
    cJSON *et = j_obj();
    j_add_str(et, "valueSchema", vs);
    cJSON *list = j_arr();
    size_t k = 0;
    int ok = 1;
    for (const cJSON *v = vals->child; v != NULL; v = v->next, k++) {
        path_idx(p, path, "enumValues", k);
        const char *name = get_str(v, "name");
        char value[128];
        if (name == NULL) {
            cv_err(c, v, p, "name-missing", "an enum value needs a name");
            ok = 0;
            continue;
        }
        if (!enum_value_str(get(v, "enumValue"), value, sizeof value)) {
            cv_err(c, v, p, "enum-value-missing", "enum value %s needs an enumValue", name);
            ok = 0;
            continue;
        }
        cJSON *e = j_obj();
        j_add_str(e, "name", name);
        const char *dn = cv_text(c, v, "displayName", p);
        if (dn != NULL) {
            j_add_str(e, "displayName", dn);
        }
        j_add_str(e, "enumValue", value);
        j_push(list, e);
    }
    j_add(et, "enumValues", list);
    if (!ok) {
        cJSON_Delete(et);
        return NULL;
    }
    return et;
}

/* The fields of an Object/Array/Map as complexType. */
static cJSON *cv_complex(conv *c, const cJSON *obj, schema_kind kind, const char *path, int depth)
{
    cJSON *ct = j_obj();
    cJSON *fields = j_arr();
    char p[DTDL_PATH_CAP];
    char sp[DTDL_PATH_CAP];
    int ok = 1;
    if (kind == SK_OBJECT) {
        j_add_str(ct, "type", "Object");
        const cJSON *fl = get(obj, "fields");
        path_key(p, path, "fields");
        if (!cJSON_IsArray(fl)) {
            cv_err(c, obj, p, "schema-fields-missing", "an Object schema needs a fields array");
            ok = 0;
        }
        size_t k = 0;
        for (const cJSON *f = ok ? fl->child : NULL; f != NULL; f = f->next, k++) {
            path_idx(p, path, "fields", k);
            const char *fname = get_str(f, "name");
            if (fname == NULL) {
                cv_err(c, f, p, "name-missing", "an Object field needs a name");
                ok = 0;
                continue;
            }
            path_key(sp, p, "schema");
            cJSON *fj = cv_field(c, fname, get(f, "schema"), sp, depth + 1);
            if (fj == NULL) {
                ok = 0;
                continue;
            }
            j_push(fields, fj);
        }
    } else if (kind == SK_ARRAY) {
        j_add_str(ct, "type", "Array");
        path_key(p, path, "elementSchema");
        cJSON *fj = cv_field(c, "elementSchema", get(obj, "elementSchema"), p, depth + 1);
        if (fj == NULL) {
            ok = 0;
        } else {
            j_push(fields, fj);
        }
    } else {
        j_add_str(ct, "type", "Map");
        const cJSON *mk = get(obj, "mapKey");
        const cJSON *mv = get(obj, "mapValue");
        const char *kname = cJSON_IsObject(mk) ? get_str(mk, "name") : NULL;
        const char *vname = cJSON_IsObject(mv) ? get_str(mv, "name") : NULL;
        if (kname == NULL || vname == NULL) {
            path_key(p, path, kname == NULL ? "mapKey" : "mapValue");
            cv_err(c, obj, p, "map-invalid", "a Map needs mapKey and mapValue with names");
            ok = 0;
        } else {
            const char *ks = get_str(mk, "schema");
            if (ks == NULL || strcmp(ks, "string") != 0) {
                path_key(p, path, "mapKey.schema");
                cv_warn(c, mk, p, "map-key-schema", "DTDL map keys are strings");
            }
            cJSON *kf = j_obj();
            j_add_str(kf, "name", kname);
            cJSON *ks_obj = j_obj();
            j_add_str(ks_obj, "primitiveType", "string");
            j_add(kf, "schema", ks_obj);
            j_push(fields, kf);
            path_key(p, path, "mapValue.schema");
            cJSON *vf = cv_field(c, vname, get(mv, "schema"), p, depth + 1);
            if (vf == NULL) {
                ok = 0;
            } else {
                j_push(fields, vf);
            }
        }
    }
    j_add(ct, "fields", fields);
    if (!ok) {
        cJSON_Delete(ct);
        return NULL;
    }
    return ct;
}

/* A member's schema as the CRD's TwinSchema; NULL on error (reported). */
static cJSON *cv_schema(conv *c, const cJSON *s, const char *path)
{
    const char *prim;
    const cJSON *obj;
    if (!cv_resolve(c, s, path, &prim, &obj)) {
        return NULL;
    }
    cJSON *out = NULL;
    if (prim != NULL) {
        out = j_obj();
        j_add_str(out, "primitiveType", prim);
        return out;
    }
    schema_kind kind = cv_schema_kind(c, obj, path);
    if (kind == SK_NONE) {
        return NULL;
    }
    cJSON *inner = kind == SK_ENUM ? cv_enum(c, obj, path) : cv_complex(c, obj, kind, path, 0);
    if (inner == NULL) {
        return NULL;
    }
    out = j_obj();
    j_add(out, kind == SK_ENUM ? "enumType" : "complexType", inner);
    return out;
}

/* ---- contents ------------------------------------------------------------------------------ */

typedef enum member_kind {
    MK_PROPERTY,
    MK_TELEMETRY,
    MK_COMMAND,
    MK_RELATIONSHIP,
    MK_COMPONENT
} member_kind;

static const char *const member_kinds[] = { "Property", "Telemetry", "Command", "Relationship",
                                            "Component" };

/* The lists a member goes into. */
typedef struct cv_lists {
    cJSON *properties;
    cJSON *telemetries;
    cJSON *commands;
    cJSON *relationships;
    cJSON *components;
} cv_lists;

static void add_id(cJSON *dst, const cJSON *src)
{
    const char *id = get_str(src, "@id");
    if (id != NULL) {
        char name[MODEL_NAME_MAX + 2];
        j_add_str(dst, "id", model_dtdl_name_from_id(id, name, sizeof name));
    }
}

/* "semanticType: Temperature; unit: degreeCelsius", appended to the comment. */
static void add_semantic_comment(cJSON *dst, const char *semantic, const cJSON *src)
{
    const char *unit = get_str(src, "unit");
    if (semantic[0] == '\0' && unit == NULL) {
        return;
    }
    char note[512];
    snprintf(note, sizeof note, "%s%s%s%s%s", semantic[0] != '\0' ? "semanticType: " : "", semantic,
             semantic[0] != '\0' && unit != NULL ? "; " : "", unit != NULL ? "unit: " : "",
             unit != NULL ? unit : "");
    const cJSON *existing = get(dst, "comment");
    if (cJSON_IsString(existing) && existing->valuestring != NULL) {
        size_t len = strlen(existing->valuestring) + strlen(note) + 4;
        char *joined = kt_xmalloc(len);
        snprintf(joined, len, "%s (%s)", existing->valuestring, note);
        cJSON_DeleteItemFromObjectCaseSensitive(dst, "comment");
        j_add_str(dst, "comment", joined);
        kt_free(joined);
    } else {
        j_add_str(dst, "comment", note);
    }
}

/*
 * Property or Telemetry (TwinProperty / TwinTelemetry). semantic holds the
 * extra @type entries ("" when none). Returns NULL on error (reported).
 */
static cJSON *
cv_property(conv *c, const cJSON *m, member_kind kind, const char *semantic, const char *path)
{
    static const char *const prop_keys[] = { "@type",       "@id",     "name",   "displayName",
                                             "description", "comment", "schema", "writable",
                                             "unit",        NULL };
    static const char *const tel_keys[] = { "@type",       "@id",         "name",
                                            "displayName", "description", "comment",
                                            "schema",      "unit",        NULL };
    cv_check_keys(c, m, path, kind == MK_PROPERTY ? prop_keys : tel_keys);
    const char *name = get_str(m, "name");
    cJSON *out = j_obj();
    add_id(out, m);
    j_add_str(out, "name", name);
    cv_add_texts(c, m, path, out, 1);
    add_semantic_comment(out, semantic, m);
    char p[DTDL_PATH_CAP];
    path_key(p, path, "schema");
    const cJSON *s = get(m, "schema");
    if (s == NULL) {
        cv_err(c, m, p, "schema-missing", "%s %s needs a schema", member_kinds[kind], name);
        cJSON_Delete(out);
        return NULL;
    }
    cJSON *schema = cv_schema(c, s, p);
    if (schema == NULL) {
        cJSON_Delete(out);
        return NULL;
    }
    j_add(out, "schema", schema);
    const cJSON *w = get(m, "writable");
    if (kind == MK_PROPERTY && w != NULL) {
        if (cJSON_IsBool(w)) {
            j_add(out, "writable", must(cJSON_CreateBool(cJSON_IsTrue(w))));
        } else {
            path_key(p, path, "writable");
            cv_warn(c, w, p, "field-type", "writable must be a boolean; ignored");
        }
    }
    return out;
}

/* Command request/response (TwinCommand.request/response). */
static cJSON *cv_payload(conv *c, const cJSON *pl, const char *path)
{
    static const char *const keys[] = { "@type",       "@id",     "name",   "displayName",
                                        "description", "comment", "schema", NULL };
    if (!cJSON_IsObject(pl)) {
        cv_err(c, pl, path, "payload-invalid", "a command payload must be an object");
        return NULL;
    }
    cv_check_keys(c, pl, path, keys);
    const char *name = get_str(pl, "name");
    if (name == NULL) {
        cv_err(c, pl, path, "name-missing", "a command payload needs a name");
        return NULL;
    }
    cJSON *out = j_obj();
    j_add_str(out, "name", name);
    cv_add_texts(c, pl, path, out, 0);
    if (get(pl, "comment") != NULL) {
        char p[DTDL_PATH_CAP];
        path_key(p, path, "comment");
        cv_warn(c, get(pl, "comment"), p, "field-dropped",
                "TwinCommand payloads have no comment field; dropped");
    }
    char p[DTDL_PATH_CAP];
    path_key(p, path, "schema");
    const cJSON *s = get(pl, "schema");
    if (s == NULL) {
        cv_err(c, pl, p, "schema-missing", "payload %s needs a schema", name);
        cJSON_Delete(out);
        return NULL;
    }
    cJSON *schema = cv_schema(c, s, p);
    if (schema == NULL) {
        cJSON_Delete(out);
        return NULL;
    }
    j_add(out, "schema", schema);
    return out;
}

static cJSON *cv_command(conv *c, const cJSON *m, const char *path)
{
    static const char *const keys[] = { "@type",       "@id",     "name",    "displayName",
                                        "description", "comment", "request", "response",
                                        "commandType", NULL };
    cv_check_keys(c, m, path, keys);
    const char *name = get_str(m, "name");
    cJSON *out = j_obj();
    add_id(out, m);
    /* KTWIN's SDK publishes ktwin.command.<iface>.<lower(cmd)>. */
    char *lower = kt_xstrdup(name);
    for (char *q = lower; *q != '\0'; q++) {
        if (*q >= 'A' && *q <= 'Z') {
            *q = (char)(*q - 'A' + 'a');
        }
    }
    j_add_str(out, "name", lower);
    kt_free(lower);
    cv_add_texts(c, m, path, out, 1);
    static const char *const parts[] = { "request", "response" };
    int ok = 1;
    for (size_t i = 0; i < 2; i++) {
        const cJSON *pl = get(m, parts[i]);
        if (pl == NULL) {
            continue;
        }
        char p[DTDL_PATH_CAP];
        path_key(p, path, parts[i]);
        cJSON *pj = cv_payload(c, pl, p);
        if (pj == NULL) {
            ok = 0;
        } else {
            j_add(out, parts[i], pj);
        }
    }
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* KTWIN name of a referenced interface; warns when it is not loaded. */
static void cv_target(conv *c,
                      const char *ref,
                      const cJSON *node,
                      const char *path,
                      const char *code,
                      const char *what,
                      char *name,
                      size_t cap)
{
    model_dtdl_name_from_id(ref, name, cap);
    if (kt_map_get(&c->d->by_id, ref) != NULL) {
        return;
    }
    void *hit = kt_map_get(&c->d->by_name, name);
    if (hit != NULL) {
        cv_warn(c, node, path, code, "%s %s is not loaded; %s (same KTWIN name %s) is used", what,
                ref, c->d->ifaces[ptr_idx(hit)].id, name);
        return;
    }
    cv_warn(c, node, path, code, "%s %s is not loaded", what, ref);
}

static int json_int(const cJSON *v, long long *out)
{
    if (!cJSON_IsNumber(v)) {
        return 0;
    }
    double x = v->valuedouble;
    if (!(x > -2147483648.0 && x < 2147483648.0) || (double)(long long)x != x) {
        return 0;
    }
    *out = (long long)x;
    return 1;
}

static cJSON *cv_relationship(conv *c, const cJSON *m, const char *path)
{
    static const char *const keys[] = {
        "@type",           "@id",      "name",       "displayName",
        "description",     "comment",  "target",     "minMultiplicity",
        "maxMultiplicity", "writable", "properties", NULL
    };
    cv_check_keys(c, m, path, keys);
    const char *name = get_str(m, "name");
    cJSON *out = j_obj();
    add_id(out, m);
    j_add_str(out, "name", name);
    cv_add_texts(c, m, path, out, 1);
    char p[DTDL_PATH_CAP];
    path_key(p, path, "target");
    const cJSON *tv = get(m, "target");
    if (tv == NULL) {
        cv_warn(c, m, p, "relationship-target-missing",
                "relationship %s has no target, so it gets no interface", name);
    } else if (!cJSON_IsString(tv) || tv->valuestring == NULL) {
        cv_err(c, tv, p, "relationship-target-invalid", "target must be an interface @id");
    } else {
        char tname[MODEL_NAME_MAX + 2];
        cv_target(c, tv->valuestring, tv, p, "relationship-target-unknown", "target", tname,
                  sizeof tname);
        j_add_str(out, "interface", tname);
    }
    static const char *const mult[] = { "maxMultiplicity", "minMultiplicity" };
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = get(m, mult[i]);
        long long x;
        if (v == NULL) {
            continue;
        }
        path_key(p, path, mult[i]);
        if (!json_int(v, &x) || x < 0) {
            cv_warn(c, v, p, "field-type", "%s must be a non-negative integer; ignored", mult[i]);
            continue;
        }
        j_add_num(out, mult[i], (double)x);
    }
    const cJSON *props = get(m, "properties");
    int ok = 1;
    if (props != NULL) {
        path_key(p, path, "properties");
        if (!cJSON_IsArray(props)) {
            cv_err(c, props, p, "properties-invalid", "properties must be an array");
            ok = 0;
        } else {
            cJSON *list = j_arr();
            size_t k = 0;
            for (const cJSON *e = props->child; e != NULL; e = e->next, k++) {
                path_idx(p, path, "properties", k);
                const char *pname = get_str(e, "name");
                if (!cJSON_IsObject(e) || !type_is(get(e, "@type"), "Property") || pname == NULL) {
                    cv_err(c, e, p, "relationship-property-invalid",
                           "relationship properties must be Property objects with a name");
                    ok = 0;
                    continue;
                }
                cJSON *pj = cv_property(c, e, MK_PROPERTY, "", p);
                if (pj == NULL) {
                    ok = 0;
                } else {
                    j_push(list, pj);
                }
            }
            j_add_list(out, "properties", list);
        }
    }
    const cJSON *w = get(m, "writable");
    if (w != NULL) {
        if (cJSON_IsBool(w)) {
            /* KTWIN's CRD spells it "writeable" on relationships. */
            j_add(out, "writeable", must(cJSON_CreateBool(cJSON_IsTrue(w))));
        } else {
            path_key(p, path, "writable");
            cv_warn(c, w, p, "field-type", "writable must be a boolean; ignored");
        }
    }
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

static cJSON *cv_component(conv *c, const cJSON *m, const char *path)
{
    static const char *const keys[] = { "@type",       "@id",     "name",   "displayName",
                                        "description", "comment", "schema", NULL };
    cv_check_keys(c, m, path, keys);
    const char *name = get_str(m, "name");
    char p[DTDL_PATH_CAP];
    path_key(p, path, "schema");
    const cJSON *s = get(m, "schema");
    if (cJSON_IsObject(s)) {
        cv_err(c, s, p, "component-inline-unsupported",
               "component %s: inline interfaces are not supported; give it an @id and "
               "reference it",
               name);
        return NULL;
    }
    if (!cJSON_IsString(s) || s->valuestring == NULL) {
        cv_err(c, m, p, "schema-missing", "component %s needs an interface @id as schema", name);
        return NULL;
    }
    char iname[MODEL_NAME_MAX + 2];
    cv_target(c, s->valuestring, s, p, "component-unknown", "component interface", iname,
              sizeof iname);
    cJSON *out = j_obj();
    j_add_str(out, "name", name);
    j_add_str(out, "interface", iname);
    return out;
}

/* Index into member_kinds, or -1. */
static int kind_index(const char *s)
{
    for (size_t i = 0; i < sizeof member_kinds / sizeof member_kinds[0]; i++) {
        if (strcmp(s, member_kinds[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * The content kind named by @type (a string or an array), with the other
 * entries (semantic types) joined into semantic. Returns 0, or -1 when @type
 * is not a string or array of strings, -2 when it names two kinds, -3 when
 * it names none.
 */
static int member_kind_of(const cJSON *t, member_kind *kind, char *semantic, size_t cap)
{
    semantic[0] = '\0';
    if (cJSON_IsString(t) && t->valuestring != NULL) {
        int k = kind_index(t->valuestring);
        if (k < 0) {
            snprintf(semantic, cap, "%s", t->valuestring);
            return -3;
        }
        *kind = (member_kind)k;
        return 0;
    }
    if (!cJSON_IsArray(t)) {
        return -1;
    }
    int found = 0;
    for (const cJSON *e = t->child; e != NULL; e = e->next) {
        if (!cJSON_IsString(e) || e->valuestring == NULL) {
            return -1;
        }
        int k = kind_index(e->valuestring);
        if (k >= 0 && found) {
            return -2;
        }
        if (k >= 0) {
            *kind = (member_kind)k;
            found = 1;
            continue;
        }
        size_t n = strlen(semantic);
        snprintf(semantic + n, cap - n, "%s%s", n > 0 ? ", " : "", e->valuestring);
    }
    return found ? 0 : -3;
}

static void cv_member(conv *c, const cJSON *m, const char *path, cv_lists *l)
{
    if (!cJSON_IsObject(m)) {
        cv_err(c, m, path, "content-invalid", "contents entries must be objects");
        return;
    }
    const cJSON *t = get(m, "@type");
    member_kind kind = MK_PROPERTY;
    char semantic[256];
    int r = t == NULL ? -4 : member_kind_of(t, &kind, semantic, sizeof semantic);
    if (r != 0) {
        char tp[DTDL_PATH_CAP];
        path_key(tp, path, "@type");
        if (r == -3 && cJSON_IsString(t)) {
            cv_err(c, m, tp, "content-type-unsupported", "content @type \"%s\" is not supported",
                   t->valuestring);
        } else if (r == -3) {
            cv_err(c, m, tp, "content-type-unsupported",
                   "@type [%s] names no content kind (Property, Telemetry, Command, "
                   "Relationship, Component)",
                   semantic);
        } else if (r == -2) {
            cv_err(c, m, tp, "content-type-invalid", "@type names more than one content kind");
        } else {
            cv_err(c, m, tp, "content-type-invalid", "@type must be a string or array of strings");
        }
        return;
    }
    const char *name = get_str(m, "name");
    char np[DTDL_PATH_CAP];
    path_key(np, path, "name");
    if (name == NULL) {
        cv_err(c, m, np, "name-missing", "%s needs a string name", member_kinds[kind]);
        return;
    }
    if (!dtdl_name_ok(name)) {
        cv_warn(c, get(m, "name"), np, "name-invalid",
                "\"%s\" is not a DTDL name (letter, then letters, digits, '_', at most 64)", name);
    }
    if (kt_map_put(&c->members, name, idx_ptr(0)) != NULL) {
        cv_err(c, m, np, "member-duplicate", "more than one content is named %s", name);
        return;
    }
    if (semantic[0] != '\0' && kind != MK_PROPERTY && kind != MK_TELEMETRY) {
        char tp[DTDL_PATH_CAP];
        path_key(tp, path, "@type");
        cv_warn(c, m, tp, "semantic-type-ignored",
                "semantic types apply to Property and Telemetry; [%s] ignored", semantic);
    }
    cJSON *out = NULL;
    cJSON *list = NULL;
    switch (kind) {
    case MK_PROPERTY:
    case MK_TELEMETRY:
        out = cv_property(c, m, kind, semantic, path);
        list = kind == MK_PROPERTY ? l->properties : l->telemetries;
        break;
    case MK_COMMAND:
        out = cv_command(c, m, path);
        list = l->commands;
        break;
    case MK_RELATIONSHIP:
        out = cv_relationship(c, m, path);
        list = l->relationships;
        break;
    case MK_COMPONENT:
        out = cv_component(c, m, path);
        list = l->components;
        break;
    }
    if (out != NULL) {
        j_push(list, out);
    }
}

/* ---- interfaces --------------------------------------------------------------------------- */

static cJSON *service_spec(const char *name)
{
    char image[MODEL_NAME_MAX + 64];
    snprintf(image, sizeof image, "ghcr.io/open-digital-twin/ktwin-%s-service:0.1", name);
    cJSON *svc = j_obj();
    cJSON *tmpl = j_obj();
    cJSON *pod = j_obj();
    cJSON *containers = j_arr();
    cJSON *ct = j_obj();
    j_add_str(ct, "name", name);
    j_add_str(ct, "image", image);
    j_add_str(ct, "imagePullPolicy", "IfNotPresent");
    j_push(containers, ct);
    j_add(pod, "containers", containers);
    j_add(tmpl, "spec", pod);
    j_add(svc, "template", tmpl);
    cJSON *as = j_obj();
    j_add_num(as, "maxScale", 20);
    j_add_num(as, "target", 10);
    j_add_num(as, "parallelism", 100);
    j_add_num(as, "targetUtilizationPercentage", 65);
    j_add_str(as, "metric", "concurrency");
    j_add(svc, "autoScaling", as);
    return svc;
}

/* Parents: spec.extendsInterface gets the first, the annotation all when there are several. */
static void cv_extends(conv *c, const cJSON *obj, const char *base, cJSON *spec, cJSON *annotations)
{
    const cJSON *ext = get(obj, "extends");
    if (ext == NULL) {
        return;
    }
    char p[DTDL_PATH_CAP];
    path_key(p, base, "extends");
    kt_buf all;
    kt_buf_init(&all, DTDL_MAX_EXPR_BYTES);
    size_t n = 0;
    const cJSON *items = cJSON_IsArray(ext) ? ext->child : ext;
    size_t k = 0;
    for (const cJSON *e = items; e != NULL; e = cJSON_IsArray(ext) ? e->next : NULL, k++) {
        char ep[DTDL_PATH_CAP];
        if (cJSON_IsArray(ext)) {
            path_idx(ep, base, "extends", k);
        } else {
            snprintf(ep, sizeof ep, "%s", p);
        }
        if (cJSON_IsObject(e)) {
            cv_err(c, e, ep, "extends-inline-unsupported",
                   "inline interfaces in extends are not supported; give it an @id");
        } else if (!cJSON_IsString(e) || e->valuestring == NULL) {
            cv_err(c, e, ep, "extends-invalid",
                   "extends must be an interface @id or a list of them");
        } else {
            char pname[MODEL_NAME_MAX + 2];
            cv_target(c, e->valuestring, e, ep, "extends-unknown", "parent interface", pname,
                      sizeof pname);
            if (n == 0) {
                j_add_str(spec, "extendsInterface", pname);
            }
            if (kt_buf_printf(&all, "%s%s", n > 0 ? "," : "", pname) != KT_OK) {
                cv_err(c, e, ep, "extends-too-long", "the list of parents is too long");
            }
            n++;
        }
        if (!cJSON_IsArray(ext)) {
            break;
        }
    }
    if (n > 1 && all.data != NULL) {
        j_add_str(annotations, MODEL_ANNOTATION_EXTENDS, all.data);
    }
    kt_buf_fini(&all);
}

static void cv_interface(conv *c)
{
    model_dtdl *d = c->d;
    dtdl_iface *it = &d->ifaces[c->iface];
    const cJSON *obj = it->obj;
    static const char *const keys[] = { "@id",         "@type",   "@context", "displayName",
                                        "description", "comment", "contents", "extends",
                                        "schemas",     NULL };
    cv_check_keys(c, obj, it->path, keys);
    cJSON *doc = j_obj();
    j_add_str(doc, "apiVersion", MODEL_API_DTD);
    j_add_str(doc, "kind", "TwinInterface");
    cJSON *meta = j_obj();
    j_add_str(meta, "name", it->name);
    j_add_str(meta, "namespace", d->ns);
    cJSON *annotations = j_obj();
    cJSON *spec = j_obj();
    j_add_str(spec, "id", it->name);
    cv_add_texts(c, obj, it->path, spec, 1);
    cv_extends(c, obj, it->path, spec, annotations);

    cv_lists l = { j_arr(), j_arr(), j_arr(), j_arr(), j_arr() };
    const cJSON *contents = get(obj, "contents");
    char p[DTDL_PATH_CAP];
    if (contents != NULL && !cJSON_IsArray(contents)) {
        path_key(p, it->path, "contents");
        cv_err(c, contents, p, "contents-invalid", "contents must be an array");
    } else if (contents != NULL) {
        size_t k = 0;
        for (const cJSON *m = contents->child; m != NULL; m = m->next, k++) {
            path_idx(p, it->path, "contents", k);
            cv_member(c, m, p, &l);
        }
    }
    j_add_list(spec, "properties", l.properties);
    j_add_list(spec, "telemetries", l.telemetries);
    j_add_list(spec, "commands", l.commands);
    j_add_list(spec, "relationships", l.relationships);
    if (l.components->child != NULL) {
        kt_buf b;
        kt_buf_init(&b, DTDL_MAX_DOC_BYTES);
        if (model_emit_json_doc(l.components, &b) != KT_OK) {
            must(NULL);
        }
        b.data[--b.len] = '\0'; /* drop the newline */
        j_add_str(annotations, MODEL_ANNOTATION_COMPONENTS, b.data);
        kt_buf_fini(&b);
    }
    cJSON_Delete(l.components);
    if (d->with_service) {
        if (strlen(it->name) > DTDL_K8S_LABEL_MAX) {
            cv_warn(c, obj, it->path, "service-name-too-long",
                    "%s is longer than 63 characters, too long for a Knative Service and "
                    "container name",
                    it->name);
        }
        j_add(spec, "service", service_spec(it->name));
    }
    j_add_list(meta, "annotations", annotations);
    j_add(doc, "metadata", meta);
    j_add(doc, "spec", spec);
    cJSON_Delete(it->doc);
    it->doc = doc;
}

kt_status model_dtdl_convert(model_dtdl *d, model_diag *diag)
{
    size_t errors = diag->n_errors;
    for (size_t i = 0; i < d->n_ifaces; i++) {
        conv c = { d, diag, i, { 0 }, 0 };
        kt_map_init(&c.members);
        cv_interface(&c);
        kt_map_fini(&c.members);
    }
    return diag->n_errors == errors ? KT_OK : KT_EINVAL;
}

/* ---- results ---------------------------------------------------------------------------- */

size_t model_dtdl_count(const model_dtdl *d)
{
    return d->n_ifaces;
}

const char *model_dtdl_name(const model_dtdl *d, size_t i)
{
    return i < d->n_ifaces ? d->ifaces[i].name : NULL;
}

const char *model_dtdl_source(const model_dtdl *d, size_t i)
{
    return i < d->n_ifaces ? d->files[d->ifaces[i].file].name : NULL;
}

kt_status model_dtdl_emit(const model_dtdl *d, size_t i, kt_buf *out)
{
    if (i >= d->n_ifaces || d->ifaces[i].doc == NULL) {
        return KT_EINVAL;
    }
    return model_emit_yaml_doc(d->ifaces[i].doc, out);
}

/* mkdir -p; path is modified temporarily. */
static kt_status make_dirs(char *path, kt_err *err)
{
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            kt_status st = kt_err_set_errno(err, KT_EIO, e, "mkdir %s", path);
            path[i] = saved;
            return st;
        }
        path[i] = saved;
    }
    return KT_OK;
}

/* File name without directories and extension; "dtdl" when nothing is left. */
static void file_stem(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n == 0) {
        snprintf(out, cap, "dtdl");
        return;
    }
    snprintf(out, cap, "%.*s", (int)(n < 200 ? n : 200), base);
}

kt_status model_dtdl_write_dir(const model_dtdl *d, const char *outdir, int per_file, kt_err *err)
{
    char *dir = kt_xstrdup(outdir);
    kt_status st = make_dirs(dir, err);
    kt_free(dir);
    if (st != KT_OK) {
        return st;
    }
    for (size_t i = 0; i < d->n_ifaces; i++) {
        if (d->ifaces[i].doc == NULL) {
            return kt_err_set(err, KT_EINVAL, "%s was not converted", d->ifaces[i].id);
        }
    }
    kt_buf b;
    kt_buf_init(&b, DTDL_MAX_DOC_BYTES);
    char path[4096];
    if (!per_file) {
        for (size_t i = 0; i < d->n_ifaces && st == KT_OK; i++) {
            kt_buf_reset(&b);
            if ((size_t)snprintf(path, sizeof path, "%s/%s.yaml", outdir, d->ifaces[i].name) >=
                sizeof path) {
                st = kt_err_set(err, KT_EINVAL, "%s: path too long", outdir);
                break;
            }
            st = model_dtdl_emit(d, i, &b);
            if (st != KT_OK) {
                st = kt_err_set(err, st, "%s: document over %u bytes", d->ifaces[i].name,
                                DTDL_MAX_DOC_BYTES);
            } else {
                st = kt_buf_write_file(&b, path, err);
            }
        }
        kt_buf_fini(&b);
        return st;
    }
    /* One output per input file, in add order; equal stems get "-2", "-3", ... */
    kt_map used;
    kt_map_init(&used);
    char **keys = kt_xcalloc(d->n_files + 1, sizeof *keys);
    for (size_t f = 0; f < d->n_files && st == KT_OK; f++) {
        kt_buf_reset(&b);
        for (size_t i = 0; i < d->n_ifaces && st == KT_OK; i++) {
            if (d->ifaces[i].file == f) {
                st = model_dtdl_emit(d, i, &b);
                if (st != KT_OK) {
                    st = kt_err_set(err, st, "%s: output over %u bytes", d->files[f].name,
                                    DTDL_MAX_DOC_BYTES);
                }
            }
        }
        if (st != KT_OK || b.len == 0) {
            continue;
        }
        char stem[256];
        char uniq[280];
        file_stem(d->files[f].name, stem, sizeof stem);
        snprintf(uniq, sizeof uniq, "%s", stem);
        for (unsigned k = 2; kt_map_get(&used, uniq) != NULL; k++) {
            snprintf(uniq, sizeof uniq, "%s-%u", stem, k);
        }
        keys[f] = kt_xstrdup(uniq);
        kt_map_put(&used, keys[f], idx_ptr(f));
        if ((size_t)snprintf(path, sizeof path, "%s/%s.yaml", outdir, uniq) >= sizeof path) {
            st = kt_err_set(err, KT_EINVAL, "%s: path too long", outdir);
            break;
        }
        st = kt_buf_write_file(&b, path, err);
    }
    for (size_t f = 0; f < d->n_files; f++) {
        kt_free(keys[f]);
    }
    kt_free(keys);
    kt_map_fini(&used);
    kt_buf_fini(&b);
    return st;
}
