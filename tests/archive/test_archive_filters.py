"""A history request's filters as users type them (filters.py), read without a database: the
same rules for `kubectl videojob history` and the gateway's `?since=` and the rest."""

from __future__ import annotations

import datetime as dt

import pytest

from videojob_common.archive.filters import FilterError, Filters, list_query, parse_since
from videojob_common.archive.label_selector import Operator, Requirement
from videojob_common.archive.queries import Cursor

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("text", "back"), [
    ("90s", dt.timedelta(seconds=90)), ("30m", dt.timedelta(minutes=30)),
    ("24h", dt.timedelta(hours=24)), ("7d", dt.timedelta(days=7)),
    ("2w", dt.timedelta(weeks=2)), (" 1h ", dt.timedelta(hours=1))])
def test_since_as_a_duration_counts_back_from_now(text: str, back: dt.timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_since_as_an_rfc3339_time_keeps_its_zone() -> None:
    assert parse_since("2026-12-01T09:00:00Z", NOW) == dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert parse_since("2026-12-01T10:00:00+01:00", NOW) == dt.datetime(2026, 12, 1, 9,
                                                                          tzinfo=dt.UTC)


@pytest.mark.parametrize(("filters", "name", "words"), [
    (Filters(since="7 days"), "since", "expected a duration"),
    (Filters(since="-1h"), "since", "expected a duration"),
    (Filters(since="2026-12-01 09:00"), "since", "needs its zone"),
    (Filters(phase="Running"), "phase", "finished VideoJobs only"),
    (Filters(selector="team=a,,"), "selector", "stray comma"),
    (Filters(after="garbage"), "continue", "not a token this archive handed out"),
    (Filters(limit=501), "limit", "1 to 500"),
    (Filters(limit=0), "limit", "1 to 500"),
])
def test_each_bad_filter_is_named(filters: Filters, name: str, words: str) -> None:
    with pytest.raises(FilterError) as refused:
        list_query(filters, "studio", NOW)
    assert refused.value.filter == name and words in refused.value.reason
    assert refused.value.named("--x").startswith("--x ")


def test_good_filters_make_the_query() -> None:
    cursor = Cursor(NOW, "3f1c2a9e-6b7d-4c1e-9a0b-2d5e8f7a6c41")
    q = list_query(Filters(phase="failed", since="1d", selector="team=a", limit=20,
                           after=cursor.encode()), "studio", NOW)
    assert (q.namespace, q.phase, q.since, q.limit, q.after) == (
        "studio", "Failed", NOW - dt.timedelta(days=1), 20, cursor)
    assert q.labels == (Requirement("team", Operator.EQUALS, ("a",)),)
    assert list_query(Filters(), None, NOW).limit == 50
