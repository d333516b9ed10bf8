/*
 * agent/mqtt.c — the MQTT bridge (see mqtt.h for the contract).
 *
 * DESIGN
 * - paho side (its receive/send threads): on_message appends the message to
 *   the journal (one write(2)), then makes sure one WAKE note is in the
 *   inbox (the wake_pending atomic keeps it to one). Oversized payloads are
 *   refused there (counted in an atomic, moved into the metric on the loop).
 *   Connection callbacks push one note each. Nothing else runs on paho's
 *   threads, and they share only the journal's atomics, ours and the inbox.
 * - loop side: the WAKE note (and a 200 ms timer, in case a note could not
 *   be queued) drains the journal: batch_max records per outbox transaction,
 *   with meta "journal_applied" = the batch's last record id. Records at or
 *   below the watermark are duplicates of committed ones (a replay) and are
 *   skipped. When the outbox says KT_EAGAIN (full), the batch rolls back, the
 *   journal rewinds, and the client disconnects (pause) until the outbox is
 *   below low water; the broker keeps our persistent session's messages.
 * - reconnect: our own exponential backoff with full jitter (sync_backoff),
 *   for a failed first connect as well as a lost connection; each connect
 *   subscribes the whole interface set again.
 *
 * Thread: see mqtt.h. Ownership: the paho client, the journal, the inbox,
 * the timers and the interface set.
 */
#include "mqtt.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#define KT_LOG_MOD "mqtt"
#include "journal.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/inbox.h"
#include "kt/json.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/event.h"
#include "model/model.h"
#include "sync/backoff.h"

#define TICK_MS     200u
#define INBOX_DEPTH 1024u
#define TOPIC_MAX   512u
/* Scratch arena block for the JSON syntax check of one message (device payloads: ~100 B). */
#define MQTT_SCRATCH_BLOCK 4096u

/*
 * Redelivery detection. paho (1.3.x) sends a QoS 1 PUBACK as it reads the
 * PUBLISH, before messageArrived journals it; if the agent is killed with
 * PUBACKs still unsent (a reset socket drops them), the broker sends those
 * messages again with DUP set, under the same packet ids. A DUP message
 * whose (packet id, FNV-1a hash of topic and payload) is among the last
 * RECENT_MAX journaled is that redelivery and is skipped. Packet ids of one
 * session count up, so the same id with the same bytes within RECENT_MAX
 * messages is the same message (brokers keep at most max_inflight_messages,
 * 20 by default in mosquitto, unacknowledged).
 */
#define RECENT_MAX 128u

typedef struct recent_ring {
    uint16_t msgid[RECENT_MAX];
    uint64_t hash[RECENT_MAX];
    uint32_t head; /* next slot */
    uint32_t n;    /* used slots */
} recent_ring;

typedef enum note_kind {
    NOTE_WAKE,
    NOTE_CONNECTED,
    NOTE_CONNECT_FAILED,
    NOTE_LOST,
    NOTE_DISCONNECTED,
    NOTE_SUB_FAILED,
    NOTE_SUBSCRIBED
} note_kind;

typedef struct note {
    kt_inbox_msg link;
    note_kind kind;
    int code;
} note;

typedef enum reject_reason {
    REJ_OVERSIZED,
    REJ_TOPIC,
    REJ_IFACE,
    REJ_JSON,
    REJ_HANDLER,
    REJ_COUNT
} reject_reason;

static const char *const reject_names[REJ_COUNT] = { "oversized", "topic", "interface", "json",
                                                     "handler" };

struct agent_mqtt {
    uv_loop_t *loop;
    MQTTAsync client;
    char *url;
    char *client_id;
    char *username;
    char *password;
    char *ca_file;
    int qos;
    uint32_t keepalive_s;
    size_t max_payload;
    size_t batch_max;
    agent_journal *journal;
    agent_outbox *ob;
    agent_mqtt_event_cb on_event;
    void *user;

    kt_inbox inbox;
    bool inbox_open;
    uv_timer_t tick;
    uv_timer_t retry;
    int handles_open; /* timers + inbox not yet closed */
    agent_mqtt_stopped_cb stopped_cb;
    void *stopped_user;

    char **ifaces; /* sorted, owned */
    size_t n_ifaces;

    bool started;
    bool connected;
    bool connecting;
    bool paused;
    bool stopping;
    sync_backoff backoff;
    uint64_t applied;       /* journal watermark (outbox meta "journal_applied") */
    uint64_t replay_max_id; /* ids up to this were journaled before this start */
    /* The last RECENT_MAX QoS 1 messages taken from the journal, to recognise a
     * broker's redelivery (DUP) of one already journaled (see drain_rec). Saved
     * in the outbox meta "mqtt_recent" with each batch. */
    recent_ring recent;
    recent_ring recent_saved; /* as at the start of the open batch (for a rollback) */
    kt_buf recent_text;

    /* paho side */
    atomic_int wake_pending;
    atomic_uint_fast64_t n_received;
    atomic_uint_fast64_t n_oversized;
    atomic_uint_fast64_t n_journal_errors;
    uint64_t oversized_seen; /* moved into the metric so far (loop) */

    /* loop-side scratch for one record */
    kt_buf topic_buf;
    kt_buf payload_buf;

    agent_mqtt_stats stats;
    kt_metric *m_connected;
    kt_metric *m_msgs[4]; /* accepted, rejected, duplicate, replayed */
    kt_metric *m_rejected[REJ_COUNT];
    kt_metrics *metrics;
};

enum { MSG_ACCEPTED, MSG_REJECTED, MSG_DUPLICATE, MSG_REPLAYED };

/* ---- recent QoS 1 messages (loop) ---------------------------------------------- */

static uint64_t recent_hash(const char *topic, size_t tlen, const uint8_t *p, size_t plen)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < tlen; i++) {
        h = (h ^ (uint8_t)topic[i]) * 0x100000001b3ull;
    }
    h = (h ^ 0xffu) * 0x100000001b3ull; /* separator: topic "ab" + "c" differs from "a" + "bc" */
    for (size_t i = 0; i < plen; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static bool recent_has(const recent_ring *r, uint16_t msgid, uint64_t hash)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->msgid[i] == msgid && r->hash[i] == hash) {
            return true;
        }
    }
    return false;
}

static void recent_add(recent_ring *r, uint16_t msgid, uint64_t hash)
{
    r->msgid[r->head] = msgid;
    r->hash[r->head] = hash;
    r->head = (r->head + 1) % RECENT_MAX;
    if (r->n < RECENT_MAX) {
        r->n++;
    }
}

/* Text form for the outbox meta: "<msgid hex4><hash hex16>" per entry, oldest first. */
static kt_status recent_encode(const recent_ring *r, kt_buf *out)
{
    kt_buf_reset(out);
    for (uint32_t k = 0; k < r->n; k++) {
        uint32_t i = (r->head + RECENT_MAX - r->n + k) % RECENT_MAX;
        kt_status st = kt_buf_printf(out, "%04x%016" PRIx64, (unsigned)r->msgid[i], r->hash[i]);
        if (st != KT_OK) {
            return st;
        }
    }
    return kt_buf_append(out, "", 0); /* a string (NUL-terminated) even when empty */
}

/* Parse what recent_encode wrote; anything else leaves an empty ring (and says false). */
static bool recent_decode(recent_ring *r, const char *t, size_t len)
{
    memset(r, 0, sizeof *r);
    if (len % 20 != 0) {
        return false;
    }
    for (size_t off = 0; off < len; off += 20) {
        char a[5];
        char b[17];
        memcpy(a, t + off, 4);
        a[4] = '\0';
        memcpy(b, t + off + 4, 16);
        b[16] = '\0';
        char *ea = NULL;
        char *eb = NULL;
        unsigned long id = strtoul(a, &ea, 16);
        unsigned long long h = strtoull(b, &eb, 16);
        if (ea != a + 4 || eb != b + 16 || id > UINT16_MAX) {
            memset(r, 0, sizeof *r);
            return false;
        }
        recent_add(r, (uint16_t)id, (uint64_t)h);
    }
    return true;
}

/* ---- paho threads ------------------------------------------------------------- */

static void push_note(agent_mqtt *m, note_kind kind, int code)
{
    note *n = kt_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->code = code;
    if (kt_inbox_push(&m->inbox, &n->link) != KT_OK) {
        /* Full or closed: the loop's tick reconciles the state by itself. */
        if (kind == NOTE_WAKE) {
            atomic_store(&m->wake_pending, 0);
        }
        kt_free(n);
    }
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    agent_mqtt *m = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (plen > m->max_payload) {
        atomic_fetch_add(&m->n_oversized, 1);
        char q[128];
        char t[TOPIC_MAX];
        snprintf(t, sizeof t, "%.*s", (int)(tlen < sizeof t ? tlen : sizeof t - 1), topic);
        KT_LOG(KT_LOG_WARN, "MQTT-OVERSIZED", "topic=%s bytes=%zu max_bytes=%zu",
               kt_log_quote(q, sizeof q, t), plen, m->max_payload);
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1; /* acknowledged and refused: the broker would only resend it */
    }
    kt_err err = { 0 };
    uint8_t flags = msg->dup ? AGENT_JOURNAL_F_DUP : 0;
    kt_status st =
        agent_journal_append(m->journal, topic, tlen, msg->payload, plen, kt_clock_wall_ms(),
                             (uint16_t)(msg->qos > 0 ? msg->msgid : 0), flags, NULL, &err);
    if (st != KT_OK) {
        /* Not durable: do not acknowledge. paho redelivers; the loop pauses ingest. */
        atomic_fetch_add(&m->n_journal_errors, 1);
        KT_LOG(KT_LOG_ERR, "MQTT-JOURNAL-WRITE", "err=\"%s\" errno=%d", err.msg, err.sys_errno);
        if (!atomic_exchange(&m->wake_pending, 1)) {
            push_note(m, NOTE_WAKE, 0);
        }
        return 0;
    }
    atomic_fetch_add(&m->n_received, 1);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    if (!atomic_exchange(&m->wake_pending, 1)) {
        push_note(m, NOTE_WAKE, 0);
    }
    return 1;
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    push_note(ctx, NOTE_CONNECTED, 0);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *resp)
{
    push_note(ctx, NOTE_CONNECT_FAILED, resp != NULL ? resp->code : MQTTASYNC_FAILURE);
}

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    push_note(ctx, NOTE_LOST, 0);
}

static void on_disconnect_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    push_note(ctx, NOTE_DISCONNECTED, 0);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    push_note(ctx, NOTE_SUBSCRIBED, 0);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *resp)
{
    push_note(ctx, NOTE_SUB_FAILED, resp != NULL ? resp->code : MQTTASYNC_FAILURE);
}

static void on_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message)
{
    if (level >= MQTTASYNC_TRACE_ERROR) {
        char q[512];
        KT_LOG(KT_LOG_WARN, "MQTT-PAHO", "msg=%s", kt_log_quote(q, sizeof q, message));
    }
}

/* ---- loop: connection ------------------------------------------------------------ */

static void set_connected(agent_mqtt *m, bool c)
{
    m->connected = c;
    kt_metrics_set(m->m_connected, c ? 1.0 : 0.0);
}

static kt_status do_connect(agent_mqtt *m, kt_err *err)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = (int)m->keepalive_s;
    co.cleansession = 0; /* the broker keeps our subscriptions and messages while we pause */
    co.automaticReconnect = 0;
    co.connectTimeout = 10;
    co.onSuccess = on_connect_ok;
    co.onFailure = on_connect_fail;
    co.context = m;
    co.username = m->username;
    co.password = m->password;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (strncmp(m->url, "ssl://", 6) == 0) {
        ssl.trustStore = m->ca_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        co.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(m->client, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        return kt_err_set_dep(err, KT_EDEP, "paho", rc, "MQTTAsync_connect %s: %s", m->url,
                              MQTTAsync_strerror(rc));
    }
    m->connecting = true;
    return KT_OK;
}

static void on_retry(uv_timer_t *t)
{
    agent_mqtt *m = t->data;
    if (m->stopping || m->connected || m->connecting || m->paused) {
        return;
    }
    kt_err err = { 0 };
    if (do_connect(m, &err) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "MQTT-CONNECT-FAILED", "url=%s err=\"%s\"", m->url, err.msg);
        uint32_t d = sync_backoff_next(&m->backoff);
        uv_timer_start(&m->retry, on_retry, d, 0);
    }
}

static void schedule_retry(agent_mqtt *m)
{
    if (m->stopping || m->paused) {
        return;
    }
    uint32_t d = sync_backoff_next(&m->backoff);
    uv_timer_start(&m->retry, on_retry, d, 0);
}

static void subscribe_all(agent_mqtt *m)
{
    if (!m->connected || m->n_ifaces == 0) {
        return;
    }
    char **topics = kt_xcalloc(m->n_ifaces, sizeof *topics);
    int *qos = kt_xcalloc(m->n_ifaces, sizeof *qos);
    for (size_t i = 0; i < m->n_ifaces; i++) {
        topics[i] = kt_xmalloc(MODEL_TOPIC_CAP);
        (void)model_topic_filter(topics[i], MODEL_TOPIC_CAP, MODEL_EVENT_REAL, m->ifaces[i], NULL);
        qos[i] = m->qos;
    }
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_sub_fail;
    ro.context = m;
    int rc = MQTTAsync_subscribeMany(m->client, (int)m->n_ifaces, topics, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        KT_LOG(KT_LOG_WARN, "MQTT-SUBSCRIBE-FAILED", "n=%zu rc=%d err=\"%s\"", m->n_ifaces, rc,
               MQTTAsync_strerror(rc));
    } else {
        KT_LOG(KT_LOG_INFO, "MQTT-SUBSCRIBED", "interfaces=%zu qos=%d", m->n_ifaces, m->qos);
    }
    for (size_t i = 0; i < m->n_ifaces; i++) {
        kt_free(topics[i]);
    }
    kt_free(topics);
    kt_free(qos);
}

static void pause_ingest(agent_mqtt *m)
{
    if (m->paused) {
        return;
    }
    m->paused = true;
    m->stats.pauses++;
    KT_LOG(KT_LOG_WARN, "MQTT-PAUSED",
           "reason=outbox_full outbox_bytes=%" PRIu64 " outbox_events=%" PRIu64,
           agent_outbox_bytes(m->ob), agent_outbox_events(m->ob));
    uv_timer_stop(&m->retry);
    if (m->client != NULL && (m->connected || m->connecting)) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        /*
         * Not 0: a zero timeout closes the socket at once, dropping the
         * PUBACKs of messages already journaled; the broker then redelivers
         * them on the next connect and they are ingested twice (found by
         * tests/fault/test_quota_offline.sh). With a timeout paho flushes
         * them and sends DISCONNECT (async: the loop is not blocked).
         */
        d.timeout = 2000;
        d.onSuccess = on_disconnect_ok;
        d.context = m;
        int rc = MQTTAsync_disconnect(m->client, &d);
        if (rc != MQTTASYNC_SUCCESS) {
            KT_LOG(KT_LOG_WARN, "MQTT-DISCONNECT-FAILED", "rc=%d err=\"%s\"", rc,
                   MQTTAsync_strerror(rc));
        }
    }
}

static void resume_ingest(agent_mqtt *m)
{
    m->paused = false;
    KT_LOG(KT_LOG_NOTICE, "MQTT-RESUMED", "outbox_bytes=%" PRIu64 " outbox_events=%" PRIu64,
           agent_outbox_bytes(m->ob), agent_outbox_events(m->ob));
    if (m->started && !m->connected && !m->connecting) {
        sync_backoff_reset(&m->backoff);
        on_retry(&m->retry);
    }
}

/* ---- loop: draining the journal --------------------------------------------------- */

typedef struct batch {
    agent_mqtt *m;
    uint64_t last_id;
    uint64_t rejected[REJ_COUNT];
    uint64_t accepted;
    uint64_t duplicates;
    uint64_t redelivered;
    uint64_t replayed;
    kt_status fatal; /* KT_EAGAIN (full) or an error: roll back */
    kt_err err;
    kt_arena scratch; /* the JSON syntax check's trees, reset after each message */
} batch;

static void reject(batch *b, reject_reason r, const char *id, const char *topic, const char *why)
{
    char q[TOPIC_MAX + 16];
    char w[300];
    b->rejected[r]++;
    KT_LOG(KT_LOG_WARN, id, "topic=%s reason=%s detail=%s", kt_log_quote(q, sizeof q, topic),
           reject_names[r], kt_log_quote(w, sizeof w, why != NULL ? why : ""));
}

static bool iface_known(const agent_mqtt *m, const char *iface)
{
    size_t lo = 0;
    size_t hi = m->n_ifaces;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->ifaces[mid], iface);
        if (c == 0) {
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* The default handler: one ktwin.real.<iface> CloudEvent per message. */
static kt_status default_event(const agent_mqtt_event *ev, agent_outbox *ob, void *user)
{
    (void)user;
    char type[MODEL_EVENT_TYPE_CAP];
    snprintf(type, sizeof type, "ktwin.real.%s", ev->iface);
    sync_event se = { .id = ev->event->id,
                      .type = type,
                      .source = ev->instance,
                      .time_ms = ev->recv_wall_ms,
                      .datacontenttype = "application/json",
                      .data = ev->payload,
                      .data_len = ev->payload_len };
    return agent_outbox_append(ob, &se, NULL, NULL);
}

static bool drain_rec(const agent_journal_rec *r, void *user)
{
    batch *b = user;
    agent_mqtt *m = b->m;
    if (r->id <= m->applied) {
        b->duplicates++;
        return true;
    }
    if (r->mqtt_msgid != 0) {
        uint64_t h = recent_hash(r->topic, r->topic_len, r->payload, r->payload_len);
        if ((r->flags & AGENT_JOURNAL_F_DUP) != 0 && recent_has(&m->recent, r->mqtt_msgid, h)) {
            KT_LOG(KT_LOG_NOTICE, "MQTT-REDELIVERED", "msgid=%u journal_id=%" PRIu64,
                   (unsigned)r->mqtt_msgid, r->id);
            b->redelivered++;
            b->last_id = r->id;
            return true;
        }
        recent_add(&m->recent, r->mqtt_msgid, h);
    }
    kt_buf_reset(&m->topic_buf);
    kt_buf_reset(&m->payload_buf);
    if (kt_buf_append(&m->topic_buf, r->topic, r->topic_len) != KT_OK ||
        kt_buf_append(&m->payload_buf, r->payload, r->payload_len) != KT_OK) {
        reject(b, REJ_OVERSIZED, "MQTT-OVERSIZED", "", "journal record over the caps");
        b->last_id = r->id;
        return true;
    }
    char *topic = m->topic_buf.data != NULL ? m->topic_buf.data : (char *)"";
    const char *payload = m->payload_buf.data != NULL ? m->payload_buf.data : "";
    if (r->id <= m->replay_max_id) {
        b->replayed++;
    }
    /* Topic: ktwin/real/<iface>/<instance> (model/event.h). */
    model_topic t;
    kt_err terr = { 0 };
    if (model_topic_parse(&t, topic, r->topic_len, &terr) != KT_OK || t.cls != MODEL_EVENT_REAL) {
        reject(b, REJ_TOPIC, "MQTT-BAD-TOPIC", topic,
               terr.msg[0] != '\0' ? terr.msg : "not a ktwin/real/ topic");
        b->last_id = r->id;
        return true;
    }
    const char *iface = t.iface;
    const char *instance = t.instance;
    if (!iface_known(m, iface)) {
        reject(b, REJ_IFACE, "MQTT-UNKNOWN-IFACE", topic, iface);
        b->last_id = r->id;
        return true;
    }
    /* Syntax check only: the tree goes at once, so it lives in the batch's scratch arena. */
    cJSON *json = NULL;
    kt_err jerr = { 0 };
    kt_json_scratch_begin(&b->scratch);
    kt_status jst = kt_json_parse(payload, r->payload_len, m->max_payload, &json, &jerr);
    cJSON_Delete(json);
    kt_json_scratch_end();
    kt_arena_reset(&b->scratch);
    if (jst != KT_OK) {
        reject(b, REJ_JSON, "MQTT-BAD-JSON", topic, jerr.msg);
        b->last_id = r->id;
        return true;
    }
    char id[MODEL_EVENT_ID_MAX];
    char tbuf[MODEL_EVENT_TIME_CAP];
    snprintf(id, sizeof id, "%.8s-%" PRIu64, agent_outbox_incarnation(m->ob), r->id);
    model_event mev;
    model_event_from_topic(&mev, &t, payload, r->payload_len, id,
                           kt_clock_rfc3339(tbuf, sizeof tbuf, r->recv_wall_ms), r->recv_wall_ms);
    agent_mqtt_event ev = { .journal_id = r->id,
                            .recv_wall_ms = r->recv_wall_ms,
                            .iface = iface,
                            .instance = instance,
                            .topic = topic,
                            .payload = (const uint8_t *)payload,
                            .payload_len = r->payload_len,
                            .event = &mev };
    kt_status st;
    if (m->on_event != NULL) {
        /* A handler may append several events: undo this message's alone if it fails. */
        st = agent_outbox_mark(m->ob, &b->err);
        if (st == KT_OK) {
            st = m->on_event(&ev, m->ob, m->user);
            agent_outbox_unmark(m->ob, st == KT_OK || st == KT_EINVAL || st == KT_EPROTO);
        }
    } else {
        st = default_event(&ev, m->ob, NULL); /* one append: stores nothing when it fails */
    }
    if (st == KT_EINVAL || st == KT_EPROTO) {
        reject(b, REJ_HANDLER, "MQTT-EVENT-REFUSED", topic, kt_status_str(st));
        b->last_id = r->id;
        return true;
    }
    if (st == KT_EAGAIN && agent_outbox_events(m->ob) == 0) {
        /* Alone in an empty outbox and still over the quota: it can never fit. */
        reject(b, REJ_OVERSIZED, "MQTT-OVER-QUOTA", topic, "events over outbox.max_bytes");
        b->last_id = r->id;
        return true;
    }
    if (st != KT_OK) {
        b->fatal = st;
        if (st != KT_EAGAIN) {
            kt_err_set(&b->err, st, "event handler: %s", kt_status_str(st));
        }
        return false;
    }
    b->accepted++;
    b->last_id = r->id;
    return true;
}

static void count_batch(agent_mqtt *m, const batch *b)
{
    uint64_t rej = 0;
    for (int i = 0; i < REJ_COUNT; i++) {
        kt_metrics_add(m->m_rejected[i], b->rejected[i]);
        rej += b->rejected[i];
    }
    kt_metrics_add(m->m_msgs[MSG_ACCEPTED], b->accepted);
    kt_metrics_add(m->m_msgs[MSG_REJECTED], rej);
    kt_metrics_add(m->m_msgs[MSG_DUPLICATE], b->duplicates + b->redelivered);
    kt_metrics_add(m->m_msgs[MSG_REPLAYED], b->replayed);
    m->stats.accepted += b->accepted;
    m->stats.rejected += rej;
    m->stats.duplicates += b->duplicates;
    m->stats.redelivered += b->redelivered;
    m->stats.replayed += b->replayed;
}

static void sync_paho_counters(agent_mqtt *m)
{
    uint64_t o = atomic_load(&m->n_oversized);
    if (o > m->oversized_seen) {
        kt_metrics_add(m->m_rejected[REJ_OVERSIZED], o - m->oversized_seen);
        kt_metrics_add(m->m_msgs[MSG_REJECTED], o - m->oversized_seen);
        m->stats.rejected += o - m->oversized_seen;
        m->oversized_seen = o;
    }
    m->stats.received = atomic_load(&m->n_received);
}

kt_status agent_mqtt_drain(agent_mqtt *m, kt_err *err)
{
    sync_paho_counters(m);
    if (!m->started || (m->paused && agent_outbox_full(m->ob))) {
        return KT_OK;
    }
    for (;;) {
        batch b = { .m = m };
        kt_status st = agent_outbox_begin(m->ob, err);
        if (st != KT_OK) {
            return st;
        }
        m->recent_saved = m->recent;
        size_t n = 0;
        kt_arena_init(&b.scratch, MQTT_SCRATCH_BLOCK);
        st = agent_journal_read(m->journal, drain_rec, &b, m->batch_max, &n, err);
        kt_arena_fini(&b.scratch);
        if (st == KT_OK && b.fatal != KT_OK && b.fatal != KT_EAGAIN) {
            st = b.fatal; /* a failed handler: retry the whole batch later */
            kt_err_set(err, b.fatal, "%s", b.err.msg);
        }
        /* On KT_EAGAIN (full) the messages before the one that did not fit still commit. */
        if (st == KT_OK && b.last_id > m->applied) {
            st = agent_outbox_meta_set(m->ob, "journal_applied", b.last_id, err);
            if (st == KT_OK && memcmp(&m->recent, &m->recent_saved, sizeof m->recent) != 0) {
                st = recent_encode(&m->recent, &m->recent_text);
                if (st == KT_OK) {
                    st = agent_outbox_meta_text_set(
                        m->ob, "mqtt_recent",
                        m->recent_text.data != NULL ? m->recent_text.data : "", err);
                } else {
                    kt_err_set(err, st, "mqtt_recent: out of memory");
                }
            }
        }
        if (st == KT_OK) {
            st = agent_outbox_commit(m->ob, err);
        } else {
            agent_outbox_rollback(m->ob);
        }
        if (st != KT_OK) {
            m->recent = m->recent_saved;
            agent_journal_rewind(m->journal);
            return st;
        }
        agent_journal_commit_read(m->journal);
        if (b.last_id > m->applied) {
            m->applied = b.last_id;
        }
        count_batch(m, &b);
        if (b.fatal == KT_EAGAIN) {
            pause_ingest(m);
            return KT_OK;
        }
        if (n < m->batch_max) {
            break;
        }
    }
    if (m->paused && !agent_outbox_full(m->ob)) {
        resume_ingest(m);
    }
    return KT_OK;
}

static void drain_and_log(agent_mqtt *m)
{
    kt_err err = { 0 };
    kt_status st = agent_mqtt_drain(m, &err);
    if (st != KT_OK) {
        KT_LOG(KT_LOG_ERR, "MQTT-DRAIN-FAILED", "status=%s err=\"%s\"", kt_status_str(st), err.msg);
    }
}

/* ---- loop: notes and the tick ------------------------------------------------------ */

static void on_note(kt_inbox_msg *msg, void *user)
{
    agent_mqtt *m = user;
    note *n = KT_INBOX_ENTRY(msg, note, link);
    note_kind kind = n->kind;
    int code = n->code;
    kt_free(n);
    switch (kind) {
    case NOTE_WAKE:
        atomic_store(&m->wake_pending, 0);
        drain_and_log(m);
        break;
    case NOTE_CONNECTED:
        m->connecting = false;
        if (m->stopping) {
            break;
        }
        set_connected(m, true);
        m->stats.connects++;
        sync_backoff_reset(&m->backoff);
        KT_LOG(KT_LOG_NOTICE, "MQTT-CONNECTED", "url=%s client_id=%s", m->url, m->client_id);
        subscribe_all(m);
        if (m->paused) {
            pause_ingest(m); /* paused while connecting: disconnect again */
        }
        break;
    case NOTE_CONNECT_FAILED:
        m->connecting = false;
        set_connected(m, false);
        KT_LOG(KT_LOG_WARN, "MQTT-CONNECT-FAILED", "url=%s rc=%d", m->url, code);
        schedule_retry(m);
        break;
    case NOTE_LOST:
        m->connecting = false;
        set_connected(m, false);
        KT_LOG(KT_LOG_WARN, "MQTT-CONN-LOST", "url=%s", m->url);
        schedule_retry(m);
        break;
    case NOTE_DISCONNECTED:
        m->connecting = false;
        set_connected(m, false);
        if (!m->paused) {
            schedule_retry(m);
        }
        break;
    case NOTE_SUB_FAILED:
        KT_LOG(KT_LOG_WARN, "MQTT-SUBSCRIBE-FAILED", "rc=%d", code);
        break;
    case NOTE_SUBSCRIBED:
        m->stats.subacks++;
        break;
    }
}

static void on_note_free(kt_inbox_msg *msg, void *user)
{
    (void)user;
    kt_free(KT_INBOX_ENTRY(msg, note, link));
}

static void on_tick(uv_timer_t *t)
{
    agent_mqtt *m = t->data;
    /* A connection loss whose note could not be queued. */
    if (m->connected && m->client != NULL && !MQTTAsync_isConnected(m->client)) {
        set_connected(m, false);
        schedule_retry(m);
    }
    drain_and_log(m);
}

/* ---- API ------------------------------------------------------------------------------ */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kt_free(v[i]);
    }
    kt_free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static kt_status read_password(const char *path, char **out, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, 64 * 1024);
    kt_status st = kt_buf_read_file(&b, path, err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st;
    }
    const char *s = b.data != NULL ? b.data : "";
    size_t len = b.len;
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == '\t')) {
        len--;
    }
    while (len > 0 && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) {
        s++;
        len--;
    }
    *out = kt_xstrndup(s, len);
    kt_buf_fini(&b);
    return KT_OK;
}

static void register_metrics(agent_mqtt *m, kt_metrics *reg)
{
    kt_err e = { 0 };
    m->metrics = reg;
    if (reg == NULL) {
        return;
    }
    (void)kt_metrics_gauge(&m->m_connected, reg, "ktwin_agent_mqtt_connected",
                           "1 while connected to the site's MQTT broker", NULL, &e);
    static const char *const results[4] = { "accepted", "rejected", "duplicate", "replayed" };
    for (int i = 0; i < 4; i++) {
        (void)kt_metrics_counter(&m->m_msgs[i], reg, "ktwin_agent_mqtt_messages_total",
                                 "Device messages drained from the journal, by result "
                                 "(replayed also counts in accepted/rejected)",
                                 (const char *[]){ "result", results[i], NULL }, &e);
    }
    for (int i = 0; i < REJ_COUNT; i++) {
        (void)kt_metrics_counter(&m->m_rejected[i], reg, "ktwin_agent_events_rejected_total",
                                 "Device messages refused, by reason",
                                 (const char *[]){ "reason", reject_names[i], NULL }, &e);
    }
}

static double sample_journal_bytes(void *user)
{
    const agent_mqtt *m = user;
    return m->journal != NULL ? (double)agent_journal_bytes(m->journal) : 0.0;
}

kt_status
agent_mqtt_new(agent_mqtt **out, uv_loop_t *loop, const agent_mqtt_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts == NULL || opts->url == NULL || opts->client_id == NULL ||
        opts->client_id[0] == '\0' || opts->journal_dir == NULL || opts->outbox == NULL ||
        loop == NULL) {
        return kt_err_set(err, KT_EINVAL,
                          "mqtt: url, client_id, journal_dir and outbox are required");
    }
    const char *url = opts->url;
    char *url_fixed = NULL;
    if (strncmp(url, "mqtt://", 7) == 0) {
        size_t n = strlen(url) + 1;
        url_fixed = kt_xmalloc(n);
        snprintf(url_fixed, n, "tcp://%s", url + 7);
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        size_t n = strlen(url) + 1;
        url_fixed = kt_xmalloc(n);
        snprintf(url_fixed, n, "ssl://%s", url + 8);
    } else if (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "ssl://", 6) == 0) {
        url_fixed = kt_xstrdup(url);
    } else {
        return kt_err_set(err, KT_EINVAL,
                          "mqtt.url %s: scheme must be tcp://, ssl://, mqtt:// or mqtts://", url);
    }
    agent_mqtt *m = kt_xcalloc(1, sizeof *m);
    m->loop = loop;
    m->url = url_fixed;
    m->client_id = kt_xstrdup(opts->client_id);
    m->username = opts->username != NULL ? kt_xstrdup(opts->username) : NULL;
    m->ca_file = opts->ca_file != NULL ? kt_xstrdup(opts->ca_file) : NULL;
    m->qos = opts->qos >= 0 && opts->qos <= 2 ? opts->qos : 1;
    m->keepalive_s = opts->keepalive_s != 0 ? opts->keepalive_s : 30;
    m->max_payload = opts->max_payload_bytes != 0 ? opts->max_payload_bytes : 256 * 1024;
    m->batch_max = opts->batch_max != 0 ? opts->batch_max : 512;
    m->ob = opts->outbox;
    m->on_event = opts->on_event;
    m->user = opts->user;
    kt_buf_init(&m->topic_buf, 65536);
    kt_buf_init(&m->payload_buf, m->max_payload + 1);
    kt_buf_init(&m->recent_text, 64 + RECENT_MAX * 20);
    sync_backoff_opts bo = { 0 };
    bo.base_ms = opts->reconnect_base_ms != 0 ? opts->reconnect_base_ms : 500;
    bo.cap_ms = opts->reconnect_cap_ms != 0 ? opts->reconnect_cap_ms : 30000;
    sync_backoff_init(&m->backoff, &bo);
    register_metrics(m, opts->metrics);
    kt_status st = KT_OK;
    if (opts->password_file != NULL) {
        st = read_password(opts->password_file, &m->password, err);
        if (st != KT_OK) {
            goto fail;
        }
    }
    agent_journal_opts jo = { .dir = opts->journal_dir,
                              .segment_bytes = opts->journal_segment_bytes,
                              .max_record_bytes = m->max_payload + TOPIC_MAX + 64 };
    st = agent_journal_open(&m->journal, &jo, err);
    if (st != KT_OK) {
        goto fail;
    }
    m->applied = agent_outbox_meta_get(m->ob, "journal_applied");
    agent_journal_set_next_id(m->journal, m->applied + 1);
    kt_buf_reset(&m->recent_text);
    if (agent_outbox_meta_text_get(m->ob, "mqtt_recent", &m->recent_text) == KT_OK &&
        m->recent_text.len > 0 &&
        !recent_decode(&m->recent, m->recent_text.data, m->recent_text.len)) {
        KT_LOG(KT_LOG_WARN, "MQTT-RECENT-BAD", "bytes=%zu (redelivery detection starts empty)",
               m->recent_text.len);
    }
    if (opts->metrics != NULL) {
        kt_err e = { 0 };
        (void)kt_metrics_gauge_fn(opts->metrics, "ktwin_agent_journal_bytes",
                                  "Bytes of the MQTT ingest journal on disk", NULL,
                                  sample_journal_bytes, m, &e);
    }
    /* Records journaled by a previous run are replayed by the first drain, in start(). */
    m->replay_max_id = agent_journal_last_id(m->journal);
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
    cro.sendWhileDisconnected = 1;
    cro.allowDisconnectedSendAtAnyTime = 1;
    cro.maxBufferedMessages = opts->max_buffered != 0 ? (int)opts->max_buffered : 10000;
    int rc = MQTTAsync_createWithOptions(&m->client, m->url, m->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
    if (rc != MQTTASYNC_SUCCESS) {
        m->client = NULL;
        st = kt_err_set_dep(err, KT_EDEP, "paho", rc, "MQTTAsync_create %s: %s", m->url,
                            MQTTAsync_strerror(rc));
        goto fail;
    }
    MQTTAsync_setTraceCallback(on_trace);
    MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    rc = MQTTAsync_setCallbacks(m->client, m, on_lost, on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        st = kt_err_set_dep(err, KT_EDEP, "paho", rc, "MQTTAsync_setCallbacks: %s",
                            MQTTAsync_strerror(rc));
        goto fail;
    }
    st = kt_inbox_init(&m->inbox, loop, INBOX_DEPTH, on_note, on_note_free, m, err);
    if (st != KT_OK) {
        goto fail;
    }
    m->inbox_open = true;
    uv_timer_init(loop, &m->tick);
    uv_timer_init(loop, &m->retry);
    m->tick.data = m;
    m->retry.data = m;
    m->handles_open = 3;
    uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
    *out = m;
    return KT_OK;
fail:
    agent_mqtt_free(m);
    return st;
}

kt_status agent_mqtt_start(agent_mqtt *m, kt_err *err)
{
    KT_ASSERT(!m->started);
    m->started = true;
    /* Replay what a previous run journaled (the interface set is known now). */
    kt_status st = agent_mqtt_drain(m, err);
    if (st != KT_OK) {
        return st;
    }
    if (m->stats.replayed > 0 || m->stats.duplicates > 0) {
        agent_journal_stats js;
        agent_journal_stats_get(m->journal, &js);
        KT_LOG(KT_LOG_NOTICE, "MQTT-JOURNAL-REPLAYED",
               "replayed=%" PRIu64 " duplicates=%" PRIu64 " torn=%" PRIu64, m->stats.replayed,
               m->stats.duplicates, js.torn);
    }
    if (m->paused) {
        return KT_OK; /* connects when the outbox drains */
    }
    st = do_connect(m, err);
    if (st != KT_OK) {
        schedule_retry(m);
    }
    return st;
}

kt_status agent_mqtt_set_interfaces(agent_mqtt *m, const char *const *ifaces, size_t n, kt_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = ifaces[i] != NULL ? model_name_check(ifaces[i]) : "NULL";
        if (why != NULL) {
            return kt_err_set(err, KT_EINVAL, "interface %s: %s",
                              ifaces[i] != NULL ? ifaces[i] : "(null)", why);
        }
    }
    char **v = n > 0 ? kt_xcalloc(n, sizeof *v) : NULL;
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        v[nv++] = kt_xstrdup(ifaces[i]);
    }
    if (nv > 1) {
        qsort(v, nv, sizeof *v, cmp_str);
        size_t w = 1;
        for (size_t i = 1; i < nv; i++) {
            if (strcmp(v[i], v[w - 1]) != 0) {
                v[w++] = v[i];
            } else {
                kt_free(v[i]);
            }
        }
        nv = w;
    }
    /* Unsubscribe the interfaces that left the set. */
    if (m->connected && m->client != NULL) {
        char **gone = m->n_ifaces > 0 ? kt_xcalloc(m->n_ifaces, sizeof *gone) : NULL;
        int n_gone = 0;
        for (size_t i = 0; i < m->n_ifaces; i++) {
            bool keep = false;
            for (size_t k = 0; k < nv && !keep; k++) {
                keep = strcmp(v[k], m->ifaces[i]) == 0;
            }
            if (!keep) {
                gone[n_gone] = kt_xmalloc(MODEL_TOPIC_CAP);
                (void)model_topic_filter(gone[n_gone], MODEL_TOPIC_CAP, MODEL_EVENT_REAL,
                                         m->ifaces[i], NULL);
                n_gone++;
            }
        }
        if (n_gone > 0) {
            int rc = MQTTAsync_unsubscribeMany(m->client, n_gone, gone, NULL);
            if (rc != MQTTASYNC_SUCCESS) {
                KT_LOG(KT_LOG_WARN, "MQTT-UNSUBSCRIBE-FAILED", "n=%d rc=%d", n_gone, rc);
            }
        }
        strv_free(gone, (size_t)n_gone);
    }
    strv_free(m->ifaces, m->n_ifaces);
    m->ifaces = v;
    m->n_ifaces = nv;
    subscribe_all(m); /* subscribing again to a kept filter is harmless */
    return KT_OK;
}

kt_status agent_mqtt_publish_virtual(agent_mqtt *m,
                                     const char *iface,
                                     const char *instance,
                                     const uint8_t *payload,
                                     size_t len,
                                     kt_err *err)
{
    char topic[MODEL_TOPIC_CAP];
    if (iface == NULL || instance == NULL) {
        return kt_err_set(err, KT_EINVAL, "virtual event: NULL interface or instance");
    }
    kt_status tst =
        model_topic_build(topic, sizeof topic, MODEL_EVENT_VIRTUAL, iface, instance, err);
    if (tst != KT_OK) {
        return tst;
    }
    if (len > m->max_payload) {
        return kt_err_set(err, KT_ETOOBIG,
                          "virtual event of %zu bytes over mqtt.max_payload_bytes %zu", len,
                          m->max_payload);
    }
    if (m->client == NULL || m->stopping) {
        return kt_err_set(err, KT_ECLOSED, "mqtt bridge stopped");
    }
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc = MQTTAsync_send(m->client, topic, (int)len, payload, m->qos, 0, &ro);
    if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
        return KT_EAGAIN;
    }
    if (rc != MQTTASYNC_SUCCESS) {
        return kt_err_set_dep(err, KT_EDEP, "paho", rc, "publish %s: %s", topic,
                              MQTTAsync_strerror(rc));
    }
    m->stats.published++;
    return KT_OK;
}

static void on_handle_closed(uv_handle_t *h)
{
    agent_mqtt *m = h->data;
    if (--m->handles_open == 0 && m->stopped_cb != NULL) {
        m->stopped_cb(m, m->stopped_user);
    }
}

static void on_inbox_closed(kt_inbox *inbox, void *user)
{
    (void)inbox;
    agent_mqtt *m = user;
    if (--m->handles_open == 0 && m->stopped_cb != NULL) {
        m->stopped_cb(m, m->stopped_user);
    }
}

void agent_mqtt_stop(agent_mqtt *m, agent_mqtt_stopped_cb stopped_cb, void *user)
{
    KT_ASSERT(!m->stopping);
    m->stopping = true;
    m->stopped_cb = stopped_cb;
    m->stopped_user = user;
    /* paho first: after destroy none of its threads calls us again (STYLE §8). */
    if (m->client != NULL) {
        if (m->connected || m->connecting) {
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = 0;
            (void)MQTTAsync_disconnect(m->client, &d);
        }
        MQTTAsync_destroy(&m->client);
        m->client = NULL;
    }
    set_connected(m, false);
    m->connecting = false;
    drain_and_log(m); /* commit what paho journaled last */
    if (m->metrics != NULL) {
        kt_metrics_detach(m->metrics, m);
    }
    uv_timer_stop(&m->tick);
    uv_timer_stop(&m->retry);
    uv_close((uv_handle_t *)&m->tick, on_handle_closed);
    uv_close((uv_handle_t *)&m->retry, on_handle_closed);
    kt_inbox_close(&m->inbox, on_inbox_closed);
    m->inbox_open = false;
}

void agent_mqtt_free(agent_mqtt *m)
{
    if (m == NULL) {
        return;
    }
    KT_ASSERT(!m->inbox_open); /* agent_mqtt_stop first once created */
    if (m->client != NULL) {
        MQTTAsync_destroy(&m->client);
    }
    if (m->metrics != NULL) {
        kt_metrics_detach(m->metrics, m);
    }
    agent_journal_free(m->journal);
    strv_free(m->ifaces, m->n_ifaces);
    kt_buf_fini(&m->topic_buf);
    kt_buf_fini(&m->payload_buf);
    kt_buf_fini(&m->recent_text);
    kt_free(m->url);
    kt_free(m->client_id);
    kt_free(m->username);
    if (m->password != NULL) {
        memset(m->password, 0, strlen(m->password));
    }
    kt_free(m->password);
    kt_free(m->ca_file);
    kt_free(m);
}

bool agent_mqtt_connected(const agent_mqtt *m)
{
    return m->connected;
}

bool agent_mqtt_paused(const agent_mqtt *m)
{
    return m->paused;
}

void agent_mqtt_stats_get(const agent_mqtt *m, agent_mqtt_stats *out)
{
    *out = m->stats;
    out->received = atomic_load(&((agent_mqtt *)m)->n_received);
}
