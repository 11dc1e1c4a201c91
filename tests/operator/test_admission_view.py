"""The store's caches and admission's view of them, kept up to date event by event.

The caches keep trimmed copies of Jobs and pods (`slim`), and admission rebuilds only the
VideoJobs an event touched: both must see exactly what the full objects and a full rebuild
show, or a pool would count slots wrongly.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import time
from typing import Any

import pytest
from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_operator import admission_loop, planner, pools, views
from videojob_operator.admission_loop import Admitter
from videojob_operator.api import FINALIZER
from videojob_operator.config import LiveConfig, OperatorConfig
from videojob_operator.controller import Controller
from videojob_operator.jobs import ANNOTATION_ADMITTED_AT
from videojob_operator.metrics import REGISTRY
from videojob_operator.pools import Pool
from videojob_operator.store import slim

MANAGED = [{"manager": "kube-controller-manager", "operation": "Update",
            "fieldsV1": {"f:status": {f"f:field{i}": {} for i in range(50)}}}]


def videojob(name: str, uid: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"prompt": "x", "scenes": 2, **spec}, "status": {}}


def stage_job(vj: Obj, stage: str, *, gpus: int = 0, rv: int = 2, **status: Any) -> Obj:
    """A stage Job as the API server returns it: the planner's manifest, stored."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    manifest: Obj = copy.deepcopy(
        planner.plan(views.Observation(vj, [], [], [], now), OperatorConfig()).create_jobs[0])
    meta = manifest["metadata"]
    meta["name"] = meta["name"].replace("-plan", f"-{stage}")
    meta["labels"]["videojob.dev/stage"] = stage
    meta.update(uid=f"{meta['name']}-uid", resourceVersion=str(rv), managedFields=MANAGED,
                ownerReferences=[{"uid": vj["metadata"]["uid"], "kind": "VideoJob"}])
    if gpus:
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    manifest["status"] = status
    return manifest


def pod(job: Obj, index: int, phase: str, rv: int = 3) -> Obj:
    jmeta = job["metadata"]
    return {"metadata": {"name": f"{jmeta['name']}-{index}", "namespace": "ns",
                         "uid": f"{jmeta['name']}-{index}-uid", "resourceVersion": str(rv),
                         "managedFields": MANAGED,
                         "labels": {**jmeta["labels"],
                                    "batch.kubernetes.io/job-name": jmeta["name"]},
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
            "spec": copy.deepcopy(job["spec"]["template"]["spec"]),
            "status": {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [{"name": "worker", "state": {"terminated": {
                           "message": '{"ok": true}', "finishedAt": "2026-01-01T00:00:09Z"}}}]}}


def controller() -> Controller:
    return Controller(LiveConfig(OperatorConfig()), client.ApiClient())


def fresh(c: Controller) -> Admitter:
    """An admitter of its own over the same store, as a freshly started operator has."""
    return Admitter(c.store, c.config, c.api, requeue=lambda key: None)


def rebuilt(c: Controller) -> list[Any]:
    """Admission's view built from scratch, as a fresh operator would."""
    return sorted(fresh(c).workloads(), key=lambda w: (w.namespace, w.job))


def incremental(c: Controller) -> list[Any]:
    """The controller's view as it stands; its split for a pass (the live workloads and the
    settled ones' service times) checked against a fresh operator's on the way."""
    def by_job(w: Any) -> tuple[str, str]:
        return (w.namespace, w.job)

    live, served = c.admitter.live_workloads()
    fresh_live, fresh_served = fresh(c).live_workloads()
    assert sorted(live, key=by_job) == sorted(fresh_live, key=by_job)
    assert served == fresh_served
    for pool in c.config.current.pools:  # a pass over one pool's freed slots gathers its own
        mine = c.admitter.live_workloads({pool})[0]
        assert sorted(mine, key=by_job) == sorted((w for w in live if w.pool == pool),
                                                 key=by_job), pool
    return sorted(c.admitter.workloads(), key=by_job)


def test_slim_copies_read_the_same_to_the_planner_and_admission() -> None:
    vj = videojob("clip", "u1")
    job = stage_job(vj, "segments", gpus=2, active=1, succeeded=1,
                    conditions=[{"type": "Complete", "status": "True"}])
    p = pod(job, 0, "Succeeded")
    assert views.job_view(slim("job", job)) == views.job_view(job)
    assert views.pod_view(slim("pod", p)) == views.pod_view(p)
    assert "managedFields" not in slim("job", job)["metadata"]
    # Of a pod's spec, only its containers' names and resources (the GPUs it holds).
    assert slim("pod", p)["spec"] == {"containers": [
        {"name": c["name"], "resources": c.get("resources") or {}}
        for c in p["spec"]["containers"]]}
    assert len(repr(slim("pod", p))) < len(repr(p)) / 2

    full, trimmed = controller(), controller()
    for c, convert in ((full, lambda kind, o: o), (trimmed, slim)):
        c.store.observe_videojob("ADDED", vj)
        c.store.jobs[("ns", "clip")][job["metadata"]["name"]] = convert("job", job)
        c.store.pods[("ns", "clip")][p["metadata"]["name"]] = convert("pod", p)
    assert rebuilt(full) == rebuilt(trimmed)
    assert rebuilt(trimmed)[0].slots_per_pod == 2  # the GPU limit survives the trim


def test_the_incremental_view_matches_a_full_rebuild_through_a_videojobs_life() -> None:
    c = controller()
    a, b = videojob("a", "ua"), videojob("b", "ub", priority=5)
    c.store.observe_videojob("ADDED", a)
    c.store.observe_videojob("ADDED", b)
    assert incremental(c) == rebuilt(c) == []

    plan_a = stage_job(a, "plan")
    c.store.observe_child("job", "ADDED", plan_a)
    c.store.observe_child("job", "ADDED", stage_job(b, "segments", gpus=1))
    assert incremental(c) == rebuilt(c)
    assert len(incremental(c)) == 2

    c.store.observe_child("pod", "ADDED", pod(plan_a, 0, "Pending"))
    assert incremental(c) == rebuilt(c)
    c.store.observe_child("pod", "MODIFIED", pod(plan_a, 0, "Running", rv=4))
    assert incremental(c) == rebuilt(c)
    assert [w.running_pods for w in incremental(c) if w.videojob == "a"] == [1]

    held = copy.deepcopy(b)
    held["spec"]["suspend"] = True
    held["metadata"]["resourceVersion"] = "5"
    c.store.observe_videojob("MODIFIED", held)  # the VideoJob alone changed: its Jobs are held now
    assert incremental(c) == rebuilt(c)
    assert [w.held for w in incremental(c) if w.videojob == "b"] == [True]

    c.store.observe_child("job", "MODIFIED", stage_job(a, "plan", rv=6, succeeded=1, conditions=[
        {"type": "Complete", "status": "True"}]))
    assert incremental(c) == rebuilt(c)
    c.store.observe_child("pod", "DELETED", pod(plan_a, 0, "Running", rv=4))
    assert incremental(c) == rebuilt(c)
    # Finished with no pod left: out of what a pass decides from, though still in the view.
    assert [w.videojob for w in c.admitter.live_workloads()[0]] == ["b"]
    assert len(incremental(c)) == 2
    c.store.observe_child("job", "DELETED", plan_a)
    assert incremental(c) == rebuilt(c)
    assert [w.videojob for w in incremental(c)] == ["b"]

    c.store.observe_videojob("DELETED", held)
    assert incremental(c) == rebuilt(c)
    assert [w.leaving for w in incremental(c)] == [True]  # its Job holds slots until it goes


def test_a_configuration_change_rebuilds_every_videojobs_view() -> None:
    c = controller()
    vj = videojob("clip", "u1")
    c.store.observe_videojob("ADDED", vj)
    c.store.observe_child("job", "ADDED", stage_job(vj, "segments", gpus=2))
    assert [w.pool for w in incremental(c)] == ["gpu"]

    pools = dict(c.config.current.pools)
    pools["cpu"] = Pool(stages=[*pools["cpu"].stages, "segments"], max_concurrency=4)
    pools["gpu"] = Pool(stages=[s for s in pools["gpu"].stages if s != "segments"],
                        max_concurrency="auto")
    c.config.replace_pools(pools)  # as config_watch.apply does
    assert [w.pool for w in incremental(c)] == ["cpu"]
    assert incremental(c) == rebuilt(c)


def queued(c: Controller) -> set[tuple[str, str]]:
    keys = set(c.queue.queued)
    c.queue.queued.clear()
    while not c.queue.queue.empty():
        c.queue.queue.get_nowait()
    return keys


def test_events_that_change_nothing_read_queue_no_reconcile() -> None:
    c = controller()
    key = ("ns", "clip")
    vj = videojob("clip", "u1")
    c.store.observe_videojob("ADDED", vj)
    job = stage_job(vj, "plan")
    c.store.observe_child("job", "ADDED", job)
    p = pod(job, 0, "Pending")
    c.store.observe_child("pod", "ADDED", p)
    assert queued(c) == {key}

    bound = copy.deepcopy(p)  # the scheduler's binding and the node's IP: nothing read changed
    bound["metadata"]["resourceVersion"] = "4"
    bound["spec"]["nodeName"] = "local-cpu"
    bound["status"]["podIP"] = "10.0.0.9"
    c.store.observe_child("pod", "MODIFIED", bound)
    ready = copy.deepcopy(job)
    ready["metadata"]["resourceVersion"] = "5"
    ready["status"]["ready"] = 1
    c.store.observe_child("job", "MODIFIED", ready)
    assert queued(c) == set()
    assert c.store.pods[key][p["metadata"]["name"]]["metadata"]["resourceVersion"] == "4"
    assert incremental(c) == rebuilt(c)

    running = copy.deepcopy(bound)
    running["metadata"]["resourceVersion"] = "6"
    running["status"]["phase"] = "Running"
    c.store.observe_child("pod", "MODIFIED", running)
    assert queued(c) == {key}
    assert [w.running_pods for w in incremental(c)] == [1] and incremental(c) == rebuilt(c)

    # Our own status write: its answer is cached, and the watch's echo of it queues nothing,
    # though admission still sees the new phase.
    written = copy.deepcopy(vj)
    written["metadata"]["resourceVersion"] = "7"
    written["status"] = {"phase": "Succeeded"}
    c.store.remember(key, copy.deepcopy(written))
    c.store.observe_videojob("MODIFIED", copy.deepcopy(written))
    assert queued(c) == set()
    assert [w.leaving for w in incremental(c)] == [True] and incremental(c) == rebuilt(c)
    newer = copy.deepcopy(written)
    newer["metadata"]["resourceVersion"] = "8"
    c.store.observe_videojob("MODIFIED", newer)
    assert queued(c) == {key}


def test_each_namespaces_last_admission_follows_jobs_settling_and_going() -> None:
    """A pass leaves settled Jobs out and takes only, per pool, when each namespace was last
    served. That total is folded in as Jobs settle, and summed up again when one goes."""
    c = controller()
    a, b = videojob("a", "ua"), videojob("b", "ub")
    b["metadata"]["namespace"] = "other"
    for vj in (a, b):
        c.store.observe_videojob("ADDED", vj)

    def settled(vj: Obj, stage: str, at: str, rv: int) -> Obj:
        job = stage_job(vj, stage, rv=rv, succeeded=1,
                        conditions=[{"type": "Complete", "status": "True"}])
        job["metadata"].setdefault("annotations", {})[ANNOTATION_ADMITTED_AT] = at
        return job

    def last_served() -> dict[str, str]:
        incremental(c)  # checked against a fresh operator's on the way
        return {ns: at for by_ns in c.admitter.live_workloads()[1].values()
                for ns, at in by_ns.items()}

    first, second, later = (f"2026-01-01T00:00:0{i}.000000Z" for i in (1, 2, 5))
    assert pools.pool_of(OperatorConfig().pools, "plan") == pools.pool_of(
        OperatorConfig().pools, "stitch")
    c.store.observe_child("job", "ADDED", settled(a, "plan", first, 2))
    c.store.observe_child("job", "ADDED", settled(b, "plan", second, 3))
    assert last_served() == {"ns": first, "other": second}
    stitch = settled(a, "stitch", later, 4)
    c.store.observe_child("job", "ADDED", stitch)  # later than anything: folded in
    assert last_served() == {"ns": later, "other": second}
    c.store.observe_child("job", "DELETED", stitch)  # the latest went: summed up again
    assert last_served() == {"ns": first, "other": second}
    c.store.observe_videojob("DELETED", b)
    c.store.observe_child("job", "DELETED", settled(b, "plan", second, 3))
    assert last_served() == {"ns": first}


class SlowWriter:
    """Admission's writer whose Job patches answer only when `answer` is set (or refuse with a
    409 when `refuse` is)."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.refuse = False
        self.patched: list[str] = []

    async def patch_job(self, namespace: str, name: str, patch: Obj) -> Obj:
        self.patched.append(name)
        await self.answer.wait()
        if self.refuse:
            raise client.ApiException(status=409, reason="Conflict")
        return {"metadata": {"name": name, "namespace": namespace}, "patched": patch}

    async def cluster_role_uid(self, name: str) -> str:
        return "uid"

    async def write_pool_status(self, name: str, patch: Obj, body: Obj) -> None:
        return None


def test_a_pass_does_not_wait_for_its_patches_and_counts_them_as_admitted() -> None:
    """One cpu slot, two plan Jobs queued. The first pass admits the older and returns before
    its patch answers; a pass meanwhile neither patches it again nor gives its slot to the
    other. A refused patch leaves the Job queued and asks for another pass."""
    c = controller()
    pools = dict(c.config.current.pools)
    pools["cpu"] = Pool(stages=pools["cpu"].stages, max_concurrency=1)
    c.config.replace_pools(pools)
    for name in ("a", "b"):
        vj = videojob(name, f"u{name}")
        vj["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:0{ord(name) - 96}Z"
        c.store.observe_videojob("ADDED", vj)
        job = stage_job(vj, "plan")
        job["spec"]["suspend"] = True
        c.store.observe_child("job", "ADDED", job)
    writer = SlowWriter()
    answered: list[Obj] = []
    c.store.answered = lambda kind, obj, reconcile=False: answered.append(obj)  # type: ignore[method-assign]
    admitter = Admitter(c.store, c.config, writer, requeue=lambda key: None)

    async def scenario() -> None:
        await asyncio.wait_for(admitter.admit(), 5)  # returns with the patch under way
        first = writer.patched[:]
        assert len(first) == 1 and first[0].startswith("a-")
        assert set(admitter.admitting) == {("ns", first[0])}
        await asyncio.wait_for(admitter.admit(), 5)
        assert writer.patched == first  # not patched twice, and b does not get a's slot
        writer.refuse = True
        admitter.wake.clear()
        writer.answer.set()
        await asyncio.gather(*admitter.sending)
        assert admitter.admitting == {} and answered == []
        assert admitter.wake.is_set()  # refused: decide again

    asyncio.run(scenario())


def test_only_what_admission_reads_of_a_videojob_marks_it_for_a_pass() -> None:
    # Most writes of a running VideoJob are its status's progress: a pass over thousands of
    # queued Jobs for each would be passes for nothing.
    c = controller()
    admitter = fresh(c)
    key = ("ns", "clip")
    vj = videojob("clip", "u1")
    c.store.observe_videojob("ADDED", copy.deepcopy(vj))
    assert key in admitter.stale
    admitter.stale.clear()
    progress = copy.deepcopy(vj)
    progress["metadata"]["resourceVersion"] = "2"
    progress["status"] = {"phase": "Running", "queuePosition": 3, "progress": {"percent": 40}}
    c.store.observe_videojob("MODIFIED", copy.deepcopy(progress))
    assert not admitter.stale
    for rv, change in enumerate(({"spec": {"priority": 5}}, {"spec": {"suspend": True}},
                                 {"status": {"phase": "Failed"}},
                                 {"metadata": {"deletionTimestamp": "2026-01-01T00:01:00Z"}}),
                                start=3):
        newer = copy.deepcopy(progress)
        for part, fields in change.items():
            newer[part].update(fields)
        newer["metadata"]["resourceVersion"] = str(rv)
        c.store.observe_videojob("MODIFIED", newer)
        assert list(admitter.stale) == [key], change
        admitter.stale.clear()
    # Our own write's answer, cached before its echo, tells admission when it matters.
    failed = copy.deepcopy(progress)
    failed["metadata"]["resourceVersion"] = "9"
    failed["status"]["phase"] = "Failed"
    c.store.videojobs[key] = copy.deepcopy(progress)
    c.store.remember(key, copy.deepcopy(failed))
    assert list(admitter.stale) == [key]


def test_a_freed_slot_is_timed_to_the_admission_it_allows() -> None:
    """One cpu slot: a's plan pod runs, b's plan Job waits. a's pod succeeding frees the slot
    (the store says which stage freed it); the pass that admits b counts the time from then to
    its patch's answer, in the cpu pool's figures. That pass decides the cpu pool first, where
    the slot freed: b's patch goes out before the gpu pool's (g's keyframes Job, admitted in the
    same pass by a gpu slot held back until then)."""
    c = controller()
    pools = dict(c.config.current.pools)
    pools["cpu"] = Pool(stages=pools["cpu"].stages, max_concurrency=1)
    pools["gpu"] = Pool(stages=pools["gpu"].stages, max_concurrency=0)
    c.config.replace_pools(pools)
    jobs = {}
    for name, second, stage in (("a", 1, "plan"), ("b", 2, "plan"), ("g", 3, "keyframes")):
        vj = videojob(name, f"u{name}")
        vj["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:0{second}Z"
        c.store.observe_videojob("ADDED", vj)
        jobs[name] = stage_job(vj, stage)
        jobs[name]["spec"]["suspend"] = name != "a"
        c.store.observe_child("job", "ADDED", jobs[name])
    c.store.observe_child("pod", "ADDED", pod(jobs["a"], 0, "Running"))
    writer = SlowWriter()
    writer.answer.set()
    c.store.answered = lambda kind, obj, reconcile=False: None  # type: ignore[method-assign]
    admitter = Admitter(c.store, c.config, writer, requeue=lambda key: None)

    def count(name: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_count", {"pool": "cpu"}) or 0.0

    names = ("videojob_admission_reaction_seconds", "videojob_admission_pass_delay_seconds",
             "videojob_admission_patch_seconds")
    before = [count(n) for n in names]

    async def scenario() -> None:
        await admitter.admit()
        assert writer.patched == [] and admitter.freed == {}
        pools["gpu"] = Pool(stages=pools["gpu"].stages, max_concurrency=1)
        c.config.replace_pools(pools)
        c.store.observe_child("pod", "MODIFIED", pod(jobs["a"], 0, "Succeeded", rv=4))
        assert list(admitter.freed) == ["cpu"] and len(admitter.freed["cpu"]) == 1
        await admitter.admit()
        await asyncio.gather(*admitter.sending)
        assert writer.patched == [jobs["b"]["metadata"]["name"], jobs["g"]["metadata"]["name"]]
        assert admitter.freed == {}

    asyncio.run(scenario())
    assert [count(n) - b for n, b in zip(names, before, strict=True)] == [1, 1, 1]


async def until(condition: Any, seconds: float, what: str) -> None:
    """Waits for `condition()` on the event loop, failing after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {seconds} s"
        await asyncio.sleep(0.01)


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def queued_plans(c: Controller, names: str, running: str = "") -> dict[str, Obj]:
    """Plan Jobs of VideoJobs `names` (created a second apart, in that order), queued but for
    `running`'s, whose pod runs."""
    jobs = {}
    for second, name in enumerate(names, start=1):
        vj = videojob(name, f"u{name}")
        vj["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:0{second}Z"
        c.store.observe_videojob("ADDED", vj)
        jobs[name] = stage_job(vj, "plan")
        jobs[name]["spec"]["suspend"] = name != running
        c.store.observe_child("job", "ADDED", jobs[name])
    if running:
        c.store.observe_child("pod", "ADDED", pod(jobs[running], 0, "Running"))
    return jobs


def test_a_freed_slot_is_given_away_without_waiting_for_a_long_pass_over_every_pool() -> None:
    """With a long queue in one pool, a pass over every pool is long, and the next waits three
    times as long (`pass_gap`). A slot freed in another pool does not wait for it: a pass over
    that pool alone admits the next in its queue at once, and leaves the other pools' decisions
    alone. Once a pass over every pool is due, it takes the freed slots itself, so a stream of
    freed slots never holds it off."""
    c = controller()
    pools = dict(c.config.current.pools)
    pools["cpu"] = Pool(stages=pools["cpu"].stages, max_concurrency=1)
    c.config.replace_pools(pools)
    jobs = queued_plans(c, "ab", running="a")
    writer = SlowWriter()
    writer.answer.set()
    c.store.answered = lambda kind, obj, reconcile=False: None  # type: ignore[method-assign]
    admitter = Admitter(c.store, c.config, writer, requeue=lambda key: None)

    async def scenario() -> None:
        await admitter.admit()
        gpu = admitter.decisions["gpu"]
        admitter.wake.clear()
        admitter.last_pass = admitter.positions_at = time.monotonic()
        admitter.last_cost = 10.0  # the next pass over every pool waits 30 s
        loop = asyncio.create_task(admitter.run(asyncio.Event()))
        try:
            await freed_slots(gpu)
        finally:
            await stopped(loop)

    async def freed_slots(gpu: Any) -> None:
        c.store.observe_child("pod", "MODIFIED", pod(jobs["a"], 0, "Succeeded", rv=4))
        await until(lambda: writer.patched, 5, "admission")
        assert writer.patched == [jobs["b"]["metadata"]["name"]]
        assert admitter.decisions["gpu"] is gpu  # not decided again
        assert admitter.last_pass < admitter.last_freed_pass
        # A pass over every pool due: it takes the next freed slot.
        admitter.last_cost = 0.0
        admitter.last_pass = admitter.last_freed_pass = freed_pass = time.monotonic() - 1
        c.store.observe_child("pod", "ADDED", pod(jobs["b"], 0, "Succeeded", rv=5))
        await until(lambda: admitter.decisions["gpu"] is not gpu, 5, "pass over every pool")
        assert admitter.last_freed_pass == freed_pass and admitter.freed == {}

    asyncio.run(scenario())


def test_queue_places_are_computed_at_most_once_an_interval_and_never_left_stale(
        monkeypatch: Any) -> None:
    """Places in the queue (for status.queuePosition) are worked out by a pass at most every
    POSITION_INTERVAL: with 10,000 queued they are a fifth of a pass. A pass within it leaves
    them, and the loop makes a pass once it is over, with no event to start one."""
    monkeypatch.setattr(admission_loop, "POSITION_INTERVAL", 0.2)
    monkeypatch.setattr(admission_loop, "POOL_STATUS_INTERVAL", 60)  # no pass for pool objects
    c = controller()
    pools = dict(c.config.current.pools)
    pools["cpu"] = pools["cpu"].model_copy(update={"max_concurrency": 0})
    c.config.replace_pools(pools)
    jobs = queued_plans(c, "abc")
    requeued: list[tuple[str, str]] = []
    writer = SlowWriter()
    writer.answer.set()
    c.store.answered = lambda kind, obj, reconcile=False: None  # type: ignore[method-assign]
    admitter = Admitter(c.store, c.config, writer, requeue=requeued.append)

    async def scenario() -> None:
        admitter.last_pass = time.monotonic()
        await admitter.admit()
        assert sorted(requeued) == [("ns", "a"), ("ns", "b"), ("ns", "c")]
        assert admitter.positions == {("ns", "a"): 1, ("ns", "b"): 2, ("ns", "c"): 3}
        requeued.clear()
        pools["cpu"] = pools["cpu"].model_copy(update={"max_concurrency": 1})
        c.config.replace_pools(pools)
        admitter.last_pass = time.monotonic()
        await admitter.admit()  # admits a; the places stay as they were
        await asyncio.gather(*admitter.sending)
        assert writer.patched == [jobs["a"]["metadata"]["name"]] and requeued == []
        assert admitter.positions_due()
        admitter.wake.clear()
        loop = asyncio.create_task(admitter.run(asyncio.Event()))
        try:
            await until(lambda: requeued, 5, "places computed")
        finally:
            await stopped(loop)
        assert sorted(requeued) == [("ns", "b"), ("ns", "c")]
        assert admitter.positions == {("ns", "b"): 1, ("ns", "c"): 2}

    asyncio.run(scenario())


def test_a_slot_freed_in_a_pool_since_removed_is_forgotten_by_the_next_pass() -> None:
    # Else the loop would see a freed slot for ever, and pass again every 20 ms.
    c = controller()
    admitter = fresh(c)
    admitter.freed["gone"].append(time.monotonic())
    admitter.freed_wake.set()
    asyncio.run(admitter.admit({"gone"}))
    assert admitter.freed == {} and not admitter.freed_wake.is_set()


@pytest.mark.parametrize("event", ["wake", "freed_wake"])
def test_the_loop_stops_when_cancelled_as_it_is_woken(event: str) -> None:
    """Its waits for a wake-up end at a cancellation that comes in the same turn of the loop as
    the wake-up (asyncio.wait_for on Python 3.11 would return, the cancellation lost, and the
    loop go on)."""
    admitter = controller().admitter
    passes: list[set[str] | None] = []

    async def admit(only: set[str] | None) -> None:
        passes.append(only)

    admitter.admit = admit  # type: ignore[method-assign]

    async def run() -> None:
        stop = asyncio.Event()
        if event == "freed_wake":  # woken, then waiting for the next full pass (30 s off)
            admitter.last_pass, admitter.last_cost = time.monotonic(), 10.0
            admitter.wake.set()
        admitter.positions_at = admitter.last_pass  # no places owed: a wait of 30 s
        task = asyncio.create_task(admitter.run(stop))
        for _ in range(5):
            await asyncio.sleep(0)  # into its wait
        getattr(admitter, event).set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)

    asyncio.run(run())


def test_a_videojob_moving_to_its_next_pool_leaves_the_first_pools_pass() -> None:
    """The live view is filed by pool (a freed slot's pass gathers its pool alone): a VideoJob
    whose plan settled and whose keyframes Job came is in the gpu pool's, not the cpu pool's."""
    c = controller()
    vj = videojob("a", "ua")
    c.store.observe_videojob("ADDED", vj)
    plan = stage_job(vj, "plan")
    c.store.observe_child("job", "ADDED", plan)
    c.store.observe_child("pod", "ADDED", pod(plan, 0, "Running"))
    assert incremental(c) == rebuilt(c)
    assert [w.stage for w in c.admitter.live_workloads({"cpu"})[0]] == ["plan"]
    assert c.admitter.live_workloads({"gpu"})[0] == []

    c.store.observe_child("job", "MODIFIED", stage_job(vj, "plan", rv=6, succeeded=1, conditions=[
        {"type": "Complete", "status": "True"}]))
    c.store.observe_child("pod", "DELETED", pod(plan, 0, "Running", rv=4))
    c.store.observe_child("job", "ADDED", stage_job(vj, "keyframes", gpus=1))
    assert incremental(c) == rebuilt(c)
    assert c.admitter.live_workloads({"cpu"})[0] == []
    assert [w.stage for w in c.admitter.live_workloads({"gpu"})[0]] == ["keyframes"]
    assert set(c.admitter.live) == {"gpu"}  # no empty entry left for the cpu pool
