"""Rendering the Helm chart in tests, with the project's pinned helm (hack/build-helm.sh)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from videojob_common.pipeline import Obj
from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.processes import wait_until

CHART = REPO / "helm" / "videojob-operator"

# Every switch on: what a full production install renders.
EVERYTHING = {
    "prometheus": {"metrics": {"serviceMonitor": {"enabled": True},
                               "podMonitor": {"enabled": True}},
                   "rules": {"enabled": True}},
    "grafana": {"dashboards": {"enabled": True}},
    "networkPolicy": {"enabled": True},
    "redis": {"bundled": {"enabled": True}},
    "gcs": {"credentialsSecret": "gcs-key",
            "workloadIdentity": {"serviceAccount": "render@project.iam.gserviceaccount.com"}},
    "storage": {"volume": {"persistentVolumeClaim": {"claimName": "videojob-artifacts"}}},
    # (Impersonation Roles name tenant namespaces: tests/chart/test_chart_gateway.py has them.)
    "gateway": {"enabled": True, "authModes": ["token", "key"], "ingress": {"enabled": True}},
    "archive": {"enabled": True, "existingSecret": {"name": "archive-dsn", "key": "dsn"},
                "retention": [{"namespace": "*", "maxAgeDays": 90},
                              {"namespace": "team-a", "maxRows": 10}]},
}


@functools.cache
def helm_path() -> str:
    out = subprocess.run([str(REPO / "hack" / "build-helm.sh")], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def helm(*args: str, check: bool = True, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_path(), *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


# What an API server of Kubernetes 1.36 offers beyond helm's defaults, which the chart renders
# for (templates/operator/finalizer-policy.yaml). `helm install` reads it from the cluster.
MUTATING_POLICY_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


def template_text(values: Obj | None = None, *, release: str = "vj",
                  namespace: str = "videojob-system", chart: Path = CHART,
                  api_versions: tuple[str, ...] = ()) -> str:
    args = ["template", release, str(chart), "--namespace", namespace]
    for api in api_versions:
        args += ["--api-versions", api]
    if values:
        args += ["--values", "-"]
    out = subprocess.run([helm_path(), *args], input=json.dumps(values or {}),
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise ValueError(out.stderr.strip())
    return out.stdout


def render(values: Obj | None = None, **kwargs: Any) -> list[Obj]:
    return [d for d in yaml.safe_load_all(template_text(values, **kwargs)) if d]


def finalizer_policy(namespaces: list[str] | None = None, release: str = "vj") -> list[Obj]:
    """The chart's MutatingAdmissionPolicy that adds the operator's finalizer at creation, and
    its binding (to `namespaces`, or all), as `helm install` puts them on a 1.36 cluster."""
    values: Obj = {"watch": {"namespaces": namespaces}} if namespaces else {}
    return [d for d in render(values, release=release, api_versions=(MUTATING_POLICY_API,))
            if d["kind"].startswith("MutatingAdmissionPolicy")]


def install_finalizer_policy(cluster: Cluster, namespace: str = "default") -> None:
    """`finalizer_policy` applied, bound to every namespace as a cluster-wide install has it,
    once a VideoJob created in `namespace` (a dry run) shows it enforced."""
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(finalizer_policy()))
    wait_for_finalizer_policy(cluster, namespace)


def wait_for_finalizer_policy(cluster: Cluster, namespace: str) -> None:
    """Until a VideoJob created in `namespace` (a dry run) gets the finalizer: a policy the API
    server has just been given takes a moment to load."""

    def enforced() -> bool:
        vj = vjs.custom(cluster).create_namespaced_custom_object(
            vjs.GROUP, vjs.VERSION, namespace, vjs.PLURAL,
            {"apiVersion": f"{vjs.GROUP}/{vjs.VERSION}", "kind": "VideoJob",
             "metadata": {"name": "finalizer-policy-probe"}, "spec": {"prompt": "x"}},
            dry_run="All")
        return bool(vj["metadata"].get("finalizers"))

    wait_until(enforced, 30, "the finalizer policy to be enforced")


def find(docs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [d for d in docs if d["kind"] == kind
            and (name is None or d["metadata"]["name"] == name)]


def deep_merge(base: Obj, extra: Obj) -> Obj:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out
