/*
 * svc/api.h — KTWIN's HTTP APIs for twin services, on a kt_net server,
 * parametrised by ops so the agent and the hub serve them over their own
 * router and storage. A KTWIN Go/Python service pointed at them
 * (KTWIN_BROKER, KTWIN_EVENT_STORE) works unchanged (KTWIN.md §4, §5).
 *
 * Routes (mounted by svc_api_mount; each group only when its ops exist):
 *
 *   POST /                                   broker ingress: a CloudEvent in
 *        binary mode (ce-* headers, body = data) or structured mode
 *        (Content-Type application/cloudevents+json). Type must be
 *        ktwin.{real|virtual|store}.<iface> or ktwin.command.<iface>.<cmd>,
 *        source a twin instance name. -> ops.ingest -> 202 "" (KTWIN's SDK
 *        expects 202). 400 with {"error":{"code":400,"message":M}} naming
 *        what is wrong ("ce-type: missing", "type: not a ktwin event type",
 *        "data: JSON syntax error at line 1:7 (byte 6)", ...); 413 body over
 *        max_body_bytes (kt_net); ingest KT_EAGAIN -> 503 + Retry-After: 1;
 *        KT_ENOTFOUND -> 404; KT_EINVAL -> 400; other -> 500.
 *        LOOP DEPTH: the CloudEvents extension attribute `ktwindepth`
 *        (binary: header ce-ktwindepth; structured: member "ktwindepth",
 *        a decimal string or a number) is the depth of the event a twin
 *        service was handling when it posted this one (svc/caller.h sends
 *        it on every call). The event's own depth is then ktwindepth + 1
 *        (0 without the attribute) and goes to ops.ingest_depth, so
 *        services.max_depth bounds loops through HTTP services. A
 *        ktwindepth that is not a decimal integer 0..SVC_DEPTH_MAX is
 *        refused (400 "ce-ktwindepth: ...").
 *
 *   GET  /api/v1/twin-events                 every event (paged)
 *   GET  /api/v1/twin-events/{iface}/{inst}  events of one instance (paged)
 *        200, JSON array of KTWIN TwinEvent objects
 *        {"id","time","source","type","instanceId","interfaceId",
 *         "eventData" (base64 of the data, as Go encodes []byte),"createdAt"};
 *        query: from, to (RFC 3339 or epoch ms; from inclusive, to
 *        exclusive), limit (1..1000, default 100), order (asc|desc,
 *        default desc: newest first, KTWIN's clustering order), cursor (from
 *        the previous page's "ktwin-next-cursor" response header, present
 *        only when another page exists). Bad parameters -> 400 naming it.
 *   GET  /api/v1/twin-events/{iface}/{inst}/latest
 *        200, body = the latest state's data JSON, headers ce-id, ce-type,
 *        ce-source, ce-time, ce-timestamp, ce-specversion: 1.0 (as KTWIN:
 *        its Go SDK parses the response as a binary CloudEvent);
 *        404 "Not Found" when nothing is stored.
 *   POST /api/v1/twin-events                 a CloudEvent (binary or
 *        structured) -> iface = type.split(".")[2], instance = source ->
 *        store.put (upsert-merge) -> 202 ""; 400 invalid CloudEvent or data
 *        not a JSON object; 503 KT_EAGAIN; 500 storage error.
 *
 * Every request is answered synchronously (inside the kt_net handler): the
 * ops are synchronous on the loop. Failures are counted in
 * ktwin_svc_api_rejected_total{route,reason} and logged at debug
 * (SVC-API-REJECT) with the reason.
 *
 * Thread: loop only. Ownership: svc_api is owned by the caller (free after
 * kt_net_free, which drops the routes' requests); it borrows srv, ops and
 * metrics.
 */
#ifndef KT_SVC_API_H
#define KT_SVC_API_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "kt/metrics.h"
#include "kt/net.h"
#include "model/event.h"
#include "svc/store.h"

typedef struct svc_api svc_api;

typedef struct svc_api_ops {
    /*
     * A valid event arrived at the broker ingress (borrowed for the call:
     * copy what you keep). Return KT_OK (accepted: 202), KT_EAGAIN
     * (backpressure: 503), KT_ENOTFOUND (unknown interface/instance: 404),
     * KT_EINVAL (refused: 400, err's message is the body's). NULL: POST /
     * is not mounted.
     */
    kt_status (*ingest)(void *user, const model_event *ev, kt_err *err);
    /*
     * Like ingest, with the event's loop depth (see LOOP DEPTH). When set it
     * is used instead of ingest (which may then be NULL).
     */
    kt_status (*ingest_depth)(void *user, const model_event *ev, uint32_t depth, kt_err *err);
    const svc_store_ops *store; /* NULL: the twin-events routes are not mounted */
    void *user;                 /* passed to ingest (store ops carry their own) */
} svc_api_ops;

typedef struct svc_api_opts {
    kt_metrics *metrics;   /* optional, borrowed */
    const char *prefix;    /* path prefix for the twin-events routes; NULL = "" */
    size_t max_data_bytes; /* event data cap; 0 = 1 MiB (over it: 413) */
} svc_api_opts;

/*
 * Add the routes to srv (before or after kt_http_server_start). ops and
 * opts are copied. Returns KT_OK or KT_EINVAL (a route already taken).
 * Thread: loop.
 */
kt_status svc_api_mount(svc_api **out,
                        kt_http_server *srv,
                        const svc_api_ops *ops,
                        const svc_api_opts *opts,
                        kt_err *err);

/* Free (the routes stay on srv; free srv's kt_net first). NULL is a no-op. */
void svc_api_free(svc_api *a);

/*
 * Parse a time parameter: RFC 3339 UTC ("2024-06-22T00:50:00Z", fractional
 * seconds and numeric offsets accepted) or decimal epoch milliseconds.
 * Returns KT_OK or KT_EINVAL. Exposed for the fuzz target. Thread: any.
 */
kt_status svc_api_parse_time(const char *text, uint64_t *ms_out, kt_err *err);

/*
 * Parse the list query parameters (from, to, limit, order, cursor) given as
 * a getter into q (iface/instance untouched). Returns KT_OK or KT_EINVAL
 * naming the parameter. Exposed for the fuzz target. Thread: any.
 */
typedef const char *(*svc_param_cb)(const char *name, void *user);
kt_status svc_api_parse_query(svc_query *q, svc_param_cb param, void *user, kt_err *err);

/* Largest ktwindepth value accepted. */
#define SVC_DEPTH_MAX 1000000u

/*
 * Parse a ktwindepth value: 1..7 decimal digits, <= SVC_DEPTH_MAX, nothing
 * else. Returns KT_OK or KT_EINVAL ("ktwindepth: ..."). Exposed for the fuzz
 * target. Thread: any.
 */
kt_status svc_api_parse_depth(const char *text, uint32_t *out, kt_err *err);

#endif
