"""Plug-ins by name: the built-in ones, those registered in-process (tests, embedding), and those
installed as packages' entry points. The render backends (backends.py) and the TTS backends
(tts.py) are both found this way."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from videojob_worker.errors import PermanentError

T = TypeVar("T")


class Plugins(Generic[T]):
    """One kind of plug-in: its entry-point group, its built-ins (`module:attribute`), the class
    its plug-ins return, and the spec field that names one (for the error that says so)."""

    # `kind` is a plain `type`: the plug-ins' base classes are abstract, which type[T] refuses.
    def __init__(self, group: str, builtin: dict[str, str], kind: type, field: str) -> None:
        self.group, self.builtin, self.kind, self.field = group, builtin, kind, field
        self.registered: dict[str, Callable[[], T]] = {}

    def register(self, name: str, factory: Callable[[], T]) -> None:
        self.registered[name] = factory

    def available(self) -> list[str]:
        names = set(self.builtin) | set(self.registered)
        names |= {ep.name for ep in entry_points(group=self.group)}
        return sorted(names)

    def load(self, name: str) -> T:
        """A new instance of the plug-in `name`; an unknown name is a permanent error naming
        the field (the spec asks for something this image cannot do)."""
        if name in self.registered:
            factory = self.registered[name]
        elif name in self.builtin:
            module, _, attribute = self.builtin[name].partition(":")
            factory = getattr(importlib.import_module(module), attribute)
        else:
            matches = [ep for ep in entry_points(group=self.group) if ep.name == name]
            if not matches:
                raise PermanentError(f"{self.field} {name!r} is not installed in the worker "
                                     f"image (available: {', '.join(self.available())})")
            factory = matches[0].load()
        made = factory()
        if not isinstance(made, self.kind):
            raise TypeError(f"{self.field} {name!r} ({factory!r}) did not return a "
                            f"{self.kind.__name__}")
        return made
