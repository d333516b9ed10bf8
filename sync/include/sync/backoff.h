/*
 * sync/backoff.h — reconnect delays: exponential backoff with full jitter.
 *
 *   delay(attempt) = uniform random in [0, min(cap_ms, base_ms * 2^attempt)]
 *
 * (AWS "Exponential Backoff And Jitter", full jitter.) attempt starts at 0
 * and grows by one per sync_backoff_next(); sync_backoff_reset() after a
 * successful session (the agent calls it on Welcome) starts over. When the
 * hub asked for a delay (Reject BUSY retry_after_ms), use
 * max(sync_backoff_next(), retry_after_ms).
 *
 * The random source is injectable so tests are deterministic; the default
 * is a xorshift64* seeded from the monotonic clock and the object address
 * (jitter only needs to decorrelate agents, not be secret).
 *
 * The struct is public so callers can embed it; fields starting with '_'
 * are private.
 *
 * Thread: one owner.
 */
#ifndef KT_SYNC_BACKOFF_H
#define KT_SYNC_BACKOFF_H

#include <stdint.h>

/* Returns 64 uniformly random bits. */
typedef uint64_t (*sync_backoff_rand_cb)(void *user);

typedef struct sync_backoff_opts {
    uint32_t base_ms;          /* first ceiling; 0 = 500 */
    uint32_t cap_ms;           /* largest ceiling; 0 = 30000; must be >= base_ms */
    sync_backoff_rand_cb rand; /* NULL = built-in xorshift64* */
    void *rand_user;
} sync_backoff_opts;

typedef struct sync_backoff {
    uint32_t _base_ms;
    uint32_t _cap_ms;
    uint32_t _attempt;
    sync_backoff_rand_cb _rand;
    void *_rand_user;
    uint64_t _state; /* built-in RNG state */
} sync_backoff;

/* Initialise b (opts NULL = defaults). Thread: owner. */
void sync_backoff_init(sync_backoff *b, const sync_backoff_opts *opts);

/*
 * The delay before the next attempt, in [0, min(cap, base * 2^attempt)] ms,
 * then attempt += 1 (saturating once the ceiling reaches cap). Thread: owner.
 */
uint32_t sync_backoff_next(sync_backoff *b);

/* The ceiling the next sync_backoff_next() draws under. Thread: owner. */
uint32_t sync_backoff_ceiling_ms(const sync_backoff *b);

/* Attempts since the last reset. Thread: owner. */
uint32_t sync_backoff_attempt(const sync_backoff *b);

/* Start over (after a successful connection). Thread: owner. */
void sync_backoff_reset(sync_backoff *b);

#endif
