"""One stage's next step, in the planner's last step ("stages"): create its Job, wait for it,
or read how it ended.

A stage without a Job gets one, built by jobs.stage_job: admitted at once when its pool has room
and nobody waits (the Observation's offer, admission_policy.pods_at_creation), else queued
(`suspend: true`) for admission to unsuspend. A Job that vanished under a running stage is
re-created after `retry.backoffSeconds`. A stage with a Job follows it: Running while it runs,
Succeeded or Failed (with the reason the Job or the worker gives) when it ends, Failed when its
pods cannot be scheduled for `timeouts.pendingSeconds`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from videojob_common.pipeline import Obj, Stage, StagePhase

from . import caching, jobs, limits
from .actions import Plan
from .admission_policy import pods_at_creation
from .api import EffectiveSpec, StageStatus, VideoJobSpec
from .config import OperatorConfig
from .pools import job_gpus, pool_of, slots_per_pod
from .progress import stage_progress
from .status import Reason, parse_ts, ts, ts_micro
from .storage_policy import HTTP_INPUTS_ENV
from .views import JobView, Observation, PodView, job_view

Failure = tuple[str, str]  # (reason, message) of a stage that failed
WAITING = (StagePhase.QUEUED, StagePhase.PENDING)
LOOKING_UP = "looking up the cache"


@dataclass
class Context:
    """One reconcile's inputs and the plan its steps add to."""

    obs: Observation
    config: OperatorConfig
    spec: VideoJobSpec
    eff: EffectiveSpec
    out: Plan

    @property
    def meta(self) -> Obj:
        meta: Obj = self.obs.videojob["metadata"]
        return meta

    @property
    def now(self) -> dt.datetime:
        return self.obs.now


def next_step(name: Stage, st: StageStatus, job: JobView | None,
              ctx: Context) -> tuple[StageStatus, Failure | None]:
    """The stage's new status and, if it failed, why."""
    if job is not None and not job.deleting:
        return _follow(name, st, job, ctx)
    if job is not None:  # being deleted (by hand, Foreground): wait until it is gone
        ctx.out.again_in(1.0)
        return st, None
    if st.phase in (StagePhase.QUEUED, StagePhase.RUNNING, StagePhase.SUSPENDED) and st.job_name:
        waiting = _lost(name, st, ctx)
        if waiting is not None:
            return waiting, None
    return _create(name, st, ctx)


def _lost(name: Stage, st: StageStatus, ctx: Context) -> StageStatus | None:
    """The Job vanished under a running stage (deleted by hand, lost with etcd data): it is
    re-created rather than the stage staying Running forever, after retry.backoffSeconds. The
    stage's status while it waits; None once the wait is over."""
    backoff = ctx.eff.retry_backoff_seconds
    lost_at = parse_ts(st.job_lost_time)
    if lost_at is None:
        ctx.out.tell("Warning", Reason.STAGE_JOB_LOST,
                     f"stage {name}: Job {st.job_name} disappeared; re-creating it in {backoff}s")
        ctx.out.again_in(backoff)
        return st.model_copy(update={"message": "stage Job lost", "job_lost_time": ts(ctx.now)})
    wait = (lost_at + dt.timedelta(seconds=backoff) - ctx.now).total_seconds()
    if wait > 0:
        ctx.out.again_in(wait)
        return st
    return None


def _create(name: Stage, st: StageStatus, ctx: Context) -> tuple[StageStatus, Failure | None]:
    """The stage's Job, created admitted when its pool offers room, else queued; none when the
    cache holds every output it owes (caching.py), or not yet while the cache is looked up."""
    cache = _cache(name, ctx)
    if cache.wait:
        return st.model_copy(update={"message": LOOKING_UP}), None
    if cache.cached:
        ctx.out.tell("Normal", Reason.STAGE_CACHED, f"stage {name}: taken from the cache"
                     + (f" ({cache.cached_scenes} scenes)" if cache.cached_scenes else ""))
        return st.model_copy(update={
            "phase": StagePhase.CACHED, "progress": 100, "message": "from the cache",
            "cached_scenes": cache.cached_scenes, "completion_time": ts(ctx.now),
            **({"completed": ctx.eff.scenes, "total": ctx.eff.scenes}
               if name == Stage.SEGMENTS else {})}), None
    config, meta, spec = ctx.config, ctx.meta, ctx.spec
    pool = pool_of(config.pools, name)
    manifest = jobs.stage_job(
        namespace=meta["namespace"], videojob=meta["name"], uid=meta["uid"], stage=name,
        spec=spec, eff=ctx.eff, pool=pool, now=ts_micro(ctx.now),
        redis_url=config.redis_url, service_account=config.worker_service_account,
        extra_env=_worker_env(config), command=config.worker_command,
        secret_env={k: (r.name, r.key) for k, r in config.worker_secret_env.items()},
        volumes=config.worker_volumes, volume_mounts=config.worker_volume_mounts,
        scenes=cache.scenes, cache=cache.instruction, progress_secret=ctx.obs.progress_secret,
        **_pod_resources(config, meta["namespace"], name))
    pods = _admitted_at_creation(pool, manifest, ctx)
    if pods:
        manifest = jobs.admitted(manifest, pods, ts_micro(ctx.now))
    ctx.out.create_jobs.append(manifest)
    st = st.model_copy(update={"job_name": manifest["metadata"]["name"],
                               "completion_time": None, "job_lost_time": None,
                               "cached_scenes": cache.cached_scenes})
    if pods:
        # The stage starts as its Job is created: its status is the one the next look, from the
        # cache holding the new Job, would compute (test_planner checks that it settles).
        return _follow(name, st, job_view(manifest), ctx)
    if st.phase == StagePhase.PENDING:
        ctx.out.tell("Normal", Reason.STAGE_QUEUED, f"stage {name} queued in pool {pool}")
    suspended = spec.suspend
    return st.model_copy(update={
        "phase": StagePhase.SUSPENDED if suspended else StagePhase.QUEUED,
        "message": "suspended" if suspended else "queued"}), None


def _cache(name: Stage, ctx: Context) -> caching.StageCache:
    """What the cache says about the stage's outputs; a lookup asked for when it has not said
    enough yet (every stage before this one is done: the plan is known after the first)."""
    policy = caching.policy(ctx.spec, ctx.config)
    if policy == caching.OFF:
        return caching.NO_CACHE
    planned = name != Stage.PLAN
    if not caching.answered(ctx.obs.cache, name, planned):
        ctx.out.cache_lookup = caching.lookup(
            ctx.meta, jobs.spec_json(ctx.spec, ctx.eff), ctx.eff, ctx.config, planned,
            read=policy == caching.USE)
        return caching.WAIT
    return caching.for_stage(name, ctx.obs.cache, ctx.eff.scenes)


def _worker_env(config: OperatorConfig) -> dict[str, str]:
    """The administrator's worker_env, and the fetch policy of http(s) inputs when they are on
    (the worker's default is off: videojob_worker.fetch_policy)."""
    if not config.http_inputs.enabled:
        return config.worker_env
    return {**config.worker_env, HTTP_INPUTS_ENV: config.http_inputs.model_dump_json()}


def _pod_resources(config: OperatorConfig, namespace: str, stage: Stage) -> dict[str, Any]:
    """The administrator's requests and limits of the stage's pod and its /scratch size limit,
    for the namespace (limits.py)."""
    ceilings = limits.for_namespace(config.limits, namespace)
    own = (ceilings.pod_resources or {}).get(stage)
    return {"resources": own.manifest() if own else None,
            "scratch_size_limit": ceilings.scratch_size_limit}


def _admitted_at_creation(pool: str, manifest: Obj, ctx: Context) -> int:
    """Pods of the new Job admitted as it is created: 0 (queued) unless its pool offers room
    (nobody waits there) and the VideoJob is not suspended."""
    offer = ctx.obs.offers.get(pool)
    if offer is None or ctx.spec.suspend:
        return 0
    spec = manifest["spec"]
    defaults = ctx.config.defaults
    per_pod = slots_per_pod(ctx.config.pools[pool], job_gpus(spec, defaults.gpu_resource_name),
                            defaults.gpu_count)
    return pods_at_creation(offer, int(spec["completions"]), per_pod)


def _follow(name: Stage, st: StageStatus, job: JobView,
            ctx: Context) -> tuple[StageStatus, Failure | None]:
    """A stage with a Job: how it stands."""
    pods = [p for p in ctx.obs.pods if p.stage == name]
    update = _counts(name, st, job, ctx.now)
    if (job.complete or job.failure is not None) and st.phase in WAITING:
        # Admitted and done between two looks: the start is still part of the story.
        ctx.out.tell("Normal", Reason.STAGE_STARTED, f"stage {name} started")
    if job.complete:
        update.update(phase=StagePhase.SUCCEEDED, progress=100, message="done",
                      completion_time=job.completion_time or ts(ctx.now))
        return st.model_copy(update=update), None
    if job.failure is not None:
        update.update(phase=StagePhase.FAILED, completion_time=ts(ctx.now))
        return st.model_copy(update=update), _failure(job, pods)
    stuck = _unschedulable(pods, ctx)
    if stuck is not None:
        update.update(phase=StagePhase.FAILED, message=stuck[1], completion_time=ts(ctx.now))
        return st.model_copy(update=update), stuck
    return st.model_copy(update=_running(name, st, job, update, ctx)), None


def _counts(name: Stage, st: StageStatus, job: JobView, now: dt.datetime) -> Obj:
    """The stage's Job, its pods so far, its start, and for segments its scenes."""
    attempts = job.active + job.succeeded + job.failed
    update: Obj = {"job_name": job.name, "attempts": max(attempts, st.attempts),
                   "start_time": st.start_time or job.start_time or ts(now)}
    if name == Stage.SEGMENTS:
        # The last scene's pod succeeding is shown by the Job's completion, which follows
        # within the Job controller's next sync, as the stage's last report is (below).
        last_scene = job.succeeded >= job.completions and not job.complete
        update["completed"] = st.completed if last_scene else job.succeeded
        update["total"] = job.completions
    return update


def _unschedulable(pods: list[PodView], ctx: Context) -> Failure | None:
    """Pods waiting for a GPU too long fail the stage (argo#11025); else when to look again."""
    limit = ctx.eff.pending_seconds
    for p in pods:
        since = parse_ts(p.unschedulable_since)
        if p.phase != "Pending" or since is None or p.deleting:
            continue
        waited = (ctx.now - since).total_seconds()
        if waited >= limit:
            return Reason.UNSCHEDULABLE, (
                f"pod {p.name} could not be scheduled for {limit}s (timeouts.pendingSeconds): "
                f"{p.unschedulable_message}")
        ctx.out.again_in(limit - waited)
    return None


def _running(name: Stage, st: StageStatus, job: JobView, update: Obj, ctx: Context) -> Obj:
    """A stage whose Job is under way: queued, suspended or running, and how far it got."""
    spec = ctx.spec
    if spec.suspend and not job.suspended:
        ctx.out.suspend_jobs[job.name] = True  # back to the queue when resumed (admission)
    phase = (StagePhase.SUSPENDED if spec.suspend
             else StagePhase.QUEUED if job.suspended else StagePhase.RUNNING)
    update["phase"] = phase
    running = phase == StagePhase.RUNNING
    if running and st.phase in WAITING:
        ctx.out.tell("Normal", Reason.STAGE_STARTED, f"stage {name} started")
    # A stage starts when admitted, not when its Job is created and queued.
    update["start_time"] = st.start_time or ts(ctx.now) if running else st.start_time
    if running:
        # The first attempt starts with the admission (the Job makes its pod at once): the
        # pod's creation is no news worth a status write of its own.
        update["attempts"] = max(update["attempts"], 1)
    percent, message = stage_progress(name, job, ctx.obs.progress,
                                      spec.duration_seconds * spec.fps)
    if percent >= 100 and (not st.progress or job.succeeded >= job.completions):
        # The stage's last report (of its last scene, for segments) comes as its pod exits.
        # A stage that has shown no progress yet (one too short to report in between), or
        # whose pods have all succeeded (its end is here), shows it with its end: written on
        # its own, it would cost a status write to show "99 %" for under a second. A stage
        # that has been showing its progress shows it at the next progress write, as any
        # other report, if its end has not come first: on a busy cluster that can be seconds.
        percent, message = st.progress, ""
    update["progress"] = max(min(int(percent), 99), 0)
    if message and running:
        update["message"] = message
    elif not running or st.message in ("queued", "suspended", "stage Job lost", LOOKING_UP,
                                       None):
        update["message"] = {StagePhase.SUSPENDED: "suspended",
                             StagePhase.QUEUED: "queued"}.get(phase, "running")
    update["completion_time"] = None
    return update


def _failure(job: JobView, pods: list[PodView]) -> Failure:
    """Why a stage's Job failed, in the worker's words where it left some."""
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
