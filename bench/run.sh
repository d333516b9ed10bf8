#!/usr/bin/env bash
# bench/run.sh [NAME...] — run the benchmarks (all, or the ones named) from a
# release build and record the figures.
#
# Each benchmark writes bench-results/<name>.json as
#   {"name": "<name>", "figures": {"<key>": <number>, ...}}
# and replaces its own section in docs/benchmarks.md (command, date, machine,
# build, figures). Setup work (generating inputs) is never timed.
#
# Environment:
#   KT_BENCH_BUILD   build directory (default build/release, configured with
#                    `cmake --preset release` when missing)
#   KT_BENCH_JOBS    parallel build jobs (default 2)
#   KT_BENCH_REPEAT  runs per benchmark; the median run by time is reported (default 3)
#   KT_BENCH_TMP     where inputs are generated (default a fresh mktemp -d, removed after)
#
# Benchmarks:
#   model-load   load + resolve a 1,200-neighborhood city (711,601 TwinInstances,
#                JSON stream files) with model_load_path + model_resolve.
#                Targets: under 5 s, under 1 GiB peak RSS.
#   graph-json   KTWIN's graph JSON of that city: the whole graph (model_graph_to_json,
#                what GET /api/v1/twin-graph serves) and one interface
#                (model_graph_iface_to_json, city-pole: 60,000 instances).
#   placement-scale  the placement engine (model_placement_compute) on the same city
#                spread over 60 sites, after load + resolve (not timed).
#                Targets: under 2 s, under 1 GiB peak RSS.
#   sync-snapshot  a 20-neighborhood site's whole subgraph (11,861 instances) from a
#                hub sync session to the agent's SQLite cache, committed: in process, and
#                with a real ktwin-hub and ktwin-agent (process_ms).
#                Target: under 500 ms.
#   sync-delta   one instance changed by POST /api/v1/apply at a real ktwin-hub until the
#                SQLite commit at the ktwin-agent of its site, 10 agents, real processes.
#                Target: p99 under 50 ms.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KT_BENCH_BUILD:-$ROOT/build/release}
JOBS=${KT_BENCH_JOBS:-2}
REPEAT=${KT_BENCH_REPEAT:-3}
RESULTS=$ROOT/bench-results
DOC=$ROOT/docs/benchmarks.md
ALL=(model-load graph-json placement-scale sync-snapshot sync-delta)

die() { echo "bench/run.sh: $*" >&2; exit 1; }

build() { # targets...
    if [ "$BUILD" = "$ROOT/build/release" ]; then
        # Always configure: an old build/release may predate folders added since.
        (cd "$ROOT" && cmake --preset release >/dev/null)
    elif [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_C_FLAGS=-D_FORTIFY_SOURCE=2 >/dev/null
    fi
    local type
    type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
    case "$type" in
        Release | RelWithDebInfo) ;;
        *) die "$BUILD is a $type build; benchmarks need Release or RelWithDebInfo" ;;
    esac
    cmake --build "$BUILD" -j"$JOBS" --target "$@" >/dev/null || die "build failed"
}

machine() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    echo "nproc $(nproc), ${cpu:-unknown CPU}, $(uname -sr)"
}

# record NAME DESCRIPTION FIGURES_JSON: write the JSON result and the doc section.
record() {
    local name=$1 desc=$2 figures=$3
    mkdir -p "$RESULTS" "$(dirname "$DOC")"
    NAME=$name DESC=$desc FIGURES=$figures RESULTS=$RESULTS DOC=$DOC \
    CMD="bench/run.sh $name" DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) MACHINE=$(machine) \
    BUILD_DIR=${BUILD#"$ROOT"/} \
    BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt") \
    python3 - <<'PY'
import json, os, re
name = os.environ["NAME"]
figures = json.loads(os.environ["FIGURES"])
with open(os.path.join(os.environ["RESULTS"], name + ".json"), "w") as f:
    json.dump({"name": name, "figures": figures}, f, indent=2)
    f.write("\n")
begin, end = "<!-- bench:%s:begin -->" % name, "<!-- bench:%s:end -->" % name
rows = "\n".join("| %s | %s |" % (k, v) for k, v in figures.items())
section = f"""{begin}
## {name}

{os.environ["DESC"]}

- command: `{os.environ["CMD"]}`
- date: {os.environ["DATE"]}
- machine: {os.environ["MACHINE"]}
- build: `{os.environ["BUILD_DIR"]}` ({os.environ["BUILD_TYPE"]})

| figure | value |
|---|---|
{rows}
{end}"""
doc = os.environ["DOC"]
text = open(doc).read() if os.path.exists(doc) else (
    "# Benchmarks\n\nWritten by `bench/run.sh`: each section is replaced when its benchmark "
    "runs again. Raw figures are in `bench-results/<name>.json`.\n")
pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(doc, "w").write(text)
PY
    echo "$name: $figures"
}

# median_run CMD...: run REPEAT times, print the stdout (one JSON object) of the
# run with the median "seconds"; fail when any run fails.
median_run() {
    local outs=() i out
    for ((i = 0; i < REPEAT; i++)); do
        out=$("$@") || die "$1 failed: $out"
        outs+=("$out")
    done
    printf '%s\n' "${outs[@]}" | python3 -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
runs.sort(key=lambda r: r["seconds"])
print(json.dumps(runs[len(runs) // 2]))'
}

# city DIR: generate the 1,200-neighborhood city (JSON streams) into DIR, untimed.
city() {
    "$BUILD/sim/ktwin-sim" model --neighborhoods 1200 --sites 4 --format json -o "$1" \
        >/dev/null || die "ktwin-sim failed"
}

# pick RUN_JSON KEY...: the named figures of a run, plus "runs".
pick() {
    local run=$1
    shift
    RUN=$run REPEAT=$REPEAT python3 -c '
import json, os, sys
r = json.loads(os.environ["RUN"])
f = {k: r[k] for k in sys.argv[1:]}
f["runs"] = int(os.environ["REPEAT"])
print(json.dumps(f))' "$@"
}

# with_city FN: run FN DIR with a generated city in a temporary directory.
with_city() {
    build ktwin-sim bench_model_load
    local tmp
    tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    [ -z "${KT_BENCH_TMP:-}" ] && trap 'rm -rf "$tmp"' EXIT
    [ -f "$tmp/city/instances-1200.json" ] || city "$tmp/city"
    "$1" "$tmp/city"
    if [ -z "${KT_BENCH_TMP:-}" ]; then
        rm -rf "$tmp"
        trap - EXIT
    fi
}

bench_model_load() {
    local run
    run=$(median_run "$BUILD/sim/bench_model_load" "$1" --expect-instances 711601)
    record model-load "Load and resolve a generated 1,200-neighborhood smart city (711,601 \
TwinInstances in 1,201 JSON-stream files, 63 TwinInterfaces, 1 PlacementPolicy) with \
\`model_load_path\` + \`model_resolve\` (\`bench/bench_model_load.c\`). Generation by \
\`ktwin-sim model\` is not timed. Median of the runs by time; \`peak_rss_mib\` is \
\`ru_maxrss\`, \`bytes_per_instance\` is \`model_mem_bytes()\` / instances. \
Targets: under 5 s, under 1 GiB." \
        "$(pick "$run" seconds load_seconds resolve_seconds peak_rss_mib instances \
            bytes_per_instance)"
}

bench_graph_json() {
    local run
    run=$(median_run "$BUILD/sim/bench_model_load" "$1" --expect-instances 711601 --graph-json)
    record graph-json "KTWIN's graph JSON of the same 1,200-neighborhood city, written into a \
\`kt_buf\` after loading (not timed): the whole graph with \`model_graph_to_json\` (what \
\`GET /api/v1/twin-graph\` serves) and the \`city-pole\` graph (60,000 instances) with \
\`model_graph_iface_to_json\`. Median of the runs by load time." \
        "$(pick "$run" graph_json_seconds graph_json_mib iface_json_seconds instances)"
}

# placement-scale: a 1,200-neighborhood city over 60 sites (generated, not timed).
bench_placement_scale() {
    build ktwin-sim bench_placement
    local tmp run
    tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    [ -z "${KT_BENCH_TMP:-}" ] && trap 'rm -rf "$tmp"' EXIT
    if [ ! -f "$tmp/city60/instances-1200.json" ]; then
        "$BUILD/sim/ktwin-sim" model --neighborhoods 1200 --sites 60 --format json \
            -o "$tmp/city60" >/dev/null || die "ktwin-sim failed"
    fi
    run=$(median_run "$BUILD/bench/bench_placement" "$tmp/city60" --sites 60 \
        --expect-instances 711601)
    record placement-scale "Place a generated 1,200-neighborhood smart city (711,601 \
TwinInstances, 63 TwinInterfaces, ktwin-sim's PlacementPolicy) over 60 sites with \
\`model_placement_compute\` (\`bench/bench_placement.c\`): every instance to its site and \
every (interface, site) to edge, cloud or pending. Sites: 4000m CPU and 8 GiB, every 10th \
800m and 1 GiB (contested), every 20th disconnected. Generation, load and resolve are not \
timed. \`seconds\`: only neighborhoods carry \`ktwin.io/site\`, every other instance finds \
its site by a siteFrom walk (\`walked\`); \`labelled_seconds\`: as generated (all labelled); \
\`incremental_seconds\`: again with the previous result after site-00 dropped from 4000m to 1000m CPU \
(\`moved\` decisions changed). \`hub_rss_mib\` is \`ru_maxrss\` (model and results). \
Median of the runs by \`seconds\`. Targets: under 2 s, under 1 GiB." \
        "$(pick "$run" seconds labelled_seconds incremental_seconds hub_rss_mib instances sites \
            decisions walked edge cloud pending moved)"
    if [ -z "${KT_BENCH_TMP:-}" ]; then
        rm -rf "$tmp"
        trap - EXIT
    fi
}

# sync-snapshot: a 20-neighborhood site (generated, not timed), in process.
bench_sync_snapshot() {
    build ktwin-sim bench_sync_snapshot ktwin-hub ktwin-agent
    local tmp run proc
    tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    [ -z "${KT_BENCH_TMP:-}" ] && trap 'rm -rf "$tmp"' EXIT
    if [ ! -f "$tmp/site20/instances-0020.json" ]; then
        "$BUILD/sim/ktwin-sim" model --neighborhoods 20 --sites 1 --format json \
            -o "$tmp/site20" >/dev/null || die "ktwin-sim failed"
    fi
    run=$(median_run "$BUILD/agent/bench_sync_snapshot" "$tmp/site20" --db "$tmp/agent.db" \
        --expect-instances 11861)
    proc=$(python3 "$ROOT/bench/bench_sync_snapshot_proc.py" --hub "$BUILD/hub/ktwin-hub" \
        --agent "$BUILD/agent/ktwin-agent" --sim "$BUILD/sim/ktwin-sim" --tmp "$tmp" \
        --neighborhoods 20 --runs "$REPEAT") || die "bench_sync_snapshot_proc.py failed"
    run=$(RUN=$run PROC=$proc python3 -c '
import json, os
r = json.loads(os.environ["RUN"]); p = json.loads(os.environ["PROC"])
r.update({"process_ms": p["ms"], "process_min_ms": p["min_ms"], "process_max_ms": p["max_ms"],
          "process_objects": p["objects"], "agent_rss_mib": p["agent_rss_mib"]})
print(json.dumps(r))')
    record sync-snapshot "Full snapshot of a 20-neighborhood site (\`ktwin-sim model \
--neighborhoods 20 --sites 1\`: 11,861 TwinInstances, 63 TwinInterfaces, 1 PlacementPolicy) \
from the hub's sync session to the agent's cache, measured **in process** \
(\`bench/bench_sync_snapshot.c\`): \`sync_server\` (hub side) encodes SnapshotChunks of \
256 KiB, an in-memory transport with two messages in flight carries them, and \
\`sync_client\` with the agent's own store (\`agent/store.c\` over \`agent/cache.c\`) \
decodes, validates and writes them into SQLite (WAL, synchronous=NORMAL) and commits in one \
transaction, then acks. Timed from Hello to the hub receiving the Ack; no sockets or TLS. \
\`bytes\`: WebSocket payload bytes hub to agent; \`commit_ms\`: time inside the cache \
(begin, puts, commit; what \`ktwin_agent_last_commit_ms\` reports). Median of the runs by \
time. \`process_*\`: the same snapshot with **real processes** \
(\`bench/bench_sync_snapshot_proc.py\`): a \`ktwin-hub\` loaded with the site (not timed) \
and a \`ktwin-agent\` with an empty cache, over a loopback WebSocket; from the agent's \
\`UPLINK-CONNECT\` log line to the end of its snapshot COMMIT (\`UPLINK-COMMIT wall_ms\`), \
median/min/max of as many agent starts as runs; the hub sends every TwinInterface and \
the site's instances, not the PlacementPolicy (\`process_objects\`). \`agent_rss_mib\`: the \
agent's peak RSS after the snapshot and one \`GET /api/v1/twin-graph\` (which builds its \
in-memory view). Target: under 500 ms." \
        "$(pick "$run" ms bytes instances objects chunks commit_ms peak_rss_mib process_ms \
            process_min_ms process_max_ms process_objects agent_rss_mib)"
    if [ -z "${KT_BENCH_TMP:-}" ]; then
        rm -rf "$tmp"
        trap - EXIT
    fi
}

# sync-delta: hub + 10 agents as processes on loopback (bench/bench_sync_delta.py).
bench_sync_delta() {
    build ktwin-sim ktwin-hub ktwin-agent
    local tmp run
    tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    [ -z "${KT_BENCH_TMP:-}" ] && trap 'rm -rf "$tmp"' EXIT
    run=$(median_run python3 "$ROOT/bench/bench_sync_delta.py" --hub "$BUILD/hub/ktwin-hub" \
        --agent "$BUILD/agent/ktwin-agent" --sim "$BUILD/sim/ktwin-sim" --tmp "$tmp" \
        --agents 10 --changes 200)
    record sync-delta "From an apply at the hub to the commit at the agent, with **real \
processes** on loopback (\`bench/bench_sync_delta.py\`): one \`ktwin-hub\` and 10 \
\`ktwin-agent\`s (site-00..site-09, \`ktwin-sim model --neighborhoods 10 --sites 10\`: \
5,931 TwinInstances, one neighborhood per site), each agent synced by a snapshot first (not \
timed). Then 200 changes one after the other, each one TwinInstance (a city-pole of site k % \
10, a label value) sent by \`POST /api/v1/apply\`; latency = the agent's wall clock when its \
SQLite COMMIT of that revision ended (\`wall_ms\` of its \`UPLINK-COMMIT\` log line) minus \
the wall clock just before the POST. \`apply_p50_ms\`/\`apply_p99_ms\`: until the hub's HTTP \
answer came back (the hub validates the whole candidate graph on every apply); \
\`agent_commit_*\`: time inside the agent's SQLite cache for the delta. The agent commits \
before the hub's HTTP answer is back, so the end-to-end latency is the hub's apply path \
(\`apply_*\`), not the agent's. Median of the runs by loop time. Target: p99 under 50 ms." \
        "$(pick "$run" p50_ms p99_ms max_ms mean_ms apply_p50_ms apply_p99_ms \
            agent_commit_p50_ms agent_commit_p99_ms changes agents)"
    if [ -z "${KT_BENCH_TMP:-}" ]; then
        rm -rf "$tmp"
        trap - EXIT
    fi
}

# More suites: bench/suites/<area>.sh files append their names to ALL and define
# bench_<name with - as _> (e.g. bench_eventplane_pipeline), using the helpers above.
for suite in "$ROOT"/bench/suites/*.sh; do
    [ -e "$suite" ] || continue
    # shellcheck source=/dev/null
    . "$suite"
done

names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
for n in "${names[@]}"; do
    case "$n" in
        model-load) with_city bench_model_load ;;
        graph-json) with_city bench_graph_json ;;
        placement-scale) bench_placement_scale ;;
        sync-snapshot) bench_sync_snapshot ;;
        sync-delta) bench_sync_delta ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *)
            fn=bench_${n//-/_}
            if [[ " ${ALL[*]} " == *" $n "* ]] && declare -F "$fn" >/dev/null; then
                "$fn"
            else
                die "unknown benchmark $n (have: ${ALL[*]})"
            fi
            ;;
    esac
done
