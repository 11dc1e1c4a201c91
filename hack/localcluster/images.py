"""The image table: which local program runs a container image (see images.yaml)."""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TABLE = Path(__file__).with_name("images.yaml")


class ImageError(Exception):
    """The container cannot be started from this image: CreateContainerError."""


@dataclass(frozen=True)
class ImageEntry:
    image: str
    entrypoint: tuple[str, ...] = ()
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    path_prefix: list[str] = field(default_factory=list)


def roots(env_prefix: str = sys.prefix) -> list[Path]:
    """What the images' "filesystem" is on this host: the Python environment the table points
    into and the source tree installed there in editable mode. A volume mounted over a directory
    that holds them (an emptyDir at /tmp while the checkout is under /tmp) must not hide them,
    as a volume never hides an image's own files."""
    return sorted({Path(env_prefix).resolve(), Path(__file__).resolve().parents[2]})


def repository(image: str) -> str:
    """`ghcr.io/videojob/worker:0.1@sha256:…` -> `ghcr.io/videojob/worker`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return name


def load_table(path: Path = DEFAULT_TABLE, env_prefix: str = sys.prefix) -> list[ImageEntry]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    entries = []

    def fill(value: object) -> str:
        return str(value).replace("{env}", env_prefix)

    for item in doc.get("images", []):
        entries.append(ImageEntry(
            image=item["image"],
            entrypoint=tuple(fill(a) for a in item.get("entrypoint", [])),
            path=tuple(fill(p) for p in item.get("path", [])),
        ))
    return entries


def match(table: list[ImageEntry], image: str) -> ImageEntry | None:
    repo = repository(image)
    for entry in table:
        pattern = entry.image
        if fnmatch.fnmatchcase(repo, pattern) or fnmatch.fnmatchcase(repo, "*/" + pattern):
            return entry
    return None


def launch(table: list[ImageEntry], container: dict[str, Any]) -> Launch:
    """The argv (before `$(VAR)` expansion) and PATH additions for a container."""
    image = container.get("image", "")
    entry = match(table, image)
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command:
        argv = command + args
    elif entry is not None and entry.entrypoint:
        argv = list(entry.entrypoint) + args
    else:
        raise ImageError(
            f"image {image!r} is not in the node agent's image table and the container "
            f"{container.get('name')!r} sets no command"
        )
    if entry is not None and entry.entrypoint and not command:
        program = argv[0]
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ImageError(f"image {image!r} maps to {program}, which is not installed")
    return Launch(argv=argv, path_prefix=list(entry.path) if entry else [])
