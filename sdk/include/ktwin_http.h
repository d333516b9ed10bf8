/*
 * ktwin_http.h — run a twin service STANDALONE, as its own process, the
 * way KTWIN runs its Knative services (KTWIN.md §5): the SAME plugin code
 * that the agent or the hub loads in-process (ktwin.h) is linked with
 * libktwin and served over HTTP.
 *
 *   #include <ktwin.h>
 *   #include <ktwin_http.h>
 *   ...the plugin exactly as in ktwin.h, exporting ktwin_plugin_v1()...
 *   int main(int argc, char **argv) { return ktwin_http_main(ktwin_plugin_v1(), argc, argv); }
 *
 *   cc -I<sdk>/include aqi.c aqi_main.c -L<build>/sdk -lktwin ... -o aqi
 *   KTWIN_BROKER=http://127.0.0.1:8090/ KTWIN_EVENT_STORE=http://127.0.0.1:8090 \
 *   KTWIN_GRAPH_URL=http://127.0.0.1:8090/api/v1/twin-graph ./aqi --port 8081
 *
 * THE SERVER receives KTWIN CloudEvents as KTWIN's brokers deliver them
 * to a Knative service: HTTP POST / in binary mode (ce-specversion, ce-id,
 * ce-type, ce-source, optional ce-time headers; body = data) or structured
 * mode (Content-Type application/cloudevents+json). Each event runs the
 * plugin's handle with a ktwin_ctx whose host functions are KTWIN's HTTP
 * APIs:
 *   - ktwin_emit*            -> POST the event in binary mode to KTWIN_BROKER
 *                               (after handle returned KTWIN_OK, in emit
 *                               order; 2xx expected, KTWIN's broker says 202);
 *   - ktwin_latest           -> GET KTWIN_EVENT_STORE/api/v1/twin-events/
 *                               {iface}/{instance}/latest (404: KTWIN_ENOTFOUND);
 *   - ktwin_graph_*          -> KTWIN's twin-graph JSON from GET KTWIN_GRAPH_URL
 *                               (the whole graph, e.g. the agent's
 *                               /api/v1/twin-graph), indexed in memory:
 *                               outgoing and incoming edges, instances per
 *                               interface;
 *   - ktwin_log              -> the process log (stderr).
 * Emits are validated and all-or-nothing exactly as in-process
 * (svc/plugin.h): the same host code runs them.
 *
 * THE ANSWER to each POST is sent after handle ran and its emits were
 * posted:
 *   200 ""   handled, every emit delivered (KTWIN's Go server answers 200);
 *   400      malformed event ({"error":{"code":400,"message":M}}, M names
 *            the header/attribute, e.g. "ce-type: missing");
 *   500      handle returned a failure (its emits were discarded);
 *   502      an emit could not be delivered to the broker (the ones before
 *            it were: delivery is at least once, handlers must be idempotent);
 *   503      handle returned KTWIN_EAGAIN, the graph could not be loaded yet,
 *            the queue is full, or the server is stopping (Retry-After: 1).
 * A broker (KTWIN's, or the KTWIN Edge agent's HTTP service caller)
 * retries 5xx, so an event is never lost on a transient failure.
 * Other routes: GET /healthz and /health (200 {"status":"OK"}),
 * GET /metrics (Prometheus text: ktwin_sdk_events_total{result},
 * ktwin_sdk_emits_total, ktwin_sdk_graph_loads_total{result},
 * ktwin_sdk_graph_instances, ktwin_sdk_queue_depth).
 *
 * COMMAND LINE (ktwin_http_main parses these; anything else is a usage
 * error):
 *   --port N           TCP port; default $PORT, else 8080 (like a Knative
 *                      container); 0 = ephemeral (see --port-file)
 *   --address A        numeric bind address; default 0.0.0.0
 *   --config JSON|FILE the plugin's init config: JSON text when it starts
 *                      with '{' or '[', else a file holding it; default
 *                      $KTWIN_SERVICE_CONFIG, else "{}". Must be a JSON object.
 *   --interface I      serve I (repeatable); default: the plugin's list (a
 *                      plugin without a list needs at least one --interface).
 *                      Events of any interface are handed to the plugin
 *                      (aggregated events, commands), as the broker sends them.
 *   --graph-refresh S  reload the graph when it is older than S seconds
 *                      (default 60, KTWIN's graph cache period; 0 = load once)
 *   --queue N          events waiting beyond the one running (default 256;
 *                      over it: 503)
 *   --timeout-ms N     per outgoing HTTP call (default 10000)
 *   --port-file FILE   write the bound port there once listening
 *   --log-level L      err|warn|notice|info|debug (default info)
 *   --help
 * ENVIRONMENT (the names KTWIN's Go SDK reads): KTWIN_BROKER (required:
 * where emits go), KTWIN_EVENT_STORE (optional: without it ktwin_latest
 * answers KTWIN_ENOTFOUND, with a warning at start), KTWIN_GRAPH_URL (optional: without it the
 * graph is empty and ktwin_graph_* answer KTWIN_ENOTFOUND), PORT, KTWIN_SERVICE_CONFIG.
 *
 * GRAPH REFRESH POLICY: loaded once at start (a failure is logged and
 * retried); before handling an event, the graph is reloaded when it is
 * older than --graph-refresh seconds (a failed reload keeps the previous
 * graph and is retried at most once a second). While no graph was ever loaded and
 * KTWIN_GRAPH_URL is set, events are answered 503 (retried by the broker)
 * rather than handled against an empty graph. Reloads happen between
 * handler calls only, so graph strings stay valid for the whole call.
 *
 * THREADING. The server (libuv loop + libwebsockets) runs on the thread
 * that called ktwin_http_main. Handler calls run on one libuv threadpool
 * thread at a time, in arrival order, never concurrently: the plugin's
 * init, handle and fini never overlap (init and fini run on the calling
 * thread, before and after serving). Inside handle the ktwin_* host calls
 * BLOCK on HTTP (bounded by --timeout-ms): unlike in-process, a standalone
 * handler may be slow without stalling anything but its own queue.
 *
 * OWNERSHIP. As ktwin.h: everything handed to the plugin is borrowed for
 * the handle call; emit arguments are copied. plugin is borrowed and must
 * stay valid until ktwin_http_main returns; argv is only read.
 *
 * Returns the process exit status: 0 after SIGTERM/SIGINT (the event in
 * progress finishes and is answered; queued ones get 503), 1 for a runtime
 * failure (cannot listen, libcurl), 2 for a usage or configuration error
 * (bad option, KTWIN_BROKER unset, config not a JSON object, plugin init
 * refused). Messages go to stderr. Call it once per process.
 */
#ifndef KTWIN_HTTP_H
#define KTWIN_HTTP_H

#include "ktwin.h"

#ifdef __cplusplus
extern "C" {
#endif

KTWIN_EXPORT int ktwin_http_main(const ktwin_plugin *plugin, int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
