#!/usr/bin/env bash
# The tests on a loaded machine: runs the unit suite (go test -count=1 ./...) and/or the
# Kubernetes-mode suite (scripts/test-k8s.sh) while CPU hogs compete at normal priority, one per
# CPU (`yes >/dev/null`), so that a test that waits on time rather than on a condition shows it.
# The hogs are killed by PID when the script ends, however it ends.
# Usage: scripts/test-busy.sh [unit|k8s|all]   (default all)
# Env:   BUSY_HOGS   how many hogs (default: the number of CPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
what=${1:-all}
case $what in
unit | k8s | all) ;;
*)
	echo "usage: scripts/test-busy.sh [unit|k8s|all] (got $what)" >&2
	exit 2
	;;
esac

hogs=()
stop_hogs() {
	for pid in "${hogs[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${hogs[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The packages build before the hogs start: the load is on the tests, not the compiler.
go test -count=1 -run '^$' ./... >/dev/null
n=${BUSY_HOGS:-$(nproc)}
for _ in $(seq "$n"); do
	yes >/dev/null &
	hogs+=($!)
done
echo "test-busy: $n CPU hogs running (PIDs ${hogs[*]})"

if [ "$what" != k8s ]; then
	echo "test-busy: go test -count=1 ./..."
	go test -count=1 -timeout 15m ./...
fi
if [ "$what" != unit ]; then
	echo "test-busy: the Kubernetes-mode suite"
	bash scripts/test-k8s.sh
fi
echo "test-busy: passed with $n CPU hogs"
