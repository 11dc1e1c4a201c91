"""The lines of a Kubernetes watch response, read in large pieces.

A watch is one long HTTP response in chunked encoding, one JSON event per line. Read through
urllib3's `stream()`, it costs several socket reads per event: a chunk's size line, its data
(through a buffer of 8 KB), its CRLF. Each read releases the GIL and has to take it back, and
while another thread of the process is busy (the operator's event loop in a burst), taking it
back waits up to the interpreter's switch interval (5 ms). A watch thread then falls behind the
stream it reads: the operator's pod watch was measured holding 620 KB unread in its socket in a
burst of 200 VideoJobs, its events seconds old when read.

`lines` reads whatever has arrived, up to `READ_SIZE` at a time, in one call (`readinto1`: at
most one socket read, into one buffer kept for the response; TLS gives up to a record of 16 KB
per read), decodes the chunked encoding itself (`ChunkedLines`, pure) and yields every complete
line of it. Responses that are not
chunked are read through urllib3 as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

READ_SIZE = 1 << 16  # more than a TLS record; allocated once per response
MAX_SIZE_LINE = 1024  # a chunk-size line longer than this is not HTTP


class ChunkedLines:
    """Chunked transfer encoding in, complete non-blank lines out, whatever the pieces."""

    def __init__(self) -> None:
        self.raw = bytearray()  # received, not yet decoded
        self.body = bytearray()  # decoded, not yet ending in a newline
        self.left = 0  # bytes of the current chunk's data still to come
        self.crlf = False  # the CRLF that ends a chunk's data is still to come
        self.ended = False  # the last (empty) chunk was read

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        raw = self.raw
        raw += data
        pos = self._decode(raw)
        del raw[:pos]
        cut = self.body.rfind(b"\n")
        if cut < 0:
            return []
        complete = bytes(self.body[:cut])
        del self.body[:cut + 1]
        return [line for line in complete.split(b"\n") if line.strip()]

    def _decode(self, raw: bytearray) -> int:
        """Decodes what `raw` holds into `body`; the count of bytes of `raw` consumed."""
        pos = 0
        while not self.ended:
            if self.left:
                take = min(self.left, len(raw) - pos)
                if not take:
                    break
                self.body += memoryview(raw)[pos:pos + take]
                pos += take
                self.left -= take
                self.crlf = not self.left
            elif self.crlf:
                if len(raw) - pos < 2:
                    break
                if raw[pos:pos + 2] != b"\r\n":
                    raise ValueError("chunked encoding: no CRLF after a chunk's data")
                pos += 2
                self.crlf = False
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    if len(raw) - pos > MAX_SIZE_LINE:
                        raise ValueError("chunked encoding: chunk-size line too long")
                    break
                size = int(bytes(raw[pos:end]).split(b";")[0].strip() or b"x", 16)
                pos = end + 2
                if size == 0:
                    self.ended = True
                self.left = size
        return pos


def lines(response: Any) -> Iterator[bytes]:
    """The newline-separated documents of a streaming urllib3 response (`_preload_content=
    False`), as they arrive. The caller closes the response after a chunked one: its
    connection was read past urllib3 and cannot go back to the pool."""
    fp = _body(response)
    if fp is None:
        yield from _stream_lines(response)
        return
    decoder = ChunkedLines()
    buffer = memoryview(bytearray(READ_SIZE))
    while not decoder.ended:
        n = fp.readinto1(buffer)
        if not n:
            break
        yield from decoder.feed(buffer[:n])


def _body(response: Any) -> Any:
    """The buffered socket reader under a chunked response nothing has read from yet, or
    None (not chunked, or not urllib3 over http.client)."""
    inner = getattr(response, "_fp", None)
    fp = getattr(inner, "fp", None)
    if not getattr(response, "chunked", False) or fp is None or not hasattr(fp, "readinto1"):
        return None
    if getattr(inner, "chunk_left", None) is not None:
        return None  # read from already
    return fp


def _stream_lines(response: Any) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer
