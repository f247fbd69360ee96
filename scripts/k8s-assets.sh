#!/usr/bin/env bash
# Builds the control plane the Kubernetes-mode tests run against: a real kube-apiserver (from
# k8s.io/kubernetes) and a real etcd (from go.etcd.io/etcd/server/v3), both from the Go module
# proxy, into a cache folder. envtest (sigs.k8s.io/controller-runtime/pkg/envtest) starts them from
# KUBEBUILDER_ASSETS. Does nothing when both binaries are there already.
#
# Cold (empty module cache) this takes about 12 minutes and 2.5 GB of memory for the link; after
# that, nothing. Everything is built with CGO_ENABLED=0 and without -trimpath, the same way
# `go test` builds, so the tests reuse the compiled Kubernetes packages from the build cache.
#
# Usage: scripts/k8s-assets.sh        prints the folder to use as KUBEBUILDER_ASSETS
# Env:   AVIARY_K8S_ASSETS            where to put the binaries (default ~/.cache/aviary/k8s-v1.37.2)
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
export CGO_ENABLED=0

k8s=v1.37.2      # kube-apiserver
staging=v0.37.2  # the published k8s.io/* staging modules of that release
etcd=v3.7.3      # Debian's etcd 3.4 breaks watches ("Too large resource version"); build our own

dir=${AVIARY_K8S_ASSETS:-$HOME/.cache/aviary/k8s-$k8s}
if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$dir"
log() { printf 'k8s-assets: %s\n' "$*" >&2; }

# kube-apiserver. k8s.io/kubernetes refers to its staging modules through replace directives to
# local folders, which a module outside its repository cannot use; a small build module replaces
# each with its published version instead. The list comes from the kubernetes go.mod itself. The
# two sample modules are left out: the proxy does not serve them and nothing here builds them.
apiserver_mod=$(mktemp -d)
etcd_mod=$(mktemp -d)
trap 'rm -rf "$apiserver_mod" "$etcd_mod"' EXIT
if [ ! -x "$dir/kube-apiserver" ]; then
	log "downloading k8s.io/kubernetes@$k8s (cold: a few minutes)"
	gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
	{
		echo "module aviary.dev/k8s-assets/apiserver"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $k8s"
		echo
		sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" |
			grep -v -e '^k8s.io/sample-controller$' -e '^k8s.io/sample-cli-plugin$' |
			while read -r m; do echo "replace $m => $m $staging"; done
	} >"$apiserver_mod/go.mod"
	(
		cd "$apiserver_mod"
		printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
		log "resolving kube-apiserver's modules"
		go mod tidy >&2
		log "building kube-apiserver (cold: several minutes)"
		go build -o "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	)
fi

# etcd: its server module holds etcdmain; a three-line main runs it as etcd's own main does.
if [ ! -x "$dir/etcd" ]; then
	(
		cd "$etcd_mod"
		printf 'module aviary.dev/k8s-assets/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd" >go.mod
		printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >main.go
		log "resolving etcd's modules"
		go mod tidy >&2
		log "building etcd"
		go build -o "$dir/etcd" .
	)
fi
log "kube-apiserver $("$dir/kube-apiserver" --version 2>&1 | head -1), etcd $("$dir/etcd" --version 2>&1 | head -1)"
echo "$dir"
