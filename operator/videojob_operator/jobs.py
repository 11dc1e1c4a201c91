"""The batch/v1 Job of each stage: name, ownership, labels, retries, deadlines, GPU placement.

Every stage Job is Indexed — `segments` with one index per scene running in parallel, the others
with a single index — so retries are counted per index (`backoffLimitPerIndex`, one scene's
failures never use up another's) and each pod learns its attempt from the
`batch.kubernetes.io/job-index-failure-count` annotation. See docs/contract.md for the worker's
side of the environment set here.
"""

from __future__ import annotations

import hashlib
import json
import re

from videojob_common.cache_entries import (
    CACHE_ENV,
    SCENES_ANNOTATION,
    SCENES_ENV,
    Instruction,
    scenes_text,
)

# The labels are shared with the archive and the plugin; the operator's modules import them from
# here, as before.
from videojob_common.labels import LABEL_NAME as LABEL_NAME
from videojob_common.labels import LABEL_POOL as LABEL_POOL
from videojob_common.labels import LABEL_STAGE as LABEL_STAGE
from videojob_common.labels import LABEL_UID as LABEL_UID
from videojob_common.pipeline import GPU_STAGES, PER_SCENE, Obj, Stage
from videojob_common.progress_auth import SECRET_KEY as TOKEN_KEY
from videojob_common.progress_auth import TOKEN_ENV

from .api import API_VERSION, KIND, EffectiveSpec, VideoJobSpec

PERMANENT_ERROR_EXIT_CODE = 42
# When the Job (re-)entered the admission queue (RFC 3339, microseconds): admission wait.
ANNOTATION_QUEUED_AT = "videojob.dev/queued-at"
# When admission last unsuspended it (RFC 3339, microseconds).
ANNOTATION_ADMITTED_AT = "videojob.dev/admitted-at"
CONTAINER = "worker"
SCRATCH = "/scratch"
# The VideoJob's name, whole, on each Job and pod (the name label may be shortened).
ANNOTATION_NAME = "videojob.dev/videojob"
DNS_LABEL = 63  # a pod's hostname and a label's value: at most 63 characters
MAX_INDEX = 31  # the last completion index (scenes: at most 32, api.py)
# An Indexed Job's pods are named `<job>-<index>` as their hostname, which must be a DNS label
# (no dots, at most 63 characters), so a Job's name leaves room for "-31".
MAX_JOB_NAME = DNS_LABEL - len(f"-{MAX_INDEX}")
_NOT_IN_LABEL = re.compile(r"[^a-z0-9-]")


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def job_name(videojob: str, uid: str, stage: str) -> str:
    """Deterministic per VideoJob *object*: a re-created VideoJob of the same name gets new Jobs,
    so it never adopts the old one's Jobs while they are still being deleted. Any valid VideoJob
    name (a DNS subdomain: up to 253 characters, dots allowed) gives a DNS label with room for
    the index: dots become dashes, and the name is cut to fit (the uid's hash keeps it apart)."""
    suffix = f"-{stage}-{_digest(uid, 5)}"
    base = _NOT_IN_LABEL.sub("-", videojob)[: MAX_JOB_NAME - len(suffix)].strip("-")
    return (base or "videojob") + suffix


def token_secret(namespace: str, name: str, token: str, owners: list[Obj]) -> Obj:
    """The Secret `name` a namespace's stage pods read their progress token from (one in each
    namespace, videojob_common.progress_auth). Immutable: the token of a namespace never
    changes. `owners`: the chart's ClusterRole, so that an uninstall takes it away."""
    meta: Obj = {"name": name, "namespace": namespace,
                 "labels": {"app.kubernetes.io/managed-by": "videojob-operator"}}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "immutable": True, "stringData": {TOKEN_KEY: token}}


def name_label(videojob: str) -> str:
    """The VideoJob's name as a label value: itself when it fits in 63 characters, else cut,
    with a hash of the whole name, so that two long names never share a value."""
    if len(videojob) <= DNS_LABEL:
        return videojob
    suffix = f"-{_digest(videojob, 10)}"
    return videojob[: DNS_LABEL - len(suffix)].rstrip("-._") + suffix


def owner_name(meta: Obj) -> str | None:
    """The VideoJob a Job or pod of ours belongs to (None: not ours): the annotation with the
    whole name, or, on Jobs created before it existed, the name label."""
    labels: dict[str, str] = meta.get("labels") or {}
    if LABEL_NAME not in labels:
        return None
    annotations: dict[str, str] = meta.get("annotations") or {}
    return annotations.get(ANNOTATION_NAME) or labels[LABEL_NAME]


def labels(videojob: str, uid: str, stage: Stage, pool: str | None = None) -> dict[str, str]:
    out = {
        LABEL_NAME: name_label(videojob),
        LABEL_STAGE: stage,
        LABEL_UID: uid,
        "app.kubernetes.io/name": "videojob-worker",
        "app.kubernetes.io/instance": name_label(videojob),
        "app.kubernetes.io/component": stage,
        "app.kubernetes.io/part-of": "videojob",
        "app.kubernetes.io/managed-by": "videojob-operator",
    }
    if pool:
        out[LABEL_POOL] = pool
    return out


def spec_json(spec: VideoJobSpec, eff: EffectiveSpec) -> str:
    """The effective spec the worker reads (VIDEOJOB_SPEC): the spec with defaults filled in,
    less `notify`: the webhooks are the operator's to call, and a receiver's URL may carry its
    token, which no stage pod's environment needs to hold; less `cache`: whether outputs are
    reused is the operator's decision, and the pod learns what to write from VIDEOJOB_CACHE."""
    doc = spec.model_dump(by_alias=True, exclude_none=True, exclude={"notify", "cache"})
    doc["scenes"] = eff.scenes
    doc["backend"] = eff.backend
    doc["output"] = {"uri": eff.output_uri}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def completions(stage: Stage, eff: EffectiveSpec) -> int:
    return eff.scenes if stage in PER_SCENE else 1


def stage_job(
    *,
    namespace: str,
    videojob: str,
    uid: str,
    stage: Stage,
    spec: VideoJobSpec,
    eff: EffectiveSpec,
    pool: str,
    now: str,
    redis_url: str | None,
    service_account: str,
    extra_env: dict[str, str],
    command: list[str] | None = None,
    secret_env: dict[str, tuple[str, str]] | None = None,
    volumes: list[Obj] | None = None,
    volume_mounts: list[Obj] | None = None,
    resources: dict[str, dict[str, str]] | None = None,
    scratch_size_limit: str | None = None,
    scenes: tuple[int, ...] | None = None,
    cache: Instruction | None = None,
    progress_secret: str = "",
) -> Obj:
    """A stage's Job. `scenes`: only these scenes (the others came from the cache): one pod
    each for segments, index k rendering scenes[k]; `cache`: the entries its pods write;
    `progress_secret`: the namespace's progress-token Secret (none: reports go unsigned)."""
    name = job_name(videojob, uid, stage)
    lbl = labels(videojob, uid, stage, pool)
    count = len(scenes) if scenes and stage in PER_SCENE else completions(stage, eff)
    gpu = stage in GPU_STAGES and eff.gpu_count > 0
    env: list[Obj] = [
        {"name": "VIDEOJOB_NAMESPACE", "value": namespace},
        {"name": "VIDEOJOB_NAME", "value": videojob},
        {"name": "VIDEOJOB_UID", "value": uid},
        {"name": "VIDEOJOB_STAGE", "value": stage},
        {"name": "VIDEOJOB_SPEC", "value": spec_json(spec, eff)},
        {"name": "VIDEOJOB_ARTIFACT_ROOT", "value": eff.artifact_root},
        {"name": "VIDEOJOB_OUTPUT_URI", "value": eff.output_uri},
        {"name": "VIDEOJOB_REDIS_URL", "value": redis_url or ""},
        {"name": "TMPDIR", "value": SCRATCH},
        {"name": "VIDEOJOB_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "VIDEOJOB_FAILURE_COUNT", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"}}},
    ]
    if redis_url and progress_secret:
        # The namespace's token, to sign its progress (videojob_common.progress_auth), from the
        # Secret the operator writes before the first stage there: a reference, never the
        # value. Optional: a pod whose Secret is gone still runs; only its progress is dropped.
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
            "name": progress_secret, "key": TOKEN_KEY, "optional": True}}})
    if cache is not None:
        env.append({"name": CACHE_ENV, "value": cache.to_json()})
    if scenes:
        # The scene table travels with the Job, immutable with it (docs/reuse.md).
        env.append({"name": SCENES_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{SCENES_ANNOTATION}']"}}})
    env += [{"name": k, "value": v} for k, v in sorted(extra_env.items())]
    # A variable from a Secret replaces the plain value of the same name.
    secrets = secret_env or {}
    env = [e for e in env if e["name"] not in secrets]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": n, "key": key}}}
            for k, (n, key) in sorted(secrets.items())]
    container: Obj = {
        "name": CONTAINER,
        "image": eff.worker_image,
        "args": [stage],
        "env": env,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # Scratch space for a read-only root filesystem. Not mounted over /tmp: on the local
        # cluster pods see the host's files, and a file:// storage root may live under /tmp.
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}, *(volume_mounts or [])],
    }
    if command:
        container["command"] = list(command)
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,  # the worker never calls the Kubernetes API
        # The worker stops within 2 s of SIGTERM (contract); keep deletion snappy.
        "terminationGracePeriodSeconds": 10,
        # The user is the image's own (the worker image's is numeric, 65532): the kubelet then
        # verifies it is not root and refuses to start a container whose image would run as
        # root. Setting runAsUser here would run any image, a root one too, as that user.
        # fsGroup: a fresh shared volume (the chart's artifacts claim) is root's; the kubelet
        # makes it writable by the group, once (OnRootMismatch: no recursive walk of a full one).
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": 65532,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": (
            {"sizeLimit": scratch_size_limit} if scratch_size_limit else {})}, *(volumes or [])],
    }
    if resources:  # the administrator's, per stage (limits.PodResources)
        container["resources"] = {k: dict(v) for k, v in resources.items()}
    if gpu:
        own = container.setdefault("resources", {})
        own["limits"] = {**own.get("limits", {}), eff.gpu_resource_name: str(eff.gpu_count)}
        if eff.gpu_node_selector:
            pod_spec["nodeSelector"] = dict(eff.gpu_node_selector)
        if eff.gpu_tolerations:
            pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True)
                                       for t in eff.gpu_tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": lbl,
            "annotations": {ANNOTATION_QUEUED_AT: now, ANNOTATION_NAME: videojob},
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": videojob, "uid": uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            # Created suspended and admitted from the pool's queue (admission_loop.py), the way
            # Kueue admits Jobs; `parallelism` is set at admission to what fits (or `admitted`).
            "suspend": True,
            "completionMode": "Indexed",
            "completions": count,
            "parallelism": count,
            "backoffLimitPerIndex": eff.retry_limit,
            "backoffLimit": eff.retry_limit * count,
            # One scene failing for good fails the stage at once, not after the others finish.
            "maxFailedIndexes": 0,
            "activeDeadlineSeconds": eff.stage_seconds,
            # Replacement pods only after the old one is gone: never two pods of one index.
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {"rules": [
                # The worker's "permanent error": bad input will not get better with retries.
                {"action": "FailJob", "onExitCodes": {
                    "containerName": CONTAINER, "operator": "In",
                    "values": [PERMANENT_ERROR_EXIT_CODE]}},
                # Drain, preemption, eviction: not the stage's fault, does not use up retries.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {
                "metadata": {"labels": lbl, "annotations": {
                    ANNOTATION_NAME: videojob,
                    **({SCENES_ANNOTATION: scenes_text(scenes)} if scenes else {})}},
                "spec": pod_spec,
            },
        },
    }


def admitted(manifest: Obj, pods: int, now: str) -> Obj:
    """A stage Job's manifest admitted as it is created: `pods` of it may run at once."""
    meta, spec = manifest["metadata"], manifest["spec"]
    return {**manifest,
            "metadata": {**meta, "annotations": {**meta["annotations"],
                                                 ANNOTATION_ADMITTED_AT: now}},
            "spec": {**spec, "suspend": False, "parallelism": pods}}
