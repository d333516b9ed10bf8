/*
 * test_sim_devices_unit.c — the loop-side logic of ktwin-sim devices without
 * a broker: the due-time heap, device set-up per site, round-trip matching of
 * virtual events, nearest-rank percentiles and option checks. Includes
 * devices.c to reach its statics (STYLE §9); the MQTT side is covered by
 * test_sim_devices.sh against a real mosquitto.
 *
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devices.c"

static void test_heap_pops_in_due_order(void **state)
{
    (void)state;
    conn c;
    memset(&c, 0, sizeof c);
    enum { N = 2000 };
    dev *d = kt_xcalloc(N, sizeof *d);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i].due_ns = x % 1000; /* many equal keys too */
        heap_push(&c, &d[i]);
    }
    uint64_t last = 0;
    for (size_t i = 0; i < N / 2; i++) {
        dev *p = heap_pop(&c);
        assert_true(p->due_ns >= last);
        last = p->due_ns;
    }
    /* Interleave: one goes back later than the last popped. */
    dev *again = heap_pop(&c);
    assert_true(again->due_ns >= last);
    again->due_ns = last + 5;
    heap_push(&c, again);
    for (size_t i = N / 2; i < N; i++) {
        dev *p = heap_pop(&c);
        assert_true(p->due_ns >= last);
        last = p->due_ns;
    }
    assert_int_equal(c.n_heap, 0);
    kt_free(c.heap);
    kt_free(d);
}

static void run_init(run *r, sim_devices_opts *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
}

static void run_fini(run *r)
{
    for (size_t i = 0; i < r->n_devs; i++) {
        kt_free(r->devs[i].topic);
    }
    kt_map_fini(&r->by_instance);
    kt_free(r->devs);
    kt_free(r->conns);
    kt_free(r->rtt_us);
}

static void test_devices_per_site(void **state)
{
    (void)state;
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    o.n_neighborhoods = 5;
    o.n_sites = 2;
    run r;
    run_init(&r, &o);
    build_devices(&r);
    assert_int_equal(r.n_devs, 5 * SIM_DEVICES_PER_NEIGHBORHOOD);
    /* Neighborhood k is on site k % 2: 1, 3, 5 on site 1; 2, 4 on site 0. */
    size_t on[2] = { 0, 0 };
    for (size_t i = 0; i < r.n_devs; i++) {
        on[r.devs[i].site]++;
        const char *nb = strstr(r.devs[i].instance, "-nb00");
        assert_non_null(nb);
        unsigned k = (unsigned)(nb[5] - '0');
        assert_int_equal(r.devs[i].site, k % 2);
        assert_true(strncmp(r.devs[i].topic, "ktwin/real/", 11) == 0);
    }
    assert_int_equal(on[0], 2 * SIM_DEVICES_PER_NEIGHBORHOOD);
    assert_int_equal(on[1], 3 * SIM_DEVICES_PER_NEIGHBORHOOD);
    dev *b = kt_map_get(&r.by_instance, "ngsi-ld-city-device-wo-nb004-p00050");
    assert_non_null(b);
    assert_int_equal(b->kind, SIM_KIND_BATTERY);
    assert_string_equal(b->topic,
                        "ktwin/real/ngsi-ld-city-device/ngsi-ld-city-device-wo-nb004-p00050");
    run_fini(&r);

    /* --only-site 0: only neighborhoods 2 and 4, one connection set. */
    o.only_site = 0;
    o.conns_per_site = 3;
    run_init(&r, &o);
    build_devices(&r);
    assert_int_equal(r.n_devs, 2 * SIM_DEVICES_PER_NEIGHBORHOOD);
    assert_null(kt_map_get(&r.by_instance, "ngsi-ld-city-streetlight-nb001-sl00001"));
    assert_non_null(kt_map_get(&r.by_instance, "ngsi-ld-city-streetlight-nb002-sl00001"));
    r.n_conns = 3;
    r.conns = kt_xcalloc(3, sizeof *r.conns);
    assert_ptr_equal(conn_for(&r, 0, 4), &r.conns[1]);
    run_fini(&r);
    o.only_site = -1;
    run_init(&r, &o);
    r.n_conns = 6;
    r.conns = kt_xcalloc(6, sizeof *r.conns);
    assert_ptr_equal(conn_for(&r, 1, 5), &r.conns[5]);
    assert_ptr_equal(conn_for(&r, 0, 5), &r.conns[2]);
    run_fini(&r);
}

static void test_spread_offsets(void **state)
{
    (void)state;
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    o.n_neighborhoods = 2;
    run r;
    run_init(&r, &o);
    build_devices(&r);
    for (size_t i = 0; i < r.n_devs; i++) {
        assert_int_equal(r.devs[i].offset_ms, 0); /* default: all at once, as KTWIN */
    }
    run_fini(&r);
    o.spread_s = 10;
    o.n_neighborhoods = 20;
    run_init(&r, &o);
    build_devices(&r);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t i = 0; i < r.n_devs; i++) {
        lo = r.devs[i].offset_ms < lo ? r.devs[i].offset_ms : lo;
        hi = r.devs[i].offset_ms > hi ? r.devs[i].offset_ms : hi;
        if (i > 0 && r.devs[i].kind == r.devs[i - 1].kind) {
            /* One container: same neighborhood, same kind, same start. */
            assert_int_equal(r.devs[i].offset_ms, r.devs[i - 1].offset_ms);
        }
    }
    assert_true(hi < 10000);
    assert_true(hi - lo > 9000); /* 180 containers spread over the range */
    /* The schedule shifts, the count does not. */
    dev *d = &r.devs[0];
    r.start_ns = 1;
    r.stop_ns = UINT64_MAX;
    size_t n = 0;
    uint64_t first = 0;
    while (dev_advance(&r, d)) {
        first = n == 0 ? d->due_ns : first;
        n++;
    }
    assert_int_equal(n, 144);
    assert_int_equal(first, 1 + (uint64_t)(10000 + d->offset_ms) * 1000000u);
    run_fini(&r);
    o.spread_s = 241;
    kt_err err = { 0 };
    const char *b[1] = { "tcp://127.0.0.1:1" };
    o.brokers = b;
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL);
}

static note *mk(const char *topic, uint64_t t_ns)
{
    note *n = kt_xcalloc(1, sizeof *n + strlen(topic) + 1);
    n->kind = N_RX;
    n->t_ns = t_ns;
    memcpy(n->topic, topic, strlen(topic) + 1);
    return n;
}

static void feed(run *r, const char *topic, uint64_t t_ns)
{
    note *n = mk(topic, t_ns);
    rx_virtual(r, n);
    kt_free(n);
}

static void test_round_trips_match_once_per_publish(void **state)
{
    (void)state;
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    o.n_neighborhoods = 1;
    run r;
    run_init(&r, &o);
    build_devices(&r);
    dev *b = kt_map_get(&r.by_instance, "ngsi-ld-city-device-aqo-nb001-p00001");
    dev *aq = kt_map_get(&r.by_instance, "ngsi-ld-city-airqualityobserved-nb001-p00001");
    assert_non_null(b);
    assert_non_null(aq);
    b->awaiting = true;
    b->last_pub_ns = 1000000000u;
    r.n_awaiting = 1;
    aq->awaiting = true;
    aq->last_pub_ns = 1000000000u;

    /* The battery's answer, 25 ms later. */
    feed(&r, "ktwin/virtual/ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb001-p00001", 1025000000u);
    assert_int_equal(r.n_rtt, 1);
    assert_int_equal(r.rtt_us[0], 25000);
    assert_false(b->awaiting);
    assert_int_equal(r.n_awaiting, 0);
    /* A second answer to the same publish does not count again. */
    feed(&r, "ktwin/virtual/ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb001-p00001", 1030000000u);
    /* Wrong interface for the instance, unknown instance, real topic, garbage. */
    feed(&r, "ktwin/virtual/ngsi-ld-city-device/ngsi-ld-city-airqualityobserved-nb001-p00001",
         1030000000u);
    feed(&r, "ktwin/virtual/ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb999-p00001", 1);
    feed(&r, "ktwin/real/ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb001-p00001", 1);
    feed(&r, "ktwin/virtual/only-three", 1);
    feed(&r, "", 1);
    assert_int_equal(r.n_rtt, 1);
    assert_int_equal(r.unmatched, 6);
    assert_int_equal(r.virtual_rx, 7);
    /* Any device's instance can be answered, not only batteries. */
    feed(
        &r,
        "ktwin/virtual/ngsi-ld-city-airqualityobserved/ngsi-ld-city-airqualityobserved-nb001-p00001",
        1002000000u);
    assert_int_equal(r.n_rtt, 2);
    assert_int_equal(r.rtt_us[1], 2000);
    assert_int_equal(r.n_awaiting, 0);
    run_fini(&r);
}

static void test_percentiles_nearest_rank(void **state)
{
    (void)state;
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    run r;
    run_init(&r, &o);
    double q[3];
    rtt_percentiles(&r, q);
    assert_true(q[0] == 0.0 && q[1] == 0.0 && q[2] == 0.0);
    r.cap_rtt = 100;
    r.rtt_us = kt_xcalloc(100, sizeof *r.rtt_us);
    for (uint32_t i = 0; i < 100; i++) {
        r.rtt_us[i] = (100 - i) * 1000u; /* 100 ms .. 1 ms, unsorted */
    }
    r.n_rtt = 100;
    rtt_percentiles(&r, q);
    assert_true(q[0] == 50.0);
    assert_true(q[1] == 90.0);
    assert_true(q[2] == 99.0);
    r.n_rtt = 1;
    rtt_percentiles(&r, q);
    assert_true(q[0] == 1.0 && q[2] == 1.0);
    run_fini(&r);
}

static void test_bad_options_are_refused(void **state)
{
    (void)state;
    const char *brokers[2] = { "tcp://127.0.0.1:1", NULL };
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    o.brokers = brokers;
    kt_err err = { 0 };
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL); /* no neighborhoods */
    o.n_neighborhoods = 1;
    o.n_sites = 2;
    kt_err_clear(&err);
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "no broker for site-1"));
    o.only_site = 0; /* site 1's broker is not needed then */
    o.compress = 0;
    kt_err_clear(&err);
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "compress"));
    o.compress = 1;
    o.qos = 2;
    kt_err_clear(&err);
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL);
    o.qos = 1;
    o.only_site = 2;
    kt_err_clear(&err);
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EINVAL);
    o.only_site = 0;
    o.stats_path = "/nonexistent-dir/stats.jsonl";
    kt_err_clear(&err);
    assert_int_equal(sim_devices_run(&o, NULL, &err), KT_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/stats.jsonl"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_pops_in_due_order),
        cmocka_unit_test(test_devices_per_site),
        cmocka_unit_test(test_spread_offsets),
        cmocka_unit_test(test_round_trips_match_once_per_publish),
        cmocka_unit_test(test_percentiles_nearest_rank),
        cmocka_unit_test(test_bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
