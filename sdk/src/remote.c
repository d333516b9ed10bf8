/*
 * sdk/src/remote.c — blocking libcurl client for KTWIN's HTTP APIs (see
 * remote.h).
 *
 * Invariants: body holds the last reply's body (capped); hdrs the last
 * reply's ce-id / ce-time ("" when absent), reset before each request.
 *
 * Thread: one at a time per remote. Ownership: the remote owns curl and
 * the buffers.
 */
#include "remote.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "kt/buf.h"
#include "kt/mem.h"

#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_BODY_BYTES (1024u * 1024u)
#define CONNECT_TIMEOUT_MS 2000L

struct ktwin_remote {
    CURL *curl;
    uint32_t timeout_ms;
    kt_buf body;
    bool too_big;
    ktwin_remote_hdrs hdrs;
    char curl_err[CURL_ERROR_SIZE];
};

kt_status
ktwin_remote_new(ktwin_remote **out, uint32_t timeout_ms, size_t max_body_bytes, kt_err *err)
{
    ktwin_remote *r = kt_xcalloc(1, sizeof(*r));
    *out = NULL;
    r->curl = curl_easy_init();
    if (r->curl == NULL) {
        kt_free(r);
        return kt_err_set_dep(err, KT_EDEP, "curl", 0, "curl_easy_init returned NULL");
    }
    r->timeout_ms = timeout_ms != 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    kt_buf_init(&r->body, max_body_bytes != 0 ? max_body_bytes : DEFAULT_BODY_BYTES);
    *out = r;
    return KT_OK;
}

void ktwin_remote_free(ktwin_remote *r)
{
    if (r == NULL) {
        return;
    }
    curl_easy_cleanup(r->curl);
    kt_buf_fini(&r->body);
    kt_free(r);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* true when line[0..len) starts with "name:" (name lower case), case-insensitively. */
static bool header_is(const char *line, size_t len, const char *name, size_t *value_at)
{
    size_t n = strlen(name);
    size_t i;
    if (len <= n || line[n] != ':') {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (lower(line[i]) != name[i]) {
            return false;
        }
    }
    *value_at = n + 1;
    return true;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 &&
           (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
    if (len >= cap) {
        len = cap - 1; /* longer than any valid id/time: truncated, then refused by the checks */
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
}

void ktwin_remote_header_parse(ktwin_remote_hdrs *h, const char *line, size_t len)
{
    size_t at = 0;
    if (line == NULL) {
        return;
    }
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        h->ce_id[0] = '\0';
        h->ce_time[0] = '\0';
        return;
    }
    if (header_is(line, len, "ce-id", &at)) {
        copy_value(h->ce_id, sizeof(h->ce_id), line + at, len - at);
    } else if (header_is(line, len, "ce-time", &at)) {
        copy_value(h->ce_time, sizeof(h->ce_time), line + at, len - at);
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    ktwin_remote *r = user;
    ktwin_remote_header_parse(&r->hdrs, p, size * n);
    return size * n;
}

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    ktwin_remote *r = user;
    if (kt_buf_append(&r->body, p, size * n) != KT_OK) {
        r->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    return size * n;
}

static void prepare(ktwin_remote *r, const char *url)
{
    CURL *c = r->curl;
    curl_easy_reset(c); /* keeps the connection cache */
    kt_buf_reset(&r->body);
    r->too_big = false;
    memset(&r->hdrs, 0, sizeof(r->hdrs));
    r->curl_err[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
}

/* Run the prepared request; *status_out gets the HTTP status. */
static kt_status
perform(ktwin_remote *r, const char *what, const char *url, long *status_out, kt_err *err)
{
    CURLcode rc = curl_easy_perform(r->curl);
    *status_out = 0;
    if (r->too_big) {
        return kt_err_set(err, KT_ETOOBIG, "%s %s: reply over %zu bytes", what, url, r->body.max);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return kt_err_set(err, KT_ETIMEDOUT, "%s %s: no answer within %u ms", what, url,
                          (unsigned)r->timeout_ms);
    }
    if (rc != CURLE_OK) {
        kt_err_set_dep(err, KT_EIO, "curl", (long)rc, "%s %s: %s", what, url,
                       r->curl_err[0] != '\0' ? r->curl_err : curl_easy_strerror(rc));
        return KT_EIO;
    }
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status_out);
    return KT_OK;
}

kt_status ktwin_remote_get(ktwin_remote *r, const char *url, ktwin_remote_reply *out, kt_err *err)
{
    long status = 0;
    kt_status st;
    memset(out, 0, sizeof(*out));
    prepare(r, url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
    st = perform(r, "GET", url, &status, err);
    if (st != KT_OK) {
        return st;
    }
    out->status = (int)status;
    out->body = r->body.data != NULL ? r->body.data : "";
    out->body_len = r->body.len;
    out->ce_id = r->hdrs.ce_id;
    out->ce_time = r->hdrs.ce_time;
    return KT_OK;
}

kt_status
ktwin_remote_post_event(ktwin_remote *r, const char *url, const model_event *ev, kt_err *err)
{
    model_ce_headers h;
    struct curl_slist *list = NULL;
    struct curl_slist *next;
    char line[MODEL_EVENT_TYPE_CAP + MODEL_EVENT_ID_MAX + 64];
    long status = 0;
    kt_status st = KT_OK;
    size_t i;
    model_event_to_http_binary(ev, &h);
    prepare(r, url);
    for (i = 0; i < h.n; i++) {
        snprintf(line, sizeof(line), "%s: %s", h.h[i].name, h.h[i].value);
        next = curl_slist_append(list, line);
        if (next == NULL) {
            curl_slist_free_all(list);
            return kt_err_set(err, KT_ENOMEM, "POST %s: header list", url);
        }
        list = next;
    }
    next = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    if (next == NULL) {
        curl_slist_free_all(list);
        return kt_err_set(err, KT_ENOMEM, "POST %s: header list", url);
    }
    list = next;
    curl_easy_setopt(r->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, ev->data_len > 0 ? (const char *)ev->data : "");
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ev->data_len);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, list);
    st = perform(r, "POST", url, &status, err);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(list);
    if (st != KT_OK) {
        return st;
    }
    if (status < 200 || status > 299) {
        return kt_err_set_dep(err, KT_EDEP, "http", status, "POST %s: HTTP %ld: %.120s", url,
                              status, r->body.data != NULL ? r->body.data : "");
    }
    return KT_OK;
}
