/*
 * agent/curl_lazy.c — libcurl for ktwin-agent, loaded on first use.
 *
 * Purpose: the agent calls libcurl only for HTTP twin services (svc/caller.c,
 * created only when services.specs has an HTTP entry). Linked as a shared
 * library, libcurl.so.4 and its ~25 dependencies (GnuTLS, p11-kit, Kerberos,
 * LDAP, libssh2, nghttp2...) were mapped, relocated and initialised at every
 * start: ~3.5 MiB of the agent's resident file pages and several ms of its
 * cold start. This file defines the libcurl functions the agent's code calls;
 * the first one dlopen()s libcurl.so.4 and resolves them all, and with
 * -Wl,--as-needed the executable no longer lists libcurl as NEEDED.
 *
 * Invariants: linked into the ktwin-agent executable only (tests and other
 * binaries link libcurl itself); every function here has libcurl's signature
 * and behaviour once loaded. If libcurl cannot be loaded, each function fails
 * the way libcurl reports failure (CURLE_FAILED_INIT, CURLM_INTERNAL_ERROR,
 * NULL) and the reason is logged once (CURL-LOAD-FAIL).
 * Variadic setopt: the option number's type range (CURLOPTTYPE_*, the same
 * scheme for CURLMOPT_*) says whether the argument is a long, a pointer, a
 * function pointer or a curl_off_t, which is how libcurl itself reads it.
 *
 * Thread: any (loaded under pthread_once). Ownership: as libcurl's.
 */
#define KT_LOG_MOD             "curl"
#define CURL_DISABLE_TYPECHECK 1 /* the functions themselves are defined here */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "kt/log.h"

#define CURL_LAZY_SONAME "libcurl.so.4"

/* The resolved functions; all NULL when the library could not be loaded. */
static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    const char *(*easy_strerror)(CURLcode);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
} lib;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_ok;

/* dlsym into a function pointer (POSIX guarantees the conversion). */
#define RESOLVE(h, field, name)          \
    do {                                 \
        void *sym_ = dlsym((h), (name)); \
        if (sym_ == NULL) {              \
            missing = (name);            \
        }                                \
        *(void **)(&lib.field) = sym_;   \
    } while (0)

static void lib_load(void)
{
    void *h = dlopen(CURL_LAZY_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        KT_LOG(KT_LOG_ERR, "CURL-LOAD-FAIL", "lib=%s err=\"%s\"", CURL_LAZY_SONAME,
               why != NULL ? why : "?");
        return;
    }
    const char *missing = NULL;
    RESOLVE(h, global_init, "curl_global_init");
    RESOLVE(h, global_cleanup, "curl_global_cleanup");
    RESOLVE(h, easy_strerror, "curl_easy_strerror");
    RESOLVE(h, easy_init, "curl_easy_init");
    RESOLVE(h, easy_cleanup, "curl_easy_cleanup");
    RESOLVE(h, easy_reset, "curl_easy_reset");
    RESOLVE(h, easy_perform, "curl_easy_perform");
    RESOLVE(h, easy_setopt, "curl_easy_setopt");
    RESOLVE(h, easy_getinfo, "curl_easy_getinfo");
    RESOLVE(h, slist_append, "curl_slist_append");
    RESOLVE(h, slist_free_all, "curl_slist_free_all");
    RESOLVE(h, multi_init, "curl_multi_init");
    RESOLVE(h, multi_cleanup, "curl_multi_cleanup");
    RESOLVE(h, multi_add_handle, "curl_multi_add_handle");
    RESOLVE(h, multi_remove_handle, "curl_multi_remove_handle");
    RESOLVE(h, multi_assign, "curl_multi_assign");
    RESOLVE(h, multi_socket_action, "curl_multi_socket_action");
    RESOLVE(h, multi_info_read, "curl_multi_info_read");
    RESOLVE(h, multi_setopt, "curl_multi_setopt");
    if (missing != NULL) {
        KT_LOG(KT_LOG_ERR, "CURL-LOAD-FAIL", "lib=%s missing=%s", CURL_LAZY_SONAME, missing);
        return; /* the library stays mapped; nothing is called through it */
    }
    lib_ok = 1;
}

static int loaded(void)
{
    (void)pthread_once(&lib_once, lib_load);
    return lib_ok;
}

CURLcode curl_global_init(long flags)
{
    return loaded() ? lib.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
    if (loaded()) {
        lib.global_cleanup();
    }
}

const char *curl_easy_strerror(CURLcode code)
{
    return loaded() ? lib.easy_strerror(code) : "libcurl could not be loaded";
}

CURL *curl_easy_init(void)
{
    return loaded() ? lib.easy_init() : NULL;
}

void curl_easy_cleanup(CURL *h)
{
    if (loaded()) {
        lib.easy_cleanup(h);
    }
}

void curl_easy_reset(CURL *h)
{
    if (loaded()) {
        lib.easy_reset(h);
    }
}

CURLcode curl_easy_perform(CURL *h)
{
    return loaded() ? lib.easy_perform(h) : CURLE_FAILED_INIT;
}

CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    if (!loaded()) {
        return CURLE_FAILED_INIT;
    }
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if ((int)opt < CURLOPTTYPE_OBJECTPOINT) {
        rc = lib.easy_setopt(h, opt, va_arg(ap, long));
    } else if ((int)opt < CURLOPTTYPE_FUNCTIONPOINT) {
        rc = lib.easy_setopt(h, opt, va_arg(ap, void *));
    } else if ((int)opt < CURLOPTTYPE_OFF_T) {
        rc = lib.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
    } else if ((int)opt < CURLOPTTYPE_BLOB) {
        rc = lib.easy_setopt(h, opt, va_arg(ap, curl_off_t));
    } else {
        rc = lib.easy_setopt(h, opt, va_arg(ap, void *));
    }
    va_end(ap);
    return rc;
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    if (!loaded()) {
        return CURLE_FAILED_INIT;
    }
    va_list ap;
    va_start(ap, info);
    CURLcode rc = lib.easy_getinfo(h, info, va_arg(ap, void *)); /* always a pointer */
    va_end(ap);
    return rc;
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return loaded() ? lib.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (loaded()) {
        lib.slist_free_all(l);
    }
}

CURLM *curl_multi_init(void)
{
    return loaded() ? lib.multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    return loaded() ? lib.multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    return loaded() ? lib.multi_add_handle(m, h) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    return loaded() ? lib.multi_remove_handle(m, h) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p)
{
    return loaded() ? lib.multi_assign(m, s, p) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev, int *running)
{
    return loaded() ? lib.multi_socket_action(m, s, ev, running) : CURLM_INTERNAL_ERROR;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    return loaded() ? lib.multi_info_read(m, left) : NULL;
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    if (!loaded()) {
        return CURLM_INTERNAL_ERROR;
    }
    va_list ap;
    va_start(ap, opt);
    CURLMcode rc;
    if ((int)opt < CURLOPTTYPE_OBJECTPOINT) {
        rc = lib.multi_setopt(m, opt, va_arg(ap, long));
    } else if ((int)opt < CURLOPTTYPE_FUNCTIONPOINT) {
        rc = lib.multi_setopt(m, opt, va_arg(ap, void *));
    } else if ((int)opt < CURLOPTTYPE_OFF_T) {
        rc = lib.multi_setopt(m, opt, va_arg(ap, void (*)(void)));
    } else {
        rc = lib.multi_setopt(m, opt, va_arg(ap, curl_off_t));
    }
    va_end(ap);
    return rc;
}
