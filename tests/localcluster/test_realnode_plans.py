"""The real-node mode's plans: addresses, the traffic guard, and the files containerd, the
kubelet, CNI and kube-proxy read (what this machine needs of each, and what keeps traffic here)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from localcluster import addons, network, realnodes
from localcluster.agent import DEFAULT_NODES, load_nodes
from localcluster.processes import Layout

ADDRS = network.Addresses()


@pytest.fixture
def nodes(tmp_path: Path) -> list[realnodes.RealNode]:
    return realnodes.plan(Layout(tmp_path), load_nodes(DEFAULT_NODES))


def test_every_cluster_address_is_inside_a_guarded_range(nodes: list[realnodes.RealNode]) -> None:
    guarded = [ipaddress.ip_network(c) for c in ADDRS.ranges]
    used = [ADDRS.api_server, ADDRS.kubernetes_service, ADDRS.dns_service,
            *(n.ip(ADDRS) for n in nodes), *(ADDRS.pod_gateway(n.index) for n in nodes)]
    for addr in used:
        assert any(ipaddress.ip_address(addr) in net for net in guarded), addr
    subnets = [ipaddress.ip_network(ADDRS.pod_subnet(n.index)) for n in nodes]
    assert len(set(subnets)) == len(nodes)
    assert all(s.subnet_of(ipaddress.ip_network(ADDRS.pods_cidr)) for s in subnets)  # type: ignore[arg-type]


def test_guard_blackholes_every_range_and_drops_pod_traffic_leaving_them() -> None:
    up = network.guard_up(ADDRS, 2)
    assert [c[3:] for c in up if c[:3] == ["ip", "route", "add"]] == [
        ["blackhole", cidr] for cidr in ADDRS.ranges]
    rules = network.guard_rules(ADDRS)
    assert rules[-1] == ["iptables", "-w", "-A", network.GUARD_CHAIN, "-s", ADDRS.pods_cidr,
                         "-j", "DROP"]
    allowed = {r[r.index("-d") + 1] for r in rules if "RETURN" in r}
    assert allowed == set(ADDRS.ranges)
    down = network.guard_down(ADDRS)
    assert [c[3:] for c in down if c[:3] == ["ip", "route", "del"]] == [
        ["blackhole", cidr] for cidr in ADDRS.ranges]


def test_containerd_config_has_what_this_machine_needs(nodes: list[realnodes.RealNode]) -> None:
    cfg = tomllib.loads(realnodes.containerd_config(nodes[0]))
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert cri["sandbox_image"] == f"{realnodes.registry()}/{realnodes.PAUSE_IMAGE}"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"SystemdCgroup": False, "BinaryName": realnodes.RUNC}
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cfg["grpc"]["address"] == str(nodes[0].containerd_socket)
    assert len(str(nodes[0].containerd_socket) + ".ttrpc") < 108  # sun_path
    # Two nodes never share state.
    other = tomllib.loads(realnodes.containerd_config(nodes[1]))
    for key in ("root", "state"):
        assert cfg[key] != other[key]
    hosts = tomllib.loads(realnodes.registry_hosts_toml())
    assert hosts["server"] == f"http://127.0.0.1:{realnodes.REGISTRY_PORT}"


def test_cni_bridges_do_not_masquerade_and_do_not_overlap(nodes: list[realnodes.RealNode]) -> None:
    confs = [realnodes.cni_config(n, ADDRS)["plugins"][0] for n in nodes]
    assert all(c["ipMasq"] is False for c in confs)
    assert len({c["bridge"] for c in confs}) == len(nodes)
    assert all(len(c["bridge"]) <= 15 for c in confs)  # IFNAMSIZ


def test_kubelet_config(nodes: list[realnodes.RealNode], tmp_path: Path) -> None:
    gpu = next(n for n in nodes if n.gpus)
    cfg = realnodes.kubelet_config(gpu, ADDRS, tmp_path)
    assert (cfg["failCgroupV1"], cfg["cgroupDriver"], cfg["failSwapOn"]) == (
        False, "cgroupfs", False)
    assert cfg["resolvConf"] == ""  # no resolver of the machine's inside pods
    assert cfg["clusterDNS"] == [ADDRS.dns_service]
    assert cfg["address"] == gpu.ip(ADDRS)
    assert cfg["registerWithTaints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert realnodes.node_labels(gpu) == "nvidia.com/gpu.present=true"
    assert len({realnodes.kubelet_config(n, ADDRS, tmp_path)["cgroupRoot"] for n in nodes}) == 2


def test_kube_proxy_opens_node_ports_only_on_node_addresses(tmp_path: Path) -> None:
    cfg = realnodes.kube_proxy_config(ADDRS, tmp_path / "kc", "local-cpu")
    assert cfg["nodePortAddresses"] == [ADDRS.nodes_cidr]
    assert cfg["iptables"]["localhostNodePorts"] is False
    assert cfg["clusterCIDR"] == ADDRS.pods_cidr


def test_node_processes_share_the_node_mount_namespace(nodes: list[realnodes.RealNode]) -> None:
    holder = realnodes.holder_command(nodes[0])
    assert holder[:4] == ["unshare", "--mount", "--propagation", "private"]
    for target in ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers"):
        assert f" {target} && " in holder[-1]
    assert realnodes.in_node(42, ["kubelet"]) == ["nsenter", "--mount=/proc/42/ns/mnt", "--",
                                                 "kubelet"]
    names = realnodes.component_names(DEFAULT_NODES)
    assert names[0] == "registry" and names[-1] == "kube-proxy"
    assert "device-plugin-local-gpu" in names and "device-plugin-local-cpu" not in names


def test_coredns_answers_the_cluster_only() -> None:
    assert "forward" not in addons.COREFILE and "proxy" not in addons.COREFILE
    docs = addons.coredns("reg/coredns:x", ADDRS.dns_service)
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    assert svc["spec"]["clusterIP"] == ADDRS.dns_service
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {p["port"] for p in svc["spec"]["ports"]} == {53, 9153}


def test_the_chart_is_pointed_at_pushed_images_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    refs = {"operator": f"127.0.0.1:5000/videojob/operator:0.1.0@{digest}",
            "redis": "127.0.0.1:5000/videojob/redis:7.0", "pause": "ignored"}
    sets = realnodes.chart_image_sets(refs)
    pairs = dict(s.split("=", 1) for s in sets[1::2])
    assert sets[::2] == ["--set"] * 4
    assert pairs == {"image.repository": "127.0.0.1:5000/videojob/operator",
                     "image.tag": f"0.1.0@{digest}",
                     "redis.bundled.image.repository": "127.0.0.1:5000/videojob/redis",
                     "redis.bundled.image.tag": "7.0"}
