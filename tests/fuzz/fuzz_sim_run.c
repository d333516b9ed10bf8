/*
 * fuzz_sim_run.c — `ktwin-sim run` reads the agents' and the hub's /metrics
 * text (sim/run_metrics.h) while it drives the experiment: any bytes there
 * (a truncated answer, a foreign server on the port, huge label values,
 * missing '}' or values) must be read without crashing or reading past the
 * text. Checks: sim_run_metric_sum sums 0 when it found nothing; histograms
 * never hold more than RUN_MAX_IFACES interfaces nor LAT_BOUNDS bounds per
 * interface, and every interface name is NUL-terminated; quantiles of
 * whatever was read are computed (ASan/UBSan watch them).
 * Thread: one. Ownership: nothing is kept.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"
#include "run_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ((size_t)1 << 20)) {
        return 0;
    }
    char *text = kt_malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    static const char *const names[] = { "ktwin_agent_outbox_events",
                                         "ktwin_hub_events_committed_total", LAT_METRIC "_count",
                                         LAT_METRIC "_bucket", "x" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool found = true;
        double v = sim_run_metric_sum(text, names[i], NULL, &found);
        if (!found && v != 0) {
            abort();
        }
        (void)sim_run_metric_sum(text, names[i], "kind=\"upstream\"", NULL);
    }

    static lat_hist h[RUN_MAX_IFACES];
    size_t n = 0;
    sim_run_hist_add(h, &n, text);
    sim_run_hist_add(h, &n, text); /* a second agent with the same families */
    if (n > RUN_MAX_IFACES) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (h[i].n > LAT_BOUNDS || memchr(h[i].iface, '\0', sizeof h[i].iface) == NULL) {
            abort();
        }
        static const double qs[] = { 0, 0.5, 0.99, 1 };
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
            (void)sim_run_hist_quantile(&h[i], qs[k]);
        }
    }
    kt_free(text);
    return 0;
}
