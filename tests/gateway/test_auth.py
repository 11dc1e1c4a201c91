"""Credentials, reviews and their caches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from videojob_gateway import auth
from videojob_gateway.auth import Access, Caller, TtlCache
from videojob_gateway.keys import ApiKey
from videojob_gateway.problems import Problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(fn: object, *args: object) -> Problem:
    with pytest.raises(Problem) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_credentials_are_told_apart() -> None:
    assert auth.credential("Bearer eyJhbGciOi.x.y", None).kind == "token"
    assert auth.credential("bearer  eyJ ", None).secret == "eyJ"
    assert auth.credential("Bearer vjk_abc", None) == auth.Credential("key", "vjk_abc")
    assert auth.credential(None, "vjk_abc") == auth.Credential("key", "vjk_abc")
    assert auth.credential("Bearer vjk_abc", "vjk_abc").kind == "key"  # the same, twice


def test_missing_or_malformed_credentials_are_401() -> None:
    for authorization, key in [(None, None), ("Basic dXNlcjpwdw==", None), ("Bearer", None),
                               ("Bearer ", None), (None, " "), ("Bearer a", "vjk_b")]:
        p = refused(auth.credential, authorization, key)
        assert p.status == 401, (authorization, key)
        assert p.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_token_cache_key_is_a_hash_not_the_token() -> None:
    cred = auth.credential("Bearer secret-token", None)
    assert "secret-token" not in cred.cache_key
    assert len(cred.cache_key) == 64
    assert "secret-token" not in repr(cred)
    caller = Caller(user="u", token="secret-token")
    assert "secret-token" not in repr(caller)


def test_a_token_review_names_the_caller_with_groups_uid_and_extra() -> None:
    caller = auth.caller_from_review({"status": {"authenticated": True, "user": {
        "username": "system:serviceaccount:a:writer", "uid": "u-9",
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]}}}})
    assert caller == Caller(user="system:serviceaccount:a:writer",
                            groups=("system:serviceaccounts", "system:authenticated"),
                            uid="u-9",
                            extra=(("authentication.kubernetes.io/pod-name", ("p",)),))
    assert auth.caller_from_review({"status": {"authenticated": False, "error": "x"}}) is None
    assert auth.caller_from_review({"status": {"authenticated": True, "user": {}}}) is None


def test_an_access_review_asks_for_the_caller_and_the_exact_action() -> None:
    caller = Caller(user="jane", groups=("dev",), uid="u-1", extra=(("scopes", ("a", "b")),))
    review = auth.access_review(caller, Access("delete", "team-a", "hello"))
    assert review["spec"] == {
        "user": "jane", "groups": ["dev"], "uid": "u-1", "extra": {"scopes": ["a", "b"]},
        "resourceAttributes": {"verb": "delete", "group": "videojob.dev",
                               "resource": "videojobs", "namespace": "team-a",
                               "name": "hello"}}
    cluster = auth.access_review(Caller(user="x"), Access("list", resource="videojobpools"))
    assert cluster["spec"]["resourceAttributes"] == {
        "verb": "list", "group": "videojob.dev", "resource": "videojobpools"}


def test_an_api_key_is_its_service_account_in_its_namespace_only() -> None:
    key = ApiKey(id="k1", sha256="0" * 64, namespace="team-a", service_account="uploader")
    caller = auth.caller_of_key(key)
    assert caller.user == "system:serviceaccount:team-a:uploader"
    assert caller.groups == ("system:serviceaccounts", "system:serviceaccounts:team-a",
                             "system:authenticated")
    assert caller.acting.impersonate == caller.user and caller.acting.token is None
    assert not auth.outside_key_namespace(caller, Access("get", "team-a", "x"))
    assert auth.outside_key_namespace(caller, Access("get", "team-b", "x"))
    assert auth.outside_key_namespace(caller, Access("list"))  # cluster-wide
    assert refused(auth.confine, caller, "team-b").status == 403
    auth.confine(Caller(user="jane", token="t"), "team-b")  # tokens: RBAC alone decides


def test_the_fingerprint_is_the_identity_not_the_order_of_groups_or_the_token() -> None:
    a = Caller(user="jane", groups=("a", "b"), token="t1")
    assert a.fingerprint == Caller(user="jane", groups=("b", "a"), token="t2").fingerprint
    assert a.fingerprint != Caller(user="jane", groups=("a",)).fingerprint
    assert a.fingerprint != Caller(user="jane", groups=("a", "b"), uid="1").fingerprint


def test_the_cache_forgets_after_its_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, bool] = TtlCache(ttl=5, max_entries=10, clock=clock)
    cache.put("a", False)
    hit = cache.get("a")
    assert hit is not None and hit.value is False  # a cached "no" is a hit too
    clock.now += 4.9
    assert cache.get("a") is not None
    clock.now += 0.2
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache: TtlCache[int, int] = TtlCache(ttl=60, max_entries=3, clock=Clock())
    for i in range(3):
        cache.put(i, i)
    assert cache.get(0) is not None  # 0 used: 1 is now the oldest
    cache.put(3, 3)
    assert len(cache) == 3
    assert cache.get(1) is None
    assert [k for k in range(4) if cache.get(k) is not None] == [0, 2, 3]
    with pytest.raises(ValueError):
        TtlCache(ttl=1, max_entries=0)


class Reviews:
    """The API server's SubjectAccessReview, as a double: RBAC-like rules (verb, namespace,
    names; no names: every one) and a record of what was asked."""

    def __init__(self, rules: list[tuple[str, str, tuple[str, ...]]]) -> None:
        self.rules = rules
        self.asked: list[tuple[str, str, str]] = []

    async def request(self, method: str, path: str, *, body: dict[str, Any]) -> dict[str, Any]:
        attrs = body["spec"]["resourceAttributes"]
        verb, ns, name = attrs["verb"], attrs.get("namespace", ""), attrs.get("name", "")
        self.asked.append((verb, ns, name))
        allowed = any(v == verb and n == ns and (not names or name in names)
                      for v, n, names in self.rules)
        return {"status": {"allowed": allowed}}


def decide(reviews: Reviews, *accesses: Access) -> list[bool]:
    authz = auth.Authorizer(reviews, TtlCache(5, 100, clock=Clock()),  # type: ignore[arg-type]
                            lambda cache, hit: None)
    caller = Caller(user="jane")
    return [asyncio.run(authz.allowed(caller, a)) for a in accesses]


def test_a_namespace_wide_grant_is_one_review_for_every_videojob_in_it() -> None:
    reviews = Reviews([("get", "team-a", ())])
    reads = [Access("get", "team-a", f"vj{i}") for i in range(100)]
    assert decide(reviews, *reads) == [True] * 100
    assert reviews.asked == [("get", "team-a", "")]  # cached for the TTL


def test_a_grant_by_name_is_asked_by_name_and_covers_no_other() -> None:
    reviews = Reviews([("get", "team-a", ("mine",))])
    assert decide(reviews, Access("get", "team-a", "mine"), Access("get", "team-a", "other"),
                  Access("get", "team-a", "mine")) == [True, False, True]
    # the namespace-wide "no" is cached; then each name is asked once
    assert reviews.asked == [("get", "team-a", ""), ("get", "team-a", "mine"),
                             ("get", "team-a", "other")]


def test_requests_that_miss_the_cache_at_once_share_one_review() -> None:
    reviews = Reviews([("get", "team-a", ())])
    authz = auth.Authorizer(reviews, TtlCache(5, 100, clock=Clock()),  # type: ignore[arg-type]
                            lambda cache, hit: None)
    caller = Caller(user="jane")

    async def burst() -> list[bool]:
        return await asyncio.gather(*(authz.allowed(caller, Access("get", "team-a", f"vj{i}"))
                                      for i in range(200)))

    assert asyncio.run(burst()) == [True] * 200
    assert reviews.asked == [("get", "team-a", "")]


def test_a_shared_call_outlives_a_waiter_that_leaves_and_tells_everyone_its_error() -> None:
    flights: auth.Flights[str, int] = auth.Flights()
    calls = []

    async def slow(value: int | Exception) -> int:
        calls.append(value)
        await asyncio.sleep(0.01)
        if isinstance(value, Exception):
            raise value
        return value

    async def scenario() -> None:
        first = asyncio.create_task(flights.run("k", lambda: slow(1)))
        second = asyncio.create_task(flights.run("k", lambda: slow(2)))
        await asyncio.sleep(0)
        first.cancel()  # its client went away
        assert await second == 1 and calls == [1] and len(flights) == 0
        failing = [flights.run("e", lambda: slow(ValueError("no answer"))) for _ in range(3)]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        assert [type(o) for o in outcomes] == [ValueError] * 3 and len(calls) == 2

    asyncio.run(scenario())
