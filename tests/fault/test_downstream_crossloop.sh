#!/usr/bin/env bash
# Fault test (issue 4, loops across the sync link): two HTTP twin services
# (Python) that answer each other's events through the brokers, carrying the
# ce-ktwindepth they were called with:
#   hub:   hood (placed in the cloud) answers ktwin.real.hood by POSTing
#          ktwin.command.pole.alert for pole-1 to the hub's ingress: the
#          command goes down to site-a (pole is placed there);
#   agent: pole answers the command by POSTing ktwin.real.hood for hood-1 to
#          the agent's ingress: it goes up to the hub's hood service.
# The loop crosses the link twice per round. The loop depth travels with the
# events (sync Event.depth, the outbox, the hub's queues), so the agent's
# services.max_depth (3) cuts it: hood is called at depths 0 and 2, pole at
# 1 and 3, and the agent drops the 4th event (reason depth). Before the depth
# crossed the link, each side restarted at 0 and the loop never ended.
#
# usage: test_downstream_crossloop.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/test_downstream_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

dl_model
H="http://127.0.0.1:$hub_port/"
A="http://127.0.0.1:$agent_port/"
dl_service cross hubx "$H"
dl_hub_yaml "$(dl_services "hood=http://127.0.0.1:$svc_port/ retries=0 timeout=5s")"
dl_hub_start || { bad "hub did not start"; kt_finish; exit 1; }
dl_apply
dl_service cross agentx "$A"
dl_agent_yaml "$(dl_services "pole=http://127.0.0.1:$svc_port/ retries=0 timeout=5s" 3)"
dl_agent_start || { bad "agent did not start"; kt_finish; exit 1; }
waitfor "pole placed at site-a" dl_agent_placed pole

check "hub ingress accepts" 202 "$(post "$H" ktwin.real.hood hood-1 cross-1 '{"start":true}')"
agent_depth_drop() { ge "$(mval "$agent_port" ktwin_agent_dispatch_dropped_total 'reason="depth"')" 1; }
waitfor "the loop is cut at the agent (reason depth)" agent_depth_drop
sleep 1 # a loop that was not cut would go on meanwhile (the checks show the first 10 calls)
check "hood (hub) called at depths 0 and 2" "0 2" \
    "$(awk '$1 == "got" { print $5 }' "$T/hubx.log" | head -n 10 | tr '\n' ' ' | sed 's/ $//')"
check "pole (agent) called at depths 1 and 3" "1 3" \
    "$(awk '$1 == "got" { print $5 }' "$T/agentx.log" | head -n 10 | tr '\n' ' ' | sed 's/ $//')"
check "agent: one depth drop" 1 "$(mval "$agent_port" ktwin_agent_dispatch_dropped_total 'reason="depth"')"
check "hub: no depth drop" "" "$(mval "$hub_port" ktwin_hub_events_dropped_total 'reason="depth"')"

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
