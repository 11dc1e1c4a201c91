"""Bringing the local cluster up and down: etcd, the control plane, and the nodes.

The nodes are either the node agent (`agent`, the default: pods as local processes) or real
kubelets and containerd (`containerd`, realnodes.py), chosen with LOCALCLUSTER_RUNTIME and
recorded in the state directory, so `down` and `status` know what they are looking at.

`up` is idempotent: a component whose recorded PID is alive is left alone, the others are
started, and it returns once the API server is ready, every node is Ready and schedulable and the
`default` ServiceAccount exists (so a pod can be created the moment it returns). `down` stops
every process the cluster started, including the pods' processes: each carries
`LOCALCLUSTER_DIR=<state dir>` in its environment, and anything still carrying it after the
components stopped is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import pki, realnodes
from .agent import DEFAULT_NODES, load_nodes
from .kube import ApiError, Kube
from .network import Addresses
from .processes import (
    Layout,
    alive,
    marked_processes,
    recorded_pid,
    start,
    stop,
    wait_for,
)

__all__ = ["RUNTIMES", "Layout", "Ports", "alive", "audit_log", "binaries", "commands", "down",
           "marked_processes", "recorded_pid", "recorded_runtime", "runtime_from_env", "start",
           "status", "stop", "up", "wait_for"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# The API server's audit policy: the requests of ServiceAccounts outside kube-system (so the
# operator's, and no controller's), at Metadata level (who, what, the answer's code; no bodies).
# tests/e2e/test_realnodes.py compares what the operator calls with what the chart grants it.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def audit_policy(layout: Layout) -> Path:
    return layout.root / "audit-policy.yaml"


def audit_log(layout: Layout) -> Path:
    """Where the API server writes its audit events (JSON lines)."""
    return layout.root / "audit" / "audit.log"


def _port(var: str, default: int) -> int:
    return int(os.environ.get(var, str(default)))


@dataclass(frozen=True)
class Ports:
    """Listening ports; each can be moved with LOCALCLUSTER_<NAME>_PORT to run beside another."""

    api: int = field(default_factory=lambda: _port("LOCALCLUSTER_API_PORT", 6443))
    etcd: int = field(default_factory=lambda: _port("LOCALCLUSTER_ETCD_PORT", 12379))
    etcd_peer: int = field(default_factory=lambda: _port("LOCALCLUSTER_ETCD_PEER_PORT", 12380))
    controller_manager: int = field(
        default_factory=lambda: _port("LOCALCLUSTER_CONTROLLER_MANAGER_PORT", 10257))
    scheduler: int = field(default_factory=lambda: _port("LOCALCLUSTER_SCHEDULER_PORT", 10259))
    agent: int = field(default_factory=lambda: _port("LOCALCLUSTER_AGENT_PORT", 10250))


def binaries() -> Path:
    """The directory of the pinned binaries (built and cached on first use)."""
    out = subprocess.run([str(REPO / "hack" / "build-binaries.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


RUNTIMES = ("agent", "containerd")


def runtime_from_env() -> str:
    """LOCALCLUSTER_RUNTIME: `agent` (default) or `containerd`."""
    runtime = os.environ.get("LOCALCLUSTER_RUNTIME", "agent") or "agent"
    if runtime not in RUNTIMES:
        raise ValueError(f"LOCALCLUSTER_RUNTIME={runtime!r}: expected one of {', '.join(RUNTIMES)}")
    return runtime


def recorded_runtime(layout: Layout) -> str:
    try:
        return layout.runtime_file.read_text().strip() or "agent"
    except OSError:
        return "agent"


def api_host(runtime: str) -> str:
    """Where the API server listens: loopback with the agent; with real nodes, the address pods
    reach it at through the `kubernetes` Service (network.py)."""
    return Addresses().api_server if runtime == "containerd" else "127.0.0.1"


def commands(layout: Layout, bin_dir: Path, ports: Ports, runtime: str = "agent"
             ) -> dict[str, list[str]]:
    """The control plane's command lines, and the node agent's when it runs the nodes."""
    p = layout.pki
    host = api_host(runtime)
    if runtime == "containerd":
        # Real nodes: pods reach the API server through the `kubernetes` Service, whose
        # endpoint the API server keeps (the default lease reconciler) at its address.
        endpoints = ["--endpoint-reconciler-type=lease"]
    else:
        # Pods share the host network: the `kubernetes` Service cannot point at a loopback
        # address (Endpoints reject it), and the pods reach the API server directly anyway.
        endpoints = ["--endpoint-reconciler-type=none"]
    etcd_url = f"http://127.0.0.1:{ports.etcd}"
    return {
        "etcd": [
            str(bin_dir / "etcd"), "--name=localcluster", f"--data-dir={layout.root / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
            f"--initial-cluster=localcluster=http://127.0.0.1:{ports.etcd_peer}",
            "--listen-metrics-urls=", "--log-level=warn",
            # Tests create and delete thousands of objects; keep the database small.
            "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m",
            "--quota-backend-bytes=4294967296",
        ],
        "kube-apiserver": [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={host}", f"--advertise-address={host}",
            f"--secure-port={ports.api}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; NodeRestriction is the standard companion of Node authz.
            # OwnerReferencesPermissionEnforcement, as on OpenShift: an owner reference with
            # blockOwnerDeletion needs update on the owner's finalizers (the chart grants it).
            "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={Addresses().services_cidr}",
            *endpoints,
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true", "--profiling=false", "--v=1",
            f"--audit-policy-file={audit_policy(layout)}", f"--audit-log-path={audit_log(layout)}",
            "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
        ],
        "kube-controller-manager": [
            str(bin_dir / "kube-controller-manager"),
            *(f"--{flag}={layout.component_kubeconfig('controller-manager')}"
              for flag in ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")),
            "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
            "--leader-elect=false", "--controllers=*",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            # The default 20 QPS makes the Job controller the bottleneck for bursts of Jobs.
            "--kube-api-qps=200", "--kube-api-burst=400",
            "--concurrent-job-syncs=20", "--concurrent-gc-syncs=40", "--v=1",
        ],
        "kube-scheduler": [
            str(bin_dir / "kube-scheduler"),
            *(f"--{flag}={layout.component_kubeconfig('scheduler')}"
              for flag in ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")),
            "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}",
            "--leader-elect=false", "--v=1",
        ],
        "node-agent": [
            sys.executable, "-m", "localcluster", "agent",
            f"--kubeconfig={layout.component_kubeconfig('node-agent')}",
            f"--state-dir={layout.root / 'node-agent'}",
            f"--port={ports.agent}",
            f"--tls-cert={p / 'node-agent-serving.crt'}",
            f"--tls-key={p / 'node-agent-serving.key'}",
            f"--client-ca={p / 'ca.crt'}",
        ],
    }


CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
ORDER = [*CONTROL_PLANE, "node-agent"]  # the agent runtime's components, in start order


def components(layout: Layout, runtime: str) -> list[str]:
    """Every long-running component of a cluster of this runtime, in start order."""
    if runtime == "agent":
        return ORDER
    return [*CONTROL_PLANE, *realnodes.component_names(node_file())]


def node_file() -> Path:
    return Path(os.environ.get("LOCALCLUSTER_NODES", DEFAULT_NODES))


def _api_ready(kube: Kube) -> bool:
    return kube.text("/readyz") == "ok"


def _nodes_ready(kube: Kube, names: list[str]) -> bool:
    nodes = {n["metadata"]["name"]: n for n in kube.get("/api/v1/nodes")["items"]}
    for name in names:
        node = nodes.get(name)
        if node is None:
            return False
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in node.get("status", {}).get("conditions", []))
        tainted = any(t["key"].startswith("node.kubernetes.io/")
                      for t in node.get("spec", {}).get("taints") or [])
        if not ready or tainted:
            return False
    return True


def _default_sa(kube: Kube) -> bool:
    try:
        kube.get("/api/v1/namespaces/default/serviceaccounts/default")
    except ApiError:
        return False
    return True


def up(layout: Layout, ports: Ports | None = None, timeout: float = 120.0,
       runtime: str = "agent") -> float:
    """Starts whatever is not running and waits for a usable cluster; returns seconds taken."""
    ports = ports or Ports()
    began = time.monotonic()
    previous = recorded_runtime(layout)
    if previous != runtime and any(status(layout).values()):
        raise RuntimeError(f"a cluster with the {previous} runtime is running in {layout.root}; "
                           "stop it first (make cluster-down)")
    if previous != runtime and (layout.root / "etcd").exists():
        # The other runtime's Nodes and pods mean nothing to this one: start from an empty store.
        subprocess.run(["rm", "-rf", str(layout.root / "etcd")], check=True)
    bin_dir = binaries()
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.runtime_file.write_text(runtime + "\n")
    audit_policy(layout).write_text(AUDIT_POLICY)
    nodes = load_nodes(node_file())
    real = realnodes.plan(layout, nodes) if runtime == "containerd" else []
    pki.ensure(layout.pki, realnodes.identities(real))
    server = f"https://{api_host(runtime)}:{ports.api}"
    pki.kubeconfig(layout.pki, "admin", server, layout.kubeconfig)
    for ident in ("controller-manager", "scheduler", "node-agent"):
        pki.kubeconfig(layout.pki, ident, server, layout.component_kubeconfig(ident))
    if real:
        realnodes.prepare(layout, real, server)
    cmds = commands(layout, bin_dir, ports, runtime)
    api = Kube(str(layout.kubeconfig))
    etcd_health = f"http://127.0.0.1:{ports.etcd}/health"
    ready: dict[str, tuple[str, Callable[[], bool]]] = {
        "etcd": ("etcd", lambda: b'"health":"true"' in _http_get(etcd_health)),
        "kube-apiserver": ("the API server", lambda: _api_ready(api)),
    }
    for name in CONTROL_PLANE if real else ORDER:
        if recorded_pid(layout, name) is None:
            env = {"PYTHONPATH": _agent_pythonpath()} if name == "node-agent" else None
            start(layout, name, cmds[name], env)
        if name in ready:
            what, check = ready[name]
            wait_for(what, check, timeout, layout.logs / f"{name}.log")
    refs = realnodes.up(layout, real, bin_dir, api, timeout) if real else {}
    node_names = [n.name for n in nodes]
    wait_for(f"nodes {', '.join(node_names)} to be Ready", lambda: _nodes_ready(api, node_names),
             timeout, layout.logs / ("kubelet-" + node_names[0] + ".log" if real
                                     else "node-agent.log"))
    wait_for("the default ServiceAccount", lambda: _default_sa(api), timeout,
             layout.logs / "kube-controller-manager.log")
    if real:
        realnodes.addons_up(layout, real, bin_dir, api, timeout, refs)
    return time.monotonic() - began


def _agent_pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))


def _http_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as r:
        body: bytes = r.read()
        return body


def down(layout: Layout, grace: float = 10.0) -> list[str]:
    """Stops every component and every process the cluster started (with real nodes, the
    containers too, and the network guard goes). Returns what was stopped."""
    runtime = recorded_runtime(layout)
    names = components(layout, runtime)
    stopped = []
    extra = sorted(p.stem for p in layout.pids.glob("*.pid")) if layout.pids.exists() else []
    for name in [n for n in extra if n not in names] + list(reversed(names)):
        if stop(layout, name, grace):
            stopped.append(name)
    if runtime == "containerd":
        realnodes.down(layout, realnodes.plan(layout, load_nodes(node_file())), binaries())
    for _ in range(50):
        left = marked_processes(layout)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    else:
        raise RuntimeError(f"processes still running after down: {marked_processes(layout)}")
    for f in layout.pids.glob("*.pid") if layout.pids.exists() else []:
        f.unlink()
    return stopped


def status(layout: Layout) -> dict[str, int | None]:
    return {name: recorded_pid(layout, name)
            for name in components(layout, recorded_runtime(layout))}
