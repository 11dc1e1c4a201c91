"""The pipeline benchmarks' testbed: a local cluster sized for the run, a real redis-server, the
operator under an identity of its own, and the API server's count of that identity's requests.

- The cluster is the project's local cluster with its own state directory and ports (it runs
  beside the test cluster) and nodes with room for the run: `pods` and `nvidia.com/gpu` large
  enough that neither the scheduler nor the node's pod limit is what is measured. It starts from
  an empty etcd each time, so runs are comparable.
- The operator authenticates as the ServiceAccount `videojob-system/videojob-operator` (bound to
  cluster-admin: the benchmark measures traffic, not RBAC). FlowSchemas of API Priority and
  Fairness match that ServiceAccount, one per verb and one per (verb, resource) in DETAILED,
  all on the `exempt` priority level so nothing is throttled that was not before. The API
  server's own `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}` then counts
  the operator's requests by verb and by resource; no other client is in them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import urllib3
import yaml
from kubernetes import client

from localcluster import controlplane
from videojob_common import watch_stream
from videojob_testkit import REPO
from videojob_testkit.chart import install_finalizer_policy
from videojob_testkit.kube import Cluster, connect
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, free_port, wait_until

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
# A VideoJob whose stages do no work (the scripted worker with no directives: each pod starts,
# reports 100 % and exits 0).
NO_WORK = {"prompt": "noop", "scenes": 1, "durationSeconds": 2, "fps": 4, "resolution": "64x64"}
OPERATOR_NS, OPERATOR_SA = "videojob-system", "videojob-operator"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
SCHEMA_PREFIX = "videojob-bench-"
# Away from the test cluster's ports and bench/cluster.py's (16000-24000 are the benchmarks').
PORTS = controlplane.Ports(api=17443, etcd=23379, etcd_peer=23380, controller_manager=21257,
                          scheduler=21259, agent=21250)


def nodes_file(path: Path, pods: int, gpus: int) -> Path:
    """The local cluster's two nodes (as hack/localcluster/nodes.yaml) with room for `pods` pods
    and `gpus` GPUs."""
    common = {"cpu": "1000", "memory": "2000Gi", "pods": str(pods),
              "ephemeral-storage": "1000Gi"}
    doc = {"nodes": [
        {"name": "local-cpu", "capacity": common},
        {"name": "local-gpu", "capacity": {**common, "nvidia.com/gpu": str(gpus)},
         "labels": {"nvidia.com/gpu.present": "true"},
         "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
    ]}
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Testbed:
    root: Path
    cluster: Cluster
    redis: RedisServer
    operator_kubeconfig: Path
    layout: controlplane.Layout
    operators: list[Operator] = field(default_factory=list)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.cluster.api)

    def namespace(self, prefix: str) -> str:
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=ns)))
        wait_until(lambda: any(sa.metadata.name == "default" for sa in
                               self.cluster.core.list_namespaced_service_account(ns).items),
                   30, f"the default ServiceAccount of {ns}")
        return ns

    def operator(self, pools: dict[str, Any], *, track: bool = True,
                 env: dict[str, str] | None = None, **overrides: Any) -> Operator:
        """The operator as its own process (not started yet), authenticating as the counted
        ServiceAccount (`env` added to its environment); stopped with the testbed unless
        `track` is False."""
        op = Operator(cluster=self.cluster, workdir=self.root / f"operator-{len(self.operators)}",
                      redis_url=self.redis.url, overrides={"pools": pools, **overrides},
                      env={"KUBECONFIG": str(self.operator_kubeconfig), **(env or {})})
        op.workdir.mkdir(parents=True, exist_ok=True)  # the stage pods' ledger is written there
        if track:
            self.operators.append(op)
        return op

    def requests(self) -> dict[str, float]:
        """The operator's API requests so far (cumulative since the API server started), as the
        API server counts them: by verb, and for the resources in DETAILED by
        "<verb> <resource>" too (those are included in their verb's figure)."""
        text = self.cluster.kubectl("get", "--raw", "/metrics").stdout
        labels = {schema_name(verb): verb for verb in (*VERBS, "other")}
        labels.update({schema_name(verb, group, resource): detailed_label(verb, group, resource)
                       for verb, group, resource in DETAILED})
        out = dict.fromkeys(labels.values(), 0.0)
        pattern = re.compile(r'^apiserver_flowcontrol_dispatched_requests_total\{([^}]*)\} (\S+)$')
        for line in text.splitlines():
            m = pattern.match(line)
            schema = m and re.search(r'flow_schema="([^"]*)"', m.group(1))
            if m and schema and schema.group(1) in labels:
                out[labels[schema.group(1)]] += float(m.group(2))
        for key in list(out):
            if " " in key:
                out[key.split(" ", 1)[0]] += out[key]
        return out

    def audit(self) -> AuditWrites:
        """The operator's writes from now on, as the API server's audit log records them."""
        layout = controlplane.Layout(self.cluster.kubeconfig.parent)
        return AuditWrites(controlplane.audit_log(layout),
                           f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, by part: each cluster component, the node agent's pods
        (its exited children), the operators started from this testbed, redis-server, this
        benchmark process (its watches, and for the floor its driver), and the whole machine
        (`machine`, from /proc/stat). Differences over a run say where its CPU went."""
        out: dict[str, float] = {}
        for name in controlplane.ORDER:
            pid = controlplane.recorded_pid(self.layout, name)
            if pid is not None:
                own, children = process_cpu(pid)
                out[name] = own
                if name == "node-agent":
                    out["pods"] = children
        out["operator"] = sum(process_cpu(op.proc.pid)[0] for op in self.operators
                              if op.proc is not None and op.proc.poll() is None)
        if self.redis.proc is not None:
            out["redis"] = process_cpu(self.redis.proc.pid)[0]
        me = os.times()
        out["benchmark"] = me.user + me.system
        out["machine"] = machine_busy_cpu()
        return out

    def create_videojobs(self, namespace: str, names: list[str], spec: dict[str, Any],
                         interval: float = 0.0) -> None:
        """Creates the VideoJobs from a few threads at once (a burst, as `kubectl apply -f dir`
        of many files would be), or one every `interval` seconds (`paced`)."""
        paced(lambda name: self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                "metadata": {"name": name}, "spec": spec}), names, interval)

    def close(self) -> None:
        for op in self.operators:
            op.stop()
        self.redis.stop()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def operator_histograms(port: int, names: tuple[str, ...],
                        labels: dict[str, str] | None = None) -> dict[str, dict[float, float]]:
    """The cumulative bucket counts {upper bound: count} of the operator's histograms `names`,
    from its own /metrics; of a labelled histogram, the series with `labels`."""
    return histograms(metrics_text(port), names, labels)


def metrics_text(port: int) -> str:
    """The operator's /metrics, as text (read once for several `histograms`)."""
    return str(urllib3.request("GET", f"http://127.0.0.1:{port}/metrics",
                               timeout=10).data.decode())


def histograms(text: str, names: tuple[str, ...],
               labels: dict[str, str] | None = None) -> dict[str, dict[float, float]]:
    """`operator_histograms` of a /metrics text already read."""
    out: dict[str, dict[float, float]] = {name: {} for name in names}
    pattern = re.compile(r'^(\w+)_bucket\{([^}]*)\} (\S+)$')
    wanted = labels or {}
    for line in text.splitlines():
        m = pattern.match(line)
        if not m or m.group(1) not in out:
            continue
        series = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        le = series.pop("le", None)
        if le is not None and series == wanted:
            out[m.group(1)][float(le)] = float(m.group(3))
    return out


def add_buckets(total: dict[float, float], more: dict[float, float]) -> dict[float, float]:
    return {le: total.get(le, 0.0) + more.get(le, 0.0) for le in {*total, *more}}


def process_cpu(pid: int) -> tuple[float, float]:
    """(its own CPU seconds, its exited and reaped children's) from /proc/<pid>/stat; zeros
    if it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])  # fields 14-17 of stat(5)
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def unread_bytes(pid: int) -> int:
    """The most bytes waiting unread in any one of the process's TCP sockets (its receive
    queue, from /proc/net/tcp*): a reader that keeps up leaves next to nothing there."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    worst = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                f = row.split()
                if len(f) > 9 and f[9] in inodes:
                    worst = max(worst, int(f[4].split(":")[1], 16))
    return worst


class UnreadSampler:
    """`unread_bytes(pid)` four times a second on a thread of its own, until stopped; the
    samples in KB."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.pid, self.period = pid, period
        self.samples_kb: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.period):
            self.samples_kb.append(unread_bytes(self.pid) / 1024)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.thread.join()
        return self.samples_kb


def machine_busy_cpu() -> float:
    """CPU seconds the machine has spent not idle (all cores), from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS  # guest time is already in user


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds by part between two `Testbed.cpu` readings, with `other` (the machine's
    less every part named)."""
    spent = {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0)) for k in after}
    spent["other"] = max(0.0, spent["machine"] - sum(v for k, v in spent.items()
                                                     if k != "machine"))
    return {k: round(v, 2) for k, v in spent.items()}


def parallel(fn: Callable[[Any], Any], items: list[Any], threads: int = 8) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(fn, items):
            pass


def paced(fn: Callable[[Any], Any], items: list[Any], interval: float) -> None:
    """fn(item) for each item, the i-th started `i * interval` seconds after the first, on one
    of 4 threads (an open-loop arrival rate: a slow call does not hold back the next start
    while a thread is free); all at once, from a few threads, when `interval` is 0."""
    if interval <= 0:
        parallel(fn, items)
        return
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for i, item in enumerate(items):
            delay = began + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(fn, item))
        for f in futures:
            f.result()


# (verb, group, resource) counted on their own, so the writes can be told apart; every other
# request of the operator is counted under its verb alone.
DETAILED = [
    ("create", "batch", "jobs"), ("patch", "batch", "jobs"), ("delete", "batch", "jobs"),
    ("create", "", "events"), ("create", "events.k8s.io", "events"),
    ("patch", GROUP, "videojobs"), ("patch", GROUP, "videojobs/status"),
    ("delete", GROUP, "videojobs"),
    ("create", GROUP, "videojobpools"), ("patch", GROUP, "videojobpools"),
    ("patch", GROUP, "videojobpools/status"),
]


class AuditWrites:
    """One user's requests from the API server's audit log (JSON lines), counted by
    `detailed_label` as they are appended: each request once it was answered, by the API
    server's own record. `Testbed.requests` reads the APF counters of /metrics instead, which
    lagged the audit log by hundreds of writes while an operator restarted over 10,000
    VideoJobs (fourteenth session); the log has no such lag. A log rotated meanwhile is read
    again from its start (what the old file had after the last read is lost)."""

    def __init__(self, path: Path, user: str) -> None:
        self.path, self.user = path, user
        self.offset = path.stat().st_size if path.exists() else 0
        self.counts: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        """Every request of the user since this was made, by label."""
        if not self.path.exists():
            return dict(self.counts)
        if self.path.stat().st_size < self.offset:
            self.offset = 0  # rotated
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written waits for the next read
        self.offset += end
        for line in data[:end].splitlines():
            if self.user.encode() not in line:
                continue
            event = orjson.loads(line)
            if event.get("user", {}).get("username") != self.user:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "") + (
                f"/{ref['subresource']}" if ref.get("subresource") else "")
            label = detailed_label(event.get("verb", ""), ref.get("apiGroup", ""), resource)
            self.counts[label] = self.counts.get(label, 0) + 1
        return dict(self.counts)


def schema_name(verb: str, group: str | None = None, resource: str | None = None) -> str:
    """videojob-bench-<verb>, or -<verb>-<resource>[-<group's first label>] for DETAILED."""
    if resource is None:
        return SCHEMA_PREFIX + verb
    return "-".join(filter(None, (SCHEMA_PREFIX + verb, resource.replace("/", "-"),
                                  (group or "").split(".")[0])))


def detailed_label(verb: str, group: str, resource: str) -> str:
    return f"{verb} {resource}" + (f" ({group})" if group == "events.k8s.io" else "")


def events_created(requests: dict[str, float]) -> float:
    return sum(v for k, v in requests.items() if k.startswith("create events"))


def write_figures(per_vj: dict[str, float]) -> dict[str, float]:
    """Writes per VideoJob, from its API requests (`Testbed.requests` over a run, / N), three
    ways:

    - `writes_per_videojob`: writes to the VideoJob's own objects (its Jobs, the VideoJob, its
      status): what reconciling one VideoJob costs, the figure the goal of 2 x stages + 4 (a
      Job create and a status write per stage, the finalizer twice, the first and last status)
      counts;
    - `events_per_videojob`: the Events recorded about it, posted in the background;
    - `writes_per_videojob_all`: every write, the shared VideoJobPool objects included (those
      are at most one a second per pool, however many VideoJobs there are)."""
    writes = sum(per_vj.get(v, 0) for v in WRITE_VERBS)
    events = events_created(per_vj)
    pools = sum(v for k, v in per_vj.items() if " videojobpools" in k)
    return {"writes_per_videojob": round(writes - events - pools, 2),
            "events_per_videojob": round(events, 2),
            "writes_per_videojob_all": round(writes, 2)}


def flow_schemas() -> list[dict[str, Any]]:
    subject = {"kind": "ServiceAccount",
               "serviceAccount": {"name": OPERATOR_SA, "namespace": OPERATOR_NS}}

    def schema(name: str, precedence: int, rule: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                "metadata": {"name": name},
                "spec": {"matchingPrecedence": precedence,
                         "priorityLevelConfiguration": {"name": "exempt"},
                         "rules": [{"subjects": [subject], **rule}]}}

    out = [schema(schema_name(verb, group, resource), 40,
                  {"resourceRules": [{"verbs": [verb], "apiGroups": [group],
                                      "resources": [resource], "clusterScope": True,
                                      "namespaces": ["*"]}]})
           for verb, group, resource in DETAILED]
    out += [schema(schema_name(verb), 50, {"resourceRules": [{
        "verbs": [verb], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True,
        "namespaces": ["*"]}]}) for verb in VERBS]
    out.append(schema(schema_name("other"), 60, {"nonResourceRules": [{
        "verbs": ["*"], "nonResourceURLs": ["*"]}]}))
    return out


def operator_identity(cluster: Cluster, root: Path) -> Path:
    """The ServiceAccount, its binding, the FlowSchemas and a kubeconfig with its token."""
    core = cluster.core
    with contextlib.suppress(client.ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NS)))
    with contextlib.suppress(client.ApiException):
        core.create_namespaced_service_account(OPERATOR_NS, client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name=OPERATOR_SA)))
    docs = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "videojob-bench-operator"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA,
                           "namespace": OPERATOR_NS}]}, *flow_schemas()]
    manifest = root / "identity.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    token = core.create_namespaced_service_account_token(
        OPERATOR_SA, OPERATOR_NS, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)))
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = root / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": OPERATOR_SA, "user": {"token": token.status.token}}],
        "contexts": [{"name": "operator", "context": {
            "cluster": admin["clusters"][0]["name"], "user": OPERATOR_SA}}],
        "current-context": "operator"}))
    return kubeconfig


@contextlib.contextmanager
def testbed(name: str, pods: int, gpus: int,
            ports: controlplane.Ports = PORTS) -> Iterator[Testbed]:
    """A fresh benchmark cluster (torn down afterwards), redis-server and operator identity;
    at `ports` (PORTS unless a benchmark runs beside another one)."""
    root = REPO / ".cluster" / "bench" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    layout = controlplane.Layout(root / "cluster")
    previous = os.environ.get("LOCALCLUSTER_NODES")
    os.environ["LOCALCLUSTER_NODES"] = str(nodes_file(root / "nodes.yaml", pods, gpus))
    redis: RedisServer | None = None
    bed: Testbed | None = None
    try:
        controlplane.up(layout, ports)
        cluster = connect(layout.kubeconfig, local=True)
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev")
        install_finalizer_policy(cluster)  # as the chart installs it on Kubernetes 1.36
        redis = RedisServer(port=free_port(), dir=Path(tempfile.mkdtemp(dir=root)))
        redis.start()
        bed = Testbed(root=root, cluster=cluster, redis=redis,
                      operator_kubeconfig=operator_identity(cluster, root), layout=layout)
        yield bed
    finally:
        if bed is not None:
            bed.close()
        elif redis is not None:
            redis.stop()
        controlplane.down(layout)
        if previous is None:
            os.environ.pop("LOCALCLUSTER_NODES", None)
        else:
            os.environ["LOCALCLUSTER_NODES"] = previous


class Stream:
    """A watch of one kind in one namespace on its own thread, calling `on_event(type, obj,
    monotonic time received)` for each event until stopped; re-established when it ends."""

    def __init__(self, list_fn: Callable[..., Any], namespace: str,
                 on_event: Callable[[str, dict[str, Any], float], None],
                 **kwargs: Any) -> None:
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(list_fn, namespace, on_event),
                                       kwargs=kwargs, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the watch did not start")

    def _run(self, list_fn: Callable[..., Any], namespace: str,
             on_event: Callable[[str, dict[str, Any], float], None], **kwargs: Any) -> None:
        rv = None
        while not self.stopped.is_set():
            try:
                if rv is None:
                    listing = list_fn(namespace, _preload_content=False, **kwargs)
                    rv = orjson.loads(listing.data)["metadata"]["resourceVersion"]
                    self.ready.set()
                # Plain JSON read in large pieces, as the operator reads its watches
                # (videojob_common.watch_stream): the floor's driver must not fall behind its
                # own watch, or the floor would be slower than the cluster allows.
                response = list_fn(namespace, watch=True, resource_version=rv,
                                   timeout_seconds=300, _preload_content=False, **kwargs)
                try:
                    for line in watch_stream.lines(response):
                        now = time.monotonic()
                        ev = orjson.loads(line)
                        obj = ev["object"]
                        if ev["type"] == "ERROR":
                            raise KeyError(obj.get("code"))
                        rv = obj["metadata"]["resourceVersion"]
                        if ev["type"] != "BOOKMARK":
                            on_event(ev["type"], obj, now)
                        if self.stopped.is_set():
                            break
                finally:
                    response.close()
                    response.release_conn()
            except (client.ApiException, KeyError, ValueError, urllib3.exceptions.HTTPError):
                # Expired (410, or its ERROR event): list again; events in the gap are lost,
                # which the benchmarks' checks of completeness would show.
                rv = None

    def stop(self) -> None:
        self.stopped.set()
