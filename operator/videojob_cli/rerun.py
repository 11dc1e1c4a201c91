"""`rerun NAME --scene N [--seed S] [--description TEXT] [--name NEW]`: create a VideoJob that
draws one scene of NAME otherwise (docs/reuse.md, "Per-scene overrides").

The derived VideoJob is made by `videojob_common.rerun.derive`, the one definition the gateway's
`POST …/videojobs/{name}:rerun` uses too: the origin's spec with the scene's override merged
into `spec.sceneOverrides`, annotated `videojob.dev/rerun-of: <name>/<uid>`, in the origin's
namespace. Without `--seed` or `--description` the scene gets a new random seed. With the cache
on, only that scene's keyframe and segment render again, then stitch and publish.

What the plugin can check without the API server (the scene against the origin's scene count,
the seed's range, the new name) is refused naming the flag; the API server checks the rest.
"""

from __future__ import annotations

from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_common.rerun import RerunError, derive, override, random_suffix, rerun_name

from . import render, videojobs, watch
from .cluster import Target
from .errors import CommandError

FLAGS = {"scene": "--scene", "seed": "--seed", "description": "--description", "name": "--name"}


def derived(origin: Obj, scene: int, seed: int | None, description: str | None,
            name: str | None) -> Obj:
    """The VideoJob to create; CommandError naming the flag at fault."""
    new_name = name or rerun_name(str(origin["metadata"]["name"]), random_suffix())
    try:
        return derive(origin, override(scene, seed, description), new_name)
    except RerunError as e:
        raise CommandError(f"{FLAGS[e.field]}: {e.message}") from None


def run(target: Target, name: str, scene: int, seed: int | None, description: str | None,
        new_name: str | None, then_watch: bool, timeout: float | None) -> int:
    origin = videojobs.get(target, name)
    body = derived(origin, scene, seed, description, new_name)
    for attempt in range(3):
        try:
            made = videojobs.create(target, target.namespace, body)
            break
        except client.ApiException as e:
            # A made-up name already taken (1 in 60 million): draw another; a chosen one is
            # the user's to change, as kubectl create says.
            if e.status != 409 or new_name is not None or attempt == 2:
                raise
            body = derived(origin, scene, seed, description, None)
    print(render.name_line(made, "created"), flush=True)
    if then_watch:
        return watch.run(target, str(made["metadata"]["name"]), timeout)
    return 0
