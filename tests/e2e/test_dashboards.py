"""Every Grafana panel's query returns data from a real Prometheus scraping the operator."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import free_port, wait_until

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}
DASHBOARDS = sorted((REPO / "helm" / "videojob-operator" / "dashboards").glob("*.json"))


class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: run hack/install-system-deps.sh"
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "videojob-operator",
                                "static_configs": [{"targets": [target]}]}]}))
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def prometheus(running_operator: Operator, tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path, f"127.0.0.1:{running_operator.metrics_port}")
    try:
        wait_until(lambda: any(s["value"][1] == "1" for s in prom.query(
            'up{job="videojob-operator"}')), 60, "Prometheus scraping the operator")
        yield prom
    finally:
        prom.stop()


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.stem}: {panel['title']}",
                            target["expr"].replace("$__rate_interval", "1m")))
    return out


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


def test_every_dashboard_panel_query_returns_data(
        cluster: Cluster, namespace: str, running_operator: Operator,
        prometheus: Prometheus) -> None:
    assert DASHBOARDS, "no dashboards in the chart"
    # One after another, so every counter and histogram series grows while Prometheus watches
    # (a rate needs two different samples).
    # The GPU stages run over a second, so the GPU-seconds counters (timestamps in whole
    # seconds) grow too.
    ran = "sleep:keyframes:1.2 sleep:segments:1.2"
    for i, prompt in enumerate([ran, ran, "fail:plan:permanent", "fail:plan:permanent"]):
        vjs.create(cluster, namespace, f"seen-{i}", prompt=prompt, scenes=1, **FAST)
        vjs.wait(cluster, namespace, f"seen-{i}", vjs.phase_is("Succeeded", "Failed"))
    vjs.create(cluster, namespace, "seen-last", prompt=ran, scenes=1, **FAST)
    vjs.wait(cluster, namespace, "seen-last", vjs.phase_is("Succeeded", "Failed"))
    missing = []
    for title, expr in panel_queries():
        try:
            wait_until(lambda e=expr: has_data(prometheus.query(e)), 20, title)
        except AssertionError:
            missing.append(f"{title}: {expr}")
    assert missing == [], "panels without data:\n" + "\n".join(missing)
