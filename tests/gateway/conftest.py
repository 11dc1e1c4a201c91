"""Fixtures of the gateway's e2e tests: the CRDs from crds/, two tenant namespaces with callers of
different rights (real ServiceAccount tokens from the TokenRequest API), an API key, and the
gateway running as its own process with an RBAC-limited identity of its own: it may list and
watch, review tokens and access, and create no VideoJob itself."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from videojob_gateway import keys
from videojob_testkit import REPO
from videojob_testkit.gateway_process import GatewayProcess, GatewayWorld, TriggerWorld
from videojob_testkit.kube import Cluster
from videojob_testkit.processes import wait_until
from videojob_testkit.rbac import role

VIDEOJOBS = {"apiGroups": ["videojob.dev"], "resources": ["videojobs"]}


def set_up(cluster: Cluster, namespaces: list[str], docs: list[dict[str, Any]]) -> None:
    """A world's namespaces created and its manifests (roles, bindings, accounts) applied."""
    for ns in namespaces:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def tear_down(cluster: Cluster, gateway: GatewayProcess | None, namespaces: list[str],
              cluster_roles: list[str]) -> None:
    """A world's gateway stopped, its namespaces and ClusterRoles (with their bindings)
    deleted; whatever setup did not get to make is skipped."""
    if gateway is not None:
        gateway.stop()
    rbac_api = client.RbacAuthorizationV1Api(cluster.api)
    deletes = [(cluster.core.delete_namespace, ns) for ns in namespaces]
    for name in cluster_roles:
        deletes += [(rbac_api.delete_cluster_role_binding, name),
                    (rbac_api.delete_cluster_role, name)]
    for delete, name in deletes:
        with contextlib.suppress(client.ApiException):  # not made: setup failed early
            delete(name)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev",
                    "crd/videojobtriggers.videojob.dev")


def token(cluster: Cluster, namespace: str, account: str) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    made = cluster.core.create_namespaced_service_account_token(account, namespace, request)
    return str(made.status.token)


def allowed(cluster: Cluster, user: str, verb: str, namespace: str = "",
            resource: str = "videojobs", group: str = "videojob.dev") -> bool:
    """What RBAC answers for `user` now (as the gateway will ask it)."""
    review = client.AuthorizationV1Api(cluster.api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "namespace": namespace,
                                        "group": group, "resource": resource}}})
    return bool(review.status.allowed)


def gateway_kubeconfig(cluster: Cluster, bearer: str, path: Path) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": "gateway", "user": {"token": bearer}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "gateway"}}],
        "current-context": "c"}))
    return path


@pytest.fixture(scope="module")
def world(cluster: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[GatewayWorld]:
    suffix = uuid.uuid4().hex[:6]
    a, b, system = f"gw-a-{suffix}", f"gw-b-{suffix}", f"gw-system-{suffix}"
    gateway_role = f"videojob-gateway-{suffix}"
    auditor_role = f"videojob-auditor-{suffix}"
    rbac = yaml.safe_load(resources.files("videojob_gateway").joinpath("rbac.yaml").read_text())
    impersonation = [dict(r, resourceNames=["uploader"]) for r in rbac["impersonationRules"]]
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": sa, "namespace": ns}}
        for ns, sa in [(a, "writer"), (a, "reader"), (a, "uploader"), (a, "auditor"),
                       (system, "gateway")]]
    docs += role("writer", a, [{**VIDEOJOBS, "verbs": ["create", "get", "list", "watch",
                                                         "delete", "patch"]}], (a, "writer"))
    docs += role("reader", a, [{**VIDEOJOBS, "verbs": ["get", "list", "watch"]}], (a, "reader"))
    # The API key's ServiceAccount: may create and read, not delete.
    docs += role("uploader", a, [{**VIDEOJOBS, "verbs": ["create", "get", "list", "watch"]}],
                 (a, "uploader"))
    # Reads every namespace's VideoJobs: the only caller a missing namespace is a 404 for.
    docs += role(auditor_role, None, [{**VIDEOJOBS, "verbs": ["get", "list", "watch"]}],
                 (a, "auditor"))
    docs += role(gateway_role, None, rbac["clusterRules"], (system, "gateway"))
    docs += role("videojob-gateway-keys", system, rbac["keyNamespaceRules"], (system, "gateway"))
    docs += role("videojob-gateway-impersonation", a, impersonation, (system, "gateway"))
    workdir = tmp_path_factory.mktemp("gateway")
    gateway: GatewayProcess | None = None
    try:
        set_up(cluster, [a, b, system], docs)
        for user, verb, ns in [(f"system:serviceaccount:{a}:writer", "create", a),
                               (f"system:serviceaccount:{a}:reader", "list", a),
                               (f"system:serviceaccount:{a}:uploader", "create", a),
                               (f"system:serviceaccount:{a}:auditor", "list", ""),
                               (f"system:serviceaccount:{system}:gateway", "watch", "")]:
            # RBAC's informers take a moment; a review cached as "no" would outlive that.
            wait_until(lambda u=user, v=verb, n=ns: allowed(cluster, u, v, n), 30,
                       f"RBAC to let {user} {verb} videojobs")
        tokens = {sa: token(cluster, a, sa) for sa in ("writer", "reader", "auditor")}
        tokens["gateway"] = token(cluster, system, "gateway")
        api_key = keys.new_key()
        cluster.core.create_namespaced_secret(
            system, keys.secret_manifest("uploader-key", system, a, "uploader", api_key))
        kubeconfig = gateway_kubeconfig(cluster, tokens["gateway"], workdir / "kubeconfig")
        gateway = GatewayProcess(kubeconfig=kubeconfig, log=workdir / "gateway.log", args=[
            "--auth-modes", "token,key", "--key-namespace", system, "--keepalive-seconds", "1",
            # The tests poll; the limit itself is tested with a gateway of its own.
            "--rate-limit", "1000", "--rate-burst", "1000"])
        gateway.start()
        yield GatewayWorld(a=a, b=b, system=system, tokens=tokens, api_key=api_key,
                           gateway=gateway, gateway_kubeconfig=kubeconfig,
                           admin=client.CustomObjectsApi(cluster.api))
    finally:
        tear_down(cluster, gateway, [a, b, system], [gateway_role, auditor_role])
    log = gateway.log.read_text()
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def trigger_world(cluster: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[TriggerWorld]:
    """A tenant namespace with VideoJobTriggers' ServiceAccounts (hooks: may get its two
    Secrets and create VideoJobs; nocreate: may get one Secret only; author: may write triggers
    and create VideoJobs, read no Secret), its Secrets, another tenant's namespace, and a
    gateway with rbac.yaml's rules that may impersonate hooks and nocreate, nothing else."""
    suffix = uuid.uuid4().hex[:6]
    a, b, system = f"tr-a-{suffix}", f"tr-b-{suffix}", f"tr-system-{suffix}"
    gateway_role = f"videojob-gateway-triggers-{suffix}"
    rbac = yaml.safe_load(resources.files("videojob_gateway").joinpath("rbac.yaml").read_text())
    secrets = {"hook-secret": b"It's a Secret to Everybody",
               "std-secret": b"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
               "private": b"do-not-leak-" + uuid.uuid4().hex.encode()}

    def get(*names: str) -> dict[str, Any]:
        return {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                "resourceNames": list(names)}

    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}
        for ns, sa in [(a, "hooks"), (a, "nocreate"), (a, "author"), (system, "gateway")]]
    docs += role("hooks", a, [{**VIDEOJOBS, "verbs": ["create"]},
                              get("hook-secret", "std-secret")], (a, "hooks"))
    docs += role("nocreate", a, [get("hook-secret")], (a, "nocreate"))
    docs += role("author", a, [{**VIDEOJOBS, "verbs": ["create"]},
                               {"apiGroups": ["videojob.dev"], "resources": ["videojobtriggers"],
                                "verbs": ["create", "update", "patch"]}], (a, "author"))
    docs += role(gateway_role, None, rbac["clusterRules"], (system, "gateway"))
    docs += role("videojob-gateway-triggers", a,
                  [dict(r, resourceNames=["hooks", "nocreate"])
                   for r in rbac["triggerImpersonationRules"]], (system, "gateway"))
    workdir = tmp_path_factory.mktemp("trigger-gateway")
    gateway: GatewayProcess | None = None
    try:
        set_up(cluster, [a, b, system], docs)
        for name, value in secrets.items():
            cluster.core.create_namespaced_secret(a, client.V1Secret(
                metadata=client.V1ObjectMeta(name=name), string_data={"secret": value.decode()}))
        cluster.core.create_namespaced_secret(b, client.V1Secret(
            metadata=client.V1ObjectMeta(name="hook-secret"),
            string_data={"secret": "tenant b's own"}))
        for user, verb, ns, resource in [
                (f"system:serviceaccount:{a}:hooks", "create", a, "videojobs"),
                (f"system:serviceaccount:{a}:author", "create", a, "videojobtriggers"),
                (f"system:serviceaccount:{system}:gateway", "watch", "", "videojobtriggers")]:
            wait_until(lambda u=user, v=verb, n=ns, r=resource: allowed(cluster, u, v, n, r), 30,
                       f"RBAC to let {user} {verb} {resource}")
        kubeconfig = gateway_kubeconfig(cluster, token(cluster, system, "gateway"),
                                        workdir / "kubeconfig")
        gateway = GatewayProcess(kubeconfig=kubeconfig, log=workdir / "gateway.log")
        gateway.start()
        yield TriggerWorld(a=a, b=b, system=system, gateway=gateway,
                           admin=client.CustomObjectsApi(cluster.api), secrets=secrets)
    finally:
        tear_down(cluster, gateway, [a, b, system], [gateway_role])
    log = gateway.log.read_text()
    assert "Traceback" not in log, log[-5000:]
    for value in secrets.values():
        assert value.decode() not in log  # no signing secret, and nothing else, in the log
