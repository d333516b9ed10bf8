#!/usr/bin/env python3
"""bench_eventplane.py -- the event-plane benchmarks, with real processes on loopback.

Every mode starts its own mosquitto, ktwin-hub and ktwin-agent in a fresh
directory under --tmp: the hub is loaded with the 20-neighborhood city
(`ktwin-sim model --neighborhoods 20 --sites 1`: 11,861 TwinInstances, all on
site-00), the agent syncs it and runs bench_eventplane_plugin.so for the four
interfaces with a twin service and no persistRealEvent
(ngsi-ld-city-airqualityobserved, -weatherobserved, -crowdflowobserved,
-trafficflowobserved: 4,000 device instances). The plugin turns each real
event into exactly one store event (the device payload plus the handler's
wall clock "h_us"), which goes through the agent's latest state and outbox
to the hub's event store. bench_mqtt_load publishes the device messages
(QoS 1, payload {"seq","t_us","v"}) round-robin over the 4,000 topics.

Before each measurement, probes go through the whole path until one is
committed at the hub (subscriptions live); the measured events use their
own seq range. After each run the hub's event store (events.db) is read:
every seq of the run must be there exactly once, else the mode exits 1
("lost"/"duplicates"), whatever the rate.

Clocks: t_us (publisher), h_us (plugin) and the hub's stored_ms are all
CLOCK_REALTIME of this machine. stored_ms is the hub's wall clock (ms) when
the event was appended inside its group-commit transaction; the COMMIT ends
the same loop turn (hub/events.c), before the ack. stored_ms is truncated
to the millisecond, so latencies to it are taken to stored_ms + 1 (an upper
bound of the append time: never negative, at most 1 ms high).

Modes (each prints one JSON object, "seconds" first):
  pipeline  --events N: raw mosquitto QoS 1 publisher->subscriber rate
            (bench_mqtt_load raw, same broker, same payload shape) vs the
            same N messages device -> agent -> plugin -> outbox -> hub commit,
            both from the first publish to the last delivery / last hub
            commit (max stored_ms). events_per_s, raw_qos1_per_s, ratio.
  latency   --rate R --duration S: publish at R/s for S s; per event
            publish -> hub commit (stored_ms - t_us) and publish -> plugin
            handler (h_us - t_us): p50/p99/max; also the agent's
            ktwin_agent_service_latency_seconds p99 and its VmHWM.
  replay    --events N: hub stopped (SIGTERM); N messages are published as
            fast as the agent ingests them (time compressed: 780,000 at
            1,300/s would be 10 minutes) into the agent's outbox; then the
            hub starts again; drain = from the agent's UPLINK-CONNECT (the
            WebSocket is open again) to the last hub commit (max stored_ms).
  rss       as latency (--rate, --duration); reports the agent's VmHWM.
  coldstart --runs N: after a synced run, agent and hub stopped; N times:
            exec ktwin-agent (MQTT on, hub unreachable: port closed) until
            GET /api/v1/twin-graph answers 200 with the graph from its cache.

  bench_eventplane.py MODE --hub BIN --agent BIN --sim BIN --load BIN
                      --plugin SO --tmp DIR [mode options]
"""
import argparse
import glob
import http.client as httpclient
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time

from benchlib import (ADMIN, die, free_port, http, metric, metrics_text, proc_status_mib, ts_ms,
                      wait_until)

IFACES = ["ngsi-ld-city-airqualityobserved", "ngsi-ld-city-weatherobserved",
          "ngsi-ld-city-crowdflowobserved", "ngsi-ld-city-trafficflowobserved"]
PROBE_SEQ0 = 1_000_000_000
NB = 20


def hist_quantile(port, name, q):
    """Merge every series of a histogram family and estimate quantile q (as Prometheus)."""
    text = metrics_text(port)
    buckets = {}
    for line in text.splitlines():
        m = re.match(r'%s_bucket\{.*le="([^"]+)"\} (\d+)' % re.escape(name), line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets[le] = buckets.get(le, 0) + int(m.group(2))
    if not buckets:
        return None
    les = sorted(buckets)
    total = buckets[les[-1]]
    if total == 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0
    for le in les:
        c = buckets[le]
        if c >= rank and c > prev_c:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def cpu_s(pid):
    """utime + stime of a process so far, in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def pct(sorted_v, q):
    if not sorted_v:
        return 0.0
    i = min(len(sorted_v) - 1, max(0, int(round(q * (len(sorted_v) - 1)))))
    return sorted_v[i]


class Rig:
    """mosquitto + ktwin-hub + ktwin-agent in one directory."""

    def __init__(self, a, name):
        self.a = a
        self.dir = os.path.join(a.tmp, "%s-%d" % (name, os.getpid()))
        os.makedirs(self.dir)
        self.city = os.path.join(a.tmp, "city%d" % NB)
        if not os.path.exists(os.path.join(self.city, "policy.yaml")):
            subprocess.run([a.sim, "model", "--neighborhoods", str(NB), "--sites", "1",
                            "--format", "json", "-o", self.city], check=True,
                           stdout=subprocess.DEVNULL)
        self.procs = {}
        self.mqtt_port = free_port()
        self.hub_port = free_port()
        self.agent_port = free_port()
        self.rev = None
        self.topics = os.path.join(self.dir, "topics.txt")
        self.seq_next = 0

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def start_mosquitto(self):
        with open(self.path("mosquitto.conf"), "w") as f:
            # Unlimited queue for the agent's persistent session (docs/operations.md).
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_queued_bytes 0\n" % self.mqtt_port)
        self.procs["mosquitto"] = subprocess.Popen(
            ["mosquitto", "-c", self.path("mosquitto.conf")],
            stdout=subprocess.DEVNULL, stderr=open(self.path("mosquitto.log"), "a"))
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.mqtt_port), 1).close()
                   or True, 30, "mosquitto")

    def start_hub(self, load_model=False):
        if not os.path.exists(self.path("hub.yaml")):
            with open(self.path("agents.txt"), "w") as f:
                f.write("site-00 tok-00\n")
            with open(self.path("admin.token"), "w") as f:
                f.write(ADMIN + "\n")
            with open(self.path("token"), "w") as f:
                f.write("tok-00\n")
            with open(self.path("hub.yaml"), "w") as f:
                f.write("listen: {port: %d}\ndata_dir: %s\nlog: {level: %s}\n"
                        "auth: {admin_token_file: %s, agents_file: %s}\n"
                        "limits: {max_body_bytes: 256MiB}\n%s"
                        % (self.hub_port, self.path("hubdata"), self.a.hub_log_level,
                           self.path("admin.token"),
                           self.path("agents.txt"), self.a.hub_yaml_extra))
        self.hub_started = time.time()
        self.procs["hub"] = subprocess.Popen(
            [self.a.hub, "--config", self.path("hub.yaml")],
            stderr=open(self.path("hub.log"), "a"))
        base = "http://127.0.0.1:%d" % self.hub_port
        wait_until(lambda: http("GET", base + "/readyz").strip() == b"ready", 60, "the hub")
        if load_model:
            for name in ["interfaces.yaml", "policy.yaml"]:
                http("POST", base + "/api/v1/apply",
                     open(os.path.join(self.city, name), "rb").read(), ADMIN)
            body = b"\n".join(open(p, "rb").read().strip() for p in
                              sorted(glob.glob(os.path.join(self.city, "instances-*.json"))))
            self.rev = json.loads(http("POST", base + "/api/v1/apply", body, ADMIN))["revision"]

    def write_topics(self):
        names = []
        for p in sorted(glob.glob(os.path.join(self.city, "instances-*.json"))):
            for line in open(p):
                d = json.loads(line)
                if d["spec"]["interface"] in IFACES:
                    names.append("ktwin/real/%s/%s" % (d["spec"]["interface"],
                                                      d["metadata"]["name"]))
        if len(names) != 4 * 50 * NB:
            die("expected %d device topics, found %d" % (4 * 50 * NB, len(names)))
        with open(self.topics, "w") as f:
            f.write("\n".join(names) + "\n")
        with open(self.path("probe.txt"), "w") as f:
            f.write(names[0] + "\n")

    def agent_config(self, hub_port=None):
        spec = "%s=%s" % (",".join(IFACES), self.a.plugin)
        with open(self.path("agent.yaml"), "w") as f:
            f.write("site: site-00\nhub: {url: \"ws://127.0.0.1:%d/sync\", token_file: %s%s}\n"
                    "cache: {path: %s}\nlisten: {port: %d}\n"
                    "reconnect: {base_ms: 50ms, cap_ms: 500ms}\n"
                    "mqtt: {url: \"tcp://127.0.0.1:%d\"}\n"
                    "services:\n  specs:\n  - \"%s\"\n"
                    % (hub_port or self.hub_port, self.path("token"),
                       ", batch_events: %d" % self.a.batch_events if self.a.batch_events else "",
                       self.path("agent.db"),
                       self.agent_port, self.mqtt_port, spec))

    def start_agent(self):
        self.agent_log = self.path("agent.log")
        self.procs["agent"] = subprocess.Popen(
            [self.a.agent, "--config", self.path("agent.yaml")],
            stderr=open(self.agent_log, "a"))
        return self.procs["agent"]

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self):
        for name in ["agent", "hub", "mosquitto"]:
            self.stop(name)

    def committed(self):
        return metric(self.hub_port, "ktwin_hub_events_committed_total") or 0

    def setup(self):
        """Everything up, the agent synced, MQTT subscribed, a probe committed at the hub."""
        self.start_mosquitto()
        self.start_hub(load_model=True)
        self.write_topics()
        self.agent_config()
        self.start_agent()
        wait_until(lambda: metric(self.agent_port, "ktwin_agent_graph_revision") == self.rev,
                   120, "the agent's snapshot")
        wait_until(lambda: metric(self.agent_port, "ktwin_agent_mqtt_connected") == 1, 60,
                   "the agent's MQTT connection")
        self.probe()

    def publish(self, count, seq0, rate=0.0, topics=None, timeout=3600):
        out = subprocess.run([self.a.load, "pub", "--url", "tcp://127.0.0.1:%d" % self.mqtt_port,
                              "--topics", topics or self.topics, "--count", str(count),
                              "--seq0", str(seq0), "--rate", str(rate),
                              "--timeout", str(timeout)],
                             stdout=subprocess.PIPE, check=False)
        if out.returncode != 0:
            die("bench_mqtt_load pub failed: %s" % out.stdout.decode())
        return json.loads(out.stdout)

    def probe(self):
        """Probes until one reaches the hub (subscriptions are live), then until quiet."""
        k = 0
        before = self.committed()
        deadline = time.time() + 120
        while self.committed() <= before:
            if time.time() > deadline:
                die("no probe reached the hub's event store")
            self.publish(1, PROBE_SEQ0 + k, topics=self.path("probe.txt"))
            k += 1
            time.sleep(0.3)
        last = -1
        while True:  # probes still in flight settle
            c = self.committed()
            if c == last:
                break
            last = c
            time.sleep(0.5)

    def wait_committed(self, target, timeout, what):
        wait_until(lambda: self.committed() >= target, timeout, what)

    def events(self, seq0, count):
        """Rows of the hub's event store for seqs [seq0, seq0+count): {seq: [(t_us, h_us, stored_ms)]}."""
        db = sqlite3.connect("file:%s?mode=ro" % self.path("hubdata", "events.db"), uri=True,
                             timeout=30)
        rows = {}
        q = ("SELECT json_extract(CAST(data AS TEXT), '$.seq'), "
             "json_extract(CAST(data AS TEXT), '$.t_us'), "
             "json_extract(CAST(data AS TEXT), '$.h_us'), stored_ms FROM events "
             "WHERE type LIKE 'ktwin.store.%'")
        for seq, t_us, h_us, stored in db.execute(q):
            if seq is not None and seq0 <= seq < seq0 + count:
                rows.setdefault(seq, []).append((t_us, h_us, stored))
        db.close()
        return rows

    def check_exactly_once(self, rows, seq0, count):
        lost = count - len(rows)
        dups = sum(len(v) - 1 for v in rows.values())
        return lost, dups


def fail_if_lost(lost, dups, what):
    if lost != 0 or dups != 0:
        die("%s: %d events lost, %d duplicates at the hub (by seq)" % (what, lost, dups))


def mode_pipeline(a):
    rig = Rig(a, "pipeline")
    try:
        rig.setup()
        raw = subprocess.run([a.load, "raw", "--url", "tcp://127.0.0.1:%d" % rig.mqtt_port,
                              "--count", str(a.events)], stdout=subprocess.PIPE, check=False)
        if raw.returncode != 0:
            die("raw QoS 1 baseline failed: %s" % raw.stdout.decode())
        raw = json.loads(raw.stdout)
        base = rig.committed()
        pub = rig.publish(a.events, 0)
        rig.wait_committed(base + a.events, 1800, "the pipeline's events at the hub")
        rows = rig.events(0, a.events)
        agent_rss = proc_status_mib(rig.procs["agent"].pid)
    finally:
        rig.close()
    lost, dups = rig.check_exactly_once(rows, 0, a.events)
    fail_if_lost(lost, dups, "pipeline")
    last_ms = max(r[0][2] for r in rows.values())
    secs = last_ms / 1000.0 - pub["t0_us"] / 1e6
    rate = a.events / secs
    print(json.dumps({"seconds": secs, "events_per_s": round(rate, 1),
                      "raw_qos1_per_s": round(raw["per_s"], 1),
                      "ratio": round(rate / raw["per_s"], 3), "events": a.events,
                      "raw_seconds": raw["seconds"], "publish_per_s": round(pub["per_s"], 1),
                      "lost": lost, "duplicates": dups, "agent_rss_mib": round(agent_rss, 1)}))


def load_run(a, name):
    rig = Rig(a, name)
    try:
        rig.setup()
        count = int(a.rate * a.duration)
        base = rig.committed()
        pub = rig.publish(count, 0, rate=a.rate)
        rig.wait_committed(base + count, 600, "the load's events at the hub")
        rows = rig.events(0, count)
        agent = rig.procs["agent"]
        rss = proc_status_mib(agent.pid)
        rss_anon = proc_status_mib(agent.pid, "RssAnon")
        rss_file = proc_status_mib(agent.pid, "RssFile")
        svc_p99 = hist_quantile(rig.agent_port, "ktwin_agent_service_latency_seconds", 0.99)
        svc_p50 = hist_quantile(rig.agent_port, "ktwin_agent_service_latency_seconds", 0.5)
    finally:
        rig.close()
    lost, dups = rig.check_exactly_once(rows, 0, count)
    fail_if_lost(lost, dups, name)
    # stored_ms is whole milliseconds (truncated): count each append at the END of its
    # millisecond, so no latency reads below its true value (they read up to 1 ms high)
    commit = sorted(r[0][2] + 1 - r[0][0] / 1000.0 for r in rows.values())
    handler = sorted((r[0][1] - r[0][0]) / 1000.0 for r in rows.values())
    to_hub = sorted(r[0][2] + 1 - r[0][1] / 1000.0 for r in rows.values())
    return {"seconds": pub["send_seconds"], "rate": round(count / pub["send_seconds"], 1),
            "events": count, "p50_ms": round(pct(commit, 0.5), 2),
            "p99_ms": round(pct(commit, 0.99), 2), "max_ms": round(commit[-1], 2),
            "handler_p50_ms": round(pct(handler, 0.5), 3),
            "handler_p99_ms": round(pct(handler, 0.99), 3),
            "handler_to_commit_p99_ms": round(pct(to_hub, 0.99), 2),
            "agent_hist_p50_ms": round(svc_p50 * 1000, 3) if svc_p50 is not None else None,
            "agent_hist_p99_ms": round(svc_p99 * 1000, 3) if svc_p99 is not None else None,
            "rss_mib": round(rss, 1), "rss_anon_mib": round(rss_anon, 1),
            "rss_file_mib": round(rss_file, 1), "lost": lost, "duplicates": dups}


def mode_latency(a):
    print(json.dumps(load_run(a, "latency")))


def mode_rss(a):
    print(json.dumps(load_run(a, "rss")))


def mode_replay(a):
    rig = Rig(a, "replay")
    try:
        rig.setup()
        rig.stop("hub")
        t0 = time.time()
        pub = rig.publish(a.events, 0)

        def in_outbox():
            return metric(rig.agent_port, "ktwin_agent_outbox_events") == a.events
        wait_until(in_outbox, 3600, "the events in the agent's outbox")
        ingest_s = time.time() - t0
        log_mark = os.path.getsize(rig.agent_log)
        agent_cpu0 = cpu_s(rig.procs["agent"].pid)
        rig.start_hub()
        hub_cpu0 = cpu_s(rig.procs["hub"].pid)
        perf = None
        if a.perf_hub:  # profile the hub during the drain (perf record -g)
            perf = subprocess.Popen(["perf", "record"] + a.perf_args.split() + ["-o", a.perf_hub, "-p",
                                     str(rig.procs["hub"].pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        rig.wait_committed(a.events, 3600, "the drain at the hub")
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        hub_cpu = cpu_s(rig.procs["hub"].pid) - hub_cpu0
        agent_cpu = cpu_s(rig.procs["agent"].pid) - agent_cpu0
        rows = rig.events(0, a.events)
        rss = proc_status_mib(rig.procs["agent"].pid)
    finally:
        rig.close()
    lost, dups = rig.check_exactly_once(rows, 0, a.events)
    fail_if_lost(lost, dups, "replay")
    start = None
    with open(rig.agent_log) as f:
        f.seek(log_mark)
        for line in f:
            if "id=UPLINK-CONNECT " in line:
                start = ts_ms(line)
                break
    if start is None:
        die("no UPLINK-CONNECT after the hub restart")
    last_ms = max(r[0][2] for r in rows.values())
    drain_s = (last_ms - start) / 1000.0
    print(json.dumps({"seconds": drain_s, "events": a.events,
                      "drain_per_s": round(a.events / drain_s, 1),
                      "drain_seconds": round(drain_s, 3), "lost": lost, "duplicates": dups,
                      "ingest_per_s": round(a.events / ingest_s, 1),
                      "publish_per_s": round(pub["per_s"], 1),
                      "hub_start_to_drained_s": round(last_ms / 1000.0 - rig.hub_started, 3),
                      "hub_cpu_us_per_event": round(hub_cpu * 1e6 / a.events, 2),
                      "agent_cpu_us_per_event": round(agent_cpu * 1e6 / a.events, 2),
                      "agent_rss_mib": round(rss, 1)}))


def graph_ok(port):
    try:
        c = httpclient.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/api/v1/twin-graph")
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status == 200 and len(body) > 1000
    except (OSError, httpclient.HTTPException):
        return False


def mode_coldstart(a):
    rig = Rig(a, "coldstart")
    times = []
    try:
        rig.setup()
        rig.stop("agent")
        rig.stop("hub")
        rig.agent_config(hub_port=free_port())  # nothing listens there: unreachable
        for _ in range(a.runs):
            t0 = time.monotonic()
            p = rig.start_agent()
            while not graph_ok(rig.agent_port):
                if p.poll() is not None:
                    die("agent exited with %d during cold start" % p.returncode)
                if time.monotonic() - t0 > 30:
                    die("agent did not serve its cached graph within 30 s")
                time.sleep(0.0005)
            times.append((time.monotonic() - t0) * 1000.0)
            rig.stop("agent")
    finally:
        rig.close()
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"seconds": med / 1000.0, "ms": round(med, 1),
                      "min_ms": round(times[0], 1), "max_ms": round(times[-1], 1),
                      "starts": len(times)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pipeline", "latency", "replay", "rss", "coldstart"])
    for k in ["hub", "agent", "sim", "load", "plugin", "tmp"]:
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--rate", type=float, default=1300.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--batch-events", type=int, default=0,
                    help="the agent's hub.batch_events (experiments; default: the agent's)")
    ap.add_argument("--hub-yaml-extra", default="",
                    help="lines appended to the hub's config (experiments; default none)")
    ap.add_argument("--hub-log-level", default="warn",
                    help="the hub's log.level (debug shows each group commit)")
    ap.add_argument("--perf-args", default="-g",
                    help="replay: perf record's options with --perf-hub (e.g. '--call-graph dwarf')")
    ap.add_argument("--perf-hub", default=None,
                    help="replay: perf record -g the hub during the drain into this file")
    a = ap.parse_args()
    {"pipeline": mode_pipeline, "latency": mode_latency, "replay": mode_replay,
     "rss": mode_rss, "coldstart": mode_coldstart}[a.mode](a)


if __name__ == "__main__":
    main()
