/*
 * sync/msg.h — the hub <-> agent sync messages as plain C structs, and their
 * wire codec (proto/ktwin/v1/sync.proto, one Envelope per WebSocket message).
 *
 * Everything outside sync/src/msg_codec.c sees only these structs; the
 * generated Ktwin__V1__* types never cross this boundary.
 *
 * Invariants of a message returned by sync_msg_decode():
 *   - it passed sync_msg_validate() with the limits given to decode: every
 *     required field is present, every enum is a known non-zero value, every
 *     object/interface/site name passes model_name_check(), counts and sizes
 *     are within the limits, and an object that is not deleted has a body;
 *   - every string is NUL-terminated (bytes as sent; a string with an embedded
 *     NUL reads as its part before the NUL, which is what gets validated);
 *   - every object body is followed by a NUL byte (body[body_len] == '\0'),
 *     so it can be used as a C string of JSON; so is every event's data
 *     (data[data_len] == '\0', data != NULL even when data_len == 0);
 *   - all pointers inside it are owned by the message and live until
 *     sync_msg_free().
 *
 * A message built by the caller for sync_msg_encode() borrows everything it
 * points to; encode copies what it needs.
 *
 * Thread: any; a sync_msg belongs to one thread at a time.
 */
#ifndef KT_SYNC_MSG_H
#define KT_SYNC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

/* Protocol versions this build speaks (Hello offers [min, max]). */
#define SYNC_PROTO_MIN 1u
#define SYNC_PROTO_MAX 1u

/* The WebSocket subprotocol name of the sync endpoint. */
#define SYNC_WS_SUBPROTOCOL "ktwin-sync.v1"

/* ---- enums (values equal the proto enum numbers) -------------------------- */

typedef enum sync_kind {
    SYNC_KIND_UNSPECIFIED = 0,
    SYNC_KIND_TWIN_INTERFACE = 1,
    SYNC_KIND_TWIN_INSTANCE = 2,
    SYNC_KIND_PLACEMENT_POLICY = 3
} sync_kind;

typedef enum sync_mode {
    SYNC_MODE_UNSPECIFIED = 0,
    SYNC_MODE_UP_TO_DATE = 1, /* nothing to send: the agent's revision is current */
    SYNC_MODE_DELTA = 2,      /* Delta messages follow */
    SYNC_MODE_SNAPSHOT = 3    /* SnapshotChunk messages follow */
} sync_mode;

typedef enum sync_reject_code {
    SYNC_REJECT_UNSPECIFIED = 0,
    SYNC_REJECT_UNAUTHENTICATED = 1, /* unknown site or bad token; do not retry quickly */
    SYNC_REJECT_VERSION = 2,         /* no common protocol version */
    SYNC_REJECT_BUSY = 3,            /* admission limit; retry after retry_after_ms */
    SYNC_REJECT_PROTOCOL = 4,        /* malformed or unexpected message */
    SYNC_REJECT_DUPLICATE = 5        /* another connection of the same site took over */
} sync_reject_code;

typedef enum sync_where {
    SYNC_WHERE_UNSPECIFIED = 0,
    SYNC_WHERE_EDGE = 1,      /* runs on this site */
    SYNC_WHERE_CLOUD = 2,     /* runs in the cloud */
    SYNC_WHERE_PENDING = 3,   /* nowhere yet */
    SYNC_WHERE_OTHER_SITE = 4 /* runs on another edge site (sync_iface_placement.site) */
} sync_where;

typedef enum sync_stream {
    SYNC_STREAM_UNSPECIFIED = 0,
    SYNC_STREAM_GRAPH = 1,     /* seq = graph revision committed by the agent */
    SYNC_STREAM_PLACEMENT = 2, /* seq = placement revision committed by the agent */
    SYNC_STREAM_UP = 3,        /* event plane: agent -> hub, seq per outbox incarnation */
    SYNC_STREAM_DOWN = 4       /* event plane: hub -> agent commands/virtual events, seq per site */
} sync_stream;

/* Which Envelope body a message carries (values equal the oneof field numbers). */
typedef enum sync_msg_type {
    SYNC_MSG_NONE = 0,
    SYNC_MSG_HELLO = 1,
    SYNC_MSG_WELCOME = 2,
    SYNC_MSG_REJECT = 3,
    SYNC_MSG_SNAPSHOT = 4,
    SYNC_MSG_DELTA = 5,
    SYNC_MSG_PLACEMENT = 6,
    SYNC_MSG_ACK = 7,
    SYNC_MSG_HEARTBEAT = 8,
    SYNC_MSG_CAPACITY = 9,
    SYNC_MSG_EVENTS = 10 /* EventBatch, either direction */
} sync_msg_type;

/* ---- limits --------------------------------------------------------------- */

/*
 * Caps on what a peer may send. A zero field means the default given here
 * (see sync_msg_limits_resolve()).
 */
typedef struct sync_limits {
    size_t max_message_bytes;    /* one encoded Envelope; default 4 MiB */
    size_t max_objects;          /* objects per SnapshotChunk/Delta; default 10000 */
    size_t max_interfaces;       /* interfaces per PlacementUpdate; default 10000 */
    size_t max_body_bytes;       /* one object's JSON body; default 1 MiB */
    size_t max_string_bytes;     /* token, hub_id, messages, versions, rule, reason, incarnation,
                                    event id/type/source/subject/datacontenttype; default 1024 */
    size_t max_events;           /* events per EventBatch; default 10000 */
    size_t max_event_data_bytes; /* one event's data; default 1 MiB */
} sync_limits;

#define SYNC_LIMITS_DEFAULT_MESSAGE_BYTES    (4u * 1024u * 1024u)
#define SYNC_LIMITS_DEFAULT_OBJECTS          10000u
#define SYNC_LIMITS_DEFAULT_INTERFACES       10000u
#define SYNC_LIMITS_DEFAULT_BODY_BYTES       (1024u * 1024u)
#define SYNC_LIMITS_DEFAULT_STRING_BYTES     1024u
#define SYNC_LIMITS_DEFAULT_EVENTS           10000u
#define SYNC_LIMITS_DEFAULT_EVENT_DATA_BYTES (1024u * 1024u)

/* Copy in (may be NULL = all defaults) to out, replacing zero fields by defaults. */
void sync_msg_limits_resolve(sync_limits *out, const sync_limits *in);

/* ---- bodies --------------------------------------------------------------- */

/* Allocatable capacity; a has_* flag is false when the field was absent. */
typedef struct sync_capacity {
    bool has_cpu_millis;
    uint32_t cpu_millis;
    bool has_memory_bytes;
    uint64_t memory_bytes;
} sync_capacity;

/* One CRD object of the twin graph. */
typedef struct sync_object {
    sync_kind kind;
    const char *name;    /* model_name_check() clean */
    const uint8_t *body; /* compact JSON document; NULL/0 when deleted */
    size_t body_len;
    bool deleted;
    uint64_t revision; /* graph revision of its last change; 0 when absent */
} sync_object;

/* agent -> hub, first message. NULL strings / false has_* = absent. */
typedef struct sync_hello {
    uint32_t proto_min;
    uint32_t proto_max;
    const char *site;  /* required, model_name_check() clean */
    const char *token; /* required, may be empty */
    const char *agent_version;
    uint64_t graph_revision;     /* 0 = empty cache (absent on the wire = 0) */
    uint64_t placement_revision; /* 0 = none */
    bool has_capacity;
    sync_capacity capacity;
    const char *incarnation; /* event plane */
    bool has_last_acked_down_seq;
    uint64_t last_acked_down_seq;
    bool has_first_unacked_up_seq;
    uint64_t first_unacked_up_seq;
} sync_hello;

/* hub -> agent, accepts the Hello. */
typedef struct sync_welcome {
    uint32_t proto;          /* negotiated version */
    const char *hub_id;      /* required */
    uint64_t graph_revision; /* the hub's revision the sync brings the agent to */
    sync_mode mode;          /* required, not UNSPECIFIED */
    uint32_t heartbeat_ms;   /* 0 = absent (the agent then uses its default) */
    uint32_t window_bytes;   /* max unacked EventBatch bytes per event stream; 0 = absent */
    uint64_t down_next_seq;  /* first DOWN seq the hub will send; 0 = absent (no down stream) */
} sync_welcome;

/* hub -> agent, then the hub closes. */
typedef struct sync_reject {
    sync_reject_code code;   /* required, not UNSPECIFIED */
    const char *message;     /* NULL = absent */
    uint32_t retry_after_ms; /* 0 = absent */
} sync_reject;

/* hub -> agent: one piece of a snapshot; index 0, 1, ...; last ends it. */
typedef struct sync_snapshot_chunk {
    uint64_t revision;
    uint32_t index;
    bool last;
    const sync_object *objects;
    size_t n_objects;
} sync_snapshot_chunk;

/* hub -> agent: the changes from from_revision to to_revision (may be empty). */
typedef struct sync_delta {
    uint64_t from_revision;
    uint64_t to_revision; /* >= from_revision */
    const sync_object *objects;
    size_t n_objects;
} sync_delta;

typedef struct sync_iface_placement {
    const char *interface; /* required, model_name_check() clean */
    sync_where where;      /* required, not UNSPECIFIED */
    const char *site;      /* required (name-clean) when where == OTHER_SITE, else NULL or name */
    const char *rule;      /* "<policy>/<rule>" or NULL */
    const char *reason;    /* one line or NULL */
} sync_iface_placement;

/* hub -> agent: the complete placement as the site sees it. */
typedef struct sync_placement {
    uint64_t revision;
    const sync_iface_placement *interfaces;
    size_t n_interfaces;
} sync_placement;

/* Either direction: everything up to and including seq is durably committed. */
typedef struct sync_ack {
    sync_stream stream; /* required, not UNSPECIFIED */
    uint64_t seq;
} sync_ack;

typedef struct sync_heartbeat {
    uint64_t sent_ms; /* sender's wall clock */
} sync_heartbeat;

typedef struct sync_capacity_report {
    sync_capacity capacity;
} sync_capacity_report;

/*
 * One event: CloudEvents context attributes and opaque data. Strings are
 * checked for presence and length only (id, type, source non-empty).
 */
typedef struct sync_event {
    const char *id;              /* required, non-empty */
    const char *type;            /* required, non-empty */
    const char *source;          /* required, non-empty */
    const char *subject;         /* NULL = absent */
    uint64_t time_ms;            /* Unix ms; 0 = absent */
    const char *datacontenttype; /* NULL = absent */
    const uint8_t *data;         /* may be NULL when data_len == 0 (encode) */
    size_t data_len;             /* <= limits.max_event_data_bytes */
    uint32_t depth;              /* loop depth (twin-service emits that led here); 0 = absent */
} sync_event;

/*
 * Either direction: n_events >= 1 events with seqs first_seq ..
 * first_seq + n_events - 1 (no overflow). stream is UP or DOWN; UP needs a
 * non-empty incarnation, DOWN has none (NULL; ignored if sent).
 */
typedef struct sync_event_batch {
    sync_stream stream;
    const char *incarnation;
    uint64_t first_seq; /* >= 1 */
    const sync_event *events;
    size_t n_events;
} sync_event_batch;

/*
 * One Envelope. Build it on the stack for encode:
 *   sync_msg m = { .type = SYNC_MSG_ACK, .u.ack = { SYNC_STREAM_GRAPH, 42 } };
 */
typedef struct sync_msg {
    sync_msg_type type;
    union {
        sync_hello hello;
        sync_welcome welcome;
        sync_reject reject;
        sync_snapshot_chunk snapshot;
        sync_delta delta;
        sync_placement placement;
        sync_ack ack;
        sync_heartbeat heartbeat;
        sync_capacity_report capacity;
        sync_event_batch events;
    } u;
} sync_msg;

/* ---- codec ---------------------------------------------------------------- */

/*
 * Decode and validate one Envelope from untrusted bytes.
 *
 * out:  the message, owned by the caller (sync_msg_free()); NULL on failure.
 * lim:  caps; NULL = defaults.
 * Returns KT_OK; KT_ETOOBIG when len > lim->max_message_bytes or a count or
 * size is over its cap; KT_EPROTO when the bytes are not a valid Envelope or a
 * field is missing or wrong (err->msg names the field, e.g.
 * "delta.objects[3].name: contains '/'"); KT_EINVAL when buf is NULL
 * with len > 0; KT_ENOMEM when memory runs out.
 * Never asserts on input. Thread: any.
 */
kt_status sync_msg_decode(
    sync_msg **out, const uint8_t *buf, size_t len, const sync_limits *lim, kt_err *err);

/* Free a message returned by sync_msg_decode(); NULL is a no-op. Never pass a caller-built one. */
void sync_msg_free(sync_msg *m);

/*
 * Check a message against the protocol rules and lim (NULL = defaults):
 * the same checks decode runs. Returns KT_OK, KT_ETOOBIG or KT_EPROTO with
 * err->msg naming the field. Thread: any.
 */
kt_status sync_msg_validate(const sync_msg *m, const sync_limits *lim, kt_err *err);

/*
 * Encode m as one Envelope and append it to out (kt_buf_reset() first if you
 * want only this message). m is not validated against limits, but required
 * pointers must be set: a NULL required string or an unknown type gives
 * KT_EINVAL. KT_ETOOBIG when out->max would be exceeded (out unchanged),
 * KT_ENOMEM when memory runs out. Thread: any.
 */
kt_status sync_msg_encode(const sync_msg *m, kt_buf *out, kt_err *err);

/* Stable lower-case names for logs and metrics labels ("hello", "busy", ...). Never NULL. */
const char *sync_msg_type_str(sync_msg_type t);
const char *sync_msg_reject_str(sync_reject_code c);
const char *sync_msg_mode_str(sync_mode m);
const char *sync_msg_where_str(sync_where w);
const char *sync_msg_stream_str(sync_stream s);
const char *sync_msg_kind_str(sync_kind k);

#endif
