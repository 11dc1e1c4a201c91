"""`kubectl videojob cache stats`: entries, bytes and ages per namespace and stage, from a
storage root of fake entries written as the worker writes them (videojob_common.cache_entries)."""

from __future__ import annotations

from pathlib import Path

import pytest

from videojob_cli import cache
from videojob_cli.__main__ import main
from videojob_cli.errors import CommandError
from videojob_common.cache_entries import Artifact, Manifest, artifact_path, entry, scope
from videojob_common.pipeline import Stage


def put(root: Path, namespace: str, stage: Stage, n: int, size: int, when: str,
        shared: str | None = None) -> None:
    key = f"{n:064x}"
    folder = Path(entry(scope(str(root), namespace, shared), stage, key))
    path = artifact_path("u1-ab", stage)
    (folder / path).parent.mkdir(parents=True)
    (folder / path).write_bytes(b"x" * size)
    (folder / "manifest.json").write_text(Manifest(
        key=key, stage=stage, scene=None, artifact=Artifact(path, size, "bWQ1", "Y3Jj"),
        written_by={"namespace": namespace}, written_at=when).to_json())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    put(tmp_path, "a", Stage.SEGMENTS, 1, 100, "2026-01-02T00:00:00Z")
    put(tmp_path, "a", Stage.SEGMENTS, 2, 50, "2026-01-01T00:00:00Z")
    put(tmp_path, "a", Stage.PLAN, 3, 7, "2026-01-03T00:00:00Z")
    put(tmp_path, "b", Stage.STITCH, 4, 2048, "2026-01-04T00:00:00Z")
    put(tmp_path, "", Stage.KEYFRAMES, 5, 10, "2026-01-05T00:00:00Z", shared="studio")
    corrupt = tmp_path / "a" / ".cache" / "segments" / f"{9:064x}"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text("{not json")
    (tmp_path / "a" / "clip").mkdir()  # a VideoJob's own prefix: not the cache
    return tmp_path


def test_stats_count_entries_bytes_and_ages_per_namespace_and_stage(root: Path) -> None:
    rows = cache.aggregate(cache.read(f"file://{root}", None))
    assert [(r.scope, r.stage, r.entries, r.bytes, r.corrupt, r.oldest, r.newest)
            for r in rows] == [
        ("a", "plan", 1, 7, 0, "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z"),
        ("a", "segments", 2, 150, 1, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("b", "stitch", 1, 2048, 0, "2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z"),
        ("shared/studio", "keyframes", 1, 10, 0, "2026-01-05T00:00:00Z",
         "2026-01-05T00:00:00Z"),
    ]


def test_one_namespace_reads_only_its_own_cache(root: Path) -> None:
    rows = cache.aggregate(cache.read(str(root), "b"))
    assert [(r.scope, r.stage, r.entries) for r in rows] == [("b", "stitch", 1)]


def test_the_table_has_kubectl_columns_and_readable_sizes(root: Path) -> None:
    text = cache.table(cache.aggregate(cache.read(f"file://{root}", None)))
    lines = text.splitlines()
    assert lines[0].split() == cache.COLUMNS
    assert lines[3].split()[:6] == ["b", "stitch", "1", "2048", "2.0Ki", "0"]


def test_the_root_comes_from_the_flag_the_environment_or_the_local_cluster(
        tmp_path: Path) -> None:
    assert cache.find_root("gs://b/r", {cache.ROOT_ENV: "file:///x"}, tmp_path) == "gs://b/r"
    assert cache.find_root(None, {cache.ROOT_ENV: "file:///x"}, tmp_path) == "file:///x"
    with pytest.raises(CommandError, match=r"--root.*VIDEOJOB_STORAGE_ROOT"):
        cache.find_root(None, {}, tmp_path)
    (tmp_path / ".cluster" / "artifacts").mkdir(parents=True)
    assert cache.find_root(None, {}, tmp_path) == f"file://{tmp_path}/.cluster/artifacts"


def test_cache_stats_prints_a_table(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats", "-A", "--root", f"file://{root}"]) == 0
    assert "shared/studio" in capsys.readouterr().out
    assert main(["cache", "stats", "-n", "nobody", "--root", f"file://{root}"]) == 0
    assert "No cache entries for namespace nobody" in capsys.readouterr().out
    assert main(["cache", "stats", "--root", "s3://b/x"]) == 1
    assert "not a file:// or gs:// URI" in capsys.readouterr().err
