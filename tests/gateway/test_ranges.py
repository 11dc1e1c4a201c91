"""Range requests: which bytes a header asks for, and when it is ignored or unsatisfiable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from videojob_gateway import ranges
from videojob_gateway.ranges import ByteRange, Unsatisfiable

SIZE = 1000


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", ByteRange(0, 99)),
    ("bytes=100-199", ByteRange(100, 199)),
    ("bytes=0-0", ByteRange(0, 0)),  # one byte
    ("bytes=999-999", ByteRange(999, 999)),  # the last byte
    ("bytes=500-", ByteRange(500, 999)),  # to the end
    ("bytes=0-", ByteRange(0, 999)),  # what a <video> sends first
    ("bytes=900-5000", ByteRange(900, 999)),  # past the end: cut to it
    ("bytes=-1", ByteRange(999, 999)),  # the last byte
    ("bytes=-100", ByteRange(900, 999)),
    ("bytes=-1000", ByteRange(0, 999)),
    ("bytes=-5000", ByteRange(0, 999)),  # longer than the file: all of it
    ("Bytes=0-9", ByteRange(0, 9)),  # the unit is case-insensitive
    ("bytes= 0-9 ", ByteRange(0, 9)),  # optional whitespace
    ("bytes=0-9,", ByteRange(0, 9)),  # empty list elements are allowed
    ("bytes=,0-9", ByteRange(0, 9)),
    ("bytes=0-99999999999999999999999999", ByteRange(0, 999)),
])
def test_a_single_range_is_the_bytes_it_names(header: str, expected: ByteRange) -> None:
    assert ranges.parse(header, SIZE) == expected


@pytest.mark.parametrize("header", [
    None,  # no Range: the whole file
    "bytes=0-9,20-29",  # several ranges: the whole file (RFC 9110 lets a server ignore Range)
    "bytes=-5,0-9",
    "items=0-9",  # another unit
    "bytes 0-9",  # no '='
    "bytes=",
    "bytes=-",
    "bytes=9-0",  # last before first: invalid, so ignored
    "bytes=a-b",
    "bytes=0x10-20",
    "bytes=+1-2",
    "bytes=-1-2",
    "bytes=1.5-2",
    "bytes=0-9;x",
    "=0-9",
    "",
    "bytes=" + "1" * 5000 + "-",  # more digits than int() takes
])
def test_what_is_not_one_valid_range_is_ignored(header: str | None) -> None:
    assert ranges.parse(header, SIZE) is None


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=1000-", SIZE),  # starts at the end
    ("bytes=1000-2000", SIZE),
    ("bytes=5000-5001", SIZE),
    ("bytes=-0", SIZE),  # a suffix of no bytes
    ("bytes=0-", 0),  # nothing of an empty file
    ("bytes=0-0", 0),
    ("bytes=-1", 0),
])
def test_a_range_outside_the_file_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable) as caught:
        ranges.parse(header, size)
    assert caught.value.content_range == f"bytes */{size}"


def test_content_range_and_length() -> None:
    r = ByteRange(100, 199)
    assert (r.length, r.content_range(SIZE)) == (100, "bytes 100-199/1000")
    assert ByteRange(5, 5).length == 1


def test_if_range_lets_a_range_through_only_for_this_version() -> None:
    tag = ranges.etag(12, 1000, 1_700_000_000_123)
    assert tag == f'"c-3e8-{1_700_000_000_123:x}"'
    modified = datetime(2026, 12, 6, 11, 19, 15, 500_000, tzinfo=UTC)
    stamp = ranges.http_date(modified)
    assert stamp == "Sun, 06 Dec 2026 11:19:15 GMT"
    assert ranges.if_range_holds(None, tag, modified)
    assert ranges.if_range_holds(tag, tag, modified)
    assert ranges.if_range_holds(stamp, tag, modified)
    assert not ranges.if_range_holds('"other"', tag, modified)
    assert not ranges.if_range_holds(f"W/{tag}", tag, modified)  # weak: never
    earlier = ranges.http_date(modified - timedelta(seconds=1))
    assert not ranges.if_range_holds(earlier, tag, modified)
    assert not ranges.if_range_holds(stamp, tag, None)
    assert not ranges.if_range_holds("yesterday", tag, modified)
