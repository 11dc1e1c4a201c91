"""Webhook notifications as the planner decides them: which transition queues which
notification, what an attempt's outcome does to it, when the next attempt is due, and when one
is given up. Pure: the clock and the outcomes come in the Observation.

The cluster is the truth, as for everything else the operator does:

- A notification is queued in `status.notifications[i].pending` by the same status write as the
  transition it tells (`step`, the planner's last step): a transition is never recorded without
  its notification, and a plan computed again (a conflict, a rate-limited write) queues the same
  notification under the same id, never a second one.
- delivery.py sends what is pending, off the reconcile path, and reports each attempt
  (views.DeliveryOutcome); the next plan records it (`record`): a delivered notification leaves
  the list, a failed one gets its next attempt time (`retry_delay`: exponential backoff), and
  after `max_attempts` it is given up with a Warning Event. An operator restarted between a
  delivery and its record sends it again: at least once, and every attempt carries the same
  `webhook-id` (`webhook_id`: the uid, the destination, the sequence number), so a receiver can
  drop the duplicate.
- Progress notifications are coalesced: only the latest is pending (a newer one replaces it),
  and delivery.py sends at most one every `progress_interval_seconds` per destination.
- The list is bounded (`NOTIFY_PENDING_MAX` per destination): when it is full the oldest
  Progress, else the oldest notification that is not the VideoJob's end, is dropped and counted
  as given up.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from videojob_common.addresses import Network, networks
from videojob_common.pipeline import TERMINAL, Obj, Phase, StagePhase

from .actions import Plan
from .api import (
    NOTIFY_PENDING_MAX,
    NotificationStatus,
    Notify,
    NotifyEvent,
    PendingNotification,
    VideoJobStatus,
)
from .status import Reason, parse_ts, ts, ts_micro
from .views import DeliveryOutcome, Observation

# The notifications that end a VideoJob's story: never dropped from a full list, and a pending
# Progress is obsolete once one of them is queued.
FINAL = frozenset({NotifyEvent.SUCCEEDED, NotifyEvent.FAILED, NotifyEvent.CANCELLED})
# The phases whose start is told, as what.
PHASE_EVENTS = {Phase.RUNNING: NotifyEvent.RUNNING, Phase.SUCCEEDED: NotifyEvent.SUCCEEDED,
                Phase.FAILED: NotifyEvent.FAILED}
# A failure that no retry can change: the destination is not allowed (nothing was sent).
REFUSED = "AddressRefused"
MESSAGE_MAX = 512


class NotifyPolicy(BaseModel):
    """The administrator's rules for webhook notifications (configuration `notify`)."""

    model_config = ConfigDict(extra="forbid")

    # Networks (CIDRs) destinations may be in although they are not public, by namespace ("*":
    # every namespace); loopback, private, link-local and metadata addresses are refused
    # otherwise (videojob_common.addresses).
    allow_networks: dict[str, list[str]] = Field(default_factory=dict)
    # Attempts per notification before it is given up, and the backoff between them: the first
    # retry after backoff_seconds, doubling up to max_backoff_seconds (8 attempts: about 10
    # minutes with the defaults).
    max_attempts: int = Field(8, ge=1, le=20)
    backoff_seconds: float = Field(5.0, gt=0)
    max_backoff_seconds: float = Field(300.0, gt=0)
    # One attempt's bound (connect, send, answer).
    timeout_seconds: float = Field(10.0, gt=0, le=60)
    # How long a signing secret read from a Secret is used before it is read again (the
    # operator may only `get` the Secret by name, so it cannot watch it); a Secret that could
    # not be read is tried again after a sixth of that, at most 10 s.
    secret_ttl_seconds: float = Field(60.0, ge=0)
    # At most one Progress notification per destination this often.
    progress_interval_seconds: float = Field(2.0, ge=0.1)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {ns: [str(n) for n in networks(cidrs)] for ns, cidrs in value.items()}

    def networks_for(self, namespace: str) -> tuple[Network, ...]:
        """The networks a namespace's destinations may be in besides public addresses."""
        return networks([*self.allow_networks.get("*", []),
                         *self.allow_networks.get(namespace, [])])

    def retry_delay(self, attempts: int) -> float:
        """Seconds between the `attempts`-th attempt (1-based) and the next."""
        delay = self.backoff_seconds * 2.0 ** max(attempts - 1, 0)
        return float(min(delay, self.max_backoff_seconds))


def schedule(policy: NotifyPolicy) -> list[float]:
    """When each attempt is made, in seconds after the first, if every one fails."""
    at, out = 0.0, [0.0]
    for attempt in range(1, policy.max_attempts):
        at += policy.retry_delay(attempt)
        out.append(at)
    return out


_TARGETS: TypeAdapter[list[Notify]] = TypeAdapter(list[Notify])


def targets(videojob: Obj) -> list[Notify]:
    """The VideoJob's spec.notify ([] when it has none, or when it is not valid: the API server
    validates it, so that is a VideoJob written before the CRD had the field)."""
    raw = (videojob.get("spec") or {}).get("notify")
    if not raw:
        return []
    try:
        return _TARGETS.validate_python(raw)
    except ValidationError:
        return []


def webhook_id(uid: str, index: int, sequence: int) -> str:
    """The `webhook-id` of a VideoJob's `sequence`-th notification to spec.notify[index]: the
    same on every attempt, after any restart; unique across VideoJobs (the uid)."""
    digest = hashlib.sha256(f"{uid}/{index}/{sequence}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


# -- the planner's step ---------------------------------------------------------------------

def step(obs: Observation, policy: NotifyPolicy, out: Plan, old: VideoJobStatus,
         new: VideoJobStatus) -> VideoJobStatus:
    """The new status with its notifications: the outcomes of attempts recorded, then the
    notifications of the transitions from `old` to `new` queued."""
    wanted = targets(obs.videojob)
    if not wanted and not old.notifications:
        return new
    told = transitions(old, new, obs.now)
    uid = obs.videojob["metadata"]["uid"]
    held = {n.index: n for n in old.notifications or []}
    kept: list[NotificationStatus] = []
    for i, target in enumerate(wanted):
        n = held.get(i) or NotificationStatus(index=i, state="Ready")
        n = record(n, [o for o in obs.deliveries if o.index == i], policy, out)
        n = enqueue(n, [e for e in told if e.type in target.events], uid, out)
        kept.append(n)
    return new.model_copy(update={"notifications": kept or None})


def transitions(old: VideoJobStatus, new: VideoJobStatus,
                now: dt.datetime) -> list[PendingNotification]:
    """What the change from `old` to `new` tells, in order (ids still unset):

    - Queued: the VideoJob accepted (its first status), and whenever it enters phase Queued;
    - StageSucceeded: each stage that succeeded;
    - Running, Succeeded, Failed: the phase became that; Cancelled: deleted before the end;
    - Progress: only the overall progress moved (and the VideoJob is not over)."""
    was, phase = old.phase, new.phase
    out: list[PendingNotification] = []

    def tell(kind: NotifyEvent, **update: object) -> None:
        message = new.message[:MESSAGE_MAX] if new.message else None
        out.append(PendingNotification(
            id="", type=kind, time=ts_micro(now), phase=phase, stage=new.current_stage,
            progress=new.progress, message=message,
            output_uri=new.output_uri if kind == NotifyEvent.SUCCEEDED else None,
            reason=new.reason if kind == NotifyEvent.FAILED else None,
        ).model_copy(update=update))

    before = {s.name: s.phase for s in old.stages or []}
    for s in new.stages or []:
        if s.phase == StagePhase.SUCCEEDED and before.get(s.name) != StagePhase.SUCCEEDED:
            tell(NotifyEvent.STAGE_SUCCEEDED, stage=s.name, message=f"stage {s.name} succeeded")
    accepted = was is None and phase in (Phase.PENDING, Phase.RUNNING, Phase.SUSPENDED)
    if accepted or (phase == Phase.QUEUED and was != Phase.QUEUED):
        tell(NotifyEvent.QUEUED)
    if phase != was:
        kind = PHASE_EVENTS.get(phase) if phase is not None else None
        if phase == Phase.CANCELLING and was not in TERMINAL:
            kind = NotifyEvent.CANCELLED
        if kind is not None:
            tell(kind)
    if not out and new.progress != old.progress and new.progress is not None and (
            phase not in (*TERMINAL, Phase.CANCELLING)):
        tell(NotifyEvent.PROGRESS)
    return out


def enqueue(n: NotificationStatus, told: list[PendingNotification], uid: str,
            out: Plan) -> NotificationStatus:
    """`told` added to the destination's pending list, each with its webhook-id; a Progress
    replaces the one pending, the end of the VideoJob drops it, and a full list drops its
    oldest (counted as given up, with a Warning Event)."""
    if not told:
        return n
    pending, queued = list(n.pending or []), n.queued
    for e in told:
        if e.type == NotifyEvent.PROGRESS or e.type in FINAL:
            pending = [p for p in pending if p.type != NotifyEvent.PROGRESS]
        queued += 1
        pending.append(e.model_copy(update={"id": webhook_id(uid, n.index, queued)}))
    dropped = []
    while len(pending) > NOTIFY_PENDING_MAX:
        victim = next((p for p in pending if p.type == NotifyEvent.PROGRESS),
                      next(p for p in pending if p.type not in FINAL))
        pending.remove(victim)
        dropped.append(victim)
    if dropped:
        out.tell("Warning", Reason.NOTIFICATION_GAVE_UP,
                 f"spec.notify[{n.index}]: {len(dropped)} undelivered notification(s) dropped, "
                 f"more than {NOTIFY_PENDING_MAX} were waiting "
                 f"({', '.join(p.type for p in dropped)})")
    return n.model_copy(update={"pending": pending or None, "queued": queued,
                                "gave_up": n.gave_up + len(dropped)})


def record(n: NotificationStatus, outcomes: list[DeliveryOutcome], policy: NotifyPolicy,
           out: Plan) -> NotificationStatus:
    """The outcomes of attempts, recorded once each (an outcome of an attempt the status
    already counts, or of a notification no longer pending, changes nothing)."""
    for o in sorted(outcomes, key=lambda o: (o.at, o.attempt)):
        pending = n.pending or []
        entry = next((p for p in pending if p.id == o.id), None)
        if entry is None or entry.attempts >= o.attempt:
            continue
        rest = [p for p in pending if p.id != o.id]
        if o.delivered:
            n = n.model_copy(update={"state": "Ready", "message": None, "pending": rest or None,
                                     "delivered": n.delivered + 1,
                                     "last_delivery_time": ts(o.at)})
        else:
            n = _failed(n, entry, o, policy, out, rest)
    return n


def _failed(n: NotificationStatus, entry: PendingNotification, o: DeliveryOutcome,
            policy: NotifyPolicy, out: Plan, rest: list[PendingNotification]
            ) -> NotificationStatus:
    """A failed attempt: the notification retried after the backoff, or given up."""
    error = o.error[:MESSAGE_MAX]
    given_up = o.state == REFUSED or o.attempt >= policy.max_attempts
    state = o.state if o.state != "Retrying" else ("GaveUp" if given_up else "Retrying")
    if state != n.state and state in (REFUSED, "SecretUnavailable"):
        reason = (Reason.NOTIFICATION_REFUSED if state == REFUSED
                  else Reason.NOTIFICATION_SECRET)
        out.tell("Warning", reason, error)
    if given_up and o.state != REFUSED:
        out.tell("Warning", Reason.NOTIFICATION_GAVE_UP,
                 f"spec.notify[{n.index}]: {entry.type} notification given up after "
                 f"{o.attempt} attempt(s): {error}")
    update: dict[str, object] = {"state": state, "message": error}
    if given_up:
        return n.model_copy(update={**update, "gave_up": n.gave_up + 1,
                                    "pending": rest or None})
    retry = entry.model_copy(update={
        "attempts": o.attempt, "last_error": error,
        "next_attempt_time": ts_micro(o.at + dt.timedelta(
            seconds=policy.retry_delay(o.attempt)))})
    order = [*rest, retry]
    order.sort(key=lambda p: p.time)
    return n.model_copy(update={**update, "pending": order})


# -- what the finalizer waits for --------------------------------------------------------------

def undelivered(status: VideoJobStatus) -> int:
    return sum(len(n.pending or []) for n in status.notifications or [])


def hold_finalizer(obs: Observation, status: VideoJobStatus, out: Plan,
                   cancel_timeout_seconds: int) -> None:
    """A VideoJob that is going keeps its finalizer while notifications are pending (its status
    holds them), for at most `cancel_timeout_seconds` from its deletion: then what is left is
    given up with a Warning Event."""
    left = undelivered(status)
    if not out.remove_finalizer or not left:
        return
    since = parse_ts(obs.videojob["metadata"].get("deletionTimestamp")) or obs.now
    if (obs.now - since).total_seconds() < cancel_timeout_seconds:
        out.remove_finalizer = out.confirm_gone = False
        out.again_in(1.0)
        return
    out.tell("Warning", Reason.NOTIFICATION_GAVE_UP,
             f"{left} notification(s) not delivered before the VideoJob was deleted "
             f"(cancel_timeout_seconds={cancel_timeout_seconds})")


# -- what delivery.py sends next ----------------------------------------------------------------

def next_due(n: NotificationStatus, now: dt.datetime, skip: set[str],
             progress_after: dt.datetime | None) -> tuple[PendingNotification | None,
                                                        dt.datetime | None]:
    """The pending notification to send now (the oldest due), and otherwise when to look
    again (None: nothing pending). `skip`: ids with an attempt the status has not recorded
    yet; `progress_after`: no Progress notification before then (one every interval)."""
    due: list[PendingNotification] = []
    wake: dt.datetime | None = None
    for p in n.pending or []:
        if p.id in skip:
            continue
        at = parse_ts(p.next_attempt_time) or now
        if p.type == NotifyEvent.PROGRESS and progress_after is not None:
            at = max(at, progress_after)
        if at <= now:
            due.append(p)
        elif wake is None or at < wake:
            wake = at
    if due:
        return min(due, key=lambda p: p.time), None
    return None, wake
