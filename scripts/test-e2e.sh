#!/usr/bin/env bash
# The end-to-end tests: they build and run the real binaries (aviary, aviary-upstream) on
# 127.0.0.1 and take a minute or two, so the everyday `go test ./...` leaves them out (build tag
# e2e). The crash test (test/crash) kills aviary with SIGKILL again and again under load; the
# analysis test (test/analysis) rolls back an erroring canary and promotes healthy ones under load.
# The LLM suite (test/llm) also runs the official OpenAI and Anthropic Node SDKs against the real
# binaries (npm ci in test/llm/clients; needs node and npm, or AVIARY_SKIP_NODE=1). The flag suite
# (test/flags) runs the OpenFeature Node server SDK and, in Debian's headless Chromium, the web SDK,
# both with their OFREP providers (npm ci in test/flags/sdk). The dashboard suite (test/web) drives
# headless Chromium against the real aviary binary; its screenshots go to $AVIARY_SCREENSHOTS
# (default: a temp dir). scripts/chromium.sh installs Debian's chromium for both.
# Usage: scripts/test-e2e.sh
#        AVIARY_CRASH_KILLS=100 AVIARY_CRASH_SECONDS=300 scripts/test-e2e.sh   (a longer crash run)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

step() { printf '\n== %s\n' "$*"; }

step "chromium (for the browser tests: the web SDK suite, the dashboard)"
scripts/chromium.sh

step "go vet (e2e)"
go vet -tags e2e ./test/...

step "go test -tags e2e ./test/... (kills: ${AVIARY_CRASH_KILLS:-25}, seconds: ${AVIARY_CRASH_SECONDS:-60})"
start=$(date +%s)
# The demos (test/demo) run after the other suites, on their own: they are timed stories of a
# judge on live latency, and the browsers, the crash test's fsync storms and the load suites
# running beside them on two cores made their healthy canaries' latency too noisy to pass a step
# within the demo's minutes. -v streams each kill's outcome and the summary as they happen.
others=$(go list -tags e2e ./test/... | grep -v '/test/demo$')
# shellcheck disable=SC2086
if ! go test -tags e2e -race=false -count=1 -parallel 4 -timeout 10m -v $others; then
	step "end-to-end tests FAILED after $(( $(date +%s) - start ))s"
	exit 1
fi
step "the demos, on their own"
if ! go test -tags e2e -race=false -count=1 -timeout 10m -v ./test/demo/; then
	step "end-to-end tests FAILED (the demos) after $(( $(date +%s) - start ))s"
	exit 1
fi
step "end-to-end tests passed in $(( $(date +%s) - start ))s"
