"""The watch reader: chunked decoding split anywhere, and a real urllib3 response from a local
HTTP server sending a chunked stream, read through `lines`."""

from __future__ import annotations

import http.server
import random
import socketserver
import threading
from collections.abc import Iterator

import pytest
import urllib3

from videojob_common import watch_stream
from videojob_common.watch_stream import ChunkedLines, lines

EVENTS = [b'{"type":"ADDED","n":%d,"pad":"%s"}' % (i, b"x" * (i * 37 % 3000))
          for i in range(200)]


def chunked(payloads: list[bytes]) -> bytes:
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


def decode(wire: bytes, cuts: list[int]) -> tuple[list[bytes], bool]:
    decoder, out, start = ChunkedLines(), [], 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[start:cut])
        start = cut
    return out, decoder.ended


def test_every_split_point_gives_the_same_lines() -> None:
    # Events cut across chunks (one per event, several per chunk, an event over three).
    body = b"\n".join(EVENTS[:6]) + b"\n"
    payloads = [body[:10], body[10:11], body[11:200], body[200:]]
    wire = chunked(payloads)
    for cut in range(len(wire) + 1):
        out, ended = decode(wire, [cut])
        assert out == EVENTS[:6] and ended, cut


def test_random_pieces_and_blank_lines() -> None:
    rng = random.Random(7)
    payloads = [e + b"\n\n" for e in EVENTS]
    wire = chunked(payloads)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(wire)), 40))
        out, ended = decode(wire, cuts)
        assert out == EVENTS and ended


def test_a_line_waits_for_its_newline() -> None:
    decoder = ChunkedLines()
    assert decoder.feed(chunked([b'{"a":1}'])[:-5]) == []
    assert decoder.feed(b"1\r\n\n\r\n") == [b'{"a":1}']


@pytest.mark.parametrize("wire", [b"zz\r\nabc\r\n", b"3\r\nabcXY", b"f" * 2000])
def test_malformed_encoding_is_an_error(wire: bytes) -> None:
    with pytest.raises(ValueError):
        ChunkedLines().feed(wire)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/plain":
            body = b"\n".join(EVENTS) + b"\n"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Written in pieces, with pauses the reader sees as partial chunks.
        wire = chunked([e + b"\n" for e in EVENTS])
        for i in range(0, len(wire), 4099):
            self.wfile.write(wire[i:i + 4099])
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("path", ["/chunked", "/plain"])
def test_a_real_urllib3_response(server: str, path: str, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    pool = urllib3.PoolManager()
    response = pool.request("GET", server + path, preload_content=False)
    if path == "/chunked":  # read by the decoder, not through urllib3's stream()
        monkeypatch.setattr(watch_stream, "_stream_lines", None)
    try:
        assert list(lines(response)) == EVENTS
    finally:
        response.close()
        response.release_conn()
    # The pool still answers after a response read past it.
    again = pool.request("GET", server + "/plain")
    assert again.data.count(b"\n") == len(EVENTS)
