"""Listing VideoJobs a page at a time: keyset pagination over the cache, newest first, and the
opaque `continue` token that says where the next page starts.

Keyset, not offset: a page starts strictly after the last item of the one before, by
(creationTimestamp, namespace, name), a key no two VideoJobs share. VideoJobs created while a
client pages are newer than every key it has seen, so they never push an item onto the next page
twice or make one skip; deleted ones simply are not there. (Argo's list is an API-server list,
its continue token expiring with etcd's compaction; this one does not expire.)

The token is the last key and the query it belongs to (namespace, phases), in base64url JSON,
with an HMAC-SHA256 of it under the gateway's key: a token that was edited, or that belongs to
another namespace or filter, is refused (400) rather than read as some other position.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from videojob_common.pipeline import Obj

from .views import phase_of

SortKey = tuple[str, str, str]  # (creationTimestamp, namespace, name): RFC 3339 UTC sorts as text
TOKEN_VERSION = 1


class InvalidContinue(ValueError):
    pass


def sort_key(obj: Obj) -> SortKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""),
            str(meta.get("name") or ""))


@dataclass(frozen=True)
class Query:
    """What a listing asks for; a continue token is only good for the same query."""

    namespace: str
    phases: frozenset[str] = frozenset()

    def matches(self, obj: Obj) -> bool:
        return not self.phases or phase_of(obj) in self.phases


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    next_after: SortKey | None  # the last item's key when more may follow, else None


def page(index: Sequence[SortKey], lookup: Callable[[SortKey], Obj | None], query: Query,
         limit: int, after: SortKey | None = None) -> Page:
    """Up to `limit` matching objects, newest first, strictly older than `after`.

    `index` is sorted ascending (the cache keeps it so); `lookup` gives the object of a key.
    The scan looks one match past the page, so the last page never points at an empty one.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    end = bisect.bisect_left(index, after) if after is not None else len(index)
    items: list[Obj] = []
    for i in range(end - 1, -1, -1):
        obj = lookup(index[i])
        if obj is None or not query.matches(obj):
            continue
        if len(items) == limit:
            return Page(items, sort_key(items[-1]))
        items.append(obj)
    return Page(items, None)


def encode(after: SortKey, query: Query, key: bytes) -> str:
    payload = json.dumps({"v": TOKEN_VERSION, "ns": query.namespace,
                          "ph": sorted(query.phases), "k": list(after)},
                         separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def decode(token: str, query: Query, key: bytes) -> SortKey:
    """The key a token continues after; InvalidContinue if it was not made by this gateway for
    this query."""
    body, _, mac = token.partition(".")
    try:
        payload = _unb64(body)
        signature = _unb64(mac)
    except ValueError as e:
        raise InvalidContinue("the continue token is not one this gateway made") from e
    if not hmac.compare_digest(signature, _mac(key, payload)):
        raise InvalidContinue("the continue token is not one this gateway made (or it was "
                              "made before the gateway's key changed): list again from the start")
    doc = json.loads(payload)
    if doc.get("v") != TOKEN_VERSION:
        raise InvalidContinue("the continue token is of another version: list again")
    if doc.get("ns") != query.namespace or set(doc.get("ph") or ()) != set(query.phases):
        raise InvalidContinue("the continue token belongs to another listing (namespace or "
                              "phase): use it with the query that returned it")
    k = doc.get("k")
    if not (isinstance(k, list) and len(k) == 3 and all(isinstance(p, str) for p in k)):
        raise InvalidContinue("the continue token is not one this gateway made")
    return (k[0], k[1], k[2])


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise ValueError(str(e)) from e
