"""Per-scene overrides (`spec.sceneOverrides`, docs/reuse.md) and the backend's version in the
plan: what the plan stage writes, and what an override changes in the keyframes (only its own
scene, so every other scene's cache entries still hit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from videojob_testkit.worker import LocalVideoJob
from videojob_worker.errors import PermanentError
from videojob_worker.procedural import ProceduralBackend, palette
from videojob_worker.spec import parse_spec
from videojob_worker.stages.plan import make_plan

# test_worker_stages' spec, whose plan tests/worker/data/plan-before-overrides.json holds as the
# worker wrote it before overrides and backendVersion existed.
SPEC: dict[str, Any] = {"prompt": "A golden desert. A teal lagoon.", "scenes": 2,
                        "durationSeconds": 1.5, "fps": 24, "resolution": "160x90",
                        "transition": "crossfade", "backend": "procedural", "seed": 3,
                        "images": [], "audio": None}
BEFORE = Path(__file__).parent / "data/plan-before-overrides.json"
THREE: dict[str, Any] = {"prompt": "A golden desert. A teal lagoon. A quiet valley.",
                         "scenes": 3, "durationSeconds": 1.5, "fps": 12, "resolution": "96x64",
                         "seed": 5}


def test_a_plan_without_overrides_is_the_plan_of_before_plus_the_backend_version(
        tmp_path: Path) -> None:
    """Byte for byte, so the keys built from the plan (and their entries) do not move."""
    job = LocalVideoJob(tmp_path, SPEC)
    job.run("plan")
    written = (job.prefix / "plan/plan.json").read_text()
    before = BEFORE.read_text()
    assert written == before.replace('  "backend": "procedural",\n',
                                     '  "backend": "procedural",\n  "backendVersion": "1",\n')
    assert json.loads(written)["backendVersion"] == ProceduralBackend.version == "1"
    assert all("seed" not in scene for scene in json.loads(written)["scenes"])


def test_an_overridden_seed_changes_only_its_scenes_keyframe(tmp_path: Path) -> None:
    plain = LocalVideoJob(tmp_path / "plain", THREE)
    reseeded = LocalVideoJob(tmp_path / "reseeded",
                             {**THREE, "sceneOverrides": [{"index": 1, "seed": 99}]})
    for job in (plain, reseeded):
        job.run("plan")
        job.run("keyframes")
    before = json.loads((plain.prefix / "plan/plan.json").read_text())
    after = json.loads((reseeded.prefix / "plan/plan.json").read_text())
    assert after["scenes"][1] == {**before["scenes"][1], "seed": 99}
    assert [after["scenes"][i] for i in (0, 2)] == [before["scenes"][i] for i in (0, 2)]
    assert after["seed"] == before["seed"] == 5

    def keyframe(job: LocalVideoJob, scene: int) -> bytes:
        return (job.prefix / f"keyframes/scene-{scene:03d}.png").read_bytes()

    assert keyframe(reseeded, 0) == keyframe(plain, 0)
    assert keyframe(reseeded, 2) == keyframe(plain, 2)
    assert keyframe(reseeded, 1) != keyframe(plain, 1)


def test_an_overridden_description_brings_its_own_palette() -> None:
    backend = ProceduralBackend()
    spec = parse_spec(THREE)
    plain = make_plan(spec, backend)
    description = "a red volcano at night"
    override = make_plan(parse_spec(
        {**THREE, "sceneOverrides": [{"index": 1, "description": description}]}), backend)
    scene = override.scenes[1]
    assert scene.description == description
    # The palette the planner drafts for that description: its colour and mood words.
    assert scene.palette == palette(description, 1, spec.prompt, spec.seed)
    assert scene.palette != plain.scenes[1].palette
    assert scene.camera == plain.scenes[1].camera and scene.seed is None
    assert [override.scenes[i] for i in (0, 2)] == [plain.scenes[i] for i in (0, 2)]


@pytest.mark.parametrize(("overrides", "message"), [
    ([{"index": 3, "seed": 1}], "sceneOverrides: scene 3 is outside the 3 scenes"),
    ([{"index": 1, "seed": 1}, {"index": 1, "description": "x"}],
     "sceneOverrides: each scene may be overridden once"),
    ([{"index": -1, "seed": 1}], "spec.sceneOverrides.0.index"),
    ([{"index": 0, "description": ""}], "spec.sceneOverrides.0.description"),
])
def test_overrides_that_do_not_fit_the_spec_are_permanent(overrides: list[dict[str, Any]],
                                                          message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        parse_spec({**THREE, "sceneOverrides": overrides})
