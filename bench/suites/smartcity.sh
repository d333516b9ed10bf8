# bench/suites/smartcity.sh — the paper's smart-city experiment at scale
# (sourced by bench/run.sh, which provides build, record, die, BUILD, ROOT).
#
#   smartcity-1, -5, -10, -20   the paper's four sizes (KTWIN.md §8)
#   smartcity-100               five times the paper's largest
#
# Each runs `ktwin-sim run` once (a run is minutes long; runs = 1) with an
# offline period (the hub frozen for a tenth of the run, from 40 %): real
# mosquitto per site, ktwin-hub, ktwin-agent per site with the smart-city
# plugin, ktwin-sim devices at QoS 1. Time is compressed so that each run
# takes a few minutes while the devices publish a similar ~2,000-3,000
# events/s; the figures come from the run's results.json:
#   published, processed, stored, lost, duplicates   totals (docs/sim-run.md)
#   p99_ms_max     the worst twin service's p99 latency at the agents
#   p99_ms         p99 per service (ms)
#   hub_rss_mib, agent_rss_mib_max   peak RSS (VmHWM) of the hub / worst agent
# Targets: 0 lost and 0 duplicates at every size; at 20 neighborhoods every
# service's p99 under 50 ms (KTWIN measured 1.2-2.1 s there, §8.5).
#
# Start offsets (--spread 10): KTWIN ran one Kubernetes Job per device kind
# per neighborhood, installed one after another by setup-devices.sh (§7), so
# each container's 50 devices published in lockstep while the containers'
# phases were spread. --spread 10 gives each (neighborhood, kind) container
# its own start offset in [0, 10) model seconds (one period of the 10 s
# devices). smartcity-20-lockstep runs the same size with every container
# started at the same instant (--spread 0: bursts of ~1,000 messages per
# site every period), the worst case, without a target.
# KT_BENCH_SMARTCITY_SHORT=1 divides every duration by 4 (a smoke run).
ALL+=(smartcity-1 smartcity-5 smartcity-10 smartcity-20 smartcity-20-lockstep smartcity-100)

# smartcity_bench NAME NEIGHBORHOODS SITES COMPRESS DURATION_S PAPER [SPREAD_S]
smartcity_bench() {
    local name=$1 nb=$2 sites=$3 comp=$4 dur=$5 paper=$6 spread=${7:-10} tmp out rc
    build ktwin-sim ktwin-hub ktwin-agent kt_sc_smartcity
    [ "${KT_BENCH_SMARTCITY_SHORT:-0}" = 1 ] && dur=$((dur / 4))
    tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    out=$tmp/$name
    rm -rf "$out"
    mkdir -p "$tmp"
    local off_at=$((dur * 2 / 5)) off_for=$((dur / 10))
    echo "$name: $nb neighborhoods on $sites sites, ${dur} s of devices (time x$comp), hub offline ${off_at}-$((off_at + off_for)) s"
    set +e
    "$BUILD/sim/ktwin-sim" run --neighborhoods "$nb" --sites "$sites" --compress "$comp" \
        --duration "$dur" --offline-at "$off_at" --offline-for "$off_for" --spread "$spread" \
        --progress 30 --drain-timeout 600 --out "$out"
    rc=$?
    set -e
    [ -f "$out/results.json" ] || die "$name: ktwin-sim run wrote no results.json (exit $rc)"
    local figures
    figures=$(python3 - "$out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "totals" not in r:
    print(json.dumps({"error": r.get("error", "the run failed")}))
    sys.exit(0)
t, lat, res = r["totals"], r["latency_ms"], r["resources"]
p99 = {k: round(v["p99"], 2) for k, v in lat.items() if v.get("p99") is not None}
print(json.dumps({
    "published": t["published"], "processed": t["processed"], "stored": t["stored"],
    "lost": t["lost"], "duplicates": t["duplicates"],
    "p99_ms_max": max(p99.values()) if p99 else None,
    "p99_ms": p99,
    "hub_rss_mib": res["hub"]["rss_peak_mib"],
    "agent_rss_mib_max": max(a["rss_peak_mib"] for a in res["agents"].values()),
    "device_events_per_s": round(t["events_per_s"], 1),
    "runs": 1,
}))
PY
)
    cp "$out/report.html" "$RESULTS/$name-report.html" 2>/dev/null || true
    local starts="each neighborhood's container of one device kind starting at its own \
offset in [0, $spread) model seconds (KTWIN's device containers were separate Jobs installed \
one after another; each container's devices publish in lockstep)"
    [ "$spread" = 0 ] && starts="every container starting at the same instant (lockstep: all \
devices of a period publish together, bursts of ~1,000 messages per site; worse than KTWIN's \
setup, whose containers started apart)"
    record "$name" "\`ktwin-sim run --neighborhoods $nb --sites $sites --compress $comp \
--duration $dur --offline-at $off_at --offline-for $off_for --spread $spread\`: KTWIN's smart-city devices \
(503 per neighborhood, the paper's payloads and six windows, time compressed ${comp}x, \
$starts) on \
one mosquitto + ktwin-agent per site with the smart-city services at the edge, a ktwin-hub \
holding the event store, the devices process at nice 10 (KTWIN's devices had nodes of their \
own; here the load generator yields the CPU to the system under test), the hub frozen (SIGSTOP) during the offline window. Counts as \
defined in docs/sim-run.md; latency from the agents' \
ktwin_agent_service_latency_seconds histograms; RSS is VmHWM from /proc. The run's report is \
bench-results/$name-report.html. Exit code of the run: $rc (0 = nothing lost or duplicated). \
The paper at this size (KTWIN.md §8.1, §8.5; 24 min, real time, Knative autoscaler): $paper" \
        "$figures"
    [ -z "${KT_BENCH_TMP:-}" ] && rm -rf "$tmp"
    [ "$rc" -eq 0 ] || die "$name: something was lost or duplicated (see the figures above)"
}

bench_smartcity_1() {
    smartcity_bench smartcity-1 1 1 16 90 "66.7 CloudEvents/s mean (101 max); per-service \
p99 (median over the run) 192-430 ms (device 192, air quality 269, city pole 388, \
neighborhood 375, weather 312, streetlight 430)."
}
bench_smartcity_5() {
    smartcity_bench smartcity-5 5 2 8 180 "328 CloudEvents/s mean (475 max); per-service \
p99 261-2740 ms (air quality 416, neighborhood 608, device 1880, streetlight 2740)."
}
bench_smartcity_10() {
    smartcity_bench smartcity-10 10 2 4 240 "658 CloudEvents/s mean (1062 max); per-service \
p99 354-4630 ms (air quality 599, neighborhood 723, device 1100, streetlight 4630)."
}
bench_smartcity_20() {
    smartcity_bench smartcity-20 20 4 4 240 "1195 CloudEvents/s mean (1725 max); per-service \
p99 236-3460 ms (air quality 1940, city pole 1190, neighborhood 1770, weather 1750, device 2100, \
streetlight 3460). Target here: every service's p99 under 50 ms."
}
bench_smartcity_20_lockstep() {
    smartcity_bench smartcity-20-lockstep 20 4 4 240 "as smartcity-20. No target: the worst \
case of device timing." 0
}
bench_smartcity_100() {
    smartcity_bench smartcity-100 100 10 1 300 "not run by the paper (its largest is 20)."
}
