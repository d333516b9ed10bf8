/*
 * kt/clock.h — monotonic and wall clocks, injectable for tests.
 *
 * Everything that measures time (timeouts, backoff, log timestamps, lease
 * expiry) reads it from here, never from clock_gettime(2) directly, so unit
 * tests can drive time forward by assigning a variable instead of sleeping:
 *
 *   uint64_t now_ns = 5000000000u, wall_ms = 1700000000000u;
 *   kt_clock_set_fake(&now_ns, &wall_ms);
 *   now_ns += 30000000000u; // 30 s pass, instantly
 *   kt_clock_set_fake(NULL, NULL);
 *
 * The monotonic clock (CLOCK_MONOTONIC) has an arbitrary origin and never
 * goes backwards; use it for intervals. The wall clock (CLOCK_REALTIME) is
 * milliseconds since the Unix epoch (UTC) and may jump; use it only for
 * timestamps that leave the process.
 *
 * Thread: any. The fake pointers are read atomically; the values behind them
 * belong to the test that installed them.
 */
#ifndef KT_COMMON_CLOCK_H
#define KT_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Room for "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define KT_CLOCK_RFC3339_CAP 25

/* Monotonic time in nanoseconds (arbitrary origin). Thread: any. */
uint64_t kt_clock_mono_ns(void);

/* Monotonic time in milliseconds: kt_clock_mono_ns() / 1000000. Thread: any. */
uint64_t kt_clock_mono_ms(void);

/* Wall-clock time in milliseconds since 1970-01-01T00:00:00Z. Thread: any. */
uint64_t kt_clock_wall_ms(void);

/*
 * Format wall_ms as RFC 3339 UTC with milliseconds, e.g.
 * "2023-11-14T22:13:20.123Z", into out (cap bytes, KT_CLOCK_RFC3339_CAP is
 * always enough). If cap is too small or the time is past year 9999 (RFC
 * 3339 has four-digit years), out becomes "" (when cap > 0): a truncated
 * timestamp would be wrong, not short. Returns out, so it can be an argument
 * of KT_LOG. Thread: any.
 */
const char *kt_clock_rfc3339(char *out, size_t cap, uint64_t wall_ms);

/*
 * Test hook. While mono_ns is not NULL, kt_clock_mono_ns() returns *mono_ns
 * (and kt_clock_mono_ms() derives from it); while wall_ms is not NULL,
 * kt_clock_wall_ms() returns *wall_ms. NULL restores the real clock for that
 * one. The pointers are borrowed: they must stay valid until replaced.
 * Thread: any, but meant for test set-up before other threads read the clock.
 */
void kt_clock_set_fake(const uint64_t *mono_ns, const uint64_t *wall_ms);

#endif
