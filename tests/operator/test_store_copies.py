"""The copies the store keeps of VideoJobs, Jobs and pods: what they drop, that everything reading
them reads the same, and what they weigh.

The objects in fixtures/api_objects.json are as a testbed's API server returned them (a
keyframes Job that completed, its pod that succeeded, a VideoJob queued at its segments), paths
and namespace made generic.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import orjson

from videojob_common.archive.rows import pod_record
from videojob_common.pipeline import Obj
from videojob_operator import views
from videojob_operator.admission_loop import workload
from videojob_operator.store import compact, slim

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "api_objects.json").read_text())
UID = re.compile(r'"[0-9a-f]{8}(-[0-9a-f]{4}-)')  # a uid's first part
NOW = dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.UTC)


def fixture(name: str) -> Obj:
    """A fresh parse, as the operator's reads give it (orjson)."""
    doc: Obj = orjson.loads(orjson.dumps(FIXTURES[name]))
    return doc


def test_what_is_kept_reads_the_same_everywhere() -> None:
    job, pod, vj = fixture("job"), fixture("pod"), fixture("videojob")
    kept_job, kept_pod = slim("job", job), slim("pod", pod)
    assert views.job_view(kept_job) == views.job_view(job)
    assert views.pod_view(kept_pod) == views.pod_view(pod)
    # The GPU-seconds (accounting.py) and the archive's row, where it ran included.
    assert pod_record(kept_pod, NOW, "nvidia.com/gpu") == pod_record(pod, NOW, "nvidia.com/gpu")
    assert pod_record(kept_pod, NOW, "nvidia.com/gpu").node == "local-gpu"
    key = (vj["metadata"]["namespace"], vj["metadata"]["name"])
    assert (workload(key, vj, kept_job, [kept_pod], "gpu", 1)
            == workload(key, vj, job, [pod], "gpu", 1))


def test_what_is_dropped() -> None:
    kept_pod, kept_job = slim("pod", fixture("pod")), slim("job", fixture("job"))
    assert set(kept_pod["metadata"]["labels"]) == {
        "videojob.dev/name", "videojob.dev/uid", "videojob.dev/stage", "videojob.dev/pool",
        "batch.kubernetes.io/job-name"}
    assert set(kept_pod["status"]) == {"phase", "conditions", "containerStatuses", "startTime"}
    assert [set(c) for c in kept_pod["status"]["containerStatuses"]] == [{"name", "state"}]
    assert not any("lastProbeTime" in c for c in kept_pod["status"]["conditions"])
    assert not {"ready", "terminating", "uncountedTerminatedPods"} & set(kept_job["status"])
    assert "managedFields" not in kept_job["metadata"]


def test_compact_is_equal_and_holds_each_string_once() -> None:
    a, b = fixture("videojob"), fixture("videojob")
    assert a["status"]["phase"] is not b["status"]["phase"]  # two parses, two strings
    ca, cb = compact(a), compact(b)
    assert ca == a and cb == b
    assert ca["status"]["phase"] is cb["status"]["phase"]
    assert ca["metadata"]["uid"] is cb["metadata"]["uid"]
    long = "x" * 1000
    assert compact({"m": long})["m"] is long  # long strings (a prompt) are not interned


def held(objs: list[Any]) -> float:
    """Bytes held per object, strings and containers shared between them counted once."""
    seen: set[int] = set()

    def size(o: Any) -> int:
        if id(o) in seen:
            return 0
        seen.add(id(o))
        n = sys.getsizeof(o)
        if isinstance(o, dict):
            n += sum(size(k) + size(v) for k, v in o.items())
        elif isinstance(o, list):
            n += sum(size(v) for v in o)
        return n

    return sum(size(o) for o in objs) / len(objs)


def copies(name: str, n: int) -> list[Obj]:
    """n VideoJobs' worth of one fixture, each its own parse with its own names and uids."""
    text = orjson.dumps(FIXTURES[name]).decode()
    return [orjson.loads(UID.sub(rf'"{i:08x}\1', text.replace("vj00000", f"vj{i:05d}")))
            for i in range(n)]


def test_the_copies_weigh_much_less() -> None:
    """Against the copies as the store kept them before: whole VideoJobs less their
    managedFields, and Jobs and pods with every label and their whole status. A VideoJob queued at
    its segments holds itself, three Jobs and two pods: about 46 KB before, 25 KB now."""
    for kind, most in (("job", 0.7), ("pod", 0.6)):
        docs = copies(kind, 50)
        before = [{"metadata": {k: v for k, v in d["metadata"].items() if k != "managedFields"},
                   "status": d["status"],
                   "spec": orjson.loads(orjson.dumps(slim(kind, d)["spec"]))} for d in docs]
        assert held([slim(kind, d) for d in docs]) < most * held(before), kind
    vjs = copies("videojob", 50)
    for vj in vjs:
        vj["metadata"].pop("managedFields", None)
    assert held([compact(v) for v in vjs]) < 0.65 * held(vjs)
