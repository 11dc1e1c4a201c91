"""What each stage's pod uses: peak memory and scratch space, at 720p and 1080p, for the chart's
requests and limits (docs/tenancy.md).

Each stage of one VideoJob runs as a pod runs it (`runner.execute`, the real worker: OpenCV,
ffmpeg, file:// storage), in a process of its own forked for it, with its workspace under a
directory of its own. While it runs, every 20 ms:

- the resident memory of its whole process tree (the worker and the ffmpeg it starts), summed:
  what the container's memory limit counts, less the page cache the kernel can reclaim;
- the bytes in its workspace (the pod's `/scratch`).

The peaks are the figures, per stage and resolution, with the wall time; `segments` is the
largest of its scenes' pods (each does the same work). Results go to
bench/results/<UTC>-stage_resources.json.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import describe, save
from videojob_common.pipeline import PER_SCENE
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import Identity
from videojob_worker.local import stage_environments
from videojob_worker.runner import EXIT_OK, execute
from videojob_worker.spec import parse_spec
from videojob_worker.storage import file_uri

PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL = 0.02
MIB = 1024 * 1024


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and every descendant, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def measure(env: Any, scratch: Path) -> dict[str, float]:
    """One stage in a child process: its peaks and wall time."""
    scratch.mkdir(parents=True)
    child = multiprocessing.get_context("fork").Process(
        target=lambda: sys.exit(execute(env, Cancellation(), workspace_parent=scratch,
                                         log_level=logging.WARNING)))
    peak_rss, peak_scratch = 0, 0
    started = time.monotonic()
    child.start()
    assert child.pid is not None
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_scratch
        while not stop.is_set():
            peak_rss = max(peak_rss, tree_rss(child.pid or 0))
            peak_scratch = max(peak_scratch, dir_bytes(scratch))
            stop.wait(INTERVAL)

    sampler = threading.Thread(target=sample)
    sampler.start()
    child.join()
    stop.set()
    sampler.join()
    if child.exitcode != EXIT_OK:
        raise RuntimeError(f"{env.stage} exited {child.exitcode}")
    return {"peak_rss_mib": round(peak_rss / MIB, 1),
            "peak_scratch_mib": round(peak_scratch / MIB, 1),
            "seconds": round(time.monotonic() - started, 2)}


def run(resolution: str, scenes: int, seconds: float, fps: int) -> dict[str, Any]:
    spec = parse_spec({"prompt": "A lighthouse on a cliff at dawn, waves below", "scenes": scenes,
                       "durationSeconds": seconds, "fps": fps, "resolution": resolution})
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stage-resources-") as tmp:
        base = Path(tmp)
        envs = stage_environments(Identity("bench", "resources", "resources-uid"), spec,
                                  file_uri(base / "artifacts"), file_uri(base / "out.mp4"),
                                  base / "termination-log")
        for env in envs:
            figures = measure(env, base / "scratch" / f"{env.stage}-{env.index}")
            if env.stage in PER_SCENE:
                key = str(env.stage)
                previous = out.get(key)
                if previous is not None:  # the largest scene's pod
                    figures = {k: max(v, previous[k]) for k, v in figures.items()}
                out[key] = figures
            else:
                out[str(env.stage)] = figures
            print(f"{resolution} {env.stage}{'' if env.index is None else f' {env.index}'}: "
                  f"{figures}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolutions", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=int, default=24)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": describe(), "scenes": args.scenes,
                               "seconds": args.seconds, "fps": args.fps}
    for resolution in args.resolutions:
        results[resolution] = run(resolution, args.scenes, args.seconds, args.fps)
    save("stage_resources", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
