#!/usr/bin/env bash
# Installs the Debian packages the project's tests and demo need, when they are missing.
# Go (to build the pinned Kubernetes binaries) and Python 3.11+ must already be on the machine.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v unshare >/dev/null || need+=(util-linux)
command -v mount >/dev/null || need+=(mount)
command -v ffmpeg >/dev/null || need+=(ffmpeg)        # the worker's encoder (libx264, AAC)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)  # the narrate stage's default voice
command -v redis-server >/dev/null || need+=(redis-server)  # progress and the admission queue
command -v promtool >/dev/null || need+=(prometheus)  # promtool: metrics lint, alert rule tests
# The archive's tests and benchmark start a real PostgreSQL (tests/videojob_testkit/postgres.py).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
# The web console's tests drive a real headless Chromium (tests/gateway/test_console_e2e.py).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# The real-node cluster (LOCALCLUSTER_RUNTIME=containerd): containerd 1.6 with runc, the CNI
# plugins (bridge, host-local, portmap), and what kube-proxy calls (iptables, conntrack).
[ -x /usr/bin/containerd ] || need+=(containerd)
[ -x /usr/sbin/runc ] || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v nsenter >/dev/null || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "Go is required (to build Kubernetes from the module proxy)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is required" >&2; exit 1; }
