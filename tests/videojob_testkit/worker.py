"""The worker tests' helpers: running the CLI, decoding what it wrote, making inputs."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# The bucket the GCS emulator (tests/worker/conftest.py) serves.
BUCKET = "videojob-test"


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "videojob_worker", *args]


def stage_env(spec: dict[str, Any], stage: str, root: str, *, uid: str = "uid-1",
              termination_log: Path, output_uri: str | None = None,
              redis_url: str | None = None, index: int | None = None,
              extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the operator gives a stage pod (docs/contract.md)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOJOB_", "JOB_"))}
    env.update({
        "VIDEOJOB_NAMESPACE": "ns", "VIDEOJOB_NAME": "job", "VIDEOJOB_UID": uid,
        "VIDEOJOB_STAGE": stage, "VIDEOJOB_SPEC": json.dumps(spec),
        "VIDEOJOB_ARTIFACT_ROOT": root, "VIDEOJOB_ATTEMPT": "1",
        "VIDEOJOB_POD_NAME": f"job-{stage}-pod", "VIDEOJOB_TERMINATION_LOG": str(termination_log),
    })
    if output_uri:
        env["VIDEOJOB_OUTPUT_URI"] = output_uri
    if redis_url:
        env["VIDEOJOB_REDIS_URL"] = redis_url
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    env.update(extra or {})
    return env


def run_stage(stage: str, env: dict[str, str],
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The stage in its own process, as in a pod."""
    return subprocess.run(worker_command(stage), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


class LocalVideoJob:
    """One VideoJob's stage pods on file:// storage under `tmp`, each run through the CLI's
    `main` in this process with the contract's environment (plus `extra`)."""

    def __init__(self, tmp: Path, spec: dict[str, Any], uid: str = "uid-1") -> None:
        self.tmp, self.spec, self.uid = tmp, spec, uid
        self.root = tmp / "artifacts"
        self.log = tmp / "termination-log"

    @property
    def prefix(self) -> Path:
        """The VideoJob's artifact folder."""
        return self.root / "ns" / "job" / self.uid

    def env(self, stage: str, index: int | None = None,
            extra: dict[str, str] | None = None) -> dict[str, str]:
        return stage_env(self.spec, stage, self.root.resolve().as_uri(), uid=self.uid,
                         termination_log=self.log, index=index, extra=extra,
                         output_uri=(self.tmp / "out.mp4").resolve().as_uri())

    def run(self, stage: str, index: int | None = None,
            extra: dict[str, str] | None = None) -> str:
        """Run the stage, which must succeed; returns its logs."""
        code, _, stderr = invoke([stage], self.env(stage, index, extra))
        assert code == 0, stderr
        return stderr


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The CLI's `main` in this process (no interpreter start-up): (exit code, stdout, stderr).

    `env` replaces the environment for the call. The caller restores signal handlers (the
    conftest does).
    """
    import contextlib
    import io

    from videojob_worker.__main__ import main

    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def probe(path: Path) -> dict[str, Any]:
    """ffprobe with decoded frame counts: what a player would see."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of",
         "json", str(path)], capture_output=True, text=True, check=True, timeout=60)
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    streams = [s for s in info["streams"] if s["codec_type"] == kind]
    assert len(streams) == 1, f"expected one {kind} stream, got {streams}"
    return streams[0]


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (moov before mdat = fast start)."""
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            boxes.append(kind.decode("latin-1"))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                f.seek(size - 16, 1)
            elif size == 0:
                break
            else:
                f.seek(size - 8, 1)
    return boxes


def write_wav(path: Path, seconds: float, rate: int = 44100, frequency: float = 440.0) -> Path:
    """A mono 16-bit sine tone."""
    count = round(seconds * rate)
    samples = (0.3 * 32767 * np.sin(2 * math.pi * frequency * np.arange(count) / rate))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def write_image(path: Path, width: int, height: int, colour: tuple[int, int, int]) -> Path:
    """A solid BGR image with a white diagonal, as PNG or JPEG by suffix."""
    image = np.full((height, width, 3), colour, np.uint8)
    cv2.line(image, (0, 0), (width - 1, height - 1), (255, 255, 255), max(1, width // 50))
    assert cv2.imwrite(str(path), image)
    return path


def mean_colour(image: np.ndarray) -> np.ndarray:
    return np.asarray(image.reshape(-1, 3).mean(axis=0), dtype=np.float64)
