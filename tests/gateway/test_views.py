"""A VideoJob as the API shows it, and the VideoJob a create request makes."""

from __future__ import annotations

from typing import Any

from videojob_gateway.api import CreateVideoJob
from videojob_gateway.views import (
    collection_path,
    kube_event_items,
    links,
    manifest,
    object_path,
    view,
)


def videojob(status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
            "metadata": {"namespace": "team-a", "name": "hello", "uid": "u-1",
                         "resourceVersion": "42", "creationTimestamp": "2026-01-02T03:04:05Z",
                         **meta},
            "spec": {"prompt": "a lighthouse"}, **({"status": status} if status else {})}


def test_a_running_videojob_shows_phase_stage_progress_and_stages() -> None:
    v = view(videojob({
        "phase": "Running", "currentStage": "segments", "progress": 47,
        "message": "frame 120/288, 2/4 scenes rendered", "queuePosition": None,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "StageRunning",
                        "lastTransitionTime": "2026-01-02T03:05:00Z"}],
        "stages": [{"name": "plan", "phase": "Succeeded", "attempts": 1, "progress": 100},
                   {"name": "segments", "phase": "Running", "attempts": 4, "progress": 50,
                    "completed": 2, "total": 4, "jobName": "hello-segments-abc"}],
    }))
    assert (v.phase, v.stage, v.progress) == ("Running", "segments", 47)
    assert v.message == "frame 120/288, 2/4 scenes rendered"
    assert [(s.name, s.phase, s.completed, s.total) for s in v.stages] == [
        ("plan", "Succeeded", None, None), ("segments", "Running", 2, 4)]
    assert v.conditions[0].reason == "StageRunning"
    assert v.result is None
    assert v.links.events == "/api/v1/namespaces/team-a/videojobs/hello/events"


def test_a_videojob_the_operator_has_not_seen_is_pending() -> None:
    v = view(videojob())
    assert (v.phase, v.progress, v.stages, v.stage) == ("Pending", 0, [], None)


def test_a_succeeded_videojob_has_its_result() -> None:
    v = view(videojob({"phase": "Succeeded", "progress": 100,
                       "outputURI": "gs://b/team-a/hello/u-1/output.mp4",
                       "output": {"uri": "gs://b/team-a/hello/u-1/output.mp4", "bytes": 123456,
                                  "md5": "bWQ1", "crc32C": "Y3Jj"}}))
    assert v.result is not None
    assert (v.result.outputURI, v.result.bytes, v.result.md5, v.result.crc32c) == (
        "gs://b/team-a/hello/u-1/output.mp4", 123456, "bWQ1", "Y3Jj")


def test_queue_position_suspend_and_deletion_show() -> None:
    obj = videojob({"phase": "Queued", "queuePosition": 3},
                   deletionTimestamp="2026-01-02T03:09:00Z")
    obj["spec"]["suspend"] = True
    v = view(obj)
    assert (v.queuePosition, v.suspended, v.deleting) == (3, True, True)


def test_a_create_request_becomes_a_videojob_in_its_namespace() -> None:
    named = manifest("team-a", CreateVideoJob(name="hello", spec={"prompt": "x"},
                                              labels={"app": "web"}))
    assert named == {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
                     "metadata": {"namespace": "team-a", "name": "hello",
                                  "labels": {"app": "web"}},
                     "spec": {"prompt": "x"}}
    unnamed = manifest("team-a", CreateVideoJob(spec={"prompt": "x"}))
    assert unnamed["metadata"] == {"namespace": "team-a", "generateName": "videojob-"}
    prefixed = manifest("team-a", CreateVideoJob(generateName="web-", spec={}))
    assert prefixed["metadata"]["generateName"] == "web-"


def test_paths_quote_what_they_carry() -> None:
    assert object_path("team-a", "dotted.name") == (
        "/apis/videojob.dev/v1alpha1/namespaces/team-a/videojobs/dotted.name")
    assert collection_path("a/b") == "/apis/videojob.dev/v1alpha1/namespaces/a%2Fb/videojobs"
    assert links("ns", "a b").self == "/api/v1/namespaces/ns/videojobs/a%20b"


def test_kube_events_are_the_current_videojobs_oldest_first() -> None:
    def event(reason: str, uid: str, last: str | None, **extra: Any) -> dict[str, Any]:
        return {"involvedObject": {"kind": "VideoJob", "name": "hello", "uid": uid},
                "metadata": {"creationTimestamp": "2026-01-02T03:00:00Z"},
                "reason": reason, "message": f"{reason} happened", "type": "Normal",
                "lastTimestamp": last, **extra}

    items = kube_event_items([
        event("StageSucceeded", "u-1", "2026-01-02T03:06:00Z", count=2,
              firstTimestamp="2026-01-02T03:05:30Z"),
        event("Admitted", "u-1", "2026-01-02T03:05:00Z"),
        event("Earlier", "u-0", "2026-01-01T00:00:00Z"),  # a VideoJob of the same name, before
        event("Recorded", "u-1", None, eventTime="2026-01-02T03:07:00.000000Z",
              type="Warning"),
    ], "u-1")
    assert [(e.reason, e.type, e.count) for e in items] == [
        ("Admitted", "Normal", 1), ("StageSucceeded", "Normal", 2), ("Recorded", "Warning", 1)]
    assert items[1].firstTime == "2026-01-02T03:05:30Z"
    assert items[2].lastTime == "2026-01-02T03:07:00.000000Z"
