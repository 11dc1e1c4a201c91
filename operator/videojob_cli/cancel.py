"""`cancel NAME [--wait]`: delete the VideoJob, which cancels everything it started.

Deleting is how a VideoJob is cancelled (docs/operator.md, "Deletion"): the operator's finalizer
keeps the object while it shows `Cancelling`, deletes the stage Jobs (their workers get SIGTERM)
and lets the VideoJob go once no Job or pod is left. `--wait` returns only then, learning of it
from a watch on the object (its DELETED event), not by polling.
"""

from __future__ import annotations

import time

from kubernetes import client

from videojob_common.pipeline import Obj

from . import render, videojobs
from .cluster import Target
from .errors import CommandError


def run(target: Target, name: str, wait: bool, timeout: float | None) -> int:
    videojobs.delete(target, name)
    print(render.name_line({"metadata": {"name": name}}, "deleted"), flush=True)
    if not wait:
        return 0
    deadline = None if timeout is None else time.monotonic() + timeout
    last: Obj | None = None
    try:
        for kind, vj in videojobs.changes(target, name, deadline):
            if kind == "DELETED":
                return 0
            last = vj
    except client.ApiException as e:
        if e.status == 404:  # gone before the first read: nothing left to wait for
            return 0
        raise
    where = f"; it is {render.state(last)}" if last else ""
    raise CommandError(f"timed out after {timeout or 0:g}s waiting for videojob {name} to be "
                       f"deleted{where}")
