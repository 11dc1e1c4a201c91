"""Requests per caller: a token bucket for each credential, so one client's loop cannot take the
gateway (and, through its reviews, the API server) from the others.

The key is the SHA-256 of the credential presented (a token or an API key:
`Credential.cache_key`), taken before the TokenReview, so a flood of requests with one bad token
is refused here without a review each. Requests with no credential are answered 401 before they
reach a bucket. The buckets are bounded: the least recently used is dropped first, which can only
give a forgotten caller a full bucket again, never fewer tokens than it should have.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` requests a second on average, `burst` at once, per key; rate 0 turns it off."""

    def __init__(self, rate: float, burst: int, entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.entries = entries
        self.clock = clock
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def wait(self, key: str) -> float:
        """Takes a token for `key`: 0 if one was there, else the seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self.buckets[key] = bucket
        while len(self.buckets) > self.entries:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A Retry-After value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
