/*
 * test_mqtt.c — agent/mqtt against a REAL mosquitto (started per test on
 * 127.0.0.1, a free port and a temp dir, `max_queued_messages 0`, stopped by
 * PID), with mosquitto_pub/mosquitto_sub as the devices:
 *   - N QoS 1 messages land in the outbox exactly once;
 *   - malformed JSON, a bad topic, an unknown interface (left over in the
 *     persistent session) and an oversized payload are refused and counted,
 *     and the good message after them still lands;
 *   - a virtual event reaches a device subscriber;
 *   - the outbox quota pauses ingest (disconnect, metric), and ingest
 *     resumes after the hub acks: every message lands exactly once;
 *   - a journal left by a previous run is replayed (records at or below the
 *     watermark counted as duplicates, a torn tail skipped);
 *   - the agent SIGKILLed mid-stream and restarted: nothing lost, no
 *     duplicates (the test binary re-executes itself as the agent).
 *
 * Exits 77 (skipped) when mosquitto_pub is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "journal.h"
#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/mem.h"
#include "kt/metrics.h"
#include "mqtt.h"
#include "outbox.h"

#define DEADLINE_MS 60000u
#define IFACE       "city-pole"

static char self_exe[4096];

/* ---- processes ------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *in, const char *out, const char *errf)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (in != NULL) {
            int fd = open(in, O_RDONLY);
            if (fd >= 0) {
                (void)dup2(fd, 0);
            }
        }
        if (out != NULL) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) {
                (void)dup2(fd, 1);
            }
        }
        if (errf != NULL) {
            int fd = open(errf, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                (void)dup2(fd, 2);
            }
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool exited(pid_t pid, int *code)
{
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
        *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
    }
    return false;
}

static void nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    (void)nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        if (s >= 0) {
            close(s);
        }
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

static bool port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0) {
        close(s);
    }
    return ok;
}

/* ---- fixture: temp dir + mosquitto ----------------------------------------------- */

typedef struct fixture {
    char dir[256];
    int port;
    pid_t broker;
    char url[64];
    char outbox_path[300];
    char journal_dir[300];
} fixture;

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        (void)unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char p[1024];
        (void)snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(p);
        } else {
            (void)unlink(p);
        }
    }
    closedir(d);
    (void)rmdir(path);
}

static bool start_broker(fixture *f)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        f->port = free_port();
        if (f->port <= 0) {
            continue;
        }
        char conf[400];
        (void)snprintf(conf, sizeof conf, "%s/mosquitto.conf", f->dir);
        FILE *c = fopen(conf, "w");
        if (c == NULL) {
            return false;
        }
        fprintf(c,
                "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
                "max_queued_messages 0\nmax_inflight_messages 100\n",
                f->port);
        fclose(c);
        char log[400];
        (void)snprintf(log, sizeof log, "%s/mosquitto.log", f->dir);
        char *argv[] = { (char *)KT_MOSQUITTO, (char *)"-c", conf, NULL };
        f->broker = spawn(argv, NULL, NULL, log);
        uint64_t end = kt_clock_mono_ms() + 10000;
        while (kt_clock_mono_ms() < end) {
            int code;
            if (exited(f->broker, &code)) {
                f->broker = 0;
                break; /* port taken meanwhile: try another */
            }
            if (port_open(f->port)) {
                (void)snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", f->port);
                return true;
            }
            nap_ms(20);
        }
        if (f->broker > 0) {
            kill(f->broker, SIGKILL);
            (void)wait_exit(f->broker);
            f->broker = 0;
        }
    }
    return false;
}

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof f->dir, "%s/kt_test_mqtt.XXXXXX",
                   base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        kt_free(f);
        return -1;
    }
    (void)snprintf(f->outbox_path, sizeof f->outbox_path, "%s/outbox.db", f->dir);
    (void)snprintf(f->journal_dir, sizeof f->journal_dir, "%s/journal", f->dir);
    if (!start_broker(f)) {
        rm_tree(f->dir);
        kt_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->broker > 0) {
        kill(f->broker, SIGTERM);
        (void)wait_exit(f->broker);
    }
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        rm_tree(f->dir);
    } else {
        fprintf(stderr, "kept %s\n", f->dir);
    }
    kt_free(f);
    return 0;
}

/* ---- devices ---------------------------------------------------------------------------- */

/* Publish the lines of a file as QoS 1 messages on topic (mosquitto_pub -l); waits. */
static void pub_lines(const fixture *f, const char *topic, const char *lines_path)
{
    char port[16];
    (void)snprintf(port, sizeof port, "%d", f->port);
    char log[400];
    (void)snprintf(log, sizeof log, "%s/pub.log", f->dir);
    char *argv[] = { (char *)"mosquitto_pub",
                     (char *)"-h",
                     (char *)"127.0.0.1",
                     (char *)"-p",
                     port,
                     (char *)"-q",
                     (char *)"1",
                     (char *)"-t",
                     (char *)topic,
                     (char *)"-l",
                     NULL };
    pid_t pid = spawn(argv, lines_path, NULL, log);
    assert_true(pid > 0);
    assert_int_equal(wait_exit(pid), 0);
}

static void write_lines(const char *path, size_t first, size_t n)
{
    FILE *w = fopen(path, "w");
    assert_non_null(w);
    for (size_t i = first; i < first + n; i++) {
        fprintf(w, "{\"i\":%zu}\n", i);
    }
    fclose(w);
}

/* One message (payload from a string) on topic. */
static void pub_one(const fixture *f, const char *topic, const char *payload)
{
    char path[400];
    (void)snprintf(path, sizeof path, "%s/one.txt", f->dir);
    FILE *w = fopen(path, "w");
    assert_non_null(w);
    fprintf(w, "%s\n", payload);
    fclose(w);
    pub_lines(f, topic, path);
}

/* ---- the bridge under test ----------------------------------------------------------------- */

typedef struct rig {
    uv_loop_t loop;
    kt_metrics *reg;
    agent_outbox *ob;
    agent_mqtt *m;
    bool stopped;
} rig;

static void rig_open(rig *r, const fixture *f, uint64_t max_bytes, uint64_t low, size_t max_payload)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    r->reg = kt_metrics_new();
    agent_outbox_opts oo = {
        .path = f->outbox_path, .max_bytes = max_bytes, .low_water_bytes = low, .metrics = r->reg
    };
    kt_err err = { 0 };
    assert_int_equal(agent_outbox_open(&r->ob, &oo, &err), KT_OK);
    agent_mqtt_opts mo = { .url = f->url,
                           .client_id = "test-agent",
                           .qos = 1,
                           .max_payload_bytes = max_payload,
                           .reconnect_base_ms = 50,
                           .reconnect_cap_ms = 500,
                           .journal_dir = f->journal_dir,
                           .batch_max = 64,
                           .outbox = r->ob,
                           .metrics = r->reg };
    kt_status st = agent_mqtt_new(&r->m, &r->loop, &mo, &err);
    if (st != KT_OK) {
        fail_msg("agent_mqtt_new: %s", err.msg);
    }
}

static void on_stopped(agent_mqtt *m, void *user)
{
    (void)m;
    ((rig *)user)->stopped = true;
}

static void rig_close(rig *r)
{
    agent_mqtt_stop(r->m, on_stopped, r);
    while (!r->stopped) {
        uv_run(&r->loop, UV_RUN_ONCE);
    }
    agent_mqtt_free(r->m);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    agent_outbox_free(r->ob);
    kt_metrics_free(r->reg);
}

typedef bool (*cond_fn)(rig *r, void *arg);

/* Run the loop until cond holds; false at the deadline. */
static bool run_until(rig *r, cond_fn cond, void *arg)
{
    uint64_t end = kt_clock_mono_ms() + DEADLINE_MS;
    while (!cond(r, arg)) {
        if (kt_clock_mono_ms() > end) {
            return false;
        }
        uv_run(&r->loop, UV_RUN_ONCE);
    }
    return true;
}

static bool c_subscribed(rig *r, void *arg)
{
    agent_mqtt_stats s;
    agent_mqtt_stats_get(r->m, &s);
    return agent_mqtt_connected(r->m) && s.subacks >= (uint64_t)(uintptr_t)arg;
}

static bool c_outbox_events(rig *r, void *arg)
{
    return agent_outbox_events(r->ob) >= (uint64_t)(uintptr_t)arg;
}

static bool c_rejected(rig *r, void *arg)
{
    agent_mqtt_stats s;
    agent_mqtt_stats_get(r->m, &s);
    return s.rejected >= (uint64_t)(uintptr_t)arg;
}

static bool c_paused(rig *r, void *arg)
{
    (void)arg;
    return agent_mqtt_paused(r->m) && !agent_mqtt_connected(r->m);
}

static void connect_and_subscribe(rig *r, const char *const *ifaces, size_t n)
{
    kt_err err = { 0 };
    assert_int_equal(agent_mqtt_set_interfaces(r->m, ifaces, n, &err), KT_OK);
    assert_int_equal(agent_mqtt_start(r->m, &err), KT_OK);
    assert_true(run_until(r, c_subscribed, (void *)(uintptr_t)1));
}

/* Collect the outbox: counts per payload index {"i":k}. */
typedef struct tally {
    uint32_t *count; /* per index */
    size_t cap;
    size_t n;
    uint64_t last_seq;
    bool gap;
    bool bad;
} tally;

static bool tally_cb(uint64_t seq, const sync_event *ev, void *user)
{
    tally *t = user;
    if (t->last_seq != 0 && seq != t->last_seq + 1) {
        t->gap = true;
    }
    t->last_seq = seq;
    t->n++;
    char buf[64];
    (void)snprintf(buf, sizeof buf, "%.*s", (int)(ev->data_len < 63 ? ev->data_len : 63),
                   (const char *)ev->data);
    unsigned long k = 0;
    if (sscanf(buf, "{\"i\":%lu}", &k) != 1 || k >= t->cap ||
        strcmp(ev->type, "ktwin.real." IFACE) != 0) {
        t->bad = true;
        return true;
    }
    t->count[k]++;
    return true;
}

static void tally_outbox(agent_outbox *ob, tally *t, uint64_t from)
{
    size_t n = 0;
    assert_int_equal(agent_outbox_peek(ob, from, SIZE_MAX, UINT64_MAX, tally_cb, t, &n, NULL),
                     KT_OK);
}

static double metric(rig *r, const char *name, const char *lname, const char *lval)
{
    const char *labels[] = { lname, lval, NULL };
    kt_metric *m = kt_metrics_find(r->reg, name, lname != NULL ? labels : NULL);
    return kt_metrics_value(m);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_qos1_messages_land_in_the_outbox_exactly_once(void **state)
{
    fixture *f = *state;
    rig r;
    rig_open(&r, f, 0, 0, 0);
    const char *ifaces[] = { IFACE };
    connect_and_subscribe(&r, ifaces, 1);
    assert_true(metric(&r, "ktwin_agent_mqtt_connected", NULL, NULL) == 1.0);

    enum { N = 1000 };
    char lines[400];
    (void)snprintf(lines, sizeof lines, "%s/lines.txt", f->dir);
    write_lines(lines, 0, N);
    pub_lines(f, "ktwin/real/" IFACE "/pole-1", lines);
    assert_true(run_until(&r, c_outbox_events, (void *)(uintptr_t)N));

    tally t = { .count = kt_xcalloc(N, sizeof(uint32_t)), .cap = N };
    tally_outbox(r.ob, &t, 1);
    assert_int_equal(t.n, N);
    assert_false(t.gap);
    assert_false(t.bad);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(t.count[i], 1);
    }
    kt_free(t.count);
    assert_true(metric(&r, "ktwin_agent_mqtt_messages_total", "result", "accepted") == N);
    assert_true(metric(&r, "ktwin_agent_outbox_events", NULL, NULL) == N);
    rig_close(&r);
}

static void test_bad_messages_are_refused_and_counted(void **state)
{
    fixture *f = *state;
    /* A first run subscribes two interfaces; the broker keeps both in our session. */
    rig r;
    rig_open(&r, f, 0, 0, 1024);
    const char *two[] = { IFACE, "city-tree" };
    connect_and_subscribe(&r, two, 2);
    rig_close(&r);

    /* The next run knows only city-pole: city-tree messages are an unknown interface. */
    rig_open(&r, f, 0, 0, 1024);
    const char *one[] = { IFACE };
    connect_and_subscribe(&r, one, 1);
    pub_one(f, "ktwin/real/" IFACE "/pole-1", "this is not json");
    pub_one(f, "ktwin/real/city-tree/tree-1", "{\"i\":0}");
    pub_one(f, "ktwin/real/" IFACE "/bad.name", "{\"i\":0}");
    char big[2100];
    memset(big, 'a', sizeof big - 1);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = '\0';
    pub_one(f, "ktwin/real/" IFACE "/pole-1", big);
    pub_one(f, "ktwin/real/" IFACE "/pole-2", "{\"i\":7}");
    assert_true(run_until(&r, c_rejected, (void *)(uintptr_t)4));
    assert_true(run_until(&r, c_outbox_events, (void *)(uintptr_t)1));

    assert_true(metric(&r, "ktwin_agent_events_rejected_total", "reason", "json") == 1.0);
    assert_true(metric(&r, "ktwin_agent_events_rejected_total", "reason", "interface") == 1.0);
    assert_true(metric(&r, "ktwin_agent_events_rejected_total", "reason", "topic") == 1.0);
    assert_true(metric(&r, "ktwin_agent_events_rejected_total", "reason", "oversized") == 1.0);
    assert_true(metric(&r, "ktwin_agent_mqtt_messages_total", "result", "rejected") == 4.0);
    /* The good one after them landed, and nothing else. */
    tally t = { .count = kt_xcalloc(8, sizeof(uint32_t)), .cap = 8 };
    tally_outbox(r.ob, &t, 1);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.count[7], 1);
    kt_free(t.count);
    rig_close(&r);
}

static void test_virtual_event_reaches_a_device(void **state)
{
    fixture *f = *state;
    rig r;
    rig_open(&r, f, 0, 0, 0);
    const char *one[] = { IFACE };
    connect_and_subscribe(&r, one, 1);
    char port[16];
    (void)snprintf(port, sizeof port, "%d", f->port);
    char out[400];
    (void)snprintf(out, sizeof out, "%s/sub.out", f->dir);
    char *argv[] = { (char *)"mosquitto_sub",
                     (char *)"-h",
                     (char *)"127.0.0.1",
                     (char *)"-p",
                     port,
                     (char *)"-q",
                     (char *)"1",
                     (char *)"-C",
                     (char *)"1",
                     (char *)"-W",
                     (char *)"60",
                     (char *)"-t",
                     (char *)"ktwin/virtual/" IFACE "/pole-1",
                     NULL };
    pid_t sub = spawn(argv, NULL, out, NULL);
    assert_true(sub > 0);
    /* The subscriber's readiness is unknown: publish until it has one message. */
    const char *payload = "{\"led\":\"on\"}";
    uint64_t end = kt_clock_mono_ms() + DEADLINE_MS;
    uint64_t next = 0;
    int code = -1;
    while (!exited(sub, &code)) {
        assert_true(kt_clock_mono_ms() < end);
        if (kt_clock_mono_ms() >= next) {
            kt_err err = { 0 };
            assert_int_equal(agent_mqtt_publish_virtual(r.m, IFACE, "pole-1",
                                                        (const uint8_t *)payload, strlen(payload),
                                                        &err),
                             KT_OK);
            next = kt_clock_mono_ms() + 100;
        }
        uv_run(&r.loop, UV_RUN_NOWAIT);
        nap_ms(5);
    }
    assert_int_equal(code, 0);
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(kt_buf_read_file(&b, out, NULL), KT_OK);
    assert_non_null(strstr(b.data, payload));
    kt_buf_fini(&b);
    /* Bad names and oversized payloads are refused up front. */
    kt_err err = { 0 };
    assert_int_equal(agent_mqtt_publish_virtual(r.m, "a/b", "x", (const uint8_t *)"{}", 2, &err),
                     KT_EINVAL);
    rig_close(&r);
}

static void test_quota_pauses_ingest_then_resumes_after_acks(void **state)
{
    fixture *f = *state;
    sync_event probe = { .id = "12345678-1",
                         .type = "ktwin.real." IFACE,
                         .source = "pole-1",
                         .datacontenttype = "application/json",
                         .data_len = 8 };
    uint64_t one = agent_outbox_event_bytes(&probe);
    rig r;
    /* Room for about 20 events, resume below about 10. */
    rig_open(&r, f, 20 * one + 30, 10 * one, 0);
    const char *ifaces[] = { IFACE };
    connect_and_subscribe(&r, ifaces, 1);

    enum { N = 200 };
    char lines[400];
    (void)snprintf(lines, sizeof lines, "%s/lines.txt", f->dir);
    write_lines(lines, 0, N);
    pub_lines(f, "ktwin/real/" IFACE "/pole-1", lines);
    assert_true(run_until(&r, c_paused, NULL));
    assert_true(agent_outbox_full(r.ob));
    assert_true(metric(&r, "ktwin_agent_outbox_full", NULL, NULL) == 1.0);
    assert_true(metric(&r, "ktwin_agent_mqtt_connected", NULL, NULL) == 0.0);
    assert_true(agent_outbox_events(r.ob) <= 21);

    /* Play the hub: tally and ack whatever is in the outbox until all N arrived. */
    tally t = { .count = kt_xcalloc(N, sizeof(uint32_t)), .cap = N };
    uint64_t end = kt_clock_mono_ms() + DEADLINE_MS;
    uint64_t from = 1;
    while (t.n < N) {
        assert_true(kt_clock_mono_ms() < end);
        if (agent_outbox_events(r.ob) > 0) {
            tally_outbox(r.ob, &t, from);
            from = agent_outbox_next_seq(r.ob);
            assert_int_equal(agent_outbox_ack(r.ob, from - 1, NULL), KT_OK);
        }
        uv_run(&r.loop, UV_RUN_ONCE);
    }
    assert_int_equal(t.n, N);
    assert_false(t.gap);
    assert_false(t.bad);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(t.count[i], 1);
    }
    kt_free(t.count);
    /* Below low water the bridge reconnects (the pause was a real disconnect). */
    assert_true(run_until(&r, c_subscribed, (void *)(uintptr_t)2));
    agent_mqtt_stats s;
    agent_mqtt_stats_get(r.m, &s);
    assert_true(s.pauses >= 1);
    assert_true(s.connects >= 2);
    assert_true(metric(&r, "ktwin_agent_outbox_full", NULL, NULL) == 0.0);
    rig_close(&r);
}

static void test_journal_left_by_a_crash_is_replayed_once(void **state)
{
    fixture *f = *state;
    /* A previous run committed records 1..3 (watermark 3) but crashed before the journal was
     * released; records 4..6 were journaled (acked to the broker) but never committed; the
     * last one is torn. */
    agent_outbox *ob = NULL;
    agent_outbox_opts oo = { .path = f->outbox_path };
    assert_int_equal(agent_outbox_open(&ob, &oo, NULL), KT_OK);
    assert_int_equal(agent_outbox_meta_set(ob, "journal_applied", 3, NULL), KT_OK);
    agent_outbox_free(ob);
    agent_journal *j = NULL;
    agent_journal_opts jo = { .dir = f->journal_dir };
    assert_int_equal(agent_journal_open(&j, &jo, NULL), KT_OK);
    for (int i = 0; i < 7; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "{\"i\":%d}", i);
        const char *topic = "ktwin/real/" IFACE "/pole-1";
        assert_int_equal(agent_journal_append(j, topic, strlen(topic), (const uint8_t *)p,
                                              (size_t)n, 1, 0, 0, NULL, NULL),
                         KT_OK);
    }
    agent_journal_free(j);
    /* Tear the last record. */
    DIR *d = opendir(f->journal_dir);
    assert_non_null(d);
    struct dirent *de;
    char seg[600] = "";
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "journal-", 8) == 0) {
            (void)snprintf(seg, sizeof seg, "%s/%s", f->journal_dir, de->d_name);
        }
    }
    closedir(d);
    struct stat st;
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(truncate(seg, st.st_size - 3), 0);

    rig r;
    rig_open(&r, f, 0, 0, 0);
    const char *ifaces[] = { IFACE };
    kt_err err = { 0 };
    assert_int_equal(agent_mqtt_set_interfaces(r.m, ifaces, 1, &err), KT_OK);
    assert_int_equal(agent_outbox_events(r.ob), 0);       /* nothing before start */
    assert_int_equal(agent_mqtt_start(r.m, &err), KT_OK); /* replays, then connects */
    agent_mqtt_stats s;
    agent_mqtt_stats_get(r.m, &s);
    assert_int_equal(s.duplicates, 3); /* ids 1..3: at or below the watermark */
    assert_int_equal(s.replayed, 3);   /* ids 4..6 */
    assert_int_equal(s.accepted, 3);
    assert_true(metric(&r, "ktwin_agent_mqtt_messages_total", "result", "duplicate") == 3.0);
    tally t = { .count = kt_xcalloc(8, sizeof(uint32_t)), .cap = 8 };
    tally_outbox(r.ob, &t, 1);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.count[3], 1);
    assert_int_equal(t.count[4], 1);
    assert_int_equal(t.count[5], 1);
    assert_int_equal(t.count[6], 0); /* torn: its write never completed, it was never acked */
    assert_int_equal(agent_outbox_meta_get(r.ob, "journal_applied"), 6);
    kt_free(t.count);
    /* New messages get ids after the replayed ones and land once. */
    assert_true(run_until(&r, c_subscribed, (void *)(uintptr_t)1));
    pub_one(f, "ktwin/real/" IFACE "/pole-1", "{\"i\":7}");
    assert_true(run_until(&r, c_outbox_events, (void *)(uintptr_t)4));
    assert_true(agent_outbox_meta_get(r.ob, "journal_applied") > 6);
    rig_close(&r);
}

/* Append journal records as paho's thread would: (msgid, DUP flag, payload). */
static void journal_put(const fixture *f,
                        uint64_t first_id,
                        const uint16_t *ids,
                        const uint8_t *flags,
                        const char *const *payloads,
                        size_t n)
{
    agent_journal *j = NULL;
    agent_journal_opts jo = { .dir = f->journal_dir };
    assert_int_equal(agent_journal_open(&j, &jo, NULL), KT_OK);
    agent_journal_set_next_id(j, first_id); /* as the bridge does from its watermark */
    const char *topic = "ktwin/real/" IFACE "/pole-1";
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(agent_journal_append(j, topic, strlen(topic), (const uint8_t *)payloads[i],
                                              strlen(payloads[i]), 1, ids[i], flags[i], NULL, NULL),
                         KT_OK);
    }
    agent_journal_free(j);
}

static void replay_journal(rig *r, const fixture *f, agent_mqtt_stats *s)
{
    rig_open(r, f, 0, 0, 0);
    const char *ifaces[] = { IFACE };
    kt_err err = { 0 };
    assert_int_equal(agent_mqtt_set_interfaces(r->m, ifaces, 1, &err), KT_OK);
    assert_int_equal(agent_mqtt_start(r->m, &err), KT_OK); /* replays the journal first */
    agent_mqtt_stats_get(r->m, s);
}

/* A broker's redelivery (DUP, same packet id, same bytes) of a message already journaled is
 * skipped, also after a restart; a DUP message not seen before, or the same id with other
 * bytes, is a message of its own. */
static void test_broker_redelivery_of_a_journaled_message_is_skipped(void **state)
{
    fixture *f = *state;
    const uint8_t D = AGENT_JOURNAL_F_DUP;
    const uint16_t ids[] = { 5, 6, 5, 7, 6 };
    const uint8_t flags[] = { 0, 0, D, D, D };
    const char *const pay[] = { "{\"i\":1}", "{\"i\":2}", "{\"i\":1}", "{\"i\":1}", "{\"i\":9}" };
    journal_put(f, 1, ids, flags, pay, 5);
    rig r;
    agent_mqtt_stats s;
    replay_journal(&r, f, &s);
    assert_int_equal(s.accepted, 4);
    assert_int_equal(s.redelivered, 1);
    assert_int_equal(agent_outbox_events(r.ob), 4);
    rig_close(&r);

    /* After a restart the recent packet ids come from the outbox meta. */
    const uint16_t ids2[] = { 6, 6, 8 };
    const uint8_t flags2[] = { D, 0, D };
    const char *const pay2[] = { "{\"i\":2}", "{\"i\":2}", "{\"i\":3}" };
    journal_put(f, 6, ids2, flags2, pay2, 3);
    replay_journal(&r, f, &s);
    assert_int_equal(s.redelivered, 1); /* id 6 {"i":2} DUP */
    assert_int_equal(s.accepted, 2);    /* id 6 without DUP (a new message), id 8 */
    assert_int_equal(agent_outbox_events(r.ob), 6);
    assert_true(metric(&r, "ktwin_agent_mqtt_messages_total", "result", "duplicate") == 1.0);
    rig_close(&r);
}

/* ---- SIGKILL: the test binary as the agent
 * ------------------------------------------------------- */

/* argv: self "child" dir url. Runs the bridge until killed; writes dir/ready once subscribed. */
static int child_main(const char *dir, const char *url)
{
    char ob_path[400];
    char jdir[400];
    char ready[400];
    (void)snprintf(ob_path, sizeof ob_path, "%s/outbox.db", dir);
    (void)snprintf(jdir, sizeof jdir, "%s/journal", dir);
    (void)snprintf(ready, sizeof ready, "%s/ready", dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    agent_outbox *ob = NULL;
    agent_outbox_opts oo = { .path = ob_path };
    kt_err err = { 0 };
    if (agent_outbox_open(&ob, &oo, &err) != KT_OK) {
        fprintf(stderr, "child: %s\n", err.msg);
        return 2;
    }
    agent_mqtt *m = NULL;
    agent_mqtt_opts mo = { .url = url,
                           .client_id = "test-agent-kill",
                           .qos = 1,
                           .reconnect_base_ms = 50,
                           .reconnect_cap_ms = 500,
                           .journal_dir = jdir,
                           .batch_max = 16,
                           .outbox = ob };
    const char *ifaces[] = { IFACE };
    if (agent_mqtt_new(&m, &loop, &mo, &err) != KT_OK ||
        agent_mqtt_set_interfaces(m, ifaces, 1, &err) != KT_OK ||
        agent_mqtt_start(m, &err) != KT_OK) {
        fprintf(stderr, "child: %s\n", err.msg);
        return 2;
    }
    bool said = false;
    for (;;) {
        uv_run(&loop, UV_RUN_ONCE);
        agent_mqtt_stats s;
        agent_mqtt_stats_get(m, &s);
        if (!said && s.subacks > 0) {
            FILE *w = fopen(ready, "w");
            if (w != NULL) {
                fclose(w);
            }
            said = true;
        }
    }
}

static int run_child(int argc, char **argv)
{
    if (argc < 4) {
        return 2;
    }
    return child_main(argv[2], argv[3]);
}

/* Rows in the child's outbox (another process; WAL allows it). -1 before it exists. */
static long outbox_rows(const fixture *f)
{
    if (access(f->outbox_path, F_OK) != 0) {
        return -1;
    }
    sqlite3 *db = NULL;
    long n = -1;
    if (sqlite3_open_v2(f->outbox_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            n = (long)sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static pid_t start_child(const fixture *f)
{
    char ready[400];
    (void)snprintf(ready, sizeof ready, "%s/ready", f->dir);
    (void)unlink(ready);
    char log[400];
    (void)snprintf(log, sizeof log, "%s/child.log", f->dir);
    char *argv[] = { self_exe, (char *)"child", (char *)f->dir, (char *)f->url, NULL };
    pid_t pid = spawn(argv, NULL, NULL, log);
    assert_true(pid > 0);
    uint64_t end = kt_clock_mono_ms() + DEADLINE_MS;
    while (access(ready, F_OK) != 0) {
        int code;
        if (exited(pid, &code)) {
            fail_msg("child exited with %d (see %s)", code, log);
        }
        assert_true(kt_clock_mono_ms() < end);
        nap_ms(10);
    }
    return pid;
}

static void test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(void **state)
{
    fixture *f = *state;
    enum { N = 3000 };
    pid_t child = start_child(f);
    char lines[400];
    (void)snprintf(lines, sizeof lines, "%s/lines.txt", f->dir);
    write_lines(lines, 0, N);
    char port[16];
    (void)snprintf(port, sizeof port, "%d", f->port);
    char *argv[] = { (char *)"mosquitto_pub",
                     (char *)"-h",
                     (char *)"127.0.0.1",
                     (char *)"-p",
                     port,
                     (char *)"-q",
                     (char *)"1",
                     (char *)"-t",
                     (char *)"ktwin/real/" IFACE "/pole-1",
                     (char *)"-l",
                     NULL };
    pid_t pub = spawn(argv, lines, NULL, NULL);
    assert_true(pub > 0);
    /* Kill the agent once part of the stream has been committed. */
    uint64_t end = kt_clock_mono_ms() + DEADLINE_MS;
    long rows = 0;
    while ((rows = outbox_rows(f)) < 300) {
        assert_true(kt_clock_mono_ms() < end);
        nap_ms(5);
    }
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(wait_exit(child), 128 + SIGKILL);
    assert_int_equal(wait_exit(pub), 0);
    long at_kill = outbox_rows(f);
    assert_true(at_kill < N); /* really mid-stream */

    /* Restart: the journal is replayed and the broker redelivers the rest of the session. */
    child = start_child(f);
    end = kt_clock_mono_ms() + DEADLINE_MS;
    while ((rows = outbox_rows(f)) < N) {
        assert_true(kt_clock_mono_ms() < end);
        nap_ms(20);
    }
    /* Give a duplicate every chance to show up, then stop the agent the hard way again. */
    nap_ms(500);
    assert_int_equal(kill(child, SIGKILL), 0);
    (void)wait_exit(child);

    agent_outbox *ob = NULL;
    agent_outbox_opts oo = { .path = f->outbox_path };
    assert_int_equal(agent_outbox_open(&ob, &oo, NULL), KT_OK);
    tally t = { .count = kt_xcalloc(N, sizeof(uint32_t)), .cap = N };
    tally_outbox(ob, &t, 1);
    assert_int_equal(t.n, N);
    assert_false(t.gap);
    assert_false(t.bad);
    assert_int_equal(t.last_seq, N);
    for (size_t i = 0; i < N; i++) {
        if (t.count[i] != 1) {
            fail_msg("payload %zu is in the outbox %u times (killed at %ld rows)", i, t.count[i],
                     at_kill);
        }
    }
    kt_free(t.count);
    agent_outbox_free(ob);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "child") == 0) {
        return run_child(argc, argv);
    }
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n > 0) {
        self_exe[n] = '\0';
    }
    if (access("/usr/bin/mosquitto_pub", X_OK) != 0 &&
        access("/usr/local/bin/mosquitto_pub", X_OK) != 0) {
        fprintf(stderr, "mosquitto_pub not found: skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qos1_messages_land_in_the_outbox_exactly_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages_are_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtual_event_reaches_a_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_pauses_ingest_then_resumes_after_acks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_redelivery_of_a_journaled_message_is_skipped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_left_by_a_crash_is_replayed_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
