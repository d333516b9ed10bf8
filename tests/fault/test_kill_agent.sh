#!/usr/bin/env bash
# Fault test (issue 4): SIGKILL the agent mid-stream and restart it with the
# same config. Real mosquitto, ktwin-hub, ktwin-agent (echo plugin: one store
# event per device message) and faultproxy between agent and hub.
#   1. under load, the link is cut until the outbox holds events, then the
#      agent is SIGKILLed (events flowing in from MQTT, outbox non-empty) and
#      restarted (the link still cut: it comes back from its cache);
#   2. the link is restored and, while the backlog drains and the load goes
#      on, the agent is SIGKILLed again and restarted;
#   3. every device message has exactly one store event in the hub's event
#      store (hub API, all pages; fault_lib.sh), and the outbox is empty.
# Messages the broker delivered but the agent had not acknowledged are
# redelivered (persistent session); the journal and the outbox's journal
# watermark make the replay duplicate-free.
#
# usage: test_kill_agent.sh HUB AGENT ECHO_PLUGIN FAULTPROXY
. "$(dirname "$0")/fault_lib.sh" "$@"
RATE=40 # messages per second per instance

fl_start_all
for inst in $FL_INSTANCES; do load_start "$inst" "$RATE"; done
flowing() { [ "$(hub_count)" -ge 40 ]; }
waitfor "store events reach the hub" 120 flowing

# 1. kill with the link cut and a non-empty outbox
check "proxy cut" "ok cut" "$(proxy_cmd cut)"
outbox_some() { [ "$(outbox_events)" -ge 100 ] 2>/dev/null; }
waitfor "outbox fills while cut" 120 outbox_some
ob=$(outbox_events)
fl_kill_agent
fl_log "agent SIGKILLed with the link cut, outbox $ob"
fl_start_agent || bad "agent restart (offline, from its cache)"
fl_log "agent restarted, outbox $(outbox_events)"
ob_now=$(outbox_events)
[ "${ob_now:-0}" -ge "$ob" ] && ok || bad "outbox lost events across SIGKILL: $ob -> $ob_now"

# 2. kill while the backlog drains after the restore, load still on
check "proxy restore" "ok pass" "$(proxy_cmd restore)"
h0=$(hub_count)
draining() { [ "$(hub_count)" -gt "$h0" ]; }
waitfor "backlog drains after the restore" 120 draining
fl_kill_agent
fl_log "agent SIGKILLed while draining/streaming (hub had $(hub_count) events)"
fl_start_agent || bad "agent restart"
fl_log "agent restarted, outbox $(outbox_events)"
h1=$(hub_count)
more() { [ "$(hub_count)" -gt "$h1" ]; }
waitfor "store events flow after the restart" 120 more

for inst in $FL_INSTANCES; do load_stop "$inst"; done
fl_log "published $(load_total) device messages"
fl_check_exactly_once "agent SIGKILL x2"
contains "the restarted agent went through its ingest journal" "$T/agent.log" \
    'id=MQTT-JOURNAL-REPLAYED'

fl_stop_agent
stop "$hub_pid" hub
stop "$proxy_pid" faultproxy
kt_finish
