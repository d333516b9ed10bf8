/*
 * test_inbox.c — kt_inbox on a real libuv loop: FIFO delivery from two
 * producer threads, the depth bound, closing with messages still queued,
 * closing from inside the handler. Every test ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sched.h>
#include <string.h>

#include "kt/inbox.h"
#include "kt/mem.h"

typedef struct test_msg {
    int producer;
    int seq;
    kt_inbox_msg link; /* deliberately not first: KT_INBOX_ENTRY must do the math */
} test_msg;

static test_msg *msg_new(int producer, int seq)
{
    test_msg *m = kt_xcalloc(1, sizeof *m);
    m->producer = producer;
    m->seq = seq;
    return m;
}

typedef struct fixture {
    uv_loop_t loop;
    kt_inbox inbox;
    int delivered[2]; /* per producer */
    int freed;
    int order_errors;
    int closed;
    int timed_out;
    int close_after; /* close from the handler after this many deliveries (0: never) */
    int total;
    int seq_log[16]; /* seqs in delivery order, first 16 */
    int n_seq_log;
} fixture;

static void on_msg(kt_inbox_msg *msg, void *user)
{
    fixture *f = user;
    test_msg *m = KT_INBOX_ENTRY(msg, test_msg, link);
    if (m->seq != f->delivered[m->producer]) {
        f->order_errors++;
    }
    f->delivered[m->producer]++;
    if (f->n_seq_log < 16) {
        f->seq_log[f->n_seq_log++] = m->seq;
    }
    kt_free(m);
    f->total++;
    if (f->close_after > 0 && f->total == f->close_after) {
        kt_inbox_close(&f->inbox, NULL);
    }
}

static void on_free(kt_inbox_msg *msg, void *user)
{
    fixture *f = user;
    kt_free(KT_INBOX_ENTRY(msg, test_msg, link));
    f->freed++;
}

static void on_closed(kt_inbox *inbox, void *user)
{
    fixture *f = user;
    assert_ptr_equal(inbox, &f->inbox);
    f->closed++;
}

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    if (uv_loop_init(&f->loop) != 0) {
        kt_free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kt_free(f);
    return 0;
}

static void finish_loop(fixture *f)
{
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ---- two producers ---------------------------------------------------------------- */

#define PER_PRODUCER 10000

typedef struct producer {
    fixture *f;
    int id;
    int eagain; /* how often the inbox was full */
} producer;

static void producer_main(void *arg)
{
    producer *p = arg;
    for (int seq = 0; seq < PER_PRODUCER; seq++) {
        test_msg *m = msg_new(p->id, seq);
        kt_status st = kt_inbox_push(&p->f->inbox, &m->link);
        while (st == KT_EAGAIN) {
            p->eagain++;
            sched_yield(); /* the loop thread is draining; we still own m */
            st = kt_inbox_push(&p->f->inbox, &m->link);
        }
        if (st != KT_OK) {
            kt_free(m); /* never expected: the test checks the counts */
            return;
        }
    }
}

/*
 * The watchdog is not a sleep: it fires only when messages went missing, and
 * turns a hang into a failure while still shutting the producers down.
 */
#define WATCHDOG_MS 10000

static void watchdog_cb(uv_timer_t *t)
{
    fixture *f = t->data;
    f->timed_out = 1;
    uv_stop(&f->loop);
}

static void on_msg_stop_when_all_in(kt_inbox_msg *msg, void *user)
{
    fixture *f = user;
    on_msg(msg, user);
    if (f->total == 2 * PER_PRODUCER) {
        uv_stop(&f->loop);
    }
}

/*
 * Run two producers of PER_PRODUCER messages each against an inbox of the
 * given depth until all are delivered (or the watchdog fires). Returns with
 * the inbox still open and the producer threads joined.
 */
static void run_two_producers(fixture *f, size_t depth, producer p[2])
{
    kt_err err = { 0 };
    assert_int_equal(
        kt_inbox_init(&f->inbox, &f->loop, depth, on_msg_stop_when_all_in, on_free, f, &err),
        KT_OK);
    uv_timer_t watchdog;
    assert_int_equal(uv_timer_init(&f->loop, &watchdog), 0);
    watchdog.data = f;
    assert_int_equal(uv_timer_start(&watchdog, watchdog_cb, WATCHDOG_MS, 0), 0);

    uv_thread_t th[2];
    for (int i = 0; i < 2; i++) {
        p[i].f = f;
        p[i].id = i;
        p[i].eagain = 0;
        assert_int_equal(uv_thread_create(&th[i], producer_main, &p[i]), 0);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (f->timed_out) {
        /* Unblock producers stuck on a full inbox: they now get KT_ECLOSED. */
        kt_inbox_close(&f->inbox, on_closed);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(uv_thread_join(&th[i]), 0);
    }
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* let the timer close before it goes out of scope */
    if (f->timed_out) {
        finish_loop(f);
        fail_msg("watchdog: %d + %d of %d messages delivered", f->delivered[0], f->delivered[1],
                 2 * PER_PRODUCER);
    }
}

static void test_inbox_two_producers_deliver_all_in_per_producer_order(void **state)
{
    fixture *f = *state;
    producer p[2];
    run_two_producers(f, 64, p); /* small depth: the producers also hit KT_EAGAIN */
    assert_int_equal(f->order_errors, 0);
    assert_int_equal(f->delivered[0], PER_PRODUCER);
    assert_int_equal(f->delivered[1], PER_PRODUCER);
    kt_inbox_close(&f->inbox, on_closed);
    finish_loop(f);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->freed, 0);
}

static void test_inbox_counters_add_up_under_contention(void **state)
{
    fixture *f = *state;
    producer p[2];
    run_two_producers(f, 16, p);
    kt_inbox_stats s;
    kt_inbox_stats_get(&f->inbox, &s);
    assert_int_equal(s.pushed, 2 * PER_PRODUCER);
    assert_int_equal(s.delivered, 2 * PER_PRODUCER);
    assert_int_equal(s.rejected_full, (uint64_t)(p[0].eagain + p[1].eagain));
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.depth, 0);
    assert_int_equal(f->order_errors, 0);
    kt_inbox_close(&f->inbox, on_closed);
    finish_loop(f);
    assert_int_equal(f->closed, 1);
}

/* ---- bounds and order --------------------------------------------------------------- */

static void test_inbox_full_push_is_eagain_and_caller_keeps_message(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 3, on_msg, on_free, f, &err), KT_OK);
    for (int i = 0; i < 3; i++) {
        test_msg *m = msg_new(0, i);
        assert_int_equal(kt_inbox_push(&f->inbox, &m->link), KT_OK);
    }
    test_msg *extra = msg_new(0, 3);
    assert_int_equal(kt_inbox_push(&f->inbox, &extra->link), KT_EAGAIN);
    assert_int_equal(kt_inbox_push(&f->inbox, &extra->link), KT_EAGAIN);

    kt_inbox_stats s;
    kt_inbox_stats_get(&f->inbox, &s);
    assert_int_equal(s.pushed, 3);
    assert_int_equal(s.rejected_full, 2);
    assert_int_equal(s.depth, 3);
    assert_int_equal(s.delivered, 0);

    /* One loop iteration drains everything in FIFO order. */
    assert_int_not_equal(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(f->total, 3);
    assert_int_equal(f->order_errors, 0);
    assert_int_equal(f->seq_log[0], 0);
    assert_int_equal(f->seq_log[2], 2);

    /* Room again: the caller still owned extra and can push it now. */
    assert_int_equal(kt_inbox_push(&f->inbox, &extra->link), KT_OK);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->total, 4);
    kt_inbox_stats_get(&f->inbox, &s);
    assert_int_equal(s.delivered, 4);
    assert_int_equal(s.pushed, 4);

    kt_inbox_close(&f->inbox, on_closed);
    finish_loop(f);
    assert_int_equal(f->closed, 1);
}

static void test_inbox_close_frees_queued_messages(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 100, on_msg, on_free, f, &err), KT_OK);
    for (int i = 0; i < 5; i++) {
        test_msg *m = msg_new(0, i);
        assert_int_equal(kt_inbox_push(&f->inbox, &m->link), KT_OK);
    }
    kt_inbox_close(&f->inbox, on_closed);
    assert_int_equal(f->freed, 5);
    assert_int_equal(f->total, 0);

    kt_inbox_stats s;
    kt_inbox_stats_get(&f->inbox, &s);
    assert_int_equal(s.dropped, 5);
    assert_int_equal(s.depth, 0);

    /* After close nothing is accepted, and the caller keeps the message. */
    test_msg *late = msg_new(0, 99);
    assert_int_equal(kt_inbox_push(&f->inbox, &late->link), KT_ECLOSED);
    kt_free(late);

    assert_int_equal(f->closed, 0); /* the close callback comes from the loop */
    finish_loop(f);
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->total, 0);
}

static void test_inbox_close_in_handler_frees_rest_of_batch(void **state)
{
    fixture *f = *state;
    f->close_after = 2;
    kt_err err = { 0 };
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 100, on_msg, on_free, f, &err), KT_OK);
    for (int i = 0; i < 5; i++) {
        test_msg *m = msg_new(0, i);
        assert_int_equal(kt_inbox_push(&f->inbox, &m->link), KT_OK);
    }
    finish_loop(f);
    assert_int_equal(f->total, 2);
    assert_int_equal(f->freed, 3);
    assert_int_equal(f->order_errors, 0);
}

/* A handler that pushes from the loop thread: delivered on a later iteration. */
static void on_msg_requeue(kt_inbox_msg *msg, void *user)
{
    fixture *f = user;
    test_msg *m = KT_INBOX_ENTRY(msg, test_msg, link);
    f->total++;
    if (m->seq < 9) {
        m->seq++;
        assert_int_equal(kt_inbox_push(&f->inbox, &m->link), KT_OK);
        return;
    }
    kt_free(m);
    kt_inbox_close(&f->inbox, on_closed);
}

static void test_inbox_handler_may_push_without_deadlock(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 1, on_msg_requeue, on_free, f, &err),
                     KT_OK);
    test_msg *m = msg_new(0, 0);
    assert_int_equal(kt_inbox_push(&f->inbox, &m->link), KT_OK);
    finish_loop(f);
    assert_int_equal(f->total, 10);
    assert_int_equal(f->closed, 1);
}

static void test_inbox_init_rejects_bad_arguments(void **state)
{
    fixture *f = *state;
    kt_err err = { 0 };
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 0, on_msg, on_free, f, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "max_depth"));
    kt_err_clear(&err);
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 4, NULL, on_free, f, &err), KT_EINVAL);
    kt_err_clear(&err);
    assert_int_equal(kt_inbox_init(&f->inbox, &f->loop, 4, on_msg, NULL, f, &err), KT_EINVAL);
    /* Nothing was registered on the loop. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inbox_two_producers_deliver_all_in_per_producer_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_counters_add_up_under_contention, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inbox_full_push_is_eagain_and_caller_keeps_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_close_frees_queued_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_close_in_handler_frees_rest_of_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inbox_handler_may_push_without_deadlock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inbox_init_rejects_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
