#!/usr/bin/env bash
# Fault test (issue 4, cloud services across a hub crash): a ktwin-hub with a
# slow HTTP cloud twin service (hood: one call at a time, 1 s each, written
# in Python). Six real events for hood-1 are posted to the hub's broker
# ingress; while the service is in the middle of the calls the hub is
# SIGKILLed, then restarted on the same data. The events bound for the
# service were queued durably (ktwin_hub_cloud_queued{iface="hood"}) before
# the hub answered, so after the restart the hub resumes them
# (HUB-CLOUD-RESUME) and every one of the six reaches the service. Delivery
# is AT-LEAST-ONCE: the call that was in flight at the kill may be delivered
# twice (counted and printed, not an error); none may be lost, and the
# queue ends empty with no dead letter.
#
# usage: test_downstream_cloud.sh HUB AGENT (the agent is not used)
HUB=$1
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/../lib/testlib.sh"
. "$DIR/test_downstream_lib.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

dl_model
H="http://127.0.0.1:$hub_port/"
dl_service slow cloudsvc "$H" 1.0
dl_hub_yaml "$(dl_services "hood=http://127.0.0.1:$svc_port/ concurrency=1 timeout=10s retries=3")"
dl_hub_start || { bad "hub did not start"; kt_finish; exit 1; }
dl_apply

N=6
for ((i = 1; i <= N; i++)); do
    check "ingress accepts e$i" 202 "$(post "$H" ktwin.real.hood hood-1 "e$i" "{\"i\":$i}")"
done
got_some() { [ "$(lines "$T/cloudsvc.log" '^got ktwin.real.hood ')" -ge 1 ]; }
waitfor "the service is being called" got_some
kill -KILL "$hub_pid"
wait "$hub_pid" 2>/dev/null
before=$(lines "$T/cloudsvc.log" '^done ')
echo "calls completed before the kill: $before of $N"
if [ "$before" -lt "$N" ]; then ok; else bad "all calls completed before the kill: the test proves nothing"; fi

dl_hub_start || bad "hub did not restart"
contains "the restarted hub resumes the queued events" "$T/hub.log" 'id=HUB-CLOUD-RESUME .*events=[1-9]'
all_got() {
    local i
    for ((i = 1; i <= N; i++)); do
        grep -q "^got ktwin.real.hood hood-1 e$i " "$T/cloudsvc.log" || return 1
    done
}
waitfor "every event reached the service" all_got
cq() { mval "$hub_port" ktwin_hub_cloud_queued 'iface="hood"'; }
cq_empty() { test "$(cq)" = 0; }
waitfor "the durable queue ends empty" cq_empty
check "no dead letter" 0 "$(mval "$hub_port" ktwin_hub_cloud_dead_letters_total 'iface="hood"')"
for ((i = 1; i <= N; i++)); do
    n=$(lines "$T/cloudsvc.log" "^got ktwin.real.hood hood-1 e$i ")
    if [ "$n" -ge 1 ]; then ok; else bad "e$i lost"; fi
    if [ "$n" -gt 1 ]; then echo "e$i delivered $n times (at-least-once)"; fi
done
total=$(lines "$T/cloudsvc.log" '^got ktwin.real.hood ')
echo "deliveries: $total for $N events"
# a normal restart now delivers nothing again
stop "$hub_pid" "hub"
dl_hub_start || bad "hub did not start (3)"
lacks "nothing left to resume" <(grep 'HUB-CLOUD-RESUME' "$T/hub.log" | tail -n +2) 'events='
check "no new delivery after a clean restart" "$total" "$(lines "$T/cloudsvc.log" '^got ktwin.real.hood ')"
stop "$hub_pid" "hub"
kt_finish
