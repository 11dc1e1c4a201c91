"""bench/summary.py's merge, from made-up results: flat headline keys, `sources` by benchmark
instead of copies of the results, writes' nested figures, and which result of a benchmark is
taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import summary

ORCHESTRATION = {"machine": "2 cores (A)", "orchestration_ratio_50": 1.05,
                 "orchestration_ratio_200": 1.07, "handoff_p50_ms": 477.0,
                 "handoff_p99_ms": 2110.0, "floor_handoff_p50_ms": 216.0,
                 "floor_handoff_p99_ms": 1476.0, "handoff_operator_p50_ms": 349.0,
                 "watch_delay_p50_ms": 84.0, "writes_per_videojob": 12.0,
                 "events_per_videojob": 6.0, "writes_per_videojob_all": 18.3,
                 "burst_handoff_p50_ratio": 2.208, "burst_handoff_p99_ratio": 1.43,
                 "operator_own_cpu_s_per_videojob": 0.122,
                 "operator_makespan_200_s": [165.6, 170.0, 160.0]}
WRITES = {"machine": "2 cores (B)", "requests": 1000, "cpu_ms_per_request": {
    "videojob_status_patch": {"kube-apiserver": 11.65, "etcd": 1.03},
    "videojob_metadata_patch": {"kube-apiserver": 12.01, "etcd": 1.04},
    "configmap_patch": {"kube-apiserver": 2.95, "etcd": 0.87}}}


def test_the_merge_is_flat_headline_keys_and_the_file_each_came_from() -> None:
    merged = summary.merge({
        "orchestration": ("bench/results/20261202T043549Z-orchestration.json", ORCHESTRATION),
        "writes": ("bench/results/20261202T001318Z-writes.json", WRITES),
    }, machine="here", date="2026-12-06T00:00:00+00:00")
    assert merged["machine"] == "here"
    assert merged["orchestration_ratio_200"] == 1.07
    assert merged["burst_handoff_p50_ms"] == 477.0  # orchestration's, under its merged name
    assert merged["handoff_p50_ms"] is None  # its benchmark was not run
    assert merged["writes_videojob_status_patch_apiserver_ms"] == 11.65
    assert merged["writes_videojob_status_patch_etcd_ms"] == 1.03
    assert merged["writes_configmap_patch_apiserver_ms"] == 2.95
    assert merged["writes_videojob_get_apiserver_ms"] is None  # not in that result
    assert merged["sources"] == {
        "orchestration": "bench/results/20261202T043549Z-orchestration.json",
        "writes": "bench/results/20261202T001318Z-writes.json"}
    assert merged["machines"] == {"orchestration": "2 cores (A)", "writes": "2 cores (B)"}
    # No copy of a result: every value is a headline figure or one of the maps above.
    assert set(merged) == {"machine", "date", "sources", "machines", *summary.HEADLINE}
    assert all(not isinstance(merged[k], dict | list) for k in summary.HEADLINE)
    json.dumps(merged)


def test_the_keys_other_readers_use_are_kept() -> None:
    for key in ("orchestration_ratio_50", "orchestration_ratio_200", "handoff_p50_ms",
                "handoff_p99_ms", "progress_p50_ms", "status_writes_per_s", "admission_p50_ms",
                "operator_rss_mb_2000", "writes_per_videojob", "encode_ratio",
                "realnodes_example_ratio", "realnodes_pod_start_p50_ms"):
        assert key in summary.HEADLINE
    assert set(summary.BENCHMARKS) >= {"orchestration", "handoff", "progress", "admission",
                                       "scale", "writes", "media", "cluster", "realnodes"}


def test_a_partial_run_does_not_blank_the_last_full_one() -> None:
    full = ("old.json", ORCHESTRATION)
    partial = ("new.json", {"orchestration_ratio_50": 1.1})
    assert summary.choose("orchestration", [full, partial]) == full
    # With no full run at all, the newest is taken and its missing figures are null.
    newest = summary.choose("orchestration", [partial, ("newer.json", {})])
    assert newest is not None and newest[0] == "newer.json"
    assert summary.choose("orchestration", []) is None


def test_a_figure_of_one_choice_of_sizes_is_not_needed_for_a_run_to_be_complete() -> None:
    required = {h.field: 1.0 for h in summary.HEADLINE.values()
                if h.bench == "scale" and h.required and "." not in h.field}
    required["restart_writes_10000"] = {"patch videojobs/status": 0}
    older = ("with-2000.json", {**required, "operator_rss_mb_2000": 190.0})
    newer = ("with-10000.json", required)  # --videojobs 1000 3000 10000: no 2,000 size
    assert summary.choose("scale", [older, newer]) == newer
    assert summary.choose("scale", [older, ("no-10000.json", {"operator_rss_mb_2000": 1})]) \
        == older


def test_the_table_marks_goals_and_names_the_files() -> None:
    merged = summary.merge({"scale": ("bench/results/x-scale.json",
                                      {"operator_rss_mb_2000": 600.0})}, "here", "now")
    rows = summary.table(merged).splitlines()
    assert "| `operator_rss_mb_2000` | 600.0 ✗ | ≤ 500 | x-scale.json |" in rows
    assert "| `encode_ratio` | None | ≥ 0.9 | not run |" in rows


def test_main_reads_the_newest_result_of_each_benchmark(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def put(name: str, doc: dict[str, Any]) -> None:
        (tmp_path / name).write_text(json.dumps(doc))

    put("20261201T000000Z-scale.json", {"operator_rss_mb_2000": 400.0})
    put("20261202T000000Z-scale.json", {"operator_rss_mb_2000": 300.0})
    put("20261202T000000Z-writes.json", WRITES)
    put("20261203T000000Z.json", {"scale": {"operator_rss_mb_2000": 1.0}})  # a merged file
    before = set(tmp_path.iterdir())
    assert summary.main(["--results", str(tmp_path)]) == 0
    [written] = set(tmp_path.iterdir()) - before
    merged = json.loads(written.read_text())
    assert merged["operator_rss_mb_2000"] == 300.0
    assert merged["sources"]["scale"] == str(tmp_path / "20261202T000000Z-scale.json")
    assert "written:" in capsys.readouterr().out

    before = set(tmp_path.iterdir())
    assert summary.main(["--results", str(tmp_path), "--dry-run"]) == 0
    assert set(tmp_path.iterdir()) == before
