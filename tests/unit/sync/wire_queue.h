/*
 * wire_queue.h — the in-memory transport of the sync tests: one FIFO of
 * copied messages per direction between a sync_client and a sync_server.
 * Header-only (static functions) so each test executable gets its own copy.
 * Thread: the test's.
 */
#ifndef KT_TESTS_SYNC_WIRE_QUEUE_H
#define KT_TESTS_SYNC_WIRE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kt/mem.h"

typedef struct wmsg {
    uint8_t *b;
    size_t n;
} wmsg;

typedef struct queue {
    wmsg *v;
    size_t head;
    size_t n;
    size_t cap;
} queue;

/* Copy a message in; false when memory runs out (the transport's send then fails). */
static bool q_push(queue *q, const uint8_t *b, size_t n)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        wmsg *v = kt_realloc(q->v, cap * sizeof *q->v);
        if (v == NULL) {
            return false;
        }
        q->v = v;
        q->cap = cap;
    }
    uint8_t *copy = kt_malloc(n ? n : 1);
    if (copy == NULL) {
        return false;
    }
    memcpy(copy, b, n);
    q->v[q->n].b = copy;
    q->v[q->n].n = n;
    q->n++;
    return true;
}

static size_t q_pending(const queue *q)
{
    return q->n - q->head;
}

static bool q_pop(queue *q, wmsg *out)
{
    if (q->head == q->n) {
        return false;
    }
    *out = q->v[q->head++];
    return true;
}

/* Free what was not popped, and the queue. */
static void q_free(queue *q)
{
    for (size_t i = q->head; i < q->n; i++) {
        kt_free(q->v[i].b);
    }
    kt_free(q->v);
    memset(q, 0, sizeof *q);
}

#endif
