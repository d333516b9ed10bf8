/*
 * echo_plugin.c — an example twin service built against ktwin.h, and the
 * plugin the svc tests load.
 *
 * For a REAL event of instance I (interface X) it:
 *   1. reads I's latest state (ktwin_latest) and its "seen" counter;
 *   2. counts the instances of X in the graph (ktwin_graph_instances);
 *   3. emits ktwin.store.X for I: {"seen":N+1,"peers":P,"last":<event data>};
 *   4. emits ktwin.virtual.X for I: {"ack":N+1} (back to the device);
 *   5. for each outgoing relationship of I (ktwin_graph_relationships),
 *      emits ktwin.command.<rel iface>.<command> to the related instance
 *      with {"from":"I","rel":"<name>"}; <command> comes from the init
 *      config {"command":"Notify"} (default "notify").
 * For a COMMAND event it emits ktwin.store for the target:
 *   {"lastCommand":"<cmd>","commandData":<data>,"incoming":K,"firstIncomingIface":"<iface>"}
 * where K is the number of relationships pointing at the target (KTWIN_REL_IN)
 * and the interface is that of the first one's source.
 * Data containing "fail":true makes it fail after emitting (the host must
 * discard those emits); "retry":true makes it return KTWIN_EAGAIN.
 *
 * Build: cc -shared -fPIC -I sdk/include echo_plugin.c -o echo_plugin.so
 * Thread: the host's loop (ktwin.h THREADING); state is touched only there.
 * Ownership: state is allocated in init and freed in fini.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktwin.h"

typedef struct echo_state {
    char command[64];
    unsigned long handled;
} echo_state;

static const char *const echo_ifaces[] = { "city-pole", "ngsi-ld-city-airqualityobserved", NULL };

/* The integer value of "key": in a flat JSON text, or 0 (an example, not a JSON parser). */
static long json_int(const char *json, const char *key)
{
    char pat[80];
    const char *p;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    if (p == NULL) {
        return 0;
    }
    return strtol(p + strlen(pat), NULL, 10);
}

static int echo_init(const char *config_json, void **state_out)
{
    echo_state *s = calloc(1, sizeof(*s));
    const char *p;
    if (s == NULL) {
        return KTWIN_ENOMEM;
    }
    snprintf(s->command, sizeof(s->command), "notify");
    p = strstr(config_json, "\"command\":\"");
    if (p != NULL) {
        size_t n = 0;
        p += strlen("\"command\":\"");
        while (p[n] != '\0' && p[n] != '"' && n + 1 < sizeof(s->command)) {
            n++;
        }
        memcpy(s->command, p, n);
        s->command[n] = '\0';
    }
    if (strstr(config_json, "\"refuse\":true") != NULL) {
        free(s);
        return KTWIN_EINVAL;
    }
    *state_out = s;
    return KTWIN_OK;
}

static void echo_fini(void *state)
{
    free(state);
}

static int on_real(ktwin_ctx *ctx, const ktwin_event *ev, echo_state *s)
{
    ktwin_state latest;
    ktwin_rel rels[16];
    size_t n_rels = 0;
    size_t peers = 0;
    long seen = 0;
    size_t i;
    char *buf;
    size_t cap = ev->data_len + 128;
    int rc;
    int n;
    if (ktwin_latest(ctx, ev->iface, ev->instance, &latest) == KTWIN_OK) {
        seen = json_int(latest.data, "seen");
    }
    (void)ktwin_graph_instances(ctx, ev->iface, 0, NULL, 0, &peers);
    buf = malloc(cap);
    if (buf == NULL) {
        return KTWIN_ENOMEM;
    }
    n = snprintf(buf, cap, "{\"seen\":%ld,\"peers\":%zu,\"last\":%s}", seen + 1, peers,
                 ev->data_len > 0 ? ev->data : "null");
    rc = ktwin_emit_store(ctx, ev->iface, ev->instance, buf, (size_t)n);
    if (rc == KTWIN_OK) {
        n = snprintf(buf, cap, "{\"ack\":%ld}", seen + 1);
        rc = ktwin_emit_virtual(ctx, ev->iface, ev->instance, buf, (size_t)n);
    }
    if (rc == KTWIN_OK && ktwin_graph_relationships(ctx, ev->instance, KTWIN_REL_OUT, rels, 16,
                                                    &n_rels) == KTWIN_OK) {
        for (i = 0; i < n_rels && i < 16 && rc == KTWIN_OK; i++) {
            n = snprintf(buf, cap, "{\"from\":\"%s\",\"rel\":\"%s\"}", ev->instance, rels[i].name);
            rc = ktwin_emit_command(ctx, rels[i].iface, s->command, rels[i].instance, buf,
                                    (size_t)n);
        }
    }
    free(buf);
    return rc;
}

static int on_command(ktwin_ctx *ctx, const ktwin_event *ev)
{
    size_t cap = ev->data_len + 512;
    char *buf = malloc(cap);
    ktwin_rel in[4];
    size_t n_in = 0;
    const char *from_iface = "";
    int n;
    int rc;
    if (buf == NULL) {
        return KTWIN_ENOMEM;
    }
    /* who points at the target (e.g. the poles of a neighborhood), and their interface */
    if (ktwin_graph_relationships(ctx, ev->instance, KTWIN_REL_IN, in, 4, &n_in) == KTWIN_OK &&
        n_in > 0) {
        (void)ktwin_graph_instance_iface(ctx, in[0].instance, &from_iface);
    }
    n = snprintf(
        buf, cap,
        "{\"lastCommand\":\"%s\",\"commandData\":%s,\"incoming\":%zu,\"firstIncomingIface\":\"%s\"}",
        ev->command, ev->data_len > 0 ? ev->data : "null", n_in, from_iface);
    rc = ktwin_emit_store(ctx, ev->iface, ev->instance, buf, (size_t)n);
    free(buf);
    return rc;
}

static int echo_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    echo_state *s = state;
    int rc;
    s->handled++;
    if (ev->kind == KTWIN_EVENT_COMMAND) {
        rc = on_command(ctx, ev);
    } else {
        rc = on_real(ctx, ev, s);
    }
    if (rc != KTWIN_OK) {
        return rc;
    }
    if (strstr(ev->data, "\"retry\":true") != NULL) {
        ktwin_log(ctx, KTWIN_LOG_INFO, "asked to retry");
        return KTWIN_EAGAIN;
    }
    if (strstr(ev->data, "\"fail\":true") != NULL) {
        ktwin_log(ctx, KTWIN_LOG_WARN, "asked to fail");
        return KTWIN_EFAIL;
    }
    return KTWIN_OK;
}

static const ktwin_plugin echo_plugin = {
    .struct_size = (uint32_t)sizeof(ktwin_plugin),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .name = "echo",
    .interfaces = echo_ifaces,
    .init = echo_init,
    .fini = echo_fini,
    .handle = echo_handle,
};

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void)
{
    return &echo_plugin;
}
