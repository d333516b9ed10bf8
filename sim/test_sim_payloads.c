/*
 * test_sim_payloads.c — ktwin-sim's device payloads equal KTWIN's, byte for
 * byte (json.Marshal key order), for the msg_count of each window (KTWIN.md
 * §2.3 and §7), and every payload is valid JSON.
 *
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kt/json.h"
#include "payloads.h"

#define TS "2024-06-22T00:50:00Z"

static const char *build(sim_kind kind, unsigned msg_count)
{
    static char out[SIM_PAYLOAD_CAP];
    size_t n = sim_payload_build(out, sizeof out, kind, msg_count, TS);
    assert_int_equal(n, strlen(out));
    assert_true(n > 0);
    return out;
}

static void test_timestamp_is_go_rfc3339_utc(void **state)
{
    (void)state;
    char ts[SIM_TS_CAP];
    assert_string_equal(sim_payload_timestamp(ts, sizeof ts, 1719017400123u), TS);
    assert_string_equal(sim_payload_timestamp(ts, sizeof ts, 0), "1970-01-01T00:00:00Z");
}

static void test_air_quality_constant_all_windows(void **state)
{
    (void)state;
    const char *want =
        "{\"ASDensity\":8,\"C6H6Density\":8,\"CDDensity\":8,\"CO2Density\":8,\"CODensity\":8,"
        "\"NIDensity\":8,\"NO2Density\":8,\"NODensity\":8,\"O3Density\":8,\"PBDensity\":8,"
        "\"PM10Density\":8,\"PM1Density\":8,\"PM25Density\":8,\"SH2Density\":8,"
        "\"SO2Density\":8,\"WindDirection\":8,\"WindSpeed\":8,\"msg_count\":0,"
        "\"precipitation\":8,\"relativeHumidity\":8,\"reliability\":8,\"temperature\":8,"
        "\"timestamp\":\"" TS "\",\"volatileOrganicCompoundsTotal\":0}";
    assert_string_equal(build(SIM_KIND_AIR_QUALITY, 0), want);
    /* Window 5: only msg_count changes. */
    const char *w5 = build(SIM_KIND_AIR_QUALITY, 5);
    assert_non_null(strstr(w5, "\"WindSpeed\":8,\"msg_count\":5,\"precipitation\":8"));
    assert_int_equal(strlen(w5), strlen(want));
}

static void test_weather_and_noise(void **state)
{
    (void)state;
    assert_string_equal(build(SIM_KIND_WEATHER, 2),
                        "{\"WindDirection\":8,\"WindSpeed\":8,\"atmosphericPressure\":10,"
                        "\"dewpoint\":8,\"illuminance\":8,\"msg_count\":2,\"precipitation\":8,"
                        "\"relativeHumidity\":8,\"snowHeight\":8,\"solarRadiation\":8,"
                        "\"streamGauge\":8,\"temperature\":8,\"timestamp\":\"" TS "\","
                        "\"uVIndexMax\":8,\"visibility\":8}");
    assert_string_equal(build(SIM_KIND_NOISE, 0),
                        "{\"LASSoundPressure\":10,\"LAeqSoundPressure\":8,"
                        "\"LAeq_dSoundPressure\":8,\"LAmaxSoundPressure\":8,\"msg_count\":0,"
                        "\"timestamp\":\"" TS "\"}");
}

/* Crowd flow: w <= 3 (2, 1, 50); w = 4 (2, 2, 2); w = 5 (8, 6, 5). */
static void test_crowd_flow_by_window(void **state)
{
    (void)state;
    for (unsigned w = 0; w <= 3; w++) {
        char want[512];
        snprintf(want, sizeof want,
                 "{\"averageCrowdSpeed\":2,\"averageHeadwayTime\":1,\"dateObservedFrom\":\"" TS
                 "\",\"dateObservedTo\":\"" TS "\",\"msg_count\":%u,\"peopleCount\":50}",
                 w);
        assert_string_equal(build(SIM_KIND_CROWD_FLOW, w), want);
    }
    assert_string_equal(build(SIM_KIND_CROWD_FLOW, 4),
                        "{\"averageCrowdSpeed\":2,\"averageHeadwayTime\":2,\"dateObservedFrom\":"
                        "\"" TS "\",\"dateObservedTo\":\"" TS "\",\"msg_count\":4,"
                        "\"peopleCount\":2}");
    assert_string_equal(build(SIM_KIND_CROWD_FLOW, 5),
                        "{\"averageCrowdSpeed\":8,\"averageHeadwayTime\":6,\"dateObservedFrom\":"
                        "\"" TS "\",\"dateObservedTo\":\"" TS "\",\"msg_count\":5,"
                        "\"peopleCount\":5}");
}

/* Traffic flow: w <= 3 (10, 1, 3, 200); w = 4 (10, 5, 3, 200); w = 5 (50, 5, 50, 5). */
static void test_traffic_flow_by_window(void **state)
{
    (void)state;
    assert_string_equal(build(SIM_KIND_TRAFFIC_FLOW, 3),
                        "{\"averageGapDistance\":3,\"averageHeadwayTime\":1,"
                        "\"averageVehicleLength\":200,\"averageVehicleSpeed\":10,"
                        "\"dateObservedFrom\":\"" TS "\",\"dateObservedTo\":\"" TS "\","
                        "\"msg_count\":3}");
    assert_string_equal(build(SIM_KIND_TRAFFIC_FLOW, 4),
                        "{\"averageGapDistance\":3,\"averageHeadwayTime\":5,"
                        "\"averageVehicleLength\":200,\"averageVehicleSpeed\":10,"
                        "\"dateObservedFrom\":\"" TS "\",\"dateObservedTo\":\"" TS "\","
                        "\"msg_count\":4}");
    assert_string_equal(build(SIM_KIND_TRAFFIC_FLOW, 5),
                        "{\"averageGapDistance\":50,\"averageHeadwayTime\":5,"
                        "\"averageVehicleLength\":5,\"averageVehicleSpeed\":50,"
                        "\"dateObservedFrom\":\"" TS "\",\"dateObservedTo\":\"" TS "\","
                        "\"msg_count\":5}");
}

static void test_streetlight_parking_ev(void **state)
{
    (void)state;
    /* Streetlights are active in windows 1 and 4 only: msg_count 0 and 1, always "off". */
    assert_string_equal(build(SIM_KIND_STREETLIGHT, 0),
                        "{\"msg_count\":0,\"powerState\":\"off\",\"timestamp\":\"" TS "\"}");
    assert_string_equal(build(SIM_KIND_STREETLIGHT, 1),
                        "{\"msg_count\":1,\"powerState\":\"off\",\"timestamp\":\"" TS "\"}");
    assert_non_null(strstr(build(SIM_KIND_STREETLIGHT, 4), "\"powerState\":\"off\""));
    assert_non_null(strstr(build(SIM_KIND_STREETLIGHT, 7), "\"powerState\":\"on\""));
    /* Parking: free up to window 4, occupied in window 5. */
    assert_string_equal(build(SIM_KIND_PARKING_SPOT, 4),
                        "{\"msg_count\":4,\"status\":\"free\",\"timestamp\":\"" TS "\"}");
    assert_string_equal(build(SIM_KIND_PARKING_SPOT, 5),
                        "{\"msg_count\":5,\"status\":\"occupied\",\"timestamp\":\"" TS "\"}");
    /* EV: capacity 1 up to window 4, 3 in window 5. */
    assert_string_equal(build(SIM_KIND_EV_CHARGING, 0),
                        "{\"availableCapacity\":1,\"msg_count\":0,\"timestamp\":\"" TS "\"}");
    assert_string_equal(build(SIM_KIND_EV_CHARGING, 5),
                        "{\"availableCapacity\":3,\"msg_count\":5,\"timestamp\":\"" TS "\"}");
}

/* Battery: level 90/90/12 (part 4, full 10), frequency 15/90/60 (part 5, full 11). */
static void test_battery_patterns(void **state)
{
    (void)state;
    assert_string_equal(build(SIM_KIND_BATTERY, 0),
                        "{\"batteryLevel\":90,\"measurementFrequency\":15,\"msg_count\":0,"
                        "\"timestamp\":\"" TS "\"}");
    assert_string_equal(build(SIM_KIND_BATTERY, 1),
                        "{\"batteryLevel\":90,\"measurementFrequency\":15,\"msg_count\":1,"
                        "\"timestamp\":\"" TS "\"}");
    assert_non_null(
        strstr(build(SIM_KIND_BATTERY, 4), "\"batteryLevel\":90,\"measurementFrequency\":15,"));
    assert_non_null(
        strstr(build(SIM_KIND_BATTERY, 5), "\"batteryLevel\":12,\"measurementFrequency\":90,"));
    assert_non_null(
        strstr(build(SIM_KIND_BATTERY, 6), "\"batteryLevel\":12,\"measurementFrequency\":60,"));
    assert_non_null(
        strstr(build(SIM_KIND_BATTERY, 10), "\"batteryLevel\":90,\"measurementFrequency\":60,"));
}

static void test_every_payload_is_json_and_fits(void **state)
{
    (void)state;
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        assert_true(strncmp(sim_kind_iface((sim_kind)k), "ngsi-ld-city-", 13) == 0);
        assert_true(sim_kind_name((sim_kind)k)[0] != '\0');
        for (unsigned m = 0; m < 12; m++) {
            const char *p = build((sim_kind)k, m);
            cJSON *j = NULL;
            assert_int_equal(kt_json_parse(p, strlen(p), 4096, &j, NULL), KT_OK);
            const cJSON *mc = cJSON_GetObjectItemCaseSensitive(j, "msg_count");
            assert_true(cJSON_IsNumber(mc));
            assert_int_equal(mc->valueint, (int)m);
            cJSON_Delete(j);
        }
    }
    assert_string_equal(sim_kind_iface(SIM_KIND_BATTERY), "ngsi-ld-city-device");
    assert_string_equal(sim_kind_iface(SIM_KIND_PARKING_SPOT), "ngsi-ld-city-parkingspot");
    assert_string_equal(sim_kind_iface(SIM_KIND_COUNT), "");
}

static void test_small_buffer_gives_zero(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sim_payload_build(out, sizeof out, SIM_KIND_AIR_QUALITY, 0, TS), 0);
    assert_string_equal(out, "");
    char exact[128];
    size_t n = sim_payload_build(exact, sizeof exact, SIM_KIND_STREETLIGHT, 0, TS);
    assert_true(n > 0);
    /* One byte short of the NUL fails, exactly enough succeeds. */
    assert_int_equal(sim_payload_build(exact, n, SIM_KIND_STREETLIGHT, 0, TS), 0);
    assert_int_equal(sim_payload_build(exact, n + 1, SIM_KIND_STREETLIGHT, 0, TS), n);
    assert_int_equal(sim_payload_build(exact, sizeof exact, SIM_KIND_COUNT, 0, TS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp_is_go_rfc3339_utc),
        cmocka_unit_test(test_air_quality_constant_all_windows),
        cmocka_unit_test(test_weather_and_noise),
        cmocka_unit_test(test_crowd_flow_by_window),
        cmocka_unit_test(test_traffic_flow_by_window),
        cmocka_unit_test(test_streetlight_parking_ev),
        cmocka_unit_test(test_battery_patterns),
        cmocka_unit_test(test_every_payload_is_json_and_fits),
        cmocka_unit_test(test_small_buffer_gives_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
