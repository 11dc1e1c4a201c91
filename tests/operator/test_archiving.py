"""The archive's outbox as the planner decides it (archiving.py): due once a VideoJob ended, done
when its annotation holds the fingerprint of what it would archive, holding a deletion until
then (TTL: as long as it takes; a finalizer: at most hold_seconds). No cluster, no database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from videojob_common.pipeline import stages_of
from videojob_operator import archiving
from videojob_operator.api import FINALIZER
from videojob_operator.config import OperatorConfig
from videojob_operator.planner import plan
from videojob_operator.status import Reason
from videojob_operator.views import JobView, Observation, PodView

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
ON = OperatorConfig.model_validate({"archive": {"dsn": "host=127.0.0.1", "hold_seconds": 60}})
OFF = OperatorConfig()


def done_status(phase: str = "Succeeded", gpu: Any = 12.5) -> dict[str, Any]:
    return {"phase": phase, "completionTime": "2026-01-01T11:00:00Z",
            "startTime": "2026-01-01T10:00:00Z", "gpuSeconds": gpu, "observedGeneration": 1,
            "stages": [{"name": s, "phase": "Succeeded", "attempts": 1} for s in STAGES]}


def videojob(status: dict[str, Any], *, ttl: int | None = None, deleting: bool = False,
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                            "finalizers": [FINALIZER], "resourceVersion": "7",
                            "labels": {"team": "a"}, "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:30Z"
    spec: dict[str, Any] = {"prompt": "x", "scenes": 2}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"metadata": meta, "spec": spec, "status": status}


KEY = archiving.archive_key(b"the operator's master key")


def observe(vj: dict[str, Any], jobs: list[JobView] | None = None,
            pods: list[PodView] | None = None, now: dt.datetime = T0) -> Observation:
    return Observation(videojob=vj, jobs=jobs or [], pods=pods or [], progress=[], now=now,
                       archive_key=KEY)


def marked(vj: dict[str, Any], phase: str = "Succeeded", key: bytes = KEY) -> dict[str, Any]:
    vj["metadata"]["annotations"][archiving.ANNOTATION_ARCHIVED] = archiving.fingerprint(
        vj, phase, key)
    return vj


def test_due_once_ended_done_once_marked() -> None:
    vj = videojob(done_status())
    assert plan(observe(vj), ON).archive
    assert not plan(observe(marked(vj)), ON).archive
    assert not plan(observe(videojob(done_status())), OFF).archive  # the archive is off
    running = videojob({"phase": "Running", "observedGeneration": 1})
    assert not plan(observe(running), ON).archive


def test_the_fingerprint_reads_what_history_shows_and_numbers_as_the_api_gives_them_back() -> None:
    def mark(vj: dict[str, Any]) -> str:
        return archiving.fingerprint(vj, "Succeeded", KEY)

    a = videojob(done_status(gpu=12.0))
    assert mark(a) == mark(videojob(done_status(gpu=12)))
    changed = videojob(done_status(gpu=13.0))  # a pod of a failed VideoJob ended later
    assert mark(changed) != mark(a)
    relabelled = videojob(done_status(gpu=12.0))
    relabelled["metadata"]["labels"] = {"team": "b"}
    assert mark(relabelled) != mark(a)
    # Webhook bookkeeping after the end is not what the archive shows: no second write.
    noted = videojob({**done_status(gpu=12.0), "notifications": [{"index": 0}]})
    assert mark(noted) == mark(a)


def test_ttl_waits_for_the_archive_as_long_as_it_takes() -> None:
    vj = videojob(done_status(), ttl=10)
    assert plan(observe(vj), OFF).delete_videojob  # off: deleted when due, as before
    held = plan(observe(vj, now=T0 + dt.timedelta(days=3)), ON)
    assert held.archive and not held.delete_videojob
    assert plan(observe(marked(vj)), ON).delete_videojob


def test_a_deleted_videojob_keeps_its_finalizer_until_archived_then_for_hold_seconds() -> None:
    vj = videojob(done_status(), deleting=True)
    held = plan(observe(vj), ON)  # 30 s after its deletion
    assert held.archive and not held.remove_finalizer and held.requeue_after == 30
    assert plan(observe(marked(videojob(done_status(), deleting=True))), ON).remove_finalizer
    late = plan(observe(vj, now=T0 + dt.timedelta(seconds=31)), ON)
    assert late.remove_finalizer
    assert [e.reason for e in late.events] == [Reason.NOT_ARCHIVED]


def test_cancelled_is_due_only_when_nothing_of_it_is_left() -> None:
    status = {"phase": "Cancelling", "observedGeneration": 1,
              "stages": [{"name": "plan", "phase": "Running", "attempts": 1}]}
    vj = videojob(status, deleting=True)
    pod = PodView(name="clip-plan-0", stage="plan", phase="Running", deleting=True)
    going = plan(observe(vj, pods=[pod]), ON)
    assert not going.archive and not going.remove_finalizer
    gone = plan(observe(vj), ON)
    assert gone.archive and not gone.remove_finalizer
    assert gone.status is not None
    vj["status"] = gone.status  # as written: the archiver reads it so
    assert archiving.archived_phase(vj, children_left=False) == archiving.CANCELLED
    row = archiving.archive_row(vj, [], archiving.CANCELLED, T0)
    assert (row.summary.phase, row.summary.reason, row.summary.finished) == (
        "Cancelled", Reason.DELETED, T0)
    assert plan(observe(marked(vj, archiving.CANCELLED)), ON).remove_finalizer


def test_a_tenant_cannot_forge_the_mark_to_keep_a_videojob_out_of_the_archive() -> None:
    """Tenants may write their VideoJobs' annotations; the mark is an HMAC under the operator's
    key, so one computed without it (a plain hash, another key, garbage) is not archived."""
    import hashlib

    forged = videojob(done_status(), ttl=1)
    forged["metadata"]["annotations"][archiving.ANNOTATION_ARCHIVED] = hashlib.sha256(
        b"anything").hexdigest()[:32]
    assert plan(observe(forged, now=T0 + dt.timedelta(days=1)), ON).archive
    assert not plan(observe(forged, now=T0 + dt.timedelta(days=1)), ON).delete_videojob
    other = marked(videojob(done_status(), ttl=1), key=archiving.archive_key(b"another"))
    assert plan(observe(other), ON).archive
    assert not archiving.archived(other, "Succeeded", KEY)
