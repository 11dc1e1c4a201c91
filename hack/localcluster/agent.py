"""The node agent: registers nodes, keeps them Ready, and runs the pods bound to them.

It stands in for the kubelet and container runtime of each node it registers (by default one CPU
node and one GPU node, see nodes.yaml). For each node it:
- creates the Node object (capacity, labels, taints) and keeps it Ready: a Lease renewed every
  10 s (what the node-lifecycle controller watches) and a status heartbeat;
- watches the pods bound to it and gives each a `PodRunner` (runtime.py);
- serves container logs on the kubelet's `/containerLogs` endpoint over TLS, so `kubectl logs`
  reaches it through the API server as it reaches a kubelet.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import urllib3
import yaml

from videojob_common.pipeline import Obj

from . import images
from .cgroups import PodGroups
from .kube import STRATEGIC_MERGE_PATCH, ApiError, Kube, WatchExpired, path_segment
from .podstatus import NODE_IP, DeviceAllocator, now
from .runtime import PodRunner

log = logging.getLogger("localcluster.agent")

DEFAULT_NODES = Path(__file__).with_name("nodes.yaml")
KUBELET_VERSION = "v1.36.3"
LEASE_SECONDS = 40
LEASE_RENEW = 10.0
STATUS_HEARTBEAT = 30.0
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass
class NodeConfig:
    name: str
    capacity: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)

    @property
    def gpus(self) -> int:
        return int(self.capacity.get(GPU_RESOURCE, 0))


def load_nodes(path: Path) -> list[NodeConfig]:
    doc = yaml.safe_load(path.read_text()) or {}
    nodes = []
    for n in doc.get("nodes", []):
        nodes.append(NodeConfig(
            name=n["name"],
            capacity={k: str(v) for k, v in n.get("capacity", {}).items()},
            labels={k: str(v) for k, v in (n.get("labels") or {}).items()},
            taints=list(n.get("taints") or []),
        ))
    if not nodes:
        raise ValueError(f"{path}: no nodes defined")
    return nodes


def node_object(cfg: NodeConfig) -> Obj:
    labels = {
        "kubernetes.io/hostname": cfg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "localcluster",
        **cfg.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels},
        "spec": {"taints": cfg.taints} if cfg.taints else {},
    }


def node_status(cfg: NodeConfig, port: int, previous: Obj | None) -> Obj:
    old = {c["type"]: c for c in (previous or {}).get("conditions", []) or []}
    stamp = now()

    def cond(type_: str, status: str, reason: str, message: str) -> Obj:
        prior = old.get(type_)
        since = prior["lastTransitionTime"] if prior and prior.get("status") == status else stamp
        return {"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": stamp, "lastTransitionTime": since}

    return {
        "capacity": cfg.capacity,
        "allocatable": cfg.capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                 "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                 "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID",
                 "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "node agent is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": NODE_IP},
                      {"type": "Hostname", "address": cfg.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": cfg.name, "systemUUID": cfg.name, "bootID": str(os.getpid()),
            "kernelVersion": platform.release(), "osImage": "localcluster node agent",
            "containerRuntimeVersion": "localcluster://0.1", "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
    }


class NodeAgent:
    def __init__(self, kube: Kube, nodes: list[NodeConfig], state_dir: Path, *,
                 port: int, tls: tuple[str, str, str], api_host: str, api_port: str,
                 image_table: list[images.ImageEntry], restart_backoff: float = 10.0) -> None:
        self.kube = kube
        self.nodes = nodes
        self.pods_dir = state_dir / "pods"
        self.port = port
        self.tls = tls  # cert, key, client CA
        self.api_host = api_host
        self.api_port = api_port
        self.image_table = image_table
        self.image_roots = images.roots()
        self.restart_backoff = restart_backoff
        self.marker = {"LOCALCLUSTER_DIR": str(state_dir)}
        self._allocators = {n.name: DeviceAllocator(n.gpus) for n in nodes if n.gpus}
        self.runners: dict[str, PodRunner] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.cgroups: PodGroups | None = None  # found in run()

    # -- AgentContext -----------------------------------------------------------------------

    def allocator(self, node: str) -> DeviceAllocator | None:
        return self._allocators.get(node)

    def event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        stamp = now()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": kind, "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
            "reportingComponent": "kubelet", "reportingInstance": pod["spec"].get("nodeName", ""),
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self.kube.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except (ApiError, OSError, urllib3.exceptions.HTTPError) as e:
            # Best-effort, as the kubelet's event recorder: an API server that is down drops
            # the event. Raising here killed the pod's runner, and the pod stayed Running in
            # the API forever (found by the API-server-restart fault scenario).
            log.debug("event %s for %s/%s not recorded: %s", reason, meta["namespace"],
                      meta["name"], e)

    def forget(self, runner: PodRunner) -> None:
        with self.lock:
            if self.runners.get(runner.uid) is runner:
                del self.runners[runner.uid]

    # -- nodes ------------------------------------------------------------------------------

    def register(self, cfg: NodeConfig) -> None:
        obj = node_object(cfg)
        try:
            current = self.kube.create("/api/v1/nodes", obj)
        except ApiError as e:
            if e.status != 409:
                raise
            current = self.kube.patch(f"/api/v1/nodes/{cfg.name}", {
                "metadata": {"labels": obj["metadata"]["labels"]}})
            if cfg.taints:
                ours = {(t["key"], t["effect"]) for t in cfg.taints}
                kept = [t for t in current.get("spec", {}).get("taints") or []
                        if (t["key"], t["effect"]) not in ours]
                self.kube.patch(f"/api/v1/nodes/{cfg.name}",
                                {"spec": {"taints": kept + cfg.taints}})
        self.post_node_status(cfg, current.get("status"))
        self.renew_lease(cfg)

    def post_node_status(self, cfg: NodeConfig, previous: Obj | None) -> None:
        self.kube.patch(f"/api/v1/nodes/{cfg.name}/status",
                        {"status": node_status(cfg, self.port, previous)},
                        content_type=STRATEGIC_MERGE_PATCH)

    def renew_lease(self, cfg: NodeConfig) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{cfg.name}"
        micro = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        spec = {"holderIdentity": cfg.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro}
        try:
            self.kube.patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            node = self.kube.get(f"/api/v1/nodes/{cfg.name}")
            self.kube.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": cfg.name,
                                                  "uid": node["metadata"]["uid"]}]},
                "spec": spec,
            })

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_RENEW):
            for cfg in self.nodes:
                try:
                    self.renew_lease(cfg)
                    if time.monotonic() - last_status >= STATUS_HEARTBEAT:
                        node = self.kube.get(f"/api/v1/nodes/{cfg.name}")
                        self.post_node_status(cfg, node.get("status"))
                except Exception as e:  # keep beating: the API server may be restarting
                    log.warning("node %s: heartbeat failed: %s", cfg.name, e)
            if time.monotonic() - last_status >= STATUS_HEARTBEAT:
                last_status = time.monotonic()

    # -- pods -------------------------------------------------------------------------------

    def handle(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner is not None:
                runner.kill_now()
            return
        if runner is not None:
            runner.update(pod)
            if runner.finished.is_set() and pod["metadata"].get("deletionTimestamp"):
                self._confirm_delete(pod)
            return
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            if pod["metadata"].get("deletionTimestamp"):
                # Never start a pod that is already being deleted; just confirm the deletion.
                self._confirm_delete(pod)
            return
        if pod.get("status", {}).get("startTime") and phase == "Running":
            self._lost(pod)
            return
        runner = PodRunner(self, pod)
        with self.lock:
            self.runners[uid] = runner
        runner.start()

    def _confirm_delete(self, pod: Obj) -> None:
        """A deleted pod this agent is not running: moved to a terminal phase first (as the
        kubelet does, so the Job controller counts it as failed and replaces it), then gone."""
        meta = pod["metadata"]
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            self._lost(pod)
        try:
            self.kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/"
                             f"{path_segment(meta['name'])}",
                             {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("pod %s/%s: delete failed: %s", meta["namespace"], meta["name"], e)

    def _lost(self, pod: Obj) -> None:
        """A pod that was running under an earlier agent process: its containers are gone."""
        meta = pod["metadata"]
        statuses = []
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            c = dict(c, ready=False, started=False)
            if "terminated" not in c.get("state", {}):
                c["state"] = {"terminated": {
                    "exitCode": 137, "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                    "startedAt": None, "finishedAt": now()}}
            statuses.append(c)
        try:
            self.kube.patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{path_segment(meta['name'])}/status",
                {"status": {"phase": "Failed", "containerStatuses": statuses}},
                content_type=STRATEGIC_MERGE_PATCH)
        except ApiError as e:
            log.warning("pod %s/%s: could not mark lost: %s", meta["namespace"], meta["name"], e)

    def watch_pods(self, node: str) -> None:
        path = "/api/v1/pods"
        selector = f"spec.nodeName={node}"
        while not self.stopping.is_set():
            try:
                listing = self.kube.get(path, fieldSelector=selector)
                for pod in listing.get("items", []):
                    self.handle("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    for event in self.kube.watch(path, rv, fieldSelector=selector):
                        obj = event["object"]
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.handle(event["type"], obj)
            except WatchExpired:
                continue
            except Exception as e:
                if self.stopping.is_set():
                    return
                log.warning("node %s: pod watch failed (%s); listing again", node, e)
                self.stopping.wait(1.0)

    # -- logs -------------------------------------------------------------------------------

    def find_runner(self, namespace: str, name: str) -> PodRunner | None:
        with self.lock:
            found = [r for r in self.runners.values()
                     if r.namespace == namespace and r.name == name]
        return found[-1] if found else None

    def serve_logs(self) -> ThreadingHTTPServer:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("log server: " + fmt, *args)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = [unquote(p) for p in url.path.split("/") if p]
                if parts == ["healthz"]:
                    self._reply(200, b"ok")
                    return
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self._reply(404, b"not found")
                    return
                _, ns, pod, container = parts
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                runner = agent.find_runner(ns, pod)
                if runner is None:
                    self._reply(404, f"pod {ns}/{pod} is not on this node".encode())
                    return
                path = runner.log_file(container, previous=q.get("previous") == "true")
                if path is None:
                    self._reply(400, f'container "{container}" in pod "{pod}" has no logs '
                                     f"(not started or no previous run)".encode())
                    return
                self._stream(runner, container, path, q)

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, runner: PodRunner, container: str, path: Path,
                        q: dict[str, str]) -> None:
                follow = q.get("follow") == "true"
                timestamps = q.get("timestamps") == "true"
                tail = int(q["tailLines"]) if "tailLines" in q else None
                limit = int(q["limitBytes"]) if "limitBytes" in q else None
                since = None
                if "sinceSeconds" in q:
                    since = time.strftime("%Y-%m-%dT%H:%M:%S",
                                          time.gmtime(time.time() - int(q["sinceSeconds"])))
                elif "sinceTime" in q:
                    since = q["sinceTime"].rstrip("Z")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0

                def emit(lines: list[bytes]) -> bool:
                    nonlocal sent
                    out = bytearray()
                    for line in lines:
                        ts, _, rest = line.partition(b" ")
                        _stream, _, rest = rest.partition(b" ")
                        _tag, _, text = rest.partition(b" ")
                        if since and ts.decode()[:19] < since[:19]:
                            continue
                        out += (ts + b" " + text if timestamps else text) + b"\n"
                    if limit is not None:
                        out = out[: max(0, limit - sent)]
                    if out:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(out), bytes(out)))
                        self.wfile.flush()
                        sent += len(out)
                    return limit is None or sent < limit

                with path.open("rb") as f:
                    lines = f.read().splitlines()
                    if tail is not None:
                        lines = lines[-tail:] if tail > 0 else []
                    going = emit(lines)
                    pending = b""
                    while going and follow:
                        chunk = f.read()
                        if chunk:
                            pending += chunk
                            *complete, pending = pending.split(b"\n")
                            going = emit(complete)
                            continue
                        if not runner.is_running(container):
                            break
                        time.sleep(0.1)
                self.wfile.write(b"0\r\n\r\n")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key, client_ca = self.tls
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # only the API server (a client cert of our CA)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True, name="log server").start()
        return server

    # -- lifecycle --------------------------------------------------------------------------

    def run(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.cgroups = PodGroups.detect(str(self.pods_dir))
        server = self.serve_logs()
        for cfg in self.nodes:
            self.register(cfg)
        threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat").start()
        for cfg in self.nodes:
            threading.Thread(target=self.watch_pods, args=(cfg.name,), daemon=True,
                             name=f"pods {cfg.name}").start()
        log.info("node agent ready: nodes %s, logs on :%d",
                 ", ".join(n.name for n in self.nodes), self.port)
        self.stopping.wait()
        server.shutdown()
        self.shutdown_pods()

    def shutdown_pods(self) -> None:
        """Stopping the agent stops its pods' processes (as stopping a node's runtime does)."""
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            for p in list(r.procs.values()):
                p.signal(signal.SIGKILL, group=True)
        if self.cgroups is not None:
            self.cgroups.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="localcluster agent", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--nodes", type=Path,
                        default=Path(os.environ.get("LOCALCLUSTER_NODES", DEFAULT_NODES)))
    parser.add_argument("--images", type=Path, default=images.DEFAULT_TABLE)
    parser.add_argument("--port", type=int, default=10250)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--client-ca", required=True)
    parser.add_argument("--restart-backoff", type=float, default=10.0,
                        help="first crash-loop back-off in seconds (the kubelet uses 10)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kube = Kube(args.kubeconfig, pool_size=64)
    host = urlparse(kube.base)
    agent = NodeAgent(
        kube, load_nodes(args.nodes), args.state_dir.resolve(), port=args.port,
        tls=(args.tls_cert, args.tls_key, args.client_ca),
        api_host=host.hostname or "127.0.0.1", api_port=str(host.port or 443),
        image_table=images.load_table(args.images), restart_backoff=args.restart_backoff)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stopping.set())
    agent.run()
    return 0
