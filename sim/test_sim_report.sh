#!/usr/bin/env bash
# sim/test_sim_report.sh KTWIN_SIM PAPER_DIR — `ktwin-sim report` alone.
#
# From the checked-in sim/testdata/results.json (a real run's output with one
# event type renamed to carry markup): the report is well-formed HTML with
# well-formed inline SVG, escapes what it quotes, shows every section, and
# draws the paper's side from PAPER_DIR; without paper data it says so; a
# missing or broken results file is a clear error (exit 1), bad usage exit 2.
. "$(dirname "$0")/../tests/lib/testlib.sh"
SIM=$1
PAPER=$2
HERE=$(cd "$(dirname "$0")" && pwd)
CHECK="python3 $HERE/check_report.py"

"$SIM" report --results "$HERE/testdata/results.json" --paper "$PAPER" -o "$T/r.html" \
    >"$T/out" 2>&1
check "report exit" 0 $?
if $CHECK "$T/r.html" 'Events by type' 'Events per second over time' \
    'Twin-service latency' 'Side by side with the KTWIN paper' 'KTWIN paper, 1 nb' \
    'Response time per service' 'hub offline' 'Resources' \
    'ktwin.real.ngsi-ld-city-airqualityobserved' '&lt;b&gt;' >"$T/check" 2>&1; then
    ok
else
    bad "report with paper data is not well-formed or incomplete"
    cat "$T/check"
fi
lacks "markup from results.json is escaped" "$T/r.html" '<b>'

# No paper data: the report says so and is still well-formed.
"$SIM" report --results "$HERE/testdata/results.json" --paper "$T/nowhere" -o "$T/n.html" \
    >"$T/out" 2>&1
check "report without paper data exit" 0 $?
if $CHECK "$T/n.html" 'Paper events/s data missing' 'Paper response-time data missing' \
    >"$T/check" 2>&1; then
    ok
else
    bad "report without paper data"
    cat "$T/check"
fi

# Errors.
"$SIM" report --results "$T/missing.json" -o "$T/x.html" >"$T/err" 2>&1
check "missing results exit" 1 $?
contains "missing results named" "$T/err" 'missing.json'
printf '{"scenario": [1,' >"$T/broken.json"
"$SIM" report --results "$T/broken.json" -o "$T/x.html" >"$T/err" 2>&1
check "broken results exit" 1 $?
contains "broken results: where" "$T/err" 'broken.json.*line'
"$SIM" report --results "$T/broken.json" >"$T/err" 2>&1
check "usage exit" 2 $?
kt_finish
