#!/usr/bin/env bash
# Fault test (issue 4, loops through HTTP services): a twin service (Python)
# that answers every event by POSTing an event of the same type and source
# back to the broker ingress, carrying the ce-ktwindepth it was called with
# (the CloudEvents extension svc_caller sends; svc/api.h reads it back as
# depth + 1). The event routes to the same service again, so without a
# depth bound it loops forever.
#   agent: echo placed at site-a, services.max_depth 3: one real event posted
#          to the agent's ingress makes exactly 4 calls (depths 0..3); the
#          5th post is dropped, ktwin_agent_dispatch_dropped_total{reason="depth"};
#   hub:   hood placed in the cloud, the same service posting back to the
#          hub's ingress, services.max_depth 2: exactly 3 calls, then
#          ktwin_hub_events_dropped_total{reason="depth"}.
#
# usage: test_downstream_loop.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/test_downstream_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

dl_model
H="http://127.0.0.1:$hub_port/"
A="http://127.0.0.1:$agent_port/"
dl_service loop hubloop "$H"
dl_hub_yaml "$(dl_services "hood=http://127.0.0.1:$svc_port/ retries=0 timeout=5s" 2)"
dl_hub_start || { bad "hub did not start"; kt_finish; exit 1; }
dl_apply
dl_service loop agentloop "$A"
dl_agent_yaml "$(dl_services "echo=http://127.0.0.1:$svc_port/ retries=0 timeout=5s" 3)"
dl_agent_start || { bad "agent did not start"; kt_finish; exit 1; }
waitfor "echo placed at site-a" dl_agent_placed echo

# ---- agent
check "agent ingress accepts" 202 "$(post "$A" ktwin.real.echo echo-1 loop-a '{"start":true}')"
agent_depth_drop() { ge "$(mval "$agent_port" ktwin_agent_dispatch_dropped_total 'reason="depth"')" 1; }
waitfor "agent: the loop is cut (reason depth)" agent_depth_drop
waitfor "agent: the service posted 4 times" \
    sh -c "[ \$(grep -c '^post ktwin.real.echo echo-1 202' '$T/agentloop.log') -ge 4 ]"
check "agent: 4 calls (depths 0..3)" 4 "$(lines "$T/agentloop.log" '^got ktwin.real.echo ')"
check "agent: the calls carried depths 0,1,2,3" "0 1 2 3" \
    "$(awk '$1 == "got" { print $5 }' "$T/agentloop.log" | tr '\n' ' ' | sed 's/ $//')"
check "agent: one drop" 1 "$(mval "$agent_port" ktwin_agent_dispatch_dropped_total 'reason="depth"')"

# ---- hub
check "hub ingress accepts" 202 "$(post "$H" ktwin.real.hood hood-1 loop-h '{"start":true}')"
hub_depth_drop() { ge "$(mval "$hub_port" ktwin_hub_events_dropped_total 'reason="depth"')" 1; }
waitfor "hub: the loop is cut (reason depth)" hub_depth_drop
waitfor "hub: the service posted 3 times" \
    sh -c "[ \$(grep -c '^post ktwin.real.hood hood-1 202' '$T/hubloop.log') -ge 3 ]"
check "hub: 3 calls (depths 0..2)" 3 "$(lines "$T/hubloop.log" '^got ktwin.real.hood ')"
check "hub: the calls carried depths 0,1,2" "0 1 2" \
    "$(awk '$1 == "got" { print $5 }' "$T/hubloop.log" | tr '\n' ' ' | sed 's/ $//')"
check "hub: one drop" 1 "$(mval "$hub_port" ktwin_hub_events_dropped_total 'reason="depth"')"

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
