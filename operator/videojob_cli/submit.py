"""`submit -f FILE`: create the VideoJobs a manifest describes, as `kubectl create -f` does.

Manifests are read whole before anything is created, so a file that does not parse, or holds
something other than a VideoJob, creates nothing. `-f` takes a file, a directory (its `.yaml`,
`.yml` and `.json` files, in name order) or `-` for stdin, and may be repeated; a file may hold
several YAML documents, and a `kind: List` is unpacked.

Validation is the API server's: the CRD's schema and CEL rules refuse a bad spec with a message
naming the field (`spec.fps: Invalid value: 61: …`), which is printed as it came. As with
kubectl, one refused VideoJob does not stop the others; the exit code is 1 if any was refused.

A manifest's own `metadata.namespace` is used when `-n` is not given; given both, they must
agree (kubectl refuses the same conflict rather than silently picking one).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from kubernetes import client

from . import render, videojobs, watch
from .cluster import Target, server_message
from .errors import CommandError
from .resource import API_VERSION, GROUP, KIND

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Manifest:
    """One VideoJob document and where it came from (for messages)."""

    source: str
    body: dict[str, Any]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _documents(source: str, text: str) -> list[Manifest]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise CommandError(f"{source}: not valid YAML: {_one_line(str(e))}") from None
    out: list[Manifest] = []
    for number, doc in enumerate(docs, start=1):
        where = source if len(docs) == 1 else f"{source} (document {number})"
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise CommandError(f"{where}: expected a VideoJob object, got a "
                               f"{type(doc).__name__}")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for i, item in enumerate(doc["items"], start=1):
                if not isinstance(item, dict):
                    raise CommandError(f"{where} item {i}: expected a VideoJob object, got a "
                                       f"{type(item).__name__}")
                out.append(Manifest(f"{where} item {i}", item))
        else:
            out.append(Manifest(where, doc))
    return out


def check(manifest: Manifest) -> None:
    """Refuses what is not a VideoJob of this API version (the server checks the rest)."""
    kind, api_version = manifest.body.get("kind"), manifest.body.get("apiVersion")
    if kind != KIND:
        raise CommandError(f"{manifest.source}: kind is {kind!r}, not {KIND!r}; "
                           "use kubectl for other kinds")
    if api_version != API_VERSION:
        if isinstance(api_version, str) and api_version.startswith(f"{GROUP}/"):
            raise CommandError(f"{manifest.source}: apiVersion {api_version} is not served by "
                               f"this plugin; use {API_VERSION}")
        raise CommandError(f"{manifest.source}: apiVersion is {api_version!r}, not "
                           f"{API_VERSION!r}")
    metadata = manifest.body.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name")
                                              or metadata.get("generateName")):
        raise CommandError(f"{manifest.source}: metadata.name is required")


def read(paths: list[str], stdin: TextIO | None = None) -> list[Manifest]:
    """Every VideoJob in the files, directories or stdin (`-`) named, checked."""
    manifests: list[Manifest] = []
    for path in paths:
        if path == "-":
            manifests += _documents("<stdin>", (stdin or sys.stdin).read())
            continue
        p = Path(path)
        if p.is_dir():
            files = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
        elif p.is_file():
            files = [p]
        else:
            raise CommandError(f"{path}: no such file or directory")
        for f in files:
            manifests += _documents(str(f), f.read_text())
    if not manifests:
        raise CommandError(f"no VideoJob found in {', '.join(paths)}")
    for manifest in manifests:
        check(manifest)
    return manifests


def namespace_of(manifest: Manifest, target: Target, explicit: bool) -> str:
    own = (manifest.body.get("metadata") or {}).get("namespace")
    if own and explicit and own != target.namespace:
        raise CommandError(f"{manifest.source}: the manifest's namespace {own!r} does not match "
                           f"--namespace {target.namespace!r}")
    return str(own or target.namespace)


def run(target: Target, paths: list[str], explicit_namespace: bool, then_watch: bool,
        timeout: float | None) -> int:
    manifests = read(paths)
    namespaces = [namespace_of(m, target, explicit_namespace) for m in manifests]
    created: list[tuple[str, str]] = []
    refused = 0
    for manifest, namespace in zip(manifests, namespaces, strict=True):
        try:
            obj = videojobs.create(target, namespace, manifest.body)
        except client.ApiException as e:
            refused += 1
            print(f"error: {server_message(e)}", file=sys.stderr)
            continue
        print(render.name_line(obj, "created"), flush=True)
        created.append((namespace, obj["metadata"]["name"]))
    code = 1 if refused else 0
    if then_watch:
        for namespace, name in created:
            try:
                code |= watch.run(Target(target.api, namespace), name, timeout)
            except CommandError as e:
                print(f"error: {e}", file=sys.stderr)
                code = 1
    return code
