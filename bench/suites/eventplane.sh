# shellcheck shell=bash
# bench/suites/eventplane.sh — sourced by bench/run.sh: the event-plane and
# agent benchmarks of issue 4, all with real processes on loopback
# (mosquitto, ktwin-hub, ktwin-agent, bench_eventplane_plugin.so) driven by
# bench/bench_eventplane.py, which fails (and so does the benchmark) when an
# event is lost or duplicated at the hub, whatever the rate.
#
#   eventplane-pipeline  sustained MQTT QoS 1 -> plugin -> outbox -> hub commit
#                        vs raw mosquitto QoS 1 pub->sub.   Target: ratio >= 0.6.
#   eventplane-latency   publish -> hub commit at 1,300 ev/s. Target: p99 < 20 ms.
#   eventplane-replay    780,000 events offline, then drain. Target: >= 100,000/s.
#   agent-rss            agent VmHWM at 1,300 ev/s.          Target: < 16 MiB.
#   agent-coldstart      exec -> cached twin graph, hub down. Target: < 100 ms.
#
# Environment (besides run.sh's): KT_BENCH_EP_EVENTS (pipeline events, default
# 50000), KT_BENCH_EP_DURATION (latency/rss seconds, default 30),
# KT_BENCH_EP_REPLAY (replay events, default 780000), KT_BENCH_EP_REPLAY_REPEAT (replay
# runs, default 3: the median by drain time; one run varies by +-10 % here), KT_BENCH_EP_STARTS (cold starts, default 9).
# Variables and functions are prefixed ep_ (shared shell namespace).

ALL+=(eventplane-pipeline eventplane-latency eventplane-replay agent-rss agent-coldstart)

ep_build() {
    command -v mosquitto >/dev/null || die "mosquitto is not installed"
    build ktwin-sim ktwin-hub ktwin-agent bench_mqtt_load bench_eventplane_plugin
}

# ep_run MODE ARGS...: one bench_eventplane.py run (one JSON line).
ep_run() {
    local mode=$1
    shift
    python3 "$ROOT/bench/bench_eventplane.py" "$mode" --hub "$BUILD/hub/ktwin-hub" \
        --agent "$BUILD/agent/ktwin-agent" --sim "$BUILD/sim/ktwin-sim" \
        --load "$BUILD/bench/bench_mqtt_load" \
        --plugin "$BUILD/bench/bench_eventplane_plugin.so" --tmp "$ep_tmp" "$@"
}

# ep_with_tmp FN: run FN with ep_tmp set to a scratch directory (removed after).
ep_with_tmp() {
    ep_build
    ep_tmp=${KT_BENCH_TMP:-$(mktemp -d)}
    [ -z "${KT_BENCH_TMP:-}" ] && trap 'rm -rf "$ep_tmp"' EXIT
    "$1"
    if [ -z "${KT_BENCH_TMP:-}" ]; then
        rm -rf "$ep_tmp"
        trap - EXIT
    fi
}

ep_common="Real processes on loopback (\`bench/bench_eventplane.py\`): mosquitto 2 (no \
persistence, unlimited queues), a \`ktwin-hub\` loaded with \`ktwin-sim model --neighborhoods 20 \
--sites 1\` (11,861 TwinInstances on site-00) and a \`ktwin-agent\` synced with it, running \
\`bench/bench_eventplane_plugin.c\` for the 4 interfaces with a twin service and no \
persistRealEvent (air quality, weather, crowd flow, traffic flow: 4,000 device instances). \
\`bench_mqtt_load\` (paho MQTTAsync, QoS 1) publishes \`{\"seq\",\"t_us\",\"v\"}\` round-robin \
over the 4,000 topics; the plugin emits exactly one store event per real event (the payload \
plus its handler time \`h_us\`), which goes through the agent's latest state and outbox to \
the hub's event store. Every run checks the hub's \`events.db\` afterwards: each seq exactly \
once, else the benchmark fails. Clocks: publisher, plugin and the hub's \`stored_ms\` (set \
inside the group-commit transaction, which commits in the same loop turn) are this machine's \
CLOCK_REALTIME."

bench_eventplane_pipeline() {
    ep_with_tmp ep_pipeline
}
ep_pipeline() {
    local run
    run=$(median_run ep_run pipeline --events "${KT_BENCH_EP_EVENTS:-50000}")
    record eventplane-pipeline "$ep_common \
\`raw_qos1_per_s\`: the same broker, a paho publisher and subscriber in one process \
(\`bench_mqtt_load raw\`, same payload shape, 1,000 in flight), from the first publish to the \
last delivery. \`events_per_s\`: the same number of device messages published as fast as \
the broker takes them, from the first publish to the last hub commit (max \`stored_ms\`). \
Both rates are bounded by paho MQTTAsync clients on a 2-core machine: the raw baseline's \
publisher and subscriber share one process, the pipeline's publisher runs alone \
(\`publish_per_s\`), so a ratio near or above 1 means the agent and hub keep up with one \
paho publisher, not that they beat mosquitto. \
Median of the runs by time. Target: ratio at least 0.6." \
        "$(pick "$run" events_per_s raw_qos1_per_s ratio events publish_per_s lost duplicates \
            agent_rss_mib)"
}

bench_eventplane_latency() {
    ep_with_tmp ep_latency
}
ep_latency() {
    local run
    run=$(median_run ep_run latency --rate 1300 --duration "${KT_BENCH_EP_DURATION:-30}")
    record eventplane-latency "$ep_common \
Load: 1,300 messages/s (the paper's 20-neighborhood load) for \
${KT_BENCH_EP_DURATION:-30} s, paced by the publisher. \`p50_ms\`/\`p99_ms\`/\`max_ms\`: per \
event, device publish (\`t_us\`, just before the paho call) to the hub's commit \
(\`stored_ms\` + 1 ms: \`stored_ms\` is truncated to the millisecond, so each event \
counts at the end of its millisecond, an upper bound at most 1 ms high). \`handler_*\`: publish to the plugin handler (\`h_us\`); \
\`handler_to_commit_p99_ms\`: handler to hub commit (outbox, uplink, hub group commit). \
\`agent_hist_*\`: the agent's own \`ktwin_agent_service_latency_seconds\` (arrival at the \
agent to handler completion) estimated from its buckets. Median of the runs by time. Target: \
p99 under 20 ms." \
        "$(pick "$run" rate p50_ms p99_ms max_ms handler_p50_ms handler_p99_ms \
            handler_to_commit_p99_ms agent_hist_p50_ms agent_hist_p99_ms events lost duplicates)"
}

bench_eventplane_replay() {
    ep_with_tmp ep_replay
}
ep_replay() {
    # shellcheck disable=SC2034 # REPEAT: read by median_run and pick (dynamic scope)
    local run REPEAT=${KT_BENCH_EP_REPLAY_REPEAT:-3}
    run=$(median_run ep_run replay --events "${KT_BENCH_EP_REPLAY:-780000}")
    record eventplane-replay "$ep_common \
The hub is stopped (SIGTERM) after the agent synced; then ${KT_BENCH_EP_REPLAY:-780000} \
device messages (10 minutes at 1,300/s) are published. Time is compressed: they are \
published as fast as the broker takes them and the agent ingests them at its own pace \
(\`ingest_per_s\`) into its outbox, instead of over 10 minutes; what the agent holds when \
the hub returns is the same. Then the hub starts again. \`drain_per_s\`: events / (last hub \
commit, max \`stored_ms\`, minus the agent's \`UPLINK-CONNECT\` log time after the restart). \
\`lost\`/\`duplicates\`: by seq in the hub's event store. \`hub_start_to_drained_s\` includes \
the hub's start. Median of the runs by drain time. Target: at least 100,000 events/s, 0 lost, \
0 duplicates." \
        "$(pick "$run" events drain_per_s drain_seconds lost duplicates ingest_per_s \
            hub_start_to_drained_s agent_rss_mib)"
}

bench_agent_rss() {
    ep_with_tmp ep_rss
}
ep_rss() {
    local run
    run=$(median_run ep_run rss --rate 1300 --duration "${KT_BENCH_EP_DURATION:-30}")
    record agent-rss "$ep_common \
The agent syncs the site (snapshot), then takes 1,300 device messages/s (the paper's \
20-neighborhood load) for ${KT_BENCH_EP_DURATION:-30} s. \`rss_mib\`: the agent's \`VmHWM\` \
(peak resident set, snapshot included) at the end; \`rss_anon_mib\`/\`rss_file_mib\`: its \
current anonymous and file-backed (shared libraries: OpenSSL, libwebsockets, libcurl, SQLite, \
paho...) resident memory. Median of the runs by time. Target: under 16 MiB." \
        "$(pick "$run" rss_mib rss_anon_mib rss_file_mib rate events p99_ms lost duplicates)"
}

bench_agent_coldstart() {
    ep_with_tmp ep_coldstart
}
ep_coldstart() {
    # shellcheck disable=SC2034 # REPEAT: read by median_run and pick (dynamic scope)
    local run REPEAT=1
    run=$(median_run ep_run coldstart --runs "${KT_BENCH_EP_STARTS:-9}")
    record agent-coldstart "$ep_common \
After one synced run the agent and the hub stop; the agent's config then points at a hub \
port where nothing listens (unreachable). ${KT_BENCH_EP_STARTS:-9} times: exec \`ktwin-agent\` \
(MQTT bridge and plugin on, warm cache of the 20-neighborhood site) and poll \`GET \
/api/v1/twin-graph\` every 0.5 ms until it answers 200 with the graph from its cache. \`ms\`: \
median exec-to-answer, \`min_ms\`/\`max_ms\`. Target: under 100 ms." \
        "$(pick "$run" ms min_ms max_ms starts)"
}
