"""What the cache's sweep removes from a scope (cache_eviction.py): each rule on its own, made
from listings built here. No storage."""

from __future__ import annotations

import datetime as dt

from videojob_common.cache_entries import Artifact, Instruction, Manifest
from videojob_common.cache_keys import StageKeys
from videojob_common.pipeline import Stage
from videojob_operator.cache_eviction import (
    AGE,
    CORRUPT,
    ORPHAN,
    SIZE,
    Deletion,
    Rules,
    StoredObject,
    answer_keys,
    decide,
    entries,
    job_keys,
)
from videojob_operator.cache_view import CacheAnswer
from videojob_operator.config import CacheConfig, CacheLimit

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def key(c: str) -> str:
    return c * 64


def ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest(k: str, writer: str, written: dt.datetime, size: int = 100,
             stage: Stage = Stage.SEGMENTS) -> Manifest:
    return Manifest(key=k, stage=stage, scene=0,
                    artifact=Artifact(f"{writer}/scene.mp4", size, "bWQ1", "Y3Jj"),
                    written_by={}, written_at=ts(written))


def complete(k: str, written: dt.datetime, size: int = 100, writer: str = "w1") -> list[
        StoredObject]:
    return [StoredObject(f"segments/{k}/{writer}/scene.mp4", size, written),
            StoredObject(f"segments/{k}/manifest.json", 0, written)]


def sweep(objects: list[StoredObject], manifests: dict[str, bytes], *,
          limit: CacheLimit | None = None, protected: frozenset[str] = frozenset()
          ) -> tuple[Deletion, ...]:
    found = entries(objects, lambda stage, k: manifests.get(k))
    return decide(found, Rules(limit, NOW, GRACE, protected)).deletions


def listing(*specs: tuple[str, dt.datetime, int]) -> tuple[list[StoredObject], dict[str, bytes]]:
    objects, manifests = [], {}
    for k, written, size in specs:
        objects += complete(k, written, size)
        manifests[k] = manifest(k, "w1", written, size).to_json().encode()
    return objects, manifests


def test_entries_older_than_the_age_limit_go() -> None:
    objects, manifests = listing((key("a"), NOW - 8 * DAY, 10), (key("b"), NOW - 6 * DAY, 10))
    gone = sweep(objects, manifests, limit=CacheLimit(max_age_days=7))
    assert [(d.key, d.writer, d.reason, d.bytes) for d in gone] == [(key("a"), None, AGE, 10)]
    assert gone[0].path == f"segments/{key('a')}"


def test_oldest_entries_go_until_the_scope_fits() -> None:
    objects, manifests = listing((key("a"), NOW - 3 * DAY, 40), (key("b"), NOW - 1 * DAY, 40),
                                 (key("c"), NOW - 2 * DAY, 40))
    found = entries(objects, lambda stage, k: manifests.get(k))
    result = decide(found, Rules(CacheLimit(max_bytes=50), NOW, GRACE, frozenset()))
    assert [(d.key, d.reason) for d in result.deletions] == [(key("a"), SIZE), (key("c"), SIZE)]
    assert result.kept == {Stage.SEGMENTS: 40}


def test_no_limit_removes_nothing_complete() -> None:
    objects, manifests = listing((key("a"), NOW - 400 * DAY, 10**12))
    assert sweep(objects, manifests) == ()


def test_a_protected_key_is_never_removed_for_age_size_or_orphans() -> None:
    objects, manifests = listing((key("a"), NOW - 30 * DAY, 100), (key("b"), NOW - 1 * DAY, 10))
    objects.append(StoredObject(f"segments/{key('a')}/old-writer/scene.mp4", 5, NOW - DAY))
    gone = sweep(objects, manifests, limit=CacheLimit(max_bytes=50, max_age_days=7),
                 protected=frozenset({key("a")}))
    # Over the limit with `a` kept: the younger unprotected entry goes instead.
    assert [(d.key, d.reason) for d in gone] == [(key("b"), SIZE)]


def test_a_writer_folder_no_manifest_names_goes_after_the_grace() -> None:
    objects, manifests = listing((key("a"), NOW - DAY, 10))
    objects += [StoredObject(f"segments/{key('a')}/stale/scene.mp4", 7, NOW - 2 * GRACE),
                StoredObject(f"segments/{key('a')}/uploading/scene.mp4", 9, NOW - GRACE / 2)]
    gone = sweep(objects, manifests)
    assert [(d.key, d.writer, d.reason, d.bytes) for d in gone] == [
        (key("a"), "stale", ORPHAN, 7)]
    assert gone[0].path == f"segments/{key('a')}/stale"


def test_an_entry_without_a_manifest_keeps_its_writers_for_the_grace() -> None:
    objects = [StoredObject(f"keyframes/{key('a')}/old/scene.png", 3, NOW - 2 * GRACE),
               StoredObject(f"keyframes/{key('a')}/new/scene.png", 3, NOW - GRACE / 4)]
    gone = sweep(objects, {})
    assert [(d.stage, d.writer, d.reason) for d in gone] == [(Stage.KEYFRAMES, "old", ORPHAN)]


def test_a_writer_is_as_young_as_its_newest_file() -> None:
    objects = [StoredObject(f"segments/{key('a')}/w/scene.mp4", 3, NOW - 2 * GRACE),
               StoredObject(f"segments/{key('a')}/w/.scene.mp4.tmp", 3, NOW - GRACE / 4)]
    assert sweep(objects, {}) == ()


def test_a_corrupt_manifest_goes_with_its_entry_after_the_grace() -> None:
    old = [StoredObject(f"plan/{key('a')}/w/plan.json", 4, NOW - 2 * GRACE),
           StoredObject(f"plan/{key('a')}/manifest.json", 2, NOW - 2 * GRACE)]
    young = [StoredObject(f"plan/{key('b')}/w/plan.json", 4, NOW - 2 * GRACE),
             StoredObject(f"plan/{key('b')}/manifest.json", 2, NOW - GRACE / 2)]
    gone = sweep(old + young, {key("a"): b"{not json", key("b"): b"{not json"})
    assert [(d.stage, d.key, d.writer, d.reason, d.bytes) for d in gone] == [
        (Stage.PLAN, key("a"), None, CORRUPT, 6)]


def test_a_manifest_naming_a_missing_writer_is_corrupt() -> None:
    objects = [StoredObject(f"segments/{key('a')}/other/scene.mp4", 4, NOW - 2 * GRACE),
               StoredObject(f"segments/{key('a')}/manifest.json", 2, NOW - 2 * GRACE)]
    gone = sweep(objects, {key("a"): manifest(key("a"), "w1", NOW - DAY).to_json().encode()})
    assert [(d.writer, d.reason) for d in gone] == [(None, CORRUPT)]


def test_a_manifest_for_another_entry_is_corrupt() -> None:
    objects = complete(key("a"), NOW - 2 * GRACE)
    gone = sweep(objects, {key("a"): manifest(key("b"), "w1", NOW).to_json().encode()})
    assert [d.reason for d in gone] == [CORRUPT]


def test_what_is_not_the_caches_is_left_alone() -> None:
    old = NOW - 100 * DAY
    objects = [StoredObject("segments/not-a-key/w/scene.mp4", 1, old),
               StoredObject(f"publish/{key('a')}/w/video.mp4", 1, old),
               StoredObject(f"segments/{key('a')}", 1, old),
               StoredObject("README", 1, old)]
    assert sweep(objects, {}, limit=CacheLimit(max_bytes=0, max_age_days=1)) == ()


def test_the_written_time_falls_back_to_storage_when_the_manifest_has_none() -> None:
    k = key("a")
    objects = complete(k, NOW - 10 * DAY)
    bare = Manifest(key=k, stage=Stage.SEGMENTS, scene=0,
                    artifact=Artifact("w1/scene.mp4", 100, "bWQ1", "Y3Jj"), written_by={},
                    written_at="")
    gone = sweep(objects, {k: bare.to_json().encode()}, limit=CacheLimit(max_age_days=7))
    assert [d.reason for d in gone] == [AGE]


def test_kept_bytes_count_every_stage_left() -> None:
    plan = [StoredObject(f"plan/{key('e')}/w/plan.json", 5, NOW)]
    objects, manifests = listing((key("a"), NOW, 10))
    result = decide(entries(objects + plan, lambda stage, k: manifests.get(k)),
                    Rules(None, NOW, GRACE, frozenset()))
    assert result.kept == {Stage.SEGMENTS: 10, Stage.PLAN: 5}


def test_keys_of_a_running_videojob_and_of_its_jobs() -> None:
    keys = StageKeys(plan=key("a"), keyframes=(key("b"),), segments=(key("c"),),
                     stitch=key("d"), publish=key("e"))
    answer = CacheAnswer(planned=True, scope="file:///r/ns/.cache", plan_key=key("a"),
                         keys=keys)
    assert answer_keys(answer) == {key(c) for c in "abcd"}
    instruction = Instruction("file:///r/ns/.cache", {0: key("f"), 1: key("9")})
    job = {"spec": {"template": {"spec": {"containers": [{"name": "worker", "env": [
        {"name": "OTHER", "value": "x"},
        {"name": "VIDEOJOB_CACHE", "value": instruction.to_json()}]}]}}}}
    assert job_keys(job) == {key("f"), key("9")}
    assert job_keys({"spec": {}}) == set()


def test_limits_one_per_namespace_with_a_default() -> None:
    config = CacheConfig(limits=[CacheLimit(namespace="*", max_bytes=10),
                                 CacheLimit(namespace="team-a", max_age_days=3)])
    assert config.limit_for("team-a") == CacheLimit(namespace="team-a", max_age_days=3)
    assert config.limit_for("team-b") == CacheLimit(namespace="*", max_bytes=10)
    assert config.limit_for(None) == CacheLimit(namespace="*", max_bytes=10)
    try:
        CacheConfig(limits=[CacheLimit(namespace="a"), CacheLimit(namespace="a")])
    except ValueError as err:
        assert "two limits for namespace a" in str(err)
    else:
        raise AssertionError("two limits for one namespace were accepted")
