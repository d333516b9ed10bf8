/*
 * agent/store.h — sync_client's store ops implemented over the agent cache.
 *
 * An agent_store is the `user` of a sync_client: it maps snapshot / delta /
 * placement ops onto agent/cache.h (each committed atomically there),
 * converts sync_object kinds and sync_where values to the cache's names,
 * times the cache work, keeps the store metrics, and forwards `send` and
 * `on_welcome` to the transport that embeds it (agent/uplink, or the
 * in-process benchmark).
 *
 * Metrics (when a registry is given): ktwin_agent_graph_revision,
 * ktwin_agent_placement_revision, ktwin_agent_snapshots_total,
 * ktwin_agent_deltas_total, ktwin_agent_placements_total,
 * ktwin_agent_objects{kind}, ktwin_agent_last_commit_ms (cache time of the
 * last snapshot, summed over begin/puts/commit, or of the last delta apply).
 * Log: UPLINK-COMMIT kind=snapshot|delta revision objects commit_ms wall_ms
 * (the wall clock at commit end; benchmarks read it), UPLINK-PLACEMENT.
 *
 * Thread: loop only. Ownership: borrows the cache and the registry.
 */
#ifndef KT_AGENT_STORE_H
#define KT_AGENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "sync/client.h"

typedef struct agent_store {
    agent_cache *cache;
    /* The transport: sync_client's send and on_welcome go here with transport_user. */
    kt_status (*send)(const uint8_t *buf, size_t len, void *transport_user);
    void (*on_welcome)(const sync_welcome *w, void *transport_user);
    void *transport_user;
    /* Last commit (snapshot or delta) time in the cache, ms; and its wall clock end. */
    double last_commit_ms;
    uint64_t last_commit_wall_ms;
    uint64_t _snap_ns;
    uint64_t _snap_objects;
    kt_metric *_m_graph_rev, *_m_place_rev, *_m_snapshots, *_m_deltas, *_m_placements;
    kt_metric *_m_last_commit_ms, *_m_obj_iface, *_m_obj_inst, *_m_obj_policy;
} agent_store;

/*
 * Initialise s over cache; metrics may be NULL. send is required; on_welcome
 * may be NULL. Thread: loop.
 */
void agent_store_init(agent_store *s,
                      agent_cache *cache,
                      kt_metrics *metrics,
                      kt_status (*send)(const uint8_t *buf, size_t len, void *transport_user),
                      void (*on_welcome)(const sync_welcome *w, void *transport_user),
                      void *transport_user);

/* Fill every member of ops; pass s as sync_client_new's user. */
void agent_store_client_ops(sync_client_ops *ops);

/* Refresh the revision and object-count gauges from the cache. */
void agent_store_update_metrics(agent_store *s);

#endif
