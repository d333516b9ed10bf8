/*
 * agent/mqtt.h — the agent's bridge to the site's MQTT broker (paho MQTTAsync).
 *
 * Ingest: subscribes ktwin/real/<iface>/+ (QoS 1 by default) for the
 * interfaces the caller names (agent_mqtt_set_interfaces; updated when the
 * placement changes). Each message is appended to the journal
 * (agent/journal.h) with one write(2) on paho's thread in messageArrived
 * (paho 1.3.x sends the PUBACK just before it calls messageArrived: a kill in
 * between loses that message; see docs/operations.md), then the loop is woken through a
 * kt_inbox. On the loop the journal is drained in batches: each batch is one
 * outbox transaction that holds the events derived from its messages (the
 * on_event callback, or by default one ktwin.real.<iface> CloudEvent per
 * message) and the id of its last journal record, so a replay after a crash
 * neither loses nor duplicates anything. A broker's redelivery (DUP) of a
 * message already journaled, under the same packet id with the same bytes,
 * is recognised among the last 128 and skipped (MQTT-REDELIVERED, counted as
 * result="duplicate"); see RECENT_MAX in mqtt.c.
 *
 * Refusals, each with a log id and ktwin_agent_events_rejected_total{reason}:
 *   oversized (payload > max_payload_bytes; paho thread, MQTT-OVERSIZED),
 *   topic (not ktwin/real/<iface>/<instance> with valid names, MQTT-BAD-TOPIC),
 *   interface (not in the current set, MQTT-UNKNOWN-IFACE),
 *   json (payload not JSON, MQTT-BAD-JSON),
 *   handler (on_event refused it with KT_EINVAL/KT_EPROTO, MQTT-EVENT-REFUSED).
 * A refused message is acknowledged (the broker would only resend it).
 *
 * Backpressure: while the outbox is full (agent_outbox_full) the drain stops
 * and the bridge disconnects from the broker (MQTT-PAUSED); its session is
 * persistent (clean session off) so the broker keeps the messages. It
 * reconnects when the outbox is below its low-water mark (MQTT-RESUMED).
 * Connection loss and failed connects retry with exponential backoff and
 * full jitter (mqtt.reconnect_*); every connect resubscribes.
 *
 * Thread: every function on the loop thread. paho's threads run only the
 * static callbacks in mqtt.c (journal append, kt_inbox push). Ownership: the
 * bridge owns the paho client, the journal and its inbox; the outbox and the
 * metrics registry are borrowed and must outlive it.
 */
#ifndef KT_AGENT_MQTT_H
#define KT_AGENT_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kt/err.h"
#include "kt/metrics.h"
#include "model/event.h"
#include "outbox.h"

typedef struct agent_mqtt agent_mqtt;

/* One ingested device message, a view valid during the on_event call. */
typedef struct agent_mqtt_event {
    uint64_t journal_id;   /* unique, increasing: use it to derive CloudEvent ids */
    uint64_t recv_wall_ms; /* when paho handed it over */
    const char *iface;     /* from the topic, NUL-terminated */
    const char *instance;  /* from the topic */
    const char *topic;
    const uint8_t *payload; /* valid JSON, payload[payload_len] == '\0' */
    size_t payload_len;
    /*
     * The real event it carries (model/event.h view over the fields above):
     * type ktwin.real.<iface>, source = instance, id "<incarnation[0..8]>-<journal_id>"
     * (stable across a replay), time = recv_wall_ms.
     */
    const model_event *event;
} agent_mqtt_event;

/*
 * Called on the loop for each accepted message, inside the outbox
 * transaction of its batch: append what it yields with agent_outbox_append
 * (those appends commit with the message). Return KT_OK; KT_EINVAL or
 * KT_EPROTO to refuse the message (counted, acknowledged, the batch goes
 * on); KT_EAGAIN when the outbox is full (the batch is rolled back and
 * retried after the outbox drains); anything else rolls the batch back and
 * it is retried later (logged MQTT-DRAIN-FAILED).
 * Side effects outside the outbox (a plugin call) may see a message again
 * after a crash or a rollback: at-least-once for them, exactly-once for the
 * outbox.
 */
typedef kt_status (*agent_mqtt_event_cb)(const agent_mqtt_event *ev, agent_outbox *ob, void *user);

typedef struct agent_mqtt_opts {
    const char *url;           /* tcp://host:port, ssl://host:port (mqtts:// accepted); required */
    const char *client_id;     /* required; stable: the broker keeps the session under it */
    const char *username;      /* nullable */
    const char *password_file; /* nullable; content without surrounding white space */
    const char *ca_file;       /* nullable; ssl:// only (unset = system store) */
    int qos;                   /* subscribe and publish QoS 0..2; default 1 (pass -1 for default) */
    uint32_t keepalive_s;      /* 0 = 30 */
    size_t max_payload_bytes;  /* 0 = 256 KiB */
    uint32_t reconnect_base_ms;   /* 0 = 500 */
    uint32_t reconnect_cap_ms;    /* 0 = 30000 */
    size_t max_buffered;          /* virtual publishes buffered while disconnected; 0 = 10000 */
    const char *journal_dir;      /* required */
    size_t journal_segment_bytes; /* 0 = 8 MiB */
    size_t batch_max;             /* messages per drain transaction; 0 = 512 */
    agent_outbox *outbox;         /* required, borrowed */
    kt_metrics *metrics;          /* nullable, borrowed */
    agent_mqtt_event_cb on_event; /* NULL = append ktwin.real.<iface> events to the outbox */
    void *user;
} agent_mqtt_opts;

typedef struct agent_mqtt_stats {
    uint64_t received;    /* journaled by messageArrived */
    uint64_t accepted;    /* committed (passed to on_event / appended) */
    uint64_t rejected;    /* all refusal reasons */
    uint64_t replayed;    /* records drained that were journaled before this start */
    uint64_t duplicates;  /* journal records at or below the committed watermark */
    uint64_t redelivered; /* DUP messages already journaled (a broker's redelivery), skipped */
    uint64_t published;   /* virtual publishes handed to paho */
    uint64_t connects;    /* successful connects */
    uint64_t pauses;      /* backpressure disconnects */
    uint64_t subacks;     /* subscribe requests the broker confirmed */
} agent_mqtt_stats;

/*
 * Create the bridge: open the journal and create the paho client (not
 * connected yet). Call agent_mqtt_set_interfaces, then agent_mqtt_start.
 * Returns KT_OK; KT_EINVAL (missing option, bad url); KT_EIO (journal,
 * password file); KT_EDEP ("paho" or "sqlite").
 */
kt_status
agent_mqtt_new(agent_mqtt **out, uv_loop_t *loop, const agent_mqtt_opts *opts, kt_err *err);

/*
 * Replay what a previous run left in the journal into the outbox (with the
 * interface set given so far; records of other interfaces are refused and
 * counted), then connect (asynchronously; failures retry with backoff).
 * Call once. KT_OK; KT_EDEP ("paho", "sqlite"); KT_EIO (journal).
 */
kt_status agent_mqtt_start(agent_mqtt *m, kt_err *err);

/*
 * The set of interfaces to ingest (copied; replaces the previous set).
 * Subscribes the new ones and unsubscribes the dropped ones when connected,
 * else on the next connect. KT_EINVAL names an invalid interface name
 * (nothing changed).
 */
kt_status
agent_mqtt_set_interfaces(agent_mqtt *m, const char *const *ifaces, size_t n, kt_err *err);

/*
 * Publish payload to ktwin/virtual/<iface>/<instance> (QoS opts.qos; paho
 * copies it; buffered while disconnected up to max_buffered).
 * Returns KT_OK; KT_EINVAL (bad name); KT_ETOOBIG (payload over
 * max_payload_bytes); KT_EAGAIN (paho's buffer is full); KT_EDEP ("paho").
 */
kt_status agent_mqtt_publish_virtual(agent_mqtt *m,
                                     const char *iface,
                                     const char *instance,
                                     const uint8_t *payload,
                                     size_t len,
                                     kt_err *err);

/* Drain the journal now (normally driven by the inbox and a timer). KT_OK or the outbox error. */
kt_status agent_mqtt_drain(agent_mqtt *m, kt_err *err);

typedef void (*agent_mqtt_stopped_cb)(agent_mqtt *m, void *user);
/*
 * Stop: disconnect and destroy the paho client (its threads end), drain the
 * journal one last time, close the inbox and timers; stopped_cb (nullable)
 * runs on a later loop iteration, after which agent_mqtt_free is safe.
 * Call once.
 */
void agent_mqtt_stop(agent_mqtt *m, agent_mqtt_stopped_cb stopped_cb, void *user);

/* Free (after the stopped callback, or if never started). NULL is a no-op. */
void agent_mqtt_free(agent_mqtt *m);

/* Connected to the broker now. */
bool agent_mqtt_connected(const agent_mqtt *m);
/* Disconnected on purpose because the outbox is full. */
bool agent_mqtt_paused(const agent_mqtt *m);
/* Counters (racy reads of paho-side counters are fine). */
void agent_mqtt_stats_get(const agent_mqtt *m, agent_mqtt_stats *out);

#endif
