"""GPU-seconds: what each stage of a VideoJob has used, written into its status.

A pod holds its GPUs from the moment the kubelet starts it until its last container ends,
whether it succeeds or not; the archive's rows count the same way (videojob_common.archive.rows,
whose `gpu_seconds` this applies). Only pods that have ended count here: a running pod's figure
would change at every look and cost a status write each time. A pod is counted when it ends,
and a VideoJob's pods have all ended before it is archived.

Each stage's figure never goes down: a pod deleted while this process was not running (so never
seen ended) takes nothing away from what the status already holds. Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from videojob_common.archive.rows import gpu_seconds, pod_times
from videojob_common.pipeline import Obj

from .api import VideoJobStatus


def ended(pods: Iterable[Obj]) -> list[Obj]:
    """The pods that have ended (or never started and are gone: they count nothing)."""
    return [p for p in pods if pod_times(p)[1] is not None]


def step(status: VideoJobStatus, pods: Iterable[Obj], resource_name: str | None,
         now: dt.datetime) -> VideoJobStatus:
    """The status with each stage's GPU-seconds (`gpuSeconds`, where a pod of the stage held
    GPUs) and their total, from the pods that have ended; unchanged when nothing new ended."""
    used = gpu_seconds(ended(pods), now, resource_name).by_stage
    stages = list(status.stages or [])
    changed = False
    for i, s in enumerate(stages):
        figure = round(used.get(s.name, 0.0), 3)
        if figure > (s.gpu_seconds or 0.0):
            stages[i] = s.model_copy(update={"gpu_seconds": figure})
            changed = True
    total = round(sum(s.gpu_seconds or 0.0 for s in stages), 3)
    if not changed and (total == (status.gpu_seconds or 0.0) or not total):
        return status
    return status.model_copy(update={"stages": stages, "gpu_seconds": total or None})


def stage_figures(status: Obj) -> dict[str, float]:
    """gpuSeconds by stage name, from a status document (metrics.py counts what was added)."""
    return {s["name"]: float(s.get("gpuSeconds") or 0.0) for s in status.get("stages") or []
            if s.get("name")}
