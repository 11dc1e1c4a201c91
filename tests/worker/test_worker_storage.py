"""Storage: the real google-cloud-storage client against the GCS emulator, and local files.

What matters to a user: what was written reads back byte for byte with the checksums GCS
reports, and a write that is interrupted never leaves anything under the final name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from videojob_testkit.worker import BUCKET
from videojob_worker import storage as storage_module
from videojob_worker.cancellation import Cancellation
from videojob_worker.errors import Cancelled, TransientError
from videojob_worker.retry import RetryPolicy
from videojob_worker.storage import (
    Checksums,
    GoogleCloudStorage,
    ObjectNotFound,
    Storage,
    file_uri,
)

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)


class CancelAfter(Cancellation):
    """A cancellation that fires at the n-th check: an interruption at a known point."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.remaining = checks

    def check(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            self.cancel()
        super().check()


def prefix() -> str:
    return f"gs://{BUCKET}/{uuid.uuid4().hex[:8]}"


def payload(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_gcs_round_trip_with_checksums(emulated_gcs: str, tmp_path: Path) -> None:
    store = Storage(policy=FAST)
    source = payload(tmp_path / "in.bin", 300_000)
    base = prefix()
    uri = f"{base}/stage/out.bin"
    info = store.upload(source, uri, "application/octet-stream")
    local = Checksums.of_file(source)
    assert (info.size, info.md5, info.crc32c) == (300_000, local.md5, local.crc32c)
    assert store.info(uri) == info  # what the server stored
    assert store.exists(uri)
    assert store.read_bytes(uri) == source.read_bytes()
    target = tmp_path / "down/out.bin"
    store.download(uri, target)
    assert target.read_bytes() == source.read_bytes()
    assert store.list(base) == [uri]
    store.delete(uri)
    assert not store.exists(uri)
    with pytest.raises(ObjectNotFound):
        store.read_bytes(uri)
    with pytest.raises(ObjectNotFound):
        store.download(uri, tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.bin", "down"]  # no temp files left


def test_gcs_resumable_upload(emulated_gcs: str, tmp_path: Path) -> None:
    cancellation = Cancellation()
    gcs = GoogleCloudStorage(cancellation, resumable_threshold=256 * 1024,
                             chunk_size=256 * 1024)
    store = Storage(cancellation, FAST, backends={"gs": gcs})
    source = payload(tmp_path / "big.bin", 1_000_000)  # four chunks
    uri = f"{prefix()}/video.mp4"
    info = store.upload(source, uri, "video/mp4")
    assert info.crc32c == Checksums.of_file(source).crc32c
    assert store.read_bytes(uri) == source.read_bytes()


def test_interrupted_gcs_upload_leaves_no_object(emulated_gcs: str, tmp_path: Path) -> None:
    cancellation = CancelAfter(checks=3)  # in the middle of the resumable session
    gcs = GoogleCloudStorage(cancellation, resumable_threshold=256 * 1024,
                             chunk_size=256 * 1024)
    store = Storage(cancellation, FAST, backends={"gs": gcs})
    source = payload(tmp_path / "big.bin", 1_500_000)
    base = prefix()
    with pytest.raises(Cancelled):
        store.upload(source, f"{base}/video.mp4")
    assert Storage(policy=FAST).list(base) == []


def test_gcs_overwrite_is_atomic_replacement(emulated_gcs: str, tmp_path: Path) -> None:
    """A re-run stage replaces its output; readers see the old or the new object, whole."""
    store = Storage(policy=FAST)
    uri = f"{prefix()}/plan/plan.json"
    store.write_bytes(uri, b'{"v": 1}', tmp_path)
    store.write_bytes(uri, b'{"v": 2}', tmp_path)
    assert store.read_bytes(uri) == b'{"v": 2}'
    assert list(tmp_path.iterdir()) == []  # the staging file is gone


def test_unreachable_gcs_is_transient_after_retries(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from videojob_testkit.processes import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    cancellation = Cancellation()
    gcs = GoogleCloudStorage(cancellation, retry_timeout=0, timeout=2)
    store = Storage(cancellation, FAST, backends={"gs": gcs})
    with pytest.raises(TransientError, match="after 3 attempts"):
        store.read_bytes(f"gs://{BUCKET}/x")


def test_local_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "COPY_CHUNK", 64 * 1024)
    source = payload(tmp_path / "in.bin", 1_000_000)
    target_dir = tmp_path / "artifacts"
    uri = file_uri(target_dir / "segments/scene-000.mp4")
    with pytest.raises(Cancelled):
        Storage(CancelAfter(checks=5), FAST).upload(source, uri)
    assert list((target_dir / "segments").iterdir()) == []  # no partial file, no temp file
    info = Storage(policy=FAST).upload(source, uri)
    assert (target_dir / "segments/scene-000.mp4").read_bytes() == source.read_bytes()
    assert info.md5 == Checksums.of_file(source).md5
    assert [p.name for p in (target_dir / "segments").iterdir()] == ["scene-000.mp4"]


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    calls = []

    class Flaky(storage_module.LocalFiles):
        def read_bytes(self, uri: str, max_bytes: int | None) -> bytes:
            calls.append(uri)
            if len(calls) < 3:
                raise TimeoutError("slow disk")
            return super().read_bytes(uri, max_bytes)

    (tmp_path / "a.txt").write_text("hello")
    store = Storage(policy=FAST, backends={"file": Flaky(Cancellation())})
    assert store.read_bytes(file_uri(tmp_path / "a.txt")) == b"hello"
    assert len(calls) == 3
