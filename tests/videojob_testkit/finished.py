"""A finished VideoJob and its stage pods as the API server returns them (the fields the archive
reads, and the usual ones around them), for the archive's tests and its benchmark. Times are
seconds after `t0`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from videojob_common.labels import LABEL_NAME, LABEL_STAGE, LABEL_UID
from videojob_common.pipeline import Obj, stages_of

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

UID = "3f1c2a9e-6b7d-4c1e-9a0b-2d5e8f7a6c41"
T0 = dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC)
GPU = "nvidia.com/gpu"


def at(seconds: float, t0: dt.datetime = T0) -> str:
    """RFC 3339, as the API server writes times (whole seconds)."""
    return (t0 + dt.timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, stage: str, *, start: float | None, finish: float | None = None,
        gpus: int = 0, index: int = 0, attempt: int = 0, phase: str | None = None,
        exit_code: int = 0, uid: str = UID, videojob: str = "launch-teaser",
        namespace: str = "studio", in_requests: bool = False, t0: dt.datetime = T0) -> Obj:
    """A stage pod: never started (`start` None: Pending, unschedulable), running (`finish`
    None) or ended with `exit_code`."""
    resources: dict[str, Any] = {"limits": {"cpu": "2", "memory": "4Gi"},
                                 "requests": {"cpu": "1", "memory": "2Gi"}}
    if gpus:
        resources["requests" if in_requests else "limits"][GPU] = str(gpus)
    status: dict[str, Any] = {"phase": phase or "Pending", "qosClass": "Burstable"}
    if start is None:
        status["conditions"] = [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": at(0, t0),
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]
    else:
        status["startTime"] = at(start, t0)
        status["hostIP"] = "10.0.0.7"
        state: dict[str, Any]
        if finish is None:
            state = {"running": {"startedAt": at(start + 4, t0)}}
            status["phase"] = phase or "Running"
        else:
            state = {"terminated": {
                "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": at(start + 4, t0), "finishedAt": at(finish, t0),
                "containerID": "containerd://0f2e"}}
            status["phase"] = phase or ("Succeeded" if exit_code == 0 else "Failed")
        status["containerStatuses"] = [{
            "name": "worker", "image": "ghcr.io/videojob/worker:0.1.0", "ready": False,
            "restartCount": 0, "started": finish is None, "state": state}]
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(start - 1, t0)},
            {"type": "Initialized", "status": "True", "lastTransitionTime": at(start, t0)},
            {"type": "Ready", "status": "False", "reason": "PodCompleted",
             "lastTransitionTime": at(finish if finish is not None else start, t0)}]
    job = f"{videojob}-{stage}-1a2b3"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {LABEL_NAME: videojob, LABEL_STAGE: stage, LABEL_UID: uid,
                       "batch.kubernetes.io/job-name": job},
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index),
                            "batch.kubernetes.io/job-index-failure-count": str(attempt)},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "controller": True,
                                 "name": job, "uid": "j-" + stage}]},
        "spec": {"nodeName": "gpu-node-1" if gpus else "cpu-node-1", "restartPolicy": "Never",
                 "containers": [{"name": "worker", "image": "ghcr.io/videojob/worker:0.1.0",
                                 "resources": resources}]},
        "status": status,
    }


def stage_status(name: str, phase: str, start: float, end: float | None, attempts: int = 1,
                 videojob: str = "launch-teaser", t0: dt.datetime = T0, **extra: Any) -> Obj:
    out = {"name": name, "phase": phase, "attempts": attempts, "progress": 100,
           "jobName": f"{videojob}-{name}-1a2b3", "startTime": at(start, t0), **extra}
    if end is not None:
        out["completionTime"] = at(end, t0)
    return out


def videojob(phase: str = "Succeeded", *, stages: list[Obj] | None = None, uid: str = UID,
             name: str = "launch-teaser", namespace: str = "studio",
             labels: dict[str, str] | None = None, scenes: int = 2, gpus: int = 2,
             finished: float = 470, t0: dt.datetime = T0, **status: Any) -> Obj:
    """A VideoJob at its end (by default: succeeded, 2 scenes, the five stages of
    `run_pods`)."""
    if stages is None:
        stages = [stage_status("plan", "Succeeded", 10, 30, videojob=name, t0=t0),
                  stage_status("keyframes", "Succeeded", 30, 100, videojob=name, t0=t0),
                  stage_status("segments", "Succeeded", 100, 400, attempts=3, completed=2,
                               total=2, videojob=name, t0=t0),
                  stage_status("stitch", "Succeeded", 400, 450, videojob=name, t0=t0),
                  stage_status("publish", "Succeeded", 450, finished, videojob=name, t0=t0)]
    uri = f"gs://videos/{namespace}/{name}/{uid}/output.mp4"
    return {
        "apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
        "metadata": {"name": name, "namespace": namespace, "uid": uid,
                     "creationTimestamp": at(0, t0), "generation": 1, "resourceVersion": "48213",
                     "labels": {"team": "brand", "campaign": "q4-launch"} if labels is None
                     else labels},
        "spec": {"prompt": "a lighthouse at dawn, waves breaking, slow aerial push-in",
                 "scenes": scenes, "durationSeconds": 12, "fps": 24, "resolution": "1280x720",
                 "transition": "crossfade", "seed": 7, "priority": 0,
                 "images": ["https://cdn.example.com/a.png?token=s3cr3t&w=1"],
                 "gpu": {"count": gpus}, "output": {"uri": uri}},
        "status": {
            "phase": phase, "progress": 100, "startTime": at(10, t0),
            "completionTime": at(finished, t0), "observedGeneration": 1,
            "currentStage": STAGES[-1], "message": "published", "stages": stages,
            "outputURI": uri,
            "output": {"uri": uri, "bytes": 18_400_112, "md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                       "crc32c": "AAAAAA=="},
            "effective": {"scenes": scenes, "backend": "procedural", "outputUri": uri,
                          "artifactRoot": f"gs://videos/{namespace}/{name}/{uid}",
                          "retryLimit": 3, "retryBackoffSeconds": 5, "totalSeconds": 3600,
                          "stageSeconds": 900, "pendingSeconds": 600, "gpuCount": gpus,
                          "gpuResourceName": GPU,
                          "gpuNodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                          "gpuTolerations": [{"key": GPU, "operator": "Exists",
                                              "effect": "NoSchedule"}],
                          "workerImage": "ghcr.io/videojob/worker:0.1.0"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded",
                 "message": "published", "lastTransitionTime": at(finished, t0),
                 "observedGeneration": 1},
                {"type": "Progressing", "status": "False", "reason": "Succeeded",
                 "lastTransitionTime": at(finished, t0), "observedGeneration": 1}],
            **status},
    }


def run_pods(uid: str = UID) -> list[Obj]:
    """The pods of `videojob()`: plan (CPU); keyframes on 2 GPUs; segments: scene 0 once, scene 1
    failed then retried, and a third try at it that never started (deleted while Pending);
    stitch and publish (CPU)."""
    return [
        pod("plan-0-a", "plan", start=12, finish=28, uid=uid),
        pod("keyframes-0-a", "keyframes", start=32, finish=92, gpus=2, uid=uid),
        pod("segments-0-a", "segments", start=102, finish=302, gpus=2, index=0, uid=uid),
        pod("segments-1-a", "segments", start=102, finish=152, gpus=2, index=1, exit_code=1,
            uid=uid),
        pod("segments-1-b", "segments", start=170, finish=390, gpus=2, index=1, attempt=1,
            uid=uid),
        pod("segments-1-c", "segments", start=None, gpus=2, index=1, attempt=2, uid=uid),
        pod("stitch-0-a", "stitch", start=402, finish=448, uid=uid),
        pod("publish-0-a", "publish", start=452, finish=468, uid=uid),
    ]
