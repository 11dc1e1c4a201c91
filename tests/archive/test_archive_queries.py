"""What the history queries are made of, without a database: label selectors read as
Kubernetes reads them (and refused with the part named), SQL that carries every value as a
parameter, the keyset cursor, retention's choice of policy, and the migration files' order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from videojob_common.archive import queries
from videojob_common.archive.label_selector import Operator, Requirement, SelectorError, parse
from videojob_common.archive.migrate import MigrationError, migrations
from videojob_common.archive.queries import Cursor, CursorError, ListQuery, list_statement
from videojob_common.archive.retention import RetentionPolicy, by_namespace

T0 = dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC)
UID = "3f1c2a9e-6b7d-4c1e-9a0b-2d5e8f7a6c41"


@pytest.mark.parametrize(("text", "expected"), [
    ("", ()),
    ("team=brand", (Requirement("team", Operator.EQUALS, ("brand",)),)),
    ("team==brand", (Requirement("team", Operator.EQUALS, ("brand",)),)),
    ("team != brand", (Requirement("team", Operator.NOT_EQUALS, ("brand",)),)),
    ("tier in (gold, silver)", (Requirement("tier", Operator.IN, ("gold", "silver")),)),
    ("tier notin (bronze)", (Requirement("tier", Operator.NOT_IN, ("bronze",)),)),
    ("legacy", (Requirement("legacy", Operator.EXISTS),)),
    ("!legacy", (Requirement("legacy", Operator.DOES_NOT_EXIST),)),
    ("empty=", (Requirement("empty", Operator.EQUALS, ("",)),)),
    ("app.kubernetes.io/part-of=studio,env in (prod,staging),!canary", (
        Requirement("app.kubernetes.io/part-of", Operator.EQUALS, ("studio",)),
        Requirement("env", Operator.IN, ("prod", "staging")),
        Requirement("canary", Operator.DOES_NOT_EXIST))),
])
def test_selectors_read_as_kubernetes_reads_them(text: str,
                                                 expected: tuple[Requirement, ...]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "names"), [
    ("team=brand,", "an empty requirement"),
    ("tier in (gold", "'(' is never closed"),
    ("tier in ()", "requirement 'tier in ()': the set of values is empty"),
    ("tier in gold", "requirement 'tier in gold': expected KEY"),
    ("replicas>3", "requirement 'replicas>3': '<' and '>' compare node labels only"),
    ("team=bra nd", "requirement 'team=bra nd'"),
    ("-team=brand", "key name '-team' must be"),
    ("Example.com/team=brand", "key prefix 'Example.com' must be a DNS subdomain"),
    ("team=" + "x" * 64, "value 'xxxx"),
    ("team=a/b", "requirement 'team=a/b'"),
])
def test_a_bad_selector_names_the_part_that_is_wrong(text: str, names: str) -> None:
    with pytest.raises(SelectorError, match="label selector") as e:
        parse(text)
    assert names in str(e.value)


def test_values_are_parameters_never_sql() -> None:
    hostile = "x'); DROP TABLE videojob_archive; --"
    q = ListQuery(namespace=hostile, phase=hostile, since=T0,
                  labels=parse("team=brand,tier in (gold,silver),env!=dev,tier notin (x),"
                               "legacy,!canary"),
                  after=Cursor(T0, UID))
    s = list_statement(q)
    assert hostile not in s.sql and "brand" not in s.sql and "gold" not in s.sql
    assert s.sql.count("%s") == len(s.params)
    assert hostile in s.params and '{"team": "brand"}' in s.params


def test_the_list_is_newest_first_after_the_cursor_and_asks_for_one_more_row() -> None:
    s = list_statement(ListQuery(namespace="studio", phase="Failed", limit=50,
                                 after=Cursor(T0, UID)))
    assert s.sql.endswith("ORDER BY s.finished_at DESC, s.uid DESC LIMIT %s")
    assert "(s.finished_at, s.uid) < (%s, %s::uuid)" in s.sql
    assert s.params == ("studio", T0, UID, "Failed", 51)
    assert "spec" not in s.sql and "status" not in s.sql  # the narrow table only


def test_a_label_page_is_read_from_the_label_index_the_rest_filters() -> None:
    labels = parse("team=brand,env!=dev")
    s = list_statement(ListQuery(namespace="studio", phase="Failed", labels=labels,
                                 after=Cursor(T0, UID)), driver=labels[0])
    assert "FROM videojob_archive_label l JOIN videojob_archive s" in s.sql
    assert "l.namespace = %s AND l.key = %s AND l.value = %s AND (l.finished_at, l.uid) <" \
        " (%s, %s::uuid) AND l.phase = %s AND NOT s.labels @> %s::jsonb" in s.sql
    assert s.sql.endswith("ORDER BY l.finished_at DESC, l.uid DESC LIMIT %s")
    assert s.params == ("studio", "team", "brand", T0, UID, "Failed", '{"env": "dev"}', 51)


def test_a_set_is_one_range_per_value_and_every_namespace_one_per_namespace() -> None:
    labels = parse("tier in (gold,silver)")
    s = list_statement(ListQuery(namespace="studio", labels=labels), driver=labels[0])
    assert s.sql.count("UNION ALL") == 1 and s.sql.count("l.value = %s") == 2
    assert s.params == ("studio", "tier", "gold", 51, "studio", "tier", "silver", 51, 51)
    every = list_statement(ListQuery(labels=labels), driver=labels[0])
    assert every.sql.startswith("WITH RECURSIVE ns AS (")
    assert every.sql.count("CROSS JOIN LATERAL") == 2
    assert every.sql.count("%s") == len(every.params)
    assert queries.drivers(parse("a=1,b!=2,c in (x),d notin (y),e,!f")) == [
        Requirement("a", Operator.EQUALS, ("1",)), Requirement("c", Operator.IN, ("x",))]


def test_equalities_merge_into_one_containment_and_conflicting_ones_match_nothing() -> None:
    sql, params = queries.label_conditions(parse("team=brand,env in (prod),tier in (a,b)"))
    assert sql == ["s.labels @> %s::jsonb", "(s.labels @> %s::jsonb OR s.labels @> %s::jsonb)"]
    assert params == ['{"env": "prod", "team": "brand"}', '{"tier": "a"}', '{"tier": "b"}']
    assert queries.label_conditions(parse("team=a,team=b")) == (["false"], [])


@pytest.mark.parametrize("limit", [0, queries.MAX_LIMIT + 1])
def test_the_page_size_is_bounded(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        list_statement(ListQuery(limit=limit))


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    c = Cursor(T0 + dt.timedelta(microseconds=123), UID)
    assert Cursor.decode(c.encode()) == c
    for bad in ("", "bm90IGEgY3Vyc29y", c.encode()[:-3], "!!!"):
        with pytest.raises(CursorError, match="invalid cursor"):
            Cursor.decode(bad)


def test_get_takes_a_name_in_a_namespace_or_a_uid() -> None:
    by_name = queries.get_statement("studio", "launch-teaser")
    assert by_name.params == ("studio", "launch-teaser")
    assert queries.get_statement("studio", UID).params == ("studio", UID, UID)
    assert queries.get_statement(None, UID).params == (UID,)  # by its uid only
    with pytest.raises(ValueError, match="by name within a namespace"):
        queries.get_statement(None, "launch-teaser")


def test_the_estimate_is_a_plan_not_a_count() -> None:
    s = queries.estimate_statement("studio", "Failed")
    assert s.sql.startswith("EXPLAIN (FORMAT JSON) SELECT 1 FROM")
    assert "count" not in s.sql.lower()
    assert queries.planned_rows('[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 4210}}]') \
        == 4210


def test_each_namespace_gets_its_own_policy_else_the_default() -> None:
    default = RetentionPolicy(max_age=dt.timedelta(days=90))
    studio = RetentionPolicy("studio", max_rows=10_000)
    assert by_namespace([default, studio], ["ads", "studio"]) == {"ads": default,
                                                                  "studio": studio}
    assert by_namespace([studio], ["ads", "studio"]) == {"studio": studio}
    assert default.cutoff(T0) == T0 - dt.timedelta(days=90)
    assert studio.cutoff(T0) is None
    with pytest.raises(ValueError, match="two retention policies for namespace 'studio'"):
        by_namespace([studio, studio], [])
    with pytest.raises(ValueError, match="max_age must be positive"):
        RetentionPolicy("ads", max_age=dt.timedelta(0))


def test_the_packaged_migrations_run_from_one_without_a_gap() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert "CREATE TABLE videojob_archive" in found[0].sql


def test_misnamed_or_missing_migrations_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_init.sql").write_text("SELECT 1;")
    (tmp_path / "0003_more.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match=r"without a gap or a repeat: \[1, 3\]"):
        migrations(tmp_path)
    (tmp_path / "0003_more.sql").rename(tmp_path / "2_more.sql")
    with pytest.raises(MigrationError, match=r"'2_more\.sql': name it NNNN_name\.sql"):
        migrations(tmp_path)
