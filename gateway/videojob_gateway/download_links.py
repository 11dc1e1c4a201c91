"""Short-lived download links: a URL a `<video src>` can use, since a media element sends no
`Authorization` header. Pure: the key, the VideoJob and the clock are handed in.

A link is issued (`POST .../videojobs/{name}/download-link`) only to a caller the
SubjectAccessReview lets `get` the VideoJob; the link then stands for that one decision, for a
few minutes, and for nothing else. Its token is `<expiry, unix seconds>.<signature>`, the
signature an HMAC-SHA256 over the namespace, the name, the VideoJob's uid and the expiry. The
uid is not in the token: the check reads the VideoJob's current uid from the cache, so a link
dies with its VideoJob, and one made again under the same name does not inherit it. Signatures
are compared in constant time (`hmac.compare_digest`).

Why minutes and not the review cache's seconds: a player asks for more ranges while it plays
and seeks; within the expiry it may, whatever RBAC says meanwhile (the same bound a signed
cloud-storage URL has). The console asks for a new link when one has expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

VERSION = b"videojob-download-link-v1"
MAX_SECONDS = 300  # no link lives longer than this, whatever the settings say


class LinkRefused(Exception):
    """The token does not open this VideoJob's video (now); the message says why, without
    telling which part of a forged token was wrong."""


@dataclass(frozen=True)
class Link:
    token: str
    expires_at: int  # unix seconds


def _signature(key: bytes, namespace: str, name: str, uid: str, expires_at: int) -> bytes:
    # Length-prefixed fields: no two (namespace, name, uid) tuples sign the same bytes.
    message = VERSION + b"".join(
        len(part).to_bytes(4, "big") + part
        for part in (namespace.encode(), name.encode(), uid.encode(), str(expires_at).encode()))
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def issue(key: bytes, namespace: str, name: str, uid: str, now: float,
          seconds: int = MAX_SECONDS) -> Link:
    """A link to the VideoJob's video until `now + seconds` (at most MAX_SECONDS)."""
    if not uid:
        raise ValueError("a link is bound to a VideoJob's uid")
    if not 1 <= seconds <= MAX_SECONDS:
        raise ValueError(f"a link lives 1 to {MAX_SECONDS} seconds")
    expires_at = int(now) + seconds
    return Link(f"{expires_at}.{_b64(_signature(key, namespace, name, uid, expires_at))}",
                expires_at)


def check(key: bytes, token: str, namespace: str, name: str, uid: str | None,
          now: float) -> None:
    """Nothing if `token` opens the video of VideoJob namespace/name (with that uid; None: no
    such VideoJob) at `now`; LinkRefused otherwise."""
    head, dot, tail = token.partition(".")
    if not dot or not head.isdigit() or len(head) > 12 or len(tail) != 43:
        raise LinkRefused("the download link is malformed")
    expires_at = int(head)
    if uid is None:
        # Not a 404: a link's holder learns nothing about names it was not given.
        raise LinkRefused("the download link is not valid")
    wanted = _b64(_signature(key, namespace, name, uid, expires_at))
    if not hmac.compare_digest(wanted.encode(), tail.encode()):
        raise LinkRefused("the download link is not valid")
    if now >= expires_at:
        raise LinkRefused("the download link has expired; ask for a new one")
    if expires_at - now > MAX_SECONDS + 60:
        # Signed with this key, yet longer-lived than any link this gateway issues: a key shared
        # with something else, or a clock gone back. Refused either way.
        raise LinkRefused("the download link is not valid")
