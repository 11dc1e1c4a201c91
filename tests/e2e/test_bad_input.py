"""Every spec the API server accepts either runs or fails fast, on a real API server.

- Any valid VideoJob name runs: 50 and 63 characters, longer, dotted (its Jobs' and pods' names
  are DNS labels with room for the index, the labels are valid, the whole name is annotated).
- A write the API server will never accept (here an admission policy denying the keyframes Job)
  fails the VideoJob at once, with the server's message and an Event, instead of a retry loop.
- A refusal that may pass (a ResourceQuota with no room for a Job) is retried with backoff and
  shown in the Degraded condition; once the quota goes, the VideoJob runs to the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from videojob_operator.jobs import ANNOTATION_NAME, name_label
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import wait_until

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}
NAMES = ["a" * 50, "b" * 63, "c" * 120, "dotted.name", ("x." * 40) + "x"]


def conditions(vj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (vj.get("status") or {}).get("conditions") or []}


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    evs = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=VideoJob")
    return [e.reason for e in evs.items]


def refused_before_anything_runs(cluster: Cluster, namespace: str,
                                 cases: dict[str, tuple[dict[str, Any], str]]) -> None:
    """Creates a VideoJob per case (name -> (spec, words)); each fails with InvalidSpec, its
    message holding the words, with a Warning Event, and no stage Job is ever created."""
    for name, (spec, _) in cases.items():
        vjs.create(cluster, namespace, name, **FAST, **spec)
    for name, (_, message) in cases.items():
        done = vjs.wait(cluster, namespace, name, vjs.phase_is("Failed", "Succeeded"),
                        timeout=60)
        status = done["status"]
        assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
        assert message in status["message"], (name, status["message"])
        wait_until(lambda n=name: "InvalidSpec" in reasons(cluster, namespace, n), 10,
                   f"the InvalidSpec Event of {name}")
    assert cluster.batch.list_namespaced_job(namespace).items == []


def test_long_and_dotted_names_run(cluster: Cluster, namespace: str,
                                   running_operator: Operator) -> None:
    for name in NAMES:
        vjs.create(cluster, namespace, name, prompt="x", scenes=3, **FAST)
    for name in NAMES:
        done = vjs.wait(cluster, namespace, name, vjs.phase_is("Succeeded", "Failed"),
                        timeout=180)
        assert done["status"]["phase"] == "Succeeded", (name, done["status"])
        jobs = cluster.batch.list_namespaced_job(
            namespace, label_selector=f"videojob.dev/name={name_label(name)}").items
        assert len(jobs) == 5, name
        assert {j.metadata.annotations[ANNOTATION_NAME] for j in jobs} == {name}


@pytest.fixture
def denied_keyframes(cluster: Cluster, namespace: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy, bound to the test's namespace only, that denies every
    keyframes Job: a write that can never pass."""
    name = f"deny-keyframes-{uuid.uuid4().hex[:6]}"
    docs = [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{
                      "apiGroups": ["batch"], "apiVersions": ["v1"],
                      "operations": ["CREATE"], "resources": ["jobs"]}]},
                  "validations": [{
                      "expression": "!has(object.metadata.labels) || "
                                    "!('videojob.dev/stage' in object.metadata.labels) || "
                                    "object.metadata.labels['videojob.dev/stage'] != "
                                    "'keyframes'",
                      "message": "keyframes Jobs are not allowed here (test policy)"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": namespace}}}}},
    ]
    text = yaml.safe_dump_all(docs)
    cluster.kubectl("apply", "-f", "-", input=text)

    def enforced() -> bool:
        # A policy takes a moment to load: probe it with a Job it must deny.
        probe = {"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": {"generateName": "probe-", "labels": {
                     "videojob.dev/stage": "keyframes"}},
                 "spec": {"suspend": True, "template": {"spec": {
                     "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox"}]}}}}
        try:
            made = cluster.batch.create_namespaced_job(namespace, probe, dry_run="All")
        except client.ApiException as e:
            return e.status == 422
        return made is None

    wait_until(enforced, 30, "the admission policy to be enforced")
    yield
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=text)


def test_a_job_the_api_server_will_never_accept_fails_the_videojob_at_once(
        cluster: Cluster, namespace: str, denied_keyframes: None,
        running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "denied", prompt="x", scenes=2, **FAST)
    failed = vjs.wait(cluster, namespace, "denied", vjs.phase_is("Failed", "Succeeded"),
                      timeout=60)
    status = failed["status"]
    assert status["phase"] == "Failed" and status["reason"] == "APIRejected", status
    assert "keyframes Jobs are not allowed here" in status["message"]
    assert "creating Job" in status["message"]
    assert conditions(failed)["Failed"]["status"] == "True"
    wait_until(lambda: "APIRejected" in reasons(cluster, namespace, "denied"), 10,
               "the APIRejected Event")
    # Failed is the end: no keyframes Job ever, and the plan stage's work is not repeated.
    jobs = cluster.batch.list_namespaced_job(namespace, label_selector="videojob.dev/name").items
    assert {j.metadata.labels["videojob.dev/stage"] for j in jobs} == {"plan"}


def test_a_refusal_that_may_pass_is_retried_and_shown_until_it_does(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"),
        spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"}))
    cluster.core.create_namespaced_resource_quota(namespace, quota)
    vjs.create(cluster, namespace, "held", prompt="x", scenes=2, **FAST)

    def degraded(vj: dict[str, Any]) -> bool:
        c = conditions(vj).get("Degraded") or {}
        return c.get("status") == "True"

    held = vjs.wait(cluster, namespace, "held", degraded, timeout=60,
                    what="the Degraded condition")
    c = conditions(held)["Degraded"]
    assert c["reason"] == "APIError" and "creating Job" in c["message"], c
    assert "quota" in c["message"], c
    assert held["status"].get("phase") != "Failed"
    cluster.core.delete_namespaced_resource_quota("no-jobs", namespace)
    # The backoff after a few refusals is seconds, not minutes (2, 4, 8, ... s).
    done = vjs.wait(cluster, namespace, "held", vjs.phase_is("Succeeded", "Failed"),
                    timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    c = conditions(done)["Degraded"]
    assert (c["status"], c["reason"]) == ("False", "Recovered"), c


def test_a_videojob_stays_in_its_namespaces_lane_of_the_storage(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    """Writing into another namespace's prefix, reading from it, and fetching from a server on
    loopback are refused before any stage runs, with the field named."""
    root = running_operator.workdir / "artifacts"
    other = root / "some-other-team"
    (other / "in").mkdir(parents=True, exist_ok=True)
    (other / "in" / "logo.png").write_bytes(b"\x89PNG")
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    cases = {
        "writes-elsewhere": ({"prompt": "x", "output": {"uri": f"{other.as_uri()}/stolen.mp4"}},
                             "spec.output.uri: "),
        "climbs-out": ({"prompt": "x", "output": {
            "uri": f"{root.as_uri()}/{namespace}/../some-other-team/x.mp4"}},
            "spec.output.uri: '.', '..' and empty path segments are not allowed"),
        "reads-elsewhere": ({"images": [f"{other.as_uri()}/in/logo.png"], "scenes": 1},
                            "spec.images[0]: "),
        "fetches-loopback": ({"images": ["http://127.0.0.1:9/a.png"], "scenes": 1},
                             "spec.images[0]: http(s) inputs are not enabled"),
    }
    refused_before_anything_runs(cluster, namespace, cases)
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before


def test_a_spec_over_a_limit_or_widening_placement_is_refused_with_the_limit_named(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    """The session's operator allows at most 8 GPUs per pod and a day in total (operator_process),
    and no tenant toleration."""
    cases = {
        "greedy": ({"gpu": {"count": 12}},
                   "spec.gpu.count: 12 is over this namespace's limit of 8 (operator "
                   "configuration limits.max_gpus_per_pod)"),
        "forever": ({"timeouts": {"totalSeconds": 200000}},
                    "spec.timeouts.totalSeconds: 200000 is over this namespace's limit of 86400"),
        "everywhere": ({"gpu": {"tolerations": [{"operator": "Exists"}]}},
                       "spec.gpu.tolerations[0]: a toleration without a key tolerates every "
                       "taint"),
    }
    refused_before_anything_runs(cluster, namespace,
                                 {n: ({"prompt": "x", **s}, m) for n, (s, m) in cases.items()})
