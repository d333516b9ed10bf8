/*
 * fuzz_event_type.c — CloudEvent type parsing (model_event_set_type) and RFC
 * 3339 time parsing (model_time_parse) on arbitrary bytes. A type that
 * parses must render to a type that parses to the same class and names
 * (commands lower-cased). Must never crash or read past size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t ms = 0;
    (void)model_time_parse((const char *)data, size, &ms, NULL);

    model_event ev;
    memset(&ev, 0, sizeof ev);
    if (model_event_set_type(&ev, (const char *)data, size, NULL) != KT_OK) {
        return 0;
    }
    char type[MODEL_EVENT_TYPE_CAP];
    model_event_type_str(&ev, type, sizeof type);
    model_event back;
    memset(&back, 0, sizeof back);
    if (type[0] == '\0' || model_event_set_type(&back, type, strlen(type), NULL) != KT_OK ||
        back.cls != ev.cls || strcmp(back.iface, ev.iface) != 0 ||
        strcmp(back.command, ev.command) != 0) {
        abort();
    }
    return 0;
}
