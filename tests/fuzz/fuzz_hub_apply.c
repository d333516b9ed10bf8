/*
 * fuzz_hub_apply.c — POST /api/v1/apply bodies (untrusted bytes) through
 * hub_graph_apply on an in-memory store preloaded with a small valid city.
 *
 * Invariants checked on every input: the call returns KT_OK or KT_EINVAL
 * (never anything else on an in-memory database); KT_EINVAL leaves the
 * revision, object count and bodies as they were and carries at least one
 * error; KT_OK leaves a model that re-validates, and a second apply of the
 * same bytes changes nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/graph.h"
#include "hub/store.h"
#include "kt/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char city[] =
    "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: city-neighborhood}\nspec: {}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: city-pole}\n"
    "spec:\n  relationships:\n  - {name: refNeighborhood, interface: city-neighborhood}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: nb-1}\n"
    "spec: {interface: city-neighborhood}\n"
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: pole-1}\n"
    "spec:\n  interface: city-pole\n  twinInstanceRelationships:\n"
    "  - {name: refNeighborhood, interface: city-neighborhood, instance: nb-1}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) {
        return 0;
    }
    hub_store *store = NULL;
    hub_graph *g = NULL;
    kt_err err = { 0 };
    if (hub_store_open(&store, ":memory:", &err) != KT_OK) {
        abort();
    }
    if (hub_graph_new(&g, store, &err) != KT_OK) {
        abort();
    }
    hub_apply_result r;
    hub_apply_result_init(&r);
    if (hub_graph_apply(g, "request", city, sizeof(city) - 1, &r, &err) != KT_OK) {
        abort();
    }
    hub_apply_result_fini(&r);
    uint64_t rev = hub_graph_revision(g);
    size_t n = hub_graph_count(g, 0);

    hub_apply_result_init(&r);
    kt_err aerr = { 0 };
    kt_status st = hub_graph_apply(g, "request", (const char *)data, size, &r, &aerr);
    if (st == KT_EINVAL) {
        if (r.diag.n_errors == 0 || hub_graph_revision(g) != rev || hub_graph_count(g, 0) != n ||
            hub_graph_body(g, HUB_KIND_INSTANCE, "pole-1", NULL, NULL) == NULL) {
            abort();
        }
    } else if (st == KT_OK) {
        uint64_t rev2 = hub_graph_revision(g);
        hub_apply_result_fini(&r);
        hub_apply_result_init(&r);
        if (hub_graph_apply(g, "request", (const char *)data, size, &r, &aerr) != KT_OK ||
            hub_graph_revision(g) != rev2) {
            abort();
        }
        for (size_t i = 0; i < r.n_items; i++) {
            if (r.items[i].op != HUB_OP_UNCHANGED) {
                abort();
            }
        }
    } else {
        abort();
    }
    hub_apply_result_fini(&r);
    hub_graph_free(g);
    hub_store_free(store);
    return 0;
}
