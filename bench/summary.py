"""One result file for a `make bench` run: the headline figures of every benchmark, merged.

For each benchmark, takes the newest bench/results/<timestamp>-<name>.json that carries all of
that benchmark's required headline figures (a partial run, such as `orchestration.py --sizes 50`,
does not blank the figures of the last full one), or the newest at all when none does. Writes
bench/results/<timestamp>.json with the headline keys (flat, one value each; null for a
benchmark not run), `sources` (benchmark -> the result file its figures came from, relative to
the repository) and `machines` (benchmark -> the machine that result names), and prints the
figures against their goals as a Markdown table. Each benchmark's full figures stay in its own
file; the merged one does not copy them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from bench.report import RESULTS, describe
from videojob_common.pipeline import Obj

REPO = RESULTS.parent.parent
# <UTC timestamp>-<benchmark>.json; the merged files are <UTC timestamp>.json
RESULT_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<bench>[a-z_]+)\.json$")


class Headline(NamedTuple):
    bench: str  # the benchmark whose result holds it
    field: str  # its key there; dotted for a nested one ("cpu_ms_per_request.x.y")
    goal: str = ""
    check: Callable[[Any], bool] | None = None
    # False: a figure of one choice of sizes only, so a run without it still counts as
    # complete (the 2,000-VideoJob size of bench/scale.py, which the 10,000 runs leave out).
    required: bool = True


def _writes(request: str, part: str = "kube-apiserver") -> Headline:
    """A figure of bench/writes.py: CPU milliseconds per request of one kind, by part."""
    return Headline("writes", f"cpu_ms_per_request.{request}.{part}")


# Merged key -> where it comes from. The key names are read by docs/benchmarks.md; keep them.
HEADLINE: dict[str, Headline] = {
    "orchestration_ratio_50": Headline("orchestration", "orchestration_ratio_50", "≤ 1.2",
                                       lambda v: v <= 1.2),
    "orchestration_ratio_200": Headline("orchestration", "orchestration_ratio_200", "≤ 1.2",
                                        lambda v: v <= 1.2),
    # The hand-off as a reaction time, at a steady arrival rate the machine sustains
    # (bench/handoff.py), with the load it was measured at and the floor's beside it.
    "handoff_p50_ms": Headline("handoff", "handoff_p50_ms", "≤ 100", lambda v: v <= 100),
    "handoff_p99_ms": Headline("handoff", "handoff_p99_ms", "≤ 500", lambda v: v <= 500),
    "handoff_rate_per_s": Headline("handoff", "handoff_rate_per_s"),
    "handoff_machine_busy": Headline("handoff", "handoff_machine_busy"),
    "floor_handoff_p50_ms": Headline("handoff", "floor_handoff_p50_ms"),
    "floor_handoff_p99_ms": Headline("handoff", "floor_handoff_p99_ms"),
    # The hand-offs of the orchestration benchmark's largest burst (200 VideoJobs at once, both
    # cores busy): mostly waiting for the CPU, the floor's as well; with the operator's own
    # part of it and the API server's delivery, from the operator's histograms.
    "burst_handoff_p50_ms": Headline("orchestration", "handoff_p50_ms"),
    "burst_handoff_p99_ms": Headline("orchestration", "handoff_p99_ms"),
    "burst_floor_handoff_p50_ms": Headline("orchestration", "floor_handoff_p50_ms"),
    "burst_floor_handoff_p99_ms": Headline("orchestration", "floor_handoff_p99_ms"),
    "burst_handoff_operator_p50_ms": Headline("orchestration", "handoff_operator_p50_ms"),
    "burst_watch_delay_p50_ms": Headline("orchestration", "watch_delay_p50_ms"),
    "burst_handoff_p50_ratio": Headline("orchestration", "burst_handoff_p50_ratio", "≤ 1.3",
                                        lambda v: v <= 1.3),
    "burst_handoff_p99_ratio": Headline("orchestration", "burst_handoff_p99_ratio", "≤ 1.3",
                                        lambda v: v <= 1.3),
    "burst_operator_cpu_s_per_videojob": Headline("orchestration",
                                                  "operator_own_cpu_s_per_videojob"),
    "handoff_p50_ratio_1ps": Headline("handoff", "handoff_p50_ratio_1ps", "≤ 1.2",
                                      lambda v: v <= 1.2),
    "handoff_p50_ratio_2ps": Headline("handoff", "handoff_p50_ratio_2ps", "≤ 1.2",
                                      lambda v: v <= 1.2),
    "progress_p50_ms": Headline("progress", "progress_p50_ms", "≤ 1000", lambda v: v <= 1000),
    "progress_p99_ms": Headline("progress", "progress_p99_ms"),
    "status_writes_per_s": Headline("progress", "status_writes_per_s", "≤ 1",
                                    lambda v: v <= 1),
    "admission_p50_ms": Headline("admission", "admission_p50_ms", "≤ 250", lambda v: v <= 250),
    "admission_p95_ms": Headline("admission", "admission_p95_ms"),
    "operator_rss_mb_2000": Headline("scale", "operator_rss_mb_2000", "≤ 500",
                                     lambda v: v <= 500, required=False),
    # 10,000 VideoJobs (bench/scale.py --videojobs 1000 3000 10000 --restart).
    "operator_rss_mb_10000": Headline("scale", "operator_rss_mb_10000", "≤ 600",
                                      lambda v: v <= 600),
    "admission_p50_ms_10000": Headline("scale", "admission_p50_ms_10000", "≤ 100",
                                       lambda v: v <= 100),
    "operator_rss_mb_per_1000": Headline("scale", "operator_rss_mb_per_1000"),
    "rss_slope_ratio": Headline("scale", "rss_slope_ratio", "≤ 1.05 (linear or better)",
                                lambda v: v <= 1.05),
    "cpu_slope_ratio": Headline("scale", "cpu_slope_ratio", "≤ 1.05 (linear or better)",
                                lambda v: v <= 1.05),
    "restart_reconcile_s_10000": Headline("scale", "restart_reconcile_s_10000", "≤ 60",
                                          lambda v: v <= 60),
    "restart_catchup_s_10000": Headline("scale", "restart_catchup_s_10000", "≤ 60",
                                        lambda v: v <= 60),
    "restart_status_writes_10000": Headline("scale",
                                            "restart_writes_10000.patch videojobs/status",
                                            "0", lambda v: v == 0),
    "writes_per_videojob": Headline("orchestration", "writes_per_videojob", "≤ 10",
                                    lambda v: v <= 10),
    "events_per_videojob": Headline("orchestration", "events_per_videojob"),
    "writes_per_videojob_all": Headline("orchestration", "writes_per_videojob_all"),
    # What one request costs the API server (and etcd), measured alone (bench/writes.py).
    "writes_videojob_status_patch_apiserver_ms": _writes("videojob_status_patch"),
    "writes_videojob_status_patch_etcd_ms": _writes("videojob_status_patch", "etcd"),
    "writes_videojob_metadata_patch_apiserver_ms": _writes("videojob_metadata_patch"),
    "writes_videojob_status_patch_no_cel_apiserver_ms": _writes("videojob_status_patch_no_cel"),
    "writes_schemaless_status_patch_apiserver_ms": _writes("thing_status_patch"),
    "writes_configmap_patch_apiserver_ms": _writes("configmap_patch"),
    "writes_videojob_create_apiserver_ms": _writes("videojob_create"),
    "writes_videojob_get_apiserver_ms": _writes("videojob_get"),
    "encode_ratio": Headline("media", "encode_ratio", "≥ 0.9", lambda v: v >= 0.9),
    "encode_cpu_ratio": Headline("media", "encode_cpu_ratio"),
    "segment_fps_720p": Headline("media", "segment_fps_720p"),
    # The local cluster (node agent) on its own (bench/cluster.py).
    "cluster_start_fresh_s": Headline("cluster", "cluster_start_fresh_s", "< 30",
                                      lambda v: v < 30),
    "cluster_start_restart_s": Headline("cluster", "cluster_start_restart_s"),
    "cluster_pod_start_p50_ms": Headline("cluster", "pod_start_p50_ms", "< 1000",
                                         lambda v: v < 1000),
    "cluster_pod_start_burst_p50_ms": Headline("cluster", "pod_start_burst_p50_ms"),
    # Real kubelets and containerd (bench/realnodes.py), the node agent's beside them.
    "realnodes_start_cold_s": Headline("realnodes", "realnodes_start_cold_s"),
    "realnodes_start_warm_s": Headline("realnodes", "realnodes_start_warm_s"),
    "realnodes_pod_start_p50_ms": Headline("realnodes", "realnodes_pod_start_p50_ms"),
    "realnodes_pod_start_p95_ms": Headline("realnodes", "realnodes_pod_start_p95_ms"),
    "agent_pod_start_p50_ms": Headline("realnodes", "agent_pod_start_p50_ms"),
    "realnodes_example_s": Headline("realnodes", "realnodes_example_s"),
    "agent_example_s": Headline("realnodes", "agent_example_s"),
    "realnodes_example_ratio": Headline("realnodes", "realnodes_example_ratio"),
    # The archive at a million rows (bench/archive.py): history pages and the write burst.
    "history_list_p99_ms": Headline("archive", "history_list_p99_ms", "≤ 50",
                                    lambda v: v <= 50),
    "history_list_label_p99_ms": Headline("archive", "history_list_label_p99_ms", "≤ 100",
                                          lambda v: v <= 100),
    "history_deep_page_p99_ms": Headline("archive", "history_deep_page_p99_ms"),
    "archive_write_rows_per_s": Headline("archive", "archive_write_rows_per_s"),
    # The operator's hand-off with the archive on against off (bench/archive_handoff.py).
    "archive_on_handoff_p50_ms": Headline("archive_handoff", "archive_on_handoff_p50_ms"),
    "archive_off_handoff_p50_ms": Headline("archive_handoff", "archive_off_handoff_p50_ms"),
    "archive_handoff_p50_ratio": Headline("archive_handoff", "archive_handoff_p50_ratio",
                                          "within noise"),
    # The stage cache (bench/reuse.py, bench/cache_handoff.py): what it saves, what it costs.
    "reuse_repeat_ratio": Headline("reuse", "reuse_repeat_ratio"),
    "reuse_repeat_s": Headline("reuse", "reuse_repeat_s"),
    "reuse_full_s": Headline("reuse", "reuse_full_s"),
    "reuse_edit_ratio": Headline("reuse", "reuse_edit_ratio"),
    "reuse_edit_s": Headline("reuse", "reuse_edit_s"),
    "reuse_edit_full_s": Headline("reuse", "reuse_edit_full_s"),
    "reuse_gpu_pods_full": Headline("reuse", "reuse_gpu_pods_full"),
    "reuse_gpu_pods_repeat": Headline("reuse", "reuse_gpu_pods_repeat"),
    "reuse_gpu_pods_edit": Headline("reuse", "reuse_gpu_pods_edit"),
    "cache_on_handoff_p50_ms": Headline("cache_handoff", "cache_on_handoff_p50_ms"),
    "cache_off_handoff_p50_ms": Headline("cache_handoff", "cache_off_handoff_p50_ms"),
    "cache_handoff_p50_ratio": Headline("cache_handoff", "cache_handoff_p50_ratio",
                                        "within noise"),
    # Narration beside the picture (bench/narration.py): wall time with it against without.
    "narration_on_s": Headline("narration", "narration_on_s"),
    "narration_off_s": Headline("narration", "narration_off_s"),
    "narration_ratio": Headline("narration", "narration_ratio"),
    "narration_added_s": Headline("narration", "narration_added_s"),
    # The HTTP gateway (bench/gateway.py): each against the API server in the same run.
    "gateway_get_p99_ms": Headline("gateway", "gateway_get_p99_ms", "≤ 10", lambda v: v <= 10),
    "gateway_get_p50_ms": Headline("gateway", "gateway_get_p50_ms"),
    "gateway_get_rps": Headline("gateway", "gateway_get_rps"),
    "gateway_get_key_p99_ms": Headline("gateway", "gateway_get_key_p99_ms"),
    "apiserver_get_p99_ms": Headline("gateway", "apiserver_get_p99_ms"),
    "gateway_get_vs_apiserver_p99_ratio": Headline("gateway",
                                                   "gateway_get_vs_apiserver_p99_ratio"),
    "gateway_get_cpu_ms": Headline("gateway", "gateway_get_cpu_ms"),
    "apiserver_get_cpu_ms": Headline("gateway", "apiserver_get_cpu_ms"),
    "gateway_sse_p99_ms": Headline("gateway", "gateway_sse_p99_ms", "≤ 1000",
                                   lambda v: v <= 1000),
    "gateway_sse_p50_ms": Headline("gateway", "gateway_sse_p50_ms"),
    "apiserver_watch_p99_ms": Headline("gateway", "apiserver_watch_p99_ms"),
    "gateway_sse_vs_apiserver_p99_ratio": Headline("gateway",
                                                   "gateway_sse_vs_apiserver_p99_ratio"),
    "gateway_submit_p50_ms": Headline("gateway", "gateway_submit_p50_ms", "≤ 50",
                                      lambda v: v <= 50),
    "apiserver_submit_p50_ms": Headline("gateway", "apiserver_submit_p50_ms"),
    "gateway_submit_vs_apiserver_p50_ratio": Headline("gateway",
                                                      "gateway_submit_vs_apiserver_p50_ratio"),
    "webhook_first_attempt_p50_ms": Headline("gateway", "webhook_first_attempt_p50_ms", "≤ 1000",
                                             lambda v: v <= 1000),
    "webhook_from_notification_time_p50_ms": Headline(
        "gateway", "webhook_from_notification_time_p50_ms"),
}
BENCHMARKS: tuple[str, ...] = tuple(dict.fromkeys(h.bench for h in HEADLINE.values()))


def lookup(doc: Obj, field: str) -> Any:
    """doc's value at a dotted path, or None where any part of it is missing."""
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def complete(bench: str, doc: Obj) -> bool:
    """Whether a result of `bench` carries every headline figure taken from it."""
    return all(lookup(doc, h.field) is not None for h in HEADLINE.values()
               if h.bench == bench and h.required)


def choose(bench: str, results: list[tuple[str, Obj]]) -> tuple[str, Obj] | None:
    """Of one benchmark's results, oldest first: the newest complete one, else the newest."""
    if not results:
        return None
    return next((r for r in reversed(results) if complete(bench, r[1])), results[-1])


def merge(chosen: Mapping[str, tuple[str, Obj]], machine: str, date: str) -> Obj:
    """The merged result: `machine` and `date` (of the merge), every headline key (None for a
    benchmark not in `chosen`), then `sources` and `machines` by benchmark. `chosen` maps a
    benchmark to (its result file, that result)."""
    out: Obj = {"machine": machine, "date": date}
    for key, h in HEADLINE.items():
        out[key] = lookup(chosen[h.bench][1], h.field) if h.bench in chosen else None
    out["sources"] = {bench: chosen[bench][0] for bench in BENCHMARKS if bench in chosen}
    out["machines"] = {bench: chosen[bench][1].get("machine") for bench in BENCHMARKS
                       if bench in chosen}
    return out


def table(merged: Obj) -> str:
    """The headline figures against their goals, as Markdown (✓ met, ✗ not)."""
    rows = ["| figure | value | goal | from |", "|---|---|---|---|"]
    for key, h in HEADLINE.items():
        value = merged.get(key)
        verdict = "" if value is None or h.check is None else (" ✓" if h.check(value) else " ✗")
        source = Path(merged["sources"][h.bench]).name if h.bench in merged["sources"] \
            else "not run"
        rows.append(f"| `{key}` | {value}{verdict} | {h.goal} | {source} |")
    return "\n".join(rows)


def results_by_benchmark(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """The result files of each benchmark, oldest first (merged files and others left out)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(paths, key=lambda p: p.name):
        m = RESULT_NAME.match(path.name)
        if m and m.group("bench") in BENCHMARKS:
            out.setdefault(m.group("bench"), []).append(path)
    return out


def shown(path: Path) -> str:
    """The path as `sources` records it: relative to the repository where it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the result files (default: bench/results)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the table and the merged result; write nothing")
    args = parser.parse_args(argv)
    chosen: dict[str, tuple[str, Obj]] = {}
    for bench, paths in results_by_benchmark(args.results.glob("*.json")).items():
        hit = choose(bench, [(shown(p), json.loads(p.read_text())) for p in paths])
        if hit is not None:
            chosen[bench] = hit
    now = dt.datetime.now(dt.UTC)
    merged = merge(chosen, describe(), now.isoformat(timespec="seconds"))
    text = json.dumps(merged, indent=2, ensure_ascii=False) + "\n"
    print(table(merged))
    if args.dry_run:
        print("\n" + text, end="")
        return 0
    out = args.results / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(text)
    print(f"\nwritten: {shown(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
