"""Server-Sent Events: framing, what is sent for a change, and resuming."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from videojob_gateway import stream
from videojob_gateway.cache import Change
from videojob_gateway.stream import StreamState


def vj(rv: str, phase: str | None = None, progress: int = 0, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"namespace": "a", "name": "hello", "uid": "u",
                                        "resourceVersion": rv,
                                        "creationTimestamp": "2026-01-01T00:00:00Z", **meta},
                           "spec": {}}
    if phase:
        obj["status"] = {"phase": phase, "progress": progress}
    return obj


def parse(frames: list[bytes]) -> list[dict[str, str]]:
    out = []
    for f in frames:
        text = f.decode()
        assert text.endswith("\n\n")
        fields: dict[str, str] = {}
        for line in text[:-2].split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
        out.append(fields)
    return out


def test_a_frame_is_the_event_stream_format() -> None:
    assert stream.frame("x", event="status", id="7.abc") == b"id: 7.abc\nevent: status\ndata: x\n\n"
    assert stream.frame("a\nb") == b"data: a\ndata: b\n\n"  # a line break is a second data line
    assert stream.frame(None, retry_ms=3000) == b"retry: 3000\n\n"
    assert stream.KEEPALIVE.startswith(b":")  # a comment: clients ignore it


def test_a_change_a_client_sees_is_sent_once_with_an_id() -> None:
    state = StreamState()
    first = state.step(Change(vj("10", "Running", 10)))
    [event] = parse(first.frames)
    assert event["event"] == "status" and not first.done
    data = json.loads(event["data"])
    assert (data["phase"], data["progress"]) == ("Running", 10)
    assert "resourceVersion" not in data
    assert event["id"].startswith("10.")
    # The resourceVersion moved for what a client does not see (an annotation, a finalizer).
    assert state.step(Change(vj("11", "Running", 10, annotations={"x": "y"}))).frames == []
    assert state.step(Change(vj("12", "Running", 10, finalizers=["f"]))).frames == []
    assert len(state.step(Change(vj("13", "Running", 55))).frames) == 1
    assert len(state.step(Change(vj("14", "Running", 55, labels={"x": "y"}))).frames) == 1


def test_a_terminal_phase_is_sent_and_ends_the_stream() -> None:
    state = StreamState()
    state.step(Change(vj("1", "Running", 90)))
    end = state.step(Change(vj("2", "Succeeded", 100)))
    assert end.done and json.loads(parse(end.frames)[0]["data"])["phase"] == "Succeeded"
    failed = StreamState().step(Change(vj("3", "Failed", 40)))
    assert failed.done and len(failed.frames) == 1


def test_deletion_is_an_event_and_the_end() -> None:
    step = StreamState().step(Change(None))
    assert step.done
    assert parse(step.frames) == [{"event": "deleted", "data": '{"deleted":true}'}]


def test_resuming_sends_the_current_state_only_if_the_client_lacks_it() -> None:
    obj = vj("10", "Running", 40)
    [event] = parse(StreamState().step(Change(obj)).frames)
    last_id = event["id"]
    resumed = StreamState(sent=stream.digest_of(last_id))
    assert resumed.step(Change(vj("11", "Running", 40))).frames == []  # same state, newer rv
    assert len(resumed.step(Change(vj("12", "Running", 41))).frames) == 1
    # An id this gateway did not make resumes from nothing: the current state is sent.
    assert stream.digest_of("garbage") is None
    assert len(StreamState(sent=stream.digest_of("garbage")).step(Change(obj)).frames) == 1


def test_a_client_that_has_the_end_already_is_told_so() -> None:
    done = vj("20", "Succeeded", 100)
    [event] = parse(StreamState().step(Change(done)).frames)
    assert stream.already_seen_end(done, event["id"])
    assert not stream.already_seen_end(done, None)
    assert not stream.already_seen_end(vj("21", "Running", 100), event["id"])


class Script:
    """Changes as a mailbox would give them; None is a quiet keep-alive interval."""

    def __init__(self, *changes: Change | None) -> None:
        self.changes = list(changes)

    async def next(self, timeout: float) -> Change | None:
        return self.changes.pop(0)


def collect(changes: Script, last: str | None = None, allowed: list[bool] | None = None
            ) -> list[bytes]:
    answers = list(allowed or [])

    async def still_allowed() -> bool:
        return answers.pop(0)

    async def run() -> list[bytes]:
        return [chunk async for chunk in stream.events(changes, last, 15,
                                                       still_allowed if allowed else None)]

    return asyncio.run(run())


def test_the_stream_has_a_retry_hint_keep_alives_and_ends_at_the_terminal_phase() -> None:
    out = collect(Script(Change(vj("1", "Running", 5)), None, Change(vj("2", "Running", 50)),
                         Change(vj("3", "Succeeded", 100)), Change(vj("4", "Running", 1))))
    assert out[0] == b"retry: 3000\n\n"
    assert out[2] == stream.KEEPALIVE
    phases = [json.loads(e["data"])["phase"] for e in parse([o for o in out[1:]
                                                              if o != stream.KEEPALIVE])]
    assert phases == ["Running", "Running", "Succeeded"]  # nothing after the end


def test_a_caller_who_lost_access_gets_no_more_events() -> None:
    out = collect(Script(Change(vj("1", "Running", 5)), None, None,
                         Change(vj("2", "Running", 9))), allowed=[True, False])
    assert out[1:] == [out[1], stream.KEEPALIVE]
