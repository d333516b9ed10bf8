/*
 * fuzz_event_json.c — structured-mode CloudEvent parsing
 * (model_event_from_json) on arbitrary bytes with a small data cap. An
 * event that parses must survive structured render -> parse and the compact
 * binary encode -> decode with the same attributes. Must never crash, leak
 * or read past size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "model/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void same_or_abort(const model_event *a, const model_event *b)
{
    if (a->cls != b->cls || strcmp(a->iface, b->iface) != 0 ||
        strcmp(a->command, b->command) != 0 || !str_same(a->id, b->id) ||
        !str_same(a->source, b->source) || !str_same(a->time, b->time) ||
        a->time_ms != b->time_ms || a->data_len != b->data_len ||
        (a->data_len > 0 && memcmp(a->data, b->data, a->data_len) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_event *ev = NULL;
    if (model_event_from_json(&ev, (const char *)data, size, 4096, NULL) != KT_OK) {
        return 0;
    }
    kt_buf b;
    kt_buf_init(&b, 1u << 20);
    model_event *back = NULL;
    if (model_event_to_json(ev, &b) != KT_OK ||
        model_event_from_json(&back, b.data, b.len, 4096, NULL) != KT_OK) {
        abort();
    }
    same_or_abort(ev, back);
    model_event_free(back);
    kt_buf_reset(&b);
    if (model_event_encode(ev, &b) != KT_OK ||
        model_event_decode(&back, b.data, b.len, 4096, NULL) != KT_OK) {
        abort();
    }
    same_or_abort(ev, back);
    model_event_free(back);
    model_ce_headers h;
    model_event_to_http_binary(ev, &h);
    kt_buf_fini(&b);
    model_event_free(ev);
    return 0;
}
