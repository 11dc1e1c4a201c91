"""The stage Job and pod watches' reading of a stream (child_watches.py), without a cluster: events
split across chunks, bookmarks, an expired version, and the hand-over to the loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_operator import child_watches, metrics
from videojob_operator.kube import Api
from videojob_operator.store import Store


class Response:
    """A watch response as urllib3 hands it over, in the chunks given."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.released = self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


def pod_event(kind: str, name: str, rv: int, phase: str = "Pending") -> bytes:
    return json.dumps({"type": kind, "object": {
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid",
                     "resourceVersion": str(rv), "managedFields": [{"manager": "x"}],
                     "labels": {"videojob.dev/name": "clip"}},
        "spec": {"containers": [{"name": "worker"}]},
        "status": {"phase": phase}}}).encode() + b"\n"


def watch_of(responses: list[Response | Exception]
             ) -> tuple[child_watches.ChildWatch, list[Obj]]:
    store = Store(Api(client.ApiClient()))
    calls: list[Obj] = []

    def fn(**kwargs: Any) -> Response:
        calls.append(kwargs)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    store.api.list_fn = lambda kind, ns: (fn, ())  # type: ignore[method-assign]
    w = child_watches.ChildWatch(store, "pod", None, 10, asyncio.new_event_loop())
    return w, calls


def test_events_split_across_chunks_arrive_whole_and_trimmed() -> None:
    added, modified = pod_event("ADDED", "p0", 11), pod_event("MODIFIED", "p0", 12, "Running")
    bookmark = json.dumps({"type": "BOOKMARK", "object": {
        "metadata": {"resourceVersion": "20"}}}).encode() + b"\n"
    response = Response([added[:7], added[7:] + modified[:30], modified[30:], bookmark])
    w, calls = watch_of([response])
    events = list(w._stream())
    assert [(t, o["metadata"]["resourceVersion"]) for t, o in events] == [
        ("ADDED", "11"), ("MODIFIED", "12")]
    assert set(events[0][1]["spec"]) == {"containers"}  # only what accounting reads of it
    assert "managedFields" not in events[0][1]["metadata"]
    assert w.resource_version == 20  # the bookmark moved it on
    assert calls[0]["resource_version"] == "10" and calls[0]["watch"] is True
    assert calls[0]["allow_watch_bookmarks"] is True
    assert calls[0]["label_selector"] == "videojob.dev/name"
    assert response.released and response.closed


def test_an_expired_version_asks_for_a_new_listing() -> None:
    expired = json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "code": 410, "message": "too old resource version"}}).encode()
    w, _ = watch_of([Response([pod_event("ADDED", "p0", 11) + expired + b"\n"])])
    stream = w._stream()
    assert next(stream)[0] == "ADDED"
    with pytest.raises(child_watches.Gone):
        next(stream)
    w, _ = watch_of([client.ApiException(status=410)])
    with pytest.raises(child_watches.Gone):
        list(w._stream())


def test_a_burst_is_handed_over_in_one_drain() -> None:
    w, _ = watch_of([])
    scheduled: list[Any] = []
    w.loop.call_soon_threadsafe = lambda cb, *a: scheduled.append(cb)  # type: ignore[method-assign]
    for rv in (11, 12, 13):
        w._hand_over("MODIFIED", json.loads(pod_event("MODIFIED", "p0", rv))["object"], 0.0)
    assert len(scheduled) == 1
    scheduled[0]()
    held = w.store.pods[("ns", "clip")]["p0"]
    assert held["metadata"]["resourceVersion"] == "13"
    w._hand_over("MODIFIED", json.loads(pod_event("MODIFIED", "p0", 14, "Running"))["object"],
                0.0)
    assert len(scheduled) == 2  # a new drain once the last one ran


def test_a_stream_the_api_server_ends_early_is_counted_as_closed() -> None:
    w, _ = watch_of([])

    def closed() -> float:
        return metrics.REGISTRY.get_sample_value(
            "videojob_watch_restarts_total", {"kind": "pod", "cause": "closed"}) or 0.0

    before = closed()
    w._ended(12.0)  # the API server dropped a reader it took for too slow
    assert closed() == before + 1
    w._ended(child_watches.WATCH_TIMEOUT)  # the stream's own timeout: routine
    w.stopping.set()
    w._ended(1.0)  # closed by the operator itself, on the way out
    assert closed() == before + 1
