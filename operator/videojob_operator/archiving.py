"""When a VideoJob goes into the archive, and what keeps it until it has (docs/history.md). Pure:
the planner calls `step`; archiver.py writes the rows.

The cluster is the truth, the annotation `videojob.dev/archived` the outbox's mark: a VideoJob is
due when it has ended (Succeeded, Failed; or Cancelled: deleted, its stages stopped, nothing of
it left) and its annotation does not hold the fingerprint of what it would archive now. The
archiver commits the row first and sets the annotation after, so a crash between the two
writes the row again (an upsert by uid: never a second row), and a crash before the commit
loses nothing (the VideoJob is still due). The fingerprint covers what a history reader sees
(phase, reason, times, stages, GPU-seconds, output, labels), so a figure that changes after the
end (a failed VideoJob's other pods ending later) is archived again, and the bookkeeping of
webhook deliveries is not.

While the archive is on, a VideoJob is not deleted by `ttlSecondsAfterFinished` before it is
archived (it waits as long as that takes), and a deleted one keeps its finalizer until it is
archived, for at most `archive.hold_seconds` from its deletion (the database may be down for
long; a namespace being deleted must not wait on it): then it goes, with a Warning Event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from videojob_common.archive.rows import ArchiveRow, row
from videojob_common.pipeline import TERMINAL, Obj, Phase

from .actions import Plan
from .config import ArchiveConfig
from .status import Reason, parse_ts, ts
from .views import Observation

ANNOTATION_ARCHIVED = "videojob.dev/archived"
CANCELLED = "Cancelled"  # the archive's phase of a VideoJob deleted before it ended


def archived_phase(videojob: Obj, children_left: bool) -> str | None:
    """The phase the archive records for the VideoJob as it is now; None: not due (still
    running, or being deleted with stages left to stop)."""
    status = videojob.get("status") or {}
    phase = status.get("phase")
    if phase in TERMINAL:
        return str(phase)
    if (videojob["metadata"].get("deletionTimestamp") and phase == Phase.CANCELLING
            and not children_left):
        return CANCELLED
    return None


def archive_key(progress_key: bytes) -> bytes:
    """The key of the fingerprints, derived from the operator's master key (the progress
    tokens' own, a Secret in the chart)."""
    return hmac.new(progress_key, b"videojob.dev/archived", hashlib.sha256).digest()


def fingerprint(videojob: Obj, phase: str, key: bytes) -> str:
    """What the archive's row shows of the VideoJob, keyed: its annotation's value once the row
    is committed. An HMAC, not a plain hash: a tenant may write its VideoJob's annotations, and
    one that could compute the mark could keep its VideoJobs (and what they cost) out of the
    archive. Numbers as floats, since the API server gives 12 back for 12.0."""
    status = videojob.get("status") or {}

    def num(value: Any) -> float:
        return round(float(value or 0), 3)

    doc = {
        "phase": phase, "reason": status.get("reason"), "message": status.get("message"),
        "start": status.get("startTime"), "end": status.get("completionTime"),
        "gpu": num(status.get("gpuSeconds")), "output": status.get("output"),
        "outputURI": status.get("outputURI"),
        "stages": [[s.get("name"), s.get("phase"), s.get("attempts"), num(s.get("gpuSeconds")),
                    s.get("startTime"), s.get("completionTime")]
                   for s in status.get("stages") or []],
        "labels": videojob["metadata"].get("labels") or {},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def archived(videojob: Obj, phase: str, key: bytes) -> bool:
    annotations = videojob["metadata"].get("annotations") or {}
    mark = annotations.get(ANNOTATION_ARCHIVED)
    return isinstance(mark, str) and hmac.compare_digest(mark, fingerprint(videojob, phase, key))


def archive_row(videojob: Obj, pods: Iterable[Obj], phase: str, now: dt.datetime) -> ArchiveRow:
    """The row: the VideoJob as it is, its phase the archive's (Cancelled ends now, when the
    last of it went)."""
    if phase == CANCELLED:
        status = {**(videojob.get("status") or {}), "phase": CANCELLED,
                  "reason": Reason.DELETED, "completionTime": ts(now)}
        videojob = {**videojob, "status": status}
    return row(videojob, pods, now)


def step(obs: Observation, status: Obj, config: ArchiveConfig, out: Plan) -> None:
    """The planner's last step: ask for the archive's write where the VideoJob is due (the
    controller hands it to the archiver once its status is written), and hold its deletion
    (by TTL, or its finalizer) until the row is in."""
    if not config.enabled:
        return
    videojob = {**obs.videojob, "status": status}
    phase = archived_phase(videojob, children_left=bool(obs.jobs or obs.pods))
    if phase is not None and archived(videojob, phase, obs.archive_key):
        return
    if phase is not None:
        out.archive = True
    # Not archived yet: the annotation's event brings the VideoJob back here.
    out.delete_videojob = False
    if not out.remove_finalizer:
        return
    since = parse_ts(obs.videojob["metadata"].get("deletionTimestamp")) or obs.now
    waited = (obs.now - since).total_seconds()
    if waited < config.hold_seconds:
        out.remove_finalizer = out.confirm_gone = False
        out.again_in(config.hold_seconds - waited)
        return
    out.tell("Warning", Reason.NOT_ARCHIVED,
             f"deleted without being archived: the archive did not take it within "
             f"{config.hold_seconds}s (archive.hold_seconds)")
