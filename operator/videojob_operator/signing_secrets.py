"""The signing secrets of webhook notifications: read from the Secret a VideoJob names
(spec.notify[i].secretRef, in its own namespace), and kept a short while.

The operator has no right to read Secrets (the chart grants `create` on them, for progress
tokens, and nothing else). A namespace that wants notifications signed with its secret grants
the operator's ServiceAccount `get` on that one Secret, by name, with a Role and RoleBinding of
its own (docs/tenancy.md). So the operator reads exactly the Secrets tenants hand it, and a
VideoJob naming another one gets a 403 and sends nothing.

Without `list` and `watch` the operator cannot follow a Secret, so a key read is used for
`ttl` seconds (configuration notify.secret_ttl_seconds) and then read again: a rotated secret
signs within that long. A Secret that could not be read (403, 404, no such key, not a
`whsec_` secret) is not asked again for a sixth of that (at most 10 s), so a missing grant does
not cost an API request per notification, and a fixed one is seen soon. An API server that did
not answer is not remembered at all. Only the decoded key of the one entry is kept, never the
rest of the Secret, and it is in no log, status or Event.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubernetes.client import ApiException

from videojob_common.pipeline import Obj

from .api import SecretKeySelector
from .webhooks import BadSecret, signing_key

Reader = Callable[[str, str], Awaitable[Obj]]  # (namespace, name) -> the Secret
NEGATIVE_MAX = 10.0  # seconds a Secret that could not be read is not asked again, at most
CACHE_MAX = 4096  # Secrets remembered


class SecretUnavailable(Exception):
    """The signing secret cannot be had; the message names the field and what to do."""


@dataclass(frozen=True)
class Remembered:
    key: bytes | None
    problem: str  # when key is None
    until: float  # monotonic


def key_of(secret: Obj, ref: SecretKeySelector) -> bytes:
    """The signing key in the Secret's entry `ref.key` (BadSecret: why not)."""
    raw = (secret.get("data") or {}).get(ref.key)
    if raw is None:
        raise BadSecret(f"has no key {ref.key!r}")
    try:
        text = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, ValueError):
        raise BadSecret(f"key {ref.key!r} is not text") from None
    return signing_key(text)


def refusal(error: ApiException, where: str) -> tuple[str, bool]:
    """What an API error reading the Secret means, and whether to remember it (a 403 or 404
    says something about the Secret; a 5xx or no answer, about the API server)."""
    if error.status == 403:
        return (f"the operator may not read Secret {where}: grant its ServiceAccount `get` on it "
                "by name with a Role and RoleBinding in this namespace (docs/tenancy.md)", True)
    if error.status == 404:
        return f"Secret {where} does not exist", True
    return f"Secret {where} could not be read (HTTP {error.status or 'error'})", False


class SigningSecrets:
    """Signing keys by (namespace, Secret, key), read through `read` and remembered."""

    def __init__(self, read: Reader, clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.clock = clock
        self.remembered: dict[tuple[str, str, str], Remembered] = {}
        self.locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def key(self, namespace: str, ref: SecretKeySelector, field: str, ttl: float) -> bytes:
        """The key, or SecretUnavailable naming `field` (e.g. spec.notify[0].secretRef)."""
        slot = (namespace, ref.name, ref.key)
        lock = self.locks.setdefault(slot, asyncio.Lock())
        async with lock:  # one read for the notifications waiting on the same Secret
            held = self.remembered.get(slot)
            if held is None or held.until <= self.clock():
                held = await self._fetch(namespace, ref, ttl)
        if slot not in self.remembered:
            self.locks.pop(slot, None)  # nothing to share: no lock kept either
        if held.key is None:
            raise SecretUnavailable(f"{field}: {held.problem}")
        return held.key

    async def _fetch(self, namespace: str, ref: SecretKeySelector, ttl: float) -> Remembered:
        where = f"{namespace}/{ref.name}"
        now = self.clock()
        try:
            secret = await self.read(namespace, ref.name)
            held = Remembered(key_of(secret, ref), "", now + ttl)
        except ApiException as e:
            problem, keep = refusal(e, where)
            held = Remembered(None, problem, now + min(ttl / 6, NEGATIVE_MAX) if keep else now)
        except BadSecret as e:
            held = Remembered(None, f"Secret {where} {e}", now + min(ttl / 6, NEGATIVE_MAX))
        except Exception:  # no answer (connection, timeout): not the Secret's fault
            held = Remembered(None, f"Secret {where} could not be read (no answer)", now)
        self._keep((namespace, ref.name, ref.key), held)
        return held

    def _keep(self, slot: tuple[str, str, str], held: Remembered) -> None:
        if len(self.remembered) >= CACHE_MAX:
            now = self.clock()
            for s in [s for s, r in self.remembered.items() if r.until <= now]:
                del self.remembered[s]
                self.locks.pop(s, None)
        if len(self.remembered) < CACHE_MAX:
            self.remembered[slot] = held
