/*
 * city_pole.c — the city-pole service (city-pole).
 *
 * On command updateairqualityindex {"aqiLevel"} (sent by the pole's
 * air-quality observer): forwards it, as KTWIN does, to the pole's
 * neighborhood (relationship "refNeighborhood") as
 * ktwin.command.s4city-city-neighborhood.updateairqualityindex, adding
 * "refCityPole": <this pole> so the neighborhood can keep one report per
 * pole. A level that is not one of the six categories is dropped (logged).
 * Real events of a pole: nothing (KTWIN's service ignores them too).
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */

#include "formulas.h"
#include "sc_plugin.h"

static int pole_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *doc = NULL;
    int rc;
    (void)cfg;
    if (!ktwin_event_is(ev, KTWIN_EVENT_COMMAND, NULL, "updateAirQualityIndex")) {
        return KTWIN_OK;
    }
    rc = sc_event_object(ctx, ev, &doc);
    if (rc != KTWIN_OK) {
        return rc;
    }
    if (sc_aqi_level_parse(sc_get_str(doc, "aqiLevel")) == SC_AQI_NONE) {
        sc_logf(ctx, KTWIN_LOG_INFO, "%s: updateairqualityindex without a valid aqiLevel: dropped",
                ev->instance);
        cJSON_Delete(doc);
        return KTWIN_OK;
    }
    sc_set_str(doc, "refCityPole", ev->instance, &rc);
    if (rc == KTWIN_OK) {
        rc = sc_command_along(ctx, ev->instance, "refNeighborhood", "updateAirQualityIndex", doc);
    }
    cJSON_Delete(doc);
    return rc;
}

static const char *const pole_ifaces[] = { SC_IF_POLE, NULL };

const sc_service sc_service_city_pole = { "city-pole", pole_ifaces, pole_handle };
