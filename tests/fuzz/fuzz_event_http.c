/*
 * fuzz_event_http.c — CloudEvents over HTTP (model_event_from_http) on
 * arbitrary bytes read as a header block and a body:
 *   name: value\n ... \n\n body
 * (at most 16 headers; names matched case-insensitively like an HTTP
 * server does). Binary and structured mode both run, depending on the
 * content-type header. Must never crash, leak or read past size.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kt/buf.h"
#include "kt/mem.h"
#include "model/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct hdrs {
    size_t n;
    char *name[16];
    char *value[16];
} hdrs;

static const char *get(const char *name, void *user)
{
    const hdrs *h = user;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            return h->value[i];
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy so the header block can be cut into NUL-terminated strings. */
    char *text = kt_xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    hdrs h = { 0 };
    size_t off = 0;
    while (off < size && h.n < 16) {
        char *line = text + off;
        char *nl = memchr(line, '\n', size - off);
        size_t len = nl != NULL ? (size_t)(nl - line) : size - off;
        off += len + (nl != NULL ? 1 : 0);
        if (len == 0) {
            break;
        }
        line[len] = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL) {
            continue;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ') {
            v++;
        }
        h.name[h.n] = line;
        h.value[h.n] = v;
        h.n++;
    }
    model_event *ev = NULL;
    if (model_event_from_http(&ev, get, &h, text + off, size - off, 4096, NULL) == KT_OK) {
        if (model_event_check(ev, 4096, NULL) != KT_OK) {
            abort();
        }
        kt_buf b;
        kt_buf_init(&b, 1u << 20);
        if (model_event_to_json(ev, &b) != KT_OK) {
            abort();
        }
        kt_buf_fini(&b);
        model_event_free(ev);
    }
    kt_free(text);
    return 0;
}
