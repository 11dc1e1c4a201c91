from __future__ import annotations

from typing import Any

import pytest

from videojob_operator.api import VideoJobSpec
from videojob_operator.config import Defaults, OperatorConfig, effective
from videojob_operator.jobs import PERMANENT_ERROR_EXIT_CODE, job_name, stage_job


def build(stage: str, **spec: Any) -> dict[str, Any]:
    config = OperatorConfig(defaults=Defaults(gpu_node_selector={"pool": "gpu"}))
    s = VideoJobSpec.model_validate({"prompt": "x", **spec})
    eff = effective(s, config, "ns", "clip", "uid-1")
    return stage_job(namespace="ns", videojob="clip", uid="uid-1", stage=stage,  # type: ignore[arg-type]
                     spec=s, eff=eff, pool="gpu",
                    now="2026-01-01T12:00:00.000000Z", redis_url="redis://r:6379/0",
                     service_account="worker", extra_env={"X": "1"})


def test_names_are_deterministic_bounded_and_per_object() -> None:
    assert job_name("clip", "uid-1", "plan") == job_name("clip", "uid-1", "plan")
    assert job_name("clip", "uid-1", "plan") != job_name("clip", "uid-2", "plan")
    long = job_name("x" * 250, "uid-1", "keyframes")
    assert len(long) <= 63 and long.endswith("-keyframes-" + long.rsplit("-", 1)[1])


def test_job_is_owned_labelled_and_retried_per_index() -> None:
    job = build("plan", retry={"limit": 5}, timeouts={"stageSeconds": 77})
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob", "name": "clip",
                     "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}
    labels = job["metadata"]["labels"]
    assert labels["videojob.dev/name"] == "clip" and labels["videojob.dev/stage"] == "plan"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    spec = job["spec"]
    assert spec["backoffLimitPerIndex"] == 5 and spec["backoffLimit"] == 5
    assert spec["activeDeadlineSeconds"] == 77
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [PERMANENT_ERROR_EXIT_CODE]
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}


def test_segments_is_indexed_one_per_scene_in_parallel() -> None:
    spec = build("segments", scenes=6)["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 6, 6)


@pytest.mark.parametrize("stage", ["keyframes", "segments"])
def test_gpu_stages_request_gpus_and_merge_placement(stage: str) -> None:
    job = build(stage, gpu={"count": 2, "nodeSelector": {"gpu-type": "a100"},
                            "tolerations": [{"key": "dedicated", "operator": "Exists"}]})
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert pod["nodeSelector"] == {"pool": "gpu", "gpu-type": "a100"}
    keys = [t.get("key") for t in pod["tolerations"]]
    assert keys == ["nvidia.com/gpu", "dedicated"]


@pytest.mark.parametrize("stage", ["plan", "stitch", "publish"])
def test_cpu_stages_request_no_gpu(stage: str) -> None:
    pod = build(stage)["spec"]["template"]["spec"]
    assert "resources" not in pod["containers"][0]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_pods_are_restricted_compliant() -> None:
    pod = build("segments")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = pod["containers"][0]["securityContext"]
    assert c["allowPrivilegeEscalation"] is False and c["capabilities"] == {"drop": ["ALL"]}


def test_environment_contract() -> None:
    env = {e["name"]: e for e in build("segments")["spec"]["template"]["spec"]["containers"][0][
        "env"]}
    assert {"VIDEOJOB_NAMESPACE", "VIDEOJOB_NAME", "VIDEOJOB_UID", "VIDEOJOB_STAGE",
            "VIDEOJOB_SPEC", "VIDEOJOB_ARTIFACT_ROOT", "VIDEOJOB_OUTPUT_URI",
            "VIDEOJOB_REDIS_URL", "VIDEOJOB_POD_NAME", "VIDEOJOB_FAILURE_COUNT", "X"} <= set(env)
    import json

    spec = json.loads(env["VIDEOJOB_SPEC"]["value"])
    assert spec["scenes"] == 4 and spec["backend"] == "procedural"
    assert spec["output"]["uri"].endswith("/ns/clip/uid-1/output.mp4")
    assert spec["resolution"] == "1280x720" and spec["prompt"] == "x"


def test_worker_secrets_come_from_secret_refs_and_volumes_are_added() -> None:
    spec = VideoJobSpec.model_validate({"prompt": "p"})
    eff = effective(spec, OperatorConfig(), "ns", "clip", "u1")
    job = stage_job(namespace="ns", videojob="clip", uid="u1", stage="stitch", spec=spec,
                    eff=eff, pool="cpu", now="t",
                    redis_url="redis://:secret@r:6379/0", service_account="videojob-worker",
                    extra_env={}, secret_env={"VIDEOJOB_REDIS_URL": ("redis", "url")},
                    volumes=[{"name": "gcs", "secret": {"secretName": "gcs-key"}}],
                    volume_mounts=[{"name": "gcs", "mountPath": "/var/run/gcs"}])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    redis = [e for e in container["env"] if e["name"] == "VIDEOJOB_REDIS_URL"]
    assert redis == [{"name": "VIDEOJOB_REDIS_URL",
                      "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}}]
    assert "secret@" not in str(job)  # no credential in the Job's spec
    assert [v["name"] for v in pod["volumes"]] == ["scratch", "gcs"]
    assert container["volumeMounts"][-1] == {"name": "gcs", "mountPath": "/var/run/gcs"}
