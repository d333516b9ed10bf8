/*
 * run.c — `ktwin-sim run` (contract in run.h; figures defined in docs/sim-run.md).
 *
 * DESIGN
 *   Every component is a real child process with its files in DIR:
 *     DIR/site-KK/  mosquitto.conf, mosquitto.log, agent.yaml, agent.log, token,
 *                   agent.db (+ -outbox, -latest, .journal)
 *     DIR/hub/      hub.yaml, agents.txt, hub.log, data/ (hub.db, events.db)
 *     DIR/model/    the `ktwin-sim model` output, the hub's watch_dir
 *     DIR/devices.log, DIR/devices.jsonl (the devices' stats lines)
 *   The runner only polls: /metrics of the hub and agents (libcurl, 3 s
 *   timeout), the last line of the devices' stats file, /proc of its
 *   children, and once, before the devices start, each broker's log for the
 *   agent's subscriptions (mosquitto logs each SUBSCRIBE with `log_type
 *   subscribe`; a message published before its subscription exists would be
 *   dropped by the broker, so the devices wait for all of them).
 *
 *   Offline window: the hub is frozen with SIGSTOP and thawed with SIGCONT.
 *   Its sockets stay open but nothing answers, so each agent's sync session
 *   times out (missed heartbeats), the agent reconnects with backoff until the
 *   hub answers again, and meanwhile keeps serving its site: device events
 *   are processed by the local services and the hub-bound events wait in the
 *   outbox. Counters survive (no restart), and batches that were in flight
 *   when the link died are sent again, which exercises the hub's dedupe.
 *
 *   Counting: per real event type, published = the devices' PUBACKed
 *   messages, processed = service invocations at the agents (the
 *   ktwin_agent_service_latency_seconds{iface} histogram count); per type in
 *   the hub's event store, stored = rows and duplicates = rows sharing a
 *   CloudEvent id (read from events.db with SQLite after the hub stopped).
 *
 * Thread: main thread only. Ownership: every child is in `run.kids` until
 * reaped; kill_all() stops the live ones by PID on every exit path.
 */
#define _GNU_SOURCE
#include "run.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt/buf.h"
#include "kt/clock.h"
#include "kt/err.h"
#include "kt/json.h"
#include "kt/mem.h"
#include "payloads.h"
#include "report.h"
#include "run_metrics.h"

#ifndef KT_PAPER_DIR
#define KT_PAPER_DIR "data/ktwin-article"
#endif

enum { RUN_OK = 0, RUN_FAILED = 1, RUN_USAGE = 2 };

#define RUN_MAX_SITES 64u
#define RUN_PATH      1024u
#define RUN_MAX_KIDS  (2u * RUN_MAX_SITES + 4u)

typedef struct kid {
    pid_t pid; /* 0 once reaped */
    char name[48];
    int status; /* wait status once reaped */
} kid;

typedef struct site_rt {
    char name[32];
    char dir[RUN_PATH];
    unsigned mqtt_port;
    unsigned agent_port;
    int mosq; /* index in run.kids */
    int agent;
    double last_processed, last_outbox; /* the last /metrics answer's figures */
} site_rt;

typedef struct sample {
    double t;
    double published, processed, stored; /* cumulative */
    double outbox;
    double p99_ms; /* every service's calls since the previous sample; NAN = none or unknown */
    bool offline;
} sample;

typedef struct run_opts {
    unsigned n_nb, n_sites;
    double duration, compress, offline_at, offline_for, progress_every, drain_timeout, spread;
    int devices_nice; /* nice(2) increment of the devices process (0..19) */
    bool offline;
    const char *out;
    const char *paper_dir;
    const char *specs[16];
    size_t n_specs;
} run_opts;

typedef struct run {
    run_opts o;
    char self[RUN_PATH];  /* this executable */
    char build[RUN_PATH]; /* build directory (two levels above self) */
    char out[RUN_PATH];   /* absolute DIR */
    kid kids[RUN_MAX_KIDS];
    size_t n_kids;
    site_rt sites[RUN_MAX_SITES];
    int hub, devices;
    unsigned hub_port;
    bool hub_frozen;
    struct lat_hist *lat_prev; /* all services merged, at the previous sample (NULL: none) */
    double hub_frozen_at;
    double t0;               /* monotonic s when the devices started */
    double off_from, off_to; /* actual offline window, s since t0 (-1 = none) */
    sample *samples;
    size_t n_samples, cap_samples;
    CURL *curl;
} run;

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static double mono_s(void)
{
    return (double)kt_clock_mono_ns() / 1e9;
}

static void nap_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_interrupted) {
    }
}

/* ---- small helpers -------------------------------------------------------- */

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 || v > max) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_secs(const char *s, double min, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > 1e7) {
        return -1;
    }
    *out = v;
    return 0;
}

static kt_status write_text(const char *path, const char *text, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)256 << 20);
    kt_status st = kt_buf_puts(&b, text);
    if (st == KT_OK) {
        st = kt_buf_write_file(&b, path, err);
    } else {
        (void)kt_err_set(err, st, "out of memory writing %s", path);
    }
    kt_buf_fini(&b);
    return st;
}

static kt_status mkdir_one(const char *path, kt_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", path);
    }
    return KT_OK;
}

/* A TCP port free on 127.0.0.1 now (for mosquitto, which cannot report port 0). */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

static bool port_open(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static kt_status random_token(char *out, size_t cap, kt_err *err)
{
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return kt_err_set_errno(err, KT_EIO, e, "reading /dev/urandom");
    }
    close(fd);
    for (size_t i = 0; i < sizeof raw && 2 * i + 2 < cap; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
    return KT_OK;
}

/* ---- children ------------------------------------------------------------- */

/*
 * Start argv (argv[0] a path) with stdout+stderr appended to log_path, at
 * nice increment nice_inc (set before exec, so every thread inherits it).
 */
static int spawn_nice(run *r, const char *name, char *const argv[], const char *log_path,
                      int nice_inc, kt_err *err)
{
    if (r->n_kids == RUN_MAX_KIDS) {
        (void)kt_err_set(err, KT_EINVAL, "too many child processes");
        return -1;
    }
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        (void)kt_err_set_errno(err, KT_EIO, errno, "open %s", log_path);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        (void)kt_err_set_errno(err, KT_EIO, errno, "fork for %s", name);
        close(fd);
        return -1;
    }
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            (void)dup2(nul, 0);
        }
        (void)dup2(fd, 1);
        (void)dup2(fd, 2);
        signal(SIGINT, SIG_IGN); /* Ctrl-C goes to the runner, which stops us in order */
        if (nice_inc != 0) {
            errno = 0;
            if (nice(nice_inc) == -1 && errno != 0) {
                fprintf(stderr, "ktwin-sim run: nice %d for %s: %s\n", nice_inc, name,
                        strerror(errno));
            }
        }
        execv(argv[0], argv);
        fprintf(stderr, "ktwin-sim run: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    kid *k = &r->kids[r->n_kids];
    k->pid = pid;
    k->status = 0;
    snprintf(k->name, sizeof k->name, "%s", name);
    return (int)r->n_kids++;
}

static int spawn(run *r, const char *name, char *const argv[], const char *log_path, kt_err *err)
{
    return spawn_nice(r, name, argv, log_path, 0, err);
}

/* True while kid i runs; reaps it (keeping its status) once it exited. */
static bool kid_alive(run *r, int i)
{
    kid *k = &r->kids[i];
    if (k->pid == 0) {
        return false;
    }
    int status = 0;
    pid_t w = waitpid(k->pid, &status, WNOHANG);
    if (w == k->pid) {
        k->status = status;
        k->pid = 0;
        return false;
    }
    return true;
}

/* SIGTERM, then SIGKILL after timeout_s. Returns true when it exited 0 on SIGTERM. */
static bool kid_stop(run *r, int i, double timeout_s)
{
    kid *k = &r->kids[i];
    if (k->pid == 0) {
        return false;
    }
    (void)kill(k->pid, SIGCONT);
    (void)kill(k->pid, SIGTERM);
    double dl = mono_s() + timeout_s;
    while (kid_alive(r, i) && mono_s() < dl) {
        nap_ms(50);
    }
    if (k->pid != 0) {
        fprintf(stderr, "ktwin-sim run: %s did not stop on SIGTERM in %.0f s: SIGKILL\n", k->name,
                timeout_s);
        (void)kill(k->pid, SIGKILL);
        (void)waitpid(k->pid, &k->status, 0);
        k->pid = 0;
        return false;
    }
    return WIFEXITED(k->status) && WEXITSTATUS(k->status) == 0;
}

static void kill_all(run *r)
{
    for (size_t i = r->n_kids; i-- > 0;) {
        if (r->kids[i].pid != 0) {
            (void)kill(r->kids[i].pid, SIGCONT);
            (void)kill(r->kids[i].pid, SIGKILL);
            (void)waitpid(r->kids[i].pid, &r->kids[i].status, 0);
            r->kids[i].pid = 0;
        }
    }
}

/* CPU seconds (user+system) and peak RSS (VmHWM) of a live child. */
static void proc_usage(pid_t pid, double *cpu_s, double *rss_mib)
{
    *cpu_s = 0;
    *rss_mib = 0;
    char path[64];
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (kt_buf_read_file(&b, path, NULL) == KT_OK && kt_buf_putc(&b, '\0') == KT_OK) {
        const char *p = strrchr(b.data, ')');
        /* fields after "comm)": state(3) ... utime(14) stime(15) */
        unsigned long long ut = 0, stt = 0;
        if (p != NULL && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &stt) == 2) {
            *cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
        }
    }
    kt_buf_reset(&b);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (kt_buf_read_file(&b, path, NULL) == KT_OK && kt_buf_putc(&b, '\0') == KT_OK) {
        const char *p = strstr(b.data, "VmHWM:");
        unsigned long kb = 0;
        if (p != NULL && sscanf(p + 6, " %lu", &kb) == 1) {
            *rss_mib = (double)kb / 1024.0;
        }
    }
    kt_buf_fini(&b);
}

/* ---- HTTP and metrics ------------------------------------------------------ */

static size_t curl_sink(char *p, size_t sz, size_t n, void *user)
{
    kt_buf *b = user;
    return kt_buf_append(b, p, sz * n) == KT_OK ? sz * n : 0;
}

/* GET http://127.0.0.1:port/path into out (NUL-terminated). */
static bool http_get(run *r, unsigned port, const char *path, kt_buf *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    kt_buf_reset(out);
    curl_easy_reset(r->curl);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    long code = 0;
    bool ok = curl_easy_perform(r->curl) == CURLE_OK &&
              curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
              code == 200 && kt_buf_putc(out, '\0') == KT_OK;
    return ok;
}

/*
 * Sum of the samples of metric `name` (exact family member, e.g.
 * "x_total" or "x_bucket") whose label set contains `label` (e.g.
 * `kind="upstream"`; NULL = every series). *found tells whether any matched.
 */
double sim_run_metric_sum(const char *text, const char *name, const char *label, bool *found)
{
    double sum = 0;
    bool any = false;
    size_t nl = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        if (line[0] != '#' && len > nl && strncmp(line, name, nl) == 0 &&
            (line[nl] == ' ' || line[nl] == '{')) {
            const char *sp = memchr(line, ' ', len);
            const char *close = line[nl] == '{' ? memchr(line, '}', len) : NULL;
            if (close != NULL) {
                sp = memchr(close, ' ', len - (size_t)(close - line));
            }
            bool match = true;
            if (label != NULL) {
                match = false;
                if (close != NULL) {
                    size_t ll = strlen(label);
                    for (const char *q = line + nl; q + ll <= close; q++) {
                        if (strncmp(q, label, ll) == 0) {
                            match = true;
                            break;
                        }
                    }
                }
            }
            if (match && sp != NULL) {
                char *end = NULL;
                double v = strtod(sp + 1, &end);
                if (end != sp + 1 && isfinite(v)) {
                    sum += v;
                    any = true;
                }
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    if (found != NULL) {
        *found = any;
    }
    return sum;
}

/* The value of label `key` in a `{...}` label set starting at p (before end), into out. */
static bool label_value(const char *p, const char *end, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=\"", key);
    size_t pl = strlen(pat);
    for (const char *q = p; q + pl <= end; q++) {
        if (strncmp(q, pat, pl) == 0 && (q == p || q[-1] == '{' || q[-1] == ',')) {
            const char *v = q + pl;
            const char *e = memchr(v, '"', (size_t)(end - v));
            if (e == NULL || (size_t)(e - v) >= cap) {
                return false;
            }
            memcpy(out, v, (size_t)(e - v));
            out[e - v] = '\0';
            return true;
        }
    }
    return false;
}

static lat_hist *hist_find(lat_hist *h, size_t *n, const char *iface)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(h[i].iface, iface) == 0) {
            return &h[i];
        }
    }
    if (*n == RUN_MAX_IFACES) {
        return NULL;
    }
    lat_hist *x = &h[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->iface, sizeof x->iface, "%s", iface);
    return x;
}

/* Add one agent's latency histograms (text exposition) into h[0..*n). */
void sim_run_hist_add(lat_hist *h, size_t *n, const char *text)
{
    static const char bucket[] = LAT_METRIC "_bucket{";
    static const char count[] = LAT_METRIC "_count";
    static const char sum[] = LAT_METRIC "_sum";
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        const char *end = eol != NULL ? eol : line + strlen(line);
        char iface[128], le[32];
        const char *close = memchr(line, '}', (size_t)(end - line));
        if (close != NULL && label_value(line, close, "iface", iface, sizeof iface)) {
            double v = strtod(close + 1, NULL);
            lat_hist *x = NULL;
            if (strncmp(line, bucket, sizeof bucket - 1) == 0 &&
                label_value(line, close, "le", le, sizeof le) &&
                (x = hist_find(h, n, iface)) != NULL) {
                double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
                size_t k = 0;
                while (k < x->n && x->le[k] != bound) {
                    k++;
                }
                if (k == x->n && x->n < LAT_BOUNDS) {
                    x->le[x->n++] = bound;
                }
                if (k < x->n) {
                    x->cum[k] += v;
                }
            } else if (strncmp(line, count, sizeof count - 1) == 0 &&
                       line[sizeof count - 1] == '{' && (x = hist_find(h, n, iface)) != NULL) {
                x->count += v;
            } else if (strncmp(line, sum, sizeof sum - 1) == 0 && line[sizeof sum - 1] == '{' &&
                       (x = hist_find(h, n, iface)) != NULL) {
                x->sum += v;
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
}

/* Prometheus histogram_quantile: linear inside the bucket; seconds. */
double sim_run_hist_quantile(const lat_hist *x, double q)
{
    /* bounds in ascending order (insertion sort; the exposition is ordered already) */
    double le[LAT_BOUNDS], cum[LAT_BOUNDS];
    size_t n = x->n;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && le[j - 1] > x->le[i]) {
            le[j] = le[j - 1];
            cum[j] = cum[j - 1];
            j--;
        }
        le[j] = x->le[i];
        cum[j] = x->cum[i];
    }
    if (n == 0 || cum[n - 1] <= 0) {
        return NAN;
    }
    double rank = q * cum[n - 1];
    for (size_t i = 0; i < n; i++) {
        if (cum[i] >= rank) {
            if (isinf(le[i])) {
                return i > 0 ? le[i - 1] : NAN;
            }
            double lo = i > 0 ? le[i - 1] : 0, clo = i > 0 ? cum[i - 1] : 0;
            double width = cum[i] - clo;
            return width > 0 ? lo + (le[i] - lo) * (rank - clo) / width : le[i];
        }
    }
    return NAN;
}

/* ---- devices' stats ----------------------------------------------------------- */

/* The last complete JSON line of the stats file, parsed (caller deletes), or NULL. */
static cJSON *devices_last(const run *r, bool *final)
{
    char path[RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/devices.jsonl", r->out);
    kt_buf b;
    kt_buf_init(&b, (size_t)256 << 20);
    cJSON *j = NULL;
    *final = false;
    if (kt_buf_read_file(&b, path, NULL) == KT_OK && b.len > 0) {
        size_t end = b.len;
        while (end > 0 && b.data[end - 1] != '\n') {
            end--; /* a line still being written */
        }
        while (end > 0 && j == NULL) {
            size_t start = end - 1;
            while (start > 0 && b.data[start - 1] != '\n') {
                start--;
            }
            if (kt_json_parse(b.data + start, end - start, b.len, &j, NULL) != KT_OK) {
                j = NULL;
            }
            end = start;
        }
    }
    kt_buf_fini(&b);
    if (j != NULL) {
        *final = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "final"));
    }
    return j;
}

static double devices_published(const cJSON *j)
{
    double n = 0;
    const cJSON *pub = cJSON_GetObjectItemCaseSensitive(j, "published");
    const cJSON *it = NULL;
    cJSON_ArrayForEach(it, pub)
    {
        if (cJSON_IsNumber(it)) {
            n += it->valuedouble;
        }
    }
    return n;
}

/* ---- setup ---------------------------------------------------------------- */

static kt_status find_self(run *r, kt_err *err)
{
    ssize_t n = readlink("/proc/self/exe", r->self, sizeof r->self - 1);
    if (n <= 0) {
        return kt_err_set_errno(err, KT_EIO, errno, "readlink /proc/self/exe");
    }
    r->self[n] = '\0';
    snprintf(r->build, sizeof r->build, "%s", r->self);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(r->build, '/');
        if (slash == NULL) {
            return kt_err_set(err, KT_EINVAL, "cannot find the build directory from %s", r->self);
        }
        *slash = '\0';
    }
    return KT_OK;
}

/*
 * The default service specs: "*=BUILD/services/smartcity.so" (every smart-city
 * service in one plugin) when it exists, else "*=<plugin>" for each .so there.
 */
static void default_specs(run *r, char store[][RUN_PATH], size_t cap)
{
    char dir[RUN_PATH + 16];
    snprintf(dir, sizeof dir, "%s/services", r->build);
    char so[RUN_PATH + 32];
    snprintf(so, sizeof so, "%s/smartcity.so", dir);
    if (access(so, R_OK) == 0) {
        int n = snprintf(store[0], RUN_PATH, "*=%s", so);
        if (n > 0 && n < (int)RUN_PATH) {
            r->o.specs[r->o.n_specs++] = store[0];
            return;
        }
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && r->o.n_specs < cap) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0) {
            int n = snprintf(store[r->o.n_specs], RUN_PATH, "*=%s/%s", dir, e->d_name);
            if (n < 0 || n >= (int)RUN_PATH) {
                continue;
            }
            r->o.specs[r->o.n_specs] = store[r->o.n_specs];
            r->o.n_specs++;
        }
    }
    closedir(d);
}

static kt_status gen_model(run *r, kt_err *err)
{
    char dir[RUN_PATH + 16], nb[16], st[16], log[RUN_PATH + 16];
    snprintf(dir, sizeof dir, "%s/model", r->out);
    snprintf(nb, sizeof nb, "%u", r->o.n_nb);
    snprintf(st, sizeof st, "%u", r->o.n_sites);
    snprintf(log, sizeof log, "%s/model.log", r->out);
    char *argv[] = { r->self, "model", "--neighborhoods", nb, "--sites", st, "-o", dir, NULL };
    int i = spawn(r, "ktwin-sim model", argv, log, err);
    if (i < 0) {
        return err->status;
    }
    while (kid_alive(r, i)) {
        nap_ms(50);
    }
    if (!WIFEXITED(r->kids[i].status) || WEXITSTATUS(r->kids[i].status) != 0) {
        return kt_err_set(err, KT_EIO, "ktwin-sim model failed (see %s)", log);
    }
    return KT_OK;
}

static kt_status start_hub(run *r, const char *agents_txt, kt_err *err)
{
    char dir[RUN_PATH + 16], path[RUN_PATH + 64], log[RUN_PATH + 64], portf[RUN_PATH + 64];
    snprintf(dir, sizeof dir, "%s/hub", r->out);
    char text[4 * RUN_PATH];
    snprintf(text, sizeof text,
             "# ktwin-sim run: the hub of this run\n"
             "listen: {port: 0}\n"
             "data_dir: %s/data\n"
             "auth: {agents_file: %s/agents.txt}\n"
             "watch_dir: %s/model\n"
             "log: {level: warn}\n",
             dir, dir, r->out);
    snprintf(path, sizeof path, "%s/hub.yaml", dir);
    kt_status st = write_text(path, text, err);
    if (st == KT_OK) {
        snprintf(portf, sizeof portf, "%s/agents.txt", dir);
        st = write_text(portf, agents_txt, err);
    }
    if (st != KT_OK) {
        return st;
    }
    snprintf(portf, sizeof portf, "%s/port", dir);
    snprintf(log, sizeof log, "%s/hub.log", dir);
    char bin[RUN_PATH + 32];
    snprintf(bin, sizeof bin, "%s/hub/ktwin-hub", r->build);
    char *argv[] = { bin, "--config", path, "--port-file", portf, NULL };
    r->hub = spawn(r, "ktwin-hub", argv, log, err);
    if (r->hub < 0) {
        return err->status;
    }
    kt_buf b;
    kt_buf_init(&b, 64);
    double dl = mono_s() + 60;
    while (r->hub_port == 0 && mono_s() < dl && kid_alive(r, r->hub) && !g_interrupted) {
        if (kt_buf_read_file(&b, portf, NULL) == KT_OK && b.len > 0 &&
            kt_buf_putc(&b, '\0') == KT_OK) {
            unsigned p = 0;
            if (sscanf(b.data, "%u", &p) == 1) {
                r->hub_port = p;
            }
        }
        kt_buf_reset(&b);
        nap_ms(50);
    }
    kt_buf_fini(&b);
    if (r->hub_port == 0) {
        return kt_err_set(err, KT_EIO, "ktwin-hub did not start (see %s)", log);
    }
    return KT_OK;
}

static kt_status start_site(run *r, site_rt *s, const char *token, kt_err *err)
{
    char path[RUN_PATH + 64], log[RUN_PATH + 64], text[4 * RUN_PATH + 2048];
    s->mqtt_port = free_port();
    if (s->mqtt_port == 0) {
        return kt_err_set(err, KT_EIO, "no free TCP port for %s's broker", s->name);
    }
    snprintf(path, sizeof path, "%s/mosquitto.conf", s->dir);
    snprintf(text, sizeof text,
             "# ktwin-sim run: %s's MQTT broker\n"
             "listener %u 127.0.0.1\n"
             "allow_anonymous true\n"
             "persistence false\n"
             "max_queued_messages 0\n"
             "max_inflight_messages 0\n"
             "log_dest stderr\n"
             "log_type error\n"
             "log_type warning\n"
             "log_type notice\n"
             "log_type subscribe\n",
             s->name, s->mqtt_port);
    kt_status st = write_text(path, text, err);
    if (st != KT_OK) {
        return st;
    }
    snprintf(log, sizeof log, "%s/mosquitto.log", s->dir);
    char name[64];
    snprintf(name, sizeof name, "mosquitto %s", s->name);
    char *margv[] = { "/usr/sbin/mosquitto", "-c", path, NULL };
    s->mosq = spawn(r, name, margv, log, err);
    if (s->mosq < 0) {
        return err->status;
    }
    double dl = mono_s() + 30;
    while (!port_open(s->mqtt_port)) {
        if (!kid_alive(r, s->mosq) || mono_s() > dl || g_interrupted) {
            return kt_err_set(err, KT_EIO, "mosquitto for %s did not start on port %u (see %s)",
                              s->name, s->mqtt_port, log);
        }
        nap_ms(50);
    }

    char tokf[RUN_PATH + 16];
    snprintf(tokf, sizeof tokf, "%s/token", s->dir);
    if ((st = write_text(tokf, token, err)) != KT_OK) {
        return st;
    }
    int n = snprintf(text, sizeof text,
                     "# ktwin-sim run: the agent of %s\n"
                     "site: %s\n"
                     "hub: {url: \"ws://127.0.0.1:%u/sync\", token_file: %s, "
                     "connect_timeout_ms: 2s}\n"
                     "cache: {path: %s/agent.db}\n"
                     "listen: {port: 0}\n"
                     "reconnect: {base_ms: 200ms, cap_ms: 2s}\n"
                     "mqtt: {url: \"tcp://127.0.0.1:%u\", qos: 1}\n"
                     "log: {level: warn}\n"
                     "services:\n  specs:%s\n",
                     s->name, s->name, r->hub_port, tokf, s->dir, s->mqtt_port,
                     r->o.n_specs == 0 ? " []" : "");
    for (size_t i = 0; i < r->o.n_specs && n > 0 && (size_t)n < sizeof text; i++) {
        n += snprintf(text + n, sizeof text - (size_t)n, "    - \"%s\"\n", r->o.specs[i]);
    }
    if (n < 0 || (size_t)n >= sizeof text) {
        return kt_err_set(err, KT_EINVAL, "agent configuration of %s too long", s->name);
    }
    snprintf(path, sizeof path, "%s/agent.yaml", s->dir);
    if ((st = write_text(path, text, err)) != KT_OK) {
        return st;
    }
    char portf[RUN_PATH + 16], bin[RUN_PATH + 32];
    snprintf(portf, sizeof portf, "%s/agent.port", s->dir);
    snprintf(log, sizeof log, "%s/agent.log", s->dir);
    snprintf(bin, sizeof bin, "%s/agent/ktwin-agent", r->build);
    snprintf(name, sizeof name, "ktwin-agent %s", s->name);
    char *aargv[] = { bin, "--config", path, "--port-file", portf, NULL };
    s->agent = spawn(r, name, aargv, log, err);
    if (s->agent < 0) {
        return err->status;
    }
    kt_buf b;
    kt_buf_init(&b, 64);
    dl = mono_s() + 60;
    while (s->agent_port == 0 && mono_s() < dl && kid_alive(r, s->agent) && !g_interrupted) {
        if (kt_buf_read_file(&b, portf, NULL) == KT_OK && b.len > 0 &&
            kt_buf_putc(&b, '\0') == KT_OK) {
            unsigned p = 0;
            if (sscanf(b.data, "%u", &p) == 1) {
                s->agent_port = p;
            }
        }
        kt_buf_reset(&b);
        nap_ms(50);
    }
    kt_buf_fini(&b);
    if (s->agent_port == 0) {
        return kt_err_set(err, KT_EIO, "ktwin-agent %s did not start (see %s)", s->name, log);
    }
    return KT_OK;
}

/*
 * The first device interface the broker of s has no subscription for yet
 * (from its log: "<ts>: <client> <qos> ktwin/real/<iface>/+"), or NULL.
 */
static const char *missing_subscription(const run *r, const site_rt *s, kt_buf *b)
{
    char path[RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/mosquitto.log", s->dir);
    kt_buf_reset(b);
    if (kt_buf_read_file(b, path, NULL) != KT_OK || b->len == 0) {
        return sim_kind_iface((sim_kind)0);
    }
    (void)r;
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        char pat[192];
        snprintf(pat, sizeof pat, " ktwin/real/%s/+", sim_kind_iface((sim_kind)k));
        if (strstr(b->data, pat) == NULL) {
            return sim_kind_iface((sim_kind)k);
        }
    }
    return NULL;
}

/* Wait until the hub has the model and every agent its subgraph and broker. */
static kt_status wait_model(run *r, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)64 << 20);
    double dl = mono_s() + 300;
    kt_status st = KT_ETIMEDOUT;
    const char *why = "the hub did not load the model";
    char whybuf[256];
    while (mono_s() < dl && !g_interrupted) {
        if (!kid_alive(r, r->hub)) {
            why = "ktwin-hub exited";
            break;
        }
        double rev = 0;
        bool found = false;
        if (http_get(r, r->hub_port, "/metrics", &b)) {
            rev = sim_run_metric_sum(b.data, "ktwin_hub_graph_revision", NULL, &found);
        }
        bool ready = found && rev > 0;
        for (unsigned i = 0; ready && i < r->o.n_sites; i++) {
            site_rt *s = &r->sites[i];
            bool f1 = false, f2 = false;
            ready = http_get(r, s->agent_port, "/metrics", &b) &&
                    sim_run_metric_sum(b.data, "ktwin_agent_graph_revision", NULL, &f1) == rev &&
                    sim_run_metric_sum(b.data, "ktwin_agent_mqtt_connected", NULL, &f2) == 1 &&
                    f1 && f2;
            if (!ready) {
                why = "an agent did not receive its subgraph or connect to its broker";
            }
            /* neighborhood k (from 1) is at site k % S: a site may have none (N < S) */
            bool hosts = false;
            for (unsigned k = 1; k <= r->o.n_nb && k <= r->o.n_sites; k++) {
                hosts = hosts || k % r->o.n_sites == i;
            }
            const char *miss = ready && hosts ? missing_subscription(r, s, &b) : NULL;
            if (miss != NULL) {
                ready = false;
                snprintf(whybuf, sizeof whybuf,
                         "the agent of %s did not subscribe to ktwin/real/%s/+ at its broker",
                         s->name, miss);
                why = whybuf;
            }
        }
        if (ready) {
            st = KT_OK;
            printf("model loaded: hub revision %.0f, %u agent(s) hold their subgraph and are "
                   "subscribed to every device topic at their site's broker\n",
                   rev, r->o.n_sites);
            break;
        }
        nap_ms(200);
    }
    kt_buf_fini(&b);
    if (st != KT_OK) {
        return kt_err_set(err, st, "%s (logs in %s)", why, r->out);
    }
    return KT_OK;
}

static kt_status start_devices(run *r, kt_err *err)
{
    char nb[16], sites[16], comp[32], dur[32], spread[32], stats[RUN_PATH + 32];
    char log[RUN_PATH + 32];
    char brokers[RUN_MAX_SITES][96];
    char *argv[24 + 2 * RUN_MAX_SITES];
    size_t a = 0;
    snprintf(nb, sizeof nb, "%u", r->o.n_nb);
    snprintf(sites, sizeof sites, "%u", r->o.n_sites);
    snprintf(comp, sizeof comp, "%g", r->o.compress);
    snprintf(dur, sizeof dur, "%g", r->o.duration);
    snprintf(stats, sizeof stats, "%s/devices.jsonl", r->out);
    snprintf(log, sizeof log, "%s/devices.log", r->out);
    argv[a++] = r->self;
    argv[a++] = "devices";
    argv[a++] = "--neighborhoods";
    argv[a++] = nb;
    argv[a++] = "--sites";
    argv[a++] = sites;
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        snprintf(brokers[i], sizeof brokers[i], "%s=tcp://127.0.0.1:%u", r->sites[i].name,
                 r->sites[i].mqtt_port);
        argv[a++] = "--broker";
        argv[a++] = brokers[i];
    }
    argv[a++] = "--compress";
    argv[a++] = comp;
    argv[a++] = "--qos";
    argv[a++] = "1";
    argv[a++] = "--duration";
    argv[a++] = dur;
    argv[a++] = "--stats";
    argv[a++] = stats;
    if (r->o.spread > 0) {
        snprintf(spread, sizeof spread, "%g", r->o.spread);
        argv[a++] = "--spread";
        argv[a++] = spread;
    }
    argv[a] = NULL;
    r->devices = spawn_nice(r, "ktwin-sim devices", argv, log, r->o.devices_nice, err);
    return r->devices < 0 ? err->status : KT_OK;
}

/* ---- the run ------------------------------------------------------------------ */

/* Add every interface of src[0..n) into one histogram `all` (same bounds family). */
static void hist_merge(lat_hist *all, const lat_hist *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < src[i].n; k++) {
            size_t j = 0;
            while (j < all->n && all->le[j] != src[i].le[k]) {
                j++;
            }
            if (j == all->n && all->n < LAT_BOUNDS) {
                all->le[all->n++] = src[i].le[k];
            }
            if (j < all->n) {
                all->cum[j] += src[i].cum[k];
            }
        }
        all->count += src[i].count;
    }
}

/* p99 (ms) of the calls between two cumulative merged histograms; NAN when none. */
static double interval_p99(const lat_hist *now, const lat_hist *before)
{
    static lat_hist d;
    d = *now;
    for (size_t k = 0; k < d.n; k++) {
        for (size_t j = 0; j < before->n; j++) {
            if (before->le[j] == d.le[k]) {
                d.cum[k] -= before->cum[j];
            }
        }
    }
    d.count = now->count - before->count;
    return d.count > 0 ? 1000 * sim_run_hist_quantile(&d, 0.99) : NAN;
}

typedef struct poll_view {
    double published, processed, stored, outbox, down_queued, p99_ms;
    bool hub_ok;
    bool agents_ok; /* every agent answered (else its last figures are used) */
} poll_view;

static void poll_all(run *r, kt_buf *b, poll_view *v)
{
    memset(v, 0, sizeof *v);
    bool final = false;
    cJSON *d = devices_last(r, &final);
    if (d != NULL) {
        v->published = devices_published(d);
        cJSON_Delete(d);
    } else if (r->n_samples > 0) {
        v->published = r->samples[r->n_samples - 1].published;
    }
    v->agents_ok = true;
    v->p99_ms = NAN;
    static lat_hist per_iface[RUN_MAX_IFACES];
    static lat_hist all;
    memset(&all, 0, sizeof all);
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        site_rt *s = &r->sites[i];
        if (http_get(r, s->agent_port, "/metrics", b)) {
            s->last_processed = sim_run_metric_sum(b->data, LAT_METRIC "_count", NULL, NULL);
            s->last_outbox = sim_run_metric_sum(b->data, "ktwin_agent_outbox_events", NULL, NULL);
            size_t n = 0;
            sim_run_hist_add(per_iface, &n, b->data);
            hist_merge(&all, per_iface, n);
        } else {
            v->agents_ok = false; /* busy past the timeout: keep its last figures */
        }
        v->processed += s->last_processed;
        v->outbox += s->last_outbox;
    }
    if (v->agents_ok) {
        if (r->lat_prev != NULL) {
            v->p99_ms = interval_p99(&all, r->lat_prev);
        } else {
            r->lat_prev = kt_xcalloc(1, sizeof *r->lat_prev);
        }
        *r->lat_prev = all;
    } else if (r->lat_prev != NULL) {
        kt_free(r->lat_prev); /* the next interval would mix agents' periods */
        r->lat_prev = NULL;
    }
    if (!r->hub_frozen && http_get(r, r->hub_port, "/metrics", b)) {
        v->hub_ok = true;
        v->stored = sim_run_metric_sum(b->data, "ktwin_hub_events_committed_total", NULL, NULL);
        v->down_queued = sim_run_metric_sum(b->data, "ktwin_hub_downstream_queued", NULL, NULL);
    }
}

static void add_sample(run *r, double t, const poll_view *v)
{
    if (r->n_samples == r->cap_samples) {
        r->cap_samples = r->cap_samples == 0 ? 256 : 2 * r->cap_samples;
        r->samples = kt_xrealloc(r->samples, r->cap_samples * sizeof *r->samples);
    }
    sample *s = &r->samples[r->n_samples];
    s->t = t;
    s->published = v->published;
    s->processed = v->processed;
    /* the frozen hub cannot answer: keep its last figure */
    s->stored = v->hub_ok || r->n_samples == 0 ? v->stored : r->samples[r->n_samples - 1].stored;
    s->outbox = v->outbox;
    s->p99_ms = v->p99_ms;
    s->offline = r->hub_frozen;
    r->n_samples++;
}

/* Events/s between two readings of a counter (0 if it went back: a restarted count). */
static double rate_of(double now, double before, double dt)
{
    return now > before ? round((now - before) / dt * 10) / 10 : 0;
}

/* One progress line: rates over the last `window` seconds of samples. */
static void progress(run *r, double window)
{
    if (r->n_samples == 0) {
        return;
    }
    const sample *s = &r->samples[r->n_samples - 1];
    const sample *p = NULL;
    for (size_t i = r->n_samples - 1; i-- > 0;) {
        p = &r->samples[i];
        if (s->t - p->t >= window - 0.5) {
            break;
        }
    }
    double dt = p != NULL ? s->t - p->t : s->t;
    double rate = dt > 0 ? rate_of(s->published, p != NULL ? p->published : 0, dt) : 0;
    double prate = dt > 0 ? rate_of(s->processed, p != NULL ? p->processed : 0, dt) : 0;
    char hub[96];
    if (r->hub_frozen) {
        snprintf(hub, sizeof hub, "hub OFFLINE (frozen %.0f s)", s->t - r->off_from);
    } else {
        snprintf(hub, sizeof hub, "hub online, stored %.0f", s->stored);
    }
    printf("[%4.0f s] devices %6.0f ev/s (sent %.0f) | edge services %6.0f ev/s (done %.0f) | "
           "outbox %.0f | %s\n",
           s->t, rate, s->published, prate, s->processed, s->outbox, hub);
    fflush(stdout);
}

static void set_offline(run *r, bool off, double t)
{
    kid *h = &r->kids[r->hub];
    if (h->pid == 0) {
        return;
    }
    if (off) {
        (void)kill(h->pid, SIGSTOP);
        r->hub_frozen = true;
        r->off_from = t;
        printf("[%4.0f s] >>> hub link DOWN: ktwin-hub frozen (SIGSTOP); the agents keep serving "
               "their sites and queue hub-bound events in their outboxes\n",
               t);
    } else {
        (void)kill(h->pid, SIGCONT);
        r->hub_frozen = false;
        r->off_to = t;
        printf("[%4.0f s] <<< hub link UP: ktwin-hub resumed (SIGCONT); the agents reconnect and "
               "drain their outboxes\n",
               t);
    }
    fflush(stdout);
}

/* Run the devices to their end, with progress lines and the offline window. */
static kt_status drive(run *r, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)64 << 20);
    r->t0 = mono_s();
    double next = r->o.progress_every, next_sample = 1.0;
    double hard = r->o.duration + 120;
    kt_status st = KT_OK;
    poll_view v;
    while (kid_alive(r, r->devices)) {
        double t = mono_s() - r->t0;
        if (g_interrupted) {
            st = kt_err_set(err, KT_ECLOSED, "interrupted");
            break;
        }
        if (r->o.offline && !r->hub_frozen && r->off_to < 0 && t >= r->o.offline_at) {
            set_offline(r, true, t);
        }
        if (r->hub_frozen && t >= r->o.offline_at + r->o.offline_for) {
            set_offline(r, false, t);
        }
        if (t >= next_sample) {
            /* a sample a second for the report, a line every progress period */
            poll_all(r, &b, &v);
            add_sample(r, t, &v);
            next_sample += 1.0;
            if (t >= next) {
                progress(r, r->o.progress_every);
                next += r->o.progress_every;
            }
        }
        if (t > hard) {
            st = kt_err_set(err, KT_ETIMEDOUT, "ktwin-sim devices still running after %.0f s", t);
            break;
        }
        for (unsigned i = 0; i < r->o.n_sites; i++) {
            if (!kid_alive(r, r->sites[i].agent) || !kid_alive(r, r->sites[i].mosq)) {
                st = kt_err_set(
                    err, KT_EIO, "%s exited during the run",
                    r->kids[kid_alive(r, r->sites[i].agent) ? r->sites[i].mosq : r->sites[i].agent]
                        .name);
            }
        }
        if (!kid_alive(r, r->hub)) {
            st = kt_err_set(err, KT_EIO, "ktwin-hub exited during the run");
        }
        if (st != KT_OK) {
            break;
        }
        nap_ms(100);
    }
    if (r->hub_frozen) {
        set_offline(r, false, mono_s() - r->t0);
    }
    if (st == KT_OK) {
        kid *d = &r->kids[r->devices];
        if (!WIFEXITED(d->status) || WEXITSTATUS(d->status) != 0) {
            st = kt_err_set(err, KT_EIO, "ktwin-sim devices failed (status %d, see %s/devices.log)",
                            d->status, r->out);
        }
    }
    kt_buf_fini(&b);
    return st;
}

/* After the devices: wait until every outbox is empty and the counts settle. */
static kt_status drain(run *r, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)64 << 20);
    double start = mono_s();
    double dl = start + r->o.drain_timeout;
    poll_view v, last;
    memset(&last, 0, sizeof last);
    unsigned settled = 0;
    kt_status st = KT_OK;
    printf("[%4.0f s] devices done; waiting for the edge and the hub to drain\n", mono_s() - r->t0);
    double next_line = start + r->o.progress_every;
    while (settled < 3) {
        if (g_interrupted) {
            st = kt_err_set(err, KT_ECLOSED, "interrupted");
            break;
        }
        if (mono_s() > dl) {
            st = kt_err_set(err, KT_ETIMEDOUT,
                            "not drained after %.0f s: outbox %.0f, hub downstream %.0f, hub %s",
                            r->o.drain_timeout, v.outbox, v.down_queued,
                            v.hub_ok ? "answering" : "not answering");
            break;
        }
        nap_ms(500);
        poll_all(r, &b, &v);
        /* (the journal's size on disk is not a backlog: it is reported, not waited for) */
        bool quiet = v.hub_ok && v.agents_ok && v.outbox == 0 && v.down_queued == 0 &&
                     v.processed == last.processed && v.stored == last.stored;
        settled = quiet ? settled + 1 : 0;
        last = v;
        if (mono_s() >= next_line) {
            add_sample(r, mono_s() - r->t0, &v);
            progress(r, r->o.progress_every);
            next_line += r->o.progress_every;
        }
    }
    if (st == KT_OK) {
        add_sample(r, mono_s() - r->t0, &v);
        printf("[%4.0f s] drained: every outbox is empty and nothing moves any more\n",
               mono_s() - r->t0);
    }
    kt_buf_fini(&b);
    return st;
}

/* ---- results ------------------------------------------------------------------ */

static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *ev_row(cJSON *events, const char *type)
{
    cJSON *row = cJSON_GetObjectItemCaseSensitive(events, type);
    if (row == NULL) {
        row = cJSON_AddObjectToObject(events, type);
        cJSON_AddItemToObject(row, "published", cJSON_CreateNull());
        cJSON_AddItemToObject(row, "processed", cJSON_CreateNull());
        cJSON_AddNumberToObject(row, "stored", 0);
        cJSON_AddNumberToObject(row, "lost", 0);
        cJSON_AddNumberToObject(row, "duplicates", 0);
    }
    return row;
}

static void set_num(cJSON *obj, const char *key, double v)
{
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, num(v));
}

static int type_rank(const char *t)
{
    static const char *const order[] = { "ktwin.real.", "ktwin.command.", "ktwin.store.",
                                         "ktwin.virtual." };
    for (int i = 0; i < 4; i++) {
        if (t != NULL && strncmp(t, order[i], strlen(order[i])) == 0) {
            return i;
        }
    }
    return 4;
}

static int cmp_rows(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int rx = type_rank(x->string), ry = type_rank(y->string);
    if (rx != ry) {
        return rx - ry;
    }
    return strcmp(x->string != NULL ? x->string : "", y->string != NULL ? y->string : "");
}

/* Order the rows: device (real) events, commands, store events, virtual events, others. */
static void sort_rows(cJSON *events)
{
    size_t n = (size_t)cJSON_GetArraySize(events);
    if (n < 2) {
        return;
    }
    cJSON **rows = kt_xcalloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        rows[i] = cJSON_DetachItemViaPointer(events, events->child);
    }
    qsort(rows, n, sizeof *rows, cmp_rows);
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(events, rows[i]); /* keeps the row's key */
    }
    kt_free(rows);
}

/* Rows of the hub's event store by CloudEvent type: stored and duplicate ids. */
static kt_status read_store(run *r, cJSON *events, double *stored, double *dups, kt_err *err)
{
    char path[RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/hub/data/events.db", r->out);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *q = NULL;
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db,
                                "SELECT type, count(*), count(DISTINCT id) FROM events "
                                "GROUP BY type ORDER BY type",
                                -1, &q, NULL);
    }
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(q);
        if (rc != SQLITE_ROW) {
            break;
        }
        const char *type = (const char *)sqlite3_column_text(q, 0);
        double n = (double)sqlite3_column_int64(q, 1);
        double distinct = (double)sqlite3_column_int64(q, 2);
        cJSON *row = ev_row(events, type != NULL ? type : "");
        set_num(row, "stored", n);
        set_num(row, "duplicates", n - distinct);
        *stored += n;
        *dups += n - distinct;
    }
    kt_status st = KT_OK;
    if (rc != SQLITE_DONE) {
        st = kt_err_set_dep(err, KT_EIO, "sqlite", rc, "reading the event store %s: %s", path,
                            db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return st;
}

static void add_usage(cJSON *obj, pid_t pid)
{
    double cpu = 0, rss = 0;
    proc_usage(pid, &cpu, &rss);
    cJSON_AddNumberToObject(obj, "cpu_s", round(cpu * 100) / 100);
    cJSON_AddNumberToObject(obj, "rss_peak_mib", round(rss * 10) / 10);
}

/*
 * Everything that needs live processes: metrics of agents and hub, latency
 * histograms, /proc usage. Then stop them all and read the event store.
 */
static kt_status collect(run *r, cJSON *res, double run_s, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, (size_t)64 << 20);
    static lat_hist hist[RUN_MAX_IFACES];
    size_t n_hist = 0;
    double unserved = 0, outbox_left = 0, journal_left = 0, rejected = 0, up = 0;
    cJSON *resources = cJSON_AddObjectToObject(res, "resources");
    cJSON *agents = cJSON_AddObjectToObject(resources, "agents");
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        site_rt *s = &r->sites[i];
        cJSON *a = cJSON_AddObjectToObject(agents, s->name);
        add_usage(a, r->kids[s->agent].pid);
        if (!http_get(r, s->agent_port, "/metrics", &b)) {
            kt_buf_fini(&b);
            return kt_err_set(err, KT_EIO, "no /metrics from the agent of %s", s->name);
        }
        sim_run_hist_add(hist, &n_hist, b.data);
        unserved += sim_run_metric_sum(b.data, "ktwin_agent_dispatch_dropped_total",
                                       "reason=\"no-service-endpoint\"", NULL);
        outbox_left += sim_run_metric_sum(b.data, "ktwin_agent_outbox_events", NULL, NULL);
        journal_left += sim_run_metric_sum(b.data, "ktwin_agent_journal_bytes", NULL, NULL);
        rejected += sim_run_metric_sum(b.data, "ktwin_agent_events_rejected_total", NULL, NULL);
        up += sim_run_metric_sum(b.data, "ktwin_agent_dispatch_destinations_total",
                                 "kind=\"upstream\"", NULL);
    }
    cJSON *hub = cJSON_AddObjectToObject(resources, "hub");
    add_usage(hub, r->kids[r->hub].pid);
    cJSON *brokers = cJSON_AddObjectToObject(resources, "brokers");
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        add_usage(cJSON_AddObjectToObject(brokers, r->sites[i].name),
                  r->kids[r->sites[i].mosq].pid);
    }
    double hub_dedupe = 0, hub_dropped = 0, hub_committed = 0;
    if (http_get(r, r->hub_port, "/metrics", &b)) {
        hub_dedupe = sim_run_metric_sum(b.data, "ktwin_hub_events_duplicates_total", NULL, NULL);
        hub_dropped = sim_run_metric_sum(b.data, "ktwin_hub_events_dropped_total", NULL, NULL);
        hub_committed = sim_run_metric_sum(b.data, "ktwin_hub_events_committed_total", NULL, NULL);
    }
    kt_buf_fini(&b);

    /* stop: the devices are done; agents first (their outboxes are empty), then hub, brokers */
    bool clean = true;
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        clean &= kid_stop(r, r->sites[i].agent, 30);
    }
    clean &= kid_stop(r, r->hub, 30);
    for (unsigned i = 0; i < r->o.n_sites; i++) {
        (void)kid_stop(r, r->sites[i].mosq, 10);
    }

    /* per event type */
    cJSON *events = cJSON_AddObjectToObject(res, "events");
    bool final = false;
    cJSON *dev = devices_last(r, &final);
    double published = 0, processed = 0, lost = 0, dups = 0, stored = 0, failed = 0;
    cJSON *lat = cJSON_AddObjectToObject(res, "latency_ms");
    for (size_t i = 0; i < n_hist; i++) {
        cJSON *l = cJSON_AddObjectToObject(lat, hist[i].iface);
        cJSON_AddNumberToObject(l, "count", hist[i].count);
        cJSON_AddItemToObject(l, "mean",
                              num(hist[i].count > 0 ? 1000 * hist[i].sum / hist[i].count : NAN));
        static const double qs[] = { 0.5, 0.9, 0.95, 0.99 };
        static const char *const qn[] = { "p50", "p90", "p95", "p99" };
        for (size_t k = 0; k < 4; k++) {
            cJSON_AddItemToObject(l, qn[k], num(1000 * sim_run_hist_quantile(&hist[i], qs[k])));
        }
    }
    double store_dups = 0;
    kt_status st = read_store(r, events, &stored, &store_dups, err);
    dups += store_dups;
    const cJSON *pub = dev != NULL ? cJSON_GetObjectItemCaseSensitive(dev, "published") : NULL;
    const cJSON *it = NULL;
    cJSON_ArrayForEach(it, pub)
    {
        if (!cJSON_IsNumber(it) || it->string == NULL) {
            continue;
        }
        char type[192];
        snprintf(type, sizeof type, "ktwin.real.%s", it->string);
        cJSON *row = ev_row(events, type);
        double p = it->valuedouble;
        set_num(row, "published", p);
        published += p;
        const lat_hist *h = NULL;
        for (size_t k = 0; k < n_hist; k++) {
            if (strcmp(hist[k].iface, it->string) == 0) {
                h = &hist[k];
            }
        }
        if (h != NULL) {
            double c = h->count;
            set_num(row, "processed", c);
            set_num(row, "lost", c < p ? p - c : 0);
            set_num(row, "duplicates",
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "duplicates")) +
                        (c > p ? c - p : 0));
            processed += c;
            lost += c < p ? p - c : 0;
            dups += c > p ? c - p : 0;
        } else {
            /* no service at the edge: the agents send it up, so it must be stored, once */
            double n = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "stored"));
            set_num(row, "lost", n < p ? p - n : 0);
            set_num(row, "duplicates",
                    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "duplicates")) +
                        (n > p ? n - p : 0));
            lost += n < p ? p - n : 0;
            dups += n > p ? n - p : 0;
            cJSON_AddStringToObject(row, "note",
                                    "no twin service for this interface: stored at the hub as is");
        }
    }
    if (dev != NULL) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(dev, "failed");
        failed = cJSON_IsNumber(f) ? f->valuedouble : 0;
        const cJSON *rtt = cJSON_GetObjectItemCaseSensitive(dev, "rtt_ms");
        if (rtt != NULL) {
            cJSON_AddItemToObject(res, "device_rtt_ms", cJSON_Duplicate(rtt, true));
        }
        const cJSON *late = cJSON_GetObjectItemCaseSensitive(dev, "late_ms_max");
        if (cJSON_IsNumber(late)) {
            cJSON_AddNumberToObject(res, "device_late_ms_max", late->valuedouble);
        }
    }
    cJSON_Delete(dev);
    /* commands and other service calls for interfaces no device publishes */
    for (size_t k = 0; k < n_hist; k++) {
        char type[192];
        int n = snprintf(type, sizeof type, "ktwin.real.%s", hist[k].iface);
        if (n > 0 && (size_t)n < sizeof type &&
            cJSON_GetObjectItemCaseSensitive(events, type) == NULL) {
            n = snprintf(type, sizeof type, "ktwin.command.%s.*", hist[k].iface);
            if (n > 0 && (size_t)n < sizeof type) {
                set_num(ev_row(events, type), "processed", hist[k].count);
                processed += hist[k].count;
            }
        }
    }
    lost += outbox_left;
    sort_rows(events);

    cJSON *tot = cJSON_AddObjectToObject(res, "totals");
    cJSON_AddNumberToObject(tot, "published", published);
    cJSON_AddNumberToObject(tot, "processed", processed);
    cJSON_AddNumberToObject(tot, "stored", stored);
    cJSON_AddNumberToObject(tot, "lost", lost);
    cJSON_AddNumberToObject(tot, "duplicates", dups);
    cJSON_AddNumberToObject(tot, "device_publish_failed", failed);
    cJSON_AddNumberToObject(tot, "unserved", unserved);
    cJSON_AddNumberToObject(tot, "rejected", rejected);
    cJSON_AddNumberToObject(tot, "outbox_left", outbox_left);
    cJSON_AddNumberToObject(tot, "journal_left_bytes", journal_left);
    cJSON_AddNumberToObject(tot, "edge_upstream", up);
    cJSON_AddNumberToObject(tot, "hub_committed", hub_committed);
    cJSON_AddNumberToObject(tot, "hub_dedupe_dropped", hub_dedupe);
    cJSON_AddNumberToObject(tot, "hub_dropped", hub_dropped);
    cJSON_AddNumberToObject(tot, "events_per_s", run_s > 0 ? published / run_s : 0);
    cJSON_AddBoolToObject(tot, "clean_shutdown", clean);
    cJSON_AddBoolToObject(res, "ok", st == KT_OK && lost == 0 && dups == 0 && published > 0);
    return st;
}

static void add_series(run *r, cJSON *res)
{
    cJSON *arr = cJSON_AddArrayToObject(res, "series");
    for (size_t i = 0; i < r->n_samples; i++) {
        const sample *s = &r->samples[i];
        const sample *p = i > 0 ? &r->samples[i - 1] : NULL;
        double dt = p != NULL ? s->t - p->t : s->t;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t", round(s->t * 10) / 10);
        if (dt > 0) { /* a counter never goes back; 0 if a process restarted its count */
            cJSON_AddNumberToObject(o, "published_per_s",
                                    rate_of(s->published, p ? p->published : 0, dt));
            cJSON_AddNumberToObject(o, "processed_per_s",
                                    rate_of(s->processed, p ? p->processed : 0, dt));
            cJSON_AddNumberToObject(o, "stored_per_s", rate_of(s->stored, p ? p->stored : 0, dt));
        }
        cJSON_AddNumberToObject(o, "outbox", s->outbox);
        cJSON_AddItemToObject(o, "p99_ms", num(round(s->p99_ms * 100) / 100));
        cJSON_AddBoolToObject(o, "offline", s->offline);
        cJSON_AddItemToArray(arr, o);
    }
}

/* ---- options ------------------------------------------------------------------ */

void sim_run_usage(FILE *out)
{
    fputs("usage: ktwin-sim run --neighborhoods N --sites S [--duration SECONDS]\n"
          "                     [--offline-at SECONDS --offline-for SECONDS] [--compress F]\n"
          "                     --out DIR [--service SPEC]... [--progress SECONDS]\n"
          "                     [--drain-timeout SECONDS] [--paper DIR]\n"
          "\n"
          "Run KTWIN's smart-city experiment on this machine: one mosquitto and one\n"
          "ktwin-agent per site, a ktwin-hub, the model of `ktwin-sim model`, and\n"
          "`ktwin-sim devices` publishing to the sites' brokers. Writes DIR/results.json\n"
          "and DIR/report.html; exits 1 when an event was lost or duplicated.\n"
          "\n"
          "  --neighborhoods N    neighborhoods (593 twins and ~430 devices each)\n"
          "  --sites S            edge sites (one broker + one agent each)\n"
          "  --duration SECONDS   how long the devices publish (default: the paper's\n"
          "                       24 minutes divided by --compress)\n"
          "  --compress F         time compression of the devices' periods (default 16)\n"
          "  --offline-at T       cut the agents' hub link T s after the devices start\n"
          "  --offline-for D      ... for D s (the hub is frozen with SIGSTOP, then SIGCONT)\n"
          "  --service SPEC       a services.specs item for every agent (repeatable; default\n"
          "                       \"*=<build>/services/<x>.so\" for each plugin built)\n"
          "  --spread S           start each neighborhood's devices of a kind at an offset\n"
          "                       in [0, S) model seconds, as KTWIN's containers started\n"
          "                       apart (default 0: all at once, in bursts)\n"
          "  --devices-nice N     run the devices at nice N, 0..19 (default 10): in KTWIN\n"
          "                       they ran on their own nodes; here they are the load\n"
          "                       generator and yield the CPU to the system under test\n"
          "  --progress SECONDS   progress line period (default 5)\n"
          "  --drain-timeout S    longest wait for the pipeline to drain (default 180)\n"
          "  --paper DIR          the KTWIN paper's CSVs (default " KT_PAPER_DIR ")\n"
          "  -o, --out DIR        output directory (created; logs and data of every process)\n",
          out);
}

static int parse_opts(run *r, int argc, char **argv)
{
    run_opts *o = &r->o;
    bool have_dur = false, have_at = false, have_for = false;
    o->compress = 16;
    o->progress_every = 5;
    o->drain_timeout = 180;
    o->devices_nice = 10;
    o->paper_dir = KT_PAPER_DIR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            sim_run_usage(stdout);
            return -1;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ktwin-sim run: %s needs a value\n", a);
            return RUN_USAGE;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--neighborhoods") == 0) {
            bad = parse_uint(v, 100000, &o->n_nb);
        } else if (strcmp(a, "--sites") == 0) {
            bad = parse_uint(v, RUN_MAX_SITES, &o->n_sites);
        } else if (strcmp(a, "--duration") == 0) {
            bad = parse_secs(v, 1, &o->duration);
            have_dur = true;
        } else if (strcmp(a, "--compress") == 0) {
            bad = parse_secs(v, 0.001, &o->compress);
        } else if (strcmp(a, "--offline-at") == 0) {
            bad = parse_secs(v, 0, &o->offline_at);
            have_at = true;
        } else if (strcmp(a, "--offline-for") == 0) {
            bad = parse_secs(v, 0.1, &o->offline_for);
            have_for = true;
        } else if (strcmp(a, "--progress") == 0) {
            bad = parse_secs(v, 0.2, &o->progress_every);
        } else if (strcmp(a, "--spread") == 0) {
            bad = parse_secs(v, 0, &o->spread);
            bad = bad != 0 || o->spread > 240 ? -1 : 0;
        } else if (strcmp(a, "--devices-nice") == 0) {
            char *end = NULL;
            errno = 0;
            long n = strtol(v, &end, 10);
            bad = errno != 0 || end == v || *end != '\0' || n < 0 || n > 19 ? -1 : 0;
            o->devices_nice = (int)n;
        } else if (strcmp(a, "--drain-timeout") == 0) {
            bad = parse_secs(v, 1, &o->drain_timeout);
        } else if (strcmp(a, "--service") == 0) {
            if (o->n_specs == sizeof o->specs / sizeof o->specs[0]) {
                fprintf(stderr, "ktwin-sim run: at most %zu --service\n",
                        sizeof o->specs / sizeof o->specs[0]);
                return RUN_USAGE;
            }
            o->specs[o->n_specs++] = v;
        } else if (strcmp(a, "--paper") == 0) {
            o->paper_dir = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            o->out = v;
        } else {
            fprintf(stderr, "ktwin-sim run: unknown option %s\n", a);
            sim_run_usage(stderr);
            return RUN_USAGE;
        }
        if (bad != 0) {
            fprintf(stderr, "ktwin-sim run: bad value for %s: %s\n", a, v);
            return RUN_USAGE;
        }
    }
    if (o->n_nb == 0 || o->n_sites == 0 || o->out == NULL || o->out[0] == '\0') {
        fprintf(stderr, "ktwin-sim run: %s is required\n",
                o->n_nb == 0      ? "--neighborhoods N"
                : o->n_sites == 0 ? "--sites S"
                                  : "--out DIR");
        sim_run_usage(stderr);
        return RUN_USAGE;
    }
    if (have_at != have_for) {
        fprintf(stderr, "ktwin-sim run: --offline-at and --offline-for go together\n");
        return RUN_USAGE;
    }
    if (!have_dur) {
        o->duration = 1440.0 / o->compress;
    }
    o->offline = have_at;
    if (o->offline && o->offline_at + o->offline_for > o->duration) {
        fprintf(stderr,
                "ktwin-sim run: the offline window (%g s + %g s) must end within --duration "
                "(%g s)\n",
                o->offline_at, o->offline_for, o->duration);
        return RUN_USAGE;
    }
    return RUN_OK;
}

/* ---- main ------------------------------------------------------------------- */

static kt_status setup(run *r, kt_err *err)
{
    char abs[PATH_MAX];
    if (realpath(r->o.out, abs) == NULL) {
        return kt_err_set_errno(err, KT_EIO, errno, "realpath %s", r->o.out);
    }
    if (kt_strlcpy(r->out, abs, sizeof r->out) >= sizeof r->out) {
        return kt_err_set(err, KT_EINVAL, "output path too long: %s", abs);
    }
    char path[RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/hub", r->out);
    kt_status st = mkdir_one(path, err);
    if (st != KT_OK) {
        return st;
    }
    printf("ktwin-sim run: %u neighborhood(s) on %u site(s), devices for %.0f s (time x%g)",
           r->o.n_nb, r->o.n_sites, r->o.duration, r->o.compress);
    if (r->o.offline) {
        printf(", hub link down from %.0f s to %.0f s", r->o.offline_at,
               r->o.offline_at + r->o.offline_for);
    }
    printf("\n  output, logs and data of every process: %s\n", r->out);
    if (r->o.n_specs == 0) {
        printf("  no twin-service plugin found in %s/services: the agents run no service\n",
               r->build);
    }
    for (size_t i = 0; i < r->o.n_specs; i++) {
        printf("  twin services: %s\n", r->o.specs[i]);
    }
    fflush(stdout);
    if ((st = gen_model(r, err)) != KT_OK) {
        return st;
    }
    kt_buf agents;
    kt_buf_init(&agents, (size_t)1 << 20);
    char tokens[RUN_MAX_SITES][40];
    for (unsigned i = 0; i < r->o.n_sites && st == KT_OK; i++) {
        site_rt *s = &r->sites[i];
        snprintf(s->name, sizeof s->name, "site-%02u", i); /* as `ktwin-sim model` labels them */
        char dir[RUN_PATH + 40];
        snprintf(dir, sizeof dir, "%s/site-%02u", r->out, i);
        if (kt_strlcpy(s->dir, dir, sizeof s->dir) >= sizeof s->dir) {
            st = kt_err_set(err, KT_EINVAL, "output path too long: %s", dir);
            break;
        }
        st = mkdir_one(s->dir, err);
        if (st == KT_OK) {
            st = random_token(tokens[i], sizeof tokens[i], err);
        }
        if (st == KT_OK && kt_buf_printf(&agents, "%s %s\n", s->name, tokens[i]) != KT_OK) {
            st = kt_err_set(err, KT_ENOMEM, "out of memory");
        }
    }
    if (st == KT_OK && kt_buf_putc(&agents, '\0') != KT_OK) {
        st = kt_err_set(err, KT_ENOMEM, "out of memory");
    }
    if (st == KT_OK) {
        st = start_hub(r, agents.data, err);
    }
    kt_buf_fini(&agents);
    if (st == KT_OK) {
        printf("started ktwin-hub (pid %d) on 127.0.0.1:%u\n", (int)r->kids[r->hub].pid,
               r->hub_port);
    }
    for (unsigned i = 0; i < r->o.n_sites && st == KT_OK; i++) {
        st = start_site(r, &r->sites[i], tokens[i], err);
        if (st == KT_OK) {
            printf("started %s: mosquitto (pid %d) on port %u, ktwin-agent (pid %d) on port %u\n",
                   r->sites[i].name, (int)r->kids[r->sites[i].mosq].pid, r->sites[i].mqtt_port,
                   (int)r->kids[r->sites[i].agent].pid, r->sites[i].agent_port);
        }
    }
    fflush(stdout);
    if (st == KT_OK) {
        st = wait_model(r, err);
    }
    return st;
}

int sim_run_main(int argc, char **argv)
{
    static run r; /* large; one per process */
    memset(&r, 0, sizeof r);
    r.hub = r.devices = -1;
    r.off_from = r.off_to = -1;
    int prc = parse_opts(&r, argc, argv);
    if (prc != RUN_OK) {
        return prc < 0 ? RUN_OK : prc;
    }
    kt_err err = { 0 };
    kt_json_init();
    char spec_store[16][RUN_PATH];
    if (find_self(&r, &err) != KT_OK || mkdir_one(r.o.out, &err) != KT_OK) {
        fprintf(stderr, "ktwin-sim run: %s\n", err.msg);
        return RUN_FAILED;
    }
    if (r.o.n_specs == 0) {
        default_specs(&r, spec_store, 16);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    r.curl = curl_easy_init();

    cJSON *res = cJSON_CreateObject();
    double t_start = mono_s();
    kt_status st =
        r.curl != NULL ? setup(&r, &err) : kt_err_set(&err, KT_ENOMEM, "curl_easy_init failed");
    if (st == KT_OK) {
        st = start_devices(&r, &err);
    }
    if (st == KT_OK) {
        printf("devices started (ktwin-sim devices, pid %d, QoS 1); a progress line every %g s:\n",
               (int)r.kids[r.devices].pid, r.o.progress_every);
        fflush(stdout);
        st = drive(&r, &err);
    }
    double run_s = r.t0 > 0 ? mono_s() - r.t0 : 0;
    if (st == KT_OK) {
        st = drain(&r, &err);
    }
    cJSON *sc = cJSON_AddObjectToObject(res, "scenario");
    cJSON_AddNumberToObject(sc, "neighborhoods", r.o.n_nb);
    cJSON_AddNumberToObject(sc, "sites", r.o.n_sites);
    cJSON_AddNumberToObject(sc, "duration_s", r.o.duration);
    cJSON_AddNumberToObject(sc, "compress", r.o.compress);
    cJSON_AddNumberToObject(sc, "spread_s", r.o.spread);
    cJSON_AddNumberToObject(sc, "devices_nice", r.o.devices_nice);
    cJSON_AddNumberToObject(sc, "devices_run_s", round(run_s * 10) / 10);
    cJSON_AddNumberToObject(sc, "wall_s", round((mono_s() - t_start) * 10) / 10);
    cJSON_AddStringToObject(sc, "offline_mode", "hub frozen: SIGSTOP, then SIGCONT");
    cJSON *off = cJSON_AddArrayToObject(res, "offline");
    if (r.off_from >= 0) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddNumberToObject(w, "from_s", round(r.off_from * 10) / 10);
        cJSON_AddNumberToObject(w, "to_s", round((r.off_to >= 0 ? r.off_to : run_s) * 10) / 10);
        cJSON_AddItemToArray(off, w);
    }
    if (st == KT_OK) {
        st = collect(&r, res, run_s, &err);
    }
    kill_all(&r);
    add_series(&r, res);
    if (st != KT_OK) {
        cJSON_AddStringToObject(res, "error", err.msg);
        cJSON_ReplaceItemInObjectCaseSensitive(res, "ok", cJSON_CreateFalse());
        if (cJSON_GetObjectItemCaseSensitive(res, "ok") == NULL) {
            cJSON_AddFalseToObject(res, "ok");
        }
    }

    /* results.json and report.html, also after a failure (they say what failed) */
    int rc = RUN_FAILED;
    kt_buf b;
    kt_buf_init(&b, (size_t)256 << 20);
    char path[RUN_PATH + 32], html[RUN_PATH + 32];
    snprintf(path, sizeof path, "%s/results.json", r.out[0] != '\0' ? r.out : r.o.out);
    snprintf(html, sizeof html, "%s/report.html", r.out[0] != '\0' ? r.out : r.o.out);
    kt_err werr = { 0 };
    if (kt_json_print_buf(res, &b) != KT_OK || kt_buf_putc(&b, '\n') != KT_OK ||
        kt_buf_write_file(&b, path, &werr) != KT_OK ||
        sim_report_write(res, r.o.paper_dir, html, &werr) != KT_OK) {
        fprintf(stderr, "ktwin-sim run: writing results: %s\n", werr.msg);
    } else {
        const cJSON *tot = cJSON_GetObjectItemCaseSensitive(res, "totals");
        if (st != KT_OK) {
            fprintf(stderr, "ktwin-sim run: FAILED: %s\n", err.msg);
        } else if (tot != NULL) {
#define TOT(k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(tot, k))
            printf("\ntotals: published %.0f, processed %.0f, stored %.0f, lost %.0f, "
                   "duplicates %.0f (%.0f device events/s over %.0f s)\n",
                   TOT("published"), TOT("processed"), TOT("stored"), TOT("lost"),
                   TOT("duplicates"), TOT("events_per_s"), run_s);
            double peak = 0;
            for (size_t i = 0; i < r.n_samples; i++) {
                peak = r.samples[i].outbox > peak ? r.samples[i].outbox : peak;
            }
            printf("        the agents handed %.0f events to the hub, which committed %.0f to its "
                   "event store\n"
                   "        (%.0f re-sent after the outage were recognised and dropped); the "
                   "outboxes peaked at %.0f events\n",
                   TOT("edge_upstream"), TOT("hub_committed"), TOT("hub_dedupe_dropped"), peak);
#undef TOT
            rc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")) ? RUN_OK : RUN_FAILED;
        }
        printf("results: %s\nreport:  %s\n", path, html);
    }
    kt_buf_fini(&b);
    cJSON_Delete(res);
    kt_free(r.samples);
    kt_free(r.lat_prev);
    curl_easy_cleanup(r.curl);
    curl_global_cleanup();
    return rc;
}
