#!/usr/bin/env bash
# bench/proxy.sh — Aviary beside nginx, HAProxy and a plain httputil proxy, in one run.
#
# Every proxy splits traffic 90/10 between the same two upstreams (v1, v2) with
# keep-alive to them; proxies run one at a time, pinned to CPU 0, while wrk and
# the upstreams share CPU 1. See bench/README.md for the columns and the traps.
#
# Environment:
#   DURATION=10        seconds measured per proxy and load shape
#   WARMUP=2           seconds of load per proxy before measuring (not counted)
#   CONNS="64 1"       load shapes: wrk connection counts
#   PROXIES="nginx haproxy plain aviary"   which peers to run, in this order; aviary-flags is
#                      aviary with three gateway-evaluated flags per request (a static flag, a
#                      fractional split, a flag rollout at 30%), each passed upstream in a header
#                      (compare its CPU µs/req with aviary's: what the flags cost)
#   BODY_BYTES=64      size of the upstream response body
#   OUT=bench/results/proxy-latest.md      where the table is written
#   AVIARY_BIN=path    benchmark this aviary binary instead of building ./cmd/aviary
#
# Only 127.0.0.1 is used; everything started here is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-"64 1"}
PROXIES=${PROXIES:-"nginx haproxy plain aviary"}
BODY_BYTES=${BODY_BYTES:-64}
OUT=${OUT:-$ROOT/bench/results/proxy-latest.md}
NOISY_PCT=10 # "CPU 0 others %" above this marks a row as disturbed
PROXY_CPU=0  # the proxy under test runs alone here
LOAD_CPU=1   # wrk and the upstreams
export PATH="$PATH:/usr/sbin:/sbin"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
UP_v1="" UP_v2="" # host:port of the two upstreams, set by start_upstream

# ---------------------------------------------------------------- tools

ensure_tools() {
	local missing=()
	command -v nginx >/dev/null || missing+=(nginx-light)
	command -v haproxy >/dev/null || missing+=(haproxy)
	command -v wrk >/dev/null || missing+=(wrk)
	command -v curl >/dev/null || missing+=(curl)
	command -v taskset >/dev/null || missing+=(util-linux)
	((${#missing[@]} == 0)) && return 0
	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}" >&2 ||
		{ "${sudo[@]}" apt-get update >&2 &&
			DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; } ||
		die "could not install ${missing[*]}; install them and run again"
}

# ---------------------------------------------------------------- upstreams

start_upstream() { # NAME -> sets UP_<NAME> to host:port
	local name=$1 pf="$TMP/upstream-$1.addr"
	GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$BIN/aviary-upstream" --listen 127.0.0.1:0 \
		--name "$name" --body-bytes "$BODY_BYTES" --port-file "$pf" >"$TMP/upstream-$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	wait_ready "$pid" test -s "$pf" || die "upstream $name did not start: $(cat "$TMP/upstream-$name.log")"
	printf -v "UP_$name" '%s' "$(tr -d '\n' <"$pf")"
}

upstream_requests() { # ADDR -> requests counted
	curl -fsS --max-time 2 "http://$1/__stats" | sed -E 's/.*"requests": *([0-9]+).*/\1/'
}

reset_upstreams() {
	curl -fsS --max-time 2 -X POST "http://$UP_v1/__reset" >/dev/null
	curl -fsS --max-time 2 -X POST "http://$UP_v2/__reset" >/dev/null
}

# ---------------------------------------------------------------- peers
# start_PEER PORT: starts the peer listening on 127.0.0.1:PORT, sets PEER_PID,
# and waits until it is ready; fails (after printing why) if it cannot.

start_nginx() {
	local port=$1 d="$TMP/nginx" user=""
	mkdir -p "$d"
	((EUID == 0)) && user="user root;"
	cat >"$d/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    upstream bench {
        server $UP_v1 weight=9;
        server $UP_v2 weight=1;
        keepalive 128;          # idle connections kept per worker; without it, one connect per request
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;          # keep-alive to upstreams needs HTTP/1.1 ...
            proxy_set_header Connection "";  # ... and no "Connection: close" (nginx's default)
        }
    }
}
EOF
	taskset -c "$PROXY_CPU" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/stdout.log" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	wait_ready "$PEER_PID" port_open "$port" || { cat "$d/error.log" "$d/stdout.log" >&2 2>/dev/null; return 1; }
}

start_haproxy() {
	local port=$1 d="$TMP/haproxy"
	mkdir -p "$d"
	cat >"$d/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    no log
    option http-keep-alive
    http-reuse always       # share idle upstream connections between clients
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:$port
    default_backend versions

backend versions
    balance roundrobin
    server v1 $UP_v1 weight 90
    server v2 $UP_v2 weight 10
EOF
	haproxy -c -q -f "$d/haproxy.cfg" >&2 || return 1
	taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg" >"$d/stdout.log" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	wait_ready "$PEER_PID" port_open "$port" || { cat "$d/stdout.log" >&2; return 1; }
}

start_plain() {
	local port=$1
	[[ -x $BIN/plainproxy ]] || { log "plainproxy was not built"; return 1; }
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$BIN/plainproxy" --listen "127.0.0.1:$port" \
		--a "http://$UP_v1" --b "http://$UP_v2" --weight-a 90 >"$TMP/plain.log" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	wait_ready "$PEER_PID" port_open "$port" || { cat "$TMP/plain.log" >&2; return 1; }
}

start_aviary() {
	local port=$1 admin d="$TMP/aviary"
	[[ -x $BIN/aviary ]] || { log "aviary was not built (see the build error above)"; return 1; }
	admin=$(free_port)
	mkdir -p "$d"
	cat >"$d/aviary.yaml" <<EOF
gateway: {listen: "127.0.0.1:$port"}
admin: {listen: "127.0.0.1:$admin"}
services:
  - name: bench
    match: {pathPrefix: "/"}
    versions:
      - {name: v1, endpoints: ["http://$UP_v1"]}
      - {name: v2, endpoints: ["http://$UP_v2"]}
    traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}]
EOF
	(cd "$d" && GOMAXPROCS=1 exec taskset -c "$PROXY_CPU" "$BIN/aviary" serve --config "$d/aviary.yaml") \
		>"$d/stdout.log" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	wait_ready "$PEER_PID" http_ok "http://127.0.0.1:$admin/readyz" || { tail -20 "$d/stdout.log" >&2; return 1; }
	wait_ready "$PEER_PID" port_open "$port" || { tail -20 "$d/stdout.log" >&2; return 1; }
}

# aviary-flags: aviary's config plus stickiness and three flags evaluated for every request; wrk
# sends each request as one of 10,000 users (X-User).
start_aviary-flags() {
	local port=$1 admin d="$TMP/aviary-flags"
	[[ -x $BIN/aviary ]] || { log "aviary was not built (see the build error above)"; return 1; }
	admin=$(free_port)
	mkdir -p "$d"
	cat >"$d/flags.json" <<'EOF'
{"flags": {
  "static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
  "split": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"fractional": [["on", 20], ["off", 80]]}},
  "rolled": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}
EOF
	cat >"$d/aviary.yaml" <<EOF
gateway: {listen: "127.0.0.1:$port"}
admin: {listen: "127.0.0.1:$admin"}
flags: {files: [flags.json]}
services:
  - name: bench
    match: {pathPrefix: "/"}
    stickiness: {header: X-User}
    versions:
      - {name: v1, endpoints: ["http://$UP_v1"]}
      - {name: v2, endpoints: ["http://$UP_v2"]}
    traffic: [{version: v1, weight: 90}, {version: v2, weight: 10}]
    flags:
      - {key: static, header: X-Flag-Static}
      - {key: split, header: X-Flag-Split}
      - key: rolled
        header: X-Flag-Rolled
        release: "on"
        strategy: {defaultAnalysis: false, canary: {steps: [{setWeight: 30}, {pause: {}}]}}
EOF
	(cd "$d" && GOMAXPROCS=1 exec taskset -c "$PROXY_CPU" "$BIN/aviary" serve --config "$d/aviary.yaml") \
		>"$d/stdout.log" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	wait_ready "$PEER_PID" http_ok "http://127.0.0.1:$admin/readyz" || { tail -20 "$d/stdout.log" >&2; return 1; }
	wait_ready "$PEER_PID" port_open "$port" || { tail -20 "$d/stdout.log" >&2; return 1; }
}

# ---------------------------------------------------------------- load

# wrk's done hook prints exact figures (latencies in microseconds) on one line.
write_wrk_script() {
	cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("AVIARY_WRK requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
	# The same report, each request from one of 10,000 users (for aviary and aviary-flags, measured
	# alike).
	{ cat "$TMP/report.lua"; cat <<'EOF'; } >"$TMP/users.lua"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, {["X-User"] = "user-" .. (n % 10000)})
end
EOF
}

# run_wrk PORT CONNS SECONDS -> the AVIARY_WRK line
run_wrk() {
	local out
	local script="$TMP/report.lua"
	[[ ${CUR_PEER:-} == aviary* ]] && script="$TMP/users.lua"
	out=$(taskset -c "$LOAD_CPU" timeout $(($3 + 30)) wrk -t1 -c"$2" -d"$3s" --timeout 2s \
		-s "$script" "http://127.0.0.1:$1/" 2>&1) || { log "wrk failed: $out"; return 1; }
	grep '^AVIARY_WRK ' <<<"$out" || { log "wrk printed no report: $out"; return 1; }
}

field() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<" $2"; } # field NAME LINE

# ---------------------------------------------------------------- measuring

# RESULTS rows: peer conns rps p50_us p99_us cpu_us_per_req cpu_pct v2_pct non2xx sockerr rss_kib other_pct
RESULTS=()

measure() { # PEER PORT CONNS
	local peer=$1 port=$2 conns=$3 t0 t1 b0 b1 line r1 r2 served
	reset_upstreams
	t0=$(cpu_ticks "$PEER_PID")
	b0=$(cpu_busy_ticks "$PROXY_CPU")
	line=$(run_wrk "$port" "$conns" "$DURATION") || return 1
	t1=$(cpu_ticks "$PEER_PID")
	b1=$(cpu_busy_ticks "$PROXY_CPU")
	r1=$(upstream_requests "$UP_v1")
	r2=$(upstream_requests "$UP_v2")
	[[ $r1 =~ ^[0-9]+$ && $r2 =~ ^[0-9]+$ ]] || { log "cannot read upstream counters"; return 1; }
	served=$((r1 + r2))
	local reqs dur cpu_us other_us
	reqs=$(field requests "$line")
	dur=$(field duration_us "$line")
	cpu_us=$(((t1 - t0) * 1000000 / CLK_TCK))
	# Whatever else kept the proxy's CPU busy: other processes of a shared
	# machine, and interrupt time the kernel did not charge to the proxy.
	other_us=$(((b1 - b0 - (t1 - t0)) * 1000000 / CLK_TCK))
	RESULTS+=("$(awk -v peer="$peer" -v c="$conns" -v reqs="$reqs" -v dur="$dur" \
		-v p50="$(field p50_us "$line")" -v p99="$(field p99_us "$line")" \
		-v cpu="$cpu_us" -v served="$served" -v v2="$r2" \
		-v n2="$(field non2xx "$line")" -v se="$(field sockerr "$line")" \
		-v rss="$(peak_rss_kib "$PEER_PID")" -v other="$other_us" 'BEGIN {
			if (other < 0) other = 0
			printf "%s %d %.0f %d %d %.2f %.0f %.2f %d %d %d %.0f\n", peer, c, reqs / (dur / 1e6), p50, p99,
				(served ? cpu / served : 0), 100 * cpu / dur, (served ? 100 * v2 / served : 0), n2, se, rss,
				100 * other / dur
		}')")
	log "  $peer -c $conns: ${RESULTS[-1]}"
}

bench_peer() { # PEER
	local peer=$1 port c
	CUR_PEER=$peer
	port=$(free_port)
	log "== $peer"
	if ! "start_$peer" "$port"; then
		log "  skipping $peer: it did not start (see above)"
		[[ -n ${PEER_PID:-} ]] && { stop "$PEER_PID"; forget "$PEER_PID"; }
		SKIPPED+=("$peer")
		return 0
	fi
	run_wrk "$port" "${CONNS%% *}" "$WARMUP" >/dev/null || true
	for c in $CONNS; do
		measure "$peer" "$port" "$c" || log "  $peer -c $c: measurement failed"
	done
	stop "$PEER_PID"
	forget "$PEER_PID"
	PEER_PID=""
}

# ---------------------------------------------------------------- report

report() {
	local machine
	machine="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)"
	echo "# Proxy benchmark: Aviary vs nginx vs HAProxy vs plain Go proxy"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- machine: $machine"
	echo "- peers: $(nginx -v 2>&1 | sed 's/.*version: //'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'), $(go version | awk '{print $3}'), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
	echo "- load: wrk -t1, ${DURATION}s per row after ${WARMUP}s warm-up; ${BODY_BYTES}-byte responses; 90/10 split v1/v2"
	echo "- load average before / after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- pinning: proxy on CPU $PROXY_CPU (Go peers GOMAXPROCS=1, nginx 1 worker, HAProxy 1 thread); wrk + upstreams on CPU $LOAD_CPU"
	((${#SKIPPED[@]} == 0)) || echo "- skipped (did not build or start): ${SKIPPED[*]}"
	echo
	echo "| proxy | conns | req/s | p50 ms | p99 ms | CPU µs/req | proxy CPU % | v2 share % | non-2xx | sock err | peak RSS MiB | CPU $PROXY_CPU others % | req/s vs nginx | CPU/req vs nginx |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	local row
	for row in "${RESULTS[@]}"; do
		# shellcheck disable=SC2086
		set -- $row
		local base
		base=$(printf '%s\n' "${RESULTS[@]}" | awk -v c="$2" '$1 == "nginx" && $2 == c {print $3, $6; exit}')
		awk -v base="$base" -v row="$row" -v NOISY="$NOISY_PCT" 'BEGIN {
			split(row, f, " "); split(base, b, " ")
			rr = (b[1] > 0) ? sprintf("%.2f", f[3] / b[1]) : "n/a"
			cr = (b[2] > 0) ? sprintf("%.2f", f[6] / b[2]) : "n/a"
			noisy = (f[12] > NOISY) ? " ⚠" : ""
			printf "| %s | %d | %d | %.3f | %.3f | %.1f | %.0f | %.1f | %d | %d | %.1f | %.0f%s | %s | %s |\n",
				f[1], f[2], f[3], f[4] / 1000, f[5] / 1000, f[6], f[7], f[8], f[9], f[10], f[11] / 1024, f[12], noisy, rr, cr
		}'
	done
	echo
	echo "⚠: something else used more than ${NOISY_PCT}% of CPU $PROXY_CPU during that row; its req/s and latency"
	echo "are not comparable (CPU µs/req usually still is). Run again on a quieter machine."
}

# ---------------------------------------------------------------- main

main() {
	[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 600 ]] || die "DURATION=$DURATION: want 1..600 seconds"
	[[ $WARMUP =~ ^[0-9]+$ && $WARMUP -ge 1 ]] || die "WARMUP=$WARMUP: want a whole number of seconds >= 1"
	((${#CONNS} > 0)) || die "CONNS is empty"
	(($(nproc) >= 2)) || die "need 2 CPUs to pin the proxy apart from the load; this machine has $(nproc)"
	ensure_tools
	command -v go >/dev/null || die "go is not on PATH"
	CLK_TCK=$(getconf CLK_TCK)
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	SKIPPED=()
	PEER_PID=""

	build aviary-upstream ./cmd/aviary-upstream || die "cannot run without the upstream"
	build plainproxy ./bench/plainproxy || true
	if [[ -n ${AVIARY_BIN:-} ]]; then
		cp "$AVIARY_BIN" "$BIN/aviary" || die "AVIARY_BIN=$AVIARY_BIN: cannot copy it"
	elif [[ " $PROXIES " == *" aviary"* ]]; then
		build aviary ./cmd/aviary || true
	fi
	write_wrk_script

	start_upstream v1
	start_upstream v2
	log "upstreams: v1=$UP_v1 v2=$UP_v2"

	local peer
	for peer in $PROXIES; do
		declare -F "start_$peer" >/dev/null || die "unknown proxy $peer in PROXIES (known: nginx haproxy plain aviary aviary-flags)"
		bench_peer "$peer"
	done

	mkdir -p "$(dirname "$OUT")"
	report | tee "$OUT"
	log "written to $OUT"
}

main "$@"
