/*
 * weather.c — the weather service (ngsi-ld-city-weatherobserved).
 *
 * On a real event with temperature (deg C), relativeHumidity (%),
 * windSpeed (m/s) and atmosphericPressure (hPa), each optional:
 *   dewpoint              Magnus (formulas.h sc_dew_point_c), needs T and RH;
 *   feelsLikeTemperature  wind chill / heat index / T (sc_feels_like_c), needs T;
 *   feelsLikeKind         "windChill" | "heatIndex" | "airTemperature";
 *   pressureTendency      "raising" | "falling" | "steady" against the
 *                         atmosphericPressure of the latest stored state
 *                         (|change| < pressure_steady_hpa: steady; no
 *                         previous state: steady), needs P.
 * Emits ktwin.store.<iface> with the payload plus those fields (2 decimals).
 * Readings outside physical ranges (T -90..70, RH 0..100, wind 0..150 m/s,
 * P 0..2000 hPa) count as missing.
 *
 * Differences from KTWIN: KTWIN's dew point was T - (100 - RH)/5 (a rough
 * rule for RH > 50 %), its feels-like was a wind-chill variant applied at
 * every temperature, and any non-zero pressure change counted.
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <math.h>

#include "formulas.h"
#include "sc_plugin.h"

/* A reading of key within [lo, hi] (physically plausible), else unknown (*out stays NAN). */
static bool in_range(const cJSON *doc, const char *key, double lo, double hi, double *out)
{
    double v = 0.0;
    if (!sc_get_num(doc, key, &v) || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static int weather_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    static const char *const kinds[] = { "airTemperature", "windChill", "heatIndex" };
    cJSON *doc = NULL;
    cJSON *latest = NULL;
    double t = NAN, rh = NAN, wind = NAN, p = NAN, prev = NAN, v = 0.0;
    bool has_t;
    int rc;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    has_t = in_range(doc, "temperature", -90.0, 70.0, &t);
    (void)in_range(doc, "relativeHumidity", 0.0, 100.0, &rh);
    (void)in_range(doc, "windSpeed", 0.0, 150.0, &wind);
    if (in_range(doc, "atmosphericPressure", 0.0, 2000.0, &p)) {
        rc = sc_latest_object(ctx, ev->iface, ev->instance, &latest);
        if (rc != KTWIN_OK) {
            cJSON_Delete(doc);
            return rc;
        }
        if (!sc_get_num(latest, "atmosphericPressure", &prev)) {
            prev = p;
        }
        sc_set_str(doc, "pressureTendency",
                   sc_tendency_name(sc_pressure_tendency(prev, p, cfg->pressure_steady_hpa)), &rc);
    }
    if (has_t && sc_dew_point_c(t, rh, &v)) {
        sc_set_num(doc, "dewpoint", v, 2, &rc);
    }
    if (has_t) {
        sc_feels_kind kind = SC_FEELS_AIR;
        v = sc_feels_like_c(t, rh, wind, &kind);
        sc_set_num(doc, "feelsLikeTemperature", v, 2, &rc);
        sc_set_str(doc, "feelsLikeKind", kinds[kind], &rc);
    }
    rc = sc_store_self(ctx, ev, doc, rc);
    cJSON_Delete(latest);
    cJSON_Delete(doc);
    return rc;
}

static const char *const weather_ifaces[] = { SC_IF_WEATHER, NULL };

const sc_service sc_service_weather = { "weather", weather_ifaces, weather_handle };
