/*
 * clock.c — real clocks over clock_gettime(2), with a test override.
 *
 * The override is two atomic pointers. When one is set its value replaces
 * the real clock; nothing else changes, so production code pays one relaxed
 * atomic load per reading.
 */
#include "kt/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* 9999-12-31T23:59:59Z: RFC 3339 years have four digits. */
#define CLOCK_MAX_RFC3339_S 253402300799u

static _Atomic(const uint64_t *) clock_fake_mono_ns;
static _Atomic(const uint64_t *) clock_fake_wall_ms;

static uint64_t clock_read(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        /* Only fails for an invalid clock id, which would be a bug here. */
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kt_clock_mono_ns(void)
{
    const uint64_t *fake = atomic_load_explicit(&clock_fake_mono_ns, memory_order_acquire);
    if (fake != NULL) {
        return *fake;
    }
    return clock_read(CLOCK_MONOTONIC);
}

uint64_t kt_clock_mono_ms(void)
{
    return kt_clock_mono_ns() / 1000000u;
}

uint64_t kt_clock_wall_ms(void)
{
    const uint64_t *fake = atomic_load_explicit(&clock_fake_wall_ms, memory_order_acquire);
    if (fake != NULL) {
        return *fake;
    }
    return clock_read(CLOCK_REALTIME) / 1000000u;
}

const char *kt_clock_rfc3339(char *out, size_t cap, uint64_t wall_ms)
{
    if (cap == 0) {
        return out;
    }
    out[0] = '\0';
    uint64_t secs = wall_ms / 1000u;
    if (secs > CLOCK_MAX_RFC3339_S) {
        return out;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        return out;
    }
    int n =
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000u));
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
    }
    return out;
}

void kt_clock_set_fake(const uint64_t *mono_ns, const uint64_t *wall_ms)
{
    atomic_store_explicit(&clock_fake_mono_ns, mono_ns, memory_order_release);
    atomic_store_explicit(&clock_fake_wall_ms, wall_ms, memory_order_release);
}
