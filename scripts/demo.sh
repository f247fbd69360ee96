#!/usr/bin/env bash
# The main job on a fresh machine: builds aviary and runs `aviary demo` (a canary promoted, a regressed
# one rolled back by the statistical judge, with the evidence); then the same by hand with the CLI over
# real processes: a canary rollout promoted step by step (v1 → v2) with a kill -9 in the middle that
# loses nothing, a broken release rolled back by itself (v2 → v3, whose health checks fail), and an
# instant undo. Everything listens on 127.0.0.1 and is stopped when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

say "building aviary and the demo upstream"
go build -o "$work/aviary" ./cmd/aviary
go build -o "$work/upstream" ./cmd/aviary-upstream
PATH="$work:$PATH"

say "aviary demo: a healthy canary promoted, a regressed one rolled back by the judge (about a minute)"
aviary demo

say "aviary demo llm: a model rollout judged on time to first token, stream errors, cost and evaluation scores"
aviary demo llm

say "aviary demo flags: deploy dark, on for employees, a judged flag rollout, a failing variant rolled back, the kill switch"
aviary demo flags

say "and now the same by hand, with the CLI, over real processes"

"$work/upstream" --name v1 --port-file "$work/v1.addr" & pids+=($!)
"$work/upstream" --name v2 --port-file "$work/v2.addr" & pids+=($!)
"$work/upstream" --name v3 --port-file "$work/v3.addr" --healthz-status 503 & pids+=($!)   # a broken release
for v in v1 v2 v3; do for _ in $(seq 50); do [ -s "$work/$v.addr" ] && break; sleep 0.1; done; done
V1=$(cat "$work/v1.addr"); V2=$(cat "$work/v2.addr"); V3=$(cat "$work/v3.addr")
GW=127.0.0.1:${GATEWAY_PORT:-18080}; ADMIN=127.0.0.1:${ADMIN_PORT:-18090}
export AVIARY_SERVER="http://$ADMIN"

cat > "$work/aviary.yaml" <<YAML
gateway: {listen: "$GW"}
admin: {listen: "$ADMIN"}
services:
  - name: shop
    versions:
      - {name: v1, endpoints: ["http://$V1"]}
      - {name: v2, endpoints: ["http://$V2"]}
    release: v1
    healthCheck: {interval: 500ms, unhealthyThreshold: 2}
    strategy:
      canary:
        steps:
          - setWeight: 20
          - pause: {duration: 4s}
          - setHeaderRoute: {match: {header: {name: X-Employee, value: "true"}}}
          - setWeight: 50
          - pause: {}
      abortOnUnhealthy: 2s
YAML

# who answers: $1 requests, extra args go to curl
count() {
	local n=$1; shift
	for _ in $(seq "$n"); do
		curl -s -o /dev/null -D - "$@" "http://$GW/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-aviary-upstream"{print $2} /^HTTP/{split($0,a," "); code=a[2]} END{if(code!=200)print "status " code}'
	done | sort | uniq -c | sed 's/^/    /'
}
# background load, so that every step happens under traffic
load() { while :; do curl -s -o /dev/null "http://$GW/" || true; sleep 0.01; done; }
wait_phase() { # $1 = phase, $2 = max seconds
	for _ in $(seq $(( $2 * 10 ))); do
		aviary rollout status shop -o json | grep -q "\"phase\": \"$1\"" && return 0; sleep 0.1
	done
	echo "timed out waiting for phase $1"; return 1
}
start_aviary() {
	"$work/aviary" serve --config "$work/aviary.yaml" 2>> "$work/aviary.log" & pids+=($!)
	AVIARY_PID=$!
	for _ in $(seq 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
}

say "starting aviary (gateway $GW, admin $ADMIN; state in aviary.db beside the config)"
start_aviary
load & pids+=($!)
run aviary get services

say "1. a canary rollout, promoted: v1 → v2"
run aviary rollout start shop --version v2
say "   at 20%: 200 requests"
count 200
run aviary rollout status shop
say "   the timed pause ends by itself; a header route sends employees to v2; then 50% and a pause for a person"
wait_phase Paused 10; sleep 4.5; wait_phase Paused 10
count 10 -H "X-Employee: true"
count 200
run aviary rollout status shop
say "   kill -9 while it waits for a person: the state survives"
aviary rollout status shop -o json | grep -E '"(phase|canaryWeight|currentStepIndex|generation)"' | sed 's/^/    before: /'
kill -9 "$AVIARY_PID"; wait "$AVIARY_PID" 2>/dev/null || true
start_aviary
aviary rollout status shop -o json | grep -E '"(phase|canaryWeight|currentStepIndex|generation)"' | sed 's/^/    after:  /'
run aviary rollout promote shop
wait_phase Healthy 10
say "   v2 is stable: 100 requests"
count 100

say "2. a broken release rolled back by itself: v2 → v3 (v3 fails its health checks)"
run aviary rollout start shop --version v3 --endpoint "http://$V3"
wait_phase Degraded 20
run aviary rollout status shop
say "   traffic is back on v2: 100 requests"
count 100

say "3. undo: back to v1 at once (it is still warm)"
run aviary rollout undo shop
count 50
run aviary rollout history shop
say "done; the last events:"
curl -s "http://$ADMIN/api/v1/events?service=shop&last=8" | grep '"reason"' | sed 's/^ */    /'
