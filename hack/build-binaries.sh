#!/usr/bin/env bash
# Builds (or finds) the pinned Kubernetes and etcd binaries and prints the directory holding them.
#
# Lookup order:
#   1. $KUBEBUILDER_ASSETS (the envtest convention) when it holds the control plane; envtest
#      asset directories never carry kubelet or kube-proxy, so those are not asked of it;
#   2. the version-keyed cache under ${XDG_CACHE_HOME:-~/.cache}/videojob/;
#   3. a build from the Go module proxy (hack/k8s, hack/etcd), written into that cache; only the
#      binaries the cache lacks are built, so a cache made before kubelet was added is topped up.
# Progress goes to stderr; the only line on stdout is the binary directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
ETCD_VERSION=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
# The real-node mode of hack/localcluster runs these on each node.
NODE=(kubelet kube-proxy)
NEEDED=("${CONTROL_PLANE[@]}" "${NODE[@]}")

has_all() {
  local dir=$1 b
  shift
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS" "${CONTROL_PLANE[@]}"; then
  echo "using binaries from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}
bin=$cache/bin
if has_all "$bin" "${NEEDED[@]}"; then
  echo "$bin"
  exit 0
fi
missing=()
for b in "${NEEDED[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done

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

pkgs=()
for b in "${missing[@]}"; do [ "$b" = etcd ] || pkgs+=("k8s.io/kubernetes/cmd/$b"); done
start=$(date +%s)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "building Kubernetes $K8S_VERSION (${pkgs[*]##*/}) into $bin" >&2
  (cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") >&2
fi
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd $ETCD_VERSION" >&2
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .) >&2
fi
# Move into place only once everything built, so an interrupted build never looks complete.
mv "$tmp"/* "$bin/"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
