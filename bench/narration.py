"""What narration costs in wall time (#28), in one run: the same 8-scene VideoJob with and
without `spec.narration`, rendered by the real worker on one testbed, `--repeats` pairs, the
order alternating, the cache off (`cache.policy: Off`: every render is a full one).

narrate runs beside keyframes and segments, so it should add no more than stitch's mix (the
voice over the picture, loudness normalisation, the caption track) to the wall time.

Keys (medians): `narration_on_s`, `narration_off_s`, `narration_ratio` (on / off),
`narration_added_s` (on - off); `narration_stitch_on_s`, `narration_stitch_off_s` and
`narration_narrate_s` say where it goes (each stage's span from its pods' container times, to
the second); `narration_mix_s`: stitch's work with narration less without, as the worker timed
it (to the hundredth), the "stitch-time mix" the added wall time is held to.
On this machine narrate shares the two cores with keyframes and segments; on a cluster it runs
on a CPU node beside the GPU ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from bench.real_runs import real_runs
from bench.report import describe, save
from bench.testbed import testbed

LINES = ["A lighthouse on the cliff.", "The harbour wakes up.", "Boats leave at dawn.",
         "The open sea.", "A storm comes in.", "Rain on the deck.", "The calm after.",
         "Night falls."]


def spec_of(args: argparse.Namespace, narrated: bool, seed: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "prompt": "A lighthouse. A harbour. Boats. The sea. A storm. Rain. Calm. Night.",
        "scenes": 8, "durationSeconds": args.seconds, "fps": args.fps,
        "resolution": args.resolution, "transition": "fade", "seed": seed,
        "cache": {"policy": "Off"}}
    if narrated:
        spec["narration"] = {"lines": LINES, "captions": "track"}
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", default="640x360")
    parser.add_argument("--seconds", type=int, default=16)
    parser.add_argument("--fps", type=int, default=8)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"on": [], "off": []}
    stages: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with testbed("narration", pods=64, gpus=16) as bed, real_runs(bed, "narration") as runs:
        for i in range(args.repeats):
            for kind in (("off", "on") if i % 2 == 0 else ("on", "off")):
                seconds = runs.render(f"{kind}-{i}", spec_of(args, kind == "on", 500 + i))
                times[kind].append(seconds)
                spans = runs.stage_seconds(f"{kind}-{i}")
                spans["stitch_worker"] = runs.worker_seconds(f"{kind}-{i}", "stitch")
                spans["narrate_worker"] = runs.worker_seconds(f"{kind}-{i}", "narrate")
                stages[kind].append(spans)
                print(f"narration {kind}: {seconds:.1f} s, stages {stages[kind][-1]}",
                      flush=True)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])

    def stage(kind: str, name: str) -> float:
        return round(statistics.median(s.get(name, 0.0) for s in stages[kind]), 2)

    save("narration", {
        "machine": describe(), "repeats": args.repeats, "resolution": args.resolution,
        "scenes": 8, "seconds": args.seconds, "fps": args.fps,
        "narration_on_s": round(on, 2), "narration_off_s": round(off, 2),
        "narration_ratio": round(on / off, 3), "narration_added_s": round(on - off, 2),
        # Where the added time goes: stitch's mix, against narrate's own span (in parallel).
        "narration_stitch_on_s": stage("on", "stitch"),
        "narration_stitch_off_s": stage("off", "stitch"),
        "narration_narrate_s": stage("on", "narrate"),
        # The same, as the workers timed their work (to the hundredth of a second).
        "narration_stitch_worker_on_s": stage("on", "stitch_worker"),
        "narration_stitch_worker_off_s": stage("off", "stitch_worker"),
        "narration_mix_s": round(stage("on", "stitch_worker") - stage("off", "stitch_worker"),
                                 2),
        "runs": times, "stages": stages})
    return 0


if __name__ == "__main__":
    sys.exit(main())
