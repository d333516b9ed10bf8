#!/usr/bin/env python3
"""bench_sync_snapshot_proc.py -- sync-snapshot with real processes.

A ktwin-hub on loopback is loaded (not timed) with a generated city whose
every instance is on site-00 (`ktwin-sim model --neighborhoods N --sites 1`).
Then RUNS times: a ktwin-agent with an empty cache connects as site-00 and
receives the whole subgraph as a snapshot. Time = the agent's wall clock
when its snapshot COMMIT ended (wall_ms of UPLINK-COMMIT kind=snapshot)
minus the ts of its UPLINK-CONNECT line (the WebSocket is open, Hello about
to be sent): Hello, Welcome, the hub walking and encoding the subgraph,
WebSocket transfer, decoding, SQLite writes and commit.

  bench_sync_snapshot_proc.py --hub BIN --agent BIN --sim BIN --tmp DIR
                              [--neighborhoods N] [--runs N]

Prints one JSON object: seconds (median run), ms (median), min_ms, max_ms,
instances, objects, agent_rss_mib (the agent's peak RSS, VmHWM, after it also
served GET /api/v1/twin-graph once, which builds its in-memory view),
graph_json_bytes, runs. Exit 1 on failure.
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess

from benchlib import ADMIN, free_port, http, proc_status_mib, ts_ms, wait_until



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hub", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--neighborhoods", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    city = os.path.join(a.tmp, "site%d" % a.neighborhoods)
    if not os.path.exists(os.path.join(city, "policy.yaml")):
        subprocess.run([a.sim, "model", "--neighborhoods", str(a.neighborhoods), "--sites", "1",
                        "--format", "json", "-o", city], check=True, stdout=subprocess.DEVNULL)
    run = os.path.join(a.tmp, "snap-%d" % os.getpid())
    os.makedirs(run)
    with open(os.path.join(run, "agents.txt"), "w") as f:
        f.write("site-00 tok-00\n")
    with open(os.path.join(run, "admin.token"), "w") as f:
        f.write(ADMIN + "\n")
    with open(os.path.join(run, "token"), "w") as f:
        f.write("tok-00\n")
    port = free_port()
    with open(os.path.join(run, "hub.yaml"), "w") as f:
        f.write("listen: {port: %d}\ndata_dir: %s/hubdata\nlog: {level: warn}\n"
                "auth: {admin_token_file: %s/admin.token, agents_file: %s/agents.txt}\n"
                "limits: {max_body_bytes: 256MiB}\n" % (port, run, run, run))
    hub = subprocess.Popen([a.hub, "--config", os.path.join(run, "hub.yaml")],
                           stderr=open(os.path.join(run, "hub.log"), "w"))
    times, rss, instances, objects, graph_bytes = [], [], 0, 0, 0
    try:
        base = "http://127.0.0.1:%d" % port
        wait_until(lambda: http("GET", base + "/readyz").strip() == b"ready", 30, "the hub")
        for name in ["interfaces.yaml", "policy.yaml"]:
            http("POST", base + "/api/v1/apply", open(os.path.join(city, name), "rb").read(), ADMIN)
        body = b"\n".join(open(p, "rb").read().strip()
                          for p in sorted(glob.glob(os.path.join(city, "instances-*.json"))))
        rev = json.loads(http("POST", base + "/api/v1/apply", body, ADMIN))["revision"]
        for i in range(a.runs):
            d = os.path.join(run, "agent%d" % i)
            os.makedirs(d)
            cfg = os.path.join(d, "agent.yaml")
            with open(cfg, "w") as f:
                f.write("site: site-00\nhub: {url: \"ws://127.0.0.1:%d/sync\", token_file: %s/token}\n"
                        "cache: {path: %s/agent.db}\nlisten: {port: 0}\n" % (port, run, d))
            log = os.path.join(d, "log")
            pf = os.path.join(d, "port")
            ag = subprocess.Popen([a.agent, "--config", cfg, "--port-file", pf],
                                  stderr=open(log, "w"))
            try:
                def committed():
                    text = open(log).read()
                    return "kind=snapshot revision=%d " % rev in text and text
                text = wait_until(committed, 120, "the agent's snapshot")
                # Serve the whole graph once (builds the in-memory view), then read the peak RSS.
                aport = int(open(pf).read())
                graph_bytes = len(http("GET", "http://127.0.0.1:%d/api/v1/twin-graph" % aport))
                rss.append(proc_status_mib(ag.pid))
            finally:
                ag.send_signal(signal.SIGTERM)
                ag.wait(timeout=30)
            if ag.returncode != 0:
                raise SystemExit("bench_sync_snapshot_proc: agent exit %d" % ag.returncode)
            start = end = None
            for line in text.splitlines():
                if "id=UPLINK-CONNECT " in line and start is None:
                    start = ts_ms(line)
                m = re.search(r"id=UPLINK-COMMIT .*kind=snapshot revision=%d objects=(\d+) .*"
                              r"wall_ms=(\d+) instances=(\d+)" % rev, line)
                if m:
                    objects, end, instances = int(m.group(1)), int(m.group(2)), int(m.group(3))
            times.append(end - start)
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"seconds": med / 1000.0, "ms": round(med, 1), "min_ms": round(times[0], 1),
                      "max_ms": round(times[-1], 1), "instances": instances, "objects": objects,
                      "agent_rss_mib": round(max(rss), 1), "graph_json_bytes": graph_bytes,
                      "runs": len(times)}))


if __name__ == "__main__":
    main()
