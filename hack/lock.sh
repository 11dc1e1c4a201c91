#!/usr/bin/env bash
# Regenerates the images' dependency locks (requirements/*.lock): every package pinned with its
# hashes, resolved for CPython 3.11 on glibc Linux x86_64 (Debian bookworm) from pyproject.toml's
# dependencies and the image's extra. setuptools and wheel are locked too: the project itself is
# built inside the image without network access to anything unpinned (--no-build-isolation).
# The versions are those of the tested environment (.venv, `make venv`) where it has them, so the
# images run what the test suite ran.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${XDG_CACHE_HOME:-$HOME/.cache}/videojob/tools
[ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q uv; }
constraints=/tmp/videojob-constraints.txt
: > "$constraints"
if [ -x .venv/bin/pip ]; then
  .venv/bin/pip freeze --exclude-editable | grep -v '^videojob' > "$constraints" || true
fi
for extra in operator worker gateway; do
  printf 'setuptools>=68\nwheel\n' > /tmp/videojob-build-reqs.in
  "$tools/bin/uv" pip compile pyproject.toml /tmp/videojob-build-reqs.in --extra "$extra" \
    --constraint "$constraints" \
    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --no-header --annotation-style line --quiet -o "requirements/$extra.lock.tmp"
  { echo "# Locked dependencies of the $extra image (Dockerfile.$extra). Regenerate: hack/lock.sh"
    cat "requirements/$extra.lock.tmp"; } > "requirements/$extra.lock"
  rm "requirements/$extra.lock.tmp"
done
