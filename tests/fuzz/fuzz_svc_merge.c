/*
 * fuzz_svc_merge.c — KTWIN's upsert-merge (svc_merge_json) on arbitrary
 * bytes: the input is split at the first 0x00 byte into the latest state
 * and the new data (no 0x00: no latest). A successful merge must itself be
 * a valid object that merges with {} back to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "svc/merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *zero = memchr(data, 0, size);
    const uint8_t *latest = NULL;
    size_t latest_len = 0;
    const uint8_t *next = data;
    size_t next_len = size;
    kt_buf out;
    kt_buf again;
    kt_err err = { 0 };
    if (zero != NULL) {
        latest = data;
        latest_len = (size_t)(zero - data);
        next = zero + 1;
        next_len = size - latest_len - 1;
    }
    kt_buf_init(&out, 1u << 22);
    kt_buf_init(&again, 1u << 22);
    if (svc_merge_json(&out, latest, latest_len, next, next_len, &err) == KT_OK) {
        kt_err e2 = { 0 };
        KT_ASSERT(svc_merge_json(&again, (const uint8_t *)out.data, out.len, (const uint8_t *)"{}",
                                 2, &e2) == KT_OK);
        KT_ASSERT(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
    }
    kt_buf_fini(&out);
    kt_buf_fini(&again);
    return 0;
}
