"""The archive's queries as SQL text and parameters: the history list (filters, label selector,
keyset page), the cursor that continues it, the row estimate, and retention's batches.

Pure: no connection here. Every value travels as a parameter (`%s`); the text is assembled from
fixed fragments only, so nothing a user types ever becomes SQL. The indexes these queries are
written for are in schema/0001_init.sql; docs/history.md shows their plans at a million rows.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .label_selector import Operator, Requirement
from .rows import ArchiveRow, Detail, Summary, stage_document, stage_from_document

SUMMARY = "videojob_archive"
DETAIL = "videojob_archive_detail"
LABELS = "videojob_archive_label"
# The list's columns: the narrow table only (never the detail's documents).
SUMMARY_COLUMNS = ("uid", "namespace", "name", "phase", "reason", "failed_stage", "labels",
                   "created_at", "started_at", "finished_at", "gpu_seconds", "output_uri",
                   "output_bytes")
DETAIL_COLUMNS = ("spec", "effective", "status", "message", "output_md5", "output_crc32c",
                  "stages")
MAX_LIMIT = 500
# The namespaces in the archive as a recursive CTE `ns` (its last row is NULL).
_NAMESPACE_WALK = (
    f"ns AS ((SELECT namespace FROM {SUMMARY} ORDER BY namespace LIMIT 1) UNION ALL"
    f" SELECT (SELECT namespace FROM {SUMMARY} WHERE namespace > ns.namespace"
    " ORDER BY namespace LIMIT 1) FROM ns WHERE ns.namespace IS NOT NULL)")
_CURSOR_VERSION = "1"


class CursorError(ValueError):
    """A cursor that this archive did not hand out (or that was cut or edited)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's sort key. The next page starts strictly after it, so
    rows archived meanwhile never shift a page (no duplicate, no skip), unlike OFFSET."""

    finished: dt.datetime
    uid: str

    def encode(self) -> str:
        raw = f"{_CURSOR_VERSION}|{self.finished.isoformat()}|{self.uid}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            version, finished, uid = raw.split("|")
            if version != _CURSOR_VERSION:
                raise ValueError(version)
            when = dt.datetime.fromisoformat(finished)
            if when.tzinfo is None:
                raise ValueError(finished)
            return cls(when, str(uuid.UUID(uid)))
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise CursorError(f"invalid cursor {text!r}: not one this archive handed out") from e


@dataclass(frozen=True)
class ListQuery:
    namespace: str | None = None  # None: every namespace
    phase: str | None = None
    since: dt.datetime | None = None  # finished at or after
    labels: tuple[Requirement, ...] = ()
    limit: int = 50
    after: Cursor | None = None


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...]


def drivers(requirements: Sequence[Requirement]) -> list[Requirement]:
    """The requirements a page can be read by from the label index: `k=v` and `k in (...)`.
    (`!=`, `notin`, `k` and `!k` say what a row must not have, or only its keys: filters.)"""
    return [r for r in requirements if r.operator in (Operator.EQUALS, Operator.IN)]


def list_statement(q: ListQuery, driver: Requirement | None = None) -> Statement:
    """Newest first, `limit + 1` rows: the extra one only tells whether a next page exists.

    Each page is an index range read in the index's order, (finished_at, uid) descending, that
    stops after `limit + 1` rows, at any depth: the cursor is a row comparison on the same
    columns. Without a `driver`, the range is the summary table's (namespace, phase) or
    (namespace) index, and label requirements filter it. With one (a `k=v` or `k in (...)`
    of the selector, drivers()), the range is that label's in the label index, joined to the
    summary rows, which the rest of the query filters: one range per value of a set, merged."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}, not {q.limit}")
    if driver is None:
        where, params = _range("s", q, namespaced=q.namespace is not None)
        filters, filter_params = _filters(q, q.labels)
        sql = (f"SELECT {_columns('s')} FROM {SUMMARY} s"
               + _where([*where, *filters]) + " ORDER BY s.finished_at DESC, s.uid DESC LIMIT %s")
        return Statement(sql, (*params, *filter_params, q.limit + 1))
    # The phase is checked on the label entry (a copy of the row's): for Failed, the partial
    # index of failures' entries is the range itself.
    filters, filter_params = _filters(replace(q, phase=None),
                                      [r for r in q.labels if r is not driver])
    branches: list[str] = []
    params = []
    for value in sorted(set(driver.values)):
        where, range_params = _range("l", q, namespaced=False)
        if q.namespace is not None:
            where = ["l.namespace = %s", "l.key = %s", "l.value = %s", *where]
            range_params = [q.namespace, driver.key, value, *range_params]
        else:  # each namespace in turn (ns: _NAMESPACE_WALK)
            where = ["l.namespace = ns.namespace", "l.key = %s", "l.value = %s", *where]
            range_params = [driver.key, value, *range_params]
        if q.phase is not None:
            where.append("l.phase = %s")
            range_params.append(q.phase)
        branch = (f"SELECT {_columns('s')} FROM {LABELS} l JOIN {SUMMARY} s ON s.uid = l.uid"
                  + _where([*where, *filters])
                  + " ORDER BY l.finished_at DESC, l.uid DESC LIMIT %s")
        if q.namespace is None:  # every namespace: one range each, merged
            branch = f"SELECT x.* FROM ns CROSS JOIN LATERAL ({branch}) x" \
                " WHERE ns.namespace IS NOT NULL"
        branches.append(branch)
        params += [*range_params, *filter_params, q.limit + 1]
    if len(branches) == 1 and q.namespace is not None:
        return Statement(branches[0], tuple(params))
    union = " UNION ALL ".join(f"({b})" for b in branches)
    walk = f"WITH RECURSIVE {_NAMESPACE_WALK} " if q.namespace is None else ""
    return Statement(f"{walk}SELECT * FROM ({union}) page"
                     " ORDER BY finished_at DESC, uid DESC LIMIT %s", (*params, q.limit + 1))


def driver_estimate_statement(namespace: str | None, key: str, value: str) -> Statement:
    """The planner's estimate of a label's rows (in a namespace): which label to read by."""
    where = ["key = %s", "value = %s"]
    params: list[Any] = [key, value]
    if namespace is not None:
        where.insert(0, "namespace = %s")
        params.insert(0, namespace)
    return Statement(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {LABELS}" + _where(where),
                     tuple(params))


def _columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in SUMMARY_COLUMNS)


def _where(conditions: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _range(alias: str, q: ListQuery, namespaced: bool) -> tuple[list[str], list[Any]]:
    """The conditions that bound the index range read: namespace, since, the cursor."""
    where: list[str] = []
    params: list[Any] = []
    if namespaced:
        where.append(f"{alias}.namespace = %s")
        params.append(q.namespace)
    if q.since is not None:
        where.append(f"{alias}.finished_at >= %s")
        params.append(q.since)
    if q.after is not None:
        where.append(f"({alias}.finished_at, {alias}.uid) < (%s, %s::uuid)")
        params += [q.after.finished, q.after.uid]
    return where, params


def _filters(q: ListQuery, labels: Sequence[Requirement]) -> tuple[list[str], list[Any]]:
    """The conditions checked on each summary row the range yields: phase, labels."""
    where: list[str] = []
    params: list[Any] = []
    if q.phase is not None:
        where.append("s.phase = %s")
        params.append(q.phase)
    label_sql, label_params = label_conditions(labels)
    return [*where, *label_sql], [*params, *label_params]


def label_conditions(requirements: Sequence[Requirement]) -> tuple[list[str], list[Any]]:
    """SQL conditions on a summary row's `labels` (alias s), with Kubernetes' meaning: `!=` and
    `notin` also match an object without the key. Equalities (and one-value sets) are merged
    into one containment; a set is an OR of containments."""
    sql: list[str] = []
    params: list[Any] = []
    equal: dict[str, str] = {}
    for r in requirements:
        values = sorted(set(r.values))
        if r.operator in (Operator.EQUALS, Operator.IN) and len(values) == 1:
            if equal.get(r.key, values[0]) != values[0]:
                return ["false"], []  # a=x and a=y: nothing matches
            equal[r.key] = values[0]
        elif r.operator == Operator.IN:
            sql.append("(" + " OR ".join(["s.labels @> %s::jsonb"] * len(values)) + ")")
            params += [json.dumps({r.key: v}) for v in values]
        elif r.operator == Operator.NOT_EQUALS:
            sql.append("NOT s.labels @> %s::jsonb")
            params.append(json.dumps({r.key: values[0]}))
        elif r.operator == Operator.NOT_IN:
            sql.append("NOT coalesce(s.labels ->> %s = ANY(%s::text[]), false)")
            params += [r.key, values]
        elif r.operator == Operator.EXISTS:
            sql.append("s.labels ? %s")
            params.append(r.key)
        else:
            sql.append("NOT s.labels ? %s")
            params.append(r.key)
    if equal:
        sql.insert(0, "s.labels @> %s::jsonb")
        params.insert(0, json.dumps(equal, sort_keys=True))
    return sql, params


def get_statement(namespace: str | None, name_or_uid: str) -> Statement:
    """The newest run of that name in the namespace, or the run with that uid: a name may be
    archived many times (each object its own uid), a uid once. A uid is looked up as a name too
    (a name may look like a uid)."""
    columns = ", ".join([*(f"s.{c}" for c in SUMMARY_COLUMNS),
                         *(f"d.{c}" for c in DETAIL_COLUMNS)])
    where: list[str] = []
    params: list[Any] = []
    if namespace is not None:
        where.append("s.namespace = %s")
        params.append(namespace)
    if _is_uid(name_or_uid) and namespace is None:
        where.append("s.uid = %s::uuid")  # (a name is looked up within a namespace only)
        params.append(name_or_uid)
    elif _is_uid(name_or_uid):
        where.append("(s.uid = %s::uuid OR s.name = %s)")
        params += [name_or_uid, name_or_uid]
    elif namespace is not None:
        where.append("s.name = %s")
        params.append(name_or_uid)
    else:
        raise ValueError("a VideoJob is looked up by name within a namespace, or by uid")
    return Statement(
        f"SELECT {columns} FROM {SUMMARY} s JOIN {DETAIL} d USING (uid)"
        f" WHERE {' AND '.join(where)} ORDER BY s.finished_at DESC, s.uid DESC LIMIT 1",
        tuple(params))


def estimate_statement(namespace: str | None, phase: str | None) -> Statement:
    """The planner's row estimate (pg_class.reltuples scaled to the table's current size, times
    pg_statistic's frequencies): EXPLAIN plans the count and runs nothing."""
    where, params = [], []
    if namespace is not None:
        where.append("namespace = %s")
        params.append(namespace)
    if phase is not None:
        where.append("phase = %s")
        params.append(phase)
    return Statement(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {SUMMARY}"
                     + (f" WHERE {' AND '.join(where)}" if where else ""), tuple(params))


def planned_rows(explain: Any) -> int:
    """'Plan Rows' of EXPLAIN (FORMAT JSON)'s answer (a list holding one plan)."""
    doc = json.loads(explain) if isinstance(explain, str | bytes) else explain
    return int(doc[0]["Plan"]["Plan Rows"])


# -- retention ---------------------------------------------------------------------------------

# Every namespace in the archive, skipping along the namespace index (one probe per namespace)
# instead of reading every row as SELECT DISTINCT would.
NAMESPACES = f"WITH RECURSIVE {_NAMESPACE_WALK} SELECT namespace FROM ns" \
    " WHERE namespace IS NOT NULL"


def delete_older_statement(namespace: str, before: dt.datetime, batch: int) -> Statement:
    """One batch of the namespace's rows finished before `before`, oldest first (their detail
    rows go with them: ON DELETE CASCADE). SKIP LOCKED: a second operator replica running
    retention at the same time takes other rows instead of waiting."""
    return Statement(
        f"DELETE FROM {SUMMARY} WHERE uid IN ("
        f"SELECT uid FROM {SUMMARY} WHERE namespace = %s AND finished_at < %s"
        " ORDER BY finished_at, uid LIMIT %s FOR UPDATE SKIP LOCKED)",
        (namespace, before, batch))


def keep_newest_statement(namespace: str, keep: int) -> Statement:
    """The sort key of the newest row beyond the `keep` newest: everything from it down goes.
    (OFFSET reads `keep` index entries; retention runs now and then, not per request.)"""
    return Statement(
        f"SELECT finished_at, uid::text FROM {SUMMARY} WHERE namespace = %s"
        " ORDER BY finished_at DESC, uid DESC OFFSET %s LIMIT 1", (namespace, keep))


def delete_through_statement(namespace: str, last: Cursor, batch: int) -> Statement:
    """One batch of the namespace's rows at or below `last` in list order, oldest first."""
    return Statement(
        f"DELETE FROM {SUMMARY} WHERE uid IN ("
        f"SELECT uid FROM {SUMMARY} WHERE namespace = %s"
        " AND (finished_at, uid) <= (%s, %s::uuid)"
        " ORDER BY finished_at, uid LIMIT %s FOR UPDATE SKIP LOCKED)",
        (namespace, last.finished, last.uid, batch))


def _is_uid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


# -- writes ------------------------------------------------------------------------------------

def _upsert(table: str, columns: Sequence[str], casts: Mapping[str, str],
            touch: str = "") -> str:
    values = ", ".join(f"%s::{casts[c]}" if c in casts else "%s" for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "uid")
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
            f" ON CONFLICT (uid) DO UPDATE SET {updates}{touch}")


# By uid: writing a row again (a retry after a failure to record that it was written, a
# second replica) replaces it, so a write is idempotent.
UPSERT_SUMMARY = _upsert(SUMMARY, SUMMARY_COLUMNS, {"uid": "uuid", "labels": "jsonb"},
                         ", archived_at = now()")
UPSERT_DETAIL = _upsert(DETAIL, ("uid", *DETAIL_COLUMNS), {
    "uid": "uuid", "spec": "json", "effective": "json", "status": "json", "stages": "json"})


def summary_values(s: Summary) -> tuple[Any, ...]:
    """`s` as UPSERT_SUMMARY's parameters (SUMMARY_COLUMNS' order)."""
    return (s.uid, s.namespace, s.name, s.phase, s.reason, s.failed_stage,
            json.dumps(dict(s.labels), sort_keys=True), s.created, s.started, s.finished,
            s.gpu_seconds, s.output_uri, s.output_bytes)


def detail_values(uid: str, d: Detail) -> tuple[Any, ...]:
    """`d` as UPSERT_DETAIL's parameters (uid, then DETAIL_COLUMNS' order)."""
    return (uid, json.dumps(d.spec), None if d.effective is None else json.dumps(d.effective),
            json.dumps(d.status), d.message, d.output_md5, d.output_crc32c,
            json.dumps([stage_document(st) for st in d.stages]))


def summary_from_record(record: Sequence[Any]) -> Summary:
    """A row of SUMMARY_COLUMNS as the driver returns it (uuid, jsonb as dict, timestamptz)."""
    (uid, namespace, name, phase, reason, failed_stage, labels, created, started, finished,
     gpu, output_uri, output_bytes) = record[:len(SUMMARY_COLUMNS)]
    return Summary(uid=str(uid), namespace=namespace, name=name, phase=phase, reason=reason,
                   failed_stage=failed_stage, labels=labels or {}, created=created,
                   started=started, finished=finished, gpu_seconds=gpu, output_uri=output_uri,
                   output_bytes=output_bytes)


def row_from_record(record: Sequence[Any]) -> ArchiveRow:
    """A row of get_statement's columns: SUMMARY_COLUMNS, then DETAIL_COLUMNS."""
    spec, effective, status, message, md5, crc32c, stages = record[len(SUMMARY_COLUMNS):]
    return ArchiveRow(
        summary_from_record(record),
        Detail(spec=spec, effective=effective, status=status, message=message, output_md5=md5,
               output_crc32c=crc32c,
               stages=tuple(stage_from_document(st) for st in stages or [])))

# A row's entries in the label index, made from its labels by the database (so they cannot
# disagree with the row), after the old ones go: a rewrite may change labels or finished_at.
DELETE_LABELS = f"DELETE FROM {LABELS} WHERE uid = ANY(%s::uuid[])"
INSERT_LABELS = (f"INSERT INTO {LABELS} (uid, finished_at, namespace, key, value, phase)"
                 " SELECT s.uid, s.finished_at, s.namespace, l.key, l.value, s.phase"
                 f" FROM {SUMMARY} s, jsonb_each_text(s.labels) l WHERE s.uid = ANY(%s::uuid[])")
