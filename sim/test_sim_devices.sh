#!/usr/bin/env bash
# ktwin-sim devices against real mosquitto brokers:
#  1. usage errors exit 2; a broker that is not there exits 1 naming the site;
#  2. one neighborhood, one site, QoS 1, the full six windows compressed 100x:
#     mosquitto_sub sees exactly KTWIN's counts per interface (7200 air quality,
#     12000 traffic flow, 804 battery, ...), 503 device topics, the right
#     payloads per window, and the same numbers as the stats file; a fake
#     battery service answering 5 batteries gives measured round trips;
#  3. two neighborhoods over two sites: neighborhood k publishes only to site
#     k % 2's broker;
#  4. SIGTERM mid-run still writes the final stats line.
set -uo pipefail
SIM=$1
. "$(dirname "$0")/../tests/lib/testlib.sh"

# start_broker NAME: a mosquitto on a free port, which goes into $BROKER_PORT
# (not echoed: a $(...) subshell would lose the PID).
start_broker() {
    BROKER_PORT=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n' \
        "$BROKER_PORT" >"$T/$1.conf"
    mosquitto -c "$T/$1.conf" >>"$T/$1.log" 2>&1 &
    PIDS+=("$!")
    wait_until 20 mosquitto_pub -p "$BROKER_PORT" -t probe/up -m x 2>/dev/null ||
        bad "$1 did not start"
}

# sub_ready PORT FILE: publish probes until the subscriber writing FILE shows one.
sub_ready() {
    wait_until 20 sh -c "mosquitto_pub -p $1 -q 1 -t ktwin/real/probe/probe -m probe; grep -q probe '$2'"
}

# ---- 1. usage and a missing broker
"$SIM" devices >/dev/null 2>&1; check usage-no-args 2 $?
"$SIM" devices --help | grep -q -- '--compress'; check usage-help 0 $?
"$SIM" devices --neighborhoods 1 >/dev/null 2>&1; check usage-no-broker 2 $?
"$SIM" devices --neighborhoods 1 --sites 2 --broker site-0=tcp://127.0.0.1:1 >/dev/null 2>&1
check usage-site-1-missing 2 $?
"$SIM" devices --neighborhoods 1 --broker site-0=tcp://127.0.0.1:1 --qos 2 >/dev/null 2>&1
check usage-qos 2 $?
"$SIM" devices --neighborhoods 1 --broker site-0=tcp://127.0.0.1:1 --compress 0 >/dev/null 2>&1
check usage-compress 2 $?
"$SIM" devices --neighborhoods 1 --broker site-0=bogus://127.0.0.1:1 >"$T/bogus.out" 2>&1
check bad-url-exit 1 $?
contains bad-url-names-site "$T/bogus.out" 'site-0 broker bogus://127.0.0.1:1'
dead=$(free_port)
"$SIM" devices --neighborhoods 1 --broker "site-0=tcp://127.0.0.1:$dead" --connect-timeout 1 \
    >"$T/dead.out" 2>&1
check dead-broker-exit 1 $?
contains dead-broker-names-site "$T/dead.out" "site-0 broker tcp://127.0.0.1:$dead: not connected"

# ---- 2. one neighborhood, one site, full run at 100x, QoS 1
start_broker site0
port=$BROKER_PORT
mosquitto_sub -p "$port" -q 1 -v -t 'ktwin/real/#' >"$T/real.out" 2>>"$T/site0.log" &
PIDS+=("$!")
sub_ready "$port" "$T/real.out" || bad "subscriber not ready"
# A fake battery service: answers the air-quality batteries of poles 1..5.
# (A FIFO, not a pipe, so both halves have PIDs that the cleanup kills.)
mkfifo "$T/battery.fifo"
mosquitto_sub -p "$port" -q 1 -v -t 'ktwin/real/ngsi-ld-city-device/+' >"$T/battery.fifo" \
    2>>"$T/site0.log" &
PIDS+=("$!")
while read -r topic payload; do
    case "$topic" in
    */ngsi-ld-city-device-aqo-nb001-p0000[1-5])
        mosquitto_pub -p "$port" -q 1 -t "ktwin/virtual/ngsi-ld-city-device/${topic##*/}" \
            -m '{"measurementFrequency":15}'
        ;;
    esac
done <"$T/battery.fifo" >/dev/null 2>>"$T/site0.log" &
PIDS+=("$!")
sleep 0.5 # the battery subscriber has no probe; it is only needed seconds later

"$SIM" devices --neighborhoods 1 --sites 1 --broker "site-0=tcp://127.0.0.1:$port" \
    --compress 100 --qos 1 --drain 3 --stats "$T/stats.jsonl" >"$T/run.out" 2>"$T/run.err"
check full-run-exit 0 $?
cat "$T/run.out"
[ -s "$T/run.err" ] && head -n 20 "$T/run.err"
contains summary "$T/run.out" 'published 42216 of 42216 scheduled, failed 0'
# Let mosquitto_sub write out what it received (QoS 1: every PUBACKed message).
wait_until 30 sh -c "[ \$(grep -c ' ' '$T/real.out') -ge 42217 ]" || bad "subscriber short"

python3 - "$T/stats.jsonl" "$T/real.out" >"$T/check.out" 2>&1 <<'PY'
import collections, json, sys
stats = [json.loads(l) for l in open(sys.argv[1]) if l.endswith("\n")]
fails = []
def want(name, cond):
    if not cond:
        fails.append(name)
final = stats[-1]
want("final-last", final.get("final") is True and all("final" not in s for s in stats[:-1]))
want("periodic-lines", len(stats) >= 10)
want("t-increases", all(a["t"] <= b["t"] for a, b in zip(stats, stats[1:])))
expected = {
    "ngsi-ld-city-airqualityobserved": 7200, "ngsi-ld-city-weatherobserved": 7200,
    "ngsi-ld-city-noiselevelobserved": 7200, "ngsi-ld-city-crowdflowobserved": 7200,
    "ngsi-ld-city-trafficflowobserved": 12000, "ngsi-ld-city-streetlight": 200,
    "ngsi-ld-city-evchargingstation": 134, "ngsi-ld-city-parkingspot": 278,
    "ngsi-ld-city-device": 804,
}
want("published=ktwin", final["published"] == expected)
want("scheduled=ktwin", final["scheduled"] == expected)
want("failed-0", final["failed"] == 0 and final["inflight"] == 0)
want("windows", sorted({s["window"] for s in stats[:-1]})[0] == 0 and final["window"] == 6)
per_iface = collections.Counter()
per_topic = collections.Counter()
bad_json = 0
samples = {}
for line in open(sys.argv[2]):
    topic, _, payload = line.rstrip("\n").partition(" ")
    parts = topic.split("/")
    if parts[2] == "probe":
        continue
    per_iface[parts[2]] += 1
    per_topic[topic] += 1
    try:
        body = json.loads(payload)
    except ValueError:
        bad_json += 1
        continue
    samples.setdefault((parts[2], body.get("msg_count")), body)
want("sub=published", dict(per_iface) == final["published"])
want("topics-503", len(per_topic) == 503)
want("json", bad_json == 0)
want("traffic-240", per_topic["ktwin/real/ngsi-ld-city-trafficflowobserved/"
                             "ngsi-ld-city-trafficflowobserved-nb001-p00007"] == 240)
want("parking-278", per_topic["ktwin/real/ngsi-ld-city-parkingspot/"
                              "ngsi-ld-city-offstreetparkingspot-nb001-ofp0001-s0001"] == 278)
want("crowd-w5", samples[("ngsi-ld-city-crowdflowobserved", 5)]["averageCrowdSpeed"] == 8)
want("crowd-w0", samples[("ngsi-ld-city-crowdflowobserved", 0)]["peopleCount"] == 50)
want("traffic-w4", samples[("ngsi-ld-city-trafficflowobserved", 4)]["averageHeadwayTime"] == 5)
want("parking-w5", samples[("ngsi-ld-city-parkingspot", 5)]["status"] == "occupied")
want("battery-msg1", samples[("ngsi-ld-city-device", 1)] ["batteryLevel"] == 90)
want("streetlight-only-0-1", {m for (i, m) in samples if i == "ngsi-ld-city-streetlight"} == {0, 1})
aq = samples[("ngsi-ld-city-airqualityobserved", 0)]
want("aq-keys", len(aq) == 24 and aq["CODensity"] == 8 and aq["timestamp"].endswith("Z"))
rtt = final["rtt_ms"]
want("virtual-20", final["virtual"] == 20)
want("rtt-matched", 1 <= rtt["n"] <= 20 and rtt["n"] + final["unmatched"] == 20)
want("rtt-order", 0 < rtt["p50"] <= rtt["p90"] <= rtt["p99"])
print("stats lines", len(stats), "rtt", rtt, "late_ms_max", final["late_ms_max"])
print("FAILED " + " ".join(fails) if fails else "ALL OK")
PY
cat "$T/check.out"
contains stats-vs-mosquitto "$T/check.out" '^ALL OK$'

# ---- 3. two neighborhoods on two sites: neighborhood k -> site k % 2
start_broker site1
port1=$BROKER_PORT
mosquitto_sub -p "$port" -q 0 -v -t 'ktwin/real/#' >"$T/s0.out" 2>>"$T/site0.log" &
PIDS+=("$!")
mosquitto_sub -p "$port1" -q 0 -v -t 'ktwin/real/#' >"$T/s1.out" 2>>"$T/site1.log" &
PIDS+=("$!")
sub_ready "$port" "$T/s0.out" || bad "site 0 subscriber"
sub_ready "$port1" "$T/s1.out" || bad "site 1 subscriber"
"$SIM" devices --neighborhoods 2 --sites 2 \
    --brokers "tcp://127.0.0.1:$port,tcp://127.0.0.1:$port1" --compress 100 --qos 0 \
    --duration 1 --drain 1 --stats "$T/two.jsonl" >"$T/two.out" 2>&1
check two-sites-exit 0 $?
wait_until 10 grep -q nb002 "$T/s0.out" || bad "site 0 got nothing of nb002"
wait_until 10 grep -q nb001 "$T/s1.out" || bad "site 1 got nothing of nb001"
lacks site0-only-nb002 "$T/s0.out" 'nb001'
lacks site1-only-nb001 "$T/s1.out" 'nb002'
contains two-final "$T/two.jsonl" '"final":true'

# One process per site: --only-site 1 needs only site 1's broker and runs only nb001.
lines0=$(wc -l <"$T/s0.out")
"$SIM" devices --neighborhoods 2 --sites 2 --only-site 1 --broker "site-1=tcp://127.0.0.1:$port1" \
    --compress 100 --qos 1 --duration 1 --drain 1 --stats "$T/only.jsonl" >"$T/only.out" 2>&1
check only-site-exit 0 $?
lacks site1-still-only-nb001 "$T/s1.out" 'nb002'
python3 - "$T/only.jsonl" >"$T/only.check" <<'PY'
import json, sys
f = [json.loads(l) for l in open(sys.argv[1])][-1]
# 100 model seconds of one neighborhood: 3 x 500 + 150 + 500 + 1 + 1
ok = f["final"] and f["published"] == f["scheduled"] and sum(f["published"].values()) == 2152
print("ONLY OK" if ok else "ONLY BAD %s" % f)
PY
contains only-site-counts "$T/only.check" '^ONLY OK$'
check only-site-nothing-on-site-0 "$lines0" "$(wc -l <"$T/s0.out")"

# ---- 4. SIGTERM mid-run: final line, exit 0
"$SIM" devices --neighborhoods 1 --broker "tcp://127.0.0.1:$port" --compress 10 \
    --drain 1 --stats "$T/term.jsonl" >"$T/term.out" 2>&1 &
sim=$!
PIDS+=("$sim")
wait_until 30 grep -qs '"t"' "$T/term.jsonl" || bad "no stats line before SIGTERM"
stop "$sim" sim-devices
contains term-final "$T/term.jsonl" '"final":true.*"interrupted":true'
contains term-summary "$T/term.out" '\(interrupted\)'

kt_finish
