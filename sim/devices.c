/*
 * devices.c — thousands of KTWIN devices on one libuv loop (see devices.h).
 *
 * DESIGN
 * - A device is a small struct (cursor, next due time, topic). Devices are
 *   dealt round-robin to the paho connections of their neighborhood's site;
 *   each connection keeps a binary min-heap of its devices by due time and
 *   one uv_timer armed for the earliest. No thread per device.
 * - A timer tick publishes every due device (at most TICK_BATCH, then it
 *   yields to the loop), advances its cursor and pushes it back. A device
 *   published late is published at once (lateness is measured, nothing is
 *   skipped), so counts always match the schedule.
 * - QoS 1 in-flight window: `inflight` counts sends not completed. At
 *   max_inflight the tick stops and retries 1 ms later. paho keeps its
 *   in-flight messages in lists it searches linearly, so a window of a few
 *   hundred is faster than thousands; paho has one send thread per process
 *   (more connections do not add throughput; --only-site runs a process per
 *   site instead). paho's completion
 *   callbacks (its threads) only touch atomics: the per-interface published
 *   counts, failures and in-flight counts.
 * - Virtual events (ktwin/virtual/#, subscribed on each site's first
 *   connection) and connection notes go through a kt_inbox to the loop,
 *   which matches the instance to the device and records the round trip
 *   from that device's last publish, once per publish.
 * - Phases: CONNECTING (every site connected and subscribed, else
 *   KT_ETIMEDOUT), RUNNING, DRAINING (no more publishes: wait for in-flight
 *   completions, and for round trips while any virtual event was seen, up to
 *   drain_s), DONE (final stats line, paho disconnected and destroyed first,
 *   then the inbox and the handles closed, then the loop).
 *
 * Thread: the loop thread owns everything except the atomics and the inbox.
 */
#include "devices.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <uv.h>

#define KT_LOG_MOD "sim"
#include "city.h"
#include "kt/clock.h"
#include "kt/inbox.h"
#include "kt/log.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/event.h"
#include "schedule.h"

#define TICK_BATCH     2000u
#define INBOX_DEPTH    65536u
#define TOPIC_CAP      MODEL_TOPIC_CAP
#define NAME_CAP       128u
#define STATS_MS       1000u
#define DRAIN_CHECK_MS 20u
#define NS_PER_MS      1000000ull

typedef enum phase { PH_CONNECTING, PH_RUNNING, PH_DRAINING, PH_DONE } phase;

typedef struct dev {
    sim_cursor cur;
    uint64_t due_ns;      /* absolute monotonic time of the pending message */
    uint64_t last_pub_ns; /* when the last message went out (round trips) */
    unsigned msg_count;   /* of the pending message */
    unsigned window;      /* of the pending message */
    sim_kind kind;
    unsigned site;        /* neighborhood k % n_sites */
    uint32_t offset_ms;   /* start offset in model ms (--spread), 0 by default */
    bool awaiting;        /* a publish waits for its virtual event */
    char *topic;          /* ktwin/real/<iface>/<instance> */
    const char *instance; /* inside topic */
} dev;

typedef struct conn conn;

/* The context of a send: the connection and the interface to count. */
typedef struct pubctx {
    conn *c;
    sim_kind kind;
} pubctx;

struct conn {
    struct run *r;
    unsigned site, idx;
    MQTTAsync client;
    uv_timer_t timer;
    uv_timer_t retry;
    dev **heap;
    size_t n_heap, cap_heap;
    atomic_uint_fast64_t inflight;
    bool connected, subscribed, connecting, subscribes; /* subscribes: ktwin/virtual/# here */
    pubctx ctx[SIM_KIND_COUNT];
};

typedef enum note_kind {
    N_CONNECTED,
    N_CONNECT_FAILED,
    N_LOST,
    N_SUBSCRIBED,
    N_SUB_FAILED,
    N_RX
} note_kind;

typedef struct note {
    kt_inbox_msg link;
    note_kind kind;
    conn *c;
    int code;
    uint64_t t_ns;
    char topic[]; /* N_RX, NUL-terminated */
} note;

typedef struct run {
    const sim_devices_opts *o;
    uv_loop_t loop;
    kt_inbox inbox;
    uv_timer_t stats_timer, phase_timer;
    uv_signal_t sigint, sigterm;
    conn *conns;
    size_t n_conns;
    dev *devs;
    size_t n_devs;
    kt_map by_instance;
    FILE *stats;
    phase ph;
    kt_status st; /* first failure */
    kt_err *err;
    uint64_t start_ns, stop_ns, connect_deadline_ns, drain_start_ns;
    size_t n_active; /* devices with messages left */
    uint64_t scheduled[SIM_KIND_COUNT];
    atomic_uint_fast64_t published[SIM_KIND_COUNT];
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t dropped;
    uint64_t virtual_rx, unmatched;
    size_t n_awaiting; /* batteries whose last publish waits for its virtual event (drain) */
    uint64_t late_max_ns, late_last_ns;
    uint32_t *rtt_us;
    size_t n_rtt, cap_rtt;
    unsigned cur_window;
    char ts[SIM_TS_CAP];
    uint64_t ts_sec;
    int interrupted;
    unsigned handles_open;
} run;

/* ---- heap ------------------------------------------------------------------------ */

static void heap_push(conn *c, dev *d)
{
    if (c->n_heap == c->cap_heap) {
        c->cap_heap = c->cap_heap != 0 ? c->cap_heap * 2 : 64;
        c->heap = kt_xrealloc(c->heap, c->cap_heap * sizeof *c->heap);
    }
    size_t i = c->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (c->heap[p]->due_ns <= d->due_ns) {
            break;
        }
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = d;
}

static dev *heap_pop(conn *c)
{
    dev *top = c->heap[0];
    dev *last = c->heap[--c->n_heap];
    size_t n = c->n_heap, i = 0;
    while (n > 0) {
        size_t l = 2 * i + 1;
        if (l >= n) {
            break;
        }
        size_t m = l + 1 < n && c->heap[l + 1]->due_ns < c->heap[l]->due_ns ? l + 1 : l;
        if (last->due_ns <= c->heap[m]->due_ns) {
            break;
        }
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n > 0) {
        c->heap[i] = last;
    }
    return top;
}

/* Whether neighborhood k runs in this process. */
static bool runs_here(const sim_devices_opts *o, unsigned k)
{
    return o->only_site < 0 || k % o->n_sites == (unsigned)o->only_site;
}

/* The connection device number i (of the devices here) of site `site` uses. */
static conn *conn_for(run *r, unsigned site, size_t i)
{
    size_t base = r->o->only_site < 0 ? (size_t)site * r->o->conns_per_site : 0;
    return &r->conns[base + i % r->o->conns_per_site];
}

/* ---- paho threads: atomics and inbox only ----------------------------------------- */

static void push_note(run *r, conn *c, note_kind kind, int code)
{
    note *n = kt_malloc(sizeof *n);
    if (n == NULL) {
        return;
    }
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->c = c;
    n->code = code;
    if (kt_inbox_push(&r->inbox, &n->link) != KT_OK) {
        kt_free(n);
    }
}

static void on_pub_ok(void *context, MQTTAsync_successData *resp)
{
    (void)resp;
    pubctx *p = context;
    atomic_fetch_add(&p->c->r->published[p->kind], 1);
    atomic_fetch_sub(&p->c->inflight, 1);
}

static void on_pub_fail(void *context, MQTTAsync_failureData *resp)
{
    (void)resp;
    pubctx *p = context;
    atomic_fetch_add(&p->c->r->failed, 1);
    atomic_fetch_sub(&p->c->inflight, 1);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    conn *c = context;
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    uint64_t now = kt_clock_mono_ns();
    note *n = tl < TOPIC_CAP ? kt_malloc(sizeof *n + tl + 1) : NULL;
    if (n != NULL) {
        memset(n, 0, sizeof *n);
        n->kind = N_RX;
        n->c = c;
        n->t_ns = now;
        memcpy(n->topic, topic, tl);
        n->topic[tl] = '\0';
        if (kt_inbox_push(&c->r->inbox, &n->link) != KT_OK) {
            kt_free(n);
            n = NULL;
        }
    }
    if (n == NULL) {
        atomic_fetch_add(&c->r->dropped, 1);
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void on_connected(void *context, char *cause)
{
    (void)cause;
    conn *c = context;
    push_note(c->r, c, N_CONNECTED, 0);
}

static void on_connect_fail(void *context, MQTTAsync_failureData *resp)
{
    conn *c = context;
    push_note(c->r, c, N_CONNECT_FAILED, resp != NULL ? resp->code : 0);
}

static void on_lost(void *context, char *cause)
{
    (void)cause;
    conn *c = context;
    push_note(c->r, c, N_LOST, 0);
}

static void on_sub_ok(void *context, MQTTAsync_successData *resp)
{
    (void)resp;
    conn *c = context;
    push_note(c->r, c, N_SUBSCRIBED, 0);
}

/*
 * paho's own errors into our log (STYLE §6), at notice: under load paho
 * traces benign internal errors ("Error 22 waiting for condition variable");
 * real failures reach us through the connection and send callbacks.
 */
static void on_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message)
{
    if (level >= MQTTASYNC_TRACE_ERROR) {
        char q[512];
        KT_LOG(KT_LOG_NOTICE, "SIM-PAHO", "msg=%s", kt_log_quote(q, sizeof q, message));
    }
}

static void on_sub_fail(void *context, MQTTAsync_failureData *resp)
{
    conn *c = context;
    push_note(c->r, c, N_SUB_FAILED, resp != NULL ? resp->code : 0);
}

/* ---- loop: failures and phases ------------------------------------------------------ */

static void finish(run *r);

static void run_fail(run *r, kt_status st, const char *what)
{
    if (r->st == KT_OK) {
        r->st = kt_err_set(r->err, st, "%s", what);
    }
    finish(r);
}

static const char *broker_of(const run *r, const conn *c)
{
    return r->o->brokers[c->site];
}

static kt_status conn_connect(conn *c, kt_err *err)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 30;
    co.cleansession = 1;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    co.maxRetryInterval = 2;
    co.connectTimeout = 5;
    co.maxInflight = (int)c->r->o->max_inflight;
    co.onFailure = on_connect_fail;
    co.context = c;
    int rc = MQTTAsync_connect(c->client, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        return kt_err_set_dep(err, KT_EDEP, "paho", rc, "connect site-%u %s: %s", c->site,
                              broker_of(c->r, c), MQTTAsync_strerror(rc));
    }
    c->connecting = true;
    return KT_OK;
}

static void on_retry(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->r->ph != PH_CONNECTING || c->connected || c->connecting) {
        return;
    }
    kt_err e = { 0 };
    if (conn_connect(c, &e) != KT_OK) {
        KT_LOG(KT_LOG_WARN, "SIM-CONNECT-FAILED", "site=%u url=%s err=\"%s\"", c->site,
               broker_of(c->r, c), e.msg);
        uv_timer_start(&c->retry, on_retry, 500, 0);
    }
}

static void subscribe(conn *c)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_sub_fail;
    ro.context = c;
    int rc = MQTTAsync_subscribe(c->client, "ktwin/virtual/#", 1, &ro);
    if (rc != MQTTASYNC_SUCCESS) {
        KT_LOG(KT_LOG_WARN, "SIM-SUBSCRIBE-FAILED", "site=%u rc=%d err=\"%s\"", c->site, rc,
               MQTTAsync_strerror(rc));
    }
}

static void start_running(run *r);

static void check_all_ready(run *r)
{
    if (r->ph != PH_CONNECTING) {
        return;
    }
    for (size_t i = 0; i < r->n_conns; i++) {
        const conn *c = &r->conns[i];
        if (!c->connected || (c->subscribes && !c->subscribed)) {
            return;
        }
    }
    start_running(r);
}

/* ---- loop: round trips ------------------------------------------------------------- */

static void rx_virtual(run *r, const note *n)
{
    r->virtual_rx++;
    model_topic t;
    dev *d = NULL;
    if (model_topic_parse(&t, n->topic, strlen(n->topic), NULL) == KT_OK &&
        t.cls == MODEL_EVENT_VIRTUAL) {
        d = kt_map_get(&r->by_instance, t.instance);
    }
    if (d == NULL || !d->awaiting || strcmp(t.iface, sim_kind_iface(d->kind)) != 0) {
        r->unmatched++;
        return;
    }
    d->awaiting = false;
    if (d->kind == SIM_KIND_BATTERY) {
        r->n_awaiting--;
    }
    uint64_t rtt_ns = n->t_ns > d->last_pub_ns ? n->t_ns - d->last_pub_ns : 0;
    if (r->n_rtt == r->cap_rtt) {
        r->cap_rtt = r->cap_rtt != 0 ? r->cap_rtt * 2 : 1024;
        r->rtt_us = kt_xrealloc(r->rtt_us, r->cap_rtt * sizeof *r->rtt_us);
    }
    uint64_t us = rtt_ns / 1000u;
    r->rtt_us[r->n_rtt++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Nearest-rank percentiles (ms) of the round trips so far into q[3]: p50, p90, p99. */
static void rtt_percentiles(run *r, double q[3])
{
    static const double ranks[3] = { 0.50, 0.90, 0.99 };
    q[0] = q[1] = q[2] = 0.0;
    if (r->n_rtt == 0) {
        return;
    }
    qsort(r->rtt_us, r->n_rtt, sizeof *r->rtt_us, cmp_u32); /* kept sorted-ish: cheap re-sorts */
    for (int i = 0; i < 3; i++) {
        size_t k = (size_t)ceil(ranks[i] * (double)r->n_rtt);
        k = k == 0 ? 1 : k;
        q[i] = (double)r->rtt_us[k - 1] / 1000.0;
    }
}

/* ---- loop: publishing --------------------------------------------------------------- */

static void refresh_ts(run *r)
{
    uint64_t wall = kt_clock_wall_ms();
    if (wall / 1000u != r->ts_sec || r->ts[0] == '\0') {
        r->ts_sec = wall / 1000u;
        sim_payload_timestamp(r->ts, sizeof r->ts, wall);
    }
}

/* Set d's next message; false when it has none left before the stop time. */
static bool dev_advance(run *r, dev *d)
{
    uint64_t t_ms = 0;
    if (!sim_schedule_next(sim_schedule_profile(d->kind), &d->cur, &t_ms, &d->msg_count,
                           &d->window)) {
        return false;
    }
    d->due_ns = r->start_ns + sim_schedule_real_ns(t_ms + d->offset_ms, r->o->compress);
    return d->due_ns <= r->stop_ns;
}

/*
 * Send d's pending message. false: paho's queue is full (flow control), d is
 * unchanged and goes back in the heap. A message paho refuses otherwise is
 * counted as failed. Replies are handled on this thread, so marking d as
 * awaiting its virtual event after the send cannot race with the reply.
 */
static bool publish(run *r, conn *c, dev *d, uint64_t now)
{
    char payload[SIM_PAYLOAD_CAP];
    size_t len = sim_payload_build(payload, sizeof payload, d->kind, d->msg_count, r->ts);
    KT_ASSERT(len > 0);
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_pub_ok;
    ro.onFailure = on_pub_fail;
    ro.context = &c->ctx[d->kind];
    atomic_fetch_add(&c->inflight, 1);
    int rc = MQTTAsync_send(c->client, d->topic, (int)len, payload, r->o->qos, 0, &ro);
    if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
        atomic_fetch_sub(&c->inflight, 1);
        return false;
    }
    uint64_t late = now > d->due_ns ? now - d->due_ns : 0;
    r->late_max_ns = late > r->late_max_ns ? late : r->late_max_ns;
    r->late_last_ns = late > r->late_last_ns ? late : r->late_last_ns;
    r->scheduled[d->kind]++;
    r->cur_window = d->window;
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_fetch_sub(&c->inflight, 1);
        atomic_fetch_add(&r->failed, 1);
        KT_LOG(KT_LOG_DEBUG, "SIM-PUBLISH-FAILED", "site=%u topic=%s rc=%d", c->site, d->topic, rc);
        return true;
    }
    d->last_pub_ns = now;
    if (!d->awaiting && d->kind == SIM_KIND_BATTERY) {
        r->n_awaiting++;
    }
    d->awaiting = true;
    return true;
}

static void enter_draining(run *r);

static void on_conn_tick(uv_timer_t *t)
{
    conn *c = t->data;
    run *r = c->r;
    if (r->ph != PH_RUNNING) {
        return;
    }
    uint64_t now = kt_clock_mono_ns();
    refresh_ts(r);
    unsigned done = 0;
    while (c->n_heap > 0 && c->heap[0]->due_ns <= now) {
        if (atomic_load(&c->inflight) >= r->o->max_inflight || done >= TICK_BATCH) {
            uv_timer_start(&c->timer, on_conn_tick, done >= TICK_BATCH ? 0 : 1, 0);
            return;
        }
        dev *d = heap_pop(c);
        /* The time of this send (a batch takes a while): lateness and round trips start here. */
        if (!publish(r, c, d, kt_clock_mono_ns())) {
            heap_push(c, d);
            uv_timer_start(&c->timer, on_conn_tick, 1, 0);
            return;
        }
        done++;
        if (dev_advance(r, d)) {
            heap_push(c, d);
        } else {
            r->n_active--;
        }
    }
    if (c->n_heap > 0) {
        uint64_t wait_ns = c->heap[0]->due_ns - now;
        uv_timer_start(&c->timer, on_conn_tick, (wait_ns + NS_PER_MS - 1) / NS_PER_MS, 0);
    } else if (r->n_active == 0) {
        enter_draining(r);
    }
}

/* ---- loop: stats ------------------------------------------------------------------- */

static void write_stats(run *r, bool final)
{
    if (r->stats == NULL) {
        return;
    }
    uint64_t now = kt_clock_mono_ns();
    double q[3];
    rtt_percentiles(r, q);
    double t = r->start_ns != 0 ? (double)(now - r->start_ns) / 1e9 : 0.0;
    unsigned window = r->ph == PH_RUNNING ? r->cur_window : SIM_WINDOWS;
    uint64_t inflight = 0;
    for (size_t i = 0; i < r->n_conns; i++) {
        inflight += atomic_load(&r->conns[i].inflight);
    }
    char line[4096];
    size_t len = 0;
    int n = snprintf(line, sizeof line, "{\"t\":%.3f,\"window\":%u,\"published\":{", t, window);
    len += n > 0 ? (size_t)n : 0;
    for (int k = 0; k < SIM_KIND_COUNT && len < sizeof line; k++) {
        n = snprintf(line + len, sizeof line - len, "%s\"%s\":%" PRIu64, k == 0 ? "" : ",",
                     sim_kind_iface((sim_kind)k), (uint64_t)atomic_load(&r->published[k]));
        len += n > 0 ? (size_t)n : 0;
    }
    if (len < sizeof line) {
        n = snprintf(line + len, sizeof line - len, "},\"scheduled\":{");
        len += n > 0 ? (size_t)n : 0;
    }
    for (int k = 0; k < SIM_KIND_COUNT && len < sizeof line; k++) {
        n = snprintf(line + len, sizeof line - len, "%s\"%s\":%" PRIu64, k == 0 ? "" : ",",
                     sim_kind_iface((sim_kind)k), r->scheduled[k]);
        len += n > 0 ? (size_t)n : 0;
    }
    if (len < sizeof line) {
        n = snprintf(line + len, sizeof line - len,
                     "},\"failed\":%" PRIu64 ",\"inflight\":%" PRIu64
                     ",\"late_ms_max\":%.3f,\"late_ms_last\":%.3f,\"virtual\":%" PRIu64
                     ",\"rtt_ms\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f}",
                     (uint64_t)atomic_load(&r->failed), inflight, (double)r->late_max_ns / 1e6,
                     (double)r->late_last_ns / 1e6, r->virtual_rx, r->n_rtt, q[0], q[1], q[2]);
        len += n > 0 ? (size_t)n : 0;
    }
    if (final && len < sizeof line) {
        n = snprintf(line + len, sizeof line - len,
                     ",\"final\":true,\"elapsed_s\":%.3f,\"unmatched\":%" PRIu64
                     ",\"dropped\":%" PRIu64 ",\"interrupted\":%s",
                     t, r->unmatched, (uint64_t)atomic_load(&r->dropped),
                     r->interrupted ? "true" : "false");
        len += n > 0 ? (size_t)n : 0;
    }
    if (len + 3 > sizeof line) {
        KT_LOG(KT_LOG_ERR, "SIM-STATS-LINE", "line over %zu bytes", sizeof line);
        return;
    }
    line[len++] = '}';
    line[len++] = '\n';
    r->late_last_ns = 0;
    if (fwrite(line, 1, len, r->stats) != len || fflush(r->stats) != 0) {
        KT_LOG(KT_LOG_ERR, "SIM-STATS-WRITE", "path=%s", r->o->stats_path);
    }
}

static void on_stats(uv_timer_t *t)
{
    run *r = t->data;
    if (r->ph == PH_RUNNING || r->ph == PH_DRAINING) {
        write_stats(r, false);
    }
}

/* ---- loop: phases ------------------------------------------------------------------ */

static bool all_completed(run *r)
{
    for (size_t i = 0; i < r->n_conns; i++) {
        if (atomic_load(&r->conns[i].inflight) != 0) {
            return false;
        }
    }
    return true;
}

/* Only batteries get answers (the battery service's virtual event). */
static bool replies_pending(const run *r)
{
    /* Nobody answered at all (no service running): do not wait for replies. */
    return r->virtual_rx != 0 && r->n_awaiting != 0;
}

static void on_phase(uv_timer_t *t)
{
    run *r = t->data;
    uint64_t now = kt_clock_mono_ns();
    if (r->ph == PH_CONNECTING) {
        if (now >= r->connect_deadline_ns) {
            for (size_t i = 0; i < r->n_conns; i++) {
                conn *c = &r->conns[i];
                if (!c->connected || (c->subscribes && !c->subscribed)) {
                    char what[512];
                    snprintf(what, sizeof what, "site-%u broker %s: not %s within %.1f s", c->site,
                             broker_of(r, c), c->connected ? "subscribed" : "connected",
                             r->o->connect_timeout_s);
                    run_fail(r, KT_ETIMEDOUT, what);
                    return;
                }
            }
        }
        return;
    }
    if (r->ph == PH_DRAINING) {
        bool waited_out = now - r->drain_start_ns >= (uint64_t)(r->o->drain_s * 1e9);
        if (waited_out || (all_completed(r) && !replies_pending(r))) {
            finish(r);
        }
    }
}

static void enter_draining(run *r)
{
    if (r->ph != PH_RUNNING) {
        return;
    }
    r->ph = PH_DRAINING;
    r->drain_start_ns = kt_clock_mono_ns();
    for (size_t i = 0; i < r->n_conns; i++) {
        uv_timer_stop(&r->conns[i].timer);
    }
    uv_timer_start(&r->phase_timer, on_phase, 0, DRAIN_CHECK_MS);
}

static void start_running(run *r)
{
    r->ph = PH_RUNNING;
    r->start_ns = kt_clock_mono_ns();
    r->stop_ns =
        r->o->duration_s > 0 ? r->start_ns + (uint64_t)(r->o->duration_s * 1e9) : UINT64_MAX;
    uv_timer_stop(&r->phase_timer);
    /* Devices are dealt round-robin to their site's connections. */
    r->n_active = 0;
    for (size_t i = 0; i < r->n_devs; i++) {
        dev *d = &r->devs[i];
        if (dev_advance(r, d)) {
            r->n_active++;
            heap_push(conn_for(r, d->site, i), d);
        }
    }
    KT_LOG(KT_LOG_INFO, "SIM-DEVICES-START", "devices=%zu connections=%zu compress=%g qos=%d",
           r->n_devs, r->n_conns, r->o->compress, r->o->qos);
    uv_timer_start(&r->stats_timer, on_stats, STATS_MS, STATS_MS);
    for (size_t i = 0; i < r->n_conns; i++) {
        uv_timer_start(&r->conns[i].timer, on_conn_tick, 0, 0);
    }
    if (r->n_active == 0) {
        enter_draining(r);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    run *r = h->data;
    r->handles_open--;
}

static void on_inbox_closed(kt_inbox *inbox, void *user)
{
    (void)inbox;
    run *r = user;
    r->handles_open--;
}

static void close_handle(run *r, uv_handle_t *h)
{
    h->data = r;
    uv_close(h, on_handle_closed);
}

/* Stop everything: final line, paho first (its threads stop), then the inbox and handles. */
static void finish(run *r)
{
    if (r->ph == PH_DONE) {
        return;
    }
    bool ran = r->ph == PH_RUNNING || r->ph == PH_DRAINING;
    r->ph = PH_DONE;
    for (size_t i = 0; i < r->n_conns; i++) {
        conn *c = &r->conns[i];
        if (c->client != NULL) {
            if (MQTTAsync_isConnected(c->client)) {
                MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
                d.timeout = 0;
                (void)MQTTAsync_disconnect(c->client, &d);
            }
            MQTTAsync_destroy(&c->client);
            c->client = NULL;
        }
    }
    if (ran) {
        write_stats(r, true);
    }
    for (size_t i = 0; i < r->n_conns; i++) {
        close_handle(r, (uv_handle_t *)&r->conns[i].timer);
        close_handle(r, (uv_handle_t *)&r->conns[i].retry);
    }
    close_handle(r, (uv_handle_t *)&r->stats_timer);
    close_handle(r, (uv_handle_t *)&r->phase_timer);
    close_handle(r, (uv_handle_t *)&r->sigint);
    close_handle(r, (uv_handle_t *)&r->sigterm);
    kt_inbox_close(&r->inbox, on_inbox_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
    run *r = s->data;
    KT_LOG(KT_LOG_NOTICE, "SIM-SIGNAL", "signal=%d phase=%d", signum, (int)r->ph);
    r->interrupted = 1;
    if (r->ph == PH_RUNNING) {
        r->n_active = 0;
        enter_draining(r);
    } else if (r->ph == PH_CONNECTING) {
        run_fail(r, KT_ECLOSED, "interrupted while connecting");
    } else {
        finish(r);
    }
}

/* ---- loop: notes -------------------------------------------------------------------- */

static void on_note(kt_inbox_msg *m, void *user)
{
    run *r = user;
    note *n = KT_INBOX_ENTRY(m, note, link);
    conn *c = n->c;
    switch (n->kind) {
    case N_RX:
        rx_virtual(r, n);
        break;
    case N_CONNECTED:
        c->connecting = false;
        c->connected = true;
        KT_LOG(KT_LOG_INFO, "SIM-CONNECTED", "site=%u conn=%u url=%s", c->site, c->idx,
               broker_of(r, c));
        if (c->subscribes && r->ph != PH_DONE) {
            c->subscribed = false;
            subscribe(c); /* again after a reconnect: the session is clean */
        }
        check_all_ready(r);
        break;
    case N_CONNECT_FAILED:
        c->connecting = false;
        if (r->ph == PH_CONNECTING) {
            KT_LOG(KT_LOG_DEBUG, "SIM-CONNECT-RETRY", "site=%u url=%s code=%d", c->site,
                   broker_of(r, c), n->code);
            uv_timer_start(&c->retry, on_retry, 200, 0);
        }
        break;
    case N_LOST:
        c->connected = false;
        KT_LOG(KT_LOG_WARN, "SIM-CONNECTION-LOST", "site=%u conn=%u url=%s", c->site, c->idx,
               broker_of(r, c));
        break;
    case N_SUBSCRIBED:
        c->subscribed = true;
        check_all_ready(r);
        break;
    case N_SUB_FAILED:
        KT_LOG(KT_LOG_WARN, "SIM-SUBSCRIBE-FAILED", "site=%u code=%d", c->site, n->code);
        if (r->ph == PH_CONNECTING) {
            subscribe(c);
        }
        break;
    }
    kt_free(n);
}

static void on_note_free(kt_inbox_msg *m, void *user)
{
    (void)user;
    kt_free(KT_INBOX_ENTRY(m, note, link));
}

/* ---- set-up ------------------------------------------------------------------------- */

void sim_devices_opts_init(sim_devices_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_sites = 1;
    o->compress = 1.0;
    o->qos = 1;
    o->conns_per_site = 1;
    o->max_inflight = 200; /* paho searches its lists linearly: bigger windows were slower */
    o->connect_timeout_s = 15.0;
    o->drain_s = 5.0;
    o->only_site = -1;
}

static kt_status check_opts(const sim_devices_opts *o, kt_err *err)
{
    if (o->n_neighborhoods < 1 || o->n_neighborhoods > SIM_CITY_MAX_NEIGHBORHOODS) {
        return kt_err_set(err, KT_EINVAL, "neighborhoods %u: want 1..%u", o->n_neighborhoods,
                          SIM_CITY_MAX_NEIGHBORHOODS);
    }
    if (o->n_sites < 1 || o->n_sites > SIM_DEVICES_MAX_SITES) {
        return kt_err_set(err, KT_EINVAL, "sites %u: want 1..%u", o->n_sites,
                          SIM_DEVICES_MAX_SITES);
    }
    if (o->brokers == NULL) {
        return kt_err_set(err, KT_EINVAL, "no broker URLs");
    }
    for (unsigned s = 0; s < o->n_sites; s++) {
        if (o->only_site >= 0 && s != (unsigned)o->only_site) {
            continue;
        }
        if (o->brokers[s] == NULL || o->brokers[s][0] == '\0') {
            return kt_err_set(err, KT_EINVAL, "no broker for site-%u", s);
        }
    }
    if (!(o->compress > 0) || o->compress > 1e6) {
        return kt_err_set(err, KT_EINVAL, "compress %g: want > 0", o->compress);
    }
    if (o->qos != 0 && o->qos != 1) {
        return kt_err_set(err, KT_EINVAL, "qos %d: want 0 or 1", o->qos);
    }
    if (o->duration_s < 0 || o->drain_s < 0 || !(o->connect_timeout_s > 0)) {
        return kt_err_set(err, KT_EINVAL, "negative duration, drain or connect timeout");
    }
    if (o->spread_s < 0 || o->spread_s > SIM_WINDOW_MS / 1000u) {
        return kt_err_set(err, KT_EINVAL, "spread %g s: want 0..%u", o->spread_s,
                          SIM_WINDOW_MS / 1000u);
    }
    if (o->only_site >= 0 && (unsigned)o->only_site >= o->n_sites) {
        return kt_err_set(err, KT_EINVAL, "only site %d: want 0..%u", o->only_site, o->n_sites - 1);
    }
    if (o->conns_per_site < 1 || o->conns_per_site > 64 || o->max_inflight < 1 ||
        o->max_inflight > 65535) {
        return kt_err_set(err, KT_EINVAL, "connections per site 1..64, in flight 1..65535");
    }
    return KT_OK;
}

/*
 * The start offset in [0, spread_s) model seconds of KTWIN "container" i =
 * (neighborhood, device kind): KTWIN ran one container per kind per
 * neighborhood, whose devices started together while the containers started
 * seconds apart. A hash of i (splitmix64), so runs are repeatable.
 */
static uint32_t spread_offset_ms(const sim_devices_opts *o, size_t i)
{
    uint64_t spread_ms = (uint64_t)(o->spread_s * 1000.0);
    if (spread_ms == 0) {
        return 0;
    }
    uint64_t z = (uint64_t)i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (uint32_t)(z % spread_ms);
}

static void build_devices(run *r)
{
    const sim_devices_opts *o = r->o;
    size_t n_nb = 0;
    for (unsigned k = 1; k <= o->n_neighborhoods; k++) {
        n_nb += runs_here(o, k) ? 1 : 0;
    }
    r->n_devs = n_nb * SIM_DEVICES_PER_NEIGHBORHOOD;
    r->devs = kt_xcalloc(r->n_devs, sizeof *r->devs);
    kt_map_init(&r->by_instance);
    kt_map_reserve(&r->by_instance, r->n_devs);
    size_t di = 0;
    for (unsigned k = 1; k <= o->n_neighborhoods; k++) {
        if (!runs_here(o, k)) {
            continue;
        }
        for (int kind = 0; kind < SIM_KIND_COUNT; kind++) {
            unsigned n = sim_schedule_devices((sim_kind)kind);
            for (unsigned i = 0; i < n; i++, di++) {
                dev *d = &r->devs[di];
                char inst[NAME_CAP], topic[MODEL_TOPIC_CAP];
                sim_city_device_instance(inst, sizeof inst, (sim_kind)kind, k, i);
                kt_status tst = model_topic_build(topic, sizeof topic, MODEL_EVENT_REAL,
                                                  sim_kind_iface((sim_kind)kind), inst, NULL);
                KT_ASSERT(tst == KT_OK);
                size_t len = strlen(topic);
                d->kind = (sim_kind)kind;
                d->site = k % o->n_sites;
                d->offset_ms = spread_offset_ms(o, (size_t)k * SIM_KIND_COUNT + (size_t)kind);
                d->topic = kt_xstrdup(topic);
                d->instance = d->topic + len - strlen(inst);
                void *dup = kt_map_put(&r->by_instance, d->instance, d);
                KT_ASSERT(dup == NULL);
            }
        }
    }
    KT_ASSERT(di == r->n_devs);
}

static kt_status create_conns(run *r, kt_err *err)
{
    const sim_devices_opts *o = r->o;
    r->n_conns = (size_t)(o->only_site < 0 ? o->n_sites : 1) * o->conns_per_site;
    r->conns = kt_xcalloc(r->n_conns, sizeof *r->conns);
    char prefix[64];
    if (o->client_id_prefix != NULL) {
        snprintf(prefix, sizeof prefix, "%s", o->client_id_prefix);
    } else {
        snprintf(prefix, sizeof prefix, "ktwin-sim-%ld", (long)getpid());
    }
    for (size_t i = 0; i < r->n_conns; i++) {
        conn *c = &r->conns[i];
        c->r = r;
        c->site = o->only_site < 0 ? (unsigned)(i / o->conns_per_site) : (unsigned)o->only_site;
        c->idx = (unsigned)(i % o->conns_per_site);
        c->subscribes = c->idx == 0;
        atomic_init(&c->inflight, 0);
        for (int k = 0; k < SIM_KIND_COUNT; k++) {
            c->ctx[k].c = c;
            c->ctx[k].kind = (sim_kind)k;
        }
        uv_timer_init(&r->loop, &c->timer);
        c->timer.data = c;
        uv_timer_init(&r->loop, &c->retry);
        c->retry.data = c;
        r->handles_open += 2;
    }
    MQTTAsync_setTraceCallback(on_trace);
    MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
    /* Every handle exists before anything can fail, so finish() can close them all. */
    for (size_t i = 0; i < r->n_conns; i++) {
        conn *c = &r->conns[i];
        char id[96];
        snprintf(id, sizeof id, "%s-%u-%u", prefix, c->site, c->idx);
        MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
        cro.sendWhileDisconnected = 0;
        /* paho refuses sends past maxBufferedMessages queued commands (default 100),
         * connected or not; our own window is the bound. */
        cro.maxBufferedMessages = (int)o->max_inflight + 16;
        int rc = MQTTAsync_createWithOptions(&c->client, broker_of(r, c), id,
                                             MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
        if (rc != MQTTASYNC_SUCCESS) {
            c->client = NULL;
            return kt_err_set_dep(err, KT_EDEP, "paho", rc, "site-%u broker %s: %s", c->site,
                                  broker_of(r, c), MQTTAsync_strerror(rc));
        }
        rc = MQTTAsync_setCallbacks(c->client, c, on_lost, on_message, NULL);
        if (rc == MQTTASYNC_SUCCESS) {
            rc = MQTTAsync_setConnected(c->client, c, on_connected);
        }
        if (rc != MQTTASYNC_SUCCESS) {
            return kt_err_set_dep(err, KT_EDEP, "paho", rc, "callbacks: %s",
                                  MQTTAsync_strerror(rc));
        }
    }
    for (size_t i = 0; i < r->n_conns; i++) {
        kt_err e = { 0 };
        if (conn_connect(&r->conns[i], &e) != KT_OK) {
            KT_LOG(KT_LOG_WARN, "SIM-CONNECT-FAILED", "site=%u err=\"%s\"", r->conns[i].site,
                   e.msg);
            uv_timer_start(&r->conns[i].retry, on_retry, 500, 0);
        }
    }
    return KT_OK;
}

static void fill_result(run *r, sim_devices_result *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        out->published[k] = atomic_load(&r->published[k]);
        out->scheduled[k] = r->scheduled[k];
    }
    out->failed = atomic_load(&r->failed);
    out->virtual_rx = r->virtual_rx;
    out->unmatched = r->unmatched;
    out->dropped = atomic_load(&r->dropped);
    double q[3];
    rtt_percentiles(r, q);
    out->rtt_n = r->n_rtt;
    out->rtt_p50_ms = q[0];
    out->rtt_p90_ms = q[1];
    out->rtt_p99_ms = q[2];
    out->late_ms_max = (double)r->late_max_ns / 1e6;
    out->elapsed_s = r->start_ns != 0 ? (double)(kt_clock_mono_ns() - r->start_ns) / 1e9 : 0.0;
    out->interrupted = r->interrupted;
}

kt_status sim_devices_run(const sim_devices_opts *o, sim_devices_result *out, kt_err *err)
{
    kt_status st = check_opts(o, err);
    if (st != KT_OK) {
        return st;
    }
    run *r = kt_xcalloc(1, sizeof *r);
    r->o = o;
    r->err = err;
    r->ph = PH_CONNECTING;
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        atomic_init(&r->published[k], 0);
    }
    atomic_init(&r->failed, 0);
    atomic_init(&r->dropped, 0);
    int uvrc = uv_loop_init(&r->loop);
    if (uvrc != 0) {
        kt_free(r);
        return kt_err_set_dep(err, KT_EDEP, "libuv", uvrc, "uv_loop_init: %s", uv_strerror(uvrc));
    }
    if (o->stats_path != NULL) {
        r->stats = fopen(o->stats_path, "w");
        if (r->stats == NULL) {
            st = kt_err_set_errno(err, KT_EIO, errno, "open stats file %s", o->stats_path);
            (void)uv_loop_close(&r->loop);
            kt_free(r);
            return st;
        }
    }
    st = kt_inbox_init(&r->inbox, &r->loop, INBOX_DEPTH, on_note, on_note_free, r, err);
    if (st != KT_OK) {
        goto out;
    }
    r->handles_open = 1;
    uv_timer_init(&r->loop, &r->stats_timer);
    r->stats_timer.data = r;
    uv_timer_init(&r->loop, &r->phase_timer);
    r->phase_timer.data = r;
    uv_signal_init(&r->loop, &r->sigint);
    r->sigint.data = r;
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigterm.data = r;
    r->handles_open += 4;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    build_devices(r);
    r->connect_deadline_ns = kt_clock_mono_ns() + (uint64_t)(o->connect_timeout_s * 1e9);
    uv_timer_start(&r->phase_timer, on_phase, 50, 50);
    st = create_conns(r, err);
    if (st != KT_OK) {
        r->st = st;
        finish(r);
    }
    (void)uv_run(&r->loop, UV_RUN_DEFAULT);
    KT_ASSERT(r->handles_open == 0);
    st = r->st;
out:
    if (out != NULL) {
        fill_result(r, out);
    }
    if (uv_loop_close(&r->loop) != 0) {
        KT_LOG(KT_LOG_ERR, "SIM-LOOP-BUSY", "handles left open at the end of the run");
    }
    if (r->stats != NULL && fclose(r->stats) != 0 && st == KT_OK) {
        st = kt_err_set_errno(err, KT_EIO, errno, "close stats file %s", o->stats_path);
    }
    for (size_t i = 0; i < r->n_devs; i++) {
        kt_free(r->devs[i].topic);
    }
    for (size_t i = 0; i < r->n_conns; i++) {
        kt_free(r->conns[i].heap);
    }
    kt_map_fini(&r->by_instance);
    kt_free(r->devs);
    kt_free(r->conns);
    kt_free(r->rtt_us);
    kt_free(r);
    return st;
}
