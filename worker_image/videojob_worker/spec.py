"""The VideoJob spec as the worker sees it: the CRD's fields, its defaults, and the checks that
make a spec renderable.

The operator passes the *effective* spec (defaults filled in) in `VIDEOJOB_SPEC`; `videojob-worker
run` reads a manifest or a bare spec from a file. Both go through `parse_spec`, so a local run
applies the same defaults as the CRD. Fields the worker does not use (GPU needs, retry limits,
queue priority, …) are accepted and ignored: they belong to the operator. A local spec with a
field the CRD does not declare is refused, naming it (videojob_common.spec_fields).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from videojob_common.spec_fields import unknown_fields
from videojob_worker.errors import PermanentError

Transition = Literal["none", "crossfade", "fade"]

_RESOLUTION = re.compile(r"^(\d+)x(\d+)$")
# Bounds the encoder and a pod's memory can take; the CRD may be stricter.
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
MIN_SIDE = 16


MAX_SCENE_OVERRIDES = 32


class SceneOverride(BaseModel):
    """`spec.sceneOverrides[]`: one scene's own seed or description instead of the planner's
    (docs/reuse.md, "Per-scene overrides"). The plan stage applies it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    index: int = Field(ge=0)
    seed: int | None = None
    description: str | None = Field(default=None, min_length=1)


# --- narration (issue #28) ---
Captions = Literal["none", "track", "burned"]
Fit = Literal["speedup", "fail"]
# espeak-ng's -s (words per minute) accepts 80..450; slower or faster is unintelligible anyway.
MIN_RATE, MAX_RATE = 80, 450
MAX_LINE_CHARS = 1000  # a scene's line; minutes of speech
# A voice name goes to a TTS program as an argument: letters, digits and - _ + / . only, and not
# starting with "-", so it can never read as an option.
_VOICE = r"^[A-Za-z0-9_][A-Za-z0-9_+/.-]{0,63}$"
_LANGUAGE = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"  # BCP 47, as WebVTT and MP4 metadata take it


class Narration(BaseModel):
    """`spec.narration`: a voice reading one line per scene over the video (docs/narration.md)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)

    lines: list[str] | None = Field(default=None, max_length=1000)  # one per scene; "" = silent
    from_plan: bool = False  # the plan stage writes each scene's line from its description
    backend: str = Field(default="espeak-ng", pattern=_VOICE)  # a TTS plug-in (tts.py)
    voice: str = Field(default="en", pattern=_VOICE)
    language: str | None = Field(default=None, pattern=_LANGUAGE)  # captions' language tag
    rate: int = Field(default=175, ge=MIN_RATE, le=MAX_RATE)  # words per minute
    volume: float = Field(default=1.0, ge=0.0, le=2.0)  # linear gain on the voice
    music_duck: float = Field(default=12.0, ge=0.0, le=40.0)  # dB off the music under speech
    captions: Captions = "none"
    fit: Fit = "speedup"

    @field_validator("lines")
    @classmethod
    def _speakable(cls, lines: list[str] | None) -> list[str] | None:
        for i, line in enumerate(lines or []):
            if len(line) > MAX_LINE_CHARS:
                raise ValueError(f"line {i} has {len(line)} characters, more than "
                                 f"{MAX_LINE_CHARS}")
        return lines

    @model_validator(mode="after")
    def _one_source(self) -> Narration:
        if self.lines is not None and self.from_plan:
            raise ValueError("give lines or fromPlan, not both")
        if self.lines is None and not self.from_plan:
            raise ValueError("give lines (one per scene) or fromPlan: true")
        return self


class VideoSpec(BaseModel):
    """The subset of `VideoJob.spec` that shapes the video, with the CRD's defaults."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    prompt: str = ""
    images: list[str] = Field(default_factory=list, max_length=1000)
    audio: str | None = None
    scenes: int = Field(default=4, ge=1, le=1000)
    duration_seconds: float = Field(default=12, gt=0, le=6 * 3600)
    fps: int = Field(default=24, ge=1, le=240)
    resolution: str = "1280x720"
    transition: Transition = "crossfade"
    backend: str = "procedural"
    seed: int = 0
    scene_overrides: list[SceneOverride] = Field(default_factory=list,
                                                 max_length=MAX_SCENE_OVERRIDES)

    # --- narration (issue #28) ---
    narration: Narration | None = None

    @field_validator("narration")
    @classmethod
    def _line_per_scene(cls, narration: Narration | None,
                        info: ValidationInfo) -> Narration | None:
        if narration is None or narration.lines is None:
            return narration
        images, scenes = info.data.get("images"), info.data.get("scenes")
        count = len(images) if images else scenes
        if count is not None and len(narration.lines) != count:
            raise ValueError(f"lines has {len(narration.lines)} lines for {count} scenes "
                             "(one per scene)")
        return narration
    # --- end narration ---

    @field_validator("resolution")
    @classmethod
    def _encodable(cls, resolution: str) -> str:
        match = _RESOLUTION.match(resolution)
        if not match:
            raise ValueError(f"{resolution!r} is not WIDTHxHEIGHT")
        width, height = int(match.group(1)), int(match.group(2))
        if not (MIN_SIDE <= width <= MAX_WIDTH and MIN_SIDE <= height <= MAX_HEIGHT):
            raise ValueError(f"{resolution} is outside "
                             f"{MIN_SIDE}x{MIN_SIDE}..{MAX_WIDTH}x{MAX_HEIGHT}")
        if width % 2 or height % 2:
            # yuv420p, the only pixel format every browser plays, halves both chroma axes.
            raise ValueError(f"{resolution} must have even width and height")
        return resolution

    @model_validator(mode="after")
    def _renderable(self) -> VideoSpec:
        if not self.prompt.strip() and not self.images:
            raise ValueError("either prompt or images must be given")
        if self.total_frames < self.scene_count:
            raise ValueError(f"{self.duration_seconds:g} s at {self.fps} fps is "
                             f"{self.total_frames} frames, fewer than the {self.scene_count} "
                             "scenes")
        indexes = [o.index for o in self.scene_overrides]
        if len(set(indexes)) != len(indexes):
            raise ValueError("sceneOverrides: each scene may be overridden once")
        outside = [i for i in indexes if i >= self.scene_count]
        if outside:
            raise ValueError(f"sceneOverrides: scene {outside[0]} is outside the "
                             f"{self.scene_count} scenes")
        return self

    def override(self, index: int) -> SceneOverride | None:
        """Scene `index`'s override, if the spec has one."""
        return next((o for o in self.scene_overrides if o.index == index), None)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        width, _, height = self.resolution.partition("x")
        return int(width), int(height)

    @property
    def total_frames(self) -> int:
        """Frames in the final video: durationSeconds x fps, rounded to a whole frame."""
        return round(self.duration_seconds * self.fps)

    @property
    def scene_count(self) -> int:
        """Slideshow mode has one scene per image; otherwise `scenes`."""
        return len(self.images) if self.images else self.scenes


def parse_spec(raw: dict[str, Any]) -> VideoSpec:
    """Validate a spec mapping; any problem is a permanent error naming the field."""
    try:
        return VideoSpec.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            message = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"spec.{where}: {message}" if where else f"spec: {message}")
        raise PermanentError("; ".join(problems)) from None


def spec_from_json(text: str) -> VideoSpec:
    """Parse VIDEOJOB_SPEC."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise PermanentError(f"VIDEOJOB_SPEC is not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise PermanentError("VIDEOJOB_SPEC is not a JSON object")
    return parse_spec(raw)


def load_manifest(path: Path) -> tuple[dict[str, Any], VideoSpec]:
    """Read a VideoJob manifest (apiVersion/kind/metadata/spec) or a bare spec from YAML/JSON.

    Returns the manifest's metadata (empty for a bare spec) and the validated spec. A field the
    VideoJob CRD does not declare is refused, as `kubectl --validate=strict` refuses it: a
    misspelt or unsupported field would otherwise be dropped without a word.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PermanentError(f"cannot read {path}: {err}") from None
    if not isinstance(raw, dict):
        raise PermanentError(f"{path} does not hold a mapping")
    if "spec" in raw and isinstance(raw["spec"], dict):
        kind = raw.get("kind", "VideoJob")
        if kind != "VideoJob":
            raise PermanentError(f"{path} is a {kind}, not a VideoJob")
        metadata = raw.get("metadata") or {}
        return (metadata if isinstance(metadata, dict) else {}), strict_spec(raw["spec"])
    return {}, strict_spec(raw)


def strict_spec(raw: dict[str, Any]) -> VideoSpec:
    unknown = unknown_fields(raw)
    if unknown:
        raise PermanentError(
            f"{', '.join(unknown)}: unknown field{'s' if len(unknown) > 1 else ''} (not in the "
            "VideoJob CRD: misspelt, or not supported by this version)")
    return parse_spec(raw)
