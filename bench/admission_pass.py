"""One admission pass with thousands queued: the operator's own CPU for it, with no cluster.

An admission pass runs on the operator's event loop, so with 10,000 VideoJobs queued its length
is how long every other event waits (bench/scale.py measures that end to end, in an hour a
run). This times the pass alone: the real `Admitter` over the real store, fed the planner's own
stage Job manifests, N VideoJobs in four namespaces, each with its plan Job queued in the cpu
pool (32 slots, all taken by running plan pods). Its writer answers an admission at once with
the Job unsuspended, as the API server would.

Two kinds of pass, `PASSES` of each, back to back as under load:
- `full`: a pod event marks a VideoJob changed, and the pass finds no room (most passes with a
  long queue: every slot busy);
- `freed`: a running plan pod succeeds first, and the pass admits the queue's head;
- `other`: the pass over the pools where slots freed, for the gpu pool, which holds none of the
  queue (a keyframes pod ended while the plan Jobs wait): what it costs to find its own Jobs;
- `complete`: a plan pod succeeds, then a pass decides every pool and works out every queued
  VideoJob's place, as the pass that comes once a second (`POSITION_INTERVAL`) does;
- `mirror`: after each `complete` pass, the Redis mirror's sync of the moved queue (its head
  admitted) into a real redis-server, not a verifying one (redis_queue.py).

`admission_pass_<kind>_ms_<N>` is the median pass. With `--baseline DIR` (another checkout's
`operator` directory) both run in turn, `--repeats` times each, each in a process of its own,
and `admission_pass_<kind>_ratio_<N>` is this checkout's median over the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import describe, save
from videojob_testkit.processes import RedisServer, free_port

REPO = Path(__file__).resolve().parent.parent
PASSES = 40
KINDS = ("full", "freed", "other", "complete", "mirror")
NAMESPACES = 4
SLOTS = 32


def measure(n: int, redis_url: str) -> dict[str, float]:
    """Median pass of each kind (ms) over N queued VideoJobs, in this process."""
    from kubernetes import client

    from videojob_operator import planner, views
    from videojob_operator.config import LiveConfig, OperatorConfig
    from videojob_operator.controller import Controller
    from videojob_operator.pools import Pool
    from videojob_operator.redis_queue import RedisQueue

    config = OperatorConfig()
    controller = Controller(LiveConfig(config), client.ApiClient())
    pools = dict(controller.config.current.pools)
    pools["cpu"] = Pool(stages=pools["cpu"].stages, max_concurrency=SLOTS)
    controller.config.replace_pools(pools)
    store, admitter = controller.store, controller.admitter
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    jobs: list[dict[str, Any]] = []
    for i in range(n):
        vj = {"metadata": {"name": f"vj{i:05d}", "namespace": f"team-{i % NAMESPACES}",
                           "uid": f"u{i}", "generation": 1, "resourceVersion": "1",
                           "creationTimestamp": (start + dt.timedelta(seconds=i)).isoformat()
                           .replace("+00:00", "Z")},
              "spec": {"prompt": "x", "scenes": 2}, "status": {}}
        store.observe_videojob("ADDED", copy.deepcopy(vj))
        manifest = planner.plan(views.Observation(vj, [], [], [], start), config).create_jobs[0]
        job = json.loads(json.dumps(manifest))  # as the API server stores it
        job["metadata"].update(uid=f"j{i}", resourceVersion="2", ownerReferences=[
            {"uid": f"u{i}", "kind": "VideoJob", "name": vj["metadata"]["name"]}])
        job["spec"]["suspend"] = i >= SLOTS
        job["status"] = {}
        store.observe_child("job", "ADDED", job)
        jobs.append(job)
    version = [3]

    def pod(job: dict[str, Any], phase: str) -> dict[str, Any]:
        meta = job["metadata"]
        version[0] += 1
        return {"metadata": {"name": f"{meta['name']}-0", "namespace": meta["namespace"],
                             "uid": f"{meta['uid']}-pod", "resourceVersion": str(version[0]),
                             "labels": {**meta["labels"],
                                        "batch.kubernetes.io/job-name": meta["name"]},
                             "annotations": {**meta.get("annotations", {}),
                                             "batch.kubernetes.io/job-completion-index": "0"}},
                "spec": {"containers": [{"name": "worker", "resources": {}}]},
                "status": {"phase": phase}}

    by_name = {j["metadata"]["name"]: j for j in jobs}

    admitted: list[str] = []

    class Writer:
        async def patch_job(self, namespace: str, name: str, patch: Any) -> Any:
            admitted.append(name)
            job = copy.deepcopy(by_name[name])
            version[0] += 1
            job["metadata"]["resourceVersion"] = str(version[0])
            job["spec"]["suspend"] = False
            return job

        async def cluster_role_uid(self, name: str) -> str:
            return ""

        async def write_pool_status(self, name: str, patch: Any, body: Any) -> None:
            return None

    admitter.writer = Writer()
    running = list(jobs[:SLOTS])
    for job in running:
        store.observe_child("pod", "ADDED", pod(job, "Running"))

    def free_a_slot() -> None:
        done = running.pop(0)
        store.observe_child("pod", "MODIFIED", pod(done, "Succeeded"))
        store.observe_child("job", "MODIFIED", {**done, "status": {
            "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}})

    async def admitted_head() -> None:
        """The admission's patch answered, and the queue's head running in the freed slot."""
        await asyncio.gather(*admitter.sending)
        for key in list(admitter.admitting):
            admitter.admitting.pop(key)
        head = next(j for j in jobs if j["spec"]["suspend"]
                    and j["metadata"]["name"] not in {r["metadata"]["name"] for r in running})
        head["spec"]["suspend"] = False
        running.append(head)
        store.observe_child("pod", "ADDED", pod(head, "Running"))

    async def passes() -> dict[str, float]:
        await admitter.admit()
        full, freed, other = [], [], []
        for i in range(PASSES):
            job = running[i % len(running)]
            store.observe_child("pod", "MODIFIED", pod(job, "Running"))
            began = time.perf_counter()
            await admitter.admit()
            full.append(time.perf_counter() - began)
        for _ in range(PASSES):
            free_a_slot()
            began = time.perf_counter()
            await admitter.admit()
            freed.append(time.perf_counter() - began)
            await admitted_head()
        for i in range(PASSES):
            store.observe_child("pod", "MODIFIED", pod(running[i % len(running)], "Running"))
            began = time.perf_counter()
            await admitter.admit({"gpu"})
            other.append(time.perf_counter() - began)
        mirror = RedisQueue(redis_url)
        admitter.publish.append(mirror.publish)
        await mirror.client.flushall()
        await mirror.sync()  # the first sync reads back what Redis holds (nothing)
        complete, synced = [], []
        for _ in range(PASSES):
            free_a_slot()
            # Due now: every pool decided, the places worked out (attributes the operator of
            # another checkout may not read).
            admitter.must_decide, admitter.positions_at = True, float("-inf")
            began = time.perf_counter()
            await admitter.admit()
            complete.append(time.perf_counter() - began)
            await admitted_head()
            mirror.verified_at = asyncio.get_running_loop().time()  # not a verifying sync
            began = time.perf_counter()
            await mirror.sync()
            synced.append(time.perf_counter() - began)
        assert len(admitter.positions) >= n - SLOTS - 2 * PASSES, "the queue places were not due"
        await mirror.client.aclose()
        # Each freed slot went to the queue's head, and nothing else was admitted.
        assert len(admitted) == 2 * PASSES, f"{len(admitted)} admissions in {2 * PASSES} passes"
        return {"full": 1000 * statistics.median(full),
                "freed": 1000 * statistics.median(freed),
                "other": 1000 * statistics.median(other),
                "complete": 1000 * statistics.median(complete),
                "mirror": 1000 * statistics.median(synced)}

    return asyncio.run(passes())


def one_process(operator_dir: Path, n: int, redis_url: str) -> dict[str, float]:
    """`measure(n)` in a process of its own, with the operator package from `operator_dir`."""
    path = [str(operator_dir), *(str(REPO / d) for d in ("common", "worker_image", "")),
            os.environ.get("PYTHONPATH", "")]
    out = subprocess.run([sys.executable, "-m", "bench.admission_pass", "--measure", str(n),
                          "--redis", redis_url],
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)},
                         cwd=REPO, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videojobs", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--baseline", type=Path, help="another checkout's operator directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.redis)))
        return 0
    with tempfile.TemporaryDirectory() as work:
        redis_server = RedisServer(port=free_port(), dir=Path(work))
        redis_server.start()
        try:
            return compare(args, redis_server.url)
        finally:
            redis_server.stop()


def compare(args: argparse.Namespace, redis_url: str) -> int:
    sides = {"this": REPO / "operator"}
    if args.baseline:
        sides["baseline"] = args.baseline.resolve()
    results: dict[str, Any] = {"machine": describe(), "passes": PASSES, "slots": SLOTS,
                               "namespaces": NAMESPACES, "repeats": args.repeats,
                               "baseline": str(args.baseline) if args.baseline else None}
    for n in args.videojobs:
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for _ in range(args.repeats):
            for side, operator_dir in sides.items():  # in turn, so drift hits both
                runs[side].append(one_process(operator_dir, n, redis_url))
        for kind in KINDS:
            mine = statistics.median(r[kind] for r in runs["this"])
            results[f"admission_pass_{kind}_ms_{n}"] = round(mine, 2)
            if args.baseline:
                base = statistics.median(r[kind] for r in runs["baseline"])
                results[f"admission_pass_{kind}_baseline_ms_{n}"] = round(base, 2)
                results[f"admission_pass_{kind}_ratio_{n}"] = round(mine / base, 3)
    save("admission_pass", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
