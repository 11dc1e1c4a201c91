"""The cache: the VideoJob store's index and readers, the key ring, and the reflector's list,
watch, bookmarks and relist on 410 (against a scripted API server: a real one does not compact
on demand; the e2e tests run the reflector on the real one)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any

from videojob_gateway import keys
from videojob_gateway.cache import Change, KeySecrets, Reflector, VideoJobs


def vj(name: str, rv: str, second: int = 0, ns: str = "a", **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": rv,
                         "creationTimestamp": f"2026-01-01T00:00:{second:02d}Z"},
            "status": status}


def names(store: VideoJobs, ns: str = "a") -> list[str]:
    return [k[2] for k in store.index(ns)]


def test_the_index_follows_adds_deletes_and_relists() -> None:
    store = VideoJobs()
    store.replace([vj("b", "1", 2), vj("a", "2", 1), vj("x", "3", 1, ns="other")])
    assert names(store) == ["a", "b"] and names(store, "other") == ["x"]
    store.apply("ADDED", vj("c", "4", 3))
    store.apply("MODIFIED", vj("a", "5", 1, phase="Running"))
    assert names(store) == ["a", "b", "c"]
    assert store.get("a", "a")["status"] == {"phase": "Running"}  # type: ignore[index]
    store.apply("DELETED", vj("b", "6", 2))
    assert names(store) == ["a", "c"]
    store.replace([vj("c", "4", 3)])  # a relist: what it lacks is gone
    assert names(store) == ["c"] and names(store, "other") == []
    assert store.namespaces() == ["a"]
    # Recreated under the same name: indexed by its new creation time.
    store.apply("ADDED", vj("c", "9", 30))
    assert store.index("a") == [("2026-01-01T00:00:30Z", "a", "c")]


def test_a_reader_gets_the_current_state_then_only_the_latest_change() -> None:
    async def run() -> None:
        store = VideoJobs()
        store.apply("ADDED", vj("a", "1"))
        with store.reading("a", "a") as mailbox:
            first = await mailbox.next(0.01)
            assert first is not None and first.obj is not None
            assert first.obj["metadata"]["resourceVersion"] == "1"
            assert await mailbox.next(0.01) is None  # nothing new: a keep-alive interval
            store.apply("MODIFIED", vj("a", "2", progress=10))
            store.apply("MODIFIED", vj("a", "3", progress=20))
            latest = await mailbox.next(0.01)
            assert latest is not None and latest.obj is not None
            assert latest.obj["status"] == {"progress": 20}
            store.replace([vj("a", "3", progress=20)])  # a relist repeating it: no change
            assert await mailbox.next(0.01) is None
            store.apply("DELETED", vj("a", "4"))
            assert await mailbox.next(0.01) == Change(None)
            assert store.readers() == 1
        assert store.readers() == 0

    asyncio.run(run())


def test_a_videojob_just_created_is_waited_for_and_an_unknown_one_is_not() -> None:
    async def run() -> None:
        store = VideoJobs()
        store.expect("a", "new")

        async def watch_brings_it() -> None:
            await asyncio.sleep(0.05)
            store.apply("ADDED", vj("new", "7"))

        task = asyncio.create_task(watch_brings_it())
        got = await store.get_fresh("a", "new", wait=2)
        assert got is not None and got["metadata"]["resourceVersion"] == "7"
        await task
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await store.get_fresh("a", "never-created", wait=2) is None
        assert loop.time() - began < 0.1

    asyncio.run(run())


def test_the_key_ring_follows_its_secrets_and_skips_broken_ones() -> None:
    key = keys.new_key()
    good = keys.secret_manifest("good", "gw", "team-a", "sa", key)
    broken = {"metadata": {"namespace": "gw", "name": "broken"},
              "data": {"sha256": base64.b64encode(b"nope").decode()}}
    secrets = KeySecrets()
    secrets.replace([good, broken])
    found = secrets.ring.find(key)
    assert found is not None and found.id == "good" and len(secrets.ring) == 1
    secrets.apply("DELETED", good)
    assert secrets.ring.find(key) is None


class ScriptedApi:
    """Lists (in pages) and watches as a script says; records what the reflector asked."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[dict[str, Any]]]
                 ) -> None:
        self.lists = lists
        self.watches = watches
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.done = asyncio.Event()

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.asked.append(("list", dict(params or {})))
        return self.lists.pop(0)[0]

    async def watch(self, path: str, params: Mapping[str, Any], timeout_seconds: int
                    ) -> AsyncIterator[dict[str, Any]]:
        self.asked.append(("watch", dict(params)))
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()  # a quiet watch, until cancelled
        for event in self.watches.pop(0):
            yield event


def listing(items: list[dict[str, Any]], rv: str, cont: str = "") -> list[dict[str, Any]]:
    return [{"items": items, "metadata": {"resourceVersion": rv, "continue": cont}}]


def test_the_reflector_lists_in_pages_watches_and_relists_when_its_version_is_gone() -> None:
    api = ScriptedApi(
        lists=[listing([vj("a", "5")], "", cont="page2"), listing([vj("b", "6")], "10"),
               listing([vj("b", "30"), vj("c", "31")], "40")],
        watches=[
            [{"type": "ADDED", "object": vj("d", "11")},
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}],
            # The server ended that watch; the next starts at 15, and is told 15 is compacted.
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}],
        ])
    store = VideoJobs()
    restarts: list[tuple[str, str]] = []
    reflector = Reflector(api, "/apis/videojob.dev/v1alpha1/videojobs", store, what="videojobs",
                          page_size=1, restarted=lambda what, why: restarts.append((what, why)))

    async def run() -> None:
        task = asyncio.create_task(reflector.run())
        await asyncio.wait_for(api.done.wait(), 5)
        task.cancel()

    asyncio.run(run())
    kinds = [(kind, p.get("continue"), p.get("resourceVersion")) for kind, p in api.asked]
    assert kinds == [("list", None, None), ("list", "page2", None),
                     ("watch", None, "10"), ("watch", None, "15"),
                     ("list", None, None), ("watch", None, "40")]
    assert all(p.get("allowWatchBookmarks") == "true" for k, p in api.asked if k == "watch")
    assert restarts == [("videojobs", "gone")]
    assert names(store) == ["b", "c"]  # the relist replaced a and d
    assert reflector.synced.is_set() and reflector.lists == 2
