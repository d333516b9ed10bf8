/*
 * test_mem.c — counted allocation, failure on demand (kt_mem_fail_at), the
 * string helpers, and the arena (alignment, block chaining, reset, fini).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kt/mem.h"

static int teardown(void **state)
{
    (void)state;
    kt_mem_fail_at(0);
    return 0;
}

static void test_mem_counts_every_allocation_call(void **state)
{
    (void)state;
    uint64_t before = kt_mem_allocs();
    void *a = kt_malloc(10);
    void *b = kt_calloc(3, 4);
    a = kt_realloc(a, 100);
    char *s = kt_xstrdup("hello");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kt_mem_allocs() - before, 4);
    kt_free(a);
    kt_free(b);
    kt_free(s);
    kt_free(NULL);
    assert_int_equal(kt_mem_allocs() - before, 4); /* frees are not counted */
}

static void test_mem_fail_at_fails_exactly_the_nth_allocation(void **state)
{
    (void)state;
    kt_mem_fail_at(3);
    void *a = kt_malloc(8);
    void *b = kt_malloc(8);
    void *c = kt_malloc(8);
    void *d = kt_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_non_null(d); /* one-shot */
    kt_free(a);
    kt_free(b);
    kt_free(d);
}

static void test_mem_fail_at_covers_calloc_and_realloc(void **state)
{
    (void)state;
    kt_mem_fail_at(1);
    assert_null(kt_calloc(4, 4));

    char *p = kt_malloc(4);
    assert_non_null(p);
    memcpy(p, "abc", 4);
    kt_mem_fail_at(1);
    assert_null(kt_realloc(p, 1 << 20));
    assert_string_equal(p, "abc"); /* still valid after a failed realloc */
    kt_free(p);
}

static void test_mem_fail_at_zero_disables(void **state)
{
    (void)state;
    kt_mem_fail_at(1);
    kt_mem_fail_at(0);
    void *p = kt_malloc(1);
    assert_non_null(p);
    kt_free(p);
}

static void test_mem_zero_size_allocations_are_usable(void **state)
{
    (void)state;
    void *a = kt_malloc(0);
    void *b = kt_calloc(0, 8);
    void *c = kt_realloc(NULL, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    kt_free(a);
    kt_free(b);
    kt_free(c);
}

static void test_mem_calloc_zeroes(void **state)
{
    (void)state;
    unsigned char *p = kt_xcalloc(64, 4);
    for (size_t i = 0; i < 256; i++) {
        assert_int_equal(p[i], 0);
    }
    kt_free(p);
}

static void test_mem_xstrndup_copies_prefix_and_terminates(void **state)
{
    (void)state;
    char *s = kt_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    kt_free(s);
    s = kt_xstrndup("ab\0cd", 5);
    assert_memory_equal(s, "ab\0cd", 6);
    kt_free(s);
}

static void test_mem_strlcpy_truncates_and_returns_source_length(void **state)
{
    (void)state;
    char buf[4] = { 'x', 'x', 'x', 'x' };
    assert_int_equal(kt_strlcpy(buf, "hello", sizeof buf), 5);
    assert_string_equal(buf, "hel");
    assert_int_equal(kt_strlcpy(buf, "hi", sizeof buf), 2);
    assert_string_equal(buf, "hi");
    buf[0] = 'q';
    assert_int_equal(kt_strlcpy(buf, "zzz", 0), 3);
    assert_int_equal(buf[0], 'q'); /* cap 0 writes nothing */
}

static void test_arena_allocations_are_aligned_and_distinct(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 1024);
    unsigned char *prev = NULL;
    for (size_t n = 1; n < 200; n++) {
        unsigned char *p = kt_arena_alloc(&a, n);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, (int)(n & 0xff), n); /* ASan: whole range is ours */
        if (prev != NULL) {
            assert_ptr_not_equal(p, prev);
        }
        prev = p;
    }
    assert_true(a.total_bytes > 1024); /* spilled into more blocks */
    kt_arena_fini(&a);
    assert_int_equal(a.total_bytes, 0);
}

static void test_arena_keeps_earlier_data_across_blocks(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 256);
    char *strs[100];
    for (int i = 0; i < 100; i++) {
        char tmp[32];
        (void)snprintf(tmp, sizeof tmp, "key-%d", i);
        strs[i] = kt_arena_strdup(&a, tmp);
    }
    for (int i = 0; i < 100; i++) {
        char tmp[32];
        (void)snprintf(tmp, sizeof tmp, "key-%d", i);
        assert_string_equal(strs[i], tmp);
    }
    assert_string_equal(kt_arena_strndup(&a, "abcdef", 2), "ab");
    kt_arena_fini(&a);
}

static void test_arena_big_allocation_does_not_waste_current_block(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 1024);
    char *small1 = kt_arena_alloc(&a, 16);
    char *big = kt_arena_alloc(&a, 4096);
    memset(big, 1, 4096);
    char *small2 = kt_arena_alloc(&a, 16);
    /* The small allocations stay in the first block, one after the other. */
    assert_ptr_equal(small2, small1 + 16);
    kt_arena_fini(&a);
}

static void test_arena_calloc_zeroes_reused_memory(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 0); /* default block size */
    unsigned char *p = kt_arena_alloc(&a, 64);
    memset(p, 0xab, 64);
    kt_arena_reset(&a);
    unsigned char *q = kt_arena_calloc(&a, 64);
    assert_ptr_equal(p, q); /* reset rewinds the first block */
    for (size_t i = 0; i < 64; i++) {
        assert_int_equal(q[i], 0);
    }
    kt_arena_fini(&a);
}

static void test_arena_reset_releases_all_but_one_block(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 512);
    kt_arena_alloc(&a, 100);
    size_t one_block = a.total_bytes;
    for (int i = 0; i < 50; i++) {
        kt_arena_alloc(&a, 100);
    }
    kt_arena_alloc(&a, 10000);
    assert_true(a.total_bytes > one_block);
    kt_arena_reset(&a);
    assert_int_equal(a.total_bytes, one_block);
    kt_arena_reset(&a);
    assert_int_equal(a.total_bytes, one_block);
    kt_arena_fini(&a);
}

static void test_arena_reset_keeps_the_regular_block_not_a_big_one_off(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 1024);
    char *first = kt_arena_alloc(&a, 16);
    size_t one_block = a.total_bytes;
    kt_arena_alloc(&a, 1 << 20); /* one-off, chained behind the current block */
    kt_arena_reset(&a);
    /* The 1 MiB block is released; the regular block is rewound and reused. */
    assert_int_equal(a.total_bytes, one_block);
    assert_ptr_equal(kt_arena_alloc(&a, 16), first);
    kt_arena_fini(&a);
}

static void test_arena_reset_after_only_big_blocks_releases_everything(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 1024);
    kt_arena_alloc(&a, 8192); /* the first block is already oversized */
    kt_arena_reset(&a);
    assert_int_equal(a.total_bytes, 0);
    char *s = kt_arena_strdup(&a, "again");
    assert_string_equal(s, "again");
    kt_arena_fini(&a);
}

static void test_arena_zero_initialised_works_without_init(void **state)
{
    (void)state;
    kt_arena a = { 0 };
    kt_arena_reset(&a); /* empty: no-op */
    char *s = kt_arena_strdup(&a, "x");
    assert_string_equal(s, "x");
    kt_arena_fini(&a);
    kt_arena_fini(&a); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mem_counts_every_allocation_call, teardown),
        cmocka_unit_test_teardown(test_mem_fail_at_fails_exactly_the_nth_allocation, teardown),
        cmocka_unit_test_teardown(test_mem_fail_at_covers_calloc_and_realloc, teardown),
        cmocka_unit_test_teardown(test_mem_fail_at_zero_disables, teardown),
        cmocka_unit_test_teardown(test_mem_zero_size_allocations_are_usable, teardown),
        cmocka_unit_test_teardown(test_mem_calloc_zeroes, teardown),
        cmocka_unit_test_teardown(test_mem_xstrndup_copies_prefix_and_terminates, teardown),
        cmocka_unit_test_teardown(test_mem_strlcpy_truncates_and_returns_source_length, teardown),
        cmocka_unit_test(test_arena_allocations_are_aligned_and_distinct),
        cmocka_unit_test(test_arena_keeps_earlier_data_across_blocks),
        cmocka_unit_test(test_arena_big_allocation_does_not_waste_current_block),
        cmocka_unit_test(test_arena_calloc_zeroes_reused_memory),
        cmocka_unit_test(test_arena_reset_releases_all_but_one_block),
        cmocka_unit_test(test_arena_reset_keeps_the_regular_block_not_a_big_one_off),
        cmocka_unit_test(test_arena_reset_after_only_big_blocks_releases_everything),
        cmocka_unit_test(test_arena_zero_initialised_works_without_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
