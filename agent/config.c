/*
 * agent/config.c — ktwin-agent's config table and the checks the table
 * cannot express (see config.h).
 *
 * Thread: startup only. Owns nothing beyond the strings in agent_cfg.
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "kt/log.h"
#include "kt/mem.h"
#include "model/model.h"

#define MIB (1024 * 1024)

static const kt_cfg_entry table[] = {
    { "site", KT_CFG_STRING, offsetof(agent_cfg, site), 1, MODEL_NAME_MAX, NULL,
      KT_CFG_ENV | KT_CFG_REQUIRED,
      "This agent's site name (its identity at the hub; must be listed in the hub's agents file)" },
    { "hub.url", KT_CFG_STRING, offsetof(agent_cfg, hub_url), 1, 2048, "ws://127.0.0.1:8080/sync",
      KT_CFG_ENV, "Hub sync endpoint: ws://host:port/sync, or wss://host:port/sync for TLS" },
    { "hub.token_file", KT_CFG_STRING, offsetof(agent_cfg, hub_token_file), 1, 4096, NULL,
      KT_CFG_ENV | KT_CFG_REQUIRED,
      "File holding this site's token (a Kubernetes Secret mount); surrounding white space is ignored" },
    { "hub.ca_file", KT_CFG_STRING, offsetof(agent_cfg, hub_ca_file), 1, 4096, NULL, KT_CFG_ENV,
      "wss only: PEM CA bundle to verify the hub's certificate (unset = the system store)" },
    { "hub.connect_timeout_ms", KT_CFG_DURATION_MS, offsetof(agent_cfg, hub_connect_timeout_ms),
      1000, 600000, "10s", 0,
      "Give up a connection attempt (TCP, TLS and WebSocket handshake) after this" },
    { "hub.max_message_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, hub_max_message_bytes),
      64 * 1024, 256 * MIB, "16MiB", 0,
      "Largest sync message accepted from the hub (a snapshot chunk); larger ones close the link" },
    { "hub.batch_events", KT_CFG_INT, offsetof(agent_cfg, hub_batch_events), 1, 10000, "10000", 0,
      "Most events in one upstream EventBatch (the hub commits each batch in one transaction; "
      "the hub's message and window caps apply too)" },
    { "cache.path", KT_CFG_STRING, offsetof(agent_cfg, cache_path), 1, 4096, "./ktwin-agent.db",
      KT_CFG_ENV,
      "SQLite cache file (WAL; -wal and -shm files beside it); a corrupt one is moved aside at start" },
    { "listen.address", KT_CFG_STRING, offsetof(agent_cfg, listen_address), 1, 64, "127.0.0.1",
      KT_CFG_ENV,
      "Numeric IPv4/IPv6 address of the local API (graph, placement, health, metrics)" },
    { "listen.port", KT_CFG_INT, offsetof(agent_cfg, listen_port), 0, 65535, "8090", KT_CFG_ENV,
      "TCP port of the local API (0 = ephemeral; see --port-file)" },
    { "capacity.cpu_millis", KT_CFG_INT, offsetof(agent_cfg, cpu_millis), 0, 4294967295LL, "2000",
      KT_CFG_RELOADABLE,
      "Allocatable CPU for twin services in millicores, reported to the hub for placement" },
    { "capacity.memory_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, memory_bytes), 0, 0, "2GiB",
      KT_CFG_RELOADABLE,
      "Allocatable memory for twin services, reported to the hub for placement" },
    { "reconnect.base_ms", KT_CFG_DURATION_MS, offsetof(agent_cfg, reconnect_base_ms), 10, 3600000,
      "500ms", 0, "First reconnect delay ceiling (exponential backoff with full jitter)" },
    { "reconnect.cap_ms", KT_CFG_DURATION_MS, offsetof(agent_cfg, reconnect_cap_ms), 10, 3600000,
      "30s", 0, "Largest reconnect delay ceiling" },
    { "log.level", KT_CFG_STRING, offsetof(agent_cfg, log_level), 1, 16, "info",
      KT_CFG_ENV | KT_CFG_RELOADABLE, "err, warn, notice, info or debug" },
    /* ---- event plane ingest (helper edge): MQTT bridge, journal, outbox */
    { "mqtt.url", KT_CFG_STRING, offsetof(agent_cfg, mqtt_url), 1, 2048, NULL, KT_CFG_ENV,
      "Site MQTT broker: tcp://host:port or ssl://host:port (mqtt://, mqtts:// too); unset = no MQTT bridge" },
    { "mqtt.client_id", KT_CFG_STRING, offsetof(agent_cfg, mqtt_client_id), 1, 256, NULL,
      KT_CFG_ENV, "MQTT client id (persistent session, keep it stable); unset = ktwin-agent-<site>" },
    { "mqtt.username", KT_CFG_STRING, offsetof(agent_cfg, mqtt_username), 1, 256, NULL, KT_CFG_ENV,
      "MQTT user name (unset = anonymous)" },
    { "mqtt.password_file", KT_CFG_STRING, offsetof(agent_cfg, mqtt_password_file), 1, 4096, NULL,
      KT_CFG_ENV, "File holding the MQTT password (a Secret mount); surrounding white space is ignored" },
    { "mqtt.ca_file", KT_CFG_STRING, offsetof(agent_cfg, mqtt_ca_file), 1, 4096, NULL, KT_CFG_ENV,
      "ssl:// only: PEM CA bundle that signed the broker's certificate" },
    { "mqtt.qos", KT_CFG_INT, offsetof(agent_cfg, mqtt_qos), 0, 2, "1", 0,
      "QoS of the ktwin/real/<iface>/+ subscriptions and of virtual event publishes" },
    { "mqtt.keepalive_ms", KT_CFG_DURATION_MS, offsetof(agent_cfg, mqtt_keepalive_ms), 1000,
      3600000, "30s", 0, "MQTT keepalive interval (whole seconds are used)" },
    { "mqtt.max_payload_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, mqtt_max_payload_bytes),
      1024, 16 * MIB, "256KiB", 0,
      "Largest device payload; larger ones are acknowledged, refused and counted (reason oversized)" },
    { "mqtt.journal_dir", KT_CFG_STRING, offsetof(agent_cfg, mqtt_journal_dir), 1, 4096, NULL,
      KT_CFG_ENV, "Directory of the ingest journal (unset = <cache.path>.journal)" },
    { "mqtt.batch_max", KT_CFG_INT, offsetof(agent_cfg, mqtt_batch_max), 1, 100000, "512", 0,
      "Device messages committed per outbox transaction when the journal is drained" },
    { "outbox.path", KT_CFG_STRING, offsetof(agent_cfg, outbox_path), 1, 4096, NULL, KT_CFG_ENV,
      "SQLite file of the outbox (events bound for the hub); unset = <cache.path>-outbox" },
    { "outbox.max_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, outbox_max_bytes), 64 * 1024,
      1LL << 50,
      "1GiB", 0, "Outbox quota; when reached, MQTT ingest pauses (backpressure to the broker)" },
    { "outbox.low_water_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, outbox_low_water_bytes), 0,
      0, "0", 0, "MQTT ingest resumes when the outbox is below this (0 = 90 % of max_bytes)" },
    /* ---- event dispatcher and local twin services (helper dispatch) */
    { "services.specs", KT_CFG_STRING_LIST, offsetof(agent_cfg, services_specs), 0, 1024, NULL, 0,
      "Twin services run here: \"IFACES=TARGET [options]\" per item (svc/service.h; plugin .so or http:// URL)" },
    { "services.max_depth", KT_CFG_INT, offsetof(agent_cfg, services_max_depth), 1, 64, "8", 0,
      "Events emitted by services are routed again up to this depth (stops loops; deeper ones are dropped)" },
    { "services.connect_timeout_ms", KT_CFG_DURATION_MS,
      offsetof(agent_cfg, services_connect_timeout_ms), 100, 60000, "2s", 0,
      "TCP connect timeout of calls to HTTP twin services" },
    { "services.max_data_bytes", KT_CFG_SIZE_BYTES, offsetof(agent_cfg, services_max_data_bytes),
      1024, 16 * MIB, "1MiB", 0,
      "Largest event data accepted at the local ingress and from services" },
    { "latest.path", KT_CFG_STRING, offsetof(agent_cfg, latest_path), 1, 4096, NULL, KT_CFG_ENV,
      "SQLite file of the latest state per twin instance (KTWIN upsert-merge); unset = <cache.path>-latest" },
    { 0 }
};

const kt_cfg_entry *agent_config_table(void)
{
    return table;
}

void agent_config_fini(agent_cfg *cfg)
{
    kt_cfg_free_strings(table, cfg);
}

/* The checks the table cannot express; problems go to errs as "name: key: message". */
static kt_status check(agent_cfg *cfg, const char *name, kt_buf *errs, kt_err *err)
{
    kt_status st = KT_OK;
    const char *why = cfg->site != NULL ? model_name_check(cfg->site) : NULL;
    if (why != NULL) {
        if (errs != NULL) {
            kt_buf_printf(errs, "%s: site: %s\n", name, why);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: site: %s", name, why);
    }
    if (cfg->hub_url != NULL && strncmp(cfg->hub_url, "ws://", 5) != 0 &&
        strncmp(cfg->hub_url, "wss://", 6) != 0) {
        if (errs != NULL) {
            kt_buf_printf(errs, "%s: hub.url: must start with ws:// or wss://\n", name);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: hub.url: must start with ws:// or wss://", name);
    }
    if (cfg->log_level != NULL && kt_log_level_parse(cfg->log_level) < 0) {
        if (errs != NULL) {
            kt_buf_printf(errs, "%s: log.level: \"%s\" is not err, warn, notice, info or debug\n",
                          name, cfg->log_level);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: log.level: \"%s\" is not a level", name,
                        cfg->log_level);
    }
    if (cfg->mqtt_url != NULL && strncmp(cfg->mqtt_url, "tcp://", 6) != 0 &&
        strncmp(cfg->mqtt_url, "ssl://", 6) != 0 && strncmp(cfg->mqtt_url, "mqtt://", 7) != 0 &&
        strncmp(cfg->mqtt_url, "mqtts://", 8) != 0) {
        if (errs != NULL) {
            kt_buf_printf(errs, "%s: mqtt.url: must start with tcp://, ssl://, mqtt:// or mqtts://\n",
                          name);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: mqtt.url: bad scheme", name);
    }
    if (cfg->outbox_low_water_bytes >= cfg->outbox_max_bytes) {
        if (errs != NULL) {
            kt_buf_printf(errs, "%s: outbox.low_water_bytes: must be below outbox.max_bytes\n",
                          name);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: outbox.low_water_bytes >= outbox.max_bytes", name);
    }
    if (cfg->reconnect_cap_ms < cfg->reconnect_base_ms) {
        if (errs != NULL) {
            kt_buf_printf(
                errs, "%s: reconnect.cap_ms: %lld ms is below reconnect.base_ms (%lld ms)\n", name,
                (long long)cfg->reconnect_cap_ms, (long long)cfg->reconnect_base_ms);
        }
        st = kt_err_set(err, KT_EINVAL, "%s: reconnect.cap_ms is below reconnect.base_ms", name);
    }
    return st;
}

static kt_status finish(agent_cfg *cfg, const char *name, kt_status st, kt_buf *errs, kt_err *err)
{
    if (st == KT_OK) {
        st = kt_cfg_apply_env(table, cfg, AGENT_CONFIG_ENV_PREFIX, errs, err);
    }
    if (st == KT_OK) {
        st = check(cfg, name, errs, err);
    }
    if (st != KT_OK) {
        agent_config_fini(cfg);
    }
    return st;
}

kt_status agent_config_load(agent_cfg *cfg, const char *path, kt_buf *errs, kt_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    kt_status st = kt_cfg_defaults(table, cfg, err);
    if (st == KT_OK && path != NULL) {
        st = kt_cfg_load_file(table, cfg, path, errs, err);
    }
    return finish(cfg, path != NULL ? path : "defaults", st, errs, err);
}

kt_status agent_config_load_buffer(
    agent_cfg *cfg, const char *name, const char *data, size_t len, kt_buf *errs, kt_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    kt_status st = kt_cfg_defaults(table, cfg, err);
    if (st == KT_OK) {
        st = kt_cfg_load_buffer(table, cfg, name, data, len, errs, err);
    }
    return finish(cfg, name != NULL ? name : "<config>", st, errs, err);
}

kt_status agent_config_read_token(const agent_cfg *cfg, char **out, kt_err *err)
{
    *out = NULL;
    if (cfg->hub_token_file == NULL) {
        return kt_err_set(err, KT_EINVAL, "hub.token_file is not set");
    }
    kt_buf b;
    kt_buf_init(&b, 64 * 1024);
    kt_status st = kt_buf_read_file(&b, cfg->hub_token_file, err);
    if (st != KT_OK) {
        kt_buf_fini(&b);
        return st;
    }
    size_t start = 0, end = b.len;
    while (start < end && isspace((unsigned char)b.data[start])) {
        start++;
    }
    while (end > start && isspace((unsigned char)b.data[end - 1])) {
        end--;
    }
    if (end == start) {
        kt_buf_fini(&b);
        return kt_err_set(err, KT_EINVAL, "%s: the token is empty", cfg->hub_token_file);
    }
    *out = kt_xstrndup(b.data + start, end - start);
    kt_buf_fini(&b);
    return KT_OK;
}
