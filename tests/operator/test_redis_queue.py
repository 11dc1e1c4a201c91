"""The queue mirror in a real redis-server: written as the difference from the last sync, read
back only on a verifying sync, and rebuilt by one after Redis lost it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from videojob_operator.admission_policy import PoolDecision, PoolLimits, Workload, decide
from videojob_operator.redis_queue import RedisQueue, queue_key
from videojob_testkit.processes import RedisServer, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(port=free_port(), dir=Path(tmp_path_factory.mktemp("redis")))
    s.start()
    yield s
    s.stop()


def queued(i: int) -> Workload:
    return Workload(namespace="a", job=f"vj{i:04d}-plan", videojob=f"vj{i:04d}", stage="plan",
                    pool="cpu", priority=0, created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                    completions=1, succeeded=0, parallelism=1, suspended=True, held=False,
                    finished=False)


def decision(first: int, n: int) -> dict[str, PoolDecision]:
    """The cpu pool with VideoJobs first..n-1 queued and no room: nothing admitted."""
    return {"cpu": decide("cpu", PoolLimits(0), [queued(i) for i in range(first, n)])}


def zrange_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_zrange", {}).get("calls", 0))


def test_a_changed_queue_is_written_without_reading_it_back(server: RedisServer) -> None:
    r = redis.Redis.from_url(server.url)
    r.flushall()

    async def scenario() -> None:
        mirror = RedisQueue(server.url)
        mirror.publish(decision(0, 300), {})
        await mirror.sync()  # the first: reads back what Redis holds (nothing)
        assert r.zrange(queue_key("cpu"), 0, 2) == [b"a/vj0000-plan", b"a/vj0001-plan",
                                                    b"a/vj0002-plan"]
        reads = zrange_calls(r)
        # The head leaves the queue: every place behind it moves; nothing is read back.
        mirror.publish(decision(1, 300), {})
        await mirror.sync()
        assert zrange_calls(r) == reads
        assert r.zcard(queue_key("cpu")) == 299
        assert r.zscore(queue_key("cpu"), "a/vj0001-plan") == 0.0
        assert r.zscore(queue_key("cpu"), "a/vj0299-plan") == 298.0
        # Redis loses everything: a verifying sync (every VERIFY_INTERVAL) reads back and
        # rebuilds it, though the queue did not change.
        r.flushall()
        mirror.verified_at = float("-inf")
        await mirror.sync()
        assert zrange_calls(r) > reads
        assert r.zcard(queue_key("cpu")) == 299
        assert r.zscore(queue_key("cpu"), "a/vj0299-plan") == 298.0
        await mirror.client.aclose()

    asyncio.run(scenario())
