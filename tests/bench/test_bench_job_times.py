"""When the orchestration benchmark counts a stage as ended (bench/orchestration.JobTimes): at
its Job's Complete, or once a pod of each of its indexes succeeded, whichever it saw first; the
hand-off runs from there, and from the Complete alone beside it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.orchestration import JobTimes

P = "videojob.dev"


def job(stage: str, completions: int = 1, complete: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {"metadata": {"labels": {f"{P}/name": "vj", f"{P}/stage": stage}},
            "spec": {"completions": completions}, "status": {"conditions": conditions}}


def pod(stage: str, index: int, phase: str = "Succeeded") -> dict[str, Any]:
    return {"metadata": {"labels": {f"{P}/name": "vj", f"{P}/stage": stage},
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
            "status": {"phase": phase}}


def test_a_stage_ends_at_its_last_pods_success_before_the_jobs_completion() -> None:
    t = JobTimes()
    t.observe(P, job("segments", completions=2), 1.0)
    t.observe_pod(P, pod("segments", 0), 2.0)
    t.observe_pod(P, pod("segments", 1, "Running"), 2.5)
    assert ("vj", "segments") not in t.ended
    t.observe_pod(P, pod("segments", 1), 3.0)
    assert t.ended[("vj", "segments")] == 3.0
    t.observe(P, job("stitch"), 3.2)  # the next stage's Job, before the Job controller's word
    t.observe(P, job("segments", completions=2, complete=True), 3.5)
    assert t.handoffs() == [pytest.approx(200.0)]
    assert t.handoffs(since="complete") == [pytest.approx(-300.0)]


def test_a_completion_seen_first_ends_the_stage() -> None:
    t = JobTimes()
    t.observe(P, job("plan", complete=True), 1.0)
    t.observe_pod(P, pod("plan", 0), 1.5)
    t.observe(P, job("keyframes"), 1.25)
    assert t.ended[("vj", "plan")] == 1.0 and t.handoffs() == [pytest.approx(250.0)]
