"""Fixtures for the operator's e2e tests: the CRDs applied from crds/, a real redis-server and
the operator running as its own process against the test cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from videojob_testkit import REPO
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import RedisServer, free_port
from videojob_testkit.real_worker import OVERRIDES, World


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def operator(cluster: Cluster, crds: None, redis_server: RedisServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    # Not under /tmp: stage pods mount an emptyDir there, which hides the host's /tmp from them
    # (as it would in a container), and they write the ledger and artifacts here.
    workdir = REPO / ".cluster" / "e2e" / f"operator-{uuid.uuid4().hex[:8]}"
    # Pools can be changed at run time through this ConfigMap (test_queue.py).
    op = Operator(cluster=cluster, workdir=workdir, redis_url=redis_server.url,
                  env={"VIDEOJOB_CONFIGMAP": "default/videojob-e2e-config"})
    op.start()
    yield op
    op.finish()


@pytest.fixture(scope="module")
def real_worker(cluster: Cluster, crds: None, redis_server: RedisServer,
                operator: Operator) -> Iterator[World]:
    """An operator of its own whose stage pods run the real worker, with the cache on, for one
    test module; its namespaces deleted afterwards."""
    operator.stop()  # one operator at a time; the next test that needs it starts it again
    workdir = REPO / ".cluster" / "e2e" / f"real-{uuid.uuid4().hex[:6]}"
    op = Operator(cluster=cluster, workdir=workdir, redis_url=redis_server.url,
                  overrides=dict(OVERRIDES))
    world = World(cluster=cluster, operator=op, root=workdir / "artifacts", namespaces=[])
    try:
        op.start()
        yield world
    finally:
        op.stop()
        for ns in world.namespaces:
            cluster.core.delete_namespace(ns, propagation_policy="Background")
    op.finish()


@pytest.fixture
def running_operator(operator: Operator) -> Operator:
    """The session's operator, restarted if an earlier test stopped it."""
    if operator.proc is None or operator.proc.poll() is not None:
        operator.start()
    return operator


@pytest.fixture
def no_session_operator(operator: Operator) -> None:
    """Only the operator under test runs meanwhile (two operators must never share VideoJobs or
    pools); the next test that needs the session's operator starts it again."""
    operator.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Records whether a test's body failed, for fixtures that keep evidence when it did."""
    from videojob_testkit.faults import FAILED

    outcome = yield
    if call.when == "call":
        item.stash[FAILED] = outcome.get_result().failed


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's figures, when fault scenarios ran."""
    from videojob_testkit.faults import REPORT, REPORT_FILE, save_report

    if not REPORT:
        return
    save_report()
    terminalreporter.section("fault suite")
    columns = ("scenario", "videojobs", "faults", "lost", "duplicated", "orphaned", "stuck")
    terminalreporter.write_line("  ".join(columns))
    for f in REPORT:
        terminalreporter.write_line("  ".join(str(getattr(f, c)) for c in columns))
    for f in REPORT:
        if f.extra:
            terminalreporter.write_line(f"{f.scenario}: " + ", ".join(
                f"{k} {v:g}" for k, v in f.extra.items()))
    total = {c: sum(getattr(f, c) for f in REPORT) for c in columns[1:]}
    terminalreporter.write_line("total  " + "  ".join(str(total[c]) for c in columns[1:]))
    terminalreporter.write_line(f"(written to {REPORT_FILE})")
