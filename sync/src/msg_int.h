/*
 * msg_int.h — codec internals shared inside sync/ (not installed).
 *
 * The server packs SnapshotChunks incrementally: each object is encoded
 * straight into a byte buffer as a repeated `objects` field, and the chunk
 * header and Envelope wrapper are added at the end. This keeps one chunk of
 * bytes in memory instead of a copy of every object, and gives exact sizes,
 * so chunk_bytes is respected to the byte.
 *
 * Thread: any.
 */
#ifndef KT_SYNC_MSG_INT_H
#define KT_SYNC_MSG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/mem.h"
#include "sync/msg.h"

/*
 * A decoder that reuses one arena across messages (STYLE §5 per-message
 * arena): the message it returns lives until the next decode or fini.
 * Sessions use it; sync_msg_decode() is the one-shot form. '_' = private.
 */
typedef struct sync_msg__decoder {
    kt_arena _arena;
    size_t _block;
    sync_msg _msg;
} sync_msg__decoder;

void sync_msg__decoder_init(sync_msg__decoder *d);
void sync_msg__decoder_fini(sync_msg__decoder *d);
/* Give back a block grown past SYNC_MSG__DECODER_KEEP_BYTES for a big message (a snapshot
 * chunk sizes it to ~2 MiB, which otherwise stays resident for the session). The message
 * last returned is gone. Cheap when there is nothing to give back. */
#define SYNC_MSG__DECODER_KEEP_BYTES (256u * 1024u)
void sync_msg__decoder_trim(sync_msg__decoder *d);
/* Same checks and statuses as sync_msg_decode(); *out is borrowed from d. */
kt_status sync_msg__decoder_decode(const sync_msg **out,
                                   sync_msg__decoder *d,
                                   const uint8_t *buf,
                                   size_t len,
                                   const sync_limits *lim,
                                   kt_err *err);

/* Bytes o adds to a SnapshotChunk or Delta (field tag + length + Object). */
size_t sync_msg__object_size(const sync_object *o);

/* Append o as a SnapshotChunk.objects entry to objs. KT_ETOOBIG / KT_ENOMEM / KT_EINVAL. */
kt_status sync_msg__object_append(kt_buf *objs, const sync_object *o, kt_err *err);

/*
 * Append to out one Envelope{snapshot: SnapshotChunk{revision, index, last,
 * objects}} whose objects are the bytes built by sync_msg__object_append.
 */
kt_status sync_msg__chunk_append(kt_buf *out,
                                 uint64_t revision,
                                 uint32_t index,
                                 bool last,
                                 const uint8_t *objs,
                                 size_t objs_len,
                                 kt_err *err);

/* Bytes an Envelope around a chunk of objs_len object bytes takes, at most. */
size_t sync_msg__chunk_overhead(void);

/*
 * Bytes ev adds to an EventBatch (field tag + length + Event), exactly as
 * sync_msg_encode() writes it. ev's required strings must be set.
 */
size_t sync_msg__event_size(const sync_event *ev);

/*
 * Upper bound of an encoded Envelope{EventBatch} whose events take
 * events_bytes (sum of sync_msg__event_size) with an incarnation of inc_len
 * bytes.
 */
size_t sync_msg__batch_size(size_t events_bytes, size_t inc_len);

#endif
