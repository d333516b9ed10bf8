/*
 * bench_eventplane_plugin.c — the twin service of the event-plane benchmarks
 * (bench/bench_eventplane.py): for each REAL event it emits exactly one
 * ktwin.store.<iface> event for the same instance, whose data is the
 * event's JSON object with "h_us" (the handler's wall clock, microseconds
 * since the epoch, CLOCK_REALTIME) added before the closing brace. So the
 * hub's event store ends up with one row per device message, carrying the
 * publisher's fields (seq, t_us) and the handler time. Nothing else is
 * emitted (no virtual, no commands), so "events committed at the hub"
 * equals "device messages handled".
 *
 * Interfaces: none of its own (ktwin_plugin.interfaces = NULL): it serves
 * whatever the services spec assigns. Data that is not a JSON object, or
 * over DATA_CAP bytes (the benchmark's payloads are ~60), is refused with
 * KTWIN_EINVAL (counted as a service failure by the host).
 *
 * Build: a MODULE against sdk/include/ktwin.h (bench/CMakeLists.txt).
 * Thread: the host's loop (ktwin.h THREADING); stateless.
 * Ownership: the emit buffer is on the stack (no allocation).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ktwin.h"

#define DATA_CAP 1024

static int bench_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    struct timespec ts;
    char buf[DATA_CAP + 64];
    size_t len = ev->data_len;
    int n;
    (void)state;
    if (ev->kind != KTWIN_EVENT_REAL) {
        return KTWIN_OK;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    while (len > 0 && (ev->data[len - 1] == ' ' || ev->data[len - 1] == '\n')) {
        len--;
    }
    if (len < 2 || len > DATA_CAP || ev->data[0] != '{' || ev->data[len - 1] != '}') {
        return KTWIN_EINVAL;
    }
    /* "{...}" -> "{...,"h_us":N}" ("{}" -> "{"h_us":N}") */
    n = snprintf(buf, sizeof buf, "%.*s%s\"h_us\":%lld}", (int)(len - 1), ev->data,
                 len > 2 ? "," : "", (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000);
    return ktwin_emit_store(ctx, ev->iface, ev->instance, buf, (size_t)n);
}

static const ktwin_plugin bench_plugin = {
    .struct_size = (uint32_t)sizeof(ktwin_plugin),
    .abi_version = KTWIN_PLUGIN_ABI_VERSION,
    .name = "bench-store",
    .interfaces = NULL,
    .init = NULL,
    .fini = NULL,
    .handle = bench_handle,
};

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);

KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void)
{
    return &bench_plugin;
}
