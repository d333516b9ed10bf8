/*
 * test_api.c — KTWIN's HTTP APIs served by svc_api on a real kt_net server
 * (127.0.0.1, port 0): broker ingress in binary and structured mode and
 * garbage, backpressure, oversized bodies, the event-store API with
 * upsert-merge, latest, listing with time range and pagination; the loop
 * depth (ktwindepth) read back at the ingress.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt/json.h"
#include "kt/net.h"
#include "svc/api.h"
#include "svc_fixture.h"
#include "svc_http.h"

typedef struct fx {
    uv_loop_t loop;
    kt_net *net;
    kt_http_server *srv;
    svc_api *api;
    kt_metrics *reg;
    mem_store store;
    svc_store_ops ops;
    fx_events in;
    uint32_t last_depth;
    char base[64];
    char url[256];
} fx;

static kt_status ingest(void *user, const model_event *ev, kt_err *err)
{
    fx *f = user;
    if (f->in.answer == KT_EAGAIN) {
        return kt_err_set(err, KT_EAGAIN, "outbox full");
    }
    if (f->in.answer == KT_ENOTFOUND) {
        return kt_err_set(err, KT_ENOTFOUND, "unknown instance %s", ev->source);
    }
    return fx_events_add(&f->in, ev);
}

static kt_status ingest_depth(void *user, const model_event *ev, uint32_t depth, kt_err *err)
{
    fx *f = user;
    f->last_depth = depth;
    return ingest(user, ev, err);
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof(*f));
    kt_err err = { 0 };
    uv_loop_init(&f->loop);
    f->reg = kt_metrics_new();
    assert_int_equal(kt_net_new(&f->net, &f->loop, NULL, &err), KT_OK);
    kt_http_server_opts so = { .port = 0, .max_body_bytes = 64 * 1024 };
    assert_int_equal(kt_http_server_new(&f->srv, f->net, &so, &err), KT_OK);
    f->ops = mem_store_ops(&f->store);
    svc_api_ops ops = {
        .ingest = ingest, .ingest_depth = ingest_depth, .store = &f->ops, .user = f
    };
    svc_api_opts ao = { .metrics = f->reg, .max_data_bytes = 16 * 1024 };
    assert_int_equal(svc_api_mount(&f->api, f->srv, &ops, &ao, &err), KT_OK);
    assert_int_equal(kt_http_server_start(f->srv, &err), KT_OK);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", kt_http_server_port(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kt_net_free(f->net);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    svc_api_free(f->api);
    fx_events_clear(&f->in);
    mem_store_fini(&f->store);
    kt_metrics_free(f->reg);
    kt_free(f);
    return 0;
}

static const char *url(fx *f, const char *path)
{
    int n = snprintf(f->url, sizeof f->url, "%s%s", f->base, path);
    assert_true(n >= 0 && (size_t)n < sizeof f->url);
    return f->url;
}

static long post(fx *f, http_call *c, const char *path, const char *const *h, const char *body)
{
    return http_do(&f->loop, c, "POST", url(f, path), h, body, strlen(body));
}

static long get(fx *f, http_call *c, const char *path)
{
    return http_do(&f->loop, c, "GET", url(f, path), NULL, NULL, 0);
}

static void error_has(http_call *c, const char *needle)
{
    if (c->resp.data == NULL || strstr(c->resp.data, needle) == NULL) {
        fail_msg("response '%s' lacks '%s'", c->resp.data != NULL ? c->resp.data : "", needle);
    }
}

static double rejected(fx *f, const char *route, const char *reason)
{
    const char *labels[] = { "route", route, "reason", reason, NULL };
    return kt_metrics_value(kt_metrics_find(f->reg, "ktwin_svc_api_rejected_total", labels));
}

static void test_ingress_binary_and_structured(void **state)
{
    fx *f = *state;
    http_call c;
    const char *bin[] = { "ce-specversion: 1.0",
                          "ce-id: a-1",
                          "ce-type: ktwin.real.city-pole",
                          "ce-source: pole-1",
                          "ce-time: 2024-06-22T00:50:00Z",
                          "Content-Type: application/json",
                          NULL };
    assert_int_equal(post(f, &c, "/", bin, "{\"powerState\":\"off\"}"), 202);
    assert_int_equal(c.resp.len, 0);
    http_call_fini(&c);
    assert_int_equal(f->in.n, 1);
    assert_int_equal(f->in.ev[0]->cls, MODEL_EVENT_REAL);
    assert_string_equal(f->in.ev[0]->iface, "city-pole");
    assert_string_equal(f->in.ev[0]->source, "pole-1");
    assert_string_equal(f->in.ev[0]->id, "a-1");
    assert_int_equal(f->in.ev[0]->time_ms, 1719017400000ull);
    assert_memory_equal(f->in.ev[0]->data, "{\"powerState\":\"off\"}", 20);

    const char *st[] = { "Content-Type: application/cloudevents+json", NULL };
    assert_int_equal(
        post(f, &c, "/", st,
             "{\"specversion\":\"1.0\",\"id\":\"s-1\",\"type\":\"ktwin.command.hood.UpdateAQI\","
             "\"source\":\"hood-1\",\"data\":{\"aqiLevel\":\"MODERATE\"}}"),
        202);
    http_call_fini(&c);
    assert_int_equal(f->in.n, 2);
    assert_int_equal(f->in.ev[1]->cls, MODEL_EVENT_COMMAND);
    assert_string_equal(f->in.ev[1]->command, "updateaqi");
    assert_memory_equal(f->in.ev[1]->data, "{\"aqiLevel\":\"MODERATE\"}", 23);
}

static void test_ingress_loop_depth(void **state)
{
    fx *f = *state;
    http_call c;
    /* no ktwindepth: depth 0 */
    const char *bin0[] = { "ce-specversion: 1.0",
                           "ce-id: d-0",
                           "ce-type: ktwin.real.x",
                           "ce-source: x-1",
                           "Content-Type: application/json",
                           NULL };
    f->last_depth = 77;
    assert_int_equal(post(f, &c, "/", bin0, "{}"), 202);
    http_call_fini(&c);
    assert_int_equal(f->last_depth, 0);
    /* a service handling an event of depth 3 posts this one: depth 4 */
    const char *bin3[] = { "ce-specversion: 1.0",
                           "ce-id: d-1",
                           "ce-type: ktwin.real.x",
                           "ce-source: x-1",
                           "ce-ktwindepth: 3",
                           "Content-Type: application/json",
                           NULL };
    assert_int_equal(post(f, &c, "/", bin3, "{}"), 202);
    http_call_fini(&c);
    assert_int_equal(f->last_depth, 4);
    /* structured mode: a string or a number */
    const char *st[] = { "Content-Type: application/cloudevents+json", NULL };
    assert_int_equal(post(f, &c, "/", st,
                          "{\"specversion\":\"1.0\",\"id\":\"d-2\",\"type\":\"ktwin.real.x\","
                          "\"source\":\"x-1\",\"ktwindepth\":\"2\",\"data\":{}}"),
                     202);
    http_call_fini(&c);
    assert_int_equal(f->last_depth, 3);
    assert_int_equal(post(f, &c, "/", st,
                          "{\"specversion\":\"1.0\",\"id\":\"d-3\",\"type\":\"ktwin.real.x\","
                          "\"source\":\"x-1\",\"ktwindepth\":6,\"data\":{}}"),
                     202);
    http_call_fini(&c);
    assert_int_equal(f->last_depth, 7);
    /* garbage is refused, naming the attribute */
    size_t before = f->in.n;
    const char *badh[] = { "ce-specversion: 1.0",
                           "ce-id: d-4",
                           "ce-type: ktwin.real.x",
                           "ce-source: x-1",
                           "ce-ktwindepth: -1",
                           "Content-Type: application/json",
                           NULL };
    assert_int_equal(post(f, &c, "/", badh, "{}"), 400);
    error_has(&c, "ktwindepth");
    http_call_fini(&c);
    assert_int_equal(post(f, &c, "/", st,
                          "{\"specversion\":\"1.0\",\"id\":\"d-5\",\"type\":\"ktwin.real.x\","
                          "\"source\":\"x-1\",\"ktwindepth\":1.5,\"data\":{}}"),
                     400);
    error_has(&c, "ktwindepth");
    http_call_fini(&c);
    assert_int_equal(f->in.n, before);
    /* the parser */
    uint32_t d = 9;
    kt_err err = { 0 };
    assert_int_equal(svc_api_parse_depth("0", &d, &err), KT_OK);
    assert_int_equal(d, 0);
    assert_int_equal(svc_api_parse_depth("1000000", &d, &err), KT_OK);
    assert_int_equal(d, 1000000);
    assert_int_equal(svc_api_parse_depth("1000001", &d, &err), KT_EINVAL);
    assert_int_equal(svc_api_parse_depth("", &d, &err), KT_EINVAL);
    assert_int_equal(svc_api_parse_depth("12a", &d, &err), KT_EINVAL);
    assert_int_equal(svc_api_parse_depth("99999999", &d, &err), KT_EINVAL);
}

static void test_ingress_refuses_garbage_with_clear_errors(void **state)
{
    fx *f = *state;
    http_call c;
    assert_int_equal(post(f, &c, "/", NULL, "garbage"), 400);
    error_has(&c, "ce-");
    http_call_fini(&c);
    const char *badtype[] = { "ce-specversion: 1.0", "ce-id: x", "ce-type: com.example.thing",
                              "ce-source: pole-1", NULL };
    assert_int_equal(post(f, &c, "/", badtype, "{}"), 400);
    error_has(&c, "type");
    http_call_fini(&c);
    const char *badsrc[] = { "ce-specversion: 1.0", "ce-id: x", "ce-type: ktwin.real.city-pole",
                             "ce-source: a/b", NULL };
    assert_int_equal(post(f, &c, "/", badsrc, "{}"), 400);
    error_has(&c, "source");
    http_call_fini(&c);
    const char *st[] = { "Content-Type: application/cloudevents+json", NULL };
    assert_int_equal(post(f, &c, "/", st, "{\"specversion\":\"1.0\",\"id\":"), 400);
    http_call_fini(&c);
    assert_int_equal(post(f, &c, "/", st, "[1,2]"), 400);
    http_call_fini(&c);
    assert_int_equal(f->in.n, 0);
    assert_true(rejected(f, "ingress", "invalid") >= 5);
    /* GET / is not a route */
    assert_int_equal(get(f, &c, "/"), 405);
    http_call_fini(&c);
}

static void test_ingress_backpressure_and_unknown(void **state)
{
    fx *f = *state;
    http_call c;
    char v[64];
    const char *bin[] = { "ce-specversion: 1.0", "ce-id: a-1", "ce-type: ktwin.real.city-pole",
                          "ce-source: pole-9", NULL };
    f->in.answer = KT_EAGAIN;
    assert_int_equal(post(f, &c, "/", bin, "{}"), 503);
    assert_non_null(http_resp_header(&c, "Retry-After", v, sizeof v));
    assert_string_equal(v, "1");
    http_call_fini(&c);
    f->in.answer = KT_ENOTFOUND;
    assert_int_equal(post(f, &c, "/", bin, "{}"), 404);
    error_has(&c, "pole-9");
    http_call_fini(&c);
    assert_int_equal(rejected(f, "ingress", "busy"), 1);
}

static void test_oversized_bodies(void **state)
{
    fx *f = *state;
    http_call c;
    size_t n = 100 * 1024;
    char *big = kt_xmalloc(n + 1);
    const char *bin[] = { "ce-specversion: 1.0", "ce-id: a-1", "ce-type: ktwin.real.city-pole",
                          "ce-source: pole-1", NULL };
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    /* over the server's body cap (64 KiB): kt_net answers 413 */
    assert_int_equal(post(f, &c, "/", bin, big), 413);
    http_call_fini(&c);
    /* under the body cap, over the API's data cap (16 KiB): 413 from the CloudEvent parser */
    big[20 * 1024] = '}';
    big[20 * 1024 + 1] = '\0';
    assert_int_equal(post(f, &c, "/", bin, big), 413);
    error_has(&c, "data");
    http_call_fini(&c);
    assert_int_equal(post(f, &c, "/api/v1/twin-events", bin, big), 413);
    http_call_fini(&c);
    assert_int_equal(f->in.n, 0);
    kt_free(big);
}

static long store_event(fx *f, http_call *c, const char *id, const char *time, const char *data)
{
    char hid[80];
    char htime[80];
    snprintf(hid, sizeof hid, "ce-id: %s", id);
    snprintf(htime, sizeof htime, "ce-time: %s", time);
    const char *h[] = { "ce-specversion: 1.0",
                        hid,
                        "ce-type: ktwin.store.city-pole",
                        "ce-source: pole-1",
                        htime,
                        "Content-Type: application/json",
                        NULL };
    return post(f, c, "/api/v1/twin-events", h, data);
}

static void test_event_store_upsert_merge_and_latest(void **state)
{
    fx *f = *state;
    http_call c;
    char v[128];
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-1/latest"), 404);
    assert_string_equal(c.resp.data, "Not Found");
    http_call_fini(&c);

    assert_int_equal(
        store_event(f, &c, "e1", "2024-06-22T00:50:00Z", "{\"a\":1,\"n\":{\"x\":1},\"l\":[1,2]}"),
        202);
    http_call_fini(&c);
    assert_int_equal(
        store_event(f, &c, "e2", "2024-06-22T00:51:00Z", "{\"b\":2,\"n\":{\"y\":2},\"l\":[3]}"),
        202);
    http_call_fini(&c);

    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-1/latest"), 200);
    assert_string_equal(c.resp.data, "{\"a\":1,\"n\":{\"x\":1,\"y\":2},\"l\":[3],\"b\":2}");
    assert_string_equal(http_resp_header(&c, "ce-id", v, sizeof v), "e2");
    assert_string_equal(http_resp_header(&c, "ce-type", v, sizeof v), "ktwin.store.city-pole");
    assert_string_equal(http_resp_header(&c, "ce-source", v, sizeof v), "pole-1");
    assert_string_equal(http_resp_header(&c, "ce-specversion", v, sizeof v), "1.0");
    assert_string_equal(http_resp_header(&c, "ce-time", v, sizeof v), "2024-06-22T00:51:00.000Z");
    assert_non_null(http_resp_header(&c, "ce-timestamp", v, sizeof v));
    http_call_fini(&c);

    /* structured mode works too, and data must be an object */
    const char *st[] = { "Content-Type: application/cloudevents+json", NULL };
    assert_int_equal(
        post(f, &c, "/api/v1/twin-events", st,
             "{\"specversion\":\"1.0\",\"id\":\"e3\",\"type\":\"ktwin.store.city-pole\","
             "\"source\":\"pole-1\",\"data\":{\"a\":7}}"),
        202);
    http_call_fini(&c);
    assert_int_equal(store_event(f, &c, "e4", "2024-06-22T00:52:00Z", "[1]"), 400);
    error_has(&c, "data: not a JSON object");
    http_call_fini(&c);
    assert_int_equal(store_event(f, &c, "e4", "2024-06-22T00:52:00Z", "{oops"), 400);
    error_has(&c, "data: JSON syntax error");
    http_call_fini(&c);
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-1/latest"), 200);
    assert_string_equal(c.resp.data, "{\"a\":7,\"n\":{\"x\":1,\"y\":2},\"l\":[3],\"b\":2}");
    http_call_fini(&c);
    assert_int_equal(f->store.puts, 3);

    f->store.fail_put = KT_EAGAIN;
    assert_int_equal(store_event(f, &c, "e5", "2024-06-22T00:53:00Z", "{}"), 503);
    http_call_fini(&c);
    f->store.fail_put = KT_EIO;
    assert_int_equal(store_event(f, &c, "e5", "2024-06-22T00:53:00Z", "{}"), 500);
    http_call_fini(&c);
    f->store.fail_put = KT_OK;
}

/* base64 decode (test only) */
static size_t unb64(const char *s, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s != '\0' && *s != '='; s++) {
        const char *p = strchr(t, *s);
        acc = (acc << 6) | (uint32_t)(p - t);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return n;
}

static void test_event_store_list_time_range_and_pages(void **state)
{
    fx *f = *state;
    http_call c;
    char v[128];
    char path[256];
    char data[256];
    kt_err err = { 0 };
    cJSON *doc = NULL;
    int i;
    for (i = 0; i < 5; i++) {
        char id[8];
        char t[40];
        char d[32];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(t, sizeof t, "2024-06-22T00:5%d:00Z", i);
        snprintf(d, sizeof d, "{\"i\":%d}", i);
        assert_int_equal(store_event(f, &c, id, t, d), 202);
        http_call_fini(&c);
    }
    /* newest first by default; KTWIN's TwinEvent shape */
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-1"), 200);
    assert_int_equal(kt_json_parse(c.resp.data, c.resp.len, 1u << 20, &doc, &err), KT_OK);
    assert_int_equal(cJSON_GetArraySize(doc), 5);
    cJSON *first = cJSON_GetArrayItem(doc, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "e4");
    assert_string_equal(cJSON_GetObjectItem(first, "type")->valuestring, "ktwin.store.city-pole");
    assert_string_equal(cJSON_GetObjectItem(first, "interfaceId")->valuestring, "city-pole");
    assert_string_equal(cJSON_GetObjectItem(first, "instanceId")->valuestring, "pole-1");
    assert_string_equal(cJSON_GetObjectItem(first, "source")->valuestring, "pole-1");
    assert_string_equal(cJSON_GetObjectItem(first, "time")->valuestring,
                        "2024-06-22T00:54:00.000Z");
    assert_non_null(cJSON_GetObjectItem(first, "createdAt"));
    unb64(cJSON_GetObjectItem(first, "eventData")->valuestring, data);
    assert_string_equal(data, "{\"i\":4}"); /* merged: every event has only "i" */
    assert_null(http_resp_header(&c, "ktwin-next-cursor", v, sizeof v));
    cJSON_Delete(doc);
    http_call_fini(&c);

    /* time range [00:51, 00:54) ascending, two per page */
    const char *q = "?from=2024-06-22T00:51:00Z&to=2024-06-22T00:54:00Z&order=asc&limit=2";
    snprintf(path, sizeof path, "/api/v1/twin-events/city-pole/pole-1%s", q);
    assert_int_equal(get(f, &c, path), 200);
    assert_non_null(strstr(c.resp.data, "\"id\":\"e1\""));
    assert_non_null(strstr(c.resp.data, "\"id\":\"e2\""));
    assert_null(strstr(c.resp.data, "\"id\":\"e3\""));
    assert_non_null(http_resp_header(&c, "ktwin-next-cursor", v, sizeof v));
    http_call_fini(&c);
    snprintf(path, sizeof path, "/api/v1/twin-events/city-pole/pole-1%s&cursor=%s", q, v);
    assert_int_equal(get(f, &c, path), 200);
    assert_non_null(strstr(c.resp.data, "\"id\":\"e3\""));
    assert_null(strstr(c.resp.data, "\"id\":\"e2\""));
    assert_null(http_resp_header(&c, "ktwin-next-cursor", v, sizeof v));
    http_call_fini(&c);

    /* epoch ms works as a time; all events; unknown instance gives [] */
    assert_int_equal(get(f, &c, "/api/v1/twin-events?from=1719017520000&limit=1000"), 200);
    assert_null(strstr(c.resp.data, "\"id\":\"e1\""));
    assert_non_null(strstr(c.resp.data, "\"id\":\"e2\""));
    http_call_fini(&c);
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-2"), 200);
    assert_string_equal(c.resp.data, "[]");
    http_call_fini(&c);

    /* bad parameters and paths */
    const char *bad[][2] = {
        { "/api/v1/twin-events?limit=0", "limit" },
        { "/api/v1/twin-events?limit=1001", "limit" },
        { "/api/v1/twin-events?from=yesterday", "from" },
        { "/api/v1/twin-events?from=2024-06-22T00:51:00Z&to=2024-06-22T00:50:00Z", "to" },
        { "/api/v1/twin-events?order=up", "order" },
        { "/api/v1/twin-events?cursor=abc", "cursor" },
        { "/api/v1/twin-events/city.pole/pole-1", "interface" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        long s = get(f, &c, bad[k][0]);
        if (s != 400) {
            fail_msg("%s: status %ld", bad[k][0], s);
        }
        error_has(&c, bad[k][1]);
        http_call_fini(&c);
    }
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole"), 404);
    http_call_fini(&c);
    assert_int_equal(get(f, &c, "/api/v1/twin-events/city-pole/pole-1/earliest"), 404);
    http_call_fini(&c);
}

static const char *param_from_array(const char *name, void *user)
{
    const char *const *kv = user;
    for (size_t i = 0; kv[i] != NULL; i += 2) {
        if (strcmp(kv[i], name) == 0) {
            return kv[i + 1];
        }
    }
    return NULL;
}

static void test_parse_helpers(void **state)
{
    (void)state;
    uint64_t ms = 0;
    kt_err err = { 0 };
    svc_query q;
    assert_int_equal(svc_api_parse_time("0", &ms, &err), KT_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(svc_api_parse_time("2024-06-22T02:50:00+02:00", &ms, &err), KT_OK);
    assert_int_equal(ms, 1719017400000ull);
    assert_int_equal(svc_api_parse_time("99999999999999999999", &ms, &err), KT_EINVAL);
    assert_int_equal(svc_api_parse_time("", &ms, &err), KT_EINVAL);
    const char *kv[] = { "limit", "5", "order", "asc", "cursor", "17-3", NULL };
    assert_int_equal(svc_api_parse_query(&q, param_from_array, (void *)kv, &err), KT_OK);
    assert_int_equal(q.limit, 5);
    assert_false(q.desc);
    assert_int_equal(q.after_time_ms, 17);
    assert_int_equal(q.after_rowid, 3);
    const char *kv2[] = { "cursor", "17-0", NULL };
    assert_int_equal(svc_api_parse_query(&q, param_from_array, (void *)kv2, &err), KT_EINVAL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingress_binary_and_structured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingress_loop_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingress_refuses_garbage_with_clear_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ingress_backpressure_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_store_upsert_merge_and_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_store_list_time_range_and_pages, setup,
                                        teardown),
        cmocka_unit_test(test_parse_helpers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
