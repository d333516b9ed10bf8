/*
 * smartcity.c — every smart-city service in one plugin (smartcity.so), for
 * an agent or hub configuration that maps all interfaces to one file
 * ("*=smartcity.so"). Each event goes to the service of its interface (the
 * event's own interface: real events of it and commands addressed to it);
 * an event of an interface no service handles is accepted and ignored.
 *
 * Thread: the host's loop. Ownership: the descriptor is static; the state
 * (one sc_config shared by all services) is the plugin's, init to fini.
 */
#include <string.h>

#include "sc_plugin.h"

static const sc_service *const services[] = {
    &sc_service_aqi,          &sc_service_city_pole,
    &sc_service_neighborhood, &sc_service_weather,
    &sc_service_crowd_flow,   &sc_service_traffic_flow,
    &sc_service_parking_spot, &sc_service_offstreet_parking,
    &sc_service_streetlight,  &sc_service_device_battery,
};

/* The same interfaces, as string literals (a static list must be constant). */
static const char *const all_ifaces[] = {
    SC_IF_AQO,  SC_IF_POLE, SC_IF_HOOD,  SC_IF_WEATHER, SC_IF_CROWD, SC_IF_TRAFFIC,
    SC_IF_SPOT, SC_IF_OFP,  SC_IF_LIGHT, SC_IF_DEVICE,  NULL,
};

static int bundle_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        if (strcmp(services[i]->ifaces[0], ev->iface) == 0) {
            return services[i]->handle(ctx, ev, state);
        }
    }
    sc_logf(ctx, KTWIN_LOG_DEBUG, "%s: no smart-city service for %s: ignored", ev->type,
            ev->instance);
    return KTWIN_OK;
}

static const ktwin_plugin bundle = {
    .struct_size = (uint32_t)sizeof(ktwin_plugin),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .name = "smartcity",
    .interfaces = all_ifaces,
    .init = sc_plugin_init,
    .fini = sc_plugin_fini,
    .handle = bundle_handle,
};

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void)
{
    return &bundle;
}
