/*
 * hub/evstore.c — the event store interface: dispatch to a backend's
 * vtable, argument checks shared by every backend, and the cursor text.
 *
 * Invariants: a hub_evstore always has a vtable and an impl; the
 * transaction flag mirrors the backend's open transaction, so every backend
 * gets the same KT_EINVAL for misuse.
 *
 * Thread: loop only. Ownership: the wrapper owns impl (freed through the
 * vtable); the vtable is static.
 */
#include "hub/evstore.h"

#include <inttypes.h>
#include <string.h>

#include "kt/mem.h"

struct hub_evstore {
    const hub_evstore_vtable *vt;
    void *impl;
    bool in_txn;
    bool in_sp; /* a hub_evstore_savepoint is open */
};

hub_evstore *hub_evstore_wrap(const hub_evstore_vtable *vt, void *impl)
{
    KT_ASSERT(vt != NULL && impl != NULL);
    hub_evstore *s = kt_xcalloc(1, sizeof(*s));
    s->vt = vt;
    s->impl = impl;
    return s;
}

void hub_evstore_free(hub_evstore *s)
{
    if (s == NULL) {
        return;
    }
    if (s->in_txn) {
        s->vt->rollback(s->impl);
    }
    s->vt->free(s->impl);
    kt_free(s);
}

const char *hub_evstore_backend(const hub_evstore *s)
{
    return s->vt->name;
}

kt_status hub_evstore_begin(hub_evstore *s, kt_err *err)
{
    if (s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: a transaction is already open");
    }
    kt_status st = s->vt->begin(s->impl, err);
    if (st == KT_OK) {
        s->in_txn = true;
    }
    return st;
}

kt_status hub_evstore_commit(hub_evstore *s, kt_err *err)
{
    if (!s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: commit without a transaction");
    }
    s->in_txn = false;
    s->in_sp = false;
    kt_status st = s->vt->commit(s->impl, err);
    if (st != KT_OK) {
        s->vt->rollback(s->impl);
    }
    return st;
}

void hub_evstore_rollback(hub_evstore *s)
{
    if (!s->in_txn) {
        return;
    }
    s->in_txn = false;
    s->in_sp = false;
    s->vt->rollback(s->impl);
}

static bool nonempty(const char *p)
{
    return p != NULL && p[0] != '\0';
}

static kt_status check_event(const hub_evstore_event *ev, size_t i, kt_err *err)
{
    const char *missing = NULL;
    if (!nonempty(ev->iface)) {
        missing = "iface";
    } else if (!nonempty(ev->instance)) {
        missing = "instance";
    } else if (!nonempty(ev->id)) {
        missing = "id";
    } else if (!nonempty(ev->type)) {
        missing = "type";
    } else if (!nonempty(ev->source)) {
        missing = "source";
    } else if (ev->data_len > 0 && ev->data == NULL) {
        missing = "data";
    }
    if (missing != NULL) {
        return kt_err_set(err, KT_EINVAL, "event %zu: %s missing", i, missing);
    }
    return KT_OK;
}

kt_status hub_evstore_append(hub_evstore *s,
                             const char *site,
                             const char *incarnation,
                             const hub_evstore_event *evs,
                             size_t n,
                             hub_evstore_append_result *res,
                             kt_err *err)
{
    hub_evstore_append_result local;
    if (res == NULL) {
        res = &local;
    }
    memset(res, 0, sizeof(*res));
    if (!s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: append outside a transaction");
    }
    bool up = site != NULL;
    if (up && (!nonempty(site) || !nonempty(incarnation))) {
        return kt_err_set(err, KT_EINVAL, "event store: upstream batch without site/incarnation");
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        kt_status st = check_event(&evs[i], i, err);
        if (st != KT_OK) {
            return st;
        }
        if (up) {
            if (evs[i].seq == 0 || evs[i].seq <= prev) {
                return kt_err_set(err, KT_EINVAL, "event %zu: seq %" PRIu64 " not above %" PRIu64,
                                  i, evs[i].seq, prev);
            }
            prev = evs[i].seq;
        }
    }
    return s->vt->append(s->impl, up ? site : NULL, up ? incarnation : NULL, evs, n, res, err);
}

kt_status hub_evstore_mark(
    hub_evstore *s, const char *site, const char *incarnation, uint64_t seq, kt_err *err)
{
    if (!s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: mark outside a transaction");
    }
    if (!nonempty(site) || !nonempty(incarnation)) {
        return kt_err_set(err, KT_EINVAL, "event store: site and incarnation required");
    }
    return s->vt->mark(s->impl, site, incarnation, seq, err);
}

kt_status hub_evstore_savepoint(hub_evstore *s, kt_err *err)
{
    if (!s->in_txn || s->in_sp) {
        return kt_err_set(err, KT_EINVAL, "event store: savepoint %s",
                          s->in_txn ? "already open" : "outside a transaction");
    }
    kt_status st = s->vt->savepoint(s->impl, err);
    if (st == KT_OK) {
        s->in_sp = true;
    }
    return st;
}

kt_status hub_evstore_release(hub_evstore *s, bool keep, kt_err *err)
{
    if (!s->in_sp) {
        return kt_err_set(err, KT_EINVAL, "event store: no savepoint to release");
    }
    s->in_sp = false;
    return s->vt->release(s->impl, keep, err);
}

kt_status hub_evstore_acked_seq(
    hub_evstore *s, const char *site, const char *incarnation, uint64_t *out, kt_err *err)
{
    *out = 0;
    if (!nonempty(site) || !nonempty(incarnation)) {
        return kt_err_set(err, KT_EINVAL, "event store: site and incarnation required");
    }
    return s->vt->acked_seq(s->impl, site, incarnation, out, err);
}

kt_status hub_evstore_latest(hub_evstore *s,
                             const char *iface,
                             const char *instance,
                             hub_evstore_event_cb cb,
                             void *user,
                             kt_err *err)
{
    if (!nonempty(iface) || !nonempty(instance)) {
        return kt_err_set(err, KT_EINVAL, "event store: interface and instance required");
    }
    return s->vt->latest(s->impl, iface, instance, cb, user, err);
}

kt_status hub_evstore_query(hub_evstore *s,
                            const hub_evstore_filter *q,
                            hub_evstore_event_cb cb,
                            void *user,
                            hub_evstore_page *page,
                            kt_err *err)
{
    memset(page, 0, sizeof(*page));
    if (q->limit > HUB_EVSTORE_MAX_LIMIT) {
        return kt_err_set(err, KT_EINVAL, "limit %zu over %d", q->limit, HUB_EVSTORE_MAX_LIMIT);
    }
    if ((q->iface == NULL) != (q->instance == NULL)) {
        return kt_err_set(err, KT_EINVAL, "query: interface and instance go together");
    }
    hub_evstore_filter f = *q;
    if (f.limit == 0) {
        f.limit = HUB_EVSTORE_DEFAULT_LIMIT;
    }
    return s->vt->query(s->impl, &f, cb, user, page, err);
}

kt_status hub_evstore_retain(hub_evstore *s,
                             uint64_t older_than_ms,
                             uint64_t max_bytes,
                             size_t max_rows,
                             size_t *deleted_out,
                             bool *more_out,
                             kt_err *err)
{
    *deleted_out = 0;
    *more_out = false;
    if (s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: retention inside a transaction");
    }
    if (max_rows == 0 || (older_than_ms == 0 && max_bytes == 0)) {
        return KT_OK;
    }
    return s->vt->retain(s->impl, older_than_ms, max_bytes, max_rows, deleted_out, more_out, err);
}

void hub_evstore_stats_get(hub_evstore *s, hub_evstore_stats *out)
{
    memset(out, 0, sizeof(*out));
    s->vt->stats(s->impl, out);
}

kt_status hub_evstore_down_push(
    hub_evstore *s, const char *site, const hub_evstore_event *ev, uint64_t *seq_out, kt_err *err)
{
    uint64_t seq = 0;
    if (seq_out == NULL) {
        seq_out = &seq;
    }
    *seq_out = 0;
    if (!s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: down_push outside a transaction");
    }
    if (!nonempty(site)) {
        return kt_err_set(err, KT_EINVAL, "event store: down_push without a site");
    }
    kt_status st = check_event(ev, 0, err);
    if (st != KT_OK) {
        return st;
    }
    return s->vt->down_push(s->impl, site, ev, seq_out, err);
}

kt_status hub_evstore_down_read(hub_evstore *s,
                                const char *site,
                                uint64_t after_seq,
                                size_t max_n,
                                hub_evstore_event_cb cb,
                                void *user,
                                kt_err *err)
{
    if (!nonempty(site)) {
        return kt_err_set(err, KT_EINVAL, "event store: down_read without a site");
    }
    if (max_n == 0) {
        return KT_OK;
    }
    return s->vt->down_read(s->impl, site, after_seq, max_n, cb, user, err);
}

kt_status hub_evstore_down_ack(hub_evstore *s, const char *site, uint64_t seq, kt_err *err)
{
    if (!nonempty(site)) {
        return kt_err_set(err, KT_EINVAL, "event store: down_ack without a site");
    }
    if (s->in_txn) {
        return s->vt->down_ack(s->impl, site, seq, err);
    }
    kt_status st = hub_evstore_begin(s, err);
    if (st != KT_OK) {
        return st;
    }
    st = s->vt->down_ack(s->impl, site, seq, err);
    if (st != KT_OK) {
        hub_evstore_rollback(s);
        return st;
    }
    return hub_evstore_commit(s, err);
}

uint64_t hub_evstore_down_count(hub_evstore *s, const char *site)
{
    if (!nonempty(site)) {
        return 0;
    }
    return s->vt->down_count(s->impl, site);
}

kt_status
hub_evstore_down_rebase(hub_evstore *s, const char *site, uint64_t agent_acked_seq, kt_err *err)
{
    if (s->in_txn) {
        return kt_err_set(err, KT_EINVAL, "event store: down_rebase inside a transaction");
    }
    if (!nonempty(site)) {
        return kt_err_set(err, KT_EINVAL, "event store: down_rebase without a site");
    }
    kt_status st = hub_evstore_begin(s, err);
    if (st != KT_OK) {
        return st;
    }
    st = s->vt->down_rebase(s->impl, site, agent_acked_seq, err);
    if (st != KT_OK) {
        hub_evstore_rollback(s);
        return st;
    }
    return hub_evstore_commit(s, err);
}
