"""Webhook signatures (GitHub, Standard Webhooks), the timestamp window, and the bounded memory
of deliveries seen. Vectors are computed here with hmac, and one is the Standard Webhooks
specification's own example."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from videojob_gateway import webhook_auth as wa

BODY = b'{"ref":"refs/heads/main","head_commit":{"message":"a lighthouse at dawn"}}'
GITHUB_SECRET = b"It's a Secret to Everybody"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_700_000_000


def github_headers(body: bytes = BODY, key: bytes = GITHUB_SECRET) -> dict[str, str]:
    return {"x-hub-signature-256": wa.sign_github(key, body),
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


def standard_headers(body: bytes = BODY, secret: str = WHSEC, stamp: int = NOW,
                     delivery: str = "msg_p5jXN8AQM9LWM0D4loKWxJek") -> dict[str, str]:
    key = wa.signing_key("standard-webhooks", secret.encode())
    return {"webhook-id": delivery, "webhook-timestamp": str(stamp),
            "webhook-signature": wa.sign_standard(key, delivery, stamp, body)}


def verify(scheme: wa.Signature, headers: dict[str, str], secret: bytes,
           body: bytes = BODY, now: float = NOW, tolerance: float = 300) -> wa.Presented:
    claims = wa.presented(scheme, headers, now, tolerance)
    wa.check(claims, wa.signing_key(scheme, secret), body)
    return claims


def rejected(scheme: wa.Signature, headers: dict[str, str], secret: bytes,
             body: bytes = BODY, now: float = NOW) -> wa.Rejected:
    with pytest.raises(wa.Rejected) as info:
        verify(scheme, headers, secret, body, now)
    return info.value


def test_github_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    assert wa.sign_github(GITHUB_SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    claims = verify("github", github_headers(), GITHUB_SECRET)
    assert claims.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    # Upper-case hex and a trailing newline in the Secret (echo > file) are the same.
    headers = github_headers()
    headers["x-hub-signature-256"] = "sha256=" + headers["x-hub-signature-256"][7:].upper()
    verify("github", headers, GITHUB_SECRET + b"\n")


def test_github_wrong_key_tampered_body_and_bad_headers_are_rejected() -> None:
    assert "does not match" in str(rejected("github", github_headers(key=b"guess"),
                                            GITHUB_SECRET))
    # One byte changed on the way (a re-serialised body is a changed body too).
    assert "does not match" in str(rejected("github", github_headers(), GITHUB_SECRET,
                                            body=BODY.replace(b"dawn", b"dusk")))
    assert "does not match" in str(rejected("github", github_headers(), GITHUB_SECRET,
                                            body=BODY + b"\n"))
    assert "no X-Hub-Signature-256" in str(rejected("github", {}, GITHUB_SECRET))
    for bad in ["sha1=" + "0" * 40, "sha256=" + "0" * 63, "sha256=zz" + "0" * 62,
                "sha256=" + hashlib.sha256(BODY).hexdigest() + "ü"]:
        assert "must be sha256=" in str(rejected("github", {"x-hub-signature-256": bad},
                                                 GITHUB_SECRET)), bad
    # The legacy SHA-1 header alone is not accepted.
    sha1 = "sha1=" + hmac.new(GITHUB_SECRET, BODY, hashlib.sha1).hexdigest()
    assert "no X-Hub-Signature-256" in str(rejected("github", {"x-hub-signature": sha1},
                                                    GITHUB_SECRET))


def test_a_github_replay_is_known_by_its_signed_body_whatever_its_delivery_id() -> None:
    first = verify("github", github_headers(), GITHUB_SECRET)
    forged = dict(github_headers(), **{"x-github-delivery": "made-up"})
    again = verify("github", forged, GITHUB_SECRET)  # the id is not signed: it verifies
    assert first.replay_keys(BODY)[0] == again.replay_keys(BODY)[0]
    assert first.replay_keys(BODY)[0].startswith("body:")
    assert "id:made-up" in again.replay_keys(BODY)
    no_id = {"x-hub-signature-256": wa.sign_github(GITHUB_SECRET, BODY)}
    assert verify("github", no_id, GITHUB_SECRET).replay_keys(BODY) == first.replay_keys(BODY)[:1]


def test_the_standard_webhooks_specification_example() -> None:
    # From the Standard Webhooks reference libraries' tests.
    secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    claims = verify("standard-webhooks", headers, secret, b'{"test": 2432232314}',
                    now=1614265330)
    assert claims.replay_keys(b"") == ("id:msg_p5jXN8AQM9LWM0D4loKWxJek",)
    # The prefix is optional; the bytes are the base64 after it.
    verify("standard-webhooks", headers, secret.removeprefix(b"whsec_"), b'{"test": 2432232314}',
           now=1614265330)


def test_standard_webhooks_signed_content_is_id_timestamp_and_body() -> None:
    verify("standard-webhooks", standard_headers(), WHSEC.encode())
    other = standard_headers(delivery="msg_other")
    tampered = dict(standard_headers(), **{"webhook-id": "msg_other"})
    assert "does not match" in str(rejected("standard-webhooks", tampered, WHSEC.encode()))
    later = dict(standard_headers(), **{"webhook-timestamp": str(NOW + 1)})
    assert "does not match" in str(rejected("standard-webhooks", later, WHSEC.encode()))
    assert "does not match" in str(rejected("standard-webhooks", standard_headers(),
                                            WHSEC.encode(), body=BODY + b" "))
    wrong = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()
    assert "does not match" in str(rejected("standard-webhooks", standard_headers(),
                                            wrong.encode()))
    verify("standard-webhooks", other, WHSEC.encode())


def test_several_signatures_one_valid_and_other_versions_skipped() -> None:
    good = standard_headers()["webhook-signature"]
    bad = "v1," + base64.b64encode(b"\0" * 32).decode()
    asym = "v1a,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4n5Kl8lQwqpV0Nyxb4bmGcSsK9j5QaaEJk"
    headers = dict(standard_headers(), **{"webhook-signature": f"{bad} {asym} {good}"})
    verify("standard-webhooks", headers, WHSEC.encode())
    # Rotation: the old key's signature next to the new one's.
    only_bad = dict(standard_headers(), **{"webhook-signature": f"{bad} v1,not-base64!"})
    assert "does not match" in str(rejected("standard-webhooks", only_bad, WHSEC.encode()))
    # A non-v1 entry alone is no signature at all, even if its bytes are right.
    v2 = dict(standard_headers(), **{"webhook-signature": "v2," + good[3:]})
    assert "no v1" in str(rejected("standard-webhooks", v2, WHSEC.encode()))


def test_standard_webhooks_missing_and_malformed_headers() -> None:
    for drop in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = standard_headers()
        del headers[drop]
        assert drop in str(rejected("standard-webhooks", headers, WHSEC.encode()))
    for stamp in ("", "1614265330.5", "-5", "soon"):
        headers = dict(standard_headers(), **{"webhook-timestamp": stamp})
        assert "unix seconds" in str(rejected("standard-webhooks", headers, WHSEC.encode()))
    long_id = dict(standard_headers(), **{"webhook-id": "x" * 300})
    assert "at most 256" in str(rejected("standard-webhooks", long_id, WHSEC.encode()))


def test_timestamps_outside_the_tolerance_are_stale() -> None:
    for stamp, word in [(NOW - 301, "old"), (NOW + 301, "in the future")]:
        e = rejected("standard-webhooks", standard_headers(stamp=stamp), WHSEC.encode())
        assert e.stale and word in str(e) and "301 s" in str(e)
    for stamp in (NOW - 300, NOW + 300):  # the edges are in
        verify("standard-webhooks", standard_headers(stamp=stamp), WHSEC.encode())
    # Stale is decided before the secret is needed: no Secret read for it.
    with pytest.raises(wa.Rejected):
        wa.presented("standard-webhooks", standard_headers(stamp=NOW - 3600), NOW, 300)
    # Configurable.
    wa.presented("standard-webhooks", standard_headers(stamp=NOW - 3600), NOW, 3600)


def test_secrets_that_are_not_signing_keys() -> None:
    for scheme, value in [("github", b"  \n"), ("standard-webhooks", b"whsec_"),
                          ("standard-webhooks", b"whsec_not base64!")]:
        with pytest.raises(wa.InvalidSecret):
            wa.signing_key(scheme, value)


def test_seen_deliveries_are_bounded_least_recently_seen_first() -> None:
    seen = wa.SeenDeliveries(3)
    a, b = ("ns", "t1"), ("ns", "t2")
    seen.remember(a, ["id:1", "body:x"])
    assert seen.seen(a, ["id:1"]) and seen.seen(a, ["id:other", "body:x"])
    assert not seen.seen(b, ["id:1"])  # per trigger
    seen.remember(a, ["id:2"])
    assert seen.seen(a, ["id:1"])  # touched: now the most recent
    seen.remember(a, ["id:3"])  # four entries: the oldest (body:x) goes
    assert len(seen) == 3
    assert not seen.seen(a, ["body:x"])
    assert seen.seen(a, ["id:1"]) and seen.seen(a, ["id:2"]) and seen.seen(a, ["id:3"])
    with pytest.raises(ValueError):
        wa.SeenDeliveries(0)
