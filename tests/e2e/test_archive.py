"""The archive end to end: the operator as its own process against the real API server, a real
PostgreSQL (videojob_testkit.postgres, on 127.0.0.1), stage pods run by the node agent with the
scripted worker (GPU stages on its GPU node, so GPU-seconds are real pod times).

- VideoJobs that succeed, fail and are cancelled are each archived once, with their stages and
  GPU-seconds, and the GPU-seconds in status are what the pods' own timestamps say;
- one deleted by ttlSecondsAfterFinished is still in the archive (and was not deleted before);
- PostgreSQL stopped while 20 VideoJobs finish, then started again: all 20 archived, once each;
- the operator SIGKILLed between a row's commit and its annotation (the API server refuses the
  annotation meanwhile, by a ValidatingAdmissionPolicy): after a restart, still one row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from videojob_common.archive.rows import row
from videojob_common.archive.store import Archive
from videojob_operator.api import GROUP, PLURAL, VERSION
from videojob_operator.archiving import ANNOTATION_ARCHIVED
from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.postgres import PostgresServer
from videojob_testkit.processes import RedisServer, wait_until

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64", "scenes": 2}
GPU = "nvidia.com/gpu"


@dataclass
class World:
    namespace: str
    postgres: PostgresServer
    dsn: str
    operator: Operator
    expiring: str  # a namespace whose rows the operator's retention keeps 30 days


@pytest.fixture(scope="module")
def world(cluster: Cluster, crds: None, redis_server: RedisServer,
          operator: Operator) -> Iterator[World]:
    operator.stop()  # one operator at a time; the next test that needs it starts it again
    suffix = uuid.uuid4().hex[:6]
    namespace = f"archive-{suffix}"
    postgres = PostgresServer()
    postgres.start()
    dsn = postgres.create_database("archive")
    workdir = REPO / ".cluster" / "e2e" / f"archive-{suffix}"
    expiring = f"expiring-{suffix}"
    op = Operator(cluster=cluster, workdir=workdir, redis_url=redis_server.url,
                  env={"VIDEOJOB_ARCHIVE_DSN": dsn},
                  overrides={"archive": {
                      "hold_seconds": 120, "retention_interval_seconds": 1,
                      "retention": [{"namespace": expiring, "max_age_days": 30}]}})
    try:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=namespace)))
        op.start()
        yield World(namespace=namespace, postgres=postgres, dsn=dsn, operator=op,
                    expiring=expiring)
    finally:
        op.stop()
        cluster.core.delete_namespace(namespace, propagation_policy="Background")
        postgres.stop()
    log = op.finish()
    assert postgres.password not in log


def rows(world: World, *names: str) -> list[tuple[Any, ...]]:
    """(uid, name, phase, reason, gpu_seconds) of the namespace's archived VideoJobs."""
    with psycopg.connect(world.dsn) as conn:
        return conn.execute(
            "SELECT uid::text, name, phase, reason, gpu_seconds FROM videojob_archive "
            "WHERE namespace = %s AND (cardinality(%s::text[]) = 0 OR name = ANY(%s)) "
            "ORDER BY name", (world.namespace, list(names), list(names))).fetchall()


def stages_of(world: World, uid: str) -> list[dict[str, Any]]:
    with psycopg.connect(world.dsn) as conn:
        record = conn.execute("SELECT stages FROM videojob_archive_detail WHERE uid = %s",
                              (uid,)).fetchone()
    assert record is not None
    stages: list[dict[str, Any]] = record[0]
    return stages


def archived_mark(vj: dict[str, Any]) -> str | None:
    return ((vj["metadata"].get("annotations") or {}).get(ANNOTATION_ARCHIVED))


def finished(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The VideoJob once it ended and the archive's annotation is on it."""
    return vjs.wait(cluster, namespace, name,
                    lambda vj: (vj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                    and archived_mark(vj) is not None, timeout=180,
                    what=f"VideoJob {name} finished and archived")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pod_gpu_seconds(cluster: Cluster, namespace: str, uid: str) -> dict[str, float]:
    """GPU-seconds by stage, straight from the pods' own timestamps and GPU limits: startTime
    to the worker container's finishedAt, times its nvidia.com/gpu limit."""
    out: dict[str, float] = {}
    for pod in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"videojob.dev/uid={uid}").items:
        gpus = sum(int((c.resources.limits or {}).get(GPU, 0)) for c in pod.spec.containers)
        ends = [c.state.terminated.finished_at for c in pod.status.container_statuses or []
                if c.state and c.state.terminated]
        if not gpus or not pod.status.start_time or not ends:
            continue
        stage = pod.metadata.labels["videojob.dev/stage"]
        seconds = (max(ends) - pod.status.start_time).total_seconds() * gpus
        out[stage] = out.get(stage, 0.0) + seconds
    return out


def test_succeeded_failed_and_cancelled_are_each_archived_once_with_gpu_seconds(
        cluster: Cluster, world: World) -> None:
    ns = world.namespace
    vjs.create(cluster, ns, "ok", prompt="sleep:keyframes:1.5 sleep:segments:2", **FAST)
    vjs.create(cluster, ns, "broken", prompt="fail:segments:permanent", **FAST)
    vjs.create(cluster, ns, "cancelled", prompt="sleep:plan:60", **FAST)
    ok = finished(cluster, ns, "ok")
    broken = finished(cluster, ns, "broken")
    assert ok["status"]["phase"] == "Succeeded" and broken["status"]["phase"] == "Failed"

    # GPU-seconds in status are the pods' own times by their GPUs, stage by stage.
    expected = pod_gpu_seconds(cluster, ns, ok["metadata"]["uid"])
    assert expected.get("segments", 0) >= 2 * 2  # two scenes of 2 s, one GPU each at least
    shown = {s["name"]: s.get("gpuSeconds", 0) for s in ok["status"]["stages"]}
    for stage, seconds in expected.items():
        assert shown[stage] == pytest.approx(seconds, abs=0.01), (stage, shown, expected)
    assert ok["status"]["gpuSeconds"] == pytest.approx(sum(expected.values()), abs=0.01)

    wait_until(lambda: vjs.get(cluster, ns, "cancelled")["status"].get("phase") == "Running",
               60, "the cancelled one to run")
    uid_cancelled = vjs.get(cluster, ns, "cancelled")["metadata"]["uid"]
    vjs.delete(cluster, ns, "cancelled")
    wait_until(lambda: not _exists(cluster, ns, "cancelled"), 120, "the cancelled one gone")

    archived = {r[1]: r for r in rows(world)}
    assert set(archived) >= {"ok", "broken", "cancelled"}
    assert len(rows(world, "ok", "broken", "cancelled")) == 3  # once each
    assert archived["ok"][0] == ok["metadata"]["uid"] and archived["ok"][2] == "Succeeded"
    assert archived["ok"][4] == pytest.approx(ok["status"]["gpuSeconds"], abs=0.01)
    assert archived["broken"][2:4] == ("Failed", broken["status"]["reason"])
    assert archived["cancelled"][0] == uid_cancelled
    assert archived["cancelled"][2:4] == ("Cancelled", "Deleted")
    stages = {s["name"]: s for s in stages_of(world, archived["ok"][0])}
    assert [s["phase"] for s in stages.values()] == ["Succeeded"] * 5
    assert stages["segments"]["gpuSeconds"] == pytest.approx(expected["segments"], abs=0.01)
    assert len(stages["segments"]["pods"]) == 2
    assert {p["index"] for p in stages["segments"]["pods"]} == {0, 1}
    failed_stages = {s["name"]: s["phase"] for s in stages_of(world, archived["broken"][0])}
    assert failed_stages["segments"] == "Failed"


def _exists(cluster: Cluster, namespace: str, name: str) -> bool:
    try:
        vjs.get(cluster, namespace, name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_a_videojob_deleted_by_ttl_was_archived_first(cluster: Cluster, world: World) -> None:
    ns = world.namespace
    vjs.create(cluster, ns, "brief", prompt="a lighthouse", ttlSecondsAfterFinished=1, **FAST)
    uid = vjs.get(cluster, ns, "brief")["metadata"]["uid"]
    wait_until(lambda: not _exists(cluster, ns, "brief"), 180, "the TTL to delete it")
    (row,) = rows(world, "brief")
    assert row[0] == uid and row[2] == "Succeeded"


def test_postgres_down_while_20_finish_then_back_all_archived_once(
        cluster: Cluster, world: World) -> None:
    ns = world.namespace
    names = [f"burst-{i:02d}" for i in range(20)]
    world.postgres.halt()
    try:
        for name in names:
            vjs.create(cluster, ns, name, prompt="a lighthouse", **{**FAST, "scenes": 1})
        done = [vjs.wait(cluster, ns, name, vjs.phase_is("Succeeded"), timeout=300)
                for name in names]
        # Finished while the database was down: none is marked archived (a mark is only set
        # after the row's commit).
        assert not any(archived_mark(vjs.get(cluster, ns, n)) for n in names)
    finally:
        world.postgres.resume()
    for name in names:
        finished(cluster, ns, name)
    archived = rows(world, *names)
    assert [r[1] for r in archived] == names  # every one, once
    assert {r[0] for r in archived} == {vj["metadata"]["uid"] for vj in done}


POLICY = "videojob-archive-refuse-mark"


def refuse_marks(cluster: Cluster, namespace: str) -> None:
    """A ValidatingAdmissionPolicy that refuses any VideoJob write in `namespace` that sets the
    archive's annotation: the window between a row's commit and its mark, held open."""
    docs = [
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicy", "metadata": {"name": POLICY},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{
                      "apiGroups": ["videojob.dev"], "apiVersions": ["*"],
                      "operations": ["UPDATE"], "resources": ["videojobs"]}]},
                  "validations": [{
                      "expression": f"!has(object.metadata.annotations) || "
                                    f"!('{ANNOTATION_ARCHIVED}' in object.metadata.annotations)",
                      "message": "the test holds the archive's mark back"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": POLICY},
         "spec": {"policyName": POLICY, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": namespace}}}}}]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def mark_refused(cluster: Cluster, namespace: str, name: str) -> bool:
    """Whether the API server refuses the mark now (asked with a server-side dry run)."""
    try:
        vjs.custom(cluster).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name,
            {"metadata": {"annotations": {ANNOTATION_ARCHIVED: "probe"}}}, dry_run="All")
    except ApiException as e:
        if e.status in (400, 403, 422):
            return True
        raise
    return False


def test_sigkill_between_the_commit_and_the_mark_leaves_one_row(
        cluster: Cluster, world: World) -> None:
    ns = world.namespace
    vjs.create(cluster, ns, "marker", prompt="a lighthouse", **FAST)
    refuse_marks(cluster, ns)
    try:
        wait_until(lambda: mark_refused(cluster, ns, "marker"), 30, "the policy to refuse marks")
        done = vjs.wait(cluster, ns, "marker", vjs.phase_is("Succeeded"), timeout=180)
        uid = done["metadata"]["uid"]
        wait_until(lambda: [r[0] for r in rows(world, "marker")] == [uid], 60,
                   "the row's commit")
        wait_until(lambda: world.operator.metrics().get("videojob_archive_errors_total", 0) > 0,
                   30, "the mark to be refused")
        assert archived_mark(vjs.get(cluster, ns, "marker")) is None
        world.operator.kill()  # committed, not marked
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy",
                        POLICY, "--ignore-not-found")
    wait_until(lambda: not mark_refused(cluster, ns, "marker"), 30, "marks to pass again")
    world.operator.start()
    vj = finished(cluster, ns, "marker")
    assert vj["metadata"]["uid"] == uid
    assert [(r[0], r[2]) for r in rows(world, "marker")] == [(uid, "Succeeded")]


def test_retention_removes_what_the_administrator_keeps_no_longer(world: World) -> None:
    """The operator applies `archive.retention` on its schedule: rows of the expiring namespace
    older than 30 days go, newer ones and every other namespace's stay."""
    now = dt.datetime.now(dt.UTC)

    def finished(name: str, days_ago: float) -> Any:
        done = (now - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return row({"metadata": {"uid": str(uuid.uuid4()), "namespace": world.expiring,
                                 "name": name, "creationTimestamp": done},
                    "spec": {"prompt": "x"},
                    "status": {"phase": "Succeeded", "completionTime": done}}, [], now)

    with Archive(world.dsn) as archive:
        archive.upsert([finished(f"old-{i}", 400 + i) for i in range(5)]
                       + [finished(f"new-{i}", 1) for i in range(2)])
    wait_until(lambda: [r[1] for r in _rows_in(world, world.expiring)] == ["new-0", "new-1"],
               30, "retention to remove the old rows")
    assert rows(world)  # the test namespace's rows (no policy of their own) are all there
    assert world.operator.metrics().get("videojob_archive_rows_expired_total", 0) >= 5


def _rows_in(world: World, namespace: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(world.dsn) as conn:
        return conn.execute("SELECT uid::text, name FROM videojob_archive WHERE namespace = %s "
                            "ORDER BY name", (namespace,)).fetchall()
