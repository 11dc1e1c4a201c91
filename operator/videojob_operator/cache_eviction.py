"""What the cache's sweep removes from one scope (docs/reuse.md, "Housekeeping"). Pure: the
sweeper (cache_sweeper.py) lists the scope's objects and reads its manifests on a thread, this
module decides, the sweeper deletes.

The rules, in order, for each entry (`<stage>/<key>/`):

- an entry whose key a VideoJob not finished references (its lookup's answer, or a stage Job's
  `VIDEOJOB_CACHE`) is never touched, none of its folders either: its Job may be writing it;
- a manifest that does not parse, or names a writer folder that is not there, is corrupt: the
  entry goes once the manifest is older than the writers' grace (a lookup already treats it as
  a miss, and the next writer would replace it; the grace leaves that writer its chance);
- a writer folder the manifest does not name (or any, in an entry without a manifest) goes once
  its newest file is older than the grace: an upload in progress, or a pod killed before its
  manifest (the last writer wins, so a superseded writer's folder is dead weight);
- an entry written more than `max_age_days` ago goes (age);
- then, oldest first, entries go until what the scope holds is at most `max_bytes` (size).

Objects the sweep does not recognize (another stage's folder, a name that is not a key) are
left alone: the sweep removes only what it knows to be the cache's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from videojob_common.cache_entries import (
    ARTIFACTS,
    CACHE_ENV,
    MANIFEST,
    CorruptEntry,
    Manifest,
    parse_instruction,
    parse_manifest,
)
from videojob_common.pipeline import Obj, Stage

from .cache_view import CacheAnswer
from .config import CacheLimit

AGE, SIZE, ORPHAN, CORRUPT = "age", "size", "orphan", "corrupt"
_STAGES = {str(s): s for s in ARTIFACTS}
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class StoredObject:
    """One object of the scope, as storage lists it."""

    path: str  # relative to the scope: `<stage>/<key>/manifest.json`, `…/<writer>/<file>`
    bytes: int
    modified: dt.datetime


@dataclass(frozen=True)
class Writer:
    name: str
    bytes: int
    modified: dt.datetime  # its newest file's


@dataclass(frozen=True)
class Entry:
    """One entry as the listing found it."""

    stage: Stage
    key: str
    writers: tuple[Writer, ...] = ()
    manifest: Manifest | None = None
    corrupt: bool = False  # a manifest.json is there and does not describe this entry
    manifest_modified: dt.datetime | None = None
    loose_bytes: int = 0  # the manifest, and files outside any writer folder

    @property
    def bytes(self) -> int:
        return self.loose_bytes + sum(w.bytes for w in self.writers)

    @property
    def named_writer(self) -> str | None:
        return self.manifest.artifact.path.partition("/")[0] if self.manifest else None

    def written_at(self) -> dt.datetime | None:
        """When its manifest says it was written, else when storage says it was."""
        if self.manifest is not None:
            try:
                at = dt.datetime.fromisoformat(self.manifest.written_at.replace("Z", "+00:00"))
            except ValueError:
                at = None
            if at is not None:
                return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        return self.manifest_modified


@dataclass(frozen=True)
class Deletion:
    stage: Stage
    key: str
    writer: str | None  # None: the whole entry
    reason: str
    bytes: int

    @property
    def path(self) -> str:
        """Relative to the scope; a folder."""
        base = f"{self.stage}/{self.key}"
        return base if self.writer is None else f"{base}/{self.writer}"


@dataclass(frozen=True)
class Sweep:
    deletions: tuple[Deletion, ...]
    kept: dict[Stage, int]  # bytes the scope holds after the deletions, by stage


@dataclass(frozen=True)
class Rules:
    limit: CacheLimit | None
    now: dt.datetime
    grace: dt.timedelta
    protected: frozenset[str]


def _is_key(name: str) -> bool:
    return len(name) == 64 and set(name) <= _HEX


def entries(objects: Iterable[StoredObject],
            read_manifest: Callable[[Stage, str], bytes | None]) -> list[Entry]:
    """The scope's entries from its listing; `read_manifest` reads an entry's manifest.json
    (None: gone since the listing)."""
    found: dict[tuple[Stage, str], list[tuple[str, StoredObject]]] = defaultdict(list)
    for obj in objects:
        stage_name, _, rest = obj.path.partition("/")
        key, _, inside = rest.partition("/")
        if stage_name in _STAGES and _is_key(key) and inside:
            found[(_STAGES[stage_name], key)].append((inside, obj))
    return [_entry(stage, key, files, read_manifest)
            for (stage, key), files in sorted(found.items())]


def _entry(stage: Stage, key: str, files: list[tuple[str, StoredObject]],
           read_manifest: Callable[[Stage, str], bytes | None]) -> Entry:
    writers: dict[str, list[StoredObject]] = defaultdict(list)
    loose, manifest_at = 0, None
    for inside, obj in files:
        writer, slash, _ = inside.partition("/")
        if slash:
            writers[writer].append(obj)
            continue
        loose += obj.bytes
        if inside == MANIFEST:
            manifest_at = obj.modified
    manifest, corrupt = None, False
    if manifest_at is not None:
        text = read_manifest(stage, key)
        try:
            manifest = parse_manifest(text, key=key, stage=stage) if text is not None else None
        except CorruptEntry:
            corrupt = True
    return Entry(stage=stage, key=key, manifest=manifest, corrupt=corrupt,
                 manifest_modified=manifest_at, loose_bytes=loose,
                 writers=tuple(Writer(name, sum(o.bytes for o in objs),
                                      max(o.modified for o in objs))
                               for name, objs in sorted(writers.items())))


def decide(found: Iterable[Entry], rules: Rules) -> Sweep:
    """What to delete from one scope, and what it holds after."""
    deletions: list[Deletion] = []
    kept: list[Entry] = []
    for e in found:
        gone = [] if e.key in rules.protected else _entry_rules(e, rules)
        deletions += gone
        if not any(d.writer is None for d in gone):
            left = {d.writer for d in gone}
            kept.append(Entry(e.stage, e.key, tuple(w for w in e.writers if w.name not in left),
                              e.manifest, e.corrupt, e.manifest_modified, e.loose_bytes))
    deletions += _over_size(kept, rules)
    evicted = {(d.stage, d.key) for d in deletions if d.reason == SIZE}
    totals: dict[Stage, int] = defaultdict(int)
    for e in kept:
        if (e.stage, e.key) not in evicted:
            totals[e.stage] += e.bytes
    return Sweep(tuple(deletions), dict(totals))


def _entry_rules(e: Entry, rules: Rules) -> list[Deletion]:
    """The corrupt, orphan and age rules for one entry not protected."""
    cutoff = rules.now - rules.grace
    named = e.named_writer
    if e.corrupt or (named is not None and named not in {w.name for w in e.writers}):
        if e.manifest_modified is not None and e.manifest_modified <= cutoff:
            return [Deletion(e.stage, e.key, None, CORRUPT, e.bytes)]
        return []
    written = e.written_at()
    max_age = rules.limit.max_age_days if rules.limit else None
    if named is not None and written is not None and max_age is not None and (
            written <= rules.now - dt.timedelta(days=max_age)):
        return [Deletion(e.stage, e.key, None, AGE, e.bytes)]
    return [Deletion(e.stage, e.key, w.name, ORPHAN, w.bytes) for w in e.writers
            if w.name != named and w.modified <= cutoff]


def _over_size(kept: list[Entry], rules: Rules) -> list[Deletion]:
    """Complete entries, oldest first, until the scope holds at most `max_bytes`."""
    max_bytes = rules.limit.max_bytes if rules.limit else None
    total = sum(e.bytes for e in kept)
    if max_bytes is None or total <= max_bytes:
        return []
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates = sorted((e for e in kept if e.manifest is not None and e.key not in
                         rules.protected), key=lambda e: (e.written_at() or epoch, e.key))
    out = []
    for e in candidates:
        if total <= max_bytes:
            break
        out.append(Deletion(e.stage, e.key, None, SIZE, e.bytes))
        total -= e.bytes
    return out


# -- what a VideoJob not finished references ---------------------------------------------------

def answer_keys(answer: CacheAnswer) -> set[str]:
    """Every key a lookup's answer names: the entries its VideoJob reads or will write."""
    keys = {answer.plan_key} - {""}
    if answer.keys is not None:
        k = answer.keys
        keys |= {k.plan, k.stitch, *k.keyframes, *k.segments}
    if answer.reused is not None:
        keys.add(answer.reused.key)
    return keys


def job_keys(job: Obj) -> set[str]:
    """The keys in a stage Job's `VIDEOJOB_CACHE` (those it writes); none when it has none or
    it does not parse."""
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    keys: set[str] = set()
    for container in template.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") != CACHE_ENV or not isinstance(env.get("value"), str):
                continue
            try:
                keys |= set(parse_instruction(env["value"]).keys.values())
            except ValueError:
                continue
    return keys
