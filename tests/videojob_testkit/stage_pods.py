"""A stage pod as the planner's GPU-seconds read it: its stage, its GPUs, when it started and
ended (for the operator's accounting tests and the planner's)."""

from __future__ import annotations

from videojob_common.pipeline import Obj

GPU = "nvidia.com/gpu"


def pod(name: str, stage: str, start: str | None, end: str | None, gpus: int = 1,
        phase: str | None = None, uid: str = "u1") -> Obj:
    """A pod of VideoJob `uid` running from `start` (None: not started) to `end` (None: still
    running), holding `gpus` GPUs."""
    state: Obj = ({"terminated": {"startedAt": start, "finishedAt": end, "exitCode": 0}}
                  if end else {"running": {"startedAt": start}} if start else {})
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "5",
                         "labels": {"videojob.dev/name": "clip", "videojob.dev/uid": uid,
                                    "videojob.dev/stage": stage}},
            "spec": {"containers": [{"name": "worker", "resources": {
                "limits": {GPU: str(gpus)}} if gpus else {}}]},
            "status": {"phase": phase or ("Succeeded" if end else "Running"),
                       **({"startTime": start} if start else {}),
                       "containerStatuses": [{"name": "worker", "state": state}]}}
