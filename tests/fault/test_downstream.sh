#!/usr/bin/env bash
# Fault test (issue 4, routing hub -> agent): commands and virtual events that
# arise at the hub reach site-a, with real processes on 127.0.0.1 — a
# ktwin-hub with a cloud HTTP twin service (hood, placed in the cloud), the
# site-a ktwin-agent with a local HTTP twin service (pole, placed at the
# edge), and site-a's mosquitto with a device subscriber:
#   A. an event posted to the hub's broker ingress: ktwin.command.pole.alert
#      for pole-1 (hosted on site-a) runs site-a's pole service; a
#      ktwin.virtual.lamp for lamp-1 (a device of site-a) is published on
#      site-a's mosquitto as ktwin/virtual/lamp/lamp-1;
#   B. the hub's cloud service (hood) handling a real event posts a command
#      and a virtual event to the hub's ingress (as KTWIN's SDK does): same;
#   C. the agent is down: A and B again are queued durably at the hub
#      (ktwin_hub_downstream_queued{site="site-a"}), the hub is SIGKILLed and
#      restarted, then the agent comes back: everything is delivered;
# and every command ran the service exactly once, every virtual event was
# published exactly once (also after one more agent restart).
#
# usage: test_downstream.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/test_downstream_lib.sh"
for c in python3 mosquitto mosquitto_sub mosquitto_pub; do
    command -v "$c" >/dev/null || { echo "SKIP: $c missing"; exit 77; }
done

dl_model
dl_mosquitto || bad "mosquitto did not start"
H="http://127.0.0.1:$hub_port/"

# ---- hub with the cloud service hood (posts back to the hub's ingress)
dl_service cloud hubsvc "$H"
hub_svc_port=$svc_port
dl_hub_yaml "$(dl_services "hood=http://127.0.0.1:$hub_svc_port/ retries=2 timeout=5s")"
dl_hub_start || { bad "hub did not start"; kt_finish; exit 1; }
dl_apply

# ---- site-a: the pole service and the agent (MQTT bridge to site-a's mosquitto)
dl_service log site "http://127.0.0.1:$agent_port/"
dl_agent_yaml "mqtt: {url: \"tcp://127.0.0.1:$mqtt_port\"}
$(dl_services "pole=http://127.0.0.1:$svc_port/ retries=2 timeout=5s")"
dl_agent_start || { bad "agent did not start"; kt_finish; exit 1; }
waitfor "pole placed at site-a" dl_agent_placed pole

# ---- the device: subscribed to its virtual topics, QoS 1
mosquitto_sub -p "$mqtt_port" -q 1 -v -t 'ktwin/virtual/#' >"$T/virtual.out" 2>>"$T/mosquitto.log" &
PIDS+=("$!")
sub_ready() {
    mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/virtual/probe/p -m probe
    grep -q '^ktwin/virtual/probe/p probe$' "$T/virtual.out"
}
waitfor "device subscriber ready" sub_ready

cmd_ran() { grep -q "^got ktwin.command.pole.alert pole-1 $1 " "$T/site.log" 2>/dev/null; }
cmd_ran_v() { grep -qE "^got ktwin.command.pole.alert pole-1 [^ ]+ [^ ]+ .*\"v\": $1[,}]" "$T/site.log" 2>/dev/null; }
virt_got() { grep -qE "^ktwin/virtual/lamp/lamp-1 .*$1" "$T/virtual.out"; }
queued() { mval "$hub_port" ktwin_hub_downstream_queued 'site="site-a"'; }
is_queued() { test "$(queued)" = "$1"; }

# ---- A: posted to the hub's broker ingress
check "hub ingress: command" 202 "$(post "$H" ktwin.command.pole.alert pole-1 cmd-1 '{"n":1}')"
check "hub ingress: virtual" 202 "$(post "$H" ktwin.virtual.lamp lamp-1 vir-1 '{"on":true,"n":1}')"
waitfor "A: command ran site-a's pole service" cmd_ran cmd-1
waitfor "A: virtual event published on site-a" virt_got '\{"on":true,"n":1\}'

# ---- B: the hub's cloud service emits them
check "hub ingress: real event for the cloud service" 202 \
    "$(post "$H" ktwin.real.hood hood-1 hood-7 '{"v":7}')"
waitfor "B: cloud service got the real event" grep -q '^got ktwin.real.hood hood-1 hood-7 ' "$T/hubsvc.log"
waitfor "B: command ran site-a's pole service" cmd_ran_v 7
waitfor "B: virtual event published on site-a" virt_got '"v": 7\}'
waitfor "hub queue drained (agent acked)" is_queued 0

# ---- C: agent down; queued at the hub; hub SIGKILLed and restarted; agent back
stop "$agent_pid" "agent"
check "offline: command" 202 "$(post "$H" ktwin.command.pole.alert pole-1 cmd-2 '{"n":2}')"
check "offline: virtual" 202 "$(post "$H" ktwin.virtual.lamp lamp-1 vir-2 '{"on":false,"n":2}')"
check "offline: real event for the cloud service" 202 \
    "$(post "$H" ktwin.real.hood hood-1 hood-8 '{"v":8}')"
waitfor "C: all four queued for site-a" is_queued 4
kill -KILL "$hub_pid"
wait "$hub_pid" 2>/dev/null
dl_hub_start || bad "hub did not restart"
dl_agent_start || bad "agent did not restart"
waitfor "C: command ran after reconnect" cmd_ran cmd-2
waitfor "C: cloud service's command ran after reconnect" cmd_ran_v 8
waitfor "C: virtual published after reconnect" virt_got '\{"on":false,"n":2\}'
waitfor "C: cloud service's virtual published after reconnect" virt_got '"v": 8\}'
waitfor "hub queue drained again" is_queued 0

# ---- exactly once, also after one more agent restart
stop "$agent_pid" "agent"
dl_agent_start || bad "agent did not restart (2)"
connected() { ge "$(mval "$agent_port" ktwin_agent_graph_revision)" 1; }
waitfor "agent back with its graph" connected
check "hub queue stays empty" 0 "$(queued)"
check "cmd-1 ran once" 1 "$(lines "$T/site.log" '^got ktwin.command.pole.alert pole-1 cmd-1 ')"
check "cmd-2 ran once" 1 "$(lines "$T/site.log" '^got ktwin.command.pole.alert pole-1 cmd-2 ')"
check "cloud command v=7 ran once" 1 "$(lines "$T/site.log" '^got ktwin.command.pole.alert .*"v": 7[,}]')"
check "cloud command v=8 ran once" 1 "$(lines "$T/site.log" '^got ktwin.command.pole.alert .*"v": 8[,}]')"
check "four commands in all" 4 "$(lines "$T/site.log" '^got ktwin.command.pole.alert ')"
check "vir-1 published once" 1 "$(lines "$T/virtual.out" '^ktwin/virtual/lamp/lamp-1 \{"on":true,"n":1\}$')"
check "vir-2 published once" 1 "$(lines "$T/virtual.out" '^ktwin/virtual/lamp/lamp-1 \{"on":false,"n":2\}$')"
check "cloud virtual v=7 published once" 1 "$(lines "$T/virtual.out" '^ktwin/virtual/lamp/lamp-1 .*"v": 7\}$')"
check "cloud virtual v=8 published once" 1 "$(lines "$T/virtual.out" '^ktwin/virtual/lamp/lamp-1 .*"v": 8\}$')"
check "four virtual events in all" 4 "$(lines "$T/virtual.out" '^ktwin/virtual/lamp/')"

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
