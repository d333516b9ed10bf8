/*
 * hub/sites.c — the agents file and per-site persisted state (see sites.h).
 *
 * Tables (created when missing, in the hub database):
 *   fed_sites(site TEXT PRIMARY KEY, has_capacity INTEGER, cpu_millis INTEGER,
 *             memory_bytes INTEGER, last_seen_ms INTEGER,
 *             acked_graph_rev INTEGER, acked_placement_rev INTEGER)
 *   fed_meta(key TEXT PRIMARY KEY, value TEXT)
 * 64-bit unsigned values are stored as their int64 bit pattern.
 *
 * Thread: loop only. Ownership: see sites.h.
 */
#include "hub/sites.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kt/buf.h"
#include "kt/map.h"
#include "kt/mem.h"
#include "model/model.h"

#define SITES_FILE_MAX  (16u * 1024u * 1024u)
#define SITES_TOKEN_MAX 1024u

struct hub_sites {
    sqlite3 *db;
    hub_site *sites; /* sorted by name */
    size_t n;
    kt_map by_name; /* name -> hub_site* (keys are the sites' own names) */
};

static kt_status sql_err(kt_err *err, sqlite3 *db, int rc, const char *what)
{
    return kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s", what, sqlite3_errmsg(db));
}

static kt_status exec_sql(sqlite3 *db, const char *sql, kt_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        kt_status st = kt_err_set_dep(err, KT_EDEP, "sqlite", rc, "%s: %s", sql,
                                      msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return KT_OK;
}

static int cmp_site(const void *a, const void *b)
{
    const hub_site *x = a;
    const hub_site *y = b;
    return strcmp(x->name, y->name);
}

/* Parse the agents file into s->sites (unsorted). */
static kt_status parse_agents(hub_sites *s, const char *path, kt_err *err)
{
    kt_buf b;
    kt_buf_init(&b, SITES_FILE_MAX);
    kt_status st = kt_buf_read_file(&b, path, err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st == KT_ETOOBIG
                   ? kt_err_set(err, KT_EINVAL, "%s: over %u bytes", path, SITES_FILE_MAX)
                   : st;
    }
    size_t cap = 0;
    char *p = b.data != NULL ? b.data : (char *)"";
    unsigned line = 0;
    while (*p != '\0') {
        line++;
        char *eol = strchr(p, '\n');
        char *next = eol != NULL ? eol + 1 : p + strlen(p);
        if (eol != NULL) {
            *eol = '\0';
        }
        /* Split into words. */
        char *words[3] = { NULL, NULL, NULL };
        size_t nw = 0;
        char *q = p;
        while (*q != '\0') {
            while (*q != '\0' && isspace((unsigned char)*q)) {
                *q++ = '\0';
            }
            if (*q == '\0') {
                break;
            }
            if (nw < 3) {
                words[nw] = q;
            }
            nw++;
            while (*q != '\0' && !isspace((unsigned char)*q)) {
                q++;
            }
        }
        p = next;
        if (nw == 0 || words[0][0] == '#') {
            continue;
        }
        if (nw != 2) {
            st = kt_err_set(err, KT_EINVAL, "%s:%u: want \"<site> <token>\", got %zu words", path,
                            line, nw);
            goto done;
        }
        const char *why = model_name_check(words[0]);
        if (why != NULL) {
            st = kt_err_set(err, KT_EINVAL, "%s:%u: site \"%s\": %s", path, line, words[0], why);
            goto done;
        }
        size_t tl = strlen(words[1]);
        if (tl > SITES_TOKEN_MAX) {
            st = kt_err_set(err, KT_EINVAL, "%s:%u: token over %u bytes", path, line,
                            SITES_TOKEN_MAX);
            goto done;
        }
        if (s->n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            s->sites = kt_xrealloc(s->sites, cap * sizeof *s->sites);
        }
        hub_site *site = &s->sites[s->n++];
        memset(site, 0, sizeof *site);
        site->name = kt_xstrdup(words[0]);
        site->_token = kt_xstrdup(words[1]);
        site->_token_len = tl;
        if (kt_map_put(&s->by_name, site->name, site) != NULL) {
            st =
                kt_err_set(err, KT_EINVAL, "%s:%u: site \"%s\" listed twice", path, line, words[0]);
            goto done;
        }
    }
    st = KT_OK;
done:
    kt_buf_fini(&b);
    return st;
}

static kt_status load_rows(hub_sites *s, kt_err *err)
{
    kt_status st =
        exec_sql(s->db,
                 "CREATE TABLE IF NOT EXISTS fed_sites(site TEXT PRIMARY KEY, "
                 "has_capacity INTEGER NOT NULL DEFAULT 0, cpu_millis INTEGER NOT NULL "
                 "DEFAULT 0, memory_bytes INTEGER NOT NULL DEFAULT 0, last_seen_ms "
                 "INTEGER NOT NULL DEFAULT 0, acked_graph_rev INTEGER NOT NULL DEFAULT "
                 "0, acked_placement_rev INTEGER NOT NULL DEFAULT 0);"
                 "CREATE TABLE IF NOT EXISTS fed_meta(key TEXT PRIMARY KEY, value TEXT);",
                 err);
    if (st != KT_OK) {
        return st;
    }
    sqlite3_stmt *q = NULL;
    int rc =
        sqlite3_prepare_v2(s->db,
                           "SELECT site, has_capacity, cpu_millis, memory_bytes, last_seen_ms, "
                           "acked_graph_rev, acked_placement_rev FROM fed_sites",
                           -1, &q, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(err, s->db, rc, "prepare fed_sites");
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        hub_site *site = name != NULL ? kt_map_get(&s->by_name, name) : NULL;
        if (site == NULL) {
            continue; /* no longer in the agents file: kept, not loaded */
        }
        site->has_capacity = sqlite3_column_int64(q, 1) != 0;
        site->cpu_millis = (uint32_t)sqlite3_column_int64(q, 2);
        site->memory_bytes = (uint64_t)sqlite3_column_int64(q, 3);
        site->last_seen_ms = (uint64_t)sqlite3_column_int64(q, 4);
        site->acked_graph_rev = (uint64_t)sqlite3_column_int64(q, 5);
        site->acked_placement_rev = (uint64_t)sqlite3_column_int64(q, 6);
    }
    st = rc == SQLITE_DONE ? KT_OK : sql_err(err, s->db, rc, "read fed_sites");
    sqlite3_finalize(q);
    return st;
}

kt_status hub_sites_new(hub_sites **out, const char *path, sqlite3 *db, kt_err *err)
{
    *out = NULL;
    hub_sites *s = kt_xcalloc(1, sizeof *s);
    s->db = db;
    kt_map_init(&s->by_name);
    kt_status st = KT_OK;
    if (path != NULL && path[0] != '\0') {
        st = parse_agents(s, path, err);
    }
    if (st == KT_OK) {
        /* Sorting moves the structs: rebuild the index afterwards. */
        if (s->n > 1) {
            qsort(s->sites, s->n, sizeof *s->sites, cmp_site);
        }
        kt_map_fini(&s->by_name);
        kt_map_init(&s->by_name);
        kt_map_reserve(&s->by_name, s->n);
        for (size_t i = 0; i < s->n; i++) {
            kt_map_put(&s->by_name, s->sites[i].name, &s->sites[i]);
        }
        st = load_rows(s, err);
    }
    if (st != KT_OK) {
        hub_sites_free(s);
        return st;
    }
    *out = s;
    return KT_OK;
}

void hub_sites_free(hub_sites *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        kt_free(s->sites[i].name);
        if (s->sites[i]._token != NULL) {
            memset(s->sites[i]._token, 0, s->sites[i]._token_len);
        }
        kt_free(s->sites[i]._token);
    }
    kt_free(s->sites);
    kt_map_fini(&s->by_name);
    kt_free(s);
}

size_t hub_sites_count(const hub_sites *s)
{
    return s->n;
}

hub_site *hub_sites_at(const hub_sites *s, size_t i)
{
    return i < s->n ? &s->sites[i] : NULL;
}

hub_site *hub_sites_get(const hub_sites *s, const char *name)
{
    return name != NULL ? kt_map_get(&s->by_name, name) : NULL;
}

bool hub_sites_token_ok(const hub_site *site, const char *token)
{
    if (site == NULL || token == NULL) {
        return false;
    }
    size_t tl = strlen(token);
    /* Walk the stored token whatever the given length: time depends on lengths only. */
    unsigned char diff = (unsigned char)(tl != site->_token_len);
    for (size_t i = 0; i < site->_token_len; i++) {
        unsigned char c = i < tl ? (unsigned char)token[i] : 0u;
        diff |= (unsigned char)(c ^ (unsigned char)site->_token[i]);
    }
    return diff == 0;
}

kt_status hub_sites_flush(hub_sites *s, kt_err *err)
{
    size_t n_dirty = 0;
    for (size_t i = 0; i < s->n; i++) {
        n_dirty += s->sites[i].dirty ? 1u : 0u;
    }
    if (n_dirty == 0) {
        return KT_OK;
    }
    kt_status st = exec_sql(s->db, "BEGIN", err);
    if (st != KT_OK) {
        return st;
    }
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT OR REPLACE INTO fed_sites(site, has_capacity, cpu_millis, "
                                "memory_bytes, last_seen_ms, acked_graph_rev, acked_placement_rev) "
                                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                -1, &q, NULL);
    if (rc != SQLITE_OK) {
        st = sql_err(err, s->db, rc, "prepare fed_sites upsert");
        goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        hub_site *site = &s->sites[i];
        if (!site->dirty) {
            continue;
        }
        sqlite3_bind_text(q, 1, site->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, site->has_capacity ? 1 : 0);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)site->cpu_millis);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)site->memory_bytes);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)site->last_seen_ms);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)site->acked_graph_rev);
        sqlite3_bind_int64(q, 7, (sqlite3_int64)site->acked_placement_rev);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            st = sql_err(err, s->db, rc, "write fed_sites");
            goto fail;
        }
    }
    sqlite3_finalize(q);
    q = NULL;
    st = exec_sql(s->db, "COMMIT", err);
    if (st != KT_OK) {
        goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        s->sites[i].dirty = false;
    }
    return KT_OK;
fail:
    sqlite3_finalize(q);
    (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

uint64_t hub_sites_names_hash(const hub_sites *s)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < s->n; i++) {
        for (const unsigned char *p = (const unsigned char *)s->sites[i].name; *p != '\0'; p++) {
            h = (h ^ *p) * 1099511628211u;
        }
        h = (h ^ '\n') * 1099511628211u;
    }
    return h;
}

kt_status hub_sites_meta_get(hub_sites *s, const char *key, char **out, kt_err *err)
{
    *out = NULL;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM fed_meta WHERE key = ?1", -1, &q, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(err, s->db, rc, "prepare fed_meta");
    }
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    kt_status st;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        *out = kt_xstrdup(v != NULL ? v : "");
        st = KT_OK;
    } else if (rc == SQLITE_DONE) {
        st = KT_ENOTFOUND;
    } else {
        st = sql_err(err, s->db, rc, "read fed_meta");
    }
    sqlite3_finalize(q);
    return st;
}

kt_status hub_sites_meta_put(hub_sites *s, const char *key, const char *value, kt_err *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(
        s->db, "INSERT OR REPLACE INTO fed_meta(key, value) VALUES (?1, ?2)", -1, &q, NULL);
    if (rc != SQLITE_OK) {
        return sql_err(err, s->db, rc, "prepare fed_meta upsert");
    }
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    kt_status st = rc == SQLITE_DONE ? KT_OK : sql_err(err, s->db, rc, "write fed_meta");
    sqlite3_finalize(q);
    return st;
}
