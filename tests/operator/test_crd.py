"""The CRD in crds/ is generated from the pydantic models, and says what the models say."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from videojob_common.spec_fields import unknown_fields
from videojob_common.triggers import MAPPABLE, URI_TARGETS
from videojob_operator import crd
from videojob_operator.api import VideoJobSpec, VideoJobStatus, VideoJobTriggerSpec
from videojob_testkit import REPO

CRD_FILE = REPO / "crds" / "videojob.dev_videojobs.yaml"


def committed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return doc


def schema(part: str) -> dict[str, Any]:
    root = committed()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    result: dict[str, Any] = root["properties"][part]
    return result


def walk(s: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, s)]
    for name, sub in (s.get("properties") or {}).items():
        out += walk(sub, f"{path}.{name}")
    if "items" in s:
        out += walk(s["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("plural", ["videojobs", "videojobpools", "videojobtriggers"])
def test_committed_crds_are_what_the_models_generate(plural: str) -> None:
    path = CRD_FILE.parent / f"videojob.dev_{plural}.yaml"
    assert path.read_text() == crd.render(plural), (
        f"crds/ is stale: run `python -m videojob_operator.crd {plural} > {path.name}` in crds/")


def test_the_spec_field_names_the_worker_checks_are_the_crds() -> None:
    path = REPO / "common" / "videojob_common" / "spec_fields.json"
    assert path.read_text() == crd.spec_fields(), (
        "spec_fields.json is stale: run `python -m videojob_operator.crd spec-fields > "
        "common/videojob_common/spec_fields.json`")
    examples = [doc for path in sorted((REPO / "examples").glob("*.yaml"))
                for doc in yaml.safe_load_all(path.read_text())
                if isinstance(doc, dict) and doc.get("kind") == "VideoJob"]
    assert examples and all(unknown_fields(doc["spec"]) == [] for doc in examples)
    assert unknown_fields({"prompt": "x", "promt": "y"}) == ["spec.promt"]


def test_every_spec_and_status_field_is_described() -> None:
    for part in ("spec", "status"):
        for path, s in walk(schema(part)):
            assert s.get("description"), f"{part}{path} has no description"


def test_spec_fields_and_defaults_match_the_model() -> None:
    props = schema("spec")["properties"]
    fields = {f.alias or name: f for name, f in VideoJobSpec.model_fields.items()}
    assert set(props) == set(fields)
    for name, field in fields.items():
        default = field.default if field.default is not None else None
        assert props[name].get("default") == default, name


def test_every_status_field_is_declared() -> None:
    """kopf users lose status fields the schema does not declare (kopf#574): ours are all there."""
    props = schema("status")["properties"]
    fields = {f.alias or name for name, f in VideoJobStatus.model_fields.items()}
    assert set(props) == fields
    stage_props = props["stages"]["items"]["properties"]
    assert {"name", "phase", "attempts", "progress", "completed", "total", "startTime",
            "completionTime", "jobName", "message"} <= set(stage_props)


def test_bounds_and_enums() -> None:
    props = schema("spec")["properties"]
    assert (props["scenes"]["minimum"], props["scenes"]["maximum"]) == (1, 32)
    assert (props["durationSeconds"]["minimum"], props["durationSeconds"]["maximum"]) == (1, 600)
    assert (props["fps"]["minimum"], props["fps"]["maximum"]) == (1, 60)
    assert (props["priority"]["minimum"], props["priority"]["maximum"]) == (-100, 100)
    assert props["transition"]["enum"] == ["none", "crossfade", "fade"]


def test_only_suspend_priority_and_ttl_are_mutable() -> None:
    props = schema("spec")["properties"]
    for name, s in props.items():
        rules = [r["rule"] for r in s.get("x-kubernetes-validations", [])]
        mutable = name in ("suspend", "priority", "ttlSecondsAfterFinished")
        assert ("self == oldSelf" in rules) != mutable, name


def test_printer_columns_and_short_name() -> None:
    spec = committed()["spec"]
    columns = {c["name"]: c for c in spec["versions"][0]["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Progress", "Stage", "Queue", "Age", "Output"]
    assert columns["Output"]["priority"] == 1
    assert spec["names"]["shortNames"] == ["vj"]
    assert spec["versions"][0]["subresources"] == {"status": {}}


def test_no_category_shadows_a_resource_name() -> None:
    """`kubectl get videojob X` must stay unambiguous: a category named like a resource would
    expand to every CRD in it."""
    crds = [yaml.safe_load((CRD_FILE.parent / f"videojob.dev_{p}.yaml").read_text())
            for p in ("videojobs", "videojobpools", "videojobtriggers")]
    names = {n for c in crds for n in (c["spec"]["names"]["singular"],
                                       c["spec"]["names"]["plural"])}
    members: dict[str, int] = {}
    for c in crds:
        for category in c["spec"]["names"].get("categories", []):
            members[category] = members.get(category, 0) + 1
    assert all(members[c] == 1 for c in members if c in names), members


def trigger_schema() -> dict[str, Any]:
    doc = yaml.safe_load((CRD_FILE.parent / "videojob.dev_videojobtriggers.yaml").read_text())
    result: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def test_every_trigger_field_is_described_for_kubectl_explain() -> None:
    root = trigger_schema()
    for part in ("spec", "status"):
        for path, s in walk(root["properties"][part]):
            assert s.get("description"), f"{part}{path} has no description"


def test_a_trigger_template_is_a_videojob_spec_without_its_transition_rules() -> None:
    """Checked like a VideoJob's spec when the trigger is written (fields, bounds, enums), but
    editable (no oldSelf), without defaults, and without the prompt requirement (a payload may
    fill it in: the trigger's own rule checks that one of them does)."""
    template = trigger_schema()["properties"]["spec"]["properties"]["template"]
    spec = template["properties"]["spec"]
    assert set(spec["properties"]) == set(schema("spec")["properties"])
    assert spec["properties"]["fps"]["maximum"] == 60
    assert spec["properties"]["transition"]["enum"] == ["none", "crossfade", "fade"]
    for path, s in walk(spec):
        assert "default" not in s, path
        for rule in s.get("x-kubernetes-validations", []):
            assert "oldSelf" not in rule["rule"], path
    assert "prompt is required" not in str(spec)


def test_only_the_allow_list_can_be_mapped_and_uris_need_prefixes() -> None:
    spec = trigger_schema()["properties"]["spec"]
    param = spec["properties"]["parameters"]["items"]["properties"]
    assert param["to"]["enum"] == list(MAPPABLE)
    assert not {"backend", "priority", "gpu", "output", "suspend", "retry"} & set(MAPPABLE)
    rules = " ".join(r["rule"] for r in spec["x-kubernetes-validations"])
    assert all(f"'{t}'" in rules for t in URI_TARGETS) and "uriPrefixes" in rules
    assert spec["properties"]["uriPrefixes"]["items"]["pattern"].endswith("/$")
    assert "namespace" not in spec["properties"]["secretRef"]["properties"]
    with pytest.raises(ValueError, match="cannot be mapped"):
        VideoJobTriggerSpec.model_validate({
            "signature": "github", "secretRef": {"name": "s", "key": "k"},
            "serviceAccountName": "sa", "template": {"spec": {"prompt": "x"}},
            "parameters": [{"from": "$.x", "to": "backend"}]})


def test_trigger_names_shortname_and_columns() -> None:
    doc = yaml.safe_load((CRD_FILE.parent / "videojob.dev_videojobtriggers.yaml").read_text())
    assert doc["spec"]["names"]["shortNames"] == ["vjt"]
    assert doc["spec"]["scope"] == "Namespaced"
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Signature", "Account", "Ready", "Created", "Last", "Age"]
