"""A payload → a VideoJob spec: paths, missing fields, conversions, URIs kept under their
prefixes, the allow-list, filters and the names deliveries give VideoJobs."""

from __future__ import annotations

from typing import Any

import pytest

from videojob_common.triggers import MAPPABLE
from videojob_gateway import mapping
from videojob_gateway.mapping import MISSING, MappingError, parameter

PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "head_commit": {"id": "abc", "message": "a lighthouse at dawn", "distinct": True},
    "commits": [{"id": "c0", "added": ["a.png"]}, {"id": "c1", "message": None}],
    "repository": {"size": 42, "weird.key": 1},
    "length": "8",
}
TEMPLATE = {"durationSeconds": 4, "fps": 8, "output": {"uri": "gs://b/fixed.mp4"}}
PREFIXES = ("gs://media/team-a/", "https://cdn.example.com/in/")


def test_paths_with_and_without_the_root_and_with_indices() -> None:
    assert mapping.parse_path("$.head_commit.message") == ("head_commit", "message")
    assert mapping.parse_path("head_commit.message") == ("head_commit", "message")
    assert mapping.parse_path("$.commits[0].added[0]") == ("commits", 0, "added", 0)
    for path, value in [("$.head_commit.message", "a lighthouse at dawn"),
                        ("commits[1].id", "c1"), ("commits.0.id", "c0"),
                        ("$.commits[0].added[0]", "a.png"), ("repository.size", 42)]:
        assert mapping.lookup(PUSH, mapping.parse_path(path)) == value, path
    for bad in ["", "$", "$.", "a..b", "a.[0]", "a[x]", "$a", "a[0", "[0]", "$$.a"]:
        with pytest.raises(ValueError):
            mapping.parse_path(bad)


def test_missing_fields_and_nulls_are_missing() -> None:
    for path in ["nope", "head_commit.nope", "commits[5].id", "commits[1].message",
                 "ref.deeper", "commits.x", "head_commit.message[0]"]:
        assert mapping.lookup(PUSH, mapping.parse_path(path)) is MISSING, path
    assert mapping.lookup([1, 2], mapping.parse_path("x")) is MISSING


def test_a_payload_sets_the_mapped_fields_over_the_template() -> None:
    params = [parameter("$.head_commit.message", "prompt"),
              parameter("length", "durationSeconds"),
              parameter("repository.size", "seed"),
              parameter("$.missing", "fps", required=False)]
    spec = mapping.mapped_spec(TEMPLATE, params, PUSH)
    assert spec == {"durationSeconds": 8, "fps": 8, "output": {"uri": "gs://b/fixed.mp4"},
                    "prompt": "a lighthouse at dawn", "seed": 42}
    assert TEMPLATE == {"durationSeconds": 4, "fps": 8, "output": {"uri": "gs://b/fixed.mp4"}}


def test_a_required_field_the_payload_lacks_is_refused_naming_both() -> None:
    with pytest.raises(MappingError) as info:
        mapping.mapped_spec(TEMPLATE, [parameter("$.pull_request.title", "prompt")], PUSH)
    assert info.value.field == "spec.prompt"
    assert "$.pull_request.title" in str(info.value)


@pytest.mark.parametrize(("value", "to", "expected"), [
    ("12", "durationSeconds", 12), (" 12 ", "durationSeconds", 12), (12.0, "fps", 12),
    (7, "scenes", 7), ("-3", "seed", -3), (3, "prompt", "3"), (2.5, "prompt", "2.5"),
    (True, "prompt", "true"), ("1280x720", "resolution", "1280x720"),
    ("fade", "transition", "fade"),
])
def test_values_are_converted_to_the_fields_type(value: object, to: str, expected: object) -> None:
    spec = mapping.mapped_spec({}, [parameter("v", to)], {"v": value})
    assert spec[to] == expected and type(spec[to]) is type(expected)


@pytest.mark.parametrize(("value", "to"), [
    ("twelve", "durationSeconds"), (12.5, "fps"), (True, "scenes"), ([1], "seed"),
    ({"a": 1}, "prompt"), (["x"], "resolution"), ("1e3", "durationSeconds"),
    ("9" * 30, "seed"),
])
def test_values_of_the_wrong_shape_are_refused(value: object, to: str) -> None:
    with pytest.raises(MappingError) as info:
        mapping.mapped_spec({}, [parameter("v", to)], {"v": value})
    assert info.value.field == f"spec.{to}"


def test_only_the_allow_list_can_be_mapped() -> None:
    for forbidden in ["backend", "priority", "gpu", "gpu.count", "retry.limit", "suspend",
                      "timeouts.totalSeconds", "output", "metadata.name", "spec.prompt",
                      "ttlSecondsAfterFinished"]:
        with pytest.raises(ValueError, match="cannot be set from a payload"):
            parameter("$.x", forbidden, uri_prefixes=PREFIXES)
    assert set(MAPPABLE) == {"prompt", "durationSeconds", "fps", "resolution", "scenes",
                             "seed", "transition", "images", "audio", "output.uri"}


def test_uri_fields_need_prefixes_and_stay_under_them() -> None:
    for to in ("images", "audio", "output.uri"):
        with pytest.raises(ValueError, match="uriPrefixes"):
            parameter("$.x", to)
    out = parameter("$.out", "output.uri", uri_prefixes=PREFIXES)
    images = parameter("$.imgs", "images", uri_prefixes=PREFIXES)
    audio = parameter("$.a", "audio", uri_prefixes=PREFIXES)
    spec = mapping.mapped_spec(TEMPLATE, [out, images, audio], {
        "out": "gs://media/team-a/videos/1.mp4",
        "imgs": ["gs://media/team-a/i/1.png", "https://cdn.example.com/in/2.png?v=1"],
        "a": "gs://media/team-a/music%20one.mp3"}, PREFIXES)
    assert spec["output"] == {"uri": "gs://media/team-a/videos/1.mp4"}
    assert spec["images"][1] == "https://cdn.example.com/in/2.png?v=1"
    one = mapping.mapped_spec({}, [images], {"imgs": "gs://media/team-a/x.png"}, PREFIXES)
    assert one["images"] == ["gs://media/team-a/x.png"]  # one URI is a list of one


@pytest.mark.parametrize("uri", [
    "gs://media/team-b/x.mp4",  # another tenant's prefix
    "gs://media/team-ab/x.mp4",  # a prefix that only looks like it
    "gs://media/team-a/",  # the prefix itself
    "gs://media/team-a/../team-b/x.mp4",
    "gs://media/team-a/a/%2e%2e/%2E%2E/team-b/x",
    "gs://media/team-a/%252e%252e/team-b/x",
    "gs://media/team-a/..\\team-b\\x",
    "https://cdn.example.com/in/./x",
    "file:///etc/passwd",
    "https://cdn.example.com.evil.test/in/x",
    "gs://media/team-a/x y.mp4",
    "gs://media/team-a/x\n.mp4",
    "gs://media/team-a/" + "x" * 2100,
])
def test_uris_that_leave_the_prefixes_are_refused(uri: str) -> None:
    out = parameter("$.out", "output.uri", uri_prefixes=PREFIXES)
    with pytest.raises(MappingError) as info:
        mapping.mapped_spec(TEMPLATE, [out], {"out": uri}, PREFIXES)
    assert info.value.field == "spec.output.uri"


def test_uri_lists_are_checked_item_by_item_and_bounded() -> None:
    images = parameter("$.imgs", "images", uri_prefixes=PREFIXES)
    for value in [["gs://media/team-a/1.png", "gs://elsewhere/2.png"], [3],
                  ["gs://media/team-a/x.png"] * 33, {"uri": "gs://media/team-a/x"}]:
        with pytest.raises(MappingError):
            mapping.mapped_spec({}, [images], {"imgs": value}, PREFIXES)


def test_filters_on_headers_and_payload() -> None:
    flt = mapping.Filter(
        headers=(mapping.Match("X-GitHub-Event", frozenset({"push"})),),
        payload=(mapping.Match("$.ref", frozenset({"refs/heads/main"}),
                               mapping.parse_path("$.ref")),
                 mapping.Match("head_commit.distinct", frozenset({"true"}),
                               mapping.parse_path("head_commit.distinct"))))
    assert mapping.ignored_by_headers(flt, {"x-github-event": "push"}) is None
    assert mapping.ignored_by_payload(flt, PUSH) is None
    why = mapping.ignored_by_headers(flt, {"x-github-event": "ping"})
    assert why == "header X-GitHub-Event is 'ping', not one of push"
    assert "missing" in str(mapping.ignored_by_headers(flt, {}))
    other = dict(PUSH, ref="refs/heads/dev")
    assert "$.ref is 'refs/heads/dev'" in str(mapping.ignored_by_payload(flt, other))
    assert mapping.ignored_by_payload(flt, ["not", "an", "object"]) is not None
    assert mapping.ignored_by_headers(mapping.Filter(), {}) is None


def test_the_same_delivery_names_the_same_videojob() -> None:
    a = mapping.videojob_name("push-", "on-push", "id:1")
    assert a == mapping.videojob_name("push-", "on-push", "id:1")
    assert a.startswith("push-") and len(a) == len("push-") + 16
    assert a != mapping.videojob_name("push-", "on-push", "id:2")
    assert a != mapping.videojob_name("push-", "other", "id:1")
