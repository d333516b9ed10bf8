/*
 * agent/journal.c — the MQTT ingest journal (see journal.h for the format,
 * the invariants and the threads).
 *
 * DESIGN: the producer (paho's receive thread) owns the active segment's fd
 * outright: it encodes a record into a buffer and writes it with one
 * write(2). Rotation is done by the producer too, before a write, when the
 * segment is past segment_bytes or when the loop has set rotate_req (it has
 * consumed everything written). The new segment number is published with a
 * release store AFTER the last write to the old one, so when the loop reads
 * active_seg > k it knows segment k is complete: a bad tail there is torn,
 * not in progress. The loop reads segments through its own fd and never
 * writes them; it unlinks a segment once the committed cursor is past it.
 *
 * Thread: see journal.h. Ownership: all fds and buffers here.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KT_LOG_MOD "journal"
#include "kt/log.h"
#include "kt/mem.h"

#define DEFAULT_SEGMENT_BYTES (8u * 1024u * 1024u)
#define DEFAULT_MAX_RECORD    (1024u * 1024u + 64u * 1024u)
#define READ_CHUNK            (64u * 1024u)

/* A segment the loop knows about (oldest first). */
typedef struct seg {
    uint64_t no;
    uint64_t size; /* bytes on disk when last looked at */
} seg;

/* The read position: segment number + offset in it. */
typedef struct cursor {
    uint64_t seg;
    uint64_t off;
} cursor;

struct agent_journal {
    char *dir;
    size_t segment_bytes;
    size_t max_record;

    /* ---- producer side (one thread) */
    int wfd;        /* active segment */
    uint64_t wseg;  /* its number */
    uint64_t wsize; /* bytes written to it */
    uint8_t *wbuf;  /* encode buffer */
    size_t wbuf_cap;
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t active_seg; /* release-stored after rotation */
    atomic_int rotate_req;           /* loop -> producer: start a new segment */
    atomic_uint_fast64_t bytes;      /* on disk, all segments */
    atomic_uint_fast64_t n_appended;
    atomic_uint_fast64_t n_append_errors;

    /* ---- loop side */
    uint64_t first_seg; /* oldest segment that may still exist on disk */
    cursor rd;          /* tentative cursor */
    cursor committed;   /* durable-elsewhere cursor */
    int rfd;            /* open fd of rd.seg, or -1 */
    uint64_t rfd_seg;
    uint8_t *rbuf;
    size_t rbuf_cap;
    uint64_t n_read;
    uint64_t n_torn;
    uint64_t n_torn_bytes;
    uint64_t n_freed;
    bool scanning; /* open's id scan: torn tails are reported by the replay, not here */
};

/* ---- codec ----------------------------------------------------------------- */

/* CRC-32 (zlib's), slice-by-8: table k is the CRC of a byte followed by k zero bytes. */
static uint32_t crc_table[8][256];
static atomic_int crc_ready;

static void crc_init(void)
{
    if (atomic_load_explicit(&crc_ready, memory_order_acquire)) {
        return;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int k = 1; k < 8; k++) {
            uint32_t prev = crc_table[k - 1][i];
            crc_table[k][i] = (prev >> 8) ^ crc_table[0][prev & 0xffu];
        }
    }
    atomic_store_explicit(&crc_ready, 1, memory_order_release);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t agent_journal_crc32(const uint8_t *buf, size_t len)
{
    crc_init();
    uint32_t c = 0xffffffffu;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint32_t lo = c ^ le32(buf + i);
        uint32_t hi = le32(buf + i + 4);
        c = crc_table[7][lo & 0xffu] ^ crc_table[6][(lo >> 8) & 0xffu] ^
            crc_table[5][(lo >> 16) & 0xffu] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xffu] ^ crc_table[2][(hi >> 8) & 0xffu] ^
            crc_table[1][(hi >> 16) & 0xffu] ^ crc_table[0][hi >> 24];
    }
    for (; i < len; i++) {
        c = crc_table[0][(c ^ buf[i]) & 0xffu] ^ (c >> 8);
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

size_t agent_journal_record_len(size_t topic_len, size_t payload_len)
{
    return AGENT_JOURNAL_HDR_BYTES + AGENT_JOURNAL_FIX_BYTES + topic_len + payload_len;
}

size_t agent_journal_encode(uint8_t *out, size_t cap, const agent_journal_rec *r)
{
    if (r->topic_len > UINT16_MAX) {
        return 0;
    }
    size_t body = AGENT_JOURNAL_FIX_BYTES + r->topic_len + r->payload_len;
    size_t total = AGENT_JOURNAL_HDR_BYTES + body;
    if (total > cap || body > UINT32_MAX) {
        return 0;
    }
    uint8_t *b = out + AGENT_JOURNAL_HDR_BYTES;
    put64(b, r->id);
    put64(b + 8, r->recv_wall_ms);
    b[16] = (uint8_t)(r->topic_len & 0xffu);
    b[17] = (uint8_t)(r->topic_len >> 8);
    b[18] = (uint8_t)(r->mqtt_msgid & 0xffu);
    b[19] = (uint8_t)(r->mqtt_msgid >> 8);
    b[20] = r->flags;
    b[21] = 0;
    if (r->topic_len > 0) {
        memcpy(b + AGENT_JOURNAL_FIX_BYTES, r->topic, r->topic_len);
    }
    if (r->payload_len > 0) {
        memcpy(b + AGENT_JOURNAL_FIX_BYTES + r->topic_len, r->payload, r->payload_len);
    }
    put32(out, AGENT_JOURNAL_MAGIC);
    put32(out + 4, (uint32_t)body);
    put32(out + 8, agent_journal_crc32(b, body));
    return total;
}

kt_status agent_journal_decode(agent_journal_rec *out,
                               size_t *used_out,
                               const uint8_t *buf,
                               size_t len,
                               size_t max_body,
                               kt_err *err)
{
    if (len < 4) {
        /* A prefix of a magic is still plausible (both share the first three bytes). */
        uint8_t m[4];
        uint8_t m1[4];
        put32(m, AGENT_JOURNAL_MAGIC);
        put32(m1, AGENT_JOURNAL_MAGIC_V1);
        if (len > 0 && memcmp(buf, m, len) != 0 && memcmp(buf, m1, len) != 0) {
            return kt_err_set(err, KT_EPROTO, "journal record: bad magic");
        }
        return KT_EAGAIN;
    }
    uint32_t magic = get32(buf);
    size_t fix;
    if (magic == AGENT_JOURNAL_MAGIC) {
        fix = AGENT_JOURNAL_FIX_BYTES;
    } else if (magic == AGENT_JOURNAL_MAGIC_V1) {
        fix = AGENT_JOURNAL_FIX_BYTES_V1;
    } else {
        return kt_err_set(err, KT_EPROTO, "journal record: bad magic");
    }
    if (len < AGENT_JOURNAL_HDR_BYTES) {
        return KT_EAGAIN;
    }
    uint32_t body = get32(buf + 4);
    if (body < fix || body > max_body) {
        return kt_err_set(err, KT_EPROTO, "journal record: body length %" PRIu32 " out of range",
                          body);
    }
    if (len - AGENT_JOURNAL_HDR_BYTES < body) {
        return KT_EAGAIN;
    }
    const uint8_t *b = buf + AGENT_JOURNAL_HDR_BYTES;
    if (agent_journal_crc32(b, body) != get32(buf + 8)) {
        return kt_err_set(err, KT_EPROTO, "journal record: CRC mismatch");
    }
    size_t topic_len = (size_t)b[16] | ((size_t)b[17] << 8);
    if (topic_len > body - fix) {
        return kt_err_set(err, KT_EPROTO, "journal record: topic length %zu past the body",
                          topic_len);
    }
    out->id = get64(b);
    out->recv_wall_ms = get64(b + 8);
    out->mqtt_msgid = fix == AGENT_JOURNAL_FIX_BYTES ? (uint16_t)(b[18] | (b[19] << 8)) : 0;
    out->flags = fix == AGENT_JOURNAL_FIX_BYTES ? b[20] : 0;
    out->topic = (const char *)(b + fix);
    out->topic_len = topic_len;
    out->payload = b + fix + topic_len;
    out->payload_len = body - fix - topic_len;
    *used_out = AGENT_JOURNAL_HDR_BYTES + (size_t)body;
    return KT_OK;
}

/* ---- files ------------------------------------------------------------------- */

static void seg_path(const agent_journal *j, uint64_t no, char *out, size_t cap)
{
    snprintf(out, cap, "%s/journal-%016" PRIx64 ".log", j->dir, no);
}

static int seg_open_write(agent_journal *j, uint64_t no)
{
    char path[4096 + 64];
    seg_path(j, no, path, sizeof path);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* Parse "journal-<hex>.log"; false for anything else. */
static bool seg_name_parse(const char *name, uint64_t *no)
{
    size_t n = strlen(name);
    if (n != 8 + 16 + 4 || strncmp(name, "journal-", 8) != 0 || strcmp(name + 24, ".log") != 0) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 8; i < 24; i++) {
        char c = name[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        v = (v << 4) | d;
    }
    *no = v;
    return true;
}

static uint64_t seg_size(const agent_journal *j, uint64_t no)
{
    char path[4096 + 64];
    seg_path(j, no, path, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0) {
        return 0;
    }
    return (uint64_t)st.st_size;
}

static void seg_unlink(agent_journal *j, uint64_t no)
{
    char path[4096 + 64];
    seg_path(j, no, path, sizeof path);
    uint64_t size = seg_size(j, no);
    if (unlink(path) == 0) {
        atomic_fetch_sub(&j->bytes, size);
        j->n_freed++;
    } else if (errno != ENOENT) {
        int e = errno;
        KT_LOG(KT_LOG_WARN, "JOURNAL-UNLINK", "path=%s errno=%d", path, e);
    }
}

static void rfd_close(agent_journal *j)
{
    if (j->rfd >= 0) {
        close(j->rfd);
        j->rfd = -1;
    }
}

/* ---- open / free ------------------------------------------------------------- */

static bool scan_cb(const agent_journal_rec *r, void *user)
{
    uint64_t *max_id = user;
    if (r->id > *max_id) {
        *max_id = r->id;
    }
    return true;
}

kt_status agent_journal_open(agent_journal **out, const agent_journal_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0') {
        return kt_err_set(err, KT_EINVAL, "journal: no directory");
    }
    if (mkdir(opts->dir, 0700) != 0 && errno != EEXIST) {
        return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", opts->dir);
    }
    DIR *d = opendir(opts->dir);
    if (d == NULL) {
        return kt_err_set_errno(err, KT_EIO, errno, "opendir %s", opts->dir);
    }
    agent_journal *j = kt_xcalloc(1, sizeof *j);
    j->dir = kt_xstrdup(opts->dir);
    j->segment_bytes = opts->segment_bytes != 0 ? opts->segment_bytes : DEFAULT_SEGMENT_BYTES;
    j->max_record = opts->max_record_bytes != 0 ? opts->max_record_bytes : DEFAULT_MAX_RECORD;
    j->wfd = -1;
    j->rfd = -1;
    uint64_t min_seg = UINT64_MAX;
    uint64_t max_seg = 0;
    bool any = false;
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t no;
        if (seg_name_parse(de->d_name, &no)) {
            any = true;
            min_seg = no < min_seg ? no : min_seg;
            max_seg = no > max_seg ? no : max_seg;
        }
    }
    closedir(d);
    uint64_t active = any ? max_seg + 1 : 1;
    j->first_seg = any ? min_seg : active;
    for (uint64_t s = j->first_seg; any && s <= max_seg; s++) {
        total += seg_size(j, s);
    }
    atomic_store(&j->bytes, total);
    atomic_store(&j->active_seg, active);
    j->rd.seg = j->first_seg;
    j->rd.off = 0;
    j->committed = j->rd;

    /* Scan old segments for the highest id, then rewind: the caller replays them. */
    uint64_t max_id = 0;
    j->scanning = true;
    kt_status st = agent_journal_read(j, scan_cb, &max_id, SIZE_MAX, NULL, err);
    j->scanning = false;
    j->n_read = 0;
    agent_journal_rewind(j);
    rfd_close(j);
    if (st != KT_OK) {
        agent_journal_free(j);
        return st;
    }
    atomic_store(&j->next_id, max_id + 1);

    j->wseg = active;
    j->wfd = seg_open_write(j, active);
    if (j->wfd < 0) {
        int e = errno;
        agent_journal_free(j);
        return kt_err_set_errno(err, KT_EIO, e, "open journal segment in %s", opts->dir);
    }
    j->wbuf_cap = 4096;
    j->wbuf = kt_xmalloc(j->wbuf_cap);
    *out = j;
    return KT_OK;
}

void agent_journal_free(agent_journal *j)
{
    if (j == NULL) {
        return;
    }
    rfd_close(j);
    if (j->wfd >= 0) {
        close(j->wfd);
        j->wfd = -1;
    }
    /* Unlink what is wholly consumed; the active segment too when nothing is left in it. */
    uint64_t active = atomic_load(&j->active_seg);
    cursor c = j->committed;
    while (c.seg < active && c.off >= seg_size(j, c.seg)) {
        c.seg++;
        c.off = 0;
    }
    for (uint64_t s = j->first_seg; s < c.seg; s++) {
        seg_unlink(j, s);
    }
    if (c.seg == active && c.off >= seg_size(j, active)) {
        seg_unlink(j, active);
    }
    kt_free(j->wbuf);
    kt_free(j->rbuf);
    kt_free(j->dir);
    kt_free(j);
}

void agent_journal_set_next_id(agent_journal *j, uint64_t next_id)
{
    uint64_t cur = atomic_load(&j->next_id);
    if (next_id > cur) {
        atomic_store(&j->next_id, next_id);
    }
}

/* ---- producer ------------------------------------------------------------------ */

static kt_status rotate(agent_journal *j, kt_err *err)
{
    uint64_t next = j->wseg + 1;
    int fd = seg_open_write(j, next);
    if (fd < 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "open journal segment %" PRIu64, next);
    }
    close(j->wfd);
    j->wfd = fd;
    j->wseg = next;
    j->wsize = 0;
    atomic_store_explicit(&j->active_seg, next, memory_order_release);
    return KT_OK;
}

kt_status agent_journal_append(agent_journal *j,
                               const char *topic,
                               size_t topic_len,
                               const uint8_t *payload,
                               size_t payload_len,
                               uint64_t recv_wall_ms,
                               uint16_t mqtt_msgid,
                               uint8_t flags,
                               uint64_t *id_out,
                               kt_err *err)
{
    if (topic_len > UINT16_MAX ||
        AGENT_JOURNAL_FIX_BYTES + topic_len + payload_len > j->max_record) {
        return kt_err_set(err, KT_ETOOBIG, "journal record of %zu bytes over the cap %zu",
                          AGENT_JOURNAL_FIX_BYTES + topic_len + payload_len, j->max_record);
    }
    if (atomic_exchange(&j->rotate_req, 0) != 0 || j->wsize >= j->segment_bytes) {
        if (j->wsize > 0) {
            kt_status st = rotate(j, err);
            if (st != KT_OK) {
                atomic_fetch_add(&j->n_append_errors, 1);
                return st;
            }
        }
    }
    size_t need = agent_journal_record_len(topic_len, payload_len);
    if (need > j->wbuf_cap) {
        uint8_t *nb = kt_realloc(j->wbuf, need);
        if (nb == NULL) {
            return kt_err_set(err, KT_ENOMEM, "journal buffer of %zu bytes", need);
        }
        j->wbuf = nb;
        j->wbuf_cap = need;
    }
    agent_journal_rec r = { .id = atomic_fetch_add(&j->next_id, 1),
                            .recv_wall_ms = recv_wall_ms,
                            .mqtt_msgid = mqtt_msgid,
                            .flags = flags,
                            .topic = topic,
                            .topic_len = topic_len,
                            .payload = payload,
                            .payload_len = payload_len };
    size_t n = agent_journal_encode(j->wbuf, j->wbuf_cap, &r);
    KT_ASSERT(n == need);
    ssize_t w;
    do {
        w = write(j->wfd, j->wbuf, n);
    } while (w < 0 && errno == EINTR);
    if (w != (ssize_t)n) {
        int e = w < 0 ? errno : ENOSPC;
        atomic_fetch_add(&j->n_append_errors, 1);
        if (w > 0) {
            /* A partial record: readers see a torn record; start a clean segment. */
            j->wsize += (uint64_t)w;
            atomic_fetch_add(&j->bytes, (uint64_t)w);
            kt_err tmp = { 0 };
            (void)rotate(j, &tmp);
        }
        return kt_err_set_errno(err, KT_EIO, e, "journal write of %zu bytes", n);
    }
    j->wsize += n;
    atomic_fetch_add(&j->bytes, (uint64_t)n);
    atomic_fetch_add(&j->n_appended, 1);
    if (id_out != NULL) {
        *id_out = r.id;
    }
    return KT_OK;
}

/* ---- loop: reading --------------------------------------------------------------- */

static kt_status rfd_ensure(agent_journal *j, uint64_t no, bool *missing, kt_err *err)
{
    *missing = false;
    if (j->rfd >= 0 && j->rfd_seg == no) {
        return KT_OK;
    }
    rfd_close(j);
    char path[4096 + 64];
    seg_path(j, no, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = true;
            return KT_OK;
        }
        return kt_err_set_errno(err, KT_EIO, errno, "open %s", path);
    }
    j->rfd = fd;
    j->rfd_seg = no;
    return KT_OK;
}

/* Read up to want bytes at off into rbuf; *got gets the count (0 at EOF). */
static kt_status rfd_pread(agent_journal *j, uint64_t off, size_t want, size_t *got, kt_err *err)
{
    if (want > j->rbuf_cap) {
        j->rbuf = kt_xrealloc(j->rbuf, want);
        j->rbuf_cap = want;
    }
    size_t have = 0;
    while (have < want) {
        ssize_t r = pread(j->rfd, j->rbuf + have, want - have, (off_t)(off + have));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return kt_err_set_errno(err, KT_EIO, errno, "read journal segment %" PRIu64,
                                    j->rfd_seg);
        }
        if (r == 0) {
            break;
        }
        have += (size_t)r;
    }
    *got = have;
    return KT_OK;
}

/* A bad or short tail of a finished segment: log, count, go to the next segment. */
static void skip_torn(agent_journal *j, const char *why)
{
    uint64_t size = seg_size(j, j->rd.seg);
    uint64_t skipped = size > j->rd.off ? size - j->rd.off : 0;
    if (j->scanning) {
        j->rd.seg++;
        j->rd.off = 0;
        return;
    }
    j->n_torn++;
    j->n_torn_bytes += skipped;
    KT_LOG(KT_LOG_WARN, "JOURNAL-TORN",
           "segment=%" PRIu64 " offset=%" PRIu64 " skipped_bytes=%" PRIu64 " reason=\"%s\"",
           j->rd.seg, j->rd.off, skipped, why);
    j->rd.seg++;
    j->rd.off = 0;
}

/*
 * Outcome of reading at the cursor: records consumed (n), or the segment is
 * exhausted (move on), or we must wait for the producer, or stop (cb said so).
 */
typedef enum step { STEP_MORE, STEP_NEXT_SEG, STEP_WAIT, STEP_STOP } step;

static step read_chunk(agent_journal *j,
                       bool finished,
                       agent_journal_rec_cb cb,
                       void *user,
                       size_t max_n,
                       size_t *n,
                       kt_status *st,
                       kt_err *err)
{
    size_t want = READ_CHUNK;
    size_t got = 0;
    *st = rfd_pread(j, j->rd.off, want, &got, err);
    if (*st != KT_OK) {
        return STEP_STOP;
    }
    size_t pos = 0;
    while (*n < max_n) {
        agent_journal_rec rec;
        size_t used = 0;
        kt_err derr = { 0 };
        kt_status ds =
            agent_journal_decode(&rec, &used, j->rbuf + pos, got - pos, j->max_record, &derr);
        if (ds == KT_OK) {
            if (!cb(&rec, user)) {
                return STEP_STOP;
            }
            j->rd.off += used;
            pos += used;
            (*n)++;
            j->n_read++;
            continue;
        }
        if (ds == KT_EAGAIN && got == want) {
            if (pos > 0) {
                return STEP_MORE; /* chunk boundary: read on from the new offset */
            }
            /* One record longer than the chunk: read exactly it. */
            want = AGENT_JOURNAL_HDR_BYTES + (size_t)get32(j->rbuf + 4);
            *st = rfd_pread(j, j->rd.off, want, &got, err);
            if (*st != KT_OK) {
                return STEP_STOP;
            }
            continue;
        }
        /* EOF (got < want): nothing more, a short tail, or a bad record. */
        if (ds == KT_EAGAIN && got - pos == 0) {
            return finished ? STEP_NEXT_SEG : STEP_WAIT;
        }
        if (!finished) {
            return STEP_WAIT; /* a tail still being written */
        }
        skip_torn(j, ds == KT_EAGAIN ? "truncated record" : derr.msg);
        return STEP_MORE;
    }
    return STEP_STOP;
}

kt_status agent_journal_read(
    agent_journal *j, agent_journal_rec_cb cb, void *user, size_t max_n, size_t *n_out, kt_err *err)
{
    size_t n = 0;
    kt_status st = KT_OK;
    while (n < max_n) {
        uint64_t active = atomic_load_explicit(&j->active_seg, memory_order_acquire);
        if (j->rd.seg > active) {
            break;
        }
        bool finished = j->rd.seg < active; /* no more writes will come to it */
        bool missing = false;
        st = rfd_ensure(j, j->rd.seg, &missing, err);
        if (st != KT_OK) {
            break;
        }
        if (missing) {
            if (!finished) {
                break;
            }
            j->rd.seg++;
            j->rd.off = 0;
            continue;
        }
        step s = read_chunk(j, finished, cb, user, max_n, &n, &st, err);
        if (s == STEP_NEXT_SEG) {
            j->rd.seg++;
            j->rd.off = 0;
        } else if (s == STEP_WAIT || s == STEP_STOP) {
            break;
        }
    }
    if (n_out != NULL) {
        *n_out = n;
    }
    return st;
}

void agent_journal_commit_read(agent_journal *j)
{
    j->committed = j->rd;
    while (j->first_seg < j->committed.seg) {
        if (j->rfd >= 0 && j->rfd_seg == j->first_seg) {
            rfd_close(j);
        }
        seg_unlink(j, j->first_seg);
        j->first_seg++;
    }
    uint64_t active = atomic_load_explicit(&j->active_seg, memory_order_acquire);
    if (j->committed.seg == active && j->committed.off > 0 &&
        j->committed.off >= seg_size(j, active)) {
        atomic_store(&j->rotate_req, 1);
    }
}

void agent_journal_rewind(agent_journal *j)
{
    j->rd = j->committed;
}

uint64_t agent_journal_last_id(const agent_journal *j)
{
    return atomic_load(&((agent_journal *)j)->next_id) - 1;
}

uint64_t agent_journal_bytes(const agent_journal *j)
{
    return atomic_load(&((agent_journal *)j)->bytes);
}

void agent_journal_stats_get(const agent_journal *j, agent_journal_stats *out)
{
    agent_journal *m = (agent_journal *)j;
    out->appended = atomic_load(&m->n_appended);
    out->append_errors = atomic_load(&m->n_append_errors);
    out->read = j->n_read;
    out->torn = j->n_torn;
    out->torn_bytes = j->n_torn_bytes;
    out->segments_freed = j->n_freed;
}
