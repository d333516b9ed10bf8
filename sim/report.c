/*
 * report.c — report.html of `ktwin-sim run` (contract in report.h).
 *
 * DESIGN
 *   One pass that appends HTML to a kt_buf: a summary, tables and inline SVG
 *   charts drawn by two small plotters (lines over time, grouped horizontal
 *   bars on a log scale). Every string from results.json or a CSV goes
 *   through html_text(), so the report is well-formed whatever the input.
 *   The paper's CSVs (Grafana exports, see data/ktwin-article/README.md) are
 *   read with a tolerant parser: a BOM, quoted headers, and empty or
 *   "undefined" cells (missing samples) are accepted; a file that is absent
 *   or unreadable leaves its figure out with a sentence saying so.
 *
 * Thread: any (no state). Ownership: nothing kept after return.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "kt/mem.h"
#include "report_csv.h"

#ifndef KT_PAPER_DIR
#define KT_PAPER_DIR "data/ktwin-article"
#endif

static const char *const k_colors[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                        "#9467bd", "#8c564b", "#e377c2", "#7f7f7f" };

/* ---- HTML helpers ----------------------------------------------------------- */

static void html_text(kt_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            (void)kt_buf_puts(b, "&lt;");
            break;
        case '>':
            (void)kt_buf_puts(b, "&gt;");
            break;
        case '&':
            (void)kt_buf_puts(b, "&amp;");
            break;
        case '"':
            (void)kt_buf_puts(b, "&quot;");
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') {
                (void)kt_buf_putc(b, *s);
            }
        }
    }
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A number cell: "-" for a missing value. */
static void cell_num(kt_buf *b, double v, int decimals)
{
    if (isfinite(v)) {
        (void)kt_buf_printf(b, "<td class=n>%.*f</td>", decimals, v);
    } else {
        (void)kt_buf_puts(b, "<td class=n>&ndash;</td>");
    }
}

/* ---- charts ----------------------------------------------------------------- */

typedef struct line_series {
    const char *name;
    const double *x, *y;
    size_t n;
} line_series;

static double nice_max(double v)
{
    if (!(v > 0)) {
        return 1;
    }
    double p = pow(10, floor(log10(v)));
    static const double steps[] = { 1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10 };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (v <= steps[i] * p) {
            return steps[i] * p;
        }
    }
    return 10 * p;
}

/*
 * A line chart (SVG, W x H) of series over x in [0, xmax]; shade[0..n_shade)
 * are [from, to) x ranges drawn as grey bands labelled `shade_label`.
 */
static void svg_lines(kt_buf *b,
                      const char *title,
                      const char *xlabel,
                      const char *ylabel,
                      const line_series *s,
                      size_t n_s,
                      double xmax,
                      const double (*shade)[2],
                      size_t n_shade,
                      const char *shade_label)
{
    const double W = 640, H = 300, L = 60, R = 30, T = 30, B = 45;
    double ymax = 0;
    for (size_t k = 0; k < n_s; k++) {
        for (size_t i = 0; i < s[k].n; i++) {
            if (isfinite(s[k].y[i]) && s[k].y[i] > ymax) {
                ymax = s[k].y[i];
            }
            if (isfinite(s[k].x[i]) && s[k].x[i] > xmax) {
                xmax = s[k].x[i];
            }
        }
    }
    ymax = nice_max(ymax * 1.05);
    xmax = nice_max(xmax);
    double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + (x) / xmax * pw)
#define PY(y) (T + ph - (y) / ymax * ph)
    (void)kt_buf_printf(b,
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                        "viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>",
                        W, H, W, H);
    html_text(b, title);
    (void)kt_buf_puts(b, "</title>");
    (void)kt_buf_printf(b, "<text x=\"%.0f\" y=\"18\" class=\"t\">", L);
    html_text(b, title);
    (void)kt_buf_puts(b, "</text>");
    for (size_t i = 0; i < n_shade; i++) {
        double x0 = shade[i][0] < 0 ? 0 : shade[i][0], x1 = shade[i][1] > xmax ? xmax : shade[i][1];
        if (x1 > x0) {
            (void)kt_buf_printf(b,
                                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                                "fill=\"#999\" fill-opacity=\"0.25\"/><text x=\"%.1f\" "
                                "y=\"%.1f\" class=\"s\">",
                                PX(x0), T, PX(x1) - PX(x0), ph, PX(x0) + 3, T + 12);
            html_text(b, shade_label);
            (void)kt_buf_puts(b, "</text>");
        }
    }
    for (int g = 0; g <= 4; g++) {
        double y = ymax * g / 4, x = xmax * g / 4;
        (void)kt_buf_printf(b,
                            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                            "stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" class=\"a\" "
                            "text-anchor=\"end\">%g</text>",
                            L, W - R, PY(y), PY(y), L - 4, PY(y) + 4, y);
        (void)kt_buf_printf(b,
                            "<text x=\"%.1f\" y=\"%.1f\" class=\"a\" "
                            "text-anchor=\"middle\">%.0f</text>",
                            PX(x), H - B + 15, x);
    }
    (void)kt_buf_printf(b,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#444\"/>",
                        L, T, pw, ph);
    (void)kt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">",
                        L + pw / 2, H - 8);
    html_text(b, xlabel);
    (void)kt_buf_printf(b,
                        "</text><text x=\"12\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 12 %.1f)\">",
                        T + ph / 2, T + ph / 2);
    html_text(b, ylabel);
    (void)kt_buf_puts(b, "</text>");
    for (size_t k = 0; k < n_s; k++) {
        const char *c = k_colors[k % (sizeof k_colors / sizeof k_colors[0])];
        (void)kt_buf_printf(
            b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", c);
        for (size_t i = 0; i < s[k].n; i++) {
            if (isfinite(s[k].x[i]) && isfinite(s[k].y[i])) {
                (void)kt_buf_printf(b, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
            }
        }
        (void)kt_buf_puts(b, "\"/>");
        (void)kt_buf_printf(b,
                            "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"3\" fill=\"%s\"/>"
                            "<text x=\"%.1f\" y=\"%.1f\" class=\"s\">",
                            W - R - 200, T + 10 + 14 * (double)k, c, W - R - 186,
                            T + 14 + 14 * (double)k);
        html_text(b, s[k].name);
        (void)kt_buf_puts(b, "</text>");
    }
#undef PX
#undef PY
    (void)kt_buf_puts(b, "</svg>\n");
}

typedef struct bar_group {
    char name[160];
    double v[8]; /* NAN = missing */
} bar_group;

/* Horizontal grouped bars on a log10 scale (ms); one colour per value index. */
static void svg_bars(kt_buf *b,
                     const char *title,
                     const bar_group *g,
                     size_t n_g,
                     const char *const *vnames,
                     size_t n_v)
{
    const double W = 780, L = 330, R = 20, T = 30, rowh = 6.0 * (double)n_v + 8;
    double H = T + rowh * (double)n_g + 50;
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < n_g; i++) {
        for (size_t k = 0; k < n_v; k++) {
            double v = g[i].v[k];
            if (isfinite(v) && v > 0) {
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    }
    if (!(hi > 0)) {
        lo = 0.1;
        hi = 10;
    }
    double e0 = floor(log10(lo)), e1 = ceil(log10(hi));
    if (e1 <= e0) {
        e1 = e0 + 1;
    }
    double pw = W - L - R;
#define BX(v) (L + (log10(v) - e0) / (e1 - e0) * pw)
    (void)kt_buf_printf(b,
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                        "viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>",
                        W, H, W, H);
    html_text(b, title);
    (void)kt_buf_printf(b, "</title><text x=\"10\" y=\"18\" class=\"t\">");
    html_text(b, title);
    (void)kt_buf_puts(b, "</text>");
    for (double e = e0; e <= e1; e++) {
        double x = L + (e - e0) / (e1 - e0) * pw;
        (void)kt_buf_printf(
            b,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" class=\"a\" text-anchor=\"middle\">%g ms"
            "</text>",
            x, x, T, T + rowh * (double)n_g, x, T + rowh * (double)n_g + 14, pow(10, e));
    }
    for (size_t i = 0; i < n_g; i++) {
        double y = T + rowh * (double)i;
        (void)kt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"s\" text-anchor=\"end\">",
                            L - 6, y + rowh / 2 + 3);
        html_text(b, g[i].name);
        (void)kt_buf_puts(b, "</text>");
        for (size_t k = 0; k < n_v; k++) {
            double v = g[i].v[k];
            if (!isfinite(v) || v <= 0) {
                continue;
            }
            double x = BX(v < pow(10, e0) ? pow(10, e0) : v);
            (void)kt_buf_printf(b,
                                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"5\" "
                                "fill=\"%s\"><title>%.3g ms</title></rect>",
                                L, y + 4 + 6 * (double)k, x - L > 1 ? x - L : 1,
                                k_colors[k % (sizeof k_colors / sizeof k_colors[0])], v);
        }
    }
    for (size_t k = 0; k < n_v; k++) {
        (void)kt_buf_printf(b,
                            "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"8\" fill=\"%s\"/>"
                            "<text x=\"%.1f\" y=\"%.1f\" class=\"s\">",
                            L + 110 * (double)k, H - 14, k_colors[k], L + 110 * (double)k + 14,
                            H - 6);
        html_text(b, vnames[k]);
        (void)kt_buf_puts(b, "</text>");
    }
#undef BX
    (void)kt_buf_puts(b, "</svg>\n");
}

/* ---- the paper's CSVs --------------------------------------------------------- */

typedef sim_csv csv;

/* Split one line at commas (no quoted commas in these files); strips quotes. */
static size_t csv_split(char *line, char **cells, size_t cap)
{
    size_t n = 0;
    char *p = line;
    while (n < cap) {
        char *c = strchr(p, ',');
        if (c != NULL) {
            *c = '\0';
        }
        size_t l = strlen(p);
        while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '"')) {
            p[--l] = '\0';
        }
        if (*p == '"') {
            p++;
        }
        cells[n++] = p;
        if (c == NULL) {
            break;
        }
        p = c + 1;
    }
    return n;
}

static bool csv_read(const char *path, csv *out)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)16 << 20);
    memset(out, 0, sizeof *out);
    if (kt_buf_read_file(&b, path, NULL) != KT_OK || kt_buf_putc(&b, '\0') != KT_OK) {
        kt_buf_fini(&b);
        return false;
    }
    bool ok = sim_report_csv_parse(b.data, out);
    kt_buf_fini(&b);
    return ok;
}

bool sim_report_csv_parse(char *text, csv *out)
{
    memset(out, 0, sizeof *out);
    char *p = text;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) {
        p += 3;
    }
    bool header = true;
    while (p != NULL && *p != '\0') {
        char *eol = strchr(p, '\n');
        if (eol != NULL) {
            *eol = '\0';
        }
        char *cells[CSV_MAX_COLS + 1];
        size_t n = csv_split(p, cells, CSV_MAX_COLS + 1);
        if (header) {
            out->n_cols = n > 0 ? n - 1 : 0;
            for (size_t i = 1; i < n; i++) {
                snprintf(out->names[i - 1], sizeof out->names[i - 1], "%s", cells[i]);
            }
            header = false;
        } else if (n >= 1 && cells[0][0] != '\0' && out->n_rows < CSV_MAX_ROWS) {
            char *end = NULL;
            double t = strtod(cells[0], &end);
            if (end != cells[0]) {
                size_t r = out->n_rows++;
                out->t[r] = t;
                for (size_t i = 0; i < out->n_cols; i++) {
                    double v = NAN;
                    if (i + 1 < n && cells[i + 1][0] != '\0') {
                        char *e2 = NULL;
                        v = strtod(cells[i + 1], &e2);
                        if (e2 == cells[i + 1] || *e2 != '\0' || !isfinite(v)) {
                            v = NAN; /* "undefined" */
                        }
                    }
                    out->v[r][i] = v;
                }
            }
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return out->n_cols > 0 && out->n_rows > 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Median of column c over its numeric samples (NAN when none). */
double sim_report_csv_median(const csv *c, size_t col)
{
    static double tmp[CSV_MAX_ROWS];
    size_t n = 0;
    for (size_t r = 0; r < c->n_rows; r++) {
        if (isfinite(c->v[r][col])) {
            tmp[n++] = c->v[r][col];
        }
    }
    if (n == 0) {
        return NAN;
    }
    qsort(tmp, n, sizeof tmp[0], cmp_double);
    return n % 2 == 1 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* "ngsi-ld-city-weatherobserved-00001 (p99)" -> "ngsi-ld-city-weatherobserved". */
static void revision_service(const char *col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", col);
    char *sp = strstr(out, " (");
    if (sp != NULL) {
        *sp = '\0';
    }
    size_t l = strlen(out);
    if (l > 6 && out[l - 6] == '-' && strspn(out + l - 5, "0123456789") == 5) {
        out[l - 6] = '\0';
    }
}

static unsigned paper_size(double nb)
{
    static const unsigned sizes[] = { 1, 5, 10, 20 };
    unsigned best = 1;
    for (size_t i = 0; i < 4; i++) {
        if (fabs(nb - sizes[i]) < fabs(nb - best)) {
            best = sizes[i];
        }
    }
    return best;
}

/* ---- sections ------------------------------------------------------------------ */

static void section_events(kt_buf *b, const cJSON *res)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(res, "events");
    (void)kt_buf_puts(b, "<h2>Events by type</h2><table><tr><th>CloudEvent type</th><th>published"
                         "</th><th>processed</th><th>stored</th><th>lost</th><th>duplicates</th>"
                         "<th></th></tr>\n");
    const cJSON *row = NULL;
    cJSON_ArrayForEach(row, events)
    {
        (void)kt_buf_puts(b, "<tr><td>");
        html_text(b, row->string);
        (void)kt_buf_puts(b, "</td>");
        cell_num(b, jnum(row, "published"), 0);
        cell_num(b, jnum(row, "processed"), 0);
        cell_num(b, jnum(row, "stored"), 0);
        double lost = jnum(row, "lost"), dup = jnum(row, "duplicates");
        (void)kt_buf_printf(b, "<td class=\"n%s\">%.0f</td><td class=\"n%s\">%.0f</td><td>",
                            lost > 0 ? " bad" : "", isfinite(lost) ? lost : 0,
                            dup > 0 ? " bad" : "", isfinite(dup) ? dup : 0);
        const cJSON *note = cJSON_GetObjectItemCaseSensitive(row, "note");
        if (cJSON_IsString(note)) {
            html_text(b, note->valuestring);
        }
        (void)kt_buf_puts(b, "</td></tr>\n");
    }
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(res, "totals");
    if (tot != NULL) {
        (void)kt_buf_puts(b, "<tr class=tot><td>total</td>");
        cell_num(b, jnum(tot, "published"), 0);
        cell_num(b, jnum(tot, "processed"), 0);
        cell_num(b, jnum(tot, "stored"), 0);
        cell_num(b, jnum(tot, "lost"), 0);
        cell_num(b, jnum(tot, "duplicates"), 0);
        (void)kt_buf_puts(b, "<td></td></tr>");
    }
    (void)kt_buf_puts(b, "</table>\n");
    if (tot != NULL) {
        (void)kt_buf_printf(
            b,
            "<p class=note>Also counted: %.0f device publishes without a PUBACK; %.0f device "
            "events for interfaces without a twin service; %.0f refused at the agents; %.0f "
            "events left in outboxes; %.0f events handed to the hub by the agents; %.0f events "
            "the hub dropped as already stored (redelivery after the link came back); %.0f the "
            "hub routed nowhere.</p>\n",
            jnum(tot, "device_publish_failed"), jnum(tot, "unserved"), jnum(tot, "rejected"),
            jnum(tot, "outbox_left"), jnum(tot, "edge_upstream"), jnum(tot, "hub_dedupe_dropped"),
            jnum(tot, "hub_dropped"));
    }
}

static void section_rate(kt_buf *b, const cJSON *res, double (*shade)[2], size_t n_shade)
{
    const cJSON *series = cJSON_GetObjectItemCaseSensitive(res, "series");
    size_t n = (size_t)cJSON_GetArraySize(series);
    (void)kt_buf_puts(b, "<h2>Events per second over time</h2>\n");
    if (n == 0) {
        (void)kt_buf_puts(b, "<p>No samples were taken.</p>\n");
        return;
    }
    double *x = kt_xcalloc(n, sizeof *x);
    double *y = kt_xcalloc(5 * n, sizeof *y);
    static const char *const keys[] = { "published_per_s", "processed_per_s", "stored_per_s",
                                        "outbox", "p99_ms" };
    size_t i = 0;
    const cJSON *s = NULL;
    cJSON_ArrayForEach(s, series)
    {
        x[i] = jnum(s, "t");
        for (size_t k = 0; k < 5; k++) {
            y[k * n + i] = jnum(s, keys[k]);
        }
        i++;
    }
    line_series ls[3] = { { "devices: published/s", x, y, n },
                          { "edge services: processed/s", x, y + n, n },
                          { "hub event store: committed/s", x, y + 2 * n, n } };
    svg_lines(b, "Events per second (this run)", "seconds since the devices started", "events/s",
              ls, 3, 0, (const double(*)[2])shade, n_shade, "hub offline");
    line_series ob = { "events waiting in the agents' outboxes", x, y + 3 * n, n };
    svg_lines(b, "Outbox backlog (store-and-forward)", "seconds since the devices started",
              "events", &ob, 1, 0, (const double(*)[2])shade, n_shade, "hub offline");
    line_series lp = { "p99, all services, per second", x, y + 4 * n, n };
    svg_lines(b, "Twin-service latency p99 over time (ms, at the agents)",
              "seconds since the devices started", "ms", &lp, 1, 0, (const double(*)[2])shade,
              n_shade, "hub offline");
    kt_free(x);
    kt_free(y);
}

static void section_latency(kt_buf *b, const cJSON *res)
{
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(res, "latency_ms");
    (void)kt_buf_puts(b, "<h2>Twin-service latency (at the agents)</h2>\n");
    size_t n = (size_t)cJSON_GetArraySize(lat);
    if (n == 0) {
        (void)kt_buf_puts(b, "<p>No service latency was recorded (no twin service ran).</p>\n");
        return;
    }
    bar_group *g = kt_xcalloc(n, sizeof *g);
    static const char *const qn[] = { "p50", "p90", "p95", "p99" };
    (void)kt_buf_puts(b, "<table><tr><th>service (interface)</th><th>calls</th><th>mean ms</th>"
                         "<th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th></tr>\n");
    size_t i = 0;
    const cJSON *s = NULL;
    cJSON_ArrayForEach(s, lat)
    {
        snprintf(g[i].name, sizeof g[i].name, "%s", s->string != NULL ? s->string : "?");
        (void)kt_buf_puts(b, "<tr><td>");
        html_text(b, s->string);
        (void)kt_buf_puts(b, "</td>");
        cell_num(b, jnum(s, "count"), 0);
        cell_num(b, jnum(s, "mean"), 3);
        for (size_t k = 0; k < 4; k++) {
            g[i].v[k] = jnum(s, qn[k]);
            cell_num(b, g[i].v[k], 3);
        }
        (void)kt_buf_puts(b, "</tr>\n");
        i++;
    }
    (void)kt_buf_puts(b, "</table>\n");
    svg_bars(b, "Latency percentiles per service (this run, log scale)", g, n, qn, 4);
    kt_free(g);
}

static void
section_paper(kt_buf *b, const cJSON *res, const char *dir, double (*shade)[2], size_t n_shade)
{
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "scenario");
    double nb = jnum(sc, "neighborhoods");
    unsigned size = paper_size(isfinite(nb) ? nb : 1);
    (void)kt_buf_printf(b,
                        "<h2>Side by side with the KTWIN paper (%u neighborhood%s)</h2>\n"
                        "<p class=note>The paper ran each size for 24 minutes on a Kubernetes "
                        "cluster (Knative autoscaler, RabbitMQ, ScyllaDB); its figures are its "
                        "published Grafana exports (data/ktwin-article). This run used %.0f "
                        "neighborhood(s) with time compressed %gx; the paper's size nearest to "
                        "it is shown. Times are shown as a fraction of each run; with time "
                        "compressed F times, every device publishes F times as often, so this "
                        "run's rates are F times the paper's at the same size. The paper counts "
                        "every CloudEvent on its broker (device, command, store and virtual "
                        "events); this run's three lines split that into device events, twin "
                        "service calls and events stored at the hub.</p>\n",
                        size, size == 1 ? "" : "s", nb, jnum(sc, "compress"));
    if (dir == NULL) {
        (void)kt_buf_puts(b, "<p>No paper data directory was given.</p>\n");
        return;
    }
    csv *c = kt_xcalloc(1, sizeof *c);
    char path[1024];
    snprintf(path, sizeof path, "%s/events-per-second-%unb.csv", dir, size);
    (void)kt_buf_puts(b, "<div class=row>");
    if (csv_read(path, c)) {
        /* the active part of the paper's run: first to last non-zero sample */
        size_t first = c->n_rows, last = 0;
        for (size_t r = 0; r < c->n_rows; r++) {
            if (isfinite(c->v[r][0]) && c->v[r][0] > 0) {
                first = r < first ? r : first;
                last = r;
            }
        }
        if (first <= last && first < c->n_rows) {
            size_t n = last - first + 1;
            double *x = kt_xcalloc(n, sizeof *x), *y = kt_xcalloc(n, sizeof *y);
            for (size_t r = 0; r < n; r++) {
                x[r] = 100.0 * (c->t[first + r] - c->t[first]) /
                       (c->t[last] - c->t[first] > 0 ? c->t[last] - c->t[first] : 1);
                y[r] = c->v[first + r][0];
            }
            line_series ls = { "KTWIN: all CloudEvents/s", x, y, n };
            char title[96];
            snprintf(title, sizeof title, "KTWIN paper, %u nb: events/s", size);
            svg_lines(b, title, "% of the run", "events/s", &ls, 1, 100, NULL, 0, "");
            kt_free(x);
            kt_free(y);
        }
    } else {
        (void)kt_buf_puts(b, "<p>Paper events/s data missing: ");
        html_text(b, path);
        (void)kt_buf_puts(b, "</p>");
    }
    const cJSON *series = cJSON_GetObjectItemCaseSensitive(res, "series");
    size_t n = (size_t)cJSON_GetArraySize(series);
    double dur = jnum(sc, "devices_run_s");
    if (n > 0 && isfinite(dur) && dur > 0) {
        double *x = kt_xcalloc(n, sizeof *x), *y = kt_xcalloc(3 * n, sizeof *y);
        size_t i = 0;
        const cJSON *s = NULL;
        cJSON_ArrayForEach(s, series)
        {
            x[i] = 100.0 * jnum(s, "t") / dur;
            if (!(x[i] <= 100)) {
                continue; /* the drain after the devices stopped */
            }
            y[i] = jnum(s, "published_per_s");
            y[n + i] = jnum(s, "processed_per_s");
            y[2 * n + i] = jnum(s, "stored_per_s");
            i++;
        }
        double sh[4][2];
        size_t ns = n_shade < 4 ? n_shade : 4;
        for (size_t k = 0; k < ns; k++) {
            sh[k][0] = 100.0 * shade[k][0] / dur;
            sh[k][1] = 100.0 * shade[k][1] / dur;
        }
        line_series ls[3] = { { "device events/s", x, y, i },
                              { "service calls/s", x, y + n, i },
                              { "stored at the hub/s", x, y + 2 * n, i } };
        char title[96];
        snprintf(title, sizeof title, "This run (time x%g): events/s", jnum(sc, "compress"));
        svg_lines(b, title, "% of the run", "events/s", ls, 3, 100, (const double(*)[2])sh, ns,
                  "hub offline");
        kt_free(x);
        kt_free(y);
    }
    (void)kt_buf_puts(b, "</div>\n");

    /* response times: the paper's medians of p50/p95/p99 per service vs ours */
    static const char *const qn[] = { "p50", "p95", "p99" };
    csv *q[3] = { NULL, NULL, NULL };
    bool have = true;
    for (size_t k = 0; k < 3; k++) {
        q[k] = kt_xcalloc(1, sizeof *q[k]);
        snprintf(path, sizeof path, "%s/response-time-%s-%unb.csv", dir, qn[k], size);
        have = have && csv_read(path, q[k]);
    }
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(res, "latency_ms");
    if (have) {
        bar_group g[2 * CSV_MAX_COLS];
        size_t ng = 0;
        (void)kt_buf_puts(b, "<table><tr><th>service</th><th>KTWIN p50 / p95 / p99 ms</th>"
                             "<th>this run p50 / p95 / p99 ms</th></tr>\n");
        for (size_t col = 0; col < q[0]->n_cols && ng + 2 <= 2 * CSV_MAX_COLS; col++) {
            char svc[128];
            revision_service(q[0]->names[col], svc, sizeof svc);
            double pv[3];
            for (size_t k = 0; k < 3; k++) {
                pv[k] = NAN;
                for (size_t cc = 0; cc < q[k]->n_cols; cc++) {
                    char other[128];
                    revision_service(q[k]->names[cc], other, sizeof other);
                    if (strcmp(other, svc) == 0) {
                        pv[k] = sim_report_csv_median(q[k], cc);
                    }
                }
            }
            if (!isfinite(pv[0]) && !isfinite(pv[2])) {
                continue; /* a service that never ran in the paper's run */
            }
            const cJSON *ours = cJSON_GetObjectItemCaseSensitive(lat, svc);
            double ov[3] = { jnum(ours, "p50"), jnum(ours, "p95"), jnum(ours, "p99") };
            (void)kt_buf_puts(b, "<tr><td>");
            html_text(b, svc);
            (void)kt_buf_printf(b, "</td><td class=n>%.0f / %.0f / %.0f</td>", pv[0], pv[1], pv[2]);
            if (ours != NULL) {
                (void)kt_buf_printf(b, "<td class=n>%.3f / %.3f / %.3f</td></tr>\n", ov[0], ov[1],
                                    ov[2]);
            } else {
                (void)kt_buf_puts(b, "<td>not run at the edge in this run</td></tr>\n");
            }
            snprintf(g[ng].name, sizeof g[ng].name, "%s (KTWIN)", svc);
            for (size_t k = 0; k < 3; k++) {
                g[ng].v[k] = pv[k];
            }
            ng++;
            if (ours != NULL) {
                snprintf(g[ng].name, sizeof g[ng].name, "%s (this run)", svc);
                for (size_t k = 0; k < 3; k++) {
                    g[ng].v[k] = ov[k];
                }
                ng++;
            }
        }
        (void)kt_buf_puts(b, "</table>\n");
        char title[128];
        snprintf(title, sizeof title,
                 "Response time per service: KTWIN (%u nb, median of its series) vs this run",
                 size);
        svg_bars(b, title, g, ng, qn, 3);
    } else {
        (void)kt_buf_puts(b, "<p>Paper response-time data missing in ");
        html_text(b, dir);
        (void)kt_buf_puts(b, "</p>\n");
    }
    for (size_t k = 0; k < 3; k++) {
        kt_free(q[k]);
    }
    kt_free(c);
}

static void section_resources(kt_buf *b, const cJSON *res)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(res, "resources");
    if (r == NULL) {
        return;
    }
    (void)kt_buf_puts(b, "<h2>Resources (from /proc, whole run)</h2><table><tr><th>process</th>"
                         "<th>CPU seconds</th><th>peak RSS MiB</th></tr>\n");
    const cJSON *hub = cJSON_GetObjectItemCaseSensitive(r, "hub");
    if (hub != NULL) {
        (void)kt_buf_puts(b, "<tr><td>ktwin-hub</td>");
        cell_num(b, jnum(hub, "cpu_s"), 2);
        cell_num(b, jnum(hub, "rss_peak_mib"), 1);
        (void)kt_buf_puts(b, "</tr>\n");
    }
    static const char *const groups[] = { "agents", "brokers" };
    static const char *const labels[] = { "ktwin-agent ", "mosquitto " };
    for (size_t k = 0; k < 2; k++) {
        const cJSON *a = NULL;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, groups[k]))
        {
            (void)kt_buf_printf(b, "<tr><td>%s", labels[k]);
            html_text(b, a->string);
            (void)kt_buf_puts(b, "</td>");
            cell_num(b, jnum(a, "cpu_s"), 2);
            cell_num(b, jnum(a, "rss_peak_mib"), 1);
            (void)kt_buf_puts(b, "</tr>\n");
        }
    }
    (void)kt_buf_puts(b, "</table>\n");
}

kt_status sim_report_write(const cJSON *res, const char *paper_dir, const char *path, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)256 << 20);
    kt_status st = sim_report_render(res, paper_dir, &b);
    if (st != KT_OK) {
        (void)kt_err_set(err, st, "report %s: larger than 256 MiB or out of memory", path);
    } else {
        st = kt_buf_write_file(&b, path, err);
    }
    kt_buf_fini(&b);
    return st;
}

kt_status sim_report_render(const cJSON *res, const char *paper_dir, kt_buf *out)
{
    kt_buf b = *out; /* appended to, then handed back */
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "scenario");
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(res, "totals");
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok"));
    (void)kt_buf_puts(&b,
                      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<title>KTWIN Edge smart-city run</title><style>"
                      "body{font:14px sans-serif;margin:2em;max-width:1320px;color:#222}"
                      "table{border-collapse:collapse;margin:1em 0}"
                      "td,th{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}"
                      "td.n{text-align:right;font-variant-numeric:tabular-nums}"
                      "td.bad{background:#fdd;font-weight:bold}tr.tot td{font-weight:bold}"
                      ".ok{color:#161;font-weight:bold}.fail{color:#b00;font-weight:bold}"
                      ".note{color:#555;max-width:70em}.row{display:flex;flex-wrap:wrap;gap:1em}"
                      "svg{background:#fff;border:1px solid #eee;margin:.5em 0}"
                      "svg .t{font:bold 13px sans-serif}svg .a{font:11px sans-serif;fill:#444}"
                      "svg .s{font:11px sans-serif;fill:#222}"
                      "</style></head><body>\n<h1>KTWIN Edge: smart-city run</h1>\n");
    (void)kt_buf_printf(&b,
                        "<p>%.0f neighborhood(s) on %.0f site(s); devices published for %.0f s "
                        "with KTWIN's periods compressed %gx; offline mode: ",
                        jnum(sc, "neighborhoods"), jnum(sc, "sites"), jnum(sc, "devices_run_s"),
                        jnum(sc, "compress"));
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(sc, "offline_mode");
    html_text(&b, cJSON_IsString(mode) ? mode->valuestring : "none");
    (void)kt_buf_puts(&b, ".</p>\n");
    double shade[8][2];
    size_t n_shade = 0;
    const cJSON *w = NULL;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(res, "offline"))
    {
        if (n_shade < 8) {
            shade[n_shade][0] = jnum(w, "from_s");
            shade[n_shade][1] = jnum(w, "to_s");
            (void)kt_buf_printf(&b,
                                "<p>The agents' link to the hub was down from %.1f s to %.1f s "
                                "(shaded in the charts); the sites kept processing and queued "
                                "hub-bound events in their outboxes.</p>\n",
                                shade[n_shade][0], shade[n_shade][1]);
            n_shade++;
        }
    }
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(res, "error");
    if (cJSON_IsString(error)) {
        (void)kt_buf_puts(&b, "<p class=fail>The run failed: ");
        html_text(&b, error->valuestring);
        (void)kt_buf_puts(&b, "</p>\n");
    }
    if (tot != NULL) {
        (void)kt_buf_printf(&b,
                            "<p class=%s>%s: published %.0f, processed %.0f, stored %.0f, "
                            "lost %.0f, duplicates %.0f.</p>\n",
                            ok ? "ok" : "fail", ok ? "Nothing lost, nothing duplicated" : "FAILED",
                            jnum(tot, "published"), jnum(tot, "processed"), jnum(tot, "stored"),
                            jnum(tot, "lost"), jnum(tot, "duplicates"));
    }
    (void)kt_buf_puts(&b,
                      "<p class=note>published: device messages the site broker acknowledged "
                      "(QoS 1 PUBACK), from ktwin-sim devices. processed: twin-service calls at "
                      "the agents for that interface (their latency histogram's count). stored: "
                      "rows of that CloudEvent type in the hub's event store after the run. lost: "
                      "published but not processed (real events), plus events left in outboxes. "
                      "duplicates: processed beyond published, plus stored rows sharing a "
                      "CloudEvent id. docs/sim-run.md has the details.</p>\n");
    section_events(&b, res);
    section_rate(&b, res, shade, n_shade);
    section_latency(&b, res);
    const cJSON *rtt = cJSON_GetObjectItemCaseSensitive(res, "device_rtt_ms");
    if (rtt != NULL) {
        (void)kt_buf_printf(&b,
                            "<p>Device round trip (device event to the virtual event back at the "
                            "device, through its agent): %.0f samples, p50 %.2f ms, p90 %.2f ms, "
                            "p99 %.2f ms.</p>\n",
                            jnum(rtt, "n"), jnum(rtt, "p50"), jnum(rtt, "p90"), jnum(rtt, "p99"));
    }
    section_paper(&b, res, paper_dir, shade, n_shade);
    section_resources(&b, res);
    kt_status st = kt_buf_puts(&b, "</body></html>\n");
    /* appends are small (< 64 KiB): one that failed at the cap left the buffer near it */
    if (st == KT_OK && b.max - b.len < ((size_t)64 << 10)) {
        st = KT_ETOOBIG;
    }
    *out = b;
    return st;
}

int sim_report_main(int argc, char **argv)
{
    const char *results = NULL, *out = NULL, *paper = KT_PAPER_DIR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ktwin-sim report: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--results") == 0) {
            results = v;
        } else if (strcmp(a, "--paper") == 0) {
            paper = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            out = v;
        } else {
            fprintf(stderr,
                    "ktwin-sim report: unknown option %s\n"
                    "usage: ktwin-sim report --results FILE [--paper DIR] -o FILE\n"
                    "(--paper defaults to " KT_PAPER_DIR ")\n",
                    a);
            return 2;
        }
    }
    if (results == NULL || out == NULL) {
        fprintf(stderr, "usage: ktwin-sim report --results FILE [--paper DIR] -o FILE\n");
        return 2;
    }
    kt_buf b;
    kt_buf_init(&b, (size_t)256 << 20);
    kt_err err = { 0 };
    cJSON *res = NULL;
    int rc = 1;
    if (kt_buf_read_file(&b, results, &err) == KT_OK &&
        kt_json_parse(b.data, b.len, b.len, &res, &err) == KT_OK) {
        if (!cJSON_IsObject(res)) {
            (void)kt_err_set(&err, KT_EINVAL, "not a JSON object");
        } else if (sim_report_write(res, paper, out, &err) == KT_OK) {
            rc = 0;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "ktwin-sim report: %s: %s\n", results, err.msg);
    }
    cJSON_Delete(res);
    kt_buf_fini(&b);
    return rc;
}
