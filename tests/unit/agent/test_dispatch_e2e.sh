#!/usr/bin/env bash
# The agent's event plane end to end, with the real ktwin-agent and ktwin-hub
# and a twin service written here (Python, standard library only) that makes
# exactly the HTTP calls of KTWIN's Go SDK (KTWIN.md §5.1), configured only
# through KTWIN_BROKER, KTWIN_EVENT_STORE and KTWIN_GRAPH_URL pointing at the
# agent:
#   - receives binary-mode CloudEvents on POST / and answers 200;
#   - GETs {KTWIN_GRAPH_URL}/{iface} (LoadTwinGraphByInterfaces) and finds
#     the instance's "pole" relationship (GetRelationshipFromGraph);
#   - GETs {KTWIN_EVENT_STORE}/api/v1/twin-events/{iface}/{inst}/latest
#     (GetLatestTwinEvent: 404 -> none; 200 -> binary CloudEvent reply);
#   - POSTs a ktwin.store.<iface> event (UpdateTwinEvent) and a
#     ktwin.command.pole.alert event with source = the target instance
#     (PublishCommand) to {KTWIN_BROKER} in binary mode, expecting 202.
# The hub gives the agent its graph and placement (sensor and pole at the
# edge of site-00), then is stopped and the agent restarted: everything
# below runs offline, from the agent's cache.
#   - a device event posted to the agent's ingress (POST /, binary mode) runs
#     the service; its store event reaches the latest state (merged with the
#     previous one: upsert-merge) and the outbox; its command runs pole's
#     service for pole-1 here, whose store event reaches pole-1's latest state;
#   - a structured-mode event is accepted (202); a bad one gets 400;
#   - POST /api/v1/twin-events upsert-merges;
#   - an event of an unknown interface is counted as a drop;
#   - when ktwin-agent runs its MQTT bridge: a device publish on
#     ktwin/real/sensor/sensor-1 runs the service, its store event reaches the
#     latest state and the outbox, and its virtual event reaches the device on
#     ktwin/virtual/sensor/sensor-1.
#
# usage: test_dispatch_e2e.sh AGENT HUB
set -uo pipefail
AGENT=$1
HUB=$2
. "$(dirname "$0")/../../lib/testlib.sh"
. "$(dirname "$0")/../../lib/ktprocs.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

# ---- model: sensor (service) -> pole (service, command alert), both placed at the edge
cat >"$T/model.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: sensor}
spec:
  relationships: [{name: pole, interface: pole}]
  service: {template: {spec: {containers: [{name: s, image: ktwin/sensor}]}}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: pole}
spec:
  commands: [{name: alert}]
  service: {template: {spec: {containers: [{name: p, image: ktwin/pole}]}}}
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
metadata: {name: sensor-1, labels: {ktwin.io/site: site-00}}
spec:
  interface: sensor
  twinInstanceRelationships: [{name: pole, interface: pole, instance: pole-1}]
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-1, labels: {ktwin.io/site: site-00}}
spec: {interface: pole}
EOF

# ---- hub: graph and placement for site-00
kt_auth_files admin-secret site-00 tok-00
kt_hub_yaml 'sync: {heartbeat_ms: 1000}'
kt_start_hub
waitfor "hub ready" kt_hub_ready
kt_apply_model "$T/model.yaml"

# ---- the twin service (KTWIN SDK calls), port chosen by the OS
cat >"$T/service.py" <<'PY'
import http.server, json, os, sys, urllib.request, urllib.error, uuid, datetime

BROKER = os.environ["KTWIN_BROKER"]
STORE = os.environ["KTWIN_EVENT_STORE"]
GRAPH = os.environ["KTWIN_GRAPH_URL"]
LOG = open(sys.argv[2], "a", buffering=1)

def post_event(ce_type, source, data):  # ktwin.PostCloudEvent: binary mode, expects 202
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    req = urllib.request.Request(BROKER, data=json.dumps(data).encode(), method="POST", headers={
        "ce-id": str(uuid.uuid4()), "ce-specversion": "1.0", "ce-time": now,
        "ce-source": source, "ce-type": ce_type, "ce-subject": "",
        "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        LOG.write("post %s %s %d\n" % (ce_type, source, r.status))
        return r.status

def latest(iface, inst):  # keventstore.GetLatestTwinEvent: 404 -> None
    try:
        with urllib.request.urlopen("%s/api/v1/twin-events/%s/%s/latest" % (STORE, iface, inst),
                                    timeout=10) as r:
            LOG.write("latest %s %d %s\n" % (inst, r.status, r.headers.get("ce-type")))
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        LOG.write("latest %s %d\n" % (inst, e.code))
        return None

def graph(iface):  # ktwingraph.LoadTwinGraphByInterfaces
    with urllib.request.urlopen("%s/%s" % (GRAPH, iface), timeout=10) as r:
        return json.loads(r.read())

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ce_type, source = self.headers.get("ce-type", ""), self.headers.get("ce-source", "")
        LOG.write("got %s %s %s\n" % (ce_type, source, body.decode()))
        try:
            data = json.loads(body or b"{}")
            if ce_type == "ktwin.real.sensor":
                g = graph("sensor")
                rel = next(r for i in g["twinInstances"] if i["name"] == source
                           for r in i.get("relationships", []) if r["name"] == "pole")
                prev = latest("sensor", source) or {}
                state = {"v": data.get("v"), "count": prev.get("count", 0) + 1}
                if prev.get("first") is None:
                    state["first"] = data.get("v")
                post_event("ktwin.store.sensor", source, state)
                if data.get("v", 0) > 10:
                    post_event("ktwin.command.%s.alert" % rel["interface"], rel["instance"],
                               {"from": source})
                    post_event("ktwin.virtual.sensor", source, {"led": "on"})  # PublishToRealTwin
            elif ce_type == "ktwin.command.pole.alert":
                post_event("ktwin.store.pole", source, {"alerted": True})
            self.send_response(200)
        except Exception as e:  # KTWIN's StartServer answers 500 on handler errors
            LOG.write("error %r\n" % (e,))
            self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write("%d\n" % srv.server_address[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
PY

# ---- the site's MQTT broker (the MQTT part below runs when ktwin-agent has its bridge)
kt_start_mosquitto

# ---- agent
agent_port=$(free_port)
svc_port_file="$T/service.port"
# The service's port is needed in the agent config: start the service first.
KTWIN_BROKER="http://127.0.0.1:$agent_port/" KTWIN_EVENT_STORE="http://127.0.0.1:$agent_port" \
KTWIN_GRAPH_URL="http://127.0.0.1:$agent_port/api/v1/twin-graph" \
    python3 "$T/service.py" "$svc_port_file" "$T/service.log" 2>>"$T/service.err" &
PIDS+=("$!")
svc_port=$(wait_file "$svc_port_file") || bad "service port file"
kt_agent_yaml site-00 "$agent_port" 1s "mqtt: {url: \"tcp://127.0.0.1:$mqtt_port\"}" \
    'services:' '  specs:' \
    "  - \"sensor,pole=http://127.0.0.1:$svc_port/ concurrency=2 timeout=5s retries=2\""
kt_start_agent
waitfor "agent up" kt_agent_up
for ((i = 0; i < 300; i++)); do
    curl -s "http://127.0.0.1:$agent_port/api/v1/placement" >"$T/placement.json"
    grep -q '"interface":"sensor","where":"edge"' "$T/placement.json" &&
        grep -q '"interface":"pole","where":"edge"' "$T/placement.json" && break
    sleep 0.1
done
contains "placement: sensor at the edge" "$T/placement.json" '"interface":"sensor","where":"edge"'
contains "placement: pole at the edge" "$T/placement.json" '"interface":"pole","where":"edge"'

# ---- offline from here on; the agent restarts without its hub and serves from its cache
stop "$hub_pid" "hub"
stop "$agent_pid" "agent"
kt_start_agent
waitfor "agent up again, offline" kt_agent_up

A="http://127.0.0.1:$agent_port"
device() { # VALUE: a device's real event through the broker ingress, binary mode
    curl -s -o /dev/null -w '%{http_code}' -X POST "$A/" -H "ce-specversion: 1.0" \
        -H "ce-id: dev-$1-$RANDOM" -H "ce-type: ktwin.real.sensor" -H "ce-source: sensor-1" \
        -H "Content-Type: application/json" --data "{\"v\":$1}"
}
latest_field() { # IFACE INST -> body (empty when not 200)
    curl -sf "$A/api/v1/twin-events/$1/$2/latest"
}

check "device event 1 accepted" 202 "$(device 5)"
waitfor "store event 1 in the latest state" \
    sh -c "curl -sf '$A/api/v1/twin-events/sensor/sensor-1/latest' | grep -q '\"count\":1'"
body=$(latest_field sensor sensor-1)
check "latest after event 1" '{"v":5,"count":1,"first":5}' "$body"
curl -s -D "$T/latest.h" -o /dev/null "$A/api/v1/twin-events/sensor/sensor-1/latest"
contains "latest is a binary CloudEvent" "$T/latest.h" '^ce-type: ktwin.store.sensor'
contains "latest has ce-source" "$T/latest.h" '^ce-source: sensor-1'

check "device event 2 accepted" 202 "$(device 42)"
waitfor "store event 2 merged" \
    sh -c "curl -sf '$A/api/v1/twin-events/sensor/sensor-1/latest' | grep -q '\"count\":2'"
# upsert-merge: "first" came only with event 1 and is kept
check "latest after event 2" '{"v":42,"count":2,"first":5}' "$(latest_field sensor sensor-1)"
# v > 10: the service sent a command to pole-1 (this site) -> pole's service ran here
waitfor "command ran pole's service" \
    sh -c "curl -sf '$A/api/v1/twin-events/pole/pole-1/latest' | grep -q alerted"
contains "service saw its first latest as 404" "$T/service.log" '^latest sensor-1 404$'
contains "service saw the second latest as a CloudEvent" "$T/service.log" \
    '^latest sensor-1 200 ktwin.store.sensor$'
contains "service got the command" "$T/service.log" '^got ktwin.command.pole.alert pole-1'
lacks "service posts all got 202" "$T/service.log" '^post .* [^2][0-9][0-9]$'
lacks "no service errors" "$T/service.log" '^error'

# the outbox holds the three store events (the hub is down)
check "outbox: three store events" 3 "$(metric "$agent_port" ktwin_agent_outbox_events)"

# structured mode; a bad event
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/" \
    -H "Content-Type: application/cloudevents+json" \
    --data '{"specversion":"1.0","id":"s-1","type":"ktwin.store.sensor","source":"sensor-1","data":{"extra":true}}')
check "structured event accepted" 202 "$code"
check "structured store merged" '{"v":42,"count":2,"first":5,"extra":true}' \
    "$(latest_field sensor sensor-1)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/" -H "ce-specversion: 1.0" \
    -H "ce-id: x" -H "ce-type: not.a.type" -H "ce-source: sensor-1" --data '{}')
check "bad type refused" 400 "$code"

# POST /api/v1/twin-events (KTWIN's event store API): upsert-merge
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/api/v1/twin-events" -H "ce-specversion: 1.0" \
    -H "ce-id: es-1" -H "ce-type: ktwin.store.pole" -H "ce-source: pole-1" \
    -H "Content-Type: application/json" --data '{"lamp":"off"}')
check "event store POST accepted" 202 "$code"
check "event store POST merged" '{"alerted":true,"lamp":"off"}' "$(latest_field pole pole-1)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$A/api/v1/twin-events/pole/nope/latest")
check "unknown instance latest" 404 "$code"
curl -s "$A/api/v1/twin-events/sensor/sensor-1" >"$T/list.json"
contains "list: the instance's latest event" "$T/list.json" '"instanceId":"sensor-1"'

# unknown interface: accepted by the ingress (as KTWIN's broker), dropped and counted
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/" -H "ce-specversion: 1.0" \
    -H "ce-id: u-1" -H "ce-type: ktwin.real.nosuch" -H "ce-source: x-1" --data '{}')
check "unknown interface accepted" 202 "$code"
check "unknown interface counted" 1 \
    "$(metric "$agent_port" 'ktwin_agent_dispatch_dropped_total{reason="unknown-iface"}')"
contains "drop logged" "$T/agent.log" 'id=DISPATCH-DROP .*reason=unknown-iface'

# ---- MQTT: device publish -> service -> latest + outbox; virtual event back to the device
if wait_until 15 grep -qE 'id=MQTT-(CONNECTED|CONNECT-FAILED)' "$T/agent.log"; then
    waitfor "agent subscribed" grep -qE 'id=MQTT-SUBSCRIBED' "$T/agent.log"
    mosquitto_sub -p "$mqtt_port" -q 1 -t 'ktwin/virtual/sensor/sensor-1' \
        >"$T/virtual.out" 2>>"$T/mosquitto.log" &
    PIDS+=("$!")
    # the device's subscription is live once a probe published on its topic arrives
    probe() {
        mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/virtual/sensor/sensor-1 -m probe
        grep -q '^probe$' "$T/virtual.out"
    }
    waitfor "device subscribed" probe
    outbox_before=$(metric "$agent_port" ktwin_agent_outbox_events)
    mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/real/sensor/sensor-1 -m '{"v":77}' ||
        bad "mosquitto_pub"
    waitfor "device event via MQTT reached the latest state" \
        sh -c "curl -sf '$A/api/v1/twin-events/sensor/sensor-1/latest' | grep -q '\"v\":77'"
    check "latest after the MQTT event" '{"v":77,"count":3,"first":5,"extra":true}' \
        "$(latest_field sensor sensor-1)"
    waitfor "virtual event published to the device" grep -q '"led"' "$T/virtual.out"
    contains "virtual payload" "$T/virtual.out" '^\{"led": ?"on"\}$'
    outbox_after=$(metric "$agent_port" ktwin_agent_outbox_events)
    [ "${outbox_after:-0}" -gt "${outbox_before:-0}" ] && ok ||
        bad "outbox did not grow: $outbox_before -> $outbox_after"
else
    echo "NOTE: ktwin-agent has no MQTT bridge wired (no MQTT-CONNECTED in its log): MQTT part not run"
fi

stop "$agent_pid" "agent"
kt_finish
