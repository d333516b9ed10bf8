/*
 * cmd_get.c — `ktwinctl get KIND [NAME] [-o json|yaml|name]`: read objects
 * from the hub (GET /api/v1/{kind}[/{name}]).
 *
 * Default output is a table (kind-specific columns); -o json prints the
 * hub's JSON indented, -o yaml the documents as YAML (a list as a stream of
 * documents, ready for `ktwinctl apply -f -`), -o name one kind/name line
 * per object.
 *
 * Thread: main only.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "kt/mem.h"
#include "ktwinctl.h"
#include "model/emit.h"
#include "remote.h"

#define ANSWER_MAX ((size_t)1 << 30)

typedef enum out_fmt { OUT_TABLE, OUT_JSON, OUT_YAML, OUT_NAME } out_fmt;

static const char *str_at(const cJSON *o, const char *a, const char *b, const char *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    }
    if (c != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, c);
    }
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The columns of one object after NAME. */
static void columns(const ktwinctl_kind *k, const cJSON *o, char *c1, char *c2, size_t cap)
{
    const char *a = NULL, *b = NULL;
    char num[32];
    if (strcmp(k->kind, "TwinInstance") == 0) {
        a = str_at(o, "spec", "interface", NULL);
        b = str_at(o, "metadata", "labels", "ktwin.io/site");
    } else if (strcmp(k->kind, "TwinInterface") == 0) {
        a = str_at(o, "spec", "extendsInterface", NULL);
        const cJSON *ctrs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "spec"),
                                                     "service"),
                    "template"),
                "spec"),
            "containers");
        b = str_at(cJSON_GetArrayItem(ctrs, 0), "image", NULL, NULL);
    } else {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(spec, "priority");
        (void)snprintf(num, sizeof num, "%d", cJSON_IsNumber(pr) ? (int)pr->valuedouble : 0);
        a = num;
        const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, "rules");
        (void)snprintf(c2, cap, "%d", cJSON_IsArray(rules) ? cJSON_GetArraySize(rules) : 0);
        kt_strlcpy(c1, a, cap);
        return;
    }
    kt_strlcpy(c1, a != NULL ? a : "-", cap);
    kt_strlcpy(c2, b != NULL ? b : "-", cap);
}

static void print_table(const ktwinctl_kind *k, const cJSON *const *objs, size_t n)
{
    const char *h1 = strcmp(k->kind, "TwinInstance") == 0    ? "INTERFACE"
                     : strcmp(k->kind, "TwinInterface") == 0 ? "EXTENDS"
                                                             : "PRIORITY";
    const char *h2 = strcmp(k->kind, "TwinInstance") == 0    ? "SITE"
                     : strcmp(k->kind, "TwinInterface") == 0 ? "IMAGE"
                                                             : "RULES";
    int w0 = 4, w1 = (int)strlen(h1);
    char c1[256], c2[256];
    for (size_t i = 0; i < n; i++) {
        const char *name = str_at(objs[i], "metadata", "name", NULL);
        int l = (int)strlen(name != NULL ? name : "?");
        w0 = l > w0 ? l : w0;
        columns(k, objs[i], c1, c2, sizeof c1);
        l = (int)strlen(c1);
        w1 = l > w1 ? l : w1;
    }
    printf("%-*s   %-*s   %s\n", w0, "NAME", w1, h1, h2);
    for (size_t i = 0; i < n; i++) {
        const char *name = str_at(objs[i], "metadata", "name", NULL);
        columns(k, objs[i], c1, c2, sizeof c1);
        printf("%-*s   %-*s   %s\n", w0, name != NULL ? name : "?", w1, c1, c2);
    }
}

static int print_objects(const ktwinctl_kind *k, const cJSON *root, int is_list, out_fmt fmt)
{
    if (fmt == OUT_JSON) {
        return ktwinctl_print_json(root, stdout) == 0 ? KTWINCTL_OK : KTWINCTL_INVALID;
    }
    const cJSON *items = is_list ? cJSON_GetObjectItemCaseSensitive(root, "items") : NULL;
    size_t n = is_list ? (size_t)cJSON_GetArraySize(items) : 1;
    const cJSON **objs = kt_xcalloc(n + 1, sizeof *objs);
    for (size_t i = 0; i < n; i++) {
        objs[i] = is_list ? cJSON_GetArrayItem(items, (int)i) : root;
    }
    int rc = KTWINCTL_OK;
    if (fmt == OUT_TABLE) {
        if (n == 0) {
            fprintf(stderr, "No %s found.\n", k->path);
        } else {
            print_table(k, objs, n);
        }
    } else if (fmt == OUT_NAME) {
        for (size_t i = 0; i < n; i++) {
            const char *name = str_at(objs[i], "metadata", "name", NULL);
            printf("%s/%s\n", k->singular, name != NULL ? name : "?");
        }
    } else {
        kt_buf y;
        kt_buf_init(&y, (size_t)1 << 31);
        for (size_t i = 0; i < n && rc == KTWINCTL_OK; i++) {
            if (model_emit_yaml_doc(objs[i], &y) != KT_OK) {
                fprintf(stderr, "ktwinctl get: cannot write YAML\n");
                rc = KTWINCTL_INVALID;
            }
        }
        if (rc == KTWINCTL_OK && y.len > 0) {
            (void)fwrite(y.data, 1, y.len, stdout);
        }
        kt_buf_fini(&y);
    }
    kt_free(objs);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ktwinctl get KIND [NAME] [-o json|yaml|name] [hub flags]\n\n"
            "Read objects from the hub. KIND is one of %s\n"
            "(any case; the Kind name works too). Without NAME every object of the kind is\n"
            "listed, in name order. Output: a table by default; -o json (the hub's JSON),\n"
            "-o yaml (YAML documents, ready for ktwinctl apply -f -), -o name (kind/name).\n\n"
            "%s",
            ktwinctl_kinds_help, ktwinctl_remote_help);
}

int ktwinctl_get(int argc, char **argv)
{
    ktwinctl_remote_opts ro = { 0 };
    const char *kind_s = NULL, *name = NULL;
    out_fmt fmt = OUT_TABLE;
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        int f = ktwinctl_remote_flag(&ro, &i, argc, argv);
        if (f < 0) {
            rc = KTWINCTL_USAGE;
        } else if (f > 0) {
            continue;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return KTWINCTL_OK;
        } else if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (strcmp(v, "json") == 0) {
                fmt = OUT_JSON;
            } else if (strcmp(v, "yaml") == 0) {
                fmt = OUT_YAML;
            } else if (strcmp(v, "name") == 0) {
                fmt = OUT_NAME;
            } else {
                fprintf(stderr, "ktwinctl get: -o takes json, yaml or name, not \"%s\"\n", v);
                rc = KTWINCTL_USAGE;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ktwinctl get: unknown option %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        } else if (kind_s == NULL) {
            kind_s = argv[i];
        } else if (name == NULL) {
            name = argv[i];
        } else {
            fprintf(stderr, "ktwinctl get: one NAME at most (extra: %s)\n", argv[i]);
            rc = KTWINCTL_USAGE;
        }
    }
    const ktwinctl_kind *k = NULL;
    if (rc == KTWINCTL_OK && kind_s == NULL) {
        fprintf(stderr, "ktwinctl get: which KIND? one of %s\n", ktwinctl_kinds_help);
        rc = KTWINCTL_USAGE;
    } else if (rc == KTWINCTL_OK && (k = ktwinctl_kind_parse(kind_s)) == NULL) {
        fprintf(stderr, "ktwinctl get: unknown kind \"%s\": one of %s\n", kind_s,
                ktwinctl_kinds_help);
        rc = KTWINCTL_USAGE;
    }
    if (rc != KTWINCTL_OK) {
        return rc;
    }
    ktwinctl_remote *r = NULL;
    rc = ktwinctl_remote_open(&r, &ro);
    if (rc != KTWINCTL_OK) {
        return rc;
    }
    char path[1024], what[1024];
    if (name != NULL) {
        char *e = ktwinctl_remote_escape(r, name);
        (void)snprintf(path, sizeof path, "/api/v1/%s/%s", k->path, e);
        kt_free(e);
        (void)snprintf(what, sizeof what, "get %s/%s", k->singular, name);
    } else {
        (void)snprintf(path, sizeof path, "/api/v1/%s", k->path);
        (void)snprintf(what, sizeof what, "get %s", k->path);
    }
    kt_buf resp;
    kt_buf_init(&resp, ANSWER_MAX);
    long status = 0;
    rc = ktwinctl_remote_call(r, "GET", path, NULL, 0, NULL, &status, &resp);
    if (rc == KTWINCTL_OK && status != 200) {
        rc = ktwinctl_remote_report(r, status, &resp, what, NULL, NULL);
    } else if (rc == KTWINCTL_OK) {
        cJSON *j = NULL;
        kt_err err = { 0 };
        if (kt_json_parse(resp.data, resp.len, resp.len, &j, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl %s: the hub's answer is not JSON: %s\n", what, err.msg);
            rc = KTWINCTL_INVALID;
        } else {
            rc = print_objects(k, j, name == NULL, fmt);
        }
        cJSON_Delete(j);
    }
    kt_buf_fini(&resp);
    ktwinctl_remote_free(r);
    return rc;
}
