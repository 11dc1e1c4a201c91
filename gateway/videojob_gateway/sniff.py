"""What a file is, by its first bytes (magic numbers), never by its name or declared type: the
kinds of image and audio an upload may hold. Pure.

The kinds are those the worker reads: images through OpenCV's decoder (PNG, JPEG, WebP;
videojob_worker.inputs.decode_image), audio through ffmpeg (WAV, MP3, Ogg, FLAC, M4A/AAC in an
MP4 container; videojob_worker.inputs.fetch_audio). A match here says the file starts as such a
file does; the worker still decodes it all, and refuses a truncated or corrupt one by name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

Category = Literal["image", "audio"]
# Enough for every signature below; an ISO BMFF `ftyp` box lists its brands within this.
HEAD_BYTES = 64


@dataclass(frozen=True)
class Kind:
    name: str  # as a person says it: PNG, MP3
    media_type: str
    extension: str  # the one the stored file gets
    category: Category


PNG = Kind("PNG", "image/png", "png", "image")
JPEG = Kind("JPEG", "image/jpeg", "jpg", "image")
WEBP = Kind("WebP", "image/webp", "webp", "image")
WAV = Kind("WAV", "audio/wav", "wav", "audio")
MP3 = Kind("MP3", "audio/mpeg", "mp3", "audio")
OGG = Kind("Ogg", "audio/ogg", "ogg", "audio")
FLAC = Kind("FLAC", "audio/flac", "flac", "audio")
M4A = Kind("M4A", "audio/mp4", "m4a", "audio")
KINDS = (PNG, JPEG, WEBP, WAV, MP3, OGG, FLAC, M4A)

# ISO BMFF brands of audio in an MP4 container: iTunes' and ffmpeg's `M4A `, audiobooks' `M4B `,
# and the generic brands phones' recorders write into .m4a files (a video file with those brands
# passes too; the worker uses its first audio stream, and refuses one that has none).
_M4A_BRANDS = {b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"iso2"}


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 Layer III frame header (an MP3 without an ID3 tag)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11  # 01 is reserved
    layer = (head[1] >> 1) & 0b11  # 01 is Layer III; 00 (reserved) is how ADTS AAC starts
    bitrate = head[2] >> 4  # 1111 is invalid
    rate = (head[2] >> 2) & 0b11  # 11 is reserved
    return version != 0b01 and layer == 0b01 and bitrate != 0b1111 and rate != 0b11


def _m4a(head: bytes) -> bool:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    (size,) = struct.unpack(">I", head[:4])
    box = head[8:min(max(size, 16), len(head))]
    # major brand, minor version, then compatible brands, 4 bytes each
    brands = [box[0:4], *(box[i:i + 4] for i in range(8, len(box) - 3, 4))]
    return any(b in _M4A_BRANDS for b in brands)


def sniff(head: bytes) -> Kind | None:
    """The kind of file that starts with `head` (its first HEAD_BYTES bytes, or all of a shorter
    file), or None if it is none of KINDS."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if (head.startswith(b"ID3") and len(head) >= 10) or _mpeg_audio_frame(head):
        # An ID3v2 tag starts most MP3 files; what follows it is checked by the worker.
        return MP3
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(b"fLaC"):
        return FLAC
    if _m4a(head):
        return M4A
    return None


def describe(head: bytes) -> str:
    """A few words on what a refused file looks like, for the error's detail."""
    if not head:
        return "it is empty"
    if head[:4] == b"%PDF":
        return "it is a PDF"
    if head[:4] == b"GIF8":
        return "it is a GIF"
    if head[:2] == b"PK":
        return "it is a ZIP archive"
    if head[4:8] == b"ftyp":
        return f"it is an ISO media file of brand {head[8:12].decode('latin-1')!r}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # Cut within a character at the end of `head` is still text.
        text = head[:e.start].decode("utf-8") if e.start >= len(head) - 3 and e.start else ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "it looks like text"
    return "its first bytes are none of these"
