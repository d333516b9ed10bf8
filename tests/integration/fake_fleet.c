/*
 * fake_fleet.c — N lightweight sync agents in one process: a load generator
 * for the hub's /sync endpoint, speaking the real protocol (sync_client over
 * kt_net WebSockets), not a mock.
 *
 *   fake_fleet --url ws://127.0.0.1:PORT/sync --agents-file FILE --status FILE
 *              [--count N] [--token T] [--ca FILE] [--cpu-millis N]
 *              [--memory-bytes N] [--backoff-base-ms N] [--backoff-cap-ms N]
 *
 * Each agent takes one "<site> <token>" line of the agents file (the first
 * N with --count; --token replaces every token, to test refusal), keeps its
 * graph in memory (objects by kind and name; snapshots staged and swapped on
 * commit, deltas applied), reconnects with full-jitter backoff, and after a
 * Reject BUSY waits at least retry_after_ms. Every 200 ms (and at exit) the
 * fleet writes a JSON status file atomically:
 *   {"clients":N,"welcomed":W,"welcomes_total":..,"connects_total":..,
 *    "rejects":{"busy":..,"unauthenticated":..,"duplicate":..,"other":..},
 *    "sites":[{"site":S,"welcomed":bool,"rev":R,"ifaces":I,"instances":J,
 *              "placement_rev":P,"edge":E,"other_site":O,"welcomes":..,"busy":..}],
 *    "welcome_wall_ms":[t, ...]}          (every Welcome's wall-clock time)
 * SIGTERM/SIGINT stop it cleanly (exit 0).
 *
 * Thread: one libuv loop thread. Ownership: the fleet owns its clients.
 */
#define KT_LOG_MOD "fake_fleet"
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/err.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "kt/net.h"
#include "sync/backoff.h"
#include "sync/client.h"
#include "sync/msg.h"

#define OBJ_PRESENT ((void *)(uintptr_t)1)
#define OBJ_ABSENT  ((void *)(uintptr_t)2)

typedef struct ff_fleet ff_fleet;

/* An in-memory graph: "kind/name" -> present/absent (the map cannot delete). */
typedef struct ff_graph {
    kt_map objs;
    kt_arena keys;
    size_t n_ifaces, n_instances;
} ff_graph;

typedef struct ff_client {
    ff_fleet *fl;
    char *site;
    char *token;
    sync_client *sc;
    kt_ws_conn *conn;
    sync_backoff bo;
    uv_timer_t retry;
    ff_graph g;     /* committed */
    ff_graph stage; /* open snapshot */
    bool staging;
    uint64_t rev;
    uint64_t placement_rev;
    size_t n_edge, n_other; /* interfaces EDGE here / OTHER_SITE in the last placement */
    uint64_t welcomes, busy;
    bool welcomed;
    bool got_reject; /* this connection ended with a Reject */
} ff_client;

struct ff_fleet {
    uv_loop_t loop;
    kt_net *net;
    ff_client *c;
    size_t n;
    const char *url;
    const char *ca;
    const char *status;
    sync_capacity cap;
    uint32_t bo_base, bo_cap;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    bool stopping;
    uint64_t welcomes, connects, rej_busy, rej_unauth, rej_dup, rej_other;
    uint64_t *welcome_ms;
    size_t n_welcome_ms, cap_welcome_ms;
};

/* ---- in-memory graph ------------------------------------------------------------- */

static void g_init(ff_graph *g)
{
    kt_map_init(&g->objs);
    kt_arena_init(&g->keys, 64 * 1024);
    g->n_ifaces = g->n_instances = 0;
}

static void g_fini(ff_graph *g)
{
    kt_map_fini(&g->objs);
    kt_arena_fini(&g->keys);
}

static void g_put(ff_graph *g, const sync_object *o)
{
    char key[600];
    snprintf(key, sizeof key, "%d/%s", (int)o->kind, o->name);
    void *cur = kt_map_get(&g->objs, key);
    bool was = cur == OBJ_PRESENT;
    bool now = !o->deleted;
    if (cur == NULL) {
        if (!now) {
            return;
        }
        kt_map_put(&g->objs, kt_arena_strdup(&g->keys, key), OBJ_PRESENT);
    } else {
        kt_map_set(&g->objs, key, now ? OBJ_PRESENT : OBJ_ABSENT);
    }
    if (was != now) {
        size_t *n = o->kind == SYNC_KIND_TWIN_INTERFACE ? &g->n_ifaces : &g->n_instances;
        if (o->kind != SYNC_KIND_TWIN_INTERFACE && o->kind != SYNC_KIND_TWIN_INSTANCE) {
            return;
        }
        *n = now ? *n + 1 : *n - 1;
    }
}

/* ---- sync_client ops ------------------------------------------------------------- */

static kt_status op_send(const uint8_t *buf, size_t len, void *user)
{
    ff_client *c = user;
    return c->conn != NULL ? kt_ws_conn_send(c->conn, buf, len) : KT_ECLOSED;
}

static uint64_t op_now(void *user)
{
    (void)user;
    return kt_clock_mono_ms();
}

static uint64_t op_wall(void *user)
{
    (void)user;
    return kt_clock_wall_ms();
}

static uint64_t op_rev(void *user)
{
    return ((ff_client *)user)->rev;
}

static uint64_t op_prev(void *user)
{
    return ((ff_client *)user)->placement_rev;
}

static kt_status op_snap_begin(uint64_t revision, kt_err *err, void *user)
{
    ff_client *c = user;
    (void)revision;
    (void)err;
    if (c->staging) {
        g_fini(&c->stage);
    }
    g_init(&c->stage);
    c->staging = true;
    return KT_OK;
}

static kt_status op_snap_put(const sync_object *objs, size_t n, kt_err *err, void *user)
{
    ff_client *c = user;
    if (!c->staging) {
        return kt_err_set(err, KT_EINTERNAL, "snapshot_put without begin");
    }
    for (size_t i = 0; i < n; i++) {
        g_put(&c->stage, &objs[i]);
    }
    return KT_OK;
}

static kt_status op_snap_commit(uint64_t revision, kt_err *err, void *user)
{
    ff_client *c = user;
    if (!c->staging) {
        return kt_err_set(err, KT_EINTERNAL, "snapshot_commit without begin");
    }
    g_fini(&c->g);
    c->g = c->stage;
    c->staging = false;
    c->rev = revision;
    return KT_OK;
}

static void op_snap_abort(void *user)
{
    ff_client *c = user;
    if (c->staging) {
        g_fini(&c->stage);
        c->staging = false;
    }
}

static kt_status op_delta(const sync_delta *d, kt_err *err, void *user)
{
    ff_client *c = user;
    (void)err;
    for (size_t i = 0; i < d->n_objects; i++) {
        g_put(&c->g, &d->objects[i]);
    }
    c->rev = d->to_revision;
    return KT_OK;
}

static kt_status op_placement(const sync_placement *p, kt_err *err, void *user)
{
    ff_client *c = user;
    (void)err;
    size_t edge = 0, other = 0;
    for (size_t i = 0; i < p->n_interfaces; i++) {
        edge += p->interfaces[i].where == SYNC_WHERE_EDGE ? 1u : 0u;
        other += p->interfaces[i].where == SYNC_WHERE_OTHER_SITE ? 1u : 0u;
    }
    c->n_edge = edge;
    c->n_other = other;
    c->placement_rev = p->revision;
    return KT_OK;
}

static void op_welcome(const sync_welcome *w, void *user)
{
    ff_client *c = user;
    ff_fleet *fl = c->fl;
    (void)w;
    c->welcomed = true;
    c->welcomes++;
    fl->welcomes++;
    sync_backoff_reset(&c->bo);
    if (fl->n_welcome_ms == fl->cap_welcome_ms) {
        fl->cap_welcome_ms = fl->cap_welcome_ms == 0 ? 256 : fl->cap_welcome_ms * 2;
        fl->welcome_ms = kt_xrealloc(fl->welcome_ms, fl->cap_welcome_ms * sizeof *fl->welcome_ms);
    }
    fl->welcome_ms[fl->n_welcome_ms++] = kt_clock_wall_ms();
}

static const sync_client_ops ff_ops = {
    .send = op_send,
    .now_ms = op_now,
    .wall_ms = op_wall,
    .graph_revision = op_rev,
    .placement_revision = op_prev,
    .snapshot_begin = op_snap_begin,
    .snapshot_put = op_snap_put,
    .snapshot_commit = op_snap_commit,
    .snapshot_abort = op_snap_abort,
    .delta_apply = op_delta,
    .placement_apply = op_placement,
    .on_welcome = op_welcome,
};

/* ---- connections ----------------------------------------------------------------- */

static void connect_now(ff_client *c);

static void retry_cb(uv_timer_t *t)
{
    connect_now(t->data);
}

static void ws_open(kt_ws_conn *conn, void *user)
{
    ff_client *c = user;
    (void)conn;
    kt_err err = { 0 };
    if (sync_client_on_open(c->sc, &err) != KT_OK) {
        kt_ws_conn_close(c->conn, 1011, "hello failed");
    }
}

static void ws_message(kt_ws_conn *conn, const uint8_t *data, size_t len, void *user)
{
    ff_client *c = user;
    (void)conn;
    kt_err err = { 0 };
    kt_status st = sync_client_on_message(c->sc, data, len, &err);
    if (st != KT_OK) {
        c->got_reject = st == KT_ECLOSED;
        if (st != KT_ECLOSED) {
            KT_LOG(KT_LOG_WARN, "FLEET-SYNC-ERR", "site=%s status=%s err=\"%s\"", c->site,
                   kt_status_str(st), err.msg);
        }
        kt_ws_conn_close(c->conn, st == KT_ECLOSED ? 1000 : 1002, "client done");
    }
}

static void ws_close(kt_ws_conn *conn, int code, const char *reason, void *user)
{
    ff_client *c = user;
    ff_fleet *fl = c->fl;
    (void)conn;
    (void)code;
    (void)reason;
    sync_reject_code rc = sync_client_last_reject_code(c->sc);
    uint32_t after = sync_client_last_retry_after_ms(c->sc);
    bool rejected = c->got_reject;
    c->got_reject = false;
    sync_client_on_close(c->sc);
    c->conn = NULL;
    c->welcomed = false;
    uint32_t delay = sync_backoff_next(&c->bo);
    if (rejected) {
        switch (rc) {
        case SYNC_REJECT_BUSY:
            fl->rej_busy++;
            c->busy++;
            delay = delay > after ? delay : after;
            break;
        case SYNC_REJECT_UNAUTHENTICATED:
            fl->rej_unauth++;
            break;
        case SYNC_REJECT_DUPLICATE:
            fl->rej_dup++;
            break;
        default:
            fl->rej_other++;
            break;
        }
    }
    if (!fl->stopping) {
        uv_timer_start(&c->retry, retry_cb, delay, 0);
    }
}

static void connect_now(ff_client *c)
{
    ff_fleet *fl = c->fl;
    if (fl->stopping || c->conn != NULL) {
        return;
    }
    kt_ws_client_opts o = { 0 };
    o.url = fl->url;
    o.subprotocol = SYNC_WS_SUBPROTOCOL;
    o.tls_ca_file = fl->ca;
    o.connect_timeout_s = 10;
    o.ws.on_open = ws_open;
    o.ws.on_message = ws_message;
    o.ws.on_close = ws_close;
    o.ws.user = c;
    kt_err err = { 0 };
    fl->connects++;
    if (kt_ws_client_new(&c->conn, fl->net, &o, &err) != KT_OK) {
        c->conn = NULL;
        KT_LOG(KT_LOG_ERR, "FLEET-CONNECT-FAIL", "site=%s err=\"%s\"", c->site, err.msg);
        uv_timer_start(&c->retry, retry_cb, sync_backoff_next(&c->bo), 0);
    }
}

/* ---- status ---------------------------------------------------------------------- */

static void write_status(ff_fleet *fl)
{
    kt_buf b;
    kt_buf_init(&b, 256u * 1024u * 1024u);
    size_t welcomed = 0;
    for (size_t i = 0; i < fl->n; i++) {
        welcomed += fl->c[i].welcomed && fl->c[i].conn != NULL ? 1u : 0u;
    }
    (void)kt_buf_printf(&b,
                        "{\"clients\":%zu,\"welcomed\":%zu,\"welcomes_total\":%" PRIu64
                        ",\"connects_total\":%" PRIu64 ",\"rejects\":{\"busy\":%" PRIu64
                        ",\"unauthenticated\":%" PRIu64 ",\"duplicate\":%" PRIu64
                        ",\"other\":%" PRIu64 "},\"sites\":[",
                        fl->n, welcomed, fl->welcomes, fl->connects, fl->rej_busy, fl->rej_unauth,
                        fl->rej_dup, fl->rej_other);
    for (size_t i = 0; i < fl->n; i++) {
        const ff_client *c = &fl->c[i];
        (void)kt_buf_printf(
            &b,
            "%s{\"site\":\"%s\",\"welcomed\":%s,\"rev\":%" PRIu64
            ",\"ifaces\":%zu,\"instances\":%zu,\"placement_rev\":%" PRIu64
            ",\"edge\":%zu,\"other_site\":%zu,\"welcomes\":%" PRIu64 ",\"busy\":%" PRIu64 "}",
            i > 0 ? "," : "", c->site, c->welcomed && c->conn != NULL ? "true" : "false", c->rev,
            c->g.n_ifaces, c->g.n_instances, c->placement_rev, c->n_edge, c->n_other, c->welcomes,
            c->busy);
    }
    (void)kt_buf_puts(&b, "],\"welcome_wall_ms\":[");
    for (size_t i = 0; i < fl->n_welcome_ms; i++) {
        (void)kt_buf_printf(&b, "%s%" PRIu64, i > 0 ? "," : "", fl->welcome_ms[i]);
    }
    (void)kt_buf_puts(&b, "]}\n");
    kt_err err = { 0 };
    if (kt_buf_write_file(&b, fl->status, &err) != KT_OK) {
        KT_LOG(KT_LOG_ERR, "FLEET-STATUS-FAIL", "err=\"%s\"", err.msg);
    }
    kt_buf_fini(&b);
}

static void tick_cb(uv_timer_t *t)
{
    ff_fleet *fl = t->data;
    for (size_t i = 0; i < fl->n; i++) {
        ff_client *c = &fl->c[i];
        if (c->conn == NULL) {
            continue;
        }
        kt_err err = { 0 };
        kt_status st = sync_client_tick(c->sc, &err);
        if (st != KT_OK) {
            kt_ws_conn_close(c->conn, 1001, "timeout");
        }
    }
    write_status(fl);
}

static void stop_cb(uv_signal_t *s, int signum)
{
    ff_fleet *fl = s->data;
    (void)signum;
    if (fl->stopping) {
        return;
    }
    fl->stopping = true;
    write_status(fl);
    uv_timer_stop(&fl->tick);
    uv_close((uv_handle_t *)&fl->tick, NULL);
    uv_close((uv_handle_t *)&fl->sigterm, NULL);
    uv_close((uv_handle_t *)&fl->sigint, NULL);
    for (size_t i = 0; i < fl->n; i++) {
        uv_timer_stop(&fl->c[i].retry);
        uv_close((uv_handle_t *)&fl->c[i].retry, NULL);
    }
    kt_net_free(fl->net); /* on_close for every conn, synchronously */
    fl->net = NULL;
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(void)
{
    fputs("usage: fake_fleet --url URL --agents-file FILE --status FILE [--count N] [--token T]\n"
          "                  [--ca FILE] [--cpu-millis N] [--memory-bytes N]\n"
          "                  [--backoff-base-ms N] [--backoff-cap-ms N]\n",
          stderr);
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

static int load_agents(ff_fleet *fl, const char *path, uint64_t count, const char *token)
{
    kt_buf b;
    kt_buf_init(&b, 16u * 1024u * 1024u);
    kt_err err = { 0 };
    if (kt_buf_read_file(&b, path, &err) != KT_OK) {
        fprintf(stderr, "fake_fleet: %s\n", err.msg);
        kt_buf_fini(&b);
        return -1;
    }
    size_t cap = 0;
    char *save = b.data != NULL ? b.data : (char *)"";
    while (*save != '\0' && (count == 0 || fl->n < count)) {
        char *eol = strchr(save, '\n');
        if (eol != NULL) {
            *eol = '\0';
        }
        char site[256], tok[1100];
        if (save[0] != '#' && sscanf(save, "%255s %1099s", site, tok) == 2) {
            if (fl->n == cap) {
                cap = cap == 0 ? 64 : cap * 2;
                fl->c = kt_xrealloc(fl->c, cap * sizeof *fl->c);
            }
            ff_client *c = &fl->c[fl->n++];
            memset(c, 0, sizeof *c);
            c->site = kt_xstrdup(site);
            c->token = kt_xstrdup(token != NULL ? token : tok);
        }
        if (eol == NULL) {
            break;
        }
        save = eol + 1;
    }
    kt_buf_fini(&b);
    return 0;
}

int main(int argc, char **argv)
{
    ff_fleet fl;
    memset(&fl, 0, sizeof fl);
    const char *agents = NULL;
    const char *token = NULL;
    uint64_t count = 0, cpu = 4000, mem = 8ull << 30, base = 200, cap = 2000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            return usage();
        }
        i++;
        if (strcmp(a, "--url") == 0) {
            fl.url = v;
        } else if (strcmp(a, "--agents-file") == 0) {
            agents = v;
        } else if (strcmp(a, "--status") == 0) {
            fl.status = v;
        } else if (strcmp(a, "--token") == 0) {
            token = v;
        } else if (strcmp(a, "--ca") == 0) {
            fl.ca = v;
        } else if (strcmp(a, "--count") == 0 && parse_u64(v, &count) == 0) {
        } else if (strcmp(a, "--cpu-millis") == 0 && parse_u64(v, &cpu) == 0) {
        } else if (strcmp(a, "--memory-bytes") == 0 && parse_u64(v, &mem) == 0) {
        } else if (strcmp(a, "--backoff-base-ms") == 0 && parse_u64(v, &base) == 0) {
        } else if (strcmp(a, "--backoff-cap-ms") == 0 && parse_u64(v, &cap) == 0) {
        } else {
            return usage();
        }
    }
    if (fl.url == NULL || agents == NULL || fl.status == NULL || base == 0 || cap < base) {
        return usage();
    }
    if (load_agents(&fl, agents, count, token) != 0 || fl.n == 0) {
        fprintf(stderr, "fake_fleet: no agents in %s\n", agents);
        return 1;
    }
    fl.cap.has_cpu_millis = true;
    fl.cap.cpu_millis = (uint32_t)cpu;
    fl.cap.has_memory_bytes = true;
    fl.cap.memory_bytes = mem;
    uv_loop_init(&fl.loop);
    kt_err err = { 0 };
    if (kt_net_new(&fl.net, &fl.loop, NULL, &err) != KT_OK) {
        fprintf(stderr, "fake_fleet: %s\n", err.msg);
        return 1;
    }
    sync_backoff_opts bo = { .base_ms = (uint32_t)base, .cap_ms = (uint32_t)cap };
    for (size_t i = 0; i < fl.n; i++) {
        ff_client *c = &fl.c[i];
        c->fl = &fl;
        g_init(&c->g);
        sync_backoff_init(&c->bo, &bo);
        uv_timer_init(&fl.loop, &c->retry);
        c->retry.data = c;
        sync_client_opts so = { 0 };
        so.site = c->site;
        so.token = c->token;
        so.agent_version = "fake_fleet";
        so.capacity = &fl.cap;
        if (sync_client_new(&c->sc, &so, &ff_ops, c, &err) != KT_OK) {
            fprintf(stderr, "fake_fleet: site %s: %s\n", c->site, err.msg);
            return 1;
        }
        connect_now(c);
    }
    uv_timer_init(&fl.loop, &fl.tick);
    fl.tick.data = &fl;
    uv_timer_start(&fl.tick, tick_cb, 200, 200);
    uv_signal_init(&fl.loop, &fl.sigterm);
    uv_signal_init(&fl.loop, &fl.sigint);
    fl.sigterm.data = &fl;
    fl.sigint.data = &fl;
    uv_signal_start(&fl.sigterm, stop_cb, SIGTERM);
    uv_signal_start(&fl.sigint, stop_cb, SIGINT);
    uv_run(&fl.loop, UV_RUN_DEFAULT);
    uv_run(&fl.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fl.loop) == 0 ? 0 : 1;
    for (size_t i = 0; i < fl.n; i++) {
        ff_client *c = &fl.c[i];
        sync_client_free(c->sc);
        if (c->staging) {
            g_fini(&c->stage);
        }
        g_fini(&c->g);
        kt_free(c->site);
        kt_free(c->token);
    }
    kt_free(fl.c);
    kt_free(fl.welcome_ms);
    return rc;
}
