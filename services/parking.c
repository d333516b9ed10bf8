/*
 * parking.c — the parking-spot and off-street-parking services
 * (ngsi-ld-city-parkingspot, ngsi-ld-city-offstreetparking).
 *
 * Parking spot, real event {"status": "free" | "occupied"}: the change
 * against the spot's latest stored status (formulas.h sc_spot_transition;
 * no stored status = free) becomes KTWIN's command updateVehicleCount to
 * the spot's parking (relationship "refOffStreetParking"):
 * {"vehicleEntranceCount":1} when the spot became occupied,
 * {"vehicleExitCount":1} when it became free, nothing when it did not
 * change. The spot's payload is stored (ktwin.store.<iface>), so the next
 * report compares against it. Other statuses: stored, no command.
 *
 * Off-street parking, command updatevehiclecount {vehicleEntranceCount,
 * vehicleExitCount} (counts >= 0, either optional, both 0 ignored):
 * occupiedSpotNumber += entrances - exits, clamped to [0, totalSpotNumber]
 * (sc_parking_occupied); totalSpotNumber = the number of parking spots whose
 * refOffStreetParking points here in the twin graph, else the stored one,
 * else parking_default_total (50, KTWIN's constant); availableSpotNumber =
 * total - occupied; vehicleEntranceCount / vehicleExitCount accumulate.
 * Stored as ktwin.store.<iface>.
 *
 * Differences from KTWIN: KTWIN sent a command for EVERY report (a spot
 * that said "free" ten times counted ten exits, so counts drifted to 0 or
 * the total), did not store the spot, moved by one whatever the count
 * said, and used a fixed total of 50.
 *
 * Thread: the host's loop. Ownership: every tree is freed before return.
 */
#include <string.h>

#include "formulas.h"
#include "sc_plugin.h"

/* Stored counts above this are not a parking's (a corrupt state): ignored. */
#define SPOTS_MAX 1e6

static int spot_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *doc = NULL;
    cJSON *latest = NULL;
    cJSON *cmd = NULL;
    const char *status;
    int change = 0;
    int rc;
    (void)cfg;
    rc = sc_real_object(ctx, ev, &doc);
    if (rc != KTWIN_OK || doc == NULL) {
        return rc;
    }
    status = sc_get_str(doc, "status");
    if (status == NULL) {
        sc_logf(ctx, KTWIN_LOG_DEBUG, "%s: no status: ignored", ev->instance);
        cJSON_Delete(doc);
        return KTWIN_OK;
    }
    rc = sc_latest_object(ctx, ev->iface, ev->instance, &latest);
    if (rc == KTWIN_OK) {
        change = sc_spot_transition(sc_get_str(latest, "status"), status);
        rc = sc_emit(ctx, KTWIN_EVENT_STORE, ev->iface, NULL, ev->instance, doc);
    }
    if (rc == KTWIN_OK && change != 0) {
        cmd = sc_new_object(&rc);
        if (cmd != NULL) {
            sc_set_num(cmd, change > 0 ? "vehicleEntranceCount" : "vehicleExitCount", 1, -1, &rc);
        }
        if (rc == KTWIN_OK) {
            rc = sc_command_along(ctx, ev->instance, "refOffStreetParking", "updateVehicleCount",
                                  cmd);
        }
    }
    cJSON_Delete(cmd);
    cJSON_Delete(latest);
    cJSON_Delete(doc);
    return rc;
}

/* Parking spots whose refOffStreetParking points at instance; -1 on a host error. */
static int64_t spots_of(ktwin_ctx *ctx, const char *instance)
{
    ktwin_rel small[64];
    ktwin_rel *rels = small;
    size_t total = 0;
    size_t n;
    int64_t count = 0;
    int rc = ktwin_graph_relationships(ctx, instance, KTWIN_REL_IN, small, 64, &total);
    if (rc == KTWIN_ENOTFOUND || rc == KTWIN_ENOTSUP) {
        return 0;
    }
    if (rc != KTWIN_OK) {
        return -1;
    }
    n = total < 64 ? total : 64;
    if (total > 64) {
        rels = cJSON_malloc(total * sizeof(*rels));
        if (rels == NULL) {
            return -1;
        }
        rc = ktwin_graph_relationships(ctx, instance, KTWIN_REL_IN, rels, total, &n);
        if (rc != KTWIN_OK) {
            cJSON_free(rels);
            return -1;
        }
        n = n < total ? n : total;
    }
    for (size_t i = 0; i < n; i++) {
        if (rels[i].incoming && strcmp(rels[i].name, "refOffStreetParking") == 0 &&
            strcmp(rels[i].iface, SC_IF_SPOT) == 0) {
            count++;
        }
    }
    if (rels != small) {
        cJSON_free(rels);
    }
    return count;
}

/* A count field: absent = 0; a negative or non-integral value is invalid (false). */
static bool count_of(const cJSON *obj, const char *key, int64_t *out)
{
    double v = 0.0;
    const cJSON *it = cJSON_GetObjectItem(obj, key);
    *out = 0;
    if (it == NULL) {
        return true;
    }
    if (!sc_get_num(obj, key, &v) || v < 0.0 || v > 1e9 || v != (double)(int64_t)v) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static int offstreet_handle(ktwin_ctx *ctx, const ktwin_event *ev, const sc_config *cfg)
{
    cJSON *cmd = NULL;
    cJSON *latest = NULL;
    cJSON *doc = NULL;
    int64_t in = 0, out = 0, total, occupied = 0;
    double v = 0.0;
    int rc;
    if (!ktwin_event_is(ev, KTWIN_EVENT_COMMAND, NULL, "updateVehicleCount")) {
        return KTWIN_OK;
    }
    rc = sc_event_object(ctx, ev, &cmd);
    if (rc != KTWIN_OK) {
        return rc;
    }
    if (!count_of(cmd, "vehicleEntranceCount", &in) || !count_of(cmd, "vehicleExitCount", &out) ||
        (in == 0 && out == 0)) {
        sc_logf(ctx, KTWIN_LOG_INFO, "%s: updatevehiclecount without valid counts: ignored",
                ev->instance);
        cJSON_Delete(cmd);
        return KTWIN_OK;
    }
    rc = sc_latest_object(ctx, ev->iface, ev->instance, &latest);
    total = rc == KTWIN_OK ? spots_of(ctx, ev->instance) : 0;
    if (total < 0) {
        rc = KTWIN_EIO;
    }
    if (rc == KTWIN_OK) {
        if (total == 0) {
            total = sc_get_num(latest, "totalSpotNumber", &v) && v >= 0.0 && v <= SPOTS_MAX
                        ? (int64_t)v
                        : cfg->parking_default_total;
        }
        if (sc_get_num(latest, "occupiedSpotNumber", &v) && v >= 0.0 && v <= SPOTS_MAX) {
            occupied = (int64_t)v;
        }
        occupied = sc_parking_occupied(occupied, total, in, out);
        doc = sc_new_object(&rc);
    }
    if (rc == KTWIN_OK) {
        double acc_in = 0.0, acc_out = 0.0;
        (void)sc_get_num(latest, "vehicleEntranceCount", &acc_in);
        (void)sc_get_num(latest, "vehicleExitCount", &acc_out);
        sc_set_num(doc, "totalSpotNumber", (double)total, -1, &rc);
        sc_set_num(doc, "occupiedSpotNumber", (double)occupied, -1, &rc);
        sc_set_num(doc, "availableSpotNumber", (double)(total - occupied), -1, &rc);
        sc_set_num(doc, "vehicleEntranceCount", acc_in + (double)in, -1, &rc);
        sc_set_num(doc, "vehicleExitCount", acc_out + (double)out, -1, &rc);
    }
    rc = sc_store_self(ctx, ev, doc, rc);
    cJSON_Delete(doc);
    cJSON_Delete(latest);
    cJSON_Delete(cmd);
    return rc;
}

static const char *const spot_ifaces[] = { SC_IF_SPOT, NULL };
static const char *const offstreet_ifaces[] = { SC_IF_OFP, NULL };

const sc_service sc_service_parking_spot = { "parking-spot", spot_ifaces, spot_handle };
const sc_service sc_service_offstreet_parking = { "offstreet-parking", offstreet_ifaces,
                                                  offstreet_handle };
