"""What a reconcile looks at: one VideoJob's stage Jobs, pods and worker progress, reduced to the
few fields the planner reads (`JobView`, `PodView`, `ProgressView`), the webhook deliveries not
recorded yet (`DeliveryOutcome`), and the `Observation` that carries them, the clock and what
admission says, into the planner. Pure: built from API objects
as the caches hold them (store.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from videojob_common.archive.rows import COMPLETION_INDEX
from videojob_common.pipeline import Obj

from .admission_policy import CreationOffer
from .cache_view import CacheAnswer
from .jobs import CONTAINER, LABEL_STAGE
from .refusals import Refusal

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # the Job controller's label on its pods


@dataclass(frozen=True)
class JobView:
    name: str
    stage: str
    suspended: bool
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    completions: int = 1
    complete: bool = False
    failure: tuple[str, str] | None = None  # (reason, message) of the Failed condition
    deleting: bool = False
    start_time: str | None = None
    completion_time: str | None = None
    uid: str = ""


@dataclass(frozen=True)
class PodView:
    name: str
    stage: str
    phase: str
    deleting: bool = False
    unschedulable_since: str | None = None
    unschedulable_message: str = ""
    message: str = ""  # termination message of the worker container
    finished_at: str | None = None
    job_uid: str = ""  # the uid of the stage Job it belongs to (its controller)
    index: int | None = None  # its completion index (every stage Job is Indexed)


@dataclass(frozen=True, slots=True)  # one per pod slot reporting: thousands held
class ProgressView:
    """The latest report of one worker pod (one index of a stage), from Redis."""

    stage: str
    index: int | None
    percent: float
    message: str = ""
    done: int = 0
    total: int = 0
    attempt: int = 0
    ts: float = 0.0  # when the worker sent it (Unix seconds): a later report replaces it

    def older_than(self, other: ProgressView) -> bool:
        """Sent before `other` (an earlier attempt, or earlier in the same one)."""
        return (self.attempt, self.ts) < (other.attempt, other.ts)


@dataclass(frozen=True)
class DeliveryOutcome:
    """One attempt to deliver a webhook notification (delivery.py), kept until the status
    records it (notifications.record)."""

    index: int  # of spec.notify
    id: str  # the notification's webhook-id
    attempt: int  # 1 for the first
    at: dt.datetime  # when it ended
    delivered: bool
    error: str = ""  # why not, in words, naming the field where the fault is the spec's
    # What a failure means: Retrying (the receiver or the network), SecretUnavailable (the
    # secretRef), AddressRefused (the URL's host is not allowed: not retried).
    state: str = "Retrying"


@dataclass(frozen=True)
class Observation:
    videojob: Obj
    jobs: list[JobView]
    pods: list[PodView]
    progress: list[ProgressView]
    now: dt.datetime
    queue_position: int | None = None  # place of the VideoJob's queued Job, from admission
    # What admission would grant a stage Job created now, by pool (admission_loop.offers): a
    # pool missing here has someone waiting, or no decision yet, and its new Jobs are queued.
    offers: dict[str, CreationOffer] = field(default_factory=dict)
    # The API server's last refusal of this VideoJob's writes, if the last reconcile failed.
    refused: Refusal | None = None
    # Webhook deliveries made since the status last recorded them (delivery.py).
    deliveries: tuple[DeliveryOutcome, ...] = ()
    # Its pods as the caches keep them (those deleted since included): GPU-seconds
    # (accounting.py) and the archive's row (archiving.py) are counted from them.
    pod_objects: tuple[Obj, ...] = ()
    # The key of the archive's marks (archiving.archive_key), when the archive is on.
    archive_key: bytes = b""
    # What the last cache lookup found (cache_lookup.py), if one was made.
    cache: CacheAnswer | None = None
    # The namespaces' progress-token Secret its stage pods read (progress_auth.secret_name).
    progress_secret: str = ""


def job_view(job: Obj) -> JobView:
    meta, spec, st = job["metadata"], job.get("spec", {}), job.get("status", {})
    conditions = {c["type"]: c for c in st.get("conditions") or [] if c.get("status") == "True"}
    failure = None
    if "Failed" in conditions:
        c = conditions["Failed"]
        failure = (c.get("reason", ""), c.get("message", ""))
    return JobView(
        name=meta["name"],
        stage=(meta.get("labels") or {}).get(LABEL_STAGE, ""),
        suspended=bool(spec.get("suspend")),
        active=st.get("active", 0) or 0,
        succeeded=st.get("succeeded", 0) or 0,
        failed=st.get("failed", 0) or 0,
        completions=spec.get("completions", 1) or 1,
        complete="Complete" in conditions,
        failure=failure,
        deleting=bool(meta.get("deletionTimestamp")),
        start_time=st.get("startTime"),
        completion_time=st.get("completionTime"),
        uid=meta.get("uid", ""),
    )


def pod_view(pod: Obj) -> PodView:
    meta, st = pod["metadata"], pod.get("status", {})
    scheduled = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"),
                     None) or {}
    unschedulable = (scheduled.get("status") == "False"
                     and scheduled.get("reason") == "Unschedulable")
    message, finished = _termination(st)
    return PodView(
        name=meta["name"],
        stage=(meta.get("labels") or {}).get(LABEL_STAGE, ""),
        phase=st.get("phase", "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
        unschedulable_since=scheduled.get("lastTransitionTime") if unschedulable else None,
        unschedulable_message=scheduled.get("message", "") if unschedulable else "",
        message=message,
        finished_at=finished,
        job_uid=next((r.get("uid", "") for r in meta.get("ownerReferences") or []
                      if r.get("kind") == "Job" and r.get("controller")), ""),
        index=_index((meta.get("annotations") or {}).get(COMPLETION_INDEX)),
    )


def _index(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def done_by_pods(job: JobView, pods: Iterable[PodView]) -> JobView:
    """The Job as complete once a pod of each of its completion indexes has succeeded.

    A succeeded pod never runs again, and an Indexed Job with a succeeded pod for every index
    is complete: the Job controller only has to notice it, sync, and write its status. Under
    load that takes it seconds, and the stage's end (its status, its last progress, the next
    stage's Job) would wait for it. The Job's own word still counts first: a Job already
    complete, failed, deleting or suspended is returned as it is. Pods count by their owner's
    uid, not its name: a pod of an earlier Job of the same name, its deletion not seen yet (the
    pod watch may lag the Job watch), never completes the new one."""
    if job.complete or job.failure is not None or job.deleting or job.suspended:
        return job
    mine = [p for p in pods if p.job_uid and p.job_uid == job.uid]
    done = [p for p in mine if p.phase == "Succeeded"
            and p.index is not None and 0 <= p.index < job.completions]
    if len({p.index for p in done}) < job.completions:
        return job
    ends = [p.finished_at for p in done if p.finished_at]
    # Its failed pods count as attempts, as the Job's own count will once it is written.
    failed = max(job.failed, sum(1 for p in mine if p.phase == "Failed"))
    return replace(job, complete=True, active=0, succeeded=job.completions, failed=failed,
                   completion_time=max(ends) if ends else job.completion_time)


def _termination(pod_status: Obj) -> tuple[str, str | None]:
    """(termination message, finishedAt) of the worker container; ("", None) while it runs."""
    message, finished = "", None
    for cs in pod_status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if cs.get("name") == CONTAINER and term:
            message = term.get("message") or ""
            finished = term.get("finishedAt")
    return message, finished


def stage_result(pods: list[PodView], stage: str) -> Obj | None:
    """JSON result a succeeded worker of `stage` left in its termination message (contract)."""
    for p in pods:
        if p.stage == stage and p.phase == "Succeeded" and p.message.strip().startswith("{"):
            try:
                doc = json.loads(p.message)
            except ValueError:
                continue
            if isinstance(doc, dict):
                return doc
    return None
