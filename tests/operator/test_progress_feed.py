"""Worker progress as the operator takes it in: only reports signed with their namespace's token
(or, from pods started before those, their VideoJob's), for a VideoJob of that namespace, never an
older one over a newer one; reports for unknown VideoJobs expire, reports are bounded per
VideoJob, and the Redis URL is never logged with its password."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from videojob_common.progress_auth import (
    namespace_token,
    secret_name,
    signed,
    token_for,
    tokens_for_report,
)
from videojob_common.redact import redact_url
from videojob_operator import progress_feed
from videojob_operator.kube import Api
from videojob_operator.store import UNCLAIMED_MAX, UNCLAIMED_SECONDS, Store
from videojob_operator.views import ProgressView

MASTER = b"the operator's master key"
NAMESPACES = {"a": "uid-of-a", "b": "uid-of-b"}
VIEW = ProgressView(stage="keyframes", index=0, percent=50.0, message="frame 5/10", done=5,
                    total=10)


def videojob(uid: str) -> dict[str, object]:
    return {"metadata": {"name": "clip", "namespace": "a", "uid": uid, "resourceVersion": "1"},
            "spec": {}}


def tokens(master: bytes = MASTER) -> progress_feed.Tokens:
    return lambda doc: tokens_for_report(master, NAMESPACES, doc)


def test_reports_no_videojob_claims_are_dropped_after_a_while() -> None:
    store = Store(Api(client.ApiClient()))
    store.observe_progress("early", "a", VIEW, now=0.0)
    store.observe_progress("stray", "a", VIEW, now=0.0)
    # The VideoJob of "early" arrives (kopf's first listing after a restart): its report stays.
    store.observe_videojob("ADDED", videojob("early"))
    store.observe_progress("later", "a", VIEW, now=UNCLAIMED_SECONDS + 1)
    assert "early" in store.progress and "stray" not in store.progress
    assert set(store.unclaimed) == {"later"}


def test_unclaimed_reports_are_capped() -> None:
    store = Store(Api(client.ApiClient()))
    for i in range(UNCLAIMED_MAX + 50):
        store.observe_progress(f"uid-{i}", "a", VIEW, now=1.0)
    assert len(store.progress) == len(store.unclaimed) == UNCLAIMED_MAX


def test_a_report_naming_another_namespace_than_its_videojobs_is_dropped() -> None:
    """Namespace b's pods hold b's token: a report they sign names b, and a VideoJob of a
    takes none of it, whether it is known already or arrives later (after a restart)."""
    store = Store(Api(client.ApiClient()))
    store.observe_videojob("ADDED", videojob("u-a"))
    store.observe_progress("u-a", "b", VIEW)
    assert "u-a" not in store.progress
    store.observe_progress("u-late", "b", VIEW, now=1.0)  # first, before its VideoJob
    store.observe_progress("u-late", "a", VIEW, now=2.0)  # the first report's namespace stands
    store.observe_videojob("ADDED", videojob("u-late"))  # a VideoJob of a
    assert "u-late" not in store.progress and "u-late" not in store.unclaimed
    store.observe_progress("u-late", "a", VIEW)  # its own workers' reports count from now
    assert store.progress["u-late"][("keyframes", 0)] == VIEW


def test_a_namespace_known_by_its_uid_and_forgotten_when_deleted() -> None:
    store = Store(Api(client.ApiClient()))
    ns = {"metadata": {"name": "a", "uid": "first"}}
    store.observe_namespace("ADDED", ns)
    store.observe_namespace("ADDED", {"metadata": {"name": "a", "uid": "second"}})  # made again
    store.observe_namespace("DELETED", ns)  # the first one's deletion, seen late: kept
    assert store.namespace_uids == {"a": "second"}
    store.observe_namespace("DELETED", {"metadata": {"name": "a", "uid": "second"}})
    assert store.namespace_uids == {}


@pytest.mark.parametrize(("doc", "kept"), [
    ({"uid": "u", "stage": "segments", "index": 31, "percent": 5}, True),
    ({"uid": "u", "stage": "keyframes", "percent": 5}, True),
    ({"uid": "u", "stage": "segments", "index": 32, "percent": 5}, False),
    ({"uid": "u", "stage": "segments", "index": -1, "percent": 5}, False),
    ({"uid": "u", "stage": "bogus", "percent": 5}, False),
    ({"stage": "plan", "percent": 5}, False),
])
def test_reports_name_a_real_stage_and_scene(doc: dict[str, object], kept: bool) -> None:
    message = signed(namespace_token(MASTER, "a", "uid-of-a"),
                     json.dumps({**doc, "namespace": "a"}))
    assert (progress_feed.parse(message, tokens()) is not None) is kept


REPORT = {"namespace": "a", "name": "clip", "uid": "u-a", "stage": "segments", "index": 0,
          "attempt": 1, "percent": 40, "message": "frame 4/10", "done": 4, "total": 10,
          "ts": 1000.0}


def test_a_report_counts_only_signed_with_its_namespaces_token() -> None:
    text = json.dumps(REPORT)
    own = namespace_token(MASTER, "a", "uid-of-a")
    # Its namespace's token, and its VideoJob's own (pods started before namespace tokens).
    for token in (own, token_for(MASTER, "u-a")):
        uid, namespace, view = progress_feed.parse(signed(token, text), tokens()) or ("", "", None)
        assert (uid, namespace) == ("u-a", "a") and view is not None
        assert view.message == "frame 4/10"
    forged = [
        text,  # unsigned, as workers sent before
        signed(namespace_token(MASTER, "b", "uid-of-b"), text),  # b's pod, for a
        signed(namespace_token(MASTER, "a", "an earlier a's uid"), text),  # a deleted, made again
        signed(token_for(MASTER, "u-b"), text),  # another VideoJob's token
        signed(namespace_token(b"another operator's key", "a", "uid-of-a"), text),
        signed("0" * 64, text),
        # The namespace's signature over another report: the text is signed as sent
        json.dumps({"report": json.dumps({**REPORT, "message": "pwned"}),
                    "sig": json.loads(signed(own, text))["sig"]}),
        signed(own, json.dumps({**REPORT, "namespace": None})),  # no namespace named
        signed(own, json.dumps({k: v for k, v in REPORT.items() if k != "namespace"})),
        json.dumps({"report": REPORT, "sig": "x"}), "not json", "[]", '{"report": "[]"}',
    ]
    for message in forged:
        assert progress_feed.parse(message, tokens()) is None, message
    # b's pod naming b is b's report (and the store gives a's VideoJob none of it: above).
    assert progress_feed.parse(signed(namespace_token(MASTER, "b", "uid-of-b"),
                                      json.dumps({**REPORT, "namespace": "b"})), tokens())


def test_a_namespace_unknown_has_no_token_and_a_new_key_names_a_new_secret() -> None:
    doc = {**REPORT, "namespace": "c"}
    assert list(tokens_for_report(MASTER, NAMESPACES, doc)) == [token_for(MASTER, "u-a")]
    known = tokens_for_report(MASTER, NAMESPACES, REPORT)  # derived as asked for, its own first
    assert next(known) == namespace_token(MASTER, "a", "uid-of-a")
    assert list(known) == [token_for(MASTER, "u-a")]
    assert secret_name(MASTER) == secret_name(MASTER) != secret_name(b"a rotated key")
    assert secret_name(MASTER).startswith("videojob-progress-") and len(secret_name(MASTER)) < 64


def test_a_replayed_or_overtaken_report_does_not_replace_a_newer_one() -> None:
    store = Store(Api(client.ApiClient()))
    store.observe_videojob("ADDED", videojob("u-a"))
    newer = ProgressView("segments", 0, 60.0, "frame 6/10", 6, 10, attempt=1, ts=1001.0)
    older = ProgressView("segments", 0, 40.0, "frame 4/10", 4, 10, attempt=1, ts=1000.0)
    retry = ProgressView("segments", 0, 10.0, "frame 1/10", 1, 10, attempt=2, ts=999.0)
    store.observe_progress("u-a", "a", newer)
    store.observe_progress("u-a", "a", older)
    assert store.progress["u-a"][("segments", 0)] == newer
    store.observe_progress("u-a", "a", retry)  # a new attempt starts over, whatever its clock says
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
