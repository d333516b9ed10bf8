/*
 * services/sc_plugin.h — what the smart-city service plugins share: the
 * service table entry each services/<name>.c exports, the plugin
 * configuration, and small helpers over ktwin.h and cJSON (read a device
 * payload, read the latest state, emit a JSON object, log with a format).
 *
 * A service is one handler for one interface. plugin_one.c turns one
 * service into a plugin (aqi.so, ...); smartcity.c serves all of them from
 * one descriptor (smartcity.so). Events are routed to a handler by the
 * event's interface (real events of the interface and commands addressed
 * to it; none of these services aggregates another interface's events).
 *
 * FIELD NAMES follow KTWIN's services and device simulator (KTWIN.md §2.3,
 * §6); payload keys are matched case-insensitively, as Go's encoding/json
 * does for KTWIN (the weather device sends "WindSpeed", the service's model
 * field is "windSpeed").
 *
 * ERRORS. Data that is not a JSON object: the handler logs and returns
 * KTWIN_EINVAL (the host dead-letters or retries it; nothing is emitted). A
 * payload without the fields a service needs: logged at debug, KTWIN_OK,
 * nothing emitted (KTWIN ignores those too). Host failures (ENOMEM, EIO,
 * ETOOBIG) are returned unchanged, so the call's emits are discarded.
 *
 * Thread: the host's loop (ktwin.h THREADING). Ownership: cJSON trees
 * returned by the helpers are the caller's (cJSON_Delete); the config
 * belongs to the plugin instance (sc_plugin_init / sc_plugin_fini).
 */
#ifndef KT_SERVICES_SC_PLUGIN_H
#define KT_SERVICES_SC_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ktwin.h"

/* Interface names (KTWIN's deployed graph; sim/city.c). */
#define SC_IF_AQO     "ngsi-ld-city-airqualityobserved"
#define SC_IF_POLE    "city-pole"
#define SC_IF_HOOD    "s4city-city-neighborhood"
#define SC_IF_WEATHER "ngsi-ld-city-weatherobserved"
#define SC_IF_CROWD   "ngsi-ld-city-crowdflowobserved"
#define SC_IF_TRAFFIC "ngsi-ld-city-trafficflowobserved"
#define SC_IF_SPOT    "ngsi-ld-city-parkingspot"
#define SC_IF_OFP     "ngsi-ld-city-offstreetparking"
#define SC_IF_LIGHT   "ngsi-ld-city-streetlight"
#define SC_IF_DEVICE  "ngsi-ld-city-device"

/* Plugin configuration: the service's "config" JSON (all keys optional). */
typedef struct sc_config {
    int64_t hood_expiry_ms; /* "neighborhood_expiry_s": a pole's report counts this long (3600) */
    int64_t lamp_limit_ms;  /* "streetlight_defective_after_s": no switch for longer = defective
                               (172800) */
    double battery_low_pct; /* "battery_low_pct": below it, measure every 60 min (15) */
    bool battery_virtual_on_change; /* "battery_virtual": "always" (KTWIN, default) | "on_change" */
    double pressure_steady_hpa;     /* "pressure_steady_hpa": |change| under it is steady (0.1) */
    int64_t parking_default_total; /* "parking_default_total": spots when the graph has none (50) */
} sc_config;

/* The defaults above. */
void sc_config_default(sc_config *out);

/*
 * Parse config_json over the defaults. Returns KTWIN_OK, or KTWIN_EINVAL
 * (not a JSON object, an unknown key, a value of the wrong type or range:
 * *why_out names it, static or in why[0..why_cap)).
 */
int sc_config_parse(const char *config_json, sc_config *out, char *why, size_t why_cap);

typedef int (*sc_handle_fn)(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg);

/* One service: a name for logs, the interface it serves, its handler. */
typedef struct sc_service {
    const char *name;
    const char *const *ifaces; /* { iface, NULL } */
    sc_handle_fn handle;
} sc_service;

extern const sc_service sc_service_aqi;
extern const sc_service sc_service_city_pole;
extern const sc_service sc_service_neighborhood;
extern const sc_service sc_service_weather;
extern const sc_service sc_service_crowd_flow;
extern const sc_service sc_service_traffic_flow;
extern const sc_service sc_service_parking_spot;
extern const sc_service sc_service_offstreet_parking;
extern const sc_service sc_service_streetlight;
extern const sc_service sc_service_device_battery;

/* ktwin_plugin init/fini shared by every plugin: the state is an sc_config. */
int sc_plugin_init(const char *config_json, void **state_out);
void sc_plugin_fini(void *state);

/* ---- helpers for handlers ---------------------------------------------------------- */

/* printf-style ktwin_log (one line, truncated at 512 bytes). */
void sc_logf(ktwin_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The event's data as a JSON object in *out (the caller's). Returns
 * KTWIN_OK, KTWIN_EINVAL (not a JSON object; logged with the instance) or
 * KTWIN_ENOMEM.
 */
int sc_event_object(ktwin_ctx *ctx, const ktwin_event *ev, cJSON **out);

/*
 * The device-reading handlers' start: for a REAL event, sc_event_object;
 * for any other kind, KTWIN_OK with *out = NULL (not this handler's event).
 * *out is NULL whenever the result is not KTWIN_OK, so a handler writes
 * `if (rc != KTWIN_OK || doc == NULL) return rc;`.
 */
int sc_real_object(ktwin_ctx *ctx, const ktwin_event *ev, cJSON **out);

/*
 * The latest stored state of (iface, instance) as a JSON object in *out, or
 * *out = NULL when there is none (or it is not an object). Returns KTWIN_OK
 * or the host's error (KTWIN_EIO, ...).
 */
int sc_latest_object(ktwin_ctx *ctx, const char *iface, const char *instance, cJSON **out);

/* "Now" for an event: its time when it has a valid one, else the wall clock (ms since epoch). */
int64_t sc_event_now_ms(const ktwin_event *ev);

/* A finite number under key (case-insensitive), or false. obj may be NULL. */
bool sc_get_num(const cJSON *obj, const char *key, double *out);

/* A string under key (case-insensitive), borrowed from obj, or NULL. obj may be NULL. */
const char *sc_get_str(const cJSON *obj, const char *key);

/*
 * Set obj[key] (case-sensitive, replacing any value) to a number rounded to
 * `decimals` places (-1: as is), a string, a bool, or an item (taken over,
 * also on failure). On allocation failure *rc becomes KTWIN_ENOMEM (an
 * earlier failure is kept), so a handler sets many fields and checks once.
 */
void sc_set_num(cJSON *obj, const char *key, double v, int decimals, int *rc);
void sc_set_str(cJSON *obj, const char *key, const char *v, int *rc);
void sc_set_bool(cJSON *obj, const char *key, bool v, int *rc);
void sc_set_item(cJSON *obj, const char *key, cJSON *item, int *rc);

/* A new empty object, or NULL with *rc = KTWIN_ENOMEM. */
cJSON *sc_new_object(int *rc);

/* Print obj and ktwin_emit it. Returns ktwin_emit's result or KTWIN_ENOMEM. */
int sc_emit(ktwin_ctx *ctx,
            ktwin_event_kind kind,
            const char *iface,
            const char *command,
            const char *instance,
            const cJSON *obj);

/*
 * The handlers' usual end: when rc is KTWIN_OK, emit obj as the store event
 * of ev's own interface and instance and return sc_emit's result; otherwise
 * return rc unchanged and emit nothing.
 */
int sc_store_self(ktwin_ctx *ctx, const ktwin_event *ev, const cJSON *obj, int rc);

/*
 * The related instance of ev's instance along relationship rel_name (like
 * KTWIN's PublishCommand lookup) and emit command `command` with obj to it.
 * No such relationship: logged at debug, KTWIN_OK and nothing emitted, as
 * KTWIN does (it logs and drops). Built on ktwin_emit_command_rel.
 */
int sc_command_along(ktwin_ctx *ctx,
                     const char *instance,
                     const char *rel_name,
                     const char *command,
                     const cJSON *obj);

#endif
