# shellcheck shell=bash
# tests/fault/refuse_lib.sh — what the refusal fault tests share (sourced
# after tests/lib/testlib.sh, with HUB and AGENT set to the binaries).
#
# One model (interface city-pole, real events persisted, instance pole-1 on
# site-a), one real ktwin-hub (agents site-a and site-b) and one real
# ktwin-agent of site-a, all on 127.0.0.1 with ports chosen at run time and
# state under $T. Processes go into PIDS (killed at exit by testlib) and are
# stopped by PID at the end of each test.
#
# Processes are started with tests/lib/ktprocs.sh (sourced here).
#
# Invariants: every wait polls with a deadline; no timing is asserted.
# Ownership: everything it creates lives under $T.

. "$(dirname "${BASH_SOURCE[0]}")/../lib/ktprocs.sh"

# A metric with its labels, exactly as /metrics prints it: metric_of PORT 'name{a="b"}'.
metric_of() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
# count_id FILE ID: lines of FILE with the log id ID.
count_id() {
    grep -c -- "id=$2 " "$1" 2>/dev/null
}
# grew NAME BEFORE COMMAND...: COMMAND's output (a number) goes above BEFORE within 30 s.
grew() {
    local name=$1 before=${2:-0}
    shift 2
    local i v
    for ((i = 0; i < 300; i++)); do
        v=$("$@")
        if [ -n "$v" ] && [ "${v%.*}" -gt "${before%.*}" ] 2>/dev/null; then
            ok
            return 0
        fi
        sleep 0.1
    done
    bad "$name: did not grow above $before (now '${v:-}')"
    return 1
}

refuse_model() {
    cat >"$T/model.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  properties:
  - {name: count, schema: {primitiveType: integer}}
  eventStore: {persistRealEvent: true}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata:
  name: pole-1
  labels: {ktwin.io/site: site-a}
spec: {interface: city-pole}
EOF
    kt_auth_files admin site-a tok-a site-b tok-b
}

# hub_start [YAML_LINE...]: the hub with extra top-level config lines; sets hub_pid, hub_port.
hub_start() {
    hub_port=$(free_port)
    kt_hub_yaml "$@"
    kt_start_hub
    if ! wait_until 60 kt_hub_ready; then
        bad "hub did not start"
        return 1
    fi
    curl -sf -o "$T/apply.out" -H "Authorization: Bearer admin" --data-binary @"$T/model.yaml" \
        "http://127.0.0.1:$hub_port/api/v1/apply" || bad "apply"
}

# agent_start [YAML_LINE...]: the site-a agent; sets agent_pid, agent_port once it has the graph.
agent_start() {
    kt_agent_yaml site-a 0 300ms "$@"
    kt_start_agent_port || {
        bad "agent port"
        return 1
    }
    kt_wait_agent_revision "$agent_port" 1 || bad "agent did not get the graph"
}

# post_store ID COUNT: a store event at the agent's ingress (binary mode); prints the status.
post_store() {
    curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$agent_port/" \
        -H 'ce-specversion: 1.0' -H "ce-id: $1" -H 'ce-type: ktwin.store.city-pole' \
        -H 'ce-source: pole-1' -H 'Content-Type: application/json' -d "{\"count\": $2}"
}

# hub_counts: the "count" of every event of pole-1 in the hub's event store, sorted, one line.
hub_counts() {
    curl -s "http://127.0.0.1:$hub_port/api/v1/twin-events/city-pole/pole-1?limit=1000" |
        python3 -c '
import base64, json, sys
try:
    evs = json.load(sys.stdin)
except ValueError:
    evs = []
out = []
for e in evs:
    try:
        out.append(json.loads(base64.b64decode(e.get("eventData", ""))).get("count"))
    except (ValueError, AttributeError):
        out.append("?")
print(" ".join(str(v) for v in sorted(out, key=str)))'
}

# hub_has_counts "SORTED COUNTS": the hub's store holds exactly these (polls 60 s), else a failure.
hub_has_counts() {
    local want
    want=$(echo "$1" | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/^ *//; s/ *$//')
    is_want() { test "$(hub_counts)" = "$want"; }
    if wait_until 60 is_want; then
        ok
    else
        bad "hub event store: got '$(hub_counts)', expected '$want' (each once)"
    fi
}
