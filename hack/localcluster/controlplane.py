"""Bringing the local cluster up and down: etcd, the control plane and the node agent.

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
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import pki
from .agent import DEFAULT_NODES, load_nodes
from .kube import ApiError, Kube

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"


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


def extra_args(component: str) -> list[str]:
    """LOCALCLUSTER_<COMPONENT>_ARGS adds flags, e.g. LOCALCLUSTER_KUBE_CONTROLLER_MANAGER_ARGS."""
    var = "LOCALCLUSTER_" + component.upper().replace("-", "_") + "_ARGS"
    return shlex.split(os.environ.get(var, ""))


def commands(layout: Layout, bin_dir: Path, ports: Ports) -> dict[str, list[str]]:
    p = layout.pki
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
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports.api}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; NodeRestriction is the standard companion of Node authz.
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # Pods share the host network: the `kubernetes` Service cannot point at a loopback
            # address (Endpoints reject it), and the pods reach the API server directly anyway.
            "--endpoint-reconciler-type=none",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true", "--profiling=false", "--v=1",
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


ORDER = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def recorded_pid(layout: Layout, name: str) -> int | None:
    try:
        pid = int((layout.pids / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_for(what: str, check: Callable[[], bool], timeout: float, log_file: Path | None = None,
             interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    hint = f"; see {log_file}" if log_file else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")


def start(layout: Layout, name: str, cmd: list[str]) -> int:
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LOCALCLUSTER_DIR=str(layout.root.resolve()))
    if name == "node-agent":
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    with (layout.logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(cmd + extra_args(name), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                cwd=layout.root)
    (layout.pids / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


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


def up(layout: Layout, ports: Ports | None = None, timeout: float = 120.0) -> float:
    """Starts whatever is not running and waits for a usable cluster; returns seconds taken."""
    ports = ports or Ports()
    began = time.monotonic()
    bin_dir = binaries()
    layout.root.mkdir(parents=True, exist_ok=True)
    pki.ensure(layout.pki)
    server = f"https://127.0.0.1:{ports.api}"
    pki.kubeconfig(layout.pki, "admin", server, layout.kubeconfig)
    for ident in ("controller-manager", "scheduler", "node-agent"):
        pki.kubeconfig(layout.pki, ident, server, layout.component_kubeconfig(ident))
    cmds = commands(layout, bin_dir, ports)
    api = Kube(str(layout.kubeconfig))
    etcd_health = f"http://127.0.0.1:{ports.etcd}/health"
    ready: dict[str, tuple[str, Callable[[], bool]]] = {
        "etcd": ("etcd", lambda: b'"health":"true"' in _http_get(etcd_health)),
        "kube-apiserver": ("the API server", lambda: _api_ready(api)),
    }
    for name in ORDER:
        if recorded_pid(layout, name) is None:
            start(layout, name, cmds[name])
        if name in ready:
            what, check = ready[name]
            wait_for(what, check, timeout, layout.logs / f"{name}.log")
    node_names = [n.name for n in load_nodes(
        Path(os.environ.get("LOCALCLUSTER_NODES", DEFAULT_NODES)))]
    wait_for(f"nodes {', '.join(node_names)} to be Ready", lambda: _nodes_ready(api, node_names),
             timeout, layout.logs / "node-agent.log")
    wait_for("the default ServiceAccount", lambda: _default_sa(api), timeout,
             layout.logs / "kube-controller-manager.log")
    return time.monotonic() - began


def _http_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as r:
        body: bytes = r.read()
        return body


def marked_processes(layout: Layout) -> list[int]:
    """PIDs of processes started by this cluster (they carry LOCALCLUSTER_DIR=<root>)."""
    mark = f"LOCALCLUSTER_DIR={layout.root.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in env.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def stop(layout: Layout, name: str, grace: float = 10.0) -> bool:
    """SIGTERM to a started process, SIGKILL to its group after `grace`. False if not running."""
    pid = recorded_pid(layout, name)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
    (layout.pids / f"{name}.pid").unlink(missing_ok=True)
    return True


def down(layout: Layout, grace: float = 10.0) -> list[str]:
    """Stops every component and every process the cluster started. Returns what was stopped."""
    stopped = []
    extra = sorted(p.stem for p in layout.pids.glob("*.pid")) if layout.pids.exists() else []
    for name in [n for n in extra if n not in ORDER] + list(reversed(ORDER)):
        if stop(layout, name, grace):
            stopped.append(name)
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
    return {name: recorded_pid(layout, name) for name in ORDER}
