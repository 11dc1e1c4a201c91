"""The gateway benchmark's load: a process of its own (so its CPU is not the gateway's, and is
measured apart), speaking HTTP/1.1 over raw asyncio streams with keep-alive connections.

Three modes, each given a JSON job file and writing a JSON result file:

- `rate`: GETs at a constant arrival rate (an open loop). The i-th request is due at
  `start + i / rate`, whatever became of the earlier ones; it goes out on an idle connection,
  or a new one while fewer than `max_connections` are open. Its latency runs from the time it
  was *due*, not from when it was sent, so a server (or this process) that falls behind shows
  as latency instead of as requests never made (coordinated omission).
- `serial`: requests one after another, each on its target's keep-alive connection, with the
  latency of each; the targets are interleaved as listed, so drift on the machine falls on
  both sides alike.
- `sse`: opens many Server-Sent Events streams (or, with `"protocol": "watch"`, API-server
  watches), prints `ready` once each has delivered its first event, then records every
  `status` event (its stream, the VideoJob's status `message`, the monotonic time it was read)
  until a line arrives on stdin. CLOCK_MONOTONIC is the machine's, so the
  benchmark compares those times with its own.

Pure parts (the schedule, response heads, chunked bodies, event frames) are tested in
tests/bench/test_bench_gateway.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CRLF2 = b"\r\n\r\n"
TIMEOUT_S = 30.0  # a request not answered by then counts as an error (a hung run ends)


# -- pure parts -------------------------------------------------------------------------------

def due_times(start: float, rate: float, duration: float) -> list[float]:
    """When each request of an open loop is due: `rate` a second for `duration` seconds."""
    count = round(rate * duration)
    return [start + i / rate for i in range(count)]


@dataclass(frozen=True)
class Head:
    status: int
    length: int | None  # Content-Length; None when the body is chunked or runs to the close
    chunked: bool


def parse_head(raw: bytes) -> Head:
    """The status line and the framing headers of a response head (up to its blank line)."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    return Head(status, length, chunked)


class Chunked:
    """An incremental decoder of a chunked body: `feed` bytes as they come, get the data."""

    def __init__(self) -> None:
        self.buffer = b""
        self.left = 0  # bytes of the current chunk still to come
        self.trailer = False  # the current chunk's data is in; its CRLF is next
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        while not self.done:
            if self.left:
                take = self.buffer[:self.left]
                out += take
                self.buffer = self.buffer[len(take):]
                self.left -= len(take)
                if self.left:
                    break
                self.trailer = True
            if self.trailer:
                if len(self.buffer) < 2:
                    break
                self.buffer, self.trailer = self.buffer[2:], False
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";", 1)[0], 16)
            self.buffer = rest
            if size == 0:
                self.done = True  # (trailers, if any, are not read: none come here)
            else:
                self.left = size
        return bytes(out)


class Frames:
    """Server-Sent Events frames from text as it comes: (event, data) for each complete one."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.buffer += text
        out = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            event, data = "message", []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                out.append((event, "\n".join(data)))
        return out


class Lines:
    """Whole lines from text as it comes (a watch's stream of JSON events)."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> list[str]:
        self.buffer += text
        *done, self.buffer = self.buffer.split("\n")
        return [line for line in done if line.strip()]


def request_bytes(method: str, path: str, host: str, headers: dict[str, str],
                  body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in
                                                              headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# -- connections ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Where requests go: `url` is http://host:port or https://host:port."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")

    @property
    def hostport(self) -> tuple[str, int]:
        host, _, port = self.url.split("://", 1)[1].rstrip("/").partition(":")
        return host, int(port or (443 if self.tls else 80))

    @property
    def host_header(self) -> str:
        host, port = self.hostport
        return f"{host}:{port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        # 127.0.0.1 is in the local cluster's serving certificate; HTTP/1.1 only (no ALPN), as
        # for the gateway.
        return ctx


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, target: Target, ctx: ssl.SSLContext | None) -> Connection:
        host, port = target.hostport
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx,
                                                       limit=4 * 2**20)
        return cls(reader, writer)

    async def exchange(self, raw: bytes) -> tuple[int, int]:
        """Sends one request and reads its whole response: (status, body bytes)."""
        self.writer.write(raw)
        head = parse_head(await self.reader.readuntil(CRLF2))
        if head.length is not None:
            await self.reader.readexactly(head.length)
            return head.status, head.length
        if not head.chunked:
            raise RuntimeError("a response without Content-Length or chunks")
        decoder, size = Chunked(), 0
        while not decoder.done:
            size += len(decoder.feed(await self.reader.read(65536)))
        return head.status, size

    def close(self) -> None:
        self.writer.close()


# -- modes ------------------------------------------------------------------------------------

async def run_rate(job: dict[str, Any]) -> dict[str, Any]:
    target = Target(**job["target"])
    ctx = target.ssl_context()
    host = target.host_header
    raws = [request_bytes("GET", p, host, target.headers) for p in job["paths"]]
    idle: deque[Connection] = deque()
    opened = 0
    freed = asyncio.Condition()
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    stale = {"count": 0}
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float, raw: bytes) -> None:
        nonlocal opened
        async with freed:
            while not idle and opened >= job["max_connections"]:
                await freed.wait()
            conn = idle.pop() if idle else None
            if conn is None:
                opened += 1
        try:
            if conn is None:
                conn = await Connection.open(target, ctx)
            lags.append(time.monotonic() - due)
            try:
                status, _ = await asyncio.wait_for(conn.exchange(raw), TIMEOUT_S)
            except (ConnectionResetError, asyncio.IncompleteReadError):
                # The server closed a keep-alive connection that sat idle (uvicorn: after
                # 5 s) as the request went out: again on a new one, as HTTP clients do with
                # an idempotent request. The time lost stays in its latency.
                stale["count"] += 1
                conn.close()
                conn = await Connection.open(target, ctx)
                status, _ = await asyncio.wait_for(conn.exchange(raw), TIMEOUT_S)
            done = time.monotonic()
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            latencies.append((done - due) * 1000)
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, RuntimeError, TimeoutError) as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            opened -= 1
            if conn is not None:
                conn.close()
        async with freed:
            freed.notify()

    cpu0 = os.times()
    start = time.monotonic() + 0.2
    dues = due_times(start, job["rate"], job["duration"])
    for i, due in enumerate(dues):
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.get_running_loop().create_task(one(due, raws[i % len(raws)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(list(tasks))
    end = time.monotonic()
    cpu1 = os.times()
    for conn in idle:
        conn.close()
    return {"latencies_ms": latencies, "errors": errors, "connections": opened,
            "stale_connections_retried": stale["count"],
            "sent": len(dues), "elapsed_s": end - start,
            "send_lag_ms_max": max(lags) * 1000 if lags else None,
            "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)}


async def run_serial(job: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(**t) for t in job["targets"]]
    conns = [await Connection.open(t, t.ssl_context()) for t in targets]
    out: list[list[float]] = [[] for _ in targets]
    statuses: list[dict[str, int]] = [{} for _ in targets]
    for which, method, path, body in job["requests"]:
        t = targets[which]
        raw = request_bytes(method, path, t.host_header,
                            {**t.headers, "Content-Type": "application/json"},
                            json.dumps(body).encode())
        began = time.monotonic()
        status, _ = await conns[which].exchange(raw)
        out[which].append((time.monotonic() - began) * 1000)
        statuses[which][str(status)] = statuses[which].get(str(status), 0) + 1
    for conn in conns:
        conn.close()
    return {"latencies_ms": out, "statuses": statuses}


async def run_sse(job: dict[str, Any]) -> dict[str, Any]:
    target = Target(**job["target"])
    ctx = target.ssl_context()
    host = target.host_header
    seen: list[tuple[int, str, float]] = []  # (stream, message, monotonic time)
    ready = [asyncio.Event() for _ in job["paths"]]
    failed: list[str] = []
    watch = job.get("protocol") == "watch"

    async def follow(i: int, path: str) -> None:
        try:
            conn = await Connection.open(target, ctx)
            accept = "application/json" if watch else "text/event-stream"
            conn.writer.write(request_bytes("GET", path, host,
                                            {**target.headers, "Accept": accept}))
            head = parse_head(await conn.reader.readuntil(CRLF2))
            if head.status != 200 or not head.chunked:
                raise RuntimeError(f"status {head.status}")
        except (OSError, asyncio.IncompleteReadError, RuntimeError) as e:
            failed.append(f"{path}: {e!r}")
            ready[i].set()
            return
        decoder, frames, lines = Chunked(), Frames(), Lines()
        while not decoder.done:
            data = await conn.reader.read(65536)
            if not data:
                break
            now = time.monotonic()
            text = decoder.feed(data).decode()
            if watch:  # the API server's: one JSON event a line, the object in it
                messages = [str(((json.loads(line).get("object") or {}).get("status") or {})
                                .get("message") or "") for line in lines.feed(text)]
            else:
                messages = [str(json.loads(data).get("message") or "")
                            for event, data in frames.feed(text) if event == "status"]
            for message in messages:
                seen.append((i, message, now))
                ready[i].set()
        conn.close()

    tasks = []
    for batch in range(0, len(job["paths"]), 50):  # not 1,000 handshakes at once
        for i in range(batch, min(batch + 50, len(job["paths"]))):
            tasks.append(asyncio.get_running_loop().create_task(follow(i, job["paths"][i])))
        await asyncio.gather(*(ready[i].wait() for i in range(batch, min(
            batch + 50, len(job["paths"])))))
    cpu0 = os.times()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu1 = os.times()
    for t in tasks:
        t.cancel()
    return {"events": seen, "failed": failed,
            "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)}


MODES = {"rate": run_rate, "serial": run_serial, "sse": run_sse}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("job", help="the job, a JSON file")
    parser.add_argument("out", help="where the result goes (JSON)")
    args = parser.parse_args()
    job = json.loads(Path(args.job).read_text())
    result = asyncio.run(MODES[args.mode](job))
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
