"""Running the real operator (and a real redis-server) against the test cluster."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubetest import REPO, TEST_IMAGE, Cluster
from localcluster import controlplane

SCRIPTED_WORKER = (Path(__file__).parent / "scripted_worker.py").read_text()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range (so no outgoing connection
    takes it before the server binds it) and never the same twice in one test session."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(24000, max(low, 24001))  # the benchmark clusters use 16000-24000
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port found")


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Polls `check` (exceptions count as "not yet") until it holds or `timeout` passes."""
    try:
        controlplane.wait_for(what, check, timeout, interval=0.05)
    except TimeoutError as e:
        raise AssertionError(str(e)) from None


@dataclass
class RedisServer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_until(ping, 10, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


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
               "VIDEOJOB_CONFIG": str(conf), **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "videojob_operator",
                 f"--liveness=http://127.0.0.1:{self.port}/healthz",
                 f"--metrics-port={self.metrics_port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.starts += 1

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
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies or the OOM killer strikes."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

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
