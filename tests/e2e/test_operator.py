"""The operator against a real API server, Job controller and scheduler.

Stage pods run the scripted worker (scripted_worker.py): the prompt tells it to sleep, fail
permanently or transiently in a given stage, so each failure path is exercised for real.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from kubernetes import watch

import videojobs as vjs
from kubetest import Cluster, wait_for, wait_gone
from operator_support import Operator, wait_until

pytestmark = pytest.mark.e2e

STAGES = ["plan", "keyframes", "segments", "stitch", "publish"]
FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}


def jobs_of(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    items: list[Any] = cluster.batch.list_namespaced_job(
        namespace, label_selector=f"videojob.dev/name={name}").items
    return items


def pods_of(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    items: list[Any] = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"videojob.dev/name={name}").items
    return items


def events_of(cluster: Cluster, namespace: str, name: str) -> list[str]:
    evs = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=VideoJob")
    # resourceVersion orders them; timestamps have only one-second resolution
    return [e.reason for e in sorted(evs.items, key=lambda e: int(e.metadata.resource_version))]


def test_videojob_runs_every_stage_as_an_owned_job(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "sunset", prompt="a coastal city at sunset",
                         scenes=3, **FAST)
    done = vjs.wait(cluster, namespace, "sunset", vjs.phase_is("Succeeded", "Failed"))
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == 100
    assert [s["phase"] for s in status["stages"]] == ["Succeeded"] * 5
    assert status["outputURI"].endswith(f"/{namespace}/sunset/{created['metadata']['uid']}"
                                         "/output.mp4")
    assert status["output"]["bytes"] == 1234  # what publish reported in its termination message
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert status["effective"]["scenes"] == 3 and status["effective"]["retryLimit"] == 3

    jobs = {j.metadata.labels["videojob.dev/stage"]: j for j in jobs_of(cluster, namespace,
                                                                          "sunset")}
    assert set(jobs) == set(STAGES)
    uid = created["metadata"]["uid"]
    for stage_name, job in jobs.items():
        (owner,) = job.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("VideoJob", "sunset", uid)
        assert owner.controller and owner.block_owner_deletion
        assert job.metadata.name.startswith(f"sunset-{stage_name}-")
        assert job.spec.template.spec.restart_policy == "Never"
        assert job.spec.active_deadline_seconds == 900
        assert job.spec.template.metadata.labels["videojob.dev/stage"] == stage_name
        assert job.spec.template.metadata.labels["app.kubernetes.io/part-of"] == "videojob"
        rules = job.spec.pod_failure_policy.rules
        assert rules[0].action == "FailJob" and rules[0].on_exit_codes.values == [42]
        assert rules[1].action == "Ignore" and rules[1].on_pod_conditions[0].type == (
            "DisruptionTarget")
        limits = job.spec.template.spec.containers[0].resources.limits or {}
        if stage_name in ("keyframes", "segments"):
            assert limits == {"nvidia.com/gpu": "1"}
            assert any(t.key == "nvidia.com/gpu" for t in job.spec.template.spec.tolerations)
        else:
            assert "nvidia.com/gpu" not in limits
    segments = jobs["segments"].spec
    assert (segments.completion_mode, segments.completions, segments.parallelism) == (
        "Indexed", 3, 3)
    assert jobs["segments"].spec.backoff_limit_per_index == 3
    if cluster.local:
        starts = Counter((s, i) for s, i, e in running_operator.runs(uid) if e == "start")
        assert set(starts.values()) == {1}, starts  # no stage ran twice
        assert len(starts) == 4 + 3
    reasons = events_of(cluster, namespace, "sunset")
    assert reasons[0] == "Created" and reasons[-1] == "Succeeded"
    assert reasons.count("StageStarted") == 5 and reasons.count("StageSucceeded") == 5
    table = cluster.kubectl("get", "vj", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE", "OUTPUT"]
    assert table[1].split()[:4] == ["sunset", "Succeeded", "100", "publish"]
