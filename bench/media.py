"""Worker media figures: encoder overhead and segment render speed.

- encode ratio: the same 1280x720 frames encoded through the worker's path (numpy frames piped
  into ffmpeg by `FrameEncoder`) and by a plain `ffmpeg` reading them from a raw file, same
  encoder settings, alternating, median of the repeats. worker fps / plain fps; the goal is
  >= 0.9 (the pipe and Python cost at most a tenth).
  The CPU-time ratio (plain CPU per frame / worker CPU per frame) is reported beside it: it
  does not move when other work shares the machine, which wall-clock fps do.
- segment fps at 720p on one core: the segments stage as a pod runs it (Ken Burns render,
  crossfade, encode, upload to file:// storage), pinned to one CPU with x264 on one thread.

Results go to bench/results/<UTC timestamp>-media.json and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import describe, save
from videojob_common.pipeline import Stage
from videojob_worker import ffmpeg
from videojob_worker.artifacts import ArtifactLayout
from videojob_worker.cancellation import Cancellation
from videojob_worker.context import StageContext
from videojob_worker.environment import Identity
from videojob_worker.ffmpeg import Frame, FrameEncoder
from videojob_worker.procedural import ProceduralBackend
from videojob_worker.progress import ProgressReporter
from videojob_worker.spec import parse_spec
from videojob_worker.stages import keyframes, plan, segments
from videojob_worker.stages.plan import make_plan
from videojob_worker.storage import Storage, file_uri

WIDTH, HEIGHT, FPS = 1280, 720, 24


def sample_frames(count: int) -> list[Frame]:
    """A real scene's frames: a Ken Burns move over a procedural keyframe."""
    spec = parse_spec({"prompt": "A city skyline at dusk", "scenes": 1,
                       "durationSeconds": count / FPS, "fps": FPS,
                       "resolution": f"{WIDTH}x{HEIGHT}"})
    backend = ProceduralBackend()
    the_plan = make_plan(spec, backend)
    scene = the_plan.scenes[0]
    keyframe = backend.render_keyframe(scene, the_plan)
    return list(backend.render_clip(scene, keyframe, the_plan, count))


def cpu_seconds(include_self: bool) -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = children.ru_utime + children.ru_stime
    if include_self:
        own = resource.getrusage(resource.RUSAGE_SELF)
        total += own.ru_utime + own.ru_stime
    return total


def encode_worker(frames: list[Frame], out: Path) -> tuple[float, float]:
    """(frames per second, CPU seconds per frame) through `FrameEncoder`."""
    cpu, started = cpu_seconds(True), time.perf_counter()
    with FrameEncoder(out, WIDTH, HEIGHT, FPS, Cancellation()) as encoder:
        for frame in frames:
            encoder.write(frame)
    elapsed = time.perf_counter() - started
    return len(frames) / elapsed, (cpu_seconds(True) - cpu) / len(frames)


def encode_plain(raw: Path, count: int, out: Path) -> tuple[float, float]:
    """(frames per second, CPU seconds per frame) of ffmpeg reading a raw file."""
    command = [ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               *ffmpeg.raw_input_args(WIDTH, HEIGHT, FPS), "-i", str(raw),
               "-an", *ffmpeg.video_encoder_args(FPS), "-movflags", "+faststart", str(out)]
    cpu, started = cpu_seconds(False), time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - started
    return count / elapsed, (cpu_seconds(False) - cpu) / count


def segment_fps(workdir: Path, seconds: float) -> float:
    """The segments stage for one 720p scene, on one core."""
    spec = parse_spec({"prompt": "A harbour at dawn. A forest at night.", "scenes": 2,
                       "durationSeconds": 2 * seconds, "fps": FPS,
                       "resolution": f"{WIDTH}x{HEIGHT}"})
    identity = Identity("bench", "media", "uid")
    cancellation = Cancellation()
    workdir.mkdir(parents=True, exist_ok=True)

    def context(stage: Stage, index: int | None = None) -> StageContext:
        return StageContext(identity=identity, stage=stage, spec=spec,
                            layout=ArtifactLayout(file_uri(workdir / "artifacts"), identity),
                            storage=Storage(cancellation), workspace=workdir,
                            progress=ProgressReporter(identity, stage, index, 1, []),
                            cancellation=cancellation, index=index)

    plan.run(context(Stage.PLAN))
    keyframes.run(context(Stage.KEYFRAMES))
    frames = context(Stage.SEGMENTS, 0).read_plan().scenes[0].frames
    started = time.perf_counter()
    segments.run(context(Stage.SEGMENTS, 0), threads=1)
    return frames / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per encode")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--segment-seconds", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="videojob-bench-") as tmp:
        work = Path(tmp)
        frames = sample_frames(args.frames)
        raw = work / "frames.bgr"
        with raw.open("wb") as f:
            for frame in frames:
                f.write(frame.tobytes())
        worker, plain = [], []
        for _ in range(args.repeats):  # alternating, so drift affects both alike
            worker.append(encode_worker(frames, work / "worker.mp4"))
            plain.append(encode_plain(raw, len(frames), work / "plain.mp4"))
        del frames
        worker_fps = statistics.median(fps for fps, _ in worker)
        plain_fps = statistics.median(fps for fps, _ in plain)
        worker_cpu = statistics.median(cpu for _, cpu in worker)
        plain_cpu = statistics.median(cpu for _, cpu in plain)

        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})  # one core; ffmpeg inherits it
        try:
            segment = [segment_fps(work / f"segment-{i}", args.segment_seconds)
                       for i in range(3)]
        finally:
            os.sched_setaffinity(0, allowed)

    results: dict[str, Any] = {
        "machine": describe(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ffmpeg": subprocess.run([ffmpeg.FFMPEG, "-version"], capture_output=True, text=True,
                                 check=True).stdout.splitlines()[0],
        "encoder": f"libx264 preset={ffmpeg.PRESET} crf={ffmpeg.CRF} yuv420p",
        "encode_frames": args.frames,
        "encode_repeats": args.repeats,
        "encode_worker_fps": round(worker_fps, 1),
        "encode_plain_fps": round(plain_fps, 1),
        "encode_ratio": round(worker_fps / plain_fps, 3),
        # CPU time is not disturbed by other work on the machine, wall-clock fps are.
        "encode_cpu_ms_per_frame_worker": round(1000 * worker_cpu, 2),
        "encode_cpu_ms_per_frame_plain": round(1000 * plain_cpu, 2),
        "encode_cpu_ratio": round(plain_cpu / worker_cpu, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "segment_fps_720p": round(statistics.median(segment), 1),
        "segment_frames": round(args.segment_seconds * FPS),
        "segment_cores": 1,
    }
    save("media", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
