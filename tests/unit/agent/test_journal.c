/*
 * test_journal.c — agent/journal: the record codec (round trip, every kind
 * of bad record), append/read/commit across reopen, replay of uncommitted
 * records, torn and corrupt tails skipped and counted, segment rotation and
 * unlinking, rewind, and a writer SIGKILLed mid-stream leaving a journal
 * that recovers every record it reported written.
 *
 * Each test gets its own temporary directory (kept when KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "kt/mem.h"

typedef struct fixture {
    char dir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof f->dir, "%s/kt_test_journal.XXXXXX",
                   base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        kt_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        DIR *d = opendir(f->dir);
        if (d != NULL) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (de->d_name[0] != '.') {
                    char p[600];
                    (void)snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
                    (void)unlink(p);
                }
            }
            closedir(d);
        }
        (void)rmdir(f->dir);
    }
    kt_free(f);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

typedef struct collect {
    uint64_t ids[4096];
    char topics[4096][32];
    size_t n;
    size_t stop_after; /* 0 = never */
} collect;

static bool collect_cb(const agent_journal_rec *r, void *user)
{
    collect *c = user;
    if (c->stop_after != 0 && c->n >= c->stop_after) {
        return false;
    }
    if (c->n < 4096) {
        c->ids[c->n] = r->id;
        (void)snprintf(c->topics[c->n], sizeof c->topics[c->n], "%.*s", (int)r->topic_len,
                       r->topic);
    }
    c->n++;
    return true;
}

static agent_journal *jopen(const fixture *f, size_t segment_bytes)
{
    agent_journal *j = NULL;
    agent_journal_opts o = { .dir = f->dir, .segment_bytes = segment_bytes };
    kt_err err = { 0 };
    assert_int_equal(agent_journal_open(&j, &o, &err), KT_OK);
    return j;
}

static void append_n(agent_journal *j, size_t n, size_t first)
{
    for (size_t i = 0; i < n; i++) {
        char topic[64];
        char payload[64];
        int tl = snprintf(topic, sizeof topic, "ktwin/real/pole/p%zu", first + i);
        int pl = snprintf(payload, sizeof payload, "{\"i\":%zu}", first + i);
        kt_err err = { 0 };
        assert_int_equal(agent_journal_append(j, topic, (size_t)tl, (const uint8_t *)payload,
                                              (size_t)pl, 1000 + i, (uint16_t)(i + 1), 0, NULL,
                                              &err),
                         KT_OK);
    }
}

static size_t count_segments(const fixture *f)
{
    size_t n = 0;
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "journal-", 8) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* The newest segment file's path. */
static void newest_segment(const fixture *f, char *out, size_t cap)
{
    char best[256] = "";
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "journal-", 8) == 0 && strcmp(de->d_name, best) > 0) {
            (void)snprintf(best, sizeof best, "%s", de->d_name);
        }
    }
    closedir(d);
    assert_true(best[0] != '\0');
    (void)snprintf(out, cap, "%s/%s", f->dir, best);
}

/* ---- codec ------------------------------------------------------------------------ */

/* Packet id and flags round-trip; a record of the first format (KTJ1) still decodes. */
static void test_codec_msgid_flags_and_v1_records(void **state)
{
    (void)state;
    uint8_t buf[256];
    agent_journal_rec r = { .id = 9,
                            .recv_wall_ms = 77,
                            .mqtt_msgid = 0xbeef,
                            .flags = AGENT_JOURNAL_F_DUP,
                            .topic = "a/b",
                            .topic_len = 3,
                            .payload = (const uint8_t *)"{}",
                            .payload_len = 2 };
    size_t n = agent_journal_encode(buf, sizeof buf, &r);
    assert_int_equal(n, AGENT_JOURNAL_HDR_BYTES + AGENT_JOURNAL_FIX_BYTES + 5);
    agent_journal_rec out;
    size_t used = 0;
    assert_int_equal(agent_journal_decode(&out, &used, buf, n, 1024, NULL), KT_OK);
    assert_int_equal(out.mqtt_msgid, 0xbeef);
    assert_int_equal(out.flags, AGENT_JOURNAL_F_DUP);
    assert_memory_equal(out.payload, "{}", 2);

    /* KTJ1: id, time, topic_len, topic, payload; CRC over the body. */
    uint8_t v1[64] = { 0 };
    uint8_t *b = v1 + AGENT_JOURNAL_HDR_BYTES;
    b[0] = 3;                           /* id 3 */
    b[8] = 1;                           /* recv_wall_ms 1 */
    b[16] = 3;                          /* topic_len */
    memcpy(b + 18, "a/b{\"k\":1}", 10); /* topic + payload */
    uint32_t body = AGENT_JOURNAL_FIX_BYTES_V1 + 10;
    uint32_t crc = agent_journal_crc32(b, body);
    uint32_t magic = AGENT_JOURNAL_MAGIC_V1;
    for (int k = 0; k < 4; k++) {
        v1[k] = (uint8_t)(magic >> (8 * k));
        v1[4 + k] = (uint8_t)(body >> (8 * k));
        v1[8 + k] = (uint8_t)(crc >> (8 * k));
    }
    assert_int_equal(
        agent_journal_decode(&out, &used, v1, AGENT_JOURNAL_HDR_BYTES + body, 1024, NULL), KT_OK);
    assert_int_equal(used, AGENT_JOURNAL_HDR_BYTES + body);
    assert_int_equal(out.id, 3);
    assert_int_equal(out.mqtt_msgid, 0);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.topic_len, 3);
    assert_int_equal(out.payload_len, 7);
    assert_memory_equal(out.payload, "{\"k\":1}", 7);
    /* A 3-byte prefix of either magic needs more bytes. */
    assert_int_equal(agent_journal_decode(&out, &used, v1, 3, 1024, NULL), KT_EAGAIN);
}

static void test_codec_round_trip_and_bad_records(void **state)
{
    (void)state;
    uint8_t buf[256];
    agent_journal_rec r = { .id = 42,
                            .recv_wall_ms = 1700000000000ull,
                            .topic = "ktwin/real/a/b",
                            .topic_len = 14,
                            .payload = (const uint8_t *)"{\"x\":1}",
                            .payload_len = 7 };
    size_t n = agent_journal_encode(buf, sizeof buf, &r);
    assert_int_equal(n, agent_journal_record_len(14, 7));
    assert_int_equal(agent_journal_encode(buf, n - 1, &r), 0);

    agent_journal_rec out;
    size_t used = 0;
    kt_err err = { 0 };
    assert_int_equal(agent_journal_decode(&out, &used, buf, n, 1024, &err), KT_OK);
    assert_int_equal(used, n);
    assert_int_equal(out.id, 42);
    assert_int_equal(out.recv_wall_ms, 1700000000000ull);
    assert_int_equal(out.topic_len, 14);
    assert_memory_equal(out.topic, "ktwin/real/a/b", 14);
    assert_int_equal(out.payload_len, 7);
    assert_memory_equal(out.payload, "{\"x\":1}", 7);

    /* Every prefix is "need more", never a record or an error. */
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(agent_journal_decode(&out, &used, buf, k, 1024, NULL), KT_EAGAIN);
    }
    /* Body over the cap. */
    kt_err e1 = { 0 };
    assert_int_equal(agent_journal_decode(&out, &used, buf, n, 10, &e1), KT_EPROTO);
    assert_non_null(strstr(e1.msg, "length"));
    /* A flipped payload bit fails the CRC. */
    uint8_t bad[256];
    memcpy(bad, buf, n);
    bad[n - 1] ^= 0x01;
    kt_err e2 = { 0 };
    assert_int_equal(agent_journal_decode(&out, &used, bad, n, 1024, &e2), KT_EPROTO);
    assert_non_null(strstr(e2.msg, "CRC"));
    /* Bad magic, even on the first byte. */
    memcpy(bad, buf, n);
    bad[0] = 'X';
    assert_int_equal(agent_journal_decode(&out, &used, bad, 1, 1024, NULL), KT_EPROTO);
    assert_int_equal(agent_journal_decode(&out, &used, bad, n, 1024, NULL), KT_EPROTO);
    /* topic_len past the body (CRC recomputed so only the length is wrong). */
    memcpy(bad, buf, n);
    bad[AGENT_JOURNAL_HDR_BYTES + 16] = 0xff;
    uint32_t body = (uint32_t)(n - AGENT_JOURNAL_HDR_BYTES);
    uint32_t crc = agent_journal_crc32(bad + AGENT_JOURNAL_HDR_BYTES, body);
    for (int i = 0; i < 4; i++) {
        bad[8 + i] = (uint8_t)(crc >> (8 * i));
    }
    kt_err e3 = { 0 };
    assert_int_equal(agent_journal_decode(&out, &used, bad, n, 1024, &e3), KT_EPROTO);
    assert_non_null(strstr(e3.msg, "topic length"));
    /* The CRC is zlib's: crc32("123456789") == 0xcbf43926. */
    assert_int_equal(agent_journal_crc32((const uint8_t *)"123456789", 9), 0xcbf43926u);
    /* Every length and alignment (the 8-byte steps and the byte tail) against bit by bit. */
    uint8_t data[67];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (uint8_t)(i * 37u + 11u);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; off + len <= sizeof data; len++) {
            uint32_t want = 0xffffffffu;
            for (size_t i = 0; i < len; i++) {
                want ^= data[off + i];
                for (int k = 0; k < 8; k++) {
                    want = (want & 1u) != 0 ? 0xedb88320u ^ (want >> 1) : want >> 1;
                }
            }
            assert_int_equal(agent_journal_crc32(data + off, len), want ^ 0xffffffffu);
        }
    }
}

/* ---- the journal ------------------------------------------------------------------- */

static void test_read_commit_and_reopen_reads_nothing_again(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 0);
    append_n(j, 100, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 100);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(c->ids[i], i + 1);
        char want[32];
        (void)snprintf(want, sizeof want, "ktwin/real/pole/p%zu", i);
        assert_string_equal(c->topics[i], want);
    }
    agent_journal_commit_read(j);
    /* Nothing more to read. */
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 0);
    agent_journal_free(j);
    /* Fully consumed: the files are gone and a reopen reads nothing. */
    assert_int_equal(count_segments(f), 0);
    j = jopen(f, 0);
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 0);
    agent_journal_free(j);
    kt_free(c);
}

static void test_uncommitted_records_are_replayed_with_ids_continuing(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 0);
    append_n(j, 10, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    /* Read 4 and commit them, read 3 more without committing. */
    assert_int_equal(agent_journal_read(j, collect_cb, c, 4, &n, NULL), KT_OK);
    assert_int_equal(n, 4);
    agent_journal_commit_read(j);
    assert_int_equal(agent_journal_read(j, collect_cb, c, 3, &n, NULL), KT_OK);
    assert_int_equal(n, 3);
    agent_journal_free(j); /* "crash" before the second commit */

    j = jopen(f, 0);
    c->n = 0;
    /* The reader restarts at the segment start (the caller's watermark dedupes). */
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 10);
    assert_int_equal(c->ids[0], 1);
    assert_int_equal(c->ids[9], 10);
    /* New appends continue after the highest id on disk. */
    append_n(j, 1, 10);
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(c->ids[0], 11);
    /* A floor from the caller wins when higher. */
    agent_journal_set_next_id(j, 500);
    append_n(j, 1, 11);
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(c->ids[0], 500);
    agent_journal_free(j);
    kt_free(c);
}

static void test_torn_tail_is_skipped_and_counted(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 0);
    append_n(j, 3, 0);
    agent_journal_free(j);
    char path[600];
    newest_segment(f, path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* Cut the last record in half, as a crash during write(2) or power loss would. */
    assert_int_equal(truncate(path, st.st_size - 5), 0);

    j = jopen(f, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 2);
    agent_journal_stats s;
    agent_journal_stats_get(j, &s);
    assert_int_equal(s.torn, 1);
    assert_true(s.torn_bytes > 0);
    /* The next id is past the two good records; appends and reads go on. */
    append_n(j, 1, 3);
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(c->ids[0], 3);
    agent_journal_free(j);
    kt_free(c);
}

static void test_corrupt_record_ends_the_segment(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 0);
    append_n(j, 3, 0);
    agent_journal_free(j);
    char path[600];
    newest_segment(f, path, sizeof path);
    /* Flip a byte inside the second record's payload. */
    size_t rec = agent_journal_record_len(strlen("ktwin/real/pole/p0"), strlen("{\"i\":0}"));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)(2 * rec - 2)), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)(2 * rec - 2)), 1);
    close(fd);

    j = jopen(f, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 1);
    agent_journal_stats s;
    agent_journal_stats_get(j, &s);
    assert_int_equal(s.torn, 1);
    assert_int_equal(s.torn_bytes, 2 * rec);
    agent_journal_free(j);
    kt_free(c);
}

static void test_segments_rotate_and_are_unlinked_after_commit(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 200); /* about 3 records per segment */
    append_n(j, 30, 0);
    assert_true(count_segments(f) >= 8);
    assert_true(agent_journal_bytes(j) > 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    /* Stop early once: the cursor stays before the refused record. */
    c->stop_after = 10;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 10);
    c->stop_after = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 20);
    assert_int_equal(c->n, 30);
    for (size_t i = 0; i < 30; i++) {
        assert_int_equal(c->ids[i], i + 1);
    }
    agent_journal_commit_read(j);
    /* Only the active segment can be left. */
    assert_true(count_segments(f) <= 1);
    /* The next append starts a fresh segment (rotation requested), and the old one goes. */
    append_n(j, 1, 30);
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 1);
    agent_journal_commit_read(j);
    assert_int_equal(count_segments(f), 1);
    agent_journal_free(j);
    assert_int_equal(count_segments(f), 0);
    kt_free(c);
}

static void test_rewind_reads_the_batch_again(void **state)
{
    fixture *f = *state;
    agent_journal *j = jopen(f, 0);
    append_n(j, 5, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    size_t n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, 5, &n, NULL), KT_OK);
    assert_int_equal(n, 5);
    agent_journal_rewind(j);
    c->n = 0;
    assert_int_equal(agent_journal_read(j, collect_cb, c, SIZE_MAX, &n, NULL), KT_OK);
    assert_int_equal(n, 5);
    assert_int_equal(c->ids[0], 1);
    agent_journal_free(j);
    kt_free(c);
}

static void test_oversized_record_is_refused(void **state)
{
    fixture *f = *state;
    agent_journal *j = NULL;
    agent_journal_opts o = { .dir = f->dir, .max_record_bytes = 100 };
    assert_int_equal(agent_journal_open(&j, &o, NULL), KT_OK);
    uint8_t big[200] = { 0 };
    kt_err err = { 0 };
    assert_int_equal(agent_journal_append(j, "t", 1, big, sizeof big, 0, 0, 0, NULL, &err),
                     KT_ETOOBIG);
    assert_non_null(strstr(err.msg, "cap"));
    agent_journal_free(j);
}

/*
 * A child appends as fast as it can and reports each id on a pipe after the
 * append returned; the parent SIGKILLs it. Every reported id must be read
 * back (the page cache survives the process), in order, with at most the one
 * record in flight torn.
 */
static void test_sigkill_mid_stream_loses_no_reported_record(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        agent_journal *j = NULL;
        agent_journal_opts o = { .dir = f->dir, .segment_bytes = 64 * 1024 };
        if (agent_journal_open(&j, &o, NULL) != KT_OK) {
            _exit(3);
        }
        char payload[300];
        memset(payload, 'x', sizeof payload);
        for (;;) {
            uint64_t id = 0;
            if (agent_journal_append(j, "ktwin/real/a/b", 14, (const uint8_t *)payload,
                                     sizeof payload, 0, 0, 0, &id, NULL) != KT_OK) {
                _exit(4);
            }
            if (write(p[1], &id, sizeof id) != (ssize_t)sizeof id) {
                _exit(5);
            }
        }
    }
    close(p[1]);
    uint64_t last = 0;
    uint64_t id;
    while (last < 2000 && read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        last = id;
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Drain what the child reported before it died. */
    while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        last = id;
    }
    close(p[0]);
    assert_true(last >= 2000);

    agent_journal *j = jopen(f, 0);
    collect *c = kt_xcalloc(1, sizeof *c);
    uint64_t expect = 1;
    bool ok = true;
    for (;;) {
        c->n = 0;
        size_t n = 0;
        assert_int_equal(agent_journal_read(j, collect_cb, c, 4096, &n, NULL), KT_OK);
        for (size_t i = 0; i < n && i < 4096; i++) {
            ok = ok && c->ids[i] == expect;
            expect++;
        }
        if (n == 0) {
            break;
        }
    }
    assert_true(ok);
    assert_true(expect - 1 >= last);
    agent_journal_stats s;
    agent_journal_stats_get(j, &s);
    assert_true(s.torn <= 1);
    agent_journal_free(j);
    kt_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trip_and_bad_records),
        cmocka_unit_test(test_codec_msgid_flags_and_v1_records),
        cmocka_unit_test_setup_teardown(test_read_commit_and_reopen_reads_nothing_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_uncommitted_records_are_replayed_with_ids_continuing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_skipped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_record_ends_the_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_rotate_and_are_unlinked_after_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rewind_reads_the_batch_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_record_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_mid_stream_loses_no_reported_record, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
