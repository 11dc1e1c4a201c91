"""The worker's side of the stage cache (issue #25): the entries a stage pod writes when the
operator tells it their keys (VIDEOJOB_CACHE), and the partial Jobs that render only the scenes
the cache lacks (VIDEOJOB_SCENES). Real stages, real ffmpeg, real files (and the GCS emulator)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from videojob_common.cache_entries import (
    ARTIFACTS,
    CACHE_ENV,
    MANIFEST,
    SCENES_ENV,
    Instruction,
    Manifest,
    entry,
    manifest_uri,
    parse_manifest,
)
from videojob_common.pipeline import Stage
from videojob_testkit.worker import BUCKET, LocalVideoJob, invoke, read_frames, stage_env
from videojob_worker import runner
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import read_environment
from videojob_worker.errors import Cancelled, PermanentError
from videojob_worker.storage import Checksums, LocalFiles, ObjectInfo, Storage, file_uri

SPEC: dict[str, Any] = {"prompt": "A golden desert. A teal lagoon. A red city at night.",
                        "scenes": 3, "durationSeconds": 1.5, "fps": 12, "resolution": "96x64",
                        "transition": "crossfade", "backend": "procedural", "seed": 3}
UID = "0b8a6f8e-1c1e-4a4e-9d55-3f1d6f1f2a10"


def key(stage: Stage, scene: int | None = None, salt: str = "") -> str:
    """A stand-in for the operator's key (the worker never computes keys, it is told them)."""
    return hashlib.sha256(f"{stage}/{scene}/{salt}".encode()).hexdigest()


def instruction(scope: str, stage: Stage, scenes: list[int | None]) -> str:
    return Instruction(scope=scope, keys={s: key(stage, s) for s in scenes}).to_json()


def video_job(tmp: Path, spec: dict[str, Any] | None = None, uid: str = UID) -> LocalVideoJob:
    return LocalVideoJob(tmp, spec or SPEC, uid)


def read_entry(scope: Path, stage: Stage, scene: int | None,
               entry_key: str | None = None) -> tuple[Manifest, bytes]:
    """The entry's manifest (checked as the operator checks it) and its artifact's bytes,
    which must verify against the manifest."""
    folder = scope / str(stage) / (entry_key or key(stage, scene))
    manifest = parse_manifest((folder / MANIFEST).read_bytes(), key=entry_key or key(stage, scene),
                              stage=stage)
    data = (folder / manifest.artifact.path).read_bytes()
    sums = Checksums()
    sums.update(data)
    assert (manifest.artifact.bytes, manifest.artifact.md5, manifest.artifact.crc32c) == (
        len(data), sums.md5, sums.crc32c)
    return manifest, data


def test_each_stage_writes_the_entries_it_is_told_to(tmp_path: Path) -> None:
    scope = tmp_path / "storage/ns/.cache"
    job = video_job(tmp_path)
    told = {
        "plan": [None], "keyframes": [0, 1, 2], "stitch": [None], "publish": [None],
    }
    for stage in ("plan", "keyframes"):
        job.run(stage, extra={CACHE_ENV: instruction(file_uri(scope), Stage(stage),
                                                     told[stage])})
    for index in range(3):
        job.run("segments", index, extra={CACHE_ENV: instruction(file_uri(scope),
                                                                 Stage.SEGMENTS, [index])})
    for stage in ("stitch", "publish"):
        job.run(stage, extra={CACHE_ENV: instruction(file_uri(scope), Stage(stage),
                                                     told[stage])})

    # Publish has none: its bytes are stitch's.
    assert sorted(p.name for p in scope.iterdir()) == ["keyframes", "plan", "segments", "stitch"]
    artifacts = {
        (Stage.PLAN, None): job.prefix / "plan/plan.json",
        **{(Stage.KEYFRAMES, i): job.prefix / f"keyframes/scene-{i:03d}.png" for i in range(3)},
        **{(Stage.SEGMENTS, i): job.prefix / f"segments/scene-{i:03d}.mp4" for i in range(3)},
        (Stage.STITCH, None): job.prefix / "stitch/video.mp4",
    }
    for (stage, scene), artifact in artifacts.items():
        manifest, data = read_entry(scope, stage, scene)
        assert data == artifact.read_bytes(), (stage, scene)  # the bytes the VideoJob got
        assert manifest.scene == scene
        assert manifest.artifact.path.startswith(f"{UID}-")
        assert manifest.artifact.path.endswith(f"/{ARTIFACTS[stage]}")
        assert manifest.written_by == {"namespace": "ns", "name": "job", "uid": UID}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest.written_at)
    # Exactly the keys it was told: one entry per output, nothing else.
    for stage, scenes in told.items():
        if stage != "publish":
            assert sorted(p.name for p in (scope / stage).iterdir()) == sorted(
                key(Stage(stage), s) for s in scenes)


def test_only_the_outputs_with_a_key_get_an_entry(tmp_path: Path) -> None:
    """An output the operator could not key (an input without a checksum) gets no entry."""
    scope = tmp_path / "cache"
    job = video_job(tmp_path)
    job.run("plan")
    job.run("keyframes", extra={CACHE_ENV: instruction(file_uri(scope), Stage.KEYFRAMES, [1])})
    assert [p.name for p in (scope / "keyframes").iterdir()] == [key(Stage.KEYFRAMES, 1)]
    assert len(list((job.prefix / "keyframes").iterdir())) == 3


def test_no_instruction_no_entries(tmp_path: Path) -> None:
    job = video_job(tmp_path)
    for stage in ("plan", "keyframes"):
        job.run(stage)
    assert not list(tmp_path.rglob(MANIFEST))
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".cache")]


def test_an_entry_that_cannot_be_written_does_not_fail_the_stage(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    job = video_job(tmp_path)
    job.run("plan")
    stderr = job.run("keyframes", extra={
        CACHE_ENV: instruction(file_uri(blocked), Stage.KEYFRAMES, [0, 1, 2])})
    assert len(list((job.prefix / "keyframes").iterdir())) == 3
    warnings = [json.loads(line) for line in stderr.splitlines()
                if line.strip() and json.loads(line)["level"] == "warning"]
    assert [w["scene"] for w in warnings] == [0, 1, 2]
    assert all(w["message"].startswith(f"no cache entry for keyframes scene {w['scene']} (key ")
               for w in warnings)
    assert not list(tmp_path.rglob(MANIFEST))


class MisreportingFiles(LocalFiles):
    """file:// storage that reports other bytes for what is under `.cache/` (a corrupted copy)."""

    def info(self, uri: str) -> ObjectInfo:
        info = super().info(uri)
        return ObjectInfo(uri, info.size, "AAAAAAAAAAAAAAAAAAAAAA==", info.crc32c) \
            if "/.cache/" in uri else info


class CancelledOnCacheUpload(LocalFiles):
    """SIGTERM arrives while an entry's artifact is uploading."""

    def upload(self, path: Path, uri: str, content_type: str | None) -> ObjectInfo:
        if "/.cache/" in uri:
            raise Cancelled()
        return super().upload(path, uri, content_type)


def run_in_process(job: LocalVideoJob, stage: str, files: type[LocalFiles],
                   extra: dict[str, str]) -> int:
    cancellation = Cancellation()
    storage = Storage(cancellation, backends={"file": files(cancellation)})
    return runner.execute(read_environment(stage, job.env(stage, extra=extra)), cancellation,
                          storage=storage)


def test_an_artifact_storage_misreports_is_never_announced(tmp_path: Path) -> None:
    scope = tmp_path / "ns/.cache"
    job = video_job(tmp_path)
    assert run_in_process(job, "plan", MisreportingFiles, {
        CACHE_ENV: instruction(file_uri(scope), Stage.PLAN, [None])}) == runner.EXIT_OK
    assert (job.prefix / "plan/plan.json").is_file()
    folder = scope / "plan" / key(Stage.PLAN)
    assert [p.name for p in folder.glob("*/plan.json")] == ["plan.json"]  # uploaded…
    assert not (folder / MANIFEST).exists()  # …but not announced


def test_cancellation_while_writing_an_entry_stops_the_pod(tmp_path: Path) -> None:
    scope = tmp_path / "ns/.cache"
    job = video_job(tmp_path)
    code = run_in_process(job, "plan", CancelledOnCacheUpload, {
        CACHE_ENV: instruction(file_uri(scope), Stage.PLAN, [None])})
    assert code == 143
    assert job.log.read_text().startswith("cancelled: ")
    assert not list(tmp_path.rglob(MANIFEST))


def test_two_writers_of_one_key_leave_an_entry_that_verifies(tmp_path: Path) -> None:
    """Two VideoJobs (or a retry) rendering the same output: each writes its own folder, and the
    manifest names one writer's complete artifact."""
    scope = tmp_path / "ns/.cache"
    told = {CACHE_ENV: instruction(file_uri(scope), Stage.KEYFRAMES, [0, 1, 2])}
    first, second = video_job(tmp_path / "a", uid="uid-a"), video_job(tmp_path / "b", uid="uid-b")
    for job in (first, second):
        job.run("plan")
        job.run("keyframes", extra=told)
    for scene in range(3):
        folder = scope / "keyframes" / key(Stage.KEYFRAMES, scene)
        writers = sorted(p.name.split("-")[1] for p in folder.iterdir() if p.is_dir())
        assert writers == ["a", "b"]
        manifest, data = read_entry(scope, Stage.KEYFRAMES, scene)
        assert manifest.written_by["uid"] == "uid-b"  # the last complete writer
        assert data == (second.prefix / f"keyframes/scene-{scene:03d}.png").read_bytes()


def test_entries_on_gcs(emulated_gcs: str, tmp_path: Path) -> None:
    root = f"gs://{BUCKET}/artifacts-cache"
    scope = f"gs://{BUCKET}/artifacts-cache/ns/.cache"
    log = tmp_path / "termination-log"
    for stage in ("plan", "keyframes"):
        told = [None] if stage == "plan" else [0, 2]
        env = stage_env(SPEC, stage, root, uid=UID, termination_log=log,
                        extra={CACHE_ENV: instruction(scope, Stage(stage), told)})
        code, _, stderr = invoke([stage], env)
        assert code == 0, stderr
        assert "\"level\": \"warning\"" not in stderr
    store = Storage()
    for stage, scene in [(Stage.PLAN, None), (Stage.KEYFRAMES, 0), (Stage.KEYFRAMES, 2)]:
        folder = entry(scope, stage, key(stage, scene))
        manifest = parse_manifest(store.read_bytes(manifest_uri(folder)), key=key(stage, scene),
                                  stage=stage)
        stored = store.info(manifest.artifact_uri(folder))
        assert manifest.artifact.matches(stored.size, stored.md5)
        assert stored.crc32c == manifest.artifact.crc32c
        artifact = (f"{root}/ns/job/{UID}/plan/plan.json" if scene is None
                    else f"{root}/ns/job/{UID}/keyframes/scene-{scene:03d}.png")
        assert store.read_bytes(artifact) == store.read_bytes(manifest.artifact_uri(folder))
    assert not store.exists(manifest_uri(entry(scope, Stage.KEYFRAMES, key(Stage.KEYFRAMES, 1))))


# -- partial Jobs: VIDEOJOB_SCENES ------------------------------------------------------------

def test_a_partial_keyframes_job_draws_only_its_scenes(tmp_path: Path) -> None:
    whole, partial = video_job(tmp_path / "whole"), video_job(tmp_path / "partial")
    for job, scenes in ((whole, None), (partial, "0,2")):
        job.run("plan")
        job.run("keyframes", extra={SCENES_ENV: scenes} if scenes else None)
    drawn = sorted(p.name for p in (partial.prefix / "keyframes").iterdir())
    assert drawn == ["scene-000.png", "scene-002.png"]
    for name in drawn:  # the same keyframes a whole Job draws
        assert ((partial.prefix / "keyframes" / name).read_bytes()
                == (whole.prefix / "keyframes" / name).read_bytes())


def test_a_partial_segments_job_renders_the_listed_scene(tmp_path: Path) -> None:
    spec = {**SPEC, "scenes": 4, "durationSeconds": 2.0}
    whole, partial = video_job(tmp_path / "whole", spec), video_job(tmp_path / "partial", spec)
    for job in (whole, partial):
        job.run("plan")
        job.run("keyframes")
    whole.run("segments", 3)
    stderr = partial.run("segments", 0, extra={SCENES_ENV: "3"})
    assert [p.name for p in (partial.prefix / "segments").iterdir()] == ["scene-003.mp4"]
    logs = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all((line["index"], line["scene"]) == (0, 3) for line in logs)
    rendered = read_frames(partial.prefix / "segments/scene-003.mp4")
    expected = read_frames(whole.prefix / "segments/scene-003.mp4")
    assert len(rendered) == len(expected) == 6  # scene 3's frames: [18, 24)
    assert all((a == b).all() for a, b in zip(rendered, expected, strict=True))


@pytest.mark.parametrize(("stage", "index", "scenes", "message"), [
    ("segments", 1, "2", r"^JOB_COMPLETION_INDEX=1 is outside the 1 scenes of VIDEOJOB_SCENES$"),
    ("segments", 0, "5", r"^VIDEOJOB_SCENES='5': scene indexes must be distinct, increasing "
                         r"and below 3$"),
    ("keyframes", None, "2,1", r"^VIDEOJOB_SCENES='2,1': "),
    ("keyframes", None, "a", r"^VIDEOJOB_SCENES='a' is not a list of scene indexes$"),
])
def test_a_scene_table_that_does_not_fit_is_permanent(tmp_path: Path, stage: str,
                                                      index: int | None, scenes: str,
                                                      message: str) -> None:
    env = video_job(tmp_path).env(stage, index, extra={SCENES_ENV: scenes})
    with pytest.raises(PermanentError, match=message):
        read_environment(stage, env)


@pytest.mark.parametrize(("text", "message"), [
    ("{", r"^VIDEOJOB_CACHE is malformed: "),
    ('{"keys": {}}', r"^VIDEOJOB_CACHE has no scope$"),
    ('{"scope": "file:///c", "keys": {"0": "abc"}}', r"^VIDEOJOB_CACHE: 'abc' is not a cache"),
])
def test_a_malformed_cache_instruction_is_permanent(tmp_path: Path, text: str,
                                                    message: str) -> None:
    env = video_job(tmp_path).env("keyframes", extra={CACHE_ENV: text})
    with pytest.raises(PermanentError, match=message):
        read_environment("keyframes", env)
