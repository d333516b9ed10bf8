#!/usr/bin/env bash
# ktwin-agent against a real ktwin-hub, on loopback, through the hub's
# documented HTTP API and config only:
#  - the agent connects, receives its snapshot (its graph equals the hub's
#    model: every instance of the generated 1-neighborhood city is on site-00),
#    and the placement the hub computed for its site;
#  - an apply at the hub (one instance changed, one added) reaches the agent
#    as a delta, without a new snapshot;
#  - with the hub stopped, a restarted agent serves its cached graph at once;
#  - when the hub comes back (same port and data), the agent reconnects by
#    itself, catches up without a snapshot, and gets later applies;
#  - a capacity change by SIGHUP reaches the hub (GET /api/v1/sites);
#  - a wrong token is rejected (UNAUTHENTICATED), logged and counted;
#  - agents over the hub's admission rate get Reject{BUSY}, wait at least its
#    retry_after_ms (longer than their own reconnect.cap_ms) and all get in;
#  - both exit 0 on SIGTERM.
#
# usage: test_agent_hub.sh AGENT HUB KTWIN_SIM KTWINCTL
set -uo pipefail
AGENT=$1
HUB=$2
SIM=$3
KTWINCTL=$4
. "$(dirname "$0")/../../lib/testlib.sh"
. "$(dirname "$0")/../../lib/ktprocs.sh"
# wait_metric NAME PORT METRIC VALUE: poll until equal (60 s).
wait_metric() {
    local i v=
    for ((i = 0; i < 600; i++)); do
        v=$(metric "$2" "$3")
        if [ "$v" = "$4" ]; then ok; return 0; fi
        sleep 0.1
    done
    bad "$1: $3 is '$v', expected '$4'"
    return 1
}
apply() { # FILE -> the new revision on stdout
    curl -s -H "Authorization: Bearer admin-secret" --data-binary @"$1" \
        "http://127.0.0.1:$hub_port/api/v1/apply" >"$T/apply.out"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["revision"])' "$T/apply.out"
}
same_graph() { # name expected actual
    if python3 - "$2" "$3" <<'PY'; then ok; else bad "$1: graphs differ"; fi
import json, sys
def norm(p):
    d = json.load(open(p))
    return sorted(((i["name"], i["interface"], json.dumps(i.get("relationships", []), sort_keys=True))
                   for i in d["twinInstances"]))
a, b = norm(sys.argv[1]), norm(sys.argv[2])
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
}

# ---- the model and the hub
"$SIM" model --neighborhoods 1 --sites 1 --format json -o "$T/city" >/dev/null || bad "ktwin-sim"
kt_auth_files admin-secret site-00 tok-00 busy-1 tok-b1 busy-2 tok-b2 busy-3 tok-b3
printf 'wrong\n' >"$T/badtoken"
kt_hub_yaml 'sync: {heartbeat_ms: 1000, admit_rate: 1, admit_burst: 1}'
start_hub() {
    kt_start_hub
    wait_until 30 kt_hub_ready || bad "hub did not become ready"
}
start_hub
r1=$(apply "$T/city/interfaces.yaml")
r2=$(apply "$T/city/policy.yaml")
cat "$T"/city/instances-*.json >"$T/instances.json"
rev=$(apply "$T/instances.json")
[ -n "$rev" ] && [ "$rev" -gt "$r2" ] && [ "$r2" -gt "$r1" ] || bad "apply revisions $r1 $r2 $rev"
"$KTWINCTL" graph -f "$T/city" >"$T/expected.json"

# ---- agent: snapshot, placement
write_agent_cfg() { # FILE TOKENFILE CACHE [SITE [CAP]]
    cat >"$1" <<EOF
site: ${4:-site-00}
hub: {url: "ws://127.0.0.1:$hub_port/sync", token_file: $2}
cache: {path: $3}
listen: {port: 0}
reconnect: {base_ms: 50ms, cap_ms: ${5:-1s}}
EOF
}
write_agent_cfg "$T/agent.yaml" "$T/token" "$T/agent.db"
start_agent() {
    kt_start_agent_port || bad "agent port file"
}
start_agent
wait_metric "snapshot revision" "$agent_port" ktwin_agent_graph_revision "$rev"
check "one snapshot" 1 "$(metric "$agent_port" ktwin_agent_snapshots_total)"
check "connected" 1 "$(metric "$agent_port" ktwin_agent_connected)"
curl -s "http://127.0.0.1:$agent_port/api/v1/twin-graph" >"$T/graph.json"
same_graph "agent graph after snapshot" "$T/expected.json" "$T/graph.json"
for ((i = 0; i < 300; i++)); do
    curl -s "http://127.0.0.1:$agent_port/api/v1/placement" >"$T/placement.json"
    grep -q '"interface":"city-pole","where":"edge"' "$T/placement.json" && break
    sleep 0.1
done
contains "placement: city-pole at the edge" "$T/placement.json" '"interface":"city-pole","where":"edge"'
contains "placement: site" "$T/placement.json" '^\{"site":"site-00","revision":[1-9]'

# ---- deltas: one instance changed, one added
python3 - "$T/city" >"$T/change.json" <<'PY'
import glob, json, sys
docs = [json.loads(l) for f in sorted(glob.glob(sys.argv[1] + "/instances-*.json"))
        for l in open(f) if l.strip()]
pole = next(d for d in docs if d["spec"]["interface"] == "city-pole")
pole["metadata"].setdefault("labels", {})["changed"] = "yes"
new = json.loads(json.dumps(pole))
new["metadata"]["name"] = "city-pole-added-by-test"
print(json.dumps(pole))
print(json.dumps(new))
PY
rev2=$(apply "$T/change.json")
[ -n "$rev2" ] && [ "$rev2" -gt "$rev" ] || bad "change revision $rev2"
wait_metric "delta revision" "$agent_port" ktwin_agent_graph_revision "$rev2"
check "still one snapshot" 1 "$(metric "$agent_port" ktwin_agent_snapshots_total)"
deltas=$(metric "$agent_port" ktwin_agent_deltas_total)
[ "${deltas:-0}" -ge 1 ] && ok || bad "deltas_total $deltas"
curl -s "http://127.0.0.1:$agent_port/api/v1/twin-graph/city-pole" >"$T/poles.json"
contains "added instance served" "$T/poles.json" '"name":"city-pole-added-by-test"'

# ---- hub down: a restarted agent serves its cache at once
stop "$hub_pid" "hub"
stop "$agent_pid" "agent"
start_agent
curl -s "http://127.0.0.1:$agent_port/api/v1/twin-graph/city-pole" >"$T/poles2.json"
contains "cached graph served with the hub down" "$T/poles2.json" '"name":"city-pole-added-by-test"'
check "revision from the cache" "$rev2" "$(metric "$agent_port" ktwin_agent_graph_revision)"
check "not connected" 0 "$(metric "$agent_port" ktwin_agent_connected)"

# ---- hub back: the agent reconnects by itself, without a snapshot
start_hub
wait_metric "reconnected" "$agent_port" ktwin_agent_connected 1
check "no snapshot after reconnect" 0 "$(metric "$agent_port" ktwin_agent_snapshots_total)"
python3 - "$T/change.json" >"$T/change2.json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).readline())
d["metadata"]["labels"]["changed"] = "again"
print(json.dumps(d))
PY
rev3=$(apply "$T/change2.json")
wait_metric "delta after hub restart" "$agent_port" ktwin_agent_graph_revision "$rev3"
check "still no snapshot" 0 "$(metric "$agent_port" ktwin_agent_snapshots_total)"

# ---- capacity reload: SIGHUP sends a CapacityReport the hub shows in /api/v1/sites
printf 'capacity: {cpu_millis: 1234, memory_bytes: 3GiB}\n' >>"$T/agent.yaml"
kill -HUP "$agent_pid"
cap=
for ((i = 0; i < 300; i++)); do
    cap=$(curl -s "http://127.0.0.1:$hub_port/api/v1/sites" | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sites"] if x["name"] == "site-00"][0]
print(s.get("cpu_millis"), s.get("memory_bytes"))')
    [ "$cap" = "1234 3221225472" ] && break
    sleep 0.1
done
check "hub sees the reloaded capacity" "1234 3221225472" "$cap"

# ---- a wrong token is rejected, logged and counted
write_agent_cfg "$T/bad.yaml" "$T/badtoken" "$T/bad.db"
rm -f "$T/bad.port"
"$AGENT" --config "$T/bad.yaml" --port-file "$T/bad.port" 2>"$T/bad.log" &
bad_pid=$!
PIDS+=("$bad_pid")
bad_port=$(wait_file "$T/bad.port") || bad "bad agent port file"
for ((i = 0; i < 300; i++)); do grep -q 'id=UPLINK-REJECT' "$T/bad.log" && break; sleep 0.1; done
contains "reject logged" "$T/bad.log" 'id=UPLINK-REJECT .*code=unauthenticated'
curl -s "http://127.0.0.1:$bad_port/metrics" >"$T/bad.metrics"
contains "reject counted" "$T/bad.metrics" '^ktwin_agent_rejects_total\{code="unauthenticated"\} [1-9]'
check "rejected agent has nothing" 0 "$(metric "$bad_port" ktwin_agent_graph_revision)"
stop "$bad_pid" "rejected agent"

# ---- admission: three agents at once against 1 agent/s, burst 1
sleep 1.2 # let the bucket refill after the connections above
bpids=()
for b in 1 2 3; do
    printf 'tok-b%s\n' "$b" >"$T/b$b.token"
    write_agent_cfg "$T/b$b.yaml" "$T/b$b.token" "$T/b$b.db" "busy-$b" 200ms
    "$AGENT" --config "$T/b$b.yaml" --port-file "$T/b$b.port" 2>"$T/b$b.log" &
    bpids+=($!)
    PIDS+=($!)
done
for b in 1 2 3; do
    bport=$(wait_file "$T/b$b.port") || bad "busy-$b port file"
    wait_metric "busy-$b admitted" "$bport" ktwin_agent_connected 1
done
cat "$T"/b[123].log >"$T/busy.log"
contains "busy reject logged" "$T/busy.log" 'id=UPLINK-REJECT .*code=busy retry_after_ms=[1-9]'
# After each BUSY the next retry waits at least retry_after_ms (> reconnect.cap_ms 200).
for b in 1 2 3; do
    if ! awk '/id=UPLINK-REJECT .*code=busy/ { match($0, /retry_after_ms=[0-9]+/);
              want = substr($0, RSTART + 15, RLENGTH - 15) + 0; next }
              /id=UPLINK-RETRY/ && want > 0 { match($0, /in_ms=[0-9]+/);
              got = substr($0, RSTART + 6, RLENGTH - 6) + 0;
              if (got < want) { print "retry in " got " ms < retry_after " want; bad = 1 }
              want = 0 }
              END { exit bad }' "$T/b$b.log"; then
        bad "busy-$b retried before retry_after_ms"
    else
        ok
    fi
done
for i in 0 1 2; do stop "${bpids[$i]}" "busy agent $((i + 1))"; done

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
