"""The reconcile logic, as a pure function: VideoJob + observed children -> actions.

`plan(observation, config)` looks at one VideoJob, the stage Jobs and pods it owns (views.py),
the latest worker progress, the clock and what admission offers, and returns a `Plan`
(actions.py): finalizer changes, Jobs to create (admitted or queued), suspend or delete, the
complete new status, Events for every transition, and when to look again. It never talks to the
API; `controller.py` gathers the observation and applies the plan as it is.

The steps, in the kubebuilder order, each a function below:
finalizer -> deletion (cancellation.py) -> spec -> terminal/TTL -> deadlines -> stages
(stages.py) -> summary; then the webhook notifications of what changed (notifications.py),
queued in the same status write as the transitions they tell. Stages run one after another;
the first one not yet Succeeded is the only one acted on.

Stage Jobs are created queued, or admitted when their pool has room and nobody waits (the
Observation's offers); admission (admission_loop.py) unsuspends the queued ones. The planner only
ever suspends (when the VideoJob is suspended); while a stage's Job waits for admission the
stage and the VideoJob are `Queued`, with the place in the queue the admission pass last
computed. The total deadline counts from the first admission, so a burst that waits in the queue
does not time out there.
"""

from __future__ import annotations

import datetime as dt

from pydantic import ValidationError

from videojob_common.pipeline import (
    NEEDS,
    STAGE_DONE,
    STAGES,
    TERMINAL,
    Obj,
    Phase,
    Stage,
    StagePhase,
    stages_of,
)

from . import accounting, archiving, caching, limits, notifications, storage_policy
from .actions import Plan, finish
from .api import (
    FINALIZER,
    Condition,
    EffectiveSpec,
    OutputStatus,
    ReusedFrom,
    StageStatus,
    VideoJobSpec,
    VideoJobStatus,
)
from .cache_view import ReusedVideo
from .cancellation import plan_deletion
from .config import OperatorConfig, artifact_root, effective
from .parsed import parsed
from .pools import pool_of
from .progress import overall
from .refusals import Refusal
from .stages import Context, next_step
from .status import (
    WAITING_REASONS,
    Reason,
    failed,
    parse_ts,
    position_worth_writing,
    set_condition,
    ts,
)
from .views import Observation, stage_result

Stages = dict[Stage, StageStatus]
# A current stage in one of these gives the VideoJob its phase; in any other, it is Pending.
UNDER_WAY = (StagePhase.SUSPENDED, StagePhase.RUNNING, StagePhase.QUEUED)


def plan(obs: Observation, config: OperatorConfig) -> Plan:
    out = Plan()
    old_doc: Obj = obs.videojob.get("status") or {}
    old = _old_status(old_doc)
    status = steps(obs, config, old, out)
    effective_ = status.effective
    status = accounting.step(status, obs.pod_objects, effective_.gpu_resource_name if effective_
                             else config.defaults.gpu_resource_name, obs.now)
    # Last: the webhook notifications of what changed, queued in the same status write.
    status = notifications.step(obs, config.notify, out, old, status)
    notifications.hold_finalizer(obs, status, out, config.cancel_timeout_seconds)
    out = finish(out, status, old_doc)
    # Then the archive: due once it ended, and holding its deletion until the row is in.
    archiving.step(obs, out.status if out.status is not None else old_doc, config.archive, out)
    return out


def steps(obs: Observation, config: OperatorConfig, status: VideoJobStatus,
          out: Plan) -> VideoJobStatus:
    """The reconcile's steps, in order, from the status as it is to the new one."""
    meta = obs.videojob["metadata"]
    if meta.get("deletionTimestamp"):
        return plan_deletion(obs, status, config, out)
    ensure_finalizer(meta, out)
    valid, status = validate_spec(obs, status, out, config)
    if valid is None:
        return status
    spec, eff = valid
    ctx = Context(obs=obs, config=config, spec=spec, eff=eff, out=out)
    status = status.model_copy(update={"observed_generation": meta.get("generation"),
                                       "effective": eff})
    stages = _stages(status, eff, narrated=spec.narration is not None)
    if status.phase in TERMINAL:
        return after_the_end(ctx, status, stages)
    status = report_refusal(obs, status, out)
    if status.phase == Phase.FAILED:
        return after_the_end(ctx, status, stages)
    if status.phase is None:
        out.tell("Normal", Reason.CREATED,
                 f"VideoJob accepted: {eff.scenes} scenes, {spec.resolution} @ {spec.fps} fps, "
                 f"{spec.duration_seconds}s")
    reused = caching.reuse(obs.cache, stages)
    if reused is not None:
        return reuse(ctx, status, stages, reused)
    status = _started(status, ctx)
    timed_out = enforce_deadline(ctx, status, stages)
    if timed_out is not None:
        return timed_out
    status, failure = advance_stages(ctx, status, stages)
    if failure is None:
        started = _started(status, ctx)
        if started is not status:  # admitted as its Job was created: the deadline runs now
            out.again_in(float(eff.total_seconds))
        status = summarize(ctx, started, stages)
    return status


def _old_status(doc: Obj) -> VideoJobStatus:
    try:
        return parsed(VideoJobStatus, doc)
    except ValidationError:
        return VideoJobStatus()


def _stages(status: VideoJobStatus, eff: EffectiveSpec, narrated: bool) -> Stages:
    """Every stage's status (narrate only for a narrated VideoJob), those not started yet
    Pending."""
    stages: Stages = {Stage(s.name): s for s in status.stages or []}
    for name in stages_of(narrated):
        stages.setdefault(name, StageStatus(name=name, phase=StagePhase.PENDING))
    if stages[Stage.SEGMENTS].total is None:
        stages[Stage.SEGMENTS] = stages[Stage.SEGMENTS].model_copy(
            update={"total": eff.scenes, "completed": 0})
    return stages


def _listed(stages: Stages) -> list[StageStatus]:
    return [stages[s] for s in STAGES if s in stages]


def _ready(name: Stage, stages: Stages) -> bool:
    """Every stage `name` needs is done (the DAG: pipeline.NEEDS)."""
    return all(stages[n].phase in STAGE_DONE for n in NEEDS[name] if n in stages)


def under_way(stages: Stages) -> list[Stage]:
    """The stages that may act now: not done, and everything they need done. Two at once
    where the DAG branches (segments beside narrate)."""
    return [s for s in STAGES
            if s in stages and stages[s].phase not in STAGE_DONE and _ready(s, stages)]


# -- the steps -------------------------------------------------------------------------------

def ensure_finalizer(meta: Obj, out: Plan) -> None:
    """The finalizer that lets cancellation stop the stages before the VideoJob goes."""
    if FINALIZER not in (meta.get("finalizers") or []):
        out.add_finalizer = True


def validate_spec(obs: Observation, status: VideoJobStatus, out: Plan, config: OperatorConfig
                  ) -> tuple[tuple[VideoJobSpec, EffectiveSpec] | None, VideoJobStatus]:
    """The spec and its effective values (computed once per reconcile), or None: the VideoJob
    fails (once) with InvalidSpec, naming the fields: the
    model's checks, then the administrator's rules (spec_problems). A stage still running (a
    priority changed out of its band) is stopped."""
    meta = obs.videojob["metadata"]
    try:
        spec = parsed(VideoJobSpec, obs.videojob.get("spec") or {})
    except ValidationError as e:
        problem = f"invalid spec: {e}"
    else:
        if status.phase in TERMINAL and status.effective is not None:
            # It ended with what it recorded: a configuration changed since (a storage root,
            # a limit tightened) neither moves its output nor fails it after the fact.
            return (spec, status.effective), status
        eff = pinned(effective(spec, config, meta["namespace"], meta["name"], meta["uid"]),
                     status.effective, spec)
        refused = spec_problems(spec, eff, config, meta["namespace"])
        if not refused:
            return (spec, eff), status
        problem = "invalid spec: " + "; ".join(refused)
    if status.phase == Phase.FAILED:
        return None, status
    out.delete_jobs = [j.name for j in obs.jobs
                       if not j.deleting and not j.complete and j.failure is None]
    status = failed(status, Reason.INVALID_SPEC, problem, meta.get("generation"), obs.now)
    out.tell("Warning", Reason.INVALID_SPEC, status.message or "")
    return None, status


def pinned(eff: EffectiveSpec, recorded: EffectiveSpec | None,
           spec: VideoJobSpec) -> EffectiveSpec:
    """Where a started VideoJob's files are stays where it recorded them: a storage root changed
    in the configuration applies to the VideoJobs that start after it (the stages done so far
    wrote under the old one)."""
    if recorded is None:
        return eff
    update = {"artifact_root": recorded.artifact_root}
    if not (spec.output and spec.output.uri):  # the default output, under the artifact root
        update["output_uri"] = recorded.output_uri
    return eff.model_copy(update=update)


def spec_problems(spec: VideoJobSpec, eff: EffectiveSpec, config: OperatorConfig,
                  namespace: str) -> list[str]:
    """What the administrator does not let this namespace do, one line per field: write or read
    outside its storage (storage_policy.py), ask for more than its ceilings or widen the GPU
    placement (limits.py)."""
    return [
        *storage_policy.problems(
            spec.output.uri if spec.output else None, list(spec.images or []), spec.audio,
            storage_root=artifact_root(config), namespace=namespace,
            read_prefixes=config.read_prefixes, http=config.http_inputs),
        *limits.over_limits(spec, eff.scenes, eff.gpu_count, eff.total_seconds,
                            eff.stage_seconds, eff.pending_seconds,
                            limits.for_namespace(config.limits, namespace)),
        *limits.widened_placement(spec, config.defaults.gpu_node_selector, config.placement),
        *[f"spec.sceneOverrides[{i}].index: there is no scene {o.index} (scenes: {eff.scenes})"
          for i, o in enumerate(spec.scene_overrides or []) if o.index >= eff.scenes],
        *([f"spec.narration.lines: {len(spec.narration.lines)} lines for {eff.scenes} scenes "
           "(one per scene)"] if spec.narration and spec.narration.lines is not None
          and len(spec.narration.lines) != eff.scenes else []),
    ]


def report_refusal(obs: Observation, status: VideoJobStatus,
                   out: Plan) -> VideoJobStatus:
    """The API server's last refusal of this VideoJob's writes (refusals.py): one that can never
    pass fails the VideoJob, with the server's message; any other shows in the Degraded
    condition until a reconcile goes through."""
    refused, generation = obs.refused, obs.videojob["metadata"].get("generation")
    conditions = list(status.conditions or [])
    if refused is None:
        if any(c.type == "Degraded" and c.status == "True" for c in conditions):
            conditions = set_condition(conditions, "Degraded", False, Reason.RECOVERED, "",
                                       generation, obs.now)
            return status.model_copy(update={"conditions": conditions})
        return status
    if refused.permanent:
        status = failed(status, Reason.API_REJECTED, refused.describe(), generation, obs.now)
        out.tell("Warning", Reason.API_REJECTED, status.message or "")
        return status
    return status.model_copy(update={"conditions": _degraded(conditions, refused, generation,
                                                             obs.now)})


def _degraded(conditions: list[Condition], refused: Refusal, generation: int | None,
              now: dt.datetime) -> list[Condition]:
    return set_condition(conditions, "Degraded", True, Reason.API_ERROR,
                         f"{refused.describe()} (retrying)", generation, now)


def degraded_now(videojob: Obj, refused: Refusal, now: dt.datetime) -> Obj | None:
    """The status patch that shows a refusal that may pass at once, for the controller to write
    when it happens: the refused write is usually the one the plan makes before its status (a
    stage Job's create), so no plan would ever get to write it. None when it shows already."""
    old_doc: Obj = videojob.get("status") or {}
    conditions = list(_old_status(old_doc).conditions or [])
    new = _degraded(conditions, refused, videojob["metadata"].get("generation"), now)
    if new == conditions:
        return None
    return {"conditions": [c.model_dump(by_alias=True, exclude_none=True, mode="json")
                           for c in new]}


def after_the_end(ctx: Context, status: VideoJobStatus, stages: Stages) -> VideoJobStatus:
    """Nothing runs after the end: a stage Job still going (total timeout) is stopped, and the
    VideoJob deleted once ttlSecondsAfterFinished have passed."""
    ctx.out.delete_jobs = [j.name for j in ctx.obs.jobs if not j.deleting and not j.complete
                           and j.failure is None]
    expire(ctx, status)
    return status.model_copy(update={"stages": _listed(stages)})


def expire(ctx: Context, status: VideoJobStatus) -> None:
    """ttlSecondsAfterFinished: delete the finished VideoJob, or look again when it is due."""
    done = parse_ts(status.completion_time)
    ttl = ctx.spec.ttl_seconds_after_finished
    if ttl is None or done is None:
        return
    expiry = done + dt.timedelta(seconds=ttl)
    if ctx.now >= expiry:
        ctx.out.delete_videojob = True
    else:
        ctx.out.again_in((expiry - ctx.now).total_seconds())


def _started(status: VideoJobStatus, ctx: Context) -> VideoJobStatus:
    """The VideoJob starts with its first admission: a Job seen unsuspended, or created so."""
    if status.start_time is not None:
        return status
    admitted = any(not j.suspended for j in ctx.obs.jobs) or any(
        not m["spec"]["suspend"] for m in ctx.out.create_jobs)
    if not admitted:
        return status
    return status.model_copy(update={"start_time": ts(ctx.now)})


def enforce_deadline(ctx: Context, status: VideoJobStatus,
                     stages: Stages) -> VideoJobStatus | None:
    """timeouts.totalSeconds, from the first admission: the failed status once it has passed
    (its Jobs deleted), else None and a look again when it is due."""
    start = parse_ts(status.start_time)
    if start is None:
        return None
    now, total = ctx.now, ctx.eff.total_seconds
    deadline = start + dt.timedelta(seconds=total)
    if now < deadline:
        ctx.out.again_in((deadline - now).total_seconds())
        return None
    for running in under_way(stages):
        stages[running] = stages[running].model_copy(update={
            "phase": StagePhase.FAILED, "completion_time": ts(now),
            "message": f"total timeout of {total}s reached"})
    status = failed(status.model_copy(update={"stages": _listed(stages)}), Reason.TOTAL_TIMEOUT,
                    f"VideoJob did not finish within timeouts.totalSeconds={total}s",
                    ctx.meta.get("generation"), now)
    ctx.out.tell("Warning", Reason.TOTAL_TIMEOUT, status.message or "")
    ctx.out.delete_jobs = [j.name for j in ctx.obs.jobs if not j.deleting and not j.complete]
    return status


def advance_stages(ctx: Context, status: VideoJobStatus,
                   stages: Stages) -> tuple[VideoJobStatus, str | None]:
    """Every stage whose needs are done takes its next step (stages.py), in the DAG's order;
    a stage that succeeds in this look hands over to the stages after it at once. Returns the
    status and, if a stage failed, its reason (the status then says so, and the other
    branch's Jobs are stopped)."""
    by_stage = {j.stage: j for j in ctx.obs.jobs}
    for name in STAGES:
        if name not in stages or stages[name].phase in STAGE_DONE or not _ready(name, stages):
            continue
        job = by_stage.get(name)
        stages[name], failure = next_step(name, stages[name], job, ctx)
        if failure is not None:
            return _stage_failed(ctx, status, stages, name, failure), failure[0]
        if stages[name].phase not in STAGE_DONE:
            continue
        ctx.out.tell("Normal", Reason.STAGE_SUCCEEDED, f"stage {name} succeeded")
        status = _take_result(ctx, status, name)
    return status, None


def reuse(ctx: Context, status: VideoJobStatus, stages: Stages,
          reused: ReusedVideo) -> VideoJobStatus:
    """The whole video was in the cache, and the lookup copied it to the output URI: every
    stage not done is Cached, and the VideoJob succeeds with reason Reused."""
    n = ctx.eff.scenes
    for name in STAGES:
        if name not in stages or stages[name].phase in STAGE_DONE:
            continue
        per_scene = name in (Stage.KEYFRAMES, Stage.SEGMENTS)
        stages[name] = stages[name].model_copy(update={
            "phase": StagePhase.CACHED, "progress": 100, "message": "from the cache",
            "completion_time": ts(ctx.now), "cached_scenes": f"{n}/{n}" if per_scene else None,
            **({"completed": n, "total": n} if name == Stage.SEGMENTS else {})})
    by = reused.written_by
    origin = f"{by.get('namespace')}/{by.get('name')}" if by.get("name") else "the cache"
    status = status.model_copy(update={
        "stages": _listed(stages), "current_stage": Stage.PUBLISH, "progress": 100,
        "output": OutputStatus.model_validate(reused.output),
        "reused_from": ReusedFrom(key=reused.key, entry=reused.entry,
                                  namespace=by.get("namespace"), name=by.get("name"),
                                  uid=by.get("uid"))})
    return _succeeded(ctx, status, Reason.REUSED,
                      f"video reused (rendered by {origin}) and copied to {ctx.eff.output_uri}")


def _take_result(ctx: Context, status: VideoJobStatus, name: Stage) -> VideoJobStatus:
    """What a stage that just succeeded reports (contract): publish its output; narrate the
    video's length when a line extended its scene."""
    if name not in (Stage.PUBLISH, Stage.NARRATE):
        return status
    result = stage_result(ctx.obs.pods, name)
    if not result:
        return status
    if name == Stage.PUBLISH:
        return status.model_copy(update={"output": _output(result, ctx.eff)})
    if float(result.get("extensionSeconds") or 0) > 0:
        return status.model_copy(update={"duration_seconds": result.get("durationSeconds")})
    return status


def _stage_failed(ctx: Context, status: VideoJobStatus, stages: Stages, name: Stage,
                  failure: tuple[str, str]) -> VideoJobStatus:
    """A stage failed: so does the VideoJob; every Job still going stops (the stage's own, e.g.
    unschedulable, and the other branch's)."""
    reason, message = failure
    status = status.model_copy(update={"stages": _listed(stages), "current_stage": name})
    status = failed(status, reason, message, ctx.meta.get("generation"), ctx.now)
    ctx.out.tell("Warning", reason, f"stage {name}: {message}")
    ctx.out.delete_jobs += [j.name for j in ctx.obs.jobs
                            if not j.deleting and not j.complete and j.failure is None
                            and j.name not in ctx.out.delete_jobs]
    return status


# A stage in one of these says most about the VideoJob, first first: a Running branch makes
# the VideoJob Running while the other waits in the queue.
_MOST_ACTIVE = (StagePhase.RUNNING, StagePhase.SUSPENDED, StagePhase.QUEUED, StagePhase.PENDING)


def summarize(ctx: Context, status: VideoJobStatus, stages: Stages) -> VideoJobStatus:
    """The VideoJob's phase, progress, message and conditions from its stages'."""
    going = under_way(stages)
    status = status.model_copy(update={"stages": _listed(stages),
                                       "current_stage": "+".join(going) or Stage.PUBLISH,
                                       "progress": overall(stages)})
    if not going:
        return _succeeded(ctx, status)
    lead = min(going, key=lambda s: _MOST_ACTIVE.index(stages[s].phase)
               if stages[s].phase in _MOST_ACTIVE else len(_MOST_ACTIVE))
    return _under_way(ctx, status, lead, stages[lead])


def _succeeded(ctx: Context, status: VideoJobStatus, reason: str | None = None,
               message: str | None = None) -> VideoJobStatus:
    """Succeeded: published (reason none), or Reused (the video copied from the cache)."""
    uri = ctx.eff.output_uri
    generation, now = ctx.meta.get("generation"), ctx.now
    status = status.model_copy(update={
        "phase": Phase.SUCCEEDED, "progress": 100, "completion_time": ts(now),
        "output_uri": uri, "message": message or f"video published to {uri}",
        "reason": reason})
    said = reason or Reason.SUCCEEDED
    conditions = set_condition(list(status.conditions or []), "Ready", True, said,
                               status.message or "", generation, now)
    conditions = set_condition(conditions, "Progressing", False, said, "",
                               generation, now)
    ctx.out.tell("Normal", said, status.message or "")
    expire(ctx, status)
    return status.model_copy(update={"conditions": conditions})


def _under_way(ctx: Context, status: VideoJobStatus, current: Stage,
               st: StageStatus) -> VideoJobStatus:
    """A VideoJob not finished: its phase is its current stage's (Pending, Queued, Running or
    Suspended), with the place in the queue while Queued."""
    phase = Phase(st.phase) if st.phase in UNDER_WAY else Phase.PENDING
    if ctx.spec.suspend and st.phase != StagePhase.RUNNING:
        phase = Phase.SUSPENDED
    pool = pool_of(ctx.config.pools, current)
    position = ctx.obs.queue_position if phase == Phase.QUEUED else None
    # None while Queued: admission has not placed it yet (a restarted operator before its
    # first pass); the written place stands until it does.
    if phase == Phase.QUEUED and (position is None or not position_worth_writing(
            status.queue_position, position)):
        position = status.queue_position
    message = {
        Phase.SUSPENDED: f"suspended in stage {current}",
        Phase.RUNNING: f"stage {current}: {st.message or 'running'}",
        Phase.PENDING: f"stage {current} is waiting to start",
        Phase.QUEUED: f"stage {current} is queued in pool {pool}"
                      + (f" at position {position}" if position else ""),
    }[phase]
    if status.phase != phase and phase == Phase.SUSPENDED:
        ctx.out.tell("Normal", Reason.SUSPENDED, message)
    if status.phase == Phase.SUSPENDED and phase != Phase.SUSPENDED:
        ctx.out.tell("Normal", Reason.RESUMED, f"resumed in stage {current}")
    status = status.model_copy(update={"phase": phase, "message": message,
                                       "queue_position": position})
    return status.model_copy(update={"conditions": _conditions(ctx, status, phase, current,
                                                                 pool)})


def _conditions(ctx: Context, status: VideoJobStatus, phase: Phase, current: Stage,
                pool: str) -> list[Condition]:
    """Ready, Progressing, Queued and Suspended of a VideoJob under way. Their messages stay
    put while a stage runs (progress lives in `message` and the stage list), so progress
    updates do not count as transitions."""
    generation, now = ctx.meta.get("generation"), ctx.now
    queued, suspended = phase == Phase.QUEUED, phase == Phase.SUSPENDED
    steady = (f"stage {current} is waiting for a slot in pool {pool}" if queued
              else f"stage {current} is {phase.lower()}")
    reason = WAITING_REASONS[phase]
    conditions = list(status.conditions or [])
    conditions = set_condition(conditions, "Ready", False, reason, steady, generation, now)
    conditions = set_condition(conditions, "Progressing", not suspended,
                               reason if queued or suspended else Reason.RUNNING, steady,
                               generation, now)
    conditions = set_condition(conditions, "Queued", queued,
                               Reason.QUEUED if queued else Reason.RUNNING,
                               steady if queued else "", generation, now)
    conditions = set_condition(conditions, "Suspended", suspended,
                               Reason.SUSPENDED if suspended else Reason.RUNNING, "",
                               generation, now)
    return conditions


def _output(result: Obj, eff: EffectiveSpec) -> OutputStatus:
    return OutputStatus(uri=str(result.get("uri") or eff.output_uri),
                        bytes=result.get("bytes"), md5=result.get("md5"),
                        crc32c=result.get("crc32c"))
