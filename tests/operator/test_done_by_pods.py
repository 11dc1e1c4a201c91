"""A stage Job is done once a pod of each of its indexes has succeeded (views.done_by_pods),
before the Job controller writes its completion; and the store's views say so."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from videojob_operator.jobs import LABEL_NAME, LABEL_STAGE, LABEL_UID
from videojob_operator.kube import Api
from videojob_operator.store import Store
from videojob_operator.views import JobView, PodView, done_by_pods

JOB = JobView(name="clip-segments", stage="segments", suspended=False, active=2,
              completions=2, uid="job-1")


def pod(index: int, phase: str = "Succeeded", job_uid: str = "job-1",
        finished: str = "2026-12-06T10:00:00Z") -> PodView:
    return PodView(name=f"clip-segments-{index}-x", stage="segments", phase=phase,
                   job_uid=job_uid, index=index, finished_at=finished)


def test_every_index_succeeded_is_done_with_the_last_pods_end() -> None:
    view = done_by_pods(JOB, [pod(0, finished="2026-12-06T10:00:05Z"),
                              pod(1, finished="2026-12-06T10:00:09Z")])
    assert view.complete and view.succeeded == 2 and view.active == 0
    assert view.completion_time == "2026-12-06T10:00:09Z"


def test_an_index_still_running_or_only_failed_is_not_done() -> None:
    assert not done_by_pods(JOB, [pod(0), pod(1, "Running")]).complete
    assert not done_by_pods(JOB, [pod(0), pod(1, "Failed")]).complete
    assert not done_by_pods(JOB, [pod(0), pod(0)]).complete  # one index twice is not two


def test_a_retried_index_counts_by_its_success_and_its_failure_as_an_attempt() -> None:
    view = done_by_pods(JOB, [pod(0), pod(1, "Failed"), pod(1)])
    assert view.complete and (view.succeeded, view.failed) == (2, 1)


def test_pods_of_another_job_or_out_of_range_do_not_count() -> None:
    # A pod of an earlier Job of the same name (its deletion not seen yet) has another uid.
    assert not done_by_pods(JOB, [pod(0), pod(1, job_uid="job-0")]).complete
    assert not done_by_pods(JOB, [pod(0), pod(2)]).complete
    assert not done_by_pods(JOB, [pod(0), PodView(name="p", stage="segments",
                                                  phase="Succeeded", job_uid="job-1")]).complete


def test_the_jobs_own_word_stands() -> None:
    for job in (JobView(**{**JOB.__dict__, "failure": ("DeadlineExceeded", "too long")}),
                JobView(**{**JOB.__dict__, "deleting": True}),
                JobView(**{**JOB.__dict__, "suspended": True})):
        assert done_by_pods(job, [pod(0), pod(1)]) == job


def _job(uid: str) -> dict[str, Any]:
    return {"metadata": {"name": "clip-segments", "namespace": "a", "uid": uid,
                         "resourceVersion": "5", "labels": {LABEL_NAME: "clip",
                                                            LABEL_STAGE: "segments"},
                         "ownerReferences": [{"kind": "VideoJob", "uid": "u", "name": "clip"}]},
            "spec": {"completions": 2, "parallelism": 2}, "status": {"active": 2}}


def _pod(index: int, job_uid: str, rv: int) -> dict[str, Any]:
    return {"metadata": {
        "name": f"clip-segments-{index}-{job_uid}", "namespace": "a", "uid": f"p{index}{job_uid}",
        "resourceVersion": str(rv),
        "labels": {LABEL_NAME: "clip", LABEL_STAGE: "segments", LABEL_UID: "u",
                   "batch.kubernetes.io/job-name": "clip-segments"},
        "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        "ownerReferences": [{"kind": "Job", "uid": job_uid, "name": "clip-segments",
                             "controller": True}]},
        "status": {"phase": "Succeeded"}}


def test_the_store_shows_the_job_done_when_its_pods_are_and_a_pod_success_is_urgent() -> None:
    store = Store(Api(client.ApiClient()))
    told = []
    store.subscribe(told.append)
    store.observe_child("job", "ADDED", _job("job-1"))
    store.observe_child("pod", "ADDED", _pod(0, "job-1", 6))
    # A pod of the Job's predecessor of the same name: its deletion has not come yet.
    store.observe_child("pod", "ADDED", _pod(1, "job-0", 7))
    (view,), _ = store.children(("a", "clip"), "u")
    assert not view.complete
    store.observe_child("pod", "ADDED", _pod(1, "job-1", 8))
    (view,), _ = store.children(("a", "clip"), "u")
    assert view.complete and view.succeeded == 2
    assert told[-1].urgent and told[-1].kind == "pod"
