"""Fixtures shared by the suite: the cluster (local by default), a namespace per test, and a real
PostgreSQL for the archive (tests/archive, the history command and endpoint)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from videojob_testkit import REPO
from videojob_testkit.kube import Cluster, connect, wait_for
from videojob_testkit.postgres import PostgresServer


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("VIDEOJOB_TEST_KUBECONFIG")
    if external:
        yield connect(Path(external), local=False)
        return
    from localcluster import controlplane

    layout = controlplane.Layout(Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster")))
    runtime = controlplane.runtime_from_env()
    was_up = all(controlplane.status(layout).values())
    controlplane.up(layout, runtime=runtime, timeout=300 if runtime == "containerd" else 120)
    yield connect(layout.kubeconfig, local=True, runtime=runtime)
    if not was_up and os.environ.get("VIDEOJOB_KEEP_CLUSTER") != "1":
        controlplane.down(layout)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount ready), deleted afterwards."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower().removeprefix("test_"))[:40]
    name = f"{stem.strip('-')}-{uuid.uuid4().hex[:5]}"
    labels = getattr(request, "param", None) or {}
    cluster.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    wait_for(cluster.core.list_namespaced_service_account, lambda sa: sa.metadata.name == "default",
             namespace=name, timeout=30, what=f"ServiceAccount {name}/default")
    yield name
    cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (a free port on 127.0.0.1), stopped and removed
    after."""
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
