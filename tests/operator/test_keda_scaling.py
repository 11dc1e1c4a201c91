"""The scaling math against KEDA's documented ScaledJob formulas (docs "Scaling Jobs", keda
pkg/scaling/executor/scale_jobs.go), and the guards that hold whatever the strategy says."""

from __future__ import annotations

import itertools
import math

import pytest

from videojob_operator.scaling import (
    PoolLoad,
    Strategy,
    admit_count,
    cooled_desired,
    desired,
    keda_inputs,
    max_scale,
    strategy_scale,
)

STRATEGIES: tuple[Strategy, ...] = ("default", "accurate", "eager")


@pytest.mark.parametrize(("queue", "target", "maximum", "expected"), [
    (0, 1, 100, 0),
    (10, 1, 100, 10),     # one Job per item
    (10, 3, 100, 4),      # ceil(10 / 3)
    (250, 1, 100, 100),   # capped at maxReplicaCount
    (5, 10, 100, 1),      # a partly filled target still needs one
])
def test_max_scale_is_kedas(queue: int, target: int, maximum: int, expected: int) -> None:
    assert max_scale(queue, target, maximum) == expected
    if queue:
        assert expected == min(maximum, math.ceil(queue / target))


@pytest.mark.parametrize(("strategy", "scale", "running", "pending", "maximum", "expected"), [
    # default: maxScale - runningJobCount (KEDA's docs example: queue 10, running 3 -> 7)
    ("default", 10, 3, 0, 100, 7),
    ("default", 10, 3, 2, 100, 7),      # pending not subtracted (keda #6157's complaint)
    ("default", 2, 5, 0, 100, -3),
    # accurate: max - running if maxScale + running > max, else maxScale - pending
    ("accurate", 10, 3, 2, 100, 8),
    ("accurate", 10, 95, 2, 100, 5),
    ("accurate", 10, 90, 0, 100, 10),   # 10 + 90 is not > 100
    # eager: min(max - running - pending, maxScale)
    ("eager", 10, 3, 2, 100, 10),
    ("eager", 10, 93, 2, 100, 5),
    ("eager", 3, 0, 0, 100, 3),
])
def test_each_strategy_follows_kedas_formula(strategy: Strategy, scale: int, running: int,
                                             pending: int, maximum: int, expected: int) -> None:
    assert strategy_scale(strategy, scale, running, pending, maximum) == expected


def test_an_unknown_strategy_is_an_error() -> None:
    with pytest.raises(ValueError, match="strategy"):
        strategy_scale("custom", 1, 0, 0, 1)  # type: ignore[arg-type]


def test_never_more_admitted_than_queued() -> None:  # keda #5537
    for strategy in STRATEGIES:
        assert admit_count(strategy, PoolLoad(queued=2, running=0, pending=0),
                           max_concurrency=100, min_concurrency=10,
                           target_queue_length=1) == 2


def test_pending_pods_hold_their_slots_under_every_strategy() -> None:  # keda #6157, #7329
    load = PoolLoad(queued=5, running=0, pending=2)
    for strategy in STRATEGIES:
        assert admit_count(strategy, load, max_concurrency=2, min_concurrency=0,
                           target_queue_length=1) == 0


@pytest.mark.parametrize(("strategy", "load", "expected"), [
    # default sees in-flight items in the queue: maxScale = min(10, 3+3+0) - 3 running = 3
    ("default", PoolLoad(queued=3, running=3, pending=0), 3),
    # ... so a free slot is used even when the queue is short
    ("default", PoolLoad(queued=1, running=1, pending=0), 1),
    # accurate: queue 4+2, running 2 (pending included): 6 + 2 <= 10 -> 6 - 2 pending = 4
    ("accurate", PoolLoad(queued=4, running=0, pending=2), 4),
    # accurate near the cap: maxScale 10, 10 + 8 > 10 -> 10 - 8 = 2
    ("accurate", PoolLoad(queued=9, running=7, pending=1), 2),
    # eager: min(10 - 2 - 1, min(10, 5 + 1)) = 6, then capped by the 5 queued
    ("eager", PoolLoad(queued=5, running=1, pending=1), 5),
    ("eager", PoolLoad(queued=9, running=3, pending=2), 3),  # min(10 - 5 - 2, 10)
])
def test_pool_state_maps_onto_kedas_inputs(strategy: Strategy, load: PoolLoad,
                                           expected: int) -> None:
    assert admit_count(strategy, load, max_concurrency=10, min_concurrency=0,
                       target_queue_length=1) == expected


def test_target_queue_length_throttles_concurrency() -> None:
    load = PoolLoad(queued=10, running=0, pending=0)
    assert admit_count("default", load, max_concurrency=10, min_concurrency=0,
                       target_queue_length=5) == 2
    busy = PoolLoad(queued=10, running=2, pending=0)
    assert admit_count("default", busy, max_concurrency=10, min_concurrency=0,
                       target_queue_length=5) == 1  # maxScale ceil(12/5) = 3, minus 2 running


def test_min_concurrency_keeps_the_pool_busy_while_work_is_queued() -> None:
    load = PoolLoad(queued=10, running=0, pending=0)
    assert admit_count("default", load, max_concurrency=10, min_concurrency=4,
                       target_queue_length=100) == 4
    assert admit_count("default", PoolLoad(0, 0, 0), max_concurrency=10, min_concurrency=4,
                       target_queue_length=1) == 0  # nothing queued: scale to zero


def test_guards_hold_for_every_state_and_strategy() -> None:
    for strategy, queued, running, pending, maximum, target, minimum in itertools.product(
            STRATEGIES, range(5), range(4), range(4), range(5), (1, 2, 3), (0, 2)):
        if running + pending > maximum:
            continue
        n = admit_count(strategy, PoolLoad(queued, running, pending), max_concurrency=maximum,
                        min_concurrency=minimum, target_queue_length=target)
        assert 0 <= n <= queued
        assert running + pending + n <= maximum


def test_desired_follows_the_queue_within_bounds() -> None:
    assert desired(PoolLoad(7, 2, 1), max_concurrency=20, min_concurrency=0,
                   target_queue_length=2) == 5
    assert desired(PoolLoad(70, 2, 1), max_concurrency=20, min_concurrency=0,
                   target_queue_length=1) == 20
    assert desired(PoolLoad(0, 0, 0), max_concurrency=20, min_concurrency=3,
                   target_queue_length=1) == 3


def test_scaling_to_the_minimum_waits_for_the_cooldown() -> None:
    # idle since t=100, cooldown 300
    assert cooled_desired(0, 5, last_busy=100, now=200, cooldown_seconds=300,
                          min_concurrency=0) == 5
    assert cooled_desired(0, 5, last_busy=100, now=401, cooldown_seconds=300,
                          min_concurrency=0) == 0
    # up, or down to a size above the minimum, applies at once
    assert cooled_desired(8, 5, last_busy=100, now=101, cooldown_seconds=300,
                          min_concurrency=0) == 8
    assert cooled_desired(3, 5, last_busy=100, now=101, cooldown_seconds=300,
                          min_concurrency=0) == 3


def test_keda_counts_pending_jobs_as_running_ones_too() -> None:
    load = PoolLoad(queued=4, running=2, pending=1)
    assert keda_inputs("default", load) == (7, 3, 1)
    assert keda_inputs("accurate", load) == (5, 3, 1)
    assert keda_inputs("eager", load) == (5, 3, 1)
