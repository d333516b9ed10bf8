/*
 * report_csv.h — the reader of the KTWIN paper's CSV exports
 * (data/ktwin-article, one .csv per figure) that report.c draws beside our figures, exposed
 * for the fuzz target tests/fuzz/fuzz_sim_csv.c. Internal to sim/.
 *
 * Format: a header row ("Time", then one name per value column), then rows
 * of a number and up to CSV_MAX_COLS values; cells may be quoted (no quoted
 * commas), "undefined" or empty cells are NAN, a UTF-8 BOM is skipped. Rows
 * past CSV_MAX_ROWS and columns past CSV_MAX_COLS are ignored, names are cut
 * at 127 bytes.
 * Thread: any for parse; sim_report_csv_median uses a static scratch buffer
 * (one thread). Ownership: the caller owns the text and the sim_csv.
 */
#ifndef KT_SIM_REPORT_CSV_H
#define KT_SIM_REPORT_CSV_H

#include <stdbool.h>
#include <stddef.h>

#define CSV_MAX_COLS 32u
#define CSV_MAX_ROWS 4096u

typedef struct sim_csv {
    size_t n_cols; /* value columns (after "Time") */
    char names[CSV_MAX_COLS][128];
    size_t n_rows;
    double t[CSV_MAX_ROWS];
    double v[CSV_MAX_ROWS][CSV_MAX_COLS];
} sim_csv;

/* Parse the NUL-terminated text (modified in place) into out; true when it
 * has at least one value column and one row. */
bool sim_report_csv_parse(char *text, sim_csv *out);

/* Median of column col (< n_cols) over its numeric samples (NAN when none). */
double sim_report_csv_median(const sim_csv *c, size_t col);

#endif
