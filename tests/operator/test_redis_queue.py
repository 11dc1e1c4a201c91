"""The queue mirror in a real redis-server: written as the difference from the last sync, read
back only on a verifying sync, and rebuilt by one after Redis lost it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from videojob_operator.admission_policy import PoolDecision, PoolLimits, Workload, decide
from videojob_operator.redis_queue import (
    RedisQueue,
    head_left,
    only_moved_up,
    queue_key,
    sync_gap,
)
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


def evals(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_eval", {}).get("calls", 0))


def places(r: redis.Redis) -> dict[str, float]:
    return {m.decode(): s for m, s in r.zrange(queue_key("cpu"), 0, -1, withscores=True)}


async def mirrored(url: str) -> RedisQueue:
    """A mirror whose first sync wrote VideoJobs 0..299 queued in the cpu pool."""
    mirror = RedisQueue(url)
    mirror.publish(decision(0, 300), {})
    await mirror.sync()  # the first: reads back what Redis holds (nothing)
    return mirror


def test_a_changed_queue_is_written_without_reading_it_back(server: RedisServer) -> None:
    r = redis.Redis.from_url(server.url)
    r.flushall()

    async def scenario() -> None:
        mirror = await mirrored(server.url)
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


def test_a_queue_moved_up_is_renumbered_by_redis_and_any_other_change_written_as_is(
        server: RedisServer) -> None:
    """The head leaving and new Jobs at the tail move every place: Redis renumbers the set itself
    (one EVAL, not 300 scores sent). A Job queued ahead of others (a higher priority) is not a
    move up: the changed places are written. Either way every score is the member's place."""
    r = redis.Redis.from_url(server.url)
    r.flushall()

    async def scenario() -> None:
        mirror = await mirrored(server.url)
        before = evals(r)
        mirror.publish(decision(5, 320), {})  # five admitted, twenty more queued
        await mirror.sync()
        assert evals(r) == before + 1
        assert places(r) == {f"a/vj{i:04d}-plan": float(i - 5) for i in range(5, 320)}
        urgent = decide("cpu", PoolLimits(0), [queued(i) for i in range(5, 320)]
                        + [replace(queued(999), priority=5)])
        mirror.publish({"cpu": urgent}, {})
        await mirror.sync()
        assert evals(r) == before + 1
        assert places(r) == {"a/vj0999-plan": 0.0,
                            **{f"a/vj{i:04d}-plan": float(i - 4) for i in range(5, 320)}}
        await mirror.client.aclose()

    asyncio.run(scenario())


def test_a_queue_growing_at_its_tail_gets_only_the_new_places(server: RedisServer) -> None:
    """Nothing left the head: the places there stand, the new members are added after them,
    and nothing is renumbered. A Job leaving from the middle is no head leaving: the places
    behind it are written as they are."""
    r = redis.Redis.from_url(server.url)
    r.flushall()

    async def scenario() -> None:
        mirror = await mirrored(server.url)
        before = evals(r)
        mirror.publish(decision(0, 340), {})
        await mirror.sync()
        assert evals(r) == before
        assert places(r) == {f"a/vj{i:04d}-plan": float(i) for i in range(340)}
        gone = decide("cpu", PoolLimits(0), [queued(i) for i in range(340) if i != 100])
        mirror.publish({"cpu": gone}, {})
        await mirror.sync()
        assert places(r) == {f"a/vj{i:04d}-plan": float(i - (i > 100)) for i in range(340)
                            if i != 100}
        await mirror.client.aclose()

    asyncio.run(scenario())


def test_head_left_finds_a_queue_whose_head_left_and_tail_grew() -> None:
    assert head_left(["a", "b", "c"], ["b", "c", "d"]) == (["a"], ["d"])
    assert head_left(["a", "b", "c"], ["a", "b", "c", "d"]) == ([], ["d"])
    assert head_left(["a", "b", "c"], ["c"]) == (["a", "b"], [])
    assert head_left(["a", "b", "c"], ["a", "b", "c"]) == ([], [])
    assert head_left(["a", "b", "c"], []) == (["a", "b", "c"], [])
    assert head_left([], ["a"]) == ([], ["a"])
    assert head_left(["a", "b", "c"], ["x", "b", "c"]) is None  # a new member first
    assert head_left(["a", "b", "c"], ["a", "c"]) is None  # one left from the middle
    assert head_left(["a", "b", "c"], ["b", "a", "c"]) is None  # reordered
    # Left and queued again at the tail: taken out, then put back last.
    assert head_left(["a", "b", "c"], ["b", "c", "a"]) == (["a"], ["a"])


def test_only_moved_up_finds_the_members_added_at_the_tail() -> None:
    assert only_moved_up(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert only_moved_up(["a", "b", "c"], ["a", "c"]) == []
    assert only_moved_up(["a", "b", "c"], ["x", "b", "c"]) is None  # new ahead of b
    assert only_moved_up(["a", "b", "c"], ["c", "b"]) is None  # reordered
    assert only_moved_up([], ["a"]) == ["a"]


def test_a_redis_without_scripting_gets_every_place_sent(server: RedisServer) -> None:
    """A user whom an ACL denies Lua scripting (as some managed Redis do): the renumbering is
    refused once, and the mirror writes every moved place instead, then and from then on."""
    r = redis.Redis.from_url(server.url)
    r.flushall()
    r.acl_setuser("noscript", enabled=True, nopass=True, keys=["*"],
                  commands=["+@all", "-@scripting"])
    host = server.url.removeprefix("redis://")

    def places(r) -> dict[str, float]:
        return {m.decode(): s for m, s in r.zrange(queue_key("cpu"), 0, -1, withscores=True)}

    async def scenario() -> None:
        mirror = RedisQueue(f"redis://noscript:x@{host}")
        mirror.publish(decision(0, 300), {})
        await mirror.sync()
        for first, n in ((5, 320), (9, 330)):
            mirror.publish(decision(first, n), {})
            await mirror.sync()
            assert places(r) == {f"a/vj{i:04d}-plan": float(i - first) for i in range(first, n)}
        assert not mirror.renumber
        await mirror.client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        r.acl_deluser("noscript")


def test_long_syncs_come_further_apart() -> None:
    assert sync_gap(0.001) == 0.2
    assert sync_gap(0.1) == pytest.approx(0.9)
