/*
 * graph.c — instance sets, subgraphs and KTWIN's graph JSON. See model/graph.h.
 *
 * DESIGN: the graph JSON is written straight into the caller's kt_buf (or,
 * model_graph_to_json_sink, handed to a callback) through a small staging
 * buffer (one kt_buf_append per 64 KiB instead of one per token), because the hub serves the whole
 * graph of a 1,200-neighborhood city (711,601 instances, about 230 MB of JSON). Strings are escaped
 * the way Go's encoding/json does it (KTWIN's graph cache is Go): '"', '\\', \n, \r, \t, other
 * control characters as \u00XX, '<', '>' and '&' as \u003c, \u003e, \u0026, U+2028/U+2029 escaped,
 * invalid UTF-8 as U+FFFD. The common case, a name of plain ASCII, is copied in one run. With these
 * rules an export of KTWIN's own twin-graph.txt is byte-for-byte the original.
 *
 * Reading uses cJSON (the input is small next to the model it feeds: one
 * file per import) and reports structural problems with JSON paths such as
 * twinInstances[12].relationships[0].name. cJSON keeps no positions, so
 * those entries carry the file name only; syntax errors get line:col.
 *
 * Thread: one owner (the model's). cJSON's allocator hooks are set once,
 * process-wide, to kt_malloc/kt_free (the same as dtdl.c sets).
 */
#include "model/graph.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/mem.h"
#include "model_int.h"

/* ---- instance sets -------------------------------------------------------- */

void model_instance_set_init(model_instance_set *s)
{
    memset(s, 0, sizeof *s);
    kt_map_init(&s->_seen);
}

void model_instance_set_fini(model_instance_set *s)
{
    kt_free(s->items);
    kt_map_fini(&s->_seen);
    memset(s, 0, sizeof *s);
}

int model_instance_set_add(model_instance_set *s, model_instance *inst)
{
    /* Instance names are unique within a model, so the name is the key. */
    if (kt_map_put(&s->_seen, inst->name, inst) != NULL) {
        return 0;
    }
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 16 : s->cap * 2;
        s->items = kt_xrealloc(s->items, s->cap * sizeof *s->items);
    }
    s->items[s->n++] = inst;
    return 1;
}

int model_instance_set_has(const model_instance_set *s, const model_instance *inst)
{
    return kt_map_get(&s->_seen, inst->name) == inst;
}

/* ---- subgraph ------------------------------------------------------------- */

void model_subgraph(const model *m,
                    model_instance *const *seeds,
                    size_t n_seeds,
                    unsigned depth,
                    model_instance_set *out)
{
    (void)m; /* the edges live on the instances */
    size_t level_start = out->n;
    for (size_t i = 0; i < n_seeds; i++) {
        if (seeds[i] != NULL) {
            model_instance_set_add(out, seeds[i]);
        }
    }
    /* Breadth-first by levels: out->items[level_start, level_end) is the frontier. */
    for (unsigned d = 0; d < depth; d++) {
        size_t level_end = out->n;
        if (level_start == level_end) {
            break;
        }
        for (size_t i = level_start; i < level_end; i++) {
            const model_instance *inst = out->items[i];
            for (uint32_t r = 0; r < inst->n_rels; r++) {
                if (inst->rels[r].target_inst != NULL) {
                    model_instance_set_add(out, inst->rels[r].target_inst);
                }
            }
            for (uint32_t k = 0; k < inst->n_in; k++) {
                model_instance_set_add(out, inst->in[k].src);
            }
        }
        level_start = level_end;
    }
}

/* ---- writing JSON --------------------------------------------------------- */

#define JW_CHUNK (64u * 1024u)

/* A staging buffer in front of a kt_buf, or of a sink when out is NULL; the first failure
 * sticks. */
typedef struct json_writer {
    kt_buf *out;
    model_json_sink_cb sink;
    void *sink_user;
    kt_status st;
    size_t n;
    char tmp[JW_CHUNK];
} json_writer;

static void jw_emit(json_writer *w, const char *p, size_t len)
{
    if (w->st == KT_OK) {
        w->st = w->out != NULL ? kt_buf_append(w->out, p, len) : w->sink(p, len, w->sink_user);
    }
}

static void jw_flush(json_writer *w)
{
    if (w->n > 0) {
        jw_emit(w, w->tmp, w->n);
    }
    w->n = 0;
}

static void jw_put(json_writer *w, const char *p, size_t len)
{
    if (w->n + len > JW_CHUNK) {
        jw_flush(w);
        if (len > JW_CHUNK) {
            jw_emit(w, p, len);
            return;
        }
    }
    memcpy(w->tmp + w->n, p, len);
    w->n += len;
}

#define JW_LIT(w, s) jw_put((w), (s), sizeof(s) - 1)

/* 1 for bytes that cannot be copied as they are (see DESIGN). */
static inline int json_special(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&';
}

/* Write s as a JSON string, quotes included. NULL is written as "". */
static void jw_str(json_writer *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    JW_LIT(w, "\"");
    if (s == NULL) {
        JW_LIT(w, "\"");
        return;
    }
    /* One pass, no strlen: NUL is "special" too (below 0x20) and ends the string. */
    const unsigned char *p = (const unsigned char *)s;
    for (;;) {
        const unsigned char *run = p;
        while (!json_special(*run)) {
            run++;
        }
        if (run > p) {
            jw_put(w, (const char *)p, (size_t)(run - p));
            p = run;
        }
        unsigned char c = *p;
        if (c == '\0') {
            break;
        }
        if (c < 0x80) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };
            if (c == '"' || c == '\\') {
                esc[1] = (char)c;
                jw_put(w, esc, 2);
            } else if (c == '\n' || c == '\r' || c == '\t') {
                esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
                jw_put(w, esc, 2);
            } else {
                jw_put(w, esc, 6);
            }
            p++;
            continue;
        }
        uint32_t cp = 0;
        size_t len = model__utf8_decode(p, strnlen((const char *)p, 4), &cp);
        if (len == 0) {
            JW_LIT(w, "\\ufffd");
            p++;
        } else if (cp == 0x2028 || cp == 0x2029) {
            jw_put(w, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
            p += len;
        } else {
            jw_put(w, (const char *)p, len);
            p += len;
        }
    }
    JW_LIT(w, "\"");
}

/* One element of twinInstances; relationships omitted when empty (Go omitempty). */
static void jw_instance(json_writer *w, const model_instance *inst)
{
    JW_LIT(w, "{\"name\":");
    jw_str(w, inst->name);
    JW_LIT(w, ",\"interface\":");
    jw_str(w, inst->iface_name);
    if (inst->n_rels > 0) {
        JW_LIT(w, ",\"relationships\":[");
        for (uint32_t r = 0; r < inst->n_rels; r++) {
            const model_rel *rel = &inst->rels[r];
            JW_LIT(w, "{\"name\":");
            jw_str(w, rel->name);
            JW_LIT(w, ",\"interface\":");
            jw_str(w, rel->iface);
            JW_LIT(w, ",\"instance\":");
            jw_str(w, rel->target);
            jw_put(w, r + 1 < inst->n_rels ? "}," : "}", r + 1 < inst->n_rels ? 2 : 1);
        }
        JW_LIT(w, "]");
    }
    JW_LIT(w, "}");
}

/*
 * Write {"twinInstances":[...]} from either an array of instances or, when
 * items is NULL, the model's instances filtered by iface_atom (NULL = all).
 * On failure out is restored to its length at the call.
 */
static kt_status write_graph_to(const model *m,
                                model_instance *const *items,
                                size_t n_items,
                                const char *iface_atom,
                                kt_buf *out,
                                model_json_sink_cb sink,
                                void *sink_user)
{
    json_writer *w = kt_xmalloc(sizeof *w);
    w->out = out;
    w->sink = sink;
    w->sink_user = sink_user;
    w->st = KT_OK;
    w->n = 0;
    size_t start_len = out != NULL ? out->len : 0;
    JW_LIT(w, "{\"twinInstances\":[");
    int first = 1;
    size_t n = items != NULL ? n_items : m->instances.n;
    for (size_t i = 0; i < n && w->st == KT_OK; i++) {
        const model_instance *inst = items != NULL ? items[i] : m->instances.items[i];
        if (items == NULL && iface_atom != NULL && inst->iface_name != iface_atom) {
            continue;
        }
        if (!first) {
            JW_LIT(w, ",");
        }
        first = 0;
        jw_instance(w, inst);
    }
    JW_LIT(w, "]}");
    jw_flush(w);
    kt_status st = w->st;
    kt_free(w);
    if (st != KT_OK && out != NULL && out->data != NULL) {
        out->len = start_len;
        out->data[start_len] = '\0';
    }
    return st;
}

static kt_status write_graph(const model *m,
                             model_instance *const *items,
                             size_t n_items,
                             const char *iface_atom,
                             kt_buf *out)
{
    return write_graph_to(m, items, n_items, iface_atom, out, NULL, NULL);
}

kt_status model_graph_to_json_sink(const model *m, model_json_sink_cb cb, void *user)
{
    return write_graph_to(m, NULL, 0, NULL, NULL, cb, user);
}

kt_status model_graph_to_json(const model *m, const model_instance_set *set, kt_buf *out)
{
    if (set != NULL) {
        return write_graph(m, set->items, set->n, NULL, out);
    }
    return write_graph(m, NULL, 0, NULL, out);
}

kt_status model_graph_iface_to_json(const model *m, const char *iface, kt_buf *out)
{
    const model_iface *f = model_iface_get(m, iface);
    if (f != NULL && m->resolved) {
        return write_graph(m, f->instances, f->n_instances, NULL, out);
    }
    /* No interface loaded (a bare graph import) or not resolved yet: scan. */
    const char *atom = kt_map_get(&m->strings, iface);
    if (atom == NULL) {
        static model_instance *const none[1] = { NULL };
        return write_graph(m, none, 0, NULL, out); /* nobody has that interface */
    }
    return write_graph(m, NULL, 0, atom, out);
}

/* ---- reading JSON --------------------------------------------------------- */

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

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsObject(v)) {
        return "an object";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    return "null";
}

typedef struct graph_reader {
    model *m;
    model_diag *diag;
    model_mark mark; /* file only: cJSON keeps no positions */
    model_rel *rels; /* scratch, reused per instance */
    size_t cap_rels;
} graph_reader;

/*
 * The string member key of obj, or NULL after reporting why not. path is
 * the object's JSON path.
 */
static const char *member_str(graph_reader *r, const cJSON *obj, const char *key, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[128];
    snprintf(p, sizeof p, "%s.%s", path, key);
    if (v == NULL) {
        model_diag_error(r->diag, &r->mark, p, "graph-missing-field", "\"%s\" is required", key);
        return NULL;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        model_diag_error(r->diag, &r->mark, p, "graph-wrong-type",
                         "\"%s\" must be a string, not %s", key, json_type_name(v));
        return NULL;
    }
    if (v->valuestring[0] == '\0') {
        model_diag_error(r->diag, &r->mark, p, "graph-missing-field", "\"%s\" is empty", key);
        return NULL;
    }
    return v->valuestring;
}

/* Warn about members KTWIN's Go structs do not have (they would be dropped). */
static void check_known(
    graph_reader *r, const cJSON *obj, const char *const *known, size_t n_known, const char *path)
{
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        int ok = 0;
        for (size_t i = 0; i < n_known && !ok; i++) {
            ok = c->string != NULL && strcmp(c->string, known[i]) == 0;
        }
        if (!ok) {
            char p[160];
            snprintf(p, sizeof p, "%s%s%s", path, path[0] != '\0' ? "." : "",
                     c->string != NULL ? c->string : "");
            model_diag_warn(r->diag, &r->mark, p, "graph-unknown-field", "unknown field, ignored");
        }
    }
}

static void read_instance(graph_reader *r, const cJSON *item, size_t idx)
{
    static const char *const inst_keys[] = { "name", "interface", "relationships" };
    static const char *const rel_keys[] = { "name", "interface", "instance" };
    char path[64];
    snprintf(path, sizeof path, "twinInstances[%zu]", idx);
    if (!cJSON_IsObject(item)) {
        model_diag_error(r->diag, &r->mark, path, "graph-wrong-type",
                         "a twin instance must be an object, not %s", json_type_name(item));
        return;
    }
    check_known(r, item, inst_keys, 3, path);
    const char *name = member_str(r, item, "name", path);
    const char *iface = member_str(r, item, "interface", path);
    const cJSON *rels = cJSON_GetObjectItemCaseSensitive(item, "relationships");
    size_t n_rels = 0;
    if (rels != NULL && !cJSON_IsNull(rels)) {
        if (!cJSON_IsArray(rels)) {
            char p[96];
            snprintf(p, sizeof p, "%s.relationships", path);
            model_diag_error(r->diag, &r->mark, p, "graph-wrong-type",
                             "\"relationships\" must be an array, not %s", json_type_name(rels));
        } else {
            size_t j = 0;
            for (const cJSON *rel = rels->child; rel != NULL; rel = rel->next, j++) {
                char rp[96];
                snprintf(rp, sizeof rp, "%s.relationships[%zu]", path, j);
                if (!cJSON_IsObject(rel)) {
                    model_diag_error(r->diag, &r->mark, rp, "graph-wrong-type",
                                     "a relationship must be an object, not %s",
                                     json_type_name(rel));
                    continue;
                }
                check_known(r, rel, rel_keys, 3, rp);
                const char *rn = member_str(r, rel, "name", rp);
                const char *ri = member_str(r, rel, "interface", rp);
                const char *rt = member_str(r, rel, "instance", rp);
                if (rn == NULL || ri == NULL || rt == NULL) {
                    continue;
                }
                if (n_rels == r->cap_rels) {
                    r->cap_rels = r->cap_rels == 0 ? 16 : r->cap_rels * 2;
                    r->rels = kt_xrealloc(r->rels, r->cap_rels * sizeof *r->rels);
                }
                model_rel *mr = &r->rels[n_rels++];
                memset(mr, 0, sizeof *mr);
                mr->name = rn;
                mr->iface = ri;
                mr->target = rt;
            }
        }
    }
    if (name == NULL || iface == NULL) {
        return;
    }
    /* A duplicate name returns NULL here; model_resolve reports it with both places. */
    (void)model_add_instance(r->m, name, iface, r->rels, n_rels, &r->mark);
}

kt_status model_graph_from_json(
    model *m, const char *file, const char *buf, size_t len, model_diag *diag, kt_err *err)
{
    (void)err; /* content problems go to diag; memory exhaustion aborts (kt_x*) */
    pthread_once(&hooks_once, hooks_init);
    graph_reader r = { m, diag, { file != NULL ? file : "-", 0, 0 }, NULL, 0 };
    const char *end = NULL;
    cJSON *root = buf != NULL ? cJSON_ParseWithLengthOpts(buf, len, &end, 0) : NULL;
    if (root == NULL) {
        size_t off =
            end != NULL && buf != NULL && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        model_mark mk = r.mark;
        if (buf != NULL) {
            offset_line_col(buf, off, &mk.line, &mk.col);
        }
        model_diag_error(diag, &mk, "", "json-syntax", "not valid JSON");
        return KT_OK;
    }
    if (end != NULL) {
        size_t off = (size_t)(end - buf);
        while (off < len &&
               (buf[off] == ' ' || buf[off] == '\t' || buf[off] == '\n' || buf[off] == '\r')) {
            off++;
        }
        if (off < len) {
            model_mark mk = r.mark;
            offset_line_col(buf, off, &mk.line, &mk.col);
            model_diag_error(diag, &mk, "", "json-syntax", "text after the JSON value");
            cJSON_Delete(root);
            return KT_OK;
        }
    }
    static const char *const top_keys[] = { "twinInstances" };
    if (!cJSON_IsObject(root)) {
        model_diag_error(diag, &r.mark, "", "graph-wrong-type",
                         "a twin graph must be an object {\"twinInstances\": [...]}, not %s",
                         json_type_name(root));
    } else {
        check_known(&r, root, top_keys, 1, "");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "twinInstances");
        /* {} is KTWIN's answer for an empty graph (omitempty), so a missing list is empty. */
        if (list != NULL && !cJSON_IsNull(list) && !cJSON_IsArray(list)) {
            model_diag_error(diag, &r.mark, "twinInstances", "graph-wrong-type",
                             "\"twinInstances\" must be an array, not %s", json_type_name(list));
        } else if (cJSON_IsArray(list)) {
            size_t i = 0;
            for (const cJSON *item = list->child; item != NULL; item = item->next, i++) {
                read_instance(&r, item, i);
            }
        }
    }
    kt_free(r.rels);
    cJSON_Delete(root);
    return KT_OK;
}
