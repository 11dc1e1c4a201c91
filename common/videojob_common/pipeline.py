"""A VideoJob's pipeline: its stages in order, which of them run one pod per scene and which
need a GPU, and the phases a VideoJob and a stage go through."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

Obj = dict[str, Any]  # a Kubernetes object (or any JSON document) as a dict


class Stage(StrEnum):
    PLAN = "plan"
    KEYFRAMES = "keyframes"
    SEGMENTS = "segments"
    NARRATE = "narrate"  # the voice (#28): beside keyframes and segments
    STITCH = "stitch"
    PUBLISH = "publish"


# Every stage, in an order that puts each after the stages it needs (status lists them so).
STAGES: tuple[Stage, ...] = tuple(Stage)
# The pipeline is a DAG: a stage starts once every stage it needs is done. narrate runs beside
# keyframes and segments (#28); stitch waits for both branches.
NEEDS: dict[Stage, tuple[Stage, ...]] = {
    Stage.PLAN: (),
    Stage.KEYFRAMES: (Stage.PLAN,),
    Stage.SEGMENTS: (Stage.KEYFRAMES,),
    Stage.NARRATE: (Stage.PLAN,),
    Stage.STITCH: (Stage.SEGMENTS, Stage.NARRATE),
    Stage.PUBLISH: (Stage.STITCH,),
}
# Stages a VideoJob has only when its spec asks for them (narrate: spec.narration).
OPTIONAL: frozenset[Stage] = frozenset({Stage.NARRATE})
# Every stage the worker image runs, in the order a local run (`videojob-worker run`) takes them.
WORKER_STAGES: tuple[Stage, ...] = STAGES


def stages_of(narrated: bool) -> tuple[Stage, ...]:
    """A VideoJob's stages, in STAGES' order."""
    return tuple(s for s in STAGES if s not in OPTIONAL or narrated)
PER_SCENE: frozenset[Stage] = frozenset({Stage.SEGMENTS})  # an Indexed Job, a pod per scene
GPU_STAGES: frozenset[Stage] = frozenset({Stage.KEYFRAMES, Stage.SEGMENTS})
# Scenes of a VideoJob that sets neither spec.scenes nor spec.images (the CRD's documented default).
DEFAULT_SCENES = 4


class Phase(StrEnum):
    """`status.phase` of a VideoJob."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLING = "Cancelling"


TERMINAL: frozenset[Phase] = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class StagePhase(StrEnum):
    """`status.stages[].phase`."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    # Every output came from the cache (issue #25): no Job ran. As good as Succeeded.
    CACHED = "Cached"


# A stage in one of these is done: the next one may start.
STAGE_DONE: frozenset[StagePhase] = frozenset({StagePhase.SUCCEEDED, StagePhase.CACHED})
