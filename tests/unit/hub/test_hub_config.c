/*
 * test_hub_config.c — the hub_cfg table: defaults, the shipped
 * hub/hub.example.yaml, unknown keys and bad values with file:line:col,
 * environment overrides, and the generated markdown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hub/config.h"
#include "kt/buf.h"

static void test_defaults_without_file(void **state)
{
    (void)state;
    hub_cfg c;
    kt_err err = { 0 };
    assert_int_equal(hub_cfg_load(&c, NULL, NULL, &err), KT_OK);
    assert_string_equal(c.listen.address, "127.0.0.1");
    assert_int_equal(c.listen.port, 8080);
    assert_string_equal(c.data_dir, "./ktwin-hub-data");
    assert_null(c.redis.url);
    assert_null(c.watch_dir);
    assert_null(c.auth.admin_token_file);
    assert_int_equal(c.limits.max_body_bytes, 64u << 20);
    assert_int_equal(c.sync.heartbeat_ms, 5000);
    assert_int_equal(c.sync.window_bytes, 8u << 20); /* two full upstream batches */
    assert_int_equal(c.sync.snapshot_chunk_bytes, 256u << 10);
    assert_int_equal(c.sync.admit_rate, 20);
    assert_int_equal(c.sync.admit_burst, 20);
    assert_int_equal(c.sync.max_message_bytes, 16u << 20);
    assert_int_equal(c.watch_debounce_ms, 200);
    hub_cfg_fini(&c);
}

static void test_example_file_loads_and_matches_defaults(void **state)
{
    (void)state;
    hub_cfg c;
    hub_cfg d;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    kt_status st = hub_cfg_load(&c, KT_SOURCE_DIR "/hub/hub.example.yaml", &errs, &err);
    if (st != KT_OK) {
        fprintf(stderr, "%.*s%s\n", (int)errs.len, errs.data != NULL ? errs.data : "", err.msg);
    }
    assert_int_equal(st, KT_OK);
    assert_int_equal(hub_cfg_load(&d, NULL, NULL, &err), KT_OK);
    /* The example documents the defaults: every value must equal them. */
    for (const kt_cfg_entry *e = hub_cfg_table(); e->key != NULL; e++) {
        if (kt_cfg_changed(e, &c, &d)) {
            fail_msg("hub.example.yaml: %s differs from its default", e->key);
        }
    }
    hub_cfg_fini(&c);
    hub_cfg_fini(&d);
    kt_buf_fini(&errs);
}

static void test_unknown_key_and_bad_values_name_file_line_col(void **state)
{
    (void)state;
    const char *text = "listen:\n"
                       "  port: 99999\n"
                       "bogus: 1\n"
                       "sync:\n"
                       "  window_bytes: lots\n";
    hub_cfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    assert_int_equal(hub_cfg_load_buffer(&c, "hub.yaml", text, strlen(text), &errs, &err),
                     KT_EINVAL);
    assert_int_equal(kt_buf_putc(&errs, '\0'), KT_OK);
    assert_non_null(strstr(errs.data, "hub.yaml:2:"));
    assert_non_null(strstr(errs.data, "listen.port"));
    assert_non_null(strstr(errs.data, "hub.yaml:3:1"));
    assert_non_null(strstr(errs.data, "bogus"));
    assert_non_null(strstr(errs.data, "hub.yaml:5:"));
    kt_buf_fini(&errs);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    const char *text = "listen: {port: 9000}\n";
    assert_int_equal(setenv("KTWIN_HUB_LISTEN_PORT", "0", 1), 0);
    hub_cfg c;
    kt_err err = { 0 };
    assert_int_equal(hub_cfg_load_buffer(&c, "hub.yaml", text, strlen(text), NULL, &err), KT_OK);
    assert_int_equal(c.listen.port, 0);
    hub_cfg_fini(&c);
    assert_int_equal(unsetenv("KTWIN_HUB_LISTEN_PORT"), 0);
}

static void test_tls_needs_both_files(void **state)
{
    (void)state;
    const char *text = "tls: {cert_file: /x.crt}\n";
    hub_cfg c;
    kt_err err = { 0 };
    assert_int_equal(hub_cfg_load_buffer(&c, "hub.yaml", text, strlen(text), NULL, &err),
                     KT_EINVAL);
}

static void test_doc_lists_every_key(void **state)
{
    (void)state;
    kt_buf b;
    kt_buf_init(&b, 1 << 20);
    assert_int_equal(kt_cfg_doc_markdown(hub_cfg_table(), HUB_CFG_ENV_PREFIX, &b), KT_OK);
    assert_int_equal(kt_buf_putc(&b, '\0'), KT_OK);
    for (const kt_cfg_entry *e = hub_cfg_table(); e->key != NULL; e++) {
        assert_non_null(strstr(b.data, e->key));
    }
    kt_buf_fini(&b);
}

static void test_docs_config_md_has_the_generated_table(void **state)
{
    (void)state;
    kt_buf doc;
    kt_buf_init(&doc, 1 << 22);
    kt_err err = { 0 };
    assert_int_equal(kt_buf_read_file(&doc, KT_SOURCE_DIR "/docs/config.md", &err), KT_OK);
    assert_int_equal(kt_buf_putc(&doc, '\0'), KT_OK);
    const char *begin = strstr(doc.data, "<!-- hub-config:begin");
    assert_non_null(begin);
    begin = strchr(begin, '\n');
    assert_non_null(begin);
    begin++;
    const char *end = strstr(begin, "<!-- hub-config:end -->");
    assert_non_null(end);
    kt_buf want;
    kt_buf_init(&want, 1 << 20);
    assert_int_equal(kt_cfg_doc_markdown(hub_cfg_table(), HUB_CFG_ENV_PREFIX, &want), KT_OK);
    if ((size_t)(end - begin) != want.len || memcmp(begin, want.data, want.len) != 0) {
        fail_msg(
            "docs/config.md is stale: regenerate the hub table with ktwin-hub --print-config-doc");
    }
    kt_buf_fini(&want);
    kt_buf_fini(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_file),
        cmocka_unit_test(test_example_file_loads_and_matches_defaults),
        cmocka_unit_test(test_unknown_key_and_bad_values_name_file_line_col),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_tls_needs_both_files),
        cmocka_unit_test(test_doc_lists_every_key),
        cmocka_unit_test(test_docs_config_md_has_the_generated_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
