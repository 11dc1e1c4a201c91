"""Token buckets, refilled continuously, one per key. Pure: the caller hands in the clock.

Two users: each caller's credential (callers.py: requests a second per token or API key,
checked before its TokenReview), and each trigger (triggers.py: its `spec.rateLimit`; only
deliveries whose signature checked out take a token, so a sender without the secret cannot use
up a trigger's budget and lock its real sender out). Per gateway process: with N replicas behind
one Service a key gets up to N times its rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    per_minute: int
    burst: int
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        rate = self.per_minute / 60.0
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = max(self.updated, now)

    def take(self, now: float) -> float:
        """0 if a token was taken; else the seconds until one is there (nothing taken)."""
        rate = self.per_minute / 60.0
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


class RateLimiter:
    """One bucket per key, at most `max_entries` buckets (the least recently used go: a bucket
    that went is full again, which only forgives)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, per_minute: int, burst: int, now: float) -> float:
        """0: go ahead; else the seconds to wait (for Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(per_minute, burst, float(burst), now)
        elif (bucket.per_minute, bucket.burst) != (per_minute, burst):
            # The trigger's limits were edited: what it had saved up, within the new burst.
            bucket.refill(now)
            bucket.per_minute, bucket.burst = per_minute, burst
            bucket.tokens = min(bucket.tokens, float(burst))
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_entries:
            self._buckets.popitem(last=False)
        return bucket.take(now)


def retry_after(seconds: float) -> str:
    """A Retry-After value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
