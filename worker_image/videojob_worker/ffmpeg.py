"""Encoding and probing through the system's ffmpeg.

Frames stream straight into an `ffmpeg` subprocess as raw BGR on its stdin: no image file per
frame, no Python-side encoder. The encoder is libx264 (H.264 High profile, yuv420p, BT.709), the
one format every browser plays, from the distribution's ffmpeg package: a maintained, patched
build that ships libx264 and the native AAC encoder, and what the worker image installs anyway
(see docs/worker.md for the reasoning).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from videojob_worker.cancellation import Cancellation

Frame = npt.NDArray[np.uint8]  # height x width x 3, BGR (OpenCV's order)


def as_frame(image: Any) -> Frame:
    """OpenCV's results typed as what they are here (8-bit images); no copy."""
    frame: Frame = np.asarray(image, dtype=np.uint8)
    return frame

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"

# x264 settings shared by every segment: identical settings give identical stream parameters, so
# stitch can join segments without re-encoding them. "veryfast" keeps a 720p segment well above
# real time on one core; CRF 20 is visually clean for graphics and photos alike.
PRESET = "veryfast"
CRF = 20
POLL_SECONDS = 0.05


class EncoderError(RuntimeError):
    """ffmpeg failed; the message carries the end of its log."""


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text[-limit:] if text else "(no output)"


def cpu_budget() -> int:
    """The CPUs this container may use: its cgroup CPU limit, else the CPUs it may run on.

    ffmpeg and x264 size their thread pools from the CPUs they can see, which in a pod is the
    whole node: 96 threads on a 64-core node for a pod limited to 2 CPUs. The thread count also
    changes x264's output slightly, so pods with the same limit on different nodes write
    identical segments only if the count follows the limit, not the node.
    """
    visible = len(os.sched_getaffinity(0))
    quota: float | None = None
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        fields = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if fields and fields[0] != "max":
            quota = int(fields[0]) / int(fields[1])
    except (OSError, ValueError, IndexError):
        try:  # cgroup v1
            microseconds = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            quota = microseconds / period if microseconds > 0 else None
        except (OSError, ValueError):
            quota = None
    if quota is None:
        return visible
    return max(1, min(visible, math.ceil(quota)))


def video_encoder_args(fps: int, threads: int | None = None) -> list[str]:
    """Output options for a browser-playable H.264 stream; shared by segments and the bench.

    `threads`: x264 threads; default: the container's CPU budget.
    """
    args = [
        # Convert BGR to limited-range BT.709 YUV explicitly and say so in the stream: players
        # assume BT.709 for HD, and swscale's implicit default would be BT.601.
        "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
        "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF),
        "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv",
        # A keyframe every 2 s: seeking in a browser stays quick.
        "-g", str(2 * fps),
    ]
    return [*args, "-threads", str(threads or cpu_budget())]


def raw_input_args(width: int, height: int, fps: int) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
            "-framerate", str(fps)]


def widen_pipe(fd: int) -> None:
    """Grow the pipe from its 64 KiB default to the system maximum (1 MiB unless raised).

    A 720p frame is 2.7 MB: through 64 KiB the writer and ffmpeg's reader take turns some forty
    times a frame, and on a busy machine each turn waits for the scheduler. On a loaded 2-core
    machine this took the pipe from about 0.7x to about 0.9x the speed of ffmpeg reading the same
    frames from a file (bench/media.py).
    """
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(limit, 16 * 2**20))
    except (OSError, ValueError, AttributeError):
        pass  # not Linux, or not allowed: the default pipe works, only slower


class FrameEncoder:
    """An H.264 MP4 written from frames pushed one by one into ffmpeg's stdin."""

    def __init__(self, path: Path, width: int, height: int, fps: int,
                 cancellation: Cancellation, threads: int | None = None) -> None:
        self.path = path
        self.width, self.height = width, height
        self.cancellation = cancellation
        self.frames = 0
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close/abort)
        command = [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            *raw_input_args(width, height, fps), "-i", "pipe:0",
            "-an", *video_encoder_args(fps, threads),
            "-movflags", "+faststart", str(path),
        ]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=self._log)
        cancellation.track(self._process)
        assert self._process.stdin is not None
        widen_pipe(self._process.stdin.fileno())

    def write(self, frame: Frame) -> None:
        self.cancellation.check()
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame is {frame.shape} {frame.dtype}, "
                             f"expected ({self.height}, {self.width}, 3) uint8")
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, ValueError):
            # The encoder is gone: killed by the cancellation, or it failed.
            self.cancellation.check()
            self._process.wait()
            raise EncoderError(f"ffmpeg stopped after {self.frames} frames: "
                               f"{_tail(self._log)}") from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file; raises `EncoderError` if ffmpeg did not."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        wait(self._process, self.cancellation)
        self.cancellation.untrack(self._process)
        code = self._process.returncode
        log = _tail(self._log)
        self._log.close()
        if code != 0:
            raise EncoderError(f"ffmpeg exited {code}: {log}")

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()
        self._process.wait()
        self.cancellation.untrack(self._process)
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        self._log.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> FrameEncoder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def wait(process: subprocess.Popen[bytes], cancellation: Cancellation) -> int:
    """Wait for `process`, checking for cancellation between short polls."""
    while True:
        try:
            return process.wait(POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if cancellation.cancelled:
                process.kill()
                process.wait()
                cancellation.check()


def run(args: Sequence[str], cancellation: Cancellation,
        on_progress: Callable[[dict[str, str]], None] | None = None) -> None:
    """Run ffmpeg with `args` (after the common options), reporting its `-progress` blocks."""
    command = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-progress", "pipe:1", "-nostats", *args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=log)
        cancellation.track(process)
        try:
            assert process.stdout is not None
            block: dict[str, str] = {}
            # Cancellation kills the process, which ends this loop at once.
            for raw in process.stdout:
                key, _, value = raw.decode(errors="replace").strip().partition("=")
                block[key] = value
                if key == "progress":
                    if on_progress is not None:
                        on_progress(block)
                    block = {}
            code = wait(process, cancellation)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            cancellation.untrack(process)
        cancellation.check()
        if code != 0:
            raise EncoderError(f"ffmpeg exited {code}: {_tail(log)}")


def decodes(path: Path, stream: str, cancellation: Cancellation) -> bool:
    """Whether `stream` of `path` decodes to the end without an error."""
    try:
        run(["-xerror", "-i", str(path), "-map", stream, "-f", "null", "-"], cancellation)
    except EncoderError:
        return False
    return True


def probe(path: Path, count_packets: bool = False) -> dict[str, Any]:
    """ffprobe's view of a media file (streams and format) as JSON."""
    command = [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json"]
    if count_packets:
        command.append("-count_packets")
    result = subprocess.run([*command, str(path)], capture_output=True, timeout=120,
                            check=False)
    if result.returncode != 0:
        raise EncoderError(result.stderr.decode(errors="replace").strip() or
                           f"ffprobe exited {result.returncode}")
    info: dict[str, Any] = json.loads(result.stdout)
    return info
