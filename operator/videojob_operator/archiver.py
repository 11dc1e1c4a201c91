"""The archive's writer: rows of the VideoJobs the planner found due (archiving.py) go to
PostgreSQL in batches, off the reconcile path; then each VideoJob's annotation is set.

A reconcile never waits on the database. The controller hands over the keys of due VideoJobs
(`add`); this loop takes them a batch at a time, builds each row from the VideoJob and pods as
the store holds them now, commits the batch (videojob_common.archive.Archive.upsert, on a thread:
psycopg blocks), then sets `videojob.dev/archived` on each VideoJob (a merge patch naming its
uid, so a VideoJob re-created under the same name is never marked for its predecessor).

What is pending lives here in memory only, and that is enough: the cluster is the truth. After a
restart every VideoJob is reconciled, and the planner finds the due ones again by their
annotations. A database that is down or refuses is retried with backoff (up to 30 s), every key
kept. The schema's migrations run at start (migrate.py), and retention once per
`archive.retention_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubernetes.client import ApiException

from . import archiving, metrics
from .config import LiveConfig
from .kube import Api
from .store import Key, Store

if TYPE_CHECKING:  # psycopg is only needed (and imported) when the archive is on
    from videojob_common.archive.store import Archive

log = logging.getLogger("videojob.archive")
BACKOFF_MAX = 30.0


class Archiver:
    def __init__(self, store: Store, config: LiveConfig, api: Api, key: bytes, *,
                 requeue: Callable[[Key], None], clock: Callable[[], dt.datetime],
                 archive: Callable[[str], Archive] | None = None) -> None:
        self.store, self.config, self.api, self.key = store, config, api, key
        self.requeue, self.clock, self.make_archive = requeue, clock, archive
        self.pending: dict[Key, None] = {}  # in the order they came
        self.wake = asyncio.Event()
        self.archive: Archive | None = None
        self.failures = 0
        self.retention_due = 0.0

    def add(self, key: Key) -> None:
        """The VideoJob is due (its status as the planner saw it is written)."""
        if key not in self.pending:
            self.pending[key] = None
            metrics.ARCHIVE_PENDING.set(len(self.pending))
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.archive is None:
                    self.archive = await asyncio.to_thread(self._connect)
                    self.failures = 0
                if self.pending:
                    await self._write_batch()
                    self.failures = 0
                if time.monotonic() >= self.retention_due:
                    await self._retention()
            except Exception as e:
                self.failures += 1
                delay = min(BACKOFF_MAX, 0.5 * 2 ** (self.failures - 1))
                metrics.ARCHIVE_ERRORS.inc()
                log.warning("archive: %s: %s; again in %.1f s", type(e).__name__, e, delay)
                await _sleep_or(stop, delay)
                continue
            if not self.pending:
                self.wake.clear()
                timeout = max(self.retention_due - time.monotonic(), 0.1)
                await _wait_any(stop, self.wake, timeout)

    async def close(self) -> None:
        if self.archive is not None:
            await asyncio.to_thread(self.archive.close)

    # -- steps ------------------------------------------------------------------------------

    def _connect(self) -> Archive:
        dsn = self.config.current.archive.dsn
        assert dsn is not None
        if self.make_archive is None:
            from videojob_common.archive.store import Archive
            self.make_archive = Archive
        archive = self.make_archive(dsn.get_secret_value())
        try:
            archive.open(timeout=10)
            report = archive.migrate()
        except Exception:
            archive.close()
            raise
        log.info("archive: connected; schema %s", report)
        return archive

    async def _write_batch(self) -> None:
        assert self.archive is not None
        cfg = self.config.current.archive
        keys = list(self.pending)[:cfg.batch]
        now = self.clock()
        rows, marks = [], []
        for key in keys:
            vj = self.store.videojobs.get(key)
            if vj is None:
                continue
            uid = vj["metadata"]["uid"]
            jobs, pods = self.store.children(key, uid)
            phase = archiving.archived_phase(vj, children_left=bool(jobs or pods))
            if phase is None or archiving.archived(vj, phase, self.key):
                continue
            rows.append(archiving.archive_row(vj, self.store.pod_objects(key, uid), phase, now))
            marks.append((key, uid, archiving.fingerprint(vj, phase, self.key)))
        started = time.monotonic()
        if rows:
            await asyncio.to_thread(self.archive.upsert, rows, cfg.batch)
            metrics.ARCHIVE_WRITE_SECONDS.observe(time.monotonic() - started)
            metrics.ARCHIVED.inc(len(rows))
        for key in keys:
            self.pending.pop(key, None)
        metrics.ARCHIVE_PENDING.set(len(self.pending))
        for key, uid, mark in marks:
            if not await self._mark(key, uid, mark):
                self.add(key)  # committed, not marked: written again (the same row) later

    async def _mark(self, key: Key, uid: str, mark: str) -> bool:
        try:
            updated = await self.api.call(self.api.kube.patch_videojob, *key, {
                "metadata": {"uid": uid, "annotations": {archiving.ANNOTATION_ARCHIVED: mark}}})
        except ApiException as e:
            if e.status in (404, 409):  # gone, or another VideoJob under that name now
                return True
            log.warning("archive: marking %s/%s archived: %s %s", *key, e.status, e.reason)
            metrics.ARCHIVE_ERRORS.inc()
            return False
        self.store.remember(key, updated)
        self.requeue(key)  # a deletion the archive held may go now
        return True

    async def _retention(self) -> None:
        assert self.archive is not None
        cfg = self.config.current.archive
        self.retention_due = time.monotonic() + cfg.retention_interval_seconds
        policies = [r.policy() for r in cfg.retention]
        if not policies:
            return
        deleted = await asyncio.to_thread(self.archive.apply_retention, policies, self.clock())
        for namespace, n in deleted.items():
            log.info("archive: retention removed %d row(s) of namespace %s", n, namespace)
            metrics.ARCHIVE_EXPIRED.inc(n)


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
