/*
 * fuzz_json_reader.c — the position-tracking JSON reader on arbitrary bytes,
 * each document re-serialised to exercise the whole tree.
 */
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "model/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kt_status to_json_cb(const model_doc *doc, void *user)
{
    kt_buf *b = user;
    kt_buf_reset(b);
    if (doc->root != NULL) {
        model_node_to_json(doc->root, b);
    }
    return KT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kt_arena a;
    kt_arena_init(&a, 4096);
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    kt_err err = { 0 };
    model_parse_limits lim = { 32, 10000 };
    model_parse_json(&a, "fuzz.json", (const char *)data, size, &lim, to_json_cb, &b, &err);
    kt_buf_fini(&b);
    kt_arena_fini(&a);
    return 0;
}
