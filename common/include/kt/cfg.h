/*
 * kt/cfg.h — declarative YAML configuration (STYLE.md §7).
 *
 * A program describes its config struct with a table of entries, one per
 * key, ended by an entry whose key is NULL:
 *
 *   typedef struct hub_cfg { int64_t port; int64_t ping_ms; size_t max_frame;
 *                            char *db_path; bool tls; kt_cfg_strlist peers; } hub_cfg;
 *   static const kt_cfg_entry hub_cfg_table[] = {
 *       { "listen.port", KT_CFG_INT, offsetof(hub_cfg, port), 0, 65535, "8080",
 *         KT_CFG_ENV, "TCP port of the REST and sync listener (0 = ephemeral)" },
 *       { "sync.ping", KT_CFG_DURATION_MS, offsetof(hub_cfg, ping_ms), 100, 600000, "20s",
 *         KT_CFG_RELOADABLE, "WebSocket ping interval" },
 *       ...
 *       { 0 } };
 *
 *   hub_cfg c;                         // zeroed or not: kt_cfg_defaults writes every field
 *   kt_buf errs; kt_buf_init(&errs, 64 * 1024);
 *   kt_err err = {0};
 *   kt_cfg_defaults(hub_cfg_table, &c, &err);                    // table bugs only
 *   kt_status st = kt_cfg_load_file(hub_cfg_table, &c, "hub.yaml", &errs, &err);
 *   if (st == KT_ENOTFOUND) { ...run on defaults... }
 *   st = kt_cfg_apply_env(hub_cfg_table, &c, "KTWIN_HUB_", &errs, &err);
 *   ...  errs.data holds every problem, one "file:line:col: key: message\n" per line
 *   kt_cfg_free_strings(hub_cfg_table, &c);
 *
 * Field storage per type (the offset points at a field of exactly this C type):
 *
 *   KT_CFG_INT          int64_t   "42", "-7", "0x1f"; range min..max (inclusive)
 *   KT_CFG_BOOL         bool      true/false/yes/no/on/off (case-insensitive); min/max unused
 *   KT_CFG_STRING       char *    owned by the struct (kt_malloc), NULL when unset and no
 *                                 default; max > 0 caps strlen (min..max is a length range)
 *   KT_CFG_DURATION_MS  int64_t   milliseconds: "250ms", "5s", "2m", "1h", "1d", or a plain
 *                                 integer meaning ms; range min..max in ms
 *   KT_CFG_SIZE_BYTES   size_t    bytes: "64KiB", "1MiB", "2GiB", "10KB" (=10000), "512B" or
 *                                 a plain integer; range min..max in bytes
 *   KT_CFG_STRING_LIST  kt_cfg_strlist  YAML sequence of scalars (a single scalar gives a
 *                                 one-item list); from env and defaults: comma-separated;
 *                                 max > 0 caps the item count
 *
 * For INT/DURATION/SIZE, min == max == 0 means "no range check".
 *
 * YAML shape: nested mappings give dotted keys ("uplink: {keepalive: 5s}" sets
 * "uplink.keepalive"). A document may be empty (all defaults). Every problem
 * is reported, not only the first: unknown keys, a scalar where a mapping is
 * expected and vice versa, bad numbers or units, out-of-range values, the
 * same key twice, YAML syntax errors (parsing stops there). Each problem is
 * one line "file:line:col: key: message" (line and column 1-based, from
 * libyaml's marks; env problems read "env KTWIN_X: key: message"). Values of
 * KT_CFG_SECRET keys never appear in messages, logs or dumps.
 *
 * Reload (SIGHUP): parse into a NEW struct (defaults + file + env), then
 * kt_cfg_reload_check(old, new) refuses changes to keys without
 * KT_CFG_RELOADABLE; on success the caller swaps structs on the loop thread
 * and frees the old one's strings. On any failure the old config stays.
 *
 * Thread: any, but a config struct belongs to one thread at a time. libyaml
 * is synchronous: use this at startup or reload only, never per request.
 * Ownership: strings and lists written into the struct belong to the struct
 * and are released by kt_cfg_free_strings(). The table is borrowed.
 */
#ifndef KT_COMMON_CFG_H
#define KT_COMMON_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt/buf.h"
#include "kt/err.h"

typedef enum kt_cfg_type {
    KT_CFG_INT = 1,
    KT_CFG_BOOL,
    KT_CFG_STRING,
    KT_CFG_DURATION_MS,
    KT_CFG_SIZE_BYTES,
    KT_CFG_STRING_LIST
} kt_cfg_type;

/* Entry flags (bit set). */
enum {
    KT_CFG_ENV = 1u << 0,        /* may be overridden by <prefix><KEY>, see kt_cfg_env_name */
    KT_CFG_RELOADABLE = 1u << 1, /* may change on reload (SIGHUP) */
    KT_CFG_SECRET = 1u << 2,     /* value never logged, printed or put into messages */
    KT_CFG_REQUIRED = 1u << 3    /* STRING / STRING_LIST only: must be non-empty after file and
                                    env (checked by kt_cfg_apply_env; a default is ignored) */
};

/*
 * A list of strings (KT_CFG_STRING_LIST field). items has n entries followed
 * by a NULL, so it can be walked either by count or to the NULL. An empty
 * list is { 0, NULL }. Owned by the config struct.
 */
typedef struct kt_cfg_strlist {
    size_t n;
    char **items;
} kt_cfg_strlist;

typedef struct kt_cfg_entry {
    const char *key; /* dotted path, [a-z0-9_] segments, e.g. "uplink.keepalive"; NULL ends */
    kt_cfg_type type;
    size_t offset;    /* offsetof(struct, field) */
    int64_t min, max; /* see the per-type rules above; 0,0 = unchecked */
    const char *def;  /* default in the same text syntax as YAML/env, NULL = zero/NULL/empty */
    unsigned flags;   /* KT_CFG_ENV | KT_CFG_RELOADABLE | KT_CFG_SECRET | KT_CFG_REQUIRED */
    const char *doc;  /* one line for docs/config.md and the example file */
} kt_cfg_entry;

/*
 * Write every field of cfg from the table defaults (strings duplicated).
 * Fields already holding strings are NOT freed: call this on a zeroed or
 * fresh struct. Returns KT_OK, or KT_EINVAL when the table itself is broken
 * (a default that does not parse or is out of range, a bad or duplicate key,
 * a key that is also a prefix of another): a programming error, err says
 * which entry. Thread: any.
 */
kt_status kt_cfg_defaults(const kt_cfg_entry *table, void *cfg, kt_err *err);

/*
 * Read the YAML file at path and overlay its values onto cfg (normally after
 * kt_cfg_defaults). Every problem is appended as a line to errs (may be
 * NULL; a full errs keeps the lines that fit); err gets the first problem
 * and the count ("... (and 3 more)").
 * Returns KT_OK; KT_ENOTFOUND when the file does not exist (cfg untouched,
 * nothing in errs: the caller may run on defaults); KT_EIO when it cannot be
 * read; KT_EINVAL when there was any problem (cfg may be half-updated:
 * discard it); KT_ETOOBIG over 16 MiB. Thread: any.
 */
kt_status
kt_cfg_load_file(const kt_cfg_entry *table, void *cfg, const char *path, kt_buf *errs, kt_err *err);

/*
 * Like kt_cfg_load_file, from len bytes at data (need not be NUL-terminated);
 * name is used as the file name in messages (NULL = "<config>"). Returns
 * KT_OK, KT_EINVAL (problems in errs), or KT_ETOOBIG over 16 MiB. Used by
 * tests and the fuzz target. Thread: any.
 */
kt_status kt_cfg_load_buffer(const kt_cfg_entry *table,
                             void *cfg,
                             const char *name,
                             const char *data,
                             size_t len,
                             kt_buf *errs,
                             kt_err *err);

/*
 * Apply environment overrides for entries flagged KT_CFG_ENV: for each, the
 * variable kt_cfg_env_name(prefix, key) is read (e.g. prefix "KTWIN_HUB_",
 * key "listen.port" -> KTWIN_HUB_LISTEN_PORT); if set, its text is parsed
 * like a YAML scalar. prefix NULL means "KTWIN_". Then checks KT_CFG_REQUIRED
 * entries, so call it last (even when no entry has KT_CFG_ENV). Returns
 * KT_OK or KT_EINVAL (problems appended to errs as above). Thread: any (reads
 * the environment; do not run concurrently with setenv).
 */
kt_status kt_cfg_apply_env(
    const kt_cfg_entry *table, void *cfg, const char *prefix, kt_buf *errs, kt_err *err);

/*
 * Set one key from text, as a command-line "--set key=value" would: the same
 * parsing and checks as a YAML scalar; where names the source in messages
 * (NULL = "command line"). KT_ENOTFOUND for an unknown key, KT_EINVAL for a
 * bad value (message in errs and err). Thread: any.
 */
kt_status kt_cfg_set(const kt_cfg_entry *table,
                     void *cfg,
                     const char *key,
                     const char *value,
                     const char *where,
                     kt_buf *errs,
                     kt_err *err);

/*
 * Write the environment variable name for key into out (cap bytes, always
 * NUL-terminated): prefix + key upper-cased with '.' and '-' turned into
 * '_'. prefix NULL means "KTWIN_". Returns out. Thread: any.
 */
const char *kt_cfg_env_name(char *out, size_t cap, const char *prefix, const char *key);

/*
 * Compare two fully loaded configs for a reload: every entry whose value
 * differs between old_cfg and new_cfg but lacks KT_CFG_RELOADABLE is a
 * problem ("key: changed from 10 to 20 but needs a restart"; secrets as
 * "<secret>"), appended to errs. Returns KT_OK (swap is allowed) or
 * KT_EINVAL. Thread: any.
 */
kt_status kt_cfg_reload_check(
    const kt_cfg_entry *table, const void *old_cfg, const void *new_cfg, kt_buf *errs, kt_err *err);

/* true when the entry's value differs between a and b. Thread: any. */
bool kt_cfg_changed(const kt_cfg_entry *entry, const void *a, const void *b);

/*
 * Append the effective config as YAML-ish "key: value" lines, one per entry
 * in table order, secrets as "<secret>" (for --print-config and startup
 * logs at DEBUG). Returns KT_OK or the kt_buf error (KT_ETOOBIG/KT_ENOMEM).
 */
kt_status kt_cfg_dump(const kt_cfg_entry *table, const void *cfg, kt_buf *out);

/*
 * Append a markdown table documenting the entries: columns key, type,
 * default, range, env (the variable name with env_prefix, NULL = "KTWIN_",
 * or "-"), reloadable, doc. Secret defaults are shown as "<secret>". Meant to
 * generate docs/config.md. Returns KT_OK or the kt_buf error.
 */
kt_status kt_cfg_doc_markdown(const kt_cfg_entry *table, const char *env_prefix, kt_buf *out);

/*
 * Free every KT_CFG_STRING and KT_CFG_STRING_LIST field of cfg and set them
 * to NULL / {0, NULL}. Other fields are left alone. Safe on a zeroed struct
 * and twice in a row. Thread: the struct's owner.
 */
void kt_cfg_free_strings(const kt_cfg_entry *table, void *cfg);

/* Name of a type as shown in docs ("int", "bool", "string", "duration", "size", "list"). */
const char *kt_cfg_type_str(kt_cfg_type type);

#endif
