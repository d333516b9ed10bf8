#!/usr/bin/env bash
# Fault test (issue 4, refusals): malformed CloudEvents at the agent's broker
# ingress (KTWIN's POST /), with a real ktwin-agent and ktwin-hub on
# 127.0.0.1. Each bad request gets a 4xx whose body is
# {"error":{"code":<status>,"message":"..."}}, is counted in
# ktwin_svc_api_rejected_total{route="ingress",reason=invalid|too_big} and
# logged SVC-API-REJECT (a debug line: this agent runs with log.level debug):
#   - no ce-type, no ce-id, a type that is no ktwin.<class>.<iface>
#   - a store event whose data is not JSON / not a JSON object (also
#     DISPATCH-DROP reason=invalid, ktwin_agent_dispatch_dropped_total{reason="invalid"})
#   - a structured-mode body that is no JSON, and batch mode
#   - data over services.max_data_bytes (413)
#   - a body over the HTTP server's 1 MiB cap: 413 from kt_net before any
#     handler, ktwin_net_http_body_too_big_total
# Good store events posted before, between and after them reach the hub's
# event store exactly once, and nothing of a refused request is stored.
#
# usage: test_refuse_ingress.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/refuse_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

refuse_model
hub_start || { kt_finish; exit 1; }
agent_start "services: {max_data_bytes: 1KiB}" "log: {level: debug}" || { kt_finish; exit 1; }
A="http://127.0.0.1:$agent_port"
am() { metric_of "$agent_port" "$1"; }
want=""
good() { # COUNT
    check "good event $1 accepted" 202 "$(post_store "g$1" "$1")"
    want="$want $1"
}

# bad NAME STATUS REASON CURL_ARGS...: POST / must answer STATUS with the
# error body, count reason REASON and log SVC-API-REJECT.
nbad=0
bad_post() {
    local name=$1 want_code=$2 reason=$3
    shift 3
    nbad=$((nbad + 1))
    local m="ktwin_svc_api_rejected_total{route=\"ingress\",reason=\"$reason\"}"
    local m0 l0 code
    m0=$(am "$m")
    l0=$(count_id "$T/agent.log" SVC-API-REJECT)
    code=$(curl -s -o "$T/bad-$nbad.json" -w '%{http_code}' -X POST "$A/" "$@")
    check "$name: status" "$want_code" "$code"
    if python3 - "$T/bad-$nbad.json" "$want_code" <<'PY'; then ok; else bad "$name: error body: $(cat "$T/bad-$nbad.json")"; fi
import json, sys
d = json.load(open(sys.argv[1]))
e = d["error"]
assert set(d) == {"error"}, d
assert e["code"] == int(sys.argv[2]), e
assert isinstance(e["message"], str) and e["message"], e
PY
    check "$name: counted" "$((${m0:-0} + 1))" "$(am "$m")"
    grew "$name: log id SVC-API-REJECT" "$l0" count_id "$T/agent.log" SVC-API-REJECT
}
CE=(-H 'ce-specversion: 1.0' -H 'ce-source: pole-1' -H 'Content-Type: application/json')

good 1
bad_post "no ce-type" 400 invalid "${CE[@]}" -H 'ce-id: b1' -d '{"count": 901}'
good 2
bad_post "no ce-id" 400 invalid "${CE[@]}" -H 'ce-type: ktwin.store.city-pole' -d '{"count": 902}'
bad_post "bad type" 400 invalid "${CE[@]}" -H 'ce-id: b3' -H 'ce-type: not.a.type' \
    -d '{"count": 903}'
good 3
drop0=$(am 'ktwin_agent_dispatch_dropped_total{reason="invalid"}')
bad_post "store data not JSON" 400 invalid "${CE[@]}" -H 'ce-id: b4' \
    -H 'ce-type: ktwin.store.city-pole' -d '{"count": 904,,'
bad_post "store data not an object" 400 invalid "${CE[@]}" -H 'ce-id: b5' \
    -H 'ce-type: ktwin.store.city-pole' -d '[905]'
check "non-object store data counted as drops" "$((${drop0:-0} + 2))" \
    "$(am 'ktwin_agent_dispatch_dropped_total{reason="invalid"}')"
contains "non-JSON store data logged" "$T/agent.log" 'id=DISPATCH-DROP .*reason=invalid .*id=b4 '
good 4
bad_post "structured, no JSON" 400 invalid -H 'Content-Type: application/cloudevents+json' \
    -d '{"specversion":"1.0","id":"b6","type":"ktwin.store.city-pole","source":"pole-1",'
bad_post "batch mode" 400 invalid -H 'Content-Type: application/cloudevents-batch+json' \
    -d '[{"specversion":"1.0","id":"b7","type":"ktwin.store.city-pole","source":"pole-1","data":{"count":907}}]'
big=$(python3 -c 'print("{\"count\": 908, \"pad\": \"" + "x" * 3000 + "\"}")')
bad_post "data over services.max_data_bytes" 413 too_big "${CE[@]}" -H 'ce-id: b8' \
    -H 'ce-type: ktwin.store.city-pole' --data-binary "$big"
good 5
# A body over the HTTP server's cap (1 MiB): refused by kt_net before any handler.
python3 -c 'import sys; sys.stdout.write("{\"count\": 909, \"pad\": \"" + "x" * (2 << 20) + "\"}")' \
    >"$T/huge.json"
tb0=$(am ktwin_net_http_body_too_big_total)
code=$(curl -s -o "$T/huge.out" -w '%{http_code}' -X POST "$A/" "${CE[@]}" -H 'ce-id: b9' \
    -H 'ce-type: ktwin.store.city-pole' --data-binary @"$T/huge.json")
check "body over the HTTP cap: status" 413 "$code"
contains "body over the HTTP cap: error body" "$T/huge.out" '^\{"error":\{"code":413,"message":"[^"]+"\}\}$'
check "body over the HTTP cap: counted" "$((${tb0:-0} + 1))" "$(am ktwin_net_http_body_too_big_total)"
good 6

hub_has_counts "${want# }"
outbox_empty() { test "$(metric "$agent_port" ktwin_agent_outbox_events)" = 0; }
wait_until 30 outbox_empty || bad "the hub's acks did not empty the outbox"
body=$(curl -s "$A/api/v1/twin-events/city-pole/pole-1/latest")
check "latest state: the last good event" '{"count":6}' "$body"
check "agent still connected" 1 "$(metric "$agent_port" ktwin_agent_connected)"
lacks "no sanitizer report (agent)" "$T/agent.log" 'ERROR: (Address|Undefined)Sanitizer|runtime error'
stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
