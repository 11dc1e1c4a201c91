"""What a ServiceAccount may do (`kubectl auth can-i --list`) against what it did (the API
server's audit log): parsing both, and the comparisons tests/e2e/test_realnodes.py makes; and
`role`, the manifests that grant a ServiceAccount some rules.

kubectl prints `auth can-i --list` as a fixed-width table (it has no `-o json`), so the columns
are cut where the header's titles start. A resource reads `jobs.batch` or
`videojobs.videojob.dev/status`: the plural, then its group after the first dot, then the
subresource after a slash.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

COLUMNS = ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")


@dataclass(frozen=True, order=True)
class Grant:
    """One verb on one resource (with its subresource), for any name or for one name."""
    group: str
    resource: str
    verb: str
    name: str = ""

    @property
    def kubectl(self) -> str:
        """The resource as kubectl writes it: `jobs.batch`, `videojobs.videojob.dev/status`."""
        plural, _, sub = self.resource.partition("/")
        qualified = f"{plural}.{self.group}" if self.group else plural
        return f"{qualified}/{sub}" if sub else qualified


@dataclass(frozen=True, order=True)
class Call:
    """One request from the audit log."""
    group: str
    resource: str
    verb: str
    name: str
    namespace: str
    code: int


def _list(cell: str) -> list[str]:
    inner = cell.strip().removeprefix("[").removesuffix("]").strip()
    return inner.split() if inner else []


def parse_can_i(text: str) -> tuple[set[Grant], set[tuple[str, str]]]:
    """`kubectl auth can-i --list` → its resource grants and its (non-resource URL, verb) pairs."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    head = next((i for i, line in enumerate(lines) if line.startswith(COLUMNS[0])), None)
    if head is None:
        raise ValueError(f"not the output of `kubectl auth can-i --list`: {text[:80]!r}")
    lines = lines[head:]  # a `$ kubectl ...` line above, as in the docs
    starts = [lines[0].index(title) for title in COLUMNS]
    grants: set[Grant] = set()
    urls: set[tuple[str, str]] = set()
    for line in lines[1:]:
        cells = [line[a:b] for a, b in zip(starts, [*starts[1:], len(line) + 1], strict=True)]
        resource, nonresource, names, verbs = (cells[0].strip(), _list(cells[1]),
                                               _list(cells[2]), _list(cells[3]))
        for verb in verbs:
            urls.update((url, verb) for url in nonresource)
            if resource:
                qualified, _, sub = resource.partition("/")
                plural, _, group = qualified.partition(".")
                full = f"{plural}/{sub}" if sub else plural
                grants.update(Grant(group, full, verb, name) for name in names or [""])
    return grants, urls


def parse_audit(lines: Iterable[str], username: str) -> tuple[list[Call], list[tuple[str, str]]]:
    """The audit log's completed requests by `username` → resource calls and (URL path, verb)."""
    calls: list[Call] = []
    urls: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("user", {}).get("username") != username:
            continue
        if event.get("stage") not in ("ResponseComplete", "ResponseStarted", "Panic"):
            continue
        ref = event.get("objectRef")
        code = int(event.get("responseStatus", {}).get("code", 0))
        if ref is None:
            urls.append((event["requestURI"].split("?")[0], event["verb"]))
            continue
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        calls.append(Call(ref.get("apiGroup", ""), resource, event["verb"], ref.get("name", ""),
                          ref.get("namespace", ""), code))
    return calls, urls


def _covers(grant: Grant, call: Call) -> bool:
    return ((grant.group, grant.resource, grant.verb) == (call.group, call.resource, call.verb)
            or (grant.group, grant.resource, grant.verb) == ("*", "*", "*")) \
        and grant.name in ("", call.name)


def uncovered(calls: Iterable[Call], grants: set[Grant]) -> list[Call]:
    """The calls no grant allows (by group, resource, verb and name)."""
    return sorted({c for c in calls if not any(_covers(g, c) for g in grants)})


def unused(grants: Iterable[Grant], calls: Iterable[Call]) -> list[Grant]:
    """The grants no call used."""
    made = list(calls)
    return sorted(g for g in grants if not any(_covers(g, c) for c in made))


def url_allowed(path: str, urls: set[tuple[str, str]], verb: str) -> bool:
    """Whether a non-resource URL is granted: exactly, or under a `/prefix/*` rule."""
    return any(v == verb and (u == path or (u.endswith("*") and path.startswith(u[:-1])))
               for u, v in urls)


def table(grants: Iterable[Grant]) -> list[str]:
    """Grants as kubectl's rows would group them: `resource [names] [verbs]`, sorted, one line
    each, spaces collapsed (what the docs' block is compared with)."""
    return sorted(f"{res} [{name}] [{' '.join(sorted(verbs))}]"
                  for res, name, verbs in _rows(grants))


def render(grants: Iterable[Grant]) -> str:
    """Grants as `kubectl auth can-i --list` prints them (resource rows only), for the docs."""
    rows = [(res, f"[{name}]" if name else "[]", f"[{' '.join(verbs)}]")
            for res, name, verbs in _rows(grants)]
    width = max([len("Resources"), *(len(r[0]) for r in rows)]) + 3
    head = f"{'Resources':<{width}}{'Non-Resource URLs':<20}{'Resource Names':<{_names(rows)}}Verbs"
    lines = [head] + [f"{res:<{width}}{'[]':<20}{names:<{_names(rows)}}{verbs}"
                      for res, names, verbs in rows]
    return "\n".join(lines) + "\n"


def _names(rows: list[tuple[str, str, str]]) -> int:
    return max([len("Resource Names"), *(len(r[1]) for r in rows)]) + 3


VERB_ORDER = ("get", "list", "watch", "create", "patch", "update", "delete", "deletecollection")


def _rows(grants: Iterable[Grant]) -> list[tuple[str, str, list[str]]]:
    rows: dict[tuple[str, str], list[str]] = {}
    for g in grants:
        rows.setdefault((g.kubectl, g.name), []).append(g.verb)
    order = {v: i for i, v in enumerate(VERB_ORDER)}
    return [(res, name, sorted(verbs, key=lambda v: (order.get(v, len(order)), v)))
            for (res, name), verbs in sorted(rows.items())]


def fenced_block(markdown: str, after: str) -> str:
    """The first fenced block after the text `after`, without its fences, dedented."""
    rest = markdown[markdown.index(after):]
    start = rest.index("```")
    body = rest[rest.index("\n", start) + 1:]
    return textwrap.dedent(body[:body.index("```")].rstrip(" "))


def role(name: str, namespace: str | None, rules: list[dict[str, Any]],
         subject: tuple[str, str]) -> list[dict[str, Any]]:
    """A Role (a ClusterRole when `namespace` is None) with `rules`, bound to the
    ServiceAccount `subject` (namespace, name): the manifests to apply."""
    kind = "Role" if namespace else "ClusterRole"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
             "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding",
             "metadata": meta,
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": subject[1],
                           "namespace": subject[0]}]}]
