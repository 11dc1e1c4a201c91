"""The cache's sweep (cache_sweeper.py) against real files: entries written in the worker's
format under a tmp storage root, one pass, then what is left on disk."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

from videojob_common.cache_entries import Artifact, Instruction, Manifest
from videojob_common.pipeline import Stage
from videojob_operator import metrics
from videojob_operator.cache_lookup import CacheLookups
from videojob_operator.cache_sweeper import CacheSweeper
from videojob_operator.cache_view import CacheAnswer
from videojob_operator.config import LiveConfig, OperatorConfig
from videojob_operator.store import Store, slim

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def key(c: str) -> str:
    return c * 64


def write_entry(scope: Path, k: str, written: dt.datetime, size: int, writer: str = "u1-aa",
                stage: Stage = Stage.SEGMENTS, manifest: bool = True) -> Path:
    folder = scope / str(stage) / k
    (folder / writer).mkdir(parents=True)
    name = "scene.mp4" if stage == Stage.SEGMENTS else "plan.json"
    artifact = folder / writer / name
    artifact.write_bytes(b"x" * size)
    stamp = written.timestamp()
    os.utime(artifact, (stamp, stamp))
    if manifest:
        doc = Manifest(key=k, stage=stage, scene=0 if stage == Stage.SEGMENTS else None,
                       artifact=Artifact(f"{writer}/{name}", size, "bWQ1", "Y3Jj"),
                       written_by={"namespace": "ns"},
                       written_at=written.strftime("%Y-%m-%dT%H:%M:%SZ"))
        (folder / "manifest.json").write_text(doc.to_json())
        os.utime(folder / "manifest.json", (stamp, stamp))
    return folder


def sweeper(root: Path, store: Store | None = None, lookups: CacheLookups | None = None,
            **cache: Any) -> CacheSweeper:
    config = OperatorConfig(storage_root=f"file://{root}", cache={"enabled": True, **cache})
    return CacheSweeper(store or Store(None), LiveConfig(config),  # type: ignore[arg-type]
                        lookups or CacheLookups(1, requeue=lambda key: None),
                        clock=lambda: NOW)


def test_one_pass_removes_by_age_size_and_orphans_and_keeps_the_rest(tmp_path: Path) -> None:
    scope = tmp_path / "ns" / ".cache"
    old = write_entry(scope, key("a"), NOW - 10 * DAY, 10)
    big_old = write_entry(scope, key("b"), NOW - 3 * DAY, 60)
    young = write_entry(scope, key("c"), NOW - 1 * DAY, 60)
    orphan = write_entry(scope, key("d"), NOW - 2 * DAY, 5, writer="killed", manifest=False)
    uploading = write_entry(scope, key("e"), NOW - dt.timedelta(minutes=5), 5,
                            writer="busy", manifest=False)
    (tmp_path / "ns" / "clip" / "uid").mkdir(parents=True)  # a VideoJob's prefix: not the cache
    (tmp_path / "ns" / "clip" / "uid" / "output.mp4").write_bytes(b"v" * 1000)

    s = sweeper(tmp_path, limits=[{"namespace": "ns", "max_bytes": 500, "max_age_days": 7}])
    report = asyncio.run(s.sweep())

    reasons = sorted((d.key[0], d.reason) for d in report.deletions[f"file://{scope}"])
    assert reasons == [("a", "age"), ("b", "size"), ("d", "orphan")]
    assert not old.exists() and not big_old.exists() and not orphan.exists()
    assert (young / "manifest.json").exists() and (uploading / "busy").exists()
    assert (tmp_path / "ns" / "clip" / "uid" / "output.mp4").exists()
    assert report.held[f"file://{scope}"] == 65 + len((young / "manifest.json").read_bytes())
    assert metrics.CACHE_BYTES.labels("ns", "segments")._value.get() == 65 + len(
        (young / "manifest.json").read_bytes())


def test_keys_running_videojobs_and_jobs_reference_survive(tmp_path: Path) -> None:
    scope = tmp_path / "ns" / ".cache"
    looked_up = write_entry(scope, key("a"), NOW - 30 * DAY, 10)
    written = write_entry(scope, key("b"), NOW - 30 * DAY, 10, writer="mid-upload",
                          manifest=False)
    finished = write_entry(scope, key("c"), NOW - 30 * DAY, 10)
    store = Store(None)  # type: ignore[arg-type]
    store.videojobs[("ns", "clip")] = {"metadata": {"name": "clip", "namespace": "ns"},
                                       "status": {"phase": "Running"}}
    store.videojobs[("ns", "done")] = {"metadata": {"name": "done", "namespace": "ns"},
                                       "status": {"phase": "Succeeded"}}
    lookups = CacheLookups(1, requeue=lambda key: None)
    scope_uri = f"file://{scope}"
    lookups.answers[("ns", "clip")] = ("u1", CacheAnswer(True, scope_uri, key("a")))
    lookups.answers[("ns", "done")] = ("u2", CacheAnswer(True, scope_uri, key("c")))
    job = {"metadata": {"name": "clip-segments", "namespace": "ns"}, "status": {"active": 1},
           "spec": {"template": {"spec": {"containers": [{"name": "worker", "env": [
               {"name": "VIDEOJOB_CACHE",
                "value": Instruction(scope_uri, {0: key("b")}).to_json()}]}]}}}}
    store.jobs[("ns", "clip")]["clip-segments"] = slim("job", job)  # as the store keeps it

    s = sweeper(tmp_path, store, lookups, limits=[{"max_age_days": 1}], writer_grace_seconds=60)
    report = asyncio.run(s.sweep())

    assert [(d.key[0], d.reason) for d in report.deletions[scope_uri]] == [("c", "age")]
    assert looked_up.exists() and (written / "mid-upload").exists() and not finished.exists()


def test_shared_caches_and_the_grace_of_a_corrupt_manifest(tmp_path: Path) -> None:
    shared = tmp_path / ".cache-shared" / "team"
    corrupt_old = write_entry(shared, key("a"), NOW - 2 * DAY, 3, stage=Stage.PLAN)
    (corrupt_old / "manifest.json").write_text("{not json")
    stamp = (NOW - 2 * DAY).timestamp()
    os.utime(corrupt_old / "manifest.json", (stamp, stamp))
    corrupt_new = write_entry(shared, key("b"), NOW - 2 * DAY, 3, stage=Stage.PLAN)
    (corrupt_new / "manifest.json").write_text("{not json")  # just now: within the grace

    report = asyncio.run(sweeper(tmp_path).sweep())

    assert [(d.key[0], d.reason) for d in report.deletions[f"file://{shared}"]] == [
        ("a", "corrupt")]
    assert not corrupt_old.exists() and corrupt_new.exists()


def test_a_root_that_does_not_exist_yet_is_an_empty_pass(tmp_path: Path) -> None:
    report = asyncio.run(sweeper(tmp_path / "missing").sweep())
    assert report.deletions == {} and report.failed == []
