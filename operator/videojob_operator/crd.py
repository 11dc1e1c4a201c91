"""Generates the VideoJob CRD from the pydantic models in api.py.

`python -m videojob_operator.crd > crds/videojob.dev_videojobs.yaml` writes it; a unit test fails
when the committed file differs from what this produces. `python -m videojob_operator.crd
spec-fields > common/videojob_common/spec_fields.json` writes the spec's field names alone, which
the worker checks local specs against (videojob_common.spec_fields).

The conversion turns pydantic's JSON schema into a structural OpenAPI v3 schema as the API
server requires: references inlined, `Optional[X]` as plain X (nulls are pruned by the API
server, so an explicit `null` in a manifest means "not set"), no `title`s or
`additionalProperties: false`, defaults only where a value exists.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import yaml
from pydantic import BaseModel

from videojob_common import triggers

from .api import (
    GROUP,
    KIND,
    PLURAL,
    POOL_KIND,
    POOL_PLURAL,
    VERSION,
    PoolStatus,
    TriggerStatus,
    VideoJobSpec,
    VideoJobStatus,
    VideoJobTriggerSpec,
)

Schema = dict[str, Any]
KEEP = {"type", "description", "default", "minimum", "maximum", "maxLength", "minLength",
        "pattern", "enum", "maxItems", "minItems", "items", "properties", "required",
        "additionalProperties", "x-kubernetes-validations", "format", "maxProperties"}


def structural(schema: Schema, defs: dict[str, Schema]) -> Schema:
    if "$ref" in schema:
        # A copy: an enum shared by two fields would otherwise come out as a YAML anchor.
        target = copy.deepcopy(defs[schema["$ref"].split("/")[-1]])
        merged = {**structural(target, defs), **{k: v for k, v in schema.items() if k != "$ref"}}
        if "description" in schema:
            merged["description"] = schema["description"]
        return structural_clean(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express {schema} structurally")
        inner = structural(options[0], defs)
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        return structural_clean({**inner, **outer}, defs)
    return structural_clean(schema, defs)


def structural_clean(schema: Schema, defs: dict[str, Schema]) -> Schema:
    out: Schema = {}
    for key, value in schema.items():
        kept = _kept(key, value, defs)
        if kept is not _DROP:
            out[key] = kept
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out or "additionalProperties" in out:
        out.setdefault("type", "object")
    return out


_DROP = object()


def _kept(key: str, value: Any, defs: dict[str, Schema]) -> Any:
    """One keyword of a schema as a structural schema has it (`_DROP`: left out)."""
    if key not in KEEP or (key == "default" and value is None):
        return _DROP
    if key == "properties":
        return {name: structural(sub, defs) for name, sub in value.items()}
    if key == "items":
        return structural(value, defs)
    if key == "additionalProperties":
        if value is False:
            return _DROP
        return structural(value, defs) if isinstance(value, dict) else value
    return value


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd() -> dict[str, Any]:
    spec = model_schema(VideoJobSpec)
    status = model_schema(VideoJobStatus)
    root: Schema = {
        "type": "object",
        "description": "A video to generate, and the pipeline run that generates it.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "videojob.dev/v1alpha1"},
            "kind": {"type": "string", "description": "VideoJob"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    columns: list[Schema] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "integer", "jsonPath": ".status.progress",
         "description": "Overall progress, percent"},
        {"name": "Stage", "type": "string", "jsonPath": ".status.currentStage"},
        {"name": "Queue", "type": "integer", "jsonPath": ".status.queuePosition", "priority": 1,
         "description": "Place in the admission queue while Queued"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Output", "type": "string", "jsonPath": ".status.outputURI", "priority": 1},
    ]
    return definition(KIND, PLURAL, "Namespaced", root, columns,
                      names={"shortNames": ["vj"], "categories": ["videojob"]},
                      subresources={"status": {}})


def definition(kind: str, plural: str, scope: str, root: Schema, columns: list[Schema], *,
               names: dict[str, list[str]], subresources: Schema | None = None) -> dict[str, Any]:
    """The CustomResourceDefinition around a schema (one served and stored version)."""
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if subresources:
        version["subresources"] = subresources
    version["additionalPrinterColumns"] = columns
    version["schema"] = {"openAPIV3Schema": root}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "videojob-operator",
                                "app.kubernetes.io/part-of": "videojob"}},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), **names},
            "scope": scope,
            "versions": [version],
        },
    }


def pool_crd() -> dict[str, Any]:
    """VideoJobPool: cluster-scoped, one per admission pool, written by the operator so that
    `kubectl get videojobpools` shows queues without Redis tools."""
    root: Schema = {
        "type": "object",
        "description": "An admission pool's live state (queue, running, limits, last decision). "
                       "Written by the operator; pools are configured in its configuration.",
        "properties": {
            "apiVersion": {"type": "string", "description": "videojob.dev/v1alpha1"},
            "kind": {"type": "string", "description": "VideoJobPool"},
            "metadata": {"type": "object"},
            "status": model_schema(PoolStatus),
        },
    }
    columns: list[Schema] = [
        {"name": "Strategy", "type": "string", "jsonPath": ".status.strategy"},
        {"name": "Max", "type": "integer", "jsonPath": ".status.maxConcurrency"},
        {"name": "Running", "type": "integer", "jsonPath": ".status.running"},
        {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
        {"name": "Queued", "type": "integer", "jsonPath": ".status.queued"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desired"},
        {"name": "Decision", "type": "string", "jsonPath": ".status.lastScaleDecision",
         "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    # No "videojob" category: `kubectl get videojob X` would become ambiguous.
    return definition(POOL_KIND, POOL_PLURAL, "Cluster", root, columns,
                      names={"shortNames": ["vjpool"]})


def template_spec(schema: Schema) -> Schema:
    """The VideoJob spec's schema as a trigger's template holds it: every field, bound, pattern
    and enum, so a template is checked when the trigger is written, but without what only makes
    sense of a VideoJob itself: transition rules (`oldSelf`: a template may be edited),
    requirements a payload may fill in (the prompt), and defaults (the VideoJob's own apply when
    it is created; the stored template stays as written)."""
    out: Schema = {}
    for key, value in schema.items():
        if key == "default":
            continue
        if key == "x-kubernetes-validations":
            rules = [r for r in value if "oldSelf" not in r["rule"]
                     and r.get("reason") != "FieldValueRequired"]
            if rules:
                out[key] = rules
        elif key == "properties":
            out[key] = {name: template_spec(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = template_spec(value)
        else:
            out[key] = value
    return out


def trigger_crd() -> dict[str, Any]:
    """VideoJobTrigger: namespaced; an inbound webhook of videojob-gateway that creates
    VideoJobs (docs/http-api.md, "Triggers"). The operator does not read it."""
    spec = model_schema(VideoJobTriggerSpec)
    template = spec["properties"]["template"]["properties"]
    template["spec"] = {**template_spec(model_schema(VideoJobSpec)),
                        "description": template["spec"]["description"]}
    root: Schema = {
        "type": "object",
        "description": "An inbound webhook: a signed POST to videojob-gateway's "
                       "/api/v1/namespaces/{namespace}/triggers/{name} creates a VideoJob from "
                       "spec.template, with fields from the payload, as "
                       "spec.serviceAccountName.",
        "required": ["spec"],
        "x-kubernetes-validations": [
            {"rule": "size(self.metadata.name) <= 63",
             "message": "a VideoJobTrigger's name is at most 63 characters (it is the value of "
                        f"the {triggers.TRIGGER_LABEL} label on its VideoJobs)"}],
        "properties": {
            "apiVersion": {"type": "string", "description": "videojob.dev/v1alpha1"},
            "kind": {"type": "string", "description": triggers.KIND},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": model_schema(TriggerStatus),
        },
    }
    columns: list[Schema] = [
        {"name": "Signature", "type": "string", "jsonPath": ".spec.signature"},
        {"name": "Account", "type": "string", "jsonPath": ".spec.serviceAccountName"},
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Created", "type": "integer", "jsonPath": ".status.created"},
        {"name": "Last", "type": "string", "jsonPath": ".status.lastVideoJob", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    # No "videojob" category: `kubectl get videojob X` would become ambiguous.
    return definition(triggers.KIND, triggers.PLURAL, "Namespaced", root, columns,
                      names={"shortNames": ["vjt"]},
                      subresources={"status": {}})


GENERATORS = {PLURAL: crd, POOL_PLURAL: pool_crd, triggers.PLURAL: trigger_crd}


def render(plural: str = PLURAL) -> str:
    header = (f"# Generated by `python -m videojob_operator.crd {plural}` from "
              "operator/videojob_operator/api.py; do not edit.\n")
    return header + yaml.safe_dump(GENERATORS[plural](), sort_keys=False, width=100)


def field_tree(schema: Schema) -> Schema:
    """A schema's field names alone: `fields` of an object, `map` of one with any keys, `items`
    of an array; {} for a value."""
    if "properties" in schema:
        return {"fields": {k: field_tree(v) for k, v in schema["properties"].items()}}
    if isinstance(schema.get("additionalProperties"), dict):
        return {"map": field_tree(schema["additionalProperties"])}
    if "items" in schema:
        return {"items": field_tree(schema["items"])}
    return {}


def spec_fields() -> str:
    return json.dumps(field_tree(model_schema(VideoJobSpec)), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else PLURAL
    sys.stdout.write(spec_fields() if target == "spec-fields" else render(target))
