/*
 * fuzz_sim_csv.c — `ktwin-sim report` reads the paper's CSV exports from a
 * directory the user names (--paper DIR, sim/report_csv.h): any bytes there
 * must parse without crashing or reading past the text. Checks: the counts
 * stay within CSV_MAX_COLS / CSV_MAX_ROWS, every column name is
 * NUL-terminated, a successful parse has a column and a row, and each
 * column's median is NAN or finite.
 * Thread: one. Ownership: nothing is kept.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"
#include "report_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ((size_t)4 << 20)) {
        return 0;
    }
    char *text = kt_malloc(size + 1);
    static sim_csv c;
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    bool ok = sim_report_csv_parse(text, &c);
    if (c.n_cols > CSV_MAX_COLS || c.n_rows > CSV_MAX_ROWS ||
        ok != (c.n_cols > 0 && c.n_rows > 0)) {
        abort();
    }
    for (size_t i = 0; i < c.n_cols; i++) {
        if (memchr(c.names[i], '\0', sizeof c.names[i]) == NULL) {
            abort();
        }
        double m = sim_report_csv_median(&c, i);
        if (!isnan(m) && !isfinite(m)) {
            abort();
        }
    }
    kt_free(text);
    return 0;
}
