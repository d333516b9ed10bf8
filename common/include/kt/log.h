/*
 * kt/log.h — logfmt logging with stable event ids.
 *
 *   KT_LOG(KT_LOG_WARN, "UPLINK-CONN-LOST", "peer=%s errno=%d", peer, e);
 *
 * writes one line to the sink (stderr by default):
 *
 *   ts=2026-11-22T13:44:52.123Z lvl=warn id=UPLINK-CONN-LOST mod=agent peer=... errno=111
 *
 * The level is checked before formatting. Each line is built in a local
 * buffer and handed to the sink whole (one write(2) for the default sink),
 * so logging is safe from any thread. Tests and alerts match ids, never
 * wording. Values with spaces must be quoted by the caller (kt_log_quote
 * helps). Define KT_LOG_MOD before including this header to name the module.
 *
 * Thread: any.
 */
#ifndef KT_COMMON_LOG_H
#define KT_COMMON_LOG_H

#include <stddef.h>

typedef enum kt_log_level {
    KT_LOG_ERR = 0,
    KT_LOG_WARN = 1,
    KT_LOG_NOTICE = 2,
    KT_LOG_INFO = 3,
    KT_LOG_DEBUG = 4
} kt_log_level;

#ifndef KT_LOG_MOD
#define KT_LOG_MOD "kt"
#endif

/* The sink gets one complete line, newline included. */
typedef void (*kt_log_sink_cb)(kt_log_level level, const char *line, size_t len, void *user);

extern int kt_log_level_current;

#define KT_LOG(level, id, ...)                                    \
    do {                                                          \
        if ((int)(level) <= kt_log_level_current) {               \
            kt_log_emit_((level), (id), KT_LOG_MOD, __VA_ARGS__); \
        }                                                         \
    } while (0)

void kt_log_emit_(kt_log_level level, const char *id, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Set the level; returns the previous one. */
kt_log_level kt_log_set_level(kt_log_level level);
/* Parse "err|warn|notice|info|debug"; returns -1 when unknown. */
int kt_log_level_parse(const char *name);
/* Replace the sink; NULL restores stderr. Not thread-safe against concurrent KT_LOG. */
void kt_log_set_sink(kt_log_sink_cb sink, void *user);
/*
 * Quote s for a logfmt value into out (always NUL-terminated, truncated to
 * cap). Returns out, so it can be an argument of KT_LOG.
 */
const char *kt_log_quote(char *out, size_t cap, const char *s);

/*
 * A per-second budget for a noisy log line (e.g. one line per dropped
 * event): at most per_s lines each second; the rest are suppressed and
 * their number is handed back once, at the first call of a later second,
 * so the caller can log "suppressed=N". Zero-initialise it.
 *
 *   static kt_log_limit lim;
 *   uint64_t missed;
 *   if (kt_log_limit_take(&lim, 10, kt_clock_mono_ms(), &missed)) { KT_LOG(...); }
 *   if (missed > 0) { KT_LOG(KT_LOG_WARN, "X-DROP", "suppressed=%llu", ...); }
 *
 * Thread: one thread per limiter (no locking).
 */
typedef struct kt_log_limit {
    unsigned long long window_ms;  /* start of the current second */
    unsigned in_window;            /* lines let through in it */
    unsigned long long suppressed; /* lines held back in it */
} kt_log_limit;

/*
 * true when this line may be logged. *missed_out (nullable) gets the number
 * of lines suppressed in the previous window when a new window starts,
 * else 0.
 */
int kt_log_limit_take(kt_log_limit *lim,
                      unsigned per_s,
                      unsigned long long now_ms,
                      unsigned long long *missed_out);

#endif
