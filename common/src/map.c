/*
 * map.c — linear-probing string map (FNV-1a hash). See kt/map.h.
 */
#include "kt/map.h"

#include <string.h>

#include "kt/mem.h"

void kt_map_init(kt_map *m)
{
    memset(m, 0, sizeof *m);
}

void kt_map_fini(kt_map *m)
{
    kt_free(m->_slots);
    memset(m, 0, sizeof *m);
}

uint32_t kt_map_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static void map_grow(kt_map *m, size_t cap)
{
    kt_map_slot *old = m->_slots;
    size_t old_cap = m->_cap;
    m->_slots = kt_xcalloc(cap, sizeof *m->_slots);
    m->_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == NULL) {
            continue;
        }
        size_t j = old[i].hash & (cap - 1);
        while (m->_slots[j].key != NULL) {
            j = (j + 1) & (cap - 1);
        }
        m->_slots[j] = old[i];
    }
    kt_free(old);
}

void kt_map_reserve(kt_map *m, size_t n)
{
    size_t cap = 16;
    while (cap * 7 / 10 < n) {
        cap *= 2;
    }
    if (cap > m->_cap) {
        map_grow(m, cap);
    }
}

static kt_map_slot *map_find(const kt_map *m, const char *key, size_t len, uint32_t h)
{
    if (m->_cap == 0) {
        return NULL;
    }
    size_t j = h & (m->_cap - 1);
    for (;;) {
        kt_map_slot *s = &m->_slots[j];
        if (s->key == NULL) {
            return s;
        }
        if (s->hash == h && s->keylen == len && memcmp(s->key, key, len) == 0) {
            return s;
        }
        j = (j + 1) & (m->_cap - 1);
    }
}

void *kt_map_getn(const kt_map *m, const char *key, size_t len)
{
    kt_map_slot *s = map_find(m, key, len, kt_map_hash(key, len));
    return s != NULL && s->key != NULL ? s->value : NULL;
}

void *kt_map_get(const kt_map *m, const char *key)
{
    return kt_map_getn(m, key, strlen(key));
}

static kt_map_slot *map_slot_for_insert(kt_map *m, const char *key, size_t len, uint32_t h)
{
    if ((m->n + 1) * 10 > m->_cap * 7) {
        map_grow(m, m->_cap == 0 ? 16 : m->_cap * 2);
    }
    return map_find(m, key, len, h);
}

void *kt_map_put(kt_map *m, const char *key, void *value)
{
    size_t len = strlen(key);
    uint32_t h = kt_map_hash(key, len);
    kt_map_slot *s = map_slot_for_insert(m, key, len, h);
    if (s->key != NULL) {
        return s->value;
    }
    s->key = key;
    s->hash = h;
    s->keylen = (uint32_t)len;
    s->value = value;
    m->n++;
    return NULL;
}

void kt_map_set(kt_map *m, const char *key, void *value)
{
    size_t len = strlen(key);
    uint32_t h = kt_map_hash(key, len);
    kt_map_slot *s = map_slot_for_insert(m, key, len, h);
    if (s->key == NULL) {
        s->key = key;
        s->hash = h;
        s->keylen = (uint32_t)len;
        m->n++;
    }
    s->value = value;
}

int kt_map_next(const kt_map *m, size_t *iter, const char **key, void **value)
{
    while (*iter < m->_cap) {
        kt_map_slot *s = &m->_slots[(*iter)++];
        if (s->key != NULL) {
            if (key != NULL) {
                *key = s->key;
            }
            if (value != NULL) {
                *value = s->value;
            }
            return 1;
        }
    }
    return 0;
}
