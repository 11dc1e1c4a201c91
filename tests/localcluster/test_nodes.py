from __future__ import annotations

from pathlib import Path

import pytest
import urllib3

from localcluster.agent import DEFAULT_NODES, NodeAgent, load_nodes, node_object, node_status


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


def test_a_pod_event_the_api_server_cannot_take_is_dropped(tmp_path: Path) -> None:
    # The API server down while a container starts: the event is lost, the pod's runner goes
    # on (an exception here once left pods Running in the API forever).
    class Down:
        def create(self, path: str, body: object) -> object:
            raise urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]

    agent = NodeAgent(Down(), load_nodes(DEFAULT_NODES), tmp_path, port=0,  # type: ignore[arg-type]
                      tls=("", "", ""), api_host="127.0.0.1", api_port="6443", image_table=[])
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": {"nodeName": "x"}}
    agent.event(pod, "Normal", "Started", "Started container main")
