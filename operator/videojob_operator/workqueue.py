"""The reconcile work queue, client-go's discipline: a key is never reconciled by two workers at
once, events arriving meanwhile coalesce into one more pass, and a stage hand-off goes ahead.

`add(key, urgent=True)` is for a VideoJob whose stage Job just finished: the next stage waits on
its reconcile, so it goes ahead of everything queued before it, most of all of the burst of new
VideoJobs' first reconciles when hundreds are created at once (the hand-offs of the first third
of bench/orchestration.py's run had a p99 eight times the later ones'). `add_after` is a timer
(deadlines, back-off, the once-a-second progress writes), so nothing polls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from . import metrics

Key = tuple[str, str]  # (namespace, VideoJob name)
log = logging.getLogger("videojob.workqueue")


class WorkQueue:
    def __init__(self, reconcile: Callable[[Key], Awaitable[None]], workers: int) -> None:
        self.reconcile = reconcile
        self.worker_count = workers
        # (0 for a hand-off, 1 for the rest; arrival; key)
        self.queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self.arrivals = itertools.count()
        self.queued: set[Key] = set()
        self.queued_urgent: set[Key] = set()
        self.dirty_urgent: set[Key] = set()
        self.active: set[Key] = set()
        self.dirty: set[Key] = set()
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for i in range(self.worker_count):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"reconcile-{i}"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for timer in self.timers.values():
            timer.cancel()

    def idle(self) -> bool:
        return not (self.queued or self.active or self.dirty)

    def add(self, key: Key, *, urgent: bool = False) -> None:
        """Queues a reconcile of `key`; `urgent`: a stage Job of it finished."""
        if key in self.active:
            self.dirty.add(key)
            if urgent:
                self.dirty_urgent.add(key)
            return
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait((0 if urgent else 1, next(self.arrivals), key))
        elif urgent and key not in self.queued_urgent:
            # Queued behind others already: a second, urgent entry; whichever comes out first
            # runs it, and the other is skipped.
            self.queue.put_nowait((0, next(self.arrivals), key))
        if urgent:
            self.queued_urgent.add(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Queues `key` in `delay` seconds, unless a timer due sooner is already set."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        timer = self.timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= due:
            return
        if timer is not None:
            timer.cancel()
        self.timers[key] = loop.call_at(due, self._timer_fired, key)

    def forget(self, key: Key) -> None:
        """The key is gone: its timer with it."""
        timer = self.timers.pop(key, None)
        if timer:
            timer.cancel()

    def _timer_fired(self, key: Key) -> None:
        self.timers.pop(key, None)
        self.add(key)

    async def _worker(self) -> None:
        while True:
            _, _, key = await self.queue.get()
            if key not in self.queued:
                continue  # the other entry of a key queued twice (add) ran it already
            self.queued.discard(key)
            self.queued_urgent.discard(key)
            self.active.add(key)
            started = time.perf_counter()
            metrics.RECONCILES.inc()
            try:
                await self.reconcile(key)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
                self.active.discard(key)
                self._again_if_dirty(key)

    def _again_if_dirty(self, key: Key) -> None:
        if key in self.dirty:
            self.dirty.discard(key)
            urgent = key in self.dirty_urgent
            self.dirty_urgent.discard(key)
            self.add(key, urgent=urgent)
