/*
 * svc/store.h — the event-store interface the twin-service runtime reads
 * and writes through; the agent and the hub each implement it over their
 * own storage (agent: SQLite latest state + outbox; hub: hub_evstore).
 *
 * Used by svc/api.h (KTWIN's event-store HTTP API) and svc/plugin.h
 * (ktwin_latest for plugins). Only types: no code lives here.
 *
 * Semantics the implementation must give (KTWIN.md §4):
 *   - latest: the latest state of (iface, instance), i.e. the merged
 *     document of the last store event (svc_merge_json), with that event's
 *     id, type, source and time;
 *   - put: persist one store event with upsert-merge: merge its data over
 *     the latest (svc_merge_json), keep the merged document as a new event
 *     and as the new latest; where it goes from there (outbox to the hub) is
 *     the implementation's business. KT_EAGAIN means "full, try later"
 *     (outbox quota): the HTTP API answers 503 with Retry-After;
 *   - list: events of the query in (event time, row) order with a cursor.
 *
 * Thread: loop only (the caller's). Ownership: every svc_record handed to a
 * callback is borrowed for that callback only; every svc_record handed to
 * put is borrowed for the call (copy what you keep).
 */
#ifndef KT_SVC_STORE_H
#define KT_SVC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"

/* One stored event, flat. On read every string is non-NULL ("" when absent). */
typedef struct svc_record {
    const char *iface;    /* twin interface, from type "ktwin.<kind>.<iface>[...]" */
    const char *instance; /* twin instance: the CloudEvent source */
    const char *id;       /* CloudEvent id */
    const char *type;     /* CloudEvent type */
    const char *source;   /* CloudEvent source */
    uint64_t time_ms;     /* CloudEvent time, wall ms (0 = unknown) */
    const uint8_t *data;  /* data (JSON), need not be NUL-terminated */
    size_t data_len;
    /* read only (0 when the store has none): */
    uint64_t rowid;     /* store order; with time_ms the pagination cursor */
    uint64_t stored_ms; /* when it was stored, wall ms */
} svc_record;

/* Called per record; return non-zero to stop early (not an error). */
typedef int (*svc_record_cb)(const svc_record *r, void *user);

#define SVC_QUERY_DEFAULT_LIMIT 100
#define SVC_QUERY_MAX_LIMIT     1000

/* A time-range query with pagination (mirrors hub_evstore_filter). */
typedef struct svc_query {
    const char *iface;      /* NULL = every event (instance NULL too) */
    const char *instance;   /* NULL = every instance of iface */
    uint64_t from_ms;       /* event time >= from_ms (0 = unbounded) */
    uint64_t to_ms;         /* event time < to_ms (0 = unbounded) */
    bool desc;              /* newest first */
    size_t limit;           /* 1..SVC_QUERY_MAX_LIMIT */
    uint64_t after_time_ms; /* cursor from the previous page; both 0 = from the start */
    uint64_t after_rowid;
} svc_query;

/* What a list call returns besides the records. */
typedef struct svc_page {
    size_t n;              /* records passed to the callback */
    bool more;             /* another page exists */
    uint64_t next_time_ms; /* its cursor: the last record's time_ms and rowid */
    uint64_t next_rowid;
} svc_page;

typedef struct svc_store_ops {
    /*
     * The latest state of (iface, instance): cb is called once with it.
     * Returns KT_OK, KT_ENOTFOUND (nothing stored), or a storage error.
     */
    kt_status (*latest)(void *user,
                        const char *iface,
                        const char *instance,
                        svc_record_cb cb,
                        void *cb_user,
                        kt_err *err);
    /*
     * Store one event with upsert-merge (see above). rec->data is the NEW
     * data, not yet merged. Returns KT_OK, KT_EAGAIN (full: retry later),
     * KT_EINVAL (data not a JSON object), or a storage error.
     */
    kt_status (*put)(void *user, const svc_record *rec, kt_err *err);
    /*
     * Run q: cb for each record (at most q->limit), page filled. Returns
     * KT_OK or a storage error. NULL = the list routes answer 501.
     */
    kt_status (*list)(void *user,
                      const svc_query *q,
                      svc_record_cb cb,
                      void *cb_user,
                      svc_page *page,
                      kt_err *err);
    void *user; /* passed to each */
} svc_store_ops;

#endif
