#!/usr/bin/env bash
# libktwin's standalone HTTP service end to end: the SDK's echo plugin
# (sdk/examples/echo_plugin.c, the same code the svc tests load as a .so)
# linked with libktwin as ktwin-echo-service, run as the HTTP twin service of
# a real ktwin-agent (services.specs "city-pole,hood=http://..."), configured
# only through KTWIN_BROKER, KTWIN_EVENT_STORE and KTWIN_GRAPH_URL pointing at
# the agent, with a real ktwin-hub behind the agent:
#   - the service starts before the agent: its first graph load fails and is
#     retried before the first event;
#   - a device event (ktwin.real.city-pole, agent ingress; then over MQTT when
#     mosquitto is there) runs the handler: its store event reaches the agent's
#     latest state and the hub's event store; "peers" comes from the graph
#     (instances of city-pole), "seen" from ktwin_latest (GET .../latest);
#   - its command along pole-1's relationship (ktwin.command.hood.notify)
#     comes back to the service, whose store event for hood-1 names the
#     incoming relationships from the graph index;
#   - direct POSTs: malformed -> 400 naming the header, structured mode -> 200,
#     handler failure -> 500, KTWIN_EAGAIN -> 503, an unreachable broker ->
#     502, no graph yet -> 503; metrics count them;
#   - usage errors exit 2; SIGTERM exits 0.
#
#   - then the agent loads echo_plugin.so (the same code, in-process) and the
#     next event of pole-2 continues from the state the standalone run stored.
#
# usage: test_http_e2e.sh ECHO_SERVICE AGENT HUB [ECHO_PLUGIN_SO]
set -uo pipefail
SVC=$1
AGENT=$2
HUB=$3
PLUGIN=${4:-}
. "$(dirname "$0")/../../lib/testlib.sh"
. "$(dirname "$0")/../../lib/ktprocs.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
# svc_metric PORT SERIES: a (possibly labelled) series of the service's /metrics
svc_metric() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# ---- model: pole-1, pole-2 --refNeighborhood--> hood-1, all at the edge of site-00
cat >"$T/model.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  relationships: [{name: refNeighborhood, interface: hood}]
  service: {template: {spec: {containers: [{name: s, image: ktwin/echo}]}}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: hood}
spec:
  commands: [{name: notify}]
  service: {template: {spec: {containers: [{name: h, image: ktwin/echo}]}}}
---
apiVersion: edge.ktwin/v0
kind: PlacementPolicy
metadata: {name: p}
spec:
  rules:
  - name: edge
    placement: edge
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-1, labels: {ktwin.io/site: site-00}}
spec:
  interface: city-pole
  twinInstanceRelationships: [{name: refNeighborhood, interface: hood, instance: hood-1}]
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-2, labels: {ktwin.io/site: site-00}}
spec:
  interface: city-pole
  twinInstanceRelationships: [{name: refNeighborhood, interface: hood, instance: hood-1}]
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: hood-1, labels: {ktwin.io/site: site-00}}
spec: {interface: hood}
EOF

# ---- usage errors (exit 2, a message naming the problem)
env -u KTWIN_BROKER "$SVC" --port 0 >"$T/u1.out" 2>&1
check "no KTWIN_BROKER exits 2" 2 "$?"
contains "no KTWIN_BROKER says so" "$T/u1.out" 'KTWIN_BROKER is not set'
KTWIN_BROKER=http://127.0.0.1:1/ "$SVC" --port 0 --config '[1]' >"$T/u2.out" 2>&1
check "config not an object exits 2" 2 "$?"
contains "config error named" "$T/u2.out" 'config: not a JSON object'
KTWIN_BROKER=http://127.0.0.1:1/ "$SVC" --bogus 1 >"$T/u3.out" 2>&1
check "unknown option exits 2" 2 "$?"
KTWIN_BROKER=http://127.0.0.1:1/ "$SVC" --port 0 --config '{"refuse":true}' >"$T/u4.out" 2>&1
check "plugin init refusal exits 2" 2 "$?"
contains "init refusal named" "$T/u4.out" 'init refused'
"$SVC" --help >"$T/u5.out" 2>&1
check "--help exits 0" 0 "$?"
contains "--help shows usage" "$T/u5.out" '^usage: .*--port'

# ---- hub
kt_auth_files admin-secret site-00 tok-00
kt_hub_yaml 'sync: {heartbeat_ms: 1000}'
kt_start_hub
waitfor "hub ready" kt_hub_ready
kt_apply_model "$T/model.yaml"

# ---- the standalone service, started before the agent it points at
agent_port=$(free_port)
A="http://127.0.0.1:$agent_port"
KTWIN_BROKER="$A/" KTWIN_EVENT_STORE="$A" KTWIN_GRAPH_URL="$A/api/v1/twin-graph" \
    "$SVC" --address 127.0.0.1 --port 0 --port-file "$T/svc.port" --config '{"command":"Notify"}' \
    --graph-refresh 1 2>>"$T/svc.log" &
svc_pid=$!
PIDS+=("$svc_pid")
svc_port=$(wait_file "$T/svc.port") || bad "service port file"
S="http://127.0.0.1:$svc_port"
check "service health" '{"status":"OK"}' "$(curl -s "$S/healthz")"
contains "first graph load failed (agent not up yet)" "$T/svc.log" 'id=SDK-GRAPH-FAIL .*kept=none'

# ---- MQTT broker for the device part (optional)
mqtt_line=""
if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null; then
    kt_start_mosquitto
    mqtt_line="mqtt: {url: \"tcp://127.0.0.1:$mqtt_port\"}"
fi

# ---- agent: the service serves city-pole and hood
kt_agent_yaml site-00 "$agent_port" 1s "$mqtt_line" 'services:' '  specs:' \
    "  - \"city-pole,hood=$S/ concurrency=2 timeout=10s retries=5 backoff=100ms\""
kt_start_agent
waitfor "agent up" kt_agent_up
placed() {
    curl -s "$A/api/v1/placement" | grep -q '"interface":"city-pole","where":"edge"' &&
        curl -s "$A/api/v1/placement" | grep -q '"interface":"hood","where":"edge"' &&
        curl -s "$A/api/v1/twin-graph" | grep -q '"hood-1"'
}
waitfor "placement and graph at the agent" placed

device() { # VALUE: a device's real event through the agent's broker ingress, binary mode
    curl -s -o /dev/null -w '%{http_code}' -X POST "$A/" -H "ce-specversion: 1.0" \
        -H "ce-id: dev-$1-$RANDOM" -H "ce-type: ktwin.real.city-pole" -H "ce-source: pole-1" \
        -H "Content-Type: application/json" --data "{\"powerState\":\"$1\"}"
}
latest() { curl -sf "$A/api/v1/twin-events/$1/$2/latest"; }
has_latest() { latest "$1" "$2" | grep -q -- "$3"; }

check "device event 1 accepted" 202 "$(device on)"
waitfor "store event 1 in the agent's latest state" has_latest city-pole pole-1 '"seen":1'
check "store event 1: graph peers, latest, data" \
    '{"seen":1,"peers":2,"last":{"powerState":"on"}}' "$(latest city-pole pole-1)"
contains "graph loaded before the first event" "$T/svc.log" 'id=SDK-GRAPH-LOADED .*instances=3'
waitfor "the command ran the service for hood-1" has_latest hood hood-1 '"lastCommand":"notify"'
check "hood-1 state: command, incoming edges from the graph" \
    '{"lastCommand":"notify","commandData":{"from":"pole-1","rel":"refNeighborhood"},"incoming":2,"firstIncomingIface":"city-pole"}' \
    "$(latest hood hood-1)"

# event 2: over MQTT when there is a broker (a real device path), else the ingress again
if [ -n "$mqtt_line" ] && wait_until 30 grep -q 'id=MQTT-SUBSCRIBED' "$T/agent.log"; then
    mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/real/city-pole/pole-1 -m '{"powerState":"off"}' ||
        bad "mosquitto_pub"
else
    echo "NOTE: no MQTT bridge or mosquitto: event 2 through the ingress"
    check "device event 2 accepted" 202 "$(device off)"
fi
waitfor "store event 2 (seen read back through ktwin_latest)" has_latest city-pole pole-1 '"seen":2'
check "store event 2" '{"seen":2,"peers":2,"last":{"powerState":"off"}}' "$(latest city-pole pole-1)"

# ---- at the hub: the agent's outbox carried the service's store events up
H="http://127.0.0.1:$hub_port"
hub_has() { curl -sf "$H/api/v1/twin-events/city-pole/pole-1/latest" | grep -q '"seen":2'; }
waitfor "the service's store event reached the hub's event store" hub_has
check "hub latest of pole-1" '{"seen":2,"peers":2,"last":{"powerState":"off"}}' \
    "$(curl -sf "$H/api/v1/twin-events/city-pole/pole-1/latest")"
hub_hood() { curl -sf "$H/api/v1/twin-events/hood/hood-1/latest" | grep -q notify; }
waitfor "hood-1's store event at the hub" hub_hood

# ---- direct POSTs to the service
post() { # expect NAME CODE curl-args...
    local name=$1 want=$2
    shift 2
    check "$name" "$want" "$(curl -s -o "$T/post.out" -w '%{http_code}' -X POST "$S/" "$@")"
}
post "malformed event -> 400" 400 -H "ce-specversion: 1.0" -H "ce-id: x" -H "ce-source: pole-1" \
    --data '{}'
contains "400 names the header" "$T/post.out" 'ce-type'
post "not a ktwin type -> 400" 400 -H "ce-specversion: 1.0" -H "ce-id: x" -H "ce-type: a.b" \
    -H "ce-source: pole-1" --data '{}'
post "structured mode -> 200" 200 -H "Content-Type: application/cloudevents+json" \
    --data '{"specversion":"1.0","id":"s-1","type":"ktwin.real.city-pole","source":"pole-2","data":{"powerState":"dim"}}'
waitfor "structured event's store event" has_latest city-pole pole-2 '"dim"'
post "handler failure -> 500" 500 -H "ce-specversion: 1.0" -H "ce-id: f-1" \
    -H "ce-type: ktwin.real.city-pole" -H "ce-source: pole-2" --data '{"fail":true}'
post "handler asks to retry -> 503" 503 -H "ce-specversion: 1.0" -H "ce-id: r-1" \
    -H "ce-type: ktwin.real.city-pole" -H "ce-source: pole-2" --data '{"retry":true}'
# the failed calls' emits were discarded: pole-2's state is still the structured event's
check "failed handler's emits discarded" '"dim"' "$(latest city-pole pole-2 | grep -o '"dim"')"
lacks "no fail state stored" <(latest city-pole pole-2) '"fail"'
post "wrong method" 405 -X GET

check "metric ok" 1 "$([ "$(svc_metric "$svc_port" 'ktwin_sdk_events_total{result="ok"}')" -ge 5 ] && echo 1)"
check "metric rejected" 2 "$(svc_metric "$svc_port" 'ktwin_sdk_events_total{result="rejected"}')"
check "metric failed" 1 "$(svc_metric "$svc_port" 'ktwin_sdk_events_total{result="failed"}')"
check "metric retry" 1 "$(svc_metric "$svc_port" 'ktwin_sdk_events_total{result="retry"}')"
check "metric graph instances" 3 "$(svc_metric "$svc_port" ktwin_sdk_graph_instances)"
emits=$(svc_metric "$svc_port" ktwin_sdk_emits_total)
[ "${emits:-0}" -ge 8 ] && ok || bad "emits_total $emits, expected >= 8"

# ---- an unreachable broker -> 502; a graph never loaded -> 503
KTWIN_BROKER=http://127.0.0.1:1/ "$SVC" --address 127.0.0.1 --port 0 --port-file "$T/b.port" \
    --timeout-ms 2000 2>>"$T/svc-b.log" &
b_pid=$!
PIDS+=("$b_pid")
b_port=$(wait_file "$T/b.port") || bad "broker-less service port file"
check "emit undeliverable -> 502" 502 "$(curl -s -o "$T/b.out" -w '%{http_code}' -X POST \
    "http://127.0.0.1:$b_port/" -H "ce-specversion: 1.0" -H "ce-id: b-1" \
    -H "ce-type: ktwin.real.city-pole" -H "ce-source: pole-1" --data '{}')"
contains "502 names the broker" "$T/b.out" '127.0.0.1:1'
contains "no store warned" "$T/svc-b.log" 'id=SDK-NO-STORE'
stop "$b_pid" "broker-less service"

KTWIN_BROKER="$A/" KTWIN_GRAPH_URL=http://127.0.0.1:1/api/v1/twin-graph "$SVC" --address 127.0.0.1 \
    --port 0 --port-file "$T/g.port" --timeout-ms 2000 2>>"$T/svc-g.log" &
g_pid=$!
PIDS+=("$g_pid")
g_port=$(wait_file "$T/g.port") || bad "graph-less service port file"
check "graph never loaded -> 503" 503 "$(curl -s -o "$T/g.out" -w '%{http_code}' -X POST \
    "http://127.0.0.1:$g_port/" -H "ce-specversion: 1.0" -H "ce-id: g-1" \
    -H "ce-type: ktwin.real.city-pole" -H "ce-source: pole-1" --data '{}')"
contains "503 says the graph is missing" "$T/g.out" 'twin graph not loaded'
stop "$g_pid" "graph-less service"

# ---- SIGTERM: clean exit 0
kill -TERM "$svc_pid"
wait "$svc_pid"
check "SIGTERM exits 0" 0 "$?"
contains "stop logged" "$T/svc.log" 'id=SDK-STOP'
lacks "no sanitizer report" "$T/svc.log" 'ERROR: (Address|Undefined|Leak)Sanitizer|runtime error'

# ---- the same plugin code in-process: the agent loads echo_plugin.so instead
if [ -n "$PLUGIN" ]; then
    stop "$agent_pid" "agent"
    grep -v '^  - "city-pole,hood=' "$T/agent.yaml" >"$T/agent2.yaml"
    echo "  - 'city-pole,hood=$PLUGIN config={\"command\":\"Notify\"}'" >>"$T/agent2.yaml"
    mv "$T/agent2.yaml" "$T/agent.yaml"
    kt_start_agent "$T/agent2.log"
    waitfor "agent up with the plugin" kt_agent_up
    contains "plugin loaded in-process" "$T/agent2.log" 'id=SVC-PLUGIN-LOADED .*plugin=echo'
    waitfor "placement back at the edge" placed
    check "in-process: device event accepted" 202 "$(curl -s -o /dev/null -w '%{http_code}' \
        -X POST "$A/" -H "ce-specversion: 1.0" -H "ce-id: ip-1" -H "ce-type: ktwin.real.city-pole" \
        -H "ce-source: pole-2" -H "Content-Type: application/json" --data '{"powerState":"bright"}')"
    # same code, same answer: seen continues from the state the standalone run stored
    waitfor "in-process store event" has_latest city-pole pole-2 '"bright"'
    check "in-process: same result as standalone" \
        '{"seen":2,"peers":2,"last":{"powerState":"bright"}}' "$(latest city-pole pole-2)"
fi

stop "$agent_pid" "agent"
kt_finish
