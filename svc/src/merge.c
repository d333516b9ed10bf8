/*
 * svc/merge.c — KTWIN's upsert-merge (mergo.MergeWithOverwrite on
 * map[string]interface{}) over cJSON trees. Rules in svc/merge.h.
 *
 * DESIGN. Both documents are parsed (bounded; into a scratch arena, as
 * nothing of either tree outlives the call), de-duplicated (the last of
 * equal keys wins, as Go's encoding/json), then next's members are moved
 * into latest's tree: lookups scan small objects (SMALL_OBJECT members,
 * every KTWIN event) and go through a kt_map per bigger object level, so a
 * document with many keys still merges in linear time. A replaced member keeps its
 * node (and key string) and only takes over the new value's payload, so the
 * map's borrowed keys stay valid.
 *
 * Thread: any. Ownership: every tree is local to one call.
 */
#include "svc/merge.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "kt/json.h"
#include "kt/map.h"
#include "kt/mem.h"

#define MERGE_MAX_INPUT (16u * 1024u * 1024u)
/* Scratch arena block for the two trees of a merge (KTWIN documents: a few hundred bytes). */
#define MERGE_SCRATCH_BLOCK (8u * 1024u)

/* Deepest nesting of v (a scalar is 1). Stops counting past limit. */
static int depth_of(const cJSON *v, int limit)
{
    int best = 0;
    const cJSON *c;
    if (limit <= 0) {
        return 1;
    }
    for (c = v->child; c != NULL; c = c->next) {
        int d = depth_of(c, limit - 1);
        if (d > best) {
            best = d;
        }
        if (best >= limit) {
            break;
        }
    }
    return best + 1;
}

/*
 * Objects with at most SMALL_OBJECT members (every KTWIN event) are searched
 * by a linear scan: cheaper than building a kt_map (its allocations were
 * most of a small merge's cost). Bigger ones use a kt_map, so a document
 * with many keys still merges in linear time.
 */
#define SMALL_OBJECT 16

static size_t count_children(const cJSON *v, size_t limit)
{
    size_t n = 0;
    for (const cJSON *c = v->child; c != NULL && n <= limit; c = c->next) {
        n++;
    }
    return n;
}

/* The member of obj after `after` (NULL = from the first) named key, or NULL. */
static cJSON *find_after(cJSON *obj, const cJSON *after, const char *key)
{
    for (cJSON *c = after != NULL ? after->next : obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, key) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Remove earlier duplicates of each key (last wins), recursively. */
static void dedupe(cJSON *v)
{
    cJSON *c;
    cJSON *prev;
    if (cJSON_IsObject(v) && count_children(v, SMALL_OBJECT) <= SMALL_OBJECT) {
        c = v->child;
        while (c != NULL) {
            cJSON *next = c->next;
            if (c->string != NULL && find_after(v, c, c->string) != NULL) {
                cJSON_Delete(cJSON_DetachItemViaPointer(v, c)); /* a later one wins */
            }
            c = next;
        }
    } else if (cJSON_IsObject(v)) {
        kt_map seen;
        kt_map_init(&seen);
        /* walk from the last child backwards: the first seen of a key is the last one */
        c = v->child;
        while (c != NULL && c->next != NULL) {
            c = c->next;
        }
        while (c != NULL) {
            /* cJSON keeps prev of the first child pointing at the last one */
            prev = (c == v->child) ? NULL : c->prev;
            if (c->string != NULL && kt_map_put(&seen, c->string, c) != NULL) {
                cJSON_Delete(cJSON_DetachItemViaPointer(v, c));
            }
            c = prev;
        }
        kt_map_fini(&seen);
    }
    for (c = v->child; c != NULL; c = c->next) {
        dedupe(c);
    }
}

/* d takes over s's value (payload); d keeps its key and place. s is freed. */
static void take_value(cJSON *d, cJSON *s)
{
    int keep = d->type & cJSON_StringIsConst;
    if (d->child != NULL) {
        cJSON_Delete(d->child);
        d->child = NULL;
    }
    if (!(d->type & cJSON_IsReference) && d->valuestring != NULL) {
        cJSON_free(d->valuestring);
    }
    d->valuestring = s->valuestring;
    d->valueint = s->valueint;
    d->valuedouble = s->valuedouble;
    d->child = s->child;
    d->type = (s->type & ~cJSON_StringIsConst) | keep;
    s->child = NULL;
    s->valuestring = NULL;
    s->type = cJSON_NULL | (s->type & cJSON_StringIsConst);
    cJSON_Delete(s);
}

static void merge_into(cJSON *dst, cJSON *src);

/* Merge member s (detached from its object) into dst, whose member d has its key (or NULL). */
static void merge_member(cJSON *dst, cJSON *d, cJSON *s)
{
    if (d == NULL) {
        cJSON_AddItemToArray(dst, s); /* appends the member with its key */
    } else if (cJSON_IsObject(d) && cJSON_IsObject(s)) {
        merge_into(d, s);
        cJSON_Delete(s);
    } else {
        take_value(d, s);
    }
}

/* Move every member of src into dst (both objects, deduplicated). src is emptied. */
static void merge_into(cJSON *dst, cJSON *src)
{
    cJSON *c;
    if (count_children(dst, SMALL_OBJECT) + count_children(src, SMALL_OBJECT) <= SMALL_OBJECT) {
        while (src->child != NULL) {
            cJSON *s = cJSON_DetachItemViaPointer(src, src->child);
            merge_member(dst, s->string != NULL ? find_after(dst, NULL, s->string) : NULL, s);
        }
        return;
    }
    kt_map idx;
    kt_map_init(&idx);
    for (c = dst->child; c != NULL; c = c->next) {
        if (c->string != NULL) {
            kt_map_put(&idx, c->string, c);
        }
    }
    while (src->child != NULL) {
        cJSON *s = cJSON_DetachItemViaPointer(src, src->child);
        cJSON *d = (s->string != NULL) ? kt_map_get(&idx, s->string) : NULL;
        if (d == NULL && s->string != NULL) {
            kt_map_put(&idx, s->string, s);
        }
        merge_member(dst, d, s);
    }
    kt_map_fini(&idx);
}

static kt_status
parse_side(const char *side, const uint8_t *p, size_t len, cJSON **out, kt_err *err)
{
    kt_err e = { 0 };
    kt_status st = kt_json_parse((const char *)p, len, MERGE_MAX_INPUT, out, &e);
    if (st == KT_ETOOBIG) {
        return kt_err_set(err, KT_ETOOBIG, "%s: %zu bytes over the %u cap", side, len,
                          MERGE_MAX_INPUT);
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "%s: %s", side, e.msg);
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return kt_err_set(err, KT_EINVAL, "%s: not a JSON object", side);
    }
    if (depth_of(*out, SVC_MERGE_MAX_DEPTH + 1) > SVC_MERGE_MAX_DEPTH) {
        cJSON_Delete(*out);
        *out = NULL;
        return kt_err_set(err, KT_EINVAL, "%s: nested deeper than %d", side, SVC_MERGE_MAX_DEPTH);
    }
    dedupe(*out);
    return KT_OK;
}

kt_status svc_merge_json(kt_buf *out,
                         const uint8_t *latest,
                         size_t latest_len,
                         const uint8_t *next,
                         size_t next_len,
                         kt_err *err)
{
    cJSON *l = NULL;
    cJSON *n = NULL;
    kt_status st;
    /* Both trees live only in this call: parse them into a scratch arena. */
    kt_arena scratch;
    kt_arena_init(&scratch, MERGE_SCRATCH_BLOCK);
    kt_json_scratch_begin(&scratch);
    st = parse_side("data", next, next_len, &n, err);
    if (st != KT_OK) {
        goto done;
    }
    if (latest != NULL && latest_len > 0) {
        st = parse_side("latest", latest, latest_len, &l, err);
        if (st != KT_OK) {
            goto done;
        }
        merge_into(l, n);
    } else {
        l = n;
        n = NULL;
    }
    st = kt_json_print_buf(l, out);
    if (st != KT_OK) {
        st = kt_err_set(err, st, "merged document: %s", kt_status_str(st));
    }
done:
    cJSON_Delete(l);
    cJSON_Delete(n);
    kt_json_scratch_end();
    kt_arena_fini(&scratch);
    return st;
}
