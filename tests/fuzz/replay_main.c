/*
 * replay_main.c — run a fuzz target over files without libFuzzer (gcc).
 *
 *   fuzz_x DIR_OR_FILE...
 *
 * Feeds each regular file (directories are read one level deep, in name
 * order) to LLVMFuzzerTestOneInput. A crash or sanitizer report fails the
 * ctest run; an empty corpus is an error, so a lost corpus cannot pass.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kt/buf.h"
#include "kt/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    kt_buf b;
    kt_buf_init(&b, 64u * 1024u * 1024u);
    kt_err err = { 0 };
    if (kt_buf_read_file(&b, path, &err) != KT_OK) {
        fprintf(stderr, "replay: %s\n", err.msg);
        kt_buf_fini(&b);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)b.data, b.len);
    kt_buf_fini(&b);
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        names = kt_xrealloc(names, (n + 1) * sizeof *names);
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = kt_xmalloc(len);
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        int r = run_file(names[i]);
        if (r < 0) {
            count = -1;
        } else if (count >= 0) {
            count += r;
        }
        kt_free(names[i]);
    }
    kt_free(names);
    return count;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int r = run_path(argv[i]);
        if (r < 0) {
            return 1;
        }
        total += r;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no corpus files\n");
        return 1;
    }
    printf("replay: %d inputs, 0 crashes\n", total);
    return 0;
}
