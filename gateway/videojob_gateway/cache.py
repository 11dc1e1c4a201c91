"""The gateway's copy of what it serves: VideoJobs, VideoJobPools, namespaces and API-key
Secrets, each listed once and then watched, so a read costs the API server nothing.

client-go's reflector, on asyncio: list (in pages) → remember the list's resourceVersion →
watch from it with bookmarks (they move the resourceVersion on while nothing changes, so a
reconnect after a quiet hour does not fall behind etcd's compaction) → on a watch that ends,
watch again from the last resourceVersion seen → on 410 Gone (that resourceVersion was
compacted away), list again. Errors back off (0.5 s doubling to 30 s).

Everything runs on the event loop that serves requests: one thread, so the stores need no
locks, and a VideoJob's change reaches the streams that wait on it (`Mailbox`) without a hop.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from videojob_common.pipeline import Obj

from .keys import InvalidKeySecret, KeyRing, from_secret
from .kube import ApiError, ApiUnavailable
from .pages import SortKey, sort_key

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class ObjectStore:
    """The objects of one kind, by (namespace, name), as the last list and watch left them."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._objects: dict[Key, Obj] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._objects.get((namespace, name))

    def values(self) -> Iterator[Obj]:
        return iter(list(self._objects.values()))

    def replace(self, objects: list[Obj]) -> None:
        """A fresh list: what it lacks is gone."""
        fresh = {key_of(o): o for o in objects}
        for key in [k for k in self._objects if k not in fresh]:
            self._remove(key)
        for key, obj in fresh.items():
            self._upsert(key, obj)
        if self._on_change:
            self._on_change()

    def apply(self, kind: str, obj: Obj) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        key = key_of(obj)
        if kind == "DELETED":
            self._remove(key)
        else:
            self._upsert(key, obj)
        if self._on_change:
            self._on_change()

    def _upsert(self, key: Key, obj: Obj) -> None:
        self._objects[key] = obj

    def _remove(self, key: Key) -> None:
        self._objects.pop(key, None)


class Namespaces(ObjectStore):
    def exists(self, namespace: str) -> bool:
        return self.get("", namespace) is not None


class KeySecrets(ObjectStore):
    """The API-key Secrets (keys.py), as the key ring they make."""

    def __init__(self) -> None:
        super().__init__(on_change=self._rebuild)
        self.ring = KeyRing()

    def _rebuild(self) -> None:
        records = []
        for secret in self.values():
            try:
                records.append(from_secret(secret))
            except InvalidKeySecret as e:
                log.warning("API key ignored: %s", e)
        self.ring = KeyRing(records)


@dataclass(frozen=True)
class Change:
    """A VideoJob's new state; `obj` None: it is gone."""

    obj: Obj | None


class Mailbox:
    """The latest change of one VideoJob for one reader: a newer change replaces an unread one
    (a stream sends states, not every step between them)."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._latest: Change | None = None

    def put(self, change: Change) -> None:
        self._latest = change
        self._ready.set()

    async def next(self, timeout: float) -> Change | None:
        """The change not read yet, waiting up to `timeout` seconds; None if none came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        change, self._latest = self._latest, None
        self._ready.clear()
        return change


class VideoJobs(ObjectStore):
    """VideoJobs, with each namespace's keys in order (pages.py) and readers per VideoJob."""

    # How long a VideoJob this gateway created may be missing from the cache before a read
    # says 404: the watch brings it within milliseconds, but "create, then read" must not fail
    # in between (the Job controller's "expectations", for reads).
    EXPECTATION_SECONDS = 30.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._index: dict[str, list[SortKey]] = {}
        self._readers: dict[Key, set[Mailbox]] = {}
        self._expected: dict[Key, float] = {}
        self._clock = clock

    def namespaces(self) -> list[str]:
        return [ns for ns, keys in self._index.items() if keys]

    def index(self, namespace: str) -> list[SortKey]:
        """The namespace's sort keys, ascending (read-only)."""
        return self._index.get(namespace, [])

    def by_sort_key(self, key: SortKey) -> Obj | None:
        return self.get(key[1], key[2])

    def _upsert(self, key: Key, obj: Obj) -> None:
        old = self._objects.get(key)
        if old is not None and resource_version(old) == resource_version(obj):
            return  # a relist repeating what the watch brought
        if old is not None and sort_key(old) != sort_key(obj):
            self._unindex(sort_key(old))  # recreated under the same name
            old = None
        self._objects[key] = obj
        if old is None:
            bisect.insort(self._index.setdefault(key[0], []), sort_key(obj))
        self._expected.pop(key, None)
        self._tell(key, Change(obj))

    def _remove(self, key: Key) -> None:
        old = self._objects.pop(key, None)
        if old is None:
            return
        self._unindex(sort_key(old))
        self._tell(key, Change(None))

    def _unindex(self, skey: SortKey) -> None:
        keys = self._index.get(skey[1], [])
        i = bisect.bisect_left(keys, skey)
        if i < len(keys) and keys[i] == skey:
            del keys[i]

    def _tell(self, key: Key, change: Change) -> None:
        for mailbox in self._readers.get(key, ()):
            mailbox.put(change)

    @contextlib.contextmanager
    def reading(self, namespace: str, name: str) -> Iterator[Mailbox]:
        """A mailbox that gets the VideoJob's changes, starting with its current state."""
        key = (namespace, name)
        mailbox = Mailbox()
        self._readers.setdefault(key, set()).add(mailbox)
        current = self._objects.get(key)
        if current is not None:
            mailbox.put(Change(current))
        try:
            yield mailbox
        finally:
            readers = self._readers.get(key, set())
            readers.discard(mailbox)
            if not readers:
                self._readers.pop(key, None)

    def readers(self) -> int:
        return sum(len(r) for r in self._readers.values())

    def expect(self, namespace: str, name: str) -> None:
        """This gateway just created it: reads wait for the watch to bring it."""
        now = self._clock()
        self._expected = {k: t for k, t in self._expected.items()
                          if now - t < self.EXPECTATION_SECONDS}
        if (namespace, name) not in self._objects:
            self._expected[(namespace, name)] = now

    async def get_fresh(self, namespace: str, name: str, wait: float = 2.0) -> Obj | None:
        """The VideoJob, waiting up to `wait` seconds for one this gateway just created."""
        obj = self.get(namespace, name)
        since = self._expected.get((namespace, name))
        if obj is not None or since is None or self._clock() - since > self.EXPECTATION_SECONDS:
            return obj
        deadline = self._clock() + wait
        with self.reading(namespace, name) as mailbox:
            while (left := deadline - self._clock()) > 0:
                change = await mailbox.next(left)
                if change is not None and change.obj is not None:
                    return change.obj
        return self.get(namespace, name)


class Sink(Protocol):
    def replace(self, objects: list[Obj]) -> None: ...

    def apply(self, kind: str, obj: Obj) -> None: ...


class Source(Protocol):
    """What a reflector needs of the API server (kube.ApiServer; a double in unit tests)."""

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, Any] | None = None) -> Obj: ...

    def watch(self, path: str, params: Mapping[str, Any], timeout_seconds: int
              ) -> AsyncIterator[Obj]: ...


class Gone(Exception):
    """The resourceVersion to watch from is older than etcd keeps: list again."""


class Reflector:
    """Lists, then watches, one kind of object into a store."""

    def __init__(self, api: Source, path: str, sink: Sink, *, what: str,
                 params: Mapping[str, str] | None = None, page_size: int = 500,
                 watch_seconds: int = 290,
                 restarted: Callable[[str, str], None] = lambda what, why: None) -> None:
        self.api = api
        self.path = path
        self.sink = sink
        self.what = what
        self.params = dict(params or {})
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.restarted = restarted
        self.synced = asyncio.Event()  # the first list is in
        self.resource_version = ""
        self.lists = 0

    async def run(self) -> None:
        delay = 0.5
        must_list = True
        while True:
            try:
                if must_list:
                    await self._list()
                    must_list = False
                await self._watch()
                delay = 0.5
            except Gone:
                log.info("%s: resourceVersion %s is gone; listing again", self.what,
                         self.resource_version)
                self.restarted(self.what, "gone")
                must_list = True
            except (ApiError, ApiUnavailable) as e:
                log.warning("%s: %s; again in %.1f s", self.what, e, delay)
                self.restarted(self.what, "error")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception:
                # Whatever it was (an event the stores could not take), a reflector that stops
                # leaves a cache that looks synced and is not: list again from scratch.
                log.exception("%s: unexpected error; listing again in %.1f s", self.what, delay)
                self.restarted(self.what, "error")
                must_list = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _list(self) -> None:
        items: list[Obj] = []
        token = ""
        while True:
            params = {**self.params, "limit": str(self.page_size)}
            if token:
                params["continue"] = token
            try:
                listing = await self.api.request("GET", self.path, params=params)
            except ApiError as e:
                if e.status == 410 and token:  # the continue token expired: start over
                    items, token = [], ""
                    continue
                raise
            items.extend(listing.get("items") or [])
            meta = listing.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                break
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.sink.replace(items)
        self.lists += 1
        self.synced.set()

    async def _watch(self) -> None:
        params = {**self.params, "resourceVersion": self.resource_version,
                  "allowWatchBookmarks": "true"}
        try:
            async for event in self.api.watch(self.path, params, self.watch_seconds):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    if code == 410:
                        raise Gone()
                    raise ApiError(code or 500, obj)
                rv = resource_version(obj)
                if kind != "BOOKMARK":
                    self.sink.apply(str(kind), obj)
                if rv:
                    self.resource_version = rv
        except ApiError as e:
            if e.status == 410:
                raise Gone() from e
            raise
