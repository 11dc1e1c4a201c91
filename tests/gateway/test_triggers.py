"""A trigger's delivery, end to end inside the gateway against a scripted API server: the order
of the checks (what is refused before any request), whom each request is made as, replays
across a restart, the status written, and the trigger object's record. The real API server's
side is in test_triggers_e2e.py."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from videojob_gateway import trigger_objects as to
from videojob_gateway import webhook_auth as wa
from videojob_gateway.cache import VideoJobs
from videojob_gateway.config import Settings
from videojob_gateway.kube import GATEWAY, Acting, ApiError, ApiServer
from videojob_gateway.problems import Problem
from videojob_gateway.triggers import TriggerDesk

SECRET = b"hook-secret"
SA = "system:serviceaccount:team-a:runner"
NOW = 1_700_000_000.0


def trigger_object(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "signature": "github", "secretRef": {"name": "hook", "key": "secret"},
        "serviceAccountName": "runner",
        "template": {"metadata": {"generateName": "push-", "labels": {"app": "ci"}},
                     "spec": {"durationSeconds": 4}},
        "parameters": [{"from": "$.head_commit.message", "to": "prompt"}],
        "filter": {"headers": [{"name": "X-GitHub-Event", "values": ["push"]}]},
        "rateLimit": {"perMinute": 60, "burst": 2},
    }
    return {"metadata": {"namespace": "team-a", "name": "on-push", "uid": "t-1",
                         "resourceVersion": "7"},
            "spec": {**base, **spec}, "status": {"created": 4}}


class ScriptedApi:
    """The API server as the desk sees it: Secrets readable by `readers`, creates recorded."""

    def __init__(self, secret: bytes = SECRET, readers: tuple[str, ...] = (SA,)) -> None:
        self.secret = secret
        self.readers = readers
        self.calls: list[tuple[str, str, Acting, Any]] = []
        self.create_error: ApiError | None = None
        self.conflicts = 0

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = "", acting: Acting = GATEWAY
                      ) -> dict[str, Any]:
        self.calls.append((method, path, acting, body))
        if "/secrets/" in path:
            if acting.impersonate not in self.readers:
                raise ApiError(403, {"message": f'secrets "hook" is forbidden: User '
                                                f'"{acting.impersonate}" cannot get resource'})
            return {"data": {"secret": base64.b64encode(self.secret).decode()}}
        if method == "POST":
            if self.create_error:
                raise self.create_error
            return {"metadata": {"name": body["metadata"]["name"], "uid": "vj-uid"}}
        if method == "PATCH" and self.conflicts and "metadata" in body:  # a counted write
            self.conflicts -= 1
            raise ApiError(409, {"reason": "Conflict"})
        if method == "GET":  # the trigger, read again after a conflict
            return {"metadata": {"resourceVersion": "8"}, "status": {"created": 10}}
        return {}

    def made(self, method: str, part: str = "") -> list[tuple[str, str, Acting, Any]]:
        return [c for c in self.calls if c[0] == method and part in c[1]]


def desk_for(api: ScriptedApi, *objects: dict[str, Any], videojobs: VideoJobs | None = None,
             **settings: Any) -> TriggerDesk:
    desk = TriggerDesk(Settings(**settings), cast(ApiServer, api), videojobs or VideoJobs(),
                       CollectorRegistry(), clock=lambda: NOW, monotonic=lambda: 0.0)
    desk.store.replace(list(objects))
    return desk


PAYLOAD = {"ref": "refs/heads/main", "head_commit": {"message": "a lighthouse at dawn"}}


def github(payload: object = PAYLOAD, key: bytes = SECRET, event: str = "push",
           delivery: str = "d-1", raw: bytes | None = None) -> tuple[dict[str, str], bytes]:
    body = raw if raw is not None else json.dumps(payload).encode()
    return ({"content-type": "application/json", "x-github-event": event,
             "x-github-delivery": delivery,
             "x-hub-signature-256": wa.sign_github(key, body)}, body)


def deliver(desk: TriggerDesk, request: tuple[dict[str, str], bytes],
            name: str = "on-push") -> tuple[int, dict[str, Any]]:
    headers, body = request

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def run() -> tuple[int, dict[str, Any]]:
        resp = await desk.deliver("team-a", name, headers, chunks())
        return resp.status_code, json.loads(bytes(resp.body))

    return asyncio.run(run())


def refused(desk: TriggerDesk, request: tuple[dict[str, str], bytes],
            name: str = "on-push") -> Problem:
    with pytest.raises(Problem) as info:
        deliver(desk, request, name)
    return info.value


def test_a_delivery_creates_the_videojob_as_the_triggers_service_account() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    status, doc = deliver(desk, github())
    assert status == 202
    assert doc["trigger"] == "on-push" and doc["deliveryId"] == "d-1"
    assert doc["name"].startswith("push-") and len(doc["name"]) == len("push-") + 16
    assert doc["links"]["self"] == f"/api/v1/namespaces/team-a/videojobs/{doc['name']}"
    (read,) = api.made("GET", "/secrets/")
    assert read[1] == "/api/v1/namespaces/team-a/secrets/hook" and read[2].impersonate == SA
    ((_, path, acting, videojob),) = api.made("POST")
    assert path == "/apis/videojob.dev/v1alpha1/namespaces/team-a/videojobs"
    assert acting == Acting(impersonate=SA)
    assert videojob["spec"] == {"durationSeconds": 4, "prompt": "a lighthouse at dawn"}
    assert videojob["metadata"]["labels"] == {"app": "ci", "videojob.dev/trigger": "on-push"}
    assert videojob["metadata"]["annotations"] == {"videojob.dev/delivery": "d-1"}
    # The status, as the gateway, on the resourceVersion it was computed from.
    patches = [c for c in api.made("PATCH") if "created" in c[3]["status"]]
    ((_, path, acting, patch),) = patches
    assert path.endswith("/videojobtriggers/on-push/status") and acting == GATEWAY
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["created"] == 5 and patch["status"]["lastVideoJob"] == doc["name"]
    ready = [c[3]["status"]["conditions"] for c in api.made("PATCH")
             if "conditions" in c[3]["status"]]
    assert ready and ready[0][0]["status"] == "True"


def test_unsigned_unknown_and_stale_deliveries_cost_the_api_server_nothing() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object(),
                    {**trigger_object(signature="standard-webhooks"),
                     "metadata": {"namespace": "team-a", "name": "std", "resourceVersion": "1"}})
    assert refused(desk, github(), name="nope").status == 404
    headers, body = github()
    del headers["x-hub-signature-256"]
    p = refused(desk, (headers, body))
    assert (p.status, p.slug) == (401, "invalid-signature")
    assert p.headers["WWW-Authenticate"].startswith("Signature")
    stale = {"content-type": "application/json", "webhook-id": "msg_1",
             "webhook-timestamp": str(int(NOW) - 600), "webhook-signature": "v1,AAAA"}
    p = refused(desk, (stale, b"{}"), name="std")
    assert (p.status, p.slug) == (401, "stale-timestamp")
    assert refused(desk, ({**github()[0], "content-type": "text/plain"}, b"{}")).status == 415
    assert api.calls == []


def test_a_wrong_signature_or_a_changed_body_is_401_after_the_secret_is_read_once() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    assert refused(desk, github(key=b"guess")).status == 401
    headers, body = github()
    assert refused(desk, (headers, body.replace(b"dawn", b"dusk"))).status == 401
    assert len(api.made("GET", "/secrets/")) == 1  # cached
    assert api.made("POST") == []


def test_the_same_delivery_again_is_409_in_memory_after_a_restart_and_across_replicas() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    status, doc = deliver(desk, github())
    assert status == 202
    assert refused(desk, github()).status == 409  # remembered
    # GitHub does not sign its delivery id: a replay with a new one is the same body.
    assert refused(desk, github(delivery="forged")).slug == "replayed-delivery"
    assert len(api.made("POST")) == 1

    # Restarted: nothing remembered, but the VideoJob (named after the delivery) is cached.
    videojobs = VideoJobs()
    videojobs.replace([{"metadata": {"namespace": "team-a", "name": doc["name"],
                                     "resourceVersion": "1", "creationTimestamp": "t"}}])
    restarted = desk_for(api, trigger_object(), videojobs=videojobs)
    assert refused(restarted, github()).status == 409
    assert len(api.made("POST")) == 1

    # Another replica whose cache has not seen it yet: the API server's AlreadyExists.
    api.create_error = ApiError(409, {"reason": "AlreadyExists", "message": "exists"})
    replica = desk_for(api, trigger_object())
    assert refused(replica, github()).slug == "replayed-delivery"
    assert refused(replica, github()).slug == "replayed-delivery"
    assert len(api.made("POST")) == 2  # the second time it was remembered


def test_a_secret_the_service_account_cannot_read_is_503_and_the_status_says_why() -> None:
    api = ScriptedApi(readers=())
    desk = desk_for(api, trigger_object())
    p = refused(desk, github())
    assert (p.status, p.slug) == (503, "trigger-not-ready")
    assert "hook" not in p.detail and "runner" not in p.detail  # only: see the status
    ((_, _, acting, patch),) = api.made("PATCH")
    assert acting == GATEWAY
    (cond,) = patch["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False",
                                                              "SecretUnreadable")
    assert SA in cond["message"]
    assert refused(desk, github()).status == 503
    assert len(api.made("GET", "/secrets/")) == 1  # the failure is cached too
    assert api.made("POST") == []


@pytest.mark.parametrize(("signature", "secret", "reason"), [
    ("github", b"", "SecretKeyMissing"), ("standard-webhooks", b"whsec_!!", "SecretKeyInvalid")])
def test_a_secret_without_a_usable_key_is_not_ready(signature: str, secret: bytes,
                                                    reason: str) -> None:
    api = ScriptedApi(secret=secret)
    request = github() if signature == "github" else ({
        "content-type": "application/json", "webhook-id": "m", "webhook-timestamp": str(int(NOW)),
        "webhook-signature": "v1,AAAA"}, b"{}")
    p = refused(desk_for(api, trigger_object(signature=signature)), request)
    assert p.status == 503
    assert api.made("PATCH")[0][3]["status"]["conditions"][0]["reason"] == reason


def test_filtered_deliveries_are_200_and_make_nothing() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    status, doc = deliver(desk, github(event="ping"))
    assert status == 200
    assert doc == {"status": "ignored",
                   "reason": "header X-GitHub-Event is 'ping', not one of push"}
    assert api.made("POST") == []


def test_the_rate_limit_is_429_with_retry_after() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    for i in range(2):
        assert deliver(desk, github({**PAYLOAD, "n": i}, delivery=f"d{i}"))[0] == 202
    p = refused(desk, github({**PAYLOAD, "n": 3}, delivery="d3"))
    assert (p.status, p.headers["Retry-After"]) == (429, "1")
    # Unsigned requests take no token: they cannot lock the real sender out.
    desk = desk_for(ScriptedApi(), trigger_object())
    for _ in range(5):
        assert refused(desk, github(key=b"guess")).status == 401
    assert deliver(desk, github())[0] == 202


def test_bad_json_and_unmappable_payloads_after_a_valid_signature() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object())
    p = refused(desk, github(raw=b'{"head_commit": '))
    assert (p.status, p.slug) == (400, "malformed-json")
    p = refused(desk, github({"head_commit": {}}))
    assert (p.status, p.slug) == (422, "invalid-payload")
    assert p.errors[0].field == "spec.prompt"
    counts = [c[3]["status"] for c in api.made("PATCH") if "refused" in c[3]["status"]]
    assert counts == [{"refused": 1}]
    assert api.made("POST") == []


def test_a_status_conflict_reads_the_trigger_again() -> None:
    api = ScriptedApi()
    api.conflicts = 1
    desk = desk_for(api, trigger_object())
    assert deliver(desk, github())[0] == 202
    counted = [c[3] for c in api.made("PATCH") if "created" in c[3]["status"]]
    assert [c["status"]["created"] for c in counted] == [5, 11]
    assert counted[1]["metadata"] == {"resourceVersion": "8"}


def test_the_api_servers_refusal_of_the_videojob_comes_back_and_is_counted() -> None:
    api = ScriptedApi()
    api.create_error = ApiError(403, {"message": "cannot create resource videojobs"})
    desk = desk_for(api, trigger_object())
    with pytest.raises(ApiError):
        deliver(desk, github())
    assert [c[3]["status"] for c in api.made("PATCH") if "refused" in c[3]["status"]] == [
        {"refused": 1}]
    api.create_error = None
    assert deliver(desk, github())[0] == 202  # not remembered: it made nothing


def test_the_record_of_a_trigger_object() -> None:
    t = to.from_object(trigger_object(uriPrefixes=["gs://m/a/"]))
    assert (t.namespace, t.name, t.user) == ("team-a", "on-push", SA)
    assert (t.name_prefix, t.per_minute, t.burst) == ("push-", 60, 2)
    assert t.parameters[0].path == ("head_commit", "message")
    plain = to.from_object({**trigger_object(), "spec": {
        k: v for k, v in trigger_object()["spec"].items()
        if k not in ("rateLimit", "filter")} | {"template": {"spec": {"prompt": "x"}}}})
    assert (plain.name_prefix, plain.per_minute, plain.burst) == ("on-push-", 30, 10)
    for bad in [trigger_object(parameters=[{"from": "$.x", "to": "backend"}]),
                trigger_object(parameters=[{"from": "$.x", "to": "audio"}]),
                trigger_object(signature="hmac-sha1"),
                {"metadata": {"name": "x"}}]:
        with pytest.raises(to.InvalidTrigger):
            to.from_object(bad)


def test_an_invalid_trigger_is_not_ready_without_reading_anything() -> None:
    api = ScriptedApi()
    desk = desk_for(api, trigger_object(parameters=[{"from": "$.x", "to": "priority"}]))
    assert refused(desk, github()).slug == "trigger-not-ready"
    assert [c[0] for c in api.calls] == ["PATCH"]
    assert "priority" in api.calls[0][3]["status"]["conditions"][0]["message"]


def test_readiness_is_written_only_when_it_changes() -> None:
    first = to.readiness({}, False, "SecretUnreadable", "no", "2026-01-01T00:00:00Z")
    assert first is not None
    assert to.readiness(first, False, "SecretUnreadable", "no", "later") is None
    ready = to.readiness(first, True, "SecretReadable", "yes", "2026-01-02T00:00:00Z")
    assert ready is not None
    assert ready["conditions"][0]["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    other = to.readiness(first, False, "SecretKeyMissing", "gone", "2026-01-03T00:00:00Z")
    assert other is not None  # a new reason, the same status: the transition time stays
    assert other["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
