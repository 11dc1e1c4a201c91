"""`cache stats [-n NS | -A] [--root URI]`: what the stage cache holds (docs/reuse.md), per
namespace (or shared cache) and stage: entries, bytes, the oldest and newest entry.

It reads the storage root directly, as `history` reads the archive: an administrator's command
(the root holds every namespace's artifacts). The root comes from `--root`, else
`$VIDEOJOB_STORAGE_ROOT` (the operator's own setting), else the local cluster's
(`$LOCALCLUSTER_ROOT/artifacts`, `./.cluster/artifacts`, where `make operator-up` points the
operator) when it exists. `file://` roots are walked; `gs://` roots are listed with
google-cloud-storage when it is installed.

An entry is counted from its manifest (`manifest.json`, videojob_common.cache_entries): its
artifact's size and its writtenAt. A manifest that does not parse is counted as corrupt, not
as an entry: the operator treats it as a miss. Writer folders no manifest names (a pod killed
mid-write) are not counted. Aggregation and the table are pure (tests/cli/test_cache_stats.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from videojob_common.cache_entries import (
    ARTIFACTS,
    CACHE_DIR,
    MANIFEST,
    SHARED_DIR,
    CorruptEntry,
    parse_manifest,
)
from videojob_common.pipeline import Stage

from .errors import CommandError
from .history import size
from .render import ABSENT, columns

ROOT_ENV = "VIDEOJOB_STORAGE_ROOT"
LOCAL_ROOT = "artifacts"  # under the local cluster's root (hack/operator_dev.py)
COLUMNS = ["NAMESPACE", "STAGE", "ENTRIES", "BYTES", "SIZE", "CORRUPT", "OLDEST", "NEWEST"]
SHARED_PREFIX = "shared/"  # how a shared cache is shown in the NAMESPACE column


@dataclass(frozen=True)
class Found:
    """One manifest as read from storage: where it is, and its text."""

    scope: str  # a namespace, or `shared/<name>`
    stage: str
    key: str
    text: bytes


@dataclass
class Row:
    scope: str
    stage: str
    entries: int = 0
    bytes: int = 0
    corrupt: int = 0
    oldest: str | None = None
    newest: str | None = None


def aggregate(found: Iterable[Found]) -> list[Row]:
    """One row per (scope, stage), sorted; each manifest counted once (an entry, or corrupt)."""
    rows: dict[tuple[str, str], Row] = {}
    for f in found:
        row = rows.setdefault((f.scope, f.stage), Row(f.scope, f.stage))
        try:
            manifest = parse_manifest(f.text, key=f.key, stage=Stage(f.stage))
        except (CorruptEntry, ValueError):
            row.corrupt += 1
            continue
        row.entries += 1
        row.bytes += manifest.artifact.bytes
        when = manifest.written_at or None
        if when:  # RFC 3339 in UTC, as the worker writes it: text order is time order
            row.oldest = when if row.oldest is None else min(row.oldest, when)
            row.newest = when if row.newest is None else max(row.newest, when)
    order = {str(s): i for i, s in enumerate(ARTIFACTS)}
    return sorted(rows.values(), key=lambda r: (r.scope.startswith(SHARED_PREFIX), r.scope,
                                                order.get(r.stage, len(order))))


def table(rows: list[Row]) -> str:
    return columns([COLUMNS, *[[r.scope, r.stage, str(r.entries), str(r.bytes), size(r.bytes),
                              str(r.corrupt), r.oldest or ABSENT, r.newest or ABSENT]
                                for r in rows]])


# -- where the cache is ------------------------------------------------------------------------

def find_root(flag: str | None, environ: Mapping[str, str], cwd: Path) -> str:
    """--root, else $VIDEOJOB_STORAGE_ROOT, else the local cluster's when it exists."""
    if flag:
        return flag
    if environ.get(ROOT_ENV):
        return environ[ROOT_ENV]
    base = environ.get("LOCALCLUSTER_ROOT")
    local = (Path(base) if base else cwd / ".cluster") / LOCAL_ROOT
    if local.is_dir():
        return f"file://{local.resolve()}"
    raise CommandError(f"no storage root to read: pass --root (file:///… or gs://bucket/…), set "
                       f"{ROOT_ENV}, or start the local cluster (make operator-up uses {local})")


def _stages() -> list[str]:
    return [str(s) for s in ARTIFACTS]


def scopes_wanted(names: Iterable[str], namespace: str | None) -> Iterator[tuple[str, str]]:
    """(the scope as shown, its folder relative to the root): one namespace's own cache, or
    (namespace None) every namespace's and every shared cache."""
    if namespace is not None:
        yield namespace, f"{namespace}/{CACHE_DIR}"
        return
    for name in sorted(names):
        if name != SHARED_DIR and not name.startswith("."):
            yield name, f"{name}/{CACHE_DIR}"


def read_file_root(root: Path, namespace: str | None) -> Iterator[Found]:
    if not root.is_dir():
        raise CommandError(f"storage root {root} is not a folder")
    scopes = list(scopes_wanted((p.name for p in root.iterdir() if p.is_dir()), namespace))
    shared = root / SHARED_DIR
    if namespace is None and shared.is_dir():
        scopes += [(f"{SHARED_PREFIX}{p.name}", f"{SHARED_DIR}/{p.name}")
                   for p in sorted(shared.iterdir()) if p.is_dir()]
    for shown, folder in scopes:
        for stage in _stages():
            base = root / folder / stage
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                manifest = entry / MANIFEST
                if manifest.is_file():
                    yield Found(shown, stage, entry.name, manifest.read_bytes())


def read_gcs_root(bucket_name: str, prefix: str, namespace: str | None) -> Iterator[Found]:
    try:
        from google.cloud import storage
    except ImportError:
        raise CommandError("a gs:// root needs google-cloud-storage "
                           "(pip install google-cloud-storage)") from None
    client = storage.Client()
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    look = [f"{base}{namespace}/{CACHE_DIR}/"] if namespace else [base]
    for start in look:
        for blob in client.list_blobs(bucket_name, prefix=start):
            parts = blob.name[len(base):].split("/")
            # <ns>/.cache/<stage>/<key>/manifest.json or .cache-shared/<name>/<stage>/<key>/…
            if len(parts) != 5 or parts[-1] != MANIFEST or parts[2] not in _stages():
                continue
            if parts[0] == SHARED_DIR:
                shown = f"{SHARED_PREFIX}{parts[1]}"
            elif parts[1] == CACHE_DIR:
                shown = parts[0]
            else:
                continue
            yield Found(shown, parts[2], parts[3], blob.download_as_bytes())


def read(root: str, namespace: str | None) -> Iterator[Found]:
    parts = urlsplit(root)
    if parts.scheme == "file":
        return read_file_root(Path(parts.path), namespace)
    if parts.scheme == "gs":
        return read_gcs_root(parts.netloc, parts.path, namespace)
    if not parts.scheme:
        return read_file_root(Path(root), namespace)
    raise CommandError(f"--root {root}: not a file:// or gs:// URI")


def run(root_flag: str | None, namespace: str | None,
        environ: Mapping[str, str] | None = None) -> int:
    root = find_root(root_flag, os.environ if environ is None else environ, Path.cwd())
    rows = aggregate(read(root, namespace))
    if not rows:
        where = f" for namespace {namespace}" if namespace else ""
        print(f"No cache entries{where} under {root}.")
        return 0
    print(table(rows))
    return 0
