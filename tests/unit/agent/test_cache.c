/*
 * test_cache.c — agent/cache and agent/view: snapshots, deltas and placement
 * persist across reopen; an aborted snapshot leaves the previous contents; a
 * delta from the wrong revision changes nothing; a corrupt file is moved
 * aside (with its -wal/-shm), logged as CACHE-CORRUPT and replaced by an
 * empty cache with a new incarnation; a process SIGKILLed in the middle of a
 * snapshot leaves the previous contents; the view serves KTWIN's graph JSON
 * with relationship targets outside the subgraph kept as declared.
 *
 * Each test gets its own temporary directory (kept when KT_TEST_KEEP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "kt/buf.h"
#include "kt/log.h"
#include "kt/mem.h"
#include "model/graph.h"
#include "view.h"

/* ---- temporary directory ---------------------------------------------------- */

typedef struct fixture {
    char dir[256];
    char db[300];
} fixture;

static int setup(void **state)
{
    fixture *f = kt_xcalloc(1, sizeof *f);
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof f->dir, "%s/kt_test_agent_cache.XXXXXX",
                   base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        kt_free(f);
        return -1;
    }
    (void)snprintf(f->db, sizeof f->db, "%s/agent.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    const char *keep = getenv("KT_TEST_KEEP");
    if (keep == NULL || strcmp(keep, "1") != 0) {
        DIR *d = opendir(f->dir);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char p[600];
            (void)snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        if (d != NULL) {
            closedir(d);
        }
        rmdir(f->dir);
    }
    kt_free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static agent_cache *open_ok(const fixture *f)
{
    agent_cache *c = NULL;
    kt_err err = { 0 };
    kt_status st = agent_cache_open(&c, f->db, &err);
    if (st != KT_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
    }
    assert_int_equal(st, KT_OK);
    assert_non_null(c);
    return c;
}

static agent_cache_object obj(const char *kind, const char *name, const char *body, uint64_t rev)
{
    agent_cache_object o = { kind, name, body, body != NULL ? strlen(body) : 0, rev, 0 };
    return o;
}

typedef struct seen {
    char names[64][64];
    char bodies[64][512];
    size_t n;
} seen;

static int collect(const agent_cache_object *o, void *user)
{
    seen *s = user;
    if (s->n < 64) {
        (void)snprintf(s->names[s->n], sizeof s->names[0], "%s/%s", o->kind, o->name);
        (void)snprintf(s->bodies[s->n], sizeof s->bodies[0], "%s", o->body);
        s->n++;
    }
    return 0;
}

static seen list_all(agent_cache *c)
{
    seen s;
    memset(&s, 0, sizeof s);
    kt_err err = { 0 };
    assert_int_equal(agent_cache_foreach_object(c, NULL, collect, &s, &err), KT_OK);
    return s;
}

#define IFACE_DOC(name)                                                                          \
    "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInterface\",\"metadata\":{\"name\":\"" name \
    "\"},\"spec\":{\"relationships\":[{\"name\":\"refHood\",\"interface\":\"hood\"}]}}"
#define HOOD_DOC                                                                                    \
    "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInterface\",\"metadata\":{\"name\":\"hood\"}," \
    "\"spec\":{}}"
#define INST_DOC(name, iface, rels)                                                             \
    "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"" name \
    "\"},\"spec\":{\"interface\":\"" iface "\"" rels "}}"
#define REL_TO(target)                                                                                    \
    ",\"twinInstanceRelationships\":[{\"name\":\"refHood\",\"interface\":\"hood\",\"instance\":\"" target \
    "\"}]"

static void put_snapshot(agent_cache *c, uint64_t rev, const agent_cache_object *objs, size_t n)
{
    kt_err err = { 0 };
    assert_int_equal(agent_cache_snapshot_begin(c, rev, &err), KT_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(agent_cache_snapshot_put(c, &objs[i], &err), KT_OK);
    }
    assert_int_equal(agent_cache_snapshot_commit(c, &err), KT_OK);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_new_cache_is_empty_with_an_incarnation(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    assert_int_equal(agent_cache_graph_revision(c), 0);
    assert_int_equal(agent_cache_placement_revision(c), 0);
    assert_int_equal(strlen(agent_cache_incarnation(c)), 32);
    assert_null(agent_cache_moved_aside(c));
    assert_int_equal(agent_cache_count(c, NULL), 0);
    char inc[33];
    (void)snprintf(inc, sizeof inc, "%s", agent_cache_incarnation(c));
    agent_cache_free(c);
    c = open_ok(f);
    assert_string_equal(agent_cache_incarnation(c), inc); /* kept with the file */
    agent_cache_free(c);
}

static void test_snapshot_persists_across_reopen(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_cache_object objs[] = {
        obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 3),
        obj(AGENT_KIND_INTERFACE, "pole", IFACE_DOC("pole"), 4),
        obj(AGENT_KIND_INSTANCE, "hood-1", INST_DOC("hood-1", "hood", ""), 5),
        obj(AGENT_KIND_INSTANCE, "pole-1", INST_DOC("pole-1", "pole", REL_TO("hood-1")), 7),
    };
    put_snapshot(c, 7, objs, 4);
    assert_int_equal(agent_cache_graph_revision(c), 7);
    assert_int_equal(agent_cache_count(c, AGENT_KIND_INSTANCE), 2);
    assert_int_equal(agent_cache_count(c, AGENT_KIND_INTERFACE), 2);
    agent_cache_free(c);

    c = open_ok(f);
    assert_int_equal(agent_cache_graph_revision(c), 7);
    assert_int_equal(agent_cache_count(c, NULL), 4);
    seen s = list_all(c);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.names[0], "TwinInstance/hood-1");
    assert_string_equal(s.names[3], "TwinInterface/pole");
    assert_string_equal(s.bodies[3], IFACE_DOC("pole"));

    /* A second snapshot replaces everything, it does not merge. */
    agent_cache_object again[] = { obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 9) };
    put_snapshot(c, 9, again, 1);
    s = list_all(c);
    assert_int_equal(s.n, 1);
    assert_int_equal(agent_cache_count(c, AGENT_KIND_INSTANCE), 0);
    agent_cache_free(c);
}

static void test_aborted_snapshot_keeps_previous_contents(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_cache_object objs[] = { obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 2) };
    put_snapshot(c, 2, objs, 1);
    uint64_t gen = agent_cache_generation(c);

    kt_err err = { 0 };
    assert_int_equal(agent_cache_snapshot_begin(c, 10, &err), KT_OK);
    agent_cache_object o = obj(AGENT_KIND_INTERFACE, "pole", IFACE_DOC("pole"), 10);
    assert_int_equal(agent_cache_snapshot_put(c, &o, &err), KT_OK);
    assert_true(agent_cache_in_snapshot(c));
    /* Readers never see uncommitted rows. */
    seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(agent_cache_foreach_object(c, NULL, collect, &s, &err), KT_EAGAIN);
    agent_cache_snapshot_abort(c);
    assert_false(agent_cache_in_snapshot(c));
    assert_int_equal(agent_cache_graph_revision(c), 2);
    assert_int_equal(agent_cache_generation(c), gen);
    s = list_all(c);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "TwinInterface/hood");

    /* A snapshot still open when the cache is closed is rolled back too. */
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_snapshot_begin(c, 11, &err), KT_OK);
    assert_int_equal(agent_cache_snapshot_put(c, &o, &err), KT_OK);
    agent_cache_free(c);
    c = open_ok(f);
    assert_int_equal(agent_cache_graph_revision(c), 2);
    s = list_all(c);
    assert_int_equal(s.n, 1);
    agent_cache_free(c);
}

static void test_process_killed_mid_snapshot_keeps_previous_contents(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_cache_object objs[] = { obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 4) };
    put_snapshot(c, 4, objs, 1);
    agent_cache_free(c);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child writes most of a big snapshot, then dies without commit or rollback. */
        agent_cache *cc = NULL;
        if (agent_cache_open(&cc, f->db, NULL) != KT_OK ||
            agent_cache_snapshot_begin(cc, 99, NULL) != KT_OK) {
            _exit(3);
        }
        char body[2000];
        memset(body, 'y', sizeof body - 1);
        body[sizeof body - 1] = '\0';
        for (int i = 0; i < 3000; i++) {
            char name[32];
            (void)snprintf(name, sizeof name, "killed-%04d", i);
            agent_cache_object o = obj(AGENT_KIND_INSTANCE, name, body, 99);
            if (agent_cache_snapshot_put(cc, &o, NULL) != KT_OK) {
                _exit(4);
            }
        }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    c = open_ok(f);
    assert_null(agent_cache_moved_aside(c)); /* not corrupt: SQLite rolled the journal back */
    assert_int_equal(agent_cache_graph_revision(c), 4);
    seen s = list_all(c);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "TwinInterface/hood");
    agent_cache_free(c);
}

static void test_delta_applies_atomically_and_persists(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_cache_object objs[] = {
        obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 1),
        obj(AGENT_KIND_INSTANCE, "hood-1", INST_DOC("hood-1", "hood", ""), 1),
        obj(AGENT_KIND_INSTANCE, "hood-2", INST_DOC("hood-2", "hood", ""), 1),
    };
    put_snapshot(c, 5, objs, 3);
    kt_err err = { 0 };

    agent_cache_object d[] = {
        obj(AGENT_KIND_INSTANCE, "hood-3", INST_DOC("hood-3", "hood", ""), 6),
        obj(AGENT_KIND_INSTANCE, "hood-2", NULL, 6),
    };
    d[1].deleted = 1;
    /* From the wrong revision: refused, nothing changes. */
    assert_int_equal(agent_cache_delta_apply(c, 4, 6, d, 2, &err), KT_ECONFLICT);
    assert_int_equal(agent_cache_graph_revision(c), 5);
    assert_int_equal(list_all(c).n, 3);

    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_delta_apply(c, 5, 6, d, 2, &err), KT_OK);
    assert_int_equal(agent_cache_graph_revision(c), 6);
    /* An empty delta only advances the revision. */
    uint64_t gen = agent_cache_generation(c);
    assert_int_equal(agent_cache_delta_apply(c, 6, 8, NULL, 0, &err), KT_OK);
    assert_int_equal(agent_cache_graph_revision(c), 8);
    assert_int_equal(agent_cache_generation(c), gen);
    agent_cache_free(c);

    c = open_ok(f);
    assert_int_equal(agent_cache_graph_revision(c), 8);
    seen s = list_all(c);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "TwinInstance/hood-1");
    assert_string_equal(s.names[1], "TwinInstance/hood-3");
    assert_string_equal(s.names[2], "TwinInterface/hood");

    /* A delta that fails half-way (an object without a body) leaves nothing behind. */
    agent_cache_object bad[] = {
        obj(AGENT_KIND_INSTANCE, "hood-9", INST_DOC("hood-9", "hood", ""), 9),
        obj(AGENT_KIND_INSTANCE, "hood-10", NULL, 9),
    };
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_delta_apply(c, 8, 9, bad, 2, &err), KT_EINVAL);
    assert_int_equal(agent_cache_graph_revision(c), 8);
    assert_int_equal(list_all(c).n, 3);
    agent_cache_free(c);
}

typedef struct places {
    char rows[8][256];
    size_t n;
} places;

static int collect_place(const agent_cache_placement *p, void *user)
{
    places *s = user;
    if (s->n < 8) {
        (void)snprintf(s->rows[s->n], sizeof s->rows[0], "%s %s %s %s %s", p->interface, p->where,
                       p->site != NULL ? p->site : "-", p->rule != NULL ? p->rule : "-",
                       p->reason != NULL ? p->reason : "-");
        s->n++;
    }
    return 0;
}

static void test_placement_replaces_and_persists(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    kt_err err = { 0 };
    agent_cache_placement p1[] = {
        { "pole", "edge", NULL, "city/r1", "matched" },
        { "hood", "cloud", NULL, NULL, NULL },
        { "light", "other-site", "site-b", "city/r2", "full" },
    };
    assert_int_equal(agent_cache_placement_apply(c, 3, p1, 3, &err), KT_OK);
    agent_cache_placement p2[] = { { "pole", "cloud", NULL, "city/r9", "moved" } };
    assert_int_equal(agent_cache_placement_apply(c, 4, p2, 1, &err), KT_OK);
    agent_cache_free(c);

    c = open_ok(f);
    assert_int_equal(agent_cache_placement_revision(c), 4);
    places s;
    memset(&s, 0, sizeof s);
    assert_int_equal(agent_cache_foreach_placement(c, collect_place, &s, &err), KT_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.rows[0], "pole cloud - city/r9 moved");

    agent_view *v = agent_view_new(c);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    assert_int_equal(agent_view_placement_json(v, "site-a", &out, &err), KT_OK);
    assert_string_equal(out.data,
                        "{\"site\":\"site-a\",\"revision\":4,\"interfaces\":[{\"interface\":"
                        "\"pole\",\"where\":\"cloud\",\"site\":null,\"rule\":\"city/r9\","
                        "\"reason\":\"moved\"}]}");
    kt_buf_fini(&out);
    agent_view_free(v);
    agent_cache_free(c);
}

/* Log capture for CACHE-CORRUPT. */
static char log_text[8192];
static size_t log_len;

static void capture(kt_log_level level, const char *line, size_t len, void *user)
{
    (void)level;
    (void)user;
    if (log_len + len < sizeof log_text) {
        memcpy(log_text + log_len, line, len);
        log_len += len;
        log_text[log_len] = '\0';
    }
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void find_moved(const fixture *f, char *out, size_t cap)
{
    out[0] = '\0';
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "agent.db.corrupt-", 17) == 0 && strstr(e->d_name, "-wal") == NULL &&
            strstr(e->d_name, "-shm") == NULL) {
            (void)snprintf(out, cap, "%s/%s", f->dir, e->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

static void test_corrupt_cache_is_moved_aside_and_started_empty(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    char inc[33];
    (void)snprintf(inc, sizeof inc, "%s", agent_cache_incarnation(c));
    /* Enough rows for a few hundred pages, so the middle of the file is b-tree pages. */
    kt_err err = { 0 };
    assert_int_equal(agent_cache_snapshot_begin(c, 42, &err), KT_OK);
    char body[1200];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < 600; i++) {
        char name[32];
        (void)snprintf(name, sizeof name, "inst-%04d", i);
        agent_cache_object o = obj(AGENT_KIND_INSTANCE, name, body, 42);
        assert_int_equal(agent_cache_snapshot_put(c, &o, &err), KT_OK);
    }
    assert_int_equal(agent_cache_snapshot_commit(c, &err), KT_OK);
    agent_cache_free(c); /* the last close checkpoints the WAL into the file */

    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_true(sb.st_size > 100 * 4096);
    int fd = open(f->db, O_WRONLY);
    assert_true(fd >= 0);
    char junk[4096 * 8];
    memset(junk, 0xa5, sizeof junk);
    off_t mid = (off_t)((sb.st_size / 2) / 4096 * 4096);
    assert_int_equal(pwrite(fd, junk, sizeof junk, mid), (ssize_t)sizeof junk);
    close(fd);
    /* A stale -wal beside it must go with it. */
    char wal[400];
    (void)snprintf(wal, sizeof wal, "%s-wal", f->db);
    fd = open(wal, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    close(fd);

    log_len = 0;
    log_text[0] = '\0';
    kt_log_set_sink(capture, NULL);
    c = open_ok(f);
    kt_log_set_sink(NULL, NULL);
    assert_non_null(strstr(log_text, "id=CACHE-CORRUPT"));
    assert_non_null(agent_cache_moved_aside(c));
    assert_int_equal(agent_cache_graph_revision(c), 0);
    assert_int_equal(agent_cache_count(c, NULL), 0);
    assert_string_not_equal(agent_cache_incarnation(c), inc); /* a new store, a new incarnation */
    char moved[600];
    find_moved(f, moved, sizeof moved);
    assert_string_equal(moved, agent_cache_moved_aside(c));
    assert_true(file_exists(moved));
    char moved_wal[700];
    (void)snprintf(moved_wal, sizeof moved_wal, "%s-wal", moved);
    assert_true(file_exists(moved_wal));
    agent_cache_free(c);

    /* The fresh cache is healthy: reopening moves nothing. */
    c = open_ok(f);
    assert_null(agent_cache_moved_aside(c));
    agent_cache_free(c);
}

static void test_file_that_is_not_a_database_is_moved_aside(void **state)
{
    fixture *f = *state;
    int fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 'Z', sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    kt_log_set_sink(capture, NULL);
    agent_cache *c = open_ok(f);
    kt_log_set_sink(NULL, NULL);
    assert_non_null(agent_cache_moved_aside(c));
    assert_int_equal(agent_cache_graph_revision(c), 0);
    agent_cache_free(c);
}

/* Snapshot revision 1: interfaces hood and pole, and pole-1 related to hood-far (not here). */
static void put_pole_graph(agent_cache *c)
{
    agent_cache_object objs[] = {
        obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 1),
        obj(AGENT_KIND_INTERFACE, "pole", IFACE_DOC("pole"), 1),
        obj(AGENT_KIND_INSTANCE, "pole-1", INST_DOC("pole-1", "pole", REL_TO("hood-far")), 1),
    };
    put_snapshot(c, 1, objs, 3);
}
static void test_view_serves_graph_with_targets_outside_the_subgraph(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_view *v = agent_view_new(c);
    kt_err err = { 0 };
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    /* Empty cache: an empty graph, and 404 for any interface. */
    assert_int_equal(agent_view_graph_json(v, &out, &err), KT_OK);
    assert_string_equal(out.data, "{\"twinInstances\":[]}");

    put_pole_graph(c);
    kt_buf_reset(&out);
    assert_int_equal(agent_view_iface_json(v, "pole", &out, &err), KT_OK);
    assert_string_equal(out.data, "{\"twinInstances\":[{\"name\":\"pole-1\",\"interface\":\"pole\","
                                  "\"relationships\":[{\"name\":\"refHood\",\"interface\":\"hood\","
                                  "\"instance\":\"hood-far\"}]}]}");
    kt_buf_reset(&out);
    assert_int_equal(agent_view_iface_json(v, "hood", &out, &err), KT_ENOTFOUND);
    assert_int_equal(out.len, 0);
    assert_int_equal(agent_view_builds(v), 2);

    /* During a snapshot the last committed model is served. */
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_snapshot_begin(c, 2, &err), KT_OK);
    kt_buf_reset(&out);
    assert_int_equal(agent_view_graph_json(v, &out, &err), KT_OK);
    assert_non_null(strstr(out.data, "pole-1"));
    agent_cache_snapshot_abort(c);

    /* A delta is seen on the next request, with one rebuild. */
    agent_cache_object d[] = {
        obj(AGENT_KIND_INSTANCE, "hood-far", INST_DOC("hood-far", "hood", ""), 2),
    };
    assert_int_equal(agent_cache_delta_apply(c, 1, 2, d, 1, &err), KT_OK);
    kt_buf_reset(&out);
    assert_int_equal(agent_view_iface_json(v, "hood", &out, &err), KT_OK);
    assert_string_equal(out.data, "{\"twinInstances\":[{\"name\":\"hood-far\",\"interface\":"
                                  "\"hood\"}]}");
    assert_int_equal(agent_view_builds(v), 3);
    kt_buf_fini(&out);
    agent_view_free(v);
    agent_cache_free(c);
}

/* agent-rss: a rendered document written in pieces is stored only whole (exactly the bytes
 * reserved); persist stores the graph JSON that way, the same bytes as a rendering. */
static void test_rendered_writer_stores_whole_documents_only(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    put_pole_graph(c);
    kt_err err = { 0 };
    uint64_t gen = agent_cache_generation(c);
    agent_cache_rendered_writer *w = NULL;
    /* Short: rolled back, nothing stored. */
    assert_int_equal(agent_cache_rendered_begin(&w, c, "doc", gen, 10, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_write(w, "0123", 4, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_end(w, true, &err), KT_EINVAL);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_get(c, "doc", NULL, &err), KT_ENOTFOUND);
    /* Past the reserved length: refused, and the end fails. */
    assert_int_equal(agent_cache_rendered_begin(&w, c, "doc", gen, 4, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_write(w, "01234", 5, &err), KT_EINVAL);
    assert_int_not_equal(agent_cache_rendered_end(w, true, &err), KT_OK);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_get(c, "doc", NULL, &err), KT_ENOTFOUND);
    /* Not committed on request. */
    assert_int_equal(agent_cache_rendered_begin(&w, c, "doc", gen, 1, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_write(w, "x", 1, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_end(w, false, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_get(c, "doc", NULL, &err), KT_ENOTFOUND);
    /* Stale generation. */
    assert_int_equal(agent_cache_rendered_begin(&w, c, "doc", gen - 1, 1, &err), KT_ECONFLICT);
    assert_null(w);
    /* Whole, in pieces. */
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_begin(&w, c, "doc", gen, 10, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_write(w, "0123", 4, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_write(w, "456789", 6, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_end(w, true, &err), KT_OK);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    assert_int_equal(agent_cache_rendered_get(c, "doc", &out, &err), KT_OK);
    assert_string_equal(out.data, "0123456789");

    /* Persist: the stored graph JSON is the rendering of the model. */
    agent_view *v = agent_view_new(c);
    assert_int_equal(agent_view_persist_graph(v, &err), KT_OK);
    kt_buf_reset(&out);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", &out, &err), KT_OK);
    kt_buf want;
    kt_buf_init(&want, 1 << 20);
    assert_int_equal(model_graph_to_json(agent_view_model(v), NULL, &want), KT_OK);
    assert_non_null(strstr(want.data, "pole-1"));
    assert_string_equal(out.data, want.data);
    kt_buf_fini(&want);
    kt_buf_fini(&out);
    agent_view_free(v);
    agent_cache_free(c);
}

/* The graph JSON stored once rendered is served from the cache after a restart, before any
 * model is built; any commit that changes objects drops it in the same transaction. */
static void test_rendered_graph_survives_restart_and_is_dropped_by_commits(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    put_pole_graph(c);
    kt_err err = { 0 };
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_ENOTFOUND);
    /* A stale generation is refused. */
    assert_int_equal(
        agent_cache_rendered_put(c, "twin-graph", agent_cache_generation(c) - 1, "x", 1, &err),
        KT_ECONFLICT);
    agent_view *v = agent_view_new(c);
    kt_buf first;
    kt_buf_init(&first, 1 << 20);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_view_graph_json(v, &first, &err), KT_OK); /* renders and stores */
    assert_non_null(strstr(first.data, "pole-1"));
    assert_int_equal(agent_view_builds(v), 1);
    agent_view_free(v);
    agent_cache_free(c);

    /* Restart: the same bytes, no model built. */
    c = open_ok(f);
    v = agent_view_new(c);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    assert_int_equal(agent_view_graph_json(v, &out, &err), KT_OK);
    assert_string_equal(out.data, first.data);
    assert_int_equal(agent_view_builds(v), 0);
    /* The build in slices gives the same model as a synchronous one. */
    int done = 0, steps = 0;
    while (!done) {
        assert_int_equal(agent_view_step(v, 1, &done, &err), KT_OK);
        steps++;
    }
    assert_int_equal(steps, 4); /* 3 objects, one per slice, and the empty end */
    assert_int_equal(agent_view_builds(v), 1);
    assert_true(agent_view_current(v));
    assert_int_equal(agent_view_n_instances(v), 1);

    /* A delta with objects drops it; the next answer is rendered from the new model. */
    agent_cache_object d[] = {
        obj(AGENT_KIND_INSTANCE, "hood-far", INST_DOC("hood-far", "hood", ""), 2),
    };
    assert_int_equal(agent_cache_delta_apply(c, 1, 2, d, 1, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_ENOTFOUND);
    kt_buf_reset(&out);
    assert_int_equal(agent_view_graph_json(v, &out, &err), KT_OK);
    assert_non_null(strstr(out.data, "hood-far"));
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_OK);
    kt_buf stored;
    kt_buf_init(&stored, 1 << 20);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", &stored, &err), KT_OK);
    assert_string_equal(stored.data, out.data);

    /* A snapshot drops it too, in its transaction (an abort keeps it). */
    assert_int_equal(agent_cache_snapshot_begin(c, 3, &err), KT_OK);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_EAGAIN);
    agent_cache_snapshot_abort(c);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_OK);
    agent_cache_object ifaces[] = {
        obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 1),
        obj(AGENT_KIND_INTERFACE, "pole", IFACE_DOC("pole"), 1),
    };
    put_snapshot(c, 3, ifaces, 2);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", NULL, &err), KT_ENOTFOUND);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_view_persist_graph(v, &err), KT_OK);
    kt_buf_reset(&stored);
    assert_int_equal(agent_cache_rendered_get(c, "twin-graph", &stored, &err), KT_OK);
    assert_string_equal(stored.data, "{\"twinInstances\":[]}");
    kt_buf_fini(&stored);
    kt_buf_fini(&out);
    kt_buf_fini(&first);
    agent_view_free(v);
    agent_cache_free(c);
}

/* A document of many chunks (64 KiB writes, 4 KiB reads, a size that is no multiple of either)
 * comes back byte for byte and survives a restart; a buffer too small for it gets nothing. */
static void test_large_rendered_document_round_trips_in_chunks(void **state)
{
    fixture *f = *state;
    agent_cache *c = open_ok(f);
    agent_cache_object objs[] = { obj(AGENT_KIND_INTERFACE, "hood", HOOD_DOC, 1) };
    put_snapshot(c, 1, objs, 1);
    size_t n = 3 * 65536 + 4097;
    char *doc = kt_xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        doc[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    }
    kt_err err = { 0 };
    assert_int_equal(agent_cache_rendered_put(c, "big", agent_cache_generation(c), doc, n, &err),
                     KT_OK);
    agent_cache_free(c);
    c = open_ok(f);
    kt_buf out;
    kt_buf_init(&out, 1 << 20);
    assert_int_equal(kt_buf_append(&out, "pre:", 4), KT_OK);
    assert_int_equal(agent_cache_rendered_get(c, "big", &out, &err), KT_OK);
    assert_int_equal(out.len, 4 + n);
    assert_memory_equal(out.data, "pre:", 4);
    assert_memory_equal(out.data + 4, doc, n);
    /* Replaced by a shorter one: only the new bytes. */
    assert_int_equal(agent_cache_rendered_put(c, "big", agent_cache_generation(c), "{}", 2, &err),
                     KT_OK);
    kt_buf_reset(&out);
    assert_int_equal(agent_cache_rendered_get(c, "big", &out, &err), KT_OK);
    assert_string_equal(out.data, "{}");
    assert_int_equal(agent_cache_rendered_put(c, "big", agent_cache_generation(c), doc, n, &err),
                     KT_OK);
    kt_buf small;
    kt_buf_init(&small, 100000);
    assert_int_equal(kt_buf_append(&small, "keep", 4), KT_OK);
    memset(&err, 0, sizeof err);
    assert_int_equal(agent_cache_rendered_get(c, "big", &small, &err), KT_ETOOBIG);
    assert_int_equal(small.len, 4);
    assert_string_equal(small.data, "keep");
    kt_buf_fini(&small);
    kt_buf_fini(&out);
    kt_free(doc);
    agent_cache_free(c);
}

int main(void)
{
    kt_log_set_level(KT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_rendered_document_round_trips_in_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_cache_is_empty_with_an_incarnation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aborted_snapshot_keeps_previous_contents, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_process_killed_mid_snapshot_keeps_previous_contents,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta_applies_atomically_and_persists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_placement_replaces_and_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_cache_is_moved_aside_and_started_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_file_that_is_not_a_database_is_moved_aside, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_view_serves_graph_with_targets_outside_the_subgraph,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rendered_writer_stores_whole_documents_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_rendered_graph_survives_restart_and_is_dropped_by_commits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
