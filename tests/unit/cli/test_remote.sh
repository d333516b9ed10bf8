#!/usr/bin/env bash
# ktwinctl's hub commands (apply, get, delete, placement) as a user runs them.
#
#   test_remote.sh KTWINCTL [KTWIN_HUB]
#
# Without KTWIN_HUB: usage errors (exit 2), where the hub URL, token and CA
# come from (flags > env > $KTWINCONFIG / ~/.ktwin/config, reported by -v),
# bad config files (file:line:col, exit 1), and an unreachable hub (exit 3).
# With KTWIN_HUB: the real hub is started on 127.0.0.1, port 0, in a temp
# dir, and apply/get/delete/placement run end to end, including a 422 whose
# positions map back to the user's file, a 401 and a 403. The hub is stopped
# by its PID.
set -uo pipefail
K=$1
HUB=${2:-}
T=$(mktemp -d)
HUB_PID=
cleanup() {
    if [ -n "$HUB_PID" ]; then
        kill "$HUB_PID" 2>/dev/null
        wait "$HUB_PID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
check() { # name expected-exit actual-exit
    if [ "$2" = "$3" ]; then pass=$((pass + 1)); else
        echo "FAIL $1: exit $3, expected $2"; cat "$T/out" "$T/err" 2>/dev/null
        fail=$((fail + 1)); fi
}
contains() { # name file pattern
    if grep -qE -- "$3" "$2"; then pass=$((pass + 1)); else
        echo "FAIL $1: no line matching /$3/ in $2:"; cat "$2"; fail=$((fail + 1)); fi
}
lacks() { # name file pattern
    if ! grep -qE -- "$3" "$2"; then pass=$((pass + 1)); else
        echo "FAIL $1: a line matches /$3/ in $2:"; cat "$2"; fail=$((fail + 1)); fi
}
run() { # expected-exit name args...: run ktwinctl with stdout/stderr to $T/out, $T/err
    local want=$1 name=$2
    shift 2
    "$K" "$@" >"$T/out" 2>"$T/err"
    check "$name" "$want" $?
}

# A clean environment: no real config or hub settings leak in.
export HOME=$T/home
mkdir -p "$HOME"
unset KTWINCONFIG KTWIN_HUB_URL KTWIN_TOKEN KTWIN_TOKEN_FILE KTWIN_CA_FILE
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# A port nothing listens on.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
DEAD_URL=http://127.0.0.1:$DEAD

# ---- usage --------------------------------------------------------------------------------
for c in apply get delete placement; do
    run 0 "$c-help" $c --help
    contains "$c-help-flags" "$T/out" "--token-file FILE"
done
run 2 get-no-kind get
run 2 get-bad-kind get widgets
contains get-bad-kind-msg "$T/err" 'unknown kind "widgets"'
run 2 get-bad-output get ti -o xml
run 2 get-two-names get ti a b
run 2 apply-no-file apply
run 2 apply-bad-option apply --frobnicate
run 2 delete-no-name delete ti
run 2 placement-explain-no-iface placement explain
run 2 placement-site-without-explain placement --site s1
run 2 timeout-bad get ti --timeout 0 --hub "$DEAD_URL"
run 2 hub-needs-value get ti --hub
run 2 no-hub get ti
contains no-hub-msg "$T/err" "no hub: pass --hub URL"
run 2 bad-scheme get ti --hub ftp://x
contains bad-scheme-msg "$T/err" "must start with http:// or https://"

# ---- where the hub is: flags > env > config file -------------------------------------------
run 3 refused get ti --hub "$DEAD_URL"
contains refused-msg "$T/err" "cannot reach the hub at $DEAD_URL \(from --hub\)"
printf 'apiVersion: dtd.ktwin/v0\nkind: TwinInterface\nmetadata: {name: a}\n' >"$T/one.yaml"
run 3 refused-apply apply -f "$T/one.yaml" --hub "$DEAD_URL"
run 3 refused-delete delete tinst x --hub "$DEAD_URL"
run 3 refused-placement placement --hub "$DEAD_URL"
run 3 refused-explain placement explain a --hub "$DEAD_URL"

mkdir -p "$HOME/.ktwin" "$T/cfg"
echo "file-token" >"$T/cfg/tok"
echo "env-token-file" >"$T/envtok"
printf 'hub:\n  url: http://127.0.0.1:%s/\n  tokenFile: tok\n' "$DEAD" >"$T/cfg/config"
cp "$T/cfg/config" "$HOME/.ktwin/config"
cp "$T/cfg/tok" "$HOME/.ktwin/tok"

# ~/.ktwin/config when nothing else is set; tokenFile relative to the file's folder.
run 3 home-config get ti -v
contains home-config-url "$T/err" "hub http://127.0.0.1:$DEAD \(from $HOME/.ktwin/config\); token $HOME/.ktwin/config"
# $KTWINCONFIG wins over ~/.ktwin/config.
KTWINCONFIG=$T/cfg/config run 3 ktwinconfig get ti -v
contains ktwinconfig-url "$T/err" "\(from $T/cfg/config\)"
# env beats the file, flags beat env.
KTWIN_HUB_URL=http://127.0.0.1:$DEAD/x run 3 env-url get ti -v
contains env-url-msg "$T/err" "hub http://127.0.0.1:$DEAD/x \(from KTWIN_HUB_URL\)"
KTWIN_HUB_URL=http://127.0.0.1:1 run 3 flag-url get ti -v --hub "$DEAD_URL"
contains flag-url-msg "$T/err" "\(from --hub\)"
KTWIN_TOKEN_FILE=$T/envtok run 3 env-token-file get ti -v
contains env-token-file-msg "$T/err" "token KTWIN_TOKEN_FILE"
KTWIN_TOKEN=abc KTWIN_TOKEN_FILE=$T/envtok run 3 env-token get ti -v
contains env-token-msg "$T/err" "token KTWIN_TOKEN;"
KTWIN_TOKEN=abc run 3 flag-token get ti -v --token-file "$T/envtok"
contains flag-token-msg "$T/err" "token --token-file"
KTWIN_CA_FILE=$T/cfg/tok run 3 env-ca get ti -v
contains env-ca-msg "$T/err" "CA $T/cfg/tok from KTWIN_CA_FILE"

# Bad settings: exit 1 and say what and where.
run 1 missing-token-file get ti --token-file "$T/none"
contains missing-token-file-msg "$T/err" "token file \(from --token-file\): open $T/none"
: >"$T/empty"
run 1 empty-token-file get ti --token-file "$T/empty"
run 1 missing-ca get ti --ca-file "$T/none"
KTWINCONFIG=$T/none run 1 missing-ktwinconfig get ti
contains missing-ktwinconfig-msg "$T/err" "config file \(from KTWINCONFIG\)"
printf 'hub:\n  url: http://x\n  bogus: 1\nother: 2\n' >"$T/bad-config"
KTWINCONFIG=$T/bad-config run 1 bad-config get ti
contains bad-config-key "$T/err" "^$T/bad-config:3:3: hub.bogus: unknown key"
contains bad-config-top "$T/err" "^$T/bad-config:4:1: other: unknown key"
printf 'hub: [1\n' >"$T/bad-yaml"
KTWINCONFIG=$T/bad-yaml run 1 bad-config-yaml get ti

# ---- against the real hub ------------------------------------------------------------------
if [ -z "$HUB" ]; then
    echo "test_remote: no ktwin-hub given: hub tests skipped"
    echo "test_remote: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
fi

rm -f "$HOME/.ktwin/config"
echo "s1 s1-secret" >"$T/agents"
mkdir -p "$T/hubrun"
(cd "$T/hubrun" && KTWIN_HUB_LISTEN_PORT=0 KTWIN_HUB_DATA_DIR=$T/hubrun/data \
    KTWIN_HUB_AUTH_AGENTS_FILE=$T/agents KTWIN_HUB_LOG_LEVEL=notice \
    exec "$HUB" --port-file "$T/hubrun/port" >"$T/hub.log" 2>&1) &
HUB_PID=$!
for _ in $(seq 1 300); do
    [ -s "$T/hubrun/port" ] && break
    kill -0 "$HUB_PID" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$T/hubrun/port" ]; then
    echo "FAIL hub-start: no port file"; cat "$T/hub.log"
    exit 1
fi
PORT=$(cat "$T/hubrun/port")
export KTWIN_HUB_URL=http://127.0.0.1:$PORT
export KTWIN_TOKEN_FILE=$T/hubrun/data/admin.token

mkdir -p "$T/docs/sub" "$T/docs/.hidden"
cat >"$T/docs/a.yaml" <<'YAML'
apiVersion: dtd.ktwin/v0
kind: TwinInterface
metadata: {name: pole}
spec:
  relationships: [{name: near, interface: pole}]
  service:
    template:
      spec:
        containers:
        - name: c
          image: x/pole:1
          resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata:
  name: p1
  labels: {ktwin.io/site: s1}
spec: {interface: pole}
YAML
cat >"$T/docs/sub/b.json" <<'JSON'
{"apiVersion":"dtd.ktwin/v0","kind":"TwinInstance","metadata":{"name":"p2"},"spec":{"interface":"pole","twinInstanceRelationships":[{"name":"near","interface":"pole","instance":"p1"}]}}
{"apiVersion":"edge.ktwin/v0","kind":"PlacementPolicy","metadata":{"name":"city"},"spec":{"siteFrom":[{"relationship":"near"}],"rules":[{"name":"poles","match":{"interfaces":["pole"]},"placement":"edge","offline":"required"}]}}
JSON
echo 'not: [valid' >"$T/docs/.hidden/x.yaml"
echo 'ignored' >"$T/docs/notes.txt"

run 0 apply-dir apply -f "$T/docs"
contains apply-created-iface "$T/out" "^twininterface/pole created$"
contains apply-created-p2 "$T/out" "^twininstance/p2 created$"
contains apply-created-policy "$T/out" "^placementpolicy/city created$"
run 0 apply-again apply -f "$T/docs"
contains apply-unchanged "$T/out" "^twininstance/p1 unchanged$"
sed 's/x\/pole:1/x\/pole:2/' "$T/docs/a.yaml" >"$T/a2.yaml"
run 0 apply-configured apply -f "$T/a2.yaml"
contains apply-configured-msg "$T/out" "^twininterface/pole configured$"
run 0 apply-stdin apply -f - <"$T/a2.yaml"

# 422: positions point into the user's files, nothing applied.
cat >"$T/bad.yaml" <<'YAML'
# a comment line
apiVersion: dtd.ktwin/v0
kind: TwinInstance
metadata: {name: p3}
spec:
  interface: pole
  bogus: 1
YAML
run 1 apply-422 apply -f "$T/docs/a.yaml" -f "$T/bad.yaml"
contains apply-422-pos "$T/err" "^$T/bad.yaml:7:3: spec.bogus: unknown-field: "
contains apply-422-summary "$T/err" "the hub refused it \(422\): 1 error, nothing changed"
echo '{"apiVersion":"dtd.ktwin/v0","kind":"TwinInstance","metadata":{"name":"p4"},"spec":{"interface":"nope"}}' >"$T/bad.json"
run 1 apply-422-json apply -f "$T/bad.json"
contains apply-422-json-pos "$T/err" "^$T/bad.json:1:1: spec.interface: instance-interface-unknown"
run 1 get-not-applied get tinst p3

# 401 and 403
KTWIN_TOKEN_FILE= run 1 apply-401 apply -f "$T/docs/a.yaml"
contains apply-401-msg "$T/err" "401 Unauthorized"
KTWIN_TOKEN=wrong run 1 apply-403 apply -f "$T/docs/a.yaml"
contains apply-403-msg "$T/err" "refused the token from KTWIN_TOKEN \(403 Forbidden"

# get
run 0 get-ti get ti
contains get-ti-table "$T/out" "^pole +- +x/pole:2$"
run 0 get-tinst get TwinInstances
contains get-tinst-site "$T/out" "^p1 +pole +s1$"
contains get-tinst-nosite "$T/out" "^p2 +pole +-$"
run 0 get-name get tinst -o name
contains get-name-p1 "$T/out" "^twininstance/p1$"
run 0 get-json get pp city -o json
contains get-json-name "$T/out" '"name": "city"'
run 0 get-yaml get tinst p1 -o yaml
contains get-yaml-kind "$T/out" "^kind: TwinInstance$"
"$K" get tinst -o yaml >"$T/all.yaml" 2>"$T/err"
check get-yaml-list 0 $?
run 0 reapply-yaml apply -f "$T/all.yaml"
contains reapply-yaml-unchanged "$T/out" "^twininstance/p2 unchanged$"
run 1 get-404 get tinst nope
contains get-404-msg "$T/err" "not found \(404"

# placement: p2 walks "near" to p1 (site s1). s1 never connected and reported no
# capacity, so the offline-required pole is pending there, never cloud.
run 0 placement placement
contains placement-iface "$T/out" "^pole +pending +city/poles +2 "
contains placement-site "$T/out" "^s1 +no "
run 0 placement-json placement -o json
contains placement-json-where "$T/out" '"where": "pending"'
run 0 explain placement explain pole --site s1
contains explain-head "$T/out" "^pole: pending \(rule city/poles\)"
contains explain-rule "$T/out" "rule city/poles \(policy priority 0\): matches: placement edge"
contains explain-site "$T/out" "site s1 \(gone; .*2 instances.* -> pending: .*never the cloud"
run 1 explain-404 placement explain nope
run 1 explain-bad-site placement explain pole --site nowhere
contains explain-bad-site-msg "$T/err" "not found \(404: unknown site nowhere\)"

# delete: refused while in use (422), then in order.
run 1 delete-in-use delete ti pole
contains delete-in-use-msg "$T/err" "instance-interface-unknown"
KTWIN_TOKEN_FILE= run 1 delete-401 delete tinst p2
run 0 delete-instances delete tinst p2 p1
contains delete-msg "$T/out" "^twininstance/p1 deleted$"
run 1 delete-404 delete tinst p1
contains delete-404-msg "$T/err" "404"
run 0 delete-iface delete twininterface pole
run 0 delete-policy delete pp city
run 0 get-empty get ti
contains get-empty-msg "$T/err" "No twininterfaces found"

kill "$HUB_PID"
wait "$HUB_PID"
check hub-stops-cleanly 0 $?
HUB_PID=

# ---- TLS: the CA comes from --ca-file, KTWIN_CA_FILE or hub.caFile ----------------------------
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1; then
    mkdir -p "$T/tlsrun"
    (cd "$T/tlsrun" && KTWIN_HUB_LISTEN_PORT=0 KTWIN_HUB_DATA_DIR=$T/tlsrun/data \
        KTWIN_HUB_TLS_CERT_FILE=$T/cert.pem KTWIN_HUB_TLS_KEY_FILE=$T/key.pem \
        exec "$HUB" --port-file "$T/tlsrun/port" >"$T/tls.log" 2>&1) &
    HUB_PID=$!
    for _ in $(seq 1 300); do
        [ -s "$T/tlsrun/port" ] && break
        kill -0 "$HUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    TLS_URL=https://127.0.0.1:$(cat "$T/tlsrun/port" 2>/dev/null)
    unset KTWIN_HUB_URL
    run 3 tls-unknown-ca get ti --hub "$TLS_URL"
    contains tls-unknown-ca-msg "$T/err" "certificate"
    run 0 tls-ca-flag get ti --hub "$TLS_URL" --ca-file "$T/cert.pem"
    KTWIN_CA_FILE=$T/cert.pem run 0 tls-ca-env get ti --hub "$TLS_URL"
    cp "$T/cert.pem" "$T/cfg/ca.pem"
    printf 'hub:\n  url: %s\n  caFile: ca.pem\n' "$TLS_URL" >"$T/cfg/tls-config"
    KTWINCONFIG=$T/cfg/tls-config run 0 tls-ca-config get ti
    KTWINCONFIG=$T/cfg/tls-config KTWIN_TOKEN_FILE=$T/tlsrun/data/admin.token \
        run 0 tls-apply apply -f "$T/one.yaml"
    contains tls-apply-msg "$T/out" "^twininterface/a created$"
    kill "$HUB_PID"
    wait "$HUB_PID"
    check tls-hub-stops-cleanly 0 $?
    HUB_PID=
else
    echo "test_remote: no openssl: TLS tests skipped"
fi
echo "test_remote: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
