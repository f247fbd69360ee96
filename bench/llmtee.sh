#!/usr/bin/env bash
# bench/llmtee.sh — what reading LLM streams costs Aviary's gateway, as the gateway process's own
# CPU per request. One aviary-fakellm serves OpenAI chat streams of TOKENS one-token chunks, a token
# every TOKEN_EVERY (so each chunk is its own read and write, as with a real model); the same aviary
# binary proxies them with and without `llm: {api: openai}` (the tee, the parser, the request
# reading, the measurements), in alternating rounds so that drift on the machine falls on both.
#
# The gateway runs alone on CPU 0 (GOMAXPROCS=1); wrk and the fake model share CPU 1. Its CPU is
# read from /proc before and after each measured run, so the figure is the gateway's alone.
#
# Then, with LAT_STREAMS streams in flight, bench/firsttoken measures how long each stream's first token takes
# from the fake model's write (stamped into the chunk) to the client's read: straight from the
# model (direct), through the plain gateway, and through the gateway with the tee.
#
# Environment:
#   ROUNDS=3            plain/tee pairs measured
#   DURATION=10         seconds measured per run
#   WARMUP=2            seconds of load before each run (not counted)
#   CONNS=64            wrk connections (streams in flight)
#   TOKENS=200          content chunks per stream
#   TOKEN_EVERY=1ms     pace between chunks
#   TTFT=20ms           the model's time to first token (so the first token travels alone, after
#                       the headers, as with a real model)
#   LAT_STREAMS=8       streams in flight while the first token is timed
#   OUT=bench/results/llm-tee-latest.md   where the table is written
#
# Only 127.0.0.1 is used; everything started here is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
TOKENS=${TOKENS:-200}
TOKEN_EVERY=${TOKEN_EVERY:-1ms}
TTFT=${TTFT:-20ms}
LAT_STREAMS=${LAT_STREAMS:-8}
OUT=${OUT:-$ROOT/bench/results/llm-tee-latest.md}
GW_CPU=0
LOAD_CPU=1

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
HZ=$(getconf CLK_TCK)
UP=""     # host:port of the fake model
RESULT="" # what measure and first_token found

for tool in wrk curl taskset; do
	command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y wrk curl util-linux"
done

start_model() {
	local pf="$TMP/fakellm.addr"
	GOMAXPROCS=1 taskset -c "$LOAD_CPU" "$BIN/aviary-fakellm" --listen 127.0.0.1:0 --port-file "$pf" \
		--ttft "$TTFT" --token-every "$TOKEN_EVERY" --output-tokens "$TOKENS" --stamp >"$TMP/fakellm.log" 2>&1 &
	PIDS+=("$!")
	wait_ready "$!" test -s "$pf" || die "aviary-fakellm did not start: $(cat "$TMP/fakellm.log")"
	UP=$(tr -d '\n' <"$pf")
}

# start_gateway MODE PORT ADMIN: aviary serving the fake model, with the LLM tee when MODE is tee.
start_gateway() {
	local mode=$1 port=$2 admin=$3 d="$TMP/$1" llm=""
	[[ $mode == tee ]] && llm=$'\n    llm: {api: openai}'
	rm -rf "$d" && mkdir -p "$d"
	cat >"$d/aviary.yaml" <<EOF
gateway: {listen: "127.0.0.1:$port"}
admin: {listen: "127.0.0.1:$admin"}
services:
  - name: chat
    match: {pathPrefix: "/"}$llm
    versions: [{name: v1, endpoints: ["http://$UP"]}]
EOF
	(cd "$d" && GOMAXPROCS=1 exec taskset -c "$GW_CPU" "$BIN/aviary" serve --config "$d/aviary.yaml") \
		>"$d/stdout.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	wait_ready "$GW_PID" http_ok "http://127.0.0.1:$admin/readyz" || { tail -20 "$d/stdout.log" >&2; return 1; }
	wait_ready "$GW_PID" port_open "$port" || { tail -20 "$d/stdout.log" >&2; return 1; }
}

write_wrk_script() {
	cat >"$TMP/chat.lua" <<'EOF'
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"m","stream":true,"messages":[{"role":"user","content":"hello there"}]}'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("AVIARY_WRK requests=%d bytes=%d non2xx=%d sockerr=%d\n", summary.requests,
    summary.bytes, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
}

run_wrk() { # PORT SECONDS -> the AVIARY_WRK line
	local out
	out=$(taskset -c "$LOAD_CPU" timeout $(($2 + 30)) wrk -t1 -c"$CONNS" -d"$2s" --timeout 5s \
		-s "$TMP/chat.lua" "http://127.0.0.1:$1" 2>&1) || { log "wrk failed: $out"; return 1; }
	grep '^AVIARY_WRK ' <<<"$out" || { log "wrk printed no report: $out"; return 1; }
}

field() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<" $2"; } # field NAME LINE

# check_tee PORT ADMIN MODE: a stream goes through whole, and the tee measured it only in tee mode.
check_tee() {
	local body tokens
	body=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
		-d '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
		"http://127.0.0.1:$1/v1/chat/completions") || die "$3: the stream failed"
	[[ $(grep -c '"content"' <<<"$body") -ge $TOKENS ]] || die "$3: the stream came back short"
	tokens=$(curl -fsS --max-time 2 "http://127.0.0.1:$2/metrics" | grep -c '^gen_ai_server_time_to_first_token_seconds_count' || true)
	if [[ $3 == tee ]]; then ((tokens > 0)) || die "tee: the gateway measured no time to first token"; fi
	if [[ $3 == plain ]]; then ((tokens == 0)) || die "plain: the gateway measured LLM traffic"; fi
}

# measure MODE sets RESULT to "cpu_us_per_req requests non2xx sockerr".
# It runs in this shell, not in $(…), so that the gateway it starts is in PIDS for the exit trap.
measure() {
	local mode=$1 port admin t0 t1 line req
	port=$(free_port) admin=$(free_port)
	start_gateway "$mode" "$port" "$admin" || die "aviary ($mode) did not start"
	check_tee "$port" "$admin" "$mode"
	run_wrk "$port" "$WARMUP" >/dev/null
	t0=$(cpu_ticks "$GW_PID")
	line=$(run_wrk "$port" "$DURATION")
	t1=$(cpu_ticks "$GW_PID")
	stop "$GW_PID"
	forget "$GW_PID"
	req=$(field requests "$line")
	((req > 0)) || die "$mode: no request completed"
	RESULT="$(((t1 - t0) * 1000000 / HZ / req)) $req $(field non2xx "$line") $(field sockerr "$line")"
}

# first_token MODE sets RESULT to "streams p50 p90 p99 max errors" (µs): the first token's trip.
# Like measure, it runs in this shell.
first_token() {
	local mode=$1 port admin url line
	url="http://$UP/v1/chat/completions"
	if [[ $mode != direct ]]; then
		port=$(free_port) admin=$(free_port)
		start_gateway "$mode" "$port" "$admin" || die "aviary ($mode) did not start"
		url="http://127.0.0.1:$port/v1/chat/completions"
	fi
	line=$(taskset -c "$LOAD_CPU" "$BIN/firsttoken" -url "$url" -streams "$LAT_STREAMS" -duration "${DURATION}s") ||
		die "$mode: firsttoken failed"
	if [[ $mode != direct ]]; then
		stop "$GW_PID"
		forget "$GW_PID"
	fi
	RESULT="$(field streams "$line") $(field p50_us "$line") $(field p90_us "$line") $(field p99_us "$line") $(field max_us "$line") $(field errors "$line")"
}

median() { tr ' ' '\n' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

main() {
	log "building aviary and aviary-fakellm"
	build aviary ./cmd/aviary || exit 1
	build aviary-fakellm ./cmd/aviary-fakellm || exit 1
	build firsttoken ./bench/firsttoken || exit 1
	write_wrk_script
	start_model
	local plain=() tee=() diffs=() rows=() r m
	for ((r = 1; r <= ROUNDS; r++)); do
		for m in plain tee; do
			log "round $r/$ROUNDS: $m (${WARMUP}s warm-up, ${DURATION}s measured)"
			measure "$m"
			read -r cpu req non2xx sockerr <<<"$RESULT"
			log "  $cpu µs of gateway CPU per request over $req requests ($non2xx non-2xx, $sockerr socket errors)"
			[[ $m == plain ]] && plain+=("$cpu") || tee+=("$cpu")
			rows+=("| $r | $m | $req | $cpu | $non2xx / $sockerr |")
		done
		diffs+=($((tee[r - 1] - plain[r - 1])))
	done
	local lat_rows=() p99_direct=() p99_plain=() p99_tee=() streams p50 p90 p99 mx errs
	for ((r = 1; r <= ROUNDS; r++)); do
		for m in direct plain tee; do
			log "first token, round $r/$ROUNDS: $m (${DURATION}s)"
			first_token "$m"
			read -r streams p50 p90 p99 mx errs <<<"$RESULT"
			log "  p50 $p50 µs, p99 $p99 µs over $streams streams ($errs errors)"
			lat_rows+=("| $r | $m | $streams | $p50 | $p90 | $p99 | $mx | $errs |")
			declare -n into="p99_$m"
			into+=("$p99")
			unset -n into
		done
	done
	local mp mt md
	mp=$(median <<<"${plain[*]}") mt=$(median <<<"${tee[*]}") md=$(median <<<"${diffs[*]}")
	mkdir -p "$(dirname "$OUT")"
	{
		echo "# LLM tee: the gateway's CPU per streamed request, with and without \`llm: {api: openai}\`"
		echo
		echo "- run: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(go version | awk '{print $3}'), commit $(git -C "$ROOT" rev-parse --short HEAD)"
		echo "- load: wrk -t1 -c$CONNS, ${DURATION}s per run after ${WARMUP}s warm-up; streams of $TOKENS one-token chunks, the first after $TTFT, then one every $TOKEN_EVERY"
		echo "- pinning: gateway alone on CPU $GW_CPU (GOMAXPROCS=1); wrk and aviary-fakellm on CPU $LOAD_CPU"
		echo "- command: ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS TOKENS=$TOKENS TTFT=$TTFT TOKEN_EVERY=$TOKEN_EVERY LAT_STREAMS=$LAT_STREAMS bench/llmtee.sh"
		echo
		echo "| round | gateway | requests | gateway CPU µs / request | non-2xx / socket errors |"
		echo "| ---: | --- | ---: | ---: | ---: |"
		printf '%s\n' "${rows[@]}"
		echo
		echo "Medians: plain $mp µs, tee $mt µs per request. Tee minus plain, round by round: ${diffs[*]} µs;" \
			"median $md µs per request, $(awk -v d="$md" -v n="$TOKENS" 'BEGIN {printf "%.0f", d * 1000 / n}') ns per chunk," \
			"$(awk -v d="$md" -v t="$mt" 'BEGIN {printf "%.1f", d * 100 / t}')% of the gateway's CPU per request."
		echo
		echo "## First token: from the model's write to the client's read (µs), $LAT_STREAMS streams in flight"
		echo
		echo "| round | path | streams | p50 | p90 | p99 | max | errors |"
		echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		printf '%s\n' "${lat_rows[@]}"
		echo
		echo "Median p99: direct $(median <<<"${p99_direct[*]}") µs, plain gateway $(median <<<"${p99_plain[*]}") µs," \
			"gateway with the tee $(median <<<"${p99_tee[*]}") µs."
	} | tee "$OUT"
	log "written to $OUT"
}

main "$@"
