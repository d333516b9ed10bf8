/*
 * remote.c — ktwinctl's REST client: where the hub is, one blocking libcurl
 * request at a time, and how refusals are printed. See remote.h.
 *
 * DESIGN: one CURL easy handle per process, reset per request, so the
 * connection to the hub is reused by commands that make several requests.
 * CURLOPT_NOPROXY "*" keeps a proxy from the environment away from the hub
 * (the hub is addressed directly, as kubectl does with its server). Only
 * http and https are allowed, redirects are not followed (a bearer token
 * must not travel to another host).
 *
 * Thread: main only. Ownership: the client owns its handle and strings;
 * curl's memory never leaves this file.
 */
#include "remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "kt/json.h"
#include "kt/mem.h"
#include "model/node.h"

#define TOKEN_MAX_BYTES    (64 * 1024)
#define CONFIG_MAX_BYTES   (1024 * 1024)
#define DEFAULT_TIMEOUT_S  30
#define CONNECT_TIMEOUT_MS 10000L

struct ktwinctl_remote {
    CURL *curl;
    char *url;      /* base, no trailing '/' */
    char *url_from; /* "--hub", "KTWIN_HUB_URL", "<config file>" */
    char *token;    /* NULL: none */
    char *token_from;
    char *ca_file; /* NULL: system CAs */
    long timeout_s;
    char errbuf[CURL_ERROR_SIZE];
};

const char ktwinctl_remote_help[] =
    "hub flags (else $KTWIN_HUB_URL, $KTWIN_TOKEN / $KTWIN_TOKEN_FILE, $KTWIN_CA_FILE,\n"
    "then hub.url / hub.tokenFile / hub.caFile in $KTWINCONFIG or ~/.ktwin/config):\n"
    "  --hub URL          the hub's base URL, e.g. https://hub.example:8080\n"
    "  --token-file FILE  file holding the admin bearer token (first line)\n"
    "  --ca-file FILE     PEM CA bundle to check the hub's certificate\n"
    "  --timeout SECONDS  give up on a request after this long (default 30)\n"
    "  -v, --verbose      say where the URL, token and CA came from\n"
    "exit codes: 0 ok, 1 invalid input or refused by the hub, 2 usage, 3 hub unreachable\n";

/* ---- kinds --------------------------------------------------------------------------- */

static const ktwinctl_kind kinds[] = {
    { "twininterfaces", "twininterface", "TwinInterface", "twininterface, ti" },
    { "twininstances", "twininstance", "TwinInstance", "twininstance, tinst" },
    { "placementpolicies", "placementpolicy", "PlacementPolicy", "placementpolicy, pp" },
};

static const char *const kind_short[] = { "ti", "tinst", "pp" };

const char ktwinctl_kinds_help[] = "twininterfaces (twininterface, ti), twininstances "
                                   "(twininstance, tinst), placementpolicies "
                                   "(placementpolicy, pp)";

const ktwinctl_kind *ktwinctl_kind_parse(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcasecmp(s, kinds[i].path) == 0 || strcasecmp(s, kinds[i].singular) == 0 ||
            strcasecmp(s, kinds[i].kind) == 0 || strcasecmp(s, kind_short[i]) == 0) {
            return &kinds[i];
        }
    }
    return NULL;
}

const ktwinctl_kind *ktwinctl_kind_by_kind(const char *kind)
{
    for (size_t i = 0; kind != NULL && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kind, kinds[i].kind) == 0) {
            return &kinds[i];
        }
    }
    return NULL;
}

/* ---- flags --------------------------------------------------------------------------- */

int ktwinctl_remote_flag(ktwinctl_remote_opts *o, int *i, int argc, char **argv)
{
    const char *a = argv[*i];
    const char **slot = NULL;
    if (strcmp(a, "--hub") == 0) {
        slot = &o->hub;
    } else if (strcmp(a, "--token-file") == 0) {
        slot = &o->token_file;
    } else if (strcmp(a, "--ca-file") == 0) {
        slot = &o->ca_file;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
        o->verbose = 1;
        return 1;
    } else if (strcmp(a, "--timeout") != 0) {
        return 0;
    }
    if (*i + 1 >= argc || argv[*i + 1][0] == '\0') {
        fprintf(stderr, "ktwinctl: %s needs a value\n", a);
        return -1;
    }
    const char *v = argv[++*i];
    if (slot != NULL) {
        *slot = v;
        return 1;
    }
    char *end = NULL;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || t < 1 || t > 86400) {
        fprintf(stderr, "ktwinctl: --timeout takes whole seconds 1..86400, not %s\n", v);
        return -1;
    }
    o->timeout_s = t;
    return 1;
}

/* ---- configuration ------------------------------------------------------------------ */

typedef struct file_cfg {
    const char *path; /* the config file */
    char *url;        /* hub.url */
    char *token_file; /* hub.tokenFile, made absolute against the file's folder */
    char *ca_file;    /* hub.caFile, idem */
    int n_docs;
    int bad;
} file_cfg;

/* path relative to the config file's folder unless absolute. */
static char *relative_to(const char *cfg_path, const char *p)
{
    const char *slash = strrchr(cfg_path, '/');
    if (p[0] == '/' || slash == NULL) {
        return kt_xstrdup(p);
    }
    size_t dir = (size_t)(slash - cfg_path);
    size_t n = dir + 1 + strlen(p) + 1;
    char *out = kt_xmalloc(n);
    (void)snprintf(out, n, "%.*s/%s", (int)dir, cfg_path, p);
    return out;
}

static void cfg_problem(file_cfg *c, const model_node *n, const char *key, const char *msg)
{
    fprintf(stderr, "%s:%u:%u: %s: %s\n", c->path, n->mark.line, n->mark.col, key, msg);
    c->bad = 1;
}

static kt_status cfg_doc(const model_doc *doc, void *user)
{
    file_cfg *c = user;
    if (doc->root == NULL) {
        return KT_OK;
    }
    if (++c->n_docs > 1) {
        cfg_problem(c, doc->root, "(document)", "one document expected");
        return KT_OK;
    }
    const model_node *root = doc->root;
    if (root->kind != MODEL_NODE_MAP) {
        cfg_problem(c, root, "(top)", "a mapping with a hub: key expected");
        return KT_OK;
    }
    for (size_t i = 0; i < root->n; i++) {
        const model_node *k = root->items[2 * i];
        const model_node *v = root->items[2 * i + 1];
        if (strcmp(k->str, "hub") != 0) {
            cfg_problem(c, k, k->str, "unknown key (the file has hub: {url, tokenFile, caFile})");
            continue;
        }
        if (v->kind != MODEL_NODE_MAP) {
            cfg_problem(c, v, "hub", "a mapping expected");
            continue;
        }
        for (size_t j = 0; j < v->n; j++) {
            const model_node *hk = v->items[2 * j];
            const model_node *hv = v->items[2 * j + 1];
            char key[96];
            (void)snprintf(key, sizeof key, "hub.%s", hk->str);
            char **slot = strcmp(hk->str, "url") == 0         ? &c->url
                          : strcmp(hk->str, "tokenFile") == 0 ? &c->token_file
                          : strcmp(hk->str, "caFile") == 0    ? &c->ca_file
                                                              : NULL;
            if (slot == NULL) {
                cfg_problem(c, hk, key, "unknown key (hub has url, tokenFile, caFile)");
            } else if (hv->kind != MODEL_NODE_SCALAR || hv->len == 0) {
                cfg_problem(c, hv, key, "a non-empty string expected");
            } else if (*slot != NULL) {
                cfg_problem(c, hk, key, "given twice");
            } else {
                *slot = slot == &c->url ? kt_xstrdup(hv->str) : relative_to(c->path, hv->str);
            }
        }
    }
    return KT_OK;
}

/*
 * Read the config file into c. Returns 0, or 1 (printed) when the file is
 * bad or, having been named by $KTWINCONFIG, missing.
 */
static int load_config(file_cfg *c, char *path_buf, size_t cap)
{
    const char *env = getenv("KTWINCONFIG");
    int must_exist = env != NULL && env[0] != '\0';
    if (must_exist) {
        kt_strlcpy(path_buf, env, cap);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] == '\0') {
            return 0;
        }
        (void)snprintf(path_buf, cap, "%s/.ktwin/config", home);
    }
    c->path = path_buf;
    kt_buf b;
    kt_buf_init(&b, CONFIG_MAX_BYTES);
    kt_err err = { 0 };
    kt_status st = kt_buf_read_file(&b, path_buf, &err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        if (!must_exist && err.sys_errno == ENOENT) {
            return 0;
        }
        fprintf(stderr, "ktwinctl: config file%s: %s\n", must_exist ? " (from KTWINCONFIG)" : "",
                err.msg);
        return 1;
    }
    kt_arena arena;
    kt_arena_init(&arena, 16 * 1024);
    st = model_parse_yaml(&arena, path_buf, b.data != NULL ? b.data : "", b.len, NULL, cfg_doc, c,
                          &err);
    kt_arena_fini(&arena);
    kt_buf_fini(&b);
    if (st != KT_OK) {
        fprintf(stderr, "ktwinctl: config %s\n", err.msg);
        return 1;
    }
    return c->bad ? 1 : 0;
}

/* The first line of a token file, trimmed; NULL (printed) on failure. */
static char *read_token(const char *path, const char *from)
{
    kt_buf b;
    kt_buf_init(&b, TOKEN_MAX_BYTES);
    kt_err err = { 0 };
    if (kt_buf_read_file(&b, path, &err) != KT_OK) {
        fprintf(stderr, "ktwinctl: token file (from %s): %s\n", from, err.msg);
        kt_buf_fini(&b);
        return NULL;
    }
    const char *s = b.data != NULL ? b.data : "";
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
        s++;
    }
    size_t n = strcspn(s, "\r\n");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    char *tok = n > 0 ? kt_xstrndup(s, n) : NULL;
    kt_buf_fini(&b);
    if (tok == NULL) {
        fprintf(stderr, "ktwinctl: token file %s (from %s) is empty\n", path, from);
    }
    return tok;
}

static void free_file_cfg(file_cfg *c)
{
    kt_free(c->url);
    kt_free(c->token_file);
    kt_free(c->ca_file);
}

int ktwinctl_remote_open(ktwinctl_remote **out, const ktwinctl_remote_opts *o)
{
    *out = NULL;
    char cfg_path[4096] = "";
    file_cfg fc = { 0 };
    if (load_config(&fc, cfg_path, sizeof cfg_path) != 0) {
        free_file_cfg(&fc);
        return 1;
    }
    ktwinctl_remote *r = kt_xcalloc(1, sizeof *r);
    int rc = 0;

    /* URL */
    const char *env_url = getenv("KTWIN_HUB_URL");
    if (o->hub != NULL) {
        r->url = kt_xstrdup(o->hub);
        r->url_from = kt_xstrdup("--hub");
    } else if (env_url != NULL && env_url[0] != '\0') {
        r->url = kt_xstrdup(env_url);
        r->url_from = kt_xstrdup("KTWIN_HUB_URL");
    } else if (fc.url != NULL) {
        r->url = kt_xstrdup(fc.url);
        r->url_from = kt_xstrdup(cfg_path);
    }
    if (r->url == NULL) {
        fprintf(stderr, "ktwinctl: no hub: pass --hub URL, set KTWIN_HUB_URL, or write hub.url "
                        "in $KTWINCONFIG or ~/.ktwin/config\n");
        rc = 2;
        goto done;
    }
    if (strncmp(r->url, "http://", 7) != 0 && strncmp(r->url, "https://", 8) != 0) {
        fprintf(stderr, "ktwinctl: hub URL %s (from %s) must start with http:// or https://\n",
                r->url, r->url_from);
        rc = 2;
        goto done;
    }
    size_t ul = strlen(r->url);
    while (ul > 0 && r->url[ul - 1] == '/') {
        r->url[--ul] = '\0';
    }

    /* Token */
    const char *env_tok = getenv("KTWIN_TOKEN");
    const char *env_tok_file = getenv("KTWIN_TOKEN_FILE");
    if (o->token_file != NULL) {
        r->token = read_token(o->token_file, "--token-file");
        r->token_from = kt_xstrdup("--token-file");
        rc = r->token == NULL ? 1 : 0;
    } else if (env_tok != NULL && env_tok[0] != '\0') {
        r->token = kt_xstrdup(env_tok);
        r->token_from = kt_xstrdup("KTWIN_TOKEN");
    } else if (env_tok_file != NULL && env_tok_file[0] != '\0') {
        r->token = read_token(env_tok_file, "KTWIN_TOKEN_FILE");
        r->token_from = kt_xstrdup("KTWIN_TOKEN_FILE");
        rc = r->token == NULL ? 1 : 0;
    } else if (fc.token_file != NULL) {
        r->token = read_token(fc.token_file, cfg_path);
        r->token_from = kt_xstrdup(cfg_path);
        rc = r->token == NULL ? 1 : 0;
    }
    if (rc != 0) {
        goto done;
    }

    /* CA */
    const char *env_ca = getenv("KTWIN_CA_FILE");
    const char *ca_from = NULL;
    if (o->ca_file != NULL) {
        r->ca_file = kt_xstrdup(o->ca_file);
        ca_from = "--ca-file";
    } else if (env_ca != NULL && env_ca[0] != '\0') {
        r->ca_file = kt_xstrdup(env_ca);
        ca_from = "KTWIN_CA_FILE";
    } else if (fc.ca_file != NULL) {
        r->ca_file = kt_xstrdup(fc.ca_file);
        ca_from = cfg_path;
    }
    if (r->ca_file != NULL) {
        FILE *f = fopen(r->ca_file, "r");
        if (f == NULL) {
            fprintf(stderr, "ktwinctl: CA file %s (from %s): %s\n", r->ca_file, ca_from,
                    strerror(errno));
            rc = 1;
            goto done;
        }
        (void)fclose(f);
    }
    r->timeout_s = o->timeout_s > 0 ? o->timeout_s : DEFAULT_TIMEOUT_S;
    if (o->verbose) {
        fprintf(stderr, "ktwinctl: hub %s (from %s); token %s; CA %s%s%s\n", r->url, r->url_from,
                r->token_from != NULL ? r->token_from : "none",
                r->ca_file != NULL ? r->ca_file : "system", ca_from != NULL ? " from " : "",
                ca_from != NULL ? ca_from : "");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ktwinctl: libcurl does not initialise\n");
        rc = 1;
        goto done;
    }
    r->curl = curl_easy_init();
    if (r->curl == NULL) {
        fprintf(stderr, "ktwinctl: libcurl does not initialise\n");
        rc = 1;
    }
done:
    free_file_cfg(&fc);
    if (rc != 0) {
        ktwinctl_remote_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void ktwinctl_remote_free(ktwinctl_remote *r)
{
    if (r == NULL) {
        return;
    }
    if (r->curl != NULL) {
        curl_easy_cleanup(r->curl);
        curl_global_cleanup();
    }
    kt_free(r->url);
    kt_free(r->url_from);
    if (r->token != NULL) {
        memset(r->token, 0, strlen(r->token));
    }
    kt_free(r->token);
    kt_free(r->token_from);
    kt_free(r->ca_file);
    kt_free(r);
}

/* ---- requests ----------------------------------------------------------------------- */

typedef struct sink {
    kt_buf *b;
    int too_big;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    sink *s = user;
    if (kt_buf_append(s->b, p, size * n) != KT_OK) {
        s->too_big = 1;
        return 0; /* abort the transfer */
    }
    return size * n;
}

char *ktwinctl_remote_escape(ktwinctl_remote *r, const char *s)
{
    char *e = curl_easy_escape(r->curl, s, 0);
    char *out = kt_xstrdup(e != NULL ? e : "");
    curl_free(e);
    return out;
}

int ktwinctl_remote_call(ktwinctl_remote *r,
                         const char *method,
                         const char *path,
                         const char *body,
                         size_t len,
                         const char *content_type,
                         long *status,
                         kt_buf *resp)
{
    CURL *c = r->curl;
    curl_easy_reset(c);
    size_t ul = strlen(r->url) + strlen(path) + 1;
    char *url = kt_xmalloc(ul);
    (void)snprintf(url, ul, "%s%s", r->url, path);
    struct curl_slist *hdrs = NULL;
    char line[TOKEN_MAX_BYTES + 64];
    if (r->token != NULL) {
        (void)snprintf(line, sizeof line, "Authorization: Bearer %s", r->token);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (content_type != NULL) {
        (void)snprintf(line, sizeof line, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    memset(line, 0, sizeof line);
    sink s = { resp, 0 };
    r->errbuf[0] = '\0';
    int ok = curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_NOPROXY, "*") == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_s * 1000L) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_WRITEDATA, &s) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_USERAGENT, "ktwinctl") == CURLE_OK;
    if (ok && r->ca_file != NULL) {
        ok = curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file) == CURLE_OK;
    }
    if (ok && strcmp(method, "POST") == 0) {
        ok = curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "") == CURLE_OK;
    } else if (ok && strcmp(method, "GET") != 0) {
        ok = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
    }
    int rc = 0;
    if (!ok) {
        fprintf(stderr, "ktwinctl: libcurl refused an option for %s %s\n", method, url);
        rc = 1;
    } else {
        CURLcode cc = curl_easy_perform(c);
        if (cc == CURLE_OK) {
            (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        } else if (s.too_big) {
            fprintf(stderr, "ktwinctl: the answer to %s %s is over %zu bytes\n", method, url,
                    resp->max);
            rc = 1;
        } else {
            const char *why = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(cc);
            fprintf(stderr, "ktwinctl: cannot reach the hub at %s (from %s): %s\n", r->url,
                    r->url_from, why);
            rc = KTWINCTL_UNREACHABLE;
        }
    }
    curl_slist_free_all(hdrs);
    kt_free(url);
    return rc;
}

int ktwinctl_print_json(const void *j, FILE *out)
{
    char *s = cJSON_Print(j);
    if (s == NULL) {
        fprintf(stderr, "ktwinctl: out of memory printing JSON\n");
        return 1;
    }
    /* cJSON formats with tabs; a tab is never literal inside a JSON string. */
    for (const char *p = s; *p != '\0'; p++) {
        if (*p != '\t') {
            (void)fputc(*p, out);
        } else if (p > s && p[-1] == ':') {
            (void)fputc(' ', out);
        } else {
            (void)fputs("    ", out);
        }
    }
    (void)fputc('\n', out);
    cJSON_free(s);
    return 0;
}

/* ---- refusals ----------------------------------------------------------------------- */

static const char *json_error_text(const kt_buf *resp, cJSON **tree)
{
    *tree = NULL;
    if (resp->len == 0) {
        return NULL;
    }
    kt_err err = { 0 };
    if (kt_json_parse(resp->data, resp->len, resp->len, tree, &err) != KT_OK) {
        return NULL;
    }
    const char *s = NULL;
    if (kt_json_get_str(*tree, "error", &s, &err) == KT_OK) {
        return s;
    }
    /* Also {"error":{"code":N,"message":".."}}. */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(*tree, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

static long json_long(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static const char *json_text(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int ktwinctl_remote_report(const ktwinctl_remote *r,
                           long status,
                           const kt_buf *resp,
                           const char *what,
                           ktwinctl_pos_cb pos,
                           void *user)
{
    cJSON *tree = NULL;
    const char *msg = json_error_text(resp, &tree);
    char body_line[512] = "";
    if (msg == NULL && resp->len > 0) {
        size_t n = strcspn(resp->data, "\r\n");
        (void)snprintf(body_line, sizeof body_line, "%.*s", (int)(n < 400 ? n : 400), resp->data);
        msg = body_line;
    }
    if (msg == NULL) {
        msg = "(no details)";
    }
    if (status == 401) {
        fprintf(stderr,
                "ktwinctl: %s: the hub wants a token (401 Unauthorized: %s); pass --token-file, "
                "set KTWIN_TOKEN_FILE or hub.tokenFile\n",
                what, msg);
    } else if (status == 403) {
        fprintf(stderr, "ktwinctl: %s: the hub refused the token from %s (403 Forbidden: %s)\n",
                what, r->token_from != NULL ? r->token_from : "(none)", msg);
    } else if (status == 404) {
        fprintf(stderr, "ktwinctl: %s: not found (404: %s)\n", what, msg);
    } else if (status == 422 && tree != NULL) {
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(tree, "errors");
        int n = cJSON_IsArray(errs) ? cJSON_GetArraySize(errs) : 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, errs)
        {
            char where[4200];
            long line = json_long(e, "line");
            long col = json_long(e, "col");
            if (pos != NULL) {
                pos(json_text(e, "file"), line, col, where, sizeof where, user);
            } else {
                (void)snprintf(where, sizeof where, "%s:%ld:%ld", json_text(e, "file"), line, col);
            }
            const char *path = json_text(e, "path");
            fprintf(stderr, "%s: %s%s%s: %s\n", where, path, path[0] != '\0' ? ": " : "",
                    json_text(e, "class"), json_text(e, "message"));
        }
        fprintf(stderr, "ktwinctl: %s: the hub refused it (422): %d error%s, nothing changed\n",
                what, n, n == 1 ? "" : "s");
    } else {
        fprintf(stderr, "ktwinctl: %s: the hub answered %ld: %s\n", what, status, msg);
    }
    cJSON_Delete(tree);
    return 1;
}
