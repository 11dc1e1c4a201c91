"""GPU-seconds: what each stage of a VideoJob has used, written into its status.

A pod holds its GPUs from the moment the kubelet starts it until its last container ends,
whether it succeeds or not; the archive's rows count the same way (videojob_common.archive.rows,
whose `gpu_seconds` this applies). Only pods that have ended count here: a running pod's figure
would change at every look and cost a status write each time. A pod is counted when it ends,
and a VideoJob's pods have all ended before it is archived.

Each stage's figure never goes down: a pod deleted while this process was not running (so never
seen ended) takes nothing away from what the status already holds.

Pure, with one memo: an ended pod's figure, by its uid and resourceVersion. Every reconcile of
a VideoJob counts all its pods again, and parsing their times was a tenth of the planner's CPU
in a burst; a pod that ended no longer changes (its end is set), so each is parsed once.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable

from videojob_common.archive.rows import pod_record, pod_times
from videojob_common.pipeline import Obj

from .api import VideoJobStatus

MEMO_SIZE = 16_384  # ended pods' figures remembered (a few hundred bytes each)
_figures: OrderedDict[tuple[str, str, str | None], tuple[str, float] | None] = OrderedDict()


def ended_figure(pod: Obj, resource_name: str | None, now: dt.datetime) -> tuple[str, float] | None:
    """(stage, GPU-seconds) of a pod that has ended, None for one that has not: as
    videojob_common.archive.rows counts it, remembered for ended pods."""
    meta = pod.get("metadata") or {}
    key = (meta.get("uid") or "", meta.get("resourceVersion") or "", resource_name)
    if key[0] and key[1] and key in _figures:
        _figures.move_to_end(key)
        return _figures[key]
    if pod_times(pod)[1] is None:
        return None  # still running: its figure changes, and is not remembered
    record = pod_record(pod, now, resource_name)
    value = (record.stage, record.gpu_seconds)
    if key[0] and key[1]:
        _figures[key] = value
        if len(_figures) > MEMO_SIZE:
            _figures.popitem(last=False)
    return value


def step(status: VideoJobStatus, pods: Iterable[Obj], resource_name: str | None,
         now: dt.datetime) -> VideoJobStatus:
    """The status with each stage's GPU-seconds (`gpuSeconds`, where a pod of the stage held
    GPUs) and their total, from the pods that have ended; unchanged when nothing new ended."""
    used: dict[str, float] = {}
    for pod in pods:
        found = ended_figure(pod, resource_name, now)
        if found is not None:
            used[found[0]] = used.get(found[0], 0.0) + found[1]
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
