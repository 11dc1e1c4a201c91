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
    NARRATE = "narrate"  # the voice (#28): the worker runs it; the operator does not yet
    STITCH = "stitch"
    PUBLISH = "publish"


# The operator's sequence, in the order it runs them. Listed, not `tuple(Stage)`: the worker
# renders narration (#28) before the operator's DAG schedules it.
STAGES: tuple[Stage, ...] = (Stage.PLAN, Stage.KEYFRAMES, Stage.SEGMENTS, Stage.STITCH,
                             Stage.PUBLISH)
# Every stage the worker image runs, in the order a local run (`videojob-worker run`) takes them.
WORKER_STAGES: tuple[Stage, ...] = tuple(Stage)
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
