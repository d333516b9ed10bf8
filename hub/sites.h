/*
 * hub/sites.h — the edge sites the hub knows: the agents file (which sites
 * exist and their tokens) and each site's persisted state (tables fed_sites
 * and fed_meta in the hub database).
 *
 * Agents file: one "<site> <token>" per line; blank lines and lines starting
 * with '#' are ignored; the site must pass model_name_check(); the token is
 * one word (no whitespace), 1..1024 bytes; a site listed twice is an error.
 *
 * Persisted per site (fed_sites): last reported capacity, last seen (wall
 * ms), acked graph and placement revisions. Rows of sites no longer in the
 * agents file are kept (an operator may add the site back). fed_meta holds
 * fed-wide values (hub_id, sites_hash, placement_revision).
 *
 * Invariants: sites are sorted by name; hub_sites_get is O(1).
 * Thread: loop only. Ownership: the table owns the sites and their strings;
 * it borrows the sqlite3 connection (hub_store_db), which must outlive it.
 */
#ifndef KT_HUB_SITES_H
#define KT_HUB_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"

typedef struct sqlite3 sqlite3;
typedef struct hub_sites hub_sites;

/* One site. Fields without '_' may be read and written by fed (loop thread). */
typedef struct hub_site {
    char *name;
    bool has_capacity;
    uint32_t cpu_millis;
    uint64_t memory_bytes;
    uint64_t last_seen_ms;        /* wall ms of the last welcome/goodbye; 0 = never */
    uint64_t acked_graph_rev;     /* highest graph revision the agent acked */
    uint64_t acked_placement_rev; /* highest placement revision the agent acked */
    bool dirty;                   /* changed since the last hub_sites_flush */
    void *user;                   /* for fed (its per-site state) */
    char *_token;
    size_t _token_len;
} hub_site;

/*
 * Read the agents file at path (NULL or "" = no sites: every agent is
 * refused) and load each site's persisted row from db (creating the tables
 * when missing). Returns KT_OK; KT_EIO when the file cannot be read;
 * KT_EINVAL with "path:line: ..." for a malformed line or a duplicate site;
 * KT_EDEP (sqlite) on database errors.
 */
kt_status hub_sites_new(hub_sites **out, const char *path, sqlite3 *db, kt_err *err);
/* Free (does not flush). NULL is a no-op. */
void hub_sites_free(hub_sites *s);

size_t hub_sites_count(const hub_sites *s);
/* In name order. */
hub_site *hub_sites_at(const hub_sites *s, size_t i);
/* NULL when unknown. */
hub_site *hub_sites_get(const hub_sites *s, const char *name);

/*
 * Constant-time comparison of token with the site's token (the time depends
 * only on the lengths). true when equal.
 */
bool hub_sites_token_ok(const hub_site *site, const char *token);

/* Write every dirty site's row in one transaction; clears dirty. KT_EDEP on errors. */
kt_status hub_sites_flush(hub_sites *s, kt_err *err);

/* FNV-1a hash of the sorted site names (detects a changed agents file across restarts). */
uint64_t hub_sites_names_hash(const hub_sites *s);

/* fed_meta get/put of a text value. get: KT_ENOTFOUND when absent; *out is the caller's (kt_free).
 */
kt_status hub_sites_meta_get(hub_sites *s, const char *key, char **out, kt_err *err);
kt_status hub_sites_meta_put(hub_sites *s, const char *key, const char *value, kt_err *err);

#endif
