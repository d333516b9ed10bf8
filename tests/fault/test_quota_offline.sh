#!/usr/bin/env bash
# Fault test (issue 4): the outbox quota is reached while the hub is
# unreachable. Real mosquitto, ktwin-hub, ktwin-agent (echo plugin: one store
# event per device message; outbox.max_bytes 64 KiB, the smallest allowed)
# and faultproxy between agent and hub, cut.
# The documented policy (agent/agent.example.yaml "outbox", agent/outbox.h,
# agent/mqtt.h): when the quota is reached MQTT ingest pauses, the agent
# disconnects from the broker, whose persistent session keeps the messages,
# and nothing is dropped; ktwin_agent_outbox_full says so. Checked:
#   - far more messages than fit are published while cut: the outbox stops
#     at its quota, ktwin_agent_outbox_full = 1, MQTT-PAUSED is logged, the
#     agent is off the broker (ktwin_agent_mqtt_connected = 0), and no
#     message is refused (ktwin_agent_events_rejected_total all 0);
#   - the agent is SIGKILLed while full and restarted (still offline): it
#     keeps its outbox and pauses again;
#   - the link is restored: the outbox drains, ingest resumes (MQTT-RESUMED),
#     ktwin_agent_outbox_full goes back to 0, and every published message has
#     exactly one store event in the hub's event store (hub API, all pages).
#
# usage: test_quota_offline.sh HUB AGENT ECHO_PLUGIN FAULTPROXY
FL_OUTBOX_MAX=64KiB
FL_INSTANCES="pole-1 pole-2"
. "$(dirname "$0")/fault_lib.sh" "$@"
N=${FL_QUOTA_MESSAGES:-1500} # per instance; about 400 events fill 64 KiB

fl_start_all
check "proxy cut" "ok cut" "$(proxy_cmd cut)"
not_connected() { [ "$(metric "$agent_port" ktwin_agent_connected)" = 0 ]; }
waitfor "agent sees the hub unreachable" 60 not_connected

for inst in $FL_INSTANCES; do load_start "$inst" 0 "$N"; done
for inst in $FL_INSTANCES; do load_stop "$inst"; done
fl_log "published $(load_total) device messages while cut"
full() { [ "$(metric "$agent_port" ktwin_agent_outbox_full)" = 1 ]; }
waitfor "ktwin_agent_outbox_full = 1" 120 full
paused() { grep -q 'id=MQTT-PAUSED' "$T/agent.log" &&
    [ "$(metric "$agent_port" ktwin_agent_mqtt_connected)" = 0 ]; }
waitfor "MQTT ingest paused: agent off the broker" 60 paused
ob_events=$(outbox_events)
ob_bytes=$(metric "$agent_port" ktwin_agent_outbox_bytes)
fl_log "outbox full: $ob_events events, $ob_bytes bytes"
[ "${ob_bytes:-999999}" -le 65536 ] && ok || bad "outbox over its quota: $ob_bytes bytes"
[ "${ob_events:-0}" -gt 0 ] && [ "${ob_events:-0}" -lt "$(load_total)" ] && ok ||
    bad "outbox events $ob_events: expected some, fewer than the $(load_total) published"
check "no device message refused while full" "" \
    "$(curl -s "http://127.0.0.1:$agent_port/metrics" |
        awk '$1 ~ /^ktwin_agent_events_rejected_total/ && $2 != 0 { print }')"
check "nothing reached the hub" 0 "$(hub_count)"
# Paused means paused: the outbox stays where it is while the hub is away.
sleep 2
check "outbox unchanged while paused" "$ob_events" "$(outbox_events)"

# SIGKILL while full and paused, restart offline: the outbox keeps what it
# held, the agent fills up to the quota again and pauses again.
fl_kill_agent
fl_log "agent SIGKILLed while full; restarting offline"
fl_start_agent_offline() {
    rm -f "$T/agent.port"
    echo "---- agent start $(date +%T)" >>"$T/agent.log"
    "$FL_AGENT" --config "$T/agent.yaml" --port-file "$T/agent.port" 2>>"$T/agent.log" &
    agent_pid=$!
    PIDS+=("$agent_pid")
    agent_port=$(wait_file "$T/agent.port" 60)
}
fl_start_agent_offline || bad "agent restart"
paused_again() { [ "$(grep -c 'id=MQTT-PAUSED' "$T/agent.log")" -ge 2 ] && full; }
waitfor "full and paused again after the restart" 120 paused_again
ob_after=$(outbox_events)
fl_log "after restart: outbox $ob_after events"
[ "${ob_after:-0}" -ge "$ob_events" ] && ok || bad "outbox lost events across SIGKILL: $ob_events -> $ob_after"
check "still nothing at the hub" 0 "$(hub_count)"

check "proxy restore" "ok pass" "$(proxy_cmd restore)"
fl_log "link restored"
fl_check_exactly_once "quota while offline"
not_full() { [ "$(metric "$agent_port" ktwin_agent_outbox_full)" = 0 ]; }
waitfor "ktwin_agent_outbox_full back to 0" 60 not_full
contains "ingest resumed" "$T/agent.log" 'id=MQTT-RESUMED'
resumes=$(grep -c 'id=MQTT-PAUSED' "$T/agent.log")
fl_log "MQTT pauses: $resumes, resumes: $(grep -c 'id=MQTT-RESUMED' "$T/agent.log")"

fl_stop_agent
stop "$hub_pid" hub
stop "$proxy_pid" faultproxy
kt_finish
