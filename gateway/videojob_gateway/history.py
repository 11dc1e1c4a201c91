"""The history routes: finished VideoJobs from the PostgreSQL archive (docs/history.md), deleted
ones included, for callers RBAC lets read VideoJobs in the namespace. Thin adapters, like
app.py's: authenticate → authorise (a SubjectAccessReview for the caller: `list videojobs` in
the namespace for a page, `get` for one run) → the filters (videojob_common.archive.filters,
the kubectl plugin's too) → the archive's queries.

The archive is read with the gateway's own DSN (`VIDEOJOB_ARCHIVE_DSN`), as files are read with
its own storage credentials: the review is the check, and every query is bound to the one
namespace it allowed.

psycopg is blocking. The queries run in a thread pool of their own, as many threads as the
connection pool has connections, so a burst of history requests waits in that queue without
holding the threads that storage (files.py) runs on, and never blocks the event loop. (Not
psycopg's AsyncConnectionPool: the archive's queries have one implementation, store.py, shared
with the operator and the plugin and tested once; a page is one or two index reads of well
under a millisecond, so a thread hop costs nothing that matters.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from videojob_common.archive import documents
from videojob_common.archive.documents import ArchivedRun, HistoryPage
from videojob_common.archive.filters import FilterError, Filters, list_query

from . import problems
from .api import PREFIX
from .auth import Access, Authorizer
from .callers import Who
from .config import Settings
from .problems import FieldError, Problem

if TYPE_CHECKING:
    from videojob_common.archive.store import Archive

HISTORY = f"{PREFIX}/namespaces/{{namespace}}/history"
RUN = HISTORY + "/{nameOrUid}"
# The query parameter each filter is given by (FilterError names filters generically).
PARAMETERS = {"phase": "phase", "since": "since", "selector": "labelSelector",
              "limit": "limit", "continue": "continue"}
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class History:
    """What the history routes use, built once in create_app; `archive` None: no DSN."""

    authz: Authorizer
    archive: Archive | None
    executor: ThreadPoolExecutor | None = None
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def build(cls, settings: Settings, authz: Authorizer) -> History:
        if settings.archive_dsn is None:
            return cls(authz, None)
        from videojob_common.archive.store import Archive

        size = settings.archive_pool_size
        archive = Archive(settings.archive_dsn.get_secret_value(), min_size=1, max_size=size,
                          application_name="videojob-gateway",
                          timeout=settings.archive_timeout_seconds,
                          statement_timeout=settings.archive_statement_timeout_seconds)
        return cls(authz, archive, ThreadPoolExecutor(size, thread_name_prefix="archive"))

    async def start(self) -> None:
        if self.archive is not None:
            # In the background: a database that is down delays no other route (history
            # requests answer 503 until it is up).
            await asyncio.to_thread(self.archive.open, wait=False)

    async def close(self) -> None:
        if self.archive is not None:
            await asyncio.to_thread(self.archive.close)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, query: Callable[[Archive], T]) -> T:
        """`query` on the archive, in the archive's threads; its failures as problems."""
        archive = self.archive
        if archive is None or self.executor is None:
            raise Problem(503, "archive-not-configured", "No archive",
                          "this gateway has no archive (VIDEOJOB_ARCHIVE_DSN is not set): it "
                          "serves no history")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, query, archive)
        except Exception as e:
            raise database_problem(e) from None


def database_problem(e: Exception) -> Problem:
    """A failed query as the client's problem document; the cause goes to the log only (it may
    name the database's host and user)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    if isinstance(e, PoolTimeout | psycopg.OperationalError):
        log.error("the archive is unreachable: %s", e)
        return Problem(503, "archive-unavailable", "Archive unavailable",
                       "the archive's database does not answer; try again later",
                       headers={"Retry-After": "5"})
    if isinstance(e, psycopg.errors.UndefinedTable):
        log.error("the archive has no tables (the operator creates them at start): %s", e)
        return Problem(503, "archive-unavailable", "Archive unavailable",
                       "the archive's tables do not exist yet", headers={"Retry-After": "30"})
    if isinstance(e, psycopg.Error):
        log.error("an archive query failed: %s", e)
        return Problem(502, "archive-error", "Archive error",
                       "the archive's database failed the query; the gateway's log says why")
    raise e


def filter_problem(e: FilterError) -> Problem:
    name = PARAMETERS.get(e.filter, e.filter)
    return problems.bad_request("invalid-parameter", "Invalid parameter", e.named(name),
                                [FieldError(name, e.reason)])


def is_uid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def history_of(request: Request) -> History:
    built: History = request.app.state.history
    return built


HistoryOf = Annotated[History, Depends(history_of)]
router = APIRouter()


def json_response(doc: BaseModel) -> Response:
    return Response(doc.model_dump_json(by_alias=True), media_type="application/json")


@router.get(HISTORY, response_model=HistoryPage, tags=["history"],
            summary="Finished VideoJobs from the archive, newest first (deleted ones too)")
async def history_page(
    namespace: str, who: Who, h: HistoryOf,
    phase: Annotated[str | None, Query(description="Succeeded or Failed")] = None,
    since: Annotated[str | None, Query(
        description="Finished since: a duration back from now (30m, 24h, 7d) or an RFC 3339 "
                    "time")] = None,
    label_selector: Annotated[str | None, Query(
        alias="labelSelector",
        description="A Kubernetes label selector (team=a,tier in (gold,silver),!legacy)")] = None,
    limit: Annotated[int | None, Query(description="Page size, 1 to 500 (default 50)")] = None,
    continue_: Annotated[str | None, Query(alias="continue",
                                           description="From the page before")] = None,
) -> Response:
    await h.authz.require(who, Access("list", namespace))
    try:
        q = list_query(Filters(phase=phase, since=since, selector=label_selector or "",
                               limit=limit, after=continue_), namespace, h.clock())
    except FilterError as e:
        raise filter_problem(e) from None

    def read(archive: Archive) -> HistoryPage:
        rows, cursor = archive.page(q)
        return documents.page(rows, cursor, archive.estimate(namespace, q.phase))

    return json_response(await h.run(read))


@router.get(RUN, response_model=ArchivedRun, tags=["history"],
            summary="One archived VideoJob: stages, pods, GPU-seconds (by name: the newest run)")
async def history_run(namespace: str, nameOrUid: str, who: Who, h: HistoryOf) -> Response:
    # By name: `get` that VideoJob. By uid, whose name is not known until the row is read:
    # `get` every VideoJob of the namespace (a caller allowed only some names by resourceNames
    # reads their runs by name).
    name = "" if is_uid(nameOrUid) else nameOrUid
    await h.authz.require(who, Access("get", namespace, name))
    found = await h.run(lambda archive: archive.get(namespace, nameOrUid))
    if found is None:
        raise problems.not_found(f"no archived VideoJob {nameOrUid} in namespace {namespace}")
    return json_response(documents.run(found))
