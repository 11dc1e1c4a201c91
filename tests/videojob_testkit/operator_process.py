"""The real operator, run as its own process against the test cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videojob_testkit import REPO
from videojob_testkit.kube import TEST_IMAGE, Cluster
from videojob_testkit.processes import free_port, wait_until

SCRIPTED_WORKER = (Path(__file__).parent / "scripted_worker.py").read_text()
# The master key of progress tokens (videojob_common.progress_auth): fixed, so that an operator
# restarted by a test still takes the reports its stage pods sign, and tests can forge them.
PROGRESS_KEY = "test-progress-master-key"
# The operators this test session has started and not stopped: two must never share a cluster's
# VideoJobs, so a suite that needs an operator of its own stops the others first (`stop_all`).
_RUNNING: list[Operator] = []


def stop_all() -> None:
    """Stops every operator this session started (the e2e suite's `running_operator` starts its
    own again when a later test needs it)."""
    for op in list(_RUNNING):
        op.stop()


@dataclass
class Operator:
    """The operator as a separate process, the way it runs for real."""

    cluster: Cluster
    workdir: Path
    redis_url: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ledger(self) -> Path:
        return self.workdir / "ledger.txt"

    @property
    def log(self) -> Path:
        return self.workdir / "operator.log"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "storage_root": f"file://{self.workdir / 'artifacts'}",
            "worker_image": TEST_IMAGE,
            "worker_command": ["python3", "-c", SCRIPTED_WORKER],
            "redis_url": self.redis_url,
            "cancel_timeout_seconds": 60,
            "defaults": {"retry_backoff_seconds": 1},
            # Ceilings no test reaches but test_bad_input's (docs/tenancy.md).
            "limits": {"*": {"max_gpus_per_pod": 8, "max_total_seconds": 86400}},
        }
        if self.cluster.local:
            cfg["worker_env"] = {"VIDEOJOB_TEST_LEDGER": str(self.ledger)}
        cfg.update(self.overrides)
        return cfg

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "config.yaml"
        conf.write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        self.metrics_port = free_port()
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig),
               "VIDEOJOB_CONFIG": str(conf), "VIDEOJOB_PROGRESS_KEY": PROGRESS_KEY, **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "videojob_operator",
                 f"--liveness=http://127.0.0.1:{self.port}/healthz",
                 f"--metrics-port={self.metrics_port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.starts += 1
        _RUNNING.append(self)

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                        timeout=1) as r:
                return bool(r.status == 200)

        wait_until(healthy, 30, "the operator's liveness endpoint")

    def metrics(self) -> dict[str, float]:
        """The operator's /metrics, as {'name{labels}': value}."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return parse_metrics(r.read().decode())

    def finish(self) -> str:
        """Its log, once it stopped; its work folder removed. Fails on any error it logged
        (the check that ends every operator fixture)."""
        self.stop()
        log = self.log.read_text() if self.log.exists() else ""
        shutil.rmtree(self.workdir, ignore_errors=True)
        assert_no_errors(log)
        return log

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies or the OOM killer strikes."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
        _forget(self)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        _forget(self)

    def runs(self, uid: str) -> list[tuple[str, str, str]]:
        """(stage, index, event) lines the scripted worker recorded for a VideoJob."""
        if not self.ledger.exists():
            return []
        out = []
        for line in self.ledger.read_text().splitlines():
            u, stage, index, event = line.split()
            if u == uid:
                out.append((stage, index, event))
        return out


def _forget(op: Operator) -> None:
    _RUNNING[:] = [o for o in _RUNNING if o is not op]


def assert_no_errors(log: str) -> None:
    """No line of the operator's log at level error."""
    errors = [line for line in log.splitlines()
              if '"level": "error"' in line and '"logger": "videojob' in line]
    assert not errors, "\n".join(errors)[-5000:]


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text, as {'name{labels}': value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
