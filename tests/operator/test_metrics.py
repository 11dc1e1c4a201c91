"""Operator metrics: outcomes recorded once, phases counted, cardinality bounded."""

from __future__ import annotations

from videojob_operator import metrics

ALLOWED_LABELS = {"pool", "priority_band", "stage", "outcome", "phase", "reason", "kind",
                  "result", "type", "version", "python", "le", "cause"}


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
