# tests/lib/testlib.sh — the harness the shell tests share. Source it:
#
#   . "$(dirname "$0")/../../lib/testlib.sh"     # sets T, PIDS, pass, fail
#   ...
#   kt_finish                                    # summary line, exit 1 on any failure
#
# It gives each test a temporary directory $T (kept when KT_TEST_KEEP=1),
# kills every process whose PID was added to PIDS when the test exits, and
# counts checks: ok / bad / check / contains / lacks. Waiting is polling
# with a generous deadline, never a fixed sleep that a slow machine could
# outrun. Nothing here knows about the hub or the agent.

set -uo pipefail
T=$(mktemp -d "${TMPDIR:-/tmp}/kt-test.XXXXXX")
PIDS=()
pass=0
fail=0

kt_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    if [ "${KT_TEST_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap kt_cleanup EXIT

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', expected '$2'"; fi
}
# contains NAME FILE REGEX: FILE has a line matching REGEX (else its tail is shown).
contains() {
    if grep -qE -- "$3" "$2"; then
        ok
    else
        bad "$1: $2 has no line matching /$3/"
        tail -n 30 "$2" | sed 's/^/    /'
    fi
}
# lacks NAME FILE REGEX: no line of FILE matches REGEX.
lacks() {
    if grep -qE -- "$3" "$2"; then
        bad "$1: $2 has a line matching /$3/"
        grep -E -- "$3" "$2" | head -n 5 | sed 's/^/    /'
    else
        ok
    fi
}

# wait_file FILE [SECONDS]: print FILE once it is non-empty (default 30 s).
wait_file() {
    local i
    for ((i = 0; i < ${2:-30} * 10; i++)); do
        if [ -s "$1" ]; then cat "$1"; return 0; fi
        sleep 0.1
    done
    return 1
}

# wait_until SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 10; i++)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# free_port: a TCP port free on 127.0.0.1 right now (for a server that must
# come back on the same port; otherwise bind port 0 and read it back).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# metric PORT NAME: the value of an unlabelled metric from http://127.0.0.1:PORT/metrics.
metric() {
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# stop PID NAME: SIGTERM, then the process must exit 0 within 30 s.
stop() {
    local pid=$1 i
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    wait "$pid"
    check "$2 exit on SIGTERM" 0 $?
}

# kt_finish: print the summary; the test fails when any check failed.
kt_finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
