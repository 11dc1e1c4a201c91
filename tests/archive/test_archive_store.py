"""The archive on a real PostgreSQL (started by the tests, conftest.py): migrations, idempotent
writes, keyset pages that neither repeat nor skip while rows arrive, label selectors, retention,
and estimates that never count."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psycopg
import pytest

from videojob_common.archive import label_selector
from videojob_common.archive.label_selector import Operator, Requirement
from videojob_common.archive.migrate import LOCK_KEY, MigrationError, migrate, migrations
from videojob_common.archive.queries import CursorError
from videojob_common.archive.retention import RetentionPolicy
from videojob_common.archive.rows import ArchiveRow, Detail, Summary, row
from videojob_common.archive.store import Archive
from videojob_testkit.finished import run_pods, videojob
from videojob_testkit.processes import wait_until

T0 = dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def archive(archive_dsn: str) -> Iterator[Archive]:
    with Archive(archive_dsn) as a:
        a.migrate()
        yield a


def archived(namespace: str, name: str, finished: dt.datetime, *, phase: str = "Succeeded",
             labels: Mapping[str, str] | None = None, uid: str | None = None) -> ArchiveRow:
    uid = uid or str(uuid.uuid4())
    return ArchiveRow(
        Summary(uid=uid, namespace=namespace, name=name, phase=phase,
                reason="RetriesExhausted" if phase == "Failed" else None,
                failed_stage="segments" if phase == "Failed" else None,
                labels=dict(labels or {}), created=finished - dt.timedelta(minutes=20),
                started=finished - dt.timedelta(minutes=18), finished=finished,
                gpu_seconds=840.0, output_uri=f"gs://videos/{namespace}/{name}/{uid}.mp4",
                output_bytes=18_400_112),
        Detail(spec={"prompt": name}, effective={"scenes": 4}, status={"phase": phase},
               message=None, output_md5=None, output_crc32c=None))


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        record = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert record is not None
        return int(record[0])


# -- migrations --------------------------------------------------------------------------------

def test_two_replicas_migrating_at_once_apply_each_version_once(archive_dsn: str) -> None:
    """Both start while a third session holds the migration lock, so both are waiting on it
    together; when it is released, one applies the schema and the other finds it applied."""
    reports = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            with psycopg.connect(archive_dsn, autocommit=True) as conn:
                reports.append(migrate(conn))
        except BaseException as e:  # reported below
            errors.append(e)

    with psycopg.connect(archive_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        threads = [threading.Thread(target=replica) for _ in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone() == (2,), 10, "both replicas to wait on the migration lock")
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        for t in threads:
            t.join(30)
    assert not errors
    assert sorted(r.applied for r in reports) == [(), (1,)]
    assert sorted(r.present for r in reports) == [(), (1,)]
    assert count(archive_dsn, "schema_migrations") == len(migrations())
    with psycopg.connect(archive_dsn, autocommit=True) as conn:  # and again: nothing to do
        assert migrate(conn).applied == ()


def test_a_new_migration_applies_later_and_an_edited_one_is_refused(
        archive_dsn: str, tmp_path: Path) -> None:
    first = migrations()[0]
    (tmp_path / "0001_init.sql").write_text(first.sql)
    with psycopg.connect(archive_dsn, autocommit=True) as conn:
        assert migrate(conn, tmp_path).applied == (1,)
        (tmp_path / "0002_note.sql").write_text(
            "ALTER TABLE videojob_archive ADD COLUMN note text;")
        report = migrate(conn, tmp_path)
        assert (report.applied, report.present) == ((2,), (1,))
        (tmp_path / "0002_note.sql").unlink()  # an older operator: knows only 0001
        assert migrate(conn, tmp_path).unknown == (2,)
        (tmp_path / "0001_init.sql").write_text(first.sql + "\n-- edited\n")
        with pytest.raises(MigrationError, match=r"0001_init\.sql changed after it was applied"):
            migrate(conn, tmp_path)


def test_a_failing_migration_leaves_nothing_behind(archive_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text(
        "CREATE TABLE half (x int); INSERT INTO no_such_table VALUES (1);")
    with psycopg.connect(archive_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate(conn, tmp_path)
        # Rolled back whole: the table it made, and its record (the first: the table too).
        assert conn.execute("SELECT to_regclass('half'), to_regclass('schema_migrations')"
                            ).fetchone() == (None, None)


# -- writes and reads ---------------------------------------------------------------------------

def test_writing_a_row_twice_keeps_one_row_with_the_latest_values(
        archive: Archive, archive_dsn: str) -> None:
    first = archived("studio", "teaser", T0)
    second = dataclasses.replace(first, summary=dataclasses.replace(
        first.summary, phase="Failed", reason="StageTimeout", gpu_seconds=12.5))
    assert archive.upsert([first]) == 1
    assert archive.upsert([first]) == 1
    assert archive.upsert([second, second]) == 1
    assert count(archive_dsn, "videojob_archive") == 1
    assert count(archive_dsn, "videojob_archive_detail") == 1
    got = archive.get("studio", "teaser")
    assert got is not None
    assert (got.summary.phase, got.summary.reason, got.summary.gpu_seconds) == (
        "Failed", "StageTimeout", 12.5)


def test_a_row_reads_back_as_it_was_written(archive: Archive) -> None:
    """From the object and its pods, through both tables, back: stages, pods, documents."""
    now = T0 + dt.timedelta(hours=1)
    older = row(videojob(uid=str(uuid.uuid4()), t0=T0 - dt.timedelta(days=1)), [], now)
    built = row(videojob(), run_pods(), now)
    archive.upsert([older, built])
    newest = archive.get("studio", "launch-teaser")
    assert newest == built
    assert archive.get("studio", older.summary.uid) == older  # a run by its uid
    assert archive.get(None, built.summary.uid) == built
    assert archive.get("elsewhere", built.summary.uid) is None
    assert archive.get("studio", "never-archived") is None


def test_pages_neither_repeat_nor_skip_while_rows_arrive(archive: Archive) -> None:
    # 130 rows in threes sharing a finish second (the API server's times are whole seconds):
    # the uid breaks the ties. Another namespace's rows interleave and must not appear.
    first = [archived("studio", f"vj-{i}", T0 + dt.timedelta(seconds=i // 3))
             for i in range(130)]
    archive.upsert(first + [archived("ads", f"ad-{i}", T0 + dt.timedelta(seconds=i))
                            for i in range(40)])
    seen: list[Summary] = []
    expected = {r.summary.uid for r in first}
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = archive.list("studio", limit=20, after=cursor)
        seen += page
        pages += 1
        if cursor is None:
            break
        # Meanwhile: one VideoJob finishes now (above every page: not in this listing) and one
        # row arrives late, older than where we are (below: the listing reaches it).
        last = page[-1].finished
        late = archived("studio", f"late-{pages}", last - dt.timedelta(milliseconds=500))
        archive.upsert([archived("studio", f"new-{pages}", T0 + dt.timedelta(days=1)), late])
        expected.add(late.summary.uid)
    uids = [s.uid for s in seen]
    assert len(uids) == len(set(uids)), "a row was listed twice"
    assert set(uids) == expected, "a row was skipped"
    keys = [(s.finished, s.uid) for s in seen]
    assert keys == sorted(keys, reverse=True)
    assert {s.namespace for s in seen} == {"studio"}


def test_phase_since_and_every_namespace(archive: Archive) -> None:
    rows = [archived(ns, f"{ns}-{i}", T0 + dt.timedelta(hours=i),
                     phase="Failed" if i % 4 == 0 else "Succeeded")
            for ns in ("studio", "ads") for i in range(12)]
    archive.upsert(rows)
    failed, _ = archive.list("studio", phase="Failed")
    assert [s.name for s in failed] == ["studio-8", "studio-4", "studio-0"]
    recent, _ = archive.list(None, since=T0 + dt.timedelta(hours=10))
    newest = sorted((r.summary for r in rows if r.summary.finished >= T0 + dt.timedelta(
        hours=10)), key=lambda s: (s.finished, s.uid), reverse=True)
    assert recent == newest and len(recent) == 4  # ties broken by uid
    with pytest.raises(CursorError):
        archive.list("studio", after="not-a-cursor")


LABELLED = {
    "a": {"team": "brand", "env": "prod", "tier": "gold"},
    "b": {"team": "brand", "env": "staging"},
    "c": {"team": "ads", "env": "prod", "tier": "silver", "legacy": "true"},
    "d": {"team": "ads", "env": "dev", "tier": "bronze"},
    "e": {},
    "f": {"app.kubernetes.io/part-of": "studio", "env": "prod"},
}


def matches(labels: Mapping[str, str], requirements: Sequence[Requirement]) -> bool:
    """Kubernetes' meaning of a selector, in Python, to check the SQL against."""
    for r in requirements:
        value = labels.get(r.key)
        ok = {Operator.EQUALS: value in r.values, Operator.IN: value in r.values,
              Operator.NOT_EQUALS: value not in r.values,
              Operator.NOT_IN: value not in r.values,
              Operator.EXISTS: value is not None,
              Operator.DOES_NOT_EXIST: value is None}[r.operator]
        if not ok:
            return False
    return True


@pytest.mark.parametrize("selector", [
    "team=brand", "team==ads,env=prod", "env!=prod", "tier in (gold,bronze)",
    "tier notin (gold)", "legacy", "!tier", "team=brand,!tier", "env in (prod),tier!=gold",
    "app.kubernetes.io/part-of=studio", "team=nobody", "team=ads,team=brand",
])
def test_label_selectors_select_what_kubernetes_would(archive: Archive, selector: str) -> None:
    archive.upsert([archived("studio", name, T0 + dt.timedelta(minutes=i), labels=labels)
                    for i, (name, labels) in enumerate(LABELLED.items())]
                   + [archived("ads", "x", T0, labels={"team": "brand"})])
    page, _ = archive.list("studio", label_selector=selector)
    wanted = label_selector.parse(selector)
    assert {s.name for s in page} == {n for n, lab in LABELLED.items() if matches(lab, wanted)}
    every, _ = archive.list(None, label_selector=selector)  # every namespace: the same index
    assert {s.name for s in every} >= {s.name for s in page}


def test_label_pages_neither_repeat_nor_skip(archive: Archive) -> None:
    """Read by the label index (one range, then a set's two merged), page after page."""
    rows = [archived("studio", f"vj-{i}", T0 + dt.timedelta(seconds=i // 4),
                     labels={"tier": "gold" if i % 3 else "silver", "team": "brand"})
            for i in range(90)]
    archive.upsert(rows)
    for selector, wanted in (("tier=gold", {r.summary.uid for r in rows
                                            if r.summary.labels["tier"] == "gold"}),
                             ("tier in (gold,silver),team=brand",
                              {r.summary.uid for r in rows})):
        seen: list[Summary] = []
        cursor: str | None = None
        while True:
            page, cursor = archive.list("studio", label_selector=selector, limit=7,
                                        after=cursor)
            seen += page
            if cursor is None:
                break
        assert [s.uid for s in seen] == [s.uid for s in sorted(
            (r.summary for r in rows if r.summary.uid in wanted),
            key=lambda s: (s.finished, s.uid), reverse=True)]


def test_a_phase_and_a_label_in_one_namespace_or_all(archive: Archive) -> None:
    rows = [archived(ns, f"{ns}-{i}", T0 + dt.timedelta(minutes=i),
                     phase="Failed" if i % 5 == 0 else "Succeeded",
                     labels={"tier": "gold" if i % 2 else "silver"})
            for ns in ("studio", "ads") for i in range(40)]
    archive.upsert(rows)
    for namespace in ("studio", None):
        for phase in ("Failed", "Succeeded"):
            page, _ = archive.list(namespace, phase=phase, label_selector="tier=gold",
                                   limit=100)
            assert {s.name for s in page} == {
                r.summary.name for r in rows if r.summary.phase == phase
                and r.summary.labels["tier"] == "gold"
                and namespace in (None, r.summary.namespace)}


def test_a_rewritten_row_is_found_by_its_new_labels_and_phase_only(archive: Archive) -> None:
    first = archived("studio", "teaser", T0, labels={"tier": "gold"})
    moved = dataclasses.replace(first, summary=dataclasses.replace(
        first.summary, labels={"tier": "silver"}, finished=T0 + dt.timedelta(hours=1),
        phase="Failed"))
    archive.upsert([first])
    archive.upsert([moved])
    assert archive.list("studio", label_selector="tier=gold")[0] == []
    assert archive.list("studio", phase="Succeeded", label_selector="tier=silver")[0] == []
    assert [s.finished for s in archive.list("studio", phase="Failed",
                                             label_selector="tier=silver")[0]] == [
        T0 + dt.timedelta(hours=1)]


def test_a_bad_selector_is_refused_before_the_database(archive: Archive) -> None:
    with pytest.raises(label_selector.SelectorError, match="'tier in gold'"):
        archive.list("studio", label_selector="team=brand,tier in gold")


# -- retention and estimates --------------------------------------------------------------------

def test_retention_by_age_and_by_count_in_small_batches(
        archive: Archive, archive_dsn: str) -> None:
    now = T0 + dt.timedelta(days=100)
    # studio: one a day for 100 days; ads: 50 rows, the 10th to 14th newest in one second.
    team = {"team": "brand"}
    studio = [archived("studio", f"s-{d}", T0 + dt.timedelta(days=d), labels=team)
              for d in range(100)]
    ads = [archived("ads", f"a-{i}", T0 + dt.timedelta(seconds=min(i, 36)), labels=team)
           for i in range(50)]
    kept_tenant = [archived("kept", f"k-{i}", T0, labels=team) for i in range(5)]
    archive.upsert(studio + ads + kept_tenant)
    policies = [
        RetentionPolicy("studio", max_age=dt.timedelta(days=30)),
        RetentionPolicy(max_rows=10),  # every other namespace
        RetentionPolicy("kept"),  # no bound: kept as it is
    ]
    deleted = archive.apply_retention(policies, now, batch=7)
    assert deleted == {"studio": 70, "ads": 40}
    left, _ = archive.list("studio", limit=500)
    assert [s.name for s in left] == [f"s-{d}" for d in range(99, 69, -1)]
    ads_left, _ = archive.list("ads", limit=500)
    newest = sorted(ads, key=lambda r: (r.summary.finished, r.summary.uid), reverse=True)[:10]
    assert [s.uid for s in ads_left] == [r.summary.uid for r in newest]
    assert len(archive.list("kept")[0]) == 5
    # The documents and the label index entries went with the rows.
    assert count(archive_dsn, "videojob_archive_detail") == 30 + 10 + 5
    assert count(archive_dsn, "videojob_archive_label") == 30 + 10 + 5
    assert archive.apply_retention(policies, now) == {}  # nothing more to do


def test_an_estimate_comes_from_statistics_never_from_counting(
        archive: Archive, archive_dsn: str) -> None:
    archive.upsert([archived("studio", f"s-{i}", T0 + dt.timedelta(seconds=i),
                             phase="Failed" if i % 5 == 0 else "Succeeded")
                    for i in range(3000)]
                   + [archived("ads", f"a-{i}", T0) for i in range(1000)])
    with psycopg.connect(archive_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE videojob_archive SET (autovacuum_enabled = false)")
        conn.execute("ANALYZE videojob_archive")
    assert archive.estimate() == pytest.approx(4000, rel=0.05)
    assert archive.estimate("studio") == pytest.approx(3000, rel=0.05)
    # A namespace's phases are not those of the whole table (here, studio's failures are all
    # of them): the extended statistics on (namespace, phase) know it.
    assert archive.estimate("studio", "Failed") == pytest.approx(600, rel=0.05)
    assert archive.estimate("ads", "Failed") < 30
    # Rows deleted since the statistics were taken are still in the estimate: it was not
    # counted. (The table keeps its pages until VACUUM, and the statistics until ANALYZE.)
    with psycopg.connect(archive_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM videojob_archive WHERE namespace = 'studio'")
    assert count(archive_dsn, "videojob_archive") == 1000
    assert archive.estimate("studio") == pytest.approx(3000, rel=0.05)
