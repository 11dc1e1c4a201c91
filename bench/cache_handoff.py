"""The operator's hand-off with the stage cache on against off, in one run (issue #25: "cache
lookup overhead on a cold VideoJob, within noise of `handoff_p50_ms`").

The same testbed as bench/handoff.py (stages that do no work, one VideoJob every 1/rate
seconds over `--window` seconds), alternately with `cache.enabled` off and on, `--repeats`
times each. Every VideoJob is new, so every lookup misses: before the plan stage the plan's
entry is read and missing; after it, the plan the scripted worker does not write is missing,
so the lookup ends there (a real cold VideoJob also reads 2 x scenes + 1 missing manifests,
each a failed open on `file://`). The hand-offs measured include both lookups' round trips
(the plan stage's creation waits for the first, keyframes' for the second).

- `cache_on_handoff_p50_ms`, `cache_off_handoff_p50_ms`, `cache_handoff_p50_ratio` (on / off),
  p99 beside them; `cache_lookups_per_run`: lookups the operator counted (the check it was on).
"""

from __future__ import annotations

import statistics
import sys

from bench.archive_handoff import figures, paired_arguments
from bench.orchestration import Run, run_operator
from bench.report import describe, save
from bench.testbed import testbed


def main() -> int:
    args, n = paired_arguments(__doc__)
    runs: dict[str, list[Run]] = {"off": [], "on": []}
    lookups: list[float] = []
    with testbed("cache_handoff", pods=4 * n + 100, gpus=4 * n) as bed:
        run_operator(bed, 10, 1 / args.rate)  # unmeasured: warms the caches
        for i in range(args.repeats):
            for kind in (("off", "on") if i % 2 == 0 else ("on", "off")):
                run = run_operator(bed, n, 1 / args.rate, cache={"enabled": kind == "on"})
                if kind == "on":  # every lookup, as the operator's histogram counted them
                    lookups.append(max(
                        run.histograms.get("videojob_cache_lookup_seconds", {}).values(),
                        default=0.0))
                print(f"cache {kind}: {len(run.handoffs_ms)} hand-offs, p50 "
                      f"{statistics.median(run.handoffs_ms):.0f} ms", flush=True)
                runs[kind].append(run)
    on, off = figures(runs["on"]), figures(runs["off"])
    save("cache_handoff", {
        "machine": describe(), "rate_per_s": args.rate, "videojobs_per_run": n,
        "repeats": args.repeats,
        "cache_on_handoff_p50_ms": on["p50_ms"], "cache_off_handoff_p50_ms": off["p50_ms"],
        "cache_handoff_p50_ratio": round(on["p50_ms"] / off["p50_ms"], 2),
        "cache_on_handoff_p99_ms": on["p99_ms"], "cache_off_handoff_p99_ms": off["p99_ms"],
        "cache_lookups_per_run": lookups, "on": on, "off": off,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
