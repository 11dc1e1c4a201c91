"""What an administrator lets a namespace ask for (limits.py): ceilings refused with the limit
named, a priority band, and GPU placement a VideoJob can only narrow."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from pydantic import ValidationError

from videojob_common.pipeline import Stage
from videojob_operator import jobs
from videojob_operator.api import FINALIZER, Toleration, VideoJobSpec
from videojob_operator.config import Defaults, OperatorConfig, effective
from videojob_operator.limits import (
    Limits,
    Placement,
    PodResources,
    for_namespace,
    over_limits,
    quantity,
    widened_placement,
)
from videojob_operator.planner import plan
from videojob_operator.stages import _pod_resources
from videojob_operator.views import JobView, Observation

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def spec(**fields: Any) -> VideoJobSpec:
    return VideoJobSpec.model_validate({"prompt": "x", **fields})


def over(s: VideoJobSpec, limits: Limits, gpus: int = 1) -> list[str]:
    return over_limits(s, s.scenes or 4, gpus, 3600, 900, 600, limits)


def test_a_namespaces_entry_overrides_the_default_field_by_field() -> None:
    limits = {"*": Limits(max_gpus_per_pod=1, max_scenes=8),
              "team-a": Limits(max_gpus_per_pod=4)}
    assert for_namespace(limits, "team-a") == Limits(max_gpus_per_pod=4, max_scenes=8)
    assert for_namespace(limits, "team-b") == Limits(max_gpus_per_pod=1, max_scenes=8)
    assert for_namespace({}, "x") == Limits()  # no ceiling at all


def test_each_value_over_a_ceiling_is_named_with_its_limit() -> None:
    huge = spec(resolution="3840x2160", durationSeconds=600, fps=60, scenes=32, priority=100,
                gpu={"count": 16}, timeouts={"totalSeconds": 604800})
    limits = Limits(max_pixel_frames=1920 * 1080 * 60 * 30, max_scenes=16, max_gpus_per_pod=2,
                    max_gpus_per_videojob=8, max_total_seconds=7200, max_priority=10)
    found = over_limits(huge, 32, 16, 604800, 900, 600, limits)
    assert [p.split(":")[0] for p in found] == [
        "spec.resolution x durationSeconds x fps", "spec.scenes", "spec.gpu.count",
        "spec.gpu.count x scenes", "spec.timeouts.totalSeconds", "spec.priority"]
    assert found[2] == ("spec.gpu.count: 16 is over this namespace's limit of 2 (operator "
                        "configuration limits.max_gpus_per_pod)")
    assert over(spec(), limits) == []  # 1280x720, 12 s at 24 fps, 4 scenes, 1 GPU
    assert over(spec(priority=-60), Limits(min_priority=-50)) == [
        "spec.priority: -60 is under this namespace's limit of -50 (operator configuration "
        "limits.min_priority)"]


def test_placement_can_only_be_narrowed() -> None:
    admin = {"pool": "gpu-a100"}
    allowed = Placement(tenant_toleration_keys=["example.com/spot"])
    assert widened_placement(spec(gpu={"nodeSelector": {"pool": "gpu-a100", "zone": "b"},
                                       "tolerations": [{"key": "example.com/spot",
                                                        "operator": "Exists"}]}),
                             admin, allowed) == []
    found = widened_placement(spec(gpu={
        "nodeSelector": {"pool": "reserved"},
        "tolerations": [{"operator": "Exists"}, {"key": "team-b/reserved", "operator": "Exists"}]}),
        admin, allowed)
    assert [p.split(":")[0] for p in found] == [
        "spec.gpu.nodeSelector.pool", "spec.gpu.tolerations[0]", "spec.gpu.tolerations[1].key"]
    # What runs: the administrator's labels and tolerations always, the tenant's added.
    config = OperatorConfig(defaults=Defaults(gpu_node_selector=admin))
    eff = effective(spec(gpu={"nodeSelector": {"zone": "b"}}), config, "ns", "n", "u")
    assert eff.gpu_node_selector == {"pool": "gpu-a100", "zone": "b"}
    assert Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule") in (
        eff.gpu_tolerations)


def test_the_planner_refuses_a_spec_over_a_limit_and_stops_a_stage_still_running() -> None:
    config = OperatorConfig(limits={"*": Limits(max_priority=10)})
    vj: dict[str, Any] = {
        "metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 2,
                     "finalizers": [FINALIZER], "resourceVersion": "1"},
        "spec": {"prompt": "x", "priority": 50},  # raised out of the band while running
        "status": {"phase": "Running"}}
    running = JobView(name="clip-plan-abcde", stage="plan", suspended=False, completions=1)
    p = plan(Observation(vj, [running], [], [], T0), config)
    assert p.status is not None and p.status["phase"] == "Failed"
    assert p.status["message"] == ("invalid spec: spec.priority: 50 is over this namespace's "
                                   "limit of 10 (operator configuration limits.max_priority)")
    assert p.delete_jobs == ["clip-plan-abcde"]


def test_a_high_priority_flood_cannot_push_ahead_of_another_namespace() -> None:
    """With every namespace in the band ..0, team-a's flood at priority 100 never reaches the
    queue; at the band's top it queues at team-b's priority, where namespaces take turns
    (test_queue_admission.test_equal_priority_namespaces_take_turns)."""
    config = OperatorConfig(limits={"*": Limits(max_priority=0)})

    def first_plan(namespace: str, name: str, priority: int) -> Any:
        vj = {"metadata": {"name": name, "namespace": namespace, "uid": f"u-{name}",
                           "generation": 1, "finalizers": [FINALIZER], "resourceVersion": "1"},
              "spec": {"prompt": "x", "priority": priority}, "status": {}}
        return plan(Observation(vj, [], [], [], T0), config)

    flood = [first_plan("team-a", f"a{i}", 100) for i in range(20)]
    assert all(p.status["phase"] == "Failed" and not p.create_jobs for p in flood)
    assert "limits.max_priority" in flood[0].status["message"]
    for namespace, name in (("team-a", "a-top"), ("team-b", "b0")):
        p = first_plan(namespace, name, 0)
        assert [j["metadata"]["labels"]["videojob.dev/stage"] for j in p.create_jobs] == ["plan"]


def test_each_stage_pod_gets_the_administrators_resources_and_scratch_limit() -> None:
    resources = {
        "segments": PodResources(requests={"cpu": "500m", "memory": "512Mi"},
                                 limits={"memory": "1Gi"}),
        "plan": PodResources(requests={"memory": "64Mi"}, limits={"memory": "128Mi"})}
    config = OperatorConfig(limits={
        "*": Limits(pod_resources=resources, scratch_size_limit="2Gi"),
        "small": Limits(scratch_size_limit="256Mi")}, defaults=Defaults(gpu_count=1))
    s = spec(scenes=2)

    def pod_of(stage: str, namespace: str) -> dict[str, Any]:
        eff = effective(s, config, namespace, "n", "u")
        manifest = jobs.stage_job(
            namespace=namespace, videojob="n", uid="u", stage=Stage(stage), spec=s, eff=eff,
            pool="gpu", now="t", redis_url=None, service_account="w", extra_env={},
            **_pod_resources(config, namespace, Stage(stage)))
        pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
        return pod

    segments = pod_of("segments", "team-a")
    (container,) = segments["containers"]
    # The GPU limit joins the administrator's limits; nothing of the tenant's is involved.
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}}
    assert segments["volumes"][0] == {"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}
    assert pod_of("segments", "small")["volumes"][0]["emptyDir"] == {"sizeLimit": "256Mi"}
    assert pod_of("plan", "team-a")["containers"][0]["resources"] == {
        "requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    assert "resources" not in pod_of("stitch", "team-a")["containers"][0]  # none configured
    assert _pod_resources(OperatorConfig(), "x", Stage.PLAN) == {  # none configured at all
        "resources": None, "scratch_size_limit": None}


@pytest.mark.parametrize(("fields", "problem"), [
    ({"requests": {"memory": "lots"}}, "'lots' is not a Kubernetes quantity"),
    ({"requests": {"gpu": "1"}}, "'gpu': one of cpu, memory, ephemeral-storage"),
    ({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
     "memory: the request 2Gi is over the limit 1Gi"),
])
def test_pod_resources_are_checked_when_the_configuration_is_read(
        fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        PodResources.model_validate(fields)
    with pytest.raises(ValidationError, match="scratch_size_limit"):
        Limits.model_validate({"scratch_size_limit": "2 GB"})
    assert quantity("1.5Gi") == 1.5 * 2**30 and quantity("250m") == 0.25
