"""Writes docs/configuration.md, the Helm chart's values table, from the `# --` comments in
helm/videojob-operator/values.yaml (`--check`: exit 1 when the file is stale)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VALUES = REPO / "helm" / "videojob-operator" / "values.yaml"
OUT = REPO / "docs" / "configuration.md"
INTRO = """\
# Configuration

<!-- Generated from helm/videojob-operator/values.yaml by hack/chart_docs.py; do not edit. -->

Every value of the Helm chart `helm/videojob-operator`, with its default. Set them with
`--set key=value` or `-f values.yaml`; `values.schema.json` rejects unknown keys and bad values,
naming the field. Examples: [examples/helm/](../examples/helm/); installing:
[install.md](install.md). The chart renders the operator's configuration file (ConfigMap
`<release>-videojob-operator-config`, key `config.yaml`) from these values; `pools` changes apply
at run time, everything else restarts the operator (a checksum annotation).

| key | default | description |
|---|---|---|
"""


def documented(lines: list[str]) -> list[tuple[str, str]]:
    """(dotted key, description) for every key with a `# --` comment, in file order."""
    out: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
            continue
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            if stripped:
                comment = None
            continue
        indent = len(m.group(1))
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, m.group(2)))
        if comment is not None:
            out.append((".".join(k for _, k in path), " ".join(comment)))
        comment = None
    return out


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def render() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    rows = []
    for key, description in documented(text.splitlines()):
        default = json.dumps(lookup(values, key), separators=(", ", ": "))
        description = description.replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {description} |")
    return INTRO + "\n".join(rows) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(REPO)} is stale: run hack/chart_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
