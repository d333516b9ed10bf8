/*
 * test_net.c — kt_net on real loopback sockets (port 0): HTTP routes, query
 * and headers, 404/405/413, a multi-MiB streamed response, deferred
 * responses, garbage bytes on a raw socket; WebSocket echo of many messages
 * (larger than the rx buffer and than one fragment), server-side close,
 * client connect failure, send queue cap -> KT_EAGAIN + on_drain, message
 * cap -> 1009, handshake header + on_accept refusal, 200 clients on one
 * kt_net, shutdown with open connections; TLS with a throwaway CA made by
 * the openssl CLI (right CA verifies, wrong CA fails); a no_tls net never
 * initialises OpenSSL (lws' OpenSSL calls counted by interposition); metrics.
 *
 * HTTP clients are libcurl easy handles on a uv_thread_t while the loop runs
 * on the test thread; the test thread polls with a deadline (no sleeps).
 * Every test ends with uv_loop_close() == 0.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <libwebsockets.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"

/* ------------------------------------------------------------ loop helpers */

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

typedef bool (*cond_fn)(void *arg);

/* Run the loop until cond(arg) holds or timeout_ms passes; returns cond. */
static bool run_until(uv_loop_t *loop, cond_fn cond, void *arg, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 2, 2);
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + timeout_ms;
    bool ok;
    while (!(ok = cond(arg)) && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static void shutdown_net(uv_loop_t *loop, kt_net *net)
{
    kt_net_free(net);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ------------------------------------------------------------ curl jobs */

typedef struct cjob {
    char url[512];
    const char *method;
    const char *body;
    size_t body_len;
    const char *headers[4];
    const char *cainfo;
    long status;
    CURLcode rc;
    kt_buf out;
    char ctype[128];
    char allow[128];
    atomic_int done;
    uv_thread_t th;
} cjob;

static size_t cjob_write(char *p, size_t s, size_t n, void *u)
{
    cjob *j = u;
    if (kt_buf_append(&j->out, p, s * n) != KT_OK) {
        return 0;
    }
    return s * n;
}

static size_t cjob_header(char *p, size_t s, size_t n, void *u)
{
    cjob *j = u;
    size_t len = s * n;
    if (len > 6 && strncasecmp(p, "allow:", 6) == 0) {
        size_t k = len - 6 < sizeof j->allow - 1 ? len - 6 : sizeof j->allow - 1;
        memcpy(j->allow, p + 6, k);
        j->allow[k] = '\0';
    }
    return len;
}

static void cjob_thread(void *arg)
{
    cjob *j = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    for (size_t i = 0; i < 4 && j->headers[i] != NULL; i++) {
        hl = curl_slist_append(hl, j->headers[i]);
    }
    curl_easy_setopt(h, CURLOPT_URL, j->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cjob_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cjob_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
    if (hl != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    }
    if (j->method != NULL && strcmp(j->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (j->method != NULL) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
    }
    if (j->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    }
    if (j->cainfo != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, j->cainfo);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    }
    j->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != NULL) {
        kt_strlcpy(j->ctype, ct, sizeof j->ctype);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    atomic_store(&j->done, 1);
}

static bool cjob_done(void *arg)
{
    return atomic_load(&((cjob *)arg)->done) != 0;
}

static void cjob_init(cjob *j, const char *method, const char *url)
{
    memset(j, 0, sizeof *j);
    j->method = method;
    kt_strlcpy(j->url, url, sizeof j->url);
    kt_buf_init(&j->out, (size_t)64 << 20);
}

static void cjob_run(uv_loop_t *loop, cjob *j)
{
    assert_int_equal(uv_thread_create(&j->th, cjob_thread, j), 0);
    bool ok = run_until(loop, cjob_done, j, 40000);
    assert_int_equal(uv_thread_join(&j->th), 0);
    assert_true(ok);
}

/* ------------------------------------------------------------ HTTP */

typedef struct app {
    int hits;
    kt_http_req *deferred;
    size_t big_len;
    char last_auth[128];
} app;

static void h_hello(kt_http_req *req, void *user)
{
    app *a = user;
    a->hits++;
    const char *auth = kt_http_req_header(req, "Authorization");
    kt_strlcpy(a->last_auth, auth != NULL ? auth : "", sizeof a->last_auth);
    const char *name = kt_http_req_param(req, "name");
    char body[256];
    int n =
        snprintf(body, sizeof body, "hello %s path=%s q=%s custom=%s", name != NULL ? name : "-",
                 kt_http_req_path(req), kt_http_req_query(req),
                 kt_http_req_header(req, "X-Custom") ? kt_http_req_header(req, "x-custom") : "-");
    assert_int_equal(kt_http_resp_header(req, "X-Served-By", "kt"), KT_OK);
    assert_int_equal(kt_http_respond(req, 200, "text/plain", body, (size_t)n), KT_OK);
}

static void h_echo(kt_http_req *req, void *user)
{
    (void)user;
    size_t len = 0;
    const uint8_t *b = kt_http_req_body(req, &len);
    const char *ct = kt_http_req_header(req, "content-type");
    assert_int_equal(
        kt_http_respond(req, 201, ct != NULL ? ct : "application/octet-stream", b, len), KT_OK);
}

static void h_prefix(kt_http_req *req, void *user)
{
    (void)user;
    char body[256];
    int n = snprintf(body, sizeof body, "prefix %s %s", kt_http_req_method_str(req),
                     kt_http_req_path(req));
    (void)kt_http_respond(req, 200, "text/plain", body, (size_t)n);
}

static void h_big(kt_http_req *req, void *user)
{
    app *a = user;
    unsigned char *b = kt_xmalloc(a->big_len);
    for (size_t i = 0; i < a->big_len; i++) {
        b[i] = (unsigned char)((i * 7 + i / 65536) & 0xff);
    }
    assert_int_equal(kt_http_respond_take(req, 200, "application/octet-stream", b, a->big_len),
                     KT_OK);
}

static void h_defer(kt_http_req *req, void *user)
{
    app *a = user;
    a->deferred = req; /* answered later from a timer */
}

static void defer_timer_cb(uv_timer_t *t)
{
    app *a = t->data;
    if (a->deferred != NULL) {
        assert_int_equal(kt_http_respond(a->deferred, 202, "text/plain", "later", 5), KT_OK);
        a->deferred = NULL;
        uv_timer_stop(t);
    }
}

typedef struct http_fixture {
    uv_loop_t loop;
    kt_net *net;
    kt_http_server *srv;
    kt_metrics *reg;
    app a;
    char base[64];
} http_fixture;

static void http_setup(http_fixture *f, size_t max_body)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->reg = kt_metrics_new();
    kt_err err = { 0 };
    kt_net_opts no = { .metrics = f->reg };
    assert_int_equal(kt_net_new(&f->net, &f->loop, &no, &err), KT_OK);
    kt_http_server_opts so = { .port = 0, .max_body_bytes = max_body };
    assert_int_equal(kt_http_server_new(&f->srv, f->net, &so, &err), KT_OK);
    assert_int_equal(kt_http_route(f->srv, KT_HTTP_GET, "/hello", 0, h_hello, &f->a, &err), KT_OK);
    assert_int_equal(
        kt_http_route(f->srv, KT_HTTP_POST | KT_HTTP_PUT, "/echo", 0, h_echo, &f->a, &err), KT_OK);
    assert_int_equal(kt_http_route(f->srv, KT_HTTP_GET | KT_HTTP_DELETE, "/api/", KT_HTTP_PREFIX,
                                   h_prefix, &f->a, &err),
                     KT_OK);
    assert_int_equal(kt_http_route(f->srv, KT_HTTP_GET, "/big", 0, h_big, &f->a, &err), KT_OK);
    assert_int_equal(kt_http_route(f->srv, KT_HTTP_GET, "/defer", 0, h_defer, &f->a, &err), KT_OK);
    /* Duplicate route is refused. */
    assert_int_equal(kt_http_route(f->srv, KT_HTTP_GET, "/hello", 0, h_hello, &f->a, NULL),
                     KT_EINVAL);
    assert_int_equal(kt_http_server_port(f->srv), 0);
    assert_int_equal(kt_http_server_start(f->srv, &err), KT_OK);
    int port = kt_http_server_port(f->srv);
    assert_true(port > 0);
    (void)snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", port);
}

static void http_teardown(http_fixture *f)
{
    shutdown_net(&f->loop, f->net);
    kt_metrics_free(f->reg);
}

static void test_net_new_free_closes_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    assert_int_equal(kt_net_new(&net, &loop, NULL, NULL), KT_OK);
    assert_ptr_equal(kt_net_loop(net), &loop);
    shutdown_net(&loop, net);
}

static void test_http_get_query_headers(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 0);
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/hello?name=bob&flag", f.base);
    cjob_init(&j, "GET", url);
    j.headers[0] = "Authorization: Bearer abc";
    j.headers[1] = "X-Custom: yes";
    cjob_run(&f.loop, &j);
    assert_int_equal(j.rc, CURLE_OK);
    assert_int_equal(j.status, 200);
    assert_string_equal(j.out.data, "hello bob path=/hello q=name=bob&flag custom=yes");
    assert_string_equal(j.ctype, "text/plain");
    assert_string_equal(f.a.last_auth, "Bearer abc");
    kt_buf_fini(&j.out);

    /* POST body echo with content type. */
    (void)snprintf(url, sizeof url, "%s/echo", f.base);
    cjob_init(&j, "POST", url);
    j.body = "{\"a\":1}";
    j.body_len = 7;
    j.headers[0] = "Content-Type: application/json";
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 201);
    assert_string_equal(j.out.data, "{\"a\":1}");
    assert_string_equal(j.ctype, "application/json");
    kt_buf_fini(&j.out);

    /* POST without a body. */
    cjob_init(&j, "POST", url);
    j.body = "";
    j.body_len = 0;
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 201);
    assert_int_equal(j.out.len, 0);
    kt_buf_fini(&j.out);

    /* Prefix route, DELETE. */
    (void)snprintf(url, sizeof url, "%s/api/twins/x1", f.base);
    cjob_init(&j, "DELETE", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 200);
    assert_string_equal(j.out.data, "prefix DELETE /api/twins/x1");
    kt_buf_fini(&j.out);

    /* HEAD on a GET route: headers only. */
    (void)snprintf(url, sizeof url, "%s/hello", f.base);
    cjob_init(&j, "HEAD", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.rc, CURLE_OK);
    assert_int_equal(j.status, 200);
    assert_int_equal(j.out.len, 0);
    kt_buf_fini(&j.out);

    kt_buf m;
    kt_buf_init(&m, 1 << 20);
    assert_int_equal(kt_metrics_render(f.reg, &m), KT_OK);
    assert_non_null(strstr(m.data, "ktwin_net_http_requests_total 5\n"));
    assert_non_null(strstr(m.data, "ktwin_net_http_responses_total{class=\"2xx\"} 5\n"));
    kt_buf_fini(&m);
    http_teardown(&f);
}

static void test_http_404_405_413(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 1024);
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/nothing", f.base);
    cjob_init(&j, "GET", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 404);
    assert_non_null(strstr(j.out.data, "\"code\":404"));
    kt_buf_fini(&j.out);

    (void)snprintf(url, sizeof url, "%s/hello", f.base);
    cjob_init(&j, "POST", url);
    j.body = "x";
    j.body_len = 1;
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 405);
    assert_non_null(strstr(j.allow, "GET"));
    kt_buf_fini(&j.out);

    char *big = kt_xmalloc(5000);
    memset(big, 'a', 5000);
    (void)snprintf(url, sizeof url, "%s/echo", f.base);
    cjob_init(&j, "POST", url);
    j.body = big;
    j.body_len = 5000;
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 413);
    kt_buf_fini(&j.out);
    /* Exactly at the cap is fine. */
    cjob_init(&j, "POST", url);
    j.body = big;
    j.body_len = 1024;
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 201);
    assert_int_equal(j.out.len, 1024);
    kt_buf_fini(&j.out);
    /* Chunked request bodies (lws 4.1.6 cannot read them) get a clear 411. */
    cjob_init(&j, "POST", url);
    j.body = big;
    j.body_len = 700;
    j.headers[0] = "Transfer-Encoding: chunked";
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 411);
    assert_non_null(strstr(j.out.data, "Content-Length"));
    kt_buf_fini(&j.out);
    kt_free(big);
    assert_true(
        kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_http_body_too_big_total", NULL)) >= 1);
    http_teardown(&f);
}

static void test_http_large_request_body(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, (size_t)4 << 20);
    size_t n = (size_t)3 << 20;
    char *big = kt_xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)('a' + i % 26);
    }
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/echo", f.base);
    cjob_init(&j, "PUT", url);
    j.body = big;
    j.body_len = n;
    /* curl sends "Expect: 100-continue" for this size: the server must answer it. */
    uv_update_time(&f.loop);
    uint64_t t0 = uv_now(&f.loop);
    cjob_run(&f.loop, &j);
    fprintf(stderr, "# 3 MiB PUT echo took %llu ms\n", (unsigned long long)(uv_now(&f.loop) - t0));
    assert_int_equal(j.status, 201);
    assert_int_equal(j.out.len, n);
    assert_memory_equal(j.out.data, big, n);
    kt_buf_fini(&j.out);
    kt_free(big);
    http_teardown(&f);
}

static void test_http_streams_large_response(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 0);
    f.a.big_len = (size_t)9 * 1024 * 1024 + 123;
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/big", f.base);
    cjob_init(&j, "GET", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.rc, CURLE_OK);
    assert_int_equal(j.status, 200);
    assert_int_equal(j.out.len, f.a.big_len);
    const unsigned char *b = (const unsigned char *)j.out.data;
    size_t bad = 0;
    for (size_t i = 0; i < j.out.len; i++) {
        if (b[i] != (unsigned char)((i * 7 + i / 65536) & 0xff)) {
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    kt_buf_fini(&j.out);
    http_teardown(&f);
}

static void test_http_deferred_response(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 0);
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    t.data = &f.a;
    uv_timer_start(&t, defer_timer_cb, 20, 20);
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/defer", f.base);
    cjob_init(&j, "GET", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 202);
    assert_string_equal(j.out.data, "later");
    kt_buf_fini(&j.out);
    uv_close((uv_handle_t *)&t, NULL);
    http_teardown(&f);
}

static void test_http_deferred_pending_at_shutdown(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 0);
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/defer", f.base);
    cjob_init(&j, "GET", url);
    assert_int_equal(uv_thread_create(&j.th, cjob_thread, &j), 0);
    /* Wait until the handler holds the request, then shut down with it pending. */
    while (f.a.deferred == NULL) {
        uv_run(&f.loop, UV_RUN_ONCE);
    }
    kt_net_free(f.net);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_thread_join(&j.th), 0);
    assert_int_not_equal(j.status, 202); /* the client saw the connection go */
    kt_buf_fini(&j.out);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    kt_metrics_free(f.reg);
}

/* A raw TCP client that sends garbage and reads until the server closes. */
typedef struct raw_job {
    int port;
    const char *bytes;
    size_t len;
    atomic_int done;
    int got_close;
} raw_job;

static void raw_thread(void *arg)
{
    raw_job *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { 15, 0 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        (void)send(fd, r->bytes, r->len, MSG_NOSIGNAL);
        char buf[4096];
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0)) {
                r->got_close = n == 0;
                break;
            }
        }
    }
    close(fd);
    atomic_store(&r->done, 1);
}

static bool raw_done(void *arg)
{
    return atomic_load(&((raw_job *)arg)->done) != 0;
}

static void test_http_garbage_does_not_crash(void **state)
{
    (void)state;
    http_fixture f;
    http_setup(&f, 0);
    static const char garbage[] = "\x16\x03\x01\xff\xff GARBAGE /\x01\x02 HTTP/9.9\r\n"
                                  "Content-Length: -5\r\n\xff\xfe\r\n\r\n\r\n";
    static const char *const inputs[] = {
        garbage, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET /hello?%zz=%%%% HTTP/1.1\r\nHost: x\r\n\r\n"
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        raw_job r;
        memset(&r, 0, sizeof r);
        r.port = kt_http_server_port(f.srv);
        r.bytes = inputs[i];
        r.len = strlen(inputs[i]);
        if (i == 0) {
            r.len = sizeof garbage - 1;
        }
        uv_thread_t th;
        assert_int_equal(uv_thread_create(&th, raw_thread, &r), 0);
        bool ok = run_until(&f.loop, raw_done, &r, 40000);
        assert_int_equal(uv_thread_join(&th), 0);
        assert_true(ok);
    }
    /* Still serving. */
    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "%s/hello", f.base);
    cjob_init(&j, "GET", url);
    cjob_run(&f.loop, &j);
    assert_int_equal(j.status, 200);
    kt_buf_fini(&j.out);
    http_teardown(&f);
}

/* ------------------------------------------------------------ WebSocket */

typedef struct wsfix {
    uv_loop_t loop;
    kt_net *net;
    kt_http_server *srv;
    kt_metrics *reg;
    int port;
    /* server side */
    int srv_open, srv_closed, srv_msgs;
    int srv_close_code;
    int srv_close_at; /* close after this many messages (0: never) */
    int srv_close_with;
    bool require_auth;
    int refused;
    char srv_path[64], srv_query[64];
    /* client side */
    kt_ws_conn *cli;
    int cli_open, cli_closed, cli_msgs, cli_mismatch;
    int cli_close_code;
    char cli_close_reason[200];
    int n_to_send;
    size_t (*size_of)(int i);
    int drains;
    bool shutdown_seen;
    int cli_close_in_open; /* close code to use inside on_open (0: none) */
} wsfix;

static void fill_msg(uint8_t *b, size_t len, int i)
{
    for (size_t k = 0; k < len; k++) {
        b[k] = (uint8_t)((size_t)i * 31u + k * 7u);
    }
    if (len >= 4) {
        memcpy(b, &i, 4);
    }
}

static bool srv_accept(kt_ws_conn *c, void *user)
{
    wsfix *f = user;
    kt_strlcpy(f->srv_path, kt_ws_conn_path(c), sizeof f->srv_path);
    kt_strlcpy(f->srv_query, kt_ws_conn_query(c), sizeof f->srv_query);
    if (f->require_auth) {
        const char *a = kt_ws_conn_header(c, "authorization");
        if (a == NULL || strcmp(a, "Bearer good") != 0) {
            f->refused++;
            return false;
        }
    }
    return true;
}

static void srv_open(kt_ws_conn *c, void *user)
{
    wsfix *f = user;
    f->srv_open++;
    assert_true(kt_ws_conn_is_open(c));
    assert_false(kt_ws_conn_is_client(c));
    assert_non_null(strstr(kt_ws_conn_peer(c), "127.0.0.1:"));
}

static void srv_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    wsfix *f = user;
    f->srv_msgs++;
    if (f->srv_close_at > 0 && f->srv_msgs == f->srv_close_at) {
        kt_ws_conn_close(c, f->srv_close_with, "bye from server");
        /* Sends after close are refused, close is idempotent. */
        assert_int_equal(kt_ws_conn_send(c, data, len), KT_ECLOSED);
        kt_ws_conn_close(c, 1000, NULL);
        return;
    }
    assert_int_equal(kt_ws_conn_send(c, data, len), KT_OK);
}

static void srv_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    (void)c;
    (void)reason;
    wsfix *f = user;
    f->srv_closed++;
    f->srv_close_code = code;
    if (code == 1001 && strcmp(reason, "shutdown") == 0) {
        f->shutdown_seen = true;
    }
}

static void cli_open(kt_ws_conn *c, void *user)
{
    wsfix *f = user;
    f->cli_open++;
    assert_true(kt_ws_conn_is_client(c));
    if (f->cli_close_in_open != 0) {
        kt_ws_conn_close(c, f->cli_close_in_open, "closing in on_open");
        assert_false(kt_ws_conn_is_open(c));
        assert_int_equal(f->cli_closed, 0); /* never inside the call */
        return;
    }
    for (int i = 0; i < f->n_to_send; i++) {
        size_t len = f->size_of(i);
        uint8_t *b = kt_xmalloc(len + 1);
        fill_msg(b, len, i);
        assert_int_equal(kt_ws_conn_send(c, b, len), KT_OK);
        kt_free(b);
    }
}

static void cli_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    (void)c;
    wsfix *f = user;
    int i = f->cli_msgs++;
    size_t want = f->size_of(i);
    uint8_t *b = kt_xmalloc(want + 1);
    fill_msg(b, want, i);
    if (len != want || memcmp(b, data, len) != 0) {
        f->cli_mismatch++;
    }
    kt_free(b);
}

static void cli_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    (void)c;
    wsfix *f = user;
    f->cli_closed++;
    f->cli_close_code = code;
    kt_strlcpy(f->cli_close_reason, reason, sizeof f->cli_close_reason);
    f->cli = NULL;
}

static void cli_drain(kt_ws_conn *c, void *user)
{
    (void)c;
    wsfix *f = user;
    f->drains++;
}

static size_t size_varied(int i)
{
    /* 0 .. ~300 KiB: crosses the 16 KiB rx buffer and the 64 KiB fragment size. */
    static const size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, 65537, 200000, 300001, 16384 };
    return i < 10 ? sizes[i] : (size_t)((i * 7919) % 70000);
}

static size_t size_small(int i)
{
    (void)i;
    return 100;
}

static void ws_setup_ex(wsfix *f, const kt_http_server_opts *so, kt_ws_opts *srv_ws, bool no_tls)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->reg = kt_metrics_new();
    kt_err err = { 0 };
    kt_net_opts no = { .metrics = f->reg, .no_tls = no_tls };
    assert_int_equal(kt_net_new(&f->net, &f->loop, &no, &err), KT_OK);
    kt_http_server_opts def = { .port = 0 };
    assert_int_equal(kt_http_server_new(&f->srv, f->net, so != NULL ? so : &def, &err), KT_OK);
    kt_ws_opts o = { 0 };
    if (srv_ws != NULL) {
        o = *srv_ws;
    }
    o.on_accept = srv_accept;
    o.on_open = srv_open;
    o.on_message = srv_message;
    o.on_close = srv_close;
    o.user = f;
    assert_int_equal(kt_ws_endpoint(f->srv, "/sync", "ktwin-sync.v1", &o, &err), KT_OK);
    assert_int_equal(kt_ws_endpoint(f->srv, "/sync2", "ktwin-sync.v1", &o, NULL), KT_EINVAL);
    assert_int_equal(kt_http_server_start(f->srv, &err), KT_OK);
    assert_int_equal(kt_ws_endpoint(f->srv, "/late", "late", &o, NULL), KT_EINVAL);
    f->port = kt_http_server_port(f->srv);
    f->size_of = size_varied;
}

static void ws_setup(wsfix *f, const kt_http_server_opts *so, kt_ws_opts *srv_ws)
{
    ws_setup_ex(f, so, srv_ws, false);
}

static kt_ws_client_opts client_opts(wsfix *f, char *url, size_t cap, const char *scheme)
{
    (void)snprintf(url, cap, "%s://127.0.0.1:%d/sync?site=s1", scheme, f->port);
    kt_ws_client_opts co = { 0 };
    co.url = url;
    co.subprotocol = "ktwin-sync.v1";
    co.ws.on_open = cli_open;
    co.ws.on_message = cli_message;
    co.ws.on_close = cli_close;
    co.ws.on_drain = cli_drain;
    co.ws.user = f;
    return co;
}

static void ws_teardown(wsfix *f)
{
    shutdown_net(&f->loop, f->net);
    kt_metrics_free(f->reg);
}

static bool cli_got_all(void *arg)
{
    wsfix *f = arg;
    return f->cli_msgs >= f->n_to_send || f->cli_closed > 0;
}

static bool cli_is_closed(void *arg)
{
    return ((wsfix *)arg)->cli_closed > 0;
}

static bool both_closed(void *arg)
{
    wsfix *f = arg;
    return f->cli_closed > 0 && f->srv_closed > 0;
}

static void test_ws_echo_many_messages(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.n_to_send = 300;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    kt_err err = { 0 };
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, &err), KT_OK);
    assert_non_null(f.cli);
    assert_false(kt_ws_conn_is_open(f.cli));
    assert_int_equal(kt_ws_conn_send(f.cli, "x", 1), KT_ECLOSED); /* not open yet */
    assert_true(run_until(&f.loop, cli_got_all, &f, 60000));
    assert_int_equal(f.cli_closed, 0);
    assert_int_equal(f.cli_msgs, 300);
    assert_int_equal(f.cli_mismatch, 0);
    assert_int_equal(f.srv_msgs, 300);
    assert_string_equal(f.srv_path, "/sync");
    assert_string_equal(f.srv_query, "site=s1");
    assert_string_equal(kt_ws_conn_path(f.cli), "/sync");
    assert_string_equal(kt_ws_conn_query(f.cli), "site=s1");
    /* Client closes; both sides hear it. */
    int x = 7;
    kt_ws_conn_set_user(f.cli, &x);
    assert_ptr_equal(kt_ws_conn_get_user(f.cli), &x);
    kt_ws_conn_close(f.cli, 4001, "client done");
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 4001);
    assert_int_equal(f.srv_close_code, 4001);
    assert_int_equal(kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_open", NULL)), 0);
    assert_true(kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_rx_messages_total", NULL)) >=
                600);
    ws_teardown(&f);
}

static void test_ws_server_close(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.n_to_send = 5;
    f.size_of = size_small;
    f.srv_close_at = 3;
    f.srv_close_with = 4002;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 4002);
    assert_string_equal(f.cli_close_reason, "bye from server");
    assert_int_equal(f.cli_msgs, 2);
    ws_teardown(&f);
}

static void test_ws_connect_failure_reported(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    /* A port with no listener: bind one, read its number, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char url[128];
    (void)snprintf(url, sizeof url, "ws://127.0.0.1:%d/sync", ntohs(sa.sin_port));
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    co.url = url;
    (void)snprintf(url, sizeof url, "ws://127.0.0.1:%d/sync", ntohs(sa.sin_port));
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_int_equal(f.cli_closed, 0); /* never synchronous */
    assert_true(run_until(&f.loop, cli_is_closed, &f, 30000));
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.cli_close_code, 1006);
    assert_non_null(strstr(f.cli_close_reason, "connect"));
    /* Wrong subprotocol: the server refuses the handshake. */
    f.cli_closed = 0;
    kt_ws_client_opts co2 = client_opts(&f, url, sizeof url, "ws");
    co2.subprotocol = "other.v9";
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co2, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 30000));
    assert_int_equal(f.cli_open, 0);
    /* Wrong path. */
    f.cli_closed = 0;
    char url3[128];
    (void)snprintf(url3, sizeof url3, "ws://127.0.0.1:%d/other", f.port);
    kt_ws_client_opts co3 = client_opts(&f, url, sizeof url, "ws");
    co3.url = url3;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co3, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 30000));
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.srv_open, 0);
    /* Bad URLs are refused at once. */
    kt_ws_conn *c = NULL;
    static const char *const bad[] = { "http://x/",     "ws://",      "ws://h:0/",
                                       "ws://h:99999/", "ws://[::1/", "ws://h:12x/" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        co.url = bad[i];
        assert_int_equal(kt_ws_client_new(&c, f.net, &co, NULL), KT_EINVAL);
        assert_null(c);
    }
    assert_true(
        kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_connect_failures_total", NULL)) >= 3);
    ws_teardown(&f);
}

static void test_ws_send_queue_cap_eagain(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.n_to_send = 0;
    f.size_of = size_small;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    co.ws.max_queue_bytes = 1000;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    while (f.cli_open == 0 && f.cli_closed == 0) {
        uv_run(&f.loop, UV_RUN_ONCE);
    }
    assert_int_equal(f.cli_open, 1);
    uint8_t buf[2000];
    memset(buf, 1, sizeof buf);
    assert_int_equal(kt_ws_conn_send(f.cli, buf, 2000), KT_ETOOBIG);
    assert_int_equal(kt_ws_conn_send(f.cli, buf, 600), KT_OK);
    assert_int_equal(kt_ws_conn_queued_bytes(f.cli), 600);
    assert_int_equal(kt_ws_conn_send(f.cli, buf, 600), KT_EAGAIN);
    assert_int_equal(kt_ws_conn_send(f.cli, buf, 400), KT_OK);
    assert_int_equal(kt_ws_conn_queued_bytes(f.cli), 1000);
    /* The queue drains and on_drain tells the sender. */
    while (f.drains == 0 && f.cli_closed == 0) {
        uv_run(&f.loop, UV_RUN_ONCE);
    }
    assert_int_equal(f.drains, 1);
    assert_true(kt_ws_conn_queued_bytes(f.cli) <= 500);
    assert_true(kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_send_eagain_total", NULL)) ==
                1);
    kt_ws_conn_close(f.cli, 0, NULL);
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 1000);
    ws_teardown(&f);
}

static void test_ws_message_over_cap_closes_1009(void **state)
{
    (void)state;
    wsfix f;
    kt_ws_opts so = { .max_message_bytes = 50000 };
    ws_setup(&f, NULL, &so);
    f.n_to_send = 8; /* message 7 is 70000*7 % ... ; sizes[7] = 200000 > 50000 */
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 1009);
    assert_int_equal(f.srv_close_code, 1009);
    /* Messages 0..3 (<= 126 bytes) echoed; 65535 and up are over the cap. */
    assert_int_equal(f.cli_msgs, 4);
    assert_int_equal(
        kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_message_too_big_total", NULL)), 1);
    ws_teardown(&f);
}

static bool cli_is_open_or_closed(void *arg)
{
    wsfix *f = arg;
    return f->cli_open > 0 || f->cli_closed > 0;
}

/* binary_only: a text message closes with 1003, is counted and never delivered. */
static void test_ws_binary_only_refuses_text(void **state)
{
    (void)state;
    wsfix f;
    kt_ws_opts so = { .binary_only = true };
    ws_setup(&f, NULL, &so);
    f.n_to_send = 10; /* binary messages first, up to 300 KiB (fragmented): all echoed */
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 20000));
    assert_int_equal(f.cli_msgs, 10);
    assert_int_equal(f.cli_mismatch, 0);
    assert_true(run_until(&f.loop, cli_is_open_or_closed, &f, 20000));
    assert_int_equal(kt_ws_conn_send_text(f.cli, "{\"hello\":1}", 11), KT_OK);
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 1003);
    assert_int_equal(f.srv_close_code, 1003);
    assert_int_equal(f.srv_msgs, 10); /* the text message never reached on_message */
    assert_int_equal(
        kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_text_refused_total", NULL)), 1);
    /* both sides closed with a handshake: nothing counted as aborted */
    assert_int_equal(kt_metrics_value(kt_metrics_find(f.reg, "ktwin_net_ws_aborted_total", NULL)),
                     0);
    ws_teardown(&f);
}

static void test_ws_handshake_header_and_refusal(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.require_auth = true;
    f.n_to_send = 1;
    f.size_of = size_small;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    co.header_name = "Authorization";
    co.header_value = "Bearer bad";
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 20000));
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.refused, 1);
    assert_int_equal(f.srv_open, 0);
    assert_int_equal(f.srv_closed, 0); /* refused upgrades are never announced */
    f.cli_closed = 0;
    co.header_value = "Bearer good";
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 20000));
    assert_int_equal(f.cli_open, 1);
    assert_int_equal(f.cli_msgs, 1);
    /* Shutdown with the connection open: both sides hear on_close inside kt_net_free. */
    kt_net_free(f.net);
    assert_int_equal(f.cli_closed, 1);
    assert_int_equal(f.cli_close_code, 1001);
    assert_true(f.shutdown_seen);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    kt_metrics_free(f.reg);
}

static void test_ws_close_while_connecting_and_in_open(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.size_of = size_small;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    kt_ws_conn_close(f.cli, 4005, "never mind");
    kt_ws_conn_close(f.cli, 4009, "twice"); /* idempotent */
    assert_int_equal(f.cli_closed, 0);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 20000));
    assert_int_equal(f.cli_closed, 1);
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.cli_close_code, 4005);
    /* Closing inside on_open reaches the server with our code. */
    f.cli_closed = 0;
    f.srv_closed = 0;
    f.cli_close_in_open = 4006;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, both_closed, &f, 20000));
    assert_int_equal(f.cli_close_code, 4006);
    assert_int_equal(f.srv_close_code, 4006);
    ws_teardown(&f);
}

static void test_ws_host_name_resolved_off_loop(void **state)
{
    (void)state;
    wsfix f;
    ws_setup(&f, NULL, NULL);
    f.n_to_send = 3;
    f.size_of = size_small;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    (void)snprintf(url, sizeof url, "ws://localhost:%d/sync", f.port);
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    char peer[64];
    (void)snprintf(peer, sizeof peer, "localhost:%d", f.port);
    assert_string_equal(kt_ws_conn_peer(f.cli), peer);
    assert_true(run_until(&f.loop, cli_got_all, &f, 20000));
    assert_int_equal(f.cli_msgs, 3);
    kt_ws_conn_close(f.cli, 0, NULL);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 20000));
    /* Closed while the name is being resolved. */
    f.cli_closed = 0;
    f.cli_open = 0;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    kt_ws_conn_close(f.cli, 4007, NULL);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 20000));
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.cli_close_code, 4007);
    /* Shut down while resolving: on_close inside kt_net_free, the lookup ends harmlessly. */
    f.cli_closed = 0;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    kt_net_free(f.net);
    assert_int_equal(f.cli_closed, 1);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    kt_metrics_free(f.reg);
}

static void never(uv_timer_t *t)
{
    (void)t;
}

static bool timer_done(void *arg)
{
    return !uv_is_active((uv_handle_t *)arg);
}

static void test_ws_pings_keep_quiet_link_open(void **state)
{
    (void)state;
    wsfix f;
    /* Server pings after 1 s of silence and hangs up after 2 s without anything valid. */
    kt_ws_opts so = { .ping_interval_s = 1, .idle_timeout_s = 2 };
    ws_setup(&f, NULL, &so);
    f.n_to_send = 1;
    f.size_of = size_small;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    co.ws.ping_interval_s = UINT32_MAX; /* the client never pings on its own */
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, NULL), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 20000));
    /* Stay quiet for 3.5 s: only the server's pings and the client's pongs flow. */
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    uv_timer_start(&t, never, 3500, 0);
    (void)run_until(&f.loop, timer_done, &t, 20000);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(f.cli_closed, 0);
    assert_int_equal(f.srv_closed, 0);
    assert_true(kt_ws_conn_is_open(f.cli));

    /* A peer that completes the handshake and then never answers is hung up on. */
    raw_job r;
    memset(&r, 0, sizeof r);
    r.port = f.port;
    r.bytes = "GET /sync HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ktwin-sync.v1\r\n\r\n";
    r.len = strlen(r.bytes);
    int before = f.srv_closed;
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, raw_thread, &r), 0);
    bool ok = run_until(&f.loop, raw_done, &r, 30000);
    assert_int_equal(uv_thread_join(&th), 0);
    assert_true(ok);
    assert_true(r.got_close);
    assert_int_equal(f.srv_closed, before + 1);
    assert_int_equal(f.srv_close_code, 1006);
    assert_int_equal(f.cli_closed, 0); /* the well-behaved client is still fine */
    ws_teardown(&f);
}

/* 200 clients on one kt_net, each with its own counters. */
typedef struct many {
    int opened, msgs, closed, srv_open, srv_closed;
    kt_ws_conn *conns[200];
} many;

static void m_srv_open(kt_ws_conn *c, void *u)
{
    (void)c;
    ((many *)u)->srv_open++;
}

static void m_srv_msg(kt_ws_conn *c, const uint8_t *d, size_t n, void *u)
{
    (void)u;
    assert_int_equal(kt_ws_conn_send(c, d, n), KT_OK);
}

static void m_srv_close(kt_ws_conn *c, int code, const char *r, void *u)
{
    (void)c;
    (void)code;
    (void)r;
    ((many *)u)->srv_closed++;
}

static void m_cli_open(kt_ws_conn *c, void *u)
{
    many *m = u;
    m->opened++;
    intptr_t id = (intptr_t)kt_ws_conn_get_user(c);
    assert_int_equal(kt_ws_conn_send(c, &id, sizeof id), KT_OK);
}

static void m_cli_msg(kt_ws_conn *c, const uint8_t *d, size_t n, void *u)
{
    many *m = u;
    intptr_t id = (intptr_t)kt_ws_conn_get_user(c);
    if (n == sizeof id && memcmp(d, &id, n) == 0) {
        m->msgs++;
    }
}

static void m_cli_close(kt_ws_conn *c, int code, const char *r, void *u)
{
    (void)code;
    (void)r;
    many *m = u;
    m->closed++;
    intptr_t id = (intptr_t)kt_ws_conn_get_user(c);
    m->conns[id] = NULL;
}

static bool many_echoed(void *a)
{
    many *m = a;
    return m->msgs + m->closed >= 200;
}

static bool many_closed(void *a)
{
    many *m = a;
    return m->closed >= 200 && m->srv_closed >= 200;
}

static void test_ws_200_clients_one_net(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    assert_int_equal(kt_net_new(&net, &loop, NULL, NULL), KT_OK);
    kt_http_server *srv = NULL;
    assert_int_equal(kt_http_server_new(&srv, net, NULL, NULL), KT_OK);
    many m;
    memset(&m, 0, sizeof m);
    kt_ws_opts so = {
        .on_open = m_srv_open, .on_message = m_srv_msg, .on_close = m_srv_close, .user = &m
    };
    assert_int_equal(kt_ws_endpoint(srv, "/sync", "ktwin-sync.v1", &so, NULL), KT_OK);
    assert_int_equal(kt_http_server_start(srv, NULL), KT_OK);
    char url[128];
    (void)snprintf(url, sizeof url, "ws://127.0.0.1:%d/sync", kt_http_server_port(srv));
    kt_ws_client_opts co = { .url = url, .subprotocol = "ktwin-sync.v1" };
    co.ws.on_open = m_cli_open;
    co.ws.on_message = m_cli_msg;
    co.ws.on_close = m_cli_close;
    co.ws.user = &m;
    for (intptr_t i = 0; i < 200; i++) {
        assert_int_equal(kt_ws_client_new(&m.conns[i], net, &co, NULL), KT_OK);
        kt_ws_conn_set_user(m.conns[i], (void *)i);
    }
    assert_true(run_until(&loop, many_echoed, &m, 60000));
    assert_int_equal(m.msgs, 200);
    assert_int_equal(m.srv_open, 200);
    for (int i = 0; i < 200; i++) {
        if (m.conns[i] != NULL) {
            kt_ws_conn_close(m.conns[i], 1000, "done");
        }
    }
    assert_true(run_until(&loop, many_closed, &m, 60000));
    shutdown_net(&loop, net);
}

/* ------------------------------------------------------------ TLS */

static int run_cmd(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_ca(const char *dir, const char *name)
{
    char key[512], crt[512], subj[128];
    (void)snprintf(key, sizeof key, "%s/%s.key", dir, name);
    (void)snprintf(crt, sizeof crt, "%s/%s.pem", dir, name);
    (void)snprintf(subj, sizeof subj, "/CN=%s", name);
    char *argv[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",  "-keyout", key,     "-out",    crt,  "-days",    "2",
        "-subj",   subj,      NULL
    };
    assert_int_equal(run_cmd(argv), 0);
}

static void make_leaf(const char *dir, const char *name, const char *cn)
{
    char key[512], csr[512], crt[512], ext[512], ca[512], cakey[512], subj[128];
    (void)snprintf(key, sizeof key, "%s/%s.key", dir, name);
    (void)snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
    (void)snprintf(crt, sizeof crt, "%s/%s.pem", dir, name);
    (void)snprintf(ext, sizeof ext, "%s/ext.cnf", dir);
    (void)snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    (void)snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    (void)snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *a1[] = { "openssl", "req",      "-newkey",
                   "ec",      "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes",  "-keyout",  key,
                   "-out",    csr,        "-subj",
                   subj,      NULL };
    assert_int_equal(run_cmd(a1), 0);
    char *a2[] = { "openssl", "x509", "-req",   "-in", csr,
                   "-CA",     ca,     "-CAkey", cakey, "-CAcreateserial",
                   "-out",    crt,    "-days",  "2",   "-extfile",
                   ext,       NULL };
    assert_int_equal(run_cmd(a2), 0);
}

static void make_server_cert(const char *dir)
{
    char key[512], csr[512], crt[512], ext[512], ca[512], cakey[512];
    (void)snprintf(key, sizeof key, "%s/srv.key", dir);
    (void)snprintf(csr, sizeof csr, "%s/srv.csr", dir);
    (void)snprintf(crt, sizeof crt, "%s/srv.pem", dir);
    (void)snprintf(ext, sizeof ext, "%s/ext.cnf", dir);
    (void)snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    (void)snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    char *a1[] = {
        "openssl",       "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",        "-keyout", key,       "-out", csr,        "-subj",
        "/CN=127.0.0.1", NULL
    };
    assert_int_equal(run_cmd(a1), 0);
    FILE *fp = fopen(ext, "w");
    assert_non_null(fp);
    fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n", fp);
    fclose(fp);
    char *a2[] = { "openssl", "x509", "-req",   "-in", csr,
                   "-CA",     ca,     "-CAkey", cakey, "-CAcreateserial",
                   "-out",    crt,    "-days",  "2",   "-extfile",
                   ext,       NULL };
    assert_int_equal(run_cmd(a2), 0);
}

static void rm_tree(const char *dir)
{
    if (getenv("KT_TEST_KEEP") != NULL) {
        fprintf(stderr, "kept %s\n", dir);
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char p[1024];
        (void)snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        (void)unlink(p);
    }
    closedir(d);
    (void)rmdir(dir);
}

static void test_tls_https_and_wss(void **state)
{
    (void)state;
    char dir[] = "/tmp/kt-net-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    make_ca(dir, "ca");
    make_ca(dir, "other");
    make_server_cert(dir);
    char crt[512], key[512], ca[512], other[512];
    (void)snprintf(crt, sizeof crt, "%s/srv.pem", dir);
    (void)snprintf(key, sizeof key, "%s/srv.key", dir);
    (void)snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    (void)snprintf(other, sizeof other, "%s/other.pem", dir);

    wsfix f;
    kt_http_server_opts so = { .port = 0, .tls_cert_file = crt, .tls_key_file = key };
    ws_setup(&f, &so, NULL);
    kt_err err = { 0 };
    app a;
    memset(&a, 0, sizeof a);
    /* Routes can be added after start. */
    assert_int_equal(kt_http_route(f.srv, KT_HTTP_GET, "/hello", 0, h_hello, &a, &err), KT_OK);

    cjob j;
    char url[256];
    (void)snprintf(url, sizeof url, "https://127.0.0.1:%d/hello?name=tls", f.port);
    cjob_init(&j, "GET", url);
    j.cainfo = ca;
    cjob_run(&f.loop, &j);
    assert_int_equal(j.rc, CURLE_OK);
    assert_int_equal(j.status, 200);
    assert_non_null(strstr(j.out.data, "hello tls"));
    kt_buf_fini(&j.out);
    /* curl with the wrong CA refuses. */
    cjob_init(&j, "GET", url);
    j.cainfo = other;
    cjob_run(&f.loop, &j);
    assert_int_not_equal(j.rc, CURLE_OK);
    kt_buf_fini(&j.out);

    /* wss with the right CA: echo works. */
    f.n_to_send = 20;
    char wurl[128];
    kt_ws_client_opts co = client_opts(&f, wurl, sizeof wurl, "wss");
    co.tls_ca_file = ca;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 30000));
    assert_int_equal(f.cli_msgs, 20);
    assert_int_equal(f.cli_mismatch, 0);
    kt_ws_conn_close(f.cli, 0, NULL);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 20000));

    /* wss with the wrong CA fails the connect. */
    f.cli_closed = 0;
    f.cli_open = 0;
    co.tls_ca_file = other;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 30000));
    assert_int_equal(f.cli_open, 0);
    assert_int_equal(f.cli_close_code, 1006);

    /* Unreadable CA file is refused at once. */
    co.tls_ca_file = "/nonexistent/ca.pem";
    kt_ws_conn *c = NULL;
    assert_int_equal(kt_ws_client_new(&c, f.net, &co, NULL), KT_EINVAL);
    ws_teardown(&f);

    /* Mutual TLS: the server requires a client certificate signed by the CA. */
    make_leaf(dir, "client", "agent-1");
    char ccrt[512], ckey[512];
    (void)snprintf(ccrt, sizeof ccrt, "%s/client.pem", dir);
    (void)snprintf(ckey, sizeof ckey, "%s/client.key", dir);
    kt_http_server_opts mso = {
        .port = 0, .tls_cert_file = crt, .tls_key_file = key, .tls_client_ca_file = ca
    };
    ws_setup(&f, &mso, NULL);
    f.n_to_send = 3;
    f.size_of = size_small;
    kt_ws_client_opts mco = client_opts(&f, wurl, sizeof wurl, "wss");
    mco.tls_ca_file = ca;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &mco, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_is_closed, &f, 30000)); /* no client cert: refused */
    assert_int_equal(f.cli_open, 0);
    f.cli_closed = 0;
    mco.tls_cert_file = ccrt;
    mco.tls_key_file = ckey;
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &mco, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 30000));
    assert_int_equal(f.cli_open, 1);
    assert_int_equal(f.cli_msgs, 3);
    ws_teardown(&f);

    /* A server whose key file is missing does not start. */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    assert_int_equal(kt_net_new(&net, &loop, NULL, NULL), KT_OK);
    kt_http_server *srv = NULL;
    kt_http_server_opts bad = { .tls_cert_file = crt, .tls_key_file = "/nonexistent.key" };
    assert_int_equal(kt_http_server_new(&srv, net, &bad, NULL), KT_OK);
    assert_int_equal(kt_http_server_start(srv, NULL), KT_EDEP);
    kt_http_server_opts half = { .tls_cert_file = crt };
    assert_int_equal(kt_http_server_new(&srv, net, &half, NULL), KT_EINVAL);
    shutdown_net(&loop, net);
    rm_tree(dir);
}

/* OpenSSL calls made by lws, counted: this executable's definitions interpose libssl's
 * (linked with -rdynamic, tests/unit/common/net.cmake) and forward to them. */
static int n_openssl_init, n_ssl_ctx_new;

int OPENSSL_init_ssl(uint64_t opts, const OPENSSL_INIT_SETTINGS *settings)
{
    n_openssl_init++;
    int (*real)(uint64_t, const OPENSSL_INIT_SETTINGS *) = NULL;
    *(void **)&real = dlsym(RTLD_NEXT, "OPENSSL_init_ssl");
    return real(opts, settings);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *meth)
{
    n_ssl_ctx_new++;
    SSL_CTX *(*real)(const SSL_METHOD *) = NULL;
    *(void **)&real = dlsym(RTLD_NEXT, "SSL_CTX_new");
    return real(meth);
}

/* agent-rss: a net made with no_tls never initialises OpenSSL and refuses TLS; a ws:// client
 * creates no TLS context (nor loads the CA store) on any net. */
static void test_no_tls_net_never_touches_openssl(void **state)
{
    (void)state;
    int init0 = n_openssl_init, ctx0 = n_ssl_ctx_new;
    wsfix f;
    ws_setup_ex(&f, NULL, NULL, true);
    f.n_to_send = 5;
    char url[128];
    kt_ws_client_opts co = client_opts(&f, url, sizeof url, "ws");
    kt_err err = { 0 };
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 30000));
    assert_int_equal(f.cli_msgs, 5);
    assert_int_equal(f.cli_mismatch, 0);
    /* TLS is refused on it, at once. */
    char wurl[128];
    kt_ws_client_opts wco = client_opts(&f, wurl, sizeof wurl, "wss");
    kt_ws_conn *c = NULL;
    assert_int_equal(kt_ws_client_new(&c, f.net, &wco, NULL), KT_EINVAL);
    assert_null(c);
    kt_http_server *srv = NULL;
    kt_http_server_opts tso = { .tls_cert_file = "/x.pem", .tls_key_file = "/x.key" };
    assert_int_equal(kt_http_server_new(&srv, f.net, &tso, NULL), KT_EINVAL);
    assert_int_equal(n_openssl_init, init0);
    assert_int_equal(n_ssl_ctx_new, ctx0);
    ws_teardown(&f);

    /* A default net initialises OpenSSL, but its ws:// client makes no SSL_CTX. */
    ws_setup(&f, NULL, NULL);
    assert_true(n_openssl_init > init0);
    f.n_to_send = 5;
    co = client_opts(&f, url, sizeof url, "ws");
    assert_int_equal(kt_ws_client_new(&f.cli, f.net, &co, &err), KT_OK);
    assert_true(run_until(&f.loop, cli_got_all, &f, 30000));
    assert_int_equal(f.cli_msgs, 5);
    assert_int_equal(n_ssl_ctx_new, ctx0);
    ws_teardown(&f);
}

/* The biggest single allocation lws asks for (its per-fd tables, with max_fds unset). */
static size_t lws_max_request;

static void *counting_lws_realloc(void *ptr, size_t size, const char *reason)
{
    (void)reason;
    if (size == 0) {
        kt_free(ptr); /* plain free(): mem.c adds no header */
        return NULL;
    }
    if (size > lws_max_request) {
        lws_max_request = size;
    }
    return kt_realloc(ptr, size);
}

static size_t max_lws_request_of_new_net(unsigned max_fds)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    kt_net_opts o = { .max_fds = max_fds };
    lws_max_request = 0;
    lws_set_allocator(counting_lws_realloc);
    assert_int_equal(kt_net_new(&net, &loop, &o, NULL), KT_OK);
    size_t got = lws_max_request;
    shutdown_net(&loop, net);
    return got; /* the allocator stays: lws_set_allocator(NULL) would leave none */
}

/* agent-rss: max_fds sizes lws' per-fd tables instead of RLIMIT_NOFILE (16 MiB of them,
 * allocated and zeroed, at a container's usual 1048576). */
static void test_max_fds_bounds_lws_fd_tables(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 16384 && rl.rlim_max >= 16384) {
        rl.rlim_cur = 16384;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 16384) {
        skip(); /* the tables would not stand out of lws' other buffers */
    }
    size_t dflt = max_lws_request_of_new_net(0);
    size_t small = max_lws_request_of_new_net(64);
    assert_true(dflt >= 16384u * sizeof(void *)); /* one pointer per fd of the limit */
    assert_true(small < 16384u * sizeof(void *));
}

static void test_bind_any_and_ipv6(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    assert_int_equal(kt_net_new(&net, &loop, NULL, NULL), KT_OK);
    app a;
    memset(&a, 0, sizeof a);
    static const char *const addrs[] = { "0.0.0.0", "::1" };
    for (size_t i = 0; i < 2; i++) {
        kt_http_server *srv = NULL;
        kt_http_server_opts o = { .bind_addr = addrs[i], .name = addrs[i] };
        assert_int_equal(kt_http_server_new(&srv, net, &o, NULL), KT_OK);
        assert_int_equal(kt_http_route(srv, KT_HTTP_GET, "/hello", 0, h_hello, &a, NULL), KT_OK);
        kt_err err = { 0 };
        assert_int_equal(kt_http_server_start(srv, &err), KT_OK);
        cjob j;
        char url[256];
        (void)snprintf(url, sizeof url,
                       i == 0 ? "http://127.0.0.1:%d/hello" : "http://[::1]:%d/hello",
                       kt_http_server_port(srv));
        cjob_init(&j, "GET", url);
        cjob_run(&loop, &j);
        assert_int_equal(j.status, 200);
        kt_buf_fini(&j.out);
    }
    assert_int_equal(a.hits, 2);
    shutdown_net(&loop, net);
}

static void test_port_in_use_is_an_error(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kt_net *net = NULL;
    assert_int_equal(kt_net_new(&net, &loop, NULL, NULL), KT_OK);
    kt_http_server *a = NULL;
    kt_http_server *b = NULL;
    assert_int_equal(kt_http_server_new(&a, net, NULL, NULL), KT_OK);
    assert_int_equal(kt_http_server_start(a, NULL), KT_OK);
    /* Same port twice on one kt_net (lws would share the socket): refused. */
    kt_http_server_opts o = { .port = kt_http_server_port(a) };
    assert_int_equal(kt_http_server_new(&b, net, &o, NULL), KT_OK);
    kt_err err = { 0 };
    assert_int_equal(kt_http_server_start(b, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "cannot listen"));
    /* A port another socket listens on: the bind fails. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    kt_http_server *c = NULL;
    kt_http_server_opts o2 = { .port = ntohs(sa.sin_port) };
    assert_int_equal(kt_http_server_new(&c, net, &o2, NULL), KT_OK);
    kt_err err2 = { 0 };
    assert_int_equal(kt_http_server_start(c, &err2), KT_EDEP);
    close(fd);
    shutdown_net(&loop, net);
}

/* Internal (net.c): lws log lines into KT_LOG, rate-limited. 1 = LLL_ERR. */
void net__log_lws(int level, const char *line);

typedef struct log_capture {
    int lines;
    char last[512];
} log_capture;

static void capture_sink(kt_log_level level, const char *line, size_t len, void *user)
{
    (void)level;
    log_capture *c = user;
    c->lines++;
    size_t n = len < sizeof c->last - 1 ? len : sizeof c->last - 1;
    memcpy(c->last, line, n);
    c->last[n] = '\0';
}

static void test_lws_log_is_rate_limited(void **state)
{
    (void)state;
    uint64_t now_ns = 5000000000000u;
    uint64_t wall_ms = 1700000000000u;
    kt_clock_set_fake(&now_ns, &wall_ms);
    log_capture cap;
    memset(&cap, 0, sizeof cap);
    kt_log_set_sink(capture_sink, &cap);
    for (int i = 0; i < 30; i++) {
        net__log_lws(1, "SSL error: handshake failure\n");
    }
    assert_int_equal(cap.lines, 20);
    assert_non_null(strstr(cap.last, "id=LWS-LOG"));
    assert_non_null(strstr(cap.last, "lws=\"SSL error: handshake failure\""));
    now_ns += 1500000000u; /* 1.5 s later */
    net__log_lws(1, "next");
    assert_int_equal(cap.lines, 21);
    assert_non_null(strstr(cap.last, "suppressed=10"));
    kt_log_set_sink(NULL, NULL);
    kt_clock_set_fake(NULL, NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_new_free_closes_loop),
        cmocka_unit_test(test_lws_log_is_rate_limited),
        cmocka_unit_test(test_http_get_query_headers),
        cmocka_unit_test(test_http_404_405_413),
        cmocka_unit_test(test_http_large_request_body),
        cmocka_unit_test(test_http_streams_large_response),
        cmocka_unit_test(test_http_deferred_response),
        cmocka_unit_test(test_http_deferred_pending_at_shutdown),
        cmocka_unit_test(test_http_garbage_does_not_crash),
        cmocka_unit_test(test_ws_echo_many_messages),
        cmocka_unit_test(test_ws_server_close),
        cmocka_unit_test(test_ws_connect_failure_reported),
        cmocka_unit_test(test_ws_send_queue_cap_eagain),
        cmocka_unit_test(test_ws_message_over_cap_closes_1009),
        cmocka_unit_test(test_ws_binary_only_refuses_text),
        cmocka_unit_test(test_ws_handshake_header_and_refusal),
        cmocka_unit_test(test_ws_close_while_connecting_and_in_open),
        cmocka_unit_test(test_ws_host_name_resolved_off_loop),
        cmocka_unit_test(test_ws_pings_keep_quiet_link_open),
        cmocka_unit_test(test_ws_200_clients_one_net),
        cmocka_unit_test(test_tls_https_and_wss),
        cmocka_unit_test(test_no_tls_net_never_touches_openssl),
        cmocka_unit_test(test_max_fds_bounds_lws_fd_tables),
        cmocka_unit_test(test_bind_any_and_ipv6),
        cmocka_unit_test(test_port_in_use_is_an_error),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
