#!/usr/bin/env bash
# The deployment files say what the binaries accept:
#  - the hub configuration in cloud-manifests/10-hub-config.yaml and the agent
#    configuration in k3s-manifests/20-agent.yaml are taken by
#    `ktwin-hub --print-config` / `ktwin-agent --print-config` (unknown keys
#    and bad values are errors there), with the values the manifests mean;
#  - the mosquitto.conf of k3s-manifests/10-mosquitto.yaml starts a real
#    mosquitto (port and persistence directory moved to the test's own);
#  - every file the Deployments mount or run is one the Dockerfile installs.
# No Kubernetes API server runs here: the manifests themselves are not applied.
#
# usage: test_manifests.sh HUB AGENT
HUB=$1
AGENT=$2
. "$(dirname "$0")/../lib/testlib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# block FILE KEY: the text of the literal block "KEY: |" in FILE, de-indented.
block() {
    awk -v key="$2" '
        !inb && $0 ~ "^[ ]*" key ": [|]$" { inb = 1; next }
        inb {
            if ($0 ~ /^[ ]*$/) { print ""; next }
            match($0, /^[ ]*/)
            if (ind == "") ind = RLENGTH
            if (RLENGTH < ind) exit
            print substr($0, ind + 1)
        }' "$1"
}

block "$ROOT/cloud-manifests/10-hub-config.yaml" hub.yaml >"$T/hub.yaml"
block "$ROOT/k3s-manifests/20-agent.yaml" agent.yaml >"$T/agent.yaml"
block "$ROOT/k3s-manifests/10-mosquitto.yaml" mosquitto.conf >"$T/mosquitto.conf"
for f in hub.yaml agent.yaml mosquitto.conf; do
    test -s "$T/$f" || bad "no $f block found in the manifests"
done

"$HUB" --config "$T/hub.yaml" --print-config >"$T/hub.cfg" 2>&1
check "hub takes the manifest's config" 0 $?
contains "hub listens on all addresses" "$T/hub.cfg" '^listen.address: "0.0.0.0"$'
contains "hub data on the volume" "$T/hub.cfg" '^data_dir: "/var/lib/ktwin/hub"$'
contains "hub watches the model ConfigMap" "$T/hub.cfg" '^watch_dir: "/etc/ktwin/model"$'

"$AGENT" --config "$T/agent.yaml" --print-config >"$T/agent.cfg" 2>&1
check "agent takes the manifest's config" 0 $?
contains "agent site" "$T/agent.cfg" '^site: "site-00"$'
contains "agent reaches the site broker Service" "$T/agent.cfg" '^mqtt.url: "tcp://mosquitto:1883"$'
contains "agent listens on all addresses" "$T/agent.cfg" '^listen.address: "0.0.0.0"$'

# The agent's token and the hub's agents file agree on site-00.
tok=$(sed -n 's/^  token: //p' "$ROOT/k3s-manifests/20-agent.yaml")
grep -q "^    site-00 $tok\$" "$ROOT/cloud-manifests/10-hub-config.yaml"
check "site-00's token is in the hub's agents file" 0 $?

# mosquitto takes the broker config (own port and data directory).
port=$(free_port)
mkdir -p "$T/mq"
sed -e "s/^listener 1883 .*/listener $port 127.0.0.1/" \
    -e "s#^persistence_location .*#persistence_location $T/mq/#" \
    "$T/mosquitto.conf" >"$T/mq.conf"
mosquitto -c "$T/mq.conf" >"$T/mq.log" 2>&1 &
mq_pid=$!
PIDS+=("$mq_pid")
mq_up() { mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t ktwin/real/x/y -m '{}' 2>/dev/null; }
wait_until 20 mq_up || bad "mosquitto did not take the manifest's config: $(cat "$T/mq.log")"
ok

# What the Deployments run and mount is in the image.
for bin in ktwin-hub ktwin-agent; do
    grep -q "/$bin " "$ROOT/Dockerfile"
    check "Dockerfile installs $bin" 0 $?
done
grep -q 'services/\*.so /out/lib/ktwin/services/' "$ROOT/Dockerfile"
check "Dockerfile installs the service plugins" 0 $?
grep -q '/usr/local/lib/ktwin/services/smartcity.so' "$ROOT/k3s-manifests/20-agent.yaml"
check "the agent's services spec names the installed plugin" 0 $?

kt_finish
