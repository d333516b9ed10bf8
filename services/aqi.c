/*
 * aqi.c — the air-quality service (ngsi-ld-city-airqualityobserved).
 *
 * On a real event of an air-quality observer: the EPA AQI of each pollutant
 * KTWIN grades (CODensity, PM10Density, PM25Density, SO2Density, O3Density;
 * formulas.h sc_aqi_index), its category in <P>AqiLevel (KTWIN's fields) and
 * the index in <P>Aqi; the overall aqi/aqiLevel is the WORST pollutant's
 * (EPA: the highest index is reported), with aqiMainPollutant naming it.
 * Emits ktwin.store.<iface> (the payload plus those fields), then KTWIN's
 * command updateAirQualityIndex {"aqiLevel"} to the observer's pole
 * (relationship "citypole") -> ktwin.command.city-pole.updateairqualityindex.
 *
 * Differences from KTWIN (docs/services.md): the index interpolates over
 * the concentration bounds (KTWIN used the index bound as C_hi); the
 * overall level is the worst, not the first non-GOOD in a fixed order; the
 * command is sent also when everything is GOOD (KTWIN sent "{}").
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <stdio.h>

#include "formulas.h"
#include "sc_plugin.h"

static int aqi_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *doc = NULL;
    cJSON *cmd = NULL;
    int worst = -1;
    sc_pollutant main_p = SC_POLL_CO;
    int rc;
    (void)cfg;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    for (int p = 0; p < SC_POLL_COUNT; p++) {
        char key[32];
        double conc = 0.0;
        int aqi = 0;
        const char *name = sc_pollutant_name((sc_pollutant)p);
        (void)snprintf(key, sizeof key, "%sDensity", name);
        if (!sc_get_num(doc, key, &conc) || !sc_aqi_index((sc_pollutant)p, conc, &aqi)) {
            continue;
        }
        (void)snprintf(key, sizeof key, "%sAqiLevel", name);
        sc_set_str(doc, key, sc_aqi_level_name(sc_aqi_level_of_index(aqi)), &rc);
        (void)snprintf(key, sizeof key, "%sAqi", name);
        sc_set_num(doc, key, aqi, -1, &rc);
        if (aqi > worst) {
            worst = aqi;
            main_p = (sc_pollutant)p;
        }
    }
    if (worst < 0) {
        sc_logf(ctx, KTWIN_LOG_DEBUG, "%s: no pollutant concentration to grade", ev->instance);
        cJSON_Delete(doc);
        return KTWIN_OK;
    }
    sc_set_num(doc, "aqi", worst, -1, &rc);
    sc_set_str(doc, "aqiLevel", sc_aqi_level_name(sc_aqi_level_of_index(worst)), &rc);
    sc_set_str(doc, "aqiMainPollutant", sc_pollutant_name(main_p), &rc);
    rc = sc_store_self(ctx, ev, doc, rc);
    cmd = sc_new_object(&rc);
    if (rc == KTWIN_OK) {
        sc_set_str(cmd, "aqiLevel", sc_aqi_level_name(sc_aqi_level_of_index(worst)), &rc);
    }
    if (rc == KTWIN_OK) {
        rc = sc_command_along(ctx, ev->instance, "citypole", "updateAirQualityIndex", cmd);
    }
    cJSON_Delete(cmd);
    cJSON_Delete(doc);
    return rc;
}

static const char *const aqi_ifaces[] = { SC_IF_AQO, NULL };

const sc_service sc_service_aqi = { "aqi", aqi_ifaces, aqi_handle };
