"""GPU-seconds in status (accounting.py): counted from pods that ended, every attempt, per stage
and in total, never going down; the counters add what a written status gained."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_operator import accounting, metrics
from videojob_operator.api import StageStatus, VideoJobStatus
from videojob_operator.kube import Api
from videojob_operator.store import Store
from videojob_testkit.stage_pods import GPU, pod

NOW = dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC)


def status(**stage_seconds: float | None) -> VideoJobStatus:
    return VideoJobStatus(stages=[StageStatus(name=s, phase="Running", gpu_seconds=v)
                                  for s, v in stage_seconds.items()])


def test_ended_pods_count_their_run_times_their_gpus_every_attempt() -> None:
    pods = [pod("k0", "keyframes", "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z"),
            # segments: scene 0 failed once (its first pod), then ran again; 2 GPUs each
            pod("s0a", "segments", "2026-01-01T00:01:00Z", "2026-01-01T00:01:30Z", 2, "Failed"),
            pod("s0b", "segments", "2026-01-01T00:01:40Z", "2026-01-01T00:02:00Z", 2),
            pod("s1", "segments", "2026-01-01T00:01:00Z", "2026-01-01T00:01:05Z", 2),
            pod("p0", "plan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:03Z", 0)]
    out = accounting.step(status(plan=None, keyframes=None, segments=None), pods, GPU, NOW)
    figures = {s.name: s.gpu_seconds for s in out.stages or []}
    assert figures == {"plan": None, "keyframes": 10.0, "segments": 110.0}
    assert out.gpu_seconds == 120.0


def test_a_running_pod_counts_nothing_until_it_ends() -> None:
    running = pod("s0", "segments", "2026-01-01T00:00:00Z", None, 4)
    before = status(segments=None)
    assert accounting.step(before, [running], GPU, NOW) is before  # nothing new: no write
    ended = pod("s0", "segments", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z", 4)
    assert accounting.step(before, [ended], GPU, NOW).gpu_seconds == 120.0


def test_a_figure_never_goes_down_when_pods_are_gone() -> None:
    held = status(segments=500.0)
    # After a restart, one of the pods counted before was deleted meanwhile: 500 stays.
    one = pod("s1", "segments", "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z")
    out = accounting.step(held, [one], GPU, NOW)
    assert out.stages is not None and out.stages[0].gpu_seconds == 500.0
    assert out.gpu_seconds == 500.0
    # Settled: planning again from that status changes nothing.
    assert accounting.step(out, [one], GPU, NOW) is out


def test_no_gpu_no_figure() -> None:
    plan_pod = pod("p0", "plan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:03Z", 0)
    before = status(plan=None)
    assert accounting.step(before, [plan_pod], GPU, NOW) is before


def test_the_store_keeps_deleted_pods_for_accounting_until_the_videojob_goes() -> None:
    store = Store(Api(client.ApiClient()))
    vj: dict[str, Any] = {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1",
                                       "resourceVersion": "1"}, "spec": {}, "status": {}}
    store.observe_videojob("ADDED", vj)
    p = pod("s0", "segments", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z", 2)
    other = pod("x0", "segments", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z", 2, uid="u2")
    store.observe_child("pod", "ADDED", p)
    store.observe_child("pod", "ADDED", other)
    store.observe_child("pod", "DELETED", p)
    assert not store.pods.get(("ns", "clip"), {}).get("s0")
    assert [o["metadata"]["name"] for o in store.pod_objects(("ns", "clip"), "u1")] == ["s0"]
    store.observe_videojob("DELETED", vj)
    assert store.pod_objects(("ns", "clip"), "u1") == []


def sample(name: str, labels: dict[str, str]) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_counters_add_what_a_written_status_gained() -> None:
    labels = {"namespace": "acct", "pool": "gpu"}
    before = sample("videojob_gpu_seconds_total", labels)
    out_before = sample("videojob_output_seconds_total", {"namespace": "acct"})
    old = {"phase": "Running", "stages": [{"name": "segments", "gpuSeconds": 10.0}]}
    new = {"phase": "Succeeded", "stages": [{"name": "segments", "gpuSeconds": 25.5},
                                            {"name": "stitch"}]}
    metrics.record_usage("acct", old, new, lambda stage: "gpu", 12)
    assert sample("videojob_gpu_seconds_total", labels) - before == 15.5
    assert sample("videojob_output_seconds_total", {"namespace": "acct"}) - out_before == 12
    # The same status written again (or planned again after a restart) adds nothing.
    metrics.record_usage("acct", new, new, lambda stage: "gpu", 12)
    assert sample("videojob_gpu_seconds_total", labels) - before == 15.5
    assert sample("videojob_output_seconds_total", {"namespace": "acct"}) - out_before == 12


def test_an_ended_pods_figure_is_parsed_once_a_running_ones_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = accounting.pod_record

    def counted(p: Obj, now: dt.datetime, resource_name: str | None) -> Any:
        calls.append(p["metadata"]["name"])
        return real(p, now, resource_name)

    monkeypatch.setattr(accounting, "pod_record", counted)
    monkeypatch.setattr(accounting, "_figures", type(accounting._figures)())
    done = pod("k0", "keyframes", "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z")
    done["metadata"]["uid"] = "pod-k0"
    running = pod("s0", "segments", "2026-01-01T00:00:20Z", None)
    running["metadata"]["uid"] = "pod-s0"
    for _ in range(3):
        assert accounting.step(status(keyframes=None, segments=None), [done, running], GPU,
                               NOW).gpu_seconds == 10.0
    assert calls == ["k0"]  # once; the running pod is looked at but never counted
    # A newer version of the same pod is another document: counted again.
    done["metadata"]["resourceVersion"] = "6"
    accounting.step(status(keyframes=None), [done], GPU, NOW)
    assert calls == ["k0", "k0"]
