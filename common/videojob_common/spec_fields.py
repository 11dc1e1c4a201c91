"""The VideoJob spec's field names as the CRD declares them, and which fields of a spec are not
among them: what `kubectl apply --validate=strict` refuses, for specs that never reach the API
server (`videojob-worker run --spec FILE`).

`spec_fields.json` is generated from the operator's models (`python -m videojob_operator.crd
spec-fields`); a unit test fails when it differs from the CRD.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# {"fields": {name: tree}} for an object, {"map": tree} for one with any keys, {"items": tree}
# for an array, {} for a value.
SPEC_FIELDS: dict[str, Any] = json.loads(Path(__file__).with_name("spec_fields.json").read_text())


def unknown_fields(value: Any, tree: dict[str, Any] = SPEC_FIELDS,
                   path: str = "spec") -> list[str]:
    """The paths (`spec.narration`, `spec.gpu.tolerations[0].keyy`) of the fields in `value`
    that `tree` does not declare. Types are not checked here: the spec's model does that."""
    if isinstance(value, dict) and "fields" in tree:
        out = []
        for key, sub in value.items():
            if key in tree["fields"]:
                out += unknown_fields(sub, tree["fields"][key], f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, dict) and "map" in tree:
        return [u for key, sub in value.items()
                for u in unknown_fields(sub, tree["map"], f"{path}.{key}")]
    if isinstance(value, list) and "items" in tree:
        return [u for i, sub in enumerate(value)
                for u in unknown_fields(sub, tree["items"], f"{path}[{i}]")]
    return []
