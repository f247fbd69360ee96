# shellcheck shell=bash
# bench/lib.sh — what the benchmark scripts share: a temporary folder, processes started and
# stopped by PID, builds, ports, readiness, and CPU and memory read from /proc. Sourced, not run.
# The caller sets ROOT (the repository) first.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/aviary-bench.XXXXXX")
BIN=$TMP/bin # built binaries; each peer's files are in $TMP/<peer>/
mkdir -p "$BIN"
PIDS=()           # every process started here that is still running

log() { printf '%s\n' "$*" >&2; }
die() { log "${0##*/}: $*"; exit 1; }

# stop PID: TERM, wait up to 5 s, then KILL. Only PIDs this script started.
stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop "$pid"; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # remove a stopped PID from PIDS
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# build NAME PKG: go build PKG into $BIN/NAME; prints why and fails if it does not build.
build() {
	if ! (cd "$ROOT" && go build -o "$BIN/$1" "$2") >"$TMP/build-$1.log" 2>&1; then
		log "build of $2 failed:"
		sed 's/^/    /' "$TMP/build-$1.log" | head -20 >&2
		return 1
	fi
}

# ---------------------------------------------------------------- processes

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { # a port nothing listens on now (raced only by other processes)
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		port_open "$p" || { echo "$p"; return 0; }
	done
	die "no free port found"
}

# wait_ready PID CHECK...: run CHECK until it succeeds (10 s at most) while PID lives.
wait_ready() {
	local pid=$1 i
	shift
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

http_ok() { curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; }

pids_of() { # PID and all its descendants
	local c
	echo "$1"
	for c in $(pgrep -P "$1" 2>/dev/null); do pids_of "$c"; done
}

cpu_ticks() { # utime+stime of PID and its descendants, in clock ticks
	local total=0 p s f
	for p in $(pids_of "$1"); do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) } # the command name may contain spaces; fields start after it
		read -ra f <<<"$s"
		total=$((total + f[11] + f[12])) # fields 14 and 15 of proc(5)
	done
	echo "$total"
}

cpu_busy_ticks() { # CPU N: ticks spent not idle since boot, from /proc/stat
	awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

peak_rss_kib() { # sum of VmHWM over PID and its descendants
	local total=0 p v
	for p in $(pids_of "$1"); do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
