"""`get [NAME]`: VideoJobs as a table, or as YAML/JSON/names, like `kubectl get vj`.

The table is `render.table`; `-o yaml` and `-o json` print the objects exactly as the API server
returned them (a `kind: List` for more than a name, as kubectl does), so they can be piped back
into `submit -f` after editing. An empty listing says so on stderr and exits 0, as kubectl does.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import yaml

from . import render, videojobs
from .cluster import Target
from .errors import CommandError


def _as_list(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": objs}


def run(target: Target, name: str | None, output: str | None, all_namespaces: bool) -> int:
    if name and all_namespaces:
        raise CommandError("a VideoJob cannot be retrieved by name across all namespaces; "
                           "drop -A or the name")
    objs = [videojobs.get(target, name)] if name else videojobs.list_all(target, all_namespaces)
    if not objs and output not in ("yaml", "json"):
        where = "" if all_namespaces else f" in {target.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    doc: dict[str, Any] = objs[0] if name else _as_list(objs)
    if output == "json":
        print(json.dumps(doc, indent=4))
    elif output == "yaml":
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    elif output == "name":
        print("\n".join(render.name_line(obj) for obj in objs))
    else:
        now = dt.datetime.now(dt.UTC)
        print(render.table(objs, now, wide=output == "wide", all_namespaces=all_namespaces))
    return 0
