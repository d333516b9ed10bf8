/*
 * fuzz_sim_report.c — `ktwin-sim report` renders report.html from a
 * results.json the user hands it (sim/report.h): any JSON object, with
 * members missing, mistyped, null, huge or carrying markup, must render
 * without crashing, leaking or reading past the input, and whatever
 * renders must still be one HTML document whose quoted strings were
 * escaped (no raw "<script" from the input can appear). The paper's CSV
 * side is rendered from data/ktwin-article when the fuzzer runs from the
 * source tree (KT_PAPER_DIR), else left out.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt/buf.h"
#include "kt/json.h"
#include "report.h"

#ifndef KT_PAPER_DIR
#define KT_PAPER_DIR NULL
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *res = NULL;
    if (kt_json_parse((const char *)data, size, (size_t)1 << 20, &res, NULL) != KT_OK) {
        return 0;
    }
    if (cJSON_IsObject(res)) {
        kt_buf b;
        kt_buf_init(&b, (size_t)64 << 20);
        if (sim_report_render(res, KT_PAPER_DIR, &b) == KT_OK) {
            if (b.len < 16 || strncmp(b.data, "<!DOCTYPE html>", 15) != 0 ||
                strstr(b.data, "</body></html>") == NULL || strstr(b.data, "<script") != NULL) {
                abort();
            }
        }
        kt_buf_fini(&b);
    }
    cJSON_Delete(res);
    return 0;
}
