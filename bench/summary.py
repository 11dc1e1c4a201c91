"""One result file for a `make bench` run: the newest result of every benchmark, merged.

Reads the newest bench/results/<timestamp>-<name>.json of each benchmark, writes
bench/results/<timestamp>.json with the headline keys (and every benchmark's own figures under
its name), and prints the headline figures against their goals as a Markdown table, the one
docs/benchmarks.md carries. A headline figure whose benchmark has not been run is null.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from report import RESULTS, describe

BENCHMARKS = ("orchestration", "handoff", "progress", "admission", "scale", "media", "cluster",
              "realnodes")
# headline key -> (benchmark, its key, goal in words, check)
HEADLINE: dict[str, tuple[str, str, str, Any]] = {
    "orchestration_ratio_50": ("orchestration", "orchestration_ratio_50", "≤ 1.2",
                               lambda v: v <= 1.2),
    "orchestration_ratio_200": ("orchestration", "orchestration_ratio_200", "≤ 1.2",
                                lambda v: v <= 1.2),
    # The hand-off as a reaction time, at a steady arrival rate the machine sustains
    # (bench/handoff.py), with the load it was measured at and the floor's beside it.
    "handoff_p50_ms": ("handoff", "handoff_p50_ms", "≤ 100", lambda v: v <= 100),
    "handoff_p99_ms": ("handoff", "handoff_p99_ms", "≤ 500", lambda v: v <= 500),
    "handoff_rate_per_s": ("handoff", "handoff_rate_per_s", "", None),
    "handoff_machine_busy": ("handoff", "handoff_machine_busy", "", None),
    "floor_handoff_p50_ms": ("handoff", "floor_handoff_p50_ms", "", None),
    "floor_handoff_p99_ms": ("handoff", "floor_handoff_p99_ms", "", None),
    # The hand-offs of the orchestration benchmark's largest burst (200 VideoJobs at once, both
    # cores busy): mostly waiting for the CPU, the floor's as well. Its figures with the
    # operator's two parts (operator/videojob_operator/handoff.py).
    "burst_handoff_p50_ms": ("orchestration", "handoff_p50_ms", "", None),
    "burst_handoff_p99_ms": ("orchestration", "handoff_p99_ms", "", None),
    "burst_floor_handoff_p50_ms": ("orchestration", "floor_handoff_p50_ms", "", None),
    "burst_floor_handoff_p99_ms": ("orchestration", "floor_handoff_p99_ms", "", None),
    "burst_handoff_operator_p50_ms": ("orchestration", "handoff_operator_p50_ms", "", None),
    "burst_watch_delay_p50_ms": ("orchestration", "watch_delay_p50_ms", "", None),
    "progress_p50_ms": ("progress", "progress_p50_ms", "≤ 1000", lambda v: v <= 1000),
    "progress_p99_ms": ("progress", "progress_p99_ms", "", None),
    "status_writes_per_s": ("progress", "status_writes_per_s", "≤ 1", lambda v: v <= 1),
    "admission_p50_ms": ("admission", "admission_p50_ms", "≤ 250", lambda v: v <= 250),
    "admission_p95_ms": ("admission", "admission_p95_ms", "", None),
    "operator_rss_mb_2000": ("scale", "operator_rss_mb_2000", "≤ 500", lambda v: v <= 500),
    "writes_per_videojob": ("orchestration", "writes_per_videojob", "≤ 14 (2 x stages + 4)",
                            lambda v: v <= 14),
    "events_per_videojob": ("orchestration", "events_per_videojob", "", None),
    "writes_per_videojob_all": ("orchestration", "writes_per_videojob_all", "", None),
    "encode_ratio": ("media", "encode_ratio", "≥ 0.9", lambda v: v >= 0.9),
    "segment_fps_720p": ("media", "segment_fps_720p", "", None),
    # Real kubelets and containerd (bench/realnodes.py), the node agent's beside them.
    "realnodes_start_cold_s": ("realnodes", "realnodes_start_cold_s", "", None),
    "realnodes_start_warm_s": ("realnodes", "realnodes_start_warm_s", "", None),
    "realnodes_pod_start_p50_ms": ("realnodes", "realnodes_pod_start_p50_ms", "", None),
    "realnodes_pod_start_p95_ms": ("realnodes", "realnodes_pod_start_p95_ms", "", None),
    "agent_pod_start_p50_ms": ("realnodes", "agent_pod_start_p50_ms", "", None),
    "realnodes_example_s": ("realnodes", "realnodes_example_s", "", None),
    "agent_example_s": ("realnodes", "agent_example_s", "", None),
    "realnodes_example_ratio": ("realnodes", "realnodes_example_ratio", "", None),
}


def newest(name: str) -> tuple[Path, dict[str, Any]] | None:
    files = sorted(RESULTS.glob(f"*-{name}.json"))
    if not files:
        return None
    return files[-1], json.loads(files[-1].read_text())


def main() -> int:
    found = {name: hit for name in BENCHMARKS if (hit := newest(name)) is not None}
    merged: dict[str, Any] = {"machine": describe(),
                              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    rows = ["| figure | value | goal | from |", "|---|---|---|---|"]
    for key, (bench, field, goal, check) in HEADLINE.items():
        value = found[bench][1].get(field) if bench in found else None
        merged[key] = value
        verdict = "" if value is None or check is None else (" ✓" if check(value) else " ✗")
        source = found[bench][0].name if bench in found else "not run"
        rows.append(f"| `{key}` | {value}{verdict} | {goal} | {source} |")
    merged["sources"] = {name: path.name for name, (path, _) in found.items()}
    for name, (_, doc) in found.items():
        merged[name] = doc
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}.json"
    out.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    print("\n".join(rows))
    print(f"\nwritten: {out.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
