/*
 * agent/main.c — ktwin-agent: the composition root.
 *
 *   ktwin-agent --config FILE [--port-file FILE]
 *   ktwin-agent --config FILE --print-config
 *   ktwin-agent --config-doc        (markdown key table for docs/config.md)
 *
 * Start order: config -> log level -> token -> loop -> metrics -> cache
 * (quick_check; a corrupt file is moved aside and counted in
 * ktwin_agent_cache_corrupt_total) -> dispatcher, outbox, services, MQTT
 * client (not started) -> kt_net + local API (listening; --port-file gets
 * the bound port) -> ready -> loop. The graph JSON stored in the cache is
 * served at once (before the hub answers, before any model exists); the
 * model is built from the cache in slices of WARM_SLICE objects,
 * WARM_PAUSE_MS apart (requests are served between slices), and then the MQTT bridge
 * subscribes and starts and the uplink connects (reconnects forever).
 * Every second, when the cache's objects changed, the graph JSON is
 * rendered and stored again (agent_view_persist_graph) for the next start.
 *
 * Reload (SIGHUP): the config file is parsed into a new struct and checked
 * whole; keys without KT_CFG_RELOADABLE must be unchanged (else nothing
 * changes: AGENT-RELOAD-FAIL). log.level takes effect at once, capacity.*
 * goes to the hub as a CapacityReport (AGENT-RELOAD).
 *
 * Shutdown (SIGINT/SIGTERM): uplink stop, signal handles closed, uv_stop;
 * then kt_net_free, run the loop dry, free the rest, uv_loop_close == 0
 * (STYLE.md §8).
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure, 2 usage/config error.
 * Thread: the loop thread only (plus libuv's own threadpool, unused here).
 */
#define KT_LOG_MOD "agent"
#include <MQTTAsync.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "api.h"
#include "cache.h"
#include "config.h"
#include "dispatch.h"
#include "kt/buf.h"
#include "kt/cfg.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "latest.h"
#include "uplink.h"
#include "view.h"

/* Objects loaded per slice while the model is built at start (~2 ms each), and the pause
 * between slices: the loop polls I/O meanwhile, so requests (the ~3 MB graph JSON goes out
 * in ~90 writes of 32 KiB, one per loop turn) are not held behind the whole build. */
#define WARM_SLICE    256
#define WARM_PAUSE_MS 1
/* A slice waits while a graph JSON answer went out less than WARM_YIELD_MS ago (it is
 * written over ~90 loop turns), for at most WARM_YIELD_MAX_MS in a row. */
#define WARM_YIELD_MS     40
#define WARM_YIELD_MAX_MS 100

/* Sockets of the agent's kt_net (the uplink and local API clients). lws sizes its per-fd
 * tables by this instead of RLIMIT_NOFILE (16 bytes per fd, allocated and zeroed at
 * start: 320 KiB at 20,000, 16 MiB at a container's 1048576). */
#define AGENT_NET_MAX_FDS 4096

struct agent_edge;

typedef struct agent_app {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup;
    uv_timer_t warm;    /* builds the view in slices, then starts MQTT and the uplink */
    uv_timer_t persist; /* stores the rendered graph JSON after commits */
    int warm_on, persist_on;
    uint64_t warm_yield_since; /* kt_clock_mono_ms when slices began yielding; 0 = not */
    agent_api *api;
    agent_view *view;
    agent_cache *cache;
    struct agent_edge *edge;
    uint64_t persist_gen; /* cache generation last stored (or tried); 0 = none yet */
    agent_uplink *uplink;
    const char *config_path;
    agent_cfg *cfg;
    int stopping;
} agent_app;

static void usage(FILE *out)
{
    fprintf(out, "usage: ktwin-agent --config FILE [--port-file FILE] [--print-config]\n"
                 "       ktwin-agent --config-doc\n");
}

/* Close the warm-up and persist handles (idempotent). */
static void app_handles_close(agent_app *app)
{
    if (app->warm_on) {
        uv_timer_stop(&app->warm);
        uv_close((uv_handle_t *)&app->warm, NULL);
        app->warm_on = 0;
    }
    if (app->persist_on) {
        uv_timer_stop(&app->persist);
        uv_close((uv_handle_t *)&app->persist, NULL);
        app->persist_on = 0;
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    agent_app *app = s->data;
    if (app->stopping) {
        return;
    }
    app->stopping = 1;
    KT_LOG(KT_LOG_NOTICE, "AGENT-STOP", "signal=%d", signum);
    app_handles_close(app);
    agent_uplink_stop(app->uplink);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sighup, NULL);
    uv_stop(&app->loop);
}

/* SIGHUP: parse, check everything, then swap; on any problem the old config stays. */
static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    agent_app *app = s->data;
    agent_cfg next;
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);
    kt_err err = { 0 };
    kt_status st = agent_config_load(&next, app->config_path, &errs, &err);
    if (st == KT_OK) {
        st = kt_cfg_reload_check(agent_config_table(), app->cfg, &next, &errs, &err);
        if (st != KT_OK) {
            agent_config_fini(&next);
        }
    }
    if (st != KT_OK) {
        char q[512];
        KT_LOG(KT_LOG_ERR, "AGENT-RELOAD-FAIL", "config=%s err=%s", app->config_path,
               kt_log_quote(q, sizeof q, errs.len > 0 ? errs.data : err.msg));
        kt_buf_fini(&errs);
        return;
    }
    kt_buf_fini(&errs);
    int cap_changed =
        next.cpu_millis != app->cfg->cpu_millis || next.memory_bytes != app->cfg->memory_bytes;
    agent_config_fini(app->cfg);
    *app->cfg = next;
    kt_log_set_level((kt_log_level)kt_log_level_parse(app->cfg->log_level));
    if (cap_changed) {
        agent_uplink_set_capacity(app->uplink, (uint32_t)app->cfg->cpu_millis,
                                  (uint64_t)app->cfg->memory_bytes);
    }
    KT_LOG(KT_LOG_NOTICE, "AGENT-RELOAD", "config=%s log_level=%s cpu_millis=%lld memory_bytes=%zu",
           app->config_path, app->cfg->log_level, (long long)app->cfg->cpu_millis,
           app->cfg->memory_bytes);
}

static int write_port_file(const char *path, int port)
{
    kt_buf b;
    kt_buf_init(&b, 64);
    kt_buf_printf(&b, "%d\n", port);
    kt_err err = { 0 };
    kt_status st = kt_buf_write_file(&b, path, &err);
    kt_buf_fini(&b);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-PORT-FILE", "path=%s err=\"%s\"", path, err.msg);
        return -1;
    }
    return 0;
}

/* ---- event dispatcher wiring (helper dispatch, issue 4) ----------------------------------
 * The outbox (agent/outbox.h), the latest state, the dispatcher, the twin services
 * (plugins, HTTP caller) and KTWIN's ingress / event-store routes (svc/api.h). The MQTT
 * bridge (helper edge) sets ev.mqtt and uses ev.outbox and agent_dispatch_mqtt_cb. */
typedef struct agent_ev {
    agent_outbox *outbox;
    agent_latest *latest;
    agent_dispatch *dispatch;
    svc_plugin_host *plugins;
    svc_caller *caller;
    svc_api *api;
    agent_mqtt *mqtt; /* NULL = no MQTT bridge: virtual events are dropped (no-mqtt) */
} agent_ev;

static kt_status ev_publish(const char *iface,
                            const char *instance,
                            const uint8_t *data,
                            size_t len,
                            kt_err *err,
                            void *user)
{
    agent_ev *ev = user;
    if (ev->mqtt == NULL) {
        return kt_err_set(err, KT_ECLOSED, "no MQTT bridge (mqtt.url unset)");
    }
    return agent_mqtt_publish_virtual(ev->mqtt, iface, instance, data, len, err);
}

static char *path_or(const char *path, const char *base, const char *suffix)
{
    if (path != NULL) {
        return kt_xstrdup(path);
    }
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *p = kt_xmalloc(n);
    snprintf(p, n, "%s%s", base, suffix);
    return p;
}

/* The uplink's downstream stream: the hub's commands and virtual events. */
static uint64_t ev_down_applied_seq(void *user)
{
    return agent_dispatch_down_applied_seq(user);
}

static kt_status
ev_down_apply(uint64_t first_seq, const sync_event *events, size_t n, kt_err *err, void *user)
{
    return agent_dispatch_down_apply(user, first_seq, events, n, err);
}

/* Whether a services.specs entry is an HTTP service. The caller (libcurl) is created only
 * then: ktwin-agent loads libcurl when it is first called (agent/curl_lazy.c), and a site
 * with in-process plugins only never maps it nor its ~25 dependencies (agent-rss,
 * agent-coldstart). A spec that does not parse is reported by agent_dispatch_add_services. */
static bool need_http_caller(const agent_cfg *cfg)
{
    bool need = false;
    for (size_t i = 0; i < cfg->services_specs.n && !need; i++) {
        svc_service s;
        kt_err e = { 0 };
        if (svc_service_parse(&s, cfg->services_specs.items[i], &e) == KT_OK) {
            need = s.kind != SVC_SERVICE_PLUGIN;
            svc_service_fini(&s);
        }
    }
    return need;
}

static kt_status ev_start(agent_ev *ev,
                          const agent_cfg *cfg,
                          uv_loop_t *loop,
                          agent_view *view,
                          agent_cache *cache,
                          kt_metrics *metrics,
                          kt_err *err)
{
    char *opath = path_or(cfg->outbox_path, cfg->cache_path, "-outbox");
    agent_outbox_opts oo = { .path = opath,
                             .max_bytes = cfg->outbox_max_bytes,
                             .low_water_bytes = cfg->outbox_low_water_bytes,
                             .metrics = metrics };
    kt_status st = agent_outbox_open(&ev->outbox, &oo, err);
    kt_free(opath);
    if (st != KT_OK) {
        return st;
    }
    char *lpath = path_or(cfg->latest_path, cfg->cache_path, "-latest");
    st = agent_latest_open(&ev->latest, lpath, loop, err);
    kt_free(lpath);
    if (st != KT_OK) {
        return st;
    }
    agent_dispatch_opts dopts = { .site = cfg->site,
                                  .view = view,
                                  .cache = cache,
                                  .outbox = ev->outbox,
                                  .latest = ev->latest,
                                  .publish_virtual = ev_publish,
                                  .publish_user = ev,
                                  .metrics = metrics,
                                  .max_depth = (uint32_t)cfg->services_max_depth,
                                  .max_data_bytes = cfg->services_max_data_bytes };
    st = agent_dispatch_new(&ev->dispatch, &dopts, err);
    if (st != KT_OK) {
        return st;
    }
    svc_plugin_host_opts popts = { .metrics = metrics,
                                   .graph = agent_dispatch_graph_cb,
                                   .store = agent_dispatch_store_ops(ev->dispatch),
                                   .user = ev->dispatch };
    st = svc_plugin_host_new(&ev->plugins, &popts, err);
    if (st == KT_OK && need_http_caller(cfg)) {
        svc_caller_opts copts = { .metrics = metrics,
                                  .connect_timeout_ms =
                                      (uint32_t)cfg->services_connect_timeout_ms };
        st = svc_caller_new(&ev->caller, loop, &copts, err);
    }
    if (st != KT_OK) {
        return st;
    }
    agent_dispatch_set_services(ev->dispatch, ev->plugins, ev->caller);
    return agent_dispatch_add_services(ev->dispatch, (const char *const *)cfg->services_specs.items,
                                       cfg->services_specs.n, err);
}

static kt_status
ev_mount(agent_ev *ev, kt_http_server *srv, const agent_cfg *cfg, kt_metrics *m, kt_err *err)
{
    svc_api_opts aopts = { .metrics = m, .max_data_bytes = cfg->services_max_data_bytes };
    return svc_api_mount(&ev->api, srv, agent_dispatch_api_ops(ev->dispatch), &aopts, err);
}

/* Before the loop runs dry: pending HTTP calls end (their uv handles close). */
static void ev_stop(agent_ev *ev)
{
    svc_caller_free(ev->caller);
    ev->caller = NULL;
    if (ev->dispatch != NULL) {
        agent_dispatch_set_services(ev->dispatch, ev->plugins, NULL);
    }
}

/* After kt_net_free (routes hold the api) and before the last uv_run (latest's uv handle). */
static void ev_free(agent_ev *ev)
{
    svc_api_free(ev->api);
    svc_plugin_host_free(ev->plugins);
    agent_dispatch_free(ev->dispatch);
    agent_latest_free(ev->latest);
    agent_outbox_free(ev->outbox);
    memset(ev, 0, sizeof *ev);
}

/* ---- MQTT bridge wiring (helper edge, issue 4) --------------------------------------------
 * agent/mqtt.h on the site broker (mqtt.url; unset = no bridge): device events go through
 * agent_dispatch_mqtt_cb inside the journal drain transaction; the ingested interfaces follow
 * the cache (checked every second, re-subscribed when the graph or placement changed). */
typedef struct agent_edge {
    agent_mqtt *mqtt;
    uv_timer_t timer;
    bool timer_on;
    uint64_t gen; /* cache generation + placement generation last subscribed */
    agent_ev *ev;
    agent_cache *cache;
} agent_edge;

static void edge_set_interfaces(agent_edge *e)
{
    char **names = NULL;
    size_t n = 0;
    kt_err err = { 0 };
    if (agent_dispatch_ingest_interfaces(e->ev->dispatch, &names, &n, &err) != KT_OK ||
        agent_mqtt_set_interfaces(e->mqtt, (const char *const *)names, n, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-MQTT-IFACES", "err=\"%s\"", err.msg);
    }
    agent_dispatch_names_free(names, n);
}

static void edge_on_timer(uv_timer_t *t)
{
    agent_edge *e = t->data;
    uint64_t gen = agent_cache_generation(e->cache) + agent_cache_placement_generation(e->cache);
    if (gen != e->gen) {
        e->gen = gen;
        edge_set_interfaces(e);
    }
}

static kt_status edge_start(agent_edge *e,
                            agent_ev *ev,
                            const agent_cfg *cfg,
                            uv_loop_t *loop,
                            agent_cache *cache,
                            kt_metrics *metrics,
                            kt_err *err)
{
    e->ev = ev;
    e->cache = cache;
    if (cfg->mqtt_url == NULL) {
        KT_LOG(KT_LOG_NOTICE, "AGENT-MQTT-OFF", "reason=\"mqtt.url unset\"");
        return KT_OK;
    }
    char cid[300];
    snprintf(cid, sizeof cid, "ktwin-agent-%s", cfg->site);
    char *jdir = path_or(cfg->mqtt_journal_dir, cfg->cache_path, ".journal");
    agent_mqtt_opts mo = { .url = cfg->mqtt_url,
                           .client_id = cfg->mqtt_client_id != NULL ? cfg->mqtt_client_id : cid,
                           .username = cfg->mqtt_username,
                           .password_file = cfg->mqtt_password_file,
                           .ca_file = cfg->mqtt_ca_file,
                           .qos = (int)cfg->mqtt_qos,
                           .keepalive_s = (uint32_t)(cfg->mqtt_keepalive_ms / 1000),
                           .max_payload_bytes = cfg->mqtt_max_payload_bytes,
                           .reconnect_base_ms = (uint32_t)cfg->reconnect_base_ms,
                           .reconnect_cap_ms = (uint32_t)cfg->reconnect_cap_ms,
                           .journal_dir = jdir,
                           .batch_max = (size_t)cfg->mqtt_batch_max,
                           .outbox = ev->outbox,
                           .metrics = metrics,
                           .on_event = agent_dispatch_mqtt_cb,
                           .user = ev->dispatch };
    kt_status st = agent_mqtt_new(&e->mqtt, loop, &mo, err);
    kt_free(jdir);
    if (st != KT_OK) {
        return st;
    }
    ev->mqtt = e->mqtt;
    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->timer_on = true;
    return KT_OK;
}

/* Once the view is built: subscribe the ingested interfaces and start (journal replay). */
static kt_status edge_go(agent_edge *e, kt_err *err)
{
    if (e->mqtt == NULL) {
        return KT_OK;
    }
    e->gen = agent_cache_generation(e->cache) + agent_cache_placement_generation(e->cache);
    edge_set_interfaces(e);
    uv_timer_start(&e->timer, edge_on_timer, 1000, 1000);
    return agent_mqtt_start(e->mqtt, err);
}

/* Before the loop runs dry: paho stops, the last journal records are committed. */
static void edge_stop(agent_edge *e)
{
    if (e->timer_on) {
        /* uv_timer_stop is a no-op on a timer edge_go never started. */
        uv_timer_stop(&e->timer);
        uv_close((uv_handle_t *)&e->timer, NULL);
        e->timer_on = false;
    }
    if (e->mqtt != NULL) {
        agent_mqtt_stop(e->mqtt, NULL, NULL);
    }
}

/* Give freed heap pages back (after a model build or a graph rendering, the largest
 * temporary buffers): glibc keeps them resident otherwise, and later peaks add to them. */
static void heap_trim(void)
{
    (void)malloc_trim(0);
}

/* Every second: store the graph JSON again once the cached objects changed. */
static void on_persist(uv_timer_t *t)
{
    agent_app *app = t->data;
    uint64_t gen = agent_cache_generation(app->cache);
    if (app->warm_on || gen == app->persist_gen || agent_cache_in_snapshot(app->cache)) {
        return; /* the start-up build in slices is not overtaken */
    }
    app->persist_gen = gen; /* once per generation, even when it fails */
    kt_err err = { 0 };
    if (agent_view_persist_graph(app->view, &err) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "AGENT-GRAPH-PERSIST", "err=\"%s\"", err.msg);
    }
    heap_trim();
}

/* One slice of the start-up model build per loop turn; then MQTT and the uplink start. */
static void on_warm(uv_timer_t *h)
{
    agent_app *app = h->data;
    uint64_t now = kt_clock_mono_ms();
    uint64_t last = agent_api_last_graph_ms(app->api);
    if (last != 0 && now - last < WARM_YIELD_MS) {
        if (app->warm_yield_since == 0) {
            app->warm_yield_since = now;
        }
        if (now - app->warm_yield_since < WARM_YIELD_MAX_MS) {
            uv_timer_start(&app->warm, on_warm, WARM_PAUSE_MS, 0);
            return;
        }
    }
    app->warm_yield_since = 0;
    int done = 0;
    kt_err err = { 0 };
    if (agent_view_step(app->view, WARM_SLICE, &done, &err) != KT_OK) {
        /* Served anyway: requests retry the build and answer 500 while it fails. */
        KT_LOG(KT_LOG_ERR, "VIEW-BUILD-FAIL", "err=\"%s\"", err.msg);
        done = 1;
    }
    if (!done) {
        uv_timer_start(&app->warm, on_warm, WARM_PAUSE_MS, 0);
        return;
    }
    uv_close((uv_handle_t *)&app->warm, NULL);
    app->warm_on = 0;
    KT_LOG(KT_LOG_INFO, "AGENT-WARM", "instances=%zu builds=%llu",
           agent_view_n_instances(app->view), (unsigned long long)agent_view_builds(app->view));
    memset(&err, 0, sizeof err);
    if (edge_go(app->edge, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-MQTT", "err=\"%s\"", err.msg);
    }
    agent_uplink_start(app->uplink);
    on_persist(&app->persist); /* a start without a stored graph JSON stores it now */
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *port_file = NULL;
    int print_config = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print_config = 1;
        } else if (strcmp(argv[i], "--config-doc") == 0) {
            kt_buf b;
            kt_buf_init(&b, 1 << 20);
            kt_status st = kt_cfg_doc_markdown(agent_config_table(), AGENT_CONFIG_ENV_PREFIX, &b);
            if (st == KT_OK) {
                fwrite(b.data, 1, b.len, stdout);
            }
            kt_buf_fini(&b);
            return st == KT_OK ? 0 : 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ktwin-agent: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL) {
        usage(stderr);
        return 2;
    }

    /* ---- memory (agent-rss): one malloc arena for every thread (paho's two threads each
     * touched an arena of their own), and a fixed mmap threshold so that buffers above it
     * (graph JSON, snapshot frames) go back to the system when freed instead of raising the
     * threshold and staying in the heap. */
    (void)mallopt(M_ARENA_MAX, 1);
    (void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* paho would run OpenSSL's global init (config file, providers, error strings: ~3.5 MiB
     * of libcrypto pages touched) in MQTTAsync_create even for tcp:// brokers; OpenSSL 3
     * initialises itself on first use, so a TLS broker or hub still works (agent-rss). */
    MQTTAsync_init_options mqtt_init = MQTTAsync_init_options_initializer;
    mqtt_init.do_openssl_init = 0;
    MQTTAsync_global_init(&mqtt_init);

    /* ---- configuration */
    agent_cfg cfg;
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);
    kt_err err = { 0 };
    kt_status st = agent_config_load(&cfg, config_path, &errs, &err);
    if (st != KT_OK) {
        if (errs.len > 0) {
            fprintf(stderr, "%s", errs.data);
        } else {
            fprintf(stderr, "%s: %s\n", config_path, err.msg);
        }
        kt_buf_fini(&errs);
        return 2;
    }
    kt_buf_fini(&errs);
    if (print_config) {
        kt_buf b;
        kt_buf_init(&b, 1 << 20);
        kt_cfg_dump(agent_config_table(), &cfg, &b);
        fwrite(b.data != NULL ? b.data : "", 1, b.len, stdout);
        kt_buf_fini(&b);
        agent_config_fini(&cfg);
        return 0;
    }
    kt_log_set_level((kt_log_level)kt_log_level_parse(cfg.log_level));
    char *token = NULL;
    st = agent_config_read_token(&cfg, &token, &err);
    if (st != KT_OK) {
        fprintf(stderr, "%s: hub.token_file: %s\n", config_path, err.msg);
        agent_config_fini(&cfg);
        return 2;
    }

    /* ---- loop, metrics, cache, view */
    int rc = 1;
    agent_app app;
    memset(&app, 0, sizeof app);
    uv_loop_init(&app.loop);
    kt_metrics *metrics = kt_metrics_new();
    kt_metric *m_corrupt = NULL;
    kt_metrics_counter(&m_corrupt, metrics, "ktwin_agent_cache_corrupt_total",
                       "Corrupt cache files moved aside at start", NULL, &err);
    agent_cache *cache = NULL;
    agent_view *view = NULL;
    kt_net *net = NULL;
    agent_api *api = NULL;
    agent_ev ev;             /* event dispatcher wiring (helper dispatch) */
    agent_edge edge = { 0 }; /* MQTT bridge wiring (helper edge) */
    memset(&ev, 0, sizeof ev);
    memset(&err, 0, sizeof err);
    st = agent_cache_open(&cache, cfg.cache_path, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "CACHE-OPEN-FAIL", "path=%s err=\"%s\"", cfg.cache_path, err.msg);
        goto out;
    }
    if (agent_cache_moved_aside(cache) != NULL) {
        kt_metrics_inc(m_corrupt);
    }
    view = agent_view_new(cache); /* built in slices once the loop runs (on_warm) */

    /* ---- event dispatcher, latest state, outbox, twin services (helper dispatch) */
    st = ev_start(&ev, &cfg, &app.loop, view, cache, metrics, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-DISPATCH", "err=\"%s\"", err.msg);
        rc = 2;
        goto out;
    }
    /* ---- MQTT bridge (helper edge) */
    st = edge_start(&edge, &ev, &cfg, &app.loop, cache, metrics, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-MQTT", "err=\"%s\"", err.msg);
        rc = 2;
        goto out;
    }

    /* ---- local API */
    /* A ws:// hub: no TLS anywhere on the agent's net (its API is plain HTTP), so OpenSSL is
     * never initialised (agent-rss). hub.url is not reloadable. */
    kt_net_opts nopts = { .metrics = metrics,
                          .no_tls = cfg.hub_url != NULL && strncmp(cfg.hub_url, "wss://", 6) != 0,
                          .max_fds = AGENT_NET_MAX_FDS };
    st = kt_net_new(&net, &app.loop, &nopts, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-NET", "err=\"%s\"", err.msg);
        goto out;
    }
    kt_http_server_opts sopts = { .name = "agent-api",
                                  .bind_addr = cfg.listen_address,
                                  .port = (int)cfg.listen_port };
    kt_http_server *srv = NULL;
    st = kt_http_server_new(&srv, net, &sopts, &err);
    if (st == KT_OK) {
        st = agent_api_new(&api, srv, view, metrics, cfg.site, &err);
    }
    if (st == KT_OK) {
        st = ev_mount(&ev, srv, &cfg, metrics, &err); /* POST /, /api/v1/twin-events */
    }
    if (st == KT_OK) {
        st = kt_http_server_start(srv, &err);
    }
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-LISTEN", "address=%s port=%lld err=\"%s\"", cfg.listen_address,
               (long long)cfg.listen_port, err.msg);
        goto out;
    }
    int port = kt_http_server_port(srv);
    agent_api_set_ready(api, 1);
    if (port_file != NULL && write_port_file(port_file, port) != 0) {
        goto out;
    }
    KT_LOG(KT_LOG_NOTICE, "AGENT-START",
           "site=%s listen=%s:%d cache=%s graph_revision=%llu instances=%llu hub=%s", cfg.site,
           cfg.listen_address, port, cfg.cache_path,
           (unsigned long long)agent_cache_graph_revision(cache),
           (unsigned long long)agent_cache_count(cache, AGENT_KIND_INSTANCE), cfg.hub_url);

    /* ---- uplink */
    agent_uplink_opts uopts = {
        .site = cfg.site,
        .token = token,
        .hub_url = cfg.hub_url,
        .ca_file = cfg.hub_ca_file,
        .connect_timeout_ms = (uint32_t)cfg.hub_connect_timeout_ms,
        .max_message_bytes = cfg.hub_max_message_bytes,
        .batch_events = (uint32_t)cfg.hub_batch_events,
        .cpu_millis = (uint32_t)cfg.cpu_millis,
        .memory_bytes = (uint64_t)cfg.memory_bytes,
        .reconnect_base_ms = (uint32_t)cfg.reconnect_base_ms,
        .reconnect_cap_ms = (uint32_t)cfg.reconnect_cap_ms,
        .net = net,
        .cache = cache,
        .metrics = metrics,
        .outbox = ev.outbox,
        .down_applied_seq = ev_down_applied_seq,
        .down_apply = ev_down_apply,
        .down_user = ev.dispatch,
    };
    st = agent_uplink_new(&app.uplink, &uopts, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "AGENT-UPLINK", "err=\"%s\"", err.msg);
        goto out;
    }
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    uv_signal_init(&app.loop, &app.sighup);
    app.sighup.data = &app;
    app.config_path = config_path;
    app.cfg = &cfg;
    uv_signal_start(&app.sighup, on_sighup, SIGHUP);
    app.sigint.data = &app;
    app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    app.view = view;
    app.api = api;
    app.cache = cache;
    app.edge = &edge;
    app.persist_gen = 0; /* on_warm checks for a stored graph JSON once the model is built */
    uv_timer_init(&app.loop, &app.persist);
    app.persist.data = &app;
    app.persist_on = 1;
    uv_timer_start(&app.persist, on_persist, 1000, 1000);
    uv_timer_init(&app.loop, &app.warm);
    app.warm.data = &app;
    app.warm_on = 1;
    uv_timer_start(&app.warm, on_warm, 0, 0); /* then MQTT and the uplink */

    uv_run(&app.loop, UV_RUN_DEFAULT);
    rc = 0;

out:
    app_handles_close(&app);
    agent_uplink_stop(app.uplink);
    edge_stop(&edge); /* helper edge: paho first (STYLE §8 shutdown order) */
    ev_stop(&ev);
    if (!app.stopping && app.sigint.data != NULL) {
        uv_close((uv_handle_t *)&app.sigint, NULL);
        uv_close((uv_handle_t *)&app.sigterm, NULL);
        uv_close((uv_handle_t *)&app.sighup, NULL);
    }
    kt_net_free(net);
    ev_free(&ev);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    agent_mqtt_free(edge.mqtt); /* helper edge: its handles closed in the run above */
    agent_uplink_free(app.uplink);
    agent_api_free(api);
    agent_view_free(view);
    agent_cache_free(cache);
    int close_rc = uv_loop_close(&app.loop);
    if (close_rc != 0) {
        KT_LOG(KT_LOG_ERR, "AGENT-LOOP-CLOSE", "rc=%d err=%s", close_rc, uv_strerror(close_rc));
        rc = 1;
    }
    kt_metrics_free(metrics);
    if (token != NULL) {
        memset(token, 0, strlen(token));
    }
    kt_free(token);
    KT_LOG(KT_LOG_NOTICE, "AGENT-EXIT", "rc=%d", rc);
    agent_config_fini(&cfg);
    return rc;
}
