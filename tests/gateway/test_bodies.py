"""Reading a request body: size, media type, JSON, fields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from videojob_gateway import bodies
from videojob_gateway.problems import Problem


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def status_of(fn: object, *args: object) -> tuple[int, str]:
    with pytest.raises(Problem) as info:
        result = fn(*args)  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    return info.value.status, info.value.slug


def test_a_body_past_the_limit_is_413_declared_or_streamed() -> None:
    assert asyncio.run(bodies.read_limited(chunks(b"a" * 10, b"b" * 10), "20", 20)) == (
        b"a" * 10 + b"b" * 10)
    assert status_of(bodies.read_limited, chunks(b"x"), "21", 20) == (413, "body-too-large")
    # Chunked (no Content-Length), or a Content-Length that lies: counted as it comes.
    assert status_of(bodies.read_limited, chunks(b"a" * 15, b"b" * 15), None, 20)[0] == 413
    assert status_of(bodies.read_limited, chunks(b"a" * 30), "5", 20)[0] == 413
    assert status_of(bodies.read_limited, chunks(b""), "many", 20) == (400, "malformed-request")


def test_only_json_is_taken() -> None:
    bodies.check_media_type("application/json")
    bodies.check_media_type("application/json; charset=utf-8")
    bodies.check_media_type("application/merge-patch+json")
    for bad in (None, "", "text/plain", "application/x-www-form-urlencoded"):
        assert status_of(bodies.check_media_type, bad) == (415, "unsupported-media-type")


def test_malformed_json_is_400_saying_where() -> None:
    with pytest.raises(Problem) as info:
        bodies.parse_json(b'{"spec": ')
    assert (info.value.status, info.value.slug) == (400, "malformed-json")
    assert "line 1 column 10" in info.value.detail
    assert status_of(bodies.parse_json, b"  ") == (400, "malformed-json")
    assert status_of(bodies.parse_json, b"\xff\xfe") == (400, "malformed-json")


def test_the_create_request_names_unknown_and_missing_fields() -> None:
    ok = bodies.parse_create({"name": "x", "spec": {"prompt": "p"}, "labels": {"a": "b"}})
    assert (ok.name, ok.labels) == ("x", {"a": "b"})
    for doc, fields in [({"name": "x", "spec": {}, "specs": {}}, ["specs"]),
                        ({"name": "x"}, ["spec"]),
                        ({"spec": [], "labels": {"a": 1}}, ["spec", "labels.a"]),
                        ([1, 2], ["(body)"]),
                        ({"name": "x", "generateName": "y-", "spec": {}}, ["(body)"])]:
        with pytest.raises(Problem) as info:
            bodies.parse_create(doc)
        assert info.value.status == 422, doc
        assert [e.field for e in info.value.errors] == fields, doc
    with pytest.raises(Problem) as info:
        bodies.parse_create({"spec": {}, "lables": {}})
    assert info.value.errors[0].detail == "unknown field"
    assert "lables" in info.value.detail
