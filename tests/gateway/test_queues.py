"""Queue counts per pool, limited to what the caller may list."""

from __future__ import annotations

from typing import Any

from videojob_gateway.queues import report


def vj(ns: str, phase: str, stage: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if stage:
        status["currentStage"] = stage
    return {"metadata": {"namespace": ns, "name": f"{ns}-{phase}-{stage}"}, "status": status}


POOLS = [{"metadata": {"name": "gpu"},
          "status": {"stages": ["keyframes", "segments"], "maxConcurrency": 4, "running": 3,
                     "pending": 1, "queued": 9, "head": ["team-b/secret:segments"]}},
         {"metadata": {"name": "cpu"}, "status": {"stages": ["plan", "stitch", "publish"]}}]
JOBS = [vj("team-a", "Queued", "segments"), vj("team-a", "Running", "segments"),
        vj("team-a", "Running", "plan"), vj("team-a", "Succeeded", "publish"),
        vj("team-a", "Pending", None), vj("team-b", "Queued", "keyframes"),
        vj("team-a", "Queued", "mystery")]


def test_counts_are_by_pool_and_namespace_for_visible_namespaces_only() -> None:
    q = report(JOBS, POOLS, {"team-a"}.__contains__, pool_figures=False)
    pools = {p.name: p for p in q.pools}
    assert [p.name for p in q.pools] == ["cpu", "gpu", "unpooled"]
    gpu = pools["gpu"]
    assert (gpu.queued, gpu.running) == (1, 1)
    assert set(gpu.namespaces) == {"team-a"}  # team-b's queued keyframes is not shown
    assert (pools["cpu"].queued, pools["cpu"].running) == (0, 1)
    assert pools["unpooled"].queued == 1
    assert gpu.maxConcurrency is None and gpu.poolQueuedJobs is None
    assert "secret" not in q.model_dump_json()  # never a pool's head


def test_pool_figures_for_callers_who_may_list_pools() -> None:
    q = report(JOBS, POOLS, lambda ns: True, pool_figures=True)
    gpu = next(p for p in q.pools if p.name == "gpu")
    assert (gpu.maxConcurrency, gpu.poolRunningPods, gpu.poolPendingPods, gpu.poolQueuedJobs) == (
        4, 3, 1, 9)
    assert gpu.namespaces["team-b"].queued == 1 and gpu.queued == 2
