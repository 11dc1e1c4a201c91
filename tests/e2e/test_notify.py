"""Webhook notifications end to end: the operator as its own process against the real API
server, running as a ServiceAccount with exactly the chart's ClusterRole (no right to read any
Secret), a receiver on 127.0.0.1 (videojob_testkit.webhooks) that checks every signature with
hmac directly.

- The namespace `ok` lets the operator read one Secret by name (a Role and RoleBinding of its
  own, as docs/tenancy.md tells tenants to) and allows loopback destinations in the operator's
  configuration (notify.allow_networks); the namespace `refused` grants its Secret too but is
  allowed public addresses only.
- Stage pods run the scripted worker, so a VideoJob takes seconds.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from videojob_common.pipeline import stages_of
from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster, wait_for
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, wait_until
from videojob_testkit.webhooks import Delivery, Receiver, new_secret, verify

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64", "scenes": 2}
OPERATOR_SA = "videojob-operator"


@dataclass
class World:
    ok: str
    refused: str
    secret: str
    receiver: Receiver
    operator: Operator


def chart_cluster_role() -> list[dict[str, Any]]:
    """The rules of the operator's ClusterRole as the chart renders it (manifests/)."""
    docs = yaml.safe_load_all((REPO / "manifests" / "videojob-operator.yaml").read_text())
    (role,) = [d for d in docs if d and d["kind"] == "ClusterRole"
               and d["metadata"]["name"] == "videojob-operator"]
    rules: list[dict[str, Any]] = role["rules"]
    assert not any("secrets" in r["resources"] and set(r["verbs"]) - {"create"} for r in rules)
    return rules


def binding(kind: str, name: str, namespace: str | None, subject_ns: str) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA,
                          "namespace": subject_ns}]}


def tenant_grant(namespace: str, secret: str, system: str) -> list[dict[str, Any]]:
    """What docs/tenancy.md tells a namespace to apply: `get` on its one Secret, by name."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "videojob-notify-secret", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret],
                       "verbs": ["get"]}]}
    return [role, binding("Role", "videojob-notify-secret", namespace, system)]


def may(cluster: Cluster, user: str, verb: str, namespace: str, name: str) -> bool:
    review = client.AuthorizationV1Api(cluster.api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "namespace": namespace, "resource":
                                        "secrets", "name": name}}})
    return bool(review.status.allowed)


def service_account_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = cluster.core.create_namespaced_service_account_token(OPERATOR_SA, namespace,
                                                                 request).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "operator"}}],
        "current-context": "c"}))
    return path


@pytest.fixture(scope="module")
def world(cluster: Cluster, crds: None, redis_server: RedisServer,
          operator: Operator) -> Iterator[World]:
    operator.stop()  # one operator at a time; the next test that needs it starts it again
    suffix = uuid.uuid4().hex[:6]
    ok, refused, system = (f"notify-ok-{suffix}", f"notify-refused-{suffix}",
                           f"notify-system-{suffix}")
    role = f"videojob-notify-operator-{suffix}"
    secret = new_secret()
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": OPERATOR_SA, "namespace": system}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role}, "rules": chart_cluster_role()},
        binding("ClusterRole", role, None, system)]
    for ns in (ok, refused):
        docs += [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name,
                                                                     "namespace": ns},
                  "stringData": {"secret": secret}} for name in ("hook", "hidden")]
        docs += tenant_grant(ns, "hook", system)
    receiver = Receiver(script={"/flaky": [500, 500]}).start()
    workdir = REPO / ".cluster" / "e2e" / f"notify-{suffix}"
    workdir.mkdir(parents=True, exist_ok=True)
    op: Operator | None = None
    try:
        for ns in (ok, refused, system):
            cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
                name=ns)))
        for ns in (ok, refused):
            wait_for(cluster.core.list_namespaced_service_account,
                     lambda sa: sa.metadata.name == "default", namespace=ns, timeout=30,
                     what=f"ServiceAccount {ns}/default")
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        user = f"system:serviceaccount:{system}:{OPERATOR_SA}"
        wait_until(lambda: may(cluster, user, "get", ok, "hook"), 30, "RBAC to grant the Role")
        assert not may(cluster, user, "get", ok, "hidden")
        kubeconfig = service_account_kubeconfig(cluster, system, workdir / "kubeconfig")
        op = Operator(cluster=cluster, workdir=workdir, redis_url=redis_server.url,
                      env={"KUBECONFIG": str(kubeconfig)}, overrides={"notify": {
                          "allow_networks": {ok: ["127.0.0.0/8"]},
                          "max_attempts": 4, "backoff_seconds": 0.3, "max_backoff_seconds": 1,
                          "timeout_seconds": 5, "secret_ttl_seconds": 3}})
        op.start()
        yield World(ok=ok, refused=refused, secret=secret, receiver=receiver, operator=op)
    finally:
        if op is not None:
            op.stop()
        receiver.stop()
        for ns in (ok, refused, system):
            cluster.core.delete_namespace(ns, propagation_policy="Background")
        rbac = client.RbacAuthorizationV1Api(cluster.api)
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)
    log = op.finish() if op is not None else ""
    shutil.rmtree(workdir, ignore_errors=True)
    assert secret not in log and secret.removeprefix("whsec_") not in log


def hook(world: World, path: str, events: list[str], secret: str = "hook",
         host: str = "127.0.0.1") -> dict[str, Any]:
    return {"url": world.receiver.url(path, host), "events": events,
            "secretRef": {"name": secret, "key": "secret"}}


def run(cluster: Cluster, namespace: str, name: str, hooks: list[dict[str, Any]]
        ) -> dict[str, Any]:
    vjs.create(cluster, namespace, name, prompt="a lighthouse at dawn", notify=hooks, **FAST)
    done = vjs.wait(cluster, namespace, name, vjs.phase_is("Succeeded", "Failed"), timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    return done


def settled(cluster: Cluster, namespace: str, name: str, **expected: Any) -> dict[str, Any]:
    """status.notifications[0] once nothing is pending and it shows `expected`."""
    def ready(vj: dict[str, Any]) -> bool:
        notes = (vj.get("status") or {}).get("notifications") or [{}]
        return not notes[0].get("pending") and all(notes[0].get(k) == v
                                                   for k, v in expected.items())
    vj = vjs.wait(cluster, namespace, name, ready, timeout=60,
                  what=f"status.notifications[0] of {name} showing {expected}")
    note: dict[str, Any] = vj["status"]["notifications"][0]
    return note


def warnings(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    events = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},type=Warning").items
    return [(e.reason, e.message) for e in events]


def test_a_receiver_gets_each_transition_once_signed(cluster: Cluster, world: World) -> None:
    path = "/all"
    done = run(cluster, world.ok, "told", [hook(world, path, [
        "Queued", "Running", "StageSucceeded", "Succeeded"])])
    got: list[Delivery] = wait_until(
        lambda: (d := world.receiver.at(path)) and d[-1].doc["type"] == "Succeeded" and d,
        30, "the Succeeded notification")
    assert all(verify(world.secret, d.headers, d.body) for d in got)
    assert len({d.id for d in got}) == len(got)  # no restart, no retry: each exactly once
    told = sorted(got, key=lambda d: d.doc["timestamp"])
    kinds = [d.doc["type"] for d in told]
    assert kinds[0] == "Queued" and kinds[-1] == "Succeeded" and "Running" in kinds
    assert [d.doc["data"]["stage"] for d in told if d.doc["type"] == "StageSucceeded"] == list(
        STAGES)
    assert set(kinds) == {"Queued", "Running", "StageSucceeded", "Succeeded"}
    end = told[-1].doc
    meta = done["metadata"]
    assert end["data"] == {"namespace": world.ok, "name": "told", "uid": meta["uid"],
                           "phase": "Succeeded", "stage": "publish", "progress": 100,
                           "message": done["status"]["message"],
                           "outputURI": done["status"]["outputURI"]}
    note = settled(cluster, world.ok, "told", delivered=len(got), state="Ready")
    assert note["queued"] == len(got) and note.get("gaveUp", 0) == 0
    metrics = world.operator.metrics()
    assert metrics['videojob_notifications_total{event="Succeeded",outcome="delivered"}'] >= 1
    assert metrics["videojob_notification_delay_seconds_count"] >= len(got)


def test_a_failing_receiver_gets_the_notification_on_the_third_attempt(
        cluster: Cluster, world: World) -> None:
    retried = 'videojob_notifications_total{event="Succeeded",outcome="retried"}'
    before = world.operator.metrics()[retried]
    run(cluster, world.ok, "flaky", [hook(world, "/flaky", ["Succeeded"])])
    attempts = wait_until(lambda: len(d := world.receiver.at("/flaky")) >= 3 and d, 30,
                          "three attempts")
    assert [d.answered for d in attempts] == [500, 500, 200]
    assert len({d.id for d in attempts}) == 1 and len({d.body for d in attempts}) == 1
    assert all(verify(world.secret, d.headers, d.body) for d in attempts)
    assert attempts[1].at - attempts[0].at >= 0.25  # backoff_seconds 0.3, then doubling
    note = settled(cluster, world.ok, "flaky", delivered=1, state="Ready")
    assert note.get("gaveUp", 0) == 0
    assert world.operator.metrics()[retried] == before + 2
    assert len(world.receiver.at("/flaky")) == 3


def test_a_secret_the_operator_may_not_read_sends_nothing_and_shows_why(
        cluster: Cluster, world: World) -> None:
    done = run(cluster, world.ok, "unsigned", [hook(world, "/hidden", ["Queued", "Succeeded"],
                                                    secret="hidden")])
    assert done["status"]["phase"] == "Succeeded"  # the VideoJob is not held back
    note = settled(cluster, world.ok, "unsigned", gaveUp=2, state="SecretUnavailable")
    assert note["message"].startswith(
        f"spec.notify[0].secretRef: the operator may not read Secret {world.ok}/hidden: "
        "grant its ServiceAccount `get` on it by name")
    assert world.receiver.at("/hidden") == []  # nothing was sent unsigned
    reasons = {r for r, _ in warnings(cluster, world.ok, "unsigned")}
    assert {"NotificationSecretUnavailable", "NotificationGaveUp"} <= reasons


def test_a_destination_at_a_refused_address_is_never_contacted(
        cluster: Cluster, world: World) -> None:
    # `localhost` resolves to loopback, which the namespace `refused` is not allowed.
    run(cluster, world.refused, "inward", [hook(world, "/refused", ["Queued", "Succeeded"],
                                                host="localhost")])
    note = settled(cluster, world.refused, "inward", gaveUp=2, state="AddressRefused")
    assert note["message"].startswith("spec.notify[0].url: its host is not at an address the "
                                      "operator may send to")
    assert world.receiver.at("/refused") == []  # no connection was made
    messages = dict(warnings(cluster, world.refused, "inward"))
    assert messages["NotificationAddressRefused"] == note["message"]


GOOD = {"url": "https://hooks.example.com/videojobs", "events": ["Succeeded"],
        "secretRef": {"name": "hook", "key": "secret"}}
INVALID = [
    ([{**GOOD, "url": "https://user:pw@hooks.example.com/"}], "spec.notify[0].url in body should"),
    ([{**GOOD, "url": "ftp://hooks.example.com/"}], "spec.notify[0].url in body should match"),
    ([{**GOOD, "events": ["Succeeded", "Succeeded"]}],
     "spec.notify[0].events: Invalid value: spec.notify[].events must not repeat an event"),
    ([{**GOOD, "events": ["Done"]}], 'spec.notify[0].events[0]: Unsupported value: "Done"'),
    ([{**GOOD, "events": []}], "spec.notify[0].events in body should have at least 1 items"),
    ([GOOD] * 5, "spec.notify: Too many: 5: must have at most 4 items"),
    ([{"url": GOOD["url"], "events": ["Failed"]}], "spec.notify[0].secretRef: Required value"),
    ([{**GOOD, "secretRef": {"name": "Hook_Secret", "key": "secret"}}],
     "spec.notify[0].secretRef.name in body should match"),
]


@pytest.mark.parametrize(("notify", "message"), INVALID,
                         ids=[f"{m.split(' ')[0].rstrip(':')}-{i}"
                              for i, (_, m) in enumerate(INVALID)])
def test_a_bad_notify_entry_is_refused_naming_the_field(
        cluster: Cluster, namespace: str, crds: None, notify: list[dict[str, Any]],
        message: str) -> None:
    with pytest.raises(ApiException) as err:
        vjs.create(cluster, namespace, "invalid", prompt="x", notify=notify)
    assert err.value.status == 422
    assert message in json.loads(err.value.body)["message"]


def test_notify_is_immutable(cluster: Cluster, namespace: str, crds: None) -> None:
    vjs.create(cluster, namespace, "fixed", prompt="x", suspend=True, notify=[GOOD])
    for notify in ([{**GOOD, "url": "https://other.example.com/"}], None):
        with pytest.raises(ApiException) as err:
            vjs.patch_spec(cluster, namespace, "fixed", notify=notify)
        assert "immutable" in json.loads(err.value.body)["message"]
