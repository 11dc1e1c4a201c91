"""A VideoJob object → the API's view of it, and a create request → the VideoJob to create.
Pure: the routes hand in objects from the cache or the API server's answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from videojob_common.pipeline import Obj, Phase

from .api import (
    PREFIX,
    Condition,
    CreateVideoJob,
    KubeEvent,
    Links,
    Result,
    StageState,
    VideoJob,
)

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_GENERATE_NAME = "videojob-"


def collection_path(namespace: str) -> str:
    """The VideoJobs of a namespace, on the API server."""
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}"


def object_path(namespace: str, name: str) -> str:
    return f"{collection_path(namespace)}/{quote(name, safe='')}"


def links(namespace: str, name: str) -> Links:
    own = f"{PREFIX}/namespaces/{quote(namespace, safe='')}/videojobs/{quote(name, safe='')}"
    return Links(self=own, events=f"{own}/events")


def phase_of(obj: Obj) -> str:
    """`status.phase`; Pending until the operator has written one."""
    return str((obj.get("status") or {}).get("phase") or Phase.PENDING)


def manifest(namespace: str, request: CreateVideoJob) -> Obj:
    metadata: dict[str, Any] = {"namespace": namespace}
    if request.name is not None:
        metadata["name"] = request.name
    else:
        metadata["generateName"] = request.generateName or DEFAULT_GENERATE_NAME
    if request.labels:
        metadata["labels"] = dict(request.labels)
    return {"apiVersion": API_VERSION, "kind": "VideoJob", "metadata": metadata,
            "spec": request.spec}


def view(obj: Obj) -> VideoJob:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    return VideoJob(
        namespace=namespace, name=name, uid=str(meta.get("uid", "")),
        resourceVersion=str(meta.get("resourceVersion", "")),
        createdAt=str(meta.get("creationTimestamp", "")),
        labels=dict(meta.get("labels") or {}),
        phase=phase_of(obj),
        stage=status.get("currentStage"),
        progress=int(status.get("progress") or 0),
        message=status.get("message"),
        reason=status.get("reason"),
        queuePosition=status.get("queuePosition"),
        suspended=bool(spec.get("suspend", False)),
        deleting=bool(meta.get("deletionTimestamp")),
        conditions=[_condition(c) for c in status.get("conditions") or [] if isinstance(c, dict)],
        stages=[_stage(s) for s in status.get("stages") or [] if isinstance(s, dict)],
        result=_result(status),
        startTime=status.get("startTime"),
        completionTime=status.get("completionTime"),
        links=links(namespace, name),
    )


def _condition(c: Obj) -> Condition:
    return Condition(type=str(c.get("type", "")), status=str(c.get("status", "")),
                     reason=c.get("reason"), message=c.get("message"),
                     lastTransitionTime=c.get("lastTransitionTime"))


def _stage(s: Obj) -> StageState:
    return StageState(name=str(s.get("name", "")), phase=str(s.get("phase", "")),
                      attempts=int(s.get("attempts") or 0), progress=int(s.get("progress") or 0),
                      completed=s.get("completed"), total=s.get("total"),
                      message=s.get("message"), startTime=s.get("startTime"),
                      completionTime=s.get("completionTime"))


def _result(status: Obj) -> Result | None:
    output = status.get("output") or {}
    uri = status.get("outputURI") or output.get("uri")
    if not uri:
        return None
    return Result(outputURI=str(uri), bytes=output.get("bytes"), md5=output.get("md5"),
                  crc32c=output.get("crc32C"))


def kube_event_items(events: list[Obj], uid: str) -> list[KubeEvent]:
    """The Events of the VideoJob with this uid (not of an earlier one of the same name),
    oldest first."""
    out = []
    for e in events:
        involved = e.get("involvedObject") or {}
        if uid and involved.get("uid") not in (None, "", uid):
            continue
        meta = e.get("metadata") or {}
        last = e.get("lastTimestamp") or e.get("eventTime") or meta.get("creationTimestamp")
        out.append(KubeEvent(
            type=str(e.get("type") or "Normal"), reason=str(e.get("reason") or ""),
            message=str(e.get("message") or ""), count=int(e.get("count") or 1),
            firstTime=e.get("firstTimestamp") or last, lastTime=last))
    out.sort(key=lambda k: (k.lastTime or "", k.firstTime or ""))
    return out
