/*
 * svc/service.c — parse one twin-service declaration of the `services`
 * config list (grammar in svc/service.h).
 *
 * Thread: any. Ownership: the parsed svc_service owns its strings.
 */
#include "svc/service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"
#include "model/model.h"

#define SPEC_MAX_LEN 8192

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parse a duration: digits with ms|s|m suffix, or plain ms. */
static bool parse_dur_ms(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    uint64_t mult = 1;
    if (len == 0) {
        return false;
    }
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > 86400000ull) {
            return false;
        }
        i++;
    }
    if (i == 0) {
        return false;
    }
    if (i == len || (len - i == 2 && memcmp(s + i, "ms", 2) == 0)) {
        mult = 1;
    } else if (len - i == 1 && s[i] == 's') {
        mult = 1000;
    } else if (len - i == 1 && s[i] == 'm') {
        mult = 60000;
    } else {
        return false;
    }
    v *= mult;
    if (v > 86400000ull) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool parse_count(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (len == 0) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max) {
            return false;
        }
    }
    *out = v;
    return true;
}

static kt_status add_iface(svc_service *s, const char *p, size_t len, size_t col, kt_err *err)
{
    char name[MODEL_NAME_MAX + 1];
    const char *why;
    size_t i;
    if (len == 0 || len > MODEL_NAME_MAX) {
        return kt_err_set(err, KT_EINVAL, "col %zu: interface name: %s", col,
                          len == 0 ? "empty" : "too long");
    }
    memcpy(name, p, len);
    name[len] = '\0';
    why = model_name_check(name);
    if (why != NULL) {
        return kt_err_set(err, KT_EINVAL, "col %zu: interface '%s': %s", col, name, why);
    }
    for (i = 0; i < s->n_ifaces; i++) {
        if (strcmp(s->ifaces[i], name) == 0) {
            return kt_err_set(err, KT_EINVAL, "col %zu: interface '%s' listed twice", col, name);
        }
    }
    if (s->n_ifaces == SVC_SERVICE_MAX_IFACES) {
        return kt_err_set(err, KT_EINVAL, "col %zu: more than %d interfaces", col,
                          SVC_SERVICE_MAX_IFACES);
    }
    s->ifaces = kt_xrealloc(s->ifaces, (s->n_ifaces + 2) * sizeof(char *));
    s->ifaces[s->n_ifaces++] = kt_xstrdup(name);
    s->ifaces[s->n_ifaces] = NULL;
    return KT_OK;
}

static kt_status
parse_option(svc_service *s, const char *text, size_t at, size_t end, bool *http_opt, kt_err *err)
{
    const char *p = text + at;
    size_t len = end - at;
    const char *eq = memchr(p, '=', len);
    size_t klen;
    const char *v;
    size_t vlen;
    uint64_t n = 0;
    if (eq == NULL) {
        return kt_err_set(err, KT_EINVAL, "col %zu: option '%.*s': expected key=value", at + 1,
                          (int)(len > 64 ? 64 : len), p);
    }
    klen = (size_t)(eq - p);
    v = eq + 1;
    vlen = len - klen - 1;
    *http_opt = true;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(p, k, klen) == 0)
    if (KEY("concurrency")) {
        if (!parse_count(v, vlen, 10000, &n) || n == 0) {
            return kt_err_set(err, KT_EINVAL, "col %zu: concurrency: not a number in 1..10000",
                              at + 1);
        }
        s->http.concurrency = (uint32_t)n;
    } else if (KEY("queue")) {
        if (!parse_count(v, vlen, 10000000, &n) || n == 0) {
            return kt_err_set(err, KT_EINVAL, "col %zu: queue: not a number in 1..10000000",
                              at + 1);
        }
        s->http.queue_max = (size_t)n;
    } else if (KEY("retries")) {
        if (!parse_count(v, vlen, 100, &n)) {
            return kt_err_set(err, KT_EINVAL, "col %zu: retries: not a number in 0..100", at + 1);
        }
        s->http.retries = n == 0 ? SVC_RETRIES_NONE : (uint32_t)n;
    } else if (KEY("timeout") || KEY("backoff") || KEY("backoff_max")) {
        uint32_t ms = 0;
        if (!parse_dur_ms(v, vlen, &ms) || ms == 0) {
            return kt_err_set(err, KT_EINVAL, "col %zu: %.*s: not a duration in 1ms..1d", at + 1,
                              (int)klen, p);
        }
        if (KEY("timeout")) {
            s->http.timeout_ms = ms;
        } else if (KEY("backoff")) {
            s->http.backoff_min_ms = ms;
        } else {
            s->http.backoff_max_ms = ms;
        }
    } else {
        return kt_err_set(err, KT_EINVAL, "col %zu: unknown option '%.*s'", at + 1,
                          (int)(klen > 64 ? 64 : klen), p);
    }
#undef KEY
    return KT_OK;
}

kt_status svc_service_parse(svc_service *out, const char *text, kt_err *err)
{
    svc_service s;
    size_t len;
    size_t i;
    size_t start;
    const char *eq;
    size_t tstart;
    size_t tend;
    bool any_http_opt = false;
    bool star = false;
    kt_status st = KT_OK;
    memset(&s, 0, sizeof(s));
    memset(out, 0, sizeof(*out));
    len = strnlen(text, SPEC_MAX_LEN + 1);
    if (len > SPEC_MAX_LEN) {
        return kt_err_set(err, KT_EINVAL, "service: longer than %d bytes", SPEC_MAX_LEN);
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)text[i] < 0x20 && text[i] != '\t') {
            return kt_err_set(err, KT_EINVAL, "col %zu: control character", i + 1);
        }
    }
    eq = memchr(text, '=', len);
    if (eq == NULL) {
        return kt_err_set(err, KT_EINVAL, "service: expected IFACES=TARGET");
    }
    /* interfaces */
    if (eq - text == 1 && text[0] == '*') {
        star = true;
    } else {
        start = 0;
        for (i = 0; i <= (size_t)(eq - text); i++) {
            if (i == (size_t)(eq - text) || text[i] == ',') {
                st = add_iface(&s, text + start, i - start, start + 1, err);
                if (st != KT_OK) {
                    goto fail;
                }
                start = i + 1;
            }
        }
    }
    /* target */
    tstart = (size_t)(eq - text) + 1;
    tend = tstart;
    while (tend < len && !is_blank(text[tend])) {
        tend++;
    }
    if (tend == tstart) {
        st = kt_err_set(err, KT_EINVAL, "col %zu: target: empty", tstart + 1);
        goto fail;
    }
    s.target = kt_xstrndup(text + tstart, tend - tstart);
    if (strncmp(s.target, "http://", 7) == 0 || strncmp(s.target, "https://", 8) == 0) {
        s.kind = SVC_SERVICE_HTTP;
        if (strlen(s.target) <= (s.target[4] == 's' ? 8u : 7u)) {
            st = kt_err_set(err, KT_EINVAL, "col %zu: target: URL without a host", tstart + 1);
            goto fail;
        }
    } else if (strstr(s.target, "://") != NULL) {
        st = kt_err_set(err, KT_EINVAL, "col %zu: target: only http:// and https:// URLs",
                        tstart + 1);
        goto fail;
    } else {
        s.kind = SVC_SERVICE_PLUGIN;
    }
    /* options */
    i = tend;
    while (i < len) {
        size_t ostart;
        while (i < len && is_blank(text[i])) {
            i++;
        }
        if (i >= len) {
            break;
        }
        ostart = i;
        if (len - i >= 7 && memcmp(text + i, "config=", 7) == 0) {
            size_t e = len;
            while (e > i + 7 && is_blank(text[e - 1])) {
                e--;
            }
            if (s.kind != SVC_SERVICE_PLUGIN) {
                st = kt_err_set(err, KT_EINVAL, "col %zu: config: only for plugins", i + 1);
                goto fail;
            }
            s.config = kt_xstrndup(text + i + 7, e - i - 7);
            break;
        }
        while (i < len && !is_blank(text[i])) {
            i++;
        }
        {
            bool http_opt = false;
            st = parse_option(&s, text, ostart, i, &http_opt, err);
            if (st != KT_OK) {
                goto fail;
            }
            any_http_opt = any_http_opt || http_opt;
        }
    }
    if (s.kind == SVC_SERVICE_PLUGIN && any_http_opt) {
        st = kt_err_set(err, KT_EINVAL, "service: HTTP options on a plugin target");
        goto fail;
    }
    if (s.kind == SVC_SERVICE_HTTP && star) {
        st = kt_err_set(err, KT_EINVAL, "service: '*' needs a plugin target");
        goto fail;
    }
    if (s.kind == SVC_SERVICE_HTTP) {
        s.http.url = s.target;
    }
    *out = s;
    return KT_OK;
fail:
    svc_service_fini(&s);
    return st;
}

void svc_service_fini(svc_service *s)
{
    size_t i;
    if (s == NULL) {
        return;
    }
    for (i = 0; i < s->n_ifaces; i++) {
        kt_free(s->ifaces[i]);
    }
    kt_free(s->ifaces);
    kt_free(s->target);
    kt_free(s->config);
    memset(s, 0, sizeof(*s));
}
