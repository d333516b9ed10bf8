/*
 * kt/mem.h — all allocation goes through here.
 *
 * OOM policy (STYLE.md §5): internal bookkeeping uses kt_x* which log and
 * abort on failure; sizes that come from untrusted input are checked against
 * a cap first, then kt_malloc may fail and the caller returns KT_ENOMEM.
 * Allocations are counted, and tests can make the Nth allocation fail
 * (kt_mem_fail_at, or KT_FAIL_ALLOC_AT=N in the environment).
 *
 * kt_arena is a bump allocator for many small objects with one lifetime
 * (a parsed document, the strings of a model). Freeing the arena frees all.
 *
 * Thread: kt_malloc family any; an arena belongs to one thread.
 */
#ifndef KT_COMMON_MEM_H
#define KT_COMMON_MEM_H

#include <stddef.h>
#include <stdint.h>

void *kt_malloc(size_t n);          /* may return NULL */
void *kt_calloc(size_t n, size_t m); /* may return NULL */
void *kt_realloc(void *p, size_t n); /* may return NULL; p stays valid then */
void kt_free(void *p);               /* NULL is a no-op */

void *kt_xmalloc(size_t n); /* aborts on OOM */
void *kt_xcalloc(size_t n, size_t m);
void *kt_xrealloc(void *p, size_t n);
char *kt_xstrdup(const char *s);
char *kt_xstrndup(const char *s, size_t n);

/* Copy src into dst of size cap, always NUL-terminated; returns strlen(src). */
size_t kt_strlcpy(char *dst, const char *src, size_t cap);

/* Number of kt_* allocation calls so far by the calling thread (for tests and
 * fault loops; per thread so the hot path needs no shared atomic). */
uint64_t kt_mem_allocs(void);
/* Make the n-th allocation from now, counted over all threads, fail once
 * (1 = next); 0 disables. */
void kt_mem_fail_at(uint64_t n);

/* Bump allocator. Zero-initialise, or use kt_arena_init. */
typedef struct kt_arena_block kt_arena_block;
typedef struct kt_arena {
    kt_arena_block *_head;
    size_t _block_size;
    size_t total_bytes; /* bytes obtained from the system */
} kt_arena;

void kt_arena_init(kt_arena *a, size_t block_size);
/* Aligned to 16; aborts on OOM (arena users are bookkeeping). */
void *kt_arena_alloc(kt_arena *a, size_t n);
void *kt_arena_calloc(kt_arena *a, size_t n);
/* Like kt_arena_alloc, but returns NULL when memory runs out (sizes a peer controls). */
void *kt_arena_try_alloc(kt_arena *a, size_t n);
char *kt_arena_strndup(kt_arena *a, const char *s, size_t n);
char *kt_arena_strdup(kt_arena *a, const char *s);
/* Release every block but one of the regular size and rewind it, for per-message reuse. */
void kt_arena_reset(kt_arena *a);
void kt_arena_fini(kt_arena *a);

#endif
