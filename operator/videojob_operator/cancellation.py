"""Cancellation: a deleted VideoJob stops every stage it started, then lets go.

Deleting a VideoJob is how a user cancels it. Its `videojob.dev/cancel` finalizer (added by the
planner's first step) keeps it until `plan_deletion` has deleted every stage Job (Foreground:
their pods get SIGTERM, Pending ones never start) and seen the last pod go, or until
`cancelTimeoutSeconds` of the operator's configuration have passed (the planner also keeps it while
webhook notifications are pending, as long: notifications.hold_finalizer). The controller confirms
"nothing left" with a fresh read before it removes the finalizer (`Plan.confirm_gone`,
store.Store.confirm_children_gone), since a cache may lag behind the cluster.
"""

from __future__ import annotations

from videojob_common.pipeline import TERMINAL, Phase

from .actions import Plan
from .api import FINALIZER, VideoJobStatus
from .config import OperatorConfig
from .status import Reason, parse_ts
from .views import Observation


def plan_deletion(obs: Observation, status: VideoJobStatus, config: OperatorConfig,
                  out: Plan) -> VideoJobStatus:
    """The step of a VideoJob being deleted: delete its Jobs, wait for its pods, let go.
    Returns its status (Cancelling, unless it had finished)."""
    meta = obs.videojob["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return status
    out.delete_jobs = [j.name for j in obs.jobs if not j.deleting]
    left = [p.name for p in obs.pods]
    # Told once: when the phase turns Cancelling, or, for a finished VideoJob (whose phase
    # stays), when its Jobs are deleted; not at every look while they go.
    if status.phase in TERMINAL:
        tell = bool(out.delete_jobs)
    else:
        tell = status.phase != Phase.CANCELLING and bool(obs.jobs or left)
    if tell:
        out.tell("Normal", Reason.CANCELLING,
                 f"deleting {len(obs.jobs)} stage Jobs and {len(left)} pods")
    if status.phase not in TERMINAL:
        status = status.model_copy(update={
            "phase": Phase.CANCELLING, "message": "VideoJob deleted; stopping its stages"})
    if not obs.jobs and not left:
        out.remove_finalizer = True
        out.confirm_gone = True
        return status
    since = parse_ts(meta["deletionTimestamp"]) or obs.now
    if (obs.now - since).total_seconds() >= config.cancel_timeout_seconds:
        out.tell("Warning", Reason.CANCEL_INCOMPLETE,
                 f"gave up waiting after {config.cancel_timeout_seconds}s; "
                 f"still present: {', '.join(left) or 'stage Jobs'}")
        out.remove_finalizer = True
        return status
    out.again_in(1.0)
    return status
