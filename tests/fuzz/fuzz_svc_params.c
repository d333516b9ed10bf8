/*
 * fuzz_svc_params.c — the text parsers of kt_svc on arbitrary bytes: the
 * event-store list query parameters (svc_api_parse_query, with the input
 * read as "name=value" lines), svc_api_parse_time and svc_api_parse_depth
 * (the ktwindepth loop-depth attribute) on each value, and the
 * service declaration parser (svc_service_parse) on the whole input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/mem.h"
#include "svc/api.h"
#include "svc/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct params {
    char *names[16];
    char *values[16];
    size_t n;
} params;

static const char *get_param(const char *name, void *user)
{
    params *p = user;
    size_t i;
    for (i = 0; i < p->n; i++) {
        if (strcmp(p->names[i], name) == 0) {
            return p->values[i];
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = kt_xmalloc(size + 1);
    params p;
    svc_query q;
    svc_service s;
    kt_err err = { 0 };
    char *line;
    char *save = NULL;
    size_t i;
    memcpy(text, data, size);
    text[size] = '\0';
    /* the service parser sees the whole text (up to the first NUL) */
    if (svc_service_parse(&s, text, &err) == KT_OK) {
        KT_ASSERT(s.target != NULL && s.target[0] != '\0');
        svc_service_fini(&s);
    }
    memset(&p, 0, sizeof(p));
    for (line = strtok_r(text, "\n", &save); line != NULL && p.n < 16;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        uint64_t ms = 0;
        kt_err e = { 0 };
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        p.names[p.n] = line;
        p.values[p.n] = eq + 1;
        (void)svc_api_parse_time(eq + 1, &ms, &e);
        uint32_t depth = 0;
        kt_err_clear(&e);
        if (svc_api_parse_depth(eq + 1, &depth, &e) == KT_OK) {
            KT_ASSERT(depth <= SVC_DEPTH_MAX);
        }
        p.n++;
    }
    memset(&q, 0, sizeof(q));
    kt_err_clear(&err);
    if (svc_api_parse_query(&q, get_param, &p, &err) == KT_OK) {
        KT_ASSERT(q.limit >= 1 && q.limit <= SVC_QUERY_MAX_LIMIT);
        KT_ASSERT(q.from_ms == 0 || q.to_ms == 0 || q.from_ms < q.to_ms);
    }
    for (i = 0; i < p.n; i++) {
        (void)p.names[i];
    }
    kt_free(text);
    return 0;
}
