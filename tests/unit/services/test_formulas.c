/*
 * test_formulas.c — services/formulas.c against published reference values.
 *
 *   AQI      EPA-454/B-18-007 (Sept 2018) worked examples (O3 0.078 ppm ->
 *            126, PM2.5 35.9 ug/m3 -> 102, CO 8.4 ppm -> 90) and the
 *            breakpoint edges of its Table 5; KTWIN's failing case (SO2
 *            250 ppb: UNHEALTHY, KTWIN said HAZARDOUS) and the simulator's
 *            constant 8 (CO MODERATE, the rest GOOD, as KTWIN's test).
 *   heat     the NWS heat-index chart (e.g. 90 F / 70 % -> 106 F).
 *   chill    the NWS/Environment Canada wind-chill chart (-10 C, 30 km/h -> -20).
 *   dew      Magnus values (20 C / 50 % -> 9.3 C; 30 C / 80 % -> 26.2 C).
 *   time     RFC 3339 parse/format round trips and rejections.
 *
 * Thread: main only.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "formulas.h"

static int aqi(sc_pollutant p, double c)
{
    int v = -1;
    assert_true(sc_aqi_index(p, c, &v));
    return v;
}

static const char *level(sc_pollutant p, double c)
{
    return sc_aqi_level_name(sc_aqi_level_of_index(aqi(p, c)));
}

static void test_aqi_epa_worked_examples(void **state)
{
    (void)state;
    assert_int_equal(aqi(SC_POLL_O3, 78.53), 126); /* 0.07853 ppm truncated to 0.078 */
    assert_int_equal(aqi(SC_POLL_PM25, 35.9), 102);
    assert_int_equal(aqi(SC_POLL_CO, 8.4), 90);
    assert_int_equal(aqi(SC_POLL_PM10, 155), 101);
}

static void test_aqi_breakpoint_edges(void **state)
{
    (void)state;
    /* each row's bounds map to its index bounds */
    assert_int_equal(aqi(SC_POLL_PM25, 0.0), 0);
    assert_int_equal(aqi(SC_POLL_PM25, 12.0), 50);
    assert_int_equal(aqi(SC_POLL_PM25, 12.1), 51);
    assert_int_equal(aqi(SC_POLL_PM25, 12.09), 50); /* truncated to 12.0: no gap */
    assert_int_equal(aqi(SC_POLL_PM25, 35.4), 100);
    assert_int_equal(aqi(SC_POLL_PM25, 55.5), 151);
    assert_int_equal(aqi(SC_POLL_PM25, 500.4), 500);
    assert_int_equal(aqi(SC_POLL_PM10, 54.9), 50);
    assert_int_equal(aqi(SC_POLL_PM10, 604), 500);
    assert_int_equal(aqi(SC_POLL_CO, 4.4), 50);
    assert_int_equal(aqi(SC_POLL_CO, 4.5), 51);
    assert_int_equal(aqi(SC_POLL_CO, 50.4), 500);
    assert_int_equal(aqi(SC_POLL_SO2, 35), 50);
    assert_int_equal(aqi(SC_POLL_SO2, 36), 51);
    assert_int_equal(aqi(SC_POLL_SO2, 304), 200);
    assert_int_equal(aqi(SC_POLL_SO2, 305), 201);
    assert_int_equal(aqi(SC_POLL_SO2, 1004), 500);
    assert_int_equal(aqi(SC_POLL_O3, 54), 50);
    assert_int_equal(aqi(SC_POLL_O3, 70), 100);
    assert_int_equal(aqi(SC_POLL_O3, 200), 300);
    assert_int_equal(aqi(SC_POLL_O3, 202), 201); /* 1-hour row begins at 205 */
    assert_int_equal(aqi(SC_POLL_O3, 405), 301);
    /* beyond the table: the top of the scale */
    assert_int_equal(aqi(SC_POLL_PM25, 900.0), 500);
    assert_int_equal(aqi(SC_POLL_SO2, 5000), 500);
}

static void test_aqi_categories(void **state)
{
    (void)state;
    assert_string_equal(level(SC_POLL_PM25, 8), "GOOD");
    assert_string_equal(level(SC_POLL_PM25, 40), "UNHEALTHY_FOR_SENSITIVE_GROUPS");
    assert_string_equal(level(SC_POLL_PM10, 300), "UNHEALTHY");
    assert_string_equal(level(SC_POLL_CO, 20), "VERY_UNHEALTHY");
    assert_string_equal(level(SC_POLL_CO, 35), "HAZARDOUS");
    assert_string_equal(level(SC_POLL_O3, 150), "VERY_UNHEALTHY");
    assert_int_equal(sc_aqi_level_of_index(50), SC_AQI_GOOD);
    assert_int_equal(sc_aqi_level_of_index(51), SC_AQI_MODERATE);
    assert_int_equal(sc_aqi_level_of_index(150), SC_AQI_USG);
    assert_int_equal(sc_aqi_level_of_index(151), SC_AQI_UNHEALTHY);
    assert_int_equal(sc_aqi_level_of_index(300), SC_AQI_VERY_UNHEALTHY);
    assert_int_equal(sc_aqi_level_of_index(301), SC_AQI_HAZARDOUS);
    assert_int_equal(sc_aqi_level_of_index(-1), SC_AQI_NONE);
    assert_int_equal(sc_aqi_level_parse("VERY_UNHEALTHY"), SC_AQI_VERY_UNHEALTHY);
    assert_int_equal(sc_aqi_level_parse("good"), SC_AQI_NONE);
    assert_int_equal(sc_aqi_level_parse(NULL), SC_AQI_NONE);
    assert_string_equal(sc_aqi_level_name(SC_AQI_NONE), "");
    assert_string_equal(sc_pollutant_name(SC_POLL_PM25), "PM25");
}

static void test_aqi_not_ktwins_formula(void **state)
{
    (void)state;
    /* KTWIN used I_hi as C_hi: SO2 250 ppb came out HAZARDOUS */
    assert_int_equal(aqi(SC_POLL_SO2, 250), 178);
    assert_string_equal(level(SC_POLL_SO2, 250), "UNHEALTHY");
    /* the simulator's constant 8 everywhere: KTWIN's expected categories */
    assert_string_equal(level(SC_POLL_CO, 8), "MODERATE");
    assert_int_equal(aqi(SC_POLL_CO, 8), 86);
    assert_string_equal(level(SC_POLL_PM10, 8), "GOOD");
    assert_string_equal(level(SC_POLL_PM25, 8), "GOOD");
    assert_string_equal(level(SC_POLL_SO2, 8), "GOOD");
    assert_string_equal(level(SC_POLL_O3, 8), "GOOD");
}

static void test_aqi_rejects_invalid(void **state)
{
    int v = 7;
    (void)state;
    assert_false(sc_aqi_index(SC_POLL_CO, -0.1, &v));
    assert_false(sc_aqi_index(SC_POLL_CO, NAN, &v));
    assert_false(sc_aqi_index(SC_POLL_CO, INFINITY, &v));
    assert_false(sc_aqi_index(SC_POLL_COUNT, 1.0, &v));
    assert_int_equal(v, 7);
}

static void test_heat_index_nws_chart(void **state)
{
    (void)state;
    /* NWS heat index chart values (deg F, rounded) */
    assert_int_equal((int)lround(sc_heat_index_f(90, 70)), 106);
    assert_int_equal((int)lround(sc_heat_index_f(96, 65)), 121);
    assert_int_equal((int)lround(sc_heat_index_f(100, 40)), 109);
    assert_int_equal((int)lround(sc_heat_index_f(110, 40)), 136);
    assert_int_equal((int)lround(sc_heat_index_f(90, 40)), 91);
    assert_int_equal((int)lround(sc_heat_index_f(80, 40)), 80);
    /* the high-humidity adjustment (RH > 85 %, 80..87 F) */
    assert_int_equal((int)lround(sc_heat_index_f(84, 90)), 98);
    assert_int_equal((int)lround(sc_heat_index_f(86, 90)), 105);
    /* the low-humidity adjustment (RH < 13 %, 80..112 F): 94.1, not the regression's 96.5 */
    assert_true(fabs(sc_heat_index_f(100, 10) - 94.12) < 0.01);
    /* below 80 F: Steadman's simple formula */
    assert_true(fabs(sc_heat_index_f(70, 50) - 69.05) < 0.01);
}

static void test_wind_chill_chart_and_range(void **state)
{
    double v = 0.0;
    (void)state;
    assert_true(sc_wind_chill_c(-10, 30, &v));
    assert_int_equal((int)lround(v), -20);
    assert_true(fabs(v - (-19.52)) < 0.01);
    assert_true(sc_wind_chill_c(0, 20, &v));
    assert_int_equal((int)lround(v), -5);
    assert_true(sc_wind_chill_c(-20, 50, &v));
    assert_int_equal((int)lround(v), -35);
    assert_true(sc_wind_chill_c(5, 10, &v));
    assert_int_equal((int)lround(v), 3);
    /* outside the validity range */
    assert_false(sc_wind_chill_c(10.5, 30, &v));
    assert_false(sc_wind_chill_c(0, 4.8, &v));
}

static void test_feels_like_picks_the_valid_index(void **state)
{
    sc_feels_kind k = SC_FEELS_AIR;
    double v;
    (void)state;
    /* the simulator's weather payload: 8 C, 8 m/s (28.8 km/h) -> wind chill 4.06 C
       (KTWIN's formula said -1.93) */
    v = sc_feels_like_c(8, 8, 8, &k);
    assert_int_equal(k, SC_FEELS_WIND_CHILL);
    assert_true(fabs(v - 4.06) < 0.01);
    /* 32.2 C (90 F), 70 %: heat index 105.9 F = 41.1 C */
    v = sc_feels_like_c(32.222222, 70, 1, &k);
    assert_int_equal(k, SC_FEELS_HEAT_INDEX);
    assert_true(fabs(v - (105.92 - 32) * 5 / 9) < 0.02);
    /* mild: the air temperature */
    v = sc_feels_like_c(18, 50, 3, &k);
    assert_int_equal(k, SC_FEELS_AIR);
    assert_true(v == 18.0);
    /* cold but calm, or unknown wind: the air temperature */
    v = sc_feels_like_c(0, 50, 1, &k);
    assert_int_equal(k, SC_FEELS_AIR);
    v = sc_feels_like_c(0, NAN, NAN, &k);
    assert_int_equal(k, SC_FEELS_AIR);
    /* hot with unknown humidity: no heat index */
    v = sc_feels_like_c(35, NAN, 0, &k);
    assert_int_equal(k, SC_FEELS_AIR);
    assert_true(v == 35.0);
}

static void test_dew_point_magnus(void **state)
{
    double v = 0.0;
    (void)state;
    assert_true(sc_dew_point_c(20, 50, &v));
    assert_true(fabs(v - 9.26) < 0.01);
    assert_true(sc_dew_point_c(30, 80, &v));
    assert_true(fabs(v - 26.17) < 0.01);
    assert_true(sc_dew_point_c(0, 50, &v));
    assert_true(fabs(v - (-9.20)) < 0.01);
    assert_true(sc_dew_point_c(25, 100, &v));
    assert_true(fabs(v - 25.0) < 1e-9); /* saturated air: Td = T */
    /* the simulator's 8 C / 8 %: -24.37 C (KTWIN's T - (100 - RH)/5 said -10.4) */
    assert_true(sc_dew_point_c(8, 8, &v));
    assert_true(fabs(v - (-24.37)) < 0.01);
    assert_false(sc_dew_point_c(20, 0, &v));
    assert_false(sc_dew_point_c(20, 101, &v));
    assert_false(sc_dew_point_c(80, 50, &v));
}

static void test_pressure_tendency(void **state)
{
    (void)state;
    assert_int_equal(sc_pressure_tendency(1013.0, 1014.2, 0.1), SC_TENDENCY_RAISING);
    assert_int_equal(sc_pressure_tendency(1013.0, 1011.0, 0.1), SC_TENDENCY_FALLING);
    assert_int_equal(sc_pressure_tendency(1013.0, 1013.05, 0.1), SC_TENDENCY_STEADY);
    assert_int_equal(sc_pressure_tendency(10, 10, 0.1), SC_TENDENCY_STEADY);
    assert_string_equal(sc_tendency_name(SC_TENDENCY_RAISING), "raising");
    assert_string_equal(sc_tendency_name(SC_TENDENCY_FALLING), "falling");
    assert_string_equal(sc_tendency_name(SC_TENDENCY_STEADY), "steady");
}

static void test_congestion(void **state)
{
    (void)state;
    /* the simulator's windows (KTWIN.md §7) */
    assert_int_equal(sc_crowd_congested(2, 1), 1);
    assert_int_equal(sc_crowd_congested(8, 6), 0);
    assert_int_equal(sc_traffic_congested(10, 1), 1);
    assert_int_equal(sc_traffic_congested(50, 5), 0);
    assert_int_equal(sc_traffic_congested(12, 2), 0);
    /* unknown fields do not count (KTWIN: 0, so congested) */
    assert_int_equal(sc_traffic_congested(NAN, 5), 0);
    assert_int_equal(sc_traffic_congested(NAN, 1), 1);
    assert_int_equal(sc_crowd_congested(NAN, NAN), -1);
}

static void test_parking(void **state)
{
    (void)state;
    assert_int_equal(sc_spot_transition(NULL, "occupied"), 1);
    assert_int_equal(sc_spot_transition("", "free"), 0);
    assert_int_equal(sc_spot_transition("free", "free"), 0);
    assert_int_equal(sc_spot_transition("occupied", "occupied"), 0); /* KTWIN counted again */
    assert_int_equal(sc_spot_transition("occupied", "free"), -1);
    assert_int_equal(sc_spot_transition("free", "closed"), 0);
    assert_int_equal(sc_spot_transition("free", NULL), 0);
    assert_int_equal(sc_parking_occupied(3, 20, 2, 0), 5);
    assert_int_equal(sc_parking_occupied(3, 20, 0, 5), 0);
    assert_int_equal(sc_parking_occupied(19, 20, 3, 1), 20);
    assert_int_equal(sc_parking_occupied(0, -1, 1, 0), 0);
}

static void test_lamp_and_battery(void **state)
{
    const int64_t h = 3600 * 1000LL;
    (void)state;
    assert_false(sc_lamp_stuck(0, 48 * h, 48 * h));
    assert_true(sc_lamp_stuck(0, 48 * h + 1, 48 * h));
    assert_int_equal(sc_battery_period_min(10, 15), 60);
    assert_int_equal(sc_battery_period_min(15, 15), 15); /* KTWIN sent nothing at exactly 15 */
    assert_int_equal(sc_battery_period_min(90, 15), 15);
    assert_int_equal(sc_battery_period_min(0, 15), 60);
}

static void test_worst_recent(void **state)
{
    const int64_t min = 60 * 1000LL;
    sc_report r[3] = {
        { SC_AQI_HAZARDOUS, 0 },
        { SC_AQI_MODERATE, 50 * min },
        { SC_AQI_GOOD, 70 * min },
    };
    (void)state;
    assert_int_equal(sc_worst_recent(r, 3, 55 * min, 60 * min), SC_AQI_HAZARDOUS);
    assert_int_equal(sc_worst_recent(r, 3, 60 * min, 60 * min), SC_AQI_HAZARDOUS);
    assert_int_equal(sc_worst_recent(r, 3, 61 * min, 60 * min), SC_AQI_MODERATE);
    assert_int_equal(sc_worst_recent(r, 3, 111 * min, 60 * min), SC_AQI_GOOD);
    assert_int_equal(sc_worst_recent(r, 3, 200 * min, 60 * min), SC_AQI_NONE);
    assert_int_equal(sc_worst_recent(r, 0, 0, 60 * min), SC_AQI_NONE);
}

static void test_time_parse_and_format(void **state)
{
    int64_t ms = 0;
    char out[SC_TIME_CAP];
    (void)state;
    assert_true(sc_time_parse_ms("2024-06-22T00:50:00Z", &ms));
    assert_true(ms == 1719017400000LL);
    assert_true(sc_time_parse_ms("2024-06-22T02:50:00.123456+02:00", &ms));
    assert_true(ms == 1719017400123LL);
    assert_true(sc_time_parse_ms("1970-01-01T00:00:00.5z", &ms));
    assert_true(ms == 500);
    assert_true(sc_time_parse_ms("2024-02-29T23:59:60Z", &ms)); /* leap year, leap second */
    sc_time_format(1719017400123LL, out);
    assert_string_equal(out, "2024-06-22T00:50:00.123Z");
    sc_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    sc_time_format(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    assert_true(sc_time_parse_ms("1969-12-31T23:59:59.999Z", &ms));
    assert_true(ms == -1);
    sc_time_format(253402300800000LL, out); /* year 10000 */
    assert_string_equal(out, "");
    ms = 42;
    assert_false(sc_time_parse_ms("2023-02-29T00:00:00Z", &ms));
    assert_false(sc_time_parse_ms("2024-06-22T00:50:00", &ms));
    assert_false(sc_time_parse_ms("2024-06-22T24:00:00Z", &ms));
    assert_false(sc_time_parse_ms("2024-06-22T00:50:00.Z", &ms));
    assert_false(sc_time_parse_ms("2024-06-22T00:50:00Zx", &ms));
    assert_false(sc_time_parse_ms("2024-13-01T00:00:00Z", &ms));
    assert_false(sc_time_parse_ms("", &ms));
    assert_false(sc_time_parse_ms(NULL, &ms));
    assert_true(ms == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aqi_epa_worked_examples),
        cmocka_unit_test(test_aqi_breakpoint_edges),
        cmocka_unit_test(test_aqi_categories),
        cmocka_unit_test(test_aqi_not_ktwins_formula),
        cmocka_unit_test(test_aqi_rejects_invalid),
        cmocka_unit_test(test_heat_index_nws_chart),
        cmocka_unit_test(test_wind_chill_chart_and_range),
        cmocka_unit_test(test_feels_like_picks_the_valid_index),
        cmocka_unit_test(test_dew_point_magnus),
        cmocka_unit_test(test_pressure_tendency),
        cmocka_unit_test(test_congestion),
        cmocka_unit_test(test_parking),
        cmocka_unit_test(test_lamp_and_battery),
        cmocka_unit_test(test_worst_recent),
        cmocka_unit_test(test_time_parse_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
