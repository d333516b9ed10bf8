#!/usr/bin/env bash
# Fault test (issue 4): SIGKILL the hub mid-batch, while the agent is pushing
# a large backlog, and restart it (same config, same port). Real mosquitto,
# ktwin-hub, ktwin-agent (echo plugin: one store event per device message)
# and faultproxy between agent and hub.
#   1. with the link cut, a burst of device messages builds a backlog of
#      thousands of events in the agent's outbox;
#   2. the link is restored, throttled by the proxy (rate) so the drain lasts
#      seconds; as soon as the hub has committed part of the
#      backlog (ktwin_hub_events_committed_total > 0) while the outbox still
#      holds events, the hub is SIGKILLed, then restarted;
#   3. once more under a steady load plus a burst: SIGKILL the hub while the
#      outbox is non-empty, restart;
#   4. every device message has exactly one store event in the hub's event
#      store (hub API, all pages; fault_lib.sh): batches the killed hub had
#      committed but not acked are resent by the agent and dropped by the
#      hub's (site, incarnation, seq) dedupe, uncommitted ones are resent.
#
# The agent sends batches of 500 events (hub.batch_events; the default of
# 10,000 would carry the whole backlog in one batch, leaving no "mid-drain").
#
# usage: test_kill_hub.sh HUB AGENT ECHO_PLUGIN FAULTPROXY
FL_INSTANCES="pole-1 pole-2 pole-3"
FL_BATCH_EVENTS=500
. "$(dirname "$0")/fault_lib.sh" "$@"
BURST=${FL_BURST:-3000} # messages per instance
RATE_BPS=200000          # agent<->hub bytes per second while a backlog drains

fl_start_all
committed() { metric "$hub_port" ktwin_hub_events_committed_total; }

# 1. backlog
check "proxy cut" "ok cut" "$(proxy_cmd cut)"
for inst in $FL_INSTANCES; do load_start "$inst" 0 "$BURST"; done
for inst in $FL_INSTANCES; do load_stop "$inst"; done
backlog() { [ "$(outbox_events)" -ge "$(load_total)" ] 2>/dev/null; }
waitfor "backlog of $(load_total) events in the outbox" 240 backlog
fl_log "backlog: outbox $(outbox_events)"

# 2. restore, kill the hub mid-drain
mid_batch() {
    local c o
    c=$(committed)
    o=$(outbox_events)
    [ "${c:-0}" -gt 0 ] || [ "${o:-0}" -eq 0 ]
}
# Throttled (the proxy's rate), so the drain takes seconds and the kill lands
# mid-drain however fast the uplink is.
check "proxy throttle" "ok rate $RATE_BPS" "$(proxy_cmd "rate $RATE_BPS")"
check "proxy restore" "ok pass" "$(proxy_cmd restore)"
waitfor "hub starts committing the backlog" 120 mid_batch
ob=$(outbox_events)
fl_log "SIGKILL hub: committed $(committed), agent outbox $ob"
fl_kill_hub
[ "${ob:-0}" -gt 0 ] && ok || bad "the backlog drained before the hub could be killed mid-batch"
fl_start_hub || bad "hub restart"
check "proxy unthrottled" "ok rate 0" "$(proxy_cmd "rate 0")"
fl_log "hub restarted"

# 3. again, under a steady load (pole-1, pole-2) plus a burst (pole-3)
for inst in pole-1 pole-2; do load_start "$inst" 20; done
h0=$(hub_count)
more() { [ "$(hub_count)" -gt "$h0" ]; }
waitfor "store events flow after the hub restart" 120 more
check "proxy cut" "ok cut" "$(proxy_cmd cut)"
load_burst pole-3 "$BURST"
backlog_some() { [ "$(outbox_events)" -ge "$BURST" ] 2>/dev/null; }
waitfor "second backlog" 240 backlog_some
check "proxy restore" "ok pass" "$(proxy_cmd restore)"
c_before=$(committed)
check "proxy throttle" "ok rate $RATE_BPS" "$(proxy_cmd "rate $RATE_BPS")"
moving() { [ "$(committed)" -gt "${c_before:-0}" ] || [ "$(outbox_events)" -eq 0 ]; }
waitfor "hub commits the second backlog" 120 moving
ob=$(outbox_events)
fl_log "SIGKILL hub again: committed $(committed) (duplicates dropped: $(metric "$hub_port" ktwin_hub_events_duplicates_total)), agent outbox $ob"
fl_kill_hub
[ "${ob:-0}" -gt 0 ] && ok || bad "the second backlog drained before the hub could be killed"
check "proxy unthrottled" "ok rate 0" "$(proxy_cmd "rate 0")"
fl_start_hub || bad "hub restart 2"
for inst in pole-1 pole-2; do load_stop "$inst"; done
fl_log "published $(load_total) device messages"
fl_check_exactly_once "hub SIGKILL x2"

fl_stop_agent
stop "$hub_pid" hub
stop "$proxy_pid" faultproxy
kt_finish
