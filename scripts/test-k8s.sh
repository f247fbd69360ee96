#!/usr/bin/env bash
# The Kubernetes-mode suite: builds kube-apiserver and etcd once (scripts/k8s-assets.sh; cold about
# 12 minutes, then cached), then runs the tests tagged k8s against them through envtest. They
# need a Prometheus too (scripts/prometheus.sh installs it).
# Usage: scripts/test-k8s.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
# The same settings as the apiserver's build, so the test build reuses its compiled packages.
export CGO_ENABLED=0
KUBEBUILDER_ASSETS=$(bash scripts/k8s-assets.sh)
export KUBEBUILDER_ASSETS
bash scripts/prometheus.sh
go test -tags k8s -count=1 -timeout 15m "$@" ./internal/k8s/... ./cmd/aviary/
