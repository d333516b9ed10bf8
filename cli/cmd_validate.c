/*
 * cmd_validate.c — `ktwinctl validate` and `ktwinctl graph`: load CRD
 * files, report every problem, and print graphs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "ktwinctl.h"
#include "model/graph.h"
#include "model/model.h"

typedef struct paths {
    char **items;
    size_t n;
} paths;

/* Load every -f PATH into m; prints problems; returns an exit code. */
static int load_all(model *m, const paths *p, int quiet_ok)
{
    model_diag diag;
    model_diag_init(&diag);
    int rc = KTWINCTL_OK;
    for (size_t i = 0; i < p->n; i++) {
        kt_err err = { 0 };
        if (model_load_path(m, p->items[i], &diag, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl: %s\n", err.msg);
            rc = KTWINCTL_INVALID;
        }
    }
    model_resolve(m, &diag);
    model_diag_print(&diag, stderr);
    if (diag.n_errors > 0) {
        rc = KTWINCTL_INVALID;
    }
    if (!quiet_ok || rc != KTWINCTL_OK) {
        fprintf(rc == KTWINCTL_OK ? stdout : stderr,
                "%zu interfaces, %zu instances, %zu placement policies: %s (%zu errors, %zu warnings)\n",
                model_n_ifaces(m), model_n_instances(m), model_n_policies(m),
                rc == KTWINCTL_OK ? "valid" : "INVALID", diag.n_errors, diag.n_warnings);
    }
    model_diag_fini(&diag);
    return rc;
}

static int take_path(paths *p, int *i, int argc, char **argv)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "ktwinctl: %s needs a PATH\n", argv[*i]);
        return -1;
    }
    p->items[p->n++] = argv[++*i];
    return 0;
}

int ktwinctl_validate(int argc, char **argv)
{
    paths p = { kt_xcalloc((size_t)argc, sizeof(char *)), 0 };
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: ktwinctl validate -f PATH [-f PATH...]\n\n"
                   "Load TwinInterface, TwinInstance and PlacementPolicy documents from files or\n"
                   "directories (*.yaml, *.yml, *.json, recursively) and report every problem as\n"
                   "FILE:LINE:COL: FIELD.PATH: CLASS: message. Exit 0 valid, 1 invalid, 2 usage.\n");
            kt_free(p.items);
            return KTWINCTL_OK;
        }
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) {
            if (take_path(&p, &i, argc, argv) != 0) {
                rc = KTWINCTL_USAGE;
            }
        } else if (argv[i][0] != '-') {
            p.items[p.n++] = argv[i];
        } else {
            fprintf(stderr, "ktwinctl validate: unknown option %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        }
    }
    if (rc == KTWINCTL_OK && p.n == 0) {
        fprintf(stderr, "usage: ktwinctl validate -f PATH [-f PATH...]\n");
        rc = KTWINCTL_USAGE;
    }
    if (rc == KTWINCTL_OK) {
        model *m = model_new();
        rc = load_all(m, &p, 0);
        model_free(m);
    }
    kt_free(p.items);
    return rc;
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v > 1000) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int ktwinctl_graph(int argc, char **argv)
{
    paths p = { kt_xcalloc((size_t)argc, sizeof(char *)), 0 };
    const char *iface = NULL, *instance = NULL;
    unsigned depth = 1;
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: ktwinctl graph -f PATH [--interface I] [--instance X [--depth N]]\n\n"
                   "Print the twin graph in KTWIN's JSON shape ({\"twinInstances\": [...]}).\n"
                   "  --interface I   only instances of I, each with its relationships (KTWIN's\n"
                   "                  /api/v1/twin-graph/I)\n"
                   "  --instance X    X and everything within N hops, both directions (default 1)\n");
            kt_free(p.items);
            return KTWINCTL_OK;
        }
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--filename") == 0) {
            rc = take_path(&p, &i, argc, argv) == 0 ? KTWINCTL_OK : KTWINCTL_USAGE;
        } else if (strcmp(argv[i], "--interface") == 0 && i + 1 < argc) {
            iface = argv[++i];
        } else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc) {
            instance = argv[++i];
        } else if (strcmp(argv[i], "--depth") == 0 && i + 1 < argc) {
            if (parse_uint(argv[++i], &depth) != 0) {
                fprintf(stderr, "ktwinctl graph: --depth takes a number 0..1000\n");
                rc = KTWINCTL_USAGE;
            }
        } else {
            fprintf(stderr, "ktwinctl graph: unexpected argument %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        }
    }
    if (rc == KTWINCTL_OK && p.n == 0) {
        fprintf(stderr, "usage: ktwinctl graph -f PATH [--interface I] [--instance X --depth N]\n");
        rc = KTWINCTL_USAGE;
    }
    if (rc != KTWINCTL_OK) {
        kt_free(p.items);
        return rc;
    }
    model *m = model_new();
    rc = load_all(m, &p, 1);
    if (rc == KTWINCTL_OK) {
        kt_buf out;
        kt_buf_init(&out, (size_t)4 << 30);
        kt_status st = KT_OK;
        if (iface != NULL) {
            if (model_iface_get(m, iface) == NULL) {
                fprintf(stderr, "ktwinctl graph: no interface \"%s\"\n", iface);
                rc = KTWINCTL_INVALID;
            } else {
                st = model_graph_iface_to_json(m, iface, &out);
            }
        } else if (instance != NULL) {
            model_instance *seed = model_instance_get(m, instance);
            if (seed == NULL) {
                fprintf(stderr, "ktwinctl graph: no instance \"%s\"\n", instance);
                rc = KTWINCTL_INVALID;
            } else {
                model_instance_set set;
                model_instance_set_init(&set);
                model_subgraph(m, &seed, 1, depth, &set);
                st = model_graph_to_json(m, &set, &out);
                model_instance_set_fini(&set);
            }
        } else {
            st = model_graph_to_json(m, NULL, &out);
        }
        if (st != KT_OK) {
            fprintf(stderr, "ktwinctl graph: %s\n", kt_status_str(st));
            rc = KTWINCTL_INVALID;
        } else if (rc == KTWINCTL_OK) {
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
        }
        kt_buf_fini(&out);
    }
    model_free(m);
    kt_free(p.items);
    return rc;
}
