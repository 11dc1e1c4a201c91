#!/usr/bin/env bash
# Builds the operator and worker images with Debian's podman (no Docker engine, no registry):
#   localhost/videojob/operator:<version>   localhost/videojob/worker:<version>
# The base image (Debian bookworm + python3) is made with debootstrap, since no registry is
# reachable, and imported as localhost/videojob-base:bookworm. Both the base's root filesystem and
# podman's layer storage live outside the repository and are reused: a warm rebuild only re-runs
# the layers whose inputs changed. Elsewhere, `docker build --build-arg BASE_IMAGE=...` works
# with the same Dockerfiles (docs/images.md).
set -euo pipefail
cd "$(dirname "$0")/.."
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
            -v /etc/ssl/certs:/etc/ssl/certs:ro --build-arg "BASE_IMAGE=$base"
            --build-arg "VERSION=$version")
[ -f /etc/pip.conf ] && build_args+=(-v /etc/pip.conf:/etc/pip.conf:ro)
# What goes into an image; an image built from the same inputs is reused as it is (podman's
# layer cache alone still copies every layer on vfs, minutes for nothing).
inputs() {
  python3 - "$1" <<'PY'
import hashlib, pathlib, sys
image = sys.argv[1]
# README.md is copied too, but only as the package's long description: editing it does not
# warrant a rebuild.
files = [pathlib.Path(p) for p in (f"Dockerfile.{image}", f"requirements/{image}.lock",
                                   "pyproject.toml", ".dockerignore")]
for top in ("operator", "worker_image"):
    files += [p for p in pathlib.Path(top).rglob("*") if p.is_file()
              and "__pycache__" not in p.parts and not p.suffix == ".pyc"
              and not any(part.endswith(".egg-info") for part in p.parts)]
h = hashlib.sha256()
for p in sorted(files):
    h.update(str(p).encode() + b"\0" + p.read_bytes() + b"\0")
print(h.hexdigest())
PY
}
for image in operator worker; do
  t=$(date +%s)
  tag="localhost/videojob/$image:$version"
  want=$(inputs "$image")
  have=$("${podman[@]}" image inspect --format '{{index .Labels "dev.videojob.inputs"}}' "$tag" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "$tag is up to date (inputs $want)" >&2
    continue
  fi
  "${podman[@]}" build "${build_args[@]}" --label "dev.videojob.inputs=$want" \
    -f "Dockerfile.$image" -t "$tag" . >&2
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
  echo "built $tag in $(( $(date +%s) - t ))s ($(( size / 1048576 )) MiB)" >&2
done
echo "images ready in $(( $(date +%s) - started ))s" >&2
