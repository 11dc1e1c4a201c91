"""Operator metrics: outcomes recorded once, phases counted, cardinality bounded."""

from __future__ import annotations

from videojob_operator import metrics

# `namespace`: GPU-seconds per tenant (videojob_gpu_seconds_total, videojob_output_seconds_total);
# one series per namespace and pool, never per VideoJob.
ALLOWED_LABELS = {"pool", "priority_band", "stage", "outcome", "phase", "reason", "kind",
                  "result", "type", "version", "python", "le", "cause", "event", "namespace",
                  "cache"}  # cache: a namespace or a shared cache's name, as bounded


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
