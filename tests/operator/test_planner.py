"""The planner decides everything; these tests drive it with observations, no cluster."""

from __future__ import annotations

import datetime as dt
from typing import Any

from videojob_common.pipeline import stages_of
from videojob_operator.actions import Plan
from videojob_operator.admission_policy import CreationOffer, PoolLimits
from videojob_operator.api import FINALIZER
from videojob_operator.config import OperatorConfig
from videojob_operator.jobs import job_name
from videojob_operator.planner import plan
from videojob_operator.scaling import PoolLoad
from videojob_operator.status import position_worth_writing
from videojob_operator.views import JobView, Observation, PodView, ProgressView, job_view
from videojob_testkit.stage_pods import pod as pod_object

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
CONFIG = OperatorConfig()


def videojob(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1"},
            "spec": {"prompt": "x", "scenes": 2, **spec}, "status": status or {}}


def job(stage: str, **kw: Any) -> JobView:
    return JobView(name=job_name("clip", "u1", stage), stage=stage, suspended=False,
                   completions=2 if stage == "segments" else 1, **kw)


def run(vj: dict[str, Any], jobs: list[JobView] = (), pods: list[PodView] = (),  # type: ignore[assignment]
        progress: list[ProgressView] = (), now: dt.datetime = T0,  # type: ignore[assignment]
        offers: dict[str, CreationOffer] | None = None) -> Plan:
    obs = Observation(vj, list(jobs), list(pods), list(progress), now, offers=offers or {})
    p = plan(obs, CONFIG)
    assert_settled(obs, p)
    assert_settled_after_create(obs, p)
    return p


def assert_settled_after_create(obs: Observation, p: Plan) -> None:
    """Planning again once the plan's Jobs exist as created (and its finalizer and status are
    written) does nothing more: the reconcile that creates a Job does not queue another for the
    create's answer (controller.apply)."""
    if not p.create_jobs or p.remove_finalizer or p.delete_videojob:
        return
    created = [job_view({**m, "status": {}}) for m in p.create_jobs]
    meta = obs.videojob["metadata"]
    if p.add_finalizer:
        meta = {**meta, "finalizers": [*(meta.get("finalizers") or []), FINALIZER]}
    vj = {**obs.videojob, "metadata": meta,
          "status": p.status if p.status is not None else obs.videojob["status"]}
    again = plan(Observation(vj, [*obs.jobs, *created], obs.pods, obs.progress, obs.now,
                             queue_position=obs.queue_position), CONFIG)
    assert_nothing_more(p, again)


def assert_nothing_more(p: Plan, again: Plan) -> None:
    assert again.status is None, (p.status, again.status)
    assert not again.events, again.events
    assert not again.create_jobs and not again.suspend_jobs


def assert_settled(obs: Observation, p: Plan) -> None:
    """Planning again from the status the plan wrote, nothing else changed, writes nothing: the
    operator does not reconcile on the watch's echo of its own status write (controller.py). A
    plan that creates a Job is checked by assert_settled_after_create; one that patches a Job
    is left out: the patch's answer enters the cache and queues another reconcile."""
    if (p.status is None or p.add_finalizer or p.remove_finalizer or p.delete_videojob
            or p.create_jobs or p.suspend_jobs):
        return
    again = plan(Observation({**obs.videojob, "status": p.status}, obs.jobs, obs.pods,
                             obs.progress, obs.now, queue_position=obs.queue_position), CONFIG)
    assert_nothing_more(p, again)
    assert set(again.delete_jobs) <= set(p.delete_jobs)


def advance(vj: dict[str, Any], p: Plan) -> dict[str, Any]:
    """The VideoJob after the plan's status was written."""
    return {**vj, "status": p.status if p.status is not None else vj["status"]}


def stage_phases(p: Plan) -> list[str]:
    assert p.status is not None
    return [s["phase"] for s in p.status["stages"]]


def reasons(p: Plan) -> list[str]:
    return [e.reason for e in p.events]


def test_a_new_videojob_gets_its_finalizer_and_first_stage() -> None:
    vj = videojob()
    vj["metadata"]["finalizers"] = []
    p = run(vj)
    assert p.add_finalizer
    assert [j["metadata"]["labels"]["videojob.dev/stage"] for j in p.create_jobs] == ["plan"]
    (created,) = p.create_jobs
    assert created["spec"]["suspend"] is True  # admission unsuspends it (admission.py)
    assert created["metadata"]["labels"]["videojob.dev/pool"] == "cpu"
    assert created["metadata"]["annotations"]["videojob.dev/queued-at"].startswith(
        "2026-01-01T12:00:00.")
    assert p.status is not None and p.status["phase"] == "Queued"
    assert stage_phases(p) == ["Queued", "Pending", "Pending", "Pending", "Pending"]
    assert reasons(p) == ["Created", "StageQueued"]
    assert p.status["effective"]["scenes"] == 2
    assert "startTime" not in p.status  # the total deadline counts from the first admission


ROOM = {"cpu": CreationOffer(PoolLimits(10), PoolLoad(queued=0, running=0, pending=0))}
FULL = {"cpu": CreationOffer(PoolLimits(2), PoolLoad(queued=0, running=1, pending=1))}


def test_a_stage_whose_pool_has_room_starts_as_its_job_is_created() -> None:
    p = run(videojob(), offers=ROOM)  # settles: the next look, with the Job, changes nothing
    (created,) = p.create_jobs
    assert created["spec"]["suspend"] is False and created["spec"]["parallelism"] == 1
    assert created["metadata"]["annotations"]["videojob.dev/admitted-at"].startswith(
        "2026-01-01T12:00:00.")
    assert p.status is not None and p.status["phase"] == "Running"
    assert p.status["startTime"] == "2026-01-01T12:00:00Z"  # the first admission
    assert stage_phases(p) == ["Running", "Pending", "Pending", "Pending", "Pending"]
    assert [e.message for e in p.events] == [
        "VideoJob accepted: 2 scenes, 1280x720 @ 24 fps, 12s; stage plan started"]
    assert p.requeue_after == 3600  # the total deadline, from now


def test_a_stage_whose_pool_is_full_or_whose_videojob_is_suspended_is_queued() -> None:
    for vj, offers in ((videojob(), FULL), (videojob(suspend=True), ROOM), (videojob(), {})):
        (created,) = run(vj, offers=offers).create_jobs
        assert created["spec"]["suspend"] is True
        assert "videojob.dev/admitted-at" not in created["metadata"]["annotations"]


def test_a_lost_job_recreated_with_room_runs_again_and_forgets_the_loss() -> None:
    vj = advance(videojob(retry={"backoffSeconds": 10}), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", active=1)]))
    vj = advance(vj, run(vj, []))
    again = run(vj, [], now=T0 + dt.timedelta(seconds=11), offers=ROOM)
    assert again.create_jobs[0]["spec"]["suspend"] is False
    assert again.status is not None and stage_phases(again)[0] == "Running"
    assert "jobLostTime" not in again.status["stages"][0]


def test_a_queued_stage_shows_its_place_and_starts_when_admitted() -> None:
    vj = advance(videojob(), run(videojob()))
    queued = JobView(name=job_name("clip", "u1", "plan"), stage="plan", suspended=True)
    p = plan(Observation(vj, [queued], [], [], T0, queue_position=3), CONFIG)
    assert p.status is not None and p.status["queuePosition"] == 3
    assert p.status["message"] == "stage plan is queued in pool cpu at position 3"
    cond = {c["type"]: c for c in p.status["conditions"]}
    assert cond["Queued"]["status"] == "True" and cond["Ready"]["reason"] == "Queued"
    vj = advance(vj, p)
    later = T0 + dt.timedelta(seconds=5)
    started = run(vj, [job("plan", active=1)], now=later)
    assert started.status is not None and started.status["phase"] == "Running"
    assert "queuePosition" not in started.status
    assert started.status["startTime"] == "2026-01-01T12:00:05Z"
    assert stage_phases(started)[0] == "Running" and reasons(started) == ["StageStarted"]
    cond = {c["type"]: c for c in started.status["conditions"]}
    assert cond["Queued"]["status"] == "False"


def test_a_stage_admitted_and_done_between_two_looks_still_reports_its_start() -> None:
    vj = advance(videojob(), run(videojob()))
    queued = JobView(name=job_name("clip", "u1", "plan"), stage="plan", suspended=True)
    vj = advance(vj, plan(Observation(vj, [queued], [], [], T0), CONFIG))
    p = run(vj, [job("plan", succeeded=1, complete=True)], now=T0 + dt.timedelta(seconds=2))
    assert reasons(p)[:2] == ["StageStarted", "StageSucceeded"]


def test_each_hand_off_is_one_event_when_the_next_stage_starts_at_once() -> None:
    """Admitted at creation (controller.apply plans again once the new Job is cached): the
    step before and the stage's start are one Event; six for a whole run."""
    events = []
    vj = videojob()
    running: list[JobView] = [job("plan")]
    p = run(vj, running)
    events += p.events
    vj = advance(vj, p)
    done: list[JobView] = []
    for i, stage in enumerate(STAGES):
        done.append(job(stage, succeeded=2 if stage == "segments" else 1, complete=True))
        nxt = [job(STAGES[i + 1])] if stage != "publish" else []
        p = run(vj, done + nxt, now=T0 + dt.timedelta(seconds=i + 1))
        events += p.events
        vj = advance(vj, p)
    assert [(e.reason, e.message) for e in events[1:]] == [
        ("StageSucceeded", "stage plan succeeded; stage keyframes started"),
        ("StageSucceeded", "stage keyframes succeeded; stage segments started"),
        ("StageSucceeded", "stage segments succeeded; stage stitch started"),
        ("StageSucceeded", "stage stitch succeeded; stage publish started"),
        ("Succeeded", f"stage publish succeeded; video published to {p.status['outputURI']}"),
    ]
    assert events[0].reason == "Created" and events[0].message.endswith("; stage plan started")


def test_queue_position_is_exact_near_the_head_and_coarse_far_back() -> None:
    assert position_worth_writing(None, 40) and position_worth_writing(12, 10)
    assert position_worth_writing(3, 2) and not position_worth_writing(2, 2)
    assert not position_worth_writing(400, 350) and position_worth_writing(400, 300)
    vj = advance(videojob(), run(videojob()))
    queued = JobView(name=job_name("clip", "u1", "plan"), stage="plan", suspended=True)
    vj = advance(vj, plan(Observation(vj, [queued], [], [], T0, queue_position=400), CONFIG))
    p = plan(Observation(vj, [queued], [], [], T0, queue_position=390), CONFIG)
    assert p.status is None  # 400 -> 390 is not worth a write


def test_a_place_not_known_yet_keeps_the_written_one() -> None:
    """A restarted operator looks at a queued VideoJob before admission's first pass has placed
    it: nothing to write (not the place removed, then written back)."""
    vj = advance(videojob(), run(videojob()))
    queued = JobView(name=job_name("clip", "u1", "plan"), stage="plan", suspended=True)
    vj = advance(vj, plan(Observation(vj, [queued], [], [], T0, queue_position=40), CONFIG))
    assert plan(Observation(vj, [queued], [], [], T0), CONFIG).status is None
    moved = plan(Observation(vj, [queued], [], [], T0, queue_position=4), CONFIG)
    assert moved.status is not None and moved.status["queuePosition"] == 4


def test_stages_run_in_order_and_finish_with_success() -> None:
    vj = advance(videojob(), run(videojob()))
    done: list[JobView] = []
    for i, stage in enumerate(STAGES):
        done.append(job(stage, succeeded=2 if stage == "segments" else 1, complete=True))
        p = run(vj, done, now=T0 + dt.timedelta(seconds=i + 1))
        vj = advance(vj, p)
        if stage != "publish":
            assert [j["metadata"]["labels"]["videojob.dev/stage"] for j in p.create_jobs] == [
                STAGES[i + 1]]
    assert p.status is not None
    assert p.status["phase"] == "Succeeded" and p.status["progress"] == 100
    assert p.status["outputURI"].endswith("/ns/clip/u1/output.mp4")
    ready = next(c for c in p.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert "Succeeded" in reasons(p)
    # Nothing more to do afterwards, and nothing is written again.
    again = run(vj, done, now=T0 + dt.timedelta(seconds=30))
    assert again.status is None and not again.create_jobs


def test_no_stage_is_created_twice() -> None:
    vj = advance(videojob(), run(videojob()))
    p = run(vj, [job("plan", active=1)])
    assert p.create_jobs == []


def test_permanent_error_fails_with_the_workers_message() -> None:
    vj = advance(videojob(), run(videojob()))
    failed = job("plan", failed=1, failure=("PodFailurePolicy", "Container worker exited 42"))
    pod = PodView(name="clip-plan-0-x", stage="plan", phase="Failed",
                  message="permanent: images[0] is not an image", finished_at="t")
    p = run(vj, [failed], [pod])
    assert p.status is not None
    assert (p.status["phase"], p.status["reason"]) == ("Failed", "PermanentError")
    assert p.status["message"] == "permanent: images[0] is not an image"
    assert p.events[-1].type == "Warning"


def test_failure_reasons_are_specific() -> None:
    vj = advance(videojob(), run(videojob()))
    for job_reason, expected in [("BackoffLimitExceeded", "RetriesExhausted"),
                                 ("DeadlineExceeded", "StageTimeout"),
                                 ("FailedIndexes", "RetriesExhausted")]:
        p = run(vj, [job("plan", failed=4, failure=(job_reason, "..."))])
        assert p.status is not None and p.status["reason"] == expected


def test_unschedulable_pod_fails_the_stage_after_pending_seconds() -> None:
    vj = advance(videojob(timeouts={"pendingSeconds": 60}), run(videojob()))
    stuck = PodView(name="p", stage="plan", phase="Pending",
                    unschedulable_since="2026-01-01T12:00:00Z",
                    unschedulable_message="0/2 nodes are available: Insufficient nvidia.com/gpu")
    early = run(vj, [job("plan", active=1)], [stuck], now=T0 + dt.timedelta(seconds=30))
    assert early.status is None or early.status["phase"] == "Running"
    assert early.requeue_after is not None and early.requeue_after <= 30
    late = run(vj, [job("plan", active=1)], [stuck], now=T0 + dt.timedelta(seconds=61))
    assert late.status is not None and late.status["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in late.status["message"]
    assert late.delete_jobs == [job_name("clip", "u1", "plan")]


def test_total_timeout_stops_everything() -> None:
    vj = advance(videojob(timeouts={"totalSeconds": 100}), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", active=1)]))  # admitted at T0
    p = run(vj, [job("plan", active=1)], now=T0 + dt.timedelta(seconds=101))
    assert p.status is not None and p.status["reason"] == "TotalTimeout"
    assert p.delete_jobs == [job_name("clip", "u1", "plan")]


def test_suspend_and_resume_touch_only_the_suspend_flag() -> None:
    vj = advance(videojob(), run(videojob()))
    vj["spec"]["suspend"] = True
    p = run(vj, [job("plan", active=1)])
    assert p.suspend_jobs == {job_name("clip", "u1", "plan"): True}
    assert not p.create_jobs and not p.delete_jobs
    assert p.status is not None and p.status["phase"] == "Suspended"
    vj = advance(vj, p)
    vj["spec"]["suspend"] = False
    resumed = run(vj, [JobView(name=job_name("clip", "u1", "plan"), stage="plan",
                               suspended=True)])
    assert resumed.suspend_jobs == {}  # back in the queue: admission unsuspends it
    assert resumed.status is not None and resumed.status["phase"] == "Queued"
    assert "Resumed" in reasons(resumed)


def test_priority_change_changes_nothing_for_a_running_stage() -> None:
    vj = advance(videojob(), run(videojob()))
    vj["spec"]["priority"] = 50
    vj["metadata"]["generation"] = 2
    p = run(vj, [job("plan", active=1)])
    assert not p.create_jobs and not p.delete_jobs and not p.suspend_jobs


def test_suspended_videojob_starts_no_new_stage() -> None:
    vj = advance(videojob(), run(videojob()))
    vj["spec"]["suspend"] = True
    p = run(vj, [job("plan", succeeded=1, complete=True)])
    (created,) = p.create_jobs
    assert created["spec"]["suspend"] is True  # created suspended: no pod starts


def test_deletion_stops_jobs_then_releases_the_finalizer() -> None:
    vj = advance(videojob(), run(videojob()))
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    p = run(vj, [job("plan", active=1)], [PodView(name="p", stage="plan", phase="Running")])
    assert p.delete_jobs == [job_name("clip", "u1", "plan")]
    assert not p.remove_finalizer and p.requeue_after is not None
    assert p.status is not None and p.status["phase"] == "Cancelling"
    gone = run(advance(vj, p), [], [])
    assert gone.remove_finalizer


def test_deleting_a_finished_videojob_tells_of_it_once() -> None:
    # A finished VideoJob keeps its phase while its Jobs go: the Event is not repeated at every
    # look until they are gone (a Forbidden storm in a terminating namespace).
    vj = videojob({"phase": "Succeeded"})
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    done = PodView(name="p", stage="publish", phase="Succeeded")
    first = run(vj, [job("publish", complete=True)], [done])
    assert first.delete_jobs == [job_name("clip", "u1", "publish")]
    assert [e.reason for e in first.events] == ["Cancelling"]
    later = run(advance(vj, first), [job("publish", complete=True, deleting=True)], [done])
    assert later.events == [] and later.delete_jobs == []
    assert later.status is None or later.status.get("phase") == "Succeeded"
    assert run(advance(vj, later), [], []).remove_finalizer


def test_deletion_gives_up_waiting_after_the_bound_and_says_so() -> None:
    vj = advance(videojob(), run(videojob()))
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    stuck = PodView(name="p", stage="plan", phase="Running", deleting=True)
    p = run(vj, [], [stuck], now=T0 + dt.timedelta(seconds=CONFIG.cancel_timeout_seconds))
    assert p.remove_finalizer
    assert p.events[-1].reason == "CancellationIncomplete" and "p" in p.events[-1].message


def test_a_lost_job_is_recreated_after_the_backoff() -> None:
    vj = advance(videojob(retry={"backoffSeconds": 10}), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", active=1)]))
    lost = run(vj, [])
    assert "StageJobLost" in reasons(lost) and not lost.create_jobs
    vj = advance(vj, lost)
    assert run(vj, [], now=T0 + dt.timedelta(seconds=5)).create_jobs == []
    later = run(vj, [], now=T0 + dt.timedelta(seconds=11))
    assert [j["metadata"]["name"] for j in later.create_jobs] == [job_name("clip", "u1", "plan")]


def test_progress_is_folded_in_and_marked_progress_only() -> None:
    vj = advance(videojob(), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", succeeded=1, complete=True)]))
    vj = advance(vj, run(vj, [job("plan", succeeded=1, complete=True),
                              job("keyframes", active=1)]))
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", active=1)]
    p = run(vj, jobs, progress=[ProgressView("keyframes", None, 50.0, "frame 1/2", 1, 2)])
    assert p.status is not None and p.progress_only
    keyframes = next(s for s in p.status["stages"] if s["name"] == "keyframes")
    assert (keyframes["progress"], keyframes["message"]) == (50, "frame 1/2")
    assert p.status["progress"] == 5 + 7


def test_segments_progress_sums_scenes() -> None:
    vj = advance(videojob(), run(videojob()))
    done = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True)]
    vj = advance(vj, run(vj, done[:1]))
    vj = advance(vj, run(vj, done))
    p = run(vj, [*done, job("segments", active=2)], progress=[
        ProgressView("segments", 0, 100.0, "", 24, 24),
        ProgressView("segments", 1, 50.0, "", 12, 24)])
    assert p.status is not None
    seg = next(s for s in p.status["stages"] if s["name"] == "segments")
    assert seg["progress"] == 75 and seg["message"] == "frame 36/288, 0/2 scenes rendered"


def test_unchanged_status_is_not_written() -> None:
    vj = advance(videojob(), run(videojob()))
    assert run(vj, [job("plan", active=1)]).status is not None  # "starting" -> "running"
    vj = advance(vj, run(vj, [job("plan", active=1)]))
    assert run(vj, [job("plan", active=1)]).status is None


def test_ttl_deletes_the_finished_videojob() -> None:
    vj = videojob(ttlSecondsAfterFinished=60, status={"phase": "Succeeded",
                                                       "completionTime": "2026-01-01T12:00:00Z"})
    assert not run(vj, now=T0 + dt.timedelta(seconds=30)).delete_videojob
    assert run(vj, now=T0 + dt.timedelta(seconds=61)).delete_videojob


def test_a_stage_pod_starting_is_no_news() -> None:
    vj = advance(videojob(), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", succeeded=1, complete=True)]))
    started = run(vj, [job("plan", succeeded=1, complete=True), job("keyframes")])
    keyframes = next(s for s in started.status["stages"] if s["name"] == "keyframes")  # type: ignore[index]
    assert (keyframes["phase"], keyframes["attempts"]) == ("Running", 1)  # from the admission
    vj = advance(vj, started)
    assert run(vj, [job("plan", succeeded=1, complete=True),
                    job("keyframes", active=1)]).status is None  # its pod: no write
    retried = run(vj, [job("plan", succeeded=1, complete=True),
                       job("keyframes", active=1, failed=1)])
    assert retried.status is not None and retried.progress_only
    assert [s["attempts"] for s in retried.status["stages"] if s["name"] == "keyframes"] == [2]


def keyframes_running() -> tuple[dict[str, Any], list[JobView]]:
    """A VideoJob whose keyframes stage runs, and its Jobs."""
    vj = advance(videojob(), run(videojob()))
    vj = advance(vj, run(vj, [job("plan", succeeded=1, complete=True)]))
    jobs = [job("plan", succeeded=1, complete=True), job("keyframes", active=1)]
    vj = advance(vj, run(vj, jobs))
    return vj, jobs


def segments_running() -> tuple[dict[str, Any], list[JobView]]:
    """A VideoJob whose segments stage (two scenes) runs, and its Jobs."""
    vj = advance(videojob(), run(videojob()))
    done = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True)]
    vj = advance(vj, run(vj, done[:1]))
    vj = advance(vj, run(vj, done))
    jobs = [*done, job("segments", active=2)]
    vj = advance(vj, run(vj, jobs))
    return vj, jobs


def test_a_stages_final_report_shows_as_progress_once_it_has_shown_progress() -> None:
    vj, jobs = keyframes_running()
    half = ProgressView("keyframes", None, 50.0, "frame 1/2", 1, 2)
    vj = advance(vj, run(vj, jobs, progress=[half]))
    final = ProgressView("keyframes", None, 100.0, "frame 2/2", 2, 2)
    p = run(vj, jobs, progress=[final])
    # Its end may come seconds later on a busy cluster: shown at the next progress write.
    assert p.status is not None and p.progress_only
    keyframes = next(s for s in p.status["stages"] if s["name"] == "keyframes")
    assert (keyframes["progress"], keyframes["message"]) == (99, "frame 2/2")
    done = run(vj, [jobs[0], job("keyframes", succeeded=1, complete=True)], progress=[final])
    assert done.status is not None and not done.progress_only
    keyframes = next(s for s in done.status["stages"] if s["name"] == "keyframes")
    assert (keyframes["phase"], keyframes["progress"]) == ("Succeeded", 100)


def test_a_stage_that_showed_no_progress_shows_its_final_report_with_its_end() -> None:
    vj, jobs = keyframes_running()
    final = ProgressView("keyframes", None, 100.0, "frame 1/1", 1, 1)
    # A stage too short to report in between: no write of its own to show "99 %" (a status
    # write per stage in a burst of such), the end's transition shows it.
    assert run(vj, jobs, progress=[final]).status is None


def test_segments_last_scene_report_shows_once_earlier_ones_did() -> None:
    vj, jobs = segments_running()
    first = ProgressView("segments", 0, 100.0, "", 24, 24)
    p = run(vj, jobs, progress=[first])
    assert p.status is not None  # one scene of two: news
    vj = advance(vj, p)
    last = ProgressView("segments", 1, 100.0, "", 24, 24)
    p = run(vj, jobs, progress=[first, last])
    assert p.status is not None and p.progress_only
    assert p.status["stages"][2]["progress"] == 99


def test_segments_last_scene_report_waits_for_the_end_when_none_showed() -> None:
    vj, jobs = segments_running()
    both = [ProgressView("segments", i, 100.0, "", 24, 24) for i in (0, 1)]
    assert run(vj, jobs, progress=both).status is None


def test_segments_scenes_done_show_but_the_last_waits_for_the_completion() -> None:
    vj = advance(videojob(), run(videojob()))
    done = [job("plan", succeeded=1, complete=True), job("keyframes", succeeded=1, complete=True)]
    vj = advance(vj, run(vj, done[:1]))
    vj = advance(vj, run(vj, done))
    vj = advance(vj, run(vj, [*done, job("segments", active=2)]))
    p = run(vj, [*done, job("segments", active=1, succeeded=1)])
    assert p.status is not None and p.status["stages"][2]["completed"] == 1  # 1 of 2: news
    vj = advance(vj, p)
    assert run(vj, [*done, job("segments", succeeded=2)]).status is None
    p = run(vj, [*done, job("segments", succeeded=2, complete=True)])
    assert p.status is not None and p.status["stages"][2]["completed"] == 2
    assert p.status["stages"][2]["phase"] == "Succeeded"





def test_a_changed_configuration_neither_moves_nor_fails_what_ran_before_it() -> None:
    """A storage root changed and a limit tightened after a VideoJob: one that ended writes
    nothing (its output stays where it is; it is not failed after the fact), and one under way
    keeps its files where its stages wrote them."""
    moved = OperatorConfig(storage_root="file:///elsewhere")
    tight = OperatorConfig.model_validate({"limits": {"*": {"max_scenes": 1}}})
    vj = advance(videojob(), run(videojob()))
    running = [job("plan", succeeded=1, complete=True), job("keyframes", active=1)]
    vj = advance(vj, run(vj, running))
    recorded = vj["status"]["effective"]
    under_way = plan(Observation(vj, running, [], [], T0), moved)
    assert under_way.status is None or under_way.status["effective"] == recorded
    done: list[JobView] = []
    for i, stage in enumerate(STAGES):
        done.append(job(stage, succeeded=2 if stage == "segments" else 1, complete=True))
        vj = advance(vj, run(vj, done, now=T0 + dt.timedelta(seconds=i + 1)))
    assert vj["status"]["phase"] == "Succeeded"
    for config in (moved, tight):
        again = plan(Observation(vj, done, [], [], T0 + dt.timedelta(seconds=9)), config)
        assert again.status is None and not again.create_jobs and not again.events
    # The same limit refuses a new VideoJob, naming the field.
    fresh = plan(Observation(videojob(), [], [], [], T0), tight)
    assert fresh.status is not None and fresh.status["phase"] == "Failed"
    assert "scenes" in fresh.status["message"]


def test_what_moves_as_a_pod_ends_waits_for_the_stage_end_to_write_it() -> None:
    """A GPU stage's pod ended: its GPU-seconds (and scenes completed) alone are `settling_only`
    (the controller holds them up to SETTLE_SECONDS); the Job's completion then writes them
    with its transition. After the end they are written as they come (the archive's figure)."""
    start, end = "2026-01-01T12:00:01Z", "2026-01-01T12:00:05Z"
    vj = advance(videojob(), run(videojob()))
    plan_done = job("plan", succeeded=1, complete=True)
    vj = advance(vj, run(vj, [plan_done, job("keyframes", active=1)]))
    ended = (pod_object("k0", "keyframes", start, end),)
    obs = Observation(vj, [plan_done, job("keyframes", active=1)], [], [], T0,
                      pod_objects=ended)
    p = plan(obs, CONFIG)
    assert p.status is not None and p.progress_only and p.settling_only
    complete = Observation(vj, [plan_done, job("keyframes", succeeded=1, complete=True)], [], [],
                           T0, pod_objects=ended)
    p = plan(complete, CONFIG)
    assert p.status is not None and not p.settling_only and p.status["gpuSeconds"] == 4
    # A report of progress is no settling: written at most once a second, as before.
    reported = plan(Observation(vj, [plan_done, job("keyframes", active=1)], [],
                                [ProgressView("keyframes", None, 40.0, "frame 2/5")], T0),
                    CONFIG)
    assert reported.progress_only and not reported.settling_only
