/*
 * agent/uplink.c — WebSocket link to the hub driving sync_client over the
 * agent cache.
 *
 * Invariants: at most one connection exists (u->conn); after agent_uplink_stop
 * no new connection or timer is started; every sync_client_on_open is paired
 * with one sync_client_on_close (from the conn's on_close, which kt_net calls
 * exactly once per conn). Contracts: see uplink.h.
 *
 * DESIGN: the retry delay is chosen when a connection ends, not when it
 * starts, so the reason (Reject BUSY with retry_after_ms, UNAUTHENTICATED,
 * plain loss) is known. Store ops time themselves against the monotonic
 * clock so ktwin_agent_last_commit_ms reports cache time only, not the time
 * chunks spend on the wire.
 *
 * Thread: loop only.
 */
#define KT_LOG_MOD "uplink"
#include "uplink.h"

#include <string.h>

#include "kt/clock.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "outbox.h"
#include "store.h"
#include "sync/backoff.h"
#include "sync/client.h"
#include "sync/msg.h"

/* A welcomed session this long is healthy even without commits (UP_TO_DATE, idle). */
#define HEALTHY_SESSION_MS 10000u
/* Events per upstream batch by default (sync_client caps it at limits.max_events). */
#define UP_BATCH_EVENTS 10000u

struct agent_uplink {
    char *site;
    char *token;
    char *url;
    char *ca_file;
    uint32_t connect_timeout_ms;
    size_t max_message_bytes;
    kt_net *net;
    agent_cache *cache;
    kt_metrics *metrics;
    sync_client *sc;
    sync_backoff backoff;
    uint32_t reconnect_cap_ms;
    kt_ws_conn *conn;
    uv_timer_t retry_timer;
    uv_timer_t tick_timer;
    uv_timer_t pump_timer; /* the next upstream batch, one per loop turn */
    int timers_live;
    int stopping;
    int got_reject;
    int was_open;
    /* When the current session was welcomed, and the store commits made by then. */
    uint64_t welcome_ms;
    uint64_t commits_at_welcome;
    agent_store store;    /* the sync_client's user: cache ops + this transport */
    agent_outbox *outbox; /* upstream events, or NULL */
    /* Downstream events go to the dispatcher through these (NULL = off). */
    uint64_t (*down_applied_seq)(void *down_user);
    kt_status (*down_apply)(uint64_t, const sync_event *, size_t, kt_err *, void *);
    void *down_user;
    kt_arena up_arena; /* the last up_next batch: copies, valid until the next call */
    sync_event *up_events;
    size_t up_cap;
    kt_metric *m_connected, *m_reconnects, *m_sync_errors;
};

static void connect_now(agent_uplink *u);

/* ---- metrics ---------------------------------------------------------------- */

static void register_metrics(agent_uplink *u)
{
    kt_metrics *r = u->metrics;
    if (r == NULL) {
        return;
    }
    kt_err err = { 0 };
    kt_metrics_gauge(&u->m_connected, r, "ktwin_agent_connected",
                     "1 while the hub link is up and welcomed", NULL, &err);
    kt_metrics_counter(&u->m_reconnects, r, "ktwin_agent_reconnects_total",
                       "Connection attempts after the first", NULL, &err);
    kt_metrics_counter(&u->m_sync_errors, r, "ktwin_agent_sync_errors_total",
                       "Hub links closed for a protocol, store or timeout error", NULL, &err);
    if (err.status != KT_OK) {
        KT_LOG(KT_LOG_ERR, "UPLINK-METRICS", "err=\"%s\"", err.msg);
    }
}

static void count_reject(agent_uplink *u, sync_reject_code code)
{
    if (u->metrics == NULL) {
        return;
    }
    const char *labels[] = { "code", sync_msg_reject_str(code), NULL };
    kt_metric *m = NULL;
    kt_err err = { 0 };
    if (kt_metrics_counter(&m, u->metrics, "ktwin_agent_rejects_total",
                           "Rejects received from the hub by code", labels, &err) == KT_OK) {
        kt_metrics_inc(m);
    }
}

/* ---- transport for the store ------------------------------------------------------ */

static kt_status transport_send(const uint8_t *buf, size_t len, void *user)
{
    agent_uplink *u = user;
    if (u->conn == NULL) {
        return KT_ECLOSED;
    }
    return kt_ws_conn_send(u->conn, buf, len);
}

static uint64_t commits_so_far(const agent_uplink *u)
{
    const sync_client_stats *st = sync_client_stats_get(u->sc);
    return st->snapshots_committed + st->deltas_applied + st->placements_applied;
}

static void transport_on_welcome(const sync_welcome *w, void *user)
{
    agent_uplink *u = user;
    /* The backoff restarts only once this session proved healthy (see on_ws_close). */
    u->welcome_ms = kt_clock_mono_ms();
    u->commits_at_welcome = commits_so_far(u);
    kt_metrics_set(u->m_connected, 1);
    KT_LOG(KT_LOG_INFO, "UPLINK-WELCOME",
           "hub=%s mode=%s hub_revision=%llu cache_revision=%llu heartbeat_ms=%u", w->hub_id,
           sync_msg_mode_str(w->mode), (unsigned long long)w->graph_revision,
           (unsigned long long)agent_cache_graph_revision(u->cache), w->heartbeat_ms);
}

/* ---- timers --------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t);

static void schedule_tick(agent_uplink *u)
{
    if (u->stopping || !u->timers_live) {
        return;
    }
    uint64_t next = sync_client_next_tick_ms(u->sc);
    if (next == UINT64_MAX) {
        uv_timer_stop(&u->tick_timer);
        return;
    }
    uint64_t now = kt_clock_mono_ms();
    uv_timer_start(&u->tick_timer, on_tick, next > now ? next - now : 0, 0);
}

static void fail_link(agent_uplink *u, kt_status st, const kt_err *err)
{
    KT_LOG(KT_LOG_WARN, "UPLINK-SYNC-ERR", "status=%s err=\"%s\" state=%s", kt_status_str(st),
           err->msg, sync_client_state_str(sync_client_state_get(u->sc)));
    kt_metrics_inc(u->m_sync_errors);
    if (u->conn != NULL) {
        kt_ws_conn_close(u->conn, st == KT_EPROTO || st == KT_ETOOBIG ? 1002 : 1011,
                         kt_status_str(st));
    }
}

/*
 * One upstream batch per loop turn (sync_client one_batch_per_call): after an
 * outage the window holds megabytes of events, and encoding all of them in
 * one callback held the loop (and the site's device events) for ~100 ms.
 */
static void on_pump(uv_timer_t *t);

static void schedule_pump(agent_uplink *u)
{
    if (!u->stopping && u->timers_live && sync_client_up_more(u->sc)) {
        uv_timer_start(&u->pump_timer, on_pump, 0, 0);
    }
}

/* Send what the window allows (one batch), then schedule the next turn's. */
static void pump_now(agent_uplink *u)
{
    kt_err err = { 0 };
    kt_status st = sync_client_kick(u->sc, &err);
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_pump(u);
}

static void on_pump(uv_timer_t *t)
{
    pump_now(t->data);
}

static void on_tick(uv_timer_t *t)
{
    agent_uplink *u = t->data;
    kt_err err = { 0 };
    kt_status st = sync_client_tick(u->sc, &err);
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_tick(u);
}

static void on_retry(uv_timer_t *t)
{
    agent_uplink *u = t->data;
    kt_metrics_inc(u->m_reconnects);
    connect_now(u);
}

static void schedule_retry(agent_uplink *u)
{
    if (u->stopping) {
        return;
    }
    uint32_t delay = sync_backoff_next(&u->backoff);
    if (u->got_reject) {
        sync_reject_code code = sync_client_last_reject_code(u->sc);
        uint32_t after = sync_client_last_retry_after_ms(u->sc);
        if (code == SYNC_REJECT_BUSY && after > delay) {
            delay = after;
        } else if (code == SYNC_REJECT_UNAUTHENTICATED || code == SYNC_REJECT_VERSION) {
            /* Retrying fast cannot help: wait the longest delay. */
            delay = u->reconnect_cap_ms;
        }
    }
    u->got_reject = 0;
    KT_LOG(KT_LOG_INFO, "UPLINK-RETRY", "in_ms=%u attempt=%u", delay,
           sync_backoff_attempt(&u->backoff));
    uv_timer_start(&u->retry_timer, on_retry, delay, 0);
}

/* ---- WebSocket callbacks ---------------------------------------------------------- */

static void on_ws_open(kt_ws_conn *c, void *user)
{
    agent_uplink *u = user;
    (void)c;
    u->was_open = 1;
    KT_LOG(KT_LOG_INFO, "UPLINK-CONNECT", "url=%s site=%s graph_revision=%llu", u->url, u->site,
           (unsigned long long)agent_cache_graph_revision(u->cache));
    kt_err err = { 0 };
    kt_status st = sync_client_on_open(u->sc, &err);
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_tick(u);
}

/* A big message still arriving on a slow link: the hub is not silent. */
static void on_ws_progress(kt_ws_conn *c, size_t so_far, void *user)
{
    agent_uplink *u = user;
    (void)c;
    (void)so_far;
    sync_client_note_rx(u->sc);
}

static void on_ws_message(kt_ws_conn *c, const uint8_t *data, size_t len, void *user)
{
    agent_uplink *u = user;
    (void)c;
    kt_err err = { 0 };
    kt_status st = sync_client_on_message(u->sc, data, len, &err);
    if (st == KT_ECLOSED) {
        sync_reject_code code = sync_client_last_reject_code(u->sc);
        u->got_reject = 1;
        count_reject(u, code);
        KT_LOG(KT_LOG_WARN, "UPLINK-REJECT", "code=%s retry_after_ms=%u err=\"%s\"",
               sync_msg_reject_str(code), sync_client_last_retry_after_ms(u->sc), err.msg);
        if (u->conn != NULL) {
            kt_ws_conn_close(u->conn, 1000, "rejected");
        }
        return;
    }
    if (st != KT_OK) {
        fail_link(u, st, &err);
        return;
    }
    schedule_pump(u);
    schedule_tick(u);
}

static void on_ws_close(kt_ws_conn *c, int code, const char *reason, void *user)
{
    agent_uplink *u = user;
    (void)c;
    u->conn = NULL;
    int was_welcomed = sync_client_welcomed(u->sc);
    /*
     * A Welcome alone does not restart the backoff: a hub that welcomes and
     * then fails every session would otherwise be hammered at base_ms. The
     * session counts as healthy when it committed something or lasted
     * HEALTHY_SESSION_MS.
     */
    if (was_welcomed && (commits_so_far(u) > u->commits_at_welcome ||
                         kt_clock_mono_ms() - u->welcome_ms >= HEALTHY_SESSION_MS)) {
        sync_backoff_reset(&u->backoff);
    }
    sync_client_on_close(u->sc);
    kt_metrics_set(u->m_connected, 0);
    if (u->timers_live) {
        uv_timer_stop(&u->tick_timer);
    }
    char q[160];
    if (u->was_open) {
        KT_LOG(was_welcomed ? KT_LOG_WARN : KT_LOG_INFO, "UPLINK-CONN-LOST",
               "url=%s code=%d reason=%s", u->url, code, kt_log_quote(q, sizeof q, reason));
    } else {
        KT_LOG(KT_LOG_INFO, "UPLINK-CONNECT-FAIL", "url=%s code=%d reason=%s", u->url, code,
               kt_log_quote(q, sizeof q, reason));
    }
    u->was_open = 0;
    schedule_retry(u);
}

static void connect_now(agent_uplink *u)
{
    if (u->stopping || u->conn != NULL) {
        return;
    }
    kt_ws_client_opts o;
    memset(&o, 0, sizeof o);
    o.url = u->url;
    o.subprotocol = SYNC_WS_SUBPROTOCOL;
    o.tls_ca_file = u->ca_file;
    o.connect_timeout_s = (u->connect_timeout_ms + 999u) / 1000u;
    o.ws.max_message_bytes = u->max_message_bytes;
    o.ws.binary_only = true; /* sync.proto: every message is one binary Envelope */
    o.ws.on_open = on_ws_open;
    o.ws.on_message = on_ws_message;
    o.ws.on_progress = on_ws_progress;
    o.ws.on_close = on_ws_close;
    o.ws.user = u;
    u->was_open = 0;
    kt_err err = { 0 };
    kt_status st = kt_ws_client_new(&u->conn, u->net, &o, &err);
    if (st != KT_OK) {
        u->conn = NULL;
        KT_LOG(KT_LOG_ERR, "UPLINK-CONNECT-FAIL", "url=%s err=\"%s\"", u->url, err.msg);
        schedule_retry(u);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* ---- event streams: the outbox upstream, the dispatcher downstream --------- */

/* The ops get the agent_store; its transport_user is the uplink. */
static agent_uplink *uplink_of(void *user)
{
    return ((agent_store *)user)->transport_user;
}

static const char *op_up_incarnation(void *user)
{
    return agent_outbox_incarnation(uplink_of(user)->outbox);
}

static uint64_t op_up_acked_seq(void *user)
{
    return agent_outbox_acked_seq(uplink_of(user)->outbox);
}

typedef struct up_collect {
    agent_uplink *u;
    uint64_t next_seq; /* the seq the next row must have: the batch has no gaps */
    size_t n;
} up_collect;

static char *arena_dup(kt_arena *a, const char *s)
{
    return s != NULL ? kt_arena_strdup(a, s) : NULL;
}

/* Copy one peeked row: peek's pointers live only for the callback. */
static bool up_collect_cb(uint64_t seq, const sync_event *ev, void *user)
{
    up_collect *c = user;
    agent_uplink *u = c->u;
    if (seq != c->next_seq) {
        return false;
    }
    if (c->n == u->up_cap) {
        u->up_cap = u->up_cap != 0 ? u->up_cap * 2 : 64;
        u->up_events = kt_xrealloc(u->up_events, u->up_cap * sizeof *u->up_events);
    }
    sync_event *e = &u->up_events[c->n++];
    *e = *ev;
    e->id = arena_dup(&u->up_arena, ev->id);
    e->type = arena_dup(&u->up_arena, ev->type);
    e->source = arena_dup(&u->up_arena, ev->source);
    e->subject = arena_dup(&u->up_arena, ev->subject);
    e->datacontenttype = arena_dup(&u->up_arena, ev->datacontenttype);
    uint8_t *data = kt_arena_alloc(&u->up_arena, ev->data_len + 1);
    if (ev->data_len > 0) {
        memcpy(data, ev->data, ev->data_len);
    }
    data[ev->data_len] = 0;
    e->data = data;
    c->next_seq++;
    return true;
}

static kt_status op_up_next(const sync_event **events_out,
                            size_t *n_out,
                            uint64_t from_seq,
                            size_t max_events,
                            size_t max_bytes,
                            kt_err *err,
                            void *user)
{
    agent_uplink *u = uplink_of(user);
    kt_arena_reset(&u->up_arena);
    /*
     * While batches are in flight (sent: below from_seq; acked: up to the
     * outbox's acked seq), wait for a quarter of the window to be free
     * rather than filling a sliver of it: each ack would otherwise split the
     * window into ever smaller batches (a long drain degraded to a few
     * events per batch, one hub commit each). An ack comes, and pumps again.
     */
    if (from_seq > agent_outbox_acked_seq(u->outbox) + 1 &&
        max_bytes < sync_client_window_bytes(u->sc) / 4) {
        *events_out = u->up_events;
        *n_out = 0;
        return KT_OK;
    }
    up_collect c = { u, from_seq, 0 };
    size_t n = 0;
    kt_status st =
        agent_outbox_peek(u->outbox, from_seq, max_events, max_bytes, up_collect_cb, &c, &n, err);
    if (st != KT_OK) {
        return st;
    }
    *events_out = u->up_events;
    *n_out = c.n;
    return KT_OK;
}

static kt_status op_up_acked(uint64_t seq, kt_err *err, void *user)
{
    return agent_outbox_ack(uplink_of(user)->outbox, seq, err);
}

static uint64_t op_down_applied_seq(void *user)
{
    agent_uplink *u = uplink_of(user);
    return u->down_applied_seq(u->down_user);
}

static kt_status
op_down_apply(uint64_t first_seq, const sync_event *events, size_t n, kt_err *err, void *user)
{
    agent_uplink *u = uplink_of(user);
    return u->down_apply(first_seq, events, n, err, u->down_user);
}

/* The outbox committed new events: send what the window allows. */
static void on_outbox_kick(agent_outbox *ob, void *user)
{
    (void)ob;
    pump_now(user);
}

kt_status agent_uplink_new(agent_uplink **out, const agent_uplink_opts *opts, kt_err *err)
{
    *out = NULL;
    if (opts->site == NULL || opts->token == NULL || opts->hub_url == NULL || opts->net == NULL ||
        opts->cache == NULL) {
        return kt_err_set(err, KT_EINVAL,
                          "uplink: site, token, hub_url, net and cache are required");
    }
    agent_uplink *u = kt_xcalloc(1, sizeof *u);
    u->site = kt_xstrdup(opts->site);
    u->token = kt_xstrdup(opts->token);
    u->url = kt_xstrdup(opts->hub_url);
    u->ca_file = opts->ca_file != NULL ? kt_xstrdup(opts->ca_file) : NULL;
    u->connect_timeout_ms = opts->connect_timeout_ms != 0 ? opts->connect_timeout_ms : 10000;
    u->max_message_bytes =
        opts->max_message_bytes != 0 ? opts->max_message_bytes : (size_t)16 * 1024 * 1024;
    u->net = opts->net;
    u->cache = opts->cache;
    u->metrics = opts->metrics;
    sync_backoff_opts bo = { opts->reconnect_base_ms, opts->reconnect_cap_ms, NULL, NULL };
    sync_backoff_init(&u->backoff, &bo);
    u->reconnect_cap_ms = opts->reconnect_cap_ms != 0 ? opts->reconnect_cap_ms : 30000;

    sync_capacity cap = { true, opts->cpu_millis, true, opts->memory_bytes };
    sync_client_opts so;
    memset(&so, 0, sizeof so);
    so.site = u->site;
    so.token = u->token;
    so.agent_version = "ktwin-agent/0.1.0";
    so.capacity = &cap;
    so.limits.max_message_bytes = u->max_message_bytes;
    so.limits.max_objects = 1000000;
    /*
     * Drain in big batches: the hub commits each batch that arrives in a loop
     * turn in one transaction, and a drain sends one batch per hub turn, so a
     * batch of 1,000 meant a commit (WAL pages of 3 b-trees) per 1,000 events.
     * 10,000 is the protocol's default cap per EventBatch (the message and
     * window caps still apply); live traffic is batched by what is queued.
     */
    so.max_batch_events = opts->batch_events != 0 ? opts->batch_events : UP_BATCH_EVENTS;
    so.one_batch_per_call = true; /* the rest from later loop turns (schedule_pump) */
    agent_store_init(&u->store, u->cache, u->metrics, transport_send, transport_on_welcome, u);
    sync_client_ops ops;
    agent_store_client_ops(&ops);
    u->outbox = opts->outbox;
    u->down_applied_seq = opts->down_applied_seq;
    u->down_apply = opts->down_apply;
    u->down_user = opts->down_user;
    kt_arena_init(&u->up_arena, 64 * 1024);
    if (u->outbox != NULL) {
        ops.up_incarnation = op_up_incarnation;
        ops.up_acked_seq = op_up_acked_seq;
        ops.up_next = op_up_next;
        ops.up_acked = op_up_acked;
    }
    if (u->down_apply != NULL && u->down_applied_seq != NULL) {
        ops.down_applied_seq = op_down_applied_seq;
        ops.down_apply = op_down_apply;
    }
    kt_status st = sync_client_new(&u->sc, &so, &ops, &u->store, err);
    if (st != KT_OK) {
        kt_arena_fini(&u->up_arena);
        kt_free(u->site);
        kt_free(u->token);
        kt_free(u->url);
        kt_free(u->ca_file);
        kt_free(u);
        return st;
    }
    uv_loop_t *loop = kt_net_loop(u->net);
    uv_timer_init(loop, &u->retry_timer);
    uv_timer_init(loop, &u->tick_timer);
    uv_timer_init(loop, &u->pump_timer);
    u->retry_timer.data = u;
    u->tick_timer.data = u;
    u->pump_timer.data = u;
    u->timers_live = 1;
    if (u->outbox != NULL) {
        agent_outbox_set_kick(u->outbox, on_outbox_kick, u);
    }
    register_metrics(u);
    *out = u;
    return KT_OK;
}

void agent_uplink_start(agent_uplink *u)
{
    connect_now(u);
}

void agent_uplink_set_capacity(agent_uplink *u, uint32_t cpu_millis, uint64_t memory_bytes)
{
    sync_capacity cap = { true, cpu_millis, true, memory_bytes };
    kt_err err = { 0 };
    kt_status st = sync_client_report_capacity(u->sc, &cap, &err);
    KT_LOG(KT_LOG_INFO, "UPLINK-CAPACITY", "cpu_millis=%u memory_bytes=%llu sent=%d", cpu_millis,
           (unsigned long long)memory_bytes, sync_client_welcomed(u->sc) ? 1 : 0);
    if (st != KT_OK) {
        fail_link(u, st, &err);
    }
}

int agent_uplink_connected(const agent_uplink *u)
{
    return u->conn != NULL && sync_client_welcomed(u->sc);
}

void agent_uplink_stop(agent_uplink *u)
{
    if (u == NULL || u->stopping) {
        return;
    }
    u->stopping = 1;
    if (u->outbox != NULL) {
        agent_outbox_set_kick(u->outbox, NULL, NULL);
    }
    if (u->conn != NULL) {
        kt_ws_conn_close(u->conn, 1001, "shutdown");
    }
    if (u->timers_live) {
        uv_timer_stop(&u->retry_timer);
        uv_timer_stop(&u->tick_timer);
        uv_timer_stop(&u->pump_timer);
        uv_close((uv_handle_t *)&u->retry_timer, NULL);
        uv_close((uv_handle_t *)&u->tick_timer, NULL);
        uv_close((uv_handle_t *)&u->pump_timer, NULL);
        u->timers_live = 0;
    }
}

void agent_uplink_free(agent_uplink *u)
{
    if (u == NULL) {
        return;
    }
    sync_client_free(u->sc);
    kt_arena_fini(&u->up_arena);
    kt_free(u->up_events);
    kt_free(u->site);
    if (u->token != NULL) {
        memset(u->token, 0, strlen(u->token));
    }
    kt_free(u->token);
    kt_free(u->url);
    kt_free(u->ca_file);
    kt_free(u);
}
