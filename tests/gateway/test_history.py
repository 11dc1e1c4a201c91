"""The history routes' pure parts (history.py), without a cluster or a database: how bad filters
and database failures become problem documents, and where the archive's DSN is read from."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from videojob_common.archive.filters import FilterError
from videojob_gateway.config import ARCHIVE_DSN_ENV, load
from videojob_gateway.history import database_problem, filter_problem, is_uid

DSN = "host=db.internal dbname=archive user=gateway password=s3cret"


def test_a_bad_filter_is_400_naming_the_query_parameter() -> None:
    problem = filter_problem(FilterError("selector", "tier in gold", "expected KEY, …"))
    assert (problem.status, problem.slug) == (400, "invalid-parameter")
    assert problem.detail == "labelSelector 'tier in gold': expected KEY, …"
    assert [(e.field, e.detail) for e in problem.errors] == [("labelSelector", "expected KEY, …")]
    assert filter_problem(FilterError("continue", "x", "no")).errors[0].field == "continue"


@pytest.mark.parametrize(("error", "status", "slug"), [
    (PoolTimeout("couldn't get a connection after 5.00 sec"), 503, "archive-unavailable"),
    (psycopg.OperationalError("connection to server at \"db.internal\" failed"), 503,
     "archive-unavailable"),
    (psycopg.errors.UndefinedTable("relation \"videojob_archive\" does not exist"), 503,
     "archive-unavailable"),
    # (a statement timeout is an OperationalError too: a 503, try again)
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), 503,
     "archive-unavailable"),
    (psycopg.errors.InsufficientPrivilege("permission denied for table videojob_archive"), 502,
     "archive-error"),
])
def test_database_failures_are_problems_that_name_no_host(error: Exception, status: int,
                                                          slug: str) -> None:
    problem = database_problem(error)
    assert (problem.status, problem.slug) == (status, slug)
    assert "db.internal" not in problem.detail  # the log has the cause, the client does not
    if status == 503:
        assert "Retry-After" in problem.headers


def test_anything_else_is_not_the_databases_fault() -> None:
    with pytest.raises(KeyError):
        database_problem(KeyError("a bug"))


def test_the_dsn_is_read_from_the_operators_variable_only_and_kept_secret() -> None:
    settings = load([], {ARCHIVE_DSN_ENV: DSN, "KUBECONFIG": "/dev/null"})
    assert settings.archive_dsn is not None and settings.archive_dsn.get_secret_value() == DSN
    assert "s3cret" not in repr(settings)
    assert load([], {"KUBECONFIG": "/dev/null"}).archive_dsn is None
    tuned = load(["--archive-pool-size", "8", "--archive-timeout-seconds", "2"],
                 {"KUBECONFIG": "/dev/null"})
    assert (tuned.archive_pool_size, tuned.archive_timeout_seconds) == (8, 2.0)


def test_uids_are_told_from_names() -> None:
    assert is_uid("91ef5dd0-6ae4-463d-9cc2-16fd10377747")
    assert not is_uid("launch-teaser") and not is_uid("91ef5dd06ae4463d9cc216fd10377747")
