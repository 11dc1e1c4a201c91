"""Kubernetes label selectors (`-l team=a,env!=dev,tier in (x,y),!legacy`) read into
requirements, with Kubernetes' own rules for keys and values, and an error that names the part
that is wrong.

The grammar is apimachinery's (k8s.io/apimachinery/pkg/labels/selector.go): requirements joined
by commas; each is `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)` or
`key notin (v1,v2)`. `key>n` and `key<n` exist there for node selectors only, and are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Operator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()


class SelectorError(ValueError):
    """A selector that cannot be read; the message names the part and what is wrong with it."""


_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A key is anything up to the operator; it is checked on its own below, for a clearer message.
_KEY = r"[^\s=!(),<>]+"
_EXISTS = re.compile(rf"^\s*(?P<not>!)?\s*(?P<key>{_KEY})\s*$")
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EXACT = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),<>]*)\s*$")
_ORDERED = re.compile(rf"^\s*{_KEY}\s*[<>]")


def parse(selector: str) -> tuple[Requirement, ...]:
    """The requirements of `selector` ("" selects everything)."""
    if not selector.strip():
        return ()
    return tuple(_requirement(part, selector) for part in _split(selector))


def _split(selector: str) -> list[str]:
    """The requirements' texts: commas split them, except inside a value set's parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(selector):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise SelectorError(f"label selector {selector!r}: nested '(' at position {i}")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"label selector {selector!r}: ')' without '(' at "
                                    f"position {i}")
        elif ch == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"label selector {selector!r}: '(' is never closed")
    parts.append(selector[start:])
    return parts


def _requirement(part: str, selector: str) -> Requirement:
    where = f"label selector {selector!r}, requirement {part.strip()!r}"
    if not part.strip():
        raise SelectorError(f"label selector {selector!r}: an empty requirement (a stray comma)")
    if m := _EXISTS.match(part):
        op = Operator.DOES_NOT_EXIST if m["not"] else Operator.EXISTS
        return Requirement(_key(m["key"], where), op)
    if m := _SET.match(part):
        values = tuple(v.strip() for v in m["values"].split(","))
        if values == ("",):
            raise SelectorError(f"{where}: the set of values is empty")
        return Requirement(_key(m["key"], where),
                           Operator.IN if m["op"] == "in" else Operator.NOT_IN,
                           tuple(_value(v, where) for v in values))
    if m := _EXACT.match(part):
        op = Operator.NOT_EQUALS if m["op"] == "!=" else Operator.EQUALS
        return Requirement(_key(m["key"], where), op, (_value(m["value"], where),))
    if _ORDERED.match(part):
        raise SelectorError(f"{where}: '<' and '>' compare node labels only; use =, !=, in, "
                            "notin, KEY or !KEY")
    raise SelectorError(f"{where}: expected KEY, !KEY, KEY=VALUE, KEY!=VALUE, "
                        "KEY in (V1,V2) or KEY notin (V1,V2)")


def _key(key: str, where: str) -> str:
    """A label key as Kubernetes checks it: an optional DNS subdomain prefix and '/', then a
    name of at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        raise SelectorError(f"{where}: key prefix {prefix!r} must be a DNS subdomain "
                            "(lower case letters, digits, '-' and '.', at most 253)")
    if not name or len(name) > 63 or not _NAME.match(name):
        raise SelectorError(f"{where}: key name {name!r} must be 1-63 characters: letters, "
                            "digits, '-', '_' and '.', starting and ending with a letter or digit")
    return key


def _value(value: str, where: str) -> str:
    if len(value) > 63 or not _NAME.match(value):
        raise SelectorError(f"{where}: value {value!r} must be at most 63 characters: letters, "
                            "digits, '-', '_' and '.', starting and ending with a letter or digit")
    return value
