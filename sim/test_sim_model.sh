#!/usr/bin/env bash
# ktwin-sim model end to end: a 3-neighborhood city over 2 sites, in YAML and
# JSON, must load and resolve with no errors or warnings, with 3 * 593 + 1
# instances and 63 interfaces; usage errors exit 2.
set -uo pipefail
SIM=$1
LOAD=$2
. "$(dirname "$0")/../tests/lib/testlib.sh"

"$SIM" >/dev/null 2>&1; check no-command 2 $?
"$SIM" model --help >/dev/null; check help 0 $?
"$SIM" model -o "$T/x" >/dev/null 2>&1; check no-neighborhoods 2 $?
"$SIM" model --neighborhoods 0 -o "$T/x" >/dev/null 2>&1; check zero-neighborhoods 2 $?
"$SIM" model --neighborhoods 1 -o "$T/x" --format xml >/dev/null 2>&1; check bad-format 2 $?
"$SIM" model --neighborhoods 1 -o "$T/x" --namespace Bad_NS >/dev/null 2>&1; check bad-ns 2 $?
"$SIM" model --neighborhoods 1 -o "$T/x" --ontology "$T/none" >/dev/null 2>&1
check missing-ontology 1 $?

for fmt in yaml json; do
    "$SIM" model --neighborhoods 3 --sites 2 -o "$T/$fmt" --format $fmt >"$T/out" 2>&1
    check "$fmt-generate" 0 $?
    "$LOAD" "$T/$fmt" --expect-instances 1780 >"$T/fig" 2>"$T/err"
    check "$fmt-loads-clean" 0 $?
    grep -q '"errors": 0, "warnings": 0' "$T/fig"; check "$fmt-no-diagnostics" 0 $?
    grep -q '"interfaces": 63, "policies": 1,' "$T/fig"; check "$fmt-interfaces-policy" 0 $?
    [ -s "$T/err" ] && cat "$T/err"
    check "$fmt-files" 4 "$(ls "$T/$fmt" | grep -c '^instances-')"
    check "$fmt-policy" 1 "$(grep -c '^kind: PlacementPolicy' "$T/$fmt/policy.yaml")"
done
# Neighborhood 2 is on site-00 (2 % 2), neighborhood 3 on site-01; the city has no site.
check site-label 593 "$(grep -c 'ktwin.io/site: site-00' "$T/yaml/instances-0002.yaml")"
check site-label-json 593 "$(grep -c '"ktwin.io/site":"site-01"' "$T/json/instances-0003.json")"
check city-no-site 0 "$(grep -c 'ktwin.io/site' "$T/yaml/instances-0000.yaml")"
check json-lines 593 "$(wc -l <"$T/json/instances-0001.json" | tr -d ' ')"
# The glitches of KTWIN's graph are fixed.
grep -q 'instance: ngsi-ld-city-streetlight-nb001-sl00007' "$T/yaml/instances-0001.yaml"
check pole-streetlight 0 $?

kt_finish
