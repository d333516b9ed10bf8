/*
 * bench_placement.c — time the placement engine on a generated city.
 *
 *   bench_placement DIR --sites S [--expect-instances N]
 *
 * Loads and resolves DIR (written by `ktwin-sim model --sites S`; not
 * timed), then times model_placement_compute three ways and prints one JSON
 * object on stdout:
 *   "labelled_seconds"   as generated: every neighborhood twin carries
 *                        ktwin.io/site, so almost nothing walks;
 *   "seconds"            the site label kept on neighborhoods only: every
 *                        other instance finds its site by a siteFrom walk
 *                        (the policy's hops), the harder and reported case;
 *   "incremental_seconds" the same again with the previous result as prev
 *                        after site-00 dropped to 1000m CPU (minimal moves);
 * plus "hub_rss_mib" (getrusage ru_maxrss: model and results together),
 * "instances", "sites", "decisions", "walked", "no_site", "edge", "cloud",
 * "pending" and "moved" (changes in the incremental run).
 *
 * Sites (a realistic mix): site-NN for NN < S with 4000m CPU and 8 GiB,
 * every 10th site a small one (800m, 1 GiB), every 20th one disconnected.
 * Exit status 1 when the model has an error, the instance count differs
 * from --expect-instances, or an instance other than ones the policy cannot
 * reach ends with no site.
 *
 * Thread: main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kt/err.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/diag.h"
#include "model/model.h"
#include "model/placement.h"

#define NEIGHBORHOOD_IFACE "s4city-city-neighborhood"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static model_placement *timed(const model *m,
                              const model_placement_site *sites,
                              size_t n,
                              const model_placement *prev,
                              double *secs)
{
    model_placement *p = NULL;
    kt_err err = { 0 };
    double t0 = now_s();
    kt_status st = model_placement_compute(&p, m, sites, n, prev, &err);
    *secs = now_s() - t0;
    if (st != KT_OK) {
        fprintf(stderr, "bench_placement: %s\n", err.msg);
        exit(1);
    }
    return p;
}

static void count_where(const model_placement *p, size_t *edge, size_t *cloud, size_t *pending)
{
    *edge = *cloud = *pending = 0;
    for (size_t s = 0; s < model_placement_n_sites(p); s++) {
        const model_placement_site_info *si = model_placement_site_at(p, s);
        *edge += si->n_edge;
        *cloud += si->n_cloud;
        *pending += si->n_pending;
    }
}

int main(int argc, char **argv)
{
    long long expect = -1;
    long n_sites = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--expect-instances") == 0 && i + 1 < argc) {
            expect = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--sites") == 0 && i + 1 < argc) {
            n_sites = strtol(argv[++i], NULL, 10);
        } else {
            argc = 0; /* usage */
        }
    }
    if (argc < 2 || n_sites < 1 || n_sites > 1000) {
        fprintf(stderr, "usage: bench_placement DIR --sites S(1..1000) [--expect-instances N]\n");
        return 2;
    }
    kt_log_set_level(KT_LOG_ERR);
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    model *m = model_new();
    if (model_load_path(m, argv[1], &diag, &err) != KT_OK) {
        fprintf(stderr, "bench_placement: %s\n", err.msg);
        return 1;
    }
    (void)model_resolve(m, &diag);
    if (diag.n_errors > 0) {
        model_diag_print(&diag, stderr);
        return 1;
    }
    model_diag_fini(&diag);
    size_t n_inst = model_n_instances(m);
    if (expect >= 0 && (size_t)expect != n_inst) {
        fprintf(stderr, "bench_placement: %zu instances, expected %lld\n", n_inst, expect);
        return 1;
    }

    model_placement_site *sites = kt_xcalloc((size_t)n_sites, sizeof *sites);
    char(*names)[16] = kt_xcalloc((size_t)n_sites, sizeof *names);
    for (long k = 0; k < n_sites; k++) {
        (void)snprintf(names[k], sizeof names[k], "site-%02ld", k);
        sites[k].name = names[k];
        int small = k % 10 == 9;
        sites[k].connected = k % 20 != 19;
        sites[k].cpu_millis = small ? 800 : 4000;
        sites[k].memory_bytes = (uint64_t)(small ? 1 : 8) << 30;
    }

    double labelled_s = 0, walk_s = 0, incr_s = 0;
    model_placement *p0 = timed(m, sites, (size_t)n_sites, NULL, &labelled_s);
    size_t labelled_no_site = model_placement_get_stats(p0)->n_no_site;
    model_placement_free(p0);

    /* Keep the site label on neighborhoods only; the rest walks the policy's hops. */
    for (size_t i = 0; i < n_inst; i++) {
        model_instance *inst = model_instance_at(m, i);
        if (strcmp(inst->iface_name, NEIGHBORHOOD_IFACE) != 0) {
            inst->site = NULL;
        }
    }
    model_placement *p1 = timed(m, sites, (size_t)n_sites, NULL, &walk_s);

    /* One site drops to 1000m CPU: recompute with prev. */
    sites[0].cpu_millis = 1000;
    model_placement *p2 = timed(m, sites, (size_t)n_sites, p1, &incr_s);
    size_t moved = model_placement_diff(p1, p2, NULL, NULL);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const model_placement_stats *st = model_placement_get_stats(p1);
    size_t edge = 0, cloud = 0, pending = 0;
    count_where(p1, &edge, &cloud, &pending);
    printf("{\"seconds\": %.3f, \"labelled_seconds\": %.3f, \"incremental_seconds\": %.3f, "
           "\"hub_rss_mib\": %.1f, \"instances\": %zu, \"sites\": %ld, \"decisions\": %zu, "
           "\"walked\": %zu, \"no_site\": %zu, \"edge\": %zu, \"cloud\": %zu, \"pending\": %zu, "
           "\"moved\": %zu}\n",
           walk_s, labelled_s, incr_s, (double)ru.ru_maxrss / 1024.0, st->n_instances, n_sites,
           st->n_decisions, st->n_walked, st->n_no_site, edge, cloud, pending, moved);
    int rc = 0;
    if (st->n_no_site != 0 || labelled_no_site != 0) {
        fprintf(stderr, "bench_placement: %zu instances without a site (%zu when labelled)\n",
                st->n_no_site, labelled_no_site);
        rc = 1;
    }
    model_placement_free(p1);
    model_placement_free(p2);
    kt_free(names);
    kt_free(sites);
    model_free(m);
    return rc;
}
