"""Re-rendering one scene: the derived VideoJob (videojob_common.rerun, shared by the plugin and
the gateway) and `kubectl videojob rerun`'s command line, without a cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from videojob_cli import flags
from videojob_cli import rerun as rerun_command
from videojob_cli.errors import CommandError
from videojob_common.rerun import (
    MAX_NAME,
    RERUN_OF,
    Override,
    RerunError,
    derive,
    override,
    random_suffix,
    rerun_name,
    scene_count,
)
from videojob_operator.api import VideoJobSpec


def origin(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
        "metadata": {"name": "clip", "namespace": "team-a", "uid": "u-1",
                     "resourceVersion": "42", "labels": {"team": "a"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"prompt": "a lighthouse", "scenes": 8, "seed": 7, "fps": 12,
                 "cache": {"policy": "Use"}, **spec},
        "status": {"phase": "Succeeded"},
    }


def test_the_derived_videojob_keeps_the_spec_and_links_to_its_origin() -> None:
    made = derive(origin(), Override(scene=3, seed=99), "clip-again")
    assert made["apiVersion"] == "videojob.dev/v1alpha1" and made["kind"] == "VideoJob"
    assert made["metadata"] == {"name": "clip-again", "namespace": "team-a",
                                "labels": {"team": "a"},
                                "annotations": {RERUN_OF: "clip/u-1"}}
    assert made["spec"] == {**origin()["spec"],
                            "sceneOverrides": [{"index": 3, "seed": 99}]}
    assert "status" not in made
    VideoJobSpec.model_validate(made["spec"])  # the CRD's model takes it


def test_the_derived_videojob_never_publishes_over_the_origins_output() -> None:
    made = derive(origin(output={"uri": "gs://b/team-a/clip.mp4"}), Override(scene=0, seed=1),
                  "clip-again")
    assert "output" not in made["spec"]


def test_the_override_replaces_that_scenes_entry_and_keeps_the_others() -> None:
    before = origin(sceneOverrides=[{"index": 5, "description": "a boat"},
                                    {"index": 1, "seed": 1, "description": "a gull"}])
    kept = copy.deepcopy(before)
    made = derive(before, Override(scene=1, description="a crab"), "clip-again")
    assert made["spec"]["sceneOverrides"] == [{"index": 1, "description": "a crab"},
                                              {"index": 5, "description": "a boat"}]
    assert before == kept  # the origin is not touched


def test_a_suspended_origin_gives_a_videojob_that_runs() -> None:
    made = derive(origin(suspend=True), Override(scene=0, seed=1), "clip-again")
    assert made["spec"]["suspend"] is False


def test_without_a_seed_or_description_a_new_seed_is_drawn() -> None:
    assert override(2, None, None, draw_seed=lambda: 1234) == Override(2, seed=1234)
    assert override(2, None, "a crab", draw_seed=lambda: 1234) == Override(2, None, "a crab")
    assert override(2, 5, None, draw_seed=lambda: 1234) == Override(2, seed=5)
    assert 0 <= override(0, None, None).seed <= 2**31 - 1  # type: ignore[operator]


@pytest.mark.parametrize("spec,status,count", [
    ({"scenes": 8}, {}, 8),
    ({"scenes": 8}, {"effective": {"scenes": 6}}, 6),
    ({"images": ["gs://b/1.png", "gs://b/2.png"]}, {}, 2),
    ({}, {}, 4),
])
def test_the_scene_count_is_the_effective_one(spec: dict[str, Any], status: dict[str, Any],
                                              count: int) -> None:
    obj = origin()
    obj["spec"] = {"prompt": "p", **spec}
    obj["status"] = status
    assert scene_count(obj) == count


@pytest.mark.parametrize("wanted,field", [
    (Override(scene=8, seed=1), "scene"),
    (Override(scene=-1, seed=1), "scene"),
    (Override(scene=0, seed=2**31), "seed"),
    (Override(scene=0, description=""), "description"),
    (Override(scene=0, description="x" * 501), "description"),
])
def test_what_is_out_of_range_is_refused_naming_the_field(wanted: Override, field: str) -> None:
    with pytest.raises(RerunError) as e:
        derive(origin(), wanted, "clip-again")
    assert e.value.field == field
    if field == "scene":
        assert "clip has 8 scenes (0 to 7)" in e.value.message


@pytest.mark.parametrize("name", ["Clip", "clip_2", "-clip", "c" * 64, ""])
def test_a_name_that_is_no_dns_label_is_refused(name: str) -> None:
    with pytest.raises(RerunError) as e:
        derive(origin(), Override(scene=0, seed=1), name)
    assert e.value.field == "name"


def test_generated_names_fit_in_63_characters_and_end_well() -> None:
    assert rerun_name("clip", "ab3de") == "clip-rerun-ab3de"
    long = rerun_name("a" * 80, "ab3de")
    assert len(long) == MAX_NAME and long.endswith("-rerun-ab3de")
    # The cut lands on a '-': dropped, so no '--' and the name stays a DNS label.
    cut = rerun_name("a" * 50 + "-bbbbbbbbbbbbbb", "ab3de")
    assert cut == "a" * 50 + "-rerun-ab3de"
    derive(origin(), Override(scene=0, seed=1), cut)  # accepted as a name
    suffix = random_suffix()
    assert len(suffix) == 5 and suffix.isalnum() and suffix == suffix.lower()


# -- the command line --------------------------------------------------------------------------

def test_rerun_parses_its_flags() -> None:
    inv = flags.parse(["rerun", "clip", "--scene", "3", "--seed", "9", "--description", "a crab",
                       "--name", "clip-b", "--watch", "-n", "demo"])
    a = inv.args
    assert (inv.command, a.name, a.scene, a.seed, a.description, a.new_name, a.watch) == \
        ("rerun", "clip", 3, 9, "a crab", "clip-b", True)
    assert inv.kube.namespace == "demo"


def test_rerun_needs_a_scene() -> None:
    with pytest.raises(flags.UsageError, match="--scene"):
        flags.parse(["rerun", "clip"])


def test_a_refusal_names_the_flag() -> None:
    with pytest.raises(CommandError, match=r"^--scene: scene 9 is out of range"):
        rerun_command.derived(origin(), scene=9, seed=None, description=None, name=None)
    with pytest.raises(CommandError, match=r"^--name: "):
        rerun_command.derived(origin(), scene=0, seed=None, description=None, name="Bad")


def test_the_command_names_the_videojob_after_its_origin() -> None:
    made = rerun_command.derived(origin(), scene=0, seed=None, description=None, name=None)
    assert made["metadata"]["name"].startswith("clip-rerun-")
    assert isinstance(made["spec"]["sceneOverrides"][0]["seed"], int)
