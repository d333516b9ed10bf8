/*
 * run_metrics.h — the parts of `ktwin-sim run` (run.c) that read the agents'
 * and the hub's /metrics text exposition, exposed for the fuzz target
 * tests/fuzz/fuzz_sim_run.c. Internal to sim/: run.c is the only user.
 *
 * Invariants: the text is NUL-terminated and untrusted (any bytes); nothing
 * reads past the NUL, a histogram keeps at most LAT_BOUNDS bounds and an
 * array of histograms at most RUN_MAX_IFACES interfaces.
 * Thread: any (no state). Ownership: nothing is kept.
 */
#ifndef KT_SIM_RUN_METRICS_H
#define KT_SIM_RUN_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define RUN_MAX_IFACES 64u
/* Latency histogram of the agents (per service interface), see agent/dispatch.c. */
#define LAT_METRIC "ktwin_agent_service_latency_seconds"
#define LAT_BOUNDS 64u

/* One histogram (summed over agents) for one interface. */
typedef struct lat_hist {
    char iface[128];
    double le[LAT_BOUNDS];
    double cum[LAT_BOUNDS];
    size_t n;
    double count, sum;
} lat_hist;

/*
 * Sum of the samples of metric `name` (exact family member, e.g.
 * "x_total" or "x_bucket") whose label set contains `label` (e.g.
 * `kind="upstream"`; NULL = every series). *found (may be NULL) tells
 * whether any matched.
 */
double sim_run_metric_sum(const char *text, const char *name, const char *label, bool *found);

/* Add one agent's LAT_METRIC histograms (text exposition) into h[0..*n), *n <= RUN_MAX_IFACES. */
void sim_run_hist_add(lat_hist *h, size_t *n, const char *text);

/* Prometheus histogram_quantile of x at q (0..1): linear inside the bucket; seconds, NAN if none.
 */
double sim_run_hist_quantile(const lat_hist *x, double q);

#endif
