"""`Archive`: the archive in PostgreSQL, through a psycopg 3 connection pool. A thin adapter: the
SQL and its parameters come from queries.py, the rows from rows.py; this runs them.

The pool (psycopg_pool) keeps a few connections open, so a history request or a burst of
writes never pays a connection's start (a TLS handshake and authentication: milliseconds, more
than a list query takes). Each connection is checked when taken, so one that a database restart
broke is replaced instead of failing a request. Sessions are in UTC, and use custom plans only
(`plan_cache_mode`): psycopg prepares a statement after five runs, and a generic plan could not
see how common a namespace, a phase or a label is. Planning costs a fraction of a millisecond.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping, Sequence
from types import TracebackType

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from . import queries
from .label_selector import Requirement
from .label_selector import parse as parse_selector
from .migrate import MigrationReport, migrate
from .queries import Cursor, ListQuery, Statement
from .retention import RetentionPolicy, by_namespace, needs_namespaces
from .rows import ArchiveRow, Summary

Connection = psycopg.Connection[TupleRow]


def _configure(conn: Connection) -> None:
    conn.execute("SET timezone = 'UTC'")
    conn.execute("SET plan_cache_mode = force_custom_plan")
    # Every query here reads short index ranges. JIT compiling one whose estimate looks large
    # (a page over every namespace) took 200 ms to save nothing, and starting parallel workers
    # costs more than such a read.
    conn.execute("SET jit = off")
    conn.execute("SET max_parallel_workers_per_gather = 0")


class Archive:
    """The archive at `dsn` (a libpq connection string or URL)."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 4,
                 application_name: str = "videojob-archive", timeout: float = 30,
                 statement_timeout: float | None = None) -> None:
        # `timeout`: how long a caller waits for a connection (PoolTimeout after it: the
        # database is down or every connection is busy). `statement_timeout` (seconds): the
        # longest any statement of this Archive may run, for readers (the gateway, the plugin);
        # the operator's, which migrates and runs retention's batches, has none.
        def configure(conn: Connection) -> None:
            _configure(conn)
            if statement_timeout is not None:
                conn.execute("SELECT set_config('statement_timeout', %s, false)",
                             (f"{int(statement_timeout * 1000)}ms",))

        self.pool = ConnectionPool(
            dsn, min_size=min_size, max_size=max_size, open=False, name="videojob-archive",
            timeout=timeout,
            kwargs={"autocommit": True, "application_name": application_name},
            configure=configure, check=ConnectionPool.check_connection)

    def open(self, timeout: float = 30, wait: bool = True) -> Archive:
        """Opens the pool, waiting until its first connections are made (PoolTimeout after
        `timeout` seconds: the database is not reachable). `wait=False`: returns at once, the
        connections are made in the background (a server whose database is down starts and
        answers its other requests)."""
        self.pool.open(wait=wait, timeout=timeout)
        return self

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Archive:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def migrate(self) -> MigrationReport:
        with self.pool.connection() as conn:
            return migrate(conn)

    def upsert(self, rows: Sequence[ArchiveRow], batch: int = 500) -> int:
        """Writes the rows (insert, or replace the row of the same uid), `batch` rows to a
        transaction, both tables together; returns how many were written. Within a batch the
        rows go in uid order, so two writers never wait on each other in a cycle."""
        latest = {r.summary.uid: r for r in rows}  # one write per uid: the last one given
        ordered = [latest[uid] for uid in sorted(latest)]
        with self.pool.connection() as conn:
            for start in range(0, len(ordered), batch):
                part = ordered[start:start + batch]
                uids = [r.summary.uid for r in part]
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(queries.UPSERT_SUMMARY,
                                    [queries.summary_values(r.summary) for r in part])
                    cur.executemany(queries.UPSERT_DETAIL,
                                    [queries.detail_values(r.summary.uid, r.detail)
                                     for r in part])
                    cur.execute(queries.DELETE_LABELS, (uids,))
                    cur.execute(queries.INSERT_LABELS, (uids,))
        return len(ordered)

    def get(self, namespace: str | None, name_or_uid: str) -> ArchiveRow | None:
        """The newest archived run of the name in the namespace, or the run with that uid."""
        record = self._one(queries.get_statement(namespace, name_or_uid))
        return queries.row_from_record(record) if record is not None else None

    def list(self, namespace: str | None = None, phase: str | None = None,
             since: dt.datetime | None = None, label_selector: str = "", limit: int = 50,
             after: str | None = None) -> tuple[builtins.list[Summary], str | None]:
        """One page, newest first, and the cursor of the next (None: this was the last).
        SelectorError, CursorError (both ValueError): a bad selector or cursor."""
        return self.page(ListQuery(namespace=namespace, phase=phase, since=since,
                                   labels=parse_selector(label_selector), limit=limit,
                                   after=Cursor.decode(after) if after else None))

    def page(self, q: ListQuery) -> tuple[builtins.list[Summary], str | None]:
        """The page `q` asks for (filters.list_query reads one from a user's input), newest
        first, and the cursor of the next (None: this was the last)."""
        with self.pool.connection() as conn:
            statement = queries.list_statement(q, choose_driver(conn, q))
            records = conn.execute(statement.sql, statement.params).fetchall()
        page = [queries.summary_from_record(r) for r in records[:q.limit]]
        more = len(records) > q.limit
        return page, (Cursor(page[-1].finished, page[-1].uid).encode() if more else None)

    def estimate(self, namespace: str | None = None, phase: str | None = None) -> int:
        """About how many rows (from the statistics ANALYZE keeps; never counted)."""
        record = self._one(queries.estimate_statement(namespace, phase))
        return queries.planned_rows(record[0]) if record is not None else 0

    def namespaces(self) -> builtins.list[str]:
        with self.pool.connection() as conn:
            return [str(r[0]) for r in conn.execute(queries.NAMESPACES).fetchall()]

    def apply_retention(self, policies: Sequence[RetentionPolicy], now: dt.datetime,
                        batch: int = 1000) -> Mapping[str, int]:
        """Deletes what the policies do not keep, `batch` rows to a transaction (each holds its
        row locks briefly; lists and writes go on between batches). Rows deleted by namespace."""
        namespaces = self.namespaces() if needs_namespaces(policies) else []
        deleted: dict[str, int] = {}
        with self.pool.connection() as conn:
            for ns, policy in sorted(by_namespace(policies, namespaces).items()):
                n = 0
                if (cutoff := policy.cutoff(now)) is not None:
                    n += _drain(conn, queries.delete_older_statement(ns, cutoff, batch), batch)
                if policy.max_rows is not None:
                    keep = queries.keep_newest_statement(ns, policy.max_rows)
                    found = conn.execute(keep.sql, keep.params).fetchone()
                    if found is not None:
                        last = Cursor(found[0], found[1])
                        n += _drain(conn, queries.delete_through_statement(ns, last, batch),
                                    batch)
                if n:
                    deleted[ns] = n
        return deleted

    def _one(self, statement: Statement) -> TupleRow | None:
        with self.pool.connection() as conn:
            return conn.execute(statement.sql, statement.params).fetchone()


def choose_driver(conn: Connection, q: ListQuery) -> Requirement | None:
    """The label requirement to read the page by: the only one, or the one with the fewest
    rows by the planner's estimate (walking the rarest label stops soonest)."""
    candidates = queries.drivers(q.labels)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None

    def rows(r: Requirement) -> int:
        total = 0
        for value in r.values:
            s = queries.driver_estimate_statement(q.namespace, r.key, value)
            record = conn.execute(s.sql, s.params).fetchone()
            total += queries.planned_rows(record[0]) if record is not None else 0
        return total

    return min(candidates, key=rows)


def _drain(conn: Connection, statement: Statement, batch: int) -> int:
    """Runs a batch delete (its own transaction: the connection is in autocommit) until one
    deletes less than a full batch; returns the rows deleted."""
    total = 0
    while True:
        n = conn.execute(statement.sql, statement.params).rowcount
        total += n
        if n < batch:
            return total
