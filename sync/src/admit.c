/*
 * admit.c — token-bucket admission (see sync/admit.h).
 *
 * Invariants: _milli_tokens <= _max_milli_tokens; _last_ms never decreases.
 * Thread: one owner.
 */
#include "sync/admit.h"

#include <stdint.h>

#include "kt/err.h"

void sync_admit_init(sync_admit *a, uint32_t rate_per_s, uint32_t burst, uint64_t now_ms)
{
    KT_ASSERT(rate_per_s >= 1);
    KT_ASSERT(burst >= 1);
    a->_rate_per_s = rate_per_s;
    a->_max_milli_tokens = (uint64_t)burst * 1000u;
    a->_milli_tokens = a->_max_milli_tokens;
    a->_last_ms = now_ms;
    a->_admitted = 0;
    a->_refused = 0;
}

static void refill(sync_admit *a, uint64_t now_ms)
{
    if (now_ms <= a->_last_ms) {
        return; /* clock went backwards or no time passed */
    }
    uint64_t elapsed = now_ms - a->_last_ms;
    a->_last_ms = now_ms;
    /* rate tokens/s = rate milli-tokens/ms. Compare before multiplying: no overflow. */
    uint64_t room = a->_max_milli_tokens - a->_milli_tokens;
    if (elapsed >= (room + a->_rate_per_s - 1u) / a->_rate_per_s) {
        a->_milli_tokens = a->_max_milli_tokens;
        return;
    }
    a->_milli_tokens += elapsed * a->_rate_per_s;
}

uint32_t sync_admit_take(sync_admit *a, uint64_t now_ms)
{
    refill(a, now_ms);
    if (a->_milli_tokens >= 1000u) {
        a->_milli_tokens -= 1000u;
        a->_admitted++;
        return 0;
    }
    a->_refused++;
    uint64_t missing = 1000u - a->_milli_tokens;
    uint64_t wait = (missing + a->_rate_per_s - 1u) / a->_rate_per_s;
    if (wait == 0) {
        wait = 1;
    }
    return wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
}

uint64_t sync_admit_admitted(const sync_admit *a)
{
    return a->_admitted;
}

uint64_t sync_admit_refused(const sync_admit *a)
{
    return a->_refused;
}
