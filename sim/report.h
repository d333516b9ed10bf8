/*
 * report.h — report.html of `ktwin-sim run`: one self-contained HTML file
 * (inline CSS and SVG, no script, no external resource) drawn from the
 * results.json object the runner wrote, plus the KTWIN paper's CSV exports
 * (data/ktwin-article) for the side-by-side figures.
 *
 * Sections: what ran; per event type counts; events/s over time with the
 * offline period shaded; latency percentiles per service; the paper's
 * events/s and response times for the nearest paper size (1, 5, 10 or 20
 * neighborhoods) beside ours; process resources.
 *
 * Thread: any (no state). Ownership: nothing is kept.
 */
#ifndef KT_SIM_REPORT_H
#define KT_SIM_REPORT_H

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/err.h"

/*
 * Write the report of `results` (the results.json object) to `path`.
 * paper_dir: a directory with events-per-second-<N>nb.csv and
 * response-time-p<P>-<N>nb.csv; NULL or missing files leave the paper's
 * side out and say so in the report. KT_EIO when path cannot be written.
 */
kt_status
sim_report_write(const cJSON *results, const char *paper_dir, const char *path, kt_err *err);

/*
 * Append the report of `results` to out (the paper's CSVs read from
 * paper_dir as above). Any JSON object is accepted: missing or mistyped
 * members show as "-" or leave their section out. Returns KT_OK, or
 * KT_ETOOBIG / KT_ENOMEM when out cannot hold it (out keeps what fit).
 */
kt_status sim_report_render(const cJSON *results, const char *paper_dir, kt_buf *out);

/*
 * `ktwin-sim report --results FILE [--paper DIR] -o FILE`: the same report
 * from a results.json on disk. argv[0] is "report". Returns 0, 1 or 2 (usage).
 */
int sim_report_main(int argc, char **argv);

#endif
