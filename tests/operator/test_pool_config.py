"""Pools from the operator's configuration, and `maxConcurrency: auto` from the nodes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from videojob_operator import config
from videojob_operator.config_watch import apply
from videojob_operator.pools import capacity, gpus_on, merge, pool_of, slots_per_pod


def node(name: str, gpus: str = "2", *, ready: bool = True, cordoned: bool = False,
         labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": cordoned},
            "status": {"allocatable": {"nvidia.com/gpu": gpus, "cpu": "8"},
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_built_in_pools() -> None:
    pools = merge(None)
    assert pools["gpu"].stages == ["keyframes", "segments"]
    assert pools["gpu"].max_concurrency == "auto"
    assert pools["cpu"].stages == ["plan", "narrate", "stitch", "publish"]
    assert pool_of(pools, "segments") == "gpu" and pool_of(pools, "publish") == "cpu"


def test_a_field_set_changes_only_that_field() -> None:
    pools = merge({"gpu": {"strategy": "accurate"}})
    assert pools["gpu"].strategy == "accurate"
    assert pools["gpu"].max_concurrency == "auto" and pools["gpu"].stages == [
        "keyframes", "segments"]


def test_a_new_pool_takes_its_stages_from_the_built_in_ones() -> None:
    pools = merge({"encode": {"stages": ["stitch"], "maxConcurrency": 1}})
    assert pools["encode"].stages == ["stitch"]
    assert pools["cpu"].stages == ["plan", "narrate", "publish"]
    # A configuration written before narrate existed: it goes with plan.
    pools = merge({"cpu": {"stages": ["plan", "stitch", "publish"]}})
    assert pools["cpu"].stages == ["plan", "stitch", "publish", "narrate"]


@pytest.mark.parametrize(("pools", "message"), [
    ({"gpu": {"stages": ["plan"]}, "cpu": {"stages": ["plan", "stitch", "publish"]}},
     "pools.cpu.stages: plan is already in pool gpu"),
    ({"cpu": {"stages": ["plan"]}}, "pools: stages stitch, publish belong to no pool"),
    ({"gpu": {"maxConcurency": 4}}, "pools.gpu.maxConcurency: Extra inputs are not permitted"),
    ({"gpu": {"maxConcurrency": -1}}, "pools.gpu.maxConcurrency: must be >= 0 or 'auto'"),
    ({"gpu": {"strategy": "fast"}}, "pools.gpu.strategy: Input should be 'default', 'accurate'"),
    ({"gpu": {"targetQueueLength": 0}}, "pools.gpu.targetQueueLength"),
])
def test_bad_pools_are_refused_naming_the_field(pools: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as e:
        config.load(text=yaml.safe_dump({"pools": pools}), environ={})
    assert message in str(e.value)


def test_auto_counts_gpus_of_ready_schedulable_matching_nodes() -> None:
    nodes = [node("a"), node("b", "4", labels={"pool": "gpu"}), node("c", ready=False),
             node("d", cordoned=True), node("e", "0")]
    assert gpus_on(nodes, {}, "nvidia.com/gpu") == 6
    assert gpus_on(nodes, {"pool": "gpu"}, "nvidia.com/gpu") == 4
    pools = merge(None)
    assert capacity(pools["gpu"], nodes, gpu_resource="nvidia.com/gpu", gpu_selector={},
                    gpus_per_pod=2) == 3
    assert capacity(pools["cpu"], nodes, gpu_resource="nvidia.com/gpu", gpu_selector={},
                    gpus_per_pod=2) == 10
    assert capacity(pools["gpu"], [], gpu_resource="nvidia.com/gpu", gpu_selector={},
                    gpus_per_pod=1) == 0


def test_slots_per_pod_count_gpus_only_under_auto() -> None:
    pools = merge(None)
    assert slots_per_pod(pools["gpu"], gpu_count=3, gpus_per_pod=1) == 3
    assert slots_per_pod(pools["gpu"], gpu_count=0, gpus_per_pod=1) == 1
    assert slots_per_pod(pools["cpu"], gpu_count=3, gpus_per_pod=1) == 1


def test_a_pool_change_applies_at_once_and_a_bad_one_is_ignored() -> None:
    live = config.LiveConfig(config.OperatorConfig())
    told: list[config.OperatorConfig] = []
    live.subscribe(told.append)  # admission makes a pass at each change
    assert apply(live, "pools: {gpu: {maxConcurrency: 0}}")
    assert live.current.pools["gpu"].max_concurrency == 0 and len(told) == 1
    assert not apply(live, "pools: {gpu: {maxConcurrency: lots}}")
    assert live.current.pools["gpu"].max_concurrency == 0 and len(told) == 1
    assert apply(live, "pools: {gpu: {maxConcurrency: 0}}")  # the same: valid, nothing to do
    assert len(told) == 1
    assert apply(live, "pools: {}")
    assert live.current.pools["gpu"].max_concurrency == "auto" and len(told) == 2
