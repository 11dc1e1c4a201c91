"""The stage cache in the planner (issue #25, docs/reuse.md): what to look up, and what a stage
does with what the lookup found. Pure.

The lookups themselves (storage reads, and copying the hits into the VideoJob's own artifact
prefix) run off the reconcile path (cache_lookup.py): the planner asks for one (`Plan.
cache_lookup`) and waits; the answer (`CacheAnswer`) arrives in a later observation. A stage
then:

- creates no Job when every output it owes is cached: `Cached`, with `cachedScenes`;
- creates a Job for the missing scenes only (keyframes draws them, segments renders one pod per
  missing scene: `jobs.stage_job(scenes=…)`), telling the pods the keys of what they render so
  that they write the entries (`cache_entries.Instruction`);
- and when the whole video is cached, the VideoJob succeeds at once with reason `Reused`, its
  video copied from the cache entry to its output URI by the lookup.

Lookups happen twice at most: before the plan stage (`planned=False`: the plan's entry, and
everything else when it hits) and once the plan stage has written the plan (`planned=True`).
"""

from __future__ import annotations

from dataclasses import dataclass

from videojob_common.cache_entries import Instruction, scope
from videojob_common.cache_keys import Toolchain, image_digest
from videojob_common.pipeline import STAGE_DONE, Obj, Stage, StagePhase

from .api import EffectiveSpec, StageStatus, VideoJobSpec
from .cache_view import CacheAnswer, CacheLookup, ReusedVideo
from .config import OperatorConfig

USE, REFRESH, OFF = "Use", "Refresh", "Off"


@dataclass(frozen=True)
class StageCache:
    """What one stage does about the cache: wait for a lookup, nothing (Cached), or create its
    Job for `scenes` (None: all), writing the entries `instruction` names."""

    wait: bool = False
    cached: bool = False
    scenes: tuple[int, ...] | None = None
    instruction: Instruction | None = None
    cached_scenes: str | None = None


NO_CACHE = StageCache()
WAIT = StageCache(wait=True)


def policy(spec: VideoJobSpec, config: OperatorConfig) -> str:
    if not config.cache.enabled:
        return OFF
    return spec.cache.policy if spec.cache else USE


def cache_scope(config: OperatorConfig, eff: EffectiveSpec, namespace: str) -> str:
    return scope(eff.artifact_root, namespace, config.cache.shared_by(namespace))


def toolchain(eff: EffectiveSpec) -> Toolchain:
    """The worker as keys name it: its image's digest when pinned, else the image reference
    (the backend's version comes from the plan, cache_lookup.py)."""
    return Toolchain(worker_version=eff.worker_image, backend_version="",
                     worker_digest=image_digest(eff.worker_image))


def lookup(meta: Obj, spec_doc: str, eff: EffectiveSpec, config: OperatorConfig,
           planned: bool, read: bool) -> CacheLookup:
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    return CacheLookup(
        namespace=namespace, name=name, uid=uid, planned=planned, read=read,
        scope=cache_scope(config, eff, namespace),
        prefix=f"{eff.artifact_root}/{namespace}/{name}/{uid}", output_uri=eff.output_uri,
        spec=spec_doc, toolchain=toolchain(eff))


def answered(answer: CacheAnswer | None, stage: Stage, planned: bool) -> bool:
    """Whether `answer` says enough for `stage`: the plan stage needs any answer; the later
    ones need the keys, or an answer given with the plan known (that found none keyable)."""
    if answer is None:
        return False
    if stage == Stage.PLAN:
        return True
    return answer.keys is not None or answer.planned or not planned


def for_stage(stage: Stage, answer: CacheAnswer | None, scenes: int) -> StageCache:
    """What `stage` does, given the lookup's answer (which `answered` says is enough)."""
    if answer is None:
        return NO_CACHE
    if stage == Stage.PLAN:
        if answer.plan_cached:
            return StageCache(cached=True)
        if not answer.plan_key:  # the lookup failed: render, write nothing
            return NO_CACHE
        return StageCache(instruction=Instruction(answer.scope, {None: answer.plan_key}))
    keys = answer.keys
    if keys is None or stage in (Stage.PUBLISH, Stage.NARRATE):
        return NO_CACHE  # narrate's lines are keyed into stitch's key, not cached on their own
    if stage == Stage.STITCH:
        return StageCache(instruction=Instruction(answer.scope, {None: keys.stitch}))
    owed = _owed(stage, answer, scenes)
    have = answer.keyframes if stage == Stage.KEYFRAMES else answer.segments
    render = tuple(sorted(owed - have))
    # Outputs found in the cache, of all: a keyframe that no segment to render needs is not
    # drawn either way, so it counts only where it was found.
    taken = f"{len(have)}/{scenes}"
    if not render:
        return StageCache(cached=True, cached_scenes=taken)
    all_keys = keys.keyframes if stage == Stage.KEYFRAMES else keys.segments
    return StageCache(
        scenes=None if len(render) == scenes else render,
        instruction=Instruction(answer.scope, {i: all_keys[i] for i in render}),
        cached_scenes=taken if len(render) < scenes else None)


def _owed(stage: Stage, answer: CacheAnswer, scenes: int) -> set[int]:
    """The scenes whose output the stage must provide: every segment; the keyframes only of
    the segments still to render (and of the scenes those dissolve into)."""
    if stage == Stage.SEGMENTS:
        return set(range(scenes))
    missing = set(range(scenes)) - answer.segments
    return missing | {i + 1 for i in missing if i in answer.needs_next}


def reuse(answer: CacheAnswer | None, stages: dict[Stage, StageStatus]) -> ReusedVideo | None:
    """The reused video, when the lookup copied the whole video and no stage has run."""
    if answer is None or answer.reused is None:
        return None
    if any(s.phase not in (StagePhase.PENDING, *STAGE_DONE) for s in stages.values()):
        return None
    return answer.reused
