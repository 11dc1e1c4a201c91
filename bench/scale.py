"""Scale: thousands of VideoJobs existing at once.

N VideoJobs (default 2,000) are created in one burst on a testbed cluster (testbed.py) and run
through pools of a realistic width (most of them wait as Queued: that is the point), with
stages that do no work (the scripted worker with no directives), until a first batch of them
(default 200) has succeeded; all N exist throughout. Running every one of them to the end would
take the node half an hour of pod starts and tell nothing more about the operator. The operator
process's resident memory and CPU time are sampled from /proc twice a second.

- `operator_rss_mb_<N>`: the peak RSS from the burst until every VideoJob has a phase (the
  operator holds all N then); `operator_rss_mb_<N>_idle` the RSS before the burst;
- `operator_cpu_share_median`: the operator's CPU (1.0 = one core) while the N existed;
- `requests_per_videojob_<N>` by verb (and resource, testbed.py): the API server's own count of
  the operator's requests over the window, / N. Writes per VideoJob over whole lives are
  measured by bench/orchestration.py; this shows what thousands of waiting VideoJobs cost.

Several sizes (`--videojobs 1000 3000 10000`) each run on a testbed of their own, so that one's
VideoJobs never weigh on the next; `operator_rss_mb_per_1000` and
`operator_cpu_s_per_videojob_<N>` give the slope. With three sizes, `rss_slope_ratio` and
`cpu_slope_ratio` say whether it bends: the RSS (or the CPU over the window, per VideoJob times
N) added per VideoJob from the middle size to the largest, over the same from the smallest to
the middle. 1 is a straight line; above it, each VideoJob costs more the more there are.

`accepted_all_s_<N>`: first create → every VideoJob with a phase (the operator has reconciled
each once; the burst's creates and the operator's writes share the API server).

`admission_p50_ms_<N>` (and p95): from then on, with all N there and most of them queued, a gpu
slot freed (a GPU stage pod seen Succeeded) → a Job queued before it seen unsuspended, as
bench/admission.py times it with one VideoJob at a time, over the next `ADMISSIONS` admissions
(or 300 s; `admission_reactions_<N>` says how many). Meanwhile, from the operator's own metrics:
its admission passes (`admission_passes_<N>`, `admission_pass_p50_ms_<N>` and the mean), its
reconciles per admission (`reconciles_per_admission_<N>`): what one freed slot costs it; and its
part of the reaction in the gpu pool: the slot freed as its watch read it -> the admission's patch
answered (`admission_operator_p50_ms_<N>`), of which waiting for the pass
(`admission_pass_delay_p50_ms_<N>`) and the patch (`admission_patch_p50_ms_<N>`). The rest of
`admission_p50_ms_<N>` is the two watches' delivery: the pod's success to the operator, the Job's
admission to this benchmark.

At the largest size, once every VideoJob has a phase, `--restart` SIGKILLs the operator twice
(Operator.kill):
1. **catch-up**: the operator is killed, the stage pods it had admitted finish while it is away
   (and the Job controller marks their Jobs finished: `holds_still`), and a new one starts
   with every pool at `maxConcurrency: 0` (so it admits nothing new and the cluster holds
   still). It has to write the transitions it missed, and nothing else.
   `restart_catchup_s_<N>`: kill → every VideoJob reconciled (its `videojob_reconciles_total`
   ≥ N) and its writes in the API server's audit log still for `QUIET_SECONDS`; its writes
   beside it, from the same log (`AuditWrites`).
2. **settled**: killed again and started the same way, over a cluster whose every status is
   already right. `restart_reconcile_s_<N>`: kill → every VideoJob reconciled, as above;
   `restart_writes_<N>` (status patches, Job creates and deletes, Events) must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.admission import reaction_times
from bench.report import describe, histogram_quantile, percentile, save
from bench.testbed import (
    GROUP,
    NO_WORK,
    PLURAL,
    VERSION,
    AuditWrites,
    Stream,
    Testbed,
    histograms,
    metrics_text,
    testbed,
    wait_until,
    write_figures,
)
from videojob_common.pipeline import Phase
from videojob_testkit.operator_process import Operator, parse_metrics

TICKS = os.sysconf("SC_CLK_TCK")
ADMISSIONS = 100  # admissions timed once all N VideoJobs have a phase


def sample(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds so far) of a process, from /proc."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / TICKS


class SlotWatch:
    """The gpu pool's slots freeing and its queued Jobs admitted in one namespace, as
    bench/admission.py times them (a GPU stage pod seen Succeeded -> a Job queued before it
    seen unsuspended), read with the raw watches the rest of the benchmark uses."""

    POOL = "gpu"
    SELECTOR = f"videojob.dev/pool={POOL}"

    def __init__(self, bed: Testbed, ns: str) -> None:
        self.lock = threading.Lock()
        self.freed: list[float] = []
        self.succeeded: set[str] = set()
        self.queued_since: dict[str, float] = {}
        self.admitted: dict[str, float] = {}
        self.streams = [
            Stream(bed.cluster.core.list_namespaced_pod, ns, self._pod,
                   label_selector=self.SELECTOR),
            Stream(bed.cluster.batch.list_namespaced_job, ns, self._job,
                   label_selector=self.SELECTOR)]

    def _pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        if (obj.get("status") or {}).get("phase") == "Succeeded" and name not in self.succeeded:
            with self.lock:
                self.succeeded.add(name)
                self.freed.append(now)

    def _job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name, suspended = obj["metadata"]["name"], (obj.get("spec") or {}).get("suspend")
        with self.lock:
            if suspended and name not in self.queued_since:
                self.queued_since[name] = now
            elif not suspended and name in self.queued_since and name not in self.admitted:
                self.admitted[name] = now

    def reactions(self, since: float) -> list[float]:
        """Milliseconds from a slot freed to the admission it allowed, for admissions after
        `since`."""
        with self.lock:
            admitted = sorted((at, name) for name, at in self.admitted.items() if at >= since)
            return reaction_times(list(self.freed), dict(self.queued_since), admitted)

    def stop(self) -> None:
        for stream in self.streams:
            stream.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videojobs", type=int, nargs="+", default=[1000, 2000, 3000, 10000])
    parser.add_argument("--concurrency", type=int, default=32, help="each pool's maxConcurrency")
    parser.add_argument("--until", type=int, default=200,
                        help="stop once this many VideoJobs have succeeded")
    parser.add_argument("--restart", action="store_true",
                        help="at the largest size, measure two operator restarts (SIGKILL)")
    args = parser.parse_args()
    sizes = sorted(args.videojobs)
    results: dict[str, Any] = {"machine": describe(), "videojobs": sizes,
                               "pool_concurrency": args.concurrency}
    for n in sizes:
        figures = one_size(n, args.concurrency, min(args.until, n),
                           restart=args.restart and n == sizes[-1])
        if figures is None:
            return 1
        results.update(figures)
    if len(sizes) > 1:
        results.update(slope(results, sizes))
    save("scale", results)
    return 0


def slope(results: dict[str, Any], sizes: list[int]) -> dict[str, float | None]:
    """RSS per 1,000 VideoJobs between the smallest and largest size; with three sizes or more,
    the slope from the middle size to the largest over the slope from the smallest to the
    middle, for the RSS and for the CPU (a curve that bends upwards has its middle point under
    the straight line through its ends, so that line is no test of it)."""
    lo, hi = sizes[0], sizes[-1]
    rss = {n: results[f"operator_rss_mb_{n}"] for n in sizes}
    per = (rss[hi] - rss[lo]) / (hi - lo)
    out: dict[str, float | None] = {"operator_rss_mb_per_1000": round(1000 * per, 1)}
    if len(sizes) > 2:
        mid = sizes[len(sizes) // 2]
        cpu = {n: results[f"operator_cpu_s_per_videojob_{n}"] * n for n in sizes}
        for name, total in (("rss", rss), ("cpu", cpu)):
            first = (total[mid] - total[lo]) / (mid - lo)
            then = (total[hi] - total[mid]) / (hi - mid)
            out[f"{name}_slope_ratio"] = round(then / first, 3) if first > 0 else None
    return out


def one_size(n: int, concurrency: int, until: int, *, restart: bool) -> dict[str, Any] | None:
    pools = {"gpu": {"maxConcurrency": concurrency}, "cpu": {"maxConcurrency": concurrency}}
    with testbed(f"scale-{n}", pods=4 * concurrency + 100, gpus=4 * concurrency) as bed:
        op = bed.operator(pools)
        op.start()
        assert op.proc is not None
        pid = op.proc.pid
        ns = bed.namespace("scale")
        succeeded: set[str] = set()
        failed: set[str] = set()
        accepted: set[str] = set()  # with a phase: the operator has reconciled it once
        existing = 0

        def on_videojob(kind: str, obj: dict[str, Any], _: float) -> None:
            nonlocal existing
            existing += 1 if kind == "ADDED" else 0
            phase = (obj.get("status") or {}).get("phase")
            if phase:
                accepted.add(obj["metadata"]["name"])
            if phase == Phase.SUCCEEDED:
                succeeded.add(obj["metadata"]["name"])
            elif phase == Phase.FAILED:
                failed.add(obj["metadata"]["name"])

        stream = Stream(lambda namespace, **kw: bed.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, **kw), ns, on_videojob)
        idle_rss, cpu_before = sample(pid)
        samples: list[tuple[float, float, float, int]] = []  # (t, rss, cpu, VideoJobs left)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                rss, cpu = sample(pid)
                samples.append((time.monotonic(), rss, cpu, existing - len(succeeded)))
                stop.wait(0.5)

        threading.Thread(target=sampler, daemon=True).start()
        slots = SlotWatch(bed, ns)
        before = bed.requests()
        began = time.monotonic()
        bed.create_videojobs(ns, [f"vj{i:05d}" for i in range(n)], NO_WORK)
        created_s = time.monotonic() - began
        wait_until(lambda: len(succeeded) + len(failed) >= until, 600 + 2 * n,
                   f"{until} VideoJobs finished")
        elapsed = time.monotonic() - began
        after = bed.requests()
        # `kubectl get vj` current for every VideoJob: each has a phase. Memory and CPU are
        # counted until then: a burst the operator has not caught up with yet holds fewer
        # VideoJobs than N. And the restarts start from there, or the first would be the
        # backlog of a burst it never reached.
        wait_until(lambda: len(accepted) >= n, 600 + 2 * n, f"all {n} VideoJobs accepted")
        accepted_s = time.monotonic() - began
        stop.set()
        _, cpu_after = sample(pid)
        # Admission with all N there, most of them queued: the reactions from here on, and
        # what the operator did meanwhile (its passes, its reconciles).
        accepted_at = time.monotonic()
        work_before = operator_work(op)
        with contextlib.suppress(AssertionError):  # fewer: those there are count
            wait_until(lambda: len(slots.reactions(accepted_at)) >= ADMISSIONS, 300,
                       f"{ADMISSIONS} admissions with all {n} VideoJobs there", interval=1.0)
        reactions = slots.reactions(accepted_at)
        work = admission_work(work_before, operator_work(op), len(reactions), n)
        slots.stop()
        restarts = restart_figures(bed, op, ns, n, pools) if restart else {}
        stream.stop()
    if failed:
        print(f"{len(failed)} VideoJobs failed", file=sys.stderr)
        return None
    shares = [(c2 - c1) / (t2 - t1) for (t1, _, c1, _), (t2, _, c2, left) in
              itertools.pairwise(samples) if left > 0 and t2 > t1]
    per_vj = {verb: round((after[verb] - before.get(verb, 0)) / n, 2) for verb in after}
    print(f"N={n}: first {len(succeeded)} VideoJobs succeeded in {elapsed:.0f} s; peak RSS "
          f"{max(s[1] for s in samples):.0f} MB", flush=True)
    return {
        f"create_burst_s_{n}": round(created_s, 1),
        f"window_s_{n}": round(elapsed, 1),
        f"accepted_all_s_{n}": round(accepted_s, 1),
        f"succeeded_in_window_{n}": len(succeeded),
        f"operator_rss_mb_{n}": round(max(s[1] for s in samples), 1),
        f"operator_rss_mb_{n}_idle": round(idle_rss, 1),
        f"operator_cpu_s_per_videojob_{n}": round((cpu_after - cpu_before) / n, 4),
        f"operator_cpu_share_median_{n}": round(statistics.median(shares), 3) if shares else None,
        f"requests_per_videojob_{n}": per_vj,
        f"admission_reactions_{n}": len(reactions),
        f"admission_p50_ms_{n}": round(statistics.median(reactions), 1) if reactions else None,
        f"admission_p95_ms_{n}": round(percentile(reactions, 95), 1) if reactions else None,
        **{f"{k}_{n}_window": v for k, v in write_figures(per_vj).items()},
        **work,
        **restarts,
    }


PASS = "videojob_admission_pass_seconds"
# The gpu pool's reactions, in the operator's parts (metrics.ADMISSION_REACTION and its parts):
# the key each median goes under.
REACTION_PARTS = {"videojob_admission_reaction_seconds": "admission_operator_p50_ms",
                  "videojob_admission_pass_delay_seconds": "admission_pass_delay_p50_ms",
                  "videojob_admission_patch_seconds": "admission_patch_p50_ms"}

# The operator's API calls in their parts (metrics.API_CALL): admissions' patches go on the
# `admission` threads, stage Job creates on the `handoff` ones, status writes on the `api` ones.
API_CALL = "videojob_api_call_seconds"
CALL_PARTS = {(threads, part): f"api_{threads}_{part}_p50_ms"
              for threads in ("admission", "handoff", "api")
              for part in ("thread", "request", "resume")}


def operator_work(op: Operator) -> dict[str, Any]:
    """The operator's count of reconciles and its admission histograms, now."""
    text = metrics_text(op.metrics_port)  # one read: the counters and histograms of one moment
    values = parse_metrics(text)
    return {"reconciles": sum(v for k, v in values.items()
                              if k.startswith("videojob_reconciles_total")),
            "passes": values.get(f"{PASS}_count", 0.0),
            "pass_seconds": values.get(f"{PASS}_sum", 0.0),
            "buckets": {**histograms(text, (PASS,)),
                        **histograms(text, tuple(REACTION_PARTS), {"pool": SlotWatch.POOL}),
                        **{key: histograms(text, (API_CALL,),
                                           {"threads": threads, "part": part})[API_CALL]
                           for (threads, part), key in CALL_PARTS.items()}}}


def admission_work(before: dict[str, Any], after: dict[str, Any], reactions: int,
                   n: int) -> dict[str, Any]:
    """Between two `operator_work` readings: the admission passes (how many, their median and
    mean), the reconciles per admission seen, and the medians of the operator's part of a
    reaction and its parts, with N VideoJobs there."""
    passes = after["passes"] - before["passes"]

    def p50_ms(name: str) -> float | None:
        buckets = {le: count - before["buckets"][name].get(le, 0.0)
                   for le, count in after["buckets"][name].items()}
        if not buckets or max(buckets.values()) <= 0:
            return None
        return round(1000 * histogram_quantile(0.5, buckets), 1)

    return {
        f"admission_passes_{n}": round(passes),
        f"admission_pass_p50_ms_{n}": p50_ms(PASS),
        f"admission_pass_mean_ms_{n}": (round(1000 * (after["pass_seconds"]
                                                      - before["pass_seconds"]) / passes, 1)
                                        if passes else None),
        f"reconciles_per_admission_{n}": (round((after["reconciles"] - before["reconciles"])
                                                / reactions, 1) if reactions else None),
        **{f"{key}_{n}": p50_ms(name) for name, key in REACTION_PARTS.items()},
        **{f"{key}_{n}": p50_ms(key) for key in CALL_PARTS.values()},
    }


def restart_figures(bed: Testbed, op: Operator, ns: str, n: int,
                    pools: dict[str, Any]) -> dict[str, Any]:
    """The two restarts of the module's docstring."""
    op.kill()

    def still() -> bool:
        pods = bed.cluster.core.list_namespaced_pod(ns, _preload_content=False)
        jobs = bed.cluster.batch.list_namespaced_job(ns, _preload_content=False)
        return holds_still(orjson.loads(jobs.data)["items"], orjson.loads(pods.data)["items"])

    wait_until(still, 600, "the admitted stage pods finished and their Jobs with them")
    # The same operator (its configuration, its work folder) started again, as a Deployment
    # restarts its pod, but holding every pool.
    op.overrides["pools"] = {name: {**pool, "maxConcurrency": 0} for name, pool in pools.items()}
    out: dict[str, Any] = {}
    for label, seconds_key, writes_key in (
            ("catch-up", "restart_catchup_s", "restart_catchup_writes"),
            ("settled", "restart_reconcile_s", "restart_writes")):
        if label == "settled":
            wait_until(still, 600, "the cluster still after the catch-up")
            op.kill()
        killed = time.monotonic()
        audit = bed.audit()
        op.start()
        seconds = reconciled(audit, op, n, killed)
        writes = audit.read()
        figures = {verb: writes.get(verb, 0) for verb in RESTART_WRITES}
        print(f"restart ({label}): every VideoJob reconciled {seconds:.1f} s after the kill; "
              f"writes {figures}", flush=True)
        out[f"{seconds_key}_{n}"] = seconds
        out[f"{writes_key}_{n}"] = figures
    op.stop()
    return out


def holds_still(jobs: list[dict[str, Any]], pods: list[dict[str, Any]]) -> bool:
    """Whether a namespace holds still without the operator: no pod pending or running, and
    every Job queued (suspended) or finished in the Job controller's own status. A Job whose
    pods have all exited is done only once that controller says so, and the operator moves on
    at its word: a catch-up started before then would time the Job controller's lag too, or
    end before its writes and leave them to the next restart."""
    if any(p.get("status", {}).get("phase") in ("Pending", "Running") for p in pods):
        return False
    return all(_queued(j) or _finished(j) for j in jobs)


def _queued(job: dict[str, Any]) -> bool:
    return bool(job.get("spec", {}).get("suspend")) and not job.get("status", {}).get("active")


def _finished(job: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in job.get("status", {}).get("conditions") or [])


QUIET_SECONDS = 5.0  # writes held still this long: a restart has caught up
RESTART_WRITES = ("patch videojobs/status", "patch videojobs", "create jobs", "patch jobs",
                  "delete jobs", "create events")


def reconciled(audit: AuditWrites, op: Operator, n: int, killed: float) -> float:
    """Seconds from `killed` until the operator has reconciled n VideoJobs and its writes in
    the API server's audit log have held still for QUIET_SECONDS (the log is read every half
    second: the time is when it last grew)."""
    def looked() -> bool:
        done = sum(v for k, v in op.metrics().items() if k.startswith("videojob_reconciles_total"))
        return bool(done >= n)

    wait_until(looked, 600, f"{n} VideoJobs reconciled after the restart")
    at = time.monotonic()
    last = {k: v for k, v in audit.read().items() if k in RESTART_WRITES}
    quiet_since = time.monotonic()
    give_up = quiet_since + 600  # writes that never stop are a failure, not a figure
    while time.monotonic() - quiet_since < QUIET_SECONDS:
        assert time.monotonic() < give_up, f"the operator's writes never held still: {last}"
        time.sleep(0.5)
        now = {k: v for k, v in audit.read().items() if k in RESTART_WRITES}
        if now != last:
            last, quiet_since = now, time.monotonic()
            at = quiet_since
    return round(at - killed, 1)


if __name__ == "__main__":
    sys.exit(main())
