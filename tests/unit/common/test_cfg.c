/*
 * test_cfg.c — kt_cfg: every type, defaults, nested and dotted keys, env
 * overrides, unknown keys with line:col, ranges, all errors reported (not
 * only the first), secrets never echoed, required keys, reload check, dump,
 * markdown docs, table validation, alias bombs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt/buf.h"
#include "kt/cfg.h"
#include "kt/mem.h"

typedef struct tcfg {
    int64_t port;
    bool tls;
    int64_t keepalive_ms;
    size_t max_frame;
    char *name;
    char *token;
    int64_t pin;
    kt_cfg_strlist peers;
    struct {
        int64_t depth;
    } queue;
} tcfg;

static const kt_cfg_entry table[] = {
    { "listen.port", KT_CFG_INT, offsetof(tcfg, port), 0, 65535, "8080", KT_CFG_ENV,
      "TCP port (0 = ephemeral)" },
    { "listen.tls", KT_CFG_BOOL, offsetof(tcfg, tls), 0, 0, "false", KT_CFG_RELOADABLE,
      "serve TLS | or not" },
    { "uplink.keepalive", KT_CFG_DURATION_MS, offsetof(tcfg, keepalive_ms), 100, 600000, "30s",
      KT_CFG_ENV | KT_CFG_RELOADABLE, "ping interval" },
    { "uplink.max_frame", KT_CFG_SIZE_BYTES, offsetof(tcfg, max_frame), 1024, 64 << 20, "1MiB", 0,
      "largest frame" },
    { "name", KT_CFG_STRING, offsetof(tcfg, name), 1, 16, "hub-1", 0, "instance name" },
    { "auth.token", KT_CFG_STRING, offsetof(tcfg, token), 0, 0, NULL, KT_CFG_SECRET | KT_CFG_ENV,
      "bearer token" },
    { "auth.pin", KT_CFG_INT, offsetof(tcfg, pin), 0, 9999, "1234", KT_CFG_SECRET, "pin" },
    { "peers", KT_CFG_STRING_LIST, offsetof(tcfg, peers), 0, 3, "a, b", KT_CFG_ENV, "peer hubs" },
    { "queue.depth", KT_CFG_INT, offsetof(tcfg, queue.depth), 1, 100, "10", KT_CFG_RELOADABLE,
      "queue depth" },
    { NULL, 0, 0, 0, 0, NULL, 0, NULL }
};

static size_t count_lines(const kt_buf *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++) {
        n += b->data[i] == '\n';
    }
    return n;
}

static kt_status load(tcfg *c, const char *yaml, kt_buf *errs, kt_err *err)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(kt_cfg_defaults(table, c, NULL), KT_OK);
    return kt_cfg_load_buffer(table, c, "t.yaml", yaml, strlen(yaml), errs, err);
}

static void test_cfg_defaults(void **state)
{
    (void)state;
    tcfg c;
    memset(&c, 0xab, sizeof c); /* kt_cfg_defaults writes every field */
    assert_int_equal(kt_cfg_defaults(table, &c, NULL), KT_OK);
    assert_int_equal(c.port, 8080);
    assert_false(c.tls);
    assert_int_equal(c.keepalive_ms, 30000);
    assert_int_equal(c.max_frame, 1 << 20);
    assert_string_equal(c.name, "hub-1");
    assert_null(c.token);
    assert_int_equal(c.pin, 1234);
    assert_int_equal(c.peers.n, 2);
    assert_string_equal(c.peers.items[0], "a");
    assert_string_equal(c.peers.items[1], "b");
    assert_null(c.peers.items[2]);
    assert_int_equal(c.queue.depth, 10);
    kt_cfg_free_strings(table, &c);
    assert_null(c.name);
    assert_int_equal(c.peers.n, 0);
    kt_cfg_free_strings(table, &c); /* twice is fine */
}

static void test_cfg_every_type_nested_and_dotted(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    const char *y = "# comment\n"
                    "listen:\n"
                    "  port: 0x1F90\n"
                    "  tls: Yes\n"
                    "uplink.keepalive: 2m\n"
                    "uplink:\n"
                    "  max_frame: 64KiB\n"
                    "name: \"edge 7\"\n"
                    "auth: {token: s3cret, pin: 42}\n"
                    "peers: [ws://a:1, 'ws://b:2']\n"
                    "queue:\n";
    assert_int_equal(load(&c, y, &errs, &err), KT_OK);
    assert_int_equal(errs.len, 0);
    assert_int_equal(c.port, 8080);
    assert_true(c.tls);
    assert_int_equal(c.keepalive_ms, 120000);
    assert_int_equal(c.max_frame, 65536);
    assert_string_equal(c.name, "edge 7");
    assert_string_equal(c.token, "s3cret");
    assert_int_equal(c.pin, 42);
    assert_int_equal(c.peers.n, 2);
    assert_string_equal(c.peers.items[1], "ws://b:2");
    assert_int_equal(c.queue.depth, 10); /* empty section keeps defaults */
    kt_cfg_free_strings(table, &c);

    /* Other spellings: plain integers are ms / bytes, single scalar list, KB = 1000. */
    assert_int_equal(load(&c,
                          "uplink: {keepalive: 250, max_frame: 10KB}\npeers: x\n"
                          "listen: {tls: off}\nname: ~\n",
                          &errs, &err),
                     KT_OK);
    assert_int_equal(c.keepalive_ms, 250);
    assert_int_equal(c.max_frame, 10000);
    assert_int_equal(c.peers.n, 1);
    assert_string_equal(c.peers.items[0], "x");
    assert_false(c.tls);
    assert_null(c.name);
    kt_cfg_free_strings(table, &c);

    /* Empty documents are all defaults. */
    assert_int_equal(load(&c, "", &errs, &err), KT_OK);
    assert_int_equal(c.port, 8080);
    kt_cfg_free_strings(table, &c);
    assert_int_equal(load(&c, "---\n...\n", &errs, &err), KT_OK);
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_unknown_key_line_col(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    const char *y = "listen:\n"
                    "  port: 80\n"
                    "  bogus: 1\n";
    assert_int_equal(load(&c, y, &errs, &err), KT_EINVAL);
    assert_string_equal(errs.data, "t.yaml:3:3: listen.bogus: unknown key\n");
    assert_string_equal(err.msg, "t.yaml:3:3: listen.bogus: unknown key");
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_all_errors_reported(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    const char *y = "listen:\n"
                    "  port: 70000\n" /* 2:9 range */
                    "  tls: maybe\n"  /* 3:8 bool */
                    "uplink:\n"
                    "  keepalive: 5ms\n"                /* 5:14 below min */
                    "  max_frame: 3 parsecs\n"          /* 6:14 unit */
                    "name: this-name-is-far-too-long\n" /* 7:7 length */
                    "peers: [a, b, c, d]\n"             /* 8:8 too many */
                    "queue: 5\n"                        /* 9:8 mapping expected */
                    "extra: 1\n"                        /* 10:1 unknown */
                    "listen.port: 1\n";                 /* 11:1 set twice */
    assert_int_equal(load(&c, y, &errs, &err), KT_EINVAL);
    assert_int_equal(count_lines(&errs), 9);
    assert_non_null(strstr(errs.data, "t.yaml:2:9: listen.port: 70000 out of range 0..65535\n"));
    assert_non_null(strstr(errs.data, "t.yaml:3:8: listen.tls: \"maybe\" is not a boolean"));
    assert_non_null(
        strstr(errs.data, "t.yaml:5:14: uplink.keepalive: 5ms out of range 100ms..10m\n"));
    assert_non_null(
        strstr(errs.data, "t.yaml:6:14: uplink.max_frame: \"3 parsecs\" is not a size"));
    assert_non_null(strstr(errs.data, "t.yaml:7:7: name: length 25 out of range 1..16\n"));
    assert_non_null(strstr(errs.data, "t.yaml:8:8: peers: 4 items, at most 3 allowed\n"));
    assert_non_null(strstr(errs.data, "t.yaml:9:8: queue: expected a mapping"));
    assert_non_null(strstr(errs.data, "t.yaml:10:1: extra: unknown key\n"));
    assert_non_null(strstr(errs.data, "t.yaml:11:14: listen.port: set twice\n"));
    assert_non_null(strstr(err.msg, "(and 8 more)"));
    kt_cfg_free_strings(table, &c);
    kt_buf_reset(&errs);

    /* Wrong shapes. */
    const char *y2 = "listen: {port: [1]}\npeers: {a: 1}\nname: {x: y}\n[1]: 2\n";
    kt_err_clear(&err);
    assert_int_equal(load(&c, y2, &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "listen.port: expected a int, found a list"));
    assert_non_null(strstr(errs.data, "peers: expected a list of strings, found a mapping"));
    assert_non_null(strstr(errs.data, "name: expected a string, found a mapping"));
    assert_non_null(strstr(errs.data, "mapping keys must be plain strings"));
    kt_cfg_free_strings(table, &c);
    kt_buf_reset(&errs);

    /* A document that is not a mapping, and YAML syntax errors with position. */
    kt_err_clear(&err);
    assert_int_equal(load(&c, "- a\n- b\n", &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "t.yaml:1:1: the document must be a mapping"));
    kt_cfg_free_strings(table, &c);
    kt_buf_reset(&errs);
    kt_err_clear(&err);
    assert_int_equal(load(&c, "listen:\n  port: [1, 2\nname: x\n", &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "t.yaml:3:"));
    assert_non_null(strstr(errs.data, "yaml:"));
    kt_cfg_free_strings(table, &c);
    kt_buf_reset(&errs);
    kt_err_clear(&err);
    assert_int_equal(load(&c, "name: a\n---\nname: b\n", &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "only one YAML document"));
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_secrets_never_echoed(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    assert_int_equal(load(&c, "auth: {pin: 123456789}\n", &errs, &err), KT_EINVAL);
    assert_null(strstr(errs.data, "123456789"));
    assert_null(strstr(err.msg, "123456789"));
    assert_non_null(strstr(errs.data, "auth.pin: <secret> out of range"));
    kt_cfg_free_strings(table, &c);
    kt_buf_reset(&errs);
    kt_err_clear(&err);
    assert_int_equal(load(&c, "auth: {pin: xyzzy, token: hunter2}\n", &errs, &err), KT_EINVAL);
    assert_null(strstr(errs.data, "xyzzy"));
    kt_buf dump;
    kt_buf_init(&dump, 1 << 16);
    assert_int_equal(kt_cfg_dump(table, &c, &dump), KT_OK);
    assert_null(strstr(dump.data, "hunter2"));
    assert_non_null(strstr(dump.data, "auth.token: <secret>\n"));
    assert_non_null(strstr(dump.data, "listen.port: 8080\n"));
    assert_non_null(strstr(dump.data, "uplink.keepalive: 30s\n"));
    assert_non_null(strstr(dump.data, "uplink.max_frame: 1MiB\n"));
    assert_non_null(strstr(dump.data, "peers: [\"a\", \"b\"]\n"));
    kt_buf_fini(&dump);
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_env_overrides(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    char name[128];
    assert_string_equal(kt_cfg_env_name(name, sizeof name, "KTWIN_T_", "listen.port"),
                        "KTWIN_T_LISTEN_PORT");
    assert_string_equal(kt_cfg_env_name(name, sizeof name, NULL, "uplink.max_frame"),
                        "KTWIN_UPLINK_MAX_FRAME");
    assert_int_equal(load(&c, "listen: {port: 81}\n", &errs, &err), KT_OK);
    setenv("KTWIN_T_LISTEN_PORT", "9090", 1);
    setenv("KTWIN_T_PEERS", " x , y,,z ", 1);
    setenv("KTWIN_T_AUTH_TOKEN", "from-env", 1);
    setenv("KTWIN_T_UPLINK_MAX_FRAME", "2MiB", 1); /* no KT_CFG_ENV flag: ignored */
    assert_int_equal(kt_cfg_apply_env(table, &c, "KTWIN_T_", &errs, &err), KT_OK);
    assert_int_equal(c.port, 9090);
    assert_int_equal(c.peers.n, 3);
    assert_string_equal(c.peers.items[2], "z");
    assert_string_equal(c.token, "from-env");
    assert_int_equal(c.max_frame, 1 << 20);
    /* A bad env value names the variable. */
    setenv("KTWIN_T_UPLINK_KEEPALIVE", "soon", 1);
    assert_int_equal(kt_cfg_apply_env(table, &c, "KTWIN_T_", &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "env KTWIN_T_UPLINK_KEEPALIVE: uplink.keepalive: \"soon\" "
                                      "is not a duration"));
    unsetenv("KTWIN_T_LISTEN_PORT");
    unsetenv("KTWIN_T_PEERS");
    unsetenv("KTWIN_T_AUTH_TOKEN");
    unsetenv("KTWIN_T_UPLINK_MAX_FRAME");
    unsetenv("KTWIN_T_UPLINK_KEEPALIVE");
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

typedef struct rcfg {
    char *db;
    kt_cfg_strlist hubs;
} rcfg;

static const kt_cfg_entry req_table[] = { { "db", KT_CFG_STRING, offsetof(rcfg, db), 0, 0,
                                            "ignored", KT_CFG_REQUIRED | KT_CFG_ENV, "db" },
                                          { "hubs", KT_CFG_STRING_LIST, offsetof(rcfg, hubs), 0, 0,
                                            NULL, KT_CFG_REQUIRED, "hubs" },
                                          { NULL, 0, 0, 0, 0, NULL, 0, NULL } };

static void test_cfg_required(void **state)
{
    (void)state;
    rcfg c;
    memset(&c, 0, sizeof c);
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    assert_int_equal(kt_cfg_defaults(req_table, &c, NULL), KT_OK);
    assert_null(c.db);
    assert_int_equal(kt_cfg_apply_env(req_table, &c, "KTR_", &errs, &err), KT_EINVAL);
    assert_int_equal(count_lines(&errs), 2);
    assert_non_null(strstr(errs.data, "config: db: required, not set (in the file or KTR_DB)\n"));
    kt_buf_reset(&errs);
    kt_err_clear(&err);
    assert_int_equal(kt_cfg_load_buffer(req_table, &c, NULL, "hubs: [h1]\n", 11, &errs, &err),
                     KT_OK);
    setenv("KTR_DB", "/var/lib/x.db", 1);
    assert_int_equal(kt_cfg_apply_env(req_table, &c, "KTR_", &errs, &err), KT_OK);
    unsetenv("KTR_DB");
    assert_string_equal(c.db, "/var/lib/x.db");
    kt_cfg_free_strings(req_table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_files(void **state)
{
    (void)state;
    tcfg c;
    memset(&c, 0, sizeof c);
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    assert_int_equal(kt_cfg_defaults(table, &c, NULL), KT_OK);
    assert_int_equal(kt_cfg_load_file(table, &c, "/nonexistent/dir/hub.yaml", &errs, &err),
                     KT_ENOTFOUND);
    assert_int_equal(errs.len, 0);
    assert_int_equal(c.port, 8080);
    char path[] = "/tmp/kt-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *y = "listen:\n  port: 99999\n";
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    kt_err_clear(&err);
    assert_int_equal(kt_cfg_load_file(table, &c, path, &errs, &err), KT_EINVAL);
    char want[128];
    (void)snprintf(want, sizeof want, "%s:2:9: listen.port: 99999 out of range", path);
    assert_non_null(strstr(errs.data, want));
    unlink(path);
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_set_and_reload_check(void **state)
{
    (void)state;
    tcfg a;
    tcfg b;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    assert_int_equal(load(&a, "name: one\n", &errs, &err), KT_OK);
    assert_int_equal(load(&b, "name: one\nqueue: {depth: 50}\nlisten: {tls: true}\n", &errs, &err),
                     KT_OK);
    assert_int_equal(kt_cfg_reload_check(table, &a, &b, &errs, &err), KT_OK);
    assert_true(kt_cfg_changed(&table[8], &a, &b));
    assert_false(kt_cfg_changed(&table[0], &a, &b));
    assert_int_equal(kt_cfg_set(table, &b, "listen.port", "1234", NULL, &errs, &err), KT_OK);
    assert_int_equal(kt_cfg_set(table, &b, "name", "two", NULL, &errs, &err), KT_OK);
    assert_int_equal(kt_cfg_set(table, &b, "auth.token", "t1", NULL, &errs, &err), KT_OK);
    assert_int_equal(kt_cfg_reload_check(table, &a, &b, &errs, &err), KT_EINVAL);
    assert_int_equal(count_lines(&errs), 3);
    assert_non_null(strstr(errs.data, "reload: listen.port: changed from 8080 to 1234 but needs a "
                                      "restart\n"));
    assert_non_null(strstr(errs.data, "name: changed from \"one\" to \"two\""));
    assert_non_null(strstr(errs.data, "auth.token: changed from <secret> to <secret>"));
    assert_null(strstr(errs.data, "t1"));
    kt_buf_reset(&errs);
    assert_int_equal(kt_cfg_set(table, &b, "nope", "1", "--set", &errs, &err), KT_ENOTFOUND);
    assert_string_equal(errs.data, "--set: nope: unknown key\n");
    kt_buf_reset(&errs);
    kt_buf_reset(&errs);
    assert_int_equal(kt_cfg_set(table, &b, "uplink.keepalive", "-5s", NULL, &errs, NULL),
                     KT_EINVAL);
    assert_string_equal(errs.data, "command line: uplink.keepalive: duration -5s is negative\n");
    kt_buf_reset(&errs);
    assert_int_equal(kt_cfg_set(table, &b, "listen.port", "-1", NULL, &errs, NULL), KT_EINVAL);
    assert_string_equal(errs.data, "command line: listen.port: -1 out of range 0..65535\n");
    kt_cfg_free_strings(table, &a);
    kt_cfg_free_strings(table, &b);
    kt_buf_fini(&errs);
}

static void test_cfg_doc_markdown(void **state)
{
    (void)state;
    kt_buf md;
    kt_buf_init(&md, 1 << 16);
    assert_int_equal(kt_cfg_doc_markdown(table, "KTWIN_T_", &md), KT_OK);
    assert_non_null(strstr(md.data, "| key | type | default | range | env | reloadable | doc |\n"
                                    "|---|---|---|---|---|---|---|\n"));
    assert_non_null(strstr(md.data, "| `listen.port` | int | `8080` | 0..65535 | "
                                    "`KTWIN_T_LISTEN_PORT` | no | TCP port (0 = ephemeral) |\n"));
    assert_non_null(strstr(md.data, "| `listen.tls` | bool | `false` | - | - | yes | serve TLS \\| "
                                    "or not |\n"));
    assert_non_null(strstr(md.data, "| `uplink.keepalive` | duration | `30s` | 100ms..10m | "
                                    "`KTWIN_T_UPLINK_KEEPALIVE` | yes |"));
    assert_non_null(
        strstr(md.data, "| `uplink.max_frame` | size | `1MiB` | 1KiB..64MiB | - | no |"));
    assert_non_null(strstr(md.data, "| `name` | string | `hub-1` | length 1..16 |"));
    assert_non_null(
        strstr(md.data, "| `auth.pin` | int | <secret> | 0..9999 | - | no | pin (secret) |"));
    assert_non_null(
        strstr(md.data, "| `peers` | list | `a, b` | at most 3 items | `KTWIN_T_PEERS` |"));
    assert_int_equal(count_lines(&md), 11);
    kt_buf_fini(&md);
}

static void test_cfg_bad_tables(void **state)
{
    (void)state;
    tcfg c;
    kt_err err = { 0 };
    static const kt_cfg_entry dup[] = { { "a", KT_CFG_INT, offsetof(tcfg, port), 0, 0, "1", 0, "" },
                                        { "a", KT_CFG_INT, offsetof(tcfg, pin), 0, 0, "1", 0, "" },
                                        { NULL, 0, 0, 0, 0, NULL, 0, NULL } };
    memset(&c, 0, sizeof c);
    assert_int_equal(kt_cfg_defaults(dup, &c, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "duplicate key a"));
    static const kt_cfg_entry pre[] = { { "a", KT_CFG_INT, offsetof(tcfg, port), 0, 0, "1", 0, "" },
                                        { "a.b", KT_CFG_INT, offsetof(tcfg, pin), 0, 0, "1", 0,
                                          "" },
                                        { NULL, 0, 0, 0, 0, NULL, 0, NULL } };
    kt_err_clear(&err);
    assert_int_equal(kt_cfg_defaults(pre, &c, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "prefix"));
    static const kt_cfg_entry baddef[] = {
        { "s", KT_CFG_STRING, offsetof(tcfg, name), 0, 0, "ok", 0, "" },
        { "a", KT_CFG_INT, offsetof(tcfg, port), 1, 10, "11", 0, "" },
        { NULL, 0, 0, 0, 0, NULL, 0, NULL }
    };
    kt_err_clear(&err);
    assert_int_equal(kt_cfg_defaults(baddef, &c, &err), KT_EINVAL);
    assert_non_null(strstr(err.msg, "table default: a: 11 out of range 1..10"));
    assert_null(c.name); /* nothing leaked */
    static const kt_cfg_entry badkey[] = { { "Upper.Case", KT_CFG_INT, offsetof(tcfg, port), 0, 0,
                                             "1", 0, "" },
                                           { NULL, 0, 0, 0, 0, NULL, 0, NULL } };
    kt_err_clear(&err);
    assert_int_equal(kt_cfg_defaults(badkey, &c, &err), KT_EINVAL);
}

static void test_cfg_alias_bomb_is_bounded(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 1 << 16);
    kt_err err = { 0 };
    const char *y = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                    "peers: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                    "listen: &l {port: 1}\n"
                    "queue: *l\n";
    assert_int_equal(load(&c, y, &errs, &err), KT_EINVAL);
    assert_non_null(strstr(errs.data, "a: unknown key"));
    assert_non_null(strstr(errs.data, "peers: list items must be strings"));
    assert_non_null(strstr(errs.data, "queue.port: unknown key"));
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

static void test_cfg_errs_buffer_full_keeps_count(void **state)
{
    (void)state;
    tcfg c;
    kt_buf errs;
    kt_buf_init(&errs, 40); /* room for one line only */
    kt_err err = { 0 };
    assert_int_equal(load(&c, "x1: 1\nx2: 2\nx3: 3\n", &errs, &err), KT_EINVAL);
    assert_int_equal(count_lines(&errs), 1);
    assert_non_null(strstr(err.msg, "(and 2 more)"));
    kt_cfg_free_strings(table, &c);
    kt_buf_fini(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_defaults),
        cmocka_unit_test(test_cfg_every_type_nested_and_dotted),
        cmocka_unit_test(test_cfg_unknown_key_line_col),
        cmocka_unit_test(test_cfg_all_errors_reported),
        cmocka_unit_test(test_cfg_secrets_never_echoed),
        cmocka_unit_test(test_cfg_env_overrides),
        cmocka_unit_test(test_cfg_required),
        cmocka_unit_test(test_cfg_files),
        cmocka_unit_test(test_cfg_set_and_reload_check),
        cmocka_unit_test(test_cfg_doc_markdown),
        cmocka_unit_test(test_cfg_bad_tables),
        cmocka_unit_test(test_cfg_alias_bomb_is_bounded),
        cmocka_unit_test(test_cfg_errs_buffer_full_keeps_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
