/*
 * model/event.h — KTWIN's events: CloudEvent 1.0 attributes, event types,
 * MQTT topics, CloudEvents over HTTP (binary and structured mode) and a
 * compact binary form for storage. Pure code, shared by agent and hub.
 *
 * EVENT TYPES (KTWIN.md §2.1). The CloudEvent `type` is one of
 *   ktwin.real.<iface>            device -> twin (or a service's PublishToVirtualTwin)
 *   ktwin.virtual.<iface>         twin -> device (MQTT ktwin/virtual/<iface>/<instance>)
 *   ktwin.command.<iface>.<cmd>   twin -> twin command to the service of <iface>
 *   ktwin.store.<iface>           twin -> event store (asynchronous persistence)
 * "ktwin" and the class word are lower case, exactly. <iface> and <cmd> are
 * names (model_name_check: no '.', '/', '#', '+', blanks). Command names are
 * case-insensitive (KTWIN's SDK lowercases them when it publishes and
 * compares them case-insensitively): parsing and building store the command
 * lower-cased. A type has exactly 3 (4 for commands) dot-separated parts;
 * anything else, and KTWIN's dummy "ktwin.event-store", is refused.
 *
 * SOURCE. `source` is always a twin instance name (model_name_check). For
 * real, virtual and store events it is the instance the event is about. For
 * a command it is the TARGET instance (the current Go SDK's PublishCommand
 * sets source = relationship.Instance, the instance whose interface's
 * service must run the command); the older Python SDK's "sender" convention
 * is not supported.
 *
 * MQTT TOPICS (KTWIN.md §2.2). Devices publish ktwin/real/<iface>/<instance>
 * and subscribe ktwin/virtual/<iface>/<instance>. Exactly four levels, no
 * empty level, no wildcard, valid names.
 *
 * OWNERSHIP. A model_event is a view: id, source, time, datacontenttype and
 * data are borrowed pointers (the filler decides what they point at); the
 * parsed type (cls, iface, command) is stored inline, so a view needs no
 * allocation. model_event_dup() (or model_event_copy_into() for caller
 * memory such as a kt_arena) makes an OWNING event: one block holding the
 * struct and copies of every string and the data; free it with
 * model_event_free() (dup) or with the memory it was copied into. Every
 * function that returns `model_event **out` returns such a single block.
 *
 * LIMITS. id <= MODEL_EVENT_ID_MAX bytes, time <= MODEL_EVENT_TIME_MAX,
 * datacontenttype <= MODEL_EVENT_CT_MAX, data <= the max_data the caller
 * passes (MODEL_EVENT_DATA_MAX_DEFAULT when 0). Errors name the attribute:
 * "ce-source: '.' not allowed in a name", "data: 2000000 bytes over the
 * 1048576 cap".
 *
 * Thread: every function is pure and may run on any thread (the id
 * generator uses an atomic counter); an event belongs to one thread.
 */
#ifndef KT_MODEL_EVENT_H
#define KT_MODEL_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "model/model.h"

/* Longest CloudEvent id we accept (bytes). */
#define MODEL_EVENT_ID_MAX 256
/* Longest `time` string we accept (RFC 3339; bytes). */
#define MODEL_EVENT_TIME_MAX 64
/* Longest datacontenttype we accept (bytes). */
#define MODEL_EVENT_CT_MAX 128
/* Data cap used when a caller passes max_data = 0. */
#define MODEL_EVENT_DATA_MAX_DEFAULT (1024u * 1024u)
/* Longest type: "ktwin.command." + name + "." + name, plus NUL. */
#define MODEL_EVENT_TYPE_CAP (14 + MODEL_NAME_MAX + 1 + MODEL_NAME_MAX + 1)
/* Longest topic: "ktwin/virtual/" + name + "/" + name, plus NUL. */
#define MODEL_TOPIC_CAP (14 + MODEL_NAME_MAX + 1 + MODEL_NAME_MAX + 1)
/* Buffer size that always holds a model_event_id_new() id. */
#define MODEL_EVENT_ID_GEN_CAP 48
/* Buffer size that always holds an RFC 3339 time we render. */
#define MODEL_EVENT_TIME_CAP 40
/* The default datacontenttype (KTWIN's SDKs and dispatchers). */
#define MODEL_EVENT_CT_JSON "application/json"
/* Content-Type of a structured-mode CloudEvent. */
#define MODEL_CE_STRUCTURED_CT "application/cloudevents+json"

typedef enum model_event_class {
    MODEL_EVENT_NONE = 0, /* not parsed / not a KTWIN type */
    MODEL_EVENT_REAL = 1,
    MODEL_EVENT_VIRTUAL = 2,
    MODEL_EVENT_COMMAND = 3,
    MODEL_EVENT_STORE = 4
} model_event_class;

/* One KTWIN event (a CloudEvent 1.0 with specversion "1.0"). See OWNERSHIP. */
typedef struct model_event {
    model_event_class cls;
    char iface[MODEL_NAME_MAX + 1];   /* the <iface> of the type */
    char command[MODEL_NAME_MAX + 1]; /* COMMAND: lower-cased <cmd>; else "" */
    const char *id;                   /* CloudEvent id, non-empty */
    const char *source;               /* twin instance name (see SOURCE) */
    const char *time;                 /* RFC 3339 as received, or NULL */
    uint64_t time_ms;                 /* ms since the epoch; 0 when no time */
    const char *datacontenttype;      /* NULL means MODEL_EVENT_CT_JSON */
    const void *data;                 /* the payload bytes (JSON for KTWIN), not parsed */
    size_t data_len;                  /* data may be NULL when 0 */
} model_event;

/* "real", "virtual", "command", "store", or "none". */
const char *model_event_class_str(model_event_class cls);

/* ---- types ---------------------------------------------------------------------------- */

/*
 * Parse type[0..len) (need not be NUL-terminated) into ev->cls, ev->iface and
 * ev->command; other fields are untouched.
 * Returns KT_OK; KT_EINVAL (message "type: ...") for anything that is not
 * one of the four patterns with valid names; ev's type fields are cleared
 * (cls NONE, empty names) on failure.
 */
kt_status model_event_set_type(model_event *ev, const char *type, size_t len, kt_err *err);

/*
 * Set ev's type from parts: iface must pass model_name_check; command must
 * be non-NULL and valid exactly when cls is COMMAND (stored lower-cased).
 * Returns KT_OK or KT_EINVAL naming the part; type fields cleared on failure.
 */
kt_status model_event_set_class(
    model_event *ev, model_event_class cls, const char *iface, const char *command, kt_err *err);

/*
 * Write ev's type string ("ktwin.real.x") into out (cap bytes;
 * MODEL_EVENT_TYPE_CAP is always enough). Returns out, or "" (when cap > 0)
 * if ev has no class or out is too small.
 */
const char *model_event_type_str(const model_event *ev, char *out, size_t cap);

/* ---- validation ------------------------------------------------------------------------ */

/*
 * Check a filled view: a class, a non-empty id <= MODEL_EVENT_ID_MAX without
 * control characters, a valid source name, time (when not NULL) a valid RFC
 * 3339 string <= MODEL_EVENT_TIME_MAX, datacontenttype <= MODEL_EVENT_CT_MAX,
 * data_len <= max_data (0: MODEL_EVENT_DATA_MAX_DEFAULT) and data not NULL
 * when data_len > 0. Use it on events a service or plugin hands over.
 * Returns KT_OK; KT_EINVAL naming the attribute; KT_ETOOBIG for data.
 */
kt_status model_event_check(const model_event *ev, size_t max_data, kt_err *err);

/* ---- owning copies --------------------------------------------------------------------- */

/* Bytes model_event_copy_into needs for ev (struct, strings, data, alignment). */
size_t model_event_copy_size(const model_event *ev);

/*
 * Copy ev into mem (at least model_event_copy_size(ev) bytes, aligned for a
 * pointer: malloc or kt_arena memory) and return the copy, which points only
 * into mem. data gets a NUL after data_len bytes (not counted), so JSON data
 * can be handed to string functions. Pure; cannot fail.
 */
model_event *model_event_copy_into(void *mem, size_t size, const model_event *ev);

/*
 * One heap block (kt_malloc) holding a copy of ev.
 * Returns KT_OK with *out owned by the caller (model_event_free);
 * KT_ENOMEM. *out is NULL on failure.
 */
kt_status model_event_dup(model_event **out, const model_event *ev, kt_err *err);

/* Free an event from model_event_dup or any `model_event **out` here. NULL is a no-op. */
void model_event_free(model_event *ev);

/* ---- compact binary form (outbox, event store, queues) ------------------------------- */

/*
 * Append ev in the compact binary form to out:
 *   "KE" 0x01(version) u8 cls  u64 time_ms (LE)
 *   then u32-LE length + bytes for: iface, command, id, source, time,
 *   datacontenttype, data (a NULL string is length 0xFFFFFFFF).
 * Returns KT_OK; KT_ETOOBIG / KT_ENOMEM when out cannot grow (out unchanged).
 */
kt_status model_event_encode(const model_event *ev, kt_buf *out);

/*
 * Decode buf[0..len) (one encoded event, nothing after it) into one owning
 * block, validated like model_event_check.
 * Returns KT_OK with *out (model_event_free); KT_EPROTO for a truncated or
 * malformed encoding (message says which field); KT_EINVAL / KT_ETOOBIG for
 * contents that fail the checks; KT_ENOMEM. *out is NULL on failure.
 */
kt_status
model_event_decode(model_event **out, const void *buf, size_t len, size_t max_data, kt_err *err);

/* ---- CloudEvents over HTTP ------------------------------------------------------------ */

/*
 * Header getter for model_event_from_http: return the value of the request
 * header `name` (given lower case, e.g. "ce-id", "content-type"; match it
 * case-insensitively) as a NUL-terminated string that stays valid until
 * model_event_from_http returns, or NULL when absent.
 */
typedef const char *(*model_ce_header_cb)(const char *name, void *user);

/*
 * Parse an HTTP request (KTWIN broker ingress POST /, event store POST
 * /api/v1/twin-events) into one owning block:
 * - structured mode when Content-Type is application/cloudevents+json
 *   (parameters such as "; charset=utf-8" allowed): body is one JSON object
 *   (model_event_from_json);
 * - application/cloudevents-batch+json: refused (KT_EPROTO, batch mode);
 * - otherwise binary mode: ce-specversion ("1.0"), ce-id, ce-type, ce-source
 *   required, ce-time optional (RFC 3339), Content-Type becomes
 *   datacontenttype (absent: NULL), body is data. Other ce-* headers are
 *   ignored.
 * max_data caps data (0: MODEL_EVENT_DATA_MAX_DEFAULT).
 * Returns KT_OK with *out (model_event_free); KT_EPROTO for a missing
 * attribute, a wrong specversion or batch mode; KT_EINVAL for a bad value;
 * KT_ETOOBIG over a cap; KT_ENOMEM. Messages name the header or attribute
 * ("ce-type: missing"). *out is NULL on failure.
 */
kt_status model_event_from_http(model_event **out,
                                model_ce_header_cb get,
                                void *user,
                                const void *body,
                                size_t len,
                                size_t max_data,
                                kt_err *err);

/*
 * Parse a structured-mode CloudEvent (one JSON object) from json[0..len):
 * specversion "1.0", id, type, source required strings; time optional
 * (RFC 3339); datacontenttype optional; at most one of data (any JSON value:
 * stored as its compact JSON text, datacontenttype defaulting to
 * application/json) and data_base64 (decoded bytes). Other attributes
 * (subject, extensions) are ignored. A JSON null attribute counts as absent.
 * The body may be up to max_data*4/3 + 16 KiB bytes.
 * Returns and ownership as model_event_from_http.
 */
kt_status model_event_from_json(
    model_event **out, const char *json, size_t len, size_t max_data, kt_err *err);

#define MODEL_CE_HEADERS_MAX 6

/* Binary-mode request headers (model_event_to_http_binary). */
typedef struct model_ce_headers {
    size_t n;
    struct {
        const char *name;  /* "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time",
                              "content-type" */
        const char *value; /* borrowed from the event or from _type/_time below */
    } h[MODEL_CE_HEADERS_MAX];
    char _type[MODEL_EVENT_TYPE_CAP];
    char _time[MODEL_EVENT_TIME_CAP];
} model_ce_headers;

/*
 * Fill out with ev's binary-mode headers, in the order listed above; the
 * body to send is ev->data[0..data_len). ce-time is ev->time, else rendered
 * from time_ms, omitted when both are unset; content-type is
 * datacontenttype or application/json. out borrows from ev: use it while ev
 * lives. ev must have a class (KT_ASSERT).
 */
void model_event_to_http_binary(const model_event *ev, model_ce_headers *out);

/*
 * Append ev as a structured-mode JSON object to out:
 *   {"specversion":"1.0","id":..,"type":..,"source":..[,"time":..]
 *    [,"datacontenttype":..][,"data":<JSON>|"data_base64":".."]}
 * data is written inline when the content type is JSON (NULL,
 * application/json, or any type ending in +json) and data is valid JSON, else as data_base64;
 * no data key when data_len is 0. Also usable as the stored JSON form.
 * Returns KT_OK; KT_ETOOBIG / KT_ENOMEM when out cannot grow.
 */
kt_status model_event_to_json(const model_event *ev, kt_buf *out);

/* ---- ids and times -------------------------------------------------------------------- */

/*
 * Write a new event id into out (cap >= MODEL_EVENT_ID_GEN_CAP):
 * "<16 hex random per process>-<counter in hex>", unique within the
 * process (atomic counter) and, with high probability, across processes and
 * restarts. Returns out ("" when cap is too small). Thread: any.
 */
const char *model_event_id_new(char *out, size_t cap);

/*
 * Parse an RFC 3339 date-time s[0..len): YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm),
 * 'T'/'t'/' ' and 'Z'/'z' accepted, fraction truncated to milliseconds,
 * leap second 60 read as 59.999. Years 1970..9999.
 * Returns KT_OK with *ms_out; KT_EINVAL naming what is wrong.
 */
kt_status model_time_parse(const char *s, size_t len, uint64_t *ms_out, kt_err *err);

/* ---- MQTT topics ----------------------------------------------------------------------- */

typedef struct model_topic {
    model_event_class cls; /* REAL or VIRTUAL */
    char iface[MODEL_NAME_MAX + 1];
    char instance[MODEL_NAME_MAX + 1];
} model_topic;

/*
 * Parse topic[0..len): "ktwin/real/<iface>/<instance>" or
 * "ktwin/virtual/<iface>/<instance>", exactly four levels, names valid.
 * Returns KT_OK; KT_EINVAL ("topic: ...") otherwise (wildcards, empty or
 * extra levels, bad names, other prefixes); out is zeroed on failure.
 */
kt_status model_topic_parse(model_topic *out, const char *topic, size_t len, kt_err *err);

/*
 * Write "ktwin/<real|virtual>/<iface>/<instance>" into out (cap bytes;
 * MODEL_TOPIC_CAP always enough). cls must be REAL or VIRTUAL.
 * Returns KT_OK; KT_EINVAL for another class or an invalid name;
 * KT_ETOOBIG when cap is too small.
 */
kt_status model_topic_build(char *out,
                            size_t cap,
                            model_event_class cls,
                            const char *iface,
                            const char *instance,
                            kt_err *err);

/*
 * Write the subscription filter "ktwin/<real|virtual>/<iface>/+" into out
 * (MODEL_TOPIC_CAP always enough). Returns as model_topic_build.
 */
kt_status
model_topic_filter(char *out, size_t cap, model_event_class cls, const char *iface, kt_err *err);

/*
 * Fill ev as the real (or virtual) event a device message on topic t
 * carries: class and iface from the topic, source = t->instance (borrowed
 * from t), data = payload (borrowed), datacontenttype NULL (JSON), id,
 * time and time_ms as given (borrowed; e.g. model_event_id_new and
 * kt_clock_rfc3339 of time_ms). No validation beyond the topic's.
 */
void model_event_from_topic(model_event *ev,
                            const model_topic *t,
                            const void *payload,
                            size_t len,
                            const char *id,
                            const char *time,
                            uint64_t time_ms);

#endif
