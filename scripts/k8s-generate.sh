#!/usr/bin/env bash
# Generates the Rollout CRD (deploy/crds) and the API's deep-copy functions from the Go types in
# internal/k8s/api/v1alpha1, with controller-gen. Run it after editing those types, and commit
# what it writes. (allowDangerousTypes: margins are float64, as in the config file.)
# Usage: scripts/k8s-generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"
if ! command -v controller-gen >/dev/null 2>&1; then
	echo "installing controller-gen"
	go install sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
fi
controller-gen object paths=./internal/k8s/api/...
controller-gen crd:allowDangerousTypes=true paths=./internal/k8s/api/... output:crd:artifacts:config=deploy/crds
echo "generated deploy/crds and internal/k8s/api/v1alpha1/zz_generated.deepcopy.go"
