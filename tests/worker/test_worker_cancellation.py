"""SIGTERM (VideoJob deleted or suspended, node drained): the stage stops within 2 s with 143 and
leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from videojob_testkit.processes import wait_until
from videojob_testkit.worker import stage_env, worker_command
from videojob_worker.cancellation import Cancellation
from videojob_worker.errors import Cancelled
from videojob_worker.storage import file_uri

# Big enough to take several seconds (so SIGTERM lands mid-render), one scene.
SPEC: dict[str, Any] = {"prompt": "A long slow pan over the mountains", "scenes": 1,
                        "durationSeconds": 30, "fps": 30, "resolution": "1280x720",
                        "transition": "none"}


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (the stage's encoder writes into its workspace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def test_sigterm_during_segments(tmp_path: Path, redis_url: str) -> None:
    root = tmp_path / "artifacts"
    log = tmp_path / "termination-log"
    scratch = tmp_path / "scratch"  # TMPDIR: where the stage's workspace goes
    scratch.mkdir()
    for stage in ("plan", "keyframes"):
        env = stage_env(SPEC, stage, file_uri(root), uid="cancel-1", termination_log=log)
        assert subprocess.run(worker_command(stage), env=env, capture_output=True,
                              timeout=60, check=False).returncode == 0

    env = stage_env(SPEC, "segments", file_uri(root), uid="cancel-1", termination_log=log,
                    redis_url=redis_url, index=0, extra={"TMPDIR": str(scratch)})
    process = subprocess.Popen(worker_command("segments"), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    client = redis.Redis.from_url(redis_url)

    def rendering() -> dict[str, Any] | None:
        assert process.poll() is None, process.communicate()
        raw = client.get("videojob:progress:cancel-1:segments:0")
        update: dict[str, Any] | None = json.loads(raw) if raw else None
        return update if update and update["done"] >= 10 else None

    update = wait_until(rendering, 30, "segments to render 10 frames")
    assert update["done"] < update["total"] == 900
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the stage did not stop within 5 s of SIGTERM")
    elapsed = time.monotonic() - sent
    assert process.returncode == 143, stderr
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
    assert log.read_text() == "cancelled: stopped by SIGTERM"
    segments = root / "ns/job/cancel-1/segments"
    assert not segments.exists() or list(segments.iterdir()) == []
    assert list(scratch.iterdir()) == []  # workspace (and the partial MP4 in it) removed
    assert processes_mentioning(str(scratch)) == []  # the encoder is gone too
    final = json.loads(client.get("videojob:progress:cancel-1:segments:0") or b"{}")
    assert final["done"] < 900


def test_cancellation_wakes_a_backoff_and_runs_cleanups() -> None:
    cancellation = Cancellation()
    undone: list[str] = []
    cancellation.on_cancel(lambda: undone.append("temp file"))
    handle = cancellation.on_cancel(lambda: undone.append("finished work"))
    cancellation.discard(handle)
    cancellation.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        cancellation.sleep(30)
    assert time.monotonic() - started < 1
    cancellation.run_cleanups()
    cancellation.run_cleanups()  # idempotent: the watchdog and the main thread may both call it
    assert undone == ["temp file"]
