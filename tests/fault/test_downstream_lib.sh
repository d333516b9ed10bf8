# tests/fault/test_downstream_lib.sh — shared by the test_downstream*.sh
# fault tests (sourced after tests/lib/testlib.sh; not a test itself).
#
# Gives: a model (dl_model), a hub (dl_hub_start / $hub_port / $hub_pid),
# a site-a agent (dl_agent_start / $agent_port / $agent_pid), a mosquitto
# for site-a (dl_mosquitto / $mqtt_port), and one Python twin service
# (dl_service MODE NAME BROKER_URL [SLEEP_S]: the service's port in
# $svc_port, its log in $T/NAME.log) written with the standard library:
#   log    logs "got <ce-type> <ce-source> <ce-id> <ce-ktwindepth|-> <body>", answers 200
#   slow   logs "got ...", sleeps SLEEP_S, logs "done <ce-id>", answers 200
#   loop   logs "got ...", POSTs an event of the same type and source back to
#          BROKER_URL carrying the ce-ktwindepth it got (as a KTWIN service that
#          forwards the attribute would), answers 200
#   cross  logs "got ...", for ktwin.real.hood POSTs ktwin.command.pole.alert
#          (source pole-1), for ktwin.command.pole.alert POSTs ktwin.real.hood
#          (source hood-1), each to BROKER_URL with the ce-ktwindepth it got:
#          on the hub for hood and on the agent for pole, a loop that crosses
#          the sync link both ways, answers 200
#   cloud  logs "got ...", for ktwin.real.hood POSTs ktwin.command.pole.alert
#          (source pole-1) and ktwin.virtual.lamp (source lamp-1) to
#          BROKER_URL (KTWIN's PublishCommand / PublishToRealTwin), answers 200
# Processes are started on 127.0.0.1 and added to PIDS (by tests/lib/ktprocs.sh,
# sourced here: waitfor, kt_start_hub, kt_start_mosquitto, kt_start_agent...).

. "$(dirname "${BASH_SOURCE[0]}")/../lib/ktprocs.sh"

# mval PORT NAME [LABELS]: a metric's value ('' when absent); LABELS as in the
# exposition, e.g. 'reason="depth"'.
mval() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" -v l="${3:-}" '
            l == "" && $1 == n { print $2; exit }
            l != "" && index($1, n "{") == 1 && index($1, l) > 0 { print $2; exit }'
}

# ge A B: A >= B as numbers (A may be empty: false).
ge() { [ -n "$1" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# lines FILE REGEX: how many lines of FILE match REGEX (0 when no file).
lines() { if [ -f "$1" ]; then grep -cE -- "$2" "$1"; else echo 0; fi; }

dl_model() {
    cat >"$T/model.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: pole}
spec:
  commands: [{name: alert}]
  service: {template: {spec: {containers: [{name: p, image: ktwin/pole}]}}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: lamp}
spec:
  properties: [{name: on, schema: {primitiveType: boolean}}]
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: hood}
spec:
  service: {template: {spec: {containers: [{name: h, image: ktwin/hood}]}}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: echo}
spec:
  service: {template: {spec: {containers: [{name: e, image: ktwin/echo}]}}}
---
apiVersion: edge.ktwin/v0
kind: PlacementPolicy
metadata: {name: p}
spec:
  rules:
  - name: edge
    match: {interfaces: [pole, lamp, echo]}
    placement: edge
    offline: required    # stays at site-a while its agent is away (no overflow to the cloud)
  - name: cloud
    match: {interfaces: [hood]}
    placement: cloud
  defaultPlacement: cloud
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-1, labels: {ktwin.io/site: site-a}}
spec: {interface: pole}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: lamp-1, labels: {ktwin.io/site: site-a}}
spec: {interface: lamp}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: hood-1, labels: {ktwin.io/site: site-a}}
spec: {interface: hood}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: echo-1, labels: {ktwin.io/site: site-a}}
spec: {interface: echo}
EOF
    kt_auth_files admin-secret site-a tok-a
    hub_port=$(free_port)
    agent_port=$(free_port)
}

# dl_hub_yaml [EXTRA YAML]: write the hub's config (the model must exist).
dl_hub_yaml() {
    kt_hub_yaml 'sync: {heartbeat_ms: 1000}' "${1:-}"
}

# dl_hub_start: start the hub on $hub_port (config from dl_hub_yaml), wait for /readyz.
dl_hub_start() {
    kt_start_hub
    wait_until 60 kt_hub_ready
}

# dl_apply: apply the model at the hub.
dl_apply() {
    kt_apply_model "$T/model.yaml"
}

# dl_mosquitto: site-a's broker ($mqtt_port), waited for (30 s).
dl_mosquitto() {
    kt_start_mosquitto
    wait_until 30 kt_mosquitto_ready
}

# dl_services SPEC [MAX_DEPTH]: the services section of a hub or agent config
# with one HTTP service spec (svc/service.h), e.g.
#   dl_hub_yaml "$(dl_services "hood=http://127.0.0.1:$svc_port/ retries=0" 2)"
dl_services() {
    echo "services:"
    if [ -n "${2:-}" ]; then echo "  max_depth: $2"; fi
    echo "  specs:"
    echo "  - \"$1\""
}

# dl_agent_yaml EXTRA: write the site-a agent's config.
dl_agent_yaml() {
    kt_agent_yaml site-a "$agent_port" 500ms "${1:-}"
}

dl_agent_start() {
    kt_start_agent
    wait_until 60 kt_agent_up
}

# dl_agent_placed IFACE: the agent's placement says IFACE runs at the edge (here).
dl_agent_placed() {
    curl -s "http://127.0.0.1:$agent_port/api/v1/placement" >"$T/placement.json"
    grep -q "\"interface\":\"$1\",\"where\":\"edge\"" "$T/placement.json"
}

# post URL TYPE SOURCE ID DATA [EXTRA HEADER]: a binary-mode CloudEvent; prints the status.
post() {
    local extra=()
    if [ -n "${6:-}" ]; then extra=(-H "$6"); fi
    curl -s -o /dev/null -w '%{http_code}' -X POST "$1" -H 'ce-specversion: 1.0' \
        -H "ce-id: $4" -H "ce-type: $2" -H "ce-source: $3" -H 'Content-Type: application/json' \
        "${extra[@]}" --data "$5"
}

dl_service_py() {
    cat >"$T/service.py" <<'PY'
import http.server, json, os, sys, time, urllib.request, uuid

MODE, PORTFILE, LOGFILE, BROKER = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
SLEEP = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
LOG = open(LOGFILE, "a", buffering=1)

def post(ce_type, source, data, depth=None):
    h = {"ce-id": str(uuid.uuid4()), "ce-specversion": "1.0", "ce-source": source,
         "ce-type": ce_type, "Content-Type": "application/json"}
    if depth is not None:
        h["ce-ktwindepth"] = depth
    req = urllib.request.Request(BROKER, data=json.dumps(data).encode(), method="POST", headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        LOG.write("post %s %s %d\n" % (ce_type, source, r.status))

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        t, s, i = self.headers.get("ce-type", ""), self.headers.get("ce-source", ""), \
            self.headers.get("ce-id", "")
        d = self.headers.get("ce-ktwindepth")
        LOG.write("got %s %s %s %s %s\n" % (t, s, i, d if d is not None else "-", body.decode()))
        code = 200
        try:
            if MODE == "slow":
                time.sleep(SLEEP)
                LOG.write("done %s\n" % i)
            elif MODE == "loop":
                post(t, s, {"again": True}, d)
            elif MODE == "cross" and t == "ktwin.real.hood":
                post("ktwin.command.pole.alert", "pole-1", {"from": s}, d)
            elif MODE == "cross" and t == "ktwin.command.pole.alert":
                post("ktwin.real.hood", "hood-1", {"from": s}, d)
            elif MODE == "cloud" and t == "ktwin.real.hood":
                v = json.loads(body or b"{}").get("v")
                post("ktwin.command.pole.alert", "pole-1", {"from": s, "v": v})
                post("ktwin.virtual.lamp", "lamp-1", {"on": True, "v": v})
        except Exception as e:
            LOG.write("error %r\n" % (e,))
            code = 500
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(PORTFILE + ".tmp", "w").write("%d\n" % srv.server_address[1])
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
PY
}

# dl_service MODE NAME BROKER_URL [SLEEP_S]
dl_service() {
    [ -f "$T/service.py" ] || dl_service_py
    rm -f "$T/$2.port"
    python3 "$T/service.py" "$1" "$T/$2.port" "$T/$2.log" "$3" "${4:-0}" 2>>"$T/$2.err" &
    PIDS+=("$!")
    svc_port=$(wait_file "$T/$2.port") || bad "service $2 did not start"
}
