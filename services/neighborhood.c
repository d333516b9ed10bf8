/*
 * neighborhood.c — the neighborhood service (s4city-city-neighborhood).
 *
 * On command updateairqualityindex {"aqiLevel", "refCityPole"} (forwarded
 * by a pole): the neighborhood's aqiLevel is the WORST level among its
 * poles' reports of the last hour (config neighborhood_expiry_s). Each
 * pole's latest report is kept in the state under
 * poleAqiLevels.<pole> = {"aqiLevel", "dateObserved"}; the store event
 * carries only this pole's entry (the event store's upsert-merge is deep,
 * so the other poles' entries stay), the recomputed aqiLevel, dateObserved =
 * now (refreshed on every report) and dateModified = now when the level
 * changed. A report without refCityPole (KTWIN's own payload) is kept
 * under "unknown". "Now" is the command's time.
 *
 * Differences from KTWIN: KTWIN kept one level and replaced it when the new
 * one was worse or when dateObserved was over 60 min old, but never
 * refreshed dateObserved, so after the first hour every report overwrote
 * the level (KTWIN.md §6.3). Here expiry is per report and a worse level
 * lasts exactly as long as it is reported.
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <string.h>

#include "formulas.h"
#include "sc_plugin.h"

#define HOOD_MAX_REPORTS 1024 /* poles per neighborhood considered; KTWIN has 50-100 */

static int hood_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    static sc_report reports[HOOD_MAX_REPORTS]; /* loop thread only: not re-entered */
    cJSON *cmd = NULL;
    cJSON *latest = NULL;
    cJSON *doc = NULL;
    cJSON *poles = NULL;
    cJSON *entry = NULL;
    const cJSON *it;
    const char *pole;
    char now_s[SC_TIME_CAP];
    size_t n = 0;
    sc_aqi_level level;
    sc_aqi_level worst;
    int64_t now;
    int rc;
    if (!ktwin_event_is(ev, KTWIN_EVENT_COMMAND, NULL, "updateAirQualityIndex")) {
        return KTWIN_OK;
    }
    rc = sc_event_object(ctx, ev, &cmd);
    if (rc != KTWIN_OK) {
        return rc;
    }
    level = sc_aqi_level_parse(sc_get_str(cmd, "aqiLevel"));
    if (level == SC_AQI_NONE) {
        sc_logf(ctx, KTWIN_LOG_INFO, "%s: updateairqualityindex without a valid aqiLevel: ignored",
                ev->instance);
        cJSON_Delete(cmd);
        return KTWIN_OK;
    }
    pole = sc_get_str(cmd, "refCityPole");
    if (pole == NULL || pole[0] == '\0') {
        pole = "unknown";
    }
    now = sc_event_now_ms(ev);
    sc_time_format(now, now_s);
    rc = sc_latest_object(ctx, ev->iface, ev->instance, &latest);
    if (rc != KTWIN_OK) {
        cJSON_Delete(cmd);
        return rc;
    }
    /* the other poles' reports */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(latest, "poleAqiLevels"))
    {
        int64_t at = 0;
        sc_aqi_level l = sc_aqi_level_parse(sc_get_str(it, "aqiLevel"));
        if (n + 1 >= HOOD_MAX_REPORTS || it->string == NULL || strcmp(it->string, pole) == 0 ||
            l == SC_AQI_NONE || !sc_time_parse_ms(sc_get_str(it, "dateObserved"), &at)) {
            continue;
        }
        reports[n].level = l;
        reports[n].at_ms = at;
        n++;
    }
    reports[n].level = level;
    reports[n].at_ms = now;
    n++;
    worst = sc_worst_recent(reports, n, now, cfg->hood_expiry_ms);

    doc = sc_new_object(&rc);
    if (rc == KTWIN_OK) {
        const char *stored = sc_get_str(latest, "aqiLevel");
        sc_set_str(doc, "aqiLevel", sc_aqi_level_name(worst), &rc);
        sc_set_str(doc, "dateObserved", now_s, &rc);
        if (stored == NULL || strcmp(stored, sc_aqi_level_name(worst)) != 0) {
            sc_set_str(doc, "dateModified", now_s, &rc);
        }
        poles = sc_new_object(&rc);
        entry = sc_new_object(&rc);
        if (entry != NULL) {
            sc_set_str(entry, "aqiLevel", sc_aqi_level_name(level), &rc);
            sc_set_str(entry, "dateObserved", now_s, &rc);
        }
        if (poles != NULL) {
            sc_set_item(poles, pole, entry, &rc);
            entry = NULL;
        }
        sc_set_item(doc, "poleAqiLevels", poles, &rc);
        poles = NULL;
    }
    cJSON_Delete(entry);
    rc = sc_store_self(ctx, ev, doc, rc);
    cJSON_Delete(doc);
    cJSON_Delete(latest);
    cJSON_Delete(cmd);
    return rc;
}

static const char *const hood_ifaces[] = { SC_IF_HOOD, NULL };

const sc_service sc_service_neighborhood = { "neighborhood", hood_ifaces, hood_handle };
