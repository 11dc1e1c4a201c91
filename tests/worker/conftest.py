"""Servers the worker tests talk to, each started by the tests on a free port and stopped after:
a real redis-server and the GCS emulator (the `gcp-storage-emulator` package, run as a separate
process so the worker's client talks HTTP to it exactly as to GCS)."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from videojob_testkit.processes import RedisServer, free_port, stop, wait_until
from videojob_testkit.worker import BUCKET


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(port=free_port(), dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """STORAGE_EMULATOR_HOST of an in-memory GCS emulator with the bucket `videojob-test`."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--default-bucket", BUCKET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"{host}/storage/v1/b/{BUCKET}", timeout=0.5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_until(up, 15, "the GCS emulator to serve its bucket")
    if process.poll() is not None:
        pytest.fail(f"the GCS emulator exited with {process.returncode}")
    yield host
    stop(process)


@pytest.fixture
def emulated_gcs(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point google-cloud-storage (in this process and in child processes) at the emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return gcs_emulator


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """Tests call the CLI's `main` in-process, which installs SIGTERM/SIGINT handlers."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
