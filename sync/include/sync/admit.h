/*
 * sync/admit.h — the hub's admission limiter for (re)connecting agents.
 *
 * A token bucket: it holds at most burst tokens and refills at rate_per_s
 * tokens per second; each admitted Hello takes one token. When the bucket is
 * empty the caller answers Reject{BUSY, retry_after_ms} with the time until
 * the next token. This spreads a reconnect storm (hub restart, network
 * blip) over time instead of letting thousands of agents ask for snapshots at
 * once.
 *
 * Time comes from the caller (monotonic ms, kt_clock_mono_ms() in
 * production, a variable in tests). Tokens are kept in thousandths, so there
 * is no floating point and no drift.
 *
 * The struct is public so callers can embed it; '_' fields are private.
 *
 * Thread: one owner (the hub's loop thread).
 */
#ifndef KT_SYNC_ADMIT_H
#define KT_SYNC_ADMIT_H

#include <stdint.h>

typedef struct sync_admit {
    uint64_t _milli_tokens;     /* current tokens * 1000 */
    uint64_t _max_milli_tokens; /* burst * 1000 */
    uint32_t _rate_per_s;
    uint64_t _last_ms;
    uint64_t _admitted;
    uint64_t _refused;
} sync_admit;

/*
 * Start with a full bucket of burst tokens at time now_ms.
 * rate_per_s >= 1 and burst >= 1 (asserted: configuration bugs).
 */
void sync_admit_init(sync_admit *a, uint32_t rate_per_s, uint32_t burst, uint64_t now_ms);

/*
 * Try to admit one connection at now_ms (a clock that went backwards counts
 * as no time passing). Returns 0 when admitted (a token was taken), else the
 * milliseconds until a token will be available (>= 1); nothing is taken then.
 */
uint32_t sync_admit_take(sync_admit *a, uint64_t now_ms);

/* Counters for metrics. */
uint64_t sync_admit_admitted(const sync_admit *a);
uint64_t sync_admit_refused(const sync_admit *a);

#endif
