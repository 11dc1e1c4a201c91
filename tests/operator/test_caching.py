"""The stage cache in the planner (caching.py): what a stage does with a lookup's answer, and
how the VideoJob goes when the whole video was cached. No storage: answers are made here."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from videojob_common.cache_entries import CACHE_ENV, SCENES_ANNOTATION, SCENES_ENV
from videojob_common.cache_keys import StageKeys
from videojob_common.pipeline import Phase, Stage, StagePhase
from videojob_operator import caching
from videojob_operator.actions import Plan
from videojob_operator.api import FINALIZER
from videojob_operator.cache_view import CacheAnswer, ReusedVideo
from videojob_operator.config import OperatorConfig
from videojob_operator.jobs import job_name
from videojob_operator.planner import plan
from videojob_operator.views import JobView, Observation

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
ON = OperatorConfig(cache={"enabled": True})
SCOPE = "file:///root/ns/.cache"
N = 4


def key(c: str) -> str:
    return c * 64


KEYS = StageKeys(plan=key("a"), keyframes=tuple(key(c) for c in "bcde"),
                 segments=tuple(key(c) for c in "f012"), stitch=key("3"), publish=key("4"))


def answer(**kw: Any) -> CacheAnswer:
    base: dict[str, Any] = {"planned": True, "scope": SCOPE, "plan_key": KEYS.plan,
                            "keys": KEYS}
    return CacheAnswer(**{**base, **kw})


def videojob(stages: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    status = {"phase": "Running", "stages": stages} if stages else {}
    return {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1"},
            "spec": {"prompt": "x", "scenes": N, "durationSeconds": 4, "fps": 4, **spec},
            "status": status}


def planned_done() -> list[dict[str, Any]]:
    return [{"name": "plan", "phase": "Succeeded", "progress": 100}]


def run(vj: dict[str, Any], cache: CacheAnswer | None, jobs: list[JobView] = (),  # type: ignore[assignment]
        config: OperatorConfig = ON) -> Plan:
    return plan(Observation(vj, list(jobs), [], [], T0, cache=cache), config)


def stage_of(p: Plan, name: str) -> dict[str, Any]:
    assert p.status is not None
    found: dict[str, Any] = next(s for s in p.status["stages"] if s["name"] == name)
    return found


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- pure decisions ------------------------------------------------------------------------

def test_a_missing_plan_is_rendered_and_its_entry_written() -> None:
    got = caching.for_stage(Stage.PLAN, answer(planned=False, keys=None), N)
    assert not got.cached and got.scenes is None
    assert got.instruction is not None and got.instruction.keys == {None: KEYS.plan}
    assert caching.for_stage(Stage.PLAN, answer(plan_cached=True), N).cached


def test_only_the_keyframes_the_missing_segments_need_are_drawn() -> None:
    # Segments 0 and 2 cached; 1 and 3 missing. With crossfades, segment 1 dissolves into
    # scene 2's first frame, so keyframes 1, 2 and 3 are owed; keyframe 2 is cached.
    got = caching.for_stage(Stage.KEYFRAMES, answer(segments=frozenset({0, 2}),
                                                    keyframes=frozenset({2}),
                                                    needs_next=frozenset({0, 1, 2})), N)
    assert got.scenes == (1, 3) and got.cached_scenes == "1/4"
    assert got.instruction is not None
    assert got.instruction.keys == {1: KEYS.keyframes[1], 3: KEYS.keyframes[3]}
    # Without crossfades, keyframe 2 is not owed at all.
    got = caching.for_stage(Stage.KEYFRAMES, answer(segments=frozenset({0, 2})), N)
    assert got.scenes == (1, 3)


def test_segments_render_the_missing_scenes_only() -> None:
    got = caching.for_stage(Stage.SEGMENTS, answer(segments=frozenset({0, 1, 3})), N)
    assert got.scenes == (2,) and got.cached_scenes == "3/4"
    assert got.instruction is not None and got.instruction.keys == {2: KEYS.segments[2]}
    every = caching.for_stage(Stage.SEGMENTS, answer(), N)
    assert every.scenes is None and every.cached_scenes is None
    assert caching.for_stage(Stage.SEGMENTS, answer(segments=frozenset(range(N))), N).cached


def test_an_unkeyable_videojob_renders_everything_and_writes_nothing() -> None:
    got = caching.for_stage(Stage.SEGMENTS, answer(keys=None, problem="no checksum"), N)
    assert got == caching.NO_CACHE
    failed = caching.for_stage(Stage.PLAN, answer(plan_key="", keys=None), N)
    assert failed == caching.NO_CACHE


def test_an_answer_before_the_plan_is_not_enough_after_it() -> None:
    before = answer(planned=False, keys=None)
    assert caching.answered(before, Stage.PLAN, planned=False)
    assert not caching.answered(before, Stage.KEYFRAMES, planned=True)
    assert caching.answered(answer(keys=None), Stage.KEYFRAMES, planned=True)
    assert not caching.answered(None, Stage.PLAN, planned=False)


# -- the planner ------------------------------------------------------------------------------

def test_no_job_before_the_lookup_answers_then_the_plan_job_writes_its_entry() -> None:
    p = run(videojob(), None)
    assert p.create_jobs == [] and p.cache_lookup is not None
    assert not p.cache_lookup.planned and p.cache_lookup.read
    assert p.cache_lookup.scope == "file:///var/lib/videojob/artifacts/ns/.cache"
    assert stage_of(p, "plan")["message"] == "looking up the cache"
    p = run(videojob(), answer(planned=False, keys=None))
    [job] = p.create_jobs
    assert json.loads(env_of(job)[CACHE_ENV]) == {"scope": SCOPE, "keys": {"": KEYS.plan}}


def test_the_cache_off_looks_nothing_up() -> None:
    for vj, config in ((videojob(cache={"policy": "Off"}), ON),
                       (videojob(), OperatorConfig())):
        p = run(vj, None, config=config)
        assert p.cache_lookup is None and len(p.create_jobs) == 1
        assert CACHE_ENV not in env_of(p.create_jobs[0])


def test_refresh_looks_up_the_keys_but_reads_no_entry() -> None:
    p = run(videojob(cache={"policy": "Refresh"}), None)
    assert p.cache_lookup is not None and not p.cache_lookup.read


def test_a_cached_plan_hands_over_to_the_missing_keyframes_in_the_same_look() -> None:
    p = run(videojob(), answer(plan_cached=True, segments=frozenset({0, 1, 2}),
                               keyframes=frozenset()))
    assert stage_of(p, "plan")["phase"] == StagePhase.CACHED
    [job] = p.create_jobs
    assert job["metadata"]["labels"]["videojob.dev/stage"] == "keyframes"
    assert job["spec"]["template"]["metadata"]["annotations"][SCENES_ANNOTATION] == "3"
    assert stage_of(p, "keyframes")["cachedScenes"] == "0/4"
    assert any(e.reason == "StageCached" for e in p.events)


def test_a_partial_segments_job_maps_its_indexes_to_the_missing_scenes() -> None:
    stages = [*planned_done(), {"name": "keyframes", "phase": "Succeeded", "progress": 100}]
    p = run(videojob(stages), answer(segments=frozenset({0, 2})))
    [job] = p.create_jobs
    assert job["spec"]["completions"] == 2
    assert job["spec"]["template"]["metadata"]["annotations"][SCENES_ANNOTATION] == "1,3"
    env = env_of(job)
    assert env[SCENES_ENV] == {"fieldRef": {
        "fieldPath": f"metadata.annotations['{SCENES_ANNOTATION}']"}}
    assert json.loads(env[CACHE_ENV])["keys"] == {"1": KEYS.segments[1], "3": KEYS.segments[3]}
    assert stage_of(p, "segments")["cachedScenes"] == "2/4"


def test_every_segment_cached_makes_no_job_and_stitch_runs() -> None:
    stages = [*planned_done(), {"name": "keyframes", "phase": "Cached", "progress": 100}]
    p = run(videojob(stages), answer(segments=frozenset(range(N))))
    seg = stage_of(p, "segments")
    assert seg["phase"] == StagePhase.CACHED and seg["cachedScenes"] == "4/4"
    [job] = p.create_jobs
    assert job["metadata"]["name"] == job_name("clip", "u1", "stitch")
    assert json.loads(env_of(job)[CACHE_ENV])["keys"] == {"": KEYS.stitch}


def test_a_cached_video_succeeds_at_once_with_reason_reused() -> None:
    reused = ReusedVideo(output={"uri": "file:///out.mp4", "bytes": 10, "md5": "bWQ1",
                                 "crc32c": "Y3Jj"},
                         key=KEYS.stitch, entry=f"{SCOPE}/stitch/{KEYS.stitch}",
                         written_by={"namespace": "ns", "name": "first", "uid": "u0"})
    p = run(videojob(), answer(plan_cached=True, reused=reused))
    assert p.create_jobs == []
    assert p.status is not None
    assert p.status["phase"] == Phase.SUCCEEDED and p.status["reason"] == "Reused"
    assert p.status["output"]["bytes"] == 10 and p.status["output"]["md5"] == "bWQ1"
    assert p.status["reusedFrom"]["name"] == "first"
    assert {s["phase"] for s in p.status["stages"]} == {StagePhase.CACHED}
    assert [e.reason for e in p.events][-1] == "Reused"
    # Settled: the next look changes nothing and writes nothing.
    again = run({**videojob(), "status": p.status}, answer(plan_cached=True, reused=reused))
    assert again.status is None and again.create_jobs == [] and again.events == []


def test_an_override_of_a_scene_that_does_not_exist_names_the_field() -> None:
    p = run(videojob(sceneOverrides=[{"index": 7, "seed": 1}]), None)
    assert p.status is not None and p.status["phase"] == Phase.FAILED
    assert "spec.sceneOverrides[0].index" in p.status["message"]
