"""Local-cluster figures: start time and pod start latency.

- start (fresh): `up` on an empty state directory (new PKI, empty etcd) with the binaries cached;
- start (restart): `up` again after `down`, keeping the state directory;
- pod start latency: pod created -> seen Running through a watch, for pods created one after
  another (no contention) and for a burst created at once.

The benchmark cluster runs beside any other local cluster (its own state directory and ports).
Results go to bench/results/<timestamp>-cluster.json and a table is printed.

Cold start (nothing cached) is dominated by building Kubernetes; hack/build-binaries.sh prints
that time, and docs/benchmarks.md records it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from bench.report import describe, percentile, save
from localcluster import controlplane

PORTS = controlplane.Ports(api=16443, etcd=22379, etcd_peer=22380, controller_manager=20257,
                          scheduler=20259, agent=20250)


# What the node agent runs for a pod: `sleep 1` on the host (no image to pull).
AGENT_CONTAINER: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["sleep", "1"]}


def pod_body(name: str, container: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                     "containers": [container]}}


def pod_start_latencies(core: client.CoreV1Api, namespace: str, count: int,
                        burst: bool, container: dict[str, Any] = AGENT_CONTAINER) -> list[float]:
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = threading.Event()
    ready = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        ready.set()
        for event in w.stream(core.list_namespaced_pod, namespace, timeout_seconds=300):
            pod = event["object"]
            if pod.status and pod.status.phase in ("Running", "Succeeded"):
                running.setdefault(pod.metadata.name, time.monotonic())
            if len(running) >= count:
                done.set()
                w.stop()

    threading.Thread(target=observe, daemon=True).start()
    ready.wait()
    time.sleep(0.2)  # let the watch connect before the first create
    prefix = "burst" if burst else "seq"
    for i in range(count):
        name = f"{prefix}-{i}"
        created[name] = time.monotonic()
        core.create_namespaced_pod(namespace, pod_body(name, container))
        if not burst:
            deadline = time.monotonic() + 30
            while name not in running and time.monotonic() < deadline:
                time.sleep(0.005)
    if not done.wait(300):
        raise TimeoutError(f"only {len(running)}/{count} pods ran")
    return [running[n] - created[n] for n in created]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3, help="repeats of each start measure")
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": describe(), "kubernetes": "v1.36.3",
                               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    controlplane.binaries()
    fresh: list[float] = []
    restart: list[float] = []
    with tempfile.TemporaryDirectory(prefix="videojob-bench-") as tmp:
        layout = controlplane.Layout(Path(tmp) / "cluster")
        try:
            for i in range(args.starts):
                if i:
                    controlplane.down(layout)
                    shutil.rmtree(layout.root)  # a fresh start: new PKI, empty etcd
                fresh.append(controlplane.up(layout, PORTS))
                controlplane.down(layout)
                restart.append(controlplane.up(layout, PORTS))
            cfg = client.Configuration()
            config.load_kube_config(str(layout.kubeconfig), client_configuration=cfg)
            core = client.CoreV1Api(client.ApiClient(cfg))
            seq_ns, burst_ns = "bench-sequential", "bench-burst"
            for ns in (seq_ns, burst_ns):
                core.create_namespace({"metadata": {"name": ns}})
                while not core.list_namespaced_service_account(
                        ns, field_selector="metadata.name=default").items:
                    time.sleep(0.05)
            seq = pod_start_latencies(core, seq_ns, args.pods, burst=False)
            burst = pod_start_latencies(core, burst_ns, args.pods, burst=True)
        finally:
            controlplane.down(layout)

    results.update({
        "cluster_start_fresh_s": round(statistics.median(fresh), 2),
        "cluster_start_restart_s": round(statistics.median(restart), 2),
        "cluster_start_repeats": args.starts,
        "pod_start_p50_ms": round(percentile(seq, 50) * 1000, 1),
        "pod_start_p95_ms": round(percentile(seq, 95) * 1000, 1),
        "pod_start_burst_p50_ms": round(percentile(burst, 50) * 1000, 1),
        "pod_start_burst_p95_ms": round(percentile(burst, 95) * 1000, 1),
        "pods": args.pods,
    })
    save("cluster", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
