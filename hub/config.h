/*
 * hub/config.h — ktwin-hub configuration: the hub_cfg struct and its
 * declarative kt_cfg table (every key, its default, range and doc line).
 *
 * Sources, later wins: table defaults, the YAML file (--config), then the
 * environment (KTWIN_HUB_<KEY> for keys flagged KT_CFG_ENV). Unknown keys
 * are errors with file:line:col. docs/config.md is generated from the
 * table (ktwin-hub --print-config-doc).
 *
 * Thread: loaded at startup on the main thread, then read-only on the loop.
 * Ownership: strings in hub_cfg belong to it; hub_cfg_fini releases them.
 */
#ifndef KT_HUB_CONFIG_H
#define KT_HUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/cfg.h"
#include "kt/err.h"

#define HUB_CFG_ENV_PREFIX "KTWIN_HUB_"

typedef struct hub_cfg {
    struct {
        char *address; /* listen.address */
        int64_t port;  /* listen.port; 0 = ephemeral */
    } listen;
    char *data_dir; /* data_dir: hub.db and admin.token live here */
    struct {
        char *cert_file; /* tls.cert_file; unset = plain HTTP/WS */
        char *key_file;  /* tls.key_file */
    } tls;
    struct {
        char *admin_token_file; /* auth.admin_token_file; unset = generated in data_dir */
        char *agents_file;      /* auth.agents_file: "<site> <token>" per line */
    } auth;
    struct {
        char *url; /* redis.url: redis://host:port[/db]; unset = off */
        int64_t reconnect_min_ms;
        int64_t reconnect_max_ms;
        int64_t publish_delay_ms;
    } redis;
    char *watch_dir;           /* watch_dir: unset = off */
    int64_t watch_debounce_ms; /* watch.debounce_ms */
    struct {
        size_t max_body_bytes; /* limits.max_body_bytes */
    } limits;
    struct {
        char *level; /* log.level */
    } log;
    struct {
        int64_t heartbeat_ms;
        size_t window_bytes;
        size_t snapshot_chunk_bytes;
        int64_t admit_rate; /* agents/s */
        int64_t admit_burst;
        size_t max_message_bytes;
    } sync;
    /* --- hubev: event store and event plane (hub/events.h) --- */
    struct {
        char *store_path;              /* events.store_path; unset = <data_dir>/events.db */
        int64_t retention_max_age_ms;  /* events.retention_max_age; 0 = no age limit */
        size_t retention_max_bytes;    /* events.retention_max_bytes; 0 = no size limit */
        int64_t retention_interval_ms; /* events.retention_interval */
        int64_t retention_batch_rows;  /* events.retention_batch_rows */
        int64_t down_max_per_site;     /* events.down_max_per_site */
        int64_t commit_max_events;     /* events.commit_max_events */
    } events;
    struct {
        kt_cfg_strlist specs; /* services.specs: cloud twin services (svc/service.h syntax) */
        int64_t max_depth;    /* services.max_depth: service emit depth bound */
    } services;
    /* --- end hubev --- */
} hub_cfg;

/* The table (ends with a NULL key). */
const kt_cfg_entry *hub_cfg_table(void);

/*
 * Fill cfg from defaults, then path (NULL = defaults only; a missing file
 * given explicitly is an error), then the environment. Every problem is
 * appended to errs (one "file:line:col: key: message" line each).
 * KT_OK; KT_EINVAL on any problem (cfg is then released); KT_ENOTFOUND when
 * path does not exist; KT_EIO when it cannot be read.
 */
kt_status hub_cfg_load(hub_cfg *cfg, const char *path, kt_buf *errs, kt_err *err);
/* Same from a buffer (tests). */
kt_status hub_cfg_load_buffer(
    hub_cfg *cfg, const char *name, const char *data, size_t len, kt_buf *errs, kt_err *err);
void hub_cfg_fini(hub_cfg *cfg);

#endif
