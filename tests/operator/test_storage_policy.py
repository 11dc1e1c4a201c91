"""Each namespace in its own lane of the storage (storage_policy.py): where a VideoJob may write
and read, and the planner refusing a spec that leaves it, before any stage runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from videojob_operator.api import FINALIZER
from videojob_operator.config import ConfigError, OperatorConfig, load
from videojob_operator.planner import plan
from videojob_operator.storage_policy import HttpInputs, problems
from videojob_operator.views import Observation

ROOT = "gs://media/videojob"
T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def check(output: str | None = None, images: list[str] = (),  # type: ignore[assignment]
          audio: str | None = None, namespace: str = "team-a",
          read: dict[str, list[str]] | None = None,
          http: HttpInputs | None = None) -> list[str]:
    return problems(output, list(images), audio, storage_root=ROOT, namespace=namespace,
                    read_prefixes=read or {}, http=http or HttpInputs())


def test_outputs_only_under_the_namespaces_prefix() -> None:
    assert check(output="gs://media/videojob/team-a/out/clip.mp4") == []
    assert check(output=None) == []  # the default is under it
    for elsewhere in ["gs://media/videojob/team-b/out/clip.mp4",  # another tenant's
                      "gs://media/videojob/team-a-x/clip.mp4",  # a namespace sharing a stem
                      "gs://other-bucket/team-a/clip.mp4",
                      "file:///var/lib/videojob/team-a/clip.mp4"]:
        (problem,) = check(output=elsewhere)
        assert problem.startswith("spec.output.uri: ") and "gs://media/videojob/team-a/" in problem


def test_an_output_never_lands_in_the_namespaces_cache() -> None:
    (problem,) = check(output="gs://media/videojob/team-a/.cache/stitch/" + "a" * 64 +
                       "/w/video.mp4")
    assert problem.startswith("spec.output.uri: ") and "cache" in problem
    assert check(output="gs://media/videojob/team-a/.cached/clip.mp4") == []


@pytest.mark.parametrize("sneaky", [
    "gs://media/videojob/team-a/../team-b/clip.mp4",
    "gs://media/videojob/team-a/./x/../../team-b/clip.mp4",
    "gs://media/videojob/team-a/%2e%2e/team-b/clip.mp4",
    "gs://media/videojob/team-a//clip.mp4",
    "gs://media/videojob/team-a/clip.mp4?generation=1",
    "file://host/var/lib/videojob/team-a/clip.mp4",
    "gs://media/videojob/team-a\\..\\team-b/clip.mp4",
])
def test_no_spelling_of_a_path_leaves_the_prefix(sneaky: str) -> None:
    assert check(output=sneaky), sneaky


def test_inputs_from_the_own_prefix_or_those_the_administrator_lists() -> None:
    read = {"*": ["gs://shared-assets/"], "team-a": ["file:///srv/team-a-inputs/"]}
    assert check(images=["gs://media/videojob/team-a/in/1.png", "gs://shared-assets/logo.png",
                         "file:///srv/team-a-inputs/2.png"], read=read) == []
    assert check(images=["file:///srv/team-a-inputs/2.png"], namespace="team-b",
                 read=read) == ["spec.images[0]: file:///srv/team-a-inputs/2.png is outside what "
                                "this namespace may have read (under gs://media/videojob/team-b/, "
                                "gs://shared-assets/)"]
    found = check(images=["gs://media/videojob/team-a/in/1.png",
                          "gs://media/videojob/team-b/keyframes/0.png"],
                  audio="file:///etc/passwd")
    assert [p.split(":")[0] for p in found] == ["spec.images[1]", "spec.audio"]


def test_http_inputs_only_when_enabled_and_only_from_listed_hosts() -> None:
    (off,) = check(images=["https://images.example.com/a.png"])
    assert off.startswith("spec.images[0]: http(s) inputs are not enabled")
    http = HttpInputs(enabled=True, hosts=["images.example.com", "*.cdn.example.net"])
    assert check(images=["https://images.example.com/a.png",
                         "http://eu.cdn.example.net/b.png"], http=http) == []
    for host in ["127.0.0.1", "169.254.169.254", "metadata.google.internal",
                 "images.example.com.evil.net", "cdn.example.net", "localhost"]:
        (problem,) = check(audio=f"http://{host}/a.m4a", http=http)
        assert problem.startswith("spec.audio: host "), problem


def test_the_administrators_prefixes_are_checked_when_the_configuration_loads() -> None:
    for bad in ["gs://shared", "http://x/", "gs://a/../b/"]:
        with pytest.raises(ConfigError, match="read prefix"):
            load(text=f"read_prefixes: {{'*': ['{bad}']}}", environ={})


def test_the_planner_fails_a_videojob_that_writes_into_another_namespace() -> None:
    vj: dict[str, Any] = {
        "metadata": {"name": "clip", "namespace": "team-a", "uid": "u1", "generation": 1,
                     "finalizers": [FINALIZER], "resourceVersion": "1"},
        "spec": {"prompt": "x", "output": {"uri": "gs://media/videojob/team-b/x/output.mp4"}},
        "status": {}}
    p = plan(Observation(vj, [], [], [], T0), OperatorConfig(storage_root=ROOT))
    assert p.status is not None and p.status["phase"] == "Failed"
    assert p.status["reason"] == "InvalidSpec"
    assert p.status["message"].startswith("invalid spec: spec.output.uri: ")
    assert not p.create_jobs
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "InvalidSpec")]
