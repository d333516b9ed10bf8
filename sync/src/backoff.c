/*
 * backoff.c — exponential backoff with full jitter (see sync/backoff.h).
 *
 * Invariants: _base_ms <= _cap_ms; the ceiling base * 2^attempt is computed
 * in 64 bits and clamped to cap, so a large attempt count never overflows.
 * Thread: one owner.
 */
#include "sync/backoff.h"

#include <stdint.h>

#include "kt/clock.h"
#include "kt/err.h"

#define BACKOFF_BASE_DEFAULT_MS 500u
#define BACKOFF_CAP_DEFAULT_MS  30000u

/* xorshift64* (Vigna): fine for jitter, not for secrets. */
static uint64_t builtin_rand(void *user)
{
    sync_backoff *b = user;
    uint64_t x = b->_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void sync_backoff_init(sync_backoff *b, const sync_backoff_opts *opts)
{
    sync_backoff_opts o = { 0 };
    if (opts != NULL) {
        o = *opts;
    }
    b->_base_ms = o.base_ms != 0 ? o.base_ms : BACKOFF_BASE_DEFAULT_MS;
    b->_cap_ms = o.cap_ms != 0 ? o.cap_ms : BACKOFF_CAP_DEFAULT_MS;
    KT_ASSERT(b->_base_ms <= b->_cap_ms);
    b->_attempt = 0;
    if (o.rand != NULL) {
        b->_rand = o.rand;
        b->_rand_user = o.rand_user;
    } else {
        b->_rand = builtin_rand;
        b->_rand_user = b;
    }
    b->_state = kt_clock_mono_ns() ^ (uint64_t)(uintptr_t)b ^ 0x9E3779B97F4A7C15ULL;
    if (b->_state == 0) {
        b->_state = 1;
    }
}

uint32_t sync_backoff_ceiling_ms(const sync_backoff *b)
{
    if (b->_attempt >= 32) {
        return b->_cap_ms;
    }
    uint64_t c = (uint64_t)b->_base_ms << b->_attempt;
    return c > b->_cap_ms ? b->_cap_ms : (uint32_t)c;
}

uint32_t sync_backoff_next(sync_backoff *b)
{
    uint32_t ceil = sync_backoff_ceiling_ms(b);
    if (ceil < b->_cap_ms) {
        b->_attempt++;
    }
    /* Uniform in [0, ceil]; the modulo bias is < 2^-32 for these ranges. */
    uint64_t r = b->_rand(b->_rand_user);
    return (uint32_t)(r % ((uint64_t)ceil + 1u));
}

uint32_t sync_backoff_attempt(const sync_backoff *b)
{
    return b->_attempt;
}

void sync_backoff_reset(sync_backoff *b)
{
    b->_attempt = 0;
}
