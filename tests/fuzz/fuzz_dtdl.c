/*
 * fuzz_dtdl.c — DTDL import on untrusted bytes: add, convert, emit.
 *
 * The input is one DTDL file. Every interface that was added is converted
 * and emitted as YAML; diagnostics are kept up to a small cap and counted
 * past it. Crashes, leaks and sanitizer reports are the findings.
 */
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "model/diag.h"
#include "model/dtdl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_diag diag;
    model_diag_init(&diag);
    diag.max = 256;
    model_dtdl_opts opts = { NULL, 1 };
    model_dtdl *d = model_dtdl_new(&opts);
    kt_err err = { 0 };
    if (model_dtdl_add_buffer(d, "fuzz.json", (const char *)data, size, &diag, &err) == KT_OK) {
        (void)model_dtdl_convert(d, &diag);
        kt_buf out;
        kt_buf_init(&out, 64u * 1024u * 1024u);
        for (size_t i = 0; i < model_dtdl_count(d); i++) {
            (void)model_dtdl_name(d, i);
            (void)model_dtdl_source(d, i);
            (void)model_dtdl_emit(d, i, &out);
        }
        kt_buf_fini(&out);
    }
    char name[64];
    char id[128];
    size_t n = size < sizeof id - 1 ? size : sizeof id - 1;
    for (size_t i = 0; i < n; i++) {
        id[i] = data[i] != 0 ? (char)data[i] : 'x';
    }
    id[n] = '\0';
    (void)model_dtdl_name_from_id(id, name, sizeof name);
    model_dtdl_free(d);
    model_diag_fini(&diag);
    return 0;
}
