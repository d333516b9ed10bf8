/*
 * sc_plugin.c — helpers shared by the smart-city service plugins. See
 * sc_plugin.h.
 *
 * Memory: every allocation goes through cJSON (cJSON_malloc/cJSON_Delete/
 * cJSON_free), so in the agent and hub it lands in the host's allocator
 * (kt_json_init installs kt_malloc as cJSON's hooks; the plugin shares the
 * process's libcjson). Thread: the host's loop.
 */
#include "sc_plugin.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "formulas.h"

/* ---- configuration ------------------------------------------------------------------- */

void sc_config_default(sc_config *out)
{
    out->hood_expiry_ms = 3600 * 1000LL;
    out->lamp_limit_ms = 48 * 3600 * 1000LL;
    out->battery_low_pct = 15.0;
    out->battery_virtual_on_change = false;
    out->pressure_steady_hpa = 0.1;
    out->parking_default_total = 50;
}

static int why_set(char *why, size_t why_cap, const char *key, const char *what)
{
    if (why != NULL && why_cap > 0) {
        (void)snprintf(why, why_cap, "%s: %s", key, what);
    }
    return KTWIN_EINVAL;
}

/* A number in [lo, hi] under key, or KTWIN_EINVAL. */
static int cfg_num(const cJSON *it, double lo, double hi, double *out, char *why, size_t why_cap)
{
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < lo ||
        it->valuedouble > hi) {
        char msg[96];
        (void)snprintf(msg, sizeof msg, "a number in %g..%g is required", lo, hi);
        return why_set(why, why_cap, it->string, msg);
    }
    *out = it->valuedouble;
    return KTWIN_OK;
}

int sc_config_parse(const char *config_json, sc_config *out, char *why, size_t why_cap)
{
    cJSON *root;
    const cJSON *it;
    int rc = KTWIN_OK;
    sc_config_default(out);
    if (config_json == NULL || config_json[0] == '\0') {
        return KTWIN_OK;
    }
    root = cJSON_Parse(config_json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return why_set(why, why_cap, "config", "not a JSON object");
    }
    cJSON_ArrayForEach(it, root)
    {
        double v = 0.0;
        const char *k = it->string;
        if (strcmp(k, "neighborhood_expiry_s") == 0) {
            rc = cfg_num(it, 1, 365.0 * 86400.0, &v, why, why_cap);
            out->hood_expiry_ms = (int64_t)(v * 1000.0);
        } else if (strcmp(k, "streetlight_defective_after_s") == 0) {
            rc = cfg_num(it, 1, 365.0 * 86400.0, &v, why, why_cap);
            out->lamp_limit_ms = (int64_t)(v * 1000.0);
        } else if (strcmp(k, "battery_low_pct") == 0) {
            rc = cfg_num(it, 0, 100, &out->battery_low_pct, why, why_cap);
        } else if (strcmp(k, "pressure_steady_hpa") == 0) {
            rc = cfg_num(it, 0, 100, &out->pressure_steady_hpa, why, why_cap);
        } else if (strcmp(k, "parking_default_total") == 0) {
            rc = cfg_num(it, 0, 1e6, &v, why, why_cap);
            out->parking_default_total = (int64_t)v;
        } else if (strcmp(k, "battery_virtual") == 0) {
            if (cJSON_IsString(it) && strcmp(it->valuestring, "always") == 0) {
                out->battery_virtual_on_change = false;
            } else if (cJSON_IsString(it) && strcmp(it->valuestring, "on_change") == 0) {
                out->battery_virtual_on_change = true;
            } else {
                rc = why_set(why, why_cap, k, "\"always\" or \"on_change\" is required");
            }
        } else {
            rc = why_set(why, why_cap, k, "unknown key");
        }
        if (rc != KTWIN_OK) {
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

int sc_plugin_init(const char *config_json, void **state_out)
{
    char why[160] = "";
    sc_config *cfg = cJSON_malloc(sizeof(*cfg));
    int rc;
    if (cfg == NULL) {
        return KTWIN_ENOMEM;
    }
    rc = sc_config_parse(config_json, cfg, why, sizeof why);
    if (rc != KTWIN_OK) {
        /* init has no context to log through: the host reports the refusal, this says why */
        (void)fprintf(stderr, "smartcity services: config: %s\n", why);
        cJSON_free(cfg);
        return rc;
    }
    *state_out = cfg;
    return KTWIN_OK;
}

void sc_plugin_fini(void *state)
{
    cJSON_free(state);
}

/* ---- helpers ------------------------------------------------------------------------------ */

void sc_logf(ktwin_ctx *ctx, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ktwin_log(ctx, level, line);
}

int sc_event_object(ktwin_ctx *ctx, const ktwin_event *ev, cJSON **out)
{
    cJSON *root = cJSON_ParseWithLength(ev->data, ev->data_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sc_logf(ctx, KTWIN_LOG_WARN, "%s of %s: data is not a JSON object (%zu bytes)", ev->type,
                ev->instance, ev->data_len);
        return KTWIN_EINVAL;
    }
    *out = root;
    return KTWIN_OK;
}

int sc_real_object(ktwin_ctx *ctx, const ktwin_event *ev, cJSON **out)
{
    *out = NULL;
    if (ev->kind != KTWIN_EVENT_REAL) {
        return KTWIN_OK;
    }
    return sc_event_object(ctx, ev, out);
}

int sc_latest_object(ktwin_ctx *ctx, const char *iface, const char *instance, cJSON **out)
{
    ktwin_state st;
    int rc;
    *out = NULL;
    memset(&st, 0, sizeof st);
    rc = ktwin_latest(ctx, iface, instance, &st);
    if (rc == KTWIN_ENOTFOUND) {
        return KTWIN_OK;
    }
    if (rc != KTWIN_OK) {
        return rc;
    }
    *out = cJSON_ParseWithLength(st.data, st.data_len);
    if (*out != NULL && !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return KTWIN_OK;
}

int64_t sc_event_now_ms(const ktwin_event *ev)
{
    int64_t ms = 0;
    struct timespec ts;
    if (ev->time != NULL && sc_time_parse_ms(ev->time, &ms)) {
        return ms;
    }
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sc_get_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = obj != NULL ? cJSON_GetObjectItem(obj, key) : NULL;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        return false;
    }
    *out = it->valuedouble;
    return true;
}

const char *sc_get_str(const cJSON *obj, const char *key)
{
    const cJSON *it = obj != NULL ? cJSON_GetObjectItem(obj, key) : NULL;
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

void sc_set_item(cJSON *obj, const char *key, cJSON *item, int *rc)
{
    if (item == NULL) {
        *rc = *rc != KTWIN_OK ? *rc : KTWIN_ENOMEM;
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)) {
            cJSON_Delete(item);
            *rc = *rc != KTWIN_OK ? *rc : KTWIN_ENOMEM;
        }
        return;
    }
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        *rc = *rc != KTWIN_OK ? *rc : KTWIN_ENOMEM;
    }
}

void sc_set_num(cJSON *obj, const char *key, double v, int decimals, int *rc)
{
    if (decimals >= 0) {
        double f = pow(10.0, decimals);
        v = round(v * f) / f;
    }
    sc_set_item(obj, key, cJSON_CreateNumber(v), rc);
}

void sc_set_str(cJSON *obj, const char *key, const char *v, int *rc)
{
    sc_set_item(obj, key, cJSON_CreateString(v), rc);
}

void sc_set_bool(cJSON *obj, const char *key, bool v, int *rc)
{
    sc_set_item(obj, key, cJSON_CreateBool(v), rc);
}

cJSON *sc_new_object(int *rc)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        *rc = KTWIN_ENOMEM;
    }
    return o;
}

int sc_emit(ktwin_ctx *ctx,
            ktwin_event_kind kind,
            const char *iface,
            const char *command,
            const char *instance,
            const cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    int rc;
    if (text == NULL) {
        return KTWIN_ENOMEM;
    }
    rc = ktwin_emit(ctx, kind, iface, command, instance, text, strlen(text));
    cJSON_free(text);
    return rc;
}

int sc_store_self(ktwin_ctx *ctx, const ktwin_event *ev, const cJSON *obj, int rc)
{
    if (rc != KTWIN_OK) {
        return rc;
    }
    return sc_emit(ctx, KTWIN_EVENT_STORE, ev->iface, NULL, ev->instance, obj);
}

int sc_command_along(ktwin_ctx *ctx,
                     const char *instance,
                     const char *rel_name,
                     const char *command,
                     const cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    int rc;
    if (text == NULL) {
        return KTWIN_ENOMEM;
    }
    rc = ktwin_emit_command_rel(ctx, instance, rel_name, command, text, strlen(text));
    cJSON_free(text);
    if (rc == KTWIN_ENOTFOUND) {
        sc_logf(ctx, KTWIN_LOG_DEBUG, "%s has no relationship %s: no %s command", instance,
                rel_name, command);
        return KTWIN_OK;
    }
    return rc;
}
