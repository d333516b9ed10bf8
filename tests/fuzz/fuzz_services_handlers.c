/*
 * fuzz_services_handlers.c — every smart-city service handler on arbitrary
 * bytes: the input is both the event's data and the instance's latest
 * stored state (so state parsing — neighborhood reports, switching dates,
 * counts — is fuzzed too), delivered as a real event and as each command
 * the services handle, with and without an event time. A fake host (its
 * own ktwin_host_api table) answers with a few graph edges and checks that
 * everything emitted is a JSON object.
 *
 * Thread: main. Ownership: the NUL-terminated copy is freed before return.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/mem.h"
#include "ktwin.h"
#include "sc_plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fake_ctx {
    ktwin_ctx base; /* first: the host's view */
    const char *state;
    size_t state_len;
    unsigned emits;
} fake_ctx;

static int fake_emit(ktwin_ctx *ctx,
                     ktwin_event_kind kind,
                     const char *iface,
                     const char *command,
                     const char *instance,
                     const char *text,
                     size_t len)
{
    fake_ctx *f = (fake_ctx *)ctx;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    (void)kind;
    (void)command;
    if (!cJSON_IsObject(doc) || iface == NULL || instance == NULL) {
        __builtin_trap(); /* the services only emit JSON objects to named twins */
    }
    cJSON_Delete(doc);
    f->emits++;
    return KTWIN_OK;
}

static const ktwin_rel out_edges[] = {
    { "citypole", "city-pole", "city-pole-1", 0 },
    { "refNeighborhood", "s4city-city-neighborhood", "hood-1", 0 },
    { "refOffStreetParking", "ngsi-ld-city-offstreetparking", "ofp-1", 0 },
};
static const ktwin_rel in_edges[] = {
    { "refOffStreetParking", "ngsi-ld-city-parkingspot", "spot-1", 1 },
    { "refOffStreetParking", "s4city-city-neighborhood", "hood-1", 1 },
    { "refOffStreetParking", "ngsi-ld-city-parkingspot", "spot-2", 1 },
};

static int fake_rels(ktwin_ctx *ctx,
                     const char *instance,
                     unsigned which,
                     ktwin_rel *out,
                     size_t cap,
                     size_t *n_total)
{
    const ktwin_rel *src = (which & KTWIN_REL_IN) != 0 ? in_edges : out_edges;
    size_t n = 3;
    (void)ctx;
    (void)instance;
    for (size_t i = 0; i < n && i < cap; i++) {
        out[i] = src[i];
    }
    if (n_total != NULL) {
        *n_total = n;
    }
    return KTWIN_OK;
}

static int fake_latest(ktwin_ctx *ctx, const char *iface, const char *instance, ktwin_state *out)
{
    fake_ctx *f = (fake_ctx *)ctx;
    (void)iface;
    (void)instance;
    out->id = "s-1";
    out->time = "2024-06-22T00:00:00Z";
    out->data = f->state;
    out->data_len = f->state_len;
    return KTWIN_OK;
}

static void fake_log(ktwin_ctx *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static const ktwin_host_api fake_api = {
    .struct_size = (uint32_t)sizeof(ktwin_host_api),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .emit = fake_emit,
    .graph_relationships = fake_rels,
    .latest = fake_latest,
    .log = fake_log,
};

static const sc_service *const services[] = {
    &sc_service_aqi,          &sc_service_city_pole,
    &sc_service_neighborhood, &sc_service_weather,
    &sc_service_crowd_flow,   &sc_service_traffic_flow,
    &sc_service_parking_spot, &sc_service_offstreet_parking,
    &sc_service_streetlight,  &sc_service_device_battery,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const commands[] = { NULL, "updateairqualityindex", "updatevehiclecount" };
    char *text = kt_xmalloc(size + 1);
    sc_config cfg;
    sc_config_default(&cfg);
    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t s = 0; s < sizeof services / sizeof services[0]; s++) {
        for (size_t c = 0; c < 3; c++) {
            for (int timed = 0; timed < 2; timed++) {
                fake_ctx f = { { &fake_api }, text, size, 0 };
                ktwin_event ev = { .struct_size = (uint32_t)sizeof(ktwin_event),
                                   .kind =
                                       commands[c] != NULL ? KTWIN_EVENT_COMMAND : KTWIN_EVENT_REAL,
                                   .type = "ktwin.fuzz",
                                   .iface = services[s]->ifaces[0],
                                   .command = commands[c],
                                   .instance = "inst-1",
                                   .id = "ev-1",
                                   .time = timed ? "2024-06-24T00:50:00.5Z" : "",
                                   .data = text,
                                   .data_len = size };
                (void)services[s]->handle(&f.base, &ev, &cfg);
            }
        }
    }
    kt_free(text);
    return 0;
}
