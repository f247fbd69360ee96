#!/usr/bin/env bash
# The Kubernetes-mode suite: builds kube-apiserver and etcd once (scripts/k8s-assets.sh; cold about
# 12 minutes, then cached), then runs the tests tagged k8s against them through envtest. They
# need a Prometheus too (scripts/prometheus.sh installs it), and root for the gateway fleet's network
# namespace.
# Usage: scripts/test-k8s.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
# The same settings as the apiserver's build, so the test build reuses its compiled packages.
export CGO_ENABLED=0
KUBEBUILDER_ASSETS=$(bash scripts/k8s-assets.sh)
export KUBEBUILDER_ASSETS
bash scripts/prometheus.sh
# The gateway fleet's tests (internal/k8s/replica) put their upstreams in a network namespace, since
# the API server refuses loopback addresses in EndpointSlices: they need root and iproute2's ip.
if ! command -v ip >/dev/null 2>&1; then
	apt-get install -y -q iproute2
fi
go test -tags k8s -count=1 -timeout 15m "$@" ./internal/k8s/... ./cmd/aviary/
