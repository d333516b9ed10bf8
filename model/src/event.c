/*
 * event.c — KTWIN events: types, topics, validation, owning copies, the
 * compact binary form, CloudEvents over HTTP (binary and structured mode),
 * ids and RFC 3339 times. See model/event.h for the contract.
 *
 * Invariants: every owning event is one block laid out as
 *   [model_event][id\0][source\0][time\0][datacontenttype\0][data\0]
 * (absent strings take no space), so freeing the struct frees everything.
 * Every parser of untrusted bytes (type, topic, time, binary form, HTTP
 * headers, structured JSON) checks lengths before it copies or allocates and
 * never reads past len.
 *
 * Thread: pure functions, any thread; model_event_id_new keeps a process-wide
 * random prefix (set once) and an atomic counter.
 */
#include "model/event.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kt/clock.h"
#include "kt/json.h"
#include "kt/mem.h"

/* Extra bytes a structured body may have besides its (base64) data. */
#define STRUCTURED_ENVELOPE_MAX (16u * 1024u)
#define ENC_NULL                0xFFFFFFFFu
#define ENC_HEADER_LEN          12u /* "KE", version, cls, time_ms */

const char *model_event_class_str(model_event_class cls)
{
    switch (cls) {
    case MODEL_EVENT_REAL:
        return "real";
    case MODEL_EVENT_VIRTUAL:
        return "virtual";
    case MODEL_EVENT_COMMAND:
        return "command";
    case MODEL_EVENT_STORE:
        return "store";
    default:
        return "none";
    }
}

/* ============================================================== names */

/*
 * Copy s[0..len) into out (MODEL_NAME_MAX + 1 bytes) and check it as a name.
 * what/where name the part in the message ("type: interface ...").
 */
static kt_status
take_name(char *out, const char *s, size_t len, const char *where, const char *what, kt_err *err)
{
    out[0] = '\0';
    if (len == 0) {
        return kt_err_set(err, KT_EINVAL, "%s: %s is empty", where, what);
    }
    if (len > MODEL_NAME_MAX) {
        return kt_err_set(err, KT_EINVAL, "%s: %s is longer than %d bytes", where, what,
                          MODEL_NAME_MAX);
    }
    if (memchr(s, '\0', len) != NULL) {
        return kt_err_set(err, KT_EINVAL, "%s: %s contains a NUL byte", where, what);
    }
    memcpy(out, s, len);
    out[len] = '\0';
    const char *why = model_name_check(out);
    if (why != NULL) {
        kt_status st = kt_err_set(err, KT_EINVAL, "%s: %s \"%.*s\" %s", where, what,
                                  (int)(len > 64 ? 64 : len), out, why);
        out[0] = '\0';
        return st;
    }
    return KT_OK;
}

static void lower_in_place(char *s)
{
    for (; *s != '\0'; s++) {
        *s = (char)tolower((unsigned char)*s);
    }
}

static void clear_type(model_event *ev)
{
    ev->cls = MODEL_EVENT_NONE;
    ev->iface[0] = '\0';
    ev->command[0] = '\0';
}

/* ============================================================== types */

static int word_is(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);
    return len == n && memcmp(s, w, n) == 0;
}

kt_status model_event_set_type(model_event *ev, const char *type, size_t len, kt_err *err)
{
    clear_type(ev);
    if (type == NULL) {
        return kt_err_set(err, KT_EINVAL, "type: missing");
    }
    if (len >= MODEL_EVENT_TYPE_CAP) {
        return kt_err_set(err, KT_EINVAL, "type: longer than %d bytes", MODEL_EVENT_TYPE_CAP - 1);
    }
    /* Split into at most 5 parts so that extra parts are seen. */
    const char *part[5];
    size_t plen[5];
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || type[i] == '.') {
            if (n == 5) {
                n++;
                break;
            }
            part[n] = type + start;
            plen[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n < 3 || !word_is(part[0], plen[0], "ktwin")) {
        return kt_err_set(err, KT_EINVAL,
                          "type: \"%.*s\" is not ktwin.<real|virtual|command|store>.<interface>",
                          (int)(len > 80 ? 80 : len), type);
    }
    model_event_class cls = MODEL_EVENT_NONE;
    if (word_is(part[1], plen[1], "real")) {
        cls = MODEL_EVENT_REAL;
    } else if (word_is(part[1], plen[1], "virtual")) {
        cls = MODEL_EVENT_VIRTUAL;
    } else if (word_is(part[1], plen[1], "command")) {
        cls = MODEL_EVENT_COMMAND;
    } else if (word_is(part[1], plen[1], "store")) {
        cls = MODEL_EVENT_STORE;
    } else {
        return kt_err_set(err, KT_EINVAL,
                          "type: class \"%.*s\" is not real, virtual, command or store",
                          (int)(plen[1] > 32 ? 32 : plen[1]), part[1]);
    }
    size_t want = cls == MODEL_EVENT_COMMAND ? 4 : 3;
    if (n != want) {
        return kt_err_set(err, KT_EINVAL, "type: a %s type has %zu dot-separated parts, not %s%zu",
                          model_event_class_str(cls), want, n > 5 ? "over " : "",
                          n > 5 ? (size_t)5 : n);
    }
    kt_status st = take_name(ev->iface, part[2], plen[2], "type", "interface", err);
    if (st != KT_OK) {
        clear_type(ev);
        return st;
    }
    if (cls == MODEL_EVENT_COMMAND) {
        st = take_name(ev->command, part[3], plen[3], "type", "command", err);
        if (st != KT_OK) {
            clear_type(ev);
            return st;
        }
        lower_in_place(ev->command);
    }
    ev->cls = cls;
    return KT_OK;
}

kt_status model_event_set_class(
    model_event *ev, model_event_class cls, const char *iface, const char *command, kt_err *err)
{
    clear_type(ev);
    if (cls < MODEL_EVENT_REAL || cls > MODEL_EVENT_STORE) {
        return kt_err_set(err, KT_EINVAL, "type: no event class");
    }
    if (iface == NULL) {
        return kt_err_set(err, KT_EINVAL, "type: interface is missing");
    }
    kt_status st =
        take_name(ev->iface, iface, strnlen(iface, MODEL_NAME_MAX + 1), "type", "interface", err);
    if (st != KT_OK) {
        return st;
    }
    if (cls == MODEL_EVENT_COMMAND) {
        if (command == NULL) {
            clear_type(ev);
            return kt_err_set(err, KT_EINVAL, "type: a command event needs a command name");
        }
        st = take_name(ev->command, command, strnlen(command, MODEL_NAME_MAX + 1), "type",
                       "command", err);
        if (st != KT_OK) {
            clear_type(ev);
            return st;
        }
        lower_in_place(ev->command);
    } else if (command != NULL && command[0] != '\0') {
        clear_type(ev);
        return kt_err_set(err, KT_EINVAL, "type: only command events have a command name");
    }
    ev->cls = cls;
    return KT_OK;
}

const char *model_event_type_str(const model_event *ev, char *out, size_t cap)
{
    if (cap == 0) {
        return out;
    }
    out[0] = '\0';
    if (ev->cls < MODEL_EVENT_REAL || ev->cls > MODEL_EVENT_STORE) {
        return out;
    }
    int n;
    if (ev->cls == MODEL_EVENT_COMMAND) {
        n = snprintf(out, cap, "ktwin.command.%s.%s", ev->iface, ev->command);
    } else {
        n = snprintf(out, cap, "ktwin.%s.%s", model_event_class_str(ev->cls), ev->iface);
    }
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
    }
    return out;
}

/* ============================================================== RFC 3339 */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

kt_status model_time_parse(const char *s, size_t len, uint64_t *ms_out, kt_err *err)
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (s == NULL || len < 20) {
        return kt_err_set(err, KT_EINVAL, "time: not an RFC 3339 date-time (too short)");
    }
    if (len > MODEL_EVENT_TIME_MAX) {
        return kt_err_set(err, KT_EINVAL, "time: longer than %d bytes", MODEL_EVENT_TIME_MAX);
    }
    int y, mo, d, h, mi, sec;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d)) {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": date is not YYYY-MM-DD", (int)len, s);
    }
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": no 'T' between date and time", (int)len,
                          s);
    }
    if (!digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec)) {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": time is not HH:MM:SS", (int)len, s);
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && is_leap(y) ? 1 : 0) || h > 23 || mi > 59 || sec > 60) {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": field out of range", (int)len, s);
    }
    size_t i = 19;
    int ms = 0;
    if (s[i] == '.') {
        i++;
        size_t f0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - f0 < 3) {
                ms = ms * 10 + (s[i] - '0');
            }
            i++;
        }
        if (i == f0) {
            return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": empty fraction", (int)len, s);
        }
        for (size_t k = i - f0; k < 3; k++) {
            ms *= 10;
        }
    }
    int64_t off_s = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i != 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            !digits(s + i + 4, 2, &om) || oh > 23 || om > 59) {
            return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": bad offset (want +hh:mm)", (int)len,
                              s);
        }
        off_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": no time zone (Z or +hh:mm)", (int)len,
                          s);
    }
    if (i != len) {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": trailing characters", (int)len, s);
    }
    if (sec == 60) {
        sec = 59;
        ms = 999;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    if (t < 0) {
        return kt_err_set(err, KT_EINVAL, "time: \"%.*s\": before 1970", (int)len, s);
    }
    *ms_out = (uint64_t)t * 1000u + (uint64_t)ms;
    return KT_OK;
}

/* ============================================================== checks */

/* Printable ASCII or UTF-8 bytes, no control characters, no NUL within len. */
static int text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

kt_status model_event_check(const model_event *ev, size_t max_data, kt_err *err)
{
    if (max_data == 0) {
        max_data = MODEL_EVENT_DATA_MAX_DEFAULT;
    }
    if (ev->cls < MODEL_EVENT_REAL || ev->cls > MODEL_EVENT_STORE) {
        return kt_err_set(err, KT_EINVAL, "type: no event class");
    }
    if (ev->iface[0] == '\0' || model_name_check(ev->iface) != NULL) {
        return kt_err_set(err, KT_EINVAL, "type: interface is not a valid name");
    }
    if ((ev->cls == MODEL_EVENT_COMMAND) != (ev->command[0] != '\0')) {
        return kt_err_set(err, KT_EINVAL, "type: command name present exactly for commands");
    }
    if (ev->cls == MODEL_EVENT_COMMAND && model_name_check(ev->command) != NULL) {
        return kt_err_set(err, KT_EINVAL, "type: command is not a valid name");
    }
    if (ev->id == NULL || ev->id[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "id: missing or empty");
    }
    size_t n = strnlen(ev->id, MODEL_EVENT_ID_MAX + 1);
    if (n > MODEL_EVENT_ID_MAX) {
        return kt_err_set(err, KT_EINVAL, "id: longer than %d bytes", MODEL_EVENT_ID_MAX);
    }
    if (!text_ok(ev->id, n)) {
        return kt_err_set(err, KT_EINVAL, "id: contains a control character");
    }
    if (ev->source == NULL) {
        return kt_err_set(err, KT_EINVAL, "source: missing");
    }
    const char *why = model_name_check(ev->source);
    if (why != NULL) {
        return kt_err_set(err, KT_EINVAL, "source: instance name \"%.64s\" %s", ev->source, why);
    }
    if (ev->time != NULL) {
        uint64_t ms = 0;
        kt_status st =
            model_time_parse(ev->time, strnlen(ev->time, MODEL_EVENT_TIME_MAX + 1), &ms, err);
        if (st != KT_OK) {
            return st;
        }
    }
    if (ev->datacontenttype != NULL) {
        n = strnlen(ev->datacontenttype, MODEL_EVENT_CT_MAX + 1);
        if (n > MODEL_EVENT_CT_MAX) {
            return kt_err_set(err, KT_EINVAL, "datacontenttype: longer than %d bytes",
                              MODEL_EVENT_CT_MAX);
        }
        if (n == 0 || !text_ok(ev->datacontenttype, n)) {
            return kt_err_set(err, KT_EINVAL, "datacontenttype: empty or control characters");
        }
    }
    if (ev->data_len > max_data) {
        return kt_err_set(err, KT_ETOOBIG, "data: %zu bytes over the %zu cap", ev->data_len,
                          max_data);
    }
    if (ev->data_len > 0 && ev->data == NULL) {
        return kt_err_set(err, KT_EINVAL, "data: NULL with a length");
    }
    return KT_OK;
}

/* ============================================================== copies */

/* A string or byte range to copy; p NULL = absent. */
typedef struct slice {
    const char *p;
    size_t len;
} slice;

static slice str_slice(const char *s)
{
    slice sl = { s, s != NULL ? strlen(s) : 0 };
    return sl;
}

enum { S_ID, S_SOURCE, S_TIME, S_CT, S_DATA, S_N };

static size_t slices_size(const slice s[S_N])
{
    size_t n = sizeof(model_event);
    for (int i = 0; i < S_N; i++) {
        if (s[i].p != NULL || i == S_DATA) {
            n += s[i].len + 1;
        }
    }
    return n;
}

/* Lay typ's type fields, time_ms and the slices out in mem (slices_size bytes). */
static model_event *lay_out(void *mem, const model_event *typ, uint64_t time_ms, const slice s[S_N])
{
    model_event *ev = mem;
    memset(ev, 0, sizeof *ev);
    ev->cls = typ->cls;
    memcpy(ev->iface, typ->iface, sizeof ev->iface);
    memcpy(ev->command, typ->command, sizeof ev->command);
    ev->iface[MODEL_NAME_MAX] = '\0';
    ev->command[MODEL_NAME_MAX] = '\0';
    ev->time_ms = time_ms;
    char *p = (char *)(ev + 1);
    const char **dst[S_DATA] = { &ev->id, &ev->source, &ev->time, &ev->datacontenttype };
    for (int i = 0; i < S_DATA; i++) {
        if (s[i].p == NULL) {
            *dst[i] = NULL;
            continue;
        }
        memcpy(p, s[i].p, s[i].len);
        p[s[i].len] = '\0';
        *dst[i] = p;
        p += s[i].len + 1;
    }
    if (s[S_DATA].len > 0) {
        memcpy(p, s[S_DATA].p, s[S_DATA].len);
    }
    p[s[S_DATA].len] = '\0';
    ev->data = s[S_DATA].len > 0 ? p : NULL;
    ev->data_len = s[S_DATA].len;
    return ev;
}

static void slices_of(const model_event *ev, slice s[S_N])
{
    s[S_ID] = str_slice(ev->id);
    s[S_SOURCE] = str_slice(ev->source);
    s[S_TIME] = str_slice(ev->time);
    s[S_CT] = str_slice(ev->datacontenttype);
    s[S_DATA].p = ev->data;
    s[S_DATA].len = ev->data != NULL ? ev->data_len : 0;
}

size_t model_event_copy_size(const model_event *ev)
{
    slice s[S_N];
    slices_of(ev, s);
    return slices_size(s);
}

model_event *model_event_copy_into(void *mem, size_t size, const model_event *ev)
{
    slice s[S_N];
    slices_of(ev, s);
    KT_ASSERT(size >= slices_size(s));
    return lay_out(mem, ev, ev->time_ms, s);
}

kt_status model_event_dup(model_event **out, const model_event *ev, kt_err *err)
{
    *out = NULL;
    size_t n = model_event_copy_size(ev);
    void *mem = kt_malloc(n);
    if (mem == NULL) {
        return kt_err_set(err, KT_ENOMEM, "event copy of %zu bytes", n);
    }
    *out = model_event_copy_into(mem, n, ev);
    return KT_OK;
}

void model_event_free(model_event *ev)
{
    kt_free(ev);
}

/*
 * Build one owning block from typ (cls/iface/command set) and slices of
 * untrusted bytes, then validate it. Strings (not data) must not contain NUL.
 */
static kt_status build_event(model_event **out,
                             const model_event *typ,
                             uint64_t time_ms,
                             const slice s[S_N],
                             size_t max_data,
                             kt_err *err)
{
    static const char *names[S_DATA] = { "id", "source", "time", "datacontenttype" };
    static const size_t caps[S_DATA] = { MODEL_EVENT_ID_MAX, MODEL_NAME_MAX, MODEL_EVENT_TIME_MAX,
                                         MODEL_EVENT_CT_MAX };
    *out = NULL;
    if (max_data == 0) {
        max_data = MODEL_EVENT_DATA_MAX_DEFAULT;
    }
    for (int i = 0; i < S_DATA; i++) {
        if (s[i].p == NULL) {
            continue;
        }
        if (s[i].len > caps[i]) {
            return kt_err_set(err, KT_EINVAL, "%s: longer than %zu bytes", names[i], caps[i]);
        }
        if (memchr(s[i].p, '\0', s[i].len) != NULL) {
            return kt_err_set(err, KT_EINVAL, "%s: contains a NUL byte", names[i]);
        }
    }
    if (s[S_DATA].len > max_data) {
        return kt_err_set(err, KT_ETOOBIG, "data: %zu bytes over the %zu cap", s[S_DATA].len,
                          max_data);
    }
    size_t n = slices_size(s);
    void *mem = kt_malloc(n);
    if (mem == NULL) {
        return kt_err_set(err, KT_ENOMEM, "event of %zu bytes", n);
    }
    model_event *ev = lay_out(mem, typ, time_ms, s);
    kt_status st = model_event_check(ev, max_data, err);
    if (st != KT_OK) {
        kt_free(mem);
        return st;
    }
    if (ev->time != NULL) {
        st = model_time_parse(ev->time, strlen(ev->time), &ev->time_ms, err);
        if (st != KT_OK) {
            kt_free(mem);
            return st;
        }
    }
    *out = ev;
    return KT_OK;
}

/* ============================================================== binary form */

static kt_status put_u32(kt_buf *b, uint32_t v)
{
    unsigned char x[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 24) };
    return kt_buf_append(b, x, 4);
}

static kt_status put_field(kt_buf *b, const void *p, size_t len, int present)
{
    if (!present) {
        return put_u32(b, ENC_NULL);
    }
    if (len >= ENC_NULL) {
        return KT_ETOOBIG;
    }
    kt_status st = put_u32(b, (uint32_t)len);
    if (st == KT_OK && len > 0) {
        st = kt_buf_append(b, p, len);
    }
    return st;
}

kt_status model_event_encode(const model_event *ev, kt_buf *out)
{
    size_t old = out->len;
    unsigned char h[ENC_HEADER_LEN] = { 'K', 'E', 1, (unsigned char)ev->cls };
    for (int i = 0; i < 8; i++) {
        h[4 + i] = (unsigned char)(ev->time_ms >> (8 * i));
    }
    kt_status st = kt_buf_append(out, h, sizeof h);
    const char *str[6] = {
        ev->iface, ev->command, ev->id, ev->source, ev->time, ev->datacontenttype
    };
    for (int i = 0; i < 6 && st == KT_OK; i++) {
        st = put_field(out, str[i], str[i] != NULL ? strlen(str[i]) : 0, str[i] != NULL);
    }
    if (st == KT_OK) {
        st = put_field(out, ev->data, ev->data != NULL ? ev->data_len : 0, 1);
    }
    if (st != KT_OK) {
        out->len = old;
        if (out->data != NULL) {
            out->data[old] = '\0';
        }
    }
    return st;
}

typedef struct reader {
    const unsigned char *p;
    size_t len, off;
} reader;

static const char *const enc_field_names[7] = { "iface", "command",         "id",  "source",
                                                "time",  "datacontenttype", "data" };

static kt_status get_field(reader *r, int idx, slice *out, kt_err *err)
{
    if (r->len - r->off < 4) {
        return kt_err_set(err, KT_EPROTO, "encoded event: truncated before %s",
                          enc_field_names[idx]);
    }
    const unsigned char *q = r->p + r->off;
    uint32_t n = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    r->off += 4;
    if (n == ENC_NULL) {
        out->p = NULL;
        out->len = 0;
        return KT_OK;
    }
    if (n > r->len - r->off) {
        return kt_err_set(err, KT_EPROTO, "encoded event: %s length %u past the end",
                          enc_field_names[idx], n);
    }
    out->p = (const char *)r->p + r->off;
    out->len = n;
    r->off += n;
    return KT_OK;
}

kt_status
model_event_decode(model_event **out, const void *buf, size_t len, size_t max_data, kt_err *err)
{
    *out = NULL;
    const unsigned char *p = buf;
    if (len < ENC_HEADER_LEN || p[0] != 'K' || p[1] != 'E') {
        return kt_err_set(err, KT_EPROTO, "encoded event: bad magic or too short (%zu bytes)", len);
    }
    if (p[2] != 1) {
        return kt_err_set(err, KT_EPROTO, "encoded event: unknown version %u", p[2]);
    }
    uint64_t time_ms = 0;
    for (int i = 0; i < 8; i++) {
        time_ms |= (uint64_t)p[4 + i] << (8 * i);
    }
    reader r = { p, len, ENC_HEADER_LEN };
    slice f[7];
    for (int i = 0; i < 7; i++) {
        kt_status st = get_field(&r, i, &f[i], err);
        if (st != KT_OK) {
            return st;
        }
    }
    if (r.off != len) {
        return kt_err_set(err, KT_EPROTO, "encoded event: %zu trailing bytes", len - r.off);
    }
    if (f[0].p == NULL || f[1].p == NULL || f[6].p == NULL) {
        return kt_err_set(err, KT_EPROTO, "encoded event: iface, command and data may not be null");
    }
    model_event typ;
    memset(&typ, 0, sizeof typ);
    char iface[MODEL_NAME_MAX + 1];
    char cmd[MODEL_NAME_MAX + 1];
    kt_status st = take_name(iface, f[0].p, f[0].len, "encoded event", "interface", err);
    if (st != KT_OK) {
        return st;
    }
    cmd[0] = '\0';
    if (f[1].len > 0) {
        st = take_name(cmd, f[1].p, f[1].len, "encoded event", "command", err);
        if (st != KT_OK) {
            return st;
        }
    }
    st = model_event_set_class(&typ, (model_event_class)p[3], iface, cmd[0] != '\0' ? cmd : NULL,
                               err);
    if (st != KT_OK) {
        return st;
    }
    slice s[S_N] = { f[2], f[3], f[4], f[5], f[6] };
    /* time_ms is kept as encoded unless a time string is present (it then wins). */
    return build_event(out, &typ, time_ms, s, max_data, err);
}

/* ============================================================== base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static kt_status b64_encode(kt_buf *out, const unsigned char *p, size_t len)
{
    char q[4];
    kt_status st = KT_OK;
    for (size_t i = 0; i < len && st == KT_OK; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t n = len - i;
        if (n > 1) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (n > 2) {
            v |= p[i + 2];
        }
        q[0] = b64_alphabet[(v >> 18) & 63];
        q[1] = b64_alphabet[(v >> 12) & 63];
        q[2] = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
        q[3] = n > 2 ? b64_alphabet[v & 63] : '=';
        st = kt_buf_append(out, q, 4);
    }
    return st;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/*
 * Decode s[0..len) (padding optional) into out (at least len*3/4+3 bytes).
 * Returns the decoded length, or -1 for a bad character or length.
 */
static long b64_decode(unsigned char *out, const char *s, size_t len)
{
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    return (long)o;
}

/* ============================================================== structured mode */

static int ct_is_json(const char *ct);

/* A string attribute: absent/null -> *out NULL; other types -> KT_EINVAL. */
static kt_status json_attr(const cJSON *root, const char *key, const char **out, kt_err *err)
{
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v == NULL || cJSON_IsNull(v)) {
        return KT_OK;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return kt_err_set(err, KT_EINVAL, "%s: not a string", key);
    }
    *out = v->valuestring;
    return KT_OK;
}

kt_status
model_event_from_json(model_event **out, const char *json, size_t len, size_t max_data, kt_err *err)
{
    *out = NULL;
    if (json == NULL) {
        json = "";
        len = 0;
    }
    if (max_data == 0) {
        max_data = MODEL_EVENT_DATA_MAX_DEFAULT;
    }
    size_t body_max = max_data / 3 * 4 + 4 + STRUCTURED_ENVELOPE_MAX;
    if (len > body_max) {
        return kt_err_set(err, KT_ETOOBIG, "structured event: %zu bytes over the %zu cap", len,
                          body_max);
    }
    cJSON *root = NULL;
    kt_status st = kt_json_parse(json, len, body_max, &root, err);
    if (st != KT_OK) {
        return st == KT_ETOOBIG ? st : kt_err_set(err, KT_EINVAL, "structured event: bad JSON");
    }
    unsigned char *decoded = NULL;
    kt_buf data;
    kt_buf_init(&data, max_data);
    const char *specversion = NULL, *id = NULL, *type = NULL, *source = NULL, *time = NULL,
               *ct = NULL, *b64 = NULL;
    if (!cJSON_IsObject(root)) {
        st = kt_err_set(err, KT_EINVAL, "structured event: not a JSON object");
        goto done;
    }
    if ((st = json_attr(root, "specversion", &specversion, err)) != KT_OK ||
        (st = json_attr(root, "id", &id, err)) != KT_OK ||
        (st = json_attr(root, "type", &type, err)) != KT_OK ||
        (st = json_attr(root, "source", &source, err)) != KT_OK ||
        (st = json_attr(root, "time", &time, err)) != KT_OK ||
        (st = json_attr(root, "datacontenttype", &ct, err)) != KT_OK ||
        (st = json_attr(root, "data_base64", &b64, err)) != KT_OK) {
        goto done;
    }
    if (specversion == NULL) {
        st = kt_err_set(err, KT_EPROTO, "specversion: missing");
        goto done;
    }
    if (strcmp(specversion, "1.0") != 0) {
        st = kt_err_set(err, KT_EPROTO, "specversion: \"%.16s\" is not 1.0", specversion);
        goto done;
    }
    const char *missing = id == NULL       ? "id"
                          : type == NULL   ? "type"
                          : source == NULL ? "source"
                                           : NULL;
    if (missing != NULL) {
        st = kt_err_set(err, KT_EPROTO, "%s: missing", missing);
        goto done;
    }
    model_event typ;
    memset(&typ, 0, sizeof typ);
    if ((st = model_event_set_type(&typ, type, strlen(type), err)) != KT_OK) {
        goto done;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (d != NULL && cJSON_IsNull(d)) {
        d = NULL;
    }
    slice s[S_N];
    memset(s, 0, sizeof s);
    if (d != NULL && b64 != NULL) {
        st = kt_err_set(err, KT_EINVAL, "data: both data and data_base64 are set");
        goto done;
    }
    if (d != NULL && cJSON_IsString(d) && d->valuestring != NULL && ct != NULL && !ct_is_json(ct)) {
        /* Non-JSON content in a JSON string (CloudEvents JSON format 3.1): the text itself. */
        s[S_DATA].p = d->valuestring;
        s[S_DATA].len = strlen(d->valuestring);
    } else if (d != NULL) {
        st = kt_json_print_buf(d, &data);
        if (st == KT_ETOOBIG) {
            st = kt_err_set(err, KT_ETOOBIG, "data: over the %zu byte cap", max_data);
            goto done;
        }
        if (st != KT_OK) {
            st = kt_err_set(err, st, "data: cannot print");
            goto done;
        }
        s[S_DATA].p = data.data;
        s[S_DATA].len = data.len;
        if (ct == NULL) {
            ct = MODEL_EVENT_CT_JSON;
        }
    } else if (b64 != NULL) {
        size_t blen = strlen(b64);
        if (blen / 4 * 3 > max_data + 3) {
            st = kt_err_set(err, KT_ETOOBIG, "data_base64: over the %zu byte cap", max_data);
            goto done;
        }
        decoded = kt_malloc(blen / 4 * 3 + 4);
        if (decoded == NULL) {
            st = kt_err_set(err, KT_ENOMEM, "data_base64: %zu bytes", blen);
            goto done;
        }
        long n = b64_decode(decoded, b64, blen);
        if (n < 0) {
            st = kt_err_set(err, KT_EINVAL, "data_base64: not base64");
            goto done;
        }
        s[S_DATA].p = (const char *)decoded;
        s[S_DATA].len = (size_t)n;
    }
    s[S_ID] = str_slice(id);
    s[S_SOURCE] = str_slice(source);
    s[S_TIME] = str_slice(time);
    s[S_CT] = str_slice(ct);
    st = build_event(out, &typ, 0, s, max_data, err);
done:
    kt_free(decoded);
    kt_buf_fini(&data);
    cJSON_Delete(root);
    return st;
}

/* ============================================================== binary mode */

/* The media type of a Content-Type value (before ';', trimmed) equals mt, case-insensitively. */
static int media_type_is(const char *v, const char *mt)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strcspn(v, ";");
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    return n == strlen(mt) && strncasecmp(v, mt, n) == 0;
}

kt_status model_event_from_http(model_event **out,
                                model_ce_header_cb get,
                                void *user,
                                const void *body,
                                size_t len,
                                size_t max_data,
                                kt_err *err)
{
    *out = NULL;
    if (max_data == 0) {
        max_data = MODEL_EVENT_DATA_MAX_DEFAULT;
    }
    const char *ctype = get("content-type", user);
    if (ctype != NULL && media_type_is(ctype, MODEL_CE_STRUCTURED_CT)) {
        return model_event_from_json(out, body, len, max_data, err);
    }
    if (ctype != NULL && media_type_is(ctype, "application/cloudevents-batch+json")) {
        return kt_err_set(err, KT_EPROTO, "content-type: batch mode is not supported");
    }
    const char *specversion = get("ce-specversion", user);
    if (specversion == NULL) {
        return kt_err_set(err, KT_EPROTO, "ce-specversion: missing (not a CloudEvent)");
    }
    if (strcmp(specversion, "1.0") != 0) {
        return kt_err_set(err, KT_EPROTO, "ce-specversion: \"%.16s\" is not 1.0", specversion);
    }
    static const char *const required[3] = { "ce-id", "ce-type", "ce-source" };
    const char *v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = get(required[i], user);
        if (v[i] == NULL) {
            return kt_err_set(err, KT_EPROTO, "%s: missing", required[i]);
        }
    }
    if (len > max_data) {
        return kt_err_set(err, KT_ETOOBIG, "data: %zu bytes over the %zu cap", len, max_data);
    }
    model_event typ;
    memset(&typ, 0, sizeof typ);
    kt_status st = model_event_set_type(&typ, v[1], strlen(v[1]), err);
    if (st != KT_OK) {
        return st;
    }
    slice s[S_N];
    s[S_ID] = str_slice(v[0]);
    s[S_SOURCE] = str_slice(v[2]);
    s[S_TIME] = str_slice(get("ce-time", user));
    s[S_CT] = str_slice(ctype);
    s[S_DATA].p = body;
    s[S_DATA].len = body != NULL ? len : 0;
    return build_event(out, &typ, 0, s, max_data, err);
}

void model_event_to_http_binary(const model_event *ev, model_ce_headers *out)
{
    KT_ASSERT(ev->cls >= MODEL_EVENT_REAL && ev->cls <= MODEL_EVENT_STORE);
    size_t n = 0;
    out->h[n].name = "ce-specversion";
    out->h[n++].value = "1.0";
    out->h[n].name = "ce-id";
    out->h[n++].value = ev->id;
    out->h[n].name = "ce-type";
    out->h[n++].value = model_event_type_str(ev, out->_type, sizeof out->_type);
    out->h[n].name = "ce-source";
    out->h[n++].value = ev->source;
    if (ev->time != NULL) {
        out->h[n].name = "ce-time";
        out->h[n++].value = ev->time;
    } else if (ev->time_ms != 0) {
        out->h[n].name = "ce-time";
        out->h[n++].value = kt_clock_rfc3339(out->_time, sizeof out->_time, ev->time_ms);
    }
    out->h[n].name = "content-type";
    out->h[n++].value = ev->datacontenttype != NULL ? ev->datacontenttype : MODEL_EVENT_CT_JSON;
    out->n = n;
}

/* ============================================================== JSON rendering */

static kt_status put_json_str(kt_buf *b, const char *s)
{
    kt_status st = kt_buf_putc(b, '"');
    for (const char *p = s; *p != '\0' && st == KT_OK; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            st = kt_buf_append(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            st = kt_buf_printf(b, "\\u%04x", c);
        } else {
            st = kt_buf_putc(b, (char)c);
        }
    }
    if (st == KT_OK) {
        st = kt_buf_putc(b, '"');
    }
    return st;
}

static kt_status put_attr(kt_buf *b, const char *key, const char *value)
{
    kt_status st = kt_buf_printf(b, ",\"%s\":", key);
    return st == KT_OK ? put_json_str(b, value) : st;
}

static int ct_is_json(const char *ct)
{
    if (ct == NULL || media_type_is(ct, MODEL_EVENT_CT_JSON) || media_type_is(ct, "text/json")) {
        return 1;
    }
    while (*ct == ' ') {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ') {
        n--;
    }
    return n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static int data_is_json(const model_event *ev)
{
    if (!ct_is_json(ev->datacontenttype)) {
        return 0;
    }
    cJSON *v = NULL;
    kt_status st = kt_json_parse(ev->data, ev->data_len, ev->data_len, &v, NULL);
    cJSON_Delete(v);
    return st == KT_OK;
}

kt_status model_event_to_json(const model_event *ev, kt_buf *out)
{
    size_t old = out->len;
    char type[MODEL_EVENT_TYPE_CAP];
    char tbuf[MODEL_EVENT_TIME_CAP];
    kt_status st = kt_buf_puts(out, "{\"specversion\":\"1.0\"");
    if (st == KT_OK) {
        st = put_attr(out, "id", ev->id != NULL ? ev->id : "");
    }
    if (st == KT_OK) {
        st = put_attr(out, "type", model_event_type_str(ev, type, sizeof type));
    }
    if (st == KT_OK) {
        st = put_attr(out, "source", ev->source != NULL ? ev->source : "");
    }
    if (st == KT_OK && (ev->time != NULL || ev->time_ms != 0)) {
        st = put_attr(out, "time",
                      ev->time != NULL ? ev->time
                                       : kt_clock_rfc3339(tbuf, sizeof tbuf, ev->time_ms));
    }
    if (st == KT_OK && ev->datacontenttype != NULL) {
        st = put_attr(out, "datacontenttype", ev->datacontenttype);
    }
    if (st == KT_OK && ev->data != NULL && ev->data_len > 0) {
        if (data_is_json(ev)) {
            st = kt_buf_puts(out, ",\"data\":");
            if (st == KT_OK) {
                st = kt_buf_append(out, ev->data, ev->data_len);
            }
        } else {
            st = kt_buf_puts(out, ",\"data_base64\":\"");
            if (st == KT_OK) {
                st = b64_encode(out, ev->data, ev->data_len);
            }
            if (st == KT_OK) {
                st = kt_buf_putc(out, '"');
            }
        }
    }
    if (st == KT_OK) {
        st = kt_buf_putc(out, '}');
    }
    if (st != KT_OK) {
        out->len = old;
        if (out->data != NULL) {
            out->data[old] = '\0';
        }
    }
    return st;
}

/* ============================================================== ids */

static pthread_once_t id_once = PTHREAD_ONCE_INIT;
static uint64_t id_prefix;
static atomic_uint_fast64_t id_counter;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void id_init(void)
{
    uint64_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &r, sizeof r);
        (void)n; /* short read: fall back on the mix below */
        (void)close(fd);
    }
    r ^= mix64(kt_clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^ kt_clock_mono_ns());
    id_prefix = r;
}

const char *model_event_id_new(char *out, size_t cap)
{
    (void)pthread_once(&id_once, id_init);
    uint64_t n = atomic_fetch_add(&id_counter, 1) + 1;
    int k =
        snprintf(out, cap, "%016llx-%llx", (unsigned long long)id_prefix, (unsigned long long)n);
    if (cap > 0 && (k < 0 || (size_t)k >= cap)) {
        out[0] = '\0';
    }
    return out;
}

/* ============================================================== topics */

static kt_status topic_prefix(model_event_class cls, const char **out, kt_err *err)
{
    if (cls == MODEL_EVENT_REAL) {
        *out = "real";
    } else if (cls == MODEL_EVENT_VIRTUAL) {
        *out = "virtual";
    } else {
        return kt_err_set(err, KT_EINVAL, "topic: only real and virtual events have topics");
    }
    return KT_OK;
}

kt_status model_topic_parse(model_topic *out, const char *topic, size_t len, kt_err *err)
{
    memset(out, 0, sizeof *out);
    if (topic == NULL || len == 0) {
        return kt_err_set(err, KT_EINVAL, "topic: empty");
    }
    if (len >= MODEL_TOPIC_CAP) {
        return kt_err_set(err, KT_EINVAL, "topic: longer than %d bytes", MODEL_TOPIC_CAP - 1);
    }
    const char *lv[5];
    size_t ll[5];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || topic[i] == '/') {
            if (n == 5) {
                n++;
                break;
            }
            lv[n] = topic + start;
            ll[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n != 4) {
        return kt_err_set(err, KT_EINVAL,
                          "topic: \"%.*s\" has %s%zu levels, not 4 "
                          "(ktwin/<real|virtual>/<interface>/<instance>)",
                          (int)(len > 80 ? 80 : len), topic, n > 5 ? "over " : "",
                          n > 5 ? (size_t)5 : n);
    }
    if (!word_is(lv[0], ll[0], "ktwin")) {
        return kt_err_set(err, KT_EINVAL, "topic: \"%.*s\" does not start with ktwin/",
                          (int)(len > 80 ? 80 : len), topic);
    }
    model_event_class cls;
    if (word_is(lv[1], ll[1], "real")) {
        cls = MODEL_EVENT_REAL;
    } else if (word_is(lv[1], ll[1], "virtual")) {
        cls = MODEL_EVENT_VIRTUAL;
    } else {
        return kt_err_set(err, KT_EINVAL, "topic: level 2 \"%.*s\" is not real or virtual",
                          (int)(ll[1] > 32 ? 32 : ll[1]), lv[1]);
    }
    kt_status st = take_name(out->iface, lv[2], ll[2], "topic", "interface", err);
    if (st == KT_OK) {
        st = take_name(out->instance, lv[3], ll[3], "topic", "instance", err);
    }
    if (st != KT_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    out->cls = cls;
    return KT_OK;
}

static kt_status check_arg_name(const char *s, const char *what, kt_err *err)
{
    const char *why = model_name_check(s);
    if (why != NULL) {
        return kt_err_set(err, KT_EINVAL, "topic: %s \"%.64s\" %s", what, s != NULL ? s : "", why);
    }
    return KT_OK;
}

kt_status model_topic_build(char *out,
                            size_t cap,
                            model_event_class cls,
                            const char *iface,
                            const char *instance,
                            kt_err *err)
{
    if (cap > 0) {
        out[0] = '\0';
    }
    const char *word = NULL;
    kt_status st = topic_prefix(cls, &word, err);
    if (st == KT_OK) {
        st = check_arg_name(iface, "interface", err);
    }
    if (st == KT_OK) {
        st = check_arg_name(instance, "instance", err);
    }
    if (st != KT_OK) {
        return st;
    }
    int n = snprintf(out, cap, "ktwin/%s/%s/%s", word, iface, instance);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return kt_err_set(err, KT_ETOOBIG, "topic: %d bytes do not fit in %zu", n, cap);
    }
    return KT_OK;
}

kt_status
model_topic_filter(char *out, size_t cap, model_event_class cls, const char *iface, kt_err *err)
{
    if (cap > 0) {
        out[0] = '\0';
    }
    const char *word = NULL;
    kt_status st = topic_prefix(cls, &word, err);
    if (st == KT_OK) {
        st = check_arg_name(iface, "interface", err);
    }
    if (st != KT_OK) {
        return st;
    }
    int n = snprintf(out, cap, "ktwin/%s/%s/+", word, iface);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return kt_err_set(err, KT_ETOOBIG, "topic: %d bytes do not fit in %zu", n, cap);
    }
    return KT_OK;
}

void model_event_from_topic(model_event *ev,
                            const model_topic *t,
                            const void *payload,
                            size_t len,
                            const char *id,
                            const char *time,
                            uint64_t time_ms)
{
    memset(ev, 0, sizeof *ev);
    ev->cls = t->cls;
    memcpy(ev->iface, t->iface, sizeof ev->iface);
    ev->iface[MODEL_NAME_MAX] = '\0';
    ev->source = t->instance;
    ev->id = id;
    ev->time = time;
    ev->time_ms = time_ms;
    ev->data = payload;
    ev->data_len = len;
}
