"""Orchestration overhead and stage hand-off latency: the operator against the floor.

N VideoJobs at once whose stages do no work (the scripted worker with no directives: each pod
starts, reports 100 %, exits 0), N = 50 and 200, on a testbed cluster with room for every pod
(testbed.py), the pools wide enough that admission never holds a stage back.

The baseline, measured in the same run on the same cluster: a minimal driver with no VideoJob,
no status, no queue. It creates each VideoJob's plan Job (the operator's own manifests, from
jobs.stage_job, unsuspended and relabelled so the operator never sees them) and, from one watch
of the Jobs and one of their pods, creates the next stage's Job the moment it sees the previous
one ended: Complete, or a pod of each of its indexes Succeeded, whichever it sees first. That
is the signal the operator moves on at (views.done_by_pods), so both sides start from the same
moment: the floor the API server, the Job controller and the node allow.

- `orchestration_ratio_<N>`: makespan (first create -> last VideoJob Succeeded, as a user
  watching `kubectl get vj` sees it) of the operator / makespan (first create -> last publish
  Job Complete) of the floor; median over repeats, runs alternating floor/operator.
- `handoff_p50_ms`, `handoff_p99_ms`: a stage seen ended (its Job Complete, or each index's pod
  Succeeded, whichever the benchmark's watches saw first) -> the next stage's Job seen created,
  over every hand-off of every operator run at the largest N. `handoff_from_complete_p50_ms`
  and the floor's beside it: the same from the Job's Complete alone (negative where the next
  Job came before the Job controller wrote the completion). The floor's
  figure (its watch, then one create) is reported beside it, and so is the time to the next
  Job's admission (`suspend: false`), which includes the queue. The operator's own histograms
  split a hand-off in two (handoff_metrics.py): `handoff_operator_p50_ms`/`_p99_ms` (its Complete
  seen -> the next create answered) and `watch_delay_p50_ms`/`_p99_ms` (a create answered ->
  its event on the watch, the API server's delivery that every watcher waits on), as fine as
  the histograms' buckets. The same p50 and p99 by third of the run (by when the Job
  completed) say whether the slow hand-offs are those of the first burst.
- CPU seconds by part (cluster components, pods, operator, the driver; testbed.Testbed.cpu),
  median over the runs at the largest N, for the operator and the floor: where the difference
  in makespan goes.
- API requests per VideoJob by verb: the API server's own count of the operator's requests
  (testbed.py) over the runs at the largest N, divided by N; `writes_per_videojob` (its own
  objects), `events_per_videojob` and `writes_per_videojob_all` from them
  (testbed.write_figures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.report import describe, histogram_quantile, percentile, save
from bench.testbed import (
    GROUP,
    NO_WORK,
    PLURAL,
    VERSION,
    Stream,
    Testbed,
    UnreadSampler,
    add_buckets,
    cpu_spent,
    operator_histograms,
    paced,
    testbed,
    wait_until,
    write_figures,
)
from videojob_common.pipeline import Phase, stages_of
from videojob_operator import jobs
from videojob_operator.api import VideoJobSpec
from videojob_operator.config import OperatorConfig, effective

FLOOR_LABEL = "bench.videojob.dev"
# The stages of the benchmark's VideoJobs (NO_WORK: no narration), which the floor runs too.
PIPELINE = stages_of(narrated=False)
# The two parts of a hand-off (handoff_metrics.py), then the cache's lookups (read by
# bench/cache_handoff.py).
HANDOFF_HISTOGRAMS = ("videojob_handoff_seconds", "videojob_watch_delay_seconds",
                      "videojob_handoff_create_seconds")
OPERATOR_HISTOGRAMS = (*HANDOFF_HISTOGRAMS, "videojob_cache_lookup_seconds")


Key = tuple[str, str]  # (VideoJob, stage)
# JobTimes.observe or .observe_pod: (labels prefix, object, when read) -> its (VideoJob, stage)
Observe = Callable[[str, dict[str, Any], float], Key]


@dataclass
class JobTimes:
    """When one watch of the Jobs (and one of their pods) first saw each stage Job created,
    admitted (unsuspended), Complete, and ended: Complete, or a pod of each of its indexes
    Succeeded, whichever came first."""

    added: dict[Key, float] = field(default_factory=dict)
    admitted: dict[Key, float] = field(default_factory=dict)
    complete: dict[Key, float] = field(default_factory=dict)
    ended: dict[Key, float] = field(default_factory=dict)
    completions: dict[Key, int] = field(default_factory=dict)
    succeeded: dict[Key, set[int]] = field(default_factory=dict)

    def observe(self, labels_prefix: str, obj: dict[str, Any], now: float) -> Key:
        key = _key(labels_prefix, obj)
        spec = obj.get("spec") or {}
        self.added.setdefault(key, now)
        self.completions[key] = int(spec.get("completions") or 1)
        if not spec.get("suspend"):
            self.admitted.setdefault(key, now)
        if any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or []):
            self.complete.setdefault(key, now)
            self.ended.setdefault(key, now)
        self._pods_done(key, now)
        return key

    def observe_pod(self, labels_prefix: str, obj: dict[str, Any], now: float) -> Key:
        key = _key(labels_prefix, obj)
        index = (obj["metadata"].get("annotations") or {}).get(
            "batch.kubernetes.io/job-completion-index")
        if (obj.get("status") or {}).get("phase") == "Succeeded" and index is not None:
            self.succeeded.setdefault(key, set()).add(int(index))
            self._pods_done(key, now)
        return key

    def _pods_done(self, key: Key, now: float) -> None:
        need = self.completions.get(key)
        if need and len(self.succeeded.get(key, ())) >= need:
            self.ended.setdefault(key, now)

    def handoffs(self, to: str = "added", since: str = "ended") -> list[float]:
        """Milliseconds from each stage's end (`since`: or its Job's Complete) to the next
        stage's Job `to`."""
        return [ms for _, ms in self.timed_handoffs(to, since)]

    def timed_handoffs(self, to: str = "added", since: str = "ended") -> list[tuple[float, float]]:
        """(when the stage was seen ended, monotonic; milliseconds to the next stage's Job
        `to`) for each hand-off."""
        target = self.added if to == "added" else self.admitted
        out = []
        for (vj, stage), done in (self.ended if since == "ended" else self.complete).items():
            if stage == PIPELINE[-1]:
                continue
            nxt = (vj, PIPELINE[PIPELINE.index(stage) + 1])
            if nxt in target:
                out.append((done, (target[nxt] - done) * 1000))
        return out

    def by_third(self, began: float, makespan: float) -> list[list[float]]:
        """The hand-offs' milliseconds in each third of the run, by when the stage ended."""
        out: list[list[float]] = [[], [], []]
        for done, ms in self.timed_handoffs():
            out[min(2, int(3 * (done - began) / makespan))].append(ms)
        return out


def _key(labels_prefix: str, obj: dict[str, Any]) -> Key:
    labels = obj["metadata"].get("labels") or {}
    return labels.get(f"{labels_prefix}/name", ""), labels.get(f"{labels_prefix}/stage", "")


@dataclass
class Run:
    kind: str
    n: int
    makespan_s: float
    handoffs_ms: list[float]
    admitted_ms: list[float]
    requests: dict[str, float]
    cpu: dict[str, float]
    thirds: list[list[float]] = field(default_factory=list)  # hand-offs by third of the run
    # The operator's own histograms (handoff_metrics.py): {name: {upper bound: cumulative count}}
    histograms: dict[str, dict[float, float]] = field(default_factory=dict)
    interval_s: float = 0.0  # seconds between VideoJob arrivals; 0: all at once
    # KB unread in the reader's sockets (its watches), four times a second
    # (testbed.UnreadSampler): the operator's process, or the floor driver's.
    unread_kb: list[float] = field(default_factory=list)
    # The operator's status writes by kind and result (videojob_status_patches_total).
    status_patches: dict[str, float] = field(default_factory=dict)
    # Hand-offs from the stage Job's Complete alone (JobTimes.handoffs since="complete").
    from_complete_ms: list[float] = field(default_factory=list)


def floor_manifest(cfg: OperatorConfig, ns: str, vj: str, uid: str, stage: str) -> dict[str, Any]:
    spec = VideoJobSpec.model_validate(NO_WORK)
    eff = effective(spec, cfg, ns, vj, uid)
    manifest = jobs.stage_job(
        namespace=ns, videojob=vj, uid=uid, stage=stage, spec=spec, eff=eff,  # type: ignore[arg-type]
        pool="floor", now="", redis_url=cfg.redis_url,
        service_account=cfg.worker_service_account, extra_env=cfg.worker_env,
        command=cfg.worker_command)
    manifest["spec"]["suspend"] = False  # no queue: every pod at once
    labels = {f"{FLOOR_LABEL}/name": vj, f"{FLOOR_LABEL}/stage": stage}
    manifest["metadata"]["labels"] = labels
    manifest["metadata"].pop("ownerReferences")
    manifest["spec"]["template"]["metadata"]["labels"] = labels
    return manifest


def run_floor(bed: Testbed, n: int, interval: float = 0.0) -> Run:
    """The floor driver over n VideoJobs' worth of Jobs, all at once or one every `interval`
    seconds."""
    # The configuration an operator would run with, for the operator's own manifests.
    cfg = OperatorConfig.model_validate(bed.operator({}, track=False).config())
    ns = bed.namespace("floor")
    names = [f"vj{i:04d}" for i in range(n)]
    uids = {name: uuid.uuid4().hex for name in names}
    times = JobTimes()
    finished = threading.Event()
    creates = ThreadPoolExecutor(max_workers=8)
    lock = threading.Lock()

    def create(vj: str, stage: str) -> None:
        bed.cluster.batch.create_namespaced_job(ns, floor_manifest(cfg, ns, vj, uids[vj], stage))

    def seen(observe: Observe, obj: dict[str, Any], now: float) -> None:
        with lock:
            had = len(times.ended)
            vj, stage = observe(FLOOR_LABEL, obj, now)
            if len(times.ended) == had or (vj, stage) not in times.ended:
                return
        if stage == PIPELINE[-1]:
            if sum(1 for (_, s) in times.ended if s == PIPELINE[-1]) == n:
                finished.set()
        else:
            creates.submit(create, vj, PIPELINE[PIPELINE.index(stage) + 1])

    streams = [Stream(list_fn, ns, lambda _, obj, now, observe=observe: seen(observe, obj, now),
                      label_selector=f"{FLOOR_LABEL}/name")
               for list_fn, observe in ((bed.cluster.batch.list_namespaced_job, times.observe),
                                        (bed.cluster.core.list_namespaced_pod,
                                         times.observe_pod))]
    cpu_before = bed.cpu()
    unread = UnreadSampler(os.getpid())
    began = time.monotonic()
    paced(lambda vj: create(vj, PIPELINE[0]), names, interval)
    if not finished.wait(120 + 3 * n):
        raise RuntimeError(f"floor: {len(times.ended)} of {n * len(PIPELINE)} stages ended")
    makespan = max(times.ended.values()) - began
    cpu = cpu_spent(cpu_before, bed.cpu())
    unread_kb = unread.stop()
    for stream in streams:
        stream.stop()
    creates.shutdown()
    delete_namespace(bed, ns)
    return Run("floor", n, makespan, times.handoffs(), times.handoffs("added"), {}, cpu,
               times.by_third(began, makespan), interval_s=interval, unread_kb=unread_kb,
               from_complete_ms=times.handoffs(since="complete"))


def run_operator(bed: Testbed, n: int, interval: float = 0.0,
                 env: dict[str, str] | None = None, **overrides: Any) -> Run:
    """The operator over n VideoJobs, all created at once or one every `interval` seconds
    (`env`: added to the operator's environment; `overrides`: to its configuration)."""
    wide = {"gpu": {"maxConcurrency": 4 * n}, "cpu": {"maxConcurrency": 4 * n}}
    op = bed.operator(wide, env=env, **overrides)
    op.start()
    ns = bed.namespace("operator")
    names = [f"vj{i:04d}" for i in range(n)]
    times = JobTimes()
    succeeded: dict[str, float] = {}
    failed: list[str] = []
    finished = threading.Event()

    def on_job(_: str, obj: dict[str, Any], now: float) -> None:
        times.observe("videojob.dev", obj, now)

    def on_pod(_: str, obj: dict[str, Any], now: float) -> None:
        times.observe_pod("videojob.dev", obj, now)

    def on_videojob(_: str, obj: dict[str, Any], now: float) -> None:
        phase = (obj.get("status") or {}).get("phase")
        name = obj["metadata"]["name"]
        if phase == Phase.SUCCEEDED and name not in succeeded:
            succeeded[name] = now
        elif phase == Phase.FAILED:
            failed.append(name)
        if len(succeeded) == n or failed:
            finished.set()

    jobs_stream = Stream(bed.cluster.batch.list_namespaced_job, ns, on_job,
                         label_selector="videojob.dev/name")
    pods_stream = Stream(bed.cluster.core.list_namespaced_pod, ns, on_pod,
                         label_selector="videojob.dev/name")
    vj_stream = Stream(lambda namespace, **kw: bed.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, **kw), ns, on_videojob)
    before = bed.requests()
    cpu_before = bed.cpu()
    unread = UnreadSampler(op.proc.pid)
    began = time.monotonic()
    bed.create_videojobs(ns, names, NO_WORK, interval)
    if not finished.wait(120 + 3 * n) or failed:
        raise RuntimeError(f"operator: {len(succeeded)} of {n} VideoJobs succeeded, "
                           f"failed: {failed[:5]}; log {op.log}")
    makespan = max(succeeded.values()) - began
    # The last status writes land just after the phase; let them be counted.
    time.sleep(0.5)
    after = bed.requests()
    cpu = cpu_spent(cpu_before, bed.cpu())
    unread_kb = unread.stop()
    histograms = operator_histograms(op.metrics_port, OPERATOR_HISTOGRAMS)
    patches = {k.split("{", 1)[1].rstrip("}"): v for k, v in op.metrics().items()
               if k.startswith("videojob_status_patches_total{")}
    jobs_stream.stop()
    pods_stream.stop()
    vj_stream.stop()
    delete_namespace(bed, ns)
    op.stop()
    return Run("operator", n, makespan, times.handoffs(), times.handoffs("admitted"),
               {k: after.get(k, 0) - before.get(k, 0) for k in after}, cpu,
               times.by_third(began, makespan), histograms, interval, unread_kb, patches,
               times.handoffs(since="complete"))


def delete_namespace(bed: Testbed, ns: str) -> None:
    bed.cluster.core.delete_namespace(ns)

    def gone() -> bool:
        try:
            bed.cluster.core.read_namespace(ns)
        except Exception as e:
            return getattr(e, "status", None) == 404
        return False

    wait_until(gone, 300, f"namespace {ns} deleted")


def handoff_parts(ops: list[Run]) -> dict[str, Any]:
    """The two parts of a hand-off as the operator timed them (handoff_metrics.py), over the runs
    and run by run: its own (`handoff_operator_*`: Complete seen -> next create answered) and the
    API server's delivery (`watch_delay_*`: a create answered -> its event on the watch)."""
    out: dict[str, Any] = {}
    for name, key in zip(HANDOFF_HISTOGRAMS, ("handoff_operator", "watch_delay",
                                              "handoff_create"), strict=True):
        merged: dict[float, float] = {}
        for r in ops:
            merged = add_buckets(merged, r.histograms.get(name, {}))
        if not merged:
            continue
        for q in (50, 99):
            out[f"{key}_p{q}_ms"] = round(1000 * histogram_quantile(q / 100, merged), 1)
        out[f"{key}_p50_ms_by_run"] = [
            round(1000 * histogram_quantile(0.5, r.histograms[name]), 1)
            for r in ops if r.histograms.get(name)]
    return out


def summarise(runs: list[Run], sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        ops = [r.makespan_s for r in runs if r.n == n and r.kind == "operator"]
        floors = [r.makespan_s for r in runs if r.n == n and r.kind == "floor"]
        out[f"orchestration_ratio_{n}"] = round(statistics.median(ops) /
                                                statistics.median(floors), 3)
        out[f"operator_makespan_{n}_s"] = [round(x, 2) for x in ops]
        out[f"floor_makespan_{n}_s"] = [round(x, 2) for x in floors]
    largest = max(sizes)
    ops = [r for r in runs if r.n == largest and r.kind == "operator"]
    floors = [r for r in runs if r.n == largest and r.kind == "floor"]
    hand = [h for r in ops for h in r.handoffs_ms]
    floor_hand = [h for r in floors for h in r.handoffs_ms]
    admitted = [h for r in ops for h in r.admitted_ms]
    out.update(handoff_parts(ops))
    out.update({
        "handoff_n": largest,
        "handoffs": len(hand),
        "handoff_p50_ms": round(statistics.median(hand), 1),
        "handoff_p99_ms": round(percentile(hand, 99), 1),
        "handoff_admitted_p50_ms": round(statistics.median(admitted), 1),
        "handoff_admitted_p99_ms": round(percentile(admitted, 99), 1),
        "floor_handoff_p50_ms": round(statistics.median(floor_hand), 1),
        "floor_handoff_p99_ms": round(percentile(floor_hand, 99), 1),
        # From the Job controller's completion alone, as this benchmark measured before both
        # sides moved on at the pods' success too.
        **{f"{prefix}handoff_from_complete_p50_ms": round(statistics.median(hs), 1)
           for prefix, hs in (("", [h for r in ops for h in r.from_complete_ms]),
                              ("floor_", [h for r in floors for h in r.from_complete_ms]))
           if hs},
        # Operator / floor within the burst (issue #27: ≤ 1.3).
        "burst_handoff_p50_ratio": round(statistics.median(hand) /
                                         statistics.median(floor_hand), 3),
        "burst_handoff_p99_ratio": round(percentile(hand, 99) / percentile(floor_hand, 99), 3),
    })
    total = {verb: sum(r.requests.get(verb, 0) for r in ops) for verb in ops[0].requests}
    per_vj = {verb: round(count / (largest * len(ops)), 2) for verb, count in total.items()}
    out["requests_per_videojob"] = per_vj
    # The operator's own count of its status writes, by kind (transition or progress-only)
    # and result (ok or a 409 conflict), per VideoJob.
    out["status_patches_per_videojob"] = {
        labels: round(sum(r.status_patches.get(labels, 0.0) for r in ops) / (largest * len(ops)),
                      2)
        for labels in sorted({k for r in ops for k in r.status_patches})}
    out.update(write_figures(per_vj))
    out["writes_per_videojob_goal"] = 2 * len(PIPELINE) + 4
    for kind in ("operator", "floor"):
        group = [r for r in runs if r.n == largest and r.kind == kind]
        thirds = [[ms for r in group for ms in r.thirds[i]] for i in range(3)]
        out[f"{kind}_handoff_p50_ms_by_third"] = [
            round(statistics.median(t), 1) if t else None for t in thirds]
        out[f"{kind}_handoff_p99_ms_by_third"] = [
            round(percentile(t, 99), 1) if t else None for t in thirds]
        # The reader's backlog: the largest of any socket of its process, and its p99 over
        # the run (a watch that keeps up leaves next to nothing unread).
        samples = [kb for r in group for kb in r.unread_kb]
        if samples:
            out[f"{kind}_unread_kb_max"] = round(max(samples), 1)
            out[f"{kind}_unread_kb_p99"] = round(percentile(samples, 99), 1)
        # What each side's own process spent per VideoJob: the operator, or the floor's
        # driver (this benchmark's process, its watches included).
        own = "operator" if kind == "operator" else "benchmark"
        out[f"{kind}_own_cpu_s_per_videojob"] = round(statistics.median(
            r.cpu.get(own, 0.0) for r in group) / largest, 3)
        out[f"{kind}_cpu_s_{largest}"] = {
            part: round(statistics.median(r.cpu.get(part, 0.0) for r in group), 1)
            for part in group[0].cpu}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: list[Run] = []
    with testbed("orchestration", pods=4 * max(args.sizes) + 100,
                 gpus=4 * max(args.sizes)) as bed:
        # A first, unmeasured round warms the caches (Python's, the page cache, etcd's).
        run_floor(bed, min(args.sizes))
        for n in args.sizes:
            for i in range(args.repeats):
                for kind in (("floor", "operator") if i % 2 == 0 else ("operator", "floor")):
                    run = run_floor(bed, n) if kind == "floor" else run_operator(bed, n)
                    print(f"N={n} {kind}: {run.makespan_s:.2f} s", flush=True)
                    runs.append(run)
    results = {"machine": describe(), "sizes": args.sizes, "repeats": args.repeats,
               **summarise(runs, args.sizes)}
    save("orchestration", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
