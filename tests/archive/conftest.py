"""A real PostgreSQL for the archive's tests: one server for the session (started on a free port
on 127.0.0.1, stopped and removed after), and a fresh database for each test that asks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from videojob_testkit.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def archive_dsn(postgres: PostgresServer) -> Iterator[str]:
    """The DSN of an empty database, dropped after the test."""
    name = f"archive_{uuid.uuid4().hex[:12]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)
