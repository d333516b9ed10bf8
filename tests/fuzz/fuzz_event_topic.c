/*
 * fuzz_event_topic.c — MQTT topic parsing (model_topic_parse) on arbitrary
 * bytes. A topic that parses must build back to the same bytes, and its
 * filter must build too. Must never crash, leak or read past size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_topic t;
    kt_err err = { 0 };
    if (model_topic_parse(&t, (const char *)data, size, &err) != KT_OK) {
        return 0;
    }
    char out[MODEL_TOPIC_CAP];
    if (model_topic_build(out, sizeof out, t.cls, t.iface, t.instance, NULL) != KT_OK ||
        strlen(out) != size || memcmp(out, data, size) != 0) {
        abort();
    }
    if (model_topic_filter(out, sizeof out, t.cls, t.iface, NULL) != KT_OK) {
        abort();
    }
    model_event ev;
    model_event_from_topic(&ev, &t, data, size, "id", NULL, 0);
    if (model_event_check(&ev, 0, NULL) != KT_OK) {
        abort();
    }
    return 0;
}
