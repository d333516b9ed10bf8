#!/usr/bin/env bash
# Fault test (issue 4, downstream queue full = backpressure, nothing lost):
# real ktwin-hub with events.down_max_per_site 2, site-a's agent (pole-1's
# service, placed at site-a with offline: required) stopped, and site-b's
# agent sending five commands for pole-1 and then a store event through
# its outbox:
#   - the hub queues two commands for site-a, then defers the rest of
#     site-b's upstream unacked (HUB-BACKPRESSURE,
#     ktwin_hub_upstream_deferred_total{site="site-b"}): site-b's outbox keeps
#     the events and the store event, queued after them, is not committed yet;
#   - site-a's agent comes back and acks its queue: the deferred batches
#     commit in order, all five commands run site-a's service exactly once,
#     the store event reaches the hub's store, site-b's outbox empties.
#
# usage: test_downstream_backpressure.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/test_downstream_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

dl_model
printf 'site-b tok-b\n' >>"$T/agents.txt"
printf 'tok-b\n' >"$T/token-b"
dl_hub_yaml "events: {down_max_per_site: 2}"
dl_hub_start || { bad "hub did not start"; kt_finish; exit 1; }
dl_apply

# site-a once, so its placement holds pole at the edge there; then it goes away
dl_service log site "http://127.0.0.1:$agent_port/"
dl_agent_yaml "$(dl_services "pole=http://127.0.0.1:$svc_port/ concurrency=1 retries=2 timeout=5s")"
dl_agent_start || { bad "agent a did not start"; kt_finish; exit 1; }
waitfor "pole placed at site-a" dl_agent_placed pole
stop "$agent_pid" "agent a"

# site-b: sends commands for pole-1 (hosted on site-a) up through its outbox
b_port=$(free_port)
cat >"$T/agent-b.yaml" <<EOF
site: site-b
hub: {url: "ws://127.0.0.1:$hub_port/sync", token_file: $T/token-b}
cache: {path: $T/agent-b.db}
listen: {port: $b_port}
reconnect: {base_ms: 50ms, cap_ms: 500ms}
EOF
"$AGENT" --config "$T/agent-b.yaml" 2>>"$T/agent-b.log" &
b_pid=$!
PIDS+=("$b_pid")
waitfor "agent b up" curl -sf -o /dev/null "http://127.0.0.1:$b_port/healthz"
b_graph() { ge "$(mval "$b_port" ktwin_agent_graph_revision)" 1; }
waitfor "agent b has the graph" b_graph
B="http://127.0.0.1:$b_port/"
for i in 1 2 3 4 5; do
    check "b ingress: command $i" 202 "$(post "$B" ktwin.command.pole.alert pole-1 "b-$i" "{\"n\":$i}")"
done
check "b ingress: store event" 202 "$(post "$B" ktwin.store.lamp lamp-1 st-1 '{"on":true}')"

deferred() { ge "$(mval "$hub_port" ktwin_hub_upstream_deferred_total 'site="site-b"')" 1; }
waitfor "hub defers site-b's upstream" deferred
contains "backpressure logged" "$T/hub.log" 'id=HUB-BACKPRESSURE .*site=site-b'
check "site-a's queue is at its cap" 2 "$(mval "$hub_port" ktwin_hub_downstream_queued 'site="site-a"')"
outbox_b=$(mval "$b_port" ktwin_agent_outbox_events)
if ge "$outbox_b" 4; then ok; else bad "site-b's outbox should keep the unacked events, has '$outbox_b'"; fi
latest_code() {
    curl -s -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$hub_port/api/v1/twin-events/lamp/lamp-1/latest"
}
check "the store event waits behind the commands" 404 "$(latest_code)"
curl -s "http://127.0.0.1:$hub_port/metrics" >"$T/hub.metrics"
lacks "nothing dropped at the hub" "$T/hub.metrics" '^ktwin_hub_events_dropped_total\{'

# site-a comes back: everything flows, in order, exactly once
dl_agent_start || bad "agent a did not restart"
all_ran() {
    local i
    for i in 1 2 3 4 5; do
        grep -q "^got ktwin.command.pole.alert pole-1 b-$i " "$T/site.log" 2>/dev/null || return 1
    done
}
waitfor "all five commands ran at site-a" all_ran
is200() { test "$(latest_code)" = 200; }
waitfor "the store event reached the hub" is200
b_empty() { test "$(mval "$b_port" ktwin_agent_outbox_events)" = 0; }
waitfor "site-b's outbox emptied" b_empty
a_queue_empty() { test "$(mval "$hub_port" ktwin_hub_downstream_queued 'site="site-a"')" = 0; }
waitfor "site-a's queue drained" a_queue_empty
check "five commands, each once" 5 "$(lines "$T/site.log" '^got ktwin.command.pole.alert ')"
check "in order" "b-1 b-2 b-3 b-4 b-5" \
    "$(awk '$1 == "got" { print $4 }' "$T/site.log" | tr '\n' ' ' | sed 's/ $//')"

stop "$b_pid" "agent b"
stop "$agent_pid" "agent a"
stop "$hub_pid" "hub"
kt_finish
