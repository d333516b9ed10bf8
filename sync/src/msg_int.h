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
#include "sync/msg.h"

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

#endif
