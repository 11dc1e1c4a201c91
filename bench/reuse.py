"""What the stage cache saves (issue #25), in one run on one testbed: the operator with the cache
on, stage pods running the REAL worker (the node agent runs the worker image's entrypoint), an
8-scene VideoJob rendered in full, then:

- a repeat of it (the same spec, another name): `Reused`, no Job;
- a one-scene edit of it (`sceneOverrides: [{index: 3, seed: …}]`): one keyframe, one segment;
- the same edit with `cache.policy: Refresh` (renders everything: the baseline of the edit).

Each round uses a fresh seed, so nothing is cached before its full render. Keys (medians of
`--repeats` rounds, wall time from create to Succeeded as the VideoJob's watch shows it):
- `reuse_full_s`, `reuse_repeat_s`, `reuse_repeat_ratio` (repeat / full);
- `reuse_edit_s`, `reuse_edit_full_s`, `reuse_edit_ratio` (edit / the same edit rendered in full);
- `reuse_gpu_pods_full`, `reuse_gpu_pods_repeat`, `reuse_gpu_pods_edit`: keyframes and segments
  pods each made (GPU pods saved = full - these).

Defaults: 1920x1080, 8 scenes, 4 s at 8 fps (32 frames), `fade` (a crossfade also re-renders
the segment before the edited scene, docs/reuse.md). On 2 cores a full render takes about a
minute; `--resolution 640x360` for a quick look.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from bench.real_runs import real_runs
from bench.report import describe, save
from bench.testbed import testbed


def spec_of(args: argparse.Namespace, seed: int, **extra: Any) -> dict[str, Any]:
    return {"prompt": "A lighthouse. A harbour at dawn. Boats. The open sea. A storm. Rain. "
                      "Calm. Night.",
            "scenes": 8, "durationSeconds": args.seconds, "fps": args.fps,
            "resolution": args.resolution, "transition": "fade", "seed": seed, **extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--fps", type=int, default=8)
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with testbed("reuse", pods=64, gpus=16) as bed, real_runs(bed, "reuse") as runs:
        for i in range(args.repeats):
            seed = 1000 + i
            edit = [{"index": 3, "seed": 77 + i}]
            r: dict[str, Any] = {
                "full": runs.render(f"full-{i}", spec_of(args, seed)),
                "repeat": runs.render(f"repeat-{i}", spec_of(args, seed)),
                "edit": runs.render(f"edit-{i}", spec_of(args, seed, sceneOverrides=edit)),
                "edit_full": runs.render(f"edit-full-{i}", spec_of(
                    args, seed, sceneOverrides=edit, cache={"policy": "Refresh"}))}
            r["pods"] = {k: runs.gpu_pods(f"{k.replace('_', '-')}-{i}")
                         for k in ("full", "repeat", "edit", "edit_full")}
            print(f"round {i}: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.items()
                                             if isinstance(v, float))
                  + f", GPU pods {r['pods']}", flush=True)
            rounds.append(r)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 2)

    def pods(key: str) -> int:
        return int(statistics.median(r["pods"][key] for r in rounds))

    results = {
        "machine": describe(), "repeats": args.repeats, "resolution": args.resolution,
        "scenes": 8, "frames": args.seconds * args.fps,
        "reuse_full_s": median("full"), "reuse_repeat_s": median("repeat"),
        "reuse_repeat_ratio": round(median("repeat") / median("full"), 3),
        "reuse_edit_s": median("edit"), "reuse_edit_full_s": median("edit_full"),
        "reuse_edit_ratio": round(median("edit") / median("edit_full"), 3),
        "reuse_gpu_pods_full": pods("full"), "reuse_gpu_pods_repeat": pods("repeat"),
        "reuse_gpu_pods_edit": pods("edit"), "reuse_gpu_pods_edit_full": pods("edit_full"),
        "rounds": rounds,
    }
    save("reuse", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
