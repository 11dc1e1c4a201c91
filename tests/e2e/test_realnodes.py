"""The user path on real nodes (LOCALCLUSTER_RUNTIME=containerd): kubelets and containerd run the
images built from our Dockerfiles, pulled from the local registry; `helm install` of the chart
runs the operator and the bundled Redis as containers; a VideoJob runs its five stages in
containers, with GPUs from the device plugin, DNS from CoreDNS and Services from kube-proxy.

The tests of this module share one release (module scope) and run in file order: the VideoJob
tests use the install, and the last test uninstalls it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from videojob_common.pipeline import Obj
from videojob_testkit import REPO, rbac
from videojob_testkit import videojobs as vjs
from videojob_testkit.chart import helm
from videojob_testkit.kube import Cluster, wait_for
from videojob_testkit.processes import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.realnode, pytest.mark.timeout(1800)]
REGISTRY = "127.0.0.1:5000"
CHART = str(REPO / "helm" / "videojob-operator")
RELEASE_KINDS = ("deployments", "replicasets", "pods", "services", "configmaps",
                 "serviceaccounts", "roles", "rolebindings", "networkpolicies")


@pytest.fixture(scope="module", autouse=True)
def real_nodes(cluster: Cluster) -> None:
    if cluster.runtime != "containerd":
        pytest.fail("run with LOCALCLUSTER_RUNTIME=containerd (make test does: `-m realnode`)")


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The operator, worker and Redis images, built from the Dockerfiles and pushed; their
    references by digest."""
    from localcluster import realnodes

    return realnodes.push_images(["operator", "worker", "gateway", "redis"])


@pytest.fixture(scope="module")
def tenant(cluster: Cluster) -> Iterator[str]:
    name = f"realnodes-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def release(cluster: Cluster, crds: None, images: dict[str, str], tenant: str) -> Iterator[Obj]:
    """`helm install` with examples/helm/values-local.yaml, VideoJobs served in `tenant`."""
    from localcluster import realnodes

    name = f"vj-{uuid.uuid4().hex[:5]}"
    namespace = f"videojob-system-{name}"
    storage = REPO / ".cluster" / "e2e" / f"real-{name}"
    storage.mkdir(parents=True)
    shutil.chown(storage, 65532, 65532)  # the worker image's user writes there
    install = helm("install", name, CHART, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace,
                   "--create-namespace", "-f", str(REPO / "examples/helm/values-local.yaml"),
                   "--set", f"watch.namespaces={{{tenant}}}",
                   "--set", f"storage.root=file://{storage}",
                   "--set", f"storage.volume.hostPath.path={storage}",
                   "--set", "gateway.enabled=true", "--set", "gateway.files.enabled=true",
                   *realnodes.chart_image_sets(images),
                   "--wait", "--timeout=300s", check=False, timeout=330)
    assert install.returncode == 0, install.stderr + pod_report(cluster, namespace)
    yield {"name": name, "namespace": namespace, "storage": storage, "tenant": tenant}
    helm("uninstall", name, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, check=False)


def pod_report(cluster: Cluster, namespace: str) -> str:
    out = cluster.kubectl("get", "pods,events", "-n", namespace, "-o", "wide", check=False)
    return "\n" + out.stdout + out.stderr


def run_pod(cluster: Cluster, namespace: str, name: str, spec: Obj, timeout: float = 120) -> str:
    """Runs a pod to completion and returns its log."""
    cluster.core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, **spec}})
    pod = wait_for(cluster.core.list_namespaced_pod,
                   lambda p: p.metadata.name == name and p.status.phase in ("Succeeded", "Failed"),
                   namespace=namespace, timeout=timeout, what=f"pod {name} to finish")
    logs = cluster.core.read_namespaced_pod_log(name, namespace)
    assert pod.status.phase == "Succeeded", logs
    return str(logs)


def python_pod(image: str, code: str, **extra: Any) -> Obj:
    return {"containers": [{"name": "main", "image": image, "command": ["python3", "-c", code],
                            "securityContext": {"readOnlyRootFilesystem": True,
                                                "allowPrivilegeEscalation": False,
                                                "capabilities": {"drop": ["ALL"]}},
                            **extra}],
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}


def push_root_image() -> str:
    """An image with no USER (so root), made from the pause image and pushed."""
    podman = ["podman", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
              "--runtime", "/usr/sbin/runc"]
    local, remote = "localhost/videojob/root-check:1", f"{REGISTRY}/videojob/root-check:1"
    subprocess.run([*podman, "build", "-t", local, "-f", "-", str(REPO / "hack" / "images")],
                   input="FROM localhost/videojob/pause:3.10\nUSER 0:0\n", text=True,
                   check=True, capture_output=True, timeout=300)
    subprocess.run([*podman, "push", "--tls-verify=false", local, f"docker://{remote}"],
                   check=True, capture_output=True, timeout=300)
    return remote


def test_nodes_are_kubelets_on_containerd_with_gpus_from_the_device_plugin(
        cluster: Cluster) -> None:
    nodes = {n.metadata.name: n for n in cluster.core.list_node().items}
    assert set(nodes) == {"local-cpu", "local-gpu"}
    for node in nodes.values():
        assert node.status.node_info.container_runtime_version.startswith("containerd://1.6")
        assert node.status.node_info.kubelet_version == "v1.36.3"
    # The device plugin registers with the kubelet a moment after the node is Ready.
    wait_until(lambda: cluster.core.read_node("local-gpu").status.allocatable.get(
        "nvidia.com/gpu") == "2", 60, "the device plugin's 2 GPUs on local-gpu")
    gpu = cluster.core.read_node("local-gpu")
    assert "nvidia.com/gpu" not in nodes["local-cpu"].status.allocatable
    assert gpu.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert [(t.key, t.effect) for t in gpu.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]


def test_a_gpu_pod_gets_its_device_from_the_device_plugin(
        cluster: Cluster, images: dict[str, str], namespace: str) -> None:
    code = "import os; print(os.environ['NVIDIA_VISIBLE_DEVICES'])"
    spec = python_pod(images["worker"], code, resources={"limits": {"nvidia.com/gpu": "1"}})
    spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                            "effect": "NoSchedule"}]
    logs = run_pod(cluster, namespace, "gpu", spec)
    assert logs.strip() in ("0", "1")
    pod = cluster.core.read_namespaced_pod("gpu", namespace)
    assert pod.spec.node_name == "local-gpu"


def test_cluster_dns_and_services_work_and_nothing_outside_resolves(
        cluster: Cluster, images: dict[str, str], release: Obj) -> None:
    redis = f"{release['name']}-videojob-operator-redis.{release['namespace']}.svc"
    code = f"""
import socket
for name in ("kubernetes.default.svc.cluster.local", "{redis}"):
    print(name, socket.gethostbyname(name))
s = socket.create_connection(("{redis}", 6379), timeout=5)
s.sendall(b"PING\\r\\n"); print("redis", s.recv(64).decode().strip())
try:
    socket.gethostbyname("example.com")
    print("outside resolved")
except OSError:
    print("outside refused")
"""
    logs = run_pod(cluster, release["tenant"], f"dns-{uuid.uuid4().hex[:4]}",
                   python_pod(images["worker"], code))
    lines = dict(line.split(" ", 1) for line in logs.strip().splitlines())
    assert lines["kubernetes.default.svc.cluster.local"] == "10.96.0.1"
    assert lines[redis].startswith("10.96.")
    # Reached through the Service, and it wants the password (docs/tenancy.md, "Redis").
    assert lines["redis"] == "-NOAUTH Authentication required."
    assert lines["outside"] == "refused"


def test_operator_pod_is_ready_through_its_probes_and_uses_redis_by_service_name(
        cluster: Cluster, release: Obj) -> None:
    (pod,) = cluster.core.list_namespaced_pod(
        release["namespace"], label_selector="app.kubernetes.io/name=videojob-operator").items
    (container,) = pod.spec.containers
    assert container.readiness_probe and container.liveness_probe
    ready = {c.type: c.status for c in pod.status.conditions}
    assert ready["Ready"] == "True", pod.status
    assert pod.status.container_statuses[0].container_id.startswith("containerd://")
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    # The operator's connection, as the bundled Redis sees it: through the Service, from the
    # operator pod's address.
    redis = f"deploy/{release['name']}-videojob-operator-redis"
    clients = cluster.kubectl("exec", "-n", release["namespace"], redis, "--", "sh", "-c",
                              'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli CLIENT LIST').stdout
    assert f"addr={pod.status.pod_ip}:" in clients, clients
    # It has a password: without it, nothing.
    anonymous = cluster.kubectl("exec", "-n", release["namespace"], redis, "--",
                                "redis-cli", "PING").stdout
    assert "NOAUTH" in anonymous, anonymous


def test_the_readme_example_runs_all_five_stages_in_containers(
        cluster: Cluster, release: Obj) -> None:
    tenant = release["tenant"]
    cluster.kubectl("apply", "-n", tenant, "-f", str(REPO / "examples" / "videojob.yaml"))
    done = vjs.wait(cluster, tenant, "coastal-sunset", vjs.phase_is("Succeeded", "Failed"),
                    timeout=1500)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    output = Path(done["status"]["outputURI"].removeprefix("file://"))
    assert output.is_relative_to(release["storage"])
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "format=duration:stream=codec_name,width,height", "-of", "json", str(output)],
        capture_output=True, text=True, check=True)
    info = json.loads(probe.stdout)
    video = next(s for s in info["streams"] if s["codec_name"] == "h264")
    assert (video["width"], video["height"]) == (1280, 720)
    assert abs(float(info["format"]["duration"]) - 12) < 0.5
    jobs = cluster.batch.list_namespaced_job(tenant).items
    stages = {j.metadata.labels["videojob.dev/stage"] for j in jobs}
    assert stages == {"plan", "keyframes", "segments", "stitch", "publish"}
    pods = cluster.core.list_namespaced_pod(tenant, label_selector="videojob.dev/name").items
    assert pods and all(
        cs.container_id.startswith("containerd://")
        for p in pods for cs in p.status.container_statuses or [])
    assert {p.spec.node_name for p in pods if p.metadata.labels.get("videojob.dev/stage")
            in ("keyframes", "segments")} == {"local-gpu"}


def test_no_secret_is_in_any_log_status_event_or_job(cluster: Cluster, release: Obj) -> None:
    """After the README example ran (progress through the bundled Redis, with its password, each
    report signed with the namespace's token): the Redis password, the progress master key and
    the namespace's token are in their Secrets and nowhere a tenant or an operator's log reader
    would see them."""
    tenant, system = release["tenant"], release["namespace"]
    read = cluster.core.read_namespaced_secret
    redis = read(f"{release['name']}-videojob-operator-redis-auth", system).data["password"]
    master = read(f"{release['name']}-videojob-operator-progress-key", system).data["key"]
    # The namespace's progress token: one Secret for the tenant's namespace, whatever ran there.
    tokens = [s.data["token"] for s in cluster.core.list_namespaced_secret(
        tenant, label_selector="app.kubernetes.io/managed-by=videojob-operator").items]
    assert len(tokens) == 1
    secrets = {"Redis password": redis, "progress key": master, "progress token": tokens[0]}
    assert all(len(base64.b64decode(v)) >= 32 for v in secrets.values())
    seen = {
        "operator log": cluster.kubectl("logs", "-n", system,
                                        f"deploy/{release['name']}-videojob-operator").stdout,
        "VideoJobs": cluster.kubectl("get", "videojobs", "-n", tenant, "-o", "yaml").stdout,
        "Events": cluster.kubectl("get", "events", "-n", tenant, "-o", "yaml").stdout,
        "Jobs": cluster.kubectl("get", "jobs", "-n", tenant, "-o", "yaml").stdout,
        "operator pod": cluster.kubectl("get", "pods", "-n", system, "-o", "yaml").stdout,
        "ConfigMaps": cluster.kubectl("get", "configmaps", "-n", system, "-o", "yaml").stdout,
        "stage pods' logs": "".join(
            cluster.kubectl("logs", "-n", tenant, p.metadata.name, check=False).stdout
            for p in cluster.core.list_namespaced_pod(
                tenant, label_selector="videojob.dev/name=coastal-sunset").items),
    }
    assert "following worker progress on redis://:***@" in seen["operator log"]
    assert "coastal-sunset" in seen["Jobs"] and "VIDEOJOB_REDIS_URL" in seen["Jobs"]
    leaks = [(what, where) for where, text in seen.items() for what, value in secrets.items()
             if base64.b64decode(value).decode() in text or value in text]
    assert leaks == []


def test_logs_exec_suspending_and_deleting_a_running_videojob_leaves_no_pod(
        cluster: Cluster, release: Obj) -> None:
    tenant = release["tenant"]
    vjs.create(cluster, tenant, "long", prompt="a slow pan over hills", scenes=2,
               durationSeconds=30, fps=24, resolution="1280x720")
    pod = wait_for(cluster.core.list_namespaced_pod,
                   lambda p: p.status.phase == "Running"
                   and p.metadata.labels.get("videojob.dev/stage") in ("keyframes", "segments"),
                   namespace=tenant, label_selector="videojob.dev/name=long", timeout=300,
                   what="a running GPU stage pod of VideoJob long")
    name = pod.metadata.name
    who = cluster.kubectl("exec", "-n", tenant, name, "--", "id", "-u").stdout.strip()
    assert who == "65532"
    wait_until(lambda: cluster.kubectl("logs", "-n", tenant, name).stdout.strip() != "", 60,
               f"logs of {name}")
    job = pod.metadata.labels["batch.kubernetes.io/job-name"]
    vjs.patch_spec(cluster, tenant, "long", suspend=True)
    wait_for(cluster.batch.list_namespaced_job, lambda j: bool(j.spec.suspend),
             namespace=tenant, field_selector=f"metadata.name={job}", timeout=60,
             what=f"Job {job} suspended with its VideoJob")
    vjs.delete(cluster, tenant, "long")
    wait_until(lambda: not cluster.core.list_namespaced_pod(
        tenant, label_selector="videojob.dev/name=long").items, 120, "no pod of VideoJob long")


def test_a_stage_pod_whose_image_runs_as_root_is_refused_by_the_kubelet(
        cluster: Cluster, release: Obj) -> None:
    tenant = release["tenant"]
    root_image = push_root_image()
    # The pod template of a stage Job, as the operator wrote it for the README example.
    (job, *_) = cluster.batch.list_namespaced_job(
        tenant, label_selector="videojob.dev/name=coastal-sunset").items
    template = cluster.api.sanitize_for_serialization(job.spec.template)
    spec = template["spec"]
    spec["containers"][0]["image"] = root_image
    spec.pop("nodeSelector", None)
    cluster.core.create_namespaced_pod(tenant, {"apiVersion": "v1", "kind": "Pod",
                                                "metadata": {"name": "as-root"}, "spec": spec})

    def refused(p: client.V1Pod) -> bool:
        waiting = [cs.state.waiting for cs in p.status.container_statuses or []
                   if cs.state.waiting]
        return any(w.reason == "CreateContainerConfigError"
                   and "runAsNonRoot and image will run as root" in (w.message or "")
                   for w in waiting)

    wait_for(cluster.core.list_namespaced_pod, refused, namespace=tenant,
             field_selector="metadata.name=as-root", timeout=120,
             what="the kubelet refusing a root image under runAsNonRoot")


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to `target` on a free loopback port; yields the base URL."""
    local = free_port()
    proc = subprocess.Popen(
        [cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}", "-n", namespace,
         "port-forward", "--address=127.0.0.1", target, f"{local}:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{local}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60,
                   f"{target} through kubectl port-forward")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_tenant_runs_a_videojob_over_http_through_the_charts_gateway(
        cluster: Cluster, release: Obj) -> None:
    """The gateway image as the chart runs it: a tenant's ServiceAccount, with its own token and
    its RBAC only, creates a VideoJob over HTTP, follows it to Succeeded, downloads its MP4 (a
    range of it too), uploads an image into its own prefix, and cannot touch another
    namespace."""
    tenant, system = release["tenant"], release["namespace"]
    account = "http-client"
    cluster.core.create_namespaced_service_account(
        tenant, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account)))
    rbac_api = client.RbacAuthorizationV1Api(cluster.api)
    rbac_api.create_namespaced_role(tenant, {
        "metadata": {"name": account},
        "rules": [{"apiGroups": ["videojob.dev"], "resources": ["videojobs"],
                   "verbs": ["create", "get", "list", "watch", "delete"]}]})
    rbac_api.create_namespaced_role_binding(tenant, {
        "metadata": {"name": account},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": tenant}]})
    token = cluster.core.create_namespaced_service_account_token(
        account, tenant, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))).status.token
    headers = {"Authorization": f"Bearer {token}"}
    spec = {"prompt": "a kite over a beach", "durationSeconds": 2, "fps": 8,
            "resolution": "320x240"}
    with port_forward(cluster, system, f"svc/{release['name']}-videojob-operator-gateway",
                      80) as url, httpx.Client(base_url=url, headers=headers,
                                               timeout=10) as http:
        made = http.post(f"/api/v1/namespaces/{tenant}/videojobs",
                         json={"name": "via-http", "spec": spec})
        assert made.status_code == 201, made.text
        assert made.json()["uid"] == vjs.get(cluster, tenant, "via-http")["metadata"]["uid"]
        denied = http.post(f"/api/v1/namespaces/{system}/videojobs",
                           json={"name": "via-http", "spec": spec})
        assert denied.status_code == 403
        assert denied.headers["content-type"].startswith("application/problem+json")

        def phase() -> str:
            got = http.get(f"/api/v1/namespaces/{tenant}/videojobs/via-http")
            assert got.status_code == 200, got.text
            return str(got.json().get("phase"))

        wait_until(lambda: phase() in ("Succeeded", "Failed"), 600, "via-http to finish")
        assert phase() == "Succeeded"
        # The MP4, from the storage the stage pods wrote, by the gateway's own mount.
        output = Path(vjs.get(cluster, tenant, "via-http")["status"]["outputURI"]
                      .removeprefix("file://"))
        whole = http.get(f"/api/v1/namespaces/{tenant}/videojobs/via-http/download")
        assert whole.status_code == 200 and whole.content == output.read_bytes()
        part = http.get(f"/api/v1/namespaces/{tenant}/videojobs/via-http/download",
                        headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == output.read_bytes()[100:200]
        # An upload lands in the tenant's own prefix, as the gateway's user.
        png = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17)
        sent = http.post(f"/api/v1/namespaces/{tenant}/uploads",
                         files=[("images", ("../../etc/passwd.png", png, "image/png"))])
        assert sent.status_code == 201, sent.text
        (uri,) = sent.json()["images"]
        stored = Path(uri.removeprefix("file://"))
        assert stored.is_relative_to(release["storage"] / tenant) and stored.read_bytes() == png
        listed = http.get(f"/api/v1/namespaces/{tenant}/videojobs", params={"limit": 500})
        assert "via-http" in [item["name"] for item in listed.json()["items"]]
        assert http.delete(f"/api/v1/namespaces/{tenant}/videojobs/via-http").status_code == 202
    wait_until(lambda: not vjs.custom(cluster).list_namespaced_custom_object(
        "videojob.dev", "v1alpha1", tenant, "videojobs",
        field_selector="metadata.name=via-http")["items"], 120, "via-http deleted")


def can_i(cluster: Cluster, user: str, namespace: str) -> str:
    return cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout


# What the chart grants that a run of the tests above does not request, and why.
GRANTED_NOT_CALLED = {
    rbac.Grant("videojob.dev", "videojobs", "get"):
        "the uninstall hook (`videojob-operator release`) reads back a VideoJob it released",
    rbac.Grant("videojob.dev", "videojobs/finalizers", "update"):
        "checked by the API server on blockOwnerDeletion; never requested",
    rbac.Grant("videojob.dev", "videojobpools", "delete"):
        "checked by OwnerReferencesPermissionEnforcement when a patch adopts an earlier "
        "install's pool; never requested",
}


def test_the_operator_calls_what_the_chart_grants_it_and_the_docs_list(
        cluster: Cluster, release: Obj) -> None:
    """After the VideoJobs above ran (five stages and their progress, a suspension, a deletion
    while running) and one more is deleted by its ttlSecondsAfterFinished: every request the
    operator's ServiceAccount made, from the API server's audit log, was allowed by the chart's
    RBAC and none was refused; every permission the chart grants was requested, but for the ones
    listed with why; and docs/tenancy.md shows `kubectl auth can-i --list` as it is."""
    from localcluster import controlplane

    system, tenant = release["namespace"], release["tenant"]
    # The operator deletes a finished VideoJob whose ttlSecondsAfterFinished ran out.
    vjs.patch_spec(cluster, tenant, "coastal-sunset", ttlSecondsAfterFinished=1)
    wait_until(lambda: not vjs.custom(cluster).list_namespaced_custom_object(
        "videojob.dev", "v1alpha1", tenant, "videojobs",
        field_selector="metadata.name=coastal-sunset")["items"], 60,
        "the README example deleted after its ttlSecondsAfterFinished")
    deploy = client.AppsV1Api(cluster.api).read_namespaced_deployment(
        f"{release['name']}-videojob-operator", system)
    user = f"system:serviceaccount:{system}:{deploy.spec.template.spec.service_account_name}"
    granted: set[rbac.Grant] = set()
    urls: set[tuple[str, str]] = set()
    for namespace in (tenant, system):
        grants, paths = rbac.parse_can_i(can_i(cluster, user, namespace))
        granted |= grants
        urls |= paths
    # What any ServiceAccount may do on this cluster is not the chart's doing.
    anyone, _ = rbac.parse_can_i(can_i(cluster, f"system:serviceaccount:{tenant}:default", tenant))
    ours = granted - anyone
    audit = controlplane.audit_log(controlplane.Layout(cluster.kubeconfig.parent))
    calls, requested = rbac.parse_audit(audit.read_text().splitlines(), user)
    assert len(calls) > 50, f"{len(calls)} requests of {user} in {audit}"
    assert sorted({c for c in calls if c.code in (401, 403)}) == []
    assert rbac.uncovered(calls, granted) == []
    assert [(path, verb) for path, verb in set(requested)
            if not rbac.url_allowed(path, urls, verb)] == []

    cut = f"{release['name']}-videojob-operator"
    named = {rbac.Grant(g.group, g.resource, g.verb, g.name.replace(cut, "videojob-operator"))
             for g in ours}
    assert set(rbac.unused(ours, calls)) == set(GRANTED_NOT_CALLED), rbac.render(named)
    docs = (REPO / "docs" / "tenancy.md").read_text()
    block = rbac.fenced_block(docs, "**What the operator's ServiceAccount may do**")
    listed, _ = rbac.parse_can_i(block)
    assert listed == named, "docs/tenancy.md's block is out of date; it is now:\n" + rbac.render(
        named)


def test_helm_uninstall_leaves_nothing_behind(cluster: Cluster, release: Obj) -> None:
    tenant = release["tenant"]
    for vj in vjs.custom(cluster).list_namespaced_custom_object(
            "videojob.dev", "v1alpha1", tenant, "videojobs")["items"]:
        vjs.delete(cluster, tenant, vj["metadata"]["name"])
    wait_until(lambda: not vjs.custom(cluster).list_namespaced_custom_object(
        "videojob.dev", "v1alpha1", tenant, "videojobs")["items"], 120,
        "VideoJobs gone (their finalizer removed by the operator)")
    out = helm("uninstall", release["name"], f"--kubeconfig={cluster.kubeconfig}",
               "-n", release["namespace"], "--wait", "--timeout=120s", check=False, timeout=150)
    assert out.returncode == 0, out.stderr
    selector = f"app.kubernetes.io/instance={release['name']}"

    def leftovers() -> list[str]:
        a = cluster.kubectl("get", ",".join(RELEASE_KINDS), "-A", "-l", selector, "-o", "name")
        b = cluster.kubectl("get", "clusterroles,clusterrolebindings", "-l", selector,
                            "-o", "name")
        return (a.stdout + b.stdout).split()

    wait_until(lambda: leftovers() == [], 120, "no object of the release left")
    wait_until(lambda: not cluster.core.list_namespaced_pod(release["namespace"]).items, 120,
               "no pod left in the release namespace")


def test_the_charts_defaults_run_a_videojob_on_a_shared_claim(
        cluster: Cluster, crds: None, images: dict[str, str], namespace: str) -> None:
    """`helm install` with the chart's defaults, the images' references alone set (the default
    ghcr.io ones are not reachable here): artifacts on the chart's ReadWriteMany claim. Runs
    after the module's release is gone: two operators must never share VideoJobPools. The
    claim binds to a PersistentVolume made here as an NFS provisioner would: a directory that
    anyone may write."""
    from localcluster import realnodes

    name = f"vj-{uuid.uuid4().hex[:5]}"
    release_namespace = f"videojob-system-{name}"
    share = REPO / ".cluster" / "e2e" / f"share-{name}"
    share.mkdir(parents=True)
    share.chmod(0o777)
    cluster.core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"share-{name}"},
        "spec": {"capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(share)},
                 "claimRef": {"namespace": namespace, "name": "videojob-artifacts"}}})
    try:
        install = helm("install", name, CHART, f"--kubeconfig={cluster.kubeconfig}",
                       "-n", release_namespace, "--create-namespace",
                       "--set", f"watch.namespaces={{{namespace}}}",
                       *realnodes.chart_image_sets(images),
                       "--wait", "--timeout=300s", check=False, timeout=330)
        assert install.returncode == 0, install.stderr + pod_report(cluster, release_namespace)
        vjs.create(cluster, namespace, "defaults", prompt="a harbour at noon", scenes=2,
                   durationSeconds=2, fps=8, resolution="320x180")
        done = vjs.wait(cluster, namespace, "defaults", vjs.phase_is("Succeeded", "Failed"),
                        timeout=300)
        assert done["status"]["phase"] == "Succeeded", done["status"]
        inside = done["status"]["outputURI"].removeprefix("file:///var/lib/videojob/artifacts/")
        assert (share / inside).stat().st_size > 0  # on the claim, seen from this machine
        vjs.delete(cluster, namespace, "defaults")
        wait_until(lambda: not vjs.custom(cluster).list_namespaced_custom_object(
            "videojob.dev", "v1alpha1", namespace, "videojobs")["items"], 120, "VideoJob gone")
        out = helm("uninstall", name, f"--kubeconfig={cluster.kubeconfig}", "-n",
                   release_namespace, "--wait", "--timeout=120s", check=False, timeout=150)
        assert out.returncode == 0, out.stderr
        # The claim holds the videos: uninstall keeps it.
        assert cluster.core.read_namespaced_persistent_volume_claim(
            "videojob-artifacts", namespace).status.phase == "Bound"
    finally:
        helm("uninstall", name, f"--kubeconfig={cluster.kubeconfig}", "-n", release_namespace,
             check=False)
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespaced_persistent_volume_claim("videojob-artifacts",
                                                                   namespace)
        cluster.core.delete_persistent_volume(f"share-{name}")
        cluster.core.delete_namespace(release_namespace, propagation_policy="Background")


def test_the_charts_bundled_postgresql_archives_a_videojob_deleted_by_its_ttl(
        cluster: Cluster, crds: None, images: dict[str, str], namespace: str) -> None:
    """`helm install` with the archive on and the chart's bundled PostgreSQL, from the image built
    from hack/images/postgres (Debian's server): a VideoJob with a TTL is archived by the
    operator in its pod, then deleted, and its row, read with psql inside the PostgreSQL pod,
    shows how it ended and its GPU-seconds. Runs after the module's release is gone (one
    operator at a time). The StatefulSet's claim binds to a PersistentVolume made here, a
    directory owned by the image's postgres user (999)."""
    from localcluster import realnodes

    refs = {**images, **realnodes.push_images(["postgres"])}
    name = f"vj-{uuid.uuid4().hex[:5]}"
    release_namespace = f"videojob-system-{name}"
    storage = REPO / ".cluster" / "e2e" / f"archive-{name}"
    data = REPO / ".cluster" / "e2e" / f"pgdata-{name}"
    for path in (storage, data):
        path.mkdir(parents=True)
    shutil.chown(storage, 65532, 65532)
    shutil.chown(data, 999, 999)
    postgres = f"{name}-videojob-operator-postgres"
    cluster.core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pg-{name}"},
        "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(data)},
                 "claimRef": {"namespace": release_namespace, "name": f"data-{postgres}-0"}}})
    try:
        install = helm("install", name, CHART, f"--kubeconfig={cluster.kubeconfig}",
                       "-n", release_namespace, "--create-namespace",
                       "-f", str(REPO / "examples/helm/values-local.yaml"),
                       "--set", f"watch.namespaces={{{namespace}}}",
                       "--set", f"storage.root=file://{storage}",
                       "--set", f"storage.volume.hostPath.path={storage}",
                       "--set", "archive.enabled=true", "--set", "archive.postgres.bundled=true",
                       *realnodes.chart_image_sets(refs),
                       "--wait", "--timeout=300s", check=False, timeout=330)
        assert install.returncode == 0, install.stderr + pod_report(cluster, release_namespace)
        vjs.create(cluster, namespace, "kept", prompt="a harbour at noon", scenes=2,
                   durationSeconds=2, fps=8, resolution="320x180", ttlSecondsAfterFinished=2)
        done = vjs.wait(cluster, namespace, "kept", vjs.phase_is("Succeeded", "Failed"),
                        timeout=300)
        assert done["status"]["phase"] == "Succeeded", done["status"]
        uid, gpu = done["metadata"]["uid"], done["status"]["gpuSeconds"]
        wait_until(lambda: not vjs.custom(cluster).list_namespaced_custom_object(
            "videojob.dev", "v1alpha1", namespace, "videojobs")["items"], 120,
            "the TTL to delete the VideoJob, once archived")
        row = cluster.kubectl(
            "exec", "-n", release_namespace, f"{postgres}-0", "--", "psql", "-U", "videojob",
            "-d", "videojob", "-tA", "-F", " ", "-c",
            f"SELECT name, phase, gpu_seconds FROM videojob_archive WHERE uid = '{uid}'",
            check=False)
        assert row.returncode == 0, row.stderr
        kept, phase, seconds = row.stdout.split()
        assert (kept, phase) == ("kept", "Succeeded")
        assert float(seconds) == pytest.approx(float(gpu), abs=0.01) and float(seconds) > 0
    finally:
        helm("uninstall", name, f"--kubeconfig={cluster.kubeconfig}", "-n", release_namespace,
             "--wait", "--timeout=120s", check=False, timeout=150)
        cluster.core.delete_namespace(release_namespace, propagation_policy="Background")
        wait_until(lambda: _gone(cluster, release_namespace), 180, "the release namespace gone")
        cluster.core.delete_persistent_volume(f"pg-{name}")


def _gone(cluster: Cluster, namespace: str) -> bool:
    try:
        cluster.core.read_namespace(namespace)
    except client.ApiException as e:
        return e.status == 404
    return False
