"""Progress freshness: a worker's progress event -> the same (or a later) figure visible in the
VideoJob's status, and how many status writes that costs.

N VideoJobs run at once on a testbed cluster (testbed.py), pools wide enough for all; in each,
the keyframes stage (scripted worker, `sleep:keyframes:<seconds>`, 20 s by default) reports
progress ten times a second through Redis, as the real worker does, and logs when each report
left it. The VideoJobs are created in one burst, so their keyframes stages start (and end) within
a few seconds of each other, while the other VideoJobs' pods start (and stop) on the same 2 cores;
a stage of 20 s has a steady middle between those two bursts, as a real stage of minutes has.
One watch of the VideoJobs timestamps every status it receives. An event counts as visible at
the first status whose keyframes message is that event's or a later one's ("frame 12/50"), or
says the stage is done; the latency is that moment minus the moment the worker sent it (one
clock: the same machine).

Each figure is the median over `--repeats` runs (three by default), each on a fresh testbed;
`runs` holds every run's own.

- `progress_p50_ms`, `progress_p99_ms`: over every event of every VideoJob;
- `freshest_report_p50_ms`, `freshest_report_p99_ms`: for each status that shows a report, how
  old that report was when the status was seen: the path worker -> Redis -> operator -> API
  server -> watch, without the wait for the next write that the once-a-second limit adds;
- `progress_p50_ms_by_third`, `progress_p99_ms_by_third`: the same, for the reports sent in each
  third of the time between the first and the last report: the first and last thirds hold the
  bursts of pods starting and stopping, the middle one the steady state;
- `progress_p99_ms_by_place`: the same, by where in its own stage each report was sent: its
  first or last `place_seconds`, or between;
- `operator_ms`: [p50, p99] of the operator's reconciles and of the parts of its requests on
  its API threads (waiting for a thread, the request, the event loop taking the answer), from
  its histograms, so only as fine as their buckets;
- `status_writes_per_s`: status changes per VideoJob per second while its keyframes stage
  reports (median over VideoJobs; the maximum beside it). The operator writes a progress-only
  change at most once a second per VideoJob (controller.PROGRESS_WRITE_INTERVAL), so ten
  events a second become at most one write; a p50 of about half a second is the price of that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import defaultdict
from typing import Any

from bench.report import describe, histogram_quantile, percentile, save
from bench.testbed import (
    GROUP,
    PLURAL,
    VERSION,
    Stream,
    histograms,
    metrics_text,
    testbed,
    wait_until,
)
from videojob_common.pipeline import TERMINAL, Stage

STAGE = Stage.KEYFRAMES
PLACE_SECONDS = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videojobs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0, help="keyframes stage length")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs, each on a fresh testbed; the figures are their medians")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        run = one_run(args.videojobs, args.seconds)
        if run is None:
            return 1
        runs.append(run)
    save("progress", {"machine": describe(), "videojobs": args.videojobs,
                      "stage_seconds": args.seconds, "repeats": len(runs),
                      **median_of(runs), "runs": runs})
    return 0


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs; of a list or dict of figures, each element's."""
    def med(values: list[Any]) -> Any:
        if all(isinstance(v, dict) for v in values):
            return {k: med([v.get(k) for v in values]) for k in values[0]}
        if all(isinstance(v, list) for v in values):
            return [med(list(column)) for column in zip(*values, strict=True)]
        numbers = [v for v in values if isinstance(v, int | float)]
        return round(statistics.median(numbers), 2) if numbers else None
    return {k: med([r[k] for r in runs]) for k in runs[0]}


def one_run(n: int, seconds: float) -> dict[str, Any] | None:
    """One run's figures (None if some VideoJob's progress was never seen)."""
    with testbed("progress", pods=4 * n + 100, gpus=4 * n) as bed:
        progress_log = bed.root / "progress.log"
        op = bed.operator({"gpu": {"maxConcurrency": 4 * n}, "cpu": {"maxConcurrency": 4 * n}},
                          worker_env={"VIDEOJOB_TEST_PROGRESS_LOG": str(progress_log)})
        op.start()
        ns = bed.namespace("progress")
        wall = time.time() - time.monotonic()
        seen: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
        uids: dict[str, str] = {}
        done: set[str] = set()
        lock = threading.Lock()

        def on_videojob(_: str, obj: dict[str, Any], now: float) -> None:
            status = obj.get("status") or {}
            stage = next((s for s in status.get("stages") or [] if s.get("name") == STAGE), {})
            with lock:
                uids[obj["metadata"]["name"]] = obj["metadata"]["uid"]
                seen[obj["metadata"]["uid"]].append((now + wall, stage.get("message")))
                if status.get("phase") in TERMINAL:
                    done.add(obj["metadata"]["name"])

        stream = Stream(lambda namespace, **kw: bed.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, **kw), ns, on_videojob)
        names = [f"vj{i:03d}" for i in range(n)]
        bed.create_videojobs(ns, names, {
            "prompt": f"sleep:{STAGE}:{seconds}", "scenes": 1, "durationSeconds": 2,
            "fps": 4, "resolution": "64x64"})
        wait_until(lambda: len(done) == n, 120 + 2 * n, "every VideoJob finished")
        stream.stop()
        work = metrics_text(op.metrics_port)
    events: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for line in progress_log.read_text().splitlines():
        uid, stage, d, total, at = line.split()
        if stage == STAGE:
            events[uid].append((f"frame {d}/{total}", float(at)))
    timed: list[tuple[float, float]] = []  # (when sent, latency in ms) of every event shown
    # The same latencies by where in its own stage the event was sent: its first or last
    # PLACE_SECONDS, or between (a tail at the ends is the stages' starts and hand-offs).
    by_place: dict[str, list[float]] = {"start": [], "middle": [], "end": []}
    freshest: list[float] = []
    writes_per_s: list[float] = []
    emitted = 0
    for uid, evs in events.items():
        evs.sort(key=lambda e: e[1])
        emitted += len(evs)
        order = {msg: i for i, (msg, _) in enumerate(evs)}
        order["done"] = len(evs)  # the stage's completion shows (supersedes) every report
        observed = [(t, order[m]) for t, m in seen[uid] if m in order]
        first, last = evs[0][1], evs[-1][1]
        for k, (_, sent) in enumerate(evs):
            shown = next((t for t, i in observed if i >= k and t >= sent), None)
            if shown is not None:
                timed.append((sent, (shown - sent) * 1000))
                place = ("start" if sent - first < PLACE_SECONDS
                         else "end" if last - sent < PLACE_SECONDS else "middle")
                by_place[place].append((shown - sent) * 1000)
        sent_at = dict(evs)
        first_shown: dict[str, float] = {}
        for t, m in seen[uid]:
            if m in sent_at:
                first_shown.setdefault(m, t)
        freshest += [(t - sent_at[m]) * 1000 for m, t in first_shown.items()]
        writes = sum(1 for t, _ in seen[uid] if first <= t <= last + 1.0)
        writes_per_s.append(writes / max(last + 1.0 - first, 1e-3))
    latencies = [ms for _, ms in timed]
    if not latencies or len(events) < n:
        print(f"progress seen for {len(events)} of {n} VideoJobs", file=sys.stderr)
        return None
    start, end = min(t for t, _ in timed), max(t for t, _ in timed)
    thirds: list[list[float]] = [[], [], []]
    for sent, ms in timed:
        thirds[min(2, int(3 * (sent - start) / max(end - start, 1e-3)))].append(ms)
    return {
        "events": emitted,
        "events_shown_or_superseded": len(latencies),
        "events_per_s_per_videojob": 10,
        "progress_p50_ms": round(statistics.median(latencies), 1),
        "progress_p99_ms": round(percentile(latencies, 99), 1),
        "progress_max_ms": round(max(latencies), 1),
        "progress_p50_ms_by_third": [round(statistics.median(t), 1) if t else None
                                     for t in thirds],
        "progress_p99_ms_by_third": [round(percentile(t, 99), 1) if t else None
                                     for t in thirds],
        "progress_p99_ms_by_place": {k: round(percentile(v, 99), 1) if v else None
                                     for k, v in by_place.items()},
        "place_seconds": PLACE_SECONDS,
        "operator_ms": operator_parts(work),
        "freshest_report_p50_ms": round(statistics.median(freshest), 1),
        "freshest_report_p99_ms": round(percentile(freshest, 99), 1),
        "status_writes_per_s": round(statistics.median(writes_per_s), 2),
        "status_writes_per_s_max": round(max(writes_per_s), 2),
    }


def operator_parts(text: str) -> dict[str, Any]:
    """p50 and p99 (as fine as the buckets) of the operator's reconciles and of the parts of
    its requests on the API threads (the status writes among them), over the whole run."""
    parts = {"reconcile": histograms(text, ("videojob_reconcile_seconds",))[
        "videojob_reconcile_seconds"]}
    for part in ("thread", "request", "resume"):
        parts[f"api_{part}"] = histograms(text, ("videojob_api_call_seconds",), {
            "threads": "api", "part": part})["videojob_api_call_seconds"]
    return {name: [round(1000 * histogram_quantile(q, b), 1) if b else None for q in (0.5, 0.99)]
            for name, b in parts.items()}


if __name__ == "__main__":
    sys.exit(main())
