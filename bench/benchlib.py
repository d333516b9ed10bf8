"""benchlib.py -- what the Python benchmark drivers share (bench_eventplane.py,
bench_sync_delta.py, bench_sync_snapshot_proc.py): HTTP to our own processes on
loopback, free ports, polling, /metrics values, log timestamps and /proc
figures. Every function here talks only to 127.0.0.1 or this machine's /proc.
"""
import datetime
import http.client as httpclient
import os
import re
import socket
import sys
import time
import urllib.request

ADMIN = "bench-admin-token"  # the admin token the drivers give their hubs

# Loopback only: never through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def die(msg):
    """Print "<driver>: MSG" on stderr and exit 1 (a failed benchmark)."""
    prog = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    sys.stderr.write("%s: %s\n" % (prog, msg))
    sys.exit(1)


def http(method, url, body=None, token=None, timeout=120):
    """One request; the body of a 2xx answer (urllib raises on the others)."""
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with OPENER.open(req, timeout=timeout) as r:
        return r.read()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(fn, timeout, what, poll_s=0.05):
    """fn()'s first truthy value, polled every poll_s; a connection error or a
    malformed answer counts as not yet. Exits 1 (die) after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (OSError, httpclient.HTTPException, ValueError):
            pass
        time.sleep(poll_s)
    die("timed out waiting for " + what)


def metrics_text(port, timeout=10):
    return http("GET", "http://127.0.0.1:%d/metrics" % port, timeout=timeout).decode()


def metric(port, name):
    """The value of an unlabelled series in a /metrics page, or None."""
    for line in metrics_text(port).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


def ts_ms(line):
    """The ts= field of one of our log lines (UTC) as Unix ms."""
    m = re.match(r"ts=(\S+)Z ", line)
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000.0


def proc_status_mib(pid, key="VmHWM"):
    """A kB field of /proc/PID/status (VmHWM, VmRSS, RssAnon, RssFile) in MiB; 0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0
