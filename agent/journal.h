/*
 * agent/journal.h — the MQTT ingest journal: crash-durable before the QoS 1 ack.
 *
 * paho (1.3.x) sends a QoS 1 PUBACK as it reads the PUBLISH and then calls
 * messageArrived, so the message must be made to survive a process kill as
 * soon as possible after that: within messageArrived the paho thread appends
 * each message to the journal with ONE write(2) on an O_APPEND file (the page
 * cache survives a killed process); the loop reads the records back, commits
 * them into SQLite in batches, and then releases the journal space.
 *
 * On disk: a directory of segment files "journal-<16 hex digits>.log". The
 * writer appends to the newest segment only; it starts a new one when the
 * segment passes segment_bytes or when the loop asks (everything written has
 * been consumed), and the loop unlinks a segment once all of its records are
 * committed. A segment found at open is never appended to again.
 *
 * Record (little endian):
 *   u32 magic 'KTJ2' | u32 body_len | u32 crc32(body) | body
 *   body = u64 id | u64 recv_wall_ms | u16 topic_len | u16 mqtt_msgid |
 *          u8 flags | u8 0 | topic | payload
 * (flags bit 0: the broker marked the message DUP, a redelivery). Records of
 * the first format, 'KTJ1' (body without msgid, flags and pad), are still
 * read, with msgid 0 and no flags.
 * ids are strictly increasing across segments and restarts (the caller
 * raises the floor with agent_journal_set_next_id from its own watermark),
 * so "id <= committed watermark" dedupes a replay.
 *
 * Invariants: a record is either wholly valid (magic, length, CRC) or it is
 * not a record. A bad or short record at the end of a segment that is no
 * longer written (torn by a crash or power loss) ends that segment: it is
 * skipped, logged JOURNAL-TORN and counted; everything before it is kept.
 * The tail of the active segment that is not complete yet is simply not
 * read yet.
 *
 * Thread: agent_journal_append from ONE producer thread at a time (paho's
 * receive thread); every other function on the loop thread. The two sides
 * share only atomics (active segment number, byte count, rotation request);
 * no locks. Ownership: the journal owns its fds, its directory entries and
 * the record views it hands to the read callback (valid during the call).
 */
#ifndef KT_AGENT_JOURNAL_H
#define KT_AGENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"

#define AGENT_JOURNAL_MAGIC        0x324a544bu /* "KTJ2" little endian: written */
#define AGENT_JOURNAL_MAGIC_V1     0x314a544bu /* "KTJ1": still read */
#define AGENT_JOURNAL_HDR_BYTES    12u         /* magic + body_len + crc */
#define AGENT_JOURNAL_FIX_BYTES    22u /* id + recv_wall_ms + topic_len + msgid + flags + pad */
#define AGENT_JOURNAL_FIX_BYTES_V1 18u /* id + recv_wall_ms + topic_len */

/* agent_journal_rec.flags */
#define AGENT_JOURNAL_F_DUP 0x01u /* MQTT DUP: the broker sent this message before */

typedef struct agent_journal agent_journal;

/* One record, a view: topic and payload point into a buffer of the journal. */
typedef struct agent_journal_rec {
    uint64_t id;
    uint64_t recv_wall_ms;
    uint16_t mqtt_msgid; /* MQTT packet id (0 for QoS 0) */
    uint8_t flags;       /* AGENT_JOURNAL_F_* */
    const char *topic;   /* NOT NUL-terminated */
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
} agent_journal_rec;

/* ---- the record codec (pure; fuzzed by tests/fuzz/fuzz_journal.c) -------- */

/* Bytes of the encoded record for these sizes. */
size_t agent_journal_record_len(size_t topic_len, size_t payload_len);

/* CRC-32 (IEEE, as zlib's crc32) of buf. */
uint32_t agent_journal_crc32(const uint8_t *buf, size_t len);

/*
 * Encode r into out (cap bytes). Returns the bytes written, or 0 when cap is
 * too small or topic_len > UINT16_MAX. Thread: any.
 */
size_t agent_journal_encode(uint8_t *out, size_t cap, const agent_journal_rec *r);

/*
 * Decode one record from the start of buf. On KT_OK *out views buf and
 * *used_out is the record's length. Returns KT_EAGAIN when buf holds only a
 * prefix of a plausible record (need more bytes); KT_EPROTO when it is not a
 * record (bad magic, body_len < the fixed part or > max_body, topic_len past
 * the body, CRC mismatch), with err->msg saying which; nothing else.
 * Thread: any.
 */
kt_status agent_journal_decode(agent_journal_rec *out,
                               size_t *used_out,
                               const uint8_t *buf,
                               size_t len,
                               size_t max_body,
                               kt_err *err);

/* ---- the journal ----------------------------------------------------------- */

typedef struct agent_journal_opts {
    const char *dir;         /* created (mode 0700) when missing; required */
    size_t segment_bytes;    /* start a new segment past this; 0 = 8 MiB */
    size_t max_record_bytes; /* largest body accepted/read; 0 = 1 MiB + 64 KiB */
} agent_journal_opts;

typedef struct agent_journal_stats {
    uint64_t appended;       /* records written by append */
    uint64_t append_errors;  /* write(2) failures (the message was not acked) */
    uint64_t read;           /* records handed to the read callback */
    uint64_t torn;           /* torn/corrupt tails skipped */
    uint64_t torn_bytes;     /* bytes skipped with them */
    uint64_t segments_freed; /* segments unlinked */
} agent_journal_stats;

/*
 * Open the journal in opts->dir: find the existing segments (they are read
 * first, oldest first, then never written again), scan them for the highest
 * valid id, and create a fresh active segment. Returns KT_OK; KT_EINVAL (no
 * dir); KT_EIO (mkdir/open/readdir failed, with errno). Thread: loop, before
 * the producer starts.
 */
kt_status agent_journal_open(agent_journal **out, const agent_journal_opts *opts, kt_err *err);

/*
 * Free. Segments whose records were all consumed (agent_journal_commit_read)
 * are unlinked, the rest stay for the next open. The producer must be
 * stopped. NULL is a no-op. Thread: loop.
 */
void agent_journal_free(agent_journal *j);

/*
 * Raise the next id to at least next_id (the caller's committed watermark
 * + 1, so ids never repeat after the journal files are gone). Thread: loop,
 * before the producer starts.
 */
void agent_journal_set_next_id(agent_journal *j, uint64_t next_id);

/*
 * Append one record with ONE write(2). *id_out (nullable) gets its id.
 * Returns KT_OK: the record is in the page cache (survives a process kill);
 * KT_ETOOBIG: body over max_record_bytes or topic over 65535 bytes; KT_EIO:
 * write failed or was short (the partial record is torn and is skipped by
 * readers; the message must NOT be acknowledged); KT_ENOMEM.
 * Thread: the single producer thread (paho); never blocks on anything but
 * the write itself.
 */
kt_status agent_journal_append(agent_journal *j,
                               const char *topic,
                               size_t topic_len,
                               const uint8_t *payload,
                               size_t payload_len,
                               uint64_t recv_wall_ms,
                               uint16_t mqtt_msgid,
                               uint8_t flags,
                               uint64_t *id_out,
                               kt_err *err);

/*
 * Called per record by agent_journal_read: return true to consume it and go
 * on, false to stop before it (it is read again next time).
 */
typedef bool (*agent_journal_rec_cb)(const agent_journal_rec *r, void *user);

/*
 * Hand up to max_n complete records after the read cursor to cb, oldest
 * first, advancing the (tentative) cursor. *n_out (nullable) gets how many
 * were consumed. Torn tails of finished segments are skipped (JOURNAL-TORN).
 * Returns KT_OK or KT_EIO (a read/open failed). Thread: loop.
 */
kt_status agent_journal_read(agent_journal *j,
                             agent_journal_rec_cb cb,
                             void *user,
                             size_t max_n,
                             size_t *n_out,
                             kt_err *err);

/*
 * The records consumed so far are durable elsewhere: make the cursor
 * permanent, unlink segments wholly behind it, and ask the writer to start a
 * new segment when the active one is fully consumed. Thread: loop.
 */
void agent_journal_commit_read(agent_journal *j);

/* Go back to the last committed cursor (the batch was rolled back). Thread: loop. */
void agent_journal_rewind(agent_journal *j);

/* The highest id handed out or found on disk so far (0 = none). Any thread. */
uint64_t agent_journal_last_id(const agent_journal *j);

/* Bytes in the segments on disk (including consumed but not yet unlinked). Any thread. */
uint64_t agent_journal_bytes(const agent_journal *j);

/* Counters. Thread: loop (append counters are atomics, read racily). */
void agent_journal_stats_get(const agent_journal *j, agent_journal_stats *out);

#endif
