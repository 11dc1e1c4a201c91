"""manifests/ is the chart rendered for `kubectl apply` users, and examples/ is valid input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videojob_operator.api import KIND, VideoJobSpec
from videojob_testkit import REPO
from videojob_testkit.chart import CHART, helm

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
HELM_VALUES = sorted((REPO / "examples" / "helm").glob("*.yaml"))


def test_manifests_match_the_chart() -> None:
    out = subprocess.run([sys.executable, str(REPO / "hack" / "render_manifests.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_manifests_hold_the_crds_and_the_operator() -> None:
    docs = [d for d in yaml.safe_load_all(
        (REPO / "manifests" / "videojob-operator.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[:4] == ["CustomResourceDefinition"] * 3 + ["Namespace"]
    assert "Deployment" in kinds and "ClusterRole" in kinds
    assert "Helm" not in str(docs)


def test_examples_cover_prompt_slideshow_with_audio_and_gpu_options() -> None:
    specs = {}
    for path in EXAMPLES:
        (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert doc["kind"] == KIND
        specs[path.name] = VideoJobSpec.model_validate(doc["spec"])
    assert any(s.prompt for s in specs.values())
    assert any(s.images and s.audio for s in specs.values())
    assert any(s.gpu and s.gpu.node_selector and s.gpu.tolerations for s in specs.values())


@pytest.mark.parametrize("values", HELM_VALUES, ids=[p.stem for p in HELM_VALUES])
def test_helm_values_examples_lint(values: Path) -> None:
    out = helm("lint", "--strict", str(CHART), "--values", str(values), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
