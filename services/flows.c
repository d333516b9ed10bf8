/*
 * flows.c — the crowd-flow and traffic-flow services
 * (ngsi-ld-city-crowdflowobserved, ngsi-ld-city-trafficflowobserved).
 *
 * On a real event: congested (formulas.h sc_crowd_congested on
 * averageCrowdSpeed / averageHeadwayTime, sc_traffic_congested on
 * averageVehicleSpeed / averageHeadwayTime) added to the payload and
 * stored (ktwin.store.<iface>). A payload with neither field is stored
 * without "congested".
 *
 * Difference from KTWIN: a missing field is unknown, not 0 (KTWIN's Go
 * model defaulted it to 0 and so reported congestion for an empty payload).
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <math.h>

#include "formulas.h"
#include "sc_plugin.h"

static int flow_handle(ktwin_ctx *ctx, const ktwin_event *ev, bool crowd)
{
    cJSON *doc = NULL;
    double speed = NAN;
    double headway = NAN;
    int congested;
    int rc;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    (void)sc_get_num(doc, crowd ? "averageCrowdSpeed" : "averageVehicleSpeed", &speed);
    (void)sc_get_num(doc, "averageHeadwayTime", &headway);
    congested = crowd ? sc_crowd_congested(speed, headway) : sc_traffic_congested(speed, headway);
    if (congested >= 0) {
        sc_set_bool(doc, "congested", congested == 1, &rc);
    }
    rc = sc_store_self(ctx, ev, doc, rc);
    cJSON_Delete(doc);
    return rc;
}

static int crowd_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    (void)cfg;
    return flow_handle(ctx, ev, true);
}

static int traffic_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    (void)cfg;
    return flow_handle(ctx, ev, false);
}

static const char *const crowd_ifaces[] = { SC_IF_CROWD, NULL };
static const char *const traffic_ifaces[] = { SC_IF_TRAFFIC, NULL };

const sc_service sc_service_crowd_flow = { "crowd-flow", crowd_ifaces, crowd_handle };
const sc_service sc_service_traffic_flow = { "traffic-flow", traffic_ifaces, traffic_handle };
