/*
 * fuzz_journal.c — the ingest journal's record parser on arbitrary bytes:
 * (1) agent_journal_decode walked over the input as a segment reader does,
 * checking that every record it accepts is inside the input and, re-encoded
 * in the current format, decodes to the same fields; (2) the input written as a finished segment file and
 * read back through agent_journal_open/read (torn-tail handling, ids).
 * Must never crash, leak or hang; errors are expected.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "kt/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool count_cb(const agent_journal_rec *r, void *user)
{
    size_t *n = user;
    (*n)++;
    return r->topic_len <= UINT16_MAX;
}

static void walk(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        agent_journal_rec r;
        size_t used = 0;
        kt_err err = { 0 };
        kt_status st = agent_journal_decode(&r, &used, data + pos, size - pos, 1u << 20, &err);
        if (st != KT_OK) {
            break;
        }
        if (used == 0 || used > size - pos) {
            abort();
        }
        /* Re-encoded (always the current format) it decodes to the same record. */
        size_t cap = agent_journal_record_len(r.topic_len, r.payload_len);
        uint8_t *again = kt_xmalloc(cap);
        size_t n = agent_journal_encode(again, cap, &r);
        agent_journal_rec back;
        size_t used2 = 0;
        if (n != cap || agent_journal_decode(&back, &used2, again, n, 1u << 20, &err) != KT_OK ||
            used2 != n || back.id != r.id || back.recv_wall_ms != r.recv_wall_ms ||
            back.mqtt_msgid != r.mqtt_msgid || back.flags != r.flags ||
            back.topic_len != r.topic_len || back.payload_len != r.payload_len ||
            memcmp(back.topic, r.topic, r.topic_len) != 0 ||
            memcmp(back.payload, r.payload, r.payload_len) != 0) {
            abort();
        }
        kt_free(again);
        pos += used;
    }
}

static void through_files(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/kt_fuzz_journal.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return;
    }
    char seg[128];
    (void)snprintf(seg, sizeof seg, "%s/journal-0000000000000001.log", dir);
    FILE *f = fopen(seg, "wb");
    if (f != NULL) {
        if (size > 0) {
            (void)fwrite(data, 1, size, f);
        }
        (void)fclose(f);
        agent_journal *j = NULL;
        agent_journal_opts o = { .dir = dir, .max_record_bytes = 1u << 20 };
        if (agent_journal_open(&j, &o, NULL) == KT_OK) {
            size_t n = 0;
            (void)agent_journal_read(j, count_cb, &n, SIZE_MAX, NULL, NULL);
            agent_journal_commit_read(j);
            agent_journal_free(j); /* unlinks the consumed segments */
        }
    }
    (void)unlink(seg);
    (void)snprintf(seg, sizeof seg, "%s/journal-0000000000000002.log", dir);
    (void)unlink(seg);
    (void)rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk(data, size);
    if (size <= 256 * 1024) {
        through_files(data, size);
    }
    return 0;
}
