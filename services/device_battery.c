/*
 * device_battery.c — the device (battery) service (ngsi-ld-city-device).
 *
 * On a real event {"batteryLevel": 0..100 (%), "measurementFrequency": min}:
 * the new measurement period is 60 min below battery_low_pct (15 %), else
 * 15 min (formulas.h sc_battery_period_min). Emits ktwin.store.<iface>
 * (payload + measurementFrequency + dateObserved = the event's time) and,
 * as KTWIN does, ktwin.virtual.<iface> {"measurementFrequency": N} back to
 * the device (MQTT ktwin/virtual/ngsi-ld-city-device/<instance>). With
 * config battery_virtual "on_change" the virtual event is sent only when N
 * differs from the frequency the device reported.
 *
 * Differences from KTWIN: a level of exactly 15 % fell between KTWIN's
 * "< 15" and "> 15" branches and sent nothing; 0 % counted as "missing"
 * and was dropped. Levels outside 0..100 are dropped (logged).
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include "formulas.h"
#include "sc_plugin.h"

static int battery_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *doc = NULL;
    cJSON *virt = NULL;
    char now_s[SC_TIME_CAP];
    double level = 0.0;
    double reported = 0.0;
    bool has_reported;
    int period;
    int rc;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    if (!sc_get_num(doc, "batteryLevel", &level) || level < 0.0 || level > 100.0) {
        sc_logf(ctx, KTWIN_LOG_DEBUG, "%s: no batteryLevel in 0..100: ignored", ev->instance);
        cJSON_Delete(doc);
        return KTWIN_OK;
    }
    has_reported = sc_get_num(doc, "measurementFrequency", &reported);
    period = sc_battery_period_min(level, cfg->battery_low_pct);
    sc_time_format(sc_event_now_ms(ev), now_s);
    sc_set_num(doc, "measurementFrequency", period, -1, &rc);
    sc_set_str(doc, "dateObserved", now_s, &rc);
    rc = sc_store_self(ctx, ev, doc, rc);
    if (rc == KTWIN_OK &&
        !(cfg->battery_virtual_on_change && has_reported && reported == (double)period)) {
        virt = sc_new_object(&rc);
        if (virt != NULL) {
            sc_set_num(virt, "measurementFrequency", period, -1, &rc);
        }
        if (rc == KTWIN_OK) {
            rc = sc_emit(ctx, KTWIN_EVENT_VIRTUAL, ev->iface, NULL, ev->instance, virt);
        }
    }
    cJSON_Delete(virt);
    cJSON_Delete(doc);
    return rc;
}

static const char *const battery_ifaces[] = { SC_IF_DEVICE, NULL };

const sc_service sc_service_device_battery = { "device-battery", battery_ifaces, battery_handle };
