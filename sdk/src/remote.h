/*
 * sdk/src/remote.h — libktwin's blocking HTTP client for KTWIN's APIs
 * (KTWIN.md §3–§5): GET the twin graph and an instance's latest state,
 * POST binary-mode CloudEvents to the broker ingress.
 *
 * DESIGN. One libcurl easy handle, reused between calls (keep-alive to the
 * broker / event store, which in KTWIN Edge are the same agent). Calls block
 * the calling thread for at most timeout_ms: they run on the standalone
 * server's worker (a libuv threadpool thread), never on its loop, because
 * the plugin ABI's ktwin_latest is synchronous (ktwin.h).
 *
 * Thread: any, one thread at a time per ktwin_remote (the caller
 * serialises). Ownership: the remote owns its curl handle and its reply
 * buffer; a reply's strings are borrowed until the next call on the same
 * remote or ktwin_remote_free.
 */
#ifndef KT_SDK_REMOTE_H
#define KT_SDK_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "model/event.h"

typedef struct ktwin_remote ktwin_remote;

/* What a GET answered (borrowed, see Ownership). */
typedef struct ktwin_remote_reply {
    int status;       /* HTTP status */
    const char *body; /* NUL-terminated (not counted), "" when empty */
    size_t body_len;
    const char *ce_id;   /* response header ce-id, "" when absent */
    const char *ce_time; /* response header ce-time, "" when absent */
} ktwin_remote_reply;

/*
 * A client whose calls give up after timeout_ms (0 = 10000) and whose
 * reply bodies are capped at max_body_bytes (0 = 1 MiB).
 * Returns KT_OK or KT_EDEP (dep "curl") when libcurl cannot make a handle.
 * curl_global_init must have run (ktwin_http_main does it).
 */
kt_status
ktwin_remote_new(ktwin_remote **out, uint32_t timeout_ms, size_t max_body_bytes, kt_err *err);

/* Free the handle and buffers. NULL is a no-op. */
void ktwin_remote_free(ktwin_remote *r);

/*
 * GET url. Returns KT_OK with *out filled for any HTTP status (the caller
 * judges it); KT_EIO (transport: refused, reset), KT_ETIMEDOUT, KT_ETOOBIG
 * (body over the cap), all with the URL in the message.
 */
kt_status ktwin_remote_get(ktwin_remote *r, const char *url, ktwin_remote_reply *out, kt_err *err);

/*
 * POST ev in CloudEvents binary mode (ce-* headers, body = data, as
 * KTWIN's Go SDK PostCloudEvent) to url. Returns KT_OK when the answer is
 * 2xx (KTWIN's broker answers 202); KT_EDEP (dep "http", dep_code = status)
 * for another status; KT_EIO / KT_ETIMEDOUT for transport failures.
 */
kt_status
ktwin_remote_post_event(ktwin_remote *r, const char *url, const model_event *ev, kt_err *err);

/* The response headers a reply keeps (bounded copies, "" when absent). */
typedef struct ktwin_remote_hdrs {
    char ce_id[MODEL_EVENT_ID_MAX + 1];
    char ce_time[MODEL_EVENT_ID_MAX + 1];
} ktwin_remote_hdrs;

/*
 * Read one raw response header line (untrusted bytes line[0..len), "name:
 * value", CRLF optional) into h: ce-id and ce-time (names matched
 * case-insensitively, value trimmed, truncated to the field) are kept,
 * other headers ignored; an "HTTP/" status line clears h (a new response,
 * e.g. after 100 Continue). Pure; exposed for the tests and the fuzz target.
 */
void ktwin_remote_header_parse(ktwin_remote_hdrs *h, const char *line, size_t len);

#endif
