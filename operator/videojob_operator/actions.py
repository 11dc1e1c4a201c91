"""What a plan asks the controller to do (`Plan`), and the Events it tells (`Event`).

The planner's steps (planner.py, stages.py, cancellation.py) add to one `Plan`; `finish` closes
it with the new status, written only where it differs from the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from videojob_common.pipeline import TERMINAL, Obj

from .api import VideoJobStatus
from .cache_view import CacheLookup
from .status import Reason, dump_status, strip_progress, strip_settling


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    add_finalizer: bool = False
    remove_finalizer: bool = False
    # Removal decided on absence (no Job, no pod seen): the controller confirms it with a fresh
    # read first, as a cache may lag behind the cluster (e.g. right after a restart).
    confirm_gone: bool = False
    # Stage Jobs to create, each already admitted (`suspend: false`, with the pods admission
    # offers it at creation) or queued (`suspend: true`): the controller creates them as they are.
    create_jobs: list[Obj] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    suspend_jobs: dict[str, bool] = field(default_factory=dict)  # job name -> suspend
    status: Obj | None = None  # the complete new status (camelCase), None: leave as is
    progress_only: bool = False  # status differs only in progress figures (rate-limited)
    # ... and of those only in what moves as pods end, the VideoJob under way: the stage's end
    # writes it (controller.SETTLE_SECONDS)
    settling_only: bool = False
    events: list[Event] = field(default_factory=list)
    delete_videojob: bool = False  # ttlSecondsAfterFinished reached
    archive: bool = False  # the VideoJob is due for the archive (archiving.py)
    cache_lookup: CacheLookup | None = None  # a stage waits for it (caching.py)
    requeue_after: float | None = None

    def again_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.05)
        self.requeue_after = seconds if self.requeue_after is None else min(
            self.requeue_after, seconds)

    def tell(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


def finish(out: Plan, status: VideoJobStatus, old_doc: Obj) -> Plan:
    """The plan with its new status (where it changed) and its Events, one per hand-off."""
    out.events = one_per_hand_off(out.events)
    new_doc = dump_status(status)
    if new_doc != old_doc:
        out.status = new_doc
        out.progress_only = strip_progress(new_doc) == strip_progress(old_doc)
        out.settling_only = (out.progress_only and new_doc.get("phase") not in TERMINAL
                             and strip_settling(new_doc) == strip_settling(old_doc))
    return out


def one_per_hand_off(events: list[Event]) -> list[Event]:
    """A stage that starts in the same look as the step before it (the VideoJob accepted, the
    previous stage succeeded, a resume) is told in that step's Event, and the last stage's
    success in the VideoJob's: "stage plan succeeded; stage keyframes started". One Event per
    hand-off, every transition still told; a stage that waits in the queue first gets
    StageQueued, then StageStarted of its own."""
    out: list[Event] = []
    for e in events:
        prev = out[-1] if out else None
        if prev is not None and _joins(prev, e):
            reason = e.reason if e.reason == Reason.SUCCEEDED else prev.reason
            out[-1] = Event("Normal", reason, f"{prev.message}; {e.message}")
            continue
        out.append(e)
    return out


def _joins(prev: Event, e: Event) -> bool:
    if not prev.type == e.type == "Normal":
        return False
    if e.reason == Reason.STAGE_STARTED:
        return prev.reason in (Reason.CREATED, Reason.STAGE_SUCCEEDED, Reason.RESUMED)
    return e.reason == Reason.SUCCEEDED and prev.reason == Reason.STAGE_SUCCEEDED
