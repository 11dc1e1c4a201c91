"""Container environment, resolved the way the kubelet does it.

Pure functions over the pod object and two lookups (ConfigMap and Secret data), so the rules are
unit-tested without a cluster:
- `envFrom` first (in order, with `prefix`), then `env` (in order), later entries winning;
- `$(VAR)` in values refers to variables defined earlier in the list or by the runtime;
  `$$(VAR)` is an escaped literal `$(VAR)`; unknown references stay as written;
- `valueFrom`: `fieldRef` (the downward API), `resourceFieldRef`, `configMapKeyRef`,
  `secretKeyRef`, each honouring `optional`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from videojob_common.pipeline import Obj

# (namespace, name) -> data, or None when the object does not exist.
DataLookup = Callable[[str, str], Mapping[str, str] | None]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class EnvError(Exception):
    """The environment cannot be built (a missing required key): CreateContainerConfigError."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expands `$(VAR)` references as Kubernetes does for env values, command and args."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(sub, value)


def field_value(pod: Obj, field_path: str) -> str:
    """Value of a downward-API `fieldRef.fieldPath` for this pod."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.hostIPs": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
        "status.podIPs": status.get("podIP", "127.0.0.1"),
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(field_path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise EnvError(f"unsupported fieldRef.fieldPath {field_path!r}")


_SUFFIX = {"Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
           "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
           "m": Decimal("0.001")}


def parse_quantity(q: str | int | float) -> Decimal:
    """A resource quantity ("500m", "2Gi", "1.5"), exactly: in binary floating point 1001m / 1m
    came to 1001.0000000000001, which rounds up to 1002. ValueError names a non-quantity."""
    s = str(q).strip()
    try:
        for suffix in sorted(_SUFFIX, key=len, reverse=True):
            if s.endswith(suffix):
                return Decimal(s[: -len(suffix)]) * _SUFFIX[suffix]
        return Decimal(s)
    except InvalidOperation:
        raise ValueError(f"not a quantity: {q!r}") from None


def resource_value(container: Obj, ref: Obj) -> str:
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(name)
    if raw is None and kind == "requests":
        raw = resources.get("limits", {}).get(name)
    if raw is None:
        # Unset limits fall back to the node's allocatable; report zero for requests.
        return "0"
    divisor = parse_quantity(ref.get("divisor", "1"))
    return str(math.ceil(parse_quantity(raw) / divisor))


def resolve(
    pod: Obj,
    container: Obj,
    base: Mapping[str, str],
    configmap: DataLookup,
    secret: DataLookup,
) -> dict[str, str]:
    """The environment of `container`: `base` (runtime variables), then envFrom, then env."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(base)

    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, lookup, what = source["configMapRef"], configmap, "configmap"
        elif "secretRef" in source:
            ref, lookup, what = source["secretRef"], secret, "secret"
        else:
            continue
        data = lookup(ns, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{what} "{ref["name"]}" not found')
        for key, value in data.items():
            env[prefix + key] = value

    for var in container.get("env", []):
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"])
        else:
            for key, lookup, what in (("configMapKeyRef", configmap, "configmap"),
                                      ("secretKeyRef", secret, "secret")):
                if key not in source:
                    continue
                ref = source[key]
                data = lookup(ns, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    missing = (f'{what} "{ref["name"]}" not found' if data is None
                               else f'couldn\'t find key {ref["key"]} in {what} {ns}/{ref["name"]}')
                    raise EnvError(missing)
                env[name] = data[ref["key"]]
                break
    return env
