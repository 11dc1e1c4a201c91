from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.images import ImageEntry, ImageError, launch, load_table, match, repository


@pytest.mark.parametrize(("image", "repo"), [
    ("busybox", "busybox"),
    ("busybox:1.36", "busybox"),
    ("ghcr.io/videojob/worker:0.1.0", "ghcr.io/videojob/worker"),
    ("localhost:5000/videojob/worker", "localhost:5000/videojob/worker"),
    ("localhost:5000/videojob/worker:dev", "localhost:5000/videojob/worker"),
    ("ghcr.io/videojob/worker@sha256:abc", "ghcr.io/videojob/worker"),
])
def test_repository_strips_tag_and_digest(image: str, repo: str) -> None:
    assert repository(image) == repo


def test_table_matches_by_repository_suffix(tmp_path: Path) -> None:
    table = [ImageEntry("videojob/worker", ("/env/bin/videojob-worker",), ("/env/bin",))]
    assert match(table, "ghcr.io/videojob/worker:1.2") is table[0]
    assert match(table, "videojob/worker") is table[0]
    assert match(table, "ghcr.io/other/worker") is None
    assert match(table, "ghcr.io/xvideojob/worker") is None


def test_shipped_table_fills_in_the_environment(tmp_path: Path) -> None:
    entries = load_table(env_prefix="/opt/env")
    worker = match(entries, "ghcr.io/videojob/worker:latest")
    assert worker is not None
    assert worker.entrypoint == ("/opt/env/bin/videojob-worker",)
    assert worker.path == ("/opt/env/bin",)


def test_command_wins_over_entrypoint_and_args_follow(tmp_path: Path) -> None:
    exe = tmp_path / "bin" / "entry"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    table = [ImageEntry("mine/img", (str(exe),), (str(exe.parent),))]
    assert launch(table, {"image": "mine/img", "args": ["a"]}).argv == [str(exe), "a"]
    got = launch(table, {"image": "mine/img", "command": ["sh"], "args": ["-c", "x"]})
    assert got.argv == ["sh", "-c", "x"] and got.path_prefix == [str(exe.parent)]


def test_unknown_image_needs_a_command() -> None:
    assert launch([], {"image": "busybox", "command": ["sleep", "3"]}).argv == ["sleep", "3"]
    with pytest.raises(ImageError, match="not in the node agent's image table"):
        launch([], {"name": "c", "image": "busybox"})


def test_mapped_image_whose_program_is_missing_says_so() -> None:
    table = [ImageEntry("videojob/worker", ("/nonexistent/videojob-worker",))]
    with pytest.raises(ImageError, match="not installed"):
        launch(table, {"name": "c", "image": "videojob/worker"})
