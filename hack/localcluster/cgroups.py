"""CPU weights and limits for pods, as the kubelet sets them through cgroups.

The kubelet puts every pod in a cgroup of its own, under one `kubepods` cgroup, and gives it a
CPU weight from the pod's CPU request (`cpu.shares` = millicores x 1024 / 1000, at least 2, so a
BestEffort pod gets 2) and, when every container has a CPU limit, a CFS quota. Under contention
a pod's processes then get CPU in proportion to what it asked for, and a BestEffort pod yields
to everything else on the node. On a real cluster the control plane runs on other machines, or
(kind, kubeadm) as static pods with requests: either way, pods with no requests do not take CPU
from the API server.

The node agent does the same on this one machine: `localcluster-<id>/pod<uid>` under the cpu
controller (the id is the agent's state directory's, so two clusters never touch each other's
pods), the pod's processes moved in before its command starts, every process still in the group
killed when the pod ends (what removing a pod's cgroup does), then the group removed. The
agent's group has the weight the kubelet gives `kubepods` for node allocatable: the machine's
CPUs (the nodes' capacities are made up, and all share this machine). The control plane's
processes stay outside it.

Both cgroup versions are handled: v1 (`cpu.shares`, `cpu.cfs_quota_us`) and v2 (`cpu.weight`,
`cpu.max`, the kubelet's conversion from shares). Where neither is writable (not root, no cpu
controller), pods run without weights and the agent says so once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING
from pathlib import Path
from typing import Any

from .envvars import parse_quantity

log = logging.getLogger("localcluster.cgroups")

GROUP = "localcluster"
MIN_SHARES = 2  # the kubelet's MinShares: what a BestEffort pod gets
MAX_SHARES = 262144
CFS_PERIOD_US = 100_000
MIN_QUOTA_US = 1000  # the kernel refuses less
SHARES_PER_CPU = 1024


def millicores(quantity: str | int | float) -> int:
    """A CPU quantity ("500m", "1", "0.25", 2) in millicores, rounded up as the API server
    does. ValueError names the quantity when it is not one."""
    try:
        value = parse_quantity(quantity) * 1000
    except ValueError:
        raise ValueError(f"not a CPU quantity: {quantity!r}") from None
    if value < 0:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    return int(value.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class PodCpu:
    """A pod's effective CPU request and limit in millicores, as the scheduler and the kubelet
    reckon them: the containers' sum, or the largest init container's where that is more (init
    containers run one at a time). A request left out but limited defaults to the limit. The
    limit is None unless every container has one."""

    request: int
    limit: int | None

    @classmethod
    def of(cls, pod: dict[str, Any]) -> PodCpu:
        spec = pod.get("spec") or {}

        def cpu(container: dict[str, Any]) -> tuple[int, int | None]:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            limit = millicores(limits["cpu"]) if "cpu" in limits else None
            requests = resources.get("requests") or {}
            request = millicores(requests["cpu"]) if "cpu" in requests else (limit or 0)
            return request, limit

        main = [cpu(c) for c in spec.get("containers") or []]
        init = [cpu(c) for c in spec.get("initContainers") or []]
        request = max([sum(r for r, _ in main), *(r for r, _ in init)])
        limits = [lim for _, lim in main + init]
        limit = None
        if limits and all(lim is not None for lim in limits):
            limit = max([sum(lim for _, lim in main if lim is not None),
                         *(lim for _, lim in init if lim is not None)])
        return cls(request, limit)

    @property
    def shares(self) -> int:
        return shares(self.request)

    @property
    def quota_us(self) -> int | None:
        if self.limit is None:
            return None
        return max(MIN_QUOTA_US, self.limit * CFS_PERIOD_US // 1000)


def shares(milli: int) -> int:
    """The kubelet's MilliCPUToShares."""
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def weight(cpu_shares: int) -> int:
    """cgroup v2's cpu.weight for v1 shares: the conversion the kubelet and runc use."""
    return 1 + ((cpu_shares - 2) * 9999) // 262142


class PodGroups:
    """The pods' cgroups on this machine; `detect()` finds where they can go, if anywhere."""

    def __init__(self, root: Path, version: int, owner: str) -> None:
        self.root = root  # the cpu controller's hierarchy (v1) or the unified one (v2)
        self.version = version
        self.base = root / f"{GROUP}-{hashlib.sha1(owner.encode()).hexdigest()[:10]}"

    @classmethod
    def detect(cls, owner: str, mount: Path = Path("/sys/fs/cgroup")) -> PodGroups | None:
        """`owner`: what names this agent's group (its state directory)."""
        candidates = []
        if (mount / "cgroup.controllers").exists():
            candidates.append(cls(mount, 2, owner))
        if (mount / "cpu" / "cpu.shares").exists():
            candidates.append(cls(mount / "cpu", 1, owner))
        for groups in candidates:
            try:
                groups.prepare()
                return groups
            except OSError as e:
                log.info("cgroup v%d at %s not usable for pods: %s", groups.version,
                         groups.root, e)
        log.warning("pods run without CPU weights: no writable cgroup cpu controller")
        return None

    def prepare(self) -> None:
        """The agent's group, with the machine's CPUs as its weight. Pods' groups an earlier
        agent left behind (killed, so it could not clean up) are removed with what still runs
        in them: a new agent reports those pods' containers gone (agent.NodeAgent._lost)."""
        if self.version == 2:
            enable_cpu(self.root)
        self.base.mkdir(exist_ok=True)
        self._write(self.base, shares(1000 * (os.cpu_count() or 1)), None)
        if self.version == 2:
            enable_cpu(self.base)
        for stale in self.base.glob("pod*"):
            self._remove(stale)

    def path(self, uid: str) -> Path:
        return self.base / f"pod{uid}"

    def create(self, uid: str, cpu: PodCpu) -> Path:
        """The pod's group with its weight and quota; the file a process writes its pid to to
        join it."""
        group = self.path(uid)
        group.mkdir(exist_ok=True)
        self._write(group, cpu.shares, cpu.quota_us)
        return group / "cgroup.procs"

    def remove(self, uid: str) -> None:
        """Kills whatever is still in the pod's group, then removes the group."""
        self._remove(self.path(uid))

    def close(self) -> None:
        """Every pod's group, then the agent's own (the agent is stopping)."""
        for group in self.base.glob("pod*"):
            self._remove(group)
        self._remove(self.base)

    def _write(self, group: Path, cpu_shares: int, quota_us: int | None) -> None:
        if self.version == 1:
            (group / "cpu.shares").write_text(str(cpu_shares))
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota_us if quota_us else -1))
        else:
            (group / "cpu.weight").write_text(str(weight(cpu_shares)))
            (group / "cpu.max").write_text(f"{quota_us or 'max'} {CFS_PERIOD_US}")

    def _remove(self, group: Path) -> None:
        if not group.exists():
            return
        deadline = time.monotonic() + 5
        while True:
            for pid in members(group):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as e:
                # EBUSY until the killed processes are gone (reaped by their parents).
                if time.monotonic() > deadline:
                    log.warning("cgroup %s not removed: %s", group, e)
                    return
                time.sleep(0.05)


def members(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def enable_cpu(group: Path) -> None:
    """cgroup v2: lets `group`'s children have the cpu controller."""
    control = group / "cgroup.subtree_control"
    if "cpu" not in control.read_text().split():
        control.write_text("+cpu")
