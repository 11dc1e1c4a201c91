"""`make operator-up` / `make operator-down`: the operator and a redis-server on the local cluster.

Both run in the background against .cluster/kubeconfig, with the CRDs applied first; logs go to
.cluster/logs/{operator,redis}.log. They carry the cluster's process marker, so `make
cluster-down` stops them too. Artifacts are stored as local files under .cluster/artifacts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from localcluster import controlplane

REPO = Path(__file__).resolve().parent.parent
REDIS_PORT = int(os.environ.get("VIDEOJOB_DEV_REDIS_PORT", "16379"))
LIVENESS_PORT = int(os.environ.get("VIDEOJOB_DEV_LIVENESS_PORT", "18080"))
METRICS_PORT = int(os.environ.get("VIDEOJOB_DEV_METRICS_PORT", "19090"))


def layout() -> controlplane.Layout:
    return controlplane.Layout(Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster")))


def kubectl(lay: controlplane.Layout, *args: str) -> None:
    subprocess.run([str(controlplane.binaries() / "kubectl"), f"--kubeconfig={lay.kubeconfig}",
                    *args], check=True, stdout=subprocess.DEVNULL)


def up() -> None:
    lay = layout()
    kubectl(lay, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl(lay, "wait", "--for=condition=Established", "--timeout=60s",
            "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev")
    if controlplane.recorded_pid(lay, "redis") is None:
        controlplane.start(lay, "redis", ["redis-server", "--port", str(REDIS_PORT),
                                          "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no"])
    config = lay.root / "operator" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({
        "storage_root": f"file://{lay.root / 'artifacts'}",
        "redis_url": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "worker_image": "ghcr.io/videojob/worker:0.1.0",
    }))
    if controlplane.recorded_pid(lay, "operator") is None:
        os.environ.update(KUBECONFIG=str(lay.kubeconfig), VIDEOJOB_CONFIG=str(config))
        controlplane.start(lay, "operator", [
            sys.executable, "-m", "videojob_operator",
            f"--liveness=http://127.0.0.1:{LIVENESS_PORT}/healthz",
            f"--metrics-port={METRICS_PORT}"])
    controlplane.wait_for("the operator's liveness endpoint", _healthy, 60,
                          lay.logs / "operator.log")
    print(f"operator running (logs: {lay.logs / 'operator.log'}, metrics "
          f"http://127.0.0.1:{METRICS_PORT}/metrics), redis on :{REDIS_PORT}")


def _healthy() -> bool:
    url = f"http://127.0.0.1:{LIVENESS_PORT}/healthz"
    with urllib.request.urlopen(url, timeout=1) as r:
        return bool(r.status == 200)


def down() -> None:
    for name in ("operator", "redis"):
        if controlplane.stop(layout(), name, grace=15):
            print(f"stopped {name}")


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1]]()
