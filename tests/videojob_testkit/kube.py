"""Test support for a real cluster: which cluster, and waiting on it through watches with deadlines.

The suite runs against the project's local cluster by default (`make cluster-up` state in
.cluster/, started on demand). Set VIDEOJOB_TEST_KUBECONFIG to run it against another cluster,
e.g. kind (see README, "Running the tests on kind").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

# Tests run small shell and Python programs. On the local cluster any image runs its command on
# the host; on kind the image must provide `sh` and `python3`.
TEST_IMAGE = os.environ.get("VIDEOJOB_TEST_IMAGE", "python:3.11-slim")


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_path: str
    api: client.ApiClient
    local: bool  # the project's local cluster rather than an external one
    runtime: str = "agent"  # the local cluster's nodes: the node agent, or real (containerd)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, check=check, timeout=timeout, input=input)


def connect(kubeconfig: Path, local: bool, runtime: str = "agent") -> Cluster:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    kubectl = None
    if local:
        from localcluster import controlplane

        kubectl = str(controlplane.binaries() / "kubectl")
    kubectl = kubectl or os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
    return Cluster(kubeconfig=kubeconfig, kubectl_path=kubectl, api=client.ApiClient(cfg),
                   local=local, runtime=runtime)


def wait_for(list_fn: Callable[..., Any], predicate: Callable[[Any], bool], *, timeout: float,
             what: str = "condition", **kwargs: Any) -> Any:
    """Returns the first object of `list_fn(**kwargs)` matching `predicate`, watching for changes
    until `timeout` seconds pass (then fails with `what`)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        listing = list_fn(**kwargs)
        for item in listing.items:
            last = item
            if predicate(item):
                return item
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        w = watch.Watch()
        try:
            for event in w.stream(list_fn, resource_version=listing.metadata.resource_version,
                                  timeout_seconds=max(1, int(remaining)), **kwargs):
                obj = event["object"]
                last = obj
                if event["type"] != "DELETED" and predicate(obj):
                    return obj
                if time.monotonic() > deadline:
                    break
        except client.ApiException as e:
            if e.status != 410:
                raise
        finally:
            w.stop()
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last}")


def wait_gone(read_fn: Callable[..., Any], *, timeout: float, what: str, **kwargs: Any) -> None:
    """Polls `read_fn` until it answers 404."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read_fn(**kwargs)
        except client.ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} to be deleted")


def pod_phase_is(*phases: str) -> Callable[[Any], bool]:
    return lambda pod: pod.status is not None and pod.status.phase in phases


def job_finished(job: Any) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True"
               for c in (job.status.conditions or []))


def condition(obj: Any, type_: str) -> Any:
    return next((c for c in (obj.status.conditions or []) if c.type == type_), None)
