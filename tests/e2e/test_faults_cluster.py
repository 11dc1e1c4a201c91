"""Fault suite: batches of VideoJobs while the operator, Redis, the API server, a worker or a
node fails underneath them. After each scenario: every VideoJob reached the terminal phase it
should have (none lost, none stuck), no stage ran more often than it should (duplicated), and
nothing it started is left once it is deleted (orphaned). Figures: .cluster/faults-report.json.

The VideoJobs run the scripted worker (tests/videojob_testkit/scripted_worker.py), which records
every stage start in a ledger, except the worker-kill scenario, which renders real video with
the worker."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.faults import FAILED, REPORT, Batch, Figures, cmdline, worker_processes
from videojob_testkit.kube import Cluster, wait_for
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, free_port, wait_until
from videojob_testkit.webhooks import Receiver, new_secret, verify

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.disruptive,
              pytest.mark.timeout(900)]
FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}
STEADY = "sleep:plan:0.3 sleep:keyframes:0.3 sleep:segments:0.3 sleep:stitch:0.3"
NARRATION = {"lines": ["One.", "Two."]}  # the scripted worker speaks none of it


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    fig = Figures(scenario=request.node.name.removeprefix("test_"))
    yield fig
    REPORT.append(fig)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), dir=tmp_path)
    server.start()
    yield server
    server.stop()


def discard(request: pytest.FixtureRequest, workdir: Path, failed: bool = False) -> None:
    """A passing scenario's operator files go; a failing one's stay for its log."""
    if failed or request.node.stash.get(FAILED, False):
        print(f"operator files kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def scenario_operator(request: pytest.FixtureRequest, cluster: Cluster, redis: RedisServer,
                      **overrides: Any) -> Iterator[Operator]:
    """An operator of the scenario's own (its own Redis, ledger and log); its files are kept
    when the scenario fails."""
    workdir = REPO / ".cluster" / "e2e" / f"faults-{uuid.uuid4().hex[:8]}"
    defaults = {"retry_backoff_seconds": 1, "retry_limit": 3, **overrides.pop("defaults", {})}
    op = Operator(cluster=cluster, workdir=workdir, redis_url=redis.url,
                  overrides={"defaults": defaults, **overrides})
    op.start()
    failed = False
    try:
        yield op
    except BaseException:
        failed = True
        raise
    finally:
        op.stop()
        discard(request, workdir, failed)


@pytest.fixture
def fault_operator(request: pytest.FixtureRequest, cluster: Cluster, crds: None,
                   redis: RedisServer, no_session_operator: None) -> Iterator[Operator]:
    with scenario_operator(request, cluster, redis) as op:
        yield op


def layout() -> Any:
    from localcluster import controlplane

    return controlplane.Layout(Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster")))


def assert_clean(fig: Figures) -> None:
    assert (fig.lost, fig.duplicated, fig.orphaned, fig.stuck) == (0, 0, 0, 0), fig


def test_operator_sigkilled_twenty_times_over_a_hundred_videojobs(
        cluster: Cluster, namespace: str, fault_operator: Operator, figures: Figures) -> None:
    batch = Batch(cluster, namespace, figures)
    batch.create(50, prompt="sleep:keyframes:0.2 sleep:segments:0.2", scenes=1, **FAST)
    # Half narrated: two stages at once (narrate beside keyframes and segments, #28).
    batch.create(50, prefix="spoken", prompt="sleep:keyframes:0.2 sleep:segments:0.2 "
                 "sleep:narrate:0.4", scenes=1, narration={"lines": ["One."]}, **FAST)
    rng = random.Random(7)
    kills = 0
    while kills < 20:
        # A random moment, not a wait for a condition: the operator dies wherever it is.
        time.sleep(rng.uniform(0.3, 2.0))
        phases = {(vj.get("status") or {}).get("phase") for vj in batch.listing().values()}
        if phases <= {"Succeeded", "Failed"}:
            break
        fault_operator.kill()
        kills += 1
        fault_operator.start()
    figures.faults += kills
    final = batch.wait_terminal(600)
    batch.count_duplicates(fault_operator)
    batch.delete_all_and_count_orphans()
    assert kills >= 20, f"the batch finished after {kills} kills"
    assert set(final.values()) == {"Succeeded"}, final
    assert_clean(figures)


def test_operator_sigkilled_five_times_every_terminal_notification_arrives_signed(
        request: pytest.FixtureRequest, cluster: Cluster, namespace: str, crds: None,
        redis: RedisServer, no_session_operator: None, figures: Figures) -> None:
    """Webhook notifications survive the operator: what is pending lives in the status, so a
    restarted operator sends what the one before did not (at least once, the same webhook-id
    each time). A receiver on 127.0.0.1 counts them while the operator is SIGKILLed 5 times."""
    count = int(os.environ.get("VIDEOJOB_NOTIFY_FAULT_VIDEOJOBS", "50"))
    secret = new_secret()
    cluster.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "hook"}, "stringData": {"secret": secret}})
    receiver = Receiver().start()
    hooks = [{"url": receiver.url("/faults"), "secretRef": {"name": "hook", "key": "secret"},
              "events": ["Queued", "Running", "StageSucceeded", "Succeeded", "Failed"]}]
    try:
        with scenario_operator(request, cluster, redis, notify={
                "allow_networks": {"*": ["127.0.0.0/8"]}, "backoff_seconds": 0.5,
                "max_backoff_seconds": 5, "max_attempts": 12}) as op:
            batch = Batch(cluster, namespace, figures)
            started = time.time()
            batch.create(count, prompt="sleep:keyframes:0.2 sleep:segments:0.2", scenes=1,
                         notify=hooks, **FAST)
            rng = random.Random(13)
            last_kill = 0.0
            kills = 0
            while kills < 5:
                # Spread over the run, so that some kills fall among the VideoJobs' ends: a
                # random moment, wherever the operator is (mid-delivery too).
                time.sleep(rng.uniform(3.0, 12.0))
                phases = {(vj.get("status") or {}).get("phase")
                          for vj in batch.listing().values()}
                if phases <= {"Succeeded", "Failed"}:
                    break
                op.kill()
                last_kill = time.time()
                kills += 1
                op.start()
            figures.faults += kills
            assert kills == 5, f"the batch finished after {kills} kills"
            final = batch.wait_terminal(600)
            uids = {uid: name for name, uid in batch.uids.items()}

            def terminal() -> dict[str, list[Any]]:
                out: dict[str, list[Any]] = {}
                for d in receiver.at("/faults"):
                    doc = d.doc
                    if doc["type"] in ("Succeeded", "Failed") and doc["data"]["uid"] in uids:
                        out.setdefault(doc["data"]["uid"], []).append(d)
                return out

            with contextlib.suppress(AssertionError):
                wait_until(lambda: len(terminal()) == len(uids), 120,
                           "every terminal notification")
            got = receiver.at("/faults")
            ends = terminal()
            ids = Counter(d.id for d in got)
            delays = sorted(min(d.at for d in ds) - dt.datetime.fromisoformat(
                ds[0].doc["timestamp"].replace("Z", "+00:00")).timestamp()
                for ds in ends.values())
            figures.extra.update({
                "deliveries": len(got), "notifications": len(ids),
                "duplicates": sum(n - 1 for n in ids.values()),
                "terminal_missing": len(uids) - len(ends),
                "terminal_before_last_kill": sum(1 for ds in ends.values()
                                                 if min(d.at for d in ds) < last_kill),
                "batch_seconds": round(max((d.at for ds in ends.values() for d in ds),
                                           default=started) - started, 1),
                "terminal_delay_p50_s": round(delays[len(delays) // 2], 3) if delays else -1,
                "terminal_delay_max_s": round(delays[-1], 3) if delays else -1})
            print(f"notifications under operator kills: {figures.extra}")
            batch.count_duplicates(op)
            batch.delete_all_and_count_orphans()
            assert set(final.values()) == {"Succeeded"}, final
            assert len(ends) == len(uids), figures.extra  # every end told at least once
            assert all(verify(secret, d.headers, d.body, now=d.at) for d in got)
            assert all(d.answered == 200 for d in got)
            assert_clean(figures)
    finally:
        receiver.stop()


def redis_cmd(server: RedisServer, *args: str) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall((f"*{len(args)}\r\n" + "".join(
            f"${len(a)}\r\n{a}\r\n" for a in args)).encode())
        return s.recv(4096)


def test_redis_killed_restarted_and_flushed_mid_run(
        cluster: Cluster, namespace: str, fault_operator: Operator, redis: RedisServer,
        figures: Figures) -> None:
    batch = Batch(cluster, namespace, figures)
    batch.create(20, prompt=STEADY, scenes=2, **FAST)

    def some(phase: str) -> bool:
        return sum((vj.get("status") or {}).get("phase") == phase
                   for vj in batch.listing().values()) >= 3

    wait_until(lambda: some("Running"), 60, "VideoJobs running")
    redis.stop()  # killed (SIGKILL) with work queued and running
    wait_until(lambda: some("Succeeded"), 120, "progress without Redis")
    redis.start()  # back, empty
    wait_until(lambda: redis_cmd(redis, "EXISTS", "videojob:pool:gpu") == b":1\r\n", 60,
               "the pools rebuilt in Redis")
    assert redis_cmd(redis, "FLUSHALL").startswith(b"+OK")  # and flushed mid-run
    figures.faults += 2
    final = batch.wait_terminal(300)
    batch.count_duplicates(fault_operator)
    batch.delete_all_and_count_orphans()
    assert set(final.values()) == {"Succeeded"}, final
    assert_clean(figures)


def test_api_server_restarted_mid_run(cluster: Cluster, namespace: str,
                                      fault_operator: Operator, figures: Figures) -> None:
    from localcluster import controlplane

    batch = Batch(cluster, namespace, figures)
    batch.create(20, prompt=STEADY, scenes=2, **FAST)
    for _ in range(2):
        wait_until(lambda: sum((vj.get("status") or {}).get("phase") == "Running"
                               for vj in batch.listing().values()) >= 2, 120,
                   "VideoJobs running")
        controlplane.stop(layout(), "kube-apiserver")
        controlplane.up(layout())  # starts what is missing, waits until the cluster serves
        figures.faults += 1
    final = batch.wait_terminal(300)
    batch.count_duplicates(fault_operator)
    batch.delete_all_and_count_orphans()
    assert set(final.values()) == {"Succeeded"}, final
    assert fault_operator.proc is not None and fault_operator.proc.poll() is None
    assert_clean(figures)


def test_deletion_in_every_stage_leaves_nothing_within_five_seconds(
        cluster: Cluster, namespace: str, fault_operator: Operator, figures: Figures) -> None:
    """One VideoJob held in each stage (and GPU pods Pending for lack of GPUs), then deleted."""
    batch = Batch(cluster, namespace, figures)
    for stage in ("plan", "keyframes", "segments", "stitch", "publish"):
        batch.create(1, prefix=f"in-{stage}-", prompt=f"sleep:{stage}:60", scenes=2, **FAST)
    # Both branches of a narrated one at once.
    batch.create(1, prefix="in-narrate-", prompt="sleep:narrate:60 sleep:segments:60",
                 scenes=2, narration=NARRATION, **FAST)
    # Four GPU pods wanted per segments stage at most two GPUs: the rest wait Pending.
    batch.create(2, prefix="pending-", prompt="sleep:segments:60", scenes=4, **FAST)
    wait_until(lambda: all(
        any(s.get("phase") == "Running" for s in (vj.get("status") or {}).get("stages") or [])
        for vj in batch.listing().values()), 120, "every VideoJob running a stage")
    figures.faults += len(batch.uids)
    figures.orphaned += batch.delete_all_and_count_orphans(timeout=5)
    assert_clean(figures)


def test_priority_and_suspend_edits_do_not_disturb_running_stages(
        cluster: Cluster, namespace: str, fault_operator: Operator, figures: Figures) -> None:
    batch = Batch(cluster, namespace, figures)
    names = batch.create(12, prompt="sleep:segments:2 sleep:stitch:1", scenes=1, **FAST)
    rng = random.Random(11)
    wait_until(lambda: sum((vj.get("status") or {}).get("phase") == "Running"
                           for vj in batch.listing().values()) >= 2, 120, "VideoJobs running")
    for name in names:  # every VideoJob's priority changed, while queued or running
        vjs.patch_spec(cluster, namespace, name, priority=rng.randint(-100, 100))
        figures.faults += 1
    for name in names[:4]:  # some suspended and resumed
        vjs.patch_spec(cluster, namespace, name, suspend=True)
        vjs.wait(cluster, namespace, name, vjs.phase_is("Suspended", "Succeeded"), timeout=60)
        vjs.patch_spec(cluster, namespace, name, suspend=False)
        figures.faults += 2
    final = batch.wait_terminal(300)
    # A suspended stage is stopped and re-run on resume: those may start twice; nothing else.
    suspended = {batch.uids[n] for n in names[:4]}
    starts = batch.runs(fault_operator)
    figures.duplicated += sum(1 for (uid, _, _), n in starts.items()
                              if n > (2 if uid in suspended else 1))
    batch.delete_all_and_count_orphans()
    assert set(final.values()) == {"Succeeded"}, final
    assert_clean(figures)


def test_a_worker_sigkilled_mid_stage_is_retried_and_the_video_is_whole(
        request: pytest.FixtureRequest, cluster: Cluster, namespace: str, crds: None,
        redis: RedisServer, no_session_operator: None, figures: Figures) -> None:
    """The real worker: a segments process killed mid-render; its pod fails, the Job makes a
    new one (within the retry limit), and the published MP4 has every frame."""
    with scenario_operator(request, cluster, redis, worker_image="ghcr.io/videojob/worker:0.1.0",
                           worker_command=None, defaults={"retry_limit": 2}):
        batch = Batch(cluster, namespace, figures)
        (name,) = batch.create(1, prompt="a lighthouse at dusk", scenes=2, durationSeconds=4,
                               fps=12, resolution="320x180")
        uid = batch.uids[name]
        wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
                 namespace=namespace, label_selector="videojob.dev/stage=segments",
                 timeout=180, what="segments running")
        found: list[int] = []

        def a_worker() -> bool:  # the worker itself, not its ffmpeg (nor a process just gone)
            found[:] = [pid for pid in worker_processes({uid})
                        if b"videojob-worker" in cmdline(pid)]
            return bool(found)

        wait_until(a_worker, 60, "a segments worker process")
        victim = found[0]
        os.kill(victim, signal.SIGKILL)
        figures.faults += 1
        final = batch.wait_terminal(300)
        assert final == {name: "Succeeded"}, vjs.get(cluster, namespace, name).get("status")
        done = vjs.get(cluster, namespace, name)
        segments = vjs.stage(done, "segments")
        assert segments["attempts"] == 3, segments  # two scenes, one of them twice
        uri = done["status"]["outputURI"]
        assert uri.startswith("file://")
        probe = subprocess.run(
            [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-count_frames",
             "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of",
             "csv=p=0", uri.removeprefix("file://")], capture_output=True, text=True, check=True)
        assert int(probe.stdout.strip()) == 4 * 12
        batch.delete_all_and_count_orphans()
        assert_clean(figures)


# GPU-stage pods leave an unreachable node after 5 s (the default, added by the API server to
# every pod, is 300 s): what a GPU cluster that wants lost GPUs back quickly configures.
SHORT_EVICTION = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    *({"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
       "tolerationSeconds": 5} for taint in ("unreachable", "not-ready")),
]
FAULT_NODE = "fault-gpu"
FAULT_LABEL = {"videojob.dev/fault-node": "true"}


class ExtraNode:
    """One more GPU node, run by a node agent of its own, so that stopping it leaves the rest
    of the cluster healthy (with every node of a zone NotReady, the node lifecycle controller
    assumes a control-plane problem and evicts nothing)."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        from localcluster import controlplane

        self.cluster, self.workdir = cluster, workdir
        lay = layout()
        cmd = controlplane.commands(lay, controlplane.binaries(), controlplane.Ports())[
            "node-agent"]
        nodes = workdir / "nodes.yaml"
        workdir.mkdir(parents=True, exist_ok=True)
        nodes.write_text(yaml.safe_dump({"nodes": [{
            "name": FAULT_NODE,
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110",
                         "nvidia.com/gpu": "2"},
            "labels": FAULT_LABEL,
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        }]}))
        keep = [a for a in cmd if not a.startswith(("--state-dir=", "--port="))]
        self.cmd = [*keep, f"--state-dir={workdir / 'state'}", f"--port={free_port()}",
                    f"--nodes={nodes}"]
        self.env = dict(os.environ, LOCALCLUSTER_DIR=str(lay.root.resolve()),
                        PYTHONPATH=str(REPO / "hack"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "agent.log").open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         start_new_session=True)
        wait_until(lambda: self.ready() == "True", 60, f"node {FAULT_NODE} Ready")

    def ready(self) -> str:
        node = self.cluster.core.read_node(FAULT_NODE)
        return next((c.status for c in node.status.conditions or [] if c.type == "Ready"),
                    "Unknown")

    def kill(self) -> None:
        """The node's kubelet and runtime die together: no last status reaches the cluster."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        with contextlib.suppress(Exception):
            self.cluster.core.delete_node(FAULT_NODE)


def test_node_agent_stopped_pods_are_replaced_and_every_videojob_finishes(
        request: pytest.FixtureRequest, cluster: Cluster, namespace: str, crds: None,
        redis: RedisServer, no_session_operator: None, figures: Figures) -> None:
    """A GPU node's agent (its kubelet) SIGKILLed, and its pods' processes with it: the node
    stops renewing its Lease, the node lifecycle controller marks it NotReady and taints it
    unreachable, and its GPU pods (5 s toleration) are evicted. When the agent is back, the
    evicted pods are marked Failed, their Jobs make replacements (not counted as retries:
    DisruptionTarget), and every VideoJob finishes. Nothing stays Running on the dead node; only
    the lost pods' scenes run twice; CPU stages on the healthy node are undisturbed."""
    node = ExtraNode(cluster, REPO / ".cluster" / "e2e" / f"node-{uuid.uuid4().hex[:8]}")
    node.start()
    try:
        with scenario_operator(request, cluster, redis, defaults={
                "gpu_tolerations": SHORT_EVICTION, "gpu_node_selector": FAULT_LABEL}) as op:
            batch = Batch(cluster, namespace, figures)
            batch.create(4, prefix="gpu-", prompt="sleep:segments:30", scenes=1, **FAST)
            batch.create(2, prefix="cpu-", prompt="sleep:plan:20", scenes=1, **FAST)

            def pods(stage: str) -> list[Any]:
                return cluster.core.list_namespaced_pod(
                    namespace, label_selector=f"videojob.dev/stage={stage}").items

            def running() -> list[Any]:
                return [p for p in pods("segments") if p.status.phase == "Running"]

            wait_until(lambda: len(running()) == 2, 180, "two segments pods running")
            # Running in the API, and their processes into the stage (a pod reported Running
            # whose process has not started yet would not be lost work).
            lost = {p.metadata.uid: p.metadata.labels["videojob.dev/uid"] for p in running()}
            wait_until(lambda: all(batch.runs(op)[(uid, "segments", "0")] == 1
                                   for uid in lost.values()), 60, "their processes started")
            assert {p.spec.node_name for p in pods("segments")} == {FAULT_NODE}
            node.kill()
            for pid in worker_processes(set(lost.values())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            figures.faults += 1
            wait_until(lambda: node.ready() != "True", 180, f"{FAULT_NODE} NotReady")
            wait_until(lambda: all(p.metadata.deletion_timestamp for p in pods("segments")
                                   if p.metadata.uid in lost), 120, "the lost pods evicted")
            node.start()
            final = batch.wait_terminal(300)
            starts = batch.runs(op)
            figures.duplicated += sum(1 for n in starts.values() if n > 2)
            twice = sorted(uid for (uid, _, _), n in starts.items() if n == 2)
            batch.delete_all_and_count_orphans()
            assert set(final.values()) == {"Succeeded"}, final
            assert twice == sorted(lost.values()), starts  # the two lost scenes, no more
            assert_clean(figures)
    finally:
        node.remove()
