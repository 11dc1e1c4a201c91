"""The admission queues mirrored in Redis: order and counters, rebuilt from the cluster.

Kubernetes is the source of truth (admission.py): the queue is the set of suspended stage Jobs.
After each admission pass the operator writes that queue here, so tools that speak Redis (or a
KEDA scaler) see it:

- `videojob:queue:<pool>`  sorted set, member `<namespace>/<job>`, score = place (0 = next);
- `videojob:held:<pool>`   sorted set of Jobs held by a suspended VideoJob;
- `videojob:pool:<pool>`   hash: queued, queued_pods, running, pending, max, desired, and
  `admitted_total` (incremented on each admission).

A pool whose queue, held set and counters are as last written is skipped (during a burst, most
syncs change one pool or none), and a changed one is written as the difference from what the
last sync wrote. At least every VERIFY_INTERVAL seconds a sync compares every pool with what
Redis holds and fixes the difference, and so does the first sync after a broken connection: a
restarted or flushed Redis is rebuilt within that time. While Redis is unreachable
admission goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from . import metrics
from .admission_policy import PoolDecision

log = logging.getLogger("videojob.redis_queue")
MIN_INTERVAL = 0.2  # seconds between syncs: a burst of passes makes one write
VERIFY_INTERVAL = 10.0  # seconds between syncs that read Redis back, changed or not
# A queue whose head left (and whose tail grew) has every place behind it moved: past this many
# places changed, Redis renumbers the set itself (RENUMBER) rather than being sent every member
# with its new score. With 3,000 queued, packing those ZADDs took a tenth of the event loop.
RENUMBER_AT = 16
# Each member's score made its rank, in Redis: the set's order is right, its scores are not.
RENUMBER = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '+inf')
for i = 1, #members do redis.call('ZADD', KEYS[1], i - 1, members[i]) end
return #members
"""


def queue_key(pool: str) -> str:
    return f"videojob:queue:{pool}"


def held_key(pool: str) -> str:
    return f"videojob:held:{pool}"


def pool_key(pool: str) -> str:
    return f"videojob:pool:{pool}"


class RedisQueue:
    def __init__(self, url: str) -> None:
        self.client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.latest: dict[str, PoolDecision] | None = None
        self.held: dict[str, list[str]] = {}
        self.admitted: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.healthy = False
        self.written: dict[str, tuple[Any, ...]] = {}  # per pool, what the last sync wrote
        self.verified_at = float("-inf")  # when a sync last read every pool back
        self.renumber = True  # False once Redis refused the script (no Lua scripting there)

    def publish(self, decisions: dict[str, PoolDecision], held: dict[str, list[str]]) -> None:
        self.latest, self.held = decisions, held
        for d in decisions.values():
            admitted = sum(1 for a in d.admits if not a.widen)
            self.admitted[d.pool] = self.admitted.get(d.pool, 0) + admitted
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            await self.wake.wait()
            self.wake.clear()
            try:
                started = time.perf_counter()
                await self.sync()
                took = time.perf_counter() - started
                if not self.healthy:
                    log.info("admission queues mirrored in Redis")
                self.healthy, backoff = True, 0.5
                metrics.REDIS_QUEUE_UP.set(1)
                await asyncio.sleep(sync_gap(took))
            except (aioredis.RedisError, OSError) as e:
                if self.healthy or backoff == 0.5:
                    log.warning("Redis queue mirror unavailable (%s); admission carries on "
                                "from the cluster and the queue is rebuilt on reconnect", e)
                self.healthy = False
                self.verified_at = float("-inf")  # whatever Redis holds now, check it all
                metrics.REDIS_QUEUE_UP.set(0)
                self.wake.set()  # try again after the back-off
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)
        await self.client.aclose()

    async def sync(self) -> None:
        if self.latest is None:
            return
        loop = asyncio.get_running_loop()
        verify = loop.time() - self.verified_at >= VERIFY_INTERVAL
        for pool, d in self.latest.items():
            admitted = {(a.namespace, a.job) for a in d.admits if not a.widen}
            queued = [f"{w.namespace}/{w.job}" for w in d.order
                      if w.queued and (w.namespace, w.job) not in admitted]
            held = self.held.get(pool, [])
            fields: dict[Any, Any] = {
                "queued": len(queued), "queued_pods": d.load.queued,
                "running": d.load.running, "pending": d.load.pending,
                "max": d.limits.max_concurrency, "desired": d.desired}
            count = self.admitted.get(pool, 0)
            content = (queued, held, fields)
            if not verify and not count and self.written.get(pool) == content:
                continue
            # What this pool's last sync wrote stands for what Redis holds, but on a verifying
            # sync: with 10,000 queued, reading the queue back on every sync cost more than
            # writing the change.
            before = None if verify else self.written.get(pool)
            self.written.pop(pool, None)  # unknown until this pool's writes are done
            await self._mirror(queue_key(pool), queued, before[0] if before else None)
            await self._mirror(held_key(pool), held, before[1] if before else None)
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(pool_key(pool), mapping=fields)
            if count:
                pipe.hincrby(pool_key(pool), "admitted_total", count)
            await pipe.execute()
            self.admitted[pool] -= count
            self.written[pool] = content
        if verify:
            self.verified_at = loop.time()

    async def _mirror(self, key: str, members: list[str], written: list[str] | None) -> None:
        """The sorted set `key` made `members` in order. `written`: what the last sync wrote
        there, when it stands for what Redis holds; None: read it back."""
        quick = head_left(written, members) if written is not None else None
        if written is not None and quick is not None and (
                not quick[0] or (self.renumber and len(members) > RENUMBER_AT)):
            # The usual change of a long queue, found without a look at each member: its head
            # admitted (every place behind moves: renumbered in Redis), new Jobs behind.
            left, behind = quick
            if left or behind:
                await self._send(key, members, left, {
                    m: float(len(written) + i) for i, m in enumerate(behind)}, bool(left))
            return
        want = {m: float(i) for i, m in enumerate(members)}
        if written is not None:
            have = {m: float(i) for i, m in enumerate(written)}
        else:
            pairs: list[Any] = await self.client.zrange(key, 0, -1, withscores=True)
            have = {m.decode() if isinstance(m, bytes) else str(m): float(s) for m, s in pairs}
        stale = [m for m in have if m not in want]
        changed = {m: s for m, s in want.items() if have.get(m) != s}
        if not stale and not changed:
            return
        tail = (only_moved_up(list(have), members)
                if self.renumber and len(changed) > RENUMBER_AT else None)
        if tail is not None:  # after everything there, in order
            top = max(have.values(), default=-1.0) + 1
            await self._send(key, members, stale, {m: top + i for i, m in enumerate(tail)},
                             True)
        else:
            await self._send(key, members, stale, changed, False)

    async def _send(self, key: str, members: list[str], stale: list[str],
                    scores: dict[str, float], renumber: bool) -> None:
        """Removes `stale`, adds `scores` and (`renumber`) makes each score its rank: the set
        then holds `members` in order."""
        pipe = self.client.pipeline(transaction=True)
        if stale:
            pipe.zrem(key, *stale)
        if scores:
            pipe.zadd(key, scores)
        if renumber:
            pipe.eval(RENUMBER, 1, key)
        try:
            await pipe.execute()
        except aioredis.ResponseError as e:
            if not renumber:
                raise
            # Scripting disabled or not allowed (an ACL, a managed Redis): every place is sent.
            log.warning("Redis refused the queue's renumbering script (%s); the mirror sends "
                        "every moved place from now on", e)
            self.renumber = False
            pipe = self.client.pipeline(transaction=True)
            if stale:
                pipe.zrem(key, *stale)
            if members:
                pipe.zadd(key, {m: float(i) for i, m in enumerate(members)})
            await pipe.execute()


def head_left(have: list[str], want: list[str]) -> tuple[list[str], list[str]] | None:
    """(left, tail) when `want` is `have` less its first members, then new ones at its end: a
    queue whose head was admitted and whose tail grew, as between most syncs. Found by
    comparing slices, not member by member, so a sync of 10,000 unchanged places costs little.
    None for any other change (a Job placed ahead of others, one leaving from the middle)."""
    if not want or not have:
        return list(have), list(want)
    try:
        k = have.index(want[0])
    except ValueError:
        return None  # a new member first
    kept = len(have) - k
    if want[:kept] != have[k:]:
        return None
    return have[:k], want[kept:]


def only_moved_up(have: list[str], want: list[str]) -> list[str] | None:
    """`want`'s members not in `have` (in order), if `want` is `have` less some members, plus
    those at its end: the members both hold are in the same order, and every new one comes after
    them. Then adding the new ones after everything and renumbering gives `want`. None if not."""
    present = set(have)
    kept = [m for m in want if m in present]
    if want[:len(kept)] != kept:
        return None  # a new member before one already there
    wanted = set(want)
    if kept != [m for m in have if m in wanted]:
        return None  # reordered
    return want[len(kept):]


def sync_gap(took: float) -> float:
    """Seconds after a sync that took `took` before the next: MIN_INTERVAL, or more when syncs
    are long, so that the mirror never takes more than a tenth of the event loop. A sync orders
    every queue (admission_policy.PoolDecision.order): with 10,000 queued, tens of ms."""
    return max(MIN_INTERVAL, 9 * took)
