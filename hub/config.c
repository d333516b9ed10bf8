/*
 * hub/config.c — the hub_cfg table (see config.h). Adding a key: add the
 * field, one table row, a commented entry in hub/hub.example.yaml, and
 * regenerate docs/config.md (ktwin-hub --print-config-doc).
 *
 * Thread: startup (any single thread). Ownership: see config.h.
 */
#include "hub/config.h"

#include <stddef.h>
#include <string.h>

#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)

static const kt_cfg_entry table[] = {
    { "listen.address", KT_CFG_STRING, offsetof(hub_cfg, listen.address), 1, 255, "127.0.0.1",
      KT_CFG_ENV, "IP address the HTTP/WebSocket listener binds (0.0.0.0 for all)" },
    { "listen.port", KT_CFG_INT, offsetof(hub_cfg, listen.port), 0, 65535, "8080", KT_CFG_ENV,
      "TCP port of the REST API and /sync (0 = ephemeral; the real port is logged)" },
    { "data_dir", KT_CFG_STRING, offsetof(hub_cfg, data_dir), 1, 4096, "./ktwin-hub-data",
      KT_CFG_ENV, "directory for hub.db (SQLite) and the generated admin.token" },
    { "tls.cert_file", KT_CFG_STRING, offsetof(hub_cfg, tls.cert_file), 1, 4096, NULL, KT_CFG_ENV,
      "PEM certificate chain; when set (with tls.key_file) the listener speaks TLS only" },
    { "tls.key_file", KT_CFG_STRING, offsetof(hub_cfg, tls.key_file), 1, 4096, NULL, KT_CFG_ENV,
      "PEM private key of tls.cert_file" },
    { "auth.admin_token_file", KT_CFG_STRING, offsetof(hub_cfg, auth.admin_token_file), 1, 4096,
      NULL, KT_CFG_ENV,
      "file holding the admin bearer token for mutating calls; unset = a random token is "
      "generated at the first start into <data_dir>/admin.token (mode 0600) and reused" },
    { "auth.agents_file", KT_CFG_STRING, offsetof(hub_cfg, auth.agents_file), 1, 4096, NULL,
      KT_CFG_ENV, "text file of agent credentials, one '<site> <token>' per line, # comments" },
    { "redis.url", KT_CFG_STRING, offsetof(hub_cfg, redis.url), 1, 1024, NULL, KT_CFG_ENV,
      "redis://host:port[/db] to publish KTWIN's graph cache keys (twin_graph, "
      "twin_graph.<iface>); unset = off" },
    { "redis.reconnect_min", KT_CFG_DURATION_MS, offsetof(hub_cfg, redis.reconnect_min_ms), 10,
      60000, "100ms", 0, "first reconnect delay after Redis goes away (doubles, full jitter)" },
    { "redis.reconnect_max", KT_CFG_DURATION_MS, offsetof(hub_cfg, redis.reconnect_max_ms), 10,
      600000, "5s", 0, "longest reconnect delay to Redis" },
    { "redis.publish_delay", KT_CFG_DURATION_MS, offsetof(hub_cfg, redis.publish_delay_ms), 0,
      60000, "20ms", 0,
      "wait after a graph change before publishing (changes meanwhile make one round; sync "
      "deltas are written first)" },
    { "watch_dir", KT_CFG_STRING, offsetof(hub_cfg, watch_dir), 1, 4096, NULL, KT_CFG_ENV,
      "directory of CRD files (*.yaml, *.yml, *.json, recursive) reconciled at start and on "
      "every change; unset = off (--watch-dir overrides)" },
    { "watch.debounce", KT_CFG_DURATION_MS, offsetof(hub_cfg, watch_debounce_ms), 10, 60000,
      "200ms", 0, "quiet time after the last change in watch_dir before reconciling" },
    { "limits.max_body_bytes", KT_CFG_SIZE_BYTES, offsetof(hub_cfg, limits.max_body_bytes), 1024,
      4 * GIB, "64MiB", 0, "largest HTTP request body (POST /api/v1/apply); larger gets 413" },
    { "log.level", KT_CFG_STRING, offsetof(hub_cfg, log.level), 1, 16, "info", KT_CFG_ENV,
      "err, warn, notice, info or debug" },
    { "sync.heartbeat_ms", KT_CFG_DURATION_MS, offsetof(hub_cfg, sync.heartbeat_ms), 100, 3600000,
      "5000", 0, "sync heartbeat interval; three missed intervals close the connection" },
    { "sync.window_bytes", KT_CFG_SIZE_BYTES, offsetof(hub_cfg, sync.window_bytes), 4096, GIB,
      "8MiB", 0,
      "unacknowledged sync bytes in flight per agent (two full upstream batches, so a drain "
      "commits two at once)" },
    { "sync.snapshot_chunk_bytes", KT_CFG_SIZE_BYTES, offsetof(hub_cfg, sync.snapshot_chunk_bytes),
      1024, 64 * MIB, "256KiB", 0, "target size of one graph snapshot chunk" },
    { "sync.admit_rate", KT_CFG_INT, offsetof(hub_cfg, sync.admit_rate), 1, 100000, "20", 0,
      "agents admitted per second (token bucket); others get Reject{BUSY}" },
    { "sync.admit_burst", KT_CFG_INT, offsetof(hub_cfg, sync.admit_burst), 1, 100000, "20", 0,
      "admission token bucket size" },
    { "sync.max_message_bytes", KT_CFG_SIZE_BYTES, offsetof(hub_cfg, sync.max_message_bytes), 4096,
      GIB, "16MiB", 0, "largest sync WebSocket message accepted" },
    /* --- hubev: event store and event plane --- */
    { "events.store_path", KT_CFG_STRING, offsetof(hub_cfg, events.store_path), 1, 4096, NULL,
      KT_CFG_ENV, "SQLite file of the event store (WAL); unset = <data_dir>/events.db" },
    { "events.retention_max_age", KT_CFG_DURATION_MS,
      offsetof(hub_cfg, events.retention_max_age_ms), 0, 100LL * 365 * 86400 * 1000, "30d", 0,
      "delete stored events committed longer ago than this (0 = keep forever); latest state is "
      "never deleted" },
    { "events.retention_max_bytes", KT_CFG_SIZE_BYTES,
      offsetof(hub_cfg, events.retention_max_bytes), 0, 0, "8GiB", 0,
      "delete the oldest stored events while the history is larger than this (attribute and "
      "data bytes; 0 = no limit)" },
    { "events.retention_interval", KT_CFG_DURATION_MS,
      offsetof(hub_cfg, events.retention_interval_ms), 100, 86400000, "10s", 0,
      "how often the retention job runs (one bounded delete per run, repeated every 10 ms "
      "while more qualify)" },
    { "events.retention_batch_rows", KT_CFG_INT, offsetof(hub_cfg, events.retention_batch_rows), 1,
      1000000, "5000", 0, "rows deleted per retention step (one transaction)" },
    { "events.down_max_per_site", KT_CFG_INT, offsetof(hub_cfg, events.down_max_per_site), 1,
      100000000, "100000", 0,
      "commands/virtual events queued per site for its agent (and events per cloud service); "
      "beyond it: backpressure, nothing dropped (upstream batches wait unacked, broker ingress "
      "503; HUB-DOWN-FULL, ktwin_hub_downstream_full_total, ktwin_hub_upstream_deferred_total)" },
    { "events.commit_max_events", KT_CFG_INT, offsetof(hub_cfg, events.commit_max_events), 1,
      10000000, "20000", 0,
      "upstream events per group commit (one transaction per loop turn; the rest waits for the "
      "next turn)" },
    { "services.specs", KT_CFG_STRING_LIST, offsetof(hub_cfg, services.specs), 0, 4096, NULL, 0,
      "cloud twin services: \"<iface>[,<iface>..]=<plugin.so or http(s)://url> [options]\" "
      "(svc/service.h); events routed SERVICE_CLOUD go there" },
    { "services.max_depth", KT_CFG_INT, offsetof(hub_cfg, services.max_depth), 1, 64, "8", 0,
      "events emitted by cloud services (plugin emits, HTTP replies, ingress POSTs carrying "
      "ktwindepth) are routed again up to this depth; deeper ones are dropped (reason depth)" },
    /* --- end hubev --- */
    { 0 },
};

const kt_cfg_entry *hub_cfg_table(void)
{
    return table;
}

static kt_status finish(hub_cfg *cfg, kt_status st, kt_buf *errs, kt_err *err)
{
    if (st == KT_OK) {
        st = kt_cfg_apply_env(table, cfg, HUB_CFG_ENV_PREFIX, errs, err);
    }
    if (st == KT_OK && (cfg->tls.cert_file == NULL) != (cfg->tls.key_file == NULL)) {
        if (errs != NULL) {
            (void)kt_buf_puts(errs, "tls: cert_file and key_file must be set together\n");
        }
        st = kt_err_set(err, KT_EINVAL, "tls: cert_file and key_file must be set together");
    }
    if (st != KT_OK) {
        hub_cfg_fini(cfg);
    }
    return st;
}

kt_status hub_cfg_load(hub_cfg *cfg, const char *path, kt_buf *errs, kt_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    kt_status st = kt_cfg_defaults(table, cfg, err);
    if (st == KT_OK && path != NULL) {
        st = kt_cfg_load_file(table, cfg, path, errs, err);
        if (st == KT_ENOTFOUND) {
            kt_err_set(err, KT_ENOTFOUND, "%s: no such file", path);
        }
    }
    return finish(cfg, st, errs, err);
}

kt_status hub_cfg_load_buffer(
    hub_cfg *cfg, const char *name, const char *data, size_t len, kt_buf *errs, kt_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    kt_status st = kt_cfg_defaults(table, cfg, err);
    if (st == KT_OK) {
        st = kt_cfg_load_buffer(table, cfg, name, data, len, errs, err);
    }
    return finish(cfg, st, errs, err);
}

void hub_cfg_fini(hub_cfg *cfg)
{
    kt_cfg_free_strings(table, cfg);
}
