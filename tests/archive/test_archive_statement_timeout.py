"""A reader's Archive (the gateway's, the plugin's) bounds how long a statement runs; the
operator's, which migrates and runs retention's batches, does not."""

from __future__ import annotations

import psycopg
import pytest

from videojob_common.archive.store import Archive


def test_a_readers_statements_are_cut_at_its_timeout_and_the_writers_are_not(
        archive_dsn: str) -> None:
    with Archive(archive_dsn, statement_timeout=0.2) as reader, \
            reader.pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("200ms",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
    with Archive(archive_dsn) as writer, writer.pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
