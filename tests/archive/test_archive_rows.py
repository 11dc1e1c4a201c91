"""The archive's row of a finished VideoJob, from the object and its pods as the API server
returns them: per-stage times, attempts and pods, and GPU-seconds with every attempt in them."""

from __future__ import annotations

import datetime as dt

import pytest

from videojob_common.archive.rows import (
    gpu_seconds,
    pod_times,
    row,
    stage_document,
    stage_from_document,
)
from videojob_testkit.finished import T0, UID, at, pod, run_pods, videojob

NOW = T0 + dt.timedelta(hours=2)


def test_every_attempt_counts_times_the_gpus_it_held() -> None:
    gpu = gpu_seconds(run_pods(), NOW, "nvidia.com/gpu")
    assert gpu.by_stage == {"plan": 0.0, "keyframes": 120.0,
                            "segments": 2 * (200 + 50 + 220), "stitch": 0.0, "publish": 0.0}
    assert gpu.total == 120 + 940
    retried = [p for p in gpu.pods if p.stage == "segments" and p.index == 1]
    assert [(p.attempt, p.phase, p.gpu_seconds) for p in retried] == [
        (0, "Failed", 100.0), (1, "Succeeded", 440.0), (2, "Pending", 0.0)]
    assert retried[0].exit_code == 1 and retried[0].reason == "Error"


def test_a_pod_that_never_started_counts_nothing() -> None:
    never = pod("segments-1-c", "segments", start=None, gpus=4, index=1)
    assert pod_times(never) == (None, None)
    record = gpu_seconds([never], NOW, "nvidia.com/gpu").pods[0]
    assert (record.started, record.finished, record.gpus, record.gpu_seconds) == (
        None, None, 4, 0.0)


def test_the_gpu_count_is_the_limit_or_the_request_of_the_resource_named() -> None:
    two = pod("k", "keyframes", start=0, finish=10, gpus=2, in_requests=True)
    assert gpu_seconds([two], NOW, "nvidia.com/gpu").total == 20
    assert gpu_seconds([two], NOW, "amd.com/gpu").total == 0  # not the resource it ran with


def test_a_pod_still_running_counts_until_now_and_is_reported() -> None:
    running = pod("segments-0-a", "segments", start=0, gpus=1)
    record = gpu_seconds([running], NOW, "nvidia.com/gpu").pods[0]
    assert record.finished is None and record.gpu_seconds == 7200
    vj = videojob("Failed", reason="StageTimeout")
    built = row(vj, [running], NOW)
    assert built.detail.pods_running == 1
    assert built.summary.gpu_seconds == 7200


def test_an_evicted_pod_ends_at_its_last_condition() -> None:
    evicted = pod("segments-0-a", "segments", start=100, gpus=1)
    evicted["status"].update(phase="Failed", reason="Evicted")
    evicted["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "Evicted"}}
    evicted["status"]["conditions"][-1]["lastTransitionTime"] = at(160)
    record = gpu_seconds([evicted], NOW, "nvidia.com/gpu").pods[0]
    assert record.finished == T0 + dt.timedelta(seconds=160)
    assert record.gpu_seconds == 60 and record.reason == "Evicted"


def test_the_row_of_a_succeeded_videojob() -> None:
    built = row(videojob(), run_pods(), NOW)
    s, d = built.summary, built.detail
    assert (s.uid, s.namespace, s.name, s.phase, s.reason, s.failed_stage) == (
        UID, "studio", "launch-teaser", "Succeeded", None, None)
    assert s.labels == {"team": "brand", "campaign": "q4-launch"}
    assert (s.created, s.started, s.finished) == (
        T0, T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=470))
    assert s.gpu_seconds == 1060
    assert (s.output_uri, s.output_bytes) == (
        f"gs://videos/studio/launch-teaser/{UID}/output.mp4", 18_400_112)
    assert (d.output_md5, d.output_crc32c) == ("1B2M2Y8AsgTpgAmY7PhCfg==", "AAAAAA==")
    assert [st.name for st in d.stages] == ["plan", "keyframes", "segments", "stitch",
                                            "publish"]
    segments = d.stages[2]
    assert (segments.attempts, segments.gpu_seconds, len(segments.pods)) == (3, 940, 4)
    assert segments.started == T0 + dt.timedelta(seconds=100)
    assert segments.job_name == "launch-teaser-segments-1a2b3"
    assert d.conditions[0]["reason"] == "Succeeded"
    assert d.effective is not None and d.effective["gpuCount"] == 2
    assert d.pods_running == 0
    # The signed URL's token is not archived; the rest of the spec is as submitted.
    assert d.spec["images"] == ["https://cdn.example.com/a.png?token=***&w=1"]
    assert d.spec["prompt"] == videojob()["spec"]["prompt"]


def test_the_row_of_a_failed_videojob_names_the_stage_and_reason() -> None:
    vj = videojob("Failed", reason="RetriesExhausted", message="segments: scene 1 failed 4 times",
                  output=None, outputURI=None)
    vj["status"]["stages"][2]["phase"] = "Failed"
    del vj["status"]["stages"][3:]
    built = row(vj, run_pods()[:6], NOW)
    assert (built.summary.phase, built.summary.reason, built.summary.failed_stage) == (
        "Failed", "RetriesExhausted", "segments")
    assert built.detail.message == "segments: scene 1 failed 4 times"
    assert built.summary.output_uri is None and built.summary.output_bytes is None


def test_pods_of_another_object_of_the_same_name_are_left_out() -> None:
    other = pod("segments-0-z", "segments", start=0, finish=1000, gpus=8,
                uid="0e9b1f6a-0000-4000-8000-000000000000")
    assert row(videojob(), [*run_pods(), other], NOW).summary.gpu_seconds == 1060


def test_a_videojob_refused_before_it_started_ends_at_its_last_condition() -> None:
    vj = videojob("Failed", reason="InvalidSpec", stages=[], startTime=None,
                  completionTime=None, effective=None)
    vj["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "InvalidSpec",
                                   "lastTransitionTime": at(1)}]
    built = row(vj, [], NOW)
    assert built.summary.finished == T0 + dt.timedelta(seconds=1)
    assert built.summary.started is None and built.summary.gpu_seconds == 0
    assert built.detail.stages == ()


@pytest.mark.parametrize("stage", range(5))
def test_a_stage_record_survives_its_document(stage: int) -> None:
    record = row(videojob(), run_pods(), NOW).detail.stages[stage]
    assert stage_from_document(stage_document(record)) == record


def test_a_videojob_without_a_phase_has_no_row() -> None:
    vj = videojob()
    del vj["status"]["phase"]
    with pytest.raises(ValueError, match=r"studio/launch-teaser has no status\.phase"):
        row(vj, [], NOW)
