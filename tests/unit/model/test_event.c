/*
 * test_event.c — model/event.h: event types, MQTT topics, RFC 3339 times,
 * validation, owning copies, the compact binary form, CloudEvents over
 * HTTP in binary and structured mode (parse, render, round trips, bad
 * inputs and caps) and event ids.
 * Thread: main only (plus a few threads for id uniqueness).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/event.h"

/* ---- types ----------------------------------------------------------------------------- */

static void expect_type(const char *type, model_event_class cls, const char *iface, const char *cmd)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    kt_err err = { 0 };
    assert_int_equal(model_event_set_type(&ev, type, strlen(type), &err), KT_OK);
    assert_int_equal(ev.cls, cls);
    assert_string_equal(ev.iface, iface);
    assert_string_equal(ev.command, cmd);
}

static void expect_bad_type(const char *type, size_t len, const char *msg_part)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    kt_err err = { 0 };
    assert_int_equal(model_event_set_type(&ev, type, len, &err), KT_EINVAL);
    assert_int_equal(ev.cls, MODEL_EVENT_NONE);
    assert_string_equal(ev.iface, "");
    if (strstr(err.msg, msg_part) == NULL) {
        fail_msg("type \"%.*s\": message \"%s\" lacks \"%s\"", (int)len, type, err.msg, msg_part);
    }
    assert_non_null(strstr(err.msg, "type"));
}

static void test_type_parse(void **state)
{
    (void)state;
    expect_type("ktwin.real.ngsi-ld-city-airqualityobserved", MODEL_EVENT_REAL,
                "ngsi-ld-city-airqualityobserved", "");
    expect_type("ktwin.virtual.dev", MODEL_EVENT_VIRTUAL, "dev", "");
    expect_type("ktwin.store.s4city-city-neighborhood", MODEL_EVENT_STORE,
                "s4city-city-neighborhood", "");
    expect_type("ktwin.command.city-pole.updateairqualityindex", MODEL_EVENT_COMMAND, "city-pole",
                "updateairqualityindex");
    /* Command names are lower-cased; interface names are kept as they are. */
    expect_type("ktwin.command.City-Pole.UpdateAirQualityIndex", MODEL_EVENT_COMMAND, "City-Pole",
                "updateairqualityindex");
    /* Not NUL-terminated: only len bytes count. */
    model_event ev;
    memset(&ev, 0, sizeof ev);
    assert_int_equal(model_event_set_type(&ev, "ktwin.real.abcdef", 13, NULL), KT_OK);
    assert_string_equal(ev.iface, "ab");
}

static void test_type_rejects(void **state)
{
    (void)state;
    expect_bad_type("", 0, "not ktwin.");
    expect_bad_type("ktwin", 5, "not ktwin.");
    expect_bad_type("ktwin.real", 10, "not ktwin.");
    expect_bad_type("KTWIN.real.a", 12, "not ktwin.");
    expect_bad_type("ktwin.Real.a", 12, "class");
    expect_bad_type("ktwin.event-store", 17, "not ktwin.");
    expect_bad_type("ktwin.event-store.x", 19, "class");
    expect_bad_type("ktwin.real.a.b", 14, "3 dot-separated parts");
    expect_bad_type("ktwin.store.a.b.c.d.e", 21, "over 5");
    expect_bad_type("ktwin.command.a", 15, "4 dot-separated parts");
    expect_bad_type("ktwin.command.a.b.c", 19, "4 dot-separated parts");
    expect_bad_type("ktwin.real.", 11, "empty");
    expect_bad_type("ktwin..a", 8, "class");
    expect_bad_type("ktwin.command.a.", 16, "command is empty");
    expect_bad_type("ktwin.real.a b", 14, "white space");
    expect_bad_type("ktwin.real.a/b", 14, "'/'");
    expect_bad_type("ktwin.real.a+", 13, "'+'");
    expect_bad_type("ktwin.real.a\0b", 14, "NUL");
    char big[MODEL_EVENT_TYPE_CAP + 10];
    memset(big, 'a', sizeof big);
    memcpy(big, "ktwin.real.", 11);
    expect_bad_type(big, sizeof big, "longer");
    memset(big, 'a', sizeof big);
    memcpy(big, "ktwin.real.", 11);
    expect_bad_type(big, 11 + MODEL_NAME_MAX + 1, "longer than 253");
    model_event ev;
    kt_err err = { 0 };
    assert_int_equal(model_event_set_type(&ev, NULL, 0, &err), KT_EINVAL);
}

static void test_type_build(void **state)
{
    (void)state;
    model_event ev;
    memset(&ev, 0, sizeof ev);
    char t[MODEL_EVENT_TYPE_CAP];
    kt_err err = { 0 };
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_COMMAND, "pole", "DoIt", &err), KT_OK);
    assert_string_equal(model_event_type_str(&ev, t, sizeof t), "ktwin.command.pole.doit");
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_STORE, "pole", NULL, &err), KT_OK);
    assert_string_equal(model_event_type_str(&ev, t, sizeof t), "ktwin.store.pole");
    /* Round trip through the parser. */
    model_event back;
    memset(&back, 0, sizeof back);
    assert_int_equal(model_event_set_type(&back, t, strlen(t), &err), KT_OK);
    assert_int_equal(back.cls, MODEL_EVENT_STORE);
    /* Too small: "" rather than a truncated type. */
    assert_string_equal(model_event_type_str(&ev, t, 8), "");
    /* Bad parts. */
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_COMMAND, "pole", NULL, &err),
                     KT_EINVAL);
    assert_int_equal(ev.cls, MODEL_EVENT_NONE);
    kt_err_clear(&err);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_REAL, "pole", "x", &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "only command"));
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_REAL, "a.b", NULL, NULL), KT_EINVAL);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_NONE, "a", NULL, NULL), KT_EINVAL);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_REAL, NULL, NULL, NULL), KT_EINVAL);
    assert_int_equal(model_event_set_class(&ev, MODEL_EVENT_COMMAND, "a", "b#", NULL), KT_EINVAL);
    memset(&ev, 0, sizeof ev);
    assert_string_equal(model_event_type_str(&ev, t, sizeof t), "");
    assert_string_equal(model_event_class_str(MODEL_EVENT_VIRTUAL), "virtual");
    assert_string_equal(model_event_class_str((model_event_class)42), "none");
}

/* ---- topics ---------------------------------------------------------------------------- */

static void test_topic_parse_and_build(void **state)
{
    (void)state;
    model_topic t;
    kt_err err = { 0 };
    const char *s =
        "ktwin/real/ngsi-ld-city-airqualityobserved/ngsi-ld-city-airqualityobserved-nb001-p00001";
    assert_int_equal(model_topic_parse(&t, s, strlen(s), &err), KT_OK);
    assert_int_equal(t.cls, MODEL_EVENT_REAL);
    assert_string_equal(t.iface, "ngsi-ld-city-airqualityobserved");
    assert_string_equal(t.instance, "ngsi-ld-city-airqualityobserved-nb001-p00001");
    char out[MODEL_TOPIC_CAP];
    assert_int_equal(model_topic_build(out, sizeof out, t.cls, t.iface, t.instance, &err), KT_OK);
    assert_string_equal(out, s);
    assert_int_equal(model_topic_build(out, sizeof out, MODEL_EVENT_VIRTUAL, "dev", "dev-1", &err),
                     KT_OK);
    assert_string_equal(out, "ktwin/virtual/dev/dev-1");
    assert_int_equal(model_topic_parse(&t, out, strlen(out), &err), KT_OK);
    assert_int_equal(t.cls, MODEL_EVENT_VIRTUAL);
    assert_int_equal(model_topic_filter(out, sizeof out, MODEL_EVENT_REAL, "aq", &err), KT_OK);
    assert_string_equal(out, "ktwin/real/aq/+");
    /* Longest names fit in MODEL_TOPIC_CAP. */
    char name[MODEL_NAME_MAX + 1];
    memset(name, 'n', MODEL_NAME_MAX);
    name[MODEL_NAME_MAX] = '\0';
    assert_int_equal(model_topic_build(out, sizeof out, MODEL_EVENT_VIRTUAL, name, name, &err),
                     KT_OK);
    assert_int_equal(model_topic_parse(&t, out, strlen(out), &err), KT_OK);
    assert_string_equal(t.instance, name);
    /* Build errors. */
    assert_int_equal(model_topic_build(out, 10, MODEL_EVENT_REAL, "aq", "aq-1", &err), KT_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(model_topic_build(out, sizeof out, MODEL_EVENT_STORE, "aq", "aq-1", NULL),
                     KT_EINVAL);
    assert_int_equal(model_topic_build(out, sizeof out, MODEL_EVENT_REAL, "aq", "+", NULL),
                     KT_EINVAL);
    assert_int_equal(model_topic_build(out, sizeof out, MODEL_EVENT_REAL, NULL, "x", NULL),
                     KT_EINVAL);
    assert_int_equal(model_topic_filter(out, sizeof out, MODEL_EVENT_COMMAND, "aq", NULL),
                     KT_EINVAL);
    assert_int_equal(model_topic_filter(out, 8, MODEL_EVENT_REAL, "aq", NULL), KT_ETOOBIG);
}

static void expect_bad_topic(const char *s, size_t len, const char *msg_part)
{
    model_topic t;
    kt_err err = { 0 };
    assert_int_equal(model_topic_parse(&t, s, len, &err), KT_EINVAL);
    assert_int_equal(t.cls, MODEL_EVENT_NONE);
    if (strstr(err.msg, msg_part) == NULL || strncmp(err.msg, "topic: ", 7) != 0) {
        fail_msg("topic \"%.*s\": message \"%s\" lacks \"%s\"", (int)len, s, err.msg, msg_part);
    }
}

#define BAD_TOPIC(s, part) expect_bad_topic(s, sizeof(s) - 1, part)

static void test_topic_rejects(void **state)
{
    (void)state;
    BAD_TOPIC("", "empty");
    BAD_TOPIC("ktwin/real/aq", "3 levels");
    BAD_TOPIC("ktwin/real/aq/x/y", "5 levels");
    BAD_TOPIC("ktwin/real/aq/x/y/z/w", "over 5");
    BAD_TOPIC("ktwin/real/+/x", "'+'");
    BAD_TOPIC("ktwin/real/aq/#", "'#'");
    BAD_TOPIC("ktwin/real/#", "levels");
    BAD_TOPIC("ktwin/real//x", "interface is empty");
    BAD_TOPIC("ktwin/real/aq/", "instance is empty");
    BAD_TOPIC("/ktwin/real/aq", "does not start");
    BAD_TOPIC("ktwin/store/aq/x", "not real or virtual");
    BAD_TOPIC("KTWIN/real/aq/x", "does not start");
    BAD_TOPIC("ktwin/real/a.b/x", "'.'");
    BAD_TOPIC("ktwin/real/a b/x", "white space");
    BAD_TOPIC("ktwin/real/aq/x\0y", "NUL");
    char big[MODEL_TOPIC_CAP + 4];
    memset(big, 'x', sizeof big);
    memcpy(big, "ktwin/real/", 11);
    expect_bad_topic(big, sizeof big, "longer");
    model_topic t;
    assert_int_equal(model_topic_parse(&t, NULL, 0, NULL), KT_EINVAL);
}

static void test_event_from_topic(void **state)
{
    (void)state;
    model_topic t;
    const char *s = "ktwin/real/aq/aq-1";
    assert_int_equal(model_topic_parse(&t, s, strlen(s), NULL), KT_OK);
    char id[MODEL_EVENT_ID_GEN_CAP];
    char tm[MODEL_EVENT_TIME_CAP];
    uint64_t now = 1700000000123ull;
    model_event ev;
    model_event_from_topic(&ev, &t, "{\"a\":1}", 7, model_event_id_new(id, sizeof id),
                           kt_clock_rfc3339(tm, sizeof tm, now), now);
    assert_int_equal(ev.cls, MODEL_EVENT_REAL);
    assert_string_equal(ev.iface, "aq");
    assert_string_equal(ev.source, "aq-1");
    assert_string_equal(ev.time, "2023-11-14T22:13:20.123Z");
    assert_int_equal(ev.data_len, 7);
    assert_null(ev.datacontenttype);
    assert_int_equal(model_event_check(&ev, 0, NULL), KT_OK);
}

/* ---- times ----------------------------------------------------------------------------- */

static uint64_t tparse(const char *s)
{
    uint64_t ms = 0;
    kt_err err = { 0 };
    kt_status st = model_time_parse(s, strlen(s), &ms, &err);
    if (st != KT_OK) {
        fail_msg("time %s: %s", s, err.msg);
    }
    return ms;
}

static void test_time_parse(void **state)
{
    (void)state;
    assert_int_equal(tparse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(tparse("2023-11-14T22:13:20Z"), 1700000000000ull);
    assert_int_equal(tparse("2023-11-14T22:13:20.123Z"), 1700000000123ull);
    assert_int_equal(tparse("2023-11-14T22:13:20.1Z"), 1700000000100ull);
    assert_int_equal(tparse("2023-11-14T22:13:20.123456789Z"), 1700000000123ull);
    assert_int_equal(tparse("2023-11-14t22:13:20z"), 1700000000000ull);
    assert_int_equal(tparse("2023-11-14 22:13:20Z"), 1700000000000ull);
    assert_int_equal(tparse("2023-11-15T00:13:20+02:00"), 1700000000000ull);
    assert_int_equal(tparse("2023-11-14T20:43:20-01:30"), 1700000000000ull);
    assert_int_equal(tparse("2024-02-29T00:00:00Z"), 1709164800000ull);
    assert_int_equal(tparse("2000-02-29T00:00:00Z"), 951782400000ull);
    assert_int_equal(tparse("2016-12-31T23:59:60Z"), 1483228799999ull);
    assert_int_equal(tparse("9999-12-31T23:59:59Z"), 253402300799000ull);
    /* Round trip with kt_clock_rfc3339. */
    char buf[MODEL_EVENT_TIME_CAP];
    for (uint64_t ms = 0; ms < 4000000000000ull; ms += 123456789012ull) {
        assert_int_equal(tparse(kt_clock_rfc3339(buf, sizeof buf, ms)), ms);
    }
    static const char *const bad[] = {
        "",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-11-14T22:13:20+0200",
        "2023-11-14T22:13:20+02",
        "2023-11-14T22:13:20.Z",
        "2023-13-14T22:13:20Z",
        "2023-02-29T22:13:20Z",
        "1900-02-29T00:00:00Z",
        "2023-11-31T22:13:20Z",
        "2023-11-14T24:13:20Z",
        "2023-11-14T22:60:20Z",
        "2023-11-14T22:13:61Z",
        "2023-11-14X22:13:20Z",
        "2023-11-14T22:13:20Zx",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+00:01",
        "2023/11/14T22:13:20Z",
        "+023-11-14T22:13:20Z",
        "2023-11-14T22:13:20+24:00",
        "Tue, 14 Nov 2023 22:13:20 GMT",
        "2023-11-14T22:13:20.1234567890123456789012345678901234567890123456789Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 7;
        kt_err err = { 0 };
        if (model_time_parse(bad[i], strlen(bad[i]), &ms, &err) != KT_EINVAL) {
            fail_msg("accepted bad time \"%s\"", bad[i]);
        }
        assert_int_equal(ms, 7);
        assert_int_equal(strncmp(err.msg, "time: ", 6), 0);
    }
    uint64_t ms;
    assert_int_equal(model_time_parse(NULL, 0, &ms, NULL), KT_EINVAL);
}

/* ---- a sample event ---------------------------------------------------------------------- */

static model_event sample(void)
{
    model_event ev;
    memset(&ev, 0, sizeof ev);
    assert_int_equal(
        model_event_set_class(&ev, MODEL_EVENT_COMMAND, "city-pole", "updateairqualityindex", NULL),
        KT_OK);
    ev.id = "0c5e1b3a-9f2e-4d6b-8a11-1b2c3d4e5f60";
    ev.source = "city-pole-nb001-p00007";
    ev.time = "2024-06-22T00:50:00Z";
    ev.time_ms = 1719017400000ull;
    ev.data = "{\"aqiLevel\":\"MODERATE\"}";
    ev.data_len = strlen(ev.data);
    return ev;
}

static void assert_same(const model_event *a, const model_event *b)
{
    assert_int_equal(a->cls, b->cls);
    assert_string_equal(a->iface, b->iface);
    assert_string_equal(a->command, b->command);
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->source, b->source);
    if (a->time == NULL || b->time == NULL) {
        assert_ptr_equal(a->time, b->time);
    } else {
        assert_string_equal(a->time, b->time);
    }
    assert_int_equal(a->time_ms, b->time_ms);
    if (a->datacontenttype == NULL || b->datacontenttype == NULL) {
        assert_ptr_equal(a->datacontenttype, b->datacontenttype);
    } else {
        assert_string_equal(a->datacontenttype, b->datacontenttype);
    }
    assert_int_equal(a->data_len, b->data_len);
    if (a->data_len > 0) {
        assert_memory_equal(a->data, b->data, a->data_len);
    }
}

/* ---- check ------------------------------------------------------------------------------- */

static void want_check(model_event ev, kt_status want, const char *msg_part)
{
    kt_err err = { 0 };
    assert_int_equal(model_event_check(&ev, 64, &err), want);
    if (want != KT_OK && strstr(err.msg, msg_part) == NULL) {
        fail_msg("check: message \"%s\" lacks \"%s\"", err.msg, msg_part);
    }
}

static void test_check(void **state)
{
    (void)state;
    model_event ev = sample();
    want_check(ev, KT_OK, NULL);
    ev.id = "";
    want_check(ev, KT_EINVAL, "id: missing");
    ev = sample();
    ev.id = "a\nb";
    want_check(ev, KT_EINVAL, "id: contains a control");
    ev = sample();
    char longid[MODEL_EVENT_ID_MAX + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    ev.id = longid;
    want_check(ev, KT_EINVAL, "id: longer");
    ev = sample();
    ev.source = "a/b";
    want_check(ev, KT_EINVAL, "source: instance name \"a/b\"");
    ev = sample();
    ev.source = NULL;
    want_check(ev, KT_EINVAL, "source: missing");
    ev = sample();
    ev.time = "yesterday";
    want_check(ev, KT_EINVAL, "time: ");
    ev = sample();
    ev.datacontenttype = "";
    want_check(ev, KT_EINVAL, "datacontenttype");
    ev = sample();
    ev.data_len = 65;
    want_check(ev, KT_ETOOBIG, "data: 65 bytes over the 64 cap");
    ev = sample();
    ev.data = NULL;
    want_check(ev, KT_EINVAL, "data: NULL");
    ev = sample();
    ev.cls = MODEL_EVENT_REAL; /* a command name on a real event */
    want_check(ev, KT_EINVAL, "command name");
    ev = sample();
    ev.cls = MODEL_EVENT_NONE;
    want_check(ev, KT_EINVAL, "no event class");
    ev = sample();
    ev.iface[0] = '\0';
    want_check(ev, KT_EINVAL, "interface");
}

/* ---- copies ------------------------------------------------------------------------------ */

static void test_dup_and_copy_into(void **state)
{
    (void)state;
    model_event ev = sample();
    ev.datacontenttype = "application/json";
    model_event *d = NULL;
    assert_int_equal(model_event_dup(&d, &ev, NULL), KT_OK);
    assert_same(&ev, d);
    /* The copy points only into its own block. */
    const char *lo = (const char *)d, *hi = lo + model_event_copy_size(&ev);
    const char *ptrs[] = { d->id, d->source, d->time, d->datacontenttype, d->data };
    for (size_t i = 0; i < 5; i++) {
        assert_true(ptrs[i] >= lo && ptrs[i] < hi);
    }
    assert_int_equal(((const char *)d->data)[d->data_len], '\0');
    model_event_free(d);
    model_event_free(NULL);

    /* Into an arena; absent strings and no data. */
    kt_arena a;
    kt_arena_init(&a, 4096);
    ev.time = NULL;
    ev.datacontenttype = NULL;
    ev.data = NULL;
    ev.data_len = 0;
    size_t n = model_event_copy_size(&ev);
    model_event *c = model_event_copy_into(kt_arena_alloc(&a, n), n, &ev);
    assert_same(&ev, c);
    assert_null(c->data);
    kt_arena_fini(&a);

    /* Allocation failure. */
    ev = sample();
    kt_mem_fail_at(1);
    kt_err err = { 0 };
    assert_int_equal(model_event_dup(&d, &ev, &err), KT_ENOMEM);
    assert_null(d);
    kt_mem_fail_at(0);
}

/* ---- binary form ------------------------------------------------------------------------- */

static void test_encode_decode_round_trip(void **state)
{
    (void)state;
    model_event ev = sample();
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(model_event_encode(&ev, &b), KT_OK);
    model_event *d = NULL;
    kt_err err = { 0 };
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, &err), KT_OK);
    assert_same(&ev, d);
    model_event_free(d);

    /* No time string, time_ms only; binary data with NULs; a content type. */
    kt_buf_reset(&b);
    ev.time = NULL;
    ev.time_ms = 42;
    ev.datacontenttype = "application/octet-stream";
    static const unsigned char bin[] = { 0, 1, 2, 0xff, 0 };
    ev.data = bin;
    ev.data_len = sizeof bin;
    assert_int_equal(model_event_encode(&ev, &b), KT_OK);
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, &err), KT_OK);
    assert_same(&ev, d);
    model_event_free(d);

    /* Every truncation is refused as EPROTO, never read past the end. */
    for (size_t len = 0; len < b.len; len++) {
        kt_err e2 = { 0 };
        char *copy = kt_xmalloc(len + 1);
        memcpy(copy, b.data, len);
        assert_int_equal(model_event_decode(&d, copy, len, 0, &e2), KT_EPROTO);
        assert_null(d);
        assert_non_null(strstr(e2.msg, "encoded event"));
        kt_free(copy);
    }
    /* Trailing bytes, bad magic, version, class, cap. */
    assert_int_equal(kt_buf_putc(&b, 'x'), KT_OK);
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, &err), KT_EPROTO);
    b.len--;
    b.data[0] = 'X';
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, NULL), KT_EPROTO);
    b.data[0] = 'K';
    b.data[2] = 9;
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, NULL), KT_EPROTO);
    b.data[2] = 1;
    b.data[3] = 9;
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, NULL), KT_EINVAL);
    b.data[3] = MODEL_EVENT_REAL; /* a command name on a real event */
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, NULL), KT_EINVAL);
    b.data[3] = MODEL_EVENT_COMMAND;
    kt_err_clear(&err);
    assert_int_equal(model_event_decode(&d, b.data, b.len, 4, &err), KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "data"));
    assert_int_equal(model_event_decode(&d, b.data, b.len, 0, NULL), KT_OK);
    model_event_free(d);

    /* The output buffer's cap. */
    kt_buf small;
    kt_buf_init(&small, 20);
    assert_int_equal(model_event_encode(&ev, &small), KT_ETOOBIG);
    assert_int_equal(small.len, 0);
    kt_buf_fini(&small);
    kt_buf_fini(&b);
}

/* ---- HTTP binary mode ---------------------------------------------------------------------- */

typedef struct hdrs {
    size_t n;
    const char *name[16];
    const char *value[16];
} hdrs;

static const char *hdr_get(const char *name, void *user)
{
    const hdrs *h = user;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            return h->value[i];
        }
    }
    return NULL;
}

static void hdr_set(hdrs *h, const char *name, const char *value)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            if (value == NULL) {
                h->name[i] = h->name[h->n - 1];
                h->value[i] = h->value[h->n - 1];
                h->n--;
            } else {
                h->value[i] = value;
            }
            return;
        }
    }
    if (value != NULL) {
        h->name[h->n] = name;
        h->value[h->n] = value;
        h->n++;
    }
}

/* KTWIN's Go SDK request (PostCloudEvent), with its empty ce-subject. */
static hdrs go_sdk_headers(void)
{
    hdrs h = { 0 };
    hdr_set(&h, "Ce-Id", "6f1c0c1e-2b6a-4b7b-9a43-9f7a7a0e3c11");
    hdr_set(&h, "Ce-Specversion", "1.0");
    hdr_set(&h, "Ce-Time", "2024-06-22T00:50:00.5Z");
    hdr_set(&h, "Ce-Source", "ngsi-ld-city-airqualityobserved-nb001-p00001");
    hdr_set(&h, "Ce-Type", "ktwin.store.ngsi-ld-city-airqualityobserved");
    hdr_set(&h, "Ce-Subject", "");
    hdr_set(&h, "Content-Type", "application/json");
    return h;
}

static void test_http_binary_parse(void **state)
{
    (void)state;
    hdrs h = go_sdk_headers();
    const char *body = "{\"CODensity\":8,\"COAqiLevel\":\"MODERATE\"}";
    model_event *ev = NULL;
    kt_err err = { 0 };
    assert_int_equal(model_event_from_http(&ev, hdr_get, &h, body, strlen(body), 0, &err), KT_OK);
    assert_int_equal(ev->cls, MODEL_EVENT_STORE);
    assert_string_equal(ev->iface, "ngsi-ld-city-airqualityobserved");
    assert_string_equal(ev->source, "ngsi-ld-city-airqualityobserved-nb001-p00001");
    assert_string_equal(ev->id, "6f1c0c1e-2b6a-4b7b-9a43-9f7a7a0e3c11");
    assert_string_equal(ev->time, "2024-06-22T00:50:00.5Z");
    assert_int_equal(ev->time_ms, 1719017400500ull);
    assert_string_equal(ev->datacontenttype, "application/json");
    assert_int_equal(ev->data_len, strlen(body));
    assert_memory_equal(ev->data, body, strlen(body));
    model_event_free(ev);

    /* No time, no content type, no body. */
    hdr_set(&h, "Ce-Time", NULL);
    hdr_set(&h, "Content-Type", NULL);
    assert_int_equal(model_event_from_http(&ev, hdr_get, &h, NULL, 0, 0, &err), KT_OK);
    assert_null(ev->time);
    assert_int_equal(ev->time_ms, 0);
    assert_null(ev->datacontenttype);
    assert_int_equal(ev->data_len, 0);
    model_event_free(ev);
}

static void expect_bad_http(hdrs *h, const char *body, size_t max, kt_status want, const char *part)
{
    model_event *ev = (model_event *)1;
    kt_err err = { 0 };
    assert_int_equal(
        model_event_from_http(&ev, hdr_get, h, body, body != NULL ? strlen(body) : 0, max, &err),
        want);
    assert_null(ev);
    if (strstr(err.msg, part) == NULL) {
        fail_msg("http: message \"%s\" lacks \"%s\"", err.msg, part);
    }
}

static void test_http_binary_rejects(void **state)
{
    (void)state;
    static const char *const required[] = { "ce-id", "ce-type", "ce-source" };
    for (size_t i = 0; i < 3; i++) {
        hdrs h = go_sdk_headers();
        hdr_set(&h, required[i], NULL);
        char want[32];
        snprintf(want, sizeof want, "%s: missing", required[i]);
        expect_bad_http(&h, "{}", 0, KT_EPROTO, want);
    }
    hdrs h = go_sdk_headers();
    hdr_set(&h, "ce-specversion", NULL);
    expect_bad_http(&h, "{}", 0, KT_EPROTO, "ce-specversion: missing");
    hdr_set(&h, "ce-specversion", "0.3");
    expect_bad_http(&h, "{}", 0, KT_EPROTO, "is not 1.0");
    h = go_sdk_headers();
    hdr_set(&h, "ce-type", "ktwin.event-store");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "type: ");
    hdr_set(&h, "ce-type", "com.example.other");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "type: ");
    h = go_sdk_headers();
    hdr_set(&h, "ce-source", "x/y");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "source: ");
    hdr_set(&h, "ce-source", "");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "source: ");
    h = go_sdk_headers();
    hdr_set(&h, "ce-time", "2024-06-22 late");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "time: ");
    h = go_sdk_headers();
    hdr_set(&h, "ce-id", "");
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "id: ");
    h = go_sdk_headers();
    expect_bad_http(&h, "{\"a\":12345}", 8, KT_ETOOBIG, "data: 11 bytes over the 8 cap");
    char longct[MODEL_EVENT_CT_MAX + 10];
    memset(longct, 'c', sizeof longct - 1);
    longct[sizeof longct - 1] = '\0';
    hdr_set(&h, "content-type", longct);
    expect_bad_http(&h, "{}", 0, KT_EINVAL, "datacontenttype: longer");
    hdr_set(&h, "content-type", "application/cloudevents-batch+json");
    expect_bad_http(&h, "[]", 0, KT_EPROTO, "batch mode");
}

static void test_http_binary_render_round_trip(void **state)
{
    (void)state;
    model_event ev = sample();
    model_ce_headers out;
    model_event_to_http_binary(&ev, &out);
    assert_int_equal(out.n, 6);
    assert_string_equal(out.h[0].name, "ce-specversion");
    assert_string_equal(out.h[0].value, "1.0");
    assert_string_equal(out.h[2].name, "ce-type");
    assert_string_equal(out.h[2].value, "ktwin.command.city-pole.updateairqualityindex");
    assert_string_equal(out.h[4].name, "ce-time");
    assert_string_equal(out.h[4].value, "2024-06-22T00:50:00Z");
    assert_string_equal(out.h[5].name, "content-type");
    assert_string_equal(out.h[5].value, "application/json");
    hdrs h = { 0 };
    for (size_t i = 0; i < out.n; i++) {
        hdr_set(&h, out.h[i].name, out.h[i].value);
    }
    model_event *back = NULL;
    assert_int_equal(model_event_from_http(&back, hdr_get, &h, ev.data, ev.data_len, 0, NULL),
                     KT_OK);
    ev.datacontenttype = "application/json"; /* binary mode always carries one */
    assert_same(&ev, back);
    model_event_free(back);

    /* time from time_ms only; no time at all. */
    ev.time = NULL;
    model_event_to_http_binary(&ev, &out);
    assert_string_equal(out.h[4].value, "2024-06-22T00:50:00.000Z");
    ev.time_ms = 0;
    model_event_to_http_binary(&ev, &out);
    assert_int_equal(out.n, 5);
    assert_string_equal(out.h[4].name, "content-type");
}

/* ---- structured mode ---------------------------------------------------------------------- */

static model_event *parse_json_ok(const char *json)
{
    model_event *ev = NULL;
    kt_err err = { 0 };
    kt_status st = model_event_from_json(&ev, json, strlen(json), 0, &err);
    if (st != KT_OK) {
        fail_msg("structured %s: %s", json, err.msg);
    }
    return ev;
}

static void test_structured_parse(void **state)
{
    (void)state;
    /* KTWIN's Python SDK shape. */
    model_event *ev = parse_json_ok(
        "{\"specversion\":\"1.0\",\"id\":\"42\",\"type\":\"ktwin.virtual.ngsi-ld-city-device\","
        "\"source\":\"ngsi-ld-city-device-aqo-nb001-p00001\",\"time\":\"2024-06-22T00:50:00Z\","
        "\"subject\":\"\",\"x-ext\":7,\"data\":{ \"measurementFrequency\" : 60 }}");
    assert_int_equal(ev->cls, MODEL_EVENT_VIRTUAL);
    assert_string_equal(ev->iface, "ngsi-ld-city-device");
    assert_int_equal(ev->time_ms, 1719017400000ull);
    assert_string_equal(ev->datacontenttype, "application/json");
    assert_string_equal((const char *)ev->data, "{\"measurementFrequency\":60}");
    model_event_free(ev);

    /* data_base64, explicit content type, null attributes. */
    ev = parse_json_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                       "\"source\":\"a-1\",\"time\":null,\"data\":null,"
                       "\"datacontenttype\":\"application/octet-stream\","
                       "\"data_base64\":\"AAEC/w==\"}");
    assert_null(ev->time);
    assert_int_equal(ev->data_len, 4);
    assert_memory_equal(ev->data, "\x00\x01\x02\xff", 4);
    model_event_free(ev);
    /* Unpadded base64 and no data at all. */
    ev = parse_json_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                       "\"source\":\"a-1\",\"data_base64\":\"AAEC\"}");
    assert_int_equal(ev->data_len, 3);
    model_event_free(ev);
    ev = parse_json_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                       "\"source\":\"a-1\"}");
    assert_int_equal(ev->data_len, 0);
    assert_null(ev->datacontenttype);
    model_event_free(ev);
    /* A JSON string as data. */
    ev = parse_json_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                       "\"source\":\"a-1\",\"data\":\"hi\"}");
    assert_string_equal((const char *)ev->data, "\"hi\"");
    model_event_free(ev);

    /* A string with a non-JSON content type is the text itself; round trip via base64. */
    ev = parse_json_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                       "\"source\":\"a-1\",\"datacontenttype\":\"text/plain\",\"data\":\"hello\"}");
    assert_int_equal(ev->data_len, 5);
    assert_memory_equal(ev->data, "hello", 5);
    kt_buf tb;
    kt_buf_init(&tb, 4096);
    assert_int_equal(model_event_to_json(ev, &tb), KT_OK);
    assert_non_null(strstr(tb.data, "\"data_base64\":\"aGVsbG8=\""));
    model_event *again = NULL;
    assert_int_equal(model_event_from_json(&again, tb.data, tb.len, 0, NULL), KT_OK);
    assert_same(ev, again);
    model_event_free(again);
    kt_buf_fini(&tb);
    model_event_free(ev);

    /* Over HTTP with a charset parameter. */
    hdrs h = { 0 };
    hdr_set(&h, "content-type", " Application/CloudEvents+JSON ; charset=utf-8");
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"9\",\"type\":\"ktwin.store.b\","
                       "\"source\":\"b-1\",\"data\":[1,2]}";
    assert_int_equal(model_event_from_http(&ev, hdr_get, &h, body, strlen(body), 0, NULL), KT_OK);
    assert_int_equal(ev->cls, MODEL_EVENT_STORE);
    assert_string_equal((const char *)ev->data, "[1,2]");
    model_event_free(ev);
    kt_err err = { 0 };
    assert_int_equal(model_event_from_http(&ev, hdr_get, &h, NULL, 0, 0, &err), KT_EINVAL);
    assert_null(ev);
}

static void expect_bad_json(const char *json, size_t max, kt_status want, const char *part)
{
    model_event *ev = (model_event *)1;
    kt_err err = { 0 };
    assert_int_equal(model_event_from_json(&ev, json, strlen(json), max, &err), want);
    assert_null(ev);
    if (strstr(err.msg, part) == NULL) {
        fail_msg("structured %s: message \"%s\" lacks \"%s\"", json, err.msg, part);
    }
}

#define CE_HEAD "{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\",\"source\":\"a-1\""

static void test_structured_rejects(void **state)
{
    (void)state;
    expect_bad_json("", 0, KT_EINVAL, "JSON");
    expect_bad_json("{", 0, KT_EINVAL, "JSON");
    expect_bad_json("[1]", 0, KT_EINVAL, "not a JSON object");
    expect_bad_json("{\"id\":\"1\",\"type\":\"ktwin.real.a\",\"source\":\"a-1\"}", 0, KT_EPROTO,
                    "specversion: missing");
    expect_bad_json("{\"specversion\":\"0.3\"}", 0, KT_EPROTO, "not 1.0");
    expect_bad_json("{\"specversion\":1.0}", 0, KT_EINVAL, "specversion: not a string");
    expect_bad_json("{\"specversion\":\"1.0\",\"type\":\"ktwin.real.a\",\"source\":\"a-1\"}", 0,
                    KT_EPROTO, "id: missing");
    expect_bad_json("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"a-1\"}", 0, KT_EPROTO,
                    "type: missing");
    expect_bad_json("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\"}", 0,
                    KT_EPROTO, "source: missing");
    expect_bad_json("{\"specversion\":\"1.0\",\"id\":7,\"type\":\"ktwin.real.a\",\"source\":\"a\"}",
                    0, KT_EINVAL, "id: not a string");
    expect_bad_json(
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.x.a\",\"source\":\"a\"}", 0,
        KT_EINVAL, "type: ");
    expect_bad_json(CE_HEAD ",\"time\":\"now\"}", 0, KT_EINVAL, "time: ");
    expect_bad_json(CE_HEAD ",\"data\":{},\"data_base64\":\"AA==\"}", 0, KT_EINVAL, "both");
    expect_bad_json(CE_HEAD ",\"data_base64\":\"A*==\"}", 0, KT_EINVAL, "data_base64: not");
    expect_bad_json(CE_HEAD ",\"data_base64\":\"A\"}", 0, KT_EINVAL, "data_base64: not");
    expect_bad_json(CE_HEAD ",\"data_base64\":17}", 0, KT_EINVAL, "data_base64: not a string");
    expect_bad_json(CE_HEAD ",\"data\":\"0123456789\"}", 8, KT_ETOOBIG, "data: ");
    expect_bad_json(CE_HEAD ",\"data_base64\":\"AAAAAAAAAAAAAAAA\"}", 8, KT_ETOOBIG, "data");
    expect_bad_json(CE_HEAD ",\"data_base64\":\"AAAAAAAAAAAA\"}", 8, KT_ETOOBIG, "data: 9 bytes");
    expect_bad_json("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"ktwin.real.a\","
                    "\"source\":\"a b\"}",
                    0, KT_EINVAL, "source: instance name");
    /* The whole body is capped before parsing. */
    kt_buf big;
    kt_buf_init(&big, 1u << 20);
    assert_int_equal(kt_buf_puts(&big, CE_HEAD ",\"data\":\""), KT_OK);
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(kt_buf_putc(&big, 'x'), KT_OK);
    }
    assert_int_equal(kt_buf_puts(&big, "\"}"), KT_OK);
    expect_bad_json(big.data, 16, KT_ETOOBIG, "structured event: ");
    kt_buf_fini(&big);
}

static void test_structured_render_round_trip(void **state)
{
    (void)state;
    model_event ev = sample();
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
    assert_string_equal(b.data,
                        "{\"specversion\":\"1.0\",\"id\":\"0c5e1b3a-9f2e-4d6b-8a11-1b2c3d4e5f60\","
                        "\"type\":\"ktwin.command.city-pole.updateairqualityindex\","
                        "\"source\":\"city-pole-nb001-p00007\",\"time\":\"2024-06-22T00:50:00Z\","
                        "\"data\":{\"aqiLevel\":\"MODERATE\"}}");
    model_event *back = NULL;
    assert_int_equal(model_event_from_json(&back, b.data, b.len, 0, NULL), KT_OK);
    ev.datacontenttype = "application/json"; /* inline data implies JSON */
    assert_same(&ev, back);
    model_event_free(back);

    /* Not JSON although labelled JSON, binary data, odd characters in the id. */
    ev = sample();
    ev.id = "q\"\\\x01";
    ev.data = "not json";
    ev.data_len = 8;
    kt_buf_reset(&b);
    assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
    assert_non_null(strstr(b.data, "\"id\":\"q\\\"\\\\\\u0001\""));
    assert_non_null(strstr(b.data, "\"data_base64\":\"bm90IGpzb24=\""));
    /* The control character in the id is refused on the way back in. */
    assert_int_equal(model_event_from_json(&back, b.data, b.len, 0, NULL), KT_EINVAL);
    ev.id = "q\"\\";
    kt_buf_reset(&b);
    assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
    assert_int_equal(model_event_from_json(&back, b.data, b.len, 0, NULL), KT_OK);
    assert_same(&ev, back);
    model_event_free(back);

    /* Every base64 tail length; a +json type is inlined. */
    for (size_t n = 1; n <= 5; n++) {
        static const unsigned char raw[5] = { 0xfb, 0xff, 0x00, 0x10, 0x80 };
        ev = sample();
        ev.datacontenttype = "application/octet-stream";
        ev.data = raw;
        ev.data_len = n;
        kt_buf_reset(&b);
        assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
        assert_int_equal(model_event_from_json(&back, b.data, b.len, 0, NULL), KT_OK);
        assert_same(&ev, back);
        model_event_free(back);
    }
    ev = sample();
    ev.datacontenttype = "application/ld+json; charset=utf-8";
    kt_buf_reset(&b);
    assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
    assert_non_null(strstr(b.data, "\"data\":{"));
    /* time from time_ms; no data. */
    ev.time = NULL;
    ev.data = NULL;
    ev.data_len = 0;
    kt_buf_reset(&b);
    assert_int_equal(model_event_to_json(&ev, &b), KT_OK);
    assert_non_null(strstr(b.data, "\"time\":\"2024-06-22T00:50:00.000Z\""));
    assert_null(strstr(b.data, "data\""));
    /* The cap: nothing appended on failure. */
    kt_buf small;
    kt_buf_init(&small, 40);
    assert_int_equal(kt_buf_puts(&small, "keep"), KT_OK);
    assert_int_equal(model_event_to_json(&ev, &small), KT_ETOOBIG);
    assert_string_equal(small.data, "keep");
    kt_buf_fini(&small);
    kt_buf_fini(&b);
}

/* ---- ids --------------------------------------------------------------------------------- */

#define IDS_PER_THREAD 5000

static void *make_ids(void *arg)
{
    char(*ids)[MODEL_EVENT_ID_GEN_CAP] = arg;
    for (int i = 0; i < IDS_PER_THREAD; i++) {
        model_event_id_new(ids[i], MODEL_EVENT_ID_GEN_CAP);
    }
    return NULL;
}

static void test_ids_unique(void **state)
{
    (void)state;
    enum { T = 4 };
    char(*ids)[MODEL_EVENT_ID_GEN_CAP] = kt_xcalloc(T * IDS_PER_THREAD, MODEL_EVENT_ID_GEN_CAP);
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, ids + t * IDS_PER_THREAD), 0);
    }
    for (int t = 0; t < T; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
    }
    kt_map seen;
    kt_map_init(&seen);
    for (int i = 0; i < T * IDS_PER_THREAD; i++) {
        assert_true(strlen(ids[i]) > 17 && strlen(ids[i]) < MODEL_EVENT_ID_GEN_CAP);
        assert_int_equal(ids[i][16], '-');
        assert_null(kt_map_put(&seen, ids[i], ids[i]));
    }
    /* Same process, same prefix. */
    assert_memory_equal(ids[0], ids[T * IDS_PER_THREAD - 1], 16);
    kt_map_fini(&seen);
    kt_free(ids);
    char small[8];
    assert_string_equal(model_event_id_new(small, sizeof small), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_parse),
        cmocka_unit_test(test_type_rejects),
        cmocka_unit_test(test_type_build),
        cmocka_unit_test(test_topic_parse_and_build),
        cmocka_unit_test(test_topic_rejects),
        cmocka_unit_test(test_event_from_topic),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_dup_and_copy_into),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_http_binary_parse),
        cmocka_unit_test(test_http_binary_rejects),
        cmocka_unit_test(test_http_binary_render_round_trip),
        cmocka_unit_test(test_structured_parse),
        cmocka_unit_test(test_structured_rejects),
        cmocka_unit_test(test_structured_render_round_trip),
        cmocka_unit_test(test_ids_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
