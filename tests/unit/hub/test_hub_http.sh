#!/usr/bin/env bash
# test_hub_http.sh — the real ktwin-hub on loopback (port 0, temp data dir):
# REST API (apply, 422 listing every error, 401/403, GET kinds, DELETE with
# dependents refused), KTWIN twin-graph JSON equal to `ktwinctl graph` on the
# same files, watch-dir add/modify/remove, Redis keys (real redis-server),
# garbage and oversize requests, metrics, clean SIGTERM shutdown, and a
# restart that keeps the graph.
#
# usage: test_hub_http.sh KTWIN_HUB KTWINCTL [REDIS_SERVER]
# Exit 0 = pass, 77 = skipped (curl or jq missing), else fail.
set -u
HUB=$1
CTL=$2
REDIS=${3:-}
command -v curl >/dev/null && command -v jq >/dev/null || { echo "SKIP: needs curl and jq"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/hub-http-XXXXXX")
HUB_PID=
REDIS_PID=
cleanup() {
    [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    if [ -z "${KT_TEST_KEEP:-}" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
check() { # check DESC COND...
    local d=$1; shift
    if "$@"; then ok "$d"; else fail "$d"; fi
}

# poll CMD... until it succeeds (deadline 20 s); no sleep-based asserts.
wait_for() {
    local i
    for i in $(seq 1 200); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$T/crds" "$T/data"
DATA=$T/data

# ---- optional redis ---------------------------------------------------------
REDIS_PORT=
if [ -n "$REDIS" ] && command -v python3 >/dev/null && command -v redis-cli >/dev/null; then
    REDIS_PORT=$(free_port)
    "$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" \
        --loglevel warning >"$T/redis.log" 2>&1 &
    REDIS_PID=$!
    wait_for redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || fail "redis-server did not start"
fi

cat >"$T/hub.yaml" <<EOF
listen:
  port: 0
data_dir: $T/data
watch_dir: $T/crds
watch:
  debounce: 50ms
limits:
  max_body_bytes: 64KiB
log:
  level: info
EOF
if [ -n "$REDIS_PORT" ]; then
    printf 'redis:\n  url: redis://127.0.0.1:%s/0\n  reconnect_min: 20ms\n  reconnect_max: 200ms\n' \
        "$REDIS_PORT" >>"$T/hub.yaml"
fi

start_hub() {
    rm -f "$T/port"
    "$HUB" --config "$T/hub.yaml" --port-file "$T/port" >>"$T/hub.log" 2>&1 &
    HUB_PID=$!
    wait_for test -s "$T/port" || { fail "hub did not write its port"; cat "$T/hub.log"; exit 1; }
    PORT=$(cat "$T/port")
    URL="http://127.0.0.1:$PORT"
    TOKEN=$(cat "$DATA/admin.token")
}

stop_hub() {
    kill -TERM "$HUB_PID"
    wait "$HUB_PID"
    local rc=$?
    HUB_PID=
    return $rc
}

# curl wrapper: prints the status code, body into $T/body
req() { # req METHOD PATH [curl args...]
    local m=$1 p=$2; shift 2
    curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$URL$p" "$@"
}
auth=(-H "Authorization: Bearer placeholder")
set_auth() { auth=(-H "Authorization: Bearer $TOKEN"); }

# ---- the city used by the API tests (instances in name order) ----------------
cat >"$T/city.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-neighborhood}
spec:
  properties:
  - name: aqi
    schema: {primitiveType: string}
---
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: city-pole}
spec:
  relationships:
  - {name: refNeighborhood, interface: city-neighborhood}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: nb-1}
spec: {interface: city-neighborhood}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-1}
spec:
  interface: city-pole
  twinInstanceRelationships:
  - {name: refNeighborhood, interface: city-neighborhood, instance: nb-1}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-2}
spec:
  interface: city-pole
  twinInstanceRelationships:
  - {name: refNeighborhood, interface: city-neighborhood, instance: nb-1}
EOF

start_hub
set_auth
check "healthz" test "$(req GET /healthz)" = 200
check "readyz" test "$(req GET /readyz)" = 200
check "healthz body" test "$(req GET /healthz >/dev/null; cat "$T/body")" = ok
check "admin token file is 0600" test "$(stat -c %a "$T/data/admin.token")" = 600

# ---- auth ------------------------------------------------------------------------
check "apply without token -> 401" test "$(req POST /api/v1/apply --data-binary @"$T/city.yaml")" = 401
check "apply with wrong token -> 403" \
    test "$(req POST /api/v1/apply -H 'Authorization: Bearer nope' --data-binary @"$T/city.yaml")" = 403
check "delete without token -> 401" test "$(req DELETE /api/v1/twininstances/pole-1)" = 401

# ---- apply --------------------------------------------------------------------------
code=$(req POST /api/v1/apply "${auth[@]}" -H 'Content-Type: application/yaml' --data-binary @"$T/city.yaml")
check "apply -> 200" test "$code" = 200
check "apply revision 1" test "$(jq .revision "$T/body")" = 1
check "apply created 5" test "$(jq '[.applied[] | select(.op=="created")] | length' "$T/body")" = 5
code=$(req POST /api/v1/apply "${auth[@]}" --data-binary @"$T/city.yaml")
check "re-apply unchanged" test "$(jq -r '[.applied[].op] | unique | join(",")' "$T/body")" = unchanged
check "re-apply keeps revision" test "$(jq .revision "$T/body")" = 1

# 422: two errors in the request, both listed with their lines; nothing applied
cat >"$T/bad.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-3}
spec:
  interface: city-pole
  bogus: 1
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: x-1}
spec: {interface: ghost}
EOF
code=$(req POST /api/v1/apply "${auth[@]}" --data-binary @"$T/bad.yaml")
check "invalid apply -> 422" test "$code" = 422
check "422 lists both errors" test "$(jq '.errors | length' "$T/body")" = 2
check "422 unknown field at line 6" \
    test "$(jq -r '.errors[] | select(.class=="unknown-field") | "\(.file):\(.line):\(.path)"' "$T/body")" = "request:6:spec.bogus"
check "422 unknown interface" test "$(jq '[.errors[] | select(.class=="instance-interface-unknown")] | length' "$T/body")" = 1
check "nothing applied" test "$(req GET /api/v1/twininstances/pole-3)" = 404
printf '{"apiVersion":"dtd.ktwin/v0","kind":"TwinInstance","metadata":{"name":"a\xff\xfe"},"spec":{"interface":"g\xc3"}}' >"$T/utf8.json"
check "invalid UTF-8 -> 422" test "$(req POST /api/v1/apply "${auth[@]}" --data-binary @"$T/utf8.json")" = 422
check "422 body is valid JSON" jq -e '.errors | length > 0' "$T/body"
check "empty body -> 400" test "$(req POST /api/v1/apply "${auth[@]}" --data-binary '')" = 400

# ---- GET kinds ------------------------------------------------------------------------
check "list instances" test "$(req GET /api/v1/twininstances)" = 200
check "list is a List in name order" \
    test "$(jq -r '.kind + ":" + ([.items[].metadata.name] | join(","))' "$T/body")" = "List:nb-1,pole-1,pole-2"
check "get one" test "$(req GET /api/v1/twininterfaces/city-pole)" = 200
check "get one body" test "$(jq -r .metadata.name "$T/body")" = city-pole
check "get missing -> 404" test "$(req GET /api/v1/twininstances/nope)" = 404
check "unknown kind -> 404" test "$(req GET /api/v1/pods)" = 404
check "placementpolicies empty" test "$(req GET /api/v1/placementpolicies)" = 200

# ---- KTWIN graph API: same JSON as ktwinctl graph on the same file -------------------------
check "twin-graph" test "$(req GET /api/v1/twin-graph)" = 200
"$CTL" graph -f "$T/city.yaml" >"$T/expect.json" 2>/dev/null
check "twin-graph equals ktwinctl graph" test "$(jq -cS . "$T/body")" = "$(jq -cS . "$T/expect.json")"
check "twin-graph has KTWIN's shape" \
    test "$(jq -r '.twinInstances[1] | "\(.name) \(.interface) \(.relationships[0].name) \(.relationships[0].interface) \(.relationships[0].instance)"' "$T/body")" = "pole-1 city-pole refNeighborhood city-neighborhood nb-1"
check "twin-graph/{iface}" test "$(req GET /api/v1/twin-graph/city-pole)" = 200
"$CTL" graph -f "$T/city.yaml" --interface city-pole >"$T/expect.json" 2>/dev/null
check "per-interface equals ktwinctl" test "$(jq -cS . "$T/body")" = "$(jq -cS . "$T/expect.json")"
check "twin-graph/{unknown} -> 404" test "$(req GET /api/v1/twin-graph/nothing)" = 404
check "404 body is \"Not Found\"" test "$(cat "$T/body")" = '"Not Found"'

# ---- delete -------------------------------------------------------------------------------
check "delete iface with instances -> 422" test "$(req DELETE /api/v1/twininterfaces/city-pole "${auth[@]}")" = 422
check "422 names the dependent instance" \
    test "$(jq -r '[.errors[].file] | unique | join(",")' "$T/body")" = "TwinInstance/pole-1,TwinInstance/pole-2"
check "delete instance -> 200" test "$(req DELETE /api/v1/twininstances/pole-2 "${auth[@]}")" = 200
check "delete revision 2" test "$(jq .revision "$T/body")" = 2
check "delete missing -> 404" test "$(req DELETE /api/v1/twininstances/pole-2 "${auth[@]}")" = 404

# ---- bad input on the socket --------------------------------------------------------------
big=$(head -c 100000 /dev/zero | tr '\0' 'a')
check "oversize body -> 413" test "$(printf '%s' "$big" | req POST /api/v1/apply "${auth[@]}" --data-binary @-)" = 413
# Each in a subshell that ignores SIGPIPE: the hub may close first.
(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 0
    head -c 4096 /dev/urandom >&3
    printf 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n' >&3
    exec 3>&-
) 2>/dev/null
(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 0
    printf 'POST /api/v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort' >&3
    exec 3>&-
) 2>/dev/null
(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 0
    printf 'GET /sync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n' >&3
    head -c 2048 /dev/urandom >&3
    exec 3>&-
) 2>/dev/null
check "alive after garbage" test "$(req GET /healthz)" = 200

# ---- watch dir ----------------------------------------------------------------------------
cat >"$T/crds/poles.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: pole-w1}
spec: {interface: city-pole}
EOF
has() { test "$(req GET "/api/v1/twininstances/$1")" = 200; }
hasnt() { test "$(req GET "/api/v1/twininstances/$1")" = 404; }
check "watch-dir add" wait_for has pole-w1
printf -- '---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: pole-w2}\nspec: {interface: city-pole}\n' >>"$T/crds/poles.yaml"
check "watch-dir modify" wait_for has pole-w2
printf 'apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata: {name: pole-w3}\nspec: {interface: ghost}\n' >"$T/crds/bad.yaml"
check "watch-dir invalid is logged with file:line:col" \
    wait_for grep -Eq "id=WATCHDIR-INVALID .*bad.yaml:[0-9]+:[0-9]+ path=spec.interface" "$T/hub.log"
check "watch-dir invalid applies nothing" hasnt pole-w3
rm -f "$T/crds/bad.yaml" "$T/crds/poles.yaml"
check "watch-dir remove" wait_for hasnt pole-w1
check "watch-dir remove (2)" hasnt pole-w2
check "API objects stay" has pole-1

# ---- redis ----------------------------------------------------------------------------------
if [ -n "$REDIS_PORT" ]; then
    req GET /api/v1/twin-graph >/dev/null
    cp "$T/body" "$T/graph.json"
    redis_eq() { test "$(redis-cli -p "$REDIS_PORT" --raw get twin_graph | jq -cS .)" = "$(jq -cS . "$T/graph.json")"; }
    check "redis twin_graph equals the API" wait_for redis_eq
    req GET /api/v1/twin-graph/city-pole >/dev/null
    check "redis twin_graph.city-pole" \
        test "$(redis-cli -p "$REDIS_PORT" --raw get twin_graph.city-pole | jq -cS .)" = "$(jq -cS . "$T/body")"
    check "redis keys have no TTL" test "$(redis-cli -p "$REDIS_PORT" ttl twin_graph)" = -1
    req DELETE /api/v1/twininstances/pole-1 "${auth[@]}" >/dev/null
    gone() { test "$(redis-cli -p "$REDIS_PORT" exists twin_graph.city-pole)" = 0; }
    check "redis key of an interface with no instances is deleted" wait_for gone
fi

# ---- metrics ----------------------------------------------------------------------------------
req GET /metrics >/dev/null
for m in 'ktwin_hub_apply_total{result="ok"} 2' 'ktwin_hub_apply_total{result="invalid"} 3' \
    'ktwin_hub_auth_failures_total 3' 'ktwin_hub_http_requests_total{code="422"}' \
    'ktwin_hub_graph_revision' 'ktwin_hub_objects{kind="TwinInstance"}' \
    'ktwin_hub_watchdir_reconcile_total{result="invalid"}'; do
    check "metric $m" grep -qF "$m" "$T/body"
done
if [ -n "$REDIS_PORT" ]; then
    check "metric redis publish" grep -q '^ktwin_hub_redis_publish_total [1-9]' "$T/body"
fi

# ---- restart keeps the graph -------------------------------------------------------------------
req GET /api/v1/twin-graph >/dev/null
cp "$T/body" "$T/before.json"
REV=$(grep '^ktwin_hub_graph_revision ' <(curl -s "$URL/metrics") | awk '{print $2}')
stop_hub
check "SIGTERM exits 0" test $? = 0
check "clean stop logged" grep -q "id=HUB-STOPPED.*exit=0" "$T/hub.log"
start_hub
check "restart: graph kept" test "$(req GET /api/v1/twin-graph && jq -cS . "$T/body")" = "200$(jq -cS . "$T/before.json")"
REV2=$(grep '^ktwin_hub_graph_revision ' <(curl -s "$URL/metrics") | awk '{print $2}')
check "restart: revision kept ($REV)" test "$REV" = "$REV2"
check "restart: same admin token works" test "$(req POST /api/v1/apply "${auth[@]}" --data-binary @"$T/city.yaml")" = 200
stop_hub

# ---- TLS (throwaway self-signed certificate) ----------------------------------------------------
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
    printf 'listen: {port: 0}\ndata_dir: %s/data-tls\ntls: {cert_file: %s/cert.pem, key_file: %s/key.pem}\n' \
        "$T" "$T" "$T" >"$T/hub.yaml"
    DATA=$T/data-tls
    start_hub
    check "TLS healthz" test "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" "https://127.0.0.1:$PORT/healthz")" = 200
    check "TLS apply" test "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" -H "Authorization: Bearer $TOKEN" --data-binary @"$T/city.yaml" "https://127.0.0.1:$PORT/api/v1/apply")" = 200
    check "no plain HTTP on a TLS listener" test "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")" != 200
    stop_hub
    check "TLS hub exits 0" test $? = 0
fi

# ---- a bad config exits 2 with file:line:col ------------------------------------------------------
printf 'listen:\n  port: 70000\nbogus: 1\n' >"$T/bad-hub.yaml"
"$HUB" --config "$T/bad-hub.yaml" >"$T/bad.out" 2>&1
check "bad config exits 2" test $? = 2
check "bad config names file:line:col" grep -q "bad-hub.yaml:3:1: bogus" "$T/bad.out"

if [ "$FAILS" -ne 0 ]; then
    echo "---- hub log ----"
    tail -50 "$T/hub.log"
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all checks passed"
