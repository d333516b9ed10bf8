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

#define KT_LOG(level, id, ...)                                                                   \
    do {                                                                                         \
        if ((int)(level) <= kt_log_level_current) {                                              \
            kt_log_emit_((level), (id), KT_LOG_MOD, __VA_ARGS__);                                \
        }                                                                                        \
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

#endif
