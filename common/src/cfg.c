/*
 * cfg.c — declarative YAML configuration. See kt/cfg.h.
 *
 * DESIGN: the YAML file is loaded as a libyaml document (yaml_parser_load),
 * then walked: a mapping key is appended to the current dotted path; the
 * path either names an entry (the value node is parsed by its type), or is a
 * proper prefix of some entry key (the value must be a mapping and the walk
 * descends), or is unknown (an error). Dotted keys in the file ("a.b: 1")
 * work the same way as nesting. Every problem is collected (not only the
 * first) into the caller's kt_buf as "where: key: message" lines. All value
 * parsing (YAML scalars, env, --set, table defaults) goes through one
 * function, parse_text(), so every source accepts exactly the same syntax.
 *
 * Invariants: secret values never reach an error message; a walk visits at
 * most MAX_NODES nodes and MAX_DEPTH levels, so alias bombs and recursive
 * anchors cannot blow up time or the stack; the input is capped at 16 MiB.
 *
 * Thread: any; no global state. Ownership: strings written into a config
 * struct are kt_malloc'd and belong to the struct (kt_cfg_free_strings).
 */
#include "kt/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kt/mem.h"

#define MAX_FILE_BYTES (16u << 20)
#define MAX_DEPTH      64
#define MAX_NODES      100000
#define MAX_PATH       512

/* ------------------------------------------------------------ problems */

typedef struct problems {
    kt_buf *errs;
    size_t n;
    char first[256];
} problems;

static void problem(problems *p, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(problems *p, const char *where, const char *key, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[900];
    if (key != NULL && key[0] != '\0') {
        (void)snprintf(line, sizeof line, "%s: %s: %s", where, key, msg);
    } else {
        (void)snprintf(line, sizeof line, "%s: %s", where, msg);
    }
    if (p->n == 0) {
        kt_strlcpy(p->first, line, sizeof p->first);
    }
    p->n++;
    if (p->errs != NULL) {
        /* A full buffer keeps what fit; the count in err still tells the total. */
        size_t mark = p->errs->len;
        if (kt_buf_printf(p->errs, "%s\n", line) != KT_OK) {
            p->errs->len = mark;
            if (p->errs->data != NULL) {
                p->errs->data[mark] = '\0';
            }
        }
    }
}

static kt_status problems_finish(const problems *p, kt_err *err)
{
    if (p->n == 0) {
        return KT_OK;
    }
    if (p->n == 1) {
        return kt_err_set(err, KT_EINVAL, "%s", p->first);
    }
    return kt_err_set(err, KT_EINVAL, "%s (and %zu more)", p->first, p->n - 1);
}

/* ------------------------------------------------------------ table */

const char *kt_cfg_type_str(kt_cfg_type type)
{
    switch (type) {
    case KT_CFG_INT:
        return "int";
    case KT_CFG_BOOL:
        return "bool";
    case KT_CFG_STRING:
        return "string";
    case KT_CFG_DURATION_MS:
        return "duration";
    case KT_CFG_SIZE_BYTES:
        return "size";
    case KT_CFG_STRING_LIST:
        return "list";
    }
    return "?";
}

static void *field(void *cfg, const kt_cfg_entry *e)
{
    return (char *)cfg + e->offset;
}

static const void *cfield(const void *cfg, const kt_cfg_entry *e)
{
    return (const char *)cfg + e->offset;
}

static const kt_cfg_entry *find_entry(const kt_cfg_entry *table, const char *key, size_t len)
{
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        if (strlen(e->key) == len && memcmp(e->key, key, len) == 0) {
            return e;
        }
    }
    return NULL;
}

/* true when some entry key starts with path + "." */
static bool is_prefix(const kt_cfg_entry *table, const char *path, size_t len)
{
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        if (strlen(e->key) > len && memcmp(e->key, path, len) == 0 && e->key[len] == '.') {
            return true;
        }
    }
    return false;
}

static bool key_valid(const char *key)
{
    bool seg_start = true;
    for (const char *p = key; *p != '\0'; p++) {
        if (*p == '.') {
            if (seg_start) {
                return false;
            }
            seg_start = true;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
        seg_start = false;
    }
    return !seg_start;
}

/* ------------------------------------------------------------ value parsing */

static bool ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return false;
        }
    }
    return *a == '\0' && *b == '\0';
}

/*
 * Parse an optionally signed decimal or 0x-hex integer prefix of s into
 * *out; *end gets the first unparsed char. false on no digits or overflow.
 */
static bool parse_i64(const char *s, int64_t *out, const char **end)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    unsigned base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    uint64_t v = 0;
    const char *digits = p;
    for (;; p++) {
        unsigned d;
        char c = *p;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            break;
        }
        if (v > (UINT64_MAX - d) / base) {
            return false;
        }
        v = v * base + d;
    }
    if (p == digits) {
        return false;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1u) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    *end = p;
    return true;
}

typedef struct unit {
    const char *name;
    int64_t mul;
} unit;

static const unit duration_units[] = { { "ms", 1 },      { "s", 1000 },     { "m", 60000 },
                                       { "h", 3600000 }, { "d", 86400000 }, { NULL, 0 } };

static const unit size_units[] = { { "B", 1 },
                                   { "KiB", 1024 },
                                   { "MiB", 1024 * 1024 },
                                   { "GiB", 1024LL * 1024 * 1024 },
                                   { "TiB", 1024LL * 1024 * 1024 * 1024 },
                                   { "KB", 1000 },
                                   { "MB", 1000 * 1000 },
                                   { "GB", 1000LL * 1000 * 1000 },
                                   { "TB", 1000LL * 1000 * 1000 * 1000 },
                                   { NULL, 0 } };

/* Number with an optional unit suffix (case-insensitive, spaces allowed between). */
static bool parse_with_unit(const char *s, const unit *units, int64_t *out, const char **why)
{
    const char *end = NULL;
    int64_t v = 0;
    if (!parse_i64(s, &v, &end)) {
        *why = "not a number";
        return false;
    }
    while (*end == ' ') {
        end++;
    }
    if (*end == '\0') {
        *out = v;
        return true;
    }
    for (const unit *u = units; u->name != NULL; u++) {
        if (ieq(end, u->name)) {
            if ((v > 0 && v > INT64_MAX / u->mul) || (v < 0 && v < INT64_MIN / u->mul)) {
                *why = "too large";
                return false;
            }
            *out = v * u->mul;
            return true;
        }
    }
    *why = "unknown unit";
    return false;
}

static void fmt_with_unit(char *out, size_t cap, int64_t v, const unit *units, size_t n_units)
{
    /* Largest unit that divides v exactly (units ordered small to large, binary first). */
    const unit *best = &units[0];
    for (size_t i = 0; i < n_units; i++) {
        if (units[i].mul > best->mul && v % units[i].mul == 0) {
            best = &units[i];
        }
    }
    if (v == 0) {
        best = &units[0];
    }
    (void)snprintf(out, cap, "%" PRId64 "%s", v / best->mul, best->name);
}

static void fmt_duration(char *out, size_t cap, int64_t ms)
{
    fmt_with_unit(out, cap, ms, duration_units, 5);
}

static void fmt_size(char *out, size_t cap, int64_t bytes)
{
    fmt_with_unit(out, cap, bytes, size_units, 5); /* binary units only */
}

static bool is_null_text(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static void strlist_free(kt_cfg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        kt_free(l->items[i]);
    }
    kt_free(l->items);
    l->n = 0;
    l->items = NULL;
}

static void strlist_push(kt_cfg_strlist *l, const char *s, size_t len)
{
    l->items = kt_xrealloc(l->items, (l->n + 2) * sizeof *l->items);
    l->items[l->n++] = kt_xstrndup(s, len);
    l->items[l->n] = NULL;
}

/* Comma-separated text into a list (items trimmed, empty items skipped). */
static void strlist_from_csv(kt_cfg_strlist *l, const char *s)
{
    const char *p = s;
    while (*p != '\0') {
        const char *q = strchr(p, ',');
        size_t len = q != NULL ? (size_t)(q - p) : strlen(p);
        const char *a = p;
        const char *b = p + len;
        while (a < b && isspace((unsigned char)*a)) {
            a++;
        }
        while (b > a && isspace((unsigned char)b[-1])) {
            b--;
        }
        if (b > a) {
            strlist_push(l, a, (size_t)(b - a));
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
}

static bool
check_list_cap(const kt_cfg_entry *e, const kt_cfg_strlist *l, problems *pr, const char *where)
{
    if (e->max > 0 && l->n > (uint64_t)e->max) {
        problem(pr, where, e->key, "%zu items, at most %" PRId64 " allowed", l->n, e->max);
        return false;
    }
    return true;
}

/*
 * Parse text (a YAML scalar, env value, --set value or default) for entry e
 * and store it into cfg. plain_null: the text was a plain YAML null. On a
 * problem, report it and leave the field unchanged.
 */
static bool parse_text(const kt_cfg_entry *e,
                       void *cfg,
                       const char *text,
                       bool plain_null,
                       problems *pr,
                       const char *where)
{
    bool secret = (e->flags & KT_CFG_SECRET) != 0;
    const char *shown = secret ? "<secret>" : text;
    int64_t v = 0;
    const char *why = NULL;
    switch (e->type) {
    case KT_CFG_INT: {
        const char *end = NULL;
        if (plain_null) {
            problem(pr, where, e->key, "value missing (expected an integer)");
            return false;
        }
        if (!parse_i64(text, &v, &end) || *end != '\0') {
            problem(pr, where, e->key, "\"%s\" is not an integer", shown);
            return false;
        }
        break;
    }
    case KT_CFG_DURATION_MS:
        if (plain_null) {
            problem(pr, where, e->key, "value missing (expected a duration)");
            return false;
        }
        if (!parse_with_unit(text, duration_units, &v, &why)) {
            problem(pr, where, e->key, "\"%s\" is not a duration (%s; use ms, s, m, h or d)", shown,
                    why);
            return false;
        }
        if (v < 0) {
            problem(pr, where, e->key, "duration %s is negative", shown);
            return false;
        }
        break;
    case KT_CFG_SIZE_BYTES:
        if (plain_null) {
            problem(pr, where, e->key, "value missing (expected a size)");
            return false;
        }
        if (!parse_with_unit(text, size_units, &v, &why)) {
            problem(pr, where, e->key,
                    "\"%s\" is not a size (%s; use B, KiB, MiB, GiB, KB, MB, GB)", shown, why);
            return false;
        }
        if (v < 0) {
            problem(pr, where, e->key, "size %s is negative", shown);
            return false;
        }
        break;
    case KT_CFG_BOOL: {
        bool b;
        if (ieq(text, "true") || ieq(text, "yes") || ieq(text, "on") || strcmp(text, "1") == 0) {
            b = true;
        } else if (ieq(text, "false") || ieq(text, "no") || ieq(text, "off") ||
                   strcmp(text, "0") == 0) {
            b = false;
        } else {
            problem(pr, where, e->key, "\"%s\" is not a boolean (true/false)", shown);
            return false;
        }
        *(bool *)field(cfg, e) = b;
        return true;
    }
    case KT_CFG_STRING: {
        char **dst = field(cfg, e);
        if (plain_null) {
            kt_free(*dst);
            *dst = NULL;
            return true;
        }
        size_t len = strlen(text);
        if (e->max > 0 && (len < (uint64_t)(e->min > 0 ? e->min : 0) || len > (uint64_t)e->max)) {
            problem(pr, where, e->key, "length %zu out of range %" PRId64 "..%" PRId64, len, e->min,
                    e->max);
            return false;
        }
        kt_free(*dst);
        *dst = kt_xstrdup(text);
        return true;
    }
    case KT_CFG_STRING_LIST: {
        kt_cfg_strlist l = { 0, NULL };
        if (!plain_null) {
            strlist_from_csv(&l, text);
        }
        if (!check_list_cap(e, &l, pr, where)) {
            strlist_free(&l);
            return false;
        }
        kt_cfg_strlist *dst = field(cfg, e);
        strlist_free(dst);
        *dst = l;
        return true;
    }
    }
    /* Numeric types: range check, then store. */
    if (!(e->min == 0 && e->max == 0) && (v < e->min || v > e->max)) {
        char a[40];
        char b[40];
        char c[40];
        if (e->type == KT_CFG_DURATION_MS) {
            fmt_duration(a, sizeof a, v);
            fmt_duration(b, sizeof b, e->min);
            fmt_duration(c, sizeof c, e->max);
        } else if (e->type == KT_CFG_SIZE_BYTES) {
            fmt_size(a, sizeof a, v);
            fmt_size(b, sizeof b, e->min);
            fmt_size(c, sizeof c, e->max);
        } else {
            (void)snprintf(a, sizeof a, "%" PRId64, v);
            (void)snprintf(b, sizeof b, "%" PRId64, e->min);
            (void)snprintf(c, sizeof c, "%" PRId64, e->max);
        }
        problem(pr, where, e->key, "%s out of range %s..%s", secret ? "<secret>" : a, b, c);
        return false;
    }
    if (e->type == KT_CFG_SIZE_BYTES) {
        if ((uint64_t)v > (uint64_t)SIZE_MAX) {
            problem(pr, where, e->key, "size too large");
            return false;
        }
        *(size_t *)field(cfg, e) = (size_t)v;
    } else {
        *(int64_t *)field(cfg, e) = v;
    }
    return true;
}

/* ------------------------------------------------------------ defaults */

/* Free the strings of entries [table, end): the ones already initialised. */
static void free_range(const kt_cfg_entry *table, const kt_cfg_entry *end, void *cfg)
{
    for (const kt_cfg_entry *e = table; e != end; e++) {
        if (e->type == KT_CFG_STRING) {
            char **s = field(cfg, e);
            kt_free(*s);
            *s = NULL;
        } else if (e->type == KT_CFG_STRING_LIST) {
            strlist_free(field(cfg, e));
        }
    }
}

kt_status kt_cfg_defaults(const kt_cfg_entry *table, void *cfg, kt_err *err)
{
    KT_ASSERT(table != NULL && cfg != NULL);
    problems pr = { 0 };
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        if (!key_valid(e->key)) {
            return kt_err_set(err, KT_EINVAL, "table: invalid key \"%s\"", e->key);
        }
        for (const kt_cfg_entry *o = table; o != e; o++) {
            size_t ol = strlen(o->key);
            size_t el = strlen(e->key);
            if (strcmp(o->key, e->key) == 0) {
                return kt_err_set(err, KT_EINVAL, "table: duplicate key %s", e->key);
            }
            const char *shorter = ol < el ? o->key : e->key;
            const char *longer = ol < el ? e->key : o->key;
            size_t sl = ol < el ? ol : el;
            if (strncmp(shorter, longer, sl) == 0 && longer[sl] == '.') {
                return kt_err_set(err, KT_EINVAL, "table: key %s is also a prefix of %s", shorter,
                                  longer);
            }
        }
        if (e->type < KT_CFG_INT || e->type > KT_CFG_STRING_LIST) {
            return kt_err_set(err, KT_EINVAL, "table: %s: bad type %d", e->key, (int)e->type);
        }
    }
    /* Second pass: every field gets its zero value, then its default. */
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        switch (e->type) {
        case KT_CFG_INT:
        case KT_CFG_DURATION_MS:
            *(int64_t *)field(cfg, e) = 0;
            break;
        case KT_CFG_SIZE_BYTES:
            *(size_t *)field(cfg, e) = 0;
            break;
        case KT_CFG_BOOL:
            *(bool *)field(cfg, e) = false;
            break;
        case KT_CFG_STRING:
            *(char **)field(cfg, e) = NULL;
            break;
        case KT_CFG_STRING_LIST: {
            kt_cfg_strlist *l = field(cfg, e);
            l->n = 0;
            l->items = NULL;
            break;
        }
        }
        if (e->def != NULL && (e->flags & KT_CFG_REQUIRED) == 0) {
            if (!parse_text(e, cfg, e->def, false, &pr, "table default")) {
                free_range(table, e + 1, cfg);
                return kt_err_set(err, KT_EINVAL, "%s", pr.first);
            }
        }
    }
    return KT_OK;
}

/* ------------------------------------------------------------ YAML walk */

typedef struct walk {
    const kt_cfg_entry *table;
    void *cfg;
    const char *file;
    yaml_document_t *doc;
    problems *pr;
    unsigned char *seen; /* per entry: already set by this file */
    size_t n_nodes;
    bool budget_reported;
} walk;

static void where_mark(char *out, size_t cap, const char *file, yaml_mark_t m)
{
    (void)snprintf(out, cap, "%s:%zu:%zu", file, m.line + 1, m.column + 1);
}

static bool scalar_is_plain_null(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           is_null_text((const char *)n->data.scalar.value);
}

static bool budget(walk *w, yaml_mark_t m)
{
    if (++w->n_nodes <= MAX_NODES) {
        return true;
    }
    if (!w->budget_reported) {
        char where[600];
        where_mark(where, sizeof where, w->file, m);
        problem(w->pr, where, NULL, "document too large (over %d nodes, alias expansion?)",
                MAX_NODES);
        w->budget_reported = true;
    }
    return false;
}

static void set_value(walk *w, const kt_cfg_entry *e, yaml_node_t *v)
{
    char where[600];
    where_mark(where, sizeof where, w->file, v->start_mark);
    size_t idx = (size_t)(e - w->table);
    if (w->seen[idx]) {
        problem(w->pr, where, e->key, "set twice");
        return;
    }
    w->seen[idx] = 1;
    if (e->type == KT_CFG_STRING_LIST) {
        if (v->type == YAML_SEQUENCE_NODE) {
            kt_cfg_strlist l = { 0, NULL };
            bool ok = true;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(w->doc, *it);
                if (item == NULL || !budget(w, v->start_mark)) {
                    ok = false;
                    break;
                }
                if (item->type != YAML_SCALAR_NODE || scalar_is_plain_null(item)) {
                    char iw[600];
                    where_mark(iw, sizeof iw, w->file, item->start_mark);
                    problem(w->pr, iw, e->key, "list items must be strings");
                    ok = false;
                    continue;
                }
                strlist_push(&l, (const char *)item->data.scalar.value, item->data.scalar.length);
            }
            if (ok && check_list_cap(e, &l, w->pr, where)) {
                kt_cfg_strlist *dst = field(w->cfg, e);
                strlist_free(dst);
                *dst = l;
            } else {
                strlist_free(&l);
            }
            return;
        }
        if (v->type == YAML_SCALAR_NODE) {
            /* A single scalar is a one-item list (null: empty list). */
            kt_cfg_strlist l = { 0, NULL };
            if (!scalar_is_plain_null(v)) {
                strlist_push(&l, (const char *)v->data.scalar.value, v->data.scalar.length);
            }
            if (check_list_cap(e, &l, w->pr, where)) {
                kt_cfg_strlist *dst = field(w->cfg, e);
                strlist_free(dst);
                *dst = l;
            } else {
                strlist_free(&l);
            }
            return;
        }
        problem(w->pr, where, e->key, "expected a list of strings, found a mapping");
        return;
    }
    if (v->type != YAML_SCALAR_NODE) {
        problem(w->pr, where, e->key, "expected a %s, found a %s", kt_cfg_type_str(e->type),
                v->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return;
    }
    const char *text = (const char *)v->data.scalar.value;
    if (strlen(text) != v->data.scalar.length) {
        problem(w->pr, where, e->key, "value contains a NUL byte");
        return;
    }
    (void)parse_text(e, w->cfg, text, scalar_is_plain_null(v), w->pr, where);
}

static void walk_mapping(walk *w, yaml_node_t *map, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH) {
        char where[600];
        where_mark(where, sizeof where, w->file, map->start_mark);
        problem(w->pr, where, prefix, "nested too deeply");
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        if (k == NULL || v == NULL || !budget(w, map->start_mark)) {
            return;
        }
        char where[600];
        where_mark(where, sizeof where, w->file, k->start_mark);
        if (k->type != YAML_SCALAR_NODE) {
            problem(w->pr, where, prefix, "mapping keys must be plain strings");
            continue;
        }
        const char *ks = (const char *)k->data.scalar.value;
        char path[MAX_PATH];
        int n = prefix[0] != '\0' ? snprintf(path, sizeof path, "%s.%s", prefix, ks)
                                  : snprintf(path, sizeof path, "%s", ks);
        if (n < 0 || (size_t)n >= sizeof path || strlen(ks) != k->data.scalar.length) {
            problem(w->pr, where, NULL, "key too long or contains NUL");
            continue;
        }
        const kt_cfg_entry *e = find_entry(w->table, path, (size_t)n);
        if (e != NULL) {
            set_value(w, e, v);
        } else if (is_prefix(w->table, path, (size_t)n)) {
            if (v->type == YAML_MAPPING_NODE) {
                walk_mapping(w, v, path, depth + 1);
            } else if (!scalar_is_plain_null(v)) {
                char vw[600];
                where_mark(vw, sizeof vw, w->file, v->start_mark);
                problem(w->pr, vw, path, "expected a mapping (section of settings)");
            }
        } else {
            problem(w->pr, where, path, "unknown key");
        }
    }
}

kt_status kt_cfg_load_buffer(const kt_cfg_entry *table,
                             void *cfg,
                             const char *name,
                             const char *data,
                             size_t len,
                             kt_buf *errs,
                             kt_err *err)
{
    KT_ASSERT(table != NULL && cfg != NULL);
    if (name == NULL) {
        name = "<config>";
    }
    problems pr = { .errs = errs };
    if (len > MAX_FILE_BYTES) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes over the %u-byte limit", name, len,
                          MAX_FILE_BYTES);
    }
    size_t n_entries = 0;
    while (table[n_entries].key != NULL) {
        n_entries++;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return kt_err_set(err, KT_ENOMEM, "yaml parser");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
        char where[600];
        where_mark(where, sizeof where, name, parser.problem_mark);
        problem(&pr, where, NULL, "yaml: %s%s%s", parser.problem ? parser.problem : "syntax error",
                parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return problems_finish(&pr, err);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL) {
        walk w = { .table = table,
                   .cfg = cfg,
                   .file = name,
                   .doc = &doc,
                   .pr = &pr,
                   .seen = kt_xcalloc(n_entries + 1, 1) };
        if (root->type == YAML_MAPPING_NODE) {
            walk_mapping(&w, root, "", 0);
        } else if (!scalar_is_plain_null(root)) {
            char where[600];
            where_mark(where, sizeof where, name, root->start_mark);
            problem(&pr, where, NULL, "the document must be a mapping of settings");
        }
        kt_free(w.seen);
        /* Only one document per file. */
        yaml_document_t next;
        if (yaml_parser_load(&parser, &next)) {
            yaml_node_t *nroot = yaml_document_get_root_node(&next);
            if (nroot != NULL) {
                char where[600];
                where_mark(where, sizeof where, name, nroot->start_mark);
                problem(&pr, where, NULL, "only one YAML document is allowed");
            }
            yaml_document_delete(&next);
        } else {
            char where[600];
            where_mark(where, sizeof where, name, parser.problem_mark);
            problem(&pr, where, NULL, "yaml: %s", parser.problem ? parser.problem : "syntax error");
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return problems_finish(&pr, err);
}

kt_status
kt_cfg_load_file(const kt_cfg_entry *table, void *cfg, const char *path, kt_buf *errs, kt_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) {
            return kt_err_set(err, KT_ENOTFOUND, "%s: no such file", path);
        }
        return kt_err_set_errno(err, KT_EIO, e, "stat %s", path);
    }
    kt_buf b;
    kt_buf_init(&b, MAX_FILE_BYTES);
    kt_status s = kt_buf_read_file(&b, path, err);
    if (s == KT_OK) {
        s = kt_cfg_load_buffer(table, cfg, path, b.data != NULL ? b.data : "", b.len, errs, err);
    }
    kt_buf_fini(&b);
    return s;
}

/* ------------------------------------------------------------ env, set */

const char *kt_cfg_env_name(char *out, size_t cap, const char *prefix, const char *key)
{
    if (prefix == NULL) {
        prefix = "KTWIN_";
    }
    size_t n = kt_strlcpy(out, prefix, cap);
    for (const char *p = key; *p != '\0' && n + 1 < cap; p++, n++) {
        char c = *p;
        out[n] = (c == '.' || c == '-') ? '_' : (char)toupper((unsigned char)c);
        out[n + 1] = '\0';
    }
    return out;
}

kt_status kt_cfg_apply_env(
    const kt_cfg_entry *table, void *cfg, const char *prefix, kt_buf *errs, kt_err *err)
{
    problems pr = { .errs = errs };
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        char name[MAX_PATH + 64];
        kt_cfg_env_name(name, sizeof name, prefix, e->key);
        if ((e->flags & KT_CFG_ENV) != 0) {
            const char *v = getenv(name);
            if (v != NULL) {
                char where[sizeof name + 8];
                (void)snprintf(where, sizeof where, "env %s", name);
                (void)parse_text(e, cfg, v, false, &pr, where);
            }
        }
        if ((e->flags & KT_CFG_REQUIRED) != 0) {
            bool missing = false;
            if (e->type == KT_CFG_STRING) {
                const char *s = *(char *const *)cfield(cfg, e);
                missing = s == NULL || s[0] == '\0';
            } else if (e->type == KT_CFG_STRING_LIST) {
                missing = ((const kt_cfg_strlist *)cfield(cfg, e))->n == 0;
            }
            if (missing && (e->flags & KT_CFG_ENV) != 0) {
                problem(&pr, "config", e->key, "required, not set (in the file or %s)", name);
            } else if (missing) {
                problem(&pr, "config", e->key, "required, not set");
            }
        }
    }
    return problems_finish(&pr, err);
}

kt_status kt_cfg_set(const kt_cfg_entry *table,
                     void *cfg,
                     const char *key,
                     const char *value,
                     const char *where,
                     kt_buf *errs,
                     kt_err *err)
{
    if (where == NULL) {
        where = "command line";
    }
    const kt_cfg_entry *e = find_entry(table, key, strlen(key));
    problems pr = { .errs = errs };
    if (e == NULL) {
        problem(&pr, where, key, "unknown key");
        kt_err_set(err, KT_ENOTFOUND, "%s", pr.first);
        return KT_ENOTFOUND;
    }
    (void)parse_text(e, cfg, value, false, &pr, where);
    return problems_finish(&pr, err);
}

/* ------------------------------------------------------------ compare, dump, docs */

bool kt_cfg_changed(const kt_cfg_entry *e, const void *a, const void *b)
{
    switch (e->type) {
    case KT_CFG_INT:
    case KT_CFG_DURATION_MS:
        return *(const int64_t *)cfield(a, e) != *(const int64_t *)cfield(b, e);
    case KT_CFG_SIZE_BYTES:
        return *(const size_t *)cfield(a, e) != *(const size_t *)cfield(b, e);
    case KT_CFG_BOOL:
        return *(const bool *)cfield(a, e) != *(const bool *)cfield(b, e);
    case KT_CFG_STRING: {
        const char *x = *(char *const *)cfield(a, e);
        const char *y = *(char *const *)cfield(b, e);
        if (x == NULL || y == NULL) {
            return x != y;
        }
        return strcmp(x, y) != 0;
    }
    case KT_CFG_STRING_LIST: {
        const kt_cfg_strlist *x = cfield(a, e);
        const kt_cfg_strlist *y = cfield(b, e);
        if (x->n != y->n) {
            return true;
        }
        for (size_t i = 0; i < x->n; i++) {
            if (strcmp(x->items[i], y->items[i]) != 0) {
                return true;
            }
        }
        return false;
    }
    }
    return false;
}

/* Value as text (secrets masked). Returns KT_OK or the kt_buf error. */
static kt_status put_value(kt_buf *out, const kt_cfg_entry *e, const void *cfg)
{
    if ((e->flags & KT_CFG_SECRET) != 0) {
        return kt_buf_puts(out, "<secret>");
    }
    char tmp[64];
    switch (e->type) {
    case KT_CFG_INT:
        return kt_buf_printf(out, "%" PRId64, *(const int64_t *)cfield(cfg, e));
    case KT_CFG_DURATION_MS:
        fmt_duration(tmp, sizeof tmp, *(const int64_t *)cfield(cfg, e));
        return kt_buf_puts(out, tmp);
    case KT_CFG_SIZE_BYTES:
        fmt_size(tmp, sizeof tmp, (int64_t) * (const size_t *)cfield(cfg, e));
        return kt_buf_puts(out, tmp);
    case KT_CFG_BOOL:
        return kt_buf_puts(out, *(const bool *)cfield(cfg, e) ? "true" : "false");
    case KT_CFG_STRING: {
        const char *s = *(char *const *)cfield(cfg, e);
        return s == NULL ? kt_buf_puts(out, "~") : kt_buf_printf(out, "\"%s\"", s);
    }
    case KT_CFG_STRING_LIST: {
        const kt_cfg_strlist *l = cfield(cfg, e);
        kt_status st = kt_buf_putc(out, '[');
        for (size_t i = 0; i < l->n && st == KT_OK; i++) {
            st = kt_buf_printf(out, "%s\"%s\"", i > 0 ? ", " : "", l->items[i]);
        }
        return st == KT_OK ? kt_buf_putc(out, ']') : st;
    }
    }
    return KT_OK;
}

kt_status kt_cfg_reload_check(
    const kt_cfg_entry *table, const void *old_cfg, const void *new_cfg, kt_buf *errs, kt_err *err)
{
    problems pr = { .errs = errs };
    for (const kt_cfg_entry *e = table; e->key != NULL; e++) {
        if ((e->flags & KT_CFG_RELOADABLE) != 0 || !kt_cfg_changed(e, old_cfg, new_cfg)) {
            continue;
        }
        kt_buf a;
        kt_buf b;
        kt_buf_init(&a, 200);
        kt_buf_init(&b, 200);
        (void)put_value(&a, e, old_cfg);
        (void)put_value(&b, e, new_cfg);
        problem(&pr, "reload", e->key, "changed from %s to %s but needs a restart",
                a.data != NULL ? a.data : "?", b.data != NULL ? b.data : "?");
        kt_buf_fini(&a);
        kt_buf_fini(&b);
    }
    return problems_finish(&pr, err);
}

kt_status kt_cfg_dump(const kt_cfg_entry *table, const void *cfg, kt_buf *out)
{
    kt_status st = KT_OK;
    for (const kt_cfg_entry *e = table; e->key != NULL && st == KT_OK; e++) {
        st = kt_buf_printf(out, "%s: ", e->key);
        if (st == KT_OK) {
            st = put_value(out, e, cfg);
        }
        if (st == KT_OK) {
            st = kt_buf_putc(out, '\n');
        }
    }
    return st;
}

/* Markdown cell text: '|' escaped, newlines flattened. */
static kt_status put_cell(kt_buf *out, const char *s)
{
    kt_status st = KT_OK;
    for (const char *p = s; *p != '\0' && st == KT_OK; p++) {
        if (*p == '|') {
            st = kt_buf_puts(out, "\\|");
        } else if (*p == '\n' || *p == '\r') {
            st = kt_buf_putc(out, ' ');
        } else {
            st = kt_buf_putc(out, *p);
        }
    }
    return st;
}

static void range_text(char *out, size_t cap, const kt_cfg_entry *e)
{
    char a[40];
    char b[40];
    out[0] = '\0';
    switch (e->type) {
    case KT_CFG_INT:
    case KT_CFG_DURATION_MS:
    case KT_CFG_SIZE_BYTES:
        if (e->min == 0 && e->max == 0) {
            kt_strlcpy(out, "-", cap);
            return;
        }
        if (e->type == KT_CFG_DURATION_MS) {
            fmt_duration(a, sizeof a, e->min);
            fmt_duration(b, sizeof b, e->max);
        } else if (e->type == KT_CFG_SIZE_BYTES) {
            fmt_size(a, sizeof a, e->min);
            fmt_size(b, sizeof b, e->max);
        } else {
            (void)snprintf(a, sizeof a, "%" PRId64, e->min);
            (void)snprintf(b, sizeof b, "%" PRId64, e->max);
        }
        (void)snprintf(out, cap, "%s..%s", a, b);
        return;
    case KT_CFG_STRING:
        if (e->max > 0) {
            (void)snprintf(out, cap, "length %" PRId64 "..%" PRId64, e->min > 0 ? e->min : 0,
                           e->max);
            return;
        }
        break;
    case KT_CFG_STRING_LIST:
        if (e->max > 0) {
            (void)snprintf(out, cap, "at most %" PRId64 " items", e->max);
            return;
        }
        break;
    case KT_CFG_BOOL:
        break;
    }
    kt_strlcpy(out, "-", cap);
}

kt_status kt_cfg_doc_markdown(const kt_cfg_entry *table, const char *env_prefix, kt_buf *out)
{
    kt_status st = kt_buf_puts(out, "| key | type | default | range | env | reloadable | doc |\n"
                                    "|---|---|---|---|---|---|---|\n");
    for (const kt_cfg_entry *e = table; e->key != NULL && st == KT_OK; e++) {
        char range[96];
        char env[MAX_PATH + 64];
        range_text(range, sizeof range, e);
        if ((e->flags & KT_CFG_ENV) != 0) {
            kt_cfg_env_name(env, sizeof env, env_prefix, e->key);
        } else {
            kt_strlcpy(env, "-", sizeof env);
        }
        const char *def;
        if ((e->flags & KT_CFG_REQUIRED) != 0) {
            def = "(required)";
        } else if (e->def == NULL || e->def[0] == '\0') {
            def = "-";
        } else if ((e->flags & KT_CFG_SECRET) != 0) {
            def = "<secret>";
        } else {
            def = e->def;
        }
        st = kt_buf_printf(out, "| `%s` | %s | ", e->key, kt_cfg_type_str(e->type));
        if (st == KT_OK) {
            st = kt_buf_puts(out, def[0] == '-' || def[0] == '(' || def[0] == '<' ? "" : "`");
        }
        if (st == KT_OK) {
            st = put_cell(out, def);
        }
        if (st == KT_OK) {
            st = kt_buf_puts(out, def[0] == '-' || def[0] == '(' || def[0] == '<' ? "" : "`");
        }
        if (st == KT_OK) {
            st = kt_buf_printf(out, " | %s | %s%s%s | %s | ", range, env[0] == '-' ? "" : "`", env,
                               env[0] == '-' ? "" : "`",
                               (e->flags & KT_CFG_RELOADABLE) != 0 ? "yes" : "no");
        }
        if (st == KT_OK) {
            st = put_cell(out, e->doc != NULL ? e->doc : "");
        }
        if (st == KT_OK && (e->flags & KT_CFG_SECRET) != 0) {
            st = kt_buf_puts(out, " (secret)");
        }
        if (st == KT_OK) {
            st = kt_buf_puts(out, " |\n");
        }
    }
    return st;
}

void kt_cfg_free_strings(const kt_cfg_entry *table, void *cfg)
{
    const kt_cfg_entry *end = table;
    while (end->key != NULL) {
        end++;
    }
    free_range(table, end, cfg);
}
