"""What the API server's refusals do to a VideoJob (refusals.py, planner.report_refusal): one that
can never pass fails it with the server's message; any other backs off and shows as Degraded."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from videojob_common.pipeline import Phase
from videojob_operator.api import FINALIZER
from videojob_operator.config import OperatorConfig
from videojob_operator.planner import degraded_now, plan
from videojob_operator.refusals import MAX_RETRY, Refusal, backoff, refusal
from videojob_operator.views import Observation

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
STATUS_422 = json.dumps({
    "kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
    "message": 'Job.batch "clip-keyframes-1a2b3" is invalid: spec.template.spec.hostname: '
               "Invalid value: must be no more than 63 characters"})


def videojob(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "clip", "namespace": "ns", "uid": "u1", "generation": 1,
                         "finalizers": [FINALIZER], "resourceVersion": "1"},
            "spec": {"prompt": "x", "scenes": 2}, "status": status or {}}


def observe(vj: dict[str, Any], refused: Refusal | None) -> Observation:
    return Observation(vj, [], [], [], T0, refused=refused)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


@pytest.mark.parametrize(("code", "permanent"), [
    (400, True), (422, True), (413, True), (403, False), (404, False), (409, False),
    (429, False), (500, False), (503, False), (0, False)])
def test_which_refusals_can_never_pass(code: int, permanent: bool) -> None:
    assert refusal("creating Job x", code, "r", None, None).permanent is permanent


def test_backoff_doubles_per_videojob_up_to_five_minutes() -> None:
    first = refusal("creating Job x", 503, "Service Unavailable", None, None)
    again = refusal("creating Job x", 503, "Service Unavailable", None, first)
    assert (first.attempts, again.attempts) == (1, 2)
    assert (first.retry_after, again.retry_after) == (2.0, 4.0)
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(50) == MAX_RETRY


def test_the_message_is_the_servers_which_names_the_field() -> None:
    r = refusal("creating Job clip-keyframes-1a2b3", 422, "Unprocessable Entity", STATUS_422,
                None)
    assert "spec.template.spec.hostname" in r.describe()
    assert r.describe().startswith("the API server refused creating Job clip-keyframes-1a2b3: 422")
    assert refusal("x", 500, "Internal Server Error", b"<html>", None).message == "<html>"
    assert refusal("x", 0, None, None, None).describe() == "the API server refused x"


def test_a_refusal_that_can_never_pass_fails_the_videojob_at_once() -> None:
    r = refusal("creating Job clip-keyframes-1a2b3", 422, "Unprocessable Entity", STATUS_422,
                None)
    p = plan(observe(videojob(), r), OperatorConfig())
    assert p.status is not None and p.status["phase"] == Phase.FAILED
    assert p.status["reason"] == "APIRejected"
    assert "spec.template.spec.hostname" in p.status["message"]
    assert conditions(p.status)["Failed"]["status"] == "True"
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "APIRejected")]
    assert not p.create_jobs
    # Failed is the end: the same refusal seen again changes nothing more.
    again = plan(observe(videojob(p.status), r), OperatorConfig())
    assert again.status is None and not again.events and not again.create_jobs


def test_a_refusal_that_may_pass_shows_as_degraded_until_a_reconcile_goes_through() -> None:
    r = refusal("creating Job clip-plan-1a2b3", 403, "Forbidden", json.dumps(
        {"message": 'jobs.batch "clip-plan-1a2b3" is forbidden: exceeded quota: jobs, '
                    "requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: "
                    "count/jobs.batch=1"}), None)
    p = plan(observe(videojob(), r), OperatorConfig())
    assert p.status is not None and p.status["phase"] != Phase.FAILED
    degraded = conditions(p.status)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "APIError")
    assert "exceeded quota" in degraded["message"]
    assert p.create_jobs  # tried again (after the backoff the controller waits)
    cleared = plan(observe(videojob(p.status), None), OperatorConfig())
    assert cleared.status is not None
    degraded = conditions(cleared.status)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("False", "Recovered")


def test_a_refusal_that_may_pass_shows_at_once_even_when_no_plan_gets_to_write_it() -> None:
    """The refused write is usually a stage Job's create, which the plan makes before its status
    write: the controller writes the Degraded condition itself, from the stored status."""
    r = refusal("creating Job clip-plan-1a2b3", 403, "Forbidden", json.dumps(
        {"message": "exceeded quota: jobs"}), None)
    patch = degraded_now(videojob(), r, T0)
    assert patch is not None
    (degraded,) = patch["conditions"]
    assert (degraded["type"], degraded["status"], degraded["reason"]) == (
        "Degraded", "True", "APIError")
    assert "exceeded quota" in degraded["message"]
    # Shown already (the same refusal again): nothing to write.
    assert degraded_now(videojob({"conditions": patch["conditions"]}), r, T0) is None
    # The plan made from that status keeps it as it is.
    p = plan(observe(videojob({"conditions": patch["conditions"]}), r), OperatorConfig())
    assert p.status is not None
    assert conditions(p.status)["Degraded"] == degraded
