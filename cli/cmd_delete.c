/*
 * cmd_delete.c — `ktwinctl delete KIND NAME...`: remove objects from the hub
 * (DELETE /api/v1/{kind}/{name}, one request per name, in the order given).
 *
 * The hub refuses (422) a delete that would break the rest of the graph, for
 * example an interface that instances still use; its error list is printed
 * as file:line:col lines. Deleting stops at the first refusal.
 *
 * Thread: main only.
 */
#include <stdio.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "ktwinctl.h"
#include "remote.h"

#define ANSWER_MAX ((size_t)16 << 20)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ktwinctl delete KIND NAME [NAME...] [hub flags]\n\n"
            "Delete objects from the hub. KIND is one of %s.\n"
            "Prints kind/name deleted per object; stops at the first one the hub refuses\n"
            "(unknown: 404, or still in use: 422 with the reasons).\n\n"
            "%s",
            ktwinctl_kinds_help, ktwinctl_remote_help);
}

int ktwinctl_delete(int argc, char **argv)
{
    ktwinctl_remote_opts ro = { 0 };
    const char *kind_s = NULL;
    const char **names = kt_xcalloc((size_t)argc + 1, sizeof *names);
    size_t n = 0;
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        int f = ktwinctl_remote_flag(&ro, &i, argc, argv);
        if (f < 0) {
            rc = KTWINCTL_USAGE;
        } else if (f > 0) {
            continue;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            kt_free(names);
            return KTWINCTL_OK;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ktwinctl delete: unknown option %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        } else if (kind_s == NULL) {
            kind_s = argv[i];
        } else {
            names[n++] = argv[i];
        }
    }
    const ktwinctl_kind *k = kind_s != NULL ? ktwinctl_kind_parse(kind_s) : NULL;
    if (rc == KTWINCTL_OK && (kind_s == NULL || n == 0)) {
        fprintf(stderr, "ktwinctl delete: give KIND and NAME\n");
        usage(stderr);
        rc = KTWINCTL_USAGE;
    } else if (rc == KTWINCTL_OK && k == NULL) {
        fprintf(stderr, "ktwinctl delete: unknown kind \"%s\": one of %s\n", kind_s,
                ktwinctl_kinds_help);
        rc = KTWINCTL_USAGE;
    }
    ktwinctl_remote *r = NULL;
    if (rc == KTWINCTL_OK) {
        rc = ktwinctl_remote_open(&r, &ro);
    }
    kt_buf resp;
    kt_buf_init(&resp, ANSWER_MAX);
    for (size_t i = 0; i < n && rc == KTWINCTL_OK; i++) {
        char *e = ktwinctl_remote_escape(r, names[i]);
        char path[1024], what[1024];
        (void)snprintf(path, sizeof path, "/api/v1/%s/%s", k->path, e);
        (void)snprintf(what, sizeof what, "delete %s/%s", k->singular, names[i]);
        kt_free(e);
        long status = 0;
        kt_buf_reset(&resp);
        rc = ktwinctl_remote_call(r, "DELETE", path, NULL, 0, NULL, &status, &resp);
        if (rc == KTWINCTL_OK && status != 200) {
            rc = ktwinctl_remote_report(r, status, &resp, what, NULL, NULL);
        } else if (rc == KTWINCTL_OK) {
            printf("%s/%s deleted\n", k->singular, names[i]);
        }
    }
    kt_buf_fini(&resp);
    ktwinctl_remote_free(r);
    kt_free(names);
    return rc;
}
