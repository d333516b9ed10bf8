/*
 * svc/plugin.h — the in-process twin-service host: loads plugin .so files
 * built against sdk/include/ktwin.h and calls them for events.
 *
 *   svc_plugin_host *h;
 *   svc_plugin_host_new(&h, &(svc_plugin_host_opts){ .graph = my_graph,
 *                        .store = &store_ops, .user = app, .metrics = reg }, &err);
 *   svc_plugin_host_load(h, "/opt/ktwin/aqi.so", ifaces, n, "{}", &err);
 *   ...
 *   st = svc_plugin_host_dispatch(h, "ngsi-ld-city-airqualityobserved", ev, sink, app, &err);
 *
 * DISPATCH is all-or-nothing: the events a handler emits are validated and
 * buffered during the call and handed to the caller's sink only after the
 * handler returned KTWIN_OK, in emit order. When the handler fails, its
 * emits are discarded, the failure is counted
 * (ktwin_svc_plugin_failures_total{plugin}) and logged (SVC-PLUGIN-FAIL,
 * rate-limited by the caller's retry policy), and dispatch returns an error;
 * the input event is untouched: the caller decides to retry or dead-letter
 * it. Emitted events get a fresh id (model_event_id_new), the current time and
 * datacontenttype application/json.
 *
 * GRAPH and STATE for ktwin_graph_* / ktwin_latest come from the opts'
 * callbacks at the time of the call; nothing is cached here.
 *
 * Metrics (when opts.metrics is set): ktwin_svc_plugin_calls_total{plugin},
 * ktwin_svc_plugin_failures_total{plugin}, ktwin_svc_plugin_emits_total{plugin},
 * ktwin_svc_plugin_emit_rejected_total{plugin}.
 *
 * Thread: loop only; handlers run on it (see ktwin.h THREADING). Ownership:
 * the host owns the dlopen handles and calls each plugin's fini at
 * svc_plugin_host_free; it borrows opts' metrics, graph and store.
 */
#ifndef KT_SVC_PLUGIN_H
#define KT_SVC_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "kt/err.h"
#include "kt/metrics.h"
#include "ktwin.h"
#include "model/event.h"
#include "model/model.h"
#include "svc/store.h"

typedef struct svc_plugin_host svc_plugin_host;

/*
 * Receives one emitted event (borrowed for the call: copy what you keep).
 * A non-KT_OK return stops delivery of the rest of this dispatch's events
 * and is returned by svc_plugin_host_dispatch (events already delivered
 * stay delivered).
 */
typedef kt_status (*svc_emit_cb)(const model_event *ev, void *user);

/* The current resolved model (borrowed for one dispatch), or NULL when none is loaded yet. */
typedef const model *(*svc_graph_cb)(void *user);

typedef struct svc_plugin_host_opts {
    kt_metrics *metrics;        /* optional, borrowed */
    svc_graph_cb graph;         /* for ktwin_graph_*; NULL: they answer KTWIN_ENOTFOUND */
    const svc_store_ops *store; /* for ktwin_latest (only .latest is used); NULL: ENOTFOUND */
    void *user;                 /* passed to graph and the store ops */
    size_t max_emit_bytes;      /* data cap of one emitted event; 0 = 256 KiB */
    size_t max_emits;           /* emitted events per handler call; 0 = 1024 */
} svc_plugin_host_opts;

/* A host with no plugins. opts is copied. Returns KT_OK (aborts on OOM). Thread: loop. */
kt_status svc_plugin_host_new(svc_plugin_host **out, const svc_plugin_host_opts *opts, kt_err *err);

/* fini every plugin (load order reversed), dlclose, free. NULL is a no-op. Thread: loop. */
void svc_plugin_host_free(svc_plugin_host *h);

/*
 * dlopen path (RTLD_NOW | RTLD_LOCAL), find KTWIN_PLUGIN_SYMBOL, check the
 * descriptor (abi_version, struct_size, handle), call init(config_json) and
 * register the plugin for ifaces[0..n_ifaces) — or, when n_ifaces is 0, for
 * the interfaces the plugin lists itself. config_json NULL means "{}".
 * Returns KT_OK; KT_EINVAL (not loadable, missing symbol, ABI mismatch, no
 * interfaces, init refused: err says which, with dlerror's text);
 * KT_ECONFLICT (an interface is already served by another plugin). Nothing
 * stays loaded on failure. Thread: loop.
 */
kt_status svc_plugin_host_load(svc_plugin_host *h,
                               const char *path,
                               const char *const *ifaces,
                               size_t n_ifaces,
                               const char *config_json,
                               kt_err *err);

/*
 * Like svc_plugin_host_load for a plugin linked into the executable (no
 * dlopen): desc is the descriptor its KTWIN_PLUGIN_SYMBOL function returns
 * (borrowed: it must outlive h); label names it in logs and errors (NULL:
 * "(linked)"). Same checks, init call and results. Used by libktwin's
 * standalone HTTP server (sdk/include/ktwin_http.h). Thread: the host's.
 */
kt_status svc_plugin_host_add(svc_plugin_host *h,
                              const ktwin_plugin *desc,
                              const char *label,
                              const char *const *ifaces,
                              size_t n_ifaces,
                              const char *config_json,
                              kt_err *err);

/* true when some plugin serves iface. Thread: loop. */
bool svc_plugin_host_serves(const svc_plugin_host *h, const char *iface);

/* Number of loaded plugins. */
size_t svc_plugin_host_count(const svc_plugin_host *h);

/*
 * Call the plugin serving iface with ev (which may be of another interface,
 * e.g. an aggregated real event, or a command addressed to iface). On
 * KTWIN_OK the emitted events go to sink(ev, sink_user) in order.
 * Returns KT_OK; KT_ENOTFOUND (no plugin for iface); KT_EAGAIN (the handler
 * returned KTWIN_EAGAIN: retry later); KT_EDEP with dep "plugin" and
 * dep_code = the handler's return value (any other failure); or the sink's
 * error. Thread: loop; not re-entrant (a sink must not dispatch into the
 * same host synchronously: queue instead).
 */
kt_status svc_plugin_host_dispatch(svc_plugin_host *h,
                                   const char *iface,
                                   const model_event *ev,
                                   svc_emit_cb sink,
                                   void *sink_user,
                                   kt_err *err);

#endif
