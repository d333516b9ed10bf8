/*
 * bad_plugin.c — plugins the host must refuse: built twice by
 * tests/unit/svc/tests.cmake, with KT_BAD_ABI (a descriptor of ABI 99) and
 * without (no ktwin_plugin_v1 symbol at all).
 */
#include "ktwin.h"

static int bad_handle(ktwin_ctx *ctx, const ktwin_event *ev, void *state)
{
    (void)ctx;
    (void)ev;
    (void)state;
    return KTWIN_OK;
}

static const char *const bad_ifaces[] = { "city-pole", NULL };

static const ktwin_plugin bad = {
    .struct_size = (uint32_t)sizeof(ktwin_plugin),
    .abi_version = 99,
    .name = "bad",
    .interfaces = bad_ifaces,
    .handle = bad_handle,
};

#ifdef KT_BAD_ABI
KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void);
KTWIN_EXPORT const ktwin_plugin *ktwin_plugin_v1(void)
{
    return &bad;
}
#else
KTWIN_EXPORT const ktwin_plugin *not_the_entry(void);
KTWIN_EXPORT const ktwin_plugin *not_the_entry(void)
{
    return &bad;
}
#endif
