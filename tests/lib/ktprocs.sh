# shellcheck shell=bash
# tests/lib/ktprocs.sh — starting the real KTWIN processes for the shell
# tests: ktwin-hub (config, start, model apply), mosquitto, ktwin-agent.
# Source it AFTER tests/lib/testlib.sh (it uses T, PIDS, ok/bad/contains,
# wait_until, free_port):
#
#   . "$(dirname "$0")/../../lib/testlib.sh"
#   . "$(dirname "$0")/../../lib/ktprocs.sh"
#
# Invariants: every file is written under $T; every process started here runs
# on 127.0.0.1, is appended to PIDS (testlib kills it at exit) and is stopped
# by PID only. Nothing here sleeps for a fixed time: waiting is polling with a
# deadline. The binaries are the caller's $HUB and $AGENT.
#
# Thread: a shell. Ownership: the caller owns $T and the processes' PIDs.

# waitfor NAME COMMAND...: poll COMMAND (60 s); one check either way
# (ok, or bad "NAME: timed out").
waitfor() {
    local name=$1
    shift
    if wait_until 60 "$@"; then ok; else bad "$name: timed out"; fi
}

# kt_auth_files ADMIN_TOKEN SITE TOKEN [SITE TOKEN...]: the hub's auth files
# $T/admin.token (ADMIN_TOKEN) and $T/agents.txt (one "SITE TOKEN" line per
# pair), and the agent's $T/token (the first pair's TOKEN).
# Sets kt_admin (the admin token kt_apply_model sends).
kt_auth_files() {
    kt_admin=$1
    shift
    printf '%s\n' "$kt_admin" >"$T/admin.token"
    printf '%s\n' "$2" >"$T/token"
    : >"$T/agents.txt"
    while [ $# -ge 2 ]; do
        printf '%s %s\n' "$1" "$2" >>"$T/agents.txt"
        shift 2
    done
}

# kt_hub_yaml [LINE...]: write $T/hub.yaml: listen on $hub_port (a free port
# is chosen and hub_port set when it is unset or empty), data_dir $T/hubdata,
# the auth files of kt_auth_files, then each LINE as a top-level line (e.g.
# 'sync: {heartbeat_ms: 1000}').
kt_hub_yaml() {
    local l
    hub_port=${hub_port:-$(free_port)}
    {
        echo "listen: {port: $hub_port}"
        echo "data_dir: $T/hubdata"
        echo "auth: {admin_token_file: $T/admin.token, agents_file: $T/agents.txt}"
        for l in "$@"; do echo "$l"; done
    } >"$T/hub.yaml"
}

# kt_start_hub: start "$HUB" --config $T/hub.yaml in the background, stderr
# appended to $T/hub.log. Sets hub_pid, appends it to PIDS. Does not wait:
# poll kt_hub_ready (e.g. waitfor "hub ready" kt_hub_ready).
kt_start_hub() {
    "$HUB" --config "$T/hub.yaml" 2>>"$T/hub.log" &
    hub_pid=$!
    PIDS+=("$hub_pid")
}

# kt_hub_ready: status 0 when the hub on $hub_port answers /readyz with 2xx.
kt_hub_ready() {
    curl -sf -o /dev/null "http://127.0.0.1:$hub_port/readyz"
}

# kt_apply_model FILE [CURL_ARG...]: POST FILE to the hub's /api/v1/apply
# with the admin token $kt_admin (CURL_ARGs added, e.g. a Content-Type
# header); the reply is in $T/apply.out. One check: "model applied" (the
# reply names a revision >= 1).
kt_apply_model() {
    local file=$1
    shift
    curl -s -H "Authorization: Bearer $kt_admin" "$@" --data-binary @"$file" \
        "http://127.0.0.1:$hub_port/api/v1/apply" >"$T/apply.out"
    contains "model applied" "$T/apply.out" '"revision":[1-9]'
}

# kt_start_mosquitto: a mosquitto on a free port of 127.0.0.1 (anonymous, no
# persistence; config $T/mosquitto.conf, output appended to
# $T/mosquitto.log). Sets mqtt_port and mqtt_pid, appends mqtt_pid to PIDS.
# Does not wait: poll kt_mosquitto_ready when the test needs the broker up
# before the next step.
kt_start_mosquitto() {
    mqtt_port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" \
        >"$T/mosquitto.conf"
    mosquitto -c "$T/mosquitto.conf" >>"$T/mosquitto.log" 2>&1 &
    mqtt_pid=$!
    PIDS+=("$mqtt_pid")
}

# kt_mosquitto_ready: status 0 when the broker on $mqtt_port takes a publish
# (on probe/up, a topic no agent subscribes to).
kt_mosquitto_ready() {
    mosquitto_pub -p "$mqtt_port" -t probe/up -m x 2>/dev/null
}

# kt_agent_yaml SITE LISTEN_PORT RECONNECT_CAP [LINE...]: write $T/agent.yaml:
# site SITE, hub ws://127.0.0.1:$hub_port/sync with token file $T/token,
# cache $T/agent.db, listen on LISTEN_PORT (0: the OS chooses; read it with
# kt_start_agent_port), reconnect backoff 50ms up to RECONNECT_CAP (e.g. 1s),
# then each LINE as is (top-level YAML, may span lines).
kt_agent_yaml() {
    local l
    {
        echo "site: $1"
        echo "hub: {url: \"ws://127.0.0.1:$hub_port/sync\", token_file: $T/token}"
        echo "cache: {path: $T/agent.db}"
        echo "listen: {port: $2}"
        echo "reconnect: {base_ms: 50ms, cap_ms: $3}"
        shift 3
        for l in "$@"; do echo "$l"; done
    } >"$T/agent.yaml"
}

# kt_start_agent [LOG]: start "$AGENT" --config $T/agent.yaml in the
# background, stderr appended to LOG (default $T/agent.log). Sets agent_pid,
# appends it to PIDS. Does not wait: poll kt_agent_up.
kt_start_agent() {
    "$AGENT" --config "$T/agent.yaml" 2>>"${1:-$T/agent.log}" &
    agent_pid=$!
    PIDS+=("$agent_pid")
}

# kt_agent_up: status 0 when the agent on $agent_port answers /healthz with 2xx.
kt_agent_up() {
    curl -sf -o /dev/null "http://127.0.0.1:$agent_port/healthz"
}

# kt_start_agent_port [LOG]: start "$AGENT" --config $T/agent.yaml
# --port-file $T/agent.port (the old port file removed first), stderr appended
# to LOG (default $T/agent.log). Sets agent_pid (appended to PIDS), then waits
# up to 60 s for the port file and sets agent_port. Status 1 when no port came.
kt_start_agent_port() {
    rm -f "$T/agent.port"
    "$AGENT" --config "$T/agent.yaml" --port-file "$T/agent.port" 2>>"${1:-$T/agent.log}" &
    agent_pid=$!
    PIDS+=("$agent_pid")
    agent_port=$(wait_file "$T/agent.port" 60)
}

# kt_agent_revision_is PORT REV: status 0 when the agent on PORT reports
# ktwin_agent_graph_revision REV on /metrics.
kt_agent_revision_is() {
    test "$(metric "$1" ktwin_agent_graph_revision)" = "$2"
}

# kt_wait_agent_revision PORT REV [SECONDS]: poll kt_agent_revision_is
# (default 60 s). Status only: the caller makes the check.
kt_wait_agent_revision() {
    wait_until "${3:-60}" kt_agent_revision_is "$1" "$2"
}
