/*
 * agent/api.h — the agent's local HTTP API (docs/protocol.md, "Hub and agent
 * HTTP APIs"), served from the cache:
 *
 *   GET /api/v1/twin-graph          KTWIN's graph JSON of the cached subgraph
 *   GET /api/v1/twin-graph/{iface}  the per-interface graph; 404 "Not Found"
 *                                   when no cached instance has it (as KTWIN)
 *   GET /api/v1/placement           this site's placement view (agent/view.h)
 *   GET /healthz                    200 "ok" while the loop runs
 *   GET /readyz                     200 "ready" once the cache is loaded, else 503
 *   GET /metrics                    Prometheus text format 0.0.4
 *
 * Errors of the view (an unreadable cache) answer 500 with a JSON error and
 * are counted in ktwin_agent_api_errors_total. Requests are counted in
 * ktwin_agent_api_requests_total{route}.
 *
 * Thread: loop only. Ownership: the api borrows server, view and metrics
 * (all must outlive it); routes are registered on the server, which kt_net
 * owns.
 */
#ifndef KT_AGENT_API_H
#define KT_AGENT_API_H

#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "view.h"

typedef struct agent_api agent_api;

/*
 * Register the routes on srv. site is copied (shown in the placement view).
 * Returns KT_OK or a kt_http_route error. Thread: loop.
 */
kt_status agent_api_new(agent_api **out,
                        kt_http_server *srv,
                        agent_view *view,
                        kt_metrics *metrics,
                        const char *site,
                        kt_err *err);
/* Mark ready (/readyz answers 200). Thread: loop. */
void agent_api_set_ready(agent_api *api, int ready);
/* kt_clock_mono_ms of the last twin-graph request answered (0 = none): background work
 * started at start-up yields to a response being written. Thread: loop. */
uint64_t agent_api_last_graph_ms(const agent_api *api);
/* Free after kt_net_free (routes hold a pointer to the api). NULL is a no-op. */
void agent_api_free(agent_api *api);

#endif
