/*
 * cmd_placement.c — `ktwinctl placement` (where every interface runs) and
 * `ktwinctl placement explain INTERFACE [--site S]` (why), from the hub's
 * GET /api/v1/placement and GET /api/v1/placement/{iface}[?site=S]. The
 * JSON shapes are model_placement_to_json / model_placement_explain_json
 * (model/placement.h).
 *
 * Thread: main only.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "kt/mem.h"
#include "ktwinctl.h"
#include "remote.h"

#define ANSWER_MAX ((size_t)256 << 20)

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static int width(const cJSON *arr, const char *key, int min)
{
    const cJSON *it;
    int w = min;
    cJSON_ArrayForEach(it, arr)
    {
        int l = (int)strlen(jstr(it, key));
        w = l > w ? l : w;
    }
    return w;
}

static void fmt_cap(char *out, size_t cap, double used, double total, double unit)
{
    if (total < 0) {
        (void)snprintf(out, cap, "%.0f/unlimited", used / unit);
    } else {
        (void)snprintf(out, cap, "%.0f/%.0f", used / unit, total / unit);
    }
}

static void print_overview(const cJSON *j)
{
    const cJSON *ifs = cJSON_GetObjectItemCaseSensitive(j, "interfaces");
    const cJSON *sites = cJSON_GetObjectItemCaseSensitive(j, "sites");
    printf("placement revision %.0f\n\n", jnum(j, "revision"));
    int wi = width(ifs, "interface", 9), wr = width(ifs, "rule", 4);
    printf("%-*s   %-7s   %-*s   %9s   %s\n", wi, "INTERFACE", "WHERE", wr, "RULE", "INSTANCES",
           "REASON");
    const cJSON *it;
    cJSON_ArrayForEach(it, ifs)
    {
        printf("%-*s   %-7s   %-*s   %9.0f   %s\n", wi, jstr(it, "interface"), jstr(it, "where"),
               wr, jstr(it, "rule"), jnum(it, "instances"), jstr(it, "reason"));
    }
    if (cJSON_GetArraySize(sites) == 0) {
        printf("\nno sites\n");
        return;
    }
    int ws = width(sites, "name", 4);
    printf("\n%-*s   %-9s   %-17s   %-17s   %9s   %4s   %5s   %7s\n", ws, "SITE", "CONNECTED",
           "CPU(m) USED/CAP", "MEMORY(Mi) USED/CAP", "INSTANCES", "EDGE", "CLOUD", "PENDING");
    cJSON_ArrayForEach(it, sites)
    {
        char cpu[64], mem[64];
        fmt_cap(cpu, sizeof cpu, jnum(it, "used_cpu_millis"), jnum(it, "cpu_millis"), 1.0);
        fmt_cap(mem, sizeof mem, jnum(it, "used_memory_bytes"), jnum(it, "memory_bytes"),
                1024.0 * 1024.0);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "connected");
        printf("%-*s   %-9s   %-17s   %-17s   %9.0f   %4.0f   %5.0f   %7.0f\n", ws,
               jstr(it, "name"), cJSON_IsTrue(c) ? "yes" : "no", cpu, mem, jnum(it, "instances"),
               jnum(it, "edge"), jnum(it, "cloud"), jnum(it, "pending"));
    }
}

static void print_explain(const cJSON *j)
{
    printf("%s: %s (rule %s): %s\n", jstr(j, "interface"), jstr(j, "where"), jstr(j, "rule"),
           jstr(j, "reason"));
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        if (cJSON_IsString(s)) {
            printf("  %s\n", s->valuestring);
        }
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ktwinctl placement [-o json] [hub flags]\n"
            "       ktwinctl placement explain INTERFACE [--site SITE] [-o json] [hub flags]\n\n"
            "Without a subcommand: every interface with where it runs (edge, cloud, pending,\n"
            "or mixed when that differs by site), the deciding rule and a reason, then every\n"
            "site with its connection, capacity use and decision counts.\n"
            "explain: the steps that decided INTERFACE: each rule tried, then each site\n"
            "(only SITE with --site) with its state, capacity and outcome.\n\n"
            "%s",
            ktwinctl_remote_help);
}

int ktwinctl_placement(int argc, char **argv)
{
    ktwinctl_remote_opts ro = { 0 };
    int explain = 0, json = 0;
    const char *iface = NULL, *site = NULL;
    int rc = KTWINCTL_OK;
    for (int i = 1; i < argc && rc == KTWINCTL_OK; i++) {
        int f = ktwinctl_remote_flag(&ro, &i, argc, argv);
        if (f < 0) {
            rc = KTWINCTL_USAGE;
        } else if (f > 0) {
            continue;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return KTWINCTL_OK;
        } else if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (strcmp(v, "json") != 0) {
                fprintf(stderr, "ktwinctl placement: -o takes json, not \"%s\"\n", v);
                rc = KTWINCTL_USAGE;
            }
            json = 1;
        } else if (strcmp(argv[i], "--site") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ktwinctl placement: --site needs a SITE\n");
                rc = KTWINCTL_USAGE;
            } else {
                site = argv[++i];
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ktwinctl placement: unknown option %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        } else if (!explain && strcmp(argv[i], "explain") == 0) {
            explain = 1;
        } else if (explain && iface == NULL) {
            iface = argv[i];
        } else {
            fprintf(stderr, "ktwinctl placement: unexpected argument %s\n", argv[i]);
            rc = KTWINCTL_USAGE;
        }
    }
    if (rc == KTWINCTL_OK && explain && iface == NULL) {
        fprintf(stderr, "ktwinctl placement explain: which INTERFACE?\n");
        rc = KTWINCTL_USAGE;
    }
    if (rc == KTWINCTL_OK && !explain && site != NULL) {
        fprintf(stderr, "ktwinctl placement: --site goes with explain\n");
        rc = KTWINCTL_USAGE;
    }
    if (rc != KTWINCTL_OK) {
        usage(stderr);
        return rc;
    }
    ktwinctl_remote *r = NULL;
    rc = ktwinctl_remote_open(&r, &ro);
    if (rc != KTWINCTL_OK) {
        return rc;
    }
    char path[2048], what[1024];
    if (explain) {
        char *ei = ktwinctl_remote_escape(r, iface);
        char *es = site != NULL ? ktwinctl_remote_escape(r, site) : NULL;
        (void)snprintf(path, sizeof path, "/api/v1/placement/%s%s%s", ei, es ? "?site=" : "",
                       es ? es : "");
        (void)snprintf(what, sizeof what, "placement explain %s%s%s", iface, site ? " --site " : "",
                       site ? site : "");
        kt_free(ei);
        kt_free(es);
    } else {
        (void)snprintf(path, sizeof path, "/api/v1/placement");
        (void)snprintf(what, sizeof what, "placement");
    }
    kt_buf resp;
    kt_buf_init(&resp, ANSWER_MAX);
    long status = 0;
    rc = ktwinctl_remote_call(r, "GET", path, NULL, 0, NULL, &status, &resp);
    if (rc == KTWINCTL_OK && status != 200) {
        rc = ktwinctl_remote_report(r, status, &resp, what, NULL, NULL);
    } else if (rc == KTWINCTL_OK) {
        cJSON *j = NULL;
        kt_err err = { 0 };
        if (kt_json_parse(resp.data, resp.len, resp.len, &j, &err) != KT_OK) {
            fprintf(stderr, "ktwinctl %s: the hub's answer is not JSON: %s\n", what, err.msg);
            rc = KTWINCTL_INVALID;
        } else if (json) {
            rc = ktwinctl_print_json(j, stdout) == 0 ? KTWINCTL_OK : KTWINCTL_INVALID;
        } else if (explain) {
            print_explain(j);
        } else {
            print_overview(j);
        }
        cJSON_Delete(j);
    }
    kt_buf_fini(&resp);
    ktwinctl_remote_free(r);
    return rc;
}
