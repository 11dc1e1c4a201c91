"""The storage adapters on a real file system and on the GCS emulator (the google-cloud-storage
client over HTTP, as against GCS): uploads appear whole or not at all, nothing outside the
namespace's lane is written or read, outputs are read by range."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from videojob_gateway import layout
from videojob_gateway.layout import StorageRoot
from videojob_gateway.storage import (
    CloudStore,
    LocalStore,
    ObjectMissing,
    StorageRefused,
)
from videojob_testkit.gcs import GcsEmulator, point_at, running

BUCKET = "gateway-test"


def upload_id() -> str:
    return layout.new_upload_id(datetime.now(UTC))


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    (tmp_path / "root").mkdir()
    return LocalStore(StorageRoot.parse(f"file://{tmp_path}/root"))


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_local_upload_appears_whole_on_commit(local: LocalStore) -> None:
    uid = upload_id()
    staging = local.stage("team-a", uid)
    first = staging.file("00-a.png", "image/png")
    first.write(b"one")
    first.write(b"two")
    first.finish()
    staging.file("01-b.wav", "audio/wav").finish()
    uploads = local.base / "team-a" / "_uploads"
    assert not (uploads / uid).exists()  # not before the commit
    staging.commit()
    assert files_under(uploads) == [uid, f"{uid}/00-a.png", f"{uid}/01-b.wav"]
    assert (uploads / uid / "00-a.png").read_bytes() == b"onetwo"
    assert oct((uploads / uid / "00-a.png").stat().st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_aborted_local_upload_leaves_nothing(local: LocalStore) -> None:
    staging = local.stage("team-a", upload_id())
    w = staging.file("00-a.png", "image/png")
    w.write(b"half")  # never finished
    staging.abort()
    assert files_under(local.base / "team-a" / "_uploads") == []


def test_links_in_the_lane_are_not_followed(local: LocalStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A stage pod of team-a can write anything in its lane, links included.
    (local.base / "team-a").mkdir()
    (local.base / "team-a" / "_uploads").symlink_to(elsewhere)
    with pytest.raises(StorageRefused):
        local.stage("team-a", upload_id())
    (local.base / "team-b").symlink_to(local.base / "team-a")
    with pytest.raises(StorageRefused):
        local.stage("team-b", upload_id())
    assert files_under(elsewhere) == []

    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not yours")
    job = local.base / "team-a" / "job" / "uid"
    job.mkdir(parents=True)
    (job / "output.mp4").symlink_to(secret)
    with pytest.raises(StorageRefused):
        local.open(f"{local.root.uri}/team-a/job/uid/output.mp4")
    (local.base / "team-a" / "linked").symlink_to(job)
    with pytest.raises(StorageRefused):
        local.open(f"{local.root.uri}/team-a/linked/output.mp4")


def test_a_fifo_where_the_output_should_be_is_refused_without_hanging(
        local: LocalStore) -> None:
    (local.base / "team-a").mkdir()
    os.mkfifo(local.base / "team-a" / "output.mp4")
    outcome: list[BaseException] = []

    def try_open() -> None:
        try:
            local.open(f"{local.root.uri}/team-a/output.mp4")
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=try_open, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive() and isinstance(outcome[0], StorageRefused)


def test_a_local_output_is_read_by_range(local: LocalStore) -> None:
    video = bytes(range(256)) * 40
    out = local.base / "team-a" / "job" / "uid"
    out.mkdir(parents=True)
    (out / "output.mp4").write_bytes(video)
    reader = local.open(f"{local.root.uri}/team-a/job/uid/output.mp4")
    try:
        assert reader.version.size == len(video)
        assert reader.read(100, 50) == video[100:150]
        assert reader.read(len(video) - 10, 50) == video[-10:]
        tag = reader.version.etag
    finally:
        reader.close()
    # A new version (the operator writes a new file and renames it) has another tag.
    (out / "new.mp4").write_bytes(video + b"x")
    (out / "new.mp4").replace(out / "output.mp4")
    again = local.open(f"{local.root.uri}/team-a/job/uid/output.mp4")
    again.close()
    assert again.version.etag != tag
    with pytest.raises(ObjectMissing):
        local.open(f"{local.root.uri}/team-a/job/uid/gone.mp4")
    with pytest.raises(ObjectMissing):
        local.open(f"{local.root.uri}/team-z/job/uid/output.mp4")


# --- gs:// on the emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running(BUCKET) as server:
        yield server


@pytest.fixture
def cloud(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> CloudStore:
    point_at(emulator, monkeypatch)
    # Small chunks, so that a file of a few hundred KiB goes up in several.
    return CloudStore(StorageRoot.parse(f"gs://{BUCKET}/videojob"), chunk_size=256 * 1024)


def objects(store: CloudStore, prefix: str) -> dict[str, bytes]:
    bucket = store.bucket
    return {b.name: bucket.blob(b.name).download_as_bytes()
            for b in store.bucket.client.list_blobs(BUCKET, prefix=prefix)}


def test_a_gcs_upload_is_objects_under_the_upload_folder(cloud: CloudStore) -> None:
    uid = upload_id()
    big = os.urandom(700 * 1024)  # three chunks and a bit
    staging = cloud.stage("team-a", uid)
    w = staging.file("00-a.png", "image/png")
    for i in range(0, len(big), 64 * 1024):
        w.write(big[i:i + 64 * 1024])
    w.finish()
    small = staging.file("01-b.wav", "audio/wav")
    small.write(b"RIFF....WAVE")
    small.finish()
    staging.commit()
    prefix = f"videojob/team-a/_uploads/{uid}/"
    assert objects(cloud, prefix) == {prefix + "00-a.png": big,
                                      prefix + "01-b.wav": b"RIFF....WAVE"}
    blob = cloud.bucket.get_blob(prefix + "00-a.png")
    assert blob is not None and blob.content_type == "image/png"


def test_an_aborted_gcs_upload_leaves_no_object(cloud: CloudStore) -> None:
    uid = upload_id()
    staging = cloud.stage("team-a", uid)
    done = staging.file("00-a.png", "image/png")
    done.write(b"finished")
    done.finish()
    half = staging.file("01-b.png", "image/png")
    half.write(os.urandom(600 * 1024))  # two chunks sent, the session open
    staging.abort()
    assert objects(cloud, f"videojob/team-a/_uploads/{uid}/") == {}


def test_a_gcs_output_is_read_by_range_of_one_generation(cloud: CloudStore) -> None:
    video = os.urandom(300_000)
    name = "videojob/team-a/job/uid/output.mp4"
    cloud.bucket.blob(name).upload_from_string(video, content_type="video/mp4")
    reader = cloud.open(f"gs://{BUCKET}/{name}")
    assert reader.version.size == len(video)
    assert reader.version.etag.startswith('"gs-')
    assert reader.version.modified is not None
    assert reader.read(0, 10) == video[:10]
    assert reader.read(123_456, 1000) == video[123_456:124_456]
    assert reader.read(len(video) - 5, 100) == video[-5:]
    reader.close()
    with pytest.raises(ObjectMissing):
        cloud.open(f"gs://{BUCKET}/videojob/team-a/job/uid/missing.mp4")
