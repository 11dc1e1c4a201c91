"""videojob-gateway, run as its own process against the test cluster, and an HTTP client for it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kubernetes import client

from videojob_testkit import REPO
from videojob_testkit.processes import free_port, stop, wait_until


@dataclass
class GatewayProcess:
    """The gateway on 127.0.0.1, with `kubeconfig` as its own identity."""

    kubeconfig: Path
    log: Path
    args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.port = free_port()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "videojob_gateway", "--kubeconfig", str(self.kubeconfig),
                 "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True  # died: stop waiting, fail below
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

        try:
            wait_until(ready, timeout, "the gateway to be ready (/readyz)", interval=0.1)
        except AssertionError:
            self.stop()  # not left running by a test that fails here
            raise
        if proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {proc.returncode}:\n"
                                 f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def client(self, token: str | None = None, api_key: str | None = None,
               timeout: float = 10) -> httpx.Client:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if api_key is not None:
            headers["X-API-Key"] = api_key
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@dataclass
class GatewayWorld:
    """Who is who in the gateway's e2e tests: namespaces, callers' tokens, the API key, the
    gateway."""

    a: str  # the tenant namespace the callers have rights in
    b: str  # another tenant's namespace
    system: str  # the gateway's namespace (its ServiceAccount, the API-key Secrets)
    tokens: dict[str, str]  # writer, reader, auditor, gateway: ServiceAccount tokens
    api_key: str  # acts as a:uploader
    gateway: GatewayProcess
    gateway_kubeconfig: Path
    admin: client.CustomObjectsApi


@dataclass
class TriggerWorld:
    """Who is who in the triggers' e2e tests (tests/gateway/conftest.py, `trigger_world`)."""

    a: str  # the tenant namespace with the triggers, their Secrets and ServiceAccounts
    b: str  # another tenant's namespace, with a Secret of its own
    system: str  # the gateway's namespace
    gateway: GatewayProcess
    admin: client.CustomObjectsApi
    secrets: dict[str, bytes]  # name in namespace a → the value of its one key
