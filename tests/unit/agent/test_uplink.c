/*
 * test_uplink.c — agent/uplink against an in-process fake hub (a kt_net
 * WebSocket endpoint speaking the sync codec) on 127.0.0.1, port 0:
 *  - a hub that welcomes and then drops every session does not reset the
 *    reconnect backoff: the attempt count keeps growing (no storm);
 *  - a Reject{BUSY, retry_after_ms} delays the next attempt by at least
 *    retry_after_ms, even when reconnect.cap_ms is smaller;
 *  - shutdown leaves uv_loop_close() == 0.
 * Assertions are on counts and logged delays, never on elapsed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cache.h"
#include "kt/buf.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "sync/msg.h"
#include "uplink.h"

typedef enum hub_mode { HUB_WELCOME_THEN_DROP, HUB_BUSY } hub_mode;

typedef struct fake_hub {
    hub_mode mode;
    int sessions; /* Hellos received */
    uint32_t retry_after_ms;
} fake_hub;

static void hub_on_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    fake_hub *h = user;
    sync_msg *in = NULL;
    kt_err err = { 0 };
    if (sync_msg_decode(&in, data, len, NULL, &err) != KT_OK) {
        kt_ws_conn_close(c, 1002, "bad message");
        return;
    }
    if (in->type != SYNC_MSG_HELLO) {
        sync_msg_free(in);
        return;
    }
    h->sessions++;
    sync_msg out;
    memset(&out, 0, sizeof out);
    if (h->mode == HUB_BUSY && h->sessions == 1) {
        out.type = SYNC_MSG_REJECT;
        out.u.reject.code = SYNC_REJECT_BUSY;
        out.u.reject.retry_after_ms = h->retry_after_ms;
        out.u.reject.message = "busy";
    } else {
        out.type = SYNC_MSG_WELCOME;
        out.u.welcome.proto = 1;
        out.u.welcome.hub_id = "fake-hub";
        out.u.welcome.graph_revision = in->u.hello.graph_revision;
        out.u.welcome.mode = SYNC_MODE_UP_TO_DATE;
        out.u.welcome.heartbeat_ms = 1000;
    }
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    assert_int_equal(sync_msg_encode(&out, &b, &err), KT_OK);
    kt_ws_conn_send(c, b.data, b.len);
    kt_buf_fini(&b);
    sync_msg_free(in);
    if (h->mode == HUB_WELCOME_THEN_DROP || h->sessions == 1) {
        kt_ws_conn_close(c, 1011, "fake hub drops the session");
    }
}

static void hub_on_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    (void)c;
    (void)code;
    (void)reason;
    (void)user;
}

/* ---- log capture -------------------------------------------------------------- */

typedef struct retries {
    uint32_t in_ms[256];
    uint32_t attempt[256];
    size_t n;
    int busy_seen;
} retries;

static retries R;

static void sink(kt_log_level level, const char *line, size_t len, void *user)
{
    (void)level;
    (void)len;
    (void)user;
    if (strstr(line, "id=UPLINK-REJECT") != NULL && strstr(line, "code=busy") != NULL) {
        R.busy_seen = 1;
    }
    const char *p = strstr(line, "id=UPLINK-RETRY");
    if (p == NULL || R.n >= 256) {
        return;
    }
    const char *a = strstr(p, "in_ms=");
    const char *b = strstr(p, "attempt=");
    if (a != NULL && b != NULL) {
        R.in_ms[R.n] = (uint32_t)strtoul(a + 6, NULL, 10);
        R.attempt[R.n] = (uint32_t)strtoul(b + 8, NULL, 10);
        R.n++;
    }
}

/* ---- harness ------------------------------------------------------------------- */

typedef struct harness {
    uv_loop_t loop;
    uv_timer_t poll;
    kt_net *net;
    kt_metrics *metrics;
    agent_cache *cache;
    agent_uplink *up;
    fake_hub hub;
    int want_sessions;
    uint64_t deadline_ms;
    char dir[256];
    char db[300];
} harness;

static void on_poll(uv_timer_t *t)
{
    harness *h = t->data;
    if (h->hub.sessions >= h->want_sessions || uv_now(&h->loop) > h->deadline_ms) {
        uv_timer_stop(t);
        uv_stop(&h->loop);
    }
}

static void
run_against_fake_hub(harness *h, hub_mode mode, int sessions, uint32_t base_ms, uint32_t cap_ms)
{
    memset(&R, 0, sizeof R);
    const char *base = getenv("TMPDIR");
    snprintf(h->dir, sizeof h->dir, "%s/kt_test_uplink.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->db, sizeof h->db, "%s/agent.db", h->dir);
    kt_err err = { 0 };
    assert_int_equal(uv_loop_init(&h->loop), 0);
    h->metrics = kt_metrics_new();
    assert_int_equal(kt_net_new(&h->net, &h->loop, NULL, &err), KT_OK);
    kt_http_server *srv = NULL;
    kt_http_server_opts so = { .port = 0 };
    assert_int_equal(kt_http_server_new(&srv, h->net, &so, &err), KT_OK);
    h->hub.mode = mode;
    kt_ws_opts wo = { 0 };
    wo.on_message = hub_on_message;
    wo.on_close = hub_on_close;
    wo.user = &h->hub;
    assert_int_equal(kt_ws_endpoint(srv, "/sync", SYNC_WS_SUBPROTOCOL, &wo, &err), KT_OK);
    assert_int_equal(kt_http_server_start(srv, &err), KT_OK);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/sync", kt_http_server_port(srv));
    assert_int_equal(agent_cache_open(&h->cache, h->db, &err), KT_OK);
    agent_uplink_opts uo = { 0 };
    uo.site = "site-1";
    uo.token = "tok";
    uo.hub_url = url;
    uo.reconnect_base_ms = base_ms;
    uo.reconnect_cap_ms = cap_ms;
    uo.net = h->net;
    uo.cache = h->cache;
    uo.metrics = h->metrics;
    assert_int_equal(agent_uplink_new(&h->up, &uo, &err), KT_OK);
    h->want_sessions = sessions;
    h->deadline_ms = uv_now(&h->loop) + 60000;
    uv_timer_init(&h->loop, &h->poll);
    h->poll.data = h;
    uv_timer_start(&h->poll, on_poll, 10, 10);
    kt_log_set_sink(sink, NULL);
    agent_uplink_start(h->up);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    kt_log_set_sink(NULL, NULL);
}

static void shutdown_harness(harness *h)
{
    agent_uplink_stop(h->up);
    uv_close((uv_handle_t *)&h->poll, NULL);
    kt_net_free(h->net);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    agent_uplink_free(h->up);
    agent_cache_free(h->cache);
    kt_metrics_free(h->metrics);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    unlink(h->db);
    char p[400];
    snprintf(p, sizeof p, "%s-wal", h->db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", h->db);
    unlink(p);
    rmdir(h->dir);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_welcome_then_drop_keeps_backing_off(void **state)
{
    (void)state;
    harness *h = kt_xcalloc(1, sizeof *h);
    run_against_fake_hub(h, HUB_WELCOME_THEN_DROP, 6, 5, 60000);
    assert_true(h->hub.sessions >= 6);
    /* Every session was welcomed and dropped without a commit: the attempt
     * number must keep growing instead of restarting at 1 after each Welcome. */
    assert_true(R.n >= 5);
    for (size_t i = 1; i < R.n; i++) {
        assert_true(R.attempt[i] > R.attempt[i - 1]);
    }
    shutdown_harness(h);
    kt_free(h);
}

static void test_busy_waits_at_least_retry_after(void **state)
{
    (void)state;
    harness *h = kt_xcalloc(1, sizeof *h);
    h->hub.retry_after_ms = 700;
    /* cap 50 ms: without honouring retry_after_ms the retry would come sooner. */
    run_against_fake_hub(h, HUB_BUSY, 2, 10, 50);
    assert_true(h->hub.sessions >= 2);
    assert_true(R.busy_seen);
    assert_true(R.n >= 1);
    assert_true(R.in_ms[0] >= 700);
    shutdown_harness(h);
    kt_free(h);
}

int main(void)
{
    kt_log_set_level(KT_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_welcome_then_drop_keeps_backing_off),
        cmocka_unit_test(test_busy_waits_at_least_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
