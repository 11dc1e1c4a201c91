"""Keyset pagination over the cache, and continue tokens."""

from __future__ import annotations

import base64
import bisect
import json
from typing import Any

import pytest

from videojob_gateway import pages
from videojob_gateway.pages import InvalidContinue, Query, SortKey, sort_key

KEY = b"k" * 32


class Listing:
    """A namespace's VideoJobs as the cache holds them: a sorted index and the objects."""

    def __init__(self) -> None:
        self.index: list[SortKey] = []
        self.objects: dict[SortKey, dict[str, Any]] = {}

    def add(self, name: str, second: int, phase: str | None = None, ns: str = "a") -> None:
        obj: dict[str, Any] = {"metadata": {
            "namespace": ns, "name": name,
            "creationTimestamp": f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"}}
        if phase:
            obj["status"] = {"phase": phase}
        bisect.insort(self.index, sort_key(obj))
        self.objects[sort_key(obj)] = obj

    def remove(self, name: str) -> None:
        key = next(k for k in self.index if k[2] == name)
        self.index.remove(key)
        del self.objects[key]

    def page(self, query: Query, limit: int, token: str | None) -> tuple[list[str], str | None]:
        after = pages.decode(token, query, KEY) if token else None
        p = pages.page(self.index, self.objects.get, query, limit, after)
        nxt = pages.encode(p.next_after, query, KEY) if p.next_after else None
        return [o["metadata"]["name"] for o in p.items], nxt


def every_page(listing: Listing, query: Query, limit: int) -> list[list[str]]:
    out, token = [], None
    while True:
        names, token = listing.page(query, limit, token)
        out.append(names)
        if token is None:
            return out


def test_pages_are_newest_first_and_the_last_has_no_continue() -> None:
    listing = Listing()
    for i in range(7):
        listing.add(f"vj-{i}", i)
    assert every_page(listing, Query("a"), 3) == [
        ["vj-6", "vj-5", "vj-4"], ["vj-3", "vj-2", "vj-1"], ["vj-0"]]
    # Exactly a page's worth: no trailing empty page.
    assert every_page(listing, Query("a"), 7) == [[f"vj-{i}" for i in range(6, -1, -1)]]


def test_same_second_is_ordered_by_name_and_none_is_lost() -> None:
    listing = Listing()
    for name in ("c", "a", "b", "d"):
        listing.add(name, 5)
    assert every_page(listing, Query("a"), 1) == [["d"], ["c"], ["b"], ["a"]]


def test_videojobs_created_or_deleted_while_paging_move_nothing() -> None:
    listing = Listing()
    for i in range(6):
        listing.add(f"old-{i}", i)
    first, token = listing.page(Query("a"), 2, None)
    assert first == ["old-5", "old-4"]
    for i in range(10):
        listing.add(f"new-{i}", 100 + i)  # newer than anything seen: before the cursor
    listing.remove("old-4")  # the cursor's own item goes
    listing.remove("old-1")
    second, token = listing.page(Query("a"), 2, token)
    third, token = listing.page(Query("a"), 2, token)
    assert (second, third, token) == (["old-3", "old-2"], ["old-0"], None)


def test_a_phase_filter_pages_over_matches_only() -> None:
    listing = Listing()
    for i in range(10):
        listing.add(f"vj-{i}", i, "Running" if i % 3 == 0 else "Queued")
    running = Query("a", frozenset({"Running"}))
    assert every_page(listing, running, 2) == [["vj-9", "vj-6"], ["vj-3", "vj-0"]]
    pending = Query("a", frozenset({"Pending"}))
    listing.add("fresh", 50)  # no status yet: Pending
    assert every_page(listing, pending, 5) == [["fresh"]]


def test_a_token_round_trips_and_is_bound_to_its_query() -> None:
    query = Query("team-a", frozenset({"Running", "Queued"}))
    after = ("2026-01-01T00:00:01Z", "team-a", "vj")
    token = pages.encode(after, query, KEY)
    assert pages.decode(token, Query("team-a", frozenset({"Queued", "Running"})), KEY) == after
    with pytest.raises(InvalidContinue, match="another listing"):
        pages.decode(token, Query("team-b", query.phases), KEY)
    with pytest.raises(InvalidContinue, match="another listing"):
        pages.decode(token, Query("team-a"), KEY)
    with pytest.raises(InvalidContinue):
        pages.decode(token, query, b"another key" * 3)


def test_a_tampered_token_is_refused() -> None:
    query = Query("team-a")
    token = pages.encode(("2026-01-01T00:00:01Z", "team-a", "vj"), query, KEY)
    body, mac = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["k"][2] = "zzz"  # start elsewhere
    edited = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    for bad in (f"{edited}.{mac}", token[:-2], "garbage", "", ".", f"{body}."):
        with pytest.raises(InvalidContinue):
            pages.decode(bad, query, KEY)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        pages.page([], lambda k: None, Query("a"), 0)
