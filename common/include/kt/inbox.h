/*
 * kt/inbox.h — the one way state crosses from other threads to the loop.
 *
 * A kt_inbox is a bounded FIFO of messages guarded by a mutex, plus a
 * uv_async_t on the loop. Any thread pushes a message (ownership moves to
 * the inbox) and wakes the loop; on the loop thread the async callback takes
 * the whole list and hands each message, oldest first, to the handler, which
 * then owns it. Messages are intrusive: embed a kt_inbox_msg in your struct
 * and get back to it with KT_INBOX_ENTRY.
 *
 *   typedef struct rx { kt_inbox_msg link; char *topic; } rx;
 *   static void on_rx(kt_inbox_msg *m, void *user) {
 *       rx *r = KT_INBOX_ENTRY(m, rx, link); ...; rx_free(r);
 *   }
 *
 * Invariants: at most max_depth messages are queued (a full inbox refuses
 * with KT_EAGAIN and the caller keeps the message); order is FIFO per
 * producer; after kt_inbox_close() no message is accepted, and every message
 * that was accepted goes to exactly one of the handler or free_cb.
 *
 * DESIGN: the drain detaches the whole list under the lock and delivers it
 * unlocked, so handlers may push (re-queue) without deadlock and producers
 * are never blocked by a slow handler. uv_async_send() is called with the
 * lock held: kt_inbox_close() sets the closed flag under the same lock before
 * uv_close(), so no send can reach a closing handle.
 *
 * Thread: kt_inbox_push and kt_inbox_stats_get any thread; everything else
 * on the loop thread. This mutex is the only lock in the code base
 * (STYLE.md §8).
 */
#ifndef KT_COMMON_INBOX_H
#define KT_COMMON_INBOX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kt/err.h"

/* The link a message embeds. Owned by whoever owns the message. */
typedef struct kt_inbox_msg {
    struct kt_inbox_msg *_next; /* private: queue link */
} kt_inbox_msg;

/* The struct that embeds msg as member. */
#define KT_INBOX_ENTRY(msg, type, member) ((type *)(void *)((char *)(msg)-offsetof(type, member)))

typedef struct kt_inbox kt_inbox;

/* Delivery, on the loop thread: the handler owns msg from here on. */
typedef void (*kt_inbox_cb)(kt_inbox_msg *msg, void *user);
/* Disposal of messages never delivered (queued at close), on the loop thread. */
typedef void (*kt_inbox_free_cb)(kt_inbox_msg *msg, void *user);
/* The inbox is closed; its storage may be freed now. Loop thread. */
typedef void (*kt_inbox_close_cb)(kt_inbox *inbox, void *user);

typedef struct kt_inbox_stats {
    uint64_t pushed;        /* accepted by kt_inbox_push */
    uint64_t delivered;     /* handed to the handler */
    uint64_t rejected_full; /* refused with KT_EAGAIN */
    uint64_t dropped;       /* handed to free_cb at close */
    size_t depth;           /* queued now */
} kt_inbox_stats;

/*
 * Caller storage, because the loop holds a pointer to the uv_async_t until
 * the close callback runs. Fields starting with _ are private.
 */
struct kt_inbox {
    uv_async_t _async;
    uv_mutex_t _lock;
    kt_inbox_msg *_head; /* oldest; under _lock */
    kt_inbox_msg *_tail; /* newest; under _lock */
    size_t _depth;       /* under _lock */
    size_t _max_depth;
    int _closed; /* under _lock; written only on the loop thread */
    kt_inbox_cb _handler;
    kt_inbox_free_cb _free_cb;
    kt_inbox_close_cb _close_cb;
    void *_user;
    kt_inbox_stats _stats;    /* under _lock */
    uv_thread_t _loop_thread; /* the thread that called init, checked in debug builds */
};

/*
 * Start an inbox on loop. max_depth (>= 1) bounds the queued messages.
 * handler gets each message in FIFO order; free_cb gets the messages still
 * queued when the inbox closes; user is passed to both and to the close
 * callback. The active async handle keeps the loop alive until
 * kt_inbox_close().
 *
 * Returns KT_OK; KT_EINVAL for max_depth 0 or a NULL callback; KT_EDEP
 * (dep "libuv") when the mutex or async handle cannot be created.
 * On failure nothing needs closing.
 *
 * Thread: the loop thread.
 */
kt_status kt_inbox_init(kt_inbox *inbox,
                        uv_loop_t *loop,
                        size_t max_depth,
                        kt_inbox_cb handler,
                        kt_inbox_free_cb free_cb,
                        void *user,
                        kt_err *err);

/*
 * Queue msg and wake the loop.
 *
 * Returns KT_OK: the inbox owns msg (null your pointer). KT_EAGAIN: the inbox
 * holds max_depth messages (flow control: retry later or drop). KT_ECLOSED:
 * kt_inbox_close() has been called. On KT_EAGAIN and KT_ECLOSED the caller
 * still owns msg. Both are flow control, so there is no kt_err.
 *
 * Thread: any, including the loop thread and the handler.
 */
kt_status kt_inbox_push(kt_inbox *inbox, kt_inbox_msg *msg);

/*
 * Stop accepting messages, give every queued message to free_cb, and close
 * the async handle with uv_close(). close_cb (nullable) runs on a later loop
 * iteration, after which the storage of inbox may be freed. If called from
 * the handler, the rest of the batch being delivered also goes to free_cb.
 * Call once.
 *
 * Thread: the loop thread. Stop the producers first (STYLE.md §8 shutdown
 * order): their later pushes fail with KT_ECLOSED.
 */
void kt_inbox_close(kt_inbox *inbox, kt_inbox_close_cb close_cb);

/*
 * Copy the counters into out. delivered counts per drained batch, so inside
 * a handler it lags behind the messages of the current batch.
 * Thread: any, until the close callback has run.
 */
void kt_inbox_stats_get(kt_inbox *inbox, kt_inbox_stats *out);

#endif
