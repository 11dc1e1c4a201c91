"""VideoJobTriggers against the real API server, delivered as GitHub and Standard Webhooks
senders deliver them, to the gateway running as its own process.

The gateway's own identity may list and watch triggers and write their status, impersonate two
ServiceAccounts of the tenant's namespace, and nothing else: it cannot read a Secret or create
a VideoJob itself (conftest.py, `trigger_world`). So every VideoJob that appears below was
created as a trigger's ServiceAccount, which the API server's audit log shows, and every
refusal is that account's.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from localcluster import controlplane
from videojob_gateway import webhook_auth as wa
from videojob_testkit import REPO
from videojob_testkit.gateway_process import TriggerWorld
from videojob_testkit.kube import Cluster
from videojob_testkit.processes import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION = "videojob.dev", "v1alpha1"
SPEC = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}
PUSH = {"ref": "refs/heads/main", "after": "9f3c1e",
        "head_commit": {"id": "9f3c1e", "message": "a lighthouse at dawn"}}


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["type"] == f"https://videojob.dev/problems/{slug}", doc
    assert doc["status"] == status and doc["title"] and doc["detail"], doc
    return doc


def make_trigger(world: TriggerWorld, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJobTrigger",
            "metadata": {"name": name},
            "spec": {"signature": "github", "secretRef": {"name": "hook-secret", "key": "secret"},
                     "serviceAccountName": "hooks",
                     "template": {"metadata": {"generateName": "push-",
                                               "labels": {"app": "ci"}}, "spec": SPEC},
                     "parameters": [{"from": "$.head_commit.message", "to": "prompt"}],
                     "filter": {"headers": [{"name": "X-GitHub-Event", "values": ["push"]}]},
                     **spec}}
    made: dict[str, Any] = world.admin.create_namespaced_custom_object(
        GROUP, VERSION, world.a, "videojobtriggers", body)
    # Served once the gateway's watch has brought it: an unsigned POST is 401, not 404.
    wait_until(lambda: post(world, name, b"{}", {}).status_code != 404, 10,
               f"the gateway to know trigger {name}")
    return made


def post(world: TriggerWorld, trigger: str, body: bytes, headers: dict[str, str]
         ) -> httpx.Response:
    return httpx.post(f"{world.gateway.url}/api/v1/namespaces/{world.a}/triggers/{trigger}",
                      content=body, headers={"Content-Type": "application/json", **headers},
                      timeout=10)


def github(payload: object, secret: bytes, delivery: str | None = None,
           event: str = "push") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                  "X-Hub-Signature-256": wa.sign_github(secret, body)}


def standard(payload: object, secret: bytes, stamp: int | None = None,
             delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if stamp is None else stamp
    delivery = delivery or f"msg_{uuid.uuid4().hex}"
    key = wa.signing_key("standard-webhooks", secret)
    return body, {"webhook-id": delivery, "webhook-timestamp": str(stamp),
                  "webhook-signature": wa.sign_standard(key, delivery, stamp, body)}


def made_by(world: TriggerWorld, trigger: str) -> list[dict[str, Any]]:
    listing = world.admin.list_namespaced_custom_object(
        GROUP, VERSION, world.a, "videojobs", label_selector=f"videojob.dev/trigger={trigger}")
    items: list[dict[str, Any]] = listing["items"]
    return items


def trigger_status(world: TriggerWorld, name: str) -> dict[str, Any]:
    obj = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, "videojobtriggers",
                                                   name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def ready(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)


def audited(cluster: Cluster, namespace: str, resource: str, verb: str) -> list[dict[str, Any]]:
    """The API server's audit events (ServiceAccounts' requests, Metadata level) for `verb
    resource` in `namespace`."""
    log = controlplane.audit_log(controlplane.Layout(cluster.kubeconfig.parent))
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in events if (e.get("objectRef") or {}).get("namespace") == namespace
            and e["objectRef"].get("resource") == resource and e.get("verb") == verb]


def test_a_signed_github_push_creates_a_videojob_as_the_triggers_service_account(
        trigger_world: TriggerWorld, cluster: Cluster) -> None:
    world = trigger_world
    make_trigger(world, "on-push")
    body, headers = github(PUSH, world.secrets["hook-secret"], delivery="72d3162e-cc78-11e3")
    resp = post(world, "on-push", body, headers)
    assert resp.status_code == 202, resp.text
    doc = resp.json()
    name = doc["name"]
    assert name.startswith("push-") and doc["deliveryId"] == "72d3162e-cc78-11e3"
    assert resp.headers["location"] == f"/api/v1/namespaces/{world.a}/videojobs/{name}"
    assert doc["links"]["events"].endswith(f"/videojobs/{name}/events")

    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, "videojobs", name)
    assert stored["spec"]["prompt"] == "a lighthouse at dawn"  # from the payload
    assert (stored["spec"]["durationSeconds"], stored["spec"]["resolution"]) == (2, "64x64")
    assert stored["metadata"]["labels"] == {"app": "ci", "videojob.dev/trigger": "on-push"}
    assert stored["metadata"]["annotations"]["videojob.dev/delivery"] == "72d3162e-cc78-11e3"
    # (An operator running on the cluster may have written it since, as a manager of its own.)
    assert "videojob-gateway" in {m["manager"] for m in stored["metadata"]["managedFields"]}

    # Made as the trigger's ServiceAccount: the gateway impersonated it, for the Secret and
    # for the VideoJob (the gateway's own identity may do neither). The local cluster's audit
    # log records ServiceAccounts' requests; the 403 test below shows it on any cluster.
    if cluster.local:
        gateway_user = f"system:serviceaccount:{world.system}:gateway"
        hooks = f"system:serviceaccount:{world.a}:hooks"
        creates = wait_until(lambda: [e for e in audited(cluster, world.a, "videojobs", "create")
                                      if e["responseStatus"]["code"] == 201], 10,
                             "the create in the audit log")
        assert [(e["user"]["username"], e["impersonatedUser"]["username"])
                for e in creates] == [(gateway_user, hooks)]
        reads = audited(cluster, world.a, "secrets", "get")
        assert reads and {e["impersonatedUser"]["username"] for e in reads} == {hooks}

    status = wait_until(lambda: (s := trigger_status(world, "on-push")).get("created") == 1
                        and s, 10, "the trigger's status")
    assert status["lastVideoJob"] == name and status["lastDeliveryID"] == "72d3162e-cc78-11e3"
    assert ready(status)["status"] == "True"  # type: ignore[index]
    row = cluster.kubectl("get", "vjt", "-n", world.a, "on-push", "--no-headers").stdout
    assert row.split()[:4] == ["on-push", "github", "hooks", "True"]

    # The same delivery again: 409, from memory; with a made-up delivery id (GitHub does not
    # sign it): 409 too, the body is the same.
    problem(post(world, "on-push", body, headers), 409, "replayed-delivery")
    forged = dict(headers, **{"X-GitHub-Delivery": "forged"})
    problem(post(world, "on-push", body, forged), 409, "replayed-delivery")
    # A restarted gateway remembers nothing, but the VideoJob's name comes from the delivery.
    world.gateway.stop()
    world.gateway.start()
    wait_until(lambda: post(world, "on-push", b"{}", {}).status_code != 404, 10,
               "the restarted gateway to know the trigger")
    problem(post(world, "on-push", body, headers), 409, "replayed-delivery")
    assert [v["metadata"]["name"] for v in made_by(world, "on-push")] == [name]

    # A ping (GitHub's first delivery to a new hook) is turned down by the filter: 200, nothing.
    ping_body, ping = github({"zen": "Keep it logically awesome."},
                             world.secrets["hook-secret"], event="ping")
    resp = post(world, "on-push", ping_body, ping)
    assert resp.status_code == 200 and resp.json()["status"] == "ignored", resp.text
    assert len(made_by(world, "on-push")) == 1


def test_bad_signatures_and_bad_bodies_make_nothing(trigger_world: TriggerWorld) -> None:
    world = trigger_world
    make_trigger(world, "strict")
    secret = world.secrets["hook-secret"]
    body, headers = github(PUSH, b"a guessed secret")
    doc = problem(post(world, "strict", body, headers), 401, "invalid-signature")
    assert "does not match" in doc["detail"]
    body, headers = github(PUSH, secret)
    problem(post(world, "strict", body.replace(b"dawn", b"dusk"), headers), 401,
            "invalid-signature")
    problem(post(world, "strict", body, {"X-GitHub-Event": "push"}), 401, "invalid-signature")
    raw = b'{"head_commit": {"message": '
    problem(post(world, "strict", raw, {"X-GitHub-Event": "push",
                                        "X-Hub-Signature-256": wa.sign_github(secret, raw)}),
            400, "malformed-json")
    body, headers = github({"head_commit": {"message": ["not", "text"]}}, secret)
    doc = problem(post(world, "strict", body, headers), 422, "invalid-payload")
    assert doc["errors"][0]["field"] == "spec.prompt"
    problem(httpx.post(f"{world.gateway.url}/api/v1/namespaces/{world.a}/triggers/strict",
                       content=body, headers={**headers, "Content-Type": "text/plain"}), 415,
            "unsupported-media-type")
    big = json.dumps({"head_commit": {"message": "x" * 300_000}}).encode()
    problem(post(world, "strict", big, {"X-Hub-Signature-256": wa.sign_github(secret, big)}),
            413, "body-too-large")
    problem(post(world, "no-such-trigger", body, headers), 404, "not-found")
    assert made_by(world, "strict") == []
    status = wait_until(lambda: (s := trigger_status(world, "strict")).get("refused") and s, 10,
                        "the refused count")
    assert status["refused"] == 1 and "created" not in status


def test_standard_webhooks_stale_timestamps_and_replays(trigger_world: TriggerWorld) -> None:
    world = trigger_world
    make_trigger(world, "renders", signature="standard-webhooks",
                 secretRef={"name": "std-secret", "key": "secret"},
                 template={"spec": SPEC}, filter={"payload": [{"path": "$.type",
                                                              "values": ["render.requested"]}]},
                 parameters=[{"from": "data.prompt", "to": "prompt"},
                             {"from": "data.seconds", "to": "durationSeconds"}],
                 rateLimit={"perMinute": 1, "burst": 2})
    secret = world.secrets["std-secret"]
    payload = {"type": "render.requested", "data": {"prompt": "a red balloon", "seconds": "3"}}
    body, headers = standard(payload, secret)
    resp = post(world, "renders", body, headers)
    assert resp.status_code == 202, resp.text
    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, "videojobs",
                                                      resp.json()["name"])
    assert (stored["spec"]["prompt"], stored["spec"]["durationSeconds"]) == ("a red balloon", 3)
    assert resp.json()["name"].startswith("renders-")
    problem(post(world, "renders", body, headers), 409, "replayed-delivery")

    stale_body, stale = standard(payload, secret, stamp=int(time.time()) - 600)
    doc = problem(post(world, "renders", stale_body, stale), 401, "stale-timestamp")
    assert "600 s old" in doc["detail"] or "601 s old" in doc["detail"]
    future_body, future = standard(payload, secret, stamp=int(time.time()) + 600)
    problem(post(world, "renders", future_body, future), 401, "stale-timestamp")

    # Two signatures, one of them valid (a rotation), and a v1a entry: accepted.
    body, headers = standard(payload, secret)
    headers["webhook-signature"] = ("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,xyz "
                                    + headers["webhook-signature"])
    assert post(world, "renders", body, headers).status_code == 202
    # Over the rate (a burst of 2, one a minute): 429 with Retry-After.
    body, headers = standard(payload, secret)
    resp = post(world, "renders", body, headers)
    problem(resp, 429, "too-many-requests")
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert len(made_by(world, "renders")) == 2


def test_a_secret_the_triggers_account_may_not_read_is_a_clear_error_and_leaks_nothing(
        trigger_world: TriggerWorld) -> None:
    world = trigger_world
    private = world.secrets["private"]
    # The account may not get this Secret of its own namespace.
    make_trigger(world, "peeks", secretRef={"name": "private", "key": "secret"})
    body, headers = github(PUSH, private)  # even signed with it
    doc = problem(post(world, "peeks", body, headers), 503, "trigger-not-ready")
    assert private.decode() not in json.dumps(doc) and "private" not in doc["detail"]
    cond = wait_until(lambda: ready(trigger_status(world, "peeks")), 10, "the Ready condition")
    assert (cond["status"], cond["reason"]) == ("False", "SecretUnreadable")
    assert f"system:serviceaccount:{world.a}:hooks cannot get Secret private" in cond["message"]
    assert private.decode() not in json.dumps(trigger_status(world, "peeks"))

    # An account the gateway may not act as: the same answer; the status names the fix.
    make_trigger(world, "as-default", serviceAccountName="default")
    body, headers = github(PUSH, world.secrets["hook-secret"])
    problem(post(world, "as-default", body, headers), 503, "trigger-not-ready")
    cond = wait_until(lambda: ready(trigger_status(world, "as-default")), 10, "the condition")
    assert (cond["status"], cond["reason"]) == ("False", "ImpersonationRefused")

    # Another tenant's Secret cannot even be named: secretRef has no namespace.
    with pytest.raises(client.ApiException) as info:
        world.admin.create_namespaced_custom_object(
            GROUP, VERSION, world.a, "videojobtriggers",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJobTrigger",
             "metadata": {"name": "cross"},
             "spec": {"signature": "github", "serviceAccountName": "hooks",
                      "secretRef": {"name": "hook-secret", "key": "secret",
                                    "namespace": world.b},
                      "template": {"spec": {"prompt": "x"}}}},
            field_validation="Strict")
    refusal = str(info.value.body)
    assert info.value.status == 400
    assert "unknown field" in refusal and "spec.secretRef.namespace" in refusal
    assert made_by(world, "peeks") == made_by(world, "as-default") == []


def test_an_account_without_create_is_refused_by_the_api_server_and_nothing_is_made(
        trigger_world: TriggerWorld) -> None:
    world = trigger_world
    make_trigger(world, "no-create", serviceAccountName="nocreate")
    body, headers = github(PUSH, world.secrets["hook-secret"])
    doc = problem(post(world, "no-create", body, headers), 403, "forbidden")
    assert f"system:serviceaccount:{world.a}:nocreate" in doc["detail"]
    assert made_by(world, "no-create") == []
    status = wait_until(lambda: (s := trigger_status(world, "no-create")).get("refused") and s,
                        10, "the refused count")
    assert status["refused"] == 1 and ready(status)["status"] == "True"  # type: ignore[index]


def test_the_admission_policy_lets_a_trigger_do_only_what_its_author_may(
        trigger_world: TriggerWorld, cluster: Cluster) -> None:
    world = trigger_world
    docs = list(yaml.safe_load_all(
        (REPO / "gateway" / "videojob_gateway" / "trigger_policy.yaml").read_text()))
    name = unique("videojob-triggers")
    policy, binding = docs
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    # Only this test's namespace: the other tests' triggers are written by the admin anyway.
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": world.a}}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([policy, binding]))
    author = f"system:serviceaccount:{world.a}:author"

    def as_author(secret: str) -> Any:
        # A new name each try: one made before the policy was in force is no answer.
        doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJobTrigger",
               "metadata": {"name": unique("mine"), "namespace": world.a},
               "spec": {"signature": "github", "serviceAccountName": "hooks",
                        "secretRef": {"name": secret, "key": "secret"},
                        "template": {"spec": {"prompt": "x"}}}}
        return cluster.kubectl("--as", author, "create", "-f", "-", input=yaml.safe_dump(doc),
                               check=False)

    try:
        # The author may create VideoJobs but not get hook-secret: a trigger would let them
        # use it through the webhook, so it is refused, saying why.
        out = wait_until(lambda: (o := as_author("hook-secret")).returncode != 0
                         and "needs get on Secret hook-secret" in o.stderr and o, 20,
                         "the policy to be in force")
        assert "the trigger verifies deliveries with it" in out.stderr
        cluster.kubectl("create", "secret", "generic", "authors-own", "-n", world.a,
                        "--from-literal=secret=x")
        cluster.kubectl("create", "role", "authors-own", "-n", world.a, "--verb=get",
                        "--resource=secrets", "--resource-name=authors-own")
        cluster.kubectl("create", "rolebinding", "authors-own", "-n", world.a,
                        "--role=authors-own", f"--serviceaccount={world.a}:author")
        out = wait_until(lambda: (o := as_author("authors-own")).returncode == 0 and o,
                         20, "the author's trigger to be admitted")
        assert "created" in out.stdout
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy",
                        name, "--ignore-not-found")


def test_secret_values_and_delivery_bodies_stay_out_of_the_gateways_answers(
        trigger_world: TriggerWorld) -> None:
    """The gateway's metrics count deliveries by result only (no trigger or namespace label)."""
    text = httpx.get(f"{trigger_world.gateway.url}/metrics", timeout=5).text
    lines = [line for line in text.splitlines()
             if line.startswith("videojob_gateway_trigger_deliveries_total")]
    assert lines and all(line.startswith('videojob_gateway_trigger_deliveries_total{result="')
                         for line in lines), lines
    for value in trigger_world.secrets.values():
        assert value.decode() not in text
    assert base64.b64encode(trigger_world.secrets["hook-secret"]).decode() not in text
