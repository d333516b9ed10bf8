#!/usr/bin/env bash
# ktwin-agent as a process, without a hub:
#  - usage and config errors exit 2 and name file:line:col and the key;
#  - an agent started on a pre-filled cache with an unreachable hub serves the
#    cached graph over HTTP at once (compared with ktwinctl graph of the same
#    model), the per-interface graph, 404 "Not Found", /readyz, /metrics, and
#    exits 0 on SIGTERM (ASan builds fail the exit on leaks);
#  - SIGHUP applies reloadable keys and refuses changes to the others;
#  - a corrupt cache file is moved aside, counted, and the agent starts empty.
# The cache is pre-filled by bench_sync_snapshot, which runs the agent's own
# store code (sync_client -> agent_store -> agent_cache) in process.
#
# usage: test_agent_process.sh AGENT BENCH_SNAPSHOT KTWIN_SIM KTWINCTL
set -uo pipefail
AGENT=$1
FILL=$2
SIM=$3
KTWINCTL=$4
. "$(dirname "$0")/../../lib/testlib.sh"

echo tok >"$T/token"
write_cfg() { # file cache
    cat >"$1" <<EOF
site: site-1
hub:
  url: ws://127.0.0.1:1/sync
  token_file: $T/token
cache:
  path: $2
listen:
  port: 0
reconnect: {base_ms: 50ms, cap_ms: 500ms}
EOF
}

# ---- usage and config errors
"$AGENT" >/dev/null 2>&1
check "no arguments" 2 $?
"$AGENT" --bogus >/dev/null 2>&1
check "unknown argument" 2 $?
write_cfg "$T/bad.yaml" "$T/x.db"
printf 'hub:\n  extra: 1\n' >>"$T/bad.yaml"
"$AGENT" --config "$T/bad.yaml" >"$T/bad.out" 2>&1
check "unknown key exit" 2 $?
contains "unknown key message" "$T/bad.out" 'bad\.yaml:[0-9]+:[0-9]+: hub\.(extra|url|token_file)'
printf 'site: s1\nhub: {token_file: %s/missing}\n' "$T" >"$T/notoken.yaml"
"$AGENT" --config "$T/notoken.yaml" >"$T/notoken.out" 2>&1
check "missing token file exit" 2 $?
contains "missing token file message" "$T/notoken.out" 'hub\.token_file'
"$AGENT" --config "$T/nonexistent.yaml" >/dev/null 2>&1
check "missing config file" 2 $?

# ---- pre-filled cache, unreachable hub
"$SIM" model --neighborhoods 1 --sites 1 --format json -o "$T/city" >/dev/null || bad "ktwin-sim"
"$FILL" "$T/city" --db "$T/cache.db" >"$T/fill.json" 2>&1 || { bad "fill cache"; cat "$T/fill.json"; }
n_inst=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"])' "$T/fill.json")
"$KTWINCTL" graph -f "$T/city" >"$T/expected.json" || bad "ktwinctl graph"
"$KTWINCTL" graph -f "$T/city" --interface city-pole >"$T/expected-pole.json" || bad "ktwinctl graph --interface"
write_cfg "$T/agent.yaml" "$T/cache.db"
"$AGENT" --config "$T/agent.yaml" --port-file "$T/port" 2>"$T/agent.log" &
apid=$!
PIDS+=("$apid")
port=$(wait_file "$T/port") || bad "no port file"
curl -sf "http://127.0.0.1:$port/api/v1/twin-graph" -o "$T/graph.json"
check "twin-graph GET" 0 $?
same_graph() { # name expected actual
    if python3 - "$2" "$3" <<'PY'; then ok; else bad "$1 differs from ktwinctl graph"; fi
import json, sys
def norm(p):
    d = json.load(open(p))
    return sorted(((i["name"], i["interface"], json.dumps(i.get("relationships", []), sort_keys=True))
                   for i in d["twinInstances"]))
a, b = norm(sys.argv[1]), norm(sys.argv[2])
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
}
same_graph "twin-graph" "$T/expected.json" "$T/graph.json"
curl -sf "http://127.0.0.1:$port/api/v1/twin-graph/city-pole" -o "$T/pole.json"
check "twin-graph/city-pole GET" 0 $?
same_graph "twin-graph/city-pole" "$T/expected-pole.json" "$T/pole.json"
code=$(curl -s -o "$T/nf.txt" -w '%{http_code}' "http://127.0.0.1:$port/api/v1/twin-graph/no-such-iface")
check "unknown interface status" 404 "$code"
check "unknown interface body" "Not Found" "$(cat "$T/nf.txt")"
check "readyz" ready "$(curl -s "http://127.0.0.1:$port/readyz")"
check "healthz" ok "$(curl -s "http://127.0.0.1:$port/healthz")"
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics.txt"
contains "graph revision metric" "$T/metrics.txt" '^ktwin_agent_graph_revision 1$'
contains "connected metric" "$T/metrics.txt" '^ktwin_agent_connected 0$'
contains "objects metric" "$T/metrics.txt" "^ktwin_agent_objects\{kind=\"twininstances\"\} $n_inst\$"
contains "corrupt metric zero" "$T/metrics.txt" '^ktwin_agent_cache_corrupt_total 0$'
curl -s "http://127.0.0.1:$port/api/v1/placement" >"$T/placement.json"
contains "placement view" "$T/placement.json" '^\{"site":"site-1","revision":0,"interfaces":\[\]\}$'
# It keeps trying the hub meanwhile (backoff): at least one retry logged.
for ((i = 0; i < 100; i++)); do grep -q 'id=UPLINK-RETRY' "$T/agent.log" && break; sleep 0.1; done
contains "retries the hub" "$T/agent.log" 'id=UPLINK-RETRY'
# SIGHUP: a reloadable key (log.level) is applied, a non-reloadable one
# (listen.port) refuses the whole reload; the agent keeps serving either way.
cp "$T/agent.yaml" "$T/agent.yaml.orig"
printf 'log: {level: debug}\n' >>"$T/agent.yaml"
kill -HUP "$apid"
for ((i = 0; i < 100; i++)); do grep -q 'id=AGENT-RELOAD ' "$T/agent.log" && break; sleep 0.1; done
contains "reload applied" "$T/agent.log" 'id=AGENT-RELOAD .*log_level=debug'
sed -i 's/^  port: 0$/  port: 1/' "$T/agent.yaml"
kill -HUP "$apid"
for ((i = 0; i < 100; i++)); do grep -q 'id=AGENT-RELOAD-FAIL' "$T/agent.log" && break; sleep 0.1; done
contains "reload refused" "$T/agent.log" 'id=AGENT-RELOAD-FAIL .*listen\.port'
check "serving after reloads" ok "$(curl -s "http://127.0.0.1:$port/healthz")"
stop "$apid" "cached agent"

# ---- corrupt cache: moved aside, counted, started empty
head -c 65536 /dev/urandom >"$T/corrupt.db"
write_cfg "$T/corrupt.yaml" "$T/corrupt.db"
rm -f "$T/port"
"$AGENT" --config "$T/corrupt.yaml" --port-file "$T/port" 2>"$T/corrupt.log" &
cpid=$!
PIDS+=("$cpid")
port=$(wait_file "$T/port") || bad "no port file (corrupt)"
curl -s "http://127.0.0.1:$port/metrics" >"$T/metrics2.txt"
contains "corrupt counted" "$T/metrics2.txt" '^ktwin_agent_cache_corrupt_total 1$'
contains "corrupt logged" "$T/corrupt.log" 'id=CACHE-CORRUPT'
check "empty graph after corruption" '{"twinInstances":[]}' \
    "$(curl -s "http://127.0.0.1:$port/api/v1/twin-graph")"
moved=$(ls "$T" | grep -c '^corrupt\.db\.corrupt-[0-9]*$')
check "moved aside" 1 "$moved"
stop "$cpid" "corrupt agent"

kt_finish
