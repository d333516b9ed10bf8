/*
 * agent/dispatch.h — the agent's event dispatcher: every event that reaches
 * the edge goes through agent_dispatch_event, which asks the routing
 * function (model/route.h, shared with the hub) where it must go, with
 * where = this site and the site's placement, and carries the answer out:
 *
 *   LOCAL SERVICE   the twin service of the interface runs here: a plugin
 *                   (svc/plugin.h; synchronous, its emits are routed again
 *                   at once) or an HTTP service (svc/caller.h; asynchronous,
 *                   a reply event and the events it POSTs back to the
 *                   ingress are routed again);
 *   HUB             appended to the outbox (agent/outbox.h): store events,
 *                   real/command events of interfaces served in the cloud or
 *                   on another site, commands for instances hosted elsewhere;
 *   VIRTUAL         published to MQTT ktwin/virtual/<iface>/<instance>
 *                   through the publish_virtual callback (agent/mqtt.h);
 *   LATEST          store events are upsert-merged into the latest state
 *                   (agent/latest.h) before they go to the outbox;
 *   DROP            counted in ktwin_agent_dispatch_dropped_total{reason}
 *                   and logged (DISPATCH-DROP, rate-limited) with the reason.
 *
 * Metrics (when opts.metrics is set): ktwin_agent_dispatch_events_total{origin},
 * ktwin_agent_dispatch_destinations_total{kind},
 * ktwin_agent_dispatch_dropped_total{reason},
 * ktwin_agent_dispatch_service_failures_total, ktwin_agent_latest_instances,
 * ktwin_agent_service_latency_seconds{iface} (histogram: from the event's
 * arrival, MQTT message or ingress POST, to the local service's completion).
 * Logs: DISPATCH-DROP (warn, at most 10 lines/s then suppressed=N),
 * DISPATCH-SERVICE (a declared service started), DISPATCH-FAIL,
 * DISPATCH-REPLY-FAIL, DISPATCH-SITES.
 *
 * Origins: device real events from the MQTT bridge (agent_dispatch_mqtt_cb,
 * called inside the bridge's outbox transaction, so the outbox rows and the
 * journal watermark commit together), events POSTed to the local broker
 * ingress (agent_dispatch_api_ops), events emitted by services (plugin
 * emits, HTTP replies) and downstream events from the hub
 * (agent_dispatch_down_event). Nothing here needs the hub to be connected:
 * the outbox keeps what is bound for it.
 *
 * No model: while no model could be built from the cache (a first build
 * that failed), events produced here all go to the outbox (the hub routes
 * them) and events from the hub are dropped ("no-model"). Events for
 * instances outside the cached subgraph go up (MODEL_ROUTE_F_UNKNOWN_UPSTREAM).
 *
 * Loops: an event emitted by a service while handling an event of depth d
 * has depth d + 1; past opts.max_depth it is dropped (reason "depth").
 * HTTP services get the depth of the event they handle as the CloudEvents
 * extension `ktwindepth` (svc/caller.h); an event POSTed to the ingress
 * with ktwindepth k has depth k + 1 (svc/api.h), one without it depth 0
 * (a service that does not copy the attribute cannot be tied to the event
 * that caused its posts).
 *
 * Backpressure: KT_EAGAIN from the outbox (quota full) is returned to the
 * caller (the MQTT batch is rolled back and retried; the ingress answers
 * 503). A full HTTP-service queue drops the event (reason "service-busy").
 *
 * Thread: loop only. Ownership: the dispatcher borrows everything in its
 * opts (view, outbox, latest, plugin host, caller, metrics), which must
 * outlive it; events handed in are borrowed for the call.
 */
#ifndef KT_AGENT_DISPATCH_H
#define KT_AGENT_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "kt/err.h"
#include "kt/metrics.h"
#include "latest.h"
#include "model/event.h"
#include "mqtt.h"
#include "outbox.h"
#include "svc/api.h"
#include "svc/caller.h"
#include "svc/plugin.h"
#include "svc/service.h"
#include "svc/store.h"
#include "sync/msg.h"
#include "view.h"

typedef struct agent_dispatch agent_dispatch;

typedef enum agent_dispatch_origin {
    AGENT_DISPATCH_DEVICE = 1,  /* MQTT ktwin/real/<iface>/<instance> */
    AGENT_DISPATCH_INGRESS = 2, /* POST / on the local API */
    AGENT_DISPATCH_SERVICE = 3, /* emitted by a local twin service */
    AGENT_DISPATCH_HUB = 4      /* downstream from the hub */
} agent_dispatch_origin;

/*
 * Publish data to ktwin/virtual/<iface>/<instance>. agent_mqtt_publish_virtual
 * fits (through a one-line adapter). KT_OK, or an error (counted as a drop,
 * reason "publish").
 */
typedef kt_status (*agent_dispatch_publish_cb)(const char *iface,
                                               const char *instance,
                                               const uint8_t *data,
                                               size_t len,
                                               kt_err *err,
                                               void *user);

typedef struct agent_dispatch_opts {
    const char *site;     /* this site's name; copied; required */
    agent_view *view;     /* the model (graph); borrowed; required */
    agent_cache *cache;   /* this site's placement rows; borrowed; required */
    agent_outbox *outbox; /* borrowed; NULL: events bound for the hub are dropped ("no-outbox") */
    agent_latest *latest; /* borrowed; required */
    svc_plugin_host *plugins;                  /* borrowed, nullable */
    svc_caller *caller;                        /* borrowed, nullable */
    agent_dispatch_publish_cb publish_virtual; /* nullable: virtual events dropped ("no-mqtt") */
    void *publish_user;
    kt_metrics *metrics;   /* borrowed, nullable */
    uint32_t max_depth;    /* service emit depth; 0 = 8 */
    size_t max_data_bytes; /* event data cap; 0 = MODEL_EVENT_DATA_MAX_DEFAULT */
} agent_dispatch_opts;

/* Counters (also exported as metrics). */
typedef struct agent_dispatch_stats {
    uint64_t events;       /* agent_dispatch_event calls, all depths */
    uint64_t local_plugin; /* plugin calls made */
    uint64_t local_http;   /* HTTP service calls accepted */
    uint64_t to_hub;       /* outbox appends */
    uint64_t virtual_out;  /* MQTT publishes */
    uint64_t latest;       /* latest-state updates */
    uint64_t dropped;      /* all drop reasons */
    uint64_t service_fail; /* plugin or HTTP call failures */
} agent_dispatch_stats;

/*
 * Create the dispatcher. opts is copied. Returns KT_OK or KT_EINVAL (a
 * required option missing). Thread: loop.
 */
kt_status agent_dispatch_new(agent_dispatch **out, const agent_dispatch_opts *opts, kt_err *err);
/* NULL is a no-op. Pending HTTP calls must be gone first (svc_caller_free). Thread: loop. */
void agent_dispatch_free(agent_dispatch *d);

/*
 * Set the twin-service runners (either may be NULL). They are created after
 * the dispatcher because their opts point back at it (graph and store
 * callbacks). Thread: loop.
 */
void agent_dispatch_set_services(agent_dispatch *d, svc_plugin_host *plugins, svc_caller *caller);

/*
 * Start the declared services (svc/service.h, one declaration per item, the
 * config key services.specs): plugins are loaded into the plugin host,
 * HTTP services become endpoints of the caller (both set with
 * agent_dispatch_set_services first). Returns KT_OK; KT_EINVAL naming the
 * item ("services.specs[2]: col 12: ...") for a bad declaration, a plugin
 * that does not load, or an HTTP service without a caller. Thread: loop.
 */
kt_status agent_dispatch_add_services(agent_dispatch *d,
                                      const char *const *specs,
                                      size_t n_specs,
                                      kt_err *err);

/*
 * Route ev and carry out its destinations (see the header comment). depth
 * is 0 for events from outside. Appends to the outbox join the caller's
 * open outbox transaction if any (the MQTT drain), else commit by
 * themselves.
 * Returns KT_OK (delivered or dropped-and-counted); KT_EAGAIN (the outbox is
 * full: nothing was appended for this event, retry later); KT_EINVAL (ev
 * fails model_event_check: counted as a drop "invalid"); KT_EDEP / other
 * storage errors of the outbox or the latest state. Thread: loop.
 */
kt_status agent_dispatch_event(agent_dispatch *d,
                               const model_event *ev,
                               agent_dispatch_origin origin,
                               uint32_t depth,
                               kt_err *err);

/*
 * agent_mqtt_opts.on_event: builds the ktwin.real.<iface> event of a device
 * message (id "<site>-m<journal_id>", so a replay gets the same id) and
 * dispatches it. user = the agent_dispatch. Thread: loop.
 */
kt_status agent_dispatch_mqtt_cb(const agent_mqtt_event *ev, agent_outbox *ob, void *user);

/*
 * A downstream event from the hub (a command or virtual event for this
 * site), as sync_client's down_apply hands it over: converted and
 * dispatched with origin HUB. Returns as agent_dispatch_event; KT_EINVAL
 * for an event whose type is not a KTWIN type (counted as a drop). Thread: loop.
 */
kt_status agent_dispatch_down_event(agent_dispatch *d, const sync_event *ev, kt_err *err);

/* Outbox meta key holding the highest downstream seq applied. */
#define AGENT_DISPATCH_META_DOWN "down_applied"

/*
 * sync_client_ops.down_applied_seq: the highest downstream seq applied (the
 * outbox meta AGENT_DISPATCH_META_DOWN), 0 without an outbox. Thread: loop.
 */
uint64_t agent_dispatch_down_applied_seq(agent_dispatch *d);

/*
 * sync_client_ops.down_apply: dispatch events[0..n) (seqs first_seq..) with
 * origin HUB in ONE outbox transaction that also records first_seq + n - 1
 * as applied, then commit the latest state: the outbox side is
 * exactly-once, service calls and virtual publishes at-least-once (a crash
 * before the commit replays the batch). An event that cannot be dispatched
 * (not a KTWIN type, invalid) is counted as a drop and skipped, so one bad
 * event cannot stall the stream. Returns KT_OK; KT_EINVAL without an
 * outbox or when first_seq is not the next seq; KT_EAGAIN (outbox full:
 * nothing applied) or a storage error (rolled back). Thread: loop.
 */
kt_status agent_dispatch_down_apply(
    agent_dispatch *d, uint64_t first_seq, const sync_event *events, size_t n, kt_err *err);

/*
 * The ops for svc_api_mount: ingest = agent_dispatch_event(origin INGRESS),
 * except that a store event whose data is not one JSON object is refused
 * first (KT_EINVAL: the ingress answers 400; counted as a drop "invalid"),
 * store = the latest-state store ops (latest, put = upsert-merge into the
 * latest state + outbox, list = the latest state as one record per
 * instance). The structs live as long as d. Thread: loop.
 */
const svc_api_ops *agent_dispatch_api_ops(agent_dispatch *d);
/* The store ops alone (for svc_plugin_host_opts.store). Lives as long as d. */
const svc_store_ops *agent_dispatch_store_ops(agent_dispatch *d);

/*
 * For svc_plugin_host_opts.graph with user = the dispatcher: the view's
 * current model (refreshed), or NULL. Thread: loop.
 */
const model *agent_dispatch_graph_cb(void *user);

/*
 * The interfaces whose device events this site must ingest: every
 * interface of the cached model (the site's subgraph with its 1-hop
 * neighbours; events of interfaces not served here go up), sorted, into *out (kt_malloc'd array of
 * kt_malloc'd strings; free with agent_dispatch_names_free). For agent_mqtt_set_interfaces. Returns
 * KT_OK or a view error. Thread: loop.
 */
kt_status
agent_dispatch_ingest_interfaces(agent_dispatch *d, char ***out, size_t *n_out, kt_err *err);
void agent_dispatch_names_free(char **names, size_t n);

/* Counters so far. */
void agent_dispatch_stats_get(const agent_dispatch *d, agent_dispatch_stats *out);
/* Drops so far for one reason ("unknown-iface", "depth", ...; 0 for an unknown reason). */
uint64_t agent_dispatch_dropped(const agent_dispatch *d, const char *reason);

#endif
