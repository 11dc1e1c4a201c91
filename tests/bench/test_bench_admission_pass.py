"""bench/admission_pass.py's scenario holds: each freed slot admits one queued Job, the rest of
the passes admit nothing, and the complete passes work out the queue places and mirror them
into a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench import admission_pass
from videojob_operator.redis_queue import queue_key
from videojob_testkit.processes import RedisServer, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(port=free_port(), dir=tmp_path)
    s.start()
    yield s
    s.stop()


def test_the_pass_scenario_runs_and_admits_once_per_freed_slot(server: RedisServer) -> None:
    figures = admission_pass.measure(200, server.url)  # asserts 2 * PASSES admissions itself
    assert set(figures) == set(admission_pass.KINDS) and all(v > 0 for v in figures.values())
    # The mirror holds the queue left after every admission: 200 less the running and admitted.
    left = 200 - admission_pass.SLOTS - 2 * admission_pass.PASSES
    assert redis.Redis.from_url(server.url).zcard(queue_key("cpu")) == left
