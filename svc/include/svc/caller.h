/*
 * svc/caller.h — calls HTTP twin services: POSTs binary-mode CloudEvents
 * to an interface's service endpoint, the way Knative delivers events to
 * KTWIN's Go/Python services (KTWIN.md §5: ce-id, ce-specversion, ce-type,
 * ce-source, ce-time headers, body = data, Content-Type application/json).
 *
 *   svc_caller *c;
 *   svc_caller_new(&c, loop, &(svc_caller_opts){ .metrics = reg }, &err);
 *   svc_caller_endpoint(c, "ngsi-ld-city-weatherobserved",
 *       &(svc_endpoint_opts){ .url = "http://127.0.0.1:8081/", .concurrency = 4 }, &err);
 *   st = svc_caller_post(c, "ngsi-ld-city-weatherobserved", ev, done, app, &err);
 *   if (st == KT_EAGAIN) { ...backpressure: keep the event, retry later... }
 *
 * TRANSPORT: one libcurl multi handle driven by the libuv loop
 * (CURLMOPT_SOCKETFUNCTION -> uv_poll per socket, CURLMOPT_TIMERFUNCTION ->
 * one uv_timer), so no call ever blocks the loop. Connections are reused.
 *
 * PER ENDPOINT: at most `concurrency` requests in flight; beyond that calls
 * wait in a FIFO of at most `queue_max`; beyond that svc_caller_post returns
 * KT_EAGAIN and takes nothing (the caller keeps the event: backpressure).
 * Each attempt has timeout_ms. An attempt FAILS on a transport error,
 * timeout, or HTTP 5xx / 429 / 408; it is retried after an exponential
 * backoff with jitter (backoff_min_ms doubling up to backoff_max_ms) while
 * attempts <= retries. Other statuses are final: 2xx is success, any other
 * 4xx is a permanent failure (not retried: the event is bad for it). A call
 * waiting for its retry keeps its concurrency slot, so a failing service
 * cannot be flooded.
 *
 * RESULT: done(st, res, user) exactly once per accepted call, on the loop
 * (never inside svc_caller_post): st KT_OK for 2xx; KT_ETIMEDOUT, KT_EIO
 * (transport) or KT_EDEP (dep "http", dep_code = status) after the last
 * attempt; KT_EPROTO for a 2xx whose reply is a malformed CloudEvent;
 * KT_ECLOSED from inside svc_caller_free for calls still pending. A service
 * MAY answer with a CloudEvent (binary mode: ce-type etc. headers, body =
 * data; or structured application/cloudevents+json): res->reply is then
 * that event, which the caller routes like any emitted event. KTWIN's Go
 * services answer 200 with an empty body (no reply) and instead POST their
 * events to the broker ingress (svc/api.h), which the agent routes.
 *
 * LOOP DEPTH: every call carries the CloudEvents extension attribute
 * `ktwindepth` (header ce-ktwindepth, SVC_DEPTH_HEADER) = the depth of the
 * delivered event (svc_caller_post_depth; svc_caller_post sends 0). A
 * service that copies it onto the events it POSTs back to the broker
 * ingress lets the ingress (svc/api.h) count them as emitted at depth + 1,
 * so services.max_depth bounds loops through HTTP services too.
 *
 * Metrics (when opts.metrics is set), labels {iface}:
 * ktwin_svc_http_calls_total, ktwin_svc_http_failures_total,
 * ktwin_svc_http_retries_total, ktwin_svc_http_rejected_total (queue full),
 * ktwin_svc_http_inflight (gauge), ktwin_svc_http_queued (gauge).
 * Logs: SVC-HTTP-RETRY (debug), SVC-HTTP-FAIL (warn, final failure).
 *
 * Thread: loop only. Ownership: the caller owns its curl handles and uv
 * handles; events passed to post are copied (rendered) at once.
 */
#ifndef KT_SVC_CALLER_H
#define KT_SVC_CALLER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "kt/err.h"
#include "kt/metrics.h"
#include "model/event.h"

typedef struct svc_caller svc_caller;

typedef struct svc_caller_opts {
    kt_metrics *metrics;         /* optional, borrowed */
    size_t max_response_bytes;   /* reply body cap; 0 = 1 MiB (over it: KT_EPROTO, not retried) */
    uint32_t connect_timeout_ms; /* 0 = 2000 */
} svc_caller_opts;

typedef struct svc_endpoint_opts {
    const char *url;         /* http://host:port/path (https too); required */
    uint32_t concurrency;    /* requests in flight; 0 = 4 */
    size_t queue_max;        /* calls waiting beyond concurrency; 0 = 1024 */
    uint32_t timeout_ms;     /* per attempt; 0 = 5000 */
    uint32_t retries;        /* attempts after the first; SVC_RETRIES_NONE = 0 retries; 0 = 3 */
    uint32_t backoff_min_ms; /* first retry ceiling; 0 = 100 */
    uint32_t backoff_max_ms; /* largest; 0 = 5000 */
} svc_endpoint_opts;

#define SVC_RETRIES_NONE UINT32_MAX

/* The loop-depth extension attribute (CloudEvents extension, binary-mode header). */
#define SVC_DEPTH_ATTR   "ktwindepth"
#define SVC_DEPTH_HEADER "ce-ktwindepth"

/* What a finished call got (borrowed for the done callback). */
typedef struct svc_call_result {
    int http_status;          /* last HTTP status, 0 when no response */
    uint32_t attempts;        /* 1 + retries made */
    const model_event *reply; /* the service's reply event, or NULL */
    const char *detail;       /* short text for logs ("timeout after 5000 ms", ...) */
} svc_call_result;

typedef void (*svc_call_done_cb)(kt_status st, const svc_call_result *res, void *user);

/* Returns KT_OK, or KT_EDEP (dep "curl") when libcurl refuses to start. Thread: loop. */
kt_status
svc_caller_new(svc_caller **out, uv_loop_t *loop, const svc_caller_opts *opts, kt_err *err);

/*
 * Abort every call (done with KT_ECLOSED, inside this call), close the uv
 * handles and free once they are closed: run the loop afterwards before
 * uv_loop_close. NULL is a no-op. Thread: loop, never from a done callback.
 */
void svc_caller_free(svc_caller *c);

/*
 * Set (or replace) the endpoint of iface. opts is copied. Calls already
 * queued keep going to the old URL. Returns KT_OK or KT_EINVAL (no URL, not
 * http(s)://). Thread: loop.
 */
kt_status
svc_caller_endpoint(svc_caller *c, const char *iface, const svc_endpoint_opts *opts, kt_err *err);

/*
 * Deliver ev to the endpoint of iface (ev may be of another interface:
 * aggregated events, commands). ev is rendered at once; nothing of it is
 * kept. Returns KT_OK (accepted: done follows); KT_ENOTFOUND (no endpoint
 * for iface); KT_EAGAIN (queue full: nothing taken, try later); KT_EINVAL
 * (ev cannot be rendered). Thread: loop.
 */
kt_status svc_caller_post(svc_caller *c,
                          const char *iface,
                          const model_event *ev,
                          svc_call_done_cb done,
                          void *user,
                          kt_err *err);

/*
 * svc_caller_post with the event's loop depth sent as ce-ktwindepth (see
 * LOOP DEPTH). Same results.
 */
kt_status svc_caller_post_depth(svc_caller *c,
                                const char *iface,
                                const model_event *ev,
                                uint32_t depth,
                                svc_call_done_cb done,
                                void *user,
                                kt_err *err);

/* Calls accepted and not yet done for iface (in flight + waiting), 0 for unknown. */
size_t svc_caller_pending(const svc_caller *c, const char *iface);

#endif
