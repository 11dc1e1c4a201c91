"""The operator's cache lookups on gs://, against the GCS emulator through the real
google-cloud-storage client: entries found, verified and copied server-side into the
VideoJob's prefix; a corrupt one refused; a whole video copied to the output."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import pytest

from videojob_common.cache_entries import (
    ARTIFACTS,
    Artifact,
    Manifest,
    entry,
    manifest_uri,
    scope,
)
from videojob_common.cache_keys import Toolchain, plan_key, stage_keys
from videojob_common.pipeline import Stage
from videojob_operator.cache_lookup import find
from videojob_operator.cache_storage import CloudStorage, Storage
from videojob_operator.cache_view import CacheLookup
from videojob_testkit.gcs import GcsEmulator, point_at, running

BUCKET = "cache-test"
ROOT = f"gs://{BUCKET}/root"
SPEC = {"prompt": "x", "scenes": 2, "durationSeconds": 2, "fps": 4, "resolution": "64x64",
        "transition": "fade", "seed": 1, "backend": "procedural"}
PLAN = {"version": 1, "backend": "procedural", "backendVersion": "1", "prompt": "x", "seed": 1,
        "width": 64, "height": 64, "fps": 4, "totalFrames": 8, "transition": "fade",
        "transitionFrames": 1,
        "scenes": [{"index": i, "description": f"s{i}", "camera": {}, "palette": [],
                    "frameStart": 4 * i, "frameEnd": 4 * i + 4} for i in range(2)]}
TOOLCHAIN = Toolchain(worker_version="w:1", backend_version="")


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running(BUCKET) as server:
        yield server


@pytest.fixture
def storage(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> Storage:
    point_at(emulator, monkeypatch)
    return Storage(cloud=CloudStorage())


def put(storage: Storage, uri: str, data: bytes) -> None:
    cloud = storage._for(uri)
    assert isinstance(cloud, CloudStorage)
    cloud._blob(uri).upload_from_string(data)


def write_entry(storage: Storage, where: str, stage: Stage, key: str, scene: int | None,
                data: bytes) -> None:
    """An entry as a worker writes it: the artifact in its writer's folder, the manifest last."""
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    manifest = Manifest(key=key, stage=stage, scene=scene,
                        artifact=Artifact(path=f"w1/{ARTIFACTS[stage]}", bytes=len(data),
                                          md5=md5, crc32c="AAAAAA=="),
                        written_by={"namespace": "ns", "name": "first", "uid": "u0"},
                        written_at="2026-12-06T00:00:00Z")
    put(storage, manifest.artifact_uri(where), data)
    put(storage, manifest_uri(where), manifest.to_json().encode())


def request(planned: bool, uid: str = "u1") -> CacheLookup:
    return CacheLookup(namespace="ns", name="clip", uid=uid, planned=planned, read=True,
                       scope=scope(ROOT, "ns"), prefix=f"{ROOT}/ns/clip/{uid}",
                       output_uri=f"{ROOT}/ns/clip/{uid}/output.mp4", spec=json.dumps(SPEC),
                       toolchain=TOOLCHAIN)


def test_hits_are_verified_and_copied_and_a_corrupt_one_is_a_miss(storage: Storage) -> None:
    cache = scope(ROOT, "ns")
    pk = plan_key(SPEC, TOOLCHAIN)
    write_entry(storage, entry(cache, Stage.PLAN, pk), Stage.PLAN, pk, None,
                json.dumps(PLAN).encode())
    keys = stage_keys(SPEC, Toolchain("w:1", "1"), {}, PLAN)  # the plan's backendVersion
    write_entry(storage, entry(cache, Stage.SEGMENTS, keys.segments[0]), Stage.SEGMENTS,
                keys.segments[0], 0, b"segment zero")
    # Scene 1's entry lies about its bytes.
    write_entry(storage, entry(cache, Stage.SEGMENTS, keys.segments[1]), Stage.SEGMENTS,
                keys.segments[1], 1, b"segment one")
    put(storage, f"{entry(cache, Stage.SEGMENTS, keys.segments[1])}/w1/scene.mp4", b"other!")
    answer = find(request(planned=False), storage)
    assert answer.plan_cached and answer.keys == keys
    assert answer.segments == frozenset({0})
    assert answer.keyframes == frozenset()  # none cached: scene 1's keyframe is owed
    assert storage.read(f"{ROOT}/ns/clip/u1/segments/scene-000.mp4", 100) == b"segment zero"
    assert storage.read(f"{ROOT}/ns/clip/u1/segments/scene-001.mp4", 100) is None
    assert json.loads(storage.read(f"{ROOT}/ns/clip/u1/plan/plan.json", 10_000) or b"") == PLAN


def test_a_cached_video_is_copied_to_the_output(storage: Storage) -> None:
    cache = scope(ROOT, "ns")
    pk = plan_key(SPEC, TOOLCHAIN)
    write_entry(storage, entry(cache, Stage.PLAN, pk), Stage.PLAN, pk, None,
                json.dumps(PLAN).encode())
    keys = stage_keys(SPEC, Toolchain("w:1", "1"), {}, PLAN)
    write_entry(storage, entry(cache, Stage.STITCH, keys.stitch), Stage.STITCH, keys.stitch,
                None, b"the whole video")
    answer = find(request(planned=False, uid="u2"), storage)
    assert answer.reused is not None and answer.reused.written_by["name"] == "first"
    assert storage.read(f"{ROOT}/ns/clip/u2/output.mp4", 100) == b"the whole video"
    assert storage.contained(f"{cache}/stitch/k/manifest.json", cache)
    assert not storage.contained(f"{ROOT}/other/.cache/stitch/k/manifest.json", cache)
