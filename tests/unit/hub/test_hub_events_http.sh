#!/usr/bin/env bash
# test_hub_events_http.sh — the KTWIN event-store API and broker ingress on
# the real ktwin-hub (loopback, port 0, temp data dir): apply a small model,
# POST /api/v1/twin-events (binary and structured mode) with KTWIN's
# upsert-merge, GET .../latest (data + ce-* headers, 404 "Not Found"),
# GET the list with limit/order/cursor pagination and a time range, broker
# ingress POST / (202, committed in the next loop turn; unknown interface
# 404), the event-store metrics, and a restart that keeps events and latest
# state (events.db).
#
# usage: test_hub_events_http.sh KTWIN_HUB
# Exit 0 = pass, 77 = skipped (curl or jq missing), else fail.
. "$(dirname "$0")/../../lib/testlib.sh"
HUB=$1
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }

mkdir -p "$T/data"
cat >"$T/hub.yaml" <<EOF
listen:
  port: 0
data_dir: $T/data
log:
  level: info
events:
  retention_interval: 1s
EOF

HUB_PID=
start_hub() {
    rm -f "$T/port"
    "$HUB" --config "$T/hub.yaml" --port-file "$T/port" >>"$T/hub.log" 2>&1 &
    HUB_PID=$!
    PIDS+=("$HUB_PID")
    PORT=$(wait_file "$T/port" 30) || { bad "hub did not write its port"; tail -20 "$T/hub.log"; kt_finish; exit 1; }
    URL="http://127.0.0.1:$PORT"
    TOKEN=$(cat "$T/data/admin.token")
}

# req METHOD PATH [curl args...]: prints the status; body in $T/body, headers in $T/hdr
req() {
    local m=$1 p=$2
    shift 2
    curl -s -D "$T/hdr" -o "$T/body" -w '%{http_code}' -X "$m" "$URL$p" "$@"
}

# post_store INSTANCE ID TIME DATA: binary-mode POST /api/v1/twin-events
post_store() {
    req POST /api/v1/twin-events -H "ce-specversion: 1.0" -H "ce-id: $2" \
        -H "ce-type: ktwin.store.city-pole" -H "ce-source: $1" -H "ce-time: $3" \
        -H "Content-Type: application/json" --data-binary "$4"
}

start_hub

cat >"$T/city.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  properties:
  - name: aqi
    schema: {primitiveType: string}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-1}
spec: {interface: city-pole}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-2}
spec: {interface: city-pole}
EOF
check "apply" 200 "$(req POST /api/v1/apply -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/yaml' --data-binary @"$T/city.yaml")"

# ---- POST /api/v1/twin-events: upsert-merge ----------------------------------
check "post 1" 202 "$(post_store pole-1 e1 2024-06-22T00:00:01Z '{"a":1,"n":{"x":1},"arr":[1,2]}')"
check "post 2" 202 "$(post_store pole-1 e2 2024-06-22T00:00:02Z '{"b":2,"n":{"y":2},"arr":[3]}')"
check "latest" 200 "$(req GET /api/v1/twin-events/city-pole/pole-1/latest)"
check "latest merged" '{"a":1,"n":{"x":1,"y":2},"arr":[3],"b":2}' "$(jq -c . "$T/body")"
contains "latest ce-id" "$T/hdr" '^ce-id: e2'
contains "latest ce-type" "$T/hdr" '^ce-type: ktwin.store.city-pole'
contains "latest ce-source" "$T/hdr" '^ce-source: pole-1'
check "latest of a twin without events" 404 "$(req GET /api/v1/twin-events/city-pole/pole-2/latest)"
check "404 body" "Not Found" "$(cat "$T/body")"
check "post non-object data" 400 "$(post_store pole-1 bad 2024-06-22T00:00:03Z '[1]')"
check "post without ce-type" 400 "$(req POST /api/v1/twin-events -H 'ce-specversion: 1.0' \
    -H 'ce-id: x' -H 'ce-source: pole-1' --data-binary '{}')"
# structured mode
check "post structured" 202 "$(req POST /api/v1/twin-events -H 'Content-Type: application/cloudevents+json' \
    --data-binary '{"specversion":"1.0","id":"e3","type":"ktwin.store.city-pole","source":"pole-1","time":"2024-06-22T00:00:03Z","data":{"c":3}}')"
req GET /api/v1/twin-events/city-pole/pole-1/latest >/dev/null
check "structured merged" '{"a":1,"n":{"x":1,"y":2},"arr":[3],"b":2,"c":3}' "$(jq -c . "$T/body")"

# ---- the list: pagination and time range -------------------------------------
for i in 4 5 6 7 8; do
    check "post $i" 202 "$(post_store pole-1 "e$i" "2024-06-22T00:00:0${i}Z" "{\"i\":$i}")"
done
check "list all" 200 "$(req GET '/api/v1/twin-events/city-pole/pole-1?order=asc&limit=1000')"
check "list count" 8 "$(jq length "$T/body")"
check "list ids" "e1 e2 e3 e4 e5 e6 e7 e8" "$(jq -r '[.[].id] | join(" ")' "$T/body")"
check "stored doc is the merged one" '{"a":1,"n":{"x":1,"y":2},"arr":[3],"b":2}' \
    "$(jq -r '.[1].eventData' "$T/body" | base64 -d | jq -c .)"
check "instanceId" pole-1 "$(jq -r '.[0].instanceId' "$T/body")"
check "interfaceId" city-pole "$(jq -r '.[0].interfaceId' "$T/body")"
# pages of 3, ascending, following ktwin-next-cursor
got=""
cursor=""
pages=0
while :; do
    q="order=asc&limit=3"
    [ -n "$cursor" ] && q="$q&cursor=$cursor"
    check "page $pages" 200 "$(req GET "/api/v1/twin-events/city-pole/pole-1?$q")"
    got="$got $(jq -r '[.[].id] | join(" ")' "$T/body")"
    pages=$((pages + 1))
    cursor=$(awk 'tolower($1) == "ktwin-next-cursor:" { gsub("\r", "", $2); print $2 }' "$T/hdr")
    [ -z "$cursor" ] && break
    [ "$pages" -gt 10 ] && { bad "pagination does not end"; break; }
done
check "pages" 3 "$pages"
check "paged ids" "e1 e2 e3 e4 e5 e6 e7 e8" "$(echo $got)"
# default order is newest first
req GET '/api/v1/twin-events/city-pole/pole-1?limit=2' >/dev/null
check "newest first" "e8 e7" "$(jq -r '[.[].id] | join(" ")' "$T/body")"
# time range [00:00:03, 00:00:06)
check "range" 200 "$(req GET '/api/v1/twin-events/city-pole/pole-1?order=asc&from=2024-06-22T00:00:03Z&to=2024-06-22T00:00:06Z')"
check "range ids" "e3 e4 e5" "$(jq -r '[.[].id] | join(" ")' "$T/body")"
check "bad limit" 400 "$(req GET '/api/v1/twin-events/city-pole/pole-1?limit=0')"
check "bad cursor" 400 "$(req GET '/api/v1/twin-events/city-pole/pole-1?cursor=zz')"
check "all events" 200 "$(req GET '/api/v1/twin-events?limit=1000')"
check "all events count" 8 "$(jq length "$T/body")"

# ---- broker ingress ------------------------------------------------------------
check "ingress" 202 "$(req POST / -H 'ce-specversion: 1.0' -H 'ce-id: g1' \
    -H 'ce-type: ktwin.store.city-pole' -H 'ce-source: pole-2' \
    -H 'Content-Type: application/json' --data-binary '{"aqi":"GOOD"}')"
latest_pole2() { [ "$(req GET /api/v1/twin-events/city-pole/pole-2/latest)" = 200 ]; }
if wait_until 20 latest_pole2; then ok; else bad "ingress event never reached the store"; fi
check "ingress data" '{"aqi":"GOOD"}' "$(jq -c . "$T/body")"
check "ingress unknown interface" 404 "$(req POST / -H 'ce-specversion: 1.0' -H 'ce-id: g2' \
    -H 'ce-type: ktwin.store.nope' -H 'ce-source: pole-2' --data-binary '{}')"
check "ingress unknown instance" 404 "$(req POST / -H 'ce-specversion: 1.0' -H 'ce-id: g3' \
    -H 'ce-type: ktwin.store.city-pole' -H 'ce-source: pole-404' --data-binary '{}')"

# ---- metrics -----------------------------------------------------------------
check "committed" 9 "$(metric "$PORT" ktwin_hub_events_committed_total)"
check "rows" 9 "$(metric "$PORT" ktwin_hub_evstore_rows)"
bytes=$(metric "$PORT" ktwin_hub_evstore_bytes)
if [ "${bytes:-0}" -gt 500 ]; then ok; else bad "evstore bytes: $bytes"; fi
curl -s "$URL/metrics" >"$T/metrics"
contains "dropped metric" "$T/metrics" '^ktwin_hub_events_dropped_total\{reason="unknown-iface"\} 1$'
contains "retention metric" "$T/metrics" '^ktwin_hub_retention_deleted_total 0$'

# ---- restart keeps events and latest state -------------------------------------
stop "$HUB_PID" ktwin-hub
start_hub
check "latest after restart" 200 "$(req GET /api/v1/twin-events/city-pole/pole-1/latest)"
check "latest data after restart" '{"a":1,"n":{"x":1,"y":2},"arr":[3],"b":2,"c":3,"i":8}' "$(jq -c . "$T/body")"
req GET '/api/v1/twin-events?limit=1000' >/dev/null
check "events after restart" 9 "$(jq length "$T/body")"
check "rows after restart" 9 "$(metric "$PORT" ktwin_hub_evstore_rows)"
stop "$HUB_PID" ktwin-hub
contains "ready line" "$T/hub.log" 'id=HUB-EVENTS-READY .*backend=sqlite rows=9 '
kt_finish
