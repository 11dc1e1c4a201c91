from __future__ import annotations

import re
from typing import Any

import pytest

from videojob_common.pipeline import STAGES
from videojob_operator.api import VideoJobSpec
from videojob_operator.config import Defaults, OperatorConfig, effective
from videojob_operator.jobs import (
    ANNOTATION_NAME,
    MAX_INDEX,
    PERMANENT_ERROR_EXIT_CODE,
    job_name,
    name_label,
    owner_name,
    stage_job,
)

# What the API server checks (k8s.io/apimachinery validation): a DNS label (a pod's hostname,
# which an Indexed Job sets to `<job>-<index>`), a label value, a DNS subdomain (a Job's name and
# any VideoJob's).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# Valid VideoJob names at the edges: the longest, one of 63 characters, dotted, digits only.
NAMES = ["a", "clip", "dotted.name", "a" * 50, "b" * 63, "c" * 64, "x" * 253,
         ("d." * 126) + "d", "0", "a-b.c-d", "9" * 100]


def build(stage: str, *, name: str = "clip", **spec: Any) -> dict[str, Any]:
    config = OperatorConfig(defaults=Defaults(gpu_node_selector={"pool": "gpu"}))
    s = VideoJobSpec.model_validate({"prompt": "x", **spec})
    eff = effective(s, config, "ns", name, "uid-1")
    return stage_job(namespace="ns", videojob=name, uid="uid-1", stage=stage,  # type: ignore[arg-type]
                     spec=s, eff=eff, pool="gpu",
                    now="2026-01-01T12:00:00.000000Z", redis_url="redis://r:6379/0",
                     service_account="worker", extra_env={"X": "1"})


def test_names_are_deterministic_bounded_and_per_object() -> None:
    assert job_name("clip", "uid-1", "plan") == job_name("clip", "uid-1", "plan")
    assert job_name("clip", "uid-1", "plan") != job_name("clip", "uid-2", "plan")
    long = job_name("x" * 250, "uid-1", "keyframes")
    assert len(long) <= 63 and long.endswith("-keyframes-" + long.rsplit("-", 1)[1])


@pytest.mark.parametrize("name", NAMES)
def test_any_valid_videojob_name_gives_jobs_the_api_server_accepts(name: str) -> None:
    assert len(name) <= 253
    for stage in STAGES:
        job = build(stage, name=name, scenes=32)
        meta, pod_meta = job["metadata"], job["spec"]["template"]["metadata"]
        hostname = f"{meta['name']}-{MAX_INDEX}"  # the last scene's pod
        assert len(hostname) <= 63 and DNS_LABEL.fullmatch(hostname), hostname
        for value in [*meta["labels"].values(), *pod_meta["labels"].values()]:
            assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
        # The whole name is kept, and is what the operator files the Job and its pods under.
        assert meta["annotations"][ANNOTATION_NAME] == name
        assert owner_name(meta) == owner_name(pod_meta) == name
        assert meta["ownerReferences"][0]["name"] == name


def test_long_names_stay_apart() -> None:
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert name_label(a) != name_label(b)
    assert name_label("clip") == "clip"
    assert job_name("a.b", "uid-1", "plan") == "a-b-plan-" + job_name("c", "uid-1", "plan")[-5:]
    # A Job of an older operator (no annotation) is still filed under its VideoJob.
    assert owner_name({"labels": {"videojob.dev/name": "clip"}}) == "clip"
    assert owner_name({"labels": {"other": "x"}, "annotations": {ANNOTATION_NAME: "x"}}) is None


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


def test_webhooks_stay_out_of_the_stage_pods() -> None:
    """spec.notify is the operator's to call; a receiver's URL may carry its token."""
    spec = VideoJobSpec.model_validate({"prompt": "p", "notify": [
        {"url": "https://hooks.example.com/T0KEN", "events": ["Succeeded"],
         "secretRef": {"name": "hooks", "key": "secret"}}]})
    eff = effective(spec, OperatorConfig(), "ns", "clip", "u1")
    job = stage_job(namespace="ns", videojob="clip", uid="u1", stage="plan", spec=spec,
                    eff=eff, pool="cpu", now="t", redis_url=None,
                    service_account="videojob-worker", extra_env={}, secret_env={},
                    volumes=[], volume_mounts=[])
    assert "T0KEN" not in str(job) and "hooks" not in str(job)
