#!/usr/bin/env bash
# Builds (or finds) the pinned Kubernetes and etcd binaries and prints the directory holding them.
#
# Lookup order:
#   1. $KUBEBUILDER_ASSETS (the envtest convention) when it holds every binary we need;
#   2. the version-keyed cache under ${XDG_CACHE_HOME:-~/.cache}/videojob/;
#   3. a build from the Go module proxy (hack/k8s, hack/etcd), written into that cache.
# Progress goes to stderr; the only line on stdout is the binary directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
ETCD_VERSION=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
NEEDED=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

has_all() {
  local dir=$1 b
  for b in "${NEEDED[@]}"; do [ -x "$dir/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "using binaries from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}
bin=$cache/bin
if has_all "$bin"; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build Kubernetes $K8S_VERSION" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w"
# Stamp the version the way the release build does, so `kubectl version` and the API server's
# /version report the pinned release instead of v0.0.0-master.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) into $bin" >&2
start=$(date +%s)
(cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl) >&2
echo "building etcd $ETCD_VERSION" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .) >&2
# Move into place only once everything built, so an interrupted build never looks complete.
mv "$tmp"/* "$bin/"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
