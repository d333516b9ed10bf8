/*
 * node.c — document tree queries and scalar typing (YAML 1.2 core schema,
 * plus the YAML 1.1 booleans Kubernetes users still write: yes/no/on/off
 * are NOT booleans here, as in Kubernetes' own YAML 1.2-ish decoder).
 */
#include "model/node.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int str_eq(const model_node *n, const char *s)
{
    return strcmp(n->str, s) == 0;
}

static int is_int_text(const char *s)
{
    if (*s == '-' || *s == '+') {
        s++;
    }
    if (*s == '\0') {
        return 0;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        s += 2;
        if (*s == '\0') {
            return 0;
        }
        for (; *s != '\0'; s++) {
            if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) {
                return 0;
            }
        }
        return 1;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

static int is_float_text(const char *s)
{
    if (strcmp(s, ".inf") == 0 || strcmp(s, "-.inf") == 0 || strcmp(s, "+.inf") == 0 ||
        strcmp(s, ".nan") == 0 || strcmp(s, ".Inf") == 0 || strcmp(s, ".NaN") == 0) {
        return 1;
    }
    const char *p = s;
    if (*p == '-' || *p == '+') {
        p++;
    }
    int digits = 0, dot = 0, exp = 0;
    for (; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (*p == '.' && !dot && !exp) {
            dot = 1;
        } else if ((*p == 'e' || *p == 'E') && digits && !exp) {
            exp = 1;
            if (p[1] == '-' || p[1] == '+') {
                p++;
            }
            if (p[1] == '\0') {
                return 0;
            }
        } else {
            return 0;
        }
    }
    return digits > 0 && (dot || exp);
}

model_scalar_type model_node_scalar_type(const model_node *n)
{
    if (n->kind != MODEL_NODE_SCALAR) {
        return MODEL_SCALAR_STRING;
    }
    if (n->quoted) {
        return MODEL_SCALAR_STRING;
    }
    if (n->len == 0 || str_eq(n, "~") || str_eq(n, "null") || str_eq(n, "Null") ||
        str_eq(n, "NULL")) {
        return MODEL_SCALAR_NULL;
    }
    if (str_eq(n, "true") || str_eq(n, "false") || str_eq(n, "True") || str_eq(n, "False") ||
        str_eq(n, "TRUE") || str_eq(n, "FALSE")) {
        return MODEL_SCALAR_BOOL;
    }
    if (is_int_text(n->str)) {
        return MODEL_SCALAR_INT;
    }
    if (is_float_text(n->str)) {
        return MODEL_SCALAR_FLOAT;
    }
    return MODEL_SCALAR_STRING;
}

const model_node *model_node_get(const model_node *map, const char *key)
{
    if (map == NULL || map->kind != MODEL_NODE_MAP) {
        return NULL;
    }
    size_t len = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const model_node *k = map->items[2 * i];
        if (k->len == len && k->kind == MODEL_NODE_SCALAR && memcmp(k->str, key, len) == 0) {
            return map->items[2 * i + 1];
        }
    }
    return NULL;
}

const char *model_node_get_str(const model_node *map, const char *key)
{
    const model_node *v = model_node_get(map, key);
    return v != NULL && v->kind == MODEL_NODE_SCALAR ? v->str : NULL;
}

kt_status model_node_bool(const model_node *n, int *out)
{
    if (n == NULL || model_node_scalar_type(n) != MODEL_SCALAR_BOOL) {
        return KT_EINVAL;
    }
    *out = n->str[0] == 't' || n->str[0] == 'T';
    return KT_OK;
}

kt_status model_node_int(const model_node *n, long long *out)
{
    if (n == NULL || model_node_scalar_type(n) != MODEL_SCALAR_INT) {
        return KT_EINVAL;
    }
    const char *s = n->str;
    int neg = 0;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    int base = 10;
    if (s[0] == '0' && s[1] == 'x') {
        base = 16;
        s += 2;
    } else if (s[0] == '0' && s[1] == 'o') {
        base = 8;
        s += 2;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, base);
    if (errno != 0 || end == s || *end != '\0' ||
        v > (neg ? (unsigned long long)LLONG_MAX + 1ull : (unsigned long long)LLONG_MAX)) {
        return KT_EINVAL;
    }
    *out = neg ? (long long)(0ull - v) : (long long)v;
    return KT_OK;
}

kt_status model_node_double(const model_node *n, double *out)
{
    if (n == NULL) {
        return KT_EINVAL;
    }
    model_scalar_type t = model_node_scalar_type(n);
    if (t == MODEL_SCALAR_INT) {
        long long v;
        if (model_node_int(n, &v) != KT_OK) {
            return KT_EINVAL;
        }
        *out = (double)v;
        return KT_OK;
    }
    if (t != MODEL_SCALAR_FLOAT) {
        return KT_EINVAL;
    }
    const char *s = n->str;
    if (strstr(s, "inf") != NULL || strstr(s, "Inf") != NULL) {
        *out = s[0] == '-' ? -INFINITY : INFINITY;
        return KT_OK;
    }
    if (strstr(s, "nan") != NULL || strstr(s, "NaN") != NULL) {
        *out = NAN;
        return KT_OK;
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0') {
        return KT_EINVAL;
    }
    *out = v;
    return KT_OK;
}

const char *model_node_type_name(const model_node *n)
{
    if (n == NULL) {
        return "nothing";
    }
    switch (n->kind) {
    case MODEL_NODE_MAP:
        return "map";
    case MODEL_NODE_SEQ:
        return "list";
    case MODEL_NODE_SCALAR:
        break;
    }
    switch (model_node_scalar_type(n)) {
    case MODEL_SCALAR_NULL:
        return "null";
    case MODEL_SCALAR_BOOL:
        return "boolean";
    case MODEL_SCALAR_INT:
        return "integer";
    case MODEL_SCALAR_FLOAT:
        return "number";
    case MODEL_SCALAR_STRING:
        break;
    }
    return "string";
}

/* ---- builder (node_int.h) ------------------------------------------------ */

#include "kt/mem.h"
#include "node_int.h"

#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_NODES 1000000

void model_builder__init(model_builder *b, kt_arena *arena, const model_parse_limits *limits)
{
    memset(b, 0, sizeof *b);
    b->arena = arena;
    b->limits.max_depth = DEFAULT_MAX_DEPTH;
    b->limits.max_nodes = DEFAULT_MAX_NODES;
    if (limits != NULL) {
        if (limits->max_depth != 0) {
            b->limits.max_depth = limits->max_depth;
        }
        if (limits->max_nodes != 0) {
            b->limits.max_nodes = limits->max_nodes;
        }
    }
}

void model_builder__fini(model_builder *b)
{
    kt_free(b->frames);
    kt_free(b->children);
    memset(b, 0, sizeof *b);
}

void model_builder__reset(model_builder *b)
{
    b->n_frames = 0;
    b->n_children = 0;
    b->n_nodes = 0;
    b->root = NULL;
}

kt_status model_builder__attach(model_builder *b, model_node *n)
{
    if (b->n_frames == 0) {
        b->root = n;
        return KT_OK;
    }
    if (b->n_children == b->cap_children) {
        b->cap_children = b->cap_children == 0 ? 256 : b->cap_children * 2;
        b->children = kt_xrealloc(b->children, b->cap_children * sizeof *b->children);
    }
    b->children[b->n_children++] = n;
    return KT_OK;
}

static model_node *builder_node(model_builder *b, model_node_kind kind, const model_mark *mark)
{
    if (++b->n_nodes > b->limits.max_nodes) {
        return NULL;
    }
    model_node *n = kt_arena_alloc(b->arena, sizeof *n);
    n->kind = kind;
    n->quoted = 0;
    n->mark = *mark;
    n->str = "";
    n->len = 0;
    n->n = 0;
    n->items = NULL;
    return n;
}

kt_status model_builder__scalar(model_builder *b,
                                const model_mark *mark,
                                const char *s,
                                size_t len,
                                int quoted,
                                model_node **out)
{
    model_node *n = builder_node(b, MODEL_NODE_SCALAR, mark);
    if (n == NULL) {
        return KT_ETOOBIG;
    }
    n->str = kt_arena_strndup(b->arena, s, len);
    n->len = len;
    n->quoted = quoted ? 1 : 0;
    if (out != NULL) {
        *out = n;
    }
    return model_builder__attach(b, n);
}

kt_status model_builder__open(model_builder *b, model_node_kind kind, const model_mark *mark, model_node **out)
{
    if (b->n_frames >= b->limits.max_depth) {
        return KT_ETOOBIG;
    }
    model_node *n = builder_node(b, kind, mark);
    if (n == NULL) {
        return KT_ETOOBIG;
    }
    model_builder__attach(b, n);
    if (b->n_frames == b->cap_frames) {
        b->cap_frames = b->cap_frames == 0 ? 16 : b->cap_frames * 2;
        b->frames = kt_xrealloc(b->frames, b->cap_frames * sizeof *b->frames);
    }
    b->frames[b->n_frames].node = n;
    b->frames[b->n_frames].first_child = b->n_children;
    b->n_frames++;
    if (out != NULL) {
        *out = n;
    }
    return KT_OK;
}

void model_builder__close(model_builder *b)
{
    KT_ASSERT(b->n_frames > 0);
    model_builder_frame *f = &b->frames[--b->n_frames];
    size_t count = b->n_children - f->first_child;
    model_node *n = f->node;
    if (count > 0) {
        n->items = kt_arena_alloc(b->arena, count * sizeof *n->items);
        memcpy(n->items, b->children + f->first_child, count * sizeof *n->items);
    }
    n->n = n->kind == MODEL_NODE_MAP ? count / 2 : count;
    b->n_children = f->first_child;
}

int model_builder__depth(const model_builder *b)
{
    return (int)b->n_frames;
}

/* ---- clone and JSON ------------------------------------------------------ */

#include "kt/buf.h"

model_node *model_node_clone(kt_arena *arena, const model_node *n)
{
    model_node *c = kt_arena_alloc(arena, sizeof *c);
    *c = *n;
    if (n->kind == MODEL_NODE_SCALAR) {
        c->str = kt_arena_strndup(arena, n->str, n->len);
        return c;
    }
    size_t count = n->kind == MODEL_NODE_MAP ? 2 * n->n : n->n;
    if (count > 0) {
        c->items = kt_arena_alloc(arena, count * sizeof *c->items);
        for (size_t i = 0; i < count; i++) {
            c->items[i] = model_node_clone(arena, n->items[i]);
        }
    }
    return c;
}

static kt_status json_string(const char *s, size_t len, kt_buf *out)
{
    kt_status st = kt_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < len && st == KT_OK; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            run++;
            continue;
        }
        st = kt_buf_append(out, s + i - run, run);
        run = 0;
        if (st != KT_OK) {
            break;
        }
        if (ch == '"' || ch == '\\') {
            char esc[2] = { '\\', (char)ch };
            st = kt_buf_append(out, esc, 2);
        } else if (ch == '\n') {
            st = kt_buf_puts(out, "\\n");
        } else if (ch == '\t') {
            st = kt_buf_puts(out, "\\t");
        } else if (ch == '\r') {
            st = kt_buf_puts(out, "\\r");
        } else {
            st = kt_buf_printf(out, "\\u%04x", ch);
        }
    }
    if (st == KT_OK) {
        st = kt_buf_append(out, s + len - run, run);
    }
    return st == KT_OK ? kt_buf_putc(out, '"') : st;
}

kt_status model_node_to_json(const model_node *n, kt_buf *out)
{
    kt_status st = KT_OK;
    switch (n->kind) {
    case MODEL_NODE_SCALAR:
        switch (model_node_scalar_type(n)) {
        case MODEL_SCALAR_NULL:
            return kt_buf_puts(out, "null");
        case MODEL_SCALAR_BOOL: {
            int b = 0;
            model_node_bool(n, &b);
            return kt_buf_puts(out, b ? "true" : "false");
        }
        case MODEL_SCALAR_INT:
        case MODEL_SCALAR_FLOAT: {
            double d;
            if (n->str[0] != '0' && n->str[0] != '.' && strchr(n->str, 'x') == NULL &&
                strchr(n->str, 'o') == NULL && strchr(n->str, 'n') == NULL &&
                strchr(n->str, 'N') == NULL && strchr(n->str, '+') == NULL) {
                return kt_buf_append(out, n->str, n->len);
            }
            if (model_node_double(n, &d) == KT_OK && isfinite(d)) {
                return kt_buf_printf(out, "%.17g", d);
            }
            return json_string(n->str, n->len, out);
        }
        case MODEL_SCALAR_STRING:
            return json_string(n->str, n->len, out);
        }
        return KT_OK;
    case MODEL_NODE_SEQ:
        st = kt_buf_putc(out, '[');
        for (size_t i = 0; i < n->n && st == KT_OK; i++) {
            if (i > 0) {
                st = kt_buf_putc(out, ',');
            }
            if (st == KT_OK) {
                st = model_node_to_json(n->items[i], out);
            }
        }
        return st == KT_OK ? kt_buf_putc(out, ']') : st;
    case MODEL_NODE_MAP:
        st = kt_buf_putc(out, '{');
        for (size_t i = 0; i < n->n && st == KT_OK; i++) {
            if (i > 0) {
                st = kt_buf_putc(out, ',');
            }
            const model_node *k = n->items[2 * i];
            if (st == KT_OK) {
                st = json_string(k->str, k->len, out);
            }
            if (st == KT_OK) {
                st = kt_buf_putc(out, ':');
            }
            if (st == KT_OK) {
                st = model_node_to_json(n->items[2 * i + 1], out);
            }
        }
        return st == KT_OK ? kt_buf_putc(out, '}') : st;
    }
    return st;
}
