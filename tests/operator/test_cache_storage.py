"""The operator's file:// storage for the cache: copies are whole and checked, and never follow
a symbolic link a tenant left in its own cache folder."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from videojob_operator.cache_storage import LocalStorage


def uri(path: Path) -> str:
    return f"file://{path}"


def test_a_copy_reports_the_size_and_md5_of_what_it_wrote(tmp_path: Path) -> None:
    src = tmp_path / "a" / "scene.mp4"
    src.parent.mkdir()
    src.write_bytes(b"frames" * 1000)
    dst = tmp_path / "vj" / "segments" / "scene-000.mp4"
    size, md5 = LocalStorage().copy(uri(src), uri(dst)) or (0, "")
    assert dst.read_bytes() == src.read_bytes() and size == 6000
    assert md5 == base64.b64encode(hashlib.md5(src.read_bytes()).digest()).decode()
    assert [p.name for p in dst.parent.iterdir()] == ["scene-000.mp4"]  # no temporary left


def test_a_link_in_a_tenants_cache_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "team-b" / "private.mp4"
    secret.parent.mkdir()
    secret.write_bytes(b"team b's video")
    link = tmp_path / "team-a" / ".cache" / "segments" / ("a" * 64) / "w" / "scene.mp4"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    storage = LocalStorage()
    assert storage.read(uri(link), 1024) is None
    assert storage.checksum(uri(link)) is None
    target = tmp_path / "team-a" / "clip" / "segments" / "scene-000.mp4"
    assert storage.copy(uri(link), uri(target)) is None
    assert not target.exists()


def test_a_linked_folder_on_the_way_leads_nowhere(tmp_path: Path) -> None:
    other = tmp_path / "team-b" / ".cache" / "segments"
    other.mkdir(parents=True)
    scope = tmp_path / "team-a" / ".cache"
    scope.mkdir(parents=True)
    (scope / "segments").symlink_to(other)  # a tenant's link to another namespace's cache
    storage = LocalStorage()
    assert not storage.contained(uri(scope / "segments" / "k" / "manifest.json"), uri(scope))
    (scope / "keyframes").mkdir()
    assert storage.contained(uri(scope / "keyframes" / "k" / "manifest.json"), uri(scope))
