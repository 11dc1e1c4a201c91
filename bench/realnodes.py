"""Real nodes against the node agent, in one run: cluster start, pod start, the README example.

- start (cold): `up` of the real-node cluster (LOCALCLUSTER_RUNTIME=containerd) on an empty state
  directory: new PKI, empty etcd, empty registry and containerd stores (the pause and CoreDNS
  images pushed and pulled again). The binaries and images are built beforehand and cached, as
  on any run after the first;
- start (warm): `up` after `down`, the state directory kept;
- pod start: created -> seen Running through a watch, 50 pods one after another, on real nodes
  (the pause image, already pulled) and on the node agent (`sleep`) in the same run;
- the README example (examples/videojob.yaml, 4 scenes, 12 s of 1280x720 at 24 fps) end to end,
  VideoJob created -> Succeeded: on real nodes, the chart installed from the images (as `make
  demo` does there); on the node agent, the operator as a process (as `make demo` does there).

Both clusters use one state directory of their own (`.cluster-bench/`) and the default ports and
addresses, one after the other: no other local cluster may run meanwhile. Results go to
bench/results/<timestamp>-realnodes.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from kubernetes import client, config

from bench.cluster import pod_start_latencies
from bench.report import describe, percentile, save
from localcluster import controlplane, realnodes
from videojob_common.pipeline import TERMINAL, Phase
from videojob_testkit import REPO

ROOT = REPO / ".cluster-bench"
EXAMPLE = REPO / "examples" / "videojob.yaml"


def api(layout: controlplane.Layout) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(str(layout.kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)


def kubectl(layout: controlplane.Layout, *args: str) -> str:
    return subprocess.run([str(controlplane.binaries() / "kubectl"),
                           f"--kubeconfig={layout.kubeconfig}", *args],
                          check=True, capture_output=True, text=True).stdout


def fresh_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace({"metadata": {"name": name}})
    while not core.list_namespaced_service_account(
            name, field_selector="metadata.name=default").items:
        time.sleep(0.05)


def example_runs(layout: controlplane.Layout, repeats: int) -> list[float]:
    """The README example in `default`, `repeats` times: seconds from create to Succeeded."""
    took = []
    for _ in range(repeats):
        kubectl(layout, "-n", "default", "delete", "-f", str(EXAMPLE), "--ignore-not-found",
                "--wait=true")
        began = time.monotonic()
        kubectl(layout, "-n", "default", "apply", "-f", str(EXAMPLE))
        while True:
            status = json.loads(kubectl(layout, "-n", "default", "get", "-f", str(EXAMPLE),
                                        "-o", "json")).get("status") or {}
            if status.get("phase") in TERMINAL:
                break
            if time.monotonic() - began > 1800:
                raise TimeoutError(f"the README example did not finish: {status}")
            time.sleep(0.2)
        if status["phase"] != Phase.SUCCEEDED:
            raise RuntimeError(f"the README example failed: {status}")
        took.append(time.monotonic() - began)
    kubectl(layout, "-n", "default", "delete", "-f", str(EXAMPLE), "--wait=true")
    return took


def operator_up(layout: controlplane.Layout) -> None:
    """`make operator-up` for this state directory (hack/operator_dev.py)."""
    subprocess.run([sys.executable, str(REPO / "hack" / "operator_dev.py"), "up"], check=True,
                   env=dict(os.environ, LOCALCLUSTER_ROOT=str(layout.root)),
                   stdout=subprocess.DEVNULL)


def measure(runtime: str, args: argparse.Namespace) -> dict[str, Any]:
    layout = controlplane.Layout(ROOT / runtime)
    starts: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        for i in range(args.starts):
            if i or layout.root.exists():
                controlplane.down(layout)
                shutil.rmtree(layout.root)
            starts["cold"].append(controlplane.up(layout, runtime=runtime, timeout=600))
            controlplane.down(layout)
            starts["warm"].append(controlplane.up(layout, runtime=runtime, timeout=600))
        core = client.CoreV1Api(api(layout))
        fresh_namespace(core, "bench-pods")
        container: dict[str, Any] = {"name": "main", "image": "busybox",
                                     "command": ["sleep", "1"]}
        if runtime == "containerd":
            pause = realnodes.push_images(["pause"])["pause"]
            container = {"name": "main", "image": pause}
        pods = pod_start_latencies(core, "bench-pods", args.pods, burst=False,
                                   container=container)
        operator_up(layout)
        example = example_runs(layout, args.repeats)
    finally:
        controlplane.down(layout)
    return {"start_cold_s": starts["cold"], "start_warm_s": starts["warm"],
            "pod_start_s": pods, "example_s": example}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="repeats of each start")
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the README example")
    args = parser.parse_args()
    if any(controlplane.status(controlplane.Layout(REPO / ".cluster")).values()):
        print("stop the local cluster first (make cluster-down): this benchmark uses the same "
              "addresses and ports", file=sys.stderr)
        return 2
    # Built and cached first, so no start below includes a build.
    controlplane.binaries()
    realnodes.node_tools()
    subprocess.run([str(REPO / "hack" / "build-images.sh")], check=True, stdout=subprocess.DEVNULL)
    real = measure("containerd", args)
    agent = measure("agent", args)
    shutil.rmtree(ROOT, ignore_errors=True)

    def ms(values: list[float], p: float) -> float:
        return round(percentile(values, p) * 1000, 1)

    results: dict[str, Any] = {
        "machine": describe(), "kubernetes": "v1.36.3",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "realnodes_start_cold_s": round(statistics.median(real["start_cold_s"]), 1),
        "realnodes_start_warm_s": round(statistics.median(real["start_warm_s"]), 1),
        "agent_start_cold_s": round(statistics.median(agent["start_cold_s"]), 1),
        "agent_start_warm_s": round(statistics.median(agent["start_warm_s"]), 1),
        "realnodes_pod_start_p50_ms": ms(real["pod_start_s"], 50),
        "realnodes_pod_start_p95_ms": ms(real["pod_start_s"], 95),
        "agent_pod_start_p50_ms": ms(agent["pod_start_s"], 50),
        "agent_pod_start_p95_ms": ms(agent["pod_start_s"], 95),
        "realnodes_example_s": round(statistics.median(real["example_s"]), 1),
        "agent_example_s": round(statistics.median(agent["example_s"]), 1),
        "realnodes_example_ratio": round(statistics.median(real["example_s"])
                                         / statistics.median(agent["example_s"]), 3),
        "pods": args.pods, "starts": args.starts, "repeats": args.repeats,
        "runs": {"containerd": real, "agent": agent},
    }
    save("realnodes", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
