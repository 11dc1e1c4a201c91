"""A VideoJob's status: reasons, conditions, timestamps, and what counts as a transition.

The planner (planner.py, stages.py, cancellation.py) computes the complete new status; these are
the pieces it is built from. A status write is a transition unless only the fast-moving progress
figures changed (`strip_progress`): those are written at most once a second (controller.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from videojob_common.pipeline import Obj, Phase

from .api import Condition, VideoJobStatus


class Reason:
    """Condition and Event reasons (CamelCase constants, as Kubernetes reasons are)."""

    CREATED = "Created"
    STAGE_STARTED = "StageStarted"
    STAGE_SUCCEEDED = "StageSucceeded"
    STAGE_JOB_LOST = "StageJobLost"
    SUCCEEDED = "Succeeded"
    PERMANENT_ERROR = "PermanentError"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    STAGE_TIMEOUT = "StageTimeout"
    TOTAL_TIMEOUT = "TotalTimeout"
    UNSCHEDULABLE = "Unschedulable"
    QUEUED = "Queued"
    STAGE_QUEUED = "StageQueued"
    INVALID_SPEC = "InvalidSpec"
    STAGE_FAILED = "StageFailed"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    CANCELLING = "Cancelling"
    CANCEL_INCOMPLETE = "CancellationIncomplete"
    RUNNING = "Running"
    WAITING = "Pending"
    API_REJECTED = "APIRejected"  # a write the API server will never accept (refusals.py)
    API_ERROR = "APIError"  # a write refused for now; retried with backoff
    RECOVERED = "Recovered"  # writes go through again
    # Webhook notifications (notifications.py), Warning Events naming spec.notify[i]:
    NOTIFICATION_GAVE_UP = "NotificationGaveUp"  # attempts exhausted, or dropped
    NOTIFICATION_SECRET = "NotificationSecretUnavailable"  # the secretRef cannot be read
    NOTIFICATION_REFUSED = "NotificationAddressRefused"  # the URL's host is not allowed
    # The archive (archiving.py): the reason its row gives a VideoJob deleted before it ended,
    # and the Warning Event of one deleted before the archive took it.
    DELETED = "Deleted"
    NOT_ARCHIVED = "NotArchived"
    # The cache (caching.py): a stage whose every output was cached, and a VideoJob whose
    # whole video was (it succeeds at once with this reason).
    STAGE_CACHED = "StageCached"
    REUSED = "Reused"


# The reason of the Ready (False) condition while a VideoJob is under way, by phase.
WAITING_REASONS: dict[Phase, str] = {
    Phase.PENDING: Reason.WAITING, Phase.QUEUED: Reason.QUEUED, Phase.RUNNING: Reason.RUNNING,
    Phase.SUSPENDED: Reason.SUSPENDED}


def ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def position_worth_writing(old: int | None, new: int | None) -> bool:
    """A queue position is exact for the first ten places; further back it is refreshed when it
    moved by a quarter, so a long queue does not cost a status write per VideoJob per admission.
    """
    if old is None or new is None or new <= 10:
        return old != new
    return abs(new - old) * 4 >= old


def set_condition(conditions: list[Condition], type_: str, status: bool, reason: str,
                  message: str, generation: int | None, now: dt.datetime) -> list[Condition]:
    value: Literal["True", "False"] = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old and old.status == value else ts(now)
    new = Condition(type=type_, status=value, reason=reason, message=message,
                    last_transition_time=since, observed_generation=generation)
    return [c for c in conditions if c.type != type_] + [new]


def failed(status: VideoJobStatus, reason: str, message: str, generation: int | None,
           now: dt.datetime) -> VideoJobStatus:
    """The status of a VideoJob that failed now, for `reason`."""
    conditions = list(status.conditions or [])
    for type_, value in (("Failed", True), ("Ready", False), ("Progressing", False)):
        conditions = set_condition(conditions, type_, value, reason, message, generation, now)
    return status.model_copy(update={"phase": Phase.FAILED, "reason": reason,
                                     "message": message, "completion_time": ts(now),
                                     "conditions": conditions})


def dump_status(status: VideoJobStatus) -> Obj:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


# Fast-moving figures: written at most once a second (controller.py), not transitions. A
# stage's pod count (`attempts`) and scenes rendered (`completed`) are figures of its progress
# too: counted as transitions, a stage's pod starting cost a write of its own, a moment after
# the write that started the stage. So is the notifications' bookkeeping (delivered, retried,
# a Progress notification replaced): a notification of a transition is queued in that
# transition's own write. GPU-seconds grow as pods end, as `completed` does.
PROGRESS_KEYS = ("progress", "message", "queuePosition", "notifications", "gpuSeconds")
STAGE_PROGRESS_KEYS = ("progress", "message", "attempts", "completed", "gpuSeconds")


# Figures that move because pods ended: scenes completed, GPU-seconds. The stage's end, which
# the Job controller reports moments later, writes them with its transition; a change of these
# alone waits for it (controller.SETTLE_SECONDS), so a stage's end is one status write, not two.
SETTLING_KEYS = ("gpuSeconds",)
STAGE_SETTLING_KEYS = ("completed", "gpuSeconds")


def strip_settling(doc: Obj) -> Obj:
    """The status without the figures that move as pods end."""
    out = {k: v for k, v in doc.items() if k not in SETTLING_KEYS}
    out["stages"] = [{k: v for k, v in s.items() if k not in STAGE_SETTLING_KEYS}
                     for s in doc.get("stages", [])]
    return out


def strip_progress(doc: Obj) -> Obj:
    """The status without its fast-moving figures, to tell real transitions from progress."""
    out = {k: v for k, v in doc.items() if k not in PROGRESS_KEYS}
    out["stages"] = [{k: v for k, v in s.items() if k not in STAGE_PROGRESS_KEYS}
                     for s in doc.get("stages", [])]
    return out
