"""The GCS emulator (the `gcp-storage-emulator` package) as its own process on a free port, so
google-cloud-storage talks HTTP to it exactly as to GCS (STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from videojob_testkit.processes import free_port, stop, wait_until


@dataclass
class GcsEmulator:
    """In memory, with `bucket` made at start."""

    bucket: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """STORAGE_EMULATOR_HOST for it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> None:
        self.port = free_port()
        self.process = process = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
             "--port", str(self.port), "--in-memory", "--default-bucket", self.bucket],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            if process.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"{self.host}/storage/v1/b/{self.bucket}",
                                            timeout=0.5) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(up, timeout, "the GCS emulator to serve its bucket")
        if process.poll() is not None:
            raise AssertionError(f"the GCS emulator exited with {process.returncode}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@contextlib.contextmanager
def running(bucket: str) -> Iterator[GcsEmulator]:
    """An emulator serving `bucket` for the block (a module fixture's body)."""
    server = GcsEmulator(bucket)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def point_at(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """google-cloud-storage clients made from now on talk to `emulator`, as anonymous."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.host)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
