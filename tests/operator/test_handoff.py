"""The hand-off figures (handoff_metrics.py): what the operator times of a stage hand-off, fed
as the watch and the creates feed it."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from videojob_operator import handoff_metrics, metrics
from videojob_operator.kube import Api
from videojob_operator.store import Store


def histogram(name: str) -> tuple[float, float]:
    """(count, sum) of a histogram so far."""
    return (metrics.REGISTRY.get_sample_value(f"{name}_count") or 0.0,
            metrics.REGISTRY.get_sample_value(f"{name}_sum") or 0.0)


def grew(before: tuple[float, float], name: str) -> tuple[float, float]:
    count, total = histogram(name)
    return count - before[0], round(total - before[1], 6)


def stage_job(stage: str, rv: int, *, complete: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {"metadata": {"name": f"clip-{stage}", "namespace": "a", "uid": f"u-{stage}",
                         "resourceVersion": str(rv),
                         "labels": {"videojob.dev/name": "clip", "videojob.dev/stage": stage}},
            "spec": {}, "status": {"conditions": conditions}}


def store() -> Store:
    return Store(Api(client.ApiClient()))


def test_the_watch_delay_is_from_the_answer_to_the_event_whichever_comes_first() -> None:
    clock = handoff_metrics.HandoffClock()
    before = histogram("videojob_watch_delay_seconds")
    clock.job_created(("a", "j1"), 10.0)
    clock.job_added(("a", "j1"), 10.25)
    clock.job_added(("a", "j2"), 11.0)  # the event before the answer: no delay at all
    clock.job_created(("a", "j2"), 11.5)
    assert grew(before, "videojob_watch_delay_seconds") == (2, 0.25)
    assert not clock.created and not clock.added


def test_a_handoff_runs_from_the_last_completion_to_the_next_create() -> None:
    clock = handoff_metrics.HandoffClock()
    before = histogram("videojob_handoff_seconds")
    clock.next_stage_created(("a", "clip"), 1.0)  # nothing finished: not a hand-off
    clock.stage_finished(("a", "clip"), 5.0)
    clock.stage_finished(("a", "clip"), 6.0)  # a later Job of the same stage
    clock.next_stage_created(("a", "clip"), 6.5)
    clock.next_stage_created(("a", "clip"), 6.6)  # the stage's second Job: counted once
    assert grew(before, "videojob_handoff_seconds") == (1, 0.5)


def test_marks_without_a_partner_are_dropped_when_old() -> None:
    clock = handoff_metrics.HandoffClock()
    clock.job_added(("a", "from-before-a-restart"), 0.0)
    clock.job_created(("a", "seen-through-a-listing"), 100.0)
    clock.stage_finished(("a", "clip"), 100.0)
    clock.prune(handoff_metrics.MAX_AGE + 1)
    assert not clock.added and clock.created and clock.finished
    clock.prune(100 + handoff_metrics.MAX_AGE + 1)
    assert not clock.created and not clock.finished


def test_the_store_times_only_watch_events_and_first_completions() -> None:
    c = store()
    c.handoffs.job_created(("a", "clip-plan"), 1.0)
    delay = histogram("videojob_watch_delay_seconds")
    c.answered("job", stage_job("plan", 10), reconcile=False)  # a create's answer
    assert grew(delay, "videojob_watch_delay_seconds") == (0, 0)
    c.observe_child("job", "ADDED", stage_job("plan", 10), trimmed=False, arrived=1.5)
    assert grew(delay, "videojob_watch_delay_seconds") == (1, 0.5)

    c.observe_child("job", "MODIFIED", stage_job("plan", 11, complete=True), arrived=7.0)
    assert c.handoffs.finished == {("a", "clip"): 7.0}
    c.handoffs.finished.clear()
    job = stage_job("plan", 12, complete=True)
    job["metadata"]["annotations"] = {"extra": "x"}  # a change while Complete: not a second finish
    c.observe_child("job", "MODIFIED", job, arrived=8.0)
    assert not c.handoffs.finished
    c.observe_child("job", "ADDED", stage_job("publish", 20, complete=True), arrived=9.0)
    assert not c.handoffs.finished  # the last stage hands off to nothing

    c.observe_videojob("DELETED", {"metadata": {"namespace": "a", "name": "clip", "uid": "u"}})
    c.handoffs.stage_finished(("a", "clip"), 1.0)
    c.observe_videojob("DELETED", {"metadata": {"namespace": "a", "name": "clip", "uid": "u"}})
    assert not c.handoffs.finished


def test_a_completion_seen_after_the_next_stage_started_starts_no_hand_off() -> None:
    """The Job controller's Complete often comes after the stage's last pod succeeded and the
    next stage's Job was created: it leaves no mark for a later create to take."""
    c = store()
    c.observe_child("job", "ADDED", stage_job("plan", 10), arrived=1.0)
    c.observe_child("job", "ADDED", stage_job("keyframes", 12), arrived=3.0)
    c.observe_child("job", "MODIFIED", stage_job("plan", 13, complete=True), arrived=4.0)
    assert not c.handoffs.finished
    # A stage that runs beside another (narrate beside keyframes) is no hand-off of it.
    c.observe_child("job", "ADDED", stage_job("narrate", 14), arrived=5.0)
    c.observe_child("job", "MODIFIED", stage_job("keyframes", 15, complete=True), arrived=6.0)
    assert c.handoffs.finished == {("a", "clip"): 6.0}
