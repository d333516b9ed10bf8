/*
 * kt/err.h — errors that say what went wrong and where.
 *
 * A function that can fail returns kt_status and takes a nullable kt_err *
 * last. The first error set wins: kt_err_set_() never overwrites an error
 * that is already set, so the root cause survives propagation.
 *
 * Thread: any. A kt_err belongs to the caller that declared it.
 */
#ifndef KT_COMMON_ERR_H
#define KT_COMMON_ERR_H

#include <stdio.h>
#include <stdlib.h>

typedef enum kt_status {
    KT_OK = 0,
    KT_ENOMEM = -1,
    KT_EINVAL = -2,
    KT_EIO = -3,
    KT_EPROTO = -4,
    KT_ETIMEDOUT = -5,
    KT_ECLOSED = -6,
    KT_EAGAIN = -7,    /* flow control: try again later */
    KT_ENOTFOUND = -8,
    KT_ECONFLICT = -9, /* version conflict */
    KT_EDEP = -10,     /* a dependency failed: see dep / dep_code */
    KT_ETOOBIG = -11,  /* input over a configured cap */
    KT_EINTERNAL = -99 /* broken invariant we chose to survive: always a bug */
} kt_status;

typedef struct kt_err {
    kt_status status;
    int sys_errno;    /* errno at failure, else 0 */
    const char *dep;  /* "sqlite", "yaml", "cjson", ... or NULL */
    long dep_code;    /* that library's own code */
    const char *file; /* source file where first set */
    int line;
    char msg[256]; /* one line, no trailing newline */
} kt_err;

#define kt_err_set(e, st, ...) kt_err_set_((e), (st), __FILE__, __LINE__, __VA_ARGS__)
#define kt_err_set_dep(e, st, depname, code, ...)                                                \
    kt_err_set_dep_((e), (st), (depname), (code), __FILE__, __LINE__, __VA_ARGS__)
#define kt_err_set_errno(e, st, errnum, ...)                                                     \
    kt_err_set_errno_((e), (st), (errnum), __FILE__, __LINE__, __VA_ARGS__)

/* Set e (if not NULL and not already set) and return st. */
kt_status kt_err_set_(kt_err *e, kt_status st, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
kt_status kt_err_set_dep_(kt_err *e,
                          kt_status st,
                          const char *dep,
                          long dep_code,
                          const char *file,
                          int line,
                          const char *fmt,
                          ...) __attribute__((format(printf, 7, 8)));
/* Like kt_err_set_, appending strerror(errnum) to the message. */
kt_status kt_err_set_errno_(kt_err *e,
                            kt_status st,
                            int errnum,
                            const char *file,
                            int line,
                            const char *fmt,
                            ...) __attribute__((format(printf, 6, 7)));
void kt_err_clear(kt_err *e);
/* Stable lower-case name of a status, e.g. "einval". Never NULL. */
const char *kt_status_str(kt_status st);

/* Bugs are asserted, in every build type: log expression, file, line; abort. */
void kt_assert_fail_(const char *expr, const char *file, int line) __attribute__((noreturn));
#define KT_ASSERT(x)                                                                             \
    do {                                                                                         \
        if (!(x)) {                                                                              \
            kt_assert_fail_(#x, __FILE__, __LINE__);                                             \
        }                                                                                        \
    } while (0)
#ifdef NDEBUG
#define KT_DEBUG_ASSERT(x) ((void)0)
#else
#define KT_DEBUG_ASSERT(x) KT_ASSERT(x)
#endif
/* "Cannot happen" branches that must not abort: true when x holds. */
#define KT_NEVER(x) (x)

#endif
