"""Operator metrics: outcomes recorded once, phases counted, cardinality bounded."""

from __future__ import annotations

import asyncio
import threading
import time

from kubernetes import client

from videojob_operator import metrics
from videojob_operator.kube import Api

# `namespace`: GPU-seconds per tenant (videojob_gpu_seconds_total, videojob_output_seconds_total);
# one series per namespace and pool, never per VideoJob.
ALLOWED_LABELS = {"pool", "priority_band", "stage", "outcome", "phase", "reason", "kind",
                  "result", "type", "version", "python", "le", "cause", "event", "namespace",
                  "cache", "threads", "part"}  # cache: a namespace or a shared cache's name


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_stage_and_videojob_outcomes_are_recorded_once() -> None:
    before = value("videojob_stage_duration_seconds_count", stage="segments", outcome="failed")
    failures = value("videojob_failures_total", reason="RetriesExhausted")
    old = {"phase": "Running", "stages": [{"name": "segments", "phase": "Running",
                                           "startTime": "2026-01-01T00:00:00Z"}]}
    new = {"phase": "Failed", "reason": "RetriesExhausted",
           "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:00Z",
           "stages": [{"name": "segments", "phase": "Failed",
                       "startTime": "2026-01-01T00:00:00Z",
                       "completionTime": "2026-01-01T00:00:30Z"}]}
    metrics.record_transition(old, new)
    metrics.record_transition(new, new)  # written again: not counted again
    assert value("videojob_stage_duration_seconds_count", stage="segments",
                 outcome="failed") == before + 1
    assert value("videojob_failures_total", reason="RetriesExhausted") == failures + 1


def test_videojobs_are_counted_by_phase() -> None:
    collector = metrics.PhaseCollector(lambda: [
        {"status": {"phase": "Queued"}}, {"status": {"phase": "Queued"}}, {"status": {}}])
    (family,) = list(collector.collect())
    counts = {s.labels["phase"]: s.value for s in family.samples}
    assert counts["Queued"] == 2 and counts["Pending"] == 1 and counts["Running"] == 0


def test_no_metric_has_a_per_videojob_label() -> None:  # argo #13683
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)


def test_notification_series_are_the_events_by_outcome_and_exist_from_the_start() -> None:
    """Bounded: 7 events x 3 outcomes, never a URL or a VideoJob (notifications.py)."""
    (family,) = [f for f in metrics.REGISTRY.collect() if f.name == "videojob_notifications"]
    series = {(s.labels["event"], s.labels["outcome"]) for s in family.samples
              if s.name.endswith("_total")}
    assert series == {(e, o) for e in ("Queued", "Running", "StageSucceeded", "Succeeded",
                                       "Failed", "Cancelled", "Progress")
                      for o in ("delivered", "retried", "gave_up")}


def test_an_api_call_is_timed_in_its_parts_on_its_own_threads() -> None:
    """kube.Api.call: the request's time on its thread, and the event loop's lag in taking the
    answer (here the loop is held 50 ms after the request ended), under its pool's label."""
    def count(part: str) -> float:
        return value("videojob_api_call_seconds_count", threads="handoff", part=part)

    def total(part: str) -> float:
        return value("videojob_api_call_seconds_sum", threads="handoff", part=part)

    api = Api(client.ApiClient())
    go, done = threading.Event(), threading.Event()

    def request() -> int:
        go.wait(5)
        time.sleep(0.03)
        done.set()
        return 7

    async def hold_the_loop() -> None:
        go.set()
        done.wait(5)
        time.sleep(0.05)  # the loop is busy as the answer comes back

    async def main() -> int:
        call = asyncio.ensure_future(api.call(request, executor=api.handoff_executor))
        await asyncio.sleep(0)
        await hold_the_loop()
        return await call

    before = {part: (count(part), total(part)) for part in ("thread", "request", "resume")}
    others = value("videojob_api_call_seconds_count", threads="api", part="request")
    try:
        assert asyncio.run(main()) == 7
    finally:
        api.shutdown()
    for part in ("thread", "request", "resume"):
        assert count(part) == before[part][0] + 1
    assert total("request") - before["request"][1] >= 0.03
    assert total("resume") - before["resume"][1] >= 0.04
    assert value("videojob_api_call_seconds_count", threads="api", part="request") == others


def test_admissions_have_threads_of_their_own() -> None:
    """An admission's patch never waits for a thread behind the stage Job creates of a burst."""
    def count(threads: str) -> float:
        return value("videojob_api_call_seconds_count", threads=threads, part="thread")

    api = Api(client.ApiClient())
    api.kube.patch_job = lambda ns, name, patch: {"patched": name}  # type: ignore[method-assign]
    before = {threads: count(threads) for threads in ("admission", "handoff", "api")}
    try:
        assert asyncio.run(api.patch_job("ns", "j", {})) == {"patched": "j"}
    finally:
        api.shutdown()
    assert {threads: count(threads) - n for threads, n in before.items()} == {
        "admission": 1, "handoff": 0, "api": 0}
