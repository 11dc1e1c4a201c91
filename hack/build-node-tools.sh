#!/usr/bin/env bash
# Builds (or finds) the helpers the local cluster's real nodes run and prints the directory
# holding them: device-plugin and pause (hack/node), coredns (hack/coredns) and registry
# (hack/registry), all static (CGO_ENABLED=0) so they run in any container or on any host.
#
# The cache directory, ${XDG_CACHE_HOME:-~/.cache}/videojob/node-tools-<hash>/, is keyed by a
# hash of the three modules' go.mod, go.sum and non-test Go files and of this script, so any
# change to what is built or how rebuilds it.
# Progress goes to stderr; the only line on stdout is the binary directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NEEDED=(device-plugin pause coredns registry)

hash=$(cd "$here" && {
  find node coredns registry -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) \
    ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum
  sha256sum build-node-tools.sh
} | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/node-tools-$hash
bin=$cache/bin

has_all() {
  local b
  for b in "${NEEDED[@]}"; do [ -x "$bin/$b" ] || return 1; done
}
if has_all; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the node tools" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0

# build NAME MODULE_DIR EXTRA_LDFLAGS PACKAGE...: one `go build` into $tmp, timed.
build() {
  local name=$1 dir=$2 ldflags="-s -w $3" t0
  shift 3
  echo "building $name" >&2
  t0=$(date +%s)
  (cd "$here/$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@") >&2
  echo "built $name in $(( $(date +%s) - t0 ))s" >&2
}

version_of() { awk -v m="$2" '$1 == "require" && $2 == m {print $3}' "$here/$1/go.mod"; }
REGISTRY_VERSION=$(version_of registry github.com/distribution/distribution/v3)

start=$(date +%s)
build "device-plugin, pause" node "" ./cmd/device-plugin ./cmd/pause
# -o into a directory names each binary after its package path: coredns, registry.
build "coredns $(version_of coredns github.com/coredns/coredns)" coredns "" .
# Without the stamp, `registry --version` reports the release with "+unknown" appended.
build "registry $REGISTRY_VERSION" registry \
  "-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
  github.com/distribution/distribution/v3/cmd/registry
# Move into place only once everything built, so an interrupted build never looks complete.
mv "$tmp"/* "$bin/"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
