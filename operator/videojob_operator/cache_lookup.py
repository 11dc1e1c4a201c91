"""The stage cache's lookups (issue #25): the planner asks (`Plan.cache_lookup`), this module
reads the entries on a thread, copies the hits into the VideoJob's artifact prefix (and a
cached video to its output URI), and hands the answer to the VideoJob's next reconcile.

`find` does one lookup (blocking, storage I/O); `CacheLookups` runs them off the event loop, a
few at a time, one per VideoJob and kind at once, and keeps the answers until the VideoJob
goes. A lookup that fails (storage unreachable) answers "nothing cached": a VideoJob renders
rather than waits. Every hit is verified: the copy's size and md5 must be the manifest's, or
the entry counts as corrupt, the copy is removed, and the stage renders and replaces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from videojob_common.cache_entries import (
    CorruptEntry,
    Manifest,
    entry,
    manifest_uri,
    parse_manifest,
)
from videojob_common.cache_keys import StageKeys, UnkeyableInput, needs_next_scene, plan_key
from videojob_common.cache_keys import stage_keys as compute_keys
from videojob_common.pipeline import Stage

from . import metrics
from .cache_storage import Storage
from .cache_view import CacheAnswer, CacheLookup, ReusedVideo
from .logs import ctx

log = logging.getLogger("videojob.cache")

Key = tuple[str, str]
MAX_MANIFEST = 64 * 1024
MAX_PLAN = 1024 * 1024


def scene_file(index: int, extension: str) -> str:
    return f"scene-{index:03d}.{extension}"  # as the worker names them (artifacts.py)


class Lookup:
    """One lookup's reads and copies, with the entries' scope and the VideoJob's prefix."""

    def __init__(self, request: CacheLookup, storage: Storage) -> None:
        self.request, self.storage = request, storage

    def take(self, stage: Stage, key: str, target: str, *, verify_first: bool = False
             ) -> Manifest | None:
        """The entry's artifact copied to `target` and verified, else None (a miss)."""
        where = entry(self.request.scope, stage, key)
        if not self.storage.contained(manifest_uri(where), self.request.scope):
            self._corrupt(stage, where, "a link leads out of the cache")
            return None
        raw = self.storage.read(manifest_uri(where), MAX_MANIFEST)
        if raw is None:
            metrics.CACHE_LOOKUPS.labels(stage, "miss").inc()
            return None
        try:
            manifest = parse_manifest(raw, key=key, stage=stage)
        except CorruptEntry as err:
            self._corrupt(stage, where, str(err))
            return None
        source = manifest.artifact_uri(where)
        if not self.storage.contained(source, self.request.scope):
            self._corrupt(stage, where, "a link leads out of the cache")
            return None
        if verify_first:  # never overwrite a user's output with bytes that may be wrong
            found = self.storage.checksum(source)
            if found is None or not manifest.artifact.matches(*found):
                self._corrupt(stage, where, "artifact does not match its manifest")
                return None
        copied = self.storage.copy(source, target)
        if copied is None or not manifest.artifact.matches(*copied):
            if copied is not None:
                self.storage.delete(target)
            self._corrupt(stage, where, "artifact does not match its manifest")
            return None
        metrics.CACHE_LOOKUPS.labels(stage, "hit").inc()
        metrics.CACHE_BYTES_REUSED.labels(stage).inc(manifest.artifact.bytes)
        return manifest

    def _corrupt(self, stage: Stage, where: str, why: str) -> None:
        metrics.CACHE_LOOKUPS.labels(stage, "corrupt").inc()
        log.warning("cache entry %s is corrupt (%s): a miss, to be replaced", where, why,
                    extra=ctx(self.request.namespace, self.request.name))

    def inputs(self, spec: dict[str, Any]) -> dict[str, str]:
        """The checksum of each input file the keys hold (images, audio), where storage
        knows one: http(s) inputs have none, and their outputs are not keyed."""
        found = {}
        for uri in [*(spec.get("images") or []), *([spec["audio"]] if spec.get("audio") else [])]:
            if not uri.startswith(("gs://", "file://")):
                continue
            sums = self.storage.checksum(uri)
            if sums is not None:
                found[uri] = f"md5:{sums[1]}"
        return found


def find(request: CacheLookup, storage: Storage) -> CacheAnswer:
    """Look up what the request asks (caching.py): the plan's entry before the plan stage, then
    everything the plan determines."""
    spec: dict[str, Any] = json.loads(request.spec)
    pk = plan_key(spec, request.toolchain)
    plain = CacheAnswer(planned=request.planned, scope=request.scope, plan_key=pk)
    lookup = Lookup(request, storage)
    plan_uri = f"{request.prefix}/{Stage.PLAN}/plan.json"
    plan_cached = False
    if not request.planned:
        if not request.read:
            return plain
        plan_cached = lookup.take(Stage.PLAN, pk, plan_uri) is not None
        if not plan_cached:
            return plain
    raw = storage.read(plan_uri, MAX_PLAN)
    if raw is None:
        return dataclasses.replace(plain, problem="the plan is missing")
    plan = json.loads(raw)
    toolchain = dataclasses.replace(request.toolchain,
                                    backend_version=str(plan.get("backendVersion") or ""))
    try:
        keys = compute_keys(spec, toolchain, lookup.inputs(spec), plan)
    except (UnkeyableInput, ValueError) as err:
        return dataclasses.replace(plain, planned=True, plan_cached=plan_cached, problem=str(err))
    scenes = len(keys.segments)
    answer = dataclasses.replace(
        plain, planned=True, plan_cached=plan_cached, keys=keys,
        needs_next=frozenset(i for i in range(scenes) if needs_next_scene(plan, i)))
    if not request.read:
        return answer
    reused = _whole_video(lookup, keys)
    if reused is not None:
        return dataclasses.replace(answer, reused=reused)
    return _scenes(lookup, keys, answer)


def _whole_video(lookup: Lookup, keys: StageKeys) -> ReusedVideo | None:
    request = lookup.request
    try:
        manifest = lookup.take(Stage.STITCH, keys.stitch, request.output_uri, verify_first=True)
    except ValueError as err:  # the output in another kind of storage than the cache
        log.info("not reusing a cached video: %s", err)
        return None
    if manifest is None:
        return None
    art = manifest.artifact
    return ReusedVideo(output={"uri": request.output_uri, "bytes": art.bytes, "md5": art.md5,
                               "crc32c": art.crc32c},
                       key=keys.stitch, entry=entry(request.scope, Stage.STITCH, keys.stitch),
                       written_by=manifest.written_by)


def _scenes(lookup: Lookup, keys: StageKeys, answer: CacheAnswer) -> CacheAnswer:
    """The segments in the cache, then the keyframes the missing ones need, copied into the
    VideoJob's prefix where the stages after them read them."""
    prefix = lookup.request.prefix
    segments = frozenset(
        i for i, key in enumerate(keys.segments)
        if lookup.take(Stage.SEGMENTS, key,
                       f"{prefix}/{Stage.SEGMENTS}/{scene_file(i, 'mp4')}") is not None)
    missing = set(range(len(keys.segments))) - segments
    owed = missing | {i + 1 for i in missing if i in answer.needs_next}
    keyframes = frozenset(
        i for i in sorted(owed)
        if lookup.take(Stage.KEYFRAMES, keys.keyframes[i],
                       f"{prefix}/{Stage.KEYFRAMES}/{scene_file(i, 'png')}") is not None)
    return dataclasses.replace(answer, segments=segments, keyframes=keyframes)


class CacheLookups:
    """Runs the planner's lookups off the event loop and keeps their answers by VideoJob."""

    def __init__(self, threads: int, requeue: Callable[[Key], None],
                 storage: Storage | None = None) -> None:
        self.requeue = requeue
        self.storage = storage or Storage()
        self.answers: dict[Key, tuple[str, CacheAnswer]] = {}  # by VideoJob, with its uid
        self.running: set[tuple[Key, bool]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(threads)

    def answer(self, key: Key, uid: str) -> CacheAnswer | None:
        found = self.answers.get(key)
        return found[1] if found is not None and found[0] == uid else None

    def ask(self, key: Key, request: CacheLookup) -> None:
        if (key, request.planned) in self.running:
            return
        self.running.add((key, request.planned))
        task = asyncio.get_running_loop().create_task(self._run(key, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def forget(self, key: Key) -> None:
        self.answers.pop(key, None)

    def answers_of(self, videojobs: set[Key]) -> list[CacheAnswer]:
        """The answers held for these VideoJobs (the housekeeping keeps what they name)."""
        return [answer for key, (_, answer) in list(self.answers.items()) if key in videojobs]

    async def _run(self, key: Key, request: CacheLookup) -> None:
        try:
            async with self.slots:
                started = time.perf_counter()
                try:
                    answer = await asyncio.to_thread(find, request, self.storage)
                except Exception as err:  # storage down, a malformed plan: render, never wait
                    metrics.CACHE_LOOKUP_ERRORS.inc()
                    log.warning("cache lookup failed: %s", err, extra=ctx(*key))
                    answer = CacheAnswer(planned=True, scope=request.scope, plan_key="",
                                         problem=f"lookup failed: {err}")
                metrics.CACHE_LOOKUP_SECONDS.observe(time.perf_counter() - started)
            self.answers[key] = (request.uid, answer)
        finally:
            self.running.discard((key, request.planned))
        self.requeue(key)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
