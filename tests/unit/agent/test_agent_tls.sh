#!/usr/bin/env bash
# ktwin-agent to a ktwin-hub over TLS (wss://), with a throwaway CA made by
# openssl: with hub.ca_file the agent verifies the hub and gets its snapshot;
# without it (the system store does not know the CA) the link is refused and
# the agent keeps serving and retrying. Exit 77 (skipped) without openssl.
#
# usage: test_agent_tls.sh AGENT HUB
set -uo pipefail
AGENT=$1
HUB=$2
command -v openssl >/dev/null || { echo "no openssl: skipped"; exit 77; }
. "$(dirname "$0")/../../lib/testlib.sh"

# ---- a CA and a server certificate for 127.0.0.1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 \
    -subj "/CN=ktwin-test-ca" 2>/dev/null || bad "CA"
openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null || bad "CSR"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext.cnf"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -out "$T/srv.pem" -days 2 -extfile "$T/ext.cnf" 2>/dev/null || bad "server certificate"

printf 'site-00 tok-00\n' >"$T/agents.txt"
printf 'admin-secret\n' >"$T/admin.token"
printf 'tok-00\n' >"$T/token"
cat >"$T/hub.yaml" <<EOF
listen: {port: 0}
data_dir: $T/hubdata
tls: {cert_file: $T/srv.pem, key_file: $T/srv.key}
auth: {admin_token_file: $T/admin.token, agents_file: $T/agents.txt}
EOF
"$HUB" --config "$T/hub.yaml" --port-file "$T/hub.port" 2>"$T/hub.log" &
hub_pid=$!
PIDS+=("$hub_pid")
hub_port=$(wait_file "$T/hub.port") || bad "hub port file"
cat >"$T/iface.yaml" <<'EOF'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: tls-probe}
spec: {}
EOF
rev=$(curl -s --cacert "$T/ca.pem" -H "Authorization: Bearer admin-secret" \
    --data-binary @"$T/iface.yaml" "https://127.0.0.1:$hub_port/api/v1/apply" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
[ -n "$rev" ] && ok || bad "apply over https"

agent_cfg() { # FILE CACHE [ca_file line]
    cat >"$1" <<EOF
site: site-00
hub:
  url: "wss://127.0.0.1:$hub_port/sync"
  token_file: $T/token
  $3
cache: {path: $2}
listen: {port: 0}
reconnect: {base_ms: 100ms, cap_ms: 500ms}
EOF
}

# ---- with the CA: verified, synced
agent_cfg "$T/good.yaml" "$T/good.db" "ca_file: $T/ca.pem"
"$AGENT" --config "$T/good.yaml" --port-file "$T/good.port" 2>"$T/good.log" &
good_pid=$!
PIDS+=("$good_pid")
good_port=$(wait_file "$T/good.port") || bad "agent port file"
for ((i = 0; i < 300; i++)); do
    [ "$(metric "$good_port" ktwin_agent_graph_revision)" = "$rev" ] && break
    sleep 0.1
done
check "snapshot over wss" "$rev" "$(metric "$good_port" ktwin_agent_graph_revision)"
check "connected over wss" 1 "$(metric "$good_port" ktwin_agent_connected)"

# ---- without the CA: refused, keeps serving and retrying
agent_cfg "$T/noca.yaml" "$T/noca.db" ""
"$AGENT" --config "$T/noca.yaml" --port-file "$T/noca.port" 2>"$T/noca.log" &
noca_pid=$!
PIDS+=("$noca_pid")
noca_port=$(wait_file "$T/noca.port") || bad "agent port file (no CA)"
for ((i = 0; i < 300; i++)); do grep -q 'id=UPLINK-RETRY' "$T/noca.log" && break; sleep 0.1; done
contains "unverified hub refused" "$T/noca.log" 'id=UPLINK-CONNECT-FAIL'
check "not connected without the CA" 0 "$(metric "$noca_port" ktwin_agent_connected)"
check "nothing synced without the CA" 0 "$(metric "$noca_port" ktwin_agent_graph_revision)"
check "still serving" ok "$(curl -s "http://127.0.0.1:$noca_port/healthz")"

stop "$noca_pid" "agent without CA"
stop "$good_pid" "agent"
stop "$hub_pid" "hub"
kt_finish
