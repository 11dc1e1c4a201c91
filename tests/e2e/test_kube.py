"""The operator's direct API writes (kube.py) against the real API server: the same objects,
answers and errors as the generated client's methods, authenticated with a ServiceAccount token
as the operator is in a cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from videojob_operator.api import GROUP, PLURAL, VERSION
from videojob_operator.kube import Kube
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import TEST_IMAGE, Cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def kube(cluster: Cluster, crds: None, namespace: str) -> Iterator[Kube]:
    """A Kube for a ServiceAccount allowed Jobs, VideoJobs and Events in `namespace` only."""
    core = cluster.core
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="writer")))
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "writer"},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]},
                  {"apiGroups": [GROUP], "resources": [PLURAL, f"{PLURAL}/status"],
                   "verbs": ["*"]},
                  {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": namespace}]})
    token = core.create_namespaced_service_account_token("writer", namespace,
                                                         client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
    admin = cluster.api.configuration
    cfg = client.Configuration(host=admin.host)
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.api_key = {"authorization": token.status.token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(cfg) as api:
        yield Kube(api)


def job_manifest(name: str) -> dict[str, object]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {"app": "kube-test"}},
            "spec": {"suspend": True, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": TEST_IMAGE,
                                "command": ["true"]}]}}}}


def test_job_create_patch_delete(cluster: Cluster, namespace: str, kube: Kube) -> None:
    created = kube.create_job(namespace, job_manifest("one"))
    assert created["metadata"]["uid"]
    assert created["spec"]["suspend"] is True
    read = cluster.batch.read_namespaced_job("one", namespace)
    assert read.metadata.uid == created["metadata"]["uid"]

    with pytest.raises(ApiException) as exists:
        kube.create_job(namespace, job_manifest("one"))
    assert exists.value.status == 409
    assert "already exists" in (exists.value.body or "")

    patched = kube.patch_job(namespace, "one", {
        "metadata": {"annotations": {"videojob.dev/admitted-at": "now"}},
        "spec": {"suspend": False, "parallelism": 2}})
    assert patched["spec"]["suspend"] is False
    assert patched["spec"]["parallelism"] == 2
    assert patched["metadata"]["annotations"]["videojob.dev/admitted-at"] == "now"
    with pytest.raises(ApiException) as stale:  # a stale resourceVersion is refused
        kube.patch_job(namespace, "one", {
            "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
            "spec": {"parallelism": 3}})
    assert stale.value.status == 409

    kube.delete_job(namespace, "one", "Foreground")
    after = cluster.batch.read_namespaced_job("one", namespace)
    # Foreground: the Job stays, marked, until its pods are gone.
    assert after.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in (after.metadata.finalizers or [])
    with pytest.raises(ApiException) as missing:
        kube.delete_job(namespace, "never-made", "Foreground")
    assert missing.value.status == 404


def test_invalid_job_names_the_field(namespace: str, kube: Kube) -> None:
    bad = job_manifest("two")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # type: ignore[index]
    with pytest.raises(ApiException) as invalid:
        kube.create_job(namespace, bad)
    assert invalid.value.status == 422
    assert "spec.template.spec.restartPolicy" in (invalid.value.body or "")


def test_videojob_patches_and_events(cluster: Cluster, namespace: str, kube: Kube,
                                     no_session_operator: None) -> None:
    # No operator runs meanwhile: nothing else writes the VideoJob.
    vj = vjs.create(cluster, namespace, "vj", prompt="a test", suspend=True)
    version = vj["metadata"]["resourceVersion"]

    marked = kube.patch_videojob(namespace, "vj", {"metadata": {
        "finalizers": ["videojob.dev/cancel"], "resourceVersion": version}})
    assert marked["metadata"]["finalizers"] == ["videojob.dev/cancel"]
    status = kube.patch_videojob_status(namespace, "vj", {"status": {
        "phase": "Running", "message": "one"}})
    assert status["status"] == {"phase": "Running", "message": "one"}
    # A merge patch: null removes a field.
    cleared = kube.patch_videojob_status(namespace, "vj", {"status": {"message": None}})
    assert cleared["status"] == {"phase": "Running"}
    with pytest.raises(ApiException) as stale:
        kube.patch_videojob_status(namespace, "vj", {"metadata": {"resourceVersion": version},
                                                     "status": {"phase": "Failed"}})
    assert stale.value.status == 409
    with pytest.raises(ApiException) as invalid:
        kube.patch_videojob_status(namespace, "vj", {"status": {"phase": "Sideways"}})
    assert invalid.value.status == 422
    assert "status.phase" in (invalid.value.body or "")

    event = kube.create_event(namespace, {
        "metadata": {"generateName": "vj.", "namespace": namespace},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                           "name": "vj", "namespace": namespace, "uid": vj["metadata"]["uid"]},
        "type": "Normal", "reason": "Tested", "message": "by test_kube"})
    listed = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={vj['metadata']['uid']}").items
    assert [e.reason for e in listed] == ["Tested"]
    assert listed[0].metadata.name == event["metadata"]["name"]
    kube.patch_videojob(namespace, "vj", {"metadata": {"finalizers": None}})


def test_token_is_sent_and_checked(namespace: str, kube: Kube) -> None:
    # The ServiceAccount's Role covers its own namespace only: elsewhere the API server
    # refuses it by name, which it can only do if the token went with the request.
    with pytest.raises(ApiException) as forbidden:
        kube.create_job("default", job_manifest("three"))
    assert forbidden.value.status == 403
    assert f"system:serviceaccount:{namespace}:writer" in (forbidden.value.body or "")
