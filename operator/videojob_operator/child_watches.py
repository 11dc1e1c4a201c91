"""The watches of the stage Jobs and their pods, read on threads of their own.

kopf watches the VideoJobs (handlers.py). The children carry most of the events: a stage's
Job and pod each change five times or so. Through kopf, every event went through its
per-object queue and handler machinery, only to be put in a cache.

Here one thread per watch (kind, and namespace or the whole cluster) does the reading:
- it reads the stream in large pieces (videojob_common.watch_stream: one socket read per
  piece, not several per event, so a busy event loop cannot make it fall behind), parses each
  event (orjson: the pods' and Jobs' JSON was the largest part of the operator's CPU) and
  trims the object as the caches keep it (`store.slim`), all off the event loop;
- it hands the loop the small copies. One callback drains everything that has arrived since
  the last one, so a burst costs the loop one wake-up, not one per event.

A watch starts from the resourceVersion of the listing that primed the cache, so nothing
between the two is missed. The stream ends every `WATCH_TIMEOUT` seconds and is reopened from
the last version seen; bookmarks keep that version fresh when nothing changes.
- A version the API server no longer has (410 Gone) is answered with a new listing, fed in
  a page at a time as the resync's is (`Store.relist`), and the watch goes on from its version.
- A broken connection is retried with back-off from the last version.
- The resync (`Store.resync`) stays the safety net for anything else.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import urllib3
from kubernetes.client import ApiException

from videojob_common.pipeline import Obj
from videojob_common.watch_stream import lines as watch_lines

from . import metrics
from .jobs import LABEL_NAME
from .store import Store, slim

log = logging.getLogger("videojob.children")

WATCH_TIMEOUT = 300  # seconds a watch runs before it is reopened (server side)
READ_TIMEOUT = WATCH_TIMEOUT + 30  # a silent stream is taken for a stuck one (kopf#585)
BACKOFF_MAX = 10.0


class Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class ChildWatch:
    """One watch of Jobs or pods carrying the operator's label, in one namespace or all."""

    def __init__(self, store: Store, kind: str, namespace: str | None,
                 resource_version: int, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.kind = kind
        self.namespace = namespace
        self.resource_version = resource_version
        self.loop = loop
        self.stopping = threading.Event()
        # (type, trimmed object, when read: monotonic)
        self.arrived: collections.deque[tuple[str, Obj, float]] = collections.deque()
        self.drain_pending = False
        self.lock = threading.Lock()
        self.response: Any = None
        self.thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"watch-{kind}s-{namespace or 'all'}")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        response = self.response
        if response is not None:
            try:
                response.shutdown()  # unblocks the read the thread is waiting in
            except Exception:  # already closed, or no socket left to shut down
                log.debug("closing the %s watch", self.kind, exc_info=True)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                opened = time.monotonic()
                for event_type, obj in self._stream():
                    self._hand_over(event_type, obj, time.monotonic())
                    backoff = 0.5
                self._ended(time.monotonic() - opened)
            except Gone:
                log.info("%s watch expired at resourceVersion %s; listing again",
                         self.kind, self.resource_version)
                metrics.WATCH_RESTARTS.labels(self.kind, "expired").inc()
                if not self._relist():
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as e:  # the thread must outlive whatever broke
                if self.stopping.is_set():
                    return
                expected = isinstance(e, (ApiException, urllib3.exceptions.HTTPError, OSError,
                                          ValueError))
                log.warning("%s watch broke (%s); reopening in %.1fs", self.kind, e, backoff,
                            exc_info=not expected)
                metrics.WATCH_RESTARTS.labels(self.kind, "error").inc()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _ended(self, lasted: float) -> None:
        """A stream the API server ended. Before its timeout, the server closed it: one it took
        for too slow a reader ("Forcing watcher close due to unresponsiveness" in its log), or
        one shutting down. The watch goes on from its last version either way."""
        if self.stopping.is_set() or lasted >= WATCH_TIMEOUT - 5:
            return
        log.info("%s watch closed by the API server after %.1fs; reopening from "
                 "resourceVersion %s", self.kind, lasted, self.resource_version)
        metrics.WATCH_RESTARTS.labels(self.kind, "closed").inc()

    def _stream(self) -> Iterator[tuple[str, Obj]]:
        """The events of one watch request, objects trimmed; BOOKMARKs only move the version."""
        fn, args = self.store.api.list_fn(self.kind, self.namespace)
        try:
            response = fn(*args, label_selector=LABEL_NAME, watch=True,
                          resource_version=str(self.resource_version),
                          allow_watch_bookmarks=True, timeout_seconds=WATCH_TIMEOUT,
                          _preload_content=False, _request_timeout=(10, READ_TIMEOUT))
        except ApiException as e:
            if e.status == 410:
                raise Gone from e
            raise
        self.response = response
        try:
            for line in watch_lines(response):
                event = orjson.loads(line)
                obj = event.get("object") or {}
                event_type = event.get("type")
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = int(version)
                if event_type in ("ADDED", "MODIFIED", "DELETED"):
                    yield event_type, slim(self.kind, obj)
        finally:
            self.response = None
            # Read past urllib3 (watch_stream.py): the connection cannot be reused.
            response.close()
            response.release_conn()

    def _relist(self) -> bool:
        """A fresh listing fed into the cache, on the loop, a page at a time (Store.relist); the
        watch goes on from its version. False if the listing failed."""
        try:
            version, changes = asyncio.run_coroutine_threadsafe(
                self.store.relist(self.kind, self.namespace), self.loop).result()
        except Exception as e:  # the API server down, say: try again after a pause
            log.warning("listing %ss again failed: %s", self.kind, e)
            return False
        if changes:
            log.info("%s listing again: %d change(s) the watch had not delivered", self.kind,
                     changes)
        self.resource_version = version
        return True

    def _hand_over(self, event_type: str, obj: Obj, at: float) -> None:
        with self.lock:
            self.arrived.append((event_type, obj, at))
            if self.drain_pending:
                return
            self.drain_pending = True
        self.loop.call_soon_threadsafe(self._drain)

    # -- the loop ---------------------------------------------------------------------------

    def _drain(self) -> None:
        with self.lock:
            events = list(self.arrived)
            self.arrived.clear()
            self.drain_pending = False
        for event_type, obj, at in events:
            try:
                self.store.observe_child(self.kind, event_type, obj, trimmed=True,
                                              arrived=at)
            except Exception:
                log.exception("%s event not applied", self.kind)


def start(store: Store, versions: list[tuple[str, str | None, int]],
          loop: asyncio.AbstractEventLoop) -> list[ChildWatch]:
    """A watch per (kind, namespace or None, version to start from), started."""
    watches = [ChildWatch(store, kind, ns, version, loop) for kind, ns, version in versions]
    for w in watches:
        w.start()
    return watches

