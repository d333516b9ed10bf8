#!/usr/bin/env bash
# Fault test (issue 4, refusals): bad device messages on MQTT, between real
# processes on 127.0.0.1 — mosquitto, a ktwin-agent bridged to it and a
# ktwin-hub. The interface city-pole persists its real events, so every
# good device message becomes one event in the hub's event store.
#   - a malformed JSON payload           -> MQTT-BAD-JSON,
#                                           ktwin_agent_events_rejected_total{reason="json"}
#   - a payload over mqtt.max_payload_bytes -> MQTT-OVERSIZED, {reason="oversized"}
#   - a topic with an empty instance     -> MQTT-BAD-TOPIC, {reason="topic"}
#   - a known interface, unknown instance: the agent knows only its own
#     subgraph, so it forwards the event (MODEL_ROUTE_F_UNKNOWN_UPSTREAM) and
#     the hub, which knows the whole graph, drops it: HUB-EVENT-DROP (a debug
#     line: this hub runs with log.level debug) and
#     ktwin_hub_events_dropped_total{reason="unknown-instance"}; it is never stored.
#   - an unknown interface: the agent subscribes only to the model's
#     interfaces, so the broker never delivers it: nothing is counted, stored
#     or sent anywhere.
# Each bad message is acknowledged and dropped alone: good messages published
# before, between and after them all reach the hub's event store, each
# exactly once, and the agent never stops or pauses its MQTT session.
#
# usage: test_refuse_mqtt.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/refuse_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null ||
    { echo "SKIP: mosquitto missing"; exit 77; }

kt_start_mosquitto

refuse_model
hub_start "log: {level: debug}" || { kt_finish; exit 1; }
agent_start "mqtt: {url: \"tcp://127.0.0.1:$mqtt_port\", max_payload_bytes: 1KiB}" ||
    { kt_finish; exit 1; }
subscribed() { grep -q 'id=MQTT-SUBSCRIBED ' "$T/agent.log"; }
wait_until 60 subscribed || bad "the agent did not subscribe to the broker"

A=$agent_port
am() { metric_of "$A" "$1"; }
hm() { metric_of "$hub_port" "$1"; }
alog() { count_id "$T/agent.log" "$1"; }
hlog() { count_id "$T/hub.log" "$1"; }
pub() { # TOPIC PAYLOAD: one QoS 1 device message
    mosquitto_pub -p "$mqtt_port" -q 1 -t "$1" -m "$2" || bad "mosquitto_pub $1"
}
want=""
good() { # COUNT: a good device message of pole-1
    pub ktwin/real/city-pole/pole-1 "{\"count\": $1}"
    want="$want $1"
}
# refused NAME a|h ID METRIC TOPIC PAYLOAD: one bad message is refused by the
# agent (a) or the hub (h) with log id ID and metric METRIC.
refused() {
    local name=$1 who=$2 id=$3 m=$4
    local l0 m0
    l0=$("${who}log" "$id")
    m0=$("${who}m" "$m")
    pub "$5" "$6"
    grew "$name: log id $id" "$l0" "${who}log" "$id"
    grew "$name: metric $m" "${m0:-0}" "${who}m" "$m"
}
accepted0=$(am 'ktwin_agent_mqtt_messages_total{result="accepted"}')

good 1
good 2
refused "malformed JSON" a MQTT-BAD-JSON 'ktwin_agent_events_rejected_total{reason="json"}' \
    ktwin/real/city-pole/pole-1 '{"count": 3,,'
good 3
big=$(python3 -c 'print("{\"count\": 4, \"pad\": \"" + "x" * 2000 + "\"}")')
refused "oversized payload" a MQTT-OVERSIZED 'ktwin_agent_events_rejected_total{reason="oversized"}' \
    ktwin/real/city-pole/pole-1 "$big"
good 4
refused "unknown instance" h HUB-EVENT-DROP 'ktwin_hub_events_dropped_total{reason="unknown-instance"}' \
    ktwin/real/city-pole/no-such-pole '{"count": 1000}'
contains "unknown instance named in the hub's log" "$T/hub.log" \
    'id=HUB-EVENT-DROP .*reason=unknown-instance .*source=no-such-pole'
good 5
refused "empty instance" a MQTT-BAD-TOPIC 'ktwin_agent_events_rejected_total{reason="topic"}' \
    'ktwin/real/city-pole/' '{"count": 1001}'
good 6
# Unknown interface: not subscribed, never delivered to the agent.
iface0=$(am 'ktwin_agent_events_rejected_total{reason="interface"}')
pub ktwin/real/no-such-iface/x-1 '{"count": 1002}'
good 7
# Malformed JSON again, several in a row, then the last good one.
for k in 1 2 3; do pub ktwin/real/city-pole/pole-1 "not json $k"; done
good 8

hub_has_counts "${want# }"
curl -s "http://127.0.0.1:$hub_port/api/v1/twin-events/city-pole/no-such-pole" >"$T/unknown.json"
lacks "unknown instance never stored" "$T/unknown.json" 'no-such-pole'
check "unknown interface never reached the agent" "${iface0:-0}" \
    "$(am 'ktwin_agent_events_rejected_total{reason="interface"}')"
lacks "unknown interface not in the agent's log" "$T/agent.log" 'no-such-iface'
check "malformed JSON: every one counted" 4 "$(am 'ktwin_agent_events_rejected_total{reason="json"}')"
accepted=$(am 'ktwin_agent_mqtt_messages_total{result="accepted"}')
if [ -n "$accepted" ] && [ "$((accepted - ${accepted0:-0}))" -ge 8 ]; then ok; else
    bad "accepted device messages: $accepted0 -> $accepted (expected 8 more or the metric is missing)"
fi
lacks "MQTT session never paused" "$T/agent.log" 'id=MQTT-(PAUSED|CONN-LOST) '
outbox_empty() { test "$(metric "$A" ktwin_agent_outbox_events)" = 0; }
wait_until 30 outbox_empty || bad "the hub's acks did not empty the outbox"
lacks "no sanitizer report (agent)" "$T/agent.log" 'ERROR: (Address|Undefined)Sanitizer|runtime error'
stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
