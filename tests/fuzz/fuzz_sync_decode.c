/*
 * fuzz_sync_decode.c — sync_msg_decode (pre-scan, protobuf-c unpack,
 * conversion, validation) on arbitrary bytes. When the bytes are accepted,
 * the message must re-encode, decode again to the same type, and pass
 * sync_msg_validate: decode never hands out a message it would refuse.
 * Small caps make the size checks reachable with small inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kt/buf.h"
#include "sync/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sync_limits lim = { .max_message_bytes = 1u << 20,
                        .max_objects = 64,
                        .max_interfaces = 64,
                        .max_body_bytes = 4096,
                        .max_string_bytes = 256 };
    sync_msg *m = NULL;
    kt_err err = { 0 };
    if (sync_msg_decode(&m, data, size, &lim, &err) != KT_OK) {
        if (m != NULL || err.msg[0] == '\0') {
            abort(); /* a failure must leave no message and say why */
        }
        return 0;
    }
    if (sync_msg_validate(m, &lim, NULL) != KT_OK) {
        abort();
    }
    kt_buf b;
    kt_buf_init(&b, 1u << 22);
    if (sync_msg_encode(m, &b, NULL) != KT_OK) {
        abort();
    }
    sync_msg *again = NULL;
    if (sync_msg_decode(&again, (const uint8_t *)b.data, b.len, &lim, NULL) != KT_OK ||
        again->type != m->type) {
        abort();
    }
    sync_msg_free(again);
    kt_buf_fini(&b);
    sync_msg_free(m);
    return 0;
}
