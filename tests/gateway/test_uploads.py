"""An upload without storage: names made safe, the form read as it arrives, each file checked
by its content and its size, and what a refusal leaves (nothing), through a fake Staging."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from videojob_gateway import files, sniff, uploads
from videojob_gateway.config import load
from videojob_gateway.problems import Problem
from videojob_gateway.uploads import Form, LimitExceeded, Limits, safe_name

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 2000
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 3000
LIMITS = Limits(max_files=4, max_image_bytes=4096, max_audio_bytes=8192,
                max_total_bytes=64 * 1024)
PREFIX = "file:///data/team-a/_uploads/20261206-111915-3f9c2a1b7d4e5f60/"
BOUNDARY = "----vjboundary7MA4YWxkTrZu0gW"


@pytest.mark.parametrize(("sent", "safe"), [
    ("cat.png", "cat"),
    ("holiday photo (1).JPG", "holiday_photo_1"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win"),
    ("/etc/shadow.png", "shadow"),
    ("C:\\Users\\me\\Pictures\\dog.webp", "dog"),
    ("a\x00b.png", "a_b"),  # NUL
    # Fullwidth dots and solidi: NFKC folds them to "../../".
    ("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fsecret.png", "secret"),
    ("a\u2215b.png", "a_b"),  # a division slash is not a separator, and not kept
    ("café.png", "cafe"),
    ("写真.jpg", "image"),  # nothing of it is ASCII
    ("\u202egnp.exe", "gnp"),  # a right-to-left override
    ("x.png\r\nX-Evil: 1", "x"),  # a header smuggled in the name
    (".bashrc", "bashrc"),
    ("...", "image"),
    ("..", "image"),
    ("", "image"),
    (None, "image"),
    ("archive.tar.gz", "archive.tar"),
    ("a...b.png", "a.b"),
    ("-rf.png", "rf"),
    ("a" * 300 + ".png", "a" * uploads.STEM_MAX),
    ("%2e%2e%2fx.png", "2e_2e_2fx"),
])
def test_a_client_name_becomes_a_plain_file_name(sent: str | None, safe: str) -> None:
    assert safe_name(sent, "image") == safe


@pytest.mark.parametrize("sent", ["../x", "..", "/", "\\", "a/../../b", "\x00", "~/.ssh/id",
                                  "\uff58\uff0e\uff50\uff4e\uff47", "\ufeff.png", "..\u0338/x",
                                  "a\tb", "🙂.png"])
def test_every_safe_name_is_one_plain_segment(sent: str) -> None:
    name = uploads.stored_name(3, sent, sniff.PNG)
    assert re.fullmatch(r"03-[A-Za-z0-9][A-Za-z0-9._-]*\.png", name), name
    assert ".." not in name and "/" not in name


def part(field: str, filename: str | None, data: bytes,
         content_type: str = "application/octet-stream") -> bytes:
    disposition = f'form-data; name="{field}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def events(body: bytes, size: int) -> list[uploads.Event]:
    f = Form(BOUNDARY.encode())
    out = []
    for i in range(0, len(body), size):
        out += f.feed(body[i:i + size])
    f.close()
    return out


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_the_form_is_read_as_it_arrives(size: int) -> None:
    body = form(part("images", "a.png", PNG), part("audio", "名前.wav", WAV))
    seen = events(body, size)
    starts = [e for e in seen if isinstance(e, uploads.PartStart)]
    assert starts == [uploads.PartStart("images", "a.png"), uploads.PartStart("audio", "名前.wav")]
    data = b"".join(e.data for e in seen if isinstance(e, uploads.PartData))
    assert data == PNG + WAV
    assert sum(isinstance(e, uploads.PartEnd) for e in seen) == 2


def test_the_content_type_must_be_multipart_with_a_boundary() -> None:
    assert uploads.boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY.encode()
    assert uploads.boundary_of(f'Multipart/Form-Data; boundary="{BOUNDARY}"') == \
        BOUNDARY.encode()
    for wrong in [None, "application/json", "image/png", "multipart/mixed; boundary=x"]:
        with pytest.raises(Problem) as caught:
            uploads.boundary_of(wrong)
        assert caught.value.status == 415
    for no_boundary in ["multipart/form-data", "multipart/form-data; boundary=",
                        "multipart/form-data; boundary=" + "x" * 71]:
        with pytest.raises(Problem) as caught:
            uploads.boundary_of(no_boundary)
        assert (caught.value.status, caught.value.slug) == (400, "malformed-form")


@pytest.mark.parametrize("body", [
    form(part("images", "a.png", PNG))[:-10],  # cut short: no closing boundary
    b"no boundary at all",
    (f"--{BOUNDARY}\r\nContent-Type: image/png\r\n\r\n").encode() + PNG,  # no disposition
    (f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=x\r\n\r\n").encode(),
    (f"--{BOUNDARY}\r\nX-Big: " + "y" * 20_000 + "\r\n\r\n").encode(),
])
def test_a_malformed_form_is_400(body: bytes) -> None:
    with pytest.raises(Problem) as caught:
        events(body, 1000)
    assert (caught.value.status, caught.value.slug) == (400, "malformed-form")


# --- receiving into a fake staging


@dataclass
class FakeWriter:
    name: str
    chunks: list[bytes] = field(default_factory=list)
    finished: bool = False

    def write(self, data: bytes) -> None:
        assert not self.finished
        self.chunks.append(data)

    def finish(self) -> None:
        self.finished = True


@dataclass
class FakeStaging:
    writers: dict[str, FakeWriter] = field(default_factory=dict)
    committed: bool = False
    aborted: bool = False

    def file(self, name: str, media_type: str) -> FakeWriter:
        assert name not in self.writers
        self.writers[name] = FakeWriter(name)
        return self.writers[name]

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        self.aborted = True
        self.writers.clear()

    def stored(self) -> dict[str, bytes]:
        return {n: b"".join(w.chunks) for n, w in self.writers.items()}


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class Body:
    """A request body in pieces, remembering how much of it was read."""

    def __init__(self, data: bytes, piece: int = 65536) -> None:
        self.pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for p in self.pieces:
            self.read += 1
            yield p


def receive(body: bytes, limits: Limits = LIMITS, piece: int = 65536
            ) -> tuple[list[uploads.UploadedFile], FakeStaging, Body]:
    staging, chunks = FakeStaging(), Body(body, piece)
    got = asyncio.run(uploads.receive(aiter(chunks), Form(BOUNDARY.encode()), limits, staging,
                                      PREFIX, run=inline))
    return got, staging, chunks


def refused(body: bytes, limits: Limits = LIMITS, piece: int = 65536
            ) -> tuple[Problem, FakeStaging, Body]:
    staging, chunks = FakeStaging(), Body(body, piece)
    with pytest.raises(Problem) as caught:
        asyncio.run(uploads.receive(aiter(chunks), Form(BOUNDARY.encode()), limits, staging,
                                    PREFIX, run=inline))
    assert staging.aborted and not staging.committed and staging.writers == {}
    return caught.value, staging, chunks


def test_files_are_stored_under_safe_names_with_the_extension_of_their_content() -> None:
    got, staging, _ = receive(form(part("images", "../../a.png", PNG),
                                   part("images", "b.png", JPEG, "image/png"),  # a JPEG
                                   part("audio", "song", WAV)))
    assert staging.committed and not staging.aborted
    assert staging.stored() == {"00-a.png": PNG, "01-b.jpg": JPEG, "02-song.wav": WAV}
    assert all(w.finished for w in staging.writers.values())
    assert [(f.field, f.filename, f.uri, f.contentType, f.bytes) for f in got] == [
        ("images[0]", "../../a.png", PREFIX + "00-a.png", "image/png", len(PNG)),
        ("images[1]", "b.png", PREFIX + "01-b.jpg", "image/jpeg", len(JPEG)),
        ("audio", "song", PREFIX + "02-song.wav", "audio/wav", len(WAV))]
    assert got[0].sha256 == hashlib.sha256(PNG).hexdigest()


def test_a_file_is_written_in_batches_never_held_whole() -> None:
    big = Limits(max_files=4, max_image_bytes=8 << 20, max_audio_bytes=8 << 20,
                 max_total_bytes=16 << 20)
    image = PNG + bytes(5 << 20)
    got, staging, _ = receive(form(part("images", "big.png", image)), big, piece=65536)
    writes = staging.writers["00-big.png"].chunks
    assert b"".join(writes) == image and got[0].bytes == len(image)
    assert len(writes) >= 5 and max(map(len, writes)) < uploads.WRITE_BATCH + 65536


def test_a_file_whose_content_is_not_what_its_field_takes_is_415() -> None:
    text = b"just some text, named like a picture\n" * 10
    problem, _, _ = refused(form(part("images", "ok.png", PNG),
                                 part("images", "x.png", text, "image/png")))
    assert (problem.status, problem.slug) == (415, "unsupported-file-type")
    assert [e.field for e in problem.errors] == ["images[1]"]
    assert "x.png" in problem.detail and "text" in problem.detail
    # A real WAV is still not an image, nor a PNG an audio track.
    assert refused(form(part("images", "a.wav", WAV)))[0].errors[0].field == "images[0]"
    assert refused(form(part("audio", "a.png", PNG)))[0].errors[0].field == "audio"
    # Nor is an empty file anything, nor a short one.
    assert "empty" in refused(form(part("images", "e.png", b"")))[0].detail
    assert refused(form(part("images", "s.png", b"\x89PNG")))[0].status == 415


def test_a_file_over_its_limit_is_413_naming_the_limit_and_nothing_is_kept() -> None:
    problem, _, body = refused(form(part("images", "a.png", PNG),
                                    part("images", "b.png", PNG + bytes(4096))), piece=512)
    assert isinstance(problem, LimitExceeded)
    assert (problem.status, problem.slug) == (413, "file-too-large")
    assert problem.document()["limit"] == {"name": "upload-max-image-bytes", "value": 4096}
    assert "--upload-max-image-bytes is 4096" in problem.detail
    assert [e.field for e in problem.errors] == ["images[1]"]
    assert body.read == len(body.pieces)  # the rest was read, so the client hears the 413
    audio = refused(form(part("audio", "a.wav", WAV + bytes(8192))))[0]
    assert isinstance(audio, LimitExceeded) and audio.limit_name == "upload-max-audio-bytes"


def test_too_many_files_and_too_large_a_body_are_413() -> None:
    problem, _, _ = refused(form(*(part("images", f"{i}.png", PNG) for i in range(5))))
    assert isinstance(problem, LimitExceeded)
    assert (problem.slug, problem.limit_name, problem.limit_value) == (
        "too-many-files", "upload-max-files", 4)
    small_total = Limits(max_files=64, max_image_bytes=4096, max_audio_bytes=8192,
                         max_total_bytes=10_000)
    problem, _, body = refused(form(*(part("images", f"{i}.png", PNG) for i in range(12))),
                               small_total, piece=1000)
    assert isinstance(problem, LimitExceeded)
    assert (problem.slug, problem.limit_name) == ("body-too-large", "upload-max-total-bytes")
    assert body.read < len(body.pieces)  # past the total, nothing more is read
    with pytest.raises(LimitExceeded):
        uploads.check_declared_length("10001", small_total)
    uploads.check_declared_length("10000", small_total)
    uploads.check_declared_length(None, small_total)
    with pytest.raises(Problem) as caught:
        uploads.check_declared_length("ten", small_total)
    assert caught.value.status == 400


def test_fields_other_than_images_and_one_audio_are_422() -> None:
    unknown, _, _ = refused(form(part("images", "a.png", PNG), part("video", "v.mp4", PNG)))
    assert (unknown.status, [e.field for e in unknown.errors]) == (422, ["video"])
    twice, _, _ = refused(form(part("audio", "a.wav", WAV), part("audio", "b.wav", WAV)))
    assert (twice.status, [e.field for e in twice.errors]) == (422, ["audio"])
    empty, _, _ = refused(form())
    assert empty.status == 422


def test_a_failing_storage_leaves_nothing_and_the_failure_goes_up() -> None:
    class Broken(FakeStaging):
        def file(self, name: str, media_type: str) -> FakeWriter:
            if self.writers:
                raise OSError("disk full")
            return super().file(name, media_type)

    staging = Broken()
    with pytest.raises(OSError):
        asyncio.run(uploads.receive(aiter(Body(form(part("images", "a.png", PNG),
                                                     part("images", "b.png", PNG)))),
                                    Form(BOUNDARY.encode()), LIMITS, staging, PREFIX,
                                    run=inline))
    assert staging.aborted and not staging.committed and staging.writers == {}


def test_a_client_that_goes_away_leaves_nothing() -> None:
    class Gone(Exception):
        pass

    async def chunks() -> AsyncIterator[bytes]:
        yield form(part("images", "a.png", PNG))[:-200]
        raise Gone  # as Starlette's ClientDisconnect

    staging = FakeStaging()
    with pytest.raises(Gone):
        asyncio.run(uploads.receive(chunks(), Form(BOUNDARY.encode()), LIMITS, staging, PREFIX,
                                    run=inline))
    assert staging.aborted and not staging.committed


def test_the_limits_and_the_storage_root_come_from_the_settings() -> None:
    defaults = load([], {"KUBECONFIG": "/k"})
    assert defaults.storage_root is None
    assert files.limits(defaults) == Limits(max_files=64, max_image_bytes=20 << 20,
                                            max_audio_bytes=200 << 20, max_total_bytes=512 << 20)
    s = load(["--storage-root", "gs://videos/videojob/", "--upload-max-files", "8"],
             {"KUBECONFIG": "/k", "VIDEOJOB_GATEWAY_UPLOAD_MAX_IMAGE_BYTES": "1048576",
              "VIDEOJOB_GATEWAY_UPLOAD_MAX_AUDIO_BYTES": "2097152",
              "VIDEOJOB_GATEWAY_UPLOAD_MAX_TOTAL_BYTES": "4194304"})
    assert s.storage_root == "gs://videos/videojob"
    assert files.limits(s) == Limits(8, 1 << 20, 2 << 20, 4 << 20)
    for bad in [["--storage-root", "s3://b/p"], ["--storage-root", "file:///a/../b"],
                ["--upload-max-image-bytes", str(65 << 20)],  # over what the worker reads
                ["--upload-max-audio-bytes", str(257 << 20)], ["--upload-max-files", "0"]]:
        with pytest.raises(ValidationError):
            load(bad, {"KUBECONFIG": "/k"})
