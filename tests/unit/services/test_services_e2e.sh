#!/usr/bin/env bash
# The smart-city services end to end, in the real system: `ktwin-sim model`
# writes a one-neighborhood city on site-00, the real ktwin-hub gets it, and
# the real ktwin-agent of site-00 runs every service from ONE plugin
# ("*=smartcity.so"), with devices publishing KTWIN's payloads (KTWIN.md §2.3)
# on the site's mosquitto. Checked on the agent's event API (latest state)
# and, after the uplink, in the hub's event store:
#   - an air-quality reading runs aqi -> pole -> neighborhood: the
#     neighborhood's latest aqiLevel is MODERATE (the simulator's constant
#     payload), with the pole's report and a refreshed dateObserved;
#   - a low battery gets the virtual event {"measurementFrequency":60} on
#     ktwin/virtual/ngsi-ld-city-device/<instance>;
#   - a parking spot that becomes occupied updates its parking's counts
#     (20 spots in the graph, 1 occupied); a repeated report does not;
#   - weather and traffic readings get their derived fields.
#
#   - (with STANDALONE) ktwin-smartcity-service, the same code in libktwin's
#     HTTP mode against the agent's KTWIN APIs, handles an air-quality event;
#     its store and command events flow through the agent like the plugin's.
#
# usage: test_services_e2e.sh AGENT HUB SIM SMARTCITY_SO [STANDALONE]
set -uo pipefail
AGENT=$1
HUB=$2
SIM=$3
PLUGIN=$4
. "$(dirname "$0")/../../lib/testlib.sh"
. "$(dirname "$0")/../../lib/ktprocs.sh"
for c in curl mosquitto mosquitto_pub mosquitto_sub; do
    command -v $c >/dev/null || { echo "SKIP: $c missing"; exit 77; }
done

# ---- the model
"$SIM" model --neighborhoods 1 --sites 1 -o "$T/model" >"$T/sim.out" 2>&1
check "ktwin-sim model" 0 $?
cat "$T/model/interfaces.yaml" "$T/model/policy.yaml" "$T/model"/instances-*.yaml >"$T/city.yaml"

# ---- hub
kt_auth_files admin-secret site-00 tok-00
kt_hub_yaml 'sync: {heartbeat_ms: 1000}'
kt_start_hub
waitfor "hub ready" kt_hub_ready
kt_apply_model "$T/city.yaml" -H 'Content-Type: application/yaml'

# ---- the site's broker and agent
kt_start_mosquitto
agent_port=$(free_port)
kt_agent_yaml site-00 "$agent_port" 1s "mqtt: {url: \"tcp://127.0.0.1:$mqtt_port\"}" \
    'services:' '  specs:' "  - \"*=$PLUGIN\""
kt_start_agent
A="http://127.0.0.1:$agent_port"
waitfor "agent up" kt_agent_up
placed() {
    local f
    curl -s "$A/api/v1/placement" >"$T/placement.json"
    for f in city-pole s4city-city-neighborhood ngsi-ld-city-airqualityobserved \
        ngsi-ld-city-offstreetparking ngsi-ld-city-parkingspot ngsi-ld-city-device; do
        grep -q "\"interface\":\"$f\",\"where\":\"edge\"" "$T/placement.json" || return 1
    done
}
waitfor "the services' interfaces are placed here" placed
waitfor "agent subscribed to its devices" grep -qE 'id=MQTT-SUBSCRIBED' "$T/agent.log"

pub() { # TOPIC-SUFFIX PAYLOAD
    mosquitto_pub -p "$mqtt_port" -q 1 -t "ktwin/real/$1" -m "$2" || bad "mosquitto_pub $1"
}
has() { # IFACE INST PATTERN: the agent's latest state matches
    curl -sf "$A/api/v1/twin-events/$1/$2/latest" | grep -qE "$3"
}

# ---- air quality -> pole -> neighborhood
AQ='{"reliability":8,"volatileOrganicCompoundsTotal":0,"CO2Density":8,"CODensity":8,"PM1Density":8,"PM10Density":8,"PM25Density":8,"SO2Density":8,"C6H6Density":8,"NIDensity":8,"NODensity":8,"ASDensity":8,"CDDensity":8,"NO2Density":8,"O3Density":8,"PBDensity":8,"SH2Density":8,"precipitation":8,"temperature":8,"WindDirection":8,"WindSpeed":8,"relativeHumidity":8,"msg_count":0,"timestamp":"2024-06-22T00:50:00Z"}'
pub ngsi-ld-city-airqualityobserved/ngsi-ld-city-airqualityobserved-nb001-p00007 "$AQ"
waitfor "air quality graded" has ngsi-ld-city-airqualityobserved \
    ngsi-ld-city-airqualityobserved-nb001-p00007 '"COAqiLevel":"MODERATE"'
waitfor "neighborhood level from the pole's report" has s4city-city-neighborhood \
    s4city-city-neighborhood-nb001 '"aqiLevel":"MODERATE"'
curl -sf "$A/api/v1/twin-events/s4city-city-neighborhood/s4city-city-neighborhood-nb001/latest" \
    >"$T/hood.json"
contains "the pole's report is kept" "$T/hood.json" '"city-pole-nb001-p00007":\{"aqiLevel":"MODERATE"'
contains "dateObserved set" "$T/hood.json" '"dateObserved":"20[0-9-]+T'

# ---- battery: the virtual event back to the device
mosquitto_sub -p "$mqtt_port" -q 1 -t 'ktwin/virtual/ngsi-ld-city-device/#' -v \
    >"$T/virtual.out" 2>>"$T/mosquitto.log" &
PIDS+=("$!")
probe() {
    mosquitto_pub -p "$mqtt_port" -q 1 -t ktwin/virtual/ngsi-ld-city-device/probe -m probe
    grep -q 'probe$' "$T/virtual.out"
}
waitfor "device subscribed" probe
pub ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb001-p00001 \
    '{"batteryLevel":10,"measurementFrequency":15,"msg_count":0,"timestamp":"2024-06-22T00:50:00Z"}'
waitfor "virtual event with the new frequency" \
    grep -q '^ktwin/virtual/ngsi-ld-city-device/ngsi-ld-city-device-aqo-nb001-p00001 {"measurementFrequency":60}$' \
    "$T/virtual.out"
waitfor "battery state stored" has ngsi-ld-city-device ngsi-ld-city-device-aqo-nb001-p00001 \
    '"measurementFrequency":60'

# ---- parking: spot -> off-street parking counts
SPOT=ngsi-ld-city-offstreetparkingspot-nb001-ofp0001-s0003
OFP=ngsi-ld-city-offstreetparking-nb001-ofp0001
pub "ngsi-ld-city-parkingspot/$SPOT" '{"status":"occupied","msg_count":5}'
waitfor "parking counts updated" has ngsi-ld-city-offstreetparking $OFP '"occupiedSpotNumber":1'
contains "20 spots from the graph" <(curl -sf "$A/api/v1/twin-events/ngsi-ld-city-offstreetparking/$OFP/latest") \
    '"totalSpotNumber":20'
pub "ngsi-ld-city-parkingspot/$SPOT" '{"status":"occupied","msg_count":5}'
pub ngsi-ld-city-trafficflowobserved/ngsi-ld-city-trafficflowobserved-nb001-p00001 \
    '{"averageVehicleSpeed":10,"averageHeadwayTime":1,"averageGapDistance":3,"averageVehicleLength":200,"msg_count":0}'
waitfor "traffic congestion" has ngsi-ld-city-trafficflowobserved \
    ngsi-ld-city-trafficflowobserved-nb001-p00001 '"congested":true'
# the repeated spot report was handled before the traffic one (one loop): no second entrance
has ngsi-ld-city-offstreetparking $OFP '"occupiedSpotNumber":1,' && ok || bad "second entrance counted"
has ngsi-ld-city-offstreetparking $OFP '"vehicleEntranceCount":1' && ok || bad "entrances not 1"

# ---- weather
pub ngsi-ld-city-weatherobserved/ngsi-ld-city-weatherobserved-nb001-p00002 \
    '{"atmosphericPressure":10,"dewpoint":8,"temperature":8,"relativeHumidity":8,"WindSpeed":8,"msg_count":0}'
waitfor "weather derived fields" has ngsi-ld-city-weatherobserved \
    ngsi-ld-city-weatherobserved-nb001-p00002 '"dewpoint":-24.37'
has ngsi-ld-city-weatherobserved ngsi-ld-city-weatherobserved-nb001-p00002 \
    '"feelsLikeTemperature":4.06' && ok || bad "feels-like"

# ---- the same code standalone (libktwin's HTTP mode), when built: KTWIN_* point at the agent
if [ -n "${5:-}" ]; then
    KTWIN_BROKER="$A/" KTWIN_EVENT_STORE="$A" KTWIN_GRAPH_URL="$A/api/v1/twin-graph" \
        "$5" --address 127.0.0.1 --port 0 --port-file "$T/sa.port" --interface ngsi-ld-city-airqualityobserved \
        2>>"$T/standalone.log" &
    sa_pid=$!
    PIDS+=("$sa_pid")
    sa_port=$(wait_file "$T/sa.port" 60) || bad "standalone service did not write its port"
    # a broker delivers an air-quality reading to it (binary mode, as KTWIN's Knative trigger)
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$sa_port/" \
        -H "ce-specversion: 1.0" -H "ce-id: sa-1" \
        -H "ce-type: ktwin.real.ngsi-ld-city-airqualityobserved" \
        -H "ce-source: ngsi-ld-city-airqualityobserved-nb001-p00011" \
        -H "Content-Type: application/json" --data '{"CODensity":8,"SO2Density":250}')
    check "standalone service handled the event" 200 "$code"
    waitfor "its store event reached the agent" has ngsi-ld-city-airqualityobserved \
        ngsi-ld-city-airqualityobserved-nb001-p00011 '"aqiLevel":"UNHEALTHY"'
    # its command went to the agent's pole service (in-process), then to the neighborhood
    waitfor "its command reached the neighborhood via the pole" has s4city-city-neighborhood \
        s4city-city-neighborhood-nb001 '"city-pole-nb001-p00011":\{"aqiLevel":"UNHEALTHY"'
    has s4city-city-neighborhood s4city-city-neighborhood-nb001 '"aqiLevel":"UNHEALTHY"' && ok ||
        bad "neighborhood level is not the worst pole's"
    stop "$sa_pid" "standalone service"
fi

# ---- the store events went up to the hub's event store
H="http://127.0.0.1:$hub_port"
waitfor "the neighborhood's store event reached the hub" \
    sh -c "curl -sf '$H/api/v1/twin-events/s4city-city-neighborhood/s4city-city-neighborhood-nb001/latest' | grep -q '\"aqiLevel\":\"MODERATE\"'"
lacks "no plugin failures" "$T/agent.log" 'id=SVC-PLUGIN-FAIL'
lacks "no dispatch drops (e.g. unknown-command)" "$T/agent.log" 'id=DISPATCH-DROP'

stop "$agent_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
