"""The history routes against the real API server (RBAC, as conftest.py's callers have it) and a
real PostgreSQL (tests/conftest.py), the rows built and written by the data layer itself. None of
the archived VideoJobs exists in the cluster: the archive is where they are now.

A gateway of its own runs with `VIDEOJOB_ARCHIVE_DSN`; conftest.py's (`world.gateway`) has
none, and says so.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from videojob_common.archive.rows import row
from videojob_common.archive.store import Archive
from videojob_gateway.config import ARCHIVE_DSN_ENV
from videojob_testkit.finished import T0, run_pods, videojob
from videojob_testkit.gateway_process import GatewayProcess, GatewayWorld
from videojob_testkit.postgres import PostgresServer

pytestmark = pytest.mark.e2e


@dataclass
class Archived:
    gateway: GatewayProcess
    a: list[str]  # uids of namespace a's rows, newest first
    b: str  # the one row of namespace b
    names: dict[str, str]  # uid → name


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status and doc["title"] and doc["detail"], doc
    return doc


@pytest.fixture(scope="module")
def archived(world: GatewayWorld, postgres: PostgresServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    """Five runs in namespace a (the oldest failed, two labelled tier=gold), one in b."""
    database = f"history_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(database)
    names: dict[str, str] = {}
    rows = []
    for i, (ns, name, phase, labels) in enumerate([
            (world.a, "broken", "Failed", {"tier": "silver"}),
            (world.a, "teaser", "Succeeded", {"tier": "silver"}),
            (world.a, "trailer", "Succeeded", {"tier": "gold"}),
            (world.a, "teaser", "Succeeded", {"tier": "gold"}),  # the same name, run again
            (world.a, "promo", "Succeeded", {"tier": "silver"}),
            (world.b, "secret-project", "Succeeded", {"tier": "gold"})]):
        uid = str(uuid.uuid4())
        names[uid] = name
        obj = videojob(phase, uid=uid, name=name, namespace=ns, labels=labels,
                       t0=T0 + dt.timedelta(minutes=10 * i))
        rows.append(row(obj, run_pods(uid), T0 + dt.timedelta(days=1)))
    with Archive(dsn) as archive:
        archive.migrate()
        archive.upsert(rows)
        with archive.pool.connection() as conn:
            conn.execute("ANALYZE")
    gateway = GatewayProcess(
        kubeconfig=world.gateway_kubeconfig,
        log=tmp_path_factory.mktemp("history") / "gateway.log",
        args=["--auth-modes", "token,key", "--key-namespace", world.system])
    try:
        with pytest.MonkeyPatch.context() as env:  # the gateway process inherits it
            env.setenv(ARCHIVE_DSN_ENV, dsn)
            gateway.start()
        a = [r.summary.uid for r in rows if r.summary.namespace == world.a][::-1]
        b = next(r.summary.uid for r in rows if r.summary.namespace == world.b)
        yield Archived(gateway, a, b, names)
    finally:
        gateway.stop()
        postgres.drop_database(database)
    log = gateway.log.read_text()
    assert "Traceback" not in log, log[-5000:]
    assert postgres.password not in log  # the DSN's password is nowhere in the gateway's log


def history(world: GatewayWorld, ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/history"


def test_a_reader_pages_through_the_namespaces_history(
        world: GatewayWorld, archived: Archived) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    with archived.gateway.client(token=world.tokens["reader"]) as reader:
        for _ in range(5):
            resp = reader.get(history(world, world.a), params=params)
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            assert doc["estimatedTotal"] == 5  # the planner's figure (fresh statistics)
            seen += [item["uid"] for item in doc["items"]]
            if not doc["continue"]:
                break
            params["continue"] = doc["continue"]
    assert seen == archived.a
    first = next(i for i in doc["items"] if i["name"] == "broken")
    assert (first["phase"], first["gpuSeconds"], first["namespace"]) == (
        "Failed", 1060.0, world.a)


def test_filters_narrow_the_page(world: GatewayWorld, archived: Archived) -> None:
    with archived.gateway.client(token=world.tokens["reader"]) as reader:
        gold = reader.get(history(world, world.a), params={"labelSelector": "tier=gold"}).json()
        assert [i["name"] for i in gold["items"]] == ["teaser", "trailer"]
        failed = reader.get(history(world, world.a), params={"phase": "Failed"}).json()
        assert [i["name"] for i in failed["items"]] == ["broken"]
        assert failed["estimatedTotal"] == 1
        since = (T0 + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        recent = reader.get(history(world, world.a), params={"since": since}).json()
        assert [i["name"] for i in recent["items"]] == ["promo", "teaser"]


def test_one_run_by_name_is_the_newest_and_by_uid_any(
        world: GatewayWorld, archived: Archived) -> None:
    with archived.gateway.client(token=world.tokens["reader"]) as reader:
        newest = reader.get(f"{history(world, world.a)}/teaser")
        assert newest.status_code == 200, newest.text
        doc = newest.json()
        assert doc["uid"] == archived.a[1] and doc["labels"] == {"tier": "gold"}
        assert [s["name"] for s in doc["stages"]] == [
            "plan", "keyframes", "segments", "stitch", "publish"]
        segments = doc["stages"][2]
        assert segments["gpuSeconds"] == 940.0 and len(segments["pods"]) == 4
        assert sum(s["gpuSeconds"] for s in doc["stages"]) == doc["gpuSeconds"]
        assert "s3cr3t" not in newest.text  # the spec's signed URL, redacted when archived
        older = archived.a[3]
        assert archived.names[older] == "teaser"
        by_uid = reader.get(f"{history(world, world.a)}/{older}")
        assert by_uid.status_code == 200 and by_uid.json()["uid"] == older
        problem(reader.get(f"{history(world, world.a)}/never-ran"), 404)
        # b's uid, asked for in a: not found there, whoever may read a.
        problem(reader.get(f"{history(world, world.a)}/{archived.b}"), 404)


def test_a_tenant_of_a_cannot_read_bs_history(world: GatewayWorld, archived: Archived) -> None:
    b = history(world, world.b)
    with archived.gateway.client(token=world.tokens["reader"]) as reader:
        doc = problem(reader.get(b), 403)
        assert "list videojobs in namespace " + world.b in doc["detail"]
        problem(reader.get(f"{b}/secret-project"), 403)
        problem(reader.get(f"{b}/{archived.b}"), 403)
        problem(reader.get(f"{b}/does-not-exist"), 403)  # 403 before 404: nothing leaks
    with archived.gateway.client(api_key=world.api_key) as key:  # acts in a only
        assert key.get(history(world, world.a)).status_code == 200
        problem(key.get(b), 403)
    with archived.gateway.client(token=world.tokens["auditor"]) as auditor:  # every namespace
        assert [i["uid"] for i in auditor.get(b).json()["items"]] == [archived.b]
    with archived.gateway.client() as anonymous:
        problem(anonymous.get(history(world, world.a)), 401)


@pytest.mark.parametrize(("params", "parameter"), [
    ({"labelSelector": "tier in gold"}, "labelSelector"),
    ({"since": "last week"}, "since"),
    ({"continue": "not-a-cursor"}, "continue"),
    ({"phase": "Running"}, "phase"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
])
def test_bad_filters_are_400_naming_the_parameter(
        world: GatewayWorld, archived: Archived, params: dict[str, str], parameter: str) -> None:
    with archived.gateway.client(token=world.tokens["reader"]) as reader:
        doc = problem(reader.get(history(world, world.a), params=params), 400)
        assert [e["field"] for e in doc["errors"]] == [parameter], doc


def test_a_gateway_without_an_archive_says_so(world: GatewayWorld) -> None:
    with world.gateway.client(token=world.tokens["reader"]) as reader:
        doc = problem(reader.get(history(world, world.a)), 503)
        assert doc["type"].endswith("/archive-not-configured")
        assert "VIDEOJOB_ARCHIVE_DSN" in doc["detail"]
        # The caller's rights are still checked first.
        problem(reader.get(history(world, world.b)), 403)


def test_the_openapi_document_describes_history(world: GatewayWorld) -> None:
    doc = httpx.get(f"{world.gateway.url}/api/v1/openapi.json", timeout=10).json()
    page = doc["paths"]["/api/v1/namespaces/{namespace}/history"]["get"]
    assert {p["name"] for p in page["parameters"]} >= {
        "phase", "since", "labelSelector", "limit", "continue"}
    schemas = doc["components"]["schemas"]
    assert {"items", "continue", "estimatedTotal"} <= set(schemas["HistoryPage"]["properties"])
    assert "stages" in schemas["ArchivedRun"]["properties"]
    assert "/api/v1/namespaces/{namespace}/history/{nameOrUid}" in doc["paths"]


def test_a_database_that_does_not_answer_is_503_and_the_rest_of_the_gateway_serves(
        world: GatewayWorld, tmp_path: Path) -> None:
    gateway = GatewayProcess(kubeconfig=world.gateway_kubeconfig, log=tmp_path / "gateway.log",
                             args=["--archive-timeout-seconds", "1"])
    with pytest.MonkeyPatch.context() as env:
        # Nothing listens on port 1: every connection is refused.
        env.setenv(ARCHIVE_DSN_ENV, "host=127.0.0.1 port=1 dbname=archive user=u "
                                    "password=never-logged connect_timeout=1")
        gateway.start()  # starts and is ready: the archive is not waited for
    try:
        with gateway.client(token=world.tokens["reader"]) as reader:
            started = time.monotonic()
            resp = reader.get(history(world, world.a))
            doc = problem(resp, 503)
            assert doc["type"].endswith("/archive-unavailable")
            assert resp.headers["retry-after"] == "5"
            assert time.monotonic() - started < 5
            assert reader.get(f"/api/v1/namespaces/{world.a}/videojobs").status_code == 200
    finally:
        gateway.stop()
    log = gateway.log.read_text()
    assert "never-logged" not in log and "Traceback" not in log
