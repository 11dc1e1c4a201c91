"""`GET .../videojobs/{name}/events`: a VideoJob's progress as Server-Sent Events, from the
cache, instead of a UI polling its status.

The stream carries states, not a log: each `status` event is the VideoJob as `GET` shows it,
sent when something a client shows changed (phase, stage, progress, message, stages, result,
conditions, labels), never for a change it would not see (an annotation, a finalizer). The last
event is the terminal one (`Succeeded`, `Failed`) or `deleted`; then the stream ends.

An event's id is `<resourceVersion>.<digest>`: the VideoJob's resourceVersion when it was sent
and a digest of the event's data. A client that reconnects sends it back as `Last-Event-ID`;
the stream starts with the current state unless its digest is the one the client already has
(resourceVersions are opaque and move for invisible changes too, so the digest, not the
resourceVersion, decides). A client that already has the terminal state gets 204, which tells
an EventSource to stop reconnecting.

Keep-alive comments every few seconds keep proxies from closing a quiet stream. Pure, except
`events`, which drives the pure step with a mailbox.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from videojob_common.pipeline import TERMINAL, Obj

from .cache import Change
from .views import view

KEEPALIVE = b": keep-alive\n\n"
RETRY_MS = 3000  # how soon an EventSource reconnects after the connection drops


def frame(data: str | None, event: str | None = None, id: str | None = None,
          retry_ms: int | None = None) -> bytes:
    """One event, in the text/event-stream format (each data line prefixed, blank line after);
    without data, it only sets the retry time."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if id is not None:
        if "\n" in id or "\r" in id or "\0" in id:
            raise ValueError("an event id has no line breaks or NUL")
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


def payload(obj: Obj) -> str:
    """The data of a `status` event: the view, less what changes without a client seeing it."""
    doc = view(obj).model_dump(mode="json", exclude={"resourceVersion"})
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def event_id(obj: Obj, data: str) -> str:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return f"{rv}.{digest(data)}"


def digest_of(last_event_id: str | None) -> str | None:
    """The digest part of a `Last-Event-ID` (None for none, or one this gateway did not make)."""
    if not last_event_id:
        return None
    _, dot, tail = last_event_id.strip().rpartition(".")
    return tail if dot and len(tail) == 16 else None


def is_terminal(obj: Obj) -> bool:
    return str((obj.get("status") or {}).get("phase") or "") in TERMINAL


def already_seen_end(obj: Obj, last_event_id: str | None) -> bool:
    """The client resumes a stream whose terminal event it already has: nothing more to say."""
    return is_terminal(obj) and digest_of(last_event_id) == digest(payload(obj))


@dataclass
class Step:
    frames: list[bytes]
    done: bool


@dataclass
class StreamState:
    sent: str | None = None  # the digest of the last state the client has

    def step(self, change: Change) -> Step:
        """What to send for a change of the VideoJob, and whether the stream ends after it."""
        if change.obj is None:
            return Step([frame('{"deleted":true}', event="deleted")], done=True)
        data = payload(change.obj)
        d = digest(data)
        done = is_terminal(change.obj)
        if d == self.sent:
            return Step([], done)
        self.sent = d
        return Step([frame(data, event="status", id=event_id(change.obj, data))], done)


class Changes(Protocol):
    async def next(self, timeout: float) -> Change | None: ...


async def events(changes: Changes, last_event_id: str | None, keepalive_seconds: float,
                 still_allowed: Callable[[], Awaitable[bool]] | None = None
                 ) -> AsyncIterator[bytes]:
    """The stream's bytes: a retry hint, then events and keep-alives until the end, or until
    `still_allowed` (asked at each keep-alive) says the caller may no longer read it."""
    state = StreamState(sent=digest_of(last_event_id))
    yield frame(None, retry_ms=RETRY_MS)
    while True:
        change = await changes.next(keepalive_seconds)
        if change is None:
            if still_allowed is not None and not await still_allowed():
                return
            yield KEEPALIVE
            continue
        step = state.step(change)
        for f in step.frames:
            yield f
        if step.done:
            return
