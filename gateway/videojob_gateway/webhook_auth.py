"""Is a webhook delivery from who holds the trigger's secret, and is it new: GitHub's and
Standard Webhooks' HMAC-SHA256 signatures over the raw body, the Standard Webhooks timestamp
window, and the deliveries already seen. Pure: the route hands in headers, bytes and the clock.

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. The delivery id
  (`X-GitHub-Delivery`) is not signed, so a replay with a made-up id would look new: a GitHub
  delivery is recognised by its body's digest too (the body is signed), and the VideoJob's name
  is derived from that digest.
- Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (unix seconds) and
  `webhook-signature` (space-separated `v1,<base64>`; other versions are skipped), signed over
  `<id>.<timestamp>.<body>` with the secret's bytes (base64 after `whsec_`). The id and the
  timestamp are signed; a timestamp outside the tolerance is refused, so a captured delivery
  can be replayed only within it, where the id catches it.

Digests are compared with `hmac.compare_digest`, every offered signature in full.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from videojob_common.triggers import Signature

GITHUB_SIGNATURE = "x-hub-signature-256"
GITHUB_DELIVERY = "x-github-delivery"
WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE = (
    "webhook-id", "webhook-timestamp", "webhook-signature")
MAX_ID = 256  # a delivery id longer than this is refused (it goes into an annotation)
_SHA256_HEX = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class Rejected(Exception):
    """Not signed with the trigger's secret, or not now (`stale`); the message says which."""

    def __init__(self, message: str, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


class InvalidSecret(ValueError):
    """The Secret's value is not a signing secret of the scheme."""


@dataclass(frozen=True)
class Presented:
    """What a delivery's headers claim, before the signature is checked against the secret."""

    scheme: Signature
    delivery_id: str  # the sender's id, as sent ("" if a GitHub-style sender sent none)
    signatures: tuple[bytes, ...]  # the digests offered
    timestamp: str = ""  # Standard Webhooks only

    def signed_content(self, body: bytes) -> bytes:
        if self.scheme == "github":
            return body
        return f"{self.delivery_id}.{self.timestamp}.".encode() + body

    def replay_keys(self, body: bytes) -> tuple[str, ...]:
        """What identifies this delivery among those seen before. The first one is signed, so
        it also names the VideoJob."""
        if self.scheme == "github":
            digest = "body:" + hashlib.sha256(body).hexdigest()
            return (digest, "id:" + self.delivery_id) if self.delivery_id else (digest,)
        return ("id:" + self.delivery_id,)


def signing_key(scheme: Signature, secret: bytes) -> bytes:
    """The HMAC key a Secret's value stands for (surrounding whitespace, such as the newline of
    a file made with echo, is not part of it)."""
    text = secret.strip()
    if not text:
        raise InvalidSecret("the signing secret is empty")
    if scheme == "github":
        return text
    text = text.removeprefix(b"whsec_")
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise InvalidSecret("a standard-webhooks secret is whsec_ and base64") from None
    if not key:
        raise InvalidSecret("the signing secret is empty")
    return key


def presented(scheme: Signature, headers: Mapping[str, str], now: float,
              tolerance: float) -> Presented:
    """The claims of a delivery's headers (lower-case names); Rejected when they are missing,
    malformed, or (Standard Webhooks) timestamped outside now ± tolerance seconds. Nothing
    here needs the secret, so such a request costs no Secret read."""
    if scheme == "github":
        return _github(headers)
    return _standard(headers, now, tolerance)


def _github(headers: Mapping[str, str]) -> Presented:
    header = headers.get(GITHUB_SIGNATURE)
    if header is None:
        raise Rejected("no X-Hub-Signature-256 header (sha256=<hex HMAC-SHA256 of the body>)")
    m = _SHA256_HEX.match(header.strip())
    if not m:
        raise Rejected("X-Hub-Signature-256 must be sha256= and 64 hex digits")
    delivery = headers.get(GITHUB_DELIVERY, "").strip()
    _check_id(delivery, "X-GitHub-Delivery")
    return Presented("github", delivery, (bytes.fromhex(m.group(1)),))


def _standard(headers: Mapping[str, str], now: float, tolerance: float) -> Presented:
    missing = [h for h in (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE) if h not in headers]
    if missing:
        raise Rejected(f"missing header {', '.join(missing)} (Standard Webhooks)")
    delivery, stamp = headers[WEBHOOK_ID].strip(), headers[WEBHOOK_TIMESTAMP].strip()
    if not delivery:
        raise Rejected("webhook-id is empty")
    _check_id(delivery, "webhook-id")
    if not _DIGITS.match(stamp):
        raise Rejected("webhook-timestamp must be unix seconds")
    age = now - int(stamp)
    if abs(age) > tolerance:
        when = "old" if age > 0 else "in the future"
        raise Rejected(f"webhook-timestamp is {abs(age):.0f} s {when}; at most {tolerance:.0f} s "
                       "either way is accepted", stale=True)
    offered = []
    for entry in headers[WEBHOOK_SIGNATURE].split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and later versions: not ours to check
        try:
            offered.append(base64.b64decode(value, validate=True))
        except ValueError:  # not base64, or not ASCII
            continue
    if not offered:
        raise Rejected("webhook-signature has no v1,<base64> entry")
    return Presented("standard-webhooks", delivery, tuple(offered), stamp)


def _check_id(delivery: str, header: str) -> None:
    if len(delivery) > MAX_ID or not delivery.isprintable():
        raise Rejected(f"{header} must be printable and at most {MAX_ID} characters")


def check(claims: Presented, key: bytes, body: bytes) -> None:
    """Rejected unless one of the offered signatures is the HMAC-SHA256 of the signed content.
    Every one is compared in full, in constant time."""
    expected = hmac.new(key, claims.signed_content(body), hashlib.sha256).digest()
    matched = False
    for offered in claims.signatures:
        matched |= hmac.compare_digest(expected, offered)
    if not matched:
        raise Rejected("the signature does not match the body (wrong secret, or the body was "
                       "changed on the way)")


def sign_github(key: bytes, body: bytes) -> str:
    """`X-Hub-Signature-256`'s value (senders and tests)."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_standard(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """One `webhook-signature` entry (senders and tests)."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


TriggerKey = tuple[str, str]  # (namespace, name)


class SeenDeliveries:
    """The deliveries this gateway made a VideoJob from, at most `max_entries` of them, the
    least recently seen going first. Per process: the VideoJob's name, derived from the
    delivery, is what holds across restarts and replicas (a second create is AlreadyExists)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[TriggerKey, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, trigger: TriggerKey, keys: Iterable[str]) -> bool:
        hit = False
        for key in keys:
            entry = (trigger, key)
            if entry in self._seen:
                self._seen.move_to_end(entry)
                hit = True
        return hit

    def remember(self, trigger: TriggerKey, keys: Iterable[str]) -> None:
        for key in keys:
            self._seen[(trigger, key)] = None
            self._seen.move_to_end((trigger, key))
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
