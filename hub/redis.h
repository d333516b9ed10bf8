/*
 * hub/redis.h — KTWIN's graph cache in Redis, pushed by the hub.
 *
 * KTWIN's ktwin-graph-cache polled the Kubernetes API every 200 s and wrote
 * two kinds of keys (KTWIN.md §3), which KTWIN's services and graph store
 * read:
 *   twin_graph          the whole graph JSON {"twinInstances":[...]}
 *   twin_graph.<iface>  the instances of <iface>, each with its own
 *                       outgoing relationships
 * The hub writes the same keys, without TTL, at connect and
 * publish_delay_ms after a graph change (changes meanwhile coalesce): twin_graph plus only the
 * per-interface keys whose JSON changed, and DEL of the keys of interfaces with no instance left,
 * in one MULTI/EXEC. When Redis goes away it reconnects with exponential backoff (full jitter) and
 * republishes everything. At every connect it first lists the twin_graph.* keys Redis holds (KEYS),
 * so keys of interfaces that lost their last instance while the hub was away are deleted too.
 *
 * hiredis 0.14 async API on the hub's loop (our own libuv glue, see
 * redis.c: the stock adapter never reports a refused connect). The
 * connect itself resolves the host with a blocking getaddrinfo inside
 * hiredis: use a numeric address or a name resolved by /etc/hosts.
 *
 * Metrics: ktwin_hub_redis_publish_total (keys written or deleted),
 * ktwin_hub_redis_errors_total (connect failures, lost connections, error
 * replies), ktwin_hub_redis_connected (gauge).
 *
 * Thread: loop only. Ownership: borrows loop, graph, metrics; owns the
 * hiredis context and its timer.
 */
#ifndef KT_HUB_REDIS_H
#define KT_HUB_REDIS_H

#include <stdint.h>

#include <uv.h>

#include "hub/graph.h"
#include "kt/err.h"
#include "kt/metrics.h"

typedef struct hub_redis hub_redis;

typedef struct hub_redis_opts {
    const char *url;           /* redis://host[:port][/db] */
    uint64_t reconnect_min_ms; /* first backoff step */
    uint64_t reconnect_max_ms; /* cap */
    uint64_t publish_delay_ms; /* after a graph change, wait this long (coalescing) */
} hub_redis_opts;

/*
 * Parse the URL, subscribe to graph changes and start connecting (the
 * first publish follows the connect). KT_EINVAL for a bad URL. metrics may
 * be NULL.
 */
kt_status hub_redis_new(hub_redis **out,
                        uv_loop_t *loop,
                        hub_graph *graph,
                        const hub_redis_opts *opts,
                        kt_metrics *metrics,
                        kt_err *err);

/*
 * Disconnect and free. hiredis' libuv handles and our timer close through
 * the loop: run it afterwards. The graph must still be alive (it holds the
 * subscription, which this call turns into a no-op). NULL is a no-op.
 */
void hub_redis_free(hub_redis *r);

/* Number of completed publish rounds (EXEC answered OK), for tests. */
uint64_t hub_redis_rounds(const hub_redis *r);

#endif
