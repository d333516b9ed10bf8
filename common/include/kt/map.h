/*
 * kt/map.h — open-addressing hash map from strings to pointers.
 *
 * Keys are borrowed: the caller keeps them alive as long as the entry (the
 * model keeps keys in its arena). Lookups are O(1) expected; the table
 * doubles at 70 % load. Deleting is not supported (the model is rebuilt,
 * not edited in place).
 *
 * Thread: one owner.
 */
#ifndef KT_COMMON_MAP_H
#define KT_COMMON_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kt_map_slot {
    const char *key;
    uint32_t hash;
    uint32_t keylen;
    void *value;
} kt_map_slot;

typedef struct kt_map {
    kt_map_slot *_slots;
    size_t _cap; /* power of two, or 0 */
    size_t n;    /* entries */
} kt_map;

void kt_map_init(kt_map *m);
void kt_map_fini(kt_map *m);
/* Pre-size for n entries. */
void kt_map_reserve(kt_map *m, size_t n);
uint32_t kt_map_hash(const char *key, size_t len);
/* Returns the value, or NULL. */
void *kt_map_get(const kt_map *m, const char *key);
void *kt_map_getn(const kt_map *m, const char *key, size_t len);
/*
 * Insert key -> value if the key is absent and return NULL; if present,
 * leave the map unchanged and return the existing value.
 */
void *kt_map_put(kt_map *m, const char *key, void *value);
/* Insert or replace. */
void kt_map_set(kt_map *m, const char *key, void *value);

/* Iterate: for (size_t i = 0; kt_map_next(m, &i, &k, &v);) */
int kt_map_next(const kt_map *m, size_t *iter, const char **key, void **value);

#endif
