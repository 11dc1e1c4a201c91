"""The pipeline as a DAG (#28): narrate beside keyframes and segments, stitch after both. The
planner driven through a whole narrated run, a failing branch and a deletion with both
branches running."""

from __future__ import annotations

import datetime as dt
from typing import Any

from videojob_common.pipeline import NEEDS, STAGES, Stage, StagePhase, stages_of
from videojob_operator.actions import Plan
from videojob_operator.api import FINALIZER
from videojob_operator.config import OperatorConfig
from videojob_operator.jobs import job_name
from videojob_operator.planner import plan
from videojob_operator.views import JobView, Observation, PodView

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
CONFIG = OperatorConfig()
NARRATION = {"lines": ["One.", "Two."], "voice": "en"}


def videojob(status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1", **meta},
            "spec": {"prompt": "x", "scenes": 2, "narration": NARRATION},
            "status": status or {}}


def job(stage: str, **kw: Any) -> JobView:
    return JobView(name=job_name("clip", "u1", stage), stage=stage, suspended=False,
                   completions=2 if stage == "segments" else 1, **kw)


def run(vj: dict[str, Any], jobs: list[JobView], pods: list[PodView] = ()  # type: ignore[assignment]
        ) -> Plan:
    return plan(Observation(vj, list(jobs), list(pods), [], T0), CONFIG)


def created(p: Plan) -> list[str]:
    return [m["metadata"]["labels"]["videojob.dev/stage"] for m in p.create_jobs]


def test_the_dag_is_one() -> None:
    for stage, needs in NEEDS.items():
        assert all(STAGES.index(n) < STAGES.index(stage) for n in needs)  # listed in order
    assert stages_of(narrated=False) == (Stage.PLAN, Stage.KEYFRAMES, Stage.SEGMENTS,
                                         Stage.STITCH, Stage.PUBLISH)
    assert Stage.NARRATE in stages_of(narrated=True)


def test_narrate_starts_with_keyframes_and_stitch_waits_for_both() -> None:
    p = run(videojob(), [])
    assert created(p) == ["plan"]
    assert p.status is not None and [s["name"] for s in p.status["stages"]] == [
        "plan", "keyframes", "segments", "narrate", "stitch", "publish"]
    # plan done: both branches start in one look.
    p = run(videojob(p.status), [job("plan", succeeded=1, complete=True)])
    assert sorted(created(p)) == ["keyframes", "narrate"]
    assert p.status is not None and p.status["currentStage"] == "keyframes+narrate"
    status = p.status
    # narrate finished first: stitch still waits for segments.
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True),
            job("segments", active=2), job("narrate", succeeded=1, complete=True)]
    p = run(videojob(status), jobs)
    assert created(p) == []
    assert p.status is not None and p.status["currentStage"] == "segments"
    by = {s["name"]: s["phase"] for s in p.status["stages"]}
    assert by["narrate"] == StagePhase.SUCCEEDED and by["segments"] == StagePhase.RUNNING
    # segments done too: stitch now.
    jobs[2] = job("segments", succeeded=2, complete=True)
    p = run(videojob(p.status), jobs)
    assert created(p) == ["stitch"]


def test_both_branches_running_show_in_the_current_stage() -> None:
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True),
            job("segments", active=2), job("narrate", active=1)]
    p = run(videojob(), jobs)
    assert p.status is not None and p.status["currentStage"] == "segments+narrate"
    assert p.status["phase"] == "Running"


def test_a_failing_branch_fails_the_videojob_and_stops_the_other() -> None:
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True),
            job("segments", active=2),
            job("narrate", failed=1, failure=("PodFailurePolicy", "exit 42"))]
    pods = [PodView(name="clip-narrate-0", stage="narrate", phase="Failed",
                    message="permanent: spec.narration.voice 'xx' is not installed")]
    p = run(videojob(), jobs, pods)
    assert p.status is not None and p.status["phase"] == "Failed"
    assert p.status["reason"] == "PermanentError"
    assert "spec.narration.voice" in p.status["message"]
    assert job_name("clip", "u1", "segments") in p.delete_jobs
    assert created(p) == []


def test_deleting_it_while_both_branches_run_deletes_both_jobs() -> None:
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True),
            job("segments", active=2), job("narrate", active=1)]
    vj = videojob(deletionTimestamp="2026-01-01T12:00:00Z")
    p = run(vj, jobs)
    assert {job_name("clip", "u1", "segments"), job_name("clip", "u1", "narrate")} <= set(
        p.delete_jobs)
    assert not p.remove_finalizer  # not before their pods are gone


def test_narrate_reports_how_long_the_video_grew() -> None:
    jobs = [job(s, succeeded=2 if s == "segments" else 1, complete=True)
            for s in ("plan", "keyframes", "segments", "narrate")]
    pods = [PodView(name="clip-narrate-0", stage="narrate", phase="Succeeded",
                    message='{"durationSeconds": 13.5, "extensionSeconds": 1.5}')]
    status = run(videojob(), [j for j in jobs if j.stage != "narrate"]).status
    p = run(videojob(status), jobs, pods)
    assert p.status is not None and p.status["durationSeconds"] == 13.5


def test_the_total_deadline_fails_both_branches_and_stops_their_jobs() -> None:
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True),
            job("segments", active=2), job("narrate", active=1)]
    started = run(videojob(), jobs).status
    assert started is not None
    late = plan(Observation(videojob({**started, "startTime": "2026-01-01T10:00:00Z"}), jobs,
                            [], [], T0), CONFIG)  # two hours later; the default bound is one
    assert late.status is not None and late.status["reason"] == "TotalTimeout"
    phases = {s["name"]: s["phase"] for s in late.status["stages"]}
    assert phases["segments"] == phases["narrate"] == StagePhase.FAILED
    assert {job_name("clip", "u1", "segments"), job_name("clip", "u1", "narrate")} <= set(
        late.delete_jobs)


def test_each_branch_is_told_once_when_plan_hands_over() -> None:
    p = run(videojob(run(videojob(), []).status), [job("plan", succeeded=1, complete=True)])
    told = [(e.reason, e.message) for e in p.events]
    assert ("StageQueued", "stage keyframes queued in pool gpu") in told
    assert ("StageQueued", "stage narrate queued in pool cpu") in told
    assert len(told) == len(set(told))
