"""`suspend NAME` / `resume NAME`: set `spec.suspend`, one of the fields that stay mutable.

The operator does the rest (docs/operator.md): suspending stops the running stage's pods and
starts no new stage; resuming puts the stage back in its pool's queue. The change is a JSON
merge patch of `spec.suspend` alone, so it never overwrites a concurrent change to another field.

A finished VideoJob has nothing left to suspend or resume; saying so is more useful than a patch
that changes nothing. A VideoJob already in the requested state is reported as kubectl reports
an apply that changed nothing: `(no change)`.
"""

from __future__ import annotations

from . import render, videojobs
from .cluster import Target
from .errors import CommandError
from .resource import VideoJobView


def run(target: Target, name: str, suspend: bool) -> int:
    view = VideoJobView.of(videojobs.get(target, name))
    verb = "suspended" if suspend else "resumed"
    if view.finished:
        raise CommandError(f"videojob {name} has already {view.phase}; there is nothing to "
                           f"{'suspend' if suspend else 'resume'}")
    if view.spec.suspend == suspend:
        print(f"{render.name_line({'metadata': {'name': name}})} {verb} (no change)")
        return 0
    obj = videojobs.patch_spec(target, name, {"suspend": suspend})
    print(render.name_line(obj, verb))
    return 0
