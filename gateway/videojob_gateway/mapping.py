"""A delivery's JSON payload → the VideoJob's spec: the trigger's parameters (a payload path →
a spec field of the allow-list, the value converted to that field's type), its filter, and the
URIs a payload may give kept under the trigger's prefixes. Pure.

The path language is deliberately small: keys separated by dots and list indices in brackets,
with or without a leading `$.` (`$.head_commit.message`, `commits[0].id`, `commits.0.id`). No
wildcards, filters or expressions: a path names one value or none.

The payload comes from outside the cluster, so nothing in it is trusted: only the fields of
`videojob_common.triggers.MAPPABLE` can be set (the CRD refuses others, and so does `parameter`
here), a value of the wrong shape is refused rather than guessed at, and a URI must start with
one of the trigger's prefixes and may not climb out of it (`..`, encoded or not).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from videojob_common.triggers import MAPPABLE, URI_TARGETS, Target

Segment = str | int
_PART = re.compile(r"^([^\[\]]+)((?:\[[0-9]{1,4}\])*)$")
_INDEX = re.compile(r"\[([0-9]+)\]")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
MAX_URI = 2048
MAX_URIS = 32


class MappingError(ValueError):
    """A payload the parameters cannot map; `field` is the spec field (`spec.prompt`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def parse_path(text: str) -> tuple[Segment, ...]:
    """`$.commits[0].id` → ("commits", 0, "id"); ValueError for anything else."""
    rest = text[2:] if text.startswith("$.") else text
    if not rest or rest.startswith("$"):
        raise ValueError(f"{text!r} is not a payload path (keys and [index], e.g. $.a.b[0])")
    out: list[Segment] = []
    for part in rest.split("."):
        m = _PART.match(part)
        if not m:
            raise ValueError(f"{text!r} is not a payload path (keys and [index], e.g. $.a.b[0])")
        out.append(m.group(1))
        out += [int(i) for i in _INDEX.findall(m.group(2))]
    return tuple(out)


def lookup(doc: object, path: Sequence[Segment]) -> Any:
    """The value at `path`, or MISSING (a JSON null counts as missing). A key of digits indexes
    a list (`commits.0.id`)."""
    current = doc
    for seg in path:
        if isinstance(current, dict) and isinstance(seg, str) and seg in current:
            current = current[seg]
        elif isinstance(current, list) and (isinstance(seg, int) or seg.isdigit()):
            index = int(seg)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return MISSING if current is None else current


def scalar_text(value: object) -> str | None:
    """A scalar as the filter compares it: text as is, numbers and booleans as JSON writes
    them; None for objects, lists and missing values."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


@dataclass(frozen=True)
class Parameter:
    source: str  # the path as written (`$.head_commit.message`)
    path: tuple[Segment, ...]
    to: str  # a key of MAPPABLE
    required: bool = True


def parameter(source: str, to: str, required: bool = True,
              uri_prefixes: Sequence[str] = ()) -> Parameter:
    """A parameter of a trigger; ValueError for a field that may not be mapped, a URI field
    without prefixes, or a path that is not one."""
    if to not in MAPPABLE:
        raise ValueError(f"spec.{to} cannot be set from a payload; one of "
                         f"{', '.join(MAPPABLE)}")
    if to in URI_TARGETS and not uri_prefixes:
        raise ValueError(f"spec.{to} takes a URI: it can be mapped only under uriPrefixes")
    return Parameter(source, parse_path(source), to, required)


def convert(value: object, target: Target, field: str, uri_prefixes: Sequence[str]) -> Any:
    """`value` as the spec field takes it; MappingError naming the field otherwise."""
    match target:
        case "string":
            text = scalar_text(value)
            if text is None:
                raise MappingError(field, f"{field} takes text; the payload has "
                                          f"{_kind(value)}")
            return text
        case "integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _INTEGER.match(value.strip()):
                return int(value.strip())
            raise MappingError(field, f"{field} takes a whole number; the payload has "
                                      f"{_kind(value)}")
        case "uri":
            return under_prefixes(value, uri_prefixes, field)
        case "uris":
            items = value if isinstance(value, list) else [value]
            if len(items) > MAX_URIS:
                raise MappingError(field, f"{field} takes at most {MAX_URIS} URIs")
            return [under_prefixes(v, uri_prefixes, field) for v in items]
    raise AssertionError(target)


def under_prefixes(value: object, prefixes: Sequence[str], field: str) -> str:
    """A URI from the payload, if it lies under one of `prefixes` (each ends in `/`) and does
    not climb out of it; MappingError otherwise."""
    if not isinstance(value, str):
        raise MappingError(field, f"{field} takes a URI; the payload has {_kind(value)}")
    if len(value) > MAX_URI or "\\" in value or any(
            c.isspace() or not c.isprintable() for c in value):
        raise MappingError(field, f"{field}: not a URI this trigger accepts")
    prefix = next((p for p in prefixes if value.startswith(p) and len(value) > len(p)), None)
    if prefix is None:
        raise MappingError(field, f"{field}: the URI is not under the trigger's uriPrefixes")
    path = re.split(r"[?#]", value[len(prefix):], maxsplit=1)[0]
    # Decoded once and twice: a store or server that decodes %2e%2e (or %252e) must not be
    # led out of the prefix either.
    for text in (path, unquote(path), unquote(unquote(path))):
        if any(seg in (".", "..") for seg in re.split(r"[/\\]", text)):
            raise MappingError(field, f"{field}: the URI may not contain . or .. segments")
    return value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "text that is not one" if isinstance(value, str) else type(value).__name__


def mapped_spec(template: Mapping[str, Any], parameters: Sequence[Parameter], payload: object,
                uri_prefixes: Sequence[str] = ()) -> dict[str, Any]:
    """The template's spec with each parameter's value set; MappingError for a required field
    the payload lacks or a value of the wrong shape."""
    spec = copy.deepcopy(dict(template))
    for p in parameters:
        field = f"spec.{p.to}"
        value = lookup(payload, p.path)
        if value is MISSING:
            if p.required:
                raise MappingError(field, f"the payload has no {p.source} (for {field})")
            continue
        converted = convert(value, MAPPABLE[p.to], field, uri_prefixes)
        if p.to == "output.uri":
            spec["output"] = {**(spec.get("output") or {}), "uri": converted}
        else:
            spec[p.to] = converted
    return spec


@dataclass(frozen=True)
class Match:
    """A header (`name`, any case) or a payload path that must have one of `values`."""

    name: str
    values: frozenset[str]
    path: tuple[Segment, ...] | None = None  # None: a header


@dataclass(frozen=True)
class Filter:
    headers: tuple[Match, ...] = ()
    payload: tuple[Match, ...] = ()


def ignored_by_headers(flt: Filter, headers: Mapping[str, str]) -> str | None:
    """Why the filter's headers turn the delivery down (None: they do not). `headers` has
    lower-case names."""
    for m in flt.headers:
        got = headers.get(m.name.lower())
        if got not in m.values:
            return _not_one_of(f"header {m.name}", got, m.values)
    return None


def ignored_by_payload(flt: Filter, payload: object) -> str | None:
    for m in flt.payload:
        assert m.path is not None
        got = scalar_text(lookup(payload, m.path))
        if got not in m.values:
            return _not_one_of(m.name, got, m.values)
    return None


def _not_one_of(what: str, got: str | None, values: frozenset[str]) -> str:
    shown = "missing" if got is None else repr(got[:100])
    return f"{what} is {shown}, not one of {', '.join(sorted(values))}"


def videojob_name(prefix: str, trigger: str, replay_key: str) -> str:
    """The VideoJob a delivery makes: the same delivery always gives the same name, so making
    it twice is AlreadyExists, whichever gateway replica tries."""
    return prefix + hashlib.sha256(f"{trigger}\n{replay_key}".encode()).hexdigest()[:16]
