/*
 * json.c — bounded parse with error positions, typed getters, printing into
 * a kt_buf, and the cJSON allocation hooks. See kt/json.h.
 */
#include "kt/json.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"

/* ---- allocation hooks ----------------------------------------------------------- */

/*
 * Set by the hook when kt_malloc fails, so a NULL from cJSON can be told
 * apart: out of memory, or bad input. Per thread because parses run on any
 * thread.
 */
static _Thread_local int json_alloc_failed;

/* The calling thread's scratch arena (kt_json_scratch_begin), or NULL. */
static _Thread_local kt_arena *json_scratch;

static void *json_malloc(size_t n)
{
    void *p = json_scratch != NULL ? kt_arena_try_alloc(json_scratch, n) : kt_malloc(n);
    if (p == NULL) {
        json_alloc_failed = 1;
    }
    return p;
}

static void json_free(void *p)
{
    if (json_scratch == NULL) {
        kt_free(p);
    }
}

static pthread_once_t json_hooks_once = PTHREAD_ONCE_INIT;

static void json_hooks_init(void)
{
    cJSON_Hooks h = { json_malloc, json_free };
    cJSON_InitHooks(&h);
}

void kt_json_init(void)
{
    (void)pthread_once(&json_hooks_once, json_hooks_init);
}

void kt_json_scratch_begin(kt_arena *a)
{
    KT_ASSERT(json_scratch == NULL);
    kt_json_init();
    json_scratch = a;
}

void kt_json_scratch_end(void)
{
    json_scratch = NULL;
}

/* ---- parse ---------------------------------------------------------------------- */

static int json_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Line and column (both from 1, column in bytes) of offset off in buf. */
static void json_line_col(const char *buf, size_t off, size_t *line, size_t *col)
{
    size_t l = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            l++;
            line_start = i + 1;
        }
    }
    *line = l;
    *col = off - line_start + 1;
}

kt_status kt_json_parse(const char *buf, size_t len, size_t max_len, cJSON **out, kt_err *err)
{
    *out = NULL;
    if (len > max_len) {
        return kt_err_set(err, KT_ETOOBIG, "JSON document of %zu bytes is over the %zu-byte limit",
                          len, max_len);
    }
    if (buf == NULL) {
        return kt_err_set(err, KT_EINVAL, "JSON document is NULL");
    }
    kt_json_init();

    json_alloc_failed = 0;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (v == NULL) {
        if (json_alloc_failed) {
            return kt_err_set(err, KT_ENOMEM, "no memory to parse %zu bytes of JSON", len);
        }
        /* cJSON points end at the error; an empty document leaves it at buf. */
        size_t off = end != NULL && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        size_t line;
        size_t col;
        json_line_col(buf, off, &line, &col);
        return kt_err_set(err, KT_EINVAL, "JSON syntax error at line %zu:%zu (byte %zu)", line, col,
                          off);
    }

    /* cJSON stops after the value; only whitespace may follow. */
    size_t off = (size_t)(end - buf);
    while (off < len && json_is_space(buf[off])) {
        off++;
    }
    if (off < len) {
        cJSON_Delete(v);
        size_t line;
        size_t col;
        json_line_col(buf, off, &line, &col);
        return kt_err_set(err, KT_EINVAL,
                          "JSON syntax error at line %zu:%zu (byte %zu): data after the value",
                          line, col, off);
    }
    *out = v;
    return KT_OK;
}

/* ---- getters -------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsNull(v)) {
        return "null";
    }
    if (cJSON_IsBool(v)) {
        return "bool";
    }
    if (cJSON_IsNumber(v)) {
        return "number";
    }
    if (cJSON_IsString(v)) {
        return "string";
    }
    if (cJSON_IsArray(v)) {
        return "array";
    }
    if (cJSON_IsObject(v)) {
        return "object";
    }
    return "raw";
}

/* The member key of obj, or NULL with *st set: KT_ENOTFOUND, or KT_EINVAL for a non-object. */
static const cJSON *json_member(const cJSON *obj, const char *key, kt_status *st, kt_err *err)
{
    if (!cJSON_IsObject(obj)) {
        *st = kt_err_set(err, KT_EINVAL, "%s: looked up in a %s, not an object", key,
                         obj == NULL ? "NULL" : json_type_name(obj));
        return NULL;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL) {
        *st = kt_err_set(err, KT_ENOTFOUND, "%s: missing", key);
    }
    return v;
}

static kt_status json_wrong_type(const char *key, const char *want, const cJSON *v, kt_err *err)
{
    return kt_err_set(err, KT_EINVAL, "%s: expected %s, got %s", key, want, json_type_name(v));
}

kt_status kt_json_get_str(const cJSON *obj, const char *key, const char **out, kt_err *err)
{
    kt_status st = KT_OK;
    const cJSON *v = json_member(obj, key, &st, err);
    if (v == NULL) {
        return st;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return json_wrong_type(key, "a string", v, err);
    }
    *out = v->valuestring;
    return KT_OK;
}

kt_status kt_json_get_int(
    const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max, kt_err *err)
{
    kt_status st = KT_OK;
    const cJSON *v = json_member(obj, key, &st, err);
    if (v == NULL) {
        return st;
    }
    if (!cJSON_IsNumber(v)) {
        return json_wrong_type(key, "an integer", v, err);
    }
    double d = v->valuedouble;
    /* [-2^63, 2^63): both bounds are exact doubles, so the cast below is defined. */
    if (!isfinite(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
        return kt_err_set(err, KT_EINVAL, "%s: %g out of range %lld..%lld", key, d, (long long)min,
                          (long long)max);
    }
    int64_t i = (int64_t)d;
    if ((double)i != d) {
        return kt_err_set(err, KT_EINVAL, "%s: %g is not an integer", key, d);
    }
    if (i < min || i > max) {
        return kt_err_set(err, KT_EINVAL, "%s: %lld out of range %lld..%lld", key, (long long)i,
                          (long long)min, (long long)max);
    }
    *out = i;
    return KT_OK;
}

kt_status kt_json_get_double(const cJSON *obj, const char *key, double *out, kt_err *err)
{
    kt_status st = KT_OK;
    const cJSON *v = json_member(obj, key, &st, err);
    if (v == NULL) {
        return st;
    }
    if (!cJSON_IsNumber(v)) {
        return json_wrong_type(key, "a number", v, err);
    }
    if (!isfinite(v->valuedouble)) {
        return kt_err_set(err, KT_EINVAL, "%s: not a finite number", key);
    }
    *out = v->valuedouble;
    return KT_OK;
}

kt_status kt_json_get_bool(const cJSON *obj, const char *key, bool *out, kt_err *err)
{
    kt_status st = KT_OK;
    const cJSON *v = json_member(obj, key, &st, err);
    if (v == NULL) {
        return st;
    }
    if (!cJSON_IsBool(v)) {
        return json_wrong_type(key, "true or false", v, err);
    }
    *out = cJSON_IsTrue(v) != 0;
    return KT_OK;
}

/* ---- print ---------------------------------------------------------------------- */

/*
 * Our own printer, byte for byte cJSON_PrintUnformatted's output (cJSON
 * 1.7.15: the same escapes, "%1.15g" unless it does not read back, then
 * "%1.17g"; NaN and Inf as null; integers under 2^53 formatted by hand:
 * print_big_integer), written straight into out. cJSON's printer grows a private buffer
 * by realloc, checks every non-integer with sscanf and asks localeconv for
 * every number: that was most of the cost of printing a small document. The
 * processes never call setlocale, so the decimal point is '.'.
 */
static kt_status print_value(const cJSON *v, kt_buf *out, int depth);

static kt_status print_string(const char *s, kt_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL) {
        return kt_buf_append(out, "\"\"", 2);
    }
    kt_status st = kt_buf_putc(out, '"');
    const char *run = s;
    const char *p = s;
    for (; st == KT_OK && *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 32 && c != '"' && c != '\\') {
            continue;
        }
        st = kt_buf_append(out, run, (size_t)(p - run));
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15u];
            n = 6;
            break;
        }
        if (st == KT_OK) {
            st = kt_buf_append(out, esc, n);
        }
        run = p + 1;
    }
    if (st == KT_OK) {
        st = kt_buf_append(out, run, (size_t)(p - run));
    }
    if (st == KT_OK) {
        st = kt_buf_putc(out, '"');
    }
    return st;
}

/* cJSON's compare_double: equal within one DBL_EPSILON of the larger. */
static int json_same_double(double a, double b)
{
    double ma = fabs(a);
    double mb = fabs(b);
    double max = ma > mb ? ma : mb;
    return fabs(a - b) <= max * DBL_EPSILON;
}

/*
 * An integer d with 1e15 <= |d| < 2^53 (16 digits: microsecond timestamps),
 * as print_number's snprintf path prints it, without snprintf and strtod.
 * "%1.15g" rounds |d| to 15 significant digits, a multiple of 10 r (the
 * last digit half to even, as glibc rounds an exact value), and prints
 * "D.DDDDDDDDDDDDDDe+15" without trailing zeros; r is exact in a double,
 * so it reads back as r. When r is not "the same" as d (json_same_double),
 * "%1.17g" prints all 16 digits. Checked against snprintf in
 * tests/unit/common/test_json.c.
 */
static kt_status print_big_integer(double d, kt_buf *out)
{
    long long x = (long long)d;
    unsigned long long u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
    unsigned long long q = u / 10u;
    unsigned long long m = u % 10u;
    if (m > 5u || (m == 5u && (q & 1u) != 0)) {
        q++;
    }
    double r = (double)(q * 10u);
    char num[32];
    char *e = num + sizeof num;
    char *p = e;
    if (json_same_double(r, fabs(d))) {
        /* 15 digits, exponent 15: "D" or "D.DDD" then "e+15" */
        memcpy(e - 4, "e+15", 4);
        p = e - 4;
        char *digits_end = p;
        bool trailing = true;
        for (int i = 0; i < 14; i++) {
            unsigned c = (unsigned)(q % 10u);
            q /= 10u;
            if (trailing && c == 0) {
                continue;
            }
            trailing = false;
            *--p = (char)('0' + c);
        }
        if (p != digits_end) {
            *--p = '.';
        }
        *--p = (char)('0' + q); /* the leading digit */
    } else {
        do {
            *--p = (char)('0' + u % 10u);
            u /= 10u;
        } while (u != 0);
    }
    if (d < 0) {
        *--p = '-';
    }
    return kt_buf_append(out, p, (size_t)(e - p));
}

static kt_status print_number(const cJSON *v, kt_buf *out)
{
    double d = v->valuedouble;
    char num[32];
    size_t n;
    if (isnan(d) || isinf(d)) {
        return kt_buf_append(out, "null", 4);
    }
    if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
        /* What "%1.15g" prints for an integer under 1e15 (all digits, no
         * exponent, "-0" for negative zero), by hand: the common case. */
        long long x = (long long)d;
        unsigned long long u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
        char *e = num + sizeof num;
        char *p = e;
        do {
            *--p = (char)('0' + u % 10u);
            u /= 10u;
        } while (u != 0);
        if (signbit(d)) {
            *--p = '-';
        }
        return kt_buf_append(out, p, (size_t)(e - p));
    }
    if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d) {
        return print_big_integer(d, out);
    }
    int len = snprintf(num, sizeof num, "%1.15g", d);
    char *end = NULL;
    double back = strtod(num, &end);
    if (end == num || !json_same_double(back, d)) {
        len = snprintf(num, sizeof num, "%1.17g", d);
    }
    n = len > 0 && (size_t)len < sizeof num ? (size_t)len : 0;
    if (n == 0) {
        return KT_EINVAL;
    }
    return kt_buf_append(out, num, n);
}

static kt_status print_children(const cJSON *v, kt_buf *out, int depth, int object)
{
    kt_status st = kt_buf_putc(out, object ? '{' : '[');
    for (const cJSON *c = v->child; c != NULL && st == KT_OK; c = c->next) {
        if (object) {
            st = print_string(c->string, out);
            if (st == KT_OK) {
                st = kt_buf_putc(out, ':');
            }
        }
        if (st == KT_OK) {
            st = print_value(c, out, depth + 1);
        }
        if (st == KT_OK && c->next != NULL) {
            st = kt_buf_putc(out, ',');
        }
    }
    if (st == KT_OK) {
        st = kt_buf_putc(out, object ? '}' : ']');
    }
    return st;
}

static kt_status print_value(const cJSON *v, kt_buf *out, int depth)
{
    if (depth > CJSON_NESTING_LIMIT) {
        return KT_EINVAL; /* cJSON's own printer has no limit; this one keeps the stack bounded */
    }
    switch (v->type & 0xFF) {
    case cJSON_NULL:
        return kt_buf_append(out, "null", 4);
    case cJSON_False:
        return kt_buf_append(out, "false", 5);
    case cJSON_True:
        return kt_buf_append(out, "true", 4);
    case cJSON_Number:
        return print_number(v, out);
    case cJSON_Raw:
        return v->valuestring != NULL ? kt_buf_puts(out, v->valuestring) : KT_EINVAL;
    case cJSON_String:
        return print_string(v->valuestring, out);
    case cJSON_Array:
        return print_children(v, out, depth, 0);
    case cJSON_Object:
        return print_children(v, out, depth, 1);
    default:
        return KT_EINVAL;
    }
}

kt_status kt_json_print_buf(const cJSON *v, kt_buf *out)
{
    if (v == NULL) {
        return KT_EINVAL;
    }
    size_t len0 = out->len;
    kt_status st = print_value(v, out, 0);
    if (st != KT_OK) {
        /* out unchanged on failure, as the header promises */
        out->len = len0;
        if (out->data != NULL) {
            out->data[len0] = '\0';
        }
    }
    return st;
}
