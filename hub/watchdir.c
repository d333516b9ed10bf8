/*
 * hub/watchdir.c — directory reconcile (see watchdir.h).
 *
 * DESIGN: libuv's inotify backend is not recursive, so there is one
 * uv_fs_event per directory of the tree. Every reconcile walks the tree
 * again; when the set of directories changed, the watchers are rebuilt.
 * Any event (re)starts the debounce timer; the timer reconciles. The
 * struct is freed when the last of its handles has closed (n_open).
 *
 * Thread: loop only. Ownership: see watchdir.h.
 */
#define KT_LOG_MOD "watchdir"
#include "hub/watchdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kt/buf.h"
#include "kt/log.h"
#include "kt/mem.h"

#define WATCH_MAX_DEPTH 16
#define WATCH_FILE_MAX  ((size_t)256 << 20)

typedef struct strvec {
    char **items;
    size_t n;
    size_t cap;
} strvec;

struct hub_watchdir {
    uv_loop_t *loop;
    hub_graph *graph;
    char *dir;
    uint64_t debounce_ms;
    uv_timer_t timer;
    uv_fs_event_t **events;
    size_t n_events;
    strvec watched; /* directories of the events, same order */
    size_t n_open;  /* handles not yet closed */
    int closing;
    uint64_t n_reconciles;
    kt_metric *m_ok;
    kt_metric *m_invalid;
    kt_metric *m_error;
};

static void strvec_push(strvec *v, char *s)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->items = kt_xrealloc(v->items, v->cap * sizeof(*v->items));
    }
    v->items[v->n++] = s;
}

static void strvec_fini(strvec *v)
{
    for (size_t i = 0; i < v->n; i++) {
        kt_free(v->items[i]);
    }
    kt_free(v->items);
    memset(v, 0, sizeof(*v));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_manifest_suffix(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

/* Collect directories and manifest files under path, both sorted (depth first, name order). */
static void walk(const char *path, int depth, strvec *dirs, strvec *files)
{
    if (depth > WATCH_MAX_DEPTH) {
        KT_LOG(KT_LOG_WARN, "WATCHDIR-DEEP", "dir=%s msg=\"deeper than %d levels; skipped\"", path,
               WATCH_MAX_DEPTH);
        return;
    }
    strvec_push(dirs, kt_xstrdup(path));
    DIR *d = opendir(path);
    if (d == NULL) {
        KT_LOG(KT_LOG_WARN, "WATCHDIR-OPEN", "dir=%s errno=%d", path, errno);
        return;
    }
    strvec names = { 0 };
    for (;;) {
        struct dirent *e = readdir(d);
        if (e == NULL) {
            break;
        }
        if (e->d_name[0] == '.') {
            continue; /* hidden files, editors' temp files, Kubernetes ..data links */
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *full = kt_xmalloc(len);
        snprintf(full, len, "%s/%s", path, e->d_name);
        strvec_push(&names, full);
    }
    (void)closedir(d);
    if (names.n > 1) {
        qsort(names.items, names.n, sizeof(*names.items), cmp_str);
    }
    for (size_t i = 0; i < names.n; i++) {
        struct stat sb;
        if (stat(names.items[i], &sb) != 0) {
            continue; /* gone meanwhile, or a dangling link */
        }
        if (S_ISDIR(sb.st_mode)) {
            walk(names.items[i], depth + 1, dirs, files);
        } else if (S_ISREG(sb.st_mode) && has_manifest_suffix(names.items[i])) {
            strvec_push(files, names.items[i]);
            names.items[i] = NULL;
        }
    }
    strvec_fini(&names);
}

/* ---- watchers -------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    hub_watchdir *w = h->data;
    if (h != (uv_handle_t *)&w->timer) {
        kt_free(h);
    }
    KT_ASSERT(w->n_open > 0);
    w->n_open--;
    if (w->closing && w->n_open == 0) {
        strvec_fini(&w->watched);
        kt_free(w->events);
        kt_free(w->dir);
        kt_free(w);
    }
}

static void on_timer(uv_timer_t *t);

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    hub_watchdir *w = h->data;
    if (w->closing) {
        return;
    }
    if (status < 0) {
        KT_LOG(KT_LOG_WARN, "WATCHDIR-EVENT", "err=\"%s\"", uv_strerror(status));
    }
    (void)uv_timer_start(&w->timer, on_timer, w->debounce_ms, 0); /* restarts: debounce */
}

static void close_events(hub_watchdir *w)
{
    for (size_t i = 0; i < w->n_events; i++) {
        uv_fs_event_stop(w->events[i]);
        uv_close((uv_handle_t *)w->events[i], on_handle_closed);
    }
    w->n_events = 0;
    strvec_fini(&w->watched);
}

static int same_dirs(const strvec *a, const strvec *b)
{
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->items[i], b->items[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Watch exactly dirs (taken over). */
static void set_watchers(hub_watchdir *w, strvec *dirs)
{
    if (same_dirs(&w->watched, dirs)) {
        strvec_fini(dirs);
        return;
    }
    close_events(w);
    w->events = kt_xrealloc(w->events, (dirs->n + 1) * sizeof(*w->events));
    for (size_t i = 0; i < dirs->n; i++) {
        uv_fs_event_t *h = kt_xcalloc(1, sizeof(*h));
        (void)uv_fs_event_init(w->loop, h);
        h->data = w;
        w->n_open++;
        int rc = uv_fs_event_start(h, on_fs_event, dirs->items[i], 0);
        if (rc != 0) {
            KT_LOG(KT_LOG_WARN, "WATCHDIR-WATCH", "dir=%s err=\"%s\"", dirs->items[i],
                   uv_strerror(rc));
        }
        w->events[w->n_events++] = h;
    }
    w->watched = *dirs;
    memset(dirs, 0, sizeof(*dirs));
}

/* ---- reconcile ------------------------------------------------------------------- */

kt_status hub_watchdir_reconcile(hub_watchdir *w)
{
    strvec dirs = { 0 };
    strvec files = { 0 };
    walk(w->dir, 0, &dirs, &files);
    set_watchers(w, &dirs);

    kt_buf *bufs = kt_xcalloc(files.n + 1, sizeof(*bufs));
    hub_apply_input *inputs = kt_xcalloc(files.n + 1, sizeof(*inputs));
    size_t n_inputs = 0;
    kt_status st = KT_OK;
    for (size_t i = 0; i < files.n; i++) {
        kt_buf_init(&bufs[i], WATCH_FILE_MAX);
        kt_err ferr = { 0 };
        kt_status fst = kt_buf_read_file(&bufs[i], files.items[i], &ferr);
        if (fst == KT_ENOTFOUND) {
            continue; /* removed meanwhile: the next event reconciles again */
        }
        if (fst != KT_OK) {
            /* An unreadable file must not prune what it holds: skip this round. */
            KT_LOG(KT_LOG_ERR, "WATCHDIR-READ", "file=%s err=\"%s\"", files.items[i], ferr.msg);
            st = fst;
            break;
        }
        inputs[n_inputs].name = files.items[i];
        inputs[n_inputs].buf = bufs[i].data != NULL ? bufs[i].data : "";
        inputs[n_inputs].len = bufs[i].len;
        n_inputs++;
    }
    w->n_reconciles++;
    if (st == KT_OK) {
        hub_apply_opts opts = { "watchdir", 1 };
        hub_apply_result r;
        hub_apply_result_init(&r);
        kt_err err = { 0 };
        st = hub_graph_apply_batch(w->graph, inputs, n_inputs, &opts, &r, &err);
        if (st == KT_OK) {
            kt_metrics_inc(w->m_ok);
            size_t changed = 0;
            for (size_t i = 0; i < r.n_items; i++) {
                if (r.items[i].op != HUB_OP_UNCHANGED) {
                    changed++;
                    KT_LOG(KT_LOG_INFO, "WATCHDIR-APPLIED", "kind=%s name=%s op=%s",
                           hub_kind_name(r.items[i].kind), r.items[i].name,
                           hub_op_name(r.items[i].op));
                }
            }
            KT_LOG(KT_LOG_INFO, "WATCHDIR-RECONCILED",
                   "dir=%s files=%zu objects=%zu changed=%zu revision=%llu", w->dir, n_inputs,
                   r.n_items, changed, (unsigned long long)r.revision);
        } else if (st == KT_EINVAL) {
            kt_metrics_inc(w->m_invalid);
            for (size_t i = 0; i < r.diag.n; i++) {
                const model_diag_entry *e = &r.diag.entries[i];
                if (e->severity != MODEL_DIAG_ERROR) {
                    continue;
                }
                char q[512];
                KT_LOG(KT_LOG_ERR, "WATCHDIR-INVALID", "at=%s:%u:%u path=%s class=%s msg=%s",
                       e->file, e->line, e->col, e->path[0] != '\0' ? e->path : "-", e->code,
                       kt_log_quote(q, sizeof(q), e->msg));
            }
            KT_LOG(KT_LOG_WARN, "WATCHDIR-KEPT",
                   "dir=%s errors=%zu msg=\"nothing applied; the last good state stays\"", w->dir,
                   r.diag.n_errors);
        } else {
            kt_metrics_inc(w->m_error);
            KT_LOG(KT_LOG_ERR, "WATCHDIR-APPLY-FAIL", "status=%s err=\"%s\"", kt_status_str(st),
                   err.msg);
        }
        hub_apply_result_fini(&r);
    } else {
        kt_metrics_inc(w->m_error);
    }
    for (size_t i = 0; i < files.n; i++) {
        kt_buf_fini(&bufs[i]);
    }
    kt_free(bufs);
    kt_free(inputs);
    strvec_fini(&files);
    return st;
}

static void on_timer(uv_timer_t *t)
{
    hub_watchdir *w = t->data;
    if (!w->closing) {
        (void)hub_watchdir_reconcile(w);
    }
}

uint64_t hub_watchdir_reconciles(const hub_watchdir *w)
{
    return w->n_reconciles;
}

/* ---- lifecycle ------------------------------------------------------------------- */

kt_status hub_watchdir_new(hub_watchdir **out,
                           uv_loop_t *loop,
                           hub_graph *graph,
                           const char *dir,
                           uint64_t debounce_ms,
                           kt_metrics *metrics,
                           kt_err *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        int e = errno;
        return kt_err_set_errno(err, e == ENOENT ? KT_ENOTFOUND : KT_EIO, e, "watch_dir %s", dir);
    }
    if (!S_ISDIR(sb.st_mode)) {
        return kt_err_set(err, KT_EIO, "watch_dir %s: not a directory", dir);
    }
    hub_watchdir *w = kt_xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->graph = graph;
    w->dir = kt_xstrdup(dir);
    w->debounce_ms = debounce_ms;
    (void)uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->n_open = 1;
    if (metrics != NULL) {
        const char *help = "watch-dir reconciles by result (ok, invalid = content refused, error)";
        kt_status st = kt_metrics_counter(&w->m_ok, metrics, "ktwin_hub_watchdir_reconcile_total",
                                          help, (const char *[]){ "result", "ok", NULL }, err);
        if (st == KT_OK) {
            st = kt_metrics_counter(&w->m_invalid, metrics, "ktwin_hub_watchdir_reconcile_total",
                                    help, (const char *[]){ "result", "invalid", NULL }, err);
        }
        if (st == KT_OK) {
            st = kt_metrics_counter(&w->m_error, metrics, "ktwin_hub_watchdir_reconcile_total",
                                    help, (const char *[]){ "result", "error", NULL }, err);
        }
        if (st != KT_OK) {
            hub_watchdir_free(w);
            return st;
        }
    }
    KT_LOG(KT_LOG_NOTICE, "WATCHDIR-START", "dir=%s debounce_ms=%llu", dir,
           (unsigned long long)debounce_ms);
    (void)hub_watchdir_reconcile(w); /* invalid content is logged; the hub still starts */
    *out = w;
    return KT_OK;
}

void hub_watchdir_free(hub_watchdir *w)
{
    if (w == NULL || w->closing) {
        return;
    }
    w->closing = 1;
    (void)uv_timer_stop(&w->timer);
    close_events(w);
    uv_close((uv_handle_t *)&w->timer, on_handle_closed);
}
