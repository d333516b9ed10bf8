/*
 * svc/service.h — how a twin service is declared in the agent's and hub's
 * configuration: one string per service in the `services` list.
 *
 *   services:
 *     - "ngsi-ld-city-airqualityobserved=/opt/ktwin/aqi.so"
 *     - "ngsi-ld-city-weatherobserved,ngsi-ld-city-noiselevelobserved=http://127.0.0.1:8081/
 * concurrency=8 timeout=2s retries=3"
 *     - "*=/opt/ktwin/city.so config={\"threshold\":40}"
 *
 * Grammar:   SPEC   := IFACES "=" TARGET { " " OPTION }
 *            IFACES := "*" | NAME { "," NAME }     ("*": the plugin's own list)
 *            TARGET := "http://..." | "https://..." (HTTP service) | a path (plugin .so)
 *            OPTION := concurrency=N | queue=N | timeout=DUR | retries=N |
 *                      backoff=DUR | backoff_max=DUR | config=JSON (the rest of the line)
 * DUR is "250ms", "5s", "2m" or plain milliseconds. HTTP options on a plugin
 * and "*" with an HTTP target are errors; names follow model_name_check.
 *
 * Thread: any. Ownership: a parsed spec owns its strings (svc_service_fini).
 */
#ifndef KT_SVC_SERVICE_H
#define KT_SVC_SERVICE_H

#include <stddef.h>

#include "kt/err.h"
#include "svc/caller.h"

typedef enum svc_service_kind { SVC_SERVICE_PLUGIN = 1, SVC_SERVICE_HTTP = 2 } svc_service_kind;

#define SVC_SERVICE_MAX_IFACES 64

typedef struct svc_service {
    svc_service_kind kind;
    char **ifaces; /* n_ifaces names; 0 = "*" (plugin's own list) */
    size_t n_ifaces;
    char *target;           /* URL or .so path */
    char *config;           /* config JSON for the plugin's init, NULL = none */
    svc_endpoint_opts http; /* HTTP: url = target, the rest from options (0 = defaults) */
} svc_service;

/*
 * Parse one declaration. Returns KT_OK (fini *out later) or KT_EINVAL with a
 * message naming the problem and its column ("col 12: retries: not a
 * number"). *out is zeroed on failure. Thread: any.
 */
kt_status svc_service_parse(svc_service *out, const char *text, kt_err *err);
void svc_service_fini(svc_service *s);

#endif
