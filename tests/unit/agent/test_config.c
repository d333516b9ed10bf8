/*
 * test_config.c — agent/config: the shipped example loads with the values it
 * documents; unknown keys, a missing site, a bad hub URL, a bad log level and
 * reconnect.cap_ms below base_ms are errors naming file:line:col and key;
 * the token file is read without surrounding white space.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kt/buf.h"
#include "kt/mem.h"

static void clear_env(void)
{
    static const char *const vars[] = { "KTWIN_AGENT_SITE",           "KTWIN_AGENT_HUB_URL",
                                        "KTWIN_AGENT_HUB_TOKEN_FILE", "KTWIN_AGENT_CACHE_PATH",
                                        "KTWIN_AGENT_LISTEN_PORT",    "KTWIN_AGENT_LOG_LEVEL" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
}

static void test_example_file_loads(void **state)
{
    (void)state;
    clear_env();
    agent_cfg cfg;
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);
    kt_err err = { 0 };
    kt_status st = agent_config_load(&cfg, KT_SOURCE_DIR "/agent/agent.example.yaml", &errs, &err);
    if (st != KT_OK) {
        fprintf(stderr, "%s\n", errs.data != NULL ? errs.data : err.msg);
    }
    assert_int_equal(st, KT_OK);
    assert_string_equal(cfg.site, "site-1");
    assert_string_equal(cfg.hub_url, "ws://127.0.0.1:8080/sync");
    assert_string_equal(cfg.hub_token_file, "/var/run/secrets/ktwin/token");
    assert_null(cfg.hub_ca_file);
    assert_int_equal(cfg.hub_connect_timeout_ms, 10000);
    assert_int_equal(cfg.hub_max_message_bytes, 16 * 1024 * 1024);
    assert_string_equal(cfg.cache_path, "./ktwin-agent.db");
    assert_string_equal(cfg.listen_address, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8090);
    assert_int_equal(cfg.cpu_millis, 2000);
    assert_int_equal(cfg.memory_bytes, (size_t)2 * 1024 * 1024 * 1024);
    assert_int_equal(cfg.reconnect_base_ms, 500);
    assert_int_equal(cfg.reconnect_cap_ms, 30000);
    assert_string_equal(cfg.log_level, "info");
    agent_config_fini(&cfg);

    /* Every key of the table appears in the example (it documents every key). */
    kt_buf text;
    kt_buf_init(&text, 1 << 20);
    assert_int_equal(kt_buf_read_file(&text, KT_SOURCE_DIR "/agent/agent.example.yaml", &err),
                     KT_OK);
    for (const kt_cfg_entry *e = agent_config_table(); e->key != NULL; e++) {
        const char *leaf = strrchr(e->key, '.');
        leaf = leaf != NULL ? leaf + 1 : e->key;
        char pat[128];
        (void)snprintf(pat, sizeof pat, "%s:", leaf);
        if (strstr(text.data, pat) == NULL) {
            fail_msg("agent.example.yaml does not document %s", e->key);
        }
    }
    kt_buf_fini(&text);
    kt_buf_fini(&errs);
}

static kt_status load_text(const char *text, kt_buf *errs)
{
    agent_cfg cfg;
    kt_err err = { 0 };
    kt_buf_reset(errs);
    kt_status st = agent_config_load_buffer(&cfg, "agent.yaml", text, strlen(text), errs, &err);
    if (st == KT_OK) {
        agent_config_fini(&cfg);
    }
    return st;
}

static void expect_err(const kt_buf *errs, const char *needle)
{
    if (errs->data == NULL || strstr(errs->data, needle) == NULL) {
        fail_msg("expected \"%s\" in:\n%s", needle, errs->data != NULL ? errs->data : "");
    }
}

static void test_errors_name_file_line_col_and_key(void **state)
{
    (void)state;
    clear_env();
    kt_buf errs;
    kt_buf_init(&errs, 64 * 1024);

    assert_int_equal(load_text("site: s1\nhub:\n  token_file: /t\n  bogus: 1\n", &errs), KT_EINVAL);
    expect_err(&errs, "agent.yaml:4:3: hub.bogus");

    assert_int_equal(load_text("hub:\n  token_file: /t\n", &errs), KT_EINVAL);
    expect_err(&errs, "site");

    assert_int_equal(load_text("site: s1\nhub: {token_file: /t, url: http://x/sync}\n", &errs),
                     KT_EINVAL);
    expect_err(&errs, "hub.url");

    assert_int_equal(load_text("site: a/b\nhub: {token_file: /t}\n", &errs), KT_EINVAL);
    expect_err(&errs, "site");

    assert_int_equal(load_text("site: s1\nhub: {token_file: /t}\nlog: {level: loud}\n", &errs),
                     KT_EINVAL);
    expect_err(&errs, "log.level");

    assert_int_equal(
        load_text("site: s1\nhub: {token_file: /t}\nreconnect: {base_ms: 5s, cap_ms: 1s}\n", &errs),
        KT_EINVAL);
    expect_err(&errs, "reconnect.cap_ms");

    assert_int_equal(load_text("site: s1\nhub: {token_file: /t}\nlisten: {port: 70000}\n", &errs),
                     KT_EINVAL);
    expect_err(&errs, "agent.yaml:3:16: listen.port");

    assert_int_equal(load_text("site: s1\nhub: {token_file: /t}\n", &errs), KT_OK);
    kt_buf_fini(&errs);
}

static void test_token_is_trimmed(void **state)
{
    (void)state;
    char path[] = "/tmp/kt_test_agent_token.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "  s3cret-token\n\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    agent_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hub_token_file = path;
    char *tok = NULL;
    kt_err err = { 0 };
    assert_int_equal(agent_config_read_token(&cfg, &tok, &err), KT_OK);
    assert_string_equal(tok, "s3cret-token");
    kt_free(tok);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, " \n", 2), 2);
    close(fd);
    assert_int_equal(agent_config_read_token(&cfg, &tok, &err), KT_EINVAL);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_errors_name_file_line_col_and_key),
        cmocka_unit_test(test_token_is_trimmed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
