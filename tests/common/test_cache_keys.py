"""Cache keys (videojob_common.cache_keys): every spec field is in a key or out of all of them on
purpose, and a key is the same wherever and however it is computed.

The keys are computed the way the pipeline will: a VideoJob spec → the operator's effective spec
and VIDEOJOB_SPEC (config.effective, jobs.spec_json) → the worker's plan (stages.plan.make_plan,
the procedural backend) → stage_keys. So a flip is judged on what the worker really plans.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from videojob_common.cache_keys import (
    KEYFRAME_PLAN_FIELDS,
    KEYFRAME_SCENE_FIELDS,
    StageKeys,
    Toolchain,
    UnkeyableInput,
    canonical,
    canonical_json,
    digest,
    image_digest,
    plan_key,
    stage_keys,
)
from videojob_common.pipeline import Stage
from videojob_operator.api import EffectiveSpec, Toleration, VideoJobSpec
from videojob_operator.config import OperatorConfig, effective
from videojob_operator.jobs import spec_json
from videojob_worker import backends, procedural, transitions
from videojob_worker.backends import RenderBackend
from videojob_worker.plan import Camera, Plan
from videojob_worker.procedural import ProceduralBackend
from videojob_worker.spec import parse_spec
from videojob_worker.stages.plan import make_plan

ALL = frozenset({"plan", "keyframes", "segments", "stitch", "publish"})
AFTER_PLAN_BUT_KEYFRAMES = frozenset({"plan", "segments", "stitch", "publish"})
VIDEO_ONLY = frozenset({"stitch", "publish"})
NONE: frozenset[str] = frozenset()
SCENE_1 = frozenset({"plan", "keyframes[1]", "segments[0]", "segments[1]", "stitch", "publish"})
SCENES_1_AND_2 = SCENE_1 | {"keyframes[2]", "segments[2]"}

IMAGES = [f"gs://in/photo-{i}.png" for i in range(4)]
INPUTS = {"gs://in/track.mp3": "md5:track", "gs://in/other.mp3": "md5:other-track",
          **{uri: f"md5:photo-{i}" for i, uri in enumerate(IMAGES)}}
BACKEND_VERSION = "1.0"

# Every field set, so that every nested field exists and can be flipped.
BASE: dict[str, Any] = {
    "prompt": "A red sunset over the sea. A forest at dawn. A city at night.",
    "audio": "gs://in/track.mp3",
    "scenes": 4,
    "durationSeconds": 12,
    "fps": 24,
    "resolution": "64x36",
    "transition": "crossfade",
    "backend": "procedural",
    "seed": 7,
    "priority": 0,
    "output": {"uri": "gs://out/clip.mp4"},
    "retry": {"limit": 3, "backoffSeconds": 5},
    "timeouts": {"totalSeconds": 3600, "stageSeconds": 900, "pendingSeconds": 600},
    "gpu": {"count": 1, "resourceName": "nvidia.com/gpu", "nodeSelector": {"pool": "a"},
            "tolerations": [{"key": "gpu", "operator": "Equal", "value": "a",
                             "effect": "NoExecute", "tolerationSeconds": 30}]},
    "notify": [{"url": "https://hooks.example.com/a", "events": ["Succeeded"],
                "secretRef": {"name": "hook", "key": "secret"}}],
    "suspend": False,
    "ttlSecondsAfterFinished": 60,
    "sceneOverrides": [{"index": 1, "seed": 5, "description": "A lighthouse in the fog."}],
    "cache": {"policy": "Use"},
}


NARRATED: dict[str, Any] = {**BASE, "narration": {
    "lines": ["A sunset.", "A forest.", "A city.", "The end."], "backend": "espeak-ng",
    "voice": "en", "language": "eng", "rate": 160, "volume": 1.0, "musicDuck": 12,
    "captions": "track", "fit": "speedup"}}


@dataclass(frozen=True)
class Flip:
    value: Any  # the field's new value (None: unset)
    changes: frozenset[str]  # the keys that change: a stage (all its scenes) or "segments[2]"
    why: str = ""  # why nothing changes, when nothing does
    base: str = "BASE"  # the spec flipped: BASE, or NARRATED where the field needs narration
    unset: tuple[str, ...] = ()  # fields unset with it (an alternative it replaces)


OUT_OF_KEYS = "how or where the pipeline runs, never which bytes it makes"
# VideoJobSpec, field by field (camelCase paths, [0] for the first item of a list). A field
# added to the spec fails test_every_spec_field_is_in_the_table until it is entered here.
SPEC_FLIPS: dict[str, Flip] = {
    "prompt": Flip("A blue lake. A green hill.", ALL),
    "images": Flip(IMAGES, ALL),  # slideshow mode: other scenes, keyframes from the photos
    "audio": Flip("gs://in/other.mp3", VIDEO_ONLY),  # stitch muxes it; nothing else reads it
    "scenes": Flip(5, ALL),  # other frame ranges, and "SCENE n/5" in every keyframe
    # Other frame ranges and transitions; the stills stay the same.
    "durationSeconds": Flip(16, AFTER_PLAN_BUT_KEYFRAMES),
    "fps": Flip(30, AFTER_PLAN_BUT_KEYFRAMES),
    "resolution": Flip("128x72", ALL),
    "transition": Flip("fade", AFTER_PLAN_BUT_KEYFRAMES),
    "backend": Flip("other", ALL),
    "seed": Flip(8, ALL),  # every scene's palette, camera and drawing
    "priority": Flip(50, NONE, "queue order only"),
    "output": Flip(None, NONE, "where publish puts the bytes, not which bytes"),
    "output.uri": Flip("gs://elsewhere/clip.mp4", NONE, "where publish puts the bytes"),
    "retry": Flip(None, NONE, OUT_OF_KEYS),
    "retry.limit": Flip(0, NONE, "a retried stage writes the same bytes (deterministic)"),
    "retry.backoffSeconds": Flip(60, NONE, OUT_OF_KEYS),
    "timeouts": Flip(None, NONE, OUT_OF_KEYS),
    "timeouts.totalSeconds": Flip(60, NONE, "a bound on time; success means the same bytes"),
    "timeouts.stageSeconds": Flip(60, NONE, "a bound on time"),
    "timeouts.pendingSeconds": Flip(60, NONE, "a bound on time"),
    "gpu": Flip(None, NONE, "placement; backends must render alike on any device"),
    "gpu.count": Flip(0, NONE, "placement (0: the GPU stages on CPU, same bytes)"),
    "gpu.resourceName": Flip("amd.com/gpu", NONE, "placement"),
    "gpu.nodeSelector": Flip({"pool": "b"}, NONE, "placement"),
    "gpu.tolerations": Flip([], NONE, "placement"),
    "gpu.tolerations[0].key": Flip("other", NONE, "placement"),
    "gpu.tolerations[0].operator": Flip("Exists", NONE, "placement"),
    "gpu.tolerations[0].value": Flip("b", NONE, "placement"),
    "gpu.tolerations[0].effect": Flip("NoSchedule", NONE, "placement"),
    "gpu.tolerations[0].tolerationSeconds": Flip(60, NONE, "placement"),
    "notify": Flip(None, NONE, "the operator's webhooks; stage pods never see them"),
    "notify[0].url": Flip("https://hooks.example.com/b", NONE, "webhooks"),
    "notify[0].events": Flip(["Failed"], NONE, "webhooks"),
    "notify[0].secretRef": Flip({"name": "other", "key": "k"}, NONE, "webhooks"),
    "notify[0].secretRef.name": Flip("other", NONE, "webhooks"),
    "notify[0].secretRef.key": Flip("other", NONE, "webhooks"),
    "suspend": Flip(True, NONE, "when it runs, not what"),
    "ttlSecondsAfterFinished": Flip(1, NONE, "when the VideoJob is deleted"),
    # One scene drawn otherwise: its keyframe and segment, and the segment before it (a
    # crossfade dissolves into this scene's first frame), then the video.
    "sceneOverrides": Flip(None, SCENE_1),
    "sceneOverrides[0].index": Flip(2, SCENES_1_AND_2),
    "sceneOverrides[0].seed": Flip(6, SCENE_1),
    "sceneOverrides[0].description": Flip("A harbour at noon.", SCENE_1),
    # Narration (#28): stitch mixes the voice and the captions; the plan writes the lines only
    # with fromPlan. Flipped on NARRATED (lines, 4 scenes): BASE has none.
    "narration": Flip(None, VIDEO_ONLY, base="NARRATED"),
    "narration.lines": Flip(["One.", "Two.", "Three.", "Four!"], VIDEO_ONLY, base="NARRATED"),
    "narration.fromPlan": Flip(True, frozenset({"plan", "stitch", "publish"}),
                               base="NARRATED", unset=("narration.lines",)),
    "narration.backend": Flip("cloud-tts", VIDEO_ONLY, base="NARRATED"),
    "narration.voice": Flip("en-us", VIDEO_ONLY, base="NARRATED"),
    "narration.language": Flip("fra", VIDEO_ONLY, base="NARRATED"),
    "narration.rate": Flip(200, VIDEO_ONLY, base="NARRATED"),
    "narration.volume": Flip(0.5, VIDEO_ONLY, base="NARRATED"),
    "narration.musicDuck": Flip(6, VIDEO_ONLY, base="NARRATED"),
    "narration.captions": Flip("burned", VIDEO_ONLY, base="NARRATED"),
    "narration.fit": Flip("fail", VIDEO_ONLY, base="NARRATED"),
    "cache": Flip(None, NONE, "whether outputs are reused, never which bytes they are"),
    "cache.policy": Flip("Refresh", NONE, "whether outputs are reused, never which bytes"),
}

# EffectiveSpec (status.effective): what the operator adds to the spec. The worker sees scenes,
# backend and output_uri in VIDEOJOB_SPEC, and runs in worker_image.
EFFECTIVE_FLIPS: dict[str, Flip] = {
    "scenes": Flip(5, ALL),
    "backend": Flip("other", ALL),
    "output_uri": Flip("gs://elsewhere/clip.mp4", NONE, "where publish puts the bytes"),
    "artifact_root": Flip("gs://other-root", NONE, "where intermediate bytes are kept"),
    "retry_limit": Flip(0, NONE, OUT_OF_KEYS),
    "retry_backoff_seconds": Flip(60, NONE, OUT_OF_KEYS),
    "total_seconds": Flip(60, NONE, OUT_OF_KEYS),
    "stage_seconds": Flip(60, NONE, OUT_OF_KEYS),
    "pending_seconds": Flip(60, NONE, OUT_OF_KEYS),
    "gpu_count": Flip(0, NONE, "placement"),
    "gpu_resource_name": Flip("amd.com/gpu", NONE, "placement"),
    "gpu_node_selector": Flip({"pool": "b"}, NONE, "placement"),
    "gpu_tolerations": Flip([Toleration(key="other", operator="Exists")], NONE, "placement"),
    # Another image is other code: every key changes (by digest here; by tag when unpinned).
    "worker_image": Flip("ghcr.io/videojob/worker@sha256:" + "b" * 64, ALL),
}


class Other(ProceduralBackend):
    """Another backend that happens to draw alike: its name alone must separate the keys."""

    name = "other"


def plan_document(doc: dict[str, Any]) -> dict[str, Any]:
    """The plan the worker makes for the effective spec `doc`, as plan/plan.json holds it."""
    spec = parse_spec(doc)
    backend = Other() if spec.backend == "other" else backends.load(spec.backend)
    parsed: dict[str, Any] = json.loads(make_plan(spec, backend).to_json())
    return parsed


def toolchain_for(eff: EffectiveSpec) -> Toolchain:
    # The operator knows the worker by its image: the digest when pinned, else the reference.
    return Toolchain(worker_version=eff.worker_image, backend_version=BACKEND_VERSION,
                     worker_digest=image_digest(eff.worker_image))


def effective_of(raw: dict[str, Any], namespace: str = "ns", name: str = "clip",
                 uid: str = "uid-1") -> tuple[VideoJobSpec, EffectiveSpec]:
    spec = VideoJobSpec.model_validate(raw)
    config = OperatorConfig(storage_root="gs://bucket/root",
                            worker_image="ghcr.io/videojob/worker@sha256:" + "a" * 64)
    return spec, effective(spec, config, namespace, name, uid)


def keys_of(spec: VideoJobSpec, eff: EffectiveSpec,
            inputs: dict[str, str] = INPUTS) -> StageKeys:
    doc = json.loads(spec_json(spec, eff))
    return stage_keys(doc, toolchain_for(eff), inputs, plan_document(doc))


def backend_of(plan: Plan) -> RenderBackend:
    return Other() if plan.backend == "other" else backends.load(plan.backend)


def keyframe_pixels(raw_plan: dict[str, Any], index: int) -> bytes:
    """What the keyframes stage draws for scene `index` (prompt mode)."""
    plan = Plan.model_validate(raw_plan)
    return bytes(backend_of(plan).render_keyframe(plan.scenes[index], plan).tobytes())


def segment_pixels(raw_plan: dict[str, Any], index: int) -> str:
    """A digest of the frames the segments stage encodes for scene `index`: its steps
    (stages/segments.py) less the encoder, whose settings are the plan's size and fps."""
    plan = Plan.model_validate(raw_plan)
    backend, scene = backend_of(plan), plan.scenes[index]
    keyframe = backend.render_keyframe(scene, plan)  # PNG round-trips it exactly
    incoming = None
    if transitions.needs_next_scene(plan, scene):
        following = plan.scenes[index + 1]
        incoming = backend.first_frame(following, backend.render_keyframe(following, plan),
                                       plan)
    frames = hashlib.sha256(f"{plan.width}x{plan.height}@{plan.fps}".encode())
    for k, frame in enumerate(backend.render_clip(scene, keyframe, plan, scene.frames)):
        frames.update(transitions.apply(frame, k, scene, plan, incoming).tobytes())
    return frames.hexdigest()


def assert_no_false_hit(a: StageKeys, plan_a: dict[str, Any], b: StageKeys,
                        plan_b: dict[str, Any]) -> None:
    """Where a key stayed the same, the worker makes the same output: a hit would be right.
    (Prompt mode; stitch and publish follow from their inputs' keys by construction.)"""
    if a.plan == b.plan:
        assert canonical_json(plan_a) == canonical_json(plan_b)
    for i, (x, y) in enumerate(zip(a.keyframes, b.keyframes, strict=False)):
        if x == y and plan_a["scenes"][i].get("image") is None:
            assert keyframe_pixels(plan_a, i) == keyframe_pixels(plan_b, i), f"keyframes[{i}]"
    for i, (x, y) in enumerate(zip(a.segments, b.segments, strict=False)):
        if x == y and plan_a["scenes"][i].get("image") is None:
            assert segment_pixels(plan_a, i) == segment_pixels(plan_b, i), f"segments[{i}]"


def changed(a: StageKeys, b: StageKeys) -> set[str]:
    """Which keys differ: a stage when all its keys do (or the scene count changed), else the
    scenes that do, as "segments[2]"."""
    out = {s for s in ("plan", "stitch", "publish") if getattr(a, s) != getattr(b, s)}
    for stage in ("keyframes", "segments"):
        x, y = getattr(a, stage), getattr(b, stage)
        differ = [i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q]
        if len(x) != len(y) or len(differ) == len(x):
            out.add(stage)
        else:
            out |= {f"{stage}[{i}]" for i in differ}
    return out


def model_of(annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """The models inside a field's type, and whether each is a list's item."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
    elif origin is list:
        for inner, _ in model_of(typing.get_args(annotation)[0]):
            yield inner, True
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            yield from model_of(arg)


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field of `model`, nested models' fields included, by its camelCase path."""
    out = []
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        out.append(path)
        for inner, is_list in model_of(info.annotation):
            out += field_paths(inner, f"{path}[0]." if is_list else f"{path}.")
    return out


def with_value(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(raw))
    *parents, last = path.replace("[0]", ".0").split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return out


def test_every_spec_field_is_in_the_table() -> None:
    """A field added to VideoJobSpec must be judged: in a key (which) or out (why)."""
    assert sorted(field_paths(VideoJobSpec)) == sorted(SPEC_FLIPS)
    assert sorted(EffectiveSpec.model_fields) == sorted(EFFECTIVE_FLIPS)
    for path, flip in {**SPEC_FLIPS, **EFFECTIVE_FLIPS}.items():
        assert flip.changes or flip.why, f"{path}: out of every key, but not said why"


@pytest.mark.parametrize("path", sorted(SPEC_FLIPS))
def test_flipping_a_spec_field_changes_exactly_its_keys(path: str) -> None:
    flip = SPEC_FLIPS[path]
    base = NARRATED if flip.base == "NARRATED" else BASE
    flipped = with_value(base, path, flip.value)
    for other in flip.unset:
        flipped = with_value(flipped, other, None)
    assert flipped != base
    before, after = keys_of(*effective_of(base)), keys_of(*effective_of(flipped))
    assert changed(before, after) == set(flip.changes), flip.why
    assert_no_false_hit(before, plan_document(json.loads(spec_json(*effective_of(base)))),
                        after, plan_document(json.loads(spec_json(*effective_of(flipped)))))


@pytest.mark.parametrize("field", sorted(EFFECTIVE_FLIPS))
def test_flipping_an_effective_field_changes_exactly_its_keys(field: str) -> None:
    flip = EFFECTIVE_FLIPS[field]
    spec, eff = effective_of(BASE)
    other = eff.model_copy(update={field: flip.value})
    assert other != eff
    assert changed(keys_of(spec, eff), keys_of(spec, other)) == set(flip.changes), flip.why


@pytest.mark.parametrize("raw", [BASE, {k: v for k, v in BASE.items() if k != "output"}],
                         ids=["own-output", "default-output"])
def test_name_uid_and_namespace_never_matter(raw: dict[str, Any]) -> None:
    # Without spec.output the output URI holds all three; it is still not in any key.
    one = keys_of(*effective_of(raw, "team-a", "clip", "uid-1"))
    two = keys_of(*effective_of(raw, "team-b", "copy-of-clip", "uid-2"))
    assert one == two


def reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def floats(value: Any) -> Any:
    """Every integer as a float (12 → 12.0), as a JSON writer in another language may."""
    if isinstance(value, bool) or not isinstance(value, (int, float, dict, list)):
        return value
    if isinstance(value, dict):
        return {k: floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats(v) for v in value]
    return float(value)


def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    spec, eff = effective_of(BASE)
    doc = json.loads(spec_json(spec, eff))
    return doc, plan_document(doc)


def test_key_ignores_key_order_and_number_spelling() -> None:
    doc, plan = documents()
    toolchain = toolchain_for(effective_of(BASE)[1])
    keys = stage_keys(doc, toolchain, INPUTS, plan)
    assert stage_keys(reordered(doc), toolchain, reordered(INPUTS), reordered(plan)) == keys
    assert stage_keys(floats(doc), toolchain, INPUTS, floats(plan)) == keys
    assert doc["durationSeconds"] == 12
    assert plan_key({**doc, "durationSeconds": 12.0}, toolchain) == keys.plan
    assert plan_key({**doc, "durationSeconds": 12.5}, toolchain) != keys.plan


def test_key_is_the_same_in_another_process() -> None:
    """No dependence on the process: hash randomisation, insertion order, imports."""
    doc, plan = documents()
    toolchain = toolchain_for(effective_of(BASE)[1])
    here = stage_keys(doc, toolchain, INPUTS, plan)
    program = (
        "import json, sys\n"
        "from videojob_common.cache_keys import Toolchain, stage_keys\n"
        "doc, plan, inputs, tc = json.load(sys.stdin)\n"
        "keys = stage_keys(doc, Toolchain(**tc), inputs, plan)\n"
        "print(json.dumps([keys.plan, *keys.keyframes, *keys.segments, keys.stitch, "
        "keys.publish]))\n")
    payload = json.dumps([reordered(doc), reordered(plan), INPUTS,
                          {"worker_version": toolchain.worker_version,
                           "backend_version": toolchain.backend_version,
                           "worker_digest": toolchain.worker_digest}])
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", program], input=payload, text=True,
                              capture_output=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(done.stdout) == [here.plan, *here.keyframes, *here.segments,
                                           here.stitch, here.publish]


def test_the_canonical_form_does_not_drift() -> None:
    """The text a key hashes, written down: a change to it that does not raise KEY_SCHEMA would
    make old entries answer for new keys (or all miss at once), so it fails here first."""
    document = {"b": [1.0, 0.5, "é", (2, 3)], "a": {"y": None, "x": True}}
    text = '{"a":{"x":true,"y":null},"b":[1,0.5,"\\u00e9",[2,3]]}'
    assert canonical_json(document) == text
    assert digest(document) == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_refuses_what_json_cannot_spell() -> None:
    with pytest.raises(ValueError, match="fps"):
        canonical({"fps": float("nan")})
    with pytest.raises(TypeError):
        canonical({1: "x"})
    with pytest.raises(TypeError, match="bytes"):
        canonical({"checksum": b"\x00"})
    assert canonical({"a": (1.0, 2.5, True)}) == {"a": [1, 2.5, True]}


def slideshow(transition: str = "crossfade") -> dict[str, Any]:
    raw = {k: v for k, v in BASE.items() if k != "prompt"}
    return {**raw, "images": IMAGES, "transition": transition}


def test_an_image_enters_only_through_its_checksum() -> None:
    before = keys_of(*effective_of(slideshow()))
    # The same photo at another URI: the plan records the URI; nothing rendered changes.
    moved = [*IMAGES[:2], "gs://elsewhere/photo-2.png", IMAGES[3]]
    inputs = {**INPUTS, moved[2]: INPUTS[IMAGES[2]]}
    assert changed(before, keys_of(*effective_of({**slideshow(), "images": moved}),
                                   inputs=inputs)) == {"plan"}
    # Other bytes at the same URI: that scene's keyframe and segment, and the segment before
    # it, which crossfades into this one.
    edited = {**INPUTS, IMAGES[2]: "md5:retouched"}
    assert changed(before, keys_of(*effective_of(slideshow()), inputs=edited)) == {
        "keyframes[2]", "segments[1]", "segments[2]", "stitch", "publish"}
    # With fades (or cuts) a scene's segment needs no neighbour: one keyframe, one segment.
    fade = keys_of(*effective_of(slideshow("fade")))
    assert changed(fade, keys_of(*effective_of(slideshow("fade")), inputs=edited)) == {
        "keyframes[2]", "segments[2]", "stitch", "publish"}


def test_audio_enters_through_its_checksum() -> None:
    spec, eff = effective_of(BASE)
    before = keys_of(spec, eff)
    assert changed(before, keys_of(spec, eff, {**INPUTS, "gs://in/track.mp3": "md5:remix"})) == {
        "stitch", "publish"}
    no_audio = keys_of(*effective_of({k: v for k, v in BASE.items() if k != "audio"}))
    assert changed(before, no_audio) == {"stitch", "publish"}


def test_an_input_without_a_checksum_cannot_be_keyed() -> None:
    spec, eff = effective_of(BASE)
    with pytest.raises(UnkeyableInput, match=r"audio gs://in/track\.mp3"):
        keys_of(spec, eff, {})
    spec, eff = effective_of(slideshow())
    with pytest.raises(UnkeyableInput, match=r"images\[0\]"):
        keys_of(spec, eff, {"gs://in/track.mp3": "md5:track"})


def test_versions_of_the_worker_and_the_backend() -> None:
    doc, plan = documents()
    tc = Toolchain(worker_version="0.1.0", backend_version="1.0")
    keys = stage_keys(doc, tc, INPUTS, plan)
    assert changed(keys, stage_keys(doc, Toolchain("0.2.0", "1.0"), INPUTS, plan)) == ALL
    # The backend's version is learnt from its plan, so the plan's own key cannot hold it.
    assert changed(keys, stage_keys(doc, Toolchain("0.1.0", "1.1"), INPUTS, plan)) == (
        ALL - {"plan"})
    pinned = Toolchain("0.1.0", "1.0", worker_digest="sha256:" + "c" * 64)
    assert changed(keys, stage_keys(doc, pinned, INPUTS, plan)) == ALL
    # Known by digest, the version's spelling no longer matters.
    assert stage_keys(doc, Toolchain("v0.1.0", "1.0", worker_digest="sha256:" + "c" * 64),
                      INPUTS, plan) == stage_keys(doc, pinned, INPUTS, plan)
    # Slideshow keyframes never load the backend: its version leaves them alone.
    spec, eff = effective_of(slideshow())
    show = json.loads(spec_json(spec, eff))
    show_plan = plan_document(show)
    assert changed(stage_keys(show, tc, INPUTS, show_plan),
                   stage_keys(show, Toolchain("0.1.0", "1.1"), INPUTS, show_plan)) == {
        "segments", "stitch", "publish"}


def test_image_digest_only_from_a_pinned_reference() -> None:
    assert image_digest("ghcr.io/v/worker@sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert image_digest("ghcr.io/v/worker:0.1.0@sha256:" + "a" * 64) == "sha256:" + "a" * 64
    assert image_digest("ghcr.io/v/worker:0.1.0") is None
    assert image_digest("localhost:5000/worker:latest") is None


def edit_scene(plan: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(plan))
    out["scenes"][index].update(fields)
    return out


@pytest.mark.parametrize(("transition", "segments"), [
    ("crossfade", {"segments[1]", "segments[2]"}),  # scene 1 dissolves into scene 2
    ("fade", {"segments[2]"}),
    ("none", {"segments[2]"}),
])
def test_a_one_scene_edit_changes_that_scene_then_stitch_and_publish(
        transition: str, segments: set[str]) -> None:
    """Keyed by the plan's content, an edit of scene 2 (a per-scene override of its
    description or seed) leaves the other scenes' keys alone, though the plan's key moves."""
    raw = {**BASE, "scenes": 8, "transition": transition}
    spec, eff = effective_of(raw)
    doc = json.loads(spec_json(spec, eff))
    plan = plan_document(doc)
    tc = toolchain_for(eff)
    before = stage_keys(doc, tc, INPUTS, plan)
    override = {**doc, "sceneOverrides": [{"index": 2, "description": "a lighthouse"}]}
    described = stage_keys(override, tc, INPUTS,
                           edit_scene(plan, 2, description="a lighthouse"))
    assert changed(before, described) == {"plan", "keyframes[2]", *segments, "stitch",
                                          "publish"}
    assert_no_false_hit(before, plan, described, edit_scene(plan, 2, description="a lighthouse"))
    reseeded = stage_keys({**doc, "sceneOverrides": [{"index": 2, "seed": 99}]}, tc, INPUTS,
                          edit_scene(plan, 2, seed=99))
    assert changed(before, reseeded) == {"plan", "keyframes[2]", *segments, "stitch",
                                         "publish"}


def test_scene_overrides_in_the_plan_key() -> None:
    doc, _ = documents()
    doc = {k: v for k, v in doc.items() if k != "sceneOverrides"}
    tc = Toolchain("0.1.0", "1.0")
    key = plan_key(doc, tc)
    # Absent and empty alike: adding the field to the CRD invalidates nothing.
    assert plan_key({**doc, "sceneOverrides": []}, tc) == key
    one = [{"index": 1, "seed": 5}, {"index": 3, "description": "x", "seed": None}]
    assert plan_key({**doc, "sceneOverrides": one}, tc) != key
    assert plan_key({**doc, "sceneOverrides": one[::-1]}, tc) == plan_key(
        {**doc, "sceneOverrides": one}, tc)


def test_a_plan_that_is_not_the_specs_is_refused() -> None:
    doc, plan = documents()
    tc = Toolchain("0.1.0", "1.0")
    with pytest.raises(ValueError, match="not its plan"):
        stage_keys({**doc, "scenes": 5}, tc, INPUTS, plan)
    with pytest.raises(ValueError, match="index"):
        stage_keys(doc, tc, INPUTS, {**plan, "scenes": plan["scenes"][::-1]})
    with pytest.raises(ValueError, match="fps missing"):
        plan_key({k: v for k, v in doc.items() if k != "fps"}, tc)


def test_stage_keys_by_stage() -> None:
    doc, plan = documents()
    keys = stage_keys(doc, Toolchain("0.1.0", "1.0"), INPUTS, plan)
    assert keys.of(Stage.PLAN) == keys.plan and keys.of(Stage.PUBLISH) == keys.publish
    assert keys.of(Stage.SEGMENTS, 3) == keys.segments[3]
    assert len(set(keys.keyframes) | set(keys.segments)) == 8  # no two outputs share a key
    with pytest.raises(ValueError, match="per scene"):
        keys.of(Stage.KEYFRAMES)


def test_the_keyframe_key_leaves_out_only_what_the_builtin_backend_ignores() -> None:
    """The keyframe key omits the camera, the frame range, fps and the transition; drawing
    with each of them changed gives the same pixels, and with a keyed field changed, others."""
    _, raw_plan = documents()
    plan = Plan.model_validate(raw_plan)
    scene = plan.scenes[2]  # scene 1 has its own seed (BASE overrides it)
    drawn = procedural.draw_keyframe(scene, plan)
    unkeyed_scene = scene.model_copy(update={
        "camera": Camera(motion="static", zoom_from=2.0, zoom_to=2.0),
        "frame_start": 0, "frame_end": 1})
    unkeyed_plan = plan.model_copy(update={"fps": 60, "total_frames": 5, "transition": "none",
                                           "transition_frames": 0})
    assert (procedural.draw_keyframe(unkeyed_scene, unkeyed_plan) == drawn).all()
    assert {"description", "palette", "index"} <= set(KEYFRAME_SCENE_FIELDS)
    assert {"prompt", "seed", "width", "height"} <= set(KEYFRAME_PLAN_FIELDS)
    for changed_plan in (plan.model_copy(update={"prompt": "A blue lake."}),
                         plan.model_copy(update={"seed": 99})):
        assert not (procedural.draw_keyframe(scene, changed_plan) == drawn).all()
