/*
 * test_service.c — parsing of twin-service declarations (svc/service.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "svc/service.h"

static void test_plugin_and_http_specs(void **state)
{
    (void)state;
    svc_service s;
    kt_err err = { 0 };
    assert_int_equal(
        svc_service_parse(&s, "ngsi-ld-city-airqualityobserved=/opt/ktwin/aqi.so", &err), KT_OK);
    assert_int_equal(s.kind, SVC_SERVICE_PLUGIN);
    assert_int_equal(s.n_ifaces, 1);
    assert_string_equal(s.ifaces[0], "ngsi-ld-city-airqualityobserved");
    assert_string_equal(s.target, "/opt/ktwin/aqi.so");
    assert_null(s.config);
    svc_service_fini(&s);

    assert_int_equal(
        svc_service_parse(&s,
                          "a,b=http://127.0.0.1:8081/ concurrency=8 timeout=2s retries=0 "
                          "queue=50 backoff=20ms backoff_max=1m",
                          &err),
        KT_OK);
    assert_int_equal(s.kind, SVC_SERVICE_HTTP);
    assert_int_equal(s.n_ifaces, 2);
    assert_string_equal(s.ifaces[1], "b");
    assert_string_equal(s.http.url, "http://127.0.0.1:8081/");
    assert_int_equal(s.http.concurrency, 8);
    assert_int_equal(s.http.timeout_ms, 2000);
    assert_int_equal(s.http.retries, SVC_RETRIES_NONE);
    assert_int_equal(s.http.queue_max, 50);
    assert_int_equal(s.http.backoff_min_ms, 20);
    assert_int_equal(s.http.backoff_max_ms, 60000);
    svc_service_fini(&s);

    assert_int_equal(svc_service_parse(&s, "*=./echo.so config={\"command\": \"Notify\"} ", &err),
                     KT_OK);
    assert_int_equal(s.n_ifaces, 0);
    assert_string_equal(s.config, "{\"command\": \"Notify\"}");
    svc_service_fini(&s);
}

static void expect_error(const char *spec, const char *needle)
{
    svc_service s;
    kt_err err = { 0 };
    assert_int_equal(svc_service_parse(&s, spec, &err), KT_EINVAL);
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("spec '%s': message '%s' lacks '%s'", spec, err.msg, needle);
    }
    assert_null(s.target);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("no-equals", "expected IFACES=TARGET");
    expect_error("=x.so", "interface name: empty");
    expect_error("a,,b=x.so", "col 3: interface name: empty");
    expect_error("a.b=x.so", "interface 'a.b'");
    expect_error("a,a=x.so", "listed twice");
    expect_error("a=", "target: empty");
    expect_error("a=ftp://x/", "only http");
    expect_error("a=http://", "without a host");
    expect_error("a=http://h/ retries=x", "retries: not a number");
    expect_error("a=http://h/ timeout=5h", "timeout: not a duration");
    expect_error("a=http://h/ concurrency=0", "concurrency");
    expect_error("a=http://h/ color=red", "unknown option 'color'");
    expect_error("a=http://h/ noval", "expected key=value");
    expect_error("a=x.so timeout=1s", "HTTP options on a plugin");
    expect_error("*=http://h/", "'*' needs a plugin");
    expect_error("a=http://h/ config={}", "config: only for plugins");
    expect_error("a=x.so\n", "control character");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_and_http_specs),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
