"""Spec defaults and checks, the plan, transitions and the backend plug-in interface."""

from __future__ import annotations

import importlib.metadata
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from videojob_worker import backends, motion, plugins, transitions
from videojob_worker.errors import PermanentError
from videojob_worker.ffmpeg import Frame
from videojob_worker.plan import Camera, Plan, Scene, SceneDraft, frame_ranges
from videojob_worker.procedural import ProceduralBackend, scene_descriptions, split_prompt
from videojob_worker.spec import VideoSpec, load_manifest, parse_spec
from videojob_worker.stages.plan import make_plan


def test_defaults_are_the_crds() -> None:
    spec = parse_spec({"prompt": "a cat"})
    assert (spec.images, spec.audio, spec.scenes, spec.duration_seconds, spec.fps,
            spec.resolution, spec.transition, spec.backend, spec.seed) == (
        [], None, 4, 12, 24, "1280x720", "crossfade", "procedural", 0)
    assert spec.total_frames == 288
    # Fields the operator uses (GPU, retries, priority…) do not bother the worker.
    assert parse_spec({"prompt": "a cat", "gpu": {"count": 1}, "retry": {"limit": 3}}) == spec


def test_manifest_or_bare_spec(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: v1\nkind: VideoJob\nmetadata: {name: cat}\n"
                        "spec: {prompt: a cat, fps: 12}\n")
    bare = tmp_path / "spec.yaml"
    bare.write_text("prompt: a cat\nfps: 12\n")
    assert load_manifest(manifest) == ({"name": "cat"}, parse_spec({"prompt": "a cat", "fps": 12}))
    assert load_manifest(bare)[1] == load_manifest(manifest)[1]
    other = tmp_path / "pod.yaml"
    other.write_text("kind: Pod\nspec: {containers: []}\n")
    with pytest.raises(PermanentError, match="is a Pod"):
        load_manifest(other)


def test_a_local_spec_with_a_field_the_crd_lacks_is_refused(tmp_path: Path) -> None:
    """As `kubectl --validate=strict`: a misspelt or unsupported field is named, not dropped."""
    manifest = tmp_path / "job.yaml"
    manifest.write_text("kind: VideoJob\nspec:\n  prompt: a cat\n  voiceover: {text: hi}\n"
                        "  gpu: {count: 1, tolerations: [{key: k, operatr: Exists}]}\n"
                        "  output: {uri: 'file:///tmp/x.mp4'}\n")
    with pytest.raises(PermanentError, match=r"^spec\.voiceover, "
                       r"spec\.gpu\.tolerations\[0\]\.operatr: unknown fields \(not in the "
                       r"VideoJob CRD"):
        load_manifest(manifest)
    bare = tmp_path / "spec.yaml"
    bare.write_text("prompt: a cat\nfsp: 12\ngpu: {nodeSelector: {any-key: x}}\n")
    with pytest.raises(PermanentError, match=r"^spec\.fsp: unknown field \("):
        load_manifest(bare)


def test_frames_add_up_exactly() -> None:
    for total, scenes in [(288, 4), (100, 3), (7, 7), (1001, 13)]:
        ranges = frame_ranges(total, scenes)
        assert ranges[0][0] == 0 and ranges[-1][1] == total
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        sizes = [end - start for start, end in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_prompt_becomes_one_description_per_scene() -> None:
    assert split_prompt("A cat. A dog!\nA bird; a fish") == ["A cat", "A dog", "A bird", "a fish"]
    grouped = scene_descriptions(parse_spec({"prompt": "One. Two. Three. Four. Five.",
                                             "scenes": 2}))
    assert grouped == ["One Two", "Three Four Five"]
    stretched = scene_descriptions(parse_spec({"prompt": "A lighthouse", "scenes": 3}))
    assert stretched[0] == "A lighthouse"
    assert all(d.startswith("A lighthouse, ") for d in stretched[1:])
    assert len(set(stretched)) == 3


def test_plan_is_deterministic_per_seed() -> None:
    spec = parse_spec({"prompt": "A cat. A dog.", "scenes": 5, "durationSeconds": 3})
    backend = ProceduralBackend()
    plan = make_plan(spec, backend)
    assert make_plan(spec, backend).to_json() == plan.to_json()
    assert Plan.from_json(plan.to_json()) == plan
    other = make_plan(spec.model_copy(update={"seed": 1}), backend)
    assert other.to_json() != plan.to_json()
    assert [s.frames for s in plan.scenes] == [14, 14, 15, 14, 15]
    assert plan.transition_frames == 7  # at most half the shortest scene
    moves = [s.camera.motion for s in plan.scenes]
    assert all(a != b for a, b in itertools.pairwise(moves))  # camera varies


def scene(index: int, frames: int = 10) -> Scene:
    return Scene(index=index, description="x", palette=["#000000"], frame_start=0,
                 frame_end=frames, camera=Camera(motion="static", zoom_from=1, zoom_to=1))


def two_scene_plan(transition: str, frames: int = 10, t: int = 4) -> Plan:
    return Plan(backend="procedural", prompt="", seed=0, width=4, height=2, fps=10,
                total_frames=2 * frames, transition=transition,  # type: ignore[arg-type]
                transition_frames=t, scenes=[scene(0, frames), scene(1, frames)])


def test_crossfade_dissolves_into_the_next_scene() -> None:
    plan = two_scene_plan("crossfade")
    white, black = np.full((2, 4, 3), 255, np.uint8), np.zeros((2, 4, 3), np.uint8)
    levels = [int(transitions.apply(white, k, plan.scenes[0], plan, black)[0, 0, 0])
              for k in range(10)]
    assert levels[:6] == [255] * 6
    assert levels[6:] == sorted(levels[6:], reverse=True) and levels[-1] > 0
    # The last scene has nothing to dissolve into.
    assert transitions.apply(white, 9, plan.scenes[1], plan, None)[0, 0, 0] == 255


def test_fade_goes_to_black_and_back() -> None:
    plan = two_scene_plan("fade")
    white = np.full((2, 4, 3), 255, np.uint8)
    out = [int(transitions.apply(white, k, plan.scenes[0], plan, None)[0, 0, 0])
           for k in range(10)]
    assert out[-1] == 0 and out[7] == 255
    back_in = [int(transitions.apply(white, k, plan.scenes[1], plan, None)[0, 0, 0])
               for k in range(3)]
    assert back_in[0] < back_in[1] < back_in[2] == 255


def test_ken_burns_stays_inside_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    for camera in [Camera(motion="pan-left", zoom_from=1.2, zoom_to=1.2, x_from=1, x_to=-1,
                          y_from=1, y_to=-1),
                   Camera(motion="zoom-in", zoom_from=1, zoom_to=2, x_to=1, y_to=1)]:
        for t in (0.0, 0.5, 1.0):
            matrix = motion.affine(camera, t, (160, 90), (160, 90))
            corners = np.array([[0, 0, 1], [159, 89, 1]], np.float64)
            inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
            source = corners @ inverse.T
            assert (source[:, 0] >= -0.01).all() and (source[:, 0] <= 160).all()
            assert (source[:, 1] >= -0.01).all() and (source[:, 1] <= 90).all()
    still = Camera(motion="static", zoom_from=1, zoom_to=1)
    assert np.array_equal(motion.render(image, still, 0.3, (160, 90)), image)


class Solid(backends.RenderBackend):
    """A plug-in as a separate package would write it: one colour per scene."""

    def describe_scenes(self, spec: VideoSpec) -> list[SceneDraft]:
        still = Camera(motion="static", zoom_from=1, zoom_to=1)
        return [SceneDraft(description=f"solid {i}", camera=still, palette=["#ff0000"])
                for i in range(spec.scene_count)]

    def render_keyframe(self, scene: Scene, plan: Plan) -> Frame:
        return np.full((plan.height, plan.width, 3), 40 * scene.index, np.uint8)

    def render_clip(self, scene: Scene, keyframe: Frame, plan: Plan,
                    frames: int) -> Iterator[Frame]:
        for _ in range(frames):
            yield keyframe


def test_backends_come_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    point = importlib.metadata.EntryPoint(name="solid", group=backends.ENTRY_POINT_GROUP,
                                          value=f"{__name__}:Solid")

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [point] if group == backends.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(plugins, "entry_points", entry_points)
    assert backends.available() == ["procedural", "solid"]
    backend = backends.load("solid")
    assert isinstance(backend, Solid) and backend.name == "solid"
    plan = make_plan(parse_spec({"prompt": "x", "scenes": 2, "durationSeconds": 1,
                                 "resolution": "32x18", "backend": "solid"}), backend)
    assert plan.backend == "solid" and [s.description for s in plan.scenes] == ["solid 0",
                                                                               "solid 1"]
    assert backend.render_keyframe(plan.scenes[1], plan).mean() == 40
    with pytest.raises(PermanentError, match=r"'nope' is not installed .*procedural, solid"):
        backends.load("nope")
