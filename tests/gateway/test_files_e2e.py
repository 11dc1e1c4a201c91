"""Uploads and downloads through a real gateway process, against the real API server (callers'
reviews) and real storage: a file:// root on this machine, and gs:// on the GCS emulator.

The gateways here are the conftest's (its identity and RBAC, token and key modes) with a
storage root and small limits. The operator does not run: a Succeeded VideoJob is made by
writing its status subresource, as the operator does, with an MP4 the test wrote itself.
"""

from __future__ import annotations

import io
import os
import re
import struct
import uuid
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from videojob_gateway import layout
from videojob_operator import storage_policy
from videojob_testkit.gateway_process import GatewayProcess, GatewayWorld
from videojob_testkit.gcs import GcsEmulator
from videojob_testkit.processes import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
BUCKET = "gateway-e2e"
MAX_IMAGE, MAX_AUDIO = 64 * 1024, 256 * 1024


def png(width: int = 16, height: int = 16, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A real PNG (what a browser would send), made with the standard library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def wav(seconds: float = 0.25) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * int(8000 * seconds))
    return out.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (links as their target's name), to compare before and after."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = (b"-> " + os.readlink(p).encode()
                                             if p.is_symlink() else p.read_bytes())
    return out


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status and doc["detail"], doc
    return doc


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def start_gateway(world: GatewayWorld, log: Path, root: str) -> GatewayProcess:
    gateway = GatewayProcess(kubeconfig=world.gateway_kubeconfig, log=log, args=[
        "--auth-modes", "token,key", "--key-namespace", world.system, "--storage-root", root,
        "--upload-max-files", "6", "--upload-max-image-bytes", str(MAX_IMAGE),
        "--upload-max-audio-bytes", str(MAX_AUDIO), "--upload-max-total-bytes", str(1 << 20)])
    gateway.start()
    return gateway


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def gateway(world: GatewayWorld, storage: Path) -> Iterator[GatewayProcess]:
    gw = start_gateway(world, storage.parent / "files-gateway.log", f"file://{storage}")
    yield gw
    gw.stop()
    assert "Traceback" not in gw.log.read_text(), gw.log.read_text()[-5000:]


@pytest.fixture
def writer(world: GatewayWorld, gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with gateway.client(token=world.tokens["writer"]) as c:
        yield c


def upload(client: httpx.Client, namespace: str, files: list[tuple[str, tuple[str, bytes, str]]]
           ) -> httpx.Response:
    return client.post(f"/api/v1/namespaces/{namespace}/uploads", files=files)


def test_uploaded_images_and_audio_become_the_spec_of_a_videojob(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    red, blue, song = png(), png(rgb=(20, 20, 220)), wav()
    made = upload(writer, world.a, [("images", ("red.png", red, "image/png")),
                                    ("images", ("blue photo.png", blue, "image/png")),
                                    ("audio", ("song.wav", song, "audio/wav"))])
    assert made.status_code == 201, made.text
    doc = made.json()
    prefix = f"file://{storage}/{world.a}/_uploads/{doc['id']}/"
    assert doc["prefix"] == prefix and layout.valid_upload_id(doc["id"])
    assert doc["images"] == [prefix + "00-red.png", prefix + "01-blue_photo.png"]
    assert doc["audio"] == prefix + "02-song.wav"
    assert [(f["field"], f["contentType"], f["bytes"]) for f in doc["files"]] == [
        ("images[0]", "image/png", len(red)), ("images[1]", "image/png", len(blue)),
        ("audio", "audio/wav", len(song))]
    folder = storage / world.a / "_uploads" / doc["id"]
    assert tree(folder) == {"00-red.png": red, "01-blue_photo.png": blue, "02-song.wav": song}
    # The operator's own rule accepts them as inputs of a VideoJob in this namespace.
    assert storage_policy.problems(None, doc["images"], doc["audio"],
                                   storage_root=f"file://{storage}", namespace=world.a,
                                   read_prefixes={}, http=storage_policy.HttpInputs()) == []

    name = unique("slides")
    spec = {"images": doc["images"], "audio": doc["audio"], "scenes": 2,
            "durationSeconds": 2, "fps": 4, "resolution": "64x64"}
    created = writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                          json={"name": name, "spec": spec})
    assert created.status_code == 201, created.text
    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)
    assert (stored["spec"]["images"], stored["spec"]["audio"]) == (doc["images"], doc["audio"])


def test_names_that_try_to_leave_the_folder_stay_in_it(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    before = tree(storage)
    image = png()
    made = upload(writer, world.a, [
        ("images", (f"../../../{world.b}/_uploads/evil.png", image, "image/png")),
        ("images", ("/etc/cron.d/evil.png", image, "image/png")),
        ("images", ("..\\..\\evil.png", image, "image/png")),
        ("images", ("\uff0e\uff0e\uff0fevil\u0000.png", image, "image/png")),
        ("images", ("..", image, "image/png"))])
    assert made.status_code == 201, made.text
    doc = made.json()
    names = [uri.rsplit("/", 1)[1] for uri in doc["images"]]
    assert names[:3] == ["00-evil.png", "01-evil.png", "02-evil.png"]
    assert names[3].startswith("03-evil") and names[4] == "04-image.png"
    assert all(re.fullmatch(r"\d\d-[A-Za-z0-9][A-Za-z0-9._-]*\.png", n) for n in names)
    after = tree(storage)
    new = sorted(set(after) - set(before))
    assert new == [f"{world.a}/_uploads/{doc['id']}/{n}" for n in names]
    assert not (storage / world.b).exists()


def test_content_that_is_not_what_it_claims_is_415_and_nothing_is_kept(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    before = tree(storage)
    refused = problem(upload(writer, world.a, [
        ("images", ("fine.png", png(), "image/png")),
        ("images", ("x.png", b"I am a text file, whatever my name says.\n", "image/png"))]), 415)
    assert refused["type"].endswith("/unsupported-file-type")
    assert [e["field"] for e in refused["errors"]] == ["images[1]"]
    assert "x.png" in refused["detail"]
    wav_as_image = problem(upload(writer, world.a, [("images", ("a.png", wav(), "image/png"))]),
                           415)
    assert wav_as_image["errors"][0]["field"] == "images[0]"
    assert tree(storage) == before


def test_over_a_limit_is_413_naming_it_and_nothing_is_kept(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    before = tree(storage)
    big = png() + os.urandom(MAX_IMAGE)
    too_big = problem(upload(writer, world.a, [("images", ("ok.png", png(), "image/png")),
                                               ("audio", ("ok.wav", wav(), "audio/wav")),
                                               ("images", ("big.png", big, "image/png"))]), 413)
    assert too_big["type"].endswith("/file-too-large")
    assert too_big["limit"] == {"name": "upload-max-image-bytes", "value": MAX_IMAGE}
    assert [e["field"] for e in too_big["errors"]] == ["images[1]"]  # the second image
    many = problem(upload(writer, world.a, [("images", (f"{i}.png", png(), "image/png"))
                                            for i in range(7)]), 413)
    assert many["limit"] == {"name": "upload-max-files", "value": 6}
    assert tree(storage) == before  # no file, no partial folder


def test_only_callers_who_may_create_videojobs_there_upload_and_nothing_else_is_written(
        world: GatewayWorld, gateway: GatewayProcess, writer: httpx.Client,
        storage: Path) -> None:
    before = tree(storage)
    files = [("images", ("a.png", png(), "image/png"))]
    with gateway.client(token=world.tokens["reader"]) as reader:  # may read, not create
        assert "may not create" in problem(upload(reader, world.a, files), 403)["detail"]
    problem(upload(writer, world.b, files), 403)  # not the writer's namespace
    with gateway.client(api_key=world.api_key) as keyed:
        problem(upload(keyed, world.b, files), 403)  # the key acts in a only
        assert tree(storage) == before
        made = upload(keyed, world.a, files)  # its ServiceAccount may create there
        assert made.status_code == 201, made.text
    problem(httpx.post(f"{gateway.url}/api/v1/namespaces/{world.a}/uploads", files=files), 401)
    assert sorted(set(tree(storage)) - set(before)) == [
        f"{world.a}/_uploads/{made.json()['id']}/00-a.png"]
    # Not a form: refused before anything is written.
    problem(writer.post(f"/api/v1/namespaces/{world.a}/uploads", json={"images": []}), 415)


# --- downloads


def succeeded(world: GatewayWorld, namespace: str, name: str, output: str) -> None:
    world.admin.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": name},
        "spec": {"prompt": "a lighthouse", "durationSeconds": 2}})
    world.admin.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {
        "status": {"phase": "Succeeded", "progress": 100, "outputURI": output}})


def wait_phase(client: httpx.Client, namespace: str, name: str, phase: str) -> None:
    wait_until(lambda: client.get(f"/api/v1/namespaces/{namespace}/videojobs/{name}").json()
               .get("phase") == phase, 10, f"{name} to be {phase} in the cache")


def fake_mp4(size: int) -> bytes:
    head = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
    return head + os.urandom(size - len(head))


def test_a_succeeded_videojob_is_downloaded_whole_or_by_range(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    name = unique("done")
    video = fake_mp4(3 * 1024 * 1024 + 17)  # more than one piece of the stream
    path = storage / world.a / name / "uid-1" / "output.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(video)
    succeeded(world, world.a, name, f"file://{path}")
    wait_phase(writer, world.a, name, "Succeeded")
    url = f"/api/v1/namespaces/{world.a}/videojobs/{name}/download"

    whole = writer.get(url)
    assert whole.status_code == 200 and whole.content == video
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["content-length"] == str(len(video))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"].startswith('"') and whole.headers["last-modified"]
    etag = whole.headers["etag"]

    part = writer.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == video[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(video)}"
    assert part.headers["content-length"] == "1000"
    # What a <video> sends first, then to seek.
    start = writer.get(url, headers={"Range": "bytes=0-"})
    assert start.status_code == 206 and start.content == video
    seek = writer.get(url, headers={"Range": f"bytes={len(video) - 100}-"})
    assert seek.content == video[-100:]
    tail = writer.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, video[-10:])
    past = problem(writer.get(url, headers={"Range": f"bytes={len(video)}-"}), 416)
    assert past["type"].endswith("/range-not-satisfiable")
    assert writer.get(url, headers={"Range": f"bytes={len(video)}-"}).headers[
        "content-range"] == f"bytes */{len(video)}"
    several = writer.get(url, headers={"Range": "bytes=0-1,5-6"})  # served whole
    assert several.status_code == 200 and len(several.content) == len(video)
    # If-Range: the range only for the version the client has.
    assert writer.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
    stale = writer.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and len(stale.content) == len(video)
    head = writer.head(url, headers={"Range": "bytes=0-99"})
    assert (head.status_code, head.headers["content-length"], head.content) == (206, "100", b"")

    with httpx.Client(base_url=str(writer.base_url), timeout=10,
                      headers={"Authorization": f"Bearer {world.tokens['reader']}"}) as reader:
        assert reader.get(url, headers={"Range": "bytes=0-3"}).content == video[:4]


def test_a_download_before_success_or_outside_the_namespace_is_refused(
        world: GatewayWorld, writer: httpx.Client, storage: Path, tmp_path: Path) -> None:
    running = unique("running")
    world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": running},
        "spec": {"prompt": "x", "durationSeconds": 2}})
    world.admin.patch_namespaced_custom_object_status(GROUP, VERSION, world.a, PLURAL, running,
                                                      {"status": {"phase": "Running"}})
    wait_phase(writer, world.a, running, "Running")
    busy = problem(writer.get(f"/api/v1/namespaces/{world.a}/videojobs/{running}/download"),
                   409)
    assert busy["type"].endswith("/not-finished") and "Running" in busy["detail"]

    # Another namespace's file, a file outside the storage, a link out of the lane: whoever
    # may patch the status subresource can write any URI there.
    theirs = storage / world.b / "job" / "output.mp4"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(fake_mp4(1000))
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(fake_mp4(1000))
    link = storage / world.a / "linked" / "output.mp4"
    link.parent.mkdir(parents=True)
    link.symlink_to(theirs)
    for output in [f"file://{theirs}", f"file://{outside}",
                   f"file://{storage}/{world.a}/../{world.b}/job/output.mp4", f"file://{link}",
                   f"gs://bucket/{world.a}/output.mp4"]:
        name = unique("forged")
        succeeded(world, world.a, name, output)
        wait_phase(writer, world.a, name, "Succeeded")
        refused = problem(writer.get(f"/api/v1/namespaces/{world.a}/videojobs/{name}/download"),
                          403)
        assert refused["type"].endswith("/output-outside-namespace"), (output, refused)

    gone = unique("gone")
    succeeded(world, world.a, gone, f"file://{storage}/{world.a}/{gone}/output.mp4")
    wait_phase(writer, world.a, gone, "Succeeded")
    problem(writer.get(f"/api/v1/namespaces/{world.a}/videojobs/{gone}/download"), 404)
    problem(writer.get(f"/api/v1/namespaces/{world.a}/videojobs/no-such/download"), 404)
    problem(writer.get(f"/api/v1/namespaces/{world.b}/videojobs/{gone}/download"), 403)


# --- gs:// (the GCS emulator)


@pytest.fixture(scope="module")
def gcs(world: GatewayWorld, storage: Path) -> Iterator[tuple[GatewayProcess, str]]:
    emulator = GcsEmulator(BUCKET)
    emulator.start()
    gw = None
    try:
        with pytest.MonkeyPatch.context() as env:  # the gateway process inherits it
            env.setenv("STORAGE_EMULATOR_HOST", emulator.host)
            env.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            gw = start_gateway(world, storage.parent / "gcs-gateway.log",
                               f"gs://{BUCKET}/videojob")
            yield gw, emulator.host
    finally:
        if gw is not None:
            gw.stop()
            assert "Traceback" not in gw.log.read_text(), gw.log.read_text()[-5000:]
        emulator.stop()


def test_uploads_and_downloads_on_gcs(world: GatewayWorld, gcs: tuple[GatewayProcess, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud import storage as gcs_client

    gateway, host = gcs
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    bucket = gcs_client.Client(project=None).bucket(BUCKET)
    image, song = png(), wav()
    with gateway.client(token=world.tokens["writer"]) as writer:
        made = upload(writer, world.a, [("images", ("../a.png", image, "image/png")),
                                        ("audio", ("b.wav", song, "audio/wav"))])
        assert made.status_code == 201, made.text
        doc = made.json()
        prefix = f"gs://{BUCKET}/videojob/{world.a}/_uploads/{doc['id']}/"
        assert (doc["images"], doc["audio"]) == ([prefix + "00-a.png"], prefix + "01-b.wav")
        assert storage_policy.problems(None, doc["images"], doc["audio"],
                                       storage_root=f"gs://{BUCKET}/videojob", namespace=world.a,
                                       read_prefixes={}, http=storage_policy.HttpInputs()) == []
        stored = {b.name: b for b in bucket.client.list_blobs(
            BUCKET, prefix=f"videojob/{world.a}/_uploads/{doc['id']}/")}
        assert {n.rsplit("/", 1)[1]: (b.content_type, b.size) for n, b in stored.items()} == {
            "00-a.png": ("image/png", len(image)), "01-b.wav": ("audio/wav", len(song))}
        assert bucket.blob(f"videojob/{world.a}/_uploads/{doc['id']}/00-a.png") \
            .download_as_bytes() == image

        before = {b.name for b in bucket.client.list_blobs(BUCKET)}
        problem(upload(writer, world.a, [("images", ("ok.png", image, "image/png")),
                                         ("images", ("big.png", image + os.urandom(MAX_IMAGE),
                                                     "image/png"))]), 413)
        assert {b.name for b in bucket.client.list_blobs(BUCKET)} == before

        name = unique("gcs-done")
        video = fake_mp4(2 * 1024 * 1024 + 5)
        key = f"videojob/{world.a}/{name}/uid/output.mp4"
        bucket.blob(key).upload_from_string(video, content_type="video/mp4")
        succeeded(world, world.a, name, f"gs://{BUCKET}/{key}")
        wait_phase(writer, world.a, name, "Succeeded")
        url = f"/api/v1/namespaces/{world.a}/videojobs/{name}/download"
        whole = writer.get(url)
        assert whole.status_code == 200 and whole.content == video
        part = writer.get(url, headers={"Range": "bytes=1048570-1048589"})
        assert part.status_code == 206 and part.content == video[1048570:1048590]
        assert part.headers["content-range"] == f"bytes 1048570-1048589/{len(video)}"


def test_a_body_declared_over_the_total_limit_is_413_before_it_is_read(
        world: GatewayWorld, writer: httpx.Client, storage: Path) -> None:
    before = tree(storage)
    huge = png() + os.urandom(3 << 20)  # over --upload-max-total-bytes (1 MiB)
    refused = problem(upload(writer, world.a, [("audio", ("a.wav", huge, "audio/wav"))]), 413)
    assert refused["limit"] == {"name": "upload-max-total-bytes", "value": 1 << 20}
    assert tree(storage) == before
