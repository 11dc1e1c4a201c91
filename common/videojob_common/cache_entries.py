"""Cache entries in storage (issue #25): where they live, what their manifest says, and what
the operator tells a stage pod about them. Pure: the worker writes entries, the operator looks
them up and copies their artifacts, both through this one definition (docs/reuse.md).

An entry is a folder `<scope>/<stage>/<key>/`: each writer's artifacts in a folder of its own
(`<writer>/<artifact>`), and `manifest.json`, written last, naming the artifacts it covers with
their sizes and checksums. A reader trusts an entry only when the manifest parses, names this
key and stage, and every artifact's bytes match it; anything else is a miss, and the next
writer replaces the manifest. Writers never share a folder, so two writers of one key never mix
bytes, and a manifest always names one writer's complete set.

The scope is the namespace's own `<storage root>/<namespace>/.cache`, or a shared cache an
administrator opted the namespace into (`<storage root>/.cache-shared/<name>`). A VideoJob's
name cannot start with a dot, so neither ever meets a VideoJob's artifact prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from videojob_common.pipeline import Stage

ENTRY_SCHEMA = 1
CACHE_DIR = ".cache"
SHARED_DIR = ".cache-shared"
MANIFEST = "manifest.json"

# What each cached stage stores, one artifact per output (per scene for keyframes and segments).
# Publish has a key but no entry: its bytes are stitch's, copied to where the user asked.
ARTIFACTS: dict[Stage, str] = {
    Stage.PLAN: "plan.json",
    Stage.KEYFRAMES: "scene.png",
    Stage.SEGMENTS: "scene.mp4",
    Stage.STITCH: "video.mp4",
}
CONTENT_TYPES: dict[Stage, str] = {
    Stage.PLAN: "application/json",
    Stage.KEYFRAMES: "image/png",
    Stage.SEGMENTS: "video/mp4",
    Stage.STITCH: "video/mp4",
}

# The operator's instructions to a stage pod: the cache scope and the keys of the outputs it
# renders (JSON), and, for a Job that renders only some scenes, which ones (a pod-template
# annotation read through the downward API: the Job's index k renders scene scenes[k]).
CACHE_ENV = "VIDEOJOB_CACHE"
SCENES_ENV = "VIDEOJOB_SCENES"
SCENES_ANNOTATION = "videojob.dev/scenes"

_KEY = re.compile(r"^[0-9a-f]{64}$")
_WRITER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SCENES = 32


class CorruptEntry(ValueError):
    """A manifest that does not parse, or does not describe the entry it sits in."""


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def scope(storage_root: str, namespace: str, shared: str | None = None) -> str:
    """The cache a namespace reads and writes: its own, or the shared one it is a member of."""
    if shared:
        return _join(storage_root, SHARED_DIR, shared)
    return _join(storage_root, namespace, CACHE_DIR)


def entry(scope_uri: str, stage: Stage, key: str) -> str:
    """The folder of one entry."""
    if stage not in ARTIFACTS:
        raise ValueError(f"stage {stage} has no cache entries")
    if not _KEY.match(key):
        raise ValueError(f"{key!r} is not a cache key (64 hex digits)")
    return _join(scope_uri, str(stage), key)


def manifest_uri(entry_uri: str) -> str:
    return _join(entry_uri, MANIFEST)


def artifact_path(writer: str, stage: Stage) -> str:
    """Where a writer puts its artifact, relative to the entry."""
    if not _WRITER.match(writer):
        raise ValueError(f"{writer!r} is not a writer name")
    return f"{writer}/{ARTIFACTS[stage]}"


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the entry: `<writer>/<name>`
    bytes: int
    md5: str  # base64 of the digest, as GCS reports it
    crc32c: str

    def matches(self, size: int, md5: str) -> bool:
        return self.bytes == size and self.md5 == md5


@dataclass(frozen=True)
class Manifest:
    key: str
    stage: Stage
    scene: int | None
    artifact: Artifact
    written_by: dict[str, str]  # namespace, name, uid of the VideoJob: provenance only
    written_at: str

    def to_json(self) -> str:
        return json.dumps({
            "schema": ENTRY_SCHEMA, "key": self.key, "stage": str(self.stage),
            "scene": self.scene,
            "artifact": {"path": self.artifact.path, "bytes": self.artifact.bytes,
                         "md5": self.artifact.md5, "crc32c": self.artifact.crc32c},
            "writtenBy": self.written_by, "writtenAt": self.written_at,
        }, sort_keys=True, indent=1)

    def artifact_uri(self, entry_uri: str) -> str:
        return _join(entry_uri, self.artifact.path)


def parse_manifest(text: str | bytes, *, key: str, stage: Stage) -> Manifest:
    """The manifest of the entry (`key`, `stage`), or CorruptEntry saying what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise CorruptEntry(f"manifest is not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("schema") != ENTRY_SCHEMA:
        raise CorruptEntry("manifest has another schema")
    if doc.get("key") != key or doc.get("stage") != str(stage):
        raise CorruptEntry("manifest names another entry")
    art = doc.get("artifact")
    if not isinstance(art, dict):
        raise CorruptEntry("manifest names no artifact")
    path = art.get("path")
    writer, _, name = path.partition("/") if isinstance(path, str) else ("", "", "")
    if not isinstance(path, str) or not _WRITER.match(writer) or name != ARTIFACTS[stage]:
        raise CorruptEntry(f"manifest's artifact path {path!r} is not a writer's {stage} file")
    size, md5, crc = art.get("bytes"), art.get("md5"), art.get("crc32c")
    if not (isinstance(size, int) and size >= 0 and isinstance(md5, str) and md5
            and isinstance(crc, str) and crc):
        raise CorruptEntry("manifest's artifact has no size or checksums")
    scene = doc.get("scene")
    if scene is not None and not (isinstance(scene, int) and 0 <= scene < MAX_SCENES):
        raise CorruptEntry(f"manifest's scene {scene!r} is not a scene index")
    by = doc.get("writtenBy") or {}
    return Manifest(key=key, stage=stage, scene=scene,
                    artifact=Artifact(path=str(path), bytes=size, md5=md5, crc32c=crc),
                    written_by={k: str(v) for k, v in by.items()} if isinstance(by, dict)
                    else {},
                    written_at=str(doc.get("writtenAt") or ""))


# -- what the operator tells a stage pod -------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    """`VIDEOJOB_CACHE`: the scope to write entries to, and the key of each output the pod
    renders (`scene` None for plan and stitch)."""

    scope: str
    keys: dict[int | None, str]

    def to_json(self) -> str:
        return json.dumps({"scope": self.scope,
                           "keys": {("" if k is None else str(k)): v
                                    for k, v in sorted(self.keys.items(),
                                                       key=lambda kv: -1 if kv[0] is None
                                                       else kv[0])}},
                          separators=(",", ":"))

    def key_of(self, scene: int | None) -> str | None:
        return self.keys.get(scene)


def parse_instruction(text: str) -> Instruction:
    """The instruction in `VIDEOJOB_CACHE`; ValueError when it is malformed."""
    doc: Any = json.loads(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("scope"), str):
        raise ValueError(f"{CACHE_ENV} has no scope")
    raw = doc.get("keys")
    if not isinstance(raw, Mapping):
        raise ValueError(f"{CACHE_ENV} has no keys")
    keys: dict[int | None, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str) or not _KEY.match(v):
            raise ValueError(f"{CACHE_ENV}: {v!r} is not a cache key")
        keys[None if k == "" else int(k)] = v
    return Instruction(scope=doc["scope"], keys=keys)


def scenes_text(scenes: tuple[int, ...] | list[int]) -> str:
    """The scenes a partial Job renders, as its annotation holds them: "2,5,7"."""
    return ",".join(str(s) for s in scenes)


def parse_scenes(text: str, scene_count: int) -> tuple[int, ...]:
    """`VIDEOJOB_SCENES` ("2,5,7"): distinct scene indexes in increasing order, each below
    `scene_count`; ValueError naming the variable otherwise."""
    try:
        scenes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise ValueError(f"{SCENES_ENV}={text!r} is not a list of scene indexes") from None
    if (not scenes or list(scenes) != sorted(set(scenes))
            or not all(0 <= s < scene_count for s in scenes)):
        raise ValueError(f"{SCENES_ENV}={text!r}: scene indexes must be distinct, increasing "
                         f"and below {scene_count}")
    return scenes
