#!/usr/bin/env bash
# Store-and-forward, agent to hub, with real processes on 127.0.0.1:
#  - a store event posted to the agent's broker ingress (KTWIN's POST /,
#    binary mode) reaches the hub's event store through the outbox and the
#    sync connection, exactly once, and the agent's outbox is emptied by the
#    hub's ack;
#  - events posted while the hub is down are kept (the agent answers 202),
#    and arrive exactly once when the hub is back.
#
# usage: test_events_uplink.sh HUB AGENT
HUB=$1
AGENT=$2
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/ktprocs.sh"

cat >"$T/model.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  properties:
  - {name: count, schema: {primitiveType: integer}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata:
  name: pole-1
  labels: {ktwin.io/site: site-a}
spec: {interface: city-pole}
EOF
kt_auth_files admin site-a tok-a
kt_hub_yaml
start_hub() {
    kt_start_hub
    wait_until 30 kt_hub_ready
}
start_hub || bad "hub did not start"
curl -sf -o /dev/null -H "Authorization: Bearer admin" --data-binary @"$T/model.yaml" \
    "http://127.0.0.1:$hub_port/api/v1/apply" || bad "apply"

kt_agent_yaml site-a 0 300ms
kt_start_agent_port || bad "agent port"
kt_wait_agent_revision "$agent_port" 1 30 || bad "agent did not get the graph"

post() { # ID COUNT -> HTTP status of the agent's ingress
    curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$agent_port/" \
        -H 'ce-specversion: 1.0' -H "ce-id: $1" -H 'ce-type: ktwin.store.city-pole' \
        -H 'ce-source: pole-1' -H 'Content-Type: application/json' -d "{\"count\": $2}"
}
latest_count() {
    curl -s "http://127.0.0.1:$hub_port/api/v1/twin-events/city-pole/pole-1/latest" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("count"))' 2>/dev/null
}
hub_events() {
    curl -s "http://127.0.0.1:$hub_port/api/v1/twin-events/city-pole/pole-1?limit=100" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d if isinstance(d, list) else d.get("events", d.get("items", []))))' 2>/dev/null
}
is_count() { test "$(latest_count)" = "$1"; }

check "ingress accepts" 202 "$(post e1 1)"
wait_until 30 is_count 1 || bad "the store event did not reach the hub (latest=$(latest_count))"
outbox_empty() { test "$(metric "$agent_port" ktwin_agent_outbox_events)" = 0; }
wait_until 30 outbox_empty || bad "the hub's ack did not empty the outbox"

# Offline: the hub stops; the agent keeps accepting and keeps the events.
stop "$hub_pid" "hub"
check "ingress while offline" 202 "$(post e2 2)"
check "ingress while offline" 202 "$(post e3 3)"
check "outbox holds them" 2 "$(metric "$agent_port" ktwin_agent_outbox_events)"
start_hub || bad "hub did not restart"
wait_until 30 is_count 3 || bad "offline events did not arrive (latest=$(latest_count))"
wait_until 30 outbox_empty || bad "outbox not emptied after reconnect"
check "each event stored once" 3 "$(hub_events)"
committed() { curl -s "http://127.0.0.1:$hub_port/metrics" | awk '$1 == "ktwin_hub_events_committed_total" { print $2 }'; }
# The counter starts again with the hub process: the two offline events, and
# e1 (committed before the restart) not again.
check "restarted hub committed only the new events" 2 "$(committed)"

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
