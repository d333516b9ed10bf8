/*
 * msg_codec.c — sync_msg <-> protobuf Envelope (ktwin/v1/sync.proto).
 *
 * The only file that sees the generated Ktwin__V1__* types.
 *
 * DESIGN
 * Decode runs in three steps, cheapest first, so a hostile peer cannot make
 * us allocate much more than it sent:
 *   1. size cap (max_message_bytes);
 *   2. a pre-scan of the wire format that checks the framing and counts the
 *      repeated objects/interfaces before protobuf-c allocates arrays for
 *      them (an empty Object is 2 bytes on the wire but ~64 in memory);
 *   3. protobuf-c unpack into a per-message kt_arena (passed as the
 *      ProtobufCAllocator; an allocation failure there is KT_ENOMEM, not an
 *      abort), conversion into sync_msg structs in the same arena, then
 *      sync_msg_validate(). The arena is the message: sync_msg_free() frees
 *      it in one go.
 * Encode builds the generated structs on a scratch arena and packs straight
 * into the caller's kt_buf through a ProtobufCBuffer adapter.
 *
 * Invariants: a decoded sync_msg always passed sync_msg_validate().
 * Thread: any; no global state.
 */
#include "sync/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "ktwin/v1/sync.pb-c.h"

#include "kt/mem.h"
#include "model/model.h"
#include "msg_int.h"

/* Decoded message = public struct + the arena that holds everything it points to. */
typedef struct msg_owned {
    sync_msg msg; /* first: sync_msg_free() casts back */
    kt_arena arena;
} msg_owned;

/* ---- limits and names -------------------------------------------------- */

void sync_msg_limits_resolve(sync_limits *out, const sync_limits *in)
{
    sync_limits l = { 0 };
    if (in != NULL) {
        l = *in;
    }
    if (l.max_message_bytes == 0) {
        l.max_message_bytes = SYNC_LIMITS_DEFAULT_MESSAGE_BYTES;
    }
    if (l.max_objects == 0) {
        l.max_objects = SYNC_LIMITS_DEFAULT_OBJECTS;
    }
    if (l.max_interfaces == 0) {
        l.max_interfaces = SYNC_LIMITS_DEFAULT_INTERFACES;
    }
    if (l.max_body_bytes == 0) {
        l.max_body_bytes = SYNC_LIMITS_DEFAULT_BODY_BYTES;
    }
    if (l.max_string_bytes == 0) {
        l.max_string_bytes = SYNC_LIMITS_DEFAULT_STRING_BYTES;
    }
    if (l.max_events == 0) {
        l.max_events = SYNC_LIMITS_DEFAULT_EVENTS;
    }
    if (l.max_event_data_bytes == 0) {
        l.max_event_data_bytes = SYNC_LIMITS_DEFAULT_EVENT_DATA_BYTES;
    }
    *out = l;
}

const char *sync_msg_type_str(sync_msg_type t)
{
    static const char *const names[] = { "none",      "hello",    "welcome",   "reject",
                                         "snapshot",  "delta",    "placement", "ack",
                                         "heartbeat", "capacity", "events" };
    if ((unsigned)t < sizeof names / sizeof names[0]) {
        return names[t];
    }
    return "unknown";
}

const char *sync_msg_reject_str(sync_reject_code c)
{
    static const char *const names[] = { "unspecified", "unauthenticated", "version",
                                         "busy",        "protocol",        "duplicate" };
    if ((unsigned)c < sizeof names / sizeof names[0]) {
        return names[c];
    }
    return "unknown";
}

const char *sync_msg_mode_str(sync_mode m)
{
    static const char *const names[] = { "unspecified", "up_to_date", "delta", "snapshot" };
    if ((unsigned)m < sizeof names / sizeof names[0]) {
        return names[m];
    }
    return "unknown";
}

const char *sync_msg_where_str(sync_where w)
{
    static const char *const names[] = { "unspecified", "edge", "cloud", "pending", "other_site" };
    if ((unsigned)w < sizeof names / sizeof names[0]) {
        return names[w];
    }
    return "unknown";
}

const char *sync_msg_stream_str(sync_stream s)
{
    static const char *const names[] = { "unspecified", "graph", "placement", "up", "down" };
    if ((unsigned)s < sizeof names / sizeof names[0]) {
        return names[s];
    }
    return "unknown";
}

const char *sync_msg_kind_str(sync_kind k)
{
    static const char *const names[] = { "unspecified", "twin_interface", "twin_instance",
                                         "placement_policy" };
    if ((unsigned)k < sizeof names / sizeof names[0]) {
        return names[k];
    }
    return "unknown";
}

/* ---- validation ---------------------------------------------------------- */

static kt_status
check_name(const char *what, size_t idx, const char *field, const char *name, kt_err *err)
{
    if (name == NULL) {
        return kt_err_set(err, KT_EPROTO, "%s[%zu].%s: missing", what, idx, field);
    }
    const char *why = model_name_check(name);
    if (why != NULL) {
        return kt_err_set(err, KT_EPROTO, "%s[%zu].%s: %s", what, idx, field, why);
    }
    return KT_OK;
}

/* Optional string: NULL ok; else at most max bytes. */
static kt_status check_str(const char *field, const char *s, size_t max, kt_err *err)
{
    if (s != NULL) {
        size_t n = strnlen(s, max + 1);
        if (n > max) {
            return kt_err_set(err, KT_ETOOBIG, "%s: longer than %zu bytes", field, max);
        }
    }
    return KT_OK;
}

static kt_status check_objects(const char *what,
                               const sync_object *objs,
                               size_t n,
                               bool allow_deleted,
                               const sync_limits *l,
                               kt_err *err)
{
    if (n > l->max_objects) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu objects over cap %zu", what, n, l->max_objects);
    }
    if (n > 0 && objs == NULL) {
        return kt_err_set(err, KT_EPROTO, "%s: %zu objects but no array", what, n);
    }
    for (size_t i = 0; i < n; i++) {
        const sync_object *o = &objs[i];
        if (o->kind < SYNC_KIND_TWIN_INTERFACE || o->kind > SYNC_KIND_PLACEMENT_POLICY) {
            return kt_err_set(err, KT_EPROTO, "%s[%zu].kind: invalid value %d", what, i,
                              (int)o->kind);
        }
        kt_status st = check_name(what, i, "name", o->name, err);
        if (st != KT_OK) {
            return st;
        }
        if (o->deleted) {
            if (!allow_deleted) {
                return kt_err_set(err, KT_EPROTO, "%s[%zu] (%s): deleted object in a snapshot",
                                  what, i, o->name);
            }
            if (o->body != NULL) {
                return kt_err_set(err, KT_EPROTO, "%s[%zu].body (%s): present on a deleted object",
                                  what, i, o->name);
            }
        } else {
            if (o->body == NULL || o->body_len == 0) {
                return kt_err_set(err, KT_EPROTO, "%s[%zu].body (%s): missing", what, i, o->name);
            }
            if (o->body_len > l->max_body_bytes) {
                return kt_err_set(err, KT_ETOOBIG, "%s[%zu].body (%s): %zu bytes over cap %zu",
                                  what, i, o->name, o->body_len, l->max_body_bytes);
            }
        }
    }
    return KT_OK;
}

static kt_status validate_hello(const sync_hello *h, const sync_limits *l, kt_err *err)
{
    if (h->proto_min == 0 || h->proto_min > h->proto_max) {
        return kt_err_set(err, KT_EPROTO, "hello.proto_min: %u..%u is not a version range",
                          h->proto_min, h->proto_max);
    }
    if (h->site == NULL) {
        return kt_err_set(err, KT_EPROTO, "hello.site: missing");
    }
    const char *why = model_name_check(h->site);
    if (why != NULL) {
        return kt_err_set(err, KT_EPROTO, "hello.site: %s", why);
    }
    if (h->token == NULL) {
        return kt_err_set(err, KT_EPROTO, "hello.token: missing");
    }
    kt_status st = check_str("hello.token", h->token, l->max_string_bytes, err);
    if (st == KT_OK) {
        st = check_str("hello.agent_version", h->agent_version, l->max_string_bytes, err);
    }
    if (st == KT_OK) {
        st = check_str("hello.incarnation", h->incarnation, l->max_string_bytes, err);
    }
    return st;
}

static kt_status validate_placement(const sync_placement *p, const sync_limits *l, kt_err *err)
{
    if (p->n_interfaces > l->max_interfaces) {
        return kt_err_set(err, KT_ETOOBIG, "placement.interfaces: %zu over cap %zu",
                          p->n_interfaces, l->max_interfaces);
    }
    if (p->n_interfaces > 0 && p->interfaces == NULL) {
        return kt_err_set(err, KT_EPROTO, "placement.interfaces: %zu but no array",
                          p->n_interfaces);
    }
    for (size_t i = 0; i < p->n_interfaces; i++) {
        const sync_iface_placement *ip = &p->interfaces[i];
        kt_status st = check_name("placement.interfaces", i, "interface", ip->interface, err);
        if (st != KT_OK) {
            return st;
        }
        if (ip->where < SYNC_WHERE_EDGE || ip->where > SYNC_WHERE_OTHER_SITE) {
            return kt_err_set(err, KT_EPROTO,
                              "placement.interfaces[%zu].where (%s): invalid value %d", i,
                              ip->interface, (int)ip->where);
        }
        if (ip->where == SYNC_WHERE_OTHER_SITE || ip->site != NULL) {
            st = check_name("placement.interfaces", i, "site", ip->site, err);
            if (st != KT_OK) {
                return st;
            }
        }
        st = check_str("placement.interfaces[].rule", ip->rule, l->max_string_bytes, err);
        if (st == KT_OK) {
            st = check_str("placement.interfaces[].reason", ip->reason, l->max_string_bytes, err);
        }
        if (st != KT_OK) {
            return st;
        }
    }
    return KT_OK;
}

/* Required event string: present, non-empty, at most max bytes. */
static kt_status
check_event_str(size_t idx, const char *field, const char *s, size_t max, kt_err *err)
{
    if (s == NULL || s[0] == '\0') {
        return kt_err_set(err, KT_EPROTO, "events.events[%zu].%s: missing", idx, field);
    }
    if (strnlen(s, max + 1) > max) {
        return kt_err_set(err, KT_ETOOBIG, "events.events[%zu].%s: longer than %zu bytes", idx,
                          field, max);
    }
    return KT_OK;
}

static kt_status validate_events(const sync_event_batch *b, const sync_limits *l, kt_err *err)
{
    if (b->stream != SYNC_STREAM_UP && b->stream != SYNC_STREAM_DOWN) {
        return kt_err_set(err, KT_EPROTO, "events.stream: %s (%d) is not an event stream",
                          sync_msg_stream_str(b->stream), (int)b->stream);
    }
    if (b->stream == SYNC_STREAM_UP && (b->incarnation == NULL || b->incarnation[0] == '\0')) {
        return kt_err_set(err, KT_EPROTO, "events.incarnation: missing on an up batch");
    }
    kt_status st = check_str("events.incarnation", b->incarnation, l->max_string_bytes, err);
    if (st != KT_OK) {
        return st;
    }
    if (b->first_seq == 0) {
        return kt_err_set(err, KT_EPROTO, "events.first_seq: 0 (sequences start at 1)");
    }
    if (b->n_events == 0) {
        return kt_err_set(err, KT_EPROTO, "events.events: empty batch");
    }
    if (b->n_events > l->max_events) {
        return kt_err_set(err, KT_ETOOBIG, "events.events: %zu over cap %zu", b->n_events,
                          l->max_events);
    }
    if (b->events == NULL) {
        return kt_err_set(err, KT_EPROTO, "events.events: %zu but no array", b->n_events);
    }
    if ((uint64_t)(b->n_events - 1) > UINT64_MAX - b->first_seq) {
        return kt_err_set(err, KT_EPROTO, "events.first_seq: %llu + %zu events overflows",
                          (unsigned long long)b->first_seq, b->n_events);
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const sync_event *ev = &b->events[i];
        st = check_event_str(i, "id", ev->id, l->max_string_bytes, err);
        if (st == KT_OK) {
            st = check_event_str(i, "type", ev->type, l->max_string_bytes, err);
        }
        if (st == KT_OK) {
            st = check_event_str(i, "source", ev->source, l->max_string_bytes, err);
        }
        if (st == KT_OK) {
            st = check_str("events.events[].subject", ev->subject, l->max_string_bytes, err);
        }
        if (st == KT_OK) {
            st = check_str("events.events[].datacontenttype", ev->datacontenttype,
                           l->max_string_bytes, err);
        }
        if (st != KT_OK) {
            return st;
        }
        if (ev->data_len > l->max_event_data_bytes) {
            return kt_err_set(err, KT_ETOOBIG,
                              "events.events[%zu].data (%s): %zu bytes over cap %zu", i, ev->id,
                              ev->data_len, l->max_event_data_bytes);
        }
        if (ev->data_len > 0 && ev->data == NULL) {
            return kt_err_set(err, KT_EPROTO, "events.events[%zu].data (%s): %zu bytes but NULL", i,
                              ev->id, ev->data_len);
        }
    }
    return KT_OK;
}

kt_status sync_msg_validate(const sync_msg *m, const sync_limits *lim, kt_err *err)
{
    sync_limits l;
    sync_msg_limits_resolve(&l, lim);
    switch (m->type) {
    case SYNC_MSG_HELLO:
        return validate_hello(&m->u.hello, &l, err);
    case SYNC_MSG_WELCOME: {
        const sync_welcome *w = &m->u.welcome;
        if (w->proto == 0) {
            return kt_err_set(err, KT_EPROTO, "welcome.proto: 0 is not a version");
        }
        if (w->hub_id == NULL || w->hub_id[0] == '\0') {
            return kt_err_set(err, KT_EPROTO, "welcome.hub_id: missing");
        }
        if (w->mode < SYNC_MODE_UP_TO_DATE || w->mode > SYNC_MODE_SNAPSHOT) {
            return kt_err_set(err, KT_EPROTO, "welcome.mode: invalid value %d", (int)w->mode);
        }
        return check_str("welcome.hub_id", w->hub_id, l.max_string_bytes, err);
    }
    case SYNC_MSG_REJECT:
        if (m->u.reject.code < SYNC_REJECT_UNAUTHENTICATED ||
            m->u.reject.code > SYNC_REJECT_DUPLICATE) {
            return kt_err_set(err, KT_EPROTO, "reject.code: invalid value %d",
                              (int)m->u.reject.code);
        }
        return check_str("reject.message", m->u.reject.message, l.max_string_bytes, err);
    case SYNC_MSG_SNAPSHOT:
        return check_objects("snapshot.objects", m->u.snapshot.objects, m->u.snapshot.n_objects,
                             false, &l, err);
    case SYNC_MSG_DELTA:
        if (m->u.delta.to_revision < m->u.delta.from_revision) {
            return kt_err_set(err, KT_EPROTO, "delta.to_revision: %llu before from_revision %llu",
                              (unsigned long long)m->u.delta.to_revision,
                              (unsigned long long)m->u.delta.from_revision);
        }
        return check_objects("delta.objects", m->u.delta.objects, m->u.delta.n_objects, true, &l,
                             err);
    case SYNC_MSG_PLACEMENT:
        return validate_placement(&m->u.placement, &l, err);
    case SYNC_MSG_ACK:
        if (m->u.ack.stream < SYNC_STREAM_GRAPH || m->u.ack.stream > SYNC_STREAM_DOWN) {
            return kt_err_set(err, KT_EPROTO, "ack.stream: invalid value %d", (int)m->u.ack.stream);
        }
        return KT_OK;
    case SYNC_MSG_HEARTBEAT:
    case SYNC_MSG_CAPACITY:
        return KT_OK;
    case SYNC_MSG_EVENTS:
        return validate_events(&m->u.events, &l, err);
    case SYNC_MSG_NONE:
        break;
    }
    return kt_err_set(err, KT_EPROTO, "envelope: no body");
}

/* ---- wire pre-scan --------------------------------------------------------- */

typedef struct wire {
    const uint8_t *p;
    const uint8_t *end;
} wire;

static bool wire_varint(wire *w, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (w->p >= w->end) {
            return false;
        }
        uint8_t b = *w->p++;
        r |= (uint64_t)(b & 0x7fu) << shift;
        if ((b & 0x80u) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Skip one field value of wire type wt; for length-delimited, return it in sub. */
static bool wire_skip(wire *w, unsigned wt, wire *sub)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return wire_varint(w, &v);
    case 1:
        if (w->end - w->p < 8) {
            return false;
        }
        w->p += 8;
        return true;
    case 5:
        if (w->end - w->p < 4) {
            return false;
        }
        w->p += 4;
        return true;
    case 2:
        if (!wire_varint(w, &v) || v > (uint64_t)(w->end - w->p)) {
            return false;
        }
        if (sub != NULL) {
            sub->p = w->p;
            sub->end = w->p + v;
        }
        w->p += v;
        return true;
    default: /* groups (3, 4) are not used by this protocol */
        return false;
    }
}

/* Count the fields number `field` in a message body; false when the framing is broken. */
static bool wire_count(wire w, uint32_t field, size_t *count)
{
    while (w.p < w.end) {
        uint64_t key;
        if (!wire_varint(&w, &key) || (key >> 3) == 0) {
            return false;
        }
        if ((key >> 3) == field) {
            (*count)++;
        }
        if (!wire_skip(&w, (unsigned)(key & 7u), NULL)) {
            return false;
        }
    }
    return true;
}

static kt_status prescan(const uint8_t *buf, size_t len, const sync_limits *l, kt_err *err)
{
    wire w = { buf, buf + len };
    size_t n_objects = 0;
    size_t n_ifaces = 0;
    size_t n_events = 0;
    while (w.p < w.end) {
        size_t at = (size_t)(w.p - buf);
        uint64_t key;
        if (!wire_varint(&w, &key) || (key >> 3) == 0) {
            return kt_err_set(err, KT_EPROTO, "envelope: bad field key at byte %zu", at);
        }
        uint64_t field = key >> 3;
        unsigned wt = (unsigned)(key & 7u);
        wire sub = { NULL, NULL };
        if (!wire_skip(&w, wt, &sub)) {
            return kt_err_set(err, KT_EPROTO, "envelope: field %llu truncated at byte %zu",
                              (unsigned long long)field, at);
        }
        bool ok = true;
        if (wt == 2 && field == SYNC_MSG_SNAPSHOT) {
            ok = wire_count(sub, 4, &n_objects);
        } else if (wt == 2 && field == SYNC_MSG_DELTA) {
            ok = wire_count(sub, 3, &n_objects);
        } else if (wt == 2 && field == SYNC_MSG_PLACEMENT) {
            ok = wire_count(sub, 2, &n_ifaces);
        } else if (wt == 2 && field == SYNC_MSG_EVENTS) {
            ok = wire_count(sub, 4, &n_events);
        }
        if (!ok) {
            return kt_err_set(err, KT_EPROTO, "%s: malformed body at byte %zu",
                              sync_msg_type_str((sync_msg_type)field), at);
        }
    }
    if (n_objects > l->max_objects) {
        return kt_err_set(err, KT_ETOOBIG, "objects: %zu over cap %zu", n_objects, l->max_objects);
    }
    if (n_ifaces > l->max_interfaces) {
        return kt_err_set(err, KT_ETOOBIG, "placement.interfaces: %zu over cap %zu", n_ifaces,
                          l->max_interfaces);
    }
    if (n_events > l->max_events) {
        return kt_err_set(err, KT_ETOOBIG, "events.events: %zu over cap %zu", n_events,
                          l->max_events);
    }
    return KT_OK;
}

/* ---- decode ------------------------------------------------------------------ */

typedef struct pb_arena {
    ProtobufCAllocator base;
    kt_arena *arena;
    bool failed;
} pb_arena;

static void *pb_arena_alloc(void *data, size_t size)
{
    pb_arena *a = data;
    void *p = kt_arena_try_alloc(a->arena, size);
    if (p == NULL) {
        a->failed = true;
    }
    return p;
}

static void pb_arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* the arena goes as a whole */
}

static void conv_capacity(sync_capacity *out, const Ktwin__V1__Capacity *c)
{
    out->has_cpu_millis = c->has_cpu_millis != 0;
    out->cpu_millis = c->cpu_millis;
    out->has_memory_bytes = c->has_memory_bytes != 0;
    out->memory_bytes = c->memory_bytes;
}

static kt_status conv_objects(const sync_object **out,
                              size_t *n_out,
                              Ktwin__V1__Object **in,
                              size_t n,
                              kt_arena *arena,
                              kt_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (n == 0) {
        return KT_OK;
    }
    sync_object *objs = kt_arena_try_alloc(arena, n * sizeof *objs);
    if (objs == NULL) {
        return kt_err_set(err, KT_ENOMEM, "objects: %zu entries", n);
    }
    for (size_t i = 0; i < n; i++) {
        const Ktwin__V1__Object *o = in[i];
        sync_object *d = &objs[i];
        memset(d, 0, sizeof *d);
        d->kind = (sync_kind)o->kind;
        d->name = o->name;
        d->deleted = o->has_deleted && o->deleted;
        d->revision = o->has_revision ? o->revision : 0;
        if (o->has_body) {
            /* Copy to add a NUL, so the JSON body can be used as a C string. */
            uint8_t *b = kt_arena_try_alloc(arena, o->body.len + 1);
            if (b == NULL) {
                return kt_err_set(err, KT_ENOMEM, "objects[%zu].body: %zu bytes", i, o->body.len);
            }
            if (o->body.len > 0) {
                memcpy(b, o->body.data, o->body.len);
            }
            b[o->body.len] = '\0';
            d->body = b;
            d->body_len = o->body.len;
        }
    }
    *out = objs;
    *n_out = n;
    return KT_OK;
}

/* Copy n bytes plus a NUL into the arena (so JSON data/bodies read as C strings). */
static const uint8_t *arena_dup_nul(kt_arena *arena, const uint8_t *p, size_t n)
{
    uint8_t *b = kt_arena_try_alloc(arena, n + 1);
    if (b == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(b, p, n);
    }
    b[n] = '\0';
    return b;
}

static kt_status
conv_events(sync_event_batch *out, const Ktwin__V1__EventBatch *in, kt_arena *arena, kt_err *err)
{
    out->stream = (sync_stream)in->stream;
    out->incarnation = in->incarnation;
    out->first_seq = in->first_seq;
    out->events = NULL;
    out->n_events = 0;
    if (in->n_events == 0) {
        return KT_OK;
    }
    sync_event *evs = kt_arena_try_alloc(arena, in->n_events * sizeof *evs);
    if (evs == NULL) {
        return kt_err_set(err, KT_ENOMEM, "events: %zu entries", in->n_events);
    }
    for (size_t i = 0; i < in->n_events; i++) {
        const Ktwin__V1__Event *e = in->events[i];
        sync_event *d = &evs[i];
        memset(d, 0, sizeof *d);
        d->id = e->id;
        d->type = e->type;
        d->source = e->source;
        d->subject = e->subject;
        d->time_ms = e->has_time_ms ? e->time_ms : 0;
        d->depth = e->has_depth ? e->depth : 0;
        d->datacontenttype = e->datacontenttype;
        size_t dl = e->has_data ? e->data.len : 0;
        d->data = arena_dup_nul(arena, e->has_data ? e->data.data : NULL, dl);
        if (d->data == NULL) {
            return kt_err_set(err, KT_ENOMEM, "events[%zu].data: %zu bytes", i, dl);
        }
        d->data_len = dl;
    }
    out->events = evs;
    out->n_events = in->n_events;
    return KT_OK;
}

static kt_status
conv_envelope(sync_msg *m, const Ktwin__V1__Envelope *e, kt_arena *arena, kt_err *err)
{
    memset(m, 0, sizeof *m);
    switch (e->body_case) {
    case KTWIN__V1__ENVELOPE__BODY_HELLO: {
        const Ktwin__V1__Hello *h = e->hello;
        sync_hello *d = &m->u.hello;
        m->type = SYNC_MSG_HELLO;
        d->proto_min = h->proto_min;
        d->proto_max = h->proto_max;
        d->site = h->site;
        d->token = h->token;
        d->agent_version = h->agent_version;
        d->graph_revision = h->has_graph_revision ? h->graph_revision : 0;
        d->placement_revision = h->has_placement_revision ? h->placement_revision : 0;
        if (h->capacity != NULL) {
            d->has_capacity = true;
            conv_capacity(&d->capacity, h->capacity);
        }
        d->incarnation = h->incarnation;
        d->has_last_acked_down_seq = h->has_last_acked_down_seq != 0;
        d->last_acked_down_seq = h->last_acked_down_seq;
        d->has_first_unacked_up_seq = h->has_first_unacked_up_seq != 0;
        d->first_unacked_up_seq = h->first_unacked_up_seq;
        return KT_OK;
    }
    case KTWIN__V1__ENVELOPE__BODY_WELCOME: {
        const Ktwin__V1__Welcome *w = e->welcome;
        m->type = SYNC_MSG_WELCOME;
        m->u.welcome.proto = w->proto;
        m->u.welcome.hub_id = w->hub_id;
        m->u.welcome.graph_revision = w->graph_revision;
        m->u.welcome.mode = (sync_mode)w->mode;
        m->u.welcome.heartbeat_ms = w->has_heartbeat_ms ? w->heartbeat_ms : 0;
        m->u.welcome.window_bytes = w->has_window_bytes ? w->window_bytes : 0;
        m->u.welcome.down_next_seq = w->has_down_next_seq ? w->down_next_seq : 0;
        return KT_OK;
    }
    case KTWIN__V1__ENVELOPE__BODY_REJECT:
        m->type = SYNC_MSG_REJECT;
        m->u.reject.code = (sync_reject_code)e->reject->code;
        m->u.reject.message = e->reject->message;
        m->u.reject.retry_after_ms = e->reject->has_retry_after_ms ? e->reject->retry_after_ms : 0;
        return KT_OK;
    case KTWIN__V1__ENVELOPE__BODY_SNAPSHOT:
        m->type = SYNC_MSG_SNAPSHOT;
        m->u.snapshot.revision = e->snapshot->revision;
        m->u.snapshot.index = e->snapshot->index;
        m->u.snapshot.last = e->snapshot->last != 0;
        return conv_objects(&m->u.snapshot.objects, &m->u.snapshot.n_objects, e->snapshot->objects,
                            e->snapshot->n_objects, arena, err);
    case KTWIN__V1__ENVELOPE__BODY_DELTA:
        m->type = SYNC_MSG_DELTA;
        m->u.delta.from_revision = e->delta->from_revision;
        m->u.delta.to_revision = e->delta->to_revision;
        return conv_objects(&m->u.delta.objects, &m->u.delta.n_objects, e->delta->objects,
                            e->delta->n_objects, arena, err);
    case KTWIN__V1__ENVELOPE__BODY_PLACEMENT: {
        const Ktwin__V1__PlacementUpdate *p = e->placement;
        m->type = SYNC_MSG_PLACEMENT;
        m->u.placement.revision = p->revision;
        if (p->n_interfaces > 0) {
            sync_iface_placement *ifs = kt_arena_try_alloc(arena, p->n_interfaces * sizeof *ifs);
            if (ifs == NULL) {
                return kt_err_set(err, KT_ENOMEM, "placement.interfaces: %zu entries",
                                  p->n_interfaces);
            }
            for (size_t i = 0; i < p->n_interfaces; i++) {
                const Ktwin__V1__InterfacePlacement *s = p->interfaces[i];
                ifs[i].interface = s->interface;
                ifs[i].where = (sync_where)s->where;
                ifs[i].site = s->site;
                ifs[i].rule = s->rule;
                ifs[i].reason = s->reason;
            }
            m->u.placement.interfaces = ifs;
            m->u.placement.n_interfaces = p->n_interfaces;
        }
        return KT_OK;
    }
    case KTWIN__V1__ENVELOPE__BODY_ACK:
        m->type = SYNC_MSG_ACK;
        m->u.ack.stream = (sync_stream)e->ack->stream;
        m->u.ack.seq = e->ack->seq;
        return KT_OK;
    case KTWIN__V1__ENVELOPE__BODY_HEARTBEAT:
        m->type = SYNC_MSG_HEARTBEAT;
        m->u.heartbeat.sent_ms = e->heartbeat->sent_ms;
        return KT_OK;
    case KTWIN__V1__ENVELOPE__BODY_CAPACITY:
        m->type = SYNC_MSG_CAPACITY;
        conv_capacity(&m->u.capacity.capacity, e->capacity->capacity);
        return KT_OK;
    case KTWIN__V1__ENVELOPE__BODY_EVENTS:
        m->type = SYNC_MSG_EVENTS;
        return conv_events(&m->u.events, e->events, arena, err);
    default:
        break;
    }
    return kt_err_set(err, KT_EPROTO, "envelope: no known body");
}

/* Steps 1 and 2 of the DESIGN note: nothing is allocated. */
static kt_status precheck(const uint8_t *buf, size_t len, const sync_limits *l, kt_err *err)
{
    if (len > l->max_message_bytes) {
        return kt_err_set(err, KT_ETOOBIG, "message: %zu bytes over cap %zu", len,
                          l->max_message_bytes);
    }
    if (len > 0 && buf == NULL) {
        return kt_err_set(err, KT_EINVAL, "message: NULL buffer");
    }
    return prescan(buf, len, l, err);
}

/* Step 3, after precheck(): everything the message points to goes into a. */
static kt_status decode_into(
    sync_msg *m, kt_arena *a, const uint8_t *buf, size_t len, const sync_limits *l, kt_err *err)
{
    pb_arena pa = { { pb_arena_alloc, pb_arena_free, NULL }, a, false };
    pa.base.allocator_data = &pa;
    Ktwin__V1__Envelope *env = ktwin__v1__envelope__unpack(&pa.base, len, buf);
    if (env == NULL) {
        if (pa.failed) {
            return kt_err_set(err, KT_ENOMEM, "message: unpacking %zu bytes", len);
        }
        return kt_err_set(err, KT_EPROTO,
                          "envelope: not a valid message (truncated, wrong wire type or missing "
                          "required field)");
    }
    kt_status st = conv_envelope(m, env, a, err);
    if (st != KT_OK) {
        return st;
    }
    return sync_msg_validate(m, l, err);
}

kt_status
sync_msg_decode(sync_msg **out, const uint8_t *buf, size_t len, const sync_limits *lim, kt_err *err)
{
    *out = NULL;
    sync_limits l;
    sync_msg_limits_resolve(&l, lim);
    kt_status st = precheck(buf, len, &l, err);
    if (st != KT_OK) {
        return st;
    }
    msg_owned *own = kt_malloc(sizeof *own);
    if (own == NULL) {
        return kt_err_set(err, KT_ENOMEM, "message: %zu bytes", len);
    }
    /* Small blocks for small messages; big arrays get one-off blocks anyway. */
    kt_arena_init(&own->arena, len < 2048 ? 4096 : 64u * 1024u);
    st = decode_into(&own->msg, &own->arena, buf, len, &l, err);
    if (st != KT_OK) {
        kt_arena_fini(&own->arena);
        kt_free(own);
        return st;
    }
    *out = &own->msg;
    return KT_OK;
}

/* ---- reusable decoder (sessions) --------------------------------------------- */

#define DECODER_MIN_BLOCK (16u * 1024u)

static size_t pow2_at_least(size_t n)
{
    size_t p = DECODER_MIN_BLOCK;
    while (p < n && p <= SIZE_MAX / 2) {
        p *= 2;
    }
    return p;
}

void sync_msg__decoder_init(sync_msg__decoder *d)
{
    memset(d, 0, sizeof *d);
    d->_block = DECODER_MIN_BLOCK;
    kt_arena_init(&d->_arena, d->_block);
}

void sync_msg__decoder_fini(sync_msg__decoder *d)
{
    kt_arena_fini(&d->_arena);
    memset(d, 0, sizeof *d);
}

void sync_msg__decoder_trim(sync_msg__decoder *d)
{
    if (d->_block <= SYNC_MSG__DECODER_KEEP_BYTES) {
        return;
    }
    kt_arena_fini(&d->_arena);
    memset(&d->_msg, 0, sizeof d->_msg);
    d->_block = DECODER_MIN_BLOCK;
    kt_arena_init(&d->_arena, d->_block);
}

kt_status sync_msg__decoder_decode(const sync_msg **out,
                                   sync_msg__decoder *d,
                                   const uint8_t *buf,
                                   size_t len,
                                   const sync_limits *lim,
                                   kt_err *err)
{
    *out = NULL;
    sync_limits l;
    sync_msg_limits_resolve(&l, lim);
    /*
     * One block that holds a whole message is reused from message to
     * message: no malloc/free per message, which on a snapshot stream was
     * most of the decode time (heap trimming and page faults). The block
     * grows to what the largest message so far needed.
     */
    kt_status st = precheck(buf, len, &l, err);
    if (st != KT_OK) {
        return st;
    }
    size_t want = pow2_at_least(2 * len);
    if (want > d->_block) {
        kt_arena_fini(&d->_arena);
        d->_block = want;
        kt_arena_init(&d->_arena, d->_block);
    } else {
        kt_arena_reset(&d->_arena);
    }
    memset(&d->_msg, 0, sizeof d->_msg);
    st = decode_into(&d->_msg, &d->_arena, buf, len, &l, err);
    if (d->_arena.total_bytes > d->_block + 4096u) {
        /* This message needed more than one block: size the block for it next time. */
        size_t grow = pow2_at_least(d->_arena.total_bytes);
        kt_arena_fini(&d->_arena);
        d->_block = grow;
        kt_arena_init(&d->_arena, d->_block);
        if (st == KT_OK) {
            /* The message lived in the blocks just freed: decode it again. */
            memset(&d->_msg, 0, sizeof d->_msg);
            st = decode_into(&d->_msg, &d->_arena, buf, len, &l, err);
        }
    }
    if (st == KT_OK) {
        *out = &d->_msg;
    }
    return st;
}

void sync_msg_free(sync_msg *m)
{
    if (m == NULL) {
        return;
    }
    msg_owned *own = (msg_owned *)(void *)m;
    kt_arena_fini(&own->arena);
    kt_free(own);
}

/* ---- encode ------------------------------------------------------------------ */

typedef struct buf_sink {
    ProtobufCBuffer base;
    kt_buf *b;
    kt_status st;
} buf_sink;

static void buf_sink_append(ProtobufCBuffer *pb, size_t len, const uint8_t *data)
{
    buf_sink *s = (buf_sink *)(void *)pb;
    if (s->st == KT_OK) {
        s->st = kt_buf_append(s->b, data, len);
    }
}

static void buf_truncate(kt_buf *b, size_t len)
{
    b->len = len;
    if (b->data != NULL) {
        b->data[len] = '\0';
    }
}

/* Check room for need more bytes in out; KT_ETOOBIG leaves it unchanged. */
static kt_status buf_room(const kt_buf *out, size_t need, kt_err *err)
{
    if (need > out->max || out->len > out->max - need) {
        return kt_err_set(err, KT_ETOOBIG, "encode: %zu bytes do not fit (cap %zu, used %zu)", need,
                          out->max, out->len);
    }
    return KT_OK;
}

static kt_status pack_into(kt_buf *out, const ProtobufCMessage *pm, kt_err *err)
{
    size_t need = protobuf_c_message_get_packed_size(pm);
    kt_status st = buf_room(out, need, err);
    if (st != KT_OK) {
        return st;
    }
    size_t old = out->len;
    buf_sink sink = { { buf_sink_append }, out, KT_OK };
    (void)protobuf_c_message_pack_to_buffer(pm, &sink.base);
    if (sink.st != KT_OK) {
        buf_truncate(out, old);
        return kt_err_set(err, sink.st, "encode: %zu bytes", need);
    }
    return KT_OK;
}

static void fill_object(Ktwin__V1__Object *po, const sync_object *o)
{
    ktwin__v1__object__init(po);
    po->kind = (Ktwin__V1__Kind)o->kind;
    po->name = (char *)(uintptr_t)o->name; /* protobuf-c has no const; pack only reads */
    if (o->body != NULL) {
        po->has_body = 1;
        po->body.len = o->body_len;
        po->body.data = (uint8_t *)(uintptr_t)o->body;
    }
    if (o->deleted) {
        po->has_deleted = 1;
        po->deleted = 1;
    }
    if (o->revision != 0) {
        po->has_revision = 1;
        po->revision = o->revision;
    }
}

static void fill_capacity(Ktwin__V1__Capacity *pc, const sync_capacity *c)
{
    ktwin__v1__capacity__init(pc);
    pc->has_cpu_millis = c->has_cpu_millis;
    pc->cpu_millis = c->cpu_millis;
    pc->has_memory_bytes = c->has_memory_bytes;
    pc->memory_bytes = c->memory_bytes;
}

static kt_status
fill_objects(Ktwin__V1__Object ***out, const sync_object *objs, size_t n, kt_arena *a, kt_err *err)
{
    *out = NULL;
    if (n == 0) {
        return KT_OK;
    }
    if (objs == NULL) {
        return kt_err_set(err, KT_EINVAL, "encode: %zu objects but no array", n);
    }
    Ktwin__V1__Object **ptrs = kt_arena_try_alloc(a, n * sizeof *ptrs);
    Ktwin__V1__Object *pos = kt_arena_try_alloc(a, n * sizeof *pos);
    if (ptrs == NULL || pos == NULL) {
        return kt_err_set(err, KT_ENOMEM, "encode: %zu objects", n);
    }
    for (size_t i = 0; i < n; i++) {
        if (objs[i].name == NULL) {
            return kt_err_set(err, KT_EINVAL, "encode: objects[%zu].name is NULL", i);
        }
        fill_object(&pos[i], &objs[i]);
        ptrs[i] = &pos[i];
    }
    *out = ptrs;
    return KT_OK;
}

static void fill_event(Ktwin__V1__Event *pe, const sync_event *ev)
{
    ktwin__v1__event__init(pe);
    pe->id = (char *)(uintptr_t)ev->id;
    pe->type = (char *)(uintptr_t)ev->type;
    pe->source = (char *)(uintptr_t)ev->source;
    pe->subject = (char *)(uintptr_t)ev->subject;
    if (ev->time_ms != 0) {
        pe->has_time_ms = 1;
        pe->time_ms = ev->time_ms;
    }
    if (ev->depth != 0) {
        pe->has_depth = 1;
        pe->depth = ev->depth;
    }
    pe->datacontenttype = (char *)(uintptr_t)ev->datacontenttype;
    if (ev->data_len > 0) {
        pe->has_data = 1;
        pe->data.len = ev->data_len;
        pe->data.data = (uint8_t *)(uintptr_t)ev->data;
    }
}

static kt_status
fill_events(Ktwin__V1__EventBatch *pb, const sync_event_batch *b, kt_arena *a, kt_err *err)
{
    ktwin__v1__event_batch__init(pb);
    pb->stream = (Ktwin__V1__Stream)b->stream;
    pb->incarnation = (char *)(uintptr_t)b->incarnation;
    pb->first_seq = b->first_seq;
    if (b->n_events == 0) {
        return KT_OK;
    }
    if (b->events == NULL) {
        return kt_err_set(err, KT_EINVAL, "encode: %zu events but no array", b->n_events);
    }
    Ktwin__V1__Event **ptrs = kt_arena_try_alloc(a, b->n_events * sizeof *ptrs);
    Ktwin__V1__Event *pes = kt_arena_try_alloc(a, b->n_events * sizeof *pes);
    if (ptrs == NULL || pes == NULL) {
        return kt_err_set(err, KT_ENOMEM, "encode: %zu events", b->n_events);
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const sync_event *ev = &b->events[i];
        if (ev->id == NULL || ev->type == NULL || ev->source == NULL) {
            return kt_err_set(err, KT_EINVAL, "encode: events[%zu] lacks id, type or source", i);
        }
        if (ev->data_len > 0 && ev->data == NULL) {
            return kt_err_set(err, KT_EINVAL, "encode: events[%zu].data is NULL", i);
        }
        fill_event(&pes[i], ev);
        ptrs[i] = &pes[i];
    }
    pb->events = ptrs;
    pb->n_events = b->n_events;
    return KT_OK;
}

static kt_status need_str(const char *what, const char *s, kt_err *err)
{
    if (s == NULL) {
        return kt_err_set(err, KT_EINVAL, "encode: %s is NULL", what);
    }
    return KT_OK;
}

kt_status sync_msg_encode(const sync_msg *m, kt_buf *out, kt_err *err)
{
    Ktwin__V1__Envelope env;
    ktwin__v1__envelope__init(&env);
    kt_arena a;
    kt_arena_init(&a, 4096);
    kt_status st = KT_OK;

    Ktwin__V1__Hello hello;
    Ktwin__V1__Capacity cap;
    Ktwin__V1__Welcome welcome;
    Ktwin__V1__Reject reject;
    Ktwin__V1__SnapshotChunk chunk;
    Ktwin__V1__Delta delta;
    Ktwin__V1__PlacementUpdate pu;
    Ktwin__V1__Ack ack;
    Ktwin__V1__Heartbeat hb;
    Ktwin__V1__CapacityReport cr;
    Ktwin__V1__EventBatch eb;

    switch (m->type) {
    case SYNC_MSG_HELLO: {
        const sync_hello *h = &m->u.hello;
        st = need_str("hello.site", h->site, err);
        if (st == KT_OK) {
            st = need_str("hello.token", h->token, err);
        }
        if (st != KT_OK) {
            goto done;
        }
        ktwin__v1__hello__init(&hello);
        hello.proto_min = h->proto_min;
        hello.proto_max = h->proto_max;
        hello.site = (char *)(uintptr_t)h->site;
        hello.token = (char *)(uintptr_t)h->token;
        hello.agent_version = (char *)(uintptr_t)h->agent_version;
        hello.has_graph_revision = 1;
        hello.graph_revision = h->graph_revision;
        hello.has_placement_revision = 1;
        hello.placement_revision = h->placement_revision;
        if (h->has_capacity) {
            fill_capacity(&cap, &h->capacity);
            hello.capacity = &cap;
        }
        hello.incarnation = (char *)(uintptr_t)h->incarnation;
        hello.has_last_acked_down_seq = h->has_last_acked_down_seq;
        hello.last_acked_down_seq = h->last_acked_down_seq;
        hello.has_first_unacked_up_seq = h->has_first_unacked_up_seq;
        hello.first_unacked_up_seq = h->first_unacked_up_seq;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_HELLO;
        env.hello = &hello;
        break;
    }
    case SYNC_MSG_WELCOME: {
        const sync_welcome *w = &m->u.welcome;
        st = need_str("welcome.hub_id", w->hub_id, err);
        if (st != KT_OK) {
            goto done;
        }
        ktwin__v1__welcome__init(&welcome);
        welcome.proto = w->proto;
        welcome.hub_id = (char *)(uintptr_t)w->hub_id;
        welcome.graph_revision = w->graph_revision;
        welcome.mode = (Ktwin__V1__SyncMode)w->mode;
        welcome.has_heartbeat_ms = w->heartbeat_ms != 0;
        welcome.heartbeat_ms = w->heartbeat_ms;
        welcome.has_window_bytes = w->window_bytes != 0;
        welcome.window_bytes = w->window_bytes;
        welcome.has_down_next_seq = w->down_next_seq != 0;
        welcome.down_next_seq = w->down_next_seq;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_WELCOME;
        env.welcome = &welcome;
        break;
    }
    case SYNC_MSG_REJECT:
        ktwin__v1__reject__init(&reject);
        reject.code = (Ktwin__V1__RejectCode)m->u.reject.code;
        reject.message = (char *)(uintptr_t)m->u.reject.message;
        reject.has_retry_after_ms = m->u.reject.retry_after_ms != 0;
        reject.retry_after_ms = m->u.reject.retry_after_ms;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_REJECT;
        env.reject = &reject;
        break;
    case SYNC_MSG_SNAPSHOT:
        ktwin__v1__snapshot_chunk__init(&chunk);
        chunk.revision = m->u.snapshot.revision;
        chunk.index = m->u.snapshot.index;
        chunk.last = m->u.snapshot.last;
        st = fill_objects(&chunk.objects, m->u.snapshot.objects, m->u.snapshot.n_objects, &a, err);
        if (st != KT_OK) {
            goto done;
        }
        chunk.n_objects = m->u.snapshot.n_objects;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_SNAPSHOT;
        env.snapshot = &chunk;
        break;
    case SYNC_MSG_DELTA:
        ktwin__v1__delta__init(&delta);
        delta.from_revision = m->u.delta.from_revision;
        delta.to_revision = m->u.delta.to_revision;
        st = fill_objects(&delta.objects, m->u.delta.objects, m->u.delta.n_objects, &a, err);
        if (st != KT_OK) {
            goto done;
        }
        delta.n_objects = m->u.delta.n_objects;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_DELTA;
        env.delta = &delta;
        break;
    case SYNC_MSG_PLACEMENT: {
        const sync_placement *p = &m->u.placement;
        ktwin__v1__placement_update__init(&pu);
        pu.revision = p->revision;
        if (p->n_interfaces > 0) {
            if (p->interfaces == NULL) {
                st = kt_err_set(err, KT_EINVAL, "encode: placement.interfaces is NULL");
                goto done;
            }
            Ktwin__V1__InterfacePlacement **ptrs =
                kt_arena_try_alloc(&a, p->n_interfaces * sizeof *ptrs);
            Ktwin__V1__InterfacePlacement *ips =
                kt_arena_try_alloc(&a, p->n_interfaces * sizeof *ips);
            if (ptrs == NULL || ips == NULL) {
                st = kt_err_set(err, KT_ENOMEM, "encode: %zu interfaces", p->n_interfaces);
                goto done;
            }
            for (size_t i = 0; i < p->n_interfaces; i++) {
                const sync_iface_placement *s = &p->interfaces[i];
                if (s->interface == NULL) {
                    st = kt_err_set(err, KT_EINVAL, "encode: placement.interfaces[%zu] is NULL", i);
                    goto done;
                }
                ktwin__v1__interface_placement__init(&ips[i]);
                ips[i].interface = (char *)(uintptr_t)s->interface;
                ips[i].where = (Ktwin__V1__Where)s->where;
                ips[i].site = (char *)(uintptr_t)s->site;
                ips[i].rule = (char *)(uintptr_t)s->rule;
                ips[i].reason = (char *)(uintptr_t)s->reason;
                ptrs[i] = &ips[i];
            }
            pu.interfaces = ptrs;
            pu.n_interfaces = p->n_interfaces;
        }
        env.body_case = KTWIN__V1__ENVELOPE__BODY_PLACEMENT;
        env.placement = &pu;
        break;
    }
    case SYNC_MSG_ACK:
        ktwin__v1__ack__init(&ack);
        ack.stream = (Ktwin__V1__Stream)m->u.ack.stream;
        ack.seq = m->u.ack.seq;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        break;
    case SYNC_MSG_HEARTBEAT:
        ktwin__v1__heartbeat__init(&hb);
        hb.sent_ms = m->u.heartbeat.sent_ms;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        break;
    case SYNC_MSG_CAPACITY:
        ktwin__v1__capacity_report__init(&cr);
        fill_capacity(&cap, &m->u.capacity.capacity);
        cr.capacity = &cap;
        env.body_case = KTWIN__V1__ENVELOPE__BODY_CAPACITY;
        env.capacity = &cr;
        break;
    case SYNC_MSG_EVENTS:
        st = fill_events(&eb, &m->u.events, &a, err);
        if (st != KT_OK) {
            goto done;
        }
        env.body_case = KTWIN__V1__ENVELOPE__BODY_EVENTS;
        env.events = &eb;
        break;
    default:
        st = kt_err_set(err, KT_EINVAL, "encode: unknown message type %d", (int)m->type);
        goto done;
    }
    st = pack_into(out, &env.base, err);
done:
    kt_arena_fini(&a);
    return st;
}

/* ---- incremental chunk encoding (server) ------------------------------------ */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80u) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80u) {
        p[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t sync_msg__object_size(const sync_object *o)
{
    Ktwin__V1__Object po;
    fill_object(&po, o);
    size_t n = ktwin__v1__object__get_packed_size(&po);
    return 1 + varint_size(n) + n;
}

kt_status sync_msg__object_append(kt_buf *objs, const sync_object *o, kt_err *err)
{
    if (o->name == NULL) {
        return kt_err_set(err, KT_EINVAL, "encode: object name is NULL");
    }
    Ktwin__V1__Object po;
    fill_object(&po, o);
    size_t n = ktwin__v1__object__get_packed_size(&po);
    uint8_t hdr[11];
    hdr[0] = 0x22; /* field 4 (objects), wire type 2 */
    size_t hl = 1 + varint_put(hdr + 1, n);
    kt_status st = buf_room(objs, hl + n, err);
    if (st != KT_OK) {
        return st;
    }
    size_t old = objs->len;
    st = kt_buf_append(objs, hdr, hl);
    if (st != KT_OK) {
        return kt_err_set(err, st, "encode: object header");
    }
    st = pack_into(objs, &po.base, err);
    if (st != KT_OK) {
        buf_truncate(objs, old);
    }
    return st;
}

size_t sync_msg__chunk_overhead(void)
{
    /* envelope tag + len(10) + revision tag+10 + index tag+5 + last tag+1 */
    return 1 + 10 + 11 + 6 + 2;
}

kt_status sync_msg__chunk_append(kt_buf *out,
                                 uint64_t revision,
                                 uint32_t index,
                                 bool last,
                                 const uint8_t *objs,
                                 size_t objs_len,
                                 kt_err *err)
{
    uint8_t inner[32];
    size_t il = 0;
    inner[il++] = 0x08; /* revision */
    il += varint_put(inner + il, revision);
    inner[il++] = 0x10; /* index */
    il += varint_put(inner + il, index);
    inner[il++] = 0x18; /* last */
    inner[il++] = last ? 1 : 0;
    size_t body = il + objs_len;
    uint8_t hdr[11];
    hdr[0] = 0x22; /* Envelope field 4 (snapshot), wire type 2 */
    size_t hl = 1 + varint_put(hdr + 1, body);
    kt_status st = buf_room(out, hl + body, err);
    if (st != KT_OK) {
        return st;
    }
    size_t old = out->len;
    st = kt_buf_append(out, hdr, hl);
    if (st == KT_OK) {
        st = kt_buf_append(out, inner, il);
    }
    if (st == KT_OK && objs_len > 0) {
        st = kt_buf_append(out, objs, objs_len);
    }
    if (st != KT_OK) {
        buf_truncate(out, old);
        return kt_err_set(err, st, "encode: snapshot chunk of %zu bytes", body);
    }
    return KT_OK;
}

size_t sync_msg__event_size(const sync_event *ev)
{
    Ktwin__V1__Event pe;
    fill_event(&pe, ev);
    size_t n = ktwin__v1__event__get_packed_size(&pe);
    return 1 + varint_size(n) + n;
}

size_t sync_msg__batch_size(size_t events_bytes, size_t inc_len)
{
    /* stream tag+1, incarnation tag+len(10)+bytes, first_seq tag+10 */
    size_t body = 2 + 1 + 10 + inc_len + 11 + events_bytes;
    /* envelope tag + len(10) */
    return 1 + 10 + body;
}
