/*
 * kt/buf.h — a growable byte buffer with a hard cap (curl dynbuf).
 *
 * Everything a peer can grow is bounded: appending past max fails with
 * KT_ETOOBIG and leaves the buffer unchanged. The content is always
 * NUL-terminated (not counted in len), so text can be used as a C string.
 *
 * Thread: one owner.
 */
#ifndef KT_COMMON_BUF_H
#define KT_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "kt/err.h"

typedef struct kt_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
} kt_buf;

void kt_buf_init(kt_buf *b, size_t max);
void kt_buf_fini(kt_buf *b);
void kt_buf_reset(kt_buf *b); /* len = 0, memory kept */
/* KT_ETOOBIG past max, KT_ENOMEM when memory runs out. */
kt_status kt_buf_append(kt_buf *b, const void *p, size_t n);
kt_status kt_buf_puts(kt_buf *b, const char *s);
kt_status kt_buf_putc(kt_buf *b, char c);
kt_status kt_buf_printf(kt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
kt_status kt_buf_vprintf(kt_buf *b, const char *fmt, va_list ap);
/* Take the data (caller kt_free()s it); the buffer becomes empty. */
char *kt_buf_detach(kt_buf *b, size_t *len_out);
/* Read a whole file, at most max bytes (KT_ETOOBIG beyond). */
kt_status kt_buf_read_file(kt_buf *b, const char *path, kt_err *err);
/* Write the buffer to path atomically (temp file + rename). */
kt_status kt_buf_write_file(const kt_buf *b, const char *path, kt_err *err);

#endif
