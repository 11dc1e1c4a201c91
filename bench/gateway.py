"""The HTTP gateway's figures (issue #24): status reads, event streams, submits and lifecycle
webhooks, each against a baseline measured in the same run on the same testbed cluster.

The gateway runs as its own process (videojob_testkit.gateway_process) with the RBAC-limited
identity of tests/gateway/conftest.py: it lists and watches, reviews tokens and access, may
impersonate the API key's ServiceAccount, and writes nothing itself. Callers are real
ServiceAccounts: `reader` (get, list, watch VideoJobs) and `writer` (and create), with tokens from
the TokenRequest API, and an API key acting as `writer`. The gateway runs at its defaults but
for `--rate-limit 0`: its per-credential limit (20/s) is what a single benchmark credential at
500/s would otherwise measure. Its access log stays on, as deployed.

The load comes from bench/loadgen.py, a process of its own on raw asyncio sockets with
keep-alive connections; its CPU is reported beside the gateway's, kube-apiserver's and etcd's.

- **GET** (`gateway_get_*`): `--videojobs` VideoJobs created straight in the API server, each
  with a status patched in (a Running VideoJob in its segments stage, every stage listed). GETs
  of them, round robin, at `--rate` a second in an open loop for `--duration` seconds; latency
  from each request's due time (loadgen.py). Three targets, their order rotated per run: the
  gateway in token mode (TokenReview and SubjectAccessReview cached: 10 s and 5 s, so a
  review is asked again while the load runs), in key mode (the key's hash, then the same
  cached review), and the API server itself, with the reader's token (the baseline).
- **SSE** (`gateway_sse_*`): `--subscribers` event streams spread evenly over `--sse-videojobs`
  of those VideoJobs; then `--changes` times, a second apart, the status of every one of those
  VideoJobs is patched at once (a new `message`). A subscriber's latency is its patch's return
  in the benchmark → the event read by loadgen (one monotonic clock). The baseline is the same
  number of API-server watches, one VideoJob each (`fieldSelector=metadata.name=`), the same
  patches, runs alternating.
- **Submit** (`gateway_submit_*`): `POST .../videojobs` one after another (generateName, the
  no-work spec), interleaved: the gateway in token mode (it creates with the caller's token),
  in key mode (impersonating), and the API server directly with the writer's token, the same
  fieldValidation and fieldManager.
- **Webhook** (`webhook_*`): the operator runs (testbed), its notify policy allowing 127.0.0.0/8
  for the namespace; a receiver on 127.0.0.1 (videojob_testkit.webhooks) checks signatures.
  VideoJobs with `spec.notify` (Queued, Running, StageSucceeded, Succeeded) arrive one a second.
  The headline is the Queued notification (the VideoJob accepted: the first status the operator
  writes), from the moment the benchmark's create was answered to the receiver's first attempt
  at it. Beside it, every event type from the notification's own `timestamp` (the operator's
  clock when it decided the transition, microseconds) to the first attempt.

Each figure is the median over `--runs` runs of that run's percentile; the ratio is gateway /
API server, of those medians.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from bench.report import describe, percentile, save
from bench.testbed import (
    GROUP,
    NO_WORK,
    PLURAL,
    PORTS,
    VERSION,
    Testbed,
    machine_busy_cpu,
    parallel,
    process_cpu,
    testbed,
)
from localcluster import controlplane
from videojob_common.pipeline import STAGES, Phase
from videojob_gateway import keys
from videojob_testkit import REPO
from videojob_testkit.gateway_process import GatewayProcess
from videojob_testkit.processes import wait_until
from videojob_testkit.rbac import role
from videojob_testkit.webhooks import Receiver, new_secret, verify

VIDEOJOBS = {"apiGroups": [GROUP], "resources": [PLURAL]}
NOTIFY_EVENTS = ["Queued", "Running", "StageSucceeded", "Succeeded"]


# -- pure parts -------------------------------------------------------------------------------

def running_status(message: str, progress: int = 40) -> dict[str, Any]:
    """A VideoJob's status mid-run, as the operator writes it: the segments stage running."""
    stages = []
    for i, stage in enumerate(STAGES):
        done = i < 2
        stages.append({"name": str(stage), "phase": "Succeeded" if done else (
            "Running" if i == 2 else "Pending"), "attempts": 1 if i <= 2 else 0,
            "progress": 100 if done else (25 if i == 2 else 0)})
    return {"phase": str(Phase.RUNNING), "currentStage": str(STAGES[2]), "progress": progress,
            "message": message, "stages": stages}


def spread(subscribers: int, videojobs: list[str]) -> list[str]:
    """Which VideoJob each subscriber follows: evenly, in turn."""
    return [videojobs[i % len(videojobs)] for i in range(subscribers)]


def stream_latencies(events: list[tuple[int, str, float]], followed: list[str],
                     patched: dict[tuple[str, str], float]) -> tuple[list[float], int]:
    """Milliseconds from each patch's time (by (VideoJob, message)) to each subscriber of that
    VideoJob seeing it or a later state (a stream sends states: a change still unsent when a
    newer one comes is replaced by it, cache.Mailbox), and how many (subscriber, patch) pairs
    never saw either. A VideoJob's patches are in the order of their times."""
    order: dict[tuple[str, str], int] = {}
    for i, (key, _) in enumerate(sorted(patched.items(), key=lambda kv: kv[1])):
        order[key] = i
    seen: dict[int, list[tuple[float, int]]] = {}
    for stream, message, at in events:
        n = order.get((followed[stream], message))
        if n is not None:
            seen.setdefault(stream, []).append((at, n))
    out, missed = [], 0
    for stream, vj in enumerate(followed):
        mine = seen.get(stream, [])
        for (name, message), at in patched.items():
            if name != vj:
                continue
            n = order[(name, message)]
            first = min((t for t, m in mine if m >= n), default=None)
            if first is None:
                missed += 1
            else:
                out.append((first - at) * 1000)
    return out, missed


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": round(percentile(values, 50), 2), "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(max(values), 2)}


def shares(cpu: dict[str, float], loadgen_s: float) -> dict[str, float]:
    """CPU seconds by part over a wall time (`cpu["wall"]`) as shares of one core, with the load
    generator's and `other`: the machine's busy time that none of them spent (other work on a
    shared machine shows there)."""
    wall = cpu["wall"]
    parts = {k: v for k, v in cpu.items() if k not in ("wall", "machine")}
    parts["loadgen"] = loadgen_s
    out = {k: round(v / wall, 3) for k, v in parts.items()}
    out["machine"] = round(cpu["machine"] / wall, 3)
    out["other"] = round(max(cpu["machine"] - sum(parts.values()), 0.0) / wall, 3)
    return out


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def first_attempts(deliveries: list[Any]) -> dict[str, Any]:
    """The first attempt of each notification (by webhook-id)."""
    first: dict[str, Any] = {}
    for d in sorted(deliveries, key=lambda d: d.at):
        first.setdefault(d.id, d)
    return first


# -- the world: callers, the gateway, the load generator -----------------------------------------

@dataclass
class World:
    bed: Testbed
    ns: str
    system: str
    tokens: dict[str, str]
    api_key: str
    gateway: GatewayProcess
    server: str  # the API server's URL
    ca_file: str
    workdir: Path


def token(bed: Testbed, namespace: str, account: str) -> str:
    made = bed.cluster.core.create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)))
    return str(made.status.token)


def allowed(bed: Testbed, user: str, verb: str, namespace: str) -> bool:
    review = client.AuthorizationV1Api(bed.cluster.api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "namespace": namespace,
                                        "group": GROUP, "resource": PLURAL}}})
    return bool(review.status.allowed)


def world(bed: Testbed) -> World:
    """The tenant namespace, its callers, the API key and the gateway (started)."""
    suffix = uuid.uuid4().hex[:6]
    ns, system = bed.namespace("gwbench"), bed.namespace("gwbench-system")
    rbac = yaml.safe_load(resources.files("videojob_gateway").joinpath("rbac.yaml").read_text())
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": n}}
        for n, sa in [(ns, "writer"), (ns, "reader"), (system, "gateway")]]
    docs += role("writer", ns, [{**VIDEOJOBS, "verbs": ["create", "get", "list", "watch"]}],
                 (ns, "writer"))
    docs += role("reader", ns, [{**VIDEOJOBS, "verbs": ["get", "list", "watch"]}],
                 (ns, "reader"))
    docs += role(f"videojob-gateway-{suffix}", None, rbac["clusterRules"], (system, "gateway"))
    docs += role("videojob-gateway-keys", system, rbac["keyNamespaceRules"], (system, "gateway"))
    docs += role("videojob-gateway-impersonation", ns,
                 [dict(r, resourceNames=["writer"]) for r in rbac["impersonationRules"]],
                 (system, "gateway"))
    bed.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    for user, verb, where in [(f"system:serviceaccount:{ns}:writer", "create", ns),
                              (f"system:serviceaccount:{ns}:reader", "get", ns),
                              (f"system:serviceaccount:{system}:gateway", "watch", "")]:
        wait_until(lambda u=user, v=verb, n=where: allowed(bed, u, v, n), 30,
                   f"RBAC to let {user} {verb} videojobs")
    tokens = {sa: token(bed, ns, sa) for sa in ("writer", "reader")}
    api_key = keys.new_key()
    bed.cluster.core.create_namespaced_secret(
        system, keys.secret_manifest("writer-key", system, ns, "writer", api_key))
    admin = yaml.safe_load(bed.cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    workdir = bed.root / "gateway"
    workdir.mkdir(exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": "gateway", "user": {"token": token(bed, system, "gateway")}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "gateway"}}],
        "current-context": "c"}))
    gateway = GatewayProcess(kubeconfig=kubeconfig, log=workdir / "gateway.log", args=[
        "--auth-modes", "token,key", "--key-namespace", system, "--rate-limit", "0"])
    gateway.start()
    ca_file = workdir / "ca.crt"
    if "certificate-authority-data" in server:
        ca_file.write_bytes(base64.b64decode(server["certificate-authority-data"]))
    else:
        ca_file.write_text(Path(server["certificate-authority"]).read_text())
    return World(bed, ns, system, tokens, api_key, gateway, str(server["server"]), str(ca_file),
                 workdir)


def targets(w: World) -> dict[str, dict[str, Any]]:
    """Where the load goes, as loadgen.Target's fields, with the path prefix of a VideoJob."""
    return {
        "gateway_token": {"target": {"url": w.gateway.url, "headers": {
            "Authorization": f"Bearer {w.tokens['reader']}"}},
            "prefix": f"/api/v1/namespaces/{w.ns}/videojobs"},
        "gateway_key": {"target": {"url": w.gateway.url, "headers": {"X-API-Key": w.api_key}},
                        "prefix": f"/api/v1/namespaces/{w.ns}/videojobs"},
        "apiserver": {"target": {"url": w.server, "ca_file": w.ca_file, "headers": {
            "Authorization": f"Bearer {w.tokens['reader']}"}},
            "prefix": f"/apis/{GROUP}/{VERSION}/namespaces/{w.ns}/{PLURAL}"},
    }


def loadgen(w: World, mode: str, job: dict[str, Any]) -> subprocess.Popen[str]:
    """bench/loadgen.py as its own process; its result lands in `<job file>.out`."""
    fd, path = tempfile.mkstemp(dir=w.workdir, prefix=f"{mode}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(job, f)
    return subprocess.Popen([sys.executable, "-m", "bench.loadgen", mode, path, path + ".out"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    proc.wait(timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited with {proc.returncode}")
    out = Path(str(proc.args[-1]))  # type: ignore[index]
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@contextmanager
def cpu_of(w: World) -> Iterator[dict[str, float]]:
    """CPU seconds over the block: the gateway, kube-apiserver, etcd, the machine (busy, all
    cores), and the wall time."""
    def read() -> dict[str, float]:
        out = {name: process_cpu(pid)[0] for name in ("kube-apiserver", "etcd")
               if (pid := controlplane.recorded_pid(w.bed.layout, name)) is not None}
        assert w.gateway.proc is not None
        out["gateway"] = process_cpu(w.gateway.proc.pid)[0]
        out["machine"] = machine_busy_cpu()
        out["wall"] = time.monotonic()
        return out

    spent: dict[str, float] = {}
    before = read()
    yield spent
    after = read()
    spent.update({k: round(after[k] - before[k], 2) for k in after})


# -- the figures ------------------------------------------------------------------------------

def seed(w: World, n: int) -> list[str]:
    names = [f"vj{i:05d}" for i in range(n)]

    def make(name: str) -> None:
        w.bed.custom.create_namespaced_custom_object(GROUP, VERSION, w.ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
            "metadata": {"name": name}, "spec": NO_WORK})
        w.bed.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, w.ns, PLURAL, name, {"status": running_status("frame 12/48")})

    parallel(make, names)
    return names


def get_runs(w: World, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    where = targets(w)
    order = list(where)
    by: dict[str, list[dict[str, Any]]] = {k: [] for k in order}

    def one(kind: str, duration: float) -> dict[str, Any]:
        job = {"target": where[kind]["target"], "rate": args.rate, "duration": duration,
               "max_connections": args.connections,
               "paths": [f"{where[kind]['prefix']}/{n}" for n in names]}
        with cpu_of(w) as cpu:
            out = result(loadgen(w, "rate", job), duration + 120)
        lat = out["latencies_ms"]
        server = cpu["gateway"] if kind.startswith("gateway") else cpu["kube-apiserver"]
        return {**quantiles(lat), "achieved_rps": round(len(lat) / out["elapsed_s"], 1),
                "sent": out["sent"], "errors": out["errors"], "connections": out["connections"],
                "stale_connections_retried": out["stale_connections_retried"],
                # the serving process's CPU per answered request (the gateway's reviews and
                # watches included; the API server's without etcd)
                "cpu_ms_per_request": round(server * 1000 / max(len(lat), 1), 3),
                "cpu_share": shares(cpu, out["cpu_s"])}

    for kind in order:  # warm-up: connections, caches, the API server's token cache
        one(kind, 3)
    for r in range(args.runs):
        for kind in order[r % len(order):] + order[:r % len(order)]:
            run = one(kind, args.duration)
            print(f"GET {kind}: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                  f"{run['achieved_rps']}/s, errors {run['errors']}, cpu {run['cpu_share']}",
                  flush=True)
            by[kind].append(run)
    return by


def submit_runs(w: World, args: argparse.Namespace) -> dict[str, Any]:
    where = targets(w)
    writer = {"gateway_token": {"Authorization": f"Bearer {w.tokens['writer']}"},
              "gateway_key": {"X-API-Key": w.api_key},
              "apiserver": {"Authorization": f"Bearer {w.tokens['writer']}"}}
    kinds = list(where)
    tgts = [{**where[k]["target"], "headers": writer[k]} for k in kinds]
    gw_body = {"generateName": "submit-", "spec": NO_WORK}
    api_body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                "metadata": {"generateName": "submit-"}, "spec": NO_WORK}
    params = "?fieldValidation=Strict&fieldManager=videojob-gateway"
    by: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for r in range(args.runs + 1):  # the first is a warm-up
        requests = []
        for _ in range(args.submits if r else 10):
            for i, k in enumerate(kinds):
                if k == "apiserver":
                    requests.append([i, "POST", where[k]["prefix"] + params, api_body])
                else:
                    requests.append([i, "POST", where[k]["prefix"], gw_body])
        out = result(loadgen(w, "serial", {"targets": tgts, "requests": requests}), 600)
        if not r:
            continue
        for i, k in enumerate(kinds):
            run = {**quantiles(out["latencies_ms"][i]), "statuses": out["statuses"][i]}
            print(f"POST {k}: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                  f"{run['statuses']}", flush=True)
            by[k].append(run)
    return by


def patch_all(w: World, vjs: list[str], message: str, progress: int,
              pool: ThreadPoolExecutor) -> dict[tuple[str, str], tuple[float, float]]:
    """Patches the status of every VideoJob at once: (sent, answered) monotonic times."""
    def one(name: str) -> tuple[str, float, float]:
        sent = time.monotonic()
        w.bed.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, w.ns, PLURAL, name,
            {"status": {"message": message, "progress": progress}})
        return name, sent, time.monotonic()

    return {(name, message): (sent, done) for name, sent, done in pool.map(one, vjs)}


def sse_runs(w: World, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    vjs = names[:args.sse_videojobs]
    followed = spread(args.subscribers, vjs)
    gw = targets(w)["gateway_token"]
    api = targets(w)["apiserver"]
    jobs = {
        "gateway": {"protocol": "sse", "target": gw["target"],
                    "paths": [f"{gw['prefix']}/{vj}/events" for vj in followed]},
        "apiserver": {"protocol": "watch", "target": api["target"],
                      "paths": [f"{api['prefix']}?watch=true&fieldSelector=metadata.name%3D{vj}"
                                for vj in followed]},
    }
    by: dict[str, list[dict[str, Any]]] = {k: [] for k in jobs}
    pool = ThreadPoolExecutor(max_workers=len(vjs))
    for r in range(args.runs):
        for kind in (("gateway", "apiserver") if r % 2 == 0 else ("apiserver", "gateway")):
            proc = loadgen(w, "sse", jobs[kind])
            assert proc.stdout is not None and proc.stdin is not None
            began = time.monotonic()
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"loadgen sse: {line!r}")
            opened_s = time.monotonic() - began
            patched: dict[tuple[str, str], tuple[float, float]] = {}
            with cpu_of(w) as cpu:
                for k in range(args.changes):
                    time.sleep(1.0)
                    patched.update(patch_all(w, vjs, f"bench change {r}.{k} {kind}",
                                             41 + (k % 50), pool))
                time.sleep(2.0)
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            out = result(proc, 60)
            events = [(int(s), str(m), float(t)) for s, m, t in out["events"]]
            answered, missed = stream_latencies(
                events, followed, {k: v[1] for k, v in patched.items()})
            from_sent, _ = stream_latencies(events, followed,
                                            {k: v[0] for k, v in patched.items()})
            run = {**quantiles(answered), "from_sent": quantiles(from_sent),
                   "patch_ms": quantiles([(b - a) * 1000 for a, b in patched.values()]),
                   "samples": len(answered), "missed": missed, "failed": out["failed"][:5],
                   "streams_opened_s": round(opened_s, 1),
                   "cpu_share": shares(cpu, out["cpu_s"])}
            print(f"SSE {kind}: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                  f"{run['samples']} seen, {missed} missed, streams opened in "
                  f"{run['streams_opened_s']} s, cpu {run['cpu_share']}", flush=True)
            by[kind].append(run)
    pool.shutdown()
    return by


def webhook_runs(bed: Testbed, args: argparse.Namespace) -> list[dict[str, Any]]:
    ns = bed.namespace("webhook")
    secret = new_secret()
    bed.cluster.core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="hook"), string_data={"secret": secret}))
    receiver = Receiver().start()
    op = bed.operator({"gpu": {"maxConcurrency": 16}, "cpu": {"maxConcurrency": 16}},
                      notify={"allow_networks": {ns: ["127.0.0.0/8"]}})
    op.start()
    runs = []
    try:
        for r in range(args.runs):
            path = f"/run{r}"
            created: dict[str, float] = {}
            names = [f"hook{r}-{i:03d}" for i in range(args.webhooks)]
            began = time.monotonic()
            for i, name in enumerate(names):
                delay = began + i * 1.0 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                bed.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                    "metadata": {"name": name}, "spec": {**NO_WORK, "notify": [{
                        "url": receiver.url(path), "events": NOTIFY_EVENTS,
                        "secretRef": {"name": "hook", "key": "secret"}}]}})
                created[name] = time.time()

            def finished(path: str = path, names: list[str] = names) -> bool:
                ends = {d.doc["data"]["name"] for d in receiver.at(path)
                        if d.doc["type"] == "Succeeded"}
                return ends >= set(names)

            wait_until(finished, 300, f"every Succeeded notification of run {r}", interval=0.5)
            got = receiver.at(path)
            first = first_attempts(got)
            queued = [(d.at - created[d.doc["data"]["name"]]) * 1000 for d in first.values()
                      if d.doc["type"] == "Queued"]
            by_type: dict[str, list[float]] = {}
            for d in first.values():
                stamp = _seconds(d.doc["timestamp"])
                by_type.setdefault(d.doc["type"], []).append((d.at - stamp) * 1000)
            everything = [v for vs in by_type.values() for v in vs]
            run = {**quantiles(queued), "notifications": len(first),
                   "attempts": len(got),
                   "signatures_valid": sum(verify(secret, d.headers, d.body) for d in got),
                   "from_notification_time": quantiles(everything),
                   "from_notification_time_by_type": {k: quantiles(v)
                                                      for k, v in sorted(by_type.items())}}
            print(f"webhook run {r}: Queued first attempt p50 {run['p50_ms']} ms, p99 "
                  f"{run['p99_ms']} ms; from the notification's time p50 "
                  f"{run['from_notification_time']['p50_ms']} ms; {len(first)} notifications",
                  flush=True)
            runs.append(run)
    finally:
        receiver.stop()
    return runs


def _seconds(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def delete_namespace(bed: Testbed, ns: str) -> None:
    bed.cluster.core.delete_namespace(ns)

    def gone() -> bool:
        try:
            bed.cluster.core.read_namespace(ns)
        except client.ApiException as e:
            return bool(e.status == 404)
        return False

    wait_until(gone, 300, f"namespace {ns} deleted")


def summarise(get: dict[str, list[dict[str, Any]]], submit: dict[str, list[dict[str, Any]]],
              sse: dict[str, list[dict[str, Any]]], hooks: list[dict[str, Any]]
              ) -> dict[str, Any]:
    """The headline keys (bench/summary.py) from the runs, medians over runs."""
    out: dict[str, Any] = {}
    if get:
        g, k, a = get["gateway_token"], get["gateway_key"], get["apiserver"]
        out.update({
            "gateway_get_p99_ms": median_of(g, "p99_ms"),
            "gateway_get_p50_ms": median_of(g, "p50_ms"),
            "gateway_get_rps": median_of(g, "achieved_rps"),
            "gateway_get_key_p99_ms": median_of(k, "p99_ms"),
            "gateway_get_key_p50_ms": median_of(k, "p50_ms"),
            "apiserver_get_p99_ms": median_of(a, "p99_ms"),
            "apiserver_get_p50_ms": median_of(a, "p50_ms"),
            "apiserver_get_rps": median_of(a, "achieved_rps"),
            "gateway_get_cpu_ms": median_of(g, "cpu_ms_per_request"),
            "gateway_get_key_cpu_ms": median_of(k, "cpu_ms_per_request"),
            "apiserver_get_cpu_ms": median_of(a, "cpu_ms_per_request"),
            "gateway_get_cpu_share": round(statistics.median(
                r["cpu_share"]["gateway"] for r in g), 3),
            "gateway_get_loadgen_cpu_share": round(statistics.median(
                r["cpu_share"]["loadgen"] for r in g), 3),
            "get_other_cpu_share": round(statistics.median(
                r["cpu_share"]["other"] for rs in (g, k, a) for r in rs), 3),
        })
        out["gateway_get_vs_apiserver_p99_ratio"] = ratio(out["gateway_get_p99_ms"],
                                                          out["apiserver_get_p99_ms"])
    if sse:
        out.update({
            "gateway_sse_p99_ms": median_of(sse["gateway"], "p99_ms"),
            "gateway_sse_p50_ms": median_of(sse["gateway"], "p50_ms"),
            "apiserver_watch_p99_ms": median_of(sse["apiserver"], "p99_ms"),
            "apiserver_watch_p50_ms": median_of(sse["apiserver"], "p50_ms"),
            "gateway_sse_missed": sum(r["missed"] for r in sse["gateway"]),
        })
        out["gateway_sse_vs_apiserver_p99_ratio"] = ratio(out["gateway_sse_p99_ms"],
                                                          out["apiserver_watch_p99_ms"])
    if submit:
        out.update({
            "gateway_submit_p50_ms": median_of(submit["gateway_token"], "p50_ms"),
            "gateway_submit_p99_ms": median_of(submit["gateway_token"], "p99_ms"),
            "gateway_submit_key_p50_ms": median_of(submit["gateway_key"], "p50_ms"),
            "apiserver_submit_p50_ms": median_of(submit["apiserver"], "p50_ms"),
        })
        out["gateway_submit_vs_apiserver_p50_ratio"] = ratio(out["gateway_submit_p50_ms"],
                                                             out["apiserver_submit_p50_ms"])
    if hooks:
        out.update({
            "webhook_first_attempt_p50_ms": median_of(hooks, "p50_ms"),
            "webhook_first_attempt_p99_ms": median_of(hooks, "p99_ms"),
            "webhook_from_notification_time_p50_ms": round(statistics.median(
                r["from_notification_time"]["p50_ms"] for r in hooks), 2),
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videojobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="GETs a second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per GET run")
    parser.add_argument("--connections", type=int, default=64,
                        help="most keep-alive connections the GET load opens")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--sse-videojobs", type=int, default=10)
    parser.add_argument("--changes", type=int, default=5, help="status changes per SSE run")
    parser.add_argument("--submits", type=int, default=100, help="creates per target per run")
    parser.add_argument("--webhooks", type=int, default=10, help="VideoJobs per webhook run")
    parser.add_argument("--only", nargs="+", choices=["get", "submit", "sse", "webhook"],
                        default=["get", "submit", "sse", "webhook"])
    args = parser.parse_args()
    # Beside another benchmark or the test cluster: LOCALCLUSTER_API_PORT and the rest move it.
    ports = controlplane.Ports() if os.environ.get("LOCALCLUSTER_API_PORT") else PORTS
    began = time.monotonic()
    get: dict[str, Any] = {}
    submit: dict[str, Any] = {}
    sse: dict[str, Any] = {}
    hooks: list[dict[str, Any]] = []
    load = os.getloadavg()
    with testbed("gateway", pods=400, gpus=200, ports=ports) as bed:
        if {"get", "submit", "sse"} & set(args.only):
            w = world(bed)
            names = seed(w, args.videojobs)
            wait_until(lambda: _cached(w) >= args.videojobs, 60, "the gateway's cache")
            try:
                if "get" in args.only:
                    get = get_runs(w, names, args)
                if "sse" in args.only:
                    sse = sse_runs(w, names, args)
                if "submit" in args.only:
                    submit = submit_runs(w, args)
            finally:
                w.gateway.stop()
            delete_namespace(bed, w.ns)  # the operator below would take them up
        if "webhook" in args.only:
            hooks = webhook_runs(bed, args)
    results = {"machine": describe(), "load_average_before": [round(x, 2) for x in load],
               "load_average_after": [round(x, 2) for x in os.getloadavg()],
               "elapsed_s": round(time.monotonic() - began, 1),
               "settings": {k: v for k, v in vars(args).items() if k != "only"},
               **summarise(get, submit, sse, hooks),
               "get_runs": get, "sse_runs": sse, "submit_runs": submit, "webhook_runs": hooks}
    save("gateway", results)
    return 0


def _cached(w: World) -> int:
    """VideoJobs in the gateway's cache, from its /metrics."""
    with urllib.request.urlopen(f"{w.gateway.url}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('videojob_gateway_cache_objects{kind="videojobs"}'):
                return int(float(line.rsplit(" ", 1)[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
