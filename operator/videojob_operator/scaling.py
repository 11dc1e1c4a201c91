"""How many queued pods a pool may admit now: KEDA's ScaledJob scaling math, as pure functions.

KEDA computes `maxScale = min(maxReplicaCount, ceil(queueLength / targetQueueLength))` and then
one of its strategies (keda `pkg/scaling/executor/scale_jobs.go`, docs "Scaling Jobs"):

- default:  maxScale - runningJobCount
- accurate: maxReplicaCount - runningJobCount  if maxScale + runningJobCount > maxReplicaCount
            else maxScale - pendingJobCount
- eager:    min(maxReplicaCount - runningJobCount - pendingJobCount, maxScale)

`strategy_scale` is exactly that. `keda_inputs` maps a pool's state onto KEDA's inputs the way
KEDA counts (running Jobs include pending ones; the queue length includes in-flight items for
`default`, only untaken ones for `accurate` and `eager`), and `admit_count` then applies the
guards KEDA's users asked for, which hold whatever the strategy says:

- never more than are queued (keda #5537: more jobs than items in the list);
- never past `maxConcurrency` counting Pending pods too (keda #6157, #7329: Pending jobs not
  counted, so duplicates); GPUs are real, so the cap is a hard one;
- at least `minConcurrency` busy while there is work queued (KEDA's minReplicaCount).

Units are pods (slots): an Indexed Job of eight scenes needs eight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["default", "accurate", "eager"]


def max_scale(queue_length: int, target_queue_length: int, max_replicas: int) -> int:
    """KEDA's maxScale: how many the queue asks for, capped at the maximum."""
    if queue_length <= 0:
        return 0
    return min(max_replicas, math.ceil(queue_length / max(target_queue_length, 1)))


def strategy_scale(strategy: Strategy, max_scale_: int, running: int, pending: int,
                   max_replicas: int) -> int:
    """KEDA's GetEffectiveMaxScale for the three strategies (may be negative: scale nothing)."""
    if strategy == "default":
        return max_scale_ - running
    if strategy == "accurate":
        if max_scale_ + running > max_replicas:
            return max_replicas - running
        return max_scale_ - pending
    if strategy == "eager":
        return min(max_replicas - running - pending, max_scale_)
    raise ValueError(f"unknown scaling strategy {strategy!r}")


@dataclass(frozen=True)
class PoolLoad:
    """A pool at one moment, in pods (slots)."""

    queued: int  # pods that queued Jobs still need (not admitted)
    running: int  # admitted pods that are Running
    pending: int  # admitted pods not Running yet (Pending, unschedulable or not created yet)


def keda_inputs(strategy: Strategy, load: PoolLoad) -> tuple[int, int, int]:
    """(queueLength, runningJobCount, pendingJobCount) as KEDA would see this pool.

    KEDA's runningJobCount is every Job not finished (so it includes the pending ones) and
    pendingJobCount those whose pods are not running yet. What the queue length holds depends on
    the scaler, and each strategy is written for one kind: `default` for queues that still list
    the items being worked on (it subtracts the running Jobs), `accurate` and `eager` for queues
    that list only the items nobody has taken, where a pending Job has not taken its item yet.
    """
    active = load.running + load.pending
    if strategy == "default":
        return load.queued + active, active, load.pending
    return load.queued + load.pending, active, load.pending


def admit_count(strategy: Strategy, load: PoolLoad, *, max_concurrency: int,
                min_concurrency: int, target_queue_length: int) -> int:
    """How many more pods the pool admits now."""
    queue_length, running, pending = keda_inputs(strategy, load)
    want = strategy_scale(strategy, max_scale(queue_length, target_queue_length, max_concurrency),
                          running, pending, max_concurrency)
    want = max(want, min(min_concurrency, max_concurrency) - running)
    room = max_concurrency - running  # Pending pods hold their slot under every strategy
    return max(0, min(want, room, load.queued))


def desired(load: PoolLoad, *, max_concurrency: int, min_concurrency: int,
            target_queue_length: int) -> int:
    """The pool's scale target (busy + queued, per target, capped): what a warm worker pool
    scaled like a KEDA ScaledObject would run. Reported in the pool status and as a metric."""
    want = math.ceil((load.queued + load.running + load.pending) / max(target_queue_length, 1))
    return max(min(want, max_concurrency), min(min_concurrency, max_concurrency))


def cooled_desired(now_desired: int, last_desired: int, last_busy: float | None, now: float,
                   cooldown_seconds: float, min_concurrency: int) -> int:
    """KEDA's cooldownPeriod: scaling down to the minimum waits until the pool has been idle
    for the cooldown; any other change applies at once."""
    if now_desired > min_concurrency or now_desired >= last_desired:
        return now_desired
    if last_busy is not None and now - last_busy < cooldown_seconds:
        return last_desired
    return now_desired
