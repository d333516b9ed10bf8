/*
 * json.c — bounded parse with error positions, typed getters, printing into
 * a kt_buf, and the cJSON allocation hooks. See kt/json.h.
 */
#include "kt/json.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kt/mem.h"

/* ---- allocation hooks ----------------------------------------------------------- */

/*
 * Set by the hook when kt_malloc fails, so a NULL from cJSON can be told
 * apart: out of memory, or bad input. Per thread because parses run on any
 * thread.
 */
static _Thread_local int json_alloc_failed;

static void *json_malloc(size_t n)
{
    void *p = kt_malloc(n);
    if (p == NULL) {
        json_alloc_failed = 1;
    }
    return p;
}

static void json_free(void *p)
{
    kt_free(p);
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

kt_status kt_json_print_buf(const cJSON *v, kt_buf *out)
{
    if (v == NULL) {
        return KT_EINVAL;
    }
    kt_json_init();
    char *s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        return KT_ENOMEM;
    }
    kt_status st = kt_buf_puts(out, s);
    cJSON_free(s);
    return st;
}
