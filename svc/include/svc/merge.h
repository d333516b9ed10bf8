/*
 * svc/merge.h — KTWIN's upsert-merge of twin state, as a pure function.
 *
 * KTWIN's event store (KTWIN.md §4, POST /api/v1/twin-events) loads the
 * latest event of (interface, instance), merges the new event's data over it
 * with mergo.MergeWithOverwrite(latest, new) on map[string]interface{} and
 * stores the merged document as the new event. The rules, as implemented
 * here and tested in tests/unit/svc/test_merge.c:
 *
 *   - both documents must be JSON objects;
 *   - a key only in latest is kept; a key only in next is added;
 *   - a key in both: when both values are objects they are merged by the
 *     same rules, recursively; otherwise next's value replaces latest's
 *     (arrays are replaced whole, never concatenated; a JSON null in next
 *     replaces too, as mergo's overwrite stores the nil interface);
 *   - key order: latest's keys in their order, then next's new keys in
 *     theirs (Go maps have no order; ours is deterministic);
 *   - duplicate keys inside one document: the last one wins (Go's
 *     encoding/json semantics) and only one is written.
 *
 * Thread: any (no shared state). Ownership: inputs borrowed; out is the
 * caller's.
 */
#ifndef KT_SVC_MERGE_H
#define KT_SVC_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

/* Nesting deeper than this (in either document) is refused with KT_EINVAL. */
#define SVC_MERGE_MAX_DEPTH 64

/*
 * Merge next[0..next_len) over latest[0..latest_len) and append the merged
 * document (compact JSON) to out. latest may be NULL / 0 (nothing stored
 * yet): the result is next, validated and compacted.
 *
 * Returns KT_OK; KT_EINVAL when either side is not valid JSON, not an
 * object, or nested deeper than SVC_MERGE_MAX_DEPTH (err says which side:
 * "latest: ..." / "data: ..."; the hub's store then keeps next unmerged);
 * KT_ETOOBIG when out would pass its cap or an input is over 16 MiB;
 * KT_ENOMEM. out is unchanged on failure. Matches hub_evstore_merge_cb
 * apart from the trailing user pointer. Thread: any.
 */
kt_status svc_merge_json(kt_buf *out,
                         const uint8_t *latest,
                         size_t latest_len,
                         const uint8_t *next,
                         size_t next_len,
                         kt_err *err);

#endif
