"""What a file is, by its first bytes: real files made by OpenCV and ffmpeg (what the worker
reads with), hand-made headers, and what must not pass for an image or an audio track."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from videojob_gateway import sniff
from videojob_gateway.sniff import FLAC, JPEG, M4A, MP3, OGG, PNG, WAV, WEBP


@pytest.mark.parametrize(("extension", "kind"), [(".png", PNG), (".jpg", JPEG), (".webp", WEBP)])
def test_images_made_by_the_workers_decoder_are_recognised(extension: str,
                                                           kind: sniff.Kind) -> None:
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    ok, encoded = cv2.imencode(extension, np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = encoded.tobytes()
    assert sniff.sniff(data[:sniff.HEAD_BYTES]) == kind
    # And what the worker's decoder makes of it: an image.
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


@pytest.mark.parametrize(("extension", "args", "kind"), [
    ("wav", [], WAV),
    ("mp3", [], MP3),  # ffmpeg writes an ID3v2 tag first
    ("mp3", ["-id3v2_version", "0"], MP3),  # a bare frame header
    ("ogg", [], OGG),
    ("opus", [], OGG),
    ("flac", [], FLAC),
    ("m4a", [], M4A),
])
def test_audio_made_by_ffmpeg_is_recognised(tmp_path: Path, extension: str, args: list[str],
                                            kind: sniff.Kind) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg")
    out = tmp_path / f"a.{extension}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=0.2", *args, str(out)], check=True)
    assert sniff.sniff(out.read_bytes()[:sniff.HEAD_BYTES]) == kind


def riff(form: bytes) -> bytes:
    return b"RIFF\x24\x00\x00\x00" + form + b"\x00" * 20


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(("head", "kind"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", PNG),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", JPEG),
    (b"\xff\xd8\xff\xe1\x00\x10Exif\x00", JPEG),  # a phone's photo
    (riff(b"WEBPVP8 "), WEBP),
    (riff(b"WAVEfmt "), WAV),
    (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", MP3),
    (b"\xff\xfb\x90\x64" + b"\x00" * 20, MP3),  # MPEG-1 Layer III
    (b"\xff\xf3\x40\xc4" + b"\x00" * 20, MP3),  # MPEG-2 Layer III
    (b"OggS\x00\x02" + b"\x00" * 20, OGG),
    (b"fLaC\x00\x00\x00\x22", FLAC),
    (ftyp(b"M4A ", b"M4A ", b"isom"), M4A),
    (ftyp(b"mp42", b"isom", b"mp42"), M4A),  # a phone recorder's .m4a
    (ftyp(b"XXXX", b"M4B "), M4A),  # a compatible brand is enough
])
def test_signatures(head: bytes, kind: sniff.Kind) -> None:
    assert sniff.sniff(head) == kind


@pytest.mark.parametrize(("head", "described"), [
    (b"", "empty"),
    (b"hello, this is not a picture\n", "text"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "text"),  # OpenCV reads no SVG
    (b"GIF89a\x10\x00\x10\x00", "GIF"),  # nor GIF
    (b"%PDF-1.7\n", "PDF"),
    (b"PK\x03\x04\x14\x00", "ZIP"),
    (b"\x89PNG\r\n", "none"),  # a PNG signature cut short
    (b"\xff\xd8", "none"),
    (riff(b"AVI "), "none"),  # RIFF, but a video
    (b"\xff\xf1\x50\x40\x21\x3f\xfc", "none"),  # ADTS AAC: sync, but layer 00, not MP3
    (b"\xff\xfb\xf0\x64", "none"),  # bitrate index 1111: no MPEG frame
    (b"\xff\xe9\x90\x64", "none"),  # version 01 is reserved
    (ftyp(b"qt  ", b"qt  "), "ISO"),  # QuickTime video
    (b"ID3", "text"),  # a tag of nothing
    (b"\x00\x00\x00\x00ftyp", "ISO"),
    (b"\x7fELF\x02\x01\x01", "none"),
])
def test_what_is_none_of_them(head: bytes, described: str) -> None:
    assert sniff.sniff(head) is None
    assert described in sniff.describe(head)
