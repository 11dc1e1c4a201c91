from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.agent import DEFAULT_NODES, load_nodes, node_object, node_status


def test_default_nodes_are_one_cpu_and_one_two_gpu_node() -> None:
    nodes = {n.name: n for n in load_nodes(DEFAULT_NODES)}
    assert set(nodes) == {"local-cpu", "local-gpu"}
    gpu = nodes["local-gpu"]
    assert gpu.gpus == 2 and nodes["local-cpu"].gpus == 0
    obj = node_object(gpu)
    assert obj["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert obj["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_node_status_is_ready_and_advertises_capacity() -> None:
    gpu = next(n for n in load_nodes(DEFAULT_NODES) if n.gpus)
    status = node_status(gpu, 10250, None)
    assert status["capacity"]["nvidia.com/gpu"] == "2"
    assert status["allocatable"] == status["capacity"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    again = node_status(gpu, 10250, status)
    assert next(c for c in again["conditions"] if c["type"] == "Ready")[
        "lastTransitionTime"] == ready["lastTransitionTime"]


def test_node_set_is_configurable(tmp_path: Path) -> None:
    f = tmp_path / "nodes.yaml"
    f.write_text("nodes:\n  - name: big-gpu\n    capacity: {nvidia.com/gpu: 8}\n")
    (node,) = load_nodes(f)
    assert node.name == "big-gpu" and node.gpus == 8


def test_an_empty_node_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "nodes.yaml"
    f.write_text("nodes: []\n")
    with pytest.raises(ValueError, match="no nodes"):
        load_nodes(f)
