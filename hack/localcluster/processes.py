"""Processes of the local cluster: where their state lives, starting, finding and stopping them.

Every process the cluster starts carries `LOCALCLUSTER_DIR=<state dir>` in its environment, so
`marked_processes` finds whatever is left of a cluster (a pod's process, a containerd shim) and
two clusters on one machine never touch each other's processes.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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

    @property
    def runtime_file(self) -> Path:
        """The runtime (`agent` or `containerd`) the cluster in this directory was started with."""
        return self.root / "runtime"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def node_state(self, name: str) -> Path:
        return self.root / "nodes" / name


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


def extra_args(component: str) -> list[str]:
    """LOCALCLUSTER_<COMPONENT>_ARGS adds flags, e.g. LOCALCLUSTER_KUBE_CONTROLLER_MANAGER_ARGS."""
    var = "LOCALCLUSTER_" + component.upper().replace("-", "_") + "_ARGS"
    return shlex.split(os.environ.get(var, ""))


def start(layout: Layout, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Starts a component in a session of its own, its output in logs/<name>.log, its PID in
    pids/<name>.pid, marked with LOCALCLUSTER_DIR (and `env` added to its environment)."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **(env or {}), LOCALCLUSTER_DIR=str(layout.root.resolve()))
    with (layout.logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(cmd + extra_args(name), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                cwd=layout.root)
    (layout.pids / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


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


