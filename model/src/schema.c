/*
 * schema.c — openAPIV3Schema validation of document trees. See schema.h.
 */
#include "schema.h"

#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 512

typedef struct vctx {
    model_diag *diag;
    char path[PATH_MAX_LEN];
    size_t len;
} vctx;

/* Hot path (every field of every document): no snprintf. */
static size_t path_push_key(vctx *c, const char *key)
{
    size_t old = c->len;
    size_t klen = strlen(key);
    size_t need = (c->len > 0 ? 1 : 0) + klen;
    if (c->len + need >= sizeof c->path) {
        return old; /* too deep to name: keep the prefix */
    }
    if (c->len > 0) {
        c->path[c->len++] = '.';
    }
    memcpy(c->path + c->len, key, klen);
    c->len += klen;
    c->path[c->len] = '\0';
    return old;
}

static size_t path_push_index(vctx *c, size_t i)
{
    size_t old = c->len;
    int n = snprintf(c->path + c->len, sizeof c->path - c->len, "[%zu]", i);
    if (n > 0) {
        c->len += (size_t)n;
        if (c->len >= sizeof c->path) {
            c->len = sizeof c->path - 1;
        }
    }
    return old;
}

static void path_pop(vctx *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

static int schema_flag(const model_node *schema, const char *key)
{
    int v = 0;
    const model_node *n = model_node_get(schema, key);
    return n != NULL && model_node_bool(n, &v) == KT_OK && v;
}

/* Hot path: dispatch on the first letter before comparing the whole word. */
static int type_matches(const char *type, const model_node *v)
{
    switch (type[0]) {
    case 'o':
        if (strcmp(type, "object") == 0) {
            return v->kind == MODEL_NODE_MAP;
        }
        break;
    case 'a':
        if (strcmp(type, "array") == 0) {
            return v->kind == MODEL_NODE_SEQ;
        }
        break;
    default:
        break;
    }
    if (v->kind != MODEL_NODE_SCALAR) {
        return 0;
    }
    if (v->quoted) {
        return type[0] == 's' && strcmp(type, "string") == 0;
    }
    model_scalar_type t = model_node_scalar_type(v);
    switch (type[0]) {
    case 's':
        /* A plain scalar that reads as a string; YAML numbers are not strings. */
        return strcmp(type, "string") != 0 || t == MODEL_SCALAR_STRING;
    case 'i':
        if (strcmp(type, "integer") == 0) {
            double d;
            if (t == MODEL_SCALAR_INT) {
                return 1;
            }
            /* JSON writers emit 3.0 for integers; accept integral floats. */
            return t == MODEL_SCALAR_FLOAT && model_node_double(v, &d) == KT_OK &&
                   d == (double)(long long)d;
        }
        break;
    case 'n':
        if (strcmp(type, "number") == 0) {
            return t == MODEL_SCALAR_INT || t == MODEL_SCALAR_FLOAT;
        }
        break;
    case 'b':
        if (strcmp(type, "boolean") == 0) {
            return t == MODEL_SCALAR_BOOL;
        }
        break;
    default:
        break;
    }
    return 1; /* unknown type names are not ours to judge */
}

static void validate(vctx *c, const model_node *schema, const model_node *v, const char *skip);

static int any_of_matches(const model_node *any_of, const model_node *v)
{
    for (size_t i = 0; i < any_of->n; i++) {
        const char *t = model_node_get_str(any_of->items[i], "type");
        if (t == NULL || type_matches(t, v)) {
            return 1;
        }
    }
    return 0;
}

static void check_enum(vctx *c, const model_node *en, const model_node *v)
{
    if (v->kind != MODEL_NODE_SCALAR) {
        return;
    }
    for (size_t i = 0; i < en->n; i++) {
        if (en->items[i]->kind == MODEL_NODE_SCALAR && strcmp(en->items[i]->str, v->str) == 0) {
            return;
        }
    }
    char allowed[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < en->n && used < sizeof allowed - 1; i++) {
        int n = snprintf(allowed + used, sizeof allowed - used, "%s%s", i > 0 ? ", " : "",
                         en->items[i]->str);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    model_diag_error(c->diag, &v->mark, c->path, "invalid-value", "\"%s\" is not one of: %s",
                     v->str, allowed);
}

static void check_numeric_bounds(vctx *c, const model_node *schema, const model_node *v)
{
    double d;
    if (model_node_double(v, &d) != KT_OK) {
        return;
    }
    const char *fmt = model_node_get_str(schema, "format");
    if (fmt != NULL && strcmp(fmt, "int32") == 0 && (d < -2147483648.0 || d > 2147483647.0)) {
        model_diag_error(c->diag, &v->mark, c->path, "invalid-value", "%s is out of int32 range",
                         v->str);
    }
    double lim;
    const model_node *mn = model_node_get(schema, "minimum");
    if (mn != NULL && model_node_double(mn, &lim) == KT_OK && d < lim) {
        model_diag_error(c->diag, &v->mark, c->path, "invalid-value", "%s is below the minimum %s",
                         v->str, mn->str);
    }
    const model_node *mx = model_node_get(schema, "maximum");
    if (mx != NULL && model_node_double(mx, &lim) == KT_OK && d > lim) {
        model_diag_error(c->diag, &v->mark, c->path, "invalid-value", "%s is above the maximum %s",
                         v->str, mx->str);
    }
}

static void validate_object(vctx *c, const model_node *schema, const model_node *v, const char *skip)
{
    const model_node *props = model_node_get(schema, "properties");
    const model_node *addl = model_node_get(schema, "additionalProperties");
    int preserve = schema_flag(schema, "x-kubernetes-preserve-unknown-fields");
    int addl_any = 0;
    if (addl != NULL && addl->kind == MODEL_NODE_SCALAR) {
        model_node_bool(addl, &addl_any);
        addl = NULL;
    }
    for (size_t i = 0; i < v->n; i++) {
        const model_node *k = v->items[2 * i];
        const model_node *val = v->items[2 * i + 1];
        if (k->kind != MODEL_NODE_SCALAR) {
            model_diag_error(c->diag, &k->mark, c->path, "wrong-type", "map keys must be strings");
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const model_node *k2 = v->items[2 * j];
            if (k2->kind == MODEL_NODE_SCALAR && k2->len == k->len &&
                memcmp(k2->str, k->str, k->len) == 0) {
                size_t old = path_push_key(c, k->str);
                model_diag_error(c->diag, &k->mark, c->path, "duplicate-field",
                                 "field given twice (first at line %u)", k2->mark.line);
                path_pop(c, old);
                break;
            }
        }
        if (skip != NULL && strcmp(k->str, skip) == 0) {
            continue;
        }
        const model_node *ps = model_node_get(props, k->str);
        size_t old = path_push_key(c, k->str);
        if (ps != NULL) {
            validate(c, ps, val, NULL);
        } else if (addl != NULL) {
            validate(c, addl, val, NULL);
        } else if (!preserve && !addl_any) {
            model_diag_error(c->diag, &k->mark, c->path, "unknown-field",
                             "unknown field \"%s\"", k->str);
        }
        path_pop(c, old);
    }
    const model_node *req = model_node_get(schema, "required");
    if (req != NULL && req->kind == MODEL_NODE_SEQ) {
        for (size_t i = 0; i < req->n; i++) {
            const char *name = req->items[i]->str;
            if (model_node_get(v, name) == NULL) {
                size_t old = path_push_key(c, name);
                model_diag_error(c->diag, &v->mark, c->path, "missing-field",
                                 "required field \"%s\" is missing", name);
                path_pop(c, old);
            }
        }
    }
}

static void validate(vctx *c, const model_node *schema, const model_node *v, const char *skip)
{
    if (v->kind == MODEL_NODE_SCALAR && model_node_scalar_type(v) == MODEL_SCALAR_NULL) {
        /* null means "not set" for optional fields in Kubernetes. */
        return;
    }
    const char *type = model_node_get_str(schema, "type");
    const model_node *any_of = model_node_get(schema, "anyOf");
    if (schema_flag(schema, "x-kubernetes-int-or-string")) {
        if (v->kind != MODEL_NODE_SCALAR || !(type_matches("integer", v) || type_matches("string", v))) {
            model_diag_error(c->diag, &v->mark, c->path, "wrong-type",
                             "expected an integer or a string, got %s", model_node_type_name(v));
        }
        return;
    }
    if (any_of != NULL && any_of->kind == MODEL_NODE_SEQ && type == NULL) {
        if (!any_of_matches(any_of, v)) {
            model_diag_error(c->diag, &v->mark, c->path, "wrong-type", "unexpected %s",
                             model_node_type_name(v));
        }
        return;
    }
    if (type != NULL && !type_matches(type, v)) {
        /* A number where a string is expected is the classic YAML mistake (version: 1.10). */
        model_diag_error(c->diag, &v->mark, c->path, "wrong-type", "expected %s, got %s%s%s%s",
                         strcmp(type, "object") == 0 ? "a map"
                         : strcmp(type, "array") == 0 ? "a list"
                                                      : type,
                         model_node_type_name(v), v->kind == MODEL_NODE_SCALAR ? " \"" : "",
                         v->kind == MODEL_NODE_SCALAR ? v->str : "",
                         v->kind == MODEL_NODE_SCALAR ? "\"" : "");
        return;
    }
    const model_node *en = model_node_get(schema, "enum");
    if (en != NULL && en->kind == MODEL_NODE_SEQ) {
        check_enum(c, en, v);
    }
    switch (v->kind) {
    case MODEL_NODE_MAP:
        if (type != NULL) {
            validate_object(c, schema, v, skip);
        }
        break;
    case MODEL_NODE_SEQ: {
        const model_node *items = model_node_get(schema, "items");
        long long lim;
        const model_node *mx = model_node_get(schema, "maxItems");
        if (mx != NULL && model_node_int(mx, &lim) == KT_OK && (long long)v->n > lim) {
            model_diag_error(c->diag, &v->mark, c->path, "invalid-value",
                             "%zu items, at most %lld allowed", v->n, lim);
        }
        const model_node *mn = model_node_get(schema, "minItems");
        if (mn != NULL && model_node_int(mn, &lim) == KT_OK && (long long)v->n < lim) {
            model_diag_error(c->diag, &v->mark, c->path, "invalid-value",
                             "%zu items, at least %lld required", v->n, lim);
        }
        if (items != NULL) {
            for (size_t i = 0; i < v->n; i++) {
                size_t old = path_push_index(c, i);
                validate(c, items, v->items[i], NULL);
                path_pop(c, old);
            }
        }
        break;
    }
    case MODEL_NODE_SCALAR:
        if (type != NULL && (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)) {
            check_numeric_bounds(c, schema, v);
        }
        if (type != NULL && strcmp(type, "string") == 0) {
            long long lim;
            const model_node *ml = model_node_get(schema, "maxLength");
            if (ml != NULL && model_node_int(ml, &lim) == KT_OK && (long long)v->len > lim) {
                model_diag_error(c->diag, &v->mark, c->path, "invalid-value",
                                 "%zu characters, at most %lld allowed", v->len, lim);
            }
            const model_node *nl = model_node_get(schema, "minLength");
            if (nl != NULL && model_node_int(nl, &lim) == KT_OK && (long long)v->len < lim) {
                model_diag_error(c->diag, &v->mark, c->path, "invalid-value",
                                 "%zu characters, at least %lld required", v->len, lim);
            }
        }
        break;
    }
}

void model_schema__validate(const model_node *schema,
                            const model_node *value,
                            const char *path,
                            const char *skip_root_key,
                            model_diag *diag)
{
    vctx c;
    c.diag = diag;
    c.len = 0;
    c.path[0] = '\0';
    if (path != NULL && path[0] != '\0') {
        c.len = (size_t)snprintf(c.path, sizeof c.path, "%s", path);
        if (c.len >= sizeof c.path) {
            c.len = sizeof c.path - 1;
        }
    }
    validate(&c, schema, value, skip_root_key);
}
