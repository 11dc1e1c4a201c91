"""The Helm chart on the cluster: its output is accepted by the API server, and `helm install`
runs the operator as a pod (in-cluster configuration, the mounted service-account token) that
completes a VideoJob with the real worker; `helm uninstall` leaves no operator object behind."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.chart import (
    EVERYTHING,
    deep_merge,
    finalizer_policy,
    helm,
    template_text,
    wait_for_finalizer_policy,
)
from videojob_testkit.kube import Cluster, wait_gone
from videojob_testkit.processes import RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e
RELEASE_KINDS = ("deployments", "replicasets", "pods", "services", "configmaps",
                 "serviceaccounts", "roles", "rolebindings", "networkpolicies", "jobs",
                 "secrets")
CLUSTER_KINDS = ("clusterroles", "clusterrolebindings", "validatingadmissionpolicies",
                 "validatingadmissionpolicybindings", "mutatingadmissionpolicies",
                 "mutatingadmissionpolicybindings")


@pytest.fixture
def release_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"videojob-system-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def monitoring_crds(cluster: Cluster) -> None:
    """The Prometheus Operator's real CRDs, so ServiceMonitor & co. are validated for real."""
    out = subprocess.run([str(REPO / "hack" / "monitoring-crds.sh")], capture_output=True,
                         text=True, check=True, timeout=300)
    crd_dir = Path(out.stdout.strip())
    for kind in ("servicemonitors", "podmonitors", "prometheusrules"):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                        str(crd_dir / f"monitoring.coreos.com_{kind}.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/servicemonitors.monitoring.coreos.com",
                    "crd/podmonitors.monitoring.coreos.com",
                    "crd/prometheusrules.monitoring.coreos.com")


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rendered_chart_is_accepted_by_the_api_server(
        cluster: Cluster, crds: None, monitoring_crds: None, release_namespace: str,
        namespace: str, mode: str, tmp_path: Path) -> None:
    values = EVERYTHING if mode == "cluster-wide" else deep_merge(
        EVERYTHING, {"watch": {"namespaces": [namespace]}})
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(template_text(values, release="dry", namespace=release_namespace))
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    out = cluster.kubectl("apply", "--dry-run=server", "-f", str(rendered), check=False)
    assert out.returncode == 0, out.stderr
    accepted = [line for line in out.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), out.stdout
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"} <= kinds


def leftovers(cluster: Cluster, release: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    out = cluster.kubectl("get", ",".join(RELEASE_KINDS), "-A", "-l", selector, "-o", "name")
    out2 = cluster.kubectl("get", ",".join(CLUSTER_KINDS), "-l", selector, "-o", "name")
    return (out.stdout + out2.stdout).split()


def test_helm_install_runs_a_videojob_and_uninstall_leaves_nothing(
        cluster: Cluster, crds: None, redis_server: RedisServer, no_session_operator: None,
        release_namespace: str, namespace: str) -> None:
    if not cluster.local:
        pytest.skip("runs the operator image as the local cluster's node agent does")
    release = f"vj-{uuid.uuid4().hex[:5]}"
    storage = REPO / ".cluster" / "e2e" / f"helm-{release}"
    storage.mkdir(parents=True)  # the hostPath volume the stage pods share
    metrics_port, liveness_port = free_port(), free_port()
    # Redis with its URL in a Secret: the operator reads it in its namespace, stage pods in theirs.
    for ns in (release_namespace, namespace):
        cluster.core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="redis"),
            string_data={"redis-url": redis_server.url}))
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    chart = str(REPO / "helm" / "videojob-operator")
    sets = [f"watch.namespaces={{{namespace}}}", "redis.existingSecret=redis",
            f"storage.root=file://{storage}", f"storage.volume.hostPath.path={storage}",
            f"operator.metricsPort={metrics_port}",
            f"operator.livenessPort={liveness_port}"]
    install = helm("install", release, chart, kubeconfig, "-n", release_namespace, "--wait",
                   "--timeout=120s", *[a for s in sets for a in ("--set", s)], check=False)
    assert install.returncode == 0, install.stderr
    assert f"serves VideoJobs in: {namespace}" in install.stdout  # NOTES.txt

    (pod,) = cluster.core.list_namespaced_pod(
        release_namespace, label_selector=f"app.kubernetes.io/instance={release}").items
    assert pod.spec.service_account_name == release + "-videojob-operator"
    assert any(v.projected and any(s.service_account_token for s in v.projected.sources)
               for v in pod.spec.volumes)  # the token the in-cluster configuration uses

    def serving_metrics() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            return b"videojob_build_info" in r.read()

    try:
        wait_until(serving_metrics, 90, "the chart's operator serving /metrics")
    except AssertionError as e:
        report = operator_pod_report(cluster, release_namespace, release)
        raise AssertionError(f"{e}\n{report}") from None

    # Kubernetes 1.36: the chart's policy puts the finalizer on the VideoJob as it is stored,
    # once the API server has loaded it (until then the operator adds it).
    wait_for_finalizer_policy(cluster, namespace)
    created = vjs.create(cluster, namespace, "hello", prompt="a lighthouse at dawn", scenes=2,
                         durationSeconds=2, fps=8, resolution="160x90")
    assert created["metadata"]["finalizers"] == ["videojob.dev/cancel"]
    done = vjs.wait(cluster, namespace, "hello", vjs.phase_is("Succeeded", "Failed"), timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    output = Path(done["status"]["outputURI"].removeprefix("file://"))
    assert output.stat().st_size > 0 and output.is_relative_to(storage)
    jobs = cluster.batch.list_namespaced_job(namespace).items
    assert {j.spec.template.spec.service_account_name for j in jobs} == {"videojob-worker"}
    env = jobs[0].spec.template.spec.containers[0].env
    redis_env = next(e for e in env if e.name == "VIDEOJOB_REDIS_URL")
    assert redis_env.value_from.secret_key_ref.name == "redis"  # not the URL in plain text
    # The namespace's progress token: one Secret, owned by the chart's ClusterRole (below: gone
    # with the release).
    made = "app.kubernetes.io/managed-by=videojob-operator"
    (token,) = cluster.core.list_namespaced_secret(namespace, label_selector=made).items
    assert [(o.kind, o.name) for o in token.metadata.owner_references] == [
        ("ClusterRole", f"{release}-videojob-operator")]

    # Pools change at run time, without a restart: `helm upgrade` rewrites the ConfigMap.
    upgrade = helm("upgrade", release, chart, kubeconfig, "-n", release_namespace,
                   "--reuse-values", "--set", "pools.gpu.maxConcurrency=1", "--wait", check=False)
    assert upgrade.returncode == 0, upgrade.stderr

    def pool_max_is_one() -> bool:
        pool = vjs.custom(cluster).get_cluster_custom_object(
            "videojob.dev", "v1alpha1", "videojobpools", "gpu")
        return bool(pool["status"]["maxConcurrency"] == 1)

    wait_until(pool_max_is_one, 60, "gpu pool max 1 after the upgrade")
    (same,) = cluster.core.list_namespaced_pod(
        release_namespace, label_selector=f"app.kubernetes.io/instance={release}").items
    assert same.metadata.name == pod.metadata.name

    # Uninstalled with a VideoJob left: the pre-delete hook stops the operator and takes its
    # finalizer off, so the VideoJob stays but can be deleted without an operator (and with it
    # its namespace); nothing of the release is left, the hook's own objects included.
    assert "videojob.dev/cancel" in vjs.get(cluster, namespace, "hello")["metadata"]["finalizers"]
    uninstall = helm("uninstall", release, kubeconfig, "-n", release_namespace, "--wait",
                     "--timeout=120s", check=False)
    assert uninstall.returncode == 0, uninstall.stderr
    left = vjs.get(cluster, namespace, "hello")
    assert "videojob.dev/cancel" not in (left["metadata"].get("finalizers") or [])
    assert left["status"]["phase"] == "Succeeded"
    # The hook deleted the policy's binding first: a VideoJob created now gets no finalizer.
    late = vjs.create(cluster, namespace, "late", prompt="x")
    assert not late["metadata"].get("finalizers")
    vjs.delete(cluster, namespace, "late")
    wait_until(lambda: leftovers(cluster, release) == [], 60, "no object of the release left")
    vjs.delete(cluster, namespace, "hello")
    wait_gone(vjs.custom(cluster).get_namespaced_custom_object, timeout=30, what="VideoJob hello",
              group="videojob.dev", version="v1alpha1", namespace=namespace,
              plural="videojobs", name="hello")

    def pools_collected() -> bool:  # owned by the chart's ClusterRole, as the token's Secret
        pools = vjs.custom(cluster).list_cluster_custom_object(
            "videojob.dev", "v1alpha1", "videojobpools")
        return not pools["items"]

    wait_until(pools_collected, 60, "VideoJobPools garbage-collected")
    wait_until(lambda: not cluster.core.list_namespaced_secret(
        namespace, label_selector=made).items, 60, "the progress token's Secret garbage-collected")
    crd_names = {c.metadata.name for c in client.ApiextensionsV1Api(
        cluster.api).list_custom_resource_definition().items}
    assert {"videojobs.videojob.dev", "videojobpools.videojob.dev"} <= crd_names  # CRDs stay


def test_manifests_and_examples_are_accepted_by_the_api_server(
        cluster: Cluster, crds: None, monitoring_crds: None, namespace: str) -> None:
    # The plain manifests create their own namespace: a dry run needs it to exist already.
    ns = "videojob-system"
    if not cluster.core.list_namespace(field_selector=f"metadata.name={ns}").items:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    for f in ("videojob-operator.yaml", "monitoring.yaml"):
        out = cluster.kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                              "-f", str(REPO / "manifests" / f), check=False)
        assert out.returncode == 0, out.stderr
    examples = sorted((REPO / "examples").glob("*.yaml"))
    out = cluster.kubectl("apply", "--dry-run=server", "-n", namespace,
                          *[a for p in examples for a in ("-f", str(p))], check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(examples)


def operator_pod_report(cluster: Cluster, namespace: str, release: str) -> str:
    """The chart's operator pod: container statuses and logs (current and previous)."""
    out = []
    for pod in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={release}").items:
        out.append(f"pod {pod.metadata.name}: {pod.status.phase} "
                   f"{pod.status.container_statuses}")
        for previous in (False, True):
            logs = cluster.kubectl("logs", "-n", namespace, pod.metadata.name, "--tail=60",
                                   f"--previous={str(previous).lower()}", check=False)
            out.append(f"--- logs (previous={previous}):\n{logs.stdout}{logs.stderr}")
    return "\n".join(out)


def test_the_finalizer_policy_adds_the_finalizer_once_as_a_videojob_is_created(
        cluster: Cluster, crds: None, namespace: str) -> None:
    """The chart's MutatingAdmissionPolicy on the real API server (1.36), bound to the test's
    namespace: a VideoJob is created with the operator's finalizer, beside any of its own, and
    never twice (dry runs: admission runs in full, nothing is stored)."""
    release = f"map-{uuid.uuid4().hex[:5]}"
    body = yaml.safe_dump_all(finalizer_policy([namespace], release=release))
    cluster.kubectl("apply", "-f", "-", input=body)

    def create(name: str, finalizers: list[str] | None = None) -> list[str]:
        meta: dict[str, Any] = {"name": name, **({"finalizers": finalizers} if finalizers
                                                 else {})}
        vj = vjs.custom(cluster).create_namespaced_custom_object(
            vjs.GROUP, vjs.VERSION, namespace, vjs.PLURAL,
            {"apiVersion": f"{vjs.GROUP}/{vjs.VERSION}", "kind": "VideoJob", "metadata": meta,
             "spec": {"prompt": "x"}}, dry_run="All")
        return list(vj["metadata"].get("finalizers") or [])

    try:
        wait_until(lambda: create("probe") != [], 30, "the finalizer policy to be enforced")
        assert create("plain") == ["videojob.dev/cancel"]
        assert create("own", ["example.com/keep"]) == ["example.com/keep", "videojob.dev/cancel"]
        assert create("already", ["videojob.dev/cancel"]) == ["videojob.dev/cancel"]
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=body)


def test_the_admission_policy_refuses_at_apply_what_the_operator_would_fail(
        cluster: Cluster, crds: None, namespace: str) -> None:
    """The chart's ValidatingAdmissionPolicy on the real API server, bound to the test's
    namespace only: an output outside the namespace's prefix, one that climbs out of it and an
    http input (httpInputs off) are refused at create, naming the field; a good one passes."""
    release = f"vap-{uuid.uuid4().hex[:5]}"
    text = template_text({"watch": {"namespaces": [namespace]},
                          "storage": {"root": "gs://media/videojob"}}, release=release)
    policy = [d for d in yaml.safe_load_all(text)
              if d and d["kind"].startswith("ValidatingAdmissionPolicy")
              and d["metadata"]["name"].endswith("-videojobs")]
    assert len(policy) == 2
    body = yaml.safe_dump_all(policy)
    cluster.kubectl("apply", "-f", "-", input=body)
    prefix = f"gs://media/videojob/{namespace}/"

    def create(name: str, **spec: Any) -> str:
        """'' if the API server accepts the VideoJob (dry run: nothing is stored), else why."""
        try:
            vjs.custom(cluster).create_namespaced_custom_object(
                vjs.GROUP, vjs.VERSION, namespace, vjs.PLURAL,
                {"apiVersion": f"{vjs.GROUP}/{vjs.VERSION}", "kind": "VideoJob",
                 "metadata": {"name": name}, "spec": {"prompt": "x", **spec}}, dry_run="All")
        except client.ApiException as e:
            assert e.status == 422, e
            return str(e.body)
        return ""

    try:
        wait_until(lambda: create("probe", output={"uri": "gs://elsewhere/x.mp4"}) != "", 30,
                   "the admission policy to be enforced")
        assert f"spec.output.uri: must be under {prefix}" in create(
            "elsewhere", output={"uri": "gs://media/videojob/another-team/x.mp4"})
        assert "spec.output.uri: must be under" in create(
            "climbs", output={"uri": f"{prefix}../another-team/x.mp4"})
        assert "spec.output.uri: must be under" in create(
            "escaped", output={"uri": f"{prefix}%2e%2e/another-team/x.mp4"})
        assert "http(s) inputs are not enabled" in create(
            "fetches", images=["http://127.0.0.1:9/a.png"], scenes=1)
        assert create("good", output={"uri": f"{prefix}out/x.mp4"}) == ""
        assert create("default") == ""
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=body)


def test_the_operators_jobs_run_only_the_worker_image_as_the_worker(
        cluster: Cluster, crds: None, release_namespace: str, namespace: str) -> None:
    """Cluster-wide mode: the chart's policy on the operator's own Jobs, on the real API server.
    The test acts as the operator's ServiceAccount (impersonation), with the chart's RBAC, which
    lets it create Jobs in every namespace: only the worker image, as the worker ServiceAccount,
    outside the system namespaces and without host access, gets through."""
    release = f"jobs-{uuid.uuid4().hex[:5]}"
    text = template_text({"storage": {"root": "gs://media/videojob"}}, release=release,
                         namespace=release_namespace)
    policy = f"{release}-videojob-operator-operator-jobs"
    objects = [d for d in yaml.safe_load_all(text) if d and (
        d["kind"] in ("ClusterRole", "ClusterRoleBinding")
        or (d["kind"] == "ServiceAccount"
            and d["metadata"]["name"] == f"{release}-videojob-operator")
        or d["metadata"]["name"] == policy)]
    assert sorted(d["kind"] for d in objects) == [
        "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding"]
    body = yaml.safe_dump_all(objects)
    cluster.kubectl("apply", "-f", "-", input=body)
    operator = f"system:serviceaccount:{release_namespace}:{release}-videojob-operator"
    worker_image = "ghcr.io/videojob/worker:0.1.0"

    def create(ns: str = namespace, image: str = worker_image, account: str = "videojob-worker",
               **pod: Any) -> str:
        """'' if the API server accepts the Job from the operator (dry run), else why not."""
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"generateName": "probe-", "namespace": ns},
               "spec": {"template": {"spec": {
                   "restartPolicy": "Never", "serviceAccountName": account,
                   "containers": [{"name": "worker", "image": image}], **pod}}}}
        out = cluster.kubectl("create", "--dry-run=server", f"--as={operator}", "-o", "name",
                              "-f", "-", input=json.dumps(job), check=False)
        return "" if out.returncode == 0 else out.stderr

    try:
        wait_until(lambda: "worker image" in create(image="busybox"), 30,
                   "the policy on the operator's Jobs to be enforced")
        assert create() == ""
        assert "run only the worker image" in create(image="docker.io/library/busybox:1")
        assert "run only as the ServiceAccount videojob-worker" in create(account="default")
        assert "no Job in a system namespace" in create(ns="kube-system")
        assert "no host namespace" in create(hostNetwork=True)
        assert "no hostPath" in create(volumes=[{"name": "root", "hostPath": {"path": "/"}}])
        # The same Job from anyone else is no business of this policy.
        assert cluster.kubectl("create", "--dry-run=server", "-o", "name", "-n", namespace,
                               "job", "mine", "--image=busybox").returncode == 0
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=body)
