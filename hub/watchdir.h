/*
 * hub/watchdir.h — reconcile a directory of CRD files into the graph
 * (ktwin-hub --watch-dir DIR, config watch_dir).
 *
 * At start and after every change under the directory (uv_fs_event on the
 * directory and each subdirectory, debounced), every *.yaml, *.yml and
 * *.json file (recursively, hidden entries skipped, name order) is read
 * and the lot is applied as one batch with source "watchdir" and prune on:
 * objects that came from the directory and are no longer in it are
 * deleted in the same transaction. Invalid content changes nothing: each
 * error is logged as WATCHDIR-INVALID with file:line:col and counted, and
 * the last good state stays. Objects applied through the API are never
 * pruned by the directory (their source is "api").
 *
 * Files are read synchronously on the loop (a config directory is small).
 *
 * Thread: loop only. Ownership: borrows loop, graph and metrics; owns its
 * uv handles (closed by hub_watchdir_free, released by the loop's close
 * callbacks: run the loop afterwards).
 */
#ifndef KT_HUB_WATCHDIR_H
#define KT_HUB_WATCHDIR_H

#include <stdint.h>

#include <uv.h>

#include "hub/graph.h"
#include "kt/err.h"
#include "kt/metrics.h"

typedef struct hub_watchdir hub_watchdir;

/*
 * Start watching dir (must be an existing directory: KT_ENOTFOUND /
 * KT_EIO otherwise) and reconcile once now. metrics may be NULL.
 * debounce_ms: quiet time before a reconcile.
 */
kt_status hub_watchdir_new(hub_watchdir **out,
                           uv_loop_t *loop,
                           hub_graph *graph,
                           const char *dir,
                           uint64_t debounce_ms,
                           kt_metrics *metrics,
                           kt_err *err);
/* Stop watching and free (memory goes with the handles' close callbacks). NULL is a no-op. */
void hub_watchdir_free(hub_watchdir *w);

/* Reconcile now (also what the timer calls). Returns the hub_graph_apply_batch status. */
kt_status hub_watchdir_reconcile(hub_watchdir *w);

/* Number of reconciles done (tests). */
uint64_t hub_watchdir_reconciles(const hub_watchdir *w);

#endif
