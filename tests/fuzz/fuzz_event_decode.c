/*
 * fuzz_event_decode.c — the compact binary event form (model_event_decode)
 * on arbitrary bytes. A decoded event must encode to bytes that decode
 * again and encode to the same bytes (decode normalises: command case,
 * time_ms from the time string). Must never crash, leak or read past size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "model/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_event *ev = NULL;
    if (model_event_decode(&ev, data, size, 4096, NULL) != KT_OK) {
        return 0;
    }
    kt_buf a, b;
    kt_buf_init(&a, 1u << 20);
    kt_buf_init(&b, 1u << 20);
    model_event *again = NULL;
    if (model_event_encode(ev, &a) != KT_OK ||
        model_event_decode(&again, a.data, a.len, 4096, NULL) != KT_OK ||
        model_event_encode(again, &b) != KT_OK || a.len != b.len ||
        memcmp(a.data, b.data, a.len) != 0) {
        abort();
    }
    model_event_free(again);
    kt_buf_fini(&a);
    kt_buf_fini(&b);
    model_event_free(ev);
    return 0;
}
