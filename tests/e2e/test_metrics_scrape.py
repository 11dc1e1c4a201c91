"""The operator's /metrics, scraped for real after VideoJobs ran, linted by promtool."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest

from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}


def test_metrics_are_promtool_clean_and_bounded(cluster: Cluster, namespace: str,
                                                running_operator: Operator) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run hack/install-system-deps.sh"
    vjs.create(cluster, namespace, "counted", prompt="hello", scenes=1, **FAST)
    vjs.create(cluster, namespace, "broken", prompt="fail:plan:permanent", **FAST)
    for name in ("counted", "broken"):
        vjs.wait(cluster, namespace, name, vjs.phase_is("Succeeded", "Failed"))
    url = f"http://127.0.0.1:{running_operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read()
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), (
        lint.stdout + lint.stderr).decode()
    m = running_operator.metrics()
    assert m['videojob_failures_total{reason="PermanentError"}'] >= 1
    assert m['videojob_finished_total{phase="Succeeded"}'] >= 1
    assert m['videojob_stage_duration_seconds_count{outcome="succeeded",stage="publish"}'] >= 1
    assert m['videojob_admitted_total{pool="gpu",priority_band="normal"}'] >= 1
    assert any(k.startswith("videojob_build_info{") for k in m)
    # Bounded cardinality: nothing names a VideoJob or its uid, and only the two accounting
    # counters name its namespace (one series per namespace and pool: GPU-seconds per tenant).
    body = text.decode()
    for needle in ("counted", "broken"):
        assert needle not in body
    naming = {line.split("{")[0] for line in body.splitlines()
              if namespace in line and not line.startswith("#")}
    assert naming <= {f"videojob_{c}_{s}" for c in ("gpu_seconds", "output_seconds")
                      for s in ("total", "created")}, naming
