"""The stage cache end to end (issue #25): the operator as its own process against the real API
server, with the cache on; stage pods run the REAL worker (the node agent runs the worker
image's entrypoint, `videojob-worker`), which renders, publishes and writes cache entries under
the storage root (`file://`, the operator's work folder).

- the same VideoJob twice: the second creates no Job and succeeds with reason Reused at once;
- the same prompt at another resolution reuses nothing;
- one scene changed (its seed) in an 8-scene VideoJob runs one keyframes pod and one segments
  pod, and the video is rendered from the rest;
- a corrupted entry is a miss: the scene is rendered again, the entry replaced, and the output
  still verifies;
- namespace B never hits namespace A's entries;
- two identical VideoJobs at once both succeed and leave entries that verify.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from videojob_testkit import videojobs as vjs
from videojob_testkit.real_worker import (
    World,
    entries,
    entry_verifies,
    output_verifies,
    path_of,
    succeeded,
)

pytestmark = pytest.mark.e2e

# Tiny and quick, and `fade`: a crossfade would make a one-scene edit re-render the segment
# before it too (docs/reuse.md).
SPEC = {"prompt": "A lighthouse. A harbour. A boat. The sea.", "durationSeconds": 2, "fps": 4,
        "resolution": "64x64", "scenes": 4, "transition": "fade", "seed": 3}
STAGES = ("plan", "keyframes", "segments", "stitch", "publish")


@pytest.fixture(scope="module")
def world(real_worker: World) -> World:
    return real_worker


def jobs_of(w: World, namespace: str, uid: str) -> dict[str, Any]:
    found = w.cluster.batch.list_namespaced_job(namespace,
                                                label_selector=f"videojob.dev/uid={uid}")
    return {j.metadata.labels["videojob.dev/stage"]: j for j in found.items}


def pods_of(w: World, namespace: str, uid: str, stage: str) -> list[Any]:
    return w.cluster.core.list_namespaced_pod(
        namespace, label_selector=f"videojob.dev/uid={uid},videojob.dev/stage={stage}").items


def phases(vj: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in vj["status"]["stages"]}


def test_the_same_videojob_twice_is_reused_at_once_without_a_job(world: World) -> None:
    ns = world.namespace()
    first = succeeded(world, ns, vjs.create(world.cluster, ns, "first", **SPEC)["metadata"]["name"])
    assert set(jobs_of(world, ns, first["metadata"]["uid"])) == set(STAGES)
    output_verifies(first)
    for stage, count in (("plan", 1), ("keyframes", 4), ("segments", 4), ("stitch", 1)):
        assert len(entries(world, ns, stage)) == count, stage
        assert all(entry_verifies(m) for m in entries(world, ns, stage))

    started = time.monotonic()
    second = vjs.create(world.cluster, ns, "second", **SPEC)
    done = succeeded(world, ns, "second", timeout=30)
    took = time.monotonic() - started
    assert done["status"]["reason"] == "Reused", done["status"]
    assert took < 2.0, f"Reused after {took:.2f} s"
    assert jobs_of(world, ns, second["metadata"]["uid"]) == {}
    assert set(phases(done).values()) == {"Cached"}
    assert done["status"]["reusedFrom"]["name"] == "first"
    # Copied, not referenced: the second's own output, the same bytes.
    path = output_verifies(done)
    assert path != path_of(first["status"]["output"]["uri"])
    assert done["status"]["output"]["md5"] == first["status"]["output"]["md5"]


def test_another_resolution_reuses_nothing(world: World) -> None:
    ns = world.namespace()
    succeeded(world, ns, vjs.create(world.cluster, ns, "small", **SPEC)["metadata"]["name"])
    other = vjs.create(world.cluster, ns, "larger", **{**SPEC, "resolution": "96x64"})
    done = succeeded(world, ns, "larger")
    assert set(phases(done).values()) == {"Succeeded"}
    assert set(jobs_of(world, ns, other["metadata"]["uid"])) == set(STAGES)
    assert all(s.get("cachedScenes") is None for s in done["status"]["stages"])


def test_a_one_scene_change_renders_one_keyframe_and_one_segment(world: World) -> None:
    ns = world.namespace()
    eight = {**SPEC, "scenes": 8, "durationSeconds": 4}
    origin = succeeded(world, ns, vjs.create(world.cluster, ns, "eight", **eight)
                       ["metadata"]["name"], timeout=300)
    edited = vjs.create(world.cluster, ns, "eight-edited", **eight,
                        sceneOverrides=[{"index": 3, "seed": 99}])
    done = succeeded(world, ns, "eight-edited", timeout=300)
    uid = edited["metadata"]["uid"]
    assert len(pods_of(world, ns, uid, "keyframes")) == 1
    assert len(pods_of(world, ns, uid, "segments")) == 1
    jobs = jobs_of(world, ns, uid)
    # The override is spec, so the plan's key moved and the plan ran (CPU, one pod); its
    # content moved for scene 3 only, so everything else came from the origin's entries.
    assert set(jobs) == set(STAGES)
    segments = jobs["segments"]
    assert segments.spec.completions == 1
    assert segments.spec.template.metadata.annotations["videojob.dev/scenes"] == "3"
    by = {s["name"]: s for s in done["status"]["stages"]}
    assert by["segments"]["cachedScenes"] == "7/8"
    output_verifies(done)
    assert done["status"]["output"]["md5"] != origin["status"]["output"]["md5"]


def test_a_corrupted_entry_is_rendered_again_and_replaced(world: World) -> None:
    ns = world.namespace()
    first = succeeded(world, ns, vjs.create(world.cluster, ns, "clean", **SPEC)
                      ["metadata"]["name"])
    # Damage the video's entry (or the next one would be Reused) and scene 2's segment.
    for stage, index in (("stitch", None), ("segments", 2)):
        manifest = next(m for m in entries(world, ns, stage)
                        if json.loads(m.read_text())["scene"] == index)
        artifact = manifest.parent / json.loads(manifest.read_text())["artifact"]["path"]
        artifact.write_bytes(b"\0" * artifact.stat().st_size)  # same size, other bytes
        assert not entry_verifies(manifest)
    again = vjs.create(world.cluster, ns, "again", **SPEC)
    done = succeeded(world, ns, "again")
    assert done["status"].get("reason") != "Reused"
    uid = again["metadata"]["uid"]
    segments = jobs_of(world, ns, uid)["segments"]
    assert segments.spec.template.metadata.annotations["videojob.dev/scenes"] == "2"
    assert len(pods_of(world, ns, uid, "keyframes")) == 0  # keyframe 2 was cached
    output_verifies(done)
    assert done["status"]["output"]["md5"] == first["status"]["output"]["md5"]
    assert all(entry_verifies(m) for m in entries(world, ns, "segments"))
    assert all(entry_verifies(m) for m in entries(world, ns, "stitch"))
    metrics = world.operator.metrics()
    assert metrics.get('videojob_cache_lookups_total{result="corrupt",stage="stitch"}', 0) >= 1
    assert metrics.get('videojob_cache_lookups_total{result="corrupt",stage="segments"}',
                       0) >= 1


def test_namespace_b_never_hits_namespace_as_entries(world: World) -> None:
    a, b = world.namespace(), world.namespace()
    succeeded(world, a, vjs.create(world.cluster, a, "mine", **SPEC)["metadata"]["name"])
    theirs = vjs.create(world.cluster, b, "mine", **SPEC)
    done = succeeded(world, b, "mine")
    assert set(phases(done).values()) == {"Succeeded"}
    assert set(jobs_of(world, b, theirs["metadata"]["uid"])) == set(STAGES)
    # B's outputs went to B's own cache, the same keys as A's.
    assert ({m.parent.name for m in entries(world, b, "segments")}
            == {m.parent.name for m in entries(world, a, "segments")})


def test_two_identical_videojobs_at_once_leave_entries_that_verify(world: World) -> None:
    ns = world.namespace()
    for name in ("twin-a", "twin-b"):
        vjs.create(world.cluster, ns, name, **SPEC)
    done = [succeeded(world, ns, name) for name in ("twin-a", "twin-b")]
    assert done[0]["status"]["output"]["md5"] == done[1]["status"]["output"]["md5"]
    for stage in ("plan", "keyframes", "segments", "stitch"):
        assert entries(world, ns, stage), stage
        assert all(entry_verifies(m) for m in entries(world, ns, stage)), stage
