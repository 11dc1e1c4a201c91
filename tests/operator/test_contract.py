"""The operator's stage pods and the worker agree on the contract (docs/contract.md)."""

from __future__ import annotations

from typing import Any

import pytest

from videojob_common.pipeline import STAGES
from videojob_operator.api import VideoJobSpec
from videojob_operator.config import OperatorConfig, effective
from videojob_operator.jobs import PERMANENT_ERROR_EXIT_CODE, stage_job
from videojob_worker import runner
from videojob_worker.environment import read_environment


def pod_env(stage: str, spec: dict[str, Any], failures: str = "") -> dict[str, str]:
    """The environment a stage pod gets, with the downward-API values Kubernetes fills in."""
    s = VideoJobSpec.model_validate(spec)
    eff = effective(s, OperatorConfig(storage_root="gs://bucket/root"), "ns", "clip", "uid-1")
    job = stage_job(namespace="ns", videojob="clip", uid="uid-1", stage=stage,  # type: ignore[arg-type]
                    spec=s, eff=eff, pool="gpu",
                    now="2026-01-01T12:00:00.000000Z", redis_url="redis://r:6379/0",
                    service_account="default", extra_env={})
    env: dict[str, str] = {}
    for var in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var["name"] == "VIDEOJOB_POD_NAME":
            env[var["name"]] = "clip-segments-x-0-abcde"
        elif var["name"] == "VIDEOJOB_FAILURE_COUNT":
            env[var["name"]] = failures
    if stage == "segments":
        env["JOB_COMPLETION_INDEX"] = "2"
    return env


@pytest.mark.parametrize("stage", STAGES)
def test_worker_reads_what_the_operator_sets(stage: str) -> None:
    spec = {"prompt": "a harbour at dawn", "scenes": 3, "durationSeconds": 6, "fps": 12,
            "resolution": "640x360", "transition": "fade", "seed": 9,
            "images": [], "retry": {"limit": 2}}
    env = read_environment(stage, pod_env(stage, spec))
    assert (env.identity.namespace, env.identity.name, env.identity.uid) == ("ns", "clip",
                                                                              "uid-1")
    assert env.stage == stage
    assert env.artifact_root == "gs://bucket/root"
    assert env.output_uri == "gs://bucket/root/ns/clip/uid-1/output.mp4"
    assert env.redis_url == "redis://r:6379/0"
    assert env.index == (2 if stage == "segments" else None)
    assert (env.spec.scenes, env.spec.fps, env.spec.seed) == (3, 12, 9)


def test_attempt_comes_from_the_job_controllers_failure_count() -> None:
    env = read_environment("plan", pod_env("plan", {"prompt": "x"}, failures="2"))
    assert env.attempt == 3
    assert read_environment("plan", pod_env("plan", {"prompt": "x"})).attempt is None


def test_permanent_error_exit_code_is_the_one_the_pod_failure_policy_fails_on() -> None:
    assert runner.EXIT_PERMANENT == PERMANENT_ERROR_EXIT_CODE
