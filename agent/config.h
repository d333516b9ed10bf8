/*
 * agent/config.h — ktwin-agent's configuration: the kt_cfg table and checks.
 *
 * The table (agent_config_table) is the single source of truth for every
 * key: loading, environment overrides (KTWIN_AGENT_<KEY> for keys flagged
 * KT_CFG_ENV), the --print-config dump and the key table in docs/config.md
 * (ktwin-agent --config-doc) all come from it. agent/agent.example.yaml
 * documents every key and a unit test loads it.
 *
 * Beyond what the table checks, agent_config_load checks: site is a valid
 * twin name (model_name_check), hub.url starts with ws:// or wss://,
 * log.level is one of err|warn|notice|info|debug, reconnect.cap >= base.
 *
 * Thread: startup only (libyaml is synchronous). Ownership: strings in an
 * agent_cfg belong to it and are freed by agent_config_fini.
 */
#ifndef KT_AGENT_CONFIG_H
#define KT_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/cfg.h"
#include "kt/err.h"

#define AGENT_CONFIG_ENV_PREFIX "KTWIN_AGENT_"

typedef struct agent_cfg {
    char *site;
    char *hub_url;
    char *hub_token_file;
    char *hub_ca_file;
    int64_t hub_connect_timeout_ms;
    size_t hub_max_message_bytes;
    int64_t hub_batch_events;
    char *cache_path;
    char *listen_address;
    int64_t listen_port;
    int64_t cpu_millis;
    size_t memory_bytes;
    int64_t reconnect_base_ms;
    int64_t reconnect_cap_ms;
    char *log_level;
    /* ---- event plane ingest (helper edge): mqtt.*, outbox.* */
    char *mqtt_url; /* NULL = no MQTT bridge */
    char *mqtt_client_id;
    char *mqtt_username;
    char *mqtt_password_file;
    char *mqtt_ca_file;
    int64_t mqtt_qos;
    int64_t mqtt_keepalive_ms;
    size_t mqtt_max_payload_bytes;
    char *mqtt_journal_dir;
    int64_t mqtt_batch_max;
    char *outbox_path;
    size_t outbox_max_bytes;
    size_t outbox_low_water_bytes;
    /* ---- event dispatcher and local twin services (helper dispatch): services.*, latest.* */
    kt_cfg_strlist services_specs; /* svc/service.h declarations */
    int64_t services_max_depth;
    int64_t services_connect_timeout_ms;
    size_t services_max_data_bytes;
    char *latest_path; /* NULL = <cache.path>-latest */
} agent_cfg;

/* The table, ended by a NULL key. */
const kt_cfg_entry *agent_config_table(void);

/*
 * Fill cfg from defaults, then the YAML file at path (NULL = defaults only),
 * then the environment, then the extra checks above. Every problem is
 * appended to errs as "file:line:col: key: message" (errs may be NULL).
 * Returns KT_OK; KT_ENOTFOUND when path does not exist; KT_EIO when it
 * cannot be read; KT_EINVAL when anything is wrong. On failure cfg is
 * released (nothing to free). Thread: startup.
 */
kt_status agent_config_load(agent_cfg *cfg, const char *path, kt_buf *errs, kt_err *err);

/* Same, from a buffer (name is used as the file name in messages). */
kt_status agent_config_load_buffer(
    agent_cfg *cfg, const char *name, const char *data, size_t len, kt_buf *errs, kt_err *err);

/* Free the strings of cfg (safe on a zeroed or finished struct). */
void agent_config_fini(agent_cfg *cfg);

/*
 * Read the token from cfg->hub_token_file: the file's content without
 * leading and trailing white space. *out is kt_malloc'd (kt_free). Returns
 * KT_OK; KT_EINVAL when no token_file is configured or the token is empty;
 * KT_EIO (or what kt_buf_read_file gives) when the file cannot be read.
 */
kt_status agent_config_read_token(const agent_cfg *cfg, char **out, kt_err *err);

#endif
