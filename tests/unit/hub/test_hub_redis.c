/*
 * test_hub_redis.c — the Redis graph cache publisher against a real
 * redis-server (started on a free loopback port in a temp dir, stopped by
 * PID): keys at connect, only changed keys on a change, DEL when an
 * interface loses its last instance, reconnect + full republish after
 * Redis restarts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <hiredis/hiredis.h>

#include "hub/graph.h"
#include "hub/redis.h"
#include "hub/store.h"
#include "hub_test_util.h"
#include "kt/buf.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "model/graph.h"

extern char **environ;

#define IFACE(name) \
    "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec: {}\n---\n"
#define INST(name, iface)                                                    \
    "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\nspec:\n  interface: " iface "\n---\n"

typedef struct fx {
    char dir[256];
    int port;
    pid_t redis_pid;
    uv_loop_t loop;
    hub_store *store;
    hub_graph *g;
    hub_redis *r;
    kt_metrics *metrics;
    uint64_t want_rounds;
} fx;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        close(s);
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

static redisContext *rc_connect(const fx *f)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
    if (c != NULL && c->err != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int redis_up(void *user)
{
    redisContext *c = rc_connect(user);
    if (c == NULL) {
        return 0;
    }
    redisReply *rep = redisCommand(c, "PING");
    int ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    redisFree(c);
    return ok;
}

static void start_redis(fx *f)
{
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", f->port);
    char *argv[] = { "redis-server", "--port", port_s,  "--bind", "127.0.0.1",  "--save",  "",
                     "--appendonly", "no",     "--dir", f->dir,   "--loglevel", "warning", NULL };
    assert_int_equal(posix_spawnp(&f->redis_pid, "redis-server", NULL, NULL, argv, environ), 0);
    assert_true(tu_run_until(&f->loop, redis_up, f, 10000));
}

static void stop_redis(fx *f)
{
    if (f->redis_pid > 0) {
        kill(f->redis_pid, SIGTERM);
        int st = 0;
        (void)waitpid(f->redis_pid, &st, 0);
        f->redis_pid = 0;
    }
}

/* GET key: a kt_buf with the value (len 0 and data NULL when the key is absent). */
static int get_key(const fx *f, const char *key, kt_buf *out)
{
    kt_buf_reset(out);
    redisContext *c = rc_connect(f);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "GET %s", key);
    assert_non_null(rep);
    int found = rep->type == REDIS_REPLY_STRING;
    if (found) {
        assert_int_equal(kt_buf_append(out, rep->str, rep->len), KT_OK);
        assert_int_equal(kt_buf_putc(out, '\0'), KT_OK);
    }
    freeReplyObject(rep);
    redisFree(c);
    return found;
}

static int rounds_reached(void *user)
{
    fx *f = user;
    return hub_redis_rounds(f->r) >= f->want_rounds;
}

static void apply(fx *f, const char *text)
{
    hub_apply_result r;
    hub_apply_result_init(&r);
    kt_err err = { 0 };
    assert_int_equal(hub_graph_apply(f->g, "request", text, strlen(text), &r, &err), KT_OK);
    hub_apply_result_fini(&r);
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof *f);
    if (getenv("KT_TEST_DEBUG") != NULL) {
        kt_log_set_level(KT_LOG_DEBUG);
    }
    tu_mkdtemp(f->dir, sizeof f->dir, "hub-redis");
    f->port = free_port();
    char db[400];
    snprintf(db, sizeof db, "%s/hub.db", f->dir);
    kt_err err = { 0 };
    if (f->dir[0] == '\0' || f->port <= 0 || uv_loop_init(&f->loop) != 0 ||
        hub_store_open(&f->store, db, &err) != KT_OK ||
        hub_graph_new(&f->g, f->store, &err) != KT_OK) {
        return -1;
    }
    f->metrics = kt_metrics_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    hub_redis_free(f->r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    stop_redis(f);
    hub_graph_free(f->g);
    hub_store_free(f->store);
    kt_metrics_free(f->metrics);
    tu_rmtree(f->dir);
    kt_free(f);
    return 0;
}

static void expect_iface_key(fx *f, const char *iface, kt_buf *got)
{
    char key[300];
    snprintf(key, sizeof key, "twin_graph.%s", iface);
    assert_true(get_key(f, key, got));
    kt_buf want;
    kt_buf_init(&want, 1 << 24);
    assert_int_equal(model_graph_iface_to_json(hub_graph_model(f->g), iface, &want), KT_OK);
    assert_int_equal(kt_buf_putc(&want, '\0'), KT_OK);
    assert_string_equal(got->data, want.data);
    kt_buf_fini(&want);
}

static void test_publishes_keys_updates_and_deletes(void **state)
{
    fx *f = *state;
    apply(f, IFACE("city-pole") IFACE("city-neighborhood") INST("pole-1", "city-pole")
                 INST("nb-1", "city-neighborhood"));
    start_redis(f);
    /* A key left from an interface that no longer has instances (a previous hub run). */
    redisContext *c = rc_connect(f);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SET twin_graph.city-gone {}"));
    redisFree(c);
    hub_redis_opts o = { 0 };
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", f->port);
    o.url = url;
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 200;
    kt_err err = { 0 };
    assert_int_equal(hub_redis_new(&f->r, &f->loop, f->g, &o, f->metrics, &err), KT_OK);
    f->want_rounds = 1;
    assert_true(tu_run_until(&f->loop, rounds_reached, f, 10000));
    kt_buf got;
    kt_buf_init(&got, 1 << 24);
    assert_true(get_key(f, "twin_graph", &got));
    assert_string_equal(got.data, hub_graph_json(f->g, NULL));
    expect_iface_key(f, "city-pole", &got);
    expect_iface_key(f, "city-neighborhood", &got);
    assert_false(get_key(f, "twin_graph.city-gone", &got));
    kt_metric *pub = kt_metrics_find(f->metrics, "ktwin_hub_redis_publish_total", NULL);
    assert_int_equal(kt_metrics_value(pub), 4); /* 3 SET + the stale DEL */

    /* A change to one interface's instances writes twin_graph and that key only. */
    apply(f, INST("pole-2", "city-pole"));
    f->want_rounds = 2;
    assert_true(tu_run_until(&f->loop, rounds_reached, f, 10000));
    assert_int_equal(kt_metrics_value(pub), 6);
    expect_iface_key(f, "city-pole", &got);
    assert_non_null(strstr(got.data, "pole-2"));
    assert_true(get_key(f, "twin_graph", &got));
    assert_non_null(strstr(got.data, "pole-2"));

    /* The last neighborhood goes: its key is deleted. */
    hub_apply_result r;
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "nb-1", &r, &err), KT_OK);
    hub_apply_result_fini(&r);
    f->want_rounds = 3;
    assert_true(tu_run_until(&f->loop, rounds_reached, f, 10000));
    assert_false(get_key(f, "twin_graph.city-neighborhood", &got));
    expect_iface_key(f, "city-pole", &got);

    /* Redis restarts (empty): the hub reconnects and republishes everything. */
    stop_redis(f);
    start_redis(f);
    f->want_rounds = 4;
    assert_true(tu_run_until(&f->loop, rounds_reached, f, 20000));
    assert_true(get_key(f, "twin_graph", &got));
    assert_string_equal(got.data, hub_graph_json(f->g, NULL));
    expect_iface_key(f, "city-pole", &got);
    kt_metric *errs = kt_metrics_find(f->metrics, "ktwin_hub_redis_errors_total", NULL);
    assert_true(kt_metrics_value(errs) >= 1);
    kt_buf_fini(&got);
}

static void test_bad_url_is_refused(void **state)
{
    fx *f = *state;
    const char *bad[] = { "http://x",        "redis://",    "redis://h:0",
                          "redis://h:99999", "redis://h/x", "redis://u:p@h" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hub_redis_opts o = { bad[i], 10, 100, 0 };
        kt_err err = { 0 };
        hub_redis *r = NULL;
        assert_int_equal(hub_redis_new(&r, &f->loop, f->g, &o, NULL, &err), KT_EINVAL);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publishes_keys_updates_and_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
