#!/usr/bin/env bash
# The one test command: installs what the tests need on a bare machine, then runs format, vet,
# staticcheck, the race-enabled test suite, a short fuzz of the rich inputs, the end-to-end suite,
# and the Kubernetes-mode suite against a real API server (scripts/test-k8s.sh); the unit suite
# runs once more with the CPUs busy (scripts/test-busy.sh), where a wait on time fails.
# Usage: scripts/test.sh            (everything; a few minutes)
#        QUICK=1 scripts/test.sh    (skip the fuzz runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v staticcheck >/dev/null 2>&1; then
	echo "installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
bash scripts/prometheus.sh   # a real Prometheus for the Prometheus provider's tests

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "these files need gofmt -w:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...
go vet -tags k8s ./internal/k8s/...

step "staticcheck"
staticcheck ./...
staticcheck -tags e2e ./test/...
staticcheck -tags k8s ./internal/k8s/...

step "go build"
go build ./...

step "go test -race"
go test -race -count=1 -timeout 10m ./...

step "go test with the CPUs busy (a CPU hog per core at normal priority)"
bash scripts/test-busy.sh unit

if [ -z "${QUICK:-}" ]; then
	step "fuzz (short runs of the rich inputs)"
	go test ./internal/config/ -run '^$' -fuzz '^FuzzParse$' -fuzztime 15s
	go test ./internal/gateway/ -run '^$' -fuzz '^FuzzCookieAndQuery$' -fuzztime 15s
fi
step "end-to-end suite (the real binary, kill -9 under load)"
bash scripts/test-e2e.sh
step "Kubernetes mode against a real kube-apiserver and etcd (first run builds them: ~12 min)"
bash scripts/test-k8s.sh
step "all tests passed"
