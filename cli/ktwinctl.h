/*
 * ktwinctl.h — subcommands of ktwinctl, one function each.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code: 0 ok, 1 invalid input,
 * 2 usage error.
 */
#ifndef KT_CLI_KTWINCTL_H
#define KT_CLI_KTWINCTL_H

enum { KTWINCTL_OK = 0, KTWINCTL_INVALID = 1, KTWINCTL_USAGE = 2 };

int ktwinctl_validate(int argc, char **argv);
int ktwinctl_graph(int argc, char **argv);
int ktwinctl_import_dtdl(int argc, char **argv);
int ktwinctl_import_graph(int argc, char **argv);

#endif
