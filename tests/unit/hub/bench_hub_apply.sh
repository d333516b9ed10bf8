#!/usr/bin/env bash
# bench_hub_apply.sh — apply latency of the real ktwin-hub on a generated
# city (not a ctest; prints figures).
#
# usage: bench_hub_apply.sh KTWIN_HUB KTWIN_SIM [NEIGHBORHOODS] [N_SMALL]
# Loads the whole city in one POST /api/v1/apply, then times N_SMALL applies
# of one changed instance, N_SMALL unchanged re-applies of it, a restart
# (graph load), and a GET of the whole twin graph. Figures are the hub's own
# API-APPLY ms (validate + commit + notify) and curl's total time.
set -eu
HUB=$1
SIM=$2
NB=${3:-20}
N=${4:-20}
T=$(mktemp -d "${TMPDIR:-/tmp}/hub-bench-XXXXXX")
HUB_PID=
trap '[ -n "$HUB_PID" ] && kill $HUB_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
"$SIM" model --neighborhoods "$NB" --sites 3 -o "$T/city" >/dev/null
cat "$T/city"/*.yaml >"$T/all.yaml"
printf 'listen: {port: 0}\ndata_dir: %s/data\nlimits: {max_body_bytes: 256MiB}\n' "$T" >"$T/hub.yaml"
start() {
    rm -f "$T/port"
    "$HUB" --config "$T/hub.yaml" --port-file "$T/port" >>"$T/hub.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 1 600); do [ -s "$T/port" ] && break; sleep 0.05; done
    URL="http://127.0.0.1:$(cat "$T/port")"
    AUTH="Authorization: Bearer $(cat "$T/data/admin.token")"
}
field() { grep -o 'id=API-APPLY .*' "$T/hub.log" | tail -1 | grep -o " $1=[0-9.]*" | cut -d= -f2; }
start
bytes=$(wc -c <"$T/all.yaml")
t=$(curl -s -o /dev/null -w '%{time_total}' -H "$AUTH" --data-binary @"$T/all.yaml" "$URL/api/v1/apply")
echo "full city: $bytes bytes, $(grep -c '^kind: TwinInstance' "$T/all.yaml") instances, curl ${t}s, hub ms=$(field ms) validate_ms=$(field validate_ms) commit_ms=$(field commit_ms) notify_ms=$(field notify_ms)"
inst=$(curl -s "$URL/api/v1/twininstances" | jq -r '.items[100].metadata.name')
iface=$(curl -s "$URL/api/v1/twininstances/$inst" | jq -r '.spec.interface')
ms_changed=()
v_ms=(); c_ms=(); n_ms=()
for i in $(seq 1 "$N"); do
    printf 'apiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: %s\n  labels: {bench: "%d"}\nspec: {interface: %s}\n' "$inst" "$i" "$iface" >"$T/one.yaml"
    curl -s -o /dev/null -H "$AUTH" --data-binary @"$T/one.yaml" "$URL/api/v1/apply"
    ms_changed+=("$(field ms)")
    v_ms+=("$(field validate_ms)"); c_ms+=("$(field commit_ms)"); n_ms+=("$(field notify_ms)")
done
ms_same=()
for i in $(seq 1 "$N"); do
    curl -s -o /dev/null -H "$AUTH" --data-binary @"$T/one.yaml" "$URL/api/v1/apply"
    ms_same+=("$(field ms)")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, p90 %.1f ms, max %.1f ms (n=%d)", a[int((NR+1)/2)], a[int(NR*0.9+0.5)], a[NR], NR}'; }
echo "one changed instance: $(stats "${ms_changed[@]}")"
echo "  of which validate (parse + model build + resolve): $(stats "${v_ms[@]}")"
echo "  of which SQLite commit: $(stats "${c_ms[@]}")"
echo "  of which subscribers (fed, redis): $(stats "${n_ms[@]}")"
echo "one unchanged instance: $(stats "${ms_same[@]}")"
t=$(curl -s -o "$T/g.json" -w '%{time_total}' "$URL/api/v1/twin-graph")
echo "GET twin-graph: $(wc -c <"$T/g.json") bytes, first ${t}s"
t=$(curl -s -o "$T/g.json" -w '%{time_total}' "$URL/api/v1/twin-graph")
echo "GET twin-graph cached: ${t}s"
kill -TERM $HUB_PID; wait $HUB_PID; HUB_PID=
t0=$(date +%s.%N)
start
t1=$(date +%s.%N)
echo "restart to listening (graph load): $(echo "$t1 - $t0" | bc) s"
kill -TERM $HUB_PID; wait $HUB_PID; HUB_PID=
