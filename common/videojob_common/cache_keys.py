"""Cache keys of the stage outputs (issue #25): for each output, a hash of everything that can
change its bytes, and nothing else.

A key is the sha256 of a canonical JSON document (`KEY_SCHEMA`, the stage, the worker, the
backend where the stage calls it, the fields the stage reads, the checksums of the input files
it reads, and the keys of the outputs it consumes). Pure: the operator computes the keys and the
worker may recompute them, from the same documents, with the same result in any process.

What each stage reads follows the worker (worker_image/videojob_worker/stages/): the plan stage
reads the effective spec (`VIDEOJOB_SPEC`); every later stage reads the plan (`plan/plan.json`),
so their keys are built from the plan's *content*, not from the plan's key. An edit of one
scene changes the plan's key, but in the plan's content it changes that scene's entry only
(plus whatever the backend's planner lets it touch), so only that scene's keyframe and segment
keys move, then stitch and publish. docs/reuse.md explains the choices; a flip test
(tests/common/test_cache_keys.py) holds every spec field in or out on purpose.

Not in any key: the VideoJob's name, uid, namespace and every field that only says how or where
the pipeline runs (priority, retry, timeouts, GPU placement, notify, suspend, TTL, output URI,
artifact root). Those change where bytes go or when, never which bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from videojob_common.pipeline import Stage

# Raise when the documents below change shape or meaning (a field added, a field's meaning
# changed): every earlier entry then misses instead of answering for different bytes.
KEY_SCHEMA = 1

# The effective spec fields the plan stage reads (stages/plan.py and the backend's
# describe_scenes: prompt, images, the scene count, the frame grid, the seed). `sceneOverrides`
# is the planned per-scene override (docs/reuse.md), not in the CRD yet: absent and empty hash
# alike, so adding it to the CRD invalidates nothing.
PLAN_SPEC_FIELDS: tuple[str, ...] = (
    "prompt", "images", "scenes", "durationSeconds", "fps", "resolution", "transition", "seed",
    "backend", "sceneOverrides")
_REQUIRED_SPEC_FIELDS = ("scenes", "durationSeconds", "fps", "resolution", "transition", "seed",
                         "backend")

# The plan fields a keyframe reads (RenderBackend.render_keyframe gets the scene and the plan;
# the procedural backend draws from the prompt, the seed, the scene's index, description and
# palette, the size and the scene count in the caption). Not the camera or the frame range:
# a keyframe is a still, and a backend must not read them (docs/reuse.md, "Backend contract").
# `seed` of a scene is the planned per-scene seed override; absent means the plan's seed.
KEYFRAME_PLAN_FIELDS: tuple[str, ...] = ("version", "backend", "prompt", "seed", "width",
                                         "height")
KEYFRAME_SCENE_FIELDS: tuple[str, ...] = ("index", "description", "palette", "seed")
# Slideshow mode: the keyframe is the scene's input image fitted to the size (inputs.fit); no
# backend is loaded, so neither it nor the prompt nor the scene's words matter.
SLIDESHOW_KEYFRAME_PLAN_FIELDS: tuple[str, ...] = ("width", "height")

# A segment renders its scene's motion over its keyframe (render_clip gets the scene and the
# plan) and blends the transition (transitions.apply: the kind, its frames, whether the scene is
# first or last). The scene's image URI is not read: its content arrives through the keyframe.
SEGMENT_PLAN_FIELDS: tuple[str, ...] = ("version", "backend", "prompt", "seed", "width", "height",
                                        "fps", "transition", "transitionFrames")
SEGMENT_SCENE_FIELDS: tuple[str, ...] = ("index", "description", "camera", "palette",
                                         "frameStart", "frameEnd", "seed")

# Stitch joins the segments (stream copy) and muxes the audio, cut to totalFrames / fps.
STITCH_PLAN_FIELDS: tuple[str, ...] = ("fps", "totalFrames")


class UnkeyableInput(ValueError):
    """An input file the stage reads has no checksum: its output cannot be keyed (and must not
    be cached or reused)."""


@dataclass(frozen=True)
class Toolchain:
    """What renders: the worker (its image digest when known, else its version) and the
    version of the render backend installed in it (the backend's name is `spec.backend`)."""

    worker_version: str
    backend_version: str
    worker_digest: str | None = None

    def worker(self) -> dict[str, str]:
        # The digest pins everything in the image (ffmpeg, OpenCV, plug-ins); a version does
        # so only as far as releases are reproducible. One or the other, never both, so a
        # digest learnt later does not also depend on how the version was spelt.
        if self.worker_digest:
            return {"digest": self.worker_digest}
        return {"version": self.worker_version}


def image_digest(image: str) -> str | None:
    """The digest of an image reference pinned by one (`repo@sha256:…`), else None: a tag may
    move, so only a digest may stand for the worker's contents."""
    _, at, pinned = image.partition("@")
    return pinned if at and pinned.startswith("sha256:") else None


@dataclass(frozen=True)
class StageKeys:
    """The key of every stage output of one VideoJob: per scene for keyframes and segments."""

    plan: str
    keyframes: tuple[str, ...]
    segments: tuple[str, ...]
    stitch: str
    publish: str

    def of(self, stage: Stage, index: int | None = None) -> str:
        """The key of one output: `index` (a scene) for keyframes and segments."""
        if stage in (Stage.KEYFRAMES, Stage.SEGMENTS):
            if index is None:
                raise ValueError(f"{stage} keys are per scene: give the scene's index")
            return (self.keyframes if stage == Stage.KEYFRAMES else self.segments)[index]
        return {Stage.PLAN: self.plan, Stage.STITCH: self.stitch,
                Stage.PUBLISH: self.publish}[stage]


def canonical(value: Any, where: str = "") -> Any:
    """`value` as the key documents hold it: integral floats as integers (12 and 12.0 are the
    same duration), mappings with string keys only (sorted when written), sequences as lists.
    NaN and infinities have no JSON spelling and are refused."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where or 'value'}: {value} cannot be keyed")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where or 'value'}: key {k!r} is not a string")
            out[k] = canonical(v, f"{where}.{k}" if where else k)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where or 'value'}: {type(value).__name__} cannot be keyed")


def canonical_json(document: Mapping[str, Any]) -> str:
    """`document` as the text a key hashes: sorted keys, no spaces, ASCII, and floats as
    Python's shortest round-trip repr, so any process writes the same text."""
    return json.dumps(canonical(document), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def digest(document: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of `document`."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def _pick(doc: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    # An absent field and an explicit null are the same to the worker's models.
    return {f: doc.get(f) for f in fields}


def _plan_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The plan stage's fields of the effective spec, as the worker reads them."""
    missing = [f for f in _REQUIRED_SPEC_FIELDS if spec.get(f) is None]
    if missing:
        raise ValueError(f"not an effective spec: {', '.join(missing)} missing (pass "
                         "VIDEOJOB_SPEC as the operator writes it, defaults filled in)")
    fields = _pick(spec, PLAN_SPEC_FIELDS)
    # The worker's defaults for the optional fields: no prompt is "", no images is [].
    fields["prompt"] = fields["prompt"] or ""
    fields["images"] = list(fields["images"] or [])
    if fields["images"]:
        fields["scenes"] = len(fields["images"])  # slideshow: one scene per image
    overrides = [{k: v for k, v in o.items() if v is not None}
                 for o in (fields["sceneOverrides"] or [])]
    fields["sceneOverrides"] = sorted(overrides, key=lambda o: int(o.get("index", -1)))
    if (spec.get("narration") or {}).get("fromPlan"):
        # The plan writes each scene's line (#28); only then does narration reach the plan.
        # Absent otherwise, so plans keyed before narration existed keep their keys.
        fields["narrationFromPlan"] = True
    return fields


def _backend(name: str, toolchain: Toolchain) -> dict[str, str]:
    return {"name": name, "version": toolchain.backend_version}


def plan_key(spec: Mapping[str, Any], toolchain: Toolchain) -> str:
    """The plan's key, from the effective spec alone: the one key known before any stage ran
    (its entry holds the plan, from which `stage_keys` derives the rest)."""
    fields = _plan_spec(spec)
    # The backend's name only: its version is learnt when it plans (the plan records it as
    # `backendVersion`), and the worker's identity already pins the plug-ins installed in it.
    return digest({"schema": KEY_SCHEMA, "stage": Stage.PLAN, "worker": toolchain.worker(),
                   "backend": {"name": str(fields["backend"])}, "spec": fields})


def _checksum(inputs: Mapping[str, str], uri: str, what: str) -> str:
    checksum = inputs.get(uri)
    if not checksum:
        raise UnkeyableInput(f"{what} {uri}: no checksum, so its outputs cannot be keyed")
    return checksum


def _scenes(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    scenes = list(plan.get("scenes") or [])
    for i, scene in enumerate(scenes):
        if scene.get("index") != i:
            raise ValueError(f"plan scene {i} has index {scene.get('index')!r}")
    if not scenes:
        raise ValueError("the plan has no scenes")
    return scenes


def _keyframe_key(plan: Mapping[str, Any], scene: Mapping[str, Any], head: dict[str, Any],
                  inputs: Mapping[str, str], toolchain: Toolchain) -> str:
    image = scene.get("image")
    if image is not None:
        return digest({**head, "plan": _pick(plan, SLIDESHOW_KEYFRAME_PLAN_FIELDS),
                       "image": _checksum(inputs, image, f"images[{scene['index']}]")})
    return digest({**head, "backend": _backend(str(plan["backend"]), toolchain),
                   "plan": {**_pick(plan, KEYFRAME_PLAN_FIELDS),
                            "sceneCount": len(plan["scenes"])},
                   "scene": _pick(scene, KEYFRAME_SCENE_FIELDS)})


def needs_next_scene(plan: Mapping[str, Any], index: int) -> bool:
    """A crossfade blends the next scene's first frame into this scene's last ones
    (videojob_worker.transitions.needs_next_scene)."""
    return (plan.get("transition") == "crossfade" and int(plan.get("transitionFrames") or 0) > 0
            and index < len(plan["scenes"]) - 1)


def stage_keys(spec: Mapping[str, Any], toolchain: Toolchain, inputs: Mapping[str, str],
               plan: Mapping[str, Any]) -> StageKeys:
    """Every stage output's key.

    `spec`: the effective spec document (VIDEOJOB_SPEC, camelCase, defaults filled in).
    `inputs`: the checksum of each input file by URI (images, audio), as storage reports them;
    a file the pipeline reads without a checksum raises `UnkeyableInput`.
    `plan`: the plan document (`plan/plan.json`, parsed) that the plan stage wrote for this
    spec, or that the plan's cache entry holds.
    """
    scenes = _scenes(plan)
    planned = _plan_spec(spec)["scenes"]
    if len(scenes) != planned:
        raise ValueError(f"the plan has {len(scenes)} scenes, the spec {planned}: not its plan")
    worker = toolchain.worker()

    def head(stage: Stage) -> dict[str, Any]:
        return {"schema": KEY_SCHEMA, "stage": stage, "worker": worker}

    keyframes = tuple(_keyframe_key(plan, scene, head(Stage.KEYFRAMES), inputs, toolchain)
                      for scene in scenes)
    segment_plan = {**_pick(plan, SEGMENT_PLAN_FIELDS), "sceneCount": len(scenes)}
    segments = []
    for i, scene in enumerate(scenes):
        following = None
        if needs_next_scene(plan, i):
            following = {"scene": _pick(scenes[i + 1], SEGMENT_SCENE_FIELDS),
                         "keyframe": keyframes[i + 1]}
        segments.append(digest({
            **head(Stage.SEGMENTS), "backend": _backend(str(plan["backend"]), toolchain),
            "plan": segment_plan, "scene": _pick(scene, SEGMENT_SCENE_FIELDS),
            "keyframe": keyframes[i], "next": following}))
    audio = spec.get("audio")
    stitch_doc = {**head(Stage.STITCH), "plan": _pick(plan, STITCH_PLAN_FIELDS),
                  "segments": segments,
                  "audio": _checksum(inputs, audio, "audio") if audio else None}
    narration = spec.get("narration")
    if narration:
        # Stitch mixes the voice (narrate's output, not cached: it is keyed here, by what
        # makes it) and draws or muxes the captions. Only when narrated: earlier keys stay.
        stitch_doc["narration"] = {
            "spec": {k: v for k, v in narration.items() if v is not None},
            "lines": [scene.get("narration") for scene in scenes]}
    stitch = digest(stitch_doc)
    # Publish copies stitch's video to the output URI: the bytes are stitch's, wherever they go.
    publish = digest({**head(Stage.PUBLISH), "video": stitch})
    return StageKeys(plan=plan_key(spec, toolchain), keyframes=keyframes,
                     segments=tuple(segments), stitch=stitch, publish=publish)
