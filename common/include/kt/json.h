/*
 * kt/json.h — small, strict helpers over cJSON.
 *
 * Parsing is bounded (max_len) and reports where a syntax error is, as a
 * byte offset and line:col. Typed getters tell a missing key (KT_ENOTFOUND)
 * from a value of the wrong type or range (KT_EINVAL) and name the key in
 * the message, e.g. "keepalive_s: 0 out of range 1..3600".
 *
 * Memory: cJSON allocates through kt_malloc/kt_free (kt_json_init), so
 * allocation counting and kt_mem_fail_at cover JSON too. Trees from
 * kt_json_parse are the caller's and go back through cJSON_Delete(); strings
 * returned by the getters are borrowed from their tree.
 *
 * Thread: any; a cJSON tree belongs to one thread. (cJSON keeps the position
 * of its last parse error in a global, which we never read: positions come
 * from return_parse_end.)
 */
#ifndef KT_COMMON_JSON_H
#define KT_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/mem.h"

/*
 * Route cJSON's allocations through kt_malloc/kt_free. Idempotent and
 * thread-safe (pthread_once); kt_json_parse and kt_json_print_buf call it,
 * so call it yourself only before building trees with cJSON_Create*.
 * Thread: any.
 */
void kt_json_init(void);

/*
 * Parse buf[0..len) (need not be NUL-terminated) into *out. One JSON value,
 * optionally surrounded by whitespace; anything after it is an error.
 *
 * Returns KT_OK with *out owned by the caller (cJSON_Delete); KT_ETOOBIG when
 * len > max_len (nothing parsed); KT_EINVAL for a syntax error or trailing
 * data, with a message like "JSON syntax error at line 3:7 (byte 25)";
 * KT_ENOMEM when an allocation fails. On failure *out is NULL.
 * Thread: any.
 */
kt_status kt_json_parse(const char *buf, size_t len, size_t max_len, cJSON **out, kt_err *err);

/*
 * Scratch parsing. Between kt_json_scratch_begin(a) and kt_json_scratch_end()
 * every cJSON allocation of the calling thread comes from arena a (a failed
 * block allocation is KT_ENOMEM as usual) and cJSON's frees do nothing: a
 * tree parsed, used and deleted inside the scope costs a few bump
 * allocations instead of a malloc and a free per node and string. Rules:
 * nothing cJSON allocates inside may be used after the scope (the caller
 * resets or frees a afterwards); a tree from before the scope must not be
 * deleted inside it (its memory would leak); scopes do not nest.
 * kt_json_print_buf is unaffected (it writes to a kt_buf).
 * Thread: per thread (the scope is the calling thread's).
 */
void kt_json_scratch_begin(kt_arena *a);
void kt_json_scratch_end(void);

/*
 * Typed getters. obj must be a JSON object (else KT_EINVAL); key is matched
 * case-sensitively. Each returns KT_OK and sets *out; KT_ENOTFOUND when the
 * key is absent; KT_EINVAL when the value has the wrong type (JSON null is a
 * wrong type, not a missing key) or is out of range. Messages name the key.
 * *out is left unchanged on failure. Thread: the owner of obj.
 */

/* A string; *out is borrowed from obj and lives as long as it. */
kt_status kt_json_get_str(const cJSON *obj, const char *key, const char **out, kt_err *err);

/*
 * An integer in min..max. The number must be integral (3 or 3.0, not 3.5).
 * Beyond +-2^53 JSON numbers are not exact in a double; keep bounds inside.
 */
kt_status kt_json_get_int(
    const cJSON *obj, const char *key, int64_t *out, int64_t min, int64_t max, kt_err *err);

/* Any finite number. */
kt_status kt_json_get_double(const cJSON *obj, const char *key, double *out, kt_err *err);

/* true or false (not 0/1, not "true"). */
kt_status kt_json_get_bool(const cJSON *obj, const char *key, bool *out, kt_err *err);

/*
 * Append v, printed without whitespace, to out: the same bytes as
 * cJSON_PrintUnformatted, written straight into out (no intermediate copy).
 * Returns KT_OK; KT_EINVAL for a NULL v, a node of no valid type or nesting
 * over CJSON_NESTING_LIMIT; KT_ENOMEM when out cannot grow; KT_ETOOBIG when out would pass its max (out unchanged
 * on every failure). Thread: the owner of v and out.
 */
kt_status kt_json_print_buf(const cJSON *v, kt_buf *out);

#endif
