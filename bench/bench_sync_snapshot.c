/*
 * bench_sync_snapshot.c — the sync-snapshot benchmark, in process: the hub
 * side (sync_server) sends a site's whole subgraph as a snapshot to the
 * agent side (sync_client + agent_store + agent_cache, the code ktwin-agent
 * runs), over an in-memory transport, until the agent has committed it to
 * SQLite.
 *
 *   bench_sync_snapshot CITY_DIR --db PATH [--expect-instances N] [--chunk-bytes N]
 *
 * CITY_DIR is `ktwin-sim model ... --format json` output (every document of
 * it is one object of the snapshot: the site is the whole city). Loading
 * and serialising the documents to the hub's compact JSON bodies is not
 * timed. Timed: Hello -> Welcome -> every SnapshotChunk encoded by the hub,
 * decoded and validated by the agent, written to SQLite, committed (WAL,
 * synchronous=NORMAL), Ack. The transport holds at most two messages in
 * flight (sync_server's KT_EAGAIN flow control), as a socket would.
 *
 * Prints one JSON object: seconds, ms, bytes (WebSocket payload bytes hub
 * -> agent), chunks, objects, instances, commit_ms (cache time, as
 * ktwin_agent_last_commit_ms reports it), peak_rss_mib.
 *
 * Thread: single-threaded. Exit 0 on success, 1 on failure, 2 on usage.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cache.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/node.h"
#include "store.h"
#include "sync/client.h"
#include "sync/msg.h"
#include "sync/server.h"

#define REVISION      1u
#define BATCH         512u
#define MAX_IN_FLIGHT 2u

/* ---- the documents -------------------------------------------------------------- */

typedef struct corpus {
    sync_object *objs;
    size_t n, cap;
    size_t n_instances;
    kt_arena arena;
} corpus;

static kt_status on_doc(const model_doc *doc, void *user)
{
    corpus *c = user;
    if (doc->root == NULL) {
        return KT_OK;
    }
    const char *kind = model_node_get_str(doc->root, "kind");
    const model_node *meta = model_node_get(doc->root, "metadata");
    const char *name = meta != NULL ? model_node_get_str(meta, "name") : NULL;
    if (kind == NULL || name == NULL) {
        return KT_OK;
    }
    sync_kind k = strcmp(kind, "TwinInterface") == 0     ? SYNC_KIND_TWIN_INTERFACE
                  : strcmp(kind, "TwinInstance") == 0    ? SYNC_KIND_TWIN_INSTANCE
                  : strcmp(kind, "PlacementPolicy") == 0 ? SYNC_KIND_PLACEMENT_POLICY
                                                         : SYNC_KIND_UNSPECIFIED;
    if (k == SYNC_KIND_UNSPECIFIED) {
        return KT_OK;
    }
    kt_buf b;
    kt_buf_init(&b, 16u << 20);
    kt_status st = model_node_to_json(doc->root, &b);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st;
    }
    if (c->n == c->cap) {
        c->cap = c->cap != 0 ? c->cap * 2 : 1024;
        c->objs = kt_xrealloc(c->objs, c->cap * sizeof *c->objs);
    }
    sync_object *o = &c->objs[c->n++];
    memset(o, 0, sizeof *o);
    o->kind = k;
    o->name = kt_arena_strdup(&c->arena, name);
    o->body = (const uint8_t *)kt_arena_strndup(&c->arena, b.data, b.len);
    o->body_len = b.len;
    o->revision = REVISION;
    c->n_instances += k == SYNC_KIND_TWIN_INSTANCE;
    kt_buf_fini(&b);
    return KT_OK;
}

static int load_dir(corpus *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "bench_sync_snapshot: cannot open %s\n", dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    kt_arena parse;
    kt_arena_init(&parse, 1u << 20);
    while ((e = readdir(d)) != NULL && rc == 0) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || !(l > 5 && (strcmp(e->d_name + l - 5, ".json") == 0 ||
                                               strcmp(e->d_name + l - 5, ".yaml") == 0))) {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        kt_buf b;
        kt_buf_init(&b, 1u << 30);
        kt_err err = { 0 };
        if (kt_buf_read_file(&b, path, &err) != KT_OK ||
            model_parse_any(&parse, path, b.data, b.len, NULL, on_doc, c, &err) != KT_OK) {
            fprintf(stderr, "bench_sync_snapshot: %s: %s\n", path, err.msg);
            rc = -1;
        }
        kt_buf_fini(&b);
        kt_arena_reset(&parse);
    }
    kt_arena_fini(&parse);
    closedir(d);
    return rc;
}

/* ---- in-memory transport ------------------------------------------------------------ */

typedef struct pipe_msg {
    uint8_t *data;
    size_t len;
} pipe_msg;

typedef struct pipe_q {
    pipe_msg *items;
    size_t head, tail, cap;
    size_t limit; /* 0 = unbounded */
    uint64_t bytes;
} pipe_q;

static size_t q_len(const pipe_q *q)
{
    return q->tail - q->head;
}

static kt_status q_push(pipe_q *q, const uint8_t *buf, size_t len)
{
    if (q->limit != 0 && q_len(q) >= q->limit) {
        return KT_EAGAIN;
    }
    if (q->tail == q->cap) {
        /* compact, then grow */
        size_t n = q_len(q);
        if (n > 0) {
            memmove(q->items, q->items + q->head, n * sizeof *q->items);
        }
        q->head = 0;
        q->tail = n;
        if (q->tail == q->cap) {
            q->cap = q->cap != 0 ? q->cap * 2 : 16;
            q->items = kt_xrealloc(q->items, q->cap * sizeof *q->items);
        }
    }
    uint8_t *copy = kt_xmalloc(len != 0 ? len : 1);
    memcpy(copy, buf, len);
    q->items[q->tail].data = copy;
    q->items[q->tail].len = len;
    q->tail++;
    q->bytes += len;
    return KT_OK;
}

typedef struct bench {
    corpus *docs;
    size_t next; /* snapshot cursor */
    pipe_q to_agent;
    pipe_q to_hub;
} bench;

/* hub side ops */
static kt_status hub_send(const uint8_t *buf, size_t len, void *user)
{
    return q_push(&((bench *)user)->to_agent, buf, len);
}

static uint64_t hub_now(void *user)
{
    (void)user;
    return kt_clock_mono_ms();
}

static uint64_t hub_wall(void *user)
{
    (void)user;
    return kt_clock_wall_ms();
}

static sync_auth_result hub_auth(const char *site, const char *token, void *user)
{
    (void)user;
    return strcmp(site, "site-1") == 0 && strcmp(token, "bench-token") == 0 ? SYNC_AUTH_OK
                                                                            : SYNC_AUTH_BAD_TOKEN;
}

static kt_status hub_plan(
    sync_mode *mode_out, uint64_t *revision_out, const sync_hello *hello, kt_err *err, void *user)
{
    (void)hello;
    (void)err;
    bench *b = user;
    b->next = 0;
    *mode_out = SYNC_MODE_SNAPSHOT;
    *revision_out = REVISION;
    return KT_OK;
}

static kt_status
hub_snapshot_next(const sync_object **objs_out, size_t *n_out, kt_err *err, void *user)
{
    (void)err;
    bench *b = user;
    size_t n = b->docs->n - b->next;
    if (n > BATCH) {
        n = BATCH;
    }
    *objs_out = b->docs->objs + b->next;
    *n_out = n;
    b->next += n;
    return KT_OK;
}

static kt_status hub_delta_next(const sync_delta **out, uint64_t from, kt_err *err, void *user)
{
    (void)from;
    (void)err;
    (void)user;
    *out = NULL;
    return KT_OK;
}

static kt_status hub_placement(const sync_placement **out, kt_err *err, void *user)
{
    (void)err;
    (void)user;
    *out = NULL;
    return KT_OK;
}

/* agent side transport */
static kt_status agent_send(const uint8_t *buf, size_t len, void *user)
{
    return q_push(&((bench *)user)->to_hub, buf, len);
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *db = NULL;
    long long expect = -1;
    size_t chunk_bytes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strcmp(argv[i], "--expect-instances") == 0 && i + 1 < argc) {
            expect = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--chunk-bytes") == 0 && i + 1 < argc) {
            chunk_bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (dir == NULL && argv[i][0] != '-') {
            dir = argv[i];
        } else {
            fprintf(stderr, "usage: bench_sync_snapshot CITY_DIR --db PATH [--expect-instances N] "
                            "[--chunk-bytes N]\n");
            return 2;
        }
    }
    if (dir == NULL || db == NULL) {
        fprintf(stderr, "usage: bench_sync_snapshot CITY_DIR --db PATH [--expect-instances N]\n");
        return 2;
    }
    kt_log_set_level(KT_LOG_WARN);
    corpus docs;
    memset(&docs, 0, sizeof docs);
    kt_arena_init(&docs.arena, 1u << 20);
    if (load_dir(&docs, dir) != 0) {
        return 1;
    }
    if (expect >= 0 && (long long)docs.n_instances != expect) {
        fprintf(stderr, "bench_sync_snapshot: %zu instances, expected %lld\n", docs.n_instances,
                expect);
        return 1;
    }
    /* A fresh cache for every run. */
    char side[4200];
    unlink(db);
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);

    bench b;
    memset(&b, 0, sizeof b);
    b.docs = &docs;
    b.to_agent.limit = MAX_IN_FLIGHT;
    kt_err err = { 0 };
    agent_cache *cache = NULL;
    if (agent_cache_open(&cache, db, &err) != KT_OK) {
        fprintf(stderr, "bench_sync_snapshot: %s\n", err.msg);
        return 1;
    }
    agent_store store;
    agent_store_init(&store, cache, NULL, agent_send, NULL, &b);
    sync_client_ops cops;
    agent_store_client_ops(&cops);
    sync_client_opts copts = { 0 };
    copts.site = "site-1";
    copts.token = "bench-token";
    copts.limits.max_message_bytes = 16u << 20;
    copts.limits.max_objects = 1000000;
    sync_client *client = NULL;
    sync_server_ops sops = { 0 };
    sops.send = hub_send;
    sops.now_ms = hub_now;
    sops.wall_ms = hub_wall;
    sops.auth = hub_auth;
    sops.plan = hub_plan;
    sops.snapshot_next = hub_snapshot_next;
    sops.delta_next = hub_delta_next;
    sops.placement = hub_placement;
    sync_server_opts sopts = { 0 };
    sopts.hub_id = "bench-hub";
    sopts.chunk_bytes = chunk_bytes;
    sync_server *server = NULL;
    if (sync_client_new(&client, &copts, &cops, &store, &err) != KT_OK ||
        sync_server_new(&server, &sopts, &sops, &b, &err) != KT_OK) {
        fprintf(stderr, "bench_sync_snapshot: %s\n", err.msg);
        return 1;
    }

    uint64_t t0 = kt_clock_mono_ns();
    kt_status st = sync_client_on_open(client, &err);
    while (st == KT_OK) {
        int moved = 0;
        while (st == KT_OK && q_len(&b.to_hub) > 0) {
            pipe_msg m = b.to_hub.items[b.to_hub.head++];
            st = sync_server_on_message(server, m.data, m.len, &err);
            kt_free(m.data);
            moved = 1;
        }
        while (st == KT_OK && q_len(&b.to_agent) > 0) {
            pipe_msg m = b.to_agent.items[b.to_agent.head++];
            st = sync_client_on_message(client, m.data, m.len, &err);
            kt_free(m.data);
            moved = 1;
        }
        if (st == KT_OK && sync_server_wants_writable(server)) {
            st = sync_server_writable(server, &err);
            moved = 1;
        }
        if (!moved) {
            break;
        }
    }
    uint64_t t1 = kt_clock_mono_ns();
    if (st != KT_OK) {
        fprintf(stderr, "bench_sync_snapshot: %s: %s\n", kt_status_str(st), err.msg);
        return 1;
    }
    const sync_server_stats *ss = sync_server_stats_get(server);
    uint64_t instances = agent_cache_count(cache, AGENT_KIND_INSTANCE);
    if (agent_cache_graph_revision(cache) != REVISION || instances != docs.n_instances ||
        sync_server_acked_graph_revision(server) != REVISION) {
        fprintf(stderr,
                "bench_sync_snapshot: agent at revision %llu with %llu instances (hub sent %zu), "
                "hub saw ack %llu\n",
                (unsigned long long)agent_cache_graph_revision(cache),
                (unsigned long long)instances, docs.n_instances,
                (unsigned long long)sync_server_acked_graph_revision(server));
        return 1;
    }
    double secs = (double)(t1 - t0) / 1e9;
    printf("{\"seconds\": %.6f, \"ms\": %.1f, \"bytes\": %llu, \"chunks\": %llu, \"objects\": %zu, "
           "\"instances\": %llu, \"commit_ms\": %.1f, \"peak_rss_mib\": %.1f}\n",
           secs, secs * 1e3, (unsigned long long)b.to_agent.bytes,
           (unsigned long long)ss->snapshot_chunks, docs.n, (unsigned long long)instances,
           store.last_commit_ms, (double)peak_rss_kib() / 1024.0);
    sync_server_free(server);
    sync_client_free(client);
    agent_cache_free(cache);
    kt_free(b.to_agent.items);
    kt_free(b.to_hub.items);
    kt_free(docs.objs);
    kt_arena_fini(&docs.arena);
    return 0;
}
