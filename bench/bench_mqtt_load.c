/*
 * bench_mqtt_load.c — MQTT QoS 1 load for the event-plane benchmarks
 * (paho MQTTAsync, the library the agent uses).
 *
 *   bench_mqtt_load raw --url URL --count N [--window W] [--timeout S]
 *       Raw broker baseline: a subscriber (QoS 1, clean session) on
 *       bench/raw/+ and a publisher in this process; N messages of the same
 *       shape as the device messages below, at most W unacknowledged
 *       (default 1000). Time = from the first publish to the N-th distinct
 *       message at the subscriber. Exit 1 when a message is lost or
 *       arrives twice.
 *   bench_mqtt_load pub --url URL --topics FILE --count N [--rate R]
 *                       [--seq0 S] [--window W] [--timeout S]
 *       Device load: N messages round-robin over the topics in FILE (one a
 *       line), payload {"seq":S+i,"t_us":<wall clock, us>,"v":<i % 100>},
 *       QoS 1, paced at R messages/s (0 = as fast as the window allows),
 *       then waits for every PUBACK. Exit 1 when a publish fails.
 *
 * Prints one JSON object on stdout ("seconds" first, as bench/run.sh's
 * median_run wants). t_us is CLOCK_REALTIME read right before the publish
 * call, the same machine clock the agent and hub stamp with.
 *
 * Thread: main thread publishes and waits; paho's threads run the static
 * callbacks, which only touch atomics (and the receive bitmap, written by
 * paho's one receive thread only and read by main after it stops growing).
 * Ownership: everything is freed before exit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "kt/mem.h"

#define PAYLOAD_CAP 128

typedef struct conn {
    MQTTAsync client;
    atomic_int connected; /* 1 ok, -1 failed */
    atomic_int subscribed;
} conn;

static atomic_uint_fast64_t g_acked;
static atomic_uint_fast64_t g_failed;

/* raw mode receive side (paho's receive thread writes, main reads) */
static uint8_t *g_seen;
static uint64_t g_count;
static atomic_uint_fast64_t g_received; /* distinct */
static atomic_uint_fast64_t g_dups;
static atomic_uint_fast64_t g_bad;
static atomic_uint_fast64_t g_last_ns;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
                           .tv_nsec = (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    atomic_store(&((conn *)ctx)->connected, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *resp)
{
    (void)resp;
    atomic_store(&((conn *)ctx)->connected, -1);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    atomic_store(&((conn *)ctx)->subscribed, 1);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *resp)
{
    (void)resp;
    atomic_store(&((conn *)ctx)->subscribed, -1);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)ctx;
    (void)resp;
    atomic_fetch_add(&g_acked, 1);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *resp)
{
    (void)ctx;
    (void)resp;
    atomic_fetch_add(&g_failed, 1);
}

static void on_lost(void *ctx, char *cause)
{
    (void)ctx;
    fprintf(stderr, "bench_mqtt_load: connection lost: %s\n", cause != NULL ? cause : "?");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    (void)ctx;
    (void)topic_len;
    char text[PAYLOAD_CAP];
    size_t n =
        (size_t)msg->payloadlen < sizeof text - 1 ? (size_t)msg->payloadlen : sizeof text - 1;
    memcpy(text, msg->payload, n);
    text[n] = '\0';
    const char *p = strstr(text, "\"seq\":");
    char *end = NULL;
    unsigned long long seq = p != NULL ? strtoull(p + 6, &end, 10) : 0;
    if (p == NULL || end == p + 6 || seq >= g_count) {
        atomic_fetch_add(&g_bad, 1);
    } else if (g_seen[seq] != 0) {
        atomic_fetch_add(&g_dups, 1);
    } else {
        g_seen[seq] = 1;
        atomic_store(&g_last_ns, mono_ns());
        atomic_fetch_add(&g_received, 1);
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static int conn_open(conn *c, const char *url, const char *id, bool with_rx, unsigned window)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.sendWhileDisconnected = 0;
    co.maxBufferedMessages = (int)window + 100; /* paho's command queue, not only offline */
    if (MQTTAsync_createWithOptions(&c->client, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
        MQTTASYNC_SUCCESS) {
        fprintf(stderr, "bench_mqtt_load: cannot create a client for %s\n", url);
        return -1;
    }
    MQTTAsync_setCallbacks(c->client, c, on_lost, with_rx ? on_message : NULL, NULL);
    MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
    opts.keepAliveInterval = 30;
    opts.cleansession = 1;
    opts.maxInflight = (int)window + 16;
    opts.onSuccess = on_conn_ok;
    opts.onFailure = on_conn_fail;
    opts.context = c;
    if (MQTTAsync_connect(c->client, &opts) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "bench_mqtt_load: connect to %s refused\n", url);
        return -1;
    }
    for (int i = 0; i < 10000 && atomic_load(&c->connected) == 0; i++) {
        sleep_ns(1000000u);
    }
    if (atomic_load(&c->connected) != 1) {
        fprintf(stderr, "bench_mqtt_load: cannot connect to %s\n", url);
        return -1;
    }
    return 0;
}

static void conn_close(conn *c)
{
    if (c->client == NULL) {
        return;
    }
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(c->client, &d);
    for (int i = 0; i < 200 && MQTTAsync_isConnected(c->client); i++) {
        sleep_ns(5000000u);
    }
    MQTTAsync_destroy(&c->client);
}

/* Publish count messages (topic i = topics[i % n_topics]); 0 ok, -1 a send failed. */
static int publish_all(conn *c,
                       char **topics,
                       size_t n_topics,
                       uint64_t count,
                       uint64_t seq0,
                       double rate,
                       unsigned window,
                       uint64_t *t_first_us,
                       uint64_t *t_last_sent_ns)
{
    uint64_t t0 = mono_ns();
    *t_first_us = wall_us();
    for (uint64_t i = 0; i < count; i++) {
        if (rate > 0) {
            uint64_t due = t0 + (uint64_t)((double)i * 1e9 / rate);
            uint64_t now = mono_ns();
            if (due > now) {
                sleep_ns(due - now);
            }
        }
        while (i - atomic_load(&g_acked) - atomic_load(&g_failed) >= window) {
            sleep_ns(20000u);
        }
        char payload[PAYLOAD_CAP];
        int len = snprintf(payload, sizeof payload,
                           "{\"seq\":%" PRIu64 ",\"t_us\":%" PRIu64 ",\"v\":%" PRIu64 "}", seq0 + i,
                           wall_us(), i % 100);
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess = on_pub_ok;
        ro.onFailure = on_pub_fail;
        ro.context = c;
        MQTTAsync_message m = MQTTAsync_message_initializer;
        m.payload = payload;
        m.payloadlen = len;
        m.qos = 1;
        int rc;
        while ((rc = MQTTAsync_sendMessage(c->client, topics[i % n_topics], &m, &ro)) ==
                   MQTTASYNC_MAX_MESSAGES_INFLIGHT ||
               rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
            sleep_ns(50000u);
        }
        if (rc != MQTTASYNC_SUCCESS) {
            fprintf(stderr, "bench_mqtt_load: publish %" PRIu64 " failed: %d\n", i, rc);
            return -1;
        }
    }
    *t_last_sent_ns = mono_ns() - t0;
    return 0;
}

/* Wait until every publish is acknowledged (or timeout_s). */
static void wait_acks(uint64_t count, double timeout_s)
{
    uint64_t deadline = mono_ns() + (uint64_t)(timeout_s * 1e9);
    while (atomic_load(&g_acked) + atomic_load(&g_failed) < count && mono_ns() < deadline) {
        sleep_ns(1000000u);
    }
}

static char **read_topics(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench_mqtt_load: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char **v = NULL;
    size_t n = 0;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        size_t l = strcspn(line, "\r\n");
        line[l] = '\0';
        if (l == 0) {
            continue;
        }
        v = kt_xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = kt_xstrdup(line);
    }
    fclose(f);
    *n_out = n;
    if (n == 0) {
        fprintf(stderr, "bench_mqtt_load: no topics in %s\n", path);
    }
    return v;
}

static int usage(void)
{
    fputs("usage: bench_mqtt_load raw --url URL --count N [--window W] [--timeout S]\n"
          "       bench_mqtt_load pub --url URL --topics FILE --count N [--rate R] [--seq0 S]\n"
          "                           [--window W] [--timeout S]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        return usage();
    }
    const char *mode = argv[1];
    const char *url = NULL;
    const char *topics_path = NULL;
    uint64_t count = 0;
    uint64_t seq0 = 0;
    double rate = 0;
    unsigned window = 1000;
    double timeout_s = 600;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(k, "--url") == 0) {
            url = v;
        } else if (strcmp(k, "--topics") == 0) {
            topics_path = v;
        } else if (strcmp(k, "--count") == 0) {
            count = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--seq0") == 0) {
            seq0 = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--rate") == 0) {
            rate = strtod(v, NULL);
        } else if (strcmp(k, "--window") == 0) {
            window = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--timeout") == 0) {
            timeout_s = strtod(v, NULL);
        } else {
            return usage();
        }
    }
    if (url == NULL || count == 0 || window == 0) {
        return usage();
    }
    char id[64];
    int status = 0;
    if (strcmp(mode, "raw") == 0) {
        g_count = count;
        g_seen = kt_xcalloc(count, 1);
        conn sub = { 0 };
        conn pub = { 0 };
        snprintf(id, sizeof id, "bench-raw-sub-%ld", (long)getpid());
        if (conn_open(&sub, url, id, true, window) != 0) {
            return 1;
        }
        MQTTAsync_responseOptions so = MQTTAsync_responseOptions_initializer;
        so.onSuccess = on_sub_ok;
        so.onFailure = on_sub_fail;
        so.context = &sub;
        MQTTAsync_subscribe(sub.client, "bench/raw/+", 1, &so);
        for (int i = 0; i < 10000 && atomic_load(&sub.subscribed) == 0; i++) {
            sleep_ns(1000000u);
        }
        snprintf(id, sizeof id, "bench-raw-pub-%ld", (long)getpid());
        if (atomic_load(&sub.subscribed) != 1 || conn_open(&pub, url, id, false, window) != 0) {
            fprintf(stderr, "bench_mqtt_load: subscriber not ready\n");
            return 1;
        }
        char *topic = (char *)"bench/raw/t";
        uint64_t t_first_us = 0;
        uint64_t sent_ns = 0;
        uint64_t t0 = mono_ns();
        if (publish_all(&pub, &topic, 1, count, 0, 0, window, &t_first_us, &sent_ns) != 0) {
            return 1;
        }
        uint64_t deadline = mono_ns() + (uint64_t)(timeout_s * 1e9);
        while (atomic_load(&g_received) < count && mono_ns() < deadline) {
            sleep_ns(1000000u);
        }
        sleep_ns(200000000u); /* late duplicates */
        uint64_t got = atomic_load(&g_received);
        uint64_t dups = atomic_load(&g_dups);
        double secs = (double)(atomic_load(&g_last_ns) - t0) / 1e9;
        printf("{\"seconds\": %.6f, \"count\": %" PRIu64 ", \"received\": %" PRIu64
               ", \"lost\": %" PRIu64 ", \"duplicates\": %" PRIu64 ", \"bad\": %" PRIu64
               ", \"per_s\": %.1f, \"window\": %u}\n",
               secs, count, got, count - got, dups, (uint64_t)atomic_load(&g_bad),
               secs > 0 ? (double)got / secs : 0.0, window);
        conn_close(&pub);
        conn_close(&sub);
        kt_free(g_seen);
        if (got != count || dups != 0 || atomic_load(&g_failed) != 0) {
            fprintf(stderr, "bench_mqtt_load: raw: %" PRIu64 " lost, %" PRIu64 " duplicates\n",
                    count - got, dups);
            status = 1;
        }
        return status;
    }
    if (strcmp(mode, "pub") != 0 || topics_path == NULL) {
        return usage();
    }
    size_t n_topics = 0;
    char **topics = read_topics(topics_path, &n_topics);
    if (topics == NULL || n_topics == 0) {
        return 1;
    }
    conn pub = { 0 };
    snprintf(id, sizeof id, "bench-pub-%ld", (long)getpid());
    if (conn_open(&pub, url, id, false, window) != 0) {
        return 1;
    }
    uint64_t t_first_us = 0;
    uint64_t sent_ns = 0;
    uint64_t t0 = mono_ns();
    if (publish_all(&pub, topics, n_topics, count, seq0, rate, window, &t_first_us, &sent_ns) !=
        0) {
        status = 1;
    }
    wait_acks(count, timeout_s);
    double secs = (double)(mono_ns() - t0) / 1e9;
    uint64_t acked = atomic_load(&g_acked);
    printf("{\"seconds\": %.6f, \"published\": %" PRIu64 ", \"acked\": %" PRIu64
           ", \"failed\": %" PRIu64 ", \"per_s\": %.1f, \"send_seconds\": %.6f, \"t0_us\": %" PRIu64
           ", \"rate\": %.1f}\n",
           secs, count, acked, (uint64_t)atomic_load(&g_failed),
           secs > 0 ? (double)acked / secs : 0, (double)sent_ns / 1e9, t_first_us, rate);
    conn_close(&pub);
    for (size_t i = 0; i < n_topics; i++) {
        kt_free(topics[i]);
    }
    kt_free(topics);
    if (acked != count) {
        fprintf(stderr, "bench_mqtt_load: pub: %" PRIu64 " of %" PRIu64 " acknowledged\n", acked,
                count);
        status = 1;
    }
    return status;
}
