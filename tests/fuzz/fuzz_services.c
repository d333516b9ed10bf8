/*
 * fuzz_services.c — the parsers of the smart-city service plugins on
 * arbitrary bytes: the RFC 3339 time parser of services/formulas.c (a
 * parsed time must format and parse back to itself) and the plugin
 * configuration parser (sc_config_parse). Thread: main. Ownership: the
 * NUL-terminated copy is freed before return.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formulas.h"
#include "kt/mem.h"
#include "sc_plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kt_xmalloc(size + 1);
    int64_t ms = 0;
    char why[128];
    sc_config cfg;
    memcpy(s, data, size);
    s[size] = '\0';
    if (sc_time_parse_ms(s, &ms)) {
        char out[SC_TIME_CAP];
        int64_t back = 0;
        sc_time_format(ms, out);
        if (out[0] != '\0' && (!sc_time_parse_ms(out, &back) || back != ms)) {
            __builtin_trap();
        }
    }
    (void)sc_config_parse(s, &cfg, why, sizeof why);
    kt_free(s);
    return 0;
}
