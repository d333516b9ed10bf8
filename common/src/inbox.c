/*
 * inbox.c — mutex-guarded intrusive FIFO drained by a uv_async_t.
 * See kt/inbox.h for the contract and the design.
 */
#include "kt/inbox.h"

#include <string.h>

/* Loop-thread-only entry points check their thread in debug builds (STYLE.md §8). */
#define INBOX_ASSERT_LOOP_THREAD(inbox) \
    KT_DEBUG_ASSERT(uv_thread_equal(&(inbox)->_loop_thread, &(uv_thread_t){ uv_thread_self() }))

/* Hand every message of the list starting at m to free_cb; returns the count. */
static uint64_t inbox_free_list(kt_inbox *inbox, kt_inbox_msg *m)
{
    uint64_t n = 0;
    while (m != NULL) {
        kt_inbox_msg *next = m->_next;
        m->_next = NULL;
        inbox->_free_cb(m, inbox->_user);
        m = next;
        n++;
    }
    return n;
}

static void inbox_async_cb(uv_async_t *handle)
{
    kt_inbox *inbox = handle->data;
    INBOX_ASSERT_LOOP_THREAD(inbox);

    uv_mutex_lock(&inbox->_lock);
    kt_inbox_msg *m = inbox->_head;
    inbox->_head = inbox->_tail = NULL;
    inbox->_depth = 0;
    uv_mutex_unlock(&inbox->_lock);

    uint64_t delivered = 0;
    uint64_t dropped = 0;
    while (m != NULL) {
        if (inbox->_closed) {
            /* The handler closed the inbox: the rest of the batch is not delivered. */
            dropped = inbox_free_list(inbox, m);
            break;
        }
        kt_inbox_msg *next = m->_next;
        m->_next = NULL;
        delivered++;
        inbox->_handler(m, inbox->_user); /* may free m, push, or close */
        m = next;
    }

    if (delivered > 0 || dropped > 0) {
        uv_mutex_lock(&inbox->_lock);
        inbox->_stats.delivered += delivered;
        inbox->_stats.dropped += dropped;
        uv_mutex_unlock(&inbox->_lock);
    }
}

static void inbox_closed_cb(uv_handle_t *handle)
{
    kt_inbox *inbox = handle->data;
    uv_mutex_destroy(&inbox->_lock);
    if (inbox->_close_cb != NULL) {
        inbox->_close_cb(inbox, inbox->_user); /* may free inbox */
    }
}

kt_status kt_inbox_init(kt_inbox *inbox,
                        uv_loop_t *loop,
                        size_t max_depth,
                        kt_inbox_cb handler,
                        kt_inbox_free_cb free_cb,
                        void *user,
                        kt_err *err)
{
    memset(inbox, 0, sizeof *inbox);
    if (max_depth == 0) {
        return kt_err_set(err, KT_EINVAL, "inbox max_depth must be at least 1");
    }
    if (handler == NULL || free_cb == NULL) {
        return kt_err_set(err, KT_EINVAL, "inbox handler and free_cb are required");
    }
    inbox->_max_depth = max_depth;
    inbox->_handler = handler;
    inbox->_free_cb = free_cb;
    inbox->_user = user;
    inbox->_loop_thread = uv_thread_self();

    int rc = uv_mutex_init(&inbox->_lock);
    if (rc != 0) {
        return kt_err_set_dep(err, KT_EDEP, "libuv", rc, "uv_mutex_init: %s", uv_strerror(rc));
    }
    rc = uv_async_init(loop, &inbox->_async, inbox_async_cb);
    if (rc != 0) {
        uv_mutex_destroy(&inbox->_lock);
        return kt_err_set_dep(err, KT_EDEP, "libuv", rc, "uv_async_init: %s", uv_strerror(rc));
    }
    inbox->_async.data = inbox;
    return KT_OK;
}

kt_status kt_inbox_push(kt_inbox *inbox, kt_inbox_msg *msg)
{
    KT_ASSERT(msg != NULL);
    msg->_next = NULL;

    uv_mutex_lock(&inbox->_lock);
    if (inbox->_closed) {
        uv_mutex_unlock(&inbox->_lock);
        return KT_ECLOSED;
    }
    if (inbox->_depth >= inbox->_max_depth) {
        inbox->_stats.rejected_full++;
        uv_mutex_unlock(&inbox->_lock);
        return KT_EAGAIN;
    }
    if (inbox->_tail != NULL) {
        inbox->_tail->_next = msg;
    } else {
        inbox->_head = msg;
    }
    inbox->_tail = msg;
    inbox->_depth++;
    inbox->_stats.pushed++;
    /*
     * Under the lock, so it cannot race with uv_close() in kt_inbox_close().
     * It only fails for a handle that is not an async handle.
     */
    int rc = uv_async_send(&inbox->_async);
    uv_mutex_unlock(&inbox->_lock);
    KT_ASSERT(rc == 0);
    return KT_OK;
}

void kt_inbox_close(kt_inbox *inbox, kt_inbox_close_cb close_cb)
{
    INBOX_ASSERT_LOOP_THREAD(inbox);
    KT_ASSERT(!inbox->_closed);

    uv_mutex_lock(&inbox->_lock);
    inbox->_closed = 1;
    kt_inbox_msg *m = inbox->_head;
    inbox->_head = inbox->_tail = NULL;
    inbox->_depth = 0;
    uv_mutex_unlock(&inbox->_lock);

    uint64_t dropped = inbox_free_list(inbox, m);

    uv_mutex_lock(&inbox->_lock);
    inbox->_stats.dropped += dropped;
    uv_mutex_unlock(&inbox->_lock);

    inbox->_close_cb = close_cb;
    uv_close((uv_handle_t *)&inbox->_async, inbox_closed_cb);
}

void kt_inbox_stats_get(kt_inbox *inbox, kt_inbox_stats *out)
{
    uv_mutex_lock(&inbox->_lock);
    *out = inbox->_stats;
    out->depth = inbox->_depth;
    uv_mutex_unlock(&inbox->_lock);
}
