#!/usr/bin/env bash
# Fault test (issue 4, refusals): bad input on the sync socket, between real
# processes on 127.0.0.1 — a ktwin-hub, a real ktwin-agent of site-a
# connected to it, and a raw WebSocket peer (refuse_ws.py) that completes
# the RFC 6455 handshake on /sync and then sends:
#   - unframed garbage bytes          -> lws closes 1002; NET-WS-ABORTED, ktwin_net_ws_aborted_total
#   - a binary frame of garbage       -> Reject PROTOCOL; SYNC-SESSION-END,
#                                        ktwin_hub_sync_rejects_total{code="protocol"}
#   - a truncated Envelope (after a valid Hello of site-b and the Welcome) -> same
#   - a frame over sync.max_message_bytes -> close 1009; NET-WS-TOO-BIG,
#                                        ktwin_net_ws_message_too_big_total
#   - a text frame (holding a valid Hello) -> close 1003, never a Welcome;
#                                        NET-WS-TEXT-REFUSED, ktwin_net_ws_text_refused_total
#   - a valid Hello of site-a with a bad token, or of an unknown site ->
#                                        Reject UNAUTHENTICATED; SYNC-AUTH-FAIL,
#                                        ktwin_hub_sync_auth_failures_total
# Each closes only that connection: a store event posted at the real agent's
# ingress while each attack runs (and during a burst of all of them at
# once) reaches the hub's event store exactly once, and the agent's own
# session is never dropped (no reconnect, no SYNC-DUPLICATE).
# Reverse direction: an agent facing a fake hub that answers its Hello with
# garbage (binary or text: UPLINK-SYNC-ERR, ktwin_agent_sync_errors_total) or
# a frame over hub.max_message_bytes (NET-WS-TOO-BIG,
# ktwin_net_ws_message_too_big_total) drops that connection and reconnects
# with backoff (UPLINK-RETRY), again and again, without dying.
#
# usage: test_refuse_sync.sh HUB AGENT
HUB=$1
AGENT=$2
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/refuse_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
RW="$DIR/refuse_ws.py"

refuse_model
hub_start "sync: {max_message_bytes: 64KiB}" || { kt_finish; exit 1; }
agent_start || { kt_finish; exit 1; }
check "ingress accepts" 202 "$(post_store e0 0)"
hub_has_counts "0"
want="0"
hub_m() { metric_of "$hub_port" "$1"; }
hub_log_count() { count_id "$T/hub.log" "$1"; }

# attack NAME MODE 'OUTPUT REGEX' LOGID METRIC [SITE TOKEN ARG]: run one attack
# while a store event is posted at the agent; the hub must end that
# connection as expected, log LOGID and count METRIC.
n=0
attack() {
    local name=$1 mode=$2 re=$3 id=$4 m=$5
    shift 5
    local log0 m0
    log0=$(hub_log_count "$id")
    m0=$(hub_m "$m")
    n=$((n + 1))
    python3 "$RW" client 127.0.0.1 "$hub_port" "$mode" "$@" >"$T/attack-$n.out" 2>&1 &
    local apid=$!
    check "$name: event posted during the attack accepted" 202 "$(post_store "a$n" "$n")"
    want="$want $n"
    wait "$apid"
    check "$name: the hub ended the attacking connection" 0 $?
    contains "$name: outcome" "$T/attack-$n.out" "$re"
    grew "$name: log id $id" "$log0" hub_log_count "$id"
    grew "$name: metric $m" "${m0:-0}" hub_m "$m"
}

attack "garbage bytes" raw-garbage 'close=1002|eof=1' NET-WS-ABORTED ktwin_net_ws_aborted_total
attack "garbage frame" garbage-frame '^welcome=0 reject=4 ' SYNC-SESSION-END \
    'ktwin_hub_sync_rejects_total{code="protocol"}'
attack "truncated frame" truncated '^welcome=1 reject=4 ' SYNC-SESSION-END \
    'ktwin_hub_sync_rejects_total{code="protocol"}' site-b tok-b
attack "oversized frame" oversized 'close=1009' NET-WS-TOO-BIG ktwin_net_ws_message_too_big_total \
    site-b tok-b 100000
attack "text frame" text '^welcome=0 reject=- close=1003' NET-WS-TEXT-REFUSED \
    ktwin_net_ws_text_refused_total site-b tok-b
attack "bad token" bad-token '^welcome=0 reject=1 ' SYNC-AUTH-FAIL \
    ktwin_hub_sync_auth_failures_total site-a wrong-token
check "bad token counted as a Reject" 1 "$(hub_m 'ktwin_hub_sync_rejects_total{code="unauthenticated"}')"
contains "bad token: named in the log" "$T/hub.log" 'id=SYNC-AUTH-FAIL .*site="site-a".*reason=bad-token'
attack "unknown site" bad-token '^welcome=0 reject=1 ' SYNC-AUTH-FAIL \
    ktwin_hub_sync_auth_failures_total site-zz tok-a
contains "unknown site: named in the log" "$T/hub.log" 'id=SYNC-AUTH-FAIL .*site="site-zz"'

# All of them at once while events keep coming.
bpids=()
for mode in raw-garbage garbage-frame "truncated site-b tok-b" "oversized site-b tok-b 100000" \
    "text site-b tok-b" "bad-token site-a wrong-token"; do
    # shellcheck disable=SC2086 # MODE and its arguments are words
    python3 "$RW" client 127.0.0.1 "$hub_port" $mode >>"$T/burst.out" 2>&1 &
    bpids+=("$!")
done
for k in 101 102 103 104 105; do
    check "event $k during the burst accepted" 202 "$(post_store "b$k" "$k")"
    want="$want $k"
done
for p in "${bpids[@]}"; do
    wait "$p"
    check "burst: the hub ended an attacking connection" 0 $?
done
check "event after the attacks accepted" 202 "$(post_store z1 200)"
want="$want 200"

# Nothing else was lost: every event once, the agent's session never dropped.
hub_has_counts "$want"
outbox_empty() { test "$(metric "$agent_port" ktwin_agent_outbox_events)" = 0; }
wait_until 30 outbox_empty || bad "the hub's acks did not empty the agent's outbox"
check "agent never reconnected" 0 "$(metric "$agent_port" ktwin_agent_reconnects_total)"
check "agent still connected" 1 "$(metric "$agent_port" ktwin_agent_connected)"
check "agent saw no sync error" 0 "$(metric "$agent_port" ktwin_agent_sync_errors_total)"
lacks "no session takeover" "$T/hub.log" 'id=SYNC-DUPLICATE'
lacks "site-a's session never ended" "$T/hub.log" 'id=SYNC-(SESSION-END|GONE) .*site=site-a '
lacks "no sanitizer report (hub)" "$T/hub.log" 'ERROR: (Address|Undefined)Sanitizer|runtime error'
stop "$agent_pid" "agent"
stop "$hub_pid" "hub"

# ---- reverse: the agent facing a fake hub that sends garbage
python3 "$RW" fakehub "$T/fakehub.port" "$T/fakehub.log" 2>>"$T/fakehub.err" &
PIDS+=("$!")
fake_port=$(wait_file "$T/fakehub.port") || bad "fake hub port"
cat >"$T/agent2.yaml" <<EOF
site: site-b
hub: {url: "ws://127.0.0.1:$fake_port/sync", token_file: $T/token, max_message_bytes: 64KiB}
cache: {path: $T/agent2.db}
listen: {port: 0}
reconnect: {base_ms: 50ms, cap_ms: 400ms}
EOF
"$AGENT" --config "$T/agent2.yaml" --port-file "$T/agent2.port" 2>>"$T/agent2.log" &
agent2_pid=$!
PIDS+=("$agent2_pid")
agent2_port=$(wait_file "$T/agent2.port" 60) || bad "agent2 port"
four_conns() { [ "$(grep -c '^conn .* hello_bytes=[1-9]' "$T/fakehub.log" 2>/dev/null)" -ge 4 ]; }
wait_until 60 four_conns && ok || bad "agent did not reconnect to the fake hub 4 times"
agent2_errs() { metric "$agent2_port" ktwin_agent_sync_errors_total; }
grew "agent: sync errors counted" 1 agent2_errs
contains "agent: garbage logged" "$T/agent2.log" 'id=UPLINK-SYNC-ERR .*status=eproto'
contains "agent: oversized frame logged" "$T/agent2.log" 'id=NET-WS-TOO-BIG .*client=1'
too_big=$(metric "$agent2_port" ktwin_net_ws_message_too_big_total)
[ "${too_big:-0}" -ge 1 ] && ok || bad "agent: oversized frame not counted ('$too_big')"
contains "fake hub: the agent closed the oversized one with 1009" "$T/fakehub.log" \
    'sent=oversized hello_bytes=[1-9][0-9]* ended=1009'
contains "agent: retries with backoff" "$T/agent2.log" 'id=UPLINK-RETRY .*in_ms=[0-9]+ attempt=[2-9]'
check "agent: still serving" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$agent2_port/healthz")"
check "agent: not connected" 0 "$(metric "$agent2_port" ktwin_agent_connected)"
stop "$agent2_pid" "agent (fake hub)"
lacks "no sanitizer report (agents)" "$T/agent.log" 'ERROR: (Address|Undefined)Sanitizer|runtime error'
lacks "no sanitizer report (agent 2)" "$T/agent2.log" 'ERROR: (Address|Undefined)Sanitizer|runtime error'
kt_finish
