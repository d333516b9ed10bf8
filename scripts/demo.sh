#!/usr/bin/env bash
# make demo: what KTWIN Edge does today, on embedded defaults.
#
# 1. Convert KTWIN's DTDL smart-city ontology into TwinInterface CRDs.
# 2. Generate the paper's smart-city model (2 neighborhoods over 2 sites).
# 3. Validate everything, then show the twin graph around one pole.
# 4. Show what a broken document looks like to ktwinctl.
# 5. Federation: a hub and two edge agents on loopback; apply the city through
#    the hub, watch each agent receive exactly its own subgraph and placement,
#    change one twin and see the change reach only its site; an event posted
#    at an agent reaches the hub's event store.
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

step "6. Federation: ktwin-hub and two ktwin-agents (site-00, site-01) on 127.0.0.1"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; return 1; }
mkdir -p "$OUT/hub" "$OUT/agents"
: > "$OUT/hub/agents.txt"
for s in site-00 site-01; do
    tok=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    echo "$s $tok" >> "$OUT/hub/agents.txt"
    echo "$tok" > "$OUT/agents/$s.token"
done
cat > "$OUT/hub/hub.yaml" <<YAML
listen: {port: 0}
data_dir: $OUT/hub/data
auth: {agents_file: $OUT/hub/agents.txt}
log: {level: warn}
YAML
"$BIN/hub/ktwin-hub" --config "$OUT/hub/hub.yaml" --port-file "$OUT/hub/port" 2>"$OUT/hub/hub.log" &
PIDS+=($!)
wait_file "$OUT/hub/port"
HUB="http://127.0.0.1:$(cat "$OUT/hub/port")"
echo "hub listening on $HUB (log: $OUT/hub/hub.log)"
for s in site-00 site-01; do
    cat > "$OUT/agents/$s.yaml" <<YAML
site: $s
hub: {url: ws://127.0.0.1:$(cat "$OUT/hub/port")/sync, token_file: $OUT/agents/$s.token}
cache: {path: $OUT/agents/$s.db}
listen: {port: 0}
log: {level: warn}
YAML
    "$BIN/agent/ktwin-agent" --config "$OUT/agents/$s.yaml" --port-file "$OUT/agents/$s.port" \
        2>"$OUT/agents/$s.log" &
    PIDS+=($!)
    wait_file "$OUT/agents/$s.port"
    echo "agent $s serving its local API on 127.0.0.1:$(cat "$OUT/agents/$s.port")"
done
export KTWIN_HUB_URL=$HUB KTWIN_TOKEN_FILE=$OUT/hub/data/admin.token

step "7. Apply the city through the hub's API (validated as a whole, applied atomically)"
ktwinctl apply -f "$OUT/city" | tail -3

step "8. Placement: which interfaces run at the edge, per site"
ktwinctl placement | awk 'NR <= 3 || $1 == "SITE" || $4 + 0 > 0'   # what has instances
ktwinctl placement explain city-pole --site site-00

agent_graph() { # SITE -> instance count the agent serves from its cache
    curl -s "http://127.0.0.1:$(cat "$OUT/agents/$1.port")/api/v1/twin-graph" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("twinInstances", [])))'
}
agent_rev() {
    curl -s "http://127.0.0.1:$(cat "$OUT/agents/$1.port")/metrics" |
        sed -n 's/^ktwin_agent_graph_revision \([0-9]*\).*/\1/p'
}
wait_rev() { # SITE REV
    for _ in $(seq 200); do [ "$(agent_rev "$1")" = "$2" ] && return 0; sleep 0.05; done
    echo "agent $1 did not reach revision $2" >&2; return 1
}
REV=$(curl -s "$HUB/metrics" | sed -n 's/^ktwin_hub_graph_revision \([0-9]*\).*/\1/p')
step "9. Each agent holds its own subgraph (hub revision $REV)"
for s in site-00 site-01; do
    wait_rev "$s" "$REV"
    echo "  $s: $(agent_graph "$s") instances in its cache, revision $(agent_rev "$s")"
done

step "10. Change one twin of site-01: only site-01's cache changes"
cat > "$OUT/change.yaml" <<'YAML'
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata:
  name: city-pole-demo-extra
  labels: {ktwin.io/site: site-01}
spec:
  interface: city-pole
YAML
ktwinctl apply -f "$OUT/change.yaml"
REV=$((REV + 1))
for s in site-00 site-01; do
    wait_rev "$s" "$REV"
    echo "  $s: $(agent_graph "$s") instances, revision $(agent_rev "$s")"
done

step "11. Store-and-forward: a twin service's store event at site-01 reaches the hub's event store"
A1="http://127.0.0.1:$(cat "$OUT/agents/site-01.port")"
curl -s -o /dev/null -w 'agent ingress answered %{http_code}\n' -X POST "$A1/" \
    -H 'ce-specversion: 1.0' -H 'ce-id: demo-1' -H 'ce-type: ktwin.store.city-pole' \
    -H 'ce-source: city-pole-demo-extra' -H 'Content-Type: application/json' \
    -d '{"energyConsumption": 42}'
for _ in $(seq 100); do
    latest=$(curl -sf "$HUB/api/v1/twin-events/city-pole/city-pole-demo-extra/latest") && break
    sleep 0.05
done
echo "hub's latest state of city-pole-demo-extra: ${latest:-none}"

printf '\nDemo done. Files are in %s\n' "$OUT"
