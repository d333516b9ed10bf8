/*
 * fuzz_crd_yaml.c — the CRD loader on arbitrary bytes: YAML or JSON
 * parsing, schema validation, typed extraction and model_resolve.
 */
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model *m = model_new();
    model_diag d;
    model_diag_init(&d);
    d.max = 100;
    kt_err err = { 0 };
    model_load_buffer(m, "fuzz.yaml", (const char *)data, size, &d, &err);
    model_resolve(m, &d);
    model_diag_fini(&d);
    model_free(m);
    return 0;
}
