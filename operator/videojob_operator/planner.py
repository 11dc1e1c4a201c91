"""The reconcile logic, as a pure function: VideoJob + observed children -> actions.

`plan(observation, config)` looks at one VideoJob, the stage Jobs and pods it owns, the latest
worker progress and the clock, and returns what to do: finalizer changes, Jobs to create,
suspend, resume or delete, the complete new status, Events for every transition, and when to look
again. It never talks to the API; `controller.py` gathers the observation and applies the plan.

The order is the kubebuilder one: finalizer -> deletion -> terminal/TTL -> deadlines -> stages.
Stages run one after another; the first one not yet Succeeded is the only one acted on.

Stage Jobs are created suspended: admission (admission.py) unsuspends them when their pool has a
slot. The planner only ever suspends (when the VideoJob is suspended); while a stage's Job waits
for admission the stage and the VideoJob are `Queued`, with the place in the queue the
admission pass last computed. The total deadline counts from the first admission, so a burst
that waits in the queue does not time out there.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from . import jobs
from .api import (
    FINALIZER,
    STAGES,
    Condition,
    EffectiveSpec,
    OutputStatus,
    Stage,
    StageStatus,
    VideoJobSpec,
    VideoJobStatus,
)
from .config import OperatorConfig, effective
from .pools import pool_of

Obj = dict[str, Any]

# Share of the overall progress bar each stage stands for.
WEIGHTS: dict[str, int] = {"plan": 5, "keyframes": 15, "segments": 60, "stitch": 15, "publish": 5}


class Reason:
    """Condition and Event reasons (CamelCase constants, as Kubernetes reasons are)."""

    CREATED = "Created"
    STAGE_STARTED = "StageStarted"
    STAGE_SUCCEEDED = "StageSucceeded"
    STAGE_JOB_LOST = "StageJobLost"
    SUCCEEDED = "Succeeded"
    PERMANENT_ERROR = "PermanentError"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    STAGE_TIMEOUT = "StageTimeout"
    TOTAL_TIMEOUT = "TotalTimeout"
    UNSCHEDULABLE = "Unschedulable"
    QUEUED = "Queued"
    STAGE_QUEUED = "StageQueued"
    INVALID_SPEC = "InvalidSpec"
    STAGE_FAILED = "StageFailed"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    CANCEL_INCOMPLETE = "CancellationIncomplete"
    RUNNING = "Running"
    PENDING = "Pending"


def ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def position_worth_writing(old: int | None, new: int | None) -> bool:
    """A queue position is exact for the first ten places; further back it is refreshed when it
    moved by a quarter, so a long queue does not cost a status write per VideoJob per admission.
    """
    if old is None or new is None or new <= 10:
        return old != new
    return abs(new - old) * 4 >= old


def parse_ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- what the controller observes ------------------------------------------------------------

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


@dataclass(frozen=True)
class ProgressView:
    """The latest report of one worker pod (one index of a stage), from Redis."""

    stage: str
    index: int | None
    percent: float
    message: str = ""
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Observation:
    videojob: Obj
    jobs: list[JobView]
    pods: list[PodView]
    progress: list[ProgressView]
    now: dt.datetime
    queue_position: int | None = None  # place of the VideoJob's queued Job, from admission


# -- what to do ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    add_finalizer: bool = False
    remove_finalizer: bool = False
    # Removal decided on absence (no Job, no pod seen): the controller confirms it with a fresh
    # read first, as a cache may lag behind the cluster (e.g. right after a restart).
    confirm_gone: bool = False
    create_jobs: list[Obj] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    suspend_jobs: dict[str, bool] = field(default_factory=dict)  # job name -> suspend
    status: Obj | None = None  # the complete new status (camelCase), None: leave as is
    progress_only: bool = False  # status differs only in progress figures (rate-limited)
    events: list[Event] = field(default_factory=list)
    delete_videojob: bool = False  # ttlSecondsAfterFinished reached
    requeue_after: float | None = None

    def again_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.05)
        self.requeue_after = seconds if self.requeue_after is None else min(
            self.requeue_after, seconds)


# -- status helpers --------------------------------------------------------------------------

def set_condition(conditions: list[Condition], type_: str, status: bool, reason: str,
                  message: str, generation: int | None, now: dt.datetime) -> list[Condition]:
    value: Literal["True", "False"] = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old and old.status == value else ts(now)
    new = Condition(type=type_, status=value, reason=reason, message=message,
                    last_transition_time=since, observed_generation=generation)
    return [c for c in conditions if c.type != type_] + [new]


def dump_status(status: VideoJobStatus) -> Obj:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


# Fast-moving figures: written at most once a second (controller.py), not transitions. A
# stage's pod count (`attempts`) and scenes rendered (`completed`) are figures of its progress
# too: counted as transitions, a stage's pod starting cost a write of its own, a moment after
# the write that started the stage.
PROGRESS_KEYS = ("progress", "message", "queuePosition")
STAGE_PROGRESS_KEYS = ("progress", "message", "attempts", "completed")


def strip_progress(doc: Obj) -> Obj:
    """The status without its fast-moving figures, to tell real transitions from progress."""
    out = {k: v for k, v in doc.items() if k not in PROGRESS_KEYS}
    out["stages"] = [{k: v for k, v in s.items() if k not in STAGE_PROGRESS_KEYS}
                     for s in doc.get("stages", [])]
    return out


# -- the planner -----------------------------------------------------------------------------

def plan(obs: Observation, config: OperatorConfig) -> Plan:
    vj = obs.videojob
    meta = vj["metadata"]
    out = Plan()
    old_doc: Obj = vj.get("status") or {}
    try:
        status = VideoJobStatus.model_validate(old_doc)
    except ValidationError:
        status = VideoJobStatus()
    generation = meta.get("generation")
    now = obs.now

    if meta.get("deletionTimestamp"):
        return _cancel(obs, status, old_doc, config, out)

    if FINALIZER not in (meta.get("finalizers") or []):
        out.add_finalizer = True

    try:
        spec = VideoJobSpec.model_validate(vj.get("spec") or {})
    except ValidationError as e:
        if status.phase != "Failed":
            status = _fail(status, Reason.INVALID_SPEC, f"invalid spec: {e}", generation, now)
            out.events.append(Event("Warning", Reason.INVALID_SPEC, status.message or ""))
        return _finish(out, status, old_doc)

    eff = effective(spec, config, meta["namespace"], meta["name"], meta["uid"])
    status = status.model_copy(update={"observed_generation": generation, "effective": eff})
    stages = {s.name: s for s in status.stages or []}
    for name in STAGES:
        stages.setdefault(name, StageStatus(name=name, phase="Pending"))
    if stages["segments"].total is None:
        stages["segments"] = stages["segments"].model_copy(update={"total": eff.scenes,
                                                                    "completed": 0})
    by_stage = {j.stage: j for j in obs.jobs}

    if status.phase in ("Succeeded", "Failed"):
        # Nothing runs after the end; a stage Job may still be going (total timeout) — stop it.
        out.delete_jobs = [j.name for j in obs.jobs if not j.deleting and not j.complete
                           and j.failure is None]
        _ttl(spec, status, now, out)
        return _finish(out, status.model_copy(update={"stages": [stages[s] for s in STAGES]}),
                       old_doc)

    if status.phase is None:
        out.events.append(Event("Normal", Reason.CREATED,
                                f"VideoJob accepted: {eff.scenes} scenes, {spec.resolution} "
                                f"@ {spec.fps} fps, {spec.duration_seconds}s"))
    start = parse_ts(status.start_time)
    if start is None and any(not j.suspended for j in obs.jobs):
        start = now  # first admission
    if start is not None:
        status = status.model_copy(update={"start_time": ts(start)})

    # Total deadline: the whole VideoJob from its first admission, whatever stage it is in.
    deadline = start + dt.timedelta(seconds=eff.total_seconds) if start else None
    if deadline is not None and now >= deadline:
        running = next((s for s in STAGES if stages[s].phase not in ("Succeeded",)), None)
        if running:
            stages[running] = stages[running].model_copy(update={
                "phase": "Failed", "completion_time": ts(now),
                "message": f"total timeout of {eff.total_seconds}s reached"})
        status = status.model_copy(update={"stages": [stages[s] for s in STAGES]})
        status = _fail(status, Reason.TOTAL_TIMEOUT,
                       f"VideoJob did not finish within timeouts.totalSeconds="
                       f"{eff.total_seconds}s", generation, now)
        out.events.append(Event("Warning", Reason.TOTAL_TIMEOUT, status.message or ""))
        out.delete_jobs = [j.name for j in obs.jobs if not j.deleting and not j.complete]
        return _finish(out, status, old_doc)
    if deadline is not None:
        out.again_in((deadline - now).total_seconds())

    current: Stage | None = None
    for name in STAGES:
        st = stages[name]
        if st.phase == "Succeeded":
            continue
        current = name
        job = by_stage.get(name)
        st, failed = _stage(name, st, job, spec, eff, obs, config, meta, out)
        stages[name] = st
        if failed is not None:
            reason, message = failed
            status = status.model_copy(update={"stages": [stages[s] for s in STAGES],
                                               "current_stage": name})
            status = _fail(status, reason, message, generation, now)
            out.events.append(Event("Warning", reason, f"stage {name}: {message}"))
            if job is not None and not job.deleting and job.failure is None:
                out.delete_jobs.append(job.name)  # e.g. unschedulable: stop waiting for a GPU
            return _finish(out, status, old_doc)
        if st.phase == "Succeeded":
            out.events.append(Event("Normal", Reason.STAGE_SUCCEEDED, f"stage {name} succeeded"))
            result = stage_result(obs.pods, name) if name == "publish" else None
            if result:
                status = status.model_copy(update={"output": _output(result, eff)})
            continue
        break

    current = next((s for s in STAGES if stages[s].phase != "Succeeded"), None)
    overall = sum(WEIGHTS[s] * (100 if stages[s].phase == "Succeeded" else stages[s].progress)
                  for s in STAGES) // 100
    status = status.model_copy(update={"stages": [stages[s] for s in STAGES],
                                       "current_stage": current or "publish",
                                       "progress": min(overall, 100)})
    conditions = list(status.conditions or [])
    if current is None:
        status = status.model_copy(update={
            "phase": "Succeeded", "progress": 100, "completion_time": ts(now),
            "output_uri": eff.output_uri, "message": f"video published to {eff.output_uri}",
            "reason": None})
        conditions = set_condition(conditions, "Ready", True, Reason.SUCCEEDED,
                                   status.message or "", generation, now)
        conditions = set_condition(conditions, "Progressing", False, Reason.SUCCEEDED, "",
                                   generation, now)
        out.events.append(Event("Normal", Reason.SUCCEEDED, status.message or ""))
        _ttl(spec, status, now, out)
    else:
        st = stages[current]
        phase = st.phase if st.phase in ("Suspended", "Running", "Queued") else "Pending"
        if spec.suspend and st.phase != "Running":
            phase = "Suspended"
        pool = pool_of(config.pools, current)
        position = obs.queue_position if phase == "Queued" else None
        if phase == "Queued" and not position_worth_writing(status.queue_position, position):
            position = status.queue_position
        message = {
            "Suspended": f"suspended in stage {current}",
            "Running": f"stage {current}: {st.message or 'running'}",
            "Pending": f"stage {current} is waiting to start",
            "Queued": f"stage {current} is queued in pool {pool}"
                      + (f" at position {position}" if position else ""),
        }[phase]
        if status.phase != phase and phase == "Suspended":
            out.events.append(Event("Normal", Reason.SUSPENDED, message))
        if status.phase == "Suspended" and phase != "Suspended":
            out.events.append(Event("Normal", Reason.RESUMED, f"resumed in stage {current}"))
        status = status.model_copy(update={"phase": phase, "message": message,
                                           "queue_position": position})
        # Condition messages stay put while a stage runs (progress lives in `message` and the
        # stage list), so progress updates do not count as transitions.
        steady = f"stage {current} is {phase.lower()}"
        if phase == "Queued":
            steady = f"stage {current} is waiting for a slot in pool {pool}"
        conditions = set_condition(conditions, "Ready", False, phase, steady, generation, now)
        conditions = set_condition(conditions, "Progressing", phase != "Suspended",
                                   {"Suspended": Reason.SUSPENDED, "Queued": Reason.QUEUED}.get(
                                       phase, Reason.RUNNING), steady, generation, now)
        conditions = set_condition(conditions, "Queued", phase == "Queued",
                                   Reason.QUEUED if phase == "Queued" else Reason.RUNNING,
                                   steady if phase == "Queued" else "", generation, now)
        conditions = set_condition(conditions, "Suspended", phase == "Suspended",
                                   Reason.SUSPENDED if phase == "Suspended" else Reason.RUNNING,
                                   "", generation, now)
    status = status.model_copy(update={"conditions": conditions})
    return _finish(out, status, old_doc)


def _stage(
    name: Stage,
    st: StageStatus,
    job: JobView | None,
    spec: VideoJobSpec,
    eff: EffectiveSpec,
    obs: Observation,
    config: OperatorConfig,
    meta: Obj,
    out: Plan,
) -> tuple[StageStatus, tuple[str, str] | None]:
    """One stage's next step. Returns its new status and, if it failed, (reason, message)."""
    now = obs.now
    if job is None or job.deleting:
        if job is None and st.phase in ("Queued", "Running", "Suspended") and st.job_name:
            # The Job vanished under a running stage (deleted by hand, lost with etcd data):
            # re-create it rather than stay Running forever, after retry.backoffSeconds.
            lost_at = parse_ts(st.job_lost_time)
            if lost_at is None:
                out.events.append(Event("Warning", Reason.STAGE_JOB_LOST,
                                        f"stage {name}: Job {st.job_name} disappeared; "
                                        f"re-creating it in {eff.retry_backoff_seconds}s"))
                out.again_in(eff.retry_backoff_seconds)
                return st.model_copy(update={"message": "stage Job lost",
                                             "job_lost_time": ts(now)}), None
            wait = (lost_at + dt.timedelta(seconds=eff.retry_backoff_seconds) - now)
            if wait.total_seconds() > 0:
                out.again_in(wait.total_seconds())
                return st, None
        elif job is not None:  # being deleted (by hand, Foreground): wait until it is gone
            out.again_in(1.0)
            return st, None
        pool = pool_of(config.pools, name)
        out.create_jobs.append(jobs.stage_job(
            namespace=meta["namespace"], videojob=meta["name"], uid=meta["uid"], stage=name,
            spec=spec, eff=eff, suspend=True, pool=pool, queued_at=ts_micro(now),
            redis_url=config.redis_url, service_account=config.worker_service_account,
            extra_env=config.worker_env, command=config.worker_command,
            secret_env={k: (r.name, r.key) for k, r in config.worker_secret_env.items()},
            volumes=config.worker_volumes, volume_mounts=config.worker_volume_mounts))
        if st.phase == "Pending":
            out.events.append(Event("Normal", Reason.STAGE_QUEUED,
                                    f"stage {name} queued in pool {pool}"))
        return st.model_copy(update={
            "phase": "Suspended" if spec.suspend else "Queued",
            "job_name": jobs.job_name(meta["name"], meta["uid"], name),
            "completion_time": None, "job_lost_time": None,
            "message": "suspended" if spec.suspend else "queued"}), None

    pods = [p for p in obs.pods if p.stage == name]
    attempts = job.active + job.succeeded + job.failed
    update: Obj = {"job_name": job.name, "attempts": max(attempts, st.attempts),
                   "start_time": st.start_time or job.start_time or ts(now)}
    if name == "segments":
        # The last scene's pod succeeding is shown by the Job's completion, which follows
        # within the Job controller's next sync, as the stage's last report is (below).
        last_scene = job.succeeded >= job.completions and not job.complete
        update["completed"] = st.completed if last_scene else job.succeeded
        update["total"] = job.completions
    if (job.complete or job.failure is not None) and st.phase in ("Queued", "Pending"):
        # Admitted and done between two looks: the start is still part of the story.
        out.events.append(Event("Normal", Reason.STAGE_STARTED, f"stage {name} started"))
    if job.complete:
        update.update(phase="Succeeded", progress=100, message="done",
                      completion_time=job.completion_time or ts(now))
        return st.model_copy(update=update), None
    if job.failure is not None:
        return st.model_copy(update=update | {"phase": "Failed",
                                              "completion_time": ts(now)}), _failure(job, pods)

    # Still going: pods waiting for a GPU too long fail the stage (argo#11025).
    for p in pods:
        since = parse_ts(p.unschedulable_since)
        if p.phase == "Pending" and since is not None and not p.deleting:
            waited = (now - since).total_seconds()
            if waited >= eff.pending_seconds:
                msg = (f"pod {p.name} could not be scheduled for {eff.pending_seconds}s "
                       f"(timeouts.pendingSeconds): {p.unschedulable_message}")
                return st.model_copy(update=update | {"phase": "Failed", "message": msg,
                                                      "completion_time": ts(now)}), (
                    Reason.UNSCHEDULABLE, msg)
            out.again_in(eff.pending_seconds - waited)

    if spec.suspend and not job.suspended:
        out.suspend_jobs[job.name] = True  # back to the queue when resumed (admission)
    phase = "Suspended" if spec.suspend else "Queued" if job.suspended else "Running"
    update["phase"] = phase
    if phase == "Running" and st.phase in ("Queued", "Pending"):
        out.events.append(Event("Normal", Reason.STAGE_STARTED, f"stage {name} started"))
    # A stage starts when admitted, not when its Job is created and queued.
    update["start_time"] = st.start_time or ts(now) if phase == "Running" else st.start_time
    if phase == "Running":
        # The first attempt starts with the admission (the Job makes its pod at once): the
        # pod's creation is no news worth a status write of its own.
        update["attempts"] = max(update["attempts"], 1)
    percent, message = _progress(name, job, obs.progress, spec.duration_seconds * spec.fps)
    if percent >= 100:
        # The stage's last report (of its last scene, for segments) comes as its pod exits,
        # and the Job's completion follows within the Job controller's next sync: that write
        # shows it. Written on its own, it would cost a status write per stage to show "99 %"
        # for under a second.
        percent, message = st.progress, ""
    update["progress"] = max(min(int(percent), 99), 0)
    if message and phase == "Running":
        update["message"] = message
    elif phase != "Running" or st.message in ("queued", "suspended", "stage Job lost", None):
        update["message"] = {"Suspended": "suspended", "Queued": "queued"}.get(phase, "running")
    update["completion_time"] = None
    return st.model_copy(update=update), None


def _progress(stage: str, job: JobView, progress: list[ProgressView],
              frames_total: int) -> tuple[float, str]:
    """Stage progress: the workers' own reports (Redis) where there are any, else Job counts."""
    mine = [p for p in progress if p.stage == stage]
    if stage == "segments":
        total = max(job.completions, 1)
        per_index = {p.index: p.percent for p in mine if p.index is not None}
        reported = sum(per_index.values())
        # Indexes without a report count as done if the Job says so, else as 0.
        unreported_done = max(job.succeeded - sum(1 for v in per_index.values() if v >= 100), 0)
        percent = (reported + 100 * unreported_done) / total
        message = f"{job.succeeded}/{total} scenes rendered"
        if mine:  # frames of the whole video (durationSeconds x fps), summed over the scenes
            message = f"frame {sum(p.done for p in mine)}/{frames_total}, {message}"
        return min(percent, 100.0), message
    if mine:
        latest = mine[-1]
        return latest.percent, latest.message
    return (100.0 * job.succeeded / max(job.completions, 1)), ""


def _failure(job: JobView, pods: list[PodView]) -> tuple[str, str]:
    reason, message = job.failure or ("", "")
    failed = sorted((p for p in pods if p.phase == "Failed" and p.message),
                    key=lambda p: p.finished_at or "")
    worker = failed[-1].message.strip() if failed else ""
    if reason == "PodFailurePolicy":
        return Reason.PERMANENT_ERROR, worker or message
    if reason == "DeadlineExceeded":
        return Reason.STAGE_TIMEOUT, f"stage attempt exceeded timeouts.stageSeconds ({message})"
    if reason in ("BackoffLimitExceeded", "FailedIndexes", "MaxFailedIndexesExceeded"):
        detail = f": {worker}" if worker else ""
        return Reason.RETRIES_EXHAUSTED, f"failed after {job.failed} attempts{detail}"
    return Reason.STAGE_FAILED, f"{reason}: {message}".strip(": ")


def _output(result: Obj, eff: EffectiveSpec) -> OutputStatus:
    return OutputStatus(uri=str(result.get("uri") or eff.output_uri),
                        bytes=result.get("bytes"), md5=result.get("md5"),
                        crc32c=result.get("crc32c"))


def _fail(status: VideoJobStatus, reason: str, message: str, generation: int | None,
          now: dt.datetime) -> VideoJobStatus:
    conditions = list(status.conditions or [])
    conditions = set_condition(conditions, "Failed", True, reason, message, generation, now)
    conditions = set_condition(conditions, "Ready", False, reason, message, generation, now)
    conditions = set_condition(conditions, "Progressing", False, reason, message, generation,
                               now)
    return status.model_copy(update={"phase": "Failed", "reason": reason, "message": message,
                                     "completion_time": ts(now), "conditions": conditions})


def _ttl(spec: VideoJobSpec, status: VideoJobStatus, now: dt.datetime, out: Plan) -> None:
    done = parse_ts(status.completion_time)
    if spec.ttl_seconds_after_finished is None or done is None:
        return
    expiry = done + dt.timedelta(seconds=spec.ttl_seconds_after_finished)
    if now >= expiry:
        out.delete_videojob = True
    else:
        out.again_in((expiry - now).total_seconds())


def _cancel(obs: Observation, status: VideoJobStatus, old_doc: Obj, config: OperatorConfig,
            out: Plan) -> Plan:
    """Deletion: stop every Job (pods get SIGTERM, Pending ones never start), then let go."""
    meta = obs.videojob["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return out
    out.delete_jobs = [j.name for j in obs.jobs if not j.deleting]
    left = [p.name for p in obs.pods]
    # Told once: when the phase turns Cancelling, or, for a finished VideoJob (whose phase
    # stays), when its Jobs are deleted; not at every look while they go.
    if status.phase in ("Succeeded", "Failed"):
        tell = bool(out.delete_jobs)
    else:
        tell = status.phase != "Cancelling" and bool(obs.jobs or left)
    if tell:
        out.events.append(Event("Normal", Reason.CANCELLING,
                                f"deleting {len(obs.jobs)} stage Jobs and {len(left)} pods"))
    if status.phase not in ("Succeeded", "Failed"):
        status = status.model_copy(update={
            "phase": "Cancelling", "message": "VideoJob deleted; stopping its stages"})
    if not obs.jobs and not left:
        out.remove_finalizer = True
        out.confirm_gone = True
        return _finish(out, status, old_doc)
    since = parse_ts(meta["deletionTimestamp"]) or obs.now
    if (obs.now - since).total_seconds() >= config.cancel_timeout_seconds:
        out.events.append(Event("Warning", Reason.CANCEL_INCOMPLETE,
                                f"gave up waiting after {config.cancel_timeout_seconds}s; "
                                f"still present: {', '.join(left) or 'stage Jobs'}"))
        out.remove_finalizer = True
        return _finish(out, status, old_doc)
    out.again_in(1.0)
    return _finish(out, status, old_doc)


def _finish(out: Plan, status: VideoJobStatus, old_doc: Obj) -> Plan:
    out.events = one_per_hand_off(out.events)
    new_doc = dump_status(status)
    if new_doc != old_doc:
        out.status = new_doc
        out.progress_only = strip_progress(new_doc) == strip_progress(old_doc)
    return out


def one_per_hand_off(events: list[Event]) -> list[Event]:
    """A stage that starts in the same look as the step before it (the VideoJob accepted, the
    previous stage succeeded, a resume) is told in that step's Event, and the last stage's
    success in the VideoJob's: "stage plan succeeded; stage keyframes started". One Event per
    hand-off, every transition still told; a stage that waits in the queue first gets
    StageQueued, then StageStarted of its own."""
    out: list[Event] = []
    for e in events:
        prev = out[-1] if out else None
        if prev is not None and prev.type == e.type == "Normal" and (
                (e.reason == Reason.STAGE_STARTED
                 and prev.reason in (Reason.CREATED, Reason.STAGE_SUCCEEDED, Reason.RESUMED))
                or (e.reason == Reason.SUCCEEDED and prev.reason == Reason.STAGE_SUCCEEDED)):
            reason = e.reason if e.reason == Reason.SUCCEEDED else prev.reason
            out[-1] = Event("Normal", reason, f"{prev.message}; {e.message}")
            continue
        out.append(e)
    return out


# -- building views from API objects (pure) --------------------------------------------------

def job_view(job: Obj) -> JobView:
    meta, spec, st = job["metadata"], job.get("spec", {}), job.get("status", {})
    conditions = {c["type"]: c for c in st.get("conditions") or [] if c.get("status") == "True"}
    failure = None
    if "Failed" in conditions:
        c = conditions["Failed"]
        failure = (c.get("reason", ""), c.get("message", ""))
    return JobView(
        name=meta["name"],
        stage=(meta.get("labels") or {}).get(jobs.LABEL_STAGE, ""),
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
    )


def pod_view(pod: Obj) -> PodView:
    meta, st = pod["metadata"], pod.get("status", {})
    scheduled = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"),
                     None)
    unschedulable = (scheduled is not None and scheduled.get("status") == "False"
                     and scheduled.get("reason") == "Unschedulable")
    message, finished = "", None
    for cs in st.get("containerStatuses") or []:
        if cs.get("name") != jobs.CONTAINER:
            continue
        term = (cs.get("state") or {}).get("terminated")
        if term:
            message = term.get("message") or ""
            finished = term.get("finishedAt")
    return PodView(
        name=meta["name"],
        stage=(meta.get("labels") or {}).get(jobs.LABEL_STAGE, ""),
        phase=st.get("phase", "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
        unschedulable_since=scheduled.get("lastTransitionTime") if unschedulable and scheduled
        else None,
        unschedulable_message=(scheduled or {}).get("message", "") if unschedulable else "",
        message=message,
        finished_at=finished,
    )


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
