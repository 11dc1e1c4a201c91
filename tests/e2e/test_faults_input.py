"""Fault suite, bad input: the corpus of mistakes in invalid-videojobs.yaml is refused with
messages naming the field: by the API server, and nothing is stored; or, where only the operator
can know (the namespace's storage prefix), by the operator, before any stage runs."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "invalid-videojobs.yaml").read_text())
BY_API = [c for c in CORPUS if c.get("refused_by", "api") == "api"]
BY_OPERATOR = [c for c in CORPUS if c.get("refused_by") == "operator"]
BASE = {"prompt": "a red balloon", "scenes": 2, "durationSeconds": 4}


def manifest(case: dict[str, Any], name: str) -> dict[str, Any]:
    if "manifest" in case:
        return copy.deepcopy(case["manifest"])
    spec = dict(case["spec"]) if case.get("replace") else {**BASE, **case["spec"]}
    if spec.get("prompt") == "LONG_PROMPT":
        spec["prompt"] = "a red balloon " * 300
    return {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
            "metadata": {"name": name}, "spec": spec}


def test_the_corpus_has_at_least_forty_distinct_mistakes() -> None:
    assert len(BY_API) >= 40 and len(BY_OPERATOR) >= 7
    assert len({c["mistake"] for c in CORPUS}) == len(CORPUS)
    assert len({yaml.safe_dump(c.get("spec") or c.get("manifest")) for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", BY_API, ids=[c["mistake"] for c in BY_API])
def test_each_mistake_is_refused_naming_the_field(cluster: Cluster, crds: None, namespace: str,
                                                  case: dict[str, Any]) -> None:
    body = manifest(case, "bad")
    out = subprocess.run(
        [cluster.kubectl_path, "--kubeconfig", str(cluster.kubeconfig), "create", "-n", namespace,
         "-f", "-"], input=yaml.safe_dump(body), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, f"accepted: {body}"
    assert case["expect"] in out.stderr, out.stderr
    listed = subprocess.run(
        [cluster.kubectl_path, "--kubeconfig", str(cluster.kubeconfig), "get", "videojobs", "-n",
         namespace, "-o", "name"], capture_output=True, text=True, check=True, timeout=60)
    assert listed.stdout.strip() == ""


@pytest.mark.parametrize("case", BY_OPERATOR, ids=[c["mistake"] for c in BY_OPERATOR])
def test_each_mistake_only_the_operator_can_see_fails_before_anything_runs(
        cluster: Cluster, namespace: str, running_operator: Operator,
        case: dict[str, Any]) -> None:
    root = f"file://{running_operator.workdir / 'artifacts'}"

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("ROOT", root).replace("NS", namespace)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    body = fill(manifest(case, "bad"))
    vjs.custom(cluster).create_namespaced_custom_object(
        vjs.GROUP, vjs.VERSION, namespace, vjs.PLURAL, body)
    done = vjs.wait(cluster, namespace, "bad", vjs.phase_is("Failed", "Succeeded"), timeout=60)
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert fill(case["expect"]) in status["message"], status["message"]
    assert cluster.batch.list_namespaced_job(namespace).items == []
