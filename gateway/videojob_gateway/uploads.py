"""An upload: a multipart/form-data request of images and audio → files under the namespace's
`_uploads/<id>/`, each checked by its content, within the limits, all or nothing.

Pure but for the `Staging` it writes through (storage.py gives one per backend; the tests a fake):
the form's parts are read as they arrive (`Form`, over python-multipart's streaming parser),
each file's first bytes decide what it is (sniff.py) before anything of it is written, its bytes
are counted against the limits as they come, and they are handed on in batches, so no file is
held in memory whole. Anything refused removes what the request wrote.

Stored names are `<index>-<name>.<ext>`: the part's position in the form (so two files of one
name never meet), the client's file name made safe (`safe_name`), and the extension of what the
content is, whatever the name said.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, Field
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from . import problems, sniff
from .problems import FieldError, Problem

T = TypeVar("T")
# How a blocking storage call is made from the event loop: asyncio.to_thread.
Runner = Callable[..., Awaitable[Any]]
log = logging.getLogger(__name__)

# The form's fields: each names where its files go in a VideoJob's spec.
FIELDS: dict[str, sniff.Category] = {"images": "image", "audio": "audio"}
WRITE_BATCH = 1024 * 1024  # bytes handed to storage at a time
STEM_MAX = 64  # characters of the client's name kept
HEADER_BYTES_MAX = 16 * 1024  # of one part's headers


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_image_bytes: int
    max_audio_bytes: int
    max_total_bytes: int  # the whole request body, as sent

    def per_file(self, category: sniff.Category) -> tuple[int, str]:
        """The most bytes one file of `category` may have, and the setting that says so."""
        if category == "image":
            return self.max_image_bytes, "upload-max-image-bytes"
        return self.max_audio_bytes, "upload-max-audio-bytes"


# --- the API's documents


class UploadedFile(BaseModel):
    field: str = Field(description="`images[i]` or `audio`: where it goes in the spec.")
    filename: str | None = Field(description="The name the client sent.")
    uri: str
    contentType: str = Field(description="What its content is (not what the client said).")
    bytes: int
    sha256: str


class Upload(BaseModel):
    """What an upload answers (201): put `images` in `spec.images` and `audio` in `spec.audio`."""

    namespace: str
    id: str
    prefix: str = Field(description="Where the files are (the upload's folder).")
    images: list[str]
    audio: str | None = None
    files: list[UploadedFile]


# --- limits and refusals


@dataclass
class LimitExceeded(Problem):
    """413, naming the limit (its setting and value) in `limit`."""

    limit_name: str = ""
    limit_value: int = 0

    def document(self, instance: str | None = None) -> dict[str, object]:
        doc = super().document(instance)
        doc["limit"] = {"name": self.limit_name, "value": self.limit_value}
        return doc


def too_large(slug: str, title: str, detail: str, name: str, value: int,
              errors: list[FieldError] | None = None) -> LimitExceeded:
    return LimitExceeded(413, slug, title, f"{detail} (--{name} is {value})", errors or [],
                         limit_name=name, limit_value=value)


def body_too_large(limits: Limits) -> LimitExceeded:
    return too_large("body-too-large", "Request body too large",
                     f"the upload is larger than {limits.max_total_bytes} bytes",
                     "upload-max-total-bytes", limits.max_total_bytes)


def check_declared_length(content_length: str | None, limits: Limits) -> None:
    """413 at once for a body that says it is over the limit (nothing of it is read)."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise problems.bad_request("malformed-request", "Malformed request",
                                   "Content-Length is not a number") from None
    if declared > limits.max_total_bytes:
        raise body_too_large(limits)


def unsupported_file(label: str, filename: str | None, category: sniff.Category,
                     head: bytes) -> Problem:
    kinds = "/".join(k.name for k in sniff.KINDS if k.category == category)
    what = f"{label} ({filename})" if filename else label
    detail = f"{what} is not an {category} file the worker reads ({kinds}): " \
             f"{sniff.describe(head)}"
    return Problem(415, "unsupported-file-type", "Unsupported file type", detail,
                   [FieldError(label, f"not {kinds}: {sniff.describe(head)}")])


def malformed_form(detail: str) -> Problem:
    return problems.bad_request("malformed-form", "Malformed form", detail)


# --- names


def safe_name(filename: str | None, fallback: str) -> str:
    """The client's file name as a plain ASCII name without its extension: letters, digits, '.',
    '-' and '_', never a path (only what follows the last '/' or '\\'), never hidden or '..',
    at most STEM_MAX characters. Unicode is folded first (NFKC: a fullwidth solidus is a '/'), and
    accents dropped (é → e); anything else becomes '_'."""
    name = unicodedata.normalize("NFKC", filename or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in unicodedata.normalize("NFKD", name)
                   if not unicodedata.combining(c))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    stem, dot, _ = name.rpartition(".")
    if dot and stem:
        name = stem  # the extension is the content's, not the name's
    name = re.sub(r"\.{2,}", ".", re.sub(r"_{2,}", "_", name)).strip("._-")
    return name[:STEM_MAX].rstrip("._-") or fallback


def stored_name(index: int, filename: str | None, kind: sniff.Kind) -> str:
    return f"{index:02d}-{safe_name(filename, kind.category)}.{kind.extension}"


# --- reading the form


@dataclass(frozen=True)
class PartStart:
    field: str
    filename: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data body; 415 for another media type."""
    media, params = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        shown = media.decode("latin-1") or "none"
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send the files as Content-Type: multipart/form-data (got {shown})")
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 70:  # RFC 2046 §5.1.1
        raise malformed_form("the Content-Type has no valid multipart boundary")
    return boundary


class Form:
    """A multipart/form-data body, fed as it arrives, as PartStart, PartData... PartEnd events."""

    def __init__(self, boundary: bytes) -> None:
        self._events: list[Event] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = bytearray()
        self._value = bytearray()
        self._header_bytes = 0
        self.ended = False

        def data(target: bytearray) -> Callable[[bytes, int, int], None]:
            def on(chunk: bytes, start: int, end: int) -> None:
                self._header_bytes += end - start
                if self._header_bytes > HEADER_BYTES_MAX:
                    raise malformed_form(f"a part's headers are over {HEADER_BYTES_MAX} bytes")
                target.extend(chunk[start:end])
            return on

        def header_end() -> None:
            self._headers.append((bytes(self._name).strip().lower(), bytes(self._value).strip()))
            self._name.clear()
            self._value.clear()

        def part_begin() -> None:
            self._headers.clear()
            self._header_bytes = 0

        def part_data(chunk: bytes, start: int, end: int) -> None:
            if end > start:
                self._events.append(PartData(bytes(chunk[start:end])))

        def end() -> None:
            self.ended = True

        self._parser = MultipartParser(boundary, {
            "on_part_begin": part_begin,
            "on_header_field": data(self._name),
            "on_header_value": data(self._value),
            "on_header_end": header_end,
            "on_headers_finished": lambda: self._events.append(self._start()),
            "on_part_data": part_data,
            "on_part_end": lambda: self._events.append(PartEnd()),
            "on_end": end,
        })

    def _start(self) -> PartStart:
        disposition = dict(self._headers).get(b"content-disposition")
        # Decoded as the bytes they are: browsers send UTF-8 names unescaped (RFC 7578 §4.2).
        kind, params = parse_options_header(disposition.decode("latin-1") if disposition else "")
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise malformed_form("each part needs Content-Disposition: form-data; name=…")
        filename = params.get(b"filename")
        return PartStart(name.decode("utf-8", "replace"),
                         filename.decode("utf-8", "replace") if filename is not None else None)

    def feed(self, chunk: bytes) -> list[Event]:
        try:
            self._parser.write(chunk)
        except FormParserError as e:
            raise malformed_form(f"the multipart body does not parse: {e}") from None
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        if not self.ended:
            raise malformed_form("the multipart body ends before its closing boundary")


# --- writing


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class Staging(Protocol):
    """One upload being written (storage.py): files appear under their final names on commit
    (or were written so that abort removes them), and abort leaves nothing."""

    def file(self, name: str, media_type: str) -> Writer: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


@dataclass
class _Part:
    index: int
    label: str
    category: sniff.Category
    filename: str | None
    head: bytearray = field(default_factory=bytearray)
    kind: sniff.Kind | None = None
    writer: Writer | None = None
    pending: bytearray = field(default_factory=bytearray)
    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    name: str = ""


class Receiver:
    """Drives one upload: events from the form → checks → writes through `staging`. Blocking
    storage calls go through `run` (asyncio.to_thread), one at a time."""

    def __init__(self, limits: Limits, staging: Staging, prefix: str,
                 run: Runner = asyncio.to_thread) -> None:
        self.limits = limits
        self.staging = staging
        self.prefix = prefix
        self._run = run
        self.files: list[UploadedFile] = []
        self._part: _Part | None = None
        self._parts = 0
        self._images = 0
        self._audio = False

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        return cast(T, await self._run(fn, *args))

    async def abort(self) -> None:
        try:
            await self.call(self.staging.abort)
        except Exception:
            # The client hears of the refusal (or the failure); what is left is for an
            # administrator, from this log line.
            log.exception("removing an upload under %s failed: files may be left", self.prefix)

    async def on(self, event: Event) -> None:
        match event:
            case PartStart():
                self._begin(event)
            case PartData():
                await self._data(event.data)
            case PartEnd():
                await self._end()

    def _begin(self, start: PartStart) -> None:
        if self._parts >= self.limits.max_files:
            raise too_large("too-many-files", "Too many files",
                            f"an upload has at most {self.limits.max_files} files",
                            "upload-max-files", self.limits.max_files)
        category = FIELDS.get(start.field)
        if category is None:
            raise problems.invalid_request(
                f"unknown form field {start.field!r}: send files as `images` (any number, in "
                "order) and `audio` (one)", [FieldError(start.field, "unknown field")])
        if category == "audio":
            if self._audio:
                raise problems.invalid_request("a VideoJob has one audio track: send one "
                                               "`audio` file", [FieldError("audio", "twice")])
            self._audio, label = True, "audio"
        else:
            label = f"images[{self._images}]"
            self._images += 1
        self._part = _Part(self._parts, label, category, start.filename)
        self._parts += 1

    async def _data(self, data: bytes) -> None:
        part = self._part
        assert part is not None  # the parser sends data only inside a part
        part.size += len(data)
        most, setting = self.limits.per_file(part.category)
        if part.size > most:
            raise too_large("file-too-large", "File too large",
                            f"{part.label} ({part.filename}) is larger than {most} bytes",
                            setting, most, [FieldError(part.label, f"over {most} bytes")])
        part.sha256.update(data)
        if part.kind is None:
            part.head += data
            if len(part.head) < sniff.HEAD_BYTES:
                return
            await self._open(part)
            data, part.head = bytes(part.head), bytearray()
        part.pending += data
        if len(part.pending) >= WRITE_BATCH:
            await self._flush(part)

    async def _open(self, part: _Part) -> None:
        kind = sniff.sniff(bytes(part.head[:sniff.HEAD_BYTES]))
        if kind is None or kind.category != part.category:
            raise unsupported_file(part.label, part.filename, part.category, bytes(part.head))
        part.kind = kind
        part.name = stored_name(part.index, part.filename, kind)
        part.writer = await self.call(self.staging.file, part.name, kind.media_type)

    async def _flush(self, part: _Part) -> None:
        if part.pending:
            assert part.writer is not None
            data, part.pending = bytes(part.pending), bytearray()
            await self.call(part.writer.write, data)

    async def _end(self) -> None:
        part = self._part
        assert part is not None
        if part.kind is None:  # shorter than HEAD_BYTES
            await self._open(part)
            part.pending, part.head = part.head, bytearray()
        await self._flush(part)
        assert part.writer is not None and part.kind is not None
        await self.call(part.writer.finish)
        self.files.append(UploadedFile(
            field=part.label, filename=part.filename, uri=self.prefix + part.name,
            contentType=part.kind.media_type, bytes=part.size, sha256=part.sha256.hexdigest()))
        self._part = None


async def receive(chunks: AsyncIterator[bytes], form: Form, limits: Limits,
                  staging: Staging, prefix: str,
                  run: Runner = asyncio.to_thread) -> list[UploadedFile]:
    """Reads the whole form into `staging` and commits it; on any refusal or failure, aborts it
    (nothing is left) and reads the rest of the body (up to the total limit) so that the client,
    still sending, gets the answer rather than a reset connection."""
    receiver = Receiver(limits, staging, prefix, run)
    total = 0
    try:
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limits.max_total_bytes:
                    raise body_too_large(limits)
                for event in form.feed(chunk):
                    await receiver.on(event)
            form.close()
            if not receiver.files:
                raise problems.invalid_request("the form has no files: send `images` (and "
                                               "`audio`)", [FieldError("images", "missing")])
            await receiver.call(staging.commit)
        except BaseException:
            # Shielded: a client that goes away cancels the request, not the clean-up.
            await asyncio.shield(receiver.abort())
            raise
    except Exception:
        # A refusal, or the storage's failure: either is an answer the client should hear. (A
        # client that went away ended the stream: nothing more is read.)
        if total <= limits.max_total_bytes:
            async for chunk in chunks:
                total += len(chunk)
                if total > limits.max_total_bytes:
                    break
        raise
    return receiver.files
