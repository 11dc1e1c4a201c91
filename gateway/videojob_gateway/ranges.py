"""HTTP range requests (RFC 9110 §14) for a download: which bytes to send, and the validators
(ETag, Last-Modified) that let a client resume or seek safely. Pure.

One range at a time: `bytes=a-b`, `bytes=a-`, `bytes=-n`, which is what a browser's `<video>`
and download managers send. A request for several ranges is answered with the whole file (200),
as RFC 9110 §14.2 allows a server to ignore Range; so is a Range header that does not parse, or
one in another unit. A range that starts past the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

_SPEC = re.compile(r"(?P<first>\d*)-(?P<last>\d*)")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """416: no byte of the range is in the file."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range is outside the file's {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse(header: str | None, size: int) -> ByteRange | None:
    """The range `header` asks of a file of `size` bytes; None for the whole file (no header, or
    one to ignore). Raises Unsatisfiable."""
    if header is None:
        return None
    unit, sep, ranges = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    # Empty list elements are allowed (RFC 9110 §5.6.1): "bytes=0-99," is one range.
    specs = [s.strip() for s in ranges.split(",") if s.strip()]
    if len(specs) != 1:
        return None
    match = _SPEC.fullmatch(specs[0])
    if match is None:
        return None
    first, last = match["first"], match["last"]
    try:
        if first:
            start = int(first)
            end = int(last) if last else size - 1
            if last and end < start:
                return None  # invalid (§14.1.1): ignored
            if start >= size:
                raise Unsatisfiable(size)
            return ByteRange(start, min(end, size - 1))
        if last:
            suffix = int(last)
            if suffix == 0 or size == 0:
                raise Unsatisfiable(size)
            return ByteRange(max(0, size - suffix), size - 1)
    except ValueError:  # a number of more digits than int() takes
        return None
    return None  # "-" alone


def etag(*parts: object) -> str:
    """A strong entity tag from what identifies one version of the file."""
    return '"' + "-".join(f"{p:x}" if isinstance(p, int) else str(p) for p in parts) + '"'


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def if_range_holds(if_range: str | None, tag: str, last_modified: datetime | None) -> bool:
    """Whether a Range may be honoured under `If-Range` (RFC 9110 §13.1.5): the client's copy
    is this version of the file. Weak tags never match; a date must be Last-Modified exactly."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == tag
    if last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return when == last_modified.astimezone(UTC).replace(microsecond=0)
