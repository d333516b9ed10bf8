/*
 * main.c — ktwin-sim, the smart-city simulator. main() only dispatches.
 *
 *   ktwin-sim model --neighborhoods N [--sites S] -o DIR [--format yaml|json]
 *                   [--ontology DIR] [--namespace NS]
 *
 * `model` writes a complete KTWIN smart-city model into DIR:
 *   interfaces.yaml         the 63 ontology TwinInterfaces with KTWIN's additions (ontology.h)
 *   instances-0000.<ext>    the city instance
 *   instances-KKKK.<ext>    neighborhood K, 593 TwinInstances each (city.h)
 *   policy.yaml             a PlacementPolicy for the sites
 * With --format json each instance file is a JSON stream (one document per
 * line), which model_load_path reads like YAML.
 *
 *   ktwin-sim devices --neighborhoods N [--sites S] --broker site-K=URL ...
 *                     [--compress F] [--qos 0|1] [--duration S] [--stats FILE]
 *
 * `devices` runs KTWIN's smart-city devices against the sites' MQTT brokers
 * (devices.h, which also documents the --stats file).
 *
 * Exit status: 0 written, 1 failure, 2 usage.
 * Thread: main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "city.h"
#include "devices.h"
#include "kt/buf.h"
#include "kt/err.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/diag.h"
#include "ontology.h"
#include "report.h"
#include "run.h"

#ifndef KT_ONTOLOGY_DIR
#define KT_ONTOLOGY_DIR "data/smartcity-ontology/Ontology"
#endif

enum { SIM_OK = 0, SIM_FAILED = 1, SIM_USAGE = 2 };

static void usage(FILE *out)
{
    fputs("usage: ktwin-sim model --neighborhoods N [--sites S] -o DIR [--format yaml|json]\n"
          "                       [--ontology DIR] [--namespace NS]\n"
          "\n"
          "Write KTWIN's smart-city model: DIR/interfaces.yaml (the DTDL ontology as\n"
          "TwinInterfaces), DIR/instances-NNNN.yaml|json (593 TwinInstances per\n"
          "neighborhood, plus one city) and DIR/policy.yaml (a PlacementPolicy).\n"
          "\n"
          "  --neighborhoods N  number of neighborhoods, 1..99999\n"
          "  --sites S          label neighborhood k and its twins ktwin.io/site: site-(k % S)\n"
          "  -o, --output DIR   output directory (created if missing)\n"
          "  --format F         yaml (default) or json (one document per line)\n"
          "  --ontology DIR     DTDL ontology (default " KT_ONTOLOGY_DIR ")\n"
          "  --namespace NS     metadata.namespace (default ktwin)\n"
          "  -h, --help         show this help\n",
          out);
}

static void usage_devices(FILE *out)
{
    fputs("usage: ktwin-sim devices --neighborhoods N [--sites S]\n"
          "                         (--broker site-K=URL ... | --brokers URL,URL,...)\n"
          "                         [--compress F] [--qos 0|1] [--duration SECONDS]\n"
          "                         [--stats FILE] [--conns C] [--inflight W]\n"
          "                         [--connect-timeout S] [--drain S] [--spread S]\n"
          "                         [--only-site K]\n"
          "                         [--client-id PREFIX]\n"
          "\n"
          "Publish MQTT as KTWIN's smart-city devices do: 503 devices per neighborhood,\n"
          "KTWIN's payloads, periods and six 240 s windows. Neighborhood k publishes to\n"
          "site (k % S)'s broker, like the ktwin.io/site labels of `ktwin-sim model`.\n"
          "Subscribes to ktwin/virtual/# and measures device round trips.\n"
          "\n"
          "  --neighborhoods N    1..99999\n"
          "  --sites S            number of sites (default 1)\n"
          "  --broker site-K=URL  broker of site K (tcp://host:port); repeat per site\n"
          "  --brokers LIST       comma-separated broker URLs, site 0 first\n"
          "  --compress F         time compression: a window lasts 240/F s (default 1)\n"
          "  --qos Q              0 or 1 (default 1)\n"
          "  --duration SECONDS   stop publishing after this (default or 0: all six windows)\n"
          "  --stats FILE         JSON lines once a second and a final one (devices.h)\n"
          "  --conns C            MQTT connections per site (default 1)\n"
          "  --inflight W         sends in flight per connection (default 200)\n"
          "  --connect-timeout S  every broker must accept us within S s (default 15)\n"
          "  --drain S            wait up to S s after the last publish (default 5)\n"
          "  --spread S           start each neighborhood's devices of a kind (one KTWIN\n"
          "                       container) at an offset in [0, S) model seconds, not\n"
          "                       all at once (default 0)\n"
          "  --only-site K        run only site K's neighborhoods (one process per site)\n"
          "  --client-id PREFIX   MQTT client ids PREFIX-<site>-<conn>\n"
          "  --log-level L        err|warn|notice|info|debug (default warn)\n",
          out);
}

static int parse_count(const char *s, unsigned max, unsigned *out)
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

/* A Kubernetes namespace: an RFC 1123 label. */
static int valid_namespace(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static kt_status mkdir_p(const char *path, kt_err *err)
{
    char tmp[4096];
    if (kt_strlcpy(tmp, path, sizeof tmp) >= sizeof tmp) {
        return kt_err_set(err, KT_EINVAL, "path too long: %s", path);
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", tmp);
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return kt_err_set_errno(err, KT_EIO, errno, "mkdir %s", tmp);
    }
    return KT_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_model(int argc, char **argv)
{
    sim_city_opts o = { 0, 0, SIM_FORMAT_YAML, "ktwin" };
    const char *outdir = NULL;
    const char *ontology = KT_ONTOLOGY_DIR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return SIM_OK;
        }
        if (v == NULL) {
            fprintf(stderr, "ktwin-sim model: %s needs a value\n", a);
            return SIM_USAGE;
        }
        i++;
        if (strcmp(a, "--neighborhoods") == 0) {
            if (parse_count(v, SIM_CITY_MAX_NEIGHBORHOODS, &o.n_neighborhoods) != 0) {
                fprintf(stderr, "ktwin-sim model: --neighborhoods takes 1..%u\n",
                        SIM_CITY_MAX_NEIGHBORHOODS);
                return SIM_USAGE;
            }
        } else if (strcmp(a, "--sites") == 0) {
            if (parse_count(v, SIM_CITY_MAX_SITES, &o.n_sites) != 0) {
                fprintf(stderr, "ktwin-sim model: --sites takes 1..%u\n", SIM_CITY_MAX_SITES);
                return SIM_USAGE;
            }
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            outdir = v;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "yaml") == 0) {
                o.format = SIM_FORMAT_YAML;
            } else if (strcmp(v, "json") == 0) {
                o.format = SIM_FORMAT_JSON;
            } else {
                fprintf(stderr, "ktwin-sim model: --format is yaml or json, not %s\n", v);
                return SIM_USAGE;
            }
        } else if (strcmp(a, "--ontology") == 0) {
            ontology = v;
        } else if (strcmp(a, "--namespace") == 0) {
            if (!valid_namespace(v)) {
                fprintf(stderr, "ktwin-sim model: --namespace %s is not a DNS label\n", v);
                return SIM_USAGE;
            }
            o.k8s_namespace = v;
        } else {
            fprintf(stderr, "ktwin-sim model: unknown option %s\n", a);
            usage(stderr);
            return SIM_USAGE;
        }
    }
    if (o.n_neighborhoods == 0 || outdir == NULL || outdir[0] == '\0') {
        fprintf(stderr, "ktwin-sim model: %s is required\n",
                o.n_neighborhoods == 0 ? "--neighborhoods N" : "-o DIR");
        usage(stderr);
        return SIM_USAGE;
    }

    double t0 = now_s();
    kt_err err = { 0 };
    model_diag diag;
    model_diag_init(&diag);
    kt_buf b;
    kt_buf_init(&b, (size_t)64 << 20);
    char path[4096];
    size_t n_ifaces = 0, n_instances = 0;
    int rc = SIM_FAILED;
    if (mkdir_p(outdir, &err) != KT_OK) {
        goto done;
    }
    kt_status st = sim_ontology_write(ontology, o.k8s_namespace, &b, &n_ifaces, &diag, &err);
    if (st != KT_OK) {
        model_diag_print(&diag, stderr);
        goto done;
    }
    snprintf(path, sizeof path, "%s/interfaces.yaml", outdir);
    if (kt_buf_write_file(&b, path, &err) != KT_OK) {
        goto done;
    }
    if (sim_city_write_instances(&o, outdir, &n_instances, &err) != KT_OK) {
        goto done;
    }
    kt_buf_reset(&b);
    snprintf(path, sizeof path, "%s/policy.yaml", outdir);
    if (sim_city_policy(&o, &b) != KT_OK || kt_buf_write_file(&b, path, &err) != KT_OK) {
        (void)kt_err_set(&err, KT_EIO, "writing %s", path);
        goto done;
    }
    /* The published ontology converts with a few warnings (KTWIN.md §6.0); only count them. */
    printf("wrote %zu interfaces (%zu DTDL warnings), %zu instances (%u neighborhoods, %u sites) "
           "and a policy to %s in %.2f s\n",
           n_ifaces, diag.n_warnings, n_instances, o.n_neighborhoods, o.n_sites, outdir,
           now_s() - t0);
    rc = SIM_OK;
done:
    if (rc != SIM_OK) {
        fprintf(stderr, "ktwin-sim model: %s\n", err.msg[0] != '\0' ? err.msg : "failed");
    }
    kt_buf_fini(&b);
    model_diag_fini(&diag);
    return rc;
}

/* ---- devices ---------------------------------------------------------------------------- */

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min) || !(v <= max)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* "site-K=URL" or "K=URL": K into *site, URL into *url. */
static int parse_broker(const char *s, unsigned *site, const char **url)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL) {
        return -1;
    }
    const char *num = strncmp(s, "site-", 5) == 0 ? s + 5 : s;
    char buf[16];
    size_t n = (size_t)(eq - num);
    if (n == 0 || n >= sizeof buf) {
        return -1;
    }
    memcpy(buf, num, n);
    buf[n] = '\0';
    if (strspn(buf, "0123456789") != n) {
        return -1;
    }
    unsigned long v = strtoul(buf, NULL, 10); /* site-01 = site-1 */
    if (v >= SIM_DEVICES_MAX_SITES) {
        return -1;
    }
    if (eq[1] == '\0') {
        return -1;
    }
    *site = (unsigned)v;
    *url = eq + 1;
    return 0;
}

#define MAX_BROKER_ARGS 256

static int cmd_devices(int argc, char **argv)
{
    sim_devices_opts o;
    sim_devices_opts_init(&o);
    unsigned b_site[MAX_BROKER_ARGS];
    const char *b_url[MAX_BROKER_ARGS];
    size_t n_b = 0;
    char *list = NULL; /* --brokers, split in place */
    const char **brokers = NULL;
    int rc = SIM_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage_devices(stdout);
            rc = SIM_OK;
            goto done;
        }
        if (v == NULL) {
            fprintf(stderr, "ktwin-sim devices: %s needs a value\n", a);
            goto done;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--neighborhoods") == 0) {
            bad = parse_count(v, SIM_CITY_MAX_NEIGHBORHOODS, &o.n_neighborhoods);
        } else if (strcmp(a, "--sites") == 0) {
            bad = parse_count(v, SIM_DEVICES_MAX_SITES, &o.n_sites);
        } else if (strcmp(a, "--broker") == 0) {
            if (n_b == MAX_BROKER_ARGS) {
                fprintf(stderr, "ktwin-sim devices: more than %d --broker\n", MAX_BROKER_ARGS);
                goto done;
            }
            bad = parse_broker(v, &b_site[n_b], &b_url[n_b]);
            if (bad != 0 && strchr(v, '=') == NULL) {
                b_site[n_b] = 0; /* a bare URL: site 0 */
                b_url[n_b] = v;
                bad = 0;
            }
            n_b += bad == 0 ? 1 : 0;
        } else if (strcmp(a, "--brokers") == 0) {
            kt_free(list);
            list = kt_xstrdup(v);
        } else if (strcmp(a, "--compress") == 0) {
            bad = parse_double(v, 1e-3, 1e6, &o.compress);
        } else if (strcmp(a, "--qos") == 0) {
            bad = strcmp(v, "0") == 0 || strcmp(v, "1") == 0 ? 0 : -1;
            o.qos = v[0] == '1' ? 1 : 0;
        } else if (strcmp(a, "--duration") == 0) {
            bad = parse_double(v, 0, 1e7, &o.duration_s); /* 0: the full run */
        } else if (strcmp(a, "--stats") == 0) {
            o.stats_path = v;
        } else if (strcmp(a, "--conns") == 0) {
            bad = parse_count(v, 64, &o.conns_per_site);
        } else if (strcmp(a, "--inflight") == 0) {
            bad = parse_count(v, 65535, &o.max_inflight);
        } else if (strcmp(a, "--connect-timeout") == 0) {
            bad = parse_double(v, 1e-3, 3600, &o.connect_timeout_s);
        } else if (strcmp(a, "--drain") == 0) {
            bad = parse_double(v, 0, 3600, &o.drain_s);
        } else if (strcmp(a, "--spread") == 0) {
            bad = parse_double(v, 0, 240, &o.spread_s);
        } else if (strcmp(a, "--only-site") == 0) {
            unsigned k = 0;
            bad = strcmp(v, "0") == 0 ? 0 : parse_count(v, SIM_DEVICES_MAX_SITES - 1, &k);
            o.only_site = (int)k;
        } else if (strcmp(a, "--client-id") == 0) {
            o.client_id_prefix = v;
        } else if (strcmp(a, "--log-level") == 0) {
            int l = kt_log_level_parse(v);
            bad = l < 0 ? -1 : 0;
            if (l >= 0) {
                kt_log_set_level((kt_log_level)l);
            }
        } else {
            fprintf(stderr, "ktwin-sim devices: unknown option %s\n", a);
            usage_devices(stderr);
            goto done;
        }
        if (bad != 0) {
            fprintf(stderr, "ktwin-sim devices: bad value for %s: %s\n", a, v);
            goto done;
        }
    }
    if (o.n_neighborhoods == 0) {
        fprintf(stderr, "ktwin-sim devices: --neighborhoods N is required\n");
        usage_devices(stderr);
        goto done;
    }
    brokers = kt_xcalloc(o.n_sites, sizeof *brokers);
    if (list != NULL) {
        unsigned s = 0;
        for (char *p = list; p != NULL && *p != '\0'; s++) {
            char *comma = strchr(p, ',');
            if (comma != NULL) {
                *comma = '\0';
            }
            if (s >= o.n_sites) {
                fprintf(stderr, "ktwin-sim devices: --brokers lists more than %u sites\n",
                        o.n_sites);
                goto done;
            }
            brokers[s] = p;
            p = comma != NULL ? comma + 1 : NULL;
        }
    }
    for (size_t i = 0; i < n_b; i++) {
        if (b_site[i] >= o.n_sites) {
            fprintf(stderr, "ktwin-sim devices: --broker site-%u, but --sites is %u\n", b_site[i],
                    o.n_sites);
            goto done;
        }
        brokers[b_site[i]] = b_url[i];
    }
    if (o.only_site >= 0 && (unsigned)o.only_site >= o.n_sites) {
        fprintf(stderr, "ktwin-sim devices: --only-site %d, but --sites is %u\n", o.only_site,
                o.n_sites);
        goto done;
    }
    for (unsigned s = 0; s < o.n_sites; s++) {
        if (o.only_site >= 0 && s != (unsigned)o.only_site) {
            continue;
        }
        if (brokers[s] == NULL || brokers[s][0] == '\0') {
            fprintf(stderr, "ktwin-sim devices: no broker for site-%u (--broker site-%u=URL)\n", s,
                    s);
            goto done;
        }
    }
    o.brokers = brokers;

    kt_err err = { 0 };
    sim_devices_result res;
    kt_status st = sim_devices_run(&o, &res, &err);
    if (st != KT_OK) {
        fprintf(stderr, "ktwin-sim devices: %s\n", err.msg[0] != '\0' ? err.msg : "failed");
        rc = SIM_FAILED;
        goto done;
    }
    uint64_t total = 0, sched = 0;
    for (int k = 0; k < SIM_KIND_COUNT; k++) {
        total += res.published[k];
        sched += res.scheduled[k];
    }
    printf("devices: %u neighborhoods, %u sites, %.1f s: published %llu of %llu scheduled, "
           "failed %llu, late max %.1f ms, virtual %llu, round trips %llu "
           "(p50 %.1f ms, p90 %.1f ms, p99 %.1f ms)%s\n",
           o.n_neighborhoods, o.n_sites, res.elapsed_s, (unsigned long long)total,
           (unsigned long long)sched, (unsigned long long)res.failed, res.late_ms_max,
           (unsigned long long)res.virtual_rx, (unsigned long long)res.rtt_n, res.rtt_p50_ms,
           res.rtt_p90_ms, res.rtt_p99_ms, res.interrupted ? " (interrupted)" : "");
    rc = SIM_OK;
done:
    kt_free(brokers);
    kt_free(list);
    return rc;
}

int main(int argc, char **argv)
{
    kt_log_set_level(KT_LOG_WARN);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        fputc('\n', stdout);
        usage_devices(stdout);
        return SIM_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "model") == 0) {
        return cmd_model(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "devices") == 0) {
        return cmd_devices(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "run") == 0) { /* run.h */
        return sim_run_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "report") == 0) { /* report.h */
        return sim_report_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "ktwin-sim: %s\n", argc < 2 ? "no command" : "unknown command");
    usage(stderr);
    return SIM_USAGE;
}
