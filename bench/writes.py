"""What one API request costs the API server and etcd, measured alone.

On a testbed cluster (testbed.py) with nothing else running, each kind of request below is made
`--requests` times from 8 threads at once, and the CPU seconds kube-apiserver and etcd spent
meanwhile (/proc/<pid>/stat), divided by the count, is its cost. It says which of the operator's
writes are dear: bench/orchestration.py shows the API server as the largest part of what the
operator run costs beyond the floor.

The VideoJobs are created suspended with no operator running, so nothing else writes them; the
status written is that of a VideoJob that ran to the end (3 KB), taken from a first run of one
with the operator. `videojob_*_no_cel` repeats the VideoJob writes with the CRD's CEL rules
removed; `thing_*` uses a CRD with no schema at all (preserve-unknown-fields), for comparison.
`job_admission_patch_strategic` and `_merge` are an admission's patch of a stage Job (the
planner's manifest; an annotation and the parallelism, the Job kept suspended so that no pod
starts) as a strategic merge patch and as a JSON merge patch, in turns.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from bench.report import describe, save
from bench.testbed import (
    GROUP,
    NO_WORK,
    PLURAL,
    REPO,
    VERSION,
    Testbed,
    parallel,
    process_cpu,
    testbed,
    wait_until,
)
from localcluster import controlplane
from videojob_common.pipeline import Phase

PARTS = ("kube-apiserver", "etcd")
OBJECTS = 100


def server_cpu(bed: Testbed) -> dict[str, float]:
    out = {}
    for name in PARTS:
        pid = controlplane.recorded_pid(bed.layout, name)
        out[name] = process_cpu(pid)[0] if pid is not None else 0.0
    return out


def cost(bed: Testbed, fn: Callable[[int], Any], count: int) -> dict[str, float]:
    """Milliseconds of CPU per call of fn(i), i in range(count), by part."""
    before = server_cpu(bed)
    parallel(fn, list(range(count)))
    after = server_cpu(bed)
    return {part: round((after[part] - before[part]) / count * 1000, 2) for part in PARTS}


def finished_status(bed: Testbed) -> dict[str, Any]:
    ns = bed.namespace("sample")
    op = bed.operator({}, track=False)
    op.start()
    try:
        bed.create_videojobs(ns, ["sample"], NO_WORK)

        def done() -> bool:
            vj = bed.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "sample")
            return bool((vj.get("status") or {}).get("phase") == Phase.SUCCEEDED)

        wait_until(done, 120, "the sample VideoJob to succeed")
    finally:
        op.stop()
    vj = bed.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "sample")
    status: dict[str, Any] = vj["status"]
    return status


def videojob_writes(bed: Testbed, status: dict[str, Any], count: int,
                    suffix: str) -> dict[str, dict[str, float]]:
    custom = bed.custom
    ns = bed.namespace("writes")
    names = [f"vj{i:03d}" for i in range(OBJECTS)]
    out = {f"videojob_create{suffix}": cost(bed, lambda i: custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                                     "metadata": {"name": names[i]},
                                     "spec": {**NO_WORK, "suspend": True}}), OBJECTS)}

    def full_status(i: int) -> None:
        body = copy.deepcopy(status)
        body["message"] = f"write {i}"
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL,
                                                     names[i % OBJECTS], {"status": body})

    out[f"videojob_status_patch{suffix}"] = cost(bed, full_status, count)
    out[f"videojob_status_patch_one_field{suffix}"] = cost(
        bed, lambda i: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, names[i % OBJECTS], {"status": {"message": f"m{i}"}}),
        count)
    out[f"videojob_metadata_patch{suffix}"] = cost(
        bed, lambda i: custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, names[i % OBJECTS],
            {"metadata": {"annotations": {"bench": str(i)}}}), count)
    out[f"videojob_get{suffix}"] = cost(
        bed, lambda i: custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                           names[i % OBJECTS]), count)
    return out


def job_writes(bed: Testbed, count: int) -> dict[str, dict[str, float]]:
    from videojob_operator import planner, views
    from videojob_operator.config import OperatorConfig
    from videojob_operator.kube import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Kube

    kube = Kube(bed.cluster.api)
    ns = bed.namespace("jobs")
    vj = {"metadata": {"name": "sample", "namespace": ns, "uid": "u", "generation": 1,
                       "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {**NO_WORK, "prompt": "a benchmark"}, "status": {}}
    manifest = json.loads(json.dumps(planner.plan(
        views.Observation(vj, [], [], [], dt.datetime.now(dt.UTC)),
        OperatorConfig()).create_jobs[0]))
    manifest["metadata"].pop("ownerReferences", None)
    names = [f"job{i:03d}" for i in range(OBJECTS)]

    def create(i: int) -> None:
        job = copy.deepcopy(manifest)
        job["metadata"]["name"] = names[i]
        job["spec"]["suspend"] = True
        kube.create_job(ns, job)

    parallel(create, list(range(OBJECTS)))

    def patch(content_type: str) -> Callable[[int], Any]:
        return lambda i: kube.request(
            "PATCH", f"/apis/batch/v1/namespaces/{ns}/jobs/{names[i % OBJECTS]}",
            {"metadata": {"annotations": {"videojob.dev/admitted-at": str(i)}},
             "spec": {"parallelism": 1 + i % 4}}, content_type=content_type)

    kinds = {"job_admission_patch_strategic": STRATEGIC_MERGE_PATCH,
             "job_admission_patch_merge": MERGE_PATCH}
    totals = {name: dict.fromkeys(PARTS, 0.0) for name in kinds}
    rounds = 4
    for _ in range(rounds):  # in turns, so drift hits both
        for name, content_type in kinds.items():
            for part, ms in cost(bed, patch(content_type), count // rounds).items():
                totals[name][part] += ms / rounds
    return {name: {part: round(ms, 2) for part, ms in parts.items()}
            for name, parts in totals.items()}


def without_cel(crd: dict[str, Any]) -> dict[str, Any]:
    def strip(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("x-kubernetes-validations", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    out = copy.deepcopy(crd)
    strip(out)
    return out


def schemaless_writes(bed: Testbed, status: dict[str, Any],
                      count: int) -> dict[str, dict[str, float]]:
    group = "bench.videojob.dev"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"things.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {
                                      "type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True}}}]}}
    manifest = bed.root / "things.yaml"
    manifest.write_text(yaml.safe_dump(crd))
    bed.cluster.kubectl("apply", "--server-side", "-f", str(manifest))
    custom = bed.custom
    ns = bed.namespace("things")

    def served() -> bool:
        try:
            custom.list_namespaced_custom_object(group, "v1", ns, "things")
        except Exception:
            return False
        return True

    wait_until(served, 60, "the schemaless CRD served")
    names = [f"t{i:03d}" for i in range(OBJECTS)]
    out = {"thing_create": cost(bed, lambda i: custom.create_namespaced_custom_object(
        group, "v1", ns, "things", {"apiVersion": f"{group}/v1", "kind": "Thing",
                                    "metadata": {"name": names[i]}, "spec": NO_WORK}), OBJECTS)}

    def full_status(i: int) -> None:
        body = copy.deepcopy(status)
        body["message"] = f"write {i}"
        custom.patch_namespaced_custom_object_status(group, "v1", ns, "things",
                                                     names[i % OBJECTS], {"status": body})

    out["thing_status_patch"] = cost(bed, full_status, count)
    core = bed.cluster.core
    parallel(lambda i: core.create_namespaced_config_map(
        ns, {"metadata": {"name": names[i]}, "data": {"status": ""}}), list(range(OBJECTS)))
    out["configmap_patch"] = cost(bed, lambda i: core.patch_namespaced_config_map(
        names[i % OBJECTS], ns, {"data": {"status": f"{i} {status}"}}), count)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--only", choices=["jobs"], help="only the stage Job patches")
    args = parser.parse_args()
    with testbed("writes", pods=50, gpus=10) as bed:
        if args.only == "jobs":
            results = {"machine": describe(), "requests": args.requests, "threads": 8,
                       "cpu_ms_per_request": job_writes(bed, args.requests)}
            save("writes_jobs", results)
            return 0
        status = finished_status(bed)
        time.sleep(1)  # the sample run's last writes and Events settle
        figures = videojob_writes(bed, status, args.requests, "")
        crd_path = REPO / "crds" / "videojob.dev_videojobs.yaml"
        stripped = bed.root / "videojobs-no-cel.yaml"
        stripped.write_text(yaml.safe_dump(without_cel(yaml.safe_load(crd_path.read_text()))))
        bed.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(stripped))
        try:
            figures.update(videojob_writes(bed, status, args.requests, "_no_cel"))
        finally:
            bed.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                                str(crd_path))
        figures.update(schemaless_writes(bed, status, args.requests))
        figures.update(job_writes(bed, args.requests))
    results = {"machine": describe(), "requests": args.requests, "threads": 8,
               "status_bytes": len(json.dumps(status)), "cpu_ms_per_request": figures}
    save("writes", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
