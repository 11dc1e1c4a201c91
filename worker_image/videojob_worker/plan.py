"""The plan: what each scene shows, how its camera moves, and which frames of the video it owns.

`plan/plan.json` is written by the plan stage and read by every later stage, so the keyframes,
segments and stitch pods agree on the scene list and the frame ranges without talking to each
other. Field names are camelCase, like the CRD's.

Frame ranges split `durationSeconds x fps` frames as evenly as whole frames allow (scene i owns
frames `[i·N/S, (i+1)·N/S)`), so the segments add up to exactly the frames of the final video.

This module is the document and its arithmetic only: render backends import it (a backend
drafts scenes and draws from a plan), so it imports no backend. The plan stage
(`stages/plan.py`) asks the backend for the drafts and places them on the frame grid.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel

from videojob_worker.spec import Transition, VideoSpec

PLAN_VERSION = 1
TRANSITION_SECONDS = 0.5

Motion = Literal["static", "zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="forbid")


class Camera(_Model):
    """A Ken Burns move: zoom and window centre at the start and the end of the scene.

    x and y run from -1 to 1 over the room the zoom leaves (0 is centred), so any value is valid
    at any zoom ≥ 1.
    """

    motion: Motion
    zoom_from: float = Field(ge=1.0, le=4.0)
    zoom_to: float = Field(ge=1.0, le=4.0)
    x_from: float = Field(default=0.0, ge=-1.0, le=1.0)
    x_to: float = Field(default=0.0, ge=-1.0, le=1.0)
    y_from: float = Field(default=0.0, ge=-1.0, le=1.0)
    y_to: float = Field(default=0.0, ge=-1.0, le=1.0)


class SceneDraft(_Model):
    """What a backend decides about a scene; the plan adds the index and the frames."""

    description: str
    camera: Camera
    palette: list[str] = Field(min_length=1)  # "#rrggbb", most important first


class Scene(SceneDraft):
    index: int
    frame_start: int
    frame_end: int  # exclusive
    image: str | None = None  # slideshow mode: the input image this scene shows
    seed: int | None = None  # spec.sceneOverrides: this scene's randomness instead of the plan's

    @model_serializer(mode="wrap")
    def _without_absent_seed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written only when overridden: a plan without overrides is the same document as before
        # overrides existed, so the cache keys built from it (videojob_common.cache_keys) and
        # every entry keyed by them stay valid.
        doc: dict[str, Any] = handler(self)
        if self.seed is None:
            doc.pop("seed", None)
        if self.narration is None:
            doc.pop("narration", None)
        return doc

    # The line read over the scene when spec.narration.fromPlan is set (#28); left out of the
    # document otherwise, so a plan without narration is byte for byte what it was.
    narration: str | None = Field(default=None, exclude_if=lambda line: line is None)

    @property
    def frames(self) -> int:
        return self.frame_end - self.frame_start


class Plan(_Model):
    version: int = PLAN_VERSION
    backend: str
    # RenderBackend.version of the backend that planned: the operator keys the later stages'
    # outputs with it (docs/reuse.md). Absent in plans written before it was recorded.
    backend_version: str | None = None
    prompt: str
    seed: int
    width: int
    height: int
    fps: int
    total_frames: int
    transition: Transition
    transition_frames: int  # frames of each scene change (crossfade, or fade out + fade in)
    scenes: list[Scene]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    def seed_of(self, scene: Scene) -> int:
        """The seed a backend draws scene `scene` with: its own when overridden, else the
        plan's."""
        return self.seed if scene.seed is None else scene.seed

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.model_validate_json(text)


def frame_ranges(total: int, scenes: int) -> list[tuple[int, int]]:
    """Split `total` frames into `scenes` contiguous ranges differing by at most one frame."""
    bounds = [i * total // scenes for i in range(scenes + 1)]
    return list(itertools.pairwise(bounds))


def transition_frames(spec: VideoSpec, shortest_scene: int) -> int:
    """Frames of each scene change: half a second, at most half the shortest scene."""
    if spec.transition == "none" or spec.scene_count < 2:
        return 0
    return max(0, min(round(TRANSITION_SECONDS * spec.fps), shortest_scene // 2))
