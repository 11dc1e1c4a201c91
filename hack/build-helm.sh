#!/usr/bin/env bash
# Builds (or finds in the cache) the pinned helm and prints its path.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELM_VERSION=$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" {print $3}' "$here/helm/go.mod")
bin=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/helm-${HELM_VERSION}/bin
if [ ! -x "$bin/helm" ]; then
  command -v go >/dev/null || { echo "go is required to build helm $HELM_VERSION" >&2; exit 1; }
  mkdir -p "$bin"
  echo "building helm $HELM_VERSION into $bin" >&2
  start=$(date +%s)
  (cd "$here/helm" && go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    -o "$bin/helm.tmp" helm.sh/helm/v4/cmd/helm) >&2
  mv "$bin/helm.tmp" "$bin/helm"
  echo "built in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin/helm"
