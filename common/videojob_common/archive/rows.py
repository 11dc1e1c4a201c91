"""The archive's record of one finished VideoJob, built from the VideoJob and its pods: who it
was, how it ended, each stage's times, attempts and pods, and the GPU-seconds it used.

Pure: the objects and the clock come in as arguments, a row goes out; nothing here talks to the
cluster or the database. The row has two halves, as the database does (schema/0001_init.sql):
`Summary`, the narrow columns a history list reads, and `Detail`, the large documents only
`history NAME` reads.

GPU-seconds are counted from the pods, not from the stages' times: a pod holds its GPUs from the
moment the kubelet starts it (`status.startTime`, before the image is pulled) until its last
container ends, whether it succeeds or not, so every attempt of every scene counts, and a pod that
was never started (Pending for want of a GPU) counts nothing. A pod still running when the row is
built (one being torn down after a failure) is counted up to `now` and recorded with no finish,
so the caller can tell (`Detail.pods_running`) and write the row again once it ends. A stage
whose status holds a larger `gpuSeconds` (the operator counted pods deleted since) keeps that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from videojob_common.labels import LABEL_STAGE, LABEL_UID
from videojob_common.pipeline import STAGES, Obj, StagePhase
from videojob_common.redact import redact_url

# Set by the Job controller on the pods of an Indexed Job (every stage Job is one, jobs.py).
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURES = "batch.kubernetes.io/job-index-failure-count"
_POD_DONE = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodRecord:
    """One pod of a stage: one attempt at one scene (or at the whole stage)."""

    name: str
    stage: str
    index: int | None  # the completion index (the scene, for segments)
    attempt: int | None  # failures of that index before this pod (0: its first try)
    phase: str
    node: str | None
    started: dt.datetime | None  # None: never started (no GPU-seconds)
    finished: dt.datetime | None  # None: still running when the row was built
    gpus: int
    gpu_seconds: float
    exit_code: int | None = None
    reason: str | None = None  # the container's (Completed, Error, OOMKilled) or the pod's


@dataclass(frozen=True)
class GpuSeconds:
    total: float
    by_stage: Mapping[str, float]  # every stage that had pods, in pipeline order
    pods: tuple[PodRecord, ...]


@dataclass(frozen=True)
class StageRecord:
    name: str
    phase: str | None
    attempts: int  # as the status counts them: pods started for the stage
    started: dt.datetime | None
    finished: dt.datetime | None
    job_name: str | None
    message: str | None
    gpu_seconds: float
    pods: tuple[PodRecord, ...]


@dataclass(frozen=True)
class Summary:
    """What a history list shows: the archive's narrow table, one row per VideoJob."""

    uid: str
    namespace: str
    name: str
    phase: str
    reason: str | None
    failed_stage: str | None
    labels: Mapping[str, str]
    created: dt.datetime
    started: dt.datetime | None
    finished: dt.datetime  # status.completionTime; the key lists are sorted by
    gpu_seconds: float
    output_uri: str | None
    output_bytes: int | None


@dataclass(frozen=True)
class Detail:
    """What only `history NAME` reads: kept apart so that lists never load it."""

    spec: Obj  # as submitted, URLs redacted
    effective: Obj | None  # status.effective: the values it ran with, defaults filled in
    status: Obj  # the final status, conditions included
    message: str | None
    output_md5: str | None
    output_crc32c: str | None
    stages: tuple[StageRecord, ...] = field(default_factory=tuple)

    @property
    def pods_running(self) -> int:
        """Pods still running when the row was built (counted up to then)."""
        return sum(1 for s in self.stages for p in s.pods
                   if p.started is not None and p.finished is None)

    @property
    def conditions(self) -> list[Obj]:
        return list(self.status.get("conditions") or [])


@dataclass(frozen=True)
class ArchiveRow:
    summary: Summary
    detail: Detail


def row(videojob: Obj, pods: Iterable[Obj], now: dt.datetime) -> ArchiveRow:
    """The archive's row for a VideoJob (normally in a terminal phase) and the pods of its stage
    Jobs. Pods of another VideoJob (another uid) or without a stage label are left out."""
    meta, spec, status = videojob["metadata"], videojob.get("spec") or {}, \
        videojob.get("status") or {}
    uid = meta["uid"]
    if not status.get("phase"):
        raise ValueError(f"VideoJob {meta.get('namespace')}/{meta.get('name')} has no "
                         "status.phase: nothing to archive yet")
    ours = [p for p in pods if _is_stage_pod(p, uid)]
    effective = status.get("effective")
    resource = (effective or {}).get("gpuResourceName") or (spec.get("gpu") or {}).get(
        "resourceName")
    gpu = gpu_seconds(ours, now, resource)
    stage_status = {s.get("name"): s for s in status.get("stages") or []}
    stages = tuple(_stage(stage, stage_status.get(stage) or {}, gpu)
                   for stage in STAGES if stage in stage_status or stage in gpu.by_stage)
    output = status.get("output") or {}
    created = _time(meta.get("creationTimestamp")) or now
    summary = Summary(
        uid=uid, namespace=meta["namespace"], name=meta["name"],
        phase=status["phase"], reason=status.get("reason"),
        failed_stage=next((s.name for s in stages if s.phase == StagePhase.FAILED), None),
        labels=dict(meta.get("labels") or {}), created=created,
        started=_time(status.get("startTime")), finished=finished_at(status, now),
        gpu_seconds=round(sum(s.gpu_seconds for s in stages), 3),
        output_uri=status.get("outputURI") or output.get("uri"),
        output_bytes=output.get("bytes"))
    detail = Detail(spec=redacted_spec(spec), effective=effective, status=status,
                    message=status.get("message"), output_md5=output.get("md5"),
                    output_crc32c=output.get("crc32c"), stages=stages)
    return ArchiveRow(summary, detail)


def finished_at(status: Obj, now: dt.datetime) -> dt.datetime:
    """When the VideoJob ended: its completionTime; else (a VideoJob refused before it
    started has none) its conditions' latest transition; else now."""
    if (done := _time(status.get("completionTime"))) is not None:
        return done
    times = [t for c in status.get("conditions") or []
             if (t := _time(c.get("lastTransitionTime"))) is not None]
    return max(times, default=now)


def gpu_seconds(pods: Iterable[Obj], now: dt.datetime, resource_name: str | None) -> GpuSeconds:
    """GPU-seconds of the pods, per stage and in all: each pod's run time (start to its last
    container's end, or to `now` while it runs) times the `resource_name` GPUs it holds. Every
    pod counts: retries, failed attempts and all scenes."""
    records = sorted((pod_record(p, now, resource_name) for p in pods),
                     key=lambda r: (_stage_order(r.stage), r.index or 0, r.attempt or 0,
                                    r.started or now, r.name))
    by_stage: dict[str, float] = {}
    for r in records:
        by_stage[r.stage] = by_stage.get(r.stage, 0.0) + r.gpu_seconds
    return GpuSeconds(total=sum(by_stage.values()), by_stage=by_stage, pods=tuple(records))


def pod_record(pod: Obj, now: dt.datetime, resource_name: str | None) -> PodRecord:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    started, finished = pod_times(pod)
    gpus = pod_gpus(pod.get("spec") or {}, resource_name)
    held = 0.0
    if started is not None:
        held = max(((finished or now) - started).total_seconds(), 0.0)
    term = _last_terminated(status)
    return PodRecord(
        name=meta.get("name", ""), stage=(meta.get("labels") or {}).get(LABEL_STAGE, ""),
        index=_int(annotations.get(COMPLETION_INDEX)),
        attempt=_int(annotations.get(INDEX_FAILURES)),
        phase=status.get("phase") or "Pending", node=(pod.get("spec") or {}).get("nodeName"),
        started=started, finished=finished, gpus=gpus, gpu_seconds=round(held * gpus, 3),
        exit_code=term.get("exitCode"), reason=term.get("reason") or status.get("reason"))


def pod_times(pod: Obj) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(start, finish) of a pod; start None when it never started, finish None while it runs.

    Start: `status.startTime` (the kubelet took the pod, its devices are allocated), else its
    containers' earliest start. Finish: the last container's `finishedAt` once every container
    has ended; a pod ended without them (evicted, its node lost) ends at its conditions' last
    transition; one that ended without ever starting a container ends where it started."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    inits = status.get("initContainerStatuses") or []
    states = [c.get("state") or {} for c in [*inits, *containers]]
    starts = [t for s in states for k in ("running", "terminated")
              if (t := _time((s.get(k) or {}).get("startedAt"))) is not None]
    started = _time(status.get("startTime")) or min(starts, default=None)
    if started is None:
        return None, None
    ends = [_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for c in containers]
    if containers and all(e is not None for e in ends):
        return started, max(e for e in ends if e is not None)
    if status.get("phase") not in _POD_DONE:
        return started, None
    marks = [t for t in ends if t is not None] + [
        t for c in status.get("conditions") or []
        if (t := _time(c.get("lastTransitionTime"))) is not None]
    return started, max([started, *marks])


def pod_gpus(pod_spec: Obj, resource_name: str | None) -> int:
    """GPUs the pod holds: its containers' `resource_name` limits (requests where there is no
    limit; for an extended resource the two must be equal) added up, or its largest init
    container's if that is more, as the scheduler counts a pod's request."""
    if not resource_name:
        return 0

    def count(container: Obj) -> int:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            value = (resources.get(kind) or {}).get(resource_name)
            if value is not None:
                return _int(value) or 0
        return 0

    running = sum(count(c) for c in pod_spec.get("containers") or [])
    init = max((count(c) for c in pod_spec.get("initContainers") or []), default=0)
    return max(running, init)


def redacted_spec(spec: Obj) -> Obj:
    """The spec with its URLs as they may be kept (signed URLs' tokens and passwords out): an
    archive outlives the object and is read by more people than the namespace's."""
    out = dict(spec)
    if isinstance(out.get("images"), list):
        out["images"] = [redact_url(u) if isinstance(u, str) else u for u in out["images"]]
    if isinstance(out.get("audio"), str):
        out["audio"] = redact_url(out["audio"])
    output = out.get("output")
    if isinstance(output, dict) and isinstance(output.get("uri"), str):
        out["output"] = {**output, "uri": redact_url(output["uri"])}
    return out


# -- documents: a stage record as the detail table keeps it (JSON), and back ------------------

def stage_document(stage: StageRecord) -> Obj:
    return {"name": stage.name, "phase": stage.phase, "attempts": stage.attempts,
            "started": _iso(stage.started), "finished": _iso(stage.finished),
            "jobName": stage.job_name, "message": stage.message,
            "gpuSeconds": stage.gpu_seconds, "pods": [_pod_document(p) for p in stage.pods]}


def stage_from_document(doc: Obj) -> StageRecord:
    return StageRecord(
        name=doc["name"], phase=doc.get("phase"), attempts=doc.get("attempts", 0),
        started=_time(doc.get("started")), finished=_time(doc.get("finished")),
        job_name=doc.get("jobName"), message=doc.get("message"),
        gpu_seconds=doc.get("gpuSeconds", 0.0),
        pods=tuple(_pod_from_document(doc["name"], p) for p in doc.get("pods") or []))


def _pod_document(p: PodRecord) -> Obj:
    return {"name": p.name, "index": p.index, "attempt": p.attempt, "phase": p.phase,
            "node": p.node, "started": _iso(p.started), "finished": _iso(p.finished),
            "gpus": p.gpus, "gpuSeconds": p.gpu_seconds, "exitCode": p.exit_code,
            "reason": p.reason}


def _pod_from_document(stage: str, d: Obj) -> PodRecord:
    return PodRecord(name=d["name"], stage=stage, index=d.get("index"), attempt=d.get("attempt"),
                     phase=d.get("phase", ""), node=d.get("node"),
                     started=_time(d.get("started")), finished=_time(d.get("finished")),
                     gpus=d.get("gpus", 0), gpu_seconds=d.get("gpuSeconds", 0.0),
                     exit_code=d.get("exitCode"), reason=d.get("reason"))


# -- helpers ----------------------------------------------------------------------------------

def _stage(name: str, st: Obj, gpu: GpuSeconds) -> StageRecord:
    return StageRecord(
        name=name, phase=st.get("phase"), attempts=st.get("attempts", 0) or 0,
        started=_time(st.get("startTime")), finished=_time(st.get("completionTime")),
        job_name=st.get("jobName"), message=st.get("message"),
        # The status's figure where it is more: it kept counting pods since deleted
        # (the operator's accounting.py), which this row cannot see.
        gpu_seconds=max(gpu.by_stage.get(name, 0.0), float(st.get("gpuSeconds") or 0.0)),
        pods=tuple(p for p in gpu.pods if p.stage == name))


def _is_stage_pod(pod: Obj, uid: str) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return LABEL_STAGE in labels and labels.get(LABEL_UID, uid) == uid


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _last_terminated(status: Obj) -> Obj:
    """The terminated state of the container that ended last ({} while none has)."""
    terms = [t for c in status.get("containerStatuses") or []
             if (t := (c.get("state") or {}).get("terminated"))]
    return max(terms, key=lambda t: t.get("finishedAt") or "", default={})


def _time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time as the API server writes it ("2026-01-01T12:00:00Z"), or None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
