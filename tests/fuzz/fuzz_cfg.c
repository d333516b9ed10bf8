/*
 * fuzz_cfg.c — kt_cfg buffer loading on arbitrary bytes with a table that
 * has every type and flag, then the reload check, dump and markdown paths,
 * and the environment step (no variables set). Must never crash, leak or
 * hang; errors are expected.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/cfg.h"

typedef struct fcfg {
    int64_t i;
    bool b;
    int64_t d;
    size_t s;
    char *str;
    char *secret;
    kt_cfg_strlist list;
    int64_t deep;
} fcfg;

static const kt_cfg_entry table[] = {
    { "a.int", KT_CFG_INT, offsetof(fcfg, i), -5, 5000, "7", KT_CFG_ENV, "int" },
    { "a.bool", KT_CFG_BOOL, offsetof(fcfg, b), 0, 0, "on", KT_CFG_RELOADABLE, "bool" },
    { "b.dur", KT_CFG_DURATION_MS, offsetof(fcfg, d), 0, 0, "1s", 0, "duration" },
    { "b.size", KT_CFG_SIZE_BYTES, offsetof(fcfg, s), 1, 1 << 30, "4KiB", 0, "size" },
    { "str", KT_CFG_STRING, offsetof(fcfg, str), 0, 32, "x", 0, "string" },
    { "sec.token", KT_CFG_STRING, offsetof(fcfg, secret), 0, 0, NULL, KT_CFG_SECRET, "secret" },
    { "list", KT_CFG_STRING_LIST, offsetof(fcfg, list), 0, 8, "p,q", 0, "list" },
    { "x.y.z.w", KT_CFG_INT, offsetof(fcfg, deep), 0, 0, "0", 0, "deep" },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fcfg a;
    fcfg b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    (void)kt_cfg_defaults(table, &a, NULL);
    (void)kt_cfg_defaults(table, &b, NULL);
    (void)kt_cfg_load_buffer(table, &b, "fuzz.yaml", (const char *)data, size, &errs, &err);
    (void)kt_cfg_apply_env(table, &b, "KTFUZZ_NOPE_", &errs, &err);
    (void)kt_cfg_reload_check(table, &a, &b, &errs, &err);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    (void)kt_cfg_dump(table, &b, &out);
    kt_buf_fini(&out);
    kt_cfg_free_strings(table, &a);
    kt_cfg_free_strings(table, &b);
    kt_buf_fini(&errs);
    return 0;
}
