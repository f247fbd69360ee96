#!/usr/bin/env bash
# The main job on a fresh machine: builds aviary, starts two versions of a small service on loopback,
# and shows the gateway splitting traffic 90/10, pinning a segment by header, moving weights by a live
# config reload, and sending a dead canary's share back to the stable version.
# Everything listens on 127.0.0.1 and is stopped when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building aviary and the demo upstream"
go build -o "$work/aviary" ./cmd/aviary
go build -o "$work/upstream" ./cmd/aviary-upstream

for v in v1 v2; do
	"$work/upstream" --name "$v" --port-file "$work/$v.addr" & pids+=($!)
done
for v in v1 v2; do for _ in $(seq 50); do [ -s "$work/$v.addr" ] && break; sleep 0.1; done; done
V1=$(cat "$work/v1.addr"); V2=$(cat "$work/v2.addr")
GW=127.0.0.1:${GATEWAY_PORT:-18080}; ADMIN=127.0.0.1:${ADMIN_PORT:-18090}

write_config() { # $1 = v1 weight, $2 = v2 weight
	cat > "$work/aviary.yaml.tmp" <<YAML
gateway: {listen: "$GW"}
admin: {listen: "$ADMIN"}
services:
  - name: shop
    match: {pathPrefix: "/"}
    versions:
      - {name: v1, endpoints: ["http://$V1"]}
      - {name: v2, endpoints: ["http://$V2"]}
    traffic: [{version: v1, weight: $1}, {version: v2, weight: $2}]
    stickiness: {header: X-User-Id}
    routes:
      - {match: {header: {name: X-Canary, value: always}}, version: v2}
    passiveHealth: {consecutiveFailures: 2, baseEjection: 30s}
YAML
	mv "$work/aviary.yaml.tmp" "$work/aviary.yaml"
}

count() { # $1 = requests, extra args go to curl
	local n=$1; shift
	for _ in $(seq "$n"); do
		curl -s -o /dev/null -D - "$@" "http://$GW/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-aviary-upstream"{print $2} /^HTTP/{split($0,a," "); code=a[2]} END{if(code!=200)print "status " code}'
	done | sort | uniq -c | sed 's/^/    /'
}

write_config 90 10
say "aviary validate"
"$work/aviary" validate --config "$work/aviary.yaml"
say "starting aviary serve (gateway $GW, admin $ADMIN)"
"$work/aviary" serve --config "$work/aviary.yaml" 2> "$work/aviary.log" & pids+=($!)
for _ in $(seq 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

say "200 requests at 90/10: who answered"
count 200
say "a segment pinned by route (X-Canary: always)"
count 20 -H "X-Canary: always"
say "a sticky user keeps one version (X-User-Id: alice), 20 requests"
count 20 -H "X-User-Id: alice"

say "live reload: weights 50/50 (the file is replaced; no restart, no dropped request)"
write_config 50 50
for _ in $(seq 50); do curl -s "http://$ADMIN/api/v1/services" | grep -q '"weight": 50' && break; sleep 0.1; done
count 200

say "an invalid config is refused and the running one stays"
sed -i 's/weight: 50}, {version: v2/weight: 140}, {version: v2/' "$work/aviary.yaml"
sleep 1
curl -s "http://$ADMIN/api/v1/config" | sed -n '/lastReload/,$p' | head -12
count 50

say "the canary dies: its share goes back to the stable version"
kill "${pids[1]}"
count 200
say "per-version measurements (Prometheus, admin listener)"
curl -s "http://$ADMIN/metrics" | grep -E '^aviary_(requests_total|fallback_requests_total|endpoint_ejections_total)' | sed 's/^/    /'
say "done; aviary's log:"
sed 's/^/    /' "$work/aviary.log" | tail -12
