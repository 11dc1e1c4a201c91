"""The cache's sweep (docs/reuse.md, "Housekeeping"): every `cache.sweep_interval_seconds`,
each cache scope under the storage root is listed, the policy (cache_eviction.py) decides what
goes, and it is deleted; off the event loop (storage I/O on threads, one scope at a time).

The scopes: `<root>/<namespace>/.cache` of each namespace the operator serves (every folder of
the root when it serves all), and every `<root>/.cache-shared/<name>`. What is protected is
read from the operator's own caches at the start of each pass: the keys in the lookup answers
of the VideoJobs not finished (they may still copy those entries), and the keys in the
`VIDEOJOB_CACHE` of stage Jobs not finished (they write those entries; store.slim keeps that
variable). A VideoJob whose lookup is still in flight is not known yet: its copies are verified
(cache_lookup.py), so an entry removed under it is a miss, never wrong bytes.

A scope that cannot be listed or cleaned is logged and counted, and tried again next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from videojob_common.cache_entries import CACHE_DIR, SHARED_DIR, entry, manifest_uri
from videojob_common.pipeline import TERMINAL

from . import metrics
from .cache_eviction import Deletion, Rules, StoredObject, answer_keys, decide, entries, job_keys
from .cache_lookup import MAX_MANIFEST, CacheLookups
from .cache_storage import Storage
from .config import CacheConfig, LiveConfig, artifact_root
from .store import Store
from .views import job_view

log = logging.getLogger("videojob.cache")


@dataclass(frozen=True)
class Scope:
    uri: str
    label: str  # the metric's `cache`: the namespace, or `shared:<name>`
    namespace: str | None  # None: a shared cache (the default limit)


@dataclass
class Report:
    """One pass: what went, and what is held after it, by scope."""

    deletions: dict[str, list[Deletion]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    gauged: set[tuple[str, str]] = field(default_factory=set)  # (cache, stage) set this pass


def scopes(storage: Storage, root: str, namespaces: list[str]) -> list[Scope]:
    """The caches under `root`: the served namespaces' own (those listed there when it serves
    all), and the shared ones."""
    served = namespaces or [n for n in storage.folders(root) if not n.startswith(".")]
    own = [Scope(f"{root}/{ns}/{CACHE_DIR}", ns, ns) for ns in served]
    shared = [Scope(f"{root}/{SHARED_DIR}/{name}", f"shared:{name}", None)
              for name in storage.folders(f"{root}/{SHARED_DIR}")]
    return own + shared


def sweep_scope(storage: Storage, scope: Scope, config: CacheConfig, now: dt.datetime,
                protected: frozenset[str]) -> tuple[list[Deletion], dict[str, int]]:
    """One scope (blocking): list, decide, delete. What went, and the bytes left by stage."""
    objects = [StoredObject(path, size, modified)
               for path, size, modified in storage.objects(scope.uri)]

    def read(stage: str, key: str) -> bytes | None:
        return storage.read(manifest_uri(f"{scope.uri}/{stage}/{key}"), MAX_MANIFEST)

    found = entries(objects, lambda stage, key: read(str(stage), key))
    rules = Rules(limit=config.limit_for(scope.namespace), now=now,
                  grace=dt.timedelta(seconds=config.writer_grace_seconds), protected=protected)
    result = decide(found, rules)
    for d in result.deletions:
        where = entry(scope.uri, d.stage, d.key)
        storage.delete_folder(where if d.writer is None else f"{where}/{d.writer}")
    return list(result.deletions), {str(s): n for s, n in result.kept.items()}


class CacheSweeper:
    def __init__(self, store: Store, config: LiveConfig, lookups: CacheLookups, *,
                 clock: Callable[[], dt.datetime], storage: Storage | None = None) -> None:
        self.store, self.config, self.lookups, self.clock = store, config, lookups, clock
        self.storage = storage or lookups.storage
        self.gauged: set[tuple[str, str]] = set()

    def protected(self) -> frozenset[str]:
        """The keys VideoJobs not finished reference, and their stage Jobs not finished."""
        running = {key for key, vj in list(self.store.videojobs.items())
                   if (vj.get("status") or {}).get("phase") not in TERMINAL}
        keys: set[str] = set()
        for answer in self.lookups.answers_of(running):
            keys |= answer_keys(answer)
        for jobs in list(self.store.jobs.values()):
            for job in list(jobs.values()):
                view = job_view(job)
                if not view.complete and view.failure is None:
                    keys |= job_keys(job)
        return frozenset(keys)

    async def sweep(self) -> Report:
        """One pass over every scope."""
        current = self.config.current
        root = artifact_root(current)
        report = Report()
        try:
            found = await asyncio.to_thread(scopes, self.storage, root, current.namespaces)
        except Exception as err:
            metrics.CACHE_SWEEP_ERRORS.inc()
            log.warning("cache sweep: cannot list %s: %s", root, err)
            report.failed.append(root)
            return report
        for scope in found:
            protected = self.protected()  # again per scope: Jobs created meanwhile count
            try:
                gone, kept = await asyncio.to_thread(sweep_scope, self.storage, scope,
                                                     current.cache, self.clock(), protected)
            except Exception as err:
                metrics.CACHE_SWEEP_ERRORS.inc()
                log.warning("cache sweep: %s: %s", scope.uri, err)
                report.failed.append(scope.uri)
                report.gauged |= {g for g in self.gauged if g[0] == scope.label}  # as they were
                continue
            self._record(scope, gone, kept, report)
        for label, stage in self.gauged - report.gauged:  # a cache or stage holding nothing now
            with contextlib.suppress(KeyError):
                metrics.CACHE_BYTES.remove(label, stage)
        self.gauged = report.gauged
        log.info("cache sweep: %d scope(s), %d removed (%d bytes), %d bytes held%s",
                 len(found), sum(len(d) for d in report.deletions.values()),
                 sum(d.bytes for ds in report.deletions.values() for d in ds),
                 sum(report.held.values()),
                 f", {len(report.failed)} failed" if report.failed else "")
        return report

    def _record(self, scope: Scope, gone: list[Deletion], kept: dict[str, int],
                report: Report) -> None:
        report.deletions[scope.uri] = gone
        report.held[scope.uri] = sum(kept.values())
        for d in gone:
            metrics.CACHE_EVICTIONS.labels(d.stage, d.reason).inc()
            log.debug("cache sweep: removed %s/%s (%s, %d bytes)", scope.uri, d.path, d.reason,
                      d.bytes)
        for stage, n in kept.items():
            metrics.CACHE_BYTES.labels(scope.label, stage).set(n)
            report.gauged.add((scope.label, stage))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # never let the loop die: the next pass may do better
                metrics.CACHE_SWEEP_ERRORS.inc()
                log.exception("cache sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(),
                                       self.config.current.cache.sweep_interval_seconds)
