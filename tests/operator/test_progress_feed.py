"""Worker progress as the operator takes it in: only reports signed with their VideoJob's token,
never an older one over a newer one; reports for unknown VideoJobs expire, reports are bounded per
VideoJob, and the Redis URL is never logged with its password."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from videojob_common.progress_auth import signed, token_for
from videojob_common.redact import redact_url
from videojob_operator import progress_feed
from videojob_operator.kube import Api
from videojob_operator.store import UNCLAIMED_MAX, UNCLAIMED_SECONDS, Store
from videojob_operator.views import ProgressView

MASTER = b"the operator's master key"
VIEW = ProgressView(stage="keyframes", index=0, percent=50.0, message="frame 5/10", done=5,
                    total=10)


def videojob(uid: str) -> dict[str, object]:
    return {"metadata": {"name": "clip", "namespace": "a", "uid": uid, "resourceVersion": "1"},
            "spec": {}}


def test_reports_no_videojob_claims_are_dropped_after_a_while() -> None:
    store = Store(Api(client.ApiClient()))
    store.observe_progress("early", VIEW, now=0.0)
    store.observe_progress("stray", VIEW, now=0.0)
    # The VideoJob of "early" arrives (kopf's first listing after a restart): its report stays.
    store.observe_videojob("ADDED", videojob("early"))
    store.observe_progress("later", VIEW, now=UNCLAIMED_SECONDS + 1)
    assert "early" in store.progress and "stray" not in store.progress
    assert set(store.unclaimed) == {"later"}


def test_unclaimed_reports_are_capped() -> None:
    store = Store(Api(client.ApiClient()))
    for i in range(UNCLAIMED_MAX + 50):
        store.observe_progress(f"uid-{i}", VIEW, now=1.0)
    assert len(store.progress) == len(store.unclaimed) == UNCLAIMED_MAX


@pytest.mark.parametrize(("doc", "kept"), [
    ({"uid": "u", "stage": "segments", "index": 31, "percent": 5}, True),
    ({"uid": "u", "stage": "keyframes", "percent": 5}, True),
    ({"uid": "u", "stage": "segments", "index": 32, "percent": 5}, False),
    ({"uid": "u", "stage": "segments", "index": -1, "percent": 5}, False),
    ({"uid": "u", "stage": "bogus", "percent": 5}, False),
    ({"stage": "plan", "percent": 5}, False),
])
def test_reports_name_a_real_stage_and_scene(doc: dict[str, object], kept: bool) -> None:
    message = signed(token_for(MASTER, str(doc.get("uid", ""))), json.dumps(doc))
    assert (progress_feed.parse(message, MASTER) is not None) is kept


REPORT = {"namespace": "a", "name": "clip", "uid": "u-a", "stage": "segments", "index": 0,
          "attempt": 1, "percent": 40, "message": "frame 4/10", "done": 4, "total": 10,
          "ts": 1000.0}


def test_a_report_counts_only_signed_with_its_own_videojobs_token() -> None:
    text = json.dumps(REPORT)
    uid, view = progress_feed.parse(signed(token_for(MASTER, "u-a"), text), MASTER) or ("", None)
    assert uid == "u-a" and view is not None and view.message == "frame 4/10"
    forged = [
        text,  # unsigned, as workers sent before
        signed(token_for(MASTER, "u-b"), text),  # another VideoJob's token (A's pod for B)
        signed(token_for(b"another operator's key", "u-a"), text),
        signed("0" * 64, text),
        # A's signature over another report: the text is signed as sent
        json.dumps({"report": json.dumps({**REPORT, "message": "pwned"}),
                    "sig": json.loads(signed(token_for(MASTER, "u-a"), text))["sig"]}),
        json.dumps({"report": REPORT, "sig": "x"}), "not json", "[]", '{"report": "[]"}',
    ]
    for message in forged:
        assert progress_feed.parse(message, MASTER) is None, message


def test_a_replayed_or_overtaken_report_does_not_replace_a_newer_one() -> None:
    store = Store(Api(client.ApiClient()))
    store.observe_videojob("ADDED", videojob("u-a"))
    newer = ProgressView("segments", 0, 60.0, "frame 6/10", 6, 10, attempt=1, ts=1001.0)
    older = ProgressView("segments", 0, 40.0, "frame 4/10", 4, 10, attempt=1, ts=1000.0)
    retry = ProgressView("segments", 0, 10.0, "frame 1/10", 1, 10, attempt=2, ts=999.0)
    store.observe_progress("u-a", newer)
    store.observe_progress("u-a", older)
    assert store.progress["u-a"][("segments", 0)] == newer
    store.observe_progress("u-a", retry)  # a new attempt starts over, whatever its clock says
    assert store.progress["u-a"][("segments", 0)] == retry


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
    ("redis://worker:s3cret@10.0.0.1/0", "redis://worker:***@10.0.0.1/0"),
    ("rediss://redis.example:6380/0?password=s3cret&db=1",
     "rediss://redis.example:6380/0?password=***&db=1"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://[::1", "***"),
])
def test_a_url_is_logged_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
