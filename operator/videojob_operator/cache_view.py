"""What a cache lookup is asked (`CacheLookup`) and what it found (`CacheAnswer`): the values
that pass between the planner (caching.py) and the lookups (cache_lookup.py), on their own so
that the plan and the observation can carry them."""

from __future__ import annotations

from dataclasses import dataclass

from videojob_common.cache_keys import StageKeys, Toolchain
from videojob_common.pipeline import Obj


@dataclass(frozen=True)
class ReusedVideo:
    """The whole video, copied from its cache entry to the VideoJob's output URI."""

    output: Obj  # uri, bytes, md5, crc32c: as publish reports them
    key: str
    entry: str
    written_by: dict[str, str]


@dataclass(frozen=True)
class CacheAnswer:
    """What a lookup found for one VideoJob (cache_lookup.py)."""

    planned: bool  # looked up with the plan known (from its entry, or the plan stage's)
    scope: str
    plan_key: str
    plan_cached: bool = False  # the plan came from the cache (copied into the prefix)
    keys: StageKeys | None = None  # None: the plan is not known yet, or not keyable
    keyframes: frozenset[int] = frozenset()  # scenes copied from the cache into the prefix
    segments: frozenset[int] = frozenset()
    # Scenes whose segment dissolves into the next scene's keyframe (a crossfade).
    needs_next: frozenset[int] = frozenset()
    reused: ReusedVideo | None = None
    problem: str = ""  # why the outputs after the plan are not keyed (an input without checksum)


@dataclass(frozen=True)
class CacheLookup:
    """A lookup the planner asks for."""

    namespace: str
    name: str
    uid: str
    planned: bool
    read: bool  # Use; Refresh computes the keys and reads nothing
    scope: str
    prefix: str  # the VideoJob's artifact prefix: <root>/<namespace>/<name>/<uid>
    output_uri: str
    spec: str  # VIDEOJOB_SPEC, the document the keys are computed from
    toolchain: Toolchain
