from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from localcluster.cgroups import PodCpu, PodGroups, millicores, shares, weight


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"spec": {"containers": list(containers), "initContainers": list(init)}}


def container(requests: str | None = None, limits: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = {"cpu": requests, "memory": "1Gi"}
    if limits is not None:
        resources["limits"] = {"cpu": limits}
    return {"name": "c", "resources": resources}


@pytest.mark.parametrize(("quantity", "milli"), [
    ("500m", 500), ("1", 1000), ("0.25", 250), (2, 2000), ("1.5", 1500), ("0.0001", 1),
    ("100m", 100)])
def test_cpu_quantities_in_millicores(quantity: str | int, milli: int) -> None:
    assert millicores(quantity) == milli


@pytest.mark.parametrize("bad", ["lots", "-1", "1.5.2"])
def test_a_bad_quantity_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        millicores(bad)


def test_best_effort_pods_get_the_least_weight() -> None:
    cpu = PodCpu.of(pod(container(), container()))
    assert (cpu.request, cpu.limit, cpu.shares, cpu.quota_us) == (0, None, 2, None)
    # Memory alone, or an extended resource alone, does not make a pod ask for CPU.
    assert PodCpu.of(pod({"name": "c", "resources": {
        "limits": {"nvidia.com/gpu": "1"}}})).shares == 2


def test_requests_add_up_over_containers_and_give_the_kubelets_shares() -> None:
    cpu = PodCpu.of(pod(container("500m"), container("250m")))
    assert cpu.request == 750 and cpu.shares == 768 and cpu.limit is None


def test_an_init_container_counts_when_it_asks_for_more_than_the_containers() -> None:
    assert PodCpu.of(pod(container("100m"), init=(container("2"),))).request == 2000
    assert PodCpu.of(pod(container("3"), init=(container("2"),))).request == 3000


def test_a_limit_alone_is_also_the_request_and_sets_the_quota() -> None:
    cpu = PodCpu.of(pod(container(limits="250m")))
    assert (cpu.request, cpu.limit, cpu.shares, cpu.quota_us) == (250, 250, 256, 25_000)


def test_no_quota_unless_every_container_is_limited() -> None:
    assert PodCpu.of(pod(container(limits="1"), container("100m"))).quota_us is None
    assert PodCpu.of(pod(container(limits="1"), container(limits="500m"))).quota_us == 150_000


def test_shares_are_bounded_and_convert_to_v2_weights_as_runc_does() -> None:
    assert shares(1) == 2 and shares(10_000_000) == 262144
    assert (weight(2), weight(1024), weight(262144)) == (1, 39, 10000)


def test_no_writable_cpu_controller_means_no_groups(tmp_path: Path) -> None:
    assert PodGroups.detect("agent", mount=tmp_path) is None


CPU_V1 = Path("/sys/fs/cgroup/cpu")


@pytest.mark.skipif(not (CPU_V1 / "cpu.shares").exists(), reason="needs cgroup v1's cpu")
def test_a_pods_group_has_its_weight_and_removing_it_kills_what_is_left() -> None:
    groups = PodGroups.detect(f"test-{uuid.uuid4()}")
    if groups is None:
        pytest.skip("the cpu controller is not writable here")
    try:
        uid = str(uuid.uuid4())
        procs = groups.create(uid, PodCpu.of(pod(container("500m", limits="1"))))
        assert (procs.parent / "cpu.shares").read_text().strip() == "512"
        assert (procs.parent / "cpu.cfs_quota_us").read_text().strip() == "100000"
        # A process that left its session and process group is still in the pod's group.
        child = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {procs} && echo joined && exec sleep 60"],
            stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert child.stdout is not None and child.stdout.readline() == b"joined\n"
            assert str(child.pid) in procs.read_text().split()
            groups.remove(uid)
            assert child.wait(timeout=10) == -9
            assert not procs.parent.exists()
        finally:
            child.kill()
            child.wait()
    finally:
        groups.close()
    assert not groups.base.exists()


def test_on_cgroup_v2_weights_and_quotas_go_in_its_own_files(tmp_path: Path) -> None:
    # A stand-in for the unified hierarchy: the files the kernel would create are made here.
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    probe = PodGroups(tmp_path, 2, "agent")
    probe.base.mkdir()
    (probe.base / "cgroup.subtree_control").write_text("")
    groups = PodGroups.detect("agent", mount=tmp_path)
    assert groups is not None and groups.version == 2 and groups.base == probe.base
    # The cpu controller is handed down to the agent's group and from it to the pods'.
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert (groups.base / "cgroup.subtree_control").read_text() == "+cpu"
    cpus = os.cpu_count() or 1
    assert (groups.base / "cpu.weight").read_text() == str(weight(shares(1000 * cpus)))
    procs = groups.create("uid-1", PodCpu.of(pod(container("500m", limits="1"))))
    assert procs == groups.base / "poduid-1" / "cgroup.procs"
    assert (procs.parent / "cpu.weight").read_text() == str(weight(512))
    assert (procs.parent / "cpu.max").read_text() == "100000 100000"
    groups.create("uid-2", PodCpu.of(pod(container())))
    assert (groups.base / "poduid-2" / "cpu.weight").read_text() == "1"
    assert (groups.base / "poduid-2" / "cpu.max").read_text() == "max 100000"
