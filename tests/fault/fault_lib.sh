# tests/fault/fault_lib.sh — shared setup of the delivery-guarantee fault
# tests (test_link_cut.sh, test_kill_agent.sh, test_kill_hub.sh,
# test_quota_offline.sh). Source it after setting nothing:
#
#   . "$(dirname "$0")/fault_lib.sh" "$@"     # HUB AGENT ECHO_PLUGIN FAULTPROXY
#
# It sources tests/lib/testlib.sh (T, PIDS, checks, wait_until, metric,
# stop, kt_finish) and gives:
#   fl_start_all          mosquitto, ktwin-hub (model applied), faultproxy in
#                         front of the hub, ktwin-agent whose hub.url is the
#                         proxy and whose twin service for city-pole is the
#                         SDK's echo plugin; waits until the agent has the
#                         graph and is subscribed to the broker.
#   fl_start_hub / fl_start_agent   (re)start one process, same config, same
#                         hub port (the proxy's upstream); fl_kill_* SIGKILL.
#   proxy_cmd CMD         cut | blackhole | restore | status on the proxy's
#                         control port; prints the proxy's reply line.
#   load_start INST RATE  device messages {"seq":N} (N = 1, 2, ...) published
#                         QoS 1 on ktwin/real/city-pole/INST by mosquitto_pub
#                         -l, RATE per second (0 = as fast as possible) until
#                         load_stop INST, which waits for mosquitto_pub (it
#                         exits once the broker acked every message) and
#                         sets LOAD_SENT[INST] to the number published.
#   load_burst INST COUNT publish COUNT messages after the last one of INST.
#   hub_tally             pages through the hub's event store API and prints
#                         "total=N distinct=N dups=N missing=N" (+ details).
#   fl_check_exactly_once NAME   waits (generous deadline) until the agent's
#                         outbox is empty and the hub holds one store event
#                         per published message, then checks: every message
#                         has exactly one store event in the hub, no more.
#
# How the hub's store is read: the KTWIN event-store API of the hub,
# GET /api/v1/twin-events?order=asc&limit=1000 following ktwin-next-cursor
# until no next page: it lists every stored event (not just the latest),
# so no direct read of events.db is needed. Each store event's data is the
# echo plugin's {"seen":..,"peers":..,"last":<device payload>} (upsert-merged
# by the hub; "last" is replaced whole), so last.seq names the device message
# it came from: (instanceId, last.seq) must be unique and cover 1..sent.
#
# The placement rule is "edge, offline: required": city-pole stays at the
# edge while the site is cut off. (With the default "offline: none" the hub
# moves it to the cloud when the site goes away, and on reconnect the agent
# briefly holds that cloud placement: device messages in that window go up as
# real events for a cloud service, which this test does not run.)
#
# Knobs (environment): FL_INSTANCES (twin instances, "pole-1 pole-2"),
# FL_OUTBOX_MAX (outbox.max_bytes, 1GiB), FL_MOSQUITTO_EXTRA (lines appended
# to mosquitto.conf, e.g. "log_type all" to see PUBLISH/PUBACK per message),
# and per test FL_CUT_SECONDS / FL_BLACKHOLE_SECONDS / FL_BURST /
# FL_QUOTA_MESSAGES. KT_TEST_KEEP=1 keeps $T (logs, databases).
#
# Mosquitto runs with max_queued_messages 0 (no limit): the agent's persistent
# session must not lose messages queued while the agent is away or paused
# (mosquitto's default of 1000 would drop the rest; see docs/operations.md).
#
# Thread: a shell. Ownership: every process started here is in PIDS and is
# killed by testlib's exit trap; stop / kill use PIDs only.

FL_HUB=$1
FL_AGENT=$2
FL_PLUGIN=$3
FL_PROXY=$4
. "$(dirname "${BASH_SOURCE[0]}")/../lib/testlib.sh"

for _fl_cmd in mosquitto mosquitto_pub python3 curl; do
    command -v "$_fl_cmd" >/dev/null || { echo "SKIP: $_fl_cmd missing"; exit 77; }
done
for _fl_bin in "$FL_HUB" "$FL_AGENT" "$FL_PLUGIN" "$FL_PROXY"; do
    [ -e "$_fl_bin" ] || { echo "SKIP: $_fl_bin missing"; exit 77; }
done

# Settings a test may change before fl_start_all.
FL_INSTANCES=${FL_INSTANCES:-"pole-1 pole-2"}
FL_OUTBOX_MAX=${FL_OUTBOX_MAX:-1GiB}
FL_T0=$(date +%s)

# fl_log MSG: a progress line with the seconds since the start.
fl_log() { echo "[$(($(date +%s) - FL_T0))s] $*"; }

# fl_wait SECONDS COMMAND...: poll COMMAND until it succeeds or SECONDS of
# wall time passed (testlib's wait_until counts polls, which is too long when
# COMMAND itself is slow, like a tally of the hub's whole store).
fl_wait() {
    local end=$((SECONDS + $1))
    shift
    while ((SECONDS < end)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    "$@"
}

# waitfor NAME SECONDS COMMAND...: poll COMMAND; one check either way.
waitfor() {
    local name=$1 secs=$2
    shift 2
    if fl_wait "$secs" "$@"; then ok; else bad "$name: timed out after ${secs}s"; fi
}

# ---- configuration --------------------------------------------------------
fl_write_model() {
    local inst
    {
        cat <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  properties:
  - {name: seq, schema: {primitiveType: integer}}
  service: {template: {spec: {containers: [{name: s, image: ktwin/echo}]}}}
---
apiVersion: edge.ktwin/v0
kind: PlacementPolicy
metadata: {name: p}
spec:
  rules:
  - name: edge
    placement: edge
    offline: required
EOF
        for inst in $FL_INSTANCES; do
            printf -- '---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\n'
            printf 'metadata: {name: %s, labels: {ktwin.io/site: site-a}}\n' "$inst"
            printf 'spec: {interface: city-pole}\n'
        done
    } >"$T/model.yaml"
}

fl_write_configs() {
    echo "site-a tok-a" >"$T/agents.txt"
    echo admin >"$T/admin.token"
    echo tok-a >"$T/token"
    hub_port=$(free_port)
    mqtt_port=$(free_port)
    cat >"$T/hub.yaml" <<EOF
listen: {port: $hub_port}
data_dir: $T/hub
auth: {agents_file: $T/agents.txt, admin_token_file: $T/admin.token}
sync: {heartbeat_ms: 1000}
EOF
    cat >"$T/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
${FL_MOSQUITTO_EXTRA:-}
EOF
}

fl_write_agent_config() {
    cat >"$T/agent.yaml" <<EOF
site: site-a
hub: {url: "ws://127.0.0.1:$proxy_port/sync", token_file: $T/token, connect_timeout_ms: 2s,
      batch_events: ${FL_BATCH_EVENTS:-10000}}
cache: {path: $T/agent.db}
listen: {port: 0}
reconnect: {base_ms: 50ms, cap_ms: 500ms}
mqtt: {url: "tcp://127.0.0.1:$mqtt_port"}
outbox: {max_bytes: $FL_OUTBOX_MAX}
services:
  specs:
  - "city-pole=$FL_PLUGIN"
EOF
}

# ---- processes ------------------------------------------------------------
fl_start_mosquitto() {
    mosquitto -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
    mqtt_pid=$!
    PIDS+=("$mqtt_pid")
    fl_wait 30 mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/probe -m up 2>/dev/null
}

fl_start_hub() {
    echo "---- hub start $(date +%T)" >>"$T/hub.log"
    "$FL_HUB" --config "$T/hub.yaml" 2>>"$T/hub.log" &
    hub_pid=$!
    PIDS+=("$hub_pid")
    fl_wait 60 curl -sf -o /dev/null "http://127.0.0.1:$hub_port/readyz"
}

fl_kill_hub() {
    kill -KILL "$hub_pid"
    wait "$hub_pid" 2>/dev/null
    echo "---- hub SIGKILL $(date +%T)" >>"$T/hub.log"
}

fl_start_proxy() {
    "$FL_PROXY" --upstream "127.0.0.1:$hub_port" --port-file "$T/proxy.port" \
        --ctl-port-file "$T/proxy.ctl" 2>>"$T/proxy.log" &
    proxy_pid=$!
    PIDS+=("$proxy_pid")
    proxy_port=$(wait_file "$T/proxy.port") || return 1
    proxy_ctl=$(cat "$T/proxy.ctl")
}

# proxy_cmd CMD: send one control command, print the reply.
proxy_cmd() {
    local reply=""
    exec 9<>"/dev/tcp/127.0.0.1/$proxy_ctl" || return 1
    echo "$1" >&9
    read -r -t 30 reply <&9
    exec 9<&-
    echo "$reply"
}

agent_synced() {
    local rev
    rev=$(metric "$agent_port" ktwin_agent_graph_revision)
    [ -n "$rev" ] && [ "$rev" -ge 1 ] 2>/dev/null
}
agent_subscribed() {
    [ "$(metric "$agent_port" ktwin_agent_mqtt_connected)" = 1 ] &&
        [ "$(grep -c 'id=MQTT-SUBSCRIBED' "$T/agent.log")" -gt "$_fl_subs_before" ]
}

# fl_start_agent [offline]: start (or restart) the agent with the same config;
# waits until it serves its API, has the graph (from the hub, or from its
# cache when "offline") and is subscribed to the broker.
fl_start_agent() {
    rm -f "$T/agent.port"
    _fl_subs_before=$(grep -c 'id=MQTT-SUBSCRIBED' "$T/agent.log" 2>/dev/null)
    _fl_subs_before=${_fl_subs_before:-0}
    echo "---- agent start $(date +%T)" >>"$T/agent.log"
    "$FL_AGENT" --config "$T/agent.yaml" --port-file "$T/agent.port" 2>>"$T/agent.log" &
    agent_pid=$!
    PIDS+=("$agent_pid")
    agent_port=$(wait_file "$T/agent.port" 60) || return 1
    fl_wait 60 agent_synced || return 1
    fl_wait 60 agent_subscribed || return 1
}

fl_kill_agent() {
    kill -KILL "$agent_pid"
    wait "$agent_pid" 2>/dev/null
    echo "---- agent SIGKILL $(date +%T)" >>"$T/agent.log"
}

# fl_stop_agent: SIGTERM; the agent must exit 0 within 30 s (so also
# uv_loop_close == 0: no handle left on its loop, AGENT-LOOP-CLOSE).
fl_stop_agent() {
    local i rc
    kill -TERM "$agent_pid"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$agent_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$agent_pid"
    rc=$?
    check "agent exit on SIGTERM" 0 "$rc"
}

fl_start_all() {
    fl_write_model
    fl_write_configs
    fl_start_mosquitto || { bad "mosquitto did not start"; kt_finish; exit 1; }
    fl_start_hub || { bad "hub did not start"; kt_finish; exit 1; }
    curl -sf -o "$T/apply.out" -H "Authorization: Bearer admin" --data-binary @"$T/model.yaml" \
        "http://127.0.0.1:$hub_port/api/v1/apply" || bad "model apply"
    fl_start_proxy || { bad "proxy did not start"; kt_finish; exit 1; }
    fl_write_agent_config
    fl_start_agent || { bad "agent did not start/sync/subscribe"; tail -n 30 "$T/agent.log";
        kt_finish; exit 1; }
    fl_log "up: hub :$hub_port proxy :$proxy_port (ctl :$proxy_ctl) agent :$agent_port mqtt :$mqtt_port"
}

# ---- load -----------------------------------------------------------------
cat >"$T/gen.py" <<'PY'
# gen.py STOPFILE RATE START [COUNT]: print {"seq":N} lines from START, RATE per
# second (0 = no pacing), until STOPFILE exists or COUNT lines were printed;
# the number of lines printed goes to STOPFILE.count at the end.
import os, sys, time
stop, rate, seq = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
count = int(sys.argv[4]) if len(sys.argv) > 4 else -1
out = sys.stdout
n = 0
t0 = time.monotonic()
while count < 0 or n < count:
    if count < 0 and os.path.exists(stop):
        break
    out.write('{"seq":%d}\n' % (seq + n))
    n += 1
    if rate > 0:
        out.flush()
        ahead = t0 + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
out.flush()
with open(stop + ".count.tmp", "w") as f:
    f.write("%d\n" % n)
os.rename(stop + ".count.tmp", stop + ".count")
PY

declare -A LOAD_SENT LOAD_PID
# load_start INST RATE [COUNT]
load_start() {
    local inst=$1 rate=$2 count=${3:-} start=$((${LOAD_SENT[$1]:-0} + 1))
    rm -f "$T/load.$inst.stop" "$T/load.$inst.stop.count"
    python3 "$T/gen.py" "$T/load.$inst.stop" "$rate" "$start" $count |
        mosquitto_pub -p "$mqtt_port" -q 1 -l -t "ktwin/real/city-pole/$inst" \
            2>>"$T/pub.$inst.log" &
    LOAD_PID[$inst]=$!
    PIDS+=("$!")
}
# load_stop INST: end the load, wait for the publisher; LOAD_SENT[INST] += lines.
load_stop() {
    local inst=$1 n rc i
    touch "$T/load.$inst.stop"
    for ((i = 0; i < 600; i++)); do
        kill -0 "${LOAD_PID[$inst]}" 2>/dev/null || break
        sleep 0.1
    done
    wait "${LOAD_PID[$inst]}"
    rc=$?
    check "mosquitto_pub $inst exit status" 0 "$rc"
    n=$(cat "$T/load.$inst.stop.count" 2>/dev/null)
    LOAD_SENT[$inst]=$((${LOAD_SENT[$inst]:-0} + ${n:-0}))
}
# load_burst INST COUNT: publish COUNT messages as fast as possible and wait.
load_burst() {
    load_start "$1" 0 "$2"
    load_stop "$1"
}
load_total() {
    local inst sum=0
    for inst in $FL_INSTANCES; do sum=$((sum + ${LOAD_SENT[$inst]:-0})); done
    echo "$sum"
}

# ---- the hub's event store --------------------------------------------------
cat >"$T/tally.py" <<'PY'
# tally.py HUB_PORT SENT_FILE: read every event of the hub's store through
# the KTWIN API (pages of 1000, ktwin-next-cursor) and compare the store
# events of city-pole with the messages published (SENT_FILE: "inst count"
# lines). Prints "total=N distinct=N dups=N missing=N" and then details.
import base64, json, sys, urllib.request
port, sent_file = sys.argv[1], sys.argv[2]
sent = {}
for line in open(sent_file):
    inst, n = line.split()
    sent[inst] = int(n)
seen, bad = {}, []
total = 0
cursor = None
while True:
    url = "http://127.0.0.1:%s/api/v1/twin-events?order=asc&limit=1000" % port
    if cursor:
        url += "&cursor=" + cursor
    with urllib.request.urlopen(url, timeout=30) as r:
        page = json.load(r)
        cursor = r.headers.get("ktwin-next-cursor")
    for ev in page:
        if ev.get("type") != "ktwin.store.city-pole":
            continue
        total += 1
        try:
            data = json.loads(base64.b64decode(ev["eventData"]))
            key = (ev["instanceId"], int(data["last"]["seq"]))
        except Exception as e:  # noqa: BLE001 - reported below
            bad.append("%s: %r" % (ev.get("id"), e))
            continue
        seen[key] = seen.get(key, 0) + 1
    if not cursor:
        break
dups = sorted(k for k, c in seen.items() if c > 1)
missing = sorted((i, s) for i, n in sent.items() for s in range(1, n + 1) if (i, s) not in seen)
extra = sorted(k for k in seen if k[1] < 1 or k[1] > sent.get(k[0], 0))
print("total=%d distinct=%d dups=%d missing=%d extra=%d unparsable=%d" %
      (total, len(seen), len(dups), len(missing), len(extra), len(bad)))
def show(name, xs):
    if xs:
        print("  %s (%d): %s%s" % (name, len(xs), " ".join("%s:%d" % k for k in xs[:20]),
                                   " ..." if len(xs) > 20 else ""))
show("duplicated", dups)
show("missing", missing)
show("extra", extra)
for b in bad[:5]:
    print("  unparsable " + b)
PY

# hub_tally: the tally line (and details) against LOAD_SENT.
hub_tally() {
    local inst
    for inst in $FL_INSTANCES; do echo "$inst ${LOAD_SENT[$inst]:-0}"; done >"$T/sent.txt"
    python3 "$T/tally.py" "$hub_port" "$T/sent.txt" 2>>"$T/tally.err"
}
# hub_count: store events of city-pole in the hub now (only the count).
hub_count() { hub_tally | awk 'NR == 1 { sub("total=", "", $1); print $1 }'; }

outbox_events() { metric "$agent_port" ktwin_agent_outbox_events; }
outbox_empty() { [ "$(outbox_events)" = 0 ]; }
_fl_all_arrived() {
    outbox_empty || return 1
    [ "$(hub_count)" -ge "$(load_total)" ] && return 0
    sleep 1 # the tally pages through the whole store: not ten times a second
    return 1
}

# fl_check_exactly_once NAME: after the load stopped.
fl_check_exactly_once() {
    local name=$1 want tally
    want=$(load_total)
    fl_log "$name: waiting for $want store events at the hub"
    waitfor "$name: outbox drained and every event at the hub" 240 _fl_all_arrived
    tally=$(hub_tally)
    echo "$tally" | sed 's/^/    /'
    check "$name: exactly once (hub store vs published)" \
        "total=$want distinct=$want dups=0 missing=0 extra=0 unparsable=0" "$(echo "$tally" | head -n 1)"
    check "$name: agent outbox empty" 0 "$(outbox_events)"
    check "$name: no device message refused" "" \
        "$(curl -s "http://127.0.0.1:$agent_port/metrics" |
            awk '$1 ~ /^ktwin_agent_events_rejected_total/ && $2 != 0 { print }')"
    fl_log "$name: hub duplicates dropped by dedupe so far (this hub process):" \
        "$(metric "$hub_port" ktwin_hub_events_duplicates_total)"
}
