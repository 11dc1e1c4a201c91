"""`GET /api/v1/queues`: how much waits and runs in each admission pool, counted from the cached
VideoJobs of the namespaces the caller may list. Pure.

A VideoJob counts in the pool of its current stage (the pools' `status.stages`, written by the
operator), as queued while `Queued` and running while `Running`; other phases are not in a queue.
A stage no pool lists counts under `unpooled`. The pools' own figures (their concurrency, pods
running across every namespace) are shown only to callers who may list VideoJobPools: they are
about everyone's work, not the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from videojob_common.pipeline import Obj, Phase

from .api import NamespaceCounts, PoolQueue, Queues
from .views import phase_of

UNPOOLED = "unpooled"


def stage_pools(pools: Iterable[Obj]) -> dict[str, str]:
    """stage → pool name, from the VideoJobPools' status."""
    out: dict[str, str] = {}
    for pool in pools:
        name = str((pool.get("metadata") or {}).get("name") or "")
        for stage in (pool.get("status") or {}).get("stages") or []:
            out.setdefault(str(stage), name)
    return out


def report(videojobs: Iterable[Obj], pools: Iterable[Obj], visible: Callable[[str], bool],
           pool_figures: bool) -> Queues:
    pools = list(pools)
    by_stage = stage_pools(pools)
    queues: dict[str, PoolQueue] = {}
    for pool in pools:
        name = str((pool.get("metadata") or {}).get("name") or "")
        status = pool.get("status") or {}
        q = PoolQueue(name=name, stages=[str(s) for s in status.get("stages") or []])
        if pool_figures:
            q.maxConcurrency = status.get("maxConcurrency")
            q.poolRunningPods = status.get("running")
            q.poolPendingPods = status.get("pending")
            q.poolQueuedJobs = status.get("queued")
        queues[name] = q
    for vj in videojobs:
        phase = phase_of(vj)
        if phase not in (Phase.QUEUED, Phase.RUNNING):
            continue
        namespace = str((vj.get("metadata") or {}).get("namespace") or "")
        if not visible(namespace):
            continue
        stage = str((vj.get("status") or {}).get("currentStage") or "")
        pool_name = by_stage.get(stage, UNPOOLED)
        q = queues.setdefault(pool_name, PoolQueue(name=pool_name))
        counts = q.namespaces.setdefault(namespace, NamespaceCounts())
        if phase == Phase.QUEUED:
            q.queued += 1
            counts.queued += 1
        else:
            q.running += 1
            counts.running += 1
    return Queues(pools=sorted(queues.values(), key=lambda q: q.name))
