"""The per-trigger token bucket."""

from __future__ import annotations

import pytest

from videojob_gateway.ratelimit import RateLimiter


def test_a_burst_then_the_sustained_rate_with_the_wait_until_the_next_token() -> None:
    limiter = RateLimiter()
    t = ("ns", "on-push")
    assert [limiter.take(t, 60, 3, 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(t, 60, 3, 100.0) == pytest.approx(1.0)  # one a second
    assert limiter.take(t, 60, 3, 100.5) == pytest.approx(0.5)  # a refused try costs nothing
    assert limiter.take(t, 60, 3, 101.0) == 0.0
    assert limiter.take(t, 60, 3, 101.0) > 0
    # A quiet period refills up to the burst, no further.
    assert [limiter.take(t, 60, 3, 1000.0) for _ in range(4)][-1] > 0


def test_each_trigger_has_its_own_bucket() -> None:
    limiter = RateLimiter()
    assert limiter.take(("a", "x"), 1, 1, 0.0) == 0.0
    assert limiter.take(("a", "x"), 1, 1, 0.0) == pytest.approx(60.0)
    assert limiter.take(("a", "y"), 1, 1, 0.0) == 0.0
    assert limiter.take(("b", "x"), 1, 1, 0.0) == 0.0


def test_edited_limits_apply_at_once_keeping_what_was_saved_within_the_new_burst() -> None:
    limiter = RateLimiter()
    t = ("ns", "t")
    for _ in range(10):
        limiter.take(t, 60, 10, 0.0)
    assert limiter.take(t, 60, 10, 0.0) > 0
    # Faster from now on: until now it refilled at the old rate (half a token in 0.5 s).
    assert limiter.take(t, 6000, 10, 0.5) == pytest.approx(0.005)
    assert limiter.take(t, 6000, 10, 0.505) == 0.0
    limiter.take(t, 60, 2, 100.0)  # burst cut to 2: at most 2 saved
    assert limiter.take(t, 60, 2, 100.0) == 0.0
    assert limiter.take(t, 60, 2, 100.0) > 0


def test_the_number_of_buckets_is_bounded() -> None:
    limiter = RateLimiter(max_entries=2)
    for name in "abc":
        limiter.take(("ns", name), 1, 1, 0.0)
    assert len(limiter) == 2
    assert limiter.take(("ns", "a"), 1, 1, 0.0) == 0.0  # forgotten: a full bucket again


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    from videojob_gateway.ratelimit import retry_after

    assert (retry_after(0.01), retry_after(1.0), retry_after(1.2)) == ("1", "1", "2")
