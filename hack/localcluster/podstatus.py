"""Pod status as the kubelet reports it, computed from the node agent's view of its containers.

Pure: the runner records what happened to each container (`ContainerRecord`), and `pod_status`
turns that into the `status` stanza the API server receives: phase, conditions (transition times
kept when a condition does not change), container states with exit codes, reasons, times and
termination messages.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

from videojob_common.pipeline import Obj

NODE_IP = "127.0.0.1"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int = 0
    signal: int = 0
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    container_id: str = ""
    last_terminated: Obj | None = None

    def waiting(self, reason: str, message: str = "") -> None:
        self.state, self.reason, self.message = "waiting", reason, message

    def running(self, container_id: str) -> None:
        self.state, self.reason, self.message = "running", "", ""
        self.container_id = container_id
        self.started_at = now()

    def terminated(self, exit_code: int, message: str = "", signal: int = 0,
                   reason: str | None = None) -> None:
        self.state = "terminated"
        self.exit_code = exit_code
        self.signal = signal
        self.reason = reason or ("Completed" if exit_code == 0 else "Error")
        self.message = message
        self.finished_at = now()
        if not self.started_at:
            self.started_at = self.finished_at

    def restarting(self) -> None:
        """Keeps the last run as `lastState` and waits for the next one (CrashLoopBackOff)."""
        self.last_terminated = self._terminated_stanza()
        self.restart_count += 1
        self.waiting("CrashLoopBackOff", f"back-off restarting failed container {self.name}")
        self.started_at = self.finished_at = ""

    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def _terminated_stanza(self) -> Obj:
        t: Obj = {"exitCode": self.exit_code, "reason": self.reason,
                  "startedAt": self.started_at, "finishedAt": self.finished_at,
                  "containerID": self.container_id}
        if self.signal:
            t["signal"] = self.signal
        if self.message:
            t["message"] = self.message
        return t

    def stanza(self) -> Obj:
        if self.state == "running":
            state: Obj = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self._terminated_stanza()}
        else:
            state = {"waiting": {"reason": self.reason}}
            if self.message:
                state["waiting"]["message"] = self.message
        s: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
            "ready": self.state == "running",
            "started": self.state == "running",
            "restartCount": self.restart_count,
        }
        if self.container_id:
            s["containerID"] = self.container_id
        return s


def phase(init: list[ContainerRecord], main: list[ContainerRecord], final: bool) -> str:
    """Pod phase. `final` means no container of the pod will run again."""
    if final:
        if not all(c.succeeded() for c in init):
            return "Failed"
        return "Succeeded" if all(c.succeeded() for c in main) else "Failed"
    if not all(c.succeeded() for c in init):
        return "Pending"
    if any(c.state == "running" or c.state == "terminated" or c.restart_count for c in main):
        return "Running"
    return "Pending"


def _condition(previous: dict[str, Obj], type_: str, ok: bool, reason: str = "",
               message: str = "") -> Obj:
    status = "True" if ok else "False"
    old = previous.get(type_)
    when = old["lastTransitionTime"] if old and old.get("status") == status else now()
    c: Obj = {"type": type_, "status": status, "lastTransitionTime": when, "lastProbeTime": None}
    if not ok and reason:
        c["reason"] = reason
    if not ok and message:
        c["message"] = message
    return c


def pod_status(
    pod: Obj,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    *,
    sandbox_ready: bool,
    final: bool,
    start_time: str,
) -> Obj:
    previous = {c["type"]: c for c in pod.get("status", {}).get("conditions", []) or []}
    p = phase(init, main, final)
    terminal = p in ("Succeeded", "Failed")
    pending_init = [c.name for c in init if not c.succeeded()]
    unready = [c.name for c in main if c.state != "running"]
    ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    conditions = [
        _condition(previous, "PodReadyToStartContainers", sandbox_ready and not terminal),
        _condition(previous, "Initialized", not pending_init, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(pending_init)}]"),
        _condition(previous, "ContainersReady", not unready, ready_reason,
                   "" if terminal else f"containers with unready status: [{' '.join(unready)}]"),
        _condition(previous, "Ready", not unready, ready_reason,
                   "" if terminal else f"containers with unready status: [{' '.join(unready)}]"),
    ]
    status: Obj = {
        "phase": p,
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": NODE_IP,
        "podIPs": [{"ip": NODE_IP}],
        "startTime": start_time,
        "containerStatuses": [c.stanza() for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.stanza() for c in init]
    return status


@dataclass
class DeviceAllocator:
    """Hands out device indices to pods, as the NVIDIA device plugin does on a real node."""

    count: int
    owners: dict[int, str] = field(default_factory=dict)
    # Each pod runner allocates and releases from its own thread.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def allocate(self, owner: str, n: int) -> list[int] | None:
        with self.lock:
            mine = sorted(i for i, o in self.owners.items() if o == owner)
            if len(mine) >= n:
                return mine[:n]
            free = [i for i in range(self.count) if i not in self.owners]
            if len(free) < n - len(mine):
                return None
            for i in free[: n - len(mine)]:
                self.owners[i] = owner
            return sorted(i for i, o in self.owners.items() if o == owner)

    def release(self, owner: str) -> None:
        with self.lock:
            for i in [i for i, o in self.owners.items() if o == owner]:
                del self.owners[i]
