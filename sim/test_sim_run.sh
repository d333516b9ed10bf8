#!/usr/bin/env bash
# sim/test_sim_run.sh KTWIN_SIM — `ktwin-sim run` end to end.
#
# 1 neighborhood on 1 site for 24 s of devices (time x24), with the hub frozen
# from 6 s to 12 s: real mosquitto, ktwin-hub, ktwin-agent with the
# smart-city plugin, ktwin-sim devices. The run must exit 0, and its
# results.json must show: nothing lost, nothing duplicated, every device
# type published, processed or stored > 0, the offline window, every event
# the agent sent up committed at the hub, process resources; report.html must
# be well-formed. A usage error exits 2.
. "$(dirname "$0")/../tests/lib/testlib.sh"
SIM=$1
HERE=$(cd "$(dirname "$0")" && pwd)

"$SIM" run --neighborhoods 1 >"$T/usage" 2>&1
check "usage exit" 2 $?
contains "usage names what is missing" "$T/usage" 'sites S is required'
"$SIM" run --neighborhoods 1 --sites 1 --duration 10 --offline-at 8 --offline-for 5 \
    --out "$T/x" >"$T/usage" 2>&1
check "offline window past the end: usage exit" 2 $?

# x24: a window lasts 10 s, so the streetlights and batteries (silent in
# window 0) publish in window 1 too.
"$SIM" run --neighborhoods 1 --sites 1 --duration 24 --compress 24 \
    --offline-at 6 --offline-for 6 --progress 2 --out "$T/run" >"$T/run.out" 2>&1
rc=$?
check "ktwin-sim run exit" 0 $rc
if [ $rc -ne 0 ]; then
    tail -n 40 "$T/run.out" | sed 's/^/    /'
    for f in "$T"/run/hub/hub.log "$T"/run/site-00/agent.log "$T"/run/devices.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
    done
fi
contains "progress lines" "$T/run.out" 'devices +[0-9]+ ev/s'
contains "offline announced" "$T/run.out" 'hub link DOWN'
contains "online announced" "$T/run.out" 'hub link UP'
contains "totals line" "$T/run.out" 'lost 0, duplicates 0'
contains "report path" "$T/run.out" "report: +$T/run/report.html"

python3 - "$T/run/results.json" >"$T/results.check" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
def need(cond, what):
    if not cond:
        bad.append(what)
t = r["totals"]
need(r["ok"] is True, "ok is not true")
need(t["lost"] == 0, f"lost {t['lost']}")
need(t["duplicates"] == 0, f"duplicates {t['duplicates']}")
need(t["published"] > 0 and t["processed"] > 0 and t["stored"] > 0, f"empty totals {t}")
need(t["outbox_left"] == 0, "events left in the outbox")
need(t["edge_upstream"] == t["hub_committed"],
     f"agent sent up {t['edge_upstream']} but the hub committed {t['hub_committed']}")
reals = {k: v for k, v in r["events"].items() if k.startswith("ktwin.real.")}
need(sum(1 for v in reals.values() if v["published"] > 0) >= 7,
     f"fewer than 7 device types published: {reals}")
for k, v in reals.items():
    done = v["processed"] if v["processed"] is not None else v["stored"]
    need(done == v["published"], f"{k}: published {v['published']} but handled {done}")
    need(v["lost"] == 0 and v["duplicates"] == 0, f"{k}: {v}")
stores = [k for k in r["events"] if k.startswith("ktwin.store.")]
need(len(stores) >= 5, f"only {len(stores)} store event types at the hub")
need(len(r["offline"]) == 1 and r["offline"][0]["to_s"] > r["offline"][0]["from_s"],
     f"offline window {r['offline']}")
need(any(s["offline"] for s in r["series"]), "no sample during the offline window")
need(len(r["latency_ms"]) >= 5, "latency for fewer than 5 services")
for svc, l in r["latency_ms"].items():
    need(l["count"] > 0 and l["p50"] is not None and l["p50"] <= l["p99"], f"latency {svc}: {l}")
res = r["resources"]
need(res["hub"]["rss_peak_mib"] > 0 and res["hub"]["cpu_s"] > 0, f"hub resources {res['hub']}")
need(res["agents"]["site-00"]["rss_peak_mib"] > 0, "agent resources")
for b in bad:
    print("results.json:", b)
sys.exit(1 if bad else 0)
PY
if [ $? -eq 0 ]; then ok; else bad "results.json"; cat "$T/results.check"; fi

if python3 "$HERE/check_report.py" "$T/run/report.html" 'Nothing lost, nothing duplicated' \
    'hub offline' 'Side by side with the KTWIN paper' >"$T/report.check" 2>&1; then
    ok
else
    bad "report.html"
    cat "$T/report.check"
fi
# Every child was stopped: nothing listens on the ports the run used.
for f in "$T"/run/hub/port "$T"/run/site-00/agent.port; do
    p=$(cat "$f" 2>/dev/null)
    if [ -n "$p" ] && curl -s -m 2 "http://127.0.0.1:$p/healthz" >/dev/null; then
        bad "a process still answers on port $p after the run"
    else
        ok
    fi
done
kt_finish
