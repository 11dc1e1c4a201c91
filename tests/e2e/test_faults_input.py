"""Fault suite, bad input: the corpus of mistakes in invalid-videojobs.yaml is refused by the API
server with messages naming the field, and nothing is stored."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob_testkit.kube import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "invalid-videojobs.yaml").read_text())
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
    assert len(CORPUS) >= 40
    assert len({c["mistake"] for c in CORPUS}) == len(CORPUS)
    assert len({yaml.safe_dump(c.get("spec") or c.get("manifest")) for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c["mistake"] for c in CORPUS])
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
