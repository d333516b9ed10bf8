/*
 * err.c — kt_err helpers. See kt/err.h for the contract.
 */
#include "kt/err.h"

#include <stdarg.h>
#include <string.h>

#include "kt/log.h"

static kt_status set_va(kt_err *e,
                        kt_status st,
                        const char *file,
                        int line,
                        const char *fmt,
                        va_list ap)
{
    if (e == NULL || e->status != KT_OK) {
        return st;
    }
    e->status = st;
    e->file = file;
    e->line = line;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return st;
}

kt_status kt_err_set_(kt_err *e, kt_status st, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_va(e, st, file, line, fmt, ap);
    va_end(ap);
    return st;
}

kt_status kt_err_set_dep_(kt_err *e,
                          kt_status st,
                          const char *dep,
                          long dep_code,
                          const char *file,
                          int line,
                          const char *fmt,
                          ...)
{
    if (e != NULL && e->status == KT_OK) {
        e->dep = dep;
        e->dep_code = dep_code;
    }
    va_list ap;
    va_start(ap, fmt);
    set_va(e, st, file, line, fmt, ap);
    va_end(ap);
    return st;
}

kt_status kt_err_set_errno_(kt_err *e,
                            kt_status st,
                            int errnum,
                            const char *file,
                            int line,
                            const char *fmt,
                            ...)
{
    if (e == NULL || e->status != KT_OK) {
        return st;
    }
    va_list ap;
    va_start(ap, fmt);
    set_va(e, st, file, line, fmt, ap);
    va_end(ap);
    e->sys_errno = errnum;
    /* strerror() may share a static buffer between threads; the XSI strerror_r does not. */
    char reason[128];
    if (strerror_r(errnum, reason, sizeof reason) != 0) {
        snprintf(reason, sizeof reason, "errno %d", errnum);
    }
    size_t used = strlen(e->msg);
    snprintf(e->msg + used, sizeof e->msg - used, ": %s", reason);
    return st;
}

void kt_err_clear(kt_err *e)
{
    if (e != NULL) {
        memset(e, 0, sizeof *e);
    }
}

const char *kt_status_str(kt_status st)
{
    switch (st) {
    case KT_OK:
        return "ok";
    case KT_ENOMEM:
        return "enomem";
    case KT_EINVAL:
        return "einval";
    case KT_EIO:
        return "eio";
    case KT_EPROTO:
        return "eproto";
    case KT_ETIMEDOUT:
        return "etimedout";
    case KT_ECLOSED:
        return "eclosed";
    case KT_EAGAIN:
        return "eagain";
    case KT_ENOTFOUND:
        return "enotfound";
    case KT_ECONFLICT:
        return "econflict";
    case KT_EDEP:
        return "edep";
    case KT_ETOOBIG:
        return "etoobig";
    case KT_EINTERNAL:
        return "einternal";
    }
    return "unknown";
}

void kt_assert_fail_(const char *expr, const char *file, int line)
{
    KT_LOG(KT_LOG_ERR, "ASSERT-FAILED", "expr=\"%s\" at=%s:%d", expr, file, line);
    abort();
}
