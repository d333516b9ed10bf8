#!/usr/bin/env bash
# tests/integration/federation.sh — federation integration scenarios (ctest
# label "federation"). Real processes on 127.0.0.1: ktwin-hub, ktwin-agent,
# the fake_fleet load generator (real sync protocol), each with ephemeral
# ports (port 0 + --port-file; a restarted hub reuses its first port), temp
# dirs (kept with KT_TEST_KEEP=1), stopped by PID. Waits poll with generous
# deadlines (scaled by KT_TIMEOUT_MULT); nothing asserts on speed.
#
#   federation.sh three-sites   hub + 3 real agents on the smart-city model:
#                               exact subgraphs, an instance change reaches only
#                               its site, a PlacementPolicy change moves an
#                               interface, hub restart keeps the graph, an agent
#                               restarted while the hub is down serves its cache
#   federation.sh storm         200 fake agents reconnect at once after a hub
#                               restart: all get in, admission bound respected
#   federation.sh tls           TLS with a throwaway CA; bad token and unknown
#                               site refused, logged and counted
# Exit 0 pass, 1 fail, 77 skipped (a binary is missing).
set -uo pipefail

SCN=${1:-}
BIN=${KT_BIN_DIR:-$(pwd)}
SRC=${KT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MULT=${KT_TIMEOUT_MULT:-1}
HUB=$BIN/hub/ktwin-hub
AGENT=$BIN/agent/ktwin-agent
SIM=$BIN/sim/ktwin-sim
FLEET=$BIN/tests/fake_fleet
EXPECT=$BIN/tests/fed_expect

for b in "$HUB" "$SIM" "$FLEET" "$EXPECT"; do
    if [ ! -x "$b" ]; then
        echo "SKIP: $b not built"
        exit 77
    fi
done
for t in curl jq openssl sqlite3; do
    if ! command -v $t >/dev/null; then
        echo "SKIP: $t not installed"
        exit 77
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/ktwin-fed-$SCN.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ "${KT_TEST_KEEP:-0}" = 1 ] || [ "$fail" -ne 0 ]; then
        echo "logs kept in $T"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { # name expected actual
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$3', expected '$2'"; fi
}
now_ms() { date +%s%3N; }

# wait_for DESC SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local desc=$1 secs=$2
    shift 2
    local deadline=$(($(date +%s) + secs * MULT))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            bad "timed out after $((secs * MULT)) s: $desc"
            return 1
        fi
        sleep 0.2
    done
    return 0
}

# stop_pid PID: SIGTERM, wait for the exit; returns the exit status.
stop_pid() {
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    local rc=$?
    local keep=()
    for p in "${PIDS[@]}"; do
        [ "$p" != "$1" ] && keep+=("$p")
    done
    PIDS=("${keep[@]}")
    return $rc
}

ADMIN=fed-test-admin-token
HUB_PORT=0
HUB_PID=
HUB_SCHEME=http
HUB_WS=ws
CURL_TLS=()

# write_hub_cfg RATE BURST [TLS]
write_hub_cfg() {
    cat >"$T/hub.yaml" <<EOF
listen:
  address: 127.0.0.1
  port: $HUB_PORT
data_dir: $T/hub
auth:
  admin_token_file: $T/admin.token
  agents_file: $T/agents
log:
  level: info
sync:
  heartbeat_ms: 1000
  admit_rate: $1
  admit_burst: $2
EOF
    if [ "${3:-}" = tls ]; then
        cat >>"$T/hub.yaml" <<EOF
tls:
  cert_file: $T/pki/hub.crt
  key_file: $T/pki/hub.key
EOF
    fi
}

hub_url() { echo "$HUB_SCHEME://127.0.0.1:$HUB_PORT$1"; }
hub_get() { curl -sf "${CURL_TLS[@]}" "$(hub_url "$1")"; }
hub_ready() { curl -sf "${CURL_TLS[@]}" -o /dev/null "$(hub_url /readyz)"; }

start_hub() {
    rm -f "$T/hub.port"
    "$HUB" --config "$T/hub.yaml" --port-file "$T/hub.port" >>"$T/hub.log" 2>&1 &
    HUB_PID=$!
    PIDS+=("$HUB_PID")
    wait_for "hub port file" 30 test -s "$T/hub.port" || return 1
    HUB_PORT=$(cat "$T/hub.port")
    wait_for "hub ready" 30 hub_ready
}

metric() { # NAME_WITH_LABELS -> value (0 when absent)
    hub_get /metrics | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}

apply_file() { # FILE -> prints the response; fails on non-200
    curl -sf "${CURL_TLS[@]}" -X POST -H "Authorization: Bearer $ADMIN" --data-binary @"$1" \
        "$(hub_url /api/v1/apply)"
}

hub_revision() { hub_get /api/v1/sites | jq -r .revision; }

make_model() { # NEIGHBORHOODS SITES
    "$SIM" model --neighborhoods "$1" --sites "$2" -o "$T/model" >"$T/sim.out" 2>&1 ||
        { bad "ktwin-sim model"; return 1; }
    cat "$T"/model/interfaces.yaml "$T"/model/policy.yaml "$T"/model/instances-*.yaml >"$T/all.yaml"
}

echo "$ADMIN" >"$T/admin.token"

# ---------------------------------------------------------------- agents ---

start_agent() { # I SITE [CA]
    local d=$T/ag$1
    mkdir -p "$d"
    echo "tok-$2" >"$d/token"
    cat >"$d/agent.yaml" <<EOF
site: $2
hub:
  url: $HUB_WS://127.0.0.1:$HUB_PORT/sync
  token_file: $d/token
  connect_timeout_ms: 5s
cache:
  path: $d/agent.db
listen:
  address: 127.0.0.1
  port: 0
capacity:
  cpu_millis: 8000
  memory_bytes: 16GiB
reconnect:
  base_ms: 100ms
  cap_ms: 1s
log:
  level: info
EOF
    if [ -n "${3:-}" ]; then
        sed -i "s|^  token_file:|  ca_file: $3\n  token_file:|" "$d/agent.yaml"
    fi
    rm -f "$d/port"
    "$AGENT" --config "$d/agent.yaml" --port-file "$d/port" >>"$d/log" 2>&1 &
    eval "AG_PID_$1=$!"
    PIDS+=("$!")
    wait_for "agent $1 port" 30 test -s "$d/port"
}

agent_port() { cat "$T/ag$1/port"; }
agent_metric() { # I NAME
    curl -sf "http://127.0.0.1:$(agent_port "$1")/metrics" |
        awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print -1 }'
}
agent_at_rev() { # I REV
    local r
    r=$(agent_metric "$1" ktwin_agent_graph_revision)
    [ "${r%.*}" = "$2" ]
}
agent_names() { # I -> sorted instance names the agent serves
    curl -sf "http://127.0.0.1:$(agent_port "$1")/api/v1/twin-graph" | jq -r '.twinInstances[].name' | sort
}
agent_where() { # I IFACE -> where in the agent's placement
    curl -sf "http://127.0.0.1:$(agent_port "$1")/api/v1/placement" |
        jq -r --arg i "$2" '.interfaces[] | select(.interface == $i) | .where'
}
agent_sql() { # I SQL (read-only on the agent's cache)
    sqlite3 -readonly "$T/ag$1/agent.db" "$2"
}

# The hub's current documents as a model directory (JSON streams), for fed_expect.
export_hub_model() {
    rm -rf "$T/cur"
    mkdir -p "$T/cur"
    local k
    for k in twininterfaces placementpolicies twininstances; do
        hub_get "/api/v1/$k" | jq -c '.items[]' >"$T/cur/$k.json" || return 1
    done
}

check_subgraph() { # I SITE LABEL [MODEL]
    "$EXPECT" --model "${4:-$T/model}" --agents-file "$T/agents" --site "$2" >"$T/expect-$1"
    agent_names "$1" >"$T/names-$1"
    local ne na
    ne=$(wc -l <"$T/expect-$1")
    na=$(wc -l <"$T/names-$1")
    if [ "$ne" -gt 0 ] && cmp -s "$T/expect-$1" "$T/names-$1"; then
        ok "$3: agent $1 ($2) holds exactly its subgraph ($na instances)"
    else
        bad "$3: agent $1 ($2) has $na instances, expected $ne (diff $T/expect-$1 $T/names-$1)"
    fi
}

# ------------------------------------------------------------ scenarios ---

scenario_three_sites() {
    if [ ! -x "$AGENT" ]; then
        echo "SKIP: $AGENT not built"
        exit 77
    fi
    make_model 3 3 || return
    printf 'site-00 tok-site-00\nsite-01 tok-site-01\nsite-02 tok-site-02\n' >"$T/agents"
    write_hub_cfg 50 50
    start_hub || return
    write_hub_cfg 50 50 # pin the port for restarts
    local i
    for i in 0 1 2; do start_agent $i site-0$i || return; done
    apply_file "$T/all.yaml" >"$T/apply1.json" || { bad "apply the smart-city model"; return; }
    local rev
    rev=$(jq -r .revision "$T/apply1.json")
    for i in 0 1 2; do wait_for "agent $i at revision $rev" 60 agent_at_rev $i "$rev" || return; done
    for i in 0 1 2; do check_subgraph $i site-0$i initial; done
    local nif
    nif=$(hub_get /api/v1/twininterfaces | jq '.items | length')
    for i in 0 1 2; do
        check "agent $i holds every TwinInterface" "$nif" \
            "$(agent_sql $i "select count(*) from objects where kind = 'TwinInterface'")"
    done

    # An instance change reaches only the agents whose subgraph contains it.
    local x
    x=$(comm -23 "$T/expect-0" <(sort -u "$T/expect-1" "$T/expect-2") | grep pole | head -1)
    [ -n "$x" ] || x=$(comm -23 "$T/expect-0" <(sort -u "$T/expect-1" "$T/expect-2") | head -1)
    hub_get "/api/v1/twininstances/$x" |
        jq '.metadata.labels["fed-test"] = "changed"' >"$T/change.json"
    apply_file "$T/change.json" >"$T/apply2.json" || { bad "apply an instance change"; return; }
    local rev2
    rev2=$(jq -r .revision "$T/apply2.json")
    check "instance change bumps the revision" $((rev + 1)) "$rev2"
    for i in 0 1 2; do wait_for "agent $i at revision $rev2" 60 agent_at_rev $i "$rev2" || return; done
    check "agent 0 has the changed $x" 1 \
        "$(agent_sql 0 "select count(*) from objects where name = '$x' and rev = $rev2 and body like '%fed-test%'")"
    for i in 1 2; do
        check "agent $i got nothing of revision $rev2 (only its revision moved)" 0 \
            "$(agent_sql $i "select count(*) from objects where rev = $rev2")"
    done

    # A placement change moves an interface: city-pole edge -> cloud.
    check "city-pole starts at the edge (hub)" edge "$(hub_get /api/v1/placement/city-pole | jq -r .where)"
    for i in 0 1 2; do check "city-pole starts at the edge (agent $i)" edge "$(agent_where $i city-pole)"; done
    local moves0
    moves0=$(metric ktwin_hub_placement_moves_total)
    hub_get /api/v1/placementpolicies/smart-city |
        jq '.spec.rules = [{"name":"poles-in-the-cloud","match":{"interfaces":["city-pole"]},"placement":"cloud"}] + .spec.rules' \
            >"$T/policy.json"
    apply_file "$T/policy.json" >"$T/apply3.json" || { bad "apply a changed PlacementPolicy"; return; }
    check "hub places city-pole in the cloud" cloud "$(hub_get /api/v1/placement/city-pole | jq -r .where)"
    check "hub names the deciding rule" smart-city/poles-in-the-cloud \
        "$(hub_get /api/v1/placement/city-pole | jq -r .rule)"
    agent_where_is() { [ "$(agent_where "$1" "$2")" = "$3" ]; }
    for i in 0 1 2; do
        wait_for "agent $i sees city-pole in the cloud" 60 agent_where_is $i city-pole cloud &&
            ok "agent $i moved city-pole to the cloud"
    done
    local moves1
    moves1=$(metric ktwin_hub_placement_moves_total)
    if [ "${moves1%.*}" -ge $((${moves0%.*} + 3)) ]; then ok "hub counted the moves ($moves0 -> $moves1)"; else
        bad "ktwin_hub_placement_moves_total $moves0 -> $moves1, expected +3"; fi
    if grep -q 'id=PLACEMENT-MOVE .*iface=city-pole site=site-00 from=edge to=cloud rule=smart-city/poles-in-the-cloud' "$T/hub.log"; then
        ok "the move is logged with its rule and reason"
    else
        bad "no PLACEMENT-MOVE line for city-pole on site-00"
    fi
    check "site-00 explain has steps" true \
        "$(hub_get '/api/v1/placement/city-pole?site=site-00' | jq '.steps | length > 0')"

    # Membership change while agent 1 is away: a pole of site-00 is relabelled to site-01.
    # Agent 0 gets it live; agent 1 reconnects with a DELTA (ring) and ends exact too.
    local revb
    revb=$(hub_revision)
    stop_pid "$AG_PID_1"
    local pole
    pole=$(comm -23 "$T/expect-0" <(sort -u "$T/expect-1" "$T/expect-2") | grep '^city-pole' | tail -1)
    hub_get "/api/v1/twininstances/$pole" |
        jq '.metadata.labels["ktwin.io/site"] = "site-01"' >"$T/relabel.json"
    apply_file "$T/relabel.json" >"$T/apply4.json" || { bad "apply a relabelled instance"; return; }
    local rev4
    rev4=$(jq -r .revision "$T/apply4.json")
    check "relabel bumps the revision" $((revb + 1)) "$rev4"
    export_hub_model || { bad "export the hub's documents"; return; }
    for i in 0 2; do wait_for "agent $i at revision $rev4" 60 agent_at_rev $i "$rev4" || return; done
    check_subgraph 0 site-00 "live delta after relabel" "$T/cur"
    check_subgraph 2 site-02 "live delta after relabel" "$T/cur"
    start_agent 1 site-01 || return
    wait_for "agent 1 at revision $rev4" 60 agent_at_rev 1 "$rev4" || return
    if grep -q 'id=SYNC-WELCOME.*site=site-01 .*agent_rev='"$revb"' .*mode=delta' "$T/hub.log"; then
        ok "agent 1 came back at revision $revb and got a DELTA"
    else
        bad "agent 1 did not get a DELTA from $revb"
    fi
    check_subgraph 1 site-01 "delta after reconnect" "$T/cur"
    if grep -q "$pole" "$T/names-1"; then ok "the relabelled $pole reached site-01"; else
        bad "$pole missing on site-01"; fi

    # A restarted hub keeps its graph; an agent restarted while the hub is down serves its cache.
    local rev3 ninst
    rev3=$(hub_revision)
    ninst=$(hub_get /api/v1/twininstances | jq '.items | length')
    stop_pid "$HUB_PID"
    check "hub stops cleanly" 0 $?
    local p1
    p1=$AG_PID_1
    stop_pid "$p1"
    start_agent 1 site-01 || return
    wait_for "agent 1 ready from its cache" 30 curl -sf "http://127.0.0.1:$(agent_port 1)/readyz"
    check_subgraph 1 site-01 "hub down, agent restarted" "$T/cur"
    start_hub || return
    check "restarted hub keeps its revision" "$rev3" "$(hub_revision)"
    check "restarted hub keeps its instances" "$ninst" "$(hub_get /api/v1/twininstances | jq '.items | length')"
    check "restarted hub keeps the changed policy" cloud "$(hub_get /api/v1/placement/city-pole | jq -r .where)"
    sites_connected() { [ "$(metric ktwin_hub_sites_connected)" = 3 ]; }
    wait_for "3 sites reconnected" 60 sites_connected && ok "all 3 agents reconnected"
    for i in 0 1 2; do wait_for "agent $i at revision $rev3" 60 agent_at_rev $i "$rev3"; done
    if grep -q 'id=SYNC-WELCOME.*mode=up_to_date' "$T/hub.log"; then ok "reconnect at the current revision is UP_TO_DATE"; else
        bad "no UP_TO_DATE welcome after the hub restart"; fi
    for i in 0 1 2; do check_subgraph $i site-0$i "after hub restart" "$T/cur"; done

    # A change too big for a delta (> 2000 objects of one site): connected agents are
    # closed with "resync" and come back for a chunked snapshot.
    "$SIM" model --neighborhoods 14 --sites 3 -o "$T/model14" >/dev/null 2>&1 || { bad "ktwin-sim 14"; return; }
    cat "$T"/model14/instances-00{04,05,06,07,08,09,10,11,12,13,14}.yaml >"$T/big.yaml"
    local snaps0 resync0
    snaps0=$(metric ktwin_hub_sync_snapshots_total)
    resync0=$(metric ktwin_hub_sync_resyncs_total)
    apply_file "$T/big.yaml" >"$T/apply5.json" || { bad "apply 11 more neighborhoods"; return; }
    local rev5
    rev5=$(jq -r .revision "$T/apply5.json")
    export_hub_model || { bad "export the hub's documents"; return; }
    for i in 0 1 2; do wait_for "agent $i at revision $rev5" 120 agent_at_rev $i "$rev5" || return; done
    for i in 0 1 2; do check_subgraph $i site-0$i "after a big change" "$T/cur"; done
    local snaps1 resync1
    snaps1=$(metric ktwin_hub_sync_snapshots_total)
    resync1=$(metric ktwin_hub_sync_resyncs_total)
    # site-00 gains 3 neighborhoods (< 2000 objects: a live delta), site-01 and site-02 4 each
    # (> 2000: resync + snapshot).
    local dr=$((${resync1%.*} - ${resync0%.*})) ds=$((${snaps1%.*} - ${snaps0%.*}))
    if [ "$dr" -ge 1 ] && [ "$ds" -eq "$dr" ]; then
        ok "big change: $dr sites resynced with a snapshot, the others took a live delta"
    else
        bad "big change: resyncs $resync0 -> $resync1, snapshots $snaps0 -> $snaps1"
    fi
    check "no auth failures" 0 "$(metric ktwin_hub_sync_auth_failures_total)"
}

scenario_storm() {
    local n=200 rate=20 burst=10
    make_model 2 $n || return
    : >"$T/agents"
    local i
    for ((i = 0; i < n; i++)); do printf 'site-%02d tok-%d-%s\n' $i $i "$RANDOM" >>"$T/agents"; done
    write_hub_cfg $rate $burst
    start_hub || return
    write_hub_cfg $rate $burst
    apply_file "$T/all.yaml" >"$T/apply1.json" || { bad "apply the model"; return; }
    local rev
    rev=$(jq -r .revision "$T/apply1.json")
    "$FLEET" --url "ws://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/agents" --status "$T/fleet.json" \
        --backoff-base-ms 100 --backoff-cap-ms 1000 >"$T/fleet.log" 2>&1 &
    local fleet=$!
    PIDS+=("$fleet")
    all_in() { [ "$(jq -r .welcomed "$T/fleet.json" 2>/dev/null)" = "$n" ]; }
    all_at() { [ "$(jq --argjson r "$1" '[.sites[] | select(.rev == $r and .welcomed)] | length' "$T/fleet.json" 2>/dev/null)" = "$n" ]; }
    wait_for "$n fake agents in" 120 all_in || return
    wait_for "$n fake agents at revision $rev" 60 all_at "$rev" || return
    ok "$n fake agents connected and synced to revision $rev"
    # Each fake agent holds as many objects as its subgraph on the hub.
    hub_get /api/v1/sites | jq -c '[.sites[] | {key: .name, value: .members}] | from_entries' >"$T/members.json"
    local nif mism
    nif=$(hub_get /api/v1/twininterfaces | jq '.items | length')
    mism=$(jq --slurpfile m "$T/members.json" --argjson nif "$nif" \
        '[.sites[] | select(.instances != $m[0][.site] or .ifaces != $nif)] | length' "$T/fleet.json")
    check "every fake agent holds its subgraph's objects" 0 "$mism"
    check "sites with instances get them" true \
        "$(jq '[.sites[] | select(.instances > 0)] | length >= 2' "$T/fleet.json")"
    # site-01 and site-02 run the neighborhood services; a site without instances sees them
    # on another site (OTHER_SITE), never at its own edge.
    placed() { [ "$(jq '[.sites[] | select(.site == "site-01" and .edge > 0)] | length' "$T/fleet.json")" = 1 ] &&
        [ "$(jq '[.sites[] | select(.site == "site-150" and .edge == 0 and .other_site > 0)] | length' "$T/fleet.json")" = 1 ]; }
    wait_for "placement views pushed" 60 placed && ok "site-01 runs services at the edge; site-150 sees them as OTHER_SITE"

    # Restart the hub: everybody reconnects at once.
    local w0 b0
    w0=$(jq .welcomes_total "$T/fleet.json")
    b0=$(jq .rejects.busy "$T/fleet.json")
    stop_pid "$HUB_PID"
    check "hub stops cleanly" 0 $?
    local t0
    t0=$(now_ms)
    start_hub || return
    all_back() { [ "$(jq -r ".welcomes_total >= $w0 + $n and .welcomed == $n" "$T/fleet.json" 2>/dev/null)" = true ]; }
    wait_for "$n fake agents back after the hub restart" 180 all_back && ok "all $n agents got back in"
    local busy_hub sess_hub b1
    busy_hub=$(metric 'ktwin_hub_sync_rejects_total{code="busy"}')
    sess_hub=$(metric ktwin_hub_sync_sessions_total)
    b1=$(jq .rejects.busy "$T/fleet.json")
    echo "info: after restart hub sessions=$sess_hub busy_rejects=$busy_hub; fleet busy +$((b1 - b0))"
    if [ "${sess_hub%.*}" -ge "$n" ]; then ok "hub welcomed $sess_hub sessions"; else bad "hub welcomed only $sess_hub"; fi
    if [ "${busy_hub%.*}" -gt 0 ] && [ $((b1 - b0)) -gt 0 ]; then ok "admission refused some with BUSY (hub $busy_hub, fleet $((b1 - b0)))"; else
        bad "expected BUSY rejects: hub $busy_hub, fleet $((b1 - b0))"; fi
    # The admitted count never exceeds burst + rate * elapsed (times from t0, before the hub started).
    local viol
    viol=$(jq --argjson t0 "$t0" --argjson r "$rate" --argjson b "$burst" \
        '[.welcome_wall_ms[] | select(. >= $t0)] | sort | to_entries
         | map(select((.key + 1) > ($b + $r * ((.value - $t0) / 1000)))) | length' "$T/fleet.json")
    local span
    span=$(jq --argjson t0 "$t0" '[.welcome_wall_ms[] | select(. >= $t0)] | (max - $t0)' "$T/fleet.json")
    check "admission bound: admitted <= $burst + $rate/s * elapsed at every welcome" 0 "$viol"
    echo "info: $n re-admitted within ${span} ms of the restart (bound allows $(((n - burst) * 1000 / rate)) ms minimum)"
    stop_pid "$fleet"
    check "fake fleet stops cleanly" 0 $?
}

scenario_tls() {
    mkdir -p "$T/pki"
    (
        cd "$T/pki" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
            -subj "/CN=ktwin-test-ca" >/dev/null 2>&1 &&
            openssl req -newkey rsa:2048 -nodes -keyout hub.key -out hub.csr \
                -subj "/CN=localhost" >/dev/null 2>&1 &&
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf &&
            openssl x509 -req -in hub.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out hub.crt \
                -days 2 -extfile ext.cnf >/dev/null 2>&1
    ) || { bad "openssl: throwaway CA and hub certificate"; return; }
    ok "throwaway CA and hub certificate"
    make_model 2 2 || return
    printf 'site-00 tok-site-00\nsite-01 tok-site-01\n' >"$T/agents"
    HUB_SCHEME=https
    HUB_WS=wss
    CURL_TLS=(--cacert "$T/pki/ca.crt")
    write_hub_cfg 50 50 tls
    start_hub || return
    apply_file "$T/all.yaml" >"$T/apply1.json" || { bad "apply over https"; return; }
    local rev
    rev=$(jq -r .revision "$T/apply1.json")
    # A good fake agent over wss, verifying the hub with the CA.
    "$FLEET" --url "wss://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/agents" --count 1 \
        --ca "$T/pki/ca.crt" --status "$T/good.json" >"$T/good.log" 2>&1 &
    local good=$!
    PIDS+=("$good")
    good_in() { [ "$(jq -r '.sites[0].welcomed and .sites[0].rev == '"$rev" "$T/good.json" 2>/dev/null)" = true ]; }
    wait_for "fake agent over wss" 60 good_in && ok "fake agent synced over wss with the CA"
    # A second connection of the same site takes over: the first gets Reject DUPLICATE.
    "$FLEET" --url "wss://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/agents" --count 1 \
        --ca "$T/pki/ca.crt" --status "$T/dup.json" --backoff-base-ms 2000 --backoff-cap-ms 4000 >"$T/dup.log" 2>&1 &
    local dup=$!
    PIDS+=("$dup")
    duplicated() { [ "$(jq -r '.rejects.duplicate >= 1' "$T/good.json" 2>/dev/null)" = true ] &&
        [ "$(jq -r '.welcomes_total >= 1' "$T/dup.json" 2>/dev/null)" = true ] &&
        [ "$(metric 'ktwin_hub_sync_rejects_total{code="duplicate"}' | cut -d. -f1)" -ge 1 ]; }
    wait_for "a duplicate session rejected" 60 duplicated && ok "second connection of site-00 took over (Reject DUPLICATE counted)"
    stop_pid "$dup"
    stop_pid "$good"
    if [ -x "$AGENT" ]; then
        start_agent 1 site-01 "$T/pki/ca.crt" || return
        wait_for "real agent over wss at revision $rev" 60 agent_at_rev 1 "$rev" &&
            check_subgraph 1 site-01 "over TLS"
    else
        echo "info: $AGENT not built: real agent over TLS skipped"
    fi
    # A bad token and an unknown site are refused, logged and counted.
    local af0
    af0=$(metric ktwin_hub_sync_auth_failures_total)
    "$FLEET" --url "wss://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/agents" --count 1 --token wrong \
        --ca "$T/pki/ca.crt" --status "$T/bad.json" --backoff-base-ms 100 --backoff-cap-ms 200 >"$T/bad.log" 2>&1 &
    local badp=$!
    PIDS+=("$badp")
    refused() { [ "$(jq -r '.rejects.unauthenticated >= 1 and .welcomes_total == 0' "$T/bad.json" 2>/dev/null)" = true ]; }
    wait_for "bad token refused" 60 refused && ok "bad token refused with UNAUTHENTICATED"
    stop_pid "$badp"
    printf 'site-zz tok-zz\n' >"$T/unknown"
    "$FLEET" --url "wss://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/unknown" --ca "$T/pki/ca.crt" \
        --status "$T/unknown.json" --backoff-base-ms 100 --backoff-cap-ms 200 >"$T/unknown.log" 2>&1 &
    badp=$!
    PIDS+=("$badp")
    refused2() { [ "$(jq -r '.rejects.unauthenticated >= 1 and .welcomes_total == 0' "$T/unknown.json" 2>/dev/null)" = true ]; }
    wait_for "unknown site refused" 60 refused2 && ok "unknown site refused with UNAUTHENTICATED"
    stop_pid "$badp"
    local af1
    af1=$(metric ktwin_hub_sync_auth_failures_total)
    if [ "${af1%.*}" -ge $((${af0%.*} + 2)) ]; then ok "auth failures counted ($af0 -> $af1)"; else
        bad "ktwin_hub_sync_auth_failures_total $af0 -> $af1"; fi
    if [ "$(metric 'ktwin_hub_sync_rejects_total{code="unauthenticated"}' | cut -d. -f1)" -ge 2 ]; then
        ok "rejects_total{code=unauthenticated} counted"; else bad "rejects_total{code=unauthenticated} not counted"; fi
    if grep -q 'id=SYNC-AUTH-FAIL.*site="\?site-00"\? .*reason=bad-token' "$T/hub.log" &&
        grep -q 'id=SYNC-AUTH-FAIL.*site="\?site-zz"\? .*reason=unknown-site' "$T/hub.log"; then
        ok "SYNC-AUTH-FAIL logged with site, peer and reason"
    else
        bad "SYNC-AUTH-FAIL lines missing in $T/hub.log"
    fi
    # A plain ws:// client cannot talk to the TLS listener.
    "$FLEET" --url "ws://127.0.0.1:$HUB_PORT/sync" --agents-file "$T/agents" --count 1 \
        --status "$T/plain.json" --backoff-base-ms 100 --backoff-cap-ms 200 >"$T/plain.log" 2>&1 &
    badp=$!
    PIDS+=("$badp")
    tried() { [ "$(jq -r '.connects_total >= 3' "$T/plain.json" 2>/dev/null)" = true ]; }
    wait_for "plain client attempts" 30 tried
    check "plain ws client never welcomed by the TLS hub" 0 "$(jq .welcomes_total "$T/plain.json")"
    stop_pid "$badp"
}

case "$SCN" in
three-sites) scenario_three_sites ;;
storm) scenario_storm ;;
tls) scenario_tls ;;
*)
    echo "usage: federation.sh three-sites|storm|tls" >&2
    exit 2
    ;;
esac

if [ -n "$HUB_PID" ]; then
    stop_pid "$HUB_PID" || bad "hub exit status $?"
fi
echo "federation $SCN: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
