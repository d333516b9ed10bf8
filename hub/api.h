/*
 * hub/api.h — the hub's REST API on kt_net (docs/protocol.md "Hub and agent
 * HTTP APIs"): apply, per-kind GET/DELETE, KTWIN's twin-graph API,
 * /healthz, /readyz, /metrics, and the admin token.
 *
 * Routes registered by hub_api_new:
 *   POST   /api/v1/apply
 *   GET    /api/v1/{kind}            kind = twininterfaces|twininstances|placementpolicies
 *   GET    /api/v1/{kind}/{name}
 *   DELETE /api/v1/{kind}/{name}
 *   GET    /api/v1/twin-graph[/{iface}]
 *   GET    /healthz  /readyz  /metrics
 * Mutating calls need "Authorization: Bearer <admin token>": 401 without
 * it, 403 with a wrong one (constant-time compare), both counted in
 * ktwin_hub_auth_failures_total.
 *
 * Metrics (on the shared registry): ktwin_hub_apply_total{result},
 * ktwin_hub_http_requests_total{code}, ktwin_hub_auth_failures_total,
 * ktwin_hub_graph_revision, ktwin_hub_objects{kind},
 * ktwin_hub_apply_seconds_sum/_count (apply latency).
 *
 * Thread: loop only. Ownership: hub_api borrows srv, graph and metrics
 * (they must outlive it) and owns a copy of the token.
 */
#ifndef KT_HUB_API_H
#define KT_HUB_API_H

#include <stddef.h>

#include "hub/graph.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"

typedef struct hub_api hub_api;

/*
 * Register the routes (before or after kt_http_server_start) and metrics.
 * admin_token: copied; NULL or "" refuses every mutating call with 403.
 * KT_EINVAL from kt_http_route / kt_metrics (duplicate route).
 */
kt_status hub_api_new(hub_api **out,
                      kt_http_server *srv,
                      hub_graph *graph,
                      kt_metrics *metrics,
                      const char *admin_token,
                      kt_err *err);
void hub_api_free(hub_api *api);

/* /readyz answers 200 once set (main sets it when everything is up). */
void hub_api_set_ready(hub_api *api, int ready);

/*
 * The admin token: read from token_file (first line, trimmed) when set;
 * otherwise generate 32 random bytes (hex) into <data_dir>/admin.token with
 * mode 0600, or reuse that file when it already holds a token. *out is
 * kt_malloc'ed (caller kt_free). *generated_path_out (may be NULL) gets the
 * path used when the token lives in data_dir (kt_malloc'ed), else NULL.
 * KT_EIO when the file cannot be read/written; KT_EINVAL when empty.
 */
kt_status hub_api_token_load(char **out,
                             char **generated_path_out,
                             const char *token_file,
                             const char *data_dir,
                             kt_err *err);

/* Constant-time equality of two NUL-terminated strings (the time depends only on the lengths). */
int hub_api_token_equal(const char *a, const char *b);

#endif
