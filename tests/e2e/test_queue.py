"""Queue admission on the real cluster: pools, priorities, fairness, Redis failures, visibility.

The session operator watches the ConfigMap `default/videojob-e2e-config` for pool changes (see
conftest.py); these tests close the gpu pool (`maxConcurrency: 0`) to build a queue, then open
it again (`auto`: the two GPUs of the local-gpu node) and watch what is admitted.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster, wait_for
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, wait_until

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}
CONFIGMAP = ("default", "videojob-e2e-config")
GPU_STAGES = ("keyframes", "segments")
LAG = 5.0  # seconds the queue-depth metric may trail the cluster


def gpu_max(op: Operator) -> float:
    return op.metrics().get('videojob_pool_max_concurrency{pool="gpu"}', -1)


def queue_depth(op: Operator, pool: str = "gpu") -> float:
    m = op.metrics()
    return sum(m.get(f'videojob_queue_depth{{pool="{pool}",priority_band="{b}"}}', 0)
               for b in ("high", "normal", "low"))


@pytest.fixture
def set_pools(cluster: Cluster, running_operator: Operator) -> Iterator[Callable[..., None]]:
    """Changes the operator's pools at run time, through its ConfigMap; restored afterwards."""

    def apply(pools: dict[str, Any], expect_gpu_max: int) -> None:
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=CONFIGMAP[1]),
                                  data={"config.yaml": yaml.safe_dump({"pools": pools})})
        try:
            cluster.core.replace_namespaced_config_map(CONFIGMAP[1], CONFIGMAP[0], body)
        except client.ApiException as e:
            if e.status != 404:
                raise
            cluster.core.create_namespaced_config_map(CONFIGMAP[0], body)
        wait_until(lambda: gpu_max(running_operator) == expect_gpu_max, 15,
                   f"the operator to apply gpu maxConcurrency {expect_gpu_max}")

    yield apply
    apply({}, 2)


@pytest.fixture
def second_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-other-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(cluster.core.list_namespaced_service_account,
             lambda sa: sa.metadata.name == "default", namespace=name, timeout=30,
             what=f"ServiceAccount {name}/default")
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background")


class GpuPodWatch:
    """Counts GPU stage pods that exist and are not finished (Pending or Running), at every
    event of a watch over all namespaces, and remembers the most seen at once."""

    def __init__(self, cluster: Cluster, namespaces: set[str]) -> None:
        self.cluster, self.namespaces = cluster, namespaces
        self.alive: set[str] = set()
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.cluster.core.list_pod_for_all_namespaces,
                                      label_selector="videojob.dev/pool=gpu", timeout_seconds=5):
                    p = event["object"]
                    if p.metadata.namespace not in self.namespaces:
                        continue
                    key = f"{p.metadata.namespace}/{p.metadata.name}"
                    if event["type"] == "DELETED" or p.status.phase in ("Succeeded", "Failed"):
                        self.alive.discard(key)
                    else:
                        self.alive.add(key)
                    self.most = max(self.most, len(self.alive))
                    if self.stop.is_set():
                        break
            except Exception:  # a dropped watch: the next one starts from a fresh listing
                self.alive.clear()

    def close(self) -> int:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.most


def suspended_gpu_jobs(cluster: Cluster, namespaces: list[str]) -> int:
    return sum(1 for ns in namespaces for j in cluster.batch.list_namespaced_job(
        ns, label_selector="videojob.dev/pool=gpu").items
        if j.spec.suspend and not j.metadata.deletion_timestamp)


def test_twelve_videojobs_share_two_gpus_by_priority_and_namespace_turns(
        cluster: Cluster, namespace: str, second_namespace: str, running_operator: Operator,
        set_pools: Callable[..., None]) -> None:
    a, b = namespace, second_namespace
    set_pools({"gpu": {"maxConcurrency": 0}}, 0)  # closed: everything queues
    pods = GpuPodWatch(cluster, {a, b})
    try:
        run_twelve(cluster, a, b, running_operator, set_pools, pods)
    finally:
        pods.close()


def run_twelve(cluster: Cluster, a: str, b: str, running_operator: Operator,
               set_pools: Callable[..., None], pods: GpuPodWatch) -> None:
    # Created in an order that neither priority nor fairness would give: all of a, then b,
    # the high-priority ones last.
    plan = [(a, f"a{i}", 0) for i in range(5)] + [(b, f"b{i}", 0) for i in range(5)] + [
        (a, "a-urgent", 10), (b, "b-urgent", 10)]
    uids = {}
    for ns, name, priority in plan:
        uids[(ns, name)] = vjs.create(cluster, ns, name,
                                      prompt="sleep:keyframes:1 sleep:segments:0.5",
                                      scenes=1, priority=priority, **FAST)["metadata"]["uid"]
    wait_until(lambda: suspended_gpu_jobs(cluster, [a, b]) == 12, 90,
               "all twelve keyframes Jobs queued (suspended)")
    queued = {(ns, n): vjs.wait(cluster, ns, n, lambda vj: (vj.get("status") or {}).get(
        "queuePosition") is not None, timeout=30) for ns, n, _ in plan}

    def urgent_places() -> set[int]:
        # Positions are progress figures, written at most once a second: the first one seen
        # may be from before the last VideoJob joined the queue.
        return {vjs.get(cluster, ns, n)["status"].get("queuePosition")
                for ns, n in ((a, "a-urgent"), (b, "b-urgent"))}

    wait_until(lambda: urgent_places() == {1, 2}, 15, "the urgent VideoJobs at places 1 and 2")
    assert all(vj["status"]["phase"] == "Queued" for vj in queued.values())
    table = cluster.kubectl("get", "videojobs", "-n", a, "-o", "wide").stdout
    assert "QUEUE" in table.splitlines()[0]
    pool = cluster.kubectl("get", "videojobpools", "gpu").stdout.splitlines()
    assert pool[0].split()[:6] == ["NAME", "STRATEGY", "MAX", "RUNNING", "PENDING", "QUEUED"]
    wait_until(lambda: cluster.kubectl("get", "videojobpools", "gpu", "-o",
                                       "jsonpath={.status.queued}").stdout == "12", 10,
               "the gpu VideoJobPool to show twelve queued")

    # The queue-depth metric is the number of suspended Jobs, give or take the moments between
    # the operator's decision (the metric) and the API server's answer (the Jobs): a reading
    # where the two differ must be followed, within LAG seconds, by one where they agree.
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            m1 = queue_depth(running_operator)
            jobs = suspended_gpu_jobs(cluster, [a, b])
            if m1 == queue_depth(running_operator):  # the metric unchanged across the listing
                samples.append((time.monotonic(), m1, jobs))
            stop.wait(0.2)  # sampling period, not a wait for a condition

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    set_pools({}, 2)  # open: the two GPUs of the local-gpu node
    done = {(ns, n): vjs.wait(cluster, ns, n, vjs.phase_is("Succeeded", "Failed"), timeout=180)
            for ns, n, _ in plan}
    stop.set()
    sampler.join(timeout=10)
    assert pods.close() == 2, f"GPU stage pods at once: {pods.most} (want exactly 2)"
    agreeing = [t for t, m, j in samples if m == j]
    assert len(agreeing) >= 5, "too few moments where the metric and the cluster agree"
    stale = [(t, m, j) for t, m, j in samples if m != j
             and not any(t < u <= t + LAG for u in agreeing)]
    assert stale == [], f"metric and suspended Jobs disagreeing for over {LAG} s: {stale}"
    assert any(m > 0 for _, m, _ in samples), samples
    assert all(vj["status"]["phase"] == "Succeeded" for vj in done.values()), done

    # Admission order of the keyframes Jobs: high priority first, then namespaces in turn.
    admitted = []
    for ns in (a, b):
        for j in cluster.batch.list_namespaced_job(
                ns, label_selector="videojob.dev/stage=keyframes").items:
            admitted.append((j.metadata.annotations["videojob.dev/admitted-at"], ns,
                             j.metadata.labels["videojob.dev/name"]))
    order = [name for _, _, name in sorted(admitted)]
    assert set(order[:2]) == {"a-urgent", "b-urgent"}, order
    # Each namespace holds a slot in turn, so the two advance together; arrival order (all of a,
    # then all of b) would put one namespace five ahead. A slot freed by one namespace's pod goes
    # to its own next Job while the other still holds its slot, and pod start times vary, so a
    # namespace may run up to a few ahead.
    normal = [ns for _, ns, name in sorted(admitted) if "urgent" not in name]
    ahead = [abs(normal[:i].count(a) - normal[:i].count(b)) for i in range(len(normal) + 1)]
    assert max(ahead) <= 3, f"namespaces did not take turns: {order}"
    assert {a, b} <= set(normal[:4]), f"one namespace's burst went first: {order}"
    for i in range(1, len(normal) + 1):
        prefix = Counter(normal[:i])
        assert abs(prefix[a] - prefix[b]) <= 2, f"namespaces did not take turns: {order}"
    if cluster.local:
        for (ns, name), uid in uids.items():
            starts = Counter((s, i) for s, i, e in running_operator.runs(uid) if e == "start")
            assert set(starts.values()) == {1}, f"{ns}/{name} ran a stage twice: {starts}"


def test_deleted_entries_vanish_and_suspended_ones_are_held(
        cluster: Cluster, namespace: str, running_operator: Operator,
        set_pools: Callable[..., None]) -> None:
    set_pools({"gpu": {"maxConcurrency": 0}}, 0)
    for name in ("gone", "paused", "kept"):
        vjs.create(cluster, namespace, name, prompt="hello", scenes=1, **FAST)
    wait_until(lambda: suspended_gpu_jobs(cluster, [namespace]) == 3, 60, "three queued")
    wait_until(lambda: queue_depth(running_operator) == 3, 10, "queue depth 3")
    vjs.delete(cluster, namespace, "gone")
    vjs.patch_spec(cluster, namespace, "paused", suspend=True)
    wait_until(lambda: queue_depth(running_operator) == 1, 20, "queue depth 1")
    held = running_operator.metrics()['videojob_pool_held{pool="gpu"}']
    assert held == 1
    vjs.wait(cluster, namespace, "paused", vjs.phase_is("Suspended"), timeout=20)
    set_pools({}, 2)
    kept = vjs.wait(cluster, namespace, "kept", vjs.phase_is("Succeeded", "Failed"))
    assert kept["status"]["phase"] == "Succeeded"
    paused = vjs.get(cluster, namespace, "paused")
    assert paused["status"]["phase"] == "Suspended"  # held, not admitted, not lost
    vjs.patch_spec(cluster, namespace, "paused", suspend=False)
    resumed = vjs.wait(cluster, namespace, "paused", vjs.phase_is("Succeeded", "Failed"))
    assert resumed["status"]["phase"] == "Succeeded"


def redis_command(server: RedisServer, *args: str) -> bytes:
    payload = b"".join([f"*{len(args)}\r\n".encode()] + [
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args])
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(65536)


def test_redis_killed_restarted_and_flushed_loses_nothing_and_runs_nothing_twice(
        cluster: Cluster, namespace: str, running_operator: Operator,
        redis_server: RedisServer, set_pools: Callable[..., None]) -> None:
    set_pools({"gpu": {"maxConcurrency": 0}}, 0)
    names = [f"r{i}" for i in range(6)]
    uids = {n: vjs.create(cluster, namespace, n, prompt="sleep:keyframes:0.5 sleep:segments:0.5",
                          scenes=2, **FAST)["metadata"]["uid"] for n in names}
    wait_until(lambda: suspended_gpu_jobs(cluster, [namespace]) == 6, 60, "six queued")
    # The mirror holds the queue in admission order.
    wait_until(lambda: redis_command(redis_server, "ZCARD", "videojob:queue:gpu").startswith(
        b":6"), 10, "six entries in the Redis queue")

    redis_server.stop()  # killed while everything is queued
    set_pools({}, 2)
    wait_until(lambda: sum(1 for n in names if (vjs.get(cluster, namespace, n).get("status")
                                                or {}).get("currentStage") in (
        "segments", "stitch", "publish")) >= 2, 60, "admission going on without Redis")
    redis_server.start()  # restarted empty: the queue is rebuilt from the cluster
    wait_until(lambda: redis_command(redis_server, "HGET", "videojob:pool:gpu", "max") ==
               b"$1\r\n2\r\n", 20, "the Redis queue rebuilt after the restart")
    wait_until(lambda: sum(1 for n in names if (vjs.get(cluster, namespace, n).get("status")
                                                or {}).get("phase") == "Succeeded") >= 3, 90,
               "half of the VideoJobs done")
    assert redis_command(redis_server, "FLUSHALL").startswith(b"+OK")
    for n in names:
        done = vjs.wait(cluster, namespace, n, vjs.phase_is("Succeeded", "Failed"), timeout=120)
        assert done["status"]["phase"] == "Succeeded", done["status"]
    # Rebuilt on the next pass (events, or the polling interval as the safety net).
    wait_until(lambda: redis_command(redis_server, "EXISTS", "videojob:pool:gpu") == b":1\r\n",
               45, "the Redis queue rebuilt after the flush")
    wait_until(lambda: redis_command(redis_server, "ZCARD", "videojob:queue:gpu") == b":0\r\n",
               45, "the Redis queue empty at the end")
    if cluster.local:
        for n, uid in uids.items():
            starts = Counter((s, i) for s, i, e in running_operator.runs(uid) if e == "start")
            assert set(starts.values()) == {1}, f"{n} ran a stage twice: {starts}"
