/*
 * plugin_one.c — turns one smart-city service into a plugin. Compiled once
 * per plugin with -DSC_SERVICE=sc_service_<name> (services/CMakeLists.txt):
 * aqi.so serves ngsi-ld-city-airqualityobserved, and so on.
 *
 * The descriptor is filled on the first call of the entry point (a
 * static initializer cannot read another object's fields); the host calls
 * it on its loop thread, and later calls return the same descriptor.
 *
 * Thread: the host's loop. Ownership: the descriptor is static; the state
 * (an sc_config) is the plugin's, from init to fini.
 */
#include <string.h>

#include "sc_plugin.h"

#ifndef SC_SERVICE
#error "compile with -DSC_SERVICE=sc_service_<name>"
#endif

static int one_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    return SC_SERVICE.handle(ctx, ev, state);
}

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void)
{
    static ktwin_plugin desc;
    if (desc.struct_size == 0) {
        desc.abi_version = KTWIN_PLUGIN_ABI_VERSION;
        desc.name = SC_SERVICE.name;
        desc.interfaces = SC_SERVICE.ifaces;
        desc.init = sc_plugin_init;
        desc.fini = sc_plugin_fini;
        desc.handle = one_handle;
        desc.struct_size = (uint32_t)sizeof(desc);
    }
    return &desc;
}
