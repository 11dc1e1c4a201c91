"""What a webhook receiver gets: the notification's body and the Standard Webhooks headers that
sign it (https://www.standardwebhooks.com/). Pure.

- `webhook-id`: the notification's id (notifications.webhook_id), the same on every attempt;
- `webhook-timestamp`: the attempt's time, Unix seconds (receivers refuse old ones: replays);
- `webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the
  key is the bytes a `whsec_` secret carries in base64 after its prefix.

The body is the same on every attempt (it is built from what the status froze when the
transition happened), so a receiver that keeps what it got can compare. Its fields are in
docs/contract.md ("Webhook notifications").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from videojob_common.pipeline import Obj

from .api import NotifyEvent, PendingNotification

SECRET_PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 random bytes.
KEY_BYTES = (24, 64)


class BadSecret(ValueError):
    """A value that is not a signing secret (the message says why, never the value)."""


def signing_key(value: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret."""
    text = value.strip()
    if not text.startswith(SECRET_PREFIX):
        raise BadSecret(f"is not a signing secret (it must start with {SECRET_PREFIX})")
    try:
        key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret(f"is not {SECRET_PREFIX} followed by base64") from None
    low, high = KEY_BYTES
    if not low <= len(key) <= high:
        raise BadSecret(f"holds {len(key)} bytes; a signing secret holds {low} to {high}")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value (one `v1` signature)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The request headers of one attempt."""
    return {
        "content-type": "application/json",
        "user-agent": "videojob-operator",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }


def body(videojob: Obj, n: PendingNotification) -> bytes:
    """The JSON body: the event's type and time, and the VideoJob as it was then."""
    meta = videojob["metadata"]
    data: Obj = {
        "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
        "phase": n.phase, "stage": n.stage, "progress": n.progress, "message": n.message,
    }
    if n.type == NotifyEvent.SUCCEEDED:
        data["outputURI"] = n.output_uri
    if n.type == NotifyEvent.FAILED:
        data["reason"] = n.reason
    doc = {"type": str(n.type), "timestamp": n.time, "data": data}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
