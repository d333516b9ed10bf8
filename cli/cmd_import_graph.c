/*
 * cmd_import_graph.c — `ktwinctl import-graph`: KTWIN graph JSON to
 * TwinInstance YAML.
 *
 *   ktwinctl import-graph FILE -o OUT [--namespace NS]
 *
 * FILE holds KTWIN's graph-cache JSON ({"twinInstances": [...]}, what
 * GET /api/v1/twin-graph returns; "-" reads stdin). OUT gets one
 * dtd.ktwin/v0 TwinInstance document per instance, in the file's order
 * ("-" writes to stdout). Relationships are copied as they are, including
 * ones whose target does not exist: `ktwinctl validate` with the interfaces
 * reports those. Structural problems (not JSON, missing or mistyped fields),
 * invalid names and duplicate names are printed as
 * file:line:col: path: code: message, and nothing is written.
 * Exit status: 0 written, 1 invalid input or I/O failure, 2 usage.
 *
 * Thread: main thread only.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "ktwinctl.h"
#include "model/diag.h"
#include "model/emit.h"
#include "model/graph.h"
#include "model/model.h"

#define IMPORT_GRAPH_MAX_BYTES ((size_t)2 << 30)
#define IMPORT_GRAPH_MAX_OUT   ((size_t)4 << 30)

static void usage(FILE *out)
{
    fputs("usage: ktwinctl import-graph FILE -o OUT [--namespace NS]\n"
          "\n"
          "Convert KTWIN graph JSON ({\"twinInstances\": [...]}, as served by\n"
          "/api/v1/twin-graph) into dtd.ktwin/v0 TwinInstance YAML documents.\n"
          "\n"
          "  FILE                 the graph JSON; - reads stdin\n"
          "  -o, --output OUT     write all documents to OUT (- for stdout)\n"
          "  --namespace NS       metadata.namespace (default ktwin)\n"
          "  -h, --help           show this help\n"
          "\n"
          "Exit status: 0 written, 1 invalid input (diagnostics on stderr), 2 usage error.\n",
          out);
}

/* The value of "--opt VALUE" or "--opt=VALUE"; NULL when missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
        return arg + n + 1;
    }
    if (*i + 1 >= argc) {
        return NULL;
    }
    return argv[++*i];
}

static kt_status read_input(kt_buf *b, const char *path, kt_err *err)
{
    if (strcmp(path, "-") != 0) {
        return kt_buf_read_file(b, path, err);
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        kt_status st = kt_buf_append(b, chunk, n);
        if (st != KT_OK) {
            return kt_err_set(err, st, "stdin: more than %zu bytes", b->max);
        }
    }
    if (ferror(stdin)) {
        return kt_err_set(err, KT_EIO, "stdin: read error");
    }
    return KT_OK;
}

/* Append one TwinInstance document for inst. */
static kt_status emit_instance(const model_instance *inst, const char *ns, kt_buf *out)
{
    kt_status st = KT_ENOMEM;
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) {
        return KT_ENOMEM;
    }
    /* Key order as kubectl prints it: apiVersion, kind, metadata, spec. */
    if (cJSON_AddStringToObject(doc, "apiVersion", MODEL_API_DTD) == NULL ||
        cJSON_AddStringToObject(doc, "kind", "TwinInstance") == NULL) {
        goto done;
    }
    cJSON *md = cJSON_AddObjectToObject(doc, "metadata");
    cJSON *spec = cJSON_AddObjectToObject(doc, "spec");
    if (md == NULL || spec == NULL || cJSON_AddStringToObject(md, "name", inst->name) == NULL ||
        cJSON_AddStringToObject(md, "namespace", ns) == NULL ||
        cJSON_AddStringToObject(spec, "interface", inst->iface_name) == NULL) {
        goto done;
    }
    if (inst->n_rels > 0) {
        cJSON *rels = cJSON_AddArrayToObject(spec, "twinInstanceRelationships");
        if (rels == NULL) {
            goto done;
        }
        for (uint32_t r = 0; r < inst->n_rels; r++) {
            cJSON *e = cJSON_CreateObject();
            if (e == NULL) {
                goto done;
            }
            cJSON_AddItemToArray(rels, e);
            if (cJSON_AddStringToObject(e, "name", inst->rels[r].name) == NULL ||
                cJSON_AddStringToObject(e, "interface", inst->rels[r].iface) == NULL ||
                cJSON_AddStringToObject(e, "instance", inst->rels[r].target) == NULL) {
                goto done;
            }
        }
    }
    st = model_emit_yaml_doc(doc, out);
done:
    cJSON_Delete(doc);
    return st;
}

/* Names and duplicates: what would make the YAML fail `ktwinctl validate` on its own. */
static void check_instances(model *m, model_diag *diag)
{
    for (size_t i = 0; i < model_n_instances(m); i++) {
        const model_instance *inst = model_instance_at(m, i);
        const char *why = model_name_check(inst->name);
        if (why != NULL) {
            model_diag_error(diag, &inst->mark, "name", "invalid-name", "instance name \"%s\" %s",
                             inst->name, why);
        }
        why = model_name_check(inst->iface_name);
        if (why != NULL) {
            model_diag_error(diag, &inst->mark, "interface", "invalid-name",
                             "interface name \"%s\" of \"%s\" %s", inst->iface_name, inst->name,
                             why);
        }
    }
    /* Resolve reports duplicates (and, with no interfaces loaded, much else: ignored). */
    model_diag rd;
    model_diag_init(&rd);
    (void)model_resolve(m, &rd);
    for (size_t i = 0; i < rd.n; i++) {
        const model_diag_entry *e = &rd.entries[i];
        if (strcmp(e->code, "duplicate-name") == 0) {
            model_mark mk = { e->file, e->line, e->col };
            model_diag_error(diag, &mk, "name", "duplicate-name", "%s", e->msg);
        }
    }
    model_diag_fini(&rd);
}

int ktwinctl_import_graph(int argc, char **argv)
{
    const char *input = NULL;
    const char *output = NULL;
    const char *ns = "ktwin";
    int only_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_inputs || a[0] != '-' || a[1] == '\0') {
            if (input != NULL) {
                fprintf(stderr, "ktwinctl import-graph: one input file only (%s, %s)\n", input, a);
                return KTWINCTL_USAGE;
            }
            input = a;
        } else if (strcmp(a, "--") == 0) {
            only_inputs = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return KTWINCTL_OK;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                   strncmp(a, "--output=", 9) == 0) {
            output = opt_value(argc, argv, &i, a, "--output");
            if (output == NULL || output[0] == '\0') {
                fprintf(stderr, "ktwinctl import-graph: %s needs a file\n", a);
                return KTWINCTL_USAGE;
            }
        } else if (strncmp(a, "-o", 2) == 0) {
            output = a + 2;
        } else if (strcmp(a, "--namespace") == 0 || strncmp(a, "--namespace=", 12) == 0) {
            ns = opt_value(argc, argv, &i, a, "--namespace");
            if (ns == NULL || ns[0] == '\0') {
                fprintf(stderr, "ktwinctl import-graph: --namespace needs a name\n");
                return KTWINCTL_USAGE;
            }
        } else {
            fprintf(stderr, "ktwinctl import-graph: unknown option %s\n", a);
            usage(stderr);
            return KTWINCTL_USAGE;
        }
    }
    if (input == NULL || output == NULL) {
        fprintf(stderr, "ktwinctl import-graph: %s\n",
                input == NULL ? "no input file" : "-o OUT is required");
        usage(stderr);
        return KTWINCTL_USAGE;
    }

    int rc = KTWINCTL_OK;
    kt_err err = { 0 };
    kt_buf in, out;
    kt_buf_init(&in, IMPORT_GRAPH_MAX_BYTES);
    kt_buf_init(&out, IMPORT_GRAPH_MAX_OUT);
    model *m = model_new();
    model_diag diag;
    model_diag_init(&diag);
    const char *name = strcmp(input, "-") == 0 ? "<stdin>" : input;
    if (read_input(&in, input, &err) != KT_OK ||
        model_graph_from_json(m, name, in.data != NULL ? in.data : "", in.len, &diag, &err) !=
            KT_OK) {
        fprintf(stderr, "ktwinctl import-graph: %s\n", err.msg);
        rc = KTWINCTL_INVALID;
        goto done;
    }
    if (diag.n_errors == 0) {
        check_instances(m, &diag);
    }
    model_diag_print(&diag, stderr);
    if (diag.n_errors > 0) {
        fprintf(stderr, "ktwinctl import-graph: %zu errors, %zu warnings; nothing written\n",
                diag.n_errors, diag.n_warnings);
        rc = KTWINCTL_INVALID;
        goto done;
    }
    for (size_t i = 0; i < model_n_instances(m); i++) {
        kt_status st = emit_instance(model_instance_at(m, i), ns, &out);
        if (st != KT_OK) {
            fprintf(stderr, "ktwinctl import-graph: writing YAML: %s\n", kt_status_str(st));
            rc = KTWINCTL_INVALID;
            goto done;
        }
    }
    if (strcmp(output, "-") == 0) {
        if (out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len) {
            fprintf(stderr, "ktwinctl import-graph: stdout: write error\n");
            rc = KTWINCTL_INVALID;
        }
    } else if (kt_buf_write_file(&out, output, &err) != KT_OK) {
        fprintf(stderr, "ktwinctl import-graph: %s\n", err.msg);
        rc = KTWINCTL_INVALID;
    } else {
        printf("wrote %zu TwinInstances to %s (%zu warnings)\n", model_n_instances(m), output,
               diag.n_warnings);
    }
done:
    model_diag_fini(&diag);
    model_free(m);
    kt_buf_fini(&out);
    kt_buf_fini(&in);
    return rc;
}
