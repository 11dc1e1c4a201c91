"""Per-credential token buckets (ratelimit.py)."""

from __future__ import annotations

from videojob_gateway.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.wait("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("a") == 0.5  # one token comes back every 0.5 s
    clock.now += 0.5
    assert limiter.wait("a") == 0
    assert limiter.wait("a") > 0


def test_callers_do_not_share_a_bucket() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.wait("a") == 0 and limiter.wait("a") > 0
    assert limiter.wait("b") == 0


def test_an_idle_caller_refills_to_the_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    clock.now += 3600
    assert [limiter.wait("a") == 0 for _ in range(3)] == [True, True, False]


def test_the_buckets_are_bounded() -> None:
    limiter = RateLimiter(rate=1, burst=1, entries=2, clock=Clock())
    for key in ("a", "b", "c"):
        limiter.wait(key)
    assert list(limiter.buckets) == ["b", "c"]


def test_rate_zero_is_no_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    assert all(limiter.wait("a") == 0 for _ in range(100))
    assert limiter.buckets == {}


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert (retry_after(0.01), retry_after(1.0), retry_after(1.2)) == ("1", "1", "2")
