/*
 * metrics.c — Prometheus registry and text exposition 0.0.4. See kt/metrics.h.
 *
 * Invariants: families form a singly linked list in registration order;
 * each family owns its series list, also in registration order. A series'
 * label text is pre-rendered once at registration ("{a=\"x\",b=\"y\"}" or ""),
 * so rendering is a walk plus number formatting, and lookup by labels is a
 * string compare against the same canonical rendering. Registries are small
 * (tens of families), so lookups are linear. A histogram family owns its
 * bucket bounds; each of its series owns n_bounds + 1 per-bucket counts
 * (not cumulative; the last is +Inf), its sum in value and its count in count.
 *
 * Thread: loop thread only. Ownership: the registry owns families and series.
 */
#include "kt/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"

typedef enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct family family;

struct kt_metric {
    struct kt_metric *next;
    char *labels;      /* pre-rendered "{...}" or "" */
    uint64_t count;    /* counter value; histogram observations */
    double value;      /* gauge value; histogram sum */
    uint64_t *buckets; /* histogram: n_bounds + 1 counts */
    const family *fam; /* histogram: its family (bounds) */
    kt_metrics_sample_cb sample;
    void *sample_user;
    metric_kind kind;
};

struct family {
    struct family *next;
    char *name;
    char *help;
    metric_kind kind;
    double *bounds; /* histogram */
    size_t n_bounds;
    kt_metric *series;
    kt_metric **series_tail;
};

struct kt_metrics {
    family *families;
    family **tail;
};

kt_metrics *kt_metrics_new(void)
{
    kt_metrics *reg = kt_xcalloc(1, sizeof *reg);
    reg->tail = &reg->families;
    return reg;
}

void kt_metrics_free(kt_metrics *reg)
{
    if (reg == NULL) {
        return;
    }
    family *f = reg->families;
    while (f != NULL) {
        family *fn = f->next;
        kt_metric *m = f->series;
        while (m != NULL) {
            kt_metric *mn = m->next;
            kt_free(m->labels);
            kt_free(m->buckets);
            kt_free(m);
            m = mn;
        }
        kt_free(f->name);
        kt_free(f->help);
        kt_free(f->bounds);
        kt_free(f);
        f = fn;
    }
    kt_free(reg);
}

bool kt_metrics_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && p != name)) {
            return false;
        }
    }
    return true;
}

static bool label_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || strncmp(name, "__", 2) == 0) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && p != name)) {
            return false;
        }
    }
    return true;
}

/* Render the label set canonically (in the given order) into out. */
static kt_status render_labels(kt_buf *out, const char *const *labels, kt_err *err)
{
    if (labels == NULL || labels[0] == NULL) {
        return kt_buf_puts(out, "");
    }
    kt_status st = kt_buf_putc(out, '{');
    for (size_t i = 0; labels[i] != NULL && st == KT_OK; i += 2) {
        if (labels[i + 1] == NULL) {
            return kt_err_set(err, KT_EINVAL, "label %s has no value", labels[i]);
        }
        if (!label_name_valid(labels[i])) {
            return kt_err_set(err, KT_EINVAL, "invalid label name \"%s\"", labels[i]);
        }
        for (size_t j = 0; j < i; j += 2) {
            if (strcmp(labels[j], labels[i]) == 0) {
                return kt_err_set(err, KT_EINVAL, "duplicate label %s", labels[i]);
            }
        }
        if (i > 0) {
            st = kt_buf_putc(out, ',');
        }
        if (st == KT_OK) {
            st = kt_buf_printf(out, "%s=\"", labels[i]);
        }
        for (const char *v = labels[i + 1]; *v != '\0' && st == KT_OK; v++) {
            if (*v == '\\') {
                st = kt_buf_puts(out, "\\\\");
            } else if (*v == '"') {
                st = kt_buf_puts(out, "\\\"");
            } else if (*v == '\n') {
                st = kt_buf_puts(out, "\\n");
            } else {
                st = kt_buf_putc(out, *v);
            }
        }
        if (st == KT_OK) {
            st = kt_buf_putc(out, '"');
        }
    }
    if (st == KT_OK) {
        st = kt_buf_putc(out, '}');
    }
    if (st != KT_OK) {
        return kt_err_set(err, st, "labels too long");
    }
    return KT_OK;
}

static family *find_family(kt_metrics *reg, const char *name)
{
    for (family *f = reg->families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

static kt_metric *find_series(family *f, const char *labels)
{
    for (kt_metric *m = f->series; m != NULL; m = m->next) {
        if (strcmp(m->labels, labels) == 0) {
            return m;
        }
    }
    return NULL;
}

/* Histogram bounds of a registration: checked here, compared to the family's below. */
typedef struct hist_spec {
    const double *bounds;
    size_t n_bounds;
} hist_spec;

static kt_status
check_hist(const char *name, const hist_spec *h, const char *const *labels, kt_err *err)
{
    if (h->bounds == NULL || h->n_bounds == 0 || h->n_bounds > KT_METRICS_BOUNDS_MAX) {
        return kt_err_set(err, KT_EINVAL, "histogram %s: 1..%d bounds needed, got %zu", name,
                          KT_METRICS_BOUNDS_MAX, h->bounds != NULL ? h->n_bounds : 0);
    }
    for (size_t i = 0; i < h->n_bounds; i++) {
        if (!isfinite(h->bounds[i]) || (i > 0 && !(h->bounds[i] > h->bounds[i - 1]))) {
            return kt_err_set(err, KT_EINVAL,
                              "histogram %s: bound %zu is not finite and above the previous one",
                              name, i);
        }
    }
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        if (strcmp(labels[i], "le") == 0) {
            return kt_err_set(err, KT_EINVAL, "histogram %s: label le is reserved", name);
        }
        if (labels[i + 1] == NULL) {
            break; /* render_labels reports it */
        }
    }
    return KT_OK;
}

static bool same_bounds(const family *f, const hist_spec *h)
{
    return f->n_bounds == h->n_bounds &&
           memcmp(f->bounds, h->bounds, h->n_bounds * sizeof *h->bounds) == 0;
}

static kt_status do_register(kt_metric **out,
                             kt_metrics *reg,
                             metric_kind kind,
                             const char *name,
                             const char *help,
                             const char *const *labels,
                             bool sampled,
                             const hist_spec *hist,
                             kt_err *err)
{
    KT_ASSERT(reg != NULL);
    if (out != NULL) {
        *out = NULL;
    }
    if (!kt_metrics_name_valid(name)) {
        return kt_err_set(err, KT_EINVAL, "invalid metric name \"%s\"", name ? name : "(null)");
    }
    if (kind == KIND_HISTOGRAM) {
        kt_status hst = check_hist(name, hist, labels, err);
        if (hst != KT_OK) {
            return hst;
        }
    }
    if (help == NULL) {
        help = "";
    }
    kt_buf lb;
    kt_buf_init(&lb, 4096);
    kt_status st = render_labels(&lb, labels, err);
    if (st != KT_OK) {
        kt_buf_fini(&lb);
        return st;
    }
    const char *ltext = lb.data != NULL ? lb.data : "";
    family *f = find_family(reg, name);
    if (f != NULL) {
        if (f->kind != kind) {
            kt_buf_fini(&lb);
            return kt_err_set(err, KT_EINVAL, "metric %s already registered with another type",
                              name);
        }
        if (strcmp(f->help, help) != 0) {
            kt_buf_fini(&lb);
            return kt_err_set(err, KT_EINVAL, "metric %s already registered with another help",
                              name);
        }
        if (kind == KIND_HISTOGRAM && !same_bounds(f, hist)) {
            kt_buf_fini(&lb);
            return kt_err_set(err, KT_EINVAL, "histogram %s already registered with other bounds",
                              name);
        }
        kt_metric *m = find_series(f, ltext);
        if (m != NULL) {
            kt_buf_fini(&lb);
            if (sampled || m->sample != NULL) {
                return kt_err_set(err, KT_EINVAL, "sampled metric %s%s registered twice", name,
                                  m->labels);
            }
            if (out != NULL) {
                *out = m;
            }
            return KT_OK;
        }
    } else {
        f = kt_xcalloc(1, sizeof *f);
        f->name = kt_xstrdup(name);
        f->help = kt_xstrdup(help);
        f->kind = kind;
        if (kind == KIND_HISTOGRAM) {
            f->n_bounds = hist->n_bounds;
            f->bounds = kt_xcalloc(hist->n_bounds, sizeof *f->bounds);
            memcpy(f->bounds, hist->bounds, hist->n_bounds * sizeof *f->bounds);
        }
        f->series_tail = &f->series;
        *reg->tail = f;
        reg->tail = &f->next;
    }
    kt_metric *m = kt_xcalloc(1, sizeof *m);
    m->kind = kind;
    m->labels = kt_xstrdup(ltext);
    if (kind == KIND_HISTOGRAM) {
        m->fam = f;
        m->buckets = kt_xcalloc(f->n_bounds + 1, sizeof *m->buckets);
    }
    kt_buf_fini(&lb);
    *f->series_tail = m;
    f->series_tail = &m->next;
    if (out != NULL) {
        *out = m;
    }
    return KT_OK;
}

kt_status kt_metrics_counter(kt_metric **out,
                             kt_metrics *reg,
                             const char *name,
                             const char *help,
                             const char *const *labels,
                             kt_err *err)
{
    return do_register(out, reg, KIND_COUNTER, name, help, labels, false, NULL, err);
}

kt_status kt_metrics_gauge(kt_metric **out,
                           kt_metrics *reg,
                           const char *name,
                           const char *help,
                           const char *const *labels,
                           kt_err *err)
{
    return do_register(out, reg, KIND_GAUGE, name, help, labels, false, NULL, err);
}

kt_status kt_metrics_histogram(kt_metric **out,
                               kt_metrics *reg,
                               const char *name,
                               const char *help,
                               const char *const *labels,
                               const double *bounds,
                               size_t n_bounds,
                               kt_err *err)
{
    hist_spec h = { .bounds = bounds, .n_bounds = n_bounds };
    return do_register(out, reg, KIND_HISTOGRAM, name, help, labels, false, &h, err);
}

kt_status kt_metrics_gauge_fn(kt_metrics *reg,
                              const char *name,
                              const char *help,
                              const char *const *labels,
                              kt_metrics_sample_cb cb,
                              void *user,
                              kt_err *err)
{
    KT_ASSERT(cb != NULL);
    kt_metric *m = NULL;
    kt_status st = do_register(&m, reg, KIND_GAUGE, name, help, labels, true, NULL, err);
    if (st != KT_OK) {
        return st;
    }
    m->sample = cb;
    m->sample_user = user;
    return KT_OK;
}

void kt_metrics_detach(kt_metrics *reg, void *user)
{
    if (reg == NULL) {
        return;
    }
    for (family *f = reg->families; f != NULL; f = f->next) {
        for (kt_metric *m = f->series; m != NULL; m = m->next) {
            if (m->sample != NULL && m->sample_user == user) {
                m->sample = NULL;
                m->sample_user = NULL;
                m->value = 0;
            }
        }
    }
}

void kt_metrics_inc(kt_metric *m)
{
    kt_metrics_add(m, 1);
}

void kt_metrics_add(kt_metric *m, uint64_t n)
{
    if (m == NULL) {
        return;
    }
    KT_DEBUG_ASSERT(m->kind == KIND_COUNTER);
    m->count += n;
}

void kt_metrics_set(kt_metric *m, double v)
{
    if (m == NULL) {
        return;
    }
    KT_DEBUG_ASSERT(m->kind == KIND_GAUGE);
    m->value = v;
}

void kt_metrics_gauge_add(kt_metric *m, double d)
{
    if (m == NULL) {
        return;
    }
    KT_DEBUG_ASSERT(m->kind == KIND_GAUGE);
    m->value += d;
}

void kt_metrics_observe(kt_metric *m, double v)
{
    if (m == NULL) {
        return;
    }
    KT_DEBUG_ASSERT(m->kind == KIND_HISTOGRAM);
    if (m->kind != KIND_HISTOGRAM || isnan(v)) {
        return;
    }
    /* First bound >= v (binary search); n_bounds is the +Inf bucket. */
    const double *b = m->fam->bounds;
    size_t lo = 0;
    size_t hi = m->fam->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] >= v) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    m->buckets[lo]++;
    m->count++;
    m->value += v;
}

size_t kt_metrics_log_bounds(double *out, size_t cap, double lo, double hi, unsigned per_decade)
{
    if (out == NULL || cap == 0 || !(lo > 0) || !(hi > lo) || per_decade == 0 || per_decade > 100) {
        return 0;
    }
    size_t n = 0;
    for (unsigned i = 0; n < cap; i++) {
        double raw = lo * pow(10.0, (double)i / per_decade);
        /* 3 significant digits: short in the text format, still strictly increasing at <=
         * 100/decade. */
        double mag = pow(10.0, floor(log10(raw)) - 2);
        double v = round(raw / mag) * mag;
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%.3g", v);
        v = strtod(tmp, NULL);
        if (n > 0 && !(v > out[n - 1])) {
            continue;
        }
        out[n++] = v;
        if (v >= hi * (1 - 1e-9)) {
            break;
        }
    }
    return n;
}

uint64_t kt_metrics_hist_count(const kt_metric *m)
{
    return m != NULL && m->kind == KIND_HISTOGRAM ? m->count : 0;
}

double kt_metrics_hist_sum(const kt_metric *m)
{
    return m != NULL && m->kind == KIND_HISTOGRAM ? m->value : 0;
}

double kt_metrics_hist_quantile(const kt_metric *m, double q)
{
    if (m == NULL || m->kind != KIND_HISTOGRAM || m->count == 0 || isnan(q)) {
        return NAN;
    }
    q = q < 0 ? 0 : (q > 1 ? 1 : q);
    const double *b = m->fam->bounds;
    size_t nb = m->fam->n_bounds;
    double rank = q * (double)m->count;
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        uint64_t prev = cum;
        cum += m->buckets[i];
        if ((double)cum >= rank && m->buckets[i] > 0) {
            if (i == nb) {
                return b[nb - 1];
            }
            double lower = i == 0 ? 0 : b[i - 1];
            return lower + (b[i] - lower) * ((rank - (double)prev) / (double)m->buckets[i]);
        }
    }
    return b[nb - 1];
}

double kt_metrics_value(const kt_metric *m)
{
    if (m == NULL) {
        return 0;
    }
    if (m->kind == KIND_COUNTER || m->kind == KIND_HISTOGRAM) {
        return (double)m->count;
    }
    if (m->sample != NULL) {
        return m->sample(m->sample_user);
    }
    return m->value;
}

kt_metric *kt_metrics_find(kt_metrics *reg, const char *name, const char *const *labels)
{
    if (reg == NULL || name == NULL) {
        return NULL;
    }
    family *f = find_family(reg, name);
    if (f == NULL) {
        return NULL;
    }
    kt_buf lb;
    kt_buf_init(&lb, 4096);
    kt_metric *m = NULL;
    if (render_labels(&lb, labels, NULL) == KT_OK) {
        m = find_series(f, lb.data != NULL ? lb.data : "");
    }
    kt_buf_fini(&lb);
    return m;
}

/* HELP text escaping: backslash and newline only (format 0.0.4). */
static kt_status put_help(kt_buf *out, const char *help)
{
    kt_status st = KT_OK;
    for (const char *p = help; *p != '\0' && st == KT_OK; p++) {
        if (*p == '\\') {
            st = kt_buf_puts(out, "\\\\");
        } else if (*p == '\n') {
            st = kt_buf_puts(out, "\\n");
        } else {
            st = kt_buf_putc(out, *p);
        }
    }
    return st;
}

static kt_status put_double(kt_buf *out, double v)
{
    if (isnan(v)) {
        return kt_buf_puts(out, "NaN");
    }
    if (isinf(v)) {
        return kt_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    }
    /* Integral values print without exponent or fraction (common for gauges). */
    if (v == floor(v) && fabs(v) < 1e15) {
        return kt_buf_printf(out, "%.0f", v);
    }
    return kt_buf_printf(out, "%.17g", v);
}

/* A bound as the shortest text that reads back as the same double. */
static kt_status put_bound(kt_buf *out, double v)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    return kt_buf_puts(out, tmp);
}

/* <name>_bucket{labels,le="x"} (cumulative), <name>_sum, <name>_count. */
static kt_status render_hist(kt_buf *out, const family *f, const kt_metric *m)
{
    size_t llen = strlen(m->labels);
    kt_status st = KT_OK;
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->n_bounds && st == KT_OK; i++) {
        cum += m->buckets[i];
        if (llen > 0) {
            /* "{a=\"x\"}" -> "{a=\"x\",le=..." */
            st = kt_buf_printf(out, "%s_bucket%.*s,le=\"", f->name, (int)(llen - 1), m->labels);
        } else {
            st = kt_buf_printf(out, "%s_bucket{le=\"", f->name);
        }
        if (st == KT_OK) {
            st = i < f->n_bounds ? put_bound(out, f->bounds[i]) : kt_buf_puts(out, "+Inf");
        }
        if (st == KT_OK) {
            st = kt_buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
        }
    }
    if (st == KT_OK) {
        st = kt_buf_printf(out, "%s_sum%s ", f->name, m->labels);
    }
    if (st == KT_OK) {
        st = put_double(out, m->value);
    }
    if (st == KT_OK) {
        st = kt_buf_printf(out, "\n%s_count%s %llu\n", f->name, m->labels,
                           (unsigned long long)m->count);
    }
    return st;
}

static const char *kind_str(metric_kind k)
{
    switch (k) {
    case KIND_COUNTER:
        return "counter";
    case KIND_GAUGE:
        return "gauge";
    case KIND_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

kt_status kt_metrics_render(kt_metrics *reg, kt_buf *out)
{
    kt_status st = KT_OK;
    for (family *f = reg->families; f != NULL && st == KT_OK; f = f->next) {
        st = kt_buf_printf(out, "# HELP %s ", f->name);
        if (st == KT_OK) {
            st = put_help(out, f->help);
        }
        if (st == KT_OK) {
            st = kt_buf_printf(out, "\n# TYPE %s %s\n", f->name, kind_str(f->kind));
        }
        for (kt_metric *m = f->series; m != NULL && st == KT_OK; m = m->next) {
            if (m->kind == KIND_HISTOGRAM) {
                st = render_hist(out, f, m);
                continue;
            }
            st = kt_buf_printf(out, "%s%s ", f->name, m->labels);
            if (st != KT_OK) {
                break;
            }
            if (m->kind == KIND_COUNTER) {
                st = kt_buf_printf(out, "%llu", (unsigned long long)m->count);
            } else {
                st = put_double(out, kt_metrics_value(m));
            }
            if (st == KT_OK) {
                st = kt_buf_putc(out, '\n');
            }
        }
    }
    return st;
}
