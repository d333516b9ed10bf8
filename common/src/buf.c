/*
 * buf.c — bounded growable buffer. See kt/buf.h.
 */
#include "kt/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt/mem.h"

void kt_buf_init(kt_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void kt_buf_fini(kt_buf *b)
{
    kt_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void kt_buf_reset(kt_buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

static kt_status buf_reserve(kt_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) {
        return KT_ETOOBIG;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return KT_OK;
    }
    size_t cap = b->cap == 0 ? 256 : b->cap;
    while (cap < need) {
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    }
    /* No room is ever needed past max + 1 (the NUL); max may be SIZE_MAX ("unbounded"). */
    if (b->max < SIZE_MAX && cap > b->max + 1) {
        cap = b->max + 1;
    }
    char *p = kt_realloc(b->data, cap);
    if (p == NULL) {
        return KT_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return KT_OK;
}

kt_status kt_buf_append(kt_buf *b, const void *p, size_t n)
{
    kt_status st = buf_reserve(b, n);
    if (st != KT_OK) {
        return st;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return KT_OK;
}

kt_status kt_buf_puts(kt_buf *b, const char *s)
{
    return kt_buf_append(b, s, strlen(s));
}

kt_status kt_buf_putc(kt_buf *b, char c)
{
    return kt_buf_append(b, &c, 1);
}

kt_status kt_buf_vprintf(kt_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return KT_EINVAL;
    }
    if ((size_t)n < sizeof small) {
        return kt_buf_append(b, small, (size_t)n);
    }
    kt_status st = buf_reserve(b, (size_t)n);
    if (st != KT_OK) {
        return st;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return KT_OK;
}

kt_status kt_buf_printf(kt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kt_status st = kt_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

char *kt_buf_detach(kt_buf *b, size_t *len_out)
{
    if (b->data == NULL) {
        if (buf_reserve(b, 0) != KT_OK) {
            return NULL;
        }
        b->data[0] = '\0'; /* a fresh allocation is not yet a string */
    }
    char *p = b->data;
    if (len_out != NULL) {
        *len_out = b->len;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

static void buf_truncate(kt_buf *b, size_t len)
{
    b->len = len;
    if (b->data != NULL) {
        b->data[len] = '\0';
    }
}

kt_status kt_buf_read_file(kt_buf *b, const char *path, kt_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "open %s", path);
    }
    /* On failure the buffer goes back to its old length: no partial file. */
    size_t old_len = b->len;
    kt_status s = KT_OK;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((unsigned long long)st.st_size > b->max - b->len) {
            close(fd);
            return kt_err_set(err, KT_ETOOBIG, "%s: %lld bytes over the %zu-byte limit", path,
                              (long long)st.st_size, b->max);
        }
        s = buf_reserve(b, (size_t)st.st_size);
        if (s != KT_OK) {
            close(fd);
            return kt_err_set(err, s, "%s: no memory for %lld bytes", path, (long long)st.st_size);
        }
    }
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            close(fd);
            buf_truncate(b, old_len);
            return kt_err_set_errno(err, KT_EIO, e, "read %s", path);
        }
        if (n == 0) {
            break;
        }
        s = kt_buf_append(b, chunk, (size_t)n);
        if (s != KT_OK) {
            close(fd);
            buf_truncate(b, old_len);
            if (s == KT_ETOOBIG) {
                return kt_err_set(err, s, "%s: over the %zu-byte limit", path, b->max);
            }
            return kt_err_set(err, s, "%s: no memory", path);
        }
    }
    close(fd);
    if (b->data == NULL) {
        s = kt_buf_append(b, "", 0);
        if (s != KT_OK) {
            return kt_err_set(err, s, "%s: no memory", path);
        }
    }
    return KT_OK;
}

kt_status kt_buf_write_file(const kt_buf *b, const char *path, kt_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        return kt_err_set(err, KT_EINVAL, "path too long: %s", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "create %s", tmp);
    }
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            close(fd);
            unlink(tmp);
            return kt_err_set_errno(err, KT_EIO, e, "write %s", tmp);
        }
        off += (size_t)w;
    }
    /* Data must be on disk before the rename, or a crash can leave an empty file at path. */
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return kt_err_set_errno(err, KT_EIO, e, "fsync %s", tmp);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return kt_err_set_errno(err, KT_EIO, e, "close %s", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kt_err_set_errno(err, KT_EIO, e, "rename %s", path);
    }
    return KT_OK;
}
