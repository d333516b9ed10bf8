/*
 * bench_model_load.c — time loading and resolving a model directory.
 *
 *   bench_model_load DIR [--expect-instances N] [--graph-json]
 *
 * Loads DIR with model_load_path, runs model_resolve, and prints one JSON
 * object on stdout:
 *   {"seconds": load+resolve wall time, "load_seconds", "resolve_seconds",
 *    "peak_rss_mib": getrusage ru_maxrss, "instances", "interfaces",
 *    "policies", "bytes_per_instance": model_mem_bytes / instances, "errors", "warnings"}
 * With --graph-json it then also times KTWIN's graph JSON of the whole model
 * (model_graph_to_json) and of city-pole (model_graph_iface_to_json), adding
 * "graph_json_seconds", "graph_json_mib", "iface_json_seconds"; peak RSS is
 * taken before, so the output buffer does not count.
 * Diagnostics go to stderr. Exit status 1 when the model has an error or
 * the instance count differs from --expect-instances, so the benchmark
 * doubles as a check that the generated model is valid.
 *
 * Thread: main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "kt/log.h"
#include "model/diag.h"
#include "model/graph.h"
#include "model/model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long long expect = -1;
    int graph_json = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--expect-instances") == 0 && i + 1 < argc) {
            expect = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--graph-json") == 0) {
            graph_json = 1;
        } else {
            argc = 0; /* usage */
        }
    }
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model_load DIR [--expect-instances N] [--graph-json]\n");
        return 2;
    }
    kt_log_set_level(KT_LOG_ERR);
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };

    double t0 = now_s();
    model *m = model_new();
    kt_status st = model_load_path(m, argv[1], &diag, &err);
    double t1 = now_s();
    if (st == KT_OK) {
        (void)model_resolve(m, &diag);
    }
    double t2 = now_s();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t n = model_n_instances(m);
    double per = n > 0 ? (double)model_mem_bytes(m) / (double)n : 0.0;
    if (st != KT_OK) {
        fprintf(stderr, "bench_model_load: %s\n", err.msg);
    }
    model_diag_print(&diag, stderr);
    kt_status jst = KT_OK;
    if (graph_json) {
        kt_buf out;
        kt_buf_init(&out, (size_t)4 << 30);
        double j0 = now_s();
        jst = model_graph_to_json(m, NULL, &out);
        double j1 = now_s();
        size_t whole = out.len;
        kt_buf_reset(&out);
        double j2 = now_s();
        if (jst == KT_OK) {
            jst = model_graph_iface_to_json(m, "city-pole", &out);
        }
        double j3 = now_s();
        kt_buf_fini(&out);
        printf("{\"graph_json_seconds\": %.3f, \"graph_json_mib\": %.1f, "
               "\"iface_json_seconds\": %.4f, ",
               j1 - j0, (double)whole / (1024.0 * 1024.0), j3 - j2);
    } else {
        printf("{");
    }
    printf("\"seconds\": %.3f, \"load_seconds\": %.3f, \"resolve_seconds\": %.3f, "
           "\"peak_rss_mib\": %.1f, \"instances\": %zu, \"interfaces\": %zu, "
           "\"policies\": %zu, \"bytes_per_instance\": %.1f, \"errors\": %zu, \"warnings\": %zu}\n",
           t2 - t0, t1 - t0, t2 - t1, (double)ru.ru_maxrss / 1024.0, n, model_n_ifaces(m),
           model_n_policies(m), per, diag.n_errors, diag.n_warnings);
    int rc =
        st == KT_OK && jst == KT_OK && diag.n_errors == 0 && (expect < 0 || (size_t)expect == n)
            ? 0
            : 1;
    if (expect >= 0 && (size_t)expect != n) {
        fprintf(stderr, "bench_model_load: %zu instances, expected %lld\n", n, expect);
    }
    model_diag_fini(&diag);
    model_free(m);
    return rc;
}
