#!/usr/bin/env bash
# make demo: KTWIN's smart-city experiment on this machine, on embedded defaults.
#
# 1. Convert KTWIN's DTDL smart-city ontology into TwinInterface CRDs.
# 2. Generate the paper's smart-city model (2 neighborhoods over 2 sites).
# 3. Validate everything, then show the twin graph around one pole.
# 4. Show what a broken document looks like to ktwinctl.
# 5. The experiment (ktwin-sim run, about two minutes): one MQTT broker and
#    one ktwin-agent per site, a ktwin-hub, KTWIN's ~1000 simulated devices
#    publishing the paper's 24-minute scenario compressed 16x into 90 s, the
#    smart-city twin services running at the edge, and the agents' link to
#    the hub cut for 20 s in the middle. It prints a live line every 5 s and
#    ends with the totals (published, processed, stored, lost, duplicates)
#    and the path of report.html (charts, and the paper's figures beside ours).
#
# DEMO_BIN (default build/release), DEMO_OUT (default out/demo),
# DEMO_DURATION (default 90 s of devices) change the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DEMO_BIN:-build/release}
OUT=${DEMO_OUT:-out/demo}
rm -rf "$OUT"
mkdir -p "$OUT"
ktwinctl() { "$BIN/cli/ktwinctl" "$@"; }

step() { printf '\n== %s\n' "$*"; }

step "1. DTDL ontology -> TwinInterface CRDs (KTWIN's naming rules)"
ktwinctl import-dtdl data/smartcity-ontology/Ontology -o "$OUT/ontology"
ls "$OUT/ontology" | sed -n 1,5p
echo "... $(ls "$OUT/ontology" | wc -l) files"
ktwinctl validate -f "$OUT/ontology"

step "2. The smart-city model: 2 neighborhoods, 2 sites (593 instances per neighborhood)"
"$BIN/sim/ktwin-sim" model --neighborhoods 2 --sites 2 -o "$OUT/city"
ls -l "$OUT/city"

step "3. Validate the whole model"
ktwinctl validate -f "$OUT/city"

step "4. The twin graph around city-pole-nb001-p00001 (1 hop, both directions)"
ktwinctl graph -f "$OUT/city" --instance city-pole-nb001-p00001 --depth 1 |
    python3 -c 'import json,sys; g=json.load(sys.stdin)["twinInstances"]; [print("  %-55s %s" % (i["name"], i["interface"])) for i in g]'

step "5. A broken document: every problem, with file:line:col"
cat > "$OUT/broken.yaml" <<'YAML'
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata:
  name: city-pole.nb001
spec:
  interface: city-pole
  colour: red
  twinInstanceRelationships:
  - {name: refNeighborhood, interface: s4city-city-neighborhood, instance: nowhere}
YAML
set +e
ktwinctl validate -f "$OUT/city/interfaces.yaml" -f "$OUT/broken.yaml"
rc=$?
set -e
echo "(exit code $rc: 1 means invalid input)"

DURATION=${DEMO_DURATION:-90}
OFF_AT=$(( DURATION / 3 ))
OFF_FOR=$(( DURATION * 2 / 9 ))
step "6. The smart-city experiment: 2 neighborhoods on 2 edge sites, ${DURATION} s of devices, hub link cut from ${OFF_AT} s to $(( OFF_AT + OFF_FOR )) s"
cat <<TXT
What runs (all on 127.0.0.1, every process's log and data under $OUT/run):
  - site-00 and site-01: one mosquitto broker and one ktwin-agent each. The agent
    holds its site's part of the twin graph and runs the smart-city twin services
    (air quality, city pole, neighborhood, weather, traffic/crowd flow, parking,
    streetlight, device battery) next to the devices.
  - ktwin-hub: the model's authority and the event store; it gets the events the
    agents send up (store events, events for interfaces with no service).
  - ktwin-sim devices: KTWIN's simulated devices (air quality, weather, noise,
    traffic, crowd, streetlights, parking, EV chargers, batteries) publishing over
    MQTT QoS 1 to their own site's broker, the paper's 6 windows compressed 16x.
  - From ${OFF_AT} s for ${OFF_FOR} s the hub is frozen (SIGSTOP): the sites must keep
    working on their own and keep what goes to the hub in their outboxes.
Each progress line: device events/s and total sent; twin-service calls/s at the
edge and total; events waiting in the agents' outboxes; the hub's state and the
events its store holds.
TXT
set +e
"$BIN/sim/ktwin-sim" run --neighborhoods 2 --sites 2 --duration "$DURATION" \
    --offline-at "$OFF_AT" --offline-for "$OFF_FOR" --progress 5 --out "$OUT/run"
rc=$?
set -e

step "7. What happened, per event type (from $OUT/run/results.json)"
python3 - "$OUT/run/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "totals" not in r:
    print("the run did not finish:", r.get("error", "unknown error"))
    sys.exit(0)
def n(v):
    return "-" if v is None else f"{v:,.0f}"
print(f"  {'CloudEvent type':<48} {'published':>10} {'processed':>10} {'stored':>10} {'lost':>5} {'dup':>4}")
for k, v in r["events"].items():
    print(f"  {k:<48} {n(v['published']):>10} {n(v['processed']):>10} {n(v['stored']):>10} "
          f"{n(v['lost']):>5} {n(v['duplicates']):>4}")
print("  (published: PUBACKed by the site broker; processed: twin-service calls at the agents;")
print("   stored: rows in the hub's event store; '-' where that stage does not apply)")
lat = r.get("latency_ms", {})
if lat:
    worst = max(lat.items(), key=lambda kv: kv[1]["p99"] or 0)
    print(f"\n  twin-service latency at the edge: p99 from "
          f"{min(v['p99'] for v in lat.values() if v['p99'] is not None):.1f} to "
          f"{worst[1]['p99']:.1f} ms ({worst[0]}); KTWIN's paper measured 192-430 ms at 1 neighborhood")
rtt = r.get("device_rtt_ms")
if rtt:
    print(f"  device -> battery service -> device round trip: p50 {rtt['p50']:.1f} ms, p99 {rtt['p99']:.1f} ms ({rtt['n']:.0f} trips)")
res = r["resources"]
agents = res["agents"].values()
print(f"  resources: hub {res['hub']['cpu_s']:.1f} CPU s, {res['hub']['rss_peak_mib']:.0f} MiB peak; "
      f"agents up to {max(a['cpu_s'] for a in agents):.1f} CPU s, {max(a['rss_peak_mib'] for a in agents):.0f} MiB peak")
PY

t=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("totals"); print("" if t is None else "published %d, processed %d, stored %d, lost %d, duplicates %d" % (t["published"], t["processed"], t["stored"], t["lost"], t["duplicates"]))' "$OUT/run/results.json" 2>/dev/null || true)
printf '\nDemo done (ktwin-sim run exit code %d: 0 means nothing lost or duplicated).\n' "$rc"
printf 'Totals: %s\n' "${t:-not available: see $OUT/run}"
printf 'Report: %s/run/report.html (open it in a browser)\n' "$OUT"
exit "$rc"
