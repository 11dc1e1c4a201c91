#!/usr/bin/env bash
# Builds the project's images with Debian's podman (no Docker engine, no registry reachable):
#   localhost/videojob/operator:<version>   localhost/videojob/worker:<version>
#   localhost/videojob/gateway:<version>    the HTTP API (docs/http-api.md)
#   localhost/videojob/redis:7.0            the chart's bundled Redis (Debian's redis-server)
#   localhost/videojob/postgres:15          the chart's bundled archive (Debian's PostgreSQL)
#   localhost/videojob/pause:3.10           with --node-images, or when hack/build-node-tools.sh
#   localhost/videojob/coredns:<version>    exists: the real nodes' sandbox image and cluster DNS
# and prints one line per image on stdout: `<name> <reference>`.
#
#   hack/build-images.sh [--node-images | --no-node-images] [--push REGISTRY] [NAME...]
#
# NAMEs (operator worker gateway redis postgres pause coredns) build only those; naming pause or coredns needs the
# node binaries as --node-images does.
# --push REGISTRY (e.g. 127.0.0.1:5000, plain HTTP) pushes each image to
# REGISTRY/videojob/<name>:<tag>, and the printed references are those, with the digest pushed
# (REGISTRY/videojob/<name>:<tag>@sha256:…). NODE_TOOLS_DIR=DIR takes
# the static `pause` and `coredns` binaries from DIR instead of running hack/build-node-tools.sh.
#
# The base image (Debian bookworm + python3) is made with debootstrap, since no registry is
# reachable, and imported as localhost/videojob-base:bookworm. Both the base's root filesystem and
# podman's layer storage live outside the repository and are reused: a warm rebuild only re-runs
# the layers whose inputs changed. Elsewhere, `docker build --build-arg BASE_IMAGE=...` works
# with the same Dockerfiles (docs/images.md).
set -euo pipefail
cd "$(dirname "$0")/.."

push=""
node_images=auto
names=()
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=${2:?--push needs a registry, e.g. 127.0.0.1:5000}; shift 2 ;;
    --push=*) push=${1#--push=}; shift ;;
    --node-images) node_images=yes; shift ;;
    --no-node-images) node_images=no; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    operator|worker|gateway|redis|postgres|pause|coredns) names+=("$1"); shift ;;
    *) echo "unknown argument: $1 (hack/build-images.sh --help)" >&2; exit 2 ;;
  esac
done
wanted() { [ ${#names[@]} -eq 0 ] || [[ " ${names[*]} " == *" $1 "* ]]; }
if [ ${#names[@]} -gt 0 ]; then
  if wanted pause || wanted coredns; then node_images=yes; else node_images=no; fi
fi

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/images
base=localhost/videojob-base:bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# runc from Debian (crun fails on this machine's cgroup layout); vfs storage needs no kernel
# overlay support inside containers.
podman=(podman --storage-driver vfs --cgroup-manager cgroupfs --runtime /usr/sbin/runc)

need=()
command -v podman >/dev/null || need+=(podman)
[ -x /usr/sbin/runc ] || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v newuidmap >/dev/null || need+=(uidmap)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]} (install them, or run as root)" >&2; exit 1; }
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real nodes' static binaries (pause, coredns), when wanted and to be had.
node_tools=""
if [ "$node_images" != no ]; then
  if [ -n "${NODE_TOOLS_DIR:-}" ]; then
    node_tools=$NODE_TOOLS_DIR
  elif [ -x hack/build-node-tools.sh ]; then
    node_tools=$(hack/build-node-tools.sh | tail -n 1)
  elif [ "$node_images" = yes ]; then
    echo "--node-images: no hack/build-node-tools.sh, and NODE_TOOLS_DIR is not set" >&2
    exit 1
  fi
  [ -z "$node_tools" ] || [ -x "$node_tools/pause" ] || node_tools=$node_tools/bin
  if [ -n "$node_tools" ] && { [ ! -x "$node_tools/pause" ] || [ ! -x "$node_tools/coredns" ]; }; then
    echo "no pause and coredns binaries in $node_tools" >&2
    exit 1
  fi
fi

started=$(date +%s)
if ! "${podman[@]}" image exists "$base"; then
  mkdir -p "$cache"
  if [ ! -f "$cache/base.tar" ]; then
    rm -rf "$cache/rootfs"
    echo "debootstrap bookworm (minbase) into $cache/rootfs" >&2
    debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log"
    chroot "$cache/rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates \
      >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/* \
      /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*'
    tar -C "$cache/rootfs" -c . > "$cache/base.tar.tmp"
    mv "$cache/base.tar.tmp" "$cache/base.tar"
    rm -rf "$cache/rootfs"
  fi
  "${podman[@]}" import --change 'CMD ["/bin/bash"]' "$cache/base.tar" "$base" >/dev/null
  echo "base image $base ready in $(( $(date +%s) - started ))s" >&2
fi

build_args=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
            -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg "BASE_IMAGE=$base")
[ -f /etc/pip.conf ] && build_args+=(-v /etc/pip.conf:/etc/pip.conf:ro)
# A hash of what goes into an image (files, folders' files); an image built from the same inputs
# is reused as it is (podman's layer cache alone still copies every layer on vfs, minutes for
# nothing). A file outside the repository (a node binary) counts by its name and content only.
inputs() {
  python3 - "$@" <<'PY'
import hashlib, pathlib, sys
cwd = pathlib.Path.cwd()
files = []
for arg in map(pathlib.Path, sys.argv[1:]):
    files += [p for p in arg.rglob("*") if p.is_file()
              and "__pycache__" not in p.parts and not p.suffix == ".pyc"
              and not any(part.endswith(".egg-info") for part in p.parts)] if arg.is_dir() else [arg]
def key(p):
    return str(p) if not p.is_absolute() else p.name
h = hashlib.sha256()
for p in sorted(files, key=key):
    h.update(key(p).encode() + b"\0" + p.read_bytes() + b"\0")
print(h.hexdigest())
PY
}
images=()   # "name tag", in build order
# build NAME TAG CONTEXT DOCKERFILE [--build-arg …] -- INPUT…
build() {
  local name=$1 tag=$2 context=$3 dockerfile=$4 t want have size
  shift 4
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  t=$(date +%s)
  images+=("$name $tag")
  want=$(inputs "$@")
  have=$("${podman[@]}" image inspect --format '{{index .Labels "dev.videojob.inputs"}}' "$tag" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "$tag is up to date (inputs $want)" >&2
    return
  fi
  "${podman[@]}" build "${build_args[@]}" ${args[@]+"${args[@]}"} --label "dev.videojob.inputs=$want" \
    -f "$dockerfile" -t "$tag" "$context" >&2
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
  echo "built $tag in $(( $(date +%s) - t ))s ($(( size / 1048576 )) MiB)" >&2
}

# README.md is copied too, but only as the package's long description: editing it does not
# warrant a rebuild.
wanted operator && build operator "localhost/videojob/operator:$version" . Dockerfile.operator \
  --build-arg "VERSION=$version" -- \
  Dockerfile.operator requirements/operator.lock pyproject.toml .dockerignore \
  operator/videojob_operator common
wanted worker && build worker "localhost/videojob/worker:$version" . Dockerfile.worker \
  --build-arg "VERSION=$version" -- \
  Dockerfile.worker requirements/worker.lock pyproject.toml .dockerignore worker_image common
wanted gateway && build gateway "localhost/videojob/gateway:$version" . Dockerfile.gateway \
  --build-arg "VERSION=$version" -- \
  Dockerfile.gateway requirements/gateway.lock pyproject.toml .dockerignore \
  gateway/videojob_gateway common
# Bookworm's redis-server is 7.0.
wanted redis && build redis localhost/videojob/redis:7.0 hack/images/redis \
  hack/images/redis/Dockerfile -- hack/images/redis
wanted postgres && build postgres localhost/videojob/postgres:15 hack/images/postgres \
  hack/images/postgres/Dockerfile -- hack/images/postgres
if [ -n "$node_tools" ]; then
  # Each binary alone in its build context.
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  mkdir "$context/pause" "$context/coredns"
  cp "$node_tools/pause" "$context/pause/"
  cp "$node_tools/coredns" "$context/coredns/"
  # `coredns -version` prints "CoreDNS-1.12.1" first.
  coredns_version=$("$node_tools/coredns" -version 2>/dev/null \
    | sed -n '1s/^CoreDNS-\([0-9][0-9.]*\).*/\1/p')
  coredns_version=${coredns_version:-local}
  wanted pause && build pause localhost/videojob/pause:3.10 "$context/pause" \
    hack/images/pause/Dockerfile -- hack/images/pause "$node_tools/pause"
  wanted coredns && build coredns "localhost/videojob/coredns:$coredns_version" \
    "$context/coredns" hack/images/coredns/Dockerfile --build-arg "VERSION=$coredns_version" -- \
    hack/images/coredns "$node_tools/coredns"
fi
echo "images ready in $(( $(date +%s) - started ))s" >&2

if [ -z "$push" ]; then
  for image in "${images[@]}"; do echo "$image"; done
  exit 0
fi
# The digest REGISTRY serves for REPOSITORY:TAG, empty when it has none.
registry_digest() {
  python3 - "$push" "$1" "$2" <<'PY'
import sys, urllib.error, urllib.request
registry, repository, tag = sys.argv[1:]
accept = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])
request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}",
                                 method="HEAD", headers={"Accept": accept})
try:
    with urllib.request.urlopen(request, timeout=10) as r:
        print(r.headers.get("Docker-Content-Digest", ""))
except urllib.error.HTTPError:
    pass
PY
}
# A push is skipped when the registry still serves the manifest this script last pushed there
# from the same image: pushing again would recompress every layer (a minute for the worker)
# only for the registry to find it has each blob already.
pushed=$cache/pushed/${push//[^A-Za-z0-9._-]/_}
mkdir -p "$pushed"
for image in "${images[@]}"; do
  read -r name tag <<<"$image"
  t=$(date +%s)
  repository=videojob/$name
  dest=$push/$repository:${tag##*:}
  id=$("${podman[@]}" image inspect --format '{{.Id}}' "$tag")
  marker=$pushed/$name:${tag##*:}
  last_id="" last_digest=""
  [ -f "$marker" ] && read -r last_id last_digest < "$marker"
  if [ "$last_id" = "$id" ] && [ "$(registry_digest "$repository" "${tag##*:}")" = "$last_digest" ]; then
    echo "$dest is up to date ($last_digest)" >&2
  else
    "${podman[@]}" push --quiet --tls-verify=false --digestfile "$marker.digest" \
      "$tag" "docker://$dest" >&2
    last_digest=$(cat "$marker.digest")
    echo "$id $last_digest" > "$marker"
    rm -f "$marker.digest"
    echo "pushed $dest in $(( $(date +%s) - t ))s" >&2
  fi
  # The reference printed carries the digest: a node that has an older image under the same tag
  # pulls the new one (a tag alone would be found "already present" there).
  echo "$name $dest@$last_digest"
done
