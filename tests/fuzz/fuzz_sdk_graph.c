/*
 * fuzz_sdk_graph.c — libktwin's parsers of untrusted bytes: the twin-graph
 * JSON a standalone service GETs from KTWIN_GRAPH_URL (ktwin_gindex_build:
 * graph import, bare interfaces, resolve) followed by the lookups the
 * plugin host makes, and the response-header reader
 * (ktwin_remote_header_parse) on each line of the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gindex.h"
#include "remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model *m = NULL;
    kt_err err = { 0 };
    ktwin_remote_hdrs h;
    size_t start = 0;
    size_t i;
    if (ktwin_gindex_build(&m, "fuzz", (const char *)data, size, &err) == KT_OK) {
        for (i = 0; i < model_n_instances(m); i++) {
            const model_instance *inst = model_instance_at(m, i);
            const model_iface *f = model_iface_get(m, inst->iface_name);
            (void)model_instance_get(m, inst->name);
            if (f != NULL && f->n_instances == 0) {
                __builtin_trap(); /* an instance's own interface lists it */
            }
        }
        model_free(m);
    }
    memset(&h, 0, sizeof(h));
    for (i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            ktwin_remote_header_parse(&h, (const char *)data + start, i - start);
            start = i + 1;
        }
    }
    if (strlen(h.ce_id) >= sizeof(h.ce_id) || strlen(h.ce_time) >= sizeof(h.ce_time)) {
        __builtin_trap();
    }
    return 0;
}
