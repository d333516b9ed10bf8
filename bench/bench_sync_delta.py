#!/usr/bin/env python3
"""bench_sync_delta.py -- the sync-delta benchmark, with real processes.

One ktwin-hub and 10 ktwin-agents (sites site-00 .. site-09) on loopback,
loaded with a generated city of 10 neighborhoods, one per site. Then CHANGES
times, one after the other: change one TwinInstance (a city-pole of site
k % 10: a label value) with POST /api/v1/apply at the hub, and wait until
the agent of that site has committed the delta. Latency = the agent's
wall clock at commit end (the wall_ms field of its UPLINK-COMMIT log line,
written right after the SQLite COMMIT) minus the wall clock just before the
POST was sent. Both run on this machine's CLOCK_REALTIME.

  bench_sync_delta.py --hub BIN --agent BIN --sim BIN --tmp DIR [--changes N] [--agents N]

Prints one JSON object: seconds (the change loop), p50_ms, p99_ms, max_ms,
mean_ms, apply_p50_ms / apply_p99_ms (until the hub's HTTP answer to the
apply arrived: the hub's own share), agent_commit_p50_ms / agent_commit_p99_ms
(time inside the agent's cache for the delta, its commit_ms), changes, agents. Exit 1 on any failure (a process that does not
start, a delta that does not arrive within 10 s).
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import time

from benchlib import ADMIN, free_port, http, metric, wait_until





class LogTail:
    """Reads new UPLINK-COMMIT lines of an agent log as they are written."""

    RE = re.compile(r"id=UPLINK-COMMIT .*kind=delta revision=(\d+) .*commit_ms=([0-9.]+) "
                    r"wall_ms=(\d+)")

    def __init__(self, path):
        self.f = open(path, "r")
        self.buf = ""
        self.commits = {}  # revision -> wall_ms
        self.commit_ms = {}  # revision -> time inside the cache

    def poll(self):
        chunk = self.f.read()
        if not chunk:
            return
        self.buf += chunk
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            m = self.RE.search(line)
            if m:
                self.commits[int(m.group(1))] = int(m.group(3))
                self.commit_ms[int(m.group(1))] = float(m.group(2))


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hub", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--agents", type=int, default=10)
    a = ap.parse_args()
    n = a.agents
    tmp = a.tmp
    os.makedirs(tmp, exist_ok=True)
    city = os.path.join(tmp, "city%d" % n)
    if not os.path.exists(os.path.join(city, "policy.yaml")):
        subprocess.run([a.sim, "model", "--neighborhoods", str(n), "--sites", str(n),
                        "--format", "json", "-o", city], check=True, stdout=subprocess.DEVNULL)
    run = os.path.join(tmp, "run-%d" % os.getpid())
    os.makedirs(run)
    sites = ["site-%02d" % i for i in range(n)]
    with open(os.path.join(run, "agents.txt"), "w") as f:
        for s in sites:
            f.write("%s tok-%s\n" % (s, s))
    with open(os.path.join(run, "admin.token"), "w") as f:
        f.write(ADMIN + "\n")
    hub_port = free_port()
    with open(os.path.join(run, "hub.yaml"), "w") as f:
        f.write("listen: {port: %d}\ndata_dir: %s/hubdata\nlog: {level: warn}\n"
                "auth: {admin_token_file: %s/admin.token, agents_file: %s/agents.txt}\n"
                % (hub_port, run, run, run))
    procs = []

    def stop_all():
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    try:
        procs.append(subprocess.Popen([a.hub, "--config", os.path.join(run, "hub.yaml")],
                                      stderr=open(os.path.join(run, "hub.log"), "w")))
        hub = "http://127.0.0.1:%d" % hub_port
        wait_until(lambda: http("GET", hub + "/readyz").strip() == b"ready", 30, "the hub")
        rev = 0
        for path in [os.path.join(city, "interfaces.yaml"), os.path.join(city, "policy.yaml")]:
            rev = json.loads(http("POST", hub + "/api/v1/apply", open(path, "rb").read(),
                                  ADMIN))["revision"]
        docs = []
        for path in sorted(glob.glob(os.path.join(city, "instances-*.json"))):
            docs += [json.loads(l) for l in open(path) if l.strip()]
        body = "\n".join(json.dumps(d) for d in docs).encode()
        rev = json.loads(http("POST", hub + "/api/v1/apply", body, ADMIN))["revision"]

        agent_ports, tails = {}, {}
        for s in sites:
            with open(os.path.join(run, s + ".token"), "w") as f:
                f.write("tok-%s\n" % s)
            cfg = os.path.join(run, s + ".yaml")
            with open(cfg, "w") as f:
                f.write("site: %s\nhub: {url: \"ws://127.0.0.1:%d/sync\", token_file: %s/%s.token}\n"
                        "cache: {path: %s/%s.db}\nlisten: {port: 0}\n"
                        "reconnect: {base_ms: 100ms, cap_ms: 1s}\n" % (s, hub_port, run, s, run, s))
            log = os.path.join(run, s + ".log")
            procs.append(subprocess.Popen([a.agent, "--config", cfg, "--port-file",
                                           os.path.join(run, s + ".port")],
                                          stderr=open(log, "w")))
            tails[s] = LogTail(log)
        for s in sites:
            pf = os.path.join(run, s + ".port")
            wait_until(lambda: os.path.exists(pf) and os.path.getsize(pf) > 0, 30, s + " port")
            agent_ports[s] = int(open(pf).read())
        for s in sites:
            wait_until(lambda: metric(agent_ports[s], "ktwin_agent_graph_revision") == rev, 60,
                       s + " snapshot")

        # One city-pole per site to change.
        poles = {}
        for d in docs:
            lab = d["metadata"].get("labels", {})
            if d["spec"]["interface"] == "city-pole" and lab.get("ktwin.io/site") in sites:
                poles.setdefault(lab["ktwin.io/site"], d)
        if len(poles) != n:
            raise SystemExit("bench_sync_delta: found city-poles for %d of %d sites" % (len(poles), n))

        lat, resp, cache_ms = [], [], []
        t_start = time.time()
        for k in range(a.changes):
            s = sites[k % n]
            d = poles[s]
            d["metadata"].setdefault("labels", {})["bench"] = "v%d" % k
            payload = json.dumps(d).encode()
            t0 = time.time() * 1000.0
            r = json.loads(http("POST", hub + "/api/v1/apply", payload, ADMIN))["revision"]
            t_resp = time.time() * 1000.0
            tail = tails[s]
            deadline = time.time() + 10
            while r not in tail.commits:
                if time.time() > deadline:
                    raise SystemExit("bench_sync_delta: %s never committed revision %d" % (s, r))
                tail.poll()
                if r not in tail.commits:
                    time.sleep(0.0005)
            lat.append(tail.commits[r] - t0)
            resp.append(t_resp - t0)
            cache_ms.append(tail.commit_ms[r])
        seconds = time.time() - t_start
        lat.sort()
        resp.sort()
        cache_ms.sort()
        print(json.dumps({
            "seconds": round(seconds, 3),
            "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(lat[-1], 2),
            "mean_ms": round(sum(lat) / len(lat), 2),
            "apply_p50_ms": round(percentile(resp, 50), 2),
            "apply_p99_ms": round(percentile(resp, 99), 2),
            "agent_commit_p50_ms": round(percentile(cache_ms, 50), 3),
            "agent_commit_p99_ms": round(percentile(cache_ms, 99), 3),
            "changes": len(lat),
            "agents": n,
        }))
    finally:
        stop_all()
    bad = [p.args[0] for p in procs if p.returncode not in (0, None)]
    if bad:
        raise SystemExit("bench_sync_delta: non-zero exit of %s" % bad)


if __name__ == "__main__":
    main()
