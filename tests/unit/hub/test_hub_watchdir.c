/*
 * test_hub_watchdir.c — --watch-dir: initial reconcile, add / modify /
 * remove a file (inotify + debounce on a real loop), a subdirectory,
 * invalid content keeps the last good state, API objects are never pruned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hub/graph.h"
#include "hub/store.h"
#include "hub/watchdir.h"
#include "hub_test_util.h"
#include "kt/mem.h"
#include "kt/metrics.h"

#define IFACE(name) \
    "apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata:\n  name: " name "\nspec: {}\n"
#define INST(name, iface)                                                    \
    "apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: " name \
    "\nspec:\n  interface: " iface "\n"

typedef struct fx {
    char dir[256];
    char crds[300];
    uv_loop_t loop;
    hub_store *store;
    hub_graph *g;
    hub_watchdir *w;
    kt_metrics *metrics;
    uint64_t want_reconciles;
} fx;

static void path_in(const fx *f, char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", f->crds, name);
}

static void put(const fx *f, const char *name, const char *text)
{
    char p[512];
    path_in(f, p, sizeof p, name);
    assert_int_equal(tu_write_file(p, text), 0);
}

static int reconciled(void *user)
{
    fx *f = user;
    return hub_watchdir_reconciles(f->w) >= f->want_reconciles;
}

static void wait_reconcile(fx *f)
{
    f->want_reconciles = hub_watchdir_reconciles(f->w) + 1;
    assert_true(tu_run_until(&f->loop, reconciled, f, 10000));
}

static int has(const fx *f, hub_kind kind, const char *name)
{
    return hub_graph_body(f->g, kind, name, NULL, NULL) != NULL;
}

static int setup(void **state)
{
    fx *f = kt_xcalloc(1, sizeof *f);
    tu_mkdtemp(f->dir, sizeof f->dir, "hub-watch");
    snprintf(f->crds, sizeof f->crds, "%s/crds", f->dir);
    if (f->dir[0] == '\0' || mkdir(f->crds, 0700) != 0) {
        return -1;
    }
    char db[400];
    snprintf(db, sizeof db, "%s/hub.db", f->dir);
    kt_err err = { 0 };
    if (uv_loop_init(&f->loop) != 0 || hub_store_open(&f->store, db, &err) != KT_OK ||
        hub_graph_new(&f->g, f->store, &err) != KT_OK) {
        return -1;
    }
    f->metrics = kt_metrics_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    hub_watchdir_free(f->w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    hub_graph_free(f->g);
    hub_store_free(f->store);
    kt_metrics_free(f->metrics);
    tu_rmtree(f->dir);
    kt_free(f);
    return 0;
}

static void start(fx *f)
{
    kt_err err = { 0 };
    assert_int_equal(hub_watchdir_new(&f->w, &f->loop, f->g, f->crds, 50, f->metrics, &err), KT_OK);
}

static void test_reconciles_at_start_and_on_add_modify_remove(void **state)
{
    fx *f = *state;
    put(f, "ifaces.yaml", IFACE("city-pole") "---\n" IFACE("city-neighborhood"));
    put(f, "a.yaml", INST("pole-1", "city-pole"));
    put(f, "ignored.txt", "not yaml at all: [");
    start(f);
    assert_int_equal(hub_watchdir_reconciles(f->w), 1);
    assert_true(has(f, HUB_KIND_INSTANCE, "pole-1"));
    assert_int_equal(hub_graph_revision(f->g), 1);

    /* add */
    put(f, "b.json",
        "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"nb-1\"},"
        "\"spec\":{\"interface\":\"city-neighborhood\"}}");
    wait_reconcile(f);
    while (!has(f, HUB_KIND_INSTANCE, "nb-1")) {
        wait_reconcile(f); /* an event may have fired before the file was complete */
    }
    uint64_t rev = hub_graph_revision(f->g);

    /* modify: pole-1 moves to another interface-compatible spec (labels) */
    put(f, "a.yaml", INST("pole-1", "city-pole") "  \n---\n" INST("pole-2", "city-pole"));
    while (!has(f, HUB_KIND_INSTANCE, "pole-2")) {
        wait_reconcile(f);
    }
    assert_true(hub_graph_revision(f->g) > rev);

    /* a subdirectory created later is watched too */
    char sub[512];
    path_in(f, sub, sizeof sub, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    wait_reconcile(f);
    put(f, "sub/c.yml", INST("pole-3", "city-pole"));
    while (!has(f, HUB_KIND_INSTANCE, "pole-3")) {
        wait_reconcile(f);
    }

    /* remove: its objects are deleted */
    char p[512];
    path_in(f, p, sizeof p, "a.yaml");
    assert_int_equal(unlink(p), 0);
    while (has(f, HUB_KIND_INSTANCE, "pole-1")) {
        wait_reconcile(f);
    }
    assert_false(has(f, HUB_KIND_INSTANCE, "pole-2"));
    assert_true(has(f, HUB_KIND_INSTANCE, "pole-3"));
    assert_true(has(f, HUB_KIND_INTERFACE, "city-pole"));
}

static void test_invalid_content_keeps_last_good_state(void **state)
{
    fx *f = *state;
    put(f, "ifaces.yaml", IFACE("city-pole"));
    put(f, "a.yaml", INST("pole-1", "city-pole"));
    start(f);
    assert_int_equal(hub_graph_revision(f->g), 1);
    /* An instance of an unknown interface, and an unknown field: nothing applies. */
    put(f, "a.yaml", INST("pole-1", "city-pole") "  bogus: 1\n---\n" INST("x-1", "ghost"));
    kt_metric *invalid = kt_metrics_find(f->metrics, "ktwin_hub_watchdir_reconcile_total",
                                         (const char *[]){ "result", "invalid", NULL });
    assert_non_null(invalid);
    while (kt_metrics_value(invalid) < 1) {
        wait_reconcile(f);
    }
    assert_int_equal(hub_graph_revision(f->g), 1);
    assert_false(has(f, HUB_KIND_INSTANCE, "x-1"));
    assert_true(has(f, HUB_KIND_INSTANCE, "pole-1"));
    /* Fixing the file applies again. */
    put(f, "a.yaml", INST("pole-1", "city-pole") "---\n" INST("pole-9", "city-pole"));
    while (!has(f, HUB_KIND_INSTANCE, "pole-9")) {
        wait_reconcile(f);
    }
}

static void test_api_objects_are_not_pruned(void **state)
{
    fx *f = *state;
    hub_apply_result r;
    hub_apply_result_init(&r);
    kt_err err = { 0 };
    const char *text = IFACE("city-pole") "---\n" INST("api-pole", "city-pole");
    assert_int_equal(hub_graph_apply(f->g, "request", text, strlen(text), &r, &err), KT_OK);
    hub_apply_result_fini(&r);
    put(f, "a.yaml", INST("dir-pole", "city-pole"));
    start(f);
    assert_true(has(f, HUB_KIND_INSTANCE, "dir-pole"));
    char p[512];
    path_in(f, p, sizeof p, "a.yaml");
    assert_int_equal(unlink(p), 0);
    while (has(f, HUB_KIND_INSTANCE, "dir-pole")) {
        wait_reconcile(f);
    }
    assert_true(has(f, HUB_KIND_INSTANCE, "api-pole"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reconciles_at_start_and_on_add_modify_remove, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invalid_content_keeps_last_good_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_api_objects_are_not_pruned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
