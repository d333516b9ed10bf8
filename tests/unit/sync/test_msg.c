/*
 * test_msg.c — the sync message codec: every Envelope body round-trips,
 * validation names the bad field, hostile bytes (garbage, truncated,
 * oversized, too many objects) give KT_EPROTO / KT_ETOOBIG without a crash,
 * the incremental chunk encoder matches what decode expects, and decode
 * survives every allocation failing in turn (KT_FAIL_ALLOC_AT style loop).
 *
 * With KT_SYNC_WRITE_CORPUS=<dir> set, test_msg_write_corpus writes the
 * fuzz seed corpus (valid messages of each type plus broken ones) there;
 * that is how tests/fuzz/corpus/sync_decode/ was made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "msg_int.h" /* sync/src: the incremental chunk encoder */
#include "sync/msg.h"

static const char BODY_A[] = "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\"}";
static const char BODY_B[] = "{\"kind\":\"TwinInterface\",\"spec\":{}}";

static sync_object sample_objects[3];
static sync_iface_placement sample_ifaces[3];
static sync_event sample_events[3];

static void init_samples(void)
{
    sample_objects[0] = (sync_object){ SYNC_KIND_TWIN_INSTANCE, "pole-001", (const uint8_t *)BODY_A,
                                       sizeof BODY_A - 1,       false,      7 };
    sample_objects[1] =
        (sync_object){ SYNC_KIND_TWIN_INTERFACE, "city-pole", (const uint8_t *)BODY_B,
                       sizeof BODY_B - 1,        false,       0 };
    sample_objects[2] = (sync_object){ SYNC_KIND_TWIN_INSTANCE, "pole-002", NULL, 0, true, 9 };
    sample_ifaces[0] = (sync_iface_placement){ "city-pole", SYNC_WHERE_EDGE, NULL, "p/r1", "fits" };
    sample_ifaces[1] =
        (sync_iface_placement){ "city-air", SYNC_WHERE_OTHER_SITE, "site-b", NULL, NULL };
    sample_ifaces[2] =
        (sync_iface_placement){ "city-bus", SYNC_WHERE_PENDING, NULL, NULL, "no room" };
    sample_events[0] = (sync_event){ .id = "ev-1",
                                     .type = "ktwin.real.city-pole",
                                     .source = "pole-001",
                                     .time_ms = 1700000000001ull,
                                     .datacontenttype = "application/json",
                                     .data = (const uint8_t *)"{\"t\":21.5}",
                                     .data_len = 10 };
    sample_events[1] = (sync_event){ .id = "ev-2",
                                     .type = "ktwin.virtual.city-pole",
                                     .source = "pole-002",
                                     .subject = "cmd",
                                     .depth = 3 };
    sample_events[2] = (sync_event){ .id = "ev-3",
                                     .type = "ktwin.real.city-air",
                                     .source = "air-1",
                                     .data = (const uint8_t *)"\0\1\2",
                                     .data_len = 3 };
}

/* One valid sample message per type (index = sync_msg_type). */
static sync_msg sample(sync_msg_type t)
{
    init_samples();
    sync_msg m = { .type = t };
    switch (t) {
    case SYNC_MSG_HELLO:
        m.u.hello = (sync_hello){ .proto_min = 1,
                                  .proto_max = 1,
                                  .site = "site-a",
                                  .token = "s3cret",
                                  .agent_version = "0.1.0",
                                  .graph_revision = 41,
                                  .placement_revision = 3,
                                  .has_capacity = true,
                                  .capacity = { true, 4000, true, 8ull << 30 },
                                  .incarnation = "inc-1",
                                  .has_last_acked_down_seq = true,
                                  .last_acked_down_seq = 12 };
        break;
    case SYNC_MSG_WELCOME:
        m.u.welcome = (sync_welcome){ 1, "hub-1", 42, SYNC_MODE_DELTA, 5000, 0, 77 };
        break;
    case SYNC_MSG_REJECT:
        m.u.reject = (sync_reject){ SYNC_REJECT_BUSY, "admission limit", 1500 };
        break;
    case SYNC_MSG_SNAPSHOT:
        m.u.snapshot = (sync_snapshot_chunk){ 42, 0, true, sample_objects, 2 };
        break;
    case SYNC_MSG_DELTA:
        m.u.delta = (sync_delta){ 41, 42, sample_objects, 3 };
        break;
    case SYNC_MSG_PLACEMENT:
        m.u.placement = (sync_placement){ 5, sample_ifaces, 3 };
        break;
    case SYNC_MSG_ACK:
        m.u.ack = (sync_ack){ SYNC_STREAM_PLACEMENT, 5 };
        break;
    case SYNC_MSG_HEARTBEAT:
        m.u.heartbeat.sent_ms = 1700000000123ull;
        break;
    case SYNC_MSG_CAPACITY:
        m.u.capacity.capacity = (sync_capacity){ true, 2000, false, 0 };
        break;
    case SYNC_MSG_EVENTS:
        m.u.events = (sync_event_batch){ SYNC_STREAM_UP, "inc-1", 7, sample_events, 3 };
        break;
    case SYNC_MSG_NONE:
        break;
    }
    return m;
}

static void encode_ok(const sync_msg *m, kt_buf *b)
{
    kt_err err = { 0 };
    kt_buf_init(b, 16u * 1024u * 1024u);
    kt_status st = sync_msg_encode(m, b, &err);
    if (st != KT_OK) {
        fail_msg("encode %s: %s", sync_msg_type_str(m->type), err.msg);
    }
}

static kt_status decode(sync_msg **out, const kt_buf *b, const sync_limits *lim, kt_err *err)
{
    return sync_msg_decode(out, (const uint8_t *)b->data, b->len, lim, err);
}

static void assert_objects_equal(const sync_object *a, const sync_object *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].kind, b[i].kind);
        assert_string_equal(a[i].name, b[i].name);
        assert_int_equal(a[i].deleted, b[i].deleted);
        assert_int_equal(a[i].revision, b[i].revision);
        assert_int_equal(a[i].body_len, b[i].body_len);
        if (a[i].body != NULL) {
            assert_memory_equal(a[i].body, b[i].body, a[i].body_len);
            assert_int_equal(b[i].body[b[i].body_len], '\0');
        } else {
            assert_null(b[i].body);
        }
    }
}

static void test_msg_every_type_round_trips(void **state)
{
    (void)state;
    for (int t = SYNC_MSG_HELLO; t <= SYNC_MSG_EVENTS; t++) {
        sync_msg m = sample((sync_msg_type)t);
        kt_buf b;
        encode_ok(&m, &b);
        sync_msg *d = NULL;
        kt_err err = { 0 };
        kt_status st = decode(&d, &b, NULL, &err);
        if (st != KT_OK) {
            fail_msg("decode %s: %s", sync_msg_type_str(m.type), err.msg);
        }
        assert_int_equal(d->type, t);
        switch (m.type) {
        case SYNC_MSG_HELLO:
            assert_string_equal(d->u.hello.site, "site-a");
            assert_string_equal(d->u.hello.token, "s3cret");
            assert_string_equal(d->u.hello.agent_version, "0.1.0");
            assert_int_equal(d->u.hello.graph_revision, 41);
            assert_int_equal(d->u.hello.placement_revision, 3);
            assert_true(d->u.hello.has_capacity);
            assert_int_equal(d->u.hello.capacity.cpu_millis, 4000);
            assert_int_equal(d->u.hello.capacity.memory_bytes, 8ull << 30);
            assert_string_equal(d->u.hello.incarnation, "inc-1");
            assert_true(d->u.hello.has_last_acked_down_seq);
            assert_false(d->u.hello.has_first_unacked_up_seq);
            break;
        case SYNC_MSG_WELCOME:
            assert_int_equal(d->u.welcome.proto, 1);
            assert_string_equal(d->u.welcome.hub_id, "hub-1");
            assert_int_equal(d->u.welcome.graph_revision, 42);
            assert_int_equal(d->u.welcome.mode, SYNC_MODE_DELTA);
            assert_int_equal(d->u.welcome.heartbeat_ms, 5000);
            assert_int_equal(d->u.welcome.window_bytes, 0);
            assert_int_equal(d->u.welcome.down_next_seq, 77);
            break;
        case SYNC_MSG_REJECT:
            assert_int_equal(d->u.reject.code, SYNC_REJECT_BUSY);
            assert_string_equal(d->u.reject.message, "admission limit");
            assert_int_equal(d->u.reject.retry_after_ms, 1500);
            break;
        case SYNC_MSG_SNAPSHOT:
            assert_int_equal(d->u.snapshot.revision, 42);
            assert_true(d->u.snapshot.last);
            assert_int_equal(d->u.snapshot.n_objects, 2);
            assert_objects_equal(m.u.snapshot.objects, d->u.snapshot.objects, 2);
            break;
        case SYNC_MSG_DELTA:
            assert_int_equal(d->u.delta.from_revision, 41);
            assert_int_equal(d->u.delta.to_revision, 42);
            assert_int_equal(d->u.delta.n_objects, 3);
            assert_objects_equal(m.u.delta.objects, d->u.delta.objects, 3);
            break;
        case SYNC_MSG_PLACEMENT:
            assert_int_equal(d->u.placement.revision, 5);
            assert_int_equal(d->u.placement.n_interfaces, 3);
            assert_string_equal(d->u.placement.interfaces[1].interface, "city-air");
            assert_int_equal(d->u.placement.interfaces[1].where, SYNC_WHERE_OTHER_SITE);
            assert_string_equal(d->u.placement.interfaces[1].site, "site-b");
            assert_string_equal(d->u.placement.interfaces[0].rule, "p/r1");
            assert_null(d->u.placement.interfaces[0].site);
            assert_string_equal(d->u.placement.interfaces[2].reason, "no room");
            break;
        case SYNC_MSG_ACK:
            assert_int_equal(d->u.ack.stream, SYNC_STREAM_PLACEMENT);
            assert_int_equal(d->u.ack.seq, 5);
            break;
        case SYNC_MSG_HEARTBEAT:
            assert_int_equal(d->u.heartbeat.sent_ms, 1700000000123ull);
            break;
        case SYNC_MSG_CAPACITY:
            assert_true(d->u.capacity.capacity.has_cpu_millis);
            assert_false(d->u.capacity.capacity.has_memory_bytes);
            assert_int_equal(d->u.capacity.capacity.cpu_millis, 2000);
            break;
        case SYNC_MSG_EVENTS: {
            const sync_event_batch *e = &d->u.events;
            assert_int_equal(e->stream, SYNC_STREAM_UP);
            assert_string_equal(e->incarnation, "inc-1");
            assert_int_equal(e->first_seq, 7);
            assert_int_equal(e->n_events, 3);
            for (size_t i = 0; i < 3; i++) {
                const sync_event *a = &m.u.events.events[i];
                const sync_event *g = &e->events[i];
                assert_string_equal(g->id, a->id);
                assert_string_equal(g->type, a->type);
                assert_string_equal(g->source, a->source);
                assert_int_equal(g->time_ms, a->time_ms);
                assert_int_equal(g->depth, a->depth); /* 3 on ev-2, absent (0) on the others */
                assert_int_equal(g->data_len, a->data_len);
                assert_non_null(g->data);
                assert_int_equal(g->data[g->data_len], '\0');
                if (a->data_len > 0) {
                    assert_memory_equal(g->data, a->data, a->data_len);
                }
            }
            assert_string_equal(e->events[0].datacontenttype, "application/json");
            assert_null(e->events[0].subject);
            assert_string_equal(e->events[1].subject, "cmd");
            assert_null(e->events[1].datacontenttype);
            break;
        }
        case SYNC_MSG_NONE:
            break;
        }
        sync_msg_free(d);
        kt_buf_fini(&b);
    }
}

/* Encode m (which is invalid) and check decode refuses it with st and a message containing what. */
static void expect_decode_error(const sync_msg *m, kt_status want, const char *what)
{
    kt_buf b;
    encode_ok(m, &b);
    sync_msg *d = NULL;
    kt_err err = { 0 };
    kt_status st = decode(&d, &b, NULL, &err);
    kt_buf_fini(&b);
    assert_null(d);
    if (st != want || strstr(err.msg, what) == NULL) {
        fail_msg("want %s mentioning '%s', got %s: %s", kt_status_str(want), what,
                 kt_status_str(st), err.msg);
    }
}

static void test_msg_decode_names_the_bad_field(void **state)
{
    (void)state;
    sync_msg m = sample(SYNC_MSG_HELLO);
    m.u.hello.site = "bad/site";
    expect_decode_error(&m, KT_EPROTO, "hello.site");

    m = sample(SYNC_MSG_HELLO);
    m.u.hello.proto_min = 3;
    m.u.hello.proto_max = 2;
    expect_decode_error(&m, KT_EPROTO, "hello.proto_min");

    m = sample(SYNC_MSG_WELCOME);
    m.u.welcome.mode = (sync_mode)7;
    expect_decode_error(&m, KT_EPROTO, "welcome.mode");

    m = sample(SYNC_MSG_REJECT);
    m.u.reject.code = SYNC_REJECT_UNSPECIFIED;
    expect_decode_error(&m, KT_EPROTO, "reject.code");

    sync_object objs[2];
    m = sample(SYNC_MSG_DELTA);
    memcpy(objs, m.u.delta.objects, sizeof objs);
    objs[1].name = "has space";
    m.u.delta.objects = objs;
    m.u.delta.n_objects = 2;
    expect_decode_error(&m, KT_EPROTO, "delta.objects[1].name");

    m = sample(SYNC_MSG_DELTA);
    memcpy(objs, m.u.delta.objects, sizeof objs);
    objs[0].body = NULL;
    objs[0].body_len = 0;
    m.u.delta.objects = objs;
    m.u.delta.n_objects = 2;
    expect_decode_error(&m, KT_EPROTO, "delta.objects[0].body");

    m = sample(SYNC_MSG_DELTA);
    memcpy(objs, m.u.delta.objects, sizeof objs);
    objs[1].kind = SYNC_KIND_UNSPECIFIED;
    m.u.delta.objects = objs;
    m.u.delta.n_objects = 2;
    expect_decode_error(&m, KT_EPROTO, "delta.objects[1].kind");

    m = sample(SYNC_MSG_DELTA);
    m.u.delta.from_revision = 50;
    expect_decode_error(&m, KT_EPROTO, "delta.to_revision");

    m = sample(SYNC_MSG_SNAPSHOT);
    m.u.snapshot.n_objects = 3; /* the third one is deleted */
    expect_decode_error(&m, KT_EPROTO, "deleted object in a snapshot");

    sync_iface_placement ifs[2];
    m = sample(SYNC_MSG_PLACEMENT);
    memcpy(ifs, m.u.placement.interfaces, sizeof ifs);
    ifs[1].site = NULL; /* OTHER_SITE needs a site */
    m.u.placement.interfaces = ifs;
    m.u.placement.n_interfaces = 2;
    expect_decode_error(&m, KT_EPROTO, "placement.interfaces[1].site");

    m = sample(SYNC_MSG_PLACEMENT);
    memcpy(ifs, m.u.placement.interfaces, sizeof ifs);
    ifs[0].where = SYNC_WHERE_UNSPECIFIED;
    m.u.placement.interfaces = ifs;
    m.u.placement.n_interfaces = 2;
    expect_decode_error(&m, KT_EPROTO, "placement.interfaces[0].where");

    m = sample(SYNC_MSG_ACK);
    m.u.ack.stream = (sync_stream)9;
    expect_decode_error(&m, KT_EPROTO, "ack.stream");
}

static void test_msg_garbage_and_truncation_are_eproto(void **state)
{
    (void)state;
    for (int t = SYNC_MSG_HELLO; t <= SYNC_MSG_EVENTS; t++) {
        sync_msg m = sample((sync_msg_type)t);
        kt_buf b;
        encode_ok(&m, &b);
        /* Every strict prefix is either invalid or (rarely) a valid shorter message. */
        for (size_t cut = 0; cut < b.len; cut++) {
            sync_msg *d = NULL;
            kt_err err = { 0 };
            kt_status st = sync_msg_decode(&d, (const uint8_t *)b.data, cut, NULL, &err);
            if (st == KT_OK) {
                assert_non_null(d);
                sync_msg_free(d);
            } else {
                assert_null(d);
                assert_true(st == KT_EPROTO || st == KT_ETOOBIG);
                assert_true(err.msg[0] != '\0');
            }
        }
        kt_buf_fini(&b);
    }
    /* An empty message has no body. */
    sync_msg *d = NULL;
    kt_err err = { 0 };
    assert_int_equal(sync_msg_decode(&d, (const uint8_t *)"", 0, NULL, &err), KT_EPROTO);
    assert_non_null(strstr(err.msg, "envelope"));
    /* Deterministic noise. */
    uint8_t noise[512];
    uint64_t x = 0x12345678u;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % (int)sizeof noise);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise[i] = (uint8_t)x;
        }
        kt_err e2 = { 0 };
        kt_status st = sync_msg_decode(&d, noise, n, NULL, &e2);
        if (st == KT_OK) {
            sync_msg_free(d);
        } else {
            assert_true(st == KT_EPROTO || st == KT_ETOOBIG);
        }
    }
    /* A group wire type is refused by the pre-scan with a byte offset. */
    const uint8_t group[] = { 0x0b, 0x0c };
    kt_err e3 = { 0 };
    assert_int_equal(sync_msg_decode(&d, group, sizeof group, NULL, &e3), KT_EPROTO);
    assert_non_null(strstr(e3.msg, "byte 0"));
}

static void test_msg_oversized_message_is_etoobig(void **state)
{
    (void)state;
    sync_limits lim = { .max_message_bytes = 100 };
    uint8_t big[101] = { 0 };
    sync_msg *d = NULL;
    kt_err err = { 0 };
    assert_int_equal(sync_msg_decode(&d, big, sizeof big, &lim, &err), KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "101 bytes over cap 100"));
    assert_null(d);
}

static void test_msg_object_count_cap_is_checked_before_unpacking(void **state)
{
    (void)state;
    /* 5000 empty objects: 10 KB on the wire, refused before allocation. */
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    kt_buf objs;
    kt_buf_init(&objs, 1u << 20);
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(kt_buf_append(&objs, "\x22\x00", 2), KT_OK);
    }
    kt_err err = { 0 };
    assert_int_equal(
        sync_msg__chunk_append(&b, 1, 0, true, (const uint8_t *)objs.data, objs.len, &err), KT_OK);
    sync_limits lim = { .max_objects = 1000 };
    uint64_t allocs = kt_mem_allocs();
    sync_msg *d = NULL;
    assert_int_equal(decode(&d, &b, &lim, &err), KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "5000 over cap 1000"));
    assert_int_equal(kt_mem_allocs(), allocs); /* nothing allocated */
    /* Under the cap, the empty objects are refused by validation (kind 0). */
    kt_err e2 = { 0 };
    assert_int_equal(decode(&d, &b, NULL, &e2), KT_EPROTO);
    kt_buf_fini(&objs);
    kt_buf_fini(&b);
}

static void test_msg_body_and_string_caps(void **state)
{
    (void)state;
    sync_msg m = sample(SYNC_MSG_SNAPSHOT);
    kt_buf b;
    encode_ok(&m, &b);
    sync_limits lim = { .max_body_bytes = 10 };
    sync_msg *d = NULL;
    kt_err err = { 0 };
    assert_int_equal(decode(&d, &b, &lim, &err), KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "snapshot.objects[0].body (pole-001)"));
    kt_buf_fini(&b);

    m = sample(SYNC_MSG_HELLO);
    encode_ok(&m, &b);
    sync_limits lim2 = { .max_string_bytes = 3 };
    kt_err e2 = { 0 };
    assert_int_equal(decode(&d, &b, &lim2, &e2), KT_ETOOBIG);
    assert_non_null(strstr(e2.msg, "hello.token"));
    kt_buf_fini(&b);
}

static void test_msg_encode_refuses_null_required_and_respects_buf_max(void **state)
{
    (void)state;
    sync_msg m = sample(SYNC_MSG_HELLO);
    m.u.hello.token = NULL;
    kt_buf b;
    kt_buf_init(&b, 1024);
    kt_err err = { 0 };
    assert_int_equal(sync_msg_encode(&m, &b, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "hello.token"));

    m = sample(SYNC_MSG_SNAPSHOT);
    kt_buf small;
    kt_buf_init(&small, 20);
    assert_int_equal(kt_buf_append(&small, "abc", 3), KT_OK);
    kt_err e2 = { 0 };
    assert_int_equal(sync_msg_encode(&m, &small, &e2), KT_ETOOBIG);
    assert_int_equal(small.len, 3); /* unchanged */
    sync_msg bad = { .type = (sync_msg_type)42 };
    kt_err e3 = { 0 };
    assert_int_equal(sync_msg_encode(&bad, &b, &e3), KT_EINVAL);
    kt_buf_fini(&small);
    kt_buf_fini(&b);
}

static void test_msg_incremental_chunk_decodes_like_encode(void **state)
{
    (void)state;
    init_samples();
    kt_buf objs;
    kt_buf_init(&objs, 1u << 20);
    size_t expect = 0;
    kt_err err = { 0 };
    for (int i = 0; i < 2; i++) {
        expect += sync_msg__object_size(&sample_objects[i]);
        assert_int_equal(sync_msg__object_append(&objs, &sample_objects[i], &err), KT_OK);
    }
    assert_int_equal(objs.len, expect);
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    assert_int_equal(
        sync_msg__chunk_append(&b, 300, 70000, false, (const uint8_t *)objs.data, objs.len, &err),
        KT_OK);
    assert_true(b.len <= objs.len + sync_msg__chunk_overhead());
    sync_msg *d = NULL;
    assert_int_equal(decode(&d, &b, NULL, &err), KT_OK);
    assert_int_equal(d->type, SYNC_MSG_SNAPSHOT);
    assert_int_equal(d->u.snapshot.revision, 300);
    assert_int_equal(d->u.snapshot.index, 70000);
    assert_false(d->u.snapshot.last);
    assert_int_equal(d->u.snapshot.n_objects, 2);
    assert_objects_equal(sample_objects, d->u.snapshot.objects, 2);
    sync_msg_free(d);
    kt_buf_fini(&b);
    kt_buf_fini(&objs);
}

static void test_msg_event_batch_rules(void **state)
{
    (void)state;
    sync_event evs[3];
    sync_msg m = sample(SYNC_MSG_EVENTS);
    m.u.events.incarnation = NULL;
    expect_decode_error(&m, KT_EPROTO, "events.incarnation");
    m.u.events.incarnation = "";
    expect_decode_error(&m, KT_EPROTO, "events.incarnation");

    m = sample(SYNC_MSG_EVENTS);
    m.u.events.first_seq = 0;
    expect_decode_error(&m, KT_EPROTO, "events.first_seq");
    m.u.events.first_seq = UINT64_MAX - 1; /* 3 events overflow */
    expect_decode_error(&m, KT_EPROTO, "overflows");
    m.u.events.n_events = 2; /* UINT64_MAX - 1, UINT64_MAX: fine */
    kt_buf b;
    encode_ok(&m, &b);
    sync_msg *d = NULL;
    assert_int_equal(decode(&d, &b, NULL, NULL), KT_OK);
    sync_msg_free(d);
    kt_buf_fini(&b);

    m = sample(SYNC_MSG_EVENTS);
    m.u.events.stream = SYNC_STREAM_PLACEMENT;
    expect_decode_error(&m, KT_EPROTO, "events.stream");
    m.u.events.n_events = 0;
    m.u.events.stream = SYNC_STREAM_DOWN;
    expect_decode_error(&m, KT_EPROTO, "empty batch");

    /* A DOWN batch needs no incarnation. */
    m = sample(SYNC_MSG_EVENTS);
    m.u.events.stream = SYNC_STREAM_DOWN;
    m.u.events.incarnation = NULL;
    encode_ok(&m, &b);
    assert_int_equal(decode(&d, &b, NULL, NULL), KT_OK);
    assert_null(d->u.events.incarnation);
    sync_msg_free(d);
    kt_buf_fini(&b);

    m = sample(SYNC_MSG_EVENTS);
    memcpy(evs, m.u.events.events, sizeof evs);
    evs[1].id = "";
    m.u.events.events = evs;
    expect_decode_error(&m, KT_EPROTO, "events.events[1].id: missing");
    evs[1].id = "ok";
    evs[2].source = "";
    expect_decode_error(&m, KT_EPROTO, "events.events[2].source");
    evs[2].source = "s";
    evs[0].type = "";
    expect_decode_error(&m, KT_EPROTO, "events.events[0].type");

    /* Limits: events per batch (checked before unpacking), data, strings. */
    m = sample(SYNC_MSG_EVENTS);
    encode_ok(&m, &b);
    kt_err err = { 0 };
    sync_limits lim = { .max_events = 2 };
    assert_int_equal(decode(&d, &b, &lim, &err), KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "events.events: 3 over cap 2"));
    lim = (sync_limits){ .max_event_data_bytes = 9 };
    kt_err e2 = { 0 };
    assert_int_equal(decode(&d, &b, &lim, &e2), KT_ETOOBIG);
    assert_non_null(strstr(e2.msg, "events.events[0].data (ev-1): 10 bytes over cap 9"));
    lim = (sync_limits){ .max_event_data_bytes = 10 };
    assert_int_equal(decode(&d, &b, &lim, NULL), KT_OK);
    sync_msg_free(d);
    lim = (sync_limits){ .max_string_bytes = 16 };
    kt_err e3 = { 0 };
    assert_int_equal(decode(&d, &b, &lim, &e3), KT_ETOOBIG);
    assert_non_null(strstr(e3.msg, "events.events[0].type: longer than 16"));
    kt_buf_fini(&b);

    /* Encode refuses an event without its required strings. */
    m = sample(SYNC_MSG_EVENTS);
    memcpy(evs, m.u.events.events, sizeof evs);
    evs[0].source = NULL;
    m.u.events.events = evs;
    kt_buf_init(&b, 1u << 16);
    kt_err e4 = { 0 };
    assert_int_equal(sync_msg_encode(&m, &b, &e4), KT_EINVAL);
    assert_int_equal(b.len, 0);
    kt_buf_fini(&b);
}

static void test_msg_unknown_body_field_is_eproto(void **state)
{
    (void)state;
    /* Field 11 (reserved for the event plane), empty: no known body. */
    const uint8_t env[] = { 0x5a, 0x00 };
    sync_msg *d = NULL;
    kt_err err = { 0 };
    assert_int_equal(sync_msg_decode(&d, env, sizeof env, NULL, &err), KT_EPROTO);
    assert_non_null(strstr(err.msg, "no known body"));
    /* Field 10 (EventBatch) without its required fields: not a valid message. */
    const uint8_t empty_batch[] = { 0x52, 0x00 };
    assert_int_equal(sync_msg_decode(&d, empty_batch, sizeof empty_batch, NULL, &err), KT_EPROTO);
    assert_null(d);
}

/* Every allocation decode makes fails in turn: KT_ENOMEM each time, never a crash or leak. */
static void test_msg_decode_survives_each_allocation_failing(void **state)
{
    (void)state;
    sync_msg m = sample(SYNC_MSG_DELTA);
    kt_buf b;
    encode_ok(&m, &b);
    int failures = 0;
    for (uint64_t n = 1; n < 1000; n++) {
        kt_mem_fail_at(n);
        sync_msg *d = NULL;
        kt_err err = { 0 };
        kt_status st = decode(&d, &b, NULL, &err);
        kt_mem_fail_at(0);
        if (st == KT_OK) {
            assert_int_equal(d->u.delta.n_objects, 3);
            sync_msg_free(d);
            break;
        }
        assert_int_equal(st, KT_ENOMEM);
        assert_null(d);
        failures++;
    }
    assert_true(failures >= 1);
    /* The same for a snapshot big enough to need several arena blocks. */
    enum { N = 2000 };
    sync_object *objs = kt_xcalloc(N, sizeof *objs);
    char(*names)[16] = kt_xcalloc(N, sizeof *names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "obj-%d", i);
        objs[i] = (sync_object){ SYNC_KIND_TWIN_INSTANCE, names[i], (const uint8_t *)BODY_A,
                                 sizeof BODY_A - 1,       false,    (uint64_t)i };
    }
    sync_msg big = { .type = SYNC_MSG_SNAPSHOT, .u.snapshot = { 9, 0, true, objs, N } };
    kt_buf bb;
    encode_ok(&big, &bb);
    bool done = false;
    for (uint64_t n = 1; n < 100000 && !done; n++) {
        kt_mem_fail_at(n);
        sync_msg *d = NULL;
        kt_status st = decode(&d, &bb, NULL, NULL);
        kt_mem_fail_at(0);
        if (st == KT_OK) {
            assert_int_equal(d->u.snapshot.n_objects, N);
            sync_msg_free(d);
            done = true;
        } else {
            assert_int_equal(st, KT_ENOMEM);
        }
    }
    assert_true(done);
    kt_buf_fini(&bb);
    kt_free(names);
    kt_free(objs);
    kt_buf_fini(&b);
}

/* The session decoder reuses one block: after the first big message, no allocation per message. */
static void test_msg_decoder_reuses_its_block(void **state)
{
    (void)state;
    enum { N = 3000 };
    sync_object *objs = kt_xcalloc(N, sizeof *objs);
    char(*names)[16] = kt_xcalloc(N, sizeof *names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "obj-%d", i);
        objs[i] = (sync_object){ SYNC_KIND_TWIN_INSTANCE, names[i], (const uint8_t *)BODY_A,
                                 sizeof BODY_A - 1,       false,    (uint64_t)i };
    }
    sync_msg big = { .type = SYNC_MSG_SNAPSHOT, .u.snapshot = { 9, 0, true, objs, N } };
    kt_buf bb;
    encode_ok(&big, &bb);
    sync_msg small = sample(SYNC_MSG_ACK);
    kt_buf sb;
    encode_ok(&small, &sb);
    sync_msg__decoder d;
    sync_msg__decoder_init(&d);
    const sync_msg *m = NULL;
    kt_err err = { 0 };
    assert_int_equal(sync_msg__decoder_decode(&m, &d, (const uint8_t *)sb.data, sb.len, NULL, &err),
                     KT_OK);
    assert_int_equal(m->type, SYNC_MSG_ACK);
    for (int round = 0; round < 3; round++) {
        uint64_t before = kt_mem_allocs();
        assert_int_equal(
            sync_msg__decoder_decode(&m, &d, (const uint8_t *)bb.data, bb.len, NULL, &err), KT_OK);
        assert_int_equal(m->u.snapshot.n_objects, N);
        assert_objects_equal(objs, m->u.snapshot.objects, N);
        if (round > 0) {
            assert_int_equal(kt_mem_allocs(), before); /* the block from round 0 is reused */
        }
        assert_int_equal(
            sync_msg__decoder_decode(&m, &d, (const uint8_t *)sb.data, sb.len, NULL, &err), KT_OK);
        assert_int_equal(m->u.ack.seq, 5);
    }
    /* Errors leave the decoder usable. */
    kt_err e2 = { 0 };
    assert_int_equal(sync_msg__decoder_decode(&m, &d, (const uint8_t *)bb.data, 7, NULL, &e2),
                     KT_EPROTO);
    assert_null(m);
    /* Every allocation failing in turn on a fresh decoder: KT_ENOMEM, then success. */
    bool done = false;
    for (uint64_t n = 1; n < 1000 && !done; n++) {
        sync_msg__decoder fresh;
        sync_msg__decoder_init(&fresh);
        kt_mem_fail_at(n);
        kt_status st =
            sync_msg__decoder_decode(&m, &fresh, (const uint8_t *)bb.data, bb.len, NULL, NULL);
        kt_mem_fail_at(0);
        if (st == KT_OK) {
            assert_int_equal(m->u.snapshot.n_objects, N);
            done = true;
        } else {
            assert_int_equal(st, KT_ENOMEM);
        }
        sync_msg__decoder_fini(&fresh);
    }
    assert_true(done);
    sync_msg__decoder_fini(&d);
    kt_buf_fini(&sb);
    kt_buf_fini(&bb);
    kt_free(names);
    kt_free(objs);
}

static void test_msg_arena_try_alloc_fails_softly(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 1024);
    kt_mem_fail_at(1);
    assert_null(kt_arena_try_alloc(&a, 10));
    kt_mem_fail_at(0);
    void *p = kt_arena_try_alloc(&a, 10);
    assert_non_null(p);
    assert_null(kt_arena_try_alloc(&a, SIZE_MAX - 8));
    kt_arena_fini(&a);
}

static void test_msg_names_are_stable(void **state)
{
    (void)state;
    assert_string_equal(sync_msg_type_str(SYNC_MSG_SNAPSHOT), "snapshot");
    assert_string_equal(sync_msg_type_str((sync_msg_type)99), "unknown");
    assert_string_equal(sync_msg_reject_str(SYNC_REJECT_BUSY), "busy");
    assert_string_equal(sync_msg_mode_str(SYNC_MODE_UP_TO_DATE), "up_to_date");
    assert_string_equal(sync_msg_where_str(SYNC_WHERE_OTHER_SITE), "other_site");
    assert_string_equal(sync_msg_stream_str(SYNC_STREAM_GRAPH), "graph");
    assert_string_equal(sync_msg_kind_str(SYNC_KIND_PLACEMENT_POLICY), "placement_policy");
    sync_limits l;
    sync_msg_limits_resolve(&l, NULL);
    assert_int_equal(l.max_objects, SYNC_LIMITS_DEFAULT_OBJECTS);
    sync_limits in = { .max_objects = 5 };
    sync_msg_limits_resolve(&l, &in);
    assert_int_equal(l.max_objects, 5);
    assert_int_equal(l.max_message_bytes, SYNC_LIMITS_DEFAULT_MESSAGE_BYTES);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes the fuzz seed corpus when KT_SYNC_WRITE_CORPUS is set; otherwise does nothing. */
static void test_msg_write_corpus(void **state)
{
    (void)state;
    const char *dir = getenv("KT_SYNC_WRITE_CORPUS");
    if (dir == NULL) {
        skip();
    }
    for (int t = SYNC_MSG_HELLO; t <= SYNC_MSG_EVENTS; t++) {
        sync_msg m = sample((sync_msg_type)t);
        kt_buf b;
        encode_ok(&m, &b);
        char name[64];
        snprintf(name, sizeof name, "valid-%s", sync_msg_type_str(m.type));
        write_file(dir, name, b.data, b.len);
        snprintf(name, sizeof name, "truncated-%s", sync_msg_type_str(m.type));
        write_file(dir, name, b.data, b.len / 2);
        if (b.len > 4) {
            b.data[b.len / 3] ^= 0x5a;
            snprintf(name, sizeof name, "flipped-%s", sync_msg_type_str(m.type));
            write_file(dir, name, b.data, b.len);
        }
        kt_buf_fini(&b);
    }
    sync_msg m = sample(SYNC_MSG_HELLO);
    m.u.hello.site = "bad/site";
    kt_buf b;
    encode_ok(&m, &b);
    write_file(dir, "invalid-hello-site", b.data, b.len);
    kt_buf_fini(&b);
    const uint8_t group[] = { 0x0b, 0x0c };
    write_file(dir, "invalid-group", group, sizeof group);
    const uint8_t event_plane[] = { 0x52, 0x00 };
    write_file(dir, "invalid-field10", event_plane, sizeof event_plane);
    const uint8_t reserved[] = { 0x5a, 0x00 };
    write_file(dir, "invalid-field11", reserved, sizeof reserved);
    /* Event batches that decode but break the rules. */
    m = sample(SYNC_MSG_EVENTS);
    m.u.events.incarnation = NULL; /* up without incarnation */
    encode_ok(&m, &b);
    write_file(dir, "invalid-events-no-incarnation", b.data, b.len);
    kt_buf_fini(&b);
    m = sample(SYNC_MSG_EVENTS);
    m.u.events.first_seq = 0;
    encode_ok(&m, &b);
    write_file(dir, "invalid-events-seq0", b.data, b.len);
    kt_buf_fini(&b);
    m = sample(SYNC_MSG_EVENTS);
    m.u.events.stream = SYNC_STREAM_GRAPH;
    encode_ok(&m, &b);
    write_file(dir, "invalid-events-graph-stream", b.data, b.len);
    kt_buf_fini(&b);
    m = sample(SYNC_MSG_EVENTS);
    m.u.events.stream = SYNC_STREAM_DOWN;
    m.u.events.first_seq = UINT64_MAX;
    encode_ok(&m, &b);
    write_file(dir, "invalid-events-seq-overflow", b.data, b.len);
    kt_buf_fini(&b);
    const uint8_t huge_len[] = { 0x22, 0xff, 0xff, 0xff, 0xff, 0x0f };
    write_file(dir, "invalid-huge-len", huge_len, sizeof huge_len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_every_type_round_trips),
        cmocka_unit_test(test_msg_decode_names_the_bad_field),
        cmocka_unit_test(test_msg_garbage_and_truncation_are_eproto),
        cmocka_unit_test(test_msg_oversized_message_is_etoobig),
        cmocka_unit_test(test_msg_object_count_cap_is_checked_before_unpacking),
        cmocka_unit_test(test_msg_body_and_string_caps),
        cmocka_unit_test(test_msg_encode_refuses_null_required_and_respects_buf_max),
        cmocka_unit_test(test_msg_incremental_chunk_decodes_like_encode),
        cmocka_unit_test(test_msg_event_batch_rules),
        cmocka_unit_test(test_msg_unknown_body_field_is_eproto),
        cmocka_unit_test(test_msg_decode_survives_each_allocation_failing),
        cmocka_unit_test(test_msg_decoder_reuses_its_block),
        cmocka_unit_test(test_msg_arena_try_alloc_fails_softly),
        cmocka_unit_test(test_msg_names_are_stable),
        cmocka_unit_test(test_msg_write_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
