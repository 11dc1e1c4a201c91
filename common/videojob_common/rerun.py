"""Re-rendering one scene (issue #25, docs/reuse.md): the derived VideoJob made from an origin
and one scene's override. One pure definition, used by `kubectl videojob rerun` and the
gateway's `POST …/videojobs/{name}:rerun`, so both make the same object.

The derived VideoJob is the origin's spec, every user-set field kept, with the override merged
into `spec.sceneOverrides` (the entry for that scene replaced, the others kept): the plan's key
changes, and only that scene's keyframe and segment miss the cache. It is never created
suspended (it was asked for to run). It links to its origin by the annotation
`videojob.dev/rerun-of: <name>/<uid>`: the uid too, since a name is reused once its VideoJob is
deleted.

Randomness (a new seed, the name's suffix) is drawn by the caller and passed in, so the
derivation is a function of its arguments and tested as one (tests/cli/test_rerun.py).
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from videojob_common.pipeline import DEFAULT_SCENES, Obj

RERUN_OF = "videojob.dev/rerun-of"  # on the derived VideoJob: "<origin name>/<origin uid>"
MAX_SEED = 2**31 - 1  # as the CRD's seed fields
MAX_SCENES = 32
MAX_DESCRIPTION = 500  # as SceneOverride.description
MAX_NAME = 63  # a DNS label: the operator names Jobs and labels after the VideoJob
NAME_INFIX = "-rerun-"
SUFFIX_LENGTH = 5
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class RerunError(ValueError):
    """A rerun that cannot be derived; `field` is what to fix (scene, seed, description, name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Override:
    """One scene drawn otherwise: `spec.sceneOverrides[]`'s entry for `scene`."""

    scene: int
    seed: int | None = None
    description: str | None = None

    def entry(self) -> Obj:
        out: Obj = {"index": self.scene}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.description is not None:
            out["description"] = self.description
        return out


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def random_suffix() -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def override(scene: int, seed: int | None, description: str | None,
             draw_seed: Callable[[], int] = random_seed) -> Override:
    """The override asked for; a new seed when neither a seed nor a description is given (a
    rerun that changes nothing would be the origin again, reused whole)."""
    if seed is None and description is None:
        seed = draw_seed()
    return Override(scene=scene, seed=seed, description=description)


def rerun_name(origin: str, suffix: str) -> str:
    """`<origin>-rerun-<suffix>`, the origin's part shortened to keep it within 63 characters
    (and ending in a letter or digit, as a DNS label must)."""
    room = MAX_NAME - len(NAME_INFIX) - len(suffix)
    return f"{origin[:room].rstrip('-.')}{NAME_INFIX}{suffix}"


def scene_count(origin: Mapping[str, Any]) -> int:
    """The scenes the origin renders: as the operator recorded them (status.effective), else
    as its spec implies them (spec.scenes, the number of images, the default)."""
    effective = (origin.get("status") or {}).get("effective") or {}
    if isinstance(effective.get("scenes"), int):
        return int(effective["scenes"])
    spec = origin.get("spec") or {}
    if isinstance(spec.get("scenes"), int):
        return int(spec["scenes"])
    if spec.get("images"):
        return len(spec["images"])
    return DEFAULT_SCENES


def check(origin: Mapping[str, Any], wanted: Override, name: str) -> None:
    """RerunError naming the field at fault; the API server checks the rest of the spec."""
    count = scene_count(origin)
    if not 0 <= wanted.scene < count:
        raise RerunError("scene", f"scene {wanted.scene} is out of range: "
                                  f"{(origin.get('metadata') or {}).get('name')} has {count} "
                                  f"scenes (0 to {count - 1})")
    if wanted.seed is not None and not 0 <= wanted.seed <= MAX_SEED:
        raise RerunError("seed", f"seed {wanted.seed} is out of range (0 to {MAX_SEED})")
    if wanted.description is not None and not 1 <= len(wanted.description) <= MAX_DESCRIPTION:
        raise RerunError("description", f"a description is 1 to {MAX_DESCRIPTION} characters")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise RerunError("name", f"{name!r} is not a valid VideoJob name (lower-case letters, "
                                 f"digits and '-', at most {MAX_NAME} characters)")


def derive(origin: Mapping[str, Any], wanted: Override, name: str) -> Obj:
    """The derived VideoJob to create (in the origin's namespace), or RerunError."""
    check(origin, wanted, name)
    meta = origin.get("metadata") or {}
    spec: Obj = copy.deepcopy(dict(origin.get("spec") or {}))
    kept = [e for e in spec.get("sceneOverrides") or [] if e.get("index") != wanted.scene]
    spec["sceneOverrides"] = sorted([*kept, wanted.entry()], key=lambda e: int(e["index"]))
    if "suspend" in spec:
        spec["suspend"] = False
    # Another video: never over the origin's. The derived one publishes to its own default
    # place (its namespace's prefix, its own name and uid); `output.uri` is immutable, so the
    # origin's would be overwritten for good.
    spec.pop("output", None)
    metadata: Obj = {"name": name, "namespace": meta.get("namespace"),
                     "annotations": {RERUN_OF: f"{meta.get('name')}/{meta.get('uid')}"}}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    # The origin's own apiVersion and kind: a derived VideoJob is the same kind of object.
    return {"apiVersion": origin.get("apiVersion"), "kind": origin.get("kind"),
            "metadata": metadata, "spec": spec}
