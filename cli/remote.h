/*
 * remote.h — ktwinctl's client for the hub's REST API (docs/protocol.md
 * "Hub and agent HTTP APIs"), shared by apply, get, delete and placement.
 *
 * WHERE THE HUB IS (each item resolved on its own, first hit wins, as kubectl):
 *   URL      --hub URL, then $KTWIN_HUB_URL, then hub.url in the config file
 *   token    --token-file FILE, then $KTWIN_TOKEN (the token itself), then
 *            $KTWIN_TOKEN_FILE, then hub.tokenFile in the config file
 *   CA       --ca-file FILE, then $KTWIN_CA_FILE, then hub.caFile in the config file
 *   config   $KTWINCONFIG (must exist when set), else ~/.ktwin/config (optional):
 *              hub:
 *                url: https://hub.example:8080
 *                tokenFile: admin.token     # relative to the config file's folder
 *                caFile: ca.crt
 *            Unknown keys are errors, reported as file:line:col.
 * A token file holds the token on its first line (surrounding blanks dropped).
 *
 * EXIT CODES of every remote command: 0 ok; 1 invalid input or the hub
 * refused (4xx/5xx; 422 prints the hub's error list as file:line:col lines);
 * 2 usage (bad flags, no hub URL configured); 3 the hub cannot be reached
 * (connection refused, DNS, timeout, TLS).
 *
 * Thread: main thread only (libcurl easy interface, blocking).
 * Ownership: a ktwinctl_remote owns its CURL handle and resolved strings.
 */
#ifndef KT_CLI_REMOTE_H
#define KT_CLI_REMOTE_H

#include <stddef.h>
#include <stdio.h>

#include "kt/buf.h"

enum { KTWINCTL_UNREACHABLE = 3 };

/* The remote flags every remote command accepts. Zero-initialise. */
typedef struct ktwinctl_remote_opts {
    const char *hub;        /* --hub URL */
    const char *token_file; /* --token-file FILE */
    const char *ca_file;    /* --ca-file FILE */
    long timeout_s;         /* --timeout SECONDS (whole request); 0 = 30 */
    int verbose;            /* -v/--verbose: say where each setting came from */
} ktwinctl_remote_opts;

/* Help lines for the flags above, for each command's --help. */
extern const char ktwinctl_remote_help[];

/*
 * If argv[*i] is a remote flag, take it (and its value: *i advances) and
 * return 1; return 0 when it is not one; -1 on a usage error (printed).
 */
int ktwinctl_remote_flag(ktwinctl_remote_opts *o, int *i, int argc, char **argv);

typedef struct ktwinctl_remote ktwinctl_remote;

/*
 * Resolve URL, token and CA (see above) and make a client. Returns an exit
 * code: 0 with *out set; 1 for an unreadable token/CA/config file or a bad
 * config file; 2 when no URL is configured or it is not http(s)://. The
 * problem is printed on stderr.
 */
int ktwinctl_remote_open(ktwinctl_remote **out, const ktwinctl_remote_opts *o);
void ktwinctl_remote_free(ktwinctl_remote *r);

/*
 * One request: method "GET", "POST" or "DELETE"; path starts with '/'
 * (already escaped); body may be NULL. On any HTTP answer returns 0 with
 * *status and the body in resp (appended); returns 3 (printed: which URL,
 * where it came from, curl's reason) when the hub cannot be reached, 1 when
 * the answer is over resp's cap.
 */
int ktwinctl_remote_call(ktwinctl_remote *r,
                         const char *method,
                         const char *path,
                         const char *body,
                         size_t len,
                         const char *content_type,
                         long *status,
                         kt_buf *resp);

/* Escape one path segment or query value (caller kt_free()s). */
char *ktwinctl_remote_escape(ktwinctl_remote *r, const char *s);

/*
 * Map an error position (file as the hub names it, 1-based line and col,
 * 0 when unknown) back to the user's input; write "file:line:col" into
 * out. NULL: print as sent.
 */
typedef void (*ktwinctl_pos_cb)(
    const char *file, long line, long col, char *out, size_t cap, void *user);

/*
 * Print a non-2xx answer on stderr and return the exit code (1): 401/403
 * with a hint about the token and where it came from, 404 and others with
 * the hub's {"error"} text, 422 with one "file:line:col: path: class:
 * message" line per entry of {"errors"} (pos maps positions). what names the
 * request for messages ("apply", "get twininstances/x").
 */
int ktwinctl_remote_report(const ktwinctl_remote *r,
                           long status,
                           const kt_buf *resp,
                           const char *what,
                           ktwinctl_pos_cb pos,
                           void *user);

/*
 * Print j indented (4 spaces, "key": value) and a newline, as kubectl -o
 * json does. Returns 0, or 1 (printed) when out of memory.
 */
int ktwinctl_print_json(const void *j, FILE *out);

/* The kinds of the hub's API. */
typedef struct ktwinctl_kind {
    const char *path;     /* "twininstances": the API path segment */
    const char *singular; /* "twininstance": used in "twininstance/x created" */
    const char *kind;     /* "TwinInstance" */
    const char *aliases;  /* for help: "twininstance, tinst" */
} ktwinctl_kind;

/*
 * The kind named by s: plural, singular, Kind or short alias, any case:
 * twininterfaces|twininterface|ti, twininstances|twininstance|tinst,
 * placementpolicies|placementpolicy|pp. NULL when unknown.
 */
const ktwinctl_kind *ktwinctl_kind_parse(const char *s);
/* By Kind as the hub writes it ("TwinInstance"); NULL when unknown. */
const ktwinctl_kind *ktwinctl_kind_by_kind(const char *kind);
/* "twininterfaces (twininterface, ti), ..." for help and errors. */
extern const char ktwinctl_kinds_help[];

/* The remote commands (cmd_apply.c, cmd_get.c, cmd_delete.c, cmd_placement.c). */
int ktwinctl_apply(int argc, char **argv);
int ktwinctl_get(int argc, char **argv);
int ktwinctl_delete(int argc, char **argv);
int ktwinctl_placement(int argc, char **argv);

#endif
