/*
 * cmd_apply.c — `ktwinctl apply -f PATH...`: send documents to the hub.
 *
 * Every file (directories recursively: *.yaml, *.yml, *.json in name order,
 * hidden entries skipped; "-" is stdin) goes into one multi-document YAML
 * body, so the hub validates and applies all of it in one transaction
 * (POST /api/v1/apply). YAML files are sent as written, each after a "---"
 * line; each JSON document becomes one "--- {json}" line. A table of where
 * each piece starts maps the hub's error positions (file "request") back to
 * the user's files, so a 422 prints file:line:col lines like `validate`.
 *
 * Thread: main only.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "kt/mem.h"
#include "ktwinctl.h"
#include "model/node.h"
#include "remote.h"

#define BODY_MAX   ((size_t)1 << 30)
#define ANSWER_MAX ((size_t)256 << 20)

/* Where a piece of the request body came from. */
typedef struct piece {
    long req_line;  /* first line of the piece in the body (1-based) */
    char *file;     /* owned */
    long file_line; /* its line in the file */
    long file_col;
    int exact; /* 1: lines map one to one (YAML); 0: one JSON document on one line */
} piece;

typedef struct apply_body {
    kt_buf text;
    long line; /* current line number of the end of text (1-based) */
    piece *pieces;
    size_t n, cap;
    size_t n_files;
} apply_body;

static void add_piece(apply_body *b, const char *file, long file_line, long file_col, int exact)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->pieces = kt_xrealloc(b->pieces, b->cap * sizeof *b->pieces);
    }
    b->pieces[b->n++] = (piece){ b->line, kt_xstrdup(file), file_line, file_col, exact };
}

static int put(apply_body *b, const char *p, size_t n)
{
    if (kt_buf_append(&b->text, p, n) != KT_OK) {
        fprintf(stderr, "ktwinctl apply: the documents are over %zu bytes\n", b->text.max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        b->line += p[i] == '\n';
    }
    return 0;
}

typedef struct json_ctx {
    apply_body *b;
    const char *file;
    int bad;
} json_ctx;

static kt_status json_doc(const model_doc *doc, void *user)
{
    json_ctx *c = user;
    if (doc->root == NULL) {
        return KT_OK;
    }
    kt_buf one;
    kt_buf_init(&one, BODY_MAX);
    if (model_node_to_json(doc->root, &one) != KT_OK) {
        kt_buf_fini(&one);
        c->bad = 1;
        return KT_ETOOBIG;
    }
    add_piece(c->b, c->file, (long)doc->mark.line, (long)doc->mark.col, 0);
    int rc = put(c->b, "--- ", 4);
    if (rc == 0) {
        rc = put(c->b, one.data, one.len);
    }
    if (rc == 0) {
        rc = put(c->b, "\n", 1);
    }
    kt_buf_fini(&one);
    if (rc != 0) {
        c->bad = 1;
        return KT_ETOOBIG;
    }
    return KT_OK;
}

/* Add one file's content. Returns 0 or 1 (printed). */
static int add_content(apply_body *b, const char *file, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) {
        i++;
    }
    if (i == len) {
        return 0; /* empty */
    }
    b->n_files++;
    if (data[i] == '{' || data[i] == '[') {
        kt_arena arena;
        kt_arena_init(&arena, 64 * 1024);
        json_ctx c = { b, file, 0 };
        kt_err err = { 0 };
        kt_status st = model_parse_json(&arena, file, data, len, NULL, json_doc, &c, &err);
        kt_arena_fini(&arena);
        if (st != KT_OK && !c.bad) {
            fprintf(stderr, "%s\n", err.msg);
        }
        return st == KT_OK ? 0 : 1;
    }
    if (len < 3 || strncmp(data, "---", 3) != 0) {
        if (put(b, "---\n", 4) != 0) {
            return 1;
        }
    }
    add_piece(b, file, 1, 1, 1);
    if (put(b, data, len) != 0) {
        return 1;
    }
    if (data[len - 1] != '\n' && put(b, "\n", 1) != 0) {
        return 1;
    }
    return 0;
}

static int has_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL &&
           (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 || strcmp(dot, ".json") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_path(apply_body *b, const char *path, int named, unsigned depth);

static int add_dir(apply_body *b, const char *path, unsigned depth)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "ktwinctl apply: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = kt_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = kt_xstrdup(e->d_name);
    }
    (void)closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(path) + strlen(names[i]) + 2;
        char *child = kt_xmalloc(pl);
        (void)snprintf(child, pl, "%s/%s", path, names[i]);
        if (rc == 0) {
            rc = add_path(b, child, 0, depth + 1);
        }
        kt_free(child);
        kt_free(names[i]);
    }
    kt_free(names);
    return rc;
}

/* named: given on the command line (taken whatever its extension). */
static int add_path(apply_body *b, const char *path, int named, unsigned depth)
{
    kt_buf data;
    kt_buf_init(&data, BODY_MAX);
    kt_err err = { 0 };
    if (strcmp(path, "-") == 0 && named) {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
            if (kt_buf_append(&data, chunk, n) != KT_OK) {
                fprintf(stderr, "ktwinctl apply: stdin is over %zu bytes\n", data.max);
                kt_buf_fini(&data);
                return 1;
            }
        }
        int rc = add_content(b, "<stdin>", data.data != NULL ? data.data : "", data.len);
        kt_buf_fini(&data);
        return rc;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "ktwinctl apply: %s: %s\n", path, strerror(errno));
        kt_buf_fini(&data);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        kt_buf_fini(&data);
        if (depth > 32) {
            fprintf(stderr, "ktwinctl apply: %s: directories nest too deep\n", path);
            return 1;
        }
        return add_dir(b, path, depth);
    }
    if (!named && (!S_ISREG(st.st_mode) || !has_ext(path))) {
        kt_buf_fini(&data);
        return 0;
    }
    if (kt_buf_read_file(&data, path, &err) != KT_OK) {
        fprintf(stderr, "ktwinctl apply: %s\n", err.msg);
        kt_buf_fini(&data);
        return 1;
    }
    int rc = add_content(b, path, data.data != NULL ? data.data : "", data.len);
    kt_buf_fini(&data);
    return rc;
}

/* The hub's ("request", line, col) back to file:line:col. */
static void map_pos(const char *file, long line, long col, char *out, size_t cap, void *user)
{
    const apply_body *b = user;
    if (strcmp(file, "request") != 0 || line <= 0) {
        (void)snprintf(out, cap, "%s:%ld:%ld", file, line, col);
        return;
    }
    const piece *hit = NULL;
    for (size_t i = 0; i < b->n && b->pieces[i].req_line <= line; i++) {
        hit = &b->pieces[i];
    }
    if (hit == NULL) {
        (void)snprintf(out, cap, "%s:%ld:%ld", file, line, col);
    } else if (hit->exact) {
        (void)snprintf(out, cap, "%s:%ld:%ld", hit->file, hit->file_line + (line - hit->req_line),
                       col);
    } else {
        (void)snprintf(out, cap, "%s:%ld:%ld", hit->file, hit->file_line, hit->file_col);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ktwinctl apply -f PATH [-f PATH...] [hub flags]\n\n"
            "Send TwinInterface, TwinInstance and PlacementPolicy documents (files, or\n"
            "directories: *.yaml, *.yml, *.json recursively; - for stdin) to the hub, which\n"
            "validates them with everything it holds and applies all of them in one\n"
            "transaction, or none. Prints one line per object, as kubectl:\n"
            "  twininstance/x created | configured | unchanged\n"
            "A refusal prints the hub's errors as FILE:LINE:COL: FIELD.PATH: CLASS: message.\n\n"
            "%s",
            ktwinctl_remote_help);
}

int ktwinctl_apply(int argc, char **argv)
{
    ktwinctl_remote_opts ro = { 0 };
    const char **paths = kt_xcalloc((size_t)argc + 1, sizeof *paths);
    size_t n_paths = 0;
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        int f = ktwinctl_remote_flag(&ro, &i, argc, argv);
        if (f < 0) {
            rc = KTWINCTL_USAGE;
        } else if (f > 0) {
            continue;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            kt_free(paths);
            return KTWINCTL_OK;
        } else if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ktwinctl apply: %s needs a PATH\n", argv[i]);
                rc = KTWINCTL_USAGE;
            } else {
                paths[n_paths++] = argv[++i];
            }
        } else if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
            paths[n_paths++] = argv[i];
        } else {
            fprintf(stderr, "ktwinctl apply: unknown option %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        }
    }
    if (rc == KTWINCTL_OK && n_paths == 0) {
        fprintf(stderr, "ktwinctl apply: nothing to apply: give -f PATH\n");
        rc = KTWINCTL_USAGE;
    }
    if (rc != KTWINCTL_OK) {
        usage(stderr);
        kt_free(paths);
        return rc;
    }

    apply_body b = { .line = 1 };
    kt_buf_init(&b.text, BODY_MAX);
    for (size_t i = 0; i < n_paths && rc == KTWINCTL_OK; i++) {
        rc = add_path(&b, paths[i], 1, 0) == 0 ? KTWINCTL_OK : KTWINCTL_INVALID;
    }
    if (rc == KTWINCTL_OK && b.n == 0) {
        fprintf(stderr, "ktwinctl apply: no documents in the given paths\n");
        rc = KTWINCTL_INVALID;
    }
    ktwinctl_remote *r = NULL;
    if (rc == KTWINCTL_OK) {
        rc = ktwinctl_remote_open(&r, &ro);
    }
    kt_buf resp;
    kt_buf_init(&resp, ANSWER_MAX);
    long status = 0;
    if (rc == KTWINCTL_OK) {
        rc = ktwinctl_remote_call(r, "POST", "/api/v1/apply", b.text.data, b.text.len,
                                  "application/yaml", &status, &resp);
    }
    if (rc == KTWINCTL_OK && status != 200) {
        rc = ktwinctl_remote_report(r, status, &resp, "apply", map_pos, &b);
    } else if (rc == KTWINCTL_OK) {
        cJSON *j = NULL;
        kt_err err = { 0 };
        if (kt_json_parse(resp.data, resp.len, resp.len, &j, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl apply: the hub's answer is not JSON: %s\n", err.msg);
            rc = KTWINCTL_INVALID;
        } else {
            const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "applied");
            const cJSON *it;
            cJSON_ArrayForEach(it, items)
            {
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "kind");
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
                const cJSON *op = cJSON_GetObjectItemCaseSensitive(it, "op");
                const ktwinctl_kind *kd = ktwinctl_kind_by_kind(cJSON_GetStringValue(k));
                printf("%s/%s %s\n", kd != NULL ? kd->singular : "object",
                       cJSON_IsString(n) ? n->valuestring : "?",
                       cJSON_IsString(op) ? op->valuestring : "?");
            }
        }
        cJSON_Delete(j);
    }
    kt_buf_fini(&resp);
    ktwinctl_remote_free(r);
    for (size_t i = 0; i < b.n; i++) {
        kt_free(b.pieces[i].file);
    }
    kt_free(b.pieces);
    kt_buf_fini(&b.text);
    kt_free(paths);
    return rc;
}
