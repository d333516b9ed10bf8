/*
 * agent/uplink.h — the agent's link to the hub: a kt_net WebSocket client
 * (subprotocol ktwin-sync.v1) driving sync_client, with the agent cache as
 * its store.
 *
 * Behaviour:
 * - connects at start and reconnects forever: each lost or failed connection
 *   waits sync_backoff (exponential, full jitter, reconnect.base_ms ..
 *   reconnect.cap_ms) before the next attempt; a Reject{BUSY} waits at least
 *   its retry_after_ms; the backoff restarts after a healthy session (one
 *   that committed something or stayed up 10 s after its Welcome), so a hub
 *   that welcomes and then fails every session is not hammered;
 * - heartbeats and the hub-silence timeout run through sync_client_tick on a
 *   uv_timer armed at sync_client_next_tick_ms();
 * - snapshots, deltas and placement updates go to the cache (agent/cache.h),
 *   each committed atomically before the Ack is sent.
 *
 * Metrics (registered on opts.metrics; the store ones come from agent/store.h):
 * ktwin_agent_connected (1 while
 * welcomed), ktwin_agent_graph_revision, ktwin_agent_placement_revision,
 * ktwin_agent_snapshots_total, ktwin_agent_deltas_total,
 * ktwin_agent_placements_total, ktwin_agent_reconnects_total,
 * ktwin_agent_rejects_total{code}, ktwin_agent_sync_errors_total,
 * ktwin_agent_objects{kind}, ktwin_agent_last_commit_ms (time spent in the
 * cache for the last snapshot, summed over begin/puts/commit, or the last
 * delta's apply).
 *
 * Logs: UPLINK-CONNECT, UPLINK-WELCOME, UPLINK-CONN-LOST, UPLINK-REJECT,
 * UPLINK-SYNC-ERR, UPLINK-RETRY, and UPLINK-COMMIT with kind=snapshot|delta,
 * revision, objects, commit_ms and wall_ms (the wall clock at commit end,
 * which the sync-delta benchmark reads).
 *
 * Lifecycle: agent_uplink_new, agent_uplink_start (connects), then at
 * shutdown agent_uplink_stop (closes the link and the timers: the loop must
 * run afterwards for their close callbacks), kt_net_free, run the loop,
 * agent_uplink_free.
 *
 * Thread: loop only. Ownership: the uplink borrows net, cache and metrics
 * (all must outlive it) and owns its sync_client, timers and connection.
 */
#ifndef KT_AGENT_UPLINK_H
#define KT_AGENT_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "sync/msg.h"

typedef struct agent_uplink agent_uplink;

typedef struct agent_uplink_opts {
    const char *site;    /* copied */
    const char *token;   /* copied; never logged */
    const char *hub_url; /* ws://host:port/sync or wss://...; copied */
    const char *ca_file; /* wss: CA bundle, NULL = system store; copied */
    uint32_t connect_timeout_ms;
    size_t max_message_bytes; /* cap on one hub message; 0 = 16 MiB */
    uint32_t batch_events;    /* events per upstream batch; 0 = 10,000 */
    uint32_t cpu_millis;
    uint64_t memory_bytes;
    uint32_t reconnect_base_ms;
    uint32_t reconnect_cap_ms;
    kt_net *net;         /* borrowed */
    agent_cache *cache;  /* borrowed */
    kt_metrics *metrics; /* borrowed, may be NULL */
    /*
     * The event streams (optional): with an outbox (borrowed) the uplink
     * sends its events upstream and deletes what the hub acked; with
     * down_apply it hands the hub's downstream commands and virtual events
     * to the dispatcher (sync_client_ops.down_apply / down_applied_seq, with
     * down_user; agent_dispatch_down_apply does exactly that). NULL = that
     * stream is off.
     */
    struct agent_outbox *outbox;
    uint64_t (*down_applied_seq)(void *down_user);
    kt_status (*down_apply)(
        uint64_t first_seq, const sync_event *events, size_t n, kt_err *err, void *down_user);
    void *down_user;
} agent_uplink_opts;

/* Create (does not connect). KT_OK or KT_EINVAL (bad site / missing field). Thread: loop. */
kt_status agent_uplink_new(agent_uplink **out, const agent_uplink_opts *opts, kt_err *err);
/* Start connecting now. Thread: loop. */
void agent_uplink_start(agent_uplink *u);
/* Close the connection, stop reconnecting, close the timers. Idempotent. Thread: loop. */
void agent_uplink_stop(agent_uplink *u);
/* Free after stop and after the loop has run the close callbacks. NULL is a no-op. */
void agent_uplink_free(agent_uplink *u);

/*
 * The allocatable capacity changed (config reload): used by every later
 * Hello, and sent now as a CapacityReport when the link is welcomed.
 * Thread: loop.
 */
void agent_uplink_set_capacity(agent_uplink *u, uint32_t cpu_millis, uint64_t memory_bytes);

/* true while a Welcome has been received on the open connection. */
int agent_uplink_connected(const agent_uplink *u);

#endif
