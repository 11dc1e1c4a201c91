"""Who is calling, and may they: credentials → a `Caller` (TokenReview, or an API key's
ServiceAccount), and every action → a SubjectAccessReview for that caller.

Reads are served from the cache, so the gateway itself could answer any of them; the review is
what keeps a caller to what RBAC gives them. Writes are made as the caller (kube.Acting), so the
API server decides those itself.

Both reviews are cached for a few seconds, bounded in size, so a client that polls costs the API
server one review per TTL, not one per request; the requests that find the same entry missing
at once share one review (`Flights`). The token cache is keyed by the token's SHA-256,
never by the token. A revoked permission or token keeps working for at most the TTL
(`--token-cache-seconds`, `--access-cache-seconds`), as with any webhook authoriser's cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Generic, Literal, TypeVar

from videojob_common.pipeline import Obj

from . import problems
from .keys import PREFIX as KEY_PREFIX
from .keys import ApiKey, KeyRing
from .kube import Acting, ApiError, ApiServer

K = TypeVar("K")
V = TypeVar("V")

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
Mode = Literal["token", "key"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller, as the API server knows them."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    key: ApiKey | None = None  # key mode: the key they presented
    # Token mode: their own token, for the writes made as them. Never printed, never a key.
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def acting(self) -> Acting:
        if self.key is not None:
            return Acting(impersonate=self.key.user)
        return Acting(token=self.token)

    @property
    def fingerprint(self) -> str:
        """Identifies the identity (not the credential) in the access cache."""
        ident = [self.user, self.uid, sorted(self.groups), sorted(self.extra)]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


@dataclass(frozen=True)
class Access:
    """One action, in RBAC's words: `create videojobs` in a namespace."""

    verb: str
    namespace: str = ""  # "" for cluster scope
    name: str = ""
    resource: str = "videojobs"
    group: str = "videojob.dev"

    def __str__(self) -> str:
        what = f"{self.resource}/{self.name}" if self.name else self.resource
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {what}{where}"


@dataclass(frozen=True)
class Credential:
    kind: Mode
    secret: str = field(repr=False)

    @property
    def cache_key(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()


def credential(authorization: str | None, api_key: str | None) -> Credential:
    """The credential a request presents: `X-API-Key: vjk_…`, `Authorization: Bearer vjk_…`
    (an API key) or `Authorization: Bearer <Kubernetes token>`; 401 for none or a malformed one."""
    bearer = None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise problems.unauthenticated(
                "the Authorization header must be `Bearer <token>`")
        bearer = value.strip()
    if api_key is not None and bearer is not None and api_key.strip() != bearer:
        raise problems.unauthenticated("send one credential: an Authorization header or an "
                                       "X-API-Key header, not both")
    if api_key is not None:
        if not api_key.strip():
            raise problems.unauthenticated("the X-API-Key header is empty")
        return Credential("key", api_key.strip())
    if bearer is None:
        raise problems.unauthenticated(
            "no credentials: send `Authorization: Bearer <token>` or `X-API-Key: <key>`")
    return Credential("key" if bearer.startswith(KEY_PREFIX) else "token", bearer)


def token_review(token: str) -> Obj:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}}


def caller_from_review(review: Obj) -> Caller | None:
    """The caller a TokenReview's answer names; None if the token was not accepted."""
    status = review.get("status") or {}
    user = status.get("user") or {}
    if not status.get("authenticated") or not user.get("username"):
        return None
    extra = tuple(sorted((str(k), tuple(str(x) for x in v))
                         for k, v in (user.get("extra") or {}).items()))
    return Caller(user=str(user["username"]), groups=tuple(user.get("groups") or ()),
                  uid=str(user.get("uid") or ""), extra=extra)


def caller_of_key(key: ApiKey) -> Caller:
    return Caller(user=key.user, groups=key.groups, key=key)


def access_review(caller: Caller, access: Access) -> Obj:
    spec: Obj = {"user": caller.user, "groups": list(caller.groups),
                 "resourceAttributes": {"verb": access.verb, "group": access.group,
                                        "resource": access.resource}}
    attrs = spec["resourceAttributes"]
    if access.namespace:
        attrs["namespace"] = access.namespace
    if access.name:
        attrs["name"] = access.name
    if caller.uid:
        spec["uid"] = caller.uid
    if caller.extra:
        spec["extra"] = {k: list(v) for k, v in caller.extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def outside_key_namespace(caller: Caller, access: Access) -> bool:
    """An API key acts in its one namespace, whatever its ServiceAccount may do elsewhere."""
    return caller.key is not None and access.namespace != caller.key.namespace


def confine(caller: Caller, namespace: str) -> None:
    """403 for an API key used outside its namespace (before anything is asked of anyone)."""
    if caller.key is not None and namespace != caller.key.namespace:
        raise problems.forbidden(f"this API key acts in namespace {caller.key.namespace} only")


@dataclass
class Hit(Generic[V]):
    value: V


class TtlCache(Generic[K, V]):
    """At most `max_entries` entries, each for `ttl` seconds; the least recently used go first."""

    def __init__(self, ttl: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> Hit[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Hit(value)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class Flights(Generic[K, V]):
    """Concurrent lookups of one key share one call. When a cached review expires under load,
    every request in flight misses it at once; without this each asked its own review, and at
    500 reads a second the reviews (and the TLS connections they opened) took a third of the
    gateway's CPU and its latency to seconds (bench/gateway.py). The call runs as a task of its
    own, so a caller that goes away cancels only its own wait."""

    def __init__(self) -> None:
        self._calls: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        task = self._calls.get(key)
        if task is None:
            async def wrapped() -> V:
                return await call()

            task = asyncio.get_running_loop().create_task(wrapped())
            self._calls[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone


Counted = Callable[[str, bool], None]  # (cache name, hit)


async def ask(api: ApiServer, path: str, review: Obj) -> Obj:
    """A review, as the gateway. Its refusal is the gateway's problem (say, RBAC without
    `create tokenreviews`), not the caller's: a 502 and a log line, never a 401 or a 403 that
    would blame the caller. No answer at all is ApiUnavailable, a 503."""
    try:
        return await api.request("POST", path, body=review)
    except ApiError as e:
        log.error("%s refused the gateway's review: %s", path, e)
        raise problems.Problem(502, "review-failed", "Review failed",
                               f"the API server refused the gateway's {review['kind']}; its "
                               "log says why") from None


class Authenticator:
    def __init__(self, api: ApiServer, modes: frozenset[Mode], keyring: Callable[[], KeyRing],
                 tokens: TtlCache[str, Caller | None], counted: Counted) -> None:
        self._api = api
        self._modes = modes
        self._keyring = keyring
        self._tokens = tokens
        self._counted = counted
        self._flights: Flights[str, Caller | None] = Flights()

    async def authenticate(self, cred: Credential) -> Caller:
        if cred.kind not in self._modes:
            what = "API keys are" if cred.kind == "key" else "Kubernetes tokens are"
            raise problems.unauthenticated(f"{what} not accepted by this gateway")
        if cred.kind == "key":
            key = self._keyring().find(cred.secret)
            if key is None:
                raise problems.unauthenticated("the API key is not valid")
            return caller_of_key(key)
        hit = self._tokens.get(cred.cache_key)
        self._counted("token", hit is not None)
        if hit is not None:
            caller = hit.value
        else:
            caller = await self._flights.run(cred.cache_key, lambda: self._review(cred))
        if caller is None:
            raise problems.unauthenticated("the token is not valid (TokenReview refused it)")
        return replace(caller, token=cred.secret)

    async def _review(self, cred: Credential) -> Caller | None:
        caller = caller_from_review(await ask(self._api, TOKEN_REVIEWS,
                                              token_review(cred.secret)))
        self._tokens.put(cred.cache_key, caller)
        return caller


class Authorizer:
    def __init__(self, api: ApiServer, decisions: TtlCache[tuple[str, Access], bool],
                 counted: Counted) -> None:
        self._api = api
        self._decisions = decisions
        self._counted = counted
        self._flights: Flights[tuple[str, Access], bool] = Flights()

    async def allowed(self, caller: Caller, access: Access) -> bool:
        if outside_key_namespace(caller, access):
            return False
        if access.name and await self._review(caller, replace(access, name="")):
            # Allowed on every object of the kind there: RBAC grants one name only through a
            # rule that lists names, and a review without a name matches only the rules that
            # list none, which cover each name. So one cached review serves a caller's reads of
            # all the namespace's VideoJobs, not one review per VideoJob per TTL (500 GETs a
            # second over 1,000 VideoJobs asked 200 reviews a second: bench/gateway.py).
            return True
        return await self._review(caller, access)

    async def _review(self, caller: Caller, access: Access) -> bool:
        key = (caller.fingerprint, access)
        hit = self._decisions.get(key)
        self._counted("access", hit is not None)
        if hit is not None:
            return hit.value

        async def review() -> bool:
            answer = await ask(self._api, ACCESS_REVIEWS, access_review(caller, access))
            allowed = bool((answer.get("status") or {}).get("allowed"))
            self._decisions.put(key, allowed)
            return allowed

        return await self._flights.run(key, review)

    async def require(self, caller: Caller, access: Access) -> None:
        confine(caller, access.namespace)
        if not await self.allowed(caller, access):
            raise problems.forbidden(f"{caller.user} may not {access}")
