/*
 * kt/metrics.h — a small Prometheus registry (text exposition format 0.0.4).
 *
 *   kt_metrics *reg = kt_metrics_new();
 *   kt_metric *rx = NULL;
 *   kt_metrics_counter(&rx, reg, "ktwin_hub_sync_frames_total", "Sync frames received",
 *                      (const char *[]){ "site", "s1", NULL }, &err);
 *   kt_metrics_inc(rx);
 *   kt_metrics_render(reg, &buf);   // for GET /metrics
 *
 * A family is a metric name with one type and one HELP text; a series is a
 * family plus a fixed set of label pairs. Counters hold a uint64_t that only
 * grows; gauges hold a double (or are sampled from a callback at render
 * time). Registering the same name + labels again returns the existing
 * series, so modules can register lazily (e.g. one series per status code).
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
 * and not start with "__"; label values are escaped on output (\\, \", \n).
 * Rendering lists families in registration order, series in registration
 * order, with "# HELP" and "# TYPE" lines once per family.
 *
 * Histograms (Prometheus type "histogram"): a series holds one count per
 * bucket (upper bounds, strictly increasing, finite; +Inf is implicit), a sum
 * and a count, and renders as <name>_bucket{...,le="<bound>"} (cumulative),
 * <name>_sum and <name>_count. Every series of a histogram family has the
 * family's bounds. kt_metrics_log_bounds makes fine log-spaced bounds, so a
 * quantile estimated from the buckets is within one bucket's ratio of the
 * true value (e.g. 10 per decade: within +26%):
 *
 *   double b[KT_METRICS_BOUNDS_MAX];
 *   size_t nb = kt_metrics_log_bounds(b, KT_METRICS_BOUNDS_MAX, 1e-5, 10, 10);
 *   kt_metrics_histogram(&lat, reg, "x_seconds", "X latency", labels, b, nb, &err);
 *   kt_metrics_observe(lat, 0.0042);
 *
 * Thread: loop thread only (no atomics, no locks). Other threads report
 * through kt_inbox. Ownership: the registry owns every series; kt_metric
 * pointers are borrowed and valid until kt_metrics_free.
 */
#ifndef KT_COMMON_METRICS_H
#define KT_COMMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

typedef struct kt_metrics kt_metrics; /* the registry */
typedef struct kt_metric kt_metric;   /* one series */

/* Sampled gauge: returns the current value, called during kt_metrics_render. */
typedef double (*kt_metrics_sample_cb)(void *user);

/* A new empty registry (aborts on OOM: bookkeeping). */
kt_metrics *kt_metrics_new(void);
/* Free the registry and all its series. NULL is a no-op. */
void kt_metrics_free(kt_metrics *reg);

/*
 * Register (or find) a counter series. labels: NULL, or a NULL-terminated
 * array of name, value, name, value, ... (copied). *out gets the series.
 * Returns KT_OK; KT_EINVAL for a bad metric or label name, an odd label
 * array, a duplicate label name, or a name already registered as another
 * type or with another HELP text.
 */
kt_status kt_metrics_counter(kt_metric **out,
                             kt_metrics *reg,
                             const char *name,
                             const char *help,
                             const char *const *labels,
                             kt_err *err);
/* Register (or find) a gauge series; as kt_metrics_counter. */
kt_status kt_metrics_gauge(kt_metric **out,
                           kt_metrics *reg,
                           const char *name,
                           const char *help,
                           const char *const *labels,
                           kt_err *err);
/*
 * Register a gauge whose value is sampled by cb(user) at render time (queue
 * depths, uptime). user is borrowed and must outlive the registry or be
 * detached with kt_metrics_detach. Same errors as kt_metrics_gauge; a
 * sampled series registered twice is KT_EINVAL.
 */
kt_status kt_metrics_gauge_fn(kt_metrics *reg,
                              const char *name,
                              const char *help,
                              const char *const *labels,
                              kt_metrics_sample_cb cb,
                              void *user,
                              kt_err *err);
/* Stop sampling every gauge_fn series whose user is user (they then render 0). */
void kt_metrics_detach(kt_metrics *reg, void *user);

/* Counter += 1 / += n. NULL m is a no-op (an optional metric that was not registered). */
void kt_metrics_inc(kt_metric *m);
void kt_metrics_add(kt_metric *m, uint64_t n);
/* Gauge = v / += d (d may be negative). NULL m is a no-op. */
void kt_metrics_set(kt_metric *m, double v);
void kt_metrics_gauge_add(kt_metric *m, double d);
/* Current value (counter converted to double); 0 for NULL. For tests. */
double kt_metrics_value(const kt_metric *m);

/* Most bucket bounds a histogram may have. */
#define KT_METRICS_BOUNDS_MAX 128

/*
 * Register (or find) a histogram series with n_bounds upper bounds (copied;
 * 1..KT_METRICS_BOUNDS_MAX, finite, strictly increasing). Same errors as
 * kt_metrics_counter, plus KT_EINVAL for bad bounds, for bounds other than
 * the family's, and for a label named "le" (reserved for buckets).
 */
kt_status kt_metrics_histogram(kt_metric **out,
                               kt_metrics *reg,
                               const char *name,
                               const char *help,
                               const char *const *labels,
                               const double *bounds,
                               size_t n_bounds,
                               kt_err *err);
/* Count v in its bucket (the first bound >= v, else +Inf), the sum and the count. NULL m is a
 * no-op. */
void kt_metrics_observe(kt_metric *m, double v);
/*
 * Fill out (cap entries) with log-spaced bounds from lo to hi (0 < lo < hi),
 * per_decade per factor of ten (1..100), each rounded to 3 significant
 * digits (so they print short), the last one >= hi. Returns how many were
 * written (at most cap).
 */
size_t kt_metrics_log_bounds(double *out, size_t cap, double lo, double hi, unsigned per_decade);
/* Observations of a histogram series; 0 for NULL or another type. */
uint64_t kt_metrics_hist_count(const kt_metric *m);
/* Sum of the observations of a histogram series; 0 for NULL or another type. */
double kt_metrics_hist_sum(const kt_metric *m);
/*
 * Quantile q (0..1) estimated from the buckets as Prometheus'
 * histogram_quantile does (linear inside the bucket; the lowest bucket
 * starts at 0; the +Inf bucket answers the highest finite bound). NaN when
 * there are no observations or m is not a histogram.
 */
double kt_metrics_hist_quantile(const kt_metric *m, double q);

/*
 * Find a series by name and labels (same label array form); NULL when not
 * registered. For tests and for modules that look up a shared series.
 */
kt_metric *kt_metrics_find(kt_metrics *reg, const char *name, const char *const *labels);

/*
 * Append the whole registry in text format 0.0.4 to out (content type
 * "text/plain; version=0.0.4; charset=utf-8", see KT_METRICS_CONTENT_TYPE).
 * Returns KT_OK or the kt_buf error (KT_ETOOBIG / KT_ENOMEM).
 */
kt_status kt_metrics_render(kt_metrics *reg, kt_buf *out);

#define KT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* true when name is a valid metric name. */
bool kt_metrics_name_valid(const char *name);

#endif
