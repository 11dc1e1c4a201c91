"""Real nodes: containerd and a kubelet per node, running the images built from our Dockerfiles.

Chosen with `LOCALCLUSTER_RUNTIME=containerd` (docs/local-cluster.md). Each node of the node file
(`nodes.yaml`: the same CPU and GPU node as the node agent's) gets:
- a mount namespace of its own, held by a `sleep` process. The kubelet's device-plugin socket
  directory is fixed at /var/lib/kubelet/device-plugins (deviceplugin/v1beta1 `KubeletSocket`),
  so two kubelets on one machine would take each other's socket; inside its namespace each node
  has its own /var/lib/kubelet (a bind mount of `.cluster/nodes/<name>/kubelet`). Mounts stay
  private to the node and vanish with it, as they do with a node's machine;
- containerd 1.6 (Debian's) with runc, its own root, state and socket; the CRI plugin pulls from
  the local registry (127.0.0.1, plain HTTP) and uses our pause image;
- a kubelet (built from the pinned module) with the node's identity `system:node:<name>`, its
  address on the dummy interface, the node's labels and taints;
- a CNI network: a bridge `vjbr<i>` with host-local IPAM over the node's pod subnet;
- on a GPU node, our device plugin (`hack/node/cmd/device-plugin`), which advertises the GPUs.

Shared by the nodes: one kube-proxy (the nodes share the host's network namespace, so one set of
rules serves both), the registry, and CoreDNS as a Deployment (addons.py).

Settings this machine needs (docs/local-cluster.md says why): the kubelet's `failCgroupV1: false`,
`cgroupDriver: cgroupfs`, `failSwapOn: false`; containerd's `restrict_oom_score_adj = true` (no
CAP_SYS_RESOURCE here) and `SystemdCgroup = false`; runc, not crun.

Functions named `*_config` and `*_command` are pure: they render files and argument lists.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from videojob_common.pipeline import Obj

from . import addons, network, pki
from .agent import GPU_RESOURCE, NodeConfig, load_nodes
from .kube import Kube
from .network import Addresses, bridge_name
from .processes import Layout, recorded_pid, start, stop, wait_for

HACK = Path(__file__).resolve().parents[1]
REGISTRY_PORT = 5000  # examples/helm/values-local.yaml and the tests name it too
PAUSE_IMAGE = "videojob/pause:3.10"
CGROUP_V1 = Path("/sys/fs/cgroup")
CONTAINERD = "/usr/bin/containerd"
RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"


def registry() -> str:
    return f"127.0.0.1:{REGISTRY_PORT}"


@dataclass(frozen=True)
class RealNode:
    """One node of the real-node cluster, as the node file and its position give it."""

    name: str
    index: int
    labels: dict[str, str]
    taints: list[Obj]
    gpus: int
    state: Path  # .cluster/nodes/<name>
    run: Path  # a short directory for sockets (sun_path is 108 bytes)

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/localcluster-{self.name}"

    def ip(self, addrs: Addresses) -> str:
        return addrs.node_ip(self.index)


def run_dir(root: Path) -> Path:
    """Where sockets go: under /run, named by the state directory so clusters never meet."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return Path("/run") / f"localcluster-{digest}"


def containerd_config(node: RealNode) -> str:
    """containerd 1.6's config (version 2), in TOML."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f'{cri}.containerd.runtimes.runc'
    return "\n".join([
        "version = 2",
        f'root = "{node.state / "containerd" / "root"}"',
        f'state = "{node.run / "containerd-state"}"',
        # Tracing and the snapshotters this machine cannot use would only log errors.
        'disabled_plugins = ["io.containerd.internal.v1.tracing", '
        '"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", '
        '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
        "[grpc]",
        f'  address = "{node.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{node.containerd_socket}.ttrpc"',
        "[metrics]",
        '  address = ""',
        f"[{cri}]",
        f'  sandbox_image = "{registry()}/{PAUSE_IMAGE}"',
        # No CAP_SYS_RESOURCE on these machines: without this every sandbox fails in runc with
        # "can't get final child's PID from pipe: EOF".
        "  restrict_oom_score_adj = true",
        '  stream_server_address = "127.0.0.1"',
        "  enable_selinux = false",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{runc}]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{runc}.options]",
        "  SystemdCgroup = false",
        f'  BinaryName = "{RUNC}"',
        f"[{cri}.cni]",
        f'  bin_dir = "{CNI_BIN}"',
        f'  conf_dir = "{node.state / "cni" / "net.d"}"',
        "  max_conf_num = 1",
        f"[{cri}.registry]",
        f'  config_path = "{node.state / "containerd" / "certs.d"}"',
        "",
    ])


def registry_hosts_toml() -> str:
    """containerd's hosts.toml for the local registry: plain HTTP on 127.0.0.1."""
    return "\n".join([
        f'server = "http://{registry()}"',
        f'[host."http://{registry()}"]',
        '  capabilities = ["pull", "resolve"]',
        "",
    ])


def cni_config(node: RealNode, addrs: Addresses) -> Obj:
    """A bridge with host-local IPAM over the node's pod subnet. No masquerade: nothing a pod
    sends may leave the machine (network.py), so there is nothing to masquerade for."""
    return {
        "cniVersion": "1.0.0",
        "name": "localcluster",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge_name(node.index),
                "isGateway": True,
                "ipMasq": False,
                # A pod reaching itself through a Service hairpins through the bridge.
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": addrs.pod_subnet(node.index),
                                 "gateway": addrs.pod_gateway(node.index)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: RealNode, addrs: Addresses, pki: Path) -> Obj:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip(addrs),
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": node.ip(addrs),
        "healthzPort": 10248,
        "tlsCertFile": str(pki / f"kubelet-{node.name}-serving.crt"),
        "tlsPrivateKeyFile": str(pki / f"kubelet-{node.name}-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        # These machines boot cgroup v1 (hybrid), with no systemd; the kubelet refuses v1
        # unless told otherwise (KEP-5573).
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Two kubelets on one machine: each keeps its pods under a root of its own.
        "cgroupRoot": node.cgroup_root,
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "clusterDNS": [addrs.dns_service],
        "clusterDomain": "cluster.local",
        # Pods get no resolver of the machine's: a name outside the cluster is never sent off it.
        "resolvConf": "",
        "registerWithTaints": node.taints,
        "serializeImagePulls": False,
        "maxPods": 110,
        # The test machine's disk is shared with everything else: evict only when it is truly
        # full, and never garbage-collect images the tests are about to use.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%",
                         "imagefs.available": "2%", "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "staticPodPath": "",
        "enableDebuggingHandlers": True,  # kubectl logs and exec
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }


def kube_proxy_config(addrs: Addresses, kubeconfig: Path, hostname: str) -> Obj:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": addrs.pods_cidr,
        "hostnameOverride": hostname,
        "bindAddress": addrs.api_server,
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        # NodePorts only on the node addresses, never on the machine's own interfaces.
        "nodePortAddresses": [addrs.nodes_cidr],
        # Leave the conntrack sysctls alone (not every machine lets us write them).
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"localhostNodePorts": False},
    }


def node_labels(node: RealNode) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))


# What each node has of its own, bound over the machine's path in the node's namespace. The
# kubelet also removes the log directories of pods it does not know, so two kubelets sharing
# /var/log/pods delete each other's container logs.
NODE_BINDS = [("kubelet", "/var/lib/kubelet"), ("log/pods", "/var/log/pods"),
              ("log/containers", "/var/log/containers")]


def holder_command(node: RealNode) -> list[str]:
    """The process that holds the node's mount namespace: /var/lib/kubelet and the pod logs are
    the node's own there, and the mounts made under them (the pods' volumes) its alone."""
    binds = " && ".join(f"mkdir -p {target} {node.state / source} && "
                        f"mount --bind {node.state / source} {target}"
                        for source, target in NODE_BINDS)
    script = f"{binds} && exec sleep infinity"
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def in_node(holder_pid: int, cmd: list[str]) -> list[str]:
    return ["nsenter", f"--mount=/proc/{holder_pid}/ns/mnt", "--", *cmd]


def containerd_command(node: RealNode) -> list[str]:
    return [CONTAINERD, "--config", str(node.state / "containerd" / "config.toml"),
            "--log-level", "warn"]


def kubelet_command(node: RealNode, bin_dir: Path, addrs: Addresses, kubeconfig: Path
                    ) -> list[str]:
    cmd = [str(bin_dir / "kubelet"),
           f"--config={node.state / 'kubelet-config.yaml'}",
           f"--kubeconfig={kubeconfig}",
           f"--hostname-override={node.name}",
           f"--node-ip={node.ip(addrs)}",
           "--root-dir=/var/lib/kubelet",
           "--v=1"]
    if node.labels:
        cmd.append(f"--node-labels={node_labels(node)}")
    return cmd


def device_plugin_command(node: RealNode, tools: Path) -> list[str]:
    return [str(tools / "device-plugin"), "--resource=nvidia.com/gpu", f"--count={node.gpus}"]


def kube_proxy_command(bin_dir: Path, config: Path) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={config}", "--v=1"]


def registry_command(tools: Path) -> list[str]:
    return [str(tools / "registry"), "serve", str(HACK / "registry" / "config.yml")]


def registry_env(storage: Path) -> dict[str, str]:
    return {"REGISTRY_HTTP_ADDR": registry(),
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(storage),
            # It would otherwise try to send traces to localhost:4318 and log each failure.
            "OTEL_TRACES_EXPORTER": "none"}


def write_node_files(node: RealNode, addrs: Addresses, pki: Path) -> None:
    """Everything a node's processes read, written anew at each start."""
    for d in ("kubelet", "containerd/root", "cni/net.d", "cni/ipam"):
        (node.state / d).mkdir(parents=True, exist_ok=True)
    node.run.mkdir(parents=True, exist_ok=True)
    (node.state / "containerd" / "config.toml").write_text(containerd_config(node))
    hosts = node.state / "containerd" / "certs.d" / registry()
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(registry_hosts_toml())
    (node.state / "cni" / "net.d" / "10-localcluster.conflist").write_text(
        json.dumps(cni_config(node, addrs), indent=2))
    (node.state / "kubelet-config.yaml").write_text(
        yaml.safe_dump(kubelet_config(node, addrs, pki), sort_keys=False))


def cgroup_dirs(node: RealNode, mount: Path = CGROUP_V1) -> list[Path]:
    """The node's cgroup root in every v1 hierarchy (the kubelet's cgroupfs driver uses each)."""
    return [h / node.cgroup_root.lstrip("/") for h in sorted(mount.iterdir())
            if h.is_dir() and h.name != "unified" and (h / "cgroup.procs").exists()]


def make_cgroup_root(node: RealNode) -> None:
    """The kubelet refuses a cgroupRoot that does not exist; cpuset children start with no CPUs
    or memory nodes, so those are copied from the parent."""
    for d in cgroup_dirs(node):
        d.mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (d / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((d.parent / f).read_text())


def cgroup_tree(node: RealNode) -> list[Path]:
    """Every cgroup under the node's roots, deepest first, the roots last."""
    tree: list[Path] = []
    for top in (t for t in cgroup_dirs(node) if t.exists()):
        tree += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        tree.append(top)
    return tree


def kill_cgroup_tree(node: RealNode) -> int:
    """Kills every process under the node's cgroup roots (the containers outlive their shims
    otherwise). Returns how many it signalled."""
    killed = 0
    for group in cgroup_tree(node):
        with contextlib.suppress(OSError):
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
    return killed


def remove_cgroup_tree(node: RealNode) -> None:
    for group in cgroup_tree(node):
        with contextlib.suppress(OSError):
            group.rmdir()


# ---- bringing the nodes up and down (the adapters over the functions above) ----

ADDRS = Addresses()


def plan(layout: Layout, nodes: list[NodeConfig]) -> list[RealNode]:
    run = run_dir(layout.root)
    return [RealNode(name=n.name, index=i, labels=n.labels, taints=n.taints, gpus=n.gpus,
                     state=layout.node_state(n.name), run=run / n.name)
            for i, n in enumerate(nodes)]


def node_components(node: RealNode) -> list[str]:
    names = [f"node-{node.name}", f"containerd-{node.name}", f"kubelet-{node.name}"]
    return names + ([f"device-plugin-{node.name}"] if node.gpus else [])


def component_names(node_file: Path) -> list[str]:
    """The long-running processes of a real-node cluster after the control plane, in order."""
    nodes = plan(Layout(Path("/nonexistent")), load_nodes(node_file))
    return ["registry", *(c for n in nodes for c in node_components(n)), "kube-proxy"]


def identities(nodes: list[RealNode]) -> list[pki.Identity]:
    if not nodes:
        return []
    ids = [pki.KUBE_PROXY]
    for n in nodes:
        ids += pki.kubelet_identities(n.name, n.ip(ADDRS))
    return ids


def prepare(layout: Layout, nodes: list[RealNode], server: str) -> None:
    """Before the API server starts (it listens on a node-network address): the addresses and
    the guard, then every node's files and kubeconfig."""
    network.apply_guard(ADDRS, len(nodes))
    for n in nodes:
        pki.kubeconfig(layout.pki, f"kubelet-{n.name}", server,
                       layout.component_kubeconfig(f"kubelet-{n.name}"))
        write_node_files(n, ADDRS, layout.pki)
    pki.kubeconfig(layout.pki, "kube-proxy", server, layout.component_kubeconfig("kube-proxy"))
    (layout.root / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(
        ADDRS, layout.component_kubeconfig("kube-proxy"), nodes[0].name), sort_keys=False))


def node_tools() -> Path:
    """The directory of the device plugin, pause, CoreDNS and registry binaries (built once)."""
    out = subprocess.run([str(HACK / "build-node-tools.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def push_images(names: list[str]) -> dict[str, str]:
    """Builds (or finds) the named images, pushes them to the local registry, and returns each
    one's reference there, digest included (`127.0.0.1:5000/videojob/worker:0.1.0@sha256:…`)."""
    out = subprocess.run([str(HACK / "build-images.sh"), "--push", registry(), *names],
                         check=True, stdout=subprocess.PIPE, text=True)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


# The chart's value for each image (repository and tag; a tag may carry a digest).
CHART_IMAGE_VALUES = {"operator": "image", "worker": "worker.image",
                      "gateway": "gateway.image", "redis": "redis.bundled.image",
                      "postgres": "archive.postgres.image"}


def chart_image_sets(refs: dict[str, str]) -> list[str]:
    """`helm --set` arguments that point the chart at pushed images, by digest."""
    sets = []
    for name, key in CHART_IMAGE_VALUES.items():
        if name in refs:
            named, _, digest = refs[name].partition("@")
            repository, _, tag = named.rpartition(":")
            sets += ["--set", f"{key}.repository={repository}",
                     "--set", f"{key}.tag={tag}@{digest}" if digest else f"{key}.tag={tag}"]
    return sets


def _registry_ready() -> bool:
    with urllib.request.urlopen(f"http://{registry()}/v2/", timeout=2) as r:
        return bool(r.status == 200)


def up(layout: Layout, nodes: list[RealNode], bin_dir: Path, api: Kube, timeout: float
       ) -> dict[str, str]:
    """Starts what is not running: the registry (with the pause and CoreDNS images in it), each
    node's namespace holder, containerd, kubelet and device plugin, then kube-proxy."""
    tools = node_tools()
    if recorded_pid(layout, "registry") is None:
        storage = layout.root / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        start(layout, "registry", registry_command(tools), registry_env(storage))
    wait_for("the local registry", _registry_ready, timeout, layout.logs / "registry.log")
    refs = push_images(["pause", "coredns"])
    for n in nodes:
        _node_up(layout, n, bin_dir, tools, timeout)
    if recorded_pid(layout, "kube-proxy") is None:
        start(layout, "kube-proxy", kube_proxy_command(bin_dir, layout.root / "kube-proxy.yaml"))
    for n in nodes:
        if n.gpus:
            wait_for(f"{n.gpus} GPUs on {n.name} (device plugin)",
                     functools.partial(_has_gpus, api, n), timeout,
                     layout.logs / f"device-plugin-{n.name}.log")
    return refs


def _node_up(layout: Layout, n: RealNode, bin_dir: Path, tools: Path, timeout: float) -> None:
    holder = recorded_pid(layout, f"node-{n.name}")
    if holder is None:
        # A new namespace: whatever ran in the old one is gone, and so are its IP leases.
        for name in node_components(n)[1:]:
            stop(layout, name)
        kill_cgroup_tree(n)
        subprocess.run(["rm", "-rf", str(n.state / "cni" / "ipam")], check=True)
        (n.state / "cni" / "ipam").mkdir(parents=True)
        make_cgroup_root(n)
        holder = start(layout, f"node-{n.name}", holder_command(n))
        wait_for(f"{n.name}'s mount namespace", lambda: _bound(holder), timeout,
                 layout.logs / f"node-{n.name}.log")
    if recorded_pid(layout, f"containerd-{n.name}") is None:
        start(layout, f"containerd-{n.name}", in_node(holder, containerd_command(n)))
        wait_for(f"containerd on {n.name}", n.containerd_socket.exists, timeout,
                 layout.logs / f"containerd-{n.name}.log")
    kubeconfig = layout.component_kubeconfig(f"kubelet-{n.name}")
    if recorded_pid(layout, f"kubelet-{n.name}") is None:
        start(layout, f"kubelet-{n.name}",
              in_node(holder, kubelet_command(n, bin_dir, ADDRS, kubeconfig)))
    if n.gpus and recorded_pid(layout, f"device-plugin-{n.name}") is None:
        start(layout, f"device-plugin-{n.name}", in_node(holder, device_plugin_command(n, tools)))


def _bound(holder: int) -> bool:
    """True once the holder's namespace has the node's /var/lib/kubelet mounted."""
    return " /var/lib/kubelet " in Path(f"/proc/{holder}/mountinfo").read_text()


def _has_gpus(api: Kube, node: RealNode) -> bool:
    alloc = api.get(f"/api/v1/nodes/{node.name}").get("status", {}).get("allocatable", {})
    return int(alloc.get(GPU_RESOURCE, "0")) == node.gpus


def addons_up(layout: Layout, nodes: list[RealNode], bin_dir: Path, api: Kube,
              timeout: float, refs: dict[str, str]) -> None:
    """CoreDNS, as kubeadm installs it; returns once it answers (its Deployment is available)."""
    addons.apply(bin_dir / "kubectl", layout.kubeconfig,
                 addons.coredns(refs["coredns"], ADDRS.dns_service))
    wait_for("CoreDNS to be available", lambda: addons.coredns_available(api), timeout,
             layout.logs / f"kubelet-{nodes[0].name}.log")


def down(layout: Layout, nodes: list[RealNode], bin_dir: Path) -> None:
    """After the processes were stopped: the containers (by cgroup), the node cgroups,
    kube-proxy's rules, the bridges and the guard."""
    deadline = time.monotonic() + 10
    for n in nodes:
        while kill_cgroup_tree(n) and time.monotonic() < deadline:
            time.sleep(0.1)
        remove_cgroup_tree(n)
    subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup"], capture_output=True)
    network.remove_guard(ADDRS, len(nodes))
