/*
 * fed_expect.c — the expected subgraph of one site, computed independently
 * of the hub's federation code, for the federation integration tests.
 *
 *   fed_expect --model PATH --agents-file FILE --site S [--edge]
 *
 * Loads the model files (model_load_path + model_resolve), places every
 * instance with the placement engine over the sites of the agents file, and
 * prints the names of the site's subgraph (its instances plus their 1-hop
 * neighbours, model_subgraph depth 1), sorted, one per line. With --edge it
 * prints instead the interfaces the rules would put at the edge on S when
 * every site is connected with unlimited capacity.
 * Exit 0, 1 on a load/validation error, 2 usage.
 *
 * Thread: main only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/mem.h"
#include "model/diag.h"
#include "model/graph.h"
#include "model/model.h"
#include "model/placement.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *agents = NULL, *site = NULL;
    int edge = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--edge") == 0) {
            edge = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--model") == 0) {
            path = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--agents-file") == 0) {
            agents = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--site") == 0) {
            site = argv[++i];
        } else {
            fputs("usage: fed_expect --model PATH --agents-file FILE --site S [--edge]\n", stderr);
            return 2;
        }
    }
    if (path == NULL || agents == NULL || site == NULL) {
        fputs("usage: fed_expect --model PATH --agents-file FILE --site S [--edge]\n", stderr);
        return 2;
    }
    kt_err err = { 0 };
    kt_buf ab;
    kt_buf_init(&ab, 16u * 1024u * 1024u);
    if (kt_buf_read_file(&ab, agents, &err) != KT_OK) {
        fprintf(stderr, "fed_expect: %s\n", err.msg);
        return 1;
    }
    model_placement_site *sites = NULL;
    size_t n_sites = 0, cap = 0;
    for (char *line = ab.data; line != NULL && *line != '\0';) {
        char *eol = strchr(line, '\n');
        if (eol != NULL) {
            *eol = '\0';
        }
        char name[256];
        if (line[0] != '#' && sscanf(line, "%255s", name) == 1) {
            if (n_sites == cap) {
                cap = cap == 0 ? 16 : cap * 2;
                sites = kt_xrealloc(sites, cap * sizeof *sites);
            }
            sites[n_sites].name = kt_xstrdup(name);
            sites[n_sites].connected = 1;
            sites[n_sites].cpu_millis = MODEL_PLACEMENT_CPU_UNLIMITED;
            sites[n_sites].memory_bytes = MODEL_PLACEMENT_MEMORY_UNLIMITED;
            n_sites++;
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    kt_buf_fini(&ab);

    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    if (model_load_path(m, path, &diag, &err) != KT_OK) {
        fprintf(stderr, "fed_expect: %s\n", err.msg);
        return 1;
    }
    if (model_resolve(m, &diag) != KT_OK || diag.n_errors > 0) {
        fprintf(stderr, "fed_expect: %s: the model has %zu errors\n", path, diag.n_errors);
        return 1;
    }
    model_placement *p = NULL;
    if (model_placement_compute(&p, m, sites, n_sites, NULL, &err) != KT_OK) {
        fprintf(stderr, "fed_expect: %s\n", err.msg);
        return 1;
    }
    if (edge) {
        size_t n = 0;
        const model_placement_decision *d = model_placement_site_decisions(p, site, &n);
        for (size_t i = 0; i < n; i++) {
            if (d[i].where == MODEL_WHERE_EDGE) {
                printf("%s\n", d[i].iface);
            }
        }
    } else {
        model_instance **seeds = kt_xcalloc(model_n_instances(m) + 1, sizeof *seeds);
        size_t n_seeds = 0;
        for (size_t i = 0; i < model_n_instances(m); i++) {
            model_instance *inst = model_instance_at(m, i);
            const char *s = model_placement_instance_site(p, inst->name);
            if (s != NULL && strcmp(s, site) == 0) {
                seeds[n_seeds++] = inst;
            }
        }
        model_instance_set set;
        model_instance_set_init(&set);
        model_subgraph(m, seeds, n_seeds, 1, &set);
        const char **names = kt_xcalloc(set.n + 1, sizeof *names);
        for (size_t i = 0; i < set.n; i++) {
            names[i] = set.items[i]->name;
        }
        qsort(names, set.n, sizeof *names, cmp_str);
        for (size_t i = 0; i < set.n; i++) {
            printf("%s\n", names[i]);
        }
        kt_free(names);
        model_instance_set_fini(&set);
        kt_free(seeds);
    }
    model_placement_free(p);
    model_diag_fini(&diag);
    model_free(m);
    for (size_t i = 0; i < n_sites; i++) {
        kt_free((char *)sites[i].name);
    }
    kt_free(sites);
    return 0;
}
