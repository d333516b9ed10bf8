/*
 * hub/fed.h — federation: the hub's side of hub <-> agent sync.
 *
 * hub_fed owns everything about edge sites:
 *   - the sites and their tokens (auth.agents_file: "<site> <token>" per
 *     line), with per-site state persisted in the hub database (tables
 *     fed_sites and fed_meta, through hub_store_db): last reported capacity,
 *     last seen, acked graph and placement revisions;
 *   - the WebSocket endpoint /sync (subprotocol ktwin-sync.v1) on the hub's
 *     HTTP server, one sync_server session per connection: authentication
 *     (constant-time token compare), admission (sync_admit token bucket,
 *     Reject BUSY over it), plan (UP_TO_DATE / DELTA / SNAPSHOT), chunked
 *     snapshots streamed on writable, deltas, placement updates, duplicate
 *     sessions (the newer one wins, the older gets Reject DUPLICATE);
 *   - each site's subgraph (instances placed on the site, their 1-hop
 *     neighbours both ways, every TwinInterface), recomputed on every graph
 *     change, with a bounded per-site delta ring for reconnects;
 *   - the placement (model_placement_compute with the previous result),
 *     recomputed on graph changes, presence and capacity reports, pushed to
 *     the sites whose view changed; GET /api/v1/placement and
 *     GET /api/v1/placement/{iface}[?site=S];
 *   - metrics ktwin_hub_sites_connected, ktwin_hub_sync_* and
 *     ktwin_hub_placement_*.
 * docs/protocol.md and docs/operations.md ("Federation") describe the
 * behaviour; hub/fed.c's DESIGN section the internals.
 *
 * LIFECYCLE (composition root, hub/main.c):
 *   hub_fed_new() after the graph, store, metrics and HTTP server exist and
 *   BEFORE kt_http_server_start() (the WebSocket endpoint must be added
 *   first). Shutdown: kt_net_free(net) first (it closes every sync
 *   connection through hub_fed's close callback), then hub_fed_free(fed)
 *   (flushes per-site state to SQLite, closes fed's timers), then hub_graph /
 *   hub_store / metrics, then run the loop until it returns and
 *   uv_loop_close().
 *
 * Thread: loop only. Ownership: hub_fed borrows loop, srv, graph, store, cfg
 * and metrics (all must outlive it) and owns its sessions, site table,
 * placement and delta rings.
 */
#ifndef KT_HUB_FED_H
#define KT_HUB_FED_H

#include <uv.h>

#include "hub/config.h"
#include "hub/graph.h"
#include "hub/store.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#ifdef KT_HUB_HAVE_EVENTS
#include "hub/events.h" /* hubev */
#endif

typedef struct hub_fed hub_fed;

/*
 * Create the federation module: read the agents file, create/read fed's
 * tables, compute the initial placement and subgraphs, subscribe to graph
 * changes, register the /sync WebSocket endpoint and the placement routes
 * on srv, and register the metrics.
 *
 * cfg: sync.* keys and auth.agents_file (read now; copied where kept).
 * metrics: may be NULL (no metrics).
 * Returns KT_OK with *out owned by the caller (hub_fed_free);
 * KT_EIO when the agents file cannot be read (err names the file),
 * KT_EINVAL for a malformed agents file line (file:line in err),
 * KT_EDEP (sqlite) when fed's tables cannot be created/read,
 * KT_EINVAL / KT_EDEP from kt_ws_endpoint / kt_http_route (srv already
 * started, duplicate route). Thread: loop.
 */
kt_status hub_fed_new(hub_fed **out,
                      uv_loop_t *loop,
                      kt_http_server *srv,
                      hub_graph *graph,
                      hub_store *store,
                      const hub_cfg *cfg,
                      kt_metrics *metrics,
                      kt_err *err);

/*
 * Flush per-site state to SQLite, free the sessions still known, close
 * fed's timers (their memory is released by the loop's close callbacks, so
 * run the loop afterwards) and free everything else. Call after
 * kt_net_free(). NULL is a no-op. Thread: loop, never from a callback of
 * fed's own.
 */
void hub_fed_free(hub_fed *f);

/* --- hubev: the event plane ---------------------------------------------- */
#ifdef KT_HUB_HAVE_EVENTS
/*
 * Serve the event streams of sync sessions opened from now on through ev
 * (up_committed_seq / on_up_batch / down_next / down_acked, acks after
 * ev's group commit) and give ev the placement for routing. Call once,
 * before kt_http_server_start. ev must outlive f (hub_fed_free detaches
 * the placement). Thread: loop.
 */
void hub_fed_set_events(hub_fed *f, hub_events *ev);
#endif
/* --- end hubev --- */

#endif
