/*
 * ktwinctl — the KTWIN Edge command line: validate and convert models,
 * inspect the twin graph, and talk to the hub (apply, get, delete,
 * placement: cli/remote.h).
 *
 * main() only dispatches; each subcommand lives in its own file.
 */
#include "ktwinctl.h"

#include <stdio.h>
#include <string.h>

#include "kt/log.h"
#include "remote.h"

typedef struct ktwinctl_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} ktwinctl_cmd;

static const ktwinctl_cmd commands[] = {
    { "validate", ktwinctl_validate, "validate CRD files (TwinInterface, TwinInstance, PlacementPolicy)" },
    { "graph", ktwinctl_graph, "print the twin graph (KTWIN JSON), a per-interface graph or a subgraph" },
    { "import-dtdl", ktwinctl_import_dtdl, "convert a DTDL v2 ontology into TwinInterface YAML" },
    { "import-graph", ktwinctl_import_graph, "convert KTWIN graph JSON into TwinInstance YAML" },
    { "apply", ktwinctl_apply, "send documents to the hub (validated and applied all at once)" },
    { "get", ktwinctl_get, "read twininterfaces, twininstances or placementpolicies from the hub" },
    { "delete", ktwinctl_delete, "delete objects from the hub" },
    { "placement", ktwinctl_placement, "where each interface runs; placement explain IFACE: why" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ktwinctl COMMAND [ARGS]   (ktwinctl COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nexit codes: 0 ok, 1 invalid input (or refused by the hub), 2 usage error,\n"
                 "3 the hub cannot be reached (apply, get, delete, placement)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return KTWINCTL_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return KTWINCTL_OK;
    }
    kt_log_set_level(KT_LOG_WARN);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "ktwinctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return KTWINCTL_USAGE;
}
