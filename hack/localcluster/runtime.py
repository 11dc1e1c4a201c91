"""Runs one pod as local processes: volumes, init containers, containers, restarts, deletion.

A `PodRunner` is the node agent's equivalent of the kubelet's pod worker. It owns one thread that
takes the pod from bound to terminal:

1. materialise volumes under the pod's directory and reserve GPU device indices;
2. run init containers one after another, then all containers at once, each in its own mount
   namespace (`unshare --mount`) where its volumes are bind-mounted at their `mountPath`s;
3. restart containers as `restartPolicy` says (exponential back-off, as the kubelet does);
4. on deletion: SIGTERM to each container's main process, SIGKILL to what is left after
   `terminationGracePeriodSeconds`, a last status, then the final delete (grace 0) that lets the
   API server drop the pod.

Every change is reported as pod status through `podstatus.pod_status`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

import urllib3

from videojob_common.pipeline import Obj

from . import envvars, images
from .cgroups import PodCpu, PodGroups
from .kube import ApiError, Kube, path_segment
from .podstatus import ContainerRecord, DeviceAllocator, now, pod_status
from .volumes import VolumeBuilder, VolumeError

log = logging.getLogger("localcluster.runtime")

MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_BYTES = 2048
FALLBACK_LOG_LINES = 80
# Mount points for staging each container's bind mounts (see PodRunner._mount_script); only
# empty directories and files are ever created here, on the host.
STAGING_ROOT = Path("/run/localcluster")


class AgentContext(Protocol):
    """What a pod runner needs from the node agent."""

    kube: Kube
    image_table: list[images.ImageEntry]
    image_roots: list[Path]
    pods_dir: Path
    api_host: str
    api_port: str
    restart_backoff: float
    marker: dict[str, str]
    stopping: threading.Event
    cgroups: PodGroups | None

    def allocator(self, node: str) -> DeviceAllocator | None: ...

    def event(self, pod: Obj, kind: str, reason: str, message: str) -> None: ...

    def forget(self, runner: PodRunner) -> None: ...


def cri_timestamp() -> str:
    t = time.time_ns()
    secs, nanos = divmod(t, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


@dataclass
class ContainerProcess:
    """One run of one container: the process, its log pump, and how it ended."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    done: threading.Event = field(default_factory=threading.Event)
    returncode: int | None = None
    pump: threading.Thread | None = None

    def start_pumps(self, on_exit: Callable[[], None]) -> None:
        sink = self.log_path.open("ab", buffering=0)

        def pump(stream: IO[bytes]) -> None:
            for line in iter(stream.readline, b""):
                sink.write(b"%s stdout F %s\n" % (cri_timestamp().encode(), line.rstrip(b"\n")))
            stream.close()

        assert self.proc.stdout is not None
        self.pump = threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True)
        self.pump.start()

        def wait() -> None:
            pid = self.proc.pid
            # Wait without reaping, so the process group id cannot be reused before the
            # container's leftover processes are killed (what tearing down a cgroup does).
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            rc = self.proc.wait()
            if self.pump is not None:
                self.pump.join(timeout=2)
            sink.close()
            self.returncode = rc
            self.done.set()
            on_exit()

        threading.Thread(target=wait, daemon=True).start()

    def signal(self, sig: int, group: bool = False) -> None:
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass


class PodRunner:
    def __init__(self, agent: AgentContext, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.node: str = pod["spec"]["nodeName"]
        self.dir = agent.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        spec = pod["spec"]
        self.init_specs: list[Obj] = spec.get("initContainers") or []
        self.main_specs: list[Obj] = spec["containers"]
        self.init = [ContainerRecord(c["name"], c["image"]) for c in self.init_specs]
        self.main = [ContainerRecord(c["name"], c["image"]) for c in self.main_specs]
        for r in self.init[1:] + (self.main if self.init else []):
            r.waiting("PodInitializing")
        self.procs: dict[str, ContainerProcess] = {}
        self.policy: str = spec.get("restartPolicy", "Always")
        self.wake = threading.Event()
        self.stop_grace: float | None = None  # set when deletion is requested
        self.force = False
        self.finished = threading.Event()
        self.lock = threading.Lock()
        self.start_time = now()
        self.sandbox_ready = False
        self.final = False
        self.mounts: dict[str, Path] = {}
        self.devices: list[int] = []
        self.cgroup_procs: Path | None = None  # the file a process joins the pod's cgroup by
        self._last_posted: Obj | None = None
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"pod {self.namespace}/{self.name}")

    # -- control from the agent -------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and self.stop_grace is None:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.stop_grace = float(grace)
            self.wake.set()

    def kill_now(self) -> None:
        """The pod object is gone (force delete): stop everything at once, report nothing."""
        self.force = True
        if self.stop_grace is None:
            self.stop_grace = 0.0
        for p in list(self.procs.values()):
            p.signal(signal.SIGKILL, group=True)
        self.wake.set()

    # -- queries for the log server ---------------------------------------------------------

    def log_file(self, container: str, previous: bool) -> Path | None:
        record = next((r for r in self.init + self.main if r.name == container), None)
        if record is None:
            return None
        run = record.restart_count - (1 if previous else 0)
        if record.state == "waiting" and record.restart_count and not previous:
            run -= 1
        path = self.dir / "logs" / container / f"{run}.log"
        return path if run >= 0 and path.exists() else None

    def is_running(self, container: str) -> bool:
        p = self.procs.get(container)
        return p is not None and not p.done.is_set()

    # -- the pod worker ---------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self.stop_grace is not None

    def _run(self) -> None:
        crashed: Exception | None = None
        try:
            if self._setup() and self._run_init():
                self._run_main()
            if self._stopping():
                self._terminate()
            else:
                self.final = True
                self._post()
        except Exception as e:
            log.exception("pod %s/%s: runner failed", self.namespace, self.name)
            crashed = e
        finally:
            alloc = self.agent.allocator(self.node)
            if alloc is not None:
                alloc.release(self.uid)
            shutil.rmtree(self.staging, ignore_errors=True)
            if crashed is not None:
                for p in list(self.procs.values()):
                    p.signal(signal.SIGKILL, group=True)
            if self.cgroup_procs is not None and self.agent.cgroups is not None:
                self.agent.cgroups.remove(self.uid)
            if crashed is not None and not self._stopping():
                # A pod the agent can no longer follow fails with the reason, rather than
                # staying Pending or Running with no one to end it; its Job replaces it.
                self._fail_pod("NodeAgentError", f"the node agent failed to run the "
                                                        f"pod: {crashed}")
            self.finished.set()
            if self._stopping():
                self._finalize_delete()

    def _setup(self) -> bool:
        """Volumes and devices; retried until they work or the pod is deleted."""
        self.dir.mkdir(parents=True, exist_ok=True)
        gpu_request = 0
        for c in self.init_specs + self.main_specs:
            limits = (c.get("resources") or {}).get("limits") or {}
            gpu_request = max(gpu_request, int(limits.get("nvidia.com/gpu", 0)))
        if gpu_request:
            alloc = self.agent.allocator(self.node)
            devices = alloc.allocate(self.uid, gpu_request) if alloc else None
            if devices is None:
                self._fail_pod(
                    "UnexpectedAdmissionError",
                    f"Allocate failed due to requested number of devices unavailable for "
                    f"nvidia.com/gpu. Requested: {gpu_request}")
                return False
            self.devices = devices
        if self.agent.cgroups is not None:
            try:
                self.cgroup_procs = self.agent.cgroups.create(self.uid, PodCpu.of(self.pod))
            except (OSError, ValueError) as e:
                log.warning("pod %s/%s: runs without its CPU weight: %s", self.namespace,
                            self.name, e)
        backoff = 0.5
        while not self._stopping():
            try:
                builder = VolumeBuilder(self.agent.kube, self.pod, self.dir / "volumes")
                volumes = self.pod["spec"].get("volumes") or []
                self.mounts = {v["name"]: builder.build(v) for v in volumes}
                break
            except VolumeError as e:
                self.agent.event(self.pod, "Warning", "FailedMount", str(e))
                self.wake.wait(backoff)
                self.wake.clear()
                backoff = min(backoff * 2, 10)
        if self._stopping():
            return False
        self.sandbox_ready = True
        return True

    def _fail_pod(self, reason: str, message: str) -> None:
        status = {"phase": "Failed", "reason": reason, "message": message,
                  "startTime": self.start_time}
        self._patch_status(status)
        self.final = True

    def _run_init(self) -> bool:
        """Init containers in order, each to success. False if the pod will not go on."""
        for i, (spec, record) in enumerate(zip(self.init_specs, self.init, strict=True)):
            while not record.succeeded():
                if self._stopping():
                    return False
                started = self._launch(spec, record)
                if started:
                    self._post()
                    proc = self.procs[spec["name"]]
                    while not proc.done.is_set() and not self._stopping():
                        self._sleep(None)
                    if self._stopping():
                        return False
                    self._record_exit(spec, record, proc)
                if record.succeeded():
                    break
                if record.state == "terminated" and self.policy == "Never":
                    self.final = True
                    return False
                self._post()
                self._sleep(self._backoff(record))
                if record.state == "terminated":
                    record.restarting()
            if i + 1 < len(self.init):
                self.init[i + 1].waiting("PodInitializing")
        for r in self.main:
            r.waiting("ContainerCreating")
        return True

    def _run_main(self) -> None:
        """All containers at once; restarts as `restartPolicy` says, until none will run again."""
        due: dict[str, float] = {s["name"]: 0.0 for s in self.main_specs}  # name -> start time
        while not self._stopping():
            changed = False
            now_s = time.monotonic()
            for spec, record in zip(self.main_specs, self.main, strict=True):
                name = spec["name"]
                proc = self.procs.get(name)
                if record.state == "running" and proc is not None and proc.done.is_set():
                    self._record_exit(spec, record, proc)
                    changed = True
                    if self._should_restart(record):
                        due[name] = now_s + self._backoff(record)
                elif name in due and now_s >= due[name]:
                    del due[name]
                    if record.state == "terminated":
                        record.restarting()
                    changed = True
                    if not self._launch(spec, record) and (
                            record.state == "waiting" or self._should_restart(record)):
                        due[name] = now_s + self._backoff(record)
            if not due and all(r.state == "terminated" for r in self.main):
                return
            if changed:
                self._post()
            self._sleep(max(0.0, min(due.values()) - time.monotonic()) if due else None)

    def _should_restart(self, record: ContainerRecord) -> bool:
        if self.policy == "Always":
            return True
        return self.policy == "OnFailure" and record.exit_code != 0

    def _backoff(self, record: ContainerRecord) -> float:
        # The kubelet's crash-loop back-off: base, doubling per restart, capped at five minutes.
        return float(min(self.agent.restart_backoff * 2 ** record.restart_count, 300.0))

    def _sleep(self, timeout: float | None) -> None:
        self.wake.wait(timeout)
        self.wake.clear()

    # -- containers -------------------------------------------------------------------------

    def _base_env(self, spec: Obj) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "LANG": "C.UTF-8",
            # The service the in-cluster config looks for; the node agent's pods share the
            # host network, so it is the API server's own address.
            "KUBERNETES_SERVICE_HOST": self.agent.api_host,
            "KUBERNETES_SERVICE_PORT": self.agent.api_port,
            "KUBERNETES_SERVICE_PORT_HTTPS": self.agent.api_port,
            "KUBERNETES_PORT": f"tcp://{self.agent.api_host}:{self.agent.api_port}",
        }
        if self.devices:
            visible = ",".join(str(i) for i in self.devices)
            env["NVIDIA_VISIBLE_DEVICES"] = visible
            env["CUDA_VISIBLE_DEVICES"] = visible
        env.update(self.agent.marker)
        return env

    def _lookup(self, kind: str) -> envvars.DataLookup:
        import base64

        def get(ns: str, name: str) -> dict[str, str] | None:
            try:
                obj = self.agent.kube.get(f"/api/v1/namespaces/{ns}/{kind}/{path_segment(name)}")
            except ApiError as e:
                if e.status == 404:
                    return None
                raise
            data: dict[str, str] = obj.get("data") or {}
            if kind == "secrets":
                return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
            return data

        return get

    @property
    def staging(self) -> Path:
        return STAGING_ROOT / self.uid

    def _mount_script(self, spec: Obj, term_log: Path) -> str:
        """Shell that sets up the container's mount namespace, then execs its command.

        Sources are first bound to a staging directory, then from there to their targets, so a
        mount over a directory that holds another mount's source (a volume at /tmp while the
        state directory is under /tmp) cannot hide that source. The images' roots under a
        volume's mount path are bound back over it in the same way, so the program stays there.
        """
        binds: list[tuple[Path, str, bool]] = []
        for vm in spec.get("volumeMounts") or []:
            src = self.mounts[vm["name"]]
            if vm.get("subPath"):
                src = src / vm["subPath"]
                if not src.exists():
                    src.mkdir(parents=True)
            binds.append((src, vm["mountPath"], bool(vm.get("readOnly"))))
        binds.append((term_log, spec.get("terminationMessagePath") or "/dev/termination-log",
                      False))
        targets = [PurePosixPath(dst) for _, dst, _ in binds]
        for root in self.agent.image_roots:
            if any(t != PurePosixPath(root) and PurePosixPath(root).is_relative_to(t)
                   for t in targets):
                binds.append((root, str(root), False))
        stage = self.staging / spec["name"]
        lines = ["set -e"]
        if self.cgroup_procs is not None:
            # First, so that everything the container runs is in the pod's cgroup (cgroups.py);
            # sh is the container's main process (unshare execs it).
            lines.append(f"echo $$ > {shlex.quote(str(self.cgroup_procs))}")
        lines.append(f"mkdir -p {shlex.quote(str(stage))}")

        def mountpoint(path: str, is_dir: bool) -> None:
            p = shlex.quote(path)
            if is_dir:
                lines.append(f"mkdir -p {p}")
            else:
                lines.append(f'[ -e {p} ] || {{ mkdir -p "$(dirname {p})"; : > {p}; }}')

        for i, (src, _, _) in enumerate(binds):
            staged = str(stage / str(i))
            mountpoint(staged, src.is_dir())
            lines.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(staged)}")
        order = sorted(range(len(binds)), key=lambda i: binds[i][1].rstrip("/").count("/"))
        for i in order:
            src, dst, read_only = binds[i]
            d = shlex.quote(dst)
            mountpoint(dst, src.is_dir())
            lines.append(f"mount --bind {shlex.quote(str(stage / str(i)))} {d}")
            if read_only:
                lines.append(f"mount -o remount,bind,ro {d}")
        workdir = spec.get("workingDir")
        if workdir:
            lines.append(f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)}")
        lines.append('exec "$@"')
        return "\n".join(lines)

    def _launch(self, spec: Obj, record: ContainerRecord) -> bool:
        """Starts one run of a container. False (with the record explaining) if it cannot."""
        name = spec["name"]
        try:
            env = envvars.resolve(self.pod, spec, self._base_env(spec),
                                  self._lookup("configmaps"), self._lookup("secrets"))
            launch = images.launch(self.agent.image_table, spec)
        except envvars.EnvError as e:
            record.waiting("CreateContainerConfigError", str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e}")
            self._post()
            return False
        except images.ImageError as e:
            record.waiting("CreateContainerError", str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e}")
            self._post()
            return False
        if launch.path_prefix:
            env["PATH"] = os.pathsep.join([*launch.path_prefix, env["PATH"]])
        argv = [envvars.expand(a, env) for a in launch.argv]
        if shutil.which(argv[0], path=env["PATH"]) is None:
            record.running(f"local://{name}")
            record.terminated(
                128, reason="StartError",
                message=f'failed to create containerd task: exec: "{argv[0]}": '
                        f"executable file not found in $PATH")
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {record.message}")
            return False
        cdir = self.dir / "containers" / name
        cdir.mkdir(parents=True, exist_ok=True)
        term_log = cdir / "termination-log"
        term_log.write_bytes(b"")
        log_dir = self.dir / "logs" / name
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{record.restart_count}.log"
        script = self._mount_script(spec, term_log)
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--",
             "/bin/sh", "-c", script, "sh", *argv],
            # One pipe for both streams keeps the order the container wrote its lines in (two
            # pipes read by two threads can swap them); the log's stream tag is always stdout.
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, cwd="/",
        )
        cp = ContainerProcess(proc=proc, log_path=log_path)
        self.procs[name] = cp
        cp.start_pumps(self.wake.set)
        record.running(f"local://{proc.pid}")
        self.agent.event(self.pod, "Normal", "Started", f"Started container {name}")
        return True

    def _record_exit(self, spec: Obj, record: ContainerRecord, proc: ContainerProcess) -> None:
        rc = proc.returncode if proc.returncode is not None else 0
        sig = -rc if rc < 0 else 0
        code = 128 + sig if sig else rc
        term_path = self.dir / "containers" / spec["name"] / "termination-log"
        try:
            message = term_path.read_bytes()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "replace")
        except OSError:
            message = ""
        if (not message and code != 0
                and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"):
            message = tail_log(proc.log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
        record.terminated(code, message=message, signal=sig)

    # -- deletion ---------------------------------------------------------------------------

    def _terminate(self) -> None:
        running = [(s, r, self.procs[s["name"]]) for s, r in
                   zip(self.init_specs + self.main_specs, self.init + self.main, strict=True)
                   if r.state == "running" and s["name"] in self.procs]
        grace = self.stop_grace or 0.0
        if running and not self.force:
            names = ", ".join(s["name"] for s, _, _ in running)
            self.agent.event(self.pod, "Normal", "Killing", f"Stopping container {names}")
        for _, _, p in running:
            p.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        for _, _, p in running:
            if not p.done.wait(max(0.0, deadline - time.monotonic())):
                p.signal(signal.SIGKILL, group=True)
        for s, r, p in running:
            p.done.wait(5)
            self._record_exit(s, r, p)
        for r in self.init + self.main:
            if r.state == "waiting" and r.reason in ("ContainerCreating", "PodInitializing"):
                # Never started: the kubelet reports these as terminated without a run.
                r.terminated(137, reason="ContainerStatusUnknown",
                             message="The container could not be located when the pod was "
                                     "terminated")
        if not self.force:
            self.final = True
            self._post()

    def _finalize_delete(self) -> None:
        if not self.force:
            try:
                self.agent.kube.delete(
                    f"/api/v1/namespaces/{self.namespace}/pods/{path_segment(self.name)}",
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
            except ApiError as e:
                if e.status not in (404, 409):
                    log.warning("pod %s/%s: final delete failed: %s",
                                self.namespace, self.name, e)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.agent.forget(self)

    # -- status -----------------------------------------------------------------------------

    def _post(self) -> None:
        if self.force:
            return
        status = pod_status(self.pod, self.init, self.main, sandbox_ready=self.sandbox_ready,
                            final=self.final, start_time=self.start_time)
        self._patch_status(status)

    def _patch_status(self, status: Obj) -> None:
        """Posts the status, retrying until the API server takes it (as the kubelet's status
        manager does): a status lost while the API server restarts would leave the pod Running
        forever. Gives up only when the pod is gone (404) or is another pod by now (409)."""
        delay = 0.2
        while status != self._last_posted and not self.agent.stopping.is_set():
            try:
                updated = self.agent.kube.patch(
                    f"/api/v1/namespaces/{self.namespace}/pods/{path_segment(self.name)}/status",
                    {"metadata": {"uid": self.uid}, "status": status},
                    content_type="application/strategic-merge-patch+json")
                self.pod = updated
                self._last_posted = status
                return
            except ApiError as e:
                if e.status in (404, 409):
                    return
                if e.status < 500 and e.status != 429:
                    log.warning("pod %s/%s: status update refused: %s", self.namespace,
                                self.name, e)
                    return
                problem = str(e)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                problem = str(e)
            log.warning("pod %s/%s: status update failed, retrying in %.1fs: %s",
                        self.namespace, self.name, delay, problem)
            self.agent.stopping.wait(delay)
            delay = min(delay * 2, 5.0)


def tail_log(path: Path, lines: int, limit: int) -> str:
    """The last `lines` lines (at most `limit` bytes) of a CRI log file, without its prefixes."""
    try:
        raw = path.read_bytes().splitlines()[-lines:]
    except OSError:
        return ""
    text = b"\n".join(line.split(b" ", 3)[3] if line.count(b" ") >= 3 else line for line in raw)
    return text[-limit:].decode("utf-8", "replace")
