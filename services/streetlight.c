/*
 * streetlight.c — the streetlight service (ngsi-ld-city-streetlight).
 *
 * On a real event {"powerState": "on" | "off" | "low" | "bootingUp"}: a
 * lamp is lit in every state but "off". When it switched (no stored state,
 * or lit-ness differs from the stored powerState), dateLastSwitchingOn (now
 * lit) or dateLastSwitchingOff (now off) becomes now and a "defectiveLamp"
 * status is cleared to "ok". When it did not switch and the stored
 * dateLastSwitching{On|Off} of its current state is older than
 * streetlight_defective_after_s (48 h): status = "defectiveLamp" (a street
 * lamp switches at least daily; one stuck on or off for two days is
 * broken). Other statuses (columnIssue, ...) are left alone. Stored as
 * ktwin.store.<iface>: the payload plus the changed fields. "Now" is the
 * event's time.
 *
 * Difference from KTWIN: KTWIN refreshed dateLastSwitching on every report
 * of the SAME state (so a lamp that reports more often than every 48 h was
 * never flagged) and left it unchanged on a real switch.
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <stdio.h>
#include <string.h>

#include "formulas.h"
#include "sc_plugin.h"

static bool valid_state(const char *s)
{
    return s != NULL && (strcmp(s, "on") == 0 || strcmp(s, "off") == 0 || strcmp(s, "low") == 0 ||
                         strcmp(s, "bootingUp") == 0);
}

static int light_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *doc = NULL;
    cJSON *latest = NULL;
    const char *state;
    const char *prev;
    const char *stored_status;
    const char *key;
    char now_s[SC_TIME_CAP];
    int64_t now;
    int64_t since = 0;
    bool lit;
    int rc;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    state = sc_get_str(doc, "powerState");
    if (!valid_state(state)) {
        sc_logf(ctx, KTWIN_LOG_DEBUG, "%s: no valid powerState: ignored", ev->instance);
        cJSON_Delete(doc);
        return KTWIN_OK;
    }
    rc = sc_latest_object(ctx, ev->iface, ev->instance, &latest);
    if (rc != KTWIN_OK) {
        cJSON_Delete(doc);
        return rc;
    }
    now = sc_event_now_ms(ev);
    sc_time_format(now, now_s);
    lit = strcmp(state, "off") != 0;
    key = lit ? "dateLastSwitchingOn" : "dateLastSwitchingOff";
    prev = sc_get_str(latest, "powerState");
    stored_status = sc_get_str(latest, "status");
    if (!valid_state(prev) || (strcmp(prev, "off") != 0) != lit) {
        sc_set_str(doc, key, now_s, &rc); /* switched (or first report) */
        if (stored_status == NULL || strcmp(stored_status, "defectiveLamp") == 0) {
            sc_set_str(doc, "status", "ok", &rc);
        }
    } else if (!sc_time_parse_ms(sc_get_str(latest, key), &since)) {
        sc_set_str(doc, key, now_s, &rc); /* state known, its start not: start counting now */
    } else if (sc_lamp_stuck(since, now, cfg->lamp_limit_ms)) {
        if (stored_status == NULL || strcmp(stored_status, "defectiveLamp") != 0) {
            sc_logf(ctx, KTWIN_LOG_NOTICE, "%s: %s since %s: defectiveLamp", ev->instance, state,
                    sc_get_str(latest, key));
        }
        sc_set_str(doc, "status", "defectiveLamp", &rc);
    }
    rc = sc_store_self(ctx, ev, doc, rc);
    cJSON_Delete(latest);
    cJSON_Delete(doc);
    return rc;
}

static const char *const light_ifaces[] = { SC_IF_LIGHT, NULL };

const sc_service sc_service_streetlight = { "streetlight", light_ifaces, light_handle };
