"""Admission reaction: a slot frees -> the next queued stage Job is unsuspended.

The local cluster (started if needed, and then stopped again), a real redis-server and the
operator as its own process, with the gpu pool at `maxConcurrency: 1`, so every GPU stage waits
for the one before it. N VideoJobs run the scripted worker
(tests/videojob_testkit/scripted_worker.py; each GPU stage sleeps briefly). One process watches
pods and Jobs and timestamps what it receives:

- slot freed: a GPU stage pod seen Succeeded;
- refilled: a queued GPU stage Job seen with `suspend: false`, where that Job was already queued
  when the slot freed (admissions into an empty queue are not reactions).

Both sides go through the same watch path, so their delivery delays largely cancel. KEDA's
equivalent is bounded by its polling interval (30 s by default). Results: bench/results/
<timestamp>-admission.json with `admission_p50_ms` and `admission_p95_ms`.
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bench.report import describe, percentile, save
from localcluster import controlplane
from videojob_common.pipeline import GPU_STAGES, STAGES, TERMINAL
from videojob_testkit import REPO
from videojob_testkit.kube import connect
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, free_port, wait_until

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
# The scripted worker's directives: each GPU stage sleeps 0.2 s, the others do no work.
GPU_SLEEPS = " ".join(f"sleep:{stage}:0.2" for stage in STAGES if stage in GPU_STAGES)


class Recorder:
    """Watches pods and Jobs of one namespace and timestamps slot frees and admissions."""

    def __init__(self, core: client.CoreV1Api, batch: client.BatchV1Api, ns: str) -> None:
        self.freed: list[float] = []
        self.queued_since: dict[str, float] = {}
        self.admitted: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._pods, args=(core, ns), daemon=True),
                        threading.Thread(target=self._jobs, args=(batch, ns), daemon=True)]
        for t in self.threads:
            t.start()

    def _follow(self, list_fn: Any, ns: str, on_event: Any) -> None:
        """on_event(object, monotonic time) for each event until `done`. A watch that ends is
        opened again; one that breaks after `done` (the cluster stopping) ends quietly."""
        while not self.done.is_set():
            try:
                for ev in watch.Watch().stream(list_fn, ns, timeout_seconds=900,
                                               label_selector="videojob.dev/pool=gpu"):
                    on_event(ev["object"], time.monotonic())
            except Exception:
                if self.done.is_set():
                    return
                raise

    def _pods(self, core: client.CoreV1Api, ns: str) -> None:
        seen: set[str] = set()

        def on_pod(p: Any, now: float) -> None:
            if p.status.phase == "Succeeded" and p.metadata.name not in seen:
                seen.add(p.metadata.name)
                self.freed.append(now)

        self._follow(core.list_namespaced_pod, ns, on_pod)

    def _jobs(self, batch: client.BatchV1Api, ns: str) -> None:
        def on_job(j: Any, now: float) -> None:
            name = j.metadata.name
            if j.spec.suspend and name not in self.queued_since:
                self.queued_since[name] = now
            elif not j.spec.suspend and name in self.queued_since and name not in {
                    n for _, n in self.admitted}:
                self.admitted.append((now, name))

        self._follow(batch.list_namespaced_job, ns, on_job)

    def reactions(self) -> list[float]:
        """Milliseconds from each slot freed to the admission it allowed."""
        return reaction_times(self.freed, self.queued_since, self.admitted)


def reaction_times(freed: list[float], queued_since: dict[str, float],
                   admitted: list[tuple[float, str]]) -> list[float]:
    """Milliseconds from each slot freed (`freed`: when, in order) to the admission it allowed:
    for each Job admitted (when, name) the last free before it, where the Job was already
    queued (`queued_since`) when the slot freed. Admissions into an empty queue are not
    reactions."""
    out = []
    for at, name in admitted:
        i = bisect.bisect_right(freed, at)
        if i and queued_since[name] < freed[i - 1]:
            out.append((at - freed[i - 1]) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videojobs", type=int, default=20)
    args = parser.parse_args()
    layout = controlplane.Layout(Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster")))
    # A cluster this benchmark starts is stopped after it, so that it does not run idle beside
    # the benchmarks after it; one already running is left as it was.
    started = controlplane.recorded_pid(layout, "kube-apiserver") is None
    controlplane.up(layout)
    try:
        return measure(layout, args)
    finally:
        if started:
            controlplane.down(layout)


def measure(layout: controlplane.Layout, args: argparse.Namespace) -> int:
    cluster = connect(layout.kubeconfig, local=True)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(port=free_port(), dir=Path(tmp))
        redis.start()
        workdir = REPO / ".cluster" / "bench" / f"admission-{uuid.uuid4().hex[:6]}"
        op = Operator(cluster=cluster, workdir=workdir, redis_url=redis.url, overrides={
            "pools": {"gpu": {"maxConcurrency": 1}}})
        op.start()
        ns = f"bench-admission-{uuid.uuid4().hex[:6]}"
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        try:
            wait_until(lambda: any(sa.metadata.name == "default" for sa in
                                   cluster.core.list_namespaced_service_account(ns).items),
                       30, "the default ServiceAccount")
            recorder = Recorder(cluster.core, cluster.batch, ns)
            custom = client.CustomObjectsApi(cluster.api)
            names = [f"vj{i:03d}" for i in range(args.videojobs)]
            for name in names:
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                    "metadata": {"name": name},
                    "spec": {"prompt": GPU_SLEEPS, "scenes": 1,
                             "durationSeconds": 2, "fps": 4, "resolution": "64x64"}})

            def all_done() -> bool:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
                return all((i.get("status") or {}).get("phase") in TERMINAL
                           for i in items) and len(items) == len(names)

            wait_until(all_done, 60 + 10 * args.videojobs, "every VideoJob finished")
            recorder.done.set()
            reactions = recorder.reactions()
        finally:
            cluster.core.delete_namespace(ns, propagation_policy="Background")
            op.stop()
            redis.stop()
    if len(reactions) < args.videojobs:
        print(f"only {len(reactions)} reactions measured", file=sys.stderr)
        return 1
    results: dict[str, Any] = {
        "machine": describe(),
        "videojobs": args.videojobs,
        "reactions": len(reactions),
        "admission_p50_ms": round(statistics.median(reactions), 1),
        "admission_p95_ms": round(percentile(reactions, 95), 1),
        "admission_max_ms": round(max(reactions), 1),
        "keda_polling_interval_ms": 30000,
    }
    save("admission", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
