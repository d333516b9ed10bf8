/*
 * fuzz_graph_json.c — KTWIN graph JSON import on arbitrary bytes, then
 * resolve, a subgraph of the first instance, and export of the whole graph
 * and of the first instance's interface, so every path through graph.c runs.
 */
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "model/graph.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    kt_err err = { 0 };
    model_graph_from_json(m, "fuzz.json", (const char *)data, size, &diag, &err);
    (void)model_resolve(m, &diag);
    kt_buf out;
    kt_buf_init(&out, 1u << 22);
    if (model_n_instances(m) > 0) {
        model_instance *seed = model_instance_at(m, 0);
        model_instance_set set;
        model_instance_set_init(&set);
        model_subgraph(m, &seed, 1, 2, &set);
        (void)model_graph_to_json(m, &set, &out);
        model_instance_set_fini(&set);
        kt_buf_reset(&out);
        (void)model_graph_iface_to_json(m, seed->iface_name, &out);
        kt_buf_reset(&out);
    }
    (void)model_graph_to_json(m, NULL, &out);
    kt_buf_fini(&out);
    model_diag_fini(&diag);
    model_free(m);
    return 0;
}
