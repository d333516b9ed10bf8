/*
 * tests/unit/agent/dispatch_plugin.c — a twin-service plugin for the
 * dispatcher's unit tests, built against sdk/include/ktwin.h only.
 *
 * Serves "sensor", "pole" and "hood":
 *   real sensor x {"v":N}        -> store sensor x {"v":N}, virtual sensor x {"led":"on"},
 *                                   command pole.alert to the instance its "pole"
 *                                   relationship names, and command pole.alert to
 *                                   pole-2 (hosted on another site);
 *   real sensor x {"loop":true}  -> real sensor x again (a loop the dispatcher must cut);
 *   real pole x                  -> store pole x {"seen":true};
 *   command pole.alert x         -> store pole x {"alerted":true};
 *   anything for hood            -> store hood x {"aggregated":true}.
 * Every call is counted in the "calls" variable the test reads through
 * dispatch_plugin_calls (exported).
 *
 * Thread: the host's loop thread. Ownership: static state only.
 */
#include <string.h>

#include <ktwin.h>

static int calls;

KTWIN_EXPORT int dispatch_plugin_calls(void);
int dispatch_plugin_calls(void)
{
    return calls;
}

static int handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    (void)state;
    calls++;
    if (strcmp(ev->iface, "sensor") == 0 && ev->kind == KTWIN_EVENT_REAL) {
        if (strstr(ev->data, "\"loop\"") != NULL) {
            return ktwin_emit_real(ctx, "sensor", ev->instance, ev->data, ev->data_len);
        }
        int rc = ktwin_emit_store(ctx, "sensor", ev->instance, ev->data, ev->data_len);
        if (rc == KTWIN_OK) {
            rc = ktwin_emit_virtual(ctx, "sensor", ev->instance, "{\"led\":\"on\"}", 12);
        }
        ktwin_rel rel;
        if (rc == KTWIN_OK &&
            ktwin_graph_relationship(ctx, ev->instance, "pole", &rel) == KTWIN_OK) {
            rc = ktwin_emit_command(ctx, rel.iface, "Alert", rel.instance, "{\"level\":1}", 11);
        }
        if (rc == KTWIN_OK) {
            rc = ktwin_emit_command(ctx, "pole", "alert", "pole-2", "{\"level\":2}", 11);
        }
        return rc;
    }
    if (strcmp(ev->iface, "pole") == 0 && ev->kind == KTWIN_EVENT_REAL) {
        return ktwin_emit_store(ctx, "pole", ev->instance, "{\"seen\":true}", 13);
    }
    if (strcmp(ev->iface, "pole") == 0 && ev->kind == KTWIN_EVENT_COMMAND) {
        return ktwin_emit_store(ctx, "pole", ev->instance, "{\"alerted\":true}", 16);
    }
    return KTWIN_OK;
}

static const char *const ifaces[] = { "sensor", "pole", "hood", NULL };

static const ktwin_plugin plugin = {
    .struct_size = sizeof(ktwin_plugin),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .name = "dispatch-test",
    .interfaces = ifaces,
    .handle = handle,
};

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);
const ktwin_plugin *ktwin_plugin_v1(void)
{
    return &plugin;
}
