/*
 * log.c — logfmt line builder and the default stderr sink.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from different threads never interleave.
 */
#include "kt/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int kt_log_level_current = KT_LOG_INFO;

static kt_log_sink_cb log_sink;
static void *log_sink_user;

static const char *const level_names[] = { "err", "warn", "notice", "info", "debug" };

/* Out-of-range levels print as the nearest one (KT_LOG accepts any int). */
static const char *level_name(kt_log_level level)
{
    if ((int)level < KT_LOG_ERR) {
        return level_names[KT_LOG_ERR];
    }
    if ((int)level > KT_LOG_DEBUG) {
        return level_names[KT_LOG_DEBUG];
    }
    return level_names[level];
}

kt_log_level kt_log_set_level(kt_log_level level)
{
    kt_log_level old = (kt_log_level)kt_log_level_current;
    kt_log_level_current = (int)level;
    return old;
}

int kt_log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void kt_log_set_sink(kt_log_sink_cb sink, void *user)
{
    log_sink = sink;
    log_sink_user = user;
}

const char *kt_log_quote(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap < 3) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return out;
    }
    out[o++] = '"';
    for (; s != NULL && *s != '\0' && o + 3 < cap; s++) {
        char c = *s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if ((unsigned char)c < 0x20) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

void kt_log_emit_(kt_log_level level, const char *id, const char *mod, const char *fmt, ...)
{
    int saved_errno = errno;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s id=%s mod=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_name(level), id, mod);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
        va_end(ap);
        used += m < 0 ? 0 : (size_t)m;
    }
    if (used > sizeof line - 2) {
        used = sizeof line - 2; /* truncated: keep the newline */
    }
    while (used > 0 && line[used - 1] == ' ') {
        used--;
    }
    line[used++] = '\n';
    line[used] = '\0';
    if (log_sink != NULL) {
        log_sink(level, line, used, log_sink_user);
    } else {
        write_all(STDERR_FILENO, line, used);
    }
    errno = saved_errno;
}

int kt_log_limit_take(kt_log_limit *lim,
                      unsigned per_s,
                      unsigned long long now_ms,
                      unsigned long long *missed_out)
{
    if (missed_out != NULL) {
        *missed_out = 0;
    }
    if (now_ms - lim->window_ms >= 1000) {
        if (missed_out != NULL) {
            *missed_out = lim->suppressed;
        }
        lim->window_ms = now_ms;
        lim->in_window = 0;
        lim->suppressed = 0;
    }
    if (lim->in_window >= per_s) {
        lim->suppressed++;
        return 0;
    }
    lim->in_window++;
    return 1;
}
