"""The archive's schema versions: schema/NNNN_name.sql, applied in order, each once, when the
operator (or anything else that opens the archive) starts.

A tiny runner rather than Alembic or yoyo. The schema is plain SQL files, forward only, applied by
one kind of client; what a runner must get right here is small and testable: order, once each,
a transaction per file, and no race when two operator replicas start together. Alembic brings
SQLAlchemy (the archive uses neither its ORM nor its engine) and Python migration scripts
where SQL is wanted; yoyo would do, but adds a dependency to both images for 60 lines of
behaviour we would still need to test. What it does:

- `schema_migrations` records each applied version with the SHA-256 of its file; a file changed
  after it was applied is an error (fix forward with a new file instead);
- each file runs in its own transaction with its version's row, so a failing migration leaves
  nothing half-applied, and the next start retries it;
- every transaction first takes `pg_advisory_xact_lock`: a second replica waits, then sees the
  version recorded and skips it. The lock ends with the transaction, so a crashed replica never
  leaves it held;
- versions in the database that this code does not know (a newer operator ran, then was rolled
  back) are reported, not an error: migrations only add, so older code still works.

A migration that cannot run inside a transaction (CREATE INDEX CONCURRENTLY on a large table) is
not supported yet; it would need a marker in the file and a run outside the transaction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

import psycopg
from psycopg.rows import TupleRow

# pg_advisory_xact_lock's key: any fixed bigint that nothing else in the database uses. This one
# is the first 8 bytes of sha256("videojob.dev/archive"), as a signed integer.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"videojob.dev/archive").digest()[:8], "big",
                          signed=True)
_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[int, ...]  # by this call
    present: tuple[int, ...]  # already there
    unknown: tuple[int, ...]  # in the database, not in this code (a newer version ran)


class MigrationError(RuntimeError):
    pass


def migrations(folder: Traversable | None = None) -> list[Migration]:
    """The migrations in `folder` (default: the package's schema/), by version. Versions must
    run 1, 2, 3... without a gap or a repeat, and every .sql file must be named NNNN_name.sql."""
    root = folder if folder is not None else resources.files(__package__ or "").joinpath(
        "schema")
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _FILE.match(entry.name)
        if m is None:
            raise MigrationError(f"migration {entry.name!r}: name it NNNN_name.sql "
                                 "(four digits, lower case words)")
        found.append(Migration(int(m["version"]), m["name"], entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    expected = list(range(1, len(found) + 1))
    if [mig.version for mig in found] != expected:
        raise MigrationError(f"migration versions must be 1..{len(found)} without a gap or a "
                             f"repeat: {[mig.version for mig in found]}")
    return found


def migrate(conn: psycopg.Connection[TupleRow],
            folder: Traversable | None = None) -> MigrationReport:
    """Applies the migrations the database lacks. `conn` must not be inside a transaction."""
    applied: list[int] = []
    present: list[int] = []
    recorded: dict[int, str] = {}
    for mig in migrations(folder):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(CREATE_TABLE)
            recorded = dict(conn.execute(
                "SELECT version, sha256 FROM schema_migrations").fetchall())
            if mig.version in recorded:
                if recorded[mig.version] != mig.sha256:
                    raise MigrationError(
                        f"migration {mig.version:04d}_{mig.name}.sql changed after it was "
                        "applied; add a new migration instead of editing an applied one")
                present.append(mig.version)
                continue
            conn.execute(mig.sql.encode())  # bytes: run as written, no placeholders
            conn.execute("INSERT INTO schema_migrations (version, name, sha256)"
                         " VALUES (%s, %s, %s)", (mig.version, mig.name, mig.sha256))
            applied.append(mig.version)
    known = set(applied) | set(present)
    return MigrationReport(tuple(applied), tuple(present),
                           tuple(sorted(set(recorded) - known)))
