/*
 * mem.c — counted allocation, on-demand failure for tests, and the arena.
 *
 * The only file that calls malloc/free directly (checked by .ci/run).
 */
#include "kt/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kt/log.h"

/*
 * Hot path: every kt_malloc/kt_calloc/kt_realloc. The common case (no
 * failure armed, environment already read) is a thread-local increment and
 * two relaxed loads; no read-modify-write on a shared cache line (an atomic
 * counter shared by the loop and paho's threads cost ~4 % of an agent's CPU).
 * The count is per thread (kt_mem_allocs: the calling thread's). An armed
 * failure (kt_mem_fail_at) counts down process-wide, in the slow path: the
 * n-th allocation from then, on any thread, fails once.
 */
static _Thread_local uint64_t tl_allocs;
static atomic_uint_fast64_t mem_fail_left; /* 0: disarmed; else allocations to the failing one */
static atomic_int mem_env_checked;

static void read_env_once(void)
{
    if (!atomic_exchange(&mem_env_checked, 1)) {
        const char *env = getenv("KT_FAIL_ALLOC_AT");
        if (env != NULL && *env != '\0') {
            kt_mem_fail_at(strtoull(env, NULL, 10));
        }
    }
}

static int armed_should_fail(void)
{
    uint_fast64_t left = atomic_load(&mem_fail_left);
    while (left != 0) {
        if (atomic_compare_exchange_weak(&mem_fail_left, &left, left - 1)) {
            return left == 1;
        }
    }
    return 0;
}

static int should_fail(void)
{
    if (!atomic_load_explicit(&mem_env_checked, memory_order_relaxed)) {
        read_env_once();
    }
    tl_allocs++;
    if (atomic_load_explicit(&mem_fail_left, memory_order_relaxed) == 0) {
        return 0;
    }
    return armed_should_fail();
}

uint64_t kt_mem_allocs(void)
{
    return tl_allocs;
}

void kt_mem_fail_at(uint64_t n)
{
    atomic_store(&mem_fail_left, n);
}

void *kt_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(n == 0 ? 1 : n);
}

void *kt_calloc(size_t n, size_t m)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(n == 0 ? 1 : n, m == 0 ? 1 : m);
}

void *kt_realloc(void *p, size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(p, n == 0 ? 1 : n);
}

void kt_free(void *p)
{
    free(p);
}

static void oom(size_t n)
{
    KT_LOG(KT_LOG_ERR, "MEM-OOM", "bytes=%zu", n);
    abort();
}

void *kt_xmalloc(size_t n)
{
    void *p = kt_malloc(n);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *kt_xcalloc(size_t n, size_t m)
{
    void *p = kt_calloc(n, m);
    if (p == NULL) {
        oom(n * m);
    }
    return p;
}

void *kt_xrealloc(void *p, size_t n)
{
    void *q = kt_realloc(p, n);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *kt_xstrndup(const char *s, size_t n)
{
    char *p = kt_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *kt_xstrdup(const char *s)
{
    return kt_xstrndup(s, strlen(s));
}

size_t kt_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t len = strlen(src);
    if (cap > 0) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

/* ---- arena ------------------------------------------------------------ */

struct kt_arena_block {
    kt_arena_block *next;
    size_t cap;
    size_t used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_DEFAULT_BLOCK (64u * 1024u)

void kt_arena_init(kt_arena *a, size_t block_size)
{
    memset(a, 0, sizeof *a);
    a->_block_size = block_size;
}

static kt_arena_block *arena_block_new(kt_arena *a, size_t min, int may_fail)
{
    size_t cap = a->_block_size != 0 ? a->_block_size : ARENA_DEFAULT_BLOCK;
    if (cap < min) {
        cap = min;
    }
    kt_arena_block *b = may_fail ? kt_malloc(sizeof *b + cap) : kt_xmalloc(sizeof *b + cap);
    if (b == NULL) {
        return NULL;
    }
    b->cap = cap;
    b->used = 0;
    a->total_bytes += sizeof *b + cap;
    return b;
}

static void *arena_alloc(kt_arena *a, size_t n, int may_fail)
{
    if (n > SIZE_MAX / 2u) { /* header + rounding must not overflow */
        return NULL;
    }
    n = (n + 15u) & ~(size_t)15u;
    kt_arena_block *b = a->_head;
    if (b == NULL || b->cap - b->used < n) {
        kt_arena_block *nb = arena_block_new(a, n, may_fail);
        if (nb == NULL) {
            return NULL;
        }
        if (b != NULL && n > (a->_block_size != 0 ? a->_block_size : ARENA_DEFAULT_BLOCK) / 4) {
            /* A big one-off: keep the current block as head for small allocs. */
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            return nb->data;
        }
        nb->next = b;
        a->_head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void *kt_arena_alloc(kt_arena *a, size_t n)
{
    void *p = arena_alloc(a, n, 0);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *kt_arena_try_alloc(kt_arena *a, size_t n)
{
    return arena_alloc(a, n, 1);
}

void *kt_arena_calloc(kt_arena *a, size_t n)
{
    void *p = kt_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *kt_arena_strndup(kt_arena *a, const char *s, size_t n)
{
    char *p = kt_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *kt_arena_strdup(kt_arena *a, const char *s)
{
    return kt_arena_strndup(a, s, strlen(s));
}

void kt_arena_reset(kt_arena *a)
{
    /*
     * Keep one block of the regular size, the oldest such, and rewind it.
     * Blocks made for big one-off allocations are chained right behind the
     * head, so the list tail is not necessarily a regular block; keeping a
     * one-off would pin its memory for the life of a per-message arena.
     */
    size_t regular = a->_block_size != 0 ? a->_block_size : ARENA_DEFAULT_BLOCK;
    kt_arena_block *keep = NULL;
    for (kt_arena_block *b = a->_head; b != NULL; b = b->next) {
        if (b->cap == regular) {
            keep = b;
        }
    }
    kt_arena_block *b = a->_head;
    while (b != NULL) {
        kt_arena_block *next = b->next;
        if (b != keep) {
            a->total_bytes -= sizeof *b + b->cap;
            free(b);
        }
        b = next;
    }
    a->_head = keep;
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
}

void kt_arena_fini(kt_arena *a)
{
    kt_arena_block *b = a->_head;
    while (b != NULL) {
        kt_arena_block *next = b->next;
        free(b);
        b = next;
    }
    memset(a, 0, sizeof *a);
}
