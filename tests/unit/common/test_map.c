/*
 * test_map.c — kt_map: put/get/set semantics, keys with explicit length,
 * growth to 100k keys, and iteration that visits every entry once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kt/map.h"
#include "kt/mem.h"

static void *val(uintptr_t i)
{
    return (void *)(i + 1); /* never NULL */
}

static void test_map_empty_map_finds_nothing(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    assert_null(kt_map_get(&m, "x"));
    assert_null(kt_map_getn(&m, "", 0));
    size_t it = 0;
    assert_int_equal(kt_map_next(&m, &it, NULL, NULL), 0);
    kt_map_fini(&m);
}

static void test_map_put_inserts_once_and_returns_existing(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    int a = 1;
    int b = 2;
    assert_null(kt_map_put(&m, "pump-7", &a));
    assert_ptr_equal(kt_map_put(&m, "pump-7", &b), &a);
    assert_ptr_equal(kt_map_get(&m, "pump-7"), &a); /* unchanged */
    assert_int_equal(m.n, 1);
    kt_map_fini(&m);
    assert_int_equal(m.n, 0);
}

static void test_map_set_replaces_value(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    int a = 1;
    int b = 2;
    kt_map_set(&m, "k", &a);
    kt_map_set(&m, "k", &b);
    assert_ptr_equal(kt_map_get(&m, "k"), &b);
    assert_int_equal(m.n, 1);
    kt_map_set(&m, "other", &a);
    assert_int_equal(m.n, 2);
    kt_map_fini(&m);
}

static void test_map_getn_matches_exact_length_only(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    int a = 1;
    int b = 2;
    kt_map_put(&m, "abc", &a);
    kt_map_put(&m, "ab", &b);
    const char text[] = { 'a', 'b', 'c', 'd' }; /* not NUL-terminated */
    assert_ptr_equal(kt_map_getn(&m, text, 3), &a);
    assert_ptr_equal(kt_map_getn(&m, text, 2), &b);
    assert_null(kt_map_getn(&m, text, 1));
    assert_null(kt_map_getn(&m, text, 4));
    kt_map_fini(&m);
}

static void test_map_empty_key_is_a_valid_key(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    int a = 1;
    assert_null(kt_map_put(&m, "", &a));
    assert_ptr_equal(kt_map_get(&m, ""), &a);
    kt_map_fini(&m);
}

static void test_map_hash_is_fnv1a(void **state)
{
    (void)state;
    assert_int_equal(kt_map_hash("", 0), 2166136261u);
    assert_int_equal(kt_map_hash("a", 1), 0xe40c292cu);
    assert_int_equal(kt_map_hash("foobar", 6), 0xbf9cf968u);
}

#define N_KEYS 100000

static char **make_keys(kt_arena *a)
{
    char **keys = kt_xcalloc(N_KEYS, sizeof *keys);
    for (size_t i = 0; i < N_KEYS; i++) {
        char tmp[32];
        (void)snprintf(tmp, sizeof tmp, "twin-%zu", i);
        keys[i] = kt_arena_strdup(a, tmp);
    }
    return keys;
}

static void test_map_grows_to_100k_keys_and_finds_all(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 0);
    char **keys = make_keys(&a);
    kt_map m;
    kt_map_init(&m);
    for (uintptr_t i = 0; i < N_KEYS; i++) {
        assert_null(kt_map_put(&m, keys[i], val(i)));
    }
    assert_int_equal(m.n, N_KEYS);
    /* Load stays at or under 70 %. */
    assert_true(m.n * 10 <= m._cap * 7);
    for (uintptr_t i = 0; i < N_KEYS; i++) {
        assert_ptr_equal(kt_map_get(&m, keys[i]), val(i));
    }
    assert_null(kt_map_get(&m, "twin-100000"));
    assert_null(kt_map_get(&m, "twin-"));
    kt_map_fini(&m);
    kt_free(keys);
    kt_arena_fini(&a);
}

static void test_map_iteration_visits_every_entry_once(void **state)
{
    (void)state;
    kt_arena a;
    kt_arena_init(&a, 0);
    char **keys = make_keys(&a);
    kt_map m;
    kt_map_init(&m);
    kt_map_reserve(&m, N_KEYS);
    size_t cap_after_reserve = m._cap;
    for (uintptr_t i = 0; i < N_KEYS; i++) {
        kt_map_put(&m, keys[i], val(i));
    }
    assert_int_equal(m._cap, cap_after_reserve); /* reserve was enough: no rehash */

    unsigned char *seen = kt_xcalloc(N_KEYS, 1);
    size_t count = 0;
    const char *k = NULL;
    void *v = NULL;
    for (size_t it = 0; kt_map_next(&m, &it, &k, &v);) {
        uintptr_t i = (uintptr_t)v - 1;
        assert_true(i < N_KEYS);
        assert_ptr_equal(k, keys[i]); /* keys are borrowed, not copied */
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        count++;
    }
    assert_int_equal(count, N_KEYS);
    kt_free(seen);
    kt_map_fini(&m);
    kt_free(keys);
    kt_arena_fini(&a);
}

static void test_map_reserve_never_shrinks(void **state)
{
    (void)state;
    kt_map m;
    kt_map_init(&m);
    kt_map_reserve(&m, 1000);
    size_t cap = m._cap;
    assert_true(cap * 7 / 10 >= 1000);
    kt_map_reserve(&m, 10);
    assert_int_equal(m._cap, cap);
    kt_map_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_empty_map_finds_nothing),
        cmocka_unit_test(test_map_put_inserts_once_and_returns_existing),
        cmocka_unit_test(test_map_set_replaces_value),
        cmocka_unit_test(test_map_getn_matches_exact_length_only),
        cmocka_unit_test(test_map_empty_key_is_a_valid_key),
        cmocka_unit_test(test_map_hash_is_fnv1a),
        cmocka_unit_test(test_map_grows_to_100k_keys_and_finds_all),
        cmocka_unit_test(test_map_iteration_visits_every_entry_once),
        cmocka_unit_test(test_map_reserve_never_shrinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
