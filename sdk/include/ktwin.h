/*
 * ktwin.h — the public C API of libktwin for twin services.
 *
 * This part is the in-process PLUGIN API: a twin service built as a shared
 * object (.so) that the KTWIN Edge agent or hub loads with dlopen(3) and
 * calls for each event of the interfaces it serves. It is the C counterpart
 * of KTWIN's Go/Python service SDK (KTWIN.md §5): read the event, read the
 * latest stored state of a twin, read the twin graph, and emit
 * ktwin.store / ktwin.virtual / ktwin.command / ktwin.real events.
 *
 * A PLUGIN exports exactly one symbol, KTWIN_PLUGIN_SYMBOL:
 *
 *   #include <ktwin.h>
 *   static int handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state) {
 *       // ev->data: the event data (JSON), NUL-terminated; "" when the event has none
 *       return ktwin_emit_store(ctx, ev->iface, ev->instance, ev->data, ev->data_len);
 *   }
 *   static const char *const ifaces[] = { "ngsi-ld-city-airqualityobserved", NULL };
 *   static const ktwin_plugin plugin = {
 *       .struct_size = sizeof(ktwin_plugin), .abi_version = KTWIN_PLUGIN_ABI_VERSION,
 *       .name = "aqi", .interfaces = ifaces, .handle = handle };
 *   KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void) { return &plugin; }
 *
 * Build it with `cc -shared -fPIC -I<sdk>/include aqi.c -o aqi.so`. No
 * library needs linking: every host service is reached through the function
 * table in the context (the ktwin_* functions below are static inline
 * wrappers over it), so a plugin never depends on symbols of the host
 * executable.
 *
 * TWO WAYS TO RUN THE SAME CODE. (1) In-process: the agent or the hub loads
 * the .so (services.specs "IFACE=/path/aqi.so"). (2) Standalone: link the
 * same source with libktwin and a three-line main calling ktwin_http_main
 * (ktwin_http.h); it serves KTWIN CloudEvents on HTTP POST / like KTWIN's
 * Knative services, and its host table is KTWIN's HTTP APIs (KTWIN_BROKER,
 * KTWIN_EVENT_STORE, KTWIN_GRAPH_URL). docs/sdk.md walks through both.
 *
 * ABI STABILITY. Only C types appear here (no libuv, no cJSON, no project
 * types). Every struct that crosses the boundary starts with its size as
 * the side that filled it compiled it (struct_size); fields are only ever
 * appended. A host accepts a ktwin_plugin whose struct_size covers at least
 * up to `handle`; a plugin that uses a host function added later checks
 * KTWIN_HOST_HAS(ctx, fn) first (the ktwin_* wrappers do, and return
 * KTWIN_ENOTSUP). abi_version changes only on an incompatible change, and
 * then the symbol name changes too (ktwin_plugin_v2).
 *
 * THREADING. init, fini and every handle call run on the host's event loop
 * thread, one at a time, never concurrently (a plugin needs no locks for its
 * own state). Handlers MUST NOT BLOCK: no network calls, no sleeping, no
 * waiting on locks or disks beyond trivial local work; the whole agent (MQTT
 * intake, routing, every other service) waits while a handler runs. Heavy
 * or blocking services belong in an HTTP service instead. A plugin that
 * starts threads of its own must never call any ktwin_* function from them.
 * Standalone (ktwin_http.h), handle runs on a worker thread, still one call
 * at a time, and the host calls themselves block on HTTP; the same code is
 * correct in both modes when it follows the in-process rules.
 *
 * OWNERSHIP. Everything the host hands to a plugin (the event, strings,
 * relationship arrays, latest-state views) is BORROWED and valid only until
 * the handle call returns. Everything a plugin passes to the host (emit
 * arguments) is COPIED before the call returns. The ktwin_ctx is valid only
 * inside the handle call it was given to.
 *
 * FAILURE. handle returns KTWIN_OK or a negative ktwin_status. On failure
 * the host counts and logs it (SVC-PLUGIN-FAIL) and DISCARDS the events
 * emitted during that call (a call is all-or-nothing). What happens to the
 * input event depends on the host. In process (ktwin-agent, ktwin-hub) it
 * is dead-lettered, not retried, whatever the status, KTWIN_EAGAIN included:
 * counted (agent: ktwin_agent_dispatch_dropped_total{reason="service-failed"},
 * hub: ktwin_hub_cloud_dead_letters_total) and logged (DISPATCH-DROP,
 * HUB-CLOUD-DEAD); the event itself, and its store event when the interface
 * persists real events, are still kept. Standalone (ktwin_http.h) the
 * status becomes the HTTP answer (5xx, 503 for KTWIN_EAGAIN), so the caller
 * (the agent's HTTP caller, KTWIN's broker) retries with backoff. A handler
 * may see the same event more than once (retries, a replay after a crash)
 * and should be idempotent. A crash (SIGSEGV) in a plugin takes the process
 * down; durable state is elsewhere, and the event is delivered again after
 * restart.
 */
#ifndef KTWIN_H
#define KTWIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KTWIN_EXPORT __attribute__((visibility("default")))
#else
#define KTWIN_EXPORT
#endif

/* The current plugin ABI and the name of the one symbol a plugin exports. */
#define KTWIN_PLUGIN_ABI_VERSION 1u
#define KTWIN_PLUGIN_SYMBOL      "ktwin_plugin_v1"

/* Results. Values match KTWIN Edge's kt_status where both exist. */
typedef enum ktwin_status {
    KTWIN_OK = 0,
    KTWIN_ENOMEM = -1,
    KTWIN_EINVAL = -2,    /* bad argument (e.g. a name with '.' or '/', data not JSON) */
    KTWIN_EIO = -3,       /* the host's storage failed */
    KTWIN_EAGAIN = -7,    /* transient: the host asks for the event to be retried later */
    KTWIN_ENOTFOUND = -8, /* no such instance / interface / relationship / state */
    KTWIN_ETOOBIG = -11,  /* over a host cap (data size, emits per call) */
    KTWIN_ENOTSUP = -12,  /* host too old for this function */
    KTWIN_EFAIL = -100    /* plugin-defined failure; any other negative value is also failure */
} ktwin_status;

/* Event kinds: the second part of a CloudEvent type "ktwin.<kind>.<iface>[.<command>]". */
typedef enum ktwin_event_kind {
    KTWIN_EVENT_REAL = 1,    /* ktwin.real.<iface>: device (or service) -> twin */
    KTWIN_EVENT_VIRTUAL = 2, /* ktwin.virtual.<iface>: twin -> device (MQTT ktwin/virtual/..) */
    KTWIN_EVENT_COMMAND = 3, /* ktwin.command.<iface>.<command>: twin -> twin */
    KTWIN_EVENT_STORE = 4    /* ktwin.store.<iface>: persist as the latest state (upsert-merge) */
} ktwin_event_kind;

/*
 * A received event, read-only and borrowed for the handle call. All strings
 * are NUL-terminated and never NULL ("" when absent), except command, which
 * is NULL unless kind is KTWIN_EVENT_COMMAND.
 */
typedef struct ktwin_event {
    uint32_t struct_size; /* sizeof(ktwin_event) as the host built it */
    ktwin_event_kind kind;
    const char *type;     /* full CloudEvent type, e.g. "ktwin.real.city-pole" */
    const char *iface;    /* twin interface, e.g. "city-pole" */
    const char *command;  /* lower-case command name (COMMAND only), else NULL */
    const char *instance; /* CloudEvent source: the twin instance, e.g. "city-pole-nb001-p00007"
                             (for commands: the TARGET instance, as KTWIN's Go SDK sets it) */
    const char *id;       /* CloudEvent id */
    const char *time;     /* RFC 3339 UTC, "" when the producer sent none */
    const char *data;     /* the data, normally JSON; NUL-terminated (not counted) */
    size_t data_len;
} ktwin_event;

/* One edge of the twin graph, borrowed for the handle call. */
typedef struct ktwin_rel {
    const char *name;     /* relationship name, e.g. "parent" */
    const char *iface;    /* interface of the other end */
    const char *instance; /* the other end: the target (outgoing) or the source (incoming) */
    int incoming;         /* 0: instance --name--> other; 1: other --name--> instance */
} ktwin_rel;

/* Which edges ktwin_graph_relationships returns. */
enum {
    KTWIN_REL_OUT = 1u << 0, /* the instance's own relationships (KTWIN graph JSON) */
    KTWIN_REL_IN = 1u << 1   /* relationships of other instances that point at it */
};

/* The latest stored state of an instance (merged store events), borrowed for the call. */
typedef struct ktwin_state {
    uint32_t struct_size; /* set by the caller to sizeof(ktwin_state) before the call */
    const char *id;       /* id of the store event that last changed it */
    const char *time;     /* RFC 3339 UTC of that event */
    const char *data;     /* the merged JSON document, NUL-terminated */
    size_t data_len;
} ktwin_state;

/* Log levels for ktwin_log (as KTWIN Edge's logger: 0 = error .. 4 = debug). */
enum {
    KTWIN_LOG_ERR = 0,
    KTWIN_LOG_WARN = 1,
    KTWIN_LOG_NOTICE = 2,
    KTWIN_LOG_INFO = 3,
    KTWIN_LOG_DEBUG = 4
};

typedef struct ktwin_ctx ktwin_ctx;

/*
 * The host's function table. Plugins do not call these pointers directly;
 * use the ktwin_* wrappers below. Fields are appended, never reordered.
 */
typedef struct ktwin_host_api {
    uint32_t struct_size; /* sizeof(ktwin_host_api) as the host built it */
    uint32_t abi_version; /* KTWIN_PLUGIN_ABI_VERSION of the host */
    int (*emit)(ktwin_ctx *ctx,
                ktwin_event_kind kind,
                const char *iface,
                const char *command,
                const char *instance,
                const char *data,
                size_t data_len);
    int (*graph_relationships)(ktwin_ctx *ctx,
                               const char *instance,
                               unsigned which,
                               ktwin_rel *out,
                               size_t cap,
                               size_t *n_total);
    int (*graph_instances)(ktwin_ctx *ctx,
                           const char *iface,
                           size_t offset,
                           const char **out,
                           size_t cap,
                           size_t *n_total);
    int (*graph_instance_iface)(ktwin_ctx *ctx, const char *instance, const char **iface_out);
    int (*latest)(ktwin_ctx *ctx, const char *iface, const char *instance, ktwin_state *out);
    void (*log)(ktwin_ctx *ctx, int level, const char *msg);
} ktwin_host_api;

/*
 * The context of one handle call. Opaque to plugins apart from its first
 * field, through which the inline wrappers reach the host; the host's own
 * struct starts with this one.
 */
struct ktwin_ctx {
    const ktwin_host_api *api;
};

/* true when the host's table has function fn (a later ABI addition may be missing). */
#define KTWIN_HOST_HAS(ctx, fn)                                                          \
    ((ctx) != NULL && (ctx)->api != NULL &&                                              \
     (ctx)->api->struct_size >= offsetof(ktwin_host_api, fn) + sizeof((ctx)->api->fn) && \
     (ctx)->api->fn != NULL)

/*
 * The plugin descriptor, returned by the exported KTWIN_PLUGIN_SYMBOL
 * function. It must stay valid (normally static) until fini returns.
 */
typedef struct ktwin_plugin {
    uint32_t struct_size; /* sizeof(ktwin_plugin) */
    uint32_t abi_version; /* KTWIN_PLUGIN_ABI_VERSION */
    const char *name;     /* short name for logs and metrics, e.g. "aqi" */
    /*
     * NULL-terminated list of the interfaces this plugin serves, or NULL to
     * serve whatever interfaces the host configuration assigns to it. When
     * both exist, the host serves the configured ones and warns about any
     * that the plugin does not list.
     */
    const char *const *interfaces;
    /*
     * Optional. Called once after loading, before any handle. config_json is
     * the service's "config" text from the host configuration ("{}" when
     * none). *state_out is passed to handle and fini. Non-zero = the plugin
     * refuses to start (the host reports it and does not serve its interfaces).
     */
    int (*init)(const char *config_json, void **state_out);
    /* Optional. Called once at unload, after the last handle. */
    void (*fini)(void *state);
    /*
     * Required. One event of a served interface (real events of it, real
     * events of interfaces it aggregates, and commands addressed to it).
     * Returns KTWIN_OK, or a negative value (see FAILURE above).
     */
    int (*handle)(ktwin_ctx *ctx, const ktwin_event *ev, void *state);
} ktwin_plugin;

/* The one symbol a plugin exports; the host finds it with dlsym(KTWIN_PLUGIN_SYMBOL). */
typedef const ktwin_plugin *(*ktwin_plugin_entry_fn)(void);

/* ------------------------------------------------------- host services */

/*
 * Emit an event (copied). iface and instance are twin names (non-empty, no
 * '.', '/', '#', '+' or whitespace); data is JSON text of data_len bytes
 * (data_len 0 or data NULL means "{}"). The host gives it a fresh unique id and
 * the current time, and routes it after handle returns successfully.
 * Returns KTWIN_OK, KTWIN_EINVAL (bad name, data not a JSON object),
 * KTWIN_ETOOBIG (data over the host's cap, or too many emits in one call).
 */
static inline int ktwin_emit(ktwin_ctx *ctx,
                             ktwin_event_kind kind,
                             const char *iface,
                             const char *command,
                             const char *instance,
                             const char *data,
                             size_t data_len)
{
    if (!KTWIN_HOST_HAS(ctx, emit)) {
        return KTWIN_ENOTSUP;
    }
    return ctx->api->emit(ctx, kind, iface, command, instance, data, data_len);
}

/* ktwin.store.<iface>, source instance: update the twin's latest state (upsert-merge). */
static inline int ktwin_emit_store(
    ktwin_ctx *ctx, const char *iface, const char *instance, const char *data, size_t data_len)
{
    return ktwin_emit(ctx, KTWIN_EVENT_STORE, iface, NULL, instance, data, data_len);
}

/* ktwin.virtual.<iface>: to the real twin (device), like Go's PublishToRealTwin. */
static inline int ktwin_emit_virtual(
    ktwin_ctx *ctx, const char *iface, const char *instance, const char *data, size_t data_len)
{
    return ktwin_emit(ctx, KTWIN_EVENT_VIRTUAL, iface, NULL, instance, data, data_len);
}

/* ktwin.real.<iface>: as if the device had sent it, like Go's PublishToVirtualTwin. */
static inline int ktwin_emit_real(
    ktwin_ctx *ctx, const char *iface, const char *instance, const char *data, size_t data_len)
{
    return ktwin_emit(ctx, KTWIN_EVENT_REAL, iface, NULL, instance, data, data_len);
}

/*
 * ktwin.command.<target_iface>.<lower(command)> with source = target_instance
 * (KTWIN's Go SDK convention). command: [A-Za-z0-9_-]+, lower-cased by the host.
 */
static inline int ktwin_emit_command(ktwin_ctx *ctx,
                                     const char *target_iface,
                                     const char *command,
                                     const char *target_instance,
                                     const char *data,
                                     size_t data_len)
{
    return ktwin_emit(ctx, KTWIN_EVENT_COMMAND, target_iface, command, target_instance, data,
                      data_len);
}

/*
 * The edges of instance selected by which (KTWIN_REL_OUT | KTWIN_REL_IN):
 * fills out[0..min(cap, total)) and sets *n_total (may be NULL) to the
 * number there are, so a caller can size a second call. Outgoing edges come
 * first, in declaration order. Returns KTWIN_OK or KTWIN_ENOTFOUND (no such
 * instance in this host's graph). Borrowed strings, valid for the call.
 */
static inline int ktwin_graph_relationships(ktwin_ctx *ctx,
                                            const char *instance,
                                            unsigned which,
                                            ktwin_rel *out,
                                            size_t cap,
                                            size_t *n_total)
{
    if (!KTWIN_HOST_HAS(ctx, graph_relationships)) {
        return KTWIN_ENOTSUP;
    }
    return ctx->api->graph_relationships(ctx, instance, which, out, cap, n_total);
}

/*
 * The first outgoing relationship of instance named rel_name, like Go's
 * GetRelationshipFromGraph (used before ktwin_emit_command), among the
 * instance's first 32 outgoing edges (use ktwin_graph_relationships for
 * more). Returns KTWIN_OK with *out filled, or KTWIN_ENOTFOUND.
 */
static inline int
ktwin_graph_relationship(ktwin_ctx *ctx, const char *instance, const char *rel_name, ktwin_rel *out)
{
    ktwin_rel rels[32];
    size_t total = 0;
    size_t off;
    int rc = ktwin_graph_relationships(ctx, instance, KTWIN_REL_OUT, rels, 32, &total);
    if (rc != KTWIN_OK) {
        return rc;
    }
    for (off = 0; off < total && off < 32; off++) {
        const char *a = rels[off].name;
        const char *b = rel_name;
        while (*a != '\0' && *a == *b) {
            a++;
            b++;
        }
        if (*a == *b) {
            *out = rels[off];
            return KTWIN_OK;
        }
    }
    return KTWIN_ENOTFOUND;
}

/* Internal: string equality (case-insensitive for ASCII when nocase), NULL-safe. */
static inline int ktwin__streq(const char *a, const char *b, int nocase)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    for (;; a++, b++) {
        char x = *a;
        char y = *b;
        if (nocase) {
            x = (x >= 'A' && x <= 'Z') ? (char)(x - 'A' + 'a') : x;
            y = (y >= 'A' && y <= 'Z') ? (char)(y - 'A' + 'a') : y;
        }
        if (x != y) {
            return 0;
        }
        if (x == '\0') {
            return 1;
        }
    }
}

/*
 * The first outgoing relationship of instance whose other end has interface
 * target_iface, like Go's GetTwinGraphByRelation(targetIface, srcInstance)
 * (but looking at instance's own edges, which KTWIN's version forgets to
 * do), among the instance's first 32 outgoing edges. Returns KTWIN_OK with
 * *out filled (borrowed for the call), KTWIN_ENOTFOUND, or what
 * ktwin_graph_relationships returned. Thread and ownership: as
 * ktwin_graph_relationships (handle call only; nothing to free).
 */
static inline int ktwin_graph_relationship_to(ktwin_ctx *ctx,
                                              const char *instance,
                                              const char *target_iface,
                                              ktwin_rel *out)
{
    ktwin_rel rels[32];
    size_t total = 0;
    size_t i;
    int rc = ktwin_graph_relationships(ctx, instance, KTWIN_REL_OUT, rels, 32, &total);
    if (rc != KTWIN_OK) {
        return rc;
    }
    for (i = 0; i < total && i < 32; i++) {
        if (ktwin__streq(rels[i].iface, target_iface, 0)) {
            *out = rels[i];
            return KTWIN_OK;
        }
    }
    return KTWIN_ENOTFOUND;
}

/*
 * Emit command to the instance at the end of instance's relationship
 * rel_name, like Go's PublishCommand(cmd, payload, relName, instance, graph):
 * ktwin.command.<rel iface>.<lower(command)> with source = the related
 * instance. Returns KTWIN_ENOTFOUND when instance has no such relationship,
 * else as ktwin_emit_command. data is copied. Handle call only.
 */
static inline int ktwin_emit_command_rel(ktwin_ctx *ctx,
                                         const char *instance,
                                         const char *rel_name,
                                         const char *command,
                                         const char *data,
                                         size_t data_len)
{
    ktwin_rel rel;
    int rc = ktwin_graph_relationship(ctx, instance, rel_name, &rel);
    if (rc != KTWIN_OK) {
        return rc;
    }
    return ktwin_emit_command(ctx, rel.iface, command, rel.instance, data, data_len);
}

/*
 * Decoding filter, like Go's kevent.HandleEvent(ev, iface, cb) and
 * kcommand.HandleCommand(ev, iface, cmd, ...): 1 when ev is of kind, its
 * interface is iface (NULL: any) and, for KTWIN_EVENT_COMMAND, its command
 * is command compared case-insensitively (NULL: any); else 0. The parts of
 * the type ("ktwin.<kind>.<iface>[.<command>]") are already decoded in
 * ev->kind, ev->iface and ev->command. Pure; any thread.
 */
static inline int
ktwin_event_is(const ktwin_event *ev, ktwin_event_kind kind, const char *iface, const char *command)
{
    if (ev == NULL || ev->kind != kind) {
        return 0;
    }
    if (iface != NULL && !ktwin__streq(ev->iface, iface, 0)) {
        return 0;
    }
    if (kind == KTWIN_EVENT_COMMAND && command != NULL && !ktwin__streq(ev->command, command, 1)) {
        return 0;
    }
    return 1;
}

/*
 * Instance names of interface iface (exactly that interface, in graph
 * order), from position offset: fills out[0..) with at most cap names and
 * sets *n_total (may be NULL) to the total count. Returns KTWIN_OK or
 * KTWIN_ENOTFOUND (unknown interface).
 */
static inline int ktwin_graph_instances(
    ktwin_ctx *ctx, const char *iface, size_t offset, const char **out, size_t cap, size_t *n_total)
{
    if (!KTWIN_HOST_HAS(ctx, graph_instances)) {
        return KTWIN_ENOTSUP;
    }
    return ctx->api->graph_instances(ctx, iface, offset, out, cap, n_total);
}

/* The interface of instance (*iface_out borrowed). KTWIN_OK or KTWIN_ENOTFOUND. */
static inline int
ktwin_graph_instance_iface(ktwin_ctx *ctx, const char *instance, const char **iface_out)
{
    if (!KTWIN_HOST_HAS(ctx, graph_instance_iface)) {
        return KTWIN_ENOTSUP;
    }
    return ctx->api->graph_instance_iface(ctx, instance, iface_out);
}

/*
 * The latest stored state of (iface, instance), like Go's
 * GetLatestTwinEvent. Returns KTWIN_OK with *out filled (borrowed for the
 * call), KTWIN_ENOTFOUND when nothing was stored yet, KTWIN_EIO when the
 * host's store failed. Events emitted earlier in the same call are not yet
 * visible here.
 */
static inline int
ktwin_latest(ktwin_ctx *ctx, const char *iface, const char *instance, ktwin_state *out)
{
    if (!KTWIN_HOST_HAS(ctx, latest)) {
        return KTWIN_ENOTSUP;
    }
    out->struct_size = (uint32_t)sizeof(*out);
    return ctx->api->latest(ctx, iface, instance, out);
}

/* Log one line through the host's logger (id SVC-PLUGIN-LOG, with the plugin's name). */
static inline void ktwin_log(ktwin_ctx *ctx, int level, const char *msg)
{
    if (KTWIN_HOST_HAS(ctx, log)) {
        ctx->api->log(ctx, level, msg);
    }
}

#ifdef __cplusplus
}
#endif

#endif
