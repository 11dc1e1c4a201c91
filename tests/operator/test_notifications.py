"""Webhook notifications as the planner decides them (notifications.py): queued with the
transition they tell, in the same status write; recorded, retried and given up from the
outcomes delivery.py reports; bounded. No cluster, no network."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest

from videojob_common.pipeline import stages_of
from videojob_operator.actions import Plan
from videojob_operator.admission_policy import CreationOffer, PoolLimits
from videojob_operator.api import (
    FINALIZER,
    NOTIFY_PENDING_MAX,
    NotificationStatus,
    NotifyEvent,
    PendingNotification,
)
from videojob_operator.config import OperatorConfig
from videojob_operator.jobs import job_name
from videojob_operator.notifications import (
    NotifyPolicy,
    enqueue,
    next_due,
    schedule,
    webhook_id,
)
from videojob_operator.planner import plan
from videojob_operator.scaling import PoolLoad
from videojob_operator.views import DeliveryOutcome, JobView, Observation, PodView, ProgressView

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
CONFIG = OperatorConfig()
ALL = [e.value for e in NotifyEvent]
HOOK = {"url": "https://hooks.example.com/videojobs", "events": ALL,
        "secretRef": {"name": "hook", "key": "secret"}}
ROOM = {pool: CreationOffer(PoolLimits(10), PoolLoad(queued=0, running=0, pending=0))
        for pool in ("cpu", "gpu")}


def videojob(*hooks: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1"},
            "spec": {"prompt": "x", "scenes": 2, "notify": list(hooks or [HOOK])},
            "status": status or {}}


def job(stage: str, **kw: Any) -> JobView:
    return JobView(name=job_name("clip", "u1", stage), stage=stage, suspended=False,
                   completions=2 if stage == "segments" else 1, **kw)


def look(vj: dict[str, Any], jobs: list[JobView] = (), pods: list[PodView] = (),  # type: ignore[assignment]
         progress: list[ProgressView] = (), now: dt.datetime = T0,  # type: ignore[assignment]
         offers: dict[str, CreationOffer] | None = None,
         deliveries: tuple[DeliveryOutcome, ...] = (),
         config: OperatorConfig = CONFIG) -> Plan:
    obs = Observation(vj, list(jobs), list(pods), list(progress), now, offers=offers or {},
                      deliveries=deliveries)
    p = plan(obs, config)
    if p.status is not None and not (p.create_jobs or p.add_finalizer or p.suspend_jobs):
        # Planned again from what it wrote (the outcomes recorded), it queues nothing more.
        again = plan(Observation({**vj, "status": p.status}, list(jobs), list(pods),
                                 list(progress), now, offers=offers or {},
                                 deliveries=deliveries), config)
        assert again.status is None, (p.status, again.status)
        assert not again.events
    return p


def advance(vj: dict[str, Any], p: Plan) -> dict[str, Any]:
    return {**vj, "status": p.status if p.status is not None else vj["status"]}


def pending(p: Plan | dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
    status = p.status if isinstance(p, Plan) else p["status"]
    assert status is not None
    entry = status["notifications"][index]
    assert entry["index"] == index
    items: list[dict[str, Any]] = entry.get("pending", [])
    return items


def types(p: Plan | dict[str, Any], index: int = 0) -> list[str]:
    return [n["type"] for n in pending(p, index)]


def delivered(vj: dict[str, Any], at: dt.datetime = T0, index: int = 0
              ) -> tuple[DeliveryOutcome, ...]:
    """Every pending notification of spec.notify[index] delivered at its next attempt."""
    return tuple(DeliveryOutcome(index, n["id"], n.get("attempts", 0) + 1, at, True)
                 for n in pending(vj, index))


RUNNING = [JobView(name=job_name("clip", "u1", "plan"), stage="plan", suspended=False,
                   active=1)]


def running(*hooks: dict[str, Any]) -> dict[str, Any]:
    """A VideoJob whose first stage started as its Job was created (RUNNING): Queued and
    Running pending."""
    return advance(videojob(*hooks), look(videojob(*hooks), offers=ROOM))


def failed(vj: dict[str, Any], at: dt.datetime, error: str = "spec.notify[0].url: HTTP 500",
           state: str = "Retrying") -> tuple[DeliveryOutcome, ...]:
    return tuple(DeliveryOutcome(0, n["id"], n.get("attempts", 0) + 1, at, False, error, state)
                 for n in pending(vj))


# -- what is queued, when ---------------------------------------------------------------------

def test_an_accepted_videojob_queues_queued_in_its_first_status_write() -> None:
    p = look(videojob())
    assert p.status is not None and p.status["phase"] == "Queued"
    (n,) = p.status["notifications"]
    assert (n["index"], n["state"], n["queued"], n["delivered"]) == (0, "Ready", 1, 0)
    (queued,) = n["pending"]
    assert queued["type"] == "Queued" and queued["id"] == webhook_id("u1", 0, 1)
    assert (queued["phase"], queued["stage"], queued["time"]) == (
        "Queued", "plan", "2026-01-01T12:00:00.000000Z")
    assert queued["attempts"] == 0 and "nextAttemptTime" not in queued


def test_one_that_starts_at_once_queues_queued_then_running() -> None:
    p = look(videojob(), offers=ROOM)
    assert p.status is not None and p.status["phase"] == "Running"
    assert types(p) == ["Queued", "Running"]
    assert [n["id"] for n in pending(p)] == [webhook_id("u1", 0, 1), webhook_id("u1", 0, 2)]


def test_every_transition_of_a_whole_run_is_queued_once_in_order() -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    done: list[JobView] = []
    for i, stage in enumerate(STAGES):
        done.append(job(stage, succeeded=2 if stage == "segments" else 1, complete=True))
        nxt = [job(STAGES[i + 1], active=1)] if stage != "publish" else []
        vj = advance(vj, look(vj, done + nxt, now=T0 + dt.timedelta(seconds=i + 1),
                              offers=ROOM))
    told = pending(vj)
    assert [(n["type"], n["stage"]) for n in told] == [
        ("Queued", "plan"), ("Running", "plan"),
        *[("StageSucceeded", s) for s in STAGES], ("Succeeded", "publish")]
    assert len({n["id"] for n in told}) == len(told)
    succeeded = told[-1]
    assert succeeded["outputURI"].endswith("/ns/clip/u1/output.mp4")
    assert succeeded["phase"] == "Succeeded" and succeeded["progress"] == 100
    assert told[2]["message"] == "stage plan succeeded"


def test_a_stage_that_waits_in_its_pool_queues_queued_then_running() -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    vj = advance(vj, look(vj, [job("plan", active=1)], offers=ROOM))
    done = [job("plan", succeeded=1, complete=True)]
    p = look(vj, done, offers={})  # no room in the gpu pool: keyframes is queued
    assert types(p)[-2:] == ["StageSucceeded", "Queued"]
    vj = advance(vj, p)
    waiting = JobView(name=job_name("clip", "u1", "keyframes"), stage="keyframes",
                      suspended=True)
    vj = advance(vj, look(vj, [*done, waiting]))
    p = look(vj, [*done, job("keyframes", active=1)])
    assert types(p)[-1] == "Running" and pending(p)[-1]["stage"] == "keyframes"


def test_failure_queues_failed_with_its_reason() -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    broken = job("plan", failed=1, failure=("PodFailurePolicy", "exited 42"))
    pod = PodView(name="clip-plan-0-x", stage="plan", phase="Failed",
                  message="permanent: images[0] is not an image", finished_at="t")
    p = look(vj, [broken], [pod])
    last = pending(p)[-1]
    assert (last["type"], last["phase"], last["reason"]) == ("Failed", "Failed",
                                                              "PermanentError")
    assert last["message"] == "permanent: images[0] is not an image"
    assert "outputURI" not in last


def test_an_invalid_spec_queues_failed_alone() -> None:
    vj = videojob()
    vj["spec"]["scenes"] = 99
    p = look(vj)
    assert p.status is not None and p.status["reason"] == "InvalidSpec"
    assert types(p) == ["Failed"]


def test_deletion_before_the_end_queues_cancelled_and_holds_the_finalizer_until_it_is_sent(
        ) -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    vj = advance(vj, look(vj, deliveries=delivered(vj)))
    assert pending(vj) == []
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    p = look(vj, [job("plan", active=1)])
    assert p.status is not None and p.status["phase"] == "Cancelling"
    assert types(p) == ["Cancelled"]
    vj = advance(vj, p)
    held = look(vj, [], [], now=T0 + dt.timedelta(seconds=5))
    assert not held.remove_finalizer and held.requeue_after is not None
    sent = look(vj, [], [], now=T0 + dt.timedelta(seconds=6),
                deliveries=delivered(vj, T0 + dt.timedelta(seconds=6)))
    assert sent.remove_finalizer and sent.confirm_gone


def test_the_finalizer_is_not_held_past_the_cancel_timeout() -> None:
    vj = advance(videojob(), look(videojob()))
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    vj = advance(vj, look(vj, [], []))
    p = look(vj, [], [], now=T0 + dt.timedelta(seconds=CONFIG.cancel_timeout_seconds))
    assert p.remove_finalizer
    assert [e.reason for e in p.events] == ["NotificationGaveUp"]
    assert "2 notification(s) not delivered" in p.events[0].message


def test_deleting_a_finished_videojob_queues_no_cancelled() -> None:
    vj = videojob(status={"phase": "Succeeded", "progress": 100})
    vj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    p = look(vj, [], [PodView(name="p", stage="publish", phase="Succeeded")])
    assert p.status is None or not any(
        n.get("pending") for n in p.status.get("notifications", []))


def test_only_the_events_a_destination_asks_for_are_queued_to_it() -> None:
    ends = {**HOOK, "events": ["Succeeded", "Failed"]}
    starts = {**HOOK, "url": "https://other.example.com/", "events": ["Running"]}
    p = look(videojob(ends, starts), offers=ROOM)
    assert p.status is not None
    first, second = p.status["notifications"]
    assert (first["index"], first["queued"], first.get("pending")) == (0, 0, None)
    assert [n["type"] for n in second["pending"]] == ["Running"]
    assert second["pending"][0]["id"] == webhook_id("u1", 1, 1)


def test_a_videojob_without_notify_has_no_notifications() -> None:
    vj = videojob()
    del vj["spec"]["notify"]
    p = look(vj, offers=ROOM)
    assert p.status is not None and "notifications" not in p.status


# -- Progress ---------------------------------------------------------------------------------

def reports(percent: float) -> list[ProgressView]:
    return [ProgressView(stage="plan", index=None, percent=percent, message="working")]


def test_progress_is_coalesced_only_the_latest_is_pending() -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    vj = advance(vj, look(vj, deliveries=delivered(vj)))
    running = [job("plan", active=1)]
    ids = []
    for i, percent in enumerate((20.0, 50.0, 80.0)):
        p = look(vj, running, progress=reports(percent), now=T0 + dt.timedelta(seconds=i))
        assert p.progress_only  # no transition: written at most once a second, like progress
        vj = advance(vj, p)
        assert types(vj) == ["Progress"]
        ids.append(pending(vj)[0]["id"])
    assert len(set(ids)) == 3  # each a new message: a receiver never drops a newer figure
    assert pending(vj)[0]["progress"] == vj["status"]["progress"]


def test_a_transition_drops_the_pending_progress_only_at_the_end() -> None:
    vj = advance(videojob(), look(videojob(), offers=ROOM))
    vj = advance(vj, look(vj, deliveries=delivered(vj)))
    vj = advance(vj, look(vj, [job("plan", active=1)], progress=reports(50.0)))
    assert types(vj) == ["Progress"]
    stage_done = look(vj, [job("plan", succeeded=1, complete=True), job("keyframes", active=1)],
                      offers=ROOM)
    assert types(stage_done) == ["Progress", "StageSucceeded"]
    n = {"index": 0, "state": "Ready", "pending": [
        {"id": "a", "type": "Progress", "time": "2026-01-01T12:00:00.000000Z"}]}
    after = enqueue(NotificationStatus.model_validate(n), [PendingNotification(
        id="", type=NotifyEvent.SUCCEEDED, time="2026-01-01T12:00:01.000000Z")], "u1", Plan())
    assert [p.type for p in after.pending or []] == ["Succeeded"]


def test_a_progress_notification_goes_at_most_once_per_interval() -> None:
    n = NotificationStatus.model_validate({"index": 0, "state": "Ready", "pending": [
        {"id": "p", "type": "Progress", "time": "2026-01-01T12:00:00.000000Z"}]})
    throttled = T0 + dt.timedelta(seconds=2)
    assert next_due(n, T0, set(), throttled) == (None, throttled)
    due, wake = next_due(n, throttled, set(), throttled)
    assert due is not None and due.id == "p" and wake is None


# -- outcomes ---------------------------------------------------------------------------------

def test_a_delivered_notification_leaves_the_list_and_is_counted_once() -> None:
    vj = running()
    outcomes = delivered(vj, T0 + dt.timedelta(seconds=1))
    p = look(vj, RUNNING, deliveries=outcomes)
    assert p.progress_only  # bookkeeping, not a transition
    (n,) = p.status["notifications"]  # type: ignore[index]
    assert (n["delivered"], n["state"], n.get("pending")) == (2, "Ready", None)
    assert n["lastDeliveryTime"] == "2026-01-01T12:00:01Z"
    again = plan(Observation(advance(vj, p), RUNNING, [], [], T0, deliveries=outcomes), CONFIG)
    assert again.status is None  # the same outcomes, recorded already: nothing changes


def test_failed_attempts_back_off_exponentially_then_give_up_with_a_warning() -> None:
    policy = NotifyPolicy()
    assert schedule(policy) == [0, 5, 15, 35, 75, 155, 315, 615]  # 8 attempts, ~10 minutes
    assert [policy.retry_delay(a) for a in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    vj = running(HOOK | {"events": ["Queued"]})
    at = T0
    for attempt in range(1, policy.max_attempts):
        p = look(vj, RUNNING, deliveries=failed(vj, at), now=at)
        vj = advance(vj, p)
        (entry,) = pending(vj)
        assert entry["attempts"] == attempt
        assert entry["lastError"] == "spec.notify[0].url: HTTP 500"
        assert vj["status"]["notifications"][0]["state"] == "Retrying"
        assert not p.events
        due = at + dt.timedelta(seconds=policy.retry_delay(attempt))
        assert entry["nextAttemptTime"] == due.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        n = NotificationStatus.model_validate(vj["status"]["notifications"][0])
        assert next_due(n, due - dt.timedelta(seconds=0.1), set(), None) == (None, due)
        at = due
    assert (at - T0).total_seconds() == 615
    p = look(vj, RUNNING, deliveries=failed(vj, at), now=at)
    (n,) = p.status["notifications"]  # type: ignore[index]
    assert (n["state"], n["gaveUp"], n.get("pending")) == ("GaveUp", 1, None)
    (warning,) = p.events
    assert (warning.type, warning.reason) == ("Warning", "NotificationGaveUp")
    assert warning.message == ("spec.notify[0]: Queued notification given up after 8 "
                               "attempt(s): spec.notify[0].url: HTTP 500")


def test_the_backoff_and_the_attempts_are_the_administrators() -> None:
    config = OperatorConfig(notify=NotifyPolicy(max_attempts=3, backoff_seconds=0.5,
                                                max_backoff_seconds=1))
    assert schedule(config.notify) == [0, 0.5, 1.5]
    hook = HOOK | {"events": ["Queued"]}
    vj = advance(videojob(hook), look(videojob(hook), offers=ROOM, config=config))
    for at in (T0, T0 + dt.timedelta(seconds=1)):
        vj = advance(vj, look(vj, RUNNING, deliveries=failed(vj, at), now=at, config=config))
    p = look(vj, RUNNING, deliveries=failed(vj, T0 + dt.timedelta(seconds=2)), config=config)
    assert p.status is not None and p.status["notifications"][0]["gaveUp"] == 1


def test_an_unreadable_secret_shows_naming_the_field_and_is_retried() -> None:
    vj = running(HOOK | {"events": ["Queued"]})
    problem = ("spec.notify[0].secretRef: the operator may not read Secret ns/hook: grant its "
               "ServiceAccount `get` on it by name with a Role and RoleBinding in this "
               "namespace (docs/tenancy.md)")
    p = look(vj, RUNNING, deliveries=failed(vj, T0, problem, "SecretUnavailable"))
    (n,) = p.status["notifications"]  # type: ignore[index]
    assert (n["state"], n["message"]) == ("SecretUnavailable", problem)
    assert n["pending"][0]["attempts"] == 1  # retried: the namespace may grant it meanwhile
    (warning,) = p.events
    assert (warning.type, warning.reason, warning.message) == (
        "Warning", "NotificationSecretUnavailable", problem)
    vj = advance(vj, p)
    again = look(vj, RUNNING, deliveries=failed(vj, T0 + dt.timedelta(seconds=5), problem,
                                                "SecretUnavailable"),
                 now=T0 + dt.timedelta(seconds=5))
    assert not again.events  # told once, while it lasts
    fixed = look(advance(vj, again), RUNNING, deliveries=delivered(advance(vj, again)))
    assert fixed.status is not None and fixed.status["notifications"][0]["state"] == "Ready"


def test_a_refused_address_gives_up_at_once_and_says_so_once() -> None:
    vj = running()
    problem = "spec.notify[0].url: its host is not at an address the operator may send to"
    first = pending(vj)[0]
    p = look(vj, RUNNING, deliveries=(DeliveryOutcome(0, first["id"], 1, T0, False, problem,
                                             "AddressRefused"),))
    (n,) = p.status["notifications"]  # type: ignore[index]
    assert (n["state"], n["gaveUp"], types(p)) == ("AddressRefused", 1, ["Running"])
    assert [(e.reason, e.message) for e in p.events] == [
        ("NotificationAddressRefused", problem)]
    vj = advance(vj, p)
    second = pending(vj)[0]
    p = look(vj, RUNNING, deliveries=(DeliveryOutcome(0, second["id"], 1, T0, False, problem,
                                             "AddressRefused"),))
    assert not p.events and p.status["notifications"][0]["gaveUp"] == 2  # type: ignore[index]


def test_the_pending_list_is_bounded_and_keeps_the_end() -> None:
    n = NotificationStatus(index=0, state="Ready")
    out = Plan()
    told = [PendingNotification(id="", type=NotifyEvent.STAGE_SUCCEEDED,
                                time=f"2026-01-01T12:00:{i:02d}.000000Z")
            for i in range(NOTIFY_PENDING_MAX + 3)]
    told.append(PendingNotification(id="", type=NotifyEvent.SUCCEEDED,
                                    time="2026-01-01T12:01:00.000000Z"))
    n = enqueue(n, told, "u1", out)
    assert n.pending is not None and len(n.pending) == NOTIFY_PENDING_MAX
    assert n.pending[-1].type == NotifyEvent.SUCCEEDED  # the end is never dropped
    assert n.pending[0].time == "2026-01-01T12:00:04.000000Z"  # the oldest went
    assert (n.queued, n.gave_up) == (NOTIFY_PENDING_MAX + 4, 4)
    (warning,) = out.events
    assert warning.reason == "NotificationGaveUp" and "4 undelivered" in warning.message


def test_the_oldest_due_goes_first_and_one_being_reported_waits() -> None:
    n = NotificationStatus.model_validate({"index": 0, "state": "Retrying", "pending": [
        {"id": "a", "type": "Queued", "time": "2026-01-01T12:00:00.000000Z", "attempts": 1,
         "nextAttemptTime": "2026-01-01T12:00:05.000000Z"},
        {"id": "b", "type": "Running", "time": "2026-01-01T12:00:01.000000Z"},
        {"id": "c", "type": "StageSucceeded", "time": "2026-01-01T12:00:02.000000Z"}]})
    due, _ = next_due(n, T0, set(), None)
    assert due is not None and due.id == "b"
    due, _ = next_due(n, T0, {"b"}, None)
    assert due is not None and due.id == "c"
    assert next_due(n, T0, {"b", "c"}, None) == (None, T0 + dt.timedelta(seconds=5))
    due, _ = next_due(n, T0 + dt.timedelta(seconds=5), set(), None)
    assert due is not None and due.id == "a"


def test_webhook_ids_are_stable_and_distinct() -> None:
    assert webhook_id("u1", 0, 1) == webhook_id("u1", 0, 1)
    ids = {webhook_id(u, i, s) for u in ("u1", "u2") for i in range(4) for s in range(1, 50)}
    assert len(ids) == 2 * 4 * 49
    assert all(i.startswith("msg_") and len(i) == 36 for i in ids)


@pytest.mark.parametrize("cidrs", [["10.0.0.0/8"], ["127.0.0.1"], ["fc00::/7"]])
def test_allowed_networks_are_by_namespace_over_the_default(cidrs: list[str]) -> None:
    policy = NotifyPolicy(allow_networks={"*": ["192.168.0.0/16"], "team-a": cidrs})
    assert [str(n) for n in policy.networks_for("team-a")] == [
        "192.168.0.0/16", *[str(ipaddress.ip_network(c)) for c in cidrs]]
    assert [str(n) for n in policy.networks_for("team-b")] == ["192.168.0.0/16"]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        NotifyPolicy(allow_networks={"*": ["not-a-network"]})
