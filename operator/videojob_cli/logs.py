"""`logs NAME [--stage STAGE] [-f] [--tail N]`: what a stage's workers printed.

Stage pods carry the labels `videojob.dev/name` and `videojob.dev/stage` and run their worker in
the container `worker` (`videojob_operator.jobs`), so the pods of a stage are one label query
away and their logs come from the kubelet through the API server (`read_namespaced_pod_log`),
exactly what `kubectl logs` reads.

Every pod of the stage is shown, ordered by scene index, then by creation: `segments` has a pod
per scene, and a retried scene a pod per attempt, and the failed attempt's output is usually the
one wanted. With more than one pod, each line carries `kubectl logs --prefix`'s prefix
`[pod/NAME/worker]`.

Without `--stage` the stage is the VideoJob's `status.currentStage` (the stage running now, or
the one it finished or failed in); while that stage has no pod yet (queued), the latest stage
that has one.

`-f` streams every pod at once, each in its own thread; whole lines are written under a lock,
so lines of different pods never mix. It ends when every container has exited.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_operator.jobs import CONTAINER, LABEL_NAME, LABEL_STAGE, name_label

from . import videojobs
from .cluster import Target, server_message
from .errors import CommandError
from .resource import STAGES, VideoJobView

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def pods_of(target: Target, name: str) -> list[client.V1Pod]:
    listing = target.core.list_namespaced_pod(target.namespace,
                                              label_selector=f"{LABEL_NAME}={name_label(name)}")
    return list(listing.items or [])


def stage_of(pod: client.V1Pod) -> str:
    return str(((pod.metadata and pod.metadata.labels) or {}).get(LABEL_STAGE, ""))


def _order(pod: client.V1Pod) -> tuple[int, str, str]:
    meta = pod.metadata or client.V1ObjectMeta()
    index = (meta.annotations or {}).get(COMPLETION_INDEX) or (meta.labels or {}).get(
        COMPLETION_INDEX)
    created = meta.creation_timestamp.isoformat() if meta.creation_timestamp else ""
    return int(index) if index and index.isdigit() else 0, created, meta.name or ""


def default_stage(vj: Obj, stages_with_pods: Iterable[str]) -> str | None:
    """The stage `logs` shows without --stage: the current one if it has pods, else the latest
    stage that has."""
    have = set(stages_with_pods)
    current = VideoJobView.of(vj).status.current_stage
    side_by_side = [s for s in (current or "").split("+") if s in have]  # segments+narrate
    if side_by_side:
        return side_by_side[0]
    ordered = [s for s in STAGES if s in have]
    return ordered[-1] if ordered else current


def prefix(pod_name: str) -> str:
    return f"[pod/{pod_name}/{CONTAINER}] "


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Chunks of a byte stream as text lines; a last line without a newline is kept."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


class Output:
    """stdout shared by the pods' streams: one whole line at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def stream(target: Target, pod: str, follow: bool, tail: int,
           write: Callable[[str], None]) -> None:
    response = cast("BaseHTTPResponse", target.core.read_namespaced_pod_log(
        pod, target.namespace, container=CONTAINER, follow=follow,
        tail_lines=tail if tail >= 0 else None, _preload_content=False))
    try:
        for text in lines(response.stream(amt=None, decode_content=True)):
            write(text)
    finally:
        response.release_conn()


def run(target: Target, name: str, stage: str | None, follow: bool, tail: int) -> int:
    vj = videojobs.get(target, name)  # a missing VideoJob is an error, not "no pods"
    pods = pods_of(target, name)
    stage = stage or default_stage(vj, (stage_of(p) for p in pods))
    if stage is None:
        raise CommandError(f"videojob {name} has not started any stage yet")
    chosen = sorted((p for p in pods if stage_of(p) == stage), key=_order)
    if not chosen:
        raise CommandError(f"videojob {name} has no pods in stage {stage} (the stage has not "
                           "started, or its pods were removed)")
    out = Output()
    failed: list[str] = []

    def show(pod: client.V1Pod) -> None:
        pod_name = (pod.metadata and pod.metadata.name) or ""
        lead = prefix(pod_name) if len(chosen) > 1 else ""
        try:
            stream(target, pod_name, follow, tail, lambda text: out.line(lead + text))
        except client.ApiException as e:
            failed.append(pod_name)
            print(f"error: pod {pod_name}: {server_message(e)}", file=sys.stderr)

    if follow and len(chosen) > 1:
        threads = [threading.Thread(target=show, args=(p,), daemon=True) for p in chosen]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for p in chosen:
            show(p)
    return 1 if failed else 0
