"""VideoJobs rendered by the REAL worker on a benchmark testbed (bench/testbed.py), timed as a
user sees them: from create to Succeeded, through the VideoJob's watch. The operator runs with
the cache on; the node agent runs the worker image's entrypoint as the stage pods."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.testbed import GROUP, PLURAL, VERSION, Stream, Testbed
from videojob_testkit.operator_process import Operator
from videojob_testkit.real_worker import OVERRIDES


@dataclass
class RealRuns:
    bed: Testbed
    operator: Operator
    namespace: str
    done: dict[str, tuple[float, str]] = field(default_factory=dict)
    seen: threading.Condition = field(default_factory=threading.Condition)

    def on_videojob(self, _: str, obj: dict[str, Any], now: float) -> None:
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            with self.seen:
                self.done.setdefault(obj["metadata"]["name"], (now, phase))
                self.seen.notify_all()

    def render(self, name: str, spec: dict[str, Any], timeout: float = 900) -> float:
        """Seconds from create to Succeeded (a failure raises)."""
        began = time.monotonic()
        self.bed.create_videojobs(self.namespace, [name], spec)
        with self.seen:
            if not self.seen.wait_for(lambda: name in self.done, timeout=timeout):
                raise RuntimeError(f"{name} did not finish; log {self.operator.log}")
        at, phase = self.done[name]
        if phase != "Succeeded":
            raise RuntimeError(f"{name} {phase}; log {self.operator.log}")
        return at - began

    def stage_seconds(self, name: str) -> dict[str, float]:
        """Each stage's span: its first pod's container start to its last one's end (the
        kubelet's times, to the second)."""
        pods = self.bed.cluster.core.list_namespaced_pod(
            self.namespace, label_selector="videojob.dev/stage").items
        spans: dict[str, list[float]] = {}
        for p in pods:
            if (p.metadata.annotations or {}).get("videojob.dev/videojob") != name:
                continue
            term = p.status.container_statuses[0].state.terminated
            stage = p.metadata.labels["videojob.dev/stage"]
            lo, hi = spans.get(stage, [float("inf"), float("-inf")])
            spans[stage] = [min(lo, term.started_at.timestamp()),
                            max(hi, term.finished_at.timestamp())]
        return {stage: round(hi - lo, 1) for stage, (lo, hi) in spans.items()}

    def worker_seconds(self, name: str, stage: str) -> float:
        """The longest a pod of `stage` worked, as its worker timed it ("stage … done in" in
        its JSON log, to the hundredth; the kubelet's times are to the second)."""
        pods = self.bed.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"videojob.dev/stage={stage}").items
        found = 0.0
        for p in pods:
            if (p.metadata.annotations or {}).get("videojob.dev/videojob") != name:
                continue
            log = self.bed.cluster.core.read_namespaced_pod_log(p.metadata.name,
                                                                 self.namespace)
            for line in log.splitlines():
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and "done in" in str(doc.get("message", "")):
                        found = max(found, float(doc.get("seconds") or 0.0))
        return found

    def gpu_pods(self, name: str) -> int:
        """Keyframes and segments pods the VideoJob made."""
        pods = self.bed.cluster.core.list_namespaced_pod(
            self.namespace, label_selector="videojob.dev/stage in (keyframes,segments)").items
        return sum(1 for p in pods
                   if (p.metadata.annotations or {}).get("videojob.dev/videojob") == name)


@contextmanager
def real_runs(bed: Testbed, prefix: str, concurrency: int = 8) -> Iterator[RealRuns]:
    op = bed.operator({"gpu": {"maxConcurrency": concurrency},
                       "cpu": {"maxConcurrency": concurrency}}, **OVERRIDES)
    op.start()
    runs = RealRuns(bed=bed, operator=op, namespace=bed.namespace(prefix))
    stream = Stream(lambda namespace, **kw: bed.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, **kw), runs.namespace, runs.on_videojob)
    try:
        yield runs
    finally:
        stream.stop()
