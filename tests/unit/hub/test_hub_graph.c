/*
 * test_hub_graph.c — the hub's graph authority (hub/graph.c on hub/store.c):
 * apply (created/configured/unchanged), validation that reports every error
 * and changes nothing, deletes refused when dependents remain, revision and
 * change log, notifications, watch-dir style prune, and restart.
 *
 * Each test gets its own temp dir (kept with KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sqlite3.h>

#include "hub/graph.h"
#include "hub/store.h"
#include "kt/buf.h"
#include "kt/mem.h"
#include "model/graph.h"

#define IFACE(name, extra) \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec:\n" extra
#define INSTANCE(name, iface, extra)                                              \
    "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\nspec:\n  interface: " iface "\n" extra

static const char *const city = IFACE(
    "city-neighborhood", "  properties:\n  - name: aqi\n    schema: {primitiveType: string}\n")
    IFACE("city-pole",
          "  relationships:\n  - name: refNeighborhood\n    interface: city-neighborhood\n")
        INSTANCE("nb-1", "city-neighborhood", "") INSTANCE(
            "pole-1",
            "city-pole",
            "  twinInstanceRelationships:\n  - name: refNeighborhood\n    interface: city-neighborhood\n"
            "    instance: nb-1\n");

typedef struct fx {
    char dir[256];
    char db[300];
    hub_store *store;
    hub_graph *g;
    /* notifications */
    int n_notes;
    uint64_t last_rev;
    size_t last_n_changes;
    char last_first[128];
    int last_first_deleted;
    size_t model_instances_at_note;
} fx;

static void on_change(hub_graph *g, uint64_t rev, const hub_change *ch, size_t n, void *user)
{
    fx *f = user;
    f->n_notes++;
    f->last_rev = rev;
    f->last_n_changes = n;
    f->model_instances_at_note = model_n_instances(hub_graph_model(g));
    assert_int_equal(rev, hub_graph_revision(g));
    if (n > 0) {
        snprintf(f->last_first, sizeof f->last_first, "%s/%s", hub_kind_name(ch[0].kind),
                 ch[0].name);
        f->last_first_deleted = ch[0].deleted;
    }
}

static void open_graph(fx *f)
{
    kt_err err = { 0 };
    assert_int_equal(hub_store_open(&f->store, f->db, &err), KT_OK);
    kt_status st = hub_graph_new(&f->g, f->store, &err);
    if (st != KT_OK) {
        fprintf(stderr, "hub_graph_new: %s\n", err.msg);
    }
    assert_int_equal(st, KT_OK);
    hub_graph_subscribe(f->g, on_change, f);
}

static void close_graph(fx *f)
{
    hub_graph_free(f->g);
    hub_store_free(f->store);
    f->g = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/hub-graph-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/hub.db", f->dir);
    open_graph(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    close_graph(f);
    if (getenv("KT_TEST_KEEP") == NULL) {
        char path[400];
        const char *files[] = { "hub.db", "hub.db-wal", "hub.db-shm" };
        for (size_t i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
            (void)unlink(path);
        }
        (void)rmdir(f->dir);
    }
    kt_free(f);
    return 0;
}

static kt_status apply(fx *f, const char *text, hub_apply_result *r)
{
    kt_err err = { 0 };
    hub_apply_result_init(r);
    return hub_graph_apply(f->g, "request", text, strlen(text), r, &err);
}

static hub_op op_of(const hub_apply_result *r, const char *name)
{
    for (size_t i = 0; i < r->n_items; i++) {
        if (strcmp(r->items[i].name, name) == 0) {
            return r->items[i].op;
        }
    }
    fail_msg("%s not in the result", name);
    return HUB_OP_UNCHANGED;
}

static int count_log(const hub_change_row *row, void *user)
{
    (void)row;
    (*(int *)user)++;
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_apply_valid_creates_everything_in_one_revision(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    assert_int_equal(r.revision, 1);
    assert_int_equal(r.n_items, 4);
    assert_int_equal(op_of(&r, "pole-1"), HUB_OP_CREATED);
    assert_int_equal(op_of(&r, "city-pole"), HUB_OP_CREATED);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_int_equal(hub_graph_count(f->g, HUB_KIND_INSTANCE), 2);
    assert_int_equal(hub_graph_count(f->g, 0), 4);
    assert_int_equal(model_n_instances(hub_graph_model(f->g)), 2);
    assert_non_null(model_instance_get(hub_graph_model(f->g), "pole-1"));
    assert_int_equal(f->n_notes, 1);
    assert_int_equal(f->last_n_changes, 4);
    assert_int_equal(f->model_instances_at_note, 2);
    assert_string_equal(f->last_first, "TwinInterface/city-neighborhood");
    size_t len = 0;
    uint64_t rev = 0;
    const char *body = hub_graph_body(f->g, HUB_KIND_INSTANCE, "nb-1", &len, &rev);
    assert_non_null(body);
    assert_int_equal(rev, 1);
    assert_int_equal(strlen(body), len);
    assert_non_null(strstr(body, "\"kind\":\"TwinInstance\""));
    assert_null(hub_graph_body(f->g, HUB_KIND_INTERFACE, "nb-1", NULL, NULL));
    int n = 0;
    kt_err err = { 0 };
    assert_int_equal(hub_graph_changes_since(f->g, 0, count_log, &n, &err), KT_OK);
    assert_int_equal(n, 4);
}

static void test_reapply_is_unchanged_and_bumps_nothing(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    assert_int_equal(apply(f, city, &r), KT_OK);
    assert_int_equal(r.revision, 1);
    for (size_t i = 0; i < r.n_items; i++) {
        assert_int_equal(r.items[i].op, HUB_OP_UNCHANGED);
    }
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_int_equal(f->n_notes, 1);
    /* Same content as JSON is also unchanged (bodies are canonical). */
    const char *json =
        "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\","
        "\"metadata\":{\"name\":\"nb-1\"},\"spec\":{\"interface\":\"city-neighborhood\"}}";
    assert_int_equal(apply(f, json, &r), KT_OK);
    assert_int_equal(op_of(&r, "nb-1"), HUB_OP_UNCHANGED);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
}

static void test_modify_is_configured_with_one_change(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    assert_int_equal(apply(f,
                           INSTANCE("nb-1", "city-neighborhood",
                                    "  data: {properties: [{name: aqi, value: good}]}\n")
                               INSTANCE("nb-2", "city-neighborhood", ""),
                           &r),
                     KT_OK);
    assert_int_equal(r.revision, 2);
    assert_int_equal(op_of(&r, "nb-1"), HUB_OP_CONFIGURED);
    assert_int_equal(op_of(&r, "nb-2"), HUB_OP_CREATED);
    hub_apply_result_fini(&r);
    assert_int_equal(f->n_notes, 2);
    assert_int_equal(f->last_rev, 2);
    assert_int_equal(f->last_n_changes, 2);
    uint64_t rev = 0;
    assert_non_null(hub_graph_body(f->g, HUB_KIND_INSTANCE, "pole-1", NULL, &rev));
    assert_int_equal(rev, 1);
    int n = 0;
    kt_err err = { 0 };
    assert_int_equal(hub_graph_changes_since(f->g, 1, count_log, &n, &err), KT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hub_graph_changes_since(f->g, 5, count_log, &n, &err), KT_ENOTFOUND);
}

static void test_invalid_apply_reports_every_error_and_changes_nothing(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    /* Line 6: unknown field; the second document's instance names a missing interface. */
    const char *bad = "apiVersion: dtd.ktwin/v0\n"
                      "kind: TwinInstance\n"
                      "metadata:\n"
                      "  name: nb-1\n"
                      "spec:\n"
                      "  bogus: 1\n"
                      "  interface: city-neighborhood\n"
                      "---\n"
                      "apiVersion: dtd.ktwin/v0\n"
                      "kind: TwinInstance\n"
                      "metadata:\n"
                      "  name: x-9\n"
                      "spec:\n"
                      "  interface: ghost\n"
                      "---\n"
                      "apiVersion: apps/v1\n"
                      "kind: Deployment\n"
                      "metadata: {name: d}\n";
    assert_int_equal(apply(f, bad, &r), KT_EINVAL);
    if (r.diag.n_errors != 3) {
        model_diag_print(&r.diag, stderr);
    }
    assert_int_equal(r.diag.n_errors, 3);
    assert_int_equal(model_diag_count(&r.diag, "unknown-field"), 1);
    assert_int_equal(model_diag_count(&r.diag, "instance-interface-unknown"), 1);
    assert_int_equal(model_diag_count(&r.diag, "unsupported-kind"), 1);
    for (size_t i = 0; i < r.diag.n; i++) {
        const model_diag_entry *e = &r.diag.entries[i];
        if (e->severity != MODEL_DIAG_ERROR) {
            continue;
        }
        assert_string_equal(e->file, "request");
        if (strcmp(e->code, "unknown-field") == 0) {
            assert_int_equal(e->line, 6);
        }
    }
    assert_int_equal(r.n_items, 0);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_null(hub_graph_body(f->g, HUB_KIND_INSTANCE, "x-9", NULL, NULL));
    assert_int_equal(f->n_notes, 1);
    /* A YAML syntax error is reported with its line too. */
    assert_int_equal(apply(f, "apiVersion: dtd.ktwin/v0\nkind: [TwinInterface\n", &r), KT_EINVAL);
    assert_int_equal(model_diag_count(&r.diag, "syntax"), 1);
    hub_apply_result_fini(&r);
}

static void test_delete_with_dependents_is_refused(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    kt_err err = { 0 };
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INTERFACE, "city-pole", &r, &err), KT_EINVAL);
    assert_true(r.diag.n_errors >= 1);
    assert_string_equal(r.diag.entries[0].file, "TwinInstance/pole-1");
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_non_null(hub_graph_body(f->g, HUB_KIND_INTERFACE, "city-pole", NULL, NULL));

    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "pole-1", &r, &err), KT_OK);
    assert_int_equal(r.revision, 2);
    hub_apply_result_fini(&r);
    assert_int_equal(f->last_first_deleted, 1);
    assert_string_equal(f->last_first, "TwinInstance/pole-1");
    assert_int_equal(f->model_instances_at_note, 1);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INTERFACE, "city-pole", &r, &err), KT_OK);
    hub_apply_result_fini(&r);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "pole-1", &r, &err), KT_ENOTFOUND);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 3);
}

static void test_restart_keeps_graph_revision_and_log(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    assert_int_equal(apply(f, INSTANCE("nb-2", "city-neighborhood", ""), &r), KT_OK);
    hub_apply_result_fini(&r);
    kt_buf before;
    kt_buf_init(&before, 1 << 20);
    const char *b = hub_graph_body(f->g, HUB_KIND_INSTANCE, "pole-1", NULL, NULL);
    assert_int_equal(kt_buf_puts(&before, b), KT_OK);
    close_graph(f);
    open_graph(f);
    assert_int_equal(hub_graph_revision(f->g), 2);
    assert_int_equal(hub_graph_count(f->g, 0), 5);
    assert_int_equal(model_n_instances(hub_graph_model(f->g)), 3);
    assert_string_equal(hub_graph_body(f->g, HUB_KIND_INSTANCE, "pole-1", NULL, NULL), before.data);
    kt_buf_fini(&before);
    int n = 0;
    kt_err err = { 0 };
    assert_int_equal(hub_graph_changes_since(f->g, 1, count_log, &n, &err), KT_OK);
    assert_int_equal(n, 1);
    /* And it keeps working after the restart. */
    assert_int_equal(apply(f, INSTANCE("nb-3", "city-neighborhood", ""), &r), KT_OK);
    assert_int_equal(r.revision, 3);
    hub_apply_result_fini(&r);
}

static void test_prune_deletes_only_missing_objects_of_the_source(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    kt_err err = { 0 };
    assert_int_equal(apply(f, IFACE("city-neighborhood", ""), &r), KT_OK); /* source api */
    hub_apply_result_fini(&r);
    hub_apply_opts opts = { "watchdir", 1 };
    const char *a = INSTANCE("nb-1", "city-neighborhood", "");
    const char *b = INSTANCE("nb-2", "city-neighborhood", "");
    hub_apply_input in[2] = { { "dir/a.yaml", a, strlen(a) }, { "dir/b.yaml", b, strlen(b) } };
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_apply_batch(f->g, in, 2, &opts, &r, &err), KT_OK);
    assert_int_equal(r.revision, 2);
    hub_apply_result_fini(&r);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_apply_batch(f->g, in, 1, &opts, &r, &err), KT_OK);
    assert_int_equal(r.revision, 3);
    assert_int_equal(op_of(&r, "nb-2"), HUB_OP_DELETED);
    assert_int_equal(op_of(&r, "nb-1"), HUB_OP_UNCHANGED);
    hub_apply_result_fini(&r);
    assert_null(hub_graph_body(f->g, HUB_KIND_INSTANCE, "nb-2", NULL, NULL));
    /* The interface came from the API and stays. */
    assert_non_null(hub_graph_body(f->g, HUB_KIND_INTERFACE, "city-neighborhood", NULL, NULL));
    /* An empty dir removes every watchdir object but not the API ones. */
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_apply_batch(f->g, NULL, 0, &opts, &r, &err), KT_OK);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_count(f->g, HUB_KIND_INSTANCE), 0);
    assert_int_equal(hub_graph_count(f->g, HUB_KIND_INTERFACE), 1);
}

static void test_duplicate_in_one_request_is_an_error(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    /* Both copies equal the stored body: the fast path must not hide the duplicate. */
    assert_int_equal(apply(f,
                           INSTANCE("nb-1", "city-neighborhood", "")
                               INSTANCE("nb-1", "city-neighborhood", ""),
                           &r),
                     KT_EINVAL);
    assert_int_equal(model_diag_count(&r.diag, "duplicate-name"), 1);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
}

static void test_database_failure_changes_nothing(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    /* Another connection holds the write lock: our BEGIN IMMEDIATE fails (no busy wait). */
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    kt_err err = { 0 };
    hub_apply_result_init(&r);
    const char *text = INSTANCE("nb-2", "city-neighborhood", "");
    assert_int_equal(hub_graph_apply(f->g, "request", text, strlen(text), &r, &err), KT_EDEP);
    assert_string_equal(err.dep, "sqlite");
    hub_apply_result_fini(&r);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "pole-1", &r, &err), KT_EDEP);
    hub_apply_result_fini(&r);
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_null(hub_graph_body(f->g, HUB_KIND_INSTANCE, "nb-2", NULL, NULL));
    assert_non_null(hub_graph_body(f->g, HUB_KIND_INSTANCE, "pole-1", NULL, NULL));
    assert_int_equal(model_n_instances(hub_graph_model(f->g)), 2);
    assert_int_equal(f->n_notes, 1);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* And it works again once the lock is gone. */
    assert_int_equal(apply(f, text, &r), KT_OK);
    assert_int_equal(r.revision, 2);
    hub_apply_result_fini(&r);
}

/* The current model equals the one a restart builds from the store. */
static void assert_model_equals_rebuild(fx *f)
{
    hub_graph *fresh = NULL;
    kt_err err = { 0 };
    assert_int_equal(hub_graph_new(&fresh, f->store, &err), KT_OK);
    const model *a = hub_graph_model(f->g);
    const model *b = hub_graph_model(fresh);
    assert_int_equal(model_n_instances(a), model_n_instances(b));
    assert_int_equal(model_n_ifaces(a), model_n_ifaces(b));
    for (size_t i = 0; i < model_n_instances(a); i++) {
        const model_instance *x = model_instance_at(a, i);
        const model_instance *y = model_instance_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->iface_name, y->iface_name);
        assert_ptr_equal(x->iface, model_iface_get(a, x->iface_name));
        assert_true((x->site == NULL) == (y->site == NULL));
        if (x->site != NULL) {
            assert_string_equal(x->site, y->site);
        }
        assert_int_equal(x->n_labels, y->n_labels);
        for (uint32_t l = 0; l < x->n_labels; l++) {
            assert_string_equal(x->labels[l].key, y->labels[l].key);
            assert_string_equal(x->labels[l].value, y->labels[l].value);
            assert_ptr_equal(x->labels[l].key, model_intern((model *)a, y->labels[l].key));
        }
        assert_true((x->extra_json == NULL) == (y->extra_json == NULL));
        if (x->extra_json != NULL) {
            assert_string_equal(x->extra_json, y->extra_json);
        }
        assert_int_equal(x->n_rels, y->n_rels);
        for (uint32_t r = 0; r < x->n_rels; r++) {
            assert_string_equal(x->rels[r].name, y->rels[r].name);
            assert_string_equal(x->rels[r].target, y->rels[r].target);
            assert_true((x->rels[r].target_inst == NULL) == (y->rels[r].target_inst == NULL));
        }
        assert_int_equal(x->n_in, y->n_in);
    }
    for (size_t i = 0; i < model_n_ifaces(a); i++) {
        const model_iface *x = model_iface_at(a, i);
        const model_iface *y = model_iface_get(b, x->name);
        assert_non_null(y);
        assert_int_equal(x->n_instances, y->n_instances);
    }
    kt_buf ja;
    kt_buf jb;
    kt_buf_init(&ja, 1 << 24);
    kt_buf_init(&jb, 1 << 24);
    assert_int_equal(model_graph_to_json(a, NULL, &ja), KT_OK);
    assert_int_equal(model_graph_to_json(b, NULL, &jb), KT_OK);
    assert_int_equal(ja.len, jb.len);
    assert_memory_equal(ja.data, jb.data, ja.len);
    kt_buf_fini(&ja);
    kt_buf_fini(&jb);
    hub_graph_free(fresh);
}

static void test_instance_changes_reuse_the_model_and_equal_a_rebuild(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    kt_err err = { 0 };
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    assert_model_equals_rebuild(f);
    /* labels (the site label too), data, a new instance pointing at an old one */
    assert_int_equal(apply(f,
                           "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: nb-1\n"
                           "  labels: {ktwin.io/site: s1, zone: north}\n"
                           "spec:\n  interface: city-neighborhood\n"
                           "  data: {properties: [{name: aqi, value: good}]}\n" INSTANCE(
                               "pole-2", "city-pole",
                               "  twinInstanceRelationships:\n  - name: refNeighborhood\n"
                               "    interface: city-neighborhood\n    instance: nb-1\n"),
                           &r),
                     KT_OK);
    hub_apply_result_fini(&r);
    assert_string_equal(model_instance_get(hub_graph_model(f->g), "nb-1")->site, "s1");
    assert_int_equal(model_instance_get(hub_graph_model(f->g), "nb-1")->n_in, 2);
    assert_model_equals_rebuild(f);
    /* a relationship dropped */
    assert_int_equal(apply(f, INSTANCE("pole-1", "city-pole", ""), &r), KT_OK);
    hub_apply_result_fini(&r);
    assert_int_equal(model_instance_get(hub_graph_model(f->g), "nb-1")->n_in, 1);
    assert_model_equals_rebuild(f);
    /* an instance change that breaks a reference is refused with its line */
    assert_int_equal(
        apply(f,
              "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: pole-9}\n"
              "spec:\n  interface: city-pole\n  twinInstanceRelationships:\n"
              "  - {name: refNeighborhood, interface: city-neighborhood, instance: nb-7}\n",
              &r),
        KT_EINVAL);
    assert_int_equal(model_diag_count(&r.diag, "instance-target-unknown"), 1);
    assert_string_equal(r.diag.entries[0].file, "request");
    assert_int_equal(r.diag.entries[0].line, 7);
    hub_apply_result_fini(&r);
    /* deletes: refused while pointed at (named), fine otherwise */
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "nb-1", &r, &err), KT_EINVAL);
    assert_string_equal(r.diag.entries[0].file, "TwinInstance/pole-2");
    hub_apply_result_fini(&r);
    hub_apply_result_init(&r);
    assert_int_equal(hub_graph_delete(f->g, HUB_KIND_INSTANCE, "pole-2", &r, &err), KT_OK);
    hub_apply_result_fini(&r);
    assert_model_equals_rebuild(f);
    assert_int_equal(hub_graph_revision(f->g), 4);
    uint64_t reuse = 0;
    uint64_t full = 0;
    hub_graph_builds(f->g, &reuse, &full);
    /* city: full; two instance applies, the refused one, two deletes: reuse */
    assert_int_equal(reuse, 5);
    /* the refused apply and the refused delete name their errors through a full pass */
    assert_int_equal(full, 2);
}

static int collect_names(const hub_object_view *o, void *user)
{
    kt_buf *b = user;
    (void)kt_buf_printf(b, "%d:%s,", (int)o->kind, o->name);
    return 0;
}

static void test_foreach_is_ordered_by_kind_then_name(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    assert_int_equal(apply(f, city, &r), KT_OK);
    hub_apply_result_fini(&r);
    kt_buf b;
    kt_buf_init(&b, 4096);
    assert_int_equal(hub_graph_foreach(f->g, 0, collect_names, &b), 0);
    assert_string_equal(b.data, "1:city-neighborhood,1:city-pole,2:nb-1,2:pole-1,");
    kt_buf_reset(&b);
    assert_int_equal(hub_graph_foreach(f->g, HUB_KIND_INSTANCE, collect_names, &b), 0);
    assert_int_equal(kt_buf_putc(&b, '\0'), KT_OK);
    assert_string_equal(b.data, "2:nb-1,2:pole-1,");
    kt_buf_fini(&b);
    assert_int_equal(hub_kind_parse("twininstances"), HUB_KIND_INSTANCE);
    assert_int_equal(hub_kind_parse("PlacementPolicy"), HUB_KIND_POLICY);
    assert_int_equal(hub_kind_parse("pods"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_valid_creates_everything_in_one_revision, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reapply_is_unchanged_and_bumps_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_modify_is_configured_with_one_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_apply_reports_every_error_and_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_with_dependents_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_graph_revision_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_deletes_only_missing_objects_of_the_source,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_is_ordered_by_kind_then_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_in_one_request_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_failure_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_changes_reuse_the_model_and_equal_a_rebuild,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
