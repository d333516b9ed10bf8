/*
 * svc_http.h — a blocking HTTP client for the svc tests: each request runs
 * on a worker thread (libcurl easy) while the test's main thread runs the
 * uv loop that serves it; the worker stops the loop through a uv_async when
 * it has the answer.
 *
 * Thread: http_do is called on the main thread; the worker touches only its
 * own http_call. Ownership: http_call owns its response body and headers.
 */
#ifndef KT_TEST_SVC_HTTP_H
#define KT_TEST_SVC_HTTP_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <uv.h>

#include "kt/buf.h"

typedef struct http_call {
    const char *method;
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated, may be NULL */
    const char *body;
    size_t body_len;
    long status;
    kt_buf resp;
    kt_buf resp_headers; /* raw header lines */
    uv_async_t *wake;
} http_call;

static size_t http_write_cb(char *p, size_t s, size_t n, void *u)
{
    return kt_buf_append(u, p, s * n) == KT_OK ? s * n : 0;
}

static void *http_worker(void *arg)
{
    http_call *c = arg;
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    size_t i;
    for (i = 0; c->headers != NULL && c->headers[i] != NULL; i++) {
        h = curl_slist_append(h, c->headers[i]);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_write_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &c->resp_headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(e) == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    } else {
        c->status = -1;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    uv_async_send(c->wake);
    return NULL;
}

static void http_wake_cb(uv_async_t *a)
{
    uv_stop(a->loop);
}

/* Run one request against a server on loop; returns the status (-1 on transport error). */
static long http_do(uv_loop_t *loop,
                    http_call *c,
                    const char *method,
                    const char *url,
                    const char *const *headers,
                    const char *body,
                    size_t body_len)
{
    uv_async_t wake;
    pthread_t t;
    memset(c, 0, sizeof(*c));
    c->method = method;
    c->url = url;
    c->headers = headers;
    c->body = body;
    c->body_len = body_len;
    kt_buf_init(&c->resp, 64u << 20);
    kt_buf_init(&c->resp_headers, 1u << 20);
    uv_async_init(loop, &wake, http_wake_cb);
    c->wake = &wake;
    pthread_create(&t, NULL, http_worker, c);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return c->status;
}

/* The value of response header name (case-insensitive) copied into out, or NULL. */
static const char *http_resp_header(const http_call *c, const char *name, char *out, size_t cap)
{
    const char *p = c->resp_headers.data;
    size_t nl = strlen(name);
    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t vl;
            while (*v == ' ') {
                v++;
            }
            vl = (size_t)(p + len - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) {
                vl--;
            }
            if (vl >= cap) {
                vl = cap - 1;
            }
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return NULL;
}

static void http_call_fini(http_call *c)
{
    kt_buf_fini(&c->resp);
    kt_buf_fini(&c->resp_headers);
}

#endif
