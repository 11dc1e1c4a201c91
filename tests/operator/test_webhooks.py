"""A webhook notification on the wire: Standard Webhooks signing (webhooks.py), the body, the
signing secrets read from tenants' Secrets (signing_secrets.py), the address policy the
destinations go through (videojob_common.addresses) and one attempt (delivery.post), and the
delivery loop handing outcomes back (delivery.Deliveries).

The address policy is tested as a pure function with an injected resolver: no test sends a
packet anywhere but to servers it starts on 127.0.0.1, and the refusals are shown to open no
connection at all."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import http.server
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiException

from videojob_common.addresses import AddressRefused, checked_address, networks, public
from videojob_operator import webhooks
from videojob_operator.api import NotifyEvent, PendingNotification, SecretKeySelector
from videojob_operator.config import LiveConfig, OperatorConfig
from videojob_operator.delivery import Answer, Deliveries, post
from videojob_operator.notifications import NotifyPolicy
from videojob_operator.signing_secrets import SecretUnavailable, SigningSecrets
from videojob_operator.webhooks import BadSecret, signing_key

# Standard Webhooks' published example (github.com/standard-webhooks/standard-webhooks, the
# libraries' tests): this secret, id, timestamp and body sign to this value.
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY = ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                        b'{"test": 2432232314}')
EXAMPLE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
VJ = {"metadata": {"namespace": "team-a", "name": "clip", "uid": "u1"}}


def independently_signed(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, msg_id.encode() + b"." + str(timestamp).encode() + b"." + body,
                   hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


# -- signing and the body ---------------------------------------------------------------------

def test_the_standard_webhooks_example_signs_to_its_published_value() -> None:
    key = signing_key(EXAMPLE_SECRET)
    assert webhooks.signature(key, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY) == EXAMPLE_SIGNATURE
    assert independently_signed(key, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY) == EXAMPLE_SIGNATURE


def test_headers_sign_id_timestamp_and_body() -> None:
    body = b'{"type":"Succeeded"}'
    h = webhooks.headers(KEY, "msg_1", 1767268800, body)
    assert h["webhook-id"] == "msg_1" and h["webhook-timestamp"] == "1767268800"
    assert h["webhook-signature"] == independently_signed(KEY, "msg_1", 1767268800, body)
    assert h["content-type"] == "application/json"
    assert h["webhook-signature"] != independently_signed(KEY, "msg_1", 1767268801, body)


@pytest.mark.parametrize(("value", "problem"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
    ("whsec_not base64!", "followed by base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes"),
    ("whsec_" + base64.b64encode(bytes(65)).decode(), "holds 65 bytes"),
])
def test_a_value_that_is_not_a_signing_secret_is_refused_without_showing_it(
        value: str, problem: str) -> None:
    with pytest.raises(BadSecret, match=problem) as e:
        signing_key(value)
    assert value not in str(e.value)


def notification(kind: NotifyEvent, **kw: Any) -> PendingNotification:
    return PendingNotification(id="msg_x", type=kind, time="2026-01-01T12:00:00.250000Z",
                               phase=kw.pop("phase", "Running"), stage="segments", progress=40,
                               message="frame 10/48", **kw)


def test_the_body_is_the_event_and_the_videojob_as_it_was() -> None:
    doc = json.loads(webhooks.body(VJ, notification(NotifyEvent.RUNNING)))
    assert doc == {"type": "Running", "timestamp": "2026-01-01T12:00:00.250000Z",
                   "data": {"namespace": "team-a", "name": "clip", "uid": "u1",
                            "phase": "Running", "stage": "segments", "progress": 40,
                            "message": "frame 10/48"}}
    done = json.loads(webhooks.body(VJ, notification(
        NotifyEvent.SUCCEEDED, phase="Succeeded", output_uri="gs://b/o.mp4", reason="x")))
    assert done["data"]["outputURI"] == "gs://b/o.mp4" and "reason" not in done["data"]
    failed = json.loads(webhooks.body(VJ, notification(NotifyEvent.FAILED, phase="Failed",
                                                       reason="PermanentError")))
    assert failed["data"]["reason"] == "PermanentError" and "outputURI" not in failed["data"]
    # Every attempt sends the same bytes (the receiver may compare what it kept).
    n = notification(NotifyEvent.RUNNING)
    assert webhooks.body(VJ, n) == webhooks.body(VJ, n)


# -- signing secrets --------------------------------------------------------------------------

class Reader:
    def __init__(self) -> None:
        self.calls = 0
        self.answer: dict[str, Any] | ApiException = secret_doc(SECRET)

    async def __call__(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls += 1
        if isinstance(self.answer, ApiException):
            raise self.answer
        return self.answer


def secret_doc(value: str, key: str = "secret") -> dict[str, Any]:
    return {"metadata": {"name": "hook"}, "data": {key: base64.b64encode(value.encode()).decode()}}


REF = SecretKeySelector(name="hook", key="secret")
FIELD = "spec.notify[0].secretRef"


def test_a_secret_is_read_once_per_ttl() -> None:
    clock = [100.0]
    reader = Reader()
    secrets = SigningSecrets(reader, clock=lambda: clock[0])

    async def scenario() -> list[bytes]:
        keys = [await secrets.key("team-a", REF, FIELD, 60) for _ in range(3)]
        clock[0] += 61
        reader.answer = secret_doc("whsec_" + base64.b64encode(bytes(24)).decode())
        keys.append(await secrets.key("team-a", REF, FIELD, 60))  # rotated: read again
        return keys

    keys = asyncio.run(scenario())
    assert keys == [KEY, KEY, KEY, bytes(24)] and reader.calls == 2


@pytest.mark.parametrize(("answer", "problem", "remembered"), [
    (ApiException(status=403, reason="Forbidden"),
     "spec.notify[0].secretRef: the operator may not read Secret team-a/hook: grant its "
     "ServiceAccount `get` on it by name", True),
    (ApiException(status=404, reason="Not Found"),
     "spec.notify[0].secretRef: Secret team-a/hook does not exist", True),
    (secret_doc(SECRET, key="other"),
     "spec.notify[0].secretRef: Secret team-a/hook has no key 'secret'", True),
    (secret_doc("plain password"),
     "spec.notify[0].secretRef: Secret team-a/hook is not a signing secret", True),
    (ApiException(status=503, reason="Unavailable"),
     "spec.notify[0].secretRef: Secret team-a/hook could not be read (HTTP 503)", False),
])
def test_a_secret_that_cannot_be_had_names_the_field_and_is_asked_again_soon(
        answer: Any, problem: str, remembered: bool) -> None:
    clock = [100.0]
    reader = Reader()
    reader.answer = answer
    secrets = SigningSecrets(reader, clock=lambda: clock[0])

    async def attempt() -> str:
        with pytest.raises(SecretUnavailable) as e:
            await secrets.key("team-a", REF, FIELD, 60)
        return str(e.value)

    assert asyncio.run(attempt()).startswith(problem)
    asyncio.run(attempt())
    assert reader.calls == (1 if remembered else 2)  # a refusal is remembered, for 10 s
    clock[0] += 10
    reader.answer = secret_doc(SECRET)  # the namespace granted it (or created it)
    assert asyncio.run(secrets.key("team-a", REF, FIELD, 60)) == KEY


# -- the address policy (pure, an injected resolver) --------------------------------------------

def resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        raise OSError(f"no such host {host}")
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1",  # loopback
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "fc00::1", "fd12:3456::1",  # private
    "169.254.169.254", "169.254.1.1", "fe80::1",  # link-local, the metadata server among them
    "fd00:ec2::254", "100.100.100.200",  # metadata servers that are not link-local
    "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "::ffff:10.0.0.1", "2002:a00:1::1",
])
def test_no_destination_that_is_not_public_passes(address: str) -> None:
    assert not public(ipaddress.ip_address(address))
    with pytest.raises(AddressRefused):
        checked_address("hooks.example.com", 443, (), resolver({"hooks.example.com": [address]}))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_a_public_destination_passes_and_is_the_address_connected_to(address: str) -> None:
    resolve = resolver({"hooks.example.com": [address]})
    assert checked_address("hooks.example.com", 443, (), resolve) == address


def test_every_address_of_a_name_must_pass_and_allowed_networks_are_explicit() -> None:
    both = resolver({"rebind.example.com": ["93.184.215.14", "127.0.0.1"],
                     "hooks.internal": ["10.1.2.3"]})
    with pytest.raises(AddressRefused):
        checked_address("rebind.example.com", 443, (), both)
    with pytest.raises(AddressRefused):
        checked_address("nowhere.example.com", 443, (), both)
    assert checked_address("hooks.internal", 80, networks(["10.0.0.0/8"]), both) == "10.1.2.3"
    # An administrator allowing a private network does not allow the metadata server.
    metadata = resolver({"m": ["169.254.169.254"]})
    with pytest.raises(AddressRefused):
        checked_address("m", 80, networks(["10.0.0.0/8", "fc00::/7"]), metadata)


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a connection was opened: {args}")
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1",
                                     "fe80::1", "fc00::1"])
def test_a_refused_destination_is_never_connected_to(address: str, no_connections: None
                                                     ) -> None:
    answer = post("https://hooks.example.com/x", b"{}", {}, (), 5,
                  resolver({"hooks.example.com": [address]}))
    assert (answer.delivered, answer.state) == (False, "AddressRefused")
    assert "nothing was sent" in answer.error and address not in answer.error


# -- one attempt against a receiver on 127.0.0.1 ------------------------------------------------

class Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[int]
    seen: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers), body))
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        if 300 <= code < 400:
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[int], list[tuple[str, dict[str, str], bytes]]]]:
    answers: list[int] = []
    seen: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Handler", (Receiver,), {"answers": answers, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks?team=a", answers, seen
    server.shutdown()
    server.server_close()


LOOPBACK = networks(["127.0.0.0/8"])


def test_a_post_is_delivered_signed_and_a_refusal_or_redirect_is_not(receiver: Any) -> None:
    url, answers, seen = receiver
    body = webhooks.body(VJ, notification(NotifyEvent.RUNNING))
    headers = webhooks.headers(KEY, "msg_x", 1767268800, body)
    assert post(url, body, headers, LOOPBACK, 5) == Answer(True)
    path, got, sent = seen[0]
    assert path == "/hooks?team=a" and sent == body
    assert got["webhook-signature"] == independently_signed(KEY, "msg_x", 1767268800, body)
    answers += [500, 302]
    assert post(url, body, headers, LOOPBACK, 5) == Answer(False, "HTTP 500")
    assert post(url, body, headers, LOOPBACK, 5) == Answer(
        False, "HTTP 302 (redirects are not followed)")
    assert len(seen) == 3  # the redirect's target was not asked
    # Loopback not allowed by this configuration: refused, and the server saw nothing more.
    assert post(url, body, headers, (), 5).state == "AddressRefused"
    assert len(seen) == 3


# -- the delivery loop ------------------------------------------------------------------------

class FakeStore:
    def __init__(self, vj: dict[str, Any]) -> None:
        self.videojobs = {("team-a", "clip"): vj}


def videojob_with(pending: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"namespace": "team-a", "name": "clip", "uid": "u1"},
            "spec": {"prompt": "x", "notify": [
                {"url": "https://hooks.example.com/x", "events": ["Queued", "Running"],
                 "secretRef": {"name": "hook", "key": "secret"}}]},
            "status": {"notifications": [{"index": 0, "state": "Ready", "pending": pending}]}}


def test_the_loop_sends_what_is_due_once_and_hands_the_outcome_to_the_planner() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 1, tzinfo=dt.UTC)
    vj = videojob_with([
        {"id": "msg_a", "type": "Queued", "time": "2026-01-01T12:00:00.000000Z"},
        {"id": "msg_b", "type": "Running", "time": "2026-01-01T12:00:00.500000Z"}])
    sent: list[tuple[str, dict[str, str], bytes]] = []

    def send(url: str, body: bytes, headers: dict[str, str], allow: Any, timeout: float,
             resolve: Any) -> Answer:
        sent.append((url, headers, body))
        return Answer(True)

    requeued: list[tuple[str, str]] = []
    reader = Reader()
    config = LiveConfig(OperatorConfig(notify=NotifyPolicy(allow_networks={"team-a": [
        "10.0.0.0/8"]})))

    async def scenario() -> Deliveries:
        d = Deliveries(FakeStore(vj), config, SigningSecrets(reader),  # type: ignore[arg-type]
                       requeued.append, clock=lambda: now, send=send)
        d.look(("team-a", "clip"))
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(sent) == 2:
                break
        d.look(("team-a", "clip"))  # an echo before the status records them: not sent again
        await asyncio.sleep(0.05)
        await d.stop()
        return d

    d = asyncio.run(scenario())
    assert [h["webhook-id"] for _, h, _ in sent] == ["msg_a", "msg_b"]  # one at a time, oldest
    for _, h, body in sent:
        assert h["webhook-signature"] == independently_signed(
            KEY, h["webhook-id"], int(h["webhook-timestamp"]), body)
    assert reader.calls == 1  # the key was remembered
    assert [(o.id, o.attempt, o.delivered) for o in d.unrecorded(("team-a", "clip"))] == [
        ("msg_a", 1, True), ("msg_b", 1, True)]
    assert requeued == [("team-a", "clip")] * 2
    # The status recorded them (the notifications left the list): the outcomes are dropped.
    vj["status"]["notifications"][0]["pending"] = []
    d.look(("team-a", "clip"))
    assert d.unrecorded(("team-a", "clip")) == ()
