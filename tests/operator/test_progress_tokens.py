"""The namespaces' progress-token Secrets: one a namespace (by uid), named after the master key,
holding the namespace's token, owned by the chart's ClusterRole; created before the first stage
Job there, and again a while later or for a namespace made again; the stage pods read it by
reference. The calls are the API wrapper's, recorded: the real API server's side is
tests/e2e/test_operator.py::test_only_its_own_videojobs_workers_can_report_its_progress."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from videojob_common.progress_auth import (
    SECRET_KEY,
    TOKEN_ENV,
    namespace_token,
    secret_name,
)
from videojob_operator.api import VideoJobSpec
from videojob_operator.config import LiveConfig, OperatorConfig, effective
from videojob_operator.controller import (
    TOKEN_SECRET_SECONDS,
    Controller,
    RefusedWrite,
    token_secret_due,
)
from videojob_operator.jobs import stage_job, token_secret

MASTER = b"the operator's master key"
OWNER = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "vj",
          "uid": "role-uid"}]


class Recorded:
    """The controller's API calls, answered as `answer` says."""

    def __init__(self, answer: ApiException | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answer = answer

    async def call(self, fn: Any, *args: Any, **_: Any) -> Any:
        self.calls.append((fn.__name__, args))
        await asyncio.sleep(0.01)  # a request takes a while: others come meanwhile
        if self.answer is not None:
            raise self.answer
        return {}


def controller(redis: str | None = "redis://r:6379/0",
               answer: ApiException | None = None) -> tuple[Controller, Recorded]:
    c = Controller(LiveConfig(OperatorConfig(redis_url=redis)), client.ApiClient(),
                   progress_key=MASTER)
    recorded = Recorded(answer)
    c.api.call = recorded.call  # type: ignore[method-assign]

    async def owners() -> list[Any]:
        return OWNER

    c.admitter.owner_references = owners  # type: ignore[method-assign]
    c.store.namespace_uids["team-a"] = "uid-1"
    return c, recorded


def test_a_secret_is_due_once_per_namespace_uid_and_again_after_a_while() -> None:
    assert token_secret_due(None, "uid-1", 0.0)
    assert not token_secret_due(("uid-1", 10.0), "uid-1", 10.0 + TOKEN_SECRET_SECONDS - 1)
    assert token_secret_due(("uid-1", 10.0), "uid-1", 10.0 + TOKEN_SECRET_SECONDS)
    assert token_secret_due(("uid-1", 10.0), "uid-2", 11.0)  # deleted and made again


def test_one_secret_per_namespace_with_its_token_named_after_the_key() -> None:
    c, recorded = controller()

    async def run() -> None:
        # Ten VideoJobs' first stages in team-a at once, then three more.
        await asyncio.gather(*[c._write_token("team-a") for _ in range(10)])
        for _ in range(3):
            await c._write_token("team-a")
        await c._write_token("team-b")  # not yet seen on the namespaces' watch: none for now

    asyncio.run(run())
    assert recorded.calls == [("create_secret", ("team-a", token_secret(
        "team-a", secret_name(MASTER), namespace_token(MASTER, "team-a", "uid-1"), OWNER)))]
    manifest = recorded.calls[0][1][1]
    assert manifest["immutable"] is True and manifest["metadata"]["ownerReferences"] == OWNER
    assert manifest["stringData"] == {SECRET_KEY: namespace_token(MASTER, "team-a", "uid-1")}
    # team-a deleted and made again (a new uid): a new token, in a new Secret.
    c.store.namespace_uids["team-a"] = "uid-2"
    asyncio.run(c._write_token("team-a"))
    assert recorded.calls[-1][1][1]["stringData"] == {
        SECRET_KEY: namespace_token(MASTER, "team-a", "uid-2")}
    assert len(recorded.calls) == 2


def test_a_secret_already_there_counts_and_a_refusal_says_what_was_refused() -> None:
    c, recorded = controller(answer=ApiException(status=409))
    asyncio.run(c._write_token("team-a"))
    asyncio.run(c._write_token("team-a"))
    assert len(recorded.calls) == 1  # written before a restart: taken as there
    c, recorded = controller(answer=ApiException(status=403))
    with pytest.raises(RefusedWrite, match="progress-token Secret"):
        asyncio.run(c._write_token("team-a"))
    c, recorded = controller(redis=None)
    asyncio.run(c._write_token("team-a"))
    assert recorded.calls == []  # no Redis, no reports to sign


def pod_env(progress_secret: str) -> dict[str, Any]:
    spec = VideoJobSpec.model_validate({"prompt": "x"})
    job = stage_job(namespace="team-a", videojob="clip", uid="u", stage="keyframes",  # type: ignore[arg-type]
                    spec=spec, eff=effective(spec, OperatorConfig(), "team-a", "clip", "u"),
                    pool="gpu", now="2026-01-01T12:00:00.000000Z", redis_url="redis://r:6379/0",
                    service_account="worker", extra_env={}, progress_secret=progress_secret)
    return {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_stage_pods_read_the_namespaces_secret_by_reference() -> None:
    assert TOKEN_ENV not in pod_env("")  # no Secret named: the reports go unsigned
    name = secret_name(MASTER)
    env = pod_env(name)
    assert env[TOKEN_ENV] == {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
        "name": name, "key": SECRET_KEY, "optional": True}}}
