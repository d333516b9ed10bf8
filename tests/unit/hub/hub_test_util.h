/*
 * hub_test_util.h — helpers shared by the hub's tests: temp dirs, files,
 * running a loop until a condition holds (with a deadline, never a sleep
 * assert), and a graph on a temp database. Header-only (static functions).
 */
#ifndef KT_TESTS_HUB_TEST_UTIL_H
#define KT_TESTS_HUB_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "kt/clock.h"

static inline void tu_noop_timer(uv_timer_t *t)
{
    (void)t;
}

/* Run loop until cond(user) is true or timeout_ms passes; returns cond's last value. */
static inline int
tu_run_until(uv_loop_t *loop, int (*cond)(void *), void *user, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tu_noop_timer, 10, 10);
    uint64_t deadline = kt_clock_mono_ms() + timeout_ms;
    int ok = cond(user);
    while (!ok && kt_clock_mono_ms() < deadline) {
        uv_run(loop, UV_RUN_ONCE);
        ok = cond(user);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static inline int tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static inline void tu_mkdtemp(char *out, size_t cap, const char *stem)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, cap, "%s/%s-XXXXXX", tmp != NULL ? tmp : "/tmp", stem);
    if (mkdtemp(out) == NULL) {
        out[0] = '\0';
    }
}

static inline void tu_rm_r(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            for (;;) {
                struct dirent *e = readdir(d);
                if (e == NULL) {
                    break;
                }
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                    continue;
                }
                char sub[1024];
                int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                if (n < 0 || (size_t)n >= sizeof sub) {
                    continue; /* cannot be ours: tests make short paths */
                }
                tu_rm_r(sub);
            }
            closedir(d);
        }
        (void)rmdir(path);
    } else {
        (void)unlink(path);
    }
}

/* rm -rf dir unless KT_TEST_KEEP is set (the dir holds only what the test made). */
static inline void tu_rmtree(const char *dir)
{
    if (getenv("KT_TEST_KEEP") != NULL || dir[0] == '\0') {
        return;
    }
    tu_rm_r(dir);
}

#endif
