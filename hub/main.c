/*
 * hub/main.c — ktwin-hub, the composition root.
 *
 *   ktwin-hub [--config FILE] [--watch-dir DIR] [--port-file FILE]
 *             [--print-config] [--print-config-doc] [--help]
 *
 * Start order: config, data dir, loop, store + graph, metrics, kt_net and
 * the HTTP server, admin token, REST API, federation (hub_fed, before the
 * server starts, because it adds the /sync WebSocket endpoint), listen,
 * watch dir, Redis publisher, signals. The event plane (hub_events: event
 * store, KTWIN event API, broker ingress) is created after fed and before
 * listen, then handed to fed (hub_fed_set_events); it is freed after fed.
 * Shutdown (SIGINT/SIGTERM, STYLE §8): stop intake (signals, watch dir),
 * then the Redis publisher, then kt_net_free (lws context; closes every
 * sync connection), then fed, the event plane, the API, graph, store and
 * metrics, then run the loop until every handle has closed and
 * uv_loop_close() returns 0.
 *
 * Thread: the main thread runs the loop; everything here is loop-owned.
 */
#define KT_LOG_MOD "hub"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "hub/api.h"
#include "hub/config.h"
#include "hub/graph.h"
#include "hub/redis.h"
#include "hub/store.h"
#include "hub/watchdir.h"
#include "kt/buf.h"
#include "kt/cfg.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"
/* --- fed (helper "fed"): hub/fed.c is compiled in when CMake defines KT_HUB_HAVE_FED --- */
#ifdef KT_HUB_HAVE_FED
#include "hub/fed.h"
#endif
/* --- end fed --- */
/* --- hubev: the event plane (hub/events.c) when CMake defines KT_HUB_HAVE_EVENTS --- */
#ifdef KT_HUB_HAVE_EVENTS
#include "hub/events.h"
#endif
/* --- end hubev --- */

typedef struct hub_app {
    uv_loop_t loop;
    hub_cfg cfg;
    hub_store *store;
    hub_graph *graph;
    kt_metrics *metrics;
    kt_net *net;
    kt_http_server *srv;
    hub_api *api;
    hub_watchdir *watch;
    hub_redis *redis;
#ifdef KT_HUB_HAVE_FED
    hub_fed *fed;
#endif
#ifdef KT_HUB_HAVE_EVENTS
    hub_events *events; /* hubev */
#endif
    uv_signal_t sigint;
    uv_signal_t sigterm;
    int signals_on;
    int stopping;
} hub_app;

static void usage(FILE *out)
{
    fprintf(out, "usage: ktwin-hub [--config FILE] [--watch-dir DIR] [--port-file FILE]\n"
                 "                 [--print-config] [--print-config-doc] [--help]\n"
                 "Runs the KTWIN Edge cloud hub. Without --config it runs on defaults\n"
                 "(docs/config.md lists every key; hub/hub.example.yaml documents them).\n");
}

static kt_status mkdir_p(const char *path, kt_err *err)
{
    char tmp[4096];
    if (kt_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
        return kt_err_set(err, KT_EINVAL, "data_dir too long");
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", tmp);
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", tmp);
    }
    return KT_OK;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        KT_LOG(KT_LOG_WARN, "HUB-HANDLE-LEFT", "type=%s", uv_handle_type_name(h->type));
        uv_close(h, NULL);
    }
}

/* Stop intake, then everything in STYLE §8 order. The loop then runs dry. */
static void shutdown_app(hub_app *a)
{
    if (a->stopping) {
        return;
    }
    a->stopping = 1;
    if (a->signals_on) {
        uv_close((uv_handle_t *)&a->sigint, NULL);
        uv_close((uv_handle_t *)&a->sigterm, NULL);
        a->signals_on = 0;
    }
    if (a->api != NULL) {
        hub_api_set_ready(a->api, 0);
    }
    hub_watchdir_free(a->watch);
    a->watch = NULL;
    hub_redis_free(a->redis);
    a->redis = NULL;
    kt_net_free(a->net);
    a->net = NULL;
    a->srv = NULL;
#ifdef KT_HUB_HAVE_FED
    hub_fed_free(a->fed);
    a->fed = NULL;
#endif
#ifdef KT_HUB_HAVE_EVENTS
    hub_events_free(a->events); /* hubev: after fed (its sessions are gone) */
    a->events = NULL;
#endif
    hub_api_free(a->api);
    a->api = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    hub_app *a = s->data;
    KT_LOG(KT_LOG_NOTICE, "HUB-SIGNAL", "signal=%d msg=\"shutting down\"", signum);
    shutdown_app(a);
}

static kt_status write_port_file(const char *path, int port, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, 64);
    (void)kt_buf_printf(&b, "%d\n", port);
    kt_status st = kt_buf_write_file(&b, path, err);
    kt_buf_fini(&b);
    return st;
}

static kt_status start(hub_app *a, const char *watch_dir, const char *port_file, kt_err *err)
{
    kt_status st = mkdir_p(a->cfg.data_dir, err);
    if (st != KT_OK) {
        return st;
    }
    char db_path[4200];
    snprintf(db_path, sizeof(db_path), "%s/hub.db", a->cfg.data_dir);
    st = hub_store_open(&a->store, db_path, err);
    if (st != KT_OK) {
        return st;
    }
    st = hub_graph_new(&a->graph, a->store, err);
    if (st != KT_OK) {
        return st;
    }
    KT_LOG(KT_LOG_NOTICE, "HUB-GRAPH-LOADED", "db=%s revision=%llu objects=%zu instances=%zu",
           db_path, (unsigned long long)hub_graph_revision(a->graph), hub_graph_count(a->graph, 0),
           hub_graph_count(a->graph, HUB_KIND_INSTANCE));
    a->metrics = kt_metrics_new();
    kt_net_opts nopts = { 0 };
    nopts.metrics = a->metrics;
    st = kt_net_new(&a->net, &a->loop, &nopts, err);
    if (st != KT_OK) {
        return st;
    }
    kt_http_server_opts sopts = { 0 };
    sopts.name = "hub";
    sopts.bind_addr = a->cfg.listen.address;
    sopts.port = (int)a->cfg.listen.port;
    sopts.tls_cert_file = a->cfg.tls.cert_file;
    sopts.tls_key_file = a->cfg.tls.key_file;
    sopts.max_body_bytes = a->cfg.limits.max_body_bytes;
    st = kt_http_server_new(&a->srv, a->net, &sopts, err);
    if (st != KT_OK) {
        return st;
    }
    char *token = NULL;
    char *token_path = NULL;
    st =
        hub_api_token_load(&token, &token_path, a->cfg.auth.admin_token_file, a->cfg.data_dir, err);
    if (st != KT_OK) {
        return st;
    }
    if (token_path != NULL) {
        KT_LOG(KT_LOG_NOTICE, "HUB-ADMIN-TOKEN",
               "file=%s msg=\"admin token (auth.admin_token_file unset)\"", token_path);
    }
    st = hub_api_new(&a->api, a->srv, a->graph, a->metrics, token, err);
    memset(token, 0, strlen(token));
    kt_free(token);
    kt_free(token_path);
    if (st != KT_OK) {
        return st;
    }
    /* --- fed (helper "fed"): adds /sync and /api/v1/placement before the server starts --- */
#ifdef KT_HUB_HAVE_FED
    st = hub_fed_new(&a->fed, &a->loop, a->srv, a->graph, a->store, &a->cfg, a->metrics, err);
    if (st != KT_OK) {
        return st;
    }
#endif
    /* --- end fed --- */
    /* --- hubev: event store, KTWIN event API and broker ingress, event streams --- */
#ifdef KT_HUB_HAVE_EVENTS
    st = hub_events_new(&a->events, &a->loop, a->srv, a->graph, &a->cfg, a->metrics, err);
    if (st != KT_OK) {
        return st;
    }
    hub_fed_set_events(a->fed, a->events);
#endif
    /* --- end hubev --- */
    st = kt_http_server_start(a->srv, err);
    if (st != KT_OK) {
        return st;
    }
    int port = kt_http_server_port(a->srv);
    KT_LOG(KT_LOG_NOTICE, "HUB-LISTENING", "address=%s port=%d tls=%s", a->cfg.listen.address, port,
           a->cfg.tls.cert_file != NULL ? "on" : "off");
    if (port_file != NULL) {
        st = write_port_file(port_file, port, err);
        if (st != KT_OK) {
            return st;
        }
    }
    const char *wd = watch_dir != NULL ? watch_dir : a->cfg.watch_dir;
    if (wd != NULL) {
        st = hub_watchdir_new(&a->watch, &a->loop, a->graph, wd, (uint64_t)a->cfg.watch_debounce_ms,
                              a->metrics, err);
        if (st != KT_OK) {
            return st;
        }
    }
    if (a->cfg.redis.url != NULL) {
        hub_redis_opts ropts = { a->cfg.redis.url, (uint64_t)a->cfg.redis.reconnect_min_ms,
                                 (uint64_t)a->cfg.redis.reconnect_max_ms,
                                 (uint64_t)a->cfg.redis.publish_delay_ms };
        st = hub_redis_new(&a->redis, &a->loop, a->graph, &ropts, a->metrics, err);
        if (st != KT_OK) {
            return st;
        }
    }
    (void)uv_signal_init(&a->loop, &a->sigint);
    (void)uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a;
    a->sigterm.data = a;
    (void)uv_signal_start(&a->sigint, on_signal, SIGINT);
    (void)uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    a->signals_on = 1;
    hub_api_set_ready(a->api, 1);
    KT_LOG(KT_LOG_NOTICE, "HUB-READY", "revision=%llu",
           (unsigned long long)hub_graph_revision(a->graph));
    return KT_OK;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    const char *watch_dir = NULL;
    const char *port_file = NULL;
    int print_config = 0;
    int print_doc = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if ((strcmp(arg, "--config") == 0 || strcmp(arg, "-c") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(arg, "--watch-dir") == 0 && i + 1 < argc) {
            watch_dir = argv[++i];
        } else if (strcmp(arg, "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(arg, "--print-config") == 0) {
            print_config = 1;
        } else if (strcmp(arg, "--print-config-doc") == 0) {
            print_doc = 1;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ktwin-hub: unknown or incomplete argument \"%s\"\n", arg);
            usage(stderr);
            return 2;
        }
    }
    if (print_doc) {
        kt_buf b;
        kt_buf_init(&b, 1 << 20);
        if (kt_cfg_doc_markdown(hub_cfg_table(), HUB_CFG_ENV_PREFIX, &b) != KT_OK) {
            return 1;
        }
        fwrite(b.data, 1, b.len, stdout);
        kt_buf_fini(&b);
        return 0;
    }

    hub_app app;
    memset(&app, 0, sizeof(app));
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);
    kt_err err = { 0 };
    kt_status st = hub_cfg_load(&app.cfg, config, &errs, &err);
    if (st != KT_OK) {
        if (errs.len > 0) {
            fwrite(errs.data, 1, errs.len, stderr);
        } else {
            fprintf(stderr, "ktwin-hub: %s\n", err.msg);
        }
        kt_buf_fini(&errs);
        return 2;
    }
    kt_buf_fini(&errs);
    if (print_config) {
        kt_buf b;
        kt_buf_init(&b, 1 << 20);
        (void)kt_cfg_dump(hub_cfg_table(), &app.cfg, &b);
        fwrite(b.data, 1, b.len, stdout);
        kt_buf_fini(&b);
        hub_cfg_fini(&app.cfg);
        return 0;
    }
    int level = kt_log_level_parse(app.cfg.log.level);
    if (level < 0) {
        fprintf(stderr, "ktwin-hub: log.level: \"%s\" is not err, warn, notice, info or debug\n",
                app.cfg.log.level);
        hub_cfg_fini(&app.cfg);
        return 2;
    }
    kt_log_set_level((kt_log_level)level);
    signal(SIGPIPE, SIG_IGN);

    int rc = uv_loop_init(&app.loop);
    if (rc != 0) {
        fprintf(stderr, "ktwin-hub: uv_loop_init: %s\n", uv_strerror(rc));
        hub_cfg_fini(&app.cfg);
        return 1;
    }
    int exit_code = 0;
    st = start(&app, watch_dir, port_file, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "HUB-START-FAIL", "status=%s err=\"%s\"", kt_status_str(st), err.msg);
        exit_code = 1;
        shutdown_app(&app);
    } else {
        (void)uv_run(&app.loop, UV_RUN_DEFAULT);
        shutdown_app(&app); /* no-op after a signal */
    }
    (void)uv_run(&app.loop, UV_RUN_DEFAULT); /* close callbacks */
    hub_graph_free(app.graph);
    hub_store_free(app.store);
    kt_metrics_free(app.metrics);
    rc = uv_loop_close(&app.loop);
    if (rc != 0) {
        uv_walk(&app.loop, on_walk_close, NULL);
        (void)uv_run(&app.loop, UV_RUN_DEFAULT);
        rc = uv_loop_close(&app.loop);
        KT_LOG(KT_LOG_ERR, "HUB-LOOP-CLOSE", "msg=\"handles were left open\" rc=%d", rc);
        exit_code = 1;
    }
    hub_cfg_fini(&app.cfg);
    KT_LOG(KT_LOG_NOTICE, "HUB-STOPPED", "exit=%d", exit_code);
    return exit_code;
}
