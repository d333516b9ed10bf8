/*
 * test_sim_schedule.c — KTWIN's device timing and names: messages per device
 * per run match KTWIN.md §7's table, message times, msg_count and windows
 * follow "sleep(period); publish" with the last sleep shortened, compression
 * divides time, and every device's instance is a TwinInstance of the model
 * with the interface the device publishes for.
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

#include "city.h"
#include "kt/buf.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "schedule.h"

static void test_counts_match_ktwin_table(void **state)
{
    (void)state;
    static const uint64_t want[SIM_KIND_COUNT] = {
        [SIM_KIND_AIR_QUALITY] = 144, [SIM_KIND_WEATHER] = 144,      [SIM_KIND_NOISE] = 144,
        [SIM_KIND_CROWD_FLOW] = 144,  [SIM_KIND_TRAFFIC_FLOW] = 240, [SIM_KIND_STREETLIGHT] = 4,
        [SIM_KIND_EV_CHARGING] = 134, [SIM_KIND_PARKING_SPOT] = 278, [SIM_KIND_BATTERY] = 4,
    };
    unsigned devices = 0;
    uint64_t per_nb = 0;
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        const sim_profile *p = sim_schedule_profile((sim_kind)k);
        assert_non_null(p);
        assert_int_equal(sim_schedule_count(p, UINT64_MAX), want[k]);
        devices += sim_schedule_devices((sim_kind)k);
        per_nb += want[k] * sim_schedule_devices((sim_kind)k);
    }
    assert_int_equal(devices, SIM_DEVICES_PER_NEIGHBORHOOD);
    assert_int_equal(sim_schedule_devices(SIM_KIND_BATTERY), 201);
    assert_int_equal(sim_schedule_devices(SIM_KIND_PARKING_SPOT), 1);
    /* 4 x 7200 + 12000 + 200 + 134 + 278 + 804 messages per neighborhood per run. */
    assert_int_equal(per_nb, 42216);
    assert_null(sim_schedule_profile(SIM_KIND_COUNT));
}

/* Collect every message of one device: times (ms), msg_counts and windows. */
static size_t collect(sim_kind k, uint64_t *t, unsigned *mc, unsigned *w, size_t cap)
{
    sim_cursor c = { 0 };
    size_t n = 0;
    uint64_t tt;
    unsigned m, ww;
    while (sim_schedule_next(sim_schedule_profile(k), &c, &tt, &m, &ww)) {
        assert_true(n < cap);
        t[n] = tt;
        mc[n] = m;
        w[n] = ww;
        n++;
    }
    /* Done stays done. */
    assert_false(sim_schedule_next(sim_schedule_profile(k), &c, &tt, &m, &ww));
    return n;
}

static void test_streetlight_and_battery_times(void **state)
{
    (void)state;
    uint64_t t[8];
    unsigned mc[8], w[8];
    assert_int_equal(collect(SIM_KIND_STREETLIGHT, t, mc, w, 8), 4);
    /* Window 1 (240..480 s): sleep 180, publish, sleep the 60 s left, publish. */
    assert_int_equal(t[0], 420000);
    assert_int_equal(t[1], 480000);
    assert_int_equal(t[2], 1140000);
    assert_int_equal(t[3], 1200000);
    assert_int_equal(mc[0], 0);
    assert_int_equal(mc[1], 0);
    assert_int_equal(mc[2], 1);
    assert_int_equal(mc[3], 1);
    assert_int_equal(w[0], 1);
    assert_int_equal(w[3], 4);
    assert_int_equal(collect(SIM_KIND_BATTERY, t, mc, w, 8), 4);
    assert_int_equal(t[0], 460000);
    assert_int_equal(t[1], 480000);
    assert_int_equal(t[2], 1180000);
    assert_int_equal(t[3], 1200000);
    assert_int_equal(mc[3], 1);
}

static void test_periodic_devices(void **state)
{
    (void)state;
    static uint64_t t[400];
    static unsigned mc[400], w[400];
    size_t n = collect(SIM_KIND_AIR_QUALITY, t, mc, w, 400);
    assert_int_equal(n, 144);
    assert_int_equal(t[0], 10000);
    assert_int_equal(t[23], 240000); /* the last message of window 0 ends it */
    assert_int_equal(w[23], 0);
    assert_int_equal(t[24], 250000);
    assert_int_equal(w[24], 1);
    assert_int_equal(t[143], SIM_RUN_MS);
    assert_int_equal(mc[143], 5);
    /* Parking: 3 messages in window 0 (80 s), 120 in window 2 (2 s). */
    n = collect(SIM_KIND_PARKING_SPOT, t, mc, w, 400);
    assert_int_equal(n, 278);
    size_t in_w[SIM_WINDOWS] = { 0 };
    for (size_t i = 0; i < n; i++) {
        in_w[w[i]]++;
        assert_int_equal(mc[i], w[i]); /* all windows active: msg_count = window */
        if (i > 0) {
            assert_true(t[i] > t[i - 1]);
        }
    }
    assert_int_equal(in_w[0], 3);
    assert_int_equal(in_w[1], 16);
    assert_int_equal(in_w[2], 120);
    assert_int_equal(in_w[5], 3);
    /* Crowd flow: 30 s periods fit 240 s exactly: 8 messages. */
    n = collect(SIM_KIND_CROWD_FLOW, t, mc, w, 400);
    assert_int_equal(n, 144);
    assert_int_equal(t[7], 240000);
    assert_int_equal(w[8], 1);
}

static void test_count_until_and_compression(void **state)
{
    (void)state;
    const sim_profile *aq = sim_schedule_profile(SIM_KIND_AIR_QUALITY);
    assert_int_equal(sim_schedule_count(aq, 0), 0);
    assert_int_equal(sim_schedule_count(aq, 9999), 0);
    assert_int_equal(sim_schedule_count(aq, 60000), 6);
    assert_int_equal(sim_schedule_count(aq, 240000), 24);
    const sim_profile *tf = sim_schedule_profile(SIM_KIND_TRAFFIC_FLOW);
    assert_int_equal(sim_schedule_count(tf, 480000), 24 + 48);
    /* A 240 s window at compression 100 lasts 2.4 s. */
    assert_int_equal(sim_schedule_real_ns(SIM_WINDOW_MS, 100.0), 2400000000ull);
    assert_int_equal(sim_schedule_real_ns(SIM_RUN_MS, 1.0), 1440000000000ull);
    assert_int_equal(sim_schedule_real_ns(5000, 0.5), 10000000000ull);
    assert_int_equal(sim_schedule_window_at(0), 0);
    assert_int_equal(sim_schedule_window_at(239999), 0);
    assert_int_equal(sim_schedule_window_at(240000), 1);
    assert_int_equal(sim_schedule_window_at(SIM_RUN_MS), SIM_WINDOWS);
}

/* The interface of the TwinInstance named inst in a neighborhood's YAML, or "". */
static void iface_of(const char *yaml, const char *inst, char *out, size_t cap)
{
    char needle[256];
    snprintf(needle, sizeof needle, "  name: %s\n", inst);
    const char *p = strstr(yaml, needle);
    out[0] = '\0';
    if (p == NULL) {
        return;
    }
    const char *q = strstr(p, "spec:\n  interface: ");
    if (q == NULL) {
        return;
    }
    q += strlen("spec:\n  interface: ");
    size_t n = strcspn(q, "\n");
    if (n < cap) {
        memcpy(out, q, n);
        out[n] = '\0';
    }
}

static void check_neighborhood(unsigned k, unsigned n_sites)
{
    sim_city_opts o = { k, n_sites, SIM_FORMAT_YAML, "ktwin" };
    kt_buf b;
    kt_buf_init(&b, (size_t)16 << 20);
    kt_status st = KT_OK;
    assert_int_equal(sim_city_neighborhood(&o, k, &b, &st), SIM_CITY_PER_NEIGHBORHOOD);
    assert_int_equal(st, KT_OK);
    assert_int_equal(kt_buf_putc(&b, '\0'), KT_OK);
    kt_map seen;
    kt_map_init(&seen);
    char *names = kt_xcalloc(SIM_DEVICES_PER_NEIGHBORHOOD, 128);
    size_t n = 0;
    for (int kind = 0; kind < SIM_KIND_COUNT; kind++) {
        for (unsigned i = 0; i < sim_schedule_devices((sim_kind)kind); i++, n++) {
            char *inst = names + n * 128;
            char iface[128];
            sim_city_device_instance(inst, 128, (sim_kind)kind, k, i);
            assert_true(inst[0] != '\0');
            assert_null(strchr(inst, '.')); /* KTWIN routing keys split on '.' */
            assert_null(kt_map_put(&seen, inst, inst));
            iface_of(b.data, inst, iface, sizeof iface);
            if (strcmp(iface, sim_kind_iface((sim_kind)kind)) != 0) {
                fail_msg("device %s (%s): model interface '%s'", inst,
                         sim_kind_iface((sim_kind)kind), iface);
            }
        }
    }
    assert_int_equal(n, SIM_DEVICES_PER_NEIGHBORHOOD);
    char buf[128];
    /* Out of range gives "". */
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_EV_CHARGING, k, 1), "");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_BATTERY, k, 201), "");
    kt_map_fini(&seen);
    kt_free(names);
    kt_buf_fini(&b);
}

static void test_device_names_are_model_instances(void **state)
{
    (void)state;
    check_neighborhood(1, 0);
    check_neighborhood(12, 5);
    char buf[128];
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_AIR_QUALITY, 1, 0),
                        "ngsi-ld-city-airqualityobserved-nb001-p00001");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_STREETLIGHT, 1, 49),
                        "ngsi-ld-city-streetlight-nb001-sl00050");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_PARKING_SPOT, 3, 0),
                        "ngsi-ld-city-offstreetparkingspot-nb003-ofp0001-s0001");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_BATTERY, 1, 0),
                        "ngsi-ld-city-device-aqo-nb001-p00001");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_BATTERY, 1, 150),
                        "ngsi-ld-city-device-nb001-sl00001");
    assert_string_equal(sim_city_device_instance(buf, sizeof buf, SIM_KIND_BATTERY, 1, 200),
                        "ngsi-ld-city-device-nb001-ofp0001-s0001");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_match_ktwin_table),
        cmocka_unit_test(test_streetlight_and_battery_times),
        cmocka_unit_test(test_periodic_devices),
        cmocka_unit_test(test_count_until_and_compression),
        cmocka_unit_test(test_device_names_are_model_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
