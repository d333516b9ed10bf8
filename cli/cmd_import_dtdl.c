/*
 * cmd_import_dtdl.c — `ktwinctl import-dtdl`: DTDL v2 files to TwinInterface YAML.
 *
 *   ktwinctl import-dtdl DIR|FILE... -o OUTDIR [--per-file] [--no-service] [--namespace NS]
 *
 * Directories are read recursively (*.json, in name order). Every
 * diagnostic (errors and warnings) is printed to stderr as
 * file:line:col: path: code: message. Nothing is written when there is an
 * error. Exit status: 0 written, 1 invalid input or I/O failure, 2 usage.
 *
 * Thread: main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "kt/err.h"
#include "ktwinctl.h"
#include "model/diag.h"
#include "model/dtdl.h"

static void usage(FILE *out)
{
    fputs("usage: ktwinctl import-dtdl DIR|FILE... -o OUTDIR [--per-file] [--no-service]\n"
          "                            [--namespace NS]\n"
          "\n"
          "Convert DTDL v2 interfaces to dtd.ktwin/v0 TwinInterface YAML, with KTWIN's\n"
          "naming rules (city:Pole -> city-pole).\n"
          "\n"
          "  -o, --output OUTDIR  write OUTDIR/<interface>.yaml (created if missing)\n"
          "  --per-file           write OUTDIR/<input-file-stem>.yaml instead, one per input\n"
          "  --no-service         leave out KTWIN's default service (image, autoscaling)\n"
          "  --namespace NS       metadata.namespace (default ktwin)\n"
          "  -h, --help           show this help\n"
          "\n"
          "Exit status: 0 written, 1 invalid input (diagnostics on stderr), 2 usage error.\n",
          out);
}

/* The value of an option given as "--opt VALUE" or "--opt=VALUE"; NULL when missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
        return arg + n + 1;
    }
    if (*i + 1 >= argc) {
        return NULL;
    }
    return argv[++*i];
}

int ktwinctl_import_dtdl(int argc, char **argv)
{
    const char *outdir = NULL;
    const char *ns = NULL;
    int per_file = 0;
    int with_service = 1;
    int n_inputs = 0;
    int only_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_inputs || a[0] != '-' || a[1] == '\0') {
            n_inputs++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_inputs = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return KTWINCTL_OK;
        } else if (strcmp(a, "--per-file") == 0) {
            per_file = 1;
        } else if (strcmp(a, "--no-service") == 0) {
            with_service = 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                   strncmp(a, "--output=", 9) == 0) {
            outdir = opt_value(argc, argv, &i, a, "--output");
            if (outdir == NULL || outdir[0] == '\0') {
                fprintf(stderr, "ktwinctl import-dtdl: %s needs a directory\n", a);
                return KTWINCTL_USAGE;
            }
        } else if (strncmp(a, "-o", 2) == 0) {
            outdir = a + 2;
        } else if (strcmp(a, "--namespace") == 0 || strncmp(a, "--namespace=", 12) == 0) {
            ns = opt_value(argc, argv, &i, a, "--namespace");
            if (ns == NULL || ns[0] == '\0') {
                fprintf(stderr, "ktwinctl import-dtdl: --namespace needs a name\n");
                return KTWINCTL_USAGE;
            }
        } else {
            fprintf(stderr, "ktwinctl import-dtdl: unknown option %s\n", a);
            usage(stderr);
            return KTWINCTL_USAGE;
        }
    }
    if (outdir == NULL || n_inputs == 0) {
        fprintf(stderr, "ktwinctl import-dtdl: %s\n",
                outdir == NULL ? "-o OUTDIR is required" : "no input files or directories");
        usage(stderr);
        return KTWINCTL_USAGE;
    }

    model_dtdl_opts opts = { ns, with_service };
    model_dtdl *d = model_dtdl_new(&opts);
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    int rc = KTWINCTL_OK;
    only_inputs = 0;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        const char *a = argv[i];
        if (!only_inputs && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                only_inputs = 1;
            } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                       strcmp(a, "--namespace") == 0) {
                i++; /* skip the value */
            }
            continue;
        }
        if (model_dtdl_add_path(d, a, &diag, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl import-dtdl: %s\n", err.msg);
            rc = KTWINCTL_INVALID;
        }
    }
    if (rc == KTWINCTL_OK) {
        (void)model_dtdl_convert(d, &diag);
        model_diag_print(&diag, stderr);
        if (diag.n_errors > 0) {
            fprintf(stderr, "ktwinctl import-dtdl: %zu errors, %zu warnings; nothing written\n",
                    diag.n_errors, diag.n_warnings);
            rc = KTWINCTL_INVALID;
        } else if (model_dtdl_count(d) == 0) {
            fprintf(stderr, "ktwinctl import-dtdl: no DTDL interfaces found\n");
            rc = KTWINCTL_INVALID;
        } else if (model_dtdl_write_dir(d, outdir, per_file, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl import-dtdl: %s\n", err.msg);
            rc = KTWINCTL_INVALID;
        } else {
            printf("wrote %zu interfaces to %s (%zu warnings)\n", model_dtdl_count(d), outdir,
                   diag.n_warnings);
        }
    } else {
        model_diag_print(&diag, stderr);
    }
    model_diag_fini(&diag);
    model_dtdl_free(d);
    return rc;
}
