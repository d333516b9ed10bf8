/*
 * run.h — `ktwin-sim run`: the paper's smart-city experiment on one machine.
 *
 *   ktwin-sim run --neighborhoods N --sites S [--duration SECONDS]
 *                 [--offline-at SECONDS --offline-for SECONDS] [--compress F]
 *                 --out DIR
 *
 * Starts one mosquitto per site, a ktwin-hub and one ktwin-agent per site
 * (each a child process with its files under DIR), loads the model of
 * `ktwin-sim model` through the hub's watch directory, waits until every
 * agent holds its subgraph, runs `ktwin-sim devices` against the sites'
 * brokers, freezes the hub (SIGSTOP ... SIGCONT) during the offline window,
 * waits for the pipeline to drain, then writes DIR/results.json and
 * DIR/report.html (report.h). docs/sim-run.md defines every figure.
 *
 * Exit status: 0 when nothing was lost or duplicated, 1 when something was
 * (or the run failed), 2 for a usage error.
 * Thread: main thread only; children are stopped by PID on every exit path
 * (and die with the runner: PR_SET_PDEATHSIG).
 */
#ifndef KT_SIM_RUN_H
#define KT_SIM_RUN_H

#include <stdio.h>

/* argv[0] is "run". Returns the exit status above. */
int sim_run_main(int argc, char **argv);

/* The usage text of `ktwin-sim run`. */
void sim_run_usage(FILE *out);

#endif
