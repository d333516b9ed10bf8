#!/usr/bin/env bash
# Fault test (issue 4): cut the agent–hub link for 60 s under steady load,
# then restore it. Real mosquitto, ktwin-hub, ktwin-agent (echo plugin: one
# store event per device message) and faultproxy between agent and hub.
#   - device messages keep flowing into the agent during the cut;
#   - while cut, nothing reaches the hub and the agent's outbox grows
#     (ktwin_agent_outbox_events);
#   - after the restore the outbox drains to 0 and every device message has
#     exactly one store event in the hub's event store (read through the
#     hub's KTWIN event-store API, all pages; fault_lib.sh).
# Then the nastier partition: the link is black-holed for 20 s (the proxy
# stops moving bytes without closing anything, as a dead path would), and
# restored; exactly once still holds.
# The 60 s is the length of the fault, not a timing assert: every wait
# polls with a generous deadline.
#
# usage: test_link_cut.sh HUB AGENT ECHO_PLUGIN FAULTPROXY
. "$(dirname "$0")/fault_lib.sh" "$@"
CUT_SECONDS=${FL_CUT_SECONDS:-60}
BLACKHOLE_SECONDS=${FL_BLACKHOLE_SECONDS:-20}
RATE=20 # messages per second per instance

fl_start_all
for inst in $FL_INSTANCES; do load_start "$inst" "$RATE"; done
# Steady state: events reach the hub through the proxy.
flowing() { [ "$(hub_count)" -ge 40 ]; }
waitfor "store events reach the hub before the cut" 120 flowing
fl_log "flowing: hub has $(hub_count) store events"

check "proxy cut" "ok cut" "$(proxy_cmd cut)"
fl_log "link cut for ${CUT_SECONDS}s"
cut_start=$(date +%s)
not_connected() { [ "$(metric "$agent_port" ktwin_agent_connected)" = 0 ]; }
waitfor "agent sees the link down" 60 not_connected
hub_at_cut=$(hub_count)
max_outbox=0
while (($(date +%s) - cut_start < CUT_SECONDS)); do
    n=$(outbox_events)
    [ "${n:-0}" -gt "$max_outbox" ] && max_outbox=$n
    sleep 1
done
hub_before_restore=$(hub_count)
fl_log "end of cut: outbox max $max_outbox, hub $hub_at_cut -> $hub_before_restore"
check "nothing reaches the hub while the link is cut" "$hub_at_cut" "$hub_before_restore"
# 60 s at 2 x 20 messages/s: the outbox holds far more than a few events.
[ "$max_outbox" -ge 100 ] && ok || bad "outbox did not grow while cut (max $max_outbox)"
proxy_cmd status >"$T/proxy.status"
contains "proxy refused the agent's reconnects" "$T/proxy.status" 'refused=[1-9]'

check "proxy restore" "ok pass" "$(proxy_cmd restore)"
fl_log "link restored"
connected() { [ "$(metric "$agent_port" ktwin_agent_connected)" = 1 ]; }
waitfor "agent reconnects" 60 connected
# Keep publishing a little after the restore, then stop the load.
more() { [ "$(hub_count)" -gt "$hub_before_restore" ]; }
waitfor "store events flow again" 120 more

# Black hole: nothing moves, nothing is closed by the proxy.
check "proxy blackhole" "ok blackhole" "$(proxy_cmd blackhole)"
fl_log "link black-holed for ${BLACKHOLE_SECONDS}s"
sleep "$BLACKHOLE_SECONDS"
ob_bh=$(outbox_events)
fl_log "end of black hole: outbox $ob_bh"
[ "${ob_bh:-0}" -gt 0 ] && ok || bad "outbox empty after a ${BLACKHOLE_SECONDS}s black hole under load"
check "proxy restore after black hole" "ok pass" "$(proxy_cmd restore)"
hub_bh=$(hub_count)
more_bh() { [ "$(hub_count)" -gt "$hub_bh" ]; }
waitfor "store events flow after the black hole" 120 more_bh
for inst in $FL_INSTANCES; do load_stop "$inst"; done
fl_log "published $(load_total) device messages"
fl_check_exactly_once "link cut ${CUT_SECONDS}s"
check "outbox not full" 0 "$(metric "$agent_port" ktwin_agent_outbox_full)"

fl_stop_agent
stop "$hub_pid" hub
stop "$proxy_pid" faultproxy
kt_finish
