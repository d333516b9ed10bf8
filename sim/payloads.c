/*
 * payloads.c — KTWIN's device payloads (see payloads.h).
 *
 * DESIGN: each device type is a table of fields already in json.Marshal's
 * key order (byte order, so upper case first). A field is a constant, a
 * pattern of three values (A / default / B by msg_count), msg_count itself
 * or the timestamp. The values come from the Go builders of
 * ktwin-smart-cities-devices; KTWIN.md §7 lists the ones each window gets.
 *
 * Thread: any (read-only tables).
 */
#include "payloads.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define FULL_PERIOD 10u
#define PART_PERIOD 4u

typedef enum field_type {
    F_INT,   /* pattern of integers a / d / b */
    F_STR,   /* pattern of strings sa / sd / sb */
    F_COUNT, /* msg_count */
    F_TS     /* the timestamp */
} field_type;

typedef struct field {
    const char *key;
    field_type type;
    int a, d, b;              /* F_INT: value A, default, value B */
    const char *sa, *sd, *sb; /* F_STR */
    unsigned part, full;      /* the pattern's periods; 0 = PART_PERIOD / FULL_PERIOD */
} field;

#define CONST_INT(k, v)                                   \
    {                                                     \
        (k), F_INT, (v), (v), (v), NULL, NULL, NULL, 0, 0 \
    }
#define PAT_INT(k, a, d, b)                               \
    {                                                     \
        (k), F_INT, (a), (d), (b), NULL, NULL, NULL, 0, 0 \
    }
#define PAT_STR(k, a, d, b)                      \
    {                                            \
        (k), F_STR, 0, 0, 0, (a), (d), (b), 0, 0 \
    }
#define COUNT                                                 \
    {                                                         \
        "msg_count", F_COUNT, 0, 0, 0, NULL, NULL, NULL, 0, 0 \
    }
#define TS(k)                                      \
    {                                              \
        (k), F_TS, 0, 0, 0, NULL, NULL, NULL, 0, 0 \
    }
#define END                                          \
    {                                                \
        NULL, F_INT, 0, 0, 0, NULL, NULL, NULL, 0, 0 \
    }

static const field f_air_quality[] = { CONST_INT("ASDensity", 8),
                                       CONST_INT("C6H6Density", 8),
                                       CONST_INT("CDDensity", 8),
                                       CONST_INT("CO2Density", 8),
                                       CONST_INT("CODensity", 8),
                                       CONST_INT("NIDensity", 8),
                                       CONST_INT("NO2Density", 8),
                                       CONST_INT("NODensity", 8),
                                       CONST_INT("O3Density", 8),
                                       CONST_INT("PBDensity", 8),
                                       CONST_INT("PM10Density", 8),
                                       CONST_INT("PM1Density", 8),
                                       CONST_INT("PM25Density", 8),
                                       CONST_INT("SH2Density", 8),
                                       CONST_INT("SO2Density", 8),
                                       CONST_INT("WindDirection", 8),
                                       CONST_INT("WindSpeed", 8),
                                       COUNT,
                                       CONST_INT("precipitation", 8),
                                       CONST_INT("relativeHumidity", 8),
                                       CONST_INT("reliability", 8),
                                       CONST_INT("temperature", 8),
                                       TS("timestamp"),
                                       CONST_INT("volatileOrganicCompoundsTotal", 0),
                                       END };

static const field f_weather[] = { CONST_INT("WindDirection", 8),
                                   CONST_INT("WindSpeed", 8),
                                   CONST_INT("atmosphericPressure", 10),
                                   CONST_INT("dewpoint", 8),
                                   CONST_INT("illuminance", 8),
                                   COUNT,
                                   CONST_INT("precipitation", 8),
                                   CONST_INT("relativeHumidity", 8),
                                   CONST_INT("snowHeight", 8),
                                   CONST_INT("solarRadiation", 8),
                                   CONST_INT("streamGauge", 8),
                                   CONST_INT("temperature", 8),
                                   TS("timestamp"),
                                   CONST_INT("uVIndexMax", 8),
                                   CONST_INT("visibility", 8),
                                   END };

static const field f_noise[] = { CONST_INT("LASSoundPressure", 10),
                                 CONST_INT("LAeqSoundPressure", 8),
                                 CONST_INT("LAeq_dSoundPressure", 8),
                                 CONST_INT("LAmaxSoundPressure", 8),
                                 COUNT,
                                 TS("timestamp"),
                                 END };

static const field f_crowd_flow[] = { PAT_INT("averageCrowdSpeed", 2, 2, 8),
                                      PAT_INT("averageHeadwayTime", 1, 2, 6),
                                      TS("dateObservedFrom"),
                                      TS("dateObservedTo"),
                                      COUNT,
                                      PAT_INT("peopleCount", 50, 2, 5),
                                      END };

static const field f_traffic_flow[] = { PAT_INT("averageGapDistance", 3, 3, 50),
                                        PAT_INT("averageHeadwayTime", 1, 5, 5),
                                        PAT_INT("averageVehicleLength", 200, 200, 5),
                                        PAT_INT("averageVehicleSpeed", 10, 10, 50),
                                        TS("dateObservedFrom"),
                                        TS("dateObservedTo"),
                                        COUNT,
                                        END };

static const field f_streetlight[] = { COUNT, PAT_STR("powerState", "off", "off", "on"),
                                       TS("timestamp"), END };

static const field f_ev_charging[] = { PAT_INT("availableCapacity", 1, 1, 3), COUNT,
                                       TS("timestamp"), END };

static const field f_parking_spot[] = { COUNT, PAT_STR("status", "free", "free", "occupied"),
                                        TS("timestamp"), END };

/* measurementFrequency: KTWIN calls the pattern with part + part/3, full + part/3. */
static const field f_battery[] = { PAT_INT("batteryLevel", 90, 90, 12),
                                   { "measurementFrequency", F_INT, 15, 90, 60, NULL, NULL, NULL,
                                     PART_PERIOD + PART_PERIOD / 3, FULL_PERIOD + PART_PERIOD / 3 },
                                   COUNT,
                                   TS("timestamp"),
                                   END };

typedef struct kind_info {
    const char *iface;
    const char *name;
    const field *fields;
} kind_info;

static const kind_info kinds[SIM_KIND_COUNT] = {
    [SIM_KIND_AIR_QUALITY] = { "ngsi-ld-city-airqualityobserved", "air-quality", f_air_quality },
    [SIM_KIND_WEATHER] = { "ngsi-ld-city-weatherobserved", "weather", f_weather },
    [SIM_KIND_NOISE] = { "ngsi-ld-city-noiselevelobserved", "noise-level", f_noise },
    [SIM_KIND_CROWD_FLOW] = { "ngsi-ld-city-crowdflowobserved", "crowd-flow", f_crowd_flow },
    [SIM_KIND_TRAFFIC_FLOW] = { "ngsi-ld-city-trafficflowobserved", "traffic-flow",
                                f_traffic_flow },
    [SIM_KIND_STREETLIGHT] = { "ngsi-ld-city-streetlight", "streetlight", f_streetlight },
    [SIM_KIND_EV_CHARGING] = { "ngsi-ld-city-evchargingstation", "ev-charging", f_ev_charging },
    [SIM_KIND_PARKING_SPOT] = { "ngsi-ld-city-parkingspot", "parking-spot", f_parking_spot },
    [SIM_KIND_BATTERY] = { "ngsi-ld-city-device", "battery", f_battery },
};

const char *sim_kind_iface(sim_kind kind)
{
    return (unsigned)kind < SIM_KIND_COUNT ? kinds[kind].iface : "";
}

const char *sim_kind_name(sim_kind kind)
{
    return (unsigned)kind < SIM_KIND_COUNT ? kinds[kind].name : "";
}

const char *sim_payload_timestamp(char *out, size_t cap, uint64_t wall_ms)
{
    time_t secs = (time_t)(wall_ms / 1000u);
    struct tm tm;
    if (cap == 0) {
        return out;
    }
    if (gmtime_r(&secs, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        out[0] = '\0';
    }
    return out;
}

/* Which of the three values msg_count selects: -1 A, 0 default, 1 B. */
static int pattern(const field *f, unsigned msg_count)
{
    unsigned part = f->part != 0 ? f->part : PART_PERIOD;
    unsigned full = f->full != 0 ? f->full : FULL_PERIOD;
    unsigned r = msg_count % full;
    if (r < part) {
        return -1;
    }
    return r > part ? 1 : 0;
}

size_t sim_payload_build(char *out, size_t cap, sim_kind kind, unsigned msg_count, const char *ts)
{
    if ((unsigned)kind >= SIM_KIND_COUNT || cap == 0) {
        return 0;
    }
    size_t len = 0;
    int first = 1;
    for (const field *f = kinds[kind].fields; f->key != NULL; f++) {
        int sel = pattern(f, msg_count);
        int n;
        const char *sep = first ? "{" : ",";
        first = 0;
        switch (f->type) {
        case F_INT:
            n = snprintf(out + len, cap - len, "%s\"%s\":%d", sep, f->key,
                         sel < 0 ? f->a : (sel > 0 ? f->b : f->d));
            break;
        case F_STR:
            n = snprintf(out + len, cap - len, "%s\"%s\":\"%s\"", sep, f->key,
                         sel < 0 ? f->sa : (sel > 0 ? f->sb : f->sd));
            break;
        case F_COUNT:
            n = snprintf(out + len, cap - len, "%s\"%s\":%u", sep, f->key, msg_count);
            break;
        default:
            n = snprintf(out + len, cap - len, "%s\"%s\":\"%s\"", sep, f->key, ts);
            break;
        }
        if (n < 0 || (size_t)n >= cap - len) {
            out[0] = '\0';
            return 0;
        }
        len += (size_t)n;
    }
    if (len + 2 > cap) {
        out[0] = '\0';
        return 0;
    }
    out[len++] = '}';
    out[len] = '\0';
    return len;
}
