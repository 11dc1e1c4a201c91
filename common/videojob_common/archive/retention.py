"""How long the archive keeps a namespace's VideoJobs: the administrator's policies (an age, a
row count, or both; one for every namespace and others for named ones), and which applies where.

Pure: the store (store.py) finds the namespaces and deletes in bounded batches; this module only
decides what each namespace keeps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep a namespace's VideoJobs finished within `max_age`, and at most its `max_rows`
    newest; None: no bound of that kind. `namespace` None: every namespace without its own."""

    namespace: str | None = None
    max_age: dt.timedelta | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if self.max_age is not None and self.max_age <= dt.timedelta(0):
            raise ValueError(f"retention of {self.namespace or 'every namespace'}: max_age must "
                             f"be positive, not {self.max_age}")
        if self.max_rows is not None and self.max_rows < 0:
            raise ValueError(f"retention of {self.namespace or 'every namespace'}: max_rows must "
                             f"be 0 or more, not {self.max_rows}")

    def cutoff(self, now: dt.datetime) -> dt.datetime | None:
        """Rows finished before this go (None: no age bound)."""
        return now - self.max_age if self.max_age is not None else None


def by_namespace(policies: Sequence[RetentionPolicy],
                 namespaces: Iterable[str]) -> Mapping[str, RetentionPolicy]:
    """The policy of each namespace: its own, else the default (namespace None), else none. A
    namespace named twice is an error (which would win is not obvious)."""
    own: dict[str, RetentionPolicy] = {}
    default: RetentionPolicy | None = None
    for p in policies:
        if p.namespace is None:
            if default is not None:
                raise ValueError("two retention policies for every namespace")
            default = p
        elif p.namespace in own:
            raise ValueError(f"two retention policies for namespace {p.namespace!r}")
        else:
            own[p.namespace] = p
    out = dict(own)
    if default is not None:
        for ns in namespaces:
            out.setdefault(ns, default)
    return out


def needs_namespaces(policies: Sequence[RetentionPolicy]) -> bool:
    """Whether the archive's namespaces must be listed: only a default policy needs them."""
    return any(p.namespace is None for p in policies)
